//! `trace_overhead`: host time of the `boot` image on 255 CPUs (the most its xAPIC bring-up
//! supports) with and without a trace file. The target: tracing costs at most 5 %. Timed: the
//! run, plus creating and finishing the trace file when there is one.
//!
//! Also prints, once, the number of events and bytes per event of the traced boot.
//!
//! Run with `cargo bench -p smmsim-benches --bench trace_overhead`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use smmsim::recorder::IgnoreEvents;
use smmsim::trace_file::TraceFile;
use smmsim::{FirmwareImage, Machine, MachineConfig, RunEnd};

/// The CPU count: every xAPIC ID but the broadcast 0xFF.
const CPUS: u32 = 255;

fn machine() -> (Machine, MachineConfig) {
    let image = FirmwareImage::builtin("boot").expect("boot is a built-in image");
    let config = MachineConfig {
        cpus: CPUS,
        max_cpus: CPUS,
        ..MachineConfig::default()
    };
    let machine =
        Machine::new(config.clone(), image, Box::new(std::io::sink())).expect("machine builds");
    (machine, config)
}

/// Boots once without a trace; returns the host time of the run itself (building the
/// machine - mapping RAM, creating 255 cores - is the same either way and left out, as its
/// page-fault noise on this host is larger than the effect measured).
fn boot_untraced() -> Duration {
    let (mut machine, _) = machine();
    let started = Instant::now();
    let report = machine.run_observed(&mut IgnoreEvents);
    let elapsed = started.elapsed();
    assert!(
        matches!(report.end, RunEnd::DebugExit { status: 1 }),
        "{:?}",
        report.end
    );
    elapsed
}

/// Boots once writing a trace to `path`; returns the host time of the run plus creating,
/// writing and closing the trace file, and the number of events written.
fn boot_traced(path: &Path) -> (Duration, u64) {
    let (mut machine, config) = machine();
    let started = Instant::now();
    let header = smmsim::trace_header(&config, "boot", 0);
    let mut trace = TraceFile::create(path, &header).expect("trace file");
    let report = machine.run_observed(&mut trace);
    let events = trace.finish().expect("trace written");
    let elapsed = started.elapsed();
    assert!(
        matches!(report.end, RunEnd::DebugExit { status: 1 }),
        "{:?}",
        report.end
    );
    (elapsed, events)
}

fn trace_overhead(c: &mut Criterion) {
    let path = std::env::temp_dir().join(format!(
        "smmsim-trace-overhead-{}.smmtrace",
        std::process::id()
    ));
    let (_, events) = boot_traced(&path);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "trace_overhead: boot on {CPUS} CPUs records {events} events, {bytes} bytes ({:.1} bytes/event)",
        bytes as f64 / events.max(1) as f64
    );
    let mut group = c.benchmark_group("trace_overhead");
    group.sample_size(10);
    // Traced first: on this host the second of two otherwise equal benchmarks tends to
    // measure a few per cent slower, which would flatter tracing if it came first.
    group.bench_function("boot_255/traced", |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| boot_traced(&path).0).sum())
    });
    group.bench_function("boot_255/untraced", |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| boot_untraced()).sum())
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, trace_overhead);
criterion_main!(benches);
