//! smmsim: a cycle-level, multi-core x86 simulator for studying how hot-added CPUs get their
//! SMBASE relocated.
//!
//! The pieces, from the bottom up:
//! - [`memory`]: guest physical memory shared by all cores;
//! - [`image`]: firmware images, checked and memory-mapped;
//! - [`timing`]: the cycle cost of each instruction class;
//! - [`cpu`]: one core — state, decode cache, instruction semantics, exceptions;
//! - [`core_thread`]: a core on its own host thread, run in slices;
//! - [`scheduler`]: quanta, the APIC bus, deterministic and parallel modes;
//! - [`machine`]: cores, memory and the platform devices wired together and run to an end.

pub mod batch;
pub mod checker;
pub mod core_thread;
pub mod cpu;
pub mod image;
pub mod machine;
pub mod memory;
pub mod recorder;
pub mod scenario;
pub mod scenario_run;
pub mod scheduler;
pub mod sweep;
pub mod timing;
pub mod trace_file;

pub use image::{FirmwareImage, ImageError};
pub use machine::{Machine, MachineConfig, MachineError, RunEnd, RunReport};
pub use scheduler::ExecMode;
pub use timing::{TimingError, TimingTable};

/// The header of a trace of a machine built from `config`: what a viewer shows without the
/// scenario file. `strategy` names the relocation strategy (or the subcommand for plain
/// boots); `scenario_hash` ties the trace to its scenario file (0 for none).
pub fn trace_header(
    config: &MachineConfig,
    strategy: &str,
    scenario_hash: u64,
) -> smmsim_traces::Header {
    smmsim_traces::Header {
        smmsim_version: env!("CARGO_PKG_VERSION").to_owned(),
        cpus: config.cpus,
        max_cpus: config.max_cpus,
        clock_hz: config.clock_hz,
        layout: config.layout.name().to_owned(),
        profile: config.profile.name().to_owned(),
        strategy: strategy.to_owned(),
        scenario_hash,
    }
}
