//! What a core writes into its event buffer (DESIGN.md §7).
//!
//! Each core appends to its own `Vec` — no lock, no atomic — and the scheduler takes the
//! buffer with every slice report and merges the buffers of all cores in (cycle, CPU,
//! sequence) order at quantum ends. Only rare happenings are recorded here (SMIs, SMM entry
//! and exit, IPIs, INIT/SIPI, HLT and wake-up, blocked SMRAM accesses), so recording is
//! always on: a push costs less than the instruction that caused it. Per-instruction events
//! are the exception and are only recorded when a run asks for them
//! ([`super::Cpu::set_trace_instructions`]).

use smmsim_devices::{ApicId, DeliveryMode, Destination};
use smmsim_traces::{Cycle, Event, EventKind};

use super::Cpu;

/// The destination recorded for an IPI to every APIC, the sender included (broadcast or
/// the "all including self" shorthand).
pub const DESTINATION_ALL: u32 = u32::MAX;
/// The destination recorded for the "all excluding self" shorthand.
pub const DESTINATION_ALL_BUT_SELF: u32 = u32::MAX - 1;

/// The APIC ID a trace shows as an IPI's destination: the ID itself, or one of the two
/// markers above for shorthands that name many CPUs.
pub fn destination_code(destination: Destination, source: ApicId) -> u32 {
    match destination {
        Destination::Physical(id) => id.0,
        Destination::SelfOnly => source.0,
        Destination::Broadcast | Destination::AllIncludingSelf => DESTINATION_ALL,
        Destination::AllExcludingSelf => DESTINATION_ALL_BUT_SELF,
    }
}

/// The ICR encoding of a delivery mode, as traces store it.
pub fn mode_code(mode: DeliveryMode) -> u8 {
    mode as u8
}

impl Cpu {
    /// Appends an event stamped with this core's cycle counter and index.
    #[inline]
    pub(crate) fn record(&mut self, kind: EventKind) {
        self.events.push(Event {
            cycle: Cycle(self.cycle),
            cpu: self.index.0,
            kind,
        });
    }

    /// Records every instruction from now on (`--trace-instructions`), or stops doing so.
    pub fn set_trace_instructions(&mut self, on: bool) {
        self.trace_instructions = on;
    }

    /// Takes the events recorded since the last call, in the order they happened.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_get_markers_and_physical_ids_stay() {
        let me = ApicId(3);
        assert_eq!(destination_code(Destination::Physical(ApicId(7)), me), 7);
        assert_eq!(destination_code(Destination::SelfOnly, me), 3);
        assert_eq!(
            destination_code(Destination::Broadcast, me),
            DESTINATION_ALL
        );
        assert_eq!(
            destination_code(Destination::AllExcludingSelf, me),
            DESTINATION_ALL_BUT_SELF
        );
        assert_eq!(mode_code(DeliveryMode::Startup), 6);
    }
}
