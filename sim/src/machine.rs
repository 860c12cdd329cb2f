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

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use smmsim_devices::{
    AccessContext, AccessWidth, ApicId, ChipsetProfile, CpuIndex, DeliveryMode, Destination,
    DmaError, DmaMemory, Effect, FwCfg, Ipi, PortBus, Q35Chipset, Q35Config, SmramLayout,
    UnmappedAccesses,
};
use smmsim_traces::{Cycle, Cycles, Event, EventKind};

use crate::checker::{CheckSet, Finding};
use crate::core_thread::{Core, CoreHandle};
use crate::cpu::decode::{CacheStats, DecodeCache};
use crate::cpu::smm::{Profile, SaveStateLayout, SmmState, DEFAULT_SMBASE};
use crate::cpu::state::flags;
use crate::cpu::{Activity, Cpu, CpuStats, Platform, PortWriteOutcome, DEFAULT_IPI_LATENCY_CYCLES};
use crate::image::FirmwareImage;
use crate::memory::{GuestMemory, MemoryError};
use crate::recorder::{EventConsumer, IgnoreEvents, Recorder};
use crate::scheduler::{ExecMode, Pause, ScheduleEnd, Scheduler};
use crate::timing::TimingTable;

/// The most CPUs a machine may have (DESIGN.md: up to 4096 logical CPUs).
pub const MAX_CPUS: u32 = 4096;

/// The default clock: 2.0 GHz (DESIGN.md §2).
pub const DEFAULT_CLOCK_HZ: u64 = 2_000_000_000;
/// The default extended TSEG: 16 MiB, QEMU q35's `extended-tseg-mbytes` default.
pub const DEFAULT_TSEG_MBYTES: u16 = 16;
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
    /// Whether a hot-added CPU comes up in its RESET state (SMBASE 0x30000), as on QEMU;
    /// false keeps the SMBASE of a CPU that was present before and only INITs it, which the
    /// `max-cpus` strategy needs (DESIGN.md §6).
    pub hotadd_reset: bool,
    /// Whether every executed instruction is recorded as an event (`--trace-instructions`).
    pub trace_instructions: bool,
    /// Extended TSEG size in MiB (QEMU `mch.extended-tseg-mbytes`, default 16): it must hold
    /// one 8 KiB SMM tile per possible CPU, so machines with more than about 2,000 CPUs need
    /// more (OVMF's documentation gives the same advice).
    pub tseg_mbytes: u16,
    /// The safety checks run on every run (DESIGN.md §9); all by default.
    pub checks: CheckSet,
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
    /// A fw_cfg file could not be added.
    #[error("cannot add fw_cfg file {name}")]
    FwCfgFile {
        /// The file's name.
        name: String,
        /// Why.
        #[source]
        source: smmsim_devices::FwCfgError,
    },
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
            hotadd_reset: true,
            trace_instructions: false,
            tseg_mbytes: DEFAULT_TSEG_MBYTES,
            checks: CheckSet::all(),
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
    /// Its SMBASE register at the end.
    pub smbase: u64,
    /// Whether it was in SMM at the end.
    pub in_smm: bool,
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
    /// TSEG (base, size) as the chipset decodes it at the end, if enabled.
    pub tseg: Option<(u64, u64)>,
    /// What the safety checker found.
    pub checks: Checks,
}

/// The safety checker's results for one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Checks {
    /// The checks that ran, by name.
    pub active: Vec<&'static str>,
    /// Violations by check name (only checks that fired).
    pub violations: std::collections::BTreeMap<String, u64>,
    /// The first violations, in order.
    pub findings: Vec<Finding>,
}

impl Checks {
    /// The summary lines about the checker: how many checks ran, what they found, and the
    /// first few findings.
    pub fn summary_lines(&self) -> String {
        let mut out = format!(
            "  checks      {} active; {} violations",
            self.active.len(),
            self.total()
        );
        if !self.violations.is_empty() {
            let by_check: Vec<String> = self
                .violations
                .iter()
                .map(|(check, count)| format!("{count} {check}"))
                .collect();
            out.push_str(&format!(" ({})", by_check.join(", ")));
        }
        out.push('\n');
        for finding in self.findings.iter().take(SUMMARY_FINDINGS) {
            out.push_str(&format!(
                "  violation   cycle {} cpu {}: {}: {}\n",
                finding.cycle, finding.cpu, finding.check, finding.detail
            ));
        }
        out
    }

    /// All violations of the run.
    pub fn total(&self) -> u64 {
        self.violations.values().sum()
    }
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
        out.push_str(&self.checks.summary_lines());
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

/// How many findings the summary lists one by one.
const SUMMARY_FINDINGS: usize = 8;

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

/// Something the platform does to the machine at a given cycle: the timed events of a
/// scenario (DESIGN.md §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineAction {
    /// Plug the CPU with this APIC ID in (QEMU `device_add`).
    CpuAdd {
        /// APIC ID = CPU index.
        apic_id: u32,
    },
    /// Ask the guest to unplug the CPU with this APIC ID (QEMU `device_del`): the hot-plug
    /// block gets a remove event; the CPU goes when the guest ejects it.
    CpuRemove {
        /// APIC ID = CPU index.
        apic_id: u32,
    },
    /// Reset the machine: hard = every CPU to RESET and the chipset to power-on; soft = INIT
    /// to every CPU.
    Reset {
        /// Hard or soft.
        hard: bool,
        /// fw_cfg files to replace before the guest boots again (the guest side's plan for
        /// the next boot).
        fw_cfg_files: Vec<(String, Vec<u8>)>,
    },
}

impl MachineAction {
    /// A few words for reports, e.g. `cpu-add 3`.
    pub fn describe(&self) -> String {
        match self {
            MachineAction::CpuAdd { apic_id } => format!("cpu-add {apic_id}"),
            MachineAction::CpuRemove { apic_id } => format!("cpu-remove {apic_id}"),
            MachineAction::Reset { hard: true, .. } => "hard reset".to_owned(),
            MachineAction::Reset { hard: false, .. } => "soft reset".to_owned(),
        }
    }
}

/// A platform action the machine could not carry out when it came due (the guest had not
/// ejected a CPU a scenario adds again, …), for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedAction {
    /// When it was due.
    pub cycle: u64,
    /// What it was.
    pub action: MachineAction,
    /// Why it could not be done.
    pub reason: String,
}

/// The devices and their effects, shared by the cores.
///
/// Port accesses go to the q35 chipset first (its windows are scattered and the PM block
/// moves with PMBASE), then to the port bus of fixed devices.
struct MachinePlatform {
    chipset: Mutex<Q35Chipset>,
    ports: Mutex<PortBus>,
    mem: Arc<GuestMemory>,
    console: Mutex<ConsoleSink>,
    /// The console line being assembled, recorded as an event at its newline.
    console_line: Mutex<Vec<u8>>,
    exit_status: Mutex<Option<u32>>,
    last_post_code: Mutex<Option<u8>>,
    /// Events the platform recorded (`recorder.rs` merges them with the cores').
    events: Arc<Mutex<Vec<Event>>>,
    /// CPUs the guest ejected, for the machine to take out at the next quantum end.
    ejects: Mutex<Vec<CpuIndex>>,
    /// Set when `ejects` has something: the scheduler pauses for the machine.
    attention: AtomicBool,
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

/// The longest console line recorded as one event; longer lines are split.
const MAX_CONSOLE_LINE: usize = 4096;

impl MachinePlatform {
    /// Records a platform event at the cycle and CPU of `ctx`.
    fn record(&self, ctx: &AccessContext, kind: EventKind) {
        self.events
            .lock()
            .push(Event::at(ctx.cycle.0, ctx.cpu.0, kind));
    }

    /// Carries out device effects and says what they ask of the CPUs.
    fn apply(&self, ctx: &AccessContext, effects: &[Effect]) -> PortWriteOutcome {
        let mut outcome = PortWriteOutcome::default();
        for effect in effects {
            match *effect {
                Effect::ConsoleByte(byte) => self.console_byte(ctx, byte),
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
                Effect::EjectCpu(cpu) => {
                    self.record(ctx, EventKind::CpuEjected { apic_id: cpu.0 });
                    self.ejects.lock().push(cpu);
                    self.attention.store(true, Ordering::Release);
                }
                Effect::SmbaseControllerBlocked {
                    offset,
                    value,
                    locked,
                    ..
                } => self.record(
                    ctx,
                    EventKind::ControllerWriteBlocked {
                        offset,
                        value,
                        locked,
                    },
                ),
            }
        }
        outcome
    }

    /// Writes a console byte through and records each finished line.
    fn console_byte(&self, ctx: &AccessContext, byte: u8) {
        let mut console = self.console.lock();
        // A console that cannot be written (closed pipe) must not end the run.
        let _ = console.write_all(&[byte]);
        if byte == b'\n' {
            let _ = console.flush();
        }
        drop(console);
        let mut line = self.console_line.lock();
        if byte != b'\n' {
            line.push(byte);
        }
        if byte == b'\n' || line.len() >= MAX_CONSOLE_LINE {
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            drop(line);
            self.record(ctx, EventKind::ConsoleLine { text });
        }
    }

    /// Makes guest memory decode SMRAM as the chipset now does.
    fn set_smram_view(&self, layout: &SmramLayout) {
        let tseg = layout.tseg.map(|range| (range.base, range.size_bytes));
        self.mem.smram().set(tseg, layout.default_smbase_locked);
        self.mem.smram().set_locked(layout.locked);
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
        self.apply(ctx, &effects);
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
        self.apply(ctx, &effects)
    }
}

/// A simulated machine ready to run.
pub struct Machine {
    config: MachineConfig,
    platform: Arc<MachinePlatform>,
    mem: Arc<GuestMemory>,
    /// By CPU index, `max_cpus` long: `None` for an absent CPU.
    cores: Vec<Option<Box<Core>>>,
    /// CPUs the guest ejected, kept so a re-add without RESET finds their SMBASE.
    parked: Vec<Option<Box<Core>>>,
    /// Scenario actions not yet carried out, in time order.
    actions: VecDeque<(u64, MachineAction)>,
    refused: Vec<RefusedAction>,
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
        chipset_config.ext_tseg_mbytes = config.tseg_mbytes;
        chipset_config.boot_cpus = cpus;
        chipset_config.max_cpus = max_cpus;
        if config.profile == Profile::Qemu {
            chipset_config.profile = ChipsetProfile::Qemu;
        }
        let chipset = Q35Chipset::new(chipset_config, fw_cfg).map_err(MachineError::Chipset)?;
        let platform = Arc::new(MachinePlatform {
            chipset: Mutex::new(chipset),
            ports: Mutex::new(PortBus::with_debug_devices()),
            mem: Arc::clone(&mem),
            console: Mutex::new(console),
            console_line: Mutex::new(Vec::new()),
            exit_status: Mutex::new(None),
            last_post_code: Mutex::new(None),
            events: Arc::new(Mutex::new(Vec::new())),
            ejects: Mutex::new(Vec::new()),
            attention: AtomicBool::new(false),
        });
        let mut machine = Machine {
            config,
            platform,
            mem,
            cores: Vec::new(),
            parked: (0..max_cpus).map(|_| None).collect(),
            actions: VecDeque::new(),
            refused: Vec::new(),
        };
        machine.cores = (0..max_cpus)
            .map(|index| (index < cpus).then(|| machine.build_core(index)))
            .collect();
        Ok(machine)
    }

    /// A core in its RESET state for CPU `index` (APIC ID = index).
    fn build_core(&self, index: u32) -> Box<Core> {
        let shared: Arc<dyn Platform> = self.platform.clone();
        let config = &self.config;
        let mut cpu = Cpu::new(
            CpuIndex(index),
            ApicId(index),
            Arc::clone(&self.mem),
            shared,
            config.timing,
        );
        cpu.set_ipi_latency(config.ipi_latency_cycles);
        cpu.set_trace_instructions(config.trace_instructions);
        cpu.checks = config.checks;
        // xAPIC IDs end at 254 (0xFF is the broadcast ID).
        cpu.x2apic_advertised = config.max_cpus > 255;
        cpu.smm = SmmState::at_reset(config.layout, config.profile);
        let cache = DecodeCache::new(config.timing, config.decode_cache);
        Box::new(Core { cpu, cache })
    }

    /// The boot CPU (for tests and tools that inspect state after a run).
    pub fn cpu(&self) -> &Cpu {
        &self.cores[0]
            .as_ref()
            .expect("CPU 0 can never be removed")
            .cpu
    }

    /// Adds a file to fw_cfg before the run (the guest side's `opt/smmsim/` knobs).
    pub fn add_fw_cfg_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), MachineError> {
        self.platform
            .chipset
            .lock()
            .fw_cfg_mut()
            .add_file(name, bytes)
            .map(|_| ())
            .map_err(|source| MachineError::FwCfgFile {
                name: name.to_owned(),
                source,
            })
    }

    /// Schedules a platform action at `cycle`. Actions must be scheduled in time order.
    pub fn schedule(&mut self, cycle: u64, action: MachineAction) {
        self.actions.push_back((cycle, action));
    }

    /// Runs until the guest stops or the cycle limit is reached.
    pub fn run(&mut self) -> RunReport {
        self.run_observed(&mut IgnoreEvents)
    }

    /// Runs like [`Machine::run`], handing every event of the run, in order, to `consumer`.
    pub fn run_observed(&mut self, consumer: &mut dyn EventConsumer) -> RunReport {
        let started = Instant::now();
        let handles = std::mem::take(&mut self.cores)
            .into_iter()
            .map(|core| core.map(CoreHandle::Idle))
            .collect();
        let mut scheduler = Scheduler::new(
            handles,
            self.config.mode,
            self.config.quantum_cycles,
            self.config.max_cycles,
        );
        let platform = Arc::clone(&self.platform);
        let attention = || platform.attention.load(Ordering::Acquire);
        let mut recorder = Recorder::new(
            Arc::clone(&self.platform.events),
            self.config.checks,
            consumer,
        );
        let schedule_end = loop {
            let limit = self.actions.front().map_or(u64::MAX, |(at, _)| *at);
            match scheduler.run_until(limit, &attention, &mut recorder) {
                Pause::Ended(end) => break end,
                Pause::Limit => self.carry_out_due_actions(&mut scheduler),
                Pause::Attention => self.take_out_ejected(&mut scheduler),
            }
        };
        // Whatever was still scheduled never happened: say so rather than drop it.
        for (at, action) in std::mem::take(&mut self.actions) {
            self.refused.push(RefusedAction {
                cycle: at,
                action,
                reason: "the run ended before it was due".to_owned(),
            });
        }
        let cycles = scheduler.machine_cycles();
        let stats = scheduler.stats;
        self.cores = scheduler.into_cores();
        let bsp_if = self.cores[0]
            .as_ref()
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
        let cycles = cycles.max(self.cores[0].as_ref().map_or(0, |core| core.cpu.cycle));
        let final_map: Vec<(u32, u64)> = self
            .cores
            .iter()
            .flatten()
            .map(|core| (core.cpu.apic_id.0, core.cpu.smm.smbase))
            .collect();
        let duplicates = recorder.checker().final_map(Cycle(cycles), &final_map);
        self.platform.events.lock().extend(duplicates);
        let status = end.exit_status() as u32;
        let run_end = Event::at(cycles, 0, EventKind::RunEnd { status });
        self.platform.events.lock().push(run_end);
        recorder.flush();
        let checker = recorder.checker();
        let checks = Checks {
            active: checker.active().names(),
            violations: checker.counts.clone(),
            findings: checker.findings.clone(),
        };
        let _ = self.platform.console.lock().flush();
        let mut report = self.report(end, Cycles(cycles), stats, started.elapsed());
        report.checks = checks;
        report
    }

    /// Carries out every scheduled action due by now.
    fn carry_out_due_actions(&mut self, scheduler: &mut Scheduler) {
        let now = scheduler.now();
        while self.actions.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, action)) = self.actions.pop_front() else {
                break;
            };
            if let Err(reason) = self.carry_out(scheduler, &action) {
                self.refused.push(RefusedAction {
                    cycle: now,
                    action,
                    reason,
                });
            }
        }
    }

    fn carry_out(
        &mut self,
        scheduler: &mut Scheduler,
        action: &MachineAction,
    ) -> Result<(), String> {
        let now = scheduler.now();
        let ctx = AccessContext {
            cpu: CpuIndex(0),
            apic_id: ApicId(0),
            in_smm: false,
            cycle: Cycle(now),
        };
        match action {
            MachineAction::CpuAdd { apic_id } => {
                let index = *apic_id as usize;
                if index >= self.parked.len() {
                    return Err(format!("APIC ID {apic_id} is not below maxcpus"));
                }
                if scheduler.is_present(index) {
                    return Err(format!("CPU {apic_id} is present"));
                }
                let mut chipset = self.platform.chipset.lock();
                chipset
                    .hot_add_cpu(CpuIndex(*apic_id))
                    .map_err(|error| error.to_string())?;
                let mut core = match self.parked[index].take() {
                    // INIT only: the CPU keeps the SMBASE it had (DESIGN.md §6, max-cpus).
                    Some(mut core) if !self.config.hotadd_reset => {
                        core.cpu.init();
                        core
                    }
                    _ => self.build_core(*apic_id),
                };
                // The SMBASE controller sets the SMBASE before the CPU can take an SMI
                // (PLATFORM.md, "smmsim SMBASE controller").
                if let Some(smbase) = chipset.smbase_controller().smbase_for(ApicId(*apic_id)) {
                    core.cpu.smm.smbase = u64::from(smbase);
                }
                core.cpu.unrelocated_hotadd = core.cpu.smm.smbase == DEFAULT_SMBASE;
                drop(chipset);
                core.cpu.cycle = now;
                scheduler
                    .add_core(index, core)
                    .map_err(|_| format!("CPU {apic_id} is present"))?;
                self.platform.record(
                    &AccessContext {
                        cpu: CpuIndex(*apic_id),
                        ..ctx
                    },
                    EventKind::HotAdd { apic_id: *apic_id },
                );
            }
            MachineAction::CpuRemove { apic_id } => {
                self.platform
                    .chipset
                    .lock()
                    .request_cpu_unplug(CpuIndex(*apic_id))
                    .map_err(|error| error.to_string())?;
                self.platform.record(
                    &AccessContext {
                        cpu: CpuIndex(*apic_id),
                        ..ctx
                    },
                    EventKind::HotRemove { apic_id: *apic_id },
                );
            }
            MachineAction::Reset { hard, fw_cfg_files } => {
                let mut chipset = self.platform.chipset.lock();
                if *hard {
                    chipset.reset(true);
                    self.platform.set_smram_view(&chipset.smram_layout());
                }
                for (name, bytes) in fw_cfg_files {
                    chipset
                        .fw_cfg_mut()
                        .replace_file(name, bytes.clone())
                        .map_err(|error| format!("fw_cfg file {name}: {error}"))?;
                }
                drop(chipset);
                self.platform.record(&ctx, EventKind::Reset { hard: *hard });
                if *hard {
                    scheduler.request_hard_reset();
                } else {
                    scheduler.post_message(
                        Cycle(now),
                        Ipi {
                            source: ApicId(0),
                            mode: DeliveryMode::Init,
                            vector: 0,
                            destination: Destination::Broadcast,
                            level_assert: true,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Takes the CPUs the guest ejected out of the machine, keeping them for a re-add.
    fn take_out_ejected(&mut self, scheduler: &mut Scheduler) {
        self.platform.attention.store(false, Ordering::Release);
        let ejected = std::mem::take(&mut *self.platform.ejects.lock());
        for cpu in ejected {
            let index = cpu.0 as usize;
            // The hot-plug block never ejects CPU 0; the machine would not survive it.
            if index == 0 {
                continue;
            }
            if let Some(core) = scheduler.remove_core(index) {
                if let Some(slot) = self.parked.get_mut(index) {
                    *slot = Some(core);
                }
            }
        }
    }

    /// Actions that could not be carried out when due.
    pub fn refused_actions(&self) -> &[RefusedAction] {
        &self.refused
    }

    fn report(
        &self,
        end: RunEnd,
        cycles: Cycles,
        stats: crate::scheduler::ScheduleStats,
        host_time: Duration,
    ) -> RunReport {
        let mut total = CpuStats::default();
        let mut cache = CacheStats::default();
        let mut cpus = Vec::new();
        for core in self.cores.iter().flatten() {
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
                smbase: core.cpu.smm.smbase,
                in_smm: core.cpu.smm.in_smm,
            });
        }
        total.unsupported_examples.truncate(8);
        let smram = self.platform.chipset.lock().smram_layout();
        RunReport {
            end,
            cpu: total,
            cpus,
            cycles,
            barrier_time: stats.barrier,
            clock_hz: self.config.clock_hz,
            host_time,
            cache,
            unmapped_ports: self.platform.ports.lock().unmapped_accesses(),
            smram_blocked: self.platform.mem.smram().blocked(),
            last_post_code: *self.platform.last_post_code.lock(),
            tseg: smram.tseg.map(|range| (range.base, range.size_bytes)),
            checks: Checks::default(),
        }
    }
}
