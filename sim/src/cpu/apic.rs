//! The core's side of its local APIC: the xAPIC MMIO page and x2APIC MSRs, IPIs sent into the
//! outbox, messages arriving from the APIC bus (INIT, SIPI, fixed interrupts), and taking a
//! fixed interrupt through the IVT/IDT.
//!
//! The flow of an IPI:
//! 1. the guest writes the ICR (MMIO offset 0x300 or MSR 0x830); the APIC decodes it;
//! 2. the core stamps it with its cycle plus the IPI latency and puts it in its outbox;
//! 3. the machine takes outboxes at quantum ends and hands each message to its targets;
//! 4. the target applies it at an instruction boundary at or after the delivery cycle
//!    ([`Cpu::receive`]): INIT resets it to wait-for-SIPI (SMBASE kept), SIPI starts it at
//!    vector × 4096, a fixed interrupt goes to the IRR and is taken when IF = 1.

use smmsim_devices::{DeliveryMode, Destination, Ipi, SmiTarget};
use smmsim_traces::{Cycle, EventKind, SmiSource};

use super::record::{destination_code, mode_code};
use super::state::{flags, SegReg, Segment};
use super::{Activity, Cpu, Fault, StopReason, APIC_BASE_ADDRESS_MASK};

/// The vector carried by the SMI and INIT messages the platform sends on a CPU's behalf (an
/// APM-port SMI broadcast, a soft reset). Hardware ignores the vector of these delivery modes
/// (SDM Vol. 3A §11.6.1), so smmsim uses it to tell them apart from IPIs a guest wrote into
/// its ICR, and traces show where an SMI came from.
pub const PLATFORM_MESSAGE_VECTOR: u8 = 0xB2;

/// Size of the xAPIC MMIO page.
const APIC_MMIO_BYTES: u64 = 0x1000;
/// IA32_APIC_BASE bit 10: x2APIC mode.
const APIC_BASE_X2APIC: u64 = 1 << 10;
/// IA32_APIC_BASE bit 11: the APIC is globally enabled.
const APIC_BASE_ENABLE: u64 = 1 << 11;
/// The x2APIC MSR range (SDM Vol. 3A §12.12.1).
pub(super) const X2APIC_MSRS: std::ops::RangeInclusive<u32> = 0x800..=0x8FF;

impl Cpu {
    /// True when `linear` falls in this core's xAPIC MMIO page.
    #[inline(always)]
    pub(super) fn is_apic_mmio(&self, linear: u64) -> bool {
        linear.wrapping_sub(self.apic_mmio_base) < APIC_MMIO_BYTES
    }

    /// A read of the xAPIC page (any width; the APIC's registers are 32-bit and 16-byte
    /// aligned, so a read returns the bytes of the register it falls in).
    pub(super) fn apic_mmio_read(&mut self, linear: u64, size: u8) -> u64 {
        self.charge(self.timing.mmio);
        let offset = (linear - self.apic_mmio_base) as u32;
        let register = self.apic.mmio_read(offset & !3);
        u64::from(register >> (8 * (offset & 3))) & super::alu::mask(size.min(4))
    }

    /// A write to the xAPIC page; a write to the ICR sends an IPI.
    pub(super) fn apic_mmio_write(&mut self, linear: u64, value: u64) {
        self.charge(self.timing.mmio);
        let offset = (linear - self.apic_mmio_base) as u32;
        if let Some(ipi) = self.apic.mmio_write(offset & !3, value as u32) {
            self.send_ipi(ipi);
        }
    }

    /// RDMSR of an x2APIC register; `Err` is #GP(0) (e.g. not in x2APIC mode).
    pub(super) fn x2apic_msr_read(&mut self, msr: u32) -> Result<u64, Fault> {
        self.apic.msr_read(msr).ok_or(Fault::GP0)
    }

    /// WRMSR of an x2APIC register; a write to the ICR sends an IPI.
    pub(super) fn x2apic_msr_write(&mut self, msr: u32, value: u64) -> Result<(), Fault> {
        match self.apic.msr_write(msr, value) {
            Ok(Some(ipi)) => {
                self.send_ipi(ipi);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(()) => Err(Fault::GP0),
        }
    }

    /// Applies a new IA32_APIC_BASE value to the APIC's mode and MMIO window.
    pub(super) fn apic_base_changed(&mut self) {
        let msr = self.apic_base_msr;
        let enabled = msr & APIC_BASE_ENABLE != 0;
        let x2apic = enabled && msr & APIC_BASE_X2APIC != 0;
        self.apic.set_x2apic(x2apic);
        self.apic_mmio_base = if enabled && !x2apic {
            msr & APIC_BASE_ADDRESS_MASK
        } else {
            u64::MAX
        };
    }

    fn send_ipi(&mut self, ipi: Ipi) {
        self.stats.ipis_sent += 1;
        self.record(EventKind::IpiSent {
            mode: mode_code(ipi.mode),
            destination: destination_code(ipi.destination, ipi.source),
        });
        let delivery = Cycle(self.cycle.saturating_add(self.ipi_latency_cycles));
        self.outbox.push((delivery, ipi));
        if self.stop_on_ipi {
            self.request_stop(StopReason::IpiSent);
        }
    }

    /// Carries out an `OUT`: the device access, then what it asks of the CPUs. An SMI for
    /// this core is taken at the next instruction boundary; SMIs and INITs for others travel
    /// the APIC bus like IPIs, due now. Returns true when the run must stop.
    pub(super) fn port_out(
        &mut self,
        port: u16,
        width: smmsim_devices::AccessWidth,
        value: u32,
    ) -> bool {
        let ctx = self.access_context();
        let outcome = self.platform.port_write(&ctx, port, width, value);
        let now = Cycle(self.cycle);
        let source = self.apic_id;
        let to_others = move |mode: DeliveryMode, destination: Destination| Ipi {
            source,
            mode,
            vector: PLATFORM_MESSAGE_VECTOR,
            destination,
            level_assert: true,
        };
        match outcome.smi {
            Some(SmiTarget::AllCpus) => {
                self.outbox.push((
                    now,
                    to_others(DeliveryMode::Smi, Destination::AllExcludingSelf),
                ));
                self.raise_smi(SmiSource::ApmPort);
            }
            Some(SmiTarget::Cpu(index)) if index == self.index => {
                self.raise_smi(SmiSource::ApmPort)
            }
            Some(SmiTarget::Cpu(index)) => self.outbox.push((
                now,
                to_others(
                    DeliveryMode::Smi,
                    Destination::Physical(smmsim_devices::ApicId(index.0)),
                ),
            )),
            None => {}
        }
        // A message for other cores must reach them on time, as an IPI does: a lone core
        // running in a long batch stops here so the machine can deliver it.
        if self.stop_on_ipi && !self.outbox.is_empty() {
            self.request_stop(StopReason::IpiSent);
        }
        match outcome.reset {
            Some(true) => {
                self.request_stop(StopReason::HardReset);
                return true;
            }
            Some(false) => {
                self.outbox.push((
                    now,
                    to_others(DeliveryMode::Init, Destination::AllExcludingSelf),
                ));
                if self.init_allowed() {
                    self.init();
                }
                self.request_stop(StopReason::WaitForSipi);
            }
            None => {}
        }
        if outcome.stop {
            self.request_stop(StopReason::PlatformStop);
        }
        outcome.stop
    }

    /// RESET: everything back to power-on values, SMBASE to 0x30000; the BSP runs from the
    /// reset vector and the others wait for SIPI. Memory is kept, as on a warm reset.
    pub fn hard_reset(&mut self) {
        self.record(EventKind::Reset { hard: true });
        self.state = super::state::CpuState::at_reset();
        self.smm = super::smm::SmmState::at_reset(self.smm.layout, self.smm.profile);
        self.apic.reset();
        let bsp = self.apic_base_msr & super::APIC_BASE_BSP;
        self.apic_base_msr = super::APIC_BASE_DEFAULT | bsp;
        self.apic_base_changed();
        self.irq_pending = false;
        self.outbox.clear();
        self.activity = if bsp != 0 {
            Activity::Running
        } else {
            Activity::WaitForSipi
        };
    }

    /// Makes every IPI send end the current `run` call, so a machine running one core in long
    /// batches can deliver the IPI on time.
    pub fn set_stop_on_ipi(&mut self, stop: bool) {
        self.stop_on_ipi = stop;
    }

    /// Sets the send-to-delivery latency of this core's IPIs.
    pub fn set_ipi_latency(&mut self, cycles: u64) {
        self.ipi_latency_cycles = cycles;
    }

    /// Acts on an APIC-bus message delivered at `at`. A core that was halted or waiting for
    /// SIPI has its clock jump to `at` (the skipped time counts as halted).
    pub fn receive(&mut self, at: Cycle, ipi: &Ipi) {
        if self.activity != Activity::Running && self.cycle < at.0 {
            self.stats.halted_cycles += at.0 - self.cycle;
            self.cycle = at.0;
        }
        self.stats.ipis_received += 1;
        self.record(EventKind::IpiDelivered {
            mode: mode_code(ipi.mode),
            source: ipi.source.0,
        });
        match ipi.mode {
            DeliveryMode::Init if ipi.level_assert => {
                if self.init_allowed() {
                    self.record(EventKind::Init);
                    self.init();
                }
            }
            // INIT level de-assert is a no-op on processors since the Pentium 4 (PLATFORM.md).
            DeliveryMode::Init => {}
            DeliveryMode::Startup => self.start_up(ipi.vector),
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => {
                self.apic.accept_fixed(ipi.vector);
                self.irq_pending = true;
                if self.activity == Activity::Halted && self.state.rflags & flags::IF != 0 {
                    self.activity = Activity::Running;
                    self.record(EventKind::Wake);
                }
            }
            DeliveryMode::Smi if ipi.vector == PLATFORM_MESSAGE_VECTOR => {
                self.raise_smi(SmiSource::ApmPort)
            }
            DeliveryMode::Smi => self.raise_smi(SmiSource::Ipi),
            DeliveryMode::Nmi => {
                self.smm.nmi_pending = true;
                if self.activity == Activity::Halted {
                    self.activity = Activity::Running;
                    self.record(EventKind::Wake);
                }
            }
        }
    }

    /// INIT: architectural state back to its INIT values, the core waits for SIPI. The
    /// APIC keeps its ID and base, and SMBASE is kept (SDM Vol. 3A Table 10-1; SDM Vol. 3C
    /// §32.5.1: INIT does not change SMBASE).
    pub fn init(&mut self) {
        self.state = self.state.at_init();
        self.apic.reset();
        self.irq_pending = false;
        if self.activity != Activity::Shutdown {
            self.activity = Activity::WaitForSipi;
        }
    }

    /// SIPI: a core waiting for it starts in real mode at vector:0000 (CS base vector × 4096);
    /// any other core ignores it (SDM Vol. 3A §10.4.4.1).
    fn start_up(&mut self, vector: u8) {
        if self.activity != Activity::WaitForSipi {
            return;
        }
        self.record(EventKind::Sipi { vector });
        let selector = u16::from(vector) << 8;
        self.state.segs[SegReg::Cs as usize] = Segment::real_mode(selector);
        self.state.rip = 0;
        self.activity = Activity::Running;
        // With an SMI pending the first thing the CPU does is enter SMM (kvm, sdm).
        if self.unrelocated_hotadd && !self.smm.smi_pending {
            self.check_leaving_for_guest_code("SIPI");
        }
    }

    /// Takes the highest-priority pending fixed interrupt through the IVT/IDT.
    pub(super) fn take_interrupt(&mut self) {
        let Some(vector) = self.apic.acknowledge() else {
            self.irq_pending = false;
            return;
        };
        self.irq_pending = self.apic.pending_vector().is_some();
        self.next_rip = self.state.rip;
        self.external_interrupt(vector);
    }
}
