//! Command-line values shared by the subcommands that build a machine.

use smmsim::cpu::smm::{Profile, SaveStateLayout};
use smmsim::ExecMode;

/// `--layout` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LayoutArg {
    Amd64,
    Intel32,
}

/// `--profile` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ProfileArg {
    Qemu,
    Kvm,
    Sdm,
}

/// `--mode` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Deterministic,
    Parallel,
}

/// Present and possible CPU counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smp {
    /// Present at reset.
    pub cpus: u32,
    /// Possible.
    pub max_cpus: u32,
}

/// Parses QEMU's `-smp` syntax (the `N` and `maxcpus=M` parts; `cpus=N` is accepted too).
pub fn parse_smp(text: &str) -> Result<Smp, String> {
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

impl From<LayoutArg> for SaveStateLayout {
    fn from(arg: LayoutArg) -> SaveStateLayout {
        match arg {
            LayoutArg::Amd64 => SaveStateLayout::Amd64,
            LayoutArg::Intel32 => SaveStateLayout::Intel32,
        }
    }
}

impl From<ProfileArg> for Profile {
    fn from(arg: ProfileArg) -> Profile {
        match arg {
            ProfileArg::Qemu => Profile::Qemu,
            ProfileArg::Kvm => Profile::Kvm,
            ProfileArg::Sdm => Profile::Sdm,
        }
    }
}

impl From<ModeArg> for ExecMode {
    fn from(arg: ModeArg) -> ExecMode {
        match arg {
            ModeArg::Deterministic => ExecMode::Deterministic,
            ModeArg::Parallel => ExecMode::Parallel,
        }
    }
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
