//! A simulated core on its own host thread, and the slices of time the machine hands it.
//!
//! A core starts without a thread: a CPU that waits for SIPI until the end of a run costs one
//! struct and no thread. The first slice it is given spawns its thread, which from then on
//! owns the core and runs slices on request:
//! 1. the machine sends a [`Slice`]: run until this cycle, applying these APIC-bus messages at
//!    their delivery cycles;
//! 2. the thread runs the core, applying each message at the first instruction boundary at or
//!    after its cycle, then up to the slice's end;
//! 3. it answers with a [`SliceReport`]: where the core stopped, why, and the IPIs it sent.
//!
//! The machine may send to many threads before collecting (parallel mode) or one at a time in
//! APIC-ID order (deterministic mode); the protocol is the same.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{bounded, Receiver, Sender};
use smmsim_devices::Ipi;
use smmsim_traces::{Cycle, Event};

use crate::cpu::decode::DecodeCache;
use crate::cpu::{Activity, Cpu, StopReason};

/// Host stack for a core thread: the interpreter does not recurse, 1 MiB is ample.
const CORE_THREAD_STACK_BYTES: usize = 1 << 20;

/// A core with its decode cache.
pub struct Core {
    /// The CPU.
    pub cpu: Cpu,
    /// Its decoded-block cache.
    pub cache: DecodeCache,
}

/// One slice of simulated time for one core.
pub struct Slice {
    /// Run until the core's cycle counter reaches this.
    pub until: Cycle,
    /// Messages to apply, in delivery order, each at its cycle.
    pub deliveries: Vec<(Cycle, Ipi)>,
    /// End the slice at the first IPI the core sends (used when one core runs alone in long
    /// batches, so its IPIs are still delivered on time).
    pub stop_on_ipi: bool,
    /// Apply a hard reset before anything else.
    pub reset: bool,
}

/// What a slice did.
pub struct SliceReport {
    /// Why the core stopped.
    pub stop: StopReason,
    /// The core's activity afterwards.
    pub activity: Activity,
    /// The core's cycle counter afterwards.
    pub cycle: u64,
    /// IPIs sent during the slice, with their delivery cycles.
    pub outbox: Vec<(Cycle, Ipi)>,
    /// Host time the slice took on its thread.
    pub busy: Duration,
    /// What the core recorded during the slice, in the order it happened.
    pub events: Vec<Event>,
}

impl Core {
    /// Runs one slice on the calling thread.
    pub fn run_slice(&mut self, slice: Slice) -> SliceReport {
        let started = Instant::now();
        self.cpu.set_stop_on_ipi(slice.stop_on_ipi);
        if slice.reset {
            self.cpu.hard_reset();
        }
        let mut stop = None;
        for (at, ipi) in &slice.deliveries {
            if self.cpu.activity == Activity::Running && self.cpu.cycle < at.0 {
                match self.cpu.run(&mut self.cache, *at) {
                    StopReason::PlatformStop => {
                        stop = Some(StopReason::PlatformStop);
                        break;
                    }
                    reason @ (StopReason::Shutdown | StopReason::HardReset) => {
                        stop = Some(reason);
                        break;
                    }
                    _ => {}
                }
            }
            self.cpu.receive(*at, ipi);
        }
        let stop = stop.unwrap_or_else(|| self.cpu.run(&mut self.cache, slice.until));
        SliceReport {
            stop,
            activity: self.cpu.activity,
            cycle: self.cpu.cycle,
            outbox: std::mem::take(&mut self.cpu.outbox),
            busy: started.elapsed(),
            events: self.cpu.take_events(),
        }
    }
}

/// A core, either waiting off-thread or living on its own thread.
pub enum CoreHandle {
    /// Not yet given a slice: no thread.
    Idle(Box<Core>),
    /// The host refused a thread: the core runs its slices on the machine's thread instead,
    /// so a run on a host short of threads is slower but still correct.
    Inline(Box<Core>, Option<SliceReport>),
    /// On its thread.
    Threaded {
        /// Slices to the thread.
        slices: Sender<Slice>,
        /// Reports back.
        reports: Receiver<SliceReport>,
        /// The thread, which returns the core when its slice channel closes.
        thread: JoinHandle<Option<Box<Core>>>,
    },
    /// Transitional state while a core moves onto its thread.
    Moving,
}

impl CoreHandle {
    /// Sends a slice to the core's thread, spawning the thread first if needed.
    pub fn start(&mut self, slice: Slice) {
        if let CoreHandle::Idle(_) = self {
            let CoreHandle::Idle(core) = std::mem::replace(self, CoreHandle::Moving) else {
                return;
            };
            *self = Self::spawn(core);
        }
        match self {
            CoreHandle::Threaded { slices, .. } => {
                // The thread only stops when this sender is dropped, so the send succeeds.
                let _ = slices.send(slice);
            }
            CoreHandle::Inline(core, report) => *report = Some(core.run_slice(slice)),
            CoreHandle::Idle(_) | CoreHandle::Moving => {}
        }
    }

    /// Moves `core` onto a new thread. The core travels over a channel once the spawn has
    /// succeeded, so a refused spawn leaves it in our hands to run inline.
    fn spawn(core: Box<Core>) -> CoreHandle {
        let (core_tx, core_rx) = bounded::<Box<Core>>(1);
        let (slice_tx, slice_rx) = bounded::<Slice>(1);
        let (report_tx, report_rx) = bounded::<SliceReport>(1);
        let spawned = std::thread::Builder::new()
            .name(format!("cpu{}", core.cpu.apic_id.0))
            .stack_size(CORE_THREAD_STACK_BYTES)
            .spawn(move || {
                core_rx
                    .recv()
                    .ok()
                    .map(|core| core_thread(core, slice_rx, report_tx))
            });
        match spawned {
            Ok(thread) => match core_tx.send(core) {
                Ok(()) => CoreHandle::Threaded {
                    slices: slice_tx,
                    reports: report_rx,
                    thread,
                },
                Err(returned) => CoreHandle::Inline(returned.0, None),
            },
            Err(_) => CoreHandle::Inline(core, None),
        }
    }

    /// Waits for the report of the slice last started.
    pub fn finish(&mut self) -> Option<SliceReport> {
        match self {
            CoreHandle::Threaded { reports, .. } => reports.recv().ok(),
            CoreHandle::Inline(_, report) => report.take(),
            CoreHandle::Idle(_) | CoreHandle::Moving => None,
        }
    }

    /// Stops the thread (if any) and gives the core back.
    pub fn into_core(self) -> Option<Box<Core>> {
        match self {
            CoreHandle::Idle(core) | CoreHandle::Inline(core, _) => Some(core),
            CoreHandle::Threaded { slices, thread, .. } => {
                drop(slices);
                thread.join().ok().flatten()
            }
            CoreHandle::Moving => None,
        }
    }

    /// The core's activity, for a core that never got a thread.
    pub fn idle_activity(&self) -> Option<Activity> {
        match self {
            CoreHandle::Idle(core) => Some(core.cpu.activity),
            _ => None,
        }
    }
}

fn core_thread(
    mut core: Box<Core>,
    slices: Receiver<Slice>,
    reports: Sender<SliceReport>,
) -> Box<Core> {
    while let Ok(slice) = slices.recv() {
        if reports.send(core.run_slice(slice)).is_err() {
            break;
        }
    }
    core
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::{Bench, Mode};

    fn core() -> Box<Core> {
        let bench = Bench::new(Mode::Real, &[0x90, 0x90]);
        Box::new(Core {
            cpu: bench.cpu,
            cache: bench.cache,
        })
    }

    fn slice() -> Slice {
        Slice {
            until: Cycle(1_000),
            deliveries: Vec::new(),
            stop_on_ipi: false,
            reset: false,
        }
    }

    #[test]
    fn a_threaded_core_runs_slices_and_comes_back() {
        let mut handle = CoreHandle::Idle(core());
        handle.start(slice());
        let report = handle.finish().expect("a report");
        assert_eq!(report.stop, StopReason::Halted);
        assert!(matches!(handle, CoreHandle::Threaded { .. }));
        let core = handle.into_core().expect("the thread gives the core back");
        assert_eq!(core.cpu.stats.instructions, 3);
    }

    #[test]
    fn an_inline_core_runs_on_the_callers_thread() {
        let mut handle = CoreHandle::Inline(core(), None);
        handle.start(slice());
        assert_eq!(
            handle.finish().map(|report| report.stop),
            Some(StopReason::Halted)
        );
        assert!(handle.finish().is_none(), "one report per slice");
        assert_eq!(
            handle.into_core().map(|core| core.cpu.stats.instructions),
            Some(3)
        );
    }
}
