//! `--show-cert`: what a connection to the account's server shows before
//! any credential is sent.

use crate::config::Account;
use crate::error::Result;
use crate::report::Ui;
use crate::types::Protocol;

/// `--show-cert`: connect as the account would, print the TLS session, the
/// certificate and the capabilities on stdout, and send no credential.
pub(super) fn show_cert(acct: &Account, ui: &Ui) -> Result<()> {
    use std::fmt::Write;
    let ep = acct.endpoint();
    let (info, caps) = match acct.protocol {
        Protocol::Pop3 => {
            let mut s = crate::pop3::Session::connect(&ep, ui)?;
            let info = s.peer_info(&ep);
            let caps = s
                .caps
                .raw
                .iter()
                .map(|c| crate::sanitize::escape(c))
                .collect();
            let _ = s.quit();
            (info, caps)
        }
        Protocol::Imap => crate::imap::inspect(&ep, ui)?,
    };
    let mut out = format!("{}: {}:{}\n", acct.name, acct.host, acct.port);
    match info {
        None => out.push_str("  TLS: none (--tls none)\n"),
        Some(i) => {
            let _ = writeln!(out, "  TLS: {} ({})", i.version, i.cipher);
            let _ = writeln!(out, "  subject: {}", i.subject);
            let _ = writeln!(out, "  issuer: {}", i.issuer);
            let _ = writeln!(out, "  valid: {} to {}", i.not_before, i.not_after);
            let _ = writeln!(out, "  names: {}", i.names.join(", "));
            let _ = writeln!(out, "  sha256: {}", crate::net::fingerprint_hex(&i.sha256));
            match (&acct.fingerprint, &i.untrusted) {
                (Some(pin), _) if *pin == i.sha256 => {
                    out.push_str("  trusted: yes (pinned fingerprint matches)\n")
                }
                (Some(_), _) => out.push_str("  trusted: no (not the pinned fingerprint)\n"),
                (None, None) => out.push_str("  trusted: yes\n"),
                (None, Some(why)) => {
                    let _ = writeln!(
                        out,
                        "  trusted: no ({why}); to trust this certificate itself, use --fingerprint {}",
                        crate::net::fingerprint_hex(&i.sha256)
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "  capabilities: {}", caps.join(" | "));
    ui.data(&out);
    Ok(())
}
