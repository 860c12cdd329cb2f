//! The reset control register (port 0xCF9): how firmware reboots the machine or sends INIT
//! to the CPUs.
//!
//! QEMU `hw/isa/lpc_ich9.c` (`ich9_rst_cnt_write`, `ich9_rst_cnt_read`) maps a one-port
//! region here at priority 1 over the PCI CONFIG_ADDRESS window, so a byte (or wider)
//! access whose first port is 0xCF9 lands here, while a dword at 0xCF8 still reaches
//! CONFIG_ADDRESS.
//!
//! ```text
//! RST_CNT (0xCF9)
//!    7 .. 4      3          2         1         0
//! +---------+----------+---------+---------+------+
//! |  rsvd   | FULL_RST | RST_CPU | SYS_RST | rsvd |
//! +---------+----------+---------+---------+------+
//!
//! write                         datasheet profile          qemu profile
//! RST_CPU with SYS_RST/FULL_RST hard reset (0x06, 0x0E)    hard reset
//! RST_CPU alone                 soft reset: INIT (0x04)    hard reset
//! no RST_CPU                    keep SYS_RST, FULL_RST     keep SYS_RST, FULL_RST
//! read: the kept bits (SYS_RST | FULL_RST), zero-extended to the access width
//! ```
//!
//! 1. A write with RST_CPU pushes [`Effect::Reset`]. It does not reset the chipset: the
//!    simulator carries out the effect, and for a hard reset calls
//!    [`crate::Q35Chipset::reset`] with the rest of the machine.
//! 2. Otherwise the write keeps bits 3 and 1 (`rst_cnt = val & 0xA`).
//! 3. QEMU requests a full system reset for any RST_CPU write
//!    (`qemu_system_reset_request`), 0x04 included; the ICH9 datasheet makes RST_CPU
//!    without SYS_RST a soft reset — INIT to the CPUs, chipset untouched — which is what
//!    PLATFORM.md specifies. [`ChipsetProfile::Datasheet`] (default) follows the datasheet,
//!    [`ChipsetProfile::Qemu`] QEMU. The datasheet triggers on a 0-to-1 edge of RST_CPU;
//!    smmsim, like QEMU, on every write with the bit set, and does not store it.

use crate::chipset::ChipsetProfile;
use crate::effect::Effect;

/// The reset control register.
///
/// Exists so firmware's reboot request (and the INIT-only soft reset) reaches the
/// simulator as an effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetControl {
    value: u8,
}

impl ResetControl {
    /// The register's port (QEMU `ICH9_RST_CNT_IOPORT`).
    pub const PORT: u16 = 0x0CF9;
    /// Bit 1: with RST_CPU, a hard (system) reset.
    pub const SYS_RST: u8 = 1 << 1;
    /// Bit 2: start a reset.
    pub const RST_CPU: u8 = 1 << 2;
    /// Bit 3: with RST_CPU, a full reset (power cycle); smmsim treats it as hard.
    pub const FULL_RST: u8 = 1 << 3;
    /// The bits a write keeps.
    pub const KEPT_BITS: u8 = Self::SYS_RST | Self::FULL_RST;

    /// The register after reset: 0.
    pub fn new() -> ResetControl {
        ResetControl::default()
    }

    /// Hard reset: 0 (QEMU `ich9_lpc_reset`: `rst_cnt = 0`).
    pub fn reset(&mut self) {
        self.value = 0;
    }

    /// `IN` at 0xCF9, any width: the kept bits.
    pub fn read(&self) -> u32 {
        u32::from(self.value)
    }

    /// `OUT` of `value` at 0xCF9, any width; a reset request becomes [`Effect::Reset`].
    pub fn write(&mut self, value: u32, profile: ChipsetProfile, effects: &mut Vec<Effect>) {
        let [byte, ..] = value.to_le_bytes();
        if byte & Self::RST_CPU != 0 {
            let hard = match profile {
                ChipsetProfile::Datasheet => byte & Self::KEPT_BITS != 0,
                ChipsetProfile::Qemu => true,
            };
            effects.push(Effect::Reset { hard });
        }
        self.value = byte & Self::KEPT_BITS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(value: u32, profile: ChipsetProfile) -> (Vec<Effect>, u32) {
        let mut rc = ResetControl::new();
        let mut effects = Vec::new();
        rc.write(value, profile, &mut effects);
        (effects, rc.read())
    }

    #[test]
    fn datasheet_values() {
        let d = ChipsetProfile::Datasheet;
        assert_eq!(write(0x06, d), (vec![Effect::Reset { hard: true }], 0x02));
        assert_eq!(write(0x0E, d), (vec![Effect::Reset { hard: true }], 0x0A));
        assert_eq!(write(0x04, d), (vec![Effect::Reset { hard: false }], 0x00));
        assert_eq!(write(0x02, d), (vec![], 0x02));
        assert_eq!(write(0xFB, d), (vec![], 0x0A));
    }

    #[test]
    fn qemu_resets_the_machine_for_any_rst_cpu() {
        let q = ChipsetProfile::Qemu;
        assert_eq!(write(0x04, q).0, [Effect::Reset { hard: true }]);
        assert_eq!(write(0x06, q).0, [Effect::Reset { hard: true }]);
        assert_eq!(write(0x0A, q), (vec![], 0x0A));
    }

    #[test]
    fn wide_writes_use_the_low_byte() {
        let d = ChipsetProfile::Datasheet;
        assert_eq!(write(0x0400, d), (vec![], 0));
        assert_eq!(write(0xFF06, d).0, [Effect::Reset { hard: true }]);
    }
}
