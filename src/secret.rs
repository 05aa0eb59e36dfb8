//! Password sources and the [`Secret`] type that carries a password.
//!
//! Sources, in order: the account's password command (run with `sh -c`, the
//! first line of its output), `~/.netrc` (or `$NETRC`), a password in the
//! config file, then a prompt on the controlling terminal with echo off.
//! With none of them, fail at once (exit 78) rather than hang: a cron job
//! has no terminal.
//!
//! While a password is held the process is made non-dumpable, so a core
//! dump or a ptrace by another user cannot read it, and a [`Secret`] is wiped
//! from memory when dropped. Its `Debug` prints `[REDACTED]`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use crate::config::Account;
use crate::error::{Result, config};

pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        make_undumpable();
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A second copy (for a daemon that keeps the password between runs);
    /// deliberately not `Clone`, so that copies are made only on purpose.
    pub fn duplicate(&self) -> Secret {
        Secret::new(self.0.clone())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // SAFETY: zero bytes are valid UTF-8; the string is dropped right after.
        let bytes = unsafe { self.0.as_bytes_mut() };
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

fn make_undumpable() {
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Get the password for `acct` from the first source that has one.
pub fn obtain(acct: &Account) -> Result<Secret> {
    if let Some(cmd) = &acct.password_command {
        return from_command(cmd);
    }
    if let Some(path) = netrc_path()
        && let Some(pw) = crate::netrc::lookup_file(&path, &acct.host, &acct.user)?
    {
        return Ok(Secret::new(pw));
    }
    if let Some(pw) = &acct.config_password {
        return Ok(Secret::new(pw.expose().to_string()));
    }
    prompt(&format!("Password for {}: ", acct.name)).map_err(|why| {
        if crate::signals::stop_requested() {
            return config("interrupted at the password prompt");
        }
        config(format!(
            "no password: {why}; give --password-command CMD (for example \
             --password-command 'pass show mail'), a ~/.netrc entry for machine {} \
             login {}, or password_command in the config file",
            acct.host, acct.user
        ))
    })
}

/// `$NETRC`, else `~/.netrc`.
fn netrc_path() -> Option<std::path::PathBuf> {
    match std::env::var_os("NETRC") {
        Some(p) if !p.is_empty() => Some(p.into()),
        _ => dirs::home_dir().map(|h| h.join(".netrc")),
    }
}

fn from_command(cmd: &str) -> Result<Secret> {
    make_undumpable();
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| config(format!("cannot run the password command: {e}")))?;
    if !out.status.success() {
        return Err(config(format!(
            "the password command failed ({})",
            out.status
        )));
    }
    let mut stdout = out.stdout;
    let line_end = stdout
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(stdout.len());
    let mut line = stdout[..line_end].to_vec();
    stdout.iter_mut().for_each(|b| *b = 0);
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err(config("the password command printed an empty first line"));
    }
    match String::from_utf8(line) {
        Ok(s) => Ok(Secret::new(s)),
        Err(_) => Err(config(
            "the password command printed a line that is not UTF-8",
        )),
    }
}

/// Ask on the controlling terminal with echo off. Errors with the reason
/// when there is no terminal.
fn prompt(text: &str) -> std::result::Result<Secret, String> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| "there is no terminal to ask on".to_string())?;
    make_undumpable();
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err("the terminal cannot be configured".into());
    }
    let mut quiet = saved;
    quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
    quiet.c_lflag |= libc::ICANON;
    // SAFETY: valid fd and termios.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    let mut w = &tty;
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
    let mut line = Vec::with_capacity(1024); // rarely grows (and copies)
    let read = read_line_until_stopped(&tty, &mut line);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
    let _ = w.write_all(b"\n");
    let read = read.and_then(|()| {
        String::from_utf8(std::mem::take(&mut line))
            .map_err(|_| "the password entered is not UTF-8".to_string())
    });
    line.fill(0);
    let secret = Secret::new(read?.trim_end_matches(['\r', '\n']).to_string());
    if secret.expose().is_empty() {
        return Err("an empty password was entered".into());
    }
    Ok(secret)
}

/// Read up to a newline, one byte at a time (nothing of the password is
/// left in a buffer we do not own). Ctrl-C (or SIGTERM) gives up, with the
/// terminal still ours to restore, rather than waiting for a second signal.
/// The signal may be delivered to another thread, so the read cannot count
/// on being interrupted: it waits in short polls that look at the flag.
fn read_line_until_stopped(mut tty: &File, line: &mut Vec<u8>) -> std::result::Result<(), String> {
    let mut b = [0u8; 1];
    loop {
        if crate::signals::stop_requested() {
            return Err("interrupted".into());
        }
        let mut pfd = libc::pollfd {
            fd: tty.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, 100) } {
            0 => continue, // look at the flag again
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("waiting for the terminal failed: {e}"));
            }
            _ => {}
        }
        match tty.read(&mut b) {
            Ok(0) => return Ok(()),
            Ok(_) if b[0] == b'\n' => return Ok(()),
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                if crate::signals::stop_requested() {
                    return Err("interrupted".into());
                }
            }
            Err(e) => return Err(format!("reading the terminal failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_a_password_makes_the_process_undumpable() {
        let _s = Secret::new("x".into());
        // SAFETY: PR_GET_DUMPABLE takes no pointers.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
    }

    #[test]
    fn command_first_line() {
        let s = from_command("printf 'pw one\\r\\nsecond\\n'").unwrap();
        assert_eq!(s.expose(), "pw one");
        let e = from_command("exit 3").unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Config);
        assert!(from_command("echo").is_err());
        assert_eq!(from_command("printf nonl").unwrap().expose(), "nonl");
    }
}
