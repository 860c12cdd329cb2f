//! Bit instructions and conditions: BT/BTS/BTR/BTC on registers and on bit strings in
//! memory, BSF/BSR, and SETcc and CMOVcc for all sixteen conditions.

use super::super::state::{flags, RAX, RBX, RCX, RDX, RSI};
use super::super::testing::{run, Bench, Mode};
use super::condition_holds;
use crate::timing::TimingTable;

use flags::{CF, OF, PF, SF, ZF};

/// Scratch data: bit strings reach up to 16 bytes below and above it.
const DATA: u64 = 0x2000;

/// Runs `code` in 32-bit protected mode with the registers and flags given.
fn exec(code: &[u8], regs: &[(usize, u64)], flags_in: u64) -> Bench {
    run(Mode::Protected32, code, |cpu| {
        for &(reg, value) in regs {
            cpu.state.regs[reg] = value;
        }
        cpu.state.rflags = flags::FIXED1 | flags_in;
    })
}

/// BT leaves ZF alone; CF is the bit; OF, SF, AF and PF are undefined.
const BT_DEFINED: u64 = CF | ZF;

#[test]
fn bit_tests_on_registers_mask_the_offset_to_the_operand_width() {
    let cf_of = |bench: &Bench| bench.cpu.state.rflags & BT_DEFINED;
    let bench = exec(&[0x0F, 0xBA, 0xE0, 0x1F], &[(RAX, 0x8000_0000)], ZF); // bt eax, 31
    assert_eq!(cf_of(&bench), CF | ZF);
    // An immediate of 33 selects bit 1 of a 32-bit register.
    let bench = exec(&[0x0F, 0xBA, 0xE0, 0x21], &[(RAX, 0x2)], 0); // bt eax, 33
    assert_eq!(cf_of(&bench), CF);
    // A register offset of 36 selects bit 4.
    let bench = exec(&[0x0F, 0xAB, 0xD1], &[(RCX, 0x0F), (RDX, 36)], CF); // bts ecx, edx
    assert_eq!((bench.cpu.state.regs[RCX], cf_of(&bench)), (0x1F, 0));
    let bench = exec(&[0x0F, 0xB3, 0xD1], &[(RCX, 0x1F), (RDX, 36)], 0); // btr ecx, edx
    assert_eq!((bench.cpu.state.regs[RCX], cf_of(&bench)), (0x0F, CF));
    let bench = exec(&[0x0F, 0xBB, 0xD1], &[(RCX, 0x1F), (RDX, 4)], 0); // btc ecx, edx
    assert_eq!((bench.cpu.state.regs[RCX], cf_of(&bench)), (0x0F, CF));
    let bench = exec(&[0x0F, 0xBB, 0xD1], &[(RCX, 0x0F), (RDX, 31)], 0); // btc ecx, edx
    assert_eq!((bench.cpu.state.regs[RCX], cf_of(&bench)), (0x8000_000F, 0));
    // 16 bits: CX = 17 selects bit 1.
    let bench = exec(&[0x66, 0x0F, 0xA3, 0xC8], &[(RAX, 0x2), (RCX, 17)], 0); // bt ax, cx
    assert_eq!(cf_of(&bench), CF);
    let t = TimingTable::default();
    assert_eq!(bench.cpu.cycle, u64::from(t.simple + t.serializing));
}

#[test]
fn bit_tests_on_memory_with_an_immediate_stay_inside_the_operand() {
    let bench = run(
        Mode::Protected32,
        &[
            0x0F, 0xBA, 0x23, 0x23, //       bt dword [ebx], 35
            0x0F, 0x92, 0xC0, //             setc al
            0x66, 0x0F, 0xBA, 0x2B, 0x14, // bts word [ebx], 20
        ],
        |cpu| {
            cpu.state.regs[RBX] = DATA;
            cpu.memory().write(DATA, 8, 0x0000_0008);
        },
    );
    // 35 & 31 = 3: bit 3 of the dword, not of the next one.
    assert_eq!(bench.cpu.state.regs[RAX] & 0xFF, 1);
    // 20 & 15 = 4: bit 4 of the word.
    assert_eq!(bench.read(DATA, 8), 0x0000_0018);
    assert_eq!(bench.cpu.state.rflags & CF, 0);
}

/// Runs a bit-string instruction `[ebx], ecx` (or `cx`) with the given offset, on a zeroed
/// 32-byte window around [`DATA`] with `seed` written at `DATA + at`; returns the bench.
fn bit_string(code: &[u8], offset: u64, at: i64, seed: u64) -> Bench {
    run(Mode::Protected32, code, |cpu| {
        cpu.state.regs[RBX] = DATA;
        cpu.state.regs[RCX] = offset;
        cpu.memory().write((DATA as i64 + at) as u64, 4, seed);
    })
}

/// A bit-string case: code, ECX, offset of the touched operand from DATA, before, after, CF.
type BitStringCase = (&'static [u8], u64, i64, u64, u64, bool);

#[test]
fn bit_strings_in_memory_take_signed_register_offsets_beyond_the_operand() {
    const BTS: &[u8] = &[0x0F, 0xAB, 0x0B]; // bts [ebx], ecx
    const BTR: &[u8] = &[0x0F, 0xB3, 0x0B]; // btr [ebx], ecx
    const BTC: &[u8] = &[0x0F, 0xBB, 0x0B]; // btc [ebx], ecx
    const BT: &[u8] = &[0x0F, 0xA3, 0x0B]; // bt [ebx], ecx
    const BTC_16: &[u8] = &[0x66, 0x0F, 0xBB, 0x0B]; // btc [ebx], cx
    #[rustfmt::skip]
    let cases: &[BitStringCase] = &[
        // 35 = dword 1, bit 3.
        (BTS,    35,                     4,  0,           0x8,         false),
        (BTS,    35,                     4,  0x8,         0x8,         true),
        // −1 = dword −1, bit 31.
        (BTS,    0xFFFF_FFFF,            -4, 0,           0x8000_0000, false),
        // −33 = dword −2, bit 31.
        (BTR,    (-33i32) as u32 as u64, -8, 0xFFFF_FFFF, 0x7FFF_FFFF, true),
        // 100 = dword 3, bit 4.
        (BTC,    100,                    12, 0x10,        0x00,        true),
        (BTC,    100,                    12, 0x00,        0x10,        false),
        // BT only reads.
        (BT,     64,                     8,  0x1,         0x1,         true),
        // 16-bit operands step in words: 17 = word 1, bit 1; −1 = word −1, bit 15.
        (BTC_16, 17,                     2,  0x0,         0x2,         false),
        (BTC_16, 0xFFFF,                 -2, 0x8000,      0x0000,      true),
    ];
    for (n, &(code, offset, at, before, after, cf)) in cases.iter().enumerate() {
        let bench = bit_string(code, offset, at, before);
        let address = (DATA as i64 + at) as u64;
        assert_eq!(
            bench.read(address, 4),
            after,
            "case {n} ({code:02x?}): memory"
        );
        assert_eq!(
            bench.cpu.state.rflags & CF != 0,
            cf,
            "case {n} ({code:02x?}): CF"
        );
        // Nothing else in the window changed.
        for other in (-16i64..16).filter(|&o| o < at || o >= at + 4) {
            let other_address = (DATA as i64 + other) as u64;
            assert_eq!(bench.read(other_address, 1), 0, "case {n}: byte at {other}");
        }
    }
}

#[test]
fn locked_bit_string_updates() {
    let bench = bit_string(&[0xF0, 0x0F, 0xAB, 0x0B], 64, 8, 0x2); // lock bts [ebx], ecx
    assert_eq!(bench.read(DATA + 8, 4), 0x3);
    assert_eq!(bench.cpu.state.rflags & CF, 0);
    let t = TimingTable::default();
    assert_eq!(bench.cpu.cycle, u64::from(t.locked_rmw + t.serializing));
    let bench = bit_string(&[0xF0, 0x0F, 0xBA, 0x33, 0x01], 0, 0, 0x3); // lock btr dword [ebx], 1
    assert_eq!(bench.read(DATA, 4), 0x1);
    assert_eq!(bench.cpu.state.rflags & CF, CF);
}

#[test]
fn bit_scans_find_the_lowest_and_highest_set_bit() {
    let bench = exec(&[0x0F, 0xBC, 0xC3], &[(RBX, 0x0001_0100)], ZF); // bsf eax, ebx
    assert_eq!(
        (bench.cpu.state.regs[RAX], bench.cpu.state.rflags & ZF),
        (8, 0)
    );
    let bench = exec(&[0x0F, 0xBD, 0xC3], &[(RBX, 0x0001_0100)], ZF); // bsr eax, ebx
    assert_eq!(
        (bench.cpu.state.regs[RAX], bench.cpu.state.rflags & ZF),
        (16, 0)
    );
    let bench = exec(&[0x0F, 0xBC, 0xC3], &[(RBX, 1)], ZF); // bsf eax, ebx
    assert_eq!(
        (bench.cpu.state.regs[RAX], bench.cpu.state.rflags & ZF),
        (0, 0)
    );
    let bench = exec(
        &[0x66, 0x0F, 0xBC, 0xC3], // bsf ax, bx
        &[(RAX, 0xAAAA_0000), (RBX, 0x8000)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0xAAAA_000F);
    let bench = run(
        Mode::Protected32,
        &[0x0F, 0xBD, 0x0E], // bsr ecx, [esi]
        |cpu| {
            cpu.state.regs[RSI] = DATA;
            cpu.memory().write(DATA, 4, 0x8000_0001);
        },
    );
    assert_eq!(bench.cpu.state.regs[RCX], 31);
}

#[test]
fn bit_scans_of_zero_set_zf_and_leave_the_destination() {
    // Intel leaves the destination undefined; AMD (the vendor smmsim reports) and QEMU keep it.
    for code in [&[0x0F, 0xBC, 0xC3], &[0x0F, 0xBD, 0xC3]] {
        // bsf eax, ebx / bsr eax, ebx
        let bench = exec(code, &[(RAX, 0x1234_5678), (RBX, 0)], 0);
        assert_eq!(bench.cpu.state.regs[RAX], 0x1234_5678);
        assert_eq!(bench.cpu.state.rflags & ZF, ZF);
    }
    // Only the low 16 bits count for a 16-bit source.
    let bench = exec(
        &[0x66, 0x0F, 0xBC, 0xC3], // bsf ax, bx
        &[(RAX, 0x7777), (RBX, 0xFFFF_0000)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0x7777);
    assert_eq!(bench.cpu.state.rflags & ZF, ZF);
}

/// Every combination of the five status flags the conditions read.
fn flag_combinations() -> impl Iterator<Item = u64> {
    (0u64..32).map(|bits| {
        [CF, ZF, SF, OF, PF]
            .iter()
            .enumerate()
            .filter(|&(i, _)| bits & (1 << i) != 0)
            .fold(0, |f, (_, &flag)| f | flag)
    })
}

#[test]
fn setcc_covers_all_sixteen_conditions() {
    let code = [
        0x0F, 0x90, 0x03, //       seto [ebx]
        0x0F, 0x91, 0x43, 0x01, // setno [ebx+1]
        0x0F, 0x92, 0x43, 0x02, // setb [ebx+2]
        0x0F, 0x93, 0x43, 0x03, // setae [ebx+3]
        0x0F, 0x94, 0x43, 0x04, // sete [ebx+4]
        0x0F, 0x95, 0x43, 0x05, // setne [ebx+5]
        0x0F, 0x96, 0x43, 0x06, // setbe [ebx+6]
        0x0F, 0x97, 0x43, 0x07, // seta [ebx+7]
        0x0F, 0x98, 0x43, 0x08, // sets [ebx+8]
        0x0F, 0x99, 0x43, 0x09, // setns [ebx+9]
        0x0F, 0x9A, 0x43, 0x0A, // setp [ebx+10]
        0x0F, 0x9B, 0x43, 0x0B, // setnp [ebx+11]
        0x0F, 0x9C, 0x43, 0x0C, // setl [ebx+12]
        0x0F, 0x9D, 0x43, 0x0D, // setge [ebx+13]
        0x0F, 0x9E, 0x43, 0x0E, // setle [ebx+14]
        0x0F, 0x9F, 0x43, 0x0F, // setg [ebx+15]
    ];
    for f in flag_combinations() {
        let bench = run(Mode::Protected32, &code, |cpu| {
            cpu.state.regs[RBX] = DATA;
            cpu.state.rflags = flags::FIXED1 | f;
            cpu.memory().write(DATA, 8, 0xAAAA_AAAA_AAAA_AAAA);
            cpu.memory().write(DATA + 8, 8, 0xAAAA_AAAA_AAAA_AAAA);
        });
        for cc in 0..16 {
            assert_eq!(
                bench.read(DATA + cc as u64, 1) == 1,
                condition_holds(cc, f),
                "SETcc {cc:#x} with flags {f:#x}"
            );
            assert!(bench.read(DATA + cc as u64, 1) <= 1);
        }
        // SETcc changes no flags.
        assert_eq!(bench.cpu.state.rflags, flags::FIXED1 | f);
    }
}

#[test]
fn setcc_writes_byte_registers() {
    let bench = exec(
        &[
            0x0F, 0x94, 0xC0, // sete al
            0x0F, 0x95, 0xC4, // setne ah
        ],
        &[(RAX, 0x1234_5678)],
        ZF,
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0x1234_0001);
}

#[test]
fn cmovcc_covers_all_sixteen_conditions() {
    let code = [
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x40, 0xCA, //             cmovo ecx, edx
        0x89, 0x0B, //                   mov [ebx], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x41, 0xCA, //             cmovno ecx, edx
        0x89, 0x4B, 0x04, //             mov [ebx+4], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x42, 0xCA, //             cmovb ecx, edx
        0x89, 0x4B, 0x08, //             mov [ebx+8], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x43, 0xCA, //             cmovae ecx, edx
        0x89, 0x4B, 0x0C, //             mov [ebx+12], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x44, 0xCA, //             cmove ecx, edx
        0x89, 0x4B, 0x10, //             mov [ebx+16], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x45, 0xCA, //             cmovne ecx, edx
        0x89, 0x4B, 0x14, //             mov [ebx+20], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x46, 0xCA, //             cmovbe ecx, edx
        0x89, 0x4B, 0x18, //             mov [ebx+24], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x47, 0xCA, //             cmova ecx, edx
        0x89, 0x4B, 0x1C, //             mov [ebx+28], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x48, 0xCA, //             cmovs ecx, edx
        0x89, 0x4B, 0x20, //             mov [ebx+32], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x49, 0xCA, //             cmovns ecx, edx
        0x89, 0x4B, 0x24, //             mov [ebx+36], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x4A, 0xCA, //             cmovp ecx, edx
        0x89, 0x4B, 0x28, //             mov [ebx+40], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x4B, 0xCA, //             cmovnp ecx, edx
        0x89, 0x4B, 0x2C, //             mov [ebx+44], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x4C, 0xCA, //             cmovl ecx, edx
        0x89, 0x4B, 0x30, //             mov [ebx+48], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x4D, 0xCA, //             cmovge ecx, edx
        0x89, 0x4B, 0x34, //             mov [ebx+52], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x4E, 0xCA, //             cmovle ecx, edx
        0x89, 0x4B, 0x38, //             mov [ebx+56], ecx
        0xB9, 0xFF, 0xFF, 0xFF, 0xFF, // mov ecx, 0xFFFFFFFF
        0x0F, 0x4F, 0xCA, //             cmovg ecx, edx
        0x89, 0x4B, 0x3C, //             mov [ebx+60], ecx
    ];
    for f in flag_combinations() {
        let bench = run(Mode::Protected32, &code, |cpu| {
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RDX] = 0x1234;
            cpu.state.rflags = flags::FIXED1 | f;
        });
        for cc in 0..16 {
            let expected = if condition_holds(cc, f) {
                0x1234
            } else {
                0xFFFF_FFFF
            };
            assert_eq!(
                bench.read(DATA + 4 * cc as u64, 4),
                expected,
                "CMOVcc {cc:#x} with flags {f:#x}"
            );
        }
        assert_eq!(bench.cpu.state.rflags, flags::FIXED1 | f);
    }
}

#[test]
fn cmovcc_with_memory_and_16_bit_operands() {
    let code = [
        0x0F, 0x4F, 0x0E, //       cmovg ecx, [esi]
        0x66, 0x0F, 0x44, 0xC2, // cmove ax, dx
    ];
    let bench = run(Mode::Protected32, &code, |cpu| {
        cpu.state.regs[RSI] = DATA;
        cpu.state.regs[RCX] = 1;
        cpu.state.regs[RAX] = 0xAAAA_AAAA;
        cpu.state.regs[RDX] = 0x5555_1234;
        cpu.state.rflags = flags::FIXED1 | ZF;
        cpu.memory().write(DATA, 4, 0x77);
    });
    // ZF = 1: "greater" is false, "equal" true.
    assert_eq!(bench.cpu.state.regs[RCX], 1);
    assert_eq!(bench.cpu.state.regs[RAX], 0xAAAA_1234);
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(t.load + t.simple + t.serializing)
    );
}
