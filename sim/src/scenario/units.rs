//! Sizes, clock rates and simulated times written with units, as scenario files give them.
//!
//! Scenario authors think in "512MiB", "2GHz" and "3ms", while the machine counts bytes, hertz
//! and cycles. These parsers do the conversion exactly, in integer arithmetic, so that a
//! scenario means the same cycle on every host:
//! 1. the text is trimmed and split into a decimal number and a unit (a space between them is
//!    allowed: `"2 GHz"`);
//! 2. the number is read as an exact decimal fraction (`"2.5"` is 25 / 10), never as a float;
//! 3. the unit scales it; sizes and rates must come out whole, times are converted to cycles
//!    at a given clock and rounded down to a whole cycle.
//!
//! Every failure is a [`UnitError`] that says what was wrong with the text; the caller adds
//! which key and line it came from.

/// The binary size units [`parse_size`] accepts, with their factor in bytes.
const SIZE_UNITS: &[(&str, u128)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// The rate units [`parse_clock`] accepts, with their factor in hertz.
const CLOCK_UNITS: &[(&str, u128)] = &[
    ("Hz", 1),
    ("kHz", 1_000),
    ("MHz", 1_000_000),
    ("GHz", 1_000_000_000),
];

/// The time units [`parse_time`] accepts, with their factor in nanoseconds.
const TIME_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
];

/// Nanoseconds per second, the denominator of every time-to-cycles conversion.
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The most decimal places a number may have: 10^18 still fits comfortably in a `u128`
/// together with any realistic numerator.
const MAX_DECIMAL_PLACES: u32 = 18;

/// Why a size, rate or time could not be read; the caller names the key and line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The text is empty or only blanks.
    #[error("the value is empty")]
    Empty,
    /// The number has a minus sign: no size, rate or time here can be negative.
    #[error("negative values are not allowed")]
    Negative,
    /// The text does not start with a decimal number (digits, at most one `.`).
    #[error("{text:?} does not start with a number")]
    NotANumber {
        /// The text as given.
        text: String,
    },
    /// A number with no unit where a unit is required.
    #[error("a unit is missing (one of {expected})")]
    MissingUnit {
        /// The units accepted, comma separated.
        expected: String,
    },
    /// A unit that is not one of the accepted ones (units are case-sensitive).
    #[error("unknown unit {unit:?} (expected one of {expected})")]
    UnknownUnit {
        /// The unit as given.
        unit: String,
        /// The units accepted, comma separated.
        expected: String,
    },
    /// The value is not a whole number of the base unit (`"0.3B"`, `"1.5Hz"`).
    #[error("the value is not a whole number of {base}")]
    NotWhole {
        /// The base unit: `bytes` or `Hz`.
        base: &'static str,
    },
    /// More decimal places than can be represented exactly.
    #[error("more than {MAX_DECIMAL_PLACES} decimal places")]
    TooPrecise,
    /// The value, or the value converted to the base unit or to cycles, does not fit in 64
    /// bits.
    #[error("the value is too large")]
    Overflow,
}

/// A simulated duration kept as an exact fraction of nanoseconds, so that converting it to
/// cycles at any clock is exact up to the final rounding down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimTime {
    /// Nanoseconds times `denominator`.
    numerator_ns: u128,
    /// A power of ten: 10 to the number of decimal places written.
    denominator: u128,
}

impl SimTime {
    /// The number of whole cycles of a `clock_hz` clock that fit in this time (rounded down:
    /// an event at "1ns" on a 2.5 GHz clock happens at cycle 2). Fails only if the result
    /// does not fit in 64 bits.
    pub fn cycles_at(self, clock_hz: u64) -> Result<u64, UnitError> {
        let scaled = self
            .numerator_ns
            .checked_mul(u128::from(clock_hz))
            .ok_or(UnitError::Overflow)?;
        let cycles = scaled / (self.denominator * NANOS_PER_SECOND);
        u64::try_from(cycles).map_err(|_| UnitError::Overflow)
    }

    /// The time in whole nanoseconds, rounded down, for reports.
    pub fn whole_nanos(self) -> u128 {
        self.numerator_ns / self.denominator
    }
}

/// Reads a memory size such as `"512MiB"`, `"2 GiB"` or `"1.5GiB"` into bytes.
///
/// Units are binary and case-sensitive: B, KiB, MiB, GiB, TiB. A unit is required, so that a
/// bare `"512"` is not silently read as bytes.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text)?;
    let factor = unit_factor(unit, SIZE_UNITS)?;
    whole(number, factor, "bytes")
}

/// Reads a clock rate such as `"2GHz"`, `"2.4 GHz"` or `"800MHz"` into hertz.
///
/// Units are case-sensitive: Hz, kHz, MHz, GHz. A unit is required.
pub fn parse_clock(text: &str) -> Result<u64, UnitError> {
    let (number, unit) = split_number(text)?;
    let factor = unit_factor(unit, CLOCK_UNITS)?;
    whole(number, factor, "Hz")
}

/// Reads a simulated time such as `"3ms"`, `"1.5 us"`, `"250µs"` or `"2s"`.
///
/// Units are case-sensitive: ns, us (or µs), ms, s. A unit is required: a bare number in a
/// scenario is a cycle count, and is given as a TOML integer instead.
pub fn parse_time(text: &str) -> Result<SimTime, UnitError> {
    let (number, unit) = split_number(text)?;
    let factor = unit_factor(unit, TIME_UNITS)?;
    let numerator_ns = number
        .digits
        .checked_mul(factor)
        .ok_or(UnitError::Overflow)?;
    Ok(SimTime {
        numerator_ns,
        denominator: number.denominator,
    })
}

/// Reads a time and converts it to cycles of a `clock_hz` clock, rounded down.
pub fn time_to_cycles(text: &str, clock_hz: u64) -> Result<u64, UnitError> {
    parse_time(text)?.cycles_at(clock_hz)
}

/// An exact non-negative decimal: `digits / denominator`, the denominator a power of ten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    digits: u128,
    denominator: u128,
}

/// Splits trimmed text into its leading decimal number and the unit after it (blanks between
/// them skipped).
fn split_number(text: &str) -> Result<(Decimal, &str), UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if text.starts_with('-') {
        return Err(UnitError::Negative);
    }
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number = parse_decimal(&text[..end]).ok_or_else(|| UnitError::NotANumber {
        text: text.to_owned(),
    })??;
    Ok((number, text[end..].trim_start()))
}

/// Reads digits with at most one `.` and at least one digit. `None` when the text is not
/// such a number; `Some(Err)` when it is but cannot be held exactly.
fn parse_decimal(text: &str) -> Option<Result<Decimal, UnitError>> {
    let (whole_part, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole_part.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let places = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
    if places > MAX_DECIMAL_PLACES {
        return Some(Err(UnitError::TooPrecise));
    }
    let mut digits: u128 = 0;
    for byte in whole_part.bytes().chain(fraction.bytes()) {
        let digit = u128::from(byte - b'0');
        digits = match digits.checked_mul(10).and_then(|d| d.checked_add(digit)) {
            Some(value) => value,
            None => return Some(Err(UnitError::Overflow)),
        };
    }
    Some(Ok(Decimal {
        digits,
        denominator: 10u128.pow(places),
    }))
}

/// The factor of `unit` in `units`, or an error listing the accepted units.
fn unit_factor(unit: &str, units: &[(&str, u128)]) -> Result<u128, UnitError> {
    let expected = || {
        units
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if unit.is_empty() {
        return Err(UnitError::MissingUnit {
            expected: expected(),
        });
    }
    units
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, factor)| *factor)
        .ok_or_else(|| UnitError::UnknownUnit {
            unit: unit.to_owned(),
            expected: expected(),
        })
}

/// `number × factor` as a whole `u64`, or why not.
fn whole(number: Decimal, factor: u128, base: &'static str) -> Result<u64, UnitError> {
    let scaled = number
        .digits
        .checked_mul(factor)
        .ok_or(UnitError::Overflow)?;
    if scaled % number.denominator != 0 {
        return Err(UnitError::NotWhole { base });
    }
    u64::try_from(scaled / number.denominator).map_err(|_| UnitError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
    }

    #[test]
    fn sizes_that_are_not_whole_bytes_or_lack_a_known_unit_are_refused() {
        assert_eq!(
            parse_size("0.3B"),
            Err(UnitError::NotWhole { base: "bytes" })
        );
        assert!(matches!(
            parse_size("512"),
            Err(UnitError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_size("512MB"),
            Err(UnitError::UnknownUnit { unit, .. }) if unit == "MB"
        ));
        assert!(matches!(
            parse_size("mib"),
            Err(UnitError::NotANumber { .. })
        ));
        assert_eq!(parse_size("-1MiB"), Err(UnitError::Negative));
        assert_eq!(parse_size(""), Err(UnitError::Empty));
        assert_eq!(parse_size("99999999999TiB"), Err(UnitError::Overflow));
    }

    #[test]
    fn clocks_in_hertz() {
        assert_eq!(parse_clock("2GHz"), Ok(2_000_000_000));
        assert_eq!(parse_clock("2.4 GHz"), Ok(2_400_000_000));
        assert_eq!(parse_clock("800MHz"), Ok(800_000_000));
        assert_eq!(parse_clock("1Hz"), Ok(1));
        assert_eq!(
            parse_clock("1.5Hz"),
            Err(UnitError::NotWhole { base: "Hz" })
        );
        assert!(matches!(
            parse_clock("2ghz"),
            Err(UnitError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn times_convert_to_cycles_exactly_and_round_down() {
        assert_eq!(time_to_cycles("3ms", 2_000_000_000), Ok(6_000_000));
        assert_eq!(time_to_cycles("1.5us", 2_000_000_000), Ok(3_000));
        assert_eq!(time_to_cycles("1.5µs", 2_000_000_000), Ok(3_000));
        assert_eq!(time_to_cycles("2s", 2_000_000_000), Ok(4_000_000_000));
        assert_eq!(time_to_cycles("1ns", 2_500_000_000), Ok(2));
        assert_eq!(time_to_cycles("0.1ns", 2_000_000_000), Ok(0));
        assert_eq!(time_to_cycles("0ms", 2_000_000_000), Ok(0));
    }

    #[test]
    fn bad_times_say_why() {
        assert!(matches!(
            parse_time("3"),
            Err(UnitError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_time("3 min"),
            Err(UnitError::UnknownUnit { .. })
        ));
        assert_eq!(parse_time("-3ms"), Err(UnitError::Negative));
        assert!(matches!(
            parse_time("1.2.3ms"),
            Err(UnitError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_time(".ms"),
            Err(UnitError::NotANumber { .. })
        ));
        assert_eq!(
            parse_time("0.0000000000000000001s"),
            Err(UnitError::TooPrecise)
        );
        assert_eq!(
            time_to_cycles("100000000000s", 2_000_000_000),
            Err(UnitError::Overflow)
        );
        assert_eq!(
            parse_time("999999999999999999999999999999999999999s"),
            Err(UnitError::Overflow)
        );
    }

    #[test]
    fn a_number_may_start_or_end_with_its_point() {
        assert_eq!(time_to_cycles(".5us", 2_000_000_000), Ok(1_000));
        assert_eq!(time_to_cycles("5.us", 2_000_000_000), Ok(10_000));
    }
}
