//! `diff`: identical traces, a prefix, a divergence, and header differences.

mod common;

use common::{header, reader, small_run, write};
use smmsim_traces::{diff, DiffOutcome, DiffResult, EventKind, Header, TraceReader};

fn rendered(result: &DiffResult) -> String {
    let mut out = Vec::new();
    result.render(&mut out).expect("writing to a Vec");
    String::from_utf8(out).unwrap()
}

#[test]
fn identical_traces() {
    let result = diff(&reader(&small_run()), &reader(&small_run()));
    assert!(result.identical());
    assert_eq!(result.outcome, DiffOutcome::Identical);
    assert_eq!(result.equal_events, 9);
    assert_eq!(rendered(&result), "events identical (9 events)\n");
}

#[test]
fn chunking_does_not_matter() {
    let other = TraceReader::from_bytes(write(&header(), &small_run(), 1, false)).unwrap();
    assert!(diff(&reader(&small_run()), &other).identical());
}

#[test]
fn a_prefix_either_way_round() {
    let run = small_run();
    let short = reader(&run[..5]);
    let long = reader(&run);
    let result = diff(&short, &long);
    assert_eq!(
        result.outcome,
        DiffOutcome::FirstIsPrefix {
            next_in_second: run[5].clone()
        }
    );
    assert_eq!(result.equal_events, 5);
    let text = rendered(&result);
    assert!(
        text.starts_with("the first trace is a prefix of the second: both agree on 5 events"),
        "{text}"
    );
    assert!(
        text.contains("cycle 2000 cpu 0 rsm old_smbase=0x00030000"),
        "{text}"
    );

    let result = diff(&long, &short);
    assert!(matches!(result.outcome, DiffOutcome::SecondIsPrefix { .. }));
    assert!(!result.identical());
}

#[test]
fn the_first_divergence_is_reported_with_both_events() {
    let run = small_run();
    let mut changed = run.clone();
    changed[4].kind = EventKind::SmmEntry {
        smbase: 0x7F00_0000,
        save_area: 0x7F00_FE00,
    };
    changed[6].cycle.0 += 1;
    let result = diff(&reader(&run), &reader(&changed));
    assert_eq!(
        result.outcome,
        DiffOutcome::Diverged {
            index: 4,
            first: run[4].clone(),
            second: changed[4].clone(),
        }
    );
    let text = rendered(&result);
    assert_eq!(
        text,
        "events diverge at index 4 (cycle 200):\n  \
         first:  cycle 200 cpu 1 smm_entry smbase=0x00030000 save_area=0x0003fe00\n  \
         second: cycle 200 cpu 1 smm_entry smbase=0x7f000000 save_area=0x7f00fe00\n"
    );
}

#[test]
fn header_differences_are_listed_and_events_still_compared() {
    let other_header = Header {
        clock_hz: 3_000_000_000,
        strategy: "serial".into(),
        ..header()
    };
    let other = TraceReader::from_bytes(write(&other_header, &small_run(), 3, true)).unwrap();
    let result = diff(&reader(&small_run()), &other);
    assert!(!result.identical());
    let fields: Vec<&str> = result.header_differences.iter().map(|d| d.field).collect();
    assert_eq!(fields, ["clock_hz", "strategy"]);
    assert_eq!(result.outcome, DiffOutcome::Identical);
    let text = rendered(&result);
    assert_eq!(
        text,
        "headers differ:\n  clock_hz: 2000000000 vs 3000000000\n  strategy: broadcast vs serial\n\
         events identical (9 events)\n"
    );
}
