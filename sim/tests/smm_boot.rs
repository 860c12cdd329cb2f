//! The `boot` image — OVMF-style SMM bring-up — under every state-save layout and behaviour
//! profile, at every recorded CPU count, and repeated runs in deterministic mode.

mod common;

use common::{firmware_dir, qemu_like, run_builtin};
use smmsim::cpu::smm::{Profile, SaveStateLayout};
use smmsim::{MachineConfig, RunEnd};

fn expected(cpus: u32) -> String {
    std::fs::read_to_string(firmware_dir().join(format!("expected/boot-smp{cpus}.txt")))
        .expect("recorded QEMU output of boot")
}

#[test]
fn boot_relocates_every_cpu_under_every_layout_and_profile() {
    for layout in [SaveStateLayout::Amd64, SaveStateLayout::Intel32] {
        for profile in [Profile::Qemu, Profile::Kvm, Profile::Sdm] {
            let config = MachineConfig {
                layout,
                profile,
                ..qemu_like(4)
            };
            let (console, report) = run_builtin("boot", config);
            assert_eq!(
                String::from_utf8_lossy(&console),
                expected(4),
                "{layout:?} {profile:?}"
            );
            assert_eq!(
                report.end,
                RunEnd::DebugExit { status: 1 },
                "{layout:?} {profile:?}"
            );
            // Each CPU: one relocation SMI and one report SMI.
            assert_eq!(report.cpu.smm_entries, 8, "{layout:?} {profile:?}");
            assert_eq!(report.cpu.rsm_count, 8, "{layout:?} {profile:?}");
        }
    }
}

#[test]
fn boot_matches_qemu_at_every_recorded_size() {
    for cpus in [1, 2, 4, 16, 64] {
        let (console, _) = run_builtin("boot", qemu_like(cpus));
        assert_eq!(
            String::from_utf8_lossy(&console),
            expected(cpus),
            "-smp {cpus}"
        );
    }
}

#[test]
fn deterministic_boots_repeat_to_the_cycle() {
    let (first_console, first) = run_builtin("boot", qemu_like(16));
    for _ in 0..3 {
        let (console, again) = run_builtin("boot", qemu_like(16));
        assert_eq!(console, first_console);
        assert_eq!(again.cycles, first.cycles);
        let per_cpu = |r: &smmsim::RunReport| r.cpus.iter().map(|c| c.cycles).collect::<Vec<_>>();
        assert_eq!(per_cpu(&again), per_cpu(&first));
    }
}
