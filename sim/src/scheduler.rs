//! Time in quanta across many cores: who runs when, and when APIC-bus messages arrive.
//!
//! One pass of the loop is one quantum:
//! 1. the running cores are collected; if exactly one runs and no message is in flight, the
//!    quantum stretches to a batch (a lone core has nobody to interleave with) that ends early
//!    at its first IPI;
//! 2. messages due before the quantum's end are taken from the queue in a fixed total order —
//!    (delivery cycle, source APIC ID, sequence) — and handed to every core they address;
//!    halted and waiting cores take part only when a message wakes them;
//! 3. in deterministic mode the participating cores run one after another in APIC-ID order,
//!    so shared memory is touched in the same order on every run and every host; in parallel
//!    mode they run at once on their threads;
//! 4. their reports feed the message queue and end the run on a debug exit, a triple fault,
//!    every core halted with nothing in flight, or the cycle limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use smmsim_devices::Ipi;
use smmsim_traces::Cycle;

use crate::core_thread::{CoreHandle, Slice, SliceReport};
use crate::cpu::{Activity, StopReason};

/// How the cores of a quantum share the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExecMode {
    /// One core at a time in APIC-ID order: bit-identical runs on every host.
    #[default]
    Deterministic,
    /// All cores of a quantum at once: faster on a many-core host, interleaving left to it.
    Parallel,
}

/// The longest a lone running core runs between looks at the machine.
pub const MAX_BATCH_CYCLES: u64 = 1_000_000;

/// How a scheduled run ended, before the machine adds device state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleEnd {
    /// A device asked to end the run.
    PlatformStop,
    /// A core triple-faulted.
    Shutdown,
    /// No core runs and no message is in flight.
    AllIdle,
    /// The cycle limit was reached.
    CycleLimit,
}

/// Host-side figures of a scheduled run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScheduleStats {
    /// Quanta run (a batch counts as one).
    pub quanta: u64,
    /// Host time the cores spent running guest code, summed over cores.
    pub busy: Duration,
    /// Host time of the whole run not spent running guest code on the critical path: the cost
    /// of hand-offs and barriers.
    pub barrier: Duration,
}

/// A message in flight, ordered by delivery cycle, then source, then send order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct QueueKey {
    at: Cycle,
    source: u32,
    sequence: u64,
}

/// The coordinator's view of the cores and the APIC bus.
pub struct Scheduler {
    /// The cores, indexed by CPU index; APIC ID = index.
    pub cores: Vec<CoreHandle>,
    activity: Vec<Activity>,
    cycles: Vec<u64>,
    queue: BTreeMap<QueueKey, Ipi>,
    sequence: u64,
    /// A hard reset was asked for: the next quantum resets every core first.
    reset_pending: bool,
    /// Hard resets carried out.
    pub resets: u64,
    mode: ExecMode,
    quantum: u64,
    max_cycles: u64,
    /// Host-side figures.
    pub stats: ScheduleStats,
}

impl Scheduler {
    /// A scheduler over `cores`, whose initial activities are given.
    pub fn new(cores: Vec<CoreHandle>, mode: ExecMode, quantum: u64, max_cycles: u64) -> Scheduler {
        let activity = cores
            .iter()
            .map(|core| core.idle_activity().unwrap_or(Activity::Running))
            .collect();
        let count = cores.len();
        Scheduler {
            cores,
            activity,
            cycles: vec![0; count],
            queue: BTreeMap::new(),
            sequence: 0,
            reset_pending: false,
            resets: 0,
            mode,
            quantum: quantum.max(1),
            max_cycles,
            stats: ScheduleStats::default(),
        }
    }

    /// Runs quanta until the machine stops.
    pub fn run(&mut self) -> ScheduleEnd {
        let started = Instant::now();
        let mut critical_path = Duration::ZERO;
        let mut now = 0u64;
        let end = loop {
            let running: Vec<usize> = (0..self.cores.len())
                .filter(|&i| self.activity[i] == Activity::Running)
                .collect();
            if running.is_empty() && !self.reset_pending {
                match self.queue.keys().next() {
                    None => break ScheduleEnd::AllIdle,
                    // Nobody runs: skip ahead to the next delivery.
                    Some(next) => now = now.max(next.at.0),
                }
            }
            if now >= self.max_cycles {
                break ScheduleEnd::CycleLimit;
            }
            let batch = running.len() == 1 && self.queue.is_empty();
            let length = if batch {
                MAX_BATCH_CYCLES
            } else {
                self.quantum
            };
            let until = now.saturating_add(length).min(self.max_cycles);
            let mut deliveries = self.due_deliveries(Cycle(until));
            let reset = std::mem::take(&mut self.reset_pending);
            let mut participants = if reset {
                (0..self.cores.len()).collect()
            } else {
                running
            };
            participants.extend(deliveries.keys().copied());
            participants.sort_unstable();
            participants.dedup();

            let mut stop = None;
            let mut quantum_path = Duration::ZERO;
            let slice_for =
                |index: usize, deliveries: &mut BTreeMap<usize, Vec<(Cycle, Ipi)>>| Slice {
                    until: Cycle(until),
                    deliveries: deliveries.remove(&index).unwrap_or_default(),
                    stop_on_ipi: batch,
                    reset,
                };
            match self.mode {
                ExecMode::Deterministic => {
                    for &index in &participants {
                        let slice = slice_for(index, &mut deliveries);
                        let Some(report) = self.run_one(index, slice) else {
                            continue;
                        };
                        quantum_path += report.busy;
                        if let Some(reason) = self.absorb(index, report) {
                            stop = Some(reason);
                            break;
                        }
                    }
                }
                ExecMode::Parallel => {
                    let mut started_cores = Vec::new();
                    for &index in &participants {
                        let slice = slice_for(index, &mut deliveries);
                        self.cores[index].start(slice);
                        started_cores.push(index);
                    }
                    for index in started_cores {
                        let Some(report) = self.cores[index].finish() else {
                            continue;
                        };
                        quantum_path = quantum_path.max(report.busy);
                        if let Some(reason) = self.absorb(index, report) {
                            stop.get_or_insert(reason);
                        }
                    }
                }
            }
            critical_path += quantum_path;
            self.stats.quanta += 1;
            if let Some(reason) = stop {
                break reason;
            }
            now = if batch {
                self.cycles[participants[0]].min(until)
            } else {
                until
            };
        };
        self.stats.barrier = started.elapsed().saturating_sub(critical_path);
        end
    }

    fn run_one(&mut self, index: usize, slice: Slice) -> Option<SliceReport> {
        self.cores[index].start(slice);
        self.cores[index].finish()
    }

    /// Takes in a core's report; returns a reason to end the run, if it brings one.
    fn absorb(&mut self, index: usize, report: SliceReport) -> Option<ScheduleEnd> {
        self.stats.busy += report.busy;
        self.activity[index] = report.activity;
        self.cycles[index] = report.cycle;
        for (at, ipi) in report.outbox {
            self.sequence += 1;
            let key = QueueKey {
                at,
                source: ipi.source.0,
                sequence: self.sequence,
            };
            self.queue.insert(key, ipi);
        }
        match report.stop {
            StopReason::HardReset => {
                // Everything in flight dies with the reset; every core restarts next quantum.
                self.queue.clear();
                self.reset_pending = true;
                self.resets += 1;
                None
            }
            StopReason::PlatformStop => Some(ScheduleEnd::PlatformStop),
            StopReason::Shutdown => Some(ScheduleEnd::Shutdown),
            _ => None,
        }
    }

    /// Removes the messages due before `until` and groups them by target core.
    fn due_deliveries(&mut self, until: Cycle) -> BTreeMap<usize, Vec<(Cycle, Ipi)>> {
        let mut by_target: BTreeMap<usize, Vec<(Cycle, Ipi)>> = BTreeMap::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().at >= until {
                break;
            }
            let (key, ipi) = entry.remove_entry();
            for target in 0..self.cores.len() {
                let apic_id = smmsim_devices::ApicId(target as u32);
                if ipi.destination.includes(apic_id, ipi.source) {
                    by_target.entry(target).or_default().push((key.at, ipi));
                }
            }
        }
        by_target
    }

    /// The highest cycle count any core reached.
    pub fn machine_cycles(&self) -> u64 {
        self.cycles.iter().copied().max().unwrap_or(0)
    }

    /// The activity of every core, by index.
    pub fn activities(&self) -> &[Activity] {
        &self.activity
    }
}
