//! Progress on a terminal: one bar per account (bytes and messages done out
//! of the total, rate, ETA) drawn with indicatif on stderr, and only when
//! stderr is a terminal and neither `-q` nor `--json` is given. Otherwise
//! every method does nothing, so no escape code ever reaches a file or a
//! pipe.

use std::time::Duration;

use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::Ui;

pub struct Progress {
    bar: Option<ProgressBar>,
    messages: u64,
    done: u64,
}

impl Progress {
    pub fn new(ui: &Ui, account: &str) -> Progress {
        let bar = ui.wants_progress().then(|| {
            // One line per account, even when accounts run in parallel (-j).
            static MULTI: OnceLock<MultiProgress> = OnceLock::new();
            let multi =
                MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {msg} {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(crate::sanitize::escape(account));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            messages: 0,
            done: 0,
        }
    }

    /// More work found: `messages` messages of `bytes` bytes in all.
    pub fn add(&mut self, messages: u64, bytes: u64) {
        self.messages += messages;
        if let Some(b) = &self.bar {
            b.inc_length(bytes);
            b.set_message(format!("{}/{} msgs", self.done, self.messages));
        }
    }

    /// One message received, `bytes` of it.
    pub fn message_done(&mut self, bytes: u64) {
        self.done += 1;
        if let Some(b) = &self.bar {
            b.inc(bytes);
            b.set_message(format!("{}/{} msgs", self.done, self.messages));
        }
    }

    /// Remove the bar (before the summary line is printed).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
