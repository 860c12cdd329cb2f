//! The events a run records: one [`Event`] per thing that happened, stamped with the cycle
//! and the CPU it happened on.
//!
//! 1. A core or device notices something worth recording (an SMI, an RSM, a blocked SMRAM
//!    write, …) and builds an [`Event`].
//! 2. The simulator merges per-core buffers into (cycle, cpu) order and hands them to
//!    [`crate::TraceWriter`].
//! 3. Viewers read them back with [`crate::TraceReader`] and filter by [`EventKind::kind_name`].

use crate::time::Cycle;

/// One recorded happening: when, on which CPU, and what.
///
/// Exists so every producer (cores, the APIC bus, the hot-plug controller, the debug port)
/// records into one type the trace file can order and encode.
#[derive(Clone, Debug, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub struct Event {
    /// The cycle at which it happened.
    pub cycle: Cycle,
    /// The CPU index (not the APIC ID) it happened on; machine-wide events use the CPU that
    /// caused them, or 0.
    pub cpu: u32,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// `kind` on CPU `cpu` at `cycle`: the one way every producer stamps an event.
    pub fn at(cycle: u64, cpu: u32, kind: EventKind) -> Event {
        Event {
            cycle: Cycle(cycle),
            cpu,
            kind,
        }
    }

    /// The key events are ordered by in a trace: cycle first, then CPU index.
    ///
    /// The writer rejects chunks whose events go backwards in this key, so readers can seek.
    pub fn order_key(&self) -> (Cycle, u32) {
        (self.cycle, self.cpu)
    }
}

/// Where an SMI came from, so a trace shows whether firmware, another CPU or the platform
/// asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum SmiSource {
    /// A write to the APM control port (0xB2).
    ApmPort,
    /// An IPI with delivery mode SMI from another CPU.
    Ipi,
    /// The platform itself (hot-plug controller, timer, …).
    Platform,
}

/// What happened. Addresses are physical; APIC IDs are the guest-visible IDs.
///
/// Exists as one closed enum so the trace encoding, the `--kind` filter and the viewers all
/// agree on the same set of happenings.
#[derive(Clone, Debug, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum EventKind {
    /// An SMI was latched for this CPU.
    SmiRaised {
        /// Who raised it.
        source: SmiSource,
    },
    /// The CPU entered SMM (SDM Vol. 3C §32.5).
    SmmEntry {
        /// SMBASE in effect at entry.
        smbase: u64,
        /// Address of the state-save area written at entry.
        save_area: u64,
    },
    /// The CPU executed RSM and left SMM (SDM Vol. 3C §32.5.3).
    Rsm {
        /// SMBASE before RSM.
        old_smbase: u64,
        /// SMBASE after RSM (differs when the handler relocated it).
        new_smbase: u64,
    },
    /// The SMBASE of this CPU changed (SDM Vol. 3C §32.11).
    SmbaseRelocated {
        /// SMBASE before.
        old: u64,
        /// SMBASE after.
        new: u64,
    },
    /// This CPU sent an IPI.
    IpiSent {
        /// The ICR delivery mode (0 fixed, 2 SMI, 5 INIT, 6 start-up, …).
        mode: u8,
        /// Destination APIC ID.
        destination: u32,
    },
    /// An IPI arrived at this CPU.
    IpiDelivered {
        /// The ICR delivery mode.
        mode: u8,
        /// Source APIC ID.
        source: u32,
    },
    /// This CPU received INIT.
    Init,
    /// This CPU received a start-up IPI.
    Sipi {
        /// The SIPI vector (start address / 4096).
        vector: u8,
    },
    /// This CPU halted.
    Halt,
    /// This CPU left the halted state.
    Wake,
    /// A CPU was hot-added.
    HotAdd {
        /// APIC ID of the new CPU.
        apic_id: u32,
    },
    /// A CPU was hot-removed.
    HotRemove {
        /// APIC ID of the removed CPU.
        apic_id: u32,
    },
    /// The machine or this CPU was reset.
    Reset {
        /// True for a hard (power-on style) reset.
        hard: bool,
    },
    /// An access to SMRAM from outside SMM was blocked.
    SmramBlocked {
        /// The physical address accessed.
        address: u64,
        /// True for a write, false for a read.
        write: bool,
    },
    /// A line the guest wrote to the debug console port.
    ConsoleLine {
        /// The line, without its newline.
        text: String,
    },
    /// The run ended.
    RunEnd {
        /// The status the guest reported through the debug-exit port.
        status: u32,
    },
    // Variants below were added after format version 1 was first written. New variants go
    // at the end so the discriminants of older ones, and so older files, stay valid.
    /// The guest ejected a CPU through the hot-plug controller (the CPU is gone once this
    /// is recorded; `HotRemove` is the platform-side request that may precede it).
    CpuEjected {
        /// APIC ID of the ejected CPU.
        apic_id: u32,
    },
    /// A write to the SMBASE controller was refused: it came from outside SMM, or after
    /// the controller was locked.
    ControllerWriteBlocked {
        /// Register offset inside the controller's window.
        offset: u16,
        /// The value the guest tried to write.
        value: u32,
        /// True if the controller was locked at the time (false: the write came from
        /// outside SMM while unlocked).
        locked: bool,
    },
    /// The safety checker found a rule broken.
    Violation {
        /// The check that fired, as a short stable name.
        check: String,
        /// What exactly was wrong, for people.
        detail: String,
        /// The physical address concerned (SMBASE, save area, SMRAM byte, …).
        address: u64,
        /// The other CPU involved, for checks about two CPUs (overlapping SMBASEs, …).
        other_cpu: Option<u32>,
    },
    /// This CPU is about to execute an instruction; only recorded with
    /// `--trace-instructions`, as it multiplies the trace size.
    Instruction {
        /// The instruction pointer.
        rip: u64,
        /// The code segment selector.
        cs: u16,
    },
}

impl EventKind {
    /// Every name [`EventKind::kind_name`] can return, in declaration order, so a CLI can
    /// validate `--kind` arguments and list them in its help.
    pub const NAMES: [&'static str; 20] = [
        "smi_raised",
        "smm_entry",
        "rsm",
        "smbase_relocated",
        "ipi_sent",
        "ipi_delivered",
        "init",
        "sipi",
        "halt",
        "wake",
        "hot_add",
        "hot_remove",
        "reset",
        "smram_blocked",
        "console_line",
        "run_end",
        "cpu_ejected",
        "controller_write_blocked",
        "violation",
        "instruction",
    ];

    /// The position of the variant in [`EventKind::NAMES`] (and in the enum), so filters
    /// can test membership with one bit instead of comparing strings.
    pub fn kind_index(&self) -> usize {
        match self {
            EventKind::SmiRaised { .. } => 0,
            EventKind::SmmEntry { .. } => 1,
            EventKind::Rsm { .. } => 2,
            EventKind::SmbaseRelocated { .. } => 3,
            EventKind::IpiSent { .. } => 4,
            EventKind::IpiDelivered { .. } => 5,
            EventKind::Init => 6,
            EventKind::Sipi { .. } => 7,
            EventKind::Halt => 8,
            EventKind::Wake => 9,
            EventKind::HotAdd { .. } => 10,
            EventKind::HotRemove { .. } => 11,
            EventKind::Reset { .. } => 12,
            EventKind::SmramBlocked { .. } => 13,
            EventKind::ConsoleLine { .. } => 14,
            EventKind::RunEnd { .. } => 15,
            EventKind::CpuEjected { .. } => 16,
            EventKind::ControllerWriteBlocked { .. } => 17,
            EventKind::Violation { .. } => 18,
            EventKind::Instruction { .. } => 19,
        }
    }

    /// A short snake_case name for the variant, used by `--kind` filters and viewers.
    pub fn kind_name(&self) -> &'static str {
        // kind_index is below NAMES.len() for every variant; the unit tests check that the
        // two lists agree.
        Self::NAMES[self.kind_index()]
    }

    /// The index in [`EventKind::NAMES`] of `name`, or `None` if no variant has it.
    pub fn index_of_name(name: &str) -> Option<usize> {
        Self::NAMES.iter().position(|known| *known == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every variant, in declaration order.
    fn one_of_each() -> Vec<EventKind> {
        vec![
            EventKind::SmiRaised {
                source: SmiSource::ApmPort,
            },
            EventKind::SmmEntry {
                smbase: 0x3_0000,
                save_area: 0x3_FE00,
            },
            EventKind::Rsm {
                old_smbase: 0x3_0000,
                new_smbase: 0x7F00_0000,
            },
            EventKind::SmbaseRelocated {
                old: 0x3_0000,
                new: 0x7F00_0000,
            },
            EventKind::IpiSent {
                mode: 2,
                destination: 1,
            },
            EventKind::IpiDelivered { mode: 2, source: 0 },
            EventKind::Init,
            EventKind::Sipi { vector: 0x9F },
            EventKind::Halt,
            EventKind::Wake,
            EventKind::HotAdd { apic_id: 4 },
            EventKind::HotRemove { apic_id: 4 },
            EventKind::Reset { hard: true },
            EventKind::SmramBlocked {
                address: 0xA_0000,
                write: true,
            },
            EventKind::ConsoleLine {
                text: "hello".into(),
            },
            EventKind::RunEnd { status: 0 },
            EventKind::CpuEjected { apic_id: 4 },
            EventKind::ControllerWriteBlocked {
                offset: 4,
                value: 0x7F00_0000,
                locked: true,
            },
            EventKind::Violation {
                check: "smbase_overlap".into(),
                detail: "save areas of cpu 1 and cpu 2 overlap".into(),
                address: 0x7F00_FE00,
                other_cpu: Some(2),
            },
            EventKind::Instruction {
                rip: 0xFFF0,
                cs: 0xF000,
            },
        ]
    }

    #[test]
    fn names_list_matches_kind_name_in_order() {
        let names: Vec<_> = one_of_each().iter().map(EventKind::kind_name).collect();
        assert_eq!(names, EventKind::NAMES);
        for (index, kind) in one_of_each().iter().enumerate() {
            assert_eq!(kind.kind_index(), index);
            assert_eq!(EventKind::index_of_name(kind.kind_name()), Some(index));
        }
        assert_eq!(EventKind::index_of_name("smi"), None);
    }

    #[test]
    fn discriminants_follow_declaration_order_so_old_files_still_decode() {
        // bincode writes the variant index as the first byte (a varint below 251), so
        // version-1 files written before the later variants existed decode unchanged.
        for (index, kind) in one_of_each().iter().enumerate() {
            let bytes =
                bincode::encode_to_vec(kind, crate::format::bincode_config()).expect("encodes");
            assert_eq!(usize::from(bytes[0]), index, "{kind:?}");
        }
    }

    #[test]
    fn order_key_is_cycle_then_cpu() {
        let a = Event {
            cycle: Cycle(5),
            cpu: 3,
            kind: EventKind::Halt,
        };
        let b = Event {
            cycle: Cycle(6),
            cpu: 0,
            kind: EventKind::Halt,
        };
        assert!(a.order_key() < b.order_key());
    }
}
