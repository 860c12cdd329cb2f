//! Ways to look at a trace: the library side of the `smmsim trace …` subcommands.
//!
//! Each function takes an open [`TraceReader`](crate::TraceReader) and writes or returns one
//! view of it; the command-line parsing lives in the simulator, so tools outside it can
//! produce the same views.
//!
//! 1. [`show()`] prints one line per event, narrowed by a [`Filter`].
//! 2. [`stats()`] counts per CPU (SMIs, SMM time, relocations, IPIs, hot-plug) in one fast
//!    pass, returning a [`TraceStats`] that [`render_stats`] prints and serde serializes.
//! 3. [`export_perfetto`] writes Chrome trace-event JSON for ui.perfetto.dev.
//! 4. [`timeline_svg`] draws SMM residency, IPIs and hot-plug marks as an SVG picture.
//! 5. [`diff()`] finds the first event where two runs part ways.
//!
//! A damaged trace is not an error of these functions: they use every event before the
//! damage and report where it stopped (a `damage` field, or a line in the output), because
//! a run killed midway is exactly the trace one most wants to look at. Errors are kept for
//! bad arguments and failed output.

mod describe;
mod diff;
mod filter;
mod ipi;
mod perfetto;
mod show;
mod stats;
mod timeline;
mod units;

pub use diff::{diff, DiffOutcome, DiffResult, HeaderDifference};
pub use filter::Filter;
pub use perfetto::{export_perfetto, PerfettoSummary};
pub use show::{show, ShowSummary};
pub use stats::{render_stats, stats, Counts, CpuStats, TraceStats};
pub use timeline::{timeline_svg, TimelineOptions, TimelineSummary};
pub use units::{format_clock, format_duration};

/// What can go wrong producing a view: a bad argument or a failed write.
///
/// Damage in the trace itself is reported inside each view's result instead, so the
/// events before it are not lost.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A `--kind` name that no event kind has.
    #[error("unknown event kind {name:?}; valid kinds are: {valid}")]
    UnknownKind {
        /// The name given.
        name: String,
        /// Every valid name, comma-separated.
        valid: String,
    },
    /// A cycle range whose start is after its end.
    #[error("the range starts at cycle {from} but ends at cycle {to}, before it")]
    EmptyRange {
        /// The start given.
        from: u64,
        /// The end given.
        to: u64,
    },
    /// Timeline options that leave no room to draw.
    #[error("timeline {what} is {value}, but must be at least {minimum}")]
    BadOption {
        /// The option.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value accepted.
        minimum: u64,
    },
    /// Writing the output failed.
    #[error("cannot write the {what} output")]
    Output {
        /// Which view was being written.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Encoding JSON failed (in practice only when the output fails underneath it).
    #[error("cannot write the {what} JSON")]
    Json {
        /// Which view was being written.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl ViewError {
    /// A closure turning an I/O error while writing `what` into a [`ViewError::Output`].
    pub(crate) fn output(what: &'static str) -> impl Fn(std::io::Error) -> ViewError {
        move |source| ViewError::Output { what, source }
    }
}
