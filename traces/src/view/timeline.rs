//! `trace timeline`: an SVG picture of a run — one row per CPU, time across, SMM residency
//! as filled bars, IPIs as arrows between rows, hot-plug and checker marks.
//!
//! The SVG is written by hand rather than through plotters' SVG backend. The picture is
//! only rectangles, lines, small paths and text, which are one line of SVG each; writing
//! them directly gives each element a hover `<title>` and a CSS class (so tests and people
//! can pick out row labels, bars and arrows) and adds no dependency, while plotters is
//! built around chart meshes and would add its font handling for no gain here.
//!
//! 1. The time range comes from the chunk list (no extra pass), and x is linear in cycles.
//! 2. One pass over the events collects, per CPU row, SMM stays in pixel coordinates. A
//!    stay that starts within a pixel of the previous bar's end is merged into it, so a row
//!    never holds more bars than it has pixels however long the trace is; a merged bar's
//!    title says how many stays it covers.
//! 3. Paired IPIs ([`IpiMatcher`]) become arrows and hot-plug or checker events become
//!    marks, each deduplicated per pixel and capped (`max_arrows`, `max_marks`); the legend
//!    says how many were left out.
//! 4. Rows are laid out in CPU order with labels, then the axis with round time ticks and
//!    the legend.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};

use crate::event::{Event, EventKind};
use crate::reader::TraceReader;
use crate::time::Cycles;
use crate::view::ipi::IpiMatcher;
use crate::view::units::{format_duration, picos};
use crate::view::ViewError;

/// Space left of the plot for row labels.
const LEFT_PX: f64 = 110.0;
/// Space right of the plot.
const RIGHT_PX: f64 = 20.0;
/// Space above the rows for the title.
const TOP_PX: f64 = 36.0;
/// Space below the rows for the axis and legend.
const BOTTOM_PX: f64 = 80.0;
/// A stay starting closer than this to the previous bar's end joins it.
const MERGE_GAP_PX: f64 = 1.0;

/// How to draw the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineOptions {
    /// Width of the whole picture in pixels.
    pub width_px: u32,
    /// Height of one CPU row in pixels.
    pub row_height_px: u32,
    /// At most this many IPI arrows are drawn (after merging arrows that share pixels).
    pub max_arrows: usize,
    /// At most this many hot-plug and checker marks are drawn.
    pub max_marks: usize,
}

impl Default for TimelineOptions {
    fn default() -> Self {
        TimelineOptions {
            width_px: 1600,
            row_height_px: 18,
            max_arrows: 2_000,
            max_marks: 2_000,
        }
    }
}

/// What [`timeline_svg`] drew.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimelineSummary {
    /// Events read from the trace.
    pub events_read: u64,
    /// CPU rows drawn.
    pub rows: u64,
    /// SMM stays found.
    pub stays: u64,
    /// Bars drawn for them after merging.
    pub bars: u64,
    /// IPI arrows drawn.
    pub arrows: u64,
    /// Paired IPIs not drawn because of `max_arrows`.
    pub arrows_left_out: u64,
    /// Marks drawn.
    pub marks: u64,
    /// Marks not drawn because of `max_marks`.
    pub marks_left_out: u64,
    /// Why reading stopped early, if the trace is damaged.
    pub damage: Option<String>,
}

/// A drawn SMM bar, possibly several stays merged.
#[derive(Clone, Copy, Debug)]
struct Bar {
    x0: f64,
    x1: f64,
    first_cycle: u64,
    last_cycle: u64,
    stays: u64,
    /// In-SMM cycles covered (stays only, not the gaps merged over).
    smm_cycles: u64,
    /// True if a stay in it had no RSM.
    unterminated: bool,
}

/// One CPU's row while collecting.
#[derive(Debug, Default)]
struct Row {
    bars: Vec<Bar>,
    open_since: Option<u64>,
}

/// Kinds of mark, with their legend text and colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mark {
    HotAdd,
    HotRemove,
    Ejected,
    Violation,
}

impl Mark {
    const ALL: [Mark; 4] = [
        Mark::HotAdd,
        Mark::HotRemove,
        Mark::Ejected,
        Mark::Violation,
    ];

    fn label(self) -> &'static str {
        match self {
            Mark::HotAdd => "hot-add",
            Mark::HotRemove => "hot-remove",
            Mark::Ejected => "ejected",
            Mark::Violation => "violation",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Mark::HotAdd => "#2a9d3f",
            Mark::HotRemove => "#d62828",
            Mark::Ejected => "#6a040f",
            Mark::Violation => "#f77f00",
        }
    }
}

/// Maps cycles to x pixels.
#[derive(Clone, Copy, Debug)]
struct Scale {
    start: u64,
    span: u64,
    plot_width: f64,
}

impl Scale {
    fn x(&self, cycle: u64) -> f64 {
        let offset = cycle.saturating_sub(self.start).min(self.span);
        LEFT_PX + offset as f64 / self.span as f64 * self.plot_width
    }
}

/// Everything collected in the pass over events.
struct Collector {
    scale: Scale,
    options: TimelineOptions,
    rows: BTreeMap<u32, Row>,
    ipis: IpiMatcher,
    arrow_pixels: HashSet<(u32, u32, i64, i64)>,
    arrows: Vec<(u32, f64, u32, f64)>,
    mark_pixels: HashSet<(u32, i64, Mark)>,
    marks: Vec<(u32, f64, Mark, u64)>,
    summary: TimelineSummary,
    last_cycle: u64,
}

impl Collector {
    fn event(&mut self, event: &Event) {
        self.summary.events_read += 1;
        self.last_cycle = event.cycle.0;
        let cycle = event.cycle.0;
        let row = self.rows.entry(event.cpu).or_default();
        match &event.kind {
            EventKind::SmmEntry { .. } => {
                if let Some(since) = row.open_since.replace(cycle) {
                    let scale = self.scale;
                    add_stay(row, scale, since, cycle, true);
                    self.summary.stays += 1;
                }
            }
            EventKind::Rsm { .. } => {
                if let Some(since) = row.open_since.take() {
                    let scale = self.scale;
                    add_stay(row, scale, since, cycle, false);
                    self.summary.stays += 1;
                }
            }
            EventKind::IpiSent { mode, destination } => {
                self.ipis.sent(event.cpu, cycle, *mode, *destination);
            }
            EventKind::IpiDelivered { mode, source } => {
                if let Some(send) = self.ipis.delivered(event.cpu, *mode, *source) {
                    self.arrow(send.cpu, send.cycle, event.cpu, cycle);
                }
            }
            EventKind::HotAdd { .. } => self.mark(event.cpu, cycle, Mark::HotAdd),
            EventKind::HotRemove { .. } => self.mark(event.cpu, cycle, Mark::HotRemove),
            EventKind::CpuEjected { .. } => self.mark(event.cpu, cycle, Mark::Ejected),
            EventKind::Violation { .. } => self.mark(event.cpu, cycle, Mark::Violation),
            _ => {}
        }
    }

    fn arrow(&mut self, from: u32, from_cycle: u64, to: u32, to_cycle: u64) {
        let (x0, x1) = (self.scale.x(from_cycle), self.scale.x(to_cycle));
        if !self
            .arrow_pixels
            .insert((from, to, x0.round() as i64, x1.round() as i64))
        {
            return;
        }
        if self.arrows.len() >= self.options.max_arrows {
            self.summary.arrows_left_out += 1;
            return;
        }
        self.arrows.push((from, x0, to, x1));
    }

    fn mark(&mut self, cpu: u32, cycle: u64, mark: Mark) {
        let x = self.scale.x(cycle);
        if !self.mark_pixels.insert((cpu, x.round() as i64, mark)) {
            return;
        }
        if self.marks.len() >= self.options.max_marks {
            self.summary.marks_left_out += 1;
            return;
        }
        self.marks.push((cpu, x, mark, cycle));
    }
}

/// Adds a stay to a row's bars, merging it into the last bar when they touch in pixels.
fn add_stay(row: &mut Row, scale: Scale, start: u64, end: u64, unterminated: bool) {
    let (x0, x1) = (scale.x(start), scale.x(end));
    let length = end.saturating_sub(start);
    if let Some(last) = row.bars.last_mut() {
        if x0 <= last.x1 + MERGE_GAP_PX {
            last.x1 = last.x1.max(x1);
            last.last_cycle = end;
            last.stays += 1;
            last.smm_cycles = last.smm_cycles.saturating_add(length);
            last.unterminated |= unterminated;
            return;
        }
    }
    row.bars.push(Bar {
        x0,
        x1,
        first_cycle: start,
        last_cycle: end,
        stays: 1,
        smm_cycles: length,
        unterminated,
    });
}

/// Draws `reader`'s trace as an SVG timeline on `out`.
///
/// Damage in the trace ends the picture at that point (a note under the title says so);
/// options too small to draw anything are an error.
pub fn timeline_svg(
    reader: &TraceReader,
    out: &mut dyn Write,
    options: &TimelineOptions,
) -> Result<TimelineSummary, ViewError> {
    let minimum_width = (LEFT_PX + RIGHT_PX) as u64 + 100;
    if u64::from(options.width_px) < minimum_width {
        return Err(ViewError::BadOption {
            what: "width in pixels",
            value: u64::from(options.width_px),
            minimum: minimum_width,
        });
    }
    if options.row_height_px < 4 {
        return Err(ViewError::BadOption {
            what: "row height in pixels",
            value: u64::from(options.row_height_px),
            minimum: 4,
        });
    }
    let start = reader.chunks().next().map_or(0, |c| c.first_cycle.0);
    let end = reader
        .chunks()
        .map(|c| c.last_cycle.0)
        .max()
        .unwrap_or(start);
    let scale = Scale {
        start,
        span: end.saturating_sub(start).max(1),
        plot_width: f64::from(options.width_px) - LEFT_PX - RIGHT_PX,
    };
    let mut collector = Collector {
        scale,
        options: options.clone(),
        rows: BTreeMap::new(),
        ipis: IpiMatcher::default(),
        arrow_pixels: HashSet::new(),
        arrows: Vec::new(),
        mark_pixels: HashSet::new(),
        marks: Vec::new(),
        summary: TimelineSummary::default(),
        last_cycle: start,
    };
    if let Err(damage) = reader.for_each_event(|event| collector.event(event)) {
        collector.summary.damage = Some(damage.to_string());
    }
    let last_cycle = collector.last_cycle;
    let mut open = 0;
    for row in collector.rows.values_mut() {
        if let Some(since) = row.open_since.take() {
            add_stay(row, scale, since, last_cycle, true);
            open += 1;
        }
    }
    collector.summary.stays += open;

    let svg = render(reader, &collector, scale, start, end);
    let mut summary = collector.summary;
    summary.rows = collector.rows.len() as u64;
    summary.bars = collector.rows.values().map(|r| r.bars.len() as u64).sum();
    summary.arrows = collector.arrows.len() as u64;
    summary.marks = collector.marks.len() as u64;
    let output = ViewError::output("timeline SVG");
    let mut out = BufWriter::new(out);
    out.write_all(svg.as_bytes()).map_err(&output)?;
    out.flush().map_err(&output)?;
    Ok(summary)
}

/// Builds the SVG text from what was collected.
fn render(
    reader: &TraceReader,
    collector: &Collector,
    scale: Scale,
    start: u64,
    end: u64,
) -> String {
    let options = &collector.options;
    let header = reader.header();
    let clock_hz = header.clock_hz;
    let row_height = f64::from(options.row_height_px);
    let rows: Vec<u32> = collector.rows.keys().copied().collect();
    let row_y = |cpu: u32| -> f64 {
        let index = rows.binary_search(&cpu).unwrap_or(0);
        TOP_PX + index as f64 * row_height
    };
    let plot_bottom = TOP_PX + rows.len() as f64 * row_height;
    let width = f64::from(options.width_px);
    let height = plot_bottom + BOTTOM_PX;
    let mut svg = String::new();
    // Writing into a String cannot fail; the results below are ignored for that reason.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r##"<defs><marker id="arrowhead" markerWidth="6" markerHeight="6" refX="5" refY="3" orient="auto"><path d="M0,0 L6,3 L0,6 z" fill="#3a86ff"/></marker></defs>"##
    );
    let _ = writeln!(
        svg,
        r#"<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT_PX}" y="16" font-size="13" font-weight="bold">{}</text>"#,
        escape(&format!(
            "smmsim trace: {} on {}, {} CPUs, {} ({} events)",
            header.strategy,
            header.layout,
            rows.len(),
            format_duration(Cycles(end.saturating_sub(start)), clock_hz),
            collector.summary.events_read
        ))
    );
    if let Some(damage) = &collector.summary.damage {
        let _ = writeln!(
            svg,
            r##"<text x="{LEFT_PX}" y="30" fill="#d62828">{}</text>"##,
            escape(&format!("trace damaged, drawn up to: {damage}"))
        );
    }

    // Rows: background stripe, label, bars.
    for (index, cpu) in rows.iter().enumerate() {
        let y = row_y(*cpu);
        if index % 2 == 0 {
            let _ = writeln!(
                svg,
                r##"<rect x="{LEFT_PX}" y="{y}" width="{}" height="{row_height}" fill="#f3f4f6"/>"##,
                scale.plot_width
            );
        }
        let label = match collector.ipis.apic_id(*cpu) {
            Some(apic_id) => format!("cpu {cpu} (APIC {apic_id})"),
            None => format!("cpu {cpu}"),
        };
        let _ = writeln!(
            svg,
            r#"<text class="row-label" x="{}" y="{}" text-anchor="end">{label}</text>"#,
            LEFT_PX - 6.0,
            y + row_height * 0.7
        );
        let Some(row) = collector.rows.get(cpu) else {
            continue;
        };
        for bar in &row.bars {
            let (fill, note) = if bar.unterminated {
                ("#ffb703", ", includes a stay with no RSM")
            } else {
                ("#8338ec", "")
            };
            let _ = writeln!(
                svg,
                r#"<rect class="smm" x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{fill}"><title>cpu {cpu}: {} SMM stay(s), {} in SMM, cycles {}..={}{note}</title></rect>"#,
                bar.x0,
                y + 2.0,
                (bar.x1 - bar.x0).max(1.0),
                row_height - 4.0,
                bar.stays,
                format_duration(Cycles(bar.smm_cycles), clock_hz),
                bar.first_cycle,
                bar.last_cycle,
            );
        }
    }

    for &(from, x0, to, x1) in &collector.arrows {
        let (y0, y1) = (row_y(from) + row_height / 2.0, row_y(to) + row_height / 2.0);
        let _ = writeln!(
            svg,
            r##"<line class="ipi" x1="{x0:.2}" y1="{y0:.2}" x2="{x1:.2}" y2="{y1:.2}" stroke="#3a86ff" stroke-width="1" marker-end="url(#arrowhead)"/>"##
        );
    }

    for &(cpu, x, mark, cycle) in &collector.marks {
        let y = row_y(cpu);
        let _ = writeln!(
            svg,
            r#"<path class="mark" d="M{:.2},{:.2} l-4,-7 h8 z" fill="{}"><title>cpu {cpu}: {} at cycle {cycle}</title></path>"#,
            x,
            y + row_height - 1.0,
            mark.colour(),
            mark.label(),
        );
    }

    render_axis(&mut svg, scale, start, end, clock_hz, plot_bottom);
    render_legend(&mut svg, collector, plot_bottom + 50.0);
    svg.push_str("</svg>\n");
    svg
}

/// The time axis under the rows, with ticks at round times (1, 2 or 5 × a power of ten).
fn render_axis(svg: &mut String, scale: Scale, start: u64, end: u64, clock_hz: u64, y: f64) {
    let right = LEFT_PX + scale.plot_width;
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT_PX}" y1="{y}" x2="{right}" y2="{y}" stroke="black"/>"#
    );
    // Ticks are placed in picoseconds when the clock is known, else in cycles.
    let to_units = |cycle: u64| picos(Cycles(cycle), clock_hz).unwrap_or(u128::from(cycle));
    let (first, last) = (to_units(start), to_units(end));
    let step = nice_step((last - first).max(1) / 8);
    let mut next_tick = first.div_ceil(step).checked_mul(step);
    while let Some(tick) = next_tick.filter(|tick| *tick <= last) {
        next_tick = tick.checked_add(step);
        // Back from units to cycles for the x position.
        let cycle = if clock_hz == 0 {
            tick
        } else {
            tick.saturating_mul(u128::from(clock_hz)) / 1_000_000_000_000
        };
        let x = scale.x(u64::try_from(cycle).unwrap_or(u64::MAX));
        let label = if clock_hz == 0 {
            format!("{tick} cycles")
        } else {
            // The tick is in picoseconds; a 10¹² Hz clock makes format_duration read it so.
            format_duration(
                Cycles(u64::try_from(tick).unwrap_or(u64::MAX)),
                1_000_000_000_000,
            )
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.2}" y1="{y}" x2="{x:.2}" y2="{}" stroke="black"/><text class="tick" x="{x:.2}" y="{}" text-anchor="middle">{label}</text>"#,
            y + 5.0,
            y + 17.0
        );
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ that is at least `rough`.
fn nice_step(rough: u128) -> u128 {
    let mut power = 1u128;
    loop {
        for factor in [1u128, 2, 5] {
            match factor.checked_mul(power) {
                Some(step) if step >= rough => return step,
                Some(_) => {}
                None => return u128::MAX,
            }
        }
        match power.checked_mul(10) {
            Some(next) => power = next,
            None => return u128::MAX,
        }
    }
}

/// A legend entry's picture.
enum Swatch {
    /// A filled box of this colour.
    Fill(&'static str),
    /// An IPI arrow.
    Arrow,
    /// A mark's triangle.
    Mark(Mark),
}

/// The legend row: what each colour means, and what was left out.
fn render_legend(svg: &mut String, collector: &Collector, y: f64) {
    let arrows = if collector.summary.arrows_left_out > 0 {
        format!("IPI ({} more not drawn)", collector.summary.arrows_left_out)
    } else {
        "IPI".to_string()
    };
    let mut items = vec![
        (Swatch::Fill("#8338ec"), "SMM residency".to_string()),
        (Swatch::Fill("#ffb703"), "SMM, no RSM".to_string()),
        (Swatch::Arrow, arrows),
    ];
    items.extend(
        Mark::ALL
            .iter()
            .map(|mark| (Swatch::Mark(*mark), mark.label().to_string())),
    );
    if collector.summary.marks_left_out > 0 {
        let text = format!(
            "({} more marks not drawn)",
            collector.summary.marks_left_out
        );
        items.push((Swatch::Fill("none"), text));
    }
    let mut x = LEFT_PX;
    for (swatch, text) in items {
        let _ = match swatch {
            Swatch::Fill(colour) => write!(
                svg,
                r#"<rect x="{x}" y="{y}" width="12" height="10" fill="{colour}"/>"#
            ),
            Swatch::Arrow => write!(
                svg,
                r##"<line x1="{x}" y1="{}" x2="{}" y2="{}" stroke="#3a86ff" marker-end="url(#arrowhead)"/>"##,
                y + 5.0,
                x + 12.0,
                y + 5.0
            ),
            Swatch::Mark(mark) => write!(
                svg,
                r#"<path d="M{},{} l-4,-7 h8 z" fill="{}"/>"#,
                x + 6.0,
                y + 10.0,
                mark.colour()
            ),
        };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            x + 16.0,
            y + 9.0,
            escape(&text)
        );
        x += 16.0 + 7.0 * text.chars().count() as f64 + 18.0;
    }
}

/// Escapes text for SVG element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0), 1);
        assert_eq!(nice_step(3), 5);
        assert_eq!(nice_step(7), 10);
        assert_eq!(nice_step(11), 20);
        assert_eq!(nice_step(150_000), 200_000);
    }

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }

    #[test]
    fn stays_within_a_pixel_merge() {
        let scale = Scale {
            start: 0,
            span: 1_000_000,
            plot_width: 1000.0,
        };
        let mut row = Row::default();
        for i in 0..1000u64 {
            add_stay(&mut row, scale, i * 100, i * 100 + 10, false);
        }
        assert_eq!(row.bars.len(), 1);
        assert_eq!(row.bars[0].stays, 1000);
        assert_eq!(row.bars[0].smm_cycles, 10_000);
        add_stay(&mut row, scale, 500_000, 500_010, false);
        assert_eq!(row.bars.len(), 2);
    }
}
