//! Running a scenario and judging it: the machine built from the scenario file, its timed
//! events scheduled, the events of the run watched, and a report with the figures users
//! compare strategies by (DESIGN.md §6, §8).
//!
//! 1. [`run_scenario`] builds the machine ([`Scenario::machine_config`]), adds the guest
//!    side's fw_cfg files, schedules every event (a reset carries the files of the boot that
//!    follows it), and runs it with a [`HotplugObserver`] (plus any other consumer, such as
//!    a trace file) watching;
//! 2. the observer pairs each hot-add with the console line `cpu XXXXXXXX online` the guest
//!    prints when the new CPU runs, each removal with the eject, and adds up per CPU the SMM
//!    time and SMM entries in each window;
//! 3. the report checks the scenario's expectations against the final SMBASE map, the
//!    console, the exit status and the set of present CPUs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use smmsim_traces::{Event, EventKind, SmiSource};

use crate::cpu::smm::{SAVE_AREA_START, SMI_ENTRY_OFFSET};
use crate::machine::{human_nanos, ConsoleSink, MachineAction, RunEnd, RunReport};
use crate::recorder::{EventConsumer, Fanout};
use crate::scenario::{EventAction, Scenario, SmbaseExpectation, Verdict};
use crate::Machine;

/// The console line the guest prints once it is ready for hot-plug events; the end of boot.
pub const READY_LINE: &str = "ready for hot-plug";

/// The line the guest prints when CPU `apic_id` runs guest code after a hot-add.
pub fn online_line(apic_id: u32) -> String {
    format!("cpu {apic_id:08X} online")
}

/// One hot-plug event as the run saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HotplugWindow {
    /// `cpu-add` or `cpu-remove`.
    pub action: &'static str,
    /// The CPU added or removed.
    pub apic_id: u32,
    /// When the platform acted.
    pub start_cycle: u64,
    /// When the guest finished with it: the CPU printed its online line, or was ejected.
    pub done_cycle: Option<u64>,
    /// `done_cycle - start_cycle`.
    pub latency_cycles: Option<u64>,
    /// SMIs raised in the window, on any CPU.
    pub smis_raised: u64,
    /// SMM entries in the window, on any CPU.
    pub smm_entries: u64,
    /// Cycles each CPU spent in SMM during the window, by APIC ID (CPUs that spent none are
    /// left out).
    pub smm_cycles_by_cpu: BTreeMap<u32, u64>,
}

/// Watches a run for the figures of [`ScenarioReport`].
#[derive(Debug, Default)]
pub struct HotplugObserver {
    /// The cycle of the guest's "ready for hot-plug" line, if it printed one.
    pub ready_cycle: Option<u64>,
    /// Every console line, in order.
    pub console: Vec<String>,
    /// The hot-plug windows, in event order.
    pub windows: Vec<HotplugWindow>,
    /// SMIs raised over the whole run, by source name.
    pub smis_by_source: BTreeMap<&'static str, u64>,
    /// SMM entries over the whole run.
    pub smm_entries: u64,
    /// SMBASE relocations over the whole run.
    pub relocations: u64,
    /// Cycles in SMM over the whole run, by CPU index.
    pub smm_cycles_by_cpu: BTreeMap<u32, u64>,
    /// Where each CPU currently in SMM entered it.
    smm_since: BTreeMap<u32, u64>,
    /// The windows still open, as indices into `windows`.
    open: Vec<usize>,
}

impl HotplugObserver {
    fn leave_smm(&mut self, cpu: u32, cycle: u64) {
        let Some(since) = self.smm_since.remove(&cpu) else {
            return;
        };
        *self.smm_cycles_by_cpu.entry(cpu).or_default() += cycle.saturating_sub(since);
        for &index in &self.open {
            let window = &mut self.windows[index];
            let overlap = cycle.saturating_sub(since.max(window.start_cycle));
            if overlap > 0 {
                *window.smm_cycles_by_cpu.entry(cpu).or_default() += overlap;
            }
        }
    }

    fn close(&mut self, action: &'static str, apic_id: u32, cycle: u64) {
        let found = self.open.iter().position(|&index| {
            let window = &self.windows[index];
            window.action == action && window.apic_id == apic_id
        });
        if let Some(position) = found {
            let index = self.open.remove(position);
            let window = &mut self.windows[index];
            window.done_cycle = Some(cycle);
            window.latency_cycles = Some(cycle - window.start_cycle);
        }
    }

    fn open(&mut self, action: &'static str, apic_id: u32, cycle: u64) {
        self.open.push(self.windows.len());
        self.windows.push(HotplugWindow {
            action,
            apic_id,
            start_cycle: cycle,
            ..HotplugWindow::default()
        });
    }

    fn observe(&mut self, event: &Event) {
        let cycle = event.cycle.0;
        match &event.kind {
            EventKind::SmiRaised { source } => {
                let name = match source {
                    SmiSource::ApmPort => "apm-port",
                    SmiSource::Ipi => "ipi",
                    SmiSource::Platform => "platform",
                };
                *self.smis_by_source.entry(name).or_default() += 1;
                for &index in &self.open {
                    self.windows[index].smis_raised += 1;
                }
            }
            EventKind::SmmEntry { .. } => {
                self.smm_entries += 1;
                self.smm_since.insert(event.cpu, cycle);
                for &index in &self.open {
                    self.windows[index].smm_entries += 1;
                }
            }
            EventKind::Rsm { .. } | EventKind::Reset { .. } | EventKind::Init => {
                self.leave_smm(event.cpu, cycle)
            }
            EventKind::SmbaseRelocated { .. } => self.relocations += 1,
            EventKind::HotAdd { apic_id } => self.open("cpu-add", *apic_id, cycle),
            EventKind::HotRemove { apic_id } => self.open("cpu-remove", *apic_id, cycle),
            EventKind::CpuEjected { apic_id } => {
                self.leave_smm(*apic_id, cycle);
                self.close("cpu-remove", *apic_id, cycle);
            }
            EventKind::ConsoleLine { text } => {
                if text == READY_LINE && self.ready_cycle.is_none() {
                    self.ready_cycle = Some(cycle);
                }
                if let Some(apic_id) = parse_online_line(text) {
                    self.close("cpu-add", apic_id, cycle);
                }
                self.console.push(text.clone());
            }
            _ => {}
        }
    }

    /// Ends the SMM residencies still open at `cycle` (the run's end).
    fn finish(&mut self, cycle: u64) {
        let inside: Vec<u32> = self.smm_since.keys().copied().collect();
        for cpu in inside {
            self.leave_smm(cpu, cycle);
        }
    }
}

/// The APIC ID of a `cpu XXXXXXXX online` line.
fn parse_online_line(text: &str) -> Option<u32> {
    let hex = text.strip_prefix("cpu ")?.strip_suffix(" online")?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

impl EventConsumer for HotplugObserver {
    fn consume(&mut self, events: &[Event]) {
        for event in events {
            self.observe(event);
        }
    }
}

/// One expectation and whether the run met it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpectationResult {
    /// What was expected, in words.
    pub expected: String,
    /// Whether the run met it.
    pub passed: bool,
    /// What the run did instead (empty when it passed).
    pub detail: String,
}

/// A CPU's SMBASE at the end of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SmbaseEntry {
    /// The CPU.
    pub apic_id: u32,
    /// Its SMBASE register.
    pub smbase: u64,
}

/// What `smmsim run` reports for one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name.
    pub scenario: String,
    /// The relocation strategy.
    pub strategy: &'static str,
    /// The behaviour profile.
    pub profile: &'static str,
    /// CPUs present at reset and possible.
    pub cpus: u32,
    /// Possible CPUs.
    pub max_cpus: u32,
    /// How the run ended, in words.
    pub outcome: String,
    /// The process exit status of the run.
    pub status: i32,
    /// Simulated cycles until the guest was ready for hot-plug (or the whole run if it never
    /// said so).
    pub boot_cycles: u64,
    /// The same in nanoseconds.
    pub boot_nanos: u64,
    /// Simulated cycles of the whole run.
    pub total_cycles: u64,
    /// Simulated clock rate.
    pub clock_hz: u64,
    /// Each hot-plug event.
    pub hotplug: Vec<HotplugWindow>,
    /// SMIs raised, by source.
    pub smis_by_source: BTreeMap<&'static str, u64>,
    /// SMM entries.
    pub smm_entries: u64,
    /// SMBASE relocations.
    pub relocations: u64,
    /// Cycles in SMM by CPU index.
    pub smm_cycles_by_cpu: BTreeMap<u32, u64>,
    /// The final SMBASE of every present CPU, by APIC ID.
    pub smbase_map: Vec<SmbaseEntry>,
    /// TSEG (base, size) at the end, if enabled.
    pub tseg: Option<(u64, u64)>,
    /// Non-SMM (reads, writes) of SMRAM that were blocked.
    pub smram_blocked: (u64, u64),
    /// Scenario actions the machine could not carry out.
    pub refused_actions: Vec<String>,
    /// What the safety checker found (DESIGN.md §9).
    pub checks: crate::machine::Checks,
    /// What the findings mean: blocked, exploitable or hang.
    pub verdict: Verdict,
    /// The expectations and their results.
    pub expectations: Vec<ExpectationResult>,
    /// Whether every expectation passed.
    pub passed: bool,
    /// Host seconds the run took.
    pub host_seconds: f64,
}

/// Why a scenario could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioRunError {
    /// The firmware image could not be opened.
    #[error("scenario {scenario}: cannot open its firmware image")]
    Image {
        /// The scenario's name.
        scenario: String,
        /// Why.
        #[source]
        source: crate::ImageError,
    },
    /// The machine could not be built.
    #[error("scenario {scenario}: cannot build the machine")]
    Machine {
        /// The scenario's name.
        scenario: String,
        /// Why.
        #[source]
        source: crate::MachineError,
    },
}

/// Builds the machine a scenario describes, with its fw_cfg files and scheduled events.
pub fn build_machine(
    scenario: &Scenario,
    console: ConsoleSink,
    trace_instructions: bool,
) -> Result<Machine, ScenarioRunError> {
    let image = scenario
        .firmware_image()
        .map_err(|source| ScenarioRunError::Image {
            scenario: scenario.name.clone(),
            source,
        })?;
    let mut config = scenario.machine_config();
    config.hotadd_reset = scenario.machine.hotadd_reset;
    config.trace_instructions = trace_instructions;
    let machine_error = |source| ScenarioRunError::Machine {
        scenario: scenario.name.clone(),
        source,
    };
    let mut machine = Machine::new(config, image, console).map_err(machine_error)?;
    for (name, bytes) in scenario.fw_cfg_files() {
        machine
            .add_fw_cfg_file(&name, bytes)
            .map_err(machine_error)?;
    }
    let mut resets = 0;
    for event in &scenario.events {
        let action = match event.action {
            EventAction::CpuAdd { apic_id } => MachineAction::CpuAdd { apic_id },
            EventAction::CpuRemove { apic_id } => MachineAction::CpuRemove { apic_id },
            EventAction::Reset { hard } => {
                resets += 1;
                MachineAction::Reset {
                    hard,
                    fw_cfg_files: scenario.fw_cfg_files_after_reset(resets),
                }
            }
        };
        machine.schedule(event.at_cycle, action);
    }
    Ok(machine)
}

/// Runs `scenario` to its end and judges it; `extra` (a trace file, …) sees every event too.
pub fn run_scenario(
    scenario: &Scenario,
    console: ConsoleSink,
    extra: Option<&mut dyn EventConsumer>,
    trace_instructions: bool,
) -> Result<ScenarioReport, ScenarioRunError> {
    let mut machine = build_machine(scenario, console, trace_instructions)?;
    let mut observer = HotplugObserver::default();
    let run = {
        let mut consumers: Vec<&mut dyn EventConsumer> = vec![&mut observer];
        if let Some(extra) = extra {
            consumers.push(extra);
        }
        machine.run_observed(&mut Fanout(consumers))
    };
    observer.finish(run.cycles.0);
    let refused = machine
        .refused_actions()
        .iter()
        .map(|refused| {
            format!(
                "cycle {}: {}: {}",
                refused.cycle,
                refused.action.describe(),
                refused.reason
            )
        })
        .collect();
    Ok(report(scenario, &run, observer, refused))
}

fn report(
    scenario: &Scenario,
    run: &RunReport,
    observer: HotplugObserver,
    refused_actions: Vec<String>,
) -> ScenarioReport {
    let mut smbase_map: Vec<SmbaseEntry> = run
        .cpus
        .iter()
        .map(|cpu| SmbaseEntry {
            apic_id: cpu.apic_id,
            smbase: cpu.smbase,
        })
        .collect();
    smbase_map.sort_by_key(|entry| entry.apic_id);
    let status = run.end.exit_status();
    let expectations = check_expectations(scenario, run, &observer, &smbase_map, status);
    let boot_cycles = observer.ready_cycle.unwrap_or(run.cycles.0);
    ScenarioReport {
        scenario: scenario.name.clone(),
        strategy: scenario.machine.strategy.name(),
        profile: scenario.machine.profile.name(),
        cpus: scenario.machine.cpus,
        max_cpus: scenario.machine.max_cpus,
        outcome: run.end.describe(),
        status,
        boot_cycles,
        boot_nanos: nanos(boot_cycles, run.clock_hz),
        total_cycles: run.cycles.0,
        clock_hz: run.clock_hz,
        hotplug: observer.windows,
        smis_by_source: observer.smis_by_source,
        smm_entries: observer.smm_entries,
        relocations: observer.relocations,
        smm_cycles_by_cpu: observer.smm_cycles_by_cpu,
        smbase_map,
        tseg: run.tseg,
        smram_blocked: run.smram_blocked,
        passed: refused_actions.is_empty() && expectations.iter().all(|e| e.passed),
        refused_actions,
        checks: run.checks.clone(),
        verdict: run_verdict(run),
        expectations,
        host_seconds: run.host_time.as_secs_f64(),
    }
}

/// The safety verdict of a run: its findings, and whether the guest finished it.
fn run_verdict(run: &RunReport) -> Verdict {
    let finished = !matches!(run.end, RunEnd::CycleLimit);
    Verdict::of(&run.checks.violations, finished)
}

fn nanos(cycles: u64, clock_hz: u64) -> u64 {
    smmsim_traces::Cycles(cycles).to_nanos(clock_hz) as u64
}

fn check_expectations(
    scenario: &Scenario,
    run: &RunReport,
    observer: &HotplugObserver,
    smbase_map: &[SmbaseEntry],
    status: i32,
) -> Vec<ExpectationResult> {
    let expect = &scenario.expect;
    let mut results = Vec::new();
    if let Some(wanted) = expect.status {
        results.push(ExpectationResult {
            expected: format!("exit status {wanted}"),
            passed: wanted == status,
            detail: if wanted == status {
                String::new()
            } else {
                format!("status {status}: {}", run.end.describe())
            },
        });
    }
    for line in &expect.console {
        let passed = observer.console.iter().any(|seen| seen == line);
        results.push(ExpectationResult {
            expected: format!("console line `{line}`"),
            passed,
            detail: if passed {
                String::new()
            } else {
                "never printed".to_owned()
            },
        });
    }
    if let Some(online) = &expect.online {
        let wanted: BTreeSet<u32> = online.iter().copied().collect();
        let present: BTreeSet<u32> = smbase_map.iter().map(|entry| entry.apic_id).collect();
        results.push(ExpectationResult {
            expected: format!("present CPUs {wanted:?}"),
            passed: wanted == present,
            detail: if wanted == present {
                String::new()
            } else {
                format!("present: {present:?}")
            },
        });
    }
    if let Some(wanted) = expect.verdict {
        let verdict = run_verdict(run);
        results.push(ExpectationResult {
            expected: format!("verdict {}", wanted.name()),
            passed: verdict == wanted,
            detail: if verdict == wanted {
                String::new()
            } else {
                let found: Vec<String> = run
                    .checks
                    .violations
                    .iter()
                    .map(|(check, count)| format!("{count} {check}"))
                    .collect();
                format!(
                    "{} (violations: {}; {})",
                    verdict.name(),
                    if found.is_empty() {
                        "none".to_owned()
                    } else {
                        found.join(", ")
                    },
                    run.end.describe()
                )
            },
        });
    }
    match &expect.smbase {
        None => {}
        Some(SmbaseExpectation::UniqueInTseg) => {
            let problems = smbase_problems(smbase_map, run.tseg);
            results.push(ExpectationResult {
                expected: "every present CPU at a unique SMBASE inside TSEG".to_owned(),
                passed: problems.is_empty(),
                detail: problems.join("; "),
            });
        }
        Some(SmbaseExpectation::Exact(wanted)) => {
            let mut problems = Vec::new();
            for (&apic_id, &smbase) in wanted {
                match smbase_map.iter().find(|entry| entry.apic_id == apic_id) {
                    None => problems.push(format!("CPU {apic_id} is not present")),
                    Some(entry) if entry.smbase != smbase => problems.push(format!(
                        "CPU {apic_id} has SMBASE {:#x}, expected {smbase:#x}",
                        entry.smbase
                    )),
                    Some(_) => {}
                }
            }
            results.push(ExpectationResult {
                expected: format!("SMBASE map {wanted:x?}"),
                passed: problems.is_empty(),
                detail: problems.join("; "),
            });
        }
    }
    results
}

/// What is wrong with an SMBASE map for "unique in TSEG": CPUs sharing an SMBASE, and CPUs
/// whose entry point or state-save area is outside TSEG.
pub fn smbase_problems(map: &[SmbaseEntry], tseg: Option<(u64, u64)>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut owners: BTreeMap<u64, u32> = BTreeMap::new();
    for entry in map {
        if let Some(other) = owners.insert(entry.smbase, entry.apic_id) {
            problems.push(format!(
                "CPUs {other} and {} share SMBASE {:#x}",
                entry.apic_id, entry.smbase
            ));
        }
        let entry_point = entry.smbase + SMI_ENTRY_OFFSET;
        let save_end = entry.smbase + 0x1_0000;
        let inside = tseg.is_some_and(|(base, size)| {
            entry_point >= base && entry.smbase + SAVE_AREA_START >= base && save_end <= base + size
        });
        if !inside {
            problems.push(format!(
                "CPU {} has SMBASE {:#x}: entry point or save area outside TSEG {}",
                entry.apic_id,
                entry.smbase,
                match tseg {
                    Some((base, size)) => format!("{base:#x}+{size:#x}"),
                    None => "(disabled)".to_owned(),
                }
            ));
        }
    }
    problems
}

impl ScenarioReport {
    /// The human-readable report `smmsim run` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let time = |cycles: u64| human_nanos(u128::from(nanos(cycles, self.clock_hz)));
        out.push_str(&format!(
            "scenario {}: strategy {}, profile {}, {} of {} CPUs present at reset\n",
            self.scenario, self.strategy, self.profile, self.cpus, self.max_cpus
        ));
        out.push_str(&format!(
            "  outcome     {} (status {})\n",
            self.outcome, self.status
        ));
        out.push_str(&format!(
            "  boot        {} cycles = {}\n",
            self.boot_cycles,
            time(self.boot_cycles)
        ));
        for window in &self.hotplug {
            let latency = match window.latency_cycles {
                Some(cycles) => format!("{cycles} cycles = {}", time(cycles)),
                None => "never completed".to_owned(),
            };
            let smm: Vec<String> = window
                .smm_cycles_by_cpu
                .iter()
                .map(|(cpu, cycles)| format!("cpu {cpu} {}", time(*cycles)))
                .collect();
            out.push_str(&format!(
                "  {:<10}  cpu {} at cycle {}: {latency}; {} SMIs, {} SMM entries; in SMM: {}\n",
                window.action,
                window.apic_id,
                window.start_cycle,
                window.smis_raised,
                window.smm_entries,
                if smm.is_empty() {
                    "none".to_owned()
                } else {
                    smm.join(", ")
                }
            ));
        }
        let smis: Vec<String> = self
            .smis_by_source
            .iter()
            .map(|(source, count)| format!("{count} {source}"))
            .collect();
        out.push_str(&format!(
            "  smm         SMIs raised: {}; {} SMM entries, {} relocations; SMRAM blocked: {} reads, {} writes\n",
            if smis.is_empty() { "none".to_owned() } else { smis.join(", ") },
            self.smm_entries,
            self.relocations,
            self.smram_blocked.0,
            self.smram_blocked.1
        ));
        if let Some((base, size)) = self.tseg {
            out.push_str(&format!("  tseg        {base:#010x} size {size:#x}\n"));
        }
        for entry in &self.smbase_map {
            out.push_str(&format!(
                "  smbase      cpu {:<4} {:#010x}\n",
                entry.apic_id, entry.smbase
            ));
        }
        out.push_str(&self.checks.summary_lines());
        out.push_str(&format!("  verdict     {}\n", self.verdict.name()));
        for refused in &self.refused_actions {
            out.push_str(&format!("  refused     {refused}\n"));
        }
        for result in &self.expectations {
            let verdict = if result.passed { "PASS" } else { "FAIL" };
            out.push_str(&format!("  expect      {verdict} {}", result.expected));
            if !result.detail.is_empty() {
                out.push_str(&format!(": {}", result.detail));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "  result      {} ({:.3} s host time)\n",
            if self.passed { "passed" } else { "FAILED" },
            self.host_seconds
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cycle: u64, cpu: u32, kind: EventKind) -> Event {
        Event::at(cycle, cpu, kind)
    }

    #[test]
    fn a_hot_add_window_runs_from_the_add_to_the_online_line_and_counts_smm_inside_it() {
        let mut observer = HotplugObserver::default();
        observer.consume(&[
            event(
                5,
                0,
                EventKind::SmmEntry {
                    smbase: 0,
                    save_area: 0,
                },
            ),
            event(10, 1, EventKind::HotAdd { apic_id: 1 }),
            event(
                20,
                0,
                EventKind::Rsm {
                    old_smbase: 0,
                    new_smbase: 0,
                },
            ),
            event(
                30,
                0,
                EventKind::SmiRaised {
                    source: SmiSource::ApmPort,
                },
            ),
            event(
                31,
                1,
                EventKind::SmmEntry {
                    smbase: 0x30000,
                    save_area: 0x3FE00,
                },
            ),
            event(
                41,
                1,
                EventKind::Rsm {
                    old_smbase: 0x30000,
                    new_smbase: 0x1000,
                },
            ),
            event(
                50,
                1,
                EventKind::ConsoleLine {
                    text: online_line(1),
                },
            ),
        ]);
        observer.finish(60);
        let window = &observer.windows[0];
        assert_eq!(window.latency_cycles, Some(40));
        assert_eq!(window.smis_raised, 1);
        assert_eq!(window.smm_entries, 1);
        // CPU 0's SMM time counts from the window's start only.
        assert_eq!(window.smm_cycles_by_cpu, BTreeMap::from([(0, 10), (1, 10)]));
        assert_eq!(
            observer.smm_cycles_by_cpu,
            BTreeMap::from([(0, 15), (1, 10)])
        );
    }

    #[test]
    fn online_lines_parse_only_in_their_exact_form() {
        assert_eq!(parse_online_line("cpu 0000000A online"), Some(10));
        assert_eq!(parse_online_line("cpu A online"), None);
        assert_eq!(parse_online_line("cpu 0000000A online!"), None);
    }

    #[test]
    fn shared_or_outside_smbases_are_named() {
        let tseg = Some((0x100_0000, 0x10_0000));
        let map = [
            SmbaseEntry {
                apic_id: 0,
                smbase: 0x100_0000,
            },
            SmbaseEntry {
                apic_id: 1,
                smbase: 0x100_0000,
            },
            SmbaseEntry {
                apic_id: 2,
                smbase: 0x3_0000,
            },
        ];
        let problems = smbase_problems(&map, tseg);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("CPUs 0 and 1 share"));
        assert!(problems[1].contains("CPU 2"));
        assert!(smbase_problems(&map[..1], tseg).is_empty());
    }
}
