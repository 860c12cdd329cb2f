//! A bench for instruction tests: a core on 1 MiB of RAM with no firmware to speak of, code
//! placed at 0x10000, run until its trailing HLT.

use std::sync::Arc;

use parking_lot::Mutex;
use smmsim_devices::{AccessContext, AccessWidth, ApicId, CpuIndex};
use smmsim_traces::Cycle;

use super::decode::DecodeCache;
use super::state::{attr, cr0, SegReg, Segment, RSP};
use super::{Cpu, Platform, StopReason};
use crate::image::FirmwareImage;
use crate::memory::GuestMemory;
use crate::timing::TimingTable;

/// Where test code is placed.
pub const CODE_BASE: u64 = 0x1_0000;
/// Where the test stack starts (SS base 0).
pub const STACK_TOP: u64 = 0x8000;

/// Records port writes; reads return `0x5A` of every width, so tests can tell them from
/// "unclaimed" all-ones. A write to port 0xF4 stops the run.
#[derive(Default)]
pub struct RecordingPlatform {
    /// Every OUT, in order: (port, width in bytes, value).
    pub writes: Mutex<Vec<(u16, u32, u32)>>,
}

impl Platform for RecordingPlatform {
    fn port_read(&self, _ctx: &AccessContext, _port: u16, width: AccessWidth) -> u32 {
        0x5A5A_5A5A & width.all_ones()
    }

    fn port_write(
        &self,
        _ctx: &AccessContext,
        port: u16,
        width: AccessWidth,
        value: u32,
    ) -> super::PortWriteOutcome {
        self.writes.lock().push((port, width.bytes(), value));
        super::PortWriteOutcome {
            stop: port == 0xF4,
            ..Default::default()
        }
    }
}

/// The mode test code runs in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Real mode, CS = 0x1000 (base 0x10000), IP = 0.
    Real,
    /// Flat 32-bit protected mode, CS base 0, EIP = 0x10000, a big stack.
    Protected32,
}

/// A core with its code loaded, ready to run.
pub struct Bench {
    /// The core.
    pub cpu: Cpu,
    /// Its decode cache.
    pub cache: DecodeCache,
    /// The port recorder it talks to.
    pub platform: Arc<RecordingPlatform>,
}

impl Bench {
    /// Loads `code` (a HLT is appended) in `mode`.
    pub fn new(mode: Mode, code: &[u8]) -> Bench {
        let image = FirmwareImage::from_vec("test", vec![0xF4; 64 * 1024]).expect("64 KiB image");
        let mem = Arc::new(GuestMemory::new(1 << 20, image).expect("1 MiB of RAM"));
        mem.write_bytes(CODE_BASE, code);
        mem.write_bytes(CODE_BASE + code.len() as u64, &[0xF4]);
        let platform = Arc::new(RecordingPlatform::default());
        let shared: Arc<dyn Platform> = platform.clone();
        let timing = TimingTable::default();
        let mut cpu = Cpu::new(CpuIndex(0), ApicId(0), mem, shared, timing);
        match mode {
            Mode::Real => {
                cpu.state.segs[SegReg::Cs as usize] = Segment::real_mode((CODE_BASE >> 4) as u16);
                cpu.state.rip = 0;
            }
            Mode::Protected32 => {
                cpu.state.cr0 |= cr0::PE;
                let flat = |selector, kind: u16| Segment {
                    selector,
                    base: 0,
                    limit: 0xFFFF_FFFF,
                    attrs: attr::P | attr::S | attr::DB | attr::G | kind,
                };
                for seg in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
                    cpu.state.segs[seg as usize] = flat(0x10, attr::RW | attr::ACCESSED);
                }
                cpu.state.segs[SegReg::Cs as usize] =
                    flat(0x08, attr::CODE | attr::RW | attr::ACCESSED);
                cpu.state.rip = CODE_BASE;
            }
        }
        cpu.state.regs[RSP] = STACK_TOP;
        Bench {
            cpu,
            cache: DecodeCache::new(timing, true),
            platform,
        }
    }

    /// Runs until HLT, debug exit, shutdown, or 1,000,000 cycles.
    pub fn run(&mut self) -> StopReason {
        self.cpu.run(&mut self.cache, Cycle(1_000_000))
    }

    /// Reads guest memory.
    pub fn read(&self, phys: u64, size: u8) -> u64 {
        self.cpu.memory().read(phys, size)
    }
}

/// Runs `code` in `mode` after `setup`, and returns the bench for inspection; the run must
/// end at the trailing HLT.
pub fn run(mode: Mode, code: &[u8], setup: impl FnOnce(&mut Cpu)) -> Bench {
    let mut bench = Bench::new(mode, code);
    setup(&mut bench.cpu);
    let reason = bench.run();
    assert_eq!(reason, StopReason::Halted, "test code must end at its HLT");
    bench
}
