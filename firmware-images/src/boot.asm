; boot.asm - SMM bring-up the way OVMF does it on QEMU q35: negotiate SMI features over fw_cfg,
; set up TSEG, relocate every CPU's SMBASE into TSEG one at a time (BSP last), install a
; per-CPU SMI entry stub, close and lock SMRAM, then take one broadcast SMI in which every
; CPU reports its APIC ID and SMBASE.
;
; Run it with
;   qemu-system-x86_64 -machine q35,smm=on -nodefaults -display none -no-reboot -smp N \
;       -bios boot.bin -debugcon file:out.txt -global isa-debugcon.iobase=0x402 \
;       -device isa-debug-exit,iobase=0xf4,iosize=4
; Expected console output (QEMU's default 128 MiB of RAM and 16 MiB extended TSEG shown):
;   features 00000007 tseg 07000000 size 01000000 cpus N maxcpus N
;   cpu 00000000 smbase 07000000      one line per CPU in ascending APIC-ID order:
;   cpu 00000001 smbase 07002000      APIC ID and the SMBASE the CPU reported from SMM
;   ...
; and exit value 0 (QEMU status 1). The output depends only on the RAM size, the TSEG size,
; the CPU counts, the negotiated features and the APIC IDs - never on timing.
; Failures print one line starting with "boot:" and exit with
;   1 no fw_cfg            2 unsupported CPU count     3 SMI feature negotiation failed
;   4 TSEG / SMRAM setup   5 an SMBASE relocation went wrong
;   6 the final report does not match the relocation   7 SMRAM did not lock
;
; What it follows (PLATFORM.md; Intel SDM Vol. 3C ch. 32 "System Management Mode"; QEMU
; hw/pci-host/q35.c, hw/isa/lpc_ich9.c, hw/nvram/fw_cfg.c + docs/specs/fw_cfg.rst,
; target/i386/tcg/sysemu/smm_helper.c; OVMF's SmiFeatures, SmmAccess, SmmControl2 and
; SmmRelocation code, by name only - nothing here is copied):
;
; Step 1, SMI features (OVMF SmiFeatures): find `etc/smi/supported-features`,
;   `etc/smi/requested-features` and `etc/smi/features-ok` in the fw_cfg file directory,
;   read the supported bitmap, request broadcast SMI (bit 0) plus CPU hot-plug (bit 1) and
;   hot-unplug (bit 2) when offered (unplug only together with plug, as QEMU insists), write
;   the request, then select features-ok, which makes QEMU validate and lock the request, and
;   read 1 from it. QEMU drops data-port writes (since 2.4) and takes file writes only through
;   the fw_cfg DMA interface (since 2.9), so the request goes by DMA (ID bit 1; one control
;   word that selects and writes). A machine whose fw_cfg offers no DMA gets the write through
;   the data port instead (PLATFORM.md "fw_cfg"); which path ran is not printed.
;   The first output line shows the negotiated bitmap. Broadcast is required (step 6).
;
; Step 2, TSEG (OVMF SmmAccess / PlatformPei): low RAM size = fw_cfg key 0x0003 (RAM size,
;   LE64), split as QEMU's pc_q35 does: RAM of 0xB0000000 bytes or more puts 2 GiB below
;   4 GiB, smaller RAM is all below 4 GiB. (QEMU q35 keeps no TOLUD in MCH reg 0xB0 - it
;   reads 0 - and CMOS 0x34/0x35 only says "above 16 MiB in 64 KiB units", capped; fw_cfg is
;   the one source smmsim and QEMU share.) The TSEG size comes from the extended-TSEG
;   register (MCH 0x50: write 0xFFFF, read MiB; 0 or 0xFFFF = not offered -> 8 MiB with
;   TSEG_SZ = 2); TSEG is the top of low RAM. It must hold the per-CPU tiles of every
;   possible CPU (fw_cfg key 0x000F, maxcpus). The default-SMBASE-window feature is queried
;   (MCH 0x9C: write 0xFF, read 0x01) and required, because step 5 locks it.
;   ESMRAMC gets TSEG_SZ and SMRAM gets G_SMRAME now, T_EN stays clear: TSEG is "open"
;   (plain RAM for everyone) until step 4 has filled it, as OVMF's SmmAccess opens TSEG by
;   clearing T_EN. Under QEMU, T_EN + G_SMRAME turn TSEG into SMRAM at once (D_OPEN does not
;   open TSEG), so everything that goes into TSEG is written before T_EN is set.
;
; Step 3, SMBASE relocation (SDM §32.11 "SMBASE Relocation"; OVMF SmmRelocation):
;   * The APs are started with INIT-SIPI-SIPI (as mp-hello) into a trampoline that records
;     the APIC ID and parks the AP in `cli; hlt`; an SMI still wakes a halted CPU.
;   * The APIC IDs are sorted; slot i = index in ascending APIC-ID order (QEMU's BSP has
;     APIC ID 0, so it is slot 0). SMBASE(i) = TSEG base + 0x8000 + i * 0x2000 - 0x8000
;     = TSEG base + i * 0x2000 (PLATFORM.md "Firmware conventions": tile buffer at TSEG
;     base + 0x8000). Slot i's entry code is at SMBASE(i) + 0x8000, its save area at
;     SMBASE(i) + 0xFE00 .. 0xFFFF (inside tile i + 3, which starts 0x6000 further up).
;   * The relocation handler is copied to 0x38000 (default SMBASE 0x30000 + 0x8000). For
;     each slot - APs in slot order, the BSP last - the BSP writes the new SMBASE into a
;     mailbox in normal RAM, sends the CPU a directed SMI IPI (ICR delivery mode 010,
;     physical destination; the BSP uses the "self" shorthand) and waits. The handler reads
;     the revision ID at SMBASE + 0xFEFC to pick the layout (AMD64: SMBASE field at 0xFF00;
;     Intel 32-bit: 0xFEF8), writes the new SMBASE there, reports its APIC ID and revision,
;     sets a done flag and executes RSM, which loads the new SMBASE.
;   * Only one CPU may use the save area at 0x3FE00 at a time, so the next SMI may be sent
;     only after the previous CPU has left SMM - the done flag is written before RSM and
;     cannot prove that. For an AP the handler therefore also rewrites the saved RIP/EIP to
;     `ap_after_reloc` in the trampoline (and clears auto-HALT restart so the CPU does not
;     go back into HLT instead), and that code, running after RSM, stores the AP's APIC ID
;     in a "left SMM" flag; the BSP waits for that flag. (edk2 reaches the same end by
;     hooking the return address.) Redirecting is safe because a parked AP has nothing to
;     return to but the park loop, which ap_after_reloc re-enters. For the BSP the flag is
;     enough: the BSP's own wait loop can only see it after its RSM.
;
; Step 4, entry stubs: before T_EN is set, the BSP clears the SMRAM report table at the TSEG
;   base and copies `smi_stub` to SMBASE(i) + 0x8000 for every present CPU, patching in the
;   slot number and the table address. Then T_EN closes TSEG.
;
; Step 5, lock (OVMF SmmAccess lock): T_EN (already set), D_LCK in MCH 0x9D, and 0x02 into
;   MCH 0x9C (the default-SMBASE window becomes SMRAM until hard reset). The registers are
;   read back - nothing reads SMRAM from outside SMM to prove it, because smmsim records
;   such an access as an event.
;
; Step 6, broadcast SMI (OVMF SmmControl2): PMBASE = 0x600 (LPC 0x40) with ACPI_EN (LPC 0x44
;   bit 7), SMI_EN |= GBL_SMI_EN | APMC_EN, SMI_LOCK (LPC 0xA0 bit 4), then 0x00 to port
;   0xB2. Every CPU enters its stub at its own SMBASE + 0x8000; the stub reads its SMBASE
;   from the save area and its APIC ID from CPUID, stores the pair in the SMRAM table at its
;   slot, copies the pair from there to the normal-RAM result mailbox (non-SMM code cannot
;   read SMRAM after the lock), increments the acknowledgement counter and executes RSM. The
;   BSP waits for N acknowledgements (PLATFORM.md "When an SMI lands": always wait for the
;   handler's acknowledgement).
;
; Step 7: the BSP checks every reported pair against slot i's APIC ID and SMBASE(i) and prints
;   the lines above.
;
; Memory (normal RAM, all below 1 MiB, none in 0x30000-0x4FFFF which becomes SMRAM):
;   0x07000          BSP stack top (grows down)
;   0x08000-0x08FFF  AP trampoline (SIPI vector 0x08), incl. ap_after_reloc
;   0x09000-0x09FFF  variables, relocation mailbox, fw_cfg DMA descriptor and scratch
;   0x0C000-0x0C3FF  APIC-ID table: arrival order, then sorted = slot order
;   0x0D000-0x0D7FF  result mailbox: per slot (APIC ID, SMBASE), written from SMM in step 6
;   0x38000          relocation handler (default SMBASE + 0x8000), used until step 5
; SMRAM (TSEG, top of low RAM):
;   TSEG + 0x0000    report table: per slot (APIC ID, SMBASE), 8 bytes, up to 256 slots
;   TSEG + 0x8000 + i * 0x2000   slot i's entry stub (= SMBASE(i) + 0x8000)
;
; The BSP runs in 32-bit protected mode with flat segments (for the xAPIC at 0xFEE00000 and
; TSEG); the APs stay in real mode below 1 MiB; the SMI handlers run in SMM's 16-bit mode.

%include "include/image.inc"
%include "include/mode.inc"
%include "include/console.inc"
%include "include/pmode.inc"
%include "include/smm.inc"
%include "include/decimal.inc"
%include "include/mp.inc"

; --- fw_cfg (PLATFORM.md "fw_cfg"; QEMU docs/specs/fw_cfg.rst) -------------------------------
FW_CFG_SEL          equ 0x510       ; 16-bit selector
FW_CFG_DATA         equ 0x511       ; 8-bit data
FW_CFG_DMA_ADDR_HI  equ 0x514       ; DMA address register, big-endian 64-bit: high half
FW_CFG_DMA_ADDR_LO  equ 0x518       ;   low half; writing it starts the transfer
FW_CFG_SIGNATURE    equ 0x0000      ; "QEMU"
FW_CFG_ID           equ 0x0001      ; LE32 feature bits: bit 0 traditional, bit 1 DMA
FW_CFG_ID_DMA       equ 1 << 1
FW_CFG_RAM_SIZE     equ 0x0003      ; LE64 RAM size in bytes
FW_CFG_NB_CPUS      equ 0x0005      ; LE16 boot CPU count
FW_CFG_MAX_CPUS     equ 0x000F      ; LE16 max CPUs (on x86 QEMU: the APIC-ID limit)
FW_CFG_FILE_DIR     equ 0x0019      ; BE32 count, then 64-byte entries
FW_CFG_DIR_ENTRY    equ 64          ; size BE32, select BE16, reserved u16, name[56]
; FWCfgDmaAccess: control BE32, length BE32, address BE64. Control bits:
FW_CFG_DMA_ERROR    equ 1 << 0
FW_CFG_DMA_READ     equ 1 << 1
FW_CFG_DMA_SKIP     equ 1 << 2
FW_CFG_DMA_SELECT   equ 1 << 3      ; selector in bits 31:16
FW_CFG_DMA_WRITE    equ 1 << 4

; q35's split of RAM around the PCI hole (QEMU hw/i386/pc_q35.c)
Q35_LOWMEM_SPLIT    equ 0xB0000000  ; RAM >= this: only 2 GiB below 4 GiB
Q35_LOWMEM_LARGE    equ 0x80000000

PMBASE_VALUE        equ 0x600       ; OVMF's choice for the ICH9 PM block
APM_CMD_REPORT      equ 0x00        ; the 0xB2 value of the final broadcast SMI

SIPI_VECTOR         equ 0x08
IPI_DELAY_PAUSES    equ 1000        ; stands in for the SDM's 10 ms / 200 us (see mp-hello)
MAX_CPUS            equ 255         ; xAPIC: 8-bit APIC IDs, 0xFF is the broadcast ID

; --- RAM layout (see the header) -------------------------------------------------------------
TRAMPOLINE_ADDR     equ SIPI_VECTOR << 12
VARS                equ 0x9000
VAR_TICKET          equ VARS + 0x00     ; dd: next APIC-ID table index for an AP
VAR_ARRIVED         equ VARS + 0x04     ; dd: APs that stored their APIC ID
VAR_NCPUS           equ VARS + 0x08     ; dd: N, fw_cfg key 0x0005
VAR_MAXCPUS         equ VARS + 0x0C     ; dd: fw_cfg key 0x000F
VAR_BSP_APIC        equ VARS + 0x10     ; dd
VAR_BSP_SLOT        equ VARS + 0x14     ; dd
VAR_FEATURES        equ VARS + 0x18     ; dq: requested SMI features, LE (the DMA source)
VAR_TSEG_BASE       equ VARS + 0x20     ; dd
VAR_TSEG_SIZE       equ VARS + 0x24     ; dd
VAR_TSEG_SZ_FIELD   equ VARS + 0x28     ; dd: ESMRAMC TSEG_SZ bits to program
VAR_KEY_SUPPORTED   equ VARS + 0x30     ; dd: fw_cfg selectors of the three files
VAR_KEY_REQUESTED   equ VARS + 0x34
VAR_KEY_FEATURES_OK equ VARS + 0x38
VAR_MISMATCHES      equ VARS + 0x3C     ; dd: step 7 check failures
; relocation mailbox (step 3): written by the BSP, read and answered by the handler
VAR_RELOC_NEW       equ VARS + 0x40     ; dd: the SMBASE the handler installs
VAR_RELOC_RESUME    equ VARS + 0x44     ; dd: 0 = return where interrupted, else the new IP
VAR_RELOC_DONE      equ VARS + 0x48     ; dd: handler sets 1 just before RSM
VAR_RELOC_APIC      equ VARS + 0x4C     ; dd: APIC ID the handler ran on
VAR_RELOC_REV       equ VARS + 0x50     ; dd: revision ID it read
VAR_RELOC_LEFT      equ VARS + 0x54     ; dd: an AP stores its APIC ID here after RSM
VAR_ACKS            equ VARS + 0x60     ; dd: step 6 acknowledgements
VAR_STARTED         equ VARS + 0x80     ; 256 bits: APIC ID has taken a ticket
DMA_DESC            equ VARS + 0xC0     ; FWCfgDmaAccess (16 bytes)
FWCFG_ENTRY         equ VARS + 0x100    ; one 64-byte directory entry
APIC_TABLE          equ 0xC000          ; dd[256]
RESULTS             equ 0xD000          ; (dd APIC ID, dd SMBASE)[256]
RELOC_HANDLER_ADDR  equ SMM_DEFAULT_SMBASE + SMM_ENTRY_OFFSET   ; 0x38000

; SMRAM layout, offsets from the TSEG base
SMRAM_TABLE_OFF     equ 0x0000          ; (dd APIC ID, dd SMBASE)[256]
TILE_BUFFER_OFF     equ 0x8000          ; SMBASE(i) = TSEG base + TILE_BUFFER_OFF + i * 0x2000 - 0x8000

%if APIC_TABLE + 4 * (MAX_CPUS + 1) > 0x10000
 %error "the APs index the APIC-ID table with 16-bit offsets"
%endif
%if SMRAM_TABLE_OFF + 8 * (MAX_CPUS + 1) > TILE_BUFFER_OFF
 %error "the SMRAM report table runs into the first tile"
%endif

; FAIL code, "text": print "boot: text" and exit with `code`.
%macro FAIL 2+
        PRINTLN "boot: ", %2
        EXIT    %1
%endmacro

        MODE    16
start:
        RM_INIT
        ENTER_PM32_ROM_GDT gdt, gdt_end, pm_entry

        MODE    32
pm_entry:
        PM32_SEGMENTS
        xor     eax, eax
        mov     edi, VARS
        mov     ecx, 0x1000 / 4
        rep stosd                       ; all variables start at 0

; === Step 0: fw_cfg present? CPU counts ======================================================
        mov     ax, FW_CFG_SIGNATURE
        call    fw_select
        call    fw_read_le32
        cmp     eax, 'QEMU'
        je      .have_fw_cfg
        FAIL    1, "no fw_cfg signature"
.have_fw_cfg:
        mov     ax, FW_CFG_NB_CPUS
        call    fw_select
        call    fw_read_le16
        mov     [VAR_NCPUS], eax
        mov     ax, FW_CFG_MAX_CPUS
        call    fw_select
        call    fw_read_le16
        mov     [VAR_MAXCPUS], eax
        mov     ecx, [VAR_NCPUS]
        test    ecx, ecx
        jz      .bad_count
        cmp     ecx, eax                ; N <= maxcpus <= MAX_CPUS
        ja      .bad_count
        cmp     eax, MAX_CPUS
        jbe     .count_ok
.bad_count:
        PRINT   "boot: unsupported CPU count "
        mov     eax, ecx
        call    dec32_32
        PRINT   " of "
        mov     eax, [VAR_MAXCPUS]
        call    dec32_32
        NEWLINE
        EXIT    2
.count_ok:

; === Step 1: SMI feature negotiation =========================================================
        mov     esi, ROMA(name_supported)
        call    fw_find_file
        jc      .no_smi_files
        cmp     ecx, 8
        jne     .no_smi_files
        mov     [VAR_KEY_SUPPORTED], eax
        mov     esi, ROMA(name_requested)
        call    fw_find_file
        jc      .no_smi_files
        cmp     ecx, 8
        jne     .no_smi_files
        mov     [VAR_KEY_REQUESTED], eax
        mov     esi, ROMA(name_features_ok)
        call    fw_find_file
        jc      .no_smi_files
        cmp     ecx, 1
        jne     .no_smi_files
        mov     [VAR_KEY_FEATURES_OK], eax
        jmp     .have_smi_files
.no_smi_files:
        FAIL    3, "no etc/smi/* files in fw_cfg"
.have_smi_files:
        ; Supported features: 8 bytes LE; only bits 0-2 are known, so the low dword decides.
        mov     eax, [VAR_KEY_SUPPORTED]
        call    fw_select
        call    fw_read_le32
        mov     ebx, eax                ; EBX = supported (low dword; the high one is ignored)
        test    ebx, SMI_F_BROADCAST
        jnz     .broadcast_ok
        FAIL    3, "broadcast SMI not supported"
.broadcast_ok:
        ; Request broadcast, plus hot-plug if offered, plus hot-unplug if offered together
        ; with hot-plug (QEMU refuses unplug without plug, and either without broadcast).
        mov     eax, SMI_F_BROADCAST
        test    ebx, SMI_F_CPU_HOTPLUG
        jz      .requested
        or      eax, SMI_F_CPU_HOTPLUG
        test    ebx, SMI_F_CPU_HOTUNPLUG
        jz      .requested
        or      eax, SMI_F_CPU_HOTUNPLUG
.requested:
        mov     [VAR_FEATURES], eax
        mov     dword [VAR_FEATURES + 4], 0
        ; Write the request: DMA if fw_cfg offers it (QEMU >= 2.9 drops data-port writes),
        ; else byte by byte through the data port.
        mov     ax, FW_CFG_ID
        call    fw_select
        call    fw_read_le32
        test    eax, FW_CFG_ID_DMA
        jz      .write_by_port
        mov     eax, [VAR_KEY_REQUESTED]
        mov     esi, VAR_FEATURES
        mov     ecx, 8
        call    fw_dma_write
        jnc     .written
        FAIL    3, "fw_cfg DMA write of etc/smi/requested-features failed"
.write_by_port:
        mov     eax, [VAR_KEY_REQUESTED]
        call    fw_select
        mov     dx, FW_CFG_DATA
        mov     esi, VAR_FEATURES
        mov     ecx, 8
.port_byte:
        lodsb
        out     dx, al
        loop    .port_byte
.written:
        ; Selecting features-ok makes the platform check and lock the request; it reads 1
        ; if the request was accepted.
        mov     eax, [VAR_KEY_FEATURES_OK]
        call    fw_select
        call    fw_read8
        cmp     al, 1
        je      .features_ok
        FAIL    3, "etc/smi/features-ok reads 0: request refused"
.features_ok:

; === Step 2: TSEG geometry, default-SMBASE window query, PM block ============================
        ; Low RAM: fw_cfg RAM size, with q35's split around the 32-bit PCI hole.
        mov     ax, FW_CFG_RAM_SIZE
        call    fw_select
        call    fw_read_le32
        mov     ebx, eax                ; low dword
        call    fw_read_le32            ; high dword
        test    eax, eax
        jnz     .large_ram
        cmp     ebx, Q35_LOWMEM_SPLIT
        jb      .have_lowmem
.large_ram:
        mov     ebx, Q35_LOWMEM_LARGE
.have_lowmem:                           ; EBX = bytes of RAM below 4 GiB
        ; Extended TSEG: write the query value, read the size in MiB.
        mov     eax, MCH_REG(MCH_EXT_TSEG_MBYTES)
        mov     ecx, MCH_EXT_TSEG_QUERY
        call    pci_write16
        call    pci_read16
        test    eax, eax
        jz      .no_ext_tseg
        cmp     eax, MCH_EXT_TSEG_QUERY
        je      .no_ext_tseg
        shl     eax, 20
        mov     dword [VAR_TSEG_SZ_FIELD], MCH_ESMRAMC_TSEG_EXT
        jmp     .have_tseg_size
.no_ext_tseg:
        mov     eax, 8 << 20            ; the largest fixed size, as OVMF's default
        mov     dword [VAR_TSEG_SZ_FIELD], MCH_ESMRAMC_TSEG_8MB
.have_tseg_size:
        mov     [VAR_TSEG_SIZE], eax
        ; TSEG = the top of low RAM. It must leave the first MiB alone...
        lea     ecx, [eax + 0x100000]
        cmp     ebx, ecx
        jae     .tseg_fits_ram
        FAIL    4, "low RAM too small for TSEG"
.tseg_fits_ram:
        sub     ebx, eax
        mov     [VAR_TSEG_BASE], ebx
        ; ...and hold the tiles of every possible CPU: the last one ends at
        ; SMBASE(maxcpus - 1) + 0x10000 = TSEG + TILE_BUFFER_OFF + (maxcpus - 1) * 0x2000 + 0x8000.
        mov     ecx, [VAR_MAXCPUS]
        dec     ecx
        shl     ecx, 13
        add     ecx, TILE_BUFFER_OFF + SMM_ENTRY_OFFSET
        cmp     ecx, eax
        jbe     .tseg_fits_cpus
        FAIL    4, "TSEG too small for maxcpus SMBASE tiles"
.tseg_fits_cpus:
        ; Default-SMBASE window: query; QEMU answers 0x01 (still RAM, lockable).
        mov     eax, MCH_REG(MCH_F_SMBASE)
        mov     ecx, MCH_F_SMBASE_QUERY
        call    pci_write8
        call    pci_read8
        cmp     al, MCH_F_SMBASE_IN_RAM
        je      .smbase_window_ok
        FAIL    4, "no SMRAM at the default SMBASE (MCH 0x9C)"
.smbase_window_ok:
        ; TSEG size now, T_EN later (step 4): ESMRAMC = TSEG_SZ, H_SMRAME = T_EN = 0.
        mov     eax, MCH_REG(MCH_ESMRAMC)
        call    pci_read8
        and     al, 0xFF & ~(MCH_ESMRAMC_H_SMRAME | MCH_ESMRAMC_TSEG_SZ_MASK | MCH_ESMRAMC_T_EN)
        or      eax, [VAR_TSEG_SZ_FIELD]
        mov     ecx, eax
        mov     eax, MCH_REG(MCH_ESMRAMC)
        call    pci_write8
        ; SMRAM: G_SMRAME on (SMRAM decoding enabled at all), D_OPEN and D_CLS off.
        mov     eax, MCH_REG(MCH_SMRAM)
        call    pci_read8
        and     al, 0xFF & ~(MCH_SMRAM_D_OPEN | MCH_SMRAM_D_CLS)
        or      al, MCH_SMRAM_G_SMRAME
        mov     ecx, eax
        mov     eax, MCH_REG(MCH_SMRAM)
        call    pci_write8
        ; ICH9 PM block at PMBASE_VALUE (OVMF's PlatformPei does this early).
        mov     eax, LPC_REG(LPC_PMBASE)
        mov     ecx, PMBASE_VALUE
        call    pci_write32
        mov     eax, LPC_REG(LPC_ACPI_CNTL)
        call    pci_read8
        or      al, LPC_ACPI_CNTL_ACPI_EN
        mov     ecx, eax
        mov     eax, LPC_REG(LPC_ACPI_CNTL)
        call    pci_write8

        ; First output line: negotiated features, TSEG, CPU counts.
        PRINT   "features "
        PHEX32  [VAR_FEATURES]
        PRINT   " tseg "
        PHEX32  [VAR_TSEG_BASE]
        PRINT   " size "
        PHEX32  [VAR_TSEG_SIZE]
        PRINT   " cpus "
        mov     eax, [VAR_NCPUS]
        call    dec32_32
        PRINT   " maxcpus "
        mov     eax, [VAR_MAXCPUS]
        call    dec32_32
        NEWLINE

; === Step 3a: start the APs, learn the APIC IDs, assign slots ================================
        MP_COPY_TRAMPOLINE
        mov     dword [VAR_TICKET], 1   ; index 0 is the BSP's
        MP_APIC_ID
        mov     [VAR_BSP_APIC], ebx
        mov     [APIC_TABLE], ebx
        bts     [VAR_STARTED], ebx
        mov     dword [APIC_SVR], APIC_SVR_ENABLE_FF
        cmp     dword [VAR_NCPUS], 1
        je      .aps_arrived
        MP_INIT_SIPI_SIPI send_ipi_shorthand, ICR_INIT_ALL_BUT_SELF, ICR_SIPI_ALL_BUT_SELF | SIPI_VECTOR
        MP_WAIT_APS VAR_ARRIVED
.aps_arrived:
        ; Insertion sort: slot order = ascending APIC ID, independent of arrival order.
        MP_SORT_APIC_TABLE
        xor     ecx, ecx                ; find the BSP's slot
        mov     eax, [VAR_BSP_APIC]
.find_bsp:
        cmp     [APIC_TABLE + ecx * 4], eax
        je      .found_bsp
        inc     ecx
        jmp     .find_bsp               ; it is there: the BSP stored it itself
.found_bsp:
        mov     [VAR_BSP_SLOT], ecx

; === Step 4: fill TSEG while it is open, then close it (T_EN) ================================
        mov     ebx, [VAR_TSEG_BASE]
        lea     edi, [ebx + SMRAM_TABLE_OFF]
        mov     ecx, 2 * (MAX_CPUS + 1)
        mov     eax, 0xFFFFFFFF         ; "no report" until a stub writes its slot
        rep stosd
        xor     edx, edx                ; slot
.install_stub:
        mov     edi, edx
        shl     edi, 13                 ; * SMM_TILE_SIZE
        lea     edi, [edi + ebx + TILE_BUFFER_OFF]     ; = SMBASE(slot) + 0x8000
        push    edi
        mov     esi, ROMA(smi_stub)
        mov     ecx, smi_stub_end - smi_stub
        rep movsb
        pop     edi
        mov     [edi + (smi_stub.slot - smi_stub)], edx
        lea     eax, [ebx + SMRAM_TABLE_OFF]
        mov     [edi + (smi_stub.table - smi_stub)], eax
        inc     edx
        cmp     edx, [VAR_NCPUS]
        jb      .install_stub
        ; Close TSEG: from now on only SMM sees it.
        mov     eax, MCH_REG(MCH_ESMRAMC)
        call    pci_read8
        or      al, MCH_ESMRAMC_T_EN
        mov     ecx, eax
        mov     eax, MCH_REG(MCH_ESMRAMC)
        call    pci_write8

; === Step 3b: relocate every CPU's SMBASE, APs in slot order, the BSP last ===================
        mov     esi, ROMA(reloc_handler)
        mov     edi, RELOC_HANDLER_ADDR
        mov     ecx, reloc_handler_end - reloc_handler
        rep movsb
        xor     edx, edx
.next_ap:
        cmp     edx, [VAR_BSP_SLOT]
        je      .skip_bsp
        call    relocate_slot
.skip_bsp:
        inc     edx
        cmp     edx, [VAR_NCPUS]
        jb      .next_ap
        mov     edx, [VAR_BSP_SLOT]
        call    relocate_slot

; === Step 5: close and lock SMRAM ============================================================
        mov     eax, MCH_REG(MCH_SMRAM)
        call    pci_read8
        or      al, MCH_SMRAM_D_LCK
        mov     ecx, eax
        mov     eax, MCH_REG(MCH_SMRAM)
        call    pci_write8
        mov     eax, MCH_REG(MCH_F_SMBASE)
        mov     ecx, MCH_F_SMBASE_LCK
        call    pci_write8
        ; Read back: D_LCK and G_SMRAME set, D_OPEN clear; T_EN and the TSEG size kept;
        ; the default-SMBASE window locked.
        mov     eax, MCH_REG(MCH_SMRAM)
        call    pci_read8
        and     al, MCH_SMRAM_D_LCK | MCH_SMRAM_G_SMRAME | MCH_SMRAM_D_OPEN
        cmp     al, MCH_SMRAM_D_LCK | MCH_SMRAM_G_SMRAME
        jne     .not_locked
        mov     eax, MCH_REG(MCH_ESMRAMC)
        call    pci_read8
        and     eax, MCH_ESMRAMC_TSEG_SZ_MASK | MCH_ESMRAMC_T_EN
        mov     ecx, [VAR_TSEG_SZ_FIELD]
        or      ecx, MCH_ESMRAMC_T_EN
        cmp     eax, ecx
        jne     .not_locked
        mov     eax, MCH_REG(MCH_F_SMBASE)
        call    pci_read8
        cmp     al, MCH_F_SMBASE_LCK
        je      .locked
.not_locked:
        FAIL    7, "SMRAM registers did not lock"
.locked:

; === Step 6: one broadcast SMI; every CPU reports from its own SMBASE ========================
        mov     dx, PMBASE_VALUE + PM_SMI_EN
        in      eax, dx
        or      eax, PM_SMI_EN_GBL_SMI_EN | PM_SMI_EN_APMC_EN
        out     dx, eax
        mov     eax, LPC_REG(LPC_GEN_PMCON_1)
        call    pci_read8
        or      al, LPC_GEN_PMCON_1_SMI_LOCK
        mov     ecx, eax
        mov     eax, LPC_REG(LPC_GEN_PMCON_1)
        call    pci_write8
        in      eax, dx
        and     eax, PM_SMI_EN_GBL_SMI_EN | PM_SMI_EN_APMC_EN
        cmp     eax, PM_SMI_EN_GBL_SMI_EN | PM_SMI_EN_APMC_EN
        je      .smi_enabled
        FAIL    4, "SMI_EN did not take GBL_SMI_EN | APMC_EN"
.smi_enabled:
        mov     dword [VAR_ACKS], 0
        mov     al, APM_CMD_REPORT
        out     APM_CNT, al
        mov     ecx, [VAR_NCPUS]
.wait_acks:
        cmp     [VAR_ACKS], ecx
        je      .all_acked
        pause
        jmp     .wait_acks
.all_acked:

; === Step 7: check and print =================================================================
        xor     esi, esi                ; slot
.print_slot:
        mov     eax, [RESULTS + esi * 8]
        cmp     eax, [APIC_TABLE + esi * 4]
        je      .apic_matches
        inc     dword [VAR_MISMATCHES]
.apic_matches:
        mov     eax, esi
        call    smbase_of_slot
        cmp     eax, [RESULTS + esi * 8 + 4]
        je      .smbase_matches
        inc     dword [VAR_MISMATCHES]
.smbase_matches:
        PRINT   "cpu "
        PHEX32  [RESULTS + esi * 8]
        PRINT   " smbase "
        PHEX32  [RESULTS + esi * 8 + 4]
        NEWLINE
        inc     esi
        cmp     esi, [VAR_NCPUS]
        jb      .print_slot
        cmp     dword [VAR_MISMATCHES], 0
        je      .all_good
        FAIL    6, "reported APIC IDs / SMBASEs differ from the relocation plan"
.all_good:
        EXIT    0

; --- BSP subroutines (32-bit) ---------------------------------------------------------------

; smbase_of_slot: EAX = slot -> EAX = SMBASE(slot) = TSEG base + TILE_BUFFER_OFF + slot * 0x2000 - 0x8000.
smbase_of_slot:
        shl     eax, 13
        add     eax, [VAR_TSEG_BASE]
        add     eax, TILE_BUFFER_OFF - SMM_ENTRY_OFFSET
        ret

; relocate_slot: EDX = slot. Sends the relocation SMI to slot EDX's CPU and waits until that
; CPU has left SMM with its new SMBASE; then checks the handler's report. Preserves EDX.
relocate_slot:
        push    edx
        mov     eax, edx
        call    smbase_of_slot
        mov     [VAR_RELOC_NEW], eax
        mov     dword [VAR_RELOC_DONE], 0
        mov     dword [VAR_RELOC_APIC], 0xFFFFFFFF
        mov     dword [VAR_RELOC_REV], 0
        mov     dword [VAR_RELOC_LEFT], 0xFFFFFFFF
        mov     ebx, [APIC_TABLE + edx * 4]     ; EBX = target APIC ID
        cmp     edx, [VAR_BSP_SLOT]
        je      .self
        ; An AP: come back through ap_after_reloc, which reports after RSM.
        mov     dword [VAR_RELOC_RESUME], ap_after_reloc - ap_trampoline
        mov     eax, ebx
        shl     eax, 24
        mov     [APIC_ICR_HIGH], eax
        mov     dword [APIC_ICR_LOW], ICR_SMI_PHYSICAL
        call    wait_icr_idle
.wait_ap:
        cmp     [VAR_RELOC_LEFT], ebx
        je      .check
        pause
        jmp     .wait_ap
.self:
        ; The BSP: return where interrupted, i.e. into the loop below.
        mov     dword [VAR_RELOC_RESUME], 0
        mov     dword [APIC_ICR_HIGH], 0
        mov     dword [APIC_ICR_LOW], ICR_SMI_SELF
        call    wait_icr_idle
.wait_self:
        cmp     dword [VAR_RELOC_DONE], 1
        je      .check
        pause
        jmp     .wait_self
.check:
        cmp     dword [VAR_RELOC_DONE], 1
        jne     .bad
        cmp     [VAR_RELOC_APIC], ebx
        jne     .bad
        test    dword [VAR_RELOC_REV], SS_REV_SMBASE_RELOC
        jz      .no_reloc_bit
        pop     edx
        ret
.no_reloc_bit:
        PRINT   "boot: SMM revision "
        PHEX32  [VAR_RELOC_REV]
        PRINTLN " has no SMBASE relocation (bit 17)"
        EXIT    5
.bad:
        PRINT   "boot: relocation SMI for APIC ID "
        PHEX32  ebx
        PRINT   " answered by "
        PHEX32  [VAR_RELOC_APIC]
        NEWLINE
        EXIT    5

; send_ipi_shorthand: EAX = ICR low with a destination shorthand.
send_ipi_shorthand:
        mov     dword [APIC_ICR_HIGH], 0
        mov     [APIC_ICR_LOW], eax
        ; fall through
; wait_icr_idle: until the delivery-status bit reads idle (QEMU always reads idle).
wait_icr_idle:
        test    dword [APIC_ICR_LOW], APIC_ICR_BUSY
        jz      .idle
        pause
        jmp     wait_icr_idle
.idle:
        ret

        MP_IPI_DELAY_ROUTINE            ; ipi_delay

; fw_cfg: select key AX (the data offset restarts at 0). Preserves all registers.
fw_select:
        push    edx
        mov     dx, FW_CFG_SEL
        out     dx, ax
        pop     edx
        ret

; fw_read8: AL = the next data byte (EAX zero-extended).
fw_read8:
        push    edx
        mov     dx, FW_CFG_DATA
        xor     eax, eax
        in      al, dx
        pop     edx
        ret

; fw_read_le16 / fw_read_le32: EAX = the next 2 / 4 data bytes as a little-endian number.
fw_read_le16:
        push    ecx
        call    fw_read8
        mov     ecx, eax
        call    fw_read8
        shl     eax, 8
        or      eax, ecx
        pop     ecx
        ret

fw_read_le32:
        push    ecx
        push    edx
        xor     edx, edx
        mov     ecx, 4
.byte:
        call    fw_read8
        shrd    edx, eax, 8             ; the byte enters EDX at bits 31:24 and moves down
        loop    .byte
        mov     eax, edx
        pop     edx
        pop     ecx
        ret

; fw_find_file: ESI = NUL-terminated name. Walks the file directory (key 0x0019; big-endian
; count, then 64-byte entries: size BE32, select BE16, reserved, name[56]).
; Found: CF = 0, EAX = selector, ECX = size. Not found: CF = 1. Preserves the rest.
fw_find_file:
        push    ebx
        push    edx
        push    edi
        mov     ax, FW_CFG_FILE_DIR
        call    fw_select
        call    fw_read_le32
        bswap   eax
        mov     ebx, eax                ; entries left
.entry:
        test    ebx, ebx
        jz      .missing
        dec     ebx
        mov     edi, FWCFG_ENTRY
        mov     ecx, FW_CFG_DIR_ENTRY
.read:
        call    fw_read8
        stosb
        loop    .read
        xor     ecx, ecx                ; compare names, the NUL included
.compare:
        mov     al, [esi + ecx]
        cmp     al, [FWCFG_ENTRY + 8 + ecx]
        jne     .entry
        inc     ecx
        test    al, al
        jz      .found
        cmp     ecx, FW_CFG_DIR_ENTRY - 8
        jb      .compare
        jmp     .entry
.found:
        mov     ecx, [FWCFG_ENTRY]
        bswap   ecx                     ; size
        movzx   eax, word [FWCFG_ENTRY + 4]
        xchg    al, ah                  ; selector
        clc
        jmp     .out
.missing:
        stc
.out:
        pop     edi
        pop     edx
        pop     ebx
        ret

; fw_dma_write: EAX = selector, ESI = source (RAM below 4 GiB), ECX = length. One DMA
; operation selects the item and writes the bytes at offset 0 (docs/specs/fw_cfg.rst: a
; 32-bit write of the big-endian descriptor address to 0x518 after the high half to 0x514
; starts it; the device clears the control word when done, or leaves the error bit set).
; Out: CF = 1 on error. Preserves all registers but EAX.
fw_dma_write:
        push    edx
        shl     eax, 16
        or      eax, FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE
        bswap   eax
        mov     [DMA_DESC + 0], eax     ; control
        mov     eax, ecx
        bswap   eax
        mov     [DMA_DESC + 4], eax     ; length
        mov     dword [DMA_DESC + 8], 0 ; address, high half
        mov     eax, esi
        bswap   eax
        mov     [DMA_DESC + 12], eax    ; address, low half
        mov     dx, FW_CFG_DMA_ADDR_HI
        xor     eax, eax
        out     dx, eax
        mov     dx, FW_CFG_DMA_ADDR_LO
        mov     eax, DMA_DESC
        bswap   eax
        out     dx, eax
.poll:
        mov     eax, [DMA_DESC + 0]
        bswap   eax
        test    eax, FW_CFG_DMA_ERROR
        jnz     .error
        test    eax, eax
        jz      .done                   ; CF = 0 after TEST
        pause
        jmp     .poll
.error:
        stc
.done:
        pop     edx
        ret

; PCI configuration mechanism #1. EAX = PCI_ADDR(dev, fn, reg); reads return the value
; zero-extended in EAX (the address is lost), writes take the value in ECX and preserve EAX.
; pci_port: select the dword holding the register, DX = data port for its byte offset.
pci_port:
        push    eax
        and     al, 0xFC
        mov     dx, PCI_CFG_ADDR
        out     dx, eax
        pop     eax
        mov     edx, eax
        and     edx, 3
        add     edx, PCI_CFG_DATA
        ret

pci_read8:
        push    edx
        call    pci_port
        xor     eax, eax
        in      al, dx
        pop     edx
        ret

pci_read16:
        push    edx
        call    pci_port
        xor     eax, eax
        in      ax, dx
        pop     edx
        ret

pci_write8:
        push    edx
        push    eax
        call    pci_port
        mov     eax, ecx
        out     dx, al
        pop     eax
        pop     edx
        ret

pci_write16:
        push    edx
        push    eax
        call    pci_port
        mov     eax, ecx
        out     dx, ax
        pop     eax
        pop     edx
        ret

pci_write32:
        push    edx
        push    eax
        call    pci_port
        mov     eax, ecx
        out     dx, eax
        pop     eax
        pop     edx
        ret

        DEC32_ROUTINE_32                ; dec32_32

        CONSOLE_ROUTINES

name_supported:     db "etc/smi/supported-features", 0
name_requested:     db "etc/smi/requested-features", 0
name_features_ok:   db "etc/smi/features-ok", 0

        align   8
gdt:
        dq      0                               ; 0x00 null
        GDT_DESC 0, 0xFFFFF, 0x9B, 0xC          ; 0x08 flat 32-bit code
        GDT_DESC 0, 0xFFFFF, 0x93, 0xC          ; 0x10 flat 32-bit data
gdt_end:

; --- AP start-up code, copied to TRAMPOLINE_ADDR (SDM Vol. 3A §9.4.4.2; as in mp-hello) -----
; Real mode, CS = 0x0800 (base 0x8000), IP = 0; only relative jumps and DS-relative data.
        MODE    16
ap_trampoline:
        ; DS = 0, EBX = APIC ID; at most once per APIC ID (else park); then the ticket:
        ; EAX = this AP's table index.
        MP_AP_TAKE_TICKET .park, eax
        mov     di, ax
        shl     di, 2
        mov     [APIC_TABLE + di], ebx
        lock inc dword [VAR_ARRIVED]    ; only after the store: the BSP may now read it
.park:
        MP_AP_PARK                      ; an SMI wakes the CPU; RSM returns after the HLT

; The relocation SMI returns here (the handler rewrote the saved IP): the AP has executed
; RSM, so its new SMBASE is in force and 0x30000 is free for the next CPU. Say so, then park.
ap_after_reloc:
        xor     ax, ax
        mov     ds, ax
        MP_APIC_ID
        mov     [VAR_RELOC_LEFT], ebx
        jmp     ap_trampoline.park
ap_trampoline_end:

%if ap_trampoline_end - ap_trampoline > 0x1000
 %error "the AP start-up code must fit in its 4 KiB page"
%endif

; --- The relocation SMI handler, copied to 0x38000 (SDM §32.11) ------------------------------
; Entered in SMM at CS base = SMBASE = 0x30000, IP = 0x8000 (see smm.inc for the environment).
; Reads the mailbox in normal RAM (DS base 0, 32-bit addresses), answers there, and RSMs.
        MODE    16
reloc_handler:
        mov     eax, 1
        cpuid
        shr     ebx, 24
        mov     [dword VAR_RELOC_APIC], ebx
        SMM_SAVE_MAP_FIELDS             ; EAX = revision; SI/DI/BX = field offsets; ZF = AMD64
        setz    cl                      ; CL = 1: 8-byte RIP
        mov     [dword VAR_RELOC_REV], eax
        mov     edx, [cs:si]            ; EDX = the current SMBASE (0x30000)
        movzx   esi, si
        add     esi, edx                ; linear address of the SMBASE field
        mov     eax, [dword VAR_RELOC_NEW]
        mov     [esi], eax              ; RSM loads it (revision bit 17)
        mov     eax, [dword VAR_RELOC_RESUME]
        test    eax, eax
        jz      .ack
        movzx   edi, di
        add     edi, edx                ; linear address of RIP / EIP
        mov     [edi], eax
        test    cl, cl
        jz      .ip_done
        mov     dword [edi + 4], 0      ; RIP bits 63:32
.ip_done:
        movzx   ebx, bx
        add     ebx, edx
        and     byte [ebx], 0xFE        ; auto-HALT restart off: resume at the new IP
.ack:
        mov     dword [dword VAR_RELOC_DONE], 1
        rsm
reloc_handler_end:

; --- The per-CPU SMI entry stub, copied to SMBASE(i) + 0x8000 in TSEG -------------------------
; Entered in SMM at CS base = SMBASE(i), IP = 0x8000. The slot number and the SMRAM table
; address are patched into each copy (read through CS). Reports (APIC ID, SMBASE) into the
; SMRAM table, copies the pair to the normal-RAM result mailbox, acknowledges, RSMs.
        MODE    16
smi_stub:
        mov     eax, 1
        cpuid
        shr     ebx, 24
        mov     ebp, ebx                ; EBP = APIC ID
        SMM_SAVE_MAP_FIELDS             ; SI = SMBASE field offset
        mov     ebx, [cs:si]            ; EBX = SMBASE this CPU entered with
        mov     edi, [cs:SMM_ENTRY_OFFSET + (smi_stub.slot - smi_stub)]
        mov     esi, [cs:SMM_ENTRY_OFFSET + (smi_stub.table - smi_stub)]
        lea     esi, [esi + edi * 8]    ; this slot's SMRAM table entry
        mov     [esi], ebp
        mov     [esi + 4], ebx
        mov     eax, [esi]              ; the mailbox gets what SMRAM holds
        mov     [RESULTS + edi * 8], eax
        mov     eax, [esi + 4]
        mov     [RESULTS + edi * 8 + 4], eax
        lock inc dword [dword VAR_ACKS]
        rsm
        align   4
.slot:  dd      0                       ; patched: slot number
.table: dd      0                       ; patched: SMRAM table address
smi_stub_end:

%if smi_stub_end - smi_stub > SMM_TILE_SIZE - 0x200
 %error "the entry stub must end before the save area of the CPU three tiles below"
%endif

        IMAGE_END
