//! A private Exim (Debian's exim4-daemon-light) for the SMTP tests: its
//! own config, spool, log and Maildir in a temporary directory, listening
//! on a free port of 127.0.0.1, accepting mail for any address and
//! delivering it at once into that Maildir (as the `mail` user: Exim never
//! delivers as root). Dropping it stops the daemon.
//!
//! Exim rather than Postfix: one binary started with `-C CONFIG -bd` runs a
//! complete MTA from a private directory, where Postfix needs a whole
//! instance (master, queue directory, postdrop group) set up first; and
//! Debian installs Exim as its default MTA, so it is what a home server
//! most likely runs. It needs root (the daemon reads a `-C` config only
//! then, and switches to `mail` to deliver); without root the tests skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::dovecot::run_limited;
use super::require::require;

pub struct Exim {
    dir: tempfile::TempDir,
    pub port: u16,
    pid: i32,
}

fn exim_binary() -> Option<PathBuf> {
    ["/usr/sbin/exim4", "/usr/sbin/exim", "/usr/local/sbin/exim"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The uid and gid of the `mail` user (from /etc/passwd).
fn mail_user() -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = text.lines().find(|l| l.starts_with("mail:"))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

impl Exim {
    pub fn start() -> Option<Exim> {
        let missing = match (exim_binary(), mail_user()) {
            (None, _) => Some("exim is not installed".to_string()),
            (_, None) => Some("there is no mail user".to_string()),
            // SAFETY: geteuid has no preconditions.
            _ if unsafe { libc::geteuid() } != 0 => {
                Some("a private Exim needs root (to read -C and deliver as mail)".into())
            }
            _ => None,
        };
        if !require("exim", missing) {
            return None;
        }
        let exim = exim_binary().unwrap();
        let (uid, gid) = mail_user().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("fetch-exim")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["spool", "log", "Maildir"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        chown_tree(d, uid, gid);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let conf = d.join("exim.conf");
        std::fs::write(&conf, config(d, port)).unwrap();
        // Exim reads a -C file only if root owns it and nobody else may
        // write it.
        std::os::unix::fs::chown(&conf, Some(0), Some(0)).unwrap();
        let pidfile = d.join("exim.pid");
        let mut cmd = Command::new(&exim);
        cmd.arg("-C")
            .arg(&conf)
            .args(["-bd", "-oX", &port.to_string(), "-oP"])
            .arg(&pidfile);
        let out = run_limited(cmd, Duration::from_secs(20)).unwrap();
        assert!(
            out.status.success(),
            "exim -bd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let start = Instant::now();
        loop {
            let pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if let Some(pid) = pid
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return Some(Exim { dir, port, pid });
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "exim did not start listening: {}",
                std::fs::read_to_string(d.join("log/paniclog")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where Exim delivers.
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("Maildir")
    }

    /// Exim's main log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/mainlog")).unwrap_or_default()
    }

    /// Waits (at most `limit`) until the Maildir holds `n` messages, and
    /// returns them, sorted. Exim delivers in a process of its own just
    /// after it answered 250.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Vec<u8>> {
        let start = Instant::now();
        loop {
            let got = super::dest::maildir_messages(&self.maildir());
            if got.len() >= n || start.elapsed() > limit {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Exim {
    fn drop(&mut self) {
        // SAFETY: kill with a pid we read from the daemon's own pid file.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        let start = Instant::now();
        // SAFETY: signal 0 only asks whether the process exists.
        while unsafe { libc::kill(self.pid, 0) } == 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An Exim that takes mail for anyone from 127.0.0.1 and delivers it into
/// DIR/Maildir, refusing the local part `reject-me` (a 550 to RCPT).
fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "keep_environment =
primary_hostname = fetch-test.localhost
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
exim_user = mail
exim_group = mail
never_users =
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
qualify_domain = localhost
domainlist local_domains = *
acl_smtp_rcpt = acl_check_rcpt
message_size_limit = 50M
smtp_accept_queue_per_connection = 0
return_path_remove = false
delivery_date_remove = false
envelope_to_remove = false
begin acl
acl_check_rcpt:
  deny message = 5.7.1 not for this one
       local_parts = reject-me
  accept
begin routers
local:
  driver = accept
  transport = maildir_t
begin transports
maildir_t:
  driver = appendfile
  directory = {d}/Maildir
  maildir_format
  user = mail
  group = mail
  mode = 0600
  create_directory
  return_path_add
begin retry
* * F,1m,1m
"
    )
}
