//! Vector outputs and softmax cross-entropy (SPEC §8, claims C14–C16 of
//! proofs.md): the loss against closed forms and dual numbers, the
//! identity's residual at the method's order with C x C blocks, the gd
//! exact path kernel at rounding level, class permutations, the
//! coefficient solve and its null rule. (Reverse mode against forward mode
//! at C in {1, 2, 3, 5} is claim C1, in tests/model.rs.)
use crate::study::{self, max_abs, parse, run, run_on};
use nalgebra::DMatrix;
use num_dual::Dual64;
use pathkernel::blocks;
use pathkernel::data::Dataset;
use pathkernel::experiment::Experiment;
use pathkernel::loss::Loss;
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::path::Path;

const EPS: f64 = f64::EPSILON;

/// Nine training points in 2-D with three classes, four query points.
fn inputs() -> (Value, Value) {
    (
        json!([
            [0.5, -0.2],
            [0.1, 0.9],
            [-0.7, 0.3],
            [0.3, 0.4],
            [-0.2, -0.8],
            [0.9, 0.1],
            [-0.5, -0.4],
            [0.0, 0.6],
            [0.6, -0.7]
        ]),
        json!([[0.2, -0.6], [0.05, 0.05], [-0.4, 0.8], [0.7, 0.2]]),
    )
}

/// A smooth C = 3 classifier: tanh mlp [6] under cross_entropy (mean).
pub fn classifier(flow: Value) -> Spec {
    let (x, q) = inputs();
    parse(json!({
        "seed": 5,
        "data": {"source": "inline", "train_x": x, "train_y": [0, 1, 2, 0, 1, 2, 0, 1, 2], "test_x": q},
        "model": {"arch": "mlp", "hidden": [6], "activation": "tanh", "outputs": 3},
        "loss": {"kind": "cross_entropy"},
        "reduction": "mean",
        "flow": flow
    }))
}

/// A smooth C = 2 regression: resmlp (width 4, 1 block, softplus) under
/// squared loss (sum) on rows of two targets.
pub fn two_outputs(flow: Value) -> Spec {
    let (x, q) = inputs();
    let y: Vec<[f64; 2]> = (0..9)
        .map(|i| [(0.7 * i as f64).sin(), 0.25 * i as f64 - 1.0])
        .collect();
    parse(json!({
        "seed": 6,
        "data": {"source": "inline", "train_x": x, "train_y": y, "test_x": q},
        "model": {"arch": "resmlp", "width": 4, "blocks": 1, "activation": "softplus", "outputs": 2},
        "loss": {"kind": "squared"},
        "reduction": "sum",
        "flow": flow
    }))
}

#[test]
fn cross_entropy_of_uniform_logits_is_ln_c() {
    for c in 2..=6 {
        for level in [0.0, -3.5, 1e4, -1e4] {
            let f = vec![level; c];
            let mut g = vec![0.0; c];
            let l = Loss::CrossEntropy.row(&[1.0], &f, 1.0, &mut g);
            assert!((l - (c as f64).ln()).abs() <= 4.0 * EPS, "C = {c}: {l}");
            // softmax = 1/C; the label's entry 1/C − 1.
            for (k, &gk) in g.iter().enumerate() {
                let want = 1.0 / c as f64 - f64::from(u8::from(k == 1));
                assert!((gk - want).abs() <= 4.0 * EPS, "C = {c}, k = {k}: {gk}");
            }
        }
    }
}

/// Logits of ±1e4 overflow exp but not the loss: the value is the margin,
/// exactly, and the gradient is finite and exact (a confident wrong row has
/// softmax − onehot = e_k − e_label; a confident right one a gradient of
/// e^-2e4, which underflows to 0).
#[test]
fn cross_entropy_is_finite_for_extreme_logits() {
    let mut g = vec![0.0; 3];
    let l = Loss::CrossEntropy.row(&[0.0], &[-1e4, 1e4, 0.0], 1.0, &mut g);
    assert_eq!(l, 2e4);
    assert_eq!(g, vec![-1.0, 1.0, 0.0]);
    let l = Loss::CrossEntropy.row(&[1.0], &[-1e4, 1e4, 0.0], 1.0, &mut g);
    assert_eq!(l, 0.0);
    assert!(g.iter().all(|v| v.is_finite() && v.abs() < 1e-300));
    // Near-certainty keeps relative accuracy: f = (0, 40): l = ln(1 + e^-40).
    let l = Loss::CrossEntropy.row(&[1.0], &[0.0, 40.0], 1.0, &mut g);
    let want = (-40f64).exp().ln_1p();
    assert!((l - want).abs() <= 2.0 * EPS * want, "{l} vs {want}");
    assert!(
        (g[1] + want).abs() <= 4.0 * EPS * want,
        "{} vs {}",
        g[1],
        -want
    );
}

/// The gradient against forward-mode dual numbers of the textbook form,
/// over logits in [-30, 30], C from 2 to 5, with the weight applied.
#[test]
fn cross_entropy_gradient_equals_dual_numbers() {
    let mut state = 12345u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for case in 0..500 {
        let c = 2 + case % 4;
        let f: Vec<f64> = (0..c).map(|_| 60.0 * uniform() - 30.0).collect();
        let label = (uniform() * c as f64) as usize;
        let weight = 0.25;
        let mut g = vec![0.0; c];
        let l = Loss::CrossEntropy.row(&[label as f64], &f, weight, &mut g);
        let mut fd: Vec<Dual64> = f.iter().map(|&v| Dual64::from(v)).collect();
        let value = Loss::CrossEntropy.row_dual(&[label as f64], &fd).re;
        // The reference forms ln(1 + r) as ln of the sum: absolute error ~ ε.
        assert!(
            (l - value).abs() <= 16.0 * EPS * value.abs().max(1.0),
            "{l} vs {value}"
        );
        for k in 0..c {
            fd[k] = Dual64::new(f[k], 1.0);
            let want = weight * Loss::CrossEntropy.row_dual(&[label as f64], &fd).eps;
            fd[k] = Dual64::from(f[k]);
            // Both are softmax − onehot; the reference's 1 − p cancels, so
            // compare absolutely at the scale of the weight.
            assert!(
                (g[k] - want).abs() <= 8.0 * EPS * weight,
                "k {k}: {} vs {want}",
                g[k]
            );
        }
        // Σ_k (softmax − onehot) = 0.
        assert!(g.iter().sum::<f64>().abs() <= 8.0 * EPS * weight);
    }
}

/// C4 for C > 1 on the classifier and on the two-output regression (the
/// steps and bounds of `study::assert_orders`).
#[test]
fn vector_identity_falls_at_the_method_order() {
    study::assert_orders(&classifier(
        json!({"t_end": 1.0, "method": "rk4", "step": 0.5}),
    ));
    study::assert_orders(&two_outputs(
        json!({"t_end": 0.5, "method": "rk4", "step": 0.25}),
    ));
}

/// C6 for C > 1: the gd exact path kernel closes the identity at rounding
/// level (the bound of identity.rs's C6 test, 8 K ε S), with a Riemann-sum
/// residual far above it.
#[test]
fn vector_exact_path_kernel_is_at_rounding_level() {
    study::assert_exact_at_rounding(&classifier(
        json!({"t_end": 1.0, "method": "rk4", "step": 0.5}),
    ));
    study::assert_exact_at_rounding(&two_outputs(
        json!({"t_end": 0.5, "method": "rk4", "step": 0.25}),
    ));
}

/// C12 for C > 1, as a user checks it: dop853 at rtol 1e-12 on the smooth
/// C = 3 classifier leaves max |r| at most 1e-10 of max |y_end − y0|.
#[test]
fn adaptive_classifier_reaches_its_tolerance() {
    let out = run(&classifier(
        json!({"t_end": 2.0, "method": "dop853", "rtol": 1e-12, "atol": 1e-14}),
    ));
    study::assert_tight_identity(&out, 0.1);
}

/// Relabelling the classes by a permutation π (labels y ↦ π(y), the output
/// layer's rows permuted to match) permutes outputs and the blocks'
/// indices: K'_{cc'} = K_{π⁻¹c π⁻¹c'}, A'_c = A_{π⁻¹c}, to rounding.
#[test]
fn permuting_classes_permutes_the_blocks() {
    let spec = classifier(json!({"t_end": 1.0, "method": "rk4", "step": 0.125}));
    let exp = Experiment::new(
        spec.clone(),
        Dataset::resolve(&spec, Path::new(".")).unwrap(),
    );
    let w0 = exp.w0.clone();
    let out = run(&spec);
    let perm = [2usize, 0, 1]; // class c becomes perm[c]
    // The last layer: W (3 x 6) then b (3), at the end of w.
    let (h, c) = (6, 3);
    let start = w0.len() - (h * c + c);
    let mut w1 = w0.clone();
    for old in 0..c {
        let new = perm[old];
        w1[start + new * h..start + (new + 1) * h]
            .copy_from_slice(&w0[start + old * h..start + (old + 1) * h]);
        w1[start + h * c + new] = w0[start + h * c + old];
    }
    let mut value = serde_json::to_value(&spec).unwrap();
    let labels: Vec<usize> = [0, 1, 2, 0, 1, 2, 0, 1, 2]
        .iter()
        .map(|&y| perm[y])
        .collect();
    value["data"]["train_y"] = json!(labels);
    value["init"] = json!({"w0": w1});
    let permuted = run(&parse(value));
    let (m, n) = (4, 9);
    let tol = 1e-12 * max_abs(out.path_kernel.iter().copied()).max(1.0);
    for q in 0..m {
        for old in 0..c {
            let new = perm[old];
            let (a, b) = (out.y_end[q * c + old], permuted.y_end[q * c + new]);
            assert!((a - b).abs() <= tol, "y_end {q}.{old}: {a} vs {b}");
            for i in 0..n {
                let (a, b) = (
                    out.coef_integral[(q * c + old, i)],
                    permuted.coef_integral[(q * c + new, i)],
                );
                assert!((a - b).abs() <= tol, "A {q} {i} {old}: {a} vs {b}");
                for (old2, &new2) in perm.iter().enumerate() {
                    let a = out.path_kernel[(q * c + old, i * c + old2)];
                    let b = permuted.path_kernel[(q * c + new, i * c + new2)];
                    assert!((a - b).abs() <= tol, "K {q} {i} {old}{old2}: {a} vs {b}");
                }
            }
        }
    }
}

/// a_i(x) solves the block system K^p(x, x_i) a = A_i(x) on a run; on
/// constructed blocks, a singular and an ill-conditioned one (reciprocal
/// condition number below 1e-12) give null as whole vectors.
#[test]
fn coefficient_vectors_solve_their_blocks_and_follow_the_null_rule() {
    let out = run(&classifier(
        json!({"t_end": 1.0, "method": "rk4", "step": 0.125}),
    ));
    let a = out.coefficients();
    let c = 3;
    for q in 0..4 {
        for i in 0..9 {
            let k = blocks::block(&out.path_kernel, q, i, c);
            let defined = (0..c).filter(|&r| a[(q * c + r, i)].is_some()).count();
            assert!(defined == 0 || defined == c);
            if defined == 0 {
                assert!(blocks::reciprocal_condition(&k) < blocks::RCOND_MIN);
                continue;
            }
            for r in 0..c {
                let got: f64 = (0..c).map(|s| k[(r, s)] * a[(q * c + s, i)].unwrap()).sum();
                let want = out.coef_integral[(q * c + r, i)];
                let size: f64 = (0..c)
                    .map(|s| (k[(r, s)] * a[(q * c + s, i)].unwrap()).abs())
                    .sum();
                assert!(
                    (got - want).abs()
                        <= 1e-12 * size.max(want.abs()) / blocks::reciprocal_condition(&k).min(1.0),
                    "K a != A at {q} {i} {r}: {got} vs {want}"
                );
            }
        }
    }
    // The rule itself: rcond of diag(1, 1e-13) is 1e-13 (null), of
    // diag(1, 1e-11) is 1e-11 (defined), of a zero block 0.
    let kernel = DMatrix::from_row_slice(2, 4, &[1.0, 0.0, 1.0, 0.0, 0.0, 1e-13, 0.0, 1e-11]);
    let coef = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 1.0, 1.0]);
    let a = blocks::solve_blocks(&kernel, &coef, 2);
    assert_eq!(a[(0, 0)], None);
    assert_eq!(a[(1, 0)], None);
    assert_eq!(a[(0, 1)], Some(2.0));
    assert!((a[(1, 1)].unwrap() - 1e11).abs() <= 1e11 * 1e-15);
    assert_eq!(blocks::reciprocal_condition(&DMatrix::zeros(2, 2)), 0.0);
    let r = blocks::reciprocal_condition(&DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 1e-13]));
    assert!((r - 1e-13).abs() <= 1e-28);
}

/// The error of resolving a spec: location and problem.
fn refused(spec: Value) -> (String, String) {
    let e = Spec::parse(&spec.to_string(), Format::Json)
        .and_then(|s| Dataset::resolve(&s, Path::new(".")).map(|_| ()))
        .expect_err("the spec is refused");
    (e.location.clone(), e.problem.clone())
}

/// Bad input for vector outputs: each refused with one message naming the
/// field (exit 2 through the command line, as every `InputError`).
#[test]
fn bad_vector_specs_are_refused_naming_the_field() {
    let (x, q) = inputs();
    let spec = |model: Value, loss: &str, y: Value| {
        json!({"data": {"source": "inline", "train_x": x, "train_y": y, "test_x": q},
               "model": model, "loss": {"kind": loss},
               "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}})
    };
    let mlp = |c: usize| json!({"arch": "mlp", "hidden": [3], "outputs": c});
    // A label outside 0..C-1.
    let (at, what) = refused(spec(
        mlp(3),
        "cross_entropy",
        json!([0, 1, 2, 0, 3, 2, 0, 1, 2]),
    ));
    assert_eq!(at, "data.train_y[4]");
    assert!(what.contains("class labels 0..2"), "{what}");
    // A non-integer label.
    let (at, _) = refused(spec(
        mlp(3),
        "cross_entropy",
        json!([0, 1, 2, 0, 1.5, 2, 0, 1, 2]),
    ));
    assert_eq!(at, "data.train_y[4]");
    // C disagrees with the targets' width.
    let rows = json!(vec![[0.5, 1.0]; 9]);
    let (at, what) = refused(spec(mlp(3), "squared", rows.clone()));
    assert_eq!(at, "data.train_y");
    assert!(
        what.contains("model.outputs = 3") && what.contains("rows of 2"),
        "{what}"
    );
    let (at, _) = refused(spec(mlp(2), "squared", json!(vec![0.5; 9])));
    assert_eq!(at, "data.train_y");
    // A ragged row of targets.
    let mut ragged = vec![vec![0.5, 1.0]; 9];
    ragged[6] = vec![0.5];
    let (at, _) = refused(spec(mlp(2), "squared", json!(ragged)));
    assert_eq!(at, "data.train_y[6]");
    // cross_entropy needs C >= 2; diag_linear has one output and no `outputs`.
    let (at, what) = refused(spec(mlp(1), "cross_entropy", json!(vec![0; 9])));
    assert_eq!(at, "model.outputs");
    assert!(what.contains("C >= 2"), "{what}");
    let (at, _) = refused(spec(
        json!({"arch": "diag_linear"}),
        "cross_entropy",
        json!(vec![0; 9]),
    ));
    assert_eq!(at, "loss.kind");
    let (at, _) = refused(spec(
        json!({"arch": "diag_linear", "outputs": 2}),
        "squared",
        rows,
    ));
    assert_eq!(at, "model.outputs");
    let (at, _) = refused(spec(mlp(0), "squared", json!(vec![0.5; 9])));
    assert_eq!(at, "model.outputs");
    // A per-output loss's labels are checked per component.
    let mut signs = vec![vec![1.0, -1.0]; 9];
    signs[2][1] = 0.5;
    let (at, _) = refused(spec(mlp(2), "hinge", json!(signs)));
    assert_eq!(at, "data.train_y[2][1]");
}

/// Kinks of a per-output loss are tracked per component: a C = 2 linear
/// model under hinge, whose first output reaches its margin and whose
/// second starts and stays beyond it, crosses once (SPEC §8, proofs.md).
#[test]
fn loss_kinks_are_counted_per_component() {
    // f = V x + c at x = 1 with w0 = 0 except the second output's bias,
    // 2: output 0 climbs towards its margin 1 at rate 2 (v and c both
    // move), output 1 (target +1, f = 2) is past its margin and frozen.
    let spec = parse(json!({
        "data": {"source": "inline", "train_x": [[1.0]], "train_y": [[1.0, 1.0]], "test_x": [[1.0]]},
        "model": {"arch": "linear", "outputs": 2},
        "init": {"w0": [0.0, 0.0, 0.0, 2.0]},
        "loss": {"kind": "hinge"},
        "flow": {"t_end": 1.0, "method": "gd", "lr": 0.0625}
    }));
    let out = run(&spec);
    let c = &out.conditions;
    assert_eq!(c.loss_kink_crossings, 1, "{c:?}");
    assert_eq!(c.kink_crossing_times, vec![0.5]);
    assert_eq!(c.neg_lprime_min.len(), 2);
    assert_eq!((c.neg_lprime_min[1], c.neg_lprime_max[1]), (0.0, 0.0));
    assert_eq!(c.kernel_pairs, 4);
}

/// test_error (SPEC §11) on hand-made predictions: argmax accuracy and the
/// Brier score for class indices, one-hot rows, the sign for -1/+1 labels,
/// the 0.5 threshold for 0/1 labels, and the plain squared error of
/// regression targets.
#[test]
fn test_error_reads_targets_as_the_loss_does() {
    use pathkernel::evaluation::TestError;
    // Class indices under cross_entropy: logits (2, 0) and (0, 0) against
    // labels 0 and 1: one hit; softmax (0.8808, 0.1192) and (0.5, 0.5).
    let labels = DMatrix::from_column_slice(2, 1, &[0.0, 1.0]);
    let e = TestError::new(
        &Loss::CrossEntropy,
        2,
        &labels,
        &[2.0, 0.0, 0.0, 0.0],
        &[1.0, 0.0, 0.0, 1.0],
    );
    assert_eq!(e.model.accuracy, Some(0.5));
    assert_eq!(e.kernel_machine.accuracy, Some(1.0));
    let p = 1.0 / (1.0 + (-2f64).exp());
    let brier = ((p - 1.0).powi(2) + (1.0 - p).powi(2) + 0.25 + 0.25) / 4.0;
    assert!(
        (e.model.mse - brier).abs() < 1e-15,
        "{} vs {brier}",
        e.model.mse
    );
    // One-hot rows under squared loss: argmax, and the raw squared error.
    let onehot = DMatrix::from_row_slice(2, 2, &[0.0, 1.0, 1.0, 0.0]);
    let e = TestError::new(&Loss::Squared, 2, &onehot, &[0.2, 0.9, 0.4, 0.3], &[0.0; 4]);
    assert_eq!(e.model.accuracy, Some(1.0));
    assert!((e.model.mse - (0.04 + 0.01 + 0.36 + 0.09) / 4.0).abs() < 1e-15);
    // -1/+1 labels by the sign, 0/1 labels by 0.5.
    let signs = DMatrix::from_column_slice(3, 1, &[1.0, -1.0, 1.0]);
    let e = TestError::new(
        &Loss::Logistic,
        1,
        &signs,
        &[0.3, 0.2, -4.0],
        &[0.3, -0.2, 4.0],
    );
    assert_eq!(
        (e.model.accuracy, e.kernel_machine.accuracy),
        (Some(1.0 / 3.0), Some(1.0))
    );
    let bits = DMatrix::from_column_slice(2, 1, &[1.0, 0.0]);
    let e = TestError::new(&Loss::Bce, 1, &bits, &[0.6, 0.4], &[0.4, 0.6]);
    assert_eq!(
        (e.model.accuracy, e.kernel_machine.accuracy),
        (Some(1.0), Some(0.0))
    );
    // Regression: no accuracy.
    let real = DMatrix::from_column_slice(2, 1, &[0.5, -1.5]);
    let e = TestError::new(&Loss::Squared, 1, &real, &[1.0, -1.0], &[0.5, -1.5]);
    assert_eq!(e.model.accuracy, None);
    assert_eq!((e.model.mse, e.kernel_machine.mse), (0.25, 0.0));
}

/// The README's classifier examples run, print the residual per output and
/// the test accuracy of the network and of its kernel machine, and hold the
/// identity to 1e-10 of the change (dop853 at rtol 1e-12).
#[test]
fn readme_classifier_examples_run_and_say_what_a_user_needs() {
    for (name, per_output) in [("iris_softmax", true), ("digits_3_vs_8", false)] {
        let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("specs/{name}.json"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pathkernel"))
            .arg("run")
            .arg(&spec)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.contains("max |residual| per output: 0:"),
            per_output,
            "{text}"
        );
        assert!(
            text.contains("test error of the network f(w_end): accuracy"),
            "{text}"
        );
        assert!(
            text.contains("test error of the kernel machine:   accuracy"),
            "{text}"
        );
        let spec = Spec::from_path(&spec).unwrap();
        let o = run_on(
            &spec,
            Dataset::resolve(&spec, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap(),
        );
        study::assert_tight_identity(&o, 0.1);
    }
}
