//! Bit tests and scans, and the condition-code family: Jcc conditions, SETcc, CMOVcc.

use iced_x86::{ConditionCode, OpKind};

use super::super::alu::{mask, sign_extend};
use super::super::decode::Decoded;
use super::super::state::flags;
use super::super::{Cpu, Fault};

impl Cpu {
    /// Evaluates an x86 condition code against RFLAGS (SDM Vol. 1 Appendix B).
    #[inline(always)]
    pub(in super::super) fn condition(&self, cc: ConditionCode) -> bool {
        let f = self.state.rflags;
        let set = |bit: u64| f & bit != 0;
        match cc {
            ConditionCode::None => true,
            ConditionCode::o => set(flags::OF),
            ConditionCode::no => !set(flags::OF),
            ConditionCode::b => set(flags::CF),
            ConditionCode::ae => !set(flags::CF),
            ConditionCode::e => set(flags::ZF),
            ConditionCode::ne => !set(flags::ZF),
            ConditionCode::be => set(flags::CF) || set(flags::ZF),
            ConditionCode::a => !set(flags::CF) && !set(flags::ZF),
            ConditionCode::s => set(flags::SF),
            ConditionCode::ns => !set(flags::SF),
            ConditionCode::p => set(flags::PF),
            ConditionCode::np => !set(flags::PF),
            ConditionCode::l => set(flags::SF) != set(flags::OF),
            ConditionCode::ge => set(flags::SF) == set(flags::OF),
            ConditionCode::le => set(flags::ZF) || set(flags::SF) != set(flags::OF),
            ConditionCode::g => !set(flags::ZF) && set(flags::SF) == set(flags::OF),
        }
    }
}

/// What BT, BTS, BTR and BTC do to the selected bit after copying it to CF.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BitAction {
    Test,
    Set,
    Reset,
    Complement,
}

/// BT / BTS / BTR / BTC. With a memory operand and a register bit offset the offset is
/// signed and may address bits outside the operand (SDM Vol. 2A, BT: "bit string").
fn bit_op(cpu: &mut Cpu, d: &Decoded, action: BitAction) -> Result<(), Fault> {
    let size = d.op_size;
    let bits = 8 * u64::from(size);
    let offset = cpu.read_op(d, 1, size)?;
    let apply = |value: u64, bit: u64| match action {
        BitAction::Test => value,
        BitAction::Set => value | (1 << bit),
        BitAction::Reset => value & !(1 << bit),
        BitAction::Complement => value ^ (1 << bit),
    };
    let old = if d.insn.op0_kind() == OpKind::Memory && d.insn.op1_kind() == OpKind::Register {
        let signed = sign_extend(offset, size) as i64;
        let displacement = (signed >> bits.trailing_zeros()) * i64::from(size);
        let bit = offset & (bits - 1);
        let linear = cpu.operand_linear(d).wrapping_add(displacement as u64) & 0xFFFF_FFFF;
        let old = cpu.read_linear(linear, size)?;
        if action != BitAction::Test {
            if d.insn.has_lock_prefix() {
                let mut current = old;
                loop {
                    let found =
                        cpu.compare_exchange_linear(linear, size, current, apply(current, bit));
                    if found == current {
                        break;
                    }
                    current = found;
                }
                set_cf(cpu, current, bit);
                return Ok(());
            }
            cpu.write_linear(linear, size, apply(old, bit))?;
        }
        (old, bit)
    } else {
        let bit = offset & (bits - 1);
        let old = if action == BitAction::Test {
            cpu.read_op(d, 0, size)?
        } else {
            cpu.modify_op0(d, size, d.insn.has_lock_prefix(), |v| apply(v, bit))?
        };
        (old, bit)
    };
    set_cf(cpu, old.0, old.1);
    Ok(())
}

fn set_cf(cpu: &mut Cpu, value: u64, bit: u64) {
    cpu.set_flags(flags::CF, (value >> bit) & 1);
}

/// BT.
pub fn bt(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    bit_op(cpu, d, BitAction::Test)
}

/// BTS.
pub fn bts(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    bit_op(cpu, d, BitAction::Set)
}

/// BTR.
pub fn btr(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    bit_op(cpu, d, BitAction::Reset)
}

/// BTC.
pub fn btc(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    bit_op(cpu, d, BitAction::Complement)
}

/// BSF / BSR: a zero source sets ZF and leaves the destination unchanged (the AMD and QEMU
/// behaviour; Intel documents the destination as undefined).
pub fn bit_scan<const FORWARD: bool>(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let size = d.op_size;
    let source = cpu.read_op(d, 1, size)? & mask(size);
    if source == 0 {
        cpu.set_flags(flags::ZF, flags::ZF);
        return Ok(());
    }
    let index = if FORWARD {
        source.trailing_zeros()
    } else {
        63 - source.leading_zeros()
    };
    cpu.write_op(d, 0, size, u64::from(index))?;
    cpu.set_flags(flags::ZF, 0);
    Ok(())
}

/// SETcc r/m8.
pub fn setcc(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let value = u64::from(cpu.condition(d.insn.condition_code()));
    cpu.write_op(d, 0, 1, value)
}

/// CMOVcc r, r/m: the source is read (and may fault) whatever the condition.
pub fn cmovcc(cpu: &mut Cpu, d: &Decoded) -> Result<(), Fault> {
    let value = cpu.read_op(d, 1, d.op_size)?;
    if cpu.condition(d.insn.condition_code()) {
        cpu.write_op(d, 0, d.op_size, value)?;
    }
    Ok(())
}
