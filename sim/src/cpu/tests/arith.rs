//! ALU instruction tests: the eight binary operations, TEST, INC/DEC/NEG/NOT, shifts and
//! rotates, SHLD/SHRD, multiply and divide, at 8, 16 and 32 bits, with the flag edge cases
//! the SDM defines (Vol. 1 Appendix A, "EFLAGS Cross-Reference"; Vol. 2 per instruction).
//!
//! Flags the SDM leaves undefined for an instruction are masked out of every comparison.

use super::super::state::{flags, RAX, RBP, RBX, RCX, RDI, RDX, RSI};
use super::super::testing::{run, Bench, Mode, CODE_BASE, STACK_TOP};
use crate::timing::TimingTable;

use flags::{AF, CF, OF, PF, SF, ZF};

/// All six arithmetic flags.
const ALL: u64 = flags::ARITH;
/// Logic instructions and shifts leave AF undefined.
const NO_AF: u64 = flags::ARITH & !AF;

/// Runs `code` in `mode` with the registers and arithmetic flags given.
fn exec(mode: Mode, code: &[u8], regs: &[(usize, u64)], flags_in: u64) -> Bench {
    run(mode, code, |cpu| {
        for &(reg, value) in regs {
            cpu.state.regs[reg] = value;
        }
        cpu.state.rflags = flags::FIXED1 | flags_in;
    })
}

/// One case of an instruction working on EAX and EBX (or their parts): inputs, then the
/// expected EAX and flags.
type Case = (&'static [u8], u64, u64, u64, u64, u64);

/// Runs every case in 32-bit protected mode and compares EAX and the flags in `defined`.
fn check(cases: &[Case], defined: u64) {
    for (n, &(code, eax, ebx, flags_in, eax_out, flags_out)) in cases.iter().enumerate() {
        let bench = exec(Mode::Protected32, code, &[(RAX, eax), (RBX, ebx)], flags_in);
        let f = bench.cpu.state.rflags;
        assert_eq!(
            bench.cpu.state.regs[RAX], eax_out,
            "case {n} ({code:02x?}): EAX"
        );
        assert_eq!(
            f & defined,
            flags_out,
            "case {n} ({code:02x?}): flags {f:#x}"
        );
        assert_eq!(bench.cpu.state.regs[RBX], ebx, "case {n}: EBX is a source");
    }
}

const ADD_AL_BL: &[u8] = &[0x00, 0xD8]; // add al, bl
const ADD_AX_BX: &[u8] = &[0x66, 0x01, 0xD8]; // add ax, bx
const ADD_EAX_EBX: &[u8] = &[0x01, 0xD8]; // add eax, ebx
const ADC_AL_BL: &[u8] = &[0x10, 0xD8]; // adc al, bl
const ADC_AX_BX: &[u8] = &[0x66, 0x11, 0xD8]; // adc ax, bx
const ADC_EAX_EBX: &[u8] = &[0x11, 0xD8]; // adc eax, ebx
const SUB_AL_BL: &[u8] = &[0x28, 0xD8]; // sub al, bl
const SUB_AX_BX: &[u8] = &[0x66, 0x29, 0xD8]; // sub ax, bx
const SUB_EAX_EBX: &[u8] = &[0x29, 0xD8]; // sub eax, ebx
const SBB_AL_BL: &[u8] = &[0x18, 0xD8]; // sbb al, bl
const SBB_AX_BX: &[u8] = &[0x66, 0x19, 0xD8]; // sbb ax, bx
const SBB_EAX_EBX: &[u8] = &[0x19, 0xD8]; // sbb eax, ebx

#[test]
fn add_sets_carry_overflow_aux_zero_sign_parity_at_every_width() {
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // 0xFF + 1 wraps: carry out of bit 7 and of bit 3.
        (ADD_AL_BL,   0xFF,        0x01,        0,   0x00,        CF | PF | AF | ZF),
        // 127 + 1 overflows into the sign.
        (ADD_AL_BL,   0x7F,        0x01,        0,   0x80,        OF | SF | AF),
        // −128 + −128: carry and overflow, zero result.
        (ADD_AL_BL,   0x80,        0x80,        0,   0x00,        CF | OF | ZF | PF),
        // 8 + 8 carries out of bit 3 only.
        (ADD_AL_BL,   0x08,        0x08,        0,   0x10,        AF),
        // The upper 24 bits of EAX are kept; 0x03 has even parity. Incoming flags go.
        (ADD_AL_BL,   0xDEAD_BE01, 0x02,        ALL, 0xDEAD_BE03, PF),
        (ADD_AX_BX,   0xFFFF,      0x0001,      0,   0x0000,      CF | PF | AF | ZF),
        (ADD_AX_BX,   0x7FFF,      0x0001,      0,   0x8000,      OF | SF | AF | PF),
        (ADD_AX_BX,   0x1234_0001, 0x0001,      0,   0x1234_0002, 0),
        (ADD_EAX_EBX, 0xFFFF_FFFF, 1,           0,   0,           CF | PF | AF | ZF),
        (ADD_EAX_EBX, 0x7FFF_FFFF, 1,           0,   0x8000_0000, OF | SF | AF | PF),
        (ADD_EAX_EBX, 0x8000_0000, 0x8000_0000, 0,   0,           CF | OF | ZF | PF),
        (ADD_EAX_EBX, 1,           2,           0,   3,           PF),
    ];
    check(cases, ALL);
}

#[test]
fn adc_adds_the_incoming_carry() {
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (ADC_AL_BL,   0xFF,        0x00,        CF, 0x00,        CF | PF | AF | ZF),
        (ADC_AL_BL,   0x7F,        0x00,        CF, 0x80,        OF | SF | AF),
        (ADC_AL_BL,   0x7F,        0x00,        0,  0x7F,        0),
        // 0xFF + 0xFF + 1 = 0x1FF: carry out, aux carry, result 0xFF.
        (ADC_AL_BL,   0xFF,        0xFF,        CF, 0xFF,        CF | AF | SF | PF),
        (ADC_AX_BX,   0x7FFF,      0x0000,      CF, 0x8000,      OF | SF | AF | PF),
        (ADC_EAX_EBX, 0xFFFF_FFFF, 0xFFFF_FFFF, CF, 0xFFFF_FFFF, CF | AF | SF | PF),
        (ADC_EAX_EBX, 0x7FFF_FFFE, 0,           CF, 0x7FFF_FFFF, PF),
    ];
    check(cases, ALL);
}

#[test]
fn sub_and_sbb_borrow_and_overflow() {
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (SUB_AL_BL,   0x00,        0x01,   0,       0xFF,        CF | SF | PF | AF),
        (SUB_AL_BL,   0x80,        0x01,   0,       0x7F,        OF | AF),
        (SUB_AL_BL,   0x05,        0x05,   CF | SF, 0x00,        ZF | PF),
        (SUB_AL_BL,   0x10,        0x01,   0,       0x0F,        AF | PF),
        // 127 − (−1) = 128 does not fit: borrow and overflow.
        (SUB_AL_BL,   0x7F,        0xFF,   0,       0x80,        CF | OF | SF),
        (SUB_AX_BX,   0x8000,      0x0001, 0,       0x7FFF,      OF | AF | PF),
        (SUB_EAX_EBX, 0,           1,      0,       0xFFFF_FFFF, CF | SF | PF | AF),
        (SBB_AL_BL,   0x00,        0x00,   CF,      0xFF,        CF | SF | PF | AF),
        (SBB_AL_BL,   0x05,        0x04,   CF,      0x00,        ZF | PF),
        (SBB_AL_BL,   0x03,        0x04,   0,       0xFF,        CF | SF | PF | AF),
        // 0 − 0xFFFF − 1 = −0x10000: a zero result that still borrows.
        (SBB_AX_BX,   0x0000,      0xFFFF, CF,      0x0000,      CF | ZF | PF | AF),
        (SBB_EAX_EBX, 0x8000_0000, 0,      CF,      0x7FFF_FFFF, OF | AF | PF),
    ];
    check(cases, ALL);
}

#[test]
fn logic_operations_clear_carry_and_overflow() {
    const AND_AL_BL: &[u8] = &[0x20, 0xD8]; // and al, bl
    const AND_EAX_EBX: &[u8] = &[0x21, 0xD8]; // and eax, ebx
    const OR_AL_BL: &[u8] = &[0x08, 0xD8]; // or al, bl
    const OR_AX_BX: &[u8] = &[0x66, 0x09, 0xD8]; // or ax, bx
    const XOR_EAX_EBX: &[u8] = &[0x31, 0xD8]; // xor eax, ebx
    const XOR_AL_BL: &[u8] = &[0x30, 0xD8]; // xor al, bl
    const AND_EAX_IMM32: &[u8] = &[0x25, 0x0F, 0xFF, 0xFF, 0xFF]; // and eax, 0xFFFFFF0F
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (AND_AL_BL,     0xF0,        0x8F,        CF | OF,      0x80,        SF),
        (AND_AL_BL,     0xFFFF_FFF0, 0x0F,        CF | OF,      0xFFFF_FF00, ZF | PF),
        (AND_EAX_EBX,   0x8000_0001, 0x8000_0003, CF | OF,      0x8000_0001, SF),
        (OR_AL_BL,      0x00,        0x00,        CF | OF,      0x00,        ZF | PF),
        (OR_AL_BL,      0x40,        0x01,        0,            0x41,        PF),
        (OR_AX_BX,      0x8000,      0x0001,      OF,           0x8001,      SF),
        (XOR_EAX_EBX,   0x1234_5678, 0x1234_5678, CF | SF,      0,           ZF | PF),
        (XOR_EAX_EBX,   0x1234_5678, 0xFFFF_FFFF, 0,            0xEDCB_A987, SF | PF),
        (XOR_AL_BL,     0x55AA,      0xFF,        CF,           0x5555,      PF),
        (AND_EAX_IMM32, 0x1234_56F8, 0,           CF | OF | ZF, 0x1234_5608, 0),
    ];
    check(cases, NO_AF);
}

#[test]
fn cmp_and_test_set_flags_without_writing() {
    const CMP_AL_BL: &[u8] = &[0x38, 0xD8]; // cmp al, bl
    const CMP_EAX_EBX: &[u8] = &[0x39, 0xD8]; // cmp eax, ebx
    const CMP_AX_IMM16: &[u8] = &[0x66, 0x3D, 0x00, 0x80]; // cmp ax, 0x8000
    const SUB_AL_IMM8: &[u8] = &[0x2C, 0x80]; // sub al, 0x80
    const TEST_AL_BL: &[u8] = &[0x84, 0xD8]; // test al, bl
    const TEST_EAX_EBX: &[u8] = &[0x85, 0xD8]; // test eax, ebx
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (CMP_AL_BL,    0x01,        0x02, 0,  0x01,        CF | SF | PF | AF),
        (CMP_EAX_EBX,  0x8000_0000, 1,    0,  0x8000_0000, OF | AF | PF),
        (CMP_EAX_EBX,  7,           7,    CF, 7,           ZF | PF),
        // 0x7FFF − 0x8000: borrow and overflow.
        (CMP_AX_IMM16, 0x7FFF,      0,    0,  0x7FFF,      CF | OF | SF | PF),
        (SUB_AL_IMM8,  0x00,        0,    0,  0x80,        CF | OF | SF),
    ];
    check(cases, ALL);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (TEST_AL_BL,   0x80, 0x80, CF | OF, 0x80, SF),
        (TEST_EAX_EBX, 0x0F, 0xF0, CF | OF, 0x0F, ZF | PF),
    ];
    check(cases, NO_AF);
}

#[test]
fn inc_and_dec_keep_the_carry_flag() {
    const INC_AL: &[u8] = &[0xFE, 0xC0]; // inc al
    const INC_AX: &[u8] = &[0x66, 0x40]; // inc ax
    const INC_EAX: &[u8] = &[0x40]; // inc eax
    const DEC_AL: &[u8] = &[0xFE, 0xC8]; // dec al
    const DEC_AX: &[u8] = &[0x66, 0x48]; // dec ax
    const DEC_EAX: &[u8] = &[0x48]; // dec eax
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (INC_AL,  0x7F,        0, CF, 0x80,        CF | OF | SF | AF),
        // Wrapping to zero does not set CF: CF stays as it was (clear here).
        (INC_AL,  0x12FF,      0, 0,  0x1200,      ZF | PF | AF),
        (INC_AX,  0xABCD_FFFF, 0, CF, 0xABCD_0000, CF | ZF | PF | AF),
        (INC_EAX, 0x7FFF_FFFF, 0, 0,  0x8000_0000, OF | SF | AF | PF),
        (DEC_AL,  0x80,        0, CF, 0x7F,        CF | OF | AF),
        (DEC_AL,  0x01,        0, 0,  0x00,        ZF | PF),
        (DEC_AX,  0x0000,      0, 0,  0xFFFF,      SF | PF | AF),
        (DEC_EAX, 0,           0, CF, 0xFFFF_FFFF, CF | SF | PF | AF),
    ];
    check(cases, ALL);
}

#[test]
fn neg_sets_carry_unless_zero_and_not_touches_no_flags() {
    const NEG_AL: &[u8] = &[0xF6, 0xD8]; // neg al
    const NEG_AX: &[u8] = &[0x66, 0xF7, 0xD8]; // neg ax
    const NEG_EAX: &[u8] = &[0xF7, 0xD8]; // neg eax
    const NOT_AL: &[u8] = &[0xF6, 0xD0]; // not al
    const NOT_AX: &[u8] = &[0x66, 0xF7, 0xD0]; // not ax
    const NOT_EAX: &[u8] = &[0xF7, 0xD0]; // not eax
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (NEG_AL,  0x00,        0, CF,      0x00,        ZF | PF),
        (NEG_AL,  0x01,        0, 0,       0xFF,        CF | SF | PF | AF),
        // −(−128) does not fit.
        (NEG_AL,  0x80,        0, 0,       0x80,        CF | OF | SF),
        (NEG_AX,  0x8000,      0, 0,       0x8000,      CF | OF | SF | PF),
        (NEG_EAX, 5,           0, 0,       0xFFFF_FFFB, CF | SF | AF),
        (NOT_AL,  0x1234_560F, 0, ALL,     0x1234_56F0, ALL),
        (NOT_AX,  0x1234_00FF, 0, 0,       0x1234_FF00, 0),
        (NOT_EAX, 0x0F0F_0F0F, 0, CF | ZF, 0xF0F0_F0F0, CF | ZF),
    ];
    check(cases, ALL);
}

#[test]
fn high_byte_registers_name_bits_8_to_15() {
    let bench = exec(
        Mode::Protected32,
        &[
            0x00, 0xFC, // add ah, bh
            0x28, 0xF5, // sub ch, dh
            0x10, 0xE6, // adc dh, ah
            0x30, 0xEF, // xor bh, ch
        ],
        &[
            (RAX, 0x1122_7F33),
            (RBX, 0x5566_0177),
            (RCX, 0x99AA_10BB),
            (RDX, 0xDDEE_20FF),
        ],
        0,
    );
    let r = &bench.cpu.state.regs;
    // ah = 0x7F + 0x01 = 0x80; ch = 0x10 − 0x20 = 0xF0 (borrow, so CF = 1);
    // dh = 0x20 + 0x80 + 1 = 0xA1; bh = 0x01 ^ 0xF0 = 0xF1.
    assert_eq!(r[RAX], 0x1122_8033);
    assert_eq!(r[RCX], 0x99AA_F0BB);
    assert_eq!(r[RDX], 0xDDEE_A1FF);
    assert_eq!(r[RBX], 0x5566_F177);
    // The last instruction, XOR, leaves SF set (0xF1), PF clear (five ones), CF and OF clear.
    assert_eq!(bench.cpu.state.rflags & NO_AF, SF);
}

#[test]
fn immediates_are_sign_extended_to_the_operand_size() {
    const ADD_EAX_IMM8: &[u8] = &[0x83, 0xC0, 0xFF]; // add eax, byte -1
    const ADD_EAX_IMM32: &[u8] = &[0x05, 0x78, 0x56, 0x34, 0x12]; // add eax, 0x12345678
    const OR_BH_IMM8: &[u8] = &[0x80, 0xCF, 0x01]; // or bh, 1
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // 10 + 0xFFFFFFFF carries out.
        (ADD_EAX_IMM8,  10,          0, 0, 9,           CF | PF | AF),
        (ADD_EAX_IMM32, 0x1111_1111, 0, 0, 0x2345_6789, 0),
    ];
    check(cases, ALL);
    let bench = exec(Mode::Protected32, OR_BH_IMM8, &[(RBX, 0xFFFF_80FF)], 0);
    assert_eq!(bench.cpu.state.regs[RBX], 0xFFFF_81FF);
    assert_eq!(bench.cpu.state.rflags & NO_AF, SF | PF);
}

#[test]
fn memory_destinations_and_sources() {
    const DATA: u64 = 0x2000;
    let bench = run(
        Mode::Protected32,
        &[
            0x01, 0x03, //                   add [ebx], eax
            0x03, 0x03, //                   add eax, [ebx]
            0x66, 0x83, 0x6B, 0x02, 0x01, // sub word [ebx+2], 1
            0x80, 0x44, 0x8B, 0x01, 0x80, // add byte [ebx+ecx*4+1], 0x80
        ],
        |cpu| {
            cpu.state.regs[RAX] = 5;
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 2;
            cpu.memory().write(DATA, 4, 0x0001_0010);
            cpu.memory().write(DATA + 8, 4, 0x0000_8000);
        },
    );
    // [DATA] = 0x10015, then its upper word 0x0001 − 1 = 0.
    assert_eq!(bench.read(DATA, 4), 0x0000_0015);
    assert_eq!(bench.cpu.state.regs[RAX], 5 + 0x1_0015);
    // [DATA + 9] = 0x80 + 0x80 = 0x00, carry and overflow.
    assert_eq!(bench.read(DATA + 8, 4), 0x0000_0000);
    assert_eq!(bench.cpu.state.rflags & ALL, CF | OF | ZF | PF);
    let t = TimingTable::default();
    // Two read-modify-writes and one more, a load, and the HLT.
    assert_eq!(
        bench.cpu.cycle,
        u64::from(3 * t.store + t.load + t.serializing)
    );
}

#[test]
fn real_mode_sixteen_bit_addressing_forms() {
    let bench = run(
        Mode::Real,
        &[
            0x01, 0x40, 0x04, //       add [bx+si+4], ax
            0x83, 0x6E, 0xFE, 0x10, // sub word [bp-2], 0x10
            0xFE, 0x05, //             inc byte [di]
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0x0102;
            cpu.state.regs[RBX] = 0x0100;
            cpu.state.regs[RSI] = 0x0020;
            cpu.state.regs[RBP] = 0x0200;
            cpu.state.regs[RDI] = 0x0300;
            cpu.memory().write(0x124, 2, 0x1000);
            cpu.memory().write(0x1FE, 2, 0x0008);
            cpu.memory().write(0x300, 1, 0xFF);
        },
    );
    assert_eq!(bench.read(0x124, 2), 0x1102);
    // 8 − 16 borrows.
    assert_eq!(bench.read(0x1FE, 2), 0xFFF8);
    assert_eq!(bench.read(0x300, 1), 0x00);
    // INC leaves the borrow of the SUB in CF.
    assert_eq!(bench.cpu.state.rflags & ALL, CF | ZF | PF | AF);
}

/// A LOCK-prefixed update of the dword at [EBX]: code, memory before, EAX, flags in, memory
/// after, flags after, the flags the SDM defines for it.
type LockedCase = (&'static [u8], u64, u64, u64, u64, u64, u64);

const LOCK_ADD: &[u8] = &[0xF0, 0x01, 0x03]; // lock add [ebx], eax
const LOCK_ADC: &[u8] = &[0xF0, 0x83, 0x13, 0x01]; // lock adc dword [ebx], 1
const LOCK_SUB: &[u8] = &[0xF0, 0x29, 0x03]; // lock sub [ebx], eax
const LOCK_SBB: &[u8] = &[0xF0, 0x80, 0x1B, 0x01]; // lock sbb byte [ebx], 1
const LOCK_AND: &[u8] = &[0xF0, 0x81, 0x23, 0xF0, 0x00, 0x00, 0x00]; // lock and dword [ebx], 0xF0
const LOCK_OR: &[u8] = &[0xF0, 0x66, 0x81, 0x0B, 0x00, 0x80]; // lock or word [ebx], 0x8000
const LOCK_XOR: &[u8] = &[0xF0, 0x31, 0x03]; // lock xor [ebx], eax
const LOCK_INC: &[u8] = &[0xF0, 0xFF, 0x03]; // lock inc dword [ebx]
const LOCK_DEC: &[u8] = &[0xF0, 0x66, 0xFF, 0x0B]; // lock dec word [ebx]
const LOCK_NEG: &[u8] = &[0xF0, 0xF6, 0x1B]; // lock neg byte [ebx]
const LOCK_NOT: &[u8] = &[0xF0, 0xF7, 0x13]; // lock not dword [ebx]

#[test]
fn lock_prefixed_read_modify_writes_update_memory_and_cost_a_locked_access() {
    const DATA: u64 = 0x3000;
    #[rustfmt::skip]
    let cases: &[LockedCase] = &[
        (LOCK_ADD, 0xFFFF_FFFF, 1,    0,  0,           CF | ZF | PF | AF,      ALL),
        (LOCK_ADC, 5,           0,    CF, 7,           0,                      ALL),
        (LOCK_SUB, 1,           2,    0,  0xFFFF_FFFF, CF | SF | PF | AF,      ALL),
        (LOCK_SBB, 0x1234_5602, 0,    CF, 0x1234_5600, ZF | PF,                ALL),
        (LOCK_AND, 0xFF,        0,    CF, 0xF0,        PF,                     NO_AF),
        (LOCK_OR,  0x1,         0,    0,  0x8001,      SF,                     NO_AF),
        (LOCK_XOR, 0xFF,        0xFF, 0,  0,           ZF | PF,                NO_AF),
        // INC and DEC keep CF.
        (LOCK_INC, 0x7FFF_FFFF, 0,    CF, 0x8000_0000, CF | OF | SF | AF | PF, ALL),
        (LOCK_DEC, 0xAAAA_0000, 0,    0,  0xAAAA_FFFF, SF | PF | AF,           ALL),
        (LOCK_NEG, 0x01,        0,    0,  0xFF,        CF | SF | PF | AF,      ALL),
        // NOT changes no flags.
        (LOCK_NOT, 0x0000_FFFF, 0,    OF, 0xFFFF_0000, OF,                     ALL),
    ];
    let t = TimingTable::default();
    for (n, &(code, before, eax, flags_in, after, flags_out, defined)) in cases.iter().enumerate() {
        let bench = run(Mode::Protected32, code, |cpu| {
            cpu.state.regs[RAX] = eax;
            cpu.state.regs[RBX] = DATA;
            cpu.state.rflags = flags::FIXED1 | flags_in;
            cpu.memory().write(DATA, 4, before);
        });
        assert_eq!(bench.read(DATA, 4), after, "case {n} ({code:02x?}): memory");
        assert_eq!(
            bench.cpu.state.rflags & defined,
            flags_out,
            "case {n} ({code:02x?}): flags"
        );
        assert_eq!(
            bench.cpu.cycle,
            u64::from(t.locked_rmw + t.serializing),
            "case {n}: cycles"
        );
    }
}

/// Runs a shift or rotate on AL/AX/EAX with CL = `cl` and the flags given.
fn shift_case(code: &[u8], eax: u64, cl: u64, flags_in: u64) -> (u64, u64) {
    let bench = exec(Mode::Protected32, code, &[(RAX, eax), (RCX, cl)], flags_in);
    (bench.cpu.state.regs[RAX], bench.cpu.state.rflags & ALL)
}

const SHL_AL_1: &[u8] = &[0xD0, 0xE0]; // shl al, 1
const SHL_AL_CL: &[u8] = &[0xD2, 0xE0]; // shl al, cl
const SHL_EAX_CL: &[u8] = &[0xD3, 0xE0]; // shl eax, cl
const SHL_EAX_0: &[u8] = &[0xC1, 0xE0, 0x00]; // shl eax, 0
const SHR_AL_1: &[u8] = &[0xD0, 0xE8]; // shr al, 1
const SHR_AL_CL: &[u8] = &[0xD2, 0xE8]; // shr al, cl
const SHR_AX_CL: &[u8] = &[0x66, 0xD3, 0xE8]; // shr ax, cl
const SAR_AL_1: &[u8] = &[0xD0, 0xF8]; // sar al, 1
const SAR_AL_CL: &[u8] = &[0xD2, 0xF8]; // sar al, cl
const SAR_EAX_31: &[u8] = &[0xC1, 0xF8, 0x1F]; // sar eax, 31

#[test]
fn shifts_by_one_define_every_flag_but_af() {
    // SHL: CF = the bit shifted out, OF = CF xor the result's sign.
    let (value, f) = shift_case(SHL_AL_1, 0x81, 0, 0);
    assert_eq!((value, f & NO_AF), (0x02, CF | OF));
    assert_eq!(shift_case(SHL_AL_1, 0x40, 0, CF).0, 0x80);
    assert_eq!(shift_case(SHL_AL_1, 0x40, 0, CF).1 & NO_AF, OF | SF);
    // SHR: OF = the operand's original sign.
    assert_eq!(shift_case(SHR_AL_1, 0x81, 0, 0).0, 0x40);
    assert_eq!(shift_case(SHR_AL_1, 0x81, 0, 0).1 & NO_AF, CF | OF);
    // SAR: OF = 0, the sign is kept.
    assert_eq!(shift_case(SAR_AL_1, 0x81, 0, OF).0, 0xC0);
    assert_eq!(shift_case(SAR_AL_1, 0x81, 0, OF).1 & NO_AF, CF | SF | PF);
    // The upper bits of EAX are not part of an 8-bit shift.
    assert_eq!(shift_case(SHL_AL_1, 0xABCD_EF01, 0, 0).0, 0xABCD_EF02);
}

#[test]
fn a_masked_shift_count_of_zero_changes_nothing() {
    for (code, cl) in [
        (SHL_EAX_CL, 0),
        (SHL_EAX_CL, 32),
        (SHL_EAX_0, 0),
        (SHR_AL_CL, 0x20),
    ] {
        for flags_in in [0, ALL] {
            assert_eq!(
                shift_case(code, 0x8000_0001, cl, flags_in),
                (0x8000_0001, flags_in),
                "{code:02x?} with CL = {cl}"
            );
        }
    }
}

#[test]
fn shift_counts_are_masked_to_five_bits_and_may_exceed_the_width() {
    // 33 & 31 = 1.
    let (value, f) = shift_case(SHL_EAX_CL, 0x8000_0001, 33, 0);
    assert_eq!((value, f & NO_AF), (2, CF | OF));
    // Counts ≥ the width: the result is defined, CF and OF are not (SDM Vol. 2B, SAL/SAR/
    // SHL/SHR).
    let defined = ZF | SF | PF;
    assert_eq!(shift_case(SHL_AL_CL, 0x11FF, 8, 0).0, 0x1100);
    assert_eq!(shift_case(SHL_AL_CL, 0x11FF, 8, 0).1 & defined, ZF | PF);
    assert_eq!(shift_case(SHL_AL_CL, 0xFF, 9, SF).1 & defined, ZF | PF);
    assert_eq!(shift_case(SHR_AL_CL, 0xFF, 8, 0).0, 0);
    assert_eq!(shift_case(SHR_AX_CL, 0x1234_FFFF, 16, 0).0, 0x1234_0000);
    assert_eq!(
        shift_case(SHR_AX_CL, 0x1234_FFFF, 16, 0).1 & defined,
        ZF | PF
    );
    // SAR by more than the width fills with the sign, and the last bit out is the sign.
    assert_eq!(shift_case(SAR_AL_CL, 0x80, 20, 0).0, 0xFF);
    assert_eq!(
        shift_case(SAR_AL_CL, 0x80, 20, 0).1 & (CF | defined),
        CF | SF | PF
    );
    assert_eq!(shift_case(SAR_EAX_31, 0x8000_0000, 0, CF).0, 0xFFFF_FFFF);
    assert_eq!(
        shift_case(SAR_EAX_31, 0x8000_0000, 0, CF).1 & (CF | defined),
        SF | PF
    );
}

const ROL_AL_1: &[u8] = &[0xD0, 0xC0]; // rol al, 1
const ROL_AL_CL: &[u8] = &[0xD2, 0xC0]; // rol al, cl
const ROR_AL_1: &[u8] = &[0xD0, 0xC8]; // ror al, 1
const ROL_EAX_CL: &[u8] = &[0xD3, 0xC0]; // rol eax, cl
const ROR_EAX_8: &[u8] = &[0xC1, 0xC8, 0x08]; // ror eax, 8
const RCL_AL_1: &[u8] = &[0xD0, 0xD0]; // rcl al, 1
const RCR_AL_1: &[u8] = &[0xD0, 0xD8]; // rcr al, 1
const RCL_AL_CL: &[u8] = &[0xD2, 0xD0]; // rcl al, cl
const RCL_AX_CL: &[u8] = &[0x66, 0xD3, 0xD0]; // rcl ax, cl
const RCL_EAX_CL: &[u8] = &[0xD3, 0xD0]; // rcl eax, cl
const RCR_EAX_CL: &[u8] = &[0xD3, 0xD8]; // rcr eax, cl

#[test]
fn rotates_write_only_carry_and_overflow() {
    // SF, ZF, AF and PF come through every rotate unchanged.
    let kept = SF | ZF | AF | PF;
    assert_eq!(shift_case(ROL_AL_1, 0x81, 0, kept), (0x03, kept | CF | OF));
    assert_eq!(shift_case(ROR_AL_1, 0x01, 0, kept), (0x80, kept | CF | OF));
    assert_eq!(shift_case(ROR_AL_1, 0x02, 0, CF), (0x01, 0));
    // A rotate by a multiple of the width still sets CF from the result (OF is undefined).
    let (value, f) = shift_case(ROL_AL_CL, 0x81, 8, 0);
    assert_eq!((value, f & !OF), (0x81, CF));
    assert_eq!(shift_case(ROL_AL_CL, 0x81, 0, ALL), (0x81, ALL));
    let (value, f) = shift_case(ROL_EAX_CL, 0x1234_5678, 36, 0);
    assert_eq!((value, f & CF), (0x2345_6781, CF));
    let (value, f) = shift_case(ROR_EAX_8, 0x1234_5678, 0, CF | ZF);
    assert_eq!((value, f & !OF), (0x7812_3456, ZF));
}

#[test]
fn rotates_through_carry_use_a_width_plus_one_bit_ring() {
    // RCL 1: CF ← MSB, bit 0 ← old CF; OF = MSB(result) xor CF.
    assert_eq!(shift_case(RCL_AL_1, 0x80, 0, 0), (0x00, CF | OF));
    // RCR 1: OF = MSB xor the next bit of the result.
    assert_eq!(shift_case(RCR_AL_1, 0x01, 0, CF), (0x80, CF | OF));
    // 9-, 17- and 33-bit rings: CL = 9 and 17 bring the value back; flags are untouched.
    assert_eq!(shift_case(RCL_AL_CL, 0x5A, 9, CF | ZF), (0x5A, CF | ZF));
    assert_eq!(
        shift_case(RCL_AX_CL, 0x7777_1234, 17, SF),
        (0x7777_1234, SF)
    );
    // CF:AL = 1:0x5A rotated left by 3 → AL = 0xD5, CF = 0.
    assert_eq!(shift_case(RCL_AL_CL, 0x5A, 3, CF).0, 0xD5);
    assert_eq!(shift_case(RCL_AL_CL, 0x5A, 3, CF).1 & CF, 0);
    // 32 bits: the count is masked to 5 bits before the ring, so CL = 32 does nothing and
    // CL = 31 moves bit 0 to bit 31, with CF = the old bit 1.
    assert_eq!(shift_case(RCL_EAX_CL, 1, 32, ZF), (1, ZF));
    assert_eq!(shift_case(RCL_EAX_CL, 1, 31, 0).0, 0x8000_0000);
    assert_eq!(shift_case(RCL_EAX_CL, 3, 31, 0).1 & CF, CF);
    assert_eq!(shift_case(RCR_EAX_CL, 2, 1, CF), (0x8000_0001, OF));
}

#[test]
fn double_shifts_fill_from_the_second_register() {
    let shld = |code: &[u8], eax, ebx, cl, flags_in| {
        let bench = exec(
            Mode::Protected32,
            code,
            &[(RAX, eax), (RBX, ebx), (RCX, cl)],
            flags_in,
        );
        (bench.cpu.state.regs[RAX], bench.cpu.state.rflags & ALL)
    };
    const SHLD_8: &[u8] = &[0x0F, 0xA4, 0xD8, 0x08]; // shld eax, ebx, 8
    const SHRD_8: &[u8] = &[0x0F, 0xAC, 0xD8, 0x08]; // shrd eax, ebx, 8
    const SHLD_16_4: &[u8] = &[0x66, 0x0F, 0xA4, 0xD8, 0x04]; // shld ax, bx, 4
    const SHRD_16_4: &[u8] = &[0x66, 0x0F, 0xAC, 0xD8, 0x04]; // shrd ax, bx, 4
    const SHLD_1: &[u8] = &[0x0F, 0xA4, 0xD8, 0x01]; // shld eax, ebx, 1
    let defined = CF | SF | ZF | PF;
    let (value, f) = shld(SHLD_8, 0x1234_5678, 0x9ABC_DEF0, 0, 0);
    assert_eq!((value, f & defined), (0x3456_789A, PF));
    let (value, f) = shld(SHRD_8, 0x1234_5678, 0x9ABC_DEF0, 0, CF);
    assert_eq!((value, f & defined), (0xF012_3456, SF | PF));
    // 16 bits: the last bit out of 0x1234 to the left by 4 is bit 12.
    let (value, f) = shld(SHLD_16_4, 0xFFFF_1234, 0xABCD, 0, 0);
    assert_eq!((value, f & defined), (0xFFFF_234A, CF));
    let (value, f) = shld(SHRD_16_4, 0x1234, 0xABCD, 0, CF);
    assert_eq!((value, f & defined), (0xD123, SF));
    // By one, OF reports the sign change.
    let (value, f) = shld(SHLD_1, 0x4000_0000, 0x8000_0000, 0, 0);
    assert_eq!((value, f & (defined | OF)), (0x8000_0001, OF | SF));
    // CL = 0 and CL = 32 (masked to 0) change nothing.
    for cl in [0, 32] {
        assert_eq!(
            shld(&[0x0F, 0xA5, 0xD8], 0x1234_5678, 0x9ABC_DEF0, cl, ALL), // shld eax, ebx, cl
            (0x1234_5678, ALL)
        );
        assert_eq!(
            shld(&[0x0F, 0xAD, 0xD8], 0x1234_5678, 0x9ABC_DEF0, cl, 0), // shrd eax, ebx, cl
            (0x1234_5678, 0)
        );
    }
}

#[test]
fn double_shift_and_shift_of_memory() {
    const DATA: u64 = 0x2000;
    let bench = run(
        Mode::Protected32,
        &[
            0x0F, 0xAD, 0x0B, // shrd dword [ebx], ecx, cl
            0xD1, 0x63, 0x04, // shl dword [ebx+4], 1
        ],
        |cpu| {
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 1;
            cpu.memory().write(DATA, 4, 3);
            cpu.memory().write(DATA + 4, 4, 0xC000_0000);
        },
    );
    assert_eq!(bench.read(DATA, 4), 0x8000_0001);
    assert_eq!(bench.read(DATA + 4, 4), 0x8000_0000);
    // SHL 1 of 0xC0000000: CF = 1, result negative, OF = CF xor SF = 0.
    assert_eq!(bench.cpu.state.rflags & NO_AF, CF | SF | PF);
}

/// Runs a multiply or divide with EAX, EDX, EBX and ECX given; returns the bench.
fn muldiv(mode: Mode, code: &[u8], eax: u64, edx: u64, ebx: u64, ecx: u64) -> Bench {
    exec(
        mode,
        code,
        &[(RAX, eax), (RDX, edx), (RBX, ebx), (RCX, ecx)],
        0,
    )
}

/// A multiply or divide: code, EAX, EDX, EBX, ECX in; EAX, EDX out; CF = OF after (for
/// multiplies).
type MulDivCase = (&'static [u8], u64, u64, u64, u64, u64, u64, bool);

/// Runs multiply or divide cases in 32-bit code, checking EAX, EDX and (for multiplies) CF and
/// OF, which the SDM sets together when the high half is significant.
fn check_muldiv(cases: &[MulDivCase], flags_defined: bool, cycles: u32) {
    let t = TimingTable::default();
    for (n, &(code, eax, edx, ebx, ecx, eax_out, edx_out, carry)) in cases.iter().enumerate() {
        let bench = muldiv(Mode::Protected32, code, eax, edx, ebx, ecx);
        let r = &bench.cpu.state.regs;
        let out = (r[RAX], r[RDX]);
        assert_eq!(out, (eax_out, edx_out), "case {n} ({code:02x?})");
        if flags_defined {
            let expected = if carry { CF | OF } else { 0 };
            assert_eq!(bench.cpu.state.rflags & (CF | OF), expected, "case {n}");
        }
        assert_eq!(
            bench.cpu.cycle,
            u64::from(cycles + t.serializing),
            "case {n}"
        );
        assert_eq!(bench.cpu.stats.exceptions, 0, "case {n}");
    }
}

const MUL_BL: &[u8] = &[0xF6, 0xE3]; // mul bl
const MUL_BX: &[u8] = &[0x66, 0xF7, 0xE3]; // mul bx
const MUL_EBX: &[u8] = &[0xF7, 0xE3]; // mul ebx
const IMUL_BL: &[u8] = &[0xF6, 0xEB]; // imul bl
const IMUL_ECX: &[u8] = &[0xF7, 0xE9]; // imul ecx
const IMUL2: &[u8] = &[0x0F, 0xAF, 0xC3]; // imul eax, ebx
const IMUL3_B: &[u8] = &[0x6B, 0xC3, 0xFD]; // imul eax, ebx, -3
const IMUL3_W: &[u8] = &[0x66, 0x69, 0xC3, 0x34, 0x12]; // imul ax, bx, 0x1234

#[test]
fn unsigned_multiply_fills_the_accumulator_pair() {
    let t = TimingTable::default();
    #[rustfmt::skip]
    let cases: &[MulDivCase] = &[
        (MUL_BL,  0xABCD_0080, 0x55,        2,      0, 0xABCD_0100, 0x55,        true),
        (MUL_BL,  3,           0x55,        4,      0, 12,          0x55,        false),
        (MUL_BX,  0x1111_FFFF, 0x2222_0000, 0xFFFF, 0, 0x1111_0001, 0x2222_FFFE, true),
        (MUL_EBX, 0xFFFF_FFFF, 0,           2,      0, 0xFFFF_FFFE, 1,           true),
        (MUL_EBX, 0x1000,      7,           0x1000, 0, 0x0100_0000, 0,           false),
    ];
    check_muldiv(cases, true, t.multiply);
}

#[test]
fn signed_multiply_in_one_two_and_three_operand_forms() {
    let t = TimingTable::default();
    #[rustfmt::skip]
    let cases: &[MulDivCase] = &[
        // −2 × 3 = −6 fits in AL.
        (IMUL_BL,  0xFE,        0,    3,        0,           0xFFFA,      0,           false),
        // 64 × 2 = 128 does not fit in a signed byte.
        (IMUL_BL,  0x40,        0,    2,        0,           0x0080,      0,           true),
        (IMUL_ECX, 0xFFFF_FFFF, 9,    0,        0xFFFF_FFFF, 1,           0,           false),
        (IMUL_ECX, 0x8000_0000, 0,    0,        2,           0,           0xFFFF_FFFF, true),
        // Two and three operands truncate into the destination and leave EDX alone.
        (IMUL2,    0x1_0000,    0x77, 0x1_0000, 0,           0,           0x77,        true),
        (IMUL2,    0xFFFF_FFFD, 0,    5,        0,           0xFFFF_FFF1, 0,           false),
        (IMUL3_B,  0x5555,      0,    7,        0,           0xFFFF_FFEB, 0,           false),
        (IMUL3_W,  0xAAAA_0000, 0,    0x10,     0,           0xAAAA_2340, 0,           true),
    ];
    check_muldiv(cases, true, t.multiply);
    // Three operands with a memory source and a 32-bit immediate: −5 × 1000.
    let bench = run(
        Mode::Protected32,
        &[0x69, 0x03, 0xE8, 0x03, 0x00, 0x00], // imul eax, [ebx], 1000
        |cpu| {
            cpu.state.regs[RBX] = 0x2000;
            cpu.memory().write(0x2000, 4, (-5i32) as u32 as u64);
        },
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0xFFFF_EC78);
    assert_eq!(bench.cpu.state.rflags & (CF | OF), 0);
}

#[test]
fn real_mode_sixteen_bit_multiplies_use_dx_ax() {
    // −32768 × −1 = 32768 needs 17 signed bits.
    let bench = muldiv(Mode::Real, &[0xF7, 0xE9], 0x8000, 0x1234, 0, 0xFFFF); // imul cx
    assert_eq!(
        (bench.cpu.state.regs[RAX], bench.cpu.state.regs[RDX]),
        (0x8000, 0x0000)
    );
    assert_eq!(bench.cpu.state.rflags & (CF | OF), CF | OF);
    let bench = muldiv(Mode::Real, &[0xF7, 0xE1], 0x1234, 0, 0, 0x100); // mul cx
    assert_eq!(
        (bench.cpu.state.regs[RAX], bench.cpu.state.regs[RDX]),
        (0x3400, 0x0012)
    );
    assert_eq!(bench.cpu.state.rflags & (CF | OF), CF | OF);
}

const DIV_BL: &[u8] = &[0xF6, 0xF3]; // div bl
const DIV_BX: &[u8] = &[0x66, 0xF7, 0xF3]; // div bx
const DIV_ECX: &[u8] = &[0xF7, 0xF1]; // div ecx
const IDIV_BL: &[u8] = &[0xF6, 0xFB]; // idiv bl
const IDIV_BX: &[u8] = &[0x66, 0xF7, 0xFB]; // idiv bx
const IDIV_ECX: &[u8] = &[0xF7, 0xF9]; // idiv ecx

#[test]
fn divide_gives_quotient_and_remainder() {
    let t = TimingTable::default();
    // DIV and IDIV leave every flag undefined.
    #[rustfmt::skip]
    let cases: &[MulDivCase] = &[
        // 1000 / 7 = 142 rem 6 → AL = 0x8E, AH = 6.
        (DIV_BL,   0xFFFF_03E8, 0x99,        7,      0,    0xFFFF_068E, 0x99,        false),
        (DIV_BX,   0x0000,      0x0001,      2,      0,    0x8000,      0x0000,      false),
        (DIV_ECX,  0,           1,           0,      0x10, 0x1000_0000, 0,           false),
        (DIV_ECX,  0xFFFF_FFFF, 0,           0,      0x10, 0x0FFF_FFFF, 0xF,         false),
        // −7 / 2 = −3 rem −1: truncation towards zero; the remainder has the dividend's sign.
        (IDIV_BL,  0xFFF9,      0,           2,      0,    0xFFFD,      0,           false),
        // −256 / 2 = −128 just fits.
        (IDIV_BL,  0xFF00,      0,           2,      0,    0x0080,      0,           false),
        // −100 / 7 = −14 rem −2.
        (IDIV_ECX, 0xFFFF_FF9C, 0xFFFF_FFFF, 0,      7,    0xFFFF_FFF2, 0xFFFF_FFFE, false),
        // 100 / −7 = −14 rem 2.
        (IDIV_BX,  100,         0,           0xFFF9, 0,    0xFFF2,      2,           false),
    ];
    check_muldiv(cases, false, t.divide);
}

/// Where the real-mode #DE handler sits in the test code: a single HLT.
const DE_HANDLER: u64 = 0x40;

/// Runs `code` in real mode with IVT entry 0 pointing at a HLT at [`DE_HANDLER`].
fn divide_error(code: &[u8], eax: u64, edx: u64, ebx: u64, ecx: u64) -> Bench {
    // The DIV, a HLT in case it does not fault, NOPs up to the handler's HLT (which the bench
    // appends).
    let mut bytes = code.to_vec();
    bytes.push(0xF4); // hlt
    bytes.resize(DE_HANDLER as usize, 0x90); // nop
    run(Mode::Real, &bytes, |cpu| {
        cpu.memory()
            .write(0, 4, ((CODE_BASE >> 4) << 16) | DE_HANDLER);
        for (reg, value) in [(RAX, eax), (RDX, edx), (RBX, ebx), (RCX, ecx)] {
            cpu.state.regs[reg] = value;
        }
    })
}

#[test]
fn divide_errors_are_faults_that_leave_the_registers_alone() {
    // 16-bit code: the same opcodes name CX and BL, and 0x66 selects ECX.
    const DIV_BL_16: &[u8] = &[0xF6, 0xF3]; // div bl
    const IDIV_BL_16: &[u8] = &[0xF6, 0xFB]; // idiv bl
    const DIV_CX_16: &[u8] = &[0xF7, 0xF1]; // div cx
    const IDIV_CX_16: &[u8] = &[0xF7, 0xF9]; // idiv cx
    const IDIV_ECX_16: &[u8] = &[0x66, 0xF7, 0xF9]; // idiv ecx

    // (code, EAX, EDX, EBX, ECX): zero divisors, then quotients that do not fit.
    let cases: &[(&[u8], u64, u64, u64, u64)] = &[
        (DIV_BL_16, 0x0100, 0, 0, 0),
        (IDIV_BL_16, 0x0100, 0, 0, 0),
        // 256 / 1, 128 / 1, −129 / 1.
        (DIV_BL_16, 0x0100, 0, 1, 0),
        (IDIV_BL_16, 0x0080, 0, 1, 0),
        (IDIV_BL_16, 0xFF7F, 0, 1, 0),
        // −32768 / −1, 0x10000 / 1, −2^31 / −1.
        (IDIV_CX_16, 0x8000, 0xFFFF, 0, 0xFFFF),
        (DIV_CX_16, 0x0000, 0x0001, 0, 0x0001),
        (IDIV_ECX_16, 0x8000_0000, 0xFFFF_FFFF, 0, 0xFFFF_FFFF),
    ];
    let t = TimingTable::default();
    for (n, &(code, eax, edx, ebx, ecx)) in cases.iter().enumerate() {
        let bench = divide_error(code, eax, edx, ebx, ecx);
        let r = &bench.cpu.state.regs;
        assert_eq!(bench.cpu.state.rip, DE_HANDLER + 1, "case {n}: handler ran");
        assert_eq!((r[RAX], r[RDX]), (eax, edx), "case {n}: registers kept");
        // The saved IP is the faulting DIV's: #DE is a fault.
        assert_eq!(bench.read(STACK_TOP - 6, 2), 0, "case {n}: saved IP");
        assert_eq!(bench.read(STACK_TOP - 4, 2), CODE_BASE >> 4);
        assert_eq!(bench.cpu.stats.exceptions, 1);
        assert_eq!(
            bench.cpu.cycle,
            u64::from(t.divide + t.interrupt + t.serializing),
            "case {n}: cycles"
        );
    }
}
