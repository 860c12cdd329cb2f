//! The ICH9 ACPI power-management I/O block: where firmware enables SMIs (SMI_EN), sees why
//! one happened (SMI_STS), and where the CPU hot-plug event is flagged (GPE0_STS bit 2).
//!
//! The block is 128 ports at PMBASE (LPC reg 0x40), decoded only while LPC reg 0x44 bit 7
//! (ACPI_EN) is set and the base is not 0 (QEMU `ich9_lpc_pmbase_sci_update`,
//! `ich9_pm_iospace_update`). Registers as QEMU `hw/acpi/ich9.c` (`ich9_pm_init`,
//! `ich9_smi_readl`/`_writel`, `pm_reset`) and `hw/acpi/core.c` (PM1, PM timer, GPE).
//!
//! ```text
//! off        width  name      read                          write
//! 0x00       16     PM1_STS   status (nothing sets it)      1 clears the bit
//! 0x02       16     PM1_EN    as written                    stored
//! 0x04       16     PM1_CNT   SCI_EN (bit 0), SLP_TYP       stored; SLP_EN (bit 13) dropped,
//!                                                           sleep not modelled (counted)
//! 0x08       32     PM_TMR    24-bit count, 3.579545 MHz    ignored
//! 0x20-0x27  64     GPE0_STS  status; bit 2 CPU hot-plug    1 clears the bit
//! 0x28-0x2F  64     GPE0_EN   as written                    stored
//! 0x30       32     SMI_EN    as written                    stored; bit 0 frozen by SMI_LOCK
//! 0x34       32     SMI_STS   status; bit 5 APM_STS         datasheet: 1 clears; qemu: ignored
//! other             all ones                                dropped (TCO at 0x60 not modelled)
//!
//! SMI_EN (+0x30)                                   SMI_STS (+0x34)
//!  31 .. 6     5        4 .. 1     0                31 .. 6     5       4 .. 0
//! +--------+---------+--------+------------+      +--------+---------+--------+
//! | other  | APMC_EN | other  | GBL_SMI_EN |      | other  | APM_STS | other  |
//! +--------+---------+--------+------------+      +--------+---------+--------+
//! ```
//!
//! 1. SMI_EN and SMI_STS take aligned dword accesses only (QEMU `ich9_smi_ops`:
//!    `valid.min_access_size = valid.max_access_size = 4`); anything else in 0x30–0x37
//!    reads 0 and is dropped, counted.
//! 2. Every other register is reached byte by byte, whatever the access width, as QEMU's
//!    GPE block (`impl.max_access_size = 1`); a byte outside a register reads 0xFF.
//! 3. SMI_EN keeps all 32 bits as written (QEMU `smi_en_wmask` = ~0) until SMI_LOCK in
//!    LPC GEN_PMCON_1 is set; from then on GBL_SMI_EN keeps its value until hard reset
//!    (`ich9_lpc_pmcon_update`: `smi_en_wmask &= ~1`).
//! 4. APM_STS is set by the APM device (apm.rs) when a control write meets APMC_EN, in the
//!    datasheet profile only: QEMU never sets SMI_STS for APM and ignores writes to it
//!    (`smi_sts_wmask` = 0).
//! 5. PM_TMR counts 3,579,545 Hz ticks of simulated time, derived from the accessing
//!    core's cycle counter and the core clock, modulo 2^24 (QEMU `acpi_pm_tmr_get`).

use smmsim_traces::Cycle;

use crate::access::AccessWidth;
use crate::chipset::ChipsetProfile;

/// The PM timer's frequency (ACPI `PM_TIMER_FREQUENCY`).
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// The ACPI PM block's registers.
///
/// Exists so SMI enabling, SMI status and GPE0 status behave as firmware expects, wherever
/// PMBASE puts the block; the chipset decides whether a port is in the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmBlock {
    profile: ChipsetProfile,
    clock_hz: u64,
    pm1_sts: u16,
    pm1_en: u16,
    pm1_cnt: u16,
    gpe0_sts: [u8; 8],
    gpe0_en: [u8; 8],
    smi_en: u32,
    smi_sts: u32,
    gbl_smi_en_locked: bool,
    ignored_accesses: u64,
}

impl PmBlock {
    /// Ports in the block (QEMU `ICH9_PMIO_SIZE`); PMBASE is aligned to it.
    pub const WINDOW_LEN: u16 = 128;
    /// Offset of PM1_STS.
    pub const REG_PM1_STS: u16 = 0x00;
    /// Offset of PM1_EN.
    pub const REG_PM1_EN: u16 = 0x02;
    /// Offset of PM1_CNT.
    pub const REG_PM1_CNT: u16 = 0x04;
    /// Offset of PM_TMR.
    pub const REG_PM_TMR: u16 = 0x08;
    /// Offset of GPE0_STS (QEMU `ICH9_PMIO_GPE0_STS`).
    pub const REG_GPE0_STS: u16 = 0x20;
    /// Offset of GPE0_EN (QEMU `ICH9_PMIO_GPE0_EN`).
    pub const REG_GPE0_EN: u16 = 0x28;
    /// Offset of SMI_EN (QEMU `ICH9_PMIO_SMI_EN`).
    pub const REG_SMI_EN: u16 = 0x30;
    /// Offset of SMI_STS (QEMU `ICH9_PMIO_SMI_STS`).
    pub const REG_SMI_STS: u16 = 0x34;

    /// PM1_CNT bit 0: SCI instead of SMI for ACPI events; toggled by APM commands 2/3.
    pub const PM1_CNT_SCI_EN: u16 = 1 << 0;
    /// PM1_CNT bit 13: enter the sleep state in SLP_TYP (write-only; not modelled).
    pub const PM1_CNT_SLP_EN: u16 = 1 << 13;
    /// GPE0_STS bit 2: a CPU hot-plug event is pending (QEMU `ACPI_CPU_HOTPLUG_STATUS`).
    pub const GPE0_CPU_HOTPLUG: u64 = 1 << 2;
    /// SMI_EN bit 0: SMIs are generated at all.
    pub const SMI_EN_GBL_SMI_EN: u32 = 1 << 0;
    /// SMI_EN bit 5: a write to APM control (0xB2) generates an SMI.
    pub const SMI_EN_APMC_EN: u32 = 1 << 5;
    /// SMI_STS bit 5: an APM control write caused an SMI.
    pub const SMI_STS_APM_STS: u32 = 1 << 5;

    /// A block in its reset state for `profile`, with a PM timer driven by a core clock of
    /// `clock_hz` (0 stops the timer at 0).
    pub fn new(profile: ChipsetProfile, clock_hz: u64) -> PmBlock {
        PmBlock {
            profile,
            clock_hz,
            pm1_sts: 0,
            pm1_en: 0,
            pm1_cnt: 0,
            gpe0_sts: [0; 8],
            gpe0_en: [0; 8],
            smi_en: 0,
            smi_sts: 0,
            gbl_smi_en_locked: false,
            ignored_accesses: 0,
        }
    }

    /// Hard reset (QEMU `pm_reset` with SMM on): everything 0, GBL_SMI_EN unlocked.
    pub fn reset(&mut self) {
        *self = PmBlock {
            ignored_accesses: self.ignored_accesses,
            ..PmBlock::new(self.profile, self.clock_hz)
        };
    }

    /// SMI_EN as written.
    pub fn smi_en(&self) -> u32 {
        self.smi_en
    }

    /// SMI_STS.
    pub fn smi_sts(&self) -> u32 {
        self.smi_sts
    }

    /// PM1_CNT.
    pub fn pm1_cnt(&self) -> u16 {
        self.pm1_cnt
    }

    /// GPE0_STS as one 64-bit value.
    pub fn gpe0_sts(&self) -> u64 {
        u64::from_le_bytes(self.gpe0_sts)
    }

    /// GPE0_EN as one 64-bit value.
    pub fn gpe0_en(&self) -> u64 {
        u64::from_le_bytes(self.gpe0_en)
    }

    /// Whether SMI_LOCK has frozen GBL_SMI_EN.
    pub fn gbl_smi_en_locked(&self) -> bool {
        self.gbl_smi_en_locked
    }

    /// How many accesses were rejected or dropped (odd SMI-register accesses, writes to
    /// read-only bytes and holes, sleep requests).
    pub fn ignored_accesses(&self) -> u64 {
        self.ignored_accesses
    }

    /// SMI_LOCK was set in LPC GEN_PMCON_1: GBL_SMI_EN keeps its value until hard reset.
    pub fn lock_gbl_smi_en(&mut self) {
        self.gbl_smi_en_locked = true;
    }

    /// Sets SMI_STS bits (an SMI source fired).
    pub fn set_smi_status(&mut self, bits: u32) {
        self.smi_sts |= bits;
    }

    /// Sets GPE0_STS bits (a general-purpose event is pending).
    pub fn set_gpe0_status(&mut self, bits: u64) {
        self.gpe0_sts = (self.gpe0_sts() | bits).to_le_bytes();
    }

    /// Sets or clears PM1_CNT.SCI_EN: APM commands 2 and 3 (QEMU `acpi_pm1_cnt_update`).
    pub fn set_sci_enabled(&mut self, enabled: bool) {
        if enabled {
            self.pm1_cnt |= Self::PM1_CNT_SCI_EN;
        } else {
            self.pm1_cnt &= !Self::PM1_CNT_SCI_EN;
        }
    }

    fn count_ignored(&mut self) {
        self.ignored_accesses = self.ignored_accesses.saturating_add(1);
    }

    /// Whether `offset` lies in the SMI register pair.
    fn in_smi_registers(offset: u16) -> bool {
        (Self::REG_SMI_EN..Self::REG_SMI_STS + 4).contains(&offset)
    }

    /// `IN` of `width` at `offset` into the block; `cycle` is the accessing core's, for the
    /// PM timer.
    pub fn read(&mut self, offset: u16, width: AccessWidth, cycle: Cycle) -> u32 {
        if Self::in_smi_registers(offset) {
            return match (offset, width) {
                (Self::REG_SMI_EN, AccessWidth::Dword) => self.smi_en,
                (Self::REG_SMI_STS, AccessWidth::Dword) => self.smi_sts,
                _ => {
                    self.count_ignored();
                    0
                }
            };
        }
        let timer = self.timer_ticks(cycle);
        (0..width.bytes() as u16)
            .rev()
            .map(|i| self.read_byte(offset.wrapping_add(i), timer))
            .fold(0, |value, byte| (value << 8) | u32::from(byte))
    }

    /// `OUT` of `value` (masked to `width`) at `offset` into the block.
    pub fn write(&mut self, offset: u16, width: AccessWidth, value: u32) {
        if Self::in_smi_registers(offset) {
            match (offset, width) {
                (Self::REG_SMI_EN, AccessWidth::Dword) => self.write_smi_en(value),
                (Self::REG_SMI_STS, AccessWidth::Dword) => match self.profile {
                    ChipsetProfile::Datasheet => self.smi_sts &= !value,
                    ChipsetProfile::Qemu => self.count_ignored(),
                },
                _ => self.count_ignored(),
            }
            return;
        }
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            if i < width.bytes() as usize {
                self.write_byte(offset.wrapping_add(i as u16), byte);
            }
        }
    }

    fn write_smi_en(&mut self, value: u32) {
        let keep = if self.gbl_smi_en_locked {
            Self::SMI_EN_GBL_SMI_EN
        } else {
            0
        };
        self.smi_en = (self.smi_en & keep) | (value & !keep);
    }

    /// The PM timer now, from the accessing core's cycle counter.
    fn timer_ticks(&self, cycle: Cycle) -> u32 {
        let ticks = u128::from(cycle.0) * u128::from(PM_TIMER_HZ);
        let ticks = ticks.checked_div(u128::from(self.clock_hz)).unwrap_or(0);
        (ticks & 0xFF_FFFF) as u32
    }

    /// One byte of a byte-granular register; 0xFF where there is none.
    fn read_byte(&self, offset: u16, timer: u32) -> u8 {
        let byte_of = |value: u64, base: u16| (value >> (8 * u32::from(offset - base))) as u8;
        match offset {
            0x00..=0x01 => byte_of(self.pm1_sts.into(), Self::REG_PM1_STS),
            0x02..=0x03 => byte_of(self.pm1_en.into(), Self::REG_PM1_EN),
            0x04..=0x05 => byte_of(self.pm1_cnt.into(), Self::REG_PM1_CNT),
            0x08..=0x0B => byte_of(timer.into(), Self::REG_PM_TMR),
            0x20..=0x27 => byte_of(self.gpe0_sts(), Self::REG_GPE0_STS),
            0x28..=0x2F => byte_of(self.gpe0_en(), Self::REG_GPE0_EN),
            _ => 0xFF,
        }
    }

    /// One byte written to a byte-granular register.
    fn write_byte(&mut self, offset: u16, byte: u8) {
        let shift = |base: u16| 8 * u32::from(offset - base);
        match offset {
            0x00..=0x01 => {
                // Write 1 to clear.
                self.pm1_sts &= !(u16::from(byte) << shift(Self::REG_PM1_STS));
            }
            0x02..=0x03 => {
                let s = shift(Self::REG_PM1_EN);
                self.pm1_en = (self.pm1_en & !(0xFF << s)) | (u16::from(byte) << s);
            }
            0x04..=0x05 => {
                let s = shift(Self::REG_PM1_CNT);
                let new = (self.pm1_cnt & !(0xFF << s)) | (u16::from(byte) << s);
                if new & Self::PM1_CNT_SLP_EN != 0 {
                    // QEMU would suspend or power off here; smmsim has no sleep states.
                    self.count_ignored();
                }
                self.pm1_cnt = new & !Self::PM1_CNT_SLP_EN;
            }
            0x20..=0x27 => {
                if let Some(sts) = self.gpe0_sts.get_mut(usize::from(offset - 0x20)) {
                    *sts &= !byte;
                }
            }
            0x28..=0x2F => {
                if let Some(en) = self.gpe0_en.get_mut(usize::from(offset - 0x28)) {
                    *en = byte;
                }
            }
            _ => self.count_ignored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Cycle = Cycle::ZERO;

    fn pm() -> PmBlock {
        PmBlock::new(ChipsetProfile::Datasheet, 2_000_000_000)
    }

    #[test]
    fn smi_registers_take_aligned_dwords_only() {
        let mut pm = pm();
        pm.write(PmBlock::REG_SMI_EN, AccessWidth::Dword, 0x21);
        assert_eq!(pm.read(PmBlock::REG_SMI_EN, AccessWidth::Dword, T0), 0x21);
        pm.write(PmBlock::REG_SMI_EN, AccessWidth::Byte, 0);
        pm.write(0x31, AccessWidth::Dword, 0);
        assert_eq!(pm.read(PmBlock::REG_SMI_EN, AccessWidth::Byte, T0), 0);
        assert_eq!(pm.smi_en(), 0x21);
        assert_eq!(pm.ignored_accesses(), 3);
    }

    #[test]
    fn smi_lock_freezes_gbl_smi_en_in_either_state() {
        let mut pm = pm();
        pm.write(PmBlock::REG_SMI_EN, AccessWidth::Dword, 0x21);
        pm.lock_gbl_smi_en();
        pm.write(PmBlock::REG_SMI_EN, AccessWidth::Dword, 0x00);
        assert_eq!(pm.smi_en(), 0x01, "APMC_EN still writable, GBL_SMI_EN kept");
        let mut off = pm.clone();
        off.reset();
        assert!(!off.gbl_smi_en_locked());
        off.lock_gbl_smi_en();
        off.write(PmBlock::REG_SMI_EN, AccessWidth::Dword, 0x21);
        assert_eq!(
            off.smi_en(),
            0x20,
            "a cleared GBL_SMI_EN cannot be set either"
        );
    }

    #[test]
    fn smi_sts_is_write_one_to_clear_or_read_only_per_profile() {
        let mut pm = pm();
        pm.set_smi_status(PmBlock::SMI_STS_APM_STS | 1);
        pm.write(
            PmBlock::REG_SMI_STS,
            AccessWidth::Dword,
            PmBlock::SMI_STS_APM_STS,
        );
        assert_eq!(pm.read(PmBlock::REG_SMI_STS, AccessWidth::Dword, T0), 1);
        let mut qemu = PmBlock::new(ChipsetProfile::Qemu, 1);
        qemu.set_smi_status(PmBlock::SMI_STS_APM_STS);
        qemu.write(PmBlock::REG_SMI_STS, AccessWidth::Dword, !0);
        assert_eq!(qemu.smi_sts(), PmBlock::SMI_STS_APM_STS);
    }

    #[test]
    fn gpe0_status_is_write_one_to_clear_at_any_width() {
        let mut pm = pm();
        pm.set_gpe0_status(PmBlock::GPE0_CPU_HOTPLUG | 0x100);
        assert_eq!(pm.read(PmBlock::REG_GPE0_STS, AccessWidth::Word, T0), 0x104);
        pm.write(PmBlock::REG_GPE0_STS, AccessWidth::Byte, 0x04);
        assert_eq!(
            pm.read(PmBlock::REG_GPE0_STS, AccessWidth::Dword, T0),
            0x100
        );
        pm.write(PmBlock::REG_GPE0_EN, AccessWidth::Dword, 0x0403_0201);
        assert_eq!(pm.gpe0_en(), 0x0403_0201);
        assert_eq!(pm.read(0x2A, AccessWidth::Byte, T0), 0x03);
    }

    #[test]
    fn pm1_cnt_keeps_sci_en_and_drops_slp_en() {
        let mut pm = pm();
        pm.set_sci_enabled(true);
        assert_eq!(pm.read(PmBlock::REG_PM1_CNT, AccessWidth::Word, T0), 1);
        pm.write(PmBlock::REG_PM1_CNT, AccessWidth::Word, 0x3401);
        assert_eq!(pm.pm1_cnt(), 0x1401);
        assert_eq!(pm.ignored_accesses(), 1);
        pm.set_sci_enabled(false);
        assert_eq!(pm.pm1_cnt(), 0x1400);
    }

    #[test]
    fn pm_timer_counts_simulated_time() {
        let mut pm = pm();
        // One second at 2 GHz is 3,579,545 ticks; the register keeps 24 bits.
        let one_second = Cycle(2_000_000_000);
        assert_eq!(
            pm.read(PmBlock::REG_PM_TMR, AccessWidth::Dword, one_second),
            3_579_545
        );
        let five = Cycle(10_000_000_000);
        assert_eq!(
            pm.read(PmBlock::REG_PM_TMR, AccessWidth::Dword, five),
            (5 * 3_579_545) & 0xFF_FFFF
        );
        pm.write(PmBlock::REG_PM_TMR, AccessWidth::Dword, 0);
        assert_eq!(pm.ignored_accesses(), 4);
        assert_eq!(
            PmBlock::new(ChipsetProfile::Datasheet, 0).timer_ticks(five),
            0
        );
    }

    #[test]
    fn holes_read_all_ones() {
        let mut pm = pm();
        assert_eq!(pm.read(0x10, AccessWidth::Dword, T0), 0xFFFF_FFFF);
        assert_eq!(pm.read(0x60, AccessWidth::Word, T0), 0xFFFF);
        // A word straddling PM1_CNT and the hole above it.
        assert_eq!(pm.read(0x05, AccessWidth::Word, T0), 0xFF00);
    }
}
