//! Progress of long work (an import of many files): a bar on a terminal (files, Bundles/s,
//! time left), and `info` lines otherwise (the daemon, a pipe, a log file): one when the work
//! starts, one every [`LOG_EVERY`] while it runs, one when it ends.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a line is logged while work runs (no bar).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A bar on standard error (a terminal).
    Bar,
    /// `info` lines.
    Log,
}

impl Show {
    /// A bar when standard error is a terminal, else log lines.
    pub fn for_stderr() -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Show::Bar
        } else {
            Show::Log
        }
    }
}

/// The progress of one piece of work over a known number of files.
pub struct Progress {
    what: &'static str,
    files: u64,
    bytes: u64,
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    logged: Instant,
    files_done: u64,
    bytes_done: u64,
    bundles: u64,
}

impl Progress {
    /// Starts showing `what` (`import`, `landing folder`) over `files` files of `bytes` bytes.
    pub fn start(what: &'static str, files: u64, bytes: u64, show: Show) -> Self {
        let bar = (show == Show::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(files), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} files, {msg}, {elapsed} elapsed, about {eta} left",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what);
            bar.set_message("0 Bundles");
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        if bar.is_none() {
            tracing::info!(message = "Started.", work = what, files, bytes);
        }
        let now = Instant::now();
        Progress {
            what,
            files,
            bytes,
            bar,
            state: Mutex::new(State {
                started: now,
                logged: now,
                files_done: 0,
                bytes_done: 0,
                bundles: 0,
            }),
        }
    }

    /// Counts one more file done, of `bytes` bytes holding `bundles` delivery reports.
    pub fn file_done(&self, bytes: u64, bundles: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.files_done += 1;
        s.bytes_done += bytes;
        s.bundles += bundles;
        let elapsed = s.started.elapsed();
        let rate = per_second(s.bundles, elapsed);
        if let Some(bar) = &self.bar {
            bar.set_position(s.files_done);
            bar.set_message(format!("{} Bundles, {rate} Bundles/s", s.bundles));
            return;
        }
        if s.logged.elapsed() >= LOG_EVERY {
            s.logged = Instant::now();
            let left = seconds_left(s.bytes_done, self.bytes, elapsed);
            tracing::info!(
                message = "Progress.",
                work = self.what,
                files_done = s.files_done,
                files = self.files,
                bundles = s.bundles,
                bundles_per_second = rate,
                seconds_left = left,
            );
        }
    }

    /// Ends the work: the bar is cleared, or a last line logged.
    pub fn finish(&self) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = s.started.elapsed();
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => tracing::info!(
                message = "Done.",
                work = self.what,
                files = s.files_done,
                bundles = s.bundles,
                bundles_per_second = per_second(s.bundles, elapsed),
                seconds = elapsed.as_secs(),
            ),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.abandon();
        }
    }
}

/// Whole units per second.
fn per_second(n: u64, elapsed: Duration) -> u64 {
    let ms = elapsed.as_millis().max(1);
    u64::try_from(u128::from(n) * 1000 / ms).unwrap_or(u64::MAX)
}

/// Seconds left at the rate so far, by bytes (files differ in size).
fn seconds_left(done: u64, total: u64, elapsed: Duration) -> u64 {
    if done == 0 {
        return 0;
    }
    let left = total.saturating_sub(done);
    u64::try_from(u128::from(left) * elapsed.as_millis() / u128::from(done) / 1000)
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_time_left() {
        assert_eq!(per_second(500, Duration::from_secs(2)), 250);
        assert_eq!(per_second(5, Duration::ZERO), 5000);
        assert_eq!(seconds_left(25, 100, Duration::from_secs(10)), 30);
        assert_eq!(seconds_left(0, 100, Duration::from_secs(10)), 0);
        assert_eq!(seconds_left(100, 100, Duration::from_secs(10)), 0);
    }
}
