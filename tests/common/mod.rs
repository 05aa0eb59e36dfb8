//! Shared integration-test support: a hermetic environment for running the
//! `fetch` binary, the scripted in-process POP3 server, and the real Dovecot
//! sandbox. Each test file does `mod common;` and uses what it needs.
#![allow(dead_code)]

pub mod dovecot;
pub mod pop3server;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
        let mut c = Command::new(env!("CARGO_BIN_EXE_fetch"));
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
}

/// Run a command to completion with a hard time limit, so a hanging
/// `fetch` fails the test instead of hanging it.
pub fn run_bounded(mut cmd: Command, limit: std::time::Duration) -> Out {
    use std::io::Read;
    let start = std::time::Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fetch");
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fetch did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&t1.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t2.join().unwrap()).into_owned();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Out {
        code,
        stdout,
        stderr,
        elapsed,
    }
}

impl Env {
    /// Run `fetch` with `args`, at most 60 s.
    pub fn run(&self, args: &[&str]) -> Out {
        let mut c = self.cmd();
        c.args(args);
        run_bounded(c, std::time::Duration::from_secs(60))
    }
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
