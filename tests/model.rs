//! Claim C1 (proofs.md): the batched reverse-mode gradients and the factored
//! tangent kernel equal forward mode (dual numbers) on every architecture,
//! with C in {1, 2, 3, 5} outputs (SPEC §8: each C x C block against
//! J_q J_xᵀ).
use approx::assert_abs_diff_eq;
use nalgebra::DMatrix;
use pathkernel::activation::Activation;
use pathkernel::kernel::KernelPlan;
use pathkernel::model::{self, reference};
use pathkernel::spec::{ModelSpec, Parameterization};
use pathkernel::strategies::{self, ModelRanges};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

/// Every architecture of SPEC §3 at small sizes, every activation.
pub fn arch_strategy() -> BoxedStrategy<ModelSpec> {
    strategies::model_spec(&ModelRanges::gradient_checks())
}

fn normal(rng: &mut ChaCha20Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// Weights of scale `w_scale` and inputs in N(0,1), from a seed.
fn draw(p: usize, rows: usize, dim: usize, w_scale: f64, seed: u64) -> (Vec<f64>, DMatrix<f64>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let w = (0..p).map(|_| w_scale * normal(&mut rng)).collect();
    let x = DMatrix::from_fn(rows, dim, |_, _| normal(&mut rng));
    (w, x)
}

/// Rounding bound for comparing two evaluations of the same sum-of-products
/// expression in different orders: each has relative error at most
/// γ_n ≈ n ε in terms of the sum of absolute terms; with n ≤ 100 terms per
/// entry here and a factor of 100 for the depth of the composition, 1e-12
/// of the scale bounds it for weights of scale at most 1.
pub const ROUNDING: f64 = 1e-12;

/// How much larger the sum of absolute terms of a gradient entry can be
/// than the entry itself: through each weight layer on the longest path the
/// product of absolute values can outgrow the signed product by up to the
/// weight scale, so the bound above is multiplied by max(1, scale)^layers.
/// (Found needed by a deep run: a resmlp of 2 blocks, sin, weights of scale
/// 3, differed by 1.5e-12 relative, within 3^6 · 1e-12.)
pub fn conditioning(spec: &ModelSpec, w_scale: f64) -> f64 {
    let layers = match spec {
        ModelSpec::Linear { .. } | ModelSpec::DiagLinear { .. } => 1,
        ModelSpec::Mlp { hidden, .. } => hidden.len() + 1,
        ModelSpec::Resmlp { blocks, .. } => 2 * blocks + 2,
        ModelSpec::Layers { layers, .. } => layers.len(),
    };
    w_scale.max(1.0).powi(layers as i32)
}

proptest! {
    #![proptest_config(crate::cases(64))]

    /// C1: f, ∇f and the weighted gradient of the batched model equal the
    /// per-example dual-number reference.
    #[test]
    fn reverse_mode_equals_forward_mode(spec in arch_strategy(), dim in 1usize..4, rows in 1usize..5,
                                        w_scale in prop_oneof![Just(0.5), Just(3.0)], seed in any::<u64>()) {
        let m = model::build(&spec, dim);
        let (w, x) = draw(m.n_params(), rows, dim, w_scale, seed);
        let mut tape = m.tape(&x);
        m.forward(&w, &mut tape);
        m.backward(&w, &mut tape);
        let plan = KernelPlan::new(m.as_ref());
        let mut scratch = plan.scratch(&tape, rows * rows, rows);
        let outputs = spec.outputs();
        let xr: Vec<Vec<f64>> = (0..rows).map(|r| x.row(r).iter().copied().collect()).collect();
        // The gradient of output k of example r at index r C + k.
        let jac: Vec<Vec<f64>> = xr.iter().flat_map(|x| reference::gradients(&spec, &w, x)).collect();
        let scale = conditioning(&spec, w_scale) * jac.iter().flatten().fold(1e-300f64, |a, g| a.max(g.abs()));
        let wd: Vec<num_dual::Dual64> = w.iter().map(|&v| v.into()).collect();
        for r in 0..rows * outputs {
            let f = reference::outputs(&spec, &wd, &xr[r / outputs])[r % outputs].re;
            let got = tape.output[(r / outputs, r % outputs)];
            assert_abs_diff_eq!(got, f, epsilon = ROUNDING * f.abs().max(scale));
            // The gradient of one example's output: weights e_r.
            let mut c = vec![0.0; rows * outputs];
            c[r] = 1.0;
            let mut g = vec![0.0; m.n_params()];
            plan.weighted_gradient(&tape, 0..rows, &c, 1.0, &mut scratch, &mut g);
            for (p, (&a, &b)) in g.iter().zip(&jac[r]).enumerate() {
                prop_assert!((a - b).abs() <= ROUNDING * scale, "param {p}: reverse {a} forward {b}");
            }
        }
        // A weighted sum over the batch and outputs, with alpha.
        let c: Vec<f64> = (0..rows * outputs).map(|r| 1.0 - 0.5 * r as f64).collect();
        let mut g = vec![0.0; m.n_params()];
        plan.weighted_gradient(&tape, 0..rows, &c, -2.0, &mut scratch, &mut g);
        let big = c.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        for p in 0..m.n_params() {
            let want: f64 = -2.0 * (0..rows * outputs).map(|r| c[r] * jac[r][p]).sum::<f64>();
            prop_assert!((g[p] - want).abs() <= ROUNDING * 4.0 * big * (rows * outputs) as f64 * scale);
        }
    }

    /// C1: the factored tangent kernel equals J_a J_bᵀ from forward mode,
    /// also across two parameter vectors (the cross kernel of the exact path kernel).
    #[test]
    fn factored_kernel_equals_jacobian_product(spec in arch_strategy(), dim in 1usize..4, na in 1usize..4,
                                               nb in 1usize..4, seed in any::<u64>()) {
        kernel_matches_forward_mode(&spec, dim, na, nb, seed)?;
    }
}

/// The check of `factored_kernel_equals_jacobian_product` for one case.
fn kernel_matches_forward_mode(
    spec: &ModelSpec,
    dim: usize,
    na: usize,
    nb: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let m = model::build(spec, dim);
    let (wa, xa) = draw(m.n_params(), na, dim, 1.0, seed);
    let (wb, xb) = draw(m.n_params(), nb, dim, 1.0, seed ^ 0x9e37);
    let (mut ta, mut tb) = (m.tape(&xa), m.tape(&xb));
    for (w, t) in [(&wa, &mut ta), (&wb, &mut tb)] {
        m.forward(w, t);
        m.backward(w, t);
    }
    let plan = KernelPlan::new(m.as_ref());
    let c = spec.outputs();
    let mut scratch = plan.scratch(&ta, na * nb, 0);
    let mut k = vec![0.0; na * nb * c * c];
    plan.tangent_kernel(&ta, 0..na, &tb, 0..nb, &mut scratch, None, &mut k);
    // Row r C + k: ∇ f_k(x_r), so J_a J_bᵀ is the (na C) x (nb C) kernel.
    let ja: Vec<Vec<f64>> = (0..na)
        .flat_map(|r| {
            reference::gradients(
                spec,
                &wa,
                xa.row(r).iter().copied().collect::<Vec<_>>().as_slice(),
            )
        })
        .collect();
    let jb: Vec<Vec<f64>> = (0..nb)
        .flat_map(|r| {
            reference::gradients(
                spec,
                &wb,
                xb.row(r).iter().copied().collect::<Vec<_>>().as_slice(),
            )
        })
        .collect();
    let (na, nb) = (na * c, nb * c);
    for i in 0..na {
        for j in 0..nb {
            let want: f64 = ja[i].iter().zip(&jb[j]).map(|(a, b)| a * b).sum();
            let scale: f64 = ja[i]
                .iter()
                .zip(&jb[j])
                .map(|(a, b)| (a * b).abs())
                .sum::<f64>()
                .max(1e-300);
            prop_assert!(
                (k[i + na * j] - want).abs() <= ROUNDING * scale,
                "K[{i},{j}] = {} want {want}",
                k[i + na * j]
            );
        }
    }
    Ok(())
}

/// The resmlp output layer's δ ≡ 1 (index 2B + 1, which the kernel's fast
/// path skips) at depths beyond the strategy's 0..3 blocks: a wrong index
/// formula can agree with 2B + 1 up to B = 2 and pick a real δ after.
#[test]
fn deep_resmlp_kernel_equals_jacobian_product() {
    for blocks in [3, 4] {
        let spec = ModelSpec::Resmlp {
            width: 2,
            blocks,
            activation: Activation::Tanh,
            init_scale: 1.0,
            outputs: 1,
        };
        kernel_matches_forward_mode(&spec, 2, 3, 2, blocks as u64).unwrap();
    }
}

/// The layouts of SPEC §3: init is zero where SPEC says (biases), draws the
/// stated variance elsewhere, and diag_linear starts at u = v = alpha.
#[test]
fn init_follows_the_layout() {
    let spec = ModelSpec::Mlp {
        hidden: vec![300],
        activation: Activation::Tanh,
        bias: true,
        parameterization: Parameterization::Standard,
        init_scale: 2.0,
        outputs: 1,
    };
    let m = model::build(&spec, 50);
    let w = m.init(&mut ChaCha20Rng::seed_from_u64(3));
    assert_eq!(w.len(), 50 * 300 + 300 + 300 + 1);
    let w1 = &w[..15000];
    assert!(w[15000..15300].iter().all(|&b| b == 0.0));
    assert_eq!(w[w.len() - 1], 0.0);
    // Sample variance of 15000 N(0, 4/50) draws: relative standard error sqrt(2/15000) ≈ 0.012; allow 5 of them.
    let var = w1.iter().map(|v| v * v).sum::<f64>() / w1.len() as f64;
    approx::assert_relative_eq!(var, 4.0 / 50.0, max_relative = 0.06);
    let d = model::build(&ModelSpec::DiagLinear { init_scale: 0.3 }, 4);
    assert_eq!(d.init(&mut ChaCha20Rng::seed_from_u64(0)), vec![0.3; 8]);
}

/// `is_smooth` is what a report's `conditions.model_smooth` states: false
/// exactly when some hidden unit has a kinked activation (relu,
/// leaky_relu); a model with no hidden unit (hidden [], resmlp with 0
/// blocks, diag_linear) is smooth whatever activation it names. The kink
/// tracker gets one pre-activation matrix per kinked layer, and each is the
/// z whose σ(z) the forward pass stored (compared exactly: the same `apply`).
#[test]
fn smoothness_and_kink_preactivations_follow_the_hidden_units() {
    let mlp = |hidden: Vec<usize>, activation| ModelSpec::Mlp {
        hidden,
        activation,
        bias: true,
        parameterization: Parameterization::Standard,
        init_scale: 1.0,
        outputs: 1,
    };
    let resmlp = |blocks, activation| ModelSpec::Resmlp {
        width: 3,
        blocks,
        activation,
        init_scale: 1.0,
        outputs: 1,
    };
    for act in Activation::ALL {
        let mut specs = vec![
            (mlp(vec![], act), 0),
            (mlp(vec![3, 4], act), 2),
            (resmlp(0, act), 0),
            (resmlp(2, act), 2),
        ];
        if act == Activation::Tanh {
            specs.push((ModelSpec::DiagLinear { init_scale: 1.0 }, 0));
        }
        for (spec, hidden_layers) in specs {
            let m = model::build(&spec, 2);
            let smooth = hidden_layers == 0 || act.is_smooth();
            assert_eq!(m.is_smooth(), smooth, "{spec:?}");
            let (w, x) = draw(m.n_params(), 5, 2, 1.0, 11);
            let mut tape = m.tape(&x);
            m.forward(&w, &mut tape);
            let kinks = m.kink_preactivations(&tape);
            assert_eq!(
                kinks.len(),
                if smooth { 0 } else { hidden_layers },
                "{spec:?}"
            );
            for z in kinks {
                let stored = tape.inputs.iter().any(|u| {
                    u.shape() == z.shape()
                        && u.iter().zip(z.iter()).all(|(&u, &z)| u == act.apply(z))
                });
                assert!(
                    stored,
                    "{spec:?}: a kink matrix is no layer's pre-activation"
                );
            }
        }
    }
}

/// resmlp's layout and init (SPEC §3): W_in, b_in, per block W_1, b_1, W_2,
/// b_2, then w_out, b_out; every matrix and w_out ~ N(0, s²/fan_in), biases 0.
#[test]
fn resmlp_init_follows_the_layout() {
    let (dim, width, s) = (40, 200, 2.0);
    let spec = ModelSpec::Resmlp {
        width,
        blocks: 1,
        activation: Activation::Tanh,
        init_scale: s,
        outputs: 1,
    };
    let m = model::build(&spec, dim);
    let w = m.init(&mut ChaCha20Rng::seed_from_u64(5));
    let sq = width * width;
    assert_eq!(w.len(), dim * width + width + 2 * (sq + width) + width + 1);
    assert_eq!(m.n_params(), w.len());
    let (w_in, rest) = w.split_at(dim * width);
    let (b_in, rest) = rest.split_at(width);
    let (w_1, rest) = rest.split_at(sq);
    let (b_1, rest) = rest.split_at(width);
    let (w_2, rest) = rest.split_at(sq);
    let (b_2, rest) = rest.split_at(width);
    let (w_out, b_out) = rest.split_at(width);
    for b in [b_in, b_1, b_2, b_out] {
        assert!(b.iter().all(|&v| v == 0.0));
    }
    // The sample variance of n N(0, σ²) draws has relative standard error
    // sqrt(2/n); allow 5 of them.
    let check = |draws: Vec<f64>, var: f64| {
        let n = draws.len() as f64;
        let got = draws.iter().map(|v| v * v).sum::<f64>() / n;
        approx::assert_relative_eq!(got, var, max_relative = 5.0 * (2.0 / n).sqrt());
    };
    check(w_in.to_vec(), s * s / dim as f64);
    check([w_1, w_2, w_out].concat(), s * s / width as f64);
}

/// C > 1 kernels are formed by column blocks of 2^14 entries, split between
/// threads (kernel.rs): a kernel of 150 x 240 entries spans three blocks,
/// and every entry still equals J_a J_bᵀ from forward mode.
#[test]
fn vector_kernel_spanning_several_column_blocks_equals_jacobian_product() {
    for spec in [
        ModelSpec::Mlp {
            hidden: vec![6, 5],
            activation: Activation::Tanh,
            bias: true,
            parameterization: Parameterization::Standard,
            init_scale: 1.0,
            outputs: 3,
        },
        ModelSpec::Resmlp {
            width: 4,
            blocks: 1,
            activation: Activation::Softplus,
            init_scale: 1.0,
            outputs: 3,
        },
    ] {
        kernel_matches_forward_mode(&spec, 2, 50, 80, 17).unwrap();
    }
}
