; mp-loop.asm - multi-processor speed benchmark: every present CPU runs the mips-loop compute
; loop on its own data word, the BSP waits for all of them and reports.
;
; Work per CPU: the mips-loop loop, exactly 8 instructions per iteration
;     add, xor, load (mov), add, store (mov), rol, dec, jnz
; for ITERATIONS = 5,000,000 iterations, i.e. 40,000,000 loop instructions per CPU and
; N * 40,000,000 for `-smp N`. Each CPU loads and stores only its own dword at
; DATA_BASE + 64 * index (index 0 = the BSP, APs 1 .. N-1 by ticket), so no two CPUs share a
; cache line.
;
; Instruction counts around the loop (verified by single-stepping builds with ITERATIONS = 1,
; 2 and 3 under QEMU 7.2, `-smp 1/2/4/10 -singlestep -d exec,nochain`; in general the loop
; contributes 8 * ITERATIONS per CPU):
;   each AP, from its first trampoline instruction to its first HLT:
;     trampoline up to and including the far jmp                        16
;     protected-mode entry (segments, ESP, ESI) + call                  13
;     compute_loop setup 4, the loop 8 x 5,000,000, ret 1       40,000,005
;     LOCK INC, CLI, HLT                                                  3
;     total per AP                                              40,000,037
;   (QEMU wakes a halted CPU now and then; each wake-up adds jmp, cli, hlt.)
;   the BSP, from the reset vector to the OUT to the exit port:
;     reset jmp 1, RM_INIT 7, protected-mode switch 5, PM32_SEGMENTS 7    20
;     fw_cfg signature and CPU count                                    33
;     trampoline copy 4, shared state 10                                14
;     APIC enable 1, three IPIs 3 x 7, two delays 2 x 2,005           4,032
;     mov esi, call, compute_loop setup 4, loop 40,000,000, ret   40,000,007
;     wait setup (mov, dec)                                              2
;     wait: 2 (cmp, je taken) + 4 per poll (cmp, je, pause, jmp)    2 + 4 p
;     "mp-loop done: N cpus" + exit (N < 10; +17 per extra digit)       329
;     total                                             40,004,437 + 2 + 4 p
;   so `-smp 1` (p = 0) is 40,004,439 instructions. That counts REP MOVSB (73 bytes) and
;   REP STOSD (8 dwords) as one instruction each; counting every REP iteration, as QEMU's
;   single-step trace does, adds 79. The number of polls p depends on scheduling.
;   Whole machine, `-smp N` (N < 10): N * 40,000,000 + 4,439 + 37 * (N - 1) + 4 p.
;
; Expected console output for `-smp N`: "mp-loop done: N cpus" (N in decimal) and exit value
; 0 (QEMU status 1). Without the fw_cfg signature it prints "mp-loop: no fw_cfg signature"
; and exits with 1 (status 3); a CPU count outside 1 .. MAX_CPUS prints
; "mp-loop: unsupported boot CPU count N" and exits with 2 (status 5).
;
; Bring-up is mp-hello's (see mp-hello.asm for the SDM references and the reasoning), copied
; rather than shared so that mp-hello.bin stays untouched: fw_cfg key 0x0005 gives N, the
; AP start-up code is copied to 0x8000 (SIPI vector 0x08), the BSP enables its local APIC and
; broadcasts INIT-SIPI-SIPI through the xAPIC ICR. Differences from mp-hello:
;   * An AP does not record its APIC ID; after taking its ticket (LOCK XADD) it switches to
;     32-bit protected mode itself (same ROM GDT as the BSP), so every CPU runs the very same
;     loop code, `compute_loop`, in the image.
;   * After its loop an AP announces itself with LOCK INC on the "done" counter and parks
;     (CLI; HLT forever). The BSP runs its own loop right after the SIPIs, then waits (PAUSE
;     loop, no timeout) until done == N - 1.
;
; Memory use (all RAM below 1 MiB):
;   0x07000          BSP stack top (STACK_TOP, grows down)
;   0x08000-0x08FFF  AP start-up code (copied from the image; SIPI vector 0x08)
;   0x09000-0x0CFBF  per-CPU data words, DATA_BASE + 64 * index (index < MAX_CPUS)
;   0x0D000          shared variables, each on its own 64-byte line: ticket, done, CPU
;                    count, "started" bitmap
;   0x20000-...      AP stacks, AP_STACK_SIZE bytes per ticket

%include "include/image.inc"
%include "include/mode.inc"
%include "include/console.inc"
%include "include/pmode.inc"

%ifndef ITERATIONS
 %define ITERATIONS 5000000     ; per CPU (override only for instruction-count experiments)
%endif

; fw_cfg (PLATFORM.md "I/O ports" and "fw_cfg"; QEMU docs/specs/fw_cfg.rst)
FW_CFG_SEL          equ 0x510       ; 16-bit selector port
FW_CFG_DATA         equ 0x511       ; 8-bit data port
FW_CFG_SIGNATURE    equ 0x0000      ; key: the four bytes "QEMU"
FW_CFG_NB_CPUS      equ 0x0005      ; key: boot CPU count, LE16

; Local APIC, xAPIC MMIO (PLATFORM.md "Local APIC"; SDM Vol. 3A APIC chapter)
APIC_MMIO           equ 0xFEE00000
APIC_SVR            equ APIC_MMIO + 0x0F0   ; spurious-interrupt vector register
APIC_ICR_LOW        equ APIC_MMIO + 0x300   ; writing it sends the IPI
APIC_ICR_HIGH       equ APIC_MMIO + 0x310   ; destination in bits 31:24
SVR_ENABLE_VEC_FF   equ 0x1FF               ; bit 8 APIC software enable, spurious vector 0xFF
ICR_DELIVERY_BUSY   equ 1 << 12             ; delivery status: 1 = send pending

; ICR low dword: all-excluding-self shorthand, edge, assert, INIT / start-up (see mp-hello).
SIPI_VECTOR         equ 0x08                ; AP starts at 0x0800:0000 = linear 0x8000
ICR_INIT_ALL_BUT_SELF equ 0x000C4500
ICR_SIPI_ALL_BUT_SELF equ 0x000C4600 | SIPI_VECTOR

IPI_DELAY_PAUSES    equ 1000        ; stands in for the SDM's 10 ms / 200 us

; RAM layout (see the header)
TRAMPOLINE_ADDR     equ SIPI_VECTOR << 12   ; 0x8000
DATA_BASE           equ 0x9000
DATA_STRIDE         equ 64                  ; one cache line per CPU
VARS                equ 0xD000
VAR_TICKET          equ VARS + 0x00     ; dd: next CPU index (the BSP owns index 0)
VAR_DONE            equ VARS + 0x40     ; dd: APs that have finished their loop
VAR_NCPUS           equ VARS + 0x80     ; dd: N from fw_cfg
VAR_STARTED         equ VARS + 0xC0     ; 256 bits: bit i = APIC ID i has taken a ticket
AP_STACK_BASE       equ 0x20000
AP_STACK_SIZE       equ 128             ; ticket t: ESP = base + (t + 1) * size

; CPUID leaf 1 gives an 8-bit APIC ID and 0xFF is the xAPIC broadcast destination, so an
; xAPIC machine has at most 255 distinct CPUs.
MAX_CPUS            equ 255

%if DATA_BASE + MAX_CPUS * DATA_STRIDE > VARS
 %error "the per-CPU data words would reach the shared variables"
%endif
%if AP_STACK_BASE + MAX_CPUS * AP_STACK_SIZE > 0xA0000
 %error "AP stacks would reach past 0xA0000"
%endif

; Enter 32-bit protected mode with a GDT read straight from the image (high mapping); the
; GDT cannot be copied to GDT_RAM (0x8000) because the AP start-up code lives there.
%macro ENTER_PM32_ROM_GDT 3
        o32 lgdt [cs:%%gdtr]
        mov     eax, cr0
        or      al, 1                   ; CR0.PE
        mov     cr0, eax
        jmp     dword CODE32_SEL:(ROMBASE + %3)
%%gdtr:
        dw      %2 - %1 - 1             ; limit
        dd      ROMBASE + %1            ; base: the GDT's linear address in the image
%endmacro

        MODE    16
start:
        RM_INIT
        ENTER_PM32_ROM_GDT gdt, gdt_end, pm_entry

        MODE    32
pm_entry:
        PM32_SEGMENTS

; --- Step 1: the number of CPUs, from fw_cfg ------------------------------------------------
        mov     dx, FW_CFG_SEL
        mov     ax, FW_CFG_SIGNATURE
        out     dx, ax
        mov     dx, FW_CFG_DATA
        mov     ecx, 4
.sig_byte:
        in      al, dx
        ror     eax, 8
        loop    .sig_byte
        cmp     eax, 'QEMU'
        je      .have_fw_cfg
        PRINTLN "mp-loop: no fw_cfg signature"
        EXIT    1
.have_fw_cfg:
        mov     dx, FW_CFG_SEL
        mov     ax, FW_CFG_NB_CPUS
        out     dx, ax
        mov     dx, FW_CFG_DATA
        in      al, dx
        mov     cl, al
        in      al, dx
        mov     ch, al
        movzx   ecx, cx
        mov     [VAR_NCPUS], ecx
        test    ecx, ecx
        jz      .bad_count
        cmp     ecx, MAX_CPUS
        jbe     .count_ok
.bad_count:
        PRINT   "mp-loop: unsupported boot CPU count "
        mov     eax, ecx
        call    dec32_32
        NEWLINE
        EXIT    2
.count_ok:

; --- Step 2: the AP start-up code goes to 0x8000 (SIPI vector 0x08) --------------------------
        mov     esi, ROMA(ap_trampoline)
        mov     edi, TRAMPOLINE_ADDR
        mov     ecx, ap_trampoline_end - ap_trampoline
        rep movsb

; --- Step 3: shared state, written before any AP can run -------------------------------------
        xor     eax, eax
        mov     edi, VAR_STARTED
        mov     ecx, 256 / 32
        rep stosd                       ; no APIC ID has started
        mov     [VAR_DONE], eax         ; done = 0
        mov     dword [VAR_TICKET], 1   ; APs take indices 1, 2, ...
        mov     eax, 1
        cpuid
        shr     ebx, 24                 ; the BSP's APIC ID is marked started, for symmetry
        bts     [VAR_STARTED], ebx

; --- Step 4: INIT-SIPI-SIPI ------------------------------------------------------------------
        mov     dword [APIC_SVR], SVR_ENABLE_VEC_FF
        mov     eax, ICR_INIT_ALL_BUT_SELF
        call    send_ipi
        call    ipi_delay
        mov     eax, ICR_SIPI_ALL_BUT_SELF
        call    send_ipi
        call    ipi_delay
        mov     eax, ICR_SIPI_ALL_BUT_SELF
        call    send_ipi

; --- Step 5: the BSP's own loop (index 0) -----------------------------------------------------
        mov     esi, DATA_BASE
        call    compute_loop

; --- Step 6: wait for all N - 1 APs, then report ----------------------------------------------
        mov     ecx, [VAR_NCPUS]
        dec     ecx                     ; APs to wait for
.wait_aps:
        cmp     [VAR_DONE], ecx
        je      .all_done
        pause
        jmp     .wait_aps
.all_done:
        PRINT   "mp-loop done: "
        mov     eax, [VAR_NCPUS]
        call    dec32_32
        PRINTLN " cpus"
        EXIT    0

; compute_loop: ESI = this CPU's data word. The mips-loop loop, ITERATIONS times; 8
; instructions per iteration. Clobbers EAX EBX ECX EDX and the flags.
compute_loop:
        mov     ecx, ITERATIONS
        xor     eax, eax
        mov     edx, 0x9E3779B9
        mov     [esi], eax
        ; The measured loop: 8 instructions per iteration.
.loop:
        add     eax, ecx                ; 1 ALU
        xor     edx, eax                ; 2 ALU
        mov     ebx, [esi]              ; 3 load
        add     ebx, edx                ; 4 ALU
        mov     [esi], ebx              ; 5 store
        rol     edx, 5                  ; 6 ALU (shift unit)
        dec     ecx                     ; 7 ALU, sets ZF
        jnz     .loop                   ; 8 conditional branch
        ret

; An AP arrives here in 32-bit protected mode (far jump from the trampoline) with its ticket
; (CPU index, 1 .. N-1) in EDI.
ap_pm_entry:
        mov     ax, DATA32_SEL
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        lea     esp, [edi + 1]
        shl     esp, 7                  ; (index + 1) * AP_STACK_SIZE
        add     esp, AP_STACK_BASE      ; top of this AP's own stack
        mov     esi, edi
        shl     esi, 6                  ; index * DATA_STRIDE
        add     esi, DATA_BASE          ; this AP's data word
        call    compute_loop
        ; Announce: only now may the BSP count this AP as finished.
        lock inc dword [VAR_DONE]
.park:
        cli
        hlt
        jmp     .park

; send_ipi: EAX = ICR low dword; waits until the delivery status reads idle.
send_ipi:
        mov     dword [APIC_ICR_HIGH], 0
        mov     [APIC_ICR_LOW], eax
.busy:
        test    dword [APIC_ICR_LOW], ICR_DELIVERY_BUSY
        jz      .sent
        pause
        jmp     .busy
.sent:
        ret

; ipi_delay: a short PAUSE loop between INIT and SIPI and between the two SIPIs.
ipi_delay:
        push    ecx
        mov     ecx, IPI_DELAY_PAUSES
.spin:
        pause
        loop    .spin
        pop     ecx
        ret

; dec32_32: print EAX in decimal, no leading zeros. Preserves all registers and the flags.
dec32_32:
        pushf
        push    eax
        push    ebx
        push    ecx
        push    edx
        mov     ebx, 10
        xor     ecx, ecx
.digit:
        xor     edx, edx
        div     ebx
        push    edx
        inc     ecx
        test    eax, eax
        jnz     .digit
.emit:
        pop     eax
        add     al, '0'
        call    putc_32
        loop    .emit
        pop     edx
        pop     ecx
        pop     ebx
        pop     eax
        popf
        ret

        CONSOLE_ROUTINES

        align   8
gdt:
        dq      0                               ; 0x00 null
        GDT_DESC 0, 0xFFFFF, 0x9B, 0xC          ; 0x08 flat 32-bit code
        GDT_DESC 0, 0xFFFFF, 0x93, 0xC          ; 0x10 flat 32-bit data
gdt_end:

; --- The AP start-up code ---------------------------------------------------------------------
; Copied to TRAMPOLINE_ADDR; an AP enters it in real mode at CS = 0x0800, IP = 0, interrupts
; disabled. Only relative jumps, CS-relative data (offsets from ap_trampoline) and absolute
; RAM addresses (DS = 0) are used, so it runs wherever it is copied. It needs no stack.
        MODE    16
ap_trampoline:
        cli
        cld
        xor     ax, ax
        mov     ds, ax
        mov     eax, 1
        cpuid
        shr     ebx, 24                 ; CPUID.1:EBX[31:24] = initial APIC ID
        ; Run at most once per APIC ID (a second start parks at once).
        lock bts [VAR_STARTED], ebx
        jc      .park
        ; The ticket: EDI = old value = this AP's CPU index (1 .. N-1).
        mov     edi, 1
        lock xadd [VAR_TICKET], edi
        ; 32-bit protected mode with the image's GDT (the GDTR image is part of this copy).
        o32 lgdt [cs:.gdtr - ap_trampoline]
        mov     eax, cr0
        or      al, 1                   ; CR0.PE
        mov     cr0, eax
        jmp     dword CODE32_SEL:(ROMBASE + ap_pm_entry)
.park:
        cli
        hlt
        jmp     .park
.gdtr:
        dw      gdt_end - gdt - 1
        dd      ROMBASE + gdt
ap_trampoline_end:

%if ap_trampoline_end - ap_trampoline > 0x1000
 %error "the AP start-up code must fit in its 4 KiB page"
%endif
%if AP_STACK_SIZE != 1 << 7 || DATA_STRIDE != 1 << 6
 %error "ap_pm_entry computes the stack and data addresses with SHL 7 and SHL 6"
%endif

        IMAGE_END
