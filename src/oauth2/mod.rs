//! OAuth 2.0 built in: the access tokens that XOAUTH2 and OAUTHBEARER send,
//! without a helper program.
//!
//! `fetch --login` authorizes once ([`flow`]: the device grant of RFC 8628,
//! or the authorization code grant with PKCE, RFC 7636, and a loopback
//! redirect, RFC 8252) and keeps the refresh token in the account's state
//! directory ([`store`]). Every run then uses the stored access token until
//! shortly before it expires, and refreshes it (RFC 6749 section 6) under
//! the store's lock, saving a rotated refresh token durably before anything
//! else happens. The HTTP is in [`http`]; what servers answer is read,
//! without I/O, in [`token`].

pub mod flow;
pub mod http;
pub mod store;
pub mod token;

use std::path::Path;
use std::time::Duration;

use crate::error::{Result, auth};
use crate::secret::Secret;
use store::Tokens;
use token::{Granted, Refused};

/// An account's OAuth client, as the user registered it with the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    /// Confidential clients only; Google's "desktop app" clients have one
    /// that is not secret, public clients have none.
    pub client_secret: Option<String>,
    pub scope: String,
    pub token_url: String,
    /// The browser flow's authorization endpoint.
    pub authorize_url: Option<String>,
    /// The device flow's endpoint; when set, `--login` uses the device flow.
    pub device_url: Option<String>,
    /// Extra parameters of the authorization request (Google needs
    /// `access_type=offline` to issue a refresh token at all).
    pub authorize_params: Vec<(String, String)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .field("scope", &self.scope)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// Renew the access token this long before it expires, so that it does not
/// expire between our check and the server's.
const MARGIN: u64 = 120;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The error that sends the user to `fetch --login`.
fn login_again(account: &str, why: &str) -> crate::error::Error {
    auth(format!("{why}; run `fetch --login {account}`"))
}

/// An access token for the account whose state directory is `dir`: the
/// stored one while it has more than a couple of minutes to live, else a
/// refreshed one. `renew` refreshes whatever the expiry says (the server
/// rejected a token that should have been valid).
pub fn access_token(
    client: &Client,
    account: &str,
    dir: &Path,
    timeout: Duration,
    renew: bool,
) -> Result<Secret> {
    let tokens = store::load(dir)?;
    if !renew
        && let Some(t) = &tokens
        && let Some(at) = fresh_access(client, t)
    {
        return Ok(at);
    }
    // Refreshing: one process at a time, and the store read again under
    // the lock (another may just have refreshed it).
    let _lock = store::lock(dir, timeout + Duration::from_secs(5))?;
    let tokens = store::load(dir)?;
    let Some(mut tokens) = tokens.filter(|t| belongs_to(client, t)) else {
        return Err(login_again(
            account,
            "there is no OAuth token for this account (or it was issued to another client)",
        ));
    };
    if let Some(at) = fresh_access(client, &tokens)
        && !renew
    {
        return Ok(at);
    }
    let Some(refresh) = tokens.refresh_token.clone() else {
        return Err(login_again(account, "no OAuth refresh token is stored"));
    };
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", client.client_id.as_str()),
    ];
    if let Some(s) = &client.client_secret {
        form.push(("client_secret", s));
    }
    let (status, body) = http::post_form(&client.token_url, &form, timeout)?;
    let granted = match token::parse_token_reply(status, &body)? {
        Ok(g) => g,
        Err(Refused::InvalidGrant(why)) => {
            return Err(login_again(
                account,
                &format!(
                    "the OAuth refresh token was refused (revoked or expired{})",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {why}")
                    }
                ),
            ));
        }
        Err(other) => {
            return Err(auth(format!("the OAuth token endpoint refused: {other}")));
        }
    };
    crate::crash::point("oauth2 token response read, not yet stored");
    keep(&mut tokens, &granted);
    store::save(dir, &tokens)?;
    Ok(granted.access_token)
}

/// The stored access token, if it belongs to `client` and lives on.
fn fresh_access(client: &Client, t: &Tokens) -> Option<Secret> {
    let at = t.access_token.as_ref()?;
    (belongs_to(client, t) && t.expires_at? > now() + MARGIN).then(|| Secret::new(at.clone()))
}

fn belongs_to(client: &Client, t: &Tokens) -> bool {
    t.client_id == client.client_id && t.token_url == client.token_url
}

/// Put what the server granted into `t`: a rotated refresh token replaces
/// the old one (the caller saves before using anything).
fn keep(t: &mut Tokens, g: &Granted) {
    if let Some(rt) = &g.refresh_token {
        t.refresh_token = Some(rt.expose().to_string());
    }
    t.access_token = Some(g.access_token.expose().to_string());
    // Without expires_in, assume an hour (what the large providers grant)
    // and let a rejection trigger a refresh.
    t.expires_at = Some(now() + g.expires_in.unwrap_or(3600));
}
