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

pub mod core_thread;
pub mod cpu;
pub mod image;
pub mod machine;
pub mod memory;
pub mod scheduler;
pub mod timing;

pub use image::{FirmwareImage, ImageError};
pub use machine::{Machine, MachineConfig, MachineError, RunEnd, RunReport};
pub use scheduler::ExecMode;
pub use timing::{TimingError, TimingTable};
