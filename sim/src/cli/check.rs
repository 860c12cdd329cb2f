//! `smmsim check`: run scenarios for their safety findings.

use std::path::PathBuf;
use std::process::ExitCode;

use smmsim::scenario::Scenario;
use smmsim::scenario_run::run_scenario;

/// Exit status of `smmsim check` when a scenario broke an invariant.
const EXIT_VIOLATIONS: u8 = 1;

/// `smmsim check` options.
#[derive(clap::Args)]
#[command(after_help = "\
Runs each scenario with the SMM safety checker and lists what it found:
  save-area-overlap         two CPUs in SMM at once with overlapping state-save areas
  smm-code-outside-smram    code fetched in SMM from outside locked SMRAM (a call-out)
  smbase-outside-smram      SMM entered, after the lock, with an SMBASE outside SMRAM
  smram-write-attempt       a non-SMM write to SMRAM (blocked; an attempted attack)
  controller-write-attempt  a write to the SMBASE controller from outside SMM or after lock
  unrelocated-cpu-runs      a hot-added CPU running non-SMM code on the reset SMBASE
  duplicate-smbase          two CPUs ending the run with the same SMBASE
A scenario switches checks off with `[check] disable = [\"name\", …]`.

Exit status: 0 no violation in any scenario, 1 at least one, 2 bad input.

Example:
  smmsim check scenarios/*.toml")]
pub struct CheckArgs {
    /// Scenario files.
    #[arg(value_name = "SCENARIO.toml", required = true)]
    scenarios: Vec<PathBuf>,
}

/// Runs `smmsim check`.
pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Every file is read and validated before anything runs.
    let scenarios = args
        .scenarios
        .iter()
        .map(|path| Scenario::from_file(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut total = 0;
    for (scenario, path) in scenarios.iter().zip(&args.scenarios) {
        let report = run_scenario(scenario, Box::new(std::io::sink()), None, false)?;
        let checks = &report.checks;
        total += checks.total();
        println!(
            "{}: {} violations ({} checks active; run: {})",
            path.display(),
            checks.total(),
            checks.active.len(),
            report.outcome
        );
        for finding in &checks.findings {
            println!(
                "  cycle {} cpu {}: {}: {}",
                finding.cycle, finding.cpu, finding.check, finding.detail
            );
        }
        let listed = checks.findings.len() as u64;
        if checks.total() > listed {
            println!("  … {} more", checks.total() - listed);
        }
    }
    Ok(if total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    })
}
