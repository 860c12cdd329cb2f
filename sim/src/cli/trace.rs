//! `smmsim trace`: look at a trace file written by `boot --trace` or `run --trace`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use smmsim_traces::{
    diff, export_perfetto, render_stats, show, stats, timeline_svg, Cycle, EventKind, Filter,
    TimelineOptions, TraceReader,
};

/// Exit status when `trace diff` finds the traces different.
const EXIT_DIFFERENT: u8 = 1;

/// `smmsim trace` subcommands.
#[derive(clap::Subcommand)]
pub enum TraceCommand {
    /// One aligned line per event: cycle, simulated time, CPU, kind and fields.
    #[command(after_help = "\
Kinds (for --kind, repeatable or comma-separated):
  smi_raised smm_entry rsm smbase_relocated ipi_sent ipi_delivered init sipi halt wake
  hot_add hot_remove reset smram_blocked console_line run_end cpu_ejected
  controller_write_blocked violation instruction

Examples:
  smmsim trace show t.smmtrace --kind smm_entry,rsm
  smmsim trace show t.smmtrace --cpu 1 --from 2000000 --to 3000000")]
    Show {
        /// The trace file.
        file: PathBuf,
        /// Only events of this CPU index.
        #[arg(long, value_name = "N")]
        cpu: Option<u32>,
        /// Only events of these kinds.
        #[arg(long, value_name = "KIND", value_delimiter = ',')]
        kind: Vec<String>,
        /// Only events at or after this cycle (found through the index, not by scanning).
        #[arg(long, value_name = "CYCLE")]
        from: Option<u64>,
        /// Only events at or before this cycle.
        #[arg(long, value_name = "CYCLE")]
        to: Option<u64>,
    },
    /// Per CPU: SMIs, SMM entries, time in SMM, relocations, IPIs, hot-plug; and totals.
    Stats {
        /// The trace file.
        file: PathBuf,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Convert for another viewer: `perfetto` writes Chrome trace-event JSON that
    /// ui.perfetto.dev opens (one track per CPU, SMM residency as slices, IPIs as flows).
    Export {
        /// The trace file.
        file: PathBuf,
        /// The output format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Where to write it (default: stdout).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Draw an SVG picture: CPUs as rows, time across, SMM residency, IPIs, hot-plug marks.
    Timeline {
        /// The trace file.
        file: PathBuf,
        /// The SVG file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Picture width in pixels.
        #[arg(long, default_value_t = TimelineOptions::default().width_px)]
        width: u32,
    },
    /// Report the first event where two traces differ (exit status 1 if they do).
    Diff {
        /// The first trace.
        first: PathBuf,
        /// The second trace.
        second: PathBuf,
    },
}

/// `trace export --format` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// Chrome trace-event JSON for ui.perfetto.dev.
    Perfetto,
}

fn open(path: &Path) -> anyhow::Result<TraceReader> {
    TraceReader::open(path).with_context(|| format!("cannot read trace {}", path.display()))
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(BufWriter::new(file))
}

/// Reports on stderr where a damaged trace stopped being readable.
fn note_damage(damage: Option<&String>) {
    if let Some(damage) = damage {
        eprintln!("smmsim: trace: {damage}");
    }
}

/// Runs one `smmsim trace` subcommand.
pub fn trace(command: TraceCommand) -> anyhow::Result<ExitCode> {
    match command {
        TraceCommand::Show {
            file,
            cpu,
            kind,
            from,
            to,
        } => {
            for name in &kind {
                if EventKind::index_of_name(name).is_none() {
                    anyhow::bail!(
                        "unknown event kind `{name}`; valid kinds: {}",
                        EventKind::NAMES.join(", ")
                    );
                }
            }
            let reader = open(&file)?;
            let filter = Filter {
                cpu,
                kinds: kind,
                from: from.map(Cycle),
                to: to.map(Cycle),
            };
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            show(&reader, &filter, &mut out)?;
            out.flush()?;
        }
        TraceCommand::Stats { file, json } => {
            let reader = open(&file)?;
            let figures = stats(&reader);
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            if json {
                serde_json::to_writer_pretty(&mut out, &figures)?;
                writeln!(out)?;
            } else {
                render_stats(&reader, &figures, &mut out)?;
            }
            out.flush()?;
        }
        TraceCommand::Export {
            file,
            format: ExportFormat::Perfetto,
            output,
        } => {
            let reader = open(&file)?;
            let summary = match &output {
                Some(path) => {
                    let mut out = create(path)?;
                    let summary = export_perfetto(&reader, &mut out)?;
                    out.flush()?;
                    summary
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = BufWriter::new(stdout.lock());
                    let summary = export_perfetto(&reader, &mut out)?;
                    out.flush()?;
                    summary
                }
            };
            note_damage(summary.damage.as_ref());
        }
        TraceCommand::Timeline {
            file,
            output,
            width,
        } => {
            let reader = open(&file)?;
            let options = TimelineOptions {
                width_px: width,
                ..TimelineOptions::default()
            };
            let mut out = create(&output)?;
            let summary = timeline_svg(&reader, &mut out, &options)?;
            out.flush()?;
            note_damage(summary.damage.as_ref());
            eprintln!(
                "smmsim: timeline of {} CPUs written to {}",
                summary.rows,
                output.display()
            );
        }
        TraceCommand::Diff { first, second } => {
            let (a, b) = (open(&first)?, open(&second)?);
            let result = diff(&a, &b);
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            result.render(&mut out)?;
            out.flush()?;
            if !result.identical() {
                return Ok(ExitCode::from(EXIT_DIFFERENT));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
