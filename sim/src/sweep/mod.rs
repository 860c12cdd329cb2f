//! Boot-time sweeps: every relocation strategy booted at every max-CPU count, to see how each
//! one's boot time (and, with hot-add, its hot-add latency) grows with the machine
//! (DESIGN.md §6, §8).
//!
//! A sweep is the cross product of strategies and max-CPU counts. Each point is an ordinary
//! scenario, built as TOML text and checked by [`Scenario::from_str`], so a sweep point runs
//! exactly what `smmsim run` would run from the same file. The flow:
//! 1. [`SweepSpec::check`] refuses bad input before anything boots: no strategy or count,
//!    a count outside 1..=4096, `present` above a count;
//! 2. [`SweepSpec::points`] lists the points, strategy by strategy, counts ascending;
//! 3. [`run_sweep`] runs them on `jobs` host threads, the costliest first, and hands each
//!    finished [`SweepRow`] to the caller as it completes (for progress and incremental CSV);
//! 4. each point ([`run_point`]) boots the `boot` image with no scenario events, so the guest
//!    exits right after its boot report and the run's cycles are the boot time; in hot-add
//!    mode a second run adds the first absent CPU at 1.5 × that boot time (the guest then
//!    waits for one hot-plug event) and reports that event's window;
//! 5. [`csv`] writes the rows, [`plot`] draws them.
//!
//! A point that fails (a firmware error, the cycle limit, a machine that cannot be built) is
//! a row with its [`Outcome`]; the sweep goes on.

pub mod csv;
pub mod plot;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use smmsim_traces::{Event, EventKind};

use crate::batch::runner::error_chain;
use crate::machine::{
    DEFAULT_MAX_CYCLES, DEFAULT_TSEG_MBYTES, EXIT_CYCLE_LIMIT, EXIT_HALTED, EXIT_SHUTDOWN, MAX_CPUS,
};
use crate::recorder::EventConsumer;
use crate::scenario::{Scenario, Strategy};
use crate::scenario_run::{run_scenario, ScenarioReport};
use crate::scheduler::ExecMode;

/// The max-CPU counts of a sweep when none are given: the powers of two from 1 to 4,096.
pub const DEFAULT_MAX_CPUS: [u32; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// TSEG bytes the `boot` image needs per possible CPU: one 8 KiB SMM tile (SMBASE stride).
pub const TSEG_BYTES_PER_CPU: u64 = 8 << 10;
/// TSEG bytes the `boot` image needs besides the tiles (its SMM data and handler copies).
pub const TSEG_FIXED_BYTES: u64 = 32 << 10;

/// What to sweep: which strategies, which max-CPU counts, and how each point runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepSpec {
    /// The strategies, in the order rows and legend list them.
    pub strategies: Vec<Strategy>,
    /// The max-CPU counts, ascending and without repeats (see [`parse_max_cpus`]).
    pub max_cpus: Vec<u32>,
    /// CPUs present at reset for every strategy but `max-cpus`, whose point at count M has
    /// all M present (that is the strategy) and keeps `present` of them after boot.
    pub present: u32,
    /// Also measure one hot-add per point (the first absent CPU, APIC ID = `present`).
    pub hotadd: bool,
    /// How each run's cores share the host.
    pub mode: ExecMode,
    /// The cycle limit of each run.
    pub max_cycles: u64,
}

impl Default for SweepSpec {
    /// Every strategy at every default count, one CPU present, boot only, deterministic.
    fn default() -> SweepSpec {
        SweepSpec {
            strategies: Strategy::ALL.to_vec(),
            max_cpus: DEFAULT_MAX_CPUS.to_vec(),
            present: 1,
            hotadd: false,
            mode: ExecMode::Deterministic,
            max_cycles: DEFAULT_MAX_CYCLES,
        }
    }
}

/// Why a sweep cannot start; each message names the bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SweepError {
    /// `--strategies` named nothing.
    #[error("no strategy to sweep (give `all` or names from: {})", Strategy::NAMES.join(", "))]
    NoStrategy,
    /// A strategy name is not known.
    #[error(transparent)]
    UnknownStrategy(#[from] crate::scenario::UnknownName),
    /// `--maxcpus` named nothing.
    #[error("no max-CPU count to sweep (give a list like 1,2,4)")]
    NoMaxCpus,
    /// A max-CPU count is not a number.
    #[error("max-CPU count {text:?} is not a whole number")]
    NotANumber {
        /// The text given.
        text: String,
    },
    /// A max-CPU count is outside what a machine can have.
    #[error("max-CPU count {max_cpus} is outside 1..={MAX_CPUS}")]
    MaxCpusOutOfRange {
        /// The count given.
        max_cpus: u64,
    },
    /// `present` is 0.
    #[error("--present must be at least 1 (the boot CPU)")]
    NoPresentCpu,
    /// `present` exceeds a max-CPU count of the sweep.
    #[error(
        "--present {present} is above max-CPU count {max_cpus}: every point needs \
         present <= maxcpus (drop the smaller counts or lower --present)"
    )]
    PresentAboveMaxCpus {
        /// The present count.
        present: u32,
        /// The smallest max-CPU count of the sweep.
        max_cpus: u32,
    },
    /// The cycle limit is 0.
    #[error("--max-cycles must be at least 1")]
    NoCycles,
}

/// Reads a strategy list: `all`, or names separated by commas (`smbase-smram,formula`).
/// Repeats are dropped, the first mention keeping its place.
pub fn parse_strategies(text: &str) -> Result<Vec<Strategy>, SweepError> {
    let mut strategies = Vec::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let found: Vec<Strategy> = if name == "all" {
            Strategy::ALL.to_vec()
        } else {
            vec![name.parse()?]
        };
        for strategy in found {
            if !strategies.contains(&strategy) {
                strategies.push(strategy);
            }
        }
    }
    if strategies.is_empty() {
        return Err(SweepError::NoStrategy);
    }
    Ok(strategies)
}

/// Reads a max-CPU list: counts from 1 to 4,096 separated by commas (`1,16,256`). The result
/// is sorted and without repeats, the order the plot's x axis and the CSV want.
pub fn parse_max_cpus(text: &str) -> Result<Vec<u32>, SweepError> {
    let mut counts = Vec::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let count: u64 = part.parse().map_err(|_| SweepError::NotANumber {
            text: part.to_owned(),
        })?;
        if count == 0 || count > u64::from(MAX_CPUS) {
            return Err(SweepError::MaxCpusOutOfRange { max_cpus: count });
        }
        counts.push(count as u32);
    }
    if counts.is_empty() {
        return Err(SweepError::NoMaxCpus);
    }
    counts.sort_unstable();
    counts.dedup();
    Ok(counts)
}

/// The extended TSEG a machine with `max_cpus` possible CPUs needs for the `boot` image:
/// `max_cpus` × 8 KiB + 32 KiB, rounded up to a power of two MiB and never below QEMU's
/// default of 16 MiB (so sweeps up to about 2,044 CPUs use the same TSEG as `smmsim run`).
pub fn tseg_mbytes_for(max_cpus: u32) -> u16 {
    let bytes = u64::from(max_cpus) * TSEG_BYTES_PER_CPU + TSEG_FIXED_BYTES;
    let mbytes = bytes.div_ceil(1 << 20).next_power_of_two();
    // 4,096 CPUs need 64 MiB; the cap only guards the type against absurd counts.
    mbytes.clamp(u64::from(DEFAULT_TSEG_MBYTES), 2048) as u16
}

/// One point of a sweep: a strategy at a max-CPU count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SweepPoint {
    /// The strategy.
    pub strategy: Strategy,
    /// Possible CPUs.
    pub max_cpus: u32,
    /// CPUs present at reset for every strategy but `max-cpus`; for `max-cpus`, the CPUs
    /// that stay after boot.
    pub present: u32,
}

impl SweepPoint {
    /// CPUs present at reset: all `max_cpus` for `max-cpus`, else `present`.
    pub fn cpus_at_reset(self) -> u32 {
        match self.strategy {
            Strategy::MaxCpus => self.max_cpus,
            _ => self.present,
        }
    }

    /// The extended TSEG this point's machine gets ([`tseg_mbytes_for`]).
    pub fn tseg_mbytes(self) -> u16 {
        tseg_mbytes_for(self.max_cpus)
    }

    /// The APIC ID a hot-add sweep adds: the first CPU absent after boot, if there is one.
    pub fn hotadd_apic_id(self) -> Option<u32> {
        (self.present < self.max_cpus).then_some(self.present)
    }

    /// The scenario file text of this point: the `boot` image with this strategy and counts,
    /// the TSEG it needs, and either no events (the guest exits after its boot report) or
    /// one `cpu-add` at cycle `hotadd_at` (the guest waits for it, serves it, exits).
    pub fn scenario_text(self, spec: &SweepSpec, hotadd_at: Option<u64>) -> String {
        let mode = match spec.mode {
            ExecMode::Deterministic => "deterministic",
            ExecMode::Parallel => "parallel",
        };
        let mut text = format!(
            "name = \"sweep {strategy} maxcpus {max_cpus}\"\n\n\
             [machine]\n\
             cpus = {present}\n\
             maxcpus = {max_cpus}\n\
             strategy = \"{strategy}\"\n\
             tseg_mbytes = {tseg}\n\
             mode = \"{mode}\"\n\
             max_cycles = {max_cycles}\n",
            strategy = self.strategy.name(),
            max_cpus = self.max_cpus,
            present = self.present,
            tseg = self.tseg_mbytes(),
            max_cycles = spec.max_cycles,
        );
        if self.strategy == Strategy::MaxCpus {
            // A CPU re-added after the boot-time removal keeps its SMBASE (DESIGN.md §6).
            text.push_str("hotadd_reset = false\n");
        }
        text.push_str("\n[firmware]\nbuiltin = \"boot\"\n");
        if let (Some(at), Some(apic_id)) = (hotadd_at, self.hotadd_apic_id()) {
            text.push_str(&format!(
                "\n[[event]]\nat = {at}\naction = \"cpu-add\"\napic_id = {apic_id}\n"
            ));
        }
        text
    }

    /// This point's scenario, checked as `smmsim run` checks a file.
    pub fn scenario(
        self,
        spec: &SweepSpec,
        hotadd_at: Option<u64>,
    ) -> Result<Scenario, crate::scenario::ScenarioError> {
        let origin = format!("sweep-{}-{}.toml", self.strategy.name(), self.max_cpus);
        Scenario::from_str(&self.scenario_text(spec, hotadd_at), Path::new(&origin))
    }

    /// A rough relative host cost, for starting the costliest points first: `max-cpus` runs
    /// every possible CPU, the others essentially one.
    fn expected_cost(self) -> u64 {
        match self.strategy {
            Strategy::MaxCpus => u64::from(self.max_cpus) * 64,
            _ => u64::from(self.max_cpus),
        }
    }
}

impl SweepSpec {
    /// Refuses a sweep that could not run every point; nothing has booted yet.
    pub fn check(&self) -> Result<(), SweepError> {
        if self.strategies.is_empty() {
            return Err(SweepError::NoStrategy);
        }
        let Some(&smallest) = self.max_cpus.iter().min() else {
            return Err(SweepError::NoMaxCpus);
        };
        if let Some(&bad) = self
            .max_cpus
            .iter()
            .find(|&&count| count == 0 || count > MAX_CPUS)
        {
            return Err(SweepError::MaxCpusOutOfRange {
                max_cpus: u64::from(bad),
            });
        }
        if self.present == 0 {
            return Err(SweepError::NoPresentCpu);
        }
        if self.present > smallest {
            return Err(SweepError::PresentAboveMaxCpus {
                present: self.present,
                max_cpus: smallest,
            });
        }
        if self.max_cycles == 0 {
            return Err(SweepError::NoCycles);
        }
        Ok(())
    }

    /// Every point, strategy by strategy in the given order, counts in the given order.
    pub fn points(&self) -> Vec<SweepPoint> {
        self.strategies
            .iter()
            .flat_map(|&strategy| {
                self.max_cpus.iter().map(move |&max_cpus| SweepPoint {
                    strategy,
                    max_cpus,
                    present: self.present,
                })
            })
            .collect()
    }
}

/// How a point ended, as the CSV's `outcome` column names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest booted (and served the hot-add) and exited with status 0.
    Ok,
    /// The guest exited with this non-zero debug-exit value (the `boot` image's error codes:
    /// 1 no fw_cfg, 2 unsupported CPU count, 3 SMI feature negotiation failed, …).
    GuestExit(u32),
    /// Every CPU halted with nothing to wake it.
    Halted,
    /// A CPU triple-faulted.
    Shutdown,
    /// The cycle limit came first.
    CycleLimit,
    /// Hot-add mode: the added CPU never printed its online line.
    HotaddIncomplete,
    /// Hot-add mode: the guest was not ready for hot-plug when the CPU was added, so the
    /// latency would include part of the boot.
    HotaddBeforeReady,
    /// Hot-add mode: no CPU is absent after boot (maxcpus = present), so nothing was added.
    NoHotadd,
    /// The point could not run: its scenario or machine was refused.
    Error,
}

impl Outcome {
    /// The token written to the CSV: lower case, no spaces or commas.
    pub fn token(&self) -> String {
        match self {
            Outcome::Ok => "ok".to_owned(),
            Outcome::GuestExit(value) => format!("guest-exit-{value}"),
            Outcome::Halted => "halted".to_owned(),
            Outcome::Shutdown => "shutdown".to_owned(),
            Outcome::CycleLimit => "cycle-limit".to_owned(),
            Outcome::HotaddIncomplete => "hotadd-incomplete".to_owned(),
            Outcome::HotaddBeforeReady => "hotadd-before-ready".to_owned(),
            Outcome::NoHotadd => "no-hotadd".to_owned(),
            Outcome::Error => "error".to_owned(),
        }
    }

    /// Whether the point measured what it was meant to.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// How a run with process exit status `status` ended, in these terms.
    fn of_status(status: i32) -> Outcome {
        match status {
            1 => Outcome::Ok,
            EXIT_HALTED => Outcome::Halted,
            EXIT_SHUTDOWN => Outcome::Shutdown,
            EXIT_CYCLE_LIMIT => Outcome::CycleLimit,
            odd => Outcome::GuestExit((odd as u32) >> 1),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token())
    }
}

/// The boot figures of a point.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BootFigures {
    /// Simulated cycles from reset to the guest's exit after its boot report (the whole run;
    /// up to the limit for a run that never finished).
    pub boot_cycles: u64,
    /// The same in simulated milliseconds.
    pub boot_ms: f64,
    /// SMIs raised during boot, on any CPU, from any source.
    pub smis: u64,
    /// SMM entries during boot, on any CPU.
    pub smm_entries: u64,
    /// Simulated time in SMM during boot, summed over CPUs, in milliseconds.
    pub smm_ms: f64,
}

/// The hot-add figures of a point (hot-add mode).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HotaddFigures {
    /// The CPU added.
    pub apic_id: u32,
    /// The cycle it was added at (1.5 × the boot cycles).
    pub at_cycle: u64,
    /// Cycles from the platform's add to the CPU's `cpu N online` line, if it came.
    pub latency_cycles: Option<u64>,
    /// The same in simulated microseconds.
    pub latency_us: Option<f64>,
    /// SMIs raised in that window.
    pub smis: u64,
    /// SMM entries in that window.
    pub smm_entries: u64,
    /// Simulated time in SMM in that window, summed over CPUs, in microseconds.
    pub smm_us: f64,
    /// Host seconds of the hot-add run (boot included).
    pub host_seconds: f64,
}

/// One finished point: what the CSV row and the plot show.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    /// The point.
    pub point: SweepPoint,
    /// CPUs present at reset ([`SweepPoint::cpus_at_reset`]).
    pub present_at_reset: u32,
    /// The extended TSEG its machine had, in MiB.
    pub tseg_mbytes: u16,
    /// The boot figures, unless the point could not run at all.
    pub boot: Option<BootFigures>,
    /// Host seconds of the boot run: building the machine, running it, tearing it down.
    pub host_seconds: f64,
    /// The hot-add figures (hot-add mode, when a CPU was added).
    pub hotadd: Option<HotaddFigures>,
    /// How the point ended.
    pub outcome: Outcome,
    /// Why it failed, in words, when it did (for the progress line; not in the CSV).
    pub detail: String,
}

/// Keeps the last console line of a run: what a failing guest said about why.
#[derive(Default)]
struct LastConsoleLine(Option<String>);

impl EventConsumer for LastConsoleLine {
    fn consume(&mut self, events: &[Event]) {
        for event in events {
            if let EventKind::ConsoleLine { text } = &event.kind {
                self.0 = Some(text.clone());
            }
        }
    }
}

/// A run of one scenario: its report (or why it could not run), the guest's last console
/// line and the host seconds it took, teardown included.
struct Measured {
    report: Result<ScenarioReport, String>,
    last_line: Option<String>,
    host_seconds: f64,
}

fn measure(point: SweepPoint, spec: &SweepSpec, hotadd_at: Option<u64>) -> Measured {
    let started = Instant::now();
    let mut last_line = LastConsoleLine::default();
    let report = match point.scenario(spec, hotadd_at) {
        Err(error) => Err(error.to_string()),
        Ok(scenario) => run_scenario(
            &scenario,
            Box::new(std::io::sink()),
            Some(&mut last_line),
            false,
        )
        .map_err(|error| error_chain(&error)),
    };
    // `run_scenario` drops the machine (every core and its thread) before returning, so the
    // time includes the teardown a 4,096-CPU machine costs.
    Measured {
        report,
        last_line: last_line.0,
        host_seconds: started.elapsed().as_secs_f64(),
    }
}

fn cycles_to_ms(cycles: u64, clock_hz: u64) -> f64 {
    cycles as f64 * 1e3 / clock_hz as f64
}

/// Why a run did not end as it should, from its outcome and the guest's last words.
fn failure_detail(report: &ScenarioReport, last_line: Option<&str>) -> String {
    match last_line {
        Some(line) => format!("{}; guest's last line: {line:?}", report.outcome),
        None => report.outcome.clone(),
    }
}

/// Runs one point: its boot and, in hot-add mode, a second run with one hot-add.
pub fn run_point(spec: &SweepSpec, point: SweepPoint) -> SweepRow {
    let mut row = SweepRow {
        point,
        present_at_reset: point.cpus_at_reset(),
        tseg_mbytes: point.tseg_mbytes(),
        boot: None,
        host_seconds: 0.0,
        hotadd: None,
        outcome: Outcome::Error,
        detail: String::new(),
    };
    let boot = measure(point, spec, None);
    row.host_seconds = boot.host_seconds;
    let report = match boot.report {
        Ok(report) => report,
        Err(error) => {
            row.detail = error;
            return row;
        }
    };
    row.boot = Some(BootFigures {
        boot_cycles: report.boot_cycles,
        boot_ms: cycles_to_ms(report.boot_cycles, report.clock_hz),
        smis: report.smis_by_source.values().sum(),
        smm_entries: report.smm_entries,
        smm_ms: cycles_to_ms(report.smm_cycles_by_cpu.values().sum(), report.clock_hz),
    });
    row.outcome = Outcome::of_status(report.status);
    if !row.outcome.is_ok() {
        row.detail = failure_detail(&report, boot.last_line.as_deref());
        return row;
    }
    if spec.hotadd {
        hot_add(spec, point, &report, &mut row);
    }
    row
}

/// The hot-add run of a point whose boot went well: adds the first absent CPU at 1.5 × the
/// boot time — late enough that the guest is surely polling for hot-plug events (its boot
/// with one event expected differs only in that count), early enough that the wait costs
/// little host time — and fills in the row's hot-add figures and outcome.
fn hot_add(spec: &SweepSpec, point: SweepPoint, boot: &ScenarioReport, row: &mut SweepRow) {
    let Some(apic_id) = point.hotadd_apic_id() else {
        row.outcome = Outcome::NoHotadd;
        row.detail = format!("no CPU is absent with maxcpus {}", point.max_cpus);
        return;
    };
    let at_cycle = boot.boot_cycles + boot.boot_cycles.div_ceil(2);
    let run = measure(point, spec, Some(at_cycle));
    let mut figures = HotaddFigures {
        apic_id,
        at_cycle,
        host_seconds: run.host_seconds,
        ..HotaddFigures::default()
    };
    let report = match run.report {
        Ok(report) => report,
        Err(error) => {
            row.hotadd = Some(figures);
            row.outcome = Outcome::Error;
            row.detail = error;
            return;
        }
    };
    let window = report
        .hotplug
        .iter()
        .find(|window| window.action == "cpu-add" && window.apic_id == apic_id);
    if let Some(window) = window {
        figures.latency_cycles = window.latency_cycles;
        figures.latency_us = window
            .latency_cycles
            .map(|cycles| cycles_to_ms(cycles, report.clock_hz) * 1e3);
        figures.smis = window.smis_raised;
        figures.smm_entries = window.smm_entries;
        figures.smm_us =
            cycles_to_ms(window.smm_cycles_by_cpu.values().sum(), report.clock_hz) * 1e3;
    }
    row.hotadd = Some(figures);
    // The report's boot time is the guest's "ready for hot-plug" line, or the whole run when
    // it never printed one.
    let ready_in_time = report.boot_cycles < at_cycle;
    row.outcome = match Outcome::of_status(report.status) {
        Outcome::Ok if !ready_in_time => Outcome::HotaddBeforeReady,
        Outcome::Ok if figures.latency_cycles.is_none() => Outcome::HotaddIncomplete,
        outcome => outcome,
    };
    if !row.outcome.is_ok() {
        let mut detail = failure_detail(&report, run.last_line.as_deref());
        for refused in &report.refused_actions {
            detail.push_str("; refused: ");
            detail.push_str(refused);
        }
        if !ready_in_time {
            detail.push_str(&format!(
                "; ready for hot-plug at cycle {}, the add came at {at_cycle}",
                report.boot_cycles
            ));
        }
        row.detail = detail;
    }
}

/// Runs every point of `spec` on up to `jobs` host threads (at least one) and returns the
/// rows in [`SweepSpec::points`] order. `on_row(index, row)` is called on the calling thread
/// as each point finishes, `index` being its place in that order, so the caller can report
/// progress and write rows while the sweep goes on.
///
/// Points start costliest first (`max-cpus` at the largest counts), so with several jobs the
/// longest point does not start last and leave the other threads idle. Each point's own
/// machine runs its cores on their own threads as always; `jobs` only says how many points
/// run at once.
pub fn run_sweep(
    spec: &SweepSpec,
    jobs: usize,
    mut on_row: impl FnMut(usize, &SweepRow),
) -> Vec<SweepRow> {
    let points = spec.points();
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(points[index].expected_cost()));
    let next = AtomicUsize::new(0);
    let mut rows: Vec<Option<SweepRow>> = vec![None; points.len()];
    let jobs = jobs.clamp(1, points.len().max(1));
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<(usize, SweepRow)>();
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let (points, order, next) = (&points, &order, &next);
            scope.spawn(move || {
                while let Some(&index) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let row = run_point(spec, points[index]);
                    if done_tx.send((index, row)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        for (index, row) in done_rx {
            on_row(index, &row);
            rows[index] = Some(row);
        }
    });
    rows.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tseg_grows_with_maxcpus_in_powers_of_two_from_16_mib() {
        assert_eq!(tseg_mbytes_for(1), 16);
        // 2,044 tiles + 32 KiB fill 16 MiB exactly; one more CPU needs 32.
        assert_eq!(tseg_mbytes_for(2044), 16);
        assert_eq!(tseg_mbytes_for(2045), 32);
        assert_eq!(tseg_mbytes_for(2048), 32);
        assert_eq!(tseg_mbytes_for(4096), 64);
    }

    #[test]
    fn lists_parse_and_bad_values_are_named() {
        assert_eq!(parse_strategies("all"), Ok(Strategy::ALL.to_vec()));
        assert_eq!(
            parse_strategies("formula, controller,formula"),
            Ok(vec![Strategy::Formula, Strategy::Controller])
        );
        let unknown = parse_strategies("formula,maxcpus").expect_err("unknown");
        assert!(unknown.to_string().contains("\"maxcpus\""), "{unknown}");
        assert_eq!(parse_strategies(" , "), Err(SweepError::NoStrategy));
        assert_eq!(parse_max_cpus("4,1,4,2"), Ok(vec![1, 2, 4]));
        assert_eq!(
            parse_max_cpus("1,0"),
            Err(SweepError::MaxCpusOutOfRange { max_cpus: 0 })
        );
        assert_eq!(
            parse_max_cpus("5000"),
            Err(SweepError::MaxCpusOutOfRange { max_cpus: 5000 })
        );
        assert!(matches!(
            parse_max_cpus("1,two"),
            Err(SweepError::NotANumber { .. })
        ));
    }

    #[test]
    fn present_must_fit_every_point() {
        let spec = SweepSpec {
            max_cpus: vec![2, 4],
            present: 3,
            ..SweepSpec::default()
        };
        assert_eq!(
            spec.check(),
            Err(SweepError::PresentAboveMaxCpus {
                present: 3,
                max_cpus: 2
            })
        );
        assert_eq!(SweepSpec::default().check(), Ok(()));
        assert_eq!(SweepSpec::default().points().len(), 4 * 13);
    }

    #[test]
    fn every_point_is_a_valid_scenario() {
        let spec = SweepSpec {
            present: 1,
            ..SweepSpec::default()
        };
        for point in spec.points() {
            let scenario = point.scenario(&spec, Some(10_000_000)).expect("valid");
            let config = scenario.machine_config();
            assert_eq!(config.cpus, point.cpus_at_reset());
            assert_eq!(config.max_cpus, point.max_cpus);
            assert_eq!(config.tseg_mbytes, point.tseg_mbytes());
            assert_eq!(
                scenario.machine.hotadd_reset,
                point.strategy != Strategy::MaxCpus
            );
            assert_eq!(scenario.events.len(), usize::from(point.max_cpus > 1));
        }
    }

    #[test]
    fn run_statuses_map_to_outcomes() {
        assert_eq!(Outcome::of_status(1), Outcome::Ok);
        assert_eq!(Outcome::of_status(5), Outcome::GuestExit(2));
        assert_eq!(Outcome::of_status(EXIT_CYCLE_LIMIT), Outcome::CycleLimit);
        assert_eq!(Outcome::GuestExit(2).token(), "guest-exit-2");
    }
}
