//! Instruction semantics, one family per file, and the table that picks a handler and a
//! cost class for each decoded instruction.
//!
//! `select` runs once per decode, never per execution: the handler it returns is stored in
//! the decode cache, so dispatch is one indirect call. Anything `select` does not know gets
//! [`unsupported`], which raises #UD in the guest and counts the instruction for the report.

mod arith;
mod bits;
mod control;
mod data;
mod string;
mod system;

use iced_x86::{Code, Instruction, Mnemonic, OpKind};

use super::decode::Decoded;
use super::{Cpu, Fault};
use crate::timing::TimingTable;

/// Carries out one instruction. IP has already been advanced in `cpu.next_rip`.
pub type Handler = fn(&mut Cpu, &Decoded) -> Result<(), Fault>;

/// The timing classes of `timing.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostClass {
    /// Register-only work.
    Simple,
    /// Reads memory.
    Load,
    /// Writes memory.
    Store,
    /// Near control transfer.
    Branch,
    /// MUL / IMUL.
    Multiply,
    /// DIV / IDIV.
    Divide,
    /// LOCK-prefixed or implicitly locked memory update.
    LockedRmw,
    /// One string element (REP adds one per further element).
    String,
    /// IN / OUT.
    PortIo,
    /// Serializing instructions.
    Serializing,
    /// Far transfers and protected-mode segment loads.
    FarTransfer,
    /// INT n / INT3 / INTO (the delivery itself is charged separately).
    Interrupt,
    /// PAUSE.
    Pause,
}

impl CostClass {
    /// True for classes whose instructions may change control flow, the mode or device state,
    /// and so must end a decoded block (`decode.rs`). Register and memory data operations
    /// never do; anything else may.
    pub fn ends_block(self) -> bool {
        !matches!(
            self,
            CostClass::Simple
                | CostClass::Load
                | CostClass::Store
                | CostClass::Multiply
                | CostClass::Divide
                | CostClass::LockedRmw
        )
    }

    /// The class's cost in `timing`.
    pub fn cycles(self, timing: &TimingTable) -> u32 {
        match self {
            CostClass::Simple => timing.simple,
            CostClass::Load => timing.load,
            CostClass::Store => timing.store,
            CostClass::Branch => timing.branch,
            CostClass::Multiply => timing.multiply,
            CostClass::Divide => timing.divide,
            CostClass::LockedRmw => timing.locked_rmw,
            CostClass::String => timing.string_iteration,
            CostClass::PortIo => timing.port_io,
            CostClass::Serializing => timing.serializing,
            CostClass::FarTransfer => timing.far_transfer,
            CostClass::Interrupt => timing.simple,
            CostClass::Pause => timing.pause,
        }
    }
}

/// Simple, load or store by where the operands live; locked when prefixed.
fn data_class(insn: &Instruction) -> CostClass {
    if insn.has_lock_prefix() {
        return CostClass::LockedRmw;
    }
    if insn.op_count() > 0 && insn.op0_kind() == OpKind::Memory {
        return CostClass::Store;
    }
    if (1..insn.op_count()).any(|op| insn.op_kind(op) == OpKind::Memory) {
        return CostClass::Load;
    }
    CostClass::Simple
}

/// Picks the handler and cost class for a decoded instruction.
pub fn select(insn: &Instruction) -> (Handler, CostClass) {
    use Mnemonic as M;
    let data = data_class(insn);
    match insn.mnemonic() {
        M::Add => (binary::<{ arith::ADD }>(insn), data),
        M::Or => (binary::<{ arith::OR }>(insn), data),
        M::Adc => (binary::<{ arith::ADC }>(insn), data),
        M::Sbb => (binary::<{ arith::SBB }>(insn), data),
        M::And => (binary::<{ arith::AND }>(insn), data),
        M::Sub => (binary::<{ arith::SUB }>(insn), data),
        M::Xor => (binary::<{ arith::XOR }>(insn), data),
        M::Cmp => (binary::<{ arith::CMP }>(insn), load_if_memory(insn)),
        M::Test => (binary::<{ arith::TEST }>(insn), load_if_memory(insn)),
        M::Inc if plain(insn, 0) => (sized!(insn, arith::inc_dec_reg, true), data),
        M::Inc => (arith::inc_dec::<true>, data),
        M::Dec if plain(insn, 0) => (sized!(insn, arith::inc_dec_reg, false), data),
        M::Dec => (arith::inc_dec::<false>, data),
        M::Neg => (arith::neg, data),
        M::Not => (arith::not, data),
        M::Xadd => (arith::xadd, data),
        M::Rol => (shift::<0>(insn), data),
        M::Ror => (shift::<1>(insn), data),
        M::Rcl => (shift::<2>(insn), data),
        M::Rcr => (shift::<3>(insn), data),
        M::Shl | M::Sal => (shift::<4>(insn), data),
        M::Shr => (shift::<5>(insn), data),
        M::Sar => (shift::<6>(insn), data),
        M::Shld => (arith::double_shift::<true>, data),
        M::Shrd => (arith::double_shift::<false>, data),
        M::Mul => (arith::mul, CostClass::Multiply),
        M::Imul => (arith::imul, CostClass::Multiply),
        M::Div => (arith::div, CostClass::Divide),
        M::Idiv => (arith::idiv, CostClass::Divide),

        M::Mov => select_mov(insn, data),
        M::Movzx => (data::movzx, data),
        M::Movsx => (data::movsx, data),
        M::Lea => (data::lea, CostClass::Simple),
        M::Xchg => {
            let locked = insn.op0_kind() == OpKind::Memory;
            (
                data::xchg,
                if locked {
                    CostClass::LockedRmw
                } else {
                    CostClass::Simple
                },
            )
        }
        M::Cmpxchg => (data::cmpxchg, data),
        M::Cmpxchg8b => (
            data::cmpxchg8b,
            if insn.has_lock_prefix() {
                CostClass::LockedRmw
            } else {
                CostClass::Store
            },
        ),
        M::Bswap => (data::bswap, CostClass::Simple),
        M::Cbw | M::Cwde => (data::widen_accumulator, CostClass::Simple),
        M::Cwd | M::Cdq => (data::sign_into_dx, CostClass::Simple),
        M::Push => (data::push, CostClass::Store),
        M::Pop => (
            data::pop,
            if is_segment_pop(insn) {
                CostClass::FarTransfer
            } else {
                CostClass::Load
            },
        ),
        M::Pusha | M::Pushad => (data::pusha, CostClass::Store),
        M::Popa | M::Popad => (data::popa, CostClass::Load),
        M::Pushf | M::Pushfd => (data::pushf, CostClass::Store),
        M::Popf | M::Popfd => (data::popf, CostClass::Serializing),
        M::Lahf => (data::lahf, CostClass::Simple),
        M::Sahf => (data::sahf, CostClass::Simple),
        M::Enter => (data::enter, CostClass::Store),
        M::Leave => (data::leave, CostClass::Load),
        M::Lds | M::Les | M::Lfs | M::Lgs | M::Lss => {
            (data::load_far_pointer, CostClass::FarTransfer)
        }
        M::Xlatb => (data::xlat, CostClass::Load),

        M::Bt => (bits::bt, load_if_memory(insn)),
        M::Bts => (bits::bts, data),
        M::Btr => (bits::btr, data),
        M::Btc => (bits::btc, data),
        M::Bsf => (bits::bit_scan::<true>, data),
        M::Bsr => (bits::bit_scan::<false>, data),
        _ if is_setcc(insn) => (bits::setcc, data),
        _ if is_cmovcc(insn) => (bits::cmovcc, data),

        M::Jmp => (control::jmp, branch_class(insn)),
        M::Call => (control::call, branch_class(insn)),
        M::Ret => (control::ret, CostClass::Branch),
        M::Retf => (control::retf, CostClass::FarTransfer),
        M::Loop | M::Loope | M::Loopne => (control::loop_family, CostClass::Branch),
        M::Jcxz | M::Jecxz => (control::jcxz, CostClass::Branch),
        _ if insn.is_jcc_short_or_near() => (control::jcc, CostClass::Branch),
        M::Int => (control::int, CostClass::Interrupt),
        M::Int3 => (control::int3, CostClass::Interrupt),
        M::Into => (control::into, CostClass::Interrupt),
        M::Iret | M::Iretd => (control::iret, CostClass::FarTransfer),
        M::Hlt => (control::hlt, CostClass::Serializing),

        M::Movsb | M::Movsw | M::Movsd if insn.op_count() == 2 && is_string_operand(insn) => {
            (string::string, CostClass::String)
        }
        M::Cmpsd if insn.op_count() == 2 && is_string_operand(insn) => {
            (string::string, CostClass::String)
        }
        M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Cmpsb
        | M::Cmpsw
        | M::Scasb
        | M::Scasw
        | M::Scasd => (string::string, CostClass::String),
        M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => {
            (string::string, CostClass::PortIo)
        }

        M::In => (system::port_in, CostClass::PortIo),
        M::Out => (system::port_out, CostClass::PortIo),
        M::Clc | M::Stc | M::Cmc | M::Cld | M::Std | M::Cli | M::Sti => {
            (system::flag_op, CostClass::Simple)
        }
        M::Nop
        | M::Lfence
        | M::Mfence
        | M::Sfence
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Clflush => (system::nop, CostClass::Simple),
        M::Wbinvd | M::Invd | M::Invlpg => (system::nop, CostClass::Serializing),
        M::Pause => (system::nop, CostClass::Pause),
        M::Cpuid => (system::cpuid, CostClass::Serializing),
        M::Rdtsc => (system::rdtsc, CostClass::Serializing),
        M::Rdmsr => (system::rdmsr, CostClass::Serializing),
        M::Wrmsr => (system::wrmsr, CostClass::Serializing),
        M::Lgdt | M::Lidt => (system::load_table_register, CostClass::Serializing),
        M::Sgdt | M::Sidt => (system::store_table_register, CostClass::Store),
        M::Smsw => (system::smsw, CostClass::Simple),
        M::Lmsw => (system::lmsw, CostClass::Serializing),
        M::Clts => (system::clts, CostClass::Serializing),
        M::Rsm => (system::rsm, CostClass::FarTransfer),
        M::Ud0 | M::Ud1 | M::Ud2 => (invalid_opcode, CostClass::Simple),
        _ => (unsupported, CostClass::Simple),
    }
}

fn select_mov(insn: &Instruction, data: CostClass) -> (Handler, CostClass) {
    match insn.code() {
        Code::Mov_Sreg_rm16 | Code::Mov_Sreg_r32m16 => {
            (data::mov_to_segment, CostClass::FarTransfer)
        }
        Code::Mov_rm16_Sreg | Code::Mov_r32m16_Sreg => (data::mov_from_segment, data),
        Code::Mov_r32_cr | Code::Mov_cr_r32 => {
            (system::mov_control_register, CostClass::Serializing)
        }
        Code::Mov_r32_dr | Code::Mov_dr_r32 => (system::mov_debug_register, CostClass::Serializing),
        Code::Mov_r32_tr | Code::Mov_tr_r32 => (unsupported, CostClass::Simple),
        _ if plain(insn, 0) && plain(insn, 1) => (sized!(insn, data::mov_reg_reg), data),
        _ if plain(insn, 0) && is_immediate(insn, 1) => (sized!(insn, data::mov_reg_imm), data),
        _ if plain(insn, 0) && insn.op1_kind() == OpKind::Memory => {
            (sized!(insn, data::mov_reg_mem), data)
        }
        _ if insn.op0_kind() == OpKind::Memory && plain(insn, 1) => {
            (sized!(insn, data::mov_mem_reg), data)
        }
        _ => (data::mov, data),
    }
}

/// The size in bytes of the register operand a fast handler works on: operand 0, or operand 1
/// when operand 0 is memory (a store).
fn register_size(insn: &Instruction) -> usize {
    if insn.op0_kind() == OpKind::Register {
        insn.op0_register().size()
    } else {
        insn.op1_register().size()
    }
}

/// Picks the instance of a fast handler whose last const parameter is the register operand's
/// size.
macro_rules! sized {
    ($insn:expr, $($handler:ident)::+ $(, $param:expr)*) => {
        match register_size($insn) {
            1 => $($handler)::+::<$({ $param },)* 1> as Handler,
            2 => $($handler)::+::<$({ $param },)* 2>,
            8 => $($handler)::+::<$({ $param },)* 8>,
            _ => $($handler)::+::<$({ $param },)* 4>,
        }
    };
}
use sized;

/// True when operand `n` is a general register the fast handlers can reach by index.
fn plain(insn: &Instruction, n: u32) -> bool {
    super::decode::plain_gpr(insn, n) != super::decode::NO_REG
}

fn is_immediate(insn: &Instruction, n: u32) -> bool {
    n < insn.op_count()
        && matches!(
            insn.op_kind(n),
            OpKind::Immediate8
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate8to16
                | OpKind::Immediate8to32
        )
}

/// The handler for ADD … TEST: a fast form for register destinations.
fn binary<const OP: u8>(insn: &Instruction) -> Handler {
    if plain(insn, 0) && plain(insn, 1) {
        sized!(insn, arith::binary_reg_reg, OP)
    } else if plain(insn, 0) && is_immediate(insn, 1) {
        sized!(insn, arith::binary_reg_imm, OP)
    } else {
        arith::binary::<OP>
    }
}

/// The handler for a shift or rotate: a fast form for a register by an immediate count.
fn shift<const OP: u8>(insn: &Instruction) -> Handler {
    if plain(insn, 0) && is_immediate(insn, 1) {
        sized!(insn, arith::shift_reg_imm, OP)
    } else {
        arith::shift::<OP>
    }
}

fn load_if_memory(insn: &Instruction) -> CostClass {
    if (0..insn.op_count()).any(|op| insn.op_kind(op) == OpKind::Memory) {
        CostClass::Load
    } else {
        CostClass::Simple
    }
}

fn branch_class(insn: &Instruction) -> CostClass {
    match insn.op0_kind() {
        OpKind::FarBranch16 | OpKind::FarBranch32 => CostClass::FarTransfer,
        _ if matches!(
            insn.code(),
            Code::Jmp_m1616 | Code::Jmp_m1632 | Code::Call_m1616 | Code::Call_m1632
        ) =>
        {
            CostClass::FarTransfer
        }
        _ => CostClass::Branch,
    }
}

fn is_segment_pop(insn: &Instruction) -> bool {
    insn.op0_kind() == OpKind::Register && insn.op0_register().is_segment_register()
}

fn is_setcc(insn: &Instruction) -> bool {
    matches!(
        insn.mnemonic(),
        Mnemonic::Seto
            | Mnemonic::Setno
            | Mnemonic::Setb
            | Mnemonic::Setae
            | Mnemonic::Sete
            | Mnemonic::Setne
            | Mnemonic::Setbe
            | Mnemonic::Seta
            | Mnemonic::Sets
            | Mnemonic::Setns
            | Mnemonic::Setp
            | Mnemonic::Setnp
            | Mnemonic::Setl
            | Mnemonic::Setge
            | Mnemonic::Setle
            | Mnemonic::Setg
    )
}

fn is_cmovcc(insn: &Instruction) -> bool {
    matches!(
        insn.mnemonic(),
        Mnemonic::Cmovo
            | Mnemonic::Cmovno
            | Mnemonic::Cmovb
            | Mnemonic::Cmovae
            | Mnemonic::Cmove
            | Mnemonic::Cmovne
            | Mnemonic::Cmovbe
            | Mnemonic::Cmova
            | Mnemonic::Cmovs
            | Mnemonic::Cmovns
            | Mnemonic::Cmovp
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovl
            | Mnemonic::Cmovge
            | Mnemonic::Cmovle
            | Mnemonic::Cmovg
    )
}

/// MOVSD and CMPSD are also SSE2 mnemonics; only the string forms, which address ES:(E)DI,
/// come here.
fn is_string_operand(insn: &Instruction) -> bool {
    (0..insn.op_count()).any(|n| {
        matches!(
            insn.op_kind(n),
            OpKind::MemoryESDI | OpKind::MemoryESEDI | OpKind::MemoryESRDI
        )
    })
}

/// An invalid encoding or UD0/UD1/UD2: #UD, counted as invalid.
pub fn invalid_opcode(cpu: &mut Cpu, _d: &Decoded) -> Result<(), Fault> {
    cpu.stats.invalid += 1;
    Err(Fault::InvalidOpcode)
}

/// A valid instruction smmsim does not cover: #UD, counted and named in the report.
pub fn unsupported(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let cs = cpu.state.seg(super::state::SegReg::Cs).selector;
    cpu.note_unsupported(format!(
        "{cs:04x}:{:08x} {:?}",
        cpu.state.rip,
        d.insn.code()
    ));
    Err(Fault::InvalidOpcode)
}
