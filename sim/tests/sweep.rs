//! `smmsim sweep` end to end: small sweeps write the CSV and the plot they promise, a hot-add
//! sweep reports a latency, a failing point is a row rather than a crash, and bad input is
//! refused with exit status 2 before anything boots.

mod common;

use std::path::Path;
use std::process::Output;

use common::{smmsim, TempFile};
use smmsim::sweep::csv::{header, BOOT_COLUMNS, HOTADD_COLUMNS};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// An empty temporary file for an output, and its path as text.
fn output_file(suffix: &str) -> (TempFile, String) {
    let file = TempFile::with_bytes(suffix, b"");
    let path = file.0.to_str().expect("a UTF-8 temp path").to_owned();
    (file, path)
}

/// The CSV's rows as fields, after checking the header.
fn csv_rows(path: &Path, hotadd: bool) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).expect("the CSV was written");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header(hotadd).as_str()), "{text}");
    lines
        .map(|line| line.split(',').map(str::to_owned).collect())
        .collect()
}

/// The field of `row` in column `name`.
fn column<'a>(row: &'a [String], name: &str, hotadd: bool) -> &'a str {
    let mut columns = BOOT_COLUMNS.to_vec();
    if hotadd {
        columns.extend(HOTADD_COLUMNS);
    }
    let index = columns
        .iter()
        .position(|column| *column == name)
        .expect("a known column");
    &row[index]
}

/// The contents of the SVG's `<text>` elements, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|element| {
            let (_, rest) = element.split_once('>')?;
            let (text, _) = rest.split_once("</text>")?;
            Some(text.trim().to_owned())
        })
        .collect()
}

#[test]
fn a_small_sweep_writes_one_ok_row_per_point() {
    let (csv, csv_path) = output_file(".csv");
    let output = smmsim(&[
        "sweep",
        "--strategies",
        "smbase-smram,max-cpus",
        "--maxcpus",
        "1,2,4",
        "--out",
        &csv_path,
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    let rows = csv_rows(&csv.0, false);
    assert_eq!(rows.len(), 6, "{rows:?}");
    let mut points = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), BOOT_COLUMNS.len(), "{row:?}");
        assert_eq!(column(row, "outcome", false), "ok", "{row:?}");
        assert_eq!(column(row, "tseg_mbytes", false), "16");
        let boot_cycles: u64 = column(row, "boot_cycles", false).parse().expect("cycles");
        let boot_ms: f64 = column(row, "boot_ms", false).parse().expect("ms");
        // 2 GHz: 2,000,000 cycles a millisecond.
        assert!((boot_ms - boot_cycles as f64 / 2e6).abs() < 1e-5, "{row:?}");
        assert!(column(row, "smis", false).parse::<u64>().expect("smis") >= 1);
        points.push((row[0].clone(), row[1].clone(), row[2].clone()));
    }
    // Rows in point order; max-cpus has every CPU present at reset.
    let expected: Vec<(String, String, String)> = [
        ("smbase-smram", "1", "1"),
        ("smbase-smram", "2", "1"),
        ("smbase-smram", "4", "1"),
        ("max-cpus", "1", "1"),
        ("max-cpus", "2", "2"),
        ("max-cpus", "4", "4"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(points, expected);
    // One progress line per point, and the table on stdout.
    assert_eq!(err.matches("maxcpus ").count(), 6, "{err}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("strategy "), "{stdout}");
    assert_eq!(stdout.lines().count(), 7, "{stdout}");
}

#[test]
fn the_plot_is_an_svg_with_every_strategy_in_its_legend() {
    let (plot, plot_path) = output_file(".svg");
    let output = smmsim(&[
        "sweep",
        "--strategies",
        "controller,formula",
        "--maxcpus",
        "1,4",
        "--plot",
        &plot_path,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // Without --out the CSV goes to stdout.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with(&header(false)), "{stdout}");
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    let svg = std::fs::read_to_string(&plot.0).expect("the plot was written");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    let texts = svg_texts(&svg);
    for text in [
        "controller",
        "formula",
        "max CPUs (log2 scale)",
        "simulated boot time (ms)",
        "1",
        "4",
    ] {
        assert!(texts.iter().any(|t| t == text), "{text:?} not in {texts:?}");
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains("simulated boot time vs max CPUs")),
        "no title in {texts:?}"
    );
}

#[test]
fn a_hotadd_sweep_reports_the_latency_of_the_added_cpu() {
    let (csv, csv_path) = output_file(".csv");
    let output = smmsim(&[
        "sweep",
        "--hotadd",
        "--strategies",
        "smbase-smram,controller",
        "--maxcpus",
        "1,2",
        "--out",
        &csv_path,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows = csv_rows(&csv.0, true);
    assert_eq!(rows.len(), 4, "{rows:?}");
    for row in &rows {
        assert_eq!(row.len(), BOOT_COLUMNS.len() + HOTADD_COLUMNS.len());
        if column(row, "maxcpus", true) == "1" {
            // Nothing absent to add.
            assert_eq!(column(row, "outcome", true), "no-hotadd", "{row:?}");
            assert_eq!(column(row, "hotadd_latency_cycles", true), "");
            continue;
        }
        assert_eq!(column(row, "outcome", true), "ok", "{row:?}");
        assert_eq!(column(row, "hotadd_apic_id", true), "1");
        let boot: u64 = column(row, "boot_cycles", true).parse().expect("boot");
        let at: u64 = column(row, "hotadd_at_cycles", true).parse().expect("at");
        assert_eq!(at, boot + boot.div_ceil(2), "added at 1.5 x the boot time");
        let latency: u64 = column(row, "hotadd_latency_cycles", true)
            .parse()
            .expect("a latency");
        assert!(latency > 0 && latency < boot, "{row:?}");
        let smis: u64 = column(row, "hotadd_smis", true).parse().expect("smis");
        match column(row, "strategy", true) {
            // The monarch relocates the new CPU in SMM; the controller needs no SMI.
            "smbase-smram" => assert!(smis >= 1, "{row:?}"),
            _ => assert_eq!(smis, 0, "{row:?}"),
        }
    }
}

#[test]
fn a_failing_point_is_a_row_and_the_sweep_goes_on() {
    let (csv, csv_path) = output_file(".csv");
    let output = smmsim(&[
        "sweep",
        "--strategies",
        "formula",
        "--maxcpus",
        "1,2",
        "--max-cycles",
        "100000",
        "--out",
        &csv_path,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let rows = csv_rows(&csv.0, false);
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(column(row, "outcome", false), "cycle-limit", "{row:?}");
        // The run stops at the first instruction boundary past the limit.
        let cycles: u64 = column(row, "boot_cycles", false).parse().expect("cycles");
        assert!((100_000..101_000).contains(&cycles), "{row:?}");
    }
    assert!(stderr(&output).contains("2 failed"), "{}", stderr(&output));
}

#[test]
fn bad_input_is_refused_before_anything_boots() {
    let cases: [(&[&str], &str); 6] = [
        (&["--strategies", "smbase-smram,maxcpus"], "\"maxcpus\""),
        (&["--maxcpus", "0,2"], "max-CPU count 0 is outside 1..=4096"),
        (
            &["--maxcpus", "1,5000"],
            "max-CPU count 5000 is outside 1..=4096",
        ),
        (&["--maxcpus", "1,x"], "\"x\" is not a whole number"),
        (
            &["--present", "2", "--maxcpus", "1,2"],
            "--present 2 is above",
        ),
        (
            &["--out", "/nonexistent-dir/sweep.csv"],
            "cannot write the CSV to /nonexistent-dir/sweep.csv",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["sweep"];
        full.extend_from_slice(args);
        let output = smmsim(&full);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        // The sweep's first line is printed just before the first boot.
        assert!(!err.contains("points ("), "{args:?} booted: {err}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let output = smmsim(&["sweep", "--plot", "/nonexistent-dir/sweep.svg"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot write the plot to /nonexistent-dir/sweep.svg"));
}
