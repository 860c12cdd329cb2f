; mips-loop.asm - a fixed, known instruction stream for measuring simulation speed (MIPS).
;
; The image switches to 32-bit protected mode, runs a tight loop of exactly 8 instructions per
; iteration (4 ALU ops incl. a rotate, 1 load, 1 store, 1 decrement that sets the flags and
; 1 conditional branch) for 10,000,000 iterations, prints "loop done\n" and exits with v = 0 (QEMU status 1).
;
; Instruction counts, every instruction executed from the reset vector up to and including the
; OUT to the exit port (verified by single-stepping builds with 1, 2 and 3 iterations under
; QEMU 7.2: `-singlestep -d exec,nochain` logs one line per executed instruction):
;   reset vector far jmp                                               1
;   RM_INIT: cli cld xor mov-ds mov-es mov-ss mov-sp                   7
;   ENTER_PM32: mov-si mov-di mov-cx, REP MOVSB (24 bytes),
;               lgdt, mov eax,cr0, or, mov cr0,eax, far jmp            9
;   PM32_SEGMENTS: mov ax + 5 segment loads + mov esp                  7
;   loop setup: mov ecx, mov esi, xor eax, mov edx, mov [esi]          5
;   the loop: 8 per iteration x 10,000,000                    80,000,000
;   PRINTLN "loop done" (10 bytes incl. "\n"): call 1, puts_inline_32
;     prologue 6, per byte 13 (5 in the loop + 7 in putc_32 + jmp 1)
;     = 130, the NUL 4, epilogue 6                                   147
;   EXIT 0: mov al, jmp exit_32, out                                   3
;   total                                                     80,000,179
; That total counts REP MOVSB as one instruction. Emulators that count each REP iteration
; (QEMU's single-step trace does) see its 24 iterations: 80,000,202. In general the total is
; 8 * ITERATIONS + 179 (+ 23 if REP iterations are counted).

%include "include/image.inc"
%include "include/mode.inc"
%include "include/console.inc"
%include "include/pmode.inc"
%include "include/mips_loop.inc"

ITERATIONS  equ 10000000
DATA_ADDR   equ 0x9000          ; the word the loop loads and stores (RAM)

        MODE    16
start:
        RM_INIT
        ENTER_PM32 gdt, gdt_end, pm_entry

        MODE    32
pm_entry:
        PM32_SEGMENTS
        mov     ecx, ITERATIONS
        mov     esi, DATA_ADDR
        MIPS_LOOP                       ; setup 3, then 8 instructions per iteration
                                        ; (the JNZ is taken 9,999,999 times)

        PRINTLN "loop done"
        EXIT    0

        CONSOLE_ROUTINES

        align   8
gdt:
        dq      0                               ; 0x00 null
        GDT_DESC 0, 0xFFFFF, 0x9B, 0xC          ; 0x08 flat 32-bit code
        GDT_DESC 0, 0xFFFFF, 0x93, 0xC          ; 0x10 flat 32-bit data
gdt_end:

        IMAGE_END
