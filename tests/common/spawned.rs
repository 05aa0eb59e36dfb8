//! fetch running in the background (a daemon, an IDLE watcher, a run to
//! interrupt): waits that give up after a limit, SIGTERM, and its exit
//! status and stderr. One still running when dropped (a test that failed
//! first) is killed, so no daemon outlives its test.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Env, read_in_background};

/// A running fetch.
pub struct Spawned {
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

/// How a [`Spawned`] ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit code; -1 when a signal ended the process.
    pub code: i32,
    /// From the start of the wait (for [`Spawned::stop`], the signal).
    pub took: Duration,
    pub stderr: String,
}

impl Env {
    /// `fetch ARGS` in the background, stdout to /dev/null.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Spawned {
        let mut c = self.cmd();
        c.args(args);
        Spawned::start(c)
    }
}

impl Spawned {
    /// Starts `cmd` with stdout to /dev/null and stderr collected.
    pub fn start(mut cmd: Command) -> Spawned {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fetch");
        Spawned::adopt(child)
    }

    /// Takes over a child started with stdio of the caller's choosing
    /// (its stderr collected if piped).
    pub fn adopt(mut child: Child) -> Spawned {
        let stderr = child.stderr.take().map(read_in_background);
        Spawned { child, stderr }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Polls `ok` until it holds; after `limit`, kills fetch and fails,
    /// showing its stderr.
    #[track_caller]
    pub fn wait_until(&mut self, what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ok() {
            if start.elapsed() > limit {
                let stderr = self.kill();
                panic!("timed out waiting for {what}; stderr: {stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigterm(&self) {
        // SAFETY: sending a signal to our own child has no memory-safety
        // implications.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Waits for fetch to exit; after `limit`, kills it and fails.
    #[track_caller]
    pub fn wait_exit(&mut self, limit: Duration) -> Exit {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Exit {
                    code: status.code().unwrap_or(-1),
                    took: start.elapsed(),
                    stderr: self.stderr(),
                };
            }
            if start.elapsed() > limit {
                let stderr = self.kill();
                panic!("fetch did not exit within {limit:?}; stderr: {stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then [`Spawned::wait_exit`].
    #[track_caller]
    pub fn stop(mut self, limit: Duration) -> Exit {
        self.sigterm();
        self.wait_exit(limit)
    }

    /// Kills fetch and returns what it wrote to stderr.
    fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }

    /// What the exited fetch wrote to stderr (without waiting long for a
    /// child of its that still holds the pipe).
    fn stderr(&mut self) -> String {
        let Some(reader) = self.stderr.take() else {
            return String::new();
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !reader.is_finished() {
            return "(stderr still open)".into();
        }
        String::from_utf8_lossy(&reader.join().unwrap()).into_owned()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
