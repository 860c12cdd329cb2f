//! Reaching operands: registers by iced-x86 name, effective addresses, segmented memory,
//! the stack, and the generic "operand n of this instruction" accessors handlers use.
//!
//! Segment limits are not checked on data accesses, as QEMU TCG does not check them either
//! (`target/i386/tcg/translate.c` adds the segment base and nothing else); smmsim follows
//! QEMU so that firmware behaves the same under both.

use iced_x86::{OpKind, Register};

use super::alu::mask;
use super::decode::{Decoded, NO_REG};
use super::state::{SegReg, RSP};
use super::{Cpu, Fault};

/// Index of the first register of each iced-x86 register group.
const AL: usize = Register::AL as usize;
const AH: usize = Register::AH as usize;
const SPL: usize = Register::SPL as usize;
const R15L: usize = Register::R15L as usize;
const AX: usize = Register::AX as usize;
const R15W: usize = Register::R15W as usize;
const EAX: usize = Register::EAX as usize;
const R15D: usize = Register::R15D as usize;
const RAX: usize = Register::RAX as usize;
const R15: usize = Register::R15 as usize;
const ES: usize = Register::ES as usize;
const GS: usize = Register::GS as usize;

/// The segment register named by an iced-x86 register.
#[inline(always)]
pub fn seg_of(reg: Register) -> SegReg {
    match reg {
        Register::ES => SegReg::Es,
        Register::CS => SegReg::Cs,
        Register::SS => SegReg::Ss,
        Register::FS => SegReg::Fs,
        Register::GS => SegReg::Gs,
        _ => SegReg::Ds,
    }
}

impl Cpu {
    /// Reads a general-purpose or segment register by its iced-x86 name, zero-extended.
    #[inline(always)]
    pub(super) fn reg(&self, reg: Register) -> u64 {
        let n = reg as usize;
        let regs = &self.state.regs;
        if (EAX..=R15D).contains(&n) {
            regs[n - EAX] & 0xFFFF_FFFF
        } else if (AX..=R15W).contains(&n) {
            regs[n - AX] & 0xFFFF
        } else if (AL..AH).contains(&n) {
            regs[n - AL] & 0xFF
        } else if (AH..SPL).contains(&n) {
            (regs[n - AH] >> 8) & 0xFF
        } else if (SPL..=R15L).contains(&n) {
            regs[n - SPL + 4] & 0xFF
        } else if (RAX..=R15).contains(&n) {
            regs[n - RAX]
        } else if (ES..=GS).contains(&n) {
            u64::from(self.state.segs[n - ES].selector)
        } else {
            0
        }
    }

    /// Writes a general-purpose register by its iced-x86 name: 8- and 16-bit writes keep the
    /// other bits, 32-bit writes zero the upper half (as in 64-bit mode; unobservable before).
    #[inline(always)]
    pub(super) fn set_reg(&mut self, reg: Register, value: u64) {
        let n = reg as usize;
        let regs = &mut self.state.regs;
        if (EAX..=R15D).contains(&n) {
            regs[n - EAX] = value & 0xFFFF_FFFF;
        } else if (AX..=R15W).contains(&n) {
            let r = &mut regs[n - AX];
            *r = (*r & !0xFFFF) | (value & 0xFFFF);
        } else if (AL..AH).contains(&n) {
            let r = &mut regs[n - AL];
            *r = (*r & !0xFF) | (value & 0xFF);
        } else if (AH..SPL).contains(&n) {
            let r = &mut regs[n - AH];
            *r = (*r & !0xFF00) | ((value & 0xFF) << 8);
        } else if (SPL..=R15L).contains(&n) {
            let r = &mut regs[n - SPL + 4];
            *r = (*r & !0xFF) | (value & 0xFF);
        } else if (RAX..=R15).contains(&n) {
            regs[n - RAX] = value;
        }
    }

    /// Reads register `index` (RAX = 0 …) at `size` bytes.
    #[inline(always)]
    pub(super) fn gpr(&self, index: usize, size: u8) -> u64 {
        self.state.regs[index] & mask(size)
    }

    /// Writes register `index` at `size` bytes with the same merge rules as [`Cpu::set_reg`].
    #[inline(always)]
    pub(super) fn set_gpr(&mut self, index: usize, size: u8, value: u64) {
        let r = &mut self.state.regs[index];
        *r = match size {
            1 => (*r & !0xFF) | (value & 0xFF),
            2 => (*r & !0xFFFF) | (value & 0xFFFF),
            4 => value & 0xFFFF_FFFF,
            _ => value,
        };
    }

    /// The effective address (offset within the segment) of the instruction's memory operand.
    #[inline(always)]
    pub(super) fn effective_address(&self, d: &Decoded) -> u64 {
        // Registers hold full-width values; the sum is wrapped to the address size at the end,
        // which gives the same result as adding 16- or 32-bit register values.
        let mut offset = d.disp;
        if d.mem_base != NO_REG {
            offset = offset.wrapping_add(self.state.regs[usize::from(d.mem_base & 15)]);
        }
        if d.mem_index != NO_REG {
            let index = self.state.regs[usize::from(d.mem_index & 15)];
            offset = offset.wrapping_add(index.wrapping_mul(u64::from(d.mem_scale)));
        }
        offset & mask(d.addr_size)
    }

    /// The linear address of `offset` in segment `seg` (32-bit wrap outside long mode).
    #[inline(always)]
    pub(super) fn linear(&self, seg: SegReg, offset: u64) -> u64 {
        self.state.segs[seg as usize].base.wrapping_add(offset) & 0xFFFF_FFFF
    }

    /// Counts and records a non-SMM access to closed SMRAM (PLATFORM.md "SMRAM rule").
    #[cold]
    pub(super) fn note_smram_blocked(&mut self, address: u64, write: bool) {
        self.mem.smram().note_blocked(write);
        self.record(smmsim_traces::EventKind::SmramBlocked { address, write });
    }

    /// Reads `size` bytes at a linear address. (Paging, when it arrives, faults here.)
    #[inline(always)]
    pub(super) fn read_linear(&mut self, linear: u64, size: u8) -> Result<u64, Fault> {
        if self.is_apic_mmio(linear) {
            return Ok(self.apic_mmio_read(linear, size));
        }
        if !self.smm.in_smm && self.mem.smram().covers(linear, u64::from(size)) {
            // PLATFORM.md: a non-SMM access to closed SMRAM reads all ones.
            self.note_smram_blocked(linear, false);
            return Ok(mask(size));
        }
        Ok(self.mem.read(linear, size))
    }

    /// Writes `size` bytes at a linear address.
    #[inline(always)]
    pub(super) fn write_linear(&mut self, linear: u64, size: u8, value: u64) -> Result<(), Fault> {
        if self.is_apic_mmio(linear) {
            self.apic_mmio_write(linear, value & mask(size));
            return Ok(());
        }
        if !self.smm.in_smm && self.mem.smram().covers(linear, u64::from(size)) {
            // PLATFORM.md: a non-SMM write to closed SMRAM is dropped.
            self.note_smram_blocked(linear, true);
            return Ok(());
        }
        self.mem.write(linear, size, value & mask(size));
        Ok(())
    }

    /// A locked compare-and-swap at a linear address (LOCK-prefixed RMW, XCHG, CMPXCHG):
    /// one host CAS in RAM; SMRAM closed to this core and the APIC page get the same
    /// treatment as plain accesses. Returns the value found.
    pub(super) fn compare_exchange_linear(
        &mut self,
        linear: u64,
        size: u8,
        expected: u64,
        new: u64,
    ) -> u64 {
        let blocked = !self.smm.in_smm && self.mem.smram().covers(linear, u64::from(size));
        if blocked || self.is_apic_mmio(linear) {
            let found = self.read_linear(linear, size).unwrap_or(mask(size));
            if found == expected && !blocked {
                self.apic_mmio_write(linear, new);
            } else if blocked {
                self.note_smram_blocked(linear, true);
            }
            return found;
        }
        self.mem.compare_exchange(linear, size, expected, new)
    }

    /// Reads `size` bytes at `seg:offset`.
    #[inline(always)]
    pub(super) fn read_mem(&mut self, seg: SegReg, offset: u64, size: u8) -> Result<u64, Fault> {
        let linear = self.linear(seg, offset);
        self.read_linear(linear, size)
    }

    /// Writes `size` bytes at `seg:offset`.
    #[inline(always)]
    pub(super) fn write_mem(
        &mut self,
        seg: SegReg,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<(), Fault> {
        let linear = self.linear(seg, offset);
        self.write_linear(linear, size, value)
    }

    /// The linear address of the instruction's memory operand.
    #[inline(always)]
    pub(super) fn operand_linear(&self, d: &Decoded) -> u64 {
        let offset = self.effective_address(d);
        self.state.segs[usize::from(d.mem_seg % 6)]
            .base
            .wrapping_add(offset)
            & 0xFFFF_FFFF
    }

    /// Reads operand `n` at `size` bytes: a register, memory or an immediate (immediates come
    /// sign-extended as the encoding says, then truncated to `size`).
    #[inline(always)]
    pub(super) fn read_op(&mut self, d: &Decoded, n: u32, size: u8) -> Result<u64, Fault> {
        match d.insn.op_kind(n) {
            OpKind::Register => Ok(self.reg(d.insn.op_register(n)) & mask(size)),
            OpKind::Memory => {
                let linear = self.operand_linear(d);
                self.read_linear(linear, size)
            }
            _ => Ok(d.insn.immediate(n) & mask(size)),
        }
    }

    /// Writes operand `n` (a register or memory) at `size` bytes.
    #[inline(always)]
    pub(super) fn write_op(
        &mut self,
        d: &Decoded,
        n: u32,
        size: u8,
        value: u64,
    ) -> Result<(), Fault> {
        match d.insn.op_kind(n) {
            OpKind::Register => {
                self.set_reg(d.insn.op_register(n), value & mask(size));
                Ok(())
            }
            _ => {
                let linear = self.operand_linear(d);
                self.write_linear(linear, size, value)
            }
        }
    }

    /// Width of the stack pointer: SP or ESP by SS's B bit.
    #[inline(always)]
    pub(super) fn stack_size(&self) -> u8 {
        if self.state.seg(SegReg::Ss).is_32bit() {
            4
        } else {
            2
        }
    }

    /// Pushes `size` bytes.
    pub(super) fn push(&mut self, size: u8, value: u64) -> Result<(), Fault> {
        let sp_size = self.stack_size();
        let sp = self.gpr(RSP, sp_size).wrapping_sub(u64::from(size)) & mask(sp_size);
        self.write_mem(SegReg::Ss, sp, size, value)?;
        self.set_gpr(RSP, sp_size, sp);
        Ok(())
    }

    /// Pops `size` bytes.
    pub(super) fn pop(&mut self, size: u8) -> Result<u64, Fault> {
        let sp_size = self.stack_size();
        let sp = self.gpr(RSP, sp_size);
        let value = self.read_mem(SegReg::Ss, sp, size)?;
        self.set_gpr(RSP, sp_size, sp.wrapping_add(u64::from(size)));
        Ok(value)
    }

    /// Reads `size` bytes `depth` bytes above the stack pointer without popping.
    pub(super) fn peek(&mut self, depth: u64, size: u8) -> Result<u64, Fault> {
        let sp_size = self.stack_size();
        let sp = self.gpr(RSP, sp_size).wrapping_add(depth) & mask(sp_size);
        self.read_mem(SegReg::Ss, sp, size)
    }

    /// Moves the stack pointer by `delta` bytes.
    pub(super) fn adjust_sp(&mut self, delta: u64) {
        let sp_size = self.stack_size();
        let sp = self.gpr(RSP, sp_size).wrapping_add(delta);
        self.set_gpr(RSP, sp_size, sp);
    }
}
