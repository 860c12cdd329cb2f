//! The q35 host bridge (MCH, PCI 0:0.0): the registers firmware uses to turn RAM into
//! SMRAM — TSEG at the top of low RAM, the legacy A-segment, and the default-SMBASE window.
//!
//! Follows QEMU `hw/pci-host/q35.c` (`mch_write_config`, `mch_update_smram`,
//! `mch_update_ext_tseg_mbytes`, `mch_update_smbase_smram`, `mch_reset`) and the constants of
//! `include/hw/pci-host/q35.h`.
//!
//! ```text
//! reg        width  name          reset       guest-writable bits
//! 0x00-0x3F         type-0 header 8086:29C0, class 0x060000, rev 0, subsystem 1AF4:1100
//! 0x50       16     EXT_TSEG_MB   0xFFFF      all; 0xFFFF (query) reads back the size in MiB
//! 0x60       64     PCIEXBAR      0xB0000000  all; stored only (MMCONFIG is not modelled)
//! 0x9C       8      F_SMBASE      0x00        0xFF = query -> 0x01; then bit 1 = lock -> 0x02
//! 0x9D       8      SMRAM         0x02        0x78; after D_LCK only D_CLS (0x20)
//! 0x9E       8      ESMRAMC       0x38        0x87; after D_LCK none
//! other 0x40-0xFF   storage       0           all (PAM 0x90-0x96 included: stored only)
//!
//! SMRAM (0x9D)
//!    7      6        5       4        3          2..0
//! +------+--------+-------+-------+----------+------------+
//! | rsvd | D_OPEN | D_CLS | D_LCK | G_SMRAME | C_BASE_SEG |  C_BASE_SEG hardwired 010
//! +------+--------+-------+-------+----------+------------+
//! ESMRAMC (0x9E)
//!     7          6         5         4       3        2..1      0
//! +----------+---------+----------+-------+-------+---------+------+
//! | H_SMRAME | E_SMERR | SM_CACHE | SM_L1 | SM_L2 | TSEG_SZ | T_EN |  TSEG_SZ: 0 = 1 MiB,
//! +----------+---------+----------+-------+-------+---------+------+  1 = 2, 2 = 8, 3 = 0x50
//! ```
//!
//! 1. Every guest write goes through the config space's write mask, then the hooks run for
//!    the registers it touched, as in `mch_write_config`.
//! 2. SMRAM/ESMRAMC: once D_LCK is set, D_OPEN is cleared and the masks shrink to D_CLS
//!    and nothing, until hard reset. TSEG is active when T_EN **and** G_SMRAME are set
//!    (current QEMU; older QEMU looked at T_EN alone), sized by TSEG_SZ or, for 3, by the
//!    configured extended size, and ends at the top of low RAM.
//! 3. EXT_TSEG_MB: a write leaving the register at 0xFFFF is answered with the configured
//!    size, when that size is non-zero.
//! 4. F_SMBASE (when the `smbase-smram` feature is on, QEMU's default since 4.1):
//!    `Idle --write 0xFF--> Queried --write with bit 1--> Locked --hard reset--> Idle`. Any
//!    other write in `Idle` is discarded (a lock without a query does nothing); in `Queried`
//!    a write without bit 1 changes nothing. Locked makes 0x30000–0x4FFFF SMRAM.
//! 5. After each write the [`SmramLayout`] is recomputed; when it differs, the MCH pushes
//!    [`Effect::SmramChanged`] so the simulator rebuilds its memory views.
//!
//! Where smmsim is not QEMU: QEMU implements no TOLUD or TSEGMB register (firmware learns
//! the low-RAM size from fw_cfg `etc/e820` or CMOS, not from the MCH), so smmsim has none
//! either — writes to 0xB0 and 0xB8 are plain storage in both. D_CLS is stored and has no
//! effect in either. With H_SMRAME set, QEMU moves compatible SMRAM to 0xFEDA0000; smmsim
//! reports the bit ([`SmramLayout::high_smram`]) but maps nothing there. PAM registers are
//! stored only: smmsim's firmware alias below 1 MiB stays read-only whatever they say.

use crate::access::AccessWidth;
use crate::effect::Effect;
use crate::pci::{
    touches, ConfigSpace, PciAddress, PciIdentity, SUBSYSTEM_ID_QEMU, SUBSYSTEM_VENDOR_QEMU,
    VENDOR_INTEL,
};

/// One MiB, for TSEG sizes.
const MIB: u64 = 1 << 20;

/// A range of guest-physical memory that is SMRAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SmramRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size_bytes: u64,
}

impl SmramRange {
    /// One past the last byte (saturating at 2^64).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size_bytes)
    }

    /// Whether `address` lies in the range.
    pub fn contains(&self, address: u64) -> bool {
        address >= self.base && address < self.end()
    }
}

/// Which SMRAM region an address falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SmramRegion {
    /// TSEG, below the top of low RAM.
    Tseg,
    /// The default-SMBASE window 0x30000–0x4FFFF, once MCH reg 0x9C is locked.
    DefaultSmbase,
    /// The legacy A-segment 0xA0000–0xBFFFF.
    Aseg,
}

/// What is SMRAM right now, as the MCH registers say.
///
/// Exists so the simulator can build its memory views (what an SMM and a non-SMM access
/// see) from one value, and rebuild them whenever [`Effect::SmramChanged`] arrives; the
/// checker uses it to decide what counts as SMRAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SmramLayout {
    /// TSEG when enabled (ESMRAMC.T_EN and SMRAM.G_SMRAME, non-zero size): it ends at the
    /// top of low RAM. Non-SMM accesses see a blackhole there; D_OPEN does not open it
    /// (QEMU's `tseg_blackhole` ignores D_OPEN).
    pub tseg: Option<SmramRange>,
    /// MCH reg 0x9C is locked: 0x30000–0x4FFFF is SMRAM (a blackhole outside SMM) until
    /// hard reset.
    pub default_smbase_locked: bool,
    /// The A-segment is SMRAM: SMM sees RAM at 0xA0000–0xBFFFF (G_SMRAME set, H_SMRAME
    /// clear). Otherwise SMM sees what non-SMM code sees there.
    pub aseg_smram: bool,
    /// SMRAM.D_OPEN. In QEMU it only ever shows the A-segment RAM to non-SMM code, and only
    /// while H_SMRAME is clear; see [`SmramLayout::aseg_open`].
    pub open: bool,
    /// SMRAM.D_LCK: SMRAM and ESMRAMC are frozen (but for D_CLS) until hard reset.
    pub locked: bool,
    /// ESMRAMC.H_SMRAME: compatible SMRAM is remapped to 0xFEDA0000 (not modelled; the
    /// A-segment then is never RAM).
    pub high_smram: bool,
}

impl SmramLayout {
    /// The default-SMBASE window (QEMU `MCH_HOST_BRIDGE_SMBASE_ADDR`, `_SMBASE_SIZE`).
    pub const DEFAULT_SMBASE_WINDOW: SmramRange = SmramRange {
        base: 0x3_0000,
        size_bytes: 0x2_0000,
    };
    /// The legacy A-segment (QEMU `MCH_HOST_BRIDGE_SMRAM_C_BASE`, `_C_SIZE`).
    pub const ASEG: SmramRange = SmramRange {
        base: 0xA_0000,
        size_bytes: 0x2_0000,
    };

    /// Whether non-SMM code sees the A-segment RAM (D_OPEN with H_SMRAME clear).
    pub fn aseg_open(&self) -> bool {
        self.open && !self.high_smram
    }

    /// Whether an access (in SMM or not) to the A-segment reaches RAM. When not, QEMU
    /// routes it to the VGA window.
    pub fn aseg_is_ram(&self, in_smm: bool) -> bool {
        self.aseg_open() || (in_smm && self.aseg_smram)
    }

    /// The SMRAM region holding `address`, if it is SMRAM right now.
    pub fn region_at(&self, address: u64) -> Option<SmramRegion> {
        if self.tseg.is_some_and(|tseg| tseg.contains(address)) {
            Some(SmramRegion::Tseg)
        } else if self.default_smbase_locked && Self::DEFAULT_SMBASE_WINDOW.contains(address) {
            Some(SmramRegion::DefaultSmbase)
        } else if self.aseg_smram && Self::ASEG.contains(address) {
            Some(SmramRegion::Aseg)
        } else {
            None
        }
    }

    /// The SMRAM region an access at `address` is shut out of, if any: a non-SMM access to
    /// closed SMRAM, which reads all ones, drops writes and is recorded (PLATFORM.md, SMRAM
    /// rule). SMM accesses are never shut out.
    pub fn hidden_from(&self, address: u64, in_smm: bool) -> Option<SmramRegion> {
        if in_smm {
            return None;
        }
        match self.region_at(address)? {
            SmramRegion::Aseg if self.aseg_open() => None,
            region => Some(region),
        }
    }
}

/// The MCH's F_SMBASE protocol (reg 0x9C), QEMU `mch_update_smbase_smram`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DefaultSmbase {
    /// Power-on: reads 0; only the query value is accepted.
    Idle,
    /// The guest asked (0xFF) and was told "supported" (reads 0x01); a lock may follow.
    Queried,
    /// Locked until hard reset (reads 0x02): the window is SMRAM.
    Locked,
}

/// The q35 host bridge's configuration space and the SMRAM state it controls.
///
/// Exists so the SMRAM/TSEG/default-SMBASE registers behave as under QEMU and the
/// simulator gets one [`SmramLayout`] out of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mch {
    config: ConfigSpace,
    default_smbase: DefaultSmbase,
    low_ram_bytes: u64,
    ext_tseg_mbytes: u16,
    smbase_smram: bool,
    layout: SmramLayout,
}

impl Mch {
    /// Where the MCH sits on the bus.
    pub const ADDRESS: PciAddress = PciAddress::new(0, 0, 0);
    /// QEMU's MCH device ID (`PCI_DEVICE_ID_INTEL_Q35_MCH`, renamed `_P35_MCH`).
    pub const DEVICE_ID: u16 = 0x29C0;
    /// Host bridge class code.
    pub const CLASS_CODE: u32 = 0x06_00_00;
    /// Revision ID (`MCH_HOST_BRIDGE_REVISION_DEFAULT`).
    pub const REVISION_ID: u8 = 0;
    /// The header identity: single-function, QEMU's default subsystem IDs.
    pub const IDENTITY: PciIdentity = PciIdentity {
        vendor_id: VENDOR_INTEL,
        device_id: Self::DEVICE_ID,
        revision_id: Self::REVISION_ID,
        class_code: Self::CLASS_CODE,
        header_type: 0,
        subsystem_vendor_id: SUBSYSTEM_VENDOR_QEMU,
        subsystem_id: SUBSYSTEM_ID_QEMU,
    };

    /// Extended TSEG size in MiB (16-bit; `MCH_HOST_BRIDGE_EXT_TSEG_MBYTES`).
    pub const REG_EXT_TSEG_MBYTES: u8 = 0x50;
    /// The value firmware writes to 0x50 to ask for the size.
    pub const EXT_TSEG_MBYTES_QUERY: u16 = 0xFFFF;
    /// The largest extended TSEG QEMU accepts (`MCH_HOST_BRIDGE_EXT_TSEG_MBYTES_MAX`).
    pub const EXT_TSEG_MBYTES_MAX: u16 = 0xFFF;
    /// QEMU's default extended TSEG size (`extended-tseg-mbytes`).
    pub const EXT_TSEG_MBYTES_DEFAULT: u16 = 16;
    /// PCIEXBAR, 64-bit; stored only.
    pub const REG_PCIEXBAR: u8 = 0x60;
    /// PCIEXBAR after reset (`MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT`; disabled).
    pub const PCIEXBAR_DEFAULT: u32 = 0xB000_0000;
    /// SMRAM at the default SMBASE (`MCH_HOST_BRIDGE_F_SMBASE`).
    pub const REG_F_SMBASE: u8 = 0x9C;
    /// F_SMBASE: "is SMRAM at SMBASE supported?"
    pub const F_SMBASE_QUERY: u8 = 0xFF;
    /// F_SMBASE answer: supported, still RAM.
    pub const F_SMBASE_IN_RAM: u8 = 0x01;
    /// F_SMBASE: lock (and read back once locked).
    pub const F_SMBASE_LCK: u8 = 0x02;
    /// SMRAM control (`MCH_HOST_BRIDGE_SMRAM`).
    pub const REG_SMRAM: u8 = 0x9D;
    /// SMRAM bit 6: SMRAM visible outside SMM.
    pub const SMRAM_D_OPEN: u8 = 1 << 6;
    /// SMRAM bit 5: SMM data accesses go to PCI (stored, no effect, as in QEMU).
    pub const SMRAM_D_CLS: u8 = 1 << 5;
    /// SMRAM bit 4: lock SMRAM/ESMRAMC until reset.
    pub const SMRAM_D_LCK: u8 = 1 << 4;
    /// SMRAM bit 3: global SMRAM enable.
    pub const SMRAM_G_SMRAME: u8 = 1 << 3;
    /// SMRAM bits 2:0: compatible SMRAM base segment, hardwired to 010 (A-segment).
    pub const SMRAM_C_BASE_SEG: u8 = 0x02;
    /// SMRAM bits the guest may change before D_LCK.
    pub const SMRAM_WMASK: u8 =
        Self::SMRAM_D_OPEN | Self::SMRAM_D_CLS | Self::SMRAM_D_LCK | Self::SMRAM_G_SMRAME;
    /// SMRAM bits the guest may change after D_LCK.
    pub const SMRAM_WMASK_LCK: u8 = Self::SMRAM_D_CLS;
    /// Extended SMRAM control (`MCH_HOST_BRIDGE_ESMRAMC`).
    pub const REG_ESMRAMC: u8 = 0x9E;
    /// ESMRAMC bit 7: high SMRAM enable.
    pub const ESMRAMC_H_SMRAME: u8 = 1 << 7;
    /// ESMRAMC bit 5: SMRAM cacheable (reads 1, fixed).
    pub const ESMRAMC_SM_CACHE: u8 = 1 << 5;
    /// ESMRAMC bit 4: L1 cache enable for SMRAM (reads 1, fixed).
    pub const ESMRAMC_SM_L1: u8 = 1 << 4;
    /// ESMRAMC bit 3: L2 cache enable for SMRAM (reads 1, fixed).
    pub const ESMRAMC_SM_L2: u8 = 1 << 3;
    /// ESMRAMC bits 2:1: TSEG size.
    pub const ESMRAMC_TSEG_SZ_MASK: u8 = 0b11 << 1;
    /// ESMRAMC bit 0: TSEG enable.
    pub const ESMRAMC_T_EN: u8 = 1 << 0;
    /// ESMRAMC after reset.
    pub const ESMRAMC_DEFAULT: u8 =
        Self::ESMRAMC_SM_CACHE | Self::ESMRAMC_SM_L1 | Self::ESMRAMC_SM_L2;
    /// ESMRAMC bits the guest may change before D_LCK.
    pub const ESMRAMC_WMASK: u8 =
        Self::ESMRAMC_H_SMRAME | Self::ESMRAMC_TSEG_SZ_MASK | Self::ESMRAMC_T_EN;

    /// The MCH of a machine whose RAM below 4 GiB ends at `low_ram_bytes` (QEMU
    /// `below-4g-mem-size`), with an extended TSEG of `ext_tseg_mbytes` MiB (0 = none) and
    /// with or without SMRAM at the default SMBASE (`smbase-smram`). In its reset state.
    pub fn new(low_ram_bytes: u64, ext_tseg_mbytes: u16, smbase_smram: bool) -> Mch {
        let mut mch = Mch {
            config: ConfigSpace::new(&Self::IDENTITY),
            default_smbase: DefaultSmbase::Idle,
            low_ram_bytes,
            ext_tseg_mbytes,
            smbase_smram,
            layout: SmramLayout {
                tseg: None,
                default_smbase_locked: false,
                aseg_smram: false,
                open: false,
                locked: false,
                high_smram: false,
            },
        };
        mch.reset();
        mch
    }

    /// Hard reset (QEMU `mch_reset`, plus every other register back to 0 — see
    /// [`crate::chipset`] on reset): nothing is SMRAM, nothing is locked.
    pub fn reset(&mut self) {
        self.config = ConfigSpace::new(&Self::IDENTITY);
        self.config
            .set_dword(Self::REG_PCIEXBAR, Self::PCIEXBAR_DEFAULT);
        self.config
            .set_byte(Self::REG_SMRAM, Self::SMRAM_C_BASE_SEG);
        self.config.set_wmask(Self::REG_SMRAM, Self::SMRAM_WMASK);
        self.config
            .set_byte(Self::REG_ESMRAMC, Self::ESMRAMC_DEFAULT);
        self.config
            .set_wmask(Self::REG_ESMRAMC, Self::ESMRAMC_WMASK);
        if self.ext_tseg_mbytes > 0 {
            self.config
                .set_word(Self::REG_EXT_TSEG_MBYTES, Self::EXT_TSEG_MBYTES_QUERY);
        }
        self.default_smbase = DefaultSmbase::Idle;
        if self.smbase_smram {
            // The protocol, not the mask, decides what lands in 0x9C.
            self.config.set_wmask(Self::REG_F_SMBASE, 0);
        }
        self.layout = self.compute_layout();
    }

    /// Reads `width` bytes of configuration space at `register`.
    pub fn config_read(&self, register: u8, width: AccessWidth) -> u32 {
        self.config.read(register, width)
    }

    /// Writes `width` bytes of `value` at `register`, runs the register hooks, and pushes
    /// [`Effect::SmramChanged`] if the SMRAM layout changed.
    pub fn config_write(
        &mut self,
        register: u8,
        width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        let touched = self.config.write(register, width, value);
        if touches(&touched, Self::REG_SMRAM, 2) {
            self.apply_d_lck();
        }
        if touches(&touched, Self::REG_EXT_TSEG_MBYTES, 2)
            && self.ext_tseg_mbytes > 0
            && self.config.word(Self::REG_EXT_TSEG_MBYTES) == Self::EXT_TSEG_MBYTES_QUERY
        {
            // Firmware asked; answer with the size (`mch_update_ext_tseg_mbytes`).
            self.config
                .set_word(Self::REG_EXT_TSEG_MBYTES, self.ext_tseg_mbytes);
        }
        if self.smbase_smram && touches(&touched, Self::REG_F_SMBASE, 1) {
            let shift = 8 * u32::from(Self::REG_F_SMBASE.wrapping_sub(register));
            let written = value.checked_shr(shift).unwrap_or(0) as u8;
            self.write_f_smbase(written);
        }
        let layout = self.compute_layout();
        if layout != self.layout {
            self.layout = layout;
            effects.push(Effect::SmramChanged(layout));
        }
    }

    /// The SMRAM layout the registers describe now.
    pub fn smram_layout(&self) -> SmramLayout {
        self.layout
    }

    /// D_LCK: D_OPEN off, SMRAM keeps only D_CLS writable, ESMRAMC nothing
    /// (`mch_update_smram`, "implement SMRAM.D_LCK").
    fn apply_d_lck(&mut self) {
        let smram = self.config.byte(Self::REG_SMRAM);
        if smram & Self::SMRAM_D_LCK != 0 {
            self.config
                .set_byte(Self::REG_SMRAM, smram & !Self::SMRAM_D_OPEN);
            self.config
                .set_wmask(Self::REG_SMRAM, Self::SMRAM_WMASK_LCK);
            self.config.set_wmask(Self::REG_ESMRAMC, 0);
        }
    }

    /// One byte written to F_SMBASE: the state machine of the module doc, step 4.
    fn write_f_smbase(&mut self, written: u8) {
        self.default_smbase = match self.default_smbase {
            // Idle --0xFF--> Queried; anything else is discarded ("default/reset state,
            // discard written value").
            DefaultSmbase::Idle if written == Self::F_SMBASE_QUERY => DefaultSmbase::Queried,
            DefaultSmbase::Idle => DefaultSmbase::Idle,
            // Queried --bit 1--> Locked; QEMU's mask is LCK alone here.
            DefaultSmbase::Queried if written & Self::F_SMBASE_LCK != 0 => DefaultSmbase::Locked,
            DefaultSmbase::Queried => DefaultSmbase::Queried,
            DefaultSmbase::Locked => DefaultSmbase::Locked,
        };
        let reads = match self.default_smbase {
            DefaultSmbase::Idle => 0,
            DefaultSmbase::Queried => Self::F_SMBASE_IN_RAM,
            DefaultSmbase::Locked => Self::F_SMBASE_LCK,
        };
        self.config.set_byte(Self::REG_F_SMBASE, reads);
    }

    /// TSEG's size in bytes as ESMRAMC says, 0 when disabled.
    fn tseg_size_bytes(&self) -> u64 {
        let smram = self.config.byte(Self::REG_SMRAM);
        let esmramc = self.config.byte(Self::REG_ESMRAMC);
        if esmramc & Self::ESMRAMC_T_EN == 0 || smram & Self::SMRAM_G_SMRAME == 0 {
            return 0;
        }
        match (esmramc & Self::ESMRAMC_TSEG_SZ_MASK) >> 1 {
            0 => MIB,
            1 => 2 * MIB,
            2 => 8 * MIB,
            _ => u64::from(self.ext_tseg_mbytes) * MIB,
        }
    }

    fn compute_layout(&self) -> SmramLayout {
        let smram = self.config.byte(Self::REG_SMRAM);
        let esmramc = self.config.byte(Self::REG_ESMRAMC);
        let high_smram = esmramc & Self::ESMRAMC_H_SMRAME != 0;
        let size = self.tseg_size_bytes();
        // QEMU computes `below_4g_mem_size - tseg_size` unchecked; a TSEG larger than low
        // RAM (a machine-setup mistake the chipset rejects) would start at 0 here.
        let tseg = (size > 0).then(|| {
            let base = self.low_ram_bytes.saturating_sub(size);
            SmramRange {
                base,
                size_bytes: self.low_ram_bytes - base,
            }
        });
        SmramLayout {
            tseg,
            default_smbase_locked: self.default_smbase == DefaultSmbase::Locked,
            aseg_smram: smram & Self::SMRAM_G_SMRAME != 0 && !high_smram,
            open: smram & Self::SMRAM_D_OPEN != 0,
            locked: smram & Self::SMRAM_D_LCK != 0,
            high_smram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW_RAM: u64 = 512 * MIB;

    fn mch() -> Mch {
        Mch::new(LOW_RAM, Mch::EXT_TSEG_MBYTES_DEFAULT, true)
    }

    fn write8(mch: &mut Mch, register: u8, value: u8) -> Vec<Effect> {
        let mut effects = Vec::new();
        mch.config_write(register, AccessWidth::Byte, value.into(), &mut effects);
        effects
    }

    fn read8(mch: &Mch, register: u8) -> u8 {
        mch.config_read(register, AccessWidth::Byte) as u8
    }

    #[test]
    fn identity_and_reset_values() {
        let mch = mch();
        assert_eq!(mch.config_read(0, AccessWidth::Dword), 0x29C0_8086);
        assert_eq!(mch.config_read(0x08, AccessWidth::Dword), 0x0600_0000);
        assert_eq!(read8(&mch, Mch::REG_SMRAM), 0x02);
        assert_eq!(read8(&mch, Mch::REG_ESMRAMC), 0x38);
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0);
        assert_eq!(mch.config_read(0x60, AccessWidth::Dword), 0xB000_0000);
        assert_eq!(mch.config_read(0x50, AccessWidth::Word), 0xFFFF);
        assert_eq!(mch.smram_layout().tseg, None);
    }

    #[test]
    fn f_smbase_lock_without_query_is_ignored() {
        let mut mch = mch();
        assert!(write8(&mut mch, Mch::REG_F_SMBASE, Mch::F_SMBASE_LCK).is_empty());
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0);
        assert!(!mch.smram_layout().default_smbase_locked);
    }

    #[test]
    fn f_smbase_query_then_lock_until_reset() {
        let mut mch = mch();
        assert!(write8(&mut mch, Mch::REG_F_SMBASE, 0xFF).is_empty());
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0x01);
        // A write without the lock bit changes nothing.
        write8(&mut mch, Mch::REG_F_SMBASE, 0x00);
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0x01);
        let effects = write8(&mut mch, Mch::REG_F_SMBASE, Mch::F_SMBASE_LCK);
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0x02);
        let layout = mch.smram_layout();
        assert!(layout.default_smbase_locked);
        assert_eq!(effects, [Effect::SmramChanged(layout)]);
        // Locked: nothing gets through, not even a new query.
        assert!(write8(&mut mch, Mch::REG_F_SMBASE, 0xFF).is_empty());
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0x02);
        mch.reset();
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0);
        assert!(!mch.smram_layout().default_smbase_locked);
    }

    #[test]
    fn f_smbase_is_plain_storage_without_the_feature() {
        let mut mch = Mch::new(LOW_RAM, 16, false);
        write8(&mut mch, Mch::REG_F_SMBASE, 0xFF);
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0xFF);
        write8(&mut mch, Mch::REG_F_SMBASE, 0x02);
        assert!(!mch.smram_layout().default_smbase_locked);
    }

    #[test]
    fn tseg_sizes_including_extended() {
        let mut mch = mch();
        write8(&mut mch, Mch::REG_SMRAM, Mch::SMRAM_G_SMRAME);
        for (tseg_sz, mib) in [(0u8, 1u64), (1, 2), (2, 8), (3, 16)] {
            write8(
                &mut mch,
                Mch::REG_ESMRAMC,
                (tseg_sz << 1) | Mch::ESMRAMC_T_EN,
            );
            let tseg = mch.smram_layout().tseg.expect("T_EN and G_SMRAME are set");
            assert_eq!(tseg.size_bytes, mib * MIB, "TSEG_SZ {tseg_sz}");
            assert_eq!(tseg.end(), LOW_RAM);
        }
        // Without G_SMRAME there is no TSEG (current QEMU).
        write8(&mut mch, Mch::REG_SMRAM, 0);
        assert_eq!(mch.smram_layout().tseg, None);
    }

    #[test]
    fn extended_tseg_query() {
        let mut mch = Mch::new(LOW_RAM, 48, true);
        let mut effects = Vec::new();
        mch.config_write(0x50, AccessWidth::Word, 0xFFFF, &mut effects);
        assert_eq!(mch.config_read(0x50, AccessWidth::Word), 48);
        // Other values are stored as written.
        mch.config_write(0x50, AccessWidth::Word, 0x1234, &mut effects);
        assert_eq!(mch.config_read(0x50, AccessWidth::Word), 0x1234);
        // With no extended TSEG the query reads back unanswered.
        let mut none = Mch::new(LOW_RAM, 0, true);
        assert_eq!(none.config_read(0x50, AccessWidth::Word), 0);
        none.config_write(0x50, AccessWidth::Word, 0xFFFF, &mut effects);
        assert_eq!(none.config_read(0x50, AccessWidth::Word), 0xFFFF);
        write8(&mut none, Mch::REG_SMRAM, Mch::SMRAM_G_SMRAME);
        write8(&mut none, Mch::REG_ESMRAMC, 0x07);
        assert_eq!(none.smram_layout().tseg, None);
    }

    #[test]
    fn d_lck_freezes_smram_and_esmramc_but_d_cls() {
        let mut mch = mch();
        write8(&mut mch, Mch::REG_ESMRAMC, 0x07);
        write8(
            &mut mch,
            Mch::REG_SMRAM,
            Mch::SMRAM_D_OPEN | Mch::SMRAM_G_SMRAME,
        );
        assert!(mch.smram_layout().open);
        let effects = write8(
            &mut mch,
            Mch::REG_SMRAM,
            Mch::SMRAM_D_OPEN | Mch::SMRAM_D_LCK | Mch::SMRAM_G_SMRAME,
        );
        let layout = mch.smram_layout();
        assert!(layout.locked && !layout.open);
        assert_eq!(effects, [Effect::SmramChanged(layout)]);
        assert_eq!(read8(&mch, Mch::REG_SMRAM), 0x1A);
        // Only D_CLS moves now.
        write8(
            &mut mch,
            Mch::REG_SMRAM,
            Mch::SMRAM_D_OPEN | Mch::SMRAM_D_CLS,
        );
        assert_eq!(read8(&mch, Mch::REG_SMRAM), 0x3A);
        write8(&mut mch, Mch::REG_ESMRAMC, 0);
        assert_eq!(read8(&mch, Mch::REG_ESMRAMC), 0x3F);
        assert_eq!(
            mch.smram_layout().tseg.map(|t| t.size_bytes),
            Some(16 * MIB)
        );
        mch.reset();
        assert!(!mch.smram_layout().locked);
        write8(&mut mch, Mch::REG_ESMRAMC, 0x01);
        assert_eq!(read8(&mch, Mch::REG_ESMRAMC), 0x39);
    }

    #[test]
    fn a_dword_write_reaches_f_smbase_smram_and_esmramc_together() {
        let mut mch = mch();
        let mut effects = Vec::new();
        // 0x9C = 0xFF (query), 0x9D = G_SMRAME, 0x9E = T_EN | 8 MiB.
        mch.config_write(0x9C, AccessWidth::Dword, 0x0005_08FF, &mut effects);
        assert_eq!(read8(&mch, Mch::REG_F_SMBASE), 0x01);
        let layout = mch.smram_layout();
        assert_eq!(layout.tseg.map(|t| t.size_bytes), Some(8 * MIB));
        assert_eq!(effects, [Effect::SmramChanged(layout)]);
    }

    #[test]
    fn layout_answers_what_a_non_smm_access_may_see() {
        let mut mch = mch();
        write8(&mut mch, Mch::REG_ESMRAMC, 0x07);
        write8(&mut mch, Mch::REG_SMRAM, Mch::SMRAM_G_SMRAME);
        write8(&mut mch, Mch::REG_F_SMBASE, 0xFF);
        write8(&mut mch, Mch::REG_F_SMBASE, 0x02);
        let layout = mch.smram_layout();
        let tseg_base = LOW_RAM - 16 * MIB;
        assert_eq!(
            layout.hidden_from(tseg_base, false),
            Some(SmramRegion::Tseg)
        );
        assert_eq!(layout.hidden_from(tseg_base, true), None);
        assert_eq!(layout.hidden_from(tseg_base - 1, false), None);
        assert_eq!(
            layout.hidden_from(0x3_8000, false),
            Some(SmramRegion::DefaultSmbase)
        );
        assert_eq!(layout.hidden_from(0x5_0000, false), None);
        assert_eq!(layout.hidden_from(0xA_0000, false), Some(SmramRegion::Aseg));
        assert!(layout.aseg_is_ram(true) && !layout.aseg_is_ram(false));
        // D_OPEN opens the A-segment only.
        write8(
            &mut mch,
            Mch::REG_SMRAM,
            Mch::SMRAM_G_SMRAME | Mch::SMRAM_D_OPEN,
        );
        let open = mch.smram_layout();
        assert_eq!(open.hidden_from(0xA_0000, false), None);
        assert_eq!(open.hidden_from(tseg_base, false), Some(SmramRegion::Tseg));
    }
}
