//! `trace stats`: per-CPU counts and SMM residency, in one pass fast enough for traces of
//! hundreds of millions of events.
//!
//! 1. Walk every event with the reader's visitor loop (no per-event allocation or `Result`
//!    wrapping, and the per-kind work inlined into the decoder's per-kind arms), updating a
//!    dense per-CPU table indexed by CPU number.
//! 2. Pair each `SmmEntry` with the next `Rsm` on the same CPU to get the time spent in
//!    SMM. An entry still open at the end of the trace is counted up to the last event's
//!    cycle and flagged; an entry followed by another entry is closed at the second one and
//!    flagged the same way; an `Rsm` with no entry before it is counted as unmatched.
//! 3. Turn cycles into nanoseconds with the header's clock, sum the totals, and return a
//!    [`TraceStats`] that [`render_stats`] prints as a table and serde turns into JSON.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;

use serde::Serialize;

use crate::event::{Event, EventKind};
use crate::reader::{TraceReader, Visitor};
use crate::time::{Cycle, Cycles};
use crate::view::describe::trace_preamble;
use crate::view::units::{format_duration, nanos};
use crate::view::ViewError;

/// CPU numbers below this get a slot in a dense table; larger ones (only a corrupt or
/// hostile trace has them) go to a map, so a single odd number cannot allocate gigabytes.
const DENSE_CPUS: u32 = 1 << 16;

/// Counters for one CPU, or summed over all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Events recorded on this CPU.
    pub events: u64,
    /// SMIs latched (`smi_raised`).
    pub smis_raised: u64,
    /// Entries into SMM.
    pub smm_entries: u64,
    /// RSMs executed.
    pub rsms: u64,
    /// Cycles spent in SMM, entry to RSM (open entries up to the end of the trace).
    pub smm_cycles: u64,
    /// The longest single stay in SMM, in cycles.
    pub max_smm_cycles: u64,
    /// `smm_cycles` in nanoseconds at the trace's clock (0 if the clock is unknown).
    pub smm_ns: u64,
    /// `max_smm_cycles` in nanoseconds.
    pub max_smm_ns: u64,
    /// SMM entries with no RSM before the trace ended or the CPU entered SMM again; their
    /// time is counted up to that point, so `smm_cycles` is a lower bound when non-zero.
    pub unterminated_smm: u64,
    /// RSMs with no SMM entry before them (the trace started inside SMM).
    pub unmatched_rsms: u64,
    /// `smbase_relocated` events.
    pub relocations: u64,
    /// RSMs that left with a different SMBASE than they entered with.
    pub rsm_smbase_changes: u64,
    /// IPIs this CPU sent.
    pub ipis_sent: u64,
    /// IPIs delivered to this CPU.
    pub ipis_received: u64,
    /// `hot_add` events recorded on this CPU.
    pub hot_adds: u64,
    /// `hot_remove` events recorded on this CPU.
    pub hot_removes: u64,
    /// `cpu_ejected` events recorded on this CPU.
    pub cpu_ejects: u64,
    /// Safety-checker findings recorded on this CPU.
    pub violations: u64,
}

impl Counts {
    /// Adds `other` into these totals (maxima take the larger).
    fn add(&mut self, other: &Counts) {
        self.events += other.events;
        self.smis_raised += other.smis_raised;
        self.smm_entries += other.smm_entries;
        self.rsms += other.rsms;
        self.smm_cycles = self.smm_cycles.saturating_add(other.smm_cycles);
        self.max_smm_cycles = self.max_smm_cycles.max(other.max_smm_cycles);
        self.unterminated_smm += other.unterminated_smm;
        self.unmatched_rsms += other.unmatched_rsms;
        self.relocations += other.relocations;
        self.rsm_smbase_changes += other.rsm_smbase_changes;
        self.ipis_sent += other.ipis_sent;
        self.ipis_received += other.ipis_received;
        self.hot_adds += other.hot_adds;
        self.hot_removes += other.hot_removes;
        self.cpu_ejects += other.cpu_ejects;
        self.violations += other.violations;
    }

    /// Records one stay in SMM of `length` cycles.
    #[inline]
    fn smm_stay(&mut self, length: u64) {
        self.smm_cycles = self.smm_cycles.saturating_add(length);
        self.max_smm_cycles = self.max_smm_cycles.max(length);
    }

    /// Fills the nanosecond fields from the cycle fields.
    fn fill_nanos(&mut self, clock_hz: u64) {
        self.smm_ns = nanos(Cycles(self.smm_cycles), clock_hz);
        self.max_smm_ns = nanos(Cycles(self.max_smm_cycles), clock_hz);
    }
}

/// The counters of one CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// The CPU index.
    pub cpu: u32,
    /// Its counters.
    #[serde(flatten)]
    pub counts: Counts,
    /// The cycle of an SMM entry still open when the trace ended, if any.
    pub open_smm_entry: Option<u64>,
}

/// Everything `trace stats` reports about one trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TraceStats {
    /// Core clock rate from the header, used for every time below.
    pub clock_hz: u64,
    /// Events read.
    pub events: u64,
    /// Size of the trace file.
    pub file_bytes: u64,
    /// `file_bytes / events` (0 for an empty trace): what one event costs on disk,
    /// header and index included.
    pub bytes_per_event: f64,
    /// Chunks found.
    pub chunks: u64,
    /// Whether the chunk list came from the index (false: the run did not finish).
    pub indexed: bool,
    /// Bytes the reader could not attribute to a valid chunk.
    pub dropped_bytes: u64,
    /// Cycle of the first event.
    pub first_cycle: Option<u64>,
    /// Cycle of the last event: where unterminated SMM stays are cut.
    pub last_cycle: Option<u64>,
    /// Why reading stopped early, if the trace is damaged past what recovery could skip.
    pub damage: Option<String>,
    /// Events per kind name, for every kind that occurs.
    pub events_by_kind: BTreeMap<&'static str, u64>,
    /// One entry per CPU that has events, in CPU order.
    pub cpus: Vec<CpuStats>,
    /// Sums over all CPUs (maxima are the largest of any CPU).
    pub totals: Counts,
}

/// Per-CPU state while reading.
#[derive(Clone, Debug, Default)]
struct CpuState {
    counts: Counts,
    /// Cycle of the SMM entry not yet matched by an RSM.
    open_entry: Option<u64>,
}

/// The running tally of one pass.
#[derive(Debug, Default)]
struct Tally {
    dense: Vec<CpuState>,
    sparse: BTreeMap<u32, CpuState>,
    by_kind: [u64; EventKind::NAMES.len()],
    events: u64,
    first_cycle: Option<u64>,
    last_cycle: u64,
}

impl Tally {
    /// The state of `cpu`, created on first use.
    #[inline]
    fn cpu(&mut self, cpu: u32) -> &mut CpuState {
        let index = cpu as usize;
        if index < self.dense.len() {
            &mut self.dense[index]
        } else {
            self.grow(cpu)
        }
    }

    #[cold]
    fn grow(&mut self, cpu: u32) -> &mut CpuState {
        if cpu < DENSE_CPUS {
            let index = cpu as usize;
            self.dense.resize_with(index + 1, CpuState::default);
            &mut self.dense[index]
        } else {
            self.sparse.entry(cpu).or_default()
        }
    }

    #[inline(always)]
    fn record(&mut self, event: &Event) {
        let cycle = event.cycle.0;
        self.events += 1;
        self.first_cycle.get_or_insert(cycle);
        self.last_cycle = cycle;
        // kind_index is below NAMES.len() for every kind (checked by event.rs's tests).
        self.by_kind[event.kind.kind_index()] += 1;
        let state = self.cpu(event.cpu);
        let counts = &mut state.counts;
        counts.events += 1;
        match &event.kind {
            EventKind::SmiRaised { .. } => counts.smis_raised += 1,
            EventKind::SmmEntry { .. } => {
                counts.smm_entries += 1;
                if let Some(entered) = state.open_entry.replace(cycle) {
                    // Entered again without an RSM: close the first stay here and flag it.
                    counts.unterminated_smm += 1;
                    counts.smm_stay(cycle.saturating_sub(entered));
                }
            }
            EventKind::Rsm {
                old_smbase,
                new_smbase,
            } => {
                counts.rsms += 1;
                if old_smbase != new_smbase {
                    counts.rsm_smbase_changes += 1;
                }
                match state.open_entry.take() {
                    Some(entered) => counts.smm_stay(cycle.saturating_sub(entered)),
                    None => counts.unmatched_rsms += 1,
                }
            }
            EventKind::SmbaseRelocated { .. } => counts.relocations += 1,
            EventKind::IpiSent { .. } => counts.ipis_sent += 1,
            EventKind::IpiDelivered { .. } => counts.ipis_received += 1,
            EventKind::HotAdd { .. } => counts.hot_adds += 1,
            EventKind::HotRemove { .. } => counts.hot_removes += 1,
            EventKind::CpuEjected { .. } => counts.cpu_ejects += 1,
            EventKind::Violation { .. } => counts.violations += 1,
            EventKind::Init
            | EventKind::Sipi { .. }
            | EventKind::Halt
            | EventKind::Wake
            | EventKind::Reset { .. }
            | EventKind::SmramBlocked { .. }
            | EventKind::ConsoleLine { .. }
            | EventKind::RunEnd { .. }
            | EventKind::ControllerWriteBlocked { .. }
            | EventKind::Instruction { .. } => {}
        }
    }

    /// Closes open SMM stays at the last event, converts to time, and sums.
    fn finish(self, clock_hz: u64) -> (Vec<CpuStats>, Counts, BTreeMap<&'static str, u64>) {
        let last_cycle = self.last_cycle;
        let dense = self
            .dense
            .into_iter()
            .enumerate()
            .map(|(cpu, state)| (cpu as u32, state));
        let mut cpus = Vec::new();
        let mut totals = Counts::default();
        for (cpu, mut state) in dense.chain(self.sparse) {
            if state.counts.events == 0 {
                continue;
            }
            if let Some(entered) = state.open_entry {
                state.counts.unterminated_smm += 1;
                state.counts.smm_stay(last_cycle.saturating_sub(entered));
            }
            state.counts.fill_nanos(clock_hz);
            totals.add(&state.counts);
            cpus.push(CpuStats {
                cpu,
                counts: state.counts,
                open_smm_entry: state.open_entry,
            });
        }
        totals.fill_nanos(clock_hz);
        let by_kind = EventKind::NAMES
            .iter()
            .zip(self.by_kind)
            .filter(|(_, count)| *count > 0)
            .map(|(name, count)| (*name, count))
            .collect();
        (cpus, totals, by_kind)
    }
}

impl Visitor for Tally {
    type Break = std::convert::Infallible;

    // Forced inline so each of the decoder's per-kind arms gets its own copy of `record`,
    // with the kind `match` settled at compile time (see `decode::decode_event_with`).
    #[inline(always)]
    fn visit(&mut self, event: &Event) -> ControlFlow<Self::Break> {
        self.record(event);
        ControlFlow::Continue(())
    }
}

/// Counts what happened on each CPU of `reader`'s trace, in one pass.
///
/// Never fails: damage stops the pass and is reported in [`TraceStats::damage`], with the
/// counts of everything before it.
pub fn stats(reader: &TraceReader) -> TraceStats {
    let mut tally = Tally::default();
    let damage = reader
        .visit_from(Cycle::ZERO, &mut tally)
        .err()
        .map(|error| error.to_string());
    let events = tally.events;
    let first_cycle = tally.first_cycle;
    let last_cycle = first_cycle.map(|_| tally.last_cycle);
    let clock_hz = reader.header().clock_hz;
    let (cpus, totals, events_by_kind) = tally.finish(clock_hz);
    let file_bytes = reader.file_bytes();
    TraceStats {
        clock_hz,
        events,
        file_bytes,
        bytes_per_event: if events == 0 {
            0.0
        } else {
            file_bytes as f64 / events as f64
        },
        chunks: reader.chunk_count() as u64,
        indexed: reader.indexed(),
        dropped_bytes: reader.dropped_bytes(),
        first_cycle,
        last_cycle,
        damage,
        events_by_kind,
        cpus,
        totals,
    }
}

/// Prints `stats` as a table (one row per CPU and a total row) after `reader`'s preamble.
pub fn render_stats(
    reader: &TraceReader,
    stats: &TraceStats,
    out: &mut dyn Write,
) -> Result<(), ViewError> {
    let mut out = BufWriter::new(out);
    let output = ViewError::output("stats");
    for line in trace_preamble(reader) {
        writeln!(out, "{line}").map_err(&output)?;
    }
    writeln!(
        out,
        "{} events read, {:.2} bytes per event ({} bytes)",
        stats.events, stats.bytes_per_event, stats.file_bytes
    )
    .map_err(&output)?;
    if let Some(damage) = &stats.damage {
        writeln!(out, "stopped early, the trace is damaged: {damage}").map_err(&output)?;
    }
    if !stats.events_by_kind.is_empty() {
        let kinds: Vec<String> = stats
            .events_by_kind
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        writeln!(out, "by kind: {}", kinds.join(", ")).map_err(&output)?;
    }
    writeln!(out).map_err(&output)?;

    let mut table = vec![COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>()];
    for cpu in &stats.cpus {
        table.push(row(cpu.cpu.to_string(), &cpu.counts, stats.clock_hz));
    }
    table.push(row("total".to_string(), &stats.totals, stats.clock_hz));
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|column| {
            table
                .iter()
                .map(|r| r.get(column).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for cells in &table {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:>width$}"))
            .collect();
        writeln!(out, "{}", line.join("  ")).map_err(&output)?;
    }
    if stats.totals.unterminated_smm > 0 {
        let end = stats.last_cycle.unwrap_or(0);
        writeln!(
            out,
            "* includes {} SMM stay(s) with no RSM, counted up to the next SMM entry or the \
             last event (cycle {end})",
            stats.totals.unterminated_smm
        )
        .map_err(&output)?;
    }
    if stats.totals.unmatched_rsms > 0 {
        writeln!(
            out,
            "{} RSM(s) had no SMM entry before them and add no SMM time",
            stats.totals.unmatched_rsms
        )
        .map_err(&output)?;
    }
    out.flush().map_err(&output)
}

/// Table headings of [`render_stats`].
const COLUMNS: [&str; 14] = [
    "cpu",
    "events",
    "smis",
    "smm_entries",
    "smm_cycles",
    "smm_time",
    "max_cycles",
    "max_time",
    "relocations",
    "ipis_sent",
    "ipis_recv",
    "hot_add",
    "hot_remove",
    "ejected",
];

/// One table row of [`render_stats`]; SMM time is starred when it includes open stays.
fn row(label: String, counts: &Counts, clock_hz: u64) -> Vec<String> {
    let flag = if counts.unterminated_smm > 0 { "*" } else { "" };
    vec![
        label,
        counts.events.to_string(),
        counts.smis_raised.to_string(),
        counts.smm_entries.to_string(),
        format!("{}{flag}", counts.smm_cycles),
        format!(
            "{}{flag}",
            format_duration(Cycles(counts.smm_cycles), clock_hz)
        ),
        counts.max_smm_cycles.to_string(),
        format_duration(Cycles(counts.max_smm_cycles), clock_hz),
        counts.relocations.to_string(),
        counts.ipis_sent.to_string(),
        counts.ipis_received.to_string(),
        counts.hot_adds.to_string(),
        counts.hot_removes.to_string(),
        counts.cpu_ejects.to_string(),
    ]
}
