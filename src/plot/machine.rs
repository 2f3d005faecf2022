//! kernel_machine.svg: f(w_end; q) against the kernel machine ŷ(q) per
//! query point (on the diagonal where the identity holds), and the
//! residual r(q) = f(w_end; q) − ŷ(q) beside it; a series per output.
use super::chart::Corner;
use super::view::View;
use super::{Mark, Panel, Series, chart, drawn, output_name};
use crate::error::InputError;

/// The two panels from y_end, ŷ and r (example-major, C outputs).
pub fn panels(y_end: &[f64], machine: &[f64], residual: &[f64], c: usize) -> [Panel; 2] {
    let m = y_end.len() / c;
    let per_output = |k: usize, xs: &dyn Fn(usize) -> f64, ys: &[f64]| -> Vec<(f64, f64)> {
        (0..m).map(|q| (xs(q * c + k), ys[q * c + k])).collect()
    };
    let lo = y_end
        .iter()
        .chain(machine)
        .copied()
        .fold(f64::INFINITY, f64::min);
    let hi = y_end
        .iter()
        .chain(machine)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let left = Panel {
        title: "the network against its kernel machine (dashed: ŷ = f)".into(),
        x_label: "f(w_end; q), the trained network".into(),
        y_label: "ŷ(q) = f(w0; q) + Σ_i A_i(q)".into(),
        series: (0..c)
            .map(|k| Series {
                name: output_name("query points", c, k),
                colour: k,
                mark: Mark::Points,
                points: per_output(k, &|j| y_end[j], machine),
            })
            .collect(),
        references: vec![(String::new(), vec![(lo, lo), (hi, hi)])],
        legend: Corner::UpperLeft,
        ..Panel::default()
    };
    let right = Panel {
        title: "identity residual per query point".into(),
        x_label: "query point m".into(),
        y_label: "r(q_m) = f(w_end; q_m) − ŷ(q_m)".into(),
        x_integer: true,
        series: (0..c)
            .map(|k| Series {
                name: output_name("r", c, k),
                colour: k,
                mark: Mark::Points,
                points: per_output(k, &|j| (j / c) as f64, residual),
            })
            .collect(),
        ..Panel::default()
    };
    [left, right]
}

pub fn draw(view: &View) -> Result<String, InputError> {
    let y_end = view.per_query("y_end")?;
    let machine = view.per_query("kernel_machine")?;
    let residual = view.per_query("residual")?;
    let max = residual.iter().fold(0.0_f64, |a, r| a.max(r.abs()));
    let title = format!(
        "Kernel machine at the M = {} query points (max |r| = {max:.2e})",
        view.m
    );
    drawn(
        &view.path,
        "kernel_machine.svg",
        chart::render(
            (1300, 560),
            &title,
            &panels(&y_end, &machine, &residual, view.c),
            (1, 2),
        ),
    )
}
