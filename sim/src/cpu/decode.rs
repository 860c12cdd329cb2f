//! The decoded-block cache: iced-x86 decodes an instruction once, and the core reuses the
//! result every time it runs the same bytes in the same mode.
//!
//! Decoding costs about 9 ns an instruction; running a cached instruction costs a few. Code is
//! cached in blocks — straight-line runs that end at the first instruction that may change
//! control flow, mode or device state (branches, far transfers, interrupts, port I/O,
//! serializing and string instructions), at a page boundary, or after [`MAX_BLOCK_LEN`]
//! instructions — so one lookup serves a whole run of instructions. The flow:
//! 1. the core computes the physical address of CS:IP and its code size (16 or 32);
//! 2. [`DecodeCache::lookup`] probes one direct-mapped slot keyed by address and mode, and
//!    takes it only if the page's code generation is the one the block was decoded under (a
//!    write to the page since then makes it stale);
//! 3. on a miss it decodes instruction after instruction from 15 fetched bytes each, with
//!    iced-x86 at IP = 0 (so relative branch targets are stored as offsets from the
//!    instruction and a block stays valid for any CS base that maps the same bytes), picks
//!    each handler and cost, marks the page as holding code, and fills the slot;
//! 4. the core runs the block's instructions in order and leaves it early on a fault, when the
//!    cycle budget is spent, or when an instruction that touched memory changed the page's
//!    code generation (self-modifying code runs the new bytes).
//!
//! An instruction that crosses a page boundary is a block of its own, decoded every time,
//! since one generation cannot vouch for two pages. The cache is per core and allocated on
//! first use, so a parked core costs nothing here.

use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};

use super::exec::{self, Handler};
use super::operand::seg_of;
use crate::memory::{GuestMemory, CODE_PAGE_BYTES};
use crate::timing::TimingTable;

/// Number of block slots in a core's cache: 4,096 blocks cover the hot code of any firmware
/// image smmsim runs.
pub const CACHE_SLOTS: usize = 4096;

/// The most instructions one block holds.
pub const MAX_BLOCK_LEN: usize = 32;

/// Marks a register slot of [`Decoded`] that holds no plain general-purpose register.
pub const NO_REG: u8 = 0xFF;

/// The longest x86 instruction.
const MAX_INSTRUCTION_BYTES: usize = 15;

/// Default code size of the segment the instruction is fetched from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeMode {
    /// Real mode or a 16-bit code segment.
    Bits16 = 0,
    /// A 32-bit code segment.
    Bits32 = 1,
}

impl CodeMode {
    /// The bitness iced-x86 decodes with.
    pub fn bitness(self) -> u32 {
        match self {
            CodeMode::Bits16 => 16,
            CodeMode::Bits32 => 32,
        }
    }

    /// The mask applied to IP in this mode.
    #[inline(always)]
    pub fn ip_mask(self) -> u64 {
        match self {
            CodeMode::Bits16 => 0xFFFF,
            CodeMode::Bits32 => 0xFFFF_FFFF,
        }
    }
}

/// One decoded instruction, ready to run.
#[derive(Clone)]
pub struct Decoded {
    /// The instruction as iced-x86 decoded it at IP 0.
    pub insn: Instruction,
    /// The function that carries it out.
    pub handler: Handler,
    /// Cycles it costs, resolved from the timing table at decode time.
    pub cost: u32,
    /// Length in bytes.
    pub len: u8,
    /// Operand size in bytes (1, 2, 4 or 8): the size of operand 0 for most instructions.
    pub op_size: u8,
    /// Address size in bytes (2 or 4): the width of effective addresses and of SI/DI/CX in
    /// string instructions.
    pub addr_size: u8,
    /// Operands 0 and 1 as indices into the general registers when they are plain GPRs (not
    /// AH–BH), else [`NO_REG`]: fast handlers use them instead of decoding iced names.
    pub regs: [u8; 2],
    /// The instruction's first immediate, sign-extended as encoded (0 if none).
    pub imm: u64,
    /// The memory operand's displacement.
    pub disp: u64,
    /// The memory operand's base register index, or [`NO_REG`].
    pub mem_base: u8,
    /// The memory operand's index register index, or [`NO_REG`] (XLAT's AL index is applied
    /// by its handler).
    pub mem_index: u8,
    /// The memory operand's scale (1, 2, 4, 8).
    pub mem_scale: u8,
    /// The memory operand's segment, as a `SegReg` number.
    pub mem_seg: u8,
    /// True when running the instruction may have written memory (anything but register-only
    /// work), so the block's page must be checked for self-modification afterwards.
    pub may_write: bool,
    /// True when the instruction must be the last of its block.
    ends_block: bool,
}

/// A run of decoded instructions from one page.
pub struct Block {
    /// Cache tag: physical address × 4 + mode, or `u64::MAX` for a block that never hits.
    tag: u64,
    /// The code generation of the block's page when it was decoded.
    pub generation: u32,
    /// The instructions, in address order.
    pub insns: Vec<Decoded>,
}

impl Block {
    fn empty() -> Block {
        Block {
            tag: u64::MAX,
            generation: 0,
            insns: Vec::new(),
        }
    }

    /// Decodes the block starting at `phys` into this slot, reusing its allocation; returns
    /// how many instructions it decoded.
    fn fill(&mut self, mem: &GuestMemory, phys: u64, mode: CodeMode, timing: &TimingTable) -> u64 {
        // Read the generation before the bytes: a write racing with this decode then leaves
        // the block stale rather than wrongly fresh.
        mem.mark_code(phys);
        self.generation = mem.code_generation(phys);
        self.tag = (phys << 2) | mode as u64;
        self.insns.clear();
        let mut at = phys;
        loop {
            let (decoded, crosses_page) = decode(mem, at, mode, timing);
            if crosses_page {
                if self.insns.is_empty() {
                    // A lone page-crossing instruction: run it, never cache it.
                    self.tag = u64::MAX;
                    self.insns.push(decoded);
                }
                break;
            }
            at += u64::from(decoded.len);
            let ends = decoded.ends_block;
            self.insns.push(decoded);
            if ends || at % CODE_PAGE_BYTES == 0 || self.insns.len() == MAX_BLOCK_LEN {
                break;
            }
        }
        self.insns.len() as u64
    }
}

/// Counters a report shows about the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Instructions decoded (instructions run minus these came from the cache).
    pub decodes: u64,
    /// Blocks decoded again because a write to their page made the cached copy stale.
    pub invalidations: u64,
}

/// A core's decoded-block cache.
pub struct DecodeCache {
    /// Allocated on first use, so a core that never runs costs nothing here.
    slots: Vec<Block>,
    enabled: bool,
    timing: TimingTable,
    scratch: Block,
    /// What the cache did.
    pub stats: CacheStats,
}

impl DecodeCache {
    /// An empty cache (no slots allocated until the first lookup). With `enabled = false`
    /// every lookup decodes afresh — for measuring what the cache buys.
    pub fn new(timing: TimingTable, enabled: bool) -> DecodeCache {
        DecodeCache {
            slots: Vec::new(),
            enabled,
            scratch: Block::empty(),
            timing,
            stats: CacheStats::default(),
        }
    }

    /// Drops every entry and gives the memory back (used when a core parks for long).
    pub fn release(&mut self) {
        self.slots = Vec::new();
    }

    /// First use of an enabled cache allocates its slots; a disabled cache decodes afresh.
    #[cold]
    fn lookup_without_slots(&mut self, mem: &GuestMemory, phys: u64, mode: CodeMode) -> &Block {
        if self.enabled {
            self.slots = (0..CACHE_SLOTS).map(|_| Block::empty()).collect();
            return self.lookup(mem, phys, mode);
        }
        self.stats.decodes += self.scratch.fill(mem, phys, mode, &self.timing);
        &self.scratch
    }

    /// The block starting at `phys` in `mode`, decoding it on a miss.
    #[inline(always)]
    pub fn lookup(&mut self, mem: &GuestMemory, phys: u64, mode: CodeMode) -> &Block {
        if self.slots.is_empty() {
            return self.lookup_without_slots(mem, phys, mode);
        }
        let tag = (phys << 2) | mode as u64;
        let index = ((phys ^ (phys >> 12)) as usize) & (CACHE_SLOTS - 1);
        let slot = &mut self.slots[index];
        if slot.tag != tag || slot.generation != mem.code_generation(phys) {
            if slot.tag == tag {
                self.stats.invalidations += 1;
            }
            self.stats.decodes += slot.fill(mem, phys, mode, &self.timing);
        }
        slot
    }
}

/// Decodes the instruction at `phys` and prepares it to run; also says whether it crosses
/// into the next page.
fn decode(mem: &GuestMemory, phys: u64, mode: CodeMode, timing: &TimingTable) -> (Decoded, bool) {
    let mut bytes = [0u8; MAX_INSTRUCTION_BYTES];
    mem.read_bytes(phys, &mut bytes);
    let mut decoder = Decoder::with_ip(mode.bitness(), &bytes, 0, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    decoder.decode_out(&mut insn);
    let (handler, class) = if insn.is_invalid() {
        (exec::invalid_opcode as Handler, exec::CostClass::Simple)
    } else {
        exec::select(&insn)
    };
    let len = insn.len().max(1) as u64;
    let crosses_page = phys % CODE_PAGE_BYTES + len > CODE_PAGE_BYTES;
    let decoded = Decoded {
        handler,
        cost: class.cycles(timing),
        len: len as u8,
        op_size: operand_size(&insn, mode),
        addr_size: address_size(&insn, mode),
        regs: [plain_gpr(&insn, 0), plain_gpr(&insn, 1)],
        imm: first_immediate(&insn),
        disp: insn.memory_displacement64(),
        mem_base: gpr_index(insn.memory_base()),
        mem_index: match insn.memory_index().size() {
            1 => NO_REG,
            _ => gpr_index(insn.memory_index()),
        },
        mem_scale: insn.memory_index_scale() as u8,
        mem_seg: seg_of(insn.memory_segment()) as u8,
        may_write: class != exec::CostClass::Simple,
        // An instruction that faults ends its block when it runs; an undecodable one ends it
        // here too, so garbage after it is not decoded for nothing.
        ends_block: class.ends_block() || insn.is_invalid(),
        insn,
    };
    (decoded, crosses_page)
}

/// The index into `CpuState::regs` of a general-purpose register other than AH–BH.
pub(super) fn gpr_index(reg: Register) -> u8 {
    let n = reg as u32;
    let from = |first: Register| (n - first as u32) as u8;
    if (Register::EAX as u32..=Register::R15D as u32).contains(&n) {
        from(Register::EAX)
    } else if (Register::AX as u32..=Register::R15W as u32).contains(&n) {
        from(Register::AX)
    } else if (Register::RAX as u32..=Register::R15 as u32).contains(&n) {
        from(Register::RAX)
    } else if (Register::AL as u32..=Register::BL as u32).contains(&n) {
        from(Register::AL)
    } else if (Register::SPL as u32..=Register::R15L as u32).contains(&n) {
        from(Register::SPL) + 4
    } else {
        NO_REG
    }
}

/// Operand `n` as a plain GPR index, or [`NO_REG`].
pub(super) fn plain_gpr(insn: &Instruction, n: u32) -> u8 {
    if n < insn.op_count() && insn.op_kind(n) == OpKind::Register {
        gpr_index(insn.op_register(n))
    } else {
        NO_REG
    }
}

/// The first immediate operand's value as encoded (sign-extended where the encoding says).
fn first_immediate(insn: &Instruction) -> u64 {
    (0..insn.op_count())
        .find(|&n| {
            matches!(
                insn.op_kind(n),
                OpKind::Immediate8
                    | OpKind::Immediate16
                    | OpKind::Immediate32
                    | OpKind::Immediate64
                    | OpKind::Immediate8to16
                    | OpKind::Immediate8to32
                    | OpKind::Immediate8to64
                    | OpKind::Immediate32to64
            )
        })
        .map_or(0, |n| insn.immediate(n))
}

/// The operand size the handlers use: operand 0's size where it has one.
fn operand_size(insn: &Instruction, mode: CodeMode) -> u8 {
    let size = match insn.op0_kind() {
        OpKind::Register => insn.op0_register().size(),
        OpKind::Memory
        | OpKind::MemorySegSI
        | OpKind::MemorySegESI
        | OpKind::MemorySegRSI
        | OpKind::MemorySegDI
        | OpKind::MemorySegEDI
        | OpKind::MemorySegRDI
        | OpKind::MemoryESDI
        | OpKind::MemoryESEDI
        | OpKind::MemoryESRDI => insn.memory_size().size(),
        _ => 0,
    };
    match size {
        1 | 2 | 4 | 8 => size as u8,
        _ => match mode {
            CodeMode::Bits16 => 2,
            CodeMode::Bits32 => 4,
        },
    }
}

/// The address size: from the registers the memory operand uses, else from the displacement
/// size, else the mode's default flipped by a 0x67 prefix.
fn address_size(insn: &Instruction, mode: CodeMode) -> u8 {
    for op in 0..insn.op_count() {
        match insn.op_kind(op) {
            OpKind::MemorySegSI | OpKind::MemorySegDI | OpKind::MemoryESDI => return 2,
            OpKind::MemorySegESI | OpKind::MemorySegEDI | OpKind::MemoryESEDI => return 4,
            OpKind::MemorySegRSI | OpKind::MemorySegRDI | OpKind::MemoryESRDI => return 8,
            OpKind::Memory => {
                for reg in [insn.memory_base(), insn.memory_index()] {
                    if reg != Register::None && reg != Register::RIP && reg != Register::EIP {
                        return reg.size() as u8;
                    }
                }
                match insn.memory_displ_size() {
                    2 => return 2,
                    4 => return 4,
                    8 => return 8,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    // No memory operand says: the mode's default, flipped by an address-size prefix. LOOP and
    // JCXZ use this to pick CX or ECX; iced encodes that choice in the code, checked there.
    match mode {
        CodeMode::Bits16 => 2,
        CodeMode::Bits32 => 4,
    }
}
