//! A core's architectural state: registers, flags, segment caches, descriptor-table
//! registers and control registers, and their values at RESET and INIT.
//!
//! Values at RESET follow Intel SDM Vol. 3A §10.1.1 (older editions §9.1.1), Table "IA-32
//! and Intel 64 Processor States Following Power-up, Reset, or INIT".

/// Index of RAX/EAX/AX/AL in [`CpuState::regs`].
pub const RAX: usize = 0;
/// Index of RCX.
pub const RCX: usize = 1;
/// Index of RDX.
pub const RDX: usize = 2;
/// Index of RBX.
pub const RBX: usize = 3;
/// Index of RSP.
pub const RSP: usize = 4;
/// Index of RBP.
pub const RBP: usize = 5;
/// Index of RSI.
pub const RSI: usize = 6;
/// Index of RDI.
pub const RDI: usize = 7;

/// RFLAGS bits (SDM Vol. 1 §3.4.3).
pub mod flags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Always one.
    pub const FIXED1: u64 = 1 << 1;
    /// Parity of the low result byte.
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry out of bit 3.
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Trap (single step).
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction for string instructions.
    pub const DF: u64 = 1 << 10;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
    /// I/O privilege level (two bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
    /// CPUID available (software-toggleable).
    pub const ID: u64 = 1 << 21;
    /// The six flags arithmetic instructions write.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
    /// Bits POPF may change at CPL 0 outside virtual-8086 mode (VM and RF are not written by
    /// POPF; SDM Vol. 2B, POPF).
    pub const POPF_WRITABLE: u64 = ARITH | TF | IF | DF | IOPL | NT | AC | ID;
}

/// CR0 bits used by the core (SDM Vol. 3A §2.5).
pub mod cr0 {
    /// Protection enable.
    pub const PE: u64 = 1 << 0;
    /// Monitor coprocessor.
    pub const MP: u64 = 1 << 1;
    /// x87 emulation.
    pub const EM: u64 = 1 << 2;
    /// Task switched.
    pub const TS: u64 = 1 << 3;
    /// Extension type (hard-wired to 1 on modern processors).
    pub const ET: u64 = 1 << 4;
    /// Numeric error.
    pub const NE: u64 = 1 << 5;
    /// Write protect.
    pub const WP: u64 = 1 << 16;
    /// Alignment mask.
    pub const AM: u64 = 1 << 18;
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
    /// Paging.
    pub const PG: u64 = 1 << 31;
    /// CR0 after RESET: CD, NW and ET set (SDM Vol. 3A §10.1.1).
    pub const AT_RESET: u64 = CD | NW | ET;
}

/// The six segment registers, in the encoding order of the ModRM `reg` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegReg {
    /// Extra segment; destination of string instructions.
    Es = 0,
    /// Code segment.
    Cs = 1,
    /// Stack segment.
    Ss = 2,
    /// Data segment.
    Ds = 3,
    /// Extra segment F.
    Fs = 4,
    /// Extra segment G.
    Gs = 5,
}

/// Attribute bits of a segment cache, laid out as bits 40–47 and 52–55 of a descriptor
/// shifted down by 40 (the same 12-bit layout VMX and SVM use).
pub mod attr {
    /// Accessed (data/code) — the low bit of the type.
    pub const ACCESSED: u16 = 1 << 0;
    /// Writable (data) / readable (code).
    pub const RW: u16 = 1 << 1;
    /// Expand-down (data) / conforming (code).
    pub const DC: u16 = 1 << 2;
    /// Code (1) or data (0).
    pub const CODE: u16 = 1 << 3;
    /// Code/data (1) or system (0) descriptor.
    pub const S: u16 = 1 << 4;
    /// Descriptor privilege level shift.
    pub const DPL_SHIFT: u16 = 5;
    /// Present.
    pub const P: u16 = 1 << 7;
    /// 64-bit code segment.
    pub const L: u16 = 1 << 13;
    /// Default operation size 32 (code) / big stack (SS).
    pub const DB: u16 = 1 << 14;
    /// Granularity: limit in 4 KiB units.
    pub const G: u16 = 1 << 15;
    /// A present, accessed, read/write data segment: every segment's attributes in real mode
    /// after RESET (SDM Vol. 3A Table 10-1: "Present, R/W, Accessed").
    pub const REAL_MODE_DATA: u16 = P | S | RW | ACCESSED;
}

/// A segment register with its hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The visible selector.
    pub selector: u16,
    /// Cached base address.
    pub base: u64,
    /// Cached limit in bytes (granularity already applied).
    pub limit: u32,
    /// Cached attributes, see [`attr`].
    pub attrs: u16,
}

impl Segment {
    /// A real-mode style segment: base = selector × 16, 64 KiB limit.
    pub fn real_mode(selector: u16) -> Segment {
        Segment {
            selector,
            base: u64::from(selector) << 4,
            limit: 0xFFFF,
            attrs: attr::REAL_MODE_DATA,
        }
    }

    /// True for a 32-bit code segment (CS) or a big stack (SS).
    #[inline(always)]
    pub fn is_32bit(&self) -> bool {
        self.attrs & attr::DB != 0
    }
}

/// A descriptor-table register (GDTR, IDTR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableRegister {
    /// Linear base address.
    pub base: u64,
    /// Limit in bytes (the last valid byte offset).
    pub limit: u16,
}

/// Everything the guest can observe about a core, apart from memory and its APIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuState {
    /// General-purpose registers, RAX … R15 (only the first eight are reachable before long
    /// mode).
    pub regs: [u64; 16],
    /// Instruction pointer (offset within CS).
    pub rip: u64,
    /// RFLAGS, bit 1 always set.
    pub rflags: u64,
    /// ES, CS, SS, DS, FS, GS, indexed by [`SegReg`].
    pub segs: [Segment; 6],
    /// Global descriptor table register.
    pub gdtr: TableRegister,
    /// Interrupt descriptor table register (in real mode, the IVT's base and limit).
    pub idtr: TableRegister,
    /// Local descriptor table register.
    pub ldtr: Segment,
    /// Task register.
    pub tr: Segment,
    /// Control register 0.
    pub cr0: u64,
    /// Control register 2 (page-fault address).
    pub cr2: u64,
    /// Control register 3 (page-table base).
    pub cr3: u64,
    /// Control register 4.
    pub cr4: u64,
    /// Extended feature enable register (MSR 0xC0000080).
    pub efer: u64,
    /// Debug register 7 (kept so firmware can write and read it; breakpoints are not modelled).
    pub dr7: u64,
    /// Debug registers 0–3 and 6, kept for the same reason.
    pub dr: [u64; 4],
    /// Debug register 6.
    pub dr6: u64,
}

/// EDX after RESET holds the processor signature (SDM Vol. 3A §10.1.4); smmsim reports the
/// same family/model/stepping as CPUID leaf 1 (QEMU's `qemu64` model: family 15, model 107,
/// stepping 1, `target/i386/cpu.c`).
pub const RESET_EDX: u64 = 0x0006_0FB1;

impl CpuState {
    /// The state after RESET: real mode, CS:IP = F000:FFF0 with CS base 0xFFFF0000.
    pub fn at_reset() -> CpuState {
        let mut cs = Segment::real_mode(0xF000);
        cs.base = 0xFFFF_0000;
        let mut segs = [Segment::real_mode(0); 6];
        segs[SegReg::Cs as usize] = cs;
        let mut regs = [0; 16];
        regs[RDX] = RESET_EDX;
        CpuState {
            regs,
            rip: 0xFFF0,
            rflags: flags::FIXED1,
            segs,
            gdtr: TableRegister {
                base: 0,
                limit: 0xFFFF,
            },
            idtr: TableRegister {
                base: 0,
                limit: 0xFFFF,
            },
            ldtr: Segment {
                attrs: attr::P | 0x2,
                ..Segment::real_mode(0)
            },
            tr: Segment {
                attrs: attr::P | 0xB,
                ..Segment::real_mode(0)
            },
            cr0: cr0::AT_RESET,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            efer: 0,
            dr7: 0x400,
            dr: [0; 4],
            dr6: 0xFFFF_0FF0,
        }
    }

    /// The state after INIT: as RESET except that CR0's CD and NW keep their values
    /// (SDM Vol. 3A Table 10-1, "INIT" column). The SMBASE register, kept outside this
    /// struct, is not touched by INIT either.
    pub fn at_init(&self) -> CpuState {
        let mut state = CpuState::at_reset();
        state.cr0 = (self.cr0 & (cr0::CD | cr0::NW)) | cr0::ET;
        state
    }

    /// The segment register `seg`.
    #[inline(always)]
    pub fn seg(&self, seg: SegReg) -> &Segment {
        &self.segs[seg as usize]
    }

    /// True in protected mode (CR0.PE) outside virtual-8086 mode.
    #[inline(always)]
    pub fn protected_mode(&self) -> bool {
        self.cr0 & cr0::PE != 0 && self.rflags & flags::VM == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_starts_at_the_reset_vector() {
        let state = CpuState::at_reset();
        let cs = state.seg(SegReg::Cs);
        assert_eq!(
            (cs.selector, cs.base, state.rip),
            (0xF000, 0xFFFF_0000, 0xFFF0)
        );
        assert_eq!(cs.base + state.rip, 0xFFFF_FFF0);
        assert_eq!(state.rflags, 2);
        assert_eq!(state.cr0, 0x6000_0010);
        assert!(!state.protected_mode());
    }

    #[test]
    fn init_keeps_cache_control_bits() {
        let mut state = CpuState::at_reset();
        state.cr0 = cr0::PE | cr0::ET;
        assert_eq!(state.at_init().cr0, cr0::ET);
    }
}
