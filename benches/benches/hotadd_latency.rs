//! `hotadd_latency`: host time to simulate one CPU hot-add, boot included, per relocation
//! strategy at maxcpus 8 and 1,024 (one CPU present at reset, one added at 3 ms).
//!
//! Before measuring, prints per strategy and maxcpus the simulated figures of the same run:
//! boot cycles, hot-add latency (cycles from the platform's add to the guest's "online"
//! line) and SMM entries during the hot-add.
//!
//! Run with `cargo bench -p smmsim-benches --bench hotadd_latency`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smmsim::scenario::Scenario;
use smmsim::scenario_run::{run_scenario, ScenarioReport};

const STRATEGIES: [&str; 4] = ["smbase-smram", "controller", "formula", "max-cpus"];
const MAX_CPUS: [u32; 2] = [8, 1024];

/// One present CPU (all of them for max-cpus), CPU 1 added once the boot is over: at 20 ms,
/// or 300 ms for max-cpus, which boots and ejects every possible CPU (about 60 ms at 1,024).
fn scenario(strategy: &str, max_cpus: u32) -> Scenario {
    let (at, extra) = if strategy == "max-cpus" {
        ("300ms", "hotadd_reset = false\n")
    } else {
        ("20ms", "")
    };
    let text = format!(
        "[machine]\ncpus = 1\nmaxcpus = {max_cpus}\nstrategy = \"{strategy}\"\n{extra}\
         [[event]]\nat = \"{at}\"\naction = \"cpu-add\"\napic_id = 1\n\
         [expect]\nsmbase = \"unique-in-tseg\"\nconsole = [\"cpu 00000001 online\"]\nstatus = 1\n"
    );
    Scenario::from_str(&text, Path::new("hotadd_latency.toml")).expect("a valid scenario")
}

fn run(scenario: &Scenario) -> ScenarioReport {
    let report =
        run_scenario(scenario, Box::new(std::io::sink()), None, false).expect("the run starts");
    assert!(report.passed, "{}", report.render());
    report
}

fn hotadd_latency(c: &mut Criterion) {
    for strategy in STRATEGIES {
        for max_cpus in MAX_CPUS {
            let report = run(&scenario(strategy, max_cpus));
            let window = &report.hotplug[0];
            eprintln!(
                "hotadd_latency: {strategy:<12} maxcpus {max_cpus:>4}: boot {} cycles, hot-add \
                 latency {} cycles, {} SMIs raised, {} SMM entries during the hot-add",
                report.boot_cycles,
                window.latency_cycles.unwrap_or(0),
                window.smis_raised,
                window.smm_entries
            );
        }
    }
    let mut group = c.benchmark_group("hotadd_latency");
    group.sample_size(10);
    for strategy in STRATEGIES {
        for max_cpus in MAX_CPUS {
            let scenario = scenario(strategy, max_cpus);
            group.bench_with_input(
                BenchmarkId::new(strategy, max_cpus),
                &scenario,
                |b, scenario| b.iter(|| run(scenario)),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, hotadd_latency);
criterion_main!(benches);
