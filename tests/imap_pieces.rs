//! Large IMAP messages arrive in pipelined `BODY.PEEK[]<offset.length>`
//! pieces (2 MiB each). A scripted server tests what Dovecot never does:
//! a message exactly a whole number of pieces long, one longer or shorter
//! than its announced RFC822.SIZE, one that stops arriving half-way, a
//! server that sends more than a piece, and pieces out of order. The rule
//! everywhere: the Maildir holds whole messages only, each once.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Env, maildir_messages};

const PIECE: usize = 2 << 20;

/// What the server does with a request for a piece.
#[derive(Clone, Copy, PartialEq)]
enum Pieces {
    /// Serves the bytes asked for.
    Honest,
    /// Sends nothing for pieces from this offset on (the message vanished).
    StopAt(usize),
    /// Sends one byte more than asked for.
    TooMuch,
    /// Answers the first two piece commands with each other's data.
    Swapped,
}

struct Msg {
    uid: u32,
    announced: usize,
    body: Vec<u8>,
}

struct Server {
    port: u16,
    pieces: Arc<Mutex<Pieces>>,
}

fn serve(msgs: Vec<Msg>, pieces: Pieces) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let msgs = Arc::new(msgs);
    let pieces = Arc::new(Mutex::new(pieces));
    let p2 = pieces.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(20) {
            let Ok(s) = s else { return };
            let (m, p) = (msgs.clone(), p2.clone());
            std::thread::spawn(move || {
                let _ = session(s, &m, *p.lock().unwrap());
            });
        }
    });
    Server { port, pieces }
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

fn session(mut s: TcpStream, msgs: &[Msg], pieces: Pieces) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")?;
    let mut r = BufReader::new(s.try_clone()?);
    let all: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
    let mut held: Option<Vec<u8>> = None; // Swapped: the first piece's reply
    let mut swaps = 0;
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
                } else if let Some(part) = query.split_once("BODY.PEEK[]<") {
                    let (o, l) = part.1.trim_end_matches(">)").split_once('.').unwrap();
                    let (o, l): (usize, usize) = (o.parse().unwrap(), l.parse().unwrap());
                    if matches!(pieces, Pieces::StopAt(at) if o >= at) {
                        continue;
                    }
                    let start = o.min(m.body.len());
                    let mut end = (o + l).min(m.body.len());
                    let mut data = m.body[start..end].to_vec();
                    if pieces == Pieces::TooMuch {
                        end += 1;
                        data.push(b'!');
                    }
                    let _ = end;
                    let mut reply = format!(
                        "* {seq} FETCH (UID {uid} BODY[]<{o}> {{{}}}\r\n",
                        data.len()
                    )
                    .into_bytes();
                    reply.extend(&data);
                    reply.extend(b")\r\n");
                    if pieces == Pieces::Swapped && swaps < 2 {
                        swaps += 1;
                        match held.take() {
                            None => {
                                held = Some(reply);
                                continue;
                            }
                            Some(first) => {
                                out.extend(reply);
                                out.extend(first);
                                continue;
                            }
                        }
                    }
                    out.extend(reply);
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

#[test]
fn whole_pieces_and_wrong_announced_sizes_arrive_exactly() {
    let exact = big(2 * PIECE, 1); // two full pieces, nothing after
    let longer = big(5 * PIECE / 2, 2); // announced as 1.5 pieces
    let shorter = big(3 * PIECE / 2, 3); // announced as 3 pieces
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: exact.len(),
            body: exact.clone(),
        },
        small(3),
        Msg {
            uid: 4,
            announced: 3 * PIECE / 2,
            body: longer.clone(),
        },
        Msg {
            uid: 5,
            announced: 3 * PIECE,
            body: shorter.clone(),
        },
        small(6),
    ];
    let want: Vec<Vec<u8>> = {
        let mut v: Vec<Vec<u8>> = msgs.iter().map(|m| lf(&m.body)).collect();
        v.sort();
        v
    };
    let server = serve(msgs, Pieces::Honest);
    let env = Env::new();
    let out = fetch(&env, server.port);
    assert_eq!(out.code, 0, "{out:?}");
    let got = maildir_messages(&env.maildir());
    assert!(
        got == want,
        "not every message arrived exactly: got sizes {:?}, want {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        want.iter().map(Vec::len).collect::<Vec<_>>()
    );
    // Nothing more next time.
    assert_eq!(fetch(&env, server.port).code, 0);
    assert_eq!(maildir_messages(&env.maildir()).len(), 6);
}

#[test]
fn a_message_that_stops_arriving_is_dropped_and_fetched_next_time() {
    let body = big(5 * PIECE / 2, 7);
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: body.len(),
            body: body.clone(),
        },
        small(3),
    ];
    let server = serve(msgs, Pieces::StopAt(PIECE));
    let env = Env::new();
    let out = fetch(&env, server.port);
    assert_eq!(out.code, 0, "{out:?}");
    let got = maildir_messages(&env.maildir());
    assert_eq!(got.len(), 2, "only the small ones");
    assert!(!got.contains(&lf(&body)));
    assert!(got.iter().all(|m| m.len() < 100), "no partial message");
    // The server recovers: the large one comes, once; the others stay once.
    *server.pieces.lock().unwrap() = Pieces::Honest;
    let out = fetch(&env, server.port);
    assert_eq!(out.code, 0, "{out:?}");
    let got = maildir_messages(&env.maildir());
    assert_eq!(got.len(), 3);
    assert!(got.contains(&lf(&body)));
}

#[test]
fn more_than_a_piece_or_pieces_out_of_order_are_refused() {
    for (pieces, what) in [
        (Pieces::TooMuch, "sent more"),
        (Pieces::Swapped, "out of order"),
    ] {
        let body = big(5 * PIECE / 2, 9);
        let msgs = vec![Msg {
            uid: 1,
            announced: body.len(),
            body,
        }];
        let server = serve(msgs, pieces);
        let env = Env::new();
        let out = fetch(&env, server.port);
        assert_eq!(out.code, 76, "{out:?}");
        assert!(out.stderr.contains(what), "{}", out.stderr);
        assert!(maildir_messages(&env.maildir()).is_empty());
        assert!(common::tmp_files(&env.maildir()).is_empty());
    }
}
