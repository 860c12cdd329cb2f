//! `trace diff`: where two runs part ways.
//!
//! The simulator is deterministic, so two runs of one scenario must give identical traces;
//! two strategies or two builds give traces that agree up to the first thing that differs.
//! That first event is usually the whole story, so this view finds it rather than listing
//! every difference after it.
//!
//! 1. Compare the headers field by field and keep every difference (a different clock or
//!    strategy explains a divergence; it does not stop the comparison).
//! 2. Walk both traces in step and stop at the first index where the events differ, or
//!    where one trace ends (it is then a prefix of the other). A damaged trace counts as
//!    ending at the damage, which is reported.

use std::io::{BufWriter, Write};

use crate::event::Event;
use crate::format::Header;
use crate::reader::TraceReader;
use crate::view::describe::Fields;
use crate::view::ViewError;

/// One header field whose value differs between the two traces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderDifference {
    /// The field name, as in [`Header`].
    pub field: &'static str,
    /// Its value in the first trace.
    pub first: String,
    /// Its value in the second trace.
    pub second: String,
}

/// How the event streams compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Same events, same order, same length.
    Identical,
    /// The events at `index` differ (all before it are equal).
    Diverged {
        /// Position of the first differing event, counting from 0.
        index: u64,
        /// The event in the first trace.
        first: Event,
        /// The event in the second trace.
        second: Event,
    },
    /// The first trace ends where the second goes on.
    FirstIsPrefix {
        /// The second trace's next event.
        next_in_second: Event,
    },
    /// The second trace ends where the first goes on.
    SecondIsPrefix {
        /// The first trace's next event.
        next_in_first: Event,
    },
}

/// What [`diff`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffResult {
    /// Header fields that differ, in declaration order.
    pub header_differences: Vec<HeaderDifference>,
    /// How the events compare.
    pub outcome: DiffOutcome,
    /// Events equal in both before the outcome (the index of a divergence).
    pub equal_events: u64,
    /// Where the first trace is damaged, if it is; it counts as ending there.
    pub first_damage: Option<String>,
    /// Where the second trace is damaged, if it is.
    pub second_damage: Option<String>,
}

impl DiffResult {
    /// Whether the traces are the same in header and events.
    pub fn identical(&self) -> bool {
        self.header_differences.is_empty() && self.outcome == DiffOutcome::Identical
    }

    /// Prints the result for people: header differences, then the first divergence.
    pub fn render(&self, out: &mut dyn Write) -> Result<(), ViewError> {
        let output = ViewError::output("diff");
        let mut out = BufWriter::new(out);
        if !self.header_differences.is_empty() {
            writeln!(out, "headers differ:").map_err(&output)?;
            for difference in &self.header_differences {
                writeln!(
                    out,
                    "  {}: {} vs {}",
                    difference.field, difference.first, difference.second
                )
                .map_err(&output)?;
            }
        }
        for (which, damage) in [
            ("first", &self.first_damage),
            ("second", &self.second_damage),
        ] {
            if let Some(damage) = damage {
                writeln!(
                    out,
                    "the {which} trace is damaged and compared up to: {damage}"
                )
                .map_err(&output)?;
            }
        }
        let equal = self.equal_events;
        match &self.outcome {
            DiffOutcome::Identical => {
                writeln!(out, "events identical ({equal} events)").map_err(&output)?;
            }
            DiffOutcome::Diverged {
                index,
                first,
                second,
            } => {
                let cycles = if first.cycle == second.cycle {
                    format!("cycle {}", first.cycle.0)
                } else {
                    format!("cycle {} vs {}", first.cycle.0, second.cycle.0)
                };
                writeln!(out, "events diverge at index {index} ({cycles}):").map_err(&output)?;
                writeln!(out, "  first:  {}", line(first)).map_err(&output)?;
                writeln!(out, "  second: {}", line(second)).map_err(&output)?;
            }
            DiffOutcome::FirstIsPrefix { next_in_second } => {
                writeln!(
                    out,
                    "the first trace is a prefix of the second: both agree on {equal} events, \
                     then the second goes on with:\n  {}",
                    line(next_in_second)
                )
                .map_err(&output)?;
            }
            DiffOutcome::SecondIsPrefix { next_in_first } => {
                writeln!(
                    out,
                    "the second trace is a prefix of the first: both agree on {equal} events, \
                     then the first goes on with:\n  {}",
                    line(next_in_first)
                )
                .map_err(&output)?;
            }
        }
        out.flush().map_err(&output)
    }
}

/// One event on one line: cycle, CPU, kind and fields.
fn line(event: &Event) -> String {
    format!(
        "cycle {} cpu {} {} {}",
        event.cycle.0,
        event.cpu,
        event.kind.kind_name(),
        Fields(&event.kind)
    )
    .trim_end()
    .to_string()
}

/// The header fields that differ between `first` and `second`.
fn header_differences(first: &Header, second: &Header) -> Vec<HeaderDifference> {
    let fields: [(&'static str, String, String); 8] = [
        (
            "smmsim_version",
            first.smmsim_version.clone(),
            second.smmsim_version.clone(),
        ),
        ("cpus", first.cpus.to_string(), second.cpus.to_string()),
        (
            "max_cpus",
            first.max_cpus.to_string(),
            second.max_cpus.to_string(),
        ),
        (
            "clock_hz",
            first.clock_hz.to_string(),
            second.clock_hz.to_string(),
        ),
        ("layout", first.layout.clone(), second.layout.clone()),
        ("profile", first.profile.clone(), second.profile.clone()),
        ("strategy", first.strategy.clone(), second.strategy.clone()),
        (
            "scenario_hash",
            format!("{:#018x}", first.scenario_hash),
            format!("{:#018x}", second.scenario_hash),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(field, first, second)| HeaderDifference {
            field,
            first,
            second,
        })
        .collect()
}

/// Compares two traces: headers field by field, then events up to the first difference.
///
/// Never fails: a damaged trace is compared up to its damage, which the result reports.
pub fn diff(first: &TraceReader, second: &TraceReader) -> DiffResult {
    let mut first_damage = None;
    let mut second_damage = None;
    let mut first_events = first.events();
    let mut second_events = second.events();
    let next =
        |events: &mut crate::reader::Events<'_>, damage: &mut Option<String>| match events.next() {
            Some(Ok(event)) => Some(event),
            Some(Err(error)) => {
                *damage = Some(error.to_string());
                None
            }
            None => None,
        };
    let mut index = 0u64;
    let outcome = loop {
        let a = next(&mut first_events, &mut first_damage);
        let b = next(&mut second_events, &mut second_damage);
        match (a, b) {
            (None, None) => break DiffOutcome::Identical,
            (None, Some(next_in_second)) => break DiffOutcome::FirstIsPrefix { next_in_second },
            (Some(next_in_first), None) => break DiffOutcome::SecondIsPrefix { next_in_first },
            (Some(a), Some(b)) if a != b => {
                break DiffOutcome::Diverged {
                    index,
                    first: a,
                    second: b,
                }
            }
            (Some(_), Some(_)) => index += 1,
        }
    };
    DiffResult {
        header_differences: header_differences(first.header(), second.header()),
        outcome,
        equal_events: index,
        first_damage,
        second_damage,
    }
}
