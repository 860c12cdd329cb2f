//! Control transfer: near and far JMP/CALL/RET, Jcc, LOOP/JCXZ, INT/INTO/INT3/IRET and HLT.
//!
//! Instructions are decoded at IP 0 (see `decode.rs`), so iced's near-branch target is the
//! offset from the instruction's start; the target is that plus the current IP, wrapped to
//! the branch's operand size.

use iced_x86::{Code, OpKind};

use super::super::alu::mask;
use super::super::decode::Decoded;
use super::super::state::{flags, SegReg, RCX};
use super::super::{Activity, Cpu, Fault, StopReason};

impl Cpu {
    /// The absolute target of a relative branch.
    #[inline(always)]
    fn relative_target(&self, d: &Decoded) -> u64 {
        let width = match d.insn.op0_kind() {
            OpKind::NearBranch16 => 0xFFFF,
            OpKind::NearBranch32 => 0xFFFF_FFFF,
            _ => u64::MAX,
        };
        self.state.rip.wrapping_add(d.insn.near_branch_target()) & width
    }
}

/// The size of the IP a near CALL/RET/JMP r/m works with.
fn branch_size(d: &Decoded) -> u8 {
    d.insn.stack_pointer_increment().unsigned_abs().min(8) as u8
}

/// Jcc rel.
pub fn jcc(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    if cpu.condition(d.insn.condition_code()) {
        cpu.next_rip = cpu.relative_target(d);
    }
    Ok(())
}

/// JMP rel, JMP r/m, JMP ptr16:16/32, JMP m16:16/32.
pub fn jmp(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    match d.insn.op0_kind() {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            cpu.next_rip = cpu.relative_target(d);
        }
        OpKind::FarBranch16 | OpKind::FarBranch32 => {
            let offset = if d.insn.op0_kind() == OpKind::FarBranch16 {
                u64::from(d.insn.far_branch16())
            } else {
                u64::from(d.insn.far_branch32())
            };
            cpu.load_code_segment(d.insn.far_branch_selector())?;
            cpu.next_rip = offset;
        }
        _ if is_far_memory(d) => {
            let (selector, offset) = read_far_pointer(cpu, d)?;
            cpu.load_code_segment(selector)?;
            cpu.next_rip = offset;
        }
        _ => {
            let size = d.op_size;
            cpu.next_rip = cpu.read_op(d, 0, size)? & mask(size);
        }
    }
    Ok(())
}

fn is_far_memory(d: &Decoded) -> bool {
    matches!(
        d.insn.code(),
        Code::Jmp_m1616 | Code::Jmp_m1632 | Code::Call_m1616 | Code::Call_m1632
    )
}

/// Reads a far pointer m16:16 / m16:32 (offset first, then the selector).
fn read_far_pointer(cpu: &mut Cpu, d: &Decoded) -> Result<(u16, u64), Fault> {
    let offset_size = if matches!(d.insn.code(), Code::Jmp_m1616 | Code::Call_m1616) {
        2
    } else {
        4
    };
    let linear = cpu.operand_linear(d);
    let offset = cpu.read_linear(linear, offset_size)?;
    let selector = cpu.read_linear((linear + u64::from(offset_size)) & 0xFFFF_FFFF, 2)? as u16;
    Ok((selector, offset))
}

/// CALL rel, CALL r/m (near), CALL ptr16:16/32 and CALL m16:16/32 (far).
pub fn call(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let return_ip = cpu.next_rip;
    match d.insn.op0_kind() {
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
            let target = cpu.relative_target(d);
            cpu.push(branch_size(d), return_ip)?;
            cpu.next_rip = target;
        }
        OpKind::FarBranch16 | OpKind::FarBranch32 => {
            let (size, offset) = if d.insn.op0_kind() == OpKind::FarBranch16 {
                (2, u64::from(d.insn.far_branch16()))
            } else {
                (4, u64::from(d.insn.far_branch32()))
            };
            far_call(cpu, d.insn.far_branch_selector(), offset, size, return_ip)?;
        }
        _ if is_far_memory(d) => {
            let (selector, offset) = read_far_pointer(cpu, d)?;
            let size = if d.insn.code() == Code::Call_m1616 {
                2
            } else {
                4
            };
            far_call(cpu, selector, offset, size, return_ip)?;
        }
        _ => {
            let size = d.op_size;
            let target = cpu.read_op(d, 0, size)? & mask(size);
            cpu.push(branch_size(d), return_ip)?;
            cpu.next_rip = target;
        }
    }
    Ok(())
}

/// Pushes CS and the return IP, then enters the new code segment; a failed CS load leaves
/// the stack as it was.
fn far_call(
    cpu: &mut Cpu,
    selector: u16,
    offset: u64,
    size: u8,
    return_ip: u64,
) -> Result<(), Fault> {
    let old_cs = cpu.state.segs[SegReg::Cs as usize];
    cpu.load_code_segment(selector)?;
    let pushed = cpu
        .push(size, u64::from(old_cs.selector))
        .and_then(|()| cpu.push(size, return_ip));
    if let Err(fault) = pushed {
        cpu.state.segs[SegReg::Cs as usize] = old_cs;
        return Err(fault);
    }
    cpu.next_rip = offset;
    Ok(())
}

/// RET and RET imm16 (near).
pub fn ret(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = if matches!(d.insn.code(), Code::Retnw | Code::Retnw_imm16) {
        2
    } else {
        4
    };
    let target = cpu.pop(size)?;
    if d.insn.op_count() == 1 {
        cpu.adjust_sp(d.insn.immediate(0) & 0xFFFF);
    }
    cpu.next_rip = target;
    Ok(())
}

/// RETF and RETF imm16 (same privilege level only).
pub fn retf(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = if matches!(d.insn.code(), Code::Retfw | Code::Retfw_imm16) {
        2
    } else {
        4
    };
    let offset = cpu.peek(0, size)?;
    let selector = cpu.peek(u64::from(size), size)? as u16;
    if cpu.state.protected_mode() && selector & 3 != cpu.cpl() {
        // A return to an outer ring needs a stack switch, which is not covered.
        return Err(Fault::GeneralProtection(selector & 0xFFFC));
    }
    cpu.load_code_segment(selector)?;
    cpu.adjust_sp(2 * u64::from(size));
    if d.insn.op_count() == 1 {
        cpu.adjust_sp(d.insn.immediate(0) & 0xFFFF);
    }
    cpu.next_rip = offset;
    Ok(())
}

/// The count register LOOP and JCXZ use: CX or ECX by address size (iced names it in the code).
fn count_size(d: &Decoded) -> u8 {
    match d.insn.code() {
        Code::Loop_rel8_16_CX
        | Code::Loop_rel8_32_CX
        | Code::Loope_rel8_16_CX
        | Code::Loope_rel8_32_CX
        | Code::Loopne_rel8_16_CX
        | Code::Loopne_rel8_32_CX
        | Code::Jcxz_rel8_16
        | Code::Jcxz_rel8_32 => 2,
        _ => 4,
    }
}

/// LOOP, LOOPE, LOOPNE: decrement the count, branch while non-zero (and ZF as asked).
pub fn loop_family(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = count_size(d);
    let count = cpu.gpr(RCX, size).wrapping_sub(1) & mask(size);
    cpu.set_gpr(RCX, size, count);
    let zf = cpu.state.rflags & flags::ZF != 0;
    let taken = count != 0
        && match d.insn.mnemonic() {
            iced_x86::Mnemonic::Loope => zf,
            iced_x86::Mnemonic::Loopne => !zf,
            _ => true,
        };
    if taken {
        cpu.next_rip = cpu.relative_target(d);
    }
    Ok(())
}

/// JCXZ / JECXZ.
pub fn jcxz(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    if cpu.gpr(RCX, count_size(d)) == 0 {
        cpu.next_rip = cpu.relative_target(d);
    }
    Ok(())
}

/// INT imm8.
pub fn int(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    cpu.software_interrupt(d.insn.immediate(0) as u8)
}

/// INT3: #BP as a trap.
pub fn int3(_cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    Err(Fault::Breakpoint)
}

/// INTO: #OF as a trap when OF is set.
pub fn into(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    if cpu.state.rflags & flags::OF != 0 {
        return Err(Fault::Overflow);
    }
    Ok(())
}

/// IRET / IRETD.
pub fn iret(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = if d.insn.code() == Code::Iretw { 2 } else { 4 };
    cpu.iret(size)
}

/// HLT: the core stops until something wakes it; IP already points past the HLT, where a
/// woken core resumes (SDM Vol. 2A, HLT).
pub fn hlt(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    cpu.activity = Activity::Halted;
    cpu.record(smmsim_traces::EventKind::Halt);
    cpu.request_stop(StopReason::Halted);
    Ok(())
}
