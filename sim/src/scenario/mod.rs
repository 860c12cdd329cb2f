//! Scenario files: one run described in TOML — the machine, the firmware, what the guest does,
//! timed events and the expected outcome (DESIGN.md §8).
//!
//! A scenario is checked completely when it is loaded, so a run never starts half-configured
//! and every mistake is reported as `FILE:LINE: what, with the value`. The flow:
//! 1. [`Scenario::from_file`] reads the file (or [`Scenario::from_str`] takes text and the
//!    path it came from) and the TOML parser builds the raw tables, refusing unknown keys and
//!    wrong types with their line and column;
//! 2. the machine settings are resolved to concrete values: defaults filled in from
//!    [`MachineConfig::default`], sizes and rates read with their units, times converted to
//!    cycles at the scenario's clock, names looked up;
//! 3. the firmware is checked: a built-in image must exist, a file must be a readable image
//!    (relative paths resolve against the scenario's directory);
//! 4. the events are checked in file order, which must be time order, tracking which CPUs are
//!    present so that adding a present CPU or removing an absent one is caught before the run;
//! 5. the expectations are checked against the machine (APIC IDs below `maxcpus`).
//!
//! The result is plain data: [`Scenario::machine_config`] gives the machine to build and
//! [`Scenario::fw_cfg_files`] the `opt/smmsim/*` files through which the guest firmware learns
//! what to do.
//!
//! ```toml
//! name = "smbase-smram: one hot-add"
//!
//! [machine]
//! cpus = 1
//! maxcpus = 4
//! memory = "512MiB"
//! strategy = "smbase-smram"
//!
//! [[event]]
//! at = "3ms"
//! action = "cpu-add"
//! apic_id = 1
//!
//! [expect]
//! smbase = "unique-in-tseg"
//! status = 1
//! ```

mod error;
mod raw;
mod resolve;
pub mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use error::{EventProblem, Location, Problem, ScenarioError};

use crate::checker::CheckSet;
use crate::cpu::smm::{Profile, SaveStateLayout};
use crate::image::{FirmwareImage, ImageError};
use crate::machine::MachineConfig;
use crate::scheduler::ExecMode;
use crate::timing::TimingTable;

/// The directory of the fw_cfg files a scenario gives the guest.
pub const FW_CFG_DIR: &str = "opt/smmsim/";
/// fw_cfg file: the relocation strategy's name ([`Strategy::name`]).
pub const FW_CFG_STRATEGY: &str = "opt/smmsim/strategy";
/// fw_cfg file: how the firmware and the OS side hand over a hot-added CPU
/// ([`Handshake::name`]).
pub const FW_CFG_HANDSHAKE: &str = "opt/smmsim/handshake";
/// fw_cfg file: what the guest does when its work is done ([`OnDone::name`]).
pub const FW_CFG_ON_DONE: &str = "opt/smmsim/on-done";
/// fw_cfg file: how many CPUs stay after boot, in decimal (strategy `max-cpus`).
pub const FW_CFG_BOOT_CPUS: &str = "opt/smmsim/boot-cpus";
/// fw_cfg file: how many hot-plug events (adds and removes) the guest should wait for in this
/// boot, in decimal.
pub const FW_CFG_HOTPLUG_EVENTS: &str = "opt/smmsim/hotplug-events";
/// fw_cfg file: the attacks the guest side plays, by [`Attack::name`], comma-separated; only
/// given when there are any.
pub const FW_CFG_ATTACKS: &str = "opt/smmsim/attacks";
/// fw_cfg file: `0` when firmware must leave the default-SMBASE window (MCH 0x9C) unlocked;
/// only given then.
pub const FW_CFG_LOCK_DEFAULT_SMBASE: &str = "opt/smmsim/lock-default-smbase";
/// fw_cfg file: `0` when firmware must leave the SMBASE controller unlocked; only given then.
pub const FW_CFG_LOCK_CONTROLLER: &str = "opt/smmsim/lock-controller";

/// A name that is not one of those accepted for a setting; its message lists the valid ones.
///
/// Shared by every name-valued setting so that each error reads the same way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?} (valid: {})", .valid.join(", "))]
pub struct UnknownName {
    /// What was being named: `strategy`, `layout`, …
    pub kind: &'static str,
    /// The name given.
    pub name: String,
    /// The names accepted.
    pub valid: &'static [&'static str],
}

/// Declares a name-valued setting: the enum, its `name()`, its list of names and `FromStr`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $ty:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $name:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $ty {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $ty {
            /// Every value, in the order the names are listed.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// Every accepted name, for error messages and listings.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name used in scenario files and fw_cfg.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(name: &str) -> Result<$ty, UnknownName> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|value| value.name() == name)
                    .ok_or_else(|| UnknownName {
                        kind: $kind,
                        name: name.to_owned(),
                        valid: $ty::NAMES,
                    })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_enum! {
    /// How the machine and firmware relocate SMBASE for boot and hot-added CPUs (DESIGN.md §6);
    /// the thing a scenario studies.
    pub enum Strategy ("strategy") {
        /// Firmware relocates present CPUs via 0x30000, then locks the default-SMBASE window as
        /// SMRAM; a hot-added CPU relocates itself guided by the monarch (QEMU q35 as shipped).
        SmbaseSmram = "smbase-smram",
        /// Firmware writes every possible CPU's SMBASE into the SMBASE controller; the platform
        /// loads it before a new CPU's first SMI.
        Controller = "controller",
        /// The platform sets SMBASE = base + APIC ID × stride, programmed by firmware.
        Formula = "formula",
        /// All `maxcpus` CPUs are present and relocated at boot, the extras then removed; a
        /// re-added CPU gets INIT only and keeps its SMBASE.
        MaxCpus = "max-cpus",
    }
}

named_enum! {
    /// How the guest's OS side and the firmware hand over a hot-added CPU.
    pub enum Handshake ("handshake") {
        /// As OVMF: the OS raises an SMI and the firmware relocates the new CPU in SMM.
        Ovmf = "ovmf",
        /// The OS side redirects the new CPU itself (for comparison with OVMF's way).
        Redirect = "redirect",
    }
}

named_enum! {
    /// Something the guest side does, as a malicious OS, around a hot-add (the `boot` image's
    /// "Attacks"); the checker's findings say whether it worked.
    pub enum Attack ("attack") {
        /// On an insert event, before the hot-plug SMI, write code over the first SMI handler
        /// at 0x38000.
        Plant38000 = "plant-38000",
        /// On an insert event, send the new CPU a directed SMI IPI before the firmware does.
        EarlySmi = "early-smi",
        /// On an insert event, start the new CPU with INIT-SIPI-SIPI in OS code before the
        /// hot-plug SMI.
        EarlySipi = "early-sipi",
        /// Before any hot-add, point the SMBASE controller at OS memory from outside SMM.
        WriteController = "write-controller",
    }
}

/// A set of [`Attack`]s; listed in [`Attack::ALL`] order whatever the order given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attacks(u8);

impl Attacks {
    /// No attack.
    pub const NONE: Attacks = Attacks(0);

    fn bit(attack: Attack) -> u8 {
        let index = Attack::ALL
            .iter()
            .position(|known| *known == attack)
            .expect("every attack is listed in Attack::ALL");
        1 << index
    }

    /// Whether `attack` is in the set.
    pub fn contains(self, attack: Attack) -> bool {
        self.0 & Self::bit(attack) != 0
    }

    /// The set with `attack` added.
    #[must_use]
    pub fn with(self, attack: Attack) -> Attacks {
        Attacks(self.0 | Self::bit(attack))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The attacks in the set, in [`Attack::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Attack> {
        Attack::ALL
            .iter()
            .copied()
            .filter(move |attack| self.contains(*attack))
    }

    /// The names, comma-separated (the `opt/smmsim/attacks` file).
    pub fn names(self) -> String {
        self.iter().map(Attack::name).collect::<Vec<_>>().join(",")
    }
}

named_enum! {
    /// What the guest does once it has handled every expected event.
    pub enum OnDone ("on_done") {
        /// Write the debug-exit port, ending the run with a status.
        Exit = "exit",
        /// Halt every CPU, ending the run when all are idle.
        Halt = "halt",
    }
}

/// The machine of a scenario, every value resolved (defaults filled in, units converted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineSettings {
    /// CPUs present at reset (`cpus`).
    pub cpus: u32,
    /// CPUs possible (`maxcpus`).
    pub max_cpus: u32,
    /// RAM size (`memory`).
    pub ram_bytes: u64,
    /// The relocation strategy (`strategy`).
    pub strategy: Strategy,
    /// The state-save map (`layout`).
    pub layout: SaveStateLayout,
    /// The SMI/INIT/SIPI behaviour profile (`profile`).
    pub profile: Profile,
    /// How cores share the host (`mode`).
    pub mode: ExecMode,
    /// The core clock (`clock`), used to convert every time in the file to cycles.
    pub clock_hz: u64,
    /// Cycles per quantum (`quantum`).
    pub quantum_cycles: u64,
    /// The cycle limit of the run (`max_cycles`).
    pub max_cycles: u64,
    /// Whether a hot-added CPU starts from RESET (`hotadd_reset`); false only for `max-cpus`.
    pub hotadd_reset: bool,
    /// Cycles from an IPI's send to its delivery (`ipi_latency`).
    pub ipi_latency_cycles: u64,
    /// Extended TSEG size in MiB (`tseg_mbytes`): room for maxcpus × 8 KiB SMM tiles.
    pub tseg_mbytes: u16,
    /// Instruction costs: the defaults with `[machine.timing]` applied.
    pub timing: TimingTable,
}

/// Where the firmware image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirmwareSource {
    /// A built-in image, by a name that exists in `smmsim_firmware::IMAGES`.
    Builtin(String),
    /// An image file, its path resolved against the scenario's directory; it was readable
    /// and a valid image when the scenario was loaded.
    File(PathBuf),
}

/// What the guest side does, passed to it through fw_cfg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestSettings {
    /// How a hot-added CPU is handed over (`handshake`).
    pub handshake: Handshake,
    /// What the guest does at the end (`on_done`).
    pub on_done: OnDone,
    /// CPUs that stay after boot (`boot_cpus`), when given.
    pub boot_cpus: Option<u32>,
    /// What the guest side attacks (`attacks`); none by default.
    pub attacks: Attacks,
    /// Whether firmware locks the default-SMBASE window, MCH 0x9C (`lock_default_smbase`,
    /// default true; false is a vulnerable firmware configuration).
    pub lock_default_smbase: bool,
    /// Whether firmware locks the SMBASE controller (`lock_controller`, default true; only
    /// strategies `controller` and `formula` program it).
    pub lock_controller: bool,
}

/// Something the platform does to the machine at a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Plug in the CPU with this APIC ID.
    CpuAdd {
        /// The CPU's APIC ID, below `maxcpus`.
        apic_id: u32,
    },
    /// Ask the guest to eject the CPU with this APIC ID.
    CpuRemove {
        /// The CPU's APIC ID, not 0.
        apic_id: u32,
    },
    /// Reset the machine, as a write to port 0xCF9 would.
    Reset {
        /// A hard reset (also resets the chipset) rather than a soft one.
        hard: bool,
    },
}

impl EventAction {
    /// Every action name, for error messages.
    pub const NAMES: &'static [&'static str] = &["cpu-add", "cpu-remove", "reset"];

    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            EventAction::CpuAdd { .. } => "cpu-add",
            EventAction::CpuRemove { .. } => "cpu-remove",
            EventAction::Reset { .. } => "reset",
        }
    }

    /// Whether this is a hot-plug event the guest waits for (an add or a remove).
    pub fn is_hotplug(self) -> bool {
        !matches!(self, EventAction::Reset { .. })
    }
}

/// An event of the scenario, at the cycle it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduledEvent {
    /// When, in cycles from the start of the run; events are in non-decreasing order.
    pub at_cycle: u64,
    /// What happens.
    pub action: EventAction,
    /// The line of the event in the scenario file, for reports that point back to it.
    pub line: usize,
}

/// The SMBASE map a run must end with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmbaseExpectation {
    /// Every present CPU has an SMBASE inside TSEG, and no two share one.
    UniqueInTseg,
    /// These APIC IDs have exactly these SMBASEs.
    Exact(BTreeMap<u32, u64>),
}

/// What a run means for safety, from the checker's findings (DESIGN.md §9).
///
/// Exists so attack scenarios can say what they must show, and tables can sum them up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing worse than attempts the platform dropped (blocked SMRAM or controller
    /// writes) or a CPU running on the reset SMBASE.
    Blocked,
    /// SMM ran code outside SMRAM, entered with an SMBASE outside it, shared a save area,
    /// or two CPUs ended with one SMBASE: an attacker controls SMM or its saved state.
    Exploitable,
    /// Nothing exploitable, but the run did not finish: the attack (or the platform)
    /// wedged the machine.
    Hang,
}

impl Verdict {
    /// Every verdict's name, for error messages.
    pub const NAMES: &'static [&'static str] = &["blocked", "exploitable", "hang"];

    /// The checks whose findings make a run exploitable.
    pub const EXPLOITABLE_CHECKS: [&'static str; 4] = [
        "save-area-overlap",
        "smm-code-outside-smram",
        "smbase-outside-smram",
        "duplicate-smbase",
    ];

    /// The name scenario files and tables use.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Exploitable => "exploitable",
            Verdict::Hang => "hang",
        }
    }

    /// The verdict of a run with these findings (check name → count) that `finished` (ended
    /// by the guest rather than by the cycle limit).
    pub fn of(violations: &BTreeMap<String, u64>, finished: bool) -> Verdict {
        let exploitable = violations
            .keys()
            .any(|check| Self::EXPLOITABLE_CHECKS.contains(&check.as_str()));
        if exploitable {
            Verdict::Exploitable
        } else if finished {
            Verdict::Blocked
        } else {
            Verdict::Hang
        }
    }
}

impl FromStr for Verdict {
    type Err = UnknownName;

    fn from_str(text: &str) -> Result<Verdict, UnknownName> {
        [Verdict::Blocked, Verdict::Exploitable, Verdict::Hang]
            .into_iter()
            .find(|verdict| verdict.name() == text)
            .ok_or_else(|| UnknownName {
                kind: "verdict",
                name: text.to_owned(),
                valid: Verdict::NAMES,
            })
    }
}

/// What a run must produce for the scenario to pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The final SMBASE map, if checked.
    pub smbase: Option<SmbaseExpectation>,
    /// Lines that must appear on the console, each matched as a whole line.
    pub console: Vec<String>,
    /// The process exit status of the run (a debug-exit write of v gives (v << 1) | 1).
    pub status: Option<i32>,
    /// The APIC IDs that must be present at the end, if checked.
    pub online: Option<Vec<u32>>,
    /// The safety verdict the run must reach (attack scenarios).
    pub verdict: Option<Verdict>,
}

/// One checked scenario: everything a run needs, as plain values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The scenario's name (`name`, or the file stem).
    pub name: String,
    /// What it is about (`description`), if given.
    pub description: Option<String>,
    /// The file it was read from, as named by the caller.
    pub origin: PathBuf,
    /// The machine.
    pub machine: MachineSettings,
    /// The firmware image.
    pub firmware: FirmwareSource,
    /// What the guest side does.
    pub guest: GuestSettings,
    /// The timed events, in time order.
    pub events: Vec<ScheduledEvent>,
    /// The expected outcome.
    pub expect: Expectations,
    /// The safety checks that run (`[check] disable` switches some off).
    pub checks: CheckSet,
    /// FNV-1a 64 of the file's bytes; see [`Scenario::scenario_hash`].
    source_hash: u64,
}

impl Scenario {
    /// Reads and checks the scenario file at `path`.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError::Unreadable {
            path: path.to_owned(),
            error,
        })?;
        Scenario::from_str(&text, path)
    }

    /// Checks scenario `text`; `origin` is the file it came from, used to name it in errors,
    /// as the default name (its stem) and to resolve a relative firmware path (against its
    /// directory).
    pub fn from_str(text: &str, origin: &Path) -> Result<Scenario, ScenarioError> {
        resolve::resolve(text, origin)
    }

    /// The machine to build for this scenario: [`MachineConfig::default`] with the scenario's
    /// values. For strategy `max-cpus` every possible CPU is present at reset (the guest
    /// removes the extras after boot), so `cpus` is `max_cpus` there.
    pub fn machine_config(&self) -> MachineConfig {
        let machine = &self.machine;
        let cpus = match machine.strategy {
            Strategy::MaxCpus => machine.max_cpus,
            _ => machine.cpus,
        };
        MachineConfig {
            ram_bytes: machine.ram_bytes,
            timing: machine.timing,
            clock_hz: machine.clock_hz,
            max_cycles: machine.max_cycles,
            quantum_cycles: machine.quantum_cycles,
            cpus,
            max_cpus: machine.max_cpus,
            mode: machine.mode,
            ipi_latency_cycles: machine.ipi_latency_cycles,
            tseg_mbytes: machine.tseg_mbytes,
            checks: self.checks,
            layout: machine.layout,
            profile: machine.profile,
            hotadd_reset: machine.hotadd_reset,
            ..MachineConfig::default()
        }
    }

    /// The CPUs that stay after boot: `boot_cpus` if given, else `cpus`.
    pub fn boot_cpus(&self) -> u32 {
        self.guest.boot_cpus.unwrap_or(self.machine.cpus)
    }

    /// The fw_cfg files for the first boot: `(name, contents)`, contents in ASCII with no
    /// terminator. See [`Scenario::fw_cfg_files_after_reset`].
    pub fn fw_cfg_files(&self) -> Vec<(String, Vec<u8>)> {
        self.fw_cfg_files_after_reset(0)
    }

    /// The fw_cfg files for the boot after `resets_done` reset events (0 is the first boot):
    /// the strategy, handshake and on-done names; the boot CPU count when `boot_cpus` is given
    /// or the strategy is `max-cpus`; the number of hot-plug events (adds and removes)
    /// scheduled between that reset and the next, which the guest waits for before it is done;
    /// and, only when they differ from the defaults, the attacks and the two lock switches.
    pub fn fw_cfg_files_after_reset(&self, resets_done: usize) -> Vec<(String, Vec<u8>)> {
        let file = |name: &str, contents: String| (name.to_owned(), contents.into_bytes());
        let mut files = vec![
            file(FW_CFG_STRATEGY, self.machine.strategy.name().to_owned()),
            file(FW_CFG_HANDSHAKE, self.guest.handshake.name().to_owned()),
            file(
                FW_CFG_ON_DONE,
                self.on_done_in_boot(resets_done).name().to_owned(),
            ),
        ];
        if self.guest.boot_cpus.is_some() || self.machine.strategy == Strategy::MaxCpus {
            files.push(file(FW_CFG_BOOT_CPUS, self.boot_cpus().to_string()));
        }
        let hotplug = self.hotplug_events_in_boot(resets_done);
        files.push(file(FW_CFG_HOTPLUG_EVENTS, hotplug.to_string()));
        if !self.guest.attacks.is_empty() {
            files.push(file(FW_CFG_ATTACKS, self.guest.attacks.names()));
        }
        if !self.guest.lock_default_smbase {
            files.push(file(FW_CFG_LOCK_DEFAULT_SMBASE, "0".to_owned()));
        }
        if !self.guest.lock_controller {
            files.push(file(FW_CFG_LOCK_CONTROLLER, "0".to_owned()));
        }
        files
    }

    /// What the guest does once done in the boot after `resets_done` resets: halt when the
    /// scenario resets the machine later (an exit would end the run before the reset),
    /// else the scenario's `on_done`.
    pub fn on_done_in_boot(&self, resets_done: usize) -> OnDone {
        let resets = self
            .events
            .iter()
            .filter(|event| !event.action.is_hotplug())
            .count();
        if resets > resets_done {
            OnDone::Halt
        } else {
            self.guest.on_done
        }
    }

    /// How many adds and removes happen between reset `resets_done` and the next one.
    pub fn hotplug_events_in_boot(&self, resets_done: usize) -> usize {
        let mut boot = 0;
        let mut count = 0;
        for event in &self.events {
            if !event.action.is_hotplug() {
                boot += 1;
            } else if boot == resets_done {
                count += 1;
            }
        }
        count
    }

    /// A stable identity of the scenario for trace headers and batch results: the 64-bit
    /// FNV-1a hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of the file's bytes
    /// exactly as read, so any edit to the file changes it and nothing else does.
    pub fn scenario_hash(&self) -> u64 {
        self.source_hash
    }

    /// Opens the firmware image the scenario names.
    pub fn firmware_image(&self) -> Result<FirmwareImage, ImageError> {
        match &self.firmware {
            FirmwareSource::Builtin(name) => FirmwareImage::builtin(name),
            FirmwareSource::File(path) => FirmwareImage::from_file(path),
        }
    }
}

/// FNV-1a, 64-bit: simple, stable across Rust versions and hosts, and good enough to tell
/// scenario files apart (not a cryptographic hash).
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid_ones() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>(), Ok(*strategy));
        }
        let err = "maxcpus".parse::<Strategy>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown strategy \"maxcpus\" (valid: smbase-smram, controller, formula, max-cpus)"
        );
        assert_eq!("redirect".parse::<Handshake>(), Ok(Handshake::Redirect));
        assert_eq!("halt".parse::<OnDone>(), Ok(OnDone::Halt));
        assert_eq!("early-sipi".parse::<Attack>(), Ok(Attack::EarlySipi));
    }

    #[test]
    fn attack_sets_list_their_names_in_a_fixed_order() {
        let set = Attacks::NONE
            .with(Attack::WriteController)
            .with(Attack::Plant38000);
        assert!(set.contains(Attack::Plant38000) && !set.contains(Attack::EarlySmi));
        assert_eq!(set.names(), "plant-38000,write-controller");
        assert!(Attacks::NONE.is_empty() && Attacks::NONE.names().is_empty());
    }
}
