//! Large IMAP messages, and the replies to pipelined FETCH commands. A
//! scripted server tests what Dovecot does only under load or never:
//! replies to pipelined commands out of order (Dovecot runs FETCHes in
//! parallel, and on a busy machine one command's data overtakes another's),
//! bodies longer or shorter than their announced RFC822.SIZE (an estimate
//! on some servers), and a body far longer than announced. The rule
//! everywhere: the Maildir holds whole messages only, each once.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::{Env, maildir_messages};

const MIB: usize = 1 << 20;

/// How the server answers body FETCHes.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// In order, the bodies as they are.
    Honest,
    /// Holds the data of the first body FETCH until the second arrives,
    /// then sends the second's data before the first's.
    Swapped,
}

struct Msg {
    uid: u32,
    announced: usize,
    body: Vec<u8>,
}

/// Serve `msgs` on a free port; returns the port.
fn serve(msgs: Vec<Msg>, mode: Mode) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let msgs = Arc::new(msgs);
    std::thread::spawn(move || {
        for s in listener.incoming().take(20) {
            let Ok(s) = s else { return };
            let m = msgs.clone();
            std::thread::spawn(move || {
                let _ = session(s, &m, mode);
            });
        }
    });
    port
}

/// The UIDs a set like `1:3,7,9:*` names among `all`.
fn uids_in(set: &str, all: &[u32]) -> Vec<u32> {
    let max = all.iter().copied().max().unwrap_or(0);
    let mut out = Vec::new();
    for part in set.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let num = |s: &str| if s == "*" { max } else { s.parse().unwrap() };
        let (a, b) = (num(a), num(b));
        let (lo, hi) = (a.min(b), a.max(b));
        out.extend(all.iter().copied().filter(|u| (lo..=hi).contains(u)));
    }
    out
}

fn session(mut s: TcpStream, msgs: &[Msg], mode: Mode) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")?;
    let mut r = BufReader::new(s.try_clone()?);
    let all: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
    // Swapped: the first body FETCH's data and tag, until the second comes.
    let mut held: Option<(Vec<u8>, String)> = None;
    let mut swapped = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        let (tag, cmd) = line.split_once(' ').unwrap_or((line, ""));
        let upper = cmd.to_ascii_uppercase();
        let mut out: Vec<u8> = Vec::new();
        if upper.starts_with("CAPABILITY") {
            out.extend(b"* CAPABILITY IMAP4rev1 UIDPLUS\r\n");
        } else if upper.starts_with("SELECT") || upper.starts_with("EXAMINE") {
            out.extend(
                format!(
                    "* {} EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n* OK [UIDNEXT {}] n\r\n",
                    msgs.len(),
                    all.iter().max().unwrap_or(&0) + 1
                )
                .as_bytes(),
            );
        } else if upper.starts_with("UID SEARCH") {
            let set = cmd.split_whitespace().nth(3).unwrap_or("1:*");
            let found: Vec<String> = uids_in(set, &all).iter().map(u32::to_string).collect();
            out.extend(format!("* SEARCH {}\r\n", found.join(" ")).as_bytes());
        } else if upper.starts_with("UID FETCH") {
            let mut words = cmd.splitn(4, ' ');
            let set = words.nth(2).unwrap();
            let query = words.next().unwrap_or("");
            for uid in uids_in(set, &all) {
                let (seq, m) = msgs
                    .iter()
                    .enumerate()
                    .find(|(_, m)| m.uid == uid)
                    .map(|(i, m)| (i + 1, m))
                    .unwrap();
                if query.contains("RFC822.SIZE") {
                    out.extend(
                        format!(
                            "* {seq} FETCH (UID {uid} RFC822.SIZE {} FLAGS () INTERNALDATE \
                             \"17-Jul-2026 02:44:25 +0000\")\r\n",
                            m.announced
                        )
                        .as_bytes(),
                    );
                } else if query.contains("BODY.PEEK[]") {
                    out.extend(
                        format!("* {seq} FETCH (UID {uid} BODY[] {{{}}}\r\n", m.body.len())
                            .as_bytes(),
                    );
                    out.extend(&m.body);
                    out.extend(b")\r\n");
                } else {
                    out.extend(format!("* {seq} FETCH (UID {uid} FLAGS ())\r\n").as_bytes());
                }
            }
            if mode == Mode::Swapped && !swapped && query.contains("BODY.PEEK[]") {
                match held.take() {
                    None => {
                        held = Some((out, tag.to_string()));
                        continue;
                    }
                    Some((first, first_tag)) => {
                        swapped = true;
                        out.extend(first);
                        out.extend(
                            format!("{first_tag} OK first\r\n{tag} OK second\r\n").as_bytes(),
                        );
                        s.write_all(&out)?;
                        continue;
                    }
                }
            }
        } else if upper.starts_with("LOGOUT") {
            s.write_all(format!("* BYE bye\r\n{tag} OK done\r\n").as_bytes())?;
            return Ok(());
        } else if upper.starts_with("ENABLE") {
            s.write_all(format!("{tag} BAD no ENABLE here\r\n").as_bytes())?;
            continue;
        }
        out.extend(format!("{tag} OK done\r\n").as_bytes());
        s.write_all(&out)?;
    }
}

/// A message of about `len` bytes in CRLF lines (what a server sends),
/// exactly `len` long.
fn big(len: usize, seed: u8) -> Vec<u8> {
    let mut v = format!("Subject: big {seed}\r\n\r\n").into_bytes();
    let mut i = 0u32;
    while v.len() < len {
        v.extend(format!("{seed} line {i} of a large message, to fill it up\r\n").as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

fn lf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        if !(c == b'\r' && b.get(i + 1) == Some(&b'\n')) {
            out.push(c);
        }
    }
    out
}

fn fetch(env: &Env, port: u16) -> common::Out {
    let port = port.to_string();
    env.run(&[
        "--imap",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "--auth",
        "user",
        "-u",
        "tester",
        "--password-command",
        "echo secret",
        "--timeout",
        "5",
        "--maildir",
        env.maildir().to_str().unwrap(),
    ])
}

fn small(uid: u32) -> Msg {
    let body = format!("Subject: small {uid}\r\n\r\nhello\r\n").into_bytes();
    Msg {
        uid,
        announced: body.len(),
        body,
    }
}

/// Every message sorted, as the Maildir should hold them.
fn want(msgs: &[Msg]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = msgs.iter().map(|m| lf(&m.body)).collect();
    v.sort();
    v
}

fn assert_holds(env: &Env, want: &[Vec<u8>]) {
    let got = maildir_messages(&env.maildir());
    assert!(
        got == want,
        "not every message arrived exactly: got sizes {:?}, want {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        want.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(common::tmp_files(&env.maildir()).is_empty());
}

#[test]
fn large_messages_and_wrong_announced_sizes_arrive_exactly() {
    let large = big(5 * MIB, 1);
    let longer = big(5 * MIB / 2, 2); // announced as 1.5 MiB
    let shorter = big(3 * MIB, 3); // announced as 6 MiB
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: large.len(),
            body: large,
        },
        small(3),
        Msg {
            uid: 4,
            announced: 3 * MIB / 2,
            body: longer,
        },
        Msg {
            uid: 5,
            announced: 6 * MIB,
            body: shorter,
        },
        small(6),
    ];
    let want = want(&msgs);
    let port = serve(msgs, Mode::Honest);
    let env = Env::new();
    let out = fetch(&env, port);
    assert_eq!(out.code, 0, "{out:?}");
    assert_holds(&env, &want);
    // Nothing more next time.
    assert_eq!(fetch(&env, port).code, 0);
    assert_eq!(maildir_messages(&env.maildir()).len(), 6);
}

#[test]
fn replies_to_pipelined_fetches_out_of_order_arrive_exactly() {
    // The large message has a FETCH of its own, so three commands are on
    // their way at once; the server answers the second before the first.
    let large = big(5 * MIB, 4);
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: large.len(),
            body: large,
        },
        small(3),
    ];
    let want = want(&msgs);
    let port = serve(msgs, Mode::Swapped);
    let env = Env::new();
    let out = fetch(&env, port);
    assert_eq!(out.code, 0, "{out:?}");
    assert_holds(&env, &want);
    assert_eq!(fetch(&env, port).code, 0);
    assert_eq!(maildir_messages(&env.maildir()).len(), 3);
}

#[test]
fn a_body_far_longer_than_announced_is_refused_and_nothing_is_half_written() {
    let body = big(4 * MIB, 9);
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: MIB,
            body,
        },
    ];
    let port = serve(msgs, Mode::Honest);
    let env = Env::new();
    let out = fetch(&env, port);
    assert_eq!(out.code, 76, "{out:?}");
    assert!(
        out.stderr
            .contains("announced 1048576 bytes and sends 4194304"),
        "{}",
        out.stderr
    );
    // The small one was fetched in the same command; whether it was
    // delivered or not, nothing partial is left behind.
    let got = maildir_messages(&env.maildir());
    assert!(got.iter().all(|m| m.len() < 100), "no partial message");
    assert!(common::tmp_files(&env.maildir()).is_empty());
}
