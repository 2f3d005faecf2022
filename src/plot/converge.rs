//! The picture of `converge --plot FILE`: each residual the table prints
//! against the step h on log-log axes, with dashed reference slopes
//! through the coarsest level's residual: the method's order p, and for a
//! discrete method (gd, sgd, adam) 1 for the Domingos form and 2 for the
//! second-order form.
use super::{Mark, Panel, Series, chart};
use crate::converge::Level;

/// The panel of a study's levels (coarsest first).
pub fn panel(levels: &[Level], method: &str, order: u32, discrete: bool) -> Panel {
    let step = |l: &Level| l.step;
    let column = |name: &str, colour: usize, pick: &dyn Fn(&Level) -> Option<f64>| {
        let points: Vec<(f64, f64)> = levels
            .iter()
            .filter_map(|l| pick(l).map(|r| (step(l), r)))
            .filter(|p| p.1 > 0.0)
            .collect();
        (!points.is_empty()).then(|| Series {
            name: name.to_owned(),
            colour,
            mark: Mark::Line,
            points,
        })
    };
    let series: Vec<Series> = [
        column("max |r|", 0, &|l| Some(l.residual)),
        column("max |r − r2|", 1, &|l| l.second_order_residual),
        column("max |r_exact|", 2, &|l| l.exact_residual),
    ]
    .into_iter()
    .flatten()
    .collect();
    let slopes: Vec<(u32, usize)> = if discrete {
        vec![(1, 0), (2, 1)]
    } else {
        vec![(order, 0)]
    };
    let references = slopes
        .into_iter()
        .filter_map(|(p, k)| {
            let s = series.iter().find(|s| s.colour == k)?;
            let (&(h0, r0), &(h1, _)) = (s.points.first()?, s.points.last()?);
            let at = |h: f64| (h, r0 * (h / h0).powi(p as i32));
            Some((format!("slope {p}"), vec![at(h0), at(h1)]))
        })
        .collect();
    Panel {
        title: format!("{method}: residual against step (order {order})"),
        x_label: "step h (lr for gd, sgd, adam; log scale)".into(),
        y_label: "largest |residual| over the query points (log scale)".into(),
        x_log: true,
        y_log: true,
        legend: super::chart::Corner::MiddleRight,
        x_integer: false,
        series,
        references,
    }
}

/// The SVG of a study.
pub fn render(
    levels: &[Level],
    method: &str,
    order: u32,
    discrete: bool,
) -> Result<String, String> {
    let title = format!(
        "Convergence of the identity residual, {} levels",
        levels.len()
    );
    chart::render(
        (900, 600),
        &title,
        &[panel(levels, method, order, discrete)],
        (1, 1),
    )
}
