//! `smp_active_scaling`: guest instructions per host second when one core runs the `mp-loop`
//! compute loop alone, and when two cores run it at once — in parallel mode (two host
//! threads at a time) and in deterministic mode (turns in APIC-ID order) — at quanta of
//! 1,000 (the default), 10,000 and 100,000 cycles, since the quantum trades host hand-offs
//! against how finely shared memory interleaves (DESIGN.md §2).
//!
//! Criterion prints throughput in guest instructions per second (elements/s). Run with
//! `cargo bench -p smmsim-benches --bench smp_active_scaling`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smmsim::{ExecMode, FirmwareImage, Machine, MachineConfig, RunEnd};

fn boot(cpus: u32, mode: ExecMode, quantum_cycles: u64) -> u64 {
    let image = FirmwareImage::builtin("mp-loop").expect("mp-loop is a built-in image");
    let config = MachineConfig {
        cpus,
        max_cpus: cpus,
        mode,
        quantum_cycles,
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
    let mut cases = vec![("1_core".to_owned(), 1, ExecMode::Deterministic, 1_000)];
    for quantum in [1_000, 10_000, 100_000] {
        cases.push((
            format!("2_cores_parallel/q{quantum}"),
            2,
            ExecMode::Parallel,
            quantum,
        ));
        cases.push((
            format!("2_cores_deterministic/q{quantum}"),
            2,
            ExecMode::Deterministic,
            quantum,
        ));
    }
    for (name, cpus, mode, quantum) in cases {
        let instructions = boot(cpus, mode, quantum);
        eprintln!("smp_active_scaling/{name}: {instructions} guest instructions per boot");
        group.throughput(Throughput::Elements(instructions));
        group.bench_function(&name, |b| b.iter(|| boot(cpus, mode, quantum)));
    }
    group.finish();
}

criterion_group!(benches, smp_active_scaling);
criterion_main!(benches);
