//! smmsim's trace vocabulary: the time stamps every event carries and (as the trace format
//! arrives) the event types and the binary file format.
//!
//! This crate depends on nothing else of smmsim's, so tools outside the simulator can read
//! traces with it alone.

pub mod time;

pub use time::{Cycle, Cycles};
