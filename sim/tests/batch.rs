//! `smmsim batch` and `smmsim merge` through the binary: one parsable result line per
//! scenario, `--resume` after a kill, matrices, shards that cover a batch disjointly, merging
//! them, the exit statuses, and every bad input refused before anything runs.
//!
//! Every scenario here boots the built-in `boot` image at maxcpus 4 (well under a second
//! each, even unoptimized), so the whole file runs in a few seconds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use smmsim::batch::matrix::Matrix;

/// A directory in the temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("smmsim-batch-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the temporary directory is writable");
        TempDir(path)
    }

    /// Writes `text` to the file `name` in the directory.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("writable");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `smmsim` with `args` in `dir`, with no job-array variables unless `env` sets them.
fn smmsim_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smmsim"));
    command.current_dir(dir).args(args);
    for name in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_STEP",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "SMMSIM_SHARD_COUNT",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("the smmsim binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The lines of a results file, parsed; every line must parse.
fn results(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("a results file");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect()
}

fn ids(lines: &[Value]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|line| line["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// A one-hot-add scenario at maxcpus 4 under `strategy`, with `expect` appended.
fn scenario(strategy: &str, expect: &str) -> String {
    format!(
        "[machine]\ncpus = 1\nmaxcpus = 4\nstrategy = \"{strategy}\"\n\
         hotadd_reset = {}\n\n\
         [[event]]\nat = \"10ms\"\naction = \"cpu-add\"\napic_id = 2\n\n\
         [expect]\nsmbase = \"unique-in-tseg\"\nonline = [0, 2]\nstatus = 1\n{expect}",
        strategy != "max-cpus"
    )
}

/// Three quick passing scenarios in `dir/scenarios/`.
fn three_scenarios(dir: &TempDir) {
    std::fs::create_dir_all(dir.path("scenarios")).expect("creatable");
    for strategy in ["formula", "controller", "smbase-smram"] {
        dir.write(
            &format!("scenarios/{strategy}.toml"),
            &scenario(strategy, ""),
        );
    }
}

/// 2 strategies × 2 patterns × 2 seeds at maxcpus 4: 8 scenarios, events at the default
/// times.
const MATRIX: &str = "name = \"quick\"\n\
    [base]\nmachine = { cpus = 1, maxcpus = 4 }\n\
    [matrix]\n\
    strategy = [\"formula\", \"max-cpus\"]\n\
    pattern = [\"single\", \"add-remove-add\"]\n\
    seed = [1, 2]\n";

/// Checks that `output` is a bad-input refusal naming `needle`, with nothing run.
fn assert_refused(output: &Output, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("] passed"), "nothing may run: {err}");
    assert!(stdout(output).is_empty(), "no summary: {}", stdout(output));
}

#[test]
fn a_small_batch_writes_one_line_per_scenario_and_resume_skips_them() {
    let dir = TempDir::new();
    three_scenarios(&dir);
    let output = smmsim_in(
        &dir.0,
        &["batch", "scenarios", "--jobs", "2", "--out", "r.jsonl"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines = results(&dir.path("r.jsonl"));
    assert_eq!(lines.len(), 3);
    assert_eq!(
        ids(&lines),
        ["controller", "formula", "smbase-smram"]
            .map(|s| format!("scenarios/{s}.toml"))
            .into()
    );
    for line in &lines {
        assert_eq!(line["smmsim_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(line["outcome"], "passed", "{line}");
        assert_eq!(line["parameters"]["maxcpus"], 4);
        assert!(
            line["boot_cycles"].as_u64().is_some_and(|c| c > 0),
            "{line}"
        );
        assert_eq!(line["hotplug"][0]["action"], "cpu-add");
        assert!(
            line["hotplug"][0]["latency_cycles"].as_u64().is_some(),
            "{line}"
        );
        assert!(line["smm_cycles"].as_u64().is_some(), "{line}");
        assert!(line["smis_by_source"].is_object(), "{line}");
        assert_eq!(line["violations"]["refused_actions"], Value::Array(vec![]));
        assert_eq!(line["violations"]["verdict"], "blocked");
        assert_eq!(line["violations"]["total"], 0);
        assert!(line["host_seconds"].as_f64().is_some_and(|s| s > 0.0));
        assert_eq!(line["scenario_hash"].as_str().map(str::len), Some(16));
    }
    let summary = stdout(&output);
    assert!(
        summary.starts_with("3 scenarios: 3 passed, 0 failed, 0 crashed, 0 invalid\n"),
        "{summary}"
    );
    for strategy in ["formula", "controller", "smbase-smram"] {
        assert!(summary.contains(&format!("\n{strategy} ")), "{summary}");
    }
    // Plain progress lines, since stderr is not a terminal.
    assert!(
        stderr(&output).contains("[1/3] passed"),
        "{}",
        stderr(&output)
    );

    // Run again: without --resume the results file is protected; with it nothing runs.
    let again = smmsim_in(&dir.0, &["batch", "scenarios", "--out", "r.jsonl"], &[]);
    assert_refused(&again, "already exists: pass --resume");
    let resumed = smmsim_in(
        &dir.0,
        &["batch", "scenarios", "--out", "r.jsonl", "--resume"],
        &[],
    );
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("3 already in r.jsonl; nothing left to run"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(results(&dir.path("r.jsonl")), lines);
    assert!(stdout(&resumed).starts_with("3 scenarios: 3 passed"));

    // An edited scenario (a new hash under the same id) runs again.
    dir.write(
        "scenarios/formula.toml",
        &scenario("formula", "console = [\"cpu 00000002 online\"]\n"),
    );
    let edited = smmsim_in(
        &dir.0,
        &["batch", "scenarios", "--out", "r.jsonl", "--resume"],
        &[],
    );
    assert_eq!(edited.status.code(), Some(0), "{}", stderr(&edited));
    assert!(
        stderr(&edited).contains("running 1,"),
        "{}",
        stderr(&edited)
    );
    assert_eq!(results(&dir.path("r.jsonl")).len(), 4);
    assert!(stdout(&edited).starts_with("3 scenarios: 3 passed"));
}

#[test]
fn resume_after_a_kill_keeps_finished_lines_and_runs_the_rest() {
    let dir = TempDir::new();
    three_scenarios(&dir);
    let output = smmsim_in(&dir.0, &["batch", "scenarios", "--out", "full.jsonl"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let full = std::fs::read_to_string(dir.path("full.jsonl")).expect("written");
    // What a kill leaves: one finished line and half of the next.
    let mut lines = full.lines();
    let first = lines.next().expect("a line");
    let second = lines.next().expect("a line");
    dir.write(
        "killed.jsonl",
        &format!("{first}\n{}", &second[..second.len() / 2]),
    );
    let resumed = smmsim_in(
        &dir.0,
        &["batch", "scenarios", "--out", "killed.jsonl", "--resume"],
        &[],
    );
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let err = stderr(&resumed);
    assert!(err.contains("dropped the incomplete last line"), "{err}");
    assert!(
        err.contains("1 already in killed.jsonl; running 2"),
        "{err}"
    );
    let after = std::fs::read_to_string(dir.path("killed.jsonl")).expect("written");
    assert!(
        after.starts_with(&format!("{first}\n")),
        "the finished line is kept as it was"
    );
    let lines = results(&dir.path("killed.jsonl"));
    assert_eq!(lines.len(), 3);
    assert_eq!(ids(&lines).len(), 3);
}

#[test]
fn a_matrix_expands_to_every_combination_with_stable_ids() {
    let dir = TempDir::new();
    dir.write("quick.toml", MATRIX);
    let output = smmsim_in(&dir.0, &["batch", "quick.toml", "--out", "m.jsonl"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines = results(&dir.path("m.jsonl"));
    assert_eq!(lines.len(), 8);
    let mut expected = BTreeSet::new();
    for strategy in ["formula", "max-cpus"] {
        for pattern in ["single", "add-remove-add"] {
            for seed in [1, 2] {
                expected.insert(format!(
                    "quick/strategy={strategy},pattern={pattern},seed={seed}"
                ));
            }
        }
    }
    assert_eq!(ids(&lines), expected);
    for line in &lines {
        assert_eq!(line["outcome"], "passed", "{line}");
        let parameters = &line["parameters"];
        assert!(parameters["pattern"].is_string() && parameters["seed"].is_u64());
        let offset = parameters["event_offset_cycles"].as_u64().expect("seeded");
        // The default jitter is 100 µs: at most 200,000 cycles at 2 GHz.
        assert!(offset <= 200_000, "{offset}");
        // The default start: 20 ms + 100 µs × maxcpus, at 2 GHz.
        assert_eq!(line["hotplug"][0]["start_cycle"], 40_800_000 + offset);
        let adds = if parameters["pattern"] == "single" {
            1
        } else {
            3
        };
        assert_eq!(line["hotplug"].as_array().map(Vec::len), Some(adds));
        assert_eq!(line["source"], "quick.toml");
    }
}

#[test]
fn shards_cover_the_batch_disjointly_and_merge_joins_them() {
    let dir = TempDir::new();
    dir.write("quick.toml", MATRIX);
    // Slice 1 from --shard, slice 2 as a Slurm array task with indices 1-2 would get it.
    let first = smmsim_in(&dir.0, &["batch", "quick.toml", "--shard", "1/2"], &[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let second = smmsim_in(
        &dir.0,
        &["batch", "quick.toml"],
        &[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ],
    );
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(stderr(&second).contains("shard 2/2 (from SLURM_ARRAY_TASK_ID=2"));
    let a = ids(&results(&dir.path("results-1-of-2.jsonl")));
    let b = ids(&results(&dir.path("results-2-of-2.jsonl")));
    assert_eq!((a.len(), b.len()), (4, 4));
    assert!(a.is_disjoint(&b));
    // A Kubernetes indexed Job's pod 0 gets slice 1 again.
    let pod = smmsim_in(
        &dir.0,
        &["batch", "quick.toml", "--out", "pod0.jsonl"],
        &[("JOB_COMPLETION_INDEX", "0"), ("SMMSIM_SHARD_COUNT", "2")],
    );
    assert_eq!(pod.status.code(), Some(0), "{}", stderr(&pod));
    assert_eq!(ids(&results(&dir.path("pod0.jsonl"))), a);

    // Merging both shards, and slice 1 twice, gives every scenario once.
    let merged = smmsim_in(
        &dir.0,
        &[
            "merge",
            "results-1-of-2.jsonl",
            "results-2-of-2.jsonl",
            "pod0.jsonl",
            "-o",
            "all.jsonl",
        ],
        &[],
    );
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    assert!(stderr(&merged).contains("8 results from 12 lines in 3 files (4 duplicates dropped)"));
    let all = results(&dir.path("all.jsonl"));
    assert_eq!(all.len(), 8);
    assert_eq!(ids(&all), a.union(&b).cloned().collect());
    let listed: Vec<String> = all.iter().map(|l| l["id"].to_string()).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "merged lines are sorted by id");
    let summary = stdout(&merged);
    assert!(
        summary.starts_with("8 scenarios: 8 passed, 0 failed, 0 crashed, 0 invalid\n"),
        "{summary}"
    );
    assert!(summary.contains("\nformula "), "{summary}");
    assert!(summary.contains("\nmax-cpus "), "{summary}");
}

#[test]
fn an_unmet_expectation_fails_the_batch_and_every_other_result_is_kept() {
    let dir = TempDir::new();
    three_scenarios(&dir);
    dir.write(
        "scenarios/unmet.toml",
        &scenario("formula", "console = [\"a line the guest never prints\"]\n"),
    );
    dir.write("scenarios/invalid.toml", "[machine]\ncpus = 0\n");
    let output = smmsim_in(
        &dir.0,
        &["batch", "scenarios", "-j", "2", "-o", "r.jsonl"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let lines = results(&dir.path("r.jsonl"));
    assert_eq!(lines.len(), 5);
    let outcome = |id: &str| {
        lines
            .iter()
            .find(|line| line["id"] == format!("scenarios/{id}.toml"))
            .map(|line| line["outcome"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(outcome("unmet").as_deref(), Some("failed"));
    assert_eq!(outcome("invalid").as_deref(), Some("invalid"));
    assert_eq!(outcome("formula").as_deref(), Some("passed"));
    let invalid = lines
        .iter()
        .find(|line| line["outcome"] == "invalid")
        .expect("the invalid line");
    assert!(
        invalid["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid.toml:2: cpus = 0")),
        "{invalid}"
    );
    let summary = stdout(&output);
    assert!(summary.starts_with("5 scenarios: 3 passed, 1 failed, 0 crashed, 1 invalid\n"));
    assert!(
        summary.contains("failed   scenarios/unmet.toml: expected console line"),
        "{summary}"
    );
}

#[test]
fn traces_are_written_one_per_scenario_where_the_results_say() {
    let dir = TempDir::new();
    dir.write("one.toml", &scenario("controller", ""));
    let output = smmsim_in(
        &dir.0,
        &[
            "batch",
            "one.toml",
            "--traces",
            "traces/new",
            "-o",
            "r.jsonl",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let line = &results(&dir.path("r.jsonl"))[0];
    let trace = line["trace"].as_str().expect("a trace path");
    assert!(trace.starts_with("traces/new/one.toml-") && trace.ends_with(".smmtrace"));
    let stats = smmsim_in(&dir.0, &["trace", "stats", trace], &[]);
    assert_eq!(stats.status.code(), Some(0), "{}", stderr(&stats));
}

#[test]
fn bad_inputs_are_refused_before_anything_runs() {
    let dir = TempDir::new();
    three_scenarios(&dir);
    dir.write("empty.toml", "[base]\n[matrix]\nstrategy = []\n");
    assert_refused(
        &smmsim_in(&dir.0, &["batch", "scenarios", "empty.toml"], &[]),
        "empty.toml:3: [matrix] strategy = []: the matrix expands to zero scenarios",
    );
    assert_refused(
        &smmsim_in(&dir.0, &["batch", "scenarios", "--shard", "3/2"], &[]),
        "K = 3 is greater than N = 2",
    );
    assert_refused(
        &smmsim_in(
            &dir.0,
            &["batch", "scenarios"],
            &[("JOB_COMPLETION_INDEX", "5"), ("SMMSIM_SHARD_COUNT", "2")],
        ),
        "JOB_COMPLETION_INDEX=5 is not below SMMSIM_SHARD_COUNT=2",
    );
    assert_refused(
        &smmsim_in(
            &dir.0,
            &["batch", "scenarios", "--out", "no/such/dir/r.jsonl"],
            &[],
        ),
        "cannot write results file no/such/dir/r.jsonl",
    );
    assert_refused(
        &smmsim_in(&dir.0, &["batch", "scenarios", "missing.toml"], &[]),
        "cannot find scenario input missing.toml",
    );
    assert!(
        !dir.path("results.jsonl").exists(),
        "no results file was started"
    );

    // Results of another version: refused by merge and by --resume.
    let output = smmsim_in(&dir.0, &["batch", "scenarios", "--out", "r.jsonl"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let ours = std::fs::read_to_string(dir.path("r.jsonl")).expect("written");
    let version = format!("\"smmsim_version\":\"{}\"", env!("CARGO_PKG_VERSION"));
    dir.write(
        "old.jsonl",
        &ours.replace(&version, "\"smmsim_version\":\"0.0.1\""),
    );
    let merged = smmsim_in(
        &dir.0,
        &["merge", "r.jsonl", "old.jsonl", "-o", "all.jsonl"],
        &[],
    );
    assert_refused(&merged, "old.jsonl:1: written by smmsim 0.0.1");
    assert!(!dir.path("all.jsonl").exists());
    assert_refused(
        &smmsim_in(
            &dir.0,
            &["batch", "scenarios", "--out", "old.jsonl", "--resume"],
            &[],
        ),
        "written by smmsim 0.0.1",
    );
    assert_refused(
        &smmsim_in(&dir.0, &["merge", "missing.jsonl"], &[]),
        "cannot read results file missing.jsonl",
    );
}

#[test]
fn help_teaches_with_examples() {
    for command in ["batch", "merge"] {
        let output = smmsim_in(Path::new("."), &[command, "--help"], &[]);
        assert_eq!(output.status.code(), Some(0));
        let help = stdout(&output);
        assert!(help.contains("Examples:"), "{help}");
        assert!(help.contains("Exit status:"), "{help}");
    }
}

#[test]
fn the_example_matrix_expands_to_valid_scenarios() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/matrices/hotadd.toml");
    let text = std::fs::read_to_string(&path).expect("the example matrix");
    let matrix = Matrix::parse(&text, &path).expect("a valid matrix");
    let jobs = matrix.expand();
    assert_eq!(jobs.len(), 4 * 3 * 4 * 2);
    for job in &jobs {
        assert!(
            job.scenario.is_ok(),
            "{}: {:?}",
            job.id,
            job.scenario.as_ref().err()
        );
    }
}
