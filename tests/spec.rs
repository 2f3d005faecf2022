//! Reading and validating specs: every kind of wrong spec is refused with a
//! message naming the field, what was found and what is allowed; a valid
//! spec round-trips with its defaults filled in.
use pathkernel::error::InputError;
use pathkernel::loss::Loss;
use pathkernel::spec::{DataSpec, Format, Method, ModelSpec, Spec};
use serde_json::{Value, json};

/// The example of SPEC §4, without `init` (its w0 depends on the data's D).
const SPEC_EXAMPLE: &str = r#"{
  "seed": 7,
  "data":  { "source": "synthetic", "function": "sine", "n_train": 16,
             "n_test": 8, "dim": 2, "noise": 0.0 },
  "model": { "arch": "mlp", "hidden": [16, 16], "activation": "tanh" },
  "loss":  { "kind": "squared" },
  "reduction": "sum",
  "flow":  { "t_end": 2.0, "method": "dopri5", "rtol": 1e-9, "atol": 1e-12 }
}"#;

fn example() -> Value {
    serde_json::from_str(SPEC_EXAMPLE).unwrap()
}

/// The example with `edit` applied, which must be refused.
fn refused(edit: impl FnOnce(&mut Value)) -> InputError {
    let mut value = example();
    edit(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap();
    match Spec::parse(&text, Format::Json) {
        Ok(spec) => panic!("accepted a wrong spec: {spec:?}\n{text}"),
        Err(e) => e,
    }
}

/// The error is at `location` and its message holds every fragment.
#[track_caller]
fn assert_error(error: &InputError, location: &str, fragments: &[&str]) {
    assert_eq!(error.location, location, "location of: {error}");
    for fragment in fragments {
        assert!(
            error.problem.contains(fragment),
            "`{fragment}` not in: {error}"
        );
    }
}

fn flow(fields: Value) -> impl FnOnce(&mut Value) {
    move |v| v["flow"] = fields
}

#[test]
fn spec_example_parses_with_its_values() {
    let spec = Spec::parse(SPEC_EXAMPLE, Format::Json).unwrap();
    assert_eq!(spec.seed, 7);
    assert!(matches!(
        spec.data,
        DataSpec::Synthetic {
            n_train: 16,
            n_test: 8,
            dim: 2,
            ..
        }
    ));
    assert!(
        matches!(&spec.model, ModelSpec::Mlp { hidden, bias: true, .. } if hidden == &[16, 16])
    );
    assert_eq!(spec.loss, Loss::Squared);
    assert_eq!(spec.flow.method, Method::Dopri5);
    assert_eq!((spec.flow.rtol, spec.flow.atol), (Some(1e-9), Some(1e-12)));
}

#[test]
fn toml_spec_reads_as_the_same_spec() {
    let toml = r#"
        seed = 7
        reduction = "sum"
        [data]
        source = "synthetic"
        function = "sine"
        n_train = 16
        n_test = 8
        dim = 2
        noise = 0
        [model]
        arch = "mlp"
        hidden = [16, 16]
        activation = "tanh"
        [loss]
        kind = "squared"
        [flow]
        t_end = 2
        method = "dopri5"
        rtol = 1e-9
        atol = 1e-12
    "#;
    let from_toml = Spec::parse(toml, Format::Toml).unwrap();
    assert_eq!(from_toml, Spec::parse(SPEC_EXAMPLE, Format::Json).unwrap());
}

/// Specs covering every arch, data source, loss kind and method.
fn valid_specs() -> Vec<Value> {
    let mut specs = Vec::new();
    let models = [
        json!({"arch": "linear"}),
        json!({"arch": "mlp", "hidden": [], "bias": false, "parameterization": "ntk"}),
        json!({"arch": "resmlp", "width": 3, "blocks": 0, "activation": "gelu", "init_scale": 0.5}),
        json!({"arch": "diag_linear", "init_scale": 0.1}),
    ];
    for model in models {
        let mut v = example();
        v["model"] = model;
        specs.push(v);
    }
    let sources = [
        json!({"source": "synthetic", "function": "moons", "n_train": 4, "n_test": 2, "dim": 3}),
        json!({"source": "inline", "train_x": [[0.5], [1.0]], "train_y": [1.0, -1.0], "test_x": [[0.0]]}),
        json!({"source": "csv", "train": "a/train.csv", "test": "test.csv"}),
    ];
    for data in sources {
        let mut v = example();
        v["data"] = data;
        specs.push(v);
    }
    let losses = [
        json!({"kind": "logistic"}),
        json!({"kind": "bce"}),
        json!({"kind": "exponential"}),
        json!({"kind": "huber"}),
        json!({"kind": "huber", "delta": 0.5}),
        json!({"kind": "log_cosh"}),
        json!({"kind": "cauchy", "c": 2.0}),
        json!({"kind": "absolute"}),
        json!({"kind": "hinge"}),
        json!({"kind": "squared_hinge"}),
    ];
    for loss in losses {
        let mut v = example();
        v["loss"] = loss;
        specs.push(v);
    }
    let flows = [
        json!({"t_end": 1.0, "method": "gd", "lr": 0.1, "exact_path_kernel": true}),
        json!({"t_end": 0.3, "method": "heun", "step": 0.1}),
        json!({"t_end": 1.0, "method": "rk4", "step": 0.25, "max_steps": 3}),
        json!({"t_end": 1.0, "method": "dopri5"}),
        json!({"t_end": 1.0, "method": "dop853", "rtol": 1e-6}),
        json!({"t_end": 1.0, "method": "dop853", "step": 0.5}),
        json!({"t_end": 1.0, "method": "verner98", "atol": 1e-12}),
        json!({"t_end": 1.0, "method": "verner98", "step": 0.25}),
    ];
    for f in flows {
        let mut v = example();
        v["flow"] = f;
        v["reduction"] = json!("mean");
        v["init"] = json!({"w0": [0.5, -1.0]});
        specs.push(v);
    }
    specs
}

#[test]
fn valid_specs_round_trip_with_defaults_filled() {
    for value in valid_specs() {
        let text = value.to_string();
        let spec = Spec::parse(&text, Format::Json).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // Serialised, the spec holds every default and reads back equal.
        let written = serde_json::to_value(&spec).unwrap();
        assert!(written["seed"].is_u64() && written["reduction"].is_string());
        assert!(
            written["flow"]["max_steps"].is_u64()
                && written["flow"]["exact_path_kernel"].is_boolean()
        );
        assert_eq!(
            Spec::parse(&written.to_string(), Format::Json).unwrap(),
            spec,
            "{text}"
        );
        let as_toml = toml::to_string(&spec).unwrap();
        assert_eq!(
            Spec::parse(&as_toml, Format::Toml).unwrap(),
            spec,
            "{as_toml}"
        );
        // The careful reader and the plain serde derive agree (same fields,
        // same defaults), so the twins in spec::read have not drifted.
        let derived: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(derived.with_defaults(), spec, "{text}");
    }
}

#[test]
fn adaptive_tolerances_default_per_spec() {
    let spec = Spec::parse(
        &example_with_flow(json!({"t_end": 1.0, "method": "dop853"})),
        Format::Json,
    )
    .unwrap();
    assert_eq!((spec.flow.rtol, spec.flow.atol), (Some(1e-8), Some(1e-10)));
    let written = serde_json::to_value(&spec).unwrap();
    assert_eq!(written["flow"]["rtol"], json!(1e-8));
    assert_eq!(written["flow"]["atol"], json!(1e-10));
    // A fixed-step run gets no tolerances.
    let fixed = Spec::parse(
        &example_with_flow(json!({"t_end": 1.0, "method": "rk4", "step": 0.5})),
        Format::Json,
    )
    .unwrap();
    assert_eq!((fixed.flow.rtol, fixed.flow.atol), (None, None));
    assert_eq!(fixed.flow.fixed_steps(), Some(2));
    assert!(!fixed.flow.is_adaptive() && spec.flow.is_adaptive());
}

/// Every method maps to the tableau of its name (gd: explicit Euler) and,
/// for an embedded pair without a step, to adaptive control with the spec's
/// tolerances; with a step, to K fixed steps.
#[test]
fn every_method_maps_to_its_tableau_and_control() {
    use pathkernel::experiment::integration;
    use pathkernel::stepper::Control;
    let methods = [
        ("gd", "euler", false),
        ("heun", "heun", false),
        ("rk4", "rk4", false),
        ("dopri5", "dopri5", true),
        ("dop853", "dop853", true),
        ("verner98", "verner98", true),
    ];
    for (method, tableau, embedded) in methods {
        let step_field = if method == "gd" { "lr" } else { "step" };
        let fixed = json!({"t_end": 1.0, "method": method, step_field: 0.25});
        let spec = Spec::parse(&example_with_flow(fixed), Format::Json).unwrap();
        let (tab, control) = integration(&spec.flow);
        assert_eq!(tab.name, tableau);
        assert_eq!(
            control,
            Control::Fixed {
                step: 0.25,
                steps: 4
            }
        );
        if embedded {
            let adaptive = json!({"t_end": 1.0, "method": method, "rtol": 1e-7, "max_steps": 9});
            let spec = Spec::parse(&example_with_flow(adaptive), Format::Json).unwrap();
            assert!(spec.flow.is_adaptive());
            let (tab, control) = integration(&spec.flow);
            assert_eq!(tab.name, tableau);
            assert_eq!(
                control,
                Control::Adaptive {
                    rtol: 1e-7,
                    atol: 1e-10,
                    max_steps: 9
                }
            );
        }
    }
}

fn example_with_flow(f: Value) -> String {
    let mut v = example();
    v["flow"] = f;
    v.to_string()
}

#[test]
fn json_syntax_error_gives_line_and_column() {
    let text = "{\n  \"seed\": 7,\n  \"data\": }\n";
    let error = Spec::parse(text, Format::Json).unwrap_err();
    assert_error(
        &error,
        "line 3, column 11",
        &["invalid JSON", "expected value"],
    );
}

#[test]
fn toml_syntax_error_gives_line_and_column() {
    let text = "seed = 7\n[data]\nsource = synthetic\n";
    let error = Spec::parse(text, Format::Toml).unwrap_err();
    assert_error(&error, "line 3, column 10", &["invalid TOML"]);
}

#[test]
fn a_key_given_twice_is_refused_where_it_repeats() {
    let error = Spec::parse("{\"seed\": 1,\n \"seed\": 2}", Format::Json).unwrap_err();
    assert_error(&error, "line 2, column 7", &["`seed` is given twice"]);
    let error = Spec::parse("seed = 1\nseed = 2\n", Format::Toml).unwrap_err();
    assert_error(&error, "line 2, column 1", &["duplicate key"]);
}

#[test]
fn toml_infinity_and_nan_are_refused() {
    for (text, found) in [
        ("seed = 1\nx = inf\n", "found inf"),
        ("seed = 1\nx = nan\n", "found NaN"),
    ] {
        let error = Spec::parse(text, Format::Toml).unwrap_err();
        assert_error(&error, "line 2, column 5", &[found, "finite"]);
    }
}

fn rename(object: &mut Value, from: &str, to: &str) {
    let object = object.as_object_mut().unwrap();
    let value = object.remove(from).unwrap();
    object.insert(to.to_owned(), value);
}

fn remove(object: &mut Value, key: &str) {
    object.as_object_mut().unwrap().remove(key).unwrap();
}

#[test]
fn unknown_field_suggests_the_nearest_name_and_lists_the_allowed() {
    let error = refused(|v| rename(&mut v["model"], "hidden", "hiden"));
    assert_error(
        &error,
        "model.hiden",
        &[
            "unknown field `hiden`",
            "arch `mlp`",
            "Did you mean `hidden`?",
            "`arch`, `hidden`, `activation`, `bias`",
        ],
    );
    let error = refused(flow(
        json!({"t_end": 1.0, "method": "dopri5", "rtoll": 1e-6}),
    ));
    assert_error(
        &error,
        "flow.rtoll",
        &["Did you mean `rtol`?", "`max_steps`"],
    );
    let error = refused(|v| rename(v, "reduction", "reductoin"));
    assert_error(
        &error,
        "reductoin",
        &["Did you mean `reduction`?", "`seed`, `data`, `model`"],
    );
    // No suggestion when nothing is close.
    let error = refused(|v| v["data"]["colour"] = json!(1));
    assert_error(
        &error,
        "data.colour",
        &["source `synthetic`", "Allowed: `source`, `function`"],
    );
    assert!(!error.problem.contains("Did you mean"), "{error}");
    // A kind without parameters takes no other field.
    let error = refused(|v| v["loss"]["delta"] = json!(1.0));
    assert_error(
        &error,
        "loss.delta",
        &["unknown field `delta`", "kind `squared`", "Allowed: `kind`"],
    );
}

#[test]
fn unknown_enum_values_list_the_allowed() {
    let cases: [(&str, &str, &str, &str); 6] = [
        (
            "model",
            "activation",
            "tanhh",
            "`identity`, `tanh`, `sigmoid`",
        ),
        (
            "flow",
            "method",
            "dopri",
            "`gd`, `heun`, `rk4`, `dopri5`, `dop853`, `verner98`",
        ),
        ("loss", "kind", "sqaured", "`squared`, `logistic`, `bce`"),
        (
            "model",
            "arch",
            "MLP",
            "`linear`, `mlp`, `resmlp`, `diag_linear`",
        ),
        ("data", "source", "synthetc", "`synthetic`, `inline`, `csv`"),
        (
            "data",
            "function",
            "sin",
            "`sine`, `linear`, `xor`, `moons`",
        ),
    ];
    for (object, field, value, allowed) in cases {
        let error = refused(|v| v[object][field] = json!(value));
        assert_error(
            &error,
            &format!("{object}.{field}"),
            &[&format!("unknown value `{value}`"), allowed],
        );
    }
    let error = refused(|v| v["model"]["arch"] = json!("mlpp"));
    assert!(error.problem.contains("Did you mean `mlp`?"), "{error}");
}

#[test]
fn missing_fields_are_named() {
    let error = refused(|v| remove(&mut v["model"], "hidden"));
    assert_error(
        &error,
        "model.hidden",
        &["missing required field `hidden`", "arch `mlp`"],
    );
    let error = refused(|v| remove(&mut v["model"], "arch"));
    assert_error(
        &error,
        "model.arch",
        &["missing required field `arch`", "`linear`, `mlp`"],
    );
    let error = refused(|v| remove(v, "flow"));
    assert_error(&error, "flow", &["missing required field `flow`"]);
    let error = refused(flow(json!({"method": "rk4", "step": 0.1})));
    assert_error(&error, "flow.t_end", &["missing required field `t_end`"]);
}

#[test]
fn wrong_types_say_what_was_found_and_expected() {
    let error = refused(|v| v["model"]["hidden"] = json!([16, "x"]));
    assert_error(
        &error,
        "model.hidden[1]",
        &["found \"x\"", "expected a whole number >= 0"],
    );
    let error = refused(|v| v["model"]["hidden"] = json!([16, -1]));
    assert_error(
        &error,
        "model.hidden[1]",
        &["found -1", "whole number >= 0"],
    );
    let error = refused(|v| v["data"]["n_train"] = json!(2.5));
    assert_error(&error, "data.n_train", &["found 2.5", "whole number"]);
    let error = refused(|v| v["flow"]["t_end"] = json!("2"));
    assert_error(&error, "flow.t_end", &["found \"2\"", "expected a number"]);
    let error = refused(|v| v["model"]["bias"] = json!(1));
    assert_error(&error, "model.bias", &["found 1", "true or false"]);
    let error = refused(|v| v["model"]["activation"] = json!(3));
    assert_error(
        &error,
        "model.activation",
        &["found 3", "one of `identity`"],
    );
    let error = refused(|v| v["model"] = json!("mlp"));
    assert_error(&error, "model", &["found \"mlp\"", "an object with `arch`"]);
    let error = refused(|v| v["model"]["arch"] = json!(2));
    assert_error(&error, "model.arch", &["found 2", "one of `linear`"]);
    let error = refused(|v| v["init"] = json!({"w0": [1.0, null]}));
    assert_error(&error, "init.w0[1]", &["found null", "a number"]);
    let error = Spec::parse("[1, 2]", Format::Json).unwrap_err();
    assert_error(&error, "spec", &["found an array", "an object"]);
}

#[test]
fn out_of_range_numbers_are_refused() {
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str, &str, &str)> = vec![
        (
            |v| v["flow"]["t_end"] = json!(0.0),
            "flow.t_end",
            "found 0.0",
            "> 0",
        ),
        (
            |v| v["flow"]["t_end"] = json!(-1.0),
            "flow.t_end",
            "found -1.0",
            "> 0",
        ),
        (
            |v| v["flow"]["rtol"] = json!(0.0),
            "flow.rtol",
            "found 0.0",
            "between 0.0 and 1.0",
        ),
        (
            |v| v["flow"]["rtol"] = json!(1.0),
            "flow.rtol",
            "found 1.0",
            "between 0.0 and 1.0",
        ),
        (
            |v| v["flow"]["atol"] = json!(0.0),
            "flow.atol",
            "found 0.0",
            "> 0",
        ),
        (
            |v| v["flow"]["max_steps"] = json!(0),
            "flow.max_steps",
            "found 0",
            ">= 1",
        ),
        (
            |v| v["flow"] = json!({"t_end": 1.0, "method": "rk4", "step": 0.0}),
            "flow.step",
            "found 0.0",
            "> 0",
        ),
        (
            |v| v["flow"] = json!({"t_end": 1.0, "method": "gd", "lr": -0.1}),
            "flow.lr",
            "found -0.1",
            "> 0",
        ),
        (
            |v| v["model"]["hidden"] = json!([16, 0]),
            "model.hidden[1]",
            "found 0",
            ">= 1",
        ),
        (
            |v| v["model"]["init_scale"] = json!(-1.0),
            "model.init_scale",
            "found -1.0",
            ">= 0",
        ),
        (
            |v| v["model"] = json!({"arch": "resmlp", "width": 0, "blocks": 1}),
            "model.width",
            "found 0",
            ">= 1",
        ),
        (
            |v| v["loss"] = json!({"kind": "huber", "delta": 0.0}),
            "loss.delta",
            "found 0.0",
            "> 0",
        ),
        (
            |v| v["loss"] = json!({"kind": "cauchy", "c": -1.0}),
            "loss.c",
            "found -1.0",
            "> 0",
        ),
        (
            |v| v["data"]["n_train"] = json!(0),
            "data.n_train",
            "found 0",
            ">= 1",
        ),
        (
            |v| v["data"]["n_test"] = json!(0),
            "data.n_test",
            "found 0",
            ">= 1",
        ),
        (
            |v| v["data"]["dim"] = json!(0),
            "data.dim",
            "found 0",
            ">= 1",
        ),
        (
            |v| v["data"]["noise"] = json!(-0.1),
            "data.noise",
            "found -0.1",
            ">= 0",
        ),
        (|v| v["data"]["function"] = json!("xor"), "", "", ""), // valid: a control
    ];
    for (edit, location, found, allowed) in cases {
        let mut value = example();
        edit(&mut value);
        match Spec::parse(&value.to_string(), Format::Json) {
            Ok(_) => assert!(location.is_empty(), "accepted {value}"),
            Err(error) => assert_error(&error, location, &[found, allowed]),
        }
    }
    // Classification: noise is a flip probability, and the labels need two inputs.
    let error = refused(|v| {
        v["data"]["function"] = json!("moons");
        v["data"]["noise"] = json!(0.6);
    });
    assert_error(&error, "data.noise", &["found 0.6", "[0, 0.5]"]);
    let error = refused(|v| {
        v["data"]["function"] = json!("xor");
        v["data"]["dim"] = json!(1);
    });
    assert_error(&error, "data.dim", &["found 1", "xor", "dim >= 2"]);
}

#[test]
fn non_finite_numbers_are_refused_by_validate() {
    // JSON cannot hold them, but a Spec built in code can.
    let spec = Spec::parse(SPEC_EXAMPLE, Format::Json).unwrap();
    let mut bad = spec.clone();
    bad.flow.t_end = f64::NAN;
    assert_error(&bad.validate().unwrap_err(), "flow.t_end", &["found NaN"]);
    let mut bad = spec.clone();
    bad.init = Some(pathkernel::spec::InitSpec {
        w0: vec![0.0, f64::INFINITY],
    });
    assert_error(
        &bad.validate().unwrap_err(),
        "init.w0[1]",
        &["found inf", "finite"],
    );
    let mut bad = spec;
    bad.flow.atol = Some(f64::INFINITY);
    assert_error(
        &bad.validate().unwrap_err(),
        "flow.atol",
        &["found inf", "finite number > 0"],
    );
}

#[test]
fn flow_fields_must_suit_the_method() {
    let cases = [
        (
            json!({"t_end": 1.0, "method": "gd", "step": 0.1}),
            "flow.step",
            "takes `lr`",
        ),
        (
            json!({"t_end": 1.0, "method": "gd"}),
            "flow.lr",
            "needs `lr`",
        ),
        (
            json!({"t_end": 1.0, "method": "heun", "lr": 0.1}),
            "flow.lr",
            "`lr` is for method `gd`",
        ),
        (
            json!({"t_end": 1.0, "method": "rk4"}),
            "flow.step",
            "needs `step`",
        ),
        (
            json!({"t_end": 1.0, "method": "heun", "step": 0.5, "rtol": 1e-6}),
            "flow.rtol",
            "fixed-step",
        ),
        (
            json!({"t_end": 1.0, "method": "gd", "lr": 0.5, "atol": 1e-6}),
            "flow.atol",
            "fixed-step",
        ),
        (
            json!({"t_end": 1.0, "method": "dopri5", "step": 0.5, "rtol": 1e-6}),
            "flow.rtol",
            "not both",
        ),
        (
            json!({"t_end": 1.0, "method": "rk4", "step": 0.5, "exact_path_kernel": true}),
            "flow.exact_path_kernel",
            "method `gd`",
        ),
        (
            json!({"t_end": 1.0, "method": "dop853", "exact_path_kernel": true}),
            "flow.exact_path_kernel",
            "method `gd`",
        ),
        (
            json!({"t_end": 1.0, "method": "verner98", "lr": 0.5}),
            "flow.lr",
            "`lr` is for method `gd`",
        ),
        (
            json!({"t_end": 1.0, "method": "verner98", "step": 0.5, "atol": 1e-6}),
            "flow.atol",
            "not both",
        ),
    ];
    for (fields, location, why) in cases {
        let method = fields["method"].as_str().unwrap().to_owned();
        let error = refused(flow(fields));
        assert_error(&error, location, &[&format!("method `{method}`"), why]);
    }
}

#[test]
fn a_fixed_step_must_divide_t_end() {
    let error = refused(flow(json!({"t_end": 1.0, "method": "rk4", "step": 0.3})));
    assert_error(
        &error,
        "flow.step",
        &[
            "found 0.3",
            "1.0 / 0.3 = 3.3333333333333",
            "not a whole number",
            "(K = 3)",
        ],
    );
    let error = refused(flow(json!({"t_end": 1.0, "method": "gd", "lr": 1.5})));
    assert_error(&error, "flow.lr", &["= 0.6666666666666666", "(K = 1)"]);
    // T / h off a whole number by rounding alone (0.3 / 0.1 = 2.9999999999999996) is accepted.
    let mut v = example();
    v["flow"] = json!({"t_end": 0.3, "method": "heun", "step": 0.1});
    let spec = Spec::parse(&v.to_string(), Format::Json).unwrap();
    assert_eq!(spec.flow.fixed_steps(), Some(3));
    // But not an error of 1e-7 relative.
    let error = refused(flow(
        json!({"t_end": 1.0, "method": "heun", "step": 0.1000001}),
    ));
    assert_error(&error, "flow.step", &["not a whole number"]);
}

#[test]
fn n_params_follows_the_spec_layouts() {
    let model = |v: Value| -> ModelSpec {
        let mut spec = example();
        spec["model"] = v;
        Spec::parse(&spec.to_string(), Format::Json).unwrap().model
    };
    // linear: v (D) and c.
    assert_eq!(model(json!({"arch": "linear"})).n_params(5), 6);
    // mlp 3 -> 4 -> 2 -> 1: W1 12 + b1 4, W2 8 + b2 2, W3 2 + b3 1.
    assert_eq!(
        model(json!({"arch": "mlp", "hidden": [4, 2]})).n_params(3),
        29
    );
    assert_eq!(
        model(json!({"arch": "mlp", "hidden": [4, 2], "bias": false})).n_params(3),
        22
    );
    assert_eq!(model(json!({"arch": "mlp", "hidden": []})).n_params(3), 4);
    // resmlp D 2, width 3, 2 blocks: W_in 6 + b_in 3, 2 x (9 + 3 + 9 + 3), w_out 3 + b_out 1.
    assert_eq!(
        model(json!({"arch": "resmlp", "width": 3, "blocks": 2})).n_params(2),
        61
    );
    assert_eq!(
        model(json!({"arch": "resmlp", "width": 3, "blocks": 0})).n_params(2),
        13
    );
    // diag_linear: u and v.
    assert_eq!(model(json!({"arch": "diag_linear"})).n_params(7), 14);
    // An absurd size saturates instead of overflowing (such a spec is
    // refused, so the model spec is read alone).
    let absurd: ModelSpec =
        serde_json::from_value(json!({"arch": "mlp", "hidden": [usize::MAX, 2]})).unwrap();
    assert_eq!(absurd.n_params(3), usize::MAX);
}

#[test]
fn sizes_past_the_memory_ceiling_are_refused_before_allocation() {
    let synthetic = |n_train: u64, n_test: u64, hidden: u64| {
        refused(|v| {
            v["data"]["n_train"] = json!(n_train);
            v["data"]["n_test"] = json!(n_test);
            v["model"]["hidden"] = json!([hidden]);
        })
    };
    // P saturates at usize::MAX: the model is named, and no flag can help.
    let error = synthetic(16, 8, u64::MAX);
    assert_error(
        &error,
        "model",
        &[
            "P = 18446744073709551615",
            "at most 1024 GiB",
            "reduce the sizes",
        ],
    );
    // 2 M N = 2^41 numbers with a small P: the data are named.
    let error = synthetic(1 << 20, 1 << 20, 4);
    assert_error(
        &error,
        "data",
        &["N = 1048576", "M = 1048576", "P + 2 M N", "GiB"],
    );
    // 2^30 points through a layer of 2^10: the tapes alone pass 1 TiB, and
    // they grow with the model's widths.
    let error = synthetic(1 << 30, 1, 1 << 10);
    assert!(error.problem.contains("estimated"), "{error}");
}

/// The estimate counts what SPEC §1's augmented state needs per stage, and
/// the limit is exact: a run of the estimated size passes, a hair less does
/// not, with a message naming the estimate and the flag that raises it.
#[test]
fn the_memory_estimate_grows_with_the_state_and_the_stages() {
    use pathkernel::spec::{DEFAULT_MAX_MEMORY_GIB, GIB};
    let spec = |method: &str| -> Spec {
        let mut v = example();
        v["flow"] = match method {
            "gd" => json!({"t_end": 1.0, "method": "gd", "lr": 0.5}),
            "rk4" | "heun" => json!({"t_end": 1.0, "method": method, "step": 0.5}),
            m => json!({"t_end": 1.0, "method": m}),
        };
        Spec::parse(&v.to_string(), Format::Json).unwrap()
    };
    // mlp [16, 16] on D = 2: P = 48 + 272 + 17 = 337.
    let (d, n, m) = (2, 1000, 500);
    let state = 337.0 + 2.0 * 1000.0 * 500.0;
    for (method, stages) in [
        ("gd", 1.0),
        ("rk4", 4.0),
        ("dopri5", 7.0),
        ("verner98", 16.0),
    ] {
        let e = spec(method).memory_estimate(d, n, m);
        assert_eq!(e.state, state);
        assert_eq!(e.copies, stages + 3.0, "{method}");
        // At least the integrator's copies of the state, and not more than
        // twice that plus the report's text (28 bytes for each of 6 M N numbers).
        let integrator = 8.0 * e.copies * state;
        assert!(e.bytes >= integrator, "{method}: {e:?}");
        assert!(
            e.bytes <= 2.0 * integrator + 28.0 * 6.0 * 500_000.0,
            "{method}: {e:?}"
        );
    }
    let dopri5 = spec("dopri5");
    let e = dopri5.memory_estimate(d, n, m);
    // More stages never cost less, and cost more once the state's copies
    // outweigh the report's text (about 5 numbers' worth per number
    // written: verner98's 19 copies of P do).
    let small = |method: &str| spec(method).memory_estimate(d, 4, 2).bytes;
    // (heun, not gd: gd also holds the second-order term's Taylor tape.)
    assert!(small("heun") <= small("rk4") && small("rk4") <= small("dopri5"));
    assert!(small("dopri5") < small("verner98"));
    assert!(e.bytes < dopri5.memory_estimate(d, 2 * n, m).bytes);
    let gib = e.bytes / GIB;
    dopri5.check_size(d, n, m, gib).unwrap();
    let error = dopri5.check_size(d, n, m, gib * 0.999).unwrap_err();
    assert_error(
        &error,
        "data",
        &[
            "N = 1000",
            "M = 500",
            "`dopri5`",
            "estimated",
            "--max-memory",
        ],
    );
    dopri5.check_size(d, n, m, DEFAULT_MAX_MEMORY_GIB).unwrap();
}

#[test]
fn from_path_reads_json_and_toml_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("spec.json");
    std::fs::write(&json_path, SPEC_EXAMPLE).unwrap();
    let expected = Spec::parse(SPEC_EXAMPLE, Format::Json).unwrap();
    assert_eq!(Spec::from_path(&json_path).unwrap(), expected);
    let toml_path = dir.path().join("spec.toml");
    std::fs::write(&toml_path, toml::to_string(&expected).unwrap()).unwrap();
    assert_eq!(Spec::from_path(&toml_path).unwrap(), expected);
    // A syntax error is placed at path:line:column.
    std::fs::write(&json_path, "{\n  \"seed\": ,\n}").unwrap();
    let error = Spec::from_path(&json_path).unwrap_err();
    assert_eq!(error.location, format!("{}:2:11", json_path.display()));
    // A missing file names the path and the OS error.
    let missing = dir.path().join("nope.json");
    let error = Spec::from_path(&missing).unwrap_err();
    assert_error(
        &error,
        &missing.display().to_string(),
        &["cannot read", "No such file"],
    );
}
