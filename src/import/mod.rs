//! Coming from fetchmail (or mpop): `--import-fetchmailrc` turns a
//! `.fetchmailrc` into fetch's config file, and `--import-uidls` seeds an
//! account's ledger with the POP3 messages the old program already
//! fetched and left on the server, so that they are not fetched again.
//!
//! `lexer.rs` and `rcfile.rs` read fetchmail's grammar, `convert.rs` maps
//! its options to fetch's keys, `render.rs` writes the TOML, `uidls.rs`
//! reads the UIDL files; all of them without I/O (and fuzzed). This file
//! reads the files and writes the ledger. Nothing here speaks a protocol.

mod convert;
mod lexer;
mod rcfile;
mod render;
mod uidls;

use std::io::{Read, Write};
use std::path::Path;

use crate::config::Account;
use crate::error::{Result, config, data, local_io, usage};
use crate::ledger::{self, Entry, Ledger};
use crate::types::Protocol;
pub use convert::Context;
pub use uidls::Format;

/// The largest `.fetchmailrc` read (a large one is a few kilobytes).
const MAX_RC: u64 = 16 << 20;
/// The largest UIDL file read (a million UIDLs take some 60 MB).
const MAX_UIDS: u64 = 1 << 30;

/// `fetch --import-fetchmailrc [FILE]`: the config on stdout, a word on
/// stderr about what needs the user's attention.
pub fn run_fetchmailrc(path: Option<&Path>) -> Result<()> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => dirs::home_dir()
            .ok_or_else(|| usage("cannot find the home directory: give the file to import"))?
            .join(".fetchmailrc"),
    };
    let (text, summary) = fetchmailrc(&path)?;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        Err(e) => return Err(local_io("writing the config to stdout").because(e)),
    }
    if summary.passwords > 0 {
        eprintln!(
            "fetch: {} holds the password of {} account(s); they are not in the output \
             (see the comments on password_command)",
            path.display(),
            summary.passwords
        );
    }
    Ok(())
}

/// `fetch --import-uidls FILE ACCOUNT`: seed the one account's ledger and
/// say what was done on stderr.
pub fn run_uidls(path: &Path, accounts: &[Account]) -> Result<()> {
    let [acct] = accounts else {
        return Err(usage(format!(
            "--import-uidls seeds one account, and {} are chosen: name it \
             (fetch --import-uidls FILE ACCOUNT)",
            accounts.len()
        )));
    };
    let s = uidls(path, acct)?;
    eprintln!(
        "{}: {} message(s) recorded as fetched from {} ({}); {} recorded already; \
         {} entr(ies) for other servers or users left alone",
        acct.name,
        s.added,
        path.display(),
        s.format.name(),
        s.present,
        s.other
    );
    if s.added + s.present == 0 && !s.other_ids.is_empty() {
        eprintln!(
            "{}: nothing in {} is for {}@{}; it lists {}",
            acct.name,
            path.display(),
            acct.user,
            acct.host,
            s.other_ids.join(", ")
        );
    }
    if s.added > 0 && acct.deletes() {
        eprintln!(
            "{}: note: this account deletes mail from the server (keep is off), so its next \
             run deletes these {} message(s) there without fetching them again",
            acct.name, s.added
        );
    }
    Ok(())
}

/// What a converted rc file holds besides its text.
#[derive(Debug, Clone, Copy)]
pub struct RcSummary {
    pub accounts: usize,
    /// Accounts whose password was in the file (and is not in the output).
    pub passwords: usize,
}

/// `path` read whole, refusing one larger than `max`.
fn read(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| {
        let err = if e.kind() == std::io::ErrorKind::NotFound {
            usage(format!("{} does not exist", path.display()))
        } else {
            local_io(format!("cannot read {}", path.display()))
        };
        err.because(e)
    })?;
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| local_io(format!("cannot read {}", path.display())).because(e))?;
    if buf.len() as u64 > max {
        return Err(data(format!(
            "{} is larger than {max} bytes: not a file fetch can import",
            path.display()
        )));
    }
    Ok(buf)
}

/// The TOML config file equivalent to the fetchmail rc file at `path`.
pub fn fetchmailrc(path: &Path) -> Result<(String, RcSummary)> {
    let text = read(path, MAX_RC)?;
    let local_user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty());
    let source = path.display().to_string();
    let ctx = Context {
        source: &source,
        local_user: local_user.as_deref(),
    };
    convert_rc(&text, &ctx).map_err(|e| data(format!("{source}:{}: {}", e.line, e.what)))
}

/// Parse, convert and render an rc file's bytes.
fn convert_rc(
    text: &[u8],
    ctx: &Context,
) -> std::result::Result<(String, RcSummary), lexer::SyntaxError> {
    let rc = rcfile::parse(text)?;
    let converted = convert::convert(&rc, ctx);
    let summary = RcSummary {
        accounts: converted.accounts.len(),
        passwords: converted.passwords(),
    };
    Ok((render::render(&converted, ctx), summary))
}

/// What `--import-uidls` did.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub format: Format,
    /// UIDLs newly recorded in the ledger.
    pub added: usize,
    /// UIDLs the ledger held already (a second import adds nothing).
    pub present: usize,
    /// Entries for other servers or users, left alone.
    pub other: usize,
    /// Up to a few of those other `user@host`s, to help a user whose
    /// account names the server differently.
    pub other_ids: Vec<String>,
}

/// Seed `acct`'s ledger from the fetchmail or mpop UIDL file at `path`:
/// every UIDL listed for the account's user and server is recorded as
/// delivered, in one durable commit.
pub fn uidls(path: &Path, acct: &Account) -> Result<Seeded> {
    if acct.protocol != Protocol::Pop3 {
        return Err(usage(format!(
            "{}: --import-uidls is for POP3 accounts. fetchmail and mpop keep UIDLs only for \
             POP3 (fetchmail tells IMAP mail it fetched by the server's \\Seen flag), and \
             an IMAP message in fetch's ledger is known by its folder's UIDVALIDITY and \
             its UID, which those files do not hold. For an IMAP account, search = \
             \"UNSEEN\" fetches only what fetchmail has not read",
            acct.name
        )));
    }
    let bytes = read(path, MAX_UIDS)?;
    let file = uidls::parse(&bytes)
        .map_err(|e| data(format!("{}:{}: {}", path.display(), e.line, e.what)))?;
    let root = ledger::default_root()
        .ok_or_else(|| config("cannot find a state directory: set XDG_STATE_HOME or HOME"))?;
    let mut ledger = Ledger::open(&root, &acct.ledger_id())?;
    let mut seeded = Seeded {
        format: file.format,
        added: 0,
        present: 0,
        other: 0,
        other_ids: Vec::new(),
    };
    seed(
        &mut ledger,
        &file,
        acct,
        &mut seeded,
        &path.display().to_string(),
    );
    if seeded.added > 0 {
        ledger.commit()?;
        // A large import is folded into a snapshot at once, as a run would
        // do after it, rather than leaving the next run a long journal.
        ledger.maybe_compact(|_| true)?;
    }
    Ok(seeded)
}

/// Record the account's entries of `file` in `ledger` (buffered: the
/// caller commits).
fn seed(ledger: &mut Ledger, file: &uidls::UidFile, acct: &Account, out: &mut Seeded, from: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The key run/pop3.rs gives a message with this UIDL.
    let mut key = String::new();
    for e in &file.entries {
        if !file.matches(e, &acct.user, &acct.host) {
            out.other += 1;
            let id = format!("{}@{}", e.user, e.host);
            if out.other_ids.len() < 5 && !out.other_ids.contains(&id) {
                out.other_ids.push(id);
            }
            continue;
        }
        key.clear();
        key.push_str("u:");
        key.push_str(&e.uid);
        if ledger.contains(&key) {
            out.present += 1;
            continue;
        }
        ledger.delivered(
            &key,
            Entry {
                // Not a file of ours: a note of where the entry came from.
                name: format!("imported from {from}"),
                size: 0,
                time: now,
                flags: String::new(),
            },
        );
        out.added += 1;
    }
}

/// For the fuzz targets: the rc reader and converter, and the UIDL readers.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let ctx = Context {
        source: "fuzz",
        local_user: Some("fuzz"),
    };
    if let Ok((text, _)) = convert_rc(data, &ctx) {
        // Whatever the input, the output is TOML.
        if let Err(e) = text.parse::<toml::Table>() {
            panic!("the output is not TOML: {e}\n{text}");
        }
    }
    let _ = uidls::parse(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_the_line() {
        let ctx = Context {
            source: "rc",
            local_user: Some("me"),
        };
        let e = convert_rc(b"poll a.example\n  user joe\n  proto pop3\n", &ctx).unwrap_err();
        assert_eq!(e.line, 3);
    }

    /// Words and bytes of the rc grammar, shuffled: what the fuzz target
    /// feeds, in a form proptest can shrink.
    fn rc_garbage() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            proptest::sample::select(vec![
                "poll ",
                "skip ",
                "defaults ",
                "set ",
                "user ",
                "pass ",
                "is ",
                "to ",
                "here ",
                "there ",
                "no",
                "keep ",
                "ssl ",
                "proto ",
                "pop3 ",
                "imap ",
                "auto ",
                "kpop ",
                "auth ",
                "password ",
                "folder ",
                "mda ",
                "smtphost ",
                "lmtp ",
                "limit ",
                "sslfingerprint ",
                "via ",
                "plugin ",
                "daemon ",
                "= ",
                "\"",
                "'",
                "\\",
                "\\x",
                "# c\n",
                "\n",
                ", ",
                "99 ",
                "-1 ",
                "*",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..4),
            "[a-z.]{1,6} ".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|v| v.concat())
    }

    fn rc_garbage_unquoted() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::strategy::Strategy;
        rc_garbage().prop_filter("no quote", |b| !b.contains(&b'"') && !b.contains(&b'\''))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// The fuzz entry point returns on anything (and, when the input
        /// converts, its output is TOML).
        #[test]
        fn garbage_never_panics(data in rc_garbage()) {
            crate::fuzzing::fetchmail_files(&data);
        }

        /// Whatever surrounds it, a password never reaches the output.
        #[test]
        fn passwords_never_reach_the_output(
            secret in "[A-Za-z0-9]{16}",
            // A quote left open before the keyword makes it part of a
            // string (a folder name, say), which is copied as it is.
            before in rc_garbage_unquoted(),
            after in rc_garbage(),
        ) {
            let ctx = Context { source: "rc", local_user: Some("me") };
            for pw in [format!("pass {secret}"), format!("password \"{secret}\""), format!("esmtppassword '{secret}'")] {
                let mut rc = b"poll h user u ".to_vec();
                rc.extend_from_slice(&before);
                rc.push(b'\n');
                rc.extend_from_slice(pw.as_bytes());
                rc.push(b' ');
                rc.extend_from_slice(&after);
                if let Ok((text, _)) = convert_rc(&rc, &ctx) {
                    proptest::prop_assert!(!text.contains(&secret), "{}", text);
                }
            }
        }
    }
}
