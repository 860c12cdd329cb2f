//! fw_cfg seen the way firmware sees it: `OUT`/`IN` on a [`PortBus`], following the steps
//! edk2's `QemuFwCfgLib` and SeaBIOS take.

use smmsim_devices::{AccessContext, AccessWidth, FwCfg, PortBus};
use smmsim_traces::Cycle;

const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;

fn ctx() -> AccessContext {
    AccessContext::at_cycle(Cycle::ZERO)
}

fn machine(fw_cfg: FwCfg) -> PortBus {
    let mut bus = PortBus::with_debug_devices();
    bus.add(FwCfg::PORT, FwCfg::WINDOW_LEN, Box::new(fw_cfg))
        .expect("0x510..=0x511 is free on the debug-device bus");
    bus
}

/// `OUT 0x510, AX`.
fn select(bus: &mut PortBus, key: u16) {
    bus.write(
        &ctx(),
        SELECTOR,
        AccessWidth::Word,
        key.into(),
        &mut Vec::new(),
    );
}

/// `n` × `IN AL, 0x511` (edk2 `IoReadFifo8`).
fn read_bytes(bus: &mut PortBus, n: usize) -> Vec<u8> {
    let mut effects = Vec::new();
    let bytes = (0..n)
        .map(|_| bus.read(&ctx(), DATA, AccessWidth::Byte, &mut effects) as u8)
        .collect();
    assert!(effects.is_empty(), "fw_cfg has no side effects");
    bytes
}

/// edk2 `QemuFwCfgFindFile`: walk the directory for `name`, giving (selector, size).
fn find_file(bus: &mut PortBus, name: &str) -> Option<(u16, u32)> {
    select(bus, FwCfg::KEY_FILE_DIR);
    let count = u32::from_be_bytes(read_bytes(bus, 4).try_into().unwrap());
    for _ in 0..count {
        let entry = read_bytes(bus, 64);
        let size = u32::from_be_bytes(entry[0..4].try_into().unwrap());
        let selector = u16::from_be_bytes(entry[4..6].try_into().unwrap());
        let field = &entry[8..];
        let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        if &field[..len] == name.as_bytes() {
            return Some((selector, size));
        }
    }
    None
}

#[test]
fn firmware_detects_fw_cfg_and_reads_cpu_counts() {
    let mut bus = machine(FwCfg::new(2, 16));
    select(&mut bus, FwCfg::KEY_SIGNATURE);
    assert_eq!(read_bytes(&mut bus, 4), b"QEMU");
    select(&mut bus, FwCfg::KEY_ID);
    let id = u32::from_le_bytes(read_bytes(&mut bus, 4).try_into().unwrap());
    assert_eq!(id & FwCfg::ID_TRADITIONAL, FwCfg::ID_TRADITIONAL);
    assert_eq!(
        id & FwCfg::ID_DMA,
        0,
        "no DMA interface: firmware must not use 0x514"
    );
    select(&mut bus, FwCfg::KEY_NB_CPUS);
    assert_eq!(read_bytes(&mut bus, 2), 2u16.to_le_bytes());
    select(&mut bus, FwCfg::KEY_MAX_CPUS);
    assert_eq!(read_bytes(&mut bus, 2), 16u16.to_le_bytes());
    assert_eq!(bus.unmapped_accesses().reads, 0);
}

#[test]
fn firmware_finds_and_reads_a_file_by_name() {
    let mut fw_cfg = FwCfg::new(1, 4);
    fw_cfg
        .add_file("opt/smmsim/strategy", b"controller".to_vec())
        .unwrap();
    let knob = fw_cfg
        .add_file("opt/smmsim/stride", 0x2000u32.to_le_bytes().to_vec())
        .unwrap();
    let mut bus = machine(fw_cfg);

    assert_eq!(find_file(&mut bus, "opt/smmsim/stride"), Some((knob, 4)));
    assert_eq!(find_file(&mut bus, "etc/smi/supported-features"), None);
    let (selector, size) = find_file(&mut bus, "opt/smmsim/strategy").unwrap();
    select(&mut bus, selector);
    assert_eq!(read_bytes(&mut bus, size as usize), b"controller");
    // Past the end: zeros.
    assert_eq!(read_bytes(&mut bus, 2), [0, 0]);
}

#[test]
fn word_reads_of_the_data_port_return_zero_as_in_qemu() {
    let mut bus = machine(FwCfg::new(1, 1));
    select(&mut bus, FwCfg::KEY_SIGNATURE);
    // `IN AX, 0x511`: QEMU's fw_cfg accepts byte reads only; the rejected read is 0.
    assert_eq!(
        bus.read(&ctx(), DATA, AccessWidth::Word, &mut Vec::new()),
        0
    );
    assert_eq!(
        bus.read(&ctx(), SELECTOR, AccessWidth::Dword, &mut Vec::new()),
        0
    );
    // And it consumed nothing.
    assert_eq!(read_bytes(&mut bus, 4), b"QEMU");
}

#[test]
fn data_port_writes_are_ignored_as_in_qemu() {
    let mut bus = machine(FwCfg::new(3, 3));
    select(&mut bus, FwCfg::KEY_NB_CPUS);
    bus.write(&ctx(), DATA, AccessWidth::Byte, 9, &mut Vec::new());
    assert_eq!(read_bytes(&mut bus, 2), [3, 0]);
}

#[test]
fn the_dma_port_is_absent() {
    let mut bus = machine(FwCfg::new(1, 1));
    assert_eq!(
        bus.read(&ctx(), 0x514, AccessWidth::Dword, &mut Vec::new()),
        0xFFFF_FFFF
    );
    assert_eq!(bus.unmapped_accesses().reads, 1);
}
