//! The sweep's SVG plot: simulated boot time (or hot-add latency) versus max CPUs, one line
//! with markers per strategy, drawn with plotters' SVG backend.
//!
//! Both axes are drawn in transformed space, so every tick is where a reader expects it:
//! 1. x is log2(max CPUs), ticked at whole powers of two and labelled with the count itself
//!    (the default sweep doubles the count at every point, so points are evenly spaced);
//! 2. y is log10 of the value when the values span a factor of [`LOG_Y_SPAN`] or more, ticked
//!    at 1, 2 and 5 times powers of ten: boot times run from about 2.6 ms at one CPU to
//!    hundreds of ms for `max-cpus` at 4,096, and on a linear axis every other strategy would
//!    be a flat line at the bottom; equal ratios then look equal, and linear growth in max
//!    CPUs shows as slope 1 on the log-log plot. A narrower span keeps a linear y axis with
//!    round ticks, where a log axis would only hide the differences;
//! 3. each strategy gets a fixed colour and marker, so plots of different sweeps compare at a
//!    glance; points that did not end `ok` are left out (a gap in the line), and a strategy
//!    without any point still appears in the legend.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::SweepRow;
use crate::scenario::Strategy;

/// Values spanning this factor or more get a log-scaled y axis.
pub const LOG_Y_SPAN: f64 = 10.0;

/// Plot size in pixels.
const SIZE: (u32, u32) = (960, 600);

/// What the plot shows on its y axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Simulated boot time in ms (the plain sweep).
    BootMs,
    /// Simulated latency of the hot-add in µs (hot-add mode).
    HotaddLatencyUs,
}

impl Measure {
    fn value(self, row: &SweepRow) -> Option<f64> {
        if !row.outcome.is_ok() {
            return None;
        }
        let value = match self {
            Measure::BootMs => row.boot.map(|boot| boot.boot_ms),
            Measure::HotaddLatencyUs => row.hotadd.and_then(|add| add.latency_us),
        }?;
        (value > 0.0 && value.is_finite()).then_some(value)
    }

    fn description(self) -> &'static str {
        match self {
            Measure::BootMs => "simulated boot time (ms)",
            Measure::HotaddLatencyUs => "simulated hot-add latency (µs)",
        }
    }
}

/// Why the plot could not be drawn (a plotters drawing error; the text is plotters').
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the sweep plot: {0}")]
pub struct PlotError(String);

fn plot_error(error: impl std::fmt::Display) -> PlotError {
    PlotError(error.to_string())
}

/// The colour of a strategy's line (the first four of the common "tab10" palette).
fn colour(strategy: Strategy) -> RGBColor {
    match strategy {
        Strategy::SmbaseSmram => RGBColor(31, 119, 180),
        Strategy::Controller => RGBColor(255, 127, 14),
        Strategy::Formula => RGBColor(44, 160, 44),
        Strategy::MaxCpus => RGBColor(214, 39, 40),
    }
}

/// A linear f64 axis whose ticks (bold) and grid lines (light) are chosen here rather than by
/// plotters, so they fall on powers of two and on 1-2-5 decades in transformed space.
/// (plotters' own `WithKeyPoints` keeps the f64 axis's numeric formatting, which refuses the
/// custom label formatters the transformed axes need.)
struct TickedAxis {
    linear: RangedCoordf64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl TickedAxis {
    fn new(range: Range<f64>, bold: Vec<f64>, light: Vec<f64>) -> TickedAxis {
        TickedAxis {
            linear: range.into(),
            bold,
            light,
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

/// The y axis: its range in plotted units, its ticks, and whether it is log10.
struct YAxis {
    log: bool,
    range: Range<f64>,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl YAxis {
    fn new(values: &[f64]) -> YAxis {
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(0.0, f64::max);
        if values.is_empty() {
            return YAxis::linear(0.0, 1.0);
        }
        if high / low >= LOG_Y_SPAN {
            YAxis::log(low, high)
        } else {
            YAxis::linear(0.0, high)
        }
    }

    /// From the 1-2-5 value at or below `low` to the one at or above `high` (at least a
    /// factor of two apart), ticks at 1-2-5, grid lines at 1..9 times each power of ten.
    fn log(low: f64, high: f64) -> YAxis {
        let first = low.log10().floor() as i32;
        let last = high.log10().ceil() as i32;
        let candidates: Vec<(u32, f64)> = (first..=last)
            .flat_map(|exponent| {
                (1..=9).map(move |step| (step, f64::from(step) * 10f64.powi(exponent)))
            })
            .collect();
        let is_round = |step: u32| matches!(step, 1 | 2 | 5);
        let bottom = candidates
            .iter()
            .filter(|&&(step, value)| is_round(step) && value <= low * (1.0 + 1e-9))
            .map(|&(_, value)| value)
            .fold(10f64.powi(first), f64::max);
        let top = candidates
            .iter()
            .filter(|&&(step, value)| is_round(step) && value >= high * (1.0 - 1e-9))
            .map(|&(_, value)| value)
            .fold(10f64.powi(last), f64::min)
            .max(bottom * 2.0);
        let inside = |value: f64| value >= bottom * (1.0 - 1e-9) && value <= top * (1.0 + 1e-9);
        let bold = candidates
            .iter()
            .filter(|&&(step, value)| is_round(step) && inside(value))
            .map(|&(_, value)| value.log10())
            .collect();
        let light = candidates
            .iter()
            .filter(|&&(_, value)| inside(value))
            .map(|&(_, value)| value.log10())
            .collect();
        YAxis {
            log: true,
            range: bottom.log10()..top.log10(),
            bold,
            light,
        }
    }

    /// From 0 to a little above `high`, ticks at a round step giving about eight of them.
    fn linear(low: f64, high: f64) -> YAxis {
        let span = (high - low).max(f64::MIN_POSITIVE);
        let rough = span / 8.0;
        let magnitude = 10f64.powf(rough.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|factor| factor * magnitude)
            .find(|step| span / step <= 8.0)
            .unwrap_or(10.0 * magnitude);
        let top = (high / step).ceil().max(1.0) * step;
        let ticks: Vec<f64> = (0..)
            .map(|n| low + f64::from(n) * step)
            .take_while(|value| *value <= top + step * 1e-9)
            .collect();
        YAxis {
            log: false,
            range: low..top,
            light: ticks.clone(),
            bold: ticks,
        }
    }

    fn plotted(&self, value: f64) -> f64 {
        if self.log {
            value.log10()
        } else {
            value
        }
    }

    fn label(&self, plotted: f64) -> String {
        let value = if self.log {
            10f64.powf(plotted)
        } else {
            plotted
        };
        format_number(value)
    }
}

/// A tick label: whole numbers without decimals, small ones with as few as they need.
fn format_number(value: f64) -> String {
    let rounded = value.round();
    if (value - rounded).abs() < 1e-6 * value.abs().max(1.0) {
        return format!("{rounded:.0}");
    }
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Draws the rows as an SVG document (returned as text): `measure` versus max CPUs, one line
/// per strategy in `strategies` order, with axis labels, a legend and `title`.
pub fn render_svg(
    rows: &[SweepRow],
    strategies: &[Strategy],
    measure: Measure,
    title: &str,
) -> Result<String, PlotError> {
    let series: Vec<(Strategy, Vec<(u32, f64)>)> = strategies
        .iter()
        .map(|&strategy| {
            let mut points: Vec<(u32, f64)> = rows
                .iter()
                .filter(|row| row.point.strategy == strategy)
                .filter_map(|row| Some((row.point.max_cpus, measure.value(row)?)))
                .collect();
            points.sort_by_key(|&(max_cpus, _)| max_cpus);
            (strategy, points)
        })
        .collect();
    let counts: Vec<u32> = rows.iter().map(|row| row.point.max_cpus).collect();
    let values: Vec<f64> = series
        .iter()
        .flat_map(|(_, points)| points.iter().map(|&(_, value)| value))
        .collect();

    // x in log2 units, from the power of two at or below the smallest count to the one at or
    // above the largest, never narrower than one doubling.
    let x_low = counts.iter().copied().min().unwrap_or(1).max(1);
    let x_high = counts.iter().copied().max().unwrap_or(1).max(1);
    let x_first = f64::from(x_low).log2().floor();
    let x_last = f64::from(x_high).log2().ceil().max(x_first + 1.0);
    let x_ticks: Vec<f64> = (x_first as i32..=x_last as i32).map(f64::from).collect();
    let y = YAxis::new(&values);
    let y_desc = if y.log {
        format!("{} — log scale", measure.description())
    } else {
        measure.description().to_owned()
    };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let x_spec = TickedAxis::new(x_first - 0.25..x_last + 0.25, x_ticks.clone(), x_ticks);
        let y_spec = TickedAxis::new(y.range.clone(), y.bold.clone(), y.light.clone());
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(52)
            .y_label_area_size(80)
            .build_cartesian_2d(x_spec, y_spec)
            .map_err(plot_error)?;
        let x_label = |plotted: &f64| format_number(2f64.powf(*plotted));
        let y_label = |plotted: &f64| y.label(*plotted);
        chart
            .configure_mesh()
            .x_desc("max CPUs (log2 scale)")
            .y_desc(y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(200, 200, 200))
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(plot_error)?;

        for (strategy, points) in &series {
            let colour = colour(*strategy);
            let plotted: Vec<(f64, f64)> = points
                .iter()
                .map(|&(max_cpus, value)| (f64::from(max_cpus).log2(), y.plotted(value)))
                .collect();
            chart
                .draw_series(LineSeries::new(
                    plotted.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(strategy.name())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(-10, 0), (10, 0)], colour.stroke_width(2))
                        + Circle::new((0, 0), 4, colour.filled())
                });
            chart
                .draw_series(
                    plotted
                        .iter()
                        .map(|&point| Circle::new(point, 4, colour.filled())),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::{BootFigures, Outcome, SweepPoint};

    fn row(strategy: Strategy, max_cpus: u32, boot_ms: f64, outcome: Outcome) -> SweepRow {
        SweepRow {
            point: SweepPoint {
                strategy,
                max_cpus,
                present: 1,
            },
            present_at_reset: 1,
            tseg_mbytes: 16,
            boot: Some(BootFigures {
                boot_ms,
                ..BootFigures::default()
            }),
            host_seconds: 0.0,
            hotadd: None,
            outcome,
            detail: String::new(),
        }
    }

    #[test]
    fn the_svg_has_a_title_labels_and_every_strategy_in_the_legend() {
        let rows = [
            row(Strategy::SmbaseSmram, 1, 2.6, Outcome::Ok),
            row(Strategy::SmbaseSmram, 4096, 35.6, Outcome::Ok),
            row(Strategy::MaxCpus, 1, 2.7, Outcome::Ok),
            row(Strategy::MaxCpus, 4096, 0.0, Outcome::CycleLimit),
        ];
        let svg = render_svg(
            &rows,
            &[Strategy::SmbaseSmram, Strategy::MaxCpus, Strategy::Formula],
            Measure::BootMs,
            "boot time",
        )
        .expect("draws");
        for text in [
            "boot time",
            "smbase-smram",
            "max-cpus",
            "formula",
            "max CPUs (log2 scale)",
            "log scale",
            "4096",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }

    #[test]
    fn narrow_ranges_stay_linear_and_wide_ones_go_log() {
        assert!(!YAxis::new(&[2.6, 5.0]).log);
        let log = YAxis::new(&[2.6, 205.0]);
        assert!(log.log);
        let labels: Vec<String> = log.bold.iter().map(|&tick| log.label(tick)).collect();
        assert_eq!(labels, ["2", "5", "10", "20", "50", "100", "200", "500"]);
        assert_eq!(log.range, 2f64.log10()..500f64.log10());
        let linear = YAxis::linear(0.0, 37.0);
        assert_eq!(
            linear.bold,
            vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]
        );
        assert_eq!(format_number(0.5), "0.5");
    }
}
