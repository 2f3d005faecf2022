//! Model evaluation and gradients on arbitrary small architectures.
use super::Num;
use super::spec::run_checked;
use crate::activation::Activation;
use crate::kernel::KernelPlan;
use crate::model::{self, reference};
use crate::spec::{ModelSpec, Parameterization};
use arbitrary::{Arbitrary, Unstructured};
use nalgebra::DMatrix;
use num_dual::Dual64;

#[derive(Arbitrary, Debug)]
enum Arch {
    Linear,
    Mlp {
        hidden: Vec<u8>,
        activation: u8,
        bias: bool,
        ntk: bool,
    },
    Resmlp {
        width: u8,
        blocks: u8,
        activation: u8,
    },
    DiagLinear,
}

impl Arch {
    /// The architecture at small sizes: up to 3 hidden layers of width
    /// 1..=5, a residual width 1..=4 with up to 2 blocks.
    fn spec(&self) -> ModelSpec {
        let act = |a: u8| Activation::ALL[a as usize % Activation::ALL.len()];
        match *self {
            Arch::Linear => ModelSpec::Linear {
                init_scale: 1.0,
                outputs: 1,
            },
            Arch::Mlp {
                ref hidden,
                activation,
                bias,
                ntk,
            } => ModelSpec::Mlp {
                hidden: hidden.iter().take(3).map(|h| 1 + *h as usize % 5).collect(),
                activation: act(activation),
                bias,
                parameterization: if ntk {
                    Parameterization::Ntk
                } else {
                    Parameterization::Standard
                },
                init_scale: 1.0,
                outputs: 1,
            },
            Arch::Resmlp {
                width,
                blocks,
                activation,
            } => ModelSpec::Resmlp {
                width: 1 + width as usize % 4,
                blocks: blocks as usize % 3,
                activation: act(activation),
                init_scale: 1.0,
                outputs: 1,
            },
            Arch::DiagLinear => ModelSpec::DiagLinear { init_scale: 1.0 },
        }
    }
}

/// Relative rounding allowed between the batched reverse mode and the
/// per-example forward mode: both evaluate the same sums of products in
/// other orders, each within γ_n ≈ n u of the sum of absolute terms (n <
/// 50 terms a sum here, through at most 7 layers); 1e-11 of the largest
/// intermediate magnitude covers that with room.
const ROUNDING: f64 = 1e-11;

/// Property: for any small architecture with weights and inputs in
/// [-4, 4], the outputs, the per-example gradients (as weighted sums) and
/// the tangent kernel are finite and equal the dual-number forward mode of
/// `model::reference` to rounding (away from relu kinks, where rounding
/// may pick either one-sided derivative). With any finite weights and inputs
/// (values past 1e300 included), evaluation does not panic, and a one-step
/// run of that model on those points ends in a finite report or a typed
/// error (an overflow is reported as a diverged flow, never a panic). The
/// same holds for the architecture with C = 2 or 3 outputs (SPEC §8), drawn
/// from the bytes left after the one-output case, so that inputs found
/// before vector outputs existed still decode to the same first case.
pub fn model_eval(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(arch), Ok(dim), Ok(rows), Ok(wild)) = (
        Arch::arbitrary(&mut u),
        u.int_in_range(1usize..=4),
        u.int_in_range(1usize..=4),
        bool::arbitrary(&mut u),
    ) else {
        return;
    };
    let spec = arch.spec();
    check_model(&spec, dim, rows, wild, &mut u);
    if u.is_empty() {
        return;
    }
    let Ok(c) = u.int_in_range(2usize..=3) else {
        return;
    };
    if let ModelSpec::DiagLinear { .. } = spec {
        return;
    }
    let spec = spec.with_outputs(c);
    check_model(&spec, dim, rows, wild, &mut u);
}

/// [`model_eval`]'s property for one architecture, drawing its weights and
/// inputs from `u`.
fn check_model(spec: &ModelSpec, dim: usize, rows: usize, wild: bool, u: &mut Unstructured<'_>) {
    let spec = spec.clone();
    let outputs = spec.outputs();
    let m = model::build(&spec, dim);
    assert_eq!(
        m.n_params(),
        spec.n_params(dim),
        "P differs from the spec's"
    );
    let mut draw = || -> f64 {
        if wild {
            Num::arbitrary(u).map_or(0.0, Num::finite)
        } else {
            f64::from(u.arbitrary::<i8>().unwrap_or(0)) / 32.0
        }
    };
    let w: Vec<f64> = (0..m.n_params()).map(|_| draw()).collect();
    let x = DMatrix::from_fn(rows, dim, |_, _| draw());
    if std::env::var_os(super::SHOW).is_some() {
        eprintln!("{spec:?} on {x} with w = {w:?}");
    }
    let mut tape = m.tape(&x);
    m.forward(&w, &mut tape);
    m.backward(&w, &mut tape);
    let plan = KernelPlan::new(m.as_ref());
    let mut scratch = plan.scratch(&tape, rows * rows, rows);
    // The gradient of output k of example r at index r C + k.
    let mut grads = vec![vec![0.0; m.n_params()]; rows * outputs];
    for (r, g) in grads.iter_mut().enumerate() {
        let mut c = vec![0.0; rows * outputs];
        c[r] = 1.0;
        plan.weighted_gradient(&tape, 0..rows, &c, 1.0, &mut scratch, g);
    }
    let mut kernel = vec![0.0; rows * rows * outputs * outputs];
    plan.tangent_kernel(
        &tape,
        0..rows,
        &tape,
        0..rows,
        &mut scratch,
        None,
        &mut kernel,
    );
    if wild {
        return run_one_step(&spec, &w, &x);
    }
    let all = tape
        .output
        .iter()
        .chain(grads.iter().flatten())
        .chain(&kernel);
    assert!(
        all.clone().all(|v| v.is_finite()),
        "non-finite at moderate values"
    );
    // The largest magnitude any sum passes through: a layer's W u (at most
    // 5 terms of |w| |u|), a δ = Wᵀ δ' ∘ σ' (5 terms of |w| |δ'|, |σ'| <= 1.1)
    // times the u it meets in a gradient entry.
    let wmax = w.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    let largest = |ms: &[DMatrix<f64>]| ms.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
    let (umax, dmax) = (largest(&tape.inputs), largest(&tape.deltas));
    // At a relu kink (z = 0 in exact arithmetic) rounding picks the
    // derivative, 0 or 1, differently in the two modes: both are valid
    // choices, so such points are not compared.
    let near_kink = |z: &DMatrix<f64>| z.iter().any(|z| z.abs() <= 1e-9 * (1.0 + umax * wmax));
    if m.kink_preactivations(&tape).into_iter().any(near_kink) {
        return run_one_step(&spec, &w, &x);
    }
    let xr: Vec<Vec<f64>> = x.row_iter().map(|r| r.iter().copied().collect()).collect();
    let wd: Vec<Dual64> = w.iter().map(|&v| v.into()).collect();
    let refs: Vec<Vec<f64>> = xr
        .iter()
        .flat_map(|x| reference::gradients(&spec, &w, x))
        .collect();
    let fs: Vec<f64> = xr
        .iter()
        .flat_map(|x| reference::outputs(&spec, &wd, x))
        .map(|f| f.re)
        .collect();
    let n = rows * outputs;
    for r in 0..n {
        let f = fs[r];
        let got_f = tape.output[(r / outputs, r % outputs)];
        let gmax = refs[r].iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let scale = [
            f.abs(),
            gmax,
            5.0 * wmax * umax * dmax,
            5.0 * umax * wmax,
            1e-300,
        ]
        .into_iter()
        .fold(0.0, f64::max);
        let tol = ROUNDING * scale;
        assert!(
            (got_f - f).abs() <= tol,
            "row {} output {}: f {got_f} vs {f}",
            r / outputs,
            r % outputs
        );
        for (p, (a, b)) in grads[r].iter().zip(&refs[r]).enumerate() {
            assert!(
                (a - b).abs() <= tol,
                "row {r} param {p}: reverse {a} forward {b}"
            );
        }
        for (c, gc) in refs.iter().enumerate() {
            let want: f64 = refs[r].iter().zip(gc).map(|(a, b)| a * b).sum();
            let abs: f64 = refs[r].iter().zip(gc).map(|(a, b)| (a * b).abs()).sum();
            let l1 = |g: &[f64]| g.iter().map(|v| v.abs()).sum::<f64>();
            // The kernel of the computed gradients, each entry within tol:
            // (g + e)·(g' + e') errs by tol (|g|_1 + |g'|_1) + P tol², and
            // its own sums by ROUNDING of the absolute terms.
            let p = refs[r].len() as f64;
            let ktol = ROUNDING * abs + tol * (l1(&refs[r]) + l1(gc)) + p * tol * tol;
            let got = kernel[r + c * n];
            assert!(
                (got - want).abs() <= ktol,
                "K[{r}][{c}] = {got}, forward mode {want}"
            );
        }
    }
    run_one_step(&spec, &w, &x);
}

/// One gd step of the model from w on the points (train and query, targets 0).
fn run_one_step(spec: &ModelSpec, w: &[f64], x: &DMatrix<f64>) {
    let rows: Vec<Vec<f64>> = x.row_iter().map(|r| r.iter().copied().collect()).collect();
    let targets = match spec.outputs() {
        1 => serde_json::json!(vec![0.0; rows.len()]),
        c => serde_json::json!(vec![vec![0.0; c]; rows.len()]),
    };
    let text = serde_json::json!({
        "data": {"source": "inline", "train_x": rows, "train_y": targets,
                 "test_x": rows},
        "model": spec,
        "init": {"w0": w},
        "loss": {"kind": "squared"},
        "flow": {"t_end": 0.001, "method": "gd", "lr": 0.001}
    })
    .to_string();
    run_checked(&text);
}
