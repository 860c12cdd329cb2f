//! smmsim's trace vocabulary: the time stamps every event carries, the event types, and the
//! binary file format that stores them.
//!
//! This crate depends on nothing else of smmsim's, so tools outside the simulator can read
//! traces with it alone.
//!
//! 1. The simulator builds [`Event`]s stamped with a [`Cycle`] and CPU index.
//! 2. It hands them, merged into (cycle, cpu) order, to a [`TraceWriter`] one chunk at a
//!    time, and calls [`TraceWriter::finish`] at the end of the run.
//! 3. Viewers open the file with [`TraceReader`], which seeks by cycle through the index or
//!    recovers what it can from a file cut short. The layout is described in [`mod@format`].
//! 4. The [`view`] module turns a reader into what people look at: an event listing,
//!    per-CPU statistics, Perfetto JSON, an SVG timeline, or the first difference between
//!    two runs.

mod crc;
mod decode;
pub mod event;
pub mod format;
pub mod reader;
pub mod time;
pub mod view;
pub mod writer;

pub use event::{Event, EventKind, SmiSource};
pub use format::{ChunkInfo, Header, TraceError, FORMAT_VERSION};
pub use reader::{Events, TraceReader};
pub use time::{Cycle, Cycles};
pub use view::{
    diff, export_perfetto, render_stats, show, stats, timeline_svg, DiffOutcome, DiffResult,
    Filter, TimelineOptions, TraceStats, ViewError,
};
pub use writer::TraceWriter;
