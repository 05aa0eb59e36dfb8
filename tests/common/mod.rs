//! Shared integration-test support. Each test file does `mod common;` and
//! uses what it needs. Here: a hermetic environment for running the `fetch`
//! binary ([`Env`]) to completion within a limit ([`run_bounded`]). Around
//! it:
//!
//! - `args`: command lines for fetch against each test server;
//! - `config`: the config file;
//! - `courier`: Courier's POP3 server behind a login front of our own;
//! - `dest`: the Maildir or mbox a run delivers into, read back;
//! - `dovecot`: a private Dovecot, and what it makes of stored bytes;
//! - `exim`: a private Exim delivering into a Maildir;
//! - `imapserver`, `pop3server`: the scripted servers;
//! - `mail`: fixtures, corpus, large messages, line-ending conversions;
//! - `mta`: a scripted LMTP/SMTP server for failure injection;
//! - `require`: skipping or failing without a tool (`FETCH_REQUIRE`);
//! - `spawned`: fetch in the background, SIGTERM, bounded waits;
//! - `tls`: test certificates.
// Each test binary uses a part of these modules; the rest is dead code there.
#![allow(dead_code)]

pub mod args;
pub mod config;
pub mod courier;
pub mod dest;
pub mod dovecot;
pub mod exim;
pub mod imapserver;
pub mod mail;
pub mod mta;
pub mod pop3server;
pub mod require;
pub mod spawned;
pub mod tls;
pub mod tokenserver;

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// The default mbox used by tests.
    pub fn mbox(&self) -> PathBuf {
        self.path().join("mbox")
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

    /// Run `fetch` with `args`, at most 60 s.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_args(args)
    }

    /// [`Env::run`] for arguments of any string type (a built `Vec<String>`).
    pub fn run_args<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        let mut c = self.cmd();
        c.args(args);
        run_bounded(c, RUN_LIMIT)
    }

    /// [`Env::run_args`] on a thread of its own, for runs that overlap.
    pub fn run_in_thread<S: AsRef<OsStr>>(&self, args: &[S]) -> JoinHandle<Out> {
        let mut c = self.cmd();
        c.args(args);
        std::thread::spawn(move || run_bounded(c, RUN_LIMIT))
    }
}

/// How long [`Env::run`] lets fetch take.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Makes `cmd` the leader of a new session, without a controlling
/// terminal, as under cron: a password prompt is impossible.
pub fn new_session(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe, so fine between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// The outcome of one `fetch` run.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Peak resident set size of the `fetch` image, in KiB: the highest
    /// `VmHWM` seen in /proc while it ran. (wait4's ru_maxrss would also
    /// count the moment before exec, when the child still shares the test
    /// process's memory.)
    pub max_rss_kb: i64,
}

impl Out {
    /// Asserts that fetch exited with `code` and that its stderr says
    /// `words`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32, words: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.contains(words), "{}", self.stderr);
    }
}

/// Run a command to completion with a hard time limit, so a hanging
/// `fetch` fails the test instead of hanging it.
// The child is reaped by the waitpid loop below (which also samples its
// memory from /proc while it runs); clippy only recognises Child::wait.
#[allow(clippy::zombie_processes)]
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Out {
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
        std::thread::sleep(Duration::from_millis(2));
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

/// Reads `r` to its end on a thread of its own (a child's pipe, which
/// would otherwise fill and block the child).
pub fn read_in_background<R: Read + Send + 'static>(mut r: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Every file and directory under `root` (symbolic links not followed;
/// what vanishes while it looks is left out).
pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// Every file under `dir`, recursively, as (path, bytes).
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| Some((p.clone(), std::fs::read(&p).ok()?)))
        .collect()
}
