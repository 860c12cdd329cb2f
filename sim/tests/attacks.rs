//! The attack scenarios of `scenarios/attacks/`: each reaches the verdict it expects in
//! deterministic mode, every attack has a blocked case (and an exploitable one where a
//! vulnerable setting exists), the `[guest]` keys that select attacks and unlock the firmware
//! reach the guest as fw_cfg files, and `docs/attacks.md` is what `smmsim check --markdown`
//! writes today.
//!
//! After an intended change, rewrite the table with
//! `SMMSIM_BLESS=1 cargo test -p smmsim --test attacks` and review the diff.

mod common;

use std::path::{Path, PathBuf};

use common::{smmsim, TempFile};
use smmsim::scenario::{Attack, Scenario, Verdict, FW_CFG_ATTACKS};
use smmsim::scenario::{FW_CFG_LOCK_CONTROLLER, FW_CFG_LOCK_DEFAULT_SMBASE};
use smmsim::scenario_run::{run_scenario, ScenarioReport};

fn attacks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/attacks")
}

fn attack_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(attacks_dir())
        .expect("scenarios/attacks/ exists")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Scenario {
    Scenario::from_file(path).unwrap_or_else(|error| panic!("{error}"))
}

fn run(path: &Path) -> ScenarioReport {
    run_scenario(&load(path), Box::new(std::io::sink()), None, false)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

macro_rules! attack_test {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            let report = run(&attacks_dir().join(concat!($file, ".toml")));
            assert!(report.passed, "{}", report.render());
        }
    };
}

attack_test!(
    planted_code_is_dropped_by_the_locked_window_kvm,
    "plant-38000-smbase-smram-locked-kvm"
);
attack_test!(
    planted_code_is_dropped_by_the_locked_window_qemu,
    "plant-38000-smbase-smram-locked-qemu-redirect"
);
attack_test!(
    planted_code_runs_in_smm_without_the_lock_kvm,
    "plant-38000-smbase-smram-unlocked-kvm"
);
attack_test!(
    planted_code_runs_in_smm_without_the_lock_qemu,
    "plant-38000-smbase-smram-unlocked-qemu-redirect"
);
attack_test!(
    planted_code_is_dropped_before_the_ovmf_handshake_hangs_qemu,
    "plant-38000-smbase-smram-locked-qemu-ovmf"
);
attack_test!(
    planted_code_runs_before_the_ovmf_handshake_hangs_qemu,
    "plant-38000-smbase-smram-unlocked-qemu-ovmf"
);
attack_test!(
    an_early_smi_waits_for_the_monarch_kvm,
    "early-smi-smbase-smram-locked-kvm"
);
attack_test!(
    an_early_smi_waits_at_the_gate_qemu,
    "early-smi-smbase-smram-locked-qemu-redirect"
);
attack_test!(
    an_early_smi_runs_unprotected_code_without_the_lock,
    "early-smi-smbase-smram-unlocked-kvm"
);
attack_test!(
    an_early_sipi_cpu_is_relocated_anyway_kvm,
    "early-sipi-smbase-smram-locked-kvm"
);
attack_test!(
    an_early_sipi_cpu_is_relocated_anyway_qemu,
    "early-sipi-smbase-smram-locked-qemu-redirect"
);
attack_test!(
    an_early_sipi_cpu_already_has_the_controller_smbase,
    "early-sipi-controller-locked-kvm"
);
attack_test!(
    an_early_sipi_cpu_already_has_the_formula_smbase,
    "early-sipi-formula-locked-kvm"
);
attack_test!(
    controller_writes_from_outside_smm_are_dropped_locked,
    "write-controller-controller-locked-kvm"
);
attack_test!(
    controller_writes_from_outside_smm_are_dropped_unlocked,
    "write-controller-controller-unlocked-kvm"
);
attack_test!(
    formula_writes_from_outside_smm_are_dropped_locked,
    "write-controller-formula-locked-kvm"
);
attack_test!(
    formula_writes_from_outside_smm_are_dropped_unlocked,
    "write-controller-formula-unlocked-kvm"
);
attack_test!(
    back_to_back_cpus_relocate_one_at_a_time_kvm,
    "back-to-back-smbase-smram-locked-kvm"
);
attack_test!(
    back_to_back_cpus_share_the_default_save_area_qemu,
    "back-to-back-smbase-smram-locked-qemu-redirect"
);
attack_test!(
    back_to_back_cpus_share_the_default_save_area_before_the_ovmf_hang_qemu,
    "back-to-back-smbase-smram-locked-qemu-ovmf"
);

#[test]
fn every_attack_scenario_has_a_test_here() {
    let source = include_str!("attacks.rs");
    for path in attack_files() {
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("");
        assert!(
            source.contains(&format!("\"{stem}\"")),
            "scenarios/attacks/{stem}.toml has no test in sim/tests/attacks.rs"
        );
    }
}

#[test]
fn every_attack_has_a_blocked_case_and_an_exploitable_one_where_one_exists() {
    let scenarios: Vec<Scenario> = attack_files().iter().map(|path| load(path)).collect();
    let expects = |attack: Attack, verdict: Verdict| {
        scenarios.iter().any(|scenario| {
            scenario.guest.attacks.contains(attack) && scenario.expect.verdict == Some(verdict)
        })
    };
    for attack in Attack::ALL {
        assert!(
            expects(*attack, Verdict::Blocked),
            "{attack}: no blocked case"
        );
    }
    // The default-SMBASE window left unlocked is the vulnerable setting of these two.
    assert!(expects(Attack::Plant38000, Verdict::Exploitable));
    assert!(expects(Attack::EarlySmi, Verdict::Exploitable));
    // The controller takes writes from SMM only, locked or not: nothing to exploit from
    // outside SMM, and both settings are covered.
    for lock_controller in [true, false] {
        assert!(scenarios.iter().any(|scenario| {
            scenario.guest.attacks.contains(Attack::WriteController)
                && scenario.guest.lock_controller == lock_controller
                && scenario.expect.verdict == Some(Verdict::Blocked)
        }));
    }
    // Back-to-back hot-adds (no guest attack): blocked under kvm, a shared save area under
    // QEMU's semantics.
    let back_to_back = |verdict| {
        scenarios.iter().any(|scenario| {
            scenario.guest.attacks.is_empty()
                && scenario.events.len() == 2
                && scenario.expect.verdict == Some(verdict)
        })
    };
    assert!(back_to_back(Verdict::Blocked) && back_to_back(Verdict::Exploitable));
}

#[test]
fn attack_runs_are_deterministic() {
    let path = attacks_dir().join("plant-38000-smbase-smram-unlocked-kvm.toml");
    let (first, second) = (run(&path), run(&path));
    assert_eq!(first.checks.findings, second.checks.findings);
    assert_eq!(first.total_cycles, second.total_cycles);
}

#[test]
fn the_attack_table_in_docs_is_what_check_markdown_writes() {
    let out = TempFile::with_bytes(".md", b"");
    let files = attack_files();
    let mut args = vec![
        "check".to_owned(),
        "--markdown".to_owned(),
        out.0.display().to_string(),
    ];
    args.extend(files.iter().map(|path| path.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = smmsim(&args);
    // Attempted attacks are violations: status 1 is the expected outcome.
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = std::fs::read_to_string(&out.0).expect("the table was written");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/attacks.md");
    if std::env::var_os("SMMSIM_BLESS").is_some() {
        std::fs::write(&docs, &generated).expect("docs/attacks.md written");
    }
    let committed = std::fs::read_to_string(&docs)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", docs.display()));
    assert_eq!(
        generated, committed,
        "docs/attacks.md is stale: run `SMMSIM_BLESS=1 cargo test -p smmsim --test attacks`"
    );
    for path in &files {
        let stem = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or("");
        let scenario = load(path);
        if scenario.expect.verdict != Some(Verdict::Blocked) {
            assert!(
                generated.contains(&format!("### {stem}\n")),
                "{stem} has no excerpt"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The [guest] keys behind the attacks

fn scenario(guest: &str, strategy: &str) -> Result<Scenario, String> {
    let text = format!("[machine]\nmaxcpus = 4\nstrategy = \"{strategy}\"\n\n[guest]\n{guest}\n");
    Scenario::from_str(&text, Path::new("attack.toml")).map_err(|error| error.to_string())
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    files
        .iter()
        .find(|(file, _)| file == name)
        .map(|(_, bytes)| std::str::from_utf8(bytes).expect("ASCII"))
}

#[test]
fn attacks_and_unlocked_firmware_reach_the_guest_as_fw_cfg_files() {
    let chosen = scenario(
        "attacks = [\"write-controller\", \"plant-38000\"]\nlock_controller = false\n\
         lock_default_smbase = false",
        "formula",
    )
    .expect("valid");
    let files = chosen.fw_cfg_files();
    assert_eq!(
        file(&files, FW_CFG_ATTACKS),
        Some("plant-38000,write-controller")
    );
    assert_eq!(file(&files, FW_CFG_LOCK_DEFAULT_SMBASE), Some("0"));
    assert_eq!(file(&files, FW_CFG_LOCK_CONTROLLER), Some("0"));
    // Reset boots get them too.
    assert_eq!(chosen.fw_cfg_files_after_reset(1), files);

    // The defaults add no file, so a scenario without attacks gives the guest what it did.
    let plain = scenario("lock_default_smbase = true\nattacks = []", "smbase-smram")
        .expect("valid")
        .fw_cfg_files();
    for name in [
        FW_CFG_ATTACKS,
        FW_CFG_LOCK_DEFAULT_SMBASE,
        FW_CFG_LOCK_CONTROLLER,
    ] {
        assert_eq!(file(&plain, name), None, "{name}");
    }
}

#[test]
fn bad_attack_keys_are_refused_with_their_line() {
    let unknown = scenario("attacks = [\"early-smi\", \"late-smi\"]", "smbase-smram")
        .expect_err("unknown attack");
    assert_eq!(
        unknown,
        "attack.toml:6: unknown attack \"late-smi\" (valid: plant-38000, early-smi, early-sipi, \
         write-controller)"
    );
    let twice = scenario("attacks = [\"early-smi\", \"early-smi\"]", "smbase-smram")
        .expect_err("listed twice");
    assert_eq!(
        twice,
        "attack.toml:6: attacks = \"early-smi\": listed more than once"
    );
    let no_controller =
        scenario("lock_controller = false", "smbase-smram").expect_err("no controller");
    assert_eq!(
        no_controller,
        "attack.toml:6: lock_controller = false: only strategies controller and formula \
         program the SMBASE controller (strategy is smbase-smram)"
    );
    let not_bool = scenario("lock_default_smbase = 0", "smbase-smram").expect_err("a bool");
    assert!(
        not_bool.starts_with("attack.toml:6:") && not_bool.contains("bool"),
        "{not_bool}"
    );
}
