//! `stats`: SMM time pairing, unterminated and unmatched stays, per-CPU counts, and the
//! rendered table.

mod common;

use common::{at, header, reader, small_run, write};
use smmsim_traces::{render_stats, stats, EventKind, TraceReader, TraceStats};

fn entry(cycle: u64, cpu: u32) -> smmsim_traces::Event {
    at(
        cycle,
        cpu,
        EventKind::SmmEntry {
            smbase: 0x3_0000,
            save_area: 0x3_FE00,
        },
    )
}

fn rsm(cycle: u64, cpu: u32) -> smmsim_traces::Event {
    at(
        cycle,
        cpu,
        EventKind::Rsm {
            old_smbase: 0x3_0000,
            new_smbase: 0x3_0000,
        },
    )
}

fn rendered(reader: &TraceReader, stats: &TraceStats) -> String {
    let mut out = Vec::new();
    render_stats(reader, stats, &mut out).expect("writing to a Vec");
    String::from_utf8(out).unwrap()
}

#[test]
fn small_run_counts_per_cpu_and_in_total() {
    let reader = reader(&small_run());
    let stats = stats(&reader);
    assert_eq!(stats.events, 9);
    assert_eq!(stats.damage, None);
    assert_eq!(stats.first_cycle, Some(100));
    assert_eq!(stats.last_cycle, Some(10_000));
    assert_eq!(stats.cpus.len(), 2);
    let cpu0 = &stats.cpus[0].counts;
    assert_eq!(stats.cpus[0].cpu, 0);
    assert_eq!(
        (
            cpu0.smis_raised,
            cpu0.smm_entries,
            cpu0.rsms,
            cpu0.ipis_sent
        ),
        (1, 1, 1, 1)
    );
    assert_eq!((cpu0.smm_cycles, cpu0.max_smm_cycles), (1_880, 1_880));
    assert_eq!(cpu0.smm_ns, 940);
    assert_eq!(cpu0.rsm_smbase_changes, 1);
    let cpu1 = &stats.cpus[1].counts;
    assert_eq!((cpu1.ipis_received, cpu1.hot_adds), (1, 1));
    assert_eq!(cpu1.smm_cycles, 2_400);
    assert_eq!(stats.totals.smm_cycles, 4_280);
    assert_eq!(stats.totals.max_smm_cycles, 2_400);
    assert_eq!(stats.totals.smm_ns, 2_140);
    assert_eq!(stats.totals.max_smm_ns, 1_200);
    assert_eq!(stats.totals.unterminated_smm, 0);
    assert_eq!(stats.events_by_kind.get("smm_entry"), Some(&2));
    assert_eq!(stats.events_by_kind.get("init"), None);
    assert_eq!(stats.file_bytes, reader.file_bytes());
    assert!((stats.bytes_per_event - stats.file_bytes as f64 / 9.0).abs() < 1e-9);
}

#[test]
fn an_entry_without_rsm_counts_until_the_last_event_and_is_flagged() {
    let reader = reader(&[entry(10, 0), at(500, 1, EventKind::Halt)]);
    let stats = stats(&reader);
    let cpu0 = &stats.cpus[0];
    assert_eq!(cpu0.counts.smm_cycles, 490);
    assert_eq!(cpu0.counts.unterminated_smm, 1);
    assert_eq!(cpu0.open_smm_entry, Some(10));
    let text = rendered(&reader, &stats);
    assert!(text.contains("490*"), "{text}");
    assert!(
        text.contains("* includes 1 SMM stay(s) with no RSM, counted up to the next SMM entry or the last event (cycle 500)"),
        "{text}"
    );
}

#[test]
fn a_second_entry_closes_the_first_stay_and_flags_it() {
    let stats = stats(&reader(&[entry(10, 0), entry(50, 0), rsm(80, 0)]));
    let counts = &stats.cpus[0].counts;
    assert_eq!(counts.smm_entries, 2);
    assert_eq!(counts.rsms, 1);
    assert_eq!(counts.smm_cycles, 40 + 30);
    assert_eq!(counts.max_smm_cycles, 40);
    assert_eq!(counts.unterminated_smm, 1);
    assert_eq!(stats.cpus[0].open_smm_entry, None);
}

#[test]
fn an_rsm_without_entry_is_unmatched_and_adds_no_time() {
    let reader = reader(&[rsm(5, 3), entry(10, 3), rsm(20, 3)]);
    let stats = stats(&reader);
    assert_eq!(stats.cpus.len(), 1);
    assert_eq!(stats.cpus[0].cpu, 3);
    let counts = &stats.cpus[0].counts;
    assert_eq!(counts.unmatched_rsms, 1);
    assert_eq!(counts.smm_cycles, 10);
    assert!(rendered(&reader, &stats).contains("1 RSM(s) had no SMM entry before them"));
}

#[test]
fn stays_on_different_cpus_pair_independently() {
    let stats = stats(&reader(&[
        entry(10, 0),
        entry(12, 1),
        rsm(15, 1),
        rsm(40, 0),
    ]));
    assert_eq!(stats.cpus[0].counts.smm_cycles, 30);
    assert_eq!(stats.cpus[1].counts.smm_cycles, 3);
}

#[test]
fn rendered_table_has_a_row_per_cpu_and_a_total() {
    let reader = reader(&small_run());
    let stats = stats(&reader);
    let text = rendered(&reader, &stats);
    assert!(text.contains("9 events read,"), "{text}");
    assert!(text.contains("by kind: halt 1, hot_add 1,"), "{text}");
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("cpu"))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows[0].contains("smm_time"));
    assert!(rows[3].trim_start().starts_with("total"));
    assert!(
        rows[3].contains("4280") && rows[3].contains("2.140 µs"),
        "{text}"
    );
}

#[test]
fn serializes_to_json_for_the_cli() {
    let stats = stats(&reader(&small_run()));
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["events"], 9);
    assert_eq!(json["cpus"][1]["smm_cycles"], 2_400);
    assert_eq!(json["totals"]["ipis_sent"], 1);
    assert_eq!(json["events_by_kind"]["rsm"], 2);
}

#[test]
fn an_empty_trace_has_no_cpus_and_no_bytes_per_event() {
    let reader = TraceReader::from_bytes(write(&header(), &[], 3, true)).unwrap();
    let stats = stats(&reader);
    assert_eq!(stats.events, 0);
    assert_eq!(stats.bytes_per_event, 0.0);
    assert!(stats.cpus.is_empty());
    assert_eq!(stats.last_cycle, None);
    rendered(&reader, &stats);
}

#[test]
fn huge_cpu_numbers_do_not_allocate_a_table_that_size() {
    let stats = stats(&reader(&[
        at(1, u32::MAX, EventKind::Halt),
        at(2, 7, EventKind::Wake),
    ]));
    let cpus: Vec<u32> = stats.cpus.iter().map(|c| c.cpu).collect();
    assert_eq!(cpus, [7, u32::MAX]);
}
