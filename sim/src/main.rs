//! The `smmsim` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use smmsim::machine::{DEFAULT_MAX_CYCLES, DEFAULT_RAM_BYTES};
use smmsim::{FirmwareImage, Machine, MachineConfig, TimingTable};

/// Exit status for bad input or a host error (clap uses the same for usage errors).
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "smmsim",
    version,
    about = "A cycle-level multi-core x86 simulator for studying SMBASE relocation and CPU hot-plug",
    long_about = "smmsim runs real x86 firmware on simulated cores of a q35-like machine, cycle \
                  by cycle, to study how CPUs get their SMBASE relocated at boot and on hot-add.\n\n\
                  Start with `smmsim boot`, which runs a built-in firmware image and prints its \
                  console output and a summary."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a firmware image from the reset vector and run it to its end.
    #[command(after_help = "\
The debug console (port 0x402) goes to stdout, a summary to stderr.

Exit status:
  odd      the guest wrote v to the debug-exit port 0xF4: status (v << 1) | 1, as QEMU's
           isa-debug-exit (so v = 0 gives 1)
  2        bad input (unreadable or malformed image or timing file)
  4        every CPU halted and nothing can wake it
  6        a CPU triple-faulted (shutdown)
  8        the cycle limit (--max-cycles) was reached first

Examples:
  smmsim boot                              run the built-in `hello` image
  smmsim boot --builtin isa-selftest       run another built-in image
  smmsim boot --firmware OVMF.fd --max-cycles 20000000000
  smmsim boot --timing slow-io.toml        override instruction costs

Timing file keys (cycles per instruction class, any subset): simple, load, store, branch,
multiply, divide, locked_rmw, string_iteration, port_io, mmio, serializing, far_transfer,
interrupt, pause.")]
    Boot(BootArgs),
}

#[derive(clap::Args)]
struct BootArgs {
    /// Firmware image file: a power of two from 64 KiB to 16 MiB, mapped to end at 4 GiB.
    #[arg(long, value_name = "PATH", conflicts_with = "builtin")]
    firmware: Option<PathBuf>,
    /// Run a built-in image instead of a file (hello, isa-selftest, mips-loop, …).
    #[arg(long, value_name = "NAME")]
    builtin: Option<String>,
    /// Stop after this many simulated cycles.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CYCLES)]
    max_cycles: u64,
    /// TOML file overriding instruction costs by class, e.g. `divide = 40`.
    #[arg(long, value_name = "FILE")]
    timing: Option<PathBuf>,
    /// Guest RAM in MiB.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_RAM_BYTES >> 20)]
    memory_mib: u64,
    /// Decode every instruction afresh (to measure what the decode cache buys).
    #[arg(long)]
    no_decode_cache: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Boot(args) => match boot(args) {
            Ok(status) => status,
            Err(error) => {
                eprintln!("smmsim: error: {error:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}

fn boot(args: BootArgs) -> anyhow::Result<ExitCode> {
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
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, image, Box::new(std::io::stdout()))?;
    let report = machine.run();
    eprint!("{}", report.summary());
    Ok(ExitCode::from(report.end.exit_status() as u8))
}
