//! `boot --trace` / `run --trace` and the `smmsim trace` subcommands end to end: a golden
//! listing of the `boot` image at -smp 4, byte-identical traces from deterministic runs, and
//! every viewer on the same file.
//!
//! The golden file is `sim/tests/golden/boot-smp4.show`; after an intended change, rewrite it
//! with `SMMSIM_BLESS=1 cargo test -p smmsim --test trace_cli` and review the diff.

mod common;

use std::path::{Path, PathBuf};

use common::smmsim;

/// A scratch path removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(std::env::temp_dir().join(format!("smmsim-{}-{name}", std::process::id())))
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn boot_traced(trace: &Scratch, smp: &str) {
    let output = smmsim(&["boot", "--smp", smp, "--trace", trace.arg()]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn stdout_of(args: &[&str]) -> String {
    let output = smmsim(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

#[test]
fn trace_show_of_the_boot_image_at_smp_4_matches_the_golden_listing() {
    let trace = Scratch::new("golden.smmtrace");
    boot_traced(&trace, "4");
    let listing = stdout_of(&["trace", "show", trace.arg()]);
    let path = golden("boot-smp4.show");
    if std::env::var_os("SMMSIM_BLESS").is_some() {
        std::fs::write(&path, &listing).expect("golden file written");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", path.display()));
    assert_eq!(
        listing,
        expected,
        "trace show differs from {}",
        path.display()
    );
}

#[test]
fn deterministic_runs_write_byte_identical_traces() {
    let (a, b) = (
        Scratch::new("det-a.smmtrace"),
        Scratch::new("det-b.smmtrace"),
    );
    boot_traced(&a, "8");
    boot_traced(&b, "8");
    let (first, second) = (std::fs::read(&a.0).unwrap(), std::fs::read(&b.0).unwrap());
    assert!(
        first == second,
        "two deterministic boots wrote different traces"
    );
    let output = smmsim(&["trace", "diff", a.arg(), b.arg()]);
    assert_eq!(output.status.code(), Some(0));

    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/back-to-back.toml");
    let scenario = scenario.to_str().unwrap();
    for trace in [&a, &b] {
        let output = smmsim(&["run", scenario, "--trace", trace.arg()]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let (first, second) = (std::fs::read(&a.0).unwrap(), std::fs::read(&b.0).unwrap());
    assert!(
        first == second,
        "two deterministic scenario runs wrote different traces"
    );
}

#[test]
fn diff_names_the_first_divergence_and_exits_1() {
    let (a, b) = (
        Scratch::new("diff-a.smmtrace"),
        Scratch::new("diff-b.smmtrace"),
    );
    boot_traced(&a, "4");
    boot_traced(&b, "3");
    let output = smmsim(&["trace", "diff", a.arg(), b.arg()]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("cpus: 4 vs 3"), "{text}");
    assert!(text.contains("diverge at index 0"), "{text}");
}

#[test]
fn stats_export_and_timeline_work_on_a_boot_trace() {
    let trace = Scratch::new("views.smmtrace");
    boot_traced(&trace, "4");

    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&["trace", "stats", trace.arg(), "--json"])).unwrap();
    // Four CPUs, each relocated once at boot and entering SMM twice (relocation, report).
    assert_eq!(json["totals"]["relocations"], 4);
    assert_eq!(json["totals"]["smm_entries"], 8);
    assert_eq!(json["cpus"].as_array().map(Vec::len), Some(4));

    let export = Scratch::new("views.json");
    stdout_of(&[
        "trace",
        "export",
        trace.arg(),
        "--format",
        "perfetto",
        "-o",
        export.arg(),
    ]);
    let perfetto: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&export.0).unwrap()).expect("valid JSON");
    let slices = perfetto["traceEvents"]
        .as_array()
        .expect("traceEvents")
        .iter()
        .filter(|event| event["ph"] == "X")
        .count();
    assert_eq!(slices, 8, "one SMM slice per SMM entry");

    let svg = Scratch::new("views.svg");
    let output = smmsim(&["trace", "timeline", trace.arg(), "-o", svg.arg()]);
    assert!(output.status.success());
    let picture = std::fs::read_to_string(&svg.0).unwrap();
    assert!(picture.starts_with("<svg"));
    assert!(picture.trim_end().ends_with("</svg>"));
}

#[test]
fn a_truncated_trace_still_shows_its_complete_chunks() {
    let trace = Scratch::new("cut.smmtrace");
    boot_traced(&trace, "4");
    let bytes = std::fs::read(&trace.0).unwrap();
    let cut = Scratch::new("cut-short.smmtrace");
    std::fs::write(&cut.0, &bytes[..bytes.len() - 10]).unwrap();
    // The index is gone; the one chunk is whole: every event is still there.
    let listing = stdout_of(&["trace", "show", cut.arg()]);
    assert!(listing.contains("run_end"), "{listing}");
    let tiny = Scratch::new("tiny.smmtrace");
    std::fs::write(&tiny.0, &bytes[..5]).unwrap();
    let output = smmsim(&["trace", "show", tiny.arg()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read trace"));
}

#[test]
fn an_unknown_kind_is_refused_with_the_valid_ones() {
    let output = smmsim(&["trace", "show", "/nonexistent", "--kind", "smm_entri"]);
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("smm_entri") && err.contains("smm_entry"),
        "{err}"
    );
}
