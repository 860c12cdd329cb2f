//! Instruction tests: byte strings with their mnemonics, run on the test bench, checking
//! registers, flags, memory and cycles. Each family's tests live in the files beside this one.

use super::state::{flags, RAX, RBX, RCX, RDX, RSP};
use super::testing::{run, Mode, CODE_BASE, STACK_TOP};
use super::{Activity, StopReason};

#[test]
fn add_sets_result_and_flags_and_costs_one_cycle_each() {
    let bench = run(
        Mode::Protected32,
        &[
            0xB8, 0xFF, 0xFF, 0xFF, 0xFF, // mov eax, 0xFFFFFFFF
            0x83, 0xC0, 0x01, //             add eax, 1
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0);
    let f = bench.cpu.state.rflags;
    assert_eq!(
        f & flags::ARITH,
        flags::CF | flags::ZF | flags::PF | flags::AF
    );
    // mov + add + hlt: two simple instructions and a serializing HLT.
    let timing = crate::timing::TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(2 * timing.simple + timing.serializing)
    );
    assert_eq!(bench.cpu.stats.instructions, 3);
}

#[test]
fn real_mode_push_pop_call_ret_use_the_16_bit_stack() {
    let bench = run(
        Mode::Real,
        &[
            0xB8, 0x34, 0x12, // mov ax, 0x1234
            0x50, //             push ax
            0xE8, 0x01, 0x00, // call +1 (to the pop below the hlt)
            0xF4, //             hlt
            0x5B, //             pop bx      (return address 7)
            0x59, //             pop cx      (0x1234)
            0x53, //             push bx
            0xC3, //             ret
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RBX] & 0xFFFF, 7);
    assert_eq!(bench.cpu.state.regs[RCX] & 0xFFFF, 0x1234);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP);
}

#[test]
fn divide_by_zero_is_delivered_through_the_ivt() {
    // IVT entry 0 → 0x1000:0x0010, which sets BX and halts.
    let mut code = vec![
        0x31, 0xC9, // xor cx, cx
        0xF7, 0xF1, // div cx      → #DE
        0xF4, //       hlt (not reached)
    ];
    code.resize(0x10, 0x90);
    code.extend_from_slice(&[0xBB, 0xEF, 0xBE]); // 0x10: mov bx, 0xBEEF
    let bench = run(Mode::Real, &code, |cpu| {
        cpu.memory().write(0, 4, 0x1000_0010);
    });
    assert_eq!(bench.cpu.state.regs[RBX] & 0xFFFF, 0xBEEF);
    // The saved IP is the DIV's, the saved CS 0x1000.
    assert_eq!(bench.read(STACK_TOP - 2, 2) & flags::FIXED1, flags::FIXED1);
    assert_eq!(bench.read(STACK_TOP - 4, 2), 0x1000);
    assert_eq!(bench.read(STACK_TOP - 6, 2), 2);
    assert_eq!(bench.cpu.stats.exceptions, 1);
}

#[test]
fn every_byte_sequence_ends_without_a_host_panic() {
    // A fault while delivering a fault escalates to shutdown rather than looping forever:
    // an empty IDT in protected mode turns UD2 into #UD → #GP → #DF → triple fault.
    let mut bench = super::testing::Bench::new(Mode::Protected32, &[0x0F, 0x0B]);
    bench.cpu.state.idtr.limit = 0;
    assert_eq!(bench.run(), StopReason::Shutdown);
    assert_eq!(bench.cpu.activity, Activity::Shutdown);
    // Uncovered instructions become #UD and are counted: FNINIT with a real-mode IVT that
    // points #UD at a HLT.
    let bench = run(Mode::Real, &[0xDB, 0xE3], |cpu| {
        cpu.memory().write(6 * 4, 4, ((CODE_BASE >> 4) << 16) | 2);
    });
    assert_eq!(bench.cpu.stats.unsupported, 1);
    assert_eq!(bench.cpu.stats.unsupported_examples.len(), 1);
}

#[test]
fn out_to_the_exit_port_stops_the_run() {
    let mut bench = super::testing::Bench::new(
        Mode::Real,
        &[
            0xB0, 0x07, // mov al, 7
            0xE6, 0xF4, // out 0xf4, al
        ],
    );
    assert_eq!(bench.run(), StopReason::PlatformStop);
    assert_eq!(*bench.platform.writes.lock(), vec![(0xF4, 1, 7)]);
}

#[test]
fn self_modifying_code_runs_the_new_bytes() {
    // The first pass runs `mov dl, 1`; the store rewrites its immediate to 2 and loops back.
    let bench = run(
        Mode::Protected32,
        &[
            0xB2, 0x01, //                               0: mov dl, 1
            0x00, 0xD1, //                               2: add cl, dl
            0xC6, 0x05, 0x01, 0x00, 0x01, 0x00, 0x02, // 4: mov byte [0x10001], 2
            0x80, 0xF9, 0x03, //                         11: cmp cl, 3
            0x75, 0xF0, //                               14: jne 0
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RCX] & 0xFF, 3);
    assert_eq!(bench.cpu.state.regs[RDX] & 0xFF, 2);
}

/// An APIC-bus message from APIC ID 1 to APIC ID 0, for tests that deliver by hand.
fn message(mode: smmsim_devices::DeliveryMode, vector: u8) -> smmsim_devices::Ipi {
    smmsim_devices::Ipi {
        source: smmsim_devices::ApicId(1),
        mode,
        vector,
        destination: smmsim_devices::Destination::Physical(smmsim_devices::ApicId(0)),
        level_assert: true,
    }
}

/// The sixteen x86 conditions in encoding order (SDM Vol. 1 Appendix B, Table B-1), written
/// out from the table rather than shared with the core, so tests check the core against it.
fn condition_holds(cc: usize, f: u64) -> bool {
    use super::state::flags::{CF, OF, PF, SF, ZF};
    let set = |bit: u64| f & bit != 0;
    let positive = match cc / 2 {
        0 => set(OF),
        1 => set(CF),
        2 => set(ZF),
        3 => set(CF) || set(ZF),
        4 => set(SF),
        5 => set(PF),
        6 => set(SF) != set(OF),
        _ => set(ZF) || set(SF) != set(OF),
    };
    positive != (cc % 2 == 1)
}

mod apic;
mod arith;
mod bits;
mod checks;
mod control;
mod data;
mod faults;
mod fuzz;
mod smm;
mod string;
mod system;

#[test]
fn a_store_that_rewrites_the_next_instruction_in_its_block_runs_the_new_bytes() {
    // Both instructions decode into one block; the store patches the second's immediate.
    let bench = run(
        Mode::Protected32,
        &[
            0xC6, 0x05, 0x08, 0x00, 0x01, 0x00, 0x05, // 0: mov byte [0x10008], 5
            0xB0, 0x01, //                               7: mov al, 1 (patched to mov al, 5)
        ],
        |_| {},
    );
    assert_eq!(bench.cpu.state.regs[RAX] & 0xFF, 5);
}

#[test]
fn sixteen_bit_stores_write_two_bytes() {
    let bench = run(
        Mode::Real,
        &[
            0xB8, 0x34, 0x12, //       mov ax, 0x1234
            0xA3, 0x00, 0x01, //       mov [0x100], ax   (DS = 0)
            0x88, 0x26, 0x10, 0x01, // mov [0x110], ah
        ],
        |cpu| cpu.memory().write(0x100, 4, 0xAAAA_AAAA),
    );
    assert_eq!(bench.read(0x100, 4), 0xAAAA_1234);
    assert_eq!(bench.read(0x110, 1), 0x12);
}

#[test]
fn the_cycle_budget_ends_a_run_between_instructions_of_a_block() {
    // Ten NOPs form one block; a budget of three cycles stops after the third.
    let mut bench = super::testing::Bench::new(Mode::Real, &[0x90; 10]);
    assert_eq!(
        bench.cpu.run(&mut bench.cache, smmsim_traces::Cycle(3)),
        StopReason::Budget
    );
    assert_eq!(bench.cpu.stats.instructions, 3);
    assert_eq!(bench.cpu.state.rip, 3);
}
