//! C51: the symmetric block of a tangent kernel (`learn`'s training rows
//! against the training points), formed as its upper triangle by blocks and
//! mirrored, is the full product's, bit for bit, and symmetric.
use nalgebra::DMatrix;
use pathkernel::kernel::KernelPlan;
use pathkernel::model;
use pathkernel::spec::{Format, Spec};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};

fn model_spec(model: Value, dim: usize) -> Spec {
    let spec = json!({"seed": 1,
        "data": {"source": "synthetic", "function": "sine", "n_train": 3, "n_test": 1, "dim": dim},
        "model": model, "loss": {"kind": "squared"},
        "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}});
    Spec::parse(&spec.to_string(), Format::Json).unwrap()
}

/// K over rows 0..n + m against columns 0..n of one tape (the symmetric
/// path) and against a copy of the tape (the plain products).
fn kernels(spec: &Spec, dim: usize, n: usize, m: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let model = model::build(&spec.model, dim);
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let w: Vec<f64> = (0..model.n_params()).map(|_| 0.5 * normal()).collect();
    let x = DMatrix::from_fn(n + m, dim, |_, _| normal());
    let mut tape = model.tape(&x);
    model.forward(&w, &mut tape);
    model.backward(&w, &mut tape);
    let copy = tape.clone();
    let plan = KernelPlan::new(model.as_ref());
    let mut scratch = plan.scratch(&tape, (n + m) * n, n);
    let mut symmetric = vec![f64::NAN; (n + m) * n];
    let mut plain = vec![f64::NAN; (n + m) * n];
    for (tb, out) in [(&tape, &mut symmetric), (&copy, &mut plain)] {
        let grams = plan.input_grams(&tape, 0..n + m, tb, 0..n);
        plan.tangent_kernel(&tape, 0..n + m, tb, 0..n, &mut scratch, Some(&grams), out);
    }
    (symmetric, plain)
}

/// Sizes below, at and above the recursive split (2 x 96) and uneven
/// halves; mlps with and without bias (dense, bias and the output layer's
/// unit δ), a residual net, diag_linear and a conv net (explicit blocks).
#[test]
fn symmetric_block_equals_the_full_product() {
    let models = [
        (
            json!({"arch": "mlp", "hidden": [6, 5], "activation": "tanh"}),
            3,
        ),
        (
            json!({"arch": "mlp", "hidden": [4], "activation": "relu", "bias": false}),
            2,
        ),
        (
            json!({"arch": "resmlp", "width": 4, "blocks": 2, "activation": "gelu"}),
            3,
        ),
        (json!({"arch": "diag_linear"}), 4),
        (
            json!({"arch": "layers", "input_shape": [1, 4, 4], "layers": [
                {"kind": "conv2d", "channels": 2, "kernel": 3}, {"kind": "activation", "name": "tanh"},
                {"kind": "flatten"}, {"kind": "dense", "units": 1}]}),
            16,
        ),
    ];
    let sizes = [(1, 0), (5, 3), (96, 2), (191, 0), (192, 7), (389, 11)];
    for (k, (model, dim)) in models.into_iter().enumerate() {
        let spec = model_spec(model, dim);
        for (s, &(n, m)) in sizes.iter().enumerate() {
            let (sym, plain) = kernels(&spec, dim, n, m, (k * 10 + s) as u64);
            let rows = n + m;
            for j in 0..n {
                for i in 0..rows {
                    let (a, b) = (sym[i + j * rows], plain[i + j * rows]);
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{:?} n {n} m {m}: K[{i},{j}] {a} against the full product's {b}",
                        spec.model
                    );
                    if i < n {
                        assert_eq!(a.to_bits(), sym[j + i * rows].to_bits(), "not symmetric");
                    }
                }
            }
        }
    }
}
