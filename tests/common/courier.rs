//! Courier's POP3 server for tests: its message server, `courierpop3d`
//! (Debian's courier-pop), run for each connection on a Maildir the test
//! fills, behind a login front written here.
//!
//! Why a front of our own: Courier's login program (`courierpop3login`)
//! checks passwords through authdaemond at a socket path fixed at build
//! time (/run/courier/authdaemon/socket), which a test cannot point at its
//! own users without root and a system-wide daemon. Everything after the
//! login is Courier's own code: the listing, RETR, the UTF-8 handling, and
//! the "Cannot display Unicode content" message it sends in place of a
//! message with 8-bit headers to a client that did not ask for UTF-8 mode.
//! The front does what courierpop3login does before it hands over: the
//! same greeting and CAPA (with `UTF8 USER`), `UTF8` answered `+OK` in the
//! AUTHORIZATION state, and `UTF8=1` or `UTF8=0` in the environment of
//! `courierpop3d`, which then serves the rest of the session on the socket.
//!
//! courier-pop conflicts with dovecot-pop3d, so it is not installed:
//! `scripts/courier-unpack` unpacks it below `target/courier` (`.ci/run`
//! does), and its libraries come from ordinary packages (courier-authlib,
//! libcourier-unicode4, libidn12). Without it, [`Courier::start`] returns
//! `None` when [`require`] lets the test skip (`FETCH_REQUIRE` without
//! `courier`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::require::require;

/// Where `scripts/courier-unpack` puts the server, and where Debian
/// installs it.
fn pop3d() -> Result<PathBuf, String> {
    let unpacked = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/courier/root/usr/lib/courier/courier/courierpop3d");
    let installed = PathBuf::from("/usr/lib/courier/courier/courierpop3d");
    let found = [unpacked.clone(), installed]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no courierpop3d at {} (run scripts/courier-unpack)",
                unpacked.display()
            )
        })?;
    // It must also find its libraries.
    let out = Command::new(&found)
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} does not start: {e}", found.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("error while loading shared libraries") {
        return Err(format!("{}: {}", found.display(), err.trim()));
    }
    Ok(found)
}

/// What the front offers: Courier's CAPA (imap/pop3dcapa.c, with the
/// Debian default `POP3AUTH=""`, so no SASL line), or the same without
/// `UTF8 USER` (a server that does not offer UTF-8 mode).
fn capa(utf8: bool) -> String {
    format!(
        "+OK Here's what I can do:\r\nTOP\r\nUSER\r\nLOGIN-DELAY 10\r\nPIPELINING\r\n\
         UIDL\r\n{}LANG\r\nIMPLEMENTATION Courier Mail Server\r\n.\r\n",
        if utf8 { "UTF8 USER\r\n" } else { "" }
    )
}

/// A running Courier POP3 service for one user (at most 20 connections).
pub struct Courier {
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The user's Maildir, which Courier serves.
    pub maildir: PathBuf,
    /// Commands the client sent before the login front handed over
    /// (PASS redacted).
    commands: Arc<Mutex<Vec<String>>>,
    /// Sessions still running (Courier applies DELEs after its QUIT reply).
    active: Arc<AtomicUsize>,
    dir: tempfile::TempDir,
    serial: std::cell::Cell<u32>,
}

struct Front {
    pop3d: PathBuf,
    dir: PathBuf,
    maildir: PathBuf,
    user: String,
    password: String,
    offer_utf8: bool,
    commands: Arc<Mutex<Vec<String>>>,
}

impl Courier {
    /// Starts the service on a free port of 127.0.0.1, offering UTF-8 mode
    /// as Courier does when `offer_utf8`.
    pub fn start(offer_utf8: bool) -> Option<Courier> {
        let pop3d = match pop3d() {
            Ok(p) => p,
            Err(why) => {
                require("courier", Some(why));
                return None;
            }
        };
        // A directory without the sticky bit: courierpop3d refuses to run
        // when its working directory has it (Courier's way to lock out a
        // user), and /tmp has it.
        let dir = tempfile::Builder::new()
            .prefix("fetch-courier")
            .tempdir()
            .unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let active = Arc::new(AtomicUsize::new(0));
        let front = Arc::new(Front {
            pop3d,
            dir: dir.path().to_path_buf(),
            maildir: maildir.clone(),
            user: "fetchtest".into(),
            password: "courier-secret".into(),
            offer_utf8,
            commands: commands.clone(),
        });
        let running = active.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().take(20) {
                let Ok(s) = s else { return };
                let f = front.clone();
                running.fetch_add(1, Ordering::SeqCst);
                let running = running.clone();
                std::thread::spawn(move || {
                    if let Err(e) = f.session(s) {
                        eprintln!("courier front: {e}");
                    }
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Some(Courier {
            port,
            user: "fetchtest".into(),
            password: "courier-secret".into(),
            maildir,
            commands,
            active,
            dir,
            serial: std::cell::Cell::new(0),
        })
    }

    /// Puts `msgs` into the Maildir's `new/`, byte for byte, named so that
    /// Courier (which orders by the name's leading timestamp) lists them in
    /// the order given.
    pub fn fill<M: AsRef<[u8]>>(&self, msgs: &[M]) {
        for m in msgs {
            let n = self.serial.get() + 1;
            self.serial.set(n);
            let name = format!("{}.M{n}P1.fetchtest", 1_000_000_000 + n);
            let tmp = self.maildir.join("tmp").join(&name);
            std::fs::write(&tmp, m).unwrap();
            std::fs::rename(&tmp, self.maildir.join("new").join(&name)).unwrap();
        }
    }

    /// Messages left on the server (in `new/` and `cur/`), once every
    /// session has ended (Courier deletes after it has answered QUIT).
    pub fn left(&self) -> usize {
        let start = Instant::now();
        while self.active.load(Ordering::SeqCst) > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "a Courier session did not end"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        ["new", "cur"]
            .iter()
            .map(|d| std::fs::read_dir(self.maildir.join(d)).unwrap().count())
            .sum()
    }

    /// What the client said to the login front, in order.
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }

    /// Courier's log lines (its stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pop3d.log")).unwrap_or_default()
    }
}

/// One line from `s`, read a byte at a time so that nothing the client
/// sent after it is taken from the socket before Courier gets it; None at
/// EOF. At most 8 KiB.
fn read_line(s: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut b = [0u8];
    while line.len() < 8192 {
        if s.read(&mut b)? == 0 {
            return Ok(None);
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

impl Front {
    fn session(&self, mut s: TcpStream) -> std::io::Result<()> {
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.write_all(b"+OK Hello there.\r\n")?;
        let mut utf8 = false;
        let mut user: Option<String> = None;
        for _ in 0..100 {
            let Some(line) = read_line(&mut s)? else {
                return Ok(());
            };
            let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
            let verb = verb.to_ascii_uppercase();
            self.commands.lock().unwrap().push(if verb == "PASS" {
                "PASS [REDACTED]".into()
            } else {
                line.clone()
            });
            match verb.as_str() {
                "CAPA" => s.write_all(capa(self.offer_utf8).as_bytes())?,
                "UTF8" if self.offer_utf8 => {
                    utf8 = true;
                    s.write_all(b"+OK UTF8 enabled\r\n")?;
                }
                "USER" => {
                    user = Some(arg.to_string());
                    s.write_all(b"+OK Password required.\r\n")?;
                }
                "PASS" if user.as_deref() == Some(&self.user) && arg == self.password => {
                    return self.hand_over(s, utf8);
                }
                "PASS" => s.write_all(b"-ERR Login failed.\r\n")?,
                "QUIT" => {
                    s.write_all(b"+OK Better luck next time.\r\n")?;
                    return Ok(());
                }
                _ => s.write_all(b"-ERR Invalid command.\r\n")?,
            }
        }
        Ok(())
    }

    /// Runs courierpop3d on the socket, as courierpop3login does after a
    /// login: it answers the PASS (`+OK logged in.`) and serves the rest.
    fn hand_over(&self, s: TcpStream, utf8: bool) -> std::io::Result<()> {
        let peer_port = s.peer_addr()?.port().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("pop3d.log"))?;
        let stdin = OwnedFd::from(s.try_clone()?);
        let stdout = OwnedFd::from(s);
        let mut child = Command::new(&self.pop3d)
            .arg(&self.maildir)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TCPREMOTEIP", "127.0.0.1")
            .env("TCPREMOTEPORT", peer_port)
            .env("AUTHENTICATED", &self.user)
            .env("UTF8", if utf8 { "1" } else { "0" })
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(log))
            .spawn()?;
        // The socket is the child's now; it ends when the client quits or
        // goes away. Bounded all the same.
        let start = Instant::now();
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
