//! loss.svg: L along the run, from the report's `loss_trace` (log y when
//! every loss is positive).
use super::view::View;
use super::{Mark, Panel, Series, chart, drawn};
use crate::error::InputError;

/// The loss panel of a trace.
pub fn panel(t: &[f64], loss: &[f64], discrete: bool) -> Panel {
    let positive = loss.iter().all(|&l| l > 0.0);
    let what = if discrete { "L(w_k)" } else { "L(w(t))" };
    Panel {
        title: format!("loss along the run ({} points)", t.len()),
        x_label: if discrete {
            "t = Σ_{j<k} η_j (time of iterate k)".into()
        } else {
            "t (flow time)".into()
        },
        y_label: if positive {
            format!("{what} (log scale)")
        } else {
            what.into()
        },
        y_log: positive,
        series: vec![Series {
            name: what.into(),
            colour: 0,
            mark: Mark::Line,
            points: t.iter().copied().zip(loss.iter().copied()).collect(),
        }],
        ..Panel::default()
    }
}

pub fn draw(view: &View) -> Result<String, InputError> {
    let (t, loss) = view.loss_trace()?;
    let panel = panel(&t, &loss, view.is_discrete());
    let title = format!(
        "Training loss, {} to T = {}",
        view.method,
        chart::tick(view.t_end)
    );
    drawn(
        &view.path,
        "loss.svg",
        chart::render((900, 560), &title, &[panel], (1, 1)),
    )
}
