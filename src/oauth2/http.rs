//! The HTTP POSTs of OAuth 2.0 (form in, JSON out), through `ureq` over the
//! system's OpenSSL (native-tls), with the certificate checked against the
//! system's roots. Endpoints must be https, except on the loopback
//! interface (a test server, or a local proxy). A response body is read to
//! at most [`MAX_BODY`] bytes, and the whole exchange is bounded by the
//! account's timeout.

use std::time::Duration;

use super::token::MAX_BODY;
use crate::error::{Result, config, protocol, temporary, unavailable};

/// Refuse an endpoint that would carry a credential in the clear.
pub fn check_url(url: &str) -> Result<()> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        if name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        {
            return Ok(());
        }
    }
    Err(config(format!(
        "the OAuth endpoint {url} is not https; fetch sends tokens and secrets only over \
         https (plain http only to the loopback interface)"
    )))
}

fn agent(timeout: Duration) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A token endpoint that redirects is misconfigured; a redirect
        // would also re-send the form to wherever it points.
        .max_redirects(0)
        .user_agent(concat!("fetch/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// POST `form` to `url`; the HTTP status and the body.
pub fn post_form(url: &str, form: &[(&str, &str)], timeout: Duration) -> Result<(u16, Vec<u8>)> {
    check_url(url)?;
    let mut resp = agent(timeout)
        .post(url)
        .header("Accept", "application/json")
        .send_form(form.iter().copied())
        .map_err(|e| failed(url, e))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| failed(url, e))?;
    Ok((status, body))
}

fn failed(url: &str, e: ureq::Error) -> crate::error::Error {
    let what = format!("the OAuth endpoint {url}");
    match e {
        ureq::Error::BodyExceedsLimit(_) => protocol(format!(
            "{what} sent a body larger than {} KiB; a token response is far smaller",
            MAX_BODY / 1024
        )),
        ureq::Error::Tls(_) | ureq::Error::NativeTls(_) | ureq::Error::Der(_) => {
            unavailable(format!("{what}: TLS failed (certificate not trusted?)")).because(e)
        }
        ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => {
            config(format!("{what} is not a usable URL")).because(e)
        }
        ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
            protocol(format!("{what} did not answer in HTTP")).because(e)
        }
        // Unreachable, refused, timed out, cut: try again later.
        _ => temporary(format!("{what} could not be reached")).because(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9/t",
            "HTTP://127.0.0.2/x",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.org/token",
            "http://127.0.0.1.evil.org/token",
            "http://localhost@evil.org/",
            "ftp://127.0.0.1/",
            "token",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unreachable_endpoint_is_a_temporary_failure() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = post_form(
            &format!("http://127.0.0.1:{port}/token"),
            &[("a", "b")],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Temporary, "{e}");
    }
}
