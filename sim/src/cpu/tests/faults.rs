//! Exception tests: protected-mode segment loads that fault with the SDM's error codes,
//! #UD for invalid and uncovered instructions, delivery failures that escalate to a double
//! fault and a triple fault. Also the descriptor-table helpers the other protected-mode
//! tests share.
//!
//! Every test here builds its GDT and IDT in guest RAM and points each vector at its own
//! HLT in a 256-byte HLT sled, so where the core halted says which vector it took, and the
//! frame on the handler's stack can be read back (SDM Vol. 3A §7.12.1, Figure 7-4: EFLAGS,
//! CS, EIP and the error code, from high to low addresses).

use super::super::state::{attr, flags, SegReg, RAX, RBX, RCX, RDI, RSI, RSP};
use super::super::testing::{run, Bench, Mode, CODE_BASE, STACK_TOP};
use super::super::{Activity, Cpu, StopReason};
use crate::timing::TimingTable;

/// Where the tests build the GDT.
pub(super) const GDT_BASE: u64 = 0x600;
/// Where the tests build the IDT (256 gates, up to 0x1800).
pub(super) const IDT_BASE: u64 = 0x1000;
/// Base of the "based" code and data segments.
pub(super) const SEGMENT_BASE: u64 = 0x2_0000;

/// Selectors of the GDT [`install_gdt`] builds.
pub(super) mod sel {
    /// Flat 32-bit code, ring 0 (not yet accessed).
    pub const CODE32: u16 = 0x08;
    /// Flat 32-bit read/write data, ring 0 (not yet accessed).
    pub const DATA32: u16 = 0x10;
    /// Read/write data, base 0x20000, limit 0xFFFF, byte granular.
    pub const DATA_BASED: u16 = 0x18;
    /// Read/write data, not present.
    pub const DATA_ABSENT: u16 = 0x20;
    /// 32-bit code, base 0x20000.
    pub const CODE32_BASED: u16 = 0x28;
    /// 16-bit code, base 0x20000, limit 0xFFFF.
    pub const CODE16_BASED: u16 = 0x30;
    /// Read-only data.
    pub const DATA_READ_ONLY: u16 = 0x38;
    /// 32-bit code, not present.
    pub const CODE_ABSENT: u16 = 0x40;
    /// The first selector past the GDT's limit.
    pub const PAST_LIMIT: u16 = 0x48;
}

/// A segment descriptor (SDM Vol. 3A §3.4.5, Figure 3-8). `flags` is the G, D/B, L, AVL
/// nibble: 0xC for 4 KiB granularity and 32 bits, 0x0 for byte granularity and 16 bits.
pub(super) fn descriptor(base: u64, limit: u64, access: u64, flags: u64) -> u64 {
    (limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (access << 40)
        | (((limit >> 16) & 0xF) << 48)
        | (flags << 52)
        | ((base >> 24) << 56)
}

/// Writes the GDT of [`sel`] at [`GDT_BASE`] and loads GDTR.
pub(super) fn install_gdt(cpu: &mut Cpu) {
    let entries = [
        0,
        descriptor(0, 0xF_FFFF, 0x9A, 0xC),
        descriptor(0, 0xF_FFFF, 0x92, 0xC),
        descriptor(SEGMENT_BASE, 0xFFFF, 0x92, 0x0),
        descriptor(0, 0xF_FFFF, 0x12, 0xC),
        descriptor(SEGMENT_BASE, 0xF_FFFF, 0x9A, 0xC),
        descriptor(SEGMENT_BASE, 0xFFFF, 0x9A, 0x0),
        descriptor(0, 0xF_FFFF, 0x90, 0xC),
        descriptor(0, 0xF_FFFF, 0x1A, 0xC),
    ];
    for (n, entry) in entries.iter().enumerate() {
        cpu.memory().write(GDT_BASE + 8 * n as u64, 8, *entry);
    }
    cpu.state.gdtr.base = GDT_BASE;
    cpu.state.gdtr.limit = (8 * entries.len() - 1) as u16;
}

/// The type byte of a present, DPL 0, 32-bit interrupt gate (SDM Vol. 3A §7.11, Figure 7-2).
pub(super) const INTERRUPT_GATE: u64 = 0x8E;
/// The same for a trap gate, which leaves IF alone.
pub(super) const TRAP_GATE: u64 = 0x8F;
/// An interrupt gate with P = 0: using it raises #NP(vector × 8 + 2).
const ABSENT_GATE: u64 = INTERRUPT_GATE & !0x80;

/// A gate to `selector:offset` with type byte `kind`.
pub(super) fn gate(selector: u16, offset: u64, kind: u64) -> u64 {
    (offset & 0xFFFF) | (u64::from(selector) << 16) | (kind << 40) | ((offset >> 16) << 48)
}

/// Writes IDT entry `vector`.
pub(super) fn set_gate(cpu: &mut Cpu, vector: u8, entry: u64) {
    cpu.memory()
        .write(IDT_BASE + 8 * u64::from(vector), 8, entry);
}

/// Offset of the HLT sled in code built by [`with_handlers`]: vector n's handler is the HLT
/// at `HANDLERS + n`.
pub(super) const HANDLERS: u64 = 0x100;

/// `code`, a HLT, NOPs up to [`HANDLERS`], then 256 HLTs.
pub(super) fn with_handlers(code: &[u8]) -> Vec<u8> {
    assert!(
        code.len() < HANDLERS as usize,
        "test code overlaps the handlers"
    );
    let mut bytes = code.to_vec();
    bytes.push(0xF4); // hlt
    bytes.resize(HANDLERS as usize, 0x90); // nop
    bytes.resize(HANDLERS as usize + 256, 0xF4); // hlt × 256
    bytes
}

/// Protected mode: the GDT, and an IDT whose every vector is an interrupt gate to its HLT in
/// the sled; the code must come from [`with_handlers`].
pub(super) fn install_protected_handlers(cpu: &mut Cpu) {
    install_gdt(cpu);
    for vector in 0..=255u8 {
        let handler = CODE_BASE + HANDLERS + u64::from(vector);
        set_gate(cpu, vector, gate(sel::CODE32, handler, INTERRUPT_GATE));
    }
    cpu.state.idtr.base = IDT_BASE;
    cpu.state.idtr.limit = 256 * 8 - 1;
}

/// Real mode: every IVT vector points at its HLT in the sled.
pub(super) fn install_real_handlers(cpu: &mut Cpu) {
    for vector in 0..256u64 {
        cpu.memory().write(
            4 * vector,
            4,
            ((CODE_BASE >> 4) << 16) | (HANDLERS + vector),
        );
    }
}

/// The vector whose sled HLT the core stopped at, if it stopped in the sled.
pub(super) fn vector_taken(bench: &Bench) -> Option<u64> {
    let base = if bench.cpu.state.protected_mode() {
        CODE_BASE
    } else {
        0
    };
    let ip = bench.cpu.state.rip.checked_sub(base + HANDLERS + 1)?;
    (ip < 256).then_some(ip)
}

/// The protected-mode exception frame on the handler's stack: (error code, EIP, CS, EFLAGS).
pub(super) fn frame_with_error(bench: &Bench) -> (u64, u64, u64, u64) {
    let esp = bench.cpu.state.regs[RSP];
    (
        bench.read(esp, 4),
        bench.read(esp + 4, 4),
        bench.read(esp + 8, 4),
        bench.read(esp + 12, 4),
    )
}

/// Runs sled-equipped `code` in protected mode after the standard tables and `setup`.
fn run_protected(code: &[u8], setup: impl FnOnce(&mut Cpu)) -> Bench {
    run(Mode::Protected32, &with_handlers(code), |cpu| {
        install_protected_handlers(cpu);
        setup(cpu);
    })
}

#[test]
fn a_data_segment_with_a_nonzero_base_offsets_every_access() {
    let bench = run_protected(
        &[
            0x66, 0xB8, 0x18, 0x00, //             mov ax, 0x18
            0x8E, 0xD8, //                         mov ds, ax
            0xA1, 0x10, 0x00, 0x00, 0x00, //       mov eax, [0x10]
            0x89, 0x1D, 0x20, 0x00, 0x00, 0x00, // mov [0x20], ebx
        ],
        |cpu| {
            cpu.state.regs[RBX] = 0xB0B0_B0B0;
            cpu.memory().write(SEGMENT_BASE + 0x10, 4, 0x1234_5678);
        },
    );
    assert_eq!(vector_taken(&bench), None);
    let ds = *bench.cpu.state.seg(SegReg::Ds);
    assert_eq!(
        (ds.selector, ds.base, ds.limit),
        (sel::DATA_BASED, SEGMENT_BASE, 0xFFFF)
    );
    assert_eq!(
        ds.attrs & (attr::P | attr::S | attr::RW),
        attr::P | attr::S | attr::RW
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0x1234_5678);
    assert_eq!(bench.read(SEGMENT_BASE + 0x20, 4), 0xB0B0_B0B0);
    // The load marks the descriptor accessed in memory (type 0x92 → 0x93).
    assert_eq!(bench.read(GDT_BASE + 0x18 + 5, 1), 0x93);
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(t.simple + t.far_transfer + t.load + t.store + t.serializing)
    );
}

#[test]
fn lds_and_a_null_selector_in_protected_mode() {
    let bench = run_protected(
        &[
            0xC5, 0x33, // lds esi, [ebx]
            0x31, 0xC0, // xor eax, eax
            0x8E, 0xC0, // mov es, ax
        ],
        |cpu| {
            cpu.state.regs[RBX] = 0x3000;
            cpu.memory().write(0x3000, 4, 0x0000_1234);
            cpu.memory().write(0x3004, 2, u64::from(sel::DATA_BASED));
        },
    );
    assert_eq!(vector_taken(&bench), None);
    assert_eq!(bench.cpu.state.regs[RSI], 0x1234);
    assert_eq!(bench.cpu.state.seg(SegReg::Ds).base, SEGMENT_BASE);
    // A null selector loads into a data segment register without a fault.
    assert_eq!(bench.cpu.state.seg(SegReg::Es).selector, 0);
    assert_eq!(bench.cpu.state.seg(SegReg::Es).attrs & attr::P, 0);
}

/// Loads `selector` into a segment register with `code` (which takes it in AX) and expects
/// the fault `vector` with `error_code`, the faulting instruction at offset 4.
fn expect_segment_fault(code: &[u8], selector: u16, vector: u64, error_code: u64) {
    let bench = run_protected(code, |cpu| {
        cpu.state.regs[RAX] = u64::from(selector);
        cpu.state.rflags |= flags::IF;
    });
    assert_eq!(vector_taken(&bench), Some(vector), "selector {selector:#x}");
    let (error, eip, cs, eflags) = frame_with_error(&bench);
    assert_eq!(error, error_code, "selector {selector:#x}: error code");
    // A fault saves the faulting instruction's EIP: the MOV, the first instruction.
    assert_eq!(eip, CODE_BASE, "selector {selector:#x}: saved EIP");
    assert_eq!(cs, u64::from(sel::CODE32));
    assert_eq!(eflags & flags::IF, flags::IF, "the saved EFLAGS has IF");
    // The interrupt gate cleared IF; nothing was loaded.
    assert_eq!(bench.cpu.state.rflags & flags::IF, 0);
    assert_eq!(bench.cpu.state.seg(SegReg::Ds).selector, 0x10);
    assert_eq!(bench.cpu.state.seg(SegReg::Ss).selector, 0x10);
    assert_eq!(bench.cpu.state.seg(SegReg::Es).selector, 0x10);
    assert_eq!(bench.cpu.stats.exceptions, 1);
}

const MOV_DS_AX: &[u8] = &[0x8E, 0xD8]; // mov ds, ax
const MOV_SS_AX: &[u8] = &[0x8E, 0xD0]; // mov ss, ax
const MOV_ES_AX: &[u8] = &[0x8E, 0xC0]; // mov es, ax

#[test]
fn a_selector_past_the_gdt_limit_raises_gp_with_the_selector() {
    expect_segment_fault(MOV_DS_AX, sel::PAST_LIMIT, 13, 0x48);
    // The RPL bits are not part of the error code.
    expect_segment_fault(MOV_ES_AX, 0x7FFB, 13, 0x7FF8);
}

#[test]
fn a_null_stack_segment_raises_gp_zero() {
    expect_segment_fault(MOV_SS_AX, 0, 13, 0);
    expect_segment_fault(MOV_SS_AX, 3, 13, 0);
}

#[test]
fn a_not_present_segment_raises_np_or_ss_with_the_selector() {
    expect_segment_fault(MOV_DS_AX, sel::DATA_ABSENT, 11, 0x20);
    expect_segment_fault(MOV_SS_AX, sel::DATA_ABSENT, 12, 0x20);
}

#[test]
fn segment_type_and_privilege_violations_raise_gp_with_the_selector() {
    // SS must be writable data.
    expect_segment_fault(MOV_SS_AX, sel::DATA_READ_ONLY, 13, 0x38);
    expect_segment_fault(MOV_SS_AX, sel::CODE32, 13, 0x08);
    // DPL 0 data with RPL 3: DPL < max(CPL, RPL).
    expect_segment_fault(MOV_DS_AX, sel::DATA32 | 3, 13, 0x10);
}

#[test]
fn a_faulting_segment_pop_leaves_the_stack_pointer_alone() {
    // SDM Vol. 2B, POP: the selector is loaded before ESP moves, so a fault (here #NP for the
    // not-present selector 0x20) restarts the POP with the value still on the stack.
    let bench = run_protected(
        &[
            0x6A, 0x20, // push 0x20
            0x07, //       pop es
        ],
        |_| {},
    );
    assert_eq!(vector_taken(&bench), Some(11));
    let (error, eip, _, _) = frame_with_error(&bench);
    assert_eq!((error, eip), (0x20, CODE_BASE + 2));
    // Below the 16-byte frame: the pushed selector, still in place.
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP - 4 - 16);
    assert_eq!(bench.read(STACK_TOP - 4, 4), 0x20);
    assert_eq!(bench.cpu.state.seg(SegReg::Es).selector, sel::DATA32);
}

#[test]
fn far_jumps_to_bad_code_segments_fault_with_the_selector() {
    const JMP_ABSENT: &[u8] = &[0xEA, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00]; // jmp 0x40:0
    const JMP_DATA: &[u8] = &[0xEA, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00]; // jmp 0x10:0
    const JMP_NULL: &[u8] = &[0xEA, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]; // jmp 0:0
    for (code, vector, error) in [
        // Not present: #NP(selector).
        (JMP_ABSENT, 11, sel::CODE_ABSENT),
        // A data segment or the null selector is not code: #GP(selector).
        (JMP_DATA, 13, sel::DATA32),
        (JMP_NULL, 13, 0),
    ] {
        let bench = run_protected(code, |_| {});
        assert_eq!(vector_taken(&bench), Some(vector), "{code:02x?}");
        assert_eq!(frame_with_error(&bench).0, u64::from(error), "{code:02x?}");
        assert_eq!(frame_with_error(&bench).1, CODE_BASE, "{code:02x?}");
        assert_eq!(bench.cpu.state.seg(SegReg::Cs).selector, sel::CODE32);
    }
}

#[test]
fn a_contributory_fault_while_delivering_one_becomes_a_double_fault() {
    // RDMSR of an unknown MSR raises #GP(0); the #GP gate is not present, so delivering it
    // raises #NP — two contributory exceptions make #DF (SDM Vol. 3A Table 7-5), delivered
    // through vector 8 with error code 0.
    const RDMSR: &[u8] = &[0x0F, 0x32]; // rdmsr
    let bench = run_protected(RDMSR, |cpu| {
        cpu.state.regs[RCX] = 0xDEAD;
        let handler = CODE_BASE + HANDLERS + 13;
        set_gate(cpu, 13, gate(sel::CODE32, handler, ABSENT_GATE));
    });
    assert_eq!(vector_taken(&bench), Some(8));
    let (error, eip, cs, _) = frame_with_error(&bench);
    assert_eq!((error, eip, cs), (0, CODE_BASE, u64::from(sel::CODE32)));
    // Counted once per delivery attempt: #GP, then #DF.
    assert_eq!(bench.cpu.stats.exceptions, 2);
}

#[test]
fn a_fault_while_delivering_a_benign_exception_is_delivered_normally() {
    // UD2's #UD is benign: the #NP(6 × 8 + 2) raised by its absent gate is delivered as is.
    const UD2: &[u8] = &[0x0F, 0x0B]; // ud2
    let bench = run_protected(UD2, |cpu| {
        let handler = CODE_BASE + HANDLERS + 6;
        set_gate(cpu, 6, gate(sel::CODE32, handler, ABSENT_GATE));
    });
    assert_eq!(vector_taken(&bench), Some(11));
    assert_eq!(frame_with_error(&bench).0, 6 * 8 + 2);
    assert_eq!(bench.cpu.stats.invalid, 1);
    assert_eq!(bench.cpu.stats.exceptions, 2);
}

#[test]
fn a_fault_while_delivering_a_double_fault_shuts_the_core_down() {
    let mut bench = Bench::new(Mode::Protected32, &with_handlers(&[0x0F, 0x32])); // rdmsr
    install_protected_handlers(&mut bench.cpu);
    bench.cpu.state.regs[RCX] = 0xDEAD;
    for vector in [8, 13] {
        let handler = CODE_BASE + HANDLERS + u64::from(vector);
        set_gate(
            &mut bench.cpu,
            vector,
            gate(sel::CODE32, handler, ABSENT_GATE),
        );
    }
    assert_eq!(bench.run(), StopReason::Shutdown);
    assert_eq!(bench.cpu.activity, Activity::Shutdown);
    // A shut-down core stays down.
    assert_eq!(bench.run(), StopReason::Shutdown);
    assert_eq!(bench.cpu.stats.instructions, 1);
}

#[test]
fn real_mode_triple_fault_when_the_ivt_limit_is_too_small() {
    // #DE cannot be delivered (limit 0): #GP, then #DF, neither fits either → shutdown.
    let mut bench = Bench::new(
        Mode::Real,
        &[
            0x31, 0xC9, // xor cx, cx
            0xF7, 0xF1, // div cx
        ],
    );
    bench.cpu.state.idtr.limit = 0;
    assert_eq!(bench.run(), StopReason::Shutdown);
    assert_eq!(bench.cpu.activity, Activity::Shutdown);
    assert_eq!(bench.cpu.state.rip, 2, "stopped on the DIV");
}

#[test]
fn int_n_past_the_idt_limit_or_through_a_non_gate_raises_gp() {
    // INT 0x30 with the IDT cut off below it: #GP(0x30 × 8 + 2), EIP of the INT.
    const INT_30H: &[u8] = &[0xCD, 0x30]; // int 0x30
    let bench = run_protected(INT_30H, |cpu| {
        cpu.state.idtr.limit = 0x30 * 8 - 1;
    });
    assert_eq!(vector_taken(&bench), Some(13));
    assert_eq!(frame_with_error(&bench).0, 0x30 * 8 + 2);
    assert_eq!(frame_with_error(&bench).1, CODE_BASE);
    // A zeroed descriptor is not a gate.
    let bench = run_protected(INT_30H, |cpu| set_gate(cpu, 0x30, 0));
    assert_eq!(vector_taken(&bench), Some(13));
    assert_eq!(frame_with_error(&bench).0, 0x30 * 8 + 2);
}

#[test]
fn invalid_encodings_raise_ud_and_are_counted_as_invalid() {
    for code in [
        &[0x0F, 0x0B][..],       // ud2
        &[0xF0, 0x01, 0xD8][..], // lock add ax, bx (LOCK needs a memory destination)
    ] {
        let bench = run(Mode::Real, &with_handlers(code), install_real_handlers);
        assert_eq!(vector_taken(&bench), Some(6), "{code:02x?}");
        assert_eq!(bench.cpu.stats.invalid, 1);
        assert_eq!(bench.cpu.stats.unsupported, 0);
        // #UD is a fault: the saved IP is the instruction's.
        assert_eq!(bench.read(STACK_TOP - 6, 2), 0);
    }
}

#[test]
fn sse2_cmpsd_is_not_the_string_instruction() {
    // F2 0F C2 is SSE2 CMPSD xmm, xmm/m64, imm8, which iced also calls `Cmpsd`. smmsim has no
    // SSE: it must raise #UD and count it as uncovered, not compare [ESI] with [EDI].
    let bench = run(
        Mode::Real,
        &with_handlers(&[0xF2, 0x0F, 0xC2, 0xC1, 0x00]), // cmpsd xmm0, xmm1, 0
        |cpu| {
            install_real_handlers(cpu);
            cpu.state.regs[RSI] = 0x100;
            cpu.state.regs[RDI] = 0x200;
        },
    );
    assert_eq!(
        (
            vector_taken(&bench),
            bench.cpu.stats.unsupported,
            bench.cpu.state.regs[RSI],
            bench.cpu.state.regs[RDI],
        ),
        (Some(6), 1, 0x100, 0x200),
        "(vector, uncovered count, SI, DI)"
    );
}
