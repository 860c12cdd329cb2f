//! `trace show`: one aligned line per event, for reading a run as a story.
//!
//! 1. Print the preamble: the machine from the header, the trace's extent, and how a
//!    truncated file was recovered.
//! 2. Seek to the filter's first cycle through the chunk index, then print each matching
//!    event as `cycle  time  cpu N  kind  fields`, with the cycle right-aligned to the
//!    widest cycle in the trace so columns line up.
//! 3. Stop after the filter's last cycle, or at damage, which gets a closing line.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;

use crate::reader::TraceReader;
use crate::time::Cycles;
use crate::view::describe::{trace_preamble, Fields};
use crate::view::units::format_duration;
use crate::view::{Filter, ViewError};

/// Width of the time column: `"999.999 ms"` plus room for seconds.
const TIME_COLUMN: usize = 12;
/// Width of the kind column: the longest kind name.
const KIND_COLUMN: usize = 24;

/// What [`show`] printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShowSummary {
    /// Events that passed the filter and were printed.
    pub events_shown: u64,
    /// Why reading stopped early, if the trace is damaged (the message names the byte
    /// offset); everything before it was shown.
    pub damage: Option<String>,
}

/// Why the event loop stopped before the end of the trace.
enum Stop {
    /// The next event is after the filter's last cycle.
    PastRange,
    /// The output failed.
    Output(std::io::Error),
}

/// Prints the events of `reader` that pass `filter` to `out`, one per line, after a
/// preamble describing the machine and how the file was recovered.
///
/// An unknown kind name or an empty range is an error before anything is printed; damage
/// in the trace ends the listing with a line saying where, and is returned in the summary.
pub fn show(
    reader: &TraceReader,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<ShowSummary, ViewError> {
    let filter = filter.compile()?;
    let mut out = BufWriter::new(out);
    let output = ViewError::output("show");
    for line in trace_preamble(reader) {
        writeln!(out, "{line}").map_err(&output)?;
    }

    let clock_hz = reader.header().clock_hz;
    let last_cycle = reader.chunks().map(|c| c.last_cycle.0).max().unwrap_or(0);
    let cycle_column = digits(last_cycle);
    let cpu_column = digits(u64::from(reader.header().max_cpus.saturating_sub(1)));
    let mut summary = ShowSummary::default();
    let mut line = String::new();
    let result = reader.try_for_each_from(filter.from, |event| {
        if event.cycle > filter.to {
            return ControlFlow::Break(Stop::PastRange);
        }
        if !filter.matches(event) {
            return ControlFlow::Continue(());
        }
        line.clear();
        // Writing into a String cannot fail.
        let _ = write!(
            line,
            "{:>cycle_column$}  {:>TIME_COLUMN$}  cpu {:<cpu_column$}  {:<KIND_COLUMN$}  {}",
            event.cycle.0,
            format_duration(Cycles(event.cycle.0), clock_hz),
            event.cpu,
            event.kind.kind_name(),
            Fields(&event.kind),
        );
        let trimmed = line.trim_end();
        if let Err(error) = writeln!(out, "{trimmed}") {
            return ControlFlow::Break(Stop::Output(error));
        }
        summary.events_shown += 1;
        ControlFlow::Continue(())
    });
    match result {
        Ok(ControlFlow::Break(Stop::Output(error))) => return Err(output(error)),
        Ok(_) => {}
        Err(damage) => {
            let message = damage.to_string();
            writeln!(
                out,
                "-- the trace is damaged here, nothing after it can be read: {message}"
            )
            .map_err(&output)?;
            summary.damage = Some(message);
        }
    }
    out.flush().map_err(&output)?;
    Ok(summary)
}

/// Decimal digits in `value`, for column widths.
fn digits(value: u64) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_counts_decimal_places() {
        assert_eq!(digits(0), 1);
        assert_eq!(digits(9), 1);
        assert_eq!(digits(10), 2);
        assert_eq!(digits(u64::MAX), 20);
    }
}
