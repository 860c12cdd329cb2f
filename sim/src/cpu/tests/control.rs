//! Control-transfer tests: Jcc for all sixteen conditions, near JMP/CALL/RET through
//! relative, register and memory targets, RET imm16, far JMP/CALL/RETF in real mode and
//! through a GDT in protected mode, the LOOP family and JCXZ/JECXZ, INT n/IRET, INT3 and INTO.

use super::super::state::{flags, SegReg, RAX, RBX, RCX, RDI, RDX, RSI, RSP};
use super::super::testing::{run, Mode, CODE_BASE, STACK_TOP};
use super::condition_holds;
use super::faults::{
    gate, install_gdt, sel, set_gate, IDT_BASE, INTERRUPT_GATE, SEGMENT_BASE, TRAP_GATE,
};
use crate::timing::TimingTable;

use flags::{CF, OF, PF, SF, ZF};

/// Scratch data for the protected-mode tests.
const DATA: u64 = 0x2000;

/// Runs `code`, which stores 1 at [EBX + cc] for each condition cc whose branch it took,
/// under every combination of the five status flags.
fn check_jcc(code: &[u8]) {
    for bits in 0u64..32 {
        let f = [CF, ZF, SF, OF, PF]
            .iter()
            .enumerate()
            .filter(|&(i, _)| bits & (1 << i) != 0)
            .fold(0, |f, (_, &flag)| f | flag);
        let bench = run(Mode::Protected32, code, |cpu| {
            cpu.state.regs[RBX] = DATA;
            cpu.state.rflags = flags::FIXED1 | f;
        });
        for cc in 0..16 {
            assert_eq!(
                bench.read(DATA + cc as u64, 1) == 1,
                condition_holds(cc, f),
                "Jcc {cc:#x} with flags {f:#x}"
            );
        }
    }
}

#[test]
fn short_jcc_covers_all_sixteen_conditions() {
    check_jcc(&[
        0x70, 0x02, //             jo t0
        0xEB, 0x03, //             jmp n0
        0xC6, 0x03, 0x01, //       t0: mov byte [ebx], 1
        0x71, 0x02, //             n0: jno t1
        0xEB, 0x04, //             jmp n1
        0xC6, 0x43, 0x01, 0x01, // t1: mov byte [ebx+1], 1
        0x72, 0x02, //             n1: jb t2
        0xEB, 0x04, //             jmp n2
        0xC6, 0x43, 0x02, 0x01, // t2: mov byte [ebx+2], 1
        0x73, 0x02, //             n2: jae t3
        0xEB, 0x04, //             jmp n3
        0xC6, 0x43, 0x03, 0x01, // t3: mov byte [ebx+3], 1
        0x74, 0x02, //             n3: je t4
        0xEB, 0x04, //             jmp n4
        0xC6, 0x43, 0x04, 0x01, // t4: mov byte [ebx+4], 1
        0x75, 0x02, //             n4: jne t5
        0xEB, 0x04, //             jmp n5
        0xC6, 0x43, 0x05, 0x01, // t5: mov byte [ebx+5], 1
        0x76, 0x02, //             n5: jbe t6
        0xEB, 0x04, //             jmp n6
        0xC6, 0x43, 0x06, 0x01, // t6: mov byte [ebx+6], 1
        0x77, 0x02, //             n6: ja t7
        0xEB, 0x04, //             jmp n7
        0xC6, 0x43, 0x07, 0x01, // t7: mov byte [ebx+7], 1
        0x78, 0x02, //             n7: js t8
        0xEB, 0x04, //             jmp n8
        0xC6, 0x43, 0x08, 0x01, // t8: mov byte [ebx+8], 1
        0x79, 0x02, //             n8: jns t9
        0xEB, 0x04, //             jmp n9
        0xC6, 0x43, 0x09, 0x01, // t9: mov byte [ebx+9], 1
        0x7A, 0x02, //             n9: jp t10
        0xEB, 0x04, //             jmp n10
        0xC6, 0x43, 0x0A, 0x01, // t10: mov byte [ebx+10], 1
        0x7B, 0x02, //             n10: jnp t11
        0xEB, 0x04, //             jmp n11
        0xC6, 0x43, 0x0B, 0x01, // t11: mov byte [ebx+11], 1
        0x7C, 0x02, //             n11: jl t12
        0xEB, 0x04, //             jmp n12
        0xC6, 0x43, 0x0C, 0x01, // t12: mov byte [ebx+12], 1
        0x7D, 0x02, //             n12: jge t13
        0xEB, 0x04, //             jmp n13
        0xC6, 0x43, 0x0D, 0x01, // t13: mov byte [ebx+13], 1
        0x7E, 0x02, //             n13: jle t14
        0xEB, 0x04, //             jmp n14
        0xC6, 0x43, 0x0E, 0x01, // t14: mov byte [ebx+14], 1
        0x7F, 0x02, //             n14: jg t15
        0xEB, 0x04, //             jmp n15
        0xC6, 0x43, 0x0F, 0x01, // t15: mov byte [ebx+15], 1
        0x90, //                   n15: nop
    ]);
}

#[test]
fn near_jcc_covers_all_sixteen_conditions() {
    check_jcc(&[
        0x0F, 0x80, 0x02, 0x00, 0x00, 0x00, // jo near t0
        0xEB, 0x03, //                         jmp n0
        0xC6, 0x03, 0x01, //                   t0: mov byte [ebx], 1
        0x0F, 0x81, 0x02, 0x00, 0x00, 0x00, // n0: jno near t1
        0xEB, 0x04, //                         jmp n1
        0xC6, 0x43, 0x01, 0x01, //             t1: mov byte [ebx+1], 1
        0x0F, 0x82, 0x02, 0x00, 0x00, 0x00, // n1: jb near t2
        0xEB, 0x04, //                         jmp n2
        0xC6, 0x43, 0x02, 0x01, //             t2: mov byte [ebx+2], 1
        0x0F, 0x83, 0x02, 0x00, 0x00, 0x00, // n2: jae near t3
        0xEB, 0x04, //                         jmp n3
        0xC6, 0x43, 0x03, 0x01, //             t3: mov byte [ebx+3], 1
        0x0F, 0x84, 0x02, 0x00, 0x00, 0x00, // n3: je near t4
        0xEB, 0x04, //                         jmp n4
        0xC6, 0x43, 0x04, 0x01, //             t4: mov byte [ebx+4], 1
        0x0F, 0x85, 0x02, 0x00, 0x00, 0x00, // n4: jne near t5
        0xEB, 0x04, //                         jmp n5
        0xC6, 0x43, 0x05, 0x01, //             t5: mov byte [ebx+5], 1
        0x0F, 0x86, 0x02, 0x00, 0x00, 0x00, // n5: jbe near t6
        0xEB, 0x04, //                         jmp n6
        0xC6, 0x43, 0x06, 0x01, //             t6: mov byte [ebx+6], 1
        0x0F, 0x87, 0x02, 0x00, 0x00, 0x00, // n6: ja near t7
        0xEB, 0x04, //                         jmp n7
        0xC6, 0x43, 0x07, 0x01, //             t7: mov byte [ebx+7], 1
        0x0F, 0x88, 0x02, 0x00, 0x00, 0x00, // n7: js near t8
        0xEB, 0x04, //                         jmp n8
        0xC6, 0x43, 0x08, 0x01, //             t8: mov byte [ebx+8], 1
        0x0F, 0x89, 0x02, 0x00, 0x00, 0x00, // n8: jns near t9
        0xEB, 0x04, //                         jmp n9
        0xC6, 0x43, 0x09, 0x01, //             t9: mov byte [ebx+9], 1
        0x0F, 0x8A, 0x02, 0x00, 0x00, 0x00, // n9: jp near t10
        0xEB, 0x04, //                         jmp n10
        0xC6, 0x43, 0x0A, 0x01, //             t10: mov byte [ebx+10], 1
        0x0F, 0x8B, 0x02, 0x00, 0x00, 0x00, // n10: jnp near t11
        0xEB, 0x04, //                         jmp n11
        0xC6, 0x43, 0x0B, 0x01, //             t11: mov byte [ebx+11], 1
        0x0F, 0x8C, 0x02, 0x00, 0x00, 0x00, // n11: jl near t12
        0xEB, 0x04, //                         jmp n12
        0xC6, 0x43, 0x0C, 0x01, //             t12: mov byte [ebx+12], 1
        0x0F, 0x8D, 0x02, 0x00, 0x00, 0x00, // n12: jge near t13
        0xEB, 0x04, //                         jmp n13
        0xC6, 0x43, 0x0D, 0x01, //             t13: mov byte [ebx+13], 1
        0x0F, 0x8E, 0x02, 0x00, 0x00, 0x00, // n13: jle near t14
        0xEB, 0x04, //                         jmp n14
        0xC6, 0x43, 0x0E, 0x01, //             t14: mov byte [ebx+14], 1
        0x0F, 0x8F, 0x02, 0x00, 0x00, 0x00, // n14: jg near t15
        0xEB, 0x04, //                         jmp n15
        0xC6, 0x43, 0x0F, 0x01, //             t15: mov byte [ebx+15], 1
        0x90, //                               n15: nop
    ]);
}

#[test]
fn branches_cost_the_same_taken_or_not() {
    let t = TimingTable::default();
    for flags_in in [0, ZF] {
        let bench = run(
            Mode::Protected32,
            &[
                0x74, 0x00, // jz t
                0x90, //       t: nop
            ],
            |cpu| cpu.state.rflags |= flags_in,
        );
        assert_eq!(
            bench.cpu.cycle,
            u64::from(t.branch + t.simple + t.serializing)
        );
    }
}

#[test]
fn real_mode_branches_wrap_ip_at_64_kib() {
    // A near JMP backwards from offset 0 lands at 0xFFF0 in the same segment.
    let bench = run(
        Mode::Real,
        &[0xE9, 0xED, 0xFF], // jmp 0xfff0 (rel16 −0x13)
        |cpu| cpu.memory().write(CODE_BASE + 0xFFF0, 1, 0xF4), // hlt
    );
    assert_eq!(bench.cpu.state.rip, 0xFFF1);
    assert_eq!(bench.cpu.state.seg(SegReg::Cs).base, CODE_BASE);
    // A short Jcc and a near Jcc with rel16.
    let bench = run(
        Mode::Real,
        &[
            0x74, 0x02, //             jz short t1
            0xB0, 0x01, //             mov al, 1
            0x0F, 0x85, 0x02, 0x00, // t1: jnz near t2
            0xB3, 0x01, //             mov bl, 1
            0x90, //                   t2: nop
        ],
        |cpu| cpu.state.rflags |= ZF,
    );
    assert_eq!(bench.cpu.state.regs[RAX] & 0xFF, 0);
    assert_eq!(bench.cpu.state.regs[RBX] & 0xFF, 1);
}

#[test]
fn jmp_through_registers_and_memory() {
    let bench = run(
        Mode::Protected32,
        &[
            0xB8, 0x0C, 0x00, 0x01, 0x00, //       mov eax, t1
            0xFF, 0xE0, //                         jmp eax
            0xB9, 0x01, 0x00, 0x00, 0x00, //       mov ecx, 1
            0xC7, 0x03, 0x19, 0x00, 0x01, 0x00, // t1: mov dword [ebx], t2
            0xFF, 0x23, //                         jmp [ebx]
            0xB9, 0x02, 0x00, 0x00, 0x00, //       mov ecx, 2
            0xEB, 0x05, //                         t2: jmp short t3
            0xB9, 0x03, 0x00, 0x00, 0x00, //       mov ecx, 3
            0xBA, 0x77, 0x00, 0x00, 0x00, //       t3: mov edx, 0x77
        ],
        |cpu| cpu.state.regs[RBX] = DATA,
    );
    assert_eq!(bench.cpu.state.regs[RCX], 0);
    assert_eq!(bench.cpu.state.regs[RDX], 0x77);
    // A 16-bit JMP r/m16 in 32-bit code clears the upper half of EIP.
    let bench = run(
        Mode::Protected32,
        &[0x66, 0xFF, 0xE0], // jmp ax
        |cpu| {
            cpu.state.regs[RAX] = 0xFFFF_0100;
            cpu.memory().write(0x100, 1, 0xF4); // hlt
        },
    );
    assert_eq!(bench.cpu.state.rip, 0x101);
    // Real mode: JMP r16 and JMP m16.
    let bench = run(
        Mode::Real,
        &[
            0xB8, 0x08, 0x00, //       mov ax, t1
            0xFF, 0xE0, //             jmp ax
            0xB9, 0x01, 0x00, //       mov cx, 1
            0xC7, 0x07, 0x11, 0x00, // t1: mov word [bx], t2
            0xFF, 0x27, //             jmp [bx]
            0xB9, 0x02, 0x00, //       mov cx, 2
            0x90, //                   t2: nop
        ],
        |cpu| {
            cpu.state.regs[RBX] = 0x300;
            cpu.state.regs[RCX] = 0;
        },
    );
    assert_eq!(bench.cpu.state.regs[RCX], 0);
}

#[test]
fn near_call_and_ret_through_relative_register_and_memory_targets() {
    let bench = run(
        Mode::Protected32,
        &[
            0xE8, 0x1B, 0x00, 0x00, 0x00, //       call f1
            0x89, 0xC6, //                         mov esi, eax
            0xB8, 0x24, 0x00, 0x01, 0x00, //       mov eax, f2
            0xFF, 0xD0, //                         call eax
            0xC7, 0x03, 0x24, 0x00, 0x01, 0x00, // mov dword [ebx], f2
            0xFF, 0x13, //                         call [ebx]
            0x6A, 0x11, //                         push 0x11
            0x6A, 0x22, //                         push 0x22
            0xE8, 0x07, 0x00, 0x00, 0x00, //       call f3
            0xF4, //                               hlt
            0x8B, 0x04, 0x24, //                   f1: mov eax, [esp]
            0xC3, //                               ret
            0x41, //                               f2: inc ecx
            0xC3, //                               ret
            0x8B, 0x7C, 0x24, 0x04, //             f3: mov edi, [esp+4]
            0xC2, 0x08, 0x00, //                   ret 8
        ],
        |cpu| {
            cpu.state.regs[RBX] = DATA;
            cpu.state.regs[RCX] = 0;
        },
    );
    let r = &bench.cpu.state.regs;
    // The return address of the first CALL is the next instruction (5 bytes in).
    assert_eq!(r[RSI], CODE_BASE + 5);
    assert_eq!(r[RCX], 2);
    // RET 8 popped the two arguments too.
    assert_eq!(r[RDI], 0x22);
    assert_eq!(r[RSP], STACK_TOP);
}

#[test]
fn real_mode_call_through_a_register_and_ret_imm16() {
    let bench = run(
        Mode::Real,
        &[
            0x68, 0x34, 0x12, // push 0x1234
            0xB8, 0x09, 0x00, // mov ax, f
            0xFF, 0xD0, //       call ax
            0xF4, //             hlt
            0x5A, //             f: pop dx
            0x52, //             push dx
            0xC2, 0x02, 0x00, // ret 2
        ],
        |_| {},
    );
    // The return address pushed by CALL AX (3 + 3 + 2 = 8), then RET 2 dropped the 0x1234.
    assert_eq!(bench.cpu.state.regs[RDX] & 0xFFFF, 8);
    assert_eq!(bench.cpu.state.regs[RSP], STACK_TOP);
    assert_eq!(bench.cpu.state.rip, 9);
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(2 * t.store + t.simple + 2 * t.branch + t.load + t.serializing)
    );
}

#[test]
fn real_mode_far_call_jmp_and_retf() {
    let bench = run(
        Mode::Real,
        &[
            0x9A, 0x10, 0x00, 0x00, 0x20, // call 0x2000:0x0010
            0xBB, 0x00, 0x01, //             mov bx, 0x100
            0x68, 0xAA, 0xAA, //             push 0xAAAA
            0xFF, 0x1F, //                   call far [bx]
            0xEA, 0x30, 0x00, 0x00, 0x20, // jmp 0x2000:0x0030
        ],
        |cpu| {
            let mem = cpu.memory();
            mem.write_bytes(
                0x2_0010,
                &[
                    0x8C, 0xC9, // mov cx, cs
                    0xCB, //       retf
                ],
            );
            mem.write_bytes(
                0x2_0020,
                &[
                    0x89, 0xE5, //       mov bp, sp
                    0x8B, 0x56, 0x02, // mov dx, [bp+2]
                    0xCA, 0x02, 0x00, // retf 2
                ],
            );
            mem.write(0x2_0030, 1, 0xF4); // hlt
            mem.write(0x100, 4, 0x2000_0020);
        },
    );
    let r = &bench.cpu.state.regs;
    // The first far target saw its own CS; the second found CS:IP on the stack and dropped
    // the pushed word with RETF 2.
    assert_eq!(r[RCX], 0x2000);
    assert_eq!(r[RDX] & 0xFFFF, 0x1000);
    assert_eq!(r[RSP], STACK_TOP);
    let cs = bench.cpu.state.seg(SegReg::Cs);
    assert_eq!((cs.selector, cs.base), (0x2000, 0x2_0000));
    assert_eq!(bench.cpu.state.rip, 0x31);
    // The return address of CALL FAR [BX]: CS 0x1000, IP 13, below the pushed 0xAAAA.
    assert_eq!(bench.read(STACK_TOP - 2, 2), 0xAAAA);
    assert_eq!(bench.read(STACK_TOP - 4, 2), 0x1000);
    assert_eq!(bench.read(STACK_TOP - 6, 2), 13);
}

#[test]
fn protected_mode_far_transfers_load_cs_from_the_gdt() {
    let bench = run(
        Mode::Protected32,
        &[
            0x9A, 0x00, 0x01, 0x00, 0x00, 0x28, 0x00, // call 0x28:0x100
            0x89, 0xCE, //                               mov esi, ecx
            0xEA, 0x00, 0x02, 0x00, 0x00, 0x30, 0x00, // jmp 0x30:0x200
        ],
        |cpu| {
            install_gdt(cpu);
            let mem = cpu.memory();
            mem.write_bytes(
                SEGMENT_BASE + 0x100,
                &[
                    0x8C, 0xC9, //             mov ecx, cs
                    0x8B, 0x14, 0x24, //       mov edx, [esp]
                    0x8B, 0x7C, 0x24, 0x04, // mov edi, [esp+4]
                    0xCB, //                   retf
                ],
            );
            // 16-bit code: B8 is MOV AX, imm16 here (it would take four bytes in 32-bit code).
            mem.write_bytes(
                SEGMENT_BASE + 0x200,
                &[
                    0xB8, 0x16, 0x16, // mov ax, 0x1616
                    0xF4, //             hlt
                ],
            );
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RCX], u64::from(sel::CODE32_BASED));
    assert_eq!(r[RSI], u64::from(sel::CODE32_BASED));
    // CALL FAR pushed CS then the EIP after the 7-byte CALL.
    assert_eq!((r[RDX], r[RDI]), (CODE_BASE + 7, u64::from(sel::CODE32)));
    assert_eq!(r[RSP], STACK_TOP);
    assert_eq!(r[RAX] & 0xFFFF, 0x1616);
    let cs = *bench.cpu.state.seg(SegReg::Cs);
    assert_eq!(
        (cs.selector, cs.base, cs.limit),
        (sel::CODE16_BASED, SEGMENT_BASE, 0xFFFF)
    );
    assert!(!cs.is_32bit());
    assert_eq!(bench.cpu.state.rip, 0x204);
    // Every CS load set its descriptor's accessed bit (the RETF reloaded selector 0x08).
    for selector in [sel::CODE32, sel::CODE32_BASED, sel::CODE16_BASED] {
        let type_byte = bench.read(super::faults::GDT_BASE + u64::from(selector) + 5, 1);
        assert_eq!(type_byte, 0x9B, "selector {selector:#x}");
    }
    let t = TimingTable::default();
    assert_eq!(
        bench.cpu.cycle,
        u64::from(3 * t.far_transfer + 3 * t.simple + 2 * t.load + t.serializing)
    );
}

#[test]
fn loop_loope_loopne_count_down_ecx() {
    let bench = run(
        Mode::Protected32,
        &[
            0xB9, 0x05, 0x00, 0x00, 0x00, //       mov ecx, 5
            0x40, //                               l1: inc eax
            0xE2, 0xFD, //                         loop l1
            0xB9, 0x0A, 0x00, 0x00, 0x00, //       mov ecx, 10
            0x42, //                               l2: inc edx
            0xF7, 0xC2, 0x04, 0x00, 0x00, 0x00, // test edx, 4
            0xE1, 0xF7, //                         loope l2
            0x89, 0xCB, //                         mov ebx, ecx
            0xB9, 0x0A, 0x00, 0x00, 0x00, //       mov ecx, 10
            0x46, //                               l3: inc esi
            0x83, 0xFE, 0x03, //                   cmp esi, 3
            0xE0, 0xFA, //                         loopne l3
            0x89, 0xCF, //                         mov edi, ecx
            0xB9, 0x03, 0x00, 0x00, 0x00, //       mov ecx, 3
            0x83, 0xF9, 0x64, //                   l4: cmp ecx, 100
            0xE0, 0xFB, //                         loopne l4
        ],
        |cpu| {
            for reg in [RAX, RDX, RSI] {
                cpu.state.regs[reg] = 0;
            }
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RAX], 5);
    // LOOPE leaves when TEST finds bit 2 (EDX = 4) after four decrements.
    assert_eq!((r[RDX], r[RBX]), (4, 6));
    // LOOPNE leaves when ESI reaches 3.
    assert_eq!((r[RSI], r[RDI]), (3, 7));
    // LOOPNE that never sees equality runs out the count.
    assert_eq!(r[RCX], 0);
}

#[test]
fn loop_and_jcxz_pick_cx_or_ecx_by_address_size() {
    // 32-bit code with an address-size prefix: LOOP counts CX, leaving ECX's upper half.
    let bench = run(
        Mode::Protected32,
        &[
            0x40, //             l: inc eax
            0x67, 0xE2, 0xFC, // a16 loop l
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0;
            cpu.state.regs[RCX] = 0x1_0002;
        },
    );
    assert_eq!(
        (bench.cpu.state.regs[RAX], bench.cpu.state.regs[RCX]),
        (2, 0x1_0000)
    );
    // JCXZ (CX only) and JECXZ.
    let bench = run(
        Mode::Protected32,
        &[
            0x67, 0xE3, 0x05, //             jcxz t1
            0xBE, 0x01, 0x00, 0x00, 0x00, // mov esi, 1
            0xE3, 0x05, //                   t1: jecxz t2
            0xBF, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
            0x90, //                         t2: nop
        ],
        |cpu| {
            cpu.state.regs[RCX] = 0x1_0000;
            cpu.state.regs[RSI] = 0;
            cpu.state.regs[RDI] = 0;
        },
    );
    assert_eq!(
        (bench.cpu.state.regs[RSI], bench.cpu.state.regs[RDI]),
        (0, 1)
    );
    // Real mode: LOOP and JCXZ on CX; the 0x67 prefix makes them use ECX.
    let bench = run(
        Mode::Real,
        &[
            0x40, //                               l1: inc ax
            0xE2, 0xFD, //                         loop l1
            0xE3, 0x03, //                         jcxz t1
            0xBE, 0x01, 0x00, //                   mov si, 1
            0x66, 0xB9, 0x00, 0x00, 0x01, 0x00, // t1: mov ecx, 0x10000
            0x67, 0xE3, 0x03, //                   a32 jcxz t2
            0xBF, 0x01, 0x00, //                   mov di, 1
            0x90, //                               t2: nop
        ],
        |cpu| {
            cpu.state.regs[RAX] = 0;
            cpu.state.regs[RCX] = 0xABCD_0003;
            cpu.state.regs[RSI] = 0;
            cpu.state.regs[RDI] = 0;
        },
    );
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RAX], 3);
    assert_eq!(r[RSI], 0);
    assert_eq!(r[RDI], 1);
}

#[test]
fn real_mode_int_and_iret_save_and_restore_flags_cs_and_ip() {
    let mut code = vec![
        0xCD, 0x21, //       int 0x21
        0xBE, 0x11, 0x11, // mov si, 0x1111
        0xF4, //             hlt
    ];
    code.resize(0x20, 0x90); // nop
    code.extend_from_slice(&[
        0x89, 0xE5, //       mov bp, sp
        0x8B, 0x46, 0x00, // mov ax, [bp]
        0x8B, 0x4E, 0x02, // mov cx, [bp+2]
        0x8B, 0x7E, 0x04, // mov di, [bp+4]
        0x9C, //             pushf
        0x5A, //             pop dx
        0xF8, //             clc
        0xCF, //             iret
    ]);
    let bench = run(Mode::Real, &code, |cpu| {
        cpu.memory()
            .write(0x21 * 4, 4, ((CODE_BASE >> 4) << 16) | 0x20);
        cpu.state.rflags |= flags::IF | CF;
    });
    let r = &bench.cpu.state.regs;
    // The frame: IP after the INT, CS, FLAGS with IF and CF.
    assert_eq!(r[RAX], 2);
    assert_eq!(r[RCX], CODE_BASE >> 4);
    assert_eq!(r[RDI], flags::FIXED1 | flags::IF | CF);
    // Inside the handler IF is clear.
    assert_eq!(r[RDX] & flags::IF, 0);
    // IRET brought back IF and the CF the handler cleared.
    assert_eq!(r[RSI], 0x1111);
    assert_eq!(bench.cpu.state.rflags & (flags::IF | CF), flags::IF | CF);
    assert_eq!(r[RSP], STACK_TOP);
    assert_eq!(bench.cpu.stats.exceptions, 0, "INT n is not an exception");
    let t = TimingTable::default();
    let handler = 4 * t.load + t.simple + t.store + t.simple + t.far_transfer;
    let cycles = t.simple + t.interrupt + handler + t.simple + t.serializing;
    assert_eq!(bench.cpu.cycle, u64::from(cycles));
}

#[test]
fn int3_and_into_are_traps_that_return_to_the_next_instruction() {
    let mut code = vec![
        0xCC, //       int3
        0xCE, //       into
        0x04, 0x7F, // add al, 0x7F
        0xCE, //       into
        0xF4, //       hlt
    ];
    code.resize(0x20, 0x90); // nop
    code.extend_from_slice(&[
        0x43, // inc bx
        0xCF, // iret
    ]);
    code.resize(0x30, 0x90); // nop
    code.extend_from_slice(&[
        0x41, //             inc cx
        0x89, 0xE5, //       mov bp, sp
        0x8B, 0x56, 0x00, // mov dx, [bp]
        0xCF, //             iret
    ]);
    let bench = run(Mode::Real, &code, |cpu| {
        cpu.memory()
            .write(3 * 4, 4, ((CODE_BASE >> 4) << 16) | 0x20);
        cpu.memory()
            .write(4 * 4, 4, ((CODE_BASE >> 4) << 16) | 0x30);
        cpu.state.regs[RAX] = 1;
        cpu.state.regs[RBX] = 0;
        cpu.state.regs[RCX] = 0;
    });
    let r = &bench.cpu.state.regs;
    assert_eq!(r[RBX], 1, "INT3 handler ran once");
    // The first INTO (OF = 0) did nothing; the second, after 1 + 0x7F overflowed, trapped.
    assert_eq!(r[RCX], 1, "INTO handler ran once");
    // The saved IP is the instruction after the INTO (offset 5).
    assert_eq!(r[RDX] & 0xFFFF, 5);
    assert_eq!(bench.cpu.state.rip, 6);
    assert_eq!(bench.cpu.stats.exceptions, 2);
}

#[test]
fn protected_mode_int_through_interrupt_and_trap_gates() {
    let mut code = vec![
        0xCD, 0x40, // int 0x40
        0x89, 0xCE, // mov esi, ecx
        0xCD, 0x41, // int 0x41
        0xF4, //       hlt
    ];
    code.resize(0x20, 0x90); // nop
    code.extend_from_slice(&[
        0x9C, //                   pushfd
        0x59, //                   pop ecx
        0x8B, 0x04, 0x24, //       mov eax, [esp]
        0x8B, 0x5C, 0x24, 0x04, // mov ebx, [esp+4]
        0x8B, 0x7C, 0x24, 0x08, // mov edi, [esp+8]
        0xCF, //                   iretd
    ]);
    let bench = run(Mode::Protected32, &code, |cpu| {
        install_gdt(cpu);
        let handler = CODE_BASE + 0x20;
        set_gate(cpu, 0x40, gate(sel::CODE32, handler, INTERRUPT_GATE));
        set_gate(cpu, 0x41, gate(sel::CODE32, handler, TRAP_GATE));
        cpu.state.idtr.base = IDT_BASE;
        cpu.state.idtr.limit = 0x42 * 8 - 1;
        cpu.state.rflags |= flags::IF;
    });
    let r = &bench.cpu.state.regs;
    // Through the interrupt gate IF was clear; through the trap gate it stayed set.
    assert_eq!(r[RSI] & flags::IF, 0);
    assert_eq!(r[RCX] & flags::IF, flags::IF);
    // The frame of the second INT: EIP after it, CS, EFLAGS.
    assert_eq!(r[RAX], CODE_BASE + 6);
    assert_eq!(r[RBX], u64::from(sel::CODE32));
    assert_eq!(r[RDI] & flags::IF, flags::IF);
    assert_eq!(r[RSP], STACK_TOP);
    assert_eq!(bench.cpu.state.rflags & flags::IF, flags::IF);
    assert_eq!(bench.cpu.state.rip, CODE_BASE + 7);
}
