//! Property tests of the trace format: every event kind round-trips, and truncated or
//! damaged files give errors or a subset of what was written, never a panic.

use proptest::prelude::*;
use smmsim_traces::{
    Cycle, Event, EventKind, Header, SmiSource, TraceError, TraceReader, TraceWriter,
    FORMAT_VERSION,
};

fn smi_source() -> impl Strategy<Value = SmiSource> {
    prop_oneof![
        Just(SmiSource::ApmPort),
        Just(SmiSource::Ipi),
        Just(SmiSource::Platform)
    ]
}

/// Any value of any variant.
fn event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        smi_source().prop_map(|source| EventKind::SmiRaised { source }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(smbase, save_area)| EventKind::SmmEntry { smbase, save_area }),
        (any::<u64>(), any::<u64>()).prop_map(|(old_smbase, new_smbase)| EventKind::Rsm {
            old_smbase,
            new_smbase
        }),
        (any::<u64>(), any::<u64>()).prop_map(|(old, new)| EventKind::SmbaseRelocated { old, new }),
        (any::<u8>(), any::<u32>())
            .prop_map(|(mode, destination)| EventKind::IpiSent { mode, destination }),
        (any::<u8>(), any::<u32>())
            .prop_map(|(mode, source)| EventKind::IpiDelivered { mode, source }),
        Just(EventKind::Init),
        any::<u8>().prop_map(|vector| EventKind::Sipi { vector }),
        Just(EventKind::Halt),
        Just(EventKind::Wake),
        any::<u32>().prop_map(|apic_id| EventKind::HotAdd { apic_id }),
        any::<u32>().prop_map(|apic_id| EventKind::HotRemove { apic_id }),
        any::<bool>().prop_map(|hard| EventKind::Reset { hard }),
        (any::<u64>(), any::<bool>())
            .prop_map(|(address, write)| EventKind::SmramBlocked { address, write }),
        ".{0,40}".prop_map(|text| EventKind::ConsoleLine { text }),
        any::<u32>().prop_map(|status| EventKind::RunEnd { status }),
        any::<u32>().prop_map(|apic_id| EventKind::CpuEjected { apic_id }),
        (any::<u16>(), any::<u32>(), any::<bool>()).prop_map(|(offset, value, locked)| {
            EventKind::ControllerWriteBlocked {
                offset,
                value,
                locked,
            }
        }),
        (".{0,20}", ".{0,40}", any::<u64>(), any::<Option<u32>>()).prop_map(
            |(check, detail, address, other_cpu)| EventKind::Violation {
                check,
                detail,
                address,
                other_cpu,
            }
        ),
        (any::<u64>(), any::<u16>()).prop_map(|(rip, cs)| EventKind::Instruction { rip, cs }),
    ]
}

/// Events in (cycle, cpu) order, split into chunks of random sizes.
fn chunked_events() -> impl Strategy<Value = Vec<Vec<Event>>> {
    prop::collection::vec((0u64..50, 0u32..4, event_kind()), 0..40).prop_flat_map(|raw| {
        let mut events: Vec<Event> = raw
            .into_iter()
            .map(|(cycle, cpu, kind)| Event {
                cycle: Cycle(cycle),
                cpu,
                kind,
            })
            .collect();
        events.sort_by_key(Event::order_key);
        let len = events.len();
        prop::collection::vec(1usize..8, len).prop_map(move |sizes| {
            let mut chunks = Vec::new();
            let mut rest = events.as_slice();
            for size in sizes {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at(size.min(rest.len()));
                chunks.push(chunk.to_vec());
                rest = tail;
            }
            chunks
        })
    })
}

fn header() -> Header {
    Header {
        smmsim_version: "0.1.0".into(),
        cpus: 2,
        max_cpus: 4,
        clock_hz: 2_000_000_000,
        layout: "q35-tseg".into(),
        profile: "edk2-like".into(),
        strategy: "broadcast".into(),
        scenario_hash: 0x1234_5678_9ABC_DEF0,
    }
}

fn write(chunks: &[Vec<Event>], finish: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = TraceWriter::new(&mut bytes, &header()).expect("writing to a Vec");
    for chunk in chunks {
        writer.write_chunk(chunk).expect("chunks are sorted");
    }
    if finish {
        writer.finish().expect("writing to a Vec");
    }
    bytes
}

/// The events a reader yields before its first error (if any).
fn readable(reader: &TraceReader) -> Vec<Event> {
    reader.events().map_while(Result::ok).collect()
}

fn is_subsequence(found: &[Event], written: &[Event]) -> bool {
    let mut written = written.iter();
    found.iter().all(|event| written.any(|w| w == event))
}

proptest! {
    #[test]
    fn every_kind_round_trips(chunks in chunked_events(), finish in any::<bool>()) {
        let written: Vec<Event> = chunks.iter().flatten().cloned().collect();
        let reader = TraceReader::from_bytes(write(&chunks, finish)).unwrap();
        prop_assert_eq!(reader.header(), &header());
        prop_assert_eq!(reader.indexed(), finish);
        prop_assert_eq!(reader.chunk_count(), chunks.len());
        prop_assert_eq!(reader.dropped_bytes(), 0);
        let read: Vec<Event> = reader.events().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(read, written);
    }

    #[test]
    fn seeking_returns_the_events_at_or_after_the_cycle(
        chunks in chunked_events(),
        cycle in 0u64..60,
        finish in any::<bool>(),
    ) {
        let written: Vec<Event> = chunks.iter().flatten().cloned().collect();
        let reader = TraceReader::from_bytes(write(&chunks, finish)).unwrap();
        let expected: Vec<Event> =
            written.into_iter().filter(|e| e.cycle >= Cycle(cycle)).collect();
        let found: Vec<Event> =
            reader.events_from(Cycle(cycle)).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(found, expected);
    }

    #[test]
    fn byte_flips_never_panic_or_invent_events(
        chunks in chunked_events(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
        finish in any::<bool>(),
    ) {
        let written: Vec<Event> = chunks.iter().flatten().cloned().collect();
        let mut bytes = write(&chunks, finish);
        for (at, mask) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        if let Ok(reader) = TraceReader::from_bytes(bytes) {
            let found = readable(&reader);
            prop_assert!(is_subsequence(&found, &written), "{:?} not in {:?}", found, written);
            let _ = reader.events_from(Cycle(10)).count();
        }
    }
}

#[test]
fn every_truncation_gives_an_error_or_a_prefix() {
    let chunks: Vec<Vec<Event>> = vec![
        vec![
            Event {
                cycle: Cycle(1),
                cpu: 0,
                kind: EventKind::SmiRaised {
                    source: SmiSource::ApmPort,
                },
            },
            Event {
                cycle: Cycle(1),
                cpu: 1,
                kind: EventKind::SmiRaised {
                    source: SmiSource::Ipi,
                },
            },
        ],
        vec![Event {
            cycle: Cycle(20),
            cpu: 0,
            kind: EventKind::SmmEntry {
                smbase: 0x3_0000,
                save_area: 0x3_FE00,
            },
        }],
        vec![
            Event {
                cycle: Cycle(30),
                cpu: 0,
                kind: EventKind::ConsoleLine { text: "hi".into() },
            },
            Event {
                cycle: Cycle(31),
                cpu: 0,
                kind: EventKind::RunEnd { status: 0 },
            },
        ],
    ];
    let written: Vec<Event> = chunks.iter().flatten().cloned().collect();
    let bytes = write(&chunks, true);
    let mut recovered_lengths = Vec::new();
    for len in 0..=bytes.len() {
        let prefix = bytes[..len].to_vec();
        match TraceReader::from_bytes(prefix) {
            Err(_) => recovered_lengths.push(None),
            Ok(reader) => {
                let found = readable(&reader);
                assert_eq!(found[..], written[..found.len()], "prefix of {len} bytes");
                recovered_lengths.push(Some(found.len()));
            }
        }
    }
    // The whole file reads completely; a file cut inside the header is an error.
    assert_eq!(recovered_lengths.last(), Some(&Some(written.len())));
    assert_eq!(recovered_lengths.first(), Some(&None));
    // Cutting just the footer still recovers every chunk by scanning.
    let reader = TraceReader::from_bytes(bytes[..bytes.len() - 1].to_vec()).unwrap();
    assert!(!reader.indexed());
    assert_eq!(readable(&reader), written);
}

#[test]
fn version_mismatch_names_both_versions() {
    let mut bytes = write(&[], true);
    let newer = FORMAT_VERSION + 1;
    bytes[8..10].copy_from_slice(&newer.to_le_bytes());
    let err = TraceReader::from_bytes(bytes).unwrap_err();
    assert!(
        matches!(err, TraceError::VersionMismatch { expected, found }
        if expected == FORMAT_VERSION && found == newer)
    );
    let message = err.to_string();
    assert!(message.contains(&newer.to_string()), "{message}");
    assert!(message.contains(&FORMAT_VERSION.to_string()), "{message}");
}

#[test]
fn open_maps_a_file_from_disk() {
    let chunks = vec![vec![Event {
        cycle: Cycle(3),
        cpu: 1,
        kind: EventKind::Halt,
    }]];
    let path = std::env::temp_dir().join(format!("smmsim-traces-{}.trace", std::process::id()));
    std::fs::write(&path, write(&chunks, true)).unwrap();
    let reader = TraceReader::open(&path).unwrap();
    assert_eq!(readable(&reader), chunks[0]);
    drop(reader);
    std::fs::remove_file(&path).unwrap();

    let missing = TraceReader::open(&path).unwrap_err();
    assert!(missing.to_string().contains("smmsim-traces-"), "{missing}");
}
