//! How many cycles each instruction costs: a table keyed by instruction class.
//!
//! smmsim is cycle-approximate, not cycle-accurate: every instruction costs the number of
//! cycles its class is given here, whatever its operands, and nothing models pipelines or
//! caches. The defaults are round figures for a recent Intel core, taken from Agner Fog's
//! "Instruction tables" (Skylake column, 2022 edition) and Intel's optimization manual, so
//! that relative costs (a divide versus an add, a port access versus a store) are realistic.
//! A scenario or `--timing FILE` replaces any of them.
//!
//! A `--timing` file is TOML with any subset of the keys of [`TimingTable`]:
//! ```toml
//! simple = 1
//! divide = 40
//! port_io = 3000
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The largest cost one class may be given; anything larger is surely a typo.
pub const MAX_CLASS_CYCLES: u32 = 10_000_000;

/// Cycles per instruction class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimingTable {
    /// Register ALU op, MOV between registers, flag ops, NOP (Agner: latency 1).
    pub simple: u32,
    /// An instruction that reads memory (Agner: L1 load-to-use latency 4–5).
    pub load: u32,
    /// An instruction that writes memory, or reads and writes it (store throughput 1, plus
    /// the load for read-modify-write forms).
    pub store: u32,
    /// Near jump, call, return or conditional branch (Agner: 1–2, taken branches 2).
    pub branch: u32,
    /// MUL / IMUL (Agner: 3–4).
    pub multiply: u32,
    /// DIV / IDIV (Agner: 26 for 32-bit divisors on Skylake).
    pub divide: u32,
    /// A LOCK-prefixed read-modify-write or XCHG with memory (Agner: LOCK XADD ≈ 18).
    pub locked_rmw: u32,
    /// One iteration of a string instruction (MOVS, STOS, …; REP costs this per element).
    pub string_iteration: u32,
    /// IN / OUT and their string forms, per access: about 1 µs at 2 GHz, what an access to
    /// an LPC port costs on real hardware (the basis of Linux's port-0x80 I/O delay).
    pub port_io: u32,
    /// An access to memory-mapped device registers (an uncached access, ≈ 100 ns).
    pub mmio: u32,
    /// Serializing instructions: CPUID, RDMSR/WRMSR, moves to control registers, LGDT/LIDT
    /// (Agner: CPUID 100–200, WRMSR ≈ 100+).
    pub serializing: u32,
    /// Far JMP/CALL/RET, segment register loads in protected mode, IRET (Agner: 20–50).
    pub far_transfer: u32,
    /// Delivering an interrupt or exception through the IVT/IDT (≈ 200 on recent cores).
    pub interrupt: u32,
    /// PAUSE (Intel optimization manual: about 140 cycles from Skylake on).
    pub pause: u32,
    /// Entering SMM: saving 512 bytes of state and the mode switch. Published measurements
    /// of SMI handling on recent Intel servers put a round trip at a few microseconds per
    /// CPU; smmsim splits 12,000 cycles (6 µs at 2 GHz) into entry and RSM.
    pub smi_entry: u32,
    /// RSM: restoring the saved state and leaving SMM.
    pub rsm: u32,
}

impl Default for TimingTable {
    fn default() -> TimingTable {
        TimingTable {
            simple: 1,
            load: 4,
            store: 2,
            branch: 2,
            multiply: 3,
            divide: 26,
            locked_rmw: 18,
            string_iteration: 2,
            port_io: 2_000,
            mmio: 200,
            serializing: 120,
            far_transfer: 30,
            interrupt: 200,
            pause: 140,
            smi_entry: 8_000,
            rsm: 4_000,
        }
    }
}

/// Why a timing file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TimingError {
    /// The file could not be read.
    #[error("cannot read timing file {path}")]
    Unreadable {
        /// The file named.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for a timing table (unknown key, wrong type, …).
    #[error("timing file {path}: {message}")]
    Invalid {
        /// The file named.
        path: PathBuf,
        /// The parser's description, with line and column.
        message: String,
    },
    /// A class was given zero cycles or more than [`MAX_CLASS_CYCLES`].
    #[error("timing file {path}: {class} = {cycles} is out of range (1 to {MAX_CLASS_CYCLES})")]
    OutOfRange {
        /// The file named.
        path: PathBuf,
        /// The class.
        class: &'static str,
        /// The value given.
        cycles: u32,
    },
}

impl TimingTable {
    /// Reads a TOML override file; keys it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<TimingTable, TimingError> {
        let text = std::fs::read_to_string(path).map_err(|source| TimingError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses a TOML override; `origin` names it in errors.
    pub fn from_toml(origin: &Path, text: &str) -> Result<TimingTable, TimingError> {
        let table: TimingTable = toml::from_str(text).map_err(|err| TimingError::Invalid {
            path: origin.to_owned(),
            message: err.to_string().trim_end().replace('\n', " "),
        })?;
        for (class, cycles) in table.classes() {
            if cycles == 0 || cycles > MAX_CLASS_CYCLES {
                return Err(TimingError::OutOfRange {
                    path: origin.to_owned(),
                    class,
                    cycles,
                });
            }
        }
        Ok(table)
    }

    /// Every class with its cost, for validation and reports.
    pub fn classes(&self) -> [(&'static str, u32); 16] {
        [
            ("simple", self.simple),
            ("load", self.load),
            ("store", self.store),
            ("branch", self.branch),
            ("multiply", self.multiply),
            ("divide", self.divide),
            ("locked_rmw", self.locked_rmw),
            ("string_iteration", self.string_iteration),
            ("port_io", self.port_io),
            ("mmio", self.mmio),
            ("serializing", self.serializing),
            ("far_transfer", self.far_transfer),
            ("interrupt", self.interrupt),
            ("pause", self.pause),
            ("smi_entry", self.smi_entry),
            ("rsm", self.rsm),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TimingTable, TimingError> {
        TimingTable::from_toml(Path::new("t.toml"), text)
    }

    #[test]
    fn keys_left_out_keep_their_defaults() {
        let table = parse("divide = 40\n").expect("valid");
        assert_eq!(table.divide, 40);
        assert_eq!(table.simple, TimingTable::default().simple);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = parse("dvide = 40\n").expect_err("unknown key");
        assert!(err.to_string().contains("dvide"), "{err}");
        let err = parse("divide = 0\n").expect_err("zero");
        assert!(err.to_string().contains("divide = 0"), "{err}");
        let err = parse("divide = -3\n").expect_err("negative");
        assert!(err.to_string().contains("t.toml"), "{err}");
        let err = parse("divide = \"slow\"\n").expect_err("string");
        assert!(err.to_string().contains("t.toml"), "{err}");
    }
}
