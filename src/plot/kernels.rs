//! kernels.svg: heatmaps of K^p / T, K^g(w0) and K^g(w_end) between the
//! query points (rows) and the training points (columns), on one colour
//! scale with a colour bar. K^p is divided by T, the path-averaged tangent
//! kernel, so that the three are on the same scale (for the lazy regime
//! K^p / T ≈ K^g(w0) ≈ K^g(w_end)). Diverging blue–white–red centred on 0
//! when the kernels take both signs, else a viridis-like ramp.
use super::chart::tick;
use super::drawn;
use super::view::View;
use crate::error::InputError;
use plotters::prelude::*;

/// Rows and columns shown at most (the first ones; the title says so).
pub const MAX_SIDE: usize = 96;
/// Cells of the colour bar.
pub const COLOUR_BAR_STEPS: usize = 64;

/// A shared colour scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub diverging: bool,
}

impl Scale {
    /// The scale of every value of the kernels.
    pub fn of(kernels: &[&[Vec<f64>]]) -> Scale {
        let values = || kernels.iter().flat_map(|k| k.iter().flatten().copied());
        let lo = values().fold(f64::INFINITY, f64::min);
        let hi = values().fold(f64::NEG_INFINITY, f64::max);
        if lo < 0.0 && hi > 0.0 {
            let a = lo.abs().max(hi);
            Scale {
                lo: -a,
                hi: a,
                diverging: true,
            }
        } else if hi > lo {
            Scale {
                lo,
                hi,
                diverging: false,
            }
        } else {
            Scale {
                lo: lo - 1.0,
                hi: hi + 1.0,
                diverging: false,
            }
        }
    }

    /// The colour of v.
    pub fn colour(&self, v: f64) -> RGBColor {
        const DIVERGING: [(u8, u8, u8); 3] =
            [(0x21, 0x66, 0xAC), (0xF7, 0xF7, 0xF7), (0xB2, 0x18, 0x2B)];
        const SEQUENTIAL: [(u8, u8, u8); 5] = [
            (0x44, 0x01, 0x54),
            (0x3B, 0x52, 0x8B),
            (0x21, 0x90, 0x8C),
            (0x5D, 0xC9, 0x63),
            (0xFD, 0xE7, 0x25),
        ];
        let stops: &[(u8, u8, u8)] = if self.diverging {
            &DIVERGING
        } else {
            &SEQUENTIAL
        };
        let s = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0) * (stops.len() - 1) as f64;
        let j = (s.floor() as usize).min(stops.len() - 2);
        let f = s - j as f64;
        let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
        let (a, b) = (stops[j], stops[j + 1]);
        RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}

/// A whole-number tick, or none.
fn whole(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// The first `rows` x `cols` of a kernel.
fn corner(k: &[Vec<f64>], rows: usize, cols: usize) -> Vec<Vec<f64>> {
    k.iter().take(rows).map(|r| r[..cols].to_vec()).collect()
}

/// Draws the three named kernels (each M C rows of N C) and a colour bar.
pub fn render(
    title: &str,
    kernels: &[(String, Vec<Vec<f64>>)],
    c: usize,
) -> Result<String, String> {
    let (rows, cols) = kernels
        .first()
        .map_or((0, 0), |(_, k)| (k.len(), k.first().map_or(0, Vec::len)));
    // Whole C x C blocks.
    let shown = |side: usize| side.min((MAX_SIDE / c).max(1) * c);
    let (r, q) = (shown(rows), shown(cols));
    let kernels: Vec<(String, Vec<Vec<f64>>)> = kernels
        .iter()
        .map(|(name, k)| (name.clone(), corner(k, r, q)))
        .collect();
    let scale = Scale::of(
        &kernels
            .iter()
            .map(|(_, k)| k.as_slice())
            .collect::<Vec<_>>(),
    );
    let title = if (r, q) == (rows, cols) {
        title.to_owned()
    } else {
        format!("{title} (the first {r} of {rows} rows, {q} of {cols} columns)")
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1500, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let body = root
            .titled(&title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        let (maps, bar) = body.split_horizontally(1360);
        for (area, (name, k)) in maps.split_evenly((1, kernels.len())).iter().zip(&kernels) {
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(44)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..q as f64, 0.0..r as f64)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc("training point (i C + c')")
                .y_desc("query point (m C + c), from the top")
                .axis_desc_style(("sans-serif", 14))
                .label_style(("sans-serif", 12))
                .x_label_formatter(&|v| whole(*v))
                .y_label_formatter(&|v| whole(r as f64 - v))
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(k.iter().enumerate().flat_map(|(i, row)| {
                    let top = (r - i) as f64;
                    row.iter().enumerate().map(move |(j, &v)| {
                        Rectangle::new(
                            [(j as f64, top), (j as f64 + 1.0, top - 1.0)],
                            scale.colour(v).filled(),
                        )
                    })
                }))
                .map_err(|e| e.to_string())?;
        }
        let mut chart = ChartBuilder::on(&bar)
            .caption("shared scale", ("sans-serif", 14))
            .margin(10)
            .margin_top(40)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..1.0, scale.lo..scale.hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .label_style(("sans-serif", 12))
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        let step = (scale.hi - scale.lo) / COLOUR_BAR_STEPS as f64;
        chart
            .draw_series((0..COLOUR_BAR_STEPS).map(|s| {
                let v0 = scale.lo + s as f64 * step;
                Rectangle::new(
                    [(0.0, v0), (1.0, v0 + step)],
                    scale.colour(v0 + step / 2.0).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

pub fn draw(view: &View) -> Result<String, InputError> {
    let mut path_kernel = view.kernel("path_kernel")?;
    path_kernel
        .iter_mut()
        .flatten()
        .for_each(|v| *v /= view.t_end);
    let kernels = vec![
        (format!("K^p / T (T = {})", tick(view.t_end)), path_kernel),
        ("K^g(w0)".to_owned(), view.kernel("tangent_kernel0")?),
        ("K^g(w_end)".to_owned(), view.kernel("tangent_kernel_end")?),
    ];
    let title = format!(
        "Kernels between the {} query points and the {} training points",
        view.m, view.n
    );
    drawn(&view.path, "kernels.svg", render(&title, &kernels, view.c))
}
