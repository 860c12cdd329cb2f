//! The sweep's CSV: one header line, then one row per point, comma-separated (RFC 4180).
//!
//! Written by hand rather than with a CSV crate: every field is a number, a strategy name or
//! an outcome token, none of which holds a comma, quote or line break, so the format needs no
//! more than [`field`]'s quoting rule (kept for safety) and a fixed column list. Columns:
//!
//! | column | meaning |
//! |---|---|
//! | `strategy` | relocation strategy |
//! | `maxcpus` | possible CPUs |
//! | `present` | CPUs present at reset (all of `maxcpus` for `max-cpus`) |
//! | `tseg_mbytes` | extended TSEG given to the machine, MiB |
//! | `boot_cycles` | simulated cycles from reset to the end of boot |
//! | `boot_ms` | the same in simulated milliseconds |
//! | `smis` | SMIs raised during boot |
//! | `smm_entries` | SMM entries during boot |
//! | `smm_ms` | simulated time in SMM during boot, summed over CPUs, ms |
//! | `host_seconds` | host time of the boot run (machine built, run, torn down) |
//! | `outcome` | `ok` or why not ([`Outcome::token`](super::Outcome::token)) |
//!
//! In hot-add mode these follow: `hotadd_apic_id`, `hotadd_at_cycles`,
//! `hotadd_latency_cycles`, `hotadd_latency_us`, `hotadd_smis`, `hotadd_smm_entries`,
//! `hotadd_smm_us` (summed over CPUs) and `hotadd_host_seconds` (the second run, boot
//! included). A figure the point did not produce is an empty field.

use super::SweepRow;

/// The columns every sweep writes.
pub const BOOT_COLUMNS: [&str; 11] = [
    "strategy",
    "maxcpus",
    "present",
    "tseg_mbytes",
    "boot_cycles",
    "boot_ms",
    "smis",
    "smm_entries",
    "smm_ms",
    "host_seconds",
    "outcome",
];

/// The columns a hot-add sweep adds after [`BOOT_COLUMNS`].
pub const HOTADD_COLUMNS: [&str; 8] = [
    "hotadd_apic_id",
    "hotadd_at_cycles",
    "hotadd_latency_cycles",
    "hotadd_latency_us",
    "hotadd_smis",
    "hotadd_smm_entries",
    "hotadd_smm_us",
    "hotadd_host_seconds",
];

/// The header line, without its line break.
pub fn header(hotadd: bool) -> String {
    let mut columns = BOOT_COLUMNS.to_vec();
    if hotadd {
        columns.extend(HOTADD_COLUMNS);
    }
    columns.join(",")
}

/// One field, quoted only if it holds a comma, a quote or a line break (RFC 4180 §2).
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A row's line, without its line break; `hotadd` must match the header's.
pub fn row(row: &SweepRow, hotadd: bool) -> String {
    let opt = |value: Option<String>| value.unwrap_or_default();
    let boot = row.boot;
    let mut fields = vec![
        row.point.strategy.name().to_owned(),
        row.point.max_cpus.to_string(),
        row.present_at_reset.to_string(),
        row.tseg_mbytes.to_string(),
        opt(boot.map(|boot| boot.boot_cycles.to_string())),
        opt(boot.map(|boot| format!("{:.6}", boot.boot_ms))),
        opt(boot.map(|boot| boot.smis.to_string())),
        opt(boot.map(|boot| boot.smm_entries.to_string())),
        opt(boot.map(|boot| format!("{:.6}", boot.smm_ms))),
        format!("{:.4}", row.host_seconds),
        row.outcome.token(),
    ];
    if hotadd {
        let add = row.hotadd;
        fields.extend([
            opt(add.map(|add| add.apic_id.to_string())),
            opt(add.map(|add| add.at_cycle.to_string())),
            opt(add
                .and_then(|add| add.latency_cycles)
                .map(|c| c.to_string())),
            opt(add
                .and_then(|add| add.latency_us)
                .map(|us| format!("{us:.3}"))),
            opt(add.map(|add| add.smis.to_string())),
            opt(add.map(|add| add.smm_entries.to_string())),
            opt(add.map(|add| format!("{:.3}", add.smm_us))),
            opt(add.map(|add| format!("{:.4}", add.host_seconds))),
        ]);
    }
    fields
        .iter()
        .map(|text| field(text))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Strategy;
    use crate::sweep::{BootFigures, HotaddFigures, Outcome, SweepPoint};

    fn sample() -> SweepRow {
        SweepRow {
            point: SweepPoint {
                strategy: Strategy::Formula,
                max_cpus: 4,
                present: 1,
            },
            present_at_reset: 1,
            tseg_mbytes: 16,
            boot: Some(BootFigures {
                boot_cycles: 5_426_262,
                boot_ms: 2.713131,
                smis: 3,
                smm_entries: 3,
                smm_ms: 0.25,
            }),
            host_seconds: 0.00123,
            hotadd: None,
            outcome: Outcome::Ok,
            detail: String::new(),
        }
    }

    #[test]
    fn rows_have_one_field_per_column() {
        let mut row_ = sample();
        assert_eq!(
            row(&row_, false),
            "formula,4,1,16,5426262,2.713131,3,3,0.250000,0.0012,ok"
        );
        row_.hotadd = Some(HotaddFigures {
            apic_id: 1,
            at_cycle: 8_139_393,
            latency_cycles: None,
            latency_us: None,
            smis: 0,
            smm_entries: 0,
            smm_us: 0.0,
            host_seconds: 0.5,
        });
        row_.outcome = Outcome::HotaddIncomplete;
        let line = row(&row_, true);
        assert_eq!(line.split(',').count(), header(true).split(',').count());
        assert!(
            line.contains(",hotadd-incomplete,1,8139393,,,0,0,0.000,0.5000"),
            "{line}"
        );
    }

    #[test]
    fn fields_with_separators_are_quoted() {
        assert_eq!(field("ok"), "ok");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
