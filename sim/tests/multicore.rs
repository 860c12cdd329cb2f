//! Many cores: the BSP wakes the APs with INIT-SIPI-SIPI, deterministic runs repeat to the
//! cycle, parallel runs print the same, and a machine of 4,096 possible CPUs with 2 present
//! boots like a 2-CPU one.

mod common;

use common::{firmware_dir, run_builtin};
use smmsim::{ExecMode, MachineConfig, RunEnd};

fn smp(cpus: u32, max_cpus: u32, mode: ExecMode) -> MachineConfig {
    MachineConfig {
        cpus,
        max_cpus,
        mode,
        ..MachineConfig::default()
    }
}

fn expected_mp_hello(cpus: u32) -> (String, u32) {
    let dir = firmware_dir().join("expected");
    let text = std::fs::read_to_string(dir.join(format!("mp-hello-smp{cpus}.txt")))
        .expect("recorded QEMU output of mp-hello");
    let status = std::fs::read_to_string(dir.join(format!("mp-hello-smp{cpus}.status")))
        .expect("recorded QEMU status of mp-hello")
        .trim()
        .parse()
        .expect("a status number");
    (text, status)
}

#[test]
fn mp_hello_matches_the_recorded_qemu_output_at_every_recorded_size() {
    for cpus in [1, 2, 4, 8, 64] {
        let (expected, status) = expected_mp_hello(cpus);
        let (console, report) = run_builtin("mp-hello", smp(cpus, cpus, ExecMode::Deterministic));
        assert_eq!(String::from_utf8_lossy(&console), expected, "-smp {cpus}");
        assert_eq!(report.end, RunEnd::DebugExit { status }, "-smp {cpus}");
        assert_eq!(report.cpus.len(), cpus as usize);
    }
}

#[test]
fn deterministic_mode_repeats_to_the_cycle() {
    let first = run_builtin("mp-hello", smp(4, 4, ExecMode::Deterministic));
    for _ in 0..4 {
        let again = run_builtin("mp-hello", smp(4, 4, ExecMode::Deterministic));
        assert_eq!(again.0, first.0, "console");
        assert_eq!(again.1.cycles, first.1.cycles, "machine cycles");
        let cycles = |report: &smmsim::RunReport| {
            report
                .cpus
                .iter()
                .map(|cpu| (cpu.cycles, cpu.stats.instructions))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cycles(&again.1),
            cycles(&first.1),
            "per-CPU cycles and instructions"
        );
    }
}

#[test]
fn parallel_mode_prints_what_deterministic_mode_prints() {
    let (deterministic, _) = run_builtin("mp-hello", smp(8, 8, ExecMode::Deterministic));
    let (parallel, report) = run_builtin("mp-hello", smp(8, 8, ExecMode::Parallel));
    assert_eq!(
        String::from_utf8_lossy(&parallel),
        String::from_utf8_lossy(&deterministic)
    );
    assert!(matches!(report.end, RunEnd::DebugExit { .. }));
}

#[test]
fn four_thousand_possible_cpus_with_two_present_boot_like_two() {
    let (small_console, small) = run_builtin("mp-hello", smp(2, 2, ExecMode::Deterministic));
    let (big_console, big) = run_builtin("mp-hello", smp(2, 4096, ExecMode::Deterministic));
    assert_eq!(big_console, small_console);
    assert_eq!(big.cycles, small.cycles, "absent CPUs change nothing");
    assert_eq!(big.cpus.len(), 2);
}
