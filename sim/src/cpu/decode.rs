//! The decoded-instruction cache: iced-x86 decodes an instruction once, and the core reuses
//! the result every time it runs the same bytes in the same mode.
//!
//! Decoding costs about 9 ns an instruction; a cache hit costs a tag compare. The flow:
//! 1. the core computes the physical address of CS:IP and its code size (16, 32 or 64);
//! 2. [`DecodeCache::lookup`] checks that no code page was written since the cache was filled
//!    (the memory's code epoch), then probes one direct-mapped slot keyed by address and mode;
//! 3. on a miss it fetches 15 bytes, decodes them with iced-x86 with IP = 0 (so relative
//!    branch targets are stored as offsets from the instruction and the entry stays valid for
//!    any CS base that maps the same bytes), picks the handler and the cost, marks the page as
//!    holding code, and fills the slot.
//!
//! The cache is per core and allocated on first use, so a parked core costs nothing here.

use iced_x86::{Decoder, DecoderOptions, Instruction, OpKind, Register};

use super::exec::{self, Handler};
use crate::memory::GuestMemory;
use crate::timing::TimingTable;

/// Number of slots in a core's cache: 8,192 slots cover the hot code of any firmware image.
pub const CACHE_SLOTS: usize = 8192;

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
    /// Cache tag: physical address × 4 + mode, or `u64::MAX` for an empty slot.
    tag: u64,
}

/// Counters a report shows about the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Instructions decoded.
    pub decodes: u64,
    /// Whole-cache flushes caused by writes to code pages.
    pub flushes: u64,
}

/// A core's decoded-instruction cache.
pub struct DecodeCache {
    slots: Vec<Decoded>,
    epoch: u64,
    enabled: bool,
    timing: TimingTable,
    scratch: Decoded,
    /// What the cache did.
    pub stats: CacheStats,
}

impl DecodeCache {
    /// An empty cache (no slots allocated until the first lookup). With `enabled = false`
    /// every lookup decodes afresh — for measuring what the cache buys.
    pub fn new(timing: TimingTable, enabled: bool) -> DecodeCache {
        DecodeCache {
            slots: Vec::new(),
            epoch: 0,
            enabled,
            scratch: empty_slot(),
            timing,
            stats: CacheStats::default(),
        }
    }

    /// Drops every entry and gives the memory back (used when a core parks for long).
    pub fn release(&mut self) {
        self.slots = Vec::new();
    }

    /// The decoded instruction at `phys` in `mode`, decoding it on a miss.
    #[inline(always)]
    pub fn lookup(&mut self, mem: &GuestMemory, phys: u64, mode: CodeMode) -> &Decoded {
        let epoch = mem.code_epoch();
        if epoch != self.epoch {
            self.flush(epoch);
        }
        if !self.enabled {
            self.scratch = decode(mem, phys, mode, &self.timing);
            self.stats.decodes += 1;
            return &self.scratch;
        }
        if self.slots.is_empty() {
            self.slots = vec![empty_slot(); CACHE_SLOTS];
        }
        let tag = (phys << 2) | mode as u64;
        let index = ((phys ^ (phys >> 13)) as usize) & (CACHE_SLOTS - 1);
        if self.slots[index].tag != tag {
            self.slots[index] = decode(mem, phys, mode, &self.timing);
            self.stats.decodes += 1;
        } else {
            self.stats.hits += 1;
        }
        &self.slots[index]
    }

    #[cold]
    fn flush(&mut self, epoch: u64) {
        for slot in &mut self.slots {
            slot.tag = u64::MAX;
        }
        self.epoch = epoch;
        self.stats.flushes += 1;
    }
}

fn empty_slot() -> Decoded {
    Decoded {
        insn: Instruction::default(),
        handler: exec::invalid_opcode,
        cost: 1,
        len: 1,
        op_size: 1,
        addr_size: 2,
        tag: u64::MAX,
    }
}

/// Decodes the instruction at `phys` and prepares it to run.
fn decode(mem: &GuestMemory, phys: u64, mode: CodeMode, timing: &TimingTable) -> Decoded {
    let mut bytes = [0u8; MAX_INSTRUCTION_BYTES];
    mem.read_bytes(phys, &mut bytes);
    mem.mark_code(phys);
    mem.mark_code(phys + MAX_INSTRUCTION_BYTES as u64 - 1);
    let mut decoder = Decoder::with_ip(mode.bitness(), &bytes, 0, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    decoder.decode_out(&mut insn);
    let (handler, class) = if insn.is_invalid() {
        (exec::invalid_opcode as Handler, exec::CostClass::Simple)
    } else {
        exec::select(&insn)
    };
    Decoded {
        handler,
        cost: class.cycles(timing),
        len: insn.len().max(1) as u8,
        op_size: operand_size(&insn, mode),
        addr_size: address_size(&insn, mode),
        tag: (phys << 2) | mode as u64,
        insn,
    }
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
