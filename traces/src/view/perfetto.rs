//! `trace export --perfetto`: the trace as Chrome trace-event JSON, which ui.perfetto.dev
//! (and chrome://tracing) open directly.
//!
//! The JSON Object Format: `{"traceEvents": [...], "displayTimeUnit": "ns", ...}`, one
//! process (pid 1) whose threads are the CPUs (tid = CPU index), so Perfetto draws one
//! track per CPU.
//!
//! 1. Each event is turned into JSON as it is read and streamed out, so memory stays small
//!    for any trace length:
//!    - an `SmmEntry` opens an SMM stay and the next `Rsm` on that CPU closes it as a
//!      complete slice (`"ph":"X"`); stays never overlap on one CPU (a second entry closes
//!      the first), and a stay still open at the end is clipped at the last event;
//!    - every other event except `Instruction` becomes a thread-scoped instant
//!      (`"ph":"i"`) named by its kind, with its fields as `args.detail`;
//!    - a delivered IPI that [`IpiMatcher`] pairs with its send also gets a flow arrow:
//!      `"ph":"s"` at the send and `"ph":"f"` (`"bp":"e"`) at the delivery. Perfetto binds
//!      flow ends to the slice enclosing them, which the instants at both ends provide.
//! 2. Timestamps are microseconds (the format's unit) computed from whole nanoseconds,
//!    `cycle × 10⁹ / clock_hz` rounded, so a slice's end and the next slice's start never
//!    cross through floating-point error. With an unknown clock (0 Hz) one cycle counts as
//!    one nanosecond.
//! 3. At the end, thread names `cpu N (APIC a)` (the APIC ID when IPI pairing learned it)
//!    and the header as `otherData`.
//!
//! `Instruction` events are left out: with `--trace-instructions` they outnumber all others
//! by orders of magnitude and would make the file too large to open.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;

use serde::Serialize;
use serde_json::json;

use crate::event::{Event, EventKind};
use crate::reader::TraceReader;
use crate::view::describe::Fields;
use crate::view::ipi::IpiMatcher;
use crate::view::ViewError;

/// The one process every CPU track belongs to.
const PID: u32 = 1;

/// What [`export_perfetto`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerfettoSummary {
    /// Events read from the trace.
    pub events_read: u64,
    /// SMM stays written as complete slices.
    pub slices: u64,
    /// Of those, stays with no RSM (closed at the next entry or clipped at the end).
    pub unterminated_slices: u64,
    /// Instant events written.
    pub instants: u64,
    /// IPI send/delivery pairs written as flows.
    pub flows: u64,
    /// Why reading stopped early, if the trace is damaged.
    pub damage: Option<String>,
}

/// One entry of `traceEvents`.
#[derive(Serialize)]
struct TraceEvent<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'a str>,
    ph: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u32,
    /// Instant scope: `"t"` for the thread's own track.
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'a str>,
    /// Flow id, shared by a flow's `s` and `f`.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    /// Flow binding point: `"e"` binds the flow end to the enclosing slice.
    #[serde(skip_serializing_if = "Option::is_none")]
    bp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<serde_json::Value>,
}

impl<'a> TraceEvent<'a> {
    /// An event with just name, phase and thread; callers fill the rest.
    fn new(name: &'a str, ph: &'a str, tid: u32) -> Self {
        TraceEvent {
            name,
            cat: None,
            ph,
            ts: None,
            dur: None,
            pid: PID,
            tid,
            s: None,
            id: None,
            bp: None,
            args: None,
        }
    }
}

/// An SMM stay not yet closed by an RSM.
#[derive(Clone, Copy, Debug)]
struct OpenStay {
    cycle: u64,
    smbase: u64,
    save_area: u64,
}

/// Writes events to the JSON array, with separators.
struct JsonOut<'w> {
    out: BufWriter<&'w mut dyn Write>,
    first: bool,
    clock_hz: u64,
}

impl JsonOut<'_> {
    fn push(&mut self, event: &TraceEvent<'_>) -> Result<(), ViewError> {
        let output = ViewError::output("Perfetto");
        if !self.first {
            self.out.write_all(b",\n").map_err(&output)?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, event).map_err(|source| ViewError::Json {
            what: "Perfetto",
            source,
        })
    }

    /// Whole nanoseconds at `cycle`, rounded.
    fn nanos(&self, cycle: u64) -> u128 {
        if self.clock_hz == 0 {
            return u128::from(cycle);
        }
        let hz = u128::from(self.clock_hz);
        (u128::from(cycle) * 1_000_000_000 + hz / 2) / hz
    }

    /// The format's microsecond timestamp of `cycle`.
    fn micros(&self, cycle: u64) -> f64 {
        self.nanos(cycle) as f64 / 1_000.0
    }

    /// The microsecond duration from `start` to `end`, from whole nanoseconds at each end.
    fn micros_between(&self, start: u64, end: u64) -> f64 {
        self.nanos(end).saturating_sub(self.nanos(start)) as f64 / 1_000.0
    }
}

/// The exporter's state between events.
struct Exporter<'w> {
    json: JsonOut<'w>,
    open: BTreeMap<u32, Option<OpenStay>>,
    ipis: IpiMatcher,
    summary: PerfettoSummary,
    last_cycle: u64,
}

impl Exporter<'_> {
    fn event(&mut self, event: &Event) -> Result<(), ViewError> {
        self.summary.events_read += 1;
        self.last_cycle = event.cycle.0;
        let open = self.open.entry(event.cpu).or_default();
        match &event.kind {
            EventKind::SmmEntry { smbase, save_area } => {
                let previous = open.replace(OpenStay {
                    cycle: event.cycle.0,
                    smbase: *smbase,
                    save_area: *save_area,
                });
                if let Some(stay) = previous {
                    self.slice(event.cpu, stay, event.cycle.0, None)?;
                }
                Ok(())
            }
            EventKind::Rsm { new_smbase, .. } => match open.take() {
                Some(stay) => self.slice(event.cpu, stay, event.cycle.0, Some(*new_smbase)),
                None => self.instant(event),
            },
            EventKind::IpiSent { mode, destination } => {
                self.ipis
                    .sent(event.cpu, event.cycle.0, *mode, *destination);
                self.instant(event)
            }
            EventKind::IpiDelivered { mode, source } => {
                self.instant(event)?;
                if let Some(send) = self.ipis.delivered(event.cpu, *mode, *source) {
                    self.flow(send.cpu, send.cycle, event.cpu, event.cycle.0)?;
                }
                Ok(())
            }
            EventKind::Instruction { .. } => Ok(()),
            _ => self.instant(event),
        }
    }

    /// Writes an SMM stay from `stay` to `end`; `new_smbase` is `None` for a stay with no
    /// RSM.
    fn slice(
        &mut self,
        cpu: u32,
        stay: OpenStay,
        end: u64,
        new_smbase: Option<u64>,
    ) -> Result<(), ViewError> {
        self.summary.slices += 1;
        if new_smbase.is_none() {
            self.summary.unterminated_slices += 1;
        }
        let mut args = json!({
            "smbase": format!("{:#010x}", stay.smbase),
            "save_area": format!("{:#010x}", stay.save_area),
            "entry_cycle": stay.cycle,
            "end_cycle": end,
            "rsm": new_smbase.is_some(),
        });
        if let Some(new) = new_smbase {
            args["new_smbase"] = json!(format!("{new:#010x}"));
            args["relocated"] = json!(new != stay.smbase);
        }
        let mut slice = TraceEvent::new("SMM", "X", cpu);
        slice.cat = Some("smm");
        slice.ts = Some(self.json.micros(stay.cycle));
        slice.dur = Some(self.json.micros_between(stay.cycle, end));
        slice.args = Some(args);
        self.json.push(&slice)
    }

    /// Writes `event` as an instant on its CPU's track.
    fn instant(&mut self, event: &Event) -> Result<(), ViewError> {
        self.summary.instants += 1;
        let mut instant = TraceEvent::new(event.kind.kind_name(), "i", event.cpu);
        instant.cat = Some("event");
        instant.ts = Some(self.json.micros(event.cycle.0));
        instant.s = Some("t");
        instant.args = Some(json!({
            "cycle": event.cycle.0,
            "detail": Fields(&event.kind).to_string(),
        }));
        self.json.push(&instant)
    }

    /// Writes a flow arrow from a send to its delivery.
    fn flow(
        &mut self,
        from_cpu: u32,
        from_cycle: u64,
        to_cpu: u32,
        to_cycle: u64,
    ) -> Result<(), ViewError> {
        self.summary.flows += 1;
        let id = self.summary.flows;
        let mut start = TraceEvent::new("ipi", "s", from_cpu);
        start.cat = Some("ipi");
        start.ts = Some(self.json.micros(from_cycle));
        start.id = Some(id);
        self.json.push(&start)?;
        let mut finish = TraceEvent::new("ipi", "f", to_cpu);
        finish.cat = Some("ipi");
        finish.ts = Some(self.json.micros(to_cycle));
        finish.id = Some(id);
        finish.bp = Some("e");
        self.json.push(&finish)
    }

    /// Clips open stays at the last event and writes the track names.
    fn finish(&mut self, reader: &TraceReader) -> Result<(), ViewError> {
        let open: Vec<(u32, OpenStay)> = self
            .open
            .iter()
            .filter_map(|(cpu, stay)| stay.map(|stay| (*cpu, stay)))
            .collect();
        for (cpu, stay) in open {
            self.slice(cpu, stay, self.last_cycle, None)?;
        }
        let header = reader.header();
        let mut process = TraceEvent::new("process_name", "M", 0);
        process.args = Some(json!({
            "name": format!("smmsim: {} on {}", header.strategy, header.layout),
        }));
        self.json.push(&process)?;
        let cpus: Vec<u32> = self.open.keys().copied().collect();
        for cpu in cpus {
            let name = match self.ipis.apic_id(cpu) {
                Some(apic_id) => format!("cpu {cpu} (APIC {apic_id})"),
                None => format!("cpu {cpu}"),
            };
            let mut thread = TraceEvent::new("thread_name", "M", cpu);
            thread.args = Some(json!({ "name": name }));
            self.json.push(&thread)?;
            let mut order = TraceEvent::new("thread_sort_index", "M", cpu);
            order.args = Some(json!({ "sort_index": cpu }));
            self.json.push(&order)?;
        }
        Ok(())
    }
}

/// Writes `reader`'s trace to `out` as Chrome trace-event JSON for ui.perfetto.dev.
///
/// Damage in the trace ends the export early but still writes a complete, valid JSON file
/// of what came before; the summary says where it stopped.
pub fn export_perfetto(
    reader: &TraceReader,
    out: &mut dyn Write,
) -> Result<PerfettoSummary, ViewError> {
    let output = ViewError::output("Perfetto");
    let mut out = BufWriter::new(out);
    out.write_all(b"{\"traceEvents\":[\n").map_err(&output)?;
    let mut exporter = Exporter {
        json: JsonOut {
            out,
            first: true,
            clock_hz: reader.header().clock_hz,
        },
        open: BTreeMap::new(),
        ipis: IpiMatcher::default(),
        summary: PerfettoSummary::default(),
        last_cycle: 0,
    };
    let result = reader.try_for_each_from(crate::time::Cycle::ZERO, |event| {
        match exporter.event(event) {
            Ok(()) => ControlFlow::Continue(()),
            Err(error) => ControlFlow::Break(error),
        }
    });
    match result {
        Ok(ControlFlow::Break(error)) => return Err(error),
        Ok(ControlFlow::Continue(())) => {}
        Err(damage) => exporter.summary.damage = Some(damage.to_string()),
    }
    exporter.finish(reader)?;

    let header = reader.header();
    let other = json!({
        "smmsim_version": header.smmsim_version,
        "cpus": header.cpus,
        "max_cpus": header.max_cpus,
        "clock_hz": header.clock_hz,
        "layout": header.layout,
        "profile": header.profile,
        "strategy": header.strategy,
        "scenario_hash": format!("{:#018x}", header.scenario_hash),
        "damage": exporter.summary.damage,
    });
    let mut out = exporter.json.out;
    out.write_all(b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":")
        .map_err(&output)?;
    serde_json::to_writer(&mut out, &other).map_err(|source| ViewError::Json {
        what: "Perfetto",
        source,
    })?;
    out.write_all(b"}\n").map_err(&output)?;
    out.flush().map_err(&output)?;
    Ok(exporter.summary)
}
