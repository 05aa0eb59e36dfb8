//! TLS for [`Conn`](super::Conn): the client context and its trust store,
//! certificate pinning, and what `--show-cert` prints. Nothing here opens a
//! socket; `net/mod.rs` hands a connected stream in.

use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};

use openssl::ssl::{
    HandshakeError, Ssl, SslContext, SslContextBuilder, SslFiletype, SslMethod, SslMode,
    SslOptions, SslRef, SslStream, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509CheckFlags;

use super::{describe_io, is_timeout};
use crate::error::{Error, Kind, Result, config, temporary, unavailable};

/// Trust settings for TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Extra trust roots (PEM, one or more certificates), added to the system's.
    pub cafile: Option<PathBuf>,
    /// A pinned SHA-256 certificate fingerprint (32 bytes): when set, it
    /// replaces the CA check: the server's certificate must be exactly this
    /// one, whoever signed it.
    pub fingerprint: Option<[u8; 32]>,
    /// Complete the handshake whatever the certificate (`--show-cert` only,
    /// which sends nothing after it); [`super::Conn::peer_info`] says whether it
    /// was trusted.
    pub inspect_only: bool,
}

/// What `--show-cert` prints about a TLS session.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub version: String,
    pub cipher: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub names: Vec<String>,
    pub sha256: [u8; 32],
    /// Why the certificate is not trusted by the normal checks, if it is not.
    pub untrusted: Option<String>,
}

/// `AB:CD:...` for a fingerprint.
pub fn fingerprint_hex(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse a SHA-256 fingerprint written with or without colons, any case,
/// optionally prefixed `sha256:`.
pub fn parse_fingerprint(s: &str) -> std::result::Result<[u8; 32], String> {
    let t = s.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "{s:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
        ));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The TLS handshake over `tcp` for `host`, then the pin check. `peer`
/// (`host:port`) and `timeout` are for messages.
pub(super) fn handshake(
    tcp: TcpStream,
    host: &str,
    tls: &TlsSettings,
    peer: &str,
    timeout: std::time::Duration,
) -> Result<SslStream<TcpStream>> {
    let ssl = client_session(host, tls)?;
    match ssl.connect(tcp) {
        Ok(s) => {
            if let Some(pin) = &tls.fingerprint {
                check_pin(s.ssl(), pin, peer)?;
            }
            Ok(s)
        }
        Err(HandshakeError::WouldBlock(_)) => Err(temporary(format!(
            "{peer}: TLS handshake timed out after {} s",
            timeout.as_secs()
        ))),
        Err(HandshakeError::SetupFailure(e)) => {
            Err(Error::new(Kind::Internal, format!("{peer}: cannot set up TLS")).because(e))
        }
        Err(HandshakeError::Failure(mid)) => Err(classify_tls_error(peer, mid.error(), mid.ssl())),
    }
}

/// The server's certificate must be exactly the pinned one.
fn check_pin(ssl: &SslRef, pin: &[u8; 32], peer: &str) -> Result<()> {
    let got = ssl
        .peer_certificate()
        .and_then(|c| c.digest(openssl::hash::MessageDigest::sha256()).ok());
    match got {
        Some(d) if d.as_ref() == pin => Ok(()),
        Some(d) => {
            let mut fp = [0u8; 32];
            fp.copy_from_slice(d.as_ref());
            Err(unavailable(format!(
                "{peer}: the server's certificate is not the pinned one \
                 (fingerprint {}, pinned {})",
                fingerprint_hex(&fp),
                fingerprint_hex(pin)
            )))
        }
        None => Err(unavailable(format!(
            "{peer}: the server sent no certificate to check the pin against"
        ))),
    }
}

/// The TLS session and the server's certificate, for `--show-cert`.
/// Trust is judged as a normal connection would (system roots plus
/// `cafile`, host name `host`), whatever the handshake accepted.
pub(super) fn peer_info(ssl: &SslRef, host: &str, tls: &TlsSettings) -> Option<PeerInfo> {
    let cert = ssl.peer_certificate()?;
    let name = |n: &openssl::x509::X509NameRef| {
        n.entries()
            .map(|e| {
                format!(
                    "{}={}",
                    e.object().nid().short_name().unwrap_or("?"),
                    String::from_utf8_lossy(e.data().as_slice())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let digest = cert.digest(openssl::hash::MessageDigest::sha256()).ok()?;
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    let names = cert
        .subject_alt_names()
        .map(|alts| {
            alts.iter()
                .filter_map(|a| {
                    a.dnsname().map(str::to_string).or_else(|| {
                        a.ipaddress().map(|ip| match ip.len() {
                            4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                            _ => format!("{ip:?}"),
                        })
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(PeerInfo {
        version: ssl.version_str().to_string(),
        cipher: ssl
            .current_cipher()
            .map(|c| c.name().to_string())
            .unwrap_or_default(),
        subject: crate::sanitize::escape(&name(cert.subject_name())),
        issuer: crate::sanitize::escape(&name(cert.issuer_name())),
        not_before: cert.not_before().to_string(),
        not_after: cert.not_after().to_string(),
        names,
        sha256,
        untrusted: judge_trust(ssl, host, tls),
    })
}

/// A client TLS session for `host`: the same hardening as the openssl
/// crate's `SslConnector` (options, cipher list, peer verification, host name
/// checks without partial wildcards), TLS 1.2 or newer, and a trust store of
/// the system's CAs plus `--cafile`.
///
/// Why not `SslConnector` (or native-tls, which wraps it): it parses the
/// whole system CA bundle, and native-tls parses it a second time, on every
/// connection, which cost more than the rest of a run with no new mail
/// (bench/README.md). We look system CAs up lazily in the hashed certificate directory
/// instead (only the issuer's file is read), and load the bundle only on
/// systems without such a directory.
fn client_session(host: &str, tls: &TlsSettings) -> Result<Ssl> {
    let setup =
        |e: openssl::error::ErrorStack| Error::new(Kind::Internal, "cannot set up TLS").because(e);
    let mut ctx = SslContextBuilder::new(SslMethod::tls_client()).map_err(setup)?;
    let mut opts = SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE;
    opts &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    ctx.set_options(opts);
    ctx.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    ctx.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(setup)?;
    ctx.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")
        .map_err(setup)?;
    if tls.fingerprint.is_some() || tls.inspect_only {
        // The pin (checked right after the handshake) replaces the CA and
        // host name checks; --show-cert sends nothing and reports trust.
        ctx.set_verify(SslVerifyMode::NONE);
    } else {
        ctx.set_verify(SslVerifyMode::PEER);
    }
    ctx.set_cert_store(trust_store(tls)?);
    let ctx: SslContext = ctx.build();

    let mut ssl = Ssl::new(&ctx).map_err(setup)?;
    let param = ssl.param_mut();
    param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
    match host.parse::<IpAddr>() {
        Ok(ip) => param.set_ip(ip).map_err(setup)?,
        Err(_) => {
            param.set_host(host).map_err(setup)?;
            ssl.set_hostname(host).map_err(setup)?; // SNI
        }
    }
    Ok(ssl)
}

/// Would a normal connection trust this session's certificate chain for
/// `host`? None if yes, else why not.
fn judge_trust(ssl: &openssl::ssl::SslRef, host: &str, tls: &TlsSettings) -> Option<String> {
    use openssl::x509::store::X509StoreRef;
    use openssl::x509::{X509StoreContext, X509VerifyResult};
    let chain = ssl.peer_cert_chain()?;
    let leaf = ssl.peer_certificate()?;
    let store = match trust_store(tls) {
        Ok(s) => s,
        Err(e) => return Some(e.message()),
    };
    let mut stack = openssl::stack::Stack::new().ok()?;
    for c in chain {
        let _ = stack.push(c.to_owned());
    }
    let mut ctx = X509StoreContext::new().ok()?;
    let store_ref: &X509StoreRef = &store;
    let verdict = ctx
        .init(store_ref, &leaf, &stack, |c| {
            let ok = c.verify_cert()?;
            Ok(if ok { X509VerifyResult::OK } else { c.error() })
        })
        .ok()?;
    if verdict != X509VerifyResult::OK {
        return Some(verdict.error_string().to_string());
    }
    let name_ok = match host.parse::<IpAddr>() {
        Ok(ip) => leaf.subject_alt_names().is_some_and(|alts| {
            alts.iter()
                .any(|a| a.ipaddress() == Some(&ip_bytes(ip)[..]))
        }),
        Err(_) => leaf.subject_alt_names().is_some_and(|alts| {
            alts.iter()
                .any(|a| a.dnsname().is_some_and(|d| dns_matches(d, host)))
        }),
    };
    (!name_ok).then(|| format!("the certificate is not for {host}"))
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// A DNS SAN matches `host` exactly or as a whole-label wildcard (`*.b.c`).
fn dns_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.strip_prefix("*.") {
        Some(rest) => h
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
        None => p == h,
    }
}

/// The system's trust roots (lazily, see [`client_session`]) plus the
/// certificates of `--cafile`.
fn trust_store(tls: &TlsSettings) -> Result<openssl::x509::store::X509Store> {
    let setup = |e: openssl::error::ErrorStack| {
        Error::new(Kind::Internal, "cannot set up the TLS trust store").because(e)
    };
    let mut store = X509StoreBuilder::new().map_err(setup)?;
    let probe = openssl_probe::probe();
    let hashed: Vec<&PathBuf> = probe
        .cert_dir
        .iter()
        .filter(|d| has_hash_links(d))
        .collect();
    if hashed.is_empty() {
        if let Some(file) = &probe.cert_file {
            let lookup = store.add_lookup(X509Lookup::file()).map_err(setup)?;
            // A missing or unreadable bundle leaves only --cafile; not fatal.
            let _ = lookup.load_cert_file(file, SslFiletype::PEM);
        }
    } else {
        let lookup = store.add_lookup(X509Lookup::hash_dir()).map_err(setup)?;
        for d in hashed {
            if let Some(d) = d.to_str() {
                lookup.add_dir(d, SslFiletype::PEM).map_err(setup)?;
            }
        }
    }
    if let Some(path) = &tls.cafile {
        let pem = std::fs::read(path)
            .map_err(|e| config(format!("cannot read CA file {}", path.display())).because(e))?;
        let certs = split_pem_certificates(&pem);
        if certs.is_empty() {
            return Err(config(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            )));
        }
        for c in certs {
            let cert = X509::from_pem(c).map_err(|e| {
                config(format!("bad certificate in CA file {}", path.display())).because(e)
            })?;
            // Adding a certificate that is already a system root is fine.
            let _ = store.add_cert(cert);
        }
    }
    Ok(store.build())
}

/// Whether `dir` holds OpenSSL's subject-hash links (`1a2b3c4d.0`), which
/// the lazy directory lookup needs.
fn has_hash_links(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let name = e.file_name();
        let b = name.as_encoded_bytes();
        b.len() >= 10 && b[8] == b'.' && b[..8].iter().all(u8::is_ascii_hexdigit)
    })
}

/// The PEM blocks of the certificates in a (bundle) file.
fn split_pem_certificates(pem: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(s) = find(rest, BEGIN) {
        let Some(e) = find(&rest[s..], END) else {
            break;
        };
        let stop = s + e + END.len();
        out.push(&rest[s..stop]);
        rest = &rest[stop..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A handshake failure is a refusal (69) when it is about trust or about the
/// server not speaking TLS, and temporary (75) when the network broke.
fn classify_tls_error(peer: &str, e: &openssl::ssl::Error, ssl: &openssl::ssl::SslRef) -> Error {
    if let Some(io) = e.io_error() {
        if is_timeout(io) {
            return temporary(format!("{peer}: TLS handshake timed out"));
        }
        return temporary(format!("{peer}: TLS handshake failed: {}", describe_io(io)));
    }
    let verify = ssl.verify_result();
    if verify != openssl::x509::X509VerifyResult::OK {
        return unavailable(format!(
            "{peer}: the server's certificate is not trusted: {}",
            verify.error_string()
        ));
    }
    if e.code() == openssl::ssl::ErrorCode::SYSCALL && e.ssl_error().is_none() {
        return temporary(format!(
            "{peer}: connection closed during the TLS handshake"
        ));
    }
    unavailable(format!(
        "{peer}: TLS handshake failed: {}",
        crate::sanitize::escape(&e.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_bundle_split() {
        let one = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bundle = format!("junk\n{one}{one}");
        assert_eq!(split_pem_certificates(bundle.as_bytes()).len(), 2);
        assert!(split_pem_certificates(b"nothing").is_empty());
    }
}
