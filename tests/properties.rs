//! Properties, over the library's public API: the POP3 multi-line decoder
//! undoes what a server's dot-stuffing does, for any message and any split
//! of the stream; mboxrd quoting round-trips; the ledger keeps exactly what
//! was committed across reopens and compactions. (Folder-name escaping is
//! property-tested in src/imap/names.rs.)

use std::collections::HashMap;

use proptest::prelude::*;

use fetch::deliver::mboxrd::FromQuoter;
use fetch::ledger::{Entry, FolderState, Ledger};
use fetch::pop3::proto::BodyDecoder;

/// What a POP3 server sends for a message: every line CRLF-terminated (a
/// missing final line break added), lines starting with '.' stuffed, then
/// the terminator.
fn server_wire(msg: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = msg.split(|&b| b == b'\n').collect();
    if msg.ends_with(b"\n") {
        lines.pop();
    }
    let mut out = Vec::new();
    for l in lines {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(l);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// What we should store: CRLF -> LF, and a final line break.
fn stored(msg: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = msg.split(|&b| b == b'\n').collect();
    if msg.ends_with(b"\n") {
        lines.pop();
    }
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.strip_suffix(b"\r").unwrap_or(l));
        out.push(b'\n');
    }
    out
}

/// Message-like bytes: lines made of dots, "From ", CR, NUL and letters.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b"From ".to_vec()),
        Just(b">From ".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\0".to_vec()),
        "[a-z ]{0,8}".prop_map(|s| s.into_bytes()),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn dot_unstuffing_undoes_stuffing(msg in message(), split in 1usize..17, tail in "[A-Z+ ]{0,6}") {
        let mut wire = server_wire(&msg);
        let end = wire.len();
        wire.extend_from_slice(tail.as_bytes()); // the next reply
        let mut d = BodyDecoder::new(true);
        let mut out = Vec::new();
        let mut used = 0;
        for chunk in wire.chunks(split) {
            if d.done() {
                break;
            }
            used += d.decode(chunk, &mut out);
        }
        prop_assert!(d.done());
        prop_assert_eq!(used, end, "the next reply's bytes were not consumed");
        prop_assert_eq!(out, stored(&msg));
    }

    #[test]
    fn mboxrd_quoting_round_trips(msg in message(), split in 1usize..17) {
        let msg: Vec<u8> = msg.into_iter().filter(|&b| b != b'\r').collect();
        let mut q = FromQuoter::new();
        let mut out = Vec::new();
        for chunk in msg.chunks(split) {
            q.quote(chunk, &mut out);
        }
        q.finish(&mut out);
        // No line of the result starts with "From " (readers would split there).
        prop_assert!(!out.starts_with(b"From ") && !out.windows(6).any(|w| w == b"\nFrom "));
        // Undo the quoting as a reader does: drop one '>' from ^>+From .
        let mut back = Vec::new();
        for line in out.split_inclusive(|&b| b == b'\n') {
            let gt = line.iter().take_while(|&&b| b == b'>').count();
            if gt > 0 && line[gt..].starts_with(b"From ") {
                back.extend_from_slice(&line[1..]);
            } else {
                back.extend_from_slice(line);
            }
        }
        let mut want = msg.clone();
        if !want.is_empty() && !want.ends_with(b"\n") {
            want.push(b'\n');
        }
        prop_assert_eq!(back, want);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Delivered(u8, u8),
    Removed(u8),
    Flags(u8, String),
    Folder(u8, u32),
    Commit,
    Reopen,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), any::<u8>()).prop_map(|(k, n)| Op::Delivered(k % 16, n)),
        any::<u8>().prop_map(|k| Op::Removed(k % 16)),
        (any::<u8>(), "[A-Za-z\\\\ ]{0,12}").prop_map(|(k, f)| Op::Flags(k % 16, f)),
        (any::<u8>(), any::<u32>()).prop_map(|(f, u)| Op::Folder(f % 4, u)),
        Just(Op::Commit),
        Just(Op::Reopen),
        Just(Op::Compact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The ledger holds exactly what was committed (and, after a reopen,
    /// nothing that was only buffered): compared with a plain model.
    #[test]
    fn ledger_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let root = tempfile::tempdir().unwrap();
        let acct = "pop3:model@example.org";
        let key = |k: u8| format!("u:\u{e9}/{k} x");
        let mut ledger = Some(Ledger::open(root.path(), acct).unwrap());
        // Committed state, and state including what is buffered.
        let mut committed: (HashMap<String, Entry>, HashMap<String, FolderState>) = Default::default();
        let mut live = committed.clone();
        for o in ops {
            let l = ledger.as_mut().unwrap();
            match o {
                Op::Delivered(k, n) => {
                    let e = Entry { name: format!("name{n}"), size: u64::from(n), time: 7, flags: String::new() };
                    l.delivered(&key(k), e.clone());
                    live.0.insert(key(k), e);
                }
                Op::Removed(k) => {
                    l.removed(&key(k));
                    live.0.remove(&key(k));
                }
                Op::Flags(k, f) => {
                    l.set_flags(&key(k), &f);
                    if let Some(e) = live.0.get_mut(&key(k)) {
                        e.flags = f;
                    }
                }
                Op::Folder(f, u) => {
                    let st = FolderState { uid_validity: u | 1, last_uid: u / 2, mod_seq: u64::from(u), local_stamp: 0 };
                    l.set_folder(&format!("F{f}"), st.clone());
                    live.1.insert(format!("F{f}"), st);
                }
                Op::Commit => {
                    l.commit().unwrap();
                    committed = live.clone();
                }
                Op::Compact => {
                    l.compact(|_| true).unwrap();
                    committed = live.clone();
                }
                Op::Reopen => {
                    // A crash: buffered records are lost, the lock released.
                    drop(ledger.take());
                    ledger = Some(Ledger::open(root.path(), acct).unwrap());
                    live = committed.clone();
                }
            }
            let l = ledger.as_ref().unwrap();
            let mut have: Vec<(String, Entry)> = l.entries().map(|(k, e)| (k.clone(), e.clone())).collect();
            have.sort_by(|a, b| a.0.cmp(&b.0));
            let mut want: Vec<(String, Entry)> = live.0.iter().map(|(k, e)| (k.clone(), e.clone())).collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(have, want);
            for (f, st) in &live.1 {
                prop_assert_eq!(l.folder(f), Some(st));
            }
        }
    }
}
