//! Provider presets (`provider = "gmail"`) and an account's OAuth client.
//!
//! A preset fills what the user left unset: protocol (IMAP), host, port,
//! TLS, the login mechanism and, where the provider lets users register
//! their own OAuth client, its endpoints and scope. Any key set by hand
//! wins. The client id is always the user's own: fetch ships none.

use super::layers::Settings;
use crate::error::{Result, config};
use crate::oauth2::Client;
use crate::types::{AuthMethod, Protocol, TlsMode};

/// What one provider offers.
struct Preset {
    name: &'static str,
    imap_host: &'static str,
    /// None: the provider has no POP3.
    pop3_host: Option<&'static str>,
    /// The mechanism; PLAIN where the provider wants an app password.
    auth: AuthMethod,
    oauth: Option<OAuthPreset>,
}

struct OAuthPreset {
    authorize_url: &'static str,
    token_url: &'static str,
    device_url: Option<&'static str>,
    imap_scope: &'static str,
    pop3_scope: &'static str,
    authorize_params: &'static [(&'static str, &'static str)],
}

/// One table; each fact from the provider's own documentation.
const PRESETS: &[Preset] = &[
    // Hosts: https://developers.google.com/gmail/imap/imap-smtp
    // XOAUTH2: https://developers.google.com/gmail/imap/xoauth2-protocol
    // Endpoints, loopback redirect, access_type=offline:
    // https://developers.google.com/identity/protocols/oauth2/native-app
    // (Google's device flow does not allow the mail scope:
    // https://developers.google.com/identity/protocols/oauth2/limited-input-device#allowedscopes)
    Preset {
        name: "gmail",
        imap_host: "imap.gmail.com",
        pop3_host: Some("pop.gmail.com"),
        auth: AuthMethod::Xoauth2,
        oauth: Some(OAuthPreset {
            authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
            token_url: "https://oauth2.googleapis.com/token",
            device_url: None,
            imap_scope: "https://mail.google.com/",
            pop3_scope: "https://mail.google.com/",
            authorize_params: &[("access_type", "offline"), ("prompt", "consent")],
        }),
    },
    // Hosts: https://support.microsoft.com/en-us/office/pop-imap-and-smtp-settings-for-outlook-com-d088b986-291d-42b8-9564-9c414e2aa040
    // OAuth for IMAP/POP, scopes, XOAUTH2:
    // https://learn.microsoft.com/en-us/exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
    // Endpoints and the device code flow:
    // https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code
    Preset {
        name: "outlook",
        imap_host: "outlook.office365.com",
        pop3_host: Some("outlook.office365.com"),
        auth: AuthMethod::Xoauth2,
        oauth: Some(OAuthPreset {
            authorize_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
            device_url: Some("https://login.microsoftonline.com/common/oauth2/v2.0/devicecode"),
            imap_scope: "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
            pop3_scope: "https://outlook.office.com/POP.AccessAsUser.All offline_access",
            authorize_params: &[],
        }),
    },
    // IMAP only, app-specific passwords: https://support.apple.com/en-us/102525
    Preset {
        name: "icloud",
        imap_host: "imap.mail.me.com",
        pop3_host: None,
        auth: AuthMethod::Plain,
        oauth: None,
    },
    // App passwords (OAuth is for registered partners only):
    // https://www.fastmail.help/hc/en-us/articles/1500000278342-Server-names-and-ports
    Preset {
        name: "fastmail",
        imap_host: "imap.fastmail.com",
        pop3_host: Some("pop.fastmail.com"),
        auth: AuthMethod::Plain,
        oauth: None,
    },
    // App passwords: https://help.yahoo.com/kb/SLN4075.html
    Preset {
        name: "yahoo",
        imap_host: "imap.mail.yahoo.com",
        pop3_host: Some("pop.mail.yahoo.com"),
        auth: AuthMethod::Plain,
        oauth: None,
    },
];

/// The names `provider` accepts.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// Fill the unset keys of `s` from its provider preset, if it names one.
pub(super) fn apply(s: &mut Settings) -> Result<()> {
    let Some(name) = s.provider.clone() else {
        return Ok(());
    };
    let Some(p) = PRESETS.iter().find(|p| p.name == name.to_ascii_lowercase()) else {
        return Err(config(format!(
            "unknown provider {name:?}; known: {}",
            names().join(", ")
        )));
    };
    let protocol = *s.protocol.get_or_insert(Protocol::Imap);
    if s.host.is_none() {
        s.host = Some(match protocol {
            Protocol::Imap => p.imap_host.to_string(),
            Protocol::Pop3 => p
                .pop3_host
                .ok_or_else(|| {
                    config(format!(
                        "provider {} has no POP3; use protocol = \"imap\"",
                        p.name
                    ))
                })?
                .to_string(),
        });
    }
    s.tls.get_or_insert(TlsMode::Implicit);
    // With Gmail's app password instead of OAuth: auth = "plain" by hand.
    s.auth.get_or_insert(p.auth);
    if let Some(o) = &p.oauth {
        let fill = |v: &mut Option<String>, preset: &str| {
            v.get_or_insert_with(|| preset.to_string());
        };
        fill(&mut s.oauth2_authorize_url, o.authorize_url);
        fill(&mut s.oauth2_token_url, o.token_url);
        if let Some(d) = o.device_url {
            fill(&mut s.oauth2_device_url, d);
        }
        fill(
            &mut s.oauth2_scope,
            match protocol {
                Protocol::Imap => o.imap_scope,
                Protocol::Pop3 => o.pop3_scope,
            },
        );
        if s.oauth2_authorize_params.is_none() {
            s.oauth2_authorize_params = Some(
                o.authorize_params
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            );
        }
    }
    Ok(())
}

/// The account's OAuth client, when it has one (`oauth2_client_id`), and
/// the mechanism to use: XOAUTH2 when `auth` is unset (every provider that
/// has OAuth speaks it).
pub(super) fn client(s: &Settings) -> Result<Option<Client>> {
    let Some(id) = s.oauth2_client_id.clone().filter(|i| !i.is_empty()) else {
        let stray = [
            &s.oauth2_token_url,
            &s.oauth2_scope,
            &s.oauth2_client_secret,
        ]
        .iter()
        .any(|v| v.is_some())
            && s.provider.is_none();
        if stray {
            return Err(config("oauth2_* keys are set but oauth2_client_id is not"));
        }
        return Ok(None);
    };
    let need = |v: &Option<String>, key: &str| {
        v.clone()
            .filter(|x| !x.is_empty())
            .ok_or_else(|| config(format!("OAuth: {key} is not set (or use provider = ...)")))
    };
    let device_url = s.oauth2_device_url.clone().filter(|x| !x.is_empty());
    let authorize_url = s.oauth2_authorize_url.clone().filter(|x| !x.is_empty());
    if device_url.is_none() && authorize_url.is_none() {
        return Err(config(
            "OAuth: set oauth2_authorize_url (browser login) or oauth2_device_url (device login)",
        ));
    }
    let mut authorize_params = Vec::new();
    for kv in s.oauth2_authorize_params.iter().flatten() {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(config(format!(
                "oauth2_authorize_params: {kv:?} is not NAME=VALUE"
            )));
        };
        authorize_params.push((k.to_string(), v.to_string()));
    }
    Ok(Some(Client {
        client_id: id,
        client_secret: s.oauth2_client_secret.clone().filter(|x| !x.is_empty()),
        scope: need(&s.oauth2_scope, "oauth2_scope")?,
        token_url: need(&s.oauth2_token_url, "oauth2_token_url")?,
        authorize_url,
        device_url,
        authorize_params,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preset(name: &str, f: impl FnOnce(&mut Settings)) -> Result<Settings> {
        let mut s = Settings {
            provider: Some(name.into()),
            ..Default::default()
        };
        f(&mut s);
        apply(&mut s).map(|()| s)
    }

    #[test]
    fn presets_fill_what_is_unset_and_hand_set_keys_win() {
        let s = preset("gmail", |_| {}).unwrap();
        assert_eq!(s.host.as_deref(), Some("imap.gmail.com"));
        assert_eq!(
            (s.protocol, s.tls, s.auth),
            (
                Some(Protocol::Imap),
                Some(TlsMode::Implicit),
                Some(AuthMethod::Xoauth2)
            )
        );
        assert_eq!(s.oauth2_scope.as_deref(), Some("https://mail.google.com/"));
        assert!(s.oauth2_device_url.is_none());
        let s = preset("outlook", |s| {
            s.protocol = Some(Protocol::Pop3);
            s.auth = Some(AuthMethod::Oauthbearer);
            s.host = Some("pop.example.org".into());
        })
        .unwrap();
        assert_eq!(s.host.as_deref(), Some("pop.example.org"));
        assert_eq!(s.auth, Some(AuthMethod::Oauthbearer));
        assert!(s.oauth2_scope.unwrap().contains("POP.AccessAsUser.All"));
        assert!(s.oauth2_device_url.is_some());
        assert!(preset("icloud", |s| s.protocol = Some(Protocol::Pop3)).is_err());
        assert_eq!(
            preset("ICloud", |_| {}).unwrap().auth,
            Some(AuthMethod::Plain)
        );
        assert!(preset("hotmail2", |_| {}).is_err());
        let s = preset("gmail", |s| s.auth = Some(AuthMethod::Plain)).unwrap();
        assert_eq!(s.auth, Some(AuthMethod::Plain));
    }

    #[test]
    fn a_client_needs_its_endpoints() {
        let mut s = preset("gmail", |s| s.oauth2_client_id = Some("id".into())).unwrap();
        let c = client(&s).unwrap().unwrap();
        assert_eq!(c.token_url, "https://oauth2.googleapis.com/token");
        assert!(
            c.authorize_params
                .contains(&("access_type".into(), "offline".into()))
        );
        s.oauth2_scope = Some(String::new());
        assert!(client(&s).is_err());
        let bare = Settings {
            oauth2_client_id: Some("id".into()),
            oauth2_token_url: Some("https://t".into()),
            oauth2_scope: Some("s".into()),
            ..Default::default()
        };
        assert!(client(&bare).is_err(), "no authorize or device URL");
        let stray = Settings {
            oauth2_scope: Some("s".into()),
            ..Default::default()
        };
        assert!(client(&stray).is_err());
    }
}
