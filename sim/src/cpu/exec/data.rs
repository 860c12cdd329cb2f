//! Data movement: MOV and its extending forms, LEA, XCHG, CMPXCHG(8B), BSWAP, the
//! accumulator extensions, the stack (PUSH/POP and friends, ENTER/LEAVE), flag transfers
//! and far-pointer loads.

use iced_x86::{Code, OpKind, Register};

use super::super::alu::{self, mask, sign_extend};
use super::super::decode::Decoded;
use super::super::operand::seg_of;
use super::super::state::{flags, SegReg, RAX, RBP, RBX, RCX, RDX, RSP};
use super::super::{Cpu, Fault};

/// MOV between registers, memory and immediates (not segment or control registers).
pub fn mov(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let value = cpu.read_op(d, 1, d.op_size)?;
    cpu.write_op(d, 0, d.op_size, value)
}

/// MOV between plain registers.
pub fn mov_reg_reg<const SIZE: u8>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let value = cpu.state.regs[usize::from(d.regs[1] & 15)];
    cpu.set_gpr(usize::from(d.regs[0] & 15), SIZE, value);
    Ok(())
}

/// MOV of an immediate into a plain register.
pub fn mov_reg_imm<const SIZE: u8>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    cpu.set_gpr(usize::from(d.regs[0] & 15), SIZE, d.imm);
    Ok(())
}

/// MOV from memory into a plain register (a load).
pub fn mov_reg_mem<const SIZE: u8>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let linear = cpu.operand_linear(d);
    let value = cpu.read_linear(linear, SIZE)?;
    cpu.set_gpr(usize::from(d.regs[0] & 15), SIZE, value);
    Ok(())
}

/// MOV from a plain register into memory (a store).
pub fn mov_mem_reg<const SIZE: u8>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let linear = cpu.operand_linear(d);
    let value = cpu.state.regs[usize::from(d.regs[1] & 15)];
    cpu.write_linear(linear, SIZE, value)
}

/// MOV Sreg, r/m16: a segment load (MOV to CS is #UD, rejected by the decoder).
pub fn mov_to_segment(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let selector = cpu.read_op(d, 1, 2)? as u16;
    cpu.load_segment(seg_of(d.insn.op0_register()), selector)
}

/// MOV r/m, Sreg: a register destination of 32 bits gets the zero-extended selector.
pub fn mov_from_segment(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let selector = cpu.reg(d.insn.op1_register());
    cpu.write_op(d, 0, d.op_size, selector)
}

/// The size of operand 1 when it differs from operand 0's (MOVZX, MOVSX).
fn source_size(d: &Decoded) -> u8 {
    match d.insn.op1_kind() {
        OpKind::Register => d.insn.op1_register().size() as u8,
        _ => d.insn.memory_size().size() as u8,
    }
}

/// MOVZX.
pub fn movzx(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let value = cpu.read_op(d, 1, source_size(d))?;
    cpu.write_op(d, 0, d.op_size, value)
}

/// MOVSX.
pub fn movsx(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = source_size(d);
    let value = sign_extend(cpu.read_op(d, 1, size)?, size);
    cpu.write_op(d, 0, d.op_size, value)
}

/// LEA: the effective address, truncated to the operand size.
pub fn lea(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let offset = cpu.effective_address(d);
    cpu.write_op(d, 0, d.op_size, offset)
}

/// XCHG: with a memory operand the swap is atomic, LOCK or not (SDM Vol. 2D, XCHG).
pub fn xchg(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    if d.insn.op0_kind() == OpKind::Register && d.insn.op1_kind() == OpKind::Register {
        let (a, b) = (d.insn.op0_register(), d.insn.op1_register());
        let (va, vb) = (cpu.reg(a), cpu.reg(b));
        cpu.set_reg(a, vb);
        cpu.set_reg(b, va);
        return Ok(());
    }
    // iced puts the register in operand 1 for the memory forms.
    let reg = d.insn.op1_register();
    let new = cpu.reg(reg);
    let old = cpu.modify_op0(d, size, true, |_| new)?;
    cpu.set_reg(reg, old);
    Ok(())
}

/// CMPXCHG r/m, r: compare the accumulator with operand 0; equal → store operand 1, else
/// load the accumulator. With memory, one host compare-and-swap.
pub fn cmpxchg(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let expected = cpu.gpr(RAX, size);
    let new = cpu.read_op(d, 1, size)?;
    let found = if d.insn.op0_kind() == OpKind::Register {
        let reg = d.insn.op0_register();
        let found = cpu.reg(reg);
        if found == expected {
            cpu.set_reg(reg, new);
        }
        found
    } else {
        let linear = cpu.operand_linear(d);
        cpu.read_linear(linear, size)?;
        cpu.compare_exchange_linear(linear, size, expected, new)
    };
    cpu.set_flags(flags::ARITH, alu::sub(expected, found, 0, size).1);
    if found != expected {
        cpu.set_gpr(RAX, size, found);
    }
    Ok(())
}

/// CMPXCHG8B m64: EDX:EAX against memory; equal → store ECX:EBX; only ZF changes.
pub fn cmpxchg8b(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let linear = cpu.operand_linear(d);
    let expected = (cpu.gpr(RDX, 4) << 32) | cpu.gpr(RAX, 4);
    let new = (cpu.gpr(RCX, 4) << 32) | cpu.gpr(RBX, 4);
    cpu.read_linear(linear, 8)?;
    let found = cpu.compare_exchange_linear(linear, 8, expected, new);
    if found == expected {
        cpu.set_flags(flags::ZF, flags::ZF);
    } else {
        cpu.set_flags(flags::ZF, 0);
        cpu.set_gpr(RAX, 4, found & 0xFFFF_FFFF);
        cpu.set_gpr(RDX, 4, found >> 32);
    }
    Ok(())
}

/// BSWAP r32.
pub fn bswap(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let reg = d.insn.op0_register();
    let value = cpu.reg(reg);
    // BSWAP of a 16-bit register is undefined; QEMU (and real processors) give zero.
    let swapped = match d.op_size {
        4 => u64::from((value as u32).swap_bytes()),
        8 => value.swap_bytes(),
        _ => 0,
    };
    cpu.set_reg(reg, swapped);
    Ok(())
}

/// The operand size of CBW/CWDE/CWD/CDQ, which have no explicit operands: iced names it in
/// the code (a 0x66 prefix switches CWDE to CBW and back).
fn accumulator_size(d: &Decoded) -> u8 {
    match d.insn.code() {
        Code::Cbw | Code::Cwd => 2,
        Code::Cdqe | Code::Cqo => 8,
        _ => 4,
    }
}

/// CBW / CWDE (sign-extend the accumulator's lower half).
pub fn widen_accumulator(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = accumulator_size(d);
    let half = size / 2;
    let value = sign_extend(cpu.gpr(RAX, half), half);
    cpu.set_gpr(RAX, size, value);
    Ok(())
}

/// CWD / CDQ (sign of the accumulator into DX / EDX).
pub fn sign_into_dx(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = accumulator_size(d);
    let negative = cpu.gpr(RAX, size) & alu::sign_bit(size) != 0;
    cpu.set_gpr(RDX, size, if negative { mask(size) } else { 0 });
    Ok(())
}

/// Bytes a stack instruction moves (iced's stack-pointer increment, always 2, 4 or 8).
fn stack_bytes(d: &Decoded) -> u8 {
    d.insn.stack_pointer_increment().unsigned_abs() as u8
}

/// PUSH r/m, imm, Sreg: PUSH SP pushes the value SP had before.
pub fn push(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = stack_bytes(d);
    let value = match d.insn.op0_kind() {
        OpKind::Register => cpu.reg(d.insn.op0_register()),
        OpKind::Memory => cpu.read_op(d, 0, size)?,
        _ => d.insn.immediate(0),
    };
    cpu.push(size, value & mask(size))
}

/// POP r/m, Sreg. The stack pointer moves before a memory destination's address is computed
/// (SDM Vol. 2B, POP); a segment load that faults leaves SP unchanged.
pub fn pop(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = stack_bytes(d);
    if d.insn.op0_kind() == OpKind::Register {
        let reg = d.insn.op0_register();
        if reg.is_segment_register() {
            let selector = cpu.peek(0, size)? as u16;
            cpu.load_segment(seg_of(reg), selector)?;
            cpu.adjust_sp(u64::from(size));
            return Ok(());
        }
        let value = cpu.pop(size)?;
        cpu.set_reg(reg, value);
        return Ok(());
    }
    let value = cpu.pop(size)?;
    cpu.write_op(d, 0, size, value)
}

/// PUSHA / PUSHAD: AX CX DX BX (original SP) BP SI DI.
pub fn pusha(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = stack_bytes(d) / 8;
    let original_sp = cpu.gpr(RSP, size);
    for index in 0..8 {
        let value = if index == RSP {
            original_sp
        } else {
            cpu.gpr(index, size)
        };
        cpu.push(size, value)?;
    }
    Ok(())
}

/// POPA / POPAD: the reverse, skipping the saved SP.
pub fn popa(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = stack_bytes(d) / 8;
    for index in (0..8).rev() {
        let value = cpu.pop(size)?;
        if index != RSP {
            cpu.set_gpr(index, size, value);
        }
    }
    Ok(())
}

/// PUSHF / PUSHFD: the image has VM and RF clear (SDM Vol. 2B, PUSHF).
pub fn pushf(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = stack_bytes(d);
    let image = cpu.state.rflags & !(flags::VM | flags::RF);
    cpu.push(size, image & mask(size))
}

/// POPF / POPFD at CPL 0: every flag but VM, RF and the reserved bits.
pub fn popf(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = stack_bytes(d);
    let value = cpu.pop(size)?;
    let writable = flags::POPF_WRITABLE & mask(size);
    cpu.state.rflags = (cpu.state.rflags & !writable) | (value & writable) | flags::FIXED1;
    Ok(())
}

/// LAHF: AH = SF ZF 0 AF 0 PF 1 CF.
pub fn lahf(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    let image = (cpu.state.rflags & (flags::ARITH & !flags::OF)) | flags::FIXED1;
    cpu.set_reg(Register::AH, image);
    Ok(())
}

/// SAHF: SF ZF AF PF CF from AH.
pub fn sahf(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    let ah = cpu.reg(Register::AH);
    cpu.set_flags(flags::ARITH & !flags::OF, ah);
    Ok(())
}

/// ENTER imm16, imm8: a stack frame with `level` saved frame pointers (SDM Vol. 2A, ENTER).
pub fn enter(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = if d.insn.code() == Code::Enterw_imm16_imm8 {
        2
    } else {
        4
    };
    let frame_bytes = d.insn.immediate(0) & 0xFFFF;
    let level = d.insn.immediate(1) & 0x1F;
    let sp_size = cpu.stack_size();
    cpu.push(size, cpu.gpr(RBP, size))?;
    let frame = cpu.gpr(RSP, sp_size);
    if level > 0 {
        let mut bp = cpu.gpr(RBP, sp_size);
        for _ in 1..level {
            bp = bp.wrapping_sub(u64::from(size)) & mask(sp_size);
            let saved = cpu.read_mem(SegReg::Ss, bp, size)?;
            cpu.push(size, saved)?;
        }
        cpu.push(size, frame)?;
    }
    cpu.set_gpr(RBP, size, frame);
    cpu.adjust_sp(frame_bytes.wrapping_neg());
    Ok(())
}

/// LEAVE: SP = BP, then pop BP.
pub fn leave(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let sp_size = cpu.stack_size();
    let size = if matches!(d.insn.code(), Code::Leavew) {
        2
    } else {
        4
    };
    cpu.set_gpr(RSP, sp_size, cpu.gpr(RBP, sp_size));
    let bp = cpu.pop(size)?;
    cpu.set_gpr(RBP, size, bp);
    Ok(())
}

/// LDS, LES, LFS, LGS, LSS: a far pointer from memory into Sreg:reg.
pub fn load_far_pointer(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let seg = match d.insn.mnemonic() {
        iced_x86::Mnemonic::Les => SegReg::Es,
        iced_x86::Mnemonic::Lss => SegReg::Ss,
        iced_x86::Mnemonic::Lfs => SegReg::Fs,
        iced_x86::Mnemonic::Lgs => SegReg::Gs,
        _ => SegReg::Ds,
    };
    let size = d.op_size;
    let linear = cpu.operand_linear(d);
    let offset = cpu.read_linear(linear, size)?;
    let selector = cpu.read_linear((linear + u64::from(size)) & 0xFFFF_FFFF, 2)? as u16;
    cpu.load_segment(seg, selector)?;
    cpu.set_reg(d.insn.op0_register(), offset);
    Ok(())
}

/// XLAT: AL = [seg:(E)BX + AL]; iced presents it as a memory operand with base BX, index AL.
pub fn xlat(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    // The decode step leaves AL out of the precomputed address (it is a byte register).
    let offset = cpu.effective_address(d).wrapping_add(cpu.gpr(RAX, 1)) & mask(d.addr_size);
    let value = cpu.read_mem(seg_of(d.insn.memory_segment()), offset, 1)?;
    cpu.set_gpr(RAX, 1, value);
    Ok(())
}
