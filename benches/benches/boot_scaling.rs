//! `boot_scaling`: host time of one boot per relocation strategy at maxcpus 1, 16, 256 and
//! 4,096 (`boot_scaling/<strategy>/<maxcpus>`), one CPU present at reset (all of them for
//! `max-cpus`, which is that strategy).
//!
//! Each point is exactly the scenario `smmsim sweep` boots (`smmsim::sweep`): the `boot`
//! image, no events, TSEG sized for maxcpus. Before measuring, prints per point the simulated
//! boot cycles, SMIs and SMM entries, and the host time of that first run, so the bench shows
//! both what is simulated and what it costs. A strategy whose firmware work does not depend
//! on absent CPUs should cost about the same at every maxcpus (DESIGN.md §2: a 4,096-CPU
//! machine of which few run costs about what a small one costs); `max-cpus` runs every CPU.
//!
//! Run with `cargo bench -p smmsim-benches --bench boot_scaling`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use smmsim::scenario::{Scenario, Strategy};
use smmsim::scenario_run::{run_scenario, ScenarioReport};
use smmsim::sweep::{SweepPoint, SweepSpec};

const MAX_CPUS: [u32; 4] = [1, 16, 256, 4096];

fn scenario(strategy: Strategy, max_cpus: u32) -> Scenario {
    let point = SweepPoint {
        strategy,
        max_cpus,
        present: 1,
    };
    point
        .scenario(&SweepSpec::default(), None)
        .expect("a sweep point is a valid scenario")
}

fn run(scenario: &Scenario) -> ScenarioReport {
    let report =
        run_scenario(scenario, Box::new(std::io::sink()), None, false).expect("the run starts");
    assert!(report.passed && report.status == 1, "{}", report.render());
    report
}

/// A rough host time per boot, for sizing the measurement: `max-cpus` runs every CPU, about a
/// millisecond each on the reference machine; the others stay within a few milliseconds.
fn expected_per_run(strategy: Strategy, max_cpus: u32) -> Duration {
    match strategy {
        Strategy::MaxCpus => Duration::from_millis(u64::from(max_cpus)),
        _ => Duration::from_millis(5),
    }
}

fn boot_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("boot_scaling");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for &strategy in Strategy::ALL {
        for max_cpus in MAX_CPUS {
            let scenario = scenario(strategy, max_cpus);
            // Long boots (max-cpus at 4,096) get time for ten samples, sampled flat.
            let per_run = expected_per_run(strategy, max_cpus);
            group.measurement_time(Duration::from_secs(3).max(per_run * 10));
            group.sampling_mode(if per_run >= Duration::from_millis(100) {
                SamplingMode::Flat
            } else {
                SamplingMode::Auto
            });
            // Printed from inside the benchmark, so a filtered-out point costs nothing.
            let mut printed = false;
            group.bench_with_input(
                BenchmarkId::new(strategy.name(), max_cpus),
                &scenario,
                |b, scenario| {
                    if !printed {
                        printed = true;
                        let report = run(scenario);
                        eprintln!(
                            "boot_scaling: {:<12} maxcpus {max_cpus:>4}: boot {} cycles, {} \
                             SMIs, {} SMM entries; first run {:.3} s host",
                            strategy.name(),
                            report.boot_cycles,
                            report.smis_by_source.values().sum::<u64>(),
                            report.smm_entries,
                            report.host_seconds
                        );
                    }
                    b.iter(|| run(scenario))
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, boot_scaling);
criterion_main!(benches);
