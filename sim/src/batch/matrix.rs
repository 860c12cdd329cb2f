//! Matrix files: one scenario and the parameters to vary, expanded into many scenarios.
//!
//! A matrix file has a `[matrix]` table (that is how a batch tells it from a scenario file):
//!
//! ```toml
//! name = "hotadd"                  # the ids' prefix; default the file stem
//!
//! [base]                           # a scenario, in the scenario file format
//! machine = { cpus = 1 }
//! firmware = { builtin = "boot" }
//!
//! [matrix]                         # the axes; each is optional, none may be empty
//! strategy = ["smbase-smram", "controller", "formula", "max-cpus"]
//! maxcpus = [4, 64, 1024]
//! profile = ["kvm", "qemu"]
//! pattern = ["single", "back-to-back", "sequential", "add-remove-add"]
//! seed = [1, 2, 3]
//!
//! [events]                         # when the pattern's events happen (all optional)
//! start = "auto"                   # or a time ("30ms") or cycles
//! spacing = "auto"                 # or a time or cycles
//! jitter = "100us"                 # the most a seed shifts the events by
//! ```
//!
//! Expansion, for each point of strategy × maxcpus × profile × pattern × seed (in that
//! order, the first axis outermost, values in file order):
//! 1. the `[base]` table is copied and the point's values are set in `[machine]`
//!    (`strategy`, `maxcpus`, `profile`); its `name` becomes the scenario's id;
//! 2. for strategy `max-cpus`, `hotadd_reset = false` is set (re-added CPUs keep their
//!    SMBASE; the scenario format requires it); when `[base]` leaves `tseg_mbytes` unset and
//!    16 MiB cannot hold maxcpus SMBASE tiles, it is set to the smallest whole MiB that holds
//!    maxcpus × 8 KiB + 64 KiB;
//! 3. a pattern replaces the events with its train ([`Pattern`]) starting at `start`
//!    (shifted by the seed's offset, [`seeded_offset`], 0 ≤ offset ≤ `jitter`) and fills in
//!    the `[expect]` keys `smbase`, `console`, `online` and `status` that `[base.expect]`
//!    leaves unset; without a pattern axis the base's events and expectations stay;
//! 4. the table is written out as TOML and read back by [`Scenario::from_str`], so a matrix
//!    scenario is checked exactly as a scenario file is. One that fails becomes an
//!    `invalid` result; a mistake in the matrix itself (an unknown name, an empty axis, a
//!    `[base]` that is not a valid scenario) is an error before anything runs.
//!
//! Each scenario's id is `NAME/axis=value,…` over the axes the matrix has, in expansion
//! order: `hotadd/strategy=formula,maxcpus=64,profile=kvm,pattern=single,seed=1`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::{Spanned, Table, Value};

use super::pattern::{auto_spacing_cycles, auto_start_cycles, seeded_offset, Pattern};
use super::results::Parameters;
use super::Job;
use crate::cpu::smm::Profile;
use crate::machine::{DEFAULT_TSEG_MBYTES, MAX_CPUS};
use crate::scenario::units::time_to_cycles;
use crate::scenario::{fnv1a_64, Location, Scenario, ScenarioError, Strategy};

/// The key that makes a TOML file a matrix file.
pub const MATRIX_KEY: &str = "matrix";

/// Bytes of TSEG per possible CPU: the SMBASE tile stride.
const TILE_BYTES: u64 = 8 << 10;
/// TSEG beyond the tiles: the last CPU's state-save area ends 64 KiB above its SMBASE.
const TILE_SLACK_BYTES: u64 = 64 << 10;

/// The default of `[events] jitter`: the most a seed shifts a pattern's events by.
pub const DEFAULT_JITTER: &str = "100us";

/// Whether `text` is a matrix file: TOML with a top-level `[matrix]` table. Text that is not
/// TOML is not a matrix (it is read as a scenario, which reports the syntax error).
pub fn is_matrix(text: &str) -> bool {
    toml::from_str::<Table>(text).is_ok_and(|table| table.contains_key(MATRIX_KEY))
}

/// Why a matrix file cannot be expanded.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {problem}", .path.display(), location_suffix(.location))]
pub struct MatrixError {
    /// The matrix file.
    pub path: PathBuf,
    /// Where in it, when known.
    pub location: Option<Location>,
    /// What is wrong.
    pub problem: MatrixProblem,
}

/// `:LINE` or `:LINE:COLUMN`, or nothing.
fn location_suffix(location: &Option<Location>) -> String {
    location.map_or_else(String::new, |location| format!(":{location}"))
}

/// What can be wrong with a matrix file.
#[derive(Debug, thiserror::Error)]
pub enum MatrixProblem {
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("{0}")]
    Toml(String),
    /// `[matrix]` lists no axis.
    #[error(
        "[matrix] has no axes: list at least one of strategy, maxcpus, profile, pattern, seed \
         (a single scenario needs no matrix)"
    )]
    NoAxes,
    /// An axis is an empty list.
    #[error("[matrix] {axis} = []: the matrix expands to zero scenarios")]
    EmptyAxis {
        /// The axis.
        axis: &'static str,
    },
    /// An axis value that is not valid for its axis.
    #[error("[matrix] {axis}: {reason}")]
    BadValue {
        /// The axis.
        axis: &'static str,
        /// What is wrong, with the value.
        reason: String,
    },
    /// `seed` without `pattern`: a seed shifts the pattern's events.
    #[error("[matrix] seed shifts the events of a pattern: add a pattern axis")]
    SeedWithoutPattern,
    /// `[events]` without `pattern`.
    #[error("[events] times the events of a pattern: add a pattern axis, or remove [events]")]
    EventsWithoutPattern,
    /// `[base]` has events and the matrix a pattern axis, which would replace them.
    #[error(
        "[base] has [[base.event]]s and [matrix] a pattern axis, whose events replace them: \
         remove one"
    )]
    EventsAndPattern,
    /// A time in `[events]` that cannot be read.
    #[error("[events] {key} = {value}: {reason}")]
    BadTime {
        /// The key.
        key: &'static str,
        /// The value, as TOML writes it.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// `[base]` is not a valid scenario.
    #[error("[base] is not a valid scenario: {0}")]
    BadBase(String),
}

/// The matrix file exactly as TOML gives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    base: Table,
    matrix: RawAxes,
    events: Option<Spanned<RawEvents>>,
}

/// `[matrix]`, each axis with the position of each value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAxes {
    strategy: Option<Spanned<Vec<Spanned<String>>>>,
    maxcpus: Option<Spanned<Vec<Spanned<i64>>>>,
    profile: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(alias = "add_pattern")]
    pattern: Option<Spanned<Vec<Spanned<String>>>>,
    seed: Option<Spanned<Vec<Spanned<i64>>>>,
}

/// `[events]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    start: Option<Spanned<Value>>,
    spacing: Option<Spanned<Value>>,
    jitter: Option<Spanned<Value>>,
}

/// A time setting of `[events]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EventTime {
    /// Computed from maxcpus.
    Auto,
    /// This many cycles.
    Cycles(u64),
}

/// The values of each axis; `None` for an axis the matrix does not have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Axes {
    /// Relocation strategies.
    pub strategy: Option<Vec<Strategy>>,
    /// Possible CPU counts.
    pub maxcpus: Option<Vec<u32>>,
    /// Behaviour profiles.
    pub profile: Option<Vec<Profile>>,
    /// Add patterns.
    pub pattern: Option<Vec<Pattern>>,
    /// Seeds.
    pub seed: Option<Vec<u64>>,
}

/// One point of the matrix: a value for each axis it has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Point {
    /// The strategy, if the matrix varies it.
    pub strategy: Option<Strategy>,
    /// The maxcpus, if varied.
    pub maxcpus: Option<u32>,
    /// The profile, if varied.
    pub profile: Option<Profile>,
    /// The pattern, if varied.
    pub pattern: Option<Pattern>,
    /// The seed, if varied.
    pub seed: Option<u64>,
}

impl Point {
    /// `axis=value,…` over the axes the point has, in expansion order.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(strategy) = self.strategy {
            parts.push(format!("strategy={strategy}"));
        }
        if let Some(maxcpus) = self.maxcpus {
            parts.push(format!("maxcpus={maxcpus}"));
        }
        if let Some(profile) = self.profile {
            parts.push(format!("profile={}", profile.name()));
        }
        if let Some(pattern) = self.pattern {
            parts.push(format!("pattern={pattern}"));
        }
        if let Some(seed) = self.seed {
            parts.push(format!("seed={seed}"));
        }
        parts.join(",")
    }
}

/// A checked matrix file, ready to expand.
#[derive(Debug)]
pub struct Matrix {
    /// The ids' prefix.
    pub name: String,
    /// What it is about, if given.
    pub description: Option<String>,
    /// The file.
    pub path: PathBuf,
    /// The axes.
    pub axes: Axes,
    base: Table,
    /// `[base]` with the first point's values, resolved: the clock, the boot CPUs and the
    /// values of the axes the matrix does not have.
    base_scenario: Scenario,
    base_sets_tseg: bool,
    start: EventTime,
    spacing: EventTime,
    jitter_cycles: u64,
}

impl Matrix {
    /// Reads and checks matrix `text`, from the file `path` (which names it in errors, gives
    /// its default name, and is where a relative firmware path in `[base]` starts from).
    pub fn parse(text: &str, path: &Path) -> Result<Matrix, MatrixError> {
        let error = |location: Option<Location>, problem| MatrixError {
            path: path.to_owned(),
            location,
            problem,
        };
        let at = |span: std::ops::Range<usize>| Some(Location::of_offset(text, span.start, false));
        let raw: RawMatrix = toml::from_str(text).map_err(|toml_error| {
            let location = toml_error
                .span()
                .map(|span| Location::of_offset(text, span.start, true));
            let message = toml_error.message().trim_end().replace('\n', "; ");
            error(location, MatrixProblem::Toml(message))
        })?;
        let axes =
            axes(&raw.matrix).map_err(|(span, problem)| error(span.and_then(at), problem))?;
        if axes.seed.is_some() && axes.pattern.is_none() {
            let span = raw.matrix.seed.as_ref().map(Spanned::span);
            return Err(error(span.and_then(at), MatrixProblem::SeedWithoutPattern));
        }
        if let (Some(events), None) = (&raw.events, &axes.pattern) {
            return Err(error(
                at(events.span()),
                MatrixProblem::EventsWithoutPattern,
            ));
        }
        if axes.pattern.is_some() && raw.base.contains_key("event") {
            return Err(error(None, MatrixProblem::EventsAndPattern));
        }
        let base_sets_tseg = raw
            .base
            .get("machine")
            .and_then(Value::as_table)
            .is_some_and(|machine| machine.contains_key("tseg_mbytes"));
        let mut base = raw.base;
        // The base's own name is replaced by each scenario's id.
        base.remove("name");
        let first = all_points(&axes).first().copied().unwrap_or_default();
        let base_scenario = {
            let mut table = base.clone();
            adjust_machine(&mut table, &first, first.maxcpus, base_sets_tseg);
            resolve(&table, &origin(path, &first.describe())).map_err(|message| {
                error(
                    None,
                    MatrixProblem::BadBase(format!("with {}: {message}", first.describe())),
                )
            })?
        };
        let clock_hz = base_scenario.machine.clock_hz;
        let events = raw.events.map(Spanned::into_inner);
        let time = |key: &'static str, value: Option<&Spanned<Value>>, auto_allowed: bool| {
            event_time(key, value, auto_allowed, clock_hz)
                .map_err(|(span, problem)| error(span.and_then(at), problem))
        };
        let start = time(
            "start",
            events.as_ref().and_then(|e| e.start.as_ref()),
            true,
        )?
        .unwrap_or(EventTime::Auto);
        let spacing = time(
            "spacing",
            events.as_ref().and_then(|e| e.spacing.as_ref()),
            true,
        )?
        .unwrap_or(EventTime::Auto);
        let jitter = time(
            "jitter",
            events.as_ref().and_then(|e| e.jitter.as_ref()),
            false,
        )?;
        let jitter_cycles = match jitter {
            Some(EventTime::Cycles(cycles)) => cycles,
            // "auto" is refused for the jitter: only its absence gets here.
            Some(EventTime::Auto) | None => time_to_cycles(DEFAULT_JITTER, clock_hz).unwrap_or(0),
        };
        let name = raw.name.unwrap_or_else(|| {
            path.file_stem().map_or_else(
                || "matrix".to_owned(),
                |stem| stem.to_string_lossy().into_owned(),
            )
        });
        Ok(Matrix {
            name,
            description: raw.description,
            path: path.to_owned(),
            axes,
            base,
            base_scenario,
            base_sets_tseg,
            start,
            spacing,
            jitter_cycles,
        })
    }

    /// How many scenarios the matrix expands to: the product of its axes' lengths.
    pub fn len(&self) -> usize {
        self.points().len()
    }

    /// Whether the matrix expands to no scenario (never, once parsed: empty axes are
    /// refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every point, in expansion order.
    pub fn points(&self) -> Vec<Point> {
        all_points(&self.axes)
    }

    /// The id of the scenario at `point`.
    pub fn id(&self, point: &Point) -> String {
        format!("{}/{}", self.name, point.describe())
    }

    /// Every scenario of the matrix as a batch job, in expansion order.
    pub fn expand(&self) -> Vec<Job> {
        self.points().iter().map(|point| self.job(point)).collect()
    }

    /// The scenario at `point` (steps 1–4 of the module doc).
    pub fn job(&self, point: &Point) -> Job {
        let id = self.id(point);
        let base = &self.base_scenario.machine;
        let max_cpus = point.maxcpus.unwrap_or(base.max_cpus);
        let mut parameters = Parameters {
            strategy: Some(point.strategy.unwrap_or(base.strategy).name().to_owned()),
            cpus: Some(base.cpus),
            maxcpus: Some(max_cpus),
            profile: Some(point.profile.unwrap_or(base.profile).name().to_owned()),
            pattern: point.pattern.map(|pattern| pattern.name().to_owned()),
            seed: point.seed,
            event_offset_cycles: None,
        };
        let mut table = self.base.clone();
        table.insert("name".to_owned(), Value::String(id.clone()));
        adjust_machine(&mut table, point, Some(max_cpus), self.base_sets_tseg);
        if let Some(pattern) = point.pattern {
            let offset = point
                .seed
                .map_or(0, |seed| seeded_offset(seed, self.jitter_cycles));
            parameters.event_offset_cycles = point.seed.map(|_| offset);
            if let Err(message) = self.add_pattern(&mut table, pattern, max_cpus, offset) {
                return self.invalid_job(id, parameters, None, message);
            }
        }
        let text = match toml::to_string(&table) {
            Ok(text) => text,
            Err(error) => return self.invalid_job(id, parameters, None, error.to_string()),
        };
        let hash = Some(fnv1a_64(text.as_bytes()));
        match Scenario::from_str(&text, &origin(&self.path, &point.describe())) {
            Ok(scenario) => {
                parameters.strategy = Some(scenario.machine.strategy.name().to_owned());
                parameters.cpus = Some(scenario.machine.cpus);
                parameters.maxcpus = Some(scenario.machine.max_cpus);
                parameters.profile = Some(scenario.machine.profile.name().to_owned());
                Job {
                    id,
                    source: self.path.clone(),
                    parameters,
                    scenario_hash: hash,
                    scenario: Ok(scenario),
                }
            }
            Err(error) => self.invalid_job(id, parameters, hash, problem_message(&error)),
        }
    }

    fn invalid_job(
        &self,
        id: String,
        parameters: Parameters,
        scenario_hash: Option<u64>,
        message: String,
    ) -> Job {
        Job {
            id: id.clone(),
            source: self.path.clone(),
            parameters,
            scenario_hash,
            scenario: Err(format!("{}: {id}: {message}", self.path.display())),
        }
    }

    /// Step 3: the pattern's events and the expectations they imply.
    fn add_pattern(
        &self,
        table: &mut Table,
        pattern: Pattern,
        max_cpus: u32,
        offset: u64,
    ) -> Result<(), String> {
        let clock_hz = self.base_scenario.machine.clock_hz;
        let start = match self.start {
            EventTime::Auto => auto_start_cycles(max_cpus, clock_hz),
            EventTime::Cycles(cycles) => cycles,
        };
        let spacing = match self.spacing {
            EventTime::Auto => auto_spacing_cycles(max_cpus, clock_hz),
            EventTime::Cycles(cycles) => cycles,
        };
        let events = pattern.events(max_cpus, start.saturating_add(offset), spacing, clock_hz);
        if events.is_empty() {
            return Err(format!(
                "pattern {pattern} needs more possible CPUs than maxcpus = {max_cpus}"
            ));
        }
        let array = events
            .iter()
            .map(|event| {
                let mut entry = Table::new();
                let at = i64::try_from(event.at_cycle).unwrap_or(i64::MAX);
                entry.insert("at".to_owned(), Value::Integer(at));
                entry.insert("action".to_owned(), Value::String(event.action.to_owned()));
                entry.insert("apic_id".to_owned(), Value::Integer(event.apic_id.into()));
                Value::Table(entry)
            })
            .collect();
        table.insert("event".to_owned(), Value::Array(array));
        let expected = Pattern::expectations(&events, self.base_scenario.boot_cpus());
        let expect = table_entry(table, "expect")?;
        let mut fill = |key: &str, value: Value| {
            expect.entry(key.to_owned()).or_insert(value);
        };
        fill("smbase", Value::String("unique-in-tseg".to_owned()));
        fill(
            "console",
            Value::Array(expected.console.into_iter().map(Value::String).collect()),
        );
        fill(
            "online",
            Value::Array(
                expected
                    .online
                    .into_iter()
                    .map(|apic_id| Value::Integer(apic_id.into()))
                    .collect(),
            ),
        );
        fill("status", Value::Integer(1));
        Ok(())
    }
}

/// Every point of `axes`: strategy × maxcpus × profile × pattern × seed, the first axis
/// outermost, values in file order; an axis the matrix does not have contributes `None`.
fn all_points(axes: &Axes) -> Vec<Point> {
    fn axis<T: Copy>(values: &Option<Vec<T>>) -> Vec<Option<T>> {
        match values {
            Some(values) => values.iter().copied().map(Some).collect(),
            None => vec![None],
        }
    }
    let mut points = Vec::new();
    for &strategy in &axis(&axes.strategy) {
        for &maxcpus in &axis(&axes.maxcpus) {
            for &profile in &axis(&axes.profile) {
                for &pattern in &axis(&axes.pattern) {
                    for &seed in &axis(&axes.seed) {
                        points.push(Point {
                            strategy,
                            maxcpus,
                            profile,
                            pattern,
                            seed,
                        });
                    }
                }
            }
        }
    }
    points
}

/// Steps 1–2 on `[machine]`: the point's values, `hotadd_reset = false` for `max-cpus`, and
/// a TSEG large enough for `max_cpus` when the base does not set one.
fn adjust_machine(table: &mut Table, point: &Point, max_cpus: Option<u32>, base_sets_tseg: bool) {
    let strategy_named = |table: &Table| {
        table
            .get("machine")
            .and_then(Value::as_table)
            .and_then(|machine| machine.get("strategy"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let strategy = point
        .strategy
        .map(|strategy| strategy.name().to_owned())
        .or_else(|| strategy_named(table));
    // A `[base] machine` that is not a table is left for the scenario check to report.
    let Ok(machine) = table_entry(table, "machine") else {
        return;
    };
    if let Some(strategy) = point.strategy {
        machine.insert(
            "strategy".to_owned(),
            Value::String(strategy.name().to_owned()),
        );
    }
    if let Some(maxcpus) = point.maxcpus {
        machine.insert("maxcpus".to_owned(), Value::Integer(maxcpus.into()));
    }
    if let Some(profile) = point.profile {
        machine.insert(
            "profile".to_owned(),
            Value::String(profile.name().to_owned()),
        );
    }
    if strategy.as_deref() == Some(Strategy::MaxCpus.name()) {
        machine.insert("hotadd_reset".to_owned(), Value::Boolean(false));
    }
    if let (false, Some(max_cpus)) = (base_sets_tseg, max_cpus) {
        let mbytes = tseg_mbytes_for(max_cpus);
        if mbytes > u64::from(DEFAULT_TSEG_MBYTES) {
            machine.insert("tseg_mbytes".to_owned(), Value::Integer(mbytes as i64));
        }
    }
}

/// The smallest whole MiB of TSEG holding `max_cpus` SMBASE tiles and the slack above the
/// last.
pub fn tseg_mbytes_for(max_cpus: u32) -> u64 {
    let bytes = u64::from(max_cpus) * TILE_BYTES + TILE_SLACK_BYTES;
    bytes.div_ceil(1 << 20)
}

/// The sub-table `key` of `table`, created when missing; an error when `key` holds
/// something other than a table.
fn table_entry<'t>(table: &'t mut Table, key: &str) -> Result<&'t mut Table, String> {
    match table
        .entry(key.to_owned())
        .or_insert_with(|| Value::Table(Table::new()))
    {
        Value::Table(inner) => Ok(inner),
        other => Err(format!(
            "[base] {key} must be a table, not {}",
            other.type_str()
        )),
    }
}

/// The name a generated scenario is checked under: the matrix file with the point in
/// brackets. Its directory is the matrix file's, so relative firmware paths resolve alike.
fn origin(path: &Path, point: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!("[{point}]"));
    PathBuf::from(name)
}

/// Checks `table` as a scenario; the error without a position, which would point into
/// generated text.
fn resolve(table: &Table, origin: &Path) -> Result<Scenario, String> {
    let text = toml::to_string(table).map_err(|error| error.to_string())?;
    Scenario::from_str(&text, origin).map_err(|error| problem_message(&error))
}

/// A scenario error's problem alone: the position would point into generated text.
fn problem_message(error: &ScenarioError) -> String {
    match error.problem() {
        Some(problem) => problem.to_string(),
        None => error.to_string(),
    }
}

/// The axes, each value checked; an error with the span of the offending value.
fn axes(raw: &RawAxes) -> Result<Axes, (Option<std::ops::Range<usize>>, MatrixProblem)> {
    type AxisError = (Option<std::ops::Range<usize>>, MatrixProblem);
    fn axis<R, T: PartialEq + Copy>(
        name: &'static str,
        raw: &Option<Spanned<Vec<Spanned<R>>>>,
        parse: impl Fn(&R) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, AxisError> {
        let Some(list) = raw else {
            return Ok(None);
        };
        if list.get_ref().is_empty() {
            return Err((Some(list.span()), MatrixProblem::EmptyAxis { axis: name }));
        }
        let mut values: Vec<T> = Vec::new();
        for item in list.get_ref() {
            let bad = |reason: String| {
                (
                    Some(item.span()),
                    MatrixProblem::BadValue { axis: name, reason },
                )
            };
            let value = parse(item.get_ref()).map_err(bad)?;
            if values.contains(&value) {
                return Err(bad("a value is listed twice".to_owned()));
            }
            values.push(value);
        }
        Ok(Some(values))
    }
    let axes = Axes {
        strategy: axis("strategy", &raw.strategy, |name: &String| {
            Strategy::from_str(name).map_err(|error| error.to_string())
        })?,
        maxcpus: axis("maxcpus", &raw.maxcpus, |&count: &i64| {
            u32::try_from(count)
                .ok()
                .filter(|count| (1..=MAX_CPUS).contains(count))
                .ok_or_else(|| format!("maxcpus {count} is not between 1 and {MAX_CPUS}"))
        })?,
        profile: axis("profile", &raw.profile, |name: &String| {
            Profile::from_str(name)
        })?,
        pattern: axis("pattern", &raw.pattern, |name: &String| {
            Pattern::from_str(name)
        })?,
        seed: axis("seed", &raw.seed, |&seed: &i64| {
            u64::try_from(seed).map_err(|_| format!("seed {seed} is negative"))
        })?,
    };
    if axes == Axes::default() {
        return Err((None, MatrixProblem::NoAxes));
    }
    Ok(axes)
}

/// An `[events]` time: `"auto"` (when allowed), a time string, or an integer of cycles;
/// `None` when not given.
fn event_time(
    key: &'static str,
    value: Option<&Spanned<Value>>,
    auto_allowed: bool,
    clock_hz: u64,
) -> Result<Option<EventTime>, (Option<std::ops::Range<usize>>, MatrixProblem)> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bad = |reason: String| {
        (
            Some(value.span()),
            MatrixProblem::BadTime {
                key,
                value: value.get_ref().to_string(),
                reason,
            },
        )
    };
    let time = match value.get_ref() {
        Value::String(text) if auto_allowed && text == "auto" => Ok(EventTime::Auto),
        Value::String(text) => time_to_cycles(text, clock_hz)
            .map(EventTime::Cycles)
            .map_err(|error| bad(error.to_string())),
        Value::Integer(cycles) => u64::try_from(*cycles)
            .map(EventTime::Cycles)
            .map_err(|_| bad("a number of cycles cannot be negative".to_owned())),
        _ if auto_allowed => Err(bad(
            "expected \"auto\", a time like \"30ms\" or an integer number of cycles".to_owned(),
        )),
        _ => Err(bad(
            "expected a time like \"100us\" or an integer number of cycles".to_owned(),
        )),
    };
    time.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::EventAction;

    fn parse(text: &str) -> Result<Matrix, MatrixError> {
        Matrix::parse(text, Path::new("dir/study.toml"))
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("refused").to_string()
    }

    #[test]
    fn points_expand_in_axis_order_with_stable_ids() {
        let matrix = parse(
            "[matrix]\n\
             seed = [5, 1]\n\
             strategy = [\"formula\", \"max-cpus\"]\n\
             maxcpus = [4, 8]\n\
             add_pattern = [\"single\"]\n",
        )
        .expect("valid");
        assert_eq!(matrix.name, "study");
        assert_eq!(matrix.len(), 8);
        let ids: Vec<String> = matrix.expand().into_iter().map(|job| job.id).collect();
        assert_eq!(
            ids[..3],
            [
                "study/strategy=formula,maxcpus=4,pattern=single,seed=5",
                "study/strategy=formula,maxcpus=4,pattern=single,seed=1",
                "study/strategy=formula,maxcpus=8,pattern=single,seed=5",
            ]
        );
        assert_eq!(
            ids[7],
            "study/strategy=max-cpus,maxcpus=8,pattern=single,seed=1"
        );
    }

    #[test]
    fn a_pattern_sets_events_and_fills_expectations_the_base_leaves_unset() {
        let matrix = parse(
            "name = \"m\"\n\
             [base]\n\
             machine = { cpus = 2 }\n\
             expect = { status = 9 }\n\
             [matrix]\n\
             maxcpus = [6]\n\
             pattern = [\"back-to-back\"]\n\
             [events]\n\
             start = \"30ms\"\n",
        )
        .expect("valid");
        let job = &matrix.expand()[0];
        let scenario = job.scenario.as_ref().expect("a valid scenario");
        assert_eq!(scenario.name, "m/maxcpus=6,pattern=back-to-back");
        let events: Vec<(u64, EventAction)> = scenario
            .events
            .iter()
            .map(|event| (event.at_cycle, event.action))
            .collect();
        assert_eq!(
            events,
            [
                (60_000_000, EventAction::CpuAdd { apic_id: 4 }),
                (60_002_000, EventAction::CpuAdd { apic_id: 5 }),
            ]
        );
        assert_eq!(scenario.expect.online, Some(vec![0, 1, 4, 5]));
        assert_eq!(
            scenario.expect.console,
            ["cpu 00000004 online", "cpu 00000005 online"]
        );
        // The base's own expectation stays.
        assert_eq!(scenario.expect.status, Some(9));
        assert_eq!(job.parameters.pattern.as_deref(), Some("back-to-back"));
        assert_eq!(job.parameters.maxcpus, Some(6));
        assert_eq!(job.parameters.event_offset_cycles, None);
    }

    #[test]
    fn a_seed_shifts_every_event_by_the_same_offset_within_the_jitter() {
        let matrix = parse(
            "[matrix]\n\
             maxcpus = [4]\n\
             pattern = [\"add-remove-add\"]\n\
             seed = [1, 2]\n\
             [events]\n\
             start = 1000000\n\
             spacing = 500000\n\
             jitter = 1000\n",
        )
        .expect("valid");
        for (job, seed) in matrix.expand().iter().zip([1, 2]) {
            let offset = seeded_offset(seed, 1000);
            assert_eq!(job.parameters.event_offset_cycles, Some(offset));
            let times: Vec<u64> = job
                .scenario
                .as_ref()
                .expect("valid")
                .events
                .iter()
                .map(|event| event.at_cycle)
                .collect();
            assert_eq!(
                times,
                [1_000_000 + offset, 1_500_000 + offset, 2_000_000 + offset]
            );
        }
    }

    #[test]
    fn max_cpus_gets_hotadd_reset_off_and_large_machines_a_larger_tseg() {
        let matrix = parse(
            "[matrix]\n\
             strategy = [\"max-cpus\", \"formula\"]\n\
             maxcpus = [2040, 4096]\n",
        )
        .expect("valid");
        let jobs = matrix.expand();
        let machine = |index: usize| &jobs[index].scenario.as_ref().expect("valid").machine;
        assert!(!machine(0).hotadd_reset);
        assert_eq!(machine(0).tseg_mbytes, 16);
        assert_eq!(machine(1).tseg_mbytes, 33);
        assert!(machine(2).hotadd_reset);
        assert_eq!(tseg_mbytes_for(2041), 17);
        assert_eq!(tseg_mbytes_for(2040), 16);
        // A base that sets the TSEG keeps it.
        let matrix = parse("[base]\nmachine = { tseg_mbytes = 64 }\n[matrix]\nmaxcpus = [4096]\n")
            .expect("valid");
        let job = &matrix.expand()[0];
        assert_eq!(
            job.scenario.as_ref().expect("valid").machine.tseg_mbytes,
            64
        );
    }

    #[test]
    fn a_point_that_is_not_a_valid_scenario_is_an_invalid_job() {
        let matrix = parse(
            "[base]\nmachine = { cpus = 2 }\n[matrix]\nmaxcpus = [4, 2, 3]\npattern = [\"sequential\"]\n",
        )
        .expect("valid");
        let jobs = matrix.expand();
        assert!(jobs[0].scenario.is_ok());
        let message = jobs[1].scenario.as_ref().expect_err("too small");
        assert_eq!(
            message,
            "dir/study.toml: study/maxcpus=2,pattern=sequential: pattern sequential needs more \
             possible CPUs than maxcpus = 2"
        );
        // CPU 1 is present from reset: adding it is refused by the scenario check.
        let message = jobs[2].scenario.as_ref().expect_err("adds a present CPU");
        assert!(message.starts_with("dir/study.toml: study/maxcpus=3,pattern=sequential: "));
        assert!(message.contains("present"), "{message}");
    }

    #[test]
    fn mistakes_in_the_matrix_are_errors_naming_the_line() {
        assert_eq!(
            error("[matrix]\nstrategy = []\n"),
            "dir/study.toml:2: [matrix] strategy = []: the matrix expands to zero scenarios"
        );
        assert!(error("[base]\n").contains("missing field `matrix`"));
        assert!(error("[matrix]\n").contains("has no axes"));
        let message = error("[matrix]\nprofile = [\"kvm\",\n  \"tcg\"]\n");
        assert!(
            message.starts_with("dir/study.toml:3: [matrix] profile: "),
            "{message}"
        );
        assert!(message.contains("tcg"), "{message}");
        assert!(error("[matrix]\nmaxcpus = [0]\n").contains("maxcpus 0 is not between 1 and 4096"));
        assert!(error("[matrix]\nmaxcpus = [4, 4]\n").contains("listed twice"));
        assert!(error("[matrix]\nseed = [-1]\npattern = [\"single\"]\n").contains("negative"));
        assert!(error("[matrix]\nseed = [1]\n").contains("add a pattern axis"));
        assert!(
            error("[matrix]\nmaxcpus = [4]\n[events]\nstart = \"1ms\"\n")
                .contains("[events] times the events of a pattern")
        );
        assert!(error(
            "[base]\n[[base.event]]\nat = 1\naction = \"reset\"\n[matrix]\npattern = [\"single\"]\n"
        )
        .contains("remove one"));
        let message = error("[matrix]\npattern = [\"single\"]\n[events]\nstart = \"3 parsecs\"\n");
        assert!(
            message.starts_with("dir/study.toml:4: [events] start = \"3 parsecs\""),
            "{message}"
        );
        assert!(
            error("[matrix]\npattern = [\"single\"]\n[events]\njitter = \"auto\"\n")
                .contains("[events] jitter")
        );
        assert!(
            error("[matrix]\nstrategy = [\"formula\"]\nstrategies = []\n")
                .contains("unknown field `strategies`")
        );
        let message = error("[base]\nmachine = { cpus = 0 }\n[matrix]\nmaxcpus = [4]\n");
        assert_eq!(
            message,
            "dir/study.toml: [base] is not a valid scenario: with maxcpus=4: cpus = 0: a machine \
             needs at least one CPU"
        );
    }

    #[test]
    fn only_files_with_a_matrix_table_are_matrices() {
        assert!(is_matrix("[matrix]\nseed = [1]\n"));
        assert!(!is_matrix("[machine]\ncpus = 1\n"));
        assert!(!is_matrix("[[[ not toml"));
        // Any top-level `matrix` key makes a matrix file, refused when it is not a table.
        assert!(is_matrix("matrix = 3\n"));
        assert!(error("matrix = 3\n").contains("invalid type: integer"));
    }
}
