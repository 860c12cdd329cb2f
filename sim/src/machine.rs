//! A machine: guest memory, the platform devices and the cores, and the loop that runs them
//! to an end.
//!
//! The flow of a run:
//! 1. [`Machine::new`] maps RAM and the firmware image and builds the present CPUs in their
//!    RESET state: the BSP (APIC ID 0) at the reset vector, the others waiting for SIPI.
//!    Possible but absent CPUs (up to `max_cpus`) cost nothing until hot-plug adds them;
//! 2. [`Machine::run`] hands the cores to the scheduler (`scheduler.rs`), which runs them in
//!    quanta on their own host threads until a debug-exit write, every CPU idle with nothing
//!    to wake it, a triple fault, or the cycle limit;
//! 3. device effects (console bytes, the exit request) are carried out by the platform as
//!    the cores' port accesses produce them;
//! 4. the [`RunReport`] says how the run ended and what it cost, per CPU and in total.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use smmsim_devices::{
    AccessContext, AccessWidth, ApicId, ChipsetProfile, CpuIndex, DmaError, DmaMemory, Effect,
    FwCfg, PortBus, Q35Chipset, Q35Config, SmramLayout, UnmappedAccesses,
};
use smmsim_traces::Cycles;

use crate::core_thread::{Core, CoreHandle};
use crate::cpu::decode::{CacheStats, DecodeCache};
use crate::cpu::smm::{Profile, SaveStateLayout, SmmState};
use crate::cpu::state::flags;
use crate::cpu::{Activity, Cpu, CpuStats, Platform, PortWriteOutcome, DEFAULT_IPI_LATENCY_CYCLES};
use crate::image::FirmwareImage;
use crate::memory::{GuestMemory, MemoryError};
use crate::scheduler::{ExecMode, ScheduleEnd, Scheduler};
use crate::timing::TimingTable;

/// The most CPUs a machine may have (DESIGN.md: up to 4096 logical CPUs).
pub const MAX_CPUS: u32 = 4096;

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
    /// CPUs present at RESET (QEMU `-smp N`).
    pub cpus: u32,
    /// CPUs possible (QEMU `-smp N,maxcpus=M`), at most [`MAX_CPUS`].
    pub max_cpus: u32,
    /// How cores share the host.
    pub mode: ExecMode,
    /// Cycles from an IPI's send to its delivery.
    pub ipi_latency_cycles: u64,
    /// The SMM state-save map every CPU uses.
    pub layout: SaveStateLayout,
    /// How SMI, INIT and SIPI interact (PLATFORM.md profiles).
    pub profile: Profile,
}

/// Why a machine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// Guest memory could not be set up.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The chipset model refused its configuration.
    #[error("cannot build the q35 chipset")]
    Chipset(#[source] smmsim_devices::ChipsetError),
    /// The CPU counts are inconsistent.
    #[error("{cpus} present CPUs with maxcpus={max_cpus}: need 1 <= present <= maxcpus <= 4096")]
    CpuCount {
        /// Present CPUs asked for.
        cpus: u32,
        /// Possible CPUs asked for.
        max_cpus: u32,
    },
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
            cpus: 1,
            max_cpus: 1,
            mode: ExecMode::Deterministic,
            ipi_latency_cycles: DEFAULT_IPI_LATENCY_CYCLES,
            layout: SaveStateLayout::default(),
            profile: Profile::default(),
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
    /// Every CPU halted or waits for SIPI and no message is in flight to wake one.
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

/// One CPU's share of a run.
#[derive(Clone, Debug)]
pub struct CpuSummary {
    /// The CPU's APIC ID.
    pub apic_id: u32,
    /// Its counters.
    pub stats: CpuStats,
    /// Its cycle counter at the end.
    pub cycles: u64,
    /// What it was doing at the end.
    pub activity: Activity,
}

/// What a run did and cost.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// How it ended.
    pub end: RunEnd,
    /// Counters summed over every CPU.
    pub cpu: CpuStats,
    /// Each present CPU's share.
    pub cpus: Vec<CpuSummary>,
    /// Simulated cycles: the furthest any CPU's clock got.
    pub cycles: Cycles,
    /// Host time not spent running guest code on the critical path (hand-offs, barriers).
    pub barrier_time: Duration,
    /// Simulated clock rate.
    pub clock_hz: u64,
    /// Host time the run took.
    pub host_time: Duration,
    /// The decode cache's counters.
    pub cache: CacheStats,
    /// Port accesses no device claimed.
    pub unmapped_ports: UnmappedAccesses,
    /// Non-SMM (reads, writes) of SMRAM that were blocked.
    pub smram_blocked: (u64, u64),
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
            "  smm         {} SMIs taken, {} RSMs; {} non-SMM reads and {} writes of SMRAM blocked\n",
            self.cpu.smm_entries, self.cpu.rsm_count, self.smram_blocked.0, self.smram_blocked.1
        ));
        out.push_str(&format!(
            "  barriers    {:.3} s of host time in hand-offs and barriers\n",
            self.barrier_time.as_secs_f64()
        ));
        if self.cpus.len() > 1 {
            for cpu in self.cpus.iter().take(SUMMARY_CPU_LINES) {
                out.push_str(&format!(
                    "  cpu {:<4}    {} instructions, {} cycles, {} halted, {:?}\n",
                    cpu.apic_id,
                    cpu.stats.instructions,
                    cpu.cycles,
                    cpu.stats.halted_cycles,
                    cpu.activity
                ));
            }
            if self.cpus.len() > SUMMARY_CPU_LINES {
                out.push_str(&format!(
                    "  …           {} more CPUs\n",
                    self.cpus.len() - SUMMARY_CPU_LINES
                ));
            }
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

/// How many CPUs the summary lists one by one.
const SUMMARY_CPU_LINES: usize = 16;

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
///
/// Port accesses go to the q35 chipset first (its windows are scattered and the PM block
/// moves with PMBASE), then to the port bus of fixed devices.
struct MachinePlatform {
    chipset: Mutex<Q35Chipset>,
    ports: Mutex<PortBus>,
    mem: Arc<GuestMemory>,
    console: Mutex<ConsoleSink>,
    exit_status: Mutex<Option<u32>>,
    last_post_code: Mutex<Option<u8>>,
}

/// fw_cfg DMA sees guest memory as a device does: outside SMM, so closed SMRAM reads all
/// ones and drops writes.
struct DmaView<'a>(&'a GuestMemory);

impl DmaMemory for DmaView<'_> {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        if self.0.smram().covers(address, buf.len() as u64) {
            buf.fill(0xFF);
        } else {
            self.0.read_bytes(address, buf);
        }
        Ok(())
    }

    fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), DmaError> {
        if !self.0.smram().covers(address, bytes.len() as u64) {
            self.0.write_bytes(address, bytes);
        }
        Ok(())
    }
}

impl MachinePlatform {
    /// Carries out device effects and says what they ask of the CPUs.
    fn apply(&self, effects: &[Effect]) -> PortWriteOutcome {
        let mut outcome = PortWriteOutcome::default();
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
                    outcome.stop = true;
                }
                Effect::PostCode(code) => *self.last_post_code.lock() = Some(code),
                Effect::RaiseSmi { target } => outcome.smi = Some(target),
                Effect::SmramChanged(layout) => self.set_smram_view(&layout),
                Effect::Reset { hard } => {
                    if hard {
                        let mut chipset = self.chipset.lock();
                        chipset.reset(true);
                        self.set_smram_view(&chipset.smram_layout());
                    }
                    outcome.reset = Some(hard);
                }
            }
        }
        outcome
    }

    /// Makes guest memory decode SMRAM as the chipset now does.
    fn set_smram_view(&self, layout: &SmramLayout) {
        let tseg = layout.tseg.map(|range| (range.base, range.size_bytes));
        self.mem.smram().set(tseg, layout.default_smbase_locked);
    }
}

impl Platform for MachinePlatform {
    fn port_read(&self, ctx: &AccessContext, port: u16, width: AccessWidth) -> u32 {
        let mut effects = Vec::new();
        let claimed = self
            .chipset
            .lock()
            .port_read(ctx, port, width, &mut effects);
        let value = match claimed {
            Some(value) => value,
            None => self.ports.lock().read(ctx, port, width, &mut effects),
        };
        self.apply(&effects);
        value
    }

    fn port_write(
        &self,
        ctx: &AccessContext,
        port: u16,
        width: AccessWidth,
        value: u32,
    ) -> PortWriteOutcome {
        let mut effects = Vec::new();
        let claimed = self.chipset.lock().port_write(
            ctx,
            port,
            width,
            value,
            &mut DmaView(&self.mem),
            &mut effects,
        );
        if !claimed {
            self.ports
                .lock()
                .write(ctx, port, width, value, &mut effects);
        }
        self.apply(&effects)
    }
}

/// A simulated machine ready to run.
pub struct Machine {
    config: MachineConfig,
    platform: Arc<MachinePlatform>,
    cores: Vec<Core>,
}

impl Machine {
    /// Builds a machine running `image`, its console going to `console`.
    pub fn new(
        config: MachineConfig,
        image: FirmwareImage,
        console: ConsoleSink,
    ) -> Result<Machine, MachineError> {
        let (cpus, max_cpus) = (config.cpus, config.max_cpus);
        if cpus == 0 || cpus > max_cpus || max_cpus > MAX_CPUS {
            return Err(MachineError::CpuCount { cpus, max_cpus });
        }
        let mem = Arc::new(GuestMemory::new(config.ram_bytes, image)?);
        // fw_cfg tells firmware the CPU counts and RAM size, as QEMU's does (PLATFORM.md).
        let mut fw_cfg = FwCfg::new(cpus as u16, max_cpus as u16);
        fw_cfg.set_ram_size(config.ram_bytes);
        let mut chipset_config = Q35Config::new(config.ram_bytes);
        chipset_config.clock_hz = config.clock_hz;
        if config.profile == Profile::Qemu {
            chipset_config.profile = ChipsetProfile::Qemu;
        }
        let chipset = Q35Chipset::new(chipset_config, fw_cfg).map_err(MachineError::Chipset)?;
        let platform = Arc::new(MachinePlatform {
            chipset: Mutex::new(chipset),
            ports: Mutex::new(PortBus::with_debug_devices()),
            mem: Arc::clone(&mem),
            console: Mutex::new(console),
            exit_status: Mutex::new(None),
            last_post_code: Mutex::new(None),
        });
        let cores = (0..cpus)
            .map(|index| {
                let shared: Arc<dyn Platform> = platform.clone();
                let mut cpu = Cpu::new(
                    CpuIndex(index),
                    ApicId(index),
                    Arc::clone(&mem),
                    shared,
                    config.timing,
                );
                cpu.set_ipi_latency(config.ipi_latency_cycles);
                cpu.smm = SmmState::at_reset(config.layout, config.profile);
                let cache = DecodeCache::new(config.timing, config.decode_cache);
                Core { cpu, cache }
            })
            .collect();
        Ok(Machine {
            config,
            platform,
            cores,
        })
    }

    /// The boot CPU (for tests and tools that inspect state after a run).
    pub fn cpu(&self) -> &Cpu {
        &self.cores[0].cpu
    }

    /// Runs until the guest stops or the cycle limit is reached.
    pub fn run(&mut self) -> RunReport {
        let started = Instant::now();
        let handles = std::mem::take(&mut self.cores)
            .into_iter()
            .map(|core| CoreHandle::Idle(Box::new(core)))
            .collect();
        let mut scheduler = Scheduler::new(
            handles,
            self.config.mode,
            self.config.quantum_cycles,
            self.config.max_cycles,
        );
        let schedule_end = scheduler.run();
        let cycles = scheduler.machine_cycles();
        let stats = scheduler.stats;
        self.cores = scheduler
            .cores
            .into_iter()
            .filter_map(CoreHandle::into_core)
            .map(|core| *core)
            .collect();
        let bsp_if = self
            .cores
            .first()
            .is_some_and(|core| core.cpu.state.rflags & flags::IF != 0);
        let end = match schedule_end {
            ScheduleEnd::PlatformStop => RunEnd::DebugExit {
                status: self.platform.exit_status.lock().unwrap_or(1),
            },
            ScheduleEnd::Shutdown => RunEnd::Shutdown,
            ScheduleEnd::AllIdle => RunEnd::AllHalted {
                interrupts_enabled: bsp_if,
            },
            ScheduleEnd::CycleLimit => RunEnd::CycleLimit,
        };
        let _ = self.platform.console.lock().flush();
        let mut total = CpuStats::default();
        let mut cache = CacheStats::default();
        let mut cpus = Vec::with_capacity(self.cores.len());
        for core in &self.cores {
            let stats = &core.cpu.stats;
            total.instructions += stats.instructions;
            total.unsupported += stats.unsupported;
            total.invalid += stats.invalid;
            total.exceptions += stats.exceptions;
            total.halted_cycles += stats.halted_cycles;
            total.ipis_sent += stats.ipis_sent;
            total.ipis_received += stats.ipis_received;
            total.ipis_ignored += stats.ipis_ignored;
            total.smm_entries += stats.smm_entries;
            total.rsm_count += stats.rsm_count;
            total
                .unsupported_examples
                .extend(stats.unsupported_examples.iter().cloned());
            cache.decodes += core.cache.stats.decodes;
            cache.invalidations += core.cache.stats.invalidations;
            cpus.push(CpuSummary {
                apic_id: core.cpu.apic_id.0,
                stats: stats.clone(),
                cycles: core.cpu.cycle,
                activity: core.cpu.activity,
            });
        }
        total.unsupported_examples.truncate(8);
        RunReport {
            end,
            cpu: total,
            cpus,
            cycles: Cycles(cycles.max(self.cores.first().map_or(0, |core| core.cpu.cycle))),
            barrier_time: stats.barrier,
            clock_hz: self.config.clock_hz,
            host_time: started.elapsed(),
            cache,
            unmapped_ports: self.platform.ports.lock().unmapped_accesses(),
            smram_blocked: self.platform.mem.smram().blocked(),
            last_post_code: *self.platform.last_post_code.lock(),
        }
    }
}
