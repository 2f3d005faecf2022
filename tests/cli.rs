//! The command line as a user meets it (SPEC §5, §6): the real binary run as
//! a process. A wrong input exits 2 and a failed run exits 1, each with one
//! line on standard error and no report file; a successful run writes a
//! report with every field, numbers in shortest round-trip form, the same
//! bytes on every run.
use crate::common::{assert_fails, entries};
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs the binary with `args`, feeding `stdin` (or nothing) to it.
fn pathkernel(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A summary without its wall-time line, the one line that differs
/// between two runs of a spec.
fn timeless(summary: &str) -> String {
    summary
        .lines()
        .filter(|l| !l.starts_with("  wall time "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Files by name and text; the first is the spec.
type Files = Vec<(&'static str, String)>;

/// Writes `files` into a new temporary directory.
fn dir_with(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// A small inline spec: a linear model (P = 2) on two points in D = 1.
fn base() -> Value {
    json!({
        "seed": 1,
        "data": {"source": "inline", "train_x": [[1.0], [2.0]], "train_y": [0.5, -1.0],
                 "test_x": [[-1.0], [0.5]]},
        "model": {"arch": "linear"},
        "loss": {"kind": "squared"},
        "flow": {"t_end": 1.0, "method": "rk4", "step": 0.25}
    })
}

fn edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut v = base();
    edit(&mut v);
    v.to_string()
}

#[test]
fn no_arguments_runs_the_example_and_prints_its_summary() {
    let out = pathkernel(&[], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    // src/example.json: mlp [16] on D = 2 (P = 2*16 + 16 + 16 + 1 = 65), N = 16, M = 6.
    for fragment in [
        "P = 65 parameters",
        "N = 16 training points",
        "M = 6 query points",
        " steps (",
        "right-hand-side evaluations",
        "loss ",
        "max |residual| ",
    ] {
        assert!(text.contains(fragment), "`{fragment}` not in:\n{text}");
    }
    // dop853 at rtol 1e-12: the identity holds to far below 1e-9.
    let residual: f64 = text
        .split("max |residual| ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no residual in:\n{text}"));
    assert!(residual < 1e-9, "{text}");

    // `example` prints that spec; `run -` reads it from standard input and
    // prints the same summary.
    let example = pathkernel(&["example"], None);
    assert_eq!(example.status.code(), Some(0));
    let spec = stdout(&example);
    Spec::parse(&spec, Format::Json).unwrap();
    let piped = pathkernel(&["run", "-"], Some(&spec));
    assert_eq!(
        piped.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(timeless(&stdout(&piped)), timeless(&text));
}

#[test]
fn wrong_input_exits_2_with_one_line_and_writes_nothing() {
    let spec = |text: String| vec![("spec.json", text)];
    let ragged = "0.1,0.5\n0.2\n".to_owned();
    let csv_spec = |train: &str| {
        edited(|v| v["data"] = json!({"source": "csv", "train": train, "test": "test.csv"}))
    };
    let cases: Vec<(&str, Files, &[&str])> = vec![
        (
            "JSON syntax",
            spec("{\n \"seed\": 7,\n \"data\": }".into()),
            &["spec.json:3:10", "invalid JSON"],
        ),
        (
            "TOML syntax",
            vec![("spec.toml", "seed = 7\n[data]\nsource = synthetic\n".into())],
            &["spec.toml:3:10", "invalid TOML"],
        ),
        (
            "unknown field",
            spec(edited(|v| v["model"]["hiden"] = json!([4]))),
            &["model.hiden", "unknown field"],
        ),
        (
            "wrong type",
            spec(edited(|v| v["seed"] = json!("7"))),
            &["seed: found \"7\"", "whole number"],
        ),
        (
            "out of range",
            spec(edited(|v| v["flow"]["t_end"] = json!(-1.0))),
            &["flow.t_end", "-1.0"],
        ),
        (
            "step not whole",
            spec(edited(|v| v["flow"]["step"] = json!(0.3))),
            &["flow.step", "whole number"],
        ),
        (
            "w0 length",
            spec(edited(|v| v["init"] = json!({"w0": [1.0]}))),
            &["init.w0", "P = 2"],
        ),
        (
            "labels vs loss",
            spec(edited(|v| v["loss"] = json!({"kind": "logistic"}))),
            &["data.train_y[0]", "0.5", "logistic"],
        ),
        (
            "ragged CSV",
            vec![
                ("spec.json", csv_spec("train.csv")),
                ("train.csv", ragged),
                ("test.csv", "0.3\n".into()),
            ],
            &["train.csv:2", "found 1"],
        ),
        (
            "missing data file",
            vec![
                ("spec.json", csv_spec("absent.csv")),
                ("test.csv", "0.3\n".into()),
            ],
            &["absent.csv", "cannot read"],
        ),
        (
            "absurd size",
            spec(edited(|v| {
                v["model"] = json!({"arch": "mlp", "hidden": [100_000_000_000u64]})
            })),
            &["model: ", "at most"],
        ),
    ];
    for (name, files, fragments) in cases {
        let dir = dir_with(&files);
        let before = entries(dir.path());
        let spec = dir.path().join(files[0].0);
        let report = dir.path().join("report.json");
        let out = pathkernel(
            &[
                "run",
                spec.to_str().unwrap(),
                "--out",
                report.to_str().unwrap(),
            ],
            None,
        );
        let line = assert_fails(&out, 2, fragments);
        assert_eq!(entries(dir.path()), before, "{name}: {line}");
    }

    // The spec file itself missing, and an unusable --out, refused before any work.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = pathkernel(&["run", missing.to_str().unwrap()], None);
    assert_fails(&out, 2, &["nope.json", "cannot read the spec"]);
    let good = dir.path().join("spec.json");
    std::fs::write(&good, base().to_string()).unwrap();
    let nowhere = dir.path().join("no_such_dir").join("report.json");
    let out = pathkernel(
        &[
            "run",
            good.to_str().unwrap(),
            "--out",
            nowhere.to_str().unwrap(),
        ],
        None,
    );
    assert_fails(&out, 2, &["--out", "directory does not exist"]);
    let out = pathkernel(
        &[
            "run",
            good.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_fails(&out, 2, &["--out", "is a directory"]);
    // From standard input, a syntax error is placed by line and column.
    let out = pathkernel(&["run", "-"], Some("{\"seed\": }"));
    assert_fails(&out, 2, &["line 1, column 10", "invalid JSON"]);
    assert_eq!(
        entries(dir.path()),
        BTreeSet::from(["spec.json".to_owned()])
    );
}

/// The time in a run failure's message (`... at t = 94000: ...`).
fn failure_time(line: &str) -> f64 {
    let rest = line
        .split("t = ")
        .nth(1)
        .unwrap_or_else(|| panic!("no t in: {line}"));
    let number: String = rest
        .chars()
        .take_while(|c| !matches!(c, ':' | ' ' | ','))
        .collect();
    number
        .parse()
        .unwrap_or_else(|_| panic!("t not a number in: {line}"))
}

#[test]
fn a_failed_run_exits_1_naming_t_and_the_loss_and_writes_nothing() {
    let cases = [
        // gd on squared loss, one point x = 1, target 0, w0 = (v, c) = (1, 0):
        // the error e = v + c obeys e <- (1 - 2 lr) e exactly (the Hessian is
        // [[1, 1], [1, 1]], eigenvalue 2), a factor -1999 per step at lr = 1000.
        // |e| = 1999^k passes f64's 1.8e308 after k = 94 steps, so with
        // K = T / lr = 200 steps the state certainly overflows, whatever the rounding.
        (
            "gd past stability",
            json!({"train_x": [[1.0]], "train_y": [0.0], "test_x": [[0.5]]}),
            json!([1.0, 0.0]),
            json!({"kind": "squared"}),
            json!({"t_end": 200000.0, "method": "gd", "lr": 1000.0}),
            200000.0,
            "diverged",
        ),
        (
            "max_steps",
            json!({"train_x": [[1.0]], "train_y": [0.0], "test_x": [[0.5]]}),
            json!([1.0, 0.0]),
            json!({"kind": "squared"}),
            json!({"t_end": 10.0, "method": "dopri5", "max_steps": 2}),
            10.0,
            "max_steps = 2",
        ),
        // Exponential loss on x = 1 labelled both +1 and -1: L = 2 cosh(f),
        // f = v + c. gd at lr 10 sends f = 1 to 1 - 40 sinh(1) = -46, then to
        // about 40 sinh(46) = 1.9e21, where exp(f) overflows.
        (
            "exponential overflow",
            json!({"train_x": [[1.0], [1.0]], "train_y": [1.0, -1.0], "test_x": [[0.5]]}),
            json!([1.0, 0.0]),
            json!({"kind": "exponential"}),
            json!({"t_end": 100.0, "method": "gd", "lr": 10.0}),
            100.0,
            "diverged",
        ),
        // exp(800) is past f64 at the start: the flow fails at t = 0.
        (
            "exponential overflow at t = 0",
            json!({"train_x": [[1.0]], "train_y": [1.0], "test_x": [[0.5]]}),
            json!([-800.0, 0.0]),
            json!({"kind": "exponential"}),
            json!({"t_end": 1.0, "method": "dopri5"}),
            0.0,
            "diverged",
        ),
    ];
    for (name, mut data, w0, loss, flow, t_max, what) in cases {
        data["source"] = json!("inline");
        let spec = json!({"data": data, "model": {"arch": "linear"}, "init": {"w0": w0},
                          "loss": loss, "flow": flow});
        let dir = dir_with(&[("spec.json", spec.to_string())]);
        let report = dir.path().join("report.json");
        let out = pathkernel(
            &[
                "run",
                dir.path().join("spec.json").to_str().unwrap(),
                "--out",
                report.to_str().unwrap(),
            ],
            None,
        );
        let line = assert_fails(&out, 1, &[what, "loss"]);
        let t = failure_time(&line);
        assert!((0.0..=t_max).contains(&t), "{name}: {line}");
        assert_eq!(
            entries(dir.path()),
            BTreeSet::from(["spec.json".to_owned()]),
            "{name}"
        );
    }
}

/// The fields SPEC §5 requires of every report.
const FIELDS: [&str; 25] = [
    "version",
    "spec",
    "n_params",
    "w0",
    "w_end",
    "train_x",
    "train_y",
    "test_x",
    "t_end",
    "steps",
    "rejected_steps",
    "rhs_evals",
    "loss0",
    "loss_end",
    "y0",
    "y_end",
    "path_kernel",
    "coef_integral",
    "a",
    "tangent_kernel0",
    "tangent_kernel_end",
    "kernel_machine",
    "residual",
    "max_abs_residual",
    "generator",
];
const EXACT_FIELDS: [&str; 3] = [
    "exact_coef_integral",
    "exact_kernel_machine",
    "exact_max_abs_residual",
];

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// An array of `rows` rows of `cols` entries (numbers, or null where allowed).
#[track_caller]
fn assert_matrix(v: &Value, rows: usize, cols: usize, nulls: bool) {
    let r = v.as_array().unwrap();
    assert_eq!(r.len(), rows);
    for row in r {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), cols);
        assert!(
            row.iter().all(|x| x.is_f64() || (nulls && x.is_null())),
            "{v}"
        );
    }
}

/// Every number token in JSON text (outside strings).
fn number_tokens(text: &str) -> Vec<&str> {
    let (mut tokens, mut in_string, mut escaped, mut start) = (Vec::new(), false, false, None);
    for (i, c) in text.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        let continues = c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E');
        match start {
            None if c.is_ascii_digit() || c == '-' => start = Some(i),
            Some(s) if !continues => {
                tokens.push(&text[s..i]);
                start = None;
            }
            _ => {}
        }
        in_string = c == '"';
    }
    tokens.extend(start.map(|s| &text[s..]));
    tokens
}

/// Runs `spec` with --out and returns the report's text and the summary.
fn run_report(dir: &Path, name: &str, spec: &Value) -> (String, String) {
    let spec_path = dir.join(format!("{name}.json"));
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let report = dir.join(format!("{name}.report.json"));
    let out = pathkernel(
        &[
            "run",
            spec_path.to_str().unwrap(),
            "--out",
            report.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (std::fs::read_to_string(&report).unwrap(), stdout(&out))
}

fn report_specs() -> Vec<(&'static str, Value)> {
    let synthetic = |flow: Value| {
        json!({"seed": 5, "data": {"source": "synthetic", "function": "sine", "n_train": 5, "n_test": 3, "dim": 2},
               "model": {"arch": "mlp", "hidden": [4]}, "loss": {"kind": "squared"}, "reduction": "mean",
               "flow": flow})
    };
    let gd = |exact: bool| {
        let mut v = base();
        v["flow"] = json!({"t_end": 1.0, "method": "gd", "lr": 0.05, "exact_path_kernel": exact});
        v["init"] = json!({"w0": [0.3, -0.2]});
        v
    };
    vec![
        ("gd_exact", gd(true)),
        ("gd", gd(false)),
        (
            "heun",
            edited(|v| v["flow"] = json!({"t_end": 1.0, "method": "heun", "step": 0.125}))
                .parse()
                .unwrap(),
        ),
        (
            "rk4",
            synthetic(json!({"t_end": 1.0, "method": "rk4", "step": 0.25})),
        ),
        (
            "dopri5",
            synthetic(json!({"t_end": 1.0, "method": "dopri5"})),
        ),
        (
            "verner98",
            synthetic(json!({"t_end": 1.0, "method": "verner98", "rtol": 1e-10})),
        ),
    ]
}

#[test]
fn a_report_has_every_field_in_shape_and_round_trip_numbers() {
    let dir = tempfile::tempdir().unwrap();
    for (name, spec) in report_specs() {
        let (text, _) = run_report(dir.path(), name, &spec);
        let r: Value = serde_json::from_str(&text).unwrap();
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        for field in FIELDS {
            assert!(keys.contains(field), "{name}: no `{field}`");
        }
        let exact = spec["flow"]["exact_path_kernel"] == json!(true);
        for field in EXACT_FIELDS {
            assert_eq!(keys.contains(field), exact, "{name}: `{field}`");
        }

        // The spec as run, defaults filled, reads back equal to the spec given.
        let given = Spec::parse(&spec.to_string(), Format::Json).unwrap();
        assert_eq!(
            Spec::parse(&r["spec"].to_string(), Format::Json).unwrap(),
            given,
            "{name}"
        );
        assert!(r["spec"]["flow"]["max_steps"].is_u64() && r["spec"]["reduction"].is_string());
        assert_eq!(
            r["spec"]["flow"]["rtol"].is_f64(),
            given.flow.is_adaptive(),
            "{name}"
        );

        assert_eq!(r["version"], json!(1));
        let p = r["n_params"].as_u64().unwrap() as usize;
        assert_eq!(
            (numbers(&r["w0"]).len(), numbers(&r["w_end"]).len()),
            (p, p)
        );
        let (n, m) = (
            numbers(&r["train_y"]).len(),
            r["test_x"].as_array().unwrap().len(),
        );
        let d = r["train_x"][0].as_array().unwrap().len();
        assert_matrix(&r["train_x"], n, d, false);
        assert_matrix(&r["test_x"], m, d, false);
        if let Some(w0) = spec.get("init") {
            assert_eq!(r["w0"], w0["w0"]);
        }
        assert_eq!(r["t_end"].as_f64(), Some(given.flow.t_end));
        for field in ["y0", "y_end", "kernel_machine", "residual"] {
            assert_eq!(numbers(&r[field]).len(), m, "{name}: {field}");
        }
        for field in [
            "path_kernel",
            "coef_integral",
            "tangent_kernel0",
            "tangent_kernel_end",
        ] {
            assert_matrix(&r[field], m, n, false);
        }
        assert_matrix(&r["a"], m, n, true);
        // a is null exactly where the path kernel is 0.
        for (a_row, k_row) in r["a"]
            .as_array()
            .unwrap()
            .iter()
            .zip(r["path_kernel"].as_array().unwrap())
        {
            for (a, k) in a_row
                .as_array()
                .unwrap()
                .iter()
                .zip(k_row.as_array().unwrap())
            {
                assert_eq!(
                    a.is_null(),
                    k.as_f64() == Some(0.0),
                    "{name}: a {a}, K^p {k}"
                );
            }
        }
        let residual = numbers(&r["residual"]);
        let max = residual.iter().fold(0.0_f64, |a, x| a.max(x.abs()));
        assert_eq!(r["max_abs_residual"].as_f64(), Some(max), "{name}");

        let (steps, rejected, evals) = (
            r["steps"].as_u64().unwrap(),
            r["rejected_steps"].as_u64().unwrap(),
            r["rhs_evals"].as_u64().unwrap(),
        );
        if let Some(k) = given.flow.fixed_steps() {
            assert_eq!((steps, rejected), (k as u64, 0), "{name}");
            if name.starts_with("gd") {
                assert_eq!(evals, k as u64, "{name}");
            }
        } else {
            assert!(steps >= 1 && evals > steps, "{name}");
        }

        // Every number is written in the shortest form that reads back to
        // its f64: std's correctly rounded parse then ryu gives the token back.
        let tokens = number_tokens(&text);
        assert!(tokens.len() > 3 * m * n, "{name}");
        for token in tokens {
            let x: f64 = token
                .parse()
                .unwrap_or_else(|_| panic!("{name}: `{token}`"));
            assert!(x.is_finite());
            if token.contains(['.', 'e', 'E']) {
                assert_eq!(serde_json::to_string(&x).unwrap(), token, "{name}");
            } else {
                assert_eq!(
                    token.parse::<u64>().map(|u| u.to_string()).as_deref(),
                    Ok(token),
                    "{name}"
                );
            }
        }
    }
}

/// The numbers of a top-level field of a pretty-printed report, read with
/// std's correctly rounded parse (serde_json's default float parsing is
/// best-effort, so it cannot judge a round trip).
fn field_numbers(text: &str, field: &str) -> Vec<f64> {
    let key = format!("\n  \"{field}\": ");
    let start = text.find(&key).unwrap_or_else(|| panic!("no `{field}`")) + key.len();
    let end = text[start..]
        .find("\n  \"")
        .map_or(text.len(), |e| start + e);
    number_tokens(&text[start..end])
        .iter()
        .map(|t| t.parse().unwrap())
        .collect()
}

/// Bitwise equality, so that -0.0 and 0.0 differ too.
#[track_caller]
fn assert_same_bits(read: &[f64], held: &[f64], what: &str) {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(read), bits(held), "{what}");
}

/// The binary writes what the library computes, and every number reads
/// back to the f64 the run held: the file against the same experiment run
/// in this process.
#[test]
fn report_numbers_read_back_to_the_f64s_of_the_run() {
    use pathkernel::data::Dataset;
    use pathkernel::experiment::Experiment;
    use pathkernel::report::Report;
    let dir = tempfile::tempdir().unwrap();
    for (name, spec) in report_specs() {
        let (text, _) = run_report(dir.path(), name, &spec);
        let parsed = Spec::parse(&spec.to_string(), Format::Json).unwrap();
        let data = Dataset::resolve(&parsed, dir.path()).unwrap();
        let exp = Experiment::new(parsed, data);
        let out = exp.run(&mut |_| {}).unwrap();
        assert_eq!(Report::new(&exp, &out).to_json() + "\n", text, "{name}");
        let flat = |m: &nalgebra::DMatrix<f64>| m.transpose().iter().copied().collect::<Vec<_>>();
        let km = out.kernel_machine();
        let held: [(&str, Vec<f64>); 14] = [
            ("w0", exp.w0.clone()),
            ("w_end", out.w_end.clone()),
            ("loss0", vec![out.loss0]),
            ("loss_end", vec![out.loss_end]),
            ("y0", out.y0.clone()),
            ("y_end", out.y_end.clone()),
            ("path_kernel", flat(&out.path_kernel)),
            ("coef_integral", flat(&out.coef_integral)),
            (
                "a",
                out.coefficients()
                    .transpose()
                    .iter()
                    .flatten()
                    .copied()
                    .collect(),
            ),
            ("tangent_kernel0", flat(&out.tangent_kernel0)),
            ("tangent_kernel_end", flat(&out.tangent_kernel_end)),
            ("kernel_machine", km),
            ("residual", out.residual()),
            ("max_abs_residual", vec![out.max_abs_residual()]),
        ];
        for (field, values) in held {
            assert_same_bits(
                &field_numbers(&text, field),
                &values,
                &format!("{name}: {field}"),
            );
        }
        if let Some(exact) = &out.exact_coef_integral {
            assert_same_bits(
                &field_numbers(&text, "exact_coef_integral"),
                &flat(exact),
                name,
            );
        }
    }
}

/// Linear model, K^g(q, x) = q x + 1: K^p(q = -1, x = 1) is exactly 0, so a
/// there is null (the other pairs give -1, 1.5, 2).
#[test]
fn a_is_null_where_the_path_kernel_vanishes() {
    let dir = tempfile::tempdir().unwrap();
    let (name, spec) = report_specs().remove(0);
    let (text, _) = run_report(dir.path(), name, &spec);
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["path_kernel"][0][0], json!(0.0));
    assert!(r["a"][0][0].is_null());
    assert_eq!(
        r["a"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .filter(|a| a.is_null())
            .count(),
        1
    );
    // The exact path kernel makes the gd identity hold to rounding (SPEC §1).
    assert!(
        r["exact_max_abs_residual"].as_f64().unwrap() < 1e-13,
        "{}",
        r["exact_max_abs_residual"]
    );
}

#[test]
fn the_same_spec_gives_byte_identical_reports() {
    let dir = tempfile::tempdir().unwrap();
    for (name, spec) in report_specs()
        .into_iter()
        .filter(|(n, _)| ["gd_exact", "dopri5"].contains(n))
    {
        let first = run_report(dir.path(), name, &spec);
        let second = run_report(dir.path(), name, &spec);
        assert!(first.0 == second.0, "{name}: two reports differ");
        assert_eq!(timeless(&first.1), timeless(&second.1), "{name}");
    }
    // No temporary file is left beside the reports.
    assert!(
        entries(dir.path()).iter().all(|e| e.ends_with(".json")),
        "{:?}",
        entries(dir.path())
    );
}

/// One residual column of a `converge` row and its order (None at the first).
type Residual = (f64, Option<f64>);

/// The table rows of `converge`: (step, steps, then each residual column
/// and its order or None).
fn converge_rows(text: &str) -> Vec<(f64, u64, Vec<Residual>)> {
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.contains("step") && header.contains("order"),
        "{header}"
    );
    lines
        .filter(|l| !l.starts_with("note:"))
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            assert!(c.len() >= 5 && c.len() % 2 == 1, "{l}");
            let residuals = c[3..]
                .chunks(2)
                .map(|p| (p[0].parse().unwrap(), p[1].parse().ok()))
                .collect();
            (c[0].parse().unwrap(), c[1].parse().unwrap(), residuals)
        })
        .collect()
}

/// `pathkernel converge SPEC --halvings 3` on `spec` (written to `dir` as
/// NAME.json), which must succeed; its table's rows.
fn converge_three_halvings(dir: &Path, name: &str, spec: &Value) -> Vec<(f64, u64, Vec<Residual>)> {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = pathkernel(
        &["converge", path.to_str().unwrap(), "--halvings", "3"],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    converge_rows(&stdout(&out))
}

#[test]
fn converge_halves_the_step_and_shows_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut gd_mlp = report_specs()[3].1.clone();
    gd_mlp["flow"] = json!({"t_end": 1.0, "method": "gd", "lr": 0.25});
    let specs = [
        // rk4 is order 4, gd order 1 (SPEC §1); on these smooth small flows
        // the observed orders at h = 1/4..1/32 sit within 0.5 of it (the next
        // error term is one power of h smaller). gd's second column is
        // r − r2, of order 2 (C27).
        ("rk4", report_specs()[3].1.clone(), vec![4.0]),
        // (Not the linear model: f is linear in w there, so each gd step
        // satisfies the identity exactly and the residual is rounding alone.)
        ("gd", gd_mlp, vec![1.0, 2.0]),
    ];
    for (name, spec, orders) in specs {
        let rows = converge_three_halvings(dir.path(), name, &spec);
        assert_eq!(rows.len(), 4, "{name}");
        assert!(rows[0].2.iter().all(|(_, order)| order.is_none()), "{name}");
        for pair in rows.windows(2) {
            let ((h0, k0, before), (h1, k1, after)) = (&pair[0], &pair[1]);
            assert_eq!((*h1, *k1), (h0 / 2.0, 2 * k0), "{name}");
            assert_eq!(after.len(), orders.len(), "{name}");
            for ((&(r0, _), &(r1, observed)), order) in before.iter().zip(after).zip(&orders) {
                let observed = observed.unwrap();
                // The column is log2 of the residuals' ratio, to its 3 decimals.
                assert!((observed - (r0 / r1).log2()).abs() < 1e-3, "{name}");
                assert!((observed - order).abs() < 0.5, "{name}: order {observed}");
            }
        }
    }
    // An adaptive spec has no step to halve.
    let path = dir.path().join("adaptive.json");
    std::fs::write(&path, report_specs()[4].1.to_string()).unwrap();
    let out = pathkernel(&["converge", path.to_str().unwrap()], None);
    assert_fails(&out, 2, &["flow.step", "fixed-step"]);
}

/// `converge` on plain minibatch sgd (SPEC §9): lr halves, the steps double
/// with each batch used for two half steps, and the Domingos-form residual
/// falls at order 1, r − r2 at order 2 (C27, C34), while the exact
/// decomposition stays at rounding level (C33) at every level.
#[test]
fn converge_refines_sgd_with_its_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = report_specs()[3].1.clone();
    spec["flow"] = json!({"method": "sgd", "lr": 0.1, "steps": 8, "batch_size": 2});
    let rows = converge_three_halvings(dir.path(), "sgd", &spec);
    assert_eq!(rows.len(), 4);
    for pair in rows.windows(2) {
        let ((h0, k0, _), (h1, k1, after)) = (&pair[0], &pair[1]);
        assert_eq!((*h1, *k1), (h0 / 2.0, 2 * k0));
        assert_eq!(after.len(), 3, "r, r - r2 and r_exact");
        for (column, order) in [(0, 1.0), (1, 2.0)] {
            let observed = after[column].1.unwrap();
            assert!(
                (observed - order).abs() < 0.5,
                "column {column}: order {observed}"
            );
        }
    }
    for (_, _, residuals) in &rows {
        assert!(residuals[2].0 < 1e-13, "exact residual {}", residuals[2].0);
    }
}

/// `converge` on optimizers with memory says, under the table, when the
/// finest run spans each batch with at most 10 times the memory 1 / (1 −
/// beta) steps (proofs.md C57): Adam's default beta2 = 0.999 at 64 steps
/// of 8 batches does, momentum 0.5 on full batches (32 steps of one batch
/// against 10 · 2) does not, nor does plain sgd (no memory).
#[test]
fn converge_notes_a_finest_run_inside_the_optimizers_memory() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |flow: Value| {
        let mut spec = report_specs()[3].1.clone();
        spec["flow"] = flow;
        std::fs::write(dir.path().join("s.json"), spec.to_string()).unwrap();
        let path = dir.path().join("s.json");
        let out = pathkernel(
            &["converge", path.to_str().unwrap(), "--halvings", "3"],
            None,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    let adam =
        spec(json!({"method": "adam", "lr": 0.02, "steps": 8, "batch_size": 2, "shuffle": "none"}));
    let note = adam.lines().last().unwrap();
    assert!(
        note.starts_with("note: the finest run spans each batch with 8 steps")
            && note.contains("1 / (1 - beta) = 1000"),
        "{adam}"
    );
    assert_eq!(converge_rows(&adam).len(), 4);
    for flow in [
        json!({"method": "sgd", "lr": 0.05, "steps": 4, "momentum": 0.5}),
        json!({"method": "sgd", "lr": 0.1, "steps": 8, "batch_size": 2}),
    ] {
        let table = spec(flow);
        assert!(!table.contains("note:"), "{table}");
    }
}
