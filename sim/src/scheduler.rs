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
//!    every core halted with nothing in flight, or the cycle limit;
//! 5. the events the cores recorded go to the machine's [`EventSink`] with a watermark below
//!    which no later quantum can record anything, so the sink can write them in order.
//!
//! The machine drives the scheduler in stretches ([`Scheduler::run_until`]): it stops at
//! the cycle of the next scenario event (a hot-add, a reset) or when the platform needs it
//! (a CPU was ejected), changes the set of cores, and lets it go on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use smmsim_devices::Ipi;
use smmsim_traces::{Cycle, Event};

use crate::core_thread::{Core, CoreHandle, Slice, SliceReport};
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
pub const MAX_BATCH_CYCLES: u64 = 64_000_000;

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

/// Where the events recorded by the cores go at every quantum end.
///
/// Exists so the scheduler stays ignorant of trace files and reports: it only promises that
/// every event it hands over later has a cycle at or above the watermark it passes.
pub trait EventSink {
    /// Takes `events` (in core-index order, each core's in program order); no event handed
    /// over from now on has a cycle below `watermark`.
    fn quantum_end(&mut self, events: &mut Vec<Event>, watermark: Cycle);
}

/// A sink that drops everything (runs nobody observes).
pub struct DiscardEvents;

impl EventSink for DiscardEvents {
    fn quantum_end(&mut self, events: &mut Vec<Event>, _watermark: Cycle) {
        events.clear();
    }
}

/// Why [`Scheduler::run_until`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pause {
    /// The run is over.
    Ended(ScheduleEnd),
    /// The stretch reached its limit cycle.
    Limit,
    /// The machine asked to look at its platform (see `attention`).
    Attention,
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
    /// The cores by CPU index (APIC ID = index); `None` for a possible CPU that is absent.
    pub cores: Vec<Option<CoreHandle>>,
    /// The indices of the present CPUs, ascending.
    present: Vec<usize>,
    /// The cycle each CPU was last plugged in at (0 for CPUs present at reset): a message
    /// due before then was sent when the CPU was not there, and never reaches it.
    present_since: Vec<u64>,
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
    /// The start of the next quantum.
    now: u64,
    /// Events of the quantum being absorbed.
    events: Vec<Event>,
    /// Host-side figures.
    pub stats: ScheduleStats,
}

impl Scheduler {
    /// A scheduler over `cores` (index = CPU index, `None` = absent), whose initial
    /// activities are given.
    pub fn new(
        cores: Vec<Option<CoreHandle>>,
        mode: ExecMode,
        quantum: u64,
        max_cycles: u64,
    ) -> Scheduler {
        let activity = cores
            .iter()
            .map(|core| {
                core.as_ref()
                    .and_then(CoreHandle::idle_activity)
                    .unwrap_or(Activity::WaitForSipi)
            })
            .collect();
        let present = (0..cores.len()).filter(|&i| cores[i].is_some()).collect();
        let count = cores.len();
        Scheduler {
            cores,
            present,
            present_since: vec![0; count],
            activity,
            cycles: vec![0; count],
            queue: BTreeMap::new(),
            sequence: 0,
            reset_pending: false,
            resets: 0,
            mode,
            quantum: quantum.max(1),
            max_cycles,
            now: 0,
            events: Vec::new(),
            stats: ScheduleStats::default(),
        }
    }

    /// Runs quanta until the machine stops, nothing else happening (no scenario events).
    pub fn run(&mut self, sink: &mut dyn EventSink) -> ScheduleEnd {
        loop {
            if let Pause::Ended(end) = self.run_until(u64::MAX, &|| false, sink) {
                return end;
            }
        }
    }

    /// Runs quanta until the run ends, the next quantum would start at or after `limit`, or
    /// `attention` returns true after a quantum. Nobody running before `limit` makes the
    /// clock jump to `limit` (a scenario event may wake the machine).
    pub fn run_until(
        &mut self,
        limit: u64,
        attention: &dyn Fn() -> bool,
        sink: &mut dyn EventSink,
    ) -> Pause {
        let started = Instant::now();
        let mut critical_path = Duration::ZERO;
        let pause = loop {
            if self.now >= self.max_cycles {
                break Pause::Ended(ScheduleEnd::CycleLimit);
            }
            if self.now >= limit {
                break Pause::Limit;
            }
            let running: Vec<usize> = self
                .present
                .iter()
                .copied()
                .filter(|&i| self.activity[i] == Activity::Running)
                .collect();
            if running.is_empty() && !self.reset_pending {
                match self.queue.keys().next() {
                    None if limit < self.max_cycles => {
                        self.now = limit;
                        break Pause::Limit;
                    }
                    None => break Pause::Ended(ScheduleEnd::AllIdle),
                    // Nobody runs: skip ahead to the next delivery.
                    Some(next) => self.now = self.now.max(next.at.0),
                }
                if self.now >= limit {
                    break Pause::Limit;
                }
            }
            if self.now >= self.max_cycles {
                break Pause::Ended(ScheduleEnd::CycleLimit);
            }
            let batch = running.len() == 1 && self.queue.is_empty();
            let length = if batch {
                MAX_BATCH_CYCLES
            } else {
                self.quantum
            };
            let until = self
                .now
                .saturating_add(length)
                .min(self.max_cycles)
                .min(limit);
            let mut deliveries = self.due_deliveries(Cycle(until));
            let reset = std::mem::take(&mut self.reset_pending);
            let mut participants = if reset { self.present.clone() } else { running };
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
                        if let Some(core) = self.cores[index].as_mut() {
                            core.start(slice);
                            started_cores.push(index);
                        }
                    }
                    for index in started_cores {
                        let Some(report) = self.cores[index].as_mut().and_then(CoreHandle::finish)
                        else {
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
            // Every later event is at or above this quantum's start: running cores are past
            // it, and a message sent in it is delivered no earlier than its send.
            let watermark = Cycle(self.now);
            sink.quantum_end(&mut self.events, watermark);
            if let Some(reason) = stop {
                break Pause::Ended(reason);
            }
            let first = participants.first().copied().unwrap_or(0);
            self.now = if batch {
                self.cycles[first].min(until).max(self.now)
            } else {
                until
            };
            if attention() {
                break Pause::Attention;
            }
        };
        self.stats.barrier += started.elapsed().saturating_sub(critical_path);
        pause
    }

    fn run_one(&mut self, index: usize, slice: Slice) -> Option<SliceReport> {
        let core = self.cores[index].as_mut()?;
        core.start(slice);
        core.finish()
    }

    /// Takes in a core's report; returns a reason to end the run, if it brings one.
    fn absorb(&mut self, index: usize, mut report: SliceReport) -> Option<ScheduleEnd> {
        self.stats.busy += report.busy;
        self.activity[index] = report.activity;
        self.cycles[index] = report.cycle;
        self.events.append(&mut report.events);
        for (at, ipi) in report.outbox {
            self.post_message(at, ipi);
        }
        match report.stop {
            StopReason::HardReset => {
                self.request_hard_reset();
                None
            }
            StopReason::PlatformStop => Some(ScheduleEnd::PlatformStop),
            StopReason::Shutdown => Some(ScheduleEnd::Shutdown),
            _ => None,
        }
    }

    /// Resets every present core at the start of the next quantum; everything in flight dies
    /// with the reset.
    pub fn request_hard_reset(&mut self) {
        self.queue.clear();
        self.reset_pending = true;
        self.resets += 1;
    }

    /// Puts a message on the APIC bus, due at `at`: the cores' IPIs, and the platform's
    /// (a scenario's soft reset sends INIT to everyone this way).
    pub fn post_message(&mut self, at: Cycle, ipi: Ipi) {
        self.sequence += 1;
        let key = QueueKey {
            at,
            source: ipi.source.0,
            sequence: self.sequence,
        };
        self.queue.insert(key, ipi);
    }

    /// Makes `core` present at CPU index `index`, its clock set to the current cycle.
    /// Returns the core back if the index is out of range or taken.
    pub fn add_core(&mut self, index: usize, mut core: Box<Core>) -> Result<(), Box<Core>> {
        if index >= self.cores.len() || self.cores[index].is_some() {
            return Err(core);
        }
        core.cpu.cycle = core.cpu.cycle.max(self.now);
        self.activity[index] = core.cpu.activity;
        self.cycles[index] = core.cpu.cycle;
        self.present_since[index] = core.cpu.cycle;
        self.cores[index] = Some(CoreHandle::Idle(core));
        if let Err(position) = self.present.binary_search(&index) {
            self.present.insert(position, index);
        }
        Ok(())
    }

    /// Takes the core at `index` out of the machine (its thread, if any, ends) and gives it
    /// back, so a later hot-add may bring it back with its SMBASE.
    pub fn remove_core(&mut self, index: usize) -> Option<Box<Core>> {
        let handle = self.cores.get_mut(index)?.take()?;
        self.present.retain(|&i| i != index);
        self.activity[index] = Activity::WaitForSipi;
        handle.into_core()
    }

    /// Whether CPU `index` is present.
    pub fn is_present(&self, index: usize) -> bool {
        self.cores.get(index).is_some_and(Option::is_some)
    }

    /// The start of the next quantum: the machine's notion of "now" between stretches.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Removes the messages due before `until` and groups them by target core.
    fn due_deliveries(&mut self, until: Cycle) -> BTreeMap<usize, Vec<(Cycle, Ipi)>> {
        let mut by_target: BTreeMap<usize, Vec<(Cycle, Ipi)>> = BTreeMap::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().at >= until {
                break;
            }
            let (key, ipi) = entry.remove_entry();
            for &target in &self.present {
                let apic_id = smmsim_devices::ApicId(target as u32);
                if key.at.0 >= self.present_since[target]
                    && ipi.destination.includes(apic_id, ipi.source)
                {
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

    /// Stops every core thread and gives the cores back, by index.
    pub fn into_cores(self) -> Vec<Option<Box<Core>>> {
        self.cores
            .into_iter()
            .map(|handle| handle.and_then(CoreHandle::into_core))
            .collect()
    }
}
