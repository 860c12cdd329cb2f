//! Data-movement tests: MOV and its extending forms, LEA with 16- and 32-bit addressing,
//! XCHG, CMPXCHG(8B), XADD, BSWAP, the accumulator extensions, the stack (PUSH/POP of
//! registers, memory and segment registers, PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE), LAHF/SAHF,
//! XLAT and the far-pointer loads.

use super::super::state::{flags, SegReg, Segment, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP};
use super::super::testing::{run, Bench, Mode, STACK_TOP};
use super::super::Cpu;
use crate::timing::TimingTable;

use flags::{AF, CF, OF, PF, SF, ZF};

/// Runs `code` in `mode` with the registers given and the flags set to `flags_in`.
fn exec(mode: Mode, code: &[u8], regs: &[(usize, u64)], flags_in: u64) -> Bench {
    run(mode, code, |cpu| {
        for &(reg, value) in regs {
            cpu.state.regs[reg] = value;
        }
        cpu.state.rflags = flags::FIXED1 | flags_in;
    })
}

/// Scratch data for the protected-mode tests (below the stack, above the tables).
const DATA: u64 = 0x2000;

#[test]
fn mov_copies_registers_memory_and_immediates_without_touching_flags() {
    let bench = run(
        Mode::Protected32,
        &[
            0xB4, 0x12, //                               mov ah, 0x12
            0x88, 0xDD, //                               mov ch, bl
            0x88, 0xF2, //                               mov dl, dh
            0xBE, 0x44, 0x33, 0x22, 0x11, //             mov esi, 0x11223344
            0x66, 0xBE, 0xEF, 0xBE, //                   mov si, 0xBEEF
            0x88, 0x23, //                               mov [ebx], ah
            0xC6, 0x43, 0x01, 0x77, //                   mov byte [ebx+1], 0x77
            0x66, 0x8B, 0x0B, //                         mov cx, [ebx]
            0xC7, 0x43, 0x08, 0x0D, 0xF0, 0xFE, 0xCA, // mov dword [ebx+8], 0xCAFEF00D
            0xA1, 0x08, 0x20, 0x00, 0x00, //             mov eax, [0x2008]
            0xA3, 0x04, 0x20, 0x00, 0x00, //             mov [0x2004], eax
            0x88, 0xE7, //                               mov bh, ah
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0xAAAA_AAAA;
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 0xCCCC_CCCC;
            cpu.state.regs[RDX] = 0xDDDD_34DD;
            cpu.state.rflags |= flags::ARITH;
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RAX], 0xCAFE_F00D);
    assert_eq!(r[RCX], 0xCCCC_7712);
    assert_eq!(r[RDX], 0xDDDD_3434);
    assert_eq!(r[RSI], 0x1122_BEEF);
    // BH = AH of 0xCAFEF00D.
    assert_eq!(r[RBX], 0xF000);
    assert_eq!(bench.read(DATA, 2), 0x7712);
    assert_eq!(bench.read(DATA + 4, 4), 0xCAFE_F00D);
    assert_eq!(bench.read(DATA + 8, 4), 0xCAFE_F00D);
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, flags::ARITH);
    // Six register or immediate moves, four stores, two loads, HLT.
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(6 * t.simple + 4 * t.store + 2 * t.load + t.serializing)
    );
}

#[test]
fn movzx_and_movsx_extend_registers_and_memory() {
    let bench = run(
        Mode::Protected32,
        &[
            0x0F, 0xB6, 0xEC, //       movzx ebp, ah
            0x0F, 0xBE, 0xCB, //       movsx ecx, bl
            0x66, 0x0F, 0xBE, 0xD3, // movsx dx, bl
            0x0F, 0xB7, 0x33, //       movzx esi, word [ebx]
            0x0F, 0xBF, 0x3B, //       movsx edi, word [ebx]
            0x0F, 0xB6, 0xC3, //       movzx eax, bl
            0x0F, 0xBE, 0x63, 0x02, // movsx esp, byte [ebx+2]
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0x0000_9A00;
            cpu.state.regs[RBX] = DATA + 0x80;
            cpu.state.regs[RDX] = 0x1234_5678;
            cpu.memory().write(DATA + 0x80, 4, 0x00F0_8001);
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RBP], 0x9A);
    assert_eq!(r[RCX], 0xFFFF_FF80);
    assert_eq!(r[RDX], 0x1234_FF80);
    assert_eq!(r[RSI], 0x8001);
    assert_eq!(r[RDI], 0xFFFF_8001);
    assert_eq!(r[RAX], 0x80);
    assert_eq!(r[RSP], 0xFFFF_FFF0);
}

#[test]
fn lea_computes_32_bit_sib_addresses_without_touching_memory_or_flags() {
    let bench = run(
        Mode::Protected32,
        &[
            0x8D, 0x44, 0x8B, 0x10, //                         lea eax, [ebx+ecx*4+0x10]
            0x8D, 0x14, 0xCD, 0x00, 0x00, 0x00, 0x00, //       lea edx, [ecx*8]
            0x8D, 0x7C, 0x75, 0xF8, //                         lea edi, [ebp+esi*2-8]
            0x66, 0x8D, 0xAC, 0x0B, 0xFF, 0xFF, 0x00, 0x00, // lea bp, [ebx+ecx+0xFFFF]
            0x67, 0x8D, 0x48, 0x10, //                         lea ecx, [bx+si+0x10]
            0x8D, 0x74, 0x24, 0x04, //                         lea esi, [esp+4]
        ],
        |cpu| {
            cpu.state.regs[RBX] = 0xFFF0;
            cpu.state.regs[RCX] = 0x20;
            cpu.state.regs[RBP] = 0xABCD_3000;
            cpu.state.regs[RSI] = 0x10;
            cpu.state.rflags |= CF | ZF;
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RAX], 0xFFF0 + 0x80 + 0x10);
    assert_eq!(r[RDX], 0x100);
    assert_eq!(r[RDI], 0xABCD_3000 + 0x20 - 8);
    assert_eq!(r[RSI], STACK_TOP + 4);
    // A 16-bit destination keeps the low 16 bits of the 32-bit address: 0x2000F → 0x000F.
    assert_eq!(r[RBP], 0xABCD_000F);
    // 16-bit addressing (0x67) wraps at 64 KiB: 0xFFF0 + 0x0010 + 0x10 = 0x10010 → 0x0010.
    assert_eq!(r[RCX], 0x0010);
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | ZF);
    let t = TimingTable::default();
    assert_eq!(bench.cpu.cycle, u64::from(6 * t.simple + t.serializing));
}

#[test]
fn sixteen_bit_addressing_modes_wrap_at_64_kib_and_use_ss_for_bp() {
    let bench = run(
        Mode::Real,
        &[
            0x8D, 0x40, 0x10, //       lea ax, [bx+si+0x10]
            0x8D, 0x4B, 0xFE, //       lea cx, [bp+di-2]
            0x8D, 0x90, 0x34, 0x12, // lea dx, [bx+si+0x1234]
            0x8A, 0x80, 0x00, 0x10, // mov al, [bx+si+0x1000]
            0x8A, 0x63, 0x01, //       mov ah, [bp+di+1]
            0x88, 0x4D, 0xFF, //       mov [di+0xFFFF], cl
        ],
        |cpu| {
            cpu.state.regs[RBX] = 0xF000;
            cpu.state.regs[RSI] = 0x1000;
            cpu.state.regs[RBP] = 0x0001;
            cpu.state.regs[RDI] = 0x0000;
            cpu.state.regs[RDX] = 0xFFFF_0000;
            cpu.state.segs[SegReg::Ds as usize] = Segment::real_mode(0x2000);
            cpu.state.segs[SegReg::Ss as usize] = Segment::real_mode(0x3000);
            // [bx+si+0x1000] = 0x11000 → 0x1000: DS:0x1000, not DS:0x11000.
            cpu.memory().write(0x2_1000, 1, 0xAA);
            cpu.memory().write(0x3_1000, 1, 0x55);
            // [bp+di+1] = 2: SS:2, not DS:2.
            cpu.memory().write(0x3_0002, 1, 0xBB);
            cpu.memory().write(0x2_0002, 1, 0x66);
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RAX] & 0xFFFF, 0xBBAA);
    // bp + di − 2 = 0xFFFF.
    assert_eq!(r[RCX], 0xFFFF);
    // 0xF000 + 0x1000 + 0x1234 = 0x11234 → 0x1234; the upper half of EDX stays.
    assert_eq!(r[RDX], 0xFFFF_1234);
    // CL (0xFF after the LEA) stored at DS:(0 + 0xFFFF) = DS:0xFFFF.
    assert_eq!(bench.read(0x2_FFFF, 1), 0xFF);
}

#[test]
fn xchg_swaps_registers_and_memory_atomically() {
    let bench = run(
        Mode::Protected32,
        &[
            0x93, //             xchg eax, ebx
            0x86, 0xE0, //       xchg ah, al
            0x66, 0x87, 0xD1, // xchg dx, cx
            0x87, 0x0B, //       xchg [ebx], ecx
        ],
        |cpu| {
            cpu.state.regs[RAX] = DATA;
            cpu.state.regs[RBX] = 0x1122_3344;
            cpu.state.regs[RCX] = 0xCCCC_CCCC;
            cpu.state.regs[RDX] = 0xDDDD_1111;
            cpu.memory().write(DATA, 4, 0x5555_6666);
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RAX], 0x1122_4433);
    assert_eq!(r[RBX], DATA);
    assert_eq!(r[RDX], 0xDDDD_CCCC);
    assert_eq!(r[RCX], 0x5555_6666);
    assert_eq!(bench.read(DATA, 4), 0xCCCC_1111);
    // XCHG with memory is locked whether or not it has the prefix (SDM Vol. 2D, XCHG).
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(3 * t.simple + t.locked_rmw + t.serializing)
    );
}

#[test]
fn cmpxchg_stores_on_equal_and_loads_the_accumulator_otherwise() {
    const CMPXCHG_MEM_ECX: &[u8] = &[0x0F, 0xB1, 0x0B]; // cmpxchg [ebx], ecx
    const LOCK_CMPXCHG_MEM_ECX: &[u8] = &[0xF0, 0x0F, 0xB1, 0x0B]; // lock cmpxchg [ebx], ecx
    let t = TimingTable::default();
    for (code, cost) in [
        (CMPXCHG_MEM_ECX, t.store),
        (LOCK_CMPXCHG_MEM_ECX, t.locked_rmw),
    ] {
        // Equal: memory takes ECX, ZF = 1 and the flags are CMP's.
        let bench = run(Mode::Protected32, code, |cpu| {
            cpu.state.regs[RAX] = 0x1234;
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 0x9999;
            cpu.state.rflags |= CF | SF;
            cpu.memory().write(DATA, 4, 0x1234);
        });
        assert_eq!(bench.read(DATA, 4), 0x9999);
        assert_eq!(bench.cpu.state.regs[RAX], 0x1234);
        assert_eq!(bench.cpu.state.rflags & flags::ARITH, ZF | PF);
        assert_eq!(bench.cpu.cycle, u64::from(cost + t.serializing));
        // Not equal: EAX takes memory, memory keeps its value, flags of 5 − 7.
        let bench = run(Mode::Protected32, code, |cpu| {
            cpu.state.regs[RAX] = 5;
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 0x9999;
            cpu.memory().write(DATA, 4, 7);
        });
        assert_eq!(bench.read(DATA, 4), 7);
        assert_eq!(bench.cpu.state.regs[RAX], 7);
        assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | SF | AF);
    }
}

#[test]
fn cmpxchg_with_register_destinations() {
    let bench = exec(
        Mode::Protected32,
        &[0x0F, 0xB1, 0xD1], // cmpxchg ecx, edx
        &[(RAX, 0x42), (RCX, 0x42), (RDX, 0x77)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RCX], 0x77);
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, ZF | PF);
    // Bytes: AL (0x10) ≠ BL (0x20), so AL = BL and the rest of EAX stays.
    let bench = exec(
        Mode::Protected32,
        &[0x0F, 0xB0, 0xCB], // cmpxchg bl, cl
        &[(RAX, 0xAAAA_AA10), (RBX, 0x20), (RCX, 0x30)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0xAAAA_AA20);
    assert_eq!(bench.cpu.state.regs[RBX], 0x20);
    // 0x10 − 0x20 = 0xF0: borrow, sign, four ones.
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | SF | PF);
}

#[test]
fn cmpxchg8b_compares_edx_eax_and_changes_only_zf() {
    const CMPXCHG8B: &[u8] = &[0x0F, 0xC7, 0x0E]; // cmpxchg8b [esi]
    const LOCK_CMPXCHG8B: &[u8] = &[0xF0, 0x0F, 0xC7, 0x0E]; // lock cmpxchg8b [esi]
    let t = TimingTable::default();
    for (code, cost) in [(CMPXCHG8B, t.store), (LOCK_CMPXCHG8B, t.locked_rmw)] {
        let setup = |memory: u64| {
            move |cpu: &mut Cpu| {
                cpu.state.regs[RDX] = 0x1111_2222;
                cpu.state.regs[RAX] = 0x3333_4444;
                cpu.state.regs[RCX] = 0xAAAA_BBBB;
                cpu.state.regs[RBX] = 0xCCCC_DDDD;
                cpu.state.regs[RSI] = DATA;
                cpu.state.rflags |= CF | SF;
                cpu.memory().write(DATA, 8, memory);
            }
        };
        let bench = run(Mode::Protected32, code, setup(0x1111_2222_3333_4444));
        assert_eq!(bench.read(DATA, 8), 0xAAAA_BBBB_CCCC_DDDD);
        assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | SF | ZF);
        assert_eq!(bench.cpu.cycle, u64::from(cost + t.serializing));
        let bench = run(Mode::Protected32, code, setup(0x5555_6666_7777_8888));
        assert_eq!(bench.read(DATA, 8), 0x5555_6666_7777_8888);
        assert_eq!(
            (bench.cpu.state.regs[RDX], bench.cpu.state.regs[RAX]),
            (0x5555_6666, 0x7777_8888)
        );
        assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | SF);
    }
}

#[test]
fn xadd_exchanges_and_adds() {
    let bench = run(
        Mode::Protected32,
        &[
            0x0F, 0xC1, 0x03, // xadd [ebx], eax
            0x0F, 0xC1, 0xD1, // xadd ecx, edx
        ],
        |cpu| {
            cpu.state.regs[RAX] = 1;
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 3;
            cpu.state.regs[RDX] = 4;
            cpu.memory().write(DATA, 4, 0xFFFF_FFFF);
        },
    );
    assert_eq!(bench.read(DATA, 4), 0);
    assert_eq!(bench.cpu.state.regs[RAX], 0xFFFF_FFFF);
    assert_eq!(bench.cpu.state.regs[RCX], 7);
    assert_eq!(bench.cpu.state.regs[RDX], 3);
    // Flags of the last one, 3 + 4.
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, 0);
    // Bytes, both halves of one register: BL = BL + BH, BH = old BL.
    let bench = exec(
        Mode::Protected32,
        &[0x0F, 0xC0, 0xFB], // xadd bl, bh
        &[(RBX, 0x8081)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RBX], 0x8101);
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, CF | OF);
    // LOCK XADD on memory: the atomic fetch-and-add.
    let bench = run(
        Mode::Protected32,
        &[0xF0, 0x0F, 0xC1, 0x03], // lock xadd [ebx], eax
        |cpu| {
            cpu.state.regs[RAX] = 0x10;
            cpu.state.regs[RBX] = DATA;
            cpu.memory().write(DATA, 4, 0x7FFF_FFF8);
        },
    );
    assert_eq!(bench.read(DATA, 4), 0x8000_0008);
    assert_eq!(bench.cpu.state.regs[RAX], 0x7FFF_FFF8);
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, OF | SF);
    let t = TimingTable::default();
    assert_eq!(bench.cpu.cycle, u64::from(t.locked_rmw + t.serializing));
}

#[test]
fn xadd_of_a_register_with_itself_leaves_the_sum() {
    // SDM Vol. 2D, XADD: TEMP ← SRC + DEST; SRC ← DEST; DEST ← TEMP. The destination is
    // written last, so with one register for both the sum wins (QEMU and Bochs agree).
    let bench = exec(
        Mode::Protected32,
        &[0x0F, 0xC1, 0xC0], // xadd eax, eax
        &[(RAX, 5)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RAX], 10);
}

#[test]
fn bswap_reverses_the_bytes() {
    let bench = exec(
        Mode::Protected32,
        &[
            0x0F, 0xC8, // bswap eax
            0x0F, 0xCE, // bswap esi
        ],
        &[(RAX, 0x1234_5678), (RSI, 0xFF)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0x7856_3412);
    assert_eq!(bench.cpu.state.regs[RSI], 0xFF00_0000);
}

#[test]
fn cbw_cwde_cwd_cdq_at_the_default_operand_size() {
    let bench = exec(Mode::Protected32, &[0x98], &[(RAX, 0x1234_8000)], 0); // cwde
    assert_eq!(bench.cpu.state.regs[RAX], 0xFFFF_8000);
    let bench = exec(
        Mode::Protected32,
        &[0x99], // cdq
        &[(RAX, 0x8000_0000), (RDX, 0x1234)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RDX], 0xFFFF_FFFF);
    let bench = exec(
        Mode::Protected32,
        &[0x99],
        &[(RAX, 0x7FFF_FFFF), (RDX, 9)],
        0,
    ); // cdq
    assert_eq!(bench.cpu.state.regs[RDX], 0);
    let bench = exec(Mode::Real, &[0x98], &[(RAX, 0x1234_567F)], 0); // cbw
    assert_eq!(bench.cpu.state.regs[RAX], 0x1234_007F);
    let bench = exec(
        Mode::Real,
        &[0x99], // cwd
        &[(RAX, 0x8000), (RDX, 0x1234_5678)],
        0,
    );
    assert_eq!(bench.cpu.state.regs[RDX], 0x1234_FFFF);
}

#[test]
fn operand_size_prefix_selects_cbw_or_cwde_and_cwd_or_cdq() {
    // iced gives these no operands, so their size comes from the mode and the 0x66 prefix.
    let cbw_32 = exec(Mode::Protected32, &[0x66, 0x98], &[(RAX, 0x1234_5680)], 0); // cbw
    let cwd_32 = exec(
        Mode::Protected32,
        &[0x66, 0x99], // cwd
        &[(RAX, 0x0000_8000), (RDX, 0x1234_5678)],
        0,
    );
    let cwde_16 = exec(Mode::Real, &[0x66, 0x98], &[(RAX, 0x0000_FFFF)], 0); // cwde
    let cdq_16 = exec(
        Mode::Real,
        &[0x66, 0x99], // cdq
        &[(RAX, 0x8000_0000), (RDX, 0)],
        0,
    );
    assert_eq!(
        [
            cbw_32.cpu.state.regs[RAX],
            cwd_32.cpu.state.regs[RDX],
            cwde_16.cpu.state.regs[RAX],
            cdq_16.cpu.state.regs[RDX],
        ],
        [0x1234_FF80, 0x1234_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF],
        "[cbw in 32-bit code → EAX, cwd → EDX, cwde in 16-bit code → EAX, cdq → EDX]"
    );
}

#[test]
fn push_and_pop_immediates_memory_and_registers() {
    let bench = run(
        Mode::Protected32,
        &[
            0x6A, 0xFF, //                   push byte -1
            0x68, 0x78, 0x56, 0x34, 0x12, // push dword 0x12345678
            0xFF, 0x33, //                   push dword [ebx]
            0x8F, 0x43, 0x04, //             pop dword [ebx+4]
            0x66, 0x68, 0x34, 0x12, //       push word 0x1234
            0x66, 0x59, //                   pop cx
        ],
        |cpu| {
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 0xCCCC_CCCC;
            cpu.memory().write(DATA, 4, 0xFEED_BEEF);
        },
    );
    assert_eq!(bench.read(STACK_TOP - 4, 4), 0xFFFF_FFFF);
    assert_eq!(bench.read(STACK_TOP - 8, 4), 0x1234_5678);
    assert_eq!(bench.read(DATA + 4, 4), 0xFEED_BEEF);
    assert_eq!(bench.cpu.state.regs[RCX], 0xCCCC_1234);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP - 8);
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(4 * t.store + 2 * t.load + t.serializing)
    );
}

#[test]
fn pop_to_an_esp_based_address_uses_the_incremented_esp() {
    // SDM Vol. 2B, POP: "If the ESP register is used as a base register for addressing a
    // destination operand in memory, the POP instruction computes the effective address of
    // the operand after it increments the ESP register."
    let bench = run(
        Mode::Protected32,
        &[
            0x6A, 0x11, //       push 0x11
            0x6A, 0x22, //       push 0x22
            0x8F, 0x04, 0x24, // pop dword [esp]
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP - 4);
    assert_eq!(bench.read(STACK_TOP - 4, 4), 0x22);
}

#[test]
fn push_sp_pushes_the_value_before_the_push_and_pop_sp_loads_it() {
    let bench = run(
        Mode::Real,
        &[
            0x54, // push sp
            0x58, // pop ax
            0x54, // push sp
            0x5C, // pop sp
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RAX], STACK_TOP);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP);
    let bench = run(
        Mode::Protected32,
        &[
            0x54, //                                           push esp
            0x58, //                                           pop eax
            0xC7, 0x44, 0x24, 0xFC, 0x34, 0x12, 0x00, 0x00, // mov dword [esp-4], 0x1234
            0x83, 0xEC, 0x04, //                               sub esp, 4
            0x5C, //                                           pop esp
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RAX], STACK_TOP);
    assert_eq!(bench.cpu.state.regs[RSP], 0x1234);
}

#[test]
fn segment_registers_push_and_pop_in_real_mode() {
    let bench = run(
        Mode::Real,
        &[
            0x1E, // push ds
            0x07, // pop es
            0x0E, // push cs
            0x1F, // pop ds
            0x16, // push ss
        ],
        |cpu| {
            cpu.state.segs[SegReg::Ds as usize] = Segment::real_mode(0x1234);
        },
    );
    let es = bench.cpu.state.seg(SegReg::Es);
    assert_eq!((es.selector, es.base), (0x1234, 0x1_2340));
    let ds = bench.cpu.state.seg(SegReg::Ds);
    assert_eq!((ds.selector, ds.base), (0x1000, 0x1_0000));
    assert_eq!(bench.read(STACK_TOP - 2, 2), 0);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP - 2);
    // A segment-register pop is a segment load.
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(3 * t.store + 2 * t.far_transfer + t.serializing)
    );
}

#[test]
fn segment_registers_push_as_a_full_slot_in_32_bit_code() {
    let bench = run(
        Mode::Protected32,
        &[
            0x0F, 0xA0, // push fs
            0x0E, //       push cs
            0x16, //       push ss
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP - 12);
    assert_eq!(bench.read(STACK_TOP - 4, 2), 0x10);
    assert_eq!(bench.read(STACK_TOP - 8, 2), 0x08);
    assert_eq!(bench.read(STACK_TOP - 12, 2), 0x10);
}

#[test]
fn pusha_saves_the_original_sp_and_popa_skips_it() {
    let bench = run(
        Mode::Real,
        &[
            0x60, //                         pusha
            0xB8, 0x55, 0x55, //             mov ax, 0x5555
            0xBD, 0x66, 0x66, //             mov bp, 0x6666
            0x89, 0xE3, //                   mov bx, sp
            0xC7, 0x47, 0x06, 0x34, 0x12, // mov word [bx+6], 0x1234
            0xBB, 0x77, 0x77, //             mov bx, 0x7777
            0x61, //                         popa
        ],
        |cpu| {
            for (reg, value) in [
                (RAX, 1),
                (RCX, 2),
                (RDX, 3),
                (RBX, 4),
                (RBP, 6),
                (RSI, 7),
                (RDI, 8),
            ] {
                cpu.state.regs[reg] = value;
            }
        },
    );
    // The image as PUSHA left it (SP slot patched to 0x1234 afterwards).
    let slots: Vec<u64> = (1..=8).map(|n| bench.read(STACK_TOP - 2 * n, 2)).collect();
    assert_eq!(slots, [1, 2, 3, 4, 0x1234, 6, 7, 8]);
    let r = &bench.cpu.state.regs;
    assert_eq!(
        [r[RAX], r[RCX], r[RDX], r[RBX], r[RSP], r[RBP], r[RSI], r[RDI]],
        [1, 2, 3, 4, STACK_TOP, 6, 7, 8]
    );
}

#[test]
fn pushad_and_popad_move_32_bit_registers() {
    let bench = run(
        Mode::Protected32,
        &[
            0x60, //       pushad
            0x31, 0xC0, // xor eax, eax
            0x31, 0xFF, // xor edi, edi
            0x61, //       popad
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0xAAAA_0001;
            cpu.state.regs[RDI] = 0xDDDD_0008;
        },
    );
    assert_eq!(bench.read(STACK_TOP - 4, 4), 0xAAAA_0001);
    assert_eq!(bench.read(STACK_TOP - 20, 4), STACK_TOP);
    assert_eq!(bench.read(STACK_TOP - 32, 4), 0xDDDD_0008);
    assert_eq!(bench.cpu.state.regs[RAX], 0xAAAA_0001);
    assert_eq!(bench.cpu.state.regs[RDI], 0xDDDD_0008);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP);
}

#[test]
fn pushf_clears_vm_and_rf_in_the_image_and_popf_cannot_set_them() {
    let bench = run(
        Mode::Protected32,
        &[0x9C], // pushfd
        |cpu| {
            cpu.state.rflags = flags::FIXED1 | CF | ZF | flags::RF | flags::AC;
        },
    );
    assert_eq!(
        bench.read(STACK_TOP - 4, 4),
        flags::FIXED1 | CF | ZF | flags::AC
    );
    // IOPL, ID, AC, DF, IF, OF and the status flags load; RF and VM do not.
    let bench = run(
        Mode::Protected32,
        &[
            0x68, 0xD5, 0x3E, 0x27, 0x00, // push dword 0x00273ED5
            0x9D, //                         popfd
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.rflags, 0x0024_3ED7);
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(t.store + 2 * t.serializing),
        "POPF serializes"
    );
}

#[test]
fn sixteen_bit_popf_keeps_the_upper_flags() {
    let bench = run(
        Mode::Protected32,
        &[
            0x66, 0x68, 0xC3, 0x08, // push word 0x08C3
            0x66, 0x9D, //             popfw
        ],
        |cpu| {
            cpu.state.rflags = flags::FIXED1 | flags::AC | flags::ID | ZF;
        },
    );
    assert_eq!(bench.cpu.state.rflags, flags::AC | flags::ID | 0x08C3);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP);
    // Real mode: PUSHF/POPF move 16 bits.
    let bench = run(
        Mode::Real,
        &[
            0x9C, //       pushf
            0x58, //       pop ax
            0x6A, 0x01, // push word 0x0001
            0x9D, //       popf
        ],
        |cpu| {
            cpu.state.rflags = flags::FIXED1 | SF | OF;
        },
    );
    assert_eq!(bench.cpu.state.regs[RAX], flags::FIXED1 | SF | OF);
    assert_eq!(bench.cpu.state.rflags, flags::FIXED1 | CF);
}

#[test]
fn enter_builds_frames_and_leave_tears_them_down() {
    let bench = run(
        Mode::Protected32,
        &[
            0xC8, 0x10, 0x00, 0x00, // enter 16, 0
            0x89, 0xE6, //             mov esi, esp
            0x89, 0xEF, //             mov edi, ebp
            0xC9, //                   leave
        ],
        |cpu| cpu.state.regs[RBP] = 0x7000,
    );
    let r = &bench.cpu.state.regs;
    assert_eq!((r[RSI], r[RDI]), (STACK_TOP - 4 - 16, STACK_TOP - 4));
    assert_eq!((r[RSP], r[RBP]), (STACK_TOP, 0x7000));
    assert_eq!(bench.read(STACK_TOP - 4, 4), 0x7000);
}

#[test]
fn enter_with_a_nesting_level_copies_the_outer_frame_pointers() {
    // Level 2: push EBP, push the outer frame's saved pointer at [EBP − 4], push the new frame.
    let bench = run(
        Mode::Protected32,
        &[0xC8, 0x08, 0x00, 0x02], // enter 8, 2
        |cpu| {
            cpu.state.regs[RBP] = 0x7000;
            cpu.memory().write(0x7000 - 4, 4, 0xAAAA);
        },
    );
    let frame = STACK_TOP - 4;
    assert_eq!(bench.read(STACK_TOP - 4, 4), 0x7000);
    assert_eq!(bench.read(STACK_TOP - 8, 4), 0xAAAA);
    assert_eq!(bench.read(STACK_TOP - 12, 4), frame);
    assert_eq!(bench.cpu.state.regs[RBP], frame);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP - 12 - 8);
    // Real mode, level 1: the new frame pointer is pushed once.
    let bench = run(
        Mode::Real,
        &[
            0xC8, 0x04, 0x00, 0x01, // enter 4, 1
            0x89, 0xE6, //             mov si, sp
            0x89, 0xEF, //             mov di, bp
            0xC9, //                   leave
        ],
        |cpu| cpu.state.regs[RBP] = 0x7000,
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(bench.read(STACK_TOP - 2, 2), 0x7000);
    assert_eq!(bench.read(STACK_TOP - 4, 2), STACK_TOP - 2);
    assert_eq!((r[RSI], r[RDI]), (STACK_TOP - 4 - 4, STACK_TOP - 2));
    assert_eq!((r[RSP], r[RBP]), (STACK_TOP, 0x7000));
}

#[test]
fn lahf_and_sahf_move_the_low_flags_through_ah() {
    let bench = exec(
        Mode::Protected32,
        &[0x9E], // sahf
        &[(RAX, 0xD500)],
        OF,
    );
    assert_eq!(
        bench.cpu.state.rflags & flags::ARITH,
        OF | SF | ZF | AF | PF | CF
    );
    let bench = exec(
        Mode::Protected32,
        &[0x9E], // sahf
        &[(RAX, 0x0000)],
        flags::ARITH,
    );
    assert_eq!(bench.cpu.state.rflags & flags::ARITH, OF);
    let bench = exec(
        Mode::Real,
        &[0x9F], // lahf
        &[(RAX, 0x1234_FFFF)],
        CF | ZF | OF,
    );
    // SF ZF 0 AF 0 PF 1 CF: bit 1 reads as one.
    assert_eq!(bench.cpu.state.regs[RAX], 0x1234_43FF);
}

#[test]
fn xlat_indexes_a_table_with_unsigned_al() {
    let bench = run(Mode::Real, &[0xD7 /* xlatb */], |cpu| {
        cpu.state.regs[RBX] = 0x0100;
        cpu.state.regs[RAX] = 0x05;
        cpu.state.segs[SegReg::Ds as usize] = Segment::real_mode(0x2000);
        cpu.memory().write(0x2_0105, 1, 0x99);
    });
    assert_eq!(bench.cpu.state.regs[RAX], 0x99);
    let bench = run(Mode::Protected32, &[0xD7 /* xlatb */], |cpu| {
        cpu.state.regs[RBX] = DATA;
        cpu.state.regs[RAX] = 0x1234_56FF;
        cpu.memory().write(DATA + 0xFF, 1, 0x42);
    });
    assert_eq!(bench.cpu.state.regs[RAX], 0x1234_5642);
}

#[test]
fn lds_and_les_load_a_far_pointer_in_real_mode() {
    let bench = run(
        Mode::Real,
        &[
            0xC5, 0x36, 0x00, 0x02, // lds si, [0x200]
            0xC4, 0x3F, //             les di, [bx]
        ],
        |cpu| {
            cpu.state.regs[RBX] = 0x10;
            cpu.memory().write(0x200, 4, 0x3000_1234);
            cpu.memory().write(0x3_0010, 4, 0x4000_5678);
        },
    );
    let ds = bench.cpu.state.seg(SegReg::Ds);
    let es = bench.cpu.state.seg(SegReg::Es);
    assert_eq!((ds.selector, ds.base), (0x3000, 0x3_0000));
    assert_eq!((es.selector, es.base), (0x4000, 0x4_0000));
    assert_eq!(bench.cpu.state.regs[RSI], 0x1234);
    assert_eq!(bench.cpu.state.regs[RDI], 0x5678);
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(2 * t.far_transfer + t.serializing)
    );
}

#[test]
fn mov_to_and_from_segment_registers_in_real_mode() {
    let bench = run(
        Mode::Real,
        &[
            0x8E, 0xD8, //       mov ds, ax
            0x8E, 0xC3, //       mov es, bx
            0x8C, 0xD9, //       mov cx, ds
            0x66, 0x8C, 0xC2, // mov edx, es
            0xA0, 0x10, 0x00, // mov al, [0x10]
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0x2345;
            cpu.state.regs[RBX] = 0x0040;
            cpu.state.regs[RDX] = 0xFFFF_FFFF;
            cpu.memory().write(0x2_3460, 1, 0x7E);
        },
    );
    assert_eq!(bench.cpu.state.seg(SegReg::Ds).base, 0x2_3450);
    assert_eq!(bench.cpu.state.seg(SegReg::Es).base, 0x400);
    assert_eq!(bench.cpu.state.regs[RCX], 0x2345);
    assert_eq!(bench.cpu.state.regs[RDX], 0x0040);
    assert_eq!(bench.cpu.state.regs[RAX], 0x237E);
}
