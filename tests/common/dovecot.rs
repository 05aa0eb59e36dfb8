//! A real, private Dovecot for integration tests, started through
//! `scripts/dovecot-sandbox` (the one place that knows how to configure it).
//!
//! Each [`Dovecot`] owns a temporary directory holding the configuration, a
//! self-signed certificate (`cafile`), the log (`dovecot.log`) and the
//! server-side Maildir of its single user `fetchtest`. It listens on
//! 127.0.0.1 only, with POP3, POP3S (implicit TLS), IMAP and IMAPS on ports
//! picked by binding 127.0.0.1:0. Dropping it stops the server.
//!
//! Without Dovecot installed, [`Dovecot::start`] returns `None` when
//! [`require`] lets the test skip (`FETCH_REQUIRE` without `dovecot`).
//!
//! # What Dovecot 2.3 makes of the stored bytes
//!
//! [`Dovecot::fill`] stores every message byte for byte (the script copies
//! files into the Maildir; `doveadm save` is not used because it rewrites
//! CRLF to LF). [`Dovecot::messages`] returns those stored bytes. What a
//! client receives differs, and was measured against Dovecot 2.3.19
//! (`tests/dovecot_harness.rs` checks it on every run):
//!
//! POP3 `RETR` (after removing dot-stuffing and the terminating `.` line),
//! see [`pop3_content`]:
//! - a LF not preceded by CR becomes CRLF; CRLF stays CRLF;
//! - a bare CR (not followed by LF) is sent unchanged, also several in a
//!   row (`"a\r\r\n"` stays `"a\r\r\n"`);
//! - NUL bytes are sent unchanged;
//! - a message whose last byte is not LF (no final newline, a final bare
//!   CR, or an empty message) gets CRLF appended: `"last line"` arrives as
//!   `"last line\r\n"`, `"x\r"` as `"x\r\r\n"`, `""` as `"\r\n"`. So a client
//!   cannot tell "no final newline" from "final newline";
//! - lines starting with `.` are dot-stuffed on the wire (`.` -> `..`),
//!   `From ` lines are left alone.
//! - The sizes in `LIST`, `STAT` and `+OK N octets` are [`virtual_size`]:
//!   the stored length plus one per bare LF. They do NOT count the CRLF
//!   appended to a message without a final newline, so such a `RETR`
//!   delivers two bytes more than announced.
//!
//! IMAP `FETCH BODY[]` (the literal's content), see [`imap_body`]:
//! - a LF not preceded by CR becomes CRLF; bare CRs unchanged;
//! - NUL bytes are replaced by 0x80 (`BINARY[]` sends them as NUL in a
//!   `~{n}` literal8);
//! - nothing is appended: a missing final newline stays missing;
//! - `RFC822.SIZE` and the literal length are [`virtual_size`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::mail::lf_to_crlf;
use super::read_in_background;
use super::require::require;

/// The sandbox script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dovecot-sandbox")
}

/// What a POP3 client gets from Dovecot's `RETR` for a message stored as
/// `stored`, once dot-stuffing and the terminator are removed (see the
/// module documentation).
pub fn pop3_content(stored: &[u8]) -> Vec<u8> {
    let mut out = lf_to_crlf(stored);
    if !stored.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The exact bytes of Dovecot's `RETR` response after the `+OK` line:
/// [`pop3_content`], dot-stuffed, plus the `.` terminator line.
pub fn pop3_wire(stored: &[u8]) -> Vec<u8> {
    let content = pop3_content(stored);
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut at_line_start = true;
    for &b in &content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// What Dovecot sends as the content of IMAP `FETCH BODY[]` for a message
/// stored as `stored` (see the module documentation).
pub fn imap_body(stored: &[u8]) -> Vec<u8> {
    lf_to_crlf(stored)
        .into_iter()
        .map(|b| if b == 0 { 0x80 } else { b })
        .collect()
}

/// The size Dovecot announces for a stored message (POP3 `LIST`/`STAT`/
/// `RETR` octets, IMAP `RFC822.SIZE`): bare LFs count as two bytes.
pub fn virtual_size(stored: &[u8]) -> usize {
    lf_to_crlf(stored).len()
}

/// Runs `cmd` with stdin from /dev/null and its output captured, killing it
/// after `limit`. Never waits for pipe holders other than the child itself
/// once the limit has passed.
pub fn run_limited(mut cmd: Command, limit: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let t1 = read_in_background(child.stdout.take().unwrap());
    let t2 = read_in_background(child.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The child has exited; give stray inheritors of its pipes a moment,
    // but never hang on them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(t1.is_finished() && t2.is_finished()) {
        if Instant::now() > deadline {
            return Err(format!("{what} exited but its output pipes stayed open"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(Output {
        status,
        stdout: t1.join().unwrap(),
        stderr: t2.join().unwrap(),
    })
}

/// `name` in PATH or the usual sbin directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// PATH for the script and doveadm: the caller's plus the sbin directories.
fn sandbox_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    for d in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        dirs.push(PathBuf::from(d));
    }
    std::env::join_paths(dirs).unwrap()
}

/// Four distinct free ports on 127.0.0.1 (all bound at once, then released).
fn free_ports() -> [u16; 4] {
    let ls: Vec<std::net::TcpListener> = (0..4)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let p: Vec<u16> = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
    [p[0], p[1], p[2], p[3]]
}

fn parse_env(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A running private Dovecot; stopped on drop.
pub struct Dovecot {
    pub dir: tempfile::TempDir,
    pub pop3_port: u16,
    pub pop3s_port: u16,
    pub imap_port: u16,
    pub imaps_port: u16,
    /// The mail user (`fetchtest`).
    pub user: String,
    pub password: String,
    /// File holding `password` (no trailing newline).
    pub password_file: PathBuf,
    /// A second user, `jürgen`, whose name and password are not ASCII.
    pub utf8_user: String,
    /// File holding his password (UTF-8, no trailing newline).
    pub utf8_password_file: PathBuf,
    /// The server's self-signed certificate (SAN localhost, 127.0.0.1); use
    /// it as the only trusted root.
    pub cafile: PathBuf,
    /// The user's Maildir on the server side.
    pub server_maildir: PathBuf,
    conf: PathBuf,
    base_dir: PathBuf,
    /// Dovecot's LMTP socket, when dovecot-lmtpd is installed (see
    /// [`Dovecot::lmtp`]).
    lmtp_socket: Option<PathBuf>,
}

impl Dovecot {
    /// Starts a private Dovecot via `scripts/dovecot-sandbox`, with ports
    /// picked by binding 127.0.0.1:0 (retried up to 3 times when another
    /// process grabs one of them first). Returns `None` when Dovecot (or
    /// what the script needs) is not installed and [`require`] lets the
    /// test skip. Any other failure panics.
    pub fn start() -> Option<Dovecot> {
        Dovecot::start_with(&[])
    }

    /// [`Dovecot::start`] with `n` more users, `user1` ... `userN`, each
    /// with [`Dovecot::password`] (fill theirs with
    /// [`Dovecot::fill_files_of`]).
    pub fn start_users(n: usize) -> Option<Dovecot> {
        Dovecot::start_with(&["--users", &n.to_string()])
    }

    /// [`Dovecot::start`], also offering XOAUTH2 and OAUTHBEARER with tokens
    /// checked at `introspection_url` (`tests/common/tokenserver.rs`).
    pub fn start_oauth2(introspection_url: &str) -> Option<Dovecot> {
        Dovecot::start_with(&["--oauth2", introspection_url])
    }

    fn start_with(extra: &[&str]) -> Option<Dovecot> {
        let missing = ["dovecot", "doveadm", "openssl", "bash"]
            .into_iter()
            .find(|prog| find_program(prog).is_none())
            .map(|prog| format!("`{prog}` is not installed"));
        if !require("dovecot", missing) {
            return None;
        }
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("fetch-dovecot")
                .tempdir()
                .expect("create tempdir");
            let [pop3, pop3s, imap, imaps] = free_ports();
            let mut cmd = Command::new("bash");
            cmd.arg(script())
                .arg("start")
                .arg(dir.path())
                .args(["--pop3", &pop3.to_string()])
                .args(["--pop3s", &pop3s.to_string()])
                .args(["--imap", &imap.to_string()])
                .args(["--imaps", &imaps.to_string()])
                .args(extra)
                .env("PATH", sandbox_path());
            let out = match run_limited(cmd, Duration::from_secs(30)) {
                Ok(o) => o,
                Err(e) => {
                    stop_dir(dir.path());
                    panic!("dovecot-sandbox start: {e}");
                }
            };
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                stop_dir(dir.path());
                if err.contains("Address already in use") {
                    last_err = err;
                    continue;
                }
                panic!("dovecot-sandbox start failed ({}):\n{err}", out.status);
            }
            let env = parse_env(&std::fs::read_to_string(dir.path().join("env")).unwrap());
            let get = |k: &str| -> String {
                env.get(k)
                    .unwrap_or_else(|| panic!("{k} missing from sandbox env"))
                    .clone()
            };
            let password_file = PathBuf::from(get("PASSWORD_FILE"));
            let password = std::fs::read_to_string(&password_file).unwrap();
            let d = Dovecot {
                pop3_port: get("POP3_PORT").parse().unwrap(),
                pop3s_port: get("POP3S_PORT").parse().unwrap(),
                imap_port: get("IMAP_PORT").parse().unwrap(),
                imaps_port: get("IMAPS_PORT").parse().unwrap(),
                user: get("USER"),
                password,
                password_file,
                utf8_user: get("UTF8_USER"),
                utf8_password_file: PathBuf::from(get("UTF8_PASSWORD_FILE")),
                cafile: PathBuf::from(get("CAFILE")),
                server_maildir: PathBuf::from(get("MAILDIR")),
                conf: PathBuf::from(get("DOVECOT_CONF")),
                base_dir: PathBuf::from(get("BASE_DIR")),
                lmtp_socket: env.get("LMTP_SOCKET").map(PathBuf::from),
                dir,
            };
            assert_eq!(
                (d.pop3_port, d.pop3s_port, d.imap_port, d.imaps_port),
                (pop3, pop3s, imap, imaps)
            );
            return Some(d);
        }
        panic!("dovecot-sandbox start: ports kept being taken:\n{last_err}");
    }

    /// The LMTP socket delivering into this Dovecot's Maildir; None (after
    /// [`require`] let the test go on without it) when dovecot-lmtpd is
    /// not installed.
    pub fn lmtp(&self) -> Option<&Path> {
        let missing = self
            .lmtp_socket
            .is_none()
            .then(|| "dovecot-lmtpd is not installed".to_string());
        require("dovecot-lmtpd", missing).then(|| self.lmtp_socket.as_deref().unwrap())
    }

    /// The sandbox directory (config, certificate, log, server Maildir).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The generated `dovecot.conf`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The Dovecot master's pid (from base_dir/master.pid).
    pub fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.base_dir.join("master.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Adds messages to INBOX, in order, byte for byte (through the script's
    /// `fill`, like [`Dovecot::fill_files`]).
    pub fn fill<M: AsRef<[u8]>>(&self, msgs: &[M]) {
        if msgs.is_empty() {
            return;
        }
        let tmp = tempfile::Builder::new()
            .prefix("fill")
            .tempdir_in(self.path())
            .unwrap();
        let paths: Vec<PathBuf> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let p = tmp.path().join(format!("{i:06}.eml"));
                std::fs::write(&p, m).unwrap();
                p
            })
            .collect();
        self.fill_files(&paths);
    }

    /// Adds the given files (or, for a directory, every regular file below
    /// it, sorted) to INBOX, in order, byte for byte.
    pub fn fill_files(&self, paths: &[PathBuf]) {
        self.fill_files_of(&self.user, paths);
    }

    /// [`Dovecot::fill_files`] for `user` (`user`, `utf8_user`, or a
    /// `userK` of [`Dovecot::start_users`]).
    pub fn fill_files_of(&self, user: &str, paths: &[PathBuf]) {
        if paths.is_empty() {
            return;
        }
        let mut cmd = Command::new("bash");
        cmd.arg(script())
            .arg("fill")
            .arg(self.path())
            .args(["--user", user])
            .args(paths)
            .env("PATH", sandbox_path());
        let out = run_limited(cmd, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("dovecot-sandbox fill: {e}"));
        assert!(
            out.status.success(),
            "dovecot-sandbox fill failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `doveadm -c <conf> ARGS...` (at most 60 s, then panics).
    pub fn doveadm(&self, args: &[&str]) -> Output {
        let doveadm = find_program("doveadm").expect("doveadm not found");
        let mut cmd = Command::new(doveadm);
        cmd.arg("-c")
            .arg(&self.conf)
            .args(args)
            .env("PATH", sandbox_path());
        run_limited(cmd, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `doveadm flags OP FLAGS mailbox FOLDER uid UIDS` for the test user
    /// (OP: add, remove or replace; FLAGS space-separated); panics on
    /// failure.
    pub fn flags(&self, op: &str, flags: &str, folder: &str, uids: &str) {
        self.doveadm_ok(&[
            "flags", op, "-u", &self.user, flags, "mailbox", folder, "uid", uids,
        ]);
    }

    fn doveadm_ok(&self, args: &[&str]) -> String {
        let out = self.doveadm(args);
        assert!(
            out.status.success(),
            "doveadm {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("doveadm output is UTF-8")
    }

    /// Number of messages in INBOX as Dovecot sees it (`doveadm mailbox
    /// status messages`, which also syncs the Maildir).
    pub fn message_count(&self) -> usize {
        self.count_in("INBOX")
    }

    /// Number of messages in `folder`.
    pub fn count_in(&self, folder: &str) -> usize {
        let out = self.doveadm_ok(&[
            "-f", "tab", "mailbox", "status", "-u", &self.user, "messages", folder,
        ]);
        out.lines()
            .nth(1)
            .and_then(|l| l.trim().rsplit('\t').next()?.parse().ok())
            .unwrap_or_else(|| panic!("unexpected doveadm mailbox status output: {out:?}"))
    }

    /// Subject -> the server's flags (as doveadm prints them, e.g.
    /// `\Flagged \Seen`) of every message in `folder`.
    pub fn flags_by_subject(&self, folder: &str) -> std::collections::BTreeMap<String, String> {
        let out = self.doveadm_ok(&[
            "-f",
            "tab",
            "fetch",
            "-u",
            &self.user,
            "flags hdr.subject",
            "mailbox",
            folder,
            "all",
        ]);
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let (flags, subject) = l.split_once('\t')?;
                Some((subject.trim().to_string(), flags.trim().to_string()))
            })
            .collect()
    }

    /// The stored bytes of every message in INBOX, in UID order. The list of
    /// messages comes from Dovecot (`doveadm fetch 'uid guid'`; for Maildir
    /// the GUID is the file's base name), the bytes from those Maildir files.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let out = self.doveadm_ok(&[
            "-f", "tab", "fetch", "-u", &self.user, "uid guid", "mailbox", "INBOX", "all",
        ]);
        let mut files = std::collections::HashMap::new();
        for sub in ["cur", "new"] {
            for e in std::fs::read_dir(self.server_maildir.join(sub))
                .unwrap()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                let base = name.split(':').next().unwrap().to_string();
                files.insert(base, e.path());
            }
        }
        let mut rows: Vec<(u32, Vec<u8>)> = out
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (uid, guid) = l
                    .split_once('\t')
                    .unwrap_or_else(|| panic!("unexpected doveadm fetch line {l:?}"));
                let path = files
                    .get(guid)
                    .unwrap_or_else(|| panic!("no Maildir file for message {guid}"));
                (uid.parse().unwrap(), std::fs::read(path).unwrap())
            })
            .collect();
        rows.sort_by_key(|r| r.0);
        rows.into_iter().map(|r| r.1).collect()
    }
}

/// Stops the sandbox in `dir` (bounded); last resort SIGKILL to the master.
fn stop_dir(dir: &Path) {
    let base_dir = match std::fs::read_to_string(dir.join("base_dir")) {
        Ok(s) => PathBuf::from(s.trim()),
        Err(_) => dir.join("run"),
    };
    let pid: Option<libc::pid_t> = std::fs::read_to_string(base_dir.join("master.pid"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .arg("stop")
        .arg(dir)
        .env("PATH", sandbox_path());
    let ok = matches!(run_limited(cmd, Duration::from_secs(20)), Ok(o) if o.status.success());
    if !ok && let Some(pid) = pid.filter(|&p| p > 0) {
        // SAFETY: sending a signal has no memory-safety implications.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        eprintln!("dovecot-sandbox stop failed; killed master {pid}");
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        stop_dir(self.dir.path());
    }
}
