//! `smp_idle_scaling`: host time of an `mp-hello` boot with one CPU present as the number of
//! possible CPUs grows (1, 64, 512, 4,096). Absent CPUs must cost next to nothing: the target
//! is every figure within 2× of the maxcpus = 1 figure.
//!
//! Run with `cargo bench -p smmsim-benches --bench smp_idle_scaling`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use smmsim::{FirmwareImage, Machine, MachineConfig, RunEnd};

fn boot(max_cpus: u32) {
    let image = FirmwareImage::builtin("mp-hello").expect("mp-hello is a built-in image");
    let config = MachineConfig {
        cpus: 1,
        max_cpus,
        ..MachineConfig::default()
    };
    let mut machine =
        Machine::new(config, image, Box::new(std::io::sink())).expect("machine builds");
    let report = machine.run();
    assert!(
        matches!(report.end, RunEnd::DebugExit { .. }),
        "mp-hello must exit: {:?}",
        report.end
    );
}

fn smp_idle_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("smp_idle_scaling");
    group.sample_size(20);
    for max_cpus in [1, 64, 512, 4096] {
        group.bench_with_input(
            BenchmarkId::from_parameter(max_cpus),
            &max_cpus,
            |b, &max_cpus| b.iter(|| boot(max_cpus)),
        );
    }
    group.finish();
}

criterion_group!(benches, smp_idle_scaling);
criterion_main!(benches);
