//! Shared integration-test support: a hermetic environment for running the
//! `fetch` binary, the scripted in-process POP3 server, and the real Dovecot
//! sandbox. Each test file does `mod common;` and uses what it needs.
#![allow(dead_code)]

pub mod dovecot;
pub mod imapserver;
pub mod pop3server;
pub mod require;
pub mod spawned;
pub mod tls;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;

/// A fresh temporary directory that stands in for the user's world: HOME,
/// XDG directories and NETRC all point inside it, so no test ever reads or
/// writes the real user's files.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("fetch-test")
            .tempdir()
            .unwrap();
        for sub in ["home", "state", "config", "data"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Env { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn home(&self) -> PathBuf {
        self.path().join("home")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }
    /// The default Maildir used by tests (not `~/Maildir`, to keep paths explicit).
    pub fn maildir(&self) -> PathBuf {
        self.path().join("Maildir")
    }
    /// A `fetch` command with a clean environment and no stdin.
    pub fn cmd(&self) -> Command {
        self.cmd_wrapped(&[])
    }

    /// [`Env::cmd`] run through `wrapper` (a program and its arguments,
    /// e.g. setpriv), which is to exec fetch.
    pub fn cmd_wrapped(&self, wrapper: &[&str]) -> Command {
        let mut c = match wrapper.split_first() {
            None => Command::new(env!("CARGO_BIN_EXE_fetch")),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_fetch"));
                c
            }
        };
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("USER", "tester")
            .env("XDG_STATE_HOME", self.state_dir())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("NETRC", self.home().join(".netrc"))
            .stdin(Stdio::null());
        c
    }
}

/// The outcome of one `fetch` run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: std::time::Duration,
    /// Peak resident set size of the `fetch` image, in KiB: the highest
    /// `VmHWM` seen in /proc while it ran. (wait4's ru_maxrss would also
    /// count the moment before exec, when the child still shares the test
    /// process's memory.)
    pub max_rss_kb: i64,
}

/// Run a command to completion with a hard time limit, so a hanging
/// `fetch` fails the test instead of hanging it.
// The child is reaped by the waitpid loop below (which also samples its
// memory from /proc while it runs); clippy only recognises Child::wait.
#[allow(clippy::zombie_processes)]
pub fn run_bounded(mut cmd: Command, limit: std::time::Duration) -> Out {
    let start = std::time::Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fetch");
    let t1 = read_in_background(child.stdout.take().unwrap());
    let t2 = read_in_background(child.stderr.take().unwrap());
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    let mut hwm = 0i64;
    loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            hwm = hwm.max(kb);
        }
        // SAFETY: valid pointer to a local; pid is our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        assert!(
            r == 0,
            "waitpid failed: {}",
            std::io::Error::last_os_error()
        );
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fetch did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&t1.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t2.join().unwrap()).into_owned();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Out {
        code,
        stdout,
        stderr,
        elapsed,
        max_rss_kb: hwm,
    }
}

/// Reads `r` to its end on a thread of its own (a child's pipe, which
/// would otherwise fill and block the child).
pub fn read_in_background<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// VmHWM of `pid` once it runs the `fetch` image (not before exec).
fn vm_hwm_kb(pid: libc::pid_t) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut lines = status.lines();
    if lines.next()?.split_whitespace().nth(1)? != "fetch" {
        return None;
    }
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Env {
    /// Run `fetch` with `args`, at most 60 s.
    pub fn run(&self, args: &[&str]) -> Out {
        let mut c = self.cmd();
        c.args(args);
        run_bounded(c, std::time::Duration::from_secs(60))
    }
}

/// The `--json` events of a run, each checked against the schema the man
/// page documents (`fetch::report::events::SCHEMA`).
pub fn json_events(out: &Out) -> Vec<serde_json::Value> {
    out.stdout
        .lines()
        .map(|l| {
            if let Err(why) = fetch::report::events::check(l) {
                panic!("an event not as the man page documents it: {why}");
            }
            serde_json::from_str(l).unwrap()
        })
        .collect()
}

/// `root` and every directory under it.
pub fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// The message files in a Maildir's `new/` and `cur/`.
pub fn maildir_files(md: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(md.join(sub)) {
            for e in rd.flatten() {
                v.push(e.path());
            }
        }
    }
    v.sort();
    v
}

/// The contents of every message in a Maildir, sorted (a multiset).
pub fn maildir_messages(md: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = maildir_files(md)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    v.sort();
    v
}

/// Entries in a Maildir's `tmp/`.
pub fn tmp_files(md: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(md.join("tmp")) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// What a message stored on a server should look like in the Maildir:
/// CRLF line endings become LF. POP3 cannot carry a missing final line
/// break (the terminator needs one), so a message without one gains "\n".
pub fn expected_local(server: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(server.len());
    let mut i = 0;
    while i < server.len() {
        if server[i] == b'\r' && server.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(server[i]);
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// Sorted copy, for multiset comparisons.
pub fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

/// Every file under `dir`, recursively, as (path, bytes).
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(b) = std::fs::read(&p) {
                    out.push((p, b));
                }
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// The project's own fixture messages (`tests/fixtures/*.eml`), sorted by name.
pub fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    v.sort();
    v
}

/// A deterministic message with a base64 attachment of `attachment_bytes`
/// pseudo-random bytes, lines ending in `eol`.
pub fn large_message(attachment_bytes: usize, eol: &str) -> Vec<u8> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(attachment_bytes * 4 / 3 + 4096);
    for line in [
        "From: Large Sender <large@example.org>",
        "To: bob@example.net",
        "Subject: a large attachment",
        "Date: Mon, 23 Nov 2026 10:00:00 +0000",
        "Message-ID: <large@fixtures.fetch>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/mixed; boundary=\"b0undary\"",
        "",
        "--b0undary",
        "Content-Type: text/plain",
        "",
        "See the attachment.",
        "--b0undary",
        "Content-Type: application/octet-stream",
        "Content-Disposition: attachment; filename=\"blob.bin\"",
        "Content-Transfer-Encoding: base64",
        "",
    ] {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol.as_bytes());
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut line = Vec::with_capacity(80);
    let mut left = attachment_bytes;
    while left > 0 {
        // 57 raw bytes make one 76-character base64 line.
        let n = left.min(57);
        let mut raw = [0u8; 57];
        for b in raw.iter_mut().take(n) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        line.clear();
        for c in raw[..n].chunks(3) {
            let v = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            line.push(B64[(v >> 18) as usize & 63]);
            line.push(B64[(v >> 12) as usize & 63]);
            line.push(if c.len() > 1 {
                B64[(v >> 6) as usize & 63]
            } else {
                b'='
            });
            line.push(if c.len() > 2 {
                B64[v as usize & 63]
            } else {
                b'='
            });
        }
        out.extend_from_slice(&line);
        out.extend_from_slice(eol.as_bytes());
        left -= n;
    }
    out.extend_from_slice(b"--b0undary--");
    out.extend_from_slice(eol.as_bytes());
    out
}

/// Arguments for a plaintext session with the scripted POP3 server on
/// `port` (user tester, password secret), delivering nowhere yet: callers
/// add a destination.
pub fn scripted_args(port: u16) -> Vec<String> {
    [
        "--pop3",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--tls",
        "none",
        "--allow-plaintext-auth",
        "-u",
        "tester",
        "--password-command",
        "echo secret",
        "--timeout",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Whether strace runs here, or [`require::require`] lets the test skip
/// what needs it.
pub fn have_strace() -> bool {
    require::require("strace", require::program_missing("strace", &["-V"]))
}

/// An mbox read back by Python's `mailbox` module (an independent reader),
/// with the mboxrd quoting undone: (From_ line, message bytes) in order.
/// None when python3 does not start and [`require::require`] lets the
/// test go on.
pub fn python_read_mbox(path: &Path) -> Option<Vec<(String, Vec<u8>)>> {
    const SCRIPT: &str = r#"
import mailbox, re, struct, sys
out = sys.stdout.buffer
mb = mailbox.mbox(sys.argv[1], create=False)
for key in mb.iterkeys():
    data = re.sub(rb'(?m)^>(>*From )', rb'\1', mb.get_bytes(key))
    frm = mb.get_message(key).get_from().encode()
    for part in (frm, data):
        out.write(struct.pack('>Q', len(part)))
        out.write(part)
"#;
    let out = match Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            let why = format!("`python3` does not start to read the mbox back: {e}");
            require::require("python3", Some(why));
            return None;
        }
    };
    assert!(
        out.status.success(),
        "python could not read the mbox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fn take(rest: &mut &[u8]) -> Vec<u8> {
        let (len, r) = rest.split_at(8);
        let len = u64::from_be_bytes(len.try_into().unwrap()) as usize;
        let (part, r) = r.split_at(len);
        *rest = r;
        part.to_vec()
    }
    let mut rest = &out.stdout[..];
    let mut msgs = Vec::new();
    while !rest.is_empty() {
        let from = String::from_utf8(take(&mut rest)).unwrap();
        let data = take(&mut rest);
        msgs.push((from, data));
    }
    Some(msgs)
}
