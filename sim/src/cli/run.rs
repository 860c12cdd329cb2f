//! `smmsim run`: one scenario file, its report, and a verdict.

use std::path::PathBuf;
use std::process::ExitCode;

use smmsim::recorder::EventConsumer;
use smmsim::scenario::Scenario;
use smmsim::scenario_run::run_scenario;
use smmsim::trace_file::TraceFile;

/// Exit status of `smmsim run` when an expectation failed.
pub const EXIT_EXPECTATION_FAILED: u8 = 1;

/// `smmsim run` options.
#[derive(clap::Args)]
#[command(after_help = "\
A scenario file (TOML) describes the machine (CPUs, strategy, profile, …), the firmware, timed
events (cpu-add, cpu-remove, reset) and expectations; see scenarios/ for one per strategy.

The report gives the boot time, for every hot-add the latency from the event to the guest's
`cpu N online` line, the SMIs and the time each CPU spent in SMM for it, the final SMBASE
map and each expectation's result.

Exit status: 0 every expectation passed, 1 one failed, 2 bad input (the scenario file names
the line of the problem).

Examples:
  smmsim run scenarios/smbase-smram.toml
  smmsim run scenarios/formula.toml --json
  smmsim run scenarios/back-to-back.toml --trace b2b.smmtrace --console")]
pub struct RunArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO.toml")]
    scenario: PathBuf,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Echo the guest's console (port 0x402) to stderr while it runs.
    #[arg(long)]
    console: bool,
    /// Record the run's events in a binary trace file (view it with `smmsim trace`).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Also record every executed instruction in the trace (needs --trace).
    #[arg(long, requires = "trace")]
    trace_instructions: bool,
}

/// Runs `smmsim run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::from_file(&args.scenario)?;
    let console: smmsim::machine::ConsoleSink = if args.console {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::sink())
    };
    let mut trace = match &args.trace {
        Some(path) => {
            let mut config = scenario.machine_config();
            config.hotadd_reset = scenario.machine.hotadd_reset;
            let header = smmsim::trace_header(
                &config,
                scenario.machine.strategy.name(),
                scenario.scenario_hash(),
            );
            Some(TraceFile::create(path, &header)?)
        }
        None => None,
    };
    let report = run_scenario(
        &scenario,
        console,
        trace.as_mut().map(|trace| trace as &mut dyn EventConsumer),
        args.trace_instructions,
    )?;
    if let (Some(trace), Some(path)) = (trace, &args.trace) {
        let events = trace.finish()?;
        eprintln!(
            "smmsim: trace: {events} events written to {}",
            path.display()
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_EXPECTATION_FAILED)
    })
}
