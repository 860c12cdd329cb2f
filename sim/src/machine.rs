//! A machine: guest memory, the platform devices and the cores, and the loop that runs them
//! to an end.
//!
//! The flow of a run:
//! 1. [`Machine::new`] maps RAM and the firmware image and puts the boot CPU in its RESET
//!    state at the reset vector;
//! 2. [`Machine::run`] gives the core cycle budgets until it stops: a debug-exit write, HLT
//!    with nothing left to wake it, a triple fault, or the cycle limit;
//! 3. device effects (console bytes, the exit request) are carried out by the platform as
//!    the core's port accesses produce them;
//! 4. the [`RunReport`] says how the run ended and what it cost.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use smmsim_devices::{
    AccessContext, AccessWidth, ApicId, CpuIndex, Effect, PortBus, UnmappedAccesses,
};
use smmsim_traces::{Cycle, Cycles};

use crate::cpu::decode::{CacheStats, DecodeCache};
use crate::cpu::state::flags;
use crate::cpu::{Cpu, CpuStats, Platform, StopReason};
use crate::image::FirmwareImage;
use crate::memory::{GuestMemory, MemoryError};
use crate::timing::TimingTable;

/// The default clock: 2.0 GHz (DESIGN.md §2).
pub const DEFAULT_CLOCK_HZ: u64 = 2_000_000_000;
/// The default RAM size: 512 MiB (PLATFORM.md, memory map).
pub const DEFAULT_RAM_BYTES: u64 = 512 << 20;
/// The default cycle limit: 4 × 10⁹ cycles, two simulated seconds at 2 GHz — far beyond any
/// firmware boot smmsim ships, short enough that a runaway guest ends in seconds of host time.
pub const DEFAULT_MAX_CYCLES: u64 = 4_000_000_000;
/// How many cycles a core runs between checks of the machine (the quantum of DESIGN.md §2).
pub const DEFAULT_QUANTUM_CYCLES: u64 = 1_000;

/// What a machine is built from.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// RAM size in bytes.
    pub ram_bytes: u64,
    /// Instruction costs.
    pub timing: TimingTable,
    /// Core clock, for converting cycles to simulated time in reports.
    pub clock_hz: u64,
    /// The run ends with [`RunEnd::CycleLimit`] when the core's counter reaches this.
    pub max_cycles: u64,
    /// Cycles a core runs before the machine looks at it again.
    pub quantum_cycles: u64,
    /// Whether cores cache decoded instructions (off only to measure what it buys).
    pub decode_cache: bool,
}

impl Default for MachineConfig {
    fn default() -> MachineConfig {
        MachineConfig {
            ram_bytes: DEFAULT_RAM_BYTES,
            timing: TimingTable::default(),
            clock_hz: DEFAULT_CLOCK_HZ,
            max_cycles: DEFAULT_MAX_CYCLES,
            quantum_cycles: DEFAULT_QUANTUM_CYCLES,
            decode_cache: true,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The guest wrote to the debug-exit port; `status` is (value << 1) | 1, as QEMU's
    /// `isa-debug-exit` computes it.
    DebugExit {
        /// The exit status.
        status: u32,
    },
    /// Every core halted and nothing can wake it (no interrupt source exists yet).
    AllHalted {
        /// Whether the last core halted with IF set.
        interrupts_enabled: bool,
    },
    /// A core triple-faulted.
    Shutdown,
    /// The cycle limit was reached first.
    CycleLimit,
}

/// Process exit status for a run that ended with every CPU halted. Debug-exit statuses are
/// always odd, so the statuses smmsim chooses itself are even and never collide with them.
pub const EXIT_HALTED: i32 = 4;
/// Process exit status for a triple fault.
pub const EXIT_SHUTDOWN: i32 = 6;
/// Process exit status when the cycle limit was reached.
pub const EXIT_CYCLE_LIMIT: i32 = 8;

impl RunEnd {
    /// The process exit status `smmsim boot` uses for this ending.
    pub fn exit_status(self) -> i32 {
        match self {
            RunEnd::DebugExit { status } => status as i32,
            RunEnd::AllHalted { .. } => EXIT_HALTED,
            RunEnd::Shutdown => EXIT_SHUTDOWN,
            RunEnd::CycleLimit => EXIT_CYCLE_LIMIT,
        }
    }

    /// One line describing the ending.
    pub fn describe(self) -> String {
        match self {
            RunEnd::DebugExit { status } => {
                format!(
                    "debug exit: the guest wrote {:#x} to port 0xf4, status {status}",
                    status >> 1
                )
            }
            RunEnd::AllHalted {
                interrupts_enabled: false,
            } => "all CPUs halted with interrupts disabled".to_owned(),
            RunEnd::AllHalted {
                interrupts_enabled: true,
            } => "all CPUs halted and no interrupt can wake them".to_owned(),
            RunEnd::Shutdown => "shutdown: a CPU triple-faulted".to_owned(),
            RunEnd::CycleLimit => "cycle limit reached before the guest stopped".to_owned(),
        }
    }
}

/// What a run did and cost.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// How it ended.
    pub end: RunEnd,
    /// The boot CPU's counters.
    pub cpu: CpuStats,
    /// Simulated cycles.
    pub cycles: Cycles,
    /// Simulated clock rate.
    pub clock_hz: u64,
    /// Host time the run took.
    pub host_time: Duration,
    /// The decode cache's counters.
    pub cache: CacheStats,
    /// Port accesses no device claimed.
    pub unmapped_ports: UnmappedAccesses,
    /// The last POST code written to port 0x80, if any.
    pub last_post_code: Option<u8>,
}

impl RunReport {
    /// Guest instructions per host second, in millions.
    pub fn host_mips(&self) -> f64 {
        let seconds = self.host_time.as_secs_f64();
        if seconds == 0.0 {
            return 0.0;
        }
        self.cpu.instructions as f64 / seconds / 1e6
    }

    /// The one-screen summary `smmsim boot` prints to stderr.
    pub fn summary(&self) -> String {
        let nanos = self.cycles.to_nanos(self.clock_hz);
        let mut out = String::new();
        match self.end {
            RunEnd::CycleLimit => out.push_str(&format!(
                "smmsim: error: the guest did not stop within {} cycles (raise --max-cycles)\n",
                self.cycles.0
            )),
            end => out.push_str(&format!("smmsim: {}\n", end.describe())),
        }
        out.push_str(&format!(
            "  simulated   {} instructions, {} cycles = {} at {:.1} GHz\n",
            self.cpu.instructions,
            self.cycles.0,
            human_nanos(nanos),
            self.clock_hz as f64 / 1e9
        ));
        out.push_str(&format!(
            "  host        {:.3} s, {:.1} MIPS; decode cache {} hits, {} decodes, {} invalidated\n",
            self.host_time.as_secs_f64(),
            self.host_mips(),
            self.cpu.instructions.saturating_sub(self.cache.decodes),
            self.cache.decodes,
            self.cache.invalidations
        ));
        out.push_str(&format!(
            "  #UD         {} unsupported, {} invalid opcodes; {} exceptions delivered\n",
            self.cpu.unsupported, self.cpu.invalid, self.cpu.exceptions
        ));
        for example in &self.cpu.unsupported_examples {
            out.push_str(&format!("              not covered: {example}\n"));
        }
        out.push_str(&format!(
            "  ports       {} unclaimed reads, {} unclaimed writes",
            self.unmapped_ports.reads, self.unmapped_ports.writes
        ));
        if let Some(code) = self.last_post_code {
            out.push_str(&format!("; last POST code {code:#04x}"));
        }
        out.push('\n');
        out
    }
}

/// Formats simulated nanoseconds in the largest unit that keeps three significant digits.
pub fn human_nanos(nanos: u128) -> String {
    let value = nanos as f64;
    if nanos >= 1_000_000_000 {
        format!("{:.3} s", value / 1e9)
    } else if nanos >= 1_000_000 {
        format!("{:.3} ms", value / 1e6)
    } else if nanos >= 1_000 {
        format!("{:.3} µs", value / 1e3)
    } else {
        format!("{nanos} ns")
    }
}

/// Where the debug console's bytes go.
pub type ConsoleSink = Box<dyn Write + Send>;

/// The devices and their effects, shared by the cores.
struct MachinePlatform {
    ports: Mutex<PortBus>,
    console: Mutex<ConsoleSink>,
    exit_status: Mutex<Option<u32>>,
    last_post_code: Mutex<Option<u8>>,
}

impl MachinePlatform {
    /// Carries out device effects; returns true when one ends the run.
    fn apply(&self, effects: &[Effect]) -> bool {
        let mut stop = false;
        for effect in effects {
            match *effect {
                Effect::ConsoleByte(byte) => {
                    let mut console = self.console.lock();
                    // A console that cannot be written (closed pipe) must not end the run.
                    let _ = console.write_all(&[byte]);
                    if byte == b'\n' {
                        let _ = console.flush();
                    }
                }
                Effect::Exit { status } => {
                    *self.exit_status.lock() = Some(status);
                    stop = true;
                }
                Effect::PostCode(code) => *self.last_post_code.lock() = Some(code),
            }
        }
        stop
    }
}

impl Platform for MachinePlatform {
    fn port_read(&self, ctx: &AccessContext, port: u16, width: AccessWidth) -> u32 {
        let mut effects = Vec::new();
        let value = self.ports.lock().read(ctx, port, width, &mut effects);
        self.apply(&effects);
        value
    }

    fn port_write(&self, ctx: &AccessContext, port: u16, width: AccessWidth, value: u32) -> bool {
        let mut effects = Vec::new();
        self.ports
            .lock()
            .write(ctx, port, width, value, &mut effects);
        self.apply(&effects)
    }
}

/// A simulated machine ready to run.
pub struct Machine {
    config: MachineConfig,
    platform: Arc<MachinePlatform>,
    cpu: Cpu,
    cache: DecodeCache,
}

impl Machine {
    /// Builds a one-CPU machine running `image`, its console going to `console`.
    pub fn new(
        config: MachineConfig,
        image: FirmwareImage,
        console: ConsoleSink,
    ) -> Result<Machine, MemoryError> {
        let mem = Arc::new(GuestMemory::new(config.ram_bytes, image)?);
        let platform = Arc::new(MachinePlatform {
            ports: Mutex::new(PortBus::with_debug_devices()),
            console: Mutex::new(console),
            exit_status: Mutex::new(None),
            last_post_code: Mutex::new(None),
        });
        let shared: Arc<dyn Platform> = platform.clone();
        let cpu = Cpu::new(CpuIndex(0), ApicId(0), mem, shared, config.timing);
        let cache = DecodeCache::new(config.timing, config.decode_cache);
        Ok(Machine {
            config,
            platform,
            cpu,
            cache,
        })
    }

    /// The boot CPU (for tests and tools that inspect state after a run).
    pub fn cpu(&self) -> &Cpu {
        &self.cpu
    }

    /// Runs until the guest stops or the cycle limit is reached.
    pub fn run(&mut self) -> RunReport {
        let started = Instant::now();
        let end = loop {
            let until = self
                .cpu
                .cycle
                .saturating_add(self.config.quantum_cycles)
                .min(self.config.max_cycles);
            match self.cpu.run(&mut self.cache, Cycle(until)) {
                StopReason::Budget if self.cpu.cycle >= self.config.max_cycles => {
                    break RunEnd::CycleLimit
                }
                StopReason::Budget => {}
                StopReason::Halted => {
                    break RunEnd::AllHalted {
                        interrupts_enabled: self.cpu.state.rflags & flags::IF != 0,
                    }
                }
                StopReason::Shutdown => break RunEnd::Shutdown,
                StopReason::PlatformStop => {
                    let status = self.platform.exit_status.lock().unwrap_or(1);
                    break RunEnd::DebugExit { status };
                }
            }
        };
        let _ = self.platform.console.lock().flush();
        RunReport {
            end,
            cpu: self.cpu.stats.clone(),
            cycles: Cycles(self.cpu.cycle),
            clock_hz: self.config.clock_hz,
            host_time: started.elapsed(),
            cache: self.cache.stats,
            unmapped_ports: self.platform.ports.lock().unmapped_accesses(),
            last_post_code: *self.platform.last_post_code.lock(),
        }
    }
}
