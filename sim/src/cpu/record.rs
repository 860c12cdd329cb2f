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
use crate::checker::{self, Check};
use crate::cpu::smm::DEFAULT_SMBASE;
use crate::cpu::state::SegReg;

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
        self.events.push(Event::at(self.cycle, self.index.0, kind));
    }

    /// Records every instruction from now on (`--trace-instructions`), or stops doing so.
    pub fn set_trace_instructions(&mut self, on: bool) {
        self.trace_instructions = on;
    }

    /// Records a violation of `check` found on this core, if the check is on.
    pub(crate) fn record_violation(&mut self, check: Check, detail: String, address: u64) {
        if self.checks.contains(check) {
            let event = checker::violation(
                Cycle(self.cycle),
                self.index.0,
                check,
                detail,
                address,
                None,
            );
            self.events.push(event);
        }
    }

    /// `smm-code-outside-smram`: the block at `phys` is fetched in SMM; SMRAM is locked.
    #[cold]
    pub(super) fn check_smm_fetch(&mut self, phys: u64) {
        if !self.mem.smram().contains(phys, 1) {
            self.smm_fetch_reported = true;
            let cs = self.state.seg(SegReg::Cs).selector;
            let detail = format!(
                "CPU {} fetched code in SMM at {phys:#x} ({cs:04x}:{:x}), outside SMRAM",
                self.index.0, self.state.rip
            );
            self.record_violation(Check::SmmCodeOutsideSmram, detail, phys);
        }
    }

    /// `smbase-outside-smram`: called at SMM entry with the SMBASE in use.
    pub(super) fn check_smm_entry(&mut self, smbase: u64) {
        self.smm_fetch_reported = false;
        let smram = self.mem.smram();
        if !smram.is_locked() {
            return;
        }
        let area = checker::save_area(smbase);
        let entry = checker::entry_point(smbase);
        if !smram.contains(entry, 1) || !smram.contains(area.start, area.end - area.start) {
            let detail = format!(
                "CPU {} entered SMM with SMBASE {smbase:#x}: entry point {entry:#x} or save \
                 area {:#x}..{:#x} is outside SMRAM, which is locked",
                self.index.0, area.start, area.end
            );
            self.record_violation(Check::SmbaseOutsideSmram, detail, smbase);
        }
    }

    /// `unrelocated-cpu-runs`: a hot-added CPU still on the reset SMBASE is about to run
    /// non-SMM code (after a SIPI with no SMI pending, or after an RSM that left its SMBASE
    /// alone). Reported once per hot-add.
    pub(super) fn check_leaving_for_guest_code(&mut self, how: &str) {
        if !self.unrelocated_hotadd || self.smm.smbase != DEFAULT_SMBASE {
            self.unrelocated_hotadd = false;
            return;
        }
        self.unrelocated_hotadd = false;
        let cs = self.state.seg(SegReg::Cs).selector;
        let detail = format!(
            "hot-added CPU {} runs non-SMM code at {cs:04x}:{:x} after {how} with SMBASE still \
             {DEFAULT_SMBASE:#x}",
            self.index.0, self.state.rip
        );
        self.record_violation(Check::UnrelocatedCpuRuns, detail, DEFAULT_SMBASE);
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
