//! System and I/O instructions: IN/OUT, flag control, CPUID, RDTSC, RDMSR/WRMSR, the
//! descriptor-table registers, control and debug registers, and the no-ops.

use iced_x86::{Code, OpKind, Register};

use super::super::decode::Decoded;
use super::super::state::{cr0, flags, RAX, RBX, RCX, RDX};
use super::super::{Cpu, Fault, APIC_BASE_BSP};
use super::string::port_width;

/// IN AL/AX/EAX, imm8 or DX.
pub fn port_in(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let port = cpu.read_op(d, 1, 2)? as u16;
    let ctx = cpu.access_context();
    let value = cpu.platform.port_read(&ctx, port, port_width(size));
    cpu.set_gpr(RAX, size, u64::from(value));
    Ok(())
}

/// OUT imm8 or DX, AL/AX/EAX. A write that ends the run (debug exit) stops the core after
/// this instruction.
pub fn port_out(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.insn.op1_register().size() as u8;
    let port = cpu.read_op(d, 0, 2)? as u16;
    let value = cpu.gpr(RAX, size) as u32;
    cpu.port_out(port, port_width(size), value);
    Ok(())
}

/// CLC, STC, CMC, CLD, STD, CLI, STI.
pub fn flag_op(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    use iced_x86::Mnemonic::*;
    let f = &mut cpu.state.rflags;
    match d.insn.mnemonic() {
        Clc => *f &= !flags::CF,
        Stc => *f |= flags::CF,
        Cmc => *f ^= flags::CF,
        Cld => *f &= !flags::DF,
        Std => *f |= flags::DF,
        Cli => *f &= !flags::IF,
        _ => *f |= flags::IF,
    }
    Ok(())
}

/// NOP in all its forms, fences, cache maintenance and other instructions with no effect
/// the model can observe.
pub fn nop(_cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    Ok(())
}

/// CPUID, answering as QEMU's default `qemu64` model does for the leaves firmware reads
/// (`target/i386/cpu.c`, `builtin_x86_defs`, "qemu64": vendor AuthenticAMD, family 15,
/// model 107, stepping 1, level 0xD, xlevel 0x8000000A).
pub fn cpuid(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    let leaf = cpu.gpr(RAX, 4) as u32;
    let subleaf = cpu.gpr(RCX, 4) as u32;
    let mut regs = cpuid_leaf(leaf, subleaf, cpu.apic_id.0, cpu.apic_base_msr);
    if leaf == 1 && cpu.x2apic_advertised {
        regs[2] |= LEAF1_ECX_X2APIC;
    }
    let [a, b, c, d] = regs;
    cpu.set_gpr(RAX, 4, u64::from(a));
    cpu.set_gpr(RBX, 4, u64::from(b));
    cpu.set_gpr(RCX, 4, u64::from(c));
    cpu.set_gpr(RDX, 4, u64::from(d));
    Ok(())
}

/// "AuthenticAMD" as EBX, EDX, ECX.
const VENDOR: [u32; 3] = [0x6874_7541, 0x6974_6E65, 0x444D_4163];
/// Highest basic leaf of qemu64.
const MAX_BASIC_LEAF: u32 = 0xD;
/// Highest extended leaf of qemu64.
const MAX_EXTENDED_LEAF: u32 = 0x8000_000A;
/// Leaf 1 EDX of qemu64: FPU DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36
/// CLFLUSH MMX FXSR SSE SSE2.
const LEAF1_EDX: u32 = 0x078B_FBFD;
/// Leaf 1 ECX of qemu64 under TCG: SSE3, CX16, and the hypervisor bit QEMU always sets.
const LEAF1_ECX: u32 = 0x8000_2001;
/// The x2APIC feature bit: QEMU needs `+x2apic` for machines with APIC IDs above 254, so
/// smmsim sets it on such machines only (qemu64 leaves it clear, and the CPUID differential
/// test holds smaller machines to that).
const LEAF1_ECX_X2APIC: u32 = 1 << 21;
/// The APIC feature bit, cleared while IA32_APIC_BASE has the APIC globally disabled.
const LEAF1_EDX_APIC: u32 = 1 << 9;

/// The four registers CPUID returns for `leaf`/`subleaf`.
pub fn cpuid_leaf(leaf: u32, subleaf: u32, apic_id: u32, apic_base_msr: u64) -> [u32; 4] {
    let signature = super::super::state::RESET_EDX as u32;
    match leaf {
        0 => [MAX_BASIC_LEAF, VENDOR[0], VENDOR[2], VENDOR[1]],
        1 => {
            let mut edx = LEAF1_EDX;
            if apic_base_msr & (1 << 11) == 0 {
                edx &= !LEAF1_EDX_APIC;
            }
            // EBX: initial APIC ID in 31:24, CLFLUSH line size 8 × 8 bytes in 15:8.
            [signature, (apic_id << 24) | (8 << 8), LEAF1_ECX, edx]
        }
        // Extended topology: one thread per core, one core per package (QEMU's default
        // `-smp N` makes N sockets); EDX is the x2APIC ID at every level.
        0xB => match subleaf {
            0 => [0, 1, 0x100, apic_id],
            1 => [0, 1, 0x201, apic_id],
            _ => [0, 0, subleaf & 0xFF, apic_id],
        },
        0x8000_0000 => [MAX_EXTENDED_LEAF, VENDOR[0], VENDOR[2], VENDOR[1]],
        // LM, NX, SYSCALL in EDX (plus the leaf-1 bits AMD mirrors); LAHF_LM and SVM in ECX.
        0x8000_0001 => [
            signature,
            0,
            0x5,
            (LEAF1_EDX & 0x0183_F3FF) | (1 << 29) | (1 << 20) | (1 << 11),
        ],
        0x8000_0002..=0x8000_0004 => brand_string(leaf - 0x8000_0002),
        // 40 physical and 48 linear address bits (QEMU's TCG default).
        0x8000_0008 => [0x3028, 0, 0, 0],
        _ => [0, 0, 0, 0],
    }
}

/// The brand string "QEMU Virtual CPU version 2.5+", 16 bytes per leaf.
fn brand_string(part: u32) -> [u32; 4] {
    const BRAND: &[u8; 48] = b"QEMU Virtual CPU version 2.5+\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut out = [0u32; 4];
    for (i, word) in out.iter_mut().enumerate() {
        let at = part as usize * 16 + i * 4;
        *word = u32::from_le_bytes([BRAND[at], BRAND[at + 1], BRAND[at + 2], BRAND[at + 3]]);
    }
    out
}

/// RDTSC: the core's cycle counter plus the offset a guest write to IA32_TSC set.
pub fn rdtsc(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    let tsc = cpu.tsc();
    cpu.set_gpr(RAX, 4, tsc & 0xFFFF_FFFF);
    cpu.set_gpr(RDX, 4, tsc >> 32);
    Ok(())
}

/// MSR numbers the core implements.
mod msr {
    pub const TSC: u32 = 0x10;
    pub const APIC_BASE: u32 = 0x1B;
    pub const EFER: u32 = 0xC000_0080;
}

/// RDMSR. An MSR smmsim does not model raises #GP(0), as the SDM says for reserved MSRs.
pub fn rdmsr(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    let msr_index = cpu.gpr(RCX, 4) as u32;
    let value = match msr_index {
        index if super::super::apic::X2APIC_MSRS.contains(&index) => cpu.x2apic_msr_read(index)?,
        msr::TSC => cpu.tsc(),
        msr::APIC_BASE => cpu.apic_base_msr,
        msr::EFER => cpu.state.efer,
        _ => return Err(Fault::GP0),
    };
    cpu.set_gpr(RAX, 4, value & 0xFFFF_FFFF);
    cpu.set_gpr(RDX, 4, value >> 32);
    Ok(())
}

/// IA32_APIC_BASE bits software may write: BSP is read-only; bits 10 (x2APIC) and 11
/// (global enable) and the base are writable (SDM Vol. 3A §12.4.4).
const APIC_BASE_WRITABLE: u64 = 0x000F_FFFF_FFFF_F000 | (1 << 10) | (1 << 11);

/// WRMSR.
pub fn wrmsr(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    let value = (cpu.gpr(RDX, 4) << 32) | cpu.gpr(RAX, 4);
    match cpu.gpr(RCX, 4) as u32 {
        index if super::super::apic::X2APIC_MSRS.contains(&index) => {
            cpu.x2apic_msr_write(index, value)?
        }
        // Writing the TSC moves what RDTSC reads, never simulated time (SDM Vol. 3B §18.17;
        // KVM keeps an offset the same way).
        msr::TSC => cpu.tsc_offset = value.wrapping_sub(cpu.cycle),
        msr::APIC_BASE => {
            if value & !(APIC_BASE_WRITABLE | APIC_BASE_BSP) != 0 {
                return Err(Fault::GP0);
            }
            cpu.apic_base_msr = (value & APIC_BASE_WRITABLE) | (cpu.apic_base_msr & APIC_BASE_BSP);
            cpu.apic_base_changed();
        }
        msr::EFER => {
            // SCE (0), LME (8), NXE (11) are writable; LMA (10) is set by the processor.
            const WRITABLE: u64 = 1 | (1 << 8) | (1 << 11);
            if value & !(WRITABLE | (1 << 10)) != 0 {
                return Err(Fault::GP0);
            }
            cpu.state.efer = (cpu.state.efer & (1 << 10)) | (value & WRITABLE);
        }
        _ => return Err(Fault::GP0),
    }
    Ok(())
}

/// LGDT / LIDT m16&32: with a 16-bit operand size only 24 bits of the base are loaded (SDM
/// Vol. 2A, LGDT).
pub fn load_table_register(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    let linear = cpu.operand_linear(d);
    let limit = cpu.read_linear(linear, 2)? as u16;
    let mut base = cpu.read_linear((linear + 2) & 0xFFFF_FFFF, 4)?;
    if matches!(d.insn.code(), Code::Lgdt_m1632_16 | Code::Lidt_m1632_16) {
        base &= 0x00FF_FFFF;
    }
    let table = if d.insn.mnemonic() == iced_x86::Mnemonic::Lgdt {
        &mut cpu.state.gdtr
    } else {
        &mut cpu.state.idtr
    };
    table.base = base;
    table.limit = limit;
    Ok(())
}

/// SGDT / SIDT m: stores the limit, then the full 32-bit base whatever the operand size (SDM
/// Vol. 2B, SGDT: "Full 32-bit base address stored"; QEMU `translate.c` dropped its 24-bit
/// mask in 2023 to match).
pub fn store_table_register(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let table = if d.insn.mnemonic() == iced_x86::Mnemonic::Sgdt {
        cpu.state.gdtr
    } else {
        cpu.state.idtr
    };
    let base = table.base & 0xFFFF_FFFF;
    let linear = cpu.operand_linear(d);
    cpu.write_linear(linear, 2, u64::from(table.limit))?;
    cpu.write_linear((linear + 2) & 0xFFFF_FFFF, 4, base)
}

/// CR4 bits smmsim accepts: VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT
/// (SDM Vol. 3A §2.5); others raise #GP(0) as reserved bits do on a qemu64 CPU.
const CR4_ACCEPTED: u64 = 0x7FF;

/// MOV CRn, r32 and MOV r32, CRn.
pub fn mov_control_register(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    let (to_cr, cr, gpr) = if d.insn.op0_register().is_cr() {
        (true, d.insn.op0_register(), d.insn.op1_register())
    } else {
        (false, d.insn.op1_register(), d.insn.op0_register())
    };
    if !to_cr {
        let value = match cr {
            Register::CR0 => cpu.state.cr0,
            Register::CR2 => cpu.state.cr2,
            Register::CR3 => cpu.state.cr3,
            Register::CR4 => cpu.state.cr4,
            _ => return Err(Fault::InvalidOpcode),
        };
        cpu.set_reg(gpr, value);
        return Ok(());
    }
    let value = cpu.reg(gpr);
    match cr {
        Register::CR0 => write_cr0(cpu, d, value)?,
        Register::CR2 => cpu.state.cr2 = value,
        Register::CR3 => cpu.state.cr3 = value & 0xFFFF_FFFF,
        Register::CR4 => {
            if value & !CR4_ACCEPTED != 0 {
                return Err(Fault::GP0);
            }
            cpu.state.cr4 = value;
        }
        _ => return Err(Fault::InvalidOpcode),
    }
    Ok(())
}

fn write_cr0(cpu: &mut Cpu, d: &Decoded, value: u64) -> Result<(), Fault> {
    if value & cr0::PG != 0 && value & cr0::PE == 0 || value & cr0::NW != 0 && value & cr0::CD == 0
    {
        return Err(Fault::GP0);
    }
    if value & cr0::PG != 0 {
        // Paging arrives with long mode; until then say so instead of running untranslated.
        cpu.note_unsupported(format!("{:#x}: paging (CR0.PG)", cpu.state.rip));
        return Err(Fault::InvalidOpcode);
    }
    let _ = d;
    // ET is hard-wired to 1 (SDM Vol. 3A §2.5; QEMU `cpu_x86_update_cr0` forces it too).
    cpu.state.cr0 = (value & 0xFFFF_FFFF) | cr0::ET;
    Ok(())
}

/// MOV DRn, r32 and MOV r32, DRn: the registers hold values; breakpoints are not modelled.
pub fn mov_debug_register(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    let to_dr = d.insn.op0_register().is_dr();
    let (dr, gpr) = if to_dr {
        (d.insn.op0_register(), d.insn.op1_register())
    } else {
        (d.insn.op1_register(), d.insn.op0_register())
    };
    let n = dr as usize - Register::DR0 as usize;
    let slot = match n {
        0..=3 => &mut cpu.state.dr[n],
        4 | 6 => &mut cpu.state.dr6,
        5 | 7 => &mut cpu.state.dr7,
        _ => return Err(Fault::InvalidOpcode),
    };
    if to_dr {
        *slot = cpu.state.regs[gpr as usize - Register::EAX as usize] & 0xFFFF_FFFF;
    } else {
        let value = *slot;
        cpu.set_reg(gpr, value);
    }
    Ok(())
}

/// SMSW r/m: the low bits of CR0 (all 32 into a 32-bit register).
pub fn smsw(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = if d.insn.op0_kind() == OpKind::Register {
        d.op_size
    } else {
        2
    };
    cpu.write_op(d, 0, size, cpu.state.cr0)
}

/// LMSW r/m16: loads PE, MP, EM, TS; PE can be set but not cleared (SDM Vol. 2A, LMSW).
pub fn lmsw(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    let value = cpu.read_op(d, 0, 2)?;
    let low = cr0::PE | cr0::MP | cr0::EM | cr0::TS;
    let pe_kept = cpu.state.cr0 & cr0::PE;
    cpu.state.cr0 = (cpu.state.cr0 & !low) | (value & low) | pe_kept;
    Ok(())
}

/// RSM: #UD outside SMM (SDM Vol. 2B, RSM); otherwise leaves SMM (`smm.rs`).
pub fn rsm(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    if !cpu.smm.in_smm {
        return Err(Fault::InvalidOpcode);
    }
    cpu.resume_from_smm();
    Ok(())
}

/// CLTS: clears CR0.TS.
pub fn clts(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::GP0);
    }
    cpu.state.cr0 &= !cr0::TS;
    Ok(())
}
