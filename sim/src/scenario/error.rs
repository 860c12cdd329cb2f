//! What can be wrong with a scenario file, and where.
//!
//! A scenario is checked completely before a run starts, so every mistake is reported as
//! `FILE:LINE: what is wrong, with the value` (or `FILE:LINE:COLUMN:` for TOML syntax and
//! type errors, where the parser knows the column). Messages are complete on their own: a
//! batch writes them into one JSON line per scenario, where no cause chain is printed.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::units::UnitError;
use super::UnknownName;
use crate::machine::MAX_CPUS;

/// Why a scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read scenario file {}: {error}", .path.display())]
    Unreadable {
        /// The file named.
        path: PathBuf,
        /// What the host said; part of the message so that it stands alone.
        error: std::io::Error,
    },
    /// The file was read but is not a valid scenario.
    #[error("{}{}: {problem}", .origin.display(), location_suffix(.location))]
    Invalid {
        /// The file, as named by the caller.
        origin: PathBuf,
        /// Where in the file, when known.
        location: Option<Location>,
        /// What is wrong (boxed: a scenario error is rare and should not make every `Result`
        /// large).
        problem: Box<Problem>,
    },
}

impl ScenarioError {
    /// The problem, for callers (and tests) that match on its kind rather than its text.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ScenarioError::Unreadable { .. } => None,
            ScenarioError::Invalid { problem, .. } => Some(problem),
        }
    }

    /// The line the problem is on (1-based), when known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ScenarioError::Unreadable { .. } => None,
            ScenarioError::Invalid { location, .. } => location.map(|location| location.line),
        }
    }
}

/// A position in a scenario file, 1-based, as editors show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The line.
    pub line: usize,
    /// The column in characters, given for TOML syntax and type errors.
    pub column: Option<usize>,
}

impl Location {
    /// The position of byte `offset` of `text` (clamped to its end), with or without the
    /// column.
    pub fn of_offset(text: &str, offset: usize, with_column: bool) -> Location {
        let before = &text.as_bytes()[..offset.min(text.len())];
        let line_start = before
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(0, |newline| newline + 1);
        let line = 1 + before.iter().filter(|&&byte| byte == b'\n').count();
        // Count characters, not bytes: skip UTF-8 continuation bytes.
        let column = 1 + before[line_start..]
            .iter()
            .filter(|&&byte| byte & 0xC0 != 0x80)
            .count();
        Location {
            line,
            column: with_column.then_some(column),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(f, "{}:{column}", self.line),
            None => write!(f, "{}", self.line),
        }
    }
}

/// `:LINE` or `:LINE:COLUMN` after the file name, or nothing.
fn location_suffix(location: &Option<Location>) -> String {
    location.map_or_else(String::new, |location| format!(":{location}"))
}

/// What is wrong with a scenario, without the file and line.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// TOML syntax, an unknown key (named), a missing key, or a value of the wrong type, as
    /// the TOML parser describes it.
    #[error("{0}")]
    Toml(String),
    /// A size, rate, time or count that is malformed or out of range.
    #[error("{key} = {value}: {reason}")]
    BadValue {
        /// The key, as written in the file (`memory`, `event.at`, …).
        key: String,
        /// The value, as TOML writes it.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A size, rate or time string that cannot be read.
    #[error("{key} = {value:?}: {error}")]
    BadUnit {
        /// The key, as written in the file.
        key: String,
        /// The string given.
        value: String,
        /// Why it cannot be read.
        error: UnitError,
    },
    /// A name that is not one of the accepted ones; the message lists them.
    #[error("{0}")]
    UnknownName(UnknownName),
    /// A name refused by another module's parser (layout, profile); the message lists the
    /// valid ones.
    #[error("{0}")]
    UnknownNameMessage(String),
    /// `cpus = 0`.
    #[error("cpus = 0: a machine needs at least one CPU")]
    NoCpus,
    /// More CPUs present than possible.
    #[error("cpus = {cpus} is above maxcpus = {max_cpus}")]
    CpusAboveMaxCpus {
        /// CPUs present at reset.
        cpus: u32,
        /// CPUs possible.
        max_cpus: u32,
    },
    /// More CPUs than a machine may have.
    #[error("{key} = {count} is above the limit of {MAX_CPUS} CPUs")]
    TooManyCpus {
        /// `maxcpus`, or `cpus` when `maxcpus` is left to default to it.
        key: &'static str,
        /// The count given.
        count: u32,
    },
    /// `max-cpus` re-adds a removed CPU with INIT only, keeping its SMBASE; a RESET on
    /// hot-add would undo the relocation done at boot.
    #[error(
        "hotadd_reset = true{} cannot be used with strategy max-cpus, which re-adds a removed \
         CPU with INIT only and keeps its SMBASE: set hotadd_reset = false",
        if *.defaulted { " (the default)" } else { "" }
    )]
    HotaddResetWithMaxCpus {
        /// Whether the value came from the default rather than the file.
        defaulted: bool,
    },
    /// `boot_cpus` outside 1..=maxcpus.
    #[error("boot_cpus = {boot_cpus} is outside 1..={max_cpus} (maxcpus)")]
    BootCpus {
        /// The value given.
        boot_cpus: u32,
        /// CPUs possible.
        max_cpus: u32,
    },
    /// Both a built-in image and a file were named.
    #[error("[firmware] names both builtin = {builtin:?} and path = {path:?}; give only one")]
    FirmwareBoth {
        /// The built-in name given.
        builtin: String,
        /// The path given.
        path: String,
    },
    /// No built-in image has this name.
    #[error("no built-in firmware image is called {name:?} (built-in: {known})")]
    UnknownBuiltin {
        /// The name given.
        name: String,
        /// The names that exist, comma separated.
        known: String,
    },
    /// The firmware file cannot be read or is not a usable image.
    #[error("firmware path = {given:?} ({}): {reason}", .resolved.display())]
    Firmware {
        /// The path as written in the file.
        given: String,
        /// The path after resolving it against the scenario's directory.
        resolved: PathBuf,
        /// The OS error, or what is wrong with the image.
        reason: String,
    },
    /// A `[machine.timing]` key that is not an instruction class.
    #[error("[machine.timing]: unknown key `{key}` (expected one of {expected})")]
    UnknownTimingClass {
        /// The key given.
        key: String,
        /// The class names, comma separated.
        expected: String,
    },
    /// A `[machine.timing]` cost out of range.
    #[error("[machine.timing]: {class} = {cycles} is out of range (1 to {max})")]
    TimingOutOfRange {
        /// The class.
        class: String,
        /// The cost given.
        cycles: u32,
        /// The largest cost allowed.
        max: u32,
    },
    /// A problem with one `[[event]]`.
    #[error("event {number}: {problem}")]
    Event {
        /// The event's position in the file, counting from 1.
        number: usize,
        /// What is wrong with it.
        problem: EventProblem,
    },
    /// An `[expect]` value that cannot be checked.
    #[error("expect.{key}: {reason}")]
    Expectation {
        /// The key under `[expect]`, with the table key for `smbase` entries.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// What is wrong with one event.
#[derive(Debug, thiserror::Error)]
pub enum EventProblem {
    /// Events must be listed in time order, so the file reads as the run goes.
    #[error(
        "at = {at} (cycle {at_cycle}) is before the previous event's cycle {previous_cycle}; \
         events must be in time order"
    )]
    OutOfOrder {
        /// The time as written.
        at: String,
        /// This event's cycle.
        at_cycle: u64,
        /// The previous event's cycle.
        previous_cycle: u64,
    },
    /// The run ends before the event would happen.
    #[error("at = {at} (cycle {at_cycle}) is not before max_cycles = {max_cycles}")]
    BeyondLimit {
        /// The time as written.
        at: String,
        /// This event's cycle.
        at_cycle: u64,
        /// The cycle limit.
        max_cycles: u64,
    },
    /// One of the event's values is malformed (`at`, `action`).
    #[error("{0}")]
    Value(Box<Problem>),
    /// An APIC ID the machine cannot have.
    #[error("apic_id {apic_id} is not below maxcpus = {max_cpus}")]
    ApicIdTooLarge {
        /// The APIC ID given.
        apic_id: u32,
        /// CPUs possible.
        max_cpus: u32,
    },
    /// Adding a CPU that is already there.
    #[error("cpu-add of apic_id {apic_id}, which is already present at that point")]
    AlreadyPresent {
        /// The APIC ID given.
        apic_id: u32,
    },
    /// Removing a CPU that is not there.
    #[error("cpu-remove of apic_id {apic_id}, which is not present at that point")]
    NotPresent {
        /// The APIC ID given.
        apic_id: u32,
    },
    /// The BSP runs the firmware and cannot be ejected.
    #[error("cpu-remove of apic_id 0: the bootstrap processor cannot be removed")]
    RemoveBsp,
    /// `cpu-add` and `cpu-remove` need to know which CPU.
    #[error("action {action:?} needs an apic_id")]
    MissingApicId {
        /// The action.
        action: &'static str,
    },
    /// A reset concerns the whole machine.
    #[error("action \"reset\" takes no apic_id (it resets the whole machine)")]
    ApicIdOnReset,
    /// `hard` only qualifies a reset.
    #[error("action {action:?} takes no `hard` (only reset does)")]
    HardOnHotplug {
        /// The action.
        action: &'static str,
    },
}

/// Builds errors for one scenario text: knows the file name and turns byte spans into lines.
pub(crate) struct ErrorContext<'a> {
    /// The file, as named by the caller.
    pub origin: &'a Path,
    /// The whole text, to count lines in.
    pub text: &'a str,
}

impl ErrorContext<'_> {
    /// An error at the line of `span` (no column: the value is named instead).
    pub fn at(&self, span: Range<usize>, problem: Problem) -> ScenarioError {
        self.error(
            Some(Location::of_offset(self.text, span.start, false)),
            problem,
        )
    }

    /// An error with a known or unknown location.
    pub fn error(&self, location: Option<Location>, problem: Problem) -> ScenarioError {
        ScenarioError::Invalid {
            origin: self.origin.to_owned(),
            location,
            problem: Box::new(problem),
        }
    }

    /// A TOML parser error, with line and column when the parser gives a span.
    pub fn toml(&self, error: &toml::de::Error) -> ScenarioError {
        let location = error
            .span()
            .map(|span| Location::of_offset(self.text, span.start, true));
        self.error(location, Problem::Toml(toml_message(error.message())))
    }
}

/// The parser's message on one line. toml 0.8 cannot attach a position to a value reached
/// through a dotted key (`memory.x = 1`) where a plain value is expected, and then says
/// "expected a borrowed string"; that is said plainly instead.
fn toml_message(message: &str) -> String {
    let message = message.trim_end().replace('\n', "; ");
    match message
        .strip_prefix("invalid type: string ")
        .and_then(|rest| rest.strip_suffix(", expected a borrowed string"))
    {
        Some(key) => format!("unexpected key {key}: a plain value is expected here, not a table"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let text = "a = 1\nµs = \"x\"\n";
        assert_eq!(
            Location::of_offset(text, 0, true),
            Location {
                line: 1,
                column: Some(1)
            }
        );
        assert_eq!(
            Location::of_offset(text, text.find("\"x").expect("present"), true).column,
            Some(6)
        );
        assert_eq!(Location::of_offset(text, 10_000, false).line, 3);
    }

    #[test]
    fn dotted_key_messages_are_said_plainly() {
        assert_eq!(
            toml_message("invalid type: string \"x\", expected a borrowed string"),
            "unexpected key \"x\": a plain value is expected here, not a table"
        );
        assert_eq!(toml_message("a\nb\n"), "a; b");
    }
}
