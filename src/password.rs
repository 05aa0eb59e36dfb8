//! Where an account's password comes from. Sources, in order: the
//! account's password command (run with `sh -c`, the first line of its
//! output), `~/.netrc` (or `$NETRC`), a password in the config file, then
//! a prompt on the controlling terminal with echo off. With none of them,
//! fail at once (exit 78) rather than hang: a cron job has no terminal.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Result, config};
use crate::platform::{EchoOff, wait_readable};
use crate::secret::{Secret, make_undumpable};

/// An account's password sources, as resolved.
pub struct Sources<'a> {
    /// The account's name, for the prompt.
    pub account: &'a str,
    /// For the netrc lookup (and the advice when nothing works).
    pub host: &'a str,
    pub user: &'a str,
    pub command: Option<&'a str>,
    /// A password written in a (private) config file.
    pub config: Option<&'a Secret>,
    /// The built-in OAuth client, whose access tokens are kept in
    /// `state_dir` (used when there is no command).
    pub oauth2: Option<&'a crate::oauth2::Client>,
    pub state_dir: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

/// The password from the first of `src` that has one.
pub fn obtain(src: &Sources) -> Result<Secret> {
    if let Some(cmd) = src.command {
        return from_command(cmd);
    }
    if let Some(client) = src.oauth2 {
        return oauth2_token(src, client, false);
    }
    if let Some(path) = netrc_path()
        && let Some(pw) = crate::netrc::lookup_file(&path, src.host, src.user)?
    {
        return Ok(Secret::new(pw));
    }
    if let Some(pw) = src.config {
        return Ok(pw.duplicate());
    }
    prompt(&format!("Password for {}: ", src.account)).map_err(|why| {
        if crate::signals::stop_requested() {
            return config("interrupted at the password prompt");
        }
        config(format!(
            "no password: {why}; give --password-command CMD (for example \
             --password-command 'pass show mail'), a ~/.netrc entry for machine {} \
             login {}, or password_command in the config file",
            src.host, src.user
        ))
    })
}

/// After the server rejected a token from the built-in OAuth store: a
/// freshly refreshed one (`None` when the secret did not come from there).
pub fn renew(src: &Sources) -> Result<Option<Secret>> {
    match (src.command, src.oauth2) {
        (None, Some(client)) => oauth2_token(src, client, true).map(Some),
        _ => Ok(None),
    }
}

fn oauth2_token(src: &Sources, client: &crate::oauth2::Client, renew: bool) -> Result<Secret> {
    let dir = src
        .state_dir
        .as_deref()
        .ok_or_else(|| config("cannot find a state directory: set XDG_STATE_HOME or HOME"))?;
    crate::oauth2::access_token(client, src.account, dir, src.timeout, renew)
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
        .map_err(|e| config("cannot run the password command").because(e))?;
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
    let echo_off =
        EchoOff::new(&tty).map_err(|_| "the terminal cannot be configured".to_string())?;
    let mut w = &tty;
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
    let mut line = Vec::with_capacity(1024); // rarely grows (and copies)
    let read = read_line_until_stopped(&tty, &mut line);
    drop(echo_off);
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
        match wait_readable(tty, Duration::from_millis(100)) {
            Ok(false) => continue, // look at the flag again
            Ok(true) => {}
            Err(e) => return Err(format!("waiting for the terminal failed: {e}")),
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
    fn command_first_line() {
        let s = from_command("printf 'pw one\\r\\nsecond\\n'").unwrap();
        assert_eq!(s.expose(), "pw one");
        let e = from_command("exit 3").unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Config);
        assert!(from_command("echo").is_err());
        assert_eq!(from_command("printf nonl").unwrap().expose(), "nonl");
    }
}
