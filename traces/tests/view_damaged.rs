//! Every view on every truncation of a trace, and on randomly damaged traces: each works
//! on what can be read and none panics.

mod common;

use common::{header, small_run, write};
use proptest::prelude::*;
use smmsim_traces::{
    diff, export_perfetto, render_stats, show, stats, timeline_svg, DiffOutcome, Event, Filter,
    TimelineOptions, TraceReader,
};

/// Runs every view on `reader`, checking what each must guarantee on any input.
fn every_view(reader: &TraceReader, full: &TraceReader) {
    let readable: Vec<Event> = reader.events().map_while(Result::ok).collect();

    let mut out = Vec::new();
    let shown = show(reader, &Filter::default(), &mut out).expect("writing to a Vec");
    assert_eq!(shown.events_shown, readable.len() as u64);

    let counted = stats(reader);
    assert_eq!(counted.events, readable.len() as u64);
    let mut out = Vec::new();
    render_stats(reader, &counted, &mut out).expect("writing to a Vec");

    let mut out = Vec::new();
    export_perfetto(reader, &mut out).expect("writing to a Vec");
    serde_json::from_slice::<serde_json::Value>(&out).expect("always complete JSON");

    let mut out = Vec::new();
    timeline_svg(reader, &mut out, &TimelineOptions::default()).expect("writing to a Vec");
    assert!(String::from_utf8(out).unwrap().ends_with("</svg>\n"));

    let compared = diff(reader, full);
    let mut out = Vec::new();
    compared.render(&mut out).expect("writing to a Vec");
}

#[test]
fn every_truncation_gives_a_prefix_to_every_view() {
    let events = small_run();
    for finish in [true, false] {
        let bytes = write(&header(), &events, 3, finish);
        let full = TraceReader::from_bytes(bytes.clone()).unwrap();
        for len in 0..=bytes.len() {
            let Ok(reader) = TraceReader::from_bytes(bytes[..len].to_vec()) else {
                continue;
            };
            every_view(&reader, &full);
            // What a truncated file yields is a prefix of the run.
            let counted = stats(&reader);
            let result = diff(&reader, &full);
            if counted.events < events.len() as u64 {
                assert_eq!(result.equal_events, counted.events, "prefix of {len} bytes");
                assert!(
                    matches!(result.outcome, DiffOutcome::FirstIsPrefix { .. }),
                    "prefix of {len} bytes: {:?}",
                    result.outcome
                );
            } else {
                assert_eq!(result.outcome, DiffOutcome::Identical);
            }
        }
    }
}

proptest! {
    #[test]
    fn damaged_traces_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        finish in any::<bool>(),
    ) {
        let bytes = write(&header(), &small_run(), 2, finish);
        let full = TraceReader::from_bytes(bytes.clone()).unwrap();
        let mut damaged = bytes;
        for (at, mask) in flips {
            let i = at.index(damaged.len());
            damaged[i] ^= mask;
        }
        if let Ok(reader) = TraceReader::from_bytes(damaged) {
            every_view(&reader, &full);
        }
    }
}
