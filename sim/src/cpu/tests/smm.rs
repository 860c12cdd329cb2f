//! SMM on one core: entry state, RSM and SMBASE relocation with both layouts, SMI latching,
//! NMI blocking, and the three profiles' INIT/SIPI/SMI cases of PLATFORM.md.

use smmsim_devices::DeliveryMode;
use smmsim_traces::{Cycle, SmiSource};

use super::super::smm::{Profile, SaveStateLayout, DEFAULT_SMBASE};
use super::super::state::{SegReg, RAX};
use super::super::testing::{Bench, Mode, CODE_BASE};
use super::super::{Activity, StopReason};
use super::message;

/// `mov dword [cs:OFFSET], NEW_SMBASE; rsm` — a relocation handler for `layout`.
fn relocation_handler(layout: SaveStateLayout, new_smbase: u32) -> Vec<u8> {
    let offset = layout.smbase_offset() as u16;
    let mut code = vec![0x2E, 0x66, 0xC7, 0x06];
    code.extend_from_slice(&offset.to_le_bytes());
    code.extend_from_slice(&new_smbase.to_le_bytes());
    code.extend_from_slice(&[0x0F, 0xAA]); // rsm
    code
}

/// A core halted in real mode (two HLTs, so that after RSM it halts again), with
/// `handler` installed at SMBASE + 0x8000.
fn halted_core(layout: SaveStateLayout, profile: Profile, handler: &[u8]) -> Bench {
    let mut bench = Bench::new(Mode::Real, &[0xF4]);
    bench.cpu.smm.layout = layout;
    bench.cpu.smm.profile = profile;
    bench
        .cpu
        .memory()
        .write_bytes(DEFAULT_SMBASE + 0x8000, handler);
    assert_eq!(bench.run(), StopReason::Halted);
    bench
}

#[test]
fn an_smi_relocates_smbase_through_the_save_area_in_both_layouts() {
    for layout in [SaveStateLayout::Amd64, SaveStateLayout::Intel32] {
        let mut bench = halted_core(layout, Profile::Kvm, &relocation_handler(layout, 0x5_0000));
        bench.cpu.state.regs[RAX] = 0xABCD;
        bench.cpu.raise_smi(SmiSource::Platform);
        assert_eq!(bench.cpu.activity, Activity::Running, "an SMI wakes HLT");
        assert_eq!(bench.run(), StopReason::Halted, "{layout:?}");
        assert_eq!(bench.cpu.smm.smbase, 0x5_0000, "{layout:?}");
        assert!(!bench.cpu.smm.in_smm);
        assert_eq!(bench.cpu.state.regs[RAX], 0xABCD, "state restored");
        assert_eq!(
            bench.cpu.state.seg(SegReg::Cs).base,
            CODE_BASE,
            "back in the interrupted code"
        );
        assert_eq!(
            (bench.cpu.stats.smm_entries, bench.cpu.stats.rsm_count),
            (1, 1)
        );
        let revision = bench.read(DEFAULT_SMBASE + 0xFEFC, 4) as u32;
        assert_eq!(revision, layout.revision());
    }
}

#[test]
fn smi_entry_state_follows_platform_md() {
    // A handler that just halts, so the entry state can be inspected.
    let mut bench = halted_core(SaveStateLayout::Amd64, Profile::Kvm, &[0xF4]);
    bench.cpu.state.cr0 |= 0x8; // TS, cleared on entry
    bench.cpu.raise_smi(SmiSource::Platform);
    assert_eq!(bench.run(), StopReason::Halted);
    let s = &bench.cpu.state;
    let cs = s.seg(SegReg::Cs);
    assert!(bench.cpu.smm.in_smm);
    assert_eq!(
        (cs.selector, cs.base, cs.limit),
        (0x3000, 0x3_0000, 0xFFFF_FFFF)
    );
    assert_eq!(s.rip, 0x8001, "halted after the HLT at SMBASE + 0x8000");
    assert_eq!(s.seg(SegReg::Ds).limit, 0xFFFF_FFFF);
    assert_eq!((s.cr0 & 0xF, s.cr4, s.efer, s.dr7), (0, 0, 0, 0x400));
    assert!(bench.cpu.smm.nmi_blocked);
    assert!(bench.cpu.access_context().in_smm);
}

#[test]
fn rsm_outside_smm_is_invalid() {
    // IVT entry 6 → a handler at offset 0x10 that sets AX.
    let mut code = vec![0x0F, 0xAA]; // rsm
    code.resize(0x10, 0x90);
    code.extend_from_slice(&[0xB8, 0x06, 0x00]); // mov ax, 6
    let mut bench = Bench::new(Mode::Real, &code);
    bench
        .cpu
        .memory()
        .write(6 * 4, 4, ((CODE_BASE >> 4) << 16) | 0x10);
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(bench.cpu.state.regs[RAX] & 0xFFFF, 6);
}

#[test]
fn one_smi_is_latched_while_in_smm() {
    // The handler counts entries in RAM at 0x500 and returns.
    let handler = [
        0x66, 0xFF, 0x06, 0x00, 0x05, // inc dword [0x500] (DS base 0 in SMM)
        0x0F, 0xAA, //                   rsm
    ];
    let mut bench = halted_core(SaveStateLayout::Amd64, Profile::Kvm, &handler);
    bench.cpu.raise_smi(SmiSource::Platform);
    // Enter SMM, then two more SMIs arrive before RSM: only one is latched.
    bench.cpu.smm.smi_pending = true;
    bench
        .cpu
        .run(&mut bench.cache, Cycle(bench.cpu.cycle + 9_000));
    assert!(bench.cpu.smm.in_smm || bench.cpu.stats.smm_entries >= 1);
    bench.cpu.raise_smi(SmiSource::Platform);
    bench.cpu.raise_smi(SmiSource::Platform);
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(bench.read(0x500, 4), bench.cpu.stats.smm_entries);
    assert!(
        bench.cpu.stats.smm_entries <= 3,
        "at most one SMI waits while in SMM"
    );
    assert!(!bench.cpu.smm.smi_pending);
}

#[test]
fn nmis_wait_until_rsm() {
    let mut bench = halted_core(SaveStateLayout::Amd64, Profile::Kvm, &[0xF4, 0x0F, 0xAA]);
    // IVT entry 2 (NMI) → offset 0x20 in the test code: mov ax, 2; hlt.
    bench
        .cpu
        .memory()
        .write_bytes(CODE_BASE + 0x20, &[0xB8, 0x02, 0x00, 0xF4]);
    bench
        .cpu
        .memory()
        .write(2 * 4, 4, ((CODE_BASE >> 4) << 16) | 0x20);
    bench.cpu.raise_smi(SmiSource::Platform);
    assert_eq!(
        bench.run(),
        StopReason::Halted,
        "halted inside the SMI handler"
    );
    bench
        .cpu
        .receive(Cycle(bench.cpu.cycle), &message(DeliveryMode::Nmi, 0));
    assert!(
        bench.cpu.smm.in_smm && bench.cpu.smm.nmi_pending,
        "latched, not taken, in SMM"
    );
    // The handler resumes after its HLT with RSM; the latched NMI runs after that.
    assert_eq!(bench.run(), StopReason::Halted);
    assert!(!bench.cpu.smm.in_smm);
    assert_eq!(
        bench.cpu.state.regs[RAX] & 0xFFFF,
        2,
        "the latched NMI runs after RSM"
    );
}

#[test]
fn init_in_smm_follows_the_profile() {
    for (profile, expect_in_smm, expect_activity) in [
        (Profile::Qemu, false, Activity::WaitForSipi),
        (Profile::Kvm, true, Activity::Running),
        (Profile::Sdm, true, Activity::Running),
    ] {
        // Halt inside the SMI handler, then INIT arrives.
        let mut bench = halted_core(SaveStateLayout::Amd64, profile, &[0xF4, 0x0F, 0xAA]);
        bench.cpu.raise_smi(SmiSource::Platform);
        assert_eq!(bench.run(), StopReason::Halted);
        bench.cpu.activity = Activity::Running;
        bench
            .cpu
            .receive(Cycle(bench.cpu.cycle), &message(DeliveryMode::Init, 0));
        assert_eq!(bench.cpu.smm.in_smm, expect_in_smm, "{profile:?}");
        assert_eq!(bench.cpu.activity, expect_activity, "{profile:?}");
        if profile == Profile::Kvm {
            // RSM, then the latched INIT.
            assert_eq!(bench.run(), StopReason::WaitForSipi);
            assert_eq!(bench.cpu.activity, Activity::WaitForSipi);
        }
    }
}

#[test]
fn an_smi_latched_in_smm_dies_with_a_qemu_init_but_survives_a_kvm_one() {
    for (profile, survives) in [(Profile::Qemu, false), (Profile::Kvm, true)] {
        let mut bench = halted_core(SaveStateLayout::Amd64, profile, &[0xF4, 0x0F, 0xAA]);
        bench.cpu.raise_smi(SmiSource::Platform);
        assert_eq!(bench.run(), StopReason::Halted);
        // A second SMI while in SMM is latched (PLATFORM.md), then INIT arrives.
        bench.cpu.raise_smi(SmiSource::Ipi);
        bench
            .cpu
            .receive(Cycle(bench.cpu.cycle), &message(DeliveryMode::Init, 0));
        assert_eq!(bench.cpu.smm.smi_pending, survives, "{profile:?}");
    }
}

#[test]
fn an_smi_in_wait_for_sipi_follows_the_profile() {
    for profile in [Profile::Qemu, Profile::Kvm] {
        let mut bench = Bench::new(Mode::Real, &[0xF4]);
        bench.cpu.smm.profile = profile;
        bench
            .cpu
            .memory()
            .write_bytes(DEFAULT_SMBASE + 0x8000, &[0x0F, 0xAA]); // rsm
        bench
            .cpu
            .receive(Cycle(10), &message(DeliveryMode::Init, 0));
        bench.cpu.raise_smi(SmiSource::Platform);
        if profile == Profile::Qemu {
            // Taken at once; after RSM the core runs from the post-INIT state (reset vector).
            assert_eq!(bench.cpu.activity, Activity::Running);
            bench
                .cpu
                .run(&mut bench.cache, Cycle(bench.cpu.cycle + 20_000));
            assert_eq!(bench.cpu.stats.smm_entries, 1);
            assert_eq!(bench.cpu.state.seg(SegReg::Cs).selector, 0xF000);
        } else {
            assert_eq!(bench.run(), StopReason::WaitForSipi, "held until SIPI");
            assert_eq!(bench.cpu.stats.smm_entries, 0);
            bench.cpu.receive(
                Cycle(50_000),
                &message(DeliveryMode::Startup, (CODE_BASE >> 12) as u8),
            );
            assert_eq!(bench.run(), StopReason::Halted);
            assert_eq!(
                bench.cpu.stats.smm_entries, 1,
                "taken before the first instruction"
            );
            let saved_cs = bench.read(DEFAULT_SMBASE + 0xFE10, 2);
            let saved_rip = bench.read(DEFAULT_SMBASE + 0xFF78, 8);
            assert_eq!(
                (saved_cs, saved_rip),
                ((CODE_BASE >> 4), 0),
                "saved CS:IP = vector:0"
            );
        }
    }
}

#[test]
fn init_drops_or_keeps_a_pending_smi_by_profile() {
    for (profile, waiting, kept) in [
        (Profile::Qemu, true, false),
        (Profile::Kvm, true, true),
        (Profile::Kvm, false, false),
        (Profile::Sdm, false, true),
    ] {
        let mut bench = Bench::new(Mode::Real, &[0xF4]);
        bench.cpu.smm.profile = profile;
        if waiting {
            bench
                .cpu
                .receive(Cycle(10), &message(DeliveryMode::Init, 0));
        }
        bench.cpu.smm.smi_pending = true;
        bench
            .cpu
            .receive(Cycle(20), &message(DeliveryMode::Init, 0));
        assert_eq!(
            bench.cpu.smm.smi_pending, kept,
            "{profile:?} waiting={waiting}"
        );
    }
}

#[test]
fn init_keeps_smbase_and_rsm_reloads_it_per_profile() {
    for profile in [Profile::Qemu, Profile::Kvm, Profile::Sdm] {
        let layout = SaveStateLayout::Amd64;
        let mut bench = halted_core(layout, profile, &relocation_handler(layout, 0x6_0000));
        bench.cpu.raise_smi(SmiSource::Platform);
        assert_eq!(bench.run(), StopReason::Halted);
        assert_eq!(
            bench.cpu.smm.smbase, 0x6_0000,
            "{profile:?}: bit 17 is set, so all reload"
        );
        bench
            .cpu
            .receive(Cycle(bench.cpu.cycle), &message(DeliveryMode::Init, 0));
        assert_eq!(
            bench.cpu.smm.smbase, 0x6_0000,
            "{profile:?}: INIT keeps SMBASE"
        );
    }
}

#[test]
fn auto_halt_restart_is_honoured_in_the_sdm_profile_only() {
    for (profile, halted_after) in [(Profile::Sdm, true), (Profile::Kvm, false)] {
        // The test code is `hlt; mov ax, 0x55; hlt`: resuming after the first HLT sets AX.
        let mut bench = Bench::new(Mode::Real, &[0xF4, 0xB8, 0x55, 0x00]);
        bench.cpu.smm.profile = profile;
        bench
            .cpu
            .memory()
            .write_bytes(DEFAULT_SMBASE + 0x8000, &[0x0F, 0xAA]);
        assert_eq!(bench.run(), StopReason::Halted);
        bench.cpu.raise_smi(SmiSource::Platform);
        assert_eq!(bench.run(), StopReason::Halted);
        let resumed = bench.cpu.state.regs[RAX] & 0xFFFF == 0x55;
        assert_eq!(resumed, !halted_after, "{profile:?}");
    }
}

#[test]
fn smram_is_decided_per_access_by_the_accessing_cpu() {
    use super::super::Cpu;
    use crate::timing::TimingTable;
    use smmsim_devices::{ApicId, CpuIndex};
    use std::sync::Arc;

    // CPU 0 reads TSEG from outside SMM, CPU 1 from inside, at the same moment.
    let mut outside = Bench::new(Mode::Protected32, &[0x90]);
    let mem = Arc::clone(&outside.cpu.mem);
    mem.write(0x8_0000, 4, 0x1234_5678);
    mem.smram().set(Some((0x8_0000, 0x1_0000)), false);
    let platform: Arc<dyn super::super::Platform> = outside.platform.clone();
    let mut inside = Cpu::new(
        CpuIndex(1),
        ApicId(1),
        Arc::clone(&mem),
        platform,
        TimingTable::default(),
    );
    inside.smm.in_smm = true;
    assert_eq!(
        inside.read_linear(0x8_0000, 4),
        Ok(0x1234_5678),
        "SMM sees RAM"
    );
    assert_eq!(
        outside.cpu.read_linear(0x8_0000, 4),
        Ok(0xFFFF_FFFF),
        "non-SMM reads all ones"
    );
    outside
        .cpu
        .write_linear(0x8_0000, 4, 0)
        .expect("a dropped write is no fault");
    assert_eq!(
        mem.read(0x8_0000, 4),
        0x1234_5678,
        "the non-SMM write was dropped"
    );
    assert_eq!(mem.smram().blocked(), (1, 1));
    // A locked RMW from outside cannot write either.
    outside
        .cpu
        .compare_exchange_linear(0x8_0000, 4, 0xFFFF_FFFF, 7);
    assert_eq!(mem.read(0x8_0000, 4), 0x1234_5678);
    // The default-SMBASE window joins SMRAM once locked.
    mem.smram().set(None, true);
    assert_eq!(outside.cpu.read_linear(0x3_8000, 1), Ok(0xFF));
    assert_eq!(inside.read_linear(0x3_8000, 1), Ok(0));
    assert_eq!(outside.run(), StopReason::Halted);
}

#[test]
fn a_hard_reset_puts_smbase_back_to_the_default() {
    let layout = SaveStateLayout::Amd64;
    let mut bench = halted_core(layout, Profile::Kvm, &relocation_handler(layout, 0x7_0000));
    bench.cpu.raise_smi(SmiSource::Platform);
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(bench.cpu.smm.smbase, 0x7_0000);
    bench.cpu.hard_reset();
    assert_eq!(bench.cpu.smm.smbase, DEFAULT_SMBASE);
    assert_eq!(bench.cpu.activity, Activity::Running, "CPU 0 is the BSP");
    assert_eq!(bench.cpu.state.rip, 0xFFF0);
}

#[test]
fn non_smm_code_cannot_run_from_smram() {
    // jmp 0x8000:0000 (TSEG at 0x80000); IVT entry 6 → offset 0x10: mov ax, 6.
    let mut code = vec![0xEA, 0x00, 0x00, 0x00, 0x80];
    code.resize(0x10, 0x90);
    code.extend_from_slice(&[0xB8, 0x06, 0x00]);
    let mut bench = Bench::new(Mode::Real, &code);
    bench
        .cpu
        .memory()
        .write_bytes(0x8_0000, &[0x90, 0x90, 0xF4]);
    bench
        .cpu
        .memory()
        .write(6 * 4, 4, ((CODE_BASE >> 4) << 16) | 0x10);
    bench
        .cpu
        .memory()
        .smram()
        .set(Some((0x8_0000, 0x1_0000)), false);
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(
        bench.cpu.state.regs[RAX] & 0xFFFF,
        6,
        "#UD instead of running SMRAM code"
    );
    assert_eq!(bench.cpu.memory().smram().blocked().0, 1);
}
