//! Requests a device makes of the simulator.
//!
//! Devices are plain state machines: they never print, stop the run or poke a core
//! themselves. Instead each access may push [`Effect`]s into the vector the bus hands it,
//! and the simulator carries them out after the access, in the order they were pushed.
//! That keeps devices testable through their registers alone and keeps every side effect
//! of a run visible in one place (and in the trace).

use crate::access::CpuIndex;
use crate::mch::SmramLayout;

/// Which CPUs an SMI goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmiTarget {
    /// Every CPU present, the writer included (QEMU `CPU_FOREACH` after SMI broadcast was
    /// negotiated).
    AllCpus,
    /// One CPU: the one whose access raised the SMI (QEMU `current_cpu`).
    Cpu(CpuIndex),
}

/// One thing a device asks the simulator to do as a result of a guest access.
///
/// New kinds of request (SMI delivery, resets, …) are added as new variants. The enum is
/// deliberately not `#[non_exhaustive]`: the simulator matches it exhaustively, so the
/// compiler points at every place that must learn about a new variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Append this byte to the run's console log.
    ///
    /// Exists because firmware reports progress and test results as text through the
    /// debug console port (QEMU `-debugcon`), and the log is what a user reads afterwards.
    ConsoleByte(u8),
    /// End the run with this exit status.
    ///
    /// Exists so a test image can finish and report pass/fail through the debug-exit port,
    /// as it does under QEMU's `isa-debug-exit`. `status` is already the transformed value
    /// `(v << 1) | 1`, never 0, so "the guest asked to exit" can't be confused with a
    /// clean host exit.
    Exit {
        /// The status the run ends with.
        status: u32,
    },
    /// The guest wrote this POST code (port 0x80).
    ///
    /// Exists so the simulator can trace boot progress and report the last code reached
    /// when a run hangs or fails.
    PostCode(u8),
    /// Raise an SMI on these CPUs.
    ///
    /// Exists because an APM control write (port 0xB2) with SMIs enabled asks for one; the
    /// simulator latches it on each target and the CPU takes it at its next instruction
    /// boundary (PLATFORM.md, "When an SMI lands").
    RaiseSmi {
        /// The CPUs that get the SMI.
        target: SmiTarget,
    },
    /// Reset the machine (hard) or send INIT to every CPU (soft).
    ///
    /// Exists so firmware's write to the reset control register (0xCF9) reboots the
    /// machine: a hard reset puts every CPU in its RESET state (SMBASE back to 0x30000) and
    /// every device in its power-on state, the chipset included
    /// ([`crate::Q35Chipset::reset`]); a soft reset is INIT and leaves SMBASE and the
    /// devices alone.
    Reset {
        /// True for a hard (system) reset, false for INIT only.
        hard: bool,
    },
    /// What is SMRAM changed; this is the new layout.
    ///
    /// Exists so the simulator rebuilds its memory views (SMM and non-SMM) the moment
    /// firmware opens, closes, locks or resizes SMRAM through the MCH registers.
    SmramChanged(SmramLayout),
    /// The guest ejected this CPU through the ACPI CPU hot-plug block (control bit 3).
    ///
    /// Exists so the simulator takes the CPU out of the machine — its core stops and may
    /// later be hot-added again — the moment firmware or the OS completes an unplug, as
    /// QEMU unrealizes the CPU in `cpu_hotplug_wr` ([`crate::CpuHotplug`]). Never CPU 0.
    EjectCpu(CpuIndex),
    /// A write to the SMBASE controller was dropped: it came from outside SMM, or after
    /// firmware locked the controller.
    ///
    /// Exists so a checker can flag every attempt to change where a hot-added CPU's SMRAM
    /// save area will be from code that must not (PLATFORM.md: "recorded as a violation
    /// event"); see [`crate::SmbaseController`].
    SmbaseControllerBlocked {
        /// The CPU that made the write.
        cpu: CpuIndex,
        /// The offset into the controller's window (0x0 selector, 0x4 SMBASE, …).
        offset: u16,
        /// The value written, masked to the access width.
        value: u32,
        /// Whether that CPU was in SMM (a blocked SMM write means the lock was set).
        in_smm: bool,
        /// Whether the controller was locked at the time.
        locked: bool,
    },
}
