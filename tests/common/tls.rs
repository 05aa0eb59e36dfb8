//! Test PKI generated on the fly with rcgen: a private CA, server
//! certificates it issues (good, expired, not yet valid, for any names) and
//! self-signed certificates, plus a `native_tls::TlsAcceptor` for the
//! scripted POP3 server.
//!
//! Names passed to [`TestCa::issue`] and [`self_signed`] may be DNS names or
//! IP literals; IP literals (e.g. `"127.0.0.1"`, `"::1"`) become IP-address
//! subjectAltNames, everything else a DNS-name subjectAltName.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// Validity window of an issued certificate. Dates are fixed so that the
/// tests do not depend on a time crate: `Good` covers 2020..2090,
/// `Expired` ended in 2001, `NotYetValid` starts in 2090. The CA itself is
/// valid 1990..2099, so only the leaf's dates are ever at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    Good,
    Expired,
    NotYetValid,
}

/// A private certificate authority for one test.
pub struct TestCa {
    /// The CA certificate (PEM), to give the client via `--cafile`.
    pub cert_pem: String,
    key: KeyPair,
    params: CertificateParams,
}

/// A server certificate and its private key.
#[derive(Clone, Debug)]
pub struct ServerCert {
    /// The leaf certificate alone (PEM).
    pub cert_pem: String,
    /// The leaf's private key (PKCS#8 PEM, "PRIVATE KEY").
    pub key_pem: String,
    /// What the server presents: the leaf followed by the issuing CA's
    /// certificate (for a self-signed certificate, just the leaf).
    pub chain_pem: String,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A fresh CA (ECDSA P-256) named "fetch test CA".
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "fetch test CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "fetch tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(1990, 1, 1);
        params.not_after = date_time_ymd(2099, 12, 31);
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa {
            cert_pem: cert.pem(),
            key,
            params,
        }
    }

    /// A server certificate for `names`, signed by this CA.
    pub fn issue(&self, names: &[&str], validity: Validity) -> ServerCert {
        let key = KeyPair::generate().expect("generate server key");
        let mut params = leaf_params(names);
        set_validity(&mut params, validity);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign server cert");
        let cert_pem = cert.pem();
        let chain_pem = format!("{}{}", cert_pem, self.cert_pem);
        ServerCert {
            cert_pem,
            key_pem: key.serialize_pem(),
            chain_pem,
        }
    }

    /// Writes the CA certificate (PEM) to `path`.
    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, &self.cert_pem).expect("write CA PEM");
    }

    /// Writes the CA certificate to `ca.pem` in `dir`; returns that path,
    /// for `--cafile`.
    pub fn cafile_in(&self, dir: &Path) -> String {
        let path = dir.join("ca.pem");
        self.write_pem(&path);
        path.to_string_lossy().into_owned()
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    // CertificateParams::new turns IP literals into IP SANs, the rest into
    // DNS SANs.
    let mut params = CertificateParams::new(owned).expect("valid subject alt names");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().copied().unwrap_or("fetch test server"),
    );
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    let (from, to) = match validity {
        Validity::Good => ((2020, 1, 1), (2090, 1, 1)),
        Validity::Expired => ((2000, 1, 1), (2001, 1, 1)),
        Validity::NotYetValid => ((2090, 1, 2), (2091, 1, 1)),
    };
    params.not_before = date_time_ymd(from.0, from.1, from.2);
    params.not_after = date_time_ymd(to.0, to.1, to.2);
}

/// A self-signed (non-CA) server certificate for `names`, valid 2020..2090.
/// Its `cert_pem` can itself serve as a client trust anchor.
pub fn self_signed(names: &[&str]) -> ServerCert {
    let key = KeyPair::generate().expect("generate key");
    let mut params = leaf_params(names);
    set_validity(&mut params, Validity::Good);
    let cert = params.self_signed(&key).expect("self-sign");
    let cert_pem = cert.pem();
    ServerCert {
        chain_pem: cert_pem.clone(),
        cert_pem,
        key_pem: key.serialize_pem(),
    }
}

/// A TLS acceptor presenting `cert.chain_pem` with `cert.key_pem`.
pub fn acceptor(cert: &ServerCert) -> native_tls::TlsAcceptor {
    let identity =
        native_tls::Identity::from_pkcs8(cert.chain_pem.as_bytes(), cert.key_pem.as_bytes())
            .expect("build TLS identity");
    native_tls::TlsAcceptor::new(identity).expect("build TLS acceptor")
}
