//! Running the jobs of a batch several at a time, each to a result line, whatever happens
//! inside the simulator.
//!
//! 1. [`run_jobs`] puts every job on a channel and starts a few worker threads (`--jobs`,
//!    by default the host's cores). Each scenario's machine runs its cores on threads of
//!    its own, so the pool is small: it bounds how many machines run at once;
//! 2. each worker takes the next job and runs it through [`catch_panic`], so a panic in the
//!    simulator becomes a `crashed` result carrying the panic's message and place, and the
//!    worker goes on with the next job;
//! 3. results come back over a second channel to the calling thread, which hands each to
//!    the caller's `on_result` (to be written and flushed) as it arrives, in the order the
//!    scenarios finish. If `on_result` fails (the disk is full), no further job starts.
//!
//! [`execute`] is what a worker does with one job: an invalid scenario becomes an `invalid`
//! result; a valid one is built and run (`scenario_run::run_scenario`), with its trace
//! written under `--traces`, and judged.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Once;
use std::time::Instant;

use crossbeam::channel::unbounded;

use super::results::{Outcome, ResultLine};
use super::traces::trace_path;
use super::Job;
use crate::recorder::EventConsumer;
use crate::scenario::Scenario;
use crate::scenario_run::run_scenario;
use crate::trace_file::TraceFile;

/// Host stack of a worker thread: as much as a main thread gets, since the machine's own
/// loop (and any core the host refused a thread) runs on it.
const WORKER_STACK_BYTES: usize = 8 << 20;

/// How a batch runs its jobs.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Scenarios run at once (at least one is).
    pub workers: usize,
    /// Where each scenario's trace goes (`--traces`), if anywhere.
    pub traces: Option<PathBuf>,
}

thread_local! {
    /// Whether a panic on this thread is being caught by [`catch_panic`].
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The first caught panic's message and place.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that keeps quiet about panics [`catch_panic`]
/// catches (recording their message and place instead) and leaves every other panic to the
/// hook that was there before.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let place = info
                    .location()
                    .map_or_else(String::new, |location| format!(" at {location}"));
                let message = format!("panicked{place}: {}", payload_text(info.payload()));
                CAUGHT.with(|caught| {
                    caught.borrow_mut().get_or_insert(message);
                });
            } else {
                previous(info);
            }
        }));
    });
}

/// The text of a panic payload: the message of `panic!` with a string, or a stand-in.
fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs `f`, turning a panic on this thread into `Err` with its message and place
/// (`panicked at sim/src/x.rs:10:5: …`), printed nowhere.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_panic_hook();
    let was_catching = CATCHING.with(|catching| catching.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|catching| catching.set(was_catching));
    let caught = CAUGHT.with(|caught| caught.borrow_mut().take());
    result.map_err(|payload| caught.unwrap_or_else(|| payload_text(payload.as_ref())))
}

/// Runs every job with `execute` on `options.workers` threads (steps 1–3 of the module
/// doc); `on_result` sees each result on the calling thread as it arrives. Returns the
/// first error of `on_result`, once the jobs already running have ended.
pub fn run_jobs<E>(
    jobs: Vec<Job>,
    options: &RunOptions,
    execute: impl Fn(&Job, &RunOptions) -> ResultLine + Sync,
    mut on_result: impl FnMut(ResultLine) -> Result<(), E>,
) -> Result<(), E> {
    let workers = options.workers.clamp(1, jobs.len().max(1));
    let (job_tx, job_rx) = unbounded::<Job>();
    for job in jobs {
        // The receiver is alive: the send cannot fail.
        let _ = job_tx.send(job);
    }
    drop(job_tx);
    let guarded = |job: &Job| guarded_execute(job, options, &execute);
    std::thread::scope(|scope| {
        let (result_tx, result_rx) = unbounded::<ResultLine>();
        let mut started = 0;
        for index in 0..workers {
            let jobs = job_rx.clone();
            let results = result_tx.clone();
            let guarded = &guarded;
            let spawned = std::thread::Builder::new()
                .name(format!("batch-worker-{index}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    for job in jobs {
                        if results.send(guarded(&job)).is_err() {
                            break;
                        }
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        drop(result_tx);
        if started == 0 {
            // The host refused every thread: run the jobs here, one at a time.
            for job in job_rx.try_iter() {
                on_result(guarded(&job))?;
            }
            return Ok(());
        }
        let mut outcome = Ok(());
        for result in result_rx {
            if outcome.is_ok() {
                outcome = on_result(result);
                if outcome.is_err() {
                    // Start nothing more; the workers finish what they are running.
                    while job_rx.try_recv().is_ok() {}
                }
            }
        }
        outcome
    })
}

/// `execute` with a panic turned into a `crashed` result.
fn guarded_execute(
    job: &Job,
    options: &RunOptions,
    execute: &(impl Fn(&Job, &RunOptions) -> ResultLine + Sync),
) -> ResultLine {
    let started = Instant::now();
    catch_panic(|| execute(job, options)).unwrap_or_else(|message| {
        let mut line = ResultLine::empty(
            &job.id,
            &job.source,
            job.parameters.clone(),
            job.scenario_hash,
        );
        line.outcome = Outcome::Crashed;
        line.message = Some(message);
        if let (Some(dir), Ok(_)) = (&options.traces, &job.scenario) {
            // The trace written up to the panic is kept: it shows what led there.
            line.trace = Some(trace_path(dir, &job.id).to_string_lossy().into_owned());
        }
        line.host_seconds = started.elapsed().as_secs_f64();
        line
    })
}

/// Runs one job to its result line: `invalid` without running when the scenario is not
/// valid; otherwise the scenario run with its console discarded and, under `--traces`, its
/// trace written, then judged.
pub fn execute(job: &Job, options: &RunOptions) -> ResultLine {
    let started = Instant::now();
    let mut line = ResultLine::empty(
        &job.id,
        &job.source,
        job.parameters.clone(),
        job.scenario_hash,
    );
    match &job.scenario {
        Err(message) => {
            line.outcome = Outcome::Invalid;
            line.message = Some(message.clone());
        }
        Ok(scenario) => run_into(&mut line, job, scenario, options),
    }
    line.host_seconds = started.elapsed().as_secs_f64();
    line
}

/// Runs a valid scenario and records the run in `line`.
fn run_into(line: &mut ResultLine, job: &Job, scenario: &Scenario, options: &RunOptions) {
    let mut trace = None;
    if let Some(dir) = &options.traces {
        let path = trace_path(dir, &job.id);
        let mut config = scenario.machine_config();
        config.hotadd_reset = scenario.machine.hotadd_reset;
        let header = crate::trace_header(
            &config,
            scenario.machine.strategy.name(),
            scenario.scenario_hash(),
        );
        match TraceFile::create(&path, &header) {
            Ok(file) => {
                line.trace = Some(path.to_string_lossy().into_owned());
                trace = Some(file);
            }
            Err(error) => line.trace_error = Some(error_chain(&error)),
        }
    }
    let report = run_scenario(
        scenario,
        Box::new(std::io::sink()),
        trace.as_mut().map(|file| file as &mut dyn EventConsumer),
        false,
    );
    if let Some(file) = trace {
        if let Err(error) = file.finish() {
            line.trace_error = Some(error_chain(&error));
        }
    }
    match report {
        Ok(report) => line.record_report(&report),
        Err(error) => {
            line.outcome = Outcome::Invalid;
            line.message = Some(error_chain(&error));
        }
    }
}

/// An error and its causes on one line, `: `-separated, as a result line carries it.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::results::Parameters;
    use std::path::Path;

    fn job(id: &str, scenario: Result<Scenario, String>) -> Job {
        Job {
            id: id.to_owned(),
            source: PathBuf::from("s.toml"),
            parameters: Parameters::default(),
            scenario_hash: None,
            scenario,
        }
    }

    #[test]
    fn a_panic_is_caught_with_its_message_and_place_and_printed_nowhere() {
        let caught = catch_panic(|| -> u32 { panic!("core {} lost", 3) });
        let message = caught.expect_err("panicked");
        assert!(message.starts_with("panicked at "), "{message}");
        assert!(message.contains("runner.rs"), "{message}");
        assert!(message.ends_with(": core 3 lost"), "{message}");
        assert_eq!(catch_panic(|| 5), Ok(5));
    }

    #[test]
    fn every_job_gets_one_result_and_a_panic_does_not_stop_the_batch() {
        let jobs: Vec<Job> = (0..9)
            .map(|i| job(&format!("j{i}"), Err(String::new())))
            .collect();
        let options = RunOptions {
            workers: 3,
            traces: Some(PathBuf::from("t")),
        };
        let execute = |job: &Job, _: &RunOptions| {
            if job.id == "j4" {
                panic!("boom in {}", job.id);
            }
            let mut line = ResultLine::empty(&job.id, &job.source, Parameters::default(), None);
            line.outcome = Outcome::Passed;
            line
        };
        let mut seen = Vec::new();
        run_jobs(jobs, &options, execute, |line| {
            seen.push(line);
            Ok::<(), ()>(())
        })
        .expect("no write error");
        seen.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(seen.len(), 9);
        let crashed = &seen[4];
        assert_eq!(crashed.outcome, Outcome::Crashed);
        assert!(
            crashed
                .message
                .as_deref()
                .is_some_and(|m| m.ends_with("boom in j4")),
            "{:?}",
            crashed.message
        );
        // An invalid scenario has no trace to point to.
        assert_eq!(crashed.trace, None);
        assert!(seen.iter().filter(|l| l.outcome == Outcome::Passed).count() == 8);
    }

    #[test]
    fn a_failing_on_result_stops_new_jobs_and_is_returned() {
        let jobs: Vec<Job> = (0..50)
            .map(|i| job(&format!("j{i}"), Err(String::new())))
            .collect();
        let options = RunOptions {
            workers: 2,
            traces: None,
        };
        let mut calls = 0;
        let outcome = run_jobs(jobs, &options, execute, |_| {
            calls += 1;
            Err("disk full")
        });
        assert_eq!(outcome, Err("disk full"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn an_invalid_scenario_is_recorded_without_running() {
        let line = execute(
            &job("bad.toml", Err("bad.toml:3: cpus = 0".to_owned())),
            &RunOptions::default(),
        );
        assert_eq!(line.outcome, Outcome::Invalid);
        assert_eq!(line.message.as_deref(), Some("bad.toml:3: cpus = 0"));
        assert_eq!(line.source, "s.toml");
        assert!(Path::new(&line.source).extension().is_some());
    }
}
