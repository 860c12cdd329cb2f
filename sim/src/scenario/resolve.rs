//! Turning the raw TOML tables into a checked [`Scenario`]: defaults, units, names, and the
//! checks that need more than one value (CPU counts, event order, CPU presence).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use toml::Spanned;

use super::error::{ErrorContext, EventProblem, Location, Problem, ScenarioError};
use super::raw::{
    RawCheck, RawEvent, RawExpect, RawFirmware, RawGuest, RawMachine, RawScenario, RawSmbase,
};
use super::units::{self, UnitError};
use super::{
    fnv1a_64, Attack, Attacks, EventAction, Expectations, FirmwareSource, GuestSettings, Handshake,
    MachineSettings, OnDone, Scenario, ScheduledEvent, SmbaseExpectation, Strategy, UnknownName,
    Verdict,
};
use crate::checker::{Check, CheckSet};
use crate::cpu::smm::{Profile, SaveStateLayout};
use crate::image::{FirmwareImage, ImageError};
use crate::machine::{MachineConfig, MAX_CPUS};
use crate::memory::{CODE_PAGE_BYTES, MAX_RAM_BYTES};
use crate::scheduler::ExecMode;
use crate::timing::{TimingError, TimingTable, MAX_CLASS_CYCLES};

/// Bytes in a MiB: an integer `memory` is a number of MiB.
const MIB: u64 = 1 << 20;

/// The name of a scenario whose file name has no stem.
const FALLBACK_NAME: &str = "scenario";

/// The `mode` names, in the order errors list them.
const MODE_NAMES: &[&str] = &["deterministic", "parallel"];

/// Parses and checks a whole scenario (steps 1–5 of the module doc).
pub(crate) fn resolve(text: &str, origin: &Path) -> Result<Scenario, ScenarioError> {
    let cx = ErrorContext { origin, text };
    let raw: RawScenario = toml::from_str(text).map_err(|error| cx.toml(&error))?;
    let machine = machine(&cx, &raw.machine)?;
    let guest = guest(&cx, &raw.guest, &machine)?;
    let firmware = firmware(&cx, &raw.firmware)?;
    let events = events(&cx, &raw.events, &machine, &guest)?;
    let expect = expectations(&cx, raw.expect, machine.max_cpus)?;
    let checks = checks(&cx, &raw.check)?;
    Ok(Scenario {
        name: raw.name.unwrap_or_else(|| default_name(origin)),
        description: raw.description,
        origin: origin.to_owned(),
        machine,
        firmware,
        guest,
        events,
        expect,
        checks,
        source_hash: fnv1a_64(text.as_bytes()),
    })
}

/// `[check] disable = [...]`: every safety check but the ones named.
fn checks(cx: &ErrorContext<'_>, raw: &RawCheck) -> Result<CheckSet, ScenarioError> {
    let mut set = CheckSet::all();
    for name in raw.disable.iter().flatten() {
        let check = Check::from_name(name.get_ref()).ok_or_else(|| {
            cx.at(
                name.span(),
                Problem::UnknownName(UnknownName {
                    kind: "check",
                    name: name.get_ref().clone(),
                    valid: &Check::NAMES,
                }),
            )
        })?;
        set = set.without(check);
    }
    Ok(set)
}

/// The file stem, or a fixed name when the path has none.
fn default_name(origin: &Path) -> String {
    origin.file_stem().map_or_else(
        || FALLBACK_NAME.to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// [machine]

/// `[machine]`, every value resolved.
fn machine(cx: &ErrorContext<'_>, raw: &RawMachine) -> Result<MachineSettings, ScenarioError> {
    let defaults = MachineConfig::default();
    let (cpus, max_cpus) = cpu_counts(cx, raw)?;
    let clock_hz = clock(cx, raw.clock.as_ref(), defaults.clock_hz)?;
    let strategy = named(cx, raw.strategy.as_ref(), Strategy::SmbaseSmram, str::parse)?;
    let hotadd_reset = hotadd_reset(cx, raw, strategy)?;
    let max_cycles = match &raw.max_cycles {
        Some(value) => positive(
            cx,
            "max_cycles",
            value,
            cycles(cx, "max_cycles", value, clock_hz)?,
        )?,
        None => defaults.max_cycles,
    };
    let quantum_cycles = match &raw.quantum {
        Some(quantum) => positive(cx, "quantum", quantum, *quantum.get_ref())?,
        None => defaults.quantum_cycles,
    };
    Ok(MachineSettings {
        cpus,
        max_cpus,
        ram_bytes: memory(cx, raw.memory.as_ref(), defaults.ram_bytes)?,
        strategy,
        layout: named(
            cx,
            raw.layout.as_ref(),
            defaults.layout,
            SaveStateLayout::from_str,
        )?,
        profile: named(
            cx,
            raw.profile.as_ref(),
            defaults.profile,
            Profile::from_str,
        )?,
        mode: named(cx, raw.mode.as_ref(), defaults.mode, exec_mode)?,
        clock_hz,
        quantum_cycles,
        max_cycles,
        hotadd_reset,
        ipi_latency_cycles: raw
            .ipi_latency
            .as_ref()
            .map_or(defaults.ipi_latency_cycles, |latency| *latency.get_ref()),
        timing: timing(cx, raw.timing.as_ref())?,
        tseg_mbytes: tseg_mbytes(cx, raw.tseg_mbytes.as_ref(), defaults.tseg_mbytes)?,
    })
}

/// `tseg_mbytes`: the extended TSEG size in MiB, 1 to 4095 (what MCH register 0x50 can
/// report, PLATFORM.md); the machine checks it against the RAM size when it is built.
fn tseg_mbytes(
    cx: &ErrorContext<'_>,
    value: Option<&Spanned<u64>>,
    default: u16,
) -> Result<u16, ScenarioError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let mbytes = *value.get_ref();
    match u16::try_from(mbytes) {
        Ok(mbytes @ 1..=MAX_TSEG_MBYTES) => Ok(mbytes),
        _ => Err(cx.at(
            value.span(),
            Problem::BadValue {
                key: "tseg_mbytes".to_owned(),
                value: mbytes.to_string(),
                reason: format!("must be 1 to {MAX_TSEG_MBYTES} MiB"),
            },
        )),
    }
}

/// The largest extended TSEG MCH register 0x50 can report, in MiB.
const MAX_TSEG_MBYTES: u16 = 0xFFF;

/// `cpus` and `maxcpus`: 1 <= cpus <= maxcpus <= [`MAX_CPUS`]; `maxcpus` defaults to `cpus`.
fn cpu_counts(cx: &ErrorContext<'_>, raw: &RawMachine) -> Result<(u32, u32), ScenarioError> {
    let cpus_span = raw.cpus.as_ref().map(Spanned::span);
    let cpus = raw.cpus.as_ref().map_or(1, |cpus| *cpus.get_ref());
    if cpus == 0 {
        return Err(cx.at(cpus_span.unwrap_or_default(), Problem::NoCpus));
    }
    let (max_cpus, max_key, max_span) = match &raw.maxcpus {
        Some(max) => (*max.get_ref(), "maxcpus", max.span()),
        None => (cpus, "cpus", cpus_span.clone().unwrap_or_default()),
    };
    if max_cpus > MAX_CPUS {
        let problem = Problem::TooManyCpus {
            key: max_key,
            count: max_cpus,
        };
        return Err(cx.at(max_span, problem));
    }
    if cpus > max_cpus {
        let problem = Problem::CpusAboveMaxCpus { cpus, max_cpus };
        return Err(cx.at(cpus_span.unwrap_or(max_span), problem));
    }
    Ok((cpus, max_cpus))
}

/// `hotadd_reset`, default true; `max-cpus` needs it false.
fn hotadd_reset(
    cx: &ErrorContext<'_>,
    raw: &RawMachine,
    strategy: Strategy,
) -> Result<bool, ScenarioError> {
    let hotadd_reset = raw
        .hotadd_reset
        .as_ref()
        .map_or(true, |value| *value.get_ref());
    if strategy == Strategy::MaxCpus && hotadd_reset {
        let span = match (&raw.hotadd_reset, &raw.strategy) {
            (Some(value), _) => value.span(),
            (None, Some(strategy)) => strategy.span(),
            (None, None) => 0..0,
        };
        let defaulted = raw.hotadd_reset.is_none();
        return Err(cx.at(span, Problem::HotaddResetWithMaxCpus { defaulted }));
    }
    Ok(hotadd_reset)
}

/// `memory`: a size string or an integer number of MiB; a non-zero multiple of 4 KiB up to
/// the largest RAM guest memory can map.
fn memory(
    cx: &ErrorContext<'_>,
    value: Option<&Spanned<toml::Value>>,
    default: u64,
) -> Result<u64, ScenarioError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let bytes = match value.get_ref() {
        toml::Value::String(text) => {
            units::parse_size(text).map_err(|error| unit(cx, "memory", value, error))?
        }
        toml::Value::Integer(mib) => {
            let mib = non_negative(cx, "memory", value, *mib)?;
            mib.checked_mul(MIB)
                .ok_or_else(|| unit(cx, "memory", value, UnitError::Overflow))?
        }
        _ => {
            return Err(wrong_type(
                cx,
                "memory",
                value,
                "a size like \"512MiB\" or an integer number of MiB",
            ))
        }
    };
    if bytes == 0 || bytes % CODE_PAGE_BYTES != 0 || bytes > MAX_RAM_BYTES {
        let reason = format!(
            "{bytes} bytes is not a non-zero multiple of 4 KiB up to {} MiB",
            MAX_RAM_BYTES / MIB
        );
        return Err(bad_value(cx, "memory", value, reason));
    }
    Ok(bytes)
}

/// `clock`: a rate string or an integer number of Hz, not zero.
fn clock(
    cx: &ErrorContext<'_>,
    value: Option<&Spanned<toml::Value>>,
    default: u64,
) -> Result<u64, ScenarioError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let hz = match value.get_ref() {
        toml::Value::String(text) => {
            units::parse_clock(text).map_err(|error| unit(cx, "clock", value, error))?
        }
        toml::Value::Integer(hz) => non_negative(cx, "clock", value, *hz)?,
        _ => {
            return Err(wrong_type(
                cx,
                "clock",
                value,
                "a rate like \"2GHz\" or an integer number of Hz",
            ))
        }
    };
    positive(cx, "clock", value, hz)
}

/// A time string converted at `clock_hz`, or an integer number of cycles.
fn cycles(
    cx: &ErrorContext<'_>,
    key: &str,
    value: &Spanned<toml::Value>,
    clock_hz: u64,
) -> Result<u64, ScenarioError> {
    match value.get_ref() {
        toml::Value::String(text) => {
            units::time_to_cycles(text, clock_hz).map_err(|error| unit(cx, key, value, error))
        }
        toml::Value::Integer(cycles) => non_negative(cx, key, value, *cycles),
        _ => Err(wrong_type(
            cx,
            key,
            value,
            "a time like \"3ms\" or an integer number of cycles",
        )),
    }
}

/// `[machine.timing]`: known class names only, costs checked by [`TimingTable::from_toml`]
/// itself so the scenario and `--timing` files accept exactly the same values.
fn timing(
    cx: &ErrorContext<'_>,
    raw: Option<&BTreeMap<String, Spanned<u32>>>,
) -> Result<TimingTable, ScenarioError> {
    let Some(costs) = raw else {
        return Ok(TimingTable::default());
    };
    let classes = TimingTable::default().classes();
    let mut text = String::new();
    for (class, cycles) in costs {
        if !classes.iter().any(|(name, _)| name == class) {
            let expected = classes
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ");
            let problem = Problem::UnknownTimingClass {
                key: class.clone(),
                expected,
            };
            return Err(cx.at(cycles.span(), problem));
        }
        // Class names are plain identifiers and costs integers: the text is valid TOML.
        let _ = writeln!(text, "{class} = {}", cycles.get_ref());
    }
    TimingTable::from_toml(cx.origin, &text).map_err(|error| match error {
        TimingError::OutOfRange { class, cycles, .. } => {
            let span = costs.get(class).map_or(0..0, Spanned::span);
            let problem = Problem::TimingOutOfRange {
                class: class.to_owned(),
                cycles,
                max: MAX_CLASS_CYCLES,
            };
            cx.at(span, problem)
        }
        other => cx.error(None, Problem::Toml(other.to_string())),
    })
}

/// `ExecMode` from its scenario name.
fn exec_mode(name: &str) -> Result<ExecMode, UnknownName> {
    match name {
        "deterministic" => Ok(ExecMode::Deterministic),
        "parallel" => Ok(ExecMode::Parallel),
        _ => Err(UnknownName {
            kind: "mode",
            name: name.to_owned(),
            valid: MODE_NAMES,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// [firmware] and [guest]

/// `[firmware]`: a built-in image by name (default `boot`) or a readable image file.
fn firmware(cx: &ErrorContext<'_>, raw: &RawFirmware) -> Result<FirmwareSource, ScenarioError> {
    match (&raw.builtin, &raw.path) {
        (Some(builtin), Some(path)) => {
            let problem = Problem::FirmwareBoth {
                builtin: builtin.get_ref().clone(),
                path: path.get_ref().clone(),
            };
            Err(cx.at(later(builtin.span(), path.span()), problem))
        }
        (None, Some(path)) => firmware_file(cx, path),
        (builtin, None) => {
            let name = builtin
                .as_ref()
                .map_or(smmsim_firmware::DEFAULT_IMAGE, |name| {
                    name.get_ref().as_str()
                });
            if smmsim_firmware::find(name).is_some() {
                return Ok(FirmwareSource::Builtin(name.to_owned()));
            }
            let known = smmsim_firmware::IMAGES
                .iter()
                .map(|image| image.name)
                .collect::<Vec<_>>()
                .join(", ");
            let problem = Problem::UnknownBuiltin {
                name: name.to_owned(),
                known,
            };
            Err(cx.at(builtin.as_ref().map_or(0..0, Spanned::span), problem))
        }
    }
}

/// An image file: resolved against the scenario's directory and opened now, so that a run
/// never starts with a firmware it cannot load.
fn firmware_file(
    cx: &ErrorContext<'_>,
    path: &Spanned<String>,
) -> Result<FirmwareSource, ScenarioError> {
    let given = path.get_ref();
    let resolved = resolve_path(cx.origin, Path::new(given));
    match FirmwareImage::from_file(&resolved) {
        Ok(_) => Ok(FirmwareSource::File(resolved)),
        Err(error) => {
            let reason = match error {
                ImageError::Unreadable { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            let problem = Problem::Firmware {
                given: given.clone(),
                resolved,
                reason,
            };
            Err(cx.at(path.span(), problem))
        }
    }
}

/// `path` as is if absolute, else relative to the directory of `origin`.
fn resolve_path(origin: &Path, path: &Path) -> PathBuf {
    match origin.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_owned(),
    }
}

/// `[guest]`, with `boot_cpus` in 1..=maxcpus, known attack names, each once, and
/// `lock_controller = false` only where firmware programs the SMBASE controller.
fn guest(
    cx: &ErrorContext<'_>,
    raw: &RawGuest,
    machine: &MachineSettings,
) -> Result<GuestSettings, ScenarioError> {
    let max_cpus = machine.max_cpus;
    let boot_cpus = match &raw.boot_cpus {
        Some(value) => {
            let boot_cpus = *value.get_ref();
            if !(1..=max_cpus).contains(&boot_cpus) {
                return Err(cx.at(
                    value.span(),
                    Problem::BootCpus {
                        boot_cpus,
                        max_cpus,
                    },
                ));
            }
            Some(boot_cpus)
        }
        None => None,
    };
    let lock_controller = match &raw.lock_controller {
        Some(value) => {
            let lock = *value.get_ref();
            if !lock && !matches!(machine.strategy, Strategy::Controller | Strategy::Formula) {
                return Err(cx.at(
                    value.span(),
                    Problem::BadValue {
                        key: "lock_controller".to_owned(),
                        value: lock.to_string(),
                        reason: format!(
                            "only strategies controller and formula program the SMBASE \
                             controller (strategy is {})",
                            machine.strategy
                        ),
                    },
                ));
            }
            lock
        }
        None => true,
    };
    Ok(GuestSettings {
        handshake: named(cx, raw.handshake.as_ref(), Handshake::Ovmf, str::parse)?,
        on_done: named(cx, raw.on_done.as_ref(), OnDone::Exit, str::parse)?,
        boot_cpus,
        attacks: attacks(cx, raw.attacks.as_deref())?,
        lock_default_smbase: raw
            .lock_default_smbase
            .as_ref()
            .map_or(true, |value| *value.get_ref()),
        lock_controller,
    })
}

/// `attacks = [...]`: known names, none twice.
fn attacks(
    cx: &ErrorContext<'_>,
    names: Option<&[Spanned<String>]>,
) -> Result<Attacks, ScenarioError> {
    let mut set = Attacks::NONE;
    for name in names.unwrap_or_default() {
        let attack = name
            .get_ref()
            .parse::<Attack>()
            .map_err(|unknown| cx.at(name.span(), Problem::UnknownName(unknown)))?;
        if set.contains(attack) {
            return Err(cx.at(
                name.span(),
                Problem::BadValue {
                    key: "attacks".to_owned(),
                    value: format!("{:?}", attack.name()),
                    reason: "listed more than once".to_owned(),
                },
            ));
        }
        set = set.with(attack);
    }
    Ok(set)
}

// ---------------------------------------------------------------------------------------------
// [[event]]

/// Which APIC IDs are present as the events are walked in order.
struct Presence {
    present: Vec<bool>,
}

impl Presence {
    /// CPUs present once the first boot is done: `0..cpus`, or for `max-cpus`
    /// `0..boot_cpus` (all `maxcpus` are present at reset, but the guest removes the others
    /// right after boot).
    fn after_boot(machine: &MachineSettings, guest: &GuestSettings) -> Presence {
        let count = match machine.strategy {
            Strategy::MaxCpus => guest.boot_cpus.unwrap_or(machine.cpus),
            _ => machine.cpus,
        };
        let present = (0..machine.max_cpus)
            .map(|apic_id| apic_id < count)
            .collect();
        Presence { present }
    }

    /// Applies an add or remove; a reset leaves the set as it is (hot-added CPUs stay plugged
    /// across a reset, as in QEMU).
    fn apply(&mut self, action: EventAction) -> Result<(), EventProblem> {
        match action {
            EventAction::CpuAdd { apic_id } => {
                let slot = self.slot(apic_id)?;
                if std::mem::replace(slot, true) {
                    return Err(EventProblem::AlreadyPresent { apic_id });
                }
            }
            EventAction::CpuRemove { apic_id } => {
                if apic_id == 0 {
                    return Err(EventProblem::RemoveBsp);
                }
                let slot = self.slot(apic_id)?;
                if !std::mem::replace(slot, false) {
                    return Err(EventProblem::NotPresent { apic_id });
                }
            }
            EventAction::Reset { .. } => {}
        }
        Ok(())
    }

    fn slot(&mut self, apic_id: u32) -> Result<&mut bool, EventProblem> {
        let max_cpus = u32::try_from(self.present.len()).unwrap_or(u32::MAX);
        self.present
            .get_mut(apic_id as usize)
            .ok_or(EventProblem::ApicIdTooLarge { apic_id, max_cpus })
    }
}

/// Every `[[event]]`, in file order, which must be time order.
fn events(
    cx: &ErrorContext<'_>,
    raw: &[Spanned<RawEvent>],
    machine: &MachineSettings,
    guest: &GuestSettings,
) -> Result<Vec<ScheduledEvent>, ScenarioError> {
    let mut presence = Presence::after_boot(machine, guest);
    let mut scheduled: Vec<ScheduledEvent> = Vec::with_capacity(raw.len());
    for (index, spanned) in raw.iter().enumerate() {
        let number = index + 1;
        let event = spanned.get_ref();
        let fail = |span: Range<usize>, problem| cx.at(span, Problem::Event { number, problem });
        let value_error = |error: ScenarioError| rewrap_in_event(error, number);
        let at_cycle = cycles(cx, "at", &event.at, machine.clock_hz).map_err(value_error)?;
        let previous_cycle = scheduled.last().map_or(0, |previous| previous.at_cycle);
        let at = event.at.get_ref().to_string();
        if at_cycle < previous_cycle {
            let problem = EventProblem::OutOfOrder {
                at,
                at_cycle,
                previous_cycle,
            };
            return Err(fail(event.at.span(), problem));
        }
        if at_cycle >= machine.max_cycles {
            let max_cycles = machine.max_cycles;
            let problem = EventProblem::BeyondLimit {
                at,
                at_cycle,
                max_cycles,
            };
            return Err(fail(event.at.span(), problem));
        }
        let action = action(event).map_err(|(span, problem)| fail(span, problem))?;
        let presence_span = event
            .apic_id
            .as_ref()
            .map_or(event.action.span(), Spanned::span);
        presence
            .apply(action)
            .map_err(|problem| fail(presence_span, problem))?;
        scheduled.push(ScheduledEvent {
            at_cycle,
            action,
            line: Location::of_offset(cx.text, spanned.span().start, false).line,
        });
    }
    Ok(scheduled)
}

/// An error about one of an event's values, as an error about that event.
fn rewrap_in_event(error: ScenarioError, number: usize) -> ScenarioError {
    match error {
        ScenarioError::Invalid {
            origin,
            location,
            problem,
        } => ScenarioError::Invalid {
            origin,
            location,
            problem: Box::new(Problem::Event {
                number,
                problem: EventProblem::Value(problem),
            }),
        },
        other => other,
    }
}

/// The action of an event, with the keys it needs and none it does not.
fn action(event: &RawEvent) -> Result<EventAction, (Range<usize>, EventProblem)> {
    match event.action.get_ref().as_str() {
        "cpu-add" => hotplug(event, "cpu-add", |apic_id| EventAction::CpuAdd { apic_id }),
        "cpu-remove" => hotplug(event, "cpu-remove", |apic_id| EventAction::CpuRemove {
            apic_id,
        }),
        "reset" => reset(event),
        name => {
            let unknown = UnknownName {
                kind: "action",
                name: name.to_owned(),
                valid: EventAction::NAMES,
            };
            let problem = EventProblem::Value(Box::new(Problem::UnknownName(unknown)));
            Err((event.action.span(), problem))
        }
    }
}

/// A `cpu-add` or `cpu-remove`: needs `apic_id`, takes no `hard`.
fn hotplug(
    event: &RawEvent,
    action: &'static str,
    make: fn(u32) -> EventAction,
) -> Result<EventAction, (Range<usize>, EventProblem)> {
    if let Some(hard) = &event.hard {
        return Err((hard.span(), EventProblem::HardOnHotplug { action }));
    }
    match &event.apic_id {
        Some(apic_id) => Ok(make(*apic_id.get_ref())),
        None => Err((event.action.span(), EventProblem::MissingApicId { action })),
    }
}

/// A `reset`: takes no `apic_id`; `hard` defaults to true.
fn reset(event: &RawEvent) -> Result<EventAction, (Range<usize>, EventProblem)> {
    if let Some(apic_id) = &event.apic_id {
        return Err((apic_id.span(), EventProblem::ApicIdOnReset));
    }
    let hard = event.hard.as_ref().map_or(true, |hard| *hard.get_ref());
    Ok(EventAction::Reset { hard })
}

// ---------------------------------------------------------------------------------------------
// [expect]

/// `[expect]`, with every APIC ID below `maxcpus`.
fn expectations(
    cx: &ErrorContext<'_>,
    raw: RawExpect,
    max_cpus: u32,
) -> Result<Expectations, ScenarioError> {
    let smbase = match raw.smbase {
        None => None,
        Some(RawSmbase::UniqueInTseg) => Some(SmbaseExpectation::UniqueInTseg),
        Some(RawSmbase::Table(entries)) => Some(smbase_table(cx, &entries, max_cpus)?),
    };
    let online = match raw.online {
        None => None,
        Some(ids) => Some(online(cx, &ids, max_cpus)?),
    };
    let verdict = named(cx, raw.verdict.as_ref(), None, |text| {
        text.parse::<Verdict>().map(Some)
    })?;
    Ok(Expectations {
        smbase,
        console: raw.console.unwrap_or_default(),
        status: raw.status,
        online,
        verdict,
    })
}

/// `expect.smbase` as a table: decimal APIC IDs below `maxcpus` → 32-bit SMBASEs.
fn smbase_table(
    cx: &ErrorContext<'_>,
    entries: &[(String, Spanned<toml::Value>)],
    max_cpus: u32,
) -> Result<SmbaseExpectation, ScenarioError> {
    let mut map = BTreeMap::new();
    for (key, value) in entries {
        let fail = |reason: String| {
            let key = format!("smbase.{key:?}");
            cx.at(value.span(), Problem::Expectation { key, reason })
        };
        let apic_id = apic_id_key(key, max_cpus).map_err(fail)?;
        let smbase = match value.get_ref() {
            toml::Value::Integer(smbase) => u32::try_from(*smbase).ok(),
            _ => None,
        };
        let Some(smbase) = smbase else {
            let shown = value.get_ref().to_string();
            return Err(fail(format!(
                "{shown} is not an SMBASE (expected an integer from 0 to 0xFFFFFFFF)"
            )));
        };
        if map.insert(apic_id, u64::from(smbase)).is_some() {
            return Err(fail(format!("APIC ID {apic_id} is given more than once")));
        }
    }
    Ok(SmbaseExpectation::Exact(map))
}

/// A table key that must be a decimal APIC ID below `maxcpus`.
fn apic_id_key(key: &str, max_cpus: u32) -> Result<u32, String> {
    let apic_id = if !key.is_empty() && key.bytes().all(|byte| byte.is_ascii_digit()) {
        key.parse::<u32>().ok()
    } else {
        None
    };
    match apic_id {
        Some(apic_id) if apic_id < max_cpus => Ok(apic_id),
        Some(apic_id) => Err(format!(
            "APIC ID {apic_id} is not below maxcpus = {max_cpus}"
        )),
        None => Err(format!("key {key:?} is not an APIC ID (a decimal number)")),
    }
}

/// `expect.online`: APIC IDs below `maxcpus`.
fn online(
    cx: &ErrorContext<'_>,
    ids: &[Spanned<u32>],
    max_cpus: u32,
) -> Result<Vec<u32>, ScenarioError> {
    ids.iter()
        .map(|id| {
            let apic_id = *id.get_ref();
            if apic_id < max_cpus {
                return Ok(apic_id);
            }
            let problem = Problem::Expectation {
                key: "online".to_owned(),
                reason: format!("APIC ID {apic_id} is not below maxcpus = {max_cpus}"),
            };
            Err(cx.at(id.span(), problem))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// A name-valued setting parsed by `parse`, or `default` when absent.
fn named<T, E>(
    cx: &ErrorContext<'_>,
    value: Option<&Spanned<String>>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ScenarioError>
where
    E: Into<NameError>,
{
    match value {
        None => Ok(default),
        Some(value) => parse(value.get_ref()).map_err(|error| {
            let problem = match error.into() {
                NameError::Listed(unknown) => Problem::UnknownName(unknown),
                NameError::Message(message) => Problem::UnknownNameMessage(message),
            };
            cx.at(value.span(), problem)
        }),
    }
}

/// The two shapes name parsers report an unknown name in.
pub(crate) enum NameError {
    /// This module's names: the list of valid ones.
    Listed(UnknownName),
    /// Another module's parser: a message that lists them.
    Message(String),
}

impl From<UnknownName> for NameError {
    fn from(unknown: UnknownName) -> NameError {
        NameError::Listed(unknown)
    }
}

impl From<String> for NameError {
    fn from(message: String) -> NameError {
        NameError::Message(message)
    }
}

/// An integer that must not be negative.
fn non_negative(
    cx: &ErrorContext<'_>,
    key: &str,
    value: &Spanned<toml::Value>,
    number: i64,
) -> Result<u64, ScenarioError> {
    u64::try_from(number).map_err(|_| unit(cx, key, value, UnitError::Negative))
}

/// A count that must not be zero.
fn positive<T>(
    cx: &ErrorContext<'_>,
    key: &str,
    value: &Spanned<T>,
    number: u64,
) -> Result<u64, ScenarioError> {
    if number == 0 {
        return Err(cx.at(
            value.span(),
            Problem::BadValue {
                key: key.to_owned(),
                value: number.to_string(),
                reason: "must be at least 1".to_owned(),
            },
        ));
    }
    Ok(number)
}

/// A value whose units or sign are wrong.
fn unit(
    cx: &ErrorContext<'_>,
    key: &str,
    value: &Spanned<toml::Value>,
    error: UnitError,
) -> ScenarioError {
    let problem = match value.get_ref() {
        toml::Value::String(text) => Problem::BadUnit {
            key: key.to_owned(),
            value: text.clone(),
            error,
        },
        other => Problem::BadValue {
            key: key.to_owned(),
            value: other.to_string(),
            reason: error.to_string(),
        },
    };
    cx.at(value.span(), problem)
}

/// A value that is out of range for its key.
fn bad_value(
    cx: &ErrorContext<'_>,
    key: &str,
    value: &Spanned<toml::Value>,
    reason: String,
) -> ScenarioError {
    let problem = Problem::BadValue {
        key: key.to_owned(),
        value: value.get_ref().to_string(),
        reason,
    };
    cx.at(value.span(), problem)
}

/// A value of a TOML type the key does not take.
fn wrong_type(
    cx: &ErrorContext<'_>,
    key: &str,
    value: &Spanned<toml::Value>,
    expected: &str,
) -> ScenarioError {
    let reason = format!(
        "expected {expected}, found a {}",
        value.get_ref().type_str()
    );
    bad_value(cx, key, value, reason)
}

/// Of two spans, the one that starts later: the key that made a pair conflict.
fn later(a: Range<usize>, b: Range<usize>) -> Range<usize> {
    if a.start >= b.start {
        a
    } else {
        b
    }
}
