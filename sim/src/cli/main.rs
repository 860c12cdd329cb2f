//! The `smmsim` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use smmsim::cpu::smm::{Profile, SaveStateLayout};
use smmsim::machine::{DEFAULT_MAX_CYCLES, DEFAULT_RAM_BYTES};
use smmsim::{ExecMode, FirmwareImage, Machine, MachineConfig, TimingTable};

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
  smmsim boot                              OVMF-style SMM bring-up: every SMBASE relocated
  smmsim boot --smp 16 --profile qemu      the same on 16 CPUs, SMI/INIT/SIPI as QEMU TCG
  smmsim boot --builtin isa-selftest       run another built-in image
  smmsim boot --builtin mp-hello --smp 8   eight CPUs: the BSP wakes the others with INIT-SIPI-SIPI
  smmsim boot --smp 2,maxcpus=4096 --mode parallel
  smmsim boot --firmware OVMF.fd --max-cycles 20000000000
  smmsim boot --timing slow-io.toml        override instruction costs

Timing file keys (cycles per instruction class, any subset): simple, load, store, branch,
multiply, divide, locked_rmw, string_iteration, port_io, mmio, serializing, far_transfer,
interrupt, pause, smi_entry, rsm.")]
    Boot(BootArgs),
}

#[derive(clap::Args)]
struct BootArgs {
    /// Firmware image file: a power of two from 64 KiB to 16 MiB, mapped to end at 4 GiB.
    #[arg(long, value_name = "PATH", conflicts_with = "builtin")]
    firmware: Option<PathBuf>,
    /// Run a built-in image instead of a file (boot, hello, isa-selftest, mips-loop, mp-hello,
    /// mp-loop).
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
    /// CPUs present at reset and possible, as QEMU's -smp: `N` or `N,maxcpus=M` (M <= 4096).
    /// CPU 0 is the BSP; the others wait for INIT-SIPI-SIPI.
    #[arg(long, value_name = "N[,maxcpus=M]", default_value = "1", value_parser = parse_smp)]
    smp: Smp,
    /// deterministic: the cores of a quantum take turns in APIC-ID order (bit-identical runs);
    /// parallel: they run at once on the host's cores.
    #[arg(long, value_enum, default_value_t = ModeArg::Deterministic)]
    mode: ModeArg,
    /// SMM state-save map: amd64 (QEMU x86_64's, SMBASE field at +0xFF00) or intel32
    /// (SMBASE field at +0xFEF8).
    #[arg(long, value_enum, default_value_t = LayoutArg::Amd64)]
    layout: LayoutArg,
    /// How SMI, INIT and SIPI interact where sources disagree: kvm (production hot-plug),
    /// qemu (QEMU TCG, for differential tests) or sdm (the Intel SDM as written).
    #[arg(long, value_enum, default_value_t = ProfileArg::Kvm)]
    profile: ProfileArg,
    /// Cycles per quantum: how far cores run between meetings at the barrier.
    #[arg(long, value_name = "CYCLES", default_value_t = smmsim::machine::DEFAULT_QUANTUM_CYCLES)]
    quantum: u64,
}

/// `--layout` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LayoutArg {
    Amd64,
    Intel32,
}

/// `--profile` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ProfileArg {
    Qemu,
    Kvm,
    Sdm,
}

/// `--mode` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Deterministic,
    Parallel,
}

/// Present and possible CPU counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Smp {
    cpus: u32,
    max_cpus: u32,
}

/// Parses QEMU's `-smp` syntax (the `N` and `maxcpus=M` parts; `cpus=N` is accepted too).
fn parse_smp(text: &str) -> Result<Smp, String> {
    let mut cpus = None;
    let mut max_cpus = None;
    for (position, part) in text.split(',').enumerate() {
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (key, value),
            None if position == 0 => ("cpus", part),
            None => return Err(format!("`{part}`: expected key=value")),
        };
        let number: u32 = value
            .parse()
            .map_err(|_| format!("`{value}` is not a CPU count"))?;
        match key {
            "cpus" => cpus = Some(number),
            "maxcpus" => max_cpus = Some(number),
            _ => return Err(format!("unknown -smp key `{key}` (known: cpus, maxcpus)")),
        }
    }
    let cpus = cpus.ok_or("the number of present CPUs is missing")?;
    let max_cpus = max_cpus.unwrap_or(cpus);
    if cpus == 0 || cpus > max_cpus || max_cpus > smmsim::machine::MAX_CPUS {
        return Err(format!(
            "need 1 <= cpus ({cpus}) <= maxcpus ({max_cpus}) <= 4096"
        ));
    }
    Ok(Smp { cpus, max_cpus })
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
        cpus: args.smp.cpus,
        max_cpus: args.smp.max_cpus,
        mode: match args.mode {
            ModeArg::Deterministic => ExecMode::Deterministic,
            ModeArg::Parallel => ExecMode::Parallel,
        },
        quantum_cycles: args.quantum.max(1),
        layout: match args.layout {
            LayoutArg::Amd64 => SaveStateLayout::Amd64,
            LayoutArg::Intel32 => SaveStateLayout::Intel32,
        },
        profile: match args.profile {
            ProfileArg::Qemu => Profile::Qemu,
            ProfileArg::Kvm => Profile::Kvm,
            ProfileArg::Sdm => Profile::Sdm,
        },
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, image, Box::new(std::io::stdout()))?;
    let report = machine.run();
    eprint!("{}", report.summary());
    Ok(ExitCode::from(report.end.exit_status() as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smp_accepts_qemu_syntax() {
        assert_eq!(
            parse_smp("4"),
            Ok(Smp {
                cpus: 4,
                max_cpus: 4
            })
        );
        assert_eq!(
            parse_smp("1,maxcpus=4096"),
            Ok(Smp {
                cpus: 1,
                max_cpus: 4096
            })
        );
        assert_eq!(
            parse_smp("cpus=2,maxcpus=8"),
            Ok(Smp {
                cpus: 2,
                max_cpus: 8
            })
        );
    }

    #[test]
    fn smp_rejects_bad_counts_with_the_value() {
        for (text, needle) in [
            ("0", "cpus (0)"),
            ("4,maxcpus=2", "maxcpus (2)"),
            ("1,maxcpus=4097", "4097"),
            ("x", "`x`"),
            ("2,sockets=2", "sockets"),
        ] {
            let err = parse_smp(text).expect_err(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
