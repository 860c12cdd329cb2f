//! System-instruction tests: IN/OUT, the flag instructions, CPUID, RDTSC, RDMSR/WRMSR,
//! LGDT/LIDT/SGDT/SIDT at both operand sizes, and moves to and from CR0, CR3 and CR4.

use smmsim_devices::ApicId;
use smmsim_traces::Cycle;

use super::super::state::{cr0, flags, RAX, RBX, RCX, RDI, RDX, RESET_EDX, RSI};
use super::super::testing::{run, Bench, Mode, CODE_BASE};
use super::super::{StopReason, APIC_BASE_DEFAULT};
use super::faults::{
    frame_with_error, install_protected_handlers, install_real_handlers, vector_taken,
    with_handlers,
};
use crate::timing::TimingTable;

#[test]
fn in_and_out_at_every_width() {
    let bench = run(
        Mode::Protected32,
        &[
            0xE4, 0x60, //                   in al, 0x60
            0x88, 0xC3, //                   mov bl, al
            0x66, 0xED, //                   in ax, dx
            0x66, 0x89, 0xC1, //             mov cx, ax
            0xED, //                         in eax, dx
            0x89, 0xC6, //                   mov esi, eax
            0xB8, 0x78, 0x56, 0x34, 0x12, // mov eax, 0x12345678
            0xE6, 0x80, //                   out 0x80, al
            0x66, 0xEF, //                   out dx, ax
            0xEF, //                         out dx, eax
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0xFFFF_FFFF;
            cpu.state.regs[RBX] = 0xBBBB_BBBB;
            cpu.state.regs[RCX] = 0xCCCC_CCCC;
            cpu.state.regs[RDX] = 0xABCD_0CF8;
        },
    );
    let r = &bench.cpu.state.regs;
    // The bench's ports read 0x5A in every byte.
    assert_eq!(r[RBX], 0xBBBB_BB5A);
    assert_eq!(r[RCX], 0xCCCC_5A5A);
    assert_eq!(r[RSI], 0x5A5A_5A5A);
    // The port is DX, not EDX.
    assert_eq!(
        *bench.platform.writes.lock(),
        vec![
            (0x80, 1, 0x78),
            (0x0CF8, 2, 0x5678),
            (0x0CF8, 4, 0x1234_5678)
        ]
    );
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(6 * t.port_io + 4 * t.simple + t.serializing)
    );
}

#[test]
fn real_mode_in_and_out_through_dx() {
    let bench = run(
        Mode::Real,
        &[
            0xEC, // in al, dx
            0xEE, // out dx, al
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0x1234;
            cpu.state.regs[RDX] = 0x3F8;
        },
    );
    assert_eq!(bench.cpu.state.regs[RAX], 0x125A);
    assert_eq!(*bench.platform.writes.lock(), vec![(0x3F8, 1, 0x5A)]);
}

#[test]
fn flag_instructions_set_clear_and_complement() {
    let steps: &[(&[u8], u64, u64)] = &[
        // (code, flags before, flags after)
        (&[0xF9], 0, flags::CF),                     // stc
        (&[0xF8], flags::CF | flags::ZF, flags::ZF), // clc
        (&[0xF5], flags::CF, 0),                     // cmc
        (&[0xF5], 0, flags::CF),                     // cmc
        (&[0xFD], flags::SF, flags::SF | flags::DF), // std
        (&[0xFC], flags::DF | flags::CF, flags::CF), // cld
        (&[0xFB], 0, flags::IF),                     // sti
        (&[0xFA], flags::IF | flags::OF, flags::OF), // cli
    ];
    let t = TimingTable::default();
    for mode in [Mode::Real, Mode::Protected32] {
        for &(code, before, after) in steps {
            let bench = run(mode, code, |cpu| cpu.state.rflags = flags::FIXED1 | before);
            assert_eq!(bench.cpu.state.rflags, flags::FIXED1 | after, "{code:02x?}");
            assert_eq!(bench.cpu.cycle, u64::from(t.simple + t.serializing));
        }
    }
}

/// Runs CPUID with EAX = `leaf` on a core with APIC ID `apic_id`; returns EAX, EBX, ECX, EDX.
fn cpuid(leaf: u64, apic_id: u32, apic_base: u64) -> [u64; 4] {
    const CPUID: &[u8] = &[0x0F, 0xA2]; // cpuid
    let bench = run(Mode::Protected32, CPUID, |cpu| {
        cpu.apic_id = ApicId(apic_id);
        cpu.apic_base_msr = apic_base;
        cpu.state.regs[RAX] = leaf;
        cpu.state.regs[RCX] = 0;
    });
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(2 * t.serializing),
        "CPUID serializes"
    );
    let r = &bench.cpu.state.regs;
    [r[RAX], r[RBX], r[RCX], r[RDX]]
}

#[test]
fn cpuid_leaf_0_reports_the_highest_leaf_and_authentic_amd() {
    let [max_leaf, ebx, ecx, edx] = cpuid(0, 0, APIC_BASE_DEFAULT);
    assert!(max_leaf >= 1);
    // The vendor string is EBX, EDX, ECX in that order.
    let vendor: Vec<u8> = [ebx, edx, ecx]
        .iter()
        .flat_map(|r| (*r as u32).to_le_bytes())
        .collect();
    assert_eq!(vendor, b"AuthenticAMD");
}

#[test]
fn cpuid_leaf_1_reports_signature_apic_id_and_features() {
    let [signature, ebx, ecx, edx] = cpuid(1, 0x2A, APIC_BASE_DEFAULT);
    // qemu64: family 15, model 107 (extended model 6, model 0xB), stepping 1 — the same
    // value as EDX after RESET.
    assert_eq!(signature, 0x0006_0FB1);
    assert_eq!(signature, RESET_EDX);
    // EBX[31:24]: initial APIC ID; EBX[15:8]: CLFLUSH line size in 8-byte units.
    assert_eq!(ebx >> 24, 0x2A);
    assert_eq!((ebx >> 8) & 0xFF, 8);
    // EDX: FPU, TSC, MSR, CX8, APIC, CMOV; ECX: the hypervisor bit QEMU sets.
    for bit in [0, 4, 5, 8, 9, 15] {
        assert_ne!(edx & (1 << bit), 0, "leaf 1 EDX bit {bit}");
    }
    assert_ne!(ecx & (1 << 31), 0);
    // With the APIC globally disabled in IA32_APIC_BASE, the APIC feature bit reads 0.
    let [_, _, _, edx] = cpuid(1, 0x2A, APIC_BASE_DEFAULT & !(1 << 11));
    assert_eq!(edx & (1 << 9), 0);
}

#[test]
fn rdtsc_returns_the_cycle_counter_at_that_instruction() {
    let mut bench = Bench::new(
        Mode::Protected32,
        &[
            0x90, //       nop
            0x90, //       nop
            0x0F, 0x31, // rdtsc
            0x89, 0xC6, // mov esi, eax
            0x89, 0xD7, // mov edi, edx
            0x0F, 0x31, // rdtsc
        ],
    );
    // Start just below 2^32 so the second half of the counter shows in EDX.
    const START: u64 = 0xFFFF_FFF0;
    bench.cpu.cycle = START;
    assert_eq!(
        bench.cpu.run(&mut bench.cache, Cycle(START + 10_000)),
        StopReason::Halted
    );
    let t = TimingTable::default();
    let r = &bench.cpu.state.regs;
    // The counter includes the RDTSC's own cost, charged before it runs.
    let first = START + u64::from(2 * t.simple + t.serializing);
    assert_eq!((r[RDI] << 32) | r[RSI], first);
    let second = first + u64::from(2 * t.simple + t.serializing);
    assert_eq!((r[RDX] << 32) | r[RAX], second);
    assert_eq!(r[RDX], 1);
    assert_eq!(bench.cpu.cycle, second + u64::from(t.serializing));
}

#[test]
fn writing_the_tsc_msr_does_not_move_the_core_cycle_counter() {
    // The cycle counter is the core's simulated time: the run budget and every time stamp a
    // device sees come from it. A guest WRMSR to IA32_TIME_STAMP_COUNTER (0x10) changes
    // what RDTSC returns (SDM Vol. 3B §18.17); KVM does it with a TSC offset
    // (`kvm_set_msr_common`, MSR_IA32_TSC). It must not rewind time.
    let bench = run(
        Mode::Protected32,
        &[
            0xB9, 0x10, 0x00, 0x00, 0x00, // mov ecx, 0x10
            0x31, 0xC0, //                   xor eax, eax
            0x31, 0xD2, //                   xor edx, edx
            0x0F, 0x30, //                   wrmsr
        ],
        |cpu| cpu.cycle = 1_000,
    );
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        1_000 + u64::from(3 * t.simple + 2 * t.serializing)
    );
}

#[test]
fn rdmsr_and_wrmsr_of_the_apic_base() {
    let bench = run(
        Mode::Real,
        &[
            0x66, 0xB9, 0x1B, 0x00, 0x00, 0x00, // mov ecx, 0x1B
            0x0F, 0x32, //                         rdmsr
            0x66, 0x89, 0xC6, //                   mov esi, eax
            0x66, 0x89, 0xD7, //                   mov edi, edx
            0x66, 0xB8, 0x00, 0x00, 0xD0, 0xFE, // mov eax, 0xFED00000
            0x0F, 0x30, //                         wrmsr
            0x0F, 0x32, //                         rdmsr
        ],
        |_| {},
    );
    let r = &bench.cpu.state.regs;
    // After RESET on CPU 0: base 0xFEE00000, enabled (bit 11), BSP (bit 8).
    assert_eq!((r[RSI], r[RDI]), (0xFEE0_0900, 0));
    // The write moved the base and cleared the enable bit; BSP is read-only and stays.
    assert_eq!((r[RAX], r[RDX]), (0xFED0_0100, 0));
    assert_eq!(bench.cpu.apic_base_msr, 0xFED0_0100);
    let t = TimingTable::default();
    assert_eq!(bench.cpu.cycle, u64::from(4 * t.simple + 4 * t.serializing));
}

#[test]
fn an_unknown_msr_or_a_reserved_apic_base_bit_raises_gp_zero() {
    for (code, ecx, eax) in [
        (&[0x0F, 0x32], 0x1234_5678, 0),    // rdmsr
        (&[0x0F, 0x30], 0xC000_0FFF, 0),    // wrmsr
        (&[0x0F, 0x30], 0x1B, 0xFEE0_0801), // wrmsr (bit 0 is reserved)
    ] {
        let bench = run(Mode::Protected32, &with_handlers(code), |cpu| {
            install_protected_handlers(cpu);
            cpu.state.regs[RCX] = ecx;
            cpu.state.regs[RAX] = eax;
            cpu.state.regs[RDX] = 0;
        });
        assert_eq!(vector_taken(&bench), Some(13), "{code:02x?} ECX={ecx:#x}");
        let (error, eip, _, _) = frame_with_error(&bench);
        assert_eq!((error, eip), (0, CODE_BASE), "{code:02x?} ECX={ecx:#x}");
        assert_eq!(bench.cpu.apic_base_msr & 1, 0);
    }
}

#[test]
fn lgdt_and_lidt_take_24_or_32_base_bits_by_operand_size() {
    let bench = run(
        Mode::Real,
        &[
            0x0F, 0x01, 0x16, 0x00, 0x02, // lgdt [0x200]
            0x0F, 0x01, 0x1E, 0x10, 0x02, // lidt [0x210]
        ],
        |cpu| {
            cpu.memory().write(0x200, 2, 0x1234);
            cpu.memory().write(0x202, 4, 0xAABB_CCDD);
            cpu.memory().write(0x210, 2, 0x03FF);
            cpu.memory().write(0x212, 4, 0x1122_3344);
        },
    );
    let s = &bench.cpu.state;
    assert_eq!((s.gdtr.base, s.gdtr.limit), (0x00BB_CCDD, 0x1234));
    assert_eq!((s.idtr.base, s.idtr.limit), (0x0022_3344, 0x03FF));
    let bench = run(
        Mode::Real,
        &[
            0x66, 0x0F, 0x01, 0x16, 0x00, 0x02, // o32 lgdt [0x200]
            0x66, 0x0F, 0x01, 0x1E, 0x10, 0x02, // o32 lidt [0x210]
        ],
        |cpu| {
            cpu.memory().write(0x200, 2, 0x1234);
            cpu.memory().write(0x202, 4, 0xAABB_CCDD);
            cpu.memory().write(0x210, 2, 0x03FF);
            cpu.memory().write(0x212, 4, 0x1122_3344);
        },
    );
    let s = &bench.cpu.state;
    assert_eq!((s.gdtr.base, s.gdtr.limit), (0xAABB_CCDD, 0x1234));
    assert_eq!((s.idtr.base, s.idtr.limit), (0x1122_3344, 0x03FF));
    let t = TimingTable::default();
    assert_eq!(bench.cpu.cycle, u64::from(3 * t.serializing));
}

#[test]
fn sgdt_and_sidt_store_limit_and_base_in_protected_mode() {
    let bench = run(
        Mode::Protected32,
        &[
            0x0F, 0x01, 0x13, //       lgdt [ebx]
            0x0F, 0x01, 0x4B, 0x08, // sidt [ebx+8]
            0x0F, 0x01, 0x43, 0x10, // sgdt [ebx+16]
        ],
        |cpu| {
            cpu.state.regs[RBX] = 0x3000;
            cpu.state.idtr.base = 0xFEDC_BA98;
            cpu.state.idtr.limit = 0x7FF;
            cpu.memory().write(0x3000, 2, 0x0047);
            cpu.memory().write(0x3002, 4, 0x0012_3456);
        },
    );
    assert_eq!(bench.read(0x3008, 2), 0x7FF);
    assert_eq!(bench.read(0x300A, 4), 0xFEDC_BA98);
    assert_eq!(bench.read(0x3010, 2), 0x47);
    assert_eq!(bench.read(0x3012, 4), 0x0012_3456);
    let t = TimingTable::default();
    assert_eq!(bench.cpu.cycle, u64::from(2 * t.serializing + 2 * t.store));
}

#[test]
fn sgdt_and_sidt_with_a_16_bit_operand_store_the_full_32_bit_base() {
    // SDM Vol. 2B, SGDT: "IF OperandSize = 16 or OperandSize = 32 … DEST[16:47] := GDTR(Base);
    // (* Full 32-bit base address stored *)". QEMU agrees since 2023 (`translate.c`: "all
    // 32-bits are written regardless of operand size"); only LGDT/LIDT drop the top byte.
    let bench = run(
        Mode::Real,
        &[
            0x0F, 0x01, 0x06, 0x00, 0x03, //       sgdt [0x300]
            0x66, 0x0F, 0x01, 0x06, 0x08, 0x03, // o32 sgdt [0x308]
            0x0F, 0x01, 0x0E, 0x10, 0x03, //       sidt [0x310]
            0x66, 0x0F, 0x01, 0x0E, 0x18, 0x03, // o32 sidt [0x318]
        ],
        |cpu| {
            cpu.state.gdtr.base = 0xAABB_CCDD;
            cpu.state.gdtr.limit = 0x1234;
            cpu.state.idtr.base = 0x1122_3344;
            cpu.state.idtr.limit = 0x03FF;
        },
    );
    let stored: Vec<(u64, u64)> = [0x300, 0x308, 0x310, 0x318]
        .iter()
        .map(|&at| (bench.read(at, 2), bench.read(at + 2, 4)))
        .collect();
    assert_eq!(
        stored,
        [
            (0x1234, 0xAABB_CCDD),
            (0x1234, 0xAABB_CCDD),
            (0x03FF, 0x1122_3344),
            (0x03FF, 0x1122_3344)
        ],
        "(limit, base) stored by SGDT, o32 SGDT, SIDT, o32 SIDT"
    );
}

#[test]
fn control_registers_read_back_what_was_written_with_et_forced() {
    let bench = run(
        Mode::Real,
        &[
            0x0F, 0x20, 0xC0, //                   mov eax, cr0
            0x66, 0x89, 0xC6, //                   mov esi, eax
            0x66, 0x31, 0xC0, //                   xor eax, eax
            0x0F, 0x22, 0xC0, //                   mov cr0, eax
            0x0F, 0x20, 0xC7, //                   mov edi, cr0
            0x66, 0xB8, 0x00, 0x50, 0x34, 0x12, // mov eax, 0x12345000
            0x0F, 0x22, 0xD8, //                   mov cr3, eax
            0x0F, 0x20, 0xDB, //                   mov ebx, cr3
            0x66, 0xB8, 0x20, 0x02, 0x00, 0x00, // mov eax, 0x220
            0x0F, 0x22, 0xE0, //                   mov cr4, eax
            0x0F, 0x20, 0xE1, //                   mov ecx, cr4
        ],
        |_| {},
    );
    let r = &bench.cpu.state.regs;
    // RESET value: CD, NW, ET.
    assert_eq!(r[RSI], cr0::CD | cr0::NW | cr0::ET);
    // Writing 0 leaves ET = 1 (SDM Vol. 3A §2.5: ET is reserved and fixed at 1).
    assert_eq!(r[RDI], cr0::ET);
    assert_eq!(bench.cpu.state.cr0, cr0::ET);
    assert_eq!(r[RBX], 0x1234_5000);
    // PAE and OSFXSR.
    assert_eq!(r[RCX], 0x220);
    assert_eq!(bench.cpu.state.cr4, 0x220);
}

#[test]
fn setting_cr0_pg_is_reported_as_uncovered() {
    // MOV CR0 with PE | PG: paging is not modelled, so #UD, counted as uncovered; CR0 keeps
    // its value.
    let bench = run(
        Mode::Real,
        &with_handlers(&[0x0F, 0x22, 0xC0]), // mov cr0, eax
        |cpu| {
            install_real_handlers(cpu);
            cpu.state.regs[RAX] = cr0::PG | cr0::PE | cr0::ET;
        },
    );
    assert_eq!(vector_taken(&bench), Some(6));
    assert_eq!(bench.cpu.stats.unsupported, 1);
    assert_eq!(bench.cpu.state.cr0, cr0::AT_RESET);
}

#[test]
fn invalid_cr0_and_cr4_values_raise_gp_zero() {
    for (code, eax) in [
        (&[0x0F, 0x22, 0xC0], cr0::PG | cr0::ET), // mov cr0, eax (PG without PE)
        (&[0x0F, 0x22, 0xC0], cr0::NW | cr0::ET), // mov cr0, eax (NW without CD)
        (&[0x0F, 0x22, 0xE0], 1 << 13),           // mov cr4, eax (VMXE)
        (&[0x0F, 0x22, 0xE0], 1 << 22),           // mov cr4, eax (reserved)
    ] {
        let bench = run(Mode::Protected32, &with_handlers(code), |cpu| {
            install_protected_handlers(cpu);
            cpu.state.regs[RAX] = eax;
        });
        assert_eq!(vector_taken(&bench), Some(13), "{code:02x?} EAX={eax:#x}");
        assert_eq!(frame_with_error(&bench).0, 0);
        assert_eq!(bench.cpu.state.cr4, 0);
        assert_eq!(bench.cpu.state.cr0, cr0::AT_RESET | cr0::PE);
        assert_eq!(bench.cpu.stats.unsupported, 0);
    }
}
