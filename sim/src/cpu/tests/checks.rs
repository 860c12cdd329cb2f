//! The safety checks a core runs itself (`checker.rs` has the stream-side ones): SMM entry
//! with an SMBASE outside locked SMRAM, SMM code fetched outside it, and a hot-added CPU
//! running guest code before its SMBASE moved.

use smmsim_devices::DeliveryMode;
use smmsim_traces::{Cycle, EventKind, SmiSource};

use super::super::smm::{Profile, SaveStateLayout, DEFAULT_SMBASE};
use super::super::testing::{Bench, Mode};
use super::super::{Activity, StopReason};
use super::message;

/// TSEG of the test machine: 256 KiB at 0x80000 (the bench has 1 MiB of RAM).
const TSEG: (u64, u64) = (0x8_0000, 0x4_0000);
/// An SMBASE whose entry point and save area are inside TSEG.
const SMBASE_IN_TSEG: u64 = 0x8_0000;
const RSM: [u8; 2] = [0x0F, 0xAA];

/// A halted real-mode core with `handler` at `smbase` + 0x8000, SMRAM = TSEG, locked or not.
fn core(smbase: u64, handler: &[u8], locked: bool) -> Bench {
    let mut bench = Bench::new(Mode::Real, &[0xF4, 0xF4]);
    bench.cpu.smm.smbase = smbase;
    bench.cpu.memory().write_bytes(smbase + 0x8000, handler);
    bench.cpu.memory().smram().set(Some(TSEG), false);
    bench.cpu.memory().smram().set_locked(locked);
    assert_eq!(bench.run(), StopReason::Halted);
    bench
}

fn findings(bench: &mut Bench) -> Vec<String> {
    bench
        .cpu
        .take_events()
        .into_iter()
        .filter_map(|event| match event.kind {
            EventKind::Violation { check, .. } => Some(check),
            _ => None,
        })
        .collect()
}

fn take_smi(bench: &mut Bench) {
    bench.cpu.raise_smi(SmiSource::Platform);
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(bench.cpu.stats.rsm_count, 1);
}

#[test]
fn entering_smm_outside_locked_smram_is_a_violation() {
    let mut bench = core(DEFAULT_SMBASE, &RSM, true);
    take_smi(&mut bench);
    // The entry point is outside SMRAM, so the handler's first fetch is too.
    assert_eq!(
        findings(&mut bench),
        ["smbase-outside-smram", "smm-code-outside-smram"]
    );
}

#[test]
fn entering_smm_inside_smram_or_before_the_lock_is_fine() {
    let mut inside = core(SMBASE_IN_TSEG, &RSM, true);
    take_smi(&mut inside);
    assert!(findings(&mut inside).is_empty());
    // At boot, before the lock, relocation through 0x30000 is what firmware does.
    let mut unlocked = core(DEFAULT_SMBASE, &RSM, false);
    take_smi(&mut unlocked);
    assert!(findings(&mut unlocked).is_empty());
}

#[test]
fn smm_code_outside_smram_is_a_call_out() {
    // jmp far 0000:9000, where an RSM waits outside SMRAM.
    let mut bench = core(SMBASE_IN_TSEG, &[0xEA, 0x00, 0x90, 0x00, 0x00], true);
    bench.cpu.memory().write_bytes(0x9000, &RSM);
    take_smi(&mut bench);
    assert_eq!(findings(&mut bench), ["smm-code-outside-smram"]);
}

#[test]
fn a_hot_added_cpu_started_into_guest_code_on_the_reset_smbase_is_a_violation() {
    let mut bench = Bench::new(Mode::Real, &[0xF4]);
    bench.cpu.activity = Activity::WaitForSipi;
    bench.cpu.unrelocated_hotadd = true;
    bench
        .cpu
        .receive(Cycle(10), &message(DeliveryMode::Startup, 0x10));
    assert_eq!(findings(&mut bench), ["unrelocated-cpu-runs"]);
}

#[test]
fn a_hot_added_cpu_whose_first_act_is_an_smi_that_relocates_it_is_fine() {
    // KVM: the SMI waits for the SIPI and is taken before the first instruction; the
    // handler moves SMBASE into TSEG, then RSM returns to guest code.
    let layout = SaveStateLayout::Amd64;
    let offset = layout.smbase_offset() as u16;
    let mut handler = vec![0x2E, 0x66, 0xC7, 0x06];
    handler.extend_from_slice(&offset.to_le_bytes());
    handler.extend_from_slice(&(SMBASE_IN_TSEG as u32).to_le_bytes());
    handler.extend_from_slice(&RSM);
    let mut bench = Bench::new(Mode::Real, &[0xF4]);
    bench.cpu.smm.profile = Profile::Kvm;
    bench
        .cpu
        .memory()
        .write_bytes(DEFAULT_SMBASE + 0x8000, &handler);
    bench.cpu.activity = Activity::WaitForSipi;
    bench.cpu.unrelocated_hotadd = true;
    bench.cpu.raise_smi(SmiSource::Ipi);
    bench
        .cpu
        .receive(Cycle(10), &message(DeliveryMode::Startup, 0x10));
    bench.run();
    assert_eq!(bench.cpu.smm.smbase, SMBASE_IN_TSEG);
    assert!(findings(&mut bench).is_empty());
    assert!(!bench.cpu.unrelocated_hotadd);
}

#[test]
fn a_check_switched_off_records_nothing() {
    let mut bench = core(DEFAULT_SMBASE, &RSM, true);
    bench.cpu.checks = crate::checker::CheckSet::none();
    take_smi(&mut bench);
    assert!(findings(&mut bench).is_empty());
}
