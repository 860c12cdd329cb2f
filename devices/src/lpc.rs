//! The ICH9 LPC bridge's configuration space (PCI 0:1f.0): where firmware places the ACPI
//! PM block (PMBASE), switches it on (ACPI_CNTL), and locks SMI enabling (SMI_LOCK).
//!
//! Follows QEMU `hw/isa/lpc_ich9.c` (`ich9_lpc_realize`, `ich9_lpc_config_write`,
//! `ich9_lpc_pmbase_sci_update`, `ich9_lpc_pmcon_update`, `ich9_lpc_reset`) with the
//! constants of `include/hw/southbridge/ich9.h`.
//!
//! ```text
//! reg        width  name         reset       guest-writable bits
//! 0x00-0x3F         header       8086:2918, class 0x060100, rev 2, multi-function,
//!                                subsystem 1AF4:1100
//! 0x40       32     PMBASE       0x00000001  0x0000FF87 (base = bits 15:7)
//! 0x44       8      ACPI_CNTL    0x00        all; bit 7 ACPI_EN decodes the PM block
//! 0x60-0x63  8 × 4  PIRQA-D_ROUT 0x80        all (stored; interrupts are not modelled)
//! 0x68-0x6B  8 × 4  PIRQE-H_ROUT 0x80        all (stored)
//! 0xA0       16     GEN_PMCON_1  0x0000      all; bit 4 SMI_LOCK sticks once set
//! 0xF0       32     RCBA         0x00000000  all (stored; the RCRB is not mapped)
//! other 0x40-0xFF   storage      0           all
//!
//! PMBASE (0x40)                        ACPI_CNTL (0x44)        GEN_PMCON_1 (0xA0)
//!  31..16  15..7   6..3   2..1  0       7        6..3  2..0      15..5  4         3..0
//! +------+-------+------+-----+---+   +--------+----+-------+   +-----+----------+-----+
//! | rsvd | base  | rsvd | (w) |RTE|   |ACPI_EN |rsvd|SCI_SEL|   |other| SMI_LOCK |other|
//! +------+-------+------+-----+---+   +--------+----+-------+   +-----+----------+-----+
//! ```
//!
//! 1. The PM block is decoded at PMBASE bits 15:7 while ACPI_EN is set and that base is
//!    not 0 ([`Lpc::pm_base`]); the chipset routes its 128 ports there.
//! 2. SMI_LOCK, once set, cannot be cleared and freezes SMI_EN.GBL_SMI_EN in the PM block
//!    until hard reset; the chipset applies that after every LPC write.
//!
//! Where sources disagree:
//! - PMBASE's writable bits are QEMU's, 0xFF87: `ich9_lpc_realize` writes the ACPI_CNTL
//!   mask (ACPI_EN | SCI_IRQ_SEL) onto PMBASE's first byte, so bits 2:0 and the RTE bit
//!   (bit 0, hardwired 1 on the ICH9) are writable there. The base is masked to 15:7
//!   either way; smmsim follows QEMU so read-backs match under differential tests.
//! - A hard reset puts every register back to its power-on value. QEMU's `ich9_lpc_reset`
//!   resets only PIRQ routing, ACPI_CNTL, PMBASE and RCBA: GEN_PMCON_1 keeps SMI_LOCK set
//!   across a reboot (while `pm_reset` unfreezes GBL_SMI_EN anyway). The ICH9 datasheet
//!   resets these registers with the platform, as smmsim does.

use crate::access::AccessWidth;
use crate::pci::{
    touches, ConfigSpace, PciAddress, PciIdentity, HEADER_TYPE_MULTI_FUNCTION, SUBSYSTEM_ID_QEMU,
    SUBSYSTEM_VENDOR_QEMU, VENDOR_INTEL,
};

/// The LPC bridge's configuration space.
///
/// Exists so PMBASE, ACPI_CNTL and SMI_LOCK behave as under QEMU and the chipset can ask
/// where the PM block is and whether SMI enabling is locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lpc {
    config: ConfigSpace,
}

impl Lpc {
    /// Where the LPC bridge sits on the bus (QEMU `ICH9_LPC_DEV`, `ICH9_LPC_FUNC`).
    pub const ADDRESS: PciAddress = PciAddress::new(0, 0x1F, 0);
    /// ICH9 LPC interface device ID (`PCI_DEVICE_ID_INTEL_ICH9_8`).
    pub const DEVICE_ID: u16 = 0x2918;
    /// Revision ID (`ICH9_A2_LPC_REVISION`).
    pub const REVISION_ID: u8 = 0x02;
    /// ISA bridge class code (`PCI_CLASS_BRIDGE_ISA`).
    pub const CLASS_CODE: u32 = 0x06_01_00;
    /// The header identity; multi-function, as QEMU's q35 creates it.
    pub const IDENTITY: PciIdentity = PciIdentity {
        vendor_id: VENDOR_INTEL,
        device_id: Self::DEVICE_ID,
        revision_id: Self::REVISION_ID,
        class_code: Self::CLASS_CODE,
        header_type: HEADER_TYPE_MULTI_FUNCTION,
        subsystem_vendor_id: SUBSYSTEM_VENDOR_QEMU,
        subsystem_id: SUBSYSTEM_ID_QEMU,
    };

    /// PMBASE (`ICH9_LPC_PMBASE`), 32-bit.
    pub const REG_PMBASE: u8 = 0x40;
    /// PMBASE bits holding the I/O base (`ICH9_LPC_PMBASE_BASE_ADDRESS_MASK`).
    pub const PMBASE_ADDRESS_MASK: u32 = 0xFF80;
    /// PMBASE bit 0: resource type indicator, I/O (`ICH9_LPC_PMBASE_RTE`).
    pub const PMBASE_RTE: u32 = 0x1;
    /// PMBASE's guest-writable bits as QEMU leaves them (see the module doc).
    pub const PMBASE_WMASK: u32 = 0xFF87;
    /// ACPI control (`ICH9_LPC_ACPI_CTRL`).
    pub const REG_ACPI_CTRL: u8 = 0x44;
    /// ACPI_CNTL bit 7: decode the PM block (`ICH9_LPC_ACPI_CTRL_ACPI_EN`).
    pub const ACPI_CTRL_ACPI_EN: u8 = 0x80;
    /// ACPI_CNTL bits 2:0: SCI IRQ select (stored; SCI is not modelled).
    pub const ACPI_CTRL_SCI_IRQ_SEL_MASK: u8 = 0x07;
    /// PIRQA–D routing (`ICH9_LPC_PIRQA_ROUT`), four bytes.
    pub const REG_PIRQA_ROUT: u8 = 0x60;
    /// PIRQE–H routing (`ICH9_LPC_PIRQE_ROUT`), four bytes.
    pub const REG_PIRQE_ROUT: u8 = 0x68;
    /// PIRQ routing after reset: routing disabled (`ICH9_LPC_PIRQ_ROUT_DEFAULT`).
    pub const PIRQ_ROUT_DEFAULT: u8 = 0x80;
    /// General PM configuration 1 (`ICH9_LPC_GEN_PMCON_1`), 16-bit.
    pub const REG_GEN_PMCON_1: u8 = 0xA0;
    /// GEN_PMCON_1 bit 4: lock SMI_EN.GBL_SMI_EN (`ICH9_LPC_GEN_PMCON_1_SMI_LOCK`).
    pub const GEN_PMCON_1_SMI_LOCK: u8 = 1 << 4;
    /// Root complex base address (`ICH9_LPC_RCBA`); stored only.
    pub const REG_RCBA: u8 = 0xF0;

    /// The LPC bridge in its reset state.
    pub fn new() -> Lpc {
        let mut lpc = Lpc {
            config: ConfigSpace::new(&Self::IDENTITY),
        };
        lpc.reset();
        lpc
    }

    /// Hard reset: every register to its power-on value (see the module doc).
    pub fn reset(&mut self) {
        self.config = ConfigSpace::new(&Self::IDENTITY);
        self.config.set_dword(Self::REG_PMBASE, Self::PMBASE_RTE);
        for (i, mask) in Self::PMBASE_WMASK.to_le_bytes().into_iter().enumerate() {
            self.config.set_wmask(Self::REG_PMBASE + i as u8, mask);
        }
        for i in 0..4 {
            self.config
                .set_byte(Self::REG_PIRQA_ROUT + i, Self::PIRQ_ROUT_DEFAULT);
            self.config
                .set_byte(Self::REG_PIRQE_ROUT + i, Self::PIRQ_ROUT_DEFAULT);
        }
    }

    /// Reads `width` bytes of configuration space at `register`.
    pub fn config_read(&self, register: u8, width: AccessWidth) -> u32 {
        self.config.read(register, width)
    }

    /// Writes `width` bytes of `value` at `register`; a write that sets SMI_LOCK makes it
    /// stick (QEMU `ich9_lpc_pmcon_update`).
    pub fn config_write(&mut self, register: u8, width: AccessWidth, value: u32) {
        let touched = self.config.write(register, width, value);
        if touches(&touched, Self::REG_GEN_PMCON_1, 8) && self.smi_lock() {
            let mask = self.config.wmask(Self::REG_GEN_PMCON_1);
            self.config
                .set_wmask(Self::REG_GEN_PMCON_1, mask & !Self::GEN_PMCON_1_SMI_LOCK);
        }
    }

    /// The PM block's I/O base while it is decoded: ACPI_EN set and PMBASE bits 15:7 not 0
    /// (QEMU disables the block for a base of 0).
    pub fn pm_base(&self) -> Option<u16> {
        let enabled = self.config.byte(Self::REG_ACPI_CTRL) & Self::ACPI_CTRL_ACPI_EN != 0;
        let base = self.config.dword(Self::REG_PMBASE) & Self::PMBASE_ADDRESS_MASK;
        (enabled && base != 0).then_some(base as u16)
    }

    /// Whether GEN_PMCON_1.SMI_LOCK is set.
    pub fn smi_lock(&self) -> bool {
        self.config.byte(Self::REG_GEN_PMCON_1) & Self::GEN_PMCON_1_SMI_LOCK != 0
    }
}

impl Default for Lpc {
    fn default() -> Lpc {
        Lpc::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_reset_values() {
        let lpc = Lpc::new();
        assert_eq!(lpc.config_read(0x00, AccessWidth::Dword), 0x2918_8086);
        assert_eq!(lpc.config_read(0x08, AccessWidth::Dword), 0x0601_0002);
        assert_eq!(lpc.config_read(0x0E, AccessWidth::Byte), 0x80);
        assert_eq!(lpc.config_read(Lpc::REG_PMBASE, AccessWidth::Dword), 1);
        assert_eq!(lpc.config_read(0x60, AccessWidth::Dword), 0x8080_8080);
        assert_eq!(lpc.pm_base(), None);
    }

    #[test]
    fn pm_block_is_decoded_with_acpi_en_and_a_non_zero_base() {
        let mut lpc = Lpc::new();
        lpc.config_write(Lpc::REG_PMBASE, AccessWidth::Dword, 0xFFFF_0601);
        // Bits 31:16 and 6:3 are read-only; QEMU lets bits 2:0 through.
        assert_eq!(lpc.config_read(Lpc::REG_PMBASE, AccessWidth::Dword), 0x0601);
        assert_eq!(lpc.pm_base(), None, "ACPI_EN still clear");
        lpc.config_write(Lpc::REG_ACPI_CTRL, AccessWidth::Byte, 0x80);
        assert_eq!(lpc.pm_base(), Some(0x600));
        lpc.config_write(Lpc::REG_PMBASE, AccessWidth::Word, 0x0000);
        assert_eq!(lpc.pm_base(), None, "a base of 0 disables the block");
    }

    #[test]
    fn smi_lock_sticks_until_reset() {
        let mut lpc = Lpc::new();
        lpc.config_write(Lpc::REG_GEN_PMCON_1, AccessWidth::Word, 0x0010);
        assert!(lpc.smi_lock());
        lpc.config_write(Lpc::REG_GEN_PMCON_1, AccessWidth::Word, 0x0003);
        assert!(lpc.smi_lock());
        assert_eq!(
            lpc.config_read(Lpc::REG_GEN_PMCON_1, AccessWidth::Word),
            0x0013
        );
        lpc.reset();
        assert!(!lpc.smi_lock());
        lpc.config_write(Lpc::REG_GEN_PMCON_1, AccessWidth::Word, 0x0003);
        assert!(!lpc.smi_lock());
    }
}
