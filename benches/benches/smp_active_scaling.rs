//! `smp_active_scaling`: guest instructions per host second when one core runs the `mp-loop`
//! compute loop alone, and when two cores run it at once — in parallel mode (two host
//! threads at a time) and in deterministic mode (turns in APIC-ID order).
//!
//! Criterion prints throughput in guest instructions per second (elements/s). Run with
//! `cargo bench -p smmsim-benches --bench smp_active_scaling`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smmsim::{ExecMode, FirmwareImage, Machine, MachineConfig, RunEnd};

fn boot(cpus: u32, mode: ExecMode) -> u64 {
    let image = FirmwareImage::builtin("mp-loop").expect("mp-loop is a built-in image");
    let config = MachineConfig {
        cpus,
        max_cpus: cpus,
        mode,
        ..MachineConfig::default()
    };
    let mut machine =
        Machine::new(config, image, Box::new(std::io::sink())).expect("machine builds");
    let report = machine.run();
    assert!(
        matches!(report.end, RunEnd::DebugExit { .. }),
        "mp-loop must exit: {:?}",
        report.end
    );
    report.cpu.instructions
}

fn smp_active_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("smp_active_scaling");
    group.sample_size(10);
    for (name, cpus, mode) in [
        ("1_core", 1, ExecMode::Deterministic),
        ("2_cores_parallel", 2, ExecMode::Parallel),
        ("2_cores_deterministic", 2, ExecMode::Deterministic),
    ] {
        let instructions = boot(cpus, mode);
        eprintln!("smp_active_scaling/{name}: {instructions} guest instructions per boot");
        group.throughput(Throughput::Elements(instructions));
        group.bench_function(name, |b| b.iter(|| boot(cpus, mode)));
    }
    group.finish();
}

criterion_group!(benches, smp_active_scaling);
criterion_main!(benches);
