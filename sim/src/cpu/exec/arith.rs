//! Integer ALU instructions: the eight binary operations, TEST, INC/DEC/NEG/NOT, shifts and
//! rotates, multiply and divide, and XADD — reading and writing operands through the
//! generic accessors, with the LOCK prefix done as a host compare-and-swap loop.

use iced_x86::OpKind;

use super::super::alu::{self, mask, sign_extend, ShiftOp};
use super::super::decode::Decoded;
use super::super::state::{flags, RAX, RDX};
use super::super::{Cpu, Fault};

/// The operations of the 0x00–0x3F opcode rows plus TEST, in the order of ModRM `reg`.
pub const ADD: u8 = 0;
/// OR.
pub const OR: u8 = 1;
/// ADD with carry.
pub const ADC: u8 = 2;
/// SUB with borrow.
pub const SBB: u8 = 3;
/// AND.
pub const AND: u8 = 4;
/// SUB.
pub const SUB: u8 = 5;
/// XOR.
pub const XOR: u8 = 6;
/// CMP: SUB without writing the result.
pub const CMP: u8 = 7;
/// TEST: AND without writing the result.
pub const TEST: u8 = 8;

#[inline(always)]
fn compute<const OP: u8>(a: u64, b: u64, cf: u64, size: u8) -> (u64, u64) {
    match OP {
        ADD => alu::add(a, b, 0, size),
        ADC => alu::add(a, b, cf, size),
        SUB | CMP => alu::sub(a, b, 0, size),
        SBB => alu::sub(a, b, cf, size),
        AND | TEST => (a & b, alu::logic(a & b, size)),
        OR => (a | b, alu::logic(a | b, size)),
        _ => (a ^ b, alu::logic(a ^ b, size)),
    }
}

impl Cpu {
    /// The carry flag as 0 or 1.
    #[inline(always)]
    pub(in super::super) fn cf(&self) -> u64 {
        self.state.rflags & flags::CF
    }

    /// Replaces the arithmetic flags selected by `which` with `new`.
    #[inline(always)]
    pub(in super::super) fn set_flags(&mut self, which: u64, new: u64) {
        self.state.rflags = (self.state.rflags & !which) | (new & which);
    }

    /// Applies `f` to operand 0 and writes the result back, atomically when the instruction
    /// has a LOCK prefix (or is XCHG with memory). Returns the value operand 0 had.
    #[inline(always)]
    pub(in super::super) fn modify_op0(
        &mut self,
        d: &Decoded,
        size: u8,
        locked: bool,
        f: impl Fn(u64) -> u64,
    ) -> Result<u64, Fault> {
        if d.insn.op0_kind() == OpKind::Register {
            let reg = d.insn.op0_register();
            let old = self.reg(reg);
            self.set_reg(reg, f(old) & mask(size));
            return Ok(old);
        }
        let linear = self.operand_linear(d);
        if locked {
            loop {
                let old = self.read_linear(linear, size)?;
                if self.compare_exchange_linear(linear, size, old, f(old) & mask(size)) == old {
                    return Ok(old);
                }
            }
        }
        let old = self.read_linear(linear, size)?;
        self.write_linear(linear, size, f(old))?;
        Ok(old)
    }
}

/// ADD, OR, ADC, SBB, AND, SUB, XOR, CMP, TEST.
pub fn binary<const OP: u8>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let src = cpu.read_op(d, 1, size)?;
    let cf = cpu.cf();
    let old = if OP == CMP || OP == TEST {
        cpu.read_op(d, 0, size)?
    } else {
        cpu.modify_op0(d, size, d.insn.has_lock_prefix(), |dst| {
            compute::<OP>(dst, src, cf, size).0
        })?
    };
    let (_, new_flags) = compute::<OP>(old, src, cf, size);
    cpu.set_flags(flags::ARITH, new_flags);
    Ok(())
}

/// ADD … TEST with a plain register destination and a register source: the hot form, with
/// both registers resolved at decode time and the operand size a constant, so masks and
/// sign bits fold away.
pub fn binary_reg_reg<const OP: u8, const SIZE: u8>(
    cpu: &mut Cpu,
    d: &Decoded,
) -> Result<(), Fault> {
    let source = cpu.state.regs[usize::from(d.regs[1] & 15)];
    binary_into_register::<OP, SIZE>(cpu, d, source);
    Ok(())
}

/// ADD … TEST with a plain register destination and an immediate source.
pub fn binary_reg_imm<const OP: u8, const SIZE: u8>(
    cpu: &mut Cpu,
    d: &Decoded,
) -> Result<(), Fault> {
    binary_into_register::<OP, SIZE>(cpu, d, d.imm);
    Ok(())
}

/// The shared body of the register-destination fast forms: `dst OP= source`.
#[inline(always)]
fn binary_into_register<const OP: u8, const SIZE: u8>(cpu: &mut Cpu, d: &Decoded, source: u64) {
    let dst = usize::from(d.regs[0] & 15);
    let a = cpu.state.regs[dst] & mask(SIZE);
    let (result, new_flags) = compute::<OP>(a, source & mask(SIZE), cpu.cf(), SIZE);
    if OP != CMP && OP != TEST {
        cpu.set_gpr(dst, SIZE, result);
    }
    cpu.set_flags(flags::ARITH, new_flags);
}

/// INC and DEC of a plain register.
pub fn inc_dec_reg<const INC: bool, const SIZE: u8>(
    cpu: &mut Cpu,
    d: &Decoded,
) -> Result<(), Fault> {
    let size = SIZE;
    let dst = usize::from(d.regs[0] & 15);
    let old = cpu.state.regs[dst] & mask(size);
    let (result, new_flags) = if INC {
        alu::inc(old, size)
    } else {
        alu::dec(old, size)
    };
    cpu.set_gpr(dst, size, result);
    cpu.set_flags(flags::ARITH & !flags::CF, new_flags);
    Ok(())
}

/// A shift or rotate of a plain register by an immediate count.
pub fn shift_reg_imm<const OP: u8, const SIZE: u8>(
    cpu: &mut Cpu,
    d: &Decoded,
) -> Result<(), Fault> {
    let op = shift_op::<OP>();
    let size = SIZE;
    let count_mask = if size == 8 { 0x3F } else { 0x1F };
    let count = (d.imm & count_mask) as u32;
    let dst = usize::from(d.regs[0] & 15);
    let value = cpu.state.regs[dst] & mask(size);
    let bits = 8 * u32::from(size);
    // Rotates by less than the width are the common firmware case (hashes, bit packing);
    // with the size a constant they fold to a host rotate.
    if matches!(op, ShiftOp::Rol | ShiftOp::Ror) && count > 0 && count < bits {
        let result = if op == ShiftOp::Rol {
            ((value << count) | (value >> (bits - count))) & mask(size)
        } else {
            ((value >> count) | (value << (bits - count))) & mask(size)
        };
        let msb = result >> (bits - 1) & 1;
        let (cf, of) = if op == ShiftOp::Rol {
            (result & 1, msb ^ (result & 1))
        } else {
            (msb, msb ^ (result >> (bits - 2) & 1))
        };
        cpu.set_gpr(dst, size, result);
        cpu.set_flags(flags::CF | flags::OF, (cf * flags::CF) | (of * flags::OF));
        return Ok(());
    }
    if let Some((result, new_flags)) = alu::shift(op, value, count, cpu.cf() != 0, size) {
        cpu.set_gpr(dst, size, result);
        cpu.set_flags(shift_flags(op), new_flags);
    }
    Ok(())
}

fn shift_op<const OP: u8>() -> ShiftOp {
    match OP {
        0 => ShiftOp::Rol,
        1 => ShiftOp::Ror,
        2 => ShiftOp::Rcl,
        3 => ShiftOp::Rcr,
        4 => ShiftOp::Shl,
        5 => ShiftOp::Shr,
        _ => ShiftOp::Sar,
    }
}

/// The flags a shift or rotate writes: rotates only CF and OF.
fn shift_flags(op: ShiftOp) -> u64 {
    match op {
        ShiftOp::Rol | ShiftOp::Ror | ShiftOp::Rcl | ShiftOp::Rcr => flags::CF | flags::OF,
        _ => flags::ARITH,
    }
}

/// INC and DEC: CF is kept.
pub fn inc_dec<const INC: bool>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let step = |value| {
        if INC {
            alu::inc(value, size)
        } else {
            alu::dec(value, size)
        }
    };
    let old = cpu.modify_op0(d, size, d.insn.has_lock_prefix(), |v| step(v).0)?;
    cpu.set_flags(flags::ARITH & !flags::CF, step(old).1);
    Ok(())
}

/// NEG.
pub fn neg(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let old = cpu.modify_op0(d, size, d.insn.has_lock_prefix(), |v| alu::neg(v, size).0)?;
    cpu.set_flags(flags::ARITH, alu::neg(old, size).1);
    Ok(())
}

/// NOT: no flags.
pub fn not(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    cpu.modify_op0(d, d.op_size, d.insn.has_lock_prefix(), |v| !v)?;
    Ok(())
}

/// XADD: TEMP ← SRC + DEST; SRC ← DEST; DEST ← TEMP (SDM Vol. 2D, XADD) — the destination
/// is written last, so `xadd eax, eax` leaves the sum.
pub fn xadd(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let src = cpu.read_op(d, 1, size)?;
    let old = if d.insn.op0_kind() == OpKind::Register {
        let old = cpu.read_op(d, 0, size)?;
        cpu.write_op(d, 1, size, old)?;
        cpu.write_op(d, 0, size, alu::add(old, src, 0, size).0)?;
        old
    } else {
        let old = cpu.modify_op0(d, size, d.insn.has_lock_prefix(), |dst| {
            alu::add(dst, src, 0, size).0
        })?;
        cpu.write_op(d, 1, size, old)?;
        old
    };
    cpu.set_flags(flags::ARITH, alu::add(old, src, 0, size).1);
    Ok(())
}

/// The shift/rotate group: count from an immediate, CL or the implicit 1.
pub fn shift<const OP: u8>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let op = shift_op::<OP>();
    let size = d.op_size;
    let count_mask = if size == 8 { 0x3F } else { 0x1F };
    let count = (cpu.read_op(d, 1, 1)? & count_mask) as u32;
    let value = cpu.read_op(d, 0, size)?;
    let cf_in = cpu.cf() != 0;
    if let Some((result, new_flags)) = alu::shift(op, value, count, cf_in, size) {
        cpu.write_op(d, 0, size, result)?;
        cpu.set_flags(shift_flags(op), new_flags);
    }
    Ok(())
}

/// SHLD / SHRD.
pub fn double_shift<const LEFT: bool>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let count_mask = if size == 8 { 0x3F } else { 0x1F };
    let count = (cpu.read_op(d, 2, 1)? & count_mask) as u32;
    let fill = cpu.read_op(d, 1, size)?;
    let value = cpu.read_op(d, 0, size)?;
    if let Some((result, new_flags)) = alu::double_shift(LEFT, value, fill, count, size) {
        cpu.write_op(d, 0, size, result)?;
        cpu.set_flags(flags::ARITH, new_flags);
    }
    Ok(())
}

/// Flags after a multiply, as QEMU computes them (`CC_OP_MUL*`): CF = OF = "the high half
/// matters", SF/ZF/PF from the low half, AF = 0 (SF, ZF, AF, PF are undefined in the SDM).
fn multiply_flags(low: u64, overflow: bool, size: u8) -> u64 {
    alu::szp(low, size) | if overflow { flags::CF | flags::OF } else { 0 }
}

/// Splits a double-width product into the accumulator pair: AX for bytes, DX:AX, EDX:EAX.
fn store_wide(cpu: &mut Cpu, size: u8, product: u128) {
    let bits = 8 * u32::from(size);
    if size == 1 {
        cpu.set_gpr(RAX, 2, product as u64);
    } else {
        cpu.set_gpr(RAX, size, product as u64);
        cpu.set_gpr(RDX, size, (product >> bits) as u64);
    }
}

/// The dividend of a divide: AX for bytes, else DX:AX / EDX:EAX.
fn load_wide(cpu: &Cpu, size: u8) -> u128 {
    if size == 1 {
        u128::from(cpu.gpr(RAX, 2))
    } else {
        (u128::from(cpu.gpr(RDX, size)) << (8 * u32::from(size))) | u128::from(cpu.gpr(RAX, size))
    }
}

/// MUL r/m: unsigned, into the accumulator pair.
pub fn mul(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let src = cpu.read_op(d, 0, size)?;
    let product = u128::from(cpu.gpr(RAX, size)) * u128::from(src);
    store_wide(cpu, size, product);
    let high = product >> (8 * u32::from(size));
    cpu.set_flags(
        flags::ARITH,
        multiply_flags(product as u64 & mask(size), high != 0, size),
    );
    Ok(())
}

/// IMUL in its three forms: one operand (into the accumulator pair), two and three operands
/// (truncated into a register).
pub fn imul(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let signed = |v: u64| i128::from(sign_extend(v, size) as i64);
    let (a, b) = match d.insn.op_count() {
        1 => (cpu.gpr(RAX, size), cpu.read_op(d, 0, size)?),
        2 => (cpu.read_op(d, 0, size)?, cpu.read_op(d, 1, size)?),
        _ => (cpu.read_op(d, 1, size)?, cpu.read_op(d, 2, size)?),
    };
    let product = signed(a) * signed(b);
    let low = product as u64 & mask(size);
    let overflow = i128::from(sign_extend(low, size) as i64) != product;
    if d.insn.op_count() == 1 {
        store_wide(cpu, size, product as u128);
    } else {
        cpu.write_op(d, 0, size, low)?;
    }
    cpu.set_flags(flags::ARITH, multiply_flags(low, overflow, size));
    Ok(())
}

/// DIV r/m: #DE on a zero divisor or a quotient that does not fit. Flags are undefined and
/// left unchanged, as QEMU does.
pub fn div(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let divisor = u128::from(cpu.read_op(d, 0, size)?);
    if divisor == 0 {
        return Err(Fault::DivideError);
    }
    let dividend = load_wide(cpu, size);
    let quotient = dividend / divisor;
    if quotient > u128::from(mask(size)) {
        return Err(Fault::DivideError);
    }
    store_quotient(cpu, size, quotient as u64, (dividend % divisor) as u64);
    Ok(())
}

/// IDIV r/m: signed, truncating towards zero; #DE as DIV.
pub fn idiv(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let divisor = i128::from(sign_extend(cpu.read_op(d, 0, size)?, size) as i64);
    if divisor == 0 {
        return Err(Fault::DivideError);
    }
    let bits = 8 * u32::from(size);
    let raw = load_wide(cpu, size);
    // Sign-extend the 2×size-bit dividend.
    let dividend = ((raw << (128 - 2 * bits)) as i128) >> (128 - 2 * bits);
    let quotient = dividend / divisor;
    let limit = 1i128 << (bits - 1);
    if quotient >= limit || quotient < -limit {
        return Err(Fault::DivideError);
    }
    store_quotient(
        cpu,
        size,
        quotient as u64 & mask(size),
        (dividend % divisor) as u64 & mask(size),
    );
    Ok(())
}

fn store_quotient(cpu: &mut Cpu, size: u8, quotient: u64, remainder: u64) {
    if size == 1 {
        cpu.set_gpr(RAX, 2, (remainder << 8) | quotient);
    } else {
        cpu.set_gpr(RAX, size, quotient);
        cpu.set_gpr(RDX, size, remainder);
    }
}
