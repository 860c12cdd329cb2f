//! PCI configuration mechanism #1: how firmware reaches the configuration registers of the
//! q35 host bridge (MCH, 0:0.0) and the ICH9 LPC bridge (0:1f.0).
//!
//! Firmware writes a bus/device/function/register address to port 0xCF8 with the enable
//! bit set, then reads or writes the register through the data window 0xCFC–0xCFF. smmsim
//! follows QEMU `hw/pci/pci_host.c` (`pci_host_config_*`, `pci_host_data_*`,
//! `pci_data_read`/`pci_data_write`), which the q35 host maps at 0xCF8 and 0xCFC
//! (`hw/pci-host/q35.c` `q35_host_realize`).
//!
//! ```text
//! CONFIG_ADDRESS (0xCF8, 32-bit, as written)
//!  31  30..24    23..16  15..11  10..8     7..0
//! +---+---------+-------+-------+--------+----------+
//! |EN | ignored |  bus  | device|function| register |
//! +---+---------+-------+-------+--------+----------+
//!
//! port         access                read                        write
//! 0xCF8        32-bit                the address as written      latch the address
//! 0xCF8/A/B    8/16-bit, aligned     all ones                    dropped, counted
//! 0xCF9        any                   reset control (reset_control.rs), not this window
//! 0xCFC-0xCFF  8/16/32, aligned      config register             config register
//! any          unaligned             0, counted                  dropped, counted
//! ```
//!
//! 1. A dword write at 0xCF8 latches the whole value; QEMU `pci_host_config_write` takes
//!    only `addr == 0 && len == 4` and keeps all 32 bits. Other reads of the window return
//!    all ones (`pci_host_config_read` returns −1), other writes are dropped.
//! 2. A data-port access while EN is clear reads all ones and drops writes
//!    (`pci_host_data_read`/`_write`).
//! 3. Otherwise it targets bus (bits 23:16), device/function (15:8) and register
//!    `(address | (port − 0xCFC)) & 0xFF` — QEMU ORs the port's low bits into the latched
//!    value, so bits 1:0 of CONFIG_ADDRESS take part. A function nobody implements reads
//!    all ones (`pci_data_read`: `if (!pci_dev) return ~0x0`).
//! 4. An access that runs past register 0xFF is cut short at 0xFF
//!    (`pci_host_config_read_common`: `MIN(len, limit - addr)`); the missing bytes read 0.
//! 5. An access that is not naturally aligned inside its window (a word at 0xCFD, a dword
//!    at 0xCFE) is what QEMU's memory core rejects for these regions (`valid.unaligned` is
//!    false): it reads 0 (`unassigned_mem_read`), writes nothing, and is counted.
//!
//! [`ConfigSpace`] is a function's 256 bytes with a per-byte write mask, the same model as
//! QEMU's `PCIDevice::config`/`wmask`: the MCH and LPC keep their registers in it and react
//! after a write the way QEMU's `config_write` hooks do.

use std::ops::Range;

use crate::access::AccessWidth;

/// The CONFIG_ADDRESS port (QEMU `MCH_HOST_BRIDGE_CONFIG_ADDR`).
pub const CONFIG_ADDRESS_PORT: u16 = 0x0CF8;
/// Ports in the CONFIG_ADDRESS window (0xCF8–0xCFB; 0xCF9 belongs to reset control).
pub const CONFIG_ADDRESS_PORTS: u16 = 4;
/// The first CONFIG_DATA port (QEMU `MCH_HOST_BRIDGE_CONFIG_DATA`).
pub const CONFIG_DATA_PORT: u16 = 0x0CFC;
/// Ports in the CONFIG_DATA window (0xCFC–0xCFF).
pub const CONFIG_DATA_PORTS: u16 = 4;

/// CONFIG_ADDRESS bit 31: configuration accesses through 0xCFC are enabled.
pub const CONFIG_ADDRESS_ENABLE: u32 = 1 << 31;

/// Bytes in a conventional PCI configuration space (QEMU `PCI_CONFIG_SPACE_SIZE`).
pub const CONFIG_SPACE_BYTES: usize = 256;
/// Bytes of the standard type-0 header; device-specific registers start here
/// (QEMU `PCI_CONFIG_HEADER_SIZE`).
pub const CONFIG_HEADER_BYTES: usize = 0x40;

// Type-0 header offsets (PCI Local Bus Specification 3.0, §6.1).
/// Offset of the vendor ID (16-bit, read-only).
pub const REG_VENDOR_ID: u8 = 0x00;
/// Offset of the device ID (16-bit, read-only).
pub const REG_DEVICE_ID: u8 = 0x02;
/// Offset of the command register (16-bit).
pub const REG_COMMAND: u8 = 0x04;
/// Offset of the revision ID (8-bit, read-only).
pub const REG_REVISION_ID: u8 = 0x08;
/// Offset of the class code: programming interface, sub-class, class (24-bit).
pub const REG_CLASS_CODE: u8 = 0x09;
/// Offset of the cache line size (8-bit, writable).
pub const REG_CACHE_LINE_SIZE: u8 = 0x0C;
/// Offset of the header type (8-bit; bit 7 = multi-function device).
pub const REG_HEADER_TYPE: u8 = 0x0E;
/// Offset of the subsystem vendor ID (16-bit).
pub const REG_SUBSYSTEM_VENDOR_ID: u8 = 0x2C;
/// Offset of the subsystem ID (16-bit).
pub const REG_SUBSYSTEM_ID: u8 = 0x2E;
/// Offset of the interrupt line (8-bit, writable scratch for firmware).
pub const REG_INTERRUPT_LINE: u8 = 0x3C;

/// Command bits the guest may change: I/O, memory, bus master, SERR# and INTx disable, as
/// QEMU `pci_init_wmask` sets them.
pub const COMMAND_WRITABLE: u16 = 0x0001 | 0x0002 | 0x0004 | 0x0100 | 0x0400;
/// Header type bit 7: the device has more than one function.
pub const HEADER_TYPE_MULTI_FUNCTION: u8 = 0x80;
/// Intel's PCI vendor ID.
pub const VENDOR_INTEL: u16 = 0x8086;
/// The subsystem vendor QEMU gives every device it does not override
/// (`PCI_SUBVENDOR_ID_REDHAT_QUMRANET`, `pci_set_default_subsystem_id`).
pub const SUBSYSTEM_VENDOR_QEMU: u16 = 0x1AF4;
/// The subsystem ID QEMU gives every device it does not override (`PCI_SUBDEVICE_ID_QEMU`).
pub const SUBSYSTEM_ID_QEMU: u16 = 0x1100;

/// A PCI function's place on the bus: what CONFIG_ADDRESS bits 23:8 select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciAddress {
    /// Bus number, 0–255.
    pub bus: u8,
    /// Device number, 0–31.
    pub device: u8,
    /// Function number, 0–7.
    pub function: u8,
}

impl PciAddress {
    /// The function at `bus`:`device`.`function`; device and function are cut to 5 and 3
    /// bits, as CONFIG_ADDRESS holds them.
    pub const fn new(bus: u8, device: u8, function: u8) -> PciAddress {
        PciAddress {
            bus,
            device: device & 0x1F,
            function: function & 0x07,
        }
    }

    /// The function named by CONFIG_ADDRESS bits 23:8.
    pub const fn from_config_address(address: u32) -> PciAddress {
        PciAddress::new(
            (address >> 16) as u8,
            (address >> 11) as u8,
            (address >> 8) as u8,
        )
    }
}

/// Where one data-port access goes: decided by [`ConfigMechanism::data_target`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataTarget {
    /// CONFIG_ADDRESS has EN clear: reads all ones, writes are dropped.
    Disabled,
    /// The access is not naturally aligned in the data window: reads 0, writes are
    /// dropped, and it is counted.
    Misaligned,
    /// A configuration register of one function.
    Register {
        /// The function addressed.
        function: PciAddress,
        /// The first register touched.
        register: u8,
    },
}

/// The identity registers of a type-0 header, fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciIdentity {
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision_id: u8,
    /// Class code as the 24-bit value class << 16 | sub-class << 8 | programming interface.
    pub class_code: u32,
    /// Header type, bit 7 marking a multi-function device.
    pub header_type: u8,
    /// Subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// Subsystem ID.
    pub subsystem_id: u16,
}

/// One function's 256 configuration bytes with a per-byte write mask.
///
/// Exists so each device keeps its registers in the layout firmware addresses and gets
/// "read-only", "writable" and "locked" from one mask, as QEMU's `PCIDevice` does with
/// `config` and `wmask`. Device logic uses the unmasked setters; guest writes go through
/// [`ConfigSpace::write`].
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SPACE_BYTES],
    wmask: [u8; CONFIG_SPACE_BYTES],
}

impl std::fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSpace")
            .field(
                "vendor_id",
                &format_args!("{:#06x}", self.word(REG_VENDOR_ID)),
            )
            .field(
                "device_id",
                &format_args!("{:#06x}", self.word(REG_DEVICE_ID)),
            )
            .finish_non_exhaustive()
    }
}

impl ConfigSpace {
    /// A type-0 header with `identity` and QEMU's default masks (`pci_init_wmask`): in the
    /// header only the command bits of [`COMMAND_WRITABLE`], the cache line size and the
    /// interrupt line are writable; every device-specific byte (0x40–0xFF) is writable and 0
    /// until the device says otherwise.
    pub fn new(identity: &PciIdentity) -> ConfigSpace {
        let mut space = ConfigSpace {
            bytes: [0; CONFIG_SPACE_BYTES],
            wmask: [0; CONFIG_SPACE_BYTES],
        };
        space.set_word(REG_VENDOR_ID, identity.vendor_id);
        space.set_word(REG_DEVICE_ID, identity.device_id);
        space.set_byte(REG_REVISION_ID, identity.revision_id);
        let [prog_if, sub_class, class, _] = identity.class_code.to_le_bytes();
        space.set_byte(REG_CLASS_CODE, prog_if);
        space.set_byte(REG_CLASS_CODE + 1, sub_class);
        space.set_byte(REG_CLASS_CODE + 2, class);
        space.set_byte(REG_HEADER_TYPE, identity.header_type);
        space.set_word(REG_SUBSYSTEM_VENDOR_ID, identity.subsystem_vendor_id);
        space.set_word(REG_SUBSYSTEM_ID, identity.subsystem_id);
        let [command_lo, command_hi] = COMMAND_WRITABLE.to_le_bytes();
        space.set_wmask(REG_COMMAND, command_lo);
        space.set_wmask(REG_COMMAND + 1, command_hi);
        space.set_wmask(REG_CACHE_LINE_SIZE, 0xFF);
        space.set_wmask(REG_INTERRUPT_LINE, 0xFF);
        for mask in space.wmask.iter_mut().skip(CONFIG_HEADER_BYTES) {
            *mask = 0xFF;
        }
        space
    }

    /// The bytes an access of `width` at `register` touches, cut short at 0xFF.
    pub fn span(register: u8, width: AccessWidth) -> Range<usize> {
        let start = usize::from(register);
        let end = (start + width.bytes() as usize).min(CONFIG_SPACE_BYTES);
        start..end
    }

    /// Reads `width` bytes at `register`, little-endian; bytes past 0xFF read 0.
    pub fn read(&self, register: u8, width: AccessWidth) -> u32 {
        Self::span(register, width)
            .rev()
            .filter_map(|i| self.bytes.get(i))
            .fold(0, |value, &byte| (value << 8) | u32::from(byte))
    }

    /// Writes `width` bytes of `value` at `register` through the write mask: each bit lands
    /// only where the mask has a 1 (QEMU `pci_default_write_config`). Bytes past 0xFF are
    /// dropped. Returns the bytes the access covered, for the device's "did this touch
    /// register X" checks.
    pub fn write(&mut self, register: u8, width: AccessWidth, value: u32) -> Range<usize> {
        let span = Self::span(register, width);
        for (shift, i) in span.clone().enumerate() {
            let new = (value >> (8 * shift)) as u8;
            if let (Some(byte), Some(&mask)) = (self.bytes.get_mut(i), self.wmask.get(i)) {
                *byte = (*byte & !mask) | (new & mask);
            }
        }
        span
    }

    /// The byte at `register`.
    pub fn byte(&self, register: u8) -> u8 {
        self.bytes
            .get(usize::from(register))
            .copied()
            .unwrap_or_default()
    }

    /// Sets the byte at `register`, ignoring the write mask (device logic, reset).
    pub fn set_byte(&mut self, register: u8, value: u8) {
        if let Some(byte) = self.bytes.get_mut(usize::from(register)) {
            *byte = value;
        }
    }

    /// The little-endian word at `register` (bytes past 0xFF read 0).
    pub fn word(&self, register: u8) -> u16 {
        self.read(register, AccessWidth::Word) as u16
    }

    /// Sets the little-endian word at `register`, ignoring the write mask.
    pub fn set_word(&mut self, register: u8, value: u16) {
        let [lo, hi] = value.to_le_bytes();
        self.set_byte(register, lo);
        self.set_byte(register.wrapping_add(1), hi);
    }

    /// The little-endian dword at `register` (bytes past 0xFF read 0).
    pub fn dword(&self, register: u8) -> u32 {
        self.read(register, AccessWidth::Dword)
    }

    /// Sets the little-endian dword at `register`, ignoring the write mask.
    pub fn set_dword(&mut self, register: u8, value: u32) {
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            self.set_byte(register.wrapping_add(i as u8), byte);
        }
    }

    /// The write mask of the byte at `register`.
    pub fn wmask(&self, register: u8) -> u8 {
        self.wmask
            .get(usize::from(register))
            .copied()
            .unwrap_or_default()
    }

    /// Sets the write mask of the byte at `register`: which of its bits a guest write may
    /// change.
    pub fn set_wmask(&mut self, register: u8, mask: u8) {
        if let Some(m) = self.wmask.get_mut(usize::from(register)) {
            *m = mask;
        }
    }
}

/// Whether the bytes `touched` overlap the `len_bytes` bytes starting at `register`
/// (QEMU `ranges_overlap`, used by every `config_write` hook).
pub fn touches(touched: &Range<usize>, register: u8, len_bytes: usize) -> bool {
    let start = usize::from(register);
    touched.start < start + len_bytes && start < touched.end
}

/// The host bridge's configuration mechanism #1: the latched CONFIG_ADDRESS and the
/// decoding of the two windows. The functions themselves live with their devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigMechanism {
    address: u32,
    ignored_accesses: u64,
}

impl ConfigMechanism {
    /// The mechanism after reset: CONFIG_ADDRESS 0, so data accesses are disabled.
    pub fn new() -> ConfigMechanism {
        ConfigMechanism::default()
    }

    /// The latched CONFIG_ADDRESS.
    pub fn address(&self) -> u32 {
        self.address
    }

    /// Hard reset: CONFIG_ADDRESS back to 0. The counter is a run statistic and stays.
    pub fn reset(&mut self) {
        self.address = 0;
    }

    /// How many accesses were rejected or dropped: odd widths at 0xCF8, misaligned accesses.
    pub fn ignored_accesses(&self) -> u64 {
        self.ignored_accesses
    }

    fn count_ignored(&mut self) {
        self.ignored_accesses = self.ignored_accesses.saturating_add(1);
    }

    /// Whether an access of `width` at `offset` into a 4-port window is naturally aligned
    /// and inside it, as QEMU's memory core requires when `valid.unaligned` is false.
    fn aligned(offset: u16, width: AccessWidth) -> bool {
        let bytes = width.bytes() as u16;
        offset % bytes == 0 && offset.checked_add(bytes).is_some_and(|end| end <= 4)
    }

    /// `IN` at `offset` (0–3) into the CONFIG_ADDRESS window.
    pub fn address_read(&mut self, offset: u16, width: AccessWidth) -> u32 {
        if !Self::aligned(offset, width) {
            self.count_ignored();
            return 0;
        }
        match (offset, width) {
            (0, AccessWidth::Dword) => self.address,
            // `pci_host_config_read`: anything but a dword at 0 returns −1.
            _ => {
                self.count_ignored();
                width.all_ones()
            }
        }
    }

    /// `OUT` at `offset` (0–3) into the CONFIG_ADDRESS window: only a dword at 0xCF8
    /// latches.
    pub fn address_write(&mut self, offset: u16, width: AccessWidth, value: u32) {
        match (offset, width) {
            (0, AccessWidth::Dword) => self.address = value,
            _ => self.count_ignored(),
        }
    }

    /// Where an access of `width` at `offset` (0–3) into the data window goes. Counts a
    /// misaligned access.
    pub fn data_target(&mut self, offset: u16, width: AccessWidth) -> DataTarget {
        if !Self::aligned(offset, width) {
            self.count_ignored();
            return DataTarget::Misaligned;
        }
        if self.address & CONFIG_ADDRESS_ENABLE == 0 {
            return DataTarget::Disabled;
        }
        // QEMU: `pci_data_read(bus, config_reg | (addr & 3), len)`, then `& 0xFF`.
        let register = (self.address | u32::from(offset & 3)) as u8;
        DataTarget::Register {
            function: PciAddress::from_config_address(self.address),
            register,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> PciIdentity {
        PciIdentity {
            vendor_id: VENDOR_INTEL,
            device_id: 0x1234,
            revision_id: 7,
            class_code: 0x06_01_00,
            header_type: HEADER_TYPE_MULTI_FUNCTION,
            subsystem_vendor_id: SUBSYSTEM_VENDOR_QEMU,
            subsystem_id: SUBSYSTEM_ID_QEMU,
        }
    }

    #[test]
    fn header_reads_back_little_endian_and_ignores_writes_to_ids() {
        let mut space = ConfigSpace::new(&identity());
        assert_eq!(space.read(0x00, AccessWidth::Dword), 0x1234_8086);
        assert_eq!(space.read(0x08, AccessWidth::Dword), 0x0601_0007);
        assert_eq!(space.read(0x0E, AccessWidth::Byte), 0x80);
        assert_eq!(space.read(0x2C, AccessWidth::Dword), 0x1100_1AF4);
        space.write(0x00, AccessWidth::Dword, 0);
        assert_eq!(space.read(0x00, AccessWidth::Dword), 0x1234_8086);
        // Command: only the QEMU-writable bits stick.
        space.write(REG_COMMAND, AccessWidth::Word, 0xFFFF);
        assert_eq!(space.word(REG_COMMAND), COMMAND_WRITABLE);
        // Device-specific bytes are plain storage by default.
        space.write(0x80, AccessWidth::Dword, 0xDEAD_BEEF);
        assert_eq!(space.read(0x81, AccessWidth::Word), 0xADBE);
    }

    #[test]
    fn accesses_past_register_ff_are_cut_short() {
        let mut space = ConfigSpace::new(&identity());
        let touched = space.write(0xFE, AccessWidth::Dword, 0xAABB_CCDD);
        assert_eq!(touched, 0xFE..0x100);
        assert_eq!(space.read(0xFE, AccessWidth::Dword), 0xCCDD);
        assert_eq!(space.read(0xFF, AccessWidth::Word), 0xCC);
    }

    #[test]
    fn touches_is_range_overlap() {
        assert!(touches(&(0x9C..0xA0), 0x9D, 2));
        assert!(!touches(&(0x9C..0x9D), 0x9D, 2));
        assert!(touches(&(0x9E..0x9F), 0x9D, 2));
        assert!(!touches(&(0x9F..0xA0), 0x9D, 2));
    }

    #[test]
    fn address_register_latches_dwords_only() {
        let mut m = ConfigMechanism::new();
        m.address_write(0, AccessWidth::Dword, 0x8000_F8A0);
        assert_eq!(m.address_read(0, AccessWidth::Dword), 0x8000_F8A0);
        m.address_write(0, AccessWidth::Word, 0x1234);
        m.address_write(2, AccessWidth::Byte, 0x12);
        assert_eq!(m.address(), 0x8000_F8A0);
        assert_eq!(m.address_read(0, AccessWidth::Byte), 0xFF);
        assert_eq!(m.address_read(2, AccessWidth::Word), 0xFFFF);
        // Misaligned: rejected by the memory core, reads 0.
        assert_eq!(m.address_read(2, AccessWidth::Dword), 0);
        assert_eq!(m.ignored_accesses(), 5);
    }

    #[test]
    fn data_target_decodes_bus_device_function_and_register() {
        let mut m = ConfigMechanism::new();
        assert_eq!(m.data_target(0, AccessWidth::Dword), DataTarget::Disabled);
        m.address_write(0, AccessWidth::Dword, 0x8000_F8A0);
        assert_eq!(
            m.data_target(2, AccessWidth::Word),
            DataTarget::Register {
                function: PciAddress::new(0, 0x1F, 0),
                register: 0xA2
            }
        );
        assert_eq!(m.data_target(1, AccessWidth::Word), DataTarget::Misaligned);
        assert_eq!(m.data_target(2, AccessWidth::Dword), DataTarget::Misaligned);
        // Bits 1:0 of CONFIG_ADDRESS are ORed in, as QEMU does.
        m.address_write(0, AccessWidth::Dword, 0x8000_009D);
        assert_eq!(
            m.data_target(0, AccessWidth::Byte),
            DataTarget::Register {
                function: PciAddress::new(0, 0, 0),
                register: 0x9D
            }
        );
    }
}
