//! Integer arithmetic with exact flags, as pure functions of operands and operand size.
//!
//! Every function takes and returns values already truncated to the operand size (1, 2, 4
//! or 8 bytes) and returns the new values of the six arithmetic flags ([`flags::ARITH`]);
//! the caller merges them into RFLAGS. Where the SDM leaves a flag undefined, the value
//! chosen is the one QEMU TCG produces (`target/i386/tcg/cc_helper_template.h`), so that a
//! guest which peeks at undefined flags still behaves as it does under QEMU.

use super::state::flags;

/// All-ones mask of an operand size in bytes.
#[inline(always)]
pub fn mask(size: u8) -> u64 {
    u64::MAX >> (64 - 8 * u32::from(size))
}

/// The sign bit of an operand size in bytes.
#[inline(always)]
pub fn sign_bit(size: u8) -> u64 {
    1 << (8 * u32::from(size) - 1)
}

/// Sign-extends a value of `size` bytes to 64 bits.
#[inline(always)]
pub fn sign_extend(value: u64, size: u8) -> u64 {
    let shift = 64 - 8 * u32::from(size);
    (((value << shift) as i64) >> shift) as u64
}

/// PF: set when the low byte of the result has an even number of ones.
#[inline(always)]
fn parity(result: u64) -> u64 {
    PARITY[(result & 0xFF) as usize]
}

/// PF for every byte value, so the hot path avoids a population count (baseline x86-64 has
/// no POPCNT instruction).
const PARITY: [u64; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        if (byte as u8).count_ones() % 2 == 0 {
            table[byte] = flags::PF;
        }
        byte += 1;
    }
    table
};

/// ZF, SF and PF of a result.
#[inline(always)]
pub fn szp(result: u64, size: u8) -> u64 {
    let mut f = parity(result);
    if result & mask(size) == 0 {
        f |= flags::ZF;
    }
    if result & sign_bit(size) != 0 {
        f |= flags::SF;
    }
    f
}

/// ADD / ADC: `a + b + carry_in`.
#[inline(always)]
pub fn add(a: u64, b: u64, carry_in: u64, size: u8) -> (u64, u64) {
    let m = mask(size);
    let (sum, carry1) = a.overflowing_add(b);
    let (sum, carry2) = sum.overflowing_add(carry_in);
    let result = sum & m;
    // Below 64 bits the carry is the bit past the operand; at 64 bits it is the host's.
    let carry = if size == 8 { carry1 | carry2 } else { sum > m };
    let mut f = szp(result, size) | ((a ^ b ^ result) & flags::AF);
    if carry {
        f |= flags::CF;
    }
    if (a ^ result) & (b ^ result) & sign_bit(size) != 0 {
        f |= flags::OF;
    }
    (result, f)
}

/// SUB / SBB / CMP: `a − b − borrow_in`.
#[inline(always)]
pub fn sub(a: u64, b: u64, borrow_in: u64, size: u8) -> (u64, u64) {
    let m = mask(size);
    let result = a.wrapping_sub(b).wrapping_sub(borrow_in) & m;
    let mut f = szp(result, size) | ((a ^ b ^ result) & flags::AF);
    if a < b || a - b < borrow_in {
        f |= flags::CF;
    }
    if (a ^ b) & (a ^ result) & sign_bit(size) != 0 {
        f |= flags::OF;
    }
    (result, f)
}

/// AND / OR / XOR / TEST: CF = OF = 0, AF = 0 (undefined in the SDM; QEMU clears it).
#[inline(always)]
pub fn logic(result: u64, size: u8) -> u64 {
    szp(result, size)
}

/// INC: like ADD 1 but CF is left alone (the caller keeps the old CF).
#[inline(always)]
pub fn inc(a: u64, size: u8) -> (u64, u64) {
    let (result, f) = add(a, 1, 0, size);
    (result, f & !flags::CF)
}

/// DEC: like SUB 1 but CF is left alone.
#[inline(always)]
pub fn dec(a: u64, size: u8) -> (u64, u64) {
    let (result, f) = sub(a, 1, 0, size);
    (result, f & !flags::CF)
}

/// NEG: `0 − a`, CF set unless the operand was zero.
#[inline(always)]
pub fn neg(a: u64, size: u8) -> (u64, u64) {
    sub(0, a, 0, size)
}

/// The shift and rotate operations of the 0xC0/0xD0–0xD3 group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftOp {
    /// Rotate left.
    Rol,
    /// Rotate right.
    Ror,
    /// Rotate left through carry.
    Rcl,
    /// Rotate right through carry.
    Rcr,
    /// Shift left (SAL is the same).
    Shl,
    /// Logical shift right.
    Shr,
    /// Arithmetic shift right.
    Sar,
}

/// A shift or rotate by `count` (already masked to 5 or 6 bits by the caller, as the
/// hardware does). Returns `None` when the count leaves operand and flags untouched.
///
/// Returned flags: shifts write CF, OF (defined for count 1; for larger counts QEMU's value),
/// SF, ZF, PF and AF = 0; rotates write only CF and OF and the caller keeps the others.
pub fn shift(op: ShiftOp, a: u64, count: u32, cf_in: bool, size: u8) -> Option<(u64, u64)> {
    let bits = 8 * u32::from(size);
    let m = mask(size);
    let sign = sign_bit(size);
    match op {
        ShiftOp::Shl | ShiftOp::Shr | ShiftOp::Sar => {
            if count == 0 {
                return None;
            }
            // Counts up to 31 (63) may exceed the width for 8- and 16-bit operands; the last bit
            // shifted out is computed on a 128-bit copy so nothing overflows.
            let wide = u128::from(a);
            let (result, cf) = match op {
                ShiftOp::Shl => {
                    let shifted = wide << count;
                    ((shifted as u64) & m, (shifted >> bits) & 1 != 0)
                }
                ShiftOp::Shr => {
                    let cf = count <= bits && (wide >> (count - 1)) & 1 != 0;
                    ((wide >> count) as u64 & m, cf)
                }
                _ => {
                    let signed = i128::from(sign_extend(a, size) as i64);
                    let cf = (signed >> (count - 1).min(127)) & 1 != 0;
                    ((signed >> count.min(127)) as u64 & m, cf)
                }
            };
            let mut f = szp(result, size);
            if cf {
                f |= flags::CF;
            }
            // OF: SHL → CF xor the result's sign; SHR → the operand's original sign; SAR → 0.
            // Defined for count 1 only; QEMU computes the same expressions for any count.
            let of = match op {
                ShiftOp::Shl => cf != (result & sign != 0),
                ShiftOp::Shr => a & sign != 0,
                _ => false,
            };
            if of {
                f |= flags::OF;
            }
            Some((result, f))
        }
        ShiftOp::Rol | ShiftOp::Ror => {
            if count == 0 {
                return None;
            }
            let n = count % bits;
            let result = if n == 0 {
                a
            } else if op == ShiftOp::Rol {
                ((a << n) | (a >> (bits - n))) & m
            } else {
                ((a >> n) | (a << (bits - n))) & m
            };
            let (cf, of) = if op == ShiftOp::Rol {
                let cf = result & 1 != 0;
                (cf, cf != (result & sign != 0))
            } else {
                let msb = result & sign != 0;
                let next = result & (sign >> 1) != 0;
                (msb, msb != next)
            };
            Some((result, flag(cf, flags::CF) | flag(of, flags::OF)))
        }
        ShiftOp::Rcl | ShiftOp::Rcr => {
            // RCL/RCR rotate a (width + 1)-bit value: the operand with CF.
            let n = count % (bits + 1);
            if n == 0 {
                return None;
            }
            let wide = u128::from(a) | (u128::from(cf_in) << bits);
            let span = bits + 1;
            let full = (1u128 << span) - 1;
            let rotated = if op == ShiftOp::Rcl {
                ((wide << n) | (wide >> (span - n))) & full
            } else {
                ((wide >> n) | (wide << (span - n))) & full
            };
            let result = rotated as u64 & m;
            let cf = (rotated >> bits) & 1 != 0;
            let of = if op == ShiftOp::Rcl {
                cf != (result & sign != 0)
            } else {
                (result & sign != 0) != (result & (sign >> 1) != 0)
            };
            Some((result, flag(cf, flags::CF) | flag(of, flags::OF)))
        }
    }
}

/// SHLD / SHRD: shift `a` by `count` (masked by the caller to 5 bits, or 6 for 64-bit),
/// filling from `b`. Counts ≥ the operand size leave an undefined result; smmsim returns what
/// QEMU does for 16-bit operands (it shifts a 32/48-bit concatenation).
pub fn double_shift(left: bool, a: u64, b: u64, count: u32, size: u8) -> Option<(u64, u64)> {
    if count == 0 {
        return None;
    }
    let bits = 8 * u32::from(size);
    let m = mask(size);
    // Concatenate into 128 bits: for SHLD a:b (a high), for SHRD b:a (b high).
    let (result, cf) = if left {
        let wide = (u128::from(a) << bits) | u128::from(b);
        let wide = if size == 2 {
            wide | (u128::from(a) << 32)
        } else {
            wide
        };
        let shifted = wide << count;
        let result = ((shifted >> bits) as u64) & m;
        let cf = (wide >> (2 * bits - count).min(127)) & 1 != 0;
        (result, cf)
    } else {
        let wide = (u128::from(b) << bits) | u128::from(a);
        let wide = if size == 2 {
            wide | (u128::from(b) << 32)
        } else {
            wide
        };
        let result = ((wide >> count) as u64) & m;
        let cf = (wide >> (count - 1)) & 1 != 0;
        (result, cf)
    };
    let sign = sign_bit(size);
    let of = (a ^ result) & sign != 0;
    Some((
        result,
        szp(result, size) | flag(cf, flags::CF) | flag(of, flags::OF),
    ))
}

#[inline(always)]
fn flag(on: bool, bit: u64) -> u64 {
    if on {
        bit
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::*;

    #[test]
    fn add_sets_carry_overflow_aux_zero_parity() {
        assert_eq!(add(0xFF, 1, 0, 1), (0, CF | ZF | PF | AF));
        assert_eq!(add(0x7F, 1, 0, 1), (0x80, OF | SF | AF));
        assert_eq!(add(0xFFFF_FFFF, 0, 1, 4), (0, CF | ZF | PF | AF));
        assert_eq!(add(1, 2, 0, 4), (3, PF));
    }

    #[test]
    fn sub_borrows_and_overflows() {
        assert_eq!(sub(0, 1, 0, 1), (0xFF, CF | SF | PF | AF));
        assert_eq!(sub(0x80, 1, 0, 1), (0x7F, OF | AF));
        assert_eq!(sub(5, 5, 0, 2), (0, ZF | PF));
        assert_eq!(sub(0, 0xFFFF_FFFF, 1, 4), (0, CF | ZF | PF | AF));
    }

    #[test]
    fn inc_dec_neg() {
        assert_eq!(inc(0xFFFF, 2), (0, ZF | PF | AF));
        assert_eq!(dec(0, 4), (0xFFFF_FFFF, SF | PF | AF));
        assert_eq!(neg(0, 1), (0, ZF | PF));
        assert_eq!(neg(1, 1).1 & CF, CF);
        assert_eq!(neg(0x80, 1), (0x80, CF | OF | SF));
    }

    #[test]
    fn shifts_by_one_and_by_many() {
        assert_eq!(
            shift(ShiftOp::Shl, 0x81, 1, false, 1),
            Some((0x02, CF | OF))
        );
        assert_eq!(
            shift(ShiftOp::Shr, 0x81, 1, false, 1),
            Some((0x40, CF | OF))
        );
        assert_eq!(
            shift(ShiftOp::Sar, 0x81, 1, false, 1),
            Some((0xC0, CF | SF | PF))
        );
        assert_eq!(shift(ShiftOp::Shl, 1, 0, false, 4), None);
        assert_eq!(
            shift(ShiftOp::Shr, 0xFF, 9, false, 1).map(|(r, _)| r),
            Some(0)
        );
        assert_eq!(
            shift(ShiftOp::Sar, 0x80, 20, false, 1).map(|(r, _)| r),
            Some(0xFF)
        );
    }

    #[test]
    fn rotates_through_carry_use_width_plus_one() {
        // 1000_0001 → 0000_0011: CF = bit 0 = 1, OF = MSB xor CF = 1.
        assert_eq!(
            shift(ShiftOp::Rol, 0x81, 1, false, 1),
            Some((0x03, CF | OF))
        );
        assert_eq!(
            shift(ShiftOp::Ror, 0x01, 1, false, 1),
            Some((0x80, CF | OF))
        );
        assert_eq!(
            shift(ShiftOp::Rcl, 0x80, 1, false, 1),
            Some((0x00, CF | OF))
        );
        assert_eq!(shift(ShiftOp::Rcr, 0x01, 1, true, 1), Some((0x80, CF | OF)));
        // 9-bit rotate: RCL by 9 is the identity.
        assert_eq!(shift(ShiftOp::Rcl, 0x5A, 9, true, 1), None);
    }

    #[test]
    fn double_shifts_fill_from_the_second_operand() {
        assert_eq!(
            double_shift(true, 0x1234_5678, 0x9ABC_DEF0, 8, 4).map(|(r, _)| r),
            Some(0x3456_789A)
        );
        assert_eq!(
            double_shift(false, 0x1234_5678, 0x9ABC_DEF0, 8, 4).map(|(r, _)| r),
            Some(0xF012_3456)
        );
        assert_eq!(double_shift(true, 1, 2, 0, 4), None);
    }
}
