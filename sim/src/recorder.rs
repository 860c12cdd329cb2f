//! Putting the events of a run in order and handing them to whoever watches the run.
//!
//! 1. Cores record into their own buffers (`cpu/record.rs`); the platform records what the
//!    devices and the machine do (console lines, hot-add, eject, blocked controller writes)
//!    into one shared buffer, stamped with the cycle and CPU of the access.
//! 2. At every quantum end the scheduler hands the cores' events to the [`Recorder`] with a
//!    watermark; the recorder adds the platform's, sorts everything by (cycle, CPU) — a
//!    stable sort, so equal keys keep their recording order, the sequence of DESIGN.md §7 —
//!    and passes on every event below the watermark. Later events wait for the next round.
//! 3. The safety checker's stream stage (`checker.rs`) looks at the ordered events and
//!    inserts a violation event after each one that breaks an invariant;
//! 4. consumers ([`EventConsumer`]) see one ordered stream: the trace file writer
//!    (`trace_file.rs`), the scenario report (`scenario_run.rs`).

use std::sync::Arc;

use parking_lot::Mutex;
use smmsim_traces::{Cycle, Event};

use crate::checker::{CheckSet, Checker};
use crate::scheduler::EventSink;

/// Something that watches a run's events in (cycle, CPU, sequence) order.
pub trait EventConsumer {
    /// Takes the next events of the run, in order.
    fn consume(&mut self, events: &[Event]);
}

/// A consumer that ignores everything (plain `boot` without `--trace`).
pub struct IgnoreEvents;

impl EventConsumer for IgnoreEvents {
    fn consume(&mut self, _events: &[Event]) {}
}

/// Hands events to several consumers in turn.
pub struct Fanout<'a>(pub Vec<&'a mut dyn EventConsumer>);

impl EventConsumer for Fanout<'_> {
    fn consume(&mut self, events: &[Event]) {
        for consumer in &mut self.0 {
            consumer.consume(events);
        }
    }
}

/// Merges the cores' and the platform's events into one ordered stream.
pub struct Recorder<'a> {
    platform_events: Arc<Mutex<Vec<Event>>>,
    held: Vec<Event>,
    checker: Checker,
    consumer: &'a mut dyn EventConsumer,
}

impl<'a> Recorder<'a> {
    /// A recorder pulling platform events from `platform_events`, running the `checks`,
    /// and feeding `consumer`.
    pub fn new(
        platform_events: Arc<Mutex<Vec<Event>>>,
        checks: CheckSet,
        consumer: &'a mut dyn EventConsumer,
    ) -> Recorder<'a> {
        Recorder {
            platform_events,
            held: Vec::new(),
            checker: Checker::new(checks),
            consumer,
        }
    }

    /// Passes on everything still held, in order (the end of a run).
    pub fn flush(&mut self) {
        self.gather(&mut Vec::new());
        self.held.sort_by_key(Event::order_key);
        let held = std::mem::take(&mut self.held);
        self.pass_on(&held);
    }

    /// The checker, with its counts so far.
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// Checks `events` and hands them, with any violations, to the consumer.
    fn pass_on(&mut self, events: &[Event]) {
        match self.checker.check(events) {
            Some(with_findings) => self.consumer.consume(&with_findings),
            None => self.consumer.consume(events),
        }
    }

    fn gather(&mut self, core_events: &mut Vec<Event>) {
        self.held.append(core_events);
        self.held.append(&mut self.platform_events.lock());
    }
}

impl EventSink for Recorder<'_> {
    fn quantum_end(&mut self, events: &mut Vec<Event>, watermark: Cycle) {
        self.gather(events);
        if self.held.is_empty() {
            return;
        }
        self.held.sort_by_key(Event::order_key);
        let ready = self.held.partition_point(|event| event.cycle < watermark);
        if ready > 0 {
            let rest = self.held.split_off(ready);
            let ready = std::mem::replace(&mut self.held, rest);
            self.pass_on(&ready);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smmsim_traces::EventKind;

    struct Collect(Vec<Event>);

    impl EventConsumer for Collect {
        fn consume(&mut self, events: &[Event]) {
            self.0.extend_from_slice(events);
        }
    }

    fn event(cycle: u64, cpu: u32, kind: EventKind) -> Event {
        Event::at(cycle, cpu, kind)
    }

    #[test]
    fn events_come_out_in_cycle_then_cpu_order_and_wait_for_the_watermark() {
        let platform = Arc::new(Mutex::new(vec![event(5, 0, EventKind::Init)]));
        let mut collect = Collect(Vec::new());
        {
            let mut recorder = Recorder::new(Arc::clone(&platform), CheckSet::all(), &mut collect);
            let mut cores = vec![
                event(7, 1, EventKind::Halt),
                event(5, 1, EventKind::Wake),
                event(5, 0, EventKind::Halt),
            ];
            recorder.quantum_end(&mut cores, Cycle(6));
            assert!(cores.is_empty());
            platform.lock().push(event(6, 0, EventKind::Wake));
            recorder.flush();
        }
        let order: Vec<(u64, u32, &str)> = collect
            .0
            .iter()
            .map(|e| (e.cycle.0, e.cpu, e.kind.kind_name()))
            .collect();
        assert_eq!(
            order,
            vec![
                // Same key: recording order (core buffers before the platform's).
                (5, 0, "halt"),
                (5, 0, "init"),
                (5, 1, "wake"),
                (6, 0, "wake"),
                (7, 1, "halt"),
            ]
        );
    }
}
