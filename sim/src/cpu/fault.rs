//! Guest faults: architectural exceptions as values.
//!
//! An instruction handler that cannot complete returns a [`Fault`]; the core then delivers
//! it through the IVT or IDT (`interrupt.rs`) exactly as hardware would. Faults are never host
//! errors: a guest that divides by zero gets #DE, not a failed run.

/// An exception raised by an instruction (SDM Vol. 3A §7.15, "Exception and Interrupt
/// Reference"; older editions §6.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// #DE, vector 0: divide by zero or quotient too large.
    DivideError,
    /// #BP, vector 3, raised by INT3 (a trap: the saved IP is the next instruction).
    Breakpoint,
    /// #OF, vector 4, raised by INTO when OF is set (a trap).
    Overflow,
    /// #UD, vector 6: an opcode that is invalid, or that smmsim does not cover.
    InvalidOpcode,
    /// #NM, vector 7: an x87/SSE instruction with CR0.EM or CR0.TS set.
    DeviceNotAvailable,
    /// #DF, vector 8: a fault while delivering a fault. Error code 0.
    DoubleFault,
    /// #TS, vector 10, with the error code.
    InvalidTss(u16),
    /// #NP, vector 11: a segment that is not present, with the selector error code.
    SegmentNotPresent(u16),
    /// #SS, vector 12: a stack-segment fault, with the error code.
    StackFault(u16),
    /// #GP, vector 13: general protection, with the error code.
    GeneralProtection(u16),
}

impl Fault {
    /// #GP(0), the most common fault.
    pub const GP0: Fault = Fault::GeneralProtection(0);

    /// The interrupt vector the fault is delivered through.
    pub fn vector(self) -> u8 {
        match self {
            Fault::DivideError => 0,
            Fault::Breakpoint => 3,
            Fault::Overflow => 4,
            Fault::InvalidOpcode => 6,
            Fault::DeviceNotAvailable => 7,
            Fault::DoubleFault => 8,
            Fault::InvalidTss(_) => 10,
            Fault::SegmentNotPresent(_) => 11,
            Fault::StackFault(_) => 12,
            Fault::GeneralProtection(_) => 13,
        }
    }

    /// The error code pushed in protected mode, for the vectors that have one.
    pub fn error_code(self) -> Option<u16> {
        match self {
            Fault::DoubleFault => Some(0),
            Fault::InvalidTss(code)
            | Fault::SegmentNotPresent(code)
            | Fault::StackFault(code)
            | Fault::GeneralProtection(code) => Some(code),
            _ => None,
        }
    }

    /// True for traps, whose saved instruction pointer is the next instruction rather than
    /// the faulting one.
    pub fn is_trap(self) -> bool {
        matches!(self, Fault::Breakpoint | Fault::Overflow)
    }

    /// True for the "contributory" exceptions of SDM Vol. 3A Table 7-4: two of them in a row
    /// make a double fault.
    pub fn is_contributory(self) -> bool {
        matches!(
            self,
            Fault::DivideError
                | Fault::InvalidTss(_)
                | Fault::SegmentNotPresent(_)
                | Fault::StackFault(_)
                | Fault::GeneralProtection(_)
        )
    }

    /// Short mnemonic for reports, e.g. `#GP(0x0010)`.
    pub fn mnemonic(self) -> String {
        let name = match self {
            Fault::DivideError => "#DE",
            Fault::Breakpoint => "#BP",
            Fault::Overflow => "#OF",
            Fault::InvalidOpcode => "#UD",
            Fault::DeviceNotAvailable => "#NM",
            Fault::DoubleFault => "#DF",
            Fault::InvalidTss(_) => "#TS",
            Fault::SegmentNotPresent(_) => "#NP",
            Fault::StackFault(_) => "#SS",
            Fault::GeneralProtection(_) => "#GP",
        };
        match self.error_code() {
            Some(code) => format!("{name}({code:#06x})"),
            None => name.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_and_error_codes_follow_the_sdm() {
        assert_eq!(Fault::DivideError.vector(), 0);
        assert_eq!(Fault::InvalidOpcode.error_code(), None);
        assert_eq!(Fault::GeneralProtection(0x18).vector(), 13);
        assert_eq!(Fault::GeneralProtection(0x18).error_code(), Some(0x18));
        assert_eq!(Fault::DoubleFault.error_code(), Some(0));
        assert_eq!(Fault::SegmentNotPresent(0x20).mnemonic(), "#NP(0x0020)");
        assert!(Fault::Breakpoint.is_trap() && !Fault::InvalidOpcode.is_trap());
    }
}
