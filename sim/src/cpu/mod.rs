//! One simulated x86 core: its state, how it reaches memory and devices, and its run loop.
//!
//! The run loop, once per instruction:
//! 1. stop if the cycle budget is spent or something asked the core to stop (debug exit,
//!    HLT, shutdown);
//! 2. look the instruction at CS:IP up in the decode cache (`decode.rs`);
//! 3. charge its cycles, then call its handler (`exec/`), which reads and writes operands
//!    through the helpers in `operand.rs`;
//! 4. on success move IP to the next instruction (handlers that branch set it themselves);
//!    on a [`Fault`] deliver the exception through the IVT/IDT (`interrupt.rs`), where a
//!    fault during delivery becomes #DF and a fault delivering #DF shuts the core down.
//!
//! A core owns no global state: everything it shares (memory, devices) is behind the two
//! `Arc`s it was built with, so a machine can hold thousands of them.

pub mod alu;
mod apic;
pub mod decode;
mod exec;
pub mod fault;
mod interrupt;
mod operand;
mod record;
mod segment;
pub mod smm;
pub mod state;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use smmsim_devices::{AccessContext, AccessWidth, ApicId, CpuIndex, Ipi, LocalApic, SmiTarget};
use smmsim_traces::{Cycle, Event};

use crate::checker::CheckSet;
use crate::memory::GuestMemory;
use crate::timing::TimingTable;
use decode::{CodeMode, DecodeCache};
pub use fault::Fault;
pub use record::{destination_code, mode_code, DESTINATION_ALL, DESTINATION_ALL_BUT_SELF};
use smm::{Profile, SaveStateLayout, SmmState};
use state::{CpuState, SegReg};

/// What a core needs from the platform around it: port I/O (and, later, MMIO and the APIC
/// bus). Implemented by the machine; tests use a small double.
pub trait Platform: Send + Sync {
    /// An `IN` from `port`; returns the value, all ones for an unclaimed port.
    fn port_read(&self, ctx: &AccessContext, port: u16, width: AccessWidth) -> u32;
    /// An `OUT` to `port`, and what it asks of the CPUs.
    fn port_write(
        &self,
        ctx: &AccessContext,
        port: u16,
        width: AccessWidth,
        value: u32,
    ) -> PortWriteOutcome;
}

/// What a port write asks the CPUs to do beyond the device's own state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortWriteOutcome {
    /// The write ended the run (debug exit).
    pub stop: bool,
    /// The write raised an SMI (APM control port 0xB2).
    pub smi: Option<SmiTarget>,
    /// The write reset the machine: `Some(true)` hard (RESET), `Some(false)` soft (INIT).
    pub reset: Option<bool>,
}

/// Whether a core is running instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// Executing instructions.
    Running,
    /// Stopped in HLT until an interrupt (with IF=1) or a reset wakes it.
    Halted,
    /// After INIT (and at RESET for every CPU but the BSP): waiting for a start-up IPI
    /// (SDM Vol. 3A §10.4, "MP Initialization"; older editions §9.4).
    WaitForSipi,
    /// Triple fault: the core stopped for good (SDM Vol. 3A §7.15, interrupt 8: "the processor
    /// enters shutdown mode"); QEMU resets the machine here unless `-no-reboot`.
    Shutdown,
}

/// Why [`Cpu::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The cycle budget given to `run` is spent.
    Budget,
    /// The core executed HLT.
    Halted,
    /// The core triple-faulted.
    Shutdown,
    /// A device asked to end the run (debug exit).
    PlatformStop,
    /// The core sent an IPI and was asked to stop at every send (see [`Cpu::set_stop_on_ipi`]).
    IpiSent,
    /// The core waits for a start-up IPI.
    WaitForSipi,
    /// A port write asked for a hard reset of the machine.
    HardReset,
}

/// Per-core counters for the run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Instructions retired (including the one that faulted).
    pub instructions: u64,
    /// #UD raised because smmsim does not cover the instruction.
    pub unsupported: u64,
    /// #UD raised for genuinely invalid opcodes (UD2, bad encodings).
    pub invalid: u64,
    /// Exceptions delivered, all vectors.
    pub exceptions: u64,
    /// The first few uncovered instructions, as "address: mnemonic", for the report.
    pub unsupported_examples: Vec<String>,
    /// Cycles spent halted or waiting for SIPI (time the clock jumped over).
    pub halted_cycles: u64,
    /// IPIs this core sent.
    pub ipis_sent: u64,
    /// IPIs delivered to this core.
    pub ipis_received: u64,
    /// Deliveries the core does not act on (reserved for modes smmsim does not model).
    pub ipis_ignored: u64,
    /// Times the core entered SMM.
    pub smm_entries: u64,
    /// RSMs executed.
    pub rsm_count: u64,
}

/// How many uncovered instructions the report names.
const UNSUPPORTED_EXAMPLES: usize = 8;

/// A simulated core.
pub struct Cpu {
    /// Architectural state.
    pub state: CpuState,
    /// The core's slot in the machine.
    pub index: CpuIndex,
    /// The core's APIC ID.
    pub apic_id: ApicId,
    /// The core's cycle counter (also what RDTSC returns).
    pub cycle: u64,
    /// Running, halted or shut down.
    pub activity: Activity,
    /// Counters for the report.
    pub stats: CpuStats,
    /// IA32_APIC_BASE (MSR 0x1B).
    pub apic_base_msr: u64,
    /// What a guest write to IA32_TSC added to the cycle counter as RDTSC sees it.
    pub tsc_offset: u64,
    /// The core's local APIC.
    pub apic: LocalApic,
    /// SMBASE, SMM and the pending SMI/NMI/INIT bookkeeping.
    pub smm: SmmState,
    /// Set when the APIC may hold a fixed interrupt to take; cleared when it has none.
    irq_pending: bool,
    /// IPIs sent and not yet handed to the APIC bus, each with its delivery cycle.
    pub outbox: Vec<(Cycle, Ipi)>,
    /// Cycles from sending an IPI to its delivery.
    ipi_latency_cycles: u64,
    /// Whether sending an IPI ends the current `run` call.
    stop_on_ipi: bool,
    /// The base of the xAPIC MMIO page this core decodes, or `u64::MAX` when the APIC is
    /// disabled or in x2APIC mode.
    apic_mmio_base: u64,
    mem: Arc<GuestMemory>,
    platform: Arc<dyn Platform>,
    timing: TimingTable,
    /// IP of the instruction after the current one; branches overwrite it.
    next_rip: u64,
    /// Set when the run loop must stop after the current instruction.
    stop_requested: Option<StopReason>,
    /// The cycle the current `run` call stops at; zero once a stop was requested.
    run_until: u64,
    /// Events recorded since the scheduler last took them (`record.rs`).
    events: Vec<Event>,
    /// Whether every executed instruction is recorded too.
    trace_instructions: bool,
    /// The safety checks this core runs (`checker.rs`).
    pub checks: CheckSet,
    /// Set on a CPU hot-added with the reset SMBASE, until its SMBASE changes: running
    /// non-SMM code before then is a violation (`unrelocated-cpu-runs`).
    pub unrelocated_hotadd: bool,
    /// Whether this SMM stay already reported a fetch outside SMRAM (one finding per stay).
    smm_fetch_reported: bool,
    /// Whether CPUID leaf 1 reports x2APIC (machines with APIC IDs above 254).
    pub x2apic_advertised: bool,
}

/// Cycles from an IPI's send to its delivery: 1,000 cycles, 0.5 µs at 2 GHz — the order of
/// the IPI latencies reported for recent Intel server parts (a few hundred ns to about 1 µs).
pub const DEFAULT_IPI_LATENCY_CYCLES: u64 = 1_000;
/// The address bits of IA32_APIC_BASE.
pub const APIC_BASE_ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// IA32_APIC_BASE after RESET: base 0xFEE00000, globally enabled; bit 8 (BSP) set on CPU 0
/// (SDM Vol. 3A §12.4.4, "Local APIC Status and Location").
pub const APIC_BASE_DEFAULT: u64 = 0xFEE0_0000 | (1 << 11);
/// The BSP flag of IA32_APIC_BASE.
pub const APIC_BASE_BSP: u64 = 1 << 8;

impl Cpu {
    /// A core in its RESET state.
    pub fn new(
        index: CpuIndex,
        apic_id: ApicId,
        mem: Arc<GuestMemory>,
        platform: Arc<dyn Platform>,
        timing: TimingTable,
    ) -> Cpu {
        let bsp = if index.0 == 0 { APIC_BASE_BSP } else { 0 };
        // Every CPU but the BSP waits for SIPI after RESET (SDM Vol. 3A §10.4.1).
        let activity = if index.0 == 0 {
            Activity::Running
        } else {
            Activity::WaitForSipi
        };
        Cpu {
            state: CpuState::at_reset(),
            index,
            apic_id,
            cycle: 0,
            activity,
            stats: CpuStats::default(),
            apic_base_msr: APIC_BASE_DEFAULT | bsp,
            tsc_offset: 0,
            apic: LocalApic::new(apic_id),
            smm: SmmState::at_reset(SaveStateLayout::default(), Profile::default()),
            irq_pending: false,
            outbox: Vec::new(),
            ipi_latency_cycles: DEFAULT_IPI_LATENCY_CYCLES,
            stop_on_ipi: false,
            apic_mmio_base: APIC_BASE_DEFAULT & APIC_BASE_ADDRESS_MASK,
            mem,
            platform,
            timing,
            next_rip: 0,
            stop_requested: None,
            run_until: 0,
            events: Vec::new(),
            trace_instructions: false,
            checks: CheckSet::default(),
            unrelocated_hotadd: false,
            smm_fetch_reported: false,
            x2apic_advertised: false,
        }
    }

    /// Guest memory as this core sees it.
    pub fn memory(&self) -> &GuestMemory {
        &self.mem
    }

    /// The cycle counter as a time stamp.
    pub fn now(&self) -> Cycle {
        Cycle(self.cycle)
    }

    /// The time-stamp counter: cycles plus the guest's offset.
    pub fn tsc(&self) -> u64 {
        self.cycle.wrapping_add(self.tsc_offset)
    }

    /// The code size of the current CS.
    #[inline(always)]
    pub fn code_mode(&self) -> CodeMode {
        if self.state.seg(SegReg::Cs).is_32bit() {
            CodeMode::Bits32
        } else {
            CodeMode::Bits16
        }
    }

    /// Runs instructions until the cycle counter reaches `until`, or the core stops.
    pub fn run(&mut self, cache: &mut DecodeCache, until: Cycle) -> StopReason {
        // Two copies of the loop, so the one without instruction tracing has no test for it.
        if self.trace_instructions {
            self.run_loop::<true>(cache, until)
        } else {
            self.run_loop::<false>(cache, until)
        }
    }

    #[inline(always)]
    fn run_loop<const TRACE_INSTRUCTIONS: bool>(
        &mut self,
        cache: &mut DecodeCache,
        until: Cycle,
    ) -> StopReason {
        match self.activity {
            Activity::Running => {}
            Activity::Halted => return StopReason::Halted,
            Activity::WaitForSipi => return StopReason::WaitForSipi,
            Activity::Shutdown => return StopReason::Shutdown,
        }
        let mem = Arc::clone(&self.mem);
        // A stop request lowers `run_until` to zero, so the loop tests one condition.
        self.run_until = until.0;
        // Counted locally and committed on the way out: the handler call would otherwise force
        // a store per instruction.
        let mut retired = 0;
        while self.cycle < self.run_until {
            if self.smm.smi_pending || self.smm.nmi_pending {
                self.take_smm_events();
                if self.run_until == 0 {
                    break;
                }
            }
            if self.irq_pending && self.state.rflags & state::flags::IF != 0 && !self.smm.in_smm {
                self.take_interrupt();
                if self.run_until == 0 {
                    break;
                }
            }
            // CS can change at the end of any block (far transfers, interrupts), so its base and
            // code size are read afresh per block.
            let mode = self.code_mode();
            let ip_mask = mode.ip_mask();
            let ip = self.state.rip & ip_mask;
            let phys = self.state.seg(SegReg::Cs).base.wrapping_add(ip) & 0xFFFF_FFFF;
            if self.smm.in_smm {
                if !self.smm_fetch_reported && mem.smram().is_locked() {
                    self.check_smm_fetch(phys);
                }
            } else if mem.smram().covers(phys, 1) {
                // A non-SMM fetch from closed SMRAM reads all ones; FF FF is an invalid
                // opcode, so the core takes #UD there, as it would on the chipset.
                self.note_smram_blocked(phys, false);
                self.next_rip = self.state.rip;
                self.stats.invalid += 1;
                self.deliver_fault(Fault::InvalidOpcode);
                continue;
            }
            let block = cache.lookup(&mem, phys, mode);
            for decoded in &block.insns {
                if TRACE_INSTRUCTIONS {
                    let cs = self.state.seg(SegReg::Cs).selector;
                    self.record(smmsim_traces::EventKind::Instruction {
                        rip: self.state.rip,
                        cs,
                    });
                }
                self.next_rip = (self.state.rip + u64::from(decoded.len)) & ip_mask;
                self.cycle += u64::from(decoded.cost);
                retired += 1;
                if let Err(fault) = (decoded.handler)(self, decoded) {
                    self.deliver_fault(fault);
                    break;
                }
                self.state.rip = self.next_rip;
                if self.cycle >= self.run_until
                    || (decoded.may_write && mem.code_generation(phys) != block.generation)
                {
                    break;
                }
            }
        }
        self.stats.instructions += retired;
        self.stop_requested.take().unwrap_or(StopReason::Budget)
    }

    /// The context a device sees for an access by this core.
    pub fn access_context(&self) -> AccessContext {
        AccessContext {
            cpu: self.index,
            apic_id: self.apic_id,
            in_smm: self.smm.in_smm,
            cycle: self.now(),
        }
    }

    /// Records an instruction smmsim does not cover, for the report.
    fn note_unsupported(&mut self, description: String) {
        self.stats.unsupported += 1;
        if self.stats.unsupported_examples.len() < UNSUPPORTED_EXAMPLES {
            self.stats.unsupported_examples.push(description);
        }
    }

    /// Stops the run loop after the current instruction.
    fn request_stop(&mut self, reason: StopReason) {
        self.stop_requested = Some(reason);
        self.run_until = 0;
    }

    /// Charges extra cycles beyond the instruction's base cost.
    #[inline(always)]
    fn charge(&mut self, cycles: u32) {
        self.cycle += u64::from(cycles);
    }
}
