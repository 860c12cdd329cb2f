//! Requests a device makes of the simulator.
//!
//! Devices are plain state machines: they never print, stop the run or poke a core
//! themselves. Instead each access may push [`Effect`]s into the vector the bus hands it,
//! and the simulator carries them out after the access, in the order they were pushed.
//! That keeps devices testable through their registers alone and keeps every side effect
//! of a run visible in one place (and in the trace).

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
}
