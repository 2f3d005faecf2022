//! The pictures (proofs.md §13): `loss_trace`'s thinning rule, and every
//! SVG of `plot`, `converge --plot` and `search` parsed as XML, with its
//! series (elements tagged `class="series" data-series="k"`) and their
//! points counted against the report they were drawn from. A report that
//! lacks what a picture needs exits 2 naming the field, and writes nothing.
use crate::common::assert_fails;
use pathkernel::trace::{LossTrace, MAX_POINTS};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// The rule written out (proofs.md §13): the smallest power of two s whose
/// multiples below n number at most MAX_POINTS − 1, and the last sample.
fn rule(n: usize) -> Vec<usize> {
    let mut s = 1;
    while (n - 1) / s + 1 > MAX_POINTS - 1 {
        s *= 2;
    }
    let mut kept: Vec<usize> = (0..n).step_by(s).collect();
    if !(n - 1).is_multiple_of(s) {
        kept.push(n - 1);
    }
    kept
}

/// The trace of n samples at t = j, L = −j (so an entry names its sample).
fn traced(n: usize) -> LossTrace {
    let mut trace = LossTrace::new();
    for j in 0..n {
        trace.push(j as f64, -(j as f64));
    }
    trace.finish()
}

#[test]
fn the_trace_keeps_the_rule_s_samples_at_the_edges_of_each_doubling() {
    for n in [
        1, 2, 3, 2046, 2047, 2048, 2049, 4093, 4094, 4095, 4096, 4097, 8189, 8190, 8191,
    ] {
        let trace = traced(n);
        let kept: Vec<usize> = trace.t.iter().map(|&t| t as usize).collect();
        assert_eq!(kept, rule(n), "n = {n}");
        assert!(trace.t.iter().zip(&trace.loss).all(|(t, l)| *l == -t));
    }
}

proptest! {
    #![proptest_config(crate::cases(64))]
    /// Any run length: the rule's samples, at most MAX_POINTS of them and
    /// at least half of that once thinned, first and last kept, the stride
    /// a power of two; a time not past the latest is not a sample.
    #[test]
    fn the_trace_follows_the_thinning_rule(n in 1usize..40_000, repeat in 0usize..3) {
        let mut trace = LossTrace::new();
        for j in 0..n {
            trace.push(j as f64, 0.5);
            for _ in 0..repeat {
                trace.push(j as f64, 7.0); // not past the latest: ignored
            }
        }
        let stride = trace.stride();
        let trace = trace.finish();
        let kept: Vec<usize> = trace.t.iter().map(|&t| t as usize).collect();
        prop_assert_eq!(&kept, &rule(n));
        prop_assert!(kept.len() <= MAX_POINTS);
        prop_assert!(n <= MAX_POINTS || kept.len() >= MAX_POINTS / 2);
        prop_assert_eq!(kept[0], 0);
        prop_assert_eq!(*kept.last().unwrap(), n - 1);
        prop_assert!(stride.is_power_of_two());
        prop_assert!(trace.loss.iter().all(|&l| l == 0.5));
    }
}

fn pathkernel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .output()
        .expect("the binary starts")
}

fn run(args: &[&str]) -> String {
    let out = pathkernel(args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Per series k: (elements, points) (a polyline's points, a circle's one).
fn series(svg: &str) -> BTreeMap<usize, (usize, usize)> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    let mut found = BTreeMap::new();
    for node in doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("series"))
    {
        let k: usize = node.attribute("data-series").unwrap().parse().unwrap();
        let points = match node.tag_name().name() {
            "polyline" => node.attribute("points").unwrap().split_whitespace().count(),
            "circle" => 1,
            other => panic!("a series element <{other}>"),
        };
        let e = found.entry(k).or_insert((0, 0));
        e.0 += 1;
        e.1 += points;
    }
    found
}

/// Filled rectangles other than the white background (the heatmaps' cells
/// and the colour bar's).
fn coloured_rects(svg: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter(|n| !matches!(n.attribute("fill"), Some("#FFFFFF" | "none") | None))
        .count()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn report(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap()
}

/// A spec of the example's kind: tanh mlp on the sine task.
fn spec(outputs: usize, flow: Value) -> Value {
    let mut model = json!({"arch": "mlp", "hidden": [8], "activation": "tanh"});
    let mut data =
        json!({"source": "synthetic", "function": "sine", "n_train": 10, "n_test": 4, "dim": 2});
    if outputs > 1 {
        model["outputs"] = json!(outputs);
        let x: Vec<Vec<f64>> = (0..10)
            .map(|k| vec![(0.7 * k as f64).sin(), (1.3 * k as f64).cos()])
            .collect();
        let y: Vec<Vec<f64>> = (0..10)
            .map(|k| (0..outputs).map(|c| ((k + c) as f64).sin()).collect())
            .collect();
        let q: Vec<Vec<f64>> = (10..14)
            .map(|k| vec![(0.7 * k as f64).sin(), (1.3 * k as f64).cos()])
            .collect();
        data = json!({"source": "inline", "train_x": x, "train_y": y, "test_x": q});
    }
    json!({"seed": 3, "data": data, "model": model, "loss": {"kind": "squared"},
           "reduction": "mean", "flow": flow})
}

/// Runs `spec` into DIR/r.json and plots it into DIR/pics.
fn plotted(dir: &Path, spec: &Value) -> Value {
    let path = dir.join("s.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let r = dir.join("r.json");
    run(&["run", path.to_str().unwrap(), "--out", r.to_str().unwrap()]);
    let printed = run(&[
        "plot",
        r.to_str().unwrap(),
        "--out",
        dir.join("pics").to_str().unwrap(),
    ]);
    assert!(printed.contains("loss.svg"), "{printed}");
    report(&r)
}

#[test]
fn plot_draws_each_series_with_every_point_of_the_report() {
    for (outputs, flow) in [
        (1, json!({"t_end": 2.0, "method": "dopri5", "rtol": 1e-10})),
        (3, json!({"t_end": 2.0, "method": "dopri5", "rtol": 1e-10})),
        (
            1,
            json!({"t_end": 2.0, "method": "gd", "lr": 0.05, "exact_path_kernel": true}),
        ),
        (
            2,
            json!({"method": "adam", "lr": 0.01, "steps": 40, "batch_size": 4}),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = plotted(dir.path(), &spec(outputs, flow.clone()));
        let pics = dir.path().join("pics");
        let (m, n, c) = (4, 10, outputs);
        let discrete = flow["method"] != "dopri5";
        let mut names: Vec<String> = std::fs::read_dir(&pics)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected = vec![
            "coefficients.svg",
            "kernel_machine.svg",
            "kernels.svg",
            "loss.svg",
        ];
        if discrete {
            expected.push("residuals.svg");
        }
        assert_eq!(names, expected, "{flow}");

        // The loss: one polyline through every point of loss_trace.
        let trace = r["loss_trace"]["t"].as_array().unwrap().len();
        assert_eq!(
            series(&read(&pics.join("loss.svg"))),
            BTreeMap::from([(0, (1, trace))])
        );

        // A dot per query point and output, in each of the two panels.
        let machine = series(&read(&pics.join("kernel_machine.svg")));
        let want: BTreeMap<usize, (usize, usize)> = (0..c).map(|k| (k, (2 * m, 2 * m))).collect();
        assert_eq!(machine, want, "{flow}");

        // Three maps of M C x N C cells and the colour bar.
        let cells = coloured_rects(&read(&pics.join("kernels.svg")));
        assert_eq!(
            cells,
            3 * m * c * n * c + pathkernel::plot::kernels::COLOUR_BAR_STEPS
        );

        // A bar per training point and output, a dot per defined a_i(q_m).
        let coefficients = series(&read(&pics.join("coefficients.svg")));
        assert_eq!(coefficients[&0], (n * c, 2 * n * c));
        let defined = r["a"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .map(|a| match a {
                Value::Null => 0,
                Value::Array(v) => v.len(),
                _ => 1,
            })
            .sum::<usize>();
        let dots =
            coefficients.get(&1).map_or(0, |s| s.1) + coefficients.get(&3).map_or(0, |s| s.1);
        assert_eq!(dots, defined);

        if discrete {
            // |r|, |r − r2| and |r_exact| at each query point and output,
            // less the exact zeros the log scale cannot show.
            let residuals = series(&read(&pics.join("residuals.svg")));
            assert_eq!(residuals.len(), 3, "{flow}");
            for (k, field) in ["residual", "second_order_residual", "exact_residual"]
                .iter()
                .enumerate()
            {
                let nonzero = r[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|v| match v {
                        Value::Array(row) => row.clone(),
                        v => vec![v.clone()],
                    })
                    .filter(|v| v.as_f64().unwrap() != 0.0)
                    .count();
                assert_eq!(residuals.get(&k).map_or(0, |s| s.1), nonzero, "{field}");
            }
        }
    }
}

/// loss_trace: L(w0) at 0, L(w_end) at T, t increasing; for gd every
/// iterate's (t_k, L(w_k)) while K + 1 <= 2048, then thinned to the rule.
#[test]
fn the_report_s_loss_trace_starts_at_loss0_and_ends_at_loss_end() {
    for (steps, lr) in [(40, 0.05), (5000, 0.0004)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            spec(1, json!({"t_end": 2.0, "method": "gd", "lr": lr})).to_string(),
        )
        .unwrap();
        let r = dir.path().join("r.json");
        run(&["run", path.to_str().unwrap(), "--out", r.to_str().unwrap()]);
        let r = report(&r);
        let t: Vec<f64> = serde_json::from_value(r["loss_trace"]["t"].clone()).unwrap();
        let loss: Vec<f64> = serde_json::from_value(r["loss_trace"]["loss"].clone()).unwrap();
        assert_eq!(r["steps"], steps);
        assert_eq!((t[0], loss[0]), (0.0, r["loss0"].as_f64().unwrap()));
        assert_eq!(*t.last().unwrap(), r["t_end"].as_f64().unwrap());
        assert_eq!(*loss.last().unwrap(), r["loss_end"].as_f64().unwrap());
        assert!(t.windows(2).all(|w| w[0] < w[1]));
        let kept = rule(steps + 1);
        assert_eq!(t.len(), kept.len());
        // t_k = k lr, as the fixed-step engine computes it.
        for (&k, &tk) in kept.iter().zip(&t) {
            if k < steps {
                assert_eq!(tk, k as f64 * lr, "k = {k}");
            }
        }
    }
}

#[test]
fn converge_plot_draws_each_residual_column_with_a_point_per_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    std::fs::write(
        &path,
        spec(
            1,
            json!({"t_end": 1.0, "method": "gd", "lr": 0.1, "exact_path_kernel": true}),
        )
        .to_string(),
    )
    .unwrap();
    let svg = dir.path().join("c.svg");
    let table = run(&[
        "converge",
        path.to_str().unwrap(),
        "--halvings",
        "3",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(table.contains("max |r_exact|"), "{table}");
    let text = read(&svg);
    // max |r|, max |r − r2|, max |r_exact|: 4 levels each (no exact zero here).
    assert_eq!(
        series(&text),
        BTreeMap::from([(0, (1, 4)), (1, (1, 4)), (2, (1, 4))])
    );
    assert!(text.contains("slope 1") && text.contains("slope 2"));

    let rk4 = dir.path().join("rk4.json");
    std::fs::write(
        &rk4,
        spec(1, json!({"t_end": 1.0, "method": "rk4", "step": 0.25})).to_string(),
    )
    .unwrap();
    run(&[
        "converge",
        rk4.to_str().unwrap(),
        "--halvings",
        "2",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let text = read(&svg);
    assert_eq!(series(&text), BTreeMap::from([(0, (1, 3))]));
    assert!(text.contains("slope 4") && !text.contains("slope 1"));
}

/// A report without loss_trace (one from before it existed), with a
/// mangled kernel, or not a report: exit 2 naming the field; the output
/// directory is not even created.
#[test]
fn a_report_that_lacks_a_picture_s_field_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let r = plotted(
        dir.path(),
        &spec(1, json!({"t_end": 1.0, "method": "dopri5"})),
    );
    for (field, change) in [
        ("loss_trace", None),
        ("tangent_kernel0", Some(json!([[1.0, 2.0]]))),
        ("residual", Some(json!("none"))),
    ] {
        let mut broken = r.clone();
        match change {
            None => {
                broken.as_object_mut().unwrap().remove(field);
            }
            Some(v) => broken[field] = v,
        }
        let path = dir.path().join("broken.json");
        std::fs::write(&path, broken.to_string()).unwrap();
        let out_dir = dir.path().join(format!("out-{field}"));
        let out = pathkernel(&[
            "plot",
            path.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert_fails(&out, 2, &["broken.json: ", field]);
        assert!(!out_dir.exists(), "{field}");
    }
    let out = pathkernel(&[
        "plot",
        dir.path().join("s.json").to_str().unwrap(),
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_fails(&out, 2, &["s.json: t_end"]);
    let file = dir.path().join("r.json");
    let out = pathkernel(&[
        "plot",
        file.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_fails(&out, 2, &["--out", "is a file"]);
}

/// The report's [m][i][c][c'] blocks as M C rows of N C (row m C + c,
/// column i C + c'), written from SPEC §8.
fn kernel_rows(k: &Value, c: usize) -> Vec<Vec<f64>> {
    let rows = k.as_array().unwrap();
    let mut out = Vec::new();
    for row in rows {
        let blocks = row.as_array().unwrap();
        if c == 1 {
            out.push(blocks.iter().map(|v| v.as_f64().unwrap()).collect());
            continue;
        }
        for a in 0..c {
            out.push(
                blocks
                    .iter()
                    .flat_map(|b| (0..c).map(move |bb| b[a][bb].as_f64().unwrap()))
                    .collect(),
            );
        }
    }
    out
}

/// Each heatmap cell, in drawing order (K^p / T, K^g(w0), K^g(w_end), row
/// by row), has the colour of its kernel value on one shared scale.
#[test]
fn the_heatmaps_colour_each_cell_by_its_kernel_value_on_one_scale() {
    use pathkernel::plot::kernels::Scale;
    for outputs in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        // Two hidden layers: with one, each C x C block is symmetric
        // (K_cc'(q, x) = K_c'c(q, x)) and a transposed block would pass.
        let mut s = spec(
            outputs,
            json!({"t_end": 3.0, "method": "dopri5", "rtol": 1e-10}),
        );
        s["model"]["hidden"] = json!([6, 6]);
        let r = plotted(dir.path(), &s);
        let t_end = r["t_end"].as_f64().unwrap();
        let mut kp = kernel_rows(&r["path_kernel"], outputs);
        kp.iter_mut().flatten().for_each(|v| *v /= t_end);
        let kernels = [
            kp,
            kernel_rows(&r["tangent_kernel0"], outputs),
            kernel_rows(&r["tangent_kernel_end"], outputs),
        ];
        let scale = Scale::of(&[&kernels[0], &kernels[1], &kernels[2]]);
        let text = read(&dir.path().join("pics/kernels.svg"));
        let doc = roxmltree::Document::parse(&text).unwrap();
        let fills: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .filter_map(|n| n.attribute("fill"))
            .filter(|f| !matches!(*f, "#FFFFFF" | "none"))
            .collect();
        let expected: Vec<String> = kernels
            .iter()
            .flat_map(|k| k.iter().flatten())
            .map(|&v| {
                let c = scale.colour(v);
                format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
            })
            .collect();
        assert_eq!(fills[..expected.len()], expected[..], "C = {outputs}");
    }
}

/// The scale: diverging and symmetric about 0 (0 the light centre) when
/// the values take both signs, else sequential from the least to the
/// greatest; values beyond it take the end colours.
#[test]
fn the_colour_scale_is_centred_on_zero_when_the_kernels_change_sign() {
    use pathkernel::plot::kernels::Scale;
    let both = vec![vec![-1.0, 3.0]];
    let s = Scale::of(&[&both]);
    assert_eq!((s.lo, s.hi, s.diverging), (-3.0, 3.0, true));
    let hex = |v: f64| {
        let c = s.colour(v);
        (c.0, c.1, c.2)
    };
    assert_eq!(hex(0.0), (0xF7, 0xF7, 0xF7));
    assert_eq!(hex(-3.0), (0x21, 0x66, 0xAC));
    assert_eq!(hex(3.0), (0xB2, 0x18, 0x2B));
    assert_eq!(hex(-30.0), hex(-3.0));
    let positive = vec![vec![2.0, 5.0], vec![4.0, 3.0]];
    let s = Scale::of(&[&positive]);
    assert_eq!((s.lo, s.hi, s.diverging), (2.0, 5.0, false));
    let (lo, hi) = (s.colour(2.0), s.colour(5.0));
    assert_eq!((lo.0, lo.1, lo.2), (0x44, 0x01, 0x54));
    assert_eq!((hi.0, hi.1, hi.2), (0xFD, 0xE7, 0x25));
}
