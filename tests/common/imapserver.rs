//! A scripted in-process IMAP server: enough IMAP for fetch's download path
//! (CAPABILITY, LOGIN, LIST, SELECT/EXAMINE, UID SEARCH, UID FETCH of
//! metadata and of whole bodies, LOGOUT), plain TCP on 127.0.0.1, and
//! hooks that make it misbehave the ways a broken or hostile server does.
//! Every folder it lists holds the same messages.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Env;
use super::args::scripted_imap;
use super::dest::Dest;
use super::mail::lf;

pub struct Msg {
    pub uid: u32,
    /// The RFC822.SIZE announced (may differ from the body's length).
    pub announced: usize,
    /// The body as sent (CRLF lines).
    pub body: Vec<u8>,
}

impl Msg {
    /// Message `uid` with `body`, its RFC822.SIZE announced as `announced`.
    pub fn announced_as(uid: u32, body: Vec<u8>, announced: usize) -> Msg {
        Msg {
            uid,
            announced,
            body,
        }
    }

    /// Message `uid` with `body`, announced truly.
    pub fn new(uid: u32, body: Vec<u8>) -> Msg {
        let announced = body.len();
        Msg::announced_as(uid, body, announced)
    }
}

/// What a Maildir should hold of `msgs`: their bodies with LF line ends,
/// sorted (a multiset, like `maildir_messages`).
pub fn stored(msgs: &[Msg]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = msgs.iter().map(|m| lf(&m.body)).collect();
    v.sort();
    v
}

/// A small message with UID `uid`.
pub fn small(uid: u32) -> Msg {
    Msg::new(
        uid,
        format!("Subject: small {uid}\r\n\r\nhello\r\n").into_bytes(),
    )
}

/// A message in CRLF lines (what a server sends), exactly `len` long.
pub fn big(len: usize, seed: u8) -> Vec<u8> {
    let mut v = format!("Subject: big {seed}\r\n\r\n").into_bytes();
    let mut i = 0u32;
    while v.len() < len {
        v.extend(format!("{seed} line {i} of a large message, to fill it up\r\n").as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// Makes the reply to a body FETCH of a message (number `seq`): the bytes,
/// and whether to close the connection after them.
pub type BodyReply = fn(usize, &Msg) -> (Vec<u8>, bool);

/// What the server does; `Script::new` gives an honest one.
pub struct Script {
    pub msgs: Vec<Msg>,
    /// The greeting, sent as is.
    pub greeting: Vec<u8>,
    /// Sent after the greeting, one byte every 200 ms, forever (a greeting
    /// that never ends).
    pub dribble: bool,
    /// SELECT's UIDVALIDITY line (None: not sent at all).
    pub uid_validity: Option<u32>,
    /// Folder names LIST returns, as they go on the wire (quoted or a
    /// literal), with "/" as the delimiter, each optionally after its
    /// attributes (`(\\All) "[Gmail]/All Mail"`). INBOX is always there.
    pub list: Vec<String>,
    /// Hold the data of the first body FETCH until the second comes, then
    /// send the second's before the first's (as a server running pipelined
    /// commands in parallel may).
    pub swap_first_two: bool,
    /// The untagged reply to a body FETCH; None: the honest one.
    pub body_reply: Option<BodyReply>,
    /// ENABLE takes UTF8=ACCEPT (RFC 6855); `list` then holds UTF-8 names
    /// and SELECT knows a folder only by its UTF-8 name. Without it ENABLE
    /// is refused (BAD).
    pub utf8_accept: bool,
    /// Every command received, in order, marked with a leading `+` when
    /// more bytes from the client were already waiting right after it:
    /// it came pipelined with the next one, before any reply to it.
    pub log: Arc<Mutex<Vec<String>>>,
    /// What the server is from its second connection on (the same
    /// address, so the same account; e.g. a folder renumbered meanwhile).
    pub then: Option<Arc<Script>>,
}

impl Script {
    pub fn new(msgs: Vec<Msg>) -> Script {
        Script {
            msgs,
            greeting: b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n".to_vec(),
            dribble: false,
            uid_validity: Some(1),
            list: Vec::new(),
            swap_first_two: false,
            body_reply: None,
            utf8_accept: false,
            log: Arc::default(),
            then: None,
        }
    }
}

/// The honest reply to a body FETCH.
pub fn honest_body(seq: usize, m: &Msg) -> Vec<u8> {
    let mut out = format!(
        "* {seq} FETCH (UID {} BODY[] {{{}}}\r\n",
        m.uid,
        m.body.len()
    )
    .into_bytes();
    out.extend(&m.body);
    out.extend(b")\r\n");
    out
}

/// The name a mailbox argument (atom, quoted string or literal) stands for.
fn wire_name(arg: &str) -> String {
    if let Some(q) = arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            out.push(if c == '\\' {
                chars.next().unwrap_or(c)
            } else {
                c
            });
        }
        out
    } else if arg.starts_with('{') {
        arg.split_once("\r\n").map_or("", |x| x.1).to_string()
    } else {
        arg.to_string()
    }
}

/// Serve `script` on a free port (up to 20 connections, one thread each);
/// returns the port.
pub fn serve(script: Script) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for (i, s) in listener.incoming().take(20).enumerate() {
            let Ok(s) = s else { return };
            let sc = match &script.then {
                Some(then) if i > 0 => then.clone(),
                _ => script.clone(),
            };
            std::thread::spawn(move || {
                let _ = session(s, &sc);
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
        let num = |s: &str| {
            if s == "*" {
                max
            } else {
                s.parse().unwrap_or(0)
            }
        };
        let (a, b) = (num(a), num(b));
        let (lo, hi) = (a.min(b), a.max(b));
        out.extend(all.iter().copied().filter(|u| (lo..=hi).contains(u)));
    }
    out
}

fn session(mut s: TcpStream, sc: &Script) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(&sc.greeting)?;
    if sc.dribble {
        for _ in 0..300 {
            std::thread::sleep(Duration::from_millis(200));
            s.write_all(b"a")?;
        }
        return Ok(());
    }
    let mut r = BufReader::new(s.try_clone()?);
    let msgs = &sc.msgs;
    let all: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
    // swap_first_two: the first body FETCH's data and tag, until the second.
    let mut held: Option<(Vec<u8>, String)> = None;
    let mut swapped = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        let (tag, cmd) = line.split_once(' ').unwrap_or((line, ""));
        let ahead = if r.buffer().is_empty() { "" } else { "+" };
        sc.log.lock().unwrap().push(format!("{ahead}{cmd}"));
        let upper = cmd.to_ascii_uppercase();
        let mut out: Vec<u8> = Vec::new();
        if upper.starts_with("CAPABILITY") {
            out.extend(b"* CAPABILITY IMAP4rev1 UIDPLUS\r\n");
        } else if upper.starts_with("LIST") {
            out.extend(b"* LIST () \"/\" INBOX\r\n");
            for entry in &sc.list {
                let (attrs, name) = split_attrs(entry);
                out.extend(format!("* LIST ({attrs}) \"/\" {name}\r\n").as_bytes());
            }
        } else if upper.starts_with("SELECT") || upper.starts_with("EXAMINE") {
            // Only a folder LIST gave, by its real name.
            let arg = cmd.split_once(' ').map_or("", |x| x.1);
            let known = wire_name(arg).eq_ignore_ascii_case("INBOX")
                || sc
                    .list
                    .iter()
                    .any(|n| wire_name(split_attrs(n).1) == wire_name(arg))
                    && !wire_name(arg).contains("refused");
            if !known {
                s.write_all(format!("{tag} NO [NONEXISTENT] no {arg}\r\n").as_bytes())?;
                continue;
            }
            out.extend(format!("* {} EXISTS\r\n", msgs.len()).as_bytes());
            if let Some(v) = sc.uid_validity {
                out.extend(format!("* OK [UIDVALIDITY {v}] v\r\n").as_bytes());
            }
            out.extend(
                format!(
                    "* OK [UIDNEXT {}] n\r\n",
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
            let set = words.nth(2).unwrap_or("");
            let query = words.next().unwrap_or("");
            let body = query.contains("BODY.PEEK[]");
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
                } else if body {
                    match sc.body_reply {
                        None => out.extend(honest_body(seq, m)),
                        Some(f) => {
                            let (bytes, close) = f(seq, m);
                            out.extend(bytes);
                            if close {
                                s.write_all(&out)?;
                                return Ok(());
                            }
                        }
                    }
                } else {
                    out.extend(format!("* {seq} FETCH (UID {uid} FLAGS ())\r\n").as_bytes());
                }
            }
            if sc.swap_first_two && !swapped && body {
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
        } else if upper.starts_with("ENABLE") && sc.utf8_accept {
            if upper.contains(" UTF8=ACCEPT") {
                out.extend(b"* ENABLED UTF8=ACCEPT\r\n");
            }
        } else if upper.starts_with("ENABLE") {
            s.write_all(format!("{tag} BAD no ENABLE here\r\n").as_bytes())?;
            continue;
        }
        out.extend(format!("{tag} OK done\r\n").as_bytes());
        s.write_all(&out)?;
    }
}

/// Run fetch against the server on `port` (plaintext LOGIN allowed, a
/// 5 s timeout unless `extra` gives one, into the environment's Maildir),
/// with `extra` arguments.
pub fn fetch(env: &Env, port: u16, extra: &[&str]) -> super::Out {
    let mut args = scripted_imap(port);
    args.extend(Dest::Maildir.args(env));
    args.extend(extra.iter().map(|s| s.to_string()));
    env.run_args(&args)
}

/// A `Script::list` entry's attributes and name.
fn split_attrs(entry: &str) -> (&str, &str) {
    match entry.strip_prefix('(').and_then(|r| r.split_once(") ")) {
        Some((attrs, name)) => (attrs, name),
        None => ("", entry),
    }
}
