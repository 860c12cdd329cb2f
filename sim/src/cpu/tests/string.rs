//! String-instruction tests: MOVS, STOS, LODS, CMPS, SCAS, INS and OUTS, alone and with
//! REP/REPE/REPNE, forwards and with DF = 1, with 16- and 32-bit addressing, a REP MOVSB
//! long enough to be resumed across steps, and what they cost.

use smmsim_traces::Cycle;

use super::super::state::{flags, SegReg, Segment, RAX, RBX, RCX, RDI, RDX, RSI};
use super::super::testing::{run, Bench, Mode, CODE_BASE};
use super::super::{Cpu, StopReason};
use crate::timing::TimingTable;

use flags::{AF, CF, PF, SF, ZF};

/// Source and destination buffers for the protected-mode tests.
const SRC: u64 = 0x2000;
const DST: u64 = 0x4000;

/// Runs `code` in protected mode with ESI = [`SRC`], EDI = [`DST`], ECX = `count`, `bytes`
/// at SRC, and `setup` after that.
fn strings(code: &[u8], count: u64, bytes: &[u8], setup: impl FnOnce(&mut Cpu)) -> Bench {
    run(Mode::Protected32, code, |cpu| {
        cpu.state.regs[RSI] = SRC;
        cpu.state.regs[RDI] = DST;
        cpu.state.regs[RCX] = count;
        cpu.memory().write_bytes(SRC, bytes);
        setup(cpu);
    })
}

/// `len` bytes of guest memory from `at`.
fn read_bytes(bench: &Bench, at: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| bench.read(at + i, 1) as u8)
        .collect()
}

#[test]
fn single_movs_copies_one_element_and_steps_both_indexes() {
    let bench = strings(
        &[
            0xA4, //       movsb
            0x66, 0xA5, // movsw
            0xA5, //       movsd
        ],
        0,
        &[1, 2, 3, 4, 5, 6, 7, 8],
        |_| {},
    );
    assert_eq!(read_bytes(&bench, DST, 8), [1, 2, 3, 4, 5, 6, 7, 0]);
    assert_eq!(bench.cpu.state.regs[RSI], SRC + 7);
    assert_eq!(bench.cpu.state.regs[RDI], DST + 7);
    assert_eq!(bench.cpu.state.regs[RCX], 0, "no REP: ECX untouched");
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(3 * t.string_iteration + t.serializing)
    );
}

#[test]
fn rep_movs_copies_ecx_elements_forwards_and_backwards() {
    let data: Vec<u8> = (1..=16).collect();
    let bench = strings(&[0xF3, 0xA4], 10, &data, |_| {}); // rep movsb
    assert_eq!(
        read_bytes(&bench, DST, 11),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0]
    );
    let r = &bench.cpu.state.regs;
    assert_eq!((r[RSI], r[RDI], r[RCX]), (SRC + 10, DST + 10, 0));
    // DF = 1: start at the last dword and walk down.
    let bench = strings(
        &[
            0xFD, //       std
            0xF3, 0xA5, // rep movsd
        ],
        4,
        &data,
        |cpu| {
            cpu.state.regs[RSI] = SRC + 12;
            cpu.state.regs[RDI] = DST + 12;
        },
    );
    assert_eq!(read_bytes(&bench, DST, 16), data);
    let r = &bench.cpu.state.regs;
    assert_eq!((r[RSI], r[RDI], r[RCX]), (SRC - 4, DST - 4, 0));
    // REPNE in front of MOVS repeats like REP.
    let bench = strings(&[0xF2, 0x66, 0xA5], 2, &data, |_| {}); // repne movsw
    assert_eq!(read_bytes(&bench, DST, 5), [1, 2, 3, 4, 0]);
    assert_eq!(bench.cpu.state.regs[RCX], 0);
}

#[test]
fn rep_with_a_zero_count_does_nothing() {
    let bench = strings(
        &[0xF3, 0xA6], // repe cmpsb
        0,
        &[1],
        |cpu| cpu.state.rflags |= CF | SF,
    );
    let r = &bench.cpu.state.regs;
    assert_eq!((r[RSI], r[RDI], r[RCX]), (SRC, DST, 0));
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | SF);
    let bench = strings(&[0xF3, 0xAA], 0, &[], |_| {}); // rep stosb
    assert_eq!(bench.cpu.state.regs[RDI], DST);
}

#[test]
fn stos_fills_and_lods_loads() {
    let bench = strings(
        &[
            0xF3, 0xAA, //                   rep stosb
            0xB9, 0x02, 0x00, 0x00, 0x00, // mov ecx, 2
            0xF3, 0xAB, //                   rep stosd
            0xFD, //                         std
            0xB9, 0x02, 0x00, 0x00, 0x00, // mov ecx, 2
            0xBF, 0x00, 0x41, 0x00, 0x00, // mov edi, 0x4100
            0xF3, 0x66, 0xAB, //             rep stosw
        ],
        3,
        &[],
        |cpu| cpu.state.regs[RAX] = 0x1122_33AB,
    );
    assert_eq!(
        read_bytes(&bench, DST, 12),
        [0xAB, 0xAB, 0xAB, 0xAB, 0x33, 0x22, 0x11, 0xAB, 0x33, 0x22, 0x11, 0]
    );
    // Two words down from 0x4100: 0x40FE and 0x4100.
    assert_eq!(read_bytes(&bench, 0x40FE, 4), [0xAB, 0x33, 0xAB, 0x33]);
    assert_eq!(bench.cpu.state.regs[RDI], 0x40FC);
    let bench = strings(
        &[
            0xAC, //             lodsb
            0x88, 0xC3, //       mov bl, al
            0xAD, //             lodsd
            0xF3, 0x66, 0xAD, // rep lodsw
        ],
        2,
        &[0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98],
        |cpu| cpu.state.regs[RAX] = 0xFFFF_FFFF,
    );
    assert_eq!(bench.cpu.state.regs[RBX] & 0xFF, 0x10);
    // LODSD loaded 0x54433221; REP LODSW then 0x7665 and 0x9887, keeping the upper half.
    assert_eq!(bench.cpu.state.regs[RAX], 0x5443_9887);
    assert_eq!(bench.cpu.state.regs[RSI], SRC + 9);
}

#[test]
fn repe_cmps_stops_at_the_first_difference() {
    const REPE_CMPSB: &[u8] = &[0xF3, 0xA6]; // repe cmpsb
    let bench = run(Mode::Protected32, REPE_CMPSB, |cpu| {
        cpu.state.regs[RSI] = SRC;
        cpu.state.regs[RDI] = DST;
        cpu.state.regs[RCX] = 6;
        cpu.memory().write_bytes(SRC, b"ABCDEF");
        cpu.memory().write_bytes(DST, b"ABCXEF");
    });
    let r = &bench.cpu.state.regs;
    // Four comparisons; the last, 'D' − 'X', borrowed.
    assert_eq!((r[RSI], r[RDI], r[RCX]), (SRC + 4, DST + 4, 2));
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | SF | AF);
    // Equal strings run the count out with ZF = 1.
    const REPE_CMPSW: &[u8] = &[0xF3, 0x66, 0xA7]; // repe cmpsw
    let bench = run(Mode::Protected32, REPE_CMPSW, |cpu| {
        cpu.state.regs[RSI] = SRC;
        cpu.state.regs[RDI] = DST;
        cpu.state.regs[RCX] = 3;
        cpu.memory().write_bytes(SRC, b"abcdef");
        cpu.memory().write_bytes(DST, b"abcdef");
    });
    let r = &bench.cpu.state.regs;
    assert_eq!((r[RSI], r[RDI], r[RCX]), (SRC + 6, DST + 6, 0));
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, ZF | PF);
    // REPNE CMPSD stops at the first equal pair.
    const REPNE_CMPSD: &[u8] = &[0xF2, 0xA7]; // repne cmpsd
    let bench = run(Mode::Protected32, REPNE_CMPSD, |cpu| {
        cpu.state.regs[RSI] = SRC;
        cpu.state.regs[RDI] = DST;
        cpu.state.regs[RCX] = 10;
        cpu.memory().write(SRC, 8, 0x0000_0005_0000_0001);
        cpu.memory().write(DST, 8, 0x0000_0005_0000_0002);
    });
    assert_eq!(bench.cpu.state.regs[RCX], 8);
    assert_eq!(bench.cpu.state.rflags & ZF, ZF);
}

#[test]
fn scas_searches_with_repne_and_skips_with_repe() {
    const REPNE_SCASB: &[u8] = &[0xF2, 0xAE]; // repne scasb
    let bench = run(Mode::Protected32, REPNE_SCASB, |cpu| {
        cpu.state.regs[RAX] = 0;
        cpu.state.regs[RDI] = DST;
        cpu.state.regs[RCX] = 100;
        cpu.memory().write_bytes(DST, b"hello\0");
    });
    // strlen: EDI one past the NUL, ECX = 100 − 6.
    assert_eq!(bench.cpu.state.regs[RDI], DST + 6);
    assert_eq!(bench.cpu.state.regs[RCX], 94);
    assert_eq!(bench.cpu.state.rflags & ZF, ZF);
    const REPE_SCASB: &[u8] = &[0xF3, 0xAE]; // repe scasb
    let bench = run(Mode::Protected32, REPE_SCASB, |cpu| {
        cpu.state.regs[RAX] = u64::from(b' ');
        cpu.state.regs[RDI] = DST;
        cpu.state.regs[RCX] = 10;
        cpu.memory().write_bytes(DST, b"   x  ");
    });
    assert_eq!(bench.cpu.state.regs[RDI], DST + 4);
    assert_eq!(bench.cpu.state.regs[RCX], 6);
    // ' ' − 'x' = 0x20 − 0x78 = 0xA8.
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | SF | AF);
    const REPNE_SCASW: &[u8] = &[0xF2, 0x66, 0xAF]; // repne scasw
    let bench = run(Mode::Protected32, REPNE_SCASW, |cpu| {
        cpu.state.regs[RAX] = 0xBEEF;
        cpu.state.regs[RDI] = DST;
        cpu.state.regs[RCX] = 8;
        cpu.memory().write(DST + 6, 2, 0xBEEF);
    });
    assert_eq!(bench.cpu.state.regs[RDI], DST + 8);
    assert_eq!(bench.cpu.state.regs[RCX], 4);
}

#[test]
fn a_long_rep_movsb_is_resumed_across_steps() {
    const LEN: u64 = 3000;
    let mut bench = Bench::new(Mode::Protected32, &[0xF3, 0xA4]); // rep movsb
    bench.cpu.state.regs[RSI] = 0x1_1000;
    bench.cpu.state.regs[RDI] = 0x2_0000;
    bench.cpu.state.regs[RCX] = LEN;
    let pattern: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    bench.cpu.memory().write_bytes(0x1_1000, &pattern);
    // One step: 1024 elements, then IP stays on the instruction.
    bench.cpu.run(&mut bench.cache, Cycle(1));
    let r = &bench.cpu.state.regs;
    assert_eq!(
        (r[RCX], r[RSI], r[RDI]),
        (LEN - 1024, 0x1_1000 + 1024, 0x2_0000 + 1024)
    );
    assert_eq!(bench.cpu.state.rip, CODE_BASE);
    assert_eq!(bench.read(0x2_0000 + 1023, 1), u64::from(pattern[1023]));
    assert_eq!(bench.read(0x2_0000 + 1024, 1), 0);
    // The rest, then the HLT.
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(read_bytes(&bench, 0x2_0000, LEN as usize), pattern);
    assert_eq!(bench.cpu.state.regs[RCX], 0);
    assert_eq!(bench.cpu.state.rip, CODE_BASE + 3);
    // 1024 + 1024 + 952 elements in three steps, and the HLT.
    assert_eq!(bench.cpu.stats.instructions, 4);
}

#[test]
fn rep_string_instructions_cost_one_string_iteration_per_element() {
    // `CostClass::String`: "One string element (REP adds one per further element)";
    // `TimingTable::string_iteration`: "REP costs this per element". Four elements: four.
    let bench = strings(&[0xF3, 0xAA], 4, &[], |_| {}); // rep stosb
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(4 * t.string_iteration + t.serializing)
    );
}

#[test]
fn real_mode_strings_use_16_bit_indexes_that_wrap() {
    let bench = run(
        Mode::Real,
        &[
            0xA4, // movsb
            0xFD, // std
            0xA4, // movsb
        ],
        |cpu| {
            cpu.state.segs[SegReg::Ds as usize] = Segment::real_mode(0x2000);
            cpu.state.segs[SegReg::Es as usize] = Segment::real_mode(0x3000);
            cpu.state.regs[RSI] = 0xFFFF;
            cpu.state.regs[RDI] = 0x1_0010;
            cpu.memory().write(0x2_FFFF, 1, 0x11);
            cpu.memory().write(0x2_0000, 1, 0x22);
        },
    );
    // First MOVSB: DS:FFFF → ES:0010, SI wraps to 0; the second (DF = 1): DS:0 → ES:0011,
    // SI wraps back to FFFF. The upper half of EDI is not an index in 16-bit addressing.
    assert_eq!(bench.read(0x3_0010, 1), 0x11);
    assert_eq!(bench.read(0x3_0011, 1), 0x22);
    assert_eq!(bench.cpu.state.regs[RSI], 0xFFFF);
    assert_eq!(bench.cpu.state.regs[RDI], 0x1_0010);
    // A segment override applies to the source; ES:DI is fixed.
    let bench = run(
        Mode::Real,
        &[
            0xF3, 0x26, 0xA5, // rep es movsw
        ],
        |cpu| {
            cpu.state.segs[SegReg::Es as usize] = Segment::real_mode(0x3000);
            cpu.state.regs[RSI] = 0x100;
            cpu.state.regs[RDI] = 0x200;
            cpu.state.regs[RCX] = 0xFFFF_0002;
            cpu.memory().write(0x3_0100, 4, 0x4433_2211);
            cpu.memory().write(0x100, 4, 0xEEEE_EEEE);
        },
    );
    assert_eq!(bench.read(0x3_0200, 4), 0x4433_2211);
    assert_eq!(bench.cpu.state.regs[RCX], 0xFFFF_0000);
    // 0x67 makes 16-bit code use ECX, ESI and EDI.
    let bench = run(
        Mode::Real,
        &[
            0xF3, 0x67, 0xAA, // a32 rep stosb
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0x77;
            cpu.state.regs[RDI] = 0x3_0000;
            cpu.state.regs[RCX] = 0x1_0001;
        },
    );
    assert_eq!(bench.read(0x3_FFFF, 1), 0x77);
    assert_eq!(bench.read(0x4_0000, 1), 0x77);
    assert_eq!(bench.read(0x4_0001, 1), 0);
    assert_eq!(bench.cpu.state.regs[RDI], 0x4_0001);
    assert_eq!(bench.cpu.state.regs[RCX], 0);
}

#[test]
fn outs_and_ins_move_data_through_ports() {
    const REP_OUTSB: &[u8] = &[0xF3, 0x6E]; // rep outsb
    let bench = strings(REP_OUTSB, 3, &[0xA1, 0xB2, 0xC3], |cpu| {
        cpu.state.regs[RDX] = 0x80;
    });
    assert_eq!(
        *bench.platform.writes.lock(),
        vec![(0x80, 1, 0xA1), (0x80, 1, 0xB2), (0x80, 1, 0xC3)]
    );
    assert_eq!(bench.cpu.state.regs[RSI], SRC + 3);
    let bench = strings(
        &[
            0x66, 0x6D, //                   insw
            0xB9, 0x02, 0x00, 0x00, 0x00, // mov ecx, 2
            0xF3, 0x6D, //                   rep insd
        ],
        0,
        &[],
        |cpu| cpu.state.regs[RDX] = 0x60,
    );
    // One word and two dwords of 0x5A, then nothing.
    let mut expected = vec![0x5A; 10];
    expected.push(0);
    assert_eq!(read_bytes(&bench, DST, 11), expected);
    assert_eq!(bench.cpu.state.regs[RDI], DST + 10);
    // A word OUTS to DX, from DS:SI.
    const OUTSW: &[u8] = &[0x66, 0x6F]; // outsw
    let bench = strings(OUTSW, 0, &[0x34, 0x12], |cpu| {
        cpu.state.regs[RDX] = 0x3F8;
    });
    assert_eq!(*bench.platform.writes.lock(), vec![(0x3F8, 2, 0x1234)]);
}

#[test]
fn a_single_outs_or_ins_costs_one_port_access() {
    // `TimingTable::port_io`: "IN / OUT and their string forms, per access".
    let t = TimingTable::default();
    let bench = strings(&[0x6E], 0, &[0x42], |cpu| cpu.state.regs[RDX] = 0x80); // outsb
    let outs = bench.cpu.cycle;
    let bench = strings(&[0x6C], 0, &[], |cpu| cpu.state.regs[RDX] = 0x80); // insb
    let ins = bench.cpu.cycle;
    let one_access = u64::from(t.port_io + t.serializing);
    assert_eq!(
        (outs, ins),
        (one_access, one_access),
        "(OUTSB, INSB) cycles"
    );
}

#[test]
fn outs_to_the_exit_port_stops_a_rep_after_that_element() {
    let mut bench = Bench::new(Mode::Protected32, &[0xF3, 0x6E]); // rep outsb
    bench.cpu.state.regs[RSI] = SRC;
    bench.cpu.state.regs[RCX] = 5;
    bench.cpu.state.regs[RDX] = 0xF4;
    bench.cpu.memory().write_bytes(SRC, &[9, 8, 7, 6, 5]);
    assert_eq!(bench.run(), StopReason::PlatformStop);
    assert_eq!(*bench.platform.writes.lock(), vec![(0xF4, 1, 9)]);
    assert_eq!(bench.cpu.state.regs[RCX], 4);
    assert_eq!(bench.cpu.state.regs[RSI], SRC + 1);
}
