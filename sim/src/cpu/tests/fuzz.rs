//! No-panic fuzzing: random byte sequences run in real and protected mode must end in a stop
//! reason — budget, HLT, shutdown or debug exit — and never in a host panic.
//!
//! The flow, per case:
//! 1. a deterministic PRNG (xorshift64*, no dependency) draws 16 code bytes, the general
//!    registers, and whether the core gets an interrupt table;
//! 2. a fresh bench is made in each mode, and the bytes are placed just below the firmware
//!    image's alias at 0xF0000 (the bench image is 64 KiB of HLT), with a few HLTs before
//!    them: a jump out of the 16 bytes then lands on a HLT instead of running through
//!    zeroed RAM (`add [bx+si], al` …) until the budget is spent, which would make the test
//!    slow without finding more;
//! 3. with a table, every vector leads to a HLT in the image, so a fault ends the case
//!    quickly; without one, delivery fails and escalates to a triple fault;
//! 4. the core runs for at most 20,000 cycles.
//!
//! Debug builds keep `debug_assert!`s and overflow checks on, so iced's
//! `Instruction::immediate` asserting on a non-immediate operand, or an arithmetic overflow,
//! shows up here as a failure naming the seed and the bytes.

use smmsim_traces::Cycle;

use super::super::decode::DecodeCache;
use super::super::state::{SegReg, Segment, RSP};
use super::super::testing::{Bench, Mode, STACK_TOP};
use crate::timing::TimingTable;

/// Byte sequences tried, each in both modes.
const CASES: u64 = 20_000;
/// Code bytes per case.
const CODE_BYTES: usize = 16;
/// Cycle budget per run.
const BUDGET_CYCLES: u64 = 20_000;
/// Physical address of the HLTs every vector leads to: the start of the image's alias below
/// 1 MiB (the bench image is 64 KiB of 0xF4).
const HLT_PHYS: u64 = 0xF_0000;
/// Where the code goes: the last 16 bytes before [`HLT_PHYS`]. In real mode CS = 0xEFFF,
/// so every IP outside the code reaches the image.
const CODE_PHYS: u64 = HLT_PHYS - CODE_BYTES as u64;
/// HLTs written before the code, for short backward jumps in protected mode.
const HLT_PAD_BYTES: u64 = 256;
/// Where the protected-mode GDT and IDT are built.
const GDT_BASE: u64 = 0x800;
const IDT_BASE: u64 = 0x1000;

/// Prefixes the biased cases put before an 0x0F escape: operand and address size, LOCK,
/// REP/REPE, REPNE, and the segment overrides.
const PREFIXES: [u8; 10] = [0x66, 0x67, 0xF0, 0xF3, 0xF2, 0x26, 0x2E, 0x36, 0x3E, 0x64];

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift generators").
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A flat 4 GiB descriptor with type byte `access` (0x9A code, 0x92 data).
fn flat_descriptor(access: u64) -> u64 {
    0x00CF_0000_0000_FFFF | (access << 40)
}

/// A 32-bit interrupt gate to selector 0x08, `offset`.
fn interrupt_gate(offset: u64) -> u64 {
    (offset & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | ((offset >> 16) << 48)
}

/// Points every vector at [`HLT_PHYS`]: the IVT in real mode; a GDT (null, flat code 0x08,
/// flat data 0x10) and a full IDT in protected mode.
fn install_tables(bench: &mut Bench, mode: Mode) {
    let cpu = &mut bench.cpu;
    match mode {
        Mode::Real => {
            for vector in 0..256 {
                cpu.memory().write(vector * 4, 4, (HLT_PHYS >> 4) << 16);
            }
        }
        Mode::Protected32 => {
            cpu.memory().write(GDT_BASE, 8, 0);
            cpu.memory().write(GDT_BASE + 8, 8, flat_descriptor(0x9B));
            cpu.memory().write(GDT_BASE + 16, 8, flat_descriptor(0x93));
            cpu.state.gdtr.base = GDT_BASE;
            cpu.state.gdtr.limit = 23;
            for vector in 0..256 {
                cpu.memory()
                    .write(IDT_BASE + vector * 8, 8, interrupt_gate(HLT_PHYS));
            }
            cpu.state.idtr.base = IDT_BASE;
            cpu.state.idtr.limit = 256 * 8 - 1;
        }
    }
}

fn run_case(mode: Mode, code: &[u8], regs: &[u64; 8], tables: bool) {
    let mut bench = Bench::new(mode, &[]);
    let mem = bench.cpu.memory();
    for offset in (0..HLT_PAD_BYTES).step_by(8) {
        mem.write(CODE_PHYS - HLT_PAD_BYTES + offset, 8, 0xF4F4_F4F4_F4F4_F4F4);
    }
    mem.write_bytes(CODE_PHYS, code);
    match mode {
        Mode::Real => {
            bench.cpu.state.segs[SegReg::Cs as usize] = Segment::real_mode((CODE_PHYS >> 4) as u16);
            bench.cpu.state.rip = 0;
        }
        Mode::Protected32 => bench.cpu.state.rip = CODE_PHYS,
    }
    // Each case uses a few instructions once: a disabled cache decodes them without filling
    // (and zeroing) 8,192 slots per case.
    bench.cache = DecodeCache::new(TimingTable::default(), false);
    for (index, value) in regs.iter().enumerate() {
        if index != RSP {
            bench.cpu.state.regs[index] = *value;
        }
    }
    if tables {
        install_tables(&mut bench, mode);
    } else {
        // An empty table: every delivery fails, escalating to a triple fault.
        bench.cpu.state.idtr.limit = 0;
    }
    // Any stop reason will do: reaching the end of the run without a panic is the test.
    bench.cpu.run(&mut bench.cache, Cycle(BUDGET_CYCLES));
}

#[test]
fn random_byte_sequences_never_panic_the_host() {
    let mut rng = Rng(0x5EED_0F5A_1AB1_E5ED);
    for case in 0..CASES {
        let seed = rng.0;
        let mut code = [0u8; CODE_BYTES];
        for chunk in code.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes()[..chunk.len()]);
        }
        // Uniform bytes rarely reach the two-byte map (system instructions, bit operations,
        // CMOV, SETcc …) or stack prefixes; half the cases start with some.
        let bias = rng.next();
        if bias & 1 == 0 {
            let prefixes = (bias >> 1) as usize % 3;
            for byte in code.iter_mut().take(prefixes) {
                *byte = PREFIXES[(bias >> 8) as usize % PREFIXES.len()];
            }
            code[prefixes] = 0x0F;
        }
        let mut regs = [0u64; 8];
        for reg in &mut regs {
            // Mostly small values, so memory operands land in RAM; sometimes anything.
            let value = rng.next();
            *reg = if value & 3 == 0 {
                value >> 32
            } else {
                (value >> 40) & 0xFFFF
            };
        }
        regs[RSP] = STACK_TOP;
        let tables = rng.next() % 4 != 0;
        for mode in [Mode::Real, Mode::Protected32] {
            let outcome = std::panic::catch_unwind(|| run_case(mode, &code, &regs, tables));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!(
                    "case {case} (seed {seed:#x}) in {} mode panicked on {code:02x?} \
                     (tables: {tables}): {message}",
                    if mode == Mode::Real {
                        "real"
                    } else {
                        "protected"
                    }
                );
            }
        }
    }
}
