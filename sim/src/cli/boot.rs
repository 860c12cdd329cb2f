//! `smmsim boot`: run a firmware image from the reset vector to its end.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use smmsim::machine::DEFAULT_MAX_CYCLES;
use smmsim::recorder::IgnoreEvents;
use smmsim::trace_file::TraceFile;
use smmsim::{FirmwareImage, Machine, MachineConfig, TimingTable};

use crate::machine_args::{parse_smp, LayoutArg, ModeArg, ProfileArg, Smp};
use smmsim::machine::DEFAULT_RAM_BYTES;

/// `smmsim boot` options.
#[derive(clap::Args)]
pub struct BootArgs {
    /// Firmware image file: a power of two from 64 KiB to 16 MiB, mapped to end at 4 GiB.
    #[arg(long, value_name = "PATH", conflicts_with = "builtin")]
    pub firmware: Option<PathBuf>,
    /// Run a built-in image instead of a file (boot, hello, isa-selftest, mips-loop, mp-hello,
    /// mp-loop).
    #[arg(long, value_name = "NAME")]
    pub builtin: Option<String>,
    /// Stop after this many simulated cycles.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CYCLES)]
    pub max_cycles: u64,
    /// TOML file overriding instruction costs by class, e.g. `divide = 40`.
    #[arg(long, value_name = "FILE")]
    pub timing: Option<PathBuf>,
    /// Guest RAM in MiB.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_RAM_BYTES >> 20)]
    pub memory_mib: u64,
    /// Decode every instruction afresh (to measure what the decode cache buys).
    #[arg(long)]
    pub no_decode_cache: bool,
    /// CPUs present at reset and possible, as QEMU's -smp: `N` or `N,maxcpus=M` (M <= 4096).
    /// CPU 0 is the BSP; the others wait for INIT-SIPI-SIPI.
    #[arg(long, value_name = "N[,maxcpus=M]", default_value = "1", value_parser = parse_smp)]
    pub smp: Smp,
    /// deterministic: the cores of a quantum take turns in APIC-ID order (bit-identical runs);
    /// parallel: they run at once on the host's cores.
    #[arg(long, value_enum, default_value_t = ModeArg::Deterministic)]
    pub mode: ModeArg,
    /// SMM state-save map: amd64 (QEMU x86_64's, SMBASE field at +0xFF00) or intel32
    /// (SMBASE field at +0xFEF8).
    #[arg(long, value_enum, default_value_t = LayoutArg::Amd64)]
    pub layout: LayoutArg,
    /// How SMI, INIT and SIPI interact where sources disagree: kvm (production hot-plug),
    /// qemu (QEMU TCG, for differential tests) or sdm (the Intel SDM as written).
    #[arg(long, value_enum, default_value_t = ProfileArg::Kvm)]
    pub profile: ProfileArg,
    /// Cycles per quantum: how far cores run between meetings at the barrier.
    #[arg(long, value_name = "CYCLES", default_value_t = smmsim::machine::DEFAULT_QUANTUM_CYCLES)]
    pub quantum: u64,
    /// Extended TSEG in MiB (QEMU's mch.extended-tseg-mbytes): the firmware needs one 8 KiB
    /// SMM tile per possible CPU, so maxcpus above about 2,000 needs more than the default.
    #[arg(long, value_name = "MIB", default_value_t = smmsim::machine::DEFAULT_TSEG_MBYTES,
          value_parser = clap::value_parser!(u16).range(1..=0xFFF))]
    pub tseg_mbytes: u16,
    /// Record the run's events (SMIs, SMM entries and exits, relocations, IPIs, INIT/SIPI,
    /// hot-plug, console lines) in a binary trace file; view it with `smmsim trace`.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Also record every executed instruction in the trace (large files; needs --trace).
    #[arg(long, requires = "trace")]
    trace_instructions: bool,
}

/// Runs `smmsim boot`; the exit status is the run's (see the subcommand's help).
pub fn boot(args: BootArgs) -> anyhow::Result<ExitCode> {
    let image = match (&args.firmware, &args.builtin) {
        (Some(path), _) => FirmwareImage::from_file(path)?,
        (None, Some(name)) => FirmwareImage::builtin(name)?,
        (None, None) => FirmwareImage::builtin(smmsim_firmware::DEFAULT_IMAGE)?,
    };
    let timing = match &args.timing {
        Some(path) => TimingTable::from_file(path)?,
        None => TimingTable::default(),
    };
    let config = MachineConfig {
        ram_bytes: args
            .memory_mib
            .checked_mul(1 << 20)
            .context("--memory-mib is too large")?,
        timing,
        max_cycles: args.max_cycles,
        decode_cache: !args.no_decode_cache,
        cpus: args.smp.cpus,
        max_cpus: args.smp.max_cpus,
        mode: args.mode.into(),
        quantum_cycles: args.quantum.max(1),
        layout: args.layout.into(),
        profile: args.profile.into(),
        trace_instructions: args.trace_instructions,
        tseg_mbytes: args.tseg_mbytes,
        ..MachineConfig::default()
    };
    let header = smmsim::trace_header(&config, "boot", 0);
    let mut machine = Machine::new(config, image, Box::new(std::io::stdout()))?;
    let report = match &args.trace {
        Some(path) => {
            let mut trace = TraceFile::create(path, &header)?;
            let report = machine.run_observed(&mut trace);
            let events = trace.finish()?;
            eprintln!(
                "smmsim: trace: {events} events written to {}",
                path.display()
            );
            report
        }
        None => machine.run_observed(&mut IgnoreEvents),
    };
    eprint!("{}", report.summary());
    Ok(ExitCode::from(report.end.exit_status() as u8))
}
