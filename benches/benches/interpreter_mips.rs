//! `interpreter_mips`: guest instructions per host second on one core running the
//! `mips-loop` image (a tight ALU / load / store / branch loop in 32-bit protected mode),
//! with the decode cache on and off.
//!
//! Criterion reports time per boot; the guest instruction count of one boot is printed
//! first, so MIPS = instructions / time. Run with
//! `cargo bench -p smmsim-benches --bench interpreter_mips`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smmsim::{FirmwareImage, Machine, MachineConfig, RunEnd};

fn boot_mips_loop(decode_cache: bool) -> u64 {
    let image = FirmwareImage::builtin("mips-loop").expect("mips-loop is a built-in image");
    let config = MachineConfig {
        decode_cache,
        ..MachineConfig::default()
    };
    let mut machine =
        Machine::new(config, image, Box::new(std::io::sink())).expect("default RAM size maps");
    let report = machine.run();
    assert_eq!(
        report.end,
        RunEnd::DebugExit { status: 1 },
        "mips-loop must exit cleanly"
    );
    report.cpu.instructions
}

fn interpreter_mips(c: &mut Criterion) {
    for (name, decode_cache) in [("decode_cache_on", true), ("decode_cache_off", false)] {
        let instructions = boot_mips_loop(decode_cache);
        eprintln!("interpreter_mips/{name}: {instructions} guest instructions per boot");
        let mut group = c.benchmark_group("interpreter_mips");
        group.throughput(Throughput::Elements(instructions));
        group.sample_size(10);
        group.bench_function(name, |b| b.iter(|| boot_mips_loop(decode_cache)));
        group.finish();
    }
}

criterion_group!(benches, interpreter_mips);
criterion_main!(benches);
