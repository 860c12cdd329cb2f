//! The q35 chipset seen the way firmware sees it: `IN`/`OUT` on absolute ports, following
//! the steps OVMF takes (`OvmfPkg/SmmAccess/SmramInternal.c`, `OvmfPkg/SmmControl2Dxe`,
//! `OvmfPkg/PlatformPei`), with guest memory for fw_cfg DMA.

mod common;

use common::Board;
use smmsim_devices::{
    AccessWidth, ChipsetProfile, CpuIndex, Effect, FwCfg, Q35Chipset, Q35Config, SmiFeatureSet,
    SmiTarget, SmramRange, SmramRegion,
};

const MIB: u64 = 1 << 20;
const RAM: u64 = 512 * MIB;
const PMBASE: u16 = 0x600;

/// The chipset of a 2-of-4-CPU machine with 64 KiB of RAM for DMA buffers.
fn machine(config: Q35Config) -> Board {
    let chipset = Q35Chipset::new(config, FwCfg::new(2, 4)).expect("a valid configuration");
    Board::new(chipset, 0x1_0000)
}

impl Board {
    /// edk2 `PciWrite{8,16,32}` through CF8/CFC.
    fn pci_write(
        &mut self,
        device: u32,
        register: u32,
        width: AccessWidth,
        value: u32,
    ) -> Vec<Effect> {
        let address = 0x8000_0000 | (device << 11) | (register & 0xFC);
        self.out(0xCF8, AccessWidth::Dword, address);
        self.out(0xCFC + (register & 3) as u16, width, value)
    }

    fn pci_read(&mut self, device: u32, register: u32, width: AccessWidth) -> u32 {
        let address = 0x8000_0000 | (device << 11) | (register & 0xFC);
        self.out(0xCF8, AccessWidth::Dword, address);
        self.inp(0xCFC + (register & 3) as u16, width)
    }

    /// OVMF PlatformPei / SmmControl2Dxe: PM block at 0x600, ACPI_EN, SMI_EN =
    /// GBL_SMI_EN | APMC_EN, then SMI_LOCK.
    fn enable_apm_smis(&mut self) {
        self.pci_write(0x1F, 0x40, AccessWidth::Dword, u32::from(PMBASE));
        self.pci_write(0x1F, 0x44, AccessWidth::Byte, 0x80);
        let smi_en = self.inp(PMBASE + 0x30, AccessWidth::Dword);
        self.out(PMBASE + 0x30, AccessWidth::Dword, smi_en | 0x21);
        self.pci_write(0x1F, 0xA0, AccessWidth::Word, 0x10);
    }
}

#[test]
fn ovmf_smram_setup_tseg_then_lock() {
    let mut m = machine(Q35Config::new(RAM));
    // The host bridge is the q35 MCH.
    assert_eq!(m.pci_read(0, 0x02, AccessWidth::Word), 0x29C0);
    // Ask for the extended TSEG size.
    m.pci_write(0, 0x50, AccessWidth::Word, 0xFFFF);
    assert_eq!(m.pci_read(0, 0x50, AccessWidth::Word), 16);
    // TSEG: extended size, enabled; SMRAM globally enabled. Nothing is SMRAM until both.
    assert!(m.pci_write(0, 0x9E, AccessWidth::Byte, 0x07).is_empty());
    let effects = m.pci_write(0, 0x9D, AccessWidth::Byte, 0x08);
    let layout = m.chipset.smram_layout();
    assert_eq!(effects, [Effect::SmramChanged(layout)]);
    assert_eq!(
        layout.tseg,
        Some(SmramRange {
            base: RAM - 16 * MIB,
            size_bytes: 16 * MIB
        })
    );
    assert_eq!(layout.hidden_from(RAM - 1, false), Some(SmramRegion::Tseg));
    // Lock: D_LCK | G_SMRAME.
    let effects = m.pci_write(0, 0x9D, AccessWidth::Byte, 0x18);
    assert!(m.chipset.smram_layout().locked);
    assert_eq!(effects.len(), 1);
    // An attacker outside SMM tries to reopen and shrink it: nothing changes.
    assert!(m.pci_write(0, 0x9D, AccessWidth::Byte, 0x48).is_empty());
    assert!(m.pci_write(0, 0x9E, AccessWidth::Byte, 0x00).is_empty());
    assert_eq!(m.chipset.smram_layout(), {
        let mut locked = layout;
        locked.locked = true;
        locked
    });
    assert_eq!(m.pci_read(0, 0x9D, AccessWidth::Byte), 0x1A);
    // A hard reset from 0xCF9, carried out by the simulator, unlocks everything.
    assert_eq!(
        m.out(0xCF9, AccessWidth::Byte, 0x06),
        [Effect::Reset { hard: true }]
    );
    m.chipset.reset(true);
    assert_eq!(m.chipset.smram_layout().tseg, None);
    assert!(!m.chipset.smram_layout().locked);
}

#[test]
fn default_smbase_window_lock_needs_the_query_first() {
    let mut m = machine(Q35Config::new(RAM));
    assert!(m.pci_write(0, 0x9C, AccessWidth::Byte, 0x02).is_empty());
    assert_eq!(m.pci_read(0, 0x9C, AccessWidth::Byte), 0);
    assert!(m.pci_write(0, 0x9C, AccessWidth::Byte, 0xFF).is_empty());
    assert_eq!(m.pci_read(0, 0x9C, AccessWidth::Byte), 0x01);
    let effects = m.pci_write(0, 0x9C, AccessWidth::Byte, 0x02);
    let layout = m.chipset.smram_layout();
    assert!(layout.default_smbase_locked);
    assert_eq!(effects, [Effect::SmramChanged(layout)]);
    assert_eq!(
        layout.hidden_from(0x3_0000, false),
        Some(SmramRegion::DefaultSmbase)
    );
    assert_eq!(layout.hidden_from(0x3_0000, true), None);
    // INIT leaves the lock; only a hard reset clears it.
    m.chipset.reset(false);
    assert!(m.chipset.smram_layout().default_smbase_locked);
    m.chipset.reset(true);
    assert!(!m.chipset.smram_layout().default_smbase_locked);
}

#[test]
fn apm_write_raises_an_smi_on_the_writer_until_broadcast_is_negotiated() {
    let mut m = machine(Q35Config::new(RAM));
    // Before SMIs are enabled a command does nothing.
    assert!(m.out(0xB2, AccessWidth::Byte, 0x04).is_empty());
    m.enable_apm_smis();
    m.cpu = CpuIndex(2);
    assert_eq!(
        m.out(0xB2, AccessWidth::Byte, 0x04),
        [Effect::RaiseSmi {
            target: SmiTarget::Cpu(CpuIndex(2))
        }]
    );
    // The handler finds the command, the argument and APM_STS, and clears APM_STS.
    m.out(0xB3, AccessWidth::Byte, 0x5A);
    assert_eq!(m.inp(0xB2, AccessWidth::Byte), 0x04);
    assert_eq!(m.inp(0xB3, AccessWidth::Byte), 0x5A);
    assert_eq!(m.inp(PMBASE + 0x34, AccessWidth::Dword), 0x20);
    m.out(PMBASE + 0x34, AccessWidth::Dword, 0x20);
    assert_eq!(m.inp(PMBASE + 0x34, AccessWidth::Dword), 0);
    // ACPI enable/disable never raise an SMI.
    assert!(m.out(0xB2, AccessWidth::Byte, 0x02).is_empty());
    assert_eq!(m.inp(PMBASE + 0x04, AccessWidth::Word) & 1, 1);
    assert!(m.out(0xB2, AccessWidth::Byte, 0x03).is_empty());
    assert_eq!(m.inp(PMBASE + 0x04, AccessWidth::Word) & 1, 0);
}

#[test]
fn smi_lock_keeps_gbl_smi_en_set() {
    let mut m = machine(Q35Config::new(RAM));
    m.enable_apm_smis();
    // Malicious OS code clears SMI_EN to stop SMIs: GBL_SMI_EN survives, APMC_EN does not.
    m.out(PMBASE + 0x30, AccessWidth::Dword, 0);
    assert_eq!(m.inp(PMBASE + 0x30, AccessWidth::Dword), 0x01);
    // ...nor can it clear SMI_LOCK.
    m.pci_write(0x1F, 0xA0, AccessWidth::Word, 0);
    assert_eq!(m.pci_read(0x1F, 0xA0, AccessWidth::Word), 0x10);
    m.chipset.reset(true);
    assert_eq!(m.pci_read(0x1F, 0xA0, AccessWidth::Word), 0);
}

#[test]
fn qemu_profile_differences() {
    let mut config = Q35Config::new(RAM);
    config.profile = ChipsetProfile::Qemu;
    let mut m = machine(config);
    m.pci_write(0x1F, 0x40, AccessWidth::Dword, u32::from(PMBASE));
    m.pci_write(0x1F, 0x44, AccessWidth::Byte, 0x80);
    // APMC_EN alone is enough under QEMU, and SMI_STS stays 0.
    m.out(PMBASE + 0x30, AccessWidth::Dword, 0x20);
    assert_eq!(m.out(0xB2, AccessWidth::Byte, 0x04).len(), 1);
    assert_eq!(m.inp(PMBASE + 0x34, AccessWidth::Dword), 0);
    // 0x04 to 0xCF9 resets the machine.
    assert_eq!(
        m.out(0xCF9, AccessWidth::Byte, 0x04),
        [Effect::Reset { hard: true }]
    );
}

#[test]
fn cpu_hotplug_event_shows_in_gpe0_sts() {
    let mut m = machine(Q35Config::new(RAM));
    m.enable_apm_smis();
    m.chipset.signal_cpu_hotplug();
    assert_eq!(m.inp(PMBASE + 0x20, AccessWidth::Byte), 0x04);
    m.out(PMBASE + 0x20, AccessWidth::Byte, 0x04);
    assert_eq!(m.inp(PMBASE + 0x20, AccessWidth::Byte), 0);
}

#[test]
fn fw_cfg_id_reports_dma_and_the_dma_window_answers() {
    let mut m = machine(Q35Config::new(RAM));
    m.out(0x510, AccessWidth::Word, u32::from(FwCfg::KEY_ID));
    let id: Vec<u32> = (0..4).map(|_| m.inp(0x511, AccessWidth::Byte)).collect();
    assert_eq!(id, [3, 0, 0, 0]);
    assert_eq!(m.inp(0x514, AccessWidth::Dword).to_le_bytes(), *b"QEMU");
    assert!(!m.chipset.claims_port(0x512));
    // Files the simulator adds after building the chipset are listed too.
    m.chipset
        .fw_cfg_mut()
        .add_file("opt/smmsim/strategy", b"formula".to_vec())
        .unwrap();
    assert!(m
        .chipset
        .fw_cfg()
        .file_selector("opt/smmsim/strategy")
        .is_some());
    assert_eq!(
        m.chipset.smi_negotiation().supported(),
        SmiFeatureSet::QEMU_DEFAULT
    );
}
