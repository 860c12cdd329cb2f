//! Simulated time: a point on a core's clock ([`Cycle`]) and a length of time ([`Cycles`]).
//!
//! Two types instead of one `u64` so that adding two points, or comparing a point with a
//! length, does not compile. All arithmetic is explicit about overflow: a guest that runs
//! long enough to overflow a `u64` of cycles (292 years at 2 GHz) saturates instead of
//! wrapping, which keeps ordering of events intact.

use std::fmt;

/// A point in simulated time, counted in core clock cycles since machine power-on.
///
/// It derives bincode's `Encode`/`Decode` because every trace event carries one.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    bincode::Encode,
    bincode::Decode,
)]
pub struct Cycle(pub u64);

/// A length of simulated time in core clock cycles.
///
/// Encodable with bincode so that later trace events (and reports) can carry durations.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    bincode::Encode,
    bincode::Decode,
)]
pub struct Cycles(pub u64);

impl Cycle {
    /// Power-on.
    pub const ZERO: Cycle = Cycle(0);

    /// The point `length` after this one, saturating at the end of time.
    pub fn saturating_add(self, length: Cycles) -> Cycle {
        Cycle(self.0.saturating_add(length.0))
    }

    /// The point `length` after this one, or `None` on overflow.
    pub fn checked_add(self, length: Cycles) -> Option<Cycle> {
        self.0.checked_add(length.0).map(Cycle)
    }

    /// The time from `earlier` to this point, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Cycle) -> Cycles {
        Cycles(self.0.saturating_sub(earlier.0))
    }
}

impl Cycles {
    /// No time at all.
    pub const ZERO: Cycles = Cycles(0);

    /// This length converted to simulated nanoseconds at `clock_hz`.
    ///
    /// Reports use this so that the same cycle count reads the same at any clock rate the
    /// scenario chose. A zero clock rate gives zero rather than dividing by zero.
    pub fn to_nanos(self, clock_hz: u64) -> u128 {
        if clock_hz == 0 {
            return 0;
        }
        u128::from(self.0) * 1_000_000_000 / u128::from(clock_hz)
    }

    /// The sum of two lengths, saturating.
    pub fn saturating_add(self, other: Cycles) -> Cycles {
        Cycles(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cycle {}", self.0)
    }
}

impl fmt::Display for Cycles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cycles", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_lengths_combine_without_wrapping() {
        assert_eq!(Cycle(10).saturating_add(Cycles(5)), Cycle(15));
        assert_eq!(Cycle(u64::MAX).saturating_add(Cycles(1)), Cycle(u64::MAX));
        assert_eq!(Cycle(u64::MAX).checked_add(Cycles(1)), None);
        assert_eq!(Cycle(15).saturating_since(Cycle(10)), Cycles(5));
        assert_eq!(Cycle(10).saturating_since(Cycle(15)), Cycles::ZERO);
    }

    #[test]
    fn cycles_convert_to_nanoseconds_at_the_clock_rate() {
        assert_eq!(Cycles(2_000).to_nanos(2_000_000_000), 1_000);
        assert_eq!(Cycles(3).to_nanos(1_000_000_000), 3);
        assert_eq!(Cycles(7).to_nanos(0), 0);
    }
}
