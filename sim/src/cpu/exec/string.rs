//! String instructions (MOVS, STOS, LODS, CMPS, SCAS, INS, OUTS) with REP, REPE and REPNE.
//!
//! One execution of a REP instruction runs at most [`MAX_ITERATIONS_PER_STEP`] elements and,
//! if the count is not exhausted, leaves IP on the instruction so the next step resumes it.
//! That keeps a long REP MOVS interruptible and lets the core's cycle budget end between
//! elements, as on hardware (SDM Vol. 2B, REP: "interrupted … after the current iteration").

use iced_x86::Mnemonic;

use super::super::alu::{self, mask};
use super::super::decode::Decoded;
use super::super::operand::seg_of;
use super::super::state::{flags, SegReg, RAX, RCX, RDI, RDX, RSI};
use super::super::{Cpu, Fault};
use smmsim_devices::AccessWidth;

/// Elements one step of a REP instruction handles before yielding.
pub const MAX_ITERATIONS_PER_STEP: u64 = 1024;

/// The width for a port access of `size` bytes.
pub(super) fn port_width(size: u8) -> AccessWidth {
    match size {
        1 => AccessWidth::Byte,
        2 => AccessWidth::Word,
        _ => AccessWidth::Dword,
    }
}

/// Runs one string instruction, repeated as its prefix says.
pub fn string(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let mnemonic = d.insn.mnemonic();
    let size = d.insn.memory_size().size() as u8;
    let size = if size == 0 { d.op_size } else { size };
    let addr = d.addr_size;
    let compares = matches!(
        mnemonic,
        Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
    );
    let repeated = d.insn.has_rep_prefix() || d.insn.has_repe_prefix() || d.insn.has_repne_prefix();
    let step = if cpu.state.rflags & flags::DF != 0 {
        u64::from(size).wrapping_neg()
    } else {
        u64::from(size)
    };
    let source_seg = seg_of(d.insn.memory_segment());
    let mut done = 0;
    loop {
        if repeated {
            if cpu.gpr(RCX, addr) == 0 {
                return Ok(());
            }
            if done == MAX_ITERATIONS_PER_STEP {
                // Resume this instruction on the next step.
                cpu.next_rip = cpu.state.rip;
                return Ok(());
            }
        }
        let si = cpu.gpr(RSI, addr);
        let di = cpu.gpr(RDI, addr);
        let mut zf_after = None;
        match mnemonic {
            Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd => {
                let value = cpu.read_mem(source_seg, si, size)?;
                cpu.write_mem(SegReg::Es, di, size, value)?;
                advance(cpu, RSI, addr, step);
                advance(cpu, RDI, addr, step);
            }
            Mnemonic::Stosb | Mnemonic::Stosw | Mnemonic::Stosd => {
                let value = cpu.gpr(RAX, size);
                cpu.write_mem(SegReg::Es, di, size, value)?;
                advance(cpu, RDI, addr, step);
            }
            Mnemonic::Lodsb | Mnemonic::Lodsw | Mnemonic::Lodsd => {
                let value = cpu.read_mem(source_seg, si, size)?;
                cpu.set_gpr(RAX, size, value);
                advance(cpu, RSI, addr, step);
            }
            Mnemonic::Cmpsb | Mnemonic::Cmpsw | Mnemonic::Cmpsd => {
                let a = cpu.read_mem(source_seg, si, size)?;
                let b = cpu.read_mem(SegReg::Es, di, size)?;
                let (_, f) = alu::sub(a, b, 0, size);
                cpu.set_flags(flags::ARITH, f);
                zf_after = Some(f & flags::ZF != 0);
                advance(cpu, RSI, addr, step);
                advance(cpu, RDI, addr, step);
            }
            Mnemonic::Scasb | Mnemonic::Scasw | Mnemonic::Scasd => {
                let b = cpu.read_mem(SegReg::Es, di, size)?;
                let (_, f) = alu::sub(cpu.gpr(RAX, size), b, 0, size);
                cpu.set_flags(flags::ARITH, f);
                zf_after = Some(f & flags::ZF != 0);
                advance(cpu, RDI, addr, step);
            }
            Mnemonic::Insb | Mnemonic::Insw | Mnemonic::Insd => {
                let port = cpu.gpr(RDX, 2) as u16;
                let ctx = cpu.access_context();
                let value = cpu.platform.port_read(&ctx, port, port_width(size));
                cpu.write_mem(SegReg::Es, di, size, u64::from(value))?;
                if done > 0 {
                    cpu.charge(cpu.timing.port_io);
                }
                advance(cpu, RDI, addr, step);
            }
            _ => {
                // OUTSB / OUTSW / OUTSD
                let value = cpu.read_mem(source_seg, si, size)?;
                let port = cpu.gpr(RDX, 2) as u16;
                if done > 0 {
                    cpu.charge(cpu.timing.port_io);
                }
                advance(cpu, RSI, addr, step);
                if cpu.port_out(port, port_width(size), value as u32) {
                    if repeated {
                        let count = cpu.gpr(RCX, addr).wrapping_sub(1);
                        cpu.set_gpr(RCX, addr, count);
                    }
                    return Ok(());
                }
            }
        }
        if !repeated {
            return Ok(());
        }
        // The instruction's base cost paid for the first element of this step.
        if done > 0 && !is_port_string(mnemonic) {
            cpu.charge(cpu.timing.string_iteration);
        }
        done += 1;
        let count = cpu.gpr(RCX, addr).wrapping_sub(1) & mask(addr);
        cpu.set_gpr(RCX, addr, count);
        if let (true, Some(zf)) = (compares, zf_after) {
            // REPE stops on a difference, REPNE on a match.
            if d.insn.has_repe_prefix() != zf {
                return Ok(());
            }
        }
    }
}

fn is_port_string(mnemonic: Mnemonic) -> bool {
    matches!(
        mnemonic,
        Mnemonic::Insb
            | Mnemonic::Insw
            | Mnemonic::Insd
            | Mnemonic::Outsb
            | Mnemonic::Outsw
            | Mnemonic::Outsd
    )
}

fn advance(cpu: &mut Cpu, index: usize, addr: u8, step: u64) {
    let value = cpu.gpr(index, addr).wrapping_add(step);
    cpu.set_gpr(index, addr, value);
}
