//! The password prompt on a real terminal (a pseudo-terminal here): a
//! password typed there logs in and is not echoed, and Ctrl-C at the prompt
//! gives up at once (exit 130) with the terminal's echo restored, instead of
//! waiting for a second Ctrl-C that would leave echo off.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;
use common::args::{remove_option, scripted_pop3};
use common::dest::{Dest, maildir_files};
use common::pop3server::{Pop3Server, ServerConfig, msg};
use common::spawned::Spawned;

/// `fetch` started as the leader of a new session whose controlling
/// terminal is a fresh pty, with no password source but the terminal;
/// returns fetch and the master side.
fn spawn_on_pty(env: &Env, port: u16) -> (Spawned, File) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty fills two fds; the null pointers ask for defaults.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            // Mutable on some systems, const on others: null fits both.
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by openpty and are ours.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let slave_fd = slave.as_raw_fd();
    let mut args = scripted_pop3(port);
    remove_option(&mut args, "--password-command");
    args.extend(Dest::Maildir.args(env));
    let mut cmd = env.cmd();
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(slave);
    (Spawned::adopt(child), master)
}

/// Read from the master until `want` shows up (or fail after a while).
fn read_until(master: &mut File, want: &str) -> String {
    let mut seen = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains(want) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {want:?} on the terminal; saw {:?}",
            String::from_utf8_lossy(&seen)
        );
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } > 0 {
            match master.read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => break, // the child is gone (EIO on Linux)
            }
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Whatever is left on the terminal once the child has exited.
fn drain(master: &mut File) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
            break;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn echo_is_on(master: &File) -> bool {
    // SAFETY: termios is plain data, filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(master.as_raw_fd(), &mut t) }, 0);
    t.c_lflag & libc::ECHO != 0
}

/// A server with one message for tester (password secret).
fn server() -> Pop3Server {
    Pop3Server::start(
        ServerConfig::default(),
        vec![("u1".into(), msg(1, &["hi"]))],
    )
}

#[test]
fn a_password_typed_at_the_prompt_logs_in_without_echo() {
    let env = Env::new();
    let server = server();
    let (mut child, mut master) = spawn_on_pty(&env, server.port);
    read_until(&mut master, "Password for");
    assert!(
        !echo_is_on(&master),
        "echo is off while the password is typed"
    );
    master.write_all(b"secret\n").unwrap();
    assert_eq!(child.wait_exit(Duration::from_secs(10)).code, 0);
    let shown = drain(&mut master);
    assert!(
        !shown.contains("secret"),
        "the password was echoed: {shown:?}"
    );
    assert!(echo_is_on(&master), "echo is back on");
    assert_eq!(maildir_files(&env.maildir()).len(), 1);
    assert!(server.remaining().is_empty());
}

#[test]
fn ctrl_c_at_the_prompt_gives_up_at_once_and_restores_echo() {
    let env = Env::new();
    let server = server();
    let (mut child, mut master) = spawn_on_pty(&env, server.port);
    read_until(&mut master, "Password for");
    master.write_all(b"sec\x03").unwrap(); // Ctrl-C: SIGINT from the terminal
    let shown = read_until(&mut master, "interrupted at the password prompt");
    assert_eq!(
        child.wait_exit(Duration::from_secs(10)).code,
        130,
        "{shown:?}"
    );
    assert!(echo_is_on(&master), "echo is back on");
    assert!(!shown.contains("sec"), "{shown:?}");
    assert!(
        !server.commands().iter().any(|c| c.starts_with("PASS")),
        "no password was sent"
    );
    assert_eq!(server.remaining().len(), 1);
}
