//! The `smmsim` command line.

mod batch;
mod boot;
mod check;
mod machine_args;
mod merge;
mod run;
mod sweep;
mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
                  console output and a summary. `smmsim run scenarios/smbase-smram.toml` hot-adds \
                  a CPU under one of the four relocation strategies and reports latency, SMIs \
                  and the final SMBASE map; add `--trace t.smmtrace` and look at it with \
                  `smmsim trace show|stats|export|timeline|diff`."
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
    Boot(boot::BootArgs),
    /// Run one scenario file (machine, firmware, timed hot-plug events, expectations) and
    /// report boot time, hot-add latencies, SMIs, SMM time and the final SMBASE map.
    Run(run::RunArgs),
    /// Run scenarios with the SMM safety checker and list every violation it finds.
    Check(check::CheckArgs),
    /// Look at a trace file: show, stats, export --format perfetto, timeline, diff.
    #[command(subcommand)]
    Trace(trace::TraceCommand),
    /// Run many scenario files, directories or matrix files several at a time, one JSON
    /// line per scenario, with a progress bar; --shard K/N runs one slice of many.
    Batch(batch::BatchArgs),
    /// Join the results files of a sharded batch, de-duplicated, and summarize them.
    Merge(merge::MergeArgs),
    /// Boot every strategy at every max-CPU count (1 to 4,096) and report boot time, SMIs,
    /// SMM time and host time as CSV and an SVG plot; --hotadd adds one hot-add per point.
    Sweep(sweep::SweepArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Boot(args) => boot::boot(args),
        Command::Run(args) => run::run(args),
        Command::Trace(command) => trace::trace(command),
        Command::Check(args) => check::check(args),
        Command::Batch(args) => batch::batch(args),
        Command::Merge(args) => merge::merge(args),
        Command::Sweep(args) => sweep::sweep(args),
    };
    result.unwrap_or_else(|error| {
        eprintln!("smmsim: error: {error:#}");
        ExitCode::from(EXIT_USAGE)
    })
}
