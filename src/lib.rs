//! The `fetch` mail fetcher, as a library for its binary (`main.rs`), its
//! tests and its fuzz targets.
//!
//! The data walks one way, and each layer imports only the ones below it
//! (`tests/layers.rs` checks):
//!
//! 1. `cli`: the raw command line (clap); `generate`: man page and
//!    completions from it.
//! 2. `config`: the command line and the config file resolved into a
//!    `Plan` of typed `Account`s; nothing after it sees `cli`.
//! 3. `schedule`: which accounts run when (once, `-j`, `--daemon`,
//!    `--idle`); `run`: one account's run, the only place that orders
//!    delivery, commit and server changes (`run/pop3.rs`, `run/imap/`;
//!    `run/idle.rs` watches IMAP folders for news).
//! 4. `import`: coming from fetchmail or mpop (`--import-fetchmailrc`,
//!    `--import-uidls`): their files read without I/O, the ledger seeded.
//! 5. `report`: what humans see (stderr, progress bars) and scripts read
//!    (`--json` events, documented in `report/events.rs`).
//!
//! Below them, knowing nothing of those four:
//!
//! - `pop3`, `imap`: the protocols (`pop3/proto.rs` and `imap/fetch.rs`
//!   are sans-io; `wire`: line ends and base64 they share); `net`: the only
//!   code that opens sockets and TLS sessions.
//! - `deliver`: Maildir, mbox, MDA, stdout behind one trait; `ledger`: the
//!   per-account record of what was delivered (lock, journal, snapshot);
//!   `durable`: directory fsync and atomic file replacement for both.
//! - `password`, `netrc`, `secret`: where passwords come from, and the type
//!   that holds one; `types`: the words every layer shares (protocol, TLS
//!   mode, auth method, destination).
//! - `error`: kinds, exit codes (one table), errors that keep their cause;
//!   `platform`: every call into the C library, with fallbacks for other
//!   Unixes; `signals`: the SIGTERM/SIGINT stop flag; `sanitize`: escaping
//!   untrusted text; `crash`: test-only crash points; `hash`: randomly
//!   keyed fast hash maps for keys a server chooses.

pub mod cli;
pub mod config;
pub mod crash;
pub mod deliver;
pub mod durable;
pub mod error;
pub mod generate;
pub mod hash;
pub mod imap;
pub mod import;
pub mod ledger;
pub mod net;
pub mod netrc;
pub mod oauth2;
pub mod password;
pub mod platform;
pub mod pop3;
pub mod report;
pub mod run;
pub mod sanitize;
pub mod sasl;
pub mod schedule;
pub mod secret;
pub mod signals;
pub mod types;
pub mod wire;

/// Entry points for the fuzz targets (`fuzz/`): the parsers that read what
/// servers and files send us, each fed arbitrary bytes. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    /// The POP3 status line and multi-line decoders.
    pub fn pop3_reply(data: &[u8]) {
        let _ = crate::pop3::proto::Status::parse(data);
        let _ = crate::wire::line_end(data, 8192);
        let split = data.first().map_or(1, |&b| usize::from(b).max(1));
        let mut body = crate::pop3::proto::BodyDecoder::new(true);
        let mut listing = crate::pop3::proto::ListingDecoder::new(1000);
        let mut out = Vec::new();
        for chunk in data.chunks(split) {
            out.clear();
            let used = body.decode(chunk, &mut out);
            // One more: a CR held back at the end of the previous chunk.
            assert!(used <= chunk.len() && out.len() <= chunk.len() + 1);
            let _ = listing.decode(chunk);
        }
        if let Ok(s) = std::str::from_utf8(data) {
            let _ = crate::pop3::proto::parse_uidl_line(s);
            let _ = crate::pop3::proto::parse_number_size(s);
        }
    }

    /// The IMAP FETCH reply reader, driven as a session drives it.
    pub fn imap_fetch(data: &[u8]) {
        let split = data.first().map_or(1, |&b| usize::from(b).max(1));
        let mut r = crate::imap::fetch::FetchReader::new("F1");
        let mut rest: &[u8] = &[];
        let mut chunks = data.chunks(split);
        for _ in 0..data.len() * 4 + 16 {
            if r.done() {
                break;
            }
            if r.needs_input() && rest.is_empty() {
                match chunks.next() {
                    Some(c) => rest = c,
                    None => break,
                }
            }
            match r.next(rest) {
                Ok((used, _)) => rest = &rest[used..],
                Err(_) => break,
            }
        }
    }

    /// The LIST reply reader (responses framed, `* LIST` lines parsed),
    /// driven over the whole input as the session drives it, and the names
    /// it gives turned into the modified UTF-7 a session holds.
    pub fn imap_list(data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let n = match crate::imap::list::response_end(rest) {
                Ok(Some(n)) => n,
                _ => break,
            };
            assert!(n > 0 && n <= rest.len());
            if let Ok(crate::imap::list::Reply::List(l)) =
                crate::imap::list::parse(&rest[..n], "F1")
            {
                let held = crate::imap::names::encode_mutf7(&l.name);
                assert_eq!(
                    crate::imap::names::decode_mutf7(&held).as_deref(),
                    Ok(&*l.name)
                );
                let _ = crate::imap::names::maildir_folder(&held, l.delimiter);
            }
            rest = &rest[n..];
        }
    }

    /// LMTP/SMTP replies, EHLO capabilities and the DATA encoding.
    pub fn smtp_reply(data: &[u8]) {
        crate::deliver::smtp::fuzz_reply(data);
    }

    /// The ledger's journal/snapshot reader.
    pub fn journal(data: &[u8]) {
        crate::ledger::fuzz_parse(data);
    }

    /// A SASL error challenge, as a server sends it (base64) and decoded.
    pub fn sasl_challenge(data: &[u8]) {
        let _ = crate::sasl::describe_challenge(data);
        if let Ok(s) = std::str::from_utf8(data)
            && let Some(raw) = crate::wire::base64_decode(s)
        {
            assert!(raw.len() <= s.len());
            let _ = crate::sasl::describe_challenge(&raw);
        }
    }

    /// An OAuth token or device endpoint's answer; the first two bytes are
    /// the HTTP status.
    pub fn oauth2_token(data: &[u8]) {
        let status = match data {
            [a, b, ..] => u16::from_be_bytes([*a, *b]) % 700,
            _ => 200,
        };
        let body = data.get(2..).unwrap_or(&[]);
        let _ = crate::oauth2::token::parse_token_reply(status, body);
        let _ = crate::oauth2::token::parse_device_reply(status, body);
    }

    /// fetchmail's rc grammar and its conversion (the output must be
    /// TOML), and the fetchmail and mpop UIDL file readers.
    pub fn fetchmail_files(data: &[u8]) {
        crate::import::fuzz(data);
    }

    /// Folder names: modified UTF-7 and the Maildir++ escaping.
    pub fn folder_name(data: &[u8]) {
        if let Ok(s) = std::str::from_utf8(data) {
            let _ = crate::imap::names::decode_mutf7(s);
            for d in [None, Some('/'), Some('.')] {
                if let Some(dir) = crate::imap::names::maildir_folder(s, d) {
                    assert!(!dir.contains('/') && !dir.contains('\0'), "{dir:?}");
                    assert!(dir != "." && dir != ".." && dir.starts_with('.'), "{dir:?}");
                }
            }
        }
    }
}
