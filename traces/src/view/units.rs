//! Turning cycle counts into times and rates a person reads at a glance.
//!
//! Traces count cycles; people think in nanoseconds and milliseconds. Every view formats
//! through these functions so the same cycle count reads the same everywhere. Arithmetic is
//! integer picoseconds, so no rounding drifts with trace length.

use crate::time::Cycles;

/// Picoseconds in `length` at `clock_hz`, or `None` when the clock rate is unknown (zero).
pub(crate) fn picos(length: Cycles, clock_hz: u64) -> Option<u128> {
    (clock_hz != 0).then(|| u128::from(length.0) * 1_000_000_000_000 / u128::from(clock_hz))
}

/// `length` as a time with three decimals in the largest unit (ns, µs, ms, s) that keeps
/// the integer part non-zero, e.g. `"1.500 µs"`; `"-"` when the clock rate is unknown.
///
/// Digits are truncated, not rounded, so a value never reads as the next unit up.
pub fn format_duration(length: Cycles, clock_hz: u64) -> String {
    let Some(ps) = picos(length, clock_hz) else {
        return "-".to_string();
    };
    let (divisor, unit) = match ps {
        0..=999_999 => (1_000, "ns"),
        1_000_000..=999_999_999 => (1_000_000, "µs"),
        1_000_000_000..=999_999_999_999 => (1_000_000_000, "ms"),
        _ => (1_000_000_000_000, "s"),
    };
    let whole = ps / divisor;
    let thousandths = ps % divisor / (divisor / 1_000);
    format!("{whole}.{thousandths:03} {unit}")
}

/// A clock rate as GHz or MHz with three decimals, e.g. `"2.000 GHz"`.
pub fn format_clock(clock_hz: u64) -> String {
    if clock_hz >= 1_000_000_000 {
        format!(
            "{}.{:03} GHz",
            clock_hz / 1_000_000_000,
            clock_hz % 1_000_000_000 / 1_000_000
        )
    } else {
        format!(
            "{}.{:03} MHz",
            clock_hz / 1_000_000,
            clock_hz % 1_000_000 / 1_000
        )
    }
}

/// Nanoseconds in `length` at `clock_hz`, saturating, or 0 when the clock is unknown; for
/// machine-readable reports.
pub(crate) fn nanos(length: Cycles, clock_hz: u64) -> u64 {
    u64::try_from(length.to_nanos(clock_hz)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_the_unit_and_truncate() {
        let ghz2 = 2_000_000_000;
        assert_eq!(format_duration(Cycles(0), ghz2), "0.000 ns");
        assert_eq!(format_duration(Cycles(1), ghz2), "0.500 ns");
        assert_eq!(format_duration(Cycles(1_999), ghz2), "999.500 ns");
        assert_eq!(format_duration(Cycles(2_000), ghz2), "1.000 µs");
        assert_eq!(format_duration(Cycles(3_999_999), ghz2), "1.999 ms");
        assert_eq!(format_duration(Cycles(5_000_000_000), ghz2), "2.500 s");
        assert_eq!(
            format_duration(Cycles(u64::MAX), 1),
            "18446744073709551615.000 s"
        );
        assert_eq!(format_duration(Cycles(7), 0), "-");
    }

    #[test]
    fn clocks_read_in_ghz_or_mhz() {
        assert_eq!(format_clock(2_000_000_000), "2.000 GHz");
        assert_eq!(format_clock(3_600_000_000), "3.600 GHz");
        assert_eq!(format_clock(400_000_000), "400.000 MHz");
        assert_eq!(format_clock(0), "0.000 MHz");
    }
}
