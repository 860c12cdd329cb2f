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
; Bring-up is mp-hello's (see mp-hello.asm for the SDM references and the reasoning), shared
; through include/mp.inc and include/mp_defs.inc; the loop is include/mips_loop.inc: fw_cfg key 0x0005 gives N, the
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
%include "include/decimal.inc"
%include "include/mp_defs.inc"
%include "include/mp.inc"
%include "include/mips_loop.inc"

%ifndef ITERATIONS
 %define ITERATIONS 5000000     ; per CPU (override only for instruction-count experiments)
%endif

; RAM layout (see the header)
DATA_BASE           equ 0x9000
DATA_STRIDE         equ 64                  ; one cache line per CPU
VARS                equ 0xD000
VAR_TICKET          equ VARS + 0x00     ; dd: next CPU index (the BSP owns index 0)
VAR_DONE            equ VARS + 0x40     ; dd: APs that have finished their loop
VAR_NCPUS           equ VARS + 0x80     ; dd: N from fw_cfg
VAR_STARTED         equ VARS + 0xC0     ; 256 bits: bit i = APIC ID i has taken a ticket
AP_STACK_BASE       equ 0x20000
AP_STACK_SIZE       equ 128             ; ticket t: ESP = base + (t + 1) * size

%if DATA_BASE + MAX_CPUS * DATA_STRIDE > VARS
 %error "the per-CPU data words would reach the shared variables"
%endif
%if AP_STACK_BASE + MAX_CPUS * AP_STACK_SIZE > 0xA0000
 %error "AP stacks would reach past 0xA0000"
%endif

        MODE    16
start:
        RM_INIT
        ENTER_PM32_ROM_GDT gdt, gdt_end, pm_entry

        MODE    32
pm_entry:
        PM32_SEGMENTS

; --- Step 1: the number of CPUs, from fw_cfg ------------------------------------------------
        MP_FW_CFG_CPU_COUNT "mp-loop: "   ; N into VAR_NCPUS (1 .. MAX_CPUS) or exit

; --- Step 2: the AP start-up code goes to 0x8000 (SIPI vector 0x08) --------------------------
        MP_COPY_TRAMPOLINE

; --- Step 3: shared state, written before any AP can run -------------------------------------
        xor     eax, eax
        mov     edi, VAR_STARTED
        mov     ecx, 256 / 32
        rep stosd                       ; no APIC ID has started
        mov     [VAR_DONE], eax         ; done = 0
        mov     dword [VAR_TICKET], 1   ; APs take indices 1, 2, ...
        MP_APIC_ID                      ; the BSP's APIC ID is marked started, for symmetry
        bts     [VAR_STARTED], ebx

; --- Step 4: INIT-SIPI-SIPI ------------------------------------------------------------------
        mov     dword [APIC_SVR], SVR_ENABLE_VEC_FF
        MP_INIT_SIPI_SIPI send_ipi, ICR_INIT_ALL_BUT_SELF, ICR_SIPI_ALL_BUT_SELF

; --- Step 5: the BSP's own loop (index 0) -----------------------------------------------------
        mov     esi, DATA_BASE
        call    compute_loop

; --- Step 6: wait for all N - 1 APs, then report ----------------------------------------------
        MP_WAIT_APS VAR_DONE
        PRINT   "mp-loop done: "
        mov     eax, [VAR_NCPUS]
        call    dec32_32
        PRINTLN " cpus"
        EXIT    0

; compute_loop: ESI = this CPU's data word. The mips-loop loop, ITERATIONS times; 8
; instructions per iteration. Clobbers EAX EBX ECX EDX and the flags.
compute_loop:
        mov     ecx, ITERATIONS
        MIPS_LOOP                       ; setup 3 + 8 per iteration
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
        MP_AP_PARK

        MP_SEND_IPI_ROUTINE             ; send_ipi
        MP_IPI_DELAY_ROUTINE            ; ipi_delay
        DEC32_ROUTINE_32                ; dec32_32

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
        ; DS = 0, EBX = APIC ID; at most once per APIC ID (else park); then the ticket:
        ; EDI = this AP's CPU index (1 .. N-1).
        MP_AP_TAKE_TICKET .park, edi
        ; 32-bit protected mode with the image's GDT (the GDTR image is part of this copy).
        o32 lgdt [cs:.gdtr - ap_trampoline]
        mov     eax, cr0
        or      al, 1                   ; CR0.PE
        mov     cr0, eax
        jmp     dword CODE32_SEL:(ROMBASE + ap_pm_entry)
.park:
        MP_AP_PARK
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
