//! The smmsim SMBASE controller: a platform extension through which SMM code tells the
//! platform where each CPU's SMRAM save area will be, so a hot-added CPU starts with its
//! final SMBASE instead of the shared default 0x30000.
//!
//! Real hardware and QEMU have nothing like it (PLATFORM.md, "smmsim SMBASE controller").
//! It exists for the `controller` and `formula` relocation strategies: firmware programs a
//! per-APIC-ID table, or one linear formula, from SMM during boot and locks it; when the
//! platform hot-adds a CPU, the simulator asks [`SmbaseController::smbase_for`] and loads
//! the answer into the new CPU's SMBASE register before the CPU can take its first SMI.
//!
//! ```text
//! port    off   width  name            read                 write (SMM, before lock)
//! 0x0EE0  0x00  32     APIC_ID_SEL     as written           any APIC ID
//! 0x0EE4  0x04  32     SMBASE          table[selected]      table[selected] (0 = none)
//! 0x0EE8  0x08  32     CONTROL         lock, formula bits   see below
//! 0x0EEC  0x0C  32     FORMULA_BASE    as written           SMBASE of APIC ID 0
//! 0x0EF0  0x10  32     FORMULA_STRIDE  as written           bytes between APIC IDs
//!
//! CONTROL
//!  31 .. 2     1         0
//! +---------+---------+------+
//! | 0       | FORMULA | LOCK |
//! +---------+---------+------+
//! ```
//!
//! 1. The window is 20 ports, 0x0EE0–0x0EF3. PLATFORM.md's heading says 0x0EE0–0x0EEF but
//!    its own table puts FORMULA_STRIDE at offset 0x10; the table wins, so the window ends
//!    after that register.
//! 2. Writes: a write from a CPU that is not in SMM, or any write once LOCK is set, is
//!    dropped and pushes [`Effect::SmbaseControllerBlocked`] — whatever register, width or
//!    value, the APIC ID selector included. So after LOCK the selector is frozen too; the
//!    platform still sees the whole table through [`SmbaseController::smbase_for`].
//! 3. An accepted write must be an aligned 32-bit access; narrower or misaligned writes
//!    from SMM are dropped and counted in [`SmbaseController::ignored_accesses`], never
//!    merged, so no SMBASE is ever half-written.
//! 4. Reads are allowed from anywhere and have no side effects. Any width at any offset
//!    reads the registers as one little-endian byte array (a byte read at 0x05 is bits
//!    15:8 of SMBASE); bytes past 0x13 read 0xFF, as unclaimed ports do.
//! 5. The table has one entry per possible APIC ID (`0 .. apic_id_count`). SMBASE reads 0
//!    while the selector is outside it, and an SMM write to SMBASE there is dropped and
//!    counted.
//! 6. CONTROL: a write stores FORMULA and, if bit 0 is set, sets LOCK, which stays until
//!    hard reset. Other bits read 0.
//! 7. State: `Open --CONTROL.LOCK (SMM)--> Locked --hard reset--> Open` (everything 0).
//!    INIT changes nothing.

use std::fmt;

use crate::access::{AccessContext, AccessWidth, ApicId};
use crate::effect::Effect;

/// Why an [`SmbaseController`] could not be built: a mistake in the machine's setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmbaseControllerError {
    /// The number of possible APIC IDs is 0 or above
    /// [`SmbaseController::MAX_APIC_IDS`].
    ApicIdCount {
        /// The count given.
        apic_id_count: u32,
    },
}

impl fmt::Display for SmbaseControllerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SmbaseControllerError::ApicIdCount { apic_id_count } => write!(
                f,
                "an SMBASE table for {apic_id_count} APIC IDs is not between 1 and {} entries",
                SmbaseController::MAX_APIC_IDS
            ),
        }
    }
}

impl std::error::Error for SmbaseControllerError {}

/// The SMBASE controller's registers and per-APIC-ID table.
///
/// Exists so the `controller` and `formula` strategies can give a hot-added CPU its SMBASE
/// before its first SMI, and so every attempt to change that from outside SMM, or after
/// firmware locked it, is recorded as a violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmbaseController {
    /// Indexed by APIC ID; 0 = not assigned.
    table: Vec<u32>,
    selector: u32,
    locked: bool,
    formula_mode: bool,
    formula_base: u32,
    formula_stride: u32,
    blocked_writes: u64,
    ignored_accesses: u64,
}

impl SmbaseController {
    /// The first port (PLATFORM.md).
    pub const PORT: u16 = 0x0EE0;
    /// Twenty ports, 0x0EE0–0x0EF3: five 32-bit registers (module doc, step 1).
    pub const WINDOW_LEN: u16 = 20;
    /// Offset of the APIC ID selector.
    pub const REG_APIC_ID_SELECTOR: u16 = 0x00;
    /// Offset of the selected APIC ID's SMBASE.
    pub const REG_SMBASE: u16 = 0x04;
    /// Offset of the control register.
    pub const REG_CONTROL: u16 = 0x08;
    /// Offset of the formula base.
    pub const REG_FORMULA_BASE: u16 = 0x0C;
    /// Offset of the formula stride.
    pub const REG_FORMULA_STRIDE: u16 = 0x10;
    /// CONTROL bit 0: no more writes until hard reset.
    pub const CONTROL_LOCK: u32 = 1 << 0;
    /// CONTROL bit 1: SMBASE = base + APIC ID × stride instead of the table.
    pub const CONTROL_FORMULA: u32 = 1 << 1;
    /// The most APIC IDs a table can hold (xAPIC IDs are 8 bits; smmsim machines have at
    /// most 4096 CPUs).
    pub const MAX_APIC_IDS: u32 = 4096;

    /// A controller in its reset state, with a table for APIC IDs `0 .. apic_id_count`
    /// (the APIC-ID limit: highest possible APIC ID + 1).
    pub fn new(apic_id_count: u32) -> Result<SmbaseController, SmbaseControllerError> {
        if apic_id_count == 0 || apic_id_count > Self::MAX_APIC_IDS {
            return Err(SmbaseControllerError::ApicIdCount { apic_id_count });
        }
        Ok(SmbaseController {
            table: vec![0; apic_id_count as usize],
            selector: 0,
            locked: false,
            formula_mode: false,
            formula_base: 0,
            formula_stride: 0,
            blocked_writes: 0,
            ignored_accesses: 0,
        })
    }

    /// How many APIC IDs the table covers.
    pub fn apic_id_count(&self) -> u32 {
        // `new` bounded it by MAX_APIC_IDS.
        self.table.len() as u32
    }

    /// The SMBASE the platform loads into a hot-added CPU with `apic_id`: in formula mode
    /// `base + apic_id × stride` (`None` when that overflows 32 bits), else the table entry
    /// (`None` while it is 0). `None` too for an APIC ID the table does not cover.
    pub fn smbase_for(&self, apic_id: ApicId) -> Option<u32> {
        let entry = *self.table.get(usize::try_from(apic_id.0).ok()?)?;
        if self.formula_mode {
            apic_id
                .0
                .checked_mul(self.formula_stride)
                .and_then(|offset| self.formula_base.checked_add(offset))
        } else {
            (entry != 0).then_some(entry)
        }
    }

    /// Whether firmware locked the controller.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Whether SMBASEs come from the formula rather than the table.
    pub fn is_formula_mode(&self) -> bool {
        self.formula_mode
    }

    /// The formula's base.
    pub fn formula_base(&self) -> u32 {
        self.formula_base
    }

    /// The formula's stride in bytes.
    pub fn formula_stride(&self) -> u32 {
        self.formula_stride
    }

    /// The APIC ID selector as written.
    pub fn selector(&self) -> u32 {
        self.selector
    }

    /// How many writes were blocked (one [`Effect::SmbaseControllerBlocked`] each).
    pub fn blocked_writes(&self) -> u64 {
        self.blocked_writes
    }

    /// How many SMM writes before lock were dropped for their width, alignment or an
    /// APIC ID outside the table.
    pub fn ignored_accesses(&self) -> u64 {
        self.ignored_accesses
    }

    /// Platform reset: `hard` clears the table, the registers and the lock; a soft reset
    /// (INIT) changes nothing. The counters are kept: they describe the whole run.
    pub fn reset(&mut self, hard: bool) {
        if !hard {
            return;
        }
        self.table.fill(0);
        self.selector = 0;
        self.locked = false;
        self.formula_mode = false;
        self.formula_base = 0;
        self.formula_stride = 0;
    }

    /// `IN` of `width` at `offset` into the window (module doc, step 4).
    pub fn read(&self, offset: u16, width: AccessWidth) -> u32 {
        (0..width.bytes() as u16).rev().fold(0, |value, i| {
            let byte = offset
                .checked_add(i)
                .map_or(0xFF, |offset| self.read_byte(offset));
            (value << 8) | u32::from(byte)
        })
    }

    /// `OUT` of `value` (masked to `width`) at `offset` by the CPU in `ctx` (module doc,
    /// steps 2, 3, 5 and 6).
    pub fn write(
        &mut self,
        ctx: &AccessContext,
        offset: u16,
        width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        let value = value & width.all_ones();
        if !ctx.in_smm || self.locked {
            self.blocked_writes = self.blocked_writes.saturating_add(1);
            effects.push(Effect::SmbaseControllerBlocked {
                cpu: ctx.cpu,
                offset,
                value,
                in_smm: ctx.in_smm,
                locked: self.locked,
            });
            return;
        }
        if width != AccessWidth::Dword || offset % 4 != 0 {
            self.count_ignored();
            return;
        }
        match offset {
            Self::REG_APIC_ID_SELECTOR => self.selector = value,
            Self::REG_SMBASE => match self.selected_entry_mut() {
                Some(entry) => *entry = value,
                None => self.count_ignored(),
            },
            Self::REG_CONTROL => {
                self.formula_mode = value & Self::CONTROL_FORMULA != 0;
                if value & Self::CONTROL_LOCK != 0 {
                    self.locked = true;
                }
            }
            Self::REG_FORMULA_BASE => self.formula_base = value,
            Self::REG_FORMULA_STRIDE => self.formula_stride = value,
            _ => self.count_ignored(),
        }
    }

    /// One register as the guest reads it.
    fn register(&self, offset: u16) -> u32 {
        match offset {
            Self::REG_APIC_ID_SELECTOR => self.selector,
            Self::REG_SMBASE => self.selected_entry().unwrap_or(0),
            Self::REG_CONTROL => {
                let lock = if self.locked { Self::CONTROL_LOCK } else { 0 };
                let formula = if self.formula_mode {
                    Self::CONTROL_FORMULA
                } else {
                    0
                };
                lock | formula
            }
            Self::REG_FORMULA_BASE => self.formula_base,
            Self::REG_FORMULA_STRIDE => self.formula_stride,
            _ => 0,
        }
    }

    /// Byte `offset` of the register file; 0xFF past its end.
    fn read_byte(&self, offset: u16) -> u8 {
        if offset >= Self::WINDOW_LEN {
            return 0xFF;
        }
        let register = offset & !3;
        let shift = 8 * u32::from(offset & 3);
        (self.register(register) >> shift) as u8
    }

    fn selected_entry(&self) -> Option<u32> {
        self.table
            .get(usize::try_from(self.selector).ok()?)
            .copied()
    }

    fn selected_entry_mut(&mut self) -> Option<&mut u32> {
        self.table.get_mut(usize::try_from(self.selector).ok()?)
    }

    fn count_ignored(&mut self) {
        self.ignored_accesses = self.ignored_accesses.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::CpuIndex;
    use smmsim_traces::Cycle;

    const D: AccessWidth = AccessWidth::Dword;

    fn ctx(in_smm: bool) -> AccessContext {
        AccessContext {
            cpu: CpuIndex(1),
            apic_id: ApicId(1),
            in_smm,
            cycle: Cycle::ZERO,
        }
    }

    fn smm_out(c: &mut SmbaseController, offset: u16, value: u32) -> Vec<Effect> {
        let mut effects = Vec::new();
        c.write(&ctx(true), offset, D, value, &mut effects);
        effects
    }

    #[test]
    fn table_sizes_outside_1_to_4096_are_refused() {
        assert!(SmbaseController::new(0).is_err());
        assert!(SmbaseController::new(4096).is_ok());
        let err = SmbaseController::new(4097).unwrap_err();
        assert_eq!(
            err.to_string(),
            "an SMBASE table for 4097 APIC IDs is not between 1 and 4096 entries"
        );
    }

    #[test]
    fn smm_programs_the_table_and_anyone_reads_it() {
        let mut c = SmbaseController::new(4).unwrap();
        assert_eq!(
            smm_out(&mut c, SmbaseController::REG_APIC_ID_SELECTOR, 2),
            []
        );
        smm_out(&mut c, SmbaseController::REG_SMBASE, 0x7FF0_4000);
        assert_eq!(c.read(SmbaseController::REG_SMBASE, D), 0x7FF0_4000);
        assert_eq!(
            c.read(SmbaseController::REG_SMBASE + 1, AccessWidth::Word),
            0xF040
        );
        assert_eq!(c.smbase_for(ApicId(2)), Some(0x7FF0_4000));
        assert_eq!(c.smbase_for(ApicId(1)), None, "not assigned");
        assert_eq!(c.smbase_for(ApicId(4)), None, "outside the table");
        smm_out(&mut c, SmbaseController::REG_SMBASE, 0);
        assert_eq!(c.smbase_for(ApicId(2)), None, "0 unassigns");
    }

    #[test]
    fn non_smm_writes_are_blocked_and_reported() {
        let mut c = SmbaseController::new(4).unwrap();
        let mut effects = Vec::new();
        c.write(
            &ctx(false),
            SmbaseController::REG_SMBASE,
            AccessWidth::Byte,
            0x1234,
            &mut effects,
        );
        assert_eq!(
            effects,
            [Effect::SmbaseControllerBlocked {
                cpu: CpuIndex(1),
                offset: SmbaseController::REG_SMBASE,
                value: 0x34,
                in_smm: false,
                locked: false,
            }]
        );
        assert_eq!(c.read(SmbaseController::REG_SMBASE, D), 0);
        assert_eq!(c.blocked_writes(), 1);
        assert_eq!(c.ignored_accesses(), 0);
    }

    #[test]
    fn lock_blocks_even_smm_until_hard_reset() {
        let mut c = SmbaseController::new(4).unwrap();
        smm_out(&mut c, SmbaseController::REG_SMBASE, 0x1000);
        smm_out(
            &mut c,
            SmbaseController::REG_CONTROL,
            SmbaseController::CONTROL_LOCK | 0xFFFF_FFF0,
        );
        assert!(c.is_locked());
        assert_eq!(
            c.read(SmbaseController::REG_CONTROL, D),
            1,
            "reserved bits 0"
        );
        let effects = smm_out(&mut c, SmbaseController::REG_APIC_ID_SELECTOR, 3);
        assert_eq!(
            effects,
            [Effect::SmbaseControllerBlocked {
                cpu: CpuIndex(1),
                offset: 0,
                value: 3,
                in_smm: true,
                locked: true,
            }]
        );
        assert_eq!(c.selector(), 0);
        c.reset(false);
        assert!(c.is_locked(), "INIT keeps the lock");
        c.reset(true);
        assert!(!c.is_locked());
        assert_eq!(c.smbase_for(ApicId(0)), None);
        assert_eq!(c.blocked_writes(), 1, "counters describe the run");
    }

    #[test]
    fn formula_mode_computes_and_refuses_overflow() {
        let mut c = SmbaseController::new(16).unwrap();
        smm_out(&mut c, SmbaseController::REG_FORMULA_BASE, 0x7F00_0000);
        smm_out(&mut c, SmbaseController::REG_FORMULA_STRIDE, 0x2000);
        smm_out(
            &mut c,
            SmbaseController::REG_CONTROL,
            SmbaseController::CONTROL_FORMULA,
        );
        assert!(c.is_formula_mode());
        assert_eq!(c.smbase_for(ApicId(0)), Some(0x7F00_0000));
        assert_eq!(c.smbase_for(ApicId(5)), Some(0x7F00_A000));
        assert_eq!(c.smbase_for(ApicId(16)), None, "outside the table");
        smm_out(&mut c, SmbaseController::REG_FORMULA_BASE, 0xFFFF_F000);
        assert_eq!(c.smbase_for(ApicId(0)), Some(0xFFFF_F000));
        assert_eq!(c.smbase_for(ApicId(1)), None, "base + stride overflows");
        smm_out(&mut c, SmbaseController::REG_FORMULA_STRIDE, 0x8000_0000);
        assert_eq!(c.smbase_for(ApicId(2)), None, "apic_id × stride overflows");
    }

    #[test]
    fn narrow_misaligned_and_out_of_range_smm_writes_are_dropped() {
        let mut c = SmbaseController::new(2).unwrap();
        let mut effects = Vec::new();
        c.write(
            &ctx(true),
            SmbaseController::REG_SMBASE,
            AccessWidth::Word,
            0x1234,
            &mut effects,
        );
        c.write(&ctx(true), 0x6, D, 0x1234, &mut effects);
        smm_out(&mut c, SmbaseController::REG_APIC_ID_SELECTOR, 2);
        smm_out(&mut c, SmbaseController::REG_SMBASE, 0x5000);
        assert_eq!(c.read(SmbaseController::REG_SMBASE, D), 0);
        assert_eq!(effects, []);
        assert_eq!(c.ignored_accesses(), 3);
        assert_eq!(c.smbase_for(ApicId(0)), None);
    }

    #[test]
    fn reads_past_the_window_read_all_ones() {
        let mut c = SmbaseController::new(2).unwrap();
        smm_out(&mut c, SmbaseController::REG_FORMULA_STRIDE, 0xAABB_CCDD);
        assert_eq!(c.read(0x12, D), 0xFFFF_AABB);
        assert_eq!(c.read(0x13, AccessWidth::Byte), 0xAA);
        assert_eq!(c.read(0xFFFF, D), 0xFFFF_FFFF);
    }

    #[test]
    fn any_access_anywhere_is_safe() {
        let mut c = SmbaseController::new(3).unwrap();
        let mut effects = Vec::new();
        for in_smm in [true, false] {
            for offset in (0..24u16).chain([0xFFFC, 0xFFFF]) {
                for width in [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword] {
                    for value in [0, 1, 2, 3, 0xFFFF_FFFF] {
                        c.write(&ctx(in_smm), offset, width, value, &mut effects);
                        let _ = c.read(offset, width);
                    }
                }
            }
        }
        for apic_id in [0, 1, 2, 3, u32::MAX] {
            let _ = c.smbase_for(ApicId(apic_id));
        }
    }
}
