//! `show`: the exact listing of a small run, and every filter.

mod common;

use common::{header, reader, small_run, write};
use smmsim_traces::{show, Cycle, Filter, TraceReader, ViewError};

fn listing_of(reader: &TraceReader, filter: &Filter) -> String {
    let mut out = Vec::new();
    show(reader, filter, &mut out).expect("writing to a Vec");
    String::from_utf8(out).expect("show writes UTF-8")
}

fn listing(filter: &Filter) -> String {
    listing_of(&reader(&small_run()), filter)
}

/// The two preamble lines of the small run.
const PREAMBLE: &str = "\
trace: smmsim 0.1.0; 2 CPUs (max 4) at 2.000 GHz; layout q35-tseg, profile qemu, strategy broadcast; scenario 0x0000000000001234
9 events in 3 chunks, cycles 100..=10000
";

#[test]
fn every_event_on_one_aligned_line() {
    let lines = [
        "  100     50.000 ns  cpu 0  smi_raised                source=apm_port",
        "  120     60.000 ns  cpu 0  smm_entry                 smbase=0x00030000 save_area=0x0003fe00",
        "  150     75.000 ns  cpu 0  ipi_sent                  mode=smi destination=1",
        "  180     90.000 ns  cpu 1  ipi_delivered             mode=smi source=0",
        "  200    100.000 ns  cpu 1  smm_entry                 smbase=0x00030000 save_area=0x0003fe00",
        " 2000      1.000 µs  cpu 0  rsm                       old_smbase=0x00030000 new_smbase=0x7f000000",
        " 2500      1.250 µs  cpu 1  hot_add                   apic_id=2",
        " 2600      1.300 µs  cpu 1  rsm                       old_smbase=0x00030000 new_smbase=0x7f000400",
        "10000      5.000 µs  cpu 1  halt",
    ];
    let expected = format!("{PREAMBLE}{}\n", lines.join("\n"));
    assert_eq!(listing(&Filter::default()), expected);
}

#[test]
fn cpu_filter_keeps_one_cpu() {
    let out = listing(&Filter {
        cpu: Some(1),
        ..Filter::default()
    });
    let events: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(events.len(), 5, "{out}");
    assert!(events.iter().all(|line| line.contains("cpu 1")), "{out}");
}

#[test]
fn kind_filter_keeps_the_named_kinds() {
    let out = listing(&Filter {
        kinds: vec!["rsm".into(), "smm_entry".into()],
        ..Filter::default()
    });
    let kinds: Vec<&str> = out
        .lines()
        .skip(2)
        .map(|line| line.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(kinds, ["smm_entry", "smm_entry", "rsm", "rsm"]);
}

#[test]
fn range_filter_is_inclusive_at_both_ends() {
    let out = listing(&Filter {
        from: Some(Cycle(150)),
        to: Some(Cycle(2_000)),
        ..Filter::default()
    });
    let cycles: Vec<&str> = out
        .lines()
        .skip(2)
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(cycles, ["150", "180", "200", "2000"]);
}

#[test]
fn filters_combine() {
    let out = listing(&Filter {
        cpu: Some(1),
        kinds: vec!["rsm".into()],
        from: Some(Cycle(201)),
        to: None,
    });
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out
        .lines()
        .last()
        .unwrap()
        .contains("new_smbase=0x7f000400"));
}

#[test]
fn unknown_kind_is_an_error_listing_valid_names_before_any_output() {
    let mut out = Vec::new();
    let err = show(
        &reader(&small_run()),
        &Filter {
            kinds: vec!["rsm".into(), "smi".into()],
            ..Filter::default()
        },
        &mut out,
    )
    .unwrap_err();
    assert!(matches!(err, ViewError::UnknownKind { ref name, .. } if name == "smi"));
    let message = err.to_string();
    assert!(message.contains("smi_raised, smm_entry, rsm"), "{message}");
    assert!(out.is_empty());
}

#[test]
fn recovered_trace_says_how_it_was_recovered() {
    let mut bytes = write(&header(), &small_run(), 3, false);
    bytes.truncate(bytes.len() - 5);
    let reader = TraceReader::from_bytes(bytes).unwrap();
    let out = listing_of(&reader, &Filter::default());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "6 events in 2 chunks, cycles 100..=2000");
    assert_eq!(
        lines[2],
        "no index (the run did not finish or the index is damaged): chunks found by scanning"
    );
    assert!(
        lines[3].starts_with("recovered a truncated or damaged trace: ")
            && lines[3].ends_with(" bytes dropped"),
        "{out}"
    );
    assert_eq!(lines.len(), 4 + 6, "{out}");
}

#[test]
fn damage_ends_the_listing_with_a_line_saying_where() {
    let mut bytes = write(&header(), &small_run(), 3, true);
    let reader = TraceReader::from_bytes(bytes.clone()).unwrap();
    let second = reader.chunks().nth(1).unwrap();
    // Flip a payload byte of the second chunk; the index still matches, so the reader
    // finds the damage while decoding.
    bytes[second.offset as usize + 40] ^= 0x55;
    let reader = TraceReader::from_bytes(bytes).unwrap();
    let mut out = Vec::new();
    let summary = show(&reader, &Filter::default(), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(summary.events_shown, 3);
    let damage = summary.damage.expect("damage is reported");
    assert!(damage.contains("CRC"), "{damage}");
    assert!(out.lines().last().unwrap().contains(&damage), "{out}");
}
