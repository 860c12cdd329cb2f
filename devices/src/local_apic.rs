//! One CPU's local APIC: the registers firmware uses to learn its APIC ID, send IPIs
//! (INIT-SIPI-SIPI, directed SMIs) and take fixed interrupts.
//!
//! Each simulated core owns one [`LocalApic`]. It is a plain state machine: the core hands
//! it xAPIC MMIO accesses (its own page at 0xFEE00000) or x2APIC MSR accesses, and an ICR
//! write comes back as an [`Ipi`] for the simulator to deliver. Interrupts arriving from
//! the APIC bus enter through [`LocalApic::accept_fixed`]; the core asks
//! [`LocalApic::pending_vector`] at instruction boundaries and takes one with
//! [`LocalApic::acknowledge`]. The model follows SDM Vol. 3A ch. 12 "Advanced Programmable
//! Interrupt Controller (APIC)" (older editions ch. 10) and QEMU `hw/intc/apic.c`.
//!
//! ```text
//! MMIO         MSR          register   read                     write
//! 0x020        0x802        APIC ID    ID[7:0] << 24 / ID       dropped / #GP
//! 0x030        0x803        version    0x0005_0014              dropped / #GP
//! 0x080        0x808        TPR        bits 7:0                 bits 7:0
//! 0x0A0        0x80A        PPR        computed                 dropped / #GP
//! 0x0B0        0x80B        EOI        0 / #GP                  clears the highest ISR bit
//! 0x0D0        0x80D        LDR        bits 31:24 / derived     bits 31:24 / #GP
//! 0x0E0        —            DFR        bits 31:28, ones below   bits 31:28
//! 0x0F0        0x80F        SVR        bits 8:0 (8 = enable)    bits 8:0
//! 0x100-0x170  0x810-0x817  ISR        vectors 0-255            dropped / #GP
//! 0x200-0x270  0x820-0x827  IRR        vectors 0-255            dropped / #GP
//! 0x300        0x830        ICR (low)  as written, DS = 0       sends an IPI
//! 0x310        —            ICR high   bits 31:24               bits 31:24
//! —            0x83F        SELF IPI   #GP                      sends a fixed IPI to self
//!
//! "x / y": xAPIC MMIO / x2APIC MSR. "dropped": no effect, counted.
//! Any other MMIO offset reads 0 and drops writes, counted; other MSRs: step 2 below.
//! ```
//!
//! 1. xAPIC page: [`LocalApic::mmio_read`] / [`LocalApic::mmio_write`] take the offset
//!    into the 4 KiB page of an aligned 32-bit access. Every register sits on a 16-byte
//!    boundary; any other offset is "not modelled": it reads 0, a write is dropped, and
//!    both are counted in [`LocalApic::ignored_accesses`]. A write to ICR low sends.
//! 2. x2APIC MSRs: [`LocalApic::msr_read`] / [`LocalApic::msr_write`] answer `None` /
//!    `Err(())` where the CPU must raise #GP(0): any x2APIC MSR while the APIC is not in
//!    x2APIC mode, a reserved MSR address, RDMSR of a write-only or WRMSR of a read-only
//!    register, a write setting reserved bits (SDM §12.12.1.2 Table "Local APIC Register
//!    Address Map Supported by x2APIC", §12.12.1.3 "Reserved Bit Checking"). Architectural
//!    registers smmsim does not model (TMR, ESR, LVTs, timer) read 0 and ignore writes,
//!    counted, as on the MMIO side.
//! 3. An ICR write decodes through [`decode_icr`]; a value that does not decode (reserved
//!    delivery mode, logical destination) sends nothing and is counted in
//!    [`LocalApic::bad_icr_writes`]. The delivery-status bit always reads 0: the IPI leaves
//!    at once and the simulator models its latency.
//! 4. Acceptance: [`LocalApic::accept_fixed`] sets the IRR bit; the highest IRR vector is
//!    pending when its priority class (bits 7:4) exceeds the processor-priority class and
//!    SVR bit 8 has the APIC software-enabled; [`LocalApic::acknowledge`] moves it to the
//!    ISR; an EOI clears the highest ISR bit (SDM §12.8.3.1 "Task and Processor
//!    Priorities", §12.8.4 "Interrupt Acceptance for Fixed Interrupts", §12.8.5 "Signaling
//!    Interrupt Servicing Completion").
//!
//! Choices that differ from QEMU, each for the simulator's sake:
//! - The APIC ID register is read-only in xAPIC mode too. The SDM leaves writability
//!   model-specific and QEMU allows it, but smmsim routes IPIs by the fixed APIC ID that
//!   CPUID also reports; firmware never rewrites it.
//! - Vectors 0–15 are not accepted (SDM §12.5.3 "Error Handling", "Receive Illegal
//!   Vector"); QEMU sets them in the IRR. They are counted in
//!   [`LocalApic::illegal_vectors_received`].
//! - Reserved ICR bits read back as 0 (QEMU keeps whatever was written).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::access::ApicId;
use crate::apic_bus::{decode_icr, icr, DeliveryMode, Destination, Ipi};

/// The version register: version 0x14 with six LVT entries (max LVT entry 5 in bits 23:16).
///
/// QEMU `hw/intc/apic_common.c`: `DEFINE_PROP_UINT8("version", …, 0x14)`, and
/// `hw/intc/apic.c` `apic_mem_read` returns `s->version | ((APIC_LVT_NB - 1) << 16)` with
/// `APIC_LVT_NB` = 6. The same value in x2APIC mode (SDM Table "Local APIC Register Address
/// Map Supported by x2APIC": "Same version used in xAPIC mode and x2APIC mode").
pub const APIC_VERSION: u32 = 0x0005_0014;

// xAPIC MMIO offsets (SDM Vol. 3A Table "Local APIC Register Address Map").
/// MMIO offset of the APIC ID register.
pub const REG_ID: u32 = 0x020;
/// MMIO offset of the version register.
pub const REG_VERSION: u32 = 0x030;
/// MMIO offset of the task-priority register.
pub const REG_TPR: u32 = 0x080;
/// MMIO offset of the processor-priority register (read-only).
pub const REG_PPR: u32 = 0x0A0;
/// MMIO offset of the end-of-interrupt register (write-only).
pub const REG_EOI: u32 = 0x0B0;
/// MMIO offset of the logical destination register.
pub const REG_LDR: u32 = 0x0D0;
/// MMIO offset of the destination format register (xAPIC only).
pub const REG_DFR: u32 = 0x0E0;
/// MMIO offset of the spurious-interrupt vector register.
pub const REG_SVR: u32 = 0x0F0;
/// MMIO offset of the first of eight in-service registers (vectors 0–31).
pub const REG_ISR_FIRST: u32 = 0x100;
/// MMIO offset of the last in-service register (vectors 224–255).
pub const REG_ISR_LAST: u32 = 0x170;
/// MMIO offset of the first of eight interrupt-request registers (vectors 0–31).
pub const REG_IRR_FIRST: u32 = 0x200;
/// MMIO offset of the last interrupt-request register (vectors 224–255).
pub const REG_IRR_LAST: u32 = 0x270;
/// MMIO offset of ICR bits 31:0; a write sends the IPI.
pub const REG_ICR_LOW: u32 = 0x300;
/// MMIO offset of ICR bits 63:32 (destination in bits 31:24).
pub const REG_ICR_HIGH: u32 = 0x310;

// x2APIC MSRs (SDM Vol. 3A §12.12.1.2, Table "Local APIC Register Address Map Supported by
// x2APIC"): MSR = 0x800 + MMIO offset / 16, except the ICR (one MSR) and SELF IPI.
/// x2APIC MSR of the APIC ID (the whole 32-bit x2APIC ID; read-only).
pub const MSR_ID: u32 = 0x802;
/// x2APIC MSR of the version register (read-only).
pub const MSR_VERSION: u32 = 0x803;
/// x2APIC MSR of the TPR.
pub const MSR_TPR: u32 = 0x808;
/// x2APIC MSR of the PPR (read-only).
pub const MSR_PPR: u32 = 0x80A;
/// x2APIC MSR of the EOI register (write-only; a non-zero value is #GP).
pub const MSR_EOI: u32 = 0x80B;
/// x2APIC MSR of the logical destination register (read-only, derived from the ID).
pub const MSR_LDR: u32 = 0x80D;
/// x2APIC MSR of the SVR.
pub const MSR_SVR: u32 = 0x80F;
/// x2APIC MSR of ISR bits 31:0.
pub const MSR_ISR_FIRST: u32 = 0x810;
/// x2APIC MSR of ISR bits 255:224.
pub const MSR_ISR_LAST: u32 = 0x817;
/// x2APIC MSR of TMR bits 31:0 (not modelled: reads 0).
pub const MSR_TMR_FIRST: u32 = 0x818;
/// x2APIC MSR of TMR bits 255:224.
pub const MSR_TMR_LAST: u32 = 0x81F;
/// x2APIC MSR of IRR bits 31:0.
pub const MSR_IRR_FIRST: u32 = 0x820;
/// x2APIC MSR of IRR bits 255:224.
pub const MSR_IRR_LAST: u32 = 0x827;
/// x2APIC MSR of the error status register (not modelled: reads 0; non-zero write #GP).
pub const MSR_ESR: u32 = 0x828;
/// x2APIC MSR of the CMCI LVT entry (not modelled).
pub const MSR_LVT_CMCI: u32 = 0x82F;
/// x2APIC MSR of the whole 64-bit ICR; a write sends the IPI.
pub const MSR_ICR: u32 = 0x830;
/// x2APIC MSR of the first LVT entry after the ICR (timer; not modelled).
pub const MSR_LVT_TIMER: u32 = 0x832;
/// x2APIC MSR of the last LVT entry (error; not modelled).
pub const MSR_LVT_ERROR: u32 = 0x837;
/// x2APIC MSR of the timer initial count (not modelled).
pub const MSR_TIMER_INITIAL_COUNT: u32 = 0x838;
/// x2APIC MSR of the timer current count (read-only; not modelled).
pub const MSR_TIMER_CURRENT_COUNT: u32 = 0x839;
/// x2APIC MSR of the timer divide configuration (not modelled).
pub const MSR_TIMER_DIVIDE: u32 = 0x83E;
/// x2APIC MSR of SELF IPI (write-only, x2APIC only): bits 7:0 are the vector.
pub const MSR_SELF_IPI: u32 = 0x83F;

/// SVR bit 8: the APIC is software-enabled.
pub const SVR_APIC_ENABLE: u32 = 1 << 8;
/// SVR after RESET/INIT: vector 0xFF, software-disabled (SDM §12.4.7.1).
pub const SVR_RESET: u32 = 0xFF;
/// SVR bits that keep what is written: vector and enable, as QEMU `apic_mem_write`
/// (`val & 0x1ff`). Focus checking (bit 9) is dropped as in QEMU; EOI-broadcast
/// suppression (bit 12) is not offered (version bit 24 is clear).
pub const SVR_WRITABLE: u32 = 0x1FF;
/// SVR bits that are defined at all (vector, enable, focus, EOI-broadcast suppression);
/// an x2APIC write setting any other bit is #GP.
const SVR_DEFINED: u64 = 0x13FF;
/// LDR bits 31:24 hold the xAPIC logical APIC ID; the rest is reserved.
const LDR_XAPIC_MASK: u32 = 0xFF00_0000;
/// DFR bits 31:28 hold the model (0xF flat, 0x0 cluster); bits 27:0 read as ones.
const DFR_MODEL_MASK: u32 = 0xF000_0000;
/// DFR after RESET/INIT: flat model, all ones (SDM §12.4.7.1).
const DFR_RESET: u32 = 0xFFFF_FFFF;
/// The ICR low bits that keep what is written: vector, delivery mode, destination mode,
/// level, trigger mode and shorthand. Delivery status (bit 12) and the reserved bits read 0.
const ICR_LOW_WRITABLE: u64 = icr::VECTOR_MASK
    | (icr::DELIVERY_MODE_MASK << icr::DELIVERY_MODE_SHIFT)
    | icr::DESTINATION_LOGICAL
    | icr::LEVEL_ASSERT
    | icr::TRIGGER_LEVEL
    | (icr::SHORTHAND_MASK << icr::SHORTHAND_SHIFT);
/// xAPIC: the ICR high dword keeps only the destination, bits 31:24.
const ICR_HIGH_XAPIC_MASK: u32 = 0xFF00_0000;
/// x2APIC ICR bits that are reserved: 13, 17:16 and 31:20; a WRMSR setting one is #GP.
/// Bit 12 (delivery status) is not in the list: Intel CPUs ignore it in x2APIC mode (AMD
/// faults), as KVM and coconut-svsm's APIC emulation model it.
const ICR_X2APIC_RESERVED: u64 = (1 << 13) | (0b11 << 16) | 0xFFF0_0000;
/// x2APIC: every register but the ICR is 32 bits wide; bits 63:32 are reserved.
const MSR_HIGH_RESERVED: u64 = 0xFFFF_FFFF_0000_0000;
/// x2APIC TPR and SELF IPI: only bits 7:0 are defined.
const BYTE_REGISTER_RESERVED: u64 = !0xFF;

/// 256 one-bit flags, one per vector, laid out as the eight 32-bit IRR/ISR registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct VectorBitmap([u32; 8]);

impl VectorBitmap {
    fn set(&mut self, vector: u8) {
        if let Some(word) = self.0.get_mut(usize::from(vector >> 5)) {
            *word |= 1 << (vector & 31);
        }
    }

    fn clear(&mut self, vector: u8) {
        if let Some(word) = self.0.get_mut(usize::from(vector >> 5)) {
            *word &= !(1 << (vector & 31));
        }
    }

    /// Register `index` (0 = vectors 0–31); 0 for an index past the end.
    fn word(&self, index: u32) -> u32 {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.0.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The highest vector whose bit is set.
    fn highest(&self) -> Option<u8> {
        let (index, word) = self.0.iter().enumerate().rev().find(|(_, w)| **w != 0)?;
        let bit = 31 - word.leading_zeros() as usize;
        u8::try_from(index * 32 + bit).ok()
    }
}

/// One CPU's local APIC: its registers, pending and in-service interrupts, and counters of
/// guest accesses it could not honour.
///
/// Exists so each core has the APIC state firmware programs (ID, SVR, TPR, ICR) without
/// the core knowing register encodings; it never references a CPU, a thread or other
/// APICs — an ICR write returns the [`Ipi`] and the simulator delivers it.
#[derive(Debug)]
pub struct LocalApic {
    apic_id: ApicId,
    /// Whether IA32_APIC_BASE has x2APIC mode on (set by the core through `set_x2apic`).
    x2apic: bool,
    tpr: u8,
    svr: u32,
    /// xAPIC logical destination register (bits 31:24).
    ldr: u32,
    /// xAPIC destination format register as stored: model in bits 31:28.
    dfr: u32,
    /// The ICR as one 64-bit value: xAPIC low dword in bits 31:0, high dword in 63:32.
    icr: u64,
    irr: VectorBitmap,
    isr: VectorBitmap,
    /// Accesses to registers smmsim does not model. Atomic because reads take `&self`
    /// (an xAPIC read has no architectural side effect) yet are counted, and the APIC
    /// must stay `Sync`; `Relaxed` suffices for a statistic.
    ignored_accesses: AtomicU64,
    bad_icr_writes: u64,
    illegal_vectors_received: u64,
}

impl Clone for LocalApic {
    fn clone(&self) -> LocalApic {
        LocalApic {
            ignored_accesses: AtomicU64::new(self.ignored_accesses()),
            ..*self
        }
    }
}

impl LocalApic {
    /// The APIC of a CPU with `apic_id` in its RESET state: xAPIC mode, software-disabled
    /// (SVR 0xFF), nothing pending.
    pub fn new(apic_id: ApicId) -> LocalApic {
        LocalApic {
            apic_id,
            x2apic: false,
            tpr: 0,
            svr: SVR_RESET,
            ldr: 0,
            dfr: DFR_RESET,
            icr: 0,
            irr: VectorBitmap::default(),
            isr: VectorBitmap::default(),
            ignored_accesses: AtomicU64::new(0),
            bad_icr_writes: 0,
            illegal_vectors_received: 0,
        }
    }

    /// Puts the registers in their RESET/INIT state.
    ///
    /// SDM §12.4.7.1 "Local APIC State After Power-Up or Reset": IRR, ISR, ICR, LDR and TPR
    /// 0, DFR all ones, SVR 0xFF (software-disabled), version unchanged. §12.4.7.3 "Local
    /// APIC State After an INIT Reset": the same, except that the APIC ID (and arbitration
    /// ID) are kept; §12.12.5.1 "x2APIC States": INIT leaves IA32_APIC_BASE alone, so an
    /// APIC in x2APIC mode stays in it. QEMU `apic_init_reset` does the same.
    ///
    /// So this keeps the APIC ID and the x2APIC flag: it is exactly INIT. For a hardware
    /// RESET the core also puts IA32_APIC_BASE back to its default and calls
    /// [`LocalApic::set_x2apic`]`(false)`. The counters are run statistics, not APIC state,
    /// and are kept.
    pub fn reset(&mut self) {
        self.tpr = 0;
        self.svr = SVR_RESET;
        self.ldr = 0;
        self.dfr = DFR_RESET;
        self.icr = 0;
        self.irr = VectorBitmap::default();
        self.isr = VectorBitmap::default();
    }

    /// The APIC ID this APIC answers to.
    pub fn apic_id(&self) -> ApicId {
        self.apic_id
    }

    /// Whether the APIC is in x2APIC mode (MSR interface on, MMIO page off).
    pub fn x2apic(&self) -> bool {
        self.x2apic
    }

    /// Switches between xAPIC and x2APIC mode, as IA32_APIC_BASE bit 10 says.
    ///
    /// The core calls it whenever IA32_APIC_BASE changes; checking that the transition is
    /// legal (x2APIC → xAPIC only through disabled, SDM §12.12.5) is the core's job. No
    /// register changes: the logical x2APIC ID is derived from the APIC ID on read, and the
    /// SDM leaves other registers undefined across the switch.
    pub fn set_x2apic(&mut self, x2apic: bool) {
        self.x2apic = x2apic;
    }

    /// How many guest accesses hit registers smmsim does not model (or MMIO while in
    /// x2APIC mode, or writes to read-only xAPIC registers); they read 0 and change nothing.
    pub fn ignored_accesses(&self) -> u64 {
        self.ignored_accesses.load(Ordering::Relaxed)
    }

    /// How many ICR writes sent nothing because the value did not decode (reserved delivery
    /// mode, logical destination mode).
    pub fn bad_icr_writes(&self) -> u64 {
        self.bad_icr_writes
    }

    /// How many fixed interrupts with an illegal vector (0–15) arrived and were dropped.
    pub fn illegal_vectors_received(&self) -> u64 {
        self.illegal_vectors_received
    }

    fn count_ignored(&self) {
        self.ignored_accesses.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads the 32-bit register at `offset` into the xAPIC MMIO page.
    ///
    /// The core passes the offset of an aligned dword; byte lanes and odd widths are its
    /// business. Offsets that are not a modelled register — including any offset not on a
    /// 16-byte boundary, offsets past the page, and every offset while in x2APIC mode —
    /// read 0 and are counted.
    pub fn mmio_read(&self, offset: u32) -> u32 {
        if self.x2apic || offset & 0xF != 0 {
            self.count_ignored();
            return 0;
        }
        match offset {
            // xAPIC IDs are 8 bits, in bits 31:24 (SDM §12.4.6 "Local APIC ID").
            REG_ID => (self.apic_id.0 & 0xFF) << 24,
            REG_VERSION => APIC_VERSION,
            REG_TPR => u32::from(self.tpr),
            REG_PPR => u32::from(self.ppr()),
            // Write-only; reads 0 as in QEMU.
            REG_EOI => 0,
            REG_LDR => self.ldr,
            REG_DFR => self.dfr | !DFR_MODEL_MASK,
            REG_SVR => self.svr,
            REG_ISR_FIRST..=REG_ISR_LAST => self.isr.word((offset - REG_ISR_FIRST) >> 4),
            REG_IRR_FIRST..=REG_IRR_LAST => self.irr.word((offset - REG_IRR_FIRST) >> 4),
            REG_ICR_LOW => self.icr as u32,
            REG_ICR_HIGH => (self.icr >> 32) as u32,
            _ => {
                self.count_ignored();
                0
            }
        }
    }

    /// Writes `value` to the 32-bit register at `offset` into the xAPIC MMIO page; a write
    /// to ICR low returns the IPI it sends.
    ///
    /// Writes to read-only or unmodelled registers, to offsets off a 16-byte boundary, and
    /// every write while in x2APIC mode change nothing and are counted.
    pub fn mmio_write(&mut self, offset: u32, value: u32) -> Option<Ipi> {
        if self.x2apic || offset & 0xF != 0 {
            self.count_ignored();
            return None;
        }
        match offset {
            // Bits 31:8 are reserved.
            REG_TPR => self.tpr = value as u8,
            // Any value signals EOI in xAPIC mode (software should write 0).
            REG_EOI => self.eoi(),
            REG_LDR => self.ldr = value & LDR_XAPIC_MASK,
            REG_DFR => self.dfr = value & DFR_MODEL_MASK,
            REG_SVR => self.svr = value & SVR_WRITABLE,
            REG_ICR_HIGH => {
                let high = u64::from(value & ICR_HIGH_XAPIC_MASK) << 32;
                self.icr = (self.icr & 0xFFFF_FFFF) | high;
            }
            REG_ICR_LOW => {
                // The guest writes the high dword first; writing the low dword sends
                // (SDM §12.6.1: "the act of writing to the low doubleword of the ICR
                // causes the IPI to be sent").
                self.icr = (self.icr & !0xFFFF_FFFF) | (u64::from(value) & ICR_LOW_WRITABLE);
                return self.send(false);
            }
            // ID (read-only here, see the module doc), version, PPR, ISR, IRR and
            // everything unmodelled.
            _ => self.count_ignored(),
        }
        None
    }

    /// RDMSR of x2APIC MSR `msr`; `None` means the core raises #GP(0).
    pub fn msr_read(&self, msr: u32) -> Option<u64> {
        if !self.x2apic {
            return None;
        }
        let value = match msr {
            MSR_ID => self.apic_id.0,
            MSR_VERSION => APIC_VERSION,
            MSR_TPR => u32::from(self.tpr),
            MSR_PPR => u32::from(self.ppr()),
            MSR_LDR => self.logical_x2apic_id(),
            MSR_SVR => self.svr,
            MSR_ISR_FIRST..=MSR_ISR_LAST => self.isr.word(msr - MSR_ISR_FIRST),
            MSR_IRR_FIRST..=MSR_IRR_LAST => self.irr.word(msr - MSR_IRR_FIRST),
            MSR_ICR => return Some(self.icr),
            MSR_TMR_FIRST..=MSR_TMR_LAST
            | MSR_ESR
            | MSR_LVT_CMCI
            | MSR_LVT_TIMER..=MSR_LVT_ERROR
            | MSR_TIMER_INITIAL_COUNT
            | MSR_TIMER_CURRENT_COUNT
            | MSR_TIMER_DIVIDE => {
                self.count_ignored();
                0
            }
            // EOI and SELF IPI are write-only; everything else is reserved.
            _ => return None,
        };
        Some(u64::from(value))
    }

    /// WRMSR of `value` to x2APIC MSR `msr`. `Err(())` means the core raises #GP(0);
    /// `Ok(Some(ipi))` is an IPI sent by an ICR or SELF IPI write.
    #[allow(clippy::result_unit_err)] // The only error is "#GP(0)"; the core maps it.
    pub fn msr_write(&mut self, msr: u32, value: u64) -> Result<Option<Ipi>, ()> {
        if !self.x2apic {
            return Err(());
        }
        if msr == MSR_ICR {
            if value & ICR_X2APIC_RESERVED != 0 {
                return Err(());
            }
            self.icr = value & !icr::DELIVERY_STATUS;
            return Ok(self.send(true));
        }
        if value & MSR_HIGH_RESERVED != 0 {
            return Err(());
        }
        match msr {
            MSR_TPR if value & BYTE_REGISTER_RESERVED == 0 => self.tpr = value as u8,
            // SDM Table "Local APIC Register Address Map Supported by x2APIC": "WRMSR of a
            // non-zero value causes #GP(0)".
            MSR_EOI if value == 0 => self.eoi(),
            MSR_SVR if value & !SVR_DEFINED == 0 => self.svr = value as u32 & SVR_WRITABLE,
            MSR_SELF_IPI if value & BYTE_REGISTER_RESERVED == 0 => {
                // SDM §12.12.11 "SELF IPI Register": a fixed, edge-triggered IPI to self.
                return Ok(Some(Ipi {
                    source: self.apic_id,
                    mode: DeliveryMode::Fixed,
                    vector: value as u8,
                    destination: Destination::SelfOnly,
                    level_assert: true,
                }));
            }
            MSR_ESR if value == 0 => self.count_ignored(),
            MSR_LVT_CMCI
            | MSR_LVT_TIMER..=MSR_LVT_ERROR
            | MSR_TIMER_INITIAL_COUNT
            | MSR_TIMER_DIVIDE => self.count_ignored(),
            // Reserved bits set above, read-only registers (ID, version, PPR, LDR, ISR,
            // TMR, IRR, current count), and reserved MSR addresses.
            _ => return Err(()),
        }
        Ok(None)
    }

    /// Accepts a fixed (or lowest-priority) interrupt with `vector` from the APIC bus: sets
    /// its IRR bit. Vectors 0–15 are illegal and dropped (SDM §12.5.3), and counted.
    ///
    /// Acceptance does not depend on SVR: a software-disabled APIC holds what is in its
    /// IRR (SDM §12.4.7.2), as QEMU's `apic_set_irq` does; [`LocalApic::pending_vector`]
    /// applies the enable bit.
    pub fn accept_fixed(&mut self, vector: u8) {
        if vector < 16 {
            self.illegal_vectors_received = self.illegal_vectors_received.saturating_add(1);
            return;
        }
        self.irr.set(vector);
    }

    /// The vector the core should take next, if any: the highest IRR vector whose
    /// priority class (bits 7:4) exceeds the processor-priority class, only while the APIC
    /// is software-enabled (SVR bit 8). Whether the core takes it (EFLAGS.IF, interrupt
    /// shadow) is the core's business.
    pub fn pending_vector(&self) -> Option<u8> {
        if self.svr & SVR_APIC_ENABLE == 0 {
            return None;
        }
        let vector = self.irr.highest()?;
        (vector >> 4 > self.ppr() >> 4).then_some(vector)
    }

    /// Takes the pending vector: moves it from the IRR to the ISR and returns it. The core
    /// calls it when it delivers the interrupt; `None` when nothing is pending.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = self.pending_vector()?;
        self.irr.clear(vector);
        self.isr.set(vector);
        Some(vector)
    }

    /// End of interrupt: the highest in-service vector is done (SDM §12.8.5). No-op when
    /// nothing is in service.
    fn eoi(&mut self) {
        if let Some(vector) = self.isr.highest() {
            self.isr.clear(vector);
        }
    }

    /// The processor-priority register (SDM §12.8.3.1): the higher of the TPR and the
    /// class of the highest in-service vector; the TPR's sub-class survives only when the
    /// TPR wins. Same as QEMU `apic_get_ppr`.
    fn ppr(&self) -> u8 {
        let isr_class = self.isr.highest().map_or(0, |v| v & 0xF0);
        if self.tpr & 0xF0 >= isr_class {
            self.tpr
        } else {
            isr_class
        }
    }

    /// The x2APIC logical ID (LDR), derived from the x2APIC ID (SDM §12.12.10.2): cluster
    /// ID (ID bits 19:4) in bits 31:16, one-hot position (ID bits 3:0) in bits 15:0.
    fn logical_x2apic_id(&self) -> u32 {
        let id = self.apic_id.0;
        ((id >> 4) << 16) | (1 << (id & 0xF))
    }

    /// Decodes the ICR just written; an undecodable value sends nothing and is counted.
    fn send(&mut self, x2apic: bool) -> Option<Ipi> {
        match decode_icr(self.apic_id, self.icr, x2apic) {
            Ok(ipi) => Some(ipi),
            Err(_) => {
                self.bad_icr_writes = self.bad_icr_writes.saturating_add(1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(apic_id: u32) -> LocalApic {
        let mut apic = LocalApic::new(ApicId(apic_id));
        assert_eq!(apic.mmio_write(REG_SVR, SVR_APIC_ENABLE | 0xFF), None);
        apic
    }

    fn x2apic(apic_id: u32) -> LocalApic {
        let mut apic = LocalApic::new(ApicId(apic_id));
        apic.set_x2apic(true);
        apic
    }

    #[test]
    fn reset_values_read_back_through_the_page() {
        let apic = LocalApic::new(ApicId(7));
        assert_eq!(apic.mmio_read(REG_ID), 0x0700_0000);
        assert_eq!(apic.mmio_read(REG_VERSION), 0x0005_0014);
        assert_eq!(apic.mmio_read(REG_TPR), 0);
        assert_eq!(apic.mmio_read(REG_PPR), 0);
        assert_eq!(apic.mmio_read(REG_LDR), 0);
        assert_eq!(apic.mmio_read(REG_DFR), 0xFFFF_FFFF);
        assert_eq!(apic.mmio_read(REG_SVR), 0xFF);
        assert_eq!(apic.mmio_read(REG_ICR_LOW), 0);
        assert_eq!(apic.mmio_read(REG_ICR_HIGH), 0);
        assert_eq!(apic.ignored_accesses(), 0);
    }

    #[test]
    fn icr_low_write_sends_and_delivery_status_reads_zero() {
        let mut apic = LocalApic::new(ApicId(0));
        assert_eq!(apic.mmio_write(REG_ICR_HIGH, 0x02FF_FFFF), None);
        assert_eq!(apic.mmio_read(REG_ICR_HIGH), 0x0200_0000);
        // INIT assert with the delivery-status and reserved bit 13 set by a sloppy guest.
        let ipi = apic.mmio_write(REG_ICR_LOW, 0xFFF3_7500).unwrap();
        assert_eq!(ipi.mode, DeliveryMode::Init);
        assert_eq!(ipi.destination, Destination::Physical(ApicId(2)));
        assert_eq!(ipi.source, ApicId(0));
        assert_eq!(apic.mmio_read(REG_ICR_LOW), 0x0000_4500);
        // The software-disabled APIC still sends (INIT-SIPI-SIPI happens before SVR is set).
        assert_eq!(apic.mmio_read(REG_SVR) & SVR_APIC_ENABLE, 0);
    }

    #[test]
    fn undecodable_icr_sends_nothing_and_is_counted() {
        let mut apic = LocalApic::new(ApicId(0));
        assert_eq!(apic.mmio_write(REG_ICR_LOW, 0x0000_0300), None);
        assert_eq!(apic.mmio_write(REG_ICR_LOW, 0x0000_0830), None);
        assert_eq!(apic.bad_icr_writes(), 2);
        // The value is kept for readback, like any register write.
        assert_eq!(apic.mmio_read(REG_ICR_LOW), 0x0000_0830);
    }

    #[test]
    fn id_version_and_other_read_only_writes_are_ignored_and_counted() {
        let mut apic = LocalApic::new(ApicId(1));
        for offset in [REG_ID, REG_VERSION, REG_PPR, REG_ISR_FIRST, REG_IRR_LAST] {
            assert_eq!(apic.mmio_write(offset, 0xFFFF_FFFF), None);
        }
        assert_eq!(apic.mmio_read(REG_ID), 0x0100_0000);
        assert_eq!(apic.mmio_read(REG_VERSION), APIC_VERSION);
        assert_eq!(apic.ignored_accesses(), 5);
    }

    #[test]
    fn unmodelled_and_misaligned_offsets_read_zero_and_are_counted() {
        let mut apic = LocalApic::new(ApicId(1));
        // LVT timer, ESR, an offset inside the ID slot, past the page, the far end of u32.
        for offset in [0x320, 0x280, 0x024, 0x1000, u32::MAX] {
            assert_eq!(apic.mmio_read(offset), 0);
            assert_eq!(apic.mmio_write(offset, 0xFFFF_FFFF), None);
        }
        assert_eq!(apic.ignored_accesses(), 10);
    }

    #[test]
    fn ldr_dfr_tpr_svr_keep_only_their_defined_bits() {
        let mut apic = LocalApic::new(ApicId(1));
        apic.mmio_write(REG_LDR, 0x12FF_FFFF);
        apic.mmio_write(REG_DFR, 0x0123_4567);
        apic.mmio_write(REG_TPR, 0xFFFF_FF25);
        apic.mmio_write(REG_SVR, 0xFFFF_FFFF);
        assert_eq!(apic.mmio_read(REG_LDR), 0x1200_0000);
        assert_eq!(apic.mmio_read(REG_DFR), 0x0FFF_FFFF);
        assert_eq!(apic.mmio_read(REG_TPR), 0x25);
        assert_eq!(apic.mmio_read(REG_SVR), 0x1FF);
    }

    #[test]
    fn fixed_interrupts_wait_for_software_enable() {
        let mut apic = LocalApic::new(ApicId(0));
        apic.accept_fixed(0x40);
        assert_eq!(apic.mmio_read(REG_IRR_FIRST + 0x20), 1);
        assert_eq!(apic.pending_vector(), None);
        assert_eq!(apic.acknowledge(), None);
        apic.mmio_write(REG_SVR, SVR_APIC_ENABLE | 0xFF);
        assert_eq!(apic.pending_vector(), Some(0x40));
    }

    #[test]
    fn acknowledge_moves_irr_to_isr_and_eoi_clears_the_highest() {
        let mut apic = enabled(0);
        apic.accept_fixed(0x31);
        apic.accept_fixed(0x52);
        assert_eq!(apic.acknowledge(), Some(0x52));
        // 0x31's class (3) does not exceed the in-service class (5).
        assert_eq!(apic.pending_vector(), None);
        assert_eq!(apic.mmio_read(REG_PPR), 0x50);
        assert_eq!(apic.mmio_read(REG_ISR_FIRST + 0x20), 1 << (0x52 - 0x40));
        assert_eq!(apic.mmio_read(REG_IRR_FIRST + 0x10), 1 << (0x31 - 0x20));
        apic.mmio_write(REG_EOI, 0);
        assert_eq!(apic.mmio_read(REG_ISR_FIRST + 0x20), 0);
        assert_eq!(apic.acknowledge(), Some(0x31));
        apic.mmio_write(REG_EOI, 0);
        assert_eq!(apic.mmio_read(REG_PPR), 0);
        // EOI with nothing in service is harmless.
        apic.mmio_write(REG_EOI, 0);
        assert_eq!(apic.acknowledge(), None);
    }

    #[test]
    fn tpr_masks_classes_at_or_below_it() {
        let mut apic = enabled(0);
        apic.accept_fixed(0x5F);
        apic.mmio_write(REG_TPR, 0x50);
        assert_eq!(apic.pending_vector(), None);
        assert_eq!(apic.mmio_read(REG_PPR), 0x50);
        apic.mmio_write(REG_TPR, 0x4F);
        assert_eq!(apic.pending_vector(), Some(0x5F));
    }

    #[test]
    fn a_same_vector_arriving_twice_is_one_request() {
        let mut apic = enabled(0);
        apic.accept_fixed(0x80);
        apic.accept_fixed(0x80);
        assert_eq!(apic.acknowledge(), Some(0x80));
        assert_eq!(apic.acknowledge(), None);
    }

    #[test]
    fn illegal_vectors_are_dropped_and_counted() {
        let mut apic = enabled(0);
        apic.accept_fixed(15);
        apic.accept_fixed(0);
        assert_eq!(apic.pending_vector(), None);
        assert_eq!(apic.mmio_read(REG_IRR_FIRST), 0);
        assert_eq!(apic.illegal_vectors_received(), 2);
        apic.accept_fixed(16);
        assert_eq!(apic.pending_vector(), Some(16));
        apic.accept_fixed(255);
        assert_eq!(apic.mmio_read(REG_IRR_LAST), 1 << 31);
        assert_eq!(apic.acknowledge(), Some(255));
    }

    #[test]
    fn reset_is_init_keeping_id_and_mode() {
        let mut apic = x2apic(0x123);
        apic.msr_write(MSR_SVR, 0x1FF).unwrap();
        apic.msr_write(MSR_TPR, 0x20).unwrap();
        apic.msr_write(MSR_ICR, 0x0000_0005_0000_0030).unwrap();
        apic.accept_fixed(0x90);
        apic.acknowledge();
        apic.accept_fixed(0xA0);
        apic.reset();
        assert!(apic.x2apic());
        assert_eq!(apic.msr_read(MSR_ID), Some(0x123));
        assert_eq!(apic.msr_read(MSR_SVR), Some(0xFF));
        assert_eq!(apic.msr_read(MSR_TPR), Some(0));
        assert_eq!(apic.msr_read(MSR_ICR), Some(0));
        assert_eq!(apic.msr_read(MSR_ISR_FIRST + 4), Some(0));
        assert_eq!(apic.msr_read(MSR_IRR_FIRST + 5), Some(0));
        assert_eq!(apic.msr_read(MSR_VERSION), Some(u64::from(APIC_VERSION)));
    }

    #[test]
    fn x2apic_msrs_fault_outside_x2apic_mode() {
        let mut apic = LocalApic::new(ApicId(1));
        assert_eq!(apic.msr_read(MSR_ID), None);
        assert_eq!(apic.msr_write(MSR_ICR, 0x30), Err(()));
        assert_eq!(apic.msr_write(MSR_EOI, 0), Err(()));
    }

    #[test]
    fn x2apic_id_ldr_and_icr() {
        let mut apic = x2apic(0x2A5);
        assert_eq!(apic.msr_read(MSR_ID), Some(0x2A5));
        // Cluster 0x2A, position 5 (SDM §12.12.10.2).
        assert_eq!(apic.msr_read(MSR_LDR), Some(0x002A_0020));
        let ipi = apic
            .msr_write(MSR_ICR, 0x0000_1000_0000_0200)
            .unwrap()
            .unwrap();
        assert_eq!(ipi.mode, DeliveryMode::Smi);
        assert_eq!(ipi.destination, Destination::Physical(ApicId(0x1000)));
        assert_eq!(ipi.source, ApicId(0x2A5));
        assert_eq!(apic.msr_read(MSR_ICR), Some(0x0000_1000_0000_0200));
        // Delivery status (bit 12) is ignored, not stored.
        apic.msr_write(MSR_ICR, 0x1030).unwrap();
        assert_eq!(apic.msr_read(MSR_ICR), Some(0x30));
    }

    #[test]
    fn x2apic_reserved_bits_and_wrong_directions_fault() {
        let mut apic = x2apic(1);
        for bits in [1 << 13, 1 << 16, 1 << 17, 1 << 20, 1 << 31] {
            assert_eq!(
                apic.msr_write(MSR_ICR, 0x30 | bits),
                Err(()),
                "bits {bits:#x}"
            );
        }
        assert_eq!(apic.msr_write(MSR_TPR, 0x100), Err(()));
        assert_eq!(apic.msr_write(MSR_SVR, 1 << 10), Err(()));
        assert_eq!(apic.msr_write(MSR_SVR, 1 << 32), Err(()));
        assert_eq!(apic.msr_write(MSR_EOI, 1), Err(()));
        assert_eq!(apic.msr_write(MSR_ESR, 1), Err(()));
        assert_eq!(apic.msr_write(MSR_SELF_IPI, 0x130), Err(()));
        for read_only in [
            MSR_ID,
            MSR_VERSION,
            MSR_PPR,
            MSR_LDR,
            MSR_ISR_FIRST,
            MSR_IRR_LAST,
        ] {
            assert_eq!(apic.msr_write(read_only, 0), Err(()), "MSR {read_only:#x}");
        }
        for write_only in [MSR_EOI, MSR_SELF_IPI] {
            assert_eq!(apic.msr_read(write_only), None, "MSR {write_only:#x}");
        }
        // Reserved addresses: no DFR (0x80E), no ICR high (0x831), nothing past 0x83F.
        for reserved in [0x800, 0x80E, 0x831, 0x840, 0x8FF] {
            assert_eq!(apic.msr_read(reserved), None, "MSR {reserved:#x}");
            assert_eq!(apic.msr_write(reserved, 0), Err(()), "MSR {reserved:#x}");
        }
        assert_eq!(apic.bad_icr_writes(), 0);
        assert_eq!(apic.msr_read(MSR_ICR), Some(0));
    }

    #[test]
    fn x2apic_unmodelled_registers_read_zero_and_are_counted() {
        let mut apic = x2apic(1);
        assert_eq!(apic.msr_read(MSR_LVT_TIMER), Some(0));
        assert_eq!(apic.msr_read(MSR_TMR_FIRST), Some(0));
        assert_eq!(apic.msr_write(MSR_LVT_ERROR, 0x1_0000), Ok(None));
        assert_eq!(apic.msr_write(MSR_ESR, 0), Ok(None));
        assert_eq!(apic.ignored_accesses(), 4);
    }

    #[test]
    fn self_ipi_is_fixed_to_self() {
        let mut apic = x2apic(9);
        let ipi = apic.msr_write(MSR_SELF_IPI, 0x41).unwrap().unwrap();
        assert_eq!(
            ipi,
            Ipi {
                source: ApicId(9),
                mode: DeliveryMode::Fixed,
                vector: 0x41,
                destination: Destination::SelfOnly,
                level_assert: true,
            }
        );
    }

    #[test]
    fn x2apic_eoi_tpr_and_bad_icr() {
        let mut apic = x2apic(1);
        apic.msr_write(MSR_SVR, 0x1FF).unwrap();
        apic.accept_fixed(0x61);
        assert_eq!(apic.acknowledge(), Some(0x61));
        assert_eq!(apic.msr_read(MSR_ISR_FIRST + 3), Some(2));
        assert_eq!(apic.msr_read(MSR_PPR), Some(0x60));
        assert_eq!(apic.msr_write(MSR_EOI, 0), Ok(None));
        assert_eq!(apic.msr_read(MSR_ISR_FIRST + 3), Some(0));
        apic.msr_write(MSR_TPR, 0x7F).unwrap();
        assert_eq!(apic.msr_read(MSR_TPR), Some(0x7F));
        // Logical destination: decodes to an error, counted, no #GP.
        assert_eq!(apic.msr_write(MSR_ICR, 0x0000_0001_0000_0830), Ok(None));
        assert_eq!(apic.bad_icr_writes(), 1);
    }

    #[test]
    fn mmio_is_off_in_x2apic_mode() {
        let mut apic = x2apic(3);
        assert_eq!(apic.mmio_read(REG_ID), 0);
        assert_eq!(apic.mmio_write(REG_ICR_LOW, 0x4500), None);
        assert_eq!(apic.ignored_accesses(), 2);
        apic.set_x2apic(false);
        assert_eq!(apic.mmio_read(REG_ID), 0x0300_0000);
    }

    #[test]
    fn xapic_id_register_holds_the_low_eight_bits() {
        let apic = LocalApic::new(ApicId(0x1FE));
        assert_eq!(apic.mmio_read(REG_ID), 0xFE00_0000);
    }

    #[test]
    fn clone_copies_state_and_counters() {
        let mut apic = enabled(4);
        apic.mmio_read(0x320);
        apic.accept_fixed(0x50);
        let copy = apic.clone();
        assert_eq!(copy.ignored_accesses(), 1);
        assert_eq!(copy.pending_vector(), Some(0x50));
        assert_eq!(copy.apic_id(), ApicId(4));
    }

    #[test]
    fn no_register_access_panics() {
        let mut apic = enabled(0);
        for offset in (0..0x1010).step_by(4) {
            apic.mmio_read(offset);
            apic.mmio_write(offset, 0xFFFF_FFFF);
            apic.mmio_write(offset, 0);
        }
        apic.set_x2apic(true);
        for msr in 0x7F0..0x910 {
            apic.msr_read(msr);
            let _ = apic.msr_write(msr, u64::MAX);
            let _ = apic.msr_write(msr, 0);
        }
        for vector in 0..=u8::MAX {
            apic.accept_fixed(vector);
            apic.acknowledge();
        }
    }
}
