; boot.asm - SMM bring-up the way OVMF does it on QEMU q35: negotiate SMI features over fw_cfg,
; set up TSEG, relocate every CPU's SMBASE into TSEG one at a time (BSP last), install a
; per-CPU SMI entry stub, close and lock SMRAM, then - optionally - serve CPU hot-add and
; hot-remove events with one of four SMBASE strategies, and finally take one broadcast SMI in
; which every online CPU reports its APIC ID and SMBASE.
;
; Run it with
;   qemu-system-x86_64 -machine q35,smm=on -nodefaults -display none -no-reboot -smp N \
;       -bios boot.bin -debugcon file:out.txt -global isa-debugcon.iobase=0x402 \
;       -device isa-debug-exit,iobase=0xf4,iosize=4 [-fw_cfg name=opt/smmsim/...,string=...]
; Expected console output without opt/smmsim files (QEMU's default 128 MiB of RAM and 16 MiB
; extended TSEG shown):
;   features 00000007 tseg 07000000 size 01000000 cpus N maxcpus N
;   cpu 00000000 smbase 07000000      one line per CPU in ascending slot order:
;   cpu 00000001 smbase 07002000      APIC ID and the SMBASE the CPU reported from SMM
;   ...
; and exit value 0 (QEMU status 1). The output depends only on the RAM size, the TSEG size,
; the CPU counts, the negotiated features, the APIC IDs and the configuration - never on
; timing.
; Failures print one line starting with "boot:" and exit with
;   1 no fw_cfg            2 unsupported CPU count / APIC IDs   3 SMI feature negotiation failed
;   4 TSEG / SMRAM setup   5 an SMBASE relocation went wrong
;   6 the final report does not match the relocation   7 SMRAM did not lock
;   8 bad opt/smmsim configuration           9 the SMBASE controller did not take or lock
;   10 CPU hot-add failed (no hot-plug block, feature not negotiated, no SMBASE slot)
;   11 CPU removal failed (an eject did not take)
; One failure is deliberately not detected: the `ovmf` handshake under QEMU TCG (and smmsim's
; `qemu` profile) hangs in SMM, see "Hot-add, strategy smbase-smram" below.
;
; Limits: maxcpus (fw_cfg key 0x000F) up to 4096 and every APIC ID below 4096 (error 2);
; every per-CPU table is sized for 4096. TSEG must reach the end of the last slot's save
; area, maxcpus * 0x2000 + 0xE000 bytes (see step 2), so the default 16 MiB extended TSEG
; holds at most 2041 CPUs and 4096 need 33 MiB; beyond that step 2 prints
;   boot: TSEG of 16 MiB holds the SMBASE tiles of at most 2041 CPUs, maxcpus is 4096
; and exits with 4. QEMU 7.2 TCG itself refuses more than 255 CPUs ("requires kernel
; irqchip and X2APIC API support"), so everything above 255 is checked in smmsim only.
;
; APIC mode and APIC IDs: with maxcpus up to 255 and every APIC ID below 255 the CPUs stay in
; xAPIC mode (MMIO at 0xFEE00000), as before. Otherwise xAPIC's 8-bit destinations cannot
; reach every CPU, so - as edk2's MpInitLib decides - the BSP switches to x2APIC mode before
; it starts the APs (IA32_APIC_BASE bit 10, MSR 0x1B), each AP switches as it starts, and a
; hot-added CPU as it comes online; IPIs then go through the 64-bit ICR MSR 0x830
; (destination in bits 63:32), also from SMM. Every CPU reads its APIC ID the way edk2's
; GetInitialApicId does (mp.inc MP_INITIAL_APIC_ID): CPUID leaf 0xB EDX when leaf 0xB exists
; and reports a non-zero EBX[15:0], else leaf 1 EBX[31:24]; the boot code, the APs and every
; SMI handler use that one source. (No check of CPUID.1:ECX[21], the x2APIC feature flag:
; edk2 does not check it either when it forces x2APIC for more than 255 CPUs.)
;
; Configuration: optional fw_cfg files (QEMU: -fw_cfg name=opt/smmsim/NAME,string=VALUE),
; ASCII, trailing newline / CR / blanks ignored. A value not listed is error 8.
;   opt/smmsim/strategy        smbase-smram (default) | controller | formula | max-cpus
;   opt/smmsim/handshake       ovmf (default) | redirect          (smbase-smram hot-add only)
;   opt/smmsim/hotplug-events  decimal: hot-plug events (one per CPU insert, one per removal
;                              request) to serve before the final report; default 0 = none
;   opt/smmsim/boot-cpus       decimal, max-cpus only: CPUs (lowest APIC IDs) that stay after
;                              boot; the others are ejected right after boot. Default: all
;   opt/smmsim/on-done         exit (default): final report, then debug-exit 0 |
;                              halt: final report, then the BSP parks in CLI; HLT for good
;   opt/smmsim/attacks         comma-separated attack names the guest side (the OS part)
;                              plays on hot-add, see "Attacks" below; default none (QEMU's
;                              -fw_cfg string= needs the comma doubled: a,,b)
;   opt/smmsim/lock-default-smbase  1 (default) | 0: step 5 leaves MCH 0x9C unlocked, so the
;                              default-SMBASE window stays plain RAM (a vulnerable firmware)
;   opt/smmsim/lock-controller 1 (default) | 0: controller / formula leave the SMBASE
;                              controller unlocked (error 8 with any other strategy)
; When opt/smmsim/strategy is present, a second line says what was chosen:
;   strategy S handshake H events N [boot-cpus B] [on-done halt] [attacks A,...]
;            [default-smbase unlocked] [controller unlocked]
; (boot-cpus only for max-cpus, on-done only when it is halt, the rest only when given.)
;
; Lines of the hot-plug phase (only with hotplug-events > 0), all strategies:
;   ready for hot-plug                       boot done; now polling GPE0 for events
;   cpu 00000001 relocated to 07002000       smbase-smram: the monarch gave the new CPU this
;                                            SMBASE (printed just before the CPU is onlined)
;   cpu 00000001 online                      printed by the new CPU itself, in real mode
;   cpu 00000002 removed                     ejected by the monarch
;   cpu 00000000 not removed: boot CPU       a removal request for the BSP, refused
; then the final report lines as above, one per online CPU, in slot order. Each inserted CPU
; prints its "relocated" and "online" lines together, so the output does not depend on how
; the platform's events fall into GPE rounds. controller prints
;   smbase controller N entries locked
; and formula
;   smbase formula base 07000000 stride 00002000 locked
; right after the strategy line ("unlocked" instead with lock-controller 0); max-cpus prints a
; "removed" line per CPU ejected at boot.
;
; Attacks (opt/smmsim/attacks; none without the file). The guest side turns malicious OS and
; tries to get its own code run in SMM, or the new CPU's saved state shared, around a hot-add.
; Each attack prints one line when it acts; whether it worked is for smmsim's checker to say
; (smm-code-outside-smram, smbase-outside-smram, save-area-overlap: exploitable; attempts the
; platform dropped - smram-write-attempt, controller-write-attempt, unrelocated-cpu-runs -
; are not). Code the guest plants sets VAR_ATTACK_MARK if it ever runs in SMM; the guest then
; prints "attack: guest code ran in SMM" once the hot-plug events are served, so a QEMU run
; shows it too.
;   plant-38000       on an insert event, before the hot-plug SMI (or, for the strategies
;                     without one, before the CPU is onlined): copy a payload over the first
;                     SMI handler at 0x38000 - one instruction that sets the marker, then the
;                     genuine first SMI handler, so a relocation that runs it still completes.
;                     Locked window: every write is dropped (and recorded). Unlocked window
;                     (lock-default-smbase 0): the monarch never reinstalls the handler (as
;                     OVMF's CpuHotplugSmm installs it once), so the new CPU runs the payload.
;       attack plant-38000: wrote 0x38000
;   early-smi         on an insert event, before the hot-plug SMI: a directed SMI IPI to the
;                     new CPU, so it reaches SMM (or holds the SMI) before the firmware asks.
;       attack early-smi: SMI IPI to cpu 00000001
;   early-sipi        on an insert event, before the hot-plug SMI: INIT-SIPI-SIPI the new CPU
;                     into OS code (0xD000, vector 0x0D: store its APIC ID, park in CLI; HLT)
;                     and wait until it runs - OVMF's malicious-OS case, where the new CPU
;                     runs OS code with SMBASE 0x30000 and takes the SMI from there.
;       attack early-sipi: cpu 00000001 runs OS code at 0000D000
;   write-controller  right after "ready for hot-plug": point the SMBASE controller at OS RAM
;                     from outside SMM - formula: base 0x100000, stride 0, control FORMULA;
;                     else every absent CPU's entry (selector, SMBASE 0x100000), control 0 -
;                     with a payload at 0x108000 (marker, acknowledge step 8, RSM). The
;                     controller takes writes from SMM only, locked or not, so all are dropped.
;       attack write-controller: SMBASE controller pointed at 00100000
; Two CPUs hot-added back to back are not an attack of the guest: a scenario schedules them.
;
; What it follows (PLATFORM.md; Intel SDM Vol. 3C ch. 32 "System Management Mode"; QEMU
; hw/pci-host/q35.c, hw/isa/lpc_ich9.c, hw/nvram/fw_cfg.c + docs/specs/fw_cfg.rst,
; hw/acpi/cpu.c + docs/specs/acpi_cpu_hotplug.rst, hw/acpi/ich9.c,
; target/i386/tcg/sysemu/smm_helper.c; OVMF's SmiFeatures, SmmAccess, SmmControl2,
; SmmRelocation, PlatformPei and CpuHotplugSmm code, by name only - nothing here is copied):
;
; Step 0, reset vector and counts: a CPU that arrives at the reset vector without
;   IA32_APIC_BASE.BSP (bit 8) parks in CLI; HLT at once, touching nothing - under QEMU TCG a
;   CPU that took an SMI while waiting for SIPI resumes there after RSM (PLATFORM.md "CPU
;   behaviour profiles"). The BSP reads fw_cfg key 0x0001 (whether DMA is offered: then each
;   file lookup copies the file directory to RAM in one DMA transfer, as edk2's QemuFwCfgLib
;   uses DMA where it can, instead of reading it a byte per port access), key 0x0005 (boot
;   CPUs) and 0x000F (maxcpus: the APIC-ID limit, which sizes the SMBASE tiles), the
;   opt/smmsim files, and then counts
;   the present CPUs through the ACPI CPU hot-plug block as OVMF's PlatformPei does
;   (docs/specs/acpi_cpu_hotplug.rst "Detecting and enabling modern CPU hotplug interface" and
;   "Enumerate CPUs present/non present CPUs"): write 0 to the selector twice (QEMU starts in
;   legacy mode; the first write switches to the modern block), command 0, read command data
;   2 - 0 means modern (all ones: no block; the legacy bitmap reads bit 0 set). QEMU's block
;   has exactly maxcpus selectors: with command 0 in force command data reads the selector
;   while it names a possible CPU and 0 past the last one, so selector maxcpus - 1 must read
;   itself and selector maxcpus 0 (a block that disagrees is measured selector by selector).
;   Then one walk over the selectors with command 3 in force counts the boot CPUs: "enabled"
;   without a pending insert event, and reads their APIC IDs (into an APIC ID -> selector
;   map; an ID listed twice or of 4096 or more is error 2). controller and formula need
;   every possible CPU's APIC ID, and with maxcpus up to 255 an absent CPU's APIC ID can
;   still decide the APIC mode, so there the walk reads every APIC ID; otherwise an absent
;   CPU costs one selector write and one status read, and a hot-added CPU's APIC ID is read
;   (and checked the same way) when step 7 finds its insert event. After a hard
;   reset QEMU's key 0x0005 does not count hot-added CPUs, so the block decides; key 0x0005
;   is only the fallback when the block is missing (then no hot-plug is possible). Then the
;   APIC mode is chosen (see "APIC mode and APIC IDs" above).
;   A CPU with a pending insert event is not a boot CPU: it was hot-added and the guest has
;   not served it yet - with maxcpus in the thousands the walk alone takes milliseconds, and
;   a CPU plugged meanwhile (before or after the walk passes its selector) must still come
;   online through step 7. So the boot steps never wake, relocate or report it, its insert
;   event stays, and step 7 serves it like any other (controller and formula first relocate
;   it, step 6). (QEMU keeps insert events across a reset; a CPU hot-added before a reset
;   whose event was never cleared is therefore served as a hot-add again, not booted.)
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
;   The first output line shows the negotiated bitmap. Broadcast is required (step 8);
;   hot-plug with SMI is required for smbase-smram with hotplug-events > 0, hot-unplug for a
;   max-cpus boot that ejects CPUs.
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
;   * The APs are started with INIT-SIPI-SIPI into a trampoline that marks its APIC ID in a
;     "started" bitmap (LOCK BTS; a CPU started twice parks at once), switches to x2APIC mode
;     if the BSP did, counts itself as arrived and parks in `cli; hlt`; an SMI still wakes a
;     halted CPU. With the hot-plug block the INIT, the SIPI and the second SIPI each go to
;     every boot AP by APIC ID (all INITs, the delay, all SIPIs, ...), so a CPU hot-added
;     meanwhile stays in wait-for-SIPI for step 7; without the block they are broadcast (all
;     excluding self, as mp-hello). Once all have arrived the BSP reads the bitmap in
;     ascending order: the APIC-ID table in slot order, whatever the arrival order, in
;     O(APIC IDs). With the block, every APIC ID that answered must be a boot CPU's.
;   * Slots: smbase-smram and max-cpus give slot i to the i-th present CPU in ascending
;     APIC-ID order (QEMU's BSP has APIC ID 0, so it is slot 0); controller and formula give
;     slot a to APIC ID a, for every possible APIC ID (0 .. maxcpus - 1). SMBASE(slot) =
;     TSEG base + 0x8000 + slot * 0x2000 - 0x8000 = TSEG base + slot * 0x2000 (PLATFORM.md
;     "Firmware conventions": tile buffer at TSEG base + 0x8000). Slot i's entry code is at
;     SMBASE(i) + 0x8000, its save area at SMBASE(i) + 0xFE00 .. 0xFFFF (inside tile i + 3,
;     which starts 0x6000 further up).
;   * The relocation handler is copied to 0x38000 (default SMBASE 0x30000 + 0x8000). For
;     each present CPU's slot - APs in slot order, the BSP last - the BSP writes the new
;     SMBASE into a mailbox in normal RAM, sends the CPU a directed SMI IPI (ICR delivery mode
;     010, physical destination, x2APIC: through MSR 0x830; the BSP uses the "self"
;     shorthand) and waits. The handler
;     reads the revision ID at SMBASE + 0xFEFC to pick the layout (AMD64: SMBASE field at
;     0xFF00; Intel 32-bit: 0xFEF8), writes the new SMBASE there, reports its APIC ID and
;     revision, sets a done flag and executes RSM, which loads the new SMBASE.
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
; Step 4, entry stubs: before T_EN is set, the BSP copies the slot table (slot -> APIC ID or
;   free) and the monarch's settings (strategy, handshake, CPU counts, APIC mode) into TSEG,
;   and copies `smi_stub` (by dwords) to SMBASE(i) + 0x8000 for every assigned slot (present
;   CPUs; controller and formula: every possible CPU, up to 4096 copies), patching in the slot
;   number and the TSEG base. Each copy ends in its slot's SMRAM report pair (APIC ID,
;   SMBASE; all ones until step 8). Then T_EN closes TSEG. SMM code reads its settings from
;   TSEG only, never from normal RAM.
;
; Step 4b, hot-add machinery (OVMF CpuHotplugSmm), after relocation, while the default-SMBASE
;   window is still plain RAM: the first SMI handler replaces the relocation handler at
;   0x38000, the mailbox at 0x30000 gets a closed gate (all ones), the post-SMM pen goes to
;   0xA000 (SIPI vector 0x0A) and the guest's AP online stub to 0xB000 (vector 0x0B).
;
; Step 5, lock (OVMF SmmAccess lock): T_EN (already set), D_LCK in MCH 0x9D, and 0x02 into
;   MCH 0x9C (the default-SMBASE window becomes SMRAM until hard reset; with
;   lock-default-smbase 0 this write is skipped and 0x9C must read 0x01, the window stays
;   plain RAM: mailbox, first SMI handler and monarch stack in reach of the OS). The registers are
;   read back - nothing reads SMRAM from outside SMM to prove it, because smmsim records
;   such an access as an event. Then SMIs are enabled (OVMF SmmControl2): PMBASE = 0x600
;   (LPC 0x40) with ACPI_EN (LPC 0x44 bit 7, step 2), SMI_EN |= GBL_SMI_EN | APMC_EN,
;   SMI_LOCK (LPC 0xA0 bit 4).
;
; The per-CPU entry stub dispatches on the APM command it reads back from port 0xB2:
;   0x00 report (step 8); 0x04 CPU hot-plug and 0x05 SMBASE controller: the BSP (the
;   monarch: IA32_APIC_BASE.BSP) switches to a stack in the locked default-SMBASE window
;   (0x40000-0x4FFFF, SMRAM, unused by the first SMI handler) and serves it, every other CPU
;   executes RSM at once; any other command: RSM. The monarch answers through a reply block
;   in normal RAM and a flag the guest waits for (PLATFORM.md "When an SMI lands").
;
; Step 6, strategy work right after boot:
;   controller and formula, first: the platform gives a hot-added CPU its SMBASE from the
;     controller at the moment it plugs it, so a CPU hot-added while the firmware booted (an
;     insert event pending, step 0) kept 0x30000. Before its first controller write, in the
;     same APM 0x05 SMI, the monarch relocates each such CPU to SMBASE(APIC ID) exactly as
;     smbase-smram relocates a hot-added CPU (mailbox, first SMI handler, the configured
;     handshake, the pen); step 7 then onlines it. Not covered: a CPU plugged during the
;     programming SMI itself gets SMBASE(a) if its entry was already written, else 0x30000,
;     and the monarch cannot tell which.
;   controller: APM 0x05; the monarch writes SMBASE(a) for every possible APIC ID a into the
;     SMBASE controller (0x0EE0 APIC-ID selector, 0x0EE4 SMBASE, read back), then sets LOCK in
;     control (0x0EE8) and reads it back. The controller refuses writes from outside SMM.
;   formula: APM 0x05; the monarch writes base = TSEG base (0x0EEC) and stride 0x2000
;     (0x0EF0), then FORMULA | LOCK, and reads all three back. (PLATFORM.md's port range
;     says 0x0EE0-0x0EEF, its register table puts the stride at offset 0x10; the table wins.)
;   max-cpus: every possible CPU must be present; those in slots boot-cpus and up (the highest
;     APIC IDs, ejected in slot order) go through the removal path (below); their slots and
;     SMBASEs stay reserved, so a re-added CPU (INIT only, SMBASE kept) is just onlined.
;
; Step 7, hot-plug events (hotplug-events > 0; what an OS runs for QEMU's AML CSCN / CEJ0):
;   print "ready for hot-plug", then poll GPE0_STS bit 2 (PMBASE + 0x20); write 1 to clear
;   it, then scan: selector 0, command 0, read status; no event -> done; else command data is
;   the CPU with an event (a smaller one means the search wrapped: done), record it as an
;   insert or a remove, continue at the next selector. Serve the round, scan again, until a
;   scan is empty; then wait for the next GPE while fewer than hotplug-events were served.
;   Two CPUs added back to back within one SMI window are both found by the monarch's own
;   scan and relocated one after the other (edk2 bug 2929's case).
;   * Inserts: smbase-smram writes 0x04 to 0xB2 and waits for the monarch's reply. Then each
;     inserted CPU gets its "relocated" line (smbase-smram), is onlined with a directed
;     INIT-SIPI-SIPI into a real-mode routine that takes the console spinlock, prints
;     "cpu X online", sets a flag and parks in CLI; HLT (an SMI wakes it, RSM returns into
;     the park loop), and gets its insert event cleared (control bit 1) once the flag is
;     seen. controller, formula and max-cpus send no SMI: the platform loaded the SMBASE.
;   * Removals (all strategies; OVMF's unplug path): for each CPU with a remove event: set
;     firmware-remove (control bit 4), clear the remove event (bit 2); then 0x04 to 0xB2 and
;     wait. The monarch ejects every CPU whose status shows firmware-remove (control bit 3),
;     waits until it reads absent, frees its slot (smbase-smram only) and lists it; the
;     guest prints "cpu X removed". CPU 0 (the BSP) is never removed.
;
; Hot-add, strategy smbase-smram (monarch, in SMM): walk the CPUs with an event (command 0
;   from selector 0 up, as the guest's scan; the monarch's removal pass does the same) for
;   "enabled + insert event" CPUs whose APIC ID has no slot; for each, strictly one at a
;   time: take the first free slot, install its entry stub, write SMBASE(slot) into the
;   mailbox (+8), clear about-to-leave (+21) and the pen's last byte, then
;   * handshake `ovmf` (OVMF CpuHotplugSmm, as shipped): directed SMI IPI, INIT-SIPI-SIPI to
;     the pen, open the gate (gate = APIC ID), wait for about-to-leave, wait for the pen's
;     last byte, close the gate. Under the `kvm` and `sdm` profiles the SMI stays pending in
;     wait-for-SIPI and is taken right after the SIPI, at 0x38000 with saved CS:IP = pen:0.
;     Under QEMU TCG and the `qemu` profile the new CPU took the 0xB2 broadcast SMI at once
;     and sits at the closed gate; the INIT then resets it out of SMM (dropping the pending
;     SMI), the SIPI runs the pen, and the monarch waits for about-to-leave forever - the
;     expected, reproducible hang (PLATFORM.md "CPU behaviour profiles").
;   * handshake `redirect` (a variant that QEMU TCG completes; not OVMF's): open the gate and
;     send only the directed SMI, no INIT-SIPI-SIPI; the mailbox's resume segment (+16) tells
;     the first SMI handler to rewrite its saved CS (selector and base) and RIP/EIP to the pen
;     and to clear auto-HALT restart. Under `kvm`/`sdm` it hangs instead: the SMI stays
;     pending until a SIPI that never comes. Under QEMU the new CPUs that took the broadcast
;     share the save area at 0x3FE00; they hold identical post-INIT states, and the gate lets
;     one at a time rewrite and leave.
;   The first SMI handler (0x38000): wait until the gate equals its APIC ID, write the new
;   SMBASE into its save-state SMBASE field (layout by revision ID, as the relocation handler
;   does), redirect if asked, set about-to-leave, RSM. The pen: set the last byte of its page,
;   then CLI; HLT forever. Waiting for the pen byte proves the RSM happened, so the next CPU
;   may use 0x30000, and an INIT sent later (to online the CPU) cannot lose the relocation.
;
; Step 8: one broadcast SMI (0x00 to port 0xB2). Every CPU enters its stub at its own
;   SMBASE + 0x8000; the stub reads its SMBASE from the save area and its APIC ID from CPUID,
;   stores the pair in its copy's report pair in SMRAM, copies the pair from there to the
;   normal-RAM result mailbox (non-SMM code cannot read SMRAM after the lock), increments
;   the acknowledgement counter and executes RSM. The BSP waits for one acknowledgement per
;   online CPU, checks every online slot's pair against the slot's APIC ID and SMBASE(slot)
;   and prints the lines above. Step 9: on-done.
;
; Memory (normal RAM, all below 0xA0000, none in 0x30000-0x4FFFF which becomes SMRAM; the
; tables hold 4096 entries, of which maxcpus are used):
;   0x07000          BSP stack top (grows down)
;   0x08000-0x08FFF  AP trampoline (SIPI vector 0x08), incl. ap_after_reloc
;   0x09000-0x09FFF  variables, relocation mailbox, fw_cfg DMA descriptor and scratch
;   0x0A000-0x0AFFF  post-SMM pen (SIPI vector 0x0A); its last byte is the "left SMM" flag
;   0x0B000-0x0BFFF  AP online stub (SIPI vector 0x0B, a far jump into the image); stack
;   0x0C000-0x0C1FF  "started" bitmap, one bit per APIC ID (set by real-mode APs, DS = 0)
;   0x0D000-0x0DFFF  attack early-sipi: the OS code a new CPU is started in (vector 0x0D)
;   0x10000-0x25FFF  boot APIC IDs, selector -> APIC ID, slot -> APIC ID, APIC ID -> selector
;                    and -> slot maps, insert / remove lists, present and online flags
;   0x50000-0x57FFF  result mailbox: per slot (APIC ID, SMBASE), written from SMM in step 8
;   0x58000-0x6400F  monarch reply: status, relocated (APIC ID, slot), removed APIC IDs
; Default-SMBASE window (SMRAM after step 5):
;   0x30000          hot-add mailbox        0x38000  relocation handler, then first SMI handler
;   0x3FE00-0x3FFFF  save area of SMBASE 0x30000       0x40000-0x4FFFF  monarch stack
; SMRAM (TSEG, top of low RAM):
;   TSEG + 0x0000    slot table: per slot the APIC ID, or all ones for a free slot (16 KiB)
;   TSEG + 0x4000    monarch settings
;   TSEG + 0x8000 + i * 0x2000   slot i's entry stub (= SMBASE(i) + 0x8000), ending in its
;                    report pair (APIC ID, SMBASE)
;   TSEG + 0xFE00 + i * 0x2000   slot i's save area; the last ends at maxcpus * 0x2000 + 0xE000
;
; The BSP runs in 32-bit protected mode with flat segments (for the xAPIC at 0xFEE00000 and
; TSEG); the APs stay in real mode below 1 MiB; the SMI handlers run in SMM's 16-bit mode.

%include "include/image.inc"
%include "include/mode.inc"
%include "include/console.inc"
%include "include/pmode.inc"
%include "include/smm.inc"
%include "include/hotplug.inc"
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
MAX_CPUS            equ 4096        ; maxcpus limit: smmsim's (QEMU 7.2's q35 stops at 288)
APIC_ID_LIMIT       equ 4096        ; every APIC ID is below this: sizes the APIC-ID maps
XAPIC_ID_LIMIT      equ 255         ; xAPIC: 8-bit APIC IDs, 0xFF is the broadcast ID
SLOT_COUNT          equ MAX_CPUS    ; entries of every per-slot table
PAGE_SIZE           equ 0x1000

; --- configuration (opt/smmsim/*; values are indexes into the name tables at the end) ------
STRATEGY_SMBASE_SMRAM equ 0
STRATEGY_CONTROLLER equ 1
STRATEGY_FORMULA    equ 2
STRATEGY_MAX_CPUS   equ 3
HANDSHAKE_OVMF      equ 0
HANDSHAKE_REDIRECT  equ 1
ON_DONE_EXIT        equ 0
ON_DONE_HALT        equ 1
OPT_FILE_MAX        equ 64          ; bytes of a configuration file read, the NUL included
DECIMAL_MAX_DIGITS  equ 9           ; keeps a parsed number below 2^32

; --- RAM layout (see the header) -------------------------------------------------------------
TRAMPOLINE_ADDR     equ SIPI_VECTOR << 12
VARS                equ 0x9000
VAR_BAD_APIC        equ VARS + 0x00     ; dd: an AP's APIC ID >= APIC_ID_LIMIT (0 = none)
VAR_ARRIVED         equ VARS + 0x04     ; dd: APs that stored their APIC ID
VAR_NCPUS           equ VARS + 0x08     ; dd: N, the boot CPUs (hot-plug block or key 5)
VAR_MAXCPUS         equ VARS + 0x0C     ; dd: fw_cfg key 0x000F = number of SMBASE slots
VAR_BSP_APIC        equ VARS + 0x10     ; dd
VAR_BSP_SLOT        equ VARS + 0x14     ; dd
VAR_FEATURES        equ VARS + 0x18     ; dq: requested SMI features, LE (the DMA source)
VAR_TSEG_BASE       equ VARS + 0x20     ; dd
VAR_TSEG_SIZE       equ VARS + 0x24     ; dd
VAR_TSEG_SZ_FIELD   equ VARS + 0x28     ; dd: ESMRAMC TSEG_SZ bits to program
VAR_KEY_SUPPORTED   equ VARS + 0x30     ; dd: fw_cfg selectors of the three files
VAR_KEY_REQUESTED   equ VARS + 0x34
VAR_KEY_FEATURES_OK equ VARS + 0x38
VAR_MISMATCHES      equ VARS + 0x3C     ; dd: step 8 check failures
; relocation mailbox (step 3): written by the BSP, read and answered by the handler
VAR_RELOC_NEW       equ VARS + 0x40     ; dd: the SMBASE the handler installs
VAR_RELOC_RESUME    equ VARS + 0x44     ; dd: 0 = return where interrupted, else the new IP
VAR_RELOC_DONE      equ VARS + 0x48     ; dd: handler sets 1 just before RSM
VAR_RELOC_APIC      equ VARS + 0x4C     ; dd: APIC ID the handler ran on
VAR_RELOC_REV       equ VARS + 0x50     ; dd: revision ID it read
VAR_RELOC_LEFT      equ VARS + 0x54     ; dd: an AP stores its APIC ID here after RSM
VAR_ACKS            equ VARS + 0x60     ; dd: step 8 acknowledgements
VAR_X2APIC          equ VARS + 0x80     ; dd: 1 = the CPUs run in x2APIC mode (step 0)
DMA_DESC            equ VARS + 0xC0     ; FWCfgDmaAccess (16 bytes)
FWCFG_ENTRY         equ VARS + 0x100    ; one 64-byte directory entry
VAR_STRATEGY        equ VARS + 0x140    ; dd: STRATEGY_*
VAR_HANDSHAKE       equ VARS + 0x144    ; dd: HANDSHAKE_*
VAR_EVENTS          equ VARS + 0x148    ; dd: hot-plug events to serve
VAR_BOOT_KEEP       equ VARS + 0x14C    ; dd: max-cpus boot-cpus, 0 = all stay
VAR_ON_DONE         equ VARS + 0x150    ; dd: ON_DONE_*
VAR_HAVE_STRATEGY   equ VARS + 0x154    ; dd: 1 = opt/smmsim/strategy was given
VAR_CPUHP           equ VARS + 0x158    ; dd: 1 = the modern CPU hot-plug block answered
VAR_POSSIBLE        equ VARS + 0x15C    ; dd: possible CPUs = hot-plug block selectors
VAR_BOOT_COUNT      equ VARS + 0x160    ; dd: fw_cfg key 0x0005
VAR_HANDLED         equ VARS + 0x164    ; dd: hot-plug events served so far
VAR_HP_ACK          equ VARS + 0x168    ; dd: the monarch sets 1 when its reply is complete
VAR_CON_LOCK        equ VARS + 0x16C    ; dd: console spinlock, bit 0
VAR_ONLINE_FLAG     equ VARS + 0x170    ; dd: APIC ID stored by the AP online routine
VAR_NINS            equ VARS + 0x174    ; dd: entries in INS_LIST
VAR_NREM            equ VARS + 0x178    ; dd: entries in REM_LIST
VAR_REQUESTED       equ VARS + 0x17C    ; dd: removals requested for the next SMI
VAR_ATTACKS         equ VARS + 0x180    ; dd: ATTACK_* bits (opt/smmsim/attacks)
VAR_F_SMBASE_OPEN   equ VARS + 0x184    ; dd: 1 = leave MCH 0x9C unlocked (lock-default-smbase 0)
VAR_CTRL_OPEN       equ VARS + 0x188    ; dd: 1 = leave the SMBASE controller unlocked
VAR_ATTACK_MARK     equ VARS + 0x18C    ; dd: set by guest-planted code that runs in SMM
VAR_ATTACK_OS_RAN   equ VARS + 0x190    ; dd: APIC ID stored by the early-sipi OS code
VAR_FW_CFG_DMA      equ VARS + 0x194    ; dd: 1 = fw_cfg offers DMA (key 0x0001 bit 1)
OPT_BUF             equ VARS + 0x200    ; OPT_FILE_MAX bytes: a configuration file's text
PEN_VECTOR          equ 0x0A            ; post-SMM pen page (OVMF CpuHotplugSmm's "pen")
PEN_ADDR            equ PEN_VECTOR << 12
PEN_SEG             equ PEN_VECTOR << 8
PEN_FLAG            equ PEN_ADDR + PAGE_SIZE - 1    ; the pen's last byte
PEN_ARRIVED         equ 1
ONLINE_VECTOR       equ 0x0B            ; the guest's AP online stub
ONLINE_ADDR         equ ONLINE_VECTOR << 12
ONLINE_STACK_TOP    equ ONLINE_ADDR + PAGE_SIZE     ; one AP is onlined at a time
; --- attacks (opt/smmsim/attacks; see the header) -------------------------------------------
ATTACK_PLANT_38000  equ 1 << 0          ; bit = index in attack_names
ATTACK_EARLY_SMI    equ 1 << 1
ATTACK_EARLY_SIPI   equ 1 << 2
ATTACK_WRITE_CTRL   equ 1 << 3
ATTACK_OS_VECTOR    equ 0x0D            ; early-sipi: the OS code page
ATTACK_OS_ADDR      equ ATTACK_OS_VECTOR << 12
ATTACK_SMBASE       equ 0x100000        ; write-controller: the SMBASE asked for, in OS RAM
ATTACK_MARK_RAN     equ 1               ; VAR_ATTACK_MARK once planted code ran in SMM
VAR_STARTED         equ 0xC000          ; APIC_ID_LIMIT bits: the APIC ID has started
VAR_STARTED_END     equ VAR_STARTED + APIC_ID_LIMIT / 8
DIR_BUF             equ 0xE000          ; the fw_cfg file directory's first page, by DMA
DIR_BUF_BYTES       equ PAGE_SIZE
DIR_BUF_ENTRIES     equ (DIR_BUF_BYTES - 4) / FW_CFG_DIR_ENTRY
; The per-CPU tables, each for MAX_CPUS slots / selectors or APIC_ID_LIMIT APIC IDs; only
; 32-bit code (the BSP, SMM) reads them. Cleared at start (APIC_SELECTOR / APIC_SLOT: to
; MAP_NONE, SLOT_APIC: to SLOT_FREE).
TABLES              equ 0x10000
APIC_TABLE          equ 0x10000         ; dd[N]: boot APIC IDs, ascending
POSSIBLE_APIC       equ 0x14000         ; dd[possible]: selector -> APIC ID (hot-plug block)
SLOT_APIC           equ 0x18000         ; dd[maxcpus]: slot -> APIC ID or SLOT_FREE (guest's copy)
APIC_SELECTOR       equ 0x1C000         ; dw[APIC_ID_LIMIT]: APIC ID -> selector or MAP_NONE
APIC_SLOT           equ 0x1E000         ; dw[APIC_ID_LIMIT]: APIC ID -> slot or MAP_NONE
INS_LIST            equ 0x20000         ; dw[]: selectors with an insert event
REM_LIST            equ 0x22000         ; dw[]: selectors with a remove event
POSSIBLE_PRESENT    equ 0x24000         ; db[possible]: selector -> 1 if present at boot
SLOT_ONLINE         equ 0x25000         ; db[maxcpus]: slot -> 1 if its CPU is online
TABLES_END          equ 0x26000
MAP_NONE            equ 0xFFFF          ; APIC_SELECTOR / APIC_SLOT: no such selector / slot
RESULTS             equ 0x50000         ; (dd APIC ID, dd SMBASE)[maxcpus]
; monarch reply (normal RAM; written from SMM, read after VAR_HP_ACK)
REPLY               equ 0x58000
REPLY_STATUS        equ REPLY + 0x00    ; dd: HP_*
REPLY_COUNT         equ REPLY + 0x04    ; dd: CPUs relocated / controller entries written
REPLY_NREMOVED      equ REPLY + 0x08    ; dd
REPLY_ERR_APIC      equ REPLY + 0x0C    ; dd: the APIC ID an error is about
REPLY_RELOC         equ REPLY + 0x10    ; (dd APIC ID, dd slot)[maxcpus]
REPLY_REMOVED       equ REPLY_RELOC + 8 * MAX_CPUS      ; dd[maxcpus]
REPLY_END           equ REPLY_REMOVED + 4 * MAX_CPUS
RELOC_HANDLER_ADDR  equ SMM_DEFAULT_SMBASE + SMM_ENTRY_OFFSET   ; 0x38000
FIRST_SMI_HANDLER_ADDR equ RELOC_HANDLER_ADDR   ; takes over 0x38000 after step 3
SMM_STACK_SEG       equ 0x4000          ; monarch stack: 0x40000-0x4FFFF (SMRAM after step 5)
SMM_STACK_TOP       equ 0xFFF0

; monarch reply status
HP_OK               equ 0
HP_ERR_NO_SLOT      equ 1               ; a hot-added CPU found no free slot
HP_ERR_EJECT        equ 2               ; an ejected CPU still reads present
HP_ERR_CTRL_TABLE   equ 3               ; the SMBASE controller did not take a value
HP_ERR_CTRL_LOCK    equ 4               ; ... or did not lock
EJECT_POLL_LIMIT    equ 100000          ; status reads before an eject counts as failed

; SMRAM layout, offsets from the TSEG base. Below TILE_BUFFER_OFF nothing else lives: the
; first entry stub is at + 0x8000, the first save area at + 0xFE00.
SLOT_TABLE_OFF      equ 0x0000          ; dd[maxcpus]: APIC ID or SLOT_FREE
G_STRATEGY          equ 0x4000          ; dd: monarch settings, copied in step 4
G_HANDSHAKE         equ 0x4004
G_POSSIBLE          equ 0x4008          ; dd: controller entries / hot-plug selectors
G_MAXCPUS           equ 0x400C          ; dd: slots
G_CPUHP             equ 0x4010          ; dd: 1 = the hot-plug block exists
G_X2APIC            equ 0x4014          ; dd: 1 = IPIs go through the x2APIC ICR MSR
G_CTRL_OPEN         equ 0x4018          ; dd: 1 = do not lock the SMBASE controller
G_END               equ 0x401C
TILE_BUFFER_OFF     equ 0x8000          ; SMBASE(i) = TSEG base + TILE_BUFFER_OFF + i * 0x2000 - 0x8000
; TSEG must reach the end of the last slot's save area: SMBASE(maxcpus - 1) + 0x10000 =
; TSEG base + maxcpus * 0x2000 + TSEG_TILE_SLACK.
TSEG_TILE_SLACK     equ TILE_BUFFER_OFF - SMM_TILE_SIZE + SMM_ENTRY_OFFSET
SLOT_FREE           equ 0xFFFFFFFF
ONLINE_NONE         equ 0xFFFFFFFF      ; VAR_ONLINE_FLAG value that matches no APIC ID

%if APIC_TABLE + 4 * SLOT_COUNT > POSSIBLE_APIC || POSSIBLE_APIC + 4 * MAX_CPUS > SLOT_APIC
 %error "the RAM tables overlap"
%endif
%if SLOT_APIC + 4 * SLOT_COUNT > APIC_SELECTOR || APIC_SELECTOR + 2 * APIC_ID_LIMIT > APIC_SLOT
 %error "the RAM tables overlap"
%endif
%if APIC_SLOT + 2 * APIC_ID_LIMIT > INS_LIST || INS_LIST + 2 * MAX_CPUS > REM_LIST
 %error "the RAM tables overlap"
%endif
%if REM_LIST + 2 * MAX_CPUS > POSSIBLE_PRESENT || POSSIBLE_PRESENT + MAX_CPUS > SLOT_ONLINE
 %error "the RAM tables overlap"
%endif
%if SLOT_COUNT % 4 != 0 || SLOT_ONLINE % 4 != 0
 %error "next_online_slot scans SLOT_ONLINE by dwords"
%endif
%if SLOT_ONLINE + SLOT_COUNT > TABLES_END || TABLES_END > SMM_DEFAULT_SMBASE
 %error "the RAM tables overlap each other or the default-SMBASE window"
%endif
%if RESULTS < SMM_DEFAULT_SMBASE + 0x20000 || RESULTS + 8 * SLOT_COUNT > REPLY
 %error "the result mailbox overlaps the default-SMBASE window or the reply"
%endif
%if REPLY_END > 0xA0000
 %error "the monarch reply must stay in conventional memory"
%endif
%if APIC_SLOT != APIC_SELECTOR + 2 * APIC_ID_LIMIT
 %error "the start-up code fills both APIC-ID maps with one string store"
%endif
%if APIC_TABLE + 4 * APIC_ID_LIMIT > POSSIBLE_APIC || MAX_CPUS > MAP_NONE
 %error "the APIC-ID maps cannot hold every APIC ID / slot"
%endif
%if SLOT_TABLE_OFF + 4 * SLOT_COUNT > G_STRATEGY || G_END > TILE_BUFFER_OFF
 %error "the SMRAM tables overlap"
%endif
%if OPT_BUF + OPT_FILE_MAX > VARS + PAGE_SIZE
 %error "the variables overflow their page"
%endif
%if ONLINE_STACK_TOP > 0x10000 || VAR_STARTED_END > 0x10000 || VAR_STARTED < ONLINE_ADDR + PAGE_SIZE
 %error "real-mode code addresses these with 16-bit offsets"
%endif
%if ATTACK_OS_ADDR < VAR_STARTED_END || ATTACK_OS_ADDR + PAGE_SIZE > DIR_BUF
 %error "the early-sipi OS code page overlaps the bitmap or the directory buffer"
%endif
%if DIR_BUF + DIR_BUF_BYTES > TABLES
 %error "the fw_cfg directory buffer overlaps the tables"
%endif
%if ATTACK_SMBASE < 0x100000 || ATTACK_SMBASE + 0x10000 > 0x1000000
 %error "write-controller's SMBASE must lie in RAM above 1 MiB and below 16 MiB"
%endif

; FAIL code, "text": print "boot: text" and exit with `code`.
%macro FAIL 2+
        PRINTLN "boot: ", %2
        EXIT    %1
%endmacro

; CONSOLE_LOCK / CONSOLE_UNLOCK: the console spinlock (bit 0 of VAR_CON_LOCK, DS base 0), so
; an AP's "online" line and the BSP's lines never interleave. Works in 16- and 32-bit code.
%macro CONSOLE_LOCK 0
%%try:
        lock bts dword [VAR_CON_LOCK], 0
        jnc     %%got
        pause
        jmp     %%try
%%got:
%endmacro

%macro CONSOLE_UNLOCK 0
        mov     dword [VAR_CON_LOCK], 0
%endmacro

        MODE    16
start:
        ; Only the BSP boots (PLATFORM.md "Local APIC": IA32_APIC_BASE bit 8). Any other CPU
        ; here - under QEMU TCG a CPU that took an SMI in wait-for-SIPI resumes at the reset
        ; vector after RSM - parks at once and touches nothing.
        mov     ecx, MSR_IA32_APIC_BASE
        rdmsr
        test    ah, APIC_BASE_BSP >> 8
        jnz     .bsp
        MP_AP_PARK
.bsp:
        RM_INIT
        ENTER_PM32_ROM_GDT gdt, gdt_end, pm_entry

        MODE    32
pm_entry:
        PM32_SEGMENTS
        xor     eax, eax
        mov     edi, VARS
        mov     ecx, PAGE_SIZE / 4
        rep stosd                       ; all variables start at 0
        mov     edi, VAR_STARTED
        mov     ecx, (VAR_STARTED_END - VAR_STARTED) / 4
        rep stosd                       ; no APIC ID started
        mov     edi, TABLES
        mov     ecx, (TABLES_END - TABLES) / 4
        rep stosd                       ; no CPU online, no events
        mov     eax, SLOT_FREE
        mov     edi, SLOT_APIC
        mov     ecx, SLOT_COUNT
        rep stosd                       ; every slot free
        mov     edi, APIC_SELECTOR      ; both APIC-ID maps: MAP_NONE (all ones) everywhere
        mov     ecx, (2 * 2 * APIC_ID_LIMIT) / 4
        rep stosd

; === Step 0: fw_cfg present? CPU counts, configuration, the hot-plug block =====================
        mov     ax, FW_CFG_SIGNATURE
        call    fw_select
        call    fw_read_le32
        cmp     eax, 'QEMU'
        je      .have_fw_cfg
        FAIL    1, "no fw_cfg signature"
.have_fw_cfg:
        ; DMA (ID bit 1) makes every file lookup one transfer instead of a byte per port read.
        mov     ax, FW_CFG_ID
        call    fw_select
        call    fw_read_le32
        and     eax, FW_CFG_ID_DMA
        shr     eax, 1
        mov     [VAR_FW_CFG_DMA], eax
        mov     ax, FW_CFG_NB_CPUS
        call    fw_select
        call    fw_read_le16
        mov     [VAR_BOOT_COUNT], eax
        mov     ax, FW_CFG_MAX_CPUS
        call    fw_select
        call    fw_read_le16
        mov     [VAR_MAXCPUS], eax
        mov     ecx, [VAR_BOOT_COUNT]
        test    ecx, ecx
        jz      .bad_count
        cmp     ecx, eax                ; N <= maxcpus <= MAX_CPUS (4096)
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
        call    read_config
        call    cpuhp_probe
        call    check_config
        ; APIC mode: x2APIC when xAPIC's 8-bit destinations cannot reach every possible CPU -
        ; maxcpus above 255, or an APIC ID of 255 or more (cpuhp_probe) - as edk2's MpInitLib
        ; decides; else xAPIC, as before.
        cmp     dword [VAR_MAXCPUS], XAPIC_ID_LIMIT
        jbe     .apic_mode_chosen
        mov     dword [VAR_X2APIC], 1
.apic_mode_chosen:

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
        cmp     dword [VAR_FW_CFG_DMA], 0
        je      .write_by_port
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
        ; What the configuration needs from the negotiation (QEMU refuses a CPU device_add /
        ; device_del under SMM unless these were negotiated).
        cmp     dword [VAR_STRATEGY], STRATEGY_SMBASE_SMRAM
        jne     .plug_feature_ok
        cmp     dword [VAR_EVENTS], 0
        je      .plug_feature_ok
        test    dword [VAR_FEATURES], SMI_F_CPU_HOTPLUG
        jnz     .plug_feature_ok
        FAIL    10, "CPU hot-plug with SMI was not negotiated"
.plug_feature_ok:
        call    boot_ejects
        jz      .unplug_feature_ok
        test    dword [VAR_FEATURES], SMI_F_CPU_HOTUNPLUG
        jnz     .unplug_feature_ok
        FAIL    11, "CPU hot-unplug with SMI was not negotiated"
.unplug_feature_ok:

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
        ; ...and hold the tiles of every possible CPU: the last one's save area ends at
        ; SMBASE(maxcpus - 1) + 0x10000 = TSEG + TILE_BUFFER_OFF + (maxcpus - 1) * 0x2000 + 0x8000
        ; = TSEG + maxcpus * 0x2000 + TSEG_TILE_SLACK (16 MiB: at most 2041 CPUs).
        mov     ecx, [VAR_MAXCPUS]
        shl     ecx, 13
        add     ecx, TSEG_TILE_SLACK
        cmp     ecx, eax
        jbe     .tseg_fits_cpus
        PRINT   "boot: TSEG of "
        shr     eax, 20
        call    dec32_32
        PRINT   " MiB holds the SMBASE tiles of at most "
        mov     eax, [VAR_TSEG_SIZE]
        sub     eax, TSEG_TILE_SLACK
        shr     eax, 13
        call    dec32_32
        PRINT   " CPUs, maxcpus is "
        mov     eax, [VAR_MAXCPUS]
        call    dec32_32
        NEWLINE
        EXIT    4
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
        call    print_strategy_line

; === Step 3a: start the APs, learn the APIC IDs, assign slots ================================
        MP_COPY_TRAMPOLINE
        MP_INITIAL_APIC_ID
        mov     [VAR_BSP_APIC], ebx
        mov     eax, ebx
        cmp     eax, APIC_ID_LIMIT
        jae     bad_apic_id
        bts     [VAR_STARTED], ebx
        cmp     dword [VAR_X2APIC], 0
        je      .xapic
        call    enter_x2apic
        jmp     .apic_enabled
.xapic:
        mov     dword [APIC_SVR], APIC_SVR_ENABLE_FF
.apic_enabled:
        cmp     dword [VAR_NCPUS], 1
        je      .aps_arrived
        cmp     dword [VAR_CPUHP], 0
        jne     .directed
        MP_INIT_SIPI_SIPI send_ipi_shorthand, ICR_INIT_ALL_BUT_SELF, ICR_SIPI_ALL_BUT_SELF | SIPI_VECTOR
        jmp     .aps_started
.directed:
        MP_INIT_SIPI_SIPI ipi_to_boot_aps, ICR_INIT_PHYSICAL, ICR_SIPI_PHYSICAL | SIPI_VECTOR
.aps_started:
        MP_WAIT_APS VAR_ARRIVED
.aps_arrived:
        call    collect_boot_apic_ids   ; slot order = ascending APIC ID, not arrival order
        call    check_boot_apic_ids
        call    assign_boot_slots

; === Step 4: fill TSEG while it is open, then close it (T_EN) ================================
        mov     ebx, [VAR_TSEG_BASE]
        mov     esi, SLOT_APIC          ; the slot table, as assigned
        lea     edi, [ebx + SLOT_TABLE_OFF]
        mov     ecx, [VAR_MAXCPUS]
        rep movsd
        mov     eax, [VAR_STRATEGY]     ; the monarch's settings
        mov     [ebx + G_STRATEGY], eax
        mov     eax, [VAR_HANDSHAKE]
        mov     [ebx + G_HANDSHAKE], eax
        mov     eax, [VAR_POSSIBLE]
        mov     [ebx + G_POSSIBLE], eax
        mov     eax, [VAR_MAXCPUS]
        mov     [ebx + G_MAXCPUS], eax
        mov     eax, [VAR_CPUHP]
        mov     [ebx + G_CPUHP], eax
        mov     eax, [VAR_X2APIC]
        mov     [ebx + G_X2APIC], eax
        mov     eax, [VAR_CTRL_OPEN]
        mov     [ebx + G_CTRL_OPEN], eax
        xor     edx, edx                ; slot
.install_stub:
        call    next_assigned_slot
        jc      .stubs_installed
        call    install_stub
        inc     edx
        jmp     .install_stub
.stubs_installed:
        ; Close TSEG: from now on only SMM sees it.
        mov     eax, MCH_REG(MCH_ESMRAMC)
        call    pci_read8
        or      al, MCH_ESMRAMC_T_EN
        mov     ecx, eax
        mov     eax, MCH_REG(MCH_ESMRAMC)
        call    pci_write8

; === Step 3b: relocate every present CPU's SMBASE, APs in slot order, the BSP last ===========
        mov     esi, ROMA(reloc_handler)
        mov     edi, RELOC_HANDLER_ADDR
        mov     ecx, reloc_handler_end - reloc_handler
        rep movsb
        xor     edx, edx
.next_ap:
        call    next_online_slot
        jc      .aps_relocated
        cmp     edx, [VAR_BSP_SLOT]
        je      .skip_slot
        call    relocate_slot
.skip_slot:
        inc     edx
        jmp     .next_ap
.aps_relocated:
        mov     edx, [VAR_BSP_SLOT]
        call    relocate_slot

; === Step 4b: hot-add machinery in the default-SMBASE window, pen and online stub ============
        mov     esi, ROMA(first_smi_handler)
        mov     edi, FIRST_SMI_HANDLER_ADDR
        mov     ecx, first_smi_handler_end - first_smi_handler
        rep movsb
        mov     dword [MBOX_GATE_LO], MBOX_GATE_CLOSED
        mov     dword [MBOX_GATE_HI], MBOX_GATE_CLOSED
        mov     dword [MBOX_NEW_SMBASE], 0
        mov     word [MBOX_RESUME_SEG], 0
        mov     byte [MBOX_ABOUT_TO_LEAVE], 0
        mov     esi, ROMA(pen)
        mov     edi, PEN_ADDR
        mov     ecx, pen_end - pen
        rep movsb
        mov     esi, ROMA(ap_online_stub)
        mov     edi, ONLINE_ADDR
        mov     ecx, ap_online_stub_end - ap_online_stub
        rep movsb

; === Step 5: close and lock SMRAM, enable SMIs ===============================================
        mov     eax, MCH_REG(MCH_SMRAM)
        call    pci_read8
        or      al, MCH_SMRAM_D_LCK
        mov     ecx, eax
        mov     eax, MCH_REG(MCH_SMRAM)
        call    pci_write8
        cmp     dword [VAR_F_SMBASE_OPEN], 0
        jne     .f_smbase_left_open     ; lock-default-smbase 0: a vulnerable firmware
        mov     eax, MCH_REG(MCH_F_SMBASE)
        mov     ecx, MCH_F_SMBASE_LCK
        call    pci_write8
.f_smbase_left_open:
        ; Read back: D_LCK and G_SMRAME set, D_OPEN clear; T_EN and the TSEG size kept;
        ; the default-SMBASE window locked (or, left open, still reading "queried").
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
        mov     cl, MCH_F_SMBASE_LCK
        cmp     dword [VAR_F_SMBASE_OPEN], 0
        je      .f_smbase_expected
        mov     cl, MCH_F_SMBASE_IN_RAM
.f_smbase_expected:
        cmp     al, cl
        je      .locked
.not_locked:
        FAIL    7, "SMRAM registers did not lock"
.locked:
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

; === Step 6: strategy work right after boot ==================================================
        call    program_smbase_controller
        call    boot_ejects
        jz      .no_boot_ejects
        mov     dword [VAR_REQUESTED], 0
        mov     edx, [VAR_BOOT_KEEP]    ; slots >= boot-cpus go (slot order = APIC order)
.boot_eject:
        cmp     edx, [VAR_BSP_SLOT]
        je      .boot_eject_next        ; never the BSP
        mov     eax, [SLOT_APIC + edx * 4]
        call    selector_of_apic        ; -> EBX
        call    request_removal
.boot_eject_next:
        inc     edx
        cmp     edx, [VAR_NCPUS]
        jb      .boot_eject
        call    finish_removals
.no_boot_ejects:

; === Step 7: hot-plug events =================================================================
        cmp     dword [VAR_EVENTS], 0
        je      .events_done
        PRINTLN "ready for hot-plug"
        test    dword [VAR_ATTACKS], ATTACK_WRITE_CTRL
        jz      .wait_event
        call    attack_write_controller
.wait_event:
        mov     eax, [VAR_HANDLED]
        cmp     eax, [VAR_EVENTS]
        jae     .events_done
        mov     dx, PMBASE_VALUE + PM_GPE0_STS
.poll_gpe:
        in      al, dx
        test    al, PM_GPE0_STS_CPU_HOTPLUG
        jnz     .gpe
        pause
        jmp     .poll_gpe
.gpe:
        ; Clear the status first: an event that arrives during the scans sets it again.
        mov     al, PM_GPE0_STS_CPU_HOTPLUG
        out     dx, al
.round:
        call    scan_events
        mov     eax, [VAR_NINS]
        or      eax, [VAR_NREM]
        jz      .wait_event
        call    handle_inserts
        call    handle_removals
        jmp     .round
.events_done:
        cmp     dword [VAR_ATTACK_MARK], 0
        je      .no_mark
        PRINTLN "attack: guest code ran in SMM"
.no_mark:

; === Step 8: one broadcast SMI; every online CPU reports from its own SMBASE =================
        xor     ecx, ecx                ; ECX = online CPUs = acknowledgements to wait for
        xor     edx, edx
.count_online:
        call    next_online_slot
        jc      .counted_online
        inc     ecx
        inc     edx
        jmp     .count_online
.counted_online:
        mov     dword [VAR_ACKS], 0
        mov     al, APM_CMD_REPORT
        out     APM_CNT, al
.wait_acks:
        cmp     [VAR_ACKS], ecx
        jae     .all_acked
        pause
        jmp     .wait_acks
.all_acked:
        xor     edx, edx                ; slot
.print_slot:
        call    next_online_slot
        jc      .printed
        mov     esi, edx                ; ESI = slot
        mov     eax, [RESULTS + esi * 8]
        cmp     eax, [SLOT_APIC + esi * 4]
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
        lea     edx, [esi + 1]
        jmp     .print_slot
.printed:
        cmp     dword [VAR_MISMATCHES], 0
        je      .all_good
        FAIL    6, "reported APIC IDs / SMBASEs differ from the relocation plan"
.all_good:

; === Step 9: on-done =========================================================================
        cmp     dword [VAR_ON_DONE], ON_DONE_HALT
        jne     .exit
        MP_AP_PARK                      ; the platform may reset the machine later
.exit:
        EXIT    0

; --- BSP subroutines (32-bit) ---------------------------------------------------------------

; read_config: reads the optional opt/smmsim/* files into VAR_STRATEGY, VAR_HANDSHAKE,
; VAR_EVENTS, VAR_BOOT_KEEP, VAR_ON_DONE, VAR_ATTACKS, VAR_F_SMBASE_OPEN, VAR_CTRL_OPEN (all
; 0 = default, from the initial clear) and sets
; VAR_HAVE_STRATEGY when the strategy file exists. A bad value ends the run (error 8).
; Clobbers EAX ECX EDI ESI.
read_config:
        mov     esi, ROMA(name_opt_strategy)
        call    read_opt_file
        jc      .no_strategy
        mov     dword [VAR_HAVE_STRATEGY], 1
        mov     edi, ROMA(strategy_names)
        call    lookup_opt_word
        mov     [VAR_STRATEGY], eax
.no_strategy:
        mov     esi, ROMA(name_opt_handshake)
        call    read_opt_file
        jc      .no_handshake
        mov     edi, ROMA(handshake_names)
        call    lookup_opt_word
        mov     [VAR_HANDSHAKE], eax
.no_handshake:
        mov     esi, ROMA(name_opt_events)
        call    read_opt_file
        jc      .no_events
        call    parse_decimal
        mov     [VAR_EVENTS], eax
.no_events:
        mov     esi, ROMA(name_opt_boot_cpus)
        call    read_opt_file
        jc      .no_boot_cpus
        call    parse_decimal
        test    eax, eax
        jz      bad_opt_value           ; "0 CPUs stay" cannot be: the BSP stays
        mov     [VAR_BOOT_KEEP], eax
.no_boot_cpus:
        mov     esi, ROMA(name_opt_on_done)
        call    read_opt_file
        jc      .no_on_done
        mov     edi, ROMA(on_done_names)
        call    lookup_opt_word
        mov     [VAR_ON_DONE], eax
.no_on_done:
        mov     esi, ROMA(name_opt_attacks)
        call    read_opt_file
        jc      .no_attacks
        call    parse_attack_list
.no_attacks:
        mov     esi, ROMA(name_opt_lock_f_smbase)
        call    read_opt_file
        jc      .no_lock_f_smbase
        call    parse_flag
        xor     eax, 1                  ; 0 = lock (default), 1 = leave open
        mov     [VAR_F_SMBASE_OPEN], eax
.no_lock_f_smbase:
        mov     esi, ROMA(name_opt_lock_ctrl)
        call    read_opt_file
        jc      .no_lock_ctrl
        call    parse_flag
        xor     eax, 1
        mov     [VAR_CTRL_OPEN], eax
.no_lock_ctrl:
        ret

; read_opt_file: ESI = NUL-terminated file name. Absent: CF = 1. Present: its bytes (at most
; OPT_FILE_MAX - 1, else error 8) go to OPT_BUF without trailing blanks, CR or LF (anything
; up to ' '), NUL-terminated; CF = 0, ECX = length kept. Preserves ESI; clobbers EAX ECX.
read_opt_file:
        push    ebx
        push    edi
        call    fw_find_file            ; EAX = selector, ECX = size
        jc      .out
        cmp     ecx, OPT_FILE_MAX - 1
        ja      bad_opt_value
        call    fw_select
        mov     edi, OPT_BUF
        mov     ebx, ecx
        jecxz   .read
.byte:
        call    fw_read8
        stosb
        loop    .byte
.read:
        mov     ecx, ebx
.strip:
        jecxz   .terminate
        cmp     byte [OPT_BUF + ecx - 1], ' '
        ja      .terminate
        dec     ecx
        jmp     .strip
.terminate:
        mov     byte [OPT_BUF + ecx], 0
        clc
.out:
        pop     edi
        pop     ebx
        ret

; lookup_opt_word: EDI = table of name addresses ending in 0, ESI = the file's name (for the
; error line). Out: EAX = index of the name equal to OPT_BUF; none: error 8.
lookup_opt_word:
        push    ebx
        push    ecx
        push    edx
        xor     eax, eax                ; index
.entry:
        mov     ebx, [edi + eax * 4]
        test    ebx, ebx
        jz      bad_opt_value
        xor     edx, edx
.compare:
        mov     cl, [ebx + edx]
        cmp     cl, [OPT_BUF + edx]
        jne     .next
        inc     edx
        test    cl, cl
        jnz     .compare
        pop     edx
        pop     ecx
        pop     ebx
        ret
.next:
        inc     eax
        jmp     .entry

; parse_decimal: OPT_BUF = 1 to DECIMAL_MAX_DIGITS decimal digits -> EAX; anything else:
; error 8 naming the file ESI.
parse_decimal:
        push    ecx
        push    edx
        xor     eax, eax
        xor     ecx, ecx
.digit:
        movzx   edx, byte [OPT_BUF + ecx]
        test    edx, edx
        jz      .end
        sub     edx, '0'
        cmp     edx, 9
        ja      bad_opt_value
        imul    eax, eax, 10
        add     eax, edx
        inc     ecx
        cmp     ecx, DECIMAL_MAX_DIGITS
        ja      bad_opt_value
        jmp     .digit
.end:
        jecxz   bad_opt_value           ; an empty file is not a number
        pop     edx
        pop     ecx
        ret

; parse_flag: OPT_BUF = "0" or "1" -> EAX; anything else: error 8 naming the file ESI.
parse_flag:
        call    parse_decimal
        cmp     eax, 1
        ja      bad_opt_value
        ret

; parse_attack_list: OPT_BUF = attack names separated by commas (an empty file names none)
; -> VAR_ATTACKS |= their ATTACK_* bits (bit i = attack_names[i]); an unknown or empty name:
; error 8 naming the file ESI. Clobbers EAX ECX EDI.
parse_attack_list:
        push    ebx
        push    edx
        mov     edi, OPT_BUF            ; EDI = the current name
        cmp     byte [edi], 0
        je      .done
.name:
        xor     ecx, ecx                ; ECX = index into attack_names
.candidate:
        mov     ebx, [ROMA(attack_names) + ecx * 4]
        test    ebx, ebx
        jz      bad_opt_value
        xor     eax, eax                ; EAX = characters matched
.compare:
        mov     dl, [ebx + eax]
        test    dl, dl
        jz      .candidate_ends
        cmp     dl, [edi + eax]
        jne     .next_candidate
        inc     eax
        jmp     .compare
.candidate_ends:                        ; a match if the current name ends here too
        mov     dl, [edi + eax]
        test    dl, dl
        jz      .match
        cmp     dl, ','
        je      .match
.next_candidate:
        inc     ecx
        jmp     .candidate
.match:
        bts     dword [VAR_ATTACKS], ecx
        add     edi, eax
        cmp     byte [edi], 0
        je      .done
        inc     edi                     ; past the comma: a name must follow
        jmp     .name
.done:
        pop     edx
        pop     ebx
        ret

; bad_opt_value: ESI = the file's name. Prints "boot: bad value in NAME", exits with 8.
bad_opt_value:
        PRINT   "boot: bad value in "
        call    puts_32
        NEWLINE
        EXIT    8

; cpuhp_probe: counts the boot CPUs through the ACPI CPU hot-plug block (see the header, step
; 0). Out: VAR_CPUHP, VAR_POSSIBLE, VAR_NCPUS, POSSIBLE_PRESENT (boot CPUs only), POSSIBLE_APIC
; and APIC_SELECTOR (every possible CPU when cpuhp_all_ids says so, else the boot CPUs; the
; rest as their insert events are served, scan_events), VAR_X2APIC = 1 if an APIC ID needs
; it. Without the modern block: VAR_NCPUS = fw_cfg key 0x0005, VAR_POSSIBLE = maxcpus.
; Leaves CPU 0 selected. Clobbers EAX EBX ECX EDX ESI EDI.
cpuhp_probe:
        mov     eax, [VAR_BOOT_COUNT]
        mov     [VAR_NCPUS], eax
        mov     eax, [VAR_MAXCPUS]
        mov     [VAR_POSSIBLE], eax
        ; Detection (acpi_cpu_hotplug.rst): selector 0 twice, command 0, read command data 2.
        mov     dx, CPUHP_SELECTOR
        xor     eax, eax
        out     dx, eax                 ; QEMU: legacy -> modern; modern: selects CPU 0
        out     dx, eax                 ; a valid selector for what follows
        mov     dx, CPUHP_COMMAND
        mov     al, CPUHP_CMD_NEXT_EVENT
        out     dx, al
        mov     dx, CPUHP_CMD_DATA2
        in      eax, dx
        test    eax, eax
        jnz     .done                   ; all ones: no block; legacy bitmap: bit 0 set
        mov     dword [VAR_CPUHP], 1
        ; Possible CPUs: QEMU's block has exactly maxcpus selectors. Command 0 stays in force,
        ; so command data reads the selector while it names a possible CPU and 0 past the
        ; last one: two probes confirm that selector maxcpus - 1 is the last. A block that
        ; disagrees is measured selector by selector instead.
        mov     esi, [VAR_MAXCPUS]      ; ESI = possible CPUs
        lea     ebx, [esi - 1]
        call    .cmd_data
        cmp     eax, ebx
        jne     .measure
        mov     ebx, esi
        call    .cmd_data
        test    eax, eax
        jz      .counted
.measure:
        xor     esi, esi
.measure_next:
        inc     esi
        cmp     esi, MAX_CPUS
        ja      .bad_count
        mov     ebx, esi
        call    .cmd_data
        cmp     eax, esi
        je      .measure_next
.counted:
        mov     [VAR_POSSIBLE], esi
        ; One walk with command 3 in force: the status of every selector, for the boot CPUs
        ; ("enabled" without a pending insert event) and, where cpuhp_all_ids wants every
        ; possible CPU's, also the APIC ID. An absent CPU then costs a selector write and a
        ; status read.
        xor     ebx, ebx
        call    cpuhp_select_32
        call    cpuhp_apic_id_32
        xor     ecx, ecx                ; ECX = present CPUs
        call    cpuhp_all_ids
        jnz     .walk_all
.walk_present:
        mov     eax, ebx
        mov     dx, CPUHP_SELECTOR
        out     dx, eax
        mov     dx, CPUHP_STATUS
        in      al, dx
        test    al, CPUHP_ST_ENABLED
        jnz     .maybe_present
.next_present:
        inc     ebx
        cmp     ebx, esi
        jb      .walk_present
        jmp     .walked
.maybe_present:
        and     al, CPUHP_ST_ENABLED | CPUHP_ST_INSERT
        cmp     al, CPUHP_ST_ENABLED
        jne     .next_present           ; hot-added: left to step 7
        call    .boot_cpu
        jmp     .next_present
.walk_all:
        mov     eax, ebx
        mov     dx, CPUHP_SELECTOR
        out     dx, eax
        mov     dx, CPUHP_STATUS
        in      al, dx
        and     al, CPUHP_ST_ENABLED | CPUHP_ST_INSERT
        cmp     al, CPUHP_ST_ENABLED
        jne     .id_only                ; absent, or hot-added: left to step 7
        call    .boot_cpu
        jmp     .next_all
.id_only:
        call    .apic_id
.next_all:
        inc     ebx
        cmp     ebx, esi
        jb      .walk_all
.walked:
        mov     [VAR_NCPUS], ecx
        jecxz   .bad_count
        xor     ebx, ebx
        call    cpuhp_select_32
.done:
        ret
; .boot_cpu: EBX = selector of a boot CPU, selected, command 3 in force: counts it in ECX,
; marks it present and maps its APIC ID.
.boot_cpu:
        inc     ecx
        mov     byte [POSSIBLE_PRESENT + ebx], 1
; .apic_id: EBX = selector, selected, command 3 in force: maps its APIC ID; an ID xAPIC cannot
; address sets VAR_X2APIC.
.apic_id:
        call    cpuhp_map_apic_id       ; -> EDI
        cmp     edi, XAPIC_ID_LIMIT
        jb      .xapic_id
        mov     dword [VAR_X2APIC], 1   ; xAPIC cannot address it
.xapic_id:
        ret
; .cmd_data: EBX = selector: selects it, EAX = command data. Clobbers EDX.
.cmd_data:
        mov     eax, ebx
        mov     dx, CPUHP_SELECTOR
        out     dx, eax
        mov     dx, CPUHP_CMD_DATA
        in      eax, dx
        ret
.bad_count:
        FAIL    2, "CPU hot-plug block: no present CPU, or more than 4096 possible"

; cpuhp_all_ids: ZF = 0 if step 0 needs the APIC ID of every possible CPU, not only of the
; boot CPUs: controller and formula program an SMBASE for each (check_config checks them all
; against maxcpus), and with maxcpus up to 255 one APIC ID of 255 or more decides the APIC
; mode. Otherwise (maxcpus above 255: x2APIC anyway) a hot-added CPU's APIC ID is read when
; scan_events finds its insert event. Clobbers EAX.
cpuhp_all_ids:
        mov     eax, [VAR_STRATEGY]
        cmp     eax, STRATEGY_CONTROLLER
        je      .all
        cmp     eax, STRATEGY_FORMULA
        je      .all
        cmp     dword [VAR_MAXCPUS], XAPIC_ID_LIMIT
        jbe     .all
        xor     eax, eax                ; ZF = 1
        ret
.all:
        or      eax, 1                  ; ZF = 0
        ret

; cpuhp_map_apic_id: EBX = selector of the selected CPU, command 3 in force: reads its APIC
; ID into EDI and enters it into POSSIBLE_APIC and APIC_SELECTOR (again for a CPU already
; mapped). Error 2 for an APIC ID of 4096 or more, or one another selector already has.
; Clobbers EAX EDX.
cpuhp_map_apic_id:
        mov     dx, CPUHP_CMD_DATA
        in      eax, dx
        mov     edi, eax                ; EDI = APIC ID bits 31:0
        mov     dx, CPUHP_CMD_DATA2
        in      eax, dx                 ; bits 63:32
        test    eax, eax
        jnz     .bad_apic
        cmp     edi, APIC_ID_LIMIT
        jae     .bad_apic
        movzx   eax, word [APIC_SELECTOR + edi * 2]
        cmp     eax, MAP_NONE
        je      .map
        cmp     eax, ebx
        jne     .twice
.map:
        mov     [APIC_SELECTOR + edi * 2], bx
        mov     [POSSIBLE_APIC + ebx * 4], edi
        ret
.bad_apic:
        PRINT   "boot: CPU hot-plug block: APIC ID of selector "
        PHEX32  ebx
        PRINTLN " is not below 4096"
        EXIT    2
.twice:
        PRINT   "boot: CPU hot-plug block: APIC ID "
        PHEX32  edi
        PRINTLN " is listed twice"
        EXIT    2

; check_config: the combinations the configuration and the machine must satisfy (errors 2,
; 8, 10, 11 with a line naming the rule). Clobbers EAX EBX.
check_config:
        mov     eax, [VAR_NCPUS]
        cmp     eax, [VAR_MAXCPUS]
        jbe     .fits
        FAIL    2, "more present CPUs than maxcpus"
.fits:
        cmp     dword [VAR_CTRL_OPEN], 0
        je      .ctrl_lock_ok
        cmp     dword [VAR_STRATEGY], STRATEGY_CONTROLLER
        je      .ctrl_lock_ok
        cmp     dword [VAR_STRATEGY], STRATEGY_FORMULA
        je      .ctrl_lock_ok
        FAIL    8, "opt/smmsim/lock-controller needs strategy controller or formula"
.ctrl_lock_ok:
        ; controller, formula: slot = APIC ID, so every possible CPU's APIC ID needs a slot.
        cmp     dword [VAR_STRATEGY], STRATEGY_CONTROLLER
        je      .slot_per_apic
        cmp     dword [VAR_STRATEGY], STRATEGY_FORMULA
        jne     .slots_ok
.slot_per_apic:
        xor     ebx, ebx                ; selector (none without the block)
.possible_apic:
        cmp     ebx, [VAR_POSSIBLE]
        jae     .slots_ok
        cmp     dword [VAR_CPUHP], 0
        je      .slots_ok
        mov     eax, [POSSIBLE_APIC + ebx * 4]
        cmp     eax, [VAR_MAXCPUS]
        jae     assign_boot_slots.bad_apic
        inc     ebx
        jmp     .possible_apic
.slots_ok:
        cmp     dword [VAR_EVENTS], 0
        je      .events_ok
        cmp     dword [VAR_CPUHP], 0
        jne     .events_ok
        FAIL    10, "hot-plug events need the ACPI CPU hot-plug block"
.events_ok:
        cmp     dword [VAR_BOOT_KEEP], 0
        je      .keep_ok
        cmp     dword [VAR_STRATEGY], STRATEGY_MAX_CPUS
        je      .keep_range
        FAIL    8, "opt/smmsim/boot-cpus needs strategy max-cpus"
.keep_range:
        mov     eax, [VAR_BOOT_KEEP]
        cmp     eax, [VAR_NCPUS]
        jbe     .keep_ok
        FAIL    8, "opt/smmsim/boot-cpus is more than the present CPUs"
.keep_ok:
        cmp     dword [VAR_STRATEGY], STRATEGY_MAX_CPUS
        jne     .done
        mov     eax, [VAR_NCPUS]
        cmp     eax, [VAR_POSSIBLE]
        je      .all_present
        FAIL    8, "max-cpus needs every possible CPU present at boot"
.all_present:
        call    boot_ejects
        jz      .done
        cmp     dword [VAR_CPUHP], 0
        jne     .done
        FAIL    11, "ejecting CPUs needs the ACPI CPU hot-plug block"
.done:
        ret

; boot_ejects: ZF = 0 if max-cpus ejects CPUs right after boot (boot-cpus < present CPUs),
; ZF = 1 if not. Preserves all registers.
boot_ejects:
        push    eax
        cmp     dword [VAR_STRATEGY], STRATEGY_MAX_CPUS
        jne     .none
        mov     eax, [VAR_BOOT_KEEP]
        test    eax, eax
        jz      .none
        cmp     eax, [VAR_NCPUS]
        jae     .none
        pop     eax                     ; POP keeps the flags: ZF = 0 from the CMP
        ret
.none:
        xor     eax, eax                ; ZF = 1
        pop     eax
        ret

; print_strategy_line: the second output line, only when opt/smmsim/strategy was given.
; Preserves all registers but ESI and EAX.
print_strategy_line:
        cmp     dword [VAR_HAVE_STRATEGY], 0
        je      .out
        PRINT   "strategy "
        mov     eax, [VAR_STRATEGY]
        mov     esi, [ROMA(strategy_names) + eax * 4]
        call    puts_32
        PRINT   " handshake "
        mov     eax, [VAR_HANDSHAKE]
        mov     esi, [ROMA(handshake_names) + eax * 4]
        call    puts_32
        PRINT   " events "
        mov     eax, [VAR_EVENTS]
        call    dec32_32
        cmp     dword [VAR_STRATEGY], STRATEGY_MAX_CPUS
        jne     .no_keep
        PRINT   " boot-cpus "
        mov     eax, [VAR_BOOT_KEEP]
        test    eax, eax
        jnz     .keep
        mov     eax, [VAR_NCPUS]
.keep:
        call    dec32_32
.no_keep:
        cmp     dword [VAR_ON_DONE], ON_DONE_HALT
        jne     .no_halt
        PRINT   " on-done halt"
.no_halt:
        cmp     dword [VAR_ATTACKS], 0
        je      .no_attacks
        PRINT   " attacks "
        call    print_attack_names
.no_attacks:
        cmp     dword [VAR_F_SMBASE_OPEN], 0
        je      .f_smbase_locked
        PRINT   " default-smbase unlocked"
.f_smbase_locked:
        cmp     dword [VAR_CTRL_OPEN], 0
        je      .newline
        PRINT   " controller unlocked"
.newline:
        NEWLINE
.out:
        ret

; print_attack_names: prints the names of the attacks in VAR_ATTACKS, comma-separated, in
; attack_names order. Clobbers EAX ESI.
print_attack_names:
        push    ecx
        push    edx
        xor     ecx, ecx                ; ECX = index
        xor     edx, edx                ; EDX = names printed
.next:
        mov     esi, [ROMA(attack_names) + ecx * 4]
        test    esi, esi
        jz      .done
        bt      dword [VAR_ATTACKS], ecx
        jnc     .skip
        test    edx, edx
        jz      .first
        PRINT   ","
.first:
        call    puts_32
        inc     edx
.skip:
        inc     ecx
        jmp     .next
.done:
        pop     edx
        pop     ecx
        ret

; enter_x2apic: the BSP's switch to x2APIC mode (ENTER_X2APIC_MODE), then the software
; enable through the SVR MSR, as the xAPIC path does through the page. Clobbers EAX ECX EDX.
enter_x2apic:
        ENTER_X2APIC_MODE
        mov     ecx, MSR_X2APIC_SVR
        mov     eax, APIC_SVR_ENABLE_FF
        xor     edx, edx
        wrmsr
        ret

; collect_boot_apic_ids: once every AP has arrived, APIC_TABLE[0 .. N-1] = the APIC IDs set
; in VAR_STARTED, ascending - the slot order, whatever the arrival order. Error 2 for an AP
; whose APIC ID the bitmap cannot hold, for more started CPUs than counted, and in xAPIC mode
; for an APIC ID that needs x2APIC (only possible without the hot-plug block, which lists
; every APIC ID before the APs start). Clobbers EAX EBX ECX EDX ESI.
collect_boot_apic_ids:
        mov     eax, [VAR_BAD_APIC]
        test    eax, eax
        jnz     bad_apic_id
        xor     ecx, ecx                ; ECX = entries so far
        xor     edx, edx                ; EDX = bit number of the bitmap dword's bit 0
.dword:
        mov     esi, edx
        shr     esi, 3
        mov     ebx, [VAR_STARTED + esi]
.bit:
        bsf     eax, ebx
        jz      .next_dword
        btr     ebx, eax
        add     eax, edx                ; EAX = APIC ID
        cmp     ecx, [VAR_NCPUS]
        jae     .too_many
        mov     [APIC_TABLE + ecx * 4], eax
        inc     ecx
        cmp     dword [VAR_X2APIC], 0
        jne     .bit
        cmp     eax, XAPIC_ID_LIMIT
        jb      .bit
        PRINT   "boot: APIC ID "
        PHEX32  eax
        PRINTLN " needs x2APIC mode, but maxcpus is below 256"
        EXIT    2
.next_dword:
        add     edx, 32
        cmp     edx, APIC_ID_LIMIT
        jb      .dword
        ret
.too_many:
        FAIL    2, "more CPUs answered the INIT-SIPI-SIPI than were counted"

; ipi_to_boot_aps: EAX = ICR low (no shorthand): sends it to every boot AP - each CPU step 0
; counted as present, but the BSP - by APIC ID. Unlike the broadcast it leaves alone a CPU
; hot-added while the firmware boots, which must stay in wait-for-SIPI for step 7.
; Preserves all registers.
ipi_to_boot_aps:
        push    ebx
        push    ecx
        xor     ebx, ebx                ; selector
.next:
        cmp     byte [POSSIBLE_PRESENT + ebx], 0
        je      .skip
        mov     ecx, [POSSIBLE_APIC + ebx * 4]
        cmp     ecx, [VAR_BSP_APIC]
        je      .skip
        call    send_ipi
.skip:
        inc     ebx
        cmp     ebx, [VAR_POSSIBLE]
        jb      .next
        pop     ecx
        pop     ebx
        ret

; bad_apic_id: EAX = an APIC ID too large for the tables. Prints it, exits with 2.
bad_apic_id:
        PRINT   "boot: APIC ID "
        PHEX32  eax
        PRINTLN " is not below 4096"
        EXIT    2

; check_boot_apic_ids: with the hot-plug block, every APIC ID that answered the boot
; INIT-SIPI-SIPI must belong to a CPU the block lists as present (else error 2).
; Clobbers EAX EBX ECX.
check_boot_apic_ids:
        cmp     dword [VAR_CPUHP], 0
        je      .done
        xor     ecx, ecx
.next:
        mov     eax, [APIC_TABLE + ecx * 4]
        call    selector_of_apic
        jc      .bad
        cmp     byte [POSSIBLE_PRESENT + ebx], 0
        je      .bad
        inc     ecx
        cmp     ecx, [VAR_NCPUS]
        jb      .next
.done:
        ret
.bad:
        PRINT   "boot: APIC ID "
        PHEX32  eax
        PRINTLN " started but the CPU hot-plug block does not list it as present"
        EXIT    2

; assign_boot_slots: fills SLOT_APIC / SLOT_ONLINE for the boot CPUs (APIC_TABLE, sorted) and
; sets VAR_BSP_SLOT. smbase-smram, max-cpus: slot i = i-th APIC ID. controller, formula:
; slot a = APIC ID a for every a < maxcpus (a present CPU's APIC ID must be below maxcpus,
; else error 2). Clobbers EAX ECX EDX.
assign_boot_slots:
        cmp     dword [VAR_STRATEGY], STRATEGY_CONTROLLER
        je      .by_apic
        cmp     dword [VAR_STRATEGY], STRATEGY_FORMULA
        je      .by_apic
        xor     edx, edx
.by_index:
        mov     eax, [APIC_TABLE + edx * 4]
        call    set_slot_apic
        mov     byte [SLOT_ONLINE + edx], 1
        inc     edx
        cmp     edx, [VAR_NCPUS]
        jb      .by_index
        jmp     .bsp
.by_apic:
        xor     edx, edx
.every:
        mov     eax, edx
        call    set_slot_apic
        inc     edx
        cmp     edx, [VAR_MAXCPUS]
        jb      .every
        xor     ecx, ecx
.present:
        mov     eax, [APIC_TABLE + ecx * 4]
        cmp     eax, [VAR_MAXCPUS]
        jae     .bad_apic
        mov     byte [SLOT_ONLINE + eax], 1
        inc     ecx
        cmp     ecx, [VAR_NCPUS]
        jb      .present
.bsp:
        mov     eax, [VAR_BSP_APIC]
        call    slot_of_apic            ; it is there: the BSP stored its own APIC ID
        mov     [VAR_BSP_SLOT], edx
        ret
.bad_apic:
        PRINT   "boot: APIC ID "
        PHEX32  eax
        PRINTLN " has no SMBASE slot below maxcpus"
        EXIT    2

; selector_of_apic: EAX = APIC ID -> EBX = its hot-plug selector, CF = 0; unknown: CF = 1.
; (APIC_SELECTOR, filled by cpuhp_probe.)
selector_of_apic:
        cmp     eax, APIC_ID_LIMIT
        jae     .none
        movzx   ebx, word [APIC_SELECTOR + eax * 2]
        cmp     ebx, MAP_NONE
        je      .none
        clc
        ret
.none:
        stc
        ret

; slot_of_apic: EAX = APIC ID -> EDX = its slot in SLOT_APIC, CF = 0; none: CF = 1.
; (APIC_SLOT, which set_slot_apic and free_slot keep in step with SLOT_APIC.)
slot_of_apic:
        cmp     eax, APIC_ID_LIMIT
        jae     .none
        movzx   edx, word [APIC_SLOT + eax * 2]
        cmp     edx, MAP_NONE
        je      .none
        clc
        ret
.none:
        stc
        ret

; set_slot_apic: EDX = slot, EAX = APIC ID (below APIC_ID_LIMIT): slot EDX belongs to it.
; Preserves all registers.
set_slot_apic:
        mov     [SLOT_APIC + edx * 4], eax
        mov     [APIC_SLOT + eax * 2], dx
        ret

; next_online_slot: EDX = slot -> EDX = the first slot from there up below maxcpus whose CPU is
; online (SLOT_ONLINE), CF = 0; none: CF = 1. Single bytes up to a dword boundary, then one
; REPE SCASD skips four offline slots per element (SLOT_ONLINE is SLOT_COUNT bytes, a multiple
; of 4, and zero past maxcpus). Preserves all other registers.
next_online_slot:
        push    eax
        push    ecx
        push    edi
.byte:
        cmp     edx, [VAR_MAXCPUS]
        jae     .none
        test    dl, 3
        jz      .dwords
        cmp     byte [SLOT_ONLINE + edx], 0
        jne     .found
        inc     edx
        jmp     .byte
.dwords:
        mov     ecx, [VAR_MAXCPUS]
        sub     ecx, edx
        add     ecx, 3
        shr     ecx, 2                  ; dwords up to the one holding slot maxcpus - 1
        lea     edi, [SLOT_ONLINE + edx]
        xor     eax, eax
        repe scasd                      ; stops past the first non-zero dword (ZF = 0)
        je      .none
        bsf     eax, [edi - 4]
        shr     eax, 3                  ; its first non-zero byte
        lea     edx, [edi - 4 - SLOT_ONLINE + eax]
.found:
        pop     edi
        pop     ecx
        pop     eax
        clc
        ret
.none:
        pop     edi
        pop     ecx
        pop     eax
        stc
        ret

; next_assigned_slot: EDX = slot -> EDX = the first slot from there up below maxcpus that
; SLOT_APIC gives an APIC ID (not SLOT_FREE), CF = 0; none: CF = 1. One REPE SCASD skips the
; free slots. Preserves all other registers.
next_assigned_slot:
        push    eax
        push    ecx
        push    edi
        mov     ecx, [VAR_MAXCPUS]
        sub     ecx, edx
        jbe     .none
        lea     edi, [SLOT_APIC + edx * 4]
        mov     eax, SLOT_FREE
        repe scasd                      ; stops past the first assigned slot (ZF = 0)
        je      .none
        lea     edx, [edi - SLOT_APIC - 4]
        shr     edx, 2
        pop     edi
        pop     ecx
        pop     eax
        clc
        ret
.none:
        pop     edi
        pop     ecx
        pop     eax
        stc
        ret

; free_slot: EDX = slot: no APIC ID owns it any more. Preserves all registers but EAX.
free_slot:
        mov     eax, [SLOT_APIC + edx * 4]
        mov     dword [SLOT_APIC + edx * 4], SLOT_FREE
        cmp     eax, SLOT_FREE
        je      .done
        mov     word [APIC_SLOT + eax * 2], MAP_NONE
.done:
        ret

; install_stub: EDX = slot. Copies smi_stub to SMBASE(slot) + 0x8000 in (open) TSEG and patches
; in the slot and the TSEG base. Preserves all registers but EAX.
install_stub:
        push    ecx
        push    esi
        push    edi
        mov     edi, edx
        shl     edi, 13                 ; * SMM_TILE_SIZE
        add     edi, [VAR_TSEG_BASE]
        add     edi, TILE_BUFFER_OFF    ; = SMBASE(slot) + 0x8000
        mov     esi, ROMA(smi_stub)
        mov     ecx, (smi_stub_end - smi_stub) / 4
        rep movsd                       ; EDI ends at the copy's end
        mov     [edi - (smi_stub_end - smi_stub_slot)], edx
        mov     eax, [VAR_TSEG_BASE]
        mov     [edi - (smi_stub_end - smi_stub_tseg)], eax
        pop     edi
        pop     esi
        pop     ecx
        ret

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
        mov     ebx, [SLOT_APIC + edx * 4]      ; EBX = target APIC ID
        cmp     edx, [VAR_BSP_SLOT]
        je      .self
        ; An AP: come back through ap_after_reloc, which reports after RSM.
        mov     dword [VAR_RELOC_RESUME], ap_after_reloc - ap_trampoline
        mov     eax, ICR_SMI_PHYSICAL
        mov     ecx, ebx
        call    send_ipi
.wait_ap:
        cmp     [VAR_RELOC_LEFT], ebx
        je      .check
        pause
        jmp     .wait_ap
.self:
        ; The BSP: return where interrupted, i.e. into the loop below.
        mov     dword [VAR_RELOC_RESUME], 0
        mov     eax, ICR_SMI_SELF
        call    send_ipi_shorthand
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

; program_smbase_controller: controller / formula only. Has the monarch program and lock the
; SMBASE controller from SMM (APM 0x05; lock-controller 0: no lock) and prints the result
; line; error 9 if it refused.
; Clobbers EAX.
program_smbase_controller:
        cmp     dword [VAR_STRATEGY], STRATEGY_CONTROLLER
        je      .program
        cmp     dword [VAR_STRATEGY], STRATEGY_FORMULA
        jne     .done
.program:
        mov     al, APM_CMD_SMBASE_CTRL
        call    monarch_call
        cmp     eax, HP_OK
        je      .ok
        cmp     eax, HP_ERR_CTRL_LOCK
        je      .no_lock
        PRINT   "boot: SMBASE controller did not take the SMBASE of APIC ID "
        PHEX32  [REPLY_ERR_APIC]
        NEWLINE
        EXIT    9
.no_lock:
        FAIL    9, "SMBASE controller did not lock"
.ok:
        cmp     dword [VAR_STRATEGY], STRATEGY_FORMULA
        je      .formula
        PRINT   "smbase controller "
        mov     eax, [REPLY_COUNT]
        call    dec32_32
        PRINT   " entries "
        jmp     .lock_state
.formula:
        PRINT   "smbase formula base "
        xor     eax, eax
        call    smbase_of_slot          ; the formula's base = SMBASE of APIC ID 0
        PHEX32  eax
        PRINT   " stride "
        PHEX32  SMM_TILE_SIZE
        PRINT   " "
.lock_state:
        cmp     dword [VAR_CTRL_OPEN], 0
        jne     .unlocked
        PRINTLN "locked"
        ret
.unlocked:
        PRINTLN "unlocked"
.done:
        ret

; monarch_call: AL = APM command. Writes it to port 0xB2 (a broadcast SMI; the BSP's stub
; serves it) and waits for the monarch's acknowledgement (PLATFORM.md "When an SMI lands").
; Out: EAX = REPLY_STATUS.
monarch_call:
        mov     dword [VAR_HP_ACK], 0
        out     APM_CNT, al
.wait:
        cmp     dword [VAR_HP_ACK], 0
        jne     .acked
        pause
        jmp     .wait
.acked:
        mov     eax, [REPLY_STATUS]
        ret

; hotplug_smi: APM 0x04 through monarch_call; a failed reply ends the run (errors 10, 11).
; Every CPU the monarch relocated goes into SLOT_APIC. Clobbers EAX ECX EDX.
hotplug_smi:
        mov     al, APM_CMD_CPU_HOTPLUG
        call    monarch_call
        cmp     eax, HP_OK
        jne     .failed
        xor     ecx, ecx
.merge:
        cmp     ecx, [REPLY_COUNT]
        jae     .done
        mov     eax, [REPLY_RELOC + ecx * 8]        ; APIC ID
        mov     edx, [REPLY_RELOC + ecx * 8 + 4]    ; its slot
        call    set_slot_apic
        inc     ecx
        jmp     .merge
.done:
        ret
.failed:
        cmp     eax, HP_ERR_EJECT
        je      .eject
        PRINT   "boot: no free SMBASE slot for hot-added APIC ID "
        PHEX32  [REPLY_ERR_APIC]
        NEWLINE
        EXIT    10
.eject:
        PRINT   "boot: eject of APIC ID "
        PHEX32  [REPLY_ERR_APIC]
        PRINTLN " did not take"
        EXIT    11

; request_removal: EBX = selector of a present CPU other than CPU 0. Hands its eject to
; firmware (control bit 4, written once: QEMU toggles the flag) and counts it in
; VAR_REQUESTED. Clobbers EAX.
request_removal:
        call    cpuhp_select_32
        mov     al, CPUHP_CTL_FW_REMOVE
        call    cpuhp_control_32
        inc     dword [VAR_REQUESTED]
        ret

; finish_removals: if removals were requested, has the monarch eject them (APM 0x04), prints
; "cpu X removed" for each CPU it lists and takes it offline (smbase-smram: frees its slot).
; Error 11 unless exactly the requested CPUs went. Clobbers EAX ECX EDX.
finish_removals:
        cmp     dword [VAR_REQUESTED], 0
        je      .done
        call    hotplug_smi
        mov     ecx, [REPLY_NREMOVED]
        cmp     ecx, [VAR_REQUESTED]
        je      .counts_match
        FAIL    11, "the monarch ejected a different number of CPUs than requested"
.counts_match:
        xor     ecx, ecx
.next:
        cmp     ecx, [REPLY_NREMOVED]
        jae     .done
        mov     eax, [REPLY_REMOVED + ecx * 4]
        CONSOLE_LOCK
        PRINT   "cpu "
        PHEX32  eax
        PRINTLN " removed"
        CONSOLE_UNLOCK
        call    slot_of_apic
        jc      .forgotten
        mov     byte [SLOT_ONLINE + edx], 0
        cmp     dword [VAR_STRATEGY], STRATEGY_SMBASE_SMRAM
        jne     .forgotten              ; the other strategies keep the slot's SMBASE
        call    free_slot
.forgotten:
        inc     ecx
        jmp     .next
.done:
        mov     dword [VAR_REQUESTED], 0
        ret

; scan_events: the guest's scan of the hot-plug block with command 0 (QEMU's AML CSCN;
; acpi_cpu_hotplug.rst "Get a cpu with pending event"): from selector 0 up, each CPU with an
; insert event goes to INS_LIST, its APIC ID into the APIC-ID maps (cpuhp_map_apic_id, error
; 2), else with a remove event to REM_LIST (selectors, in ascending order); a CPU with only
; firmware-remove set is skipped. Out: VAR_NINS, VAR_NREM. Clobbers EAX EBX ECX EDX.
scan_events:
        xor     eax, eax
        mov     [VAR_NINS], eax
        mov     [VAR_NREM], eax
        xor     ebx, ebx                ; EBX = where the search starts
.search:
        cmp     ebx, [VAR_POSSIBLE]
        jae     .done
        mov     eax, ebx
        mov     dx, CPUHP_SELECTOR
        out     dx, eax
        mov     al, CPUHP_CMD_NEXT_EVENT
        mov     dx, CPUHP_COMMAND
        out     dx, al
        mov     dx, CPUHP_STATUS
        in      al, dx
        movzx   ecx, al                 ; ECX = status of the CPU now selected
        test    cl, CPUHP_ST_ANY_EVENT
        jz      .done                   ; no CPU has an event: the selector did not move
        mov     dx, CPUHP_CMD_DATA
        in      eax, dx                 ; the selected CPU
        cmp     eax, ebx
        jb      .done                   ; the search wrapped: nothing at or above EBX
        mov     ebx, eax
        test    cl, CPUHP_ST_INSERT
        jz      .not_insert
        mov     al, CPUHP_CMD_APIC_ID   ; its APIC ID into the maps (step 0 may have left
        mov     dx, CPUHP_COMMAND       ; them to this point); .advance restores command 0
        out     dx, al
        push    edi
        call    cpuhp_map_apic_id
        pop     edi
        mov     eax, [VAR_NINS]
        mov     [INS_LIST + eax * 2], bx
        inc     dword [VAR_NINS]
        jmp     .advance
.not_insert:
        test    cl, CPUHP_ST_REMOVE
        jz      .advance
        mov     eax, [VAR_NREM]
        mov     [REM_LIST + eax * 2], bx
        inc     dword [VAR_NREM]
.advance:
        inc     ebx
        jmp     .search
.done:
        ret

; handle_inserts: serves INS_LIST (see the header, step 7): the configured attacks go first
; (attacks_on_insert); smbase-smram then has the
; monarch relocate (APM 0x04); then each CPU, in selector order, gets its "relocated" line
; (smbase-smram), is onlined, and has its insert event cleared. Error 10 for an inserted CPU
; without an SMBASE slot. Clobbers EAX EBX ECX EDX ESI EDI.
handle_inserts:
        cmp     dword [VAR_NINS], 0
        je      .done
        cmp     dword [VAR_ATTACKS], 0
        je      .no_attacks
        call    attacks_on_insert
.no_attacks:
        cmp     dword [VAR_STRATEGY], STRATEGY_SMBASE_SMRAM
        jne     .no_smi                 ; controller, formula, max-cpus: SMBASE already set
        call    hotplug_smi
.no_smi:
        xor     esi, esi                ; ESI = index into INS_LIST
.next:
        cmp     esi, [VAR_NINS]
        jae     .done
        movzx   ebx, word [INS_LIST + esi * 2]
        call    cpuhp_select_32
        call    cpuhp_apic_id_32
        mov     edi, eax                ; EDI = APIC ID
        call    slot_of_apic            ; -> EDX
        jc      .no_slot
        cmp     dword [VAR_STRATEGY], STRATEGY_SMBASE_SMRAM
        jne     .online
        CONSOLE_LOCK
        PRINT   "cpu "
        PHEX32  edi
        PRINT   " relocated to "
        mov     eax, edx
        call    smbase_of_slot
        PHEX32  eax
        NEWLINE
        CONSOLE_UNLOCK
.online:
        mov     eax, edi
        call    online_cpu
        mov     byte [SLOT_ONLINE + edx], 1
        call    cpuhp_select_32         ; the SMI and the onlining may have moved the selector
        mov     al, CPUHP_CTL_CLEAR_INSERT
        call    cpuhp_control_32
        inc     dword [VAR_HANDLED]
        inc     esi
        jmp     .next
.done:
        ret
.no_slot:
        PRINT   "boot: hot-added APIC ID "
        PHEX32  edi
        PRINTLN " has no SMBASE slot"
        EXIT    10

; handle_removals: serves REM_LIST (OVMF's unplug path, see the header): firmware-remove and
; clear the remove event for each CPU, then have the monarch eject them; the BSP (selector 0)
; is refused. Clobbers EAX EBX ECX EDX ESI EDI.
handle_removals:
        cmp     dword [VAR_NREM], 0
        je      .done
        mov     dword [VAR_REQUESTED], 0
        xor     esi, esi                ; ESI = index into REM_LIST
.next:
        cmp     esi, [VAR_NREM]
        jae     .finish
        movzx   ebx, word [REM_LIST + esi * 2]
        call    cpuhp_select_32
        call    cpuhp_apic_id_32
        mov     edi, eax                ; EDI = APIC ID
        inc     dword [VAR_HANDLED]
        test    ebx, ebx
        jz      .refuse
        cmp     edi, [VAR_BSP_APIC]
        je      .refuse
        call    request_removal
        mov     al, CPUHP_CTL_CLEAR_REMOVE
        call    cpuhp_control_32
        jmp     .advance
.refuse:
        mov     al, CPUHP_CTL_CLEAR_REMOVE
        call    cpuhp_control_32
        CONSOLE_LOCK
        PRINT   "cpu "
        PHEX32  edi
        PRINTLN " not removed: boot CPU"
        CONSOLE_UNLOCK
.advance:
        inc     esi
        jmp     .next
.finish:
        call    finish_removals
.done:
        ret

; --- Attacks: the guest side as a malicious OS (see the header, "Attacks") -----------------

; attacks_on_insert: what the attacks in VAR_ATTACKS do on an insert event, before the guest
; raises the hot-plug SMI or onlines anyone: plant-38000 once, then early-smi and early-sipi
; for each CPU of INS_LIST in order. Clobbers EAX EBX ECX ESI.
attacks_on_insert:
        test    dword [VAR_ATTACKS], ATTACK_PLANT_38000
        jz      .no_plant
        call    attack_plant_38000
.no_plant:
        xor     esi, esi                ; ESI = index into INS_LIST
.next:
        cmp     esi, [VAR_NINS]
        jae     .done
        movzx   ebx, word [INS_LIST + esi * 2]
        call    cpuhp_select_32
        call    cpuhp_apic_id_32        ; EAX = the new CPU's APIC ID
        test    dword [VAR_ATTACKS], ATTACK_EARLY_SMI
        jz      .no_smi
        call    attack_early_smi
.no_smi:
        test    dword [VAR_ATTACKS], ATTACK_EARLY_SIPI
        jz      .no_sipi
        call    attack_early_sipi
.no_sipi:
        inc     esi
        jmp     .next
.done:
        ret

; attack_plant_38000: copies attack_smm_mark and then the genuine first SMI handler over
; 0x38000, by dwords, from outside SMM. With MCH 0x9C locked every write is dropped (and
; smmsim records each); left open, the payload is what the next CPU entering SMM at SMBASE
; 0x30000 runs. Clobbers EAX ECX.
attack_plant_38000:
        push    esi
        push    edi
        mov     esi, ROMA(attack_smm_mark)
        mov     edi, FIRST_SMI_HANDLER_ADDR
        mov     ecx, (attack_smm_mark_end - attack_smm_mark) / 4
        rep movsd
        mov     esi, ROMA(first_smi_handler)
        mov     ecx, (first_smi_handler_end - first_smi_handler + 3) / 4
        rep movsd
        pop     edi
        pop     esi
        CONSOLE_LOCK
        PRINT   "attack plant-38000: wrote "
        PHEX32  FIRST_SMI_HANDLER_ADDR
        NEWLINE
        CONSOLE_UNLOCK
        ret

; attack_early_smi: EAX = APIC ID of a hot-added CPU. Sends it a directed SMI IPI before the
; firmware's hot-plug SMI. Preserves EAX.
attack_early_smi:
        push    eax
        push    ecx
        mov     ecx, eax
        mov     eax, ICR_SMI_PHYSICAL
        call    send_ipi
        CONSOLE_LOCK
        PRINT   "attack early-smi: SMI IPI to cpu "
        PHEX32  ecx
        NEWLINE
        CONSOLE_UNLOCK
        pop     ecx
        pop     eax
        ret

; attack_early_sipi: EAX = APIC ID of a hot-added CPU. Installs attack_os_code at
; ATTACK_OS_ADDR, starts the CPU there with a directed INIT-SIPI-SIPI and waits until it has
; stored its APIC ID in VAR_ATTACK_OS_RAN: the new CPU now runs OS code with whatever SMBASE
; it was plugged in with. Preserves EAX.
attack_early_sipi:
        push    eax
        push    ecx
        push    esi
        push    edi
        mov     esi, ROMA(attack_os_code)
        mov     edi, ATTACK_OS_ADDR
        mov     ecx, attack_os_code_end - attack_os_code
        rep movsb
        mov     ecx, eax
        mov     dword [VAR_ATTACK_OS_RAN], ONLINE_NONE
        mov     eax, ICR_INIT_PHYSICAL
        call    send_ipi
        call    ipi_delay
        mov     eax, ICR_SIPI_PHYSICAL | ATTACK_OS_VECTOR
        call    send_ipi
        call    ipi_delay
        mov     eax, ICR_SIPI_PHYSICAL | ATTACK_OS_VECTOR
        call    send_ipi
.wait:
        cmp     [VAR_ATTACK_OS_RAN], ecx
        je      .runs
        pause
        jmp     .wait
.runs:
        CONSOLE_LOCK
        PRINT   "attack early-sipi: cpu "
        PHEX32  ecx
        PRINT   " runs OS code at "
        PHEX32  ATTACK_OS_ADDR
        NEWLINE
        CONSOLE_UNLOCK
        pop     edi
        pop     esi
        pop     ecx
        pop     eax
        ret

; attack_write_controller: plants attack_smm_payload at ATTACK_SMBASE + 0x8000 (OS RAM), then
; writes the SMBASE controller from outside SMM so that a CPU plugged later would get SMBASE
; ATTACK_SMBASE: formula - base, stride 0, control FORMULA; any other strategy - the entry
; of every CPU absent at boot, then control 0 (table mode). The controller drops every
; write from outside SMM, locked or not (PLATFORM.md), and smmsim records each.
; Clobbers EAX EBX ECX EDX.
attack_write_controller:
        push    esi
        push    edi
        mov     esi, ROMA(attack_smm_mark)
        mov     edi, ATTACK_SMBASE + SMM_ENTRY_OFFSET
        mov     ecx, attack_smm_payload_end - attack_smm_mark
        rep movsb
        pop     edi
        pop     esi
        cmp     dword [VAR_STRATEGY], STRATEGY_FORMULA
        jne     .table
        mov     dx, SMBASE_CTRL_FBASE
        mov     eax, ATTACK_SMBASE
        out     dx, eax
        mov     dx, SMBASE_CTRL_FSTRIDE
        xor     eax, eax
        out     dx, eax
        mov     eax, SMBASE_CTRL_FORMULA
        jmp     .control
.table:
        xor     ebx, ebx                ; EBX = selector
.entry:
        cmp     ebx, [VAR_POSSIBLE]
        jae     .table_done
        cmp     byte [POSSIBLE_PRESENT + ebx], 0
        jne     .entry_next             ; a boot CPU: already running with its SMBASE
        mov     eax, ebx                ; without the hot-plug block: APIC ID = index
        cmp     dword [VAR_CPUHP], 0
        je      .have_apic
        call    cpuhp_select_32         ; step 0 maps only the boot CPUs' APIC IDs: ask the
        call    cpuhp_apic_id_32        ; block for this one
.have_apic:
        mov     dx, SMBASE_CTRL_APIC
        out     dx, eax
        mov     dx, SMBASE_CTRL_SMBASE
        mov     eax, ATTACK_SMBASE
        out     dx, eax
.entry_next:
        inc     ebx
        jmp     .entry
.table_done:
        xor     eax, eax
.control:
        mov     dx, SMBASE_CTRL_CONTROL
        out     dx, eax
        CONSOLE_LOCK
        PRINT   "attack write-controller: SMBASE controller pointed at "
        PHEX32  ATTACK_SMBASE
        NEWLINE
        CONSOLE_UNLOCK
        ret

; online_cpu: EAX = APIC ID. Directed INIT-SIPI-SIPI into the AP online stub (vector 0x0B),
; then waits until the CPU has stored its APIC ID in VAR_ONLINE_FLAG (after its "online"
; line). Preserves all registers.
online_cpu:
        push    eax
        push    ecx
        mov     ecx, eax
        mov     dword [VAR_ONLINE_FLAG], ONLINE_NONE
        mov     eax, ICR_INIT_PHYSICAL
        call    send_ipi
        call    ipi_delay
        mov     eax, ICR_SIPI_PHYSICAL | ONLINE_VECTOR
        call    send_ipi
        call    ipi_delay
        mov     eax, ICR_SIPI_PHYSICAL | ONLINE_VECTOR
        call    send_ipi
.wait:
        cmp     [VAR_ONLINE_FLAG], ecx
        je      .up
        pause
        jmp     .wait
.up:
        pop     ecx
        pop     eax
        ret

; send_ipi_shorthand: EAX = ICR low with a destination shorthand (no destination). Preserves
; all registers.
send_ipi_shorthand:
        push    ecx
        xor     ecx, ecx
        call    send_ipi
        pop     ecx
        ret

; send_ipi: EAX = ICR low, ECX = destination APIC ID (0 with a shorthand). xAPIC: ICR high
; (destination in bits 31:24), then ICR low, which sends; then wait for idle delivery status.
; x2APIC: one WRMSR of the 64-bit ICR (MSR 0x830, destination in bits 63:32), which has no
; delivery status to wait for (SDM Vol. 3A "x2APIC Interrupt Command Register").
; Preserves all registers.
send_ipi:
        cmp     dword [VAR_X2APIC], 0
        jne     .x2apic
        push    ecx
        shl     ecx, APIC_ICR_DEST_SHIFT
        mov     [APIC_ICR_HIGH], ecx
        mov     [APIC_ICR_LOW], eax
        pop     ecx
        jmp     wait_icr_idle
.x2apic:
        push    eax
        push    ecx
        push    edx
        mov     edx, ecx
        mov     ecx, MSR_X2APIC_ICR
        wrmsr
        pop     edx
        pop     ecx
        pop     eax
        ret

; wait_icr_idle: until the delivery-status bit reads idle (QEMU always reads idle).
wait_icr_idle:
        test    dword [APIC_ICR_LOW], APIC_ICR_BUSY
        jz      .idle
        pause
        jmp     wait_icr_idle
.idle:
        ret

        MP_IPI_DELAY_ROUTINE            ; ipi_delay

        CPUHP_ROUTINES                  ; cpuhp_select_32, cpuhp_apic_id_32, cpuhp_control_32
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

; fw_find_file: ESI = NUL-terminated name. Looks it up in the file directory (key 0x0019;
; big-endian count, then 64-byte entries: size BE32, select BE16, reserved, name[56]). With
; DMA one transfer copies the directory's first page to DIR_BUF and the search runs in RAM,
; as edk2's QemuFwCfgLib reads it by DMA where it can; without DMA, or with more entries
; than the page holds, the entries are read through the data port one byte at a time.
; Found: CF = 0, EAX = selector, ECX = size. Not found: CF = 1. Preserves the rest.
fw_find_file:
        push    ebx
        push    edx
        push    edi
        cmp     dword [VAR_FW_CFG_DMA], 0
        je      .by_port
        push    esi
        mov     eax, FW_CFG_FILE_DIR
        mov     esi, DIR_BUF
        mov     ecx, DIR_BUF_BYTES
        call    fw_dma_read
        pop     esi
        jc      .by_port
        mov     ebx, [DIR_BUF]
        bswap   ebx                     ; entries
        cmp     ebx, DIR_BUF_ENTRIES
        ja      .by_port
        mov     edi, DIR_BUF + 4
.in_ram:
        test    ebx, ebx
        jz      .missing
        dec     ebx
        call    fw_entry_matches
        je      .found
        add     edi, FW_CFG_DIR_ENTRY
        jmp     .in_ram
.by_port:
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
        mov     edi, FWCFG_ENTRY
        call    fw_entry_matches
        jne     .entry
.found:
        mov     ecx, [edi]
        bswap   ecx                     ; size
        movzx   eax, word [edi + 4]
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

; fw_entry_matches: EDI = a 64-byte directory entry, ESI = NUL-terminated name. ZF = 1 if the
; entry's name is that name (the NUL included). Clobbers EAX ECX.
fw_entry_matches:
        xor     ecx, ecx
.compare:
        mov     al, [esi + ecx]
        cmp     al, [edi + 8 + ecx]
        jne     .out                    ; ZF = 0
        inc     ecx
        test    al, al
        jz      .out                    ; ZF = 1: equal up to and including the NUL
        cmp     ecx, FW_CFG_DIR_ENTRY - 8
        jb      .compare
        test    ecx, ecx                ; ZF = 0: the entry's name has no NUL
.out:
        ret

; fw_dma_write: EAX = selector, ESI = source (RAM below 4 GiB), ECX = length. One DMA
; operation selects the item and writes the bytes at offset 0 (docs/specs/fw_cfg.rst: a
; 32-bit write of the big-endian descriptor address to 0x518 after the high half to 0x514
; starts it; the device clears the control word when done, or leaves the error bit set).
; fw_dma_read: the same, reading the item from offset 0 into the buffer ESI (zeros past the
; item's end). Out: CF = 1 on error. Preserve all registers but EAX.
fw_dma_write:
        push    edx
        mov     edx, FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE
        jmp     fw_dma
fw_dma_read:
        push    edx
        mov     edx, FW_CFG_DMA_SELECT | FW_CFG_DMA_READ
fw_dma:                                 ; EDX = control bits, the caller's EDX on the stack
        shl     eax, 16
        or      eax, edx
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
name_opt_strategy:  db "opt/smmsim/strategy", 0
name_opt_handshake: db "opt/smmsim/handshake", 0
name_opt_events:    db "opt/smmsim/hotplug-events", 0
name_opt_boot_cpus: db "opt/smmsim/boot-cpus", 0
name_opt_on_done:   db "opt/smmsim/on-done", 0
name_opt_attacks:   db "opt/smmsim/attacks", 0
name_opt_lock_f_smbase: db "opt/smmsim/lock-default-smbase", 0
name_opt_lock_ctrl: db "opt/smmsim/lock-controller", 0
str_plant_38000:    db "plant-38000", 0
str_early_smi:      db "early-smi", 0
str_early_sipi:     db "early-sipi", 0
str_write_ctrl:     db "write-controller", 0
str_smbase_smram:   db "smbase-smram", 0
str_controller:     db "controller", 0
str_formula:        db "formula", 0
str_max_cpus:       db "max-cpus", 0
str_ovmf:           db "ovmf", 0
str_redirect:       db "redirect", 0
str_exit:           db "exit", 0
str_halt:           db "halt", 0

; Value names by index (STRATEGY_*, HANDSHAKE_*, ON_DONE_*), as linear addresses in the
; image's high mapping (what the 32-bit code reads), each list ending in 0.
        align   4
strategy_names:     dd ROMBASE + str_smbase_smram, ROMBASE + str_controller
                    dd ROMBASE + str_formula, ROMBASE + str_max_cpus, 0
handshake_names:    dd ROMBASE + str_ovmf, ROMBASE + str_redirect, 0
on_done_names:      dd ROMBASE + str_exit, ROMBASE + str_halt, 0
attack_names:       dd ROMBASE + str_plant_38000, ROMBASE + str_early_smi   ; ATTACK_* bit order
                    dd ROMBASE + str_early_sipi, ROMBASE + str_write_ctrl, 0

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
        ; DS = 0, EBX = APIC ID. An APIC ID the bitmap cannot hold is reported instead of
        ; marked. Else at most once per APIC ID (LOCK BTS: a CPU started twice parks), switch
        ; to x2APIC mode if the BSP did, and only then count as arrived: the BSP then reads
        ; the "started" bitmap.
        cli
        cld
        xor     ax, ax
        mov     ds, ax
        MP_INITIAL_APIC_ID
        cmp     ebx, APIC_ID_LIMIT
        jb      .id_fits
        mov     [VAR_BAD_APIC], ebx
        jmp     .arrived
.id_fits:
        lock bts [VAR_STARTED], ebx
        jc      .park
        cmp     dword [VAR_X2APIC], 0
        je      .arrived
        ENTER_X2APIC_MODE
.arrived:
        lock inc dword [VAR_ARRIVED]
.park:
        MP_AP_PARK                      ; an SMI wakes the CPU; RSM returns after the HLT

; The relocation SMI returns here (the handler rewrote the saved IP): the AP has executed
; RSM, so its new SMBASE is in force and 0x30000 is free for the next CPU. Say so, then park.
ap_after_reloc:
        xor     ax, ax
        mov     ds, ax
        MP_INITIAL_APIC_ID
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
        MP_INITIAL_APIC_ID
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
        and     byte [ebx], ~SS_AUTO_HALT_RESTART & 0xFF    ; resume at the new IP
.ack:
        mov     dword [dword VAR_RELOC_DONE], 1
        rsm
reloc_handler_end:


; --- The guest's AP online routine (step 7) --------------------------------------------------
; ap_online_stub is copied to ONLINE_ADDR; a directed INIT-SIPI-SIPI with vector ONLINE_VECTOR
; starts the hot-added CPU there in real mode (CS = 0x0B00, IP 0), and the far jump continues
; in the image's low alias (CS = 0xF000), where the 16-bit console routines are.
        MODE    16
ap_online_stub:
        jmp     ROMSEG:ap_online
ap_online_stub_end:

; ap_online: real mode, interrupts off. Switches to x2APIC mode if the boot CPUs run in it,
; prints "cpu X online" under the console spinlock, stores the APIC ID in VAR_ONLINE_FLAG for
; the BSP and parks; an SMI wakes it and RSM returns into the park loop. One CPU is onlined
; at a time, so the stack is shared.
ap_online:
        cli
        cld
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     sp, ONLINE_STACK_TOP
        cmp     dword [VAR_X2APIC], 0
        je      .apic_mode_set
        ENTER_X2APIC_MODE               ; a no-op for a CPU re-added with INIT only
.apic_mode_set:
        MP_INITIAL_APIC_ID              ; EBX = APIC ID
        CONSOLE_LOCK
        PRINT   "cpu "
        PHEX32  ebx
        PRINTLN " online"
        CONSOLE_UNLOCK
        mov     [VAR_ONLINE_FLAG], ebx  ; only after the line: the BSP may print next
        MP_AP_PARK

        CONSOLE_ROUTINES                ; the 16-bit console routines ap_online uses

; --- The post-SMM pen, copied to PEN_ADDR (OVMF CpuHotplugSmm's pen) ----------------------
; Real mode, CS = PEN_SEG, IP 0, run by a hot-added CPU right after the RSM that installed
; its new SMBASE. Setting the page's last byte tells the monarch that the CPU has left SMM.
pen:
        mov     byte [cs:PAGE_SIZE - 1], PEN_ARRIVED
        MP_AP_PARK
pen_end:

%if pen_end - pen >= PAGE_SIZE - 1
 %error "the pen must end before its flag byte"
%endif

; --- Attack payloads (see the header, "Attacks") --------------------------------------------
; attack_smm_mark: the first instruction of everything the guest plants for SMM: marks that
; guest code ran in SMM (16-bit SMM entry state, DS base 0 with a 4 GiB limit). plant-38000
; puts the genuine first SMI handler right after it; write-controller puts
; attack_smm_payload's acknowledgement and RSM there.
        MODE    16
        align   4
attack_smm_mark:
        mov     dword [dword VAR_ATTACK_MARK], ATTACK_MARK_RAN
        align   4, nop
attack_smm_mark_end:
; write-controller's SMM code at ATTACK_SMBASE + 0x8000: acknowledges step 8's report SMI (it
; reports nothing, so the guest then finds a mismatch) and returns.
attack_smm_payload:
        lock inc dword [dword VAR_ACKS]
        rsm
attack_smm_payload_end:

%if (attack_smm_mark_end - attack_smm_mark) % 4 || attack_smm_payload != attack_smm_mark_end
 %error "the planted payloads are copied by dwords, the mark first"
%endif

; attack_os_code: early-sipi's OS code, copied to ATTACK_OS_ADDR and started with SIPI vector
; ATTACK_OS_VECTOR (real mode, CS = 0x0D00, IP 0; relative jumps only). Says it runs, then
; parks; an SMI wakes it and RSM returns into the park loop.
attack_os_code:
        cli
        xor     ax, ax
        mov     ds, ax
        MP_INITIAL_APIC_ID
        mov     [VAR_ATTACK_OS_RAN], ebx
        MP_AP_PARK
attack_os_code_end:

%if attack_os_code_end - attack_os_code > PAGE_SIZE
 %error "the early-sipi OS code must fit in its page"
%endif

; --- The first SMI handler, copied to 0x38000 after boot relocation (OVMF CpuHotplugSmm) ----
; Entered in SMM by a hot-added CPU at CS base = SMBASE = 0x30000, IP 0x8000 (several may be
; here at once under QEMU TCG, which takes the 0xB2 broadcast SMI in wait-for-SIPI at once).
; Spins until the mailbox gate holds its APIC ID, installs the mailbox's new SMBASE in its
; save area (layout by revision ID, as reloc_handler does), redirects its return to
; MBOX_RESUME_SEG:0 if that is set (`redirect` handshake; CS selector and base, RIP, auto-HALT
; restart off), sets about-to-leave and RSMs, which loads the new SMBASE. No stack.
        MODE    16
first_smi_handler:
        MP_INITIAL_APIC_ID              ; EBX = APIC ID (as the monarch's gate holds it)
.gate:
        cmp     dword [dword MBOX_GATE_HI], 0
        jne     .closed
        cmp     [dword MBOX_GATE_LO], ebx
        je      .open
.closed:
        pause
        jmp     .gate
.open:
        SMM_SAVE_MAP_FIELDS             ; EAX = revision; SI/DI/BX = field offsets; ZF = AMD64
        setz    cl                      ; CL = 1: AMD64 map (8-byte RIP, 16-byte segment rows)
        ; EDX = this handler's SMBASE. Not read from the save area's SMBASE field, as the
        ; relocation handler may: new CPUs that took the broadcast SMI together share this
        ; save area, and the CPU before this one has already rewritten that field.
        mov     edx, SMM_DEFAULT_SMBASE
        movzx   esi, si
        mov     eax, [dword MBOX_NEW_SMBASE]
        mov     [edx + esi], eax        ; RSM loads it (revision bit 17)
        movzx   eax, word [dword MBOX_RESUME_SEG]
        test    eax, eax
        jz      .leave
        movzx   edi, di
        mov     dword [edx + edi], 0    ; RIP / EIP = 0
        movzx   ebx, bx
        and     byte [edx + ebx], ~SS_AUTO_HALT_RESTART & 0xFF
        test    cl, cl
        jz      .intel32
        mov     dword [edx + edi + 4], 0                ; RIP bits 63:32
        mov     [edx + SS64_CS_SELECTOR], ax
        shl     eax, 4                                  ; real mode: base = selector * 16
        mov     [edx + SS64_CS_BASE], eax
        mov     dword [edx + SS64_CS_BASE + 4], 0
        jmp     .leave
.intel32:
        mov     [edx + SS32_CS_SELECTOR], eax
        shl     eax, 4
        mov     [edx + SS32_CS_BASE], eax
.leave:
        mov     byte [dword MBOX_ABOUT_TO_LEAVE], 1
        rsm
first_smi_handler_end:

%if first_smi_handler_end - first_smi_handler > SMM_TILE_SIZE
 %error "the first SMI handler must stay clear of the save area at 0x3FE00"
%endif
%if attack_smm_mark_end - attack_smm_mark + first_smi_handler_end - first_smi_handler + 3 > SMM_TILE_SIZE
 %error "the plant-38000 payload must stay clear of the save area at 0x3FE00"
%endif

; --- The per-CPU SMI entry stub, copied to SMBASE(i) + 0x8000 in TSEG -------------------------
; Entered in SMM at CS base = SMBASE(i), IP 0x8000 (see smm.inc for the environment). The
; slot number and the TSEG base are patched into each copy (read through CS, STUB()). Every
; copy holds the whole stub: the monarch's routines run from the BSP's copy, addressed
; relative to its CS. Dispatch on the APM command read back from port 0xB2:
;   APM_CMD_REPORT       every CPU reports (APIC ID, SMBASE) and acknowledges;
;   APM_CMD_CPU_HOTPLUG  the BSP runs monarch_hotplug, every other CPU RSMs at once;
;   APM_CMD_SMBASE_CTRL  the BSP runs monarch_smbase_ctrl, every other CPU RSMs at once;
;   anything else        RSM.
; The monarch's stack is in the locked default-SMBASE window (SMRAM): SS = SMM_STACK_SEG.
; With SS moved, EBP-based operands name DS explicitly.
        MODE    16
        align   16
%define STUB(x) (SMM_ENTRY_OFFSET + (x) - smi_stub)
smi_stub:
        in      al, APM_CNT
        cmp     al, APM_CMD_REPORT
        je      stub_report
        mov     bl, al                  ; BL = command (RDMSR clobbers EAX and EDX)
        mov     ecx, MSR_IA32_APIC_BASE
        rdmsr
        test    ah, APIC_BASE_BSP >> 8
        jz      stub_rsm                ; not the monarch
        mov     ax, SMM_STACK_SEG
        mov     ss, ax
        mov     esp, SMM_STACK_TOP
        mov     ebp, [cs:STUB(smi_stub_tseg)]   ; EBP = TSEG base, for the monarch routines
        cmp     bl, APM_CMD_CPU_HOTPLUG
        jne     .not_hotplug
        call    monarch_hotplug
        jmp     stub_rsm
.not_hotplug:
        cmp     bl, APM_CMD_SMBASE_CTRL
        jne     stub_rsm
        call    monarch_smbase_ctrl
stub_rsm:
        rsm

; stub_report: reports (APIC ID, SMBASE) into this stub copy's report pair in SMRAM, copies
; the pair to the normal-RAM result mailbox at this slot, acknowledges, RSMs. No stack.
stub_report:
        MP_INITIAL_APIC_ID
        mov     ebp, ebx                ; EBP = APIC ID
        SMM_SAVE_MAP_FIELDS             ; SI = SMBASE field offset
        mov     ebx, [cs:si]            ; EBX = SMBASE this CPU entered with
        mov     edi, [cs:STUB(smi_stub_slot)]
        lea     esi, [ebx + STUB(smi_stub_report)]     ; linear address of the report pair
        mov     [esi], ebp
        mov     [esi + 4], ebx
        mov     eax, [esi]              ; the mailbox gets what SMRAM holds
        mov     [RESULTS + edi * 8], eax
        mov     eax, [esi + 4]
        mov     [RESULTS + edi * 8 + 4], eax
        lock inc dword [dword VAR_ACKS]
        rsm

; monarch_hotplug: APM 0x04 on the BSP (OVMF CpuHotplugSmm). EBP = TSEG base.
; smbase-smram: every present CPU with an insert event and no slot is relocated, strictly one
; at a time, into the first free slot (smm_relocate_new_cpu). Then, all strategies: every CPU
; whose status shows firmware-remove is ejected (control bit 3) and must read absent within
; EJECT_POLL_LIMIT status reads; smbase-smram frees its slot. The reply (REPLY_*) lists the
; relocated and removed CPUs; VAR_HP_ACK = 1 ends it. Clobbers EAX EBX ECX EDX ESI.
monarch_hotplug:
        xor     eax, eax
        mov     [dword REPLY_STATUS], eax
        mov     [dword REPLY_COUNT], eax
        mov     [dword REPLY_NREMOVED], eax
        cmp     dword [ds:ebp + G_STRATEGY], STRATEGY_SMBASE_SMRAM
        jne     .removals
        xor     ebx, ebx                ; EBX = selector
.add_scan:
        call    smm_next_event
        jc      .removals
        and     al, CPUHP_ST_ENABLED | CPUHP_ST_INSERT
        cmp     al, CPUHP_ST_ENABLED | CPUHP_ST_INSERT
        jne     .add_next
        call    cpuhp_apic_id_16
        mov     esi, eax                ; ESI = APIC ID
        call    smm_slot_of_apic
        jnc     .add_next               ; it has a slot: relocated by an earlier SMI
        call    smm_free_slot           ; ECX = slot
        jc      .no_slot
        mov     [ds:ebp + SLOT_TABLE_OFF + ecx * 4], esi
        call    smm_install_stub
        call    smm_relocate_new_cpu
        mov     eax, [dword REPLY_COUNT]
        mov     [dword REPLY_RELOC + eax * 8], esi
        mov     [dword REPLY_RELOC + eax * 8 + 4], ecx
        inc     dword [dword REPLY_COUNT]
.add_next:
        inc     ebx
        jmp     .add_scan
.no_slot:
        mov     [dword REPLY_ERR_APIC], esi
        mov     dword [dword REPLY_STATUS], HP_ERR_NO_SLOT
        jmp     .ack
.removals:
        xor     ebx, ebx
.rm_scan:
        call    smm_next_event
        jc      .ack
        test    al, CPUHP_ST_FW_REMOVE
        jz      .rm_next
        call    cpuhp_apic_id_16
        mov     esi, eax                ; ESI = APIC ID
        mov     al, CPUHP_CTL_EJECT
        call    cpuhp_control_16
        mov     ecx, EJECT_POLL_LIMIT
.rm_wait:
        call    cpuhp_select_16
        test    al, CPUHP_ST_ENABLED
        jz      .ejected
        pause
        dec     ecx
        jnz     .rm_wait
        mov     [dword REPLY_ERR_APIC], esi
        mov     dword [dword REPLY_STATUS], HP_ERR_EJECT
        jmp     .ack
.ejected:
        cmp     dword [ds:ebp + G_STRATEGY], STRATEGY_SMBASE_SMRAM
        jne     .rm_record              ; the other strategies keep the slot and its SMBASE
        call    smm_slot_of_apic
        jc      .rm_record
        mov     dword [ds:ebp + SLOT_TABLE_OFF + ecx * 4], SLOT_FREE
.rm_record:
        mov     eax, [dword REPLY_NREMOVED]
        mov     [dword REPLY_REMOVED + eax * 4], esi
        inc     dword [dword REPLY_NREMOVED]
.rm_next:
        inc     ebx
        jmp     .rm_scan
.ack:
        mov     dword [dword VAR_HP_ACK], 1
        ret

; smm_next_event: EBX = a selector -> EBX = the lowest selector from there up whose CPU has an
; event (insert, remove or firmware-remove), now selected, EAX = its status, CF = 0; none:
; CF = 1. Command 0 finds it in one step, as QEMU's AML CSCN and OVMF's QemuCpuhpLib do, so
; the scans cost what the events cost, not what maxcpus does. EBP = TSEG base. Preserves all
; other registers.
smm_next_event:
        push    ecx
        push    edx
        cmp     ebx, [ds:ebp + G_POSSIBLE]
        jae     .none
        mov     eax, ebx
        mov     dx, CPUHP_SELECTOR
        out     dx, eax
        mov     al, CPUHP_CMD_NEXT_EVENT
        mov     dx, CPUHP_COMMAND
        out     dx, al
        mov     dx, CPUHP_STATUS
        xor     eax, eax
        in      al, dx
        mov     ecx, eax                ; ECX = status of the CPU now selected
        test    cl, CPUHP_ST_ANY_EVENT
        jz      .none                   ; no CPU has an event: the selector did not move
        mov     dx, CPUHP_CMD_DATA
        in      eax, dx                 ; the selected CPU
        cmp     eax, ebx
        jb      .none                   ; the search wrapped: nothing at or above EBX
        mov     ebx, eax
        mov     eax, ecx
        pop     edx
        pop     ecx
        clc
        ret
.none:
        pop     edx
        pop     ecx
        stc
        ret

; smm_slot_of_apic: ESI = APIC ID -> ECX = its slot in the SMRAM slot table, CF = 0; none:
; CF = 1. EBP = TSEG base.
smm_slot_of_apic:
        xor     ecx, ecx
.scan:
        cmp     ecx, [ds:ebp + G_MAXCPUS]
        jae     .none
        cmp     [ds:ebp + SLOT_TABLE_OFF + ecx * 4], esi
        je      .found
        inc     ecx
        jmp     .scan
.found:
        clc
        ret
.none:
        stc
        ret

; smm_free_slot: -> ECX = the first free slot, CF = 0; none: CF = 1. EBP = TSEG base.
smm_free_slot:
        xor     ecx, ecx
.scan:
        cmp     ecx, [ds:ebp + G_MAXCPUS]
        jae     .none
        cmp     dword [ds:ebp + SLOT_TABLE_OFF + ecx * 4], SLOT_FREE
        je      .found
        inc     ecx
        jmp     .scan
.found:
        clc
        ret
.none:
        stc
        ret

; smm_install_stub: ECX = slot, EBP = TSEG base. Copies this stub from the image (readable at
; ROMBASE from SMM) to SMBASE(slot) + 0x8000 and patches slot and TSEG base. Preserves all
; registers.
smm_install_stub:
        push    esi
        push    edi
        push    ecx
        mov     edi, ecx
        shl     edi, 13                 ; * SMM_TILE_SIZE
        lea     edi, [edi + ebp + TILE_BUFFER_OFF]
        mov     esi, ROMBASE + smi_stub
        mov     ecx, (smi_stub_end - smi_stub) / 4
        a32 rep movsd                   ; DS = ES = base 0 in SMM; EDI ends at the copy's end
        pop     ecx
        mov     [edi - (smi_stub_end - smi_stub_slot)], ecx
        mov     [edi - (smi_stub_end - smi_stub_tseg)], ebp
        pop     edi
        pop     esi
        ret

; smm_relocate_new_cpu: ESI = APIC ID of a hot-added CPU, ECX = its slot (stub installed),
; EBP = TSEG base. Gives it SMBASE(slot) through the mailbox and the first SMI handler with
; the configured handshake (see the header), and returns once the CPU is in the pen with the
; gate closed again. Preserves all registers but EAX.
smm_relocate_new_cpu:
        push    ecx
        mov     eax, ecx
        shl     eax, 13
        add     eax, ebp
        add     eax, TILE_BUFFER_OFF - SMM_ENTRY_OFFSET     ; EAX = SMBASE(slot)
        mov     [dword MBOX_NEW_SMBASE], eax
        mov     byte [dword MBOX_ABOUT_TO_LEAVE], 0
        push    esi
        push    edi
        mov     esi, ROMBASE + pen      ; a fresh pen: non-SMM code may have changed the page
        mov     edi, PEN_ADDR
        mov     ecx, pen_end - pen
        a32 rep movsb
        pop     edi
        pop     esi
        mov     byte [dword PEN_FLAG], 0
        cmp     dword [ds:ebp + G_HANDSHAKE], HANDSHAKE_REDIRECT
        je      .redirect
        ; `ovmf`: SMI, INIT-SIPI-SIPI to the pen, then open the gate.
        mov     word [dword MBOX_RESUME_SEG], 0
        mov     eax, ICR_SMI_PHYSICAL
        call    smm_send_ipi
        mov     eax, ICR_INIT_PHYSICAL
        call    smm_send_ipi
        call    smm_delay
        mov     eax, ICR_SIPI_PHYSICAL | PEN_VECTOR
        call    smm_send_ipi
        call    smm_delay
        mov     eax, ICR_SIPI_PHYSICAL | PEN_VECTOR
        call    smm_send_ipi
        call    smm_open_gate
        jmp     .wait_leave
.redirect:
        ; `redirect` (the variant QEMU TCG completes): open the gate, then only the SMI.
        mov     word [dword MBOX_RESUME_SEG], PEN_SEG
        call    smm_open_gate
        mov     eax, ICR_SMI_PHYSICAL
        call    smm_send_ipi
.wait_leave:
        ; Under QEMU TCG / the `qemu` profile the `ovmf` handshake never leaves this loop:
        ; the INIT reset the CPU out of SMM before the gate opened (PLATFORM.md). Deliberate.
        cmp     byte [dword MBOX_ABOUT_TO_LEAVE], 0
        jne     .wait_pen
        pause
        jmp     .wait_leave
.wait_pen:
        cmp     byte [dword PEN_FLAG], 0
        jne     .in_pen
        pause
        jmp     .wait_pen
.in_pen:
        ; Close: low half first, so no intermediate value equals an APIC ID.
        mov     dword [dword MBOX_GATE_LO], MBOX_GATE_CLOSED
        mov     dword [dword MBOX_GATE_HI], MBOX_GATE_CLOSED
        pop     ecx
        ret

; smm_open_gate: ESI = APIC ID. Gate = APIC ID, high half first (0:FFFFFFFF matches no CPU).
smm_open_gate:
        mov     dword [dword MBOX_GATE_HI], 0
        mov     [dword MBOX_GATE_LO], esi
        ret

; smm_send_ipi: EAX = ICR low (no shorthand), ESI = destination APIC ID, EBP = TSEG base.
; As send_ipi: in x2APIC mode (G_X2APIC) one WRMSR of the ICR MSR, else ICR high and low
; through the xAPIC page and a wait for idle delivery status. Preserves all registers.
smm_send_ipi:
        push    edx
        cmp     dword [ds:ebp + G_X2APIC], 0
        je      .xapic
        push    eax
        push    ecx
        mov     edx, esi
        mov     ecx, MSR_X2APIC_ICR
        wrmsr
        pop     ecx
        pop     eax
        pop     edx
        ret
.xapic:
        mov     edx, esi
        shl     edx, APIC_ICR_DEST_SHIFT
        mov     [dword APIC_ICR_HIGH], edx
        mov     [dword APIC_ICR_LOW], eax
.busy:
        test    dword [dword APIC_ICR_LOW], APIC_ICR_BUSY
        jz      .sent
        pause
        jmp     .busy
.sent:
        pop     edx
        ret

; smm_delay: IPI_DELAY_PAUSES PAUSEs between INIT and SIPI (as ipi_delay). Preserves all
; registers but the flags.
smm_delay:
        push    ecx
        mov     ecx, IPI_DELAY_PAUSES
.spin:
        pause
        dec     ecx
        jnz     .spin
        pop     ecx
        ret

; monarch_smbase_ctrl: APM 0x05 on the BSP. EBP = TSEG base. controller: for every possible
; CPU (hot-plug block selectors; without the block APIC IDs 0 .. maxcpus - 1) select its APIC
; ID, write SMBASE(APIC ID), read it back; then LOCK. formula: base = TSEG base, stride
; 0x2000, read back, then FORMULA | LOCK. The control register must read back what was
; written. Reply: status, entries written. Clobbers EAX EBX ECX EDX ESI EDI.
monarch_smbase_ctrl:
        xor     eax, eax
        mov     [dword REPLY_STATUS], eax
        mov     [dword REPLY_COUNT], eax
        call    smm_relocate_early_cpus
        cmp     dword [ds:ebp + G_STRATEGY], STRATEGY_FORMULA
        je      .formula
        cmp     dword [ds:ebp + G_STRATEGY], STRATEGY_CONTROLLER
        jne     .ack
        xor     ebx, ebx                ; EBX = selector
.entry:
        cmp     ebx, [ds:ebp + G_POSSIBLE]
        jae     .lock_table
        mov     esi, ebx                ; without the block: APIC ID = index
        cmp     dword [ds:ebp + G_CPUHP], 0
        je      .have_apic
        call    cpuhp_select_16
        call    cpuhp_apic_id_16
        mov     esi, eax
.have_apic:
        mov     edi, esi
        shl     edi, 13
        add     edi, ebp
        add     edi, TILE_BUFFER_OFF - SMM_ENTRY_OFFSET     ; EDI = SMBASE(APIC ID)
        mov     dx, SMBASE_CTRL_APIC
        mov     eax, esi
        out     dx, eax
        mov     dx, SMBASE_CTRL_SMBASE
        mov     eax, edi
        out     dx, eax
        in      eax, dx
        cmp     eax, edi
        jne     .bad_value
        inc     dword [dword REPLY_COUNT]
        inc     ebx
        jmp     .entry
.lock_table:
        mov     ecx, SMBASE_CTRL_LOCK
        jmp     .control
.formula:
        mov     esi, 0                  ; reported as the APIC ID if the base is refused
        lea     edi, [ebp + TILE_BUFFER_OFF - SMM_ENTRY_OFFSET]     ; SMBASE(APIC ID 0)
        mov     dx, SMBASE_CTRL_FBASE
        mov     eax, edi
        out     dx, eax
        in      eax, dx
        cmp     eax, edi
        jne     .bad_value
        mov     dx, SMBASE_CTRL_FSTRIDE
        mov     eax, SMM_TILE_SIZE
        out     dx, eax
        in      eax, dx
        cmp     eax, SMM_TILE_SIZE
        jne     .bad_value
        mov     ecx, SMBASE_CTRL_FORMULA | SMBASE_CTRL_LOCK
.control:
        cmp     dword [ds:ebp + G_CTRL_OPEN], 0
        je      .write_control
        and     ecx, ~SMBASE_CTRL_LOCK  ; lock-controller 0: a vulnerable firmware
.write_control:
        mov     dx, SMBASE_CTRL_CONTROL
        mov     eax, ecx
        out     dx, eax
        in      eax, dx
        cmp     eax, ecx
        je      .ack
        mov     dword [dword REPLY_STATUS], HP_ERR_CTRL_LOCK
        jmp     .ack
.bad_value:
        mov     [dword REPLY_ERR_APIC], esi
        mov     dword [dword REPLY_STATUS], HP_ERR_CTRL_TABLE
.ack:
        mov     dword [dword VAR_HP_ACK], 1
        ret

; smm_relocate_early_cpus: controller / formula, before the first write to the SMBASE
; controller. A CPU hot-added while the firmware booted found no SMBASE there and kept
; 0x30000; each such CPU still has its insert event (step 0 does not count it as a boot CPU),
; and none has a slot's SMBASE yet. Each is relocated to SMBASE(slot = APIC ID) through the
; mailbox and the first SMI handler, with the configured handshake, exactly as smbase-smram
; relocates a hot-added CPU, and waits in the pen for the guest to online it in step 7.
; EBP = TSEG base. Clobbers EAX EBX ECX ESI.
smm_relocate_early_cpus:
        cmp     dword [ds:ebp + G_CPUHP], 0
        je      .done
        xor     ebx, ebx                ; EBX = selector
.scan:
        call    smm_next_event
        jc      .done
        and     al, CPUHP_ST_ENABLED | CPUHP_ST_INSERT
        cmp     al, CPUHP_ST_ENABLED | CPUHP_ST_INSERT
        jne     .next
        call    cpuhp_apic_id_16
        mov     esi, eax                ; ESI = APIC ID = slot (below maxcpus: step 0)
        mov     ecx, eax
        call    smm_relocate_new_cpu
.next:
        inc     ebx
        jmp     .scan
.done:
        ret

        CPUHP_ROUTINES                  ; cpuhp_select_16, cpuhp_apic_id_16, cpuhp_control_16

        align   4
smi_stub_slot:  dd      0               ; patched: slot number
smi_stub_tseg:  dd      0               ; patched: TSEG base
smi_stub_report: dd     SLOT_FREE, SLOT_FREE    ; (APIC ID, SMBASE) from step 8; all ones before
smi_stub_end:

%if (smi_stub_end - smi_stub) % 4
 %error "the entry stub is copied by dwords"
%endif
%if smi_stub_end - smi_stub > SMM_TILE_SIZE - 0x200
 %error "the entry stub must end before the save area of the CPU three tiles below"
%endif

        IMAGE_END
