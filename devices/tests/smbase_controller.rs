//! smmsim's SMBASE controller seen through the q35 chipset: firmware programs it from SMM
//! at 0x0EE0–0x0EF3 and locks it; anyone may read it; every write from outside SMM or
//! after the lock comes back as a violation effect; the platform asks it for a hot-added
//! CPU's SMBASE.

mod common;

use common::Board;
use smmsim_devices::{
    AccessWidth, ApicId, CpuIndex, Effect, FwCfg, Q35Chipset, Q35Config, SmbaseController,
};

const MIB: u64 = 1 << 20;
const SELECTOR: u16 = SmbaseController::PORT;
const SMBASE: u16 = SmbaseController::PORT + 0x4;
const CONTROL: u16 = SmbaseController::PORT + 0x8;
const FORMULA_BASE: u16 = SmbaseController::PORT + 0xC;
const FORMULA_STRIDE: u16 = SmbaseController::PORT + 0x10;

/// edk2's per-CPU SMBASE for slot i: TSEG buffer + i × 0x2000 − 0x8000 (PLATFORM.md,
/// "Firmware conventions"), with the buffer at 0x1F80_0000.
fn edk2_smbase(slot: u32) -> u32 {
    0x1F80_0000 + slot * 0x2000 - 0x8000
}

use AccessWidth::{Byte, Dword, Word};

/// The chipset of a 2-of-4-CPU machine, accessed by CPU 0 in SMM unless a test says
/// otherwise.
fn machine() -> Board {
    let mut config = Q35Config::new(512 * MIB);
    config.boot_cpus = 2;
    config.max_cpus = 4;
    let chipset = Q35Chipset::new(config, FwCfg::new(2, 4)).expect("a valid configuration");
    let mut board = Board::new(chipset, 0x1000);
    board.in_smm = true;
    board
}

impl Board {
    /// What the `controller` strategy's SMM code does at boot: one entry per APIC ID.
    fn program_table(&mut self) {
        for apic_id in 0..4 {
            assert_eq!(self.out(SELECTOR, Dword, apic_id), []);
            assert_eq!(self.out(SMBASE, Dword, edk2_smbase(apic_id)), []);
        }
    }
}

#[test]
fn the_window_is_twenty_ports_from_0x0ee0() {
    let m = machine();
    assert!(!m.chipset.claims_port(0x0EDF));
    assert!((0x0EE0..=0x0EF3).all(|port| m.chipset.claims_port(port)));
    assert!(!m.chipset.claims_port(0x0EF4));
}

#[test]
fn smm_programs_the_table_and_the_platform_reads_it_for_hot_add() {
    let mut m = machine();
    m.program_table();
    let controller = m.chipset.smbase_controller();
    assert_eq!(controller.smbase_for(ApicId(3)), Some(0x1F7F_E000));
    assert_eq!(controller.smbase_for(ApicId(4)), None, "no such APIC ID");
    // Reads work from outside SMM too.
    m.in_smm = false;
    m.cpu = CpuIndex(1);
    m.chipset.hot_add_cpu(CpuIndex(2)).unwrap();
    assert_eq!(m.inp(SMBASE, Dword), edk2_smbase(3), "selector left at 3");
    assert_eq!(m.inp(SMBASE + 2, Word), edk2_smbase(3) >> 16);
    assert_eq!(m.chipset.smbase_controller().blocked_writes(), 0);
}

#[test]
fn writes_from_outside_smm_are_dropped_and_reported() {
    let mut m = machine();
    m.program_table();
    m.in_smm = false;
    m.cpu = CpuIndex(1);
    for (port, width, value) in [
        (SELECTOR, Dword, 2),
        (SMBASE, Dword, 0x3000_0000),
        (SMBASE + 1, Byte, 0xAB),
        (CONTROL, Dword, SmbaseController::CONTROL_FORMULA),
    ] {
        let effects = m.out(port, width, value);
        assert_eq!(
            effects,
            [Effect::SmbaseControllerBlocked {
                cpu: CpuIndex(1),
                offset: port - SmbaseController::PORT,
                value,
                in_smm: false,
                locked: false,
            }],
            "port {port:#x}"
        );
    }
    let controller = m.chipset.smbase_controller();
    assert_eq!(controller.selector(), 3);
    assert_eq!(controller.smbase_for(ApicId(3)), Some(edk2_smbase(3)));
    assert!(!controller.is_formula_mode());
    assert_eq!(controller.blocked_writes(), 4);
}

#[test]
fn after_the_lock_even_smm_is_refused_until_hard_reset() {
    let mut m = machine();
    m.program_table();
    assert_eq!(m.out(CONTROL, Dword, SmbaseController::CONTROL_LOCK), []);
    assert!(m.chipset.smbase_controller().is_locked());
    assert_eq!(m.inp(CONTROL, Dword), SmbaseController::CONTROL_LOCK);
    let effects = m.out(SMBASE, Dword, 0);
    assert_eq!(
        effects,
        [Effect::SmbaseControllerBlocked {
            cpu: CpuIndex(0),
            offset: 0x4,
            value: 0,
            in_smm: true,
            locked: true,
        }]
    );
    assert_eq!(
        m.chipset.smbase_controller().smbase_for(ApicId(3)),
        Some(edk2_smbase(3))
    );
    // INIT (soft reset) keeps the lock; a hard reset clears everything.
    m.chipset.reset(false);
    assert!(m.chipset.smbase_controller().is_locked());
    assert_eq!(m.out(0xCF9, Byte, 0x06), [Effect::Reset { hard: true }]);
    m.chipset.reset(true);
    let controller = m.chipset.smbase_controller();
    assert!(!controller.is_locked());
    assert_eq!(controller.smbase_for(ApicId(3)), None);
    assert_eq!(m.out(SMBASE, Dword, 0x1000), []);
}

#[test]
fn formula_mode_replaces_the_table() {
    let mut m = machine();
    m.program_table();
    m.out(FORMULA_BASE, Dword, 0x1F7F_8000);
    m.out(FORMULA_STRIDE, Dword, 0x2000);
    m.out(
        CONTROL,
        Dword,
        SmbaseController::CONTROL_FORMULA | SmbaseController::CONTROL_LOCK,
    );
    assert_eq!(m.inp(FORMULA_BASE, Dword), 0x1F7F_8000);
    assert_eq!(m.inp(FORMULA_STRIDE, Dword), 0x2000);
    assert_eq!(m.inp(CONTROL, Byte), 0b11);
    let controller = m.chipset.smbase_controller();
    assert_eq!(controller.smbase_for(ApicId(2)), Some(0x1F7F_C000));
    // The SMBASE register still shows the table entry.
    assert_eq!(m.inp(SMBASE, Dword), edk2_smbase(3));
}

#[test]
fn narrow_smm_writes_are_dropped_never_merged() {
    let mut m = machine();
    m.program_table();
    let before = m.chipset.ignored_accesses();
    assert_eq!(m.out(SMBASE, Word, 0x1234), []);
    assert_eq!(m.out(SMBASE + 2, Word, 0x5678), []);
    assert_eq!(m.out(SMBASE + 1, Dword, 0x5678), []);
    assert_eq!(m.chipset.ignored_accesses(), before + 3);
    assert_eq!(m.inp(SMBASE, Dword), edk2_smbase(3));
}

#[test]
fn garbage_at_any_width_and_offset_never_panics() {
    let mut m = machine();
    for in_smm in [true, false] {
        m.in_smm = in_smm;
        for port in SmbaseController::PORT..SmbaseController::PORT + SmbaseController::WINDOW_LEN {
            for width in [Byte, Word, Dword] {
                for value in [0, 1, 3, 0x8000_0000, 0xFFFF_FFFF] {
                    m.out(port, width, value);
                    m.inp(port, width);
                }
            }
        }
    }
    for apic_id in [0, 3, 4, 4096, u32::MAX] {
        let _ = m.chipset.smbase_controller().smbase_for(ApicId(apic_id));
    }
}
