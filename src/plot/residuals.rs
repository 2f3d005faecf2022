//! residuals.svg (gd, sgd, adam): per query point, |r| of the Domingos
//! (left-point) form, of the second-order form r − r2 and of the exact
//! decomposition, on a log scale. Exact zeros cannot be drawn on it and
//! are counted in the legend instead.
use super::view::View;
use super::{Mark, Panel, Series, chart, drawn};
use crate::error::InputError;

/// The panel of the residual forms the report has, named as in its fields.
pub fn panel(forms: &[(&str, Vec<f64>)]) -> Panel {
    let series = forms
        .iter()
        .enumerate()
        .map(|(k, (name, r))| {
            let zeros = r.iter().filter(|&&v| v == 0.0).count();
            let name = if zeros > 0 {
                format!("{name} ({zeros} exact zeros not drawn)")
            } else {
                (*name).to_owned()
            };
            Series {
                name,
                colour: k,
                mark: Mark::Points,
                points: r
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(j, v)| (j as f64, v.abs()))
                    .collect(),
            }
        })
        .collect();
    Panel {
        title: "residual of each decomposition per query point".into(),
        x_label: "query point (m C + c)".into(),
        y_label: "|residual| (log scale)".into(),
        y_log: true,
        legend: super::chart::Corner::MiddleRight,
        x_integer: true,
        series,
        ..Panel::default()
    }
}

pub fn draw(view: &View) -> Result<String, InputError> {
    let mut forms = vec![("Domingos form |r|", view.per_query("residual")?)];
    if let Some(r2) = view.optional_per_query("second_order_residual")? {
        forms.push(("second order |r − r2|", r2));
    }
    if let Some(e) = view.optional_per_query("exact_residual")? {
        forms.push(("exact |r_exact|", e));
    }
    let title = format!(
        "Residuals of {} at the M = {} query points",
        view.method, view.m
    );
    drawn(
        &view.path,
        "residuals.svg",
        chart::render((900, 560), &title, &[panel(&forms)], (1, 1)),
    )
}
