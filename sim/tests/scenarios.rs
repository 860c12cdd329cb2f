//! Every scenario shipped in `scenarios/` passes its own expectations, and deterministic mode
//! gives the same report figures on every run.

use std::path::{Path, PathBuf};

use smmsim::scenario::Scenario;
use smmsim::scenario_run::{run_scenario, ScenarioReport};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
}

fn run(path: &Path) -> ScenarioReport {
    let scenario = Scenario::from_file(path).unwrap_or_else(|error| panic!("{error}"));
    run_scenario(&scenario, Box::new(std::io::sink()), None, false)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn shipped(name: &str) -> PathBuf {
    scenarios_dir().join(format!("{name}.toml"))
}

macro_rules! scenario_test {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            let report = run(&shipped($file));
            assert!(report.passed, "{}", report.render());
        }
    };
}

scenario_test!(smbase_smram_one_hot_add, "smbase-smram");
scenario_test!(controller_one_hot_add, "controller");
scenario_test!(formula_one_hot_add, "formula");
scenario_test!(max_cpus_re_add_with_init_only, "max-cpus");
scenario_test!(two_cpus_within_one_smi_window, "back-to-back");
scenario_test!(add_remove_add_the_same_apic_id, "add-remove-add");
scenario_test!(hard_reset_after_hot_adds, "reset-after-hotadd");
scenario_test!(
    ovmf_handshake_hangs_under_qemu_semantics,
    "smbase-smram-qemu-hang"
);
scenario_test!(
    redirect_handshake_under_qemu_semantics,
    "smbase-smram-qemu-redirect"
);

#[test]
fn every_shipped_scenario_has_a_test_here() {
    let mut names: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_owned()))
        .collect();
    names.sort();
    let source = include_str!("scenarios.rs");
    for name in names {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "scenarios/{name}.toml has no test in sim/tests/scenarios.rs"
        );
    }
}

#[test]
fn deterministic_runs_give_identical_figures() {
    let path = shipped("back-to-back");
    let first = run(&path);
    let second = run(&path);
    assert_eq!(first.boot_cycles, second.boot_cycles);
    assert_eq!(first.total_cycles, second.total_cycles);
    assert_eq!(first.hotplug, second.hotplug);
    assert_eq!(first.smbase_map, second.smbase_map);
}
