//! `smmsim sweep`: boot every strategy at every max-CPU count; CSV, a table and an SVG plot.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use smmsim::machine::{human_nanos, DEFAULT_MAX_CYCLES};
use smmsim::scenario::Strategy;
use smmsim::sweep::plot::{render_svg, Measure};
use smmsim::sweep::{self, csv, Outcome, SweepRow, SweepSpec};
use smmsim::ExecMode;

use crate::machine_args::ModeArg;

/// Exit status of `smmsim sweep` when a point did not end `ok`.
pub const EXIT_POINT_FAILED: u8 = 1;

/// A `--strategies` value: the strategies, in order.
#[derive(Clone, Debug)]
pub struct StrategyList(Vec<Strategy>);

/// A `--maxcpus` value: the counts, ascending.
#[derive(Clone, Debug)]
pub struct MaxCpusList(Vec<u32>);

fn parse_strategy_list(text: &str) -> Result<StrategyList, sweep::SweepError> {
    sweep::parse_strategies(text).map(StrategyList)
}

fn parse_max_cpus_list(text: &str) -> Result<MaxCpusList, sweep::SweepError> {
    sweep::parse_max_cpus(text).map(MaxCpusList)
}

/// `smmsim sweep` options.
#[derive(clap::Args)]
#[command(after_help = "\
Each point boots the built-in `boot` image with no scenario events, so the guest exits right
after its boot report and the run's simulated cycles are the boot time. Strategy `max-cpus` at
maxcpus M has all M CPUs present at reset (that is the strategy) and keeps --present of them;
the other strategies have --present CPUs present. TSEG is sized for each point: maxcpus x 8 KiB
+ 32 KiB, rounded up to a power of two MiB, at least 16 MiB.

With --hotadd each point is run a second time with one cpu-add of the first absent CPU (APIC
ID = --present) at 1.5 x the measured boot time, and the latency from the add to the CPU's
`cpu N online` line, the SMIs and the SMM time of that window are reported too.

One line per finished point goes to stderr. The CSV goes to --out (or stdout); with --out, a
table goes to stdout. A point that fails (firmware error, cycle limit) is a row whose outcome
says so, and the sweep goes on.

CSV columns: strategy, maxcpus, present, tseg_mbytes, boot_cycles, boot_ms, smis,
smm_entries, smm_ms (summed over CPUs), host_seconds, outcome; with --hotadd also
hotadd_apic_id, hotadd_at_cycles, hotadd_latency_cycles, hotadd_latency_us, hotadd_smis,
hotadd_smm_entries, hotadd_smm_us, hotadd_host_seconds.

Exit status: 0 every point ok, 1 a point failed, 2 bad input (before anything boots).

Examples:
  smmsim sweep --out sweep.csv --plot sweep.svg
  smmsim sweep --strategies smbase-smram,max-cpus --maxcpus 1,16,256,4096
  smmsim sweep --hotadd --maxcpus 2,64,1024 --out hotadd.csv --plot hotadd.svg
  smmsim sweep --present 2 --maxcpus 2,8,32 --jobs 1 > sweep.csv")]
pub struct SweepArgs {
    /// Strategies to boot: `all`, or names separated by commas (smbase-smram, controller,
    /// formula, max-cpus).
    #[arg(long, value_name = "LIST", default_value = "all", value_parser = parse_strategy_list)]
    strategies: StrategyList,
    /// Max-CPU counts, 1 to 4096, separated by commas.
    #[arg(
        long,
        value_name = "LIST",
        default_value = "1,2,4,8,16,32,64,128,256,512,1024,2048,4096",
        value_parser = parse_max_cpus_list
    )]
    maxcpus: MaxCpusList,
    /// CPUs present at reset for every strategy but max-cpus (which has all present and
    /// keeps this many); at most the smallest max-CPU count.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    present: u32,
    /// Also measure one hot-add per point: latency, SMIs and SMM time of the window.
    #[arg(long)]
    hotadd: bool,
    /// Write the CSV here (`-` for stdout, the default) and print a table to stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Draw an SVG plot here: boot time (or hot-add latency) versus max CPUs per strategy.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Points run at once (default: the host's cores). Each point's machine runs its cores on
    /// their own threads either way, but in deterministic mode one at a time, so a point keeps
    /// about one host core busy. Points run at once share the host, which shows in their
    /// host_seconds: use --jobs 1 to measure host time per point.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    /// How each run's cores share the host: deterministic (bit-identical runs) or parallel.
    #[arg(long, value_enum, default_value_t = ModeArg::Deterministic)]
    mode: ModeArg,
    /// Cycle limit of each run.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CYCLES,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_cycles: u64,
}

/// Creates `path` for writing, or names it and why it cannot be.
fn create(path: &Path, what: &str) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("cannot write {what} {}", path.display()))
}

/// Where the CSV goes, with rows written in point order as they become available.
struct CsvOut {
    writer: Box<dyn Write>,
    hotadd: bool,
    /// Finished rows waiting for an earlier one.
    waiting: BTreeMap<usize, String>,
    next: usize,
    error: Option<io::Error>,
}

impl CsvOut {
    fn push(&mut self, index: usize, row: &SweepRow) {
        self.waiting.insert(index, csv::row(row, self.hotadd));
        while let Some(line) = self.waiting.remove(&self.next) {
            self.next += 1;
            if self.error.is_none() {
                // Flushed per row, so a long sweep's file fills as it goes.
                if let Err(error) =
                    writeln!(self.writer, "{line}").and_then(|_| self.writer.flush())
                {
                    self.error = Some(error);
                }
            }
        }
    }
}

/// Runs `smmsim sweep`.
pub fn sweep(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let spec = SweepSpec {
        strategies: args.strategies.0,
        max_cpus: args.maxcpus.0,
        present: args.present,
        hotadd: args.hotadd,
        mode: match args.mode {
            ModeArg::Deterministic => ExecMode::Deterministic,
            ModeArg::Parallel => ExecMode::Parallel,
        },
        max_cycles: args.max_cycles,
    };
    spec.check()?;
    // Every output is opened before the first boot, so a bad path costs no simulation.
    let out_path = args.out.filter(|path| path.as_os_str() != "-");
    let csv_writer: Box<dyn Write> = match &out_path {
        Some(path) => Box::new(BufWriter::new(create(path, "the CSV to")?)),
        None => Box::new(io::stdout()),
    };
    let plot_file = match &args.plot {
        Some(path) => Some(create(path, "the plot to")?),
        None => None,
    };
    let mut out = CsvOut {
        writer: csv_writer,
        hotadd: spec.hotadd,
        waiting: BTreeMap::new(),
        next: 0,
        error: None,
    };
    writeln!(out.writer, "{}", csv::header(spec.hotadd)).context("cannot write the CSV")?;

    let total = spec.points().len();
    let jobs = match args.jobs {
        Some(jobs) => jobs as usize,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    eprintln!(
        "smmsim sweep: {total} points ({} strategies x {} max-CPU counts{}), {} at a time",
        spec.strategies.len(),
        spec.max_cpus.len(),
        if spec.hotadd { ", with a hot-add" } else { "" },
        jobs.min(total)
    );
    let started = Instant::now();
    let mut done = 0;
    let rows = sweep::run_sweep(&spec, jobs, |index, row| {
        done += 1;
        eprintln!(
            "[{done:>width$}/{total}] {}",
            progress_line(row),
            width = total.to_string().len()
        );
        out.push(index, row);
    });
    let host_seconds = started.elapsed().as_secs_f64();
    if let Some(error) = out.error.take() {
        return Err(error).context("cannot write the CSV");
    }
    out.writer.flush().context("cannot write the CSV")?;
    drop(out);

    if let (Some(mut file), Some(path)) = (plot_file, &args.plot) {
        let (measure, title) = if spec.hotadd {
            (
                Measure::HotaddLatencyUs,
                format!(
                    "smmsim: latency of one hot-add vs max CPUs ({} present)",
                    spec.present
                ),
            )
        } else {
            (
                Measure::BootMs,
                format!(
                    "smmsim: simulated boot time vs max CPUs ({} present; max-cpus: all)",
                    spec.present
                ),
            )
        };
        let svg = render_svg(&rows, &spec.strategies, measure, &title)?;
        file.write_all(svg.as_bytes())
            .with_context(|| format!("cannot write the plot to {}", path.display()))?;
    }
    if out_path.is_some() {
        print!("{}", table(&rows, spec.hotadd));
    }
    let failed = rows
        .iter()
        .filter(|row| !matches!(row.outcome, Outcome::Ok | Outcome::NoHotadd))
        .count();
    let mut closing = format!(
        "smmsim sweep: {total} points in {host_seconds:.1} s host time, {} ok",
        total - failed
    );
    if failed > 0 {
        closing.push_str(&format!(", {failed} failed"));
    }
    if let Some(path) = &out_path {
        closing.push_str(&format!("; CSV in {}", path.display()));
    }
    if let Some(path) = &args.plot {
        closing.push_str(&format!("; plot in {}", path.display()));
    }
    eprintln!("{closing}");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_POINT_FAILED)
    })
}

fn nanos_text(ms: f64) -> String {
    human_nanos((ms * 1e6).round() as u128)
}

/// The progress line of a finished point.
fn progress_line(row: &SweepRow) -> String {
    let point = row.point;
    let mut line = format!(
        "{:<12} maxcpus {:>4}: ",
        point.strategy.name(),
        point.max_cpus
    );
    match row.boot {
        Some(boot) => line.push_str(&format!(
            "boot {} cycles = {}, {} SMIs, {:.3} s host",
            boot.boot_cycles,
            nanos_text(boot.boot_ms),
            boot.smis,
            row.host_seconds
        )),
        None => line.push_str("did not run"),
    }
    if let Some(add) = row.hotadd {
        match add.latency_us {
            Some(us) => line.push_str(&format!(
                "; hot-add of cpu {} {}, {} SMIs, {:.3} s host",
                add.apic_id,
                nanos_text(us / 1e3),
                add.smis,
                add.host_seconds
            )),
            None => line.push_str(&format!("; hot-add of cpu {} never completed", add.apic_id)),
        }
    }
    line.push_str(&format!(": {}", row.outcome));
    if !row.detail.is_empty() && !row.outcome.is_ok() {
        line.push_str(&format!(" ({})", row.detail));
    }
    line
}

/// The aligned table printed to stdout when the CSV goes to a file.
fn table(rows: &[SweepRow], hotadd: bool) -> String {
    let mut out = format!(
        "{:<12} {:>7} {:>7} {:>12} {:>11} {:>6} {:>10} {:>8}",
        "strategy", "maxcpus", "present", "boot cycles", "boot ms", "SMIs", "SMM ms", "host s"
    );
    if hotadd {
        out.push_str(&format!(
            " {:>12} {:>6} {:>10}",
            "hot-add µs", "SMIs", "SMM µs"
        ));
    }
    out.push_str("  outcome\n");
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    for row in rows {
        let boot = row.boot;
        out.push_str(&format!(
            "{:<12} {:>7} {:>7} {:>12} {:>11} {:>6} {:>10} {:>8.3}",
            row.point.strategy.name(),
            row.point.max_cpus,
            row.present_at_reset,
            or_dash(boot.map(|boot| boot.boot_cycles.to_string())),
            or_dash(boot.map(|boot| format!("{:.3}", boot.boot_ms))),
            or_dash(boot.map(|boot| boot.smis.to_string())),
            or_dash(boot.map(|boot| format!("{:.3}", boot.smm_ms))),
            row.host_seconds
        ));
        if hotadd {
            let add = row.hotadd;
            out.push_str(&format!(
                " {:>12} {:>6} {:>10}",
                or_dash(
                    add.and_then(|add| add.latency_us)
                        .map(|us| format!("{us:.3}"))
                ),
                or_dash(add.map(|add| add.smis.to_string())),
                or_dash(add.map(|add| format!("{:.3}", add.smm_us)))
            ));
        }
        out.push_str(&format!("  {}\n", row.outcome));
    }
    out
}
