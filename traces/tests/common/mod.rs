//! Builders shared by the view tests: a header, events, and a trace file in memory.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use smmsim_traces::{Cycle, Event, EventKind, Header, SmiSource, TraceReader, TraceWriter};

/// The header of every hand-built trace: 2 CPUs of 4 at 2 GHz.
pub fn header() -> Header {
    Header {
        smmsim_version: "0.1.0".into(),
        cpus: 2,
        max_cpus: 4,
        clock_hz: 2_000_000_000,
        layout: "q35-tseg".into(),
        profile: "qemu".into(),
        strategy: "broadcast".into(),
        scenario_hash: 0x1234,
    }
}

/// An event at `cycle` on `cpu`.
pub fn at(cycle: u64, cpu: u32, kind: EventKind) -> Event {
    Event {
        cycle: Cycle(cycle),
        cpu,
        kind,
    }
}

/// The bytes of a trace holding `events` in chunks of `chunk` events; `finish` writes the
/// index (false: as a killed run leaves it).
pub fn write(header: &Header, events: &[Event], chunk: usize, finish: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = TraceWriter::new(&mut bytes, header).expect("writing to a Vec");
    for part in events.chunks(chunk.max(1)) {
        writer.write_chunk(part).expect("events are in order");
    }
    if finish {
        writer.finish().expect("writing to a Vec");
    }
    bytes
}

/// A reader over `events` written with [`header`] in chunks of 3, finished.
pub fn reader(events: &[Event]) -> TraceReader {
    TraceReader::from_bytes(write(&header(), events, 3, true)).expect("a fresh trace reads")
}

/// A small run: CPU 0 takes an SMI, relocates, and wakes CPU 1 with an SMI IPI; CPU 1
/// enters SMM, a CPU is hot-added, CPU 1 halts.
pub fn small_run() -> Vec<Event> {
    vec![
        at(
            100,
            0,
            EventKind::SmiRaised {
                source: SmiSource::ApmPort,
            },
        ),
        at(
            120,
            0,
            EventKind::SmmEntry {
                smbase: 0x3_0000,
                save_area: 0x3_FE00,
            },
        ),
        at(
            150,
            0,
            EventKind::IpiSent {
                mode: 2,
                destination: 1,
            },
        ),
        at(180, 1, EventKind::IpiDelivered { mode: 2, source: 0 }),
        at(
            200,
            1,
            EventKind::SmmEntry {
                smbase: 0x3_0000,
                save_area: 0x3_FE00,
            },
        ),
        at(
            2_000,
            0,
            EventKind::Rsm {
                old_smbase: 0x3_0000,
                new_smbase: 0x7F00_0000,
            },
        ),
        at(2_500, 1, EventKind::HotAdd { apic_id: 2 }),
        at(
            2_600,
            1,
            EventKind::Rsm {
                old_smbase: 0x3_0000,
                new_smbase: 0x7F00_0400,
            },
        ),
        at(10_000, 1, EventKind::Halt),
    ]
}
