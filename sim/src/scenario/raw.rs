//! The scenario file exactly as TOML gives it, before any checking.
//!
//! Every table refuses unknown keys, so a misspelt key is an error that names it rather than a
//! setting silently left at its default. Values checked after parsing are kept
//! [`Spanned`], so their errors can name the line. Tables themselves are not wrapped: toml 0.8
//! cannot give the span of a table written with dotted keys (`[machine.timing]` before any
//! `[machine]`), and would refuse such a file.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub machine: RawMachine,
    #[serde(default)]
    pub firmware: RawFirmware,
    #[serde(default)]
    pub guest: RawGuest,
    #[serde(default, rename = "event")]
    pub events: Vec<Spanned<RawEvent>>,
    #[serde(default)]
    pub expect: RawExpect,
    #[serde(default)]
    pub check: RawCheck,
}

/// `[check]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    /// Names of safety checks to switch off.
    pub disable: Option<Vec<Spanned<String>>>,
}

/// `[machine]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMachine {
    pub cpus: Option<Spanned<u32>>,
    pub maxcpus: Option<Spanned<u32>>,
    /// A size string or an integer number of MiB.
    pub memory: Option<Spanned<toml::Value>>,
    pub strategy: Option<Spanned<String>>,
    pub layout: Option<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
    /// A rate string or an integer number of Hz.
    pub clock: Option<Spanned<toml::Value>>,
    pub quantum: Option<Spanned<u64>>,
    /// A time string or an integer number of cycles.
    pub max_cycles: Option<Spanned<toml::Value>>,
    pub hotadd_reset: Option<Spanned<bool>>,
    pub ipi_latency: Option<Spanned<u64>>,
    /// Extended TSEG size in MiB (QEMU `-global mch.extended-tseg-mbytes=N`).
    pub tseg_mbytes: Option<Spanned<u64>>,
    /// Instruction class → cycles; the class names are checked against `TimingTable`.
    pub timing: Option<BTreeMap<String, Spanned<u32>>>,
}

/// `[firmware]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFirmware {
    pub builtin: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
}

/// `[guest]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGuest {
    pub handshake: Option<Spanned<String>>,
    pub on_done: Option<Spanned<String>>,
    pub boot_cpus: Option<Spanned<u32>>,
    /// Attack names, checked against `Attack`.
    pub attacks: Option<Vec<Spanned<String>>>,
    pub lock_default_smbase: Option<Spanned<bool>>,
    pub lock_controller: Option<Spanned<bool>>,
}

/// One `[[event]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvent {
    /// A time string or an integer number of cycles.
    pub at: Spanned<toml::Value>,
    pub action: Spanned<String>,
    pub apic_id: Option<Spanned<u32>>,
    pub hard: Option<Spanned<bool>>,
}

/// `[expect]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    pub smbase: Option<RawSmbase>,
    pub console: Option<Vec<String>>,
    pub status: Option<i32>,
    pub online: Option<Vec<Spanned<u32>>>,
    /// blocked | exploitable | hang.
    pub verdict: Option<Spanned<String>>,
}

/// `expect.smbase`: a named rule, or a table of APIC ID → SMBASE with a span per entry.
#[derive(Debug)]
pub(crate) enum RawSmbase {
    /// The only named rule, `"unique-in-tseg"`; any other name is refused while parsing, so
    /// that the parser's error carries the line.
    UniqueInTseg,
    /// The table, in file order.
    Table(Vec<(String, Spanned<toml::Value>)>),
}

/// The one name `expect.smbase` accepts.
pub(crate) const UNIQUE_IN_TSEG: &str = "unique-in-tseg";

impl<'de> Deserialize<'de> for RawSmbase {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawSmbase, D::Error> {
        deserializer.deserialize_any(SmbaseVisitor)
    }
}

/// Reads `expect.smbase` from either of its two forms.
struct SmbaseVisitor;

impl<'de> Visitor<'de> for SmbaseVisitor {
    type Value = RawSmbase;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{UNIQUE_IN_TSEG}\" or a table of APIC ID = SMBASE (like {{ \"0\" = 0x7000000 }})"
        )
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<RawSmbase, E> {
        if name == UNIQUE_IN_TSEG {
            Ok(RawSmbase::UniqueInTseg)
        } else {
            Err(E::custom(format!(
                "unknown smbase expectation {name:?} (valid: \"{UNIQUE_IN_TSEG}\" or a table of \
                 APIC ID = SMBASE)"
            )))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSmbase, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value::<Spanned<toml::Value>>()?));
        }
        Ok(RawSmbase::Table(entries))
    }
}
