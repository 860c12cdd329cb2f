//! `trace_read`: events per host second that `trace stats` gets through on one core. The
//! target is at least 50 million events a second.
//!
//! Setup writes a trace of 10 million events once to a temporary file: 256 CPUs, each
//! going through SMI → SMM entry → RSM, halting and waking, and sending SMI IPIs that are
//! delivered a little later, interleaved in cycle order as the simulator writes them in
//! chunks of 4,096. It prints the file's bytes per event, then criterion times
//! [`smmsim_traces::stats`] over the mapped file and reports elements (events) per second.
//!
//! Run with `cargo bench -p smmsim-benches --bench trace_read`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::collections::VecDeque;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use smmsim_traces::{Cycle, Event, EventKind, Header, SmiSource, TraceReader, TraceWriter};

/// Events in the generated trace.
const EVENTS: u64 = 10_000_000;
/// CPUs in the generated machine.
const CPUS: u32 = 256;
/// Events per chunk, as the simulator flushes at quantum ends.
const CHUNK_EVENTS: usize = 4_096;
/// SMI delivery mode in the ICR.
const MODE_SMI: u8 = 2;

/// A small deterministic generator (xorshift64), so every run benchmarks the same trace.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Per-CPU state of the generator, so each CPU's events make sense in sequence.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CpuState {
    Running,
    SmiPending,
    InSmm,
    Halted,
}

/// Writes the benchmark trace to `path`.
fn write_trace(path: &Path) {
    let file = std::fs::File::create(path).expect("the temporary directory is writable");
    let header = Header {
        smmsim_version: "bench".into(),
        cpus: CPUS,
        max_cpus: CPUS,
        clock_hz: 2_000_000_000,
        layout: "q35-tseg".into(),
        profile: "qemu".into(),
        strategy: "broadcast".into(),
        scenario_hash: 0,
    };
    let mut writer =
        TraceWriter::new(BufWriter::new(file), &header).expect("the trace file is writable");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut states = vec![CpuState::Running; CPUS as usize];
    let mut in_flight: VecDeque<(u32, u32)> = VecDeque::new();
    let mut chunk = Vec::with_capacity(CHUNK_EVENTS);
    let mut cycle = 0u64;
    for _ in 0..EVENTS {
        // Events are sparse in simulated time: up to a microsecond apart at 2 GHz.
        cycle += 1 + rng.next() % 2_000;
        let r = rng.next();
        let cpu = (r % u64::from(CPUS)) as u32;
        let slot = cpu as usize;
        let smbase = 0x7F00_0000 + u64::from(cpu) * 0x400;
        let deliver_now = (r >> 8) & 3 == 0 && !in_flight.is_empty();
        let (cpu, kind) = if deliver_now {
            let (source, destination) = in_flight.pop_front().expect("checked non-empty");
            let kind = EventKind::IpiDelivered {
                mode: MODE_SMI,
                source,
            };
            (destination, kind)
        } else {
            let kind = match states[slot] {
                CpuState::SmiPending => {
                    states[slot] = CpuState::InSmm;
                    EventKind::SmmEntry {
                        smbase,
                        save_area: smbase + 0xFE00,
                    }
                }
                CpuState::InSmm => {
                    states[slot] = CpuState::Running;
                    EventKind::Rsm {
                        old_smbase: smbase,
                        new_smbase: smbase,
                    }
                }
                CpuState::Halted => {
                    states[slot] = CpuState::Running;
                    EventKind::Wake
                }
                CpuState::Running => match (r >> 16) % 3 {
                    0 => {
                        states[slot] = CpuState::SmiPending;
                        EventKind::SmiRaised {
                            source: SmiSource::Ipi,
                        }
                    }
                    1 => {
                        let destination = ((r >> 24) % u64::from(CPUS)) as u32;
                        in_flight.push_back((cpu, destination));
                        EventKind::IpiSent {
                            mode: MODE_SMI,
                            destination,
                        }
                    }
                    _ => {
                        states[slot] = CpuState::Halted;
                        EventKind::Halt
                    }
                },
            };
            (cpu, kind)
        };
        chunk.push(Event {
            cycle: Cycle(cycle),
            cpu,
            kind,
        });
        if chunk.len() == CHUNK_EVENTS {
            writer.write_chunk(&chunk).expect("events are in order");
            chunk.clear();
        }
    }
    writer.write_chunk(&chunk).expect("events are in order");
    writer.finish().expect("the trace file is writable");
}

/// Removes the temporary trace when the benchmark ends.
struct TempTrace(PathBuf);

impl Drop for TempTrace {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn trace_read(c: &mut Criterion) {
    let path = std::env::temp_dir().join(format!("smmsim-trace-read-{}.trace", std::process::id()));
    let temp = TempTrace(path);
    write_trace(&temp.0);
    let reader = TraceReader::open(&temp.0).expect("the trace was just written");
    let first = smmsim_traces::stats(&reader);
    assert_eq!(first.events, EVENTS, "{:?}", first.damage);
    eprintln!(
        "trace_read: {} events, {} bytes, {:.2} bytes per event",
        first.events, first.file_bytes, first.bytes_per_event
    );

    let mut group = c.benchmark_group("trace_read");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    group.bench_function("stats", |b| b.iter(|| smmsim_traces::stats(&reader)));
    group.finish();
}

criterion_group!(benches, trace_read);
criterion_main!(benches);
