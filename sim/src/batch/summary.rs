//! The summary at the end of a batch or a merge: how many scenarios passed, failed, crashed
//! or were invalid, the host time they took, and per strategy the mean boot time and mean
//! hot-add latency — the figures strategies are compared by (DESIGN.md §6).
//!
//! Means are taken over passed scenarios only: a failed run may have hung at its cycle limit,
//! and its "boot time" would then be the limit. Each mean is given in cycles and in
//! simulated time at the scenarios' own clocks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::results::{Outcome, ResultLine};
use crate::machine::human_nanos;

/// How many scenarios that did not pass the summary names one by one.
pub const NOT_PASSED_LISTED: usize = 20;

/// Scenarios by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Ran and met every expectation.
    pub passed: u64,
    /// Ran and missed one.
    pub failed: u64,
    /// The simulator panicked.
    pub crashed: u64,
    /// Could not be run.
    pub invalid: u64,
}

impl Counts {
    /// Counts one more scenario with `outcome`.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Crashed => self.crashed += 1,
            Outcome::Invalid => self.invalid += 1,
        }
    }

    /// All scenarios counted.
    pub fn total(&self) -> u64 {
        self.passed + self.failed + self.crashed + self.invalid
    }

    /// Whether every scenario counted passed (true for none).
    pub fn all_passed(&self) -> bool {
        self.passed == self.total()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} crashed, {} invalid",
            self.passed, self.failed, self.crashed, self.invalid
        )
    }
}

/// Sums for one strategy's means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StrategyFigures {
    /// Passed scenarios of the strategy.
    pub passed: u64,
    /// Their boot cycles, summed.
    pub boot_cycles: u128,
    /// Their boot time in nanoseconds, summed.
    pub boot_nanos: u128,
    /// Completed hot-adds (`cpu-add` windows with a latency).
    pub hotadds: u64,
    /// Their latencies in cycles, summed.
    pub hotadd_cycles: u128,
    /// Their latencies in nanoseconds, summed.
    pub hotadd_nanos: u128,
}

impl StrategyFigures {
    /// Mean boot (cycles, nanoseconds), when a scenario passed.
    pub fn mean_boot(&self) -> Option<(u128, u128)> {
        let n = u128::from(self.passed);
        (n > 0).then(|| (self.boot_cycles / n, self.boot_nanos / n))
    }

    /// Mean hot-add latency (cycles, nanoseconds), when a hot-add completed.
    pub fn mean_hotadd(&self) -> Option<(u128, u128)> {
        let n = u128::from(self.hotadds);
        (n > 0).then(|| (self.hotadd_cycles / n, self.hotadd_nanos / n))
    }
}

/// A scenario that did not pass, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotPassed {
    /// Its id.
    pub id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, in one line.
    pub reason: String,
}

/// The summary of a set of results.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Scenarios by outcome.
    pub counts: Counts,
    /// Host seconds the scenarios took, summed (more than the wall time when several ran
    /// at once).
    pub scenario_seconds: f64,
    /// Figures by strategy name.
    pub by_strategy: BTreeMap<String, StrategyFigures>,
    /// The scenarios that did not pass, in the order added.
    pub not_passed: Vec<NotPassed>,
}

impl Summary {
    /// Adds one result.
    pub fn add(&mut self, line: &ResultLine) {
        self.counts.add(line.outcome);
        self.scenario_seconds += line.host_seconds;
        if let Some(reason) = line.reason() {
            self.not_passed.push(NotPassed {
                id: line.id.clone(),
                outcome: line.outcome,
                reason,
            });
        }
        let (Outcome::Passed, Some(strategy)) = (line.outcome, &line.parameters.strategy) else {
            return;
        };
        let figures = self.by_strategy.entry(strategy.clone()).or_default();
        figures.passed += 1;
        figures.boot_cycles += u128::from(line.boot_cycles.unwrap_or(0));
        figures.boot_nanos += u128::from(line.boot_nanos.unwrap_or(0));
        let clock_hz = u128::from(line.clock_hz.unwrap_or(0));
        for window in &line.hotplug {
            if let ("cpu-add", Some(cycles)) = (window.action.as_str(), window.latency_cycles) {
                figures.hotadds += 1;
                figures.hotadd_cycles += u128::from(cycles);
                let nanos = (u128::from(cycles) * 1_000_000_000).checked_div(clock_hz);
                figures.hotadd_nanos += nanos.unwrap_or(0);
            }
        }
    }

    /// The summary of `lines`.
    pub fn of<'a>(lines: impl IntoIterator<Item = &'a ResultLine>) -> Summary {
        let mut summary = Summary::default();
        for line in lines {
            summary.add(line);
        }
        summary
    }

    /// The summary as text: the counts, the host time (with the batch's wall time when
    /// given), the per-strategy table and the scenarios that did not pass.
    pub fn render(&self, wall: Option<Duration>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} scenarios: {}", self.counts.total(), self.counts);
        let _ = match wall {
            Some(wall) => writeln!(
                out,
                "host time: {:.2} s wall, {:.2} s in scenarios",
                wall.as_secs_f64(),
                self.scenario_seconds
            ),
            None => writeln!(
                out,
                "host time: {:.2} s in scenarios",
                self.scenario_seconds
            ),
        };
        if !self.by_strategy.is_empty() {
            let _ = writeln!(
                out,
                "{:<14} {:>6}  {:<32}  mean hot-add latency (passed scenarios)",
                "strategy", "passed", "mean boot"
            );
            for (strategy, figures) in &self.by_strategy {
                let boot = figures.mean_boot().map_or_else(
                    || "-".to_owned(),
                    |(cycles, nanos)| format!("{cycles} cycles = {}", human_nanos(nanos)),
                );
                let hotadd = figures.mean_hotadd().map_or_else(
                    || "- (no completed hot-add)".to_owned(),
                    |(cycles, nanos)| {
                        format!(
                            "{cycles} cycles = {} over {} hot-adds",
                            human_nanos(nanos),
                            figures.hotadds
                        )
                    },
                );
                let _ = writeln!(
                    out,
                    "{strategy:<14} {:>6}  {boot:<32}  {hotadd}",
                    figures.passed
                );
            }
        }
        if !self.not_passed.is_empty() {
            let _ = writeln!(out, "not passed:");
            for entry in self.not_passed.iter().take(NOT_PASSED_LISTED) {
                let _ = writeln!(out, "  {:<8} {}: {}", entry.outcome, entry.id, entry.reason);
            }
            if self.not_passed.len() > NOT_PASSED_LISTED {
                let _ = writeln!(
                    out,
                    "  … and {} more",
                    self.not_passed.len() - NOT_PASSED_LISTED
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::results::{HotplugLine, Parameters};
    use std::path::Path;

    fn passed(strategy: &str, boot_cycles: u64, latencies: &[Option<u64>]) -> ResultLine {
        let parameters = Parameters {
            strategy: Some(strategy.to_owned()),
            ..Parameters::default()
        };
        let mut line = ResultLine::empty("x", Path::new("x"), parameters, None);
        line.outcome = Outcome::Passed;
        line.boot_cycles = Some(boot_cycles);
        line.boot_nanos = Some(boot_cycles / 2);
        line.clock_hz = Some(2_000_000_000);
        line.host_seconds = 0.5;
        line.hotplug = latencies
            .iter()
            .map(|&latency_cycles| HotplugLine {
                action: "cpu-add".to_owned(),
                apic_id: 1,
                start_cycle: 0,
                latency_cycles,
                smis_raised: 0,
                smm_entries: 0,
                smm_cycles: 0,
            })
            .collect();
        line
    }

    #[test]
    fn means_are_per_strategy_over_passed_scenarios_and_completed_hot_adds() {
        let mut failed = passed("formula", 1_000_000_000, &[Some(1)]);
        failed.outcome = Outcome::Failed;
        failed.message = Some("why".to_owned());
        let lines = [
            passed("formula", 100, &[Some(10), None]),
            passed("formula", 300, &[Some(30)]),
            passed("controller", 50, &[]),
            failed,
        ];
        let summary = Summary::of(&lines);
        assert_eq!(
            summary.counts,
            Counts {
                passed: 3,
                failed: 1,
                crashed: 0,
                invalid: 0
            }
        );
        let formula = summary.by_strategy["formula"];
        assert_eq!(formula.mean_boot(), Some((200, 100)));
        assert_eq!(formula.mean_hotadd(), Some((20, 10)));
        assert_eq!(summary.by_strategy["controller"].mean_hotadd(), None);
        assert!((summary.scenario_seconds - 2.0).abs() < 1e-9);

        let text = summary.render(Some(Duration::from_millis(1500)));
        assert!(text.starts_with("4 scenarios: 3 passed, 1 failed, 0 crashed, 0 invalid\n"));
        assert!(
            text.contains("host time: 1.50 s wall, 2.00 s in scenarios"),
            "{text}"
        );
        assert!(text.contains("200 cycles = 100 ns"), "{text}");
        assert!(text.contains("20 cycles = 10 ns over 2 hot-adds"), "{text}");
        assert!(text.contains("no completed hot-add"), "{text}");
        assert!(text.contains("  failed   x: why\n"), "{text}");
    }

    #[test]
    fn an_empty_summary_says_so() {
        let summary = Summary::default();
        assert!(summary.counts.all_passed());
        assert_eq!(
            summary.render(None),
            "0 scenarios: 0 passed, 0 failed, 0 crashed, 0 invalid\nhost time: 0.00 s in \
             scenarios\n"
        );
    }
}
