//! The results file of a batch: one JSON object per line, one line per finished scenario.
//!
//! JSON Lines because a line is complete the moment it is written: the batch appends and
//! flushes each result as its scenario ends, so a batch killed at any point keeps every
//! finished result, `--resume` reads them back to skip those scenarios, and shard files from
//! many machines join by concatenation (`smmsim merge`).
//!
//! Every line carries `smmsim_version`, so a line keeps its provenance wherever it is copied,
//! and both `--resume` and `smmsim merge` refuse results of another version (their figures
//! are not comparable across simulator versions).
//!
//! 1. [`ResultLine`] is the line: the scenario's id, where it came from and its parameters,
//!    the outcome, the expectations, and the figures of the run;
//! 2. [`read_results`] reads a file back, dropping an incomplete last line (the one a kill
//!    cut short) and naming the file and line of anything else it cannot read;
//! 3. [`ResultsWriter`] appends lines, each written whole and flushed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Job;
use crate::scenario_run::ScenarioReport;

/// The version written into every line and required of every line read.
pub const SMMSIM_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How many of a run's checker findings a line lists one by one (all are counted).
pub const FINDINGS_PER_LINE: usize = 8;

/// How a scenario of a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It ran and met every expectation.
    Passed,
    /// It ran and missed an expectation, or the machine refused one of its events.
    Failed,
    /// The simulator panicked while running it; the message says where.
    Crashed,
    /// It could not be run: the file is not a valid scenario, or its firmware or machine
    /// could not be set up.
    Invalid,
}

impl Outcome {
    /// Every outcome, in the order summaries list them.
    pub const ALL: [Outcome; 4] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Crashed,
        Outcome::Invalid,
    ];

    /// The name used in results files and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Crashed => "crashed",
            Outcome::Invalid => "invalid",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What a scenario of a batch varies: read from the scenario when it is valid, from the
/// matrix point otherwise. `None` where unknown or not applicable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    /// The relocation strategy.
    pub strategy: Option<String>,
    /// CPUs present at reset.
    pub cpus: Option<u32>,
    /// CPUs possible.
    pub maxcpus: Option<u32>,
    /// The SMI/INIT/SIPI behaviour profile.
    pub profile: Option<String>,
    /// The add pattern, for a scenario expanded from a matrix with a `pattern` axis.
    pub pattern: Option<String>,
    /// The seed, for a scenario expanded from a matrix with a `seed` axis.
    pub seed: Option<u64>,
    /// The cycles the seed shifted every event by.
    pub event_offset_cycles: Option<u64>,
}

/// One expectation and its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationLine {
    /// What was expected, in words.
    pub expected: String,
    /// Whether the run met it.
    pub passed: bool,
    /// What the run did instead (empty when it passed).
    pub detail: String,
}

/// One hot-plug event as the run saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotplugLine {
    /// `cpu-add` or `cpu-remove`.
    pub action: String,
    /// The CPU added or removed.
    pub apic_id: u32,
    /// When the platform acted.
    pub start_cycle: u64,
    /// From the platform's action to the guest's `cpu N online` line (or the eject);
    /// `None` when it never completed.
    pub latency_cycles: Option<u64>,
    /// SMIs raised in the window, on any CPU.
    pub smis_raised: u64,
    /// SMM entries in the window, on any CPU.
    pub smm_entries: u64,
    /// Cycles spent in SMM during the window, all CPUs together.
    pub smm_cycles: u64,
}

/// A checker finding, as a line lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingLine {
    /// When.
    pub cycle: u64,
    /// On which CPU.
    pub cpu: u32,
    /// Which check.
    pub check: String,
    /// What exactly.
    pub detail: String,
}

/// Everything about a run that broke a rule, whether or not an expectation asked about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violations {
    /// What the checker's findings mean for safety: `blocked`, `exploitable` or `hang`
    /// (DESIGN.md §9).
    pub verdict: String,
    /// Safety-checker violations, all checks together.
    pub total: u64,
    /// Safety-checker violations by check name (only checks that fired).
    pub by_check: BTreeMap<String, u64>,
    /// The first [`FINDINGS_PER_LINE`] findings.
    pub findings: Vec<FindingLine>,
    /// Non-SMM reads of SMRAM that were blocked.
    pub smram_blocked_reads: u64,
    /// Non-SMM writes to SMRAM that were blocked.
    pub smram_blocked_writes: u64,
    /// Scenario events the machine could not carry out.
    pub refused_actions: Vec<String>,
}

/// One line of a results file: one scenario of a batch and how it went.
///
/// Fields that only a run produces are `null` for a scenario that crashed or was invalid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultLine {
    /// The smmsim version that wrote the line ([`SMMSIM_VERSION`]).
    pub smmsim_version: String,
    /// The scenario's stable id: its path, or `MATRIX/axis=value,…` (see `batch::inputs`).
    pub id: String,
    /// The file the scenario came from: the scenario file or the matrix file.
    pub source: String,
    /// The scenario's name, when it was valid.
    pub scenario: Option<String>,
    /// FNV-1a 64 of the scenario's text, as 16 hex digits: a changed scenario under the same
    /// id has another hash, so `--resume` runs it again.
    pub scenario_hash: Option<String>,
    /// What the scenario varies.
    pub parameters: Parameters,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it crashed or was invalid; `null` otherwise.
    pub message: Option<String>,
    /// How the run ended, in words (`debug exit: …`, `cycle limit …`).
    pub run_end: Option<String>,
    /// The run's exit status, as `smmsim run` would return it.
    pub status: Option<i32>,
    /// Each expectation and its verdict.
    pub expectations: Vec<ExpectationLine>,
    /// Simulated cycles until the guest was ready for hot-plug (the whole run if never).
    pub boot_cycles: Option<u64>,
    /// The same in nanoseconds of simulated time.
    pub boot_nanos: Option<u64>,
    /// Simulated cycles of the whole run.
    pub total_cycles: Option<u64>,
    /// The simulated clock, to turn cycles into time.
    pub clock_hz: Option<u64>,
    /// Each hot-plug event, in order.
    pub hotplug: Vec<HotplugLine>,
    /// Cycles in SMM over the whole run, all CPUs together.
    pub smm_cycles: Option<u64>,
    /// SMM entries over the whole run.
    pub smm_entries: Option<u64>,
    /// SMBASE relocations over the whole run.
    pub relocations: Option<u64>,
    /// SMIs raised over the whole run, by source (`apm-port`, `ipi`, `platform`).
    pub smis_by_source: BTreeMap<String, u64>,
    /// What broke a rule.
    pub violations: Option<Violations>,
    /// The trace file written for this scenario (`--traces`), if any.
    pub trace: Option<String>,
    /// Why the trace file could not be written, if it could not.
    pub trace_error: Option<String>,
    /// Host seconds from the scenario's start to its end, machine setup included.
    pub host_seconds: f64,
}

impl ResultLine {
    /// A line for a scenario that has not run (yet): everything a run produces left empty.
    pub fn empty(
        id: &str,
        source: &Path,
        parameters: Parameters,
        scenario_hash: Option<u64>,
    ) -> ResultLine {
        ResultLine {
            smmsim_version: SMMSIM_VERSION.to_owned(),
            id: id.to_owned(),
            source: source.to_string_lossy().into_owned(),
            scenario: None,
            scenario_hash: scenario_hash.map(format_hash),
            parameters,
            outcome: Outcome::Invalid,
            message: None,
            run_end: None,
            status: None,
            expectations: Vec::new(),
            boot_cycles: None,
            boot_nanos: None,
            total_cycles: None,
            clock_hz: None,
            hotplug: Vec::new(),
            smm_cycles: None,
            smm_entries: None,
            relocations: None,
            smis_by_source: BTreeMap::new(),
            violations: None,
            trace: None,
            trace_error: None,
            host_seconds: 0.0,
        }
    }

    /// Fills in the figures of a finished run and its verdict.
    pub fn record_report(&mut self, report: &ScenarioReport) {
        self.scenario = Some(report.scenario.clone());
        self.outcome = if report.passed {
            Outcome::Passed
        } else {
            Outcome::Failed
        };
        self.run_end = Some(report.outcome.clone());
        self.status = Some(report.status);
        self.expectations = report
            .expectations
            .iter()
            .map(|result| ExpectationLine {
                expected: result.expected.clone(),
                passed: result.passed,
                detail: result.detail.clone(),
            })
            .collect();
        self.boot_cycles = Some(report.boot_cycles);
        self.boot_nanos = Some(report.boot_nanos);
        self.total_cycles = Some(report.total_cycles);
        self.clock_hz = Some(report.clock_hz);
        self.hotplug = report
            .hotplug
            .iter()
            .map(|window| HotplugLine {
                action: window.action.to_owned(),
                apic_id: window.apic_id,
                start_cycle: window.start_cycle,
                latency_cycles: window.latency_cycles,
                smis_raised: window.smis_raised,
                smm_entries: window.smm_entries,
                smm_cycles: window.smm_cycles_by_cpu.values().sum(),
            })
            .collect();
        self.smm_cycles = Some(report.smm_cycles_by_cpu.values().sum());
        self.smm_entries = Some(report.smm_entries);
        self.relocations = Some(report.relocations);
        self.smis_by_source = report
            .smis_by_source
            .iter()
            .map(|(source, count)| ((*source).to_owned(), *count))
            .collect();
        self.violations = Some(Violations {
            verdict: report.verdict.name().to_owned(),
            total: report.checks.total(),
            by_check: report.checks.violations.clone(),
            findings: report
                .checks
                .findings
                .iter()
                .take(FINDINGS_PER_LINE)
                .map(|finding| FindingLine {
                    cycle: finding.cycle,
                    cpu: finding.cpu,
                    check: finding.check.clone(),
                    detail: finding.detail.clone(),
                })
                .collect(),
            smram_blocked_reads: report.smram_blocked.0,
            smram_blocked_writes: report.smram_blocked.1,
            refused_actions: report.refused_actions.clone(),
        });
    }

    /// Why the scenario did not pass, in one line; `None` when it passed.
    pub fn reason(&self) -> Option<String> {
        if self.outcome == Outcome::Passed {
            return None;
        }
        if let Some(message) = &self.message {
            return Some(message.clone());
        }
        if let Some(refused) = self
            .violations
            .as_ref()
            .and_then(|violations| violations.refused_actions.first())
        {
            return Some(format!("refused {refused}"));
        }
        let failed = self.expectations.iter().find(|result| !result.passed)?;
        Some(if failed.detail.is_empty() {
            format!("expected {}", failed.expected)
        } else {
            format!("expected {}: {}", failed.expected, failed.detail)
        })
    }
}

/// A scenario hash as the results file writes it: 16 lower-case hex digits.
pub fn format_hash(hash: u64) -> String {
    format!("{hash:016x}")
}

/// Why a results file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// The file could not be opened or read.
    #[error("cannot read results file {}: {error}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the host said; part of the message so that it stands alone.
        error: std::io::Error,
    },
    /// A complete line is not a result line.
    #[error("{}:{line}: not a smmsim result line: {reason}", .path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line, 1-based.
        line: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// A line written by another smmsim version.
    #[error(
        "{}:{line}: written by smmsim {found}, this is smmsim {SMMSIM_VERSION}: results of \
         different versions are not comparable; use a results file of this version",
        .path.display()
    )]
    OtherVersion {
        /// The file.
        path: PathBuf,
        /// The line, 1-based.
        line: usize,
        /// The version the line names.
        found: String,
    },
    /// The file exists and is not empty, and neither `--resume` nor `--overwrite` was given.
    #[error(
        "results file {} already exists: pass --resume to skip the scenarios it holds and \
         append the rest, or --overwrite to start it afresh",
        .path.display()
    )]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be created, truncated or opened for appending.
    #[error("cannot write results file {}: {error}", .path.display())]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// What the host said; part of the message so that it stands alone.
        error: std::io::Error,
    },
}

/// A line read back from a results file.
#[derive(Clone, Debug)]
pub struct RecordedLine {
    /// The line's position in its file, 1-based.
    pub line: usize,
    /// The text of the line, without its newline, exactly as read.
    pub text: String,
    /// The line parsed.
    pub result: ResultLine,
}

/// A results file read back.
#[derive(Clone, Debug, Default)]
pub struct ResultsFile {
    /// Its complete lines, in file order (blank lines skipped).
    pub lines: Vec<RecordedLine>,
    /// The length in bytes of its complete lines: where an incomplete last line starts.
    pub complete_bytes: u64,
    /// Whether it ended in an incomplete line (dropped).
    pub dropped_incomplete_line: bool,
}

/// Reads the results file at `path`: every complete line must be a result line of this
/// smmsim version. A last line without its newline (a write cut short by a kill) is dropped
/// when it does not parse.
pub fn read_results(path: &Path) -> Result<ResultsFile, ResultsError> {
    let bytes = std::fs::read(path).map_err(|error| ResultsError::Unreadable {
        path: path.to_owned(),
        error,
    })?;
    parse_results(&bytes, path)
}

/// [`read_results`] on bytes already read; `path` names the file in errors.
pub fn parse_results(bytes: &[u8], path: &Path) -> Result<ResultsFile, ResultsError> {
    let mut file = ResultsFile::default();
    let mut offset = 0usize;
    for (index, piece) in bytes.split_inclusive(|&byte| byte == b'\n').enumerate() {
        let line = index + 1;
        let complete = piece.ends_with(b"\n");
        let text = String::from_utf8_lossy(piece).trim_end().to_owned();
        offset += piece.len();
        if text.is_empty() {
            if complete {
                file.complete_bytes = offset as u64;
            }
            continue;
        }
        let parsed = serde_json::from_str::<ResultLine>(&text);
        let result = match parsed {
            Ok(result) => result,
            Err(_) if !complete => {
                file.dropped_incomplete_line = true;
                break;
            }
            Err(error) => {
                return Err(ResultsError::BadLine {
                    path: path.to_owned(),
                    line,
                    reason: error.to_string(),
                })
            }
        };
        if result.smmsim_version != SMMSIM_VERSION {
            return Err(ResultsError::OtherVersion {
                path: path.to_owned(),
                line,
                found: result.smmsim_version,
            });
        }
        file.complete_bytes = offset as u64;
        file.lines.push(RecordedLine { line, text, result });
    }
    Ok(file)
}

impl ResultsFile {
    /// Splits `jobs` into the results this file already holds for them and the jobs still
    /// to run. A job counts as done when a line has its id and its scenario hash (the last
    /// such line wins), so a scenario edited since it ran runs again.
    pub fn split_done(&self, jobs: Vec<Job>) -> (Vec<ResultLine>, Vec<Job>) {
        let recorded: HashMap<(&str, Option<&str>), &ResultLine> = self
            .lines
            .iter()
            .map(|line| {
                let key = (
                    line.result.id.as_str(),
                    line.result.scenario_hash.as_deref(),
                );
                (key, &line.result)
            })
            .collect();
        let mut done = Vec::new();
        let mut todo = Vec::new();
        for job in jobs {
            let hash = job.scenario_hash.map(format_hash);
            match recorded.get(&(job.id.as_str(), hash.as_deref())) {
                Some(&line) => done.push(line.clone()),
                None => todo.push(job),
            }
        }
        (done, todo)
    }
}

/// What to do with a results file that already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Refuse a file that already holds results (an empty one is fine).
    Fresh,
    /// Keep its results (they must be of this version) and append.
    Resume,
    /// Truncate it.
    Overwrite,
}

/// Appends result lines to a results file, each written whole and flushed at once.
#[derive(Debug)]
pub struct ResultsWriter {
    path: PathBuf,
    file: File,
}

impl ResultsWriter {
    /// Opens `path` for a batch: checks what it holds against `mode`, and returns the
    /// writer and the results already there (none unless resuming). Every failure happens
    /// here, before any scenario runs.
    pub fn open(path: &Path, mode: OpenMode) -> Result<(ResultsWriter, ResultsFile), ResultsError> {
        let unwritable = |error| ResultsError::Unwritable {
            path: path.to_owned(),
            error,
        };
        let existing_bytes = match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => {
                return Err(unwritable(std::io::Error::other("it is a directory")))
            }
            Ok(metadata) => Some(metadata.len()),
            Err(_) => None,
        };
        let recorded = match (mode, existing_bytes) {
            (OpenMode::Overwrite, _) | (_, None) => ResultsFile::default(),
            (OpenMode::Fresh, Some(0)) => ResultsFile::default(),
            (OpenMode::Fresh, Some(_)) => {
                return Err(ResultsError::AlreadyExists {
                    path: path.to_owned(),
                })
            }
            (OpenMode::Resume, Some(_)) => read_results(path)?,
        };
        let file = if mode == OpenMode::Resume {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(unwritable)?;
            // Drop an incomplete last line, so the next line does not run into it.
            file.set_len(recorded.complete_bytes).map_err(unwritable)?;
            file
        } else {
            File::create(path).map_err(unwritable)?
        };
        Ok((
            ResultsWriter {
                path: path.to_owned(),
                file,
            },
            recorded,
        ))
    }

    /// Creates (or truncates) `path` for lines written elsewhere, as `smmsim merge` does.
    pub fn create(path: &Path) -> Result<ResultsWriter, ResultsError> {
        let file = File::create(path).map_err(|error| ResultsError::Unwritable {
            path: path.to_owned(),
            error,
        })?;
        Ok(ResultsWriter {
            path: path.to_owned(),
            file,
        })
    }

    /// Appends `result` as one line and flushes it.
    pub fn append(&mut self, result: &ResultLine) -> Result<(), ResultsError> {
        let text = serde_json::to_string(result).map_err(|error| ResultsError::Unwritable {
            path: self.path.clone(),
            error: std::io::Error::other(error),
        })?;
        self.append_text(&text)
    }

    /// Appends `text` (one JSON object, no newline) as one line and flushes it.
    pub fn append_text(&mut self, text: &str) -> Result<(), ResultsError> {
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        line.push('\n');
        // One write of the whole line: a reader never sees half of it unless the process
        // dies inside this call.
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|error| ResultsError::Unwritable {
                path: self.path.clone(),
                error,
            })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str) -> String {
        let result = ResultLine::empty(id, Path::new("s.toml"), Parameters::default(), Some(1));
        serde_json::to_string(&result).expect("serializable")
    }

    #[test]
    fn a_line_round_trips_and_names_its_version() {
        let text = line("a");
        assert!(text.starts_with(&format!(
            "{{\"smmsim_version\":\"{SMMSIM_VERSION}\",\"id\":\"a\""
        )));
        let read = parse_results(format!("{text}\n").as_bytes(), Path::new("r")).expect("ok");
        assert_eq!(read.lines.len(), 1);
        assert_eq!(read.lines[0].result.id, "a");
        assert_eq!(
            read.lines[0].result.scenario_hash.as_deref(),
            Some("0000000000000001")
        );
    }

    #[test]
    fn an_incomplete_last_line_is_dropped_and_a_bad_complete_one_is_named() {
        let good = line("a");
        let cut = &line("b")[..20];
        let read = parse_results(format!("{good}\n{cut}").as_bytes(), Path::new("r")).expect("ok");
        assert_eq!(read.lines.len(), 1);
        assert!(read.dropped_incomplete_line);
        assert_eq!(read.complete_bytes, good.len() as u64 + 1);

        let error = parse_results(format!("{good}\n{cut}\n").as_bytes(), Path::new("r.jsonl"))
            .expect_err("a bad complete line");
        assert!(error.to_string().starts_with("r.jsonl:2: "), "{error}");
        let error = parse_results(b"\xff\xfe\n", Path::new("r.jsonl")).expect_err("not UTF-8");
        assert!(error.to_string().starts_with("r.jsonl:1: "), "{error}");
    }

    #[test]
    fn another_version_is_refused_with_both_versions_named() {
        let text = line("a").replace(SMMSIM_VERSION, "0.0.0-other");
        let error =
            parse_results(format!("\n{text}\n").as_bytes(), Path::new("old.jsonl")).expect_err("");
        let message = error.to_string();
        assert!(message.starts_with("old.jsonl:2: written by smmsim 0.0.0-other"));
        assert!(message.contains(SMMSIM_VERSION));
    }

    #[test]
    fn resuming_skips_jobs_recorded_with_the_same_id_and_hash() {
        let job = |id: &str, hash: u64| Job {
            id: id.to_owned(),
            source: PathBuf::from("s"),
            parameters: Parameters::default(),
            scenario_hash: Some(hash),
            scenario: Err(String::new()),
        };
        let recorded = |id: &str, hash: u64, outcome: Outcome| {
            let mut line = ResultLine::empty(id, Path::new("s"), Parameters::default(), Some(hash));
            line.outcome = outcome;
            let text = serde_json::to_string(&line).expect("serializable");
            format!("{text}\n")
        };
        let text = recorded("a", 1, Outcome::Failed)
            + &recorded("b", 7, Outcome::Passed)
            + &recorded("a", 1, Outcome::Passed);
        let file = parse_results(text.as_bytes(), Path::new("r")).expect("readable");
        let (done, todo) = file.split_done(vec![job("a", 1), job("b", 2), job("c", 3)]);
        // `a` is done, its last line counting; `b` was edited since; `c` never ran.
        assert_eq!(done.len(), 1);
        assert_eq!(
            (done[0].id.as_str(), done[0].outcome),
            ("a", Outcome::Passed)
        );
        let todo: Vec<&str> = todo.iter().map(|job| job.id.as_str()).collect();
        assert_eq!(todo, ["b", "c"]);
    }

    #[test]
    fn a_failed_line_gives_its_first_reason() {
        let mut result = ResultLine::empty("a", Path::new("s"), Parameters::default(), None);
        result.outcome = Outcome::Failed;
        result.expectations = vec![
            ExpectationLine {
                expected: "exit status 1".to_owned(),
                passed: true,
                detail: String::new(),
            },
            ExpectationLine {
                expected: "console line `x`".to_owned(),
                passed: false,
                detail: "never printed".to_owned(),
            },
        ];
        assert_eq!(
            result.reason().as_deref(),
            Some("expected console line `x`: never printed")
        );
        result.outcome = Outcome::Passed;
        assert_eq!(result.reason(), None);
    }
}
