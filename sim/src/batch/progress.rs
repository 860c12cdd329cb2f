//! What a running batch shows on stderr: a progress bar for a person at a terminal, plain
//! lines for a log file.
//!
//! - When stderr is a terminal: an indicatif bar with the elapsed time, the scenarios done
//!   out of all, the ETA and the pass/fail counts; each scenario that does not pass is
//!   printed above the bar as it ends, so failures are seen at once.
//! - Otherwise (a Slurm or Kubernetes log, a pipe): one line per finished scenario,
//!   `[3/12] passed  scenarios/formula.toml  0.41 s`, with the reason after one that did
//!   not pass — lines a log keeps and `grep` finds, with no control characters.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::results::{Outcome, ResultLine};
use super::summary::Counts;

/// The bar's layout: elapsed, bar, done/all, ETA, then the counts.
const BAR_TEMPLATE: &str = "{elapsed_precise} [{wide_bar}] {pos}/{len} ETA {eta} {msg}";

/// How often the bar redraws on its own, so the elapsed time moves during long scenarios.
const TICK: Duration = Duration::from_millis(250);

/// Progress of one batch.
#[derive(Debug)]
pub struct Progress {
    /// The bar, when stderr is a terminal.
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    counts: Counts,
}

impl Progress {
    /// Progress over `total` scenarios: a bar when `terminal`, else plain lines.
    pub fn new(total: u64, terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::new(total).with_style(style);
            bar.enable_steady_tick(TICK);
            bar
        });
        let progress = Progress {
            bar,
            total,
            done: 0,
            counts: Counts::default(),
        };
        progress.update_message();
        progress
    }

    /// Prints `text` on its own line without breaking the bar.
    pub fn println(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => stderr_line(text),
        }
    }

    /// Records a finished scenario.
    pub fn finished(&mut self, line: &ResultLine) {
        self.done += 1;
        self.counts.add(line.outcome);
        let reason = line.reason().map(|reason| format!(": {reason}"));
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                if let Some(reason) = reason {
                    bar.println(format!("{:<8} {}{reason}", line.outcome, line.id));
                }
                self.update_message();
            }
            None => {
                let width = self.total.to_string().len();
                stderr_line(&format!(
                    "[{:>width$}/{}] {:<8} {}  {:.2} s{}",
                    self.done,
                    self.total,
                    line.outcome,
                    line.id,
                    line.host_seconds,
                    reason.unwrap_or_default()
                ));
            }
        }
    }

    /// Removes the bar (plain lines need no ending).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }

    fn update_message(&self) {
        if let Some(bar) = &self.bar {
            let mut message = format!("{} passed", self.counts.passed);
            for (outcome, count) in [
                (Outcome::Failed, self.counts.failed),
                (Outcome::Crashed, self.counts.crashed),
                (Outcome::Invalid, self.counts.invalid),
            ] {
                if count > 0 {
                    message.push_str(&format!(", {count} {outcome}"));
                }
            }
            bar.set_message(message);
        }
    }
}

/// Writes `text` and a newline to stderr. A closed stderr (`smmsim batch … 2>&1 | head`)
/// loses the progress, never the batch: the error is ignored.
pub fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
