//! `--idle` against a scripted IMAP server that misbehaves once IDLE has
//! begun: one that goes silent (it never answers DONE) must not keep fetch
//! from stopping on SIGTERM beyond its --timeout, and one that floods the
//! idle connection must be cut off (and the watcher reconnect) rather than
//! buffered without end.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Env;
use common::args::scripted_imap;
use common::dest::Dest;
use common::spawned::Spawned;

#[derive(Clone, Copy)]
enum AfterIdle {
    /// "+ idling", then nothing at all, not even the reply to DONE.
    Silent,
    /// "+ idling", then keepalives as fast as the socket takes them.
    Flood,
}

struct Server {
    port: u16,
    idles: Arc<AtomicUsize>,
    commands: Arc<Mutex<Vec<String>>>,
}

/// An IMAP server with an empty INBOX that accepts any login and serves
/// every connection on a thread of its own (a daemon opens several).
fn serve(after_idle: AfterIdle) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let idles = Arc::new(AtomicUsize::new(0));
    let commands = Arc::new(Mutex::new(Vec::new()));
    let (i2, c2) = (idles.clone(), commands.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(s) = stream else { return };
            let (i3, c3) = (i2.clone(), c2.clone());
            std::thread::spawn(move || {
                let _ = session(s, after_idle, &i3, &c3);
            });
        }
    });
    Server {
        port,
        idles,
        commands,
    }
}

fn session(
    mut s: TcpStream,
    after_idle: AfterIdle,
    idles: &AtomicUsize,
    commands: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(b"* OK ready\r\n")?;
    let mut r = BufReader::new(s.try_clone()?);
    for _ in 0..1000 {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        commands.lock().unwrap().push(line.clone());
        let (tag, cmd) = line.split_once(' ').unwrap_or(("*", ""));
        let verb = cmd
            .split_ascii_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply = match verb.as_str() {
            "CAPABILITY" => format!("* CAPABILITY IMAP4rev1 IDLE\r\n{tag} OK done\r\n"),
            "LOGIN" => format!("{tag} OK logged in\r\n"),
            "SELECT" | "EXAMINE" => format!(
                "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n\
                 {tag} OK done\r\n"
            ),
            "UID" => format!("* SEARCH\r\n{tag} OK done\r\n"),
            "LOGOUT" => format!("* BYE bye\r\n{tag} OK done\r\n"),
            "IDLE" => {
                idles.fetch_add(1, Ordering::SeqCst);
                s.write_all(b"+ idling\r\n")?;
                match after_idle {
                    AfterIdle::Silent => {
                        // Swallow DONE and anything else; never answer.
                        let mut sink = String::new();
                        while r.read_line(&mut sink)? > 0 {
                            commands.lock().unwrap().push(sink.trim_end().to_string());
                            sink.clear();
                        }
                        return Ok(());
                    }
                    AfterIdle::Flood => {
                        let chunk = "* OK still here\r\n".repeat(4096);
                        loop {
                            s.write_all(chunk.as_bytes())?;
                        }
                    }
                }
            }
            _ => format!("{tag} OK done\r\n"),
        };
        s.write_all(reply.as_bytes())?;
    }
    Ok(())
}

/// fetch watching the server on `port` with IDLE (polling only hourly).
fn spawn(env: &Env, port: u16) -> Spawned {
    let mut args = scripted_imap(port);
    args.extend(["--timeout", "2", "--idle", "--daemon", "3600", "-v"].map(String::from));
    args.extend(Dest::Maildir.args(env));
    env.spawn(&args)
}

#[test]
fn a_server_silent_during_idle_does_not_hold_up_a_stop() {
    let env = Env::new();
    let server = serve(AfterIdle::Silent);
    let mut child = spawn(&env, server.port);
    child.wait_until("IDLE", Duration::from_secs(10), || {
        server.idles.load(Ordering::SeqCst) >= 1
    });
    let exit = child.stop(Duration::from_secs(15));
    assert_eq!(exit.code, 0, "{}", exit.stderr);
    // DONE goes unanswered: the reply clock (--timeout 2) ends the wait.
    assert!(
        exit.took < Duration::from_secs(5),
        "{:?}: {}",
        exit.took,
        exit.stderr
    );
    assert!(
        server.commands.lock().unwrap().iter().any(|c| c == "DONE"),
        "the watcher ended its IDLE"
    );
}

#[test]
fn a_flood_during_idle_is_cut_off_and_the_watcher_reconnects() {
    let env = Env::new();
    let server = serve(AfterIdle::Flood);
    let mut child = spawn(&env, server.port);
    // A second IDLE means the first connection was given up and a new one
    // made.
    child.wait_until("a second IDLE", Duration::from_secs(10), || {
        server.idles.load(Ordering::SeqCst) >= 2
    });
    let pid = child.id();
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let exit = child.stop(Duration::from_secs(15));
    let stderr = exit.stderr;
    assert_eq!(exit.code, 0, "{stderr}");
    assert!(
        stderr.contains("more than an idle session could need") && stderr.contains("reconnecting"),
        "{stderr}"
    );
    assert!(rss_kb < 64 * 1024, "peak RSS {rss_kb} kB while flooded");
}
