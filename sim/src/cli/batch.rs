//! `smmsim batch`: many scenarios, several at a time, one result line each, with progress
//! and a summary (the flow is in `smmsim::batch`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use smmsim::batch::inputs;
use smmsim::batch::progress::{stderr_line, Progress};
use smmsim::batch::results::{OpenMode, ResultLine, ResultsError, ResultsWriter};
use smmsim::batch::runner::{execute, run_jobs, RunOptions};
use smmsim::batch::shard::Shard;
use smmsim::batch::summary::Summary;
use smmsim::batch::traces;

/// Exit status of `smmsim batch` when a scenario failed, crashed or was invalid.
pub const EXIT_NOT_ALL_PASSED: u8 = 1;

/// `smmsim batch` options.
#[derive(clap::Args)]
#[command(after_help = "\
Inputs: scenario files, directories (the *.toml files directly in them) and matrix files. A
matrix file expands a [base] scenario over [matrix] axes — strategy, maxcpus, profile,
pattern (single, back-to-back, sequential, add-remove-add) and seed — into one scenario per
combination; see scenarios/matrices/hotadd.toml. A scenario file's id is its path as given, a
matrix scenario's `NAME/strategy=formula,maxcpus=64,…`.

Results: one JSON object per line and scenario, written and flushed as the scenario ends:
smmsim version, id, parameters, outcome (passed, failed, crashed, invalid), expectations,
boot cycles, hot-add latencies, SMM time, SMI counts, violations, host seconds. A killed
batch keeps every finished line; run the same command with --resume to do the rest. A
scenario that does not parse is recorded as invalid, a simulator panic as crashed, and the
batch goes on.

Shards: --shard K/N sorts every scenario id and runs every N-th from the K-th (K from 1).
Without --shard, a Slurm array task (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT) or a
Kubernetes indexed Job pod (JOB_COMPLETION_INDEX, 0-based, with SMMSIM_SHARD_COUNT) runs its
own slice, and --shard 1/1 runs everything. Join the shards' files with `smmsim merge`.

Progress goes to stderr (a bar on a terminal, one line per scenario otherwise), the summary
(counts, host time, mean boot and hot-add latency per strategy) to stdout.

Exit status: 0 every scenario passed, 1 one failed, crashed or was invalid, 2 bad input
(nothing ran): a missing input, a matrix that expands to nothing, a bad shard, an
unwritable results file or traces directory, results of another smmsim version.

Examples:
  smmsim batch scenarios/                        every scenario file, one per core
  smmsim batch scenarios/ --jobs 2 --out r.jsonl --traces traces/
  smmsim batch scenarios/matrices/hotadd.toml --out hotadd.jsonl
  smmsim batch scenarios/matrices/hotadd.toml --out hotadd.jsonl --resume
  smmsim batch scenarios/matrices/hotadd.toml --shard 3/8   writes results-3-of-8.jsonl
  smmsim merge results-*-of-8.jsonl -o all.jsonl")]
pub struct BatchArgs {
    /// Scenario files, directories of them and matrix files.
    #[arg(required = true, value_name = "SCENARIO|DIR|MATRIX")]
    inputs: Vec<PathBuf>,
    /// How many scenarios run at once [default: the host's cores].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// The results file, JSON Lines [default: results.jsonl, or results-K-of-N.jsonl for a
    /// shard].
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// Keep the results already in the results file, skip their scenarios, append the rest.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start the results file afresh when it already exists.
    #[arg(long)]
    overwrite: bool,
    /// Write each scenario's trace to DIR/<id, sanitized>-<hash>.smmtrace (DIR created if
    /// missing); each result line names its file.
    #[arg(long, value_name = "DIR")]
    traces: Option<PathBuf>,
    /// Run only slice K of N (K from 1): every N-th of the sorted scenario ids.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
}

/// Runs `smmsim batch`.
pub fn batch(args: BatchArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // 1. Everything that can be wrong with the input is found before anything runs.
    let shard = match args.shard {
        Some(shard) => Some((shard, "--shard".to_owned())),
        None => Shard::from_env(|name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })?,
    };
    let all = inputs::expand(&args.inputs)?;
    let all_count = all.len();
    if all.is_empty() {
        anyhow::bail!("the inputs hold no scenario");
    }
    let jobs = match &shard {
        Some((shard, _)) => {
            let ids: Vec<&str> = all.iter().map(|job| job.id.as_str()).collect();
            let keep = shard.select(&ids);
            all.into_iter()
                .zip(keep)
                .filter_map(|(job, keep)| keep.then_some(job))
                .collect()
        }
        None => all,
    };
    if let Some(dir) = &args.traces {
        traces::prepare_dir(dir)?;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_out(shard.as_ref().map(|(s, _)| *s)));
    let mode = if args.resume {
        OpenMode::Resume
    } else if args.overwrite {
        OpenMode::Overwrite
    } else {
        OpenMode::Fresh
    };
    let (mut writer, recorded) = ResultsWriter::open(&out, mode)?;

    // 2. What an earlier run of the batch recorded (same id, same scenario text) is kept.
    let (done, todo) = recorded.split_done(jobs);
    let mut summary = Summary::of(&done);
    let workers = args.jobs.map_or_else(host_cores, usize::from);
    stderr_line(&plan_line(
        &shard,
        all_count,
        summary.counts.total(),
        todo.len(),
        workers,
        &out,
    ));
    if recorded.dropped_incomplete_line {
        stderr_line(&format!(
            "smmsim batch: dropped the incomplete last line of {} (its scenario runs again)",
            out.display()
        ));
    }

    // 3. Run, writing each result as it comes.
    let mut progress = Progress::new(todo.len() as u64, std::io::stderr().is_terminal());
    let options = RunOptions {
        workers,
        traces: args.traces.clone(),
    };
    let written = run_jobs(todo, &options, execute, |line: ResultLine| {
        writer.append(&line)?;
        progress.finished(&line);
        summary.add(&line);
        Ok::<(), ResultsError>(())
    });
    progress.finish();
    written?;

    // 4. The summary, and the verdict.
    // A closed stdout loses the summary, not the results (they are in the file).
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}results: {}",
        summary.render(Some(started.elapsed())),
        writer.path().display()
    );
    Ok(if summary.counts.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_ALL_PASSED)
    })
}

/// The results file when `--out` is not given: `results.jsonl`, or `results-K-of-N.jsonl`
/// for a shard, so that shards sharing a directory do not share a file.
fn default_out(shard: Option<Shard>) -> PathBuf {
    match shard {
        Some(shard) => PathBuf::from(format!(
            "results-{}-of-{}.jsonl",
            shard.index(),
            shard.count()
        )),
        None => PathBuf::from("results.jsonl"),
    }
}

/// The host's cores, or 1 when the host does not say.
fn host_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The batch's first line on stderr: what it runs, where from, and where results go.
fn plan_line(
    shard: &Option<(Shard, String)>,
    all: usize,
    recorded: u64,
    todo: usize,
    workers: usize,
    out: &Path,
) -> String {
    let mut line = format!("smmsim batch: {all} scenarios");
    if let Some((shard, from)) = shard {
        line.push_str(&format!(
            ", shard {shard} (from {from}) holds {}",
            recorded + todo as u64
        ));
    }
    if recorded > 0 {
        line.push_str(&format!(", {recorded} already in {}", out.display()));
    }
    if todo == 0 {
        line.push_str(&format!(
            "; nothing left to run; results in {}",
            out.display()
        ));
    } else {
        line.push_str(&format!(
            "; running {todo}, {} at a time; results to {}",
            workers.min(todo),
            out.display()
        ));
    }
    line
}
