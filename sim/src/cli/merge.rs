//! `smmsim merge`: the results files of a sharded batch joined into one, de-duplicated, and
//! summarized (the rules are in `smmsim::batch::merge`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use smmsim::batch::merge::merge as merge_files;
use smmsim::batch::progress::stderr_line;

use crate::batch::EXIT_NOT_ALL_PASSED;

/// `smmsim merge` options.
#[derive(clap::Args)]
#[command(after_help = "\
Reads every file whole first: each line must be a result line written by this smmsim
version (results of different versions are refused, naming the file and line). An
incomplete last line, left by a killed shard, is dropped with a note. When an id appears
more than once, its last line wins (files in the order given, lines in file order). The
output holds one line per id, sorted by id, each line as it was read.

The summary (counts, host time, mean boot and hot-add latency per strategy) goes to stdout.

Exit status: 0 every scenario passed, 1 one failed, crashed or was invalid, 2 bad input.

Examples:
  smmsim merge results-*-of-8.jsonl -o all.jsonl
  smmsim merge all.jsonl                         just the summary")]
pub struct MergeArgs {
    /// Results files written by `smmsim batch`.
    #[arg(required = true, value_name = "RESULTS.jsonl")]
    files: Vec<PathBuf>,
    /// Write the joined results here (replaced if it exists); without it, only the summary.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Runs `smmsim merge`.
pub fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let merged = merge_files(&args.files)?;
    for path in &merged.incomplete {
        stderr_line(&format!(
            "smmsim merge: dropped the incomplete last line of {}",
            path.display()
        ));
    }
    if let Some(out) = &args.out {
        merged.write(out)?;
        stderr_line(&format!(
            "smmsim merge: {} results from {} lines in {} files ({} duplicates dropped) \
             written to {}",
            merged.lines.len(),
            merged.lines_read,
            args.files.len(),
            merged.duplicates,
            out.display()
        ));
    }
    let summary = merged.summary();
    // A closed stdout loses the summary, not the merged file.
    let _ = write!(std::io::stdout().lock(), "{}", summary.render(None));
    Ok(if summary.counts.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_ALL_PASSED)
    })
}
