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

; ICR low dword fields used: bits 19:18 destination shorthand (11 = all excluding self),
; bit 15 trigger mode (0 = edge), bit 14 level (1 = assert), bits 10:8 delivery mode
; (101 = INIT, 110 = start-up), bits 7:0 vector (the start-up page number for a SIPI).
SIPI_VECTOR         equ 0x08                ; AP starts at 0x0800:0000 = linear 0x8000
ICR_INIT_ALL_BUT_SELF equ 0x000C4500        ; all-excluding-self | assert | INIT
ICR_SIPI_ALL_BUT_SELF equ 0x000C4600 | SIPI_VECTOR  ; all-excluding-self | assert | start-up

IPI_DELAY_PAUSES    equ 1000        ; stands in for the SDM's 10 ms / 200 us (see above)

; RAM layout (see the header)
TRAMPOLINE_ADDR     equ SIPI_VECTOR << 12   ; 0x8000
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

; CPUID leaf 1 gives an 8-bit APIC ID and 0xFF is the xAPIC broadcast destination, so an
; xAPIC machine has at most 255 distinct CPUs; more would need x2APIC (CPUID leaf 0xB).
MAX_CPUS            equ 255

%if MAX_CPUS > TABLE_ENTRIES
 %error "the APIC-ID table is too small"
%endif
%if AP_STACK_BASE + TABLE_ENTRIES * AP_STACK_SIZE > 0xA0000
 %error "AP stacks would reach past 0xA0000"
%endif

; Enter 32-bit protected mode with a GDT read straight from the image (high mapping); same
; steps as pmode.inc's ENTER_PM32, minus the copy to GDT_RAM (0x8000, the AP page here).
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
        ; Select key 0x0000 and read the signature: four bytes "QEMU". Each IN AL lands in
        ; bits 7:0 and the ROR moves it to 31:24, so after four bytes EAX holds them in
        ; little-endian order, i.e. the dword 'QEMU'.
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
        PRINTLN "mp-hello: no fw_cfg signature"
        EXIT    1
.have_fw_cfg:
        ; Key 0x0005: the boot CPU count, two bytes little-endian.
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
        PRINT   "mp-hello: unsupported boot CPU count "
        mov     eax, ecx
        call    dec32_32
        NEWLINE
        EXIT    2
.count_ok:

; --- Step 2: the AP start-up code goes to 0x8000 (SIPI vector 0x08) --------------------------
        ; DS and ES are flat, so the image is readable at ROMBASE + offset.
        mov     esi, ROMA(ap_trampoline)
        mov     edi, TRAMPOLINE_ADDR
        mov     ecx, ap_trampoline_end - ap_trampoline
        rep movsb

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
        mov     eax, 1
        cpuid
        shr     ebx, 24                 ; CPUID.1:EBX[31:24] = initial APIC ID
        mov     [APIC_TABLE], ebx
        bts     [VAR_STARTED], ebx

; --- Step 4: INIT-SIPI-SIPI (SDM §9.4.4.1) ---------------------------------------------------
        ; Enable the local APIC in software (SVR bit 8; it is clear after RESET), as the
        ; SDM's BSP sequence does before it broadcasts the IPIs.
        mov     dword [APIC_SVR], SVR_ENABLE_VEC_FF
        ; INIT to all excluding self: every AP goes to wait-for-SIPI. (The matching
        ; "INIT level de-assert" is not needed since the Pentium 4; QEMU ignores it.)
        mov     eax, ICR_INIT_ALL_BUT_SELF
        call    send_ipi
        call    ipi_delay
        ; The first SIPI starts every AP at 0x0800:0000. The second one is the SDM's
        ; retry for an AP that missed the first; an AP that is already running ignores it.
        mov     eax, ICR_SIPI_ALL_BUT_SELF
        call    send_ipi
        call    ipi_delay
        mov     eax, ICR_SIPI_ALL_BUT_SELF
        call    send_ipi

; --- Step 5: wait for all N - 1 APs, then sort and print --------------------------------------
        mov     ecx, [VAR_NCPUS]
        dec     ecx                     ; APs to wait for
.wait_aps:
        cmp     [VAR_ARRIVED], ecx
        je      .all_arrived
        pause
        jmp     .wait_aps
.all_arrived:

        ; Insertion sort of table[0 .. N-1] (unsigned, ascending). The arrival order (and so
        ; the order in the table) depends on scheduling; the sorted list does not.
        mov     ecx, 1                  ; i
.sort_outer:
        cmp     ecx, [VAR_NCPUS]
        jae     .sorted
        mov     eax, [APIC_TABLE + ecx * 4]     ; key = table[i]
        mov     edx, ecx                        ; j = i
.sort_inner:
        test    edx, edx
        jz      .sort_place
        mov     ebx, [APIC_TABLE + edx * 4 - 4] ; table[j - 1]
        cmp     ebx, eax
        jbe     .sort_place
        mov     [APIC_TABLE + edx * 4], ebx     ; shift it up
        dec     edx
        jmp     .sort_inner
.sort_place:
        mov     [APIC_TABLE + edx * 4], eax
        inc     ecx
        jmp     .sort_outer
.sorted:

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

; send_ipi: EAX = ICR low dword. The destination field (ICR high) is unused with a
; shorthand; it is cleared anyway. Writing ICR low sends the IPI; then wait until the
; delivery status bit reads idle (edk2's SendIpi does the same; QEMU always reads 0).
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

; dec32_32: print EAX in decimal, no leading zeros. Preserves all registers and the flags,
; like the console.inc routines.
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
        div     ebx                     ; EAX = quotient, EDX = next digit (least significant first)
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

; --- The AP start-up code (SDM §9.4.4.2) -----------------------------------------------------
; Copied to TRAMPOLINE_ADDR; an AP enters it in real mode at CS = 0x0800, IP = 0, with
; interrupts disabled and the other segment registers 0 (the post-INIT state). Only relative
; jumps and calls and absolute data addresses (DS = 0) are used, so it runs wherever it is
; copied. It needs no stack until it has a ticket, and then gets one of its own.
        MODE    16
ap_trampoline:
        cli
        cld
        xor     ax, ax
        mov     ds, ax
        ; Who am I? CPUID.1:EBX[31:24] is the initial APIC ID.
        mov     eax, 1
        cpuid
        shr     ebx, 24
        ; Run at most once per APIC ID: LOCK BTS atomically sets "started" and returns the
        ; old bit in CF. Were this AP ever started a second time, it would park at once
        ; instead of taking a second ticket.
        lock bts [VAR_STARTED], ebx
        jc      .park
        ; The ticket: EAX = old value = this AP's table index (1 .. N-1).
        mov     eax, 1
        lock xadd [VAR_TICKET], eax
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
        cli
        hlt
        jmp     .park

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
