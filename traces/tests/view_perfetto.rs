//! `export_perfetto`: the JSON parses back and has the structure ui.perfetto.dev needs —
//! slices that nest per track, instants in order, flows paired.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{at, reader, small_run};
use proptest::prelude::*;
use serde_json::Value;
use smmsim_traces::{export_perfetto, Event, EventKind, SmiSource};

fn export(events: &[Event]) -> (Value, smmsim_traces::view::PerfettoSummary) {
    let mut out = Vec::new();
    let summary = export_perfetto(&reader(events), &mut out).expect("writing to a Vec");
    let json = serde_json::from_slice(&out).expect("the export is valid JSON");
    (json, summary)
}

fn events_of(json: &Value) -> &Vec<Value> {
    json["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
}

/// A timestamp in whole nanoseconds, as Perfetto reads the microsecond value.
fn ns(value: &Value) -> i64 {
    (value.as_f64().expect("a number") * 1_000.0).round() as i64
}

/// Checks everything Perfetto relies on; returns (slices, instants, flows) counted.
fn check_structure(json: &Value) -> (usize, usize, usize) {
    let events = events_of(json);
    let mut slices: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    let mut last_instant: HashMap<i64, i64> = HashMap::new();
    let mut flow_starts: HashMap<u64, (i64, i64)> = HashMap::new();
    let mut flow_ends: HashMap<u64, (i64, i64)> = HashMap::new();
    let mut instants = 0;
    for event in events {
        assert_eq!(event["pid"], 1, "{event}");
        let tid = event["tid"].as_i64().expect("tid");
        match event["ph"].as_str().expect("ph") {
            "X" => {
                let (ts, dur) = (ns(&event["ts"]), ns(&event["dur"]));
                assert!(ts >= 0 && dur >= 0, "{event}");
                slices.entry(tid).or_default().push((ts, ts + dur));
            }
            "i" => {
                instants += 1;
                assert_eq!(event["s"], "t", "{event}");
                let ts = ns(&event["ts"]);
                let previous = last_instant.insert(tid, ts).unwrap_or(i64::MIN);
                assert!(
                    ts >= previous,
                    "instants out of order on tid {tid}: {event}"
                );
            }
            "s" => {
                let id = event["id"].as_u64().expect("flow id");
                assert!(flow_starts.insert(id, (tid, ns(&event["ts"]))).is_none());
            }
            "f" => {
                let id = event["id"].as_u64().expect("flow id");
                assert_eq!(event["bp"], "e");
                assert!(flow_ends.insert(id, (tid, ns(&event["ts"]))).is_none());
            }
            "M" => assert!(
                event["args"]["name"].is_string() || event["args"]["sort_index"].is_number()
            ),
            other => panic!("unexpected phase {other}: {event}"),
        }
    }
    for (tid, mut spans) in slices.clone() {
        spans.sort();
        let mut open: Vec<(i64, i64)> = Vec::new();
        for (start, end) in spans {
            while open.last().is_some_and(|&(_, top_end)| top_end <= start) {
                open.pop();
            }
            if let Some(&(_, top_end)) = open.last() {
                assert!(
                    end <= top_end,
                    "slices overlap on tid {tid}: ends {top_end} and {end}"
                );
            }
            open.push((start, end));
        }
    }
    assert_eq!(flow_starts.len(), flow_ends.len());
    for (id, (_, start)) in &flow_starts {
        let (_, end) = flow_ends.get(id).expect("every flow start has an end");
        assert!(end >= start, "flow {id} goes back in time");
    }
    let slice_count = slices.values().map(Vec::len).sum();
    (slice_count, instants, flow_starts.len())
}

#[test]
fn small_run_has_slices_instants_a_flow_and_named_tracks() {
    let (json, summary) = export(&small_run());
    let (slices, instants, flows) = check_structure(&json);
    assert_eq!((slices, flows), (2, 1));
    assert_eq!(summary.slices, 2);
    assert_eq!(summary.flows, 1);
    assert_eq!(summary.instants as usize, instants);
    // SMI, IPI sent, IPI delivered, hot-add, halt.
    assert_eq!(instants, 5);
    let events = events_of(&json);
    let smm: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    // CPU 0 in SMM from cycle 120 to 2000 at 2 GHz: 60 ns for 940 ns.
    let cpu0 = smm.iter().find(|e| e["tid"] == 0).unwrap();
    assert_eq!(ns(&cpu0["ts"]), 60);
    assert_eq!(ns(&cpu0["dur"]), 940);
    assert_eq!(cpu0["args"]["smbase"], "0x00030000");
    assert_eq!(cpu0["args"]["new_smbase"], "0x7f000000");
    assert_eq!(cpu0["args"]["relocated"], true);
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu 0 (APIC 0)", "cpu 1 (APIC 1)"]);
    let flow_start = events.iter().find(|e| e["ph"] == "s").unwrap();
    let flow_end = events.iter().find(|e| e["ph"] == "f").unwrap();
    assert_eq!(
        (flow_start["tid"].as_i64(), flow_end["tid"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(json["otherData"]["clock_hz"], 2_000_000_000u64);
    assert_eq!(json["displayTimeUnit"], "ns");
}

#[test]
fn an_unterminated_stay_is_clipped_at_the_last_event() {
    let entry = at(
        10,
        0,
        EventKind::SmmEntry {
            smbase: 0x3_0000,
            save_area: 0x3_FE00,
        },
    );
    let (json, summary) = export(&[entry, at(500, 1, EventKind::Halt)]);
    check_structure(&json);
    assert_eq!(summary.unterminated_slices, 1);
    let slice = events_of(&json).iter().find(|e| e["ph"] == "X").unwrap();
    assert_eq!(ns(&slice["ts"]), 5);
    assert_eq!(ns(&slice["dur"]), 245);
    assert_eq!(slice["args"]["rsm"], false);
}

#[test]
fn an_unpaired_ipi_is_only_an_instant() {
    let sent = at(
        10,
        0,
        EventKind::IpiSent {
            mode: 5,
            destination: 9,
        },
    );
    let (json, summary) = export(&[sent]);
    let (_, instants, flows) = check_structure(&json);
    assert_eq!((instants, flows, summary.flows), (1, 0, 0));
}

/// One step of a random run over 4 CPUs, including the odd cases (second entries, RSMs
/// without entries, IPIs that never arrive).
fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::SmmEntry {
            smbase: 0x3_0000,
            save_area: 0x3_FE00
        }),
        Just(EventKind::Rsm {
            old_smbase: 0x3_0000,
            new_smbase: 0x3_0000
        }),
        (0u8..7, 0u32..5).prop_map(|(mode, destination)| EventKind::IpiSent { mode, destination }),
        (0u8..7, 0u32..5).prop_map(|(mode, source)| EventKind::IpiDelivered { mode, source }),
        Just(EventKind::SmiRaised {
            source: SmiSource::Platform
        }),
        (0u32..5).prop_map(|apic_id| EventKind::HotAdd { apic_id }),
        Just(EventKind::Instruction {
            rip: 0xFFF0,
            cs: 0xF000
        }),
    ]
}

proptest! {
    #[test]
    fn any_run_exports_well_formed(
        raw in prop::collection::vec((0u64..3, 0u32..4, kind()), 0..80),
        clock_hz in prop_oneof![Just(0u64), Just(1_000_000_000), Just(3_333_333_333)],
    ) {
        let mut cycle = 0;
        let events: Vec<Event> = raw
            .into_iter()
            .map(|(step, cpu, kind)| {
                cycle += step;
                at(cycle, cpu, kind)
            })
            .collect::<Vec<_>>();
        let mut events = events;
        events.sort_by_key(Event::order_key);
        let header = smmsim_traces::Header { clock_hz, ..common::header() };
        let bytes = common::write(&header, &events, 5, true);
        let reader = smmsim_traces::TraceReader::from_bytes(bytes).unwrap();
        let mut out = Vec::new();
        let summary = export_perfetto(&reader, &mut out).unwrap();
        let json: Value = serde_json::from_slice(&out).unwrap();
        let (slices, instants, flows) = check_structure(&json);
        prop_assert_eq!(slices as u64, summary.slices);
        prop_assert_eq!(instants as u64, summary.instants);
        prop_assert_eq!(flows as u64, summary.flows);
    }
}
