//! One chart panel (axes, grid, series, dashed reference lines, legend) and
//! the rendering of panels into one SVG: the drawing every picture shares.
use super::{PALETTE, tag_series};
use plotters::coord::Shift;
use plotters::prelude::*;

/// How a series is drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum Mark {
    /// One polyline through the points.
    Line,
    /// A dot per point.
    Points,
    /// A vertical bar per point, from its y to the matching entry here.
    Bars(Vec<f64>),
}

/// A named series in palette colour `colour`.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub colour: usize,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, axis labels (with symbols and units), log or linear
/// axes, its series and dashed grey reference lines, each labelled at its
/// last point. The legend (drawn when two or more series are named) sits
/// in the corner `legend` names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    /// The x axis counts (query or training points): whole-number ticks.
    pub x_integer: bool,
    pub legend: Corner,
    pub series: Vec<Series>,
    pub references: Vec<(String, Vec<(f64, f64)>)>,
}

/// Where a legend goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Corner {
    #[default]
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
    MiddleRight,
}

impl Corner {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Corner::UpperRight => SeriesLabelPosition::UpperRight,
            Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
            Corner::LowerRight => SeriesLabelPosition::LowerRight,
            Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
            Corner::MiddleRight => SeriesLabelPosition::MiddleRight,
        }
    }
}

/// A tick label on an axis of `span` (0 for a log axis): whole numbers
/// only where `integer`, and 0 for a value that is rounding of 0 (below
/// 1e-9 of the span).
fn label(v: f64, span: f64, integer: bool) -> String {
    if integer {
        return if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            String::new()
        };
    }
    if v.abs() < 1e-9 * span {
        return "0".into();
    }
    tick(v)
}

/// The grey of reference lines (not a series colour).
const REFERENCE: RGBColor = RGBColor(0x60, 0x60, 0x60);

/// A series colour by palette position (cycling).
pub fn colour(k: usize) -> RGBColor {
    let (r, g, b) = PALETTE[k % PALETTE.len()];
    RGBColor(r, g, b)
}

/// A tick label: plain decimals between 1e-3 and 1e4, else scientific.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&a) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    }
}

impl Panel {
    /// Every value drawn on an axis (x, or y with `y` set), the log axes'
    /// non-positive values left out.
    fn values(&self, y: bool) -> Vec<f64> {
        let log = if y { self.y_log } else { self.x_log };
        let mut v = Vec::new();
        let mut pick = |p: &(f64, f64)| v.push(if y { p.1 } else { p.0 });
        for s in &self.series {
            s.points.iter().for_each(&mut pick);
            if let (Mark::Bars(hi), true) = (&s.mark, y) {
                hi.iter().for_each(|&h| pick(&(0.0, h)));
            }
        }
        for (_, points) in &self.references {
            points.iter().for_each(&mut pick);
        }
        v.retain(|x| x.is_finite() && (!log || *x > 0.0));
        v
    }

    /// The axis range: the values' span, padded (5% linear; log: a factor
    /// 1.25 below and 3 above, room for the legend); a single value gets
    /// a span around it.
    fn range(&self, y: bool) -> std::ops::Range<f64> {
        let log = if y { self.y_log } else { self.x_log };
        let v = self.values(y);
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return if log { 0.1..10.0 } else { -1.0..1.0 };
        }
        if log {
            let (lo, hi) = if hi / lo < 1.01 {
                (lo / 10.0, hi * 10.0)
            } else {
                (lo, hi)
            };
            lo / 1.25..hi * 3.0
        } else {
            let span = hi - lo;
            let pad = if span > 1e-12 * hi.abs().max(lo.abs()) && span > 0.0 {
                0.05 * span
            } else if lo != 0.0 {
                0.5 * lo.abs()
            } else {
                1.0
            };
            lo - pad..hi + pad
        }
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws one panel in `area`, for any pair of coordinate specs.
macro_rules! draw_panel {
    ($area:expr, $panel:expr, $x:expr, $y:expr) => {{
        let panel: &Panel = $panel;
        let keep = |p: &(f64, f64)| {
            p.0.is_finite()
                && p.1.is_finite()
                && (!panel.x_log || p.0 > 0.0)
                && (!panel.y_log || p.1 > 0.0)
        };
        let span = |r: &std::ops::Range<f64>, log: bool| if log { 0.0 } else { r.end - r.start };
        let (x_span, y_span) = (
            span(&panel.range(false), panel.x_log),
            span(&panel.range(true), panel.y_log),
        );
        let x_label = |v: &f64| label(*v, x_span, panel.x_integer);
        let y_label = |v: &f64| label(*v, y_span, false);
        let mut chart = ChartBuilder::on($area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(78)
            .build_cartesian_2d($x, $y)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label.as_str())
            .y_desc(panel.y_label.as_str())
            .axis_desc_style(("sans-serif", 15))
            .x_labels(if panel.x_log { 8 } else { 10 })
            .y_labels(if panel.y_log { 8 } else { 10 })
            .label_style(("sans-serif", 12))
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .light_line_style(RGBColor(0xF0, 0xF0, 0xF0))
            .bold_line_style(RGBColor(0xD8, 0xD8, 0xD8))
            .draw()
            .map_err(|e| e.to_string())?;
        for (label, points) in &panel.references {
            let points: Vec<(f64, f64)> = points.iter().copied().filter(keep).collect();
            chart
                .draw_series(DashedLineSeries::new(
                    points.clone(),
                    6,
                    4,
                    REFERENCE.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            if let Some(&last) = points.last().filter(|_| !label.is_empty()) {
                chart
                    .draw_series(std::iter::once(Text::new(
                        label.clone(),
                        last,
                        ("sans-serif", 13).into_font().color(&REFERENCE),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        for s in &panel.series {
            let c = colour(s.colour);
            let points: Vec<(f64, f64)> = s.points.iter().copied().collect();
            let anno = match &s.mark {
                Mark::Line => {
                    let points: Vec<(f64, f64)> = points.into_iter().filter(keep).collect();
                    chart.draw_series(std::iter::once(PathElement::new(points, c.stroke_width(2))))
                }
                Mark::Points => chart.draw_series(
                    points
                        .into_iter()
                        .filter(keep)
                        .map(|p| Circle::new(p, 3, c.filled())),
                ),
                Mark::Bars(hi) => chart.draw_series(
                    points
                        .into_iter()
                        .zip(hi.iter().copied())
                        .filter(|(p, h)| keep(p) && keep(&(p.0, *h)))
                        .map(|(p, h)| PathElement::new(vec![p, (p.0, h)], c.stroke_width(3))),
                ),
            }
            .map_err(|e| e.to_string())?;
            if !s.name.is_empty() {
                anno.label(s.name.as_str()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled())
                });
            }
        }
        if panel.series.iter().filter(|s| !s.name.is_empty()).count() >= 2 {
            chart
                .configure_series_labels()
                .position(panel.legend.position())
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(0xB0, 0xB0, 0xB0))
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    }};
}

/// Draws `panel` into `area`.
pub fn draw(area: &Area<'_>, panel: &Panel) -> Result<(), String> {
    let (x, y) = (panel.range(false), panel.range(true));
    match (panel.x_log, panel.y_log) {
        (false, false) => draw_panel!(area, panel, x, y),
        (true, false) => draw_panel!(area, panel, x.log_scale(), y),
        (false, true) => draw_panel!(area, panel, x, y.log_scale()),
        (true, true) => draw_panel!(area, panel, x.log_scale(), y.log_scale()),
    }
}

/// An SVG of `size` pixels with a title over the panels, laid out in
/// `rows` x `cols`; the series tagged ([`tag_series`]).
pub fn render(
    size: (u32, u32),
    title: &str,
    panels: &[Panel],
    (rows, cols): (usize, usize),
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let body = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        for (area, panel) in body.split_evenly((rows, cols)).iter().zip(panels) {
            draw(area, panel)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(tag_series(&svg))
}
