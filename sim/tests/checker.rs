//! The safety checker on whole runs: the shipped configurations are clean, the known-unsafe
//! moments are reported, a switched-off check stays silent, and `smmsim check` exits by
//! what it found.

mod common;

use std::path::Path;

use common::smmsim;
use smmsim::scenario::{Scenario, Verdict};
use smmsim::scenario_run::{run_scenario, ScenarioReport};

fn shipped(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
        .to_str()
        .expect("UTF-8 path")
        .to_owned()
}

fn run_text(text: &str) -> ScenarioReport {
    let scenario =
        Scenario::from_str(text, Path::new("checker.toml")).unwrap_or_else(|e| panic!("{e}"));
    run_scenario(&scenario, Box::new(std::io::sink()), None, false).expect("the run starts")
}

fn violations(report: &ScenarioReport) -> Vec<(&str, u64)> {
    report
        .checks
        .violations
        .iter()
        .map(|(check, count)| (check.as_str(), *count))
        .collect()
}

#[test]
fn the_shipped_strategies_are_clean() {
    for name in [
        "smbase-smram",
        "controller",
        "formula",
        "max-cpus",
        "back-to-back",
    ] {
        let scenario = Scenario::from_file(Path::new(&shipped(name))).expect("valid");
        let report = run_scenario(&scenario, Box::new(std::io::sink()), None, false).expect("runs");
        assert!(
            violations(&report).is_empty(),
            "{name}: {}",
            report.render()
        );
        assert_eq!(report.checks.active.len(), 7);
    }
}

/// Under QEMU TCG semantics the OVMF handshake's INIT throws the new CPU out of SMM before
/// it relocated; its SIPI then starts the pen on the reset SMBASE.
#[test]
fn the_ovmf_handshake_under_qemu_semantics_runs_an_unrelocated_cpu() {
    let scenario =
        Scenario::from_file(Path::new(&shipped("smbase-smram-qemu-hang"))).expect("valid");
    let report = run_scenario(&scenario, Box::new(std::io::sink()), None, false).expect("runs");
    assert_eq!(violations(&report), [("unrelocated-cpu-runs", 1)]);
    assert_eq!(report.checks.findings[0].cpu, 1);
    // The run never finishes, and nothing exploitable happened: a hang.
    assert_eq!(report.verdict, Verdict::Hang);
    assert!(report.passed, "{}", report.render());
}

/// A CPU plugged in before firmware has programmed the SMBASE controller keeps 0x30000:
/// the firmware relocates it at the programming SMI, before the guest onlines it, so the
/// run stays clean.
#[test]
fn a_cpu_added_before_the_controller_is_programmed_is_relocated_first() {
    let text = "[machine]\ncpus = 1\nmaxcpus = 64\nstrategy = \"controller\"\n\
                [[event]]\nat = \"100us\"\naction = \"cpu-add\"\napic_id = 1\n\
                [expect]\nsmbase = \"unique-in-tseg\"\nconsole = [\"cpu 00000001 online\"]\nstatus = 1\n";
    let report = run_text(text);
    assert!(report.passed, "{}", report.render());
    assert!(violations(&report).is_empty(), "{}", report.render());
}

#[test]
fn a_switched_off_check_is_neither_run_nor_listed() {
    let path = shipped("smbase-smram-qemu-hang");
    let text = std::fs::read_to_string(&path).expect("readable")
        + "\n[check]\ndisable = [\"unrelocated-cpu-runs\"]\n";
    let report = run_text(&text);
    assert!(violations(&report).is_empty());
    assert_eq!(report.checks.active.len(), 6);
    assert!(!report.checks.active.contains(&"unrelocated-cpu-runs"));
}

#[test]
fn smmsim_check_exits_1_on_a_violation_and_0_without() {
    let clean = smmsim(&["check", &shipped("formula")]);
    assert_eq!(clean.status.code(), Some(0));
    let unsafe_run = smmsim(&[
        "check",
        &shipped("formula"),
        &shipped("smbase-smram-qemu-hang"),
    ]);
    assert_eq!(unsafe_run.status.code(), Some(1));
    let text = String::from_utf8_lossy(&unsafe_run.stdout);
    assert!(text.contains("unrelocated-cpu-runs"), "{text}");
    assert!(text.contains("formula.toml: 0 violations"), "{text}");
}

#[test]
fn verdicts_follow_the_kind_of_finding() {
    use std::collections::BTreeMap;
    let found = |checks: &[&str]| -> BTreeMap<String, u64> {
        checks.iter().map(|check| (check.to_string(), 1)).collect()
    };
    assert_eq!(Verdict::of(&found(&[]), true), Verdict::Blocked);
    assert_eq!(
        Verdict::of(&found(&["smram-write-attempt"]), true),
        Verdict::Blocked
    );
    assert_eq!(
        Verdict::of(&found(&["smram-write-attempt"]), false),
        Verdict::Hang
    );
    for check in Verdict::EXPLOITABLE_CHECKS {
        assert_eq!(
            Verdict::of(&found(&[check]), false),
            Verdict::Exploitable,
            "{check}"
        );
    }
}

#[test]
fn an_unmet_verdict_fails_the_scenario_and_says_why() {
    let path = shipped("formula");
    let text = std::fs::read_to_string(&path)
        .expect("readable")
        .replace("status = 1", "status = 1\nverdict = \"exploitable\"");
    let report = run_text(&text);
    assert!(!report.passed);
    let failed = report
        .expectations
        .iter()
        .find(|e| !e.passed)
        .expect("one failed");
    assert!(failed.detail.starts_with("blocked"), "{}", failed.detail);
}
