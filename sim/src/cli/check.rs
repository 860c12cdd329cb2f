//! `smmsim check`: run scenarios for their safety findings, and optionally sum them up as a
//! Markdown table of attacks against strategies (`--markdown`, what `docs/attacks.md` is).
//!
//! 1. Every scenario file is read and validated before anything runs.
//! 2. Each runs to its end with the checker on; its findings are listed on stdout.
//! 3. With `--markdown FILE`, the runs are laid out as one table — a row per attack and
//!    platform setting, a column per strategy and profile, the verdict in each cell — and,
//!    for every run that was exploitable or hung, its first findings as the excerpt that
//!    shows it ([`render_markdown`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use smmsim::scenario::{Attack, EventAction, Handshake, Scenario, Strategy, Verdict};
use smmsim::scenario_run::{run_scenario, ScenarioReport};
use smmsim::MachineConfig;

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

--markdown FILE writes the runs as a Markdown table: a row per attack (the scenario's
[guest] attacks, or back-to-back for two hot-adds within 100 µs) and setting (locked or
unlocked, as the strategy relies on MCH 0x9C or the SMBASE controller), a column per
strategy and profile, the verdict (blocked, exploitable, hang) in each cell, and for each
exploitable or hung run its first findings.

Exit status: 0 no violation in any scenario, 1 at least one, 2 bad input.

Examples:
  smmsim check scenarios/*.toml
  smmsim check --markdown docs/attacks.md scenarios/attacks/*.toml")]
pub struct CheckArgs {
    /// Scenario files.
    #[arg(value_name = "SCENARIO.toml", required = true)]
    scenarios: Vec<PathBuf>,
    /// Also write the results as a Markdown table of attacks × strategies to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

/// Runs `smmsim check`.
pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let scenarios = args
        .scenarios
        .iter()
        .map(|path| Scenario::from_file(path))
        .collect::<Result<Vec<_>, _>>()?;
    let mut total = 0;
    let mut runs = Vec::with_capacity(scenarios.len());
    for (scenario, path) in scenarios.iter().zip(&args.scenarios) {
        let console = Console::default();
        let report = run_scenario(scenario, Box::new(console.clone()), None, false)?;
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
        runs.push(Run {
            file: file_stem(path),
            scenario,
            report,
            console: console.lines(),
        });
    }
    if let Some(out) = &args.markdown {
        std::fs::write(out, render_markdown(&runs))
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(if total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_VIOLATIONS)
    })
}

/// One scenario and how its run went.
struct Run<'a> {
    /// The file's stem: the run's name in the table and its excerpt's heading.
    file: String,
    scenario: &'a Scenario,
    report: ScenarioReport,
    /// What the guest printed.
    console: Vec<String>,
}

/// The debug console of a run, kept for its excerpt.
#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|bytes| bytes.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

/// Two hot-adds at most this far apart make a back-to-back pair: the second CPU is plugged
/// while the guest is still serving the first.
const BACK_TO_BACK_NANOS: u64 = 100_000;

/// Findings an excerpt lists.
const EXCERPT_FINDINGS: usize = 5;

/// The row a run belongs to: what is attacked, and how the platform is set up.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RowKey {
    /// Attacks in [`Attack::ALL`] order, then back-to-back, then runs without either.
    order: Vec<usize>,
    attack: String,
    setting: String,
}

/// The column a run belongs to: strategy, profile and (when not OVMF's) handshake.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ColumnKey {
    order: (usize, &'static str, usize),
    label: String,
}

fn row_key(scenario: &Scenario) -> RowKey {
    let mut order = Vec::new();
    let mut names = Vec::new();
    for attack in scenario.guest.attacks.iter() {
        order.push(Attack::ALL.iter().position(|a| *a == attack).unwrap_or(0));
        names.push(attack.name().to_owned());
    }
    if back_to_back(scenario) {
        order.push(Attack::ALL.len());
        names.push("back-to-back".to_owned());
    }
    if names.is_empty() {
        order.push(Attack::ALL.len() + 1);
        names.push("none".to_owned());
    }
    RowKey {
        order,
        attack: names.join(" + "),
        setting: setting(scenario),
    }
}

/// Whether two hot-adds of the scenario come within [`BACK_TO_BACK_NANOS`] of each other.
fn back_to_back(scenario: &Scenario) -> bool {
    let window = BACK_TO_BACK_NANOS.saturating_mul(scenario.machine.clock_hz) / 1_000_000_000;
    let adds: Vec<u64> = scenario
        .events
        .iter()
        .filter(|event| matches!(event.action, EventAction::CpuAdd { .. }))
        .map(|event| event.at_cycle)
        .collect();
    adds.windows(2).any(|pair| pair[1] - pair[0] <= window)
}

/// "locked" or "unlocked" for what the strategy relies on — the default-SMBASE window for
/// smbase-smram and max-cpus, the SMBASE controller for controller and formula — and any
/// other setting that differs from the default.
fn setting(scenario: &Scenario) -> String {
    let guest = &scenario.guest;
    let uses_controller = matches!(
        scenario.machine.strategy,
        Strategy::Controller | Strategy::Formula
    );
    let relied_on = if uses_controller {
        guest.lock_controller
    } else {
        guest.lock_default_smbase
    };
    let mut parts = vec![if relied_on { "locked" } else { "unlocked" }.to_owned()];
    if uses_controller && !guest.lock_default_smbase {
        parts.push("0x9C unlocked".to_owned());
    }
    let default_latency = MachineConfig::default().ipi_latency_cycles;
    if scenario.machine.ipi_latency_cycles != default_latency {
        parts.push(format!(
            "IPI latency {} cycles",
            scenario.machine.ipi_latency_cycles
        ));
    }
    parts.join(", ")
}

fn column_key(scenario: &Scenario) -> ColumnKey {
    let machine = &scenario.machine;
    let strategy = Strategy::ALL
        .iter()
        .position(|s| *s == machine.strategy)
        .unwrap_or(0);
    let handshake = Handshake::ALL
        .iter()
        .position(|h| *h == scenario.guest.handshake)
        .unwrap_or(0);
    let mut label = format!("{} / {}", machine.strategy, machine.profile.name());
    if scenario.guest.handshake != Handshake::Ovmf {
        label.push_str(&format!(" ({})", scenario.guest.handshake));
    }
    ColumnKey {
        order: (strategy, machine.profile.name(), handshake),
        label,
    }
}

/// A table cell: the verdict, linked to the run's excerpt when there is one, and the
/// expected verdict when the run missed it.
fn cell(run: &Run<'_>) -> String {
    let verdict = run.report.verdict;
    let mut text = if verdict == Verdict::Blocked {
        verdict.name().to_owned()
    } else {
        format!("[**{}**](#{})", verdict.name(), run.file)
    };
    if let Some(expected) = run.scenario.expect.verdict {
        if expected != verdict {
            text.push_str(&format!(" (expected {})", expected.name()));
        }
    }
    text
}

/// `|` would end a table cell; keep it as text.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The Markdown document for `runs`: the table, then an excerpt per exploitable or hung run,
/// in file-name order. Depends only on the scenarios and their deterministic results, never on
/// paths, host time or the order files were given in.
fn render_markdown(runs: &[Run<'_>]) -> String {
    let mut columns: Vec<ColumnKey> = runs.iter().map(|run| column_key(run.scenario)).collect();
    columns.sort();
    columns.dedup();
    let mut rows: BTreeMap<RowKey, BTreeMap<usize, Vec<&Run<'_>>>> = BTreeMap::new();
    let mut sorted: Vec<&Run<'_>> = runs.iter().collect();
    sorted.sort_by(|a, b| a.file.cmp(&b.file));
    for run in &sorted {
        let column = columns
            .iter()
            .position(|c| *c == column_key(run.scenario))
            .expect("every run's column is listed");
        rows.entry(row_key(run.scenario))
            .or_default()
            .entry(column)
            .or_default()
            .push(run);
    }

    let mut out = String::new();
    out.push_str("# Attacks on CPU hot-add SMBASE relocation\n\n");
    out.push_str(
        "Generated by `smmsim check --markdown docs/attacks.md scenarios/attacks/*.toml`; do not \
         edit by hand. Each cell is one scenario of `scenarios/attacks/`, run in deterministic \
         mode with every safety check on (DESIGN.md §9):\n\n\
         - **blocked**: nothing beyond attempts the platform dropped (`smram-write-attempt`, \
         `controller-write-attempt`) or a hot-added CPU running on the reset SMBASE \
         (`unrelocated-cpu-runs`), and the guest finished;\n\
         - **exploitable**: SMM ran code outside SMRAM (`smm-code-outside-smram`), was entered \
         with an SMBASE outside it (`smbase-outside-smram`), two CPUs shared a save area \
         (`save-area-overlap`) or ended with one SMBASE (`duplicate-smbase`);\n\
         - **hang**: nothing exploitable, but the run reached its cycle limit.\n\n\
         Rows: the guest's attacks (`[guest] attacks`; back-to-back = two hot-adds within \
         100 µs) and the setting: *locked* when the firmware locks what the strategy relies on \
         — MCH 0x9C, the default-SMBASE window, for smbase-smram; the SMBASE controller for \
         controller and formula — *unlocked* when it does not (a vulnerable firmware). \
         Columns: strategy / profile, with the handshake when it is not OVMF's.\n\n",
    );
    out.push_str("| attack | setting |");
    for column in &columns {
        out.push_str(&format!(" {} |", escape(&column.label)));
    }
    out.push_str("\n|---|---|");
    for _ in &columns {
        out.push_str("---|");
    }
    out.push('\n');
    for (row, cells) in &rows {
        out.push_str(&format!(
            "| {} | {} |",
            escape(&row.attack),
            escape(&row.setting)
        ));
        for index in 0..columns.len() {
            let text = cells.get(&index).map_or_else(
                || "–".to_owned(),
                |runs| {
                    runs.iter()
                        .map(|run| cell(run))
                        .collect::<Vec<_>>()
                        .join("<br>")
                },
            );
            out.push_str(&format!(" {text} |"));
        }
        out.push('\n');
    }

    let excerpts: Vec<&&Run<'_>> = sorted
        .iter()
        .filter(|run| run.report.verdict != Verdict::Blocked)
        .collect();
    if !excerpts.is_empty() {
        out.push_str("\n## Trace excerpts\n\n");
        out.push_str(
            "The first findings of each exploitable or hung run; `smmsim run FILE --trace \
             t.smmtrace` and `smmsim trace show t.smmtrace` give the whole story.\n",
        );
    }
    for run in excerpts {
        excerpt(&mut out, run);
    }
    out
}

/// The excerpt of one run: what it is, how it ended, the guest's attack lines (and its last
/// line), its first findings (and, if those are all attempts, the first exploitable one).
fn excerpt(out: &mut String, run: &Run<'_>) {
    let report = &run.report;
    let _ = write!(
        out,
        "\n### {}\n\n*{}* — `scenarios/attacks/{}.toml`\n\n",
        run.file,
        escape(&run.scenario.name),
        run.file
    );
    if let Some(description) = &run.scenario.description {
        let _ = writeln!(out, "{}\n", description.trim());
    }
    let _ = write!(
        out,
        "{}; verdict **{}**",
        capitalized(&report.outcome),
        report.verdict.name()
    );
    let counts: Vec<String> = report
        .checks
        .violations
        .iter()
        .map(|(check, count)| format!("{count} `{check}`"))
        .collect();
    if counts.is_empty() {
        out.push_str("; no findings.\n");
    } else {
        let _ = writeln!(out, "; findings: {}.", counts.join(", "));
    }
    let mut lines: Vec<&String> = run
        .console
        .iter()
        .filter(|line| line.starts_with("attack"))
        .collect();
    if let Some(last) = run.console.last() {
        if lines.last() != Some(&last) {
            lines.push(last);
        }
    }
    if !lines.is_empty() {
        out.push_str("\nConsole (attack lines and the last line):\n\n```\n");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        out.push_str("```\n");
    }
    let findings = &report.checks.findings;
    if findings.is_empty() {
        return;
    }
    out.push_str("\n| cycle | CPU | check | detail |\n|---:|---:|---|---|\n");
    let shown = findings.len().min(EXCERPT_FINDINGS);
    let row = |finding: &smmsim::checker::Finding| {
        format!(
            "| {} | {} | `{}` | {} |\n",
            finding.cycle,
            finding.cpu,
            finding.check,
            escape(&finding.detail)
        )
    };
    for finding in &findings[..shown] {
        out.push_str(&row(finding));
    }
    let exploitable = |check: &str| Verdict::EXPLOITABLE_CHECKS.contains(&check);
    if report.verdict == Verdict::Exploitable
        && !findings[..shown].iter().any(|f| exploitable(&f.check))
    {
        if let Some(first) = findings[shown..].iter().find(|f| exploitable(&f.check)) {
            out.push_str("| … | | | |\n");
            out.push_str(&row(first));
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::from_str(text, Path::new("t.toml")).expect("a valid scenario")
    }

    fn add(at: &str, apic_id: u32) -> String {
        format!("[[event]]\nat = \"{at}\"\naction = \"cpu-add\"\napic_id = {apic_id}\n")
    }

    #[test]
    fn rows_name_the_attacks_and_what_the_strategy_relies_on() {
        let plant = scenario(
            "[machine]\nmaxcpus = 4\n[guest]\nattacks = [\"early-smi\", \"plant-38000\"]\n\
             lock_default_smbase = false\n",
        );
        let key = row_key(&plant);
        assert_eq!(key.attack, "plant-38000 + early-smi");
        assert_eq!(key.setting, "unlocked");
        let controller = scenario(
            "[machine]\nmaxcpus = 4\nstrategy = \"controller\"\nipi_latency = 100\n\
             [guest]\nlock_default_smbase = false\n",
        );
        let key = row_key(&controller);
        assert_eq!(key.attack, "none");
        assert_eq!(key.setting, "locked, 0x9C unlocked, IPI latency 100 cycles");
    }

    #[test]
    fn two_hot_adds_within_100_us_are_back_to_back() {
        let close = scenario(&format!(
            "[machine]\nmaxcpus = 4\n{}{}",
            add("3ms", 1),
            add("3.1ms", 2)
        ));
        assert_eq!(row_key(&close).attack, "back-to-back");
        let apart = scenario(&format!(
            "[machine]\nmaxcpus = 4\n{}{}",
            add("3ms", 1),
            add("3.2ms", 2)
        ));
        assert_eq!(row_key(&apart).attack, "none");
    }

    #[test]
    fn columns_show_the_handshake_only_when_it_is_not_ovmf() {
        let ovmf = scenario("[machine]\nprofile = \"qemu\"\n");
        let redirect =
            scenario("[machine]\nprofile = \"qemu\"\n[guest]\nhandshake = \"redirect\"\n");
        assert_eq!(column_key(&ovmf).label, "smbase-smram / qemu");
        assert_eq!(
            column_key(&redirect).label,
            "smbase-smram / qemu (redirect)"
        );
        assert!(column_key(&ovmf) < column_key(&redirect));
    }

    #[test]
    fn cell_text_cannot_break_the_table() {
        assert_eq!(escape("a | b"), "a \\| b");
        assert_eq!(capitalized("cycle limit"), "Cycle limit");
        assert_eq!(capitalized(""), "");
    }
}
