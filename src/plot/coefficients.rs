//! coefficients.svg: the weighted-average reading of the theorem. For each
//! training point i (and output c: x = i C + c), a bar over the range of
//! −l'_i sampled along the path and a dot for each a_i(q_m), m = 1..M.
//! Where K^g keeps its sign, a_i(q) is a K^g-weighted average of −l'_i(t)
//! and every dot lies on its bar. Dots far outside (K^p(q, x_i) near 0)
//! are drawn at the view's edge as a series of their own.
use super::view::View;
use super::{Mark, Panel, Series, chart, drawn};
use crate::error::InputError;

/// How far beyond the bars' span the view reaches, in spans.
const VIEW_SPANS: f64 = 1.0;

/// The panel from a (M rows of N C, None undefined) and −l' ranges.
pub fn panel(a: &[Vec<Option<f64>>], lo: &[f64], hi: &[f64]) -> Panel {
    let bar_lo = lo.iter().copied().fold(f64::INFINITY, f64::min);
    let bar_hi = hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (bar_hi - bar_lo)
        .max(1e-12 * bar_hi.abs().max(bar_lo.abs()))
        .max(f64::MIN_POSITIVE);
    let (view_lo, view_hi) = (bar_lo - VIEW_SPANS * span, bar_hi + VIEW_SPANS * span);
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for row in a {
        for (x, v) in row.iter().enumerate() {
            match v {
                Some(v) if (view_lo..=view_hi).contains(v) => inside.push((x as f64, *v)),
                Some(v) => outside.push((x as f64, v.clamp(view_lo, view_hi))),
                None => {}
            }
        }
    }
    let mut series = vec![
        Series {
            name: "range of −l'_i along the path".into(),
            colour: 0,
            mark: Mark::Bars(hi.to_vec()),
            points: lo.iter().enumerate().map(|(x, &l)| (x as f64, l)).collect(),
        },
        Series {
            name: "a_i(q_m), one dot per query point".into(),
            colour: 1,
            mark: Mark::Points,
            points: inside,
        },
    ];
    if !outside.is_empty() {
        series.push(Series {
            name: format!(
                "{} a_i(q_m) beyond the view, drawn at its edge",
                outside.len()
            ),
            colour: 3,
            mark: Mark::Points,
            points: outside,
        });
    }
    Panel {
        title: "coefficients a_i(q) = A_i(q) / K^p(q, x_i) against −l'_i".into(),
        x_label: "training point i (i C + c for output c)".into(),
        y_label: "a_i(q_m) and −l'_i(t)".into(),
        x_integer: true,
        series,
        ..Panel::default()
    }
}

pub fn draw(view: &View) -> Result<String, InputError> {
    let a = view.coefficients()?;
    let (lo, hi) = view.lprime_range()?;
    let title = format!(
        "Coefficients as weighted averages of −l'_i (N = {}, M = {})",
        view.n, view.m
    );
    drawn(
        &view.path,
        "coefficients.svg",
        chart::render((1000, 600), &title, &[panel(&a, &lo, &hi)], (1, 1)),
    )
}
