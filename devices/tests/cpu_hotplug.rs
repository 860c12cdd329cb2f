//! The ACPI CPU hot-plug block seen the way firmware and the OS see it: `IN`/`OUT` at
//! 0x0CD8–0x0CE3 on the q35 chipset, following the recipes of QEMU's
//! `docs/specs/acpi_cpu_hotplug.rst` and the AML QEMU generates (`CSCN`, `CEJ0`), with the
//! platform hot-adding and unplugging CPUs in between.

mod common;

use common::Board;
use smmsim_devices::{
    AccessWidth, CpuHotplug, CpuIndex, Effect, FwCfg, HotplugError, Q35Chipset, Q35Config,
};

const MIB: u64 = 1 << 20;
const BASE: u16 = CpuHotplug::PORT;
const SELECTOR: u16 = BASE;
const DATA2: u16 = BASE;
const FLAGS: u16 = BASE + 4;
const COMMAND: u16 = BASE + 5;
const DATA: u16 = BASE + 8;
const PMBASE: u16 = 0x600;
const GPE0_STS: u16 = PMBASE + 0x20;

const CMD_NEXT_EVENT: u32 = 0;
const CMD_OST_EVENT: u32 = 1;
const CMD_OST_STATUS: u32 = 2;
const CMD_GET_APIC_ID: u32 = 3;

use AccessWidth::{Byte, Dword, Word};

/// A q35 machine with `boot` of `max` CPUs plugged, reduced to its chipset.
fn machine(boot: u32, max: u32) -> Board {
    let mut config = Q35Config::new(512 * MIB);
    config.boot_cpus = boot;
    config.max_cpus = max;
    let fw_cfg = FwCfg::new(boot as u16, max as u16);
    Board::new(
        Q35Chipset::new(config, fw_cfg).expect("a valid configuration"),
        0x1000,
    )
}

impl Board {
    /// Decodes the PM block at 0x600, as OVMF's PlatformPei does (LPC 0x40, 0x44).
    fn enable_pm_block(&mut self) {
        self.out(0xCF8, Dword, 0x8000_F840);
        self.out(0xCFC, Dword, u32::from(PMBASE) | 1);
        self.out(0xCF8, Dword, 0x8000_F844);
        self.out(0xCFC, Byte, 0x80);
    }

    /// The spec's "Get a cpu with pending event": the selected CPU's index, if any.
    fn next_cpu_with_event(&mut self) -> Option<u32> {
        self.out(SELECTOR, Dword, 0);
        self.out(COMMAND, Byte, CMD_NEXT_EVENT);
        let status = self.inp(FLAGS, Byte);
        (status & 0b110 != 0).then(|| self.inp(DATA, Dword))
    }
}

#[test]
fn the_modern_interface_is_there_from_power_on() {
    // docs/specs/acpi_cpu_hotplug.rst, "Detecting and enabling modern CPU hotplug
    // interface": select 0, command 0, command data 2 reads 0.
    let mut m = machine(1, 4);
    m.out(SELECTOR, Dword, 0);
    m.out(COMMAND, Byte, CMD_NEXT_EVENT);
    assert_eq!(m.inp(DATA2, Dword), 0);
    assert_eq!(m.inp(FLAGS, Byte), u32::from(CpuHotplug::STATUS_ENABLED));
}

#[test]
fn enumeration_recipe_counts_the_present_cpus_and_ends_at_max_cpus() {
    // The spec's "Enumerate CPUs present/non present CPUs", step by step.
    let mut m = machine(3, 8);
    m.chipset.hot_add_cpu(CpuIndex(6)).unwrap();
    let mut present = 0;
    let mut iterator = 0u32;
    m.out(SELECTOR, Dword, 0);
    m.out(COMMAND, Byte, CMD_NEXT_EVENT);
    loop {
        if m.inp(FLAGS, Byte) & 1 != 0 {
            present += 1;
        }
        iterator += 1;
        m.out(SELECTOR, Dword, iterator);
        if m.inp(DATA, Dword) == 0 {
            break;
        }
    }
    m.out(SELECTOR, Dword, 0);
    assert_eq!(present, 4);
    assert_eq!(iterator, 8, "the iterator ends at max_cpus");
    assert_eq!(m.chipset.cpu_hotplug().present_count(), 4);
}

#[test]
fn hot_add_is_found_identified_and_acknowledged_as_cscn_does() {
    let mut m = machine(2, 4);
    m.enable_pm_block();
    m.chipset.hot_add_cpu(CpuIndex(3)).unwrap();
    // GPE0_STS bit 2, which ACPI's _E02 handler turns into CSCN.
    assert_eq!(m.inp(GPE0_STS, Byte) & 0x04, 0x04);
    m.out(GPE0_STS, Byte, 0x04);
    assert_eq!(m.inp(GPE0_STS, Byte) & 0x04, 0);

    // CSCN: command 0 finds the CPU with the insert event and selects it.
    assert_eq!(m.next_cpu_with_event(), Some(3));
    assert_eq!(
        m.inp(FLAGS, Byte),
        u32::from(CpuHotplug::STATUS_ENABLED | CpuHotplug::STATUS_INSERT)
    );
    // OVMF's CpuHotplugSmm asks for its APIC ID with command 3.
    m.out(COMMAND, Byte, CMD_GET_APIC_ID);
    assert_eq!(m.inp(DATA, Dword), 3);
    assert_eq!(m.inp(DATA2, Dword), 0);
    // Acknowledge: clear the insert event, report _OST.
    m.out(FLAGS, Byte, u32::from(CpuHotplug::CONTROL_CLEAR_INSERT));
    m.out(COMMAND, Byte, CMD_OST_EVENT);
    m.out(DATA, Dword, 0x01);
    m.out(COMMAND, Byte, CMD_OST_STATUS);
    m.out(DATA, Dword, 0x00);
    let ost = m.chipset.cpu_hotplug().ost(CpuIndex(3)).unwrap();
    assert_eq!((ost.event, ost.status), (1, 0));
    assert_eq!(m.inp(FLAGS, Byte), u32::from(CpuHotplug::STATUS_ENABLED));
    // Nothing left: the selector stays where command 0 was issued.
    assert_eq!(m.next_cpu_with_event(), None);
    assert_eq!(m.chipset.cpu_hotplug().selector(), 0);
}

#[test]
fn platform_refusals_change_nothing() {
    let mut m = machine(2, 4);
    assert_eq!(
        m.chipset.hot_add_cpu(CpuIndex(1)),
        Err(HotplugError::AlreadyPresent { cpu: CpuIndex(1) })
    );
    assert_eq!(
        m.chipset.hot_add_cpu(CpuIndex(4)),
        Err(HotplugError::NoSuchCpu {
            cpu: CpuIndex(4),
            max_cpus: 4
        })
    );
    assert_eq!(
        m.chipset.request_cpu_unplug(CpuIndex(0)),
        Err(HotplugError::BootCpu)
    );
    assert_eq!(m.chipset.pm().gpe0_sts(), 0);
    assert_eq!(m.next_cpu_with_event(), None);
}

#[test]
fn firmware_driven_unplug_ends_in_an_eject_effect() {
    // Unplug with CPU_HOT_UNPLUG negotiated: the OS sees the remove event, hands the eject
    // to firmware (CEJ0 with fw_unplugs_cpu), firmware finds the CPU by its FW_REMOVE bit
    // and ejects it.
    let mut m = machine(3, 4);
    m.chipset.request_cpu_unplug(CpuIndex(2)).unwrap();
    assert_eq!(m.next_cpu_with_event(), Some(2));
    m.out(FLAGS, Byte, u32::from(CpuHotplug::CONTROL_CLEAR_REMOVE));
    m.out(SELECTOR, Dword, 2);
    m.out(FLAGS, Byte, u32::from(CpuHotplug::CONTROL_FW_REMOVE));
    assert_eq!(
        m.inp(FLAGS, Byte),
        u32::from(CpuHotplug::STATUS_ENABLED | CpuHotplug::STATUS_FW_REMOVE)
    );
    // Firmware's search: FW_REMOVE counts as a pending event.
    m.out(SELECTOR, Dword, 0);
    m.out(COMMAND, Byte, CMD_NEXT_EVENT);
    assert_eq!(m.inp(DATA, Dword), 2);
    let effects = m.out(FLAGS, Byte, u32::from(CpuHotplug::CONTROL_EJECT));
    assert_eq!(effects, [Effect::EjectCpu(CpuIndex(2))]);
    assert_eq!(m.inp(FLAGS, Byte), 0);
    assert!(!m.chipset.cpu_hotplug().is_present(CpuIndex(2)));
    assert_eq!(m.next_cpu_with_event(), None);
    // And it can be plugged again.
    m.chipset.hot_add_cpu(CpuIndex(2)).unwrap();
    assert_eq!(m.next_cpu_with_event(), Some(2));
}

#[test]
fn the_boot_cpu_and_absent_cpus_cannot_be_ejected() {
    let mut m = machine(2, 4);
    for cpu in [0, 3] {
        m.out(SELECTOR, Dword, cpu);
        assert_eq!(m.out(FLAGS, Byte, u32::from(CpuHotplug::CONTROL_EJECT)), []);
        m.out(FLAGS, Byte, u32::from(CpuHotplug::CONTROL_FW_REMOVE));
    }
    assert_eq!(m.chipset.cpu_hotplug().status(CpuIndex(0)), Some(1));
    assert_eq!(m.chipset.cpu_hotplug().status(CpuIndex(3)), Some(0));
    assert_eq!(m.chipset.ignored_accesses(), 4);
}

#[test]
fn widths_follow_qemu_whole_access_dispatch() {
    let mut m = machine(1, 4);
    m.chipset.hot_add_cpu(CpuIndex(2)).unwrap();
    // A byte selector write selects; a word write at 0x0CDA does not.
    m.out(SELECTOR, Byte, 2);
    m.out(SELECTOR + 2, Word, 0xFFFF);
    assert_eq!(m.chipset.cpu_hotplug().selector(), 2);
    // Status through a word and a dword read starting at 0x0CDC.
    assert_eq!(m.inp(FLAGS, Word), 0b11);
    assert_eq!(m.inp(FLAGS, Dword), 0b11);
    // A word write at 0x0CDC is a control write; its high byte is no command.
    m.out(COMMAND, Byte, CMD_GET_APIC_ID);
    m.out(FLAGS, Word, (CMD_OST_EVENT << 8) | 0x02);
    assert_eq!(m.chipset.cpu_hotplug().status(CpuIndex(2)), Some(1));
    assert_eq!(m.inp(DATA, Word), 2, "still command 3");
    // Misaligned accesses read 0 and are dropped.
    assert_eq!(m.inp(COMMAND, Word), 0);
    assert_eq!(m.inp(BASE + 9, Dword), 0);
    m.out(BASE + 2, Dword, 0);
    assert_eq!(m.chipset.cpu_hotplug().selector(), 2);
}

#[test]
fn an_out_of_range_selector_silences_everything_but_itself() {
    let mut m = machine(2, 4);
    m.chipset.request_cpu_unplug(CpuIndex(1)).unwrap();
    m.out(SELECTOR, Dword, 0xFFFF_FFFF);
    assert_eq!(m.inp(FLAGS, Byte), 0);
    assert_eq!(m.inp(DATA, Dword), 0);
    m.out(COMMAND, Byte, CMD_GET_APIC_ID);
    m.out(FLAGS, Byte, 0xFF);
    m.out(SELECTOR, Dword, 1);
    assert_eq!(
        m.inp(FLAGS, Byte),
        u32::from(CpuHotplug::STATUS_ENABLED | CpuHotplug::STATUS_REMOVE)
    );
    assert_eq!(m.chipset.cpu_hotplug().selector(), 1);
    m.out(COMMAND, Byte, CMD_NEXT_EVENT);
    assert_eq!(m.inp(DATA, Dword), 1, "command 3 was never taken");
}

#[test]
fn hard_reset_keeps_hot_added_cpus_and_drops_pending_events() {
    let mut m = machine(1, 4);
    m.chipset.hot_add_cpu(CpuIndex(1)).unwrap();
    m.chipset.hot_add_cpu(CpuIndex(2)).unwrap();
    m.chipset.request_cpu_unplug(CpuIndex(2)).unwrap();
    m.out(SELECTOR, Dword, 3);
    // The guest resets the machine; the simulator carries the effect out.
    assert_eq!(m.out(0xCF9, Byte, 0x06), [Effect::Reset { hard: true }]);
    m.chipset.reset(true);
    assert_eq!(m.chipset.cpu_hotplug().present_count(), 3);
    assert_eq!(m.next_cpu_with_event(), None);
    assert_eq!(m.chipset.cpu_hotplug().selector(), 0);
    assert_eq!(m.chipset.pm().gpe0_sts(), 0);
    for cpu in 0..3 {
        m.out(SELECTOR, Dword, cpu);
        assert_eq!(m.inp(FLAGS, Byte), 1, "CPU {cpu}");
    }
}

#[test]
fn garbage_at_any_width_and_offset_never_panics() {
    let mut m = machine(2, 4);
    m.chipset.hot_add_cpu(CpuIndex(3)).unwrap();
    for selector in [0, 1, 2, 3, 4, 0x100, u32::MAX] {
        for port in BASE..BASE + CpuHotplug::WINDOW_LEN {
            for width in [Byte, Word, Dword] {
                for value in [0, 0x08, 0x10, 0x1F, 0xFF, 0xFFFF_FFFF] {
                    m.out(SELECTOR, Dword, selector);
                    m.out(port, width, value);
                    m.inp(port, width);
                    m.out(COMMAND, Byte, value);
                }
            }
        }
    }
    assert!(m.chipset.cpu_hotplug().is_present(CpuIndex(0)));
}
