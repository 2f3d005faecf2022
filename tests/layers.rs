//! The `layers` architecture (SPEC §10): each layer kind's forward pass
//! against the plain loops of `model::reference` (written from SPEC §10),
//! reverse mode against forward mode and the factored kernel against
//! J_q J_xᵀ on random layered models, hand-computed convolutions, the init
//! variances, a dense-only stack against the mlp, the identity's order and
//! the gd exact path kernel on a smooth CNN, and bad specs.
use crate::study::{self, parse, run};
use nalgebra::DMatrix;
use pathkernel::data::Dataset;
use pathkernel::experiment::Experiment;
use pathkernel::kernel::KernelPlan;
use pathkernel::model::{self, Model, reference};
use pathkernel::rng::{RngStream, generator};
use pathkernel::spec::{Format, ModelSpec, Spec};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};
use std::path::Path;

fn model_spec(value: Value) -> ModelSpec {
    serde_json::from_value(value).expect("a model spec")
}

fn normal(rng: &mut ChaCha20Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// A random small layered model: a conv1d or conv2d (random channels,
/// kernel, stride and padding) on a random input shape, then some of
/// activation, layer_norm, avg_pool, a second convolution, flatten, a
/// hidden dense layer, and the dense output layer of C units.
pub fn random_layers(rng: &mut ChaCha20Rng, c: usize) -> (ModelSpec, usize) {
    let d = rng.random_range(1..=2usize);
    let channels = rng.random_range(1..=2usize);
    let mut spatial: Vec<usize> = (0..d).map(|_| rng.random_range(2..=6usize)).collect();
    let mut shape = vec![channels];
    shape.extend(&spatial);
    let dim: usize = shape.iter().product();
    let names = [
        "tanh",
        "sigmoid",
        "softplus",
        "gelu",
        "silu",
        "sin",
        "identity",
        "relu",
        "leaky_relu",
    ];
    let mut layers = Vec::new();
    let convs = rng.random_range(1..=2);
    for _ in 0..convs {
        let min = *spatial.iter().min().unwrap();
        let kernel = rng.random_range(1..=3usize.min(min + 2));
        let same = kernel % 2 == 1 && rng.random_bool(0.5);
        let pad = if same { (kernel - 1) / 2 } else { 0 };
        if min + 2 * pad < kernel {
            continue;
        }
        let stride = rng.random_range(1..=2usize);
        let out_ch = rng.random_range(1..=3usize);
        layers.push(
            json!({"kind": if d == 1 {"conv1d"} else {"conv2d"}, "channels": out_ch,
            "kernel": kernel, "stride": stride, "padding": if same {"same"} else {"valid"},
            "bias": rng.random_bool(0.8)}),
        );
        spatial = spatial
            .iter()
            .map(|&l| (l + 2 * pad - kernel) / stride + 1)
            .collect();
        if rng.random_bool(0.7) {
            let name = names[rng.random_range(0..names.len())];
            layers.push(json!({"kind": "activation", "name": name}));
        }
        if rng.random_bool(0.3) {
            layers.push(json!({"kind": "layer_norm", "affine": rng.random_bool(0.8)}));
        }
        let min = *spatial.iter().min().unwrap();
        if min >= 2 && rng.random_bool(0.4) {
            let size = rng.random_range(1..=2usize);
            layers.push(json!({"kind": "avg_pool", "size": size}));
            spatial = spatial.iter().map(|&l| l / size).collect();
        }
    }
    layers.push(json!({"kind": "flatten"}));
    if rng.random_bool(0.3) {
        layers.push(json!({"kind": "layer_norm"}));
    }
    if rng.random_bool(0.5) {
        layers.push(json!({"kind": "dense", "units": rng.random_range(1..=4), "bias": rng.random_bool(0.8)}));
        layers.push(json!({"kind": "activation", "name": names[rng.random_range(0..names.len())]}));
    }
    layers.push(json!({"kind": "dense", "units": c}));
    let spec =
        model_spec(json!({"arch": "layers", "input_shape": shape, "outputs": c, "layers": layers}));
    (spec, dim)
}

/// Weights of scale `w_scale` (layer-norm gammas near 1) and N(0, 1) inputs.
fn draw(
    m: &dyn Model,
    rows: usize,
    w_scale: f64,
    rng: &mut ChaCha20Rng,
) -> (Vec<f64>, DMatrix<f64>) {
    let w0 = m.init(rng);
    let w = w0.iter().map(|&v| v + w_scale * normal(rng)).collect();
    let x = DMatrix::from_fn(rows, m.input_dim(), |_, _| normal(rng));
    (w, x)
}

fn evaluate(m: &dyn Model, w: &[f64], x: &DMatrix<f64>) -> pathkernel::model::Tape {
    let mut tape = m.tape(x);
    m.forward(w, &mut tape);
    m.backward(w, &mut tape);
    tape
}

fn row(x: &DMatrix<f64>, r: usize) -> Vec<f64> {
    x.row(r).iter().copied().collect()
}

/// f, every ∇f_c(x_r) and the factored kernel of a layered model against
/// the dual-number reference; the tolerance is relative to the largest
/// gradient entry (every entry is a sum of a few hundred products at most).
fn check_against_reference(
    spec: &ModelSpec,
    dim: usize,
    rows: usize,
    nb: usize,
    rng: &mut ChaCha20Rng,
) {
    let m = model::build(spec, dim);
    let c = spec.outputs();
    let (w, x) = draw(m.as_ref(), rows, 0.5, rng);
    let (wb, xb) = draw(m.as_ref(), nb, 0.5, rng);
    let tape = evaluate(m.as_ref(), &w, &x);
    let tb = evaluate(m.as_ref(), &wb, &xb);
    let wd: Vec<num_dual::Dual64> = w.iter().map(|&v| v.into()).collect();
    let jac: Vec<Vec<f64>> = (0..rows)
        .flat_map(|r| reference::gradients(spec, &w, &row(&x, r)))
        .collect();
    let jb: Vec<Vec<f64>> = (0..nb)
        .flat_map(|r| reference::gradients(spec, &wb, &row(&xb, r)))
        .collect();
    let scale = jac
        .iter()
        .chain(&jb)
        .flatten()
        .fold(1.0f64, |a, g| a.max(g.abs()));
    // layer_norm divides by σ = sqrt(var + eps) of its input, which
    // amplifies the rounding of its input, relative to |x|, by up to
    // |x|/σ <= |x|/sqrt(eps): with eps = 1e-5 and inputs of order 1 that is
    // a factor of at most 1/sqrt(1e-5) ≈ 316 (a seed whose layer_norm saw
    // two nearly equal features differed by 2e-12 of the scale).
    let layer_norm = matches!(spec, ModelSpec::Layers { layers, .. }
        if layers.iter().any(|l| matches!(l, pathkernel::spec::LayerSpec::LayerNorm { .. })));
    let amplification = if layer_norm {
        1.0 / 1e-5f64.sqrt()
    } else {
        1.0
    };
    let tol = 1e-12 * scale * amplification;
    for r in 0..rows {
        let f = reference::outputs(spec, &wd, &row(&x, r));
        for (k, f) in f.iter().enumerate() {
            let got = tape.output[(r, k)];
            assert!(
                (got - f.re).abs() <= tol,
                "{spec:?}\nf_{k}(x_{r}): {got} vs {}",
                f.re
            );
        }
    }
    let plan = KernelPlan::new(m.as_ref());
    let mut scratch = plan.scratch(&tape, rows * nb, rows);
    for rk in 0..rows * c {
        let mut weights = vec![0.0; rows * c];
        weights[rk] = 1.0;
        let mut g = vec![0.0; m.n_params()];
        plan.weighted_gradient(&tape, 0..rows, &weights, 1.0, &mut scratch, &mut g);
        for (p, (&a, &b)) in g.iter().zip(&jac[rk]).enumerate() {
            assert!(
                (a - b).abs() <= tol,
                "{spec:?}\nrow {rk} param {p}: reverse {a} forward {b}"
            );
        }
    }
    let mut k = vec![0.0; rows * nb * c * c];
    plan.tangent_kernel(&tape, 0..rows, &tb, 0..nb, &mut scratch, None, &mut k);
    let kt = DMatrix::from_column_slice(rows * c, nb * c, &k);
    for i in 0..rows * c {
        for j in 0..nb * c {
            let want: f64 = jac[i].iter().zip(&jb[j]).map(|(a, b)| a * b).sum();
            let bound = 1e-12 * scale * scale * m.n_params() as f64;
            assert!(
                (kt[(i, j)] - want).abs() <= bound,
                "{spec:?}\nK[{i},{j}] = {} vs J Jᵀ {want}",
                kt[(i, j)]
            );
        }
    }
}

proptest! {
    #![proptest_config(crate::cases(48))]

    /// C1 for layered models: reverse mode equals forward mode, the
    /// factored kernel J_q J_xᵀ, for random shapes, strides, paddings and
    /// C in {1, 2, 3, 5}.
    #[test]
    fn layered_reverse_mode_and_kernel_equal_forward_mode(seed in any::<u64>(), ci in 0usize..4,
                                                          rows in 1usize..4, nb in 1usize..3) {
        let c = [1, 2, 3, 5][ci];
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (spec, dim) = random_layers(&mut rng, c);
        check_against_reference(&spec, dim, rows, nb, &mut rng);
    }
}

/// Each layer kind alone (between the input and a dense output layer),
/// forward, reverse and kernel against the reference's loops, with strides
/// and both paddings.
#[test]
fn each_layer_kind_matches_the_reference() {
    let conv = |kind: &str, k: usize, s: usize, pad: &str| json!({"kind": kind, "channels": 3, "kernel": k, "stride": s, "padding": pad});
    let cases: Vec<(Vec<usize>, Vec<Value>)> = vec![
        (vec![2, 7], vec![conv("conv1d", 3, 1, "valid")]),
        (vec![2, 7], vec![conv("conv1d", 3, 2, "same")]),
        (vec![1, 6], vec![conv("conv1d", 2, 3, "valid")]),
        (vec![2, 5, 6], vec![conv("conv2d", 3, 1, "valid")]),
        (vec![2, 5, 6], vec![conv("conv2d", 3, 2, "same")]),
        (vec![1, 6, 5], vec![conv("conv2d", 5, 1, "same")]),
        (vec![1, 5, 5], vec![conv("conv2d", 2, 2, "valid")]),
        (vec![2, 5, 7], vec![json!({"kind": "avg_pool", "size": 2})]),
        (vec![2, 7], vec![json!({"kind": "avg_pool", "size": 3})]),
        (vec![2, 3, 4], vec![json!({"kind": "layer_norm"})]),
        (
            vec![2, 3, 4],
            vec![json!({"kind": "layer_norm", "affine": false, "eps": 0.1})],
        ),
        (
            vec![2, 3],
            vec![json!({"kind": "activation", "name": "gelu"})],
        ),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for (shape, mut layers) in cases {
        // A conv first, so that every layer's input sensitivity is formed.
        let mut front = vec![];
        if shape.len() > 1 {
            let kind = if shape.len() == 2 { "conv1d" } else { "conv2d" };
            front.push(json!({"kind": kind, "channels": shape[0], "kernel": 1}));
        }
        front.append(&mut layers);
        front.push(json!({"kind": "flatten"}));
        front.push(json!({"kind": "dense", "units": 2}));
        let spec = model_spec(
            json!({"arch": "layers", "input_shape": shape, "outputs": 2, "layers": front}),
        );
        let dim = shape.iter().product();
        check_against_reference(&spec, dim, 3, 2, &mut rng);
    }
}

/// The forward pass of one model on one input row.
fn forward_row(spec: Value, w: &[f64], x: &[f64]) -> Vec<f64> {
    let spec = model_spec(spec);
    let m = model::build(&spec, x.len());
    assert_eq!(m.n_params(), w.len(), "the layout's length");
    let xm = DMatrix::from_row_slice(1, x.len(), x);
    let mut tape = m.tape(&xm);
    m.forward(w, &mut tape);
    tape.output.iter().copied().collect()
}

/// Hand-computed conv1d, layout W (out, in, k) then b: input [1, 2, 3, 4]
/// (one channel), W = [1, -1], b = 0.5, stride 2, valid: positions 0 and 2,
/// [1 - 2 + 0.5, 3 - 4 + 0.5] = [-0.5, -0.5]; the output dense layer
/// [2, 3] (+ 1) gives 2(-0.5) + 3(-0.5) + 1 = -1.5. With "same" and k = 3,
/// W = [1, 0, 2], stride 1 on [1, 2, 3, 4]: out[p] = in[p-1] + 2 in[p+1]
/// = [4, 7, 10, 3]; a dense [1, 2, 3, 4] (no bias) gives 60.
#[test]
fn hand_computed_conv1d() {
    let y = forward_row(
        json!({"arch": "layers", "input_shape": [1, 4], "layers": [
            {"kind": "conv1d", "channels": 1, "kernel": 2, "stride": 2},
            {"kind": "flatten"}, {"kind": "dense", "units": 1}]}),
        &[1.0, -1.0, 0.5, 2.0, 3.0, 1.0],
        &[1.0, 2.0, 3.0, 4.0],
    );
    assert_eq!(y, vec![-1.5]);
    let y = forward_row(
        json!({"arch": "layers", "input_shape": [1, 4], "layers": [
            {"kind": "conv1d", "channels": 1, "kernel": 3, "padding": "same", "bias": false},
            {"kind": "flatten"}, {"kind": "dense", "units": 1, "bias": false}]}),
        &[1.0, 0.0, 2.0, 1.0, 2.0, 3.0, 4.0],
        &[1.0, 2.0, 3.0, 4.0],
    );
    assert_eq!(y, vec![60.0]);
}

/// Hand-computed conv2d on the 3x3 input 1..9 (row-major), W (1, 1, 2, 2)
/// = [[1, 0], [0, -1]], b = 0: out[i, j] = in[i, j] - in[i+1, j+1] = -4
/// everywhere (2x2, valid); a dense [1, 2, 3, 4] gives -40. Two input
/// channels (the second the first negated) and W[0, 1] = [[0, 0], [0, 2]]
/// add 2 (-in[i+1, j+1]) = [-10, -12, -16, -18]: out = [-14, -16, -20, -22]
/// and the dense gives -14 - 32 - 60 - 88 = -194. avg_pool 2 of the valid
/// 2x2 map: -4 and -18 for the two cases.
#[test]
fn hand_computed_conv2d() {
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let one = |tail: Value, w: &[f64], x: &[f64], shape: Value| {
        let mut layers = vec![json!({"kind": "conv2d", "channels": 1, "kernel": 2, "bias": false})];
        layers.extend(tail.as_array().unwrap().iter().cloned());
        forward_row(
            json!({"arch": "layers", "input_shape": shape, "layers": layers}),
            w,
            x,
        )
    };
    let flat = json!([{"kind": "flatten"}, {"kind": "dense", "units": 1, "bias": false}]);
    let pool = json!([{"kind": "avg_pool", "size": 2}, {"kind": "flatten"},
                      {"kind": "dense", "units": 1, "bias": false}]);
    let w1 = [1.0, 0.0, 0.0, -1.0];
    assert_eq!(
        one(
            flat.clone(),
            &[&w1[..], &[1.0, 2.0, 3.0, 4.0]].concat(),
            &x,
            json!([1, 3, 3])
        ),
        vec![-40.0]
    );
    assert_eq!(
        one(
            pool.clone(),
            &[&w1[..], &[1.0]].concat(),
            &x,
            json!([1, 3, 3])
        ),
        vec![-4.0]
    );
    let x2: Vec<f64> = x.iter().copied().chain(x.iter().map(|v| -v)).collect();
    let w2 = [1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 2.0];
    assert_eq!(
        one(
            flat,
            &[&w2[..], &[1.0, 2.0, 3.0, 4.0]].concat(),
            &x2,
            json!([2, 3, 3])
        ),
        vec![-194.0]
    );
    assert_eq!(
        one(pool, &[&w2[..], &[1.0]].concat(), &x2, json!([2, 3, 3])),
        vec![-18.0]
    );
}

/// Init (SPEC §10): W ~ N(0, init_scale² / fan_in), fan_in = in_ch k^dims
/// for convolutions, biases 0, gamma 1, beta 0, in layer order from the init
/// stream. Each weight block's sample variance is within 5 standard errors
/// (sqrt(2/n) σ²) of init_scale² / fan_in.
#[test]
fn init_follows_the_layout_and_variances() {
    let spec = model_spec(
        json!({"arch": "layers", "input_shape": [3, 10, 10], "init_scale": 1.5, "outputs": 2,
        "layers": [
            {"kind": "conv2d", "channels": 40, "kernel": 3},
            {"kind": "layer_norm"},
            {"kind": "conv2d", "channels": 20, "kernel": 3, "stride": 2, "padding": "same"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 30},
            {"kind": "activation", "name": "tanh"},
            {"kind": "dense", "units": 2}]}),
    );
    let m = model::build(&spec, 300);
    let w = m.init(&mut generator(3, RngStream::Init));
    assert_eq!(w.len(), m.n_params());
    let mut at = 0;
    let mut take = |n: usize| {
        at += n;
        &w[at - n..at]
    };
    let check = |block: &[f64], fan_in: usize| {
        let n = block.len() as f64;
        let var = block.iter().map(|v| v * v).sum::<f64>() / n;
        let want = 2.25 / fan_in as f64;
        let se = (2.0 / n).sqrt() * want;
        assert!(
            (var - want).abs() < 5.0 * se,
            "variance {var} vs {want} (se {se})"
        );
    };
    check(take(40 * 3 * 9), 27);
    assert!(take(40).iter().all(|&b| b == 0.0));
    let f = 40 * 8 * 8;
    assert!(take(f).iter().all(|&g| g == 1.0));
    assert!(take(f).iter().all(|&b| b == 0.0));
    check(take(20 * 40 * 9), 360);
    assert!(take(20).iter().all(|&b| b == 0.0));
    check(take(30 * 20 * 16), 320);
    assert!(take(30).iter().all(|&b| b == 0.0));
    check(take(2 * 30), 30);
    assert!(take(2).iter().all(|&b| b == 0.0));
    assert_eq!(at, w.len());
}

/// A layered spec of dense and activation layers gives the mlp's numbers
/// (the same draws from the init stream, the same dense-layer routine).
#[test]
fn dense_stack_equals_the_mlp() {
    for (c, loss) in [(1, "squared"), (3, "cross_entropy")] {
        let flow =
            json!({"t_end": 1.0, "method": "rk4", "step": 0.125, "exact_path_kernel": false});
        let data =
            json!({"source": "synthetic", "function": "sine", "n_train": 9, "n_test": 4, "dim": 3});
        let mut data = data;
        if c > 1 {
            data = json!({"source": "inline",
                "train_x": [[0.5, -0.2, 0.1], [0.1, 0.9, -0.3], [-0.7, 0.3, 0.2], [0.3, 0.4, 0.0]],
                "train_y": [0, 1, 2, 1], "test_x": [[0.2, -0.6, 0.3], [0.0, 0.1, 0.5]]});
        }
        let mlp = parse(
            json!({"seed": 4, "data": data, "loss": {"kind": loss}, "flow": flow,
            "model": {"arch": "mlp", "hidden": [5, 4], "activation": "softplus", "outputs": c}}),
        );
        let layered = parse(
            json!({"seed": 4, "data": data, "loss": {"kind": loss}, "flow": flow,
            "model": {"arch": "layers", "input_shape": [3], "outputs": c, "layers": [
                {"kind": "dense", "units": 5}, {"kind": "activation", "name": "softplus"},
                {"kind": "dense", "units": 4}, {"kind": "activation", "name": "softplus"},
                {"kind": "dense", "units": c}]}}),
        );
        let (a, b) = (run(&mlp), run(&layered));
        assert_eq!(a.y_end, b.y_end);
        assert_eq!(a.path_kernel, b.path_kernel);
        assert_eq!(a.coef_integral, b.coef_integral);
        assert_eq!(a.tangent_kernel_end, b.tangent_kernel_end);
        assert_eq!(a.max_abs_residual(), b.max_abs_residual());
    }
}

/// A smooth CNN on 4x4 inputs (conv2d same, tanh, layer_norm, avg_pool,
/// dense), C = 2 squared loss, 8 training and 3 query points.
pub fn smooth_cnn(flow: Value) -> Spec {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut img = |n: usize| -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| (0..16).map(|_| normal(&mut rng)).collect())
            .collect()
    };
    let (x, q) = (img(8), img(3));
    let y: Vec<[f64; 2]> = x.iter().map(|r| [r[5].sin(), 0.5 * r[10]]).collect();
    parse(json!({
        "seed": 2,
        "data": {"source": "inline", "train_x": x, "train_y": y, "test_x": q},
        "model": {"arch": "layers", "input_shape": [1, 4, 4], "outputs": 2, "layers": [
            {"kind": "conv2d", "channels": 3, "kernel": 3, "padding": "same"},
            {"kind": "activation", "name": "tanh"},
            {"kind": "layer_norm"},
            {"kind": "avg_pool", "size": 2},
            {"kind": "flatten"},
            {"kind": "dense", "units": 4},
            {"kind": "activation", "name": "tanh"},
            {"kind": "dense", "units": 2}]},
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": flow
    }))
}

/// C4 on a smooth CNN: the residual falls at the method's order (gd 1 ±
/// 0.1, rk4 4 ± 0.3), with steps chosen as tests/vector.rs chooses them:
/// hλ ≤ ρ at the largest step, ρ = 1/4 for gd and 1 for rk4, and the
/// residual 100 times above rounding at the smallest step.
#[test]
fn cnn_identity_falls_at_the_method_order() {
    study::assert_orders(&smooth_cnn(
        json!({"t_end": 1.0, "method": "rk4", "step": 0.5}),
    ));
}

/// C6 on a smooth CNN: the gd exact path kernel closes the identity at
/// rounding level (8 K ε S), with a Riemann-sum residual far above it.
#[test]
fn cnn_exact_path_kernel_is_at_rounding_level() {
    study::assert_exact_at_rounding(&smooth_cnn(
        json!({"t_end": 1.0, "method": "rk4", "step": 0.5}),
    ));
}

/// The location and message of a refused spec (read, validated and
/// checked against its data).
fn refused(spec: Value) -> (String, String) {
    let e = Spec::parse(&spec.to_string(), Format::Json)
        .and_then(|s| Dataset::resolve(&s, Path::new(".")).map(|_| ()))
        .expect_err("the spec is refused");
    (e.location.clone(), e.problem.clone())
}

/// Bad layered specs: one message naming the layer by index and field.
#[test]
fn bad_layer_specs_are_refused_naming_the_layer() {
    let spec = |shape: Value, layers: Value| {
        json!({"data": {"source": "synthetic", "function": "sine", "n_train": 4, "n_test": 2, "dim": 16},
               "model": {"arch": "layers", "input_shape": shape, "layers": layers},
               "loss": {"kind": "squared"}, "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}})
    };
    let tail = json!([{"kind": "flatten"}, {"kind": "dense", "units": 1}]);
    let with = |first: Value| {
        let mut l = vec![first];
        l.extend(tail.as_array().unwrap().iter().cloned());
        Value::Array(l)
    };
    let cases = [
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "conv2d", "channels": 2, "kernel": 5})),
            ),
            "model.layers[0].kernel",
            "larger than its input",
        ),
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "conv2d", "channels": 2, "kernel": 2, "padding": "same"})),
            ),
            "model.layers[0].kernel",
            "odd kernel",
        ),
        (
            spec(
                json!([1, 4, 3]),
                with(json!({"kind": "conv2d", "channels": 2, "kernel": 3})),
            ),
            "model.input_shape",
            "D = 16",
        ),
        (
            spec(
                json!([1, 4, 4]),
                json!([{"kind": "conv2d", "channels": 2, "kernel": 3}, {"kind": "flatten"}]),
            ),
            "model.layers",
            "last layer must be dense",
        ),
        (
            spec(
                json!([1, 4, 4]),
                json!([{"kind": "flatten"}, {"kind": "dense", "units": 3}]),
            ),
            "model.layers[1].units",
            "`outputs` = 1",
        ),
        (
            spec(
                json!([1, 4, 4]),
                json!([{"kind": "conv2d", "channels": 2, "kernel": 3}, {"kind": "dense", "units": 1}]),
            ),
            "model.layers[1].kind",
            "flatten",
        ),
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "avg_pool", "size": 5})),
            ),
            "model.layers[0].size",
            "past the edge",
        ),
        (
            spec(
                json!([1, 16]),
                with(json!({"kind": "conv2d", "channels": 2, "kernel": 3})),
            ),
            "model.layers[0].kind",
            "[channels, height, width]",
        ),
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "conv2d", "channels": 2, "kernel": 3, "stride": 0})),
            ),
            "model.layers[0].stride",
            "found 0",
        ),
        // Errors of shape inside a layer name its field, not only the layer.
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "conv2d", "channels": 2, "kernel": [3, 3]})),
            ),
            "model.layers[0].kernel",
            "found an array",
        ),
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "avg_pool", "size": "2"})),
            ),
            "model.layers[0].size",
            "found \"2\"",
        ),
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "conv2d", "kernel": 3})),
            ),
            "model.layers[0].channels",
            "missing required field",
        ),
        (
            spec(
                json!([1, 4, 4]),
                with(json!({"kind": "activation", "name": "rellu"})),
            ),
            "model.layers[0].name",
            "Did you mean `relu`?",
        ),
    ];
    for (spec, location, fragment) in cases {
        let (at, problem) = refused(spec.clone());
        assert_eq!(at, location, "{problem}\n{spec}");
        assert!(problem.contains(fragment), "`{fragment}` not in {problem}");
    }
    // Through the command line: exit 2 with the one line.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        spec(
            json!([1, 4, 4]),
            with(json!({"kind": "conv2d", "channels": 2, "kernel": 5})),
        )
        .to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(["run", path.to_str().unwrap()])
        .output()
        .unwrap();
    crate::common::assert_fails(&out, 2, &["model.layers[0].kernel"]);
}

/// The README's digits CNN (specs/digits_cnn.json): dop853 at rtol 1e-12
/// closes the identity to 1e-10 of the change, and the kernel machine
/// classifies the query points as the network does.
#[test]
fn digits_cnn_example_holds_the_identity() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/digits_cnn.json");
    let spec = Spec::from_path(&path).expect("the example spec");
    let data = Dataset::resolve(&spec, path.parent().unwrap()).expect("digits");
    let out = Experiment::new(spec, data)
        .run(&mut |_| {})
        .expect("the flow runs");
    study::assert_tight_identity(&out, 1.0);
}

/// Kinks inside feature maps are seen by `conditions`: a relu CNN is not
/// smooth, and its conv pre-activations (the relu layer's input) cross 0
/// along the path; the same CNN with softplus crosses nothing.
#[test]
fn relu_feature_map_kinks_are_counted() {
    // Fixed steps: an adaptive pair would chatter at the kinks.
    let flow = json!({"t_end": 4.0, "method": "rk4", "step": 0.0625});
    let mut relu = serde_json::to_value(smooth_cnn(flow.clone())).unwrap();
    relu["model"]["layers"][1]["name"] = json!("relu");
    relu["model"]["layers"][2] = json!({"kind": "activation", "name": "identity"});
    let out = run(&parse(relu.clone()));
    let c = &out.conditions;
    assert!(!c.model_smooth);
    assert!(c.activation_kink_crossings > 0, "{c:?}");
    let mut soft = relu;
    soft["model"]["layers"][1]["name"] = json!("softplus");
    let out = run(&parse(soft));
    assert!(out.conditions.model_smooth);
    assert_eq!(out.conditions.activation_kink_crossings, 0);
}
