//! The core's side of the local APIC: ICR writes becoming IPIs in the outbox, INIT and SIPI
//! state transitions, and fixed interrupts waking HLT through the IVT.

use smmsim_devices::{ApicId, DeliveryMode, Destination, Ipi};
use smmsim_traces::Cycle;

use super::super::state::{flags, SegReg, RAX, RBX};
use super::super::testing::{Bench, Mode, CODE_BASE};
use super::super::{Activity, StopReason, DEFAULT_IPI_LATENCY_CYCLES};
use super::message;

#[test]
fn an_icr_write_puts_a_timed_ipi_in_the_outbox() {
    let mut bench = Bench::new(
        Mode::Protected32,
        &[
            0xC7, 0x05, 0x10, 0x03, 0xE0, 0xFE, 0x00, 0x00, 0x00,
            0x03, // mov dword [0xFEE00310], 3<<24
            0xC7, 0x05, 0x00, 0x03, 0xE0, 0xFE, 0x08, 0x46, 0x00,
            0x00, // mov dword [0xFEE00300], 0x4608
        ],
    );
    assert_eq!(bench.run(), StopReason::Halted);
    let (at, sent) = bench.cpu.outbox[0];
    assert_eq!(sent.mode, DeliveryMode::Startup);
    assert_eq!(sent.vector, 0x08);
    assert_eq!(sent.destination, Destination::Physical(ApicId(3)));
    // Sent during the second MOV; delivered one latency later.
    assert!(
        at.0 > DEFAULT_IPI_LATENCY_CYCLES && at.0 <= bench.cpu.cycle + DEFAULT_IPI_LATENCY_CYCLES
    );
    assert_eq!(bench.cpu.stats.ipis_sent, 1);
}

#[test]
fn init_waits_for_sipi_and_sipi_starts_at_the_vector_page() {
    let mut bench = Bench::new(Mode::Protected32, &[0x90]);
    bench.cpu.state.regs[RBX] = 0x1234;
    bench
        .cpu
        .receive(Cycle(500), &message(DeliveryMode::Init, 0));
    assert_eq!(bench.cpu.activity, Activity::WaitForSipi);
    assert_eq!(bench.cpu.state.regs[RBX], 0, "INIT resets the registers");
    assert!(
        !bench.cpu.state.protected_mode(),
        "INIT returns to real mode"
    );
    assert_eq!(bench.run(), StopReason::WaitForSipi);

    bench
        .cpu
        .receive(Cycle(2_000), &message(DeliveryMode::Startup, 0x9A));
    assert_eq!(bench.cpu.activity, Activity::Running);
    let cs = bench.cpu.state.seg(SegReg::Cs);
    assert_eq!(
        (cs.selector, cs.base, bench.cpu.state.rip),
        (0x9A00, 0x9A000, 0)
    );
    assert_eq!(
        bench.cpu.cycle, 2_000,
        "the waiting core's clock jumps to the delivery"
    );
    assert_eq!(bench.cpu.stats.halted_cycles, 2_000);

    // A second SIPI to a running core is ignored.
    bench
        .cpu
        .receive(Cycle(2_100), &message(DeliveryMode::Startup, 0x10));
    assert_eq!(bench.cpu.state.seg(SegReg::Cs).selector, 0x9A00);
}

#[test]
fn init_deassert_is_a_no_op() {
    let mut bench = Bench::new(Mode::Real, &[0x90]);
    let deassert = Ipi {
        level_assert: false,
        ..message(DeliveryMode::Init, 0)
    };
    bench.cpu.receive(Cycle(10), &deassert);
    assert_eq!(bench.cpu.activity, Activity::Running);
}

#[test]
fn a_fixed_interrupt_wakes_hlt_and_runs_its_ivt_handler() {
    // sti; hlt; (handler at 0x10) mov ax, 0x7777; hlt
    let mut code = vec![0xFB, 0xF4];
    code.resize(0x10, 0x90);
    code.extend_from_slice(&[0xB8, 0x77, 0x77]);
    let mut bench = Bench::new(Mode::Real, &code);
    let vector = 0x40u64;
    bench
        .cpu
        .memory()
        .write(vector * 4, 4, ((CODE_BASE >> 4) << 16) | 0x10);
    // Software-enable the APIC (SVR bit 8), as firmware does before taking interrupts.
    bench.cpu.apic.mmio_write(0xF0, 0x1FF);
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(bench.cpu.activity, Activity::Halted);

    bench
        .cpu
        .receive(Cycle(5_000), &message(DeliveryMode::Fixed, vector as u8));
    assert_eq!(
        bench.cpu.activity,
        Activity::Running,
        "IF = 1: the interrupt wakes HLT"
    );
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(bench.cpu.state.regs[RAX] & 0xFFFF, 0x7777);
    assert_eq!(
        bench.cpu.state.rflags & flags::IF,
        0,
        "the IVT entry clears IF"
    );
}

#[test]
fn a_fixed_interrupt_does_not_wake_hlt_with_interrupts_off() {
    let mut bench = Bench::new(Mode::Real, &[0xFA, 0xF4]); // cli; hlt
    bench.cpu.apic.mmio_write(0xF0, 0x1FF);
    assert_eq!(bench.run(), StopReason::Halted);
    bench
        .cpu
        .receive(Cycle(5_000), &message(DeliveryMode::Fixed, 0x40));
    assert_eq!(bench.cpu.activity, Activity::Halted);
}

#[test]
fn x2apic_msrs_need_x2apic_mode() {
    // rdmsr 0x802 (x2APIC ID) outside x2APIC mode → #GP through the IVT entry 13.
    let mut code = vec![0x66, 0xB9, 0x02, 0x08, 0x00, 0x00, 0x0F, 0x32]; // mov ecx, 0x802; rdmsr
    code.resize(0x20, 0x90);
    code.extend_from_slice(&[0xBB, 0x0D, 0x00]); // 0x20: mov bx, 13
    let mut bench = Bench::new(Mode::Real, &code);
    bench
        .cpu
        .memory()
        .write(13 * 4, 4, ((CODE_BASE >> 4) << 16) | 0x20);
    assert_eq!(bench.run(), StopReason::Halted);
    assert_eq!(bench.cpu.state.regs[RBX] & 0xFFFF, 13);
}
