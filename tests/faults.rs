//! Local faults: disk full and I/O errors injected with strace into every
//! file write, sync and rename of a run; a damaged ledger; runs racing for
//! one account; umask 000; and a kill -9 soak.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::args::{remove_option, scripted_pop3};
use common::dest::{Dest, maildir_files, maildir_messages, tmp_files};
use common::mail::{expected_local, expected_messages};
use common::pop3server::{Pop3Server, ServerConfig, growing, slow_retr};
use common::require::{program_missing, require};
use common::{Env, all_files};

/// `n` messages of growing size (message i has 20 * i lines).
fn messages(n: usize) -> Vec<(String, Vec<u8>)> {
    growing(n, 20, &[])
}

/// `fetch ARGS` under strace, failing the `when`-th `syscall` with `errno`
/// (or, with `when == 0`, only counting the calls into `count_file`).
fn run_injected(
    env: &Env,
    args: &[String],
    syscall: &str,
    errno: &str,
    when: usize,
    count_file: &Path,
) -> common::Out {
    // -f: fetch reads its ledger and syncs a batch's files on threads of its
    // own (strace counts `when` per thread: each thread's N-th call fails).
    // The password comes from a netrc file, so no child process of someone
    // else's (a password command's shell) gets the faults.
    let count_file = count_file.to_string_lossy();
    let trace = format!("trace={syscall}");
    let inject = format!("inject={syscall}:error={errno}:when={when}");
    let mut wrapper = vec!["strace", "-f", "-qq", "-o", &count_file, "-e", &trace];
    if when > 0 {
        // strace injects only into calls it traces.
        wrapper.extend(["-e", &inject]);
    }
    let mut c = env.cmd_wrapped(&wrapper);
    c.args(args);
    // Batches of 16: 20 messages take two, the first synced with one
    // syncfs on its own thread while the second downloads, the second
    // (smaller than SYNCFS_MIN_BATCH) with an fdatasync per file in place.
    c.env("FETCH_BATCH_MESSAGES", "16");
    c.stdin(std::process::Stdio::null());
    common::run_bounded(c, Duration::from_secs(60))
}

/// The arguments of a sweep run, with the password in a private netrc.
fn sweep_args(env: &Env, port: u16, dest: Dest, keep: bool) -> Vec<String> {
    let mut args = scripted_pop3(port);
    remove_option(&mut args, "--password-command");
    let netrc = env.home().join(".netrc");
    std::fs::write(&netrc, "machine 127.0.0.1 login tester password secret\n").unwrap();
    std::fs::set_permissions(&netrc, std::fs::Permissions::from_mode(0o600)).unwrap();
    args.extend(dest.args(env));
    if keep {
        args.push("--keep".into());
    }
    args
}

/// How many calls of `syscall` an `strace -f -o` log shows.
fn calls_in(log: &Path, syscall: &str) -> usize {
    let call = format!("{syscall}(");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            let l = l
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            l.starts_with(&call)
        })
        .count()
}

fn sweep(dest: Dest, keep: bool) {
    if !require("strace", program_missing("strace", &["-V"])) {
        return;
    }
    let msgs = messages(20);
    let want = expected_messages(&msgs);
    let mut injected = 0;
    let mut calls_to_fail = vec![
        ("write", "ENOSPC"),
        ("pwrite64", "ENOSPC"),
        ("fdatasync", "EIO"),
        ("fsync", "EIO"),
    ];
    if fetch::platform::LINUX_CALLS {
        calls_to_fail.extend([("syncfs", "EIO"), ("renameat2", "ENOSPC")]);
    } else {
        // The fallbacks of other systems: a link, then an unlink, to
        // rename without replacing. (In an mbox run the unlinks are of
        // the dotlock, whose failure is another test's business.)
        calls_to_fail.push(("linkat", "ENOSPC"));
        if dest == Dest::Maildir {
            calls_to_fail.push(("unlink", "EIO"));
        }
    }
    for (syscall, errno) in calls_to_fail {
        // How many calls does a clean run make?
        let env = Env::new();
        let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
        let args = sweep_args(&env, server.port, dest, keep);
        let counts = env.path().join("calls");
        let out = run_injected(&env, &args, syscall, errno, 0, &counts);
        assert_eq!(out.code, 0, "{out:?}");
        let calls = calls_in(&counts, syscall);
        // Each sync step of a Maildir delivery must be reached, or its
        // failure goes untested (the syncfs of the batch synced on its own
        // thread among them).
        if dest == Dest::Maildir && syscall != "pwrite64" {
            assert!(calls > 0, "a clean Maildir run makes no {syscall} call");
        }
        for when in 1..=calls {
            let env = Env::new();
            let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
            let args = sweep_args(&env, server.port, dest, keep);
            let out = run_injected(&env, &args, syscall, errno, when, &env.path().join("trace"));
            let what = format!("{dest:?} keep={keep}: {syscall} #{when} -> {errno}");
            match out.code {
                74 => {
                    injected += 1;
                    // strace counts `when` per thread: the main thread's
                    // write of the error message itself may be the one
                    // that fails.
                    assert!(
                        out.stderr.contains('/') || (syscall == "write" && out.stderr.is_empty()),
                        "{what}: the error names no path: {}",
                        out.stderr
                    );
                }
                // A write that did not matter (stderr, a record whose loss
                // is harmless) may fail without failing the run.
                0 => {}
                other => panic!("{what}: exit {other}: {out:?}"),
            }
            // Nothing deleted that is not here.
            let Some(here) = dest.local(&env) else { return };
            let gone: Vec<Vec<u8>> = msgs
                .iter()
                .filter(|(u, _)| !server.remaining().iter().any(|(r, _)| r == u))
                .map(|(_, b)| expected_local(b))
                .collect();
            for g in &gone {
                assert!(
                    here.contains(g),
                    "{what}: a message was deleted on the server but is not here"
                );
            }
            // Whatever is here is whole (an mbox was truncated back).
            for h in &here {
                assert!(
                    want.contains(h),
                    "{what}: a partial or foreign message is here"
                );
            }
            // The next run completes, with no duplicates.
            let out = env.run_args(&args);
            assert_eq!(out.code, 0, "{what}: rerun: {out:?}");
            assert!(
                dest.local(&env).unwrap() == want,
                "{what}: after the rerun, messages missing or twice"
            );
            assert_eq!(
                server.remaining().len(),
                if keep { msgs.len() } else { 0 },
                "{what}"
            );
            if dest == Dest::Maildir {
                assert!(
                    tmp_files(&env.maildir()).is_empty(),
                    "{what}: stray tmp files"
                );
            }
        }
    }
    eprintln!(
        "{dest:?} keep={keep}: {injected} injected failures ended with exit 74 and recovered"
    );
    assert!(
        injected > 10,
        "too few injected failures took effect ({injected})"
    );
}

#[test]
fn disk_full_and_io_errors_into_maildir() {
    sweep(Dest::Maildir, false);
}

#[test]
fn disk_full_and_io_errors_into_mbox() {
    sweep(Dest::Mbox, false);
}

#[test]
fn disk_full_and_io_errors_keep_mode() {
    sweep(Dest::Maildir, true);
}

fn ledger_dir(env: &Env) -> std::path::PathBuf {
    std::fs::read_dir(env.state_dir().join("fetch"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
}

#[test]
fn a_damaged_ledger_is_refused_never_read_as_empty() {
    let env = Env::new();
    let msgs = messages(3);
    let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
    let mut args = scripted_pop3(server.port);
    args.push("--keep".into());
    args.extend(Dest::Maildir.args(&env));
    assert_eq!(env.run_args(&args).code, 0);
    let dir = ledger_dir(&env);
    let journal = dir.join("journal");
    let good = std::fs::read(&journal).unwrap();
    let before = server.commands().len();
    type Damage<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let damage: Vec<Damage> = vec![
        (
            "garbage",
            Box::new(|| std::fs::write(&journal, b"this is not a journal, just text\n").unwrap()),
        ),
        (
            "damage in the middle",
            Box::new(|| {
                let mut b = good.clone();
                let mid = b.len() / 2;
                b[mid] ^= 0xff;
                b.extend_from_slice(&good[good.len() - 20..]);
                std::fs::write(&journal, &b).unwrap();
            }),
        ),
        (
            "newer format",
            Box::new(|| {
                let mut b = good.clone();
                b[8] = 9;
                std::fs::write(&journal, &b).unwrap();
            }),
        ),
        (
            "a symlink",
            Box::new(|| {
                let other = env.path().join("elsewhere");
                std::fs::write(&other, &good).unwrap();
                std::fs::remove_file(&journal).unwrap();
                std::os::unix::fs::symlink(&other, &journal).unwrap();
            }),
        ),
        (
            "an empty snapshot",
            Box::new(|| {
                std::fs::write(&journal, &good).unwrap();
                std::fs::write(dir.join("ledger"), b"").unwrap();
            }),
        ),
    ];
    for (what, break_it) in damage {
        let _ = std::fs::remove_file(&journal);
        let _ = std::fs::remove_file(dir.join("ledger"));
        std::fs::write(&journal, &good).unwrap();
        break_it();
        let out = env.run_args(&args);
        assert_eq!(out.code, 65, "{what}: {out:?}");
        assert!(
            out.stderr.contains("move the directory"),
            "{what}: no repair hint: {}",
            out.stderr
        );
        assert_eq!(
            maildir_files(&env.maildir()).len(),
            3,
            "{what}: nothing fetched again"
        );
    }
    assert!(
        !server.commands()[before..]
            .iter()
            .any(|c| c.starts_with("RETR")),
        "a damaged ledger must not lead to fetching again"
    );
    // The ledger is read while the session connects; its damage is still
    // what is reported when the server cannot be reached at all.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut args = scripted_pop3(closed);
    args.push("--keep".into());
    args.extend(Dest::Maildir.args(&env));
    let out = env.run_args(&args);
    out.assert_exit(65, "move the directory");
}

#[test]
fn concurrent_runs_on_one_account_one_works_the_others_exit_75() {
    let env = Env::new();
    let msgs = messages(10);
    // The winner is held up on each RETR, so the others meet its lock.
    let cfg = ServerConfig {
        hook_on_command: Some(slow_retr(Duration::from_millis(100))),
        ..Default::default()
    };
    let server = Pop3Server::start(cfg, msgs.clone());
    let mut args = scripted_pop3(server.port);
    args.extend(Dest::Maildir.args(&env));
    let runs: Vec<_> = (0..4).map(|_| env.run_in_thread(&args)).collect();
    let outs: Vec<common::Out> = runs.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = outs.iter().filter(|o| o.code == 0).count();
    let locked: Vec<&common::Out> = outs.iter().filter(|o| o.code == 75).collect();
    assert_eq!(ok + locked.len(), 4, "{outs:?}");
    assert!(ok >= 1);
    assert!(!locked.is_empty(), "the runs did not overlap: {outs:?}");
    for o in locked {
        assert!(o.elapsed < Duration::from_secs(1), "{:?}", o.elapsed);
        assert!(o.stderr.contains("another fetch"), "{}", o.stderr);
    }
    let want = expected_messages(&msgs);
    assert_eq!(maildir_messages(&env.maildir()), want);
    assert!(server.remaining().is_empty());
}

#[test]
fn files_are_private_even_under_umask_000() {
    use std::os::unix::process::CommandExt;
    let env = Env::new();
    let mbox = env.mbox();
    for dest in [Dest::Maildir.args(&env), Dest::Mbox.args(&env)] {
        // Other messages each time: it is the same account (the ledger
        // ignores the port), which would have nothing new the second time.
        let fresh = messages(2)
            .into_iter()
            .map(|(u, b)| (format!("{u}-{}", dest[0]), b))
            .collect();
        let server = Pop3Server::start(ServerConfig::default(), fresh);
        let mut args = scripted_pop3(server.port);
        args.extend(dest);
        args.push("--keep".into());
        let mut c = env.cmd();
        c.args(&args);
        unsafe {
            c.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        let out = common::run_bounded(c, Duration::from_secs(30));
        assert_eq!(out.code, 0, "{out:?}");
    }
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let mut checked = 0;
    for (p, _) in all_files(env.path()) {
        if p.starts_with(env.maildir()) || p.starts_with(env.state_dir()) || p == mbox {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            checked += 1;
        }
    }
    for d in ["", "new", "cur", "tmp"] {
        assert_eq!(mode(&env.maildir().join(d)), 0o700, "Maildir/{d}");
    }
    assert_eq!(mode(&ledger_dir(&env)), 0o700);
    assert!(mbox.exists());
    assert!(checked >= 5, "{checked}"); // 2 messages, the mbox, lock, journal
}

/// Kill -9 at random moments. FETCH_SOAK_TRIALS sets the number
/// of trials (default 4, as CI runs it; try 1000 for a long soak).
#[test]
fn kill_9_soak() {
    let trials: u64 = std::env::var("FETCH_SOAK_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let msgs = messages(300);
    let want = expected_messages(&msgs);
    let mut kills = 0;
    for trial in 0..trials {
        let mut rng = trial.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |max: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % max.max(1)
        };
        let keep = trial % 2 == 1;
        let env = Env::new();
        let server = Pop3Server::start(ServerConfig::default(), msgs.clone());
        let mut args = scripted_pop3(server.port);
        args.extend(Dest::Maildir.args(&env));
        if keep {
            args.push("--keep".into());
        }
        // Up to 5 kills per trial, each at a random moment, then a run
        // that may finish.
        for _ in 0..5 {
            let mut child = env.cmd().args(&args).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(next(120)));
            if child.try_wait().unwrap().is_none() {
                let _ = child.kill();
                kills += 1;
            }
            let _ = child.wait();
        }
        let out = env.run_args(&args);
        assert_eq!(out.code, 0, "trial {trial}: {out:?}");
        assert!(
            maildir_messages(&env.maildir()) == want,
            "trial {trial}: lost or duplicated mail"
        );
        assert_eq!(
            server.remaining().len(),
            if keep { msgs.len() } else { 0 },
            "trial {trial}"
        );
        assert!(tmp_files(&env.maildir()).is_empty(), "trial {trial}");
    }
    eprintln!("kill -9 soak: {trials} trials, {kills} kills, 0 lost, 0 duplicated");
}
