//! `timeline_svg`: a well-formed SVG with one labelled row per CPU, bars, arrows and marks,
//! and a bounded size for long traces.

mod common;

use common::{at, header, reader, small_run, write};
use smmsim_traces::{timeline_svg, Event, EventKind, TimelineOptions, TraceReader, ViewError};

fn draw(
    reader: &TraceReader,
    options: &TimelineOptions,
) -> (String, smmsim_traces::view::TimelineSummary) {
    let mut out = Vec::new();
    let summary = timeline_svg(reader, &mut out, options).expect("writing to a Vec");
    (String::from_utf8(out).expect("SVG is UTF-8"), summary)
}

/// Checks that tags open and close in order (a small XML well-formedness check).
fn assert_tags_balance(svg: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("every tag closes") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("a tag name");
            open.push(name);
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "unclosed tags: {open:?}");
}

#[test]
fn small_run_draws_rows_bars_an_arrow_and_a_mark() {
    let (svg, summary) = draw(&reader(&small_run()), &TimelineOptions::default());
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>\n"));
    assert_tags_balance(&svg);
    assert_eq!(svg.matches("class=\"row-label\"").count(), 2);
    assert!(svg.contains(">cpu 0 (APIC 0)</text>"));
    assert!(svg.contains(">cpu 1 (APIC 1)</text>"));
    assert_eq!(svg.matches("<rect class=\"smm\"").count(), 2);
    assert_eq!(svg.matches("<line class=\"ipi\"").count(), 1);
    assert_eq!(svg.matches("<path class=\"mark\"").count(), 1);
    assert!(svg.contains("hot-add at cycle 2500"));
    assert!(svg.contains("SMM residency"), "legend");
    assert!(svg.contains("class=\"tick\""), "axis labels");
    assert_eq!(
        (
            summary.rows,
            summary.stays,
            summary.bars,
            summary.arrows,
            summary.marks
        ),
        (2, 2, 2, 1, 1)
    );
}

#[test]
fn axis_labels_are_round_times() {
    let (svg, _) = draw(&reader(&small_run()), &TimelineOptions::default());
    // 100..=10,000 cycles at 2 GHz is 50 ns..=5 µs: an eighth of that rounds up to 1 µs.
    let ticks: Vec<&str> = svg
        .split("class=\"tick\"")
        .skip(1)
        .map(|rest| &rest[rest.find('>').unwrap() + 1..rest.find('<').unwrap()])
        .collect();
    assert_eq!(
        ticks,
        ["1.000 µs", "2.000 µs", "3.000 µs", "4.000 µs", "5.000 µs"]
    );
}

#[test]
fn a_long_trace_stays_small() {
    let mut events = Vec::new();
    for i in 0..100_000u64 {
        let cpu = (i % 8) as u32;
        let kind = if (i / 8) % 2 == 0 {
            EventKind::SmmEntry {
                smbase: 0x3_0000,
                save_area: 0x3_FE00,
            }
        } else {
            EventKind::Rsm {
                old_smbase: 0x3_0000,
                new_smbase: 0x3_0000,
            }
        };
        events.push(at(i * 10, cpu, kind));
        if i % 3 == 0 {
            events.push(at(
                i * 10,
                cpu,
                EventKind::IpiSent {
                    mode: 0,
                    destination: (cpu + 1) % 8,
                },
            ));
            events.push(at(
                i * 10 + 1,
                (cpu + 1) % 8,
                EventKind::IpiDelivered {
                    mode: 0,
                    source: cpu,
                },
            ));
        }
    }
    events.sort_by_key(Event::order_key);
    let reader = TraceReader::from_bytes(write(&header(), &events, 4_096, true)).unwrap();
    let options = TimelineOptions {
        width_px: 800,
        max_arrows: 500,
        ..TimelineOptions::default()
    };
    let (svg, summary) = draw(&reader, &options);
    assert_tags_balance(&svg);
    assert_eq!(summary.stays, 50_000);
    assert!(summary.bars <= 8 * 800, "{summary:?}");
    assert_eq!(summary.arrows, 500);
    assert!(summary.arrows_left_out > 0);
    assert!(svg.contains("more not drawn"));
    assert!(svg.len() < 2_000_000, "{} bytes", svg.len());
}

#[test]
fn too_small_a_picture_is_refused() {
    let mut out = Vec::new();
    let options = TimelineOptions {
        width_px: 10,
        ..TimelineOptions::default()
    };
    let err = timeline_svg(&reader(&small_run()), &mut out, &options).unwrap_err();
    assert!(matches!(err, ViewError::BadOption { .. }), "{err}");
    assert!(out.is_empty());
}

#[test]
fn header_text_is_escaped() {
    let header = smmsim_traces::Header {
        strategy: "<a&b>".into(),
        ..header()
    };
    let reader = TraceReader::from_bytes(write(&header, &small_run(), 3, true)).unwrap();
    let (svg, _) = draw(&reader, &TimelineOptions::default());
    assert!(svg.contains("&lt;a&amp;b&gt;"));
    assert_tags_balance(&svg);
}

#[test]
fn an_empty_trace_draws_an_empty_picture() {
    let reader = TraceReader::from_bytes(write(&header(), &[], 3, true)).unwrap();
    let (svg, summary) = draw(&reader, &TimelineOptions::default());
    assert_tags_balance(&svg);
    assert_eq!(summary.rows, 0);
}
