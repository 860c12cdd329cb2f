//! An event's fields in human form: `key=value` pairs, addresses and SMBASEs as
//! `0x%08x`, APIC IDs in decimal, IPI delivery modes by name.
//!
//! Shared by `show` (one line per event) and the timeline's hover titles, so an event reads
//! the same in both.

use std::fmt;

use crate::event::{EventKind, SmiSource};
use crate::reader::TraceReader;
use crate::view::units::format_clock;

/// Displays the fields of an event kind (not its name), e.g.
/// `smbase=0x00030000 save_area=0x0003fe00`; empty for kinds without fields.
pub(crate) struct Fields<'a>(pub(crate) &'a EventKind);

/// The name of an ICR delivery mode (SDM Vol. 3A §12.6.1), for IPI events.
pub(crate) fn delivery_mode_name(mode: u8) -> Option<&'static str> {
    match mode {
        0 => Some("fixed"),
        1 => Some("lowest"),
        2 => Some("smi"),
        4 => Some("nmi"),
        5 => Some("init"),
        6 => Some("startup"),
        _ => None,
    }
}

/// Shows an IPI destination: an APIC ID, or the name of a shorthand.
struct Destination(u32);

/// The simulator's markers for shorthands that name many CPUs (`sim/src/cpu/record.rs`).
const DESTINATION_ALL: u32 = u32::MAX;
const DESTINATION_ALL_BUT_SELF: u32 = u32::MAX - 1;

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            DESTINATION_ALL => f.write_str("all"),
            DESTINATION_ALL_BUT_SELF => f.write_str("all-but-self"),
            id => write!(f, "{id}"),
        }
    }
}

/// Shows a delivery mode by name, or its number for reserved modes.
struct Mode(u8);

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match delivery_mode_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A physical address or SMBASE as `0x` and at least eight hex digits.
struct Hex(u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// The snake_case name of an SMI source.
pub(crate) fn smi_source_name(source: SmiSource) -> &'static str {
    match source {
        SmiSource::ApmPort => "apm_port",
        SmiSource::Ipi => "ipi",
        SmiSource::Platform => "platform",
    }
}

impl fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            EventKind::SmiRaised { source } => write!(f, "source={}", smi_source_name(*source)),
            EventKind::SmmEntry { smbase, save_area } => {
                write!(f, "smbase={} save_area={}", Hex(*smbase), Hex(*save_area))
            }
            EventKind::Rsm {
                old_smbase,
                new_smbase,
            } => write!(
                f,
                "old_smbase={} new_smbase={}",
                Hex(*old_smbase),
                Hex(*new_smbase)
            ),
            EventKind::SmbaseRelocated { old, new } => {
                write!(f, "old={} new={}", Hex(*old), Hex(*new))
            }
            EventKind::IpiSent { mode, destination } => {
                write!(
                    f,
                    "mode={} destination={}",
                    Mode(*mode),
                    Destination(*destination)
                )
            }
            EventKind::IpiDelivered { mode, source } => {
                write!(f, "mode={} source={source}", Mode(*mode))
            }
            EventKind::Init | EventKind::Halt | EventKind::Wake => Ok(()),
            EventKind::Sipi { vector } => write!(f, "vector={vector:#04x}"),
            EventKind::HotAdd { apic_id }
            | EventKind::HotRemove { apic_id }
            | EventKind::CpuEjected { apic_id } => write!(f, "apic_id={apic_id}"),
            EventKind::Reset { hard } => write!(f, "hard={hard}"),
            EventKind::SmramBlocked { address, write } => write!(
                f,
                "address={} access={}",
                Hex(*address),
                if *write { "write" } else { "read" }
            ),
            EventKind::ConsoleLine { text } => write!(f, "text={text:?}"),
            EventKind::RunEnd { status } => write!(f, "status={status}"),
            EventKind::ControllerWriteBlocked {
                offset,
                value,
                locked,
            } => write!(
                f,
                "offset={offset:#06x} value={value:#010x} locked={locked}"
            ),
            EventKind::Violation {
                check,
                detail,
                address,
                other_cpu,
            } => {
                write!(f, "check={check} address={}", Hex(*address))?;
                if let Some(other) = other_cpu {
                    write!(f, " other_cpu={other}")?;
                }
                write!(f, " detail={detail:?}")
            }
            EventKind::Instruction { rip, cs } => write!(f, "cs={cs:#06x} rip={}", Hex(*rip)),
        }
    }
}

/// The lines that introduce any textual view of `reader`: the machine from the header,
/// the extent of the trace, and, when the file was not finished or was damaged, how it
/// was recovered.
pub(crate) fn trace_preamble(reader: &TraceReader) -> Vec<String> {
    let header = reader.header();
    let mut lines = vec![format!(
        "trace: smmsim {}; {} CPUs (max {}) at {}; layout {}, profile {}, strategy {}; \
         scenario {:#018x}",
        header.smmsim_version,
        header.cpus,
        header.max_cpus,
        format_clock(header.clock_hz),
        header.layout,
        header.profile,
        header.strategy,
        header.scenario_hash,
    )];
    let events: u64 = reader.chunks().map(|c| u64::from(c.event_count)).sum();
    let first = reader.chunks().next().map(|c| c.first_cycle.0);
    let last = reader.chunks().map(|c| c.last_cycle.0).max();
    let extent = match (first, last) {
        (Some(first), Some(last)) => format!(", cycles {first}..={last}"),
        _ => String::new(),
    };
    lines.push(format!(
        "{events} events in {} chunks{extent}",
        reader.chunk_count()
    ));
    if !reader.indexed() {
        lines.push(
            "no index (the run did not finish or the index is damaged): chunks found by \
             scanning"
                .to_string(),
        );
    }
    if reader.dropped_bytes() > 0 {
        lines.push(format!(
            "recovered a truncated or damaged trace: {} bytes dropped",
            reader.dropped_bytes()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_use_hex_for_addresses_and_decimal_for_apic_ids() {
        let show = |kind: EventKind| Fields(&kind).to_string();
        assert_eq!(
            show(EventKind::SmmEntry {
                smbase: 0x3_0000,
                save_area: 0x3_FE00
            }),
            "smbase=0x00030000 save_area=0x0003fe00"
        );
        assert_eq!(
            show(EventKind::IpiSent {
                mode: 2,
                destination: 12
            }),
            "mode=smi destination=12"
        );
        assert_eq!(
            show(EventKind::IpiDelivered { mode: 7, source: 0 }),
            "mode=7 source=0"
        );
        assert_eq!(show(EventKind::HotAdd { apic_id: 17 }), "apic_id=17");
        assert_eq!(show(EventKind::Halt), "");
        assert_eq!(
            show(EventKind::Violation {
                check: "overlap".into(),
                detail: "a \"b\"".into(),
                address: 0x1_0000_0000,
                other_cpu: Some(3),
            }),
            "check=overlap address=0x100000000 other_cpu=3 detail=\"a \\\"b\\\"\""
        );
    }
}
