; mp-hello.asm - multi-processor bring-up: the BSP wakes every AP with INIT-SIPI-SIPI, each AP
; records its APIC ID in a shared table, and the BSP prints the sorted list.
;
; Expected console output for `-smp N` (QEMU q35, default topology: APIC IDs 0 .. N-1):
;     cpus: N                 (N in decimal)
;     apic 00000000           (one line per CPU, the BSP included, APIC ID as 8 hex digits,
;     apic 00000001            ascending)
;     ...
; and exit value 0 (QEMU status 1). Without the fw_cfg signature it prints
; "mp-hello: no fw_cfg signature" and exits with 1 (status 3); a CPU count outside
; 1 .. MAX_CPUS prints "mp-hello: unsupported boot CPU count N" and exits with 2 (status 5).
;
; What this follows: Intel SDM Vol. 3A §9.4 "Multiple-Processor (MP) Initialization"
; (§10.4 in the newest editions, §8.4 in older ones), in particular §9.4.4.1 "Typical BSP
; Initialization Sequence" and §9.4.4.2 "Typical AP Initialization Sequence":
;   * After RESET only the BSP runs (here: from the reset vector); every AP sits in
;     wait-for-SIPI. The BSP finds out how many CPUs there are (real firmware uses ACPI/MP
;     tables or, like here and OVMF, QEMU's fw_cfg key 0x0005, see PLATFORM.md "fw_cfg").
;   * The BSP puts the AP start-up code below 1 MiB on a 4 KiB boundary, because a
;     start-up IPI carries only an 8-bit vector V and the AP begins in real mode at
;     CS = V << 8 (base V << 12), IP = 0. Here V = 0x08, so the code is copied to 0x8000.
;   * The BSP enables its local APIC (SVR bit 8), then broadcasts INIT (level assert) to
;     "all excluding self", waits, and broadcasts a STARTUP IPI twice ("INIT-SIPI-SIPI").
;     The SDM asks for 10 ms after INIT and 200 us between the SIPIs on real hardware; an
;     emulator needs no wall-clock delay, so a short PAUSE loop stands in for both. Nothing
;     here depends on that delay for correctness: an AP that is already running ignores a
;     SIPI (a SIPI is only accepted in wait-for-SIPI state), and even if one ran the start-up
;     code twice, the per-APIC-ID "started" bit below makes the second run a no-op.
;   * Each AP takes a ticket with LOCK XADD (its index in the table and its private stack),
;     reads its APIC ID (CPUID leaf 1, EBX[31:24]), stores it, announces itself with a
;     LOCK INC on the "arrived" counter and parks itself (CLI; HLT forever).
;   * The BSP waits - without a timeout, so only the arrival count decides - until
;     arrived == N - 1, then sorts and prints.
; Why two counters: the ticket is taken before the table entry is written, so "ticket
; reached N" would not prove that the last entry is there yet; "arrived" is incremented only
; after the store, and x86 stores become visible in program order (a locked instruction is
; a full fence anyway), so when the BSP sees arrived == N - 1 every entry is in place.
;
; The local APIC is reached through xAPIC MMIO at 0xFEE00000 (PLATFORM.md "Local APIC"), so
; the BSP works in 32-bit protected mode with flat 4 GiB segments. The APs never leave real
; mode: everything they touch is below 1 MiB.
;
; Memory use (all RAM below 1 MiB):
;   0x07000          BSP stack top (STACK_TOP, grows down)
;   0x08000-0x08FFF  AP start-up code (copied from the image; SIPI vector 0x08)
;   0x09000          shared variables: ticket, arrived, CPU count, "started" bitmap
;   0x10000-0x13FFF  APIC-ID table, 4096 dwords (entry 0 = the BSP)
;   0x20000-0x9FFFF  AP stacks, AP_STACK_SIZE bytes per ticket (room for 4096 tickets)
; The GDT stays in the image (it is only read, its accessed bits are preset), because
; pmode.inc's ENTER_PM32 would copy it to 0x8000, where the AP start-up code must live.

%include "include/image.inc"
%include "include/mode.inc"
%include "include/console.inc"
%include "include/pmode.inc"
%include "include/decimal.inc"
%include "include/mp_defs.inc"
%include "include/mp.inc"

; RAM layout (see the header)
VARS                equ 0x9000
VAR_TICKET          equ VARS + 0x00     ; dd: next table index (the BSP owns index 0)
VAR_ARRIVED         equ VARS + 0x04     ; dd: APs that have stored their APIC ID
VAR_NCPUS           equ VARS + 0x08     ; dd: N from fw_cfg
VAR_STARTED         equ VARS + 0x20     ; 256 bits: bit i = APIC ID i has taken a ticket
APIC_TABLE          equ 0x10000         ; dd[TABLE_ENTRIES]
APIC_TABLE_SEG      equ APIC_TABLE >> 4 ; the APs address it through ES in real mode
TABLE_ENTRIES       equ 4096
AP_STACK_BASE       equ 0x20000
AP_STACK_SIZE       equ 128             ; bytes per AP: ticket t has SS = base/16 + t*8, SP = 128
AP_STACK_SEG        equ AP_STACK_BASE >> 4

%if MAX_CPUS > TABLE_ENTRIES
 %error "the APIC-ID table is too small"
%endif
%if AP_STACK_BASE + TABLE_ENTRIES * AP_STACK_SIZE > 0xA0000
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
        ; Signature check, then N = the boot CPU count (1 .. MAX_CPUS) into VAR_NCPUS.
        MP_FW_CFG_CPU_COUNT "mp-hello: "

; --- Step 2: the AP start-up code goes to 0x8000 (SIPI vector 0x08) --------------------------
        ; DS and ES are flat, so the image is readable at ROMBASE + offset.
        MP_COPY_TRAMPOLINE

; --- Step 3: shared state, written before any AP can run -------------------------------------
        xor     eax, eax
        mov     edi, APIC_TABLE
        mov     ecx, TABLE_ENTRIES
        rep stosd                       ; table = 0
        mov     edi, VAR_STARTED
        mov     ecx, 256 / 32
        rep stosd                       ; no APIC ID has started
        mov     [VAR_ARRIVED], eax      ; arrived = 0
        mov     dword [VAR_TICKET], 1   ; APs take indices 1, 2, ...
        ; The BSP's own APIC ID is entry 0 (and marked started, for symmetry).
        MP_APIC_ID
        mov     [APIC_TABLE], ebx
        bts     [VAR_STARTED], ebx

; --- Step 4: INIT-SIPI-SIPI (SDM §9.4.4.1) ---------------------------------------------------
        ; Enable the local APIC in software (SVR bit 8; it is clear after RESET), as the
        ; SDM's BSP sequence does before it broadcasts the IPIs.
        mov     dword [APIC_SVR], SVR_ENABLE_VEC_FF
        ; INIT to all excluding self: every AP goes to wait-for-SIPI. The first SIPI starts
        ; every AP at 0x0800:0000; the second is the retry for an AP that missed the first.
        MP_INIT_SIPI_SIPI send_ipi, ICR_INIT_ALL_BUT_SELF, ICR_SIPI_ALL_BUT_SELF

; --- Step 5: wait for all N - 1 APs, then sort and print --------------------------------------
        MP_WAIT_APS VAR_ARRIVED

        ; Sort table[0 .. N-1] ascending: the arrival order depends on scheduling, the
        ; sorted list does not.
        MP_SORT_APIC_TABLE

        PRINT   "cpus: "
        mov     eax, [VAR_NCPUS]
        call    dec32_32
        NEWLINE
        xor     esi, esi
.print_next:
        PRINT   "apic "
        PHEX32  [APIC_TABLE + esi * 4]
        NEWLINE
        inc     esi
        cmp     esi, [VAR_NCPUS]
        jb      .print_next

        EXIT    0

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

; --- The AP start-up code (SDM §9.4.4.2) -----------------------------------------------------
; Copied to TRAMPOLINE_ADDR; an AP enters it in real mode at CS = 0x0800, IP = 0, with
; interrupts disabled and the other segment registers 0 (the post-INIT state). Only relative
; jumps and calls and absolute data addresses (DS = 0) are used, so it runs wherever it is
; copied. It needs no stack until it has a ticket, and then gets one of its own.
        MODE    16
ap_trampoline:
        ; DS = 0, EBX = APIC ID; at most once per APIC ID (else park); then the ticket:
        ; EAX = this AP's table index (1 .. N-1).
        MP_AP_TAKE_TICKET .park, eax
        ; A private stack: SS = AP_STACK_SEG + index * (AP_STACK_SIZE / 16), SP = AP_STACK_SIZE.
        mov     dx, ax
        shl     dx, 3                   ; * AP_STACK_SIZE / 16
        add     dx, AP_STACK_SEG
        mov     ss, dx                  ; MOV SS blocks interrupts for one instruction,
        mov     sp, AP_STACK_SIZE       ; so SS:SP switch together
        call    .record
        ; Announce: only now may the BSP count this AP (the table entry is in place).
        lock inc dword [VAR_ARRIVED]
.park:
        MP_AP_PARK

; table[EAX] = EBX (APIC ID). Uses this AP's stack for the return address and ES.
.record:
        push    es
        push    di
        mov     di, APIC_TABLE_SEG
        mov     es, di
        mov     di, ax
        shl     di, 2                   ; index * 4 (index < 4096, so within the segment)
        mov     [es:di], ebx
        pop     di
        pop     es
        ret
ap_trampoline_end:

%if ap_trampoline_end - ap_trampoline > 0x1000
 %error "the AP start-up code must fit in its 4 KiB page"
%endif
%if AP_STACK_SIZE != 8 * 16
 %error "ap_trampoline computes the stack segment with SHL 3"
%endif

        IMAGE_END
