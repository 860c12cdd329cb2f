; isa-selftest.asm - prints the results of many x86 instructions with known operands, first
; in real mode, then in 32-bit protected mode, so that smmsim's output can be compared line by
; line with QEMU's (expected/isa-selftest.txt). It never judges correctness itself.
;
; Each line: a check name, its inputs (a= s= n= fi=), result registers (r= is EAX, b= c= d=
; si= di= bp= sp= the others), event info (v= vector, e= error code) and f= the FLAGS with
; undefined flags masked (see selftest.inc for the masks and why).
;
; Structure:
;   real mode:  IVT entries for all 256 vectors (stubs that record the vector and step over the
;               faulting instruction), then the common checks (selftest_common.inc), then the
;               real-mode-only ones (segment base = selector * 16, SGDT/SIDT reset values and
;               LGDT/LIDT round trips).
;   switch:     GDT copied to RAM at 0x8000, LGDT, CR0.PE, far jmp to a 32-bit code segment.
;   protected:  IDT of 32-bit interrupt gates, the common checks again (now with 32-bit default
;               operand/address size, faults and INT n through the IDT), then the protected-
;               mode-only ones (SGDT/SIDT/LIDT, descriptor caches, #GP/#NP on segment loads).
; The common checks cover: ADD ADC SUB SBB AND OR XOR CMP TEST INC DEC NEG NOT (8/16/32-bit,
; operand tables with carry/overflow/zero/sign/aux/parity edge cases), SHL SHR SAR ROL ROR RCL
; RCR SHLD SHRD (counts 0, 1, n, >= width where defined), other ALU encodings, MOV MOVZX MOVSX
; LEA XCHG CMPXCHG CMPXCHG8B, MUL IMUL DIV IDIV and #DE, BT BTS BTR BTC, BSF BSR, SETcc CMOVcc
; Jcc, JMP CALL RET RETF (direct/register/memory, near/far, imm16), LOOP LOOPE LOOPNE JCXZ
; JECXZ, PUSH POP PUSHA(D) POPA(D) PUSHF(D) POPF(D) and segment registers, ENTER LEAVE, MOVS
; STOS LODS CMPS SCAS with REP/REPE/REPNE and DF=1, LOCK ADD XADD CMPXCHG BTS INC DEC OR,
; IN/OUT, CLC STC CMC CLD STD CLI STI, LAHF SAHF, NOP PAUSE, XLAT, CBW CWDE CWD CDQ, BSWAP,
; CPUID, RDTSC, RDMSR/WRMSR, CR0/CR3/CR4, INT n INT3 INTO IRET, #UD.
; Exit value 0 (status 1) after "selftest done"; an unexpected exception prints
; "UNEXPECTED ..." and exits with 2 (status 5).

%include "include/image.inc"
%include "include/mode.inc"
%include "include/console.inc"
%include "include/pmode.inc"
%include "include/selftest.inc"

; GDT selectors (entries of `gdt` below)
SEL_CODE32  equ 0x08
SEL_DATA32  equ 0x10
SEL_CODE16  equ 0x18    ; 16-bit code, base 0xF0000 (unused by the checks; documents layout)
SEL_BASED   equ 0x20    ; data, base BUF (0x2000), limit 0xFFFF: a nonzero base
SEL_NP      equ 0x28    ; data, not present: loading it raises #NP
SEL_DATA16  equ 0x30    ; 16-bit data, base 0, limit 0xFFFF

; DT_REGS: unpacks the two 6-byte SGDT/SIDT images at SCR and SCR+8 into EAX = GDT limit,
; EBX = GDT base, ECX = IDT limit, EDX = IDT base.
%macro DT_REGS 0
        movzx   eax, word [SCR]
        mov     ebx, [SCR + 2]
        movzx   ecx, word [SCR + 8]
        mov     edx, [SCR + 10]
%endmacro

; ============================================================================================
        MODE    16
start:
        RM_INIT
        mov     dword [V_MP], SCR
        mov     word [V_FM], 0xFFFF
        call    rm_install_ivt
        PRINTLN "isa-selftest: real mode"

%include "include/selftest_common.inc"

; --------------------------------------------------------------------------------------------
; Real-mode-only checks
; --------------------------------------------------------------------------------------------
        PRINTLN "-- real mode segments"
        ; A segment register load in real mode sets base = selector * 16.
        mov     dword [BUF + 0x10], 0xFEEDF00D
        mov     dword [BUF + 0x20], 0x0BADCAFE
        mov     ax, BUF >> 4
        mov     es, ax
        mov     ax, (BUF + 0x10) >> 4
        mov     fs, ax
        mov     eax, [es:0x10]
        mov     ebx, [fs:0x10]
        mov     cx, es
        mov     dx, fs
        REPORT  R_ABCD, 0, "es=0200 [es:10], fs=0201 [fs:10]"
        xor     ax, ax
        mov     es, ax
        mov     fs, ax

        PRINTLN "-- real mode descriptor tables"
        ; SGDT/SIDT with a 32-bit operand size store the 16-bit limit and all 32 base bits.
        ; First the reset values, then LGDT/LIDT of test values read back through SGDT/SIDT;
        ; IDTR is put back afterwards (it must point at the IVT for the next interrupt).
        mov     dword [SCR], 0xFFFFFFFF
        mov     dword [SCR + 4], 0xFFFFFFFF
        mov     dword [SCR + 8], 0xFFFFFFFF
        mov     dword [SCR + 12], 0xFFFFFFFF
        o32 sgdt [SCR]
        o32 sidt [SCR + 8]
        DT_REGS
        REPORT  R_ABCD, 0, "sgdt/sidt at reset: gdt limit=r base=b, idt limit=c base=d"
        o32 sidt [SCR + 0x20]           ; save IDTR
        o32 lgdt [cs:rm_test_gdtr]
        o32 lidt [cs:rm_test_idtr]
        o32 sgdt [SCR]
        o32 sidt [SCR + 8]
        o32 lidt [SCR + 0x20]           ; restore IDTR
        DT_REGS
        REPORT  R_ABCD, 0, "lgdt/lidt then sgdt/sidt: r b c d as above"
        EXPECT_INT int 0x41             ; the IVT works again
        REPORT  R_EV, 0, "int 41h after lidt restore"

        PRINTLN "-- switching to protected mode"
        ENTER_PM32 gdt, gdt_end, pm_entry

; ============================================================================================
        MODE    32
pm_entry:
        PM32_SEGMENTS
        call    pm_install_idt
        PRINTLN "isa-selftest: 32-bit protected mode"

%include "include/selftest_common.inc"

; --------------------------------------------------------------------------------------------
; Protected-mode-only checks
; --------------------------------------------------------------------------------------------
        PRINTLN "-- protected mode descriptor tables"
        mov     dword [SCR], 0xFFFFFFFF
        mov     dword [SCR + 4], 0xFFFFFFFF
        mov     dword [SCR + 8], 0xFFFFFFFF
        mov     dword [SCR + 12], 0xFFFFFFFF
        sgdt    [SCR]
        sidt    [SCR + 8]
        DT_REGS
        REPORT  R_ABCD, 0, "sgdt/sidt: gdt limit=r base=b, idt limit=c base=d"
        sidt    [SCR + 0x20]            ; save IDTR
        lidt    [cs:ROMA(pm_test_idtr)]
        sidt    [SCR + 8]
        lidt    [SCR + 0x20]            ; restore IDTR
        DT_REGS
        REPORT  R_C | R_D, 0, "lidt then sidt: limit=c base=d"
        EXPECT_INT int 0x41
        REPORT  R_EV, 0, "int 41h after lidt restore"

        PRINTLN "-- segment loads"
        ; GDT entry 0x20 is a data segment with base BUF (0x2000). A load of FS fills its
        ; descriptor cache; later edits of the GDT entry in memory do not affect FS until FS
        ; is loaded again.
        mov     dword [BUF + 0x10], 0xFEEDF00D
        mov     dword [BUF + 0x1010], 0x0BADCAFE
        mov     ax, SEL_BASED
        mov     fs, ax
        mov     eax, [fs:0x10]          ; linear 0x2010
        REPORT  R_A, 0, "fs=20 (base 2000) [fs:10]"
        mov     byte [GDT_RAM + SEL_BASED + 3], (BUF + 0x1000) >> 8   ; base -> 0x3000
        mov     eax, [fs:0x10]          ; still the cached base: linear 0x2010
        REPORT  R_A, 0, "after GDT edit, cached [fs:10]"
        mov     ax, SEL_BASED
        mov     fs, ax
        mov     eax, [fs:0x10]          ; reloaded: linear 0x3010
        REPORT  R_A, 0, "after reload [fs:10]"
        mov     byte [GDT_RAM + SEL_BASED + 3], BUF >> 8             ; restore the entry
        mov     ax, SEL_DATA32
        mov     fs, ax
        xor     eax, eax
        mov     es, ax                  ; a null selector may be loaded into ES/DS/FS/GS
        mov     bx, es
        mov     ax, SEL_DATA32
        mov     es, ax
        REPORT  R_B, 0, "es=null loads"

        ; Faults on segment loads, through the IDT, with the error code the CPU pushed.
        mov     ax, 0x0100              ; index 0x20 is beyond the GDT limit (0x37)
        EXPECT_FAULT mov ds, ax
        REPORT  R_EV | R_ERR, 0, "mov ds,0100 beyond limit #GP"
        mov     ax, 0x0103              ; the same with RPL 3: the error code drops the RPL
        EXPECT_FAULT mov gs, ax
        REPORT  R_EV | R_ERR, 0, "mov gs,0103 beyond limit #GP"
        xor     eax, eax
        EXPECT_FAULT mov ss, ax
        REPORT  R_EV | R_ERR, 0, "mov ss,null #GP"
        mov     ax, SEL_NP
        EXPECT_FAULT mov es, ax
        REPORT  R_EV | R_ERR, 0, "mov es,28 not present #NP"
        mov     ax, SEL_CODE32          ; SS needs a writable data segment, not code
        EXPECT_FAULT mov ss, ax
        REPORT  R_EV | R_ERR, 0, "mov ss,08 code segment #GP"
        xor     ebx, ebx
        xor     ecx, ecx
        xor     edx, edx
        mov     bx, ds
        mov     cx, es
        mov     dx, ss
        REPORT  R_B | R_C | R_D, 0, "ds es ss intact after the faults"

        PRINTLN "selftest done"
        EXIT    0

; ============================================================================================
; Routines and data
        MODE    16
        CONSOLE_ROUTINES
        REPORT_ROUTINE
        RM_HANDLERS

        MODE    32
        CONSOLE_ROUTINES
        REPORT_ROUTINE
        PM_HANDLERS

%include "include/selftest_tables.inc"

; Test values for LGDT/LIDT in real mode (any value is fine: nothing uses them before the
; real GDT is loaded and IDTR restored) and LIDT in protected mode.
rm_test_gdtr:
        dw      0x1234
        dd      0x00ABCDEF
rm_test_idtr:
        dw      0x0567
        dd      0x89ABCDEF
pm_test_idtr:
        dw      0x0ABC
        dd      0xFEDC1234

        align   8
gdt:
        dq      0                                   ; 0x00 null
        GDT_DESC 0, 0xFFFFF, 0x9B, 0xC              ; 0x08 flat 32-bit code
        GDT_DESC 0, 0xFFFFF, 0x93, 0xC              ; 0x10 flat 32-bit data
        GDT_DESC ROMLOW, 0xFFFF, 0x9B, 0x0          ; 0x18 16-bit code, base 0xF0000
        GDT_DESC BUF, 0xFFFF, 0x93, 0x4             ; 0x20 data, base 0x2000, byte limit 0xFFFF
        GDT_DESC 0, 0xFFFFF, 0x13, 0xC              ; 0x28 data, NOT present (P=0)
        GDT_DESC 0, 0xFFFF, 0x93, 0x0               ; 0x30 16-bit data, base 0
gdt_end:

        IMAGE_END
