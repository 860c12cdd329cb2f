//! Batches: many scenarios run several at a time, one result line each (DESIGN.md §8).
//!
//! `smmsim batch` exists so that a study — every strategy at every size, every add pattern,
//! several seeds — is one command whose results survive a kill and can be split across
//! machines. The flow:
//! 1. [`inputs`] turns the command line's paths (scenario files, directories of them,
//!    [`matrix`] files that expand parameters into scenarios, with [`pattern`] events) into
//!    [`Job`]s, each with a stable id; a scenario that does not parse is still a job, one
//!    that ends `invalid`;
//! 2. [`shard`] keeps this machine's deterministic slice of the sorted ids (`--shard K/N`,
//!    or the slice a Slurm job array or a Kubernetes indexed Job gives);
//! 3. [`results`] opens the results file, reading back what an earlier run of the batch
//!    recorded so that `--resume` skips it; every bad input is refused by here, before any
//!    scenario runs;
//! 4. [`runner`] runs the jobs on a small pool of worker threads, a panic in the simulator
//!    caught and recorded as `crashed`, each run's trace written where [`traces`] says;
//!    the caller appends each result to the file as it arrives and reports [`progress`];
//! 5. [`summary`] counts the outcomes and averages boot time and hot-add latency per
//!    strategy; [`merge`] joins the results files of many shards and summarizes them alike.

pub mod inputs;
pub mod matrix;
pub mod merge;
pub mod pattern;
pub mod progress;
pub mod results;
pub mod runner;
pub mod shard;
pub mod summary;
pub mod traces;

use std::path::PathBuf;

use crate::scenario::Scenario;
use results::Parameters;

/// One scenario of a batch, ready to run (or known to be invalid).
#[derive(Clone, Debug)]
pub struct Job {
    /// The stable id results are keyed by (see [`inputs`]).
    pub id: String,
    /// The file the scenario came from: a scenario file or a matrix file.
    pub source: PathBuf,
    /// What the scenario varies, for the results line.
    pub parameters: Parameters,
    /// FNV-1a 64 of the scenario's text, when it could be read.
    pub scenario_hash: Option<u64>,
    /// The checked scenario, or why it is not a valid one (a complete message).
    pub scenario: Result<Scenario, String>,
}
