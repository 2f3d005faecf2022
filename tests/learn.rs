//! The kernel learners of SPEC §13 (proofs.md C29-C31): kernel ridge
//! regression equals the closed-form ridge regression of the features that
//! make the kernel; its leave-one-out formula equals refitting without each
//! point; λ → 0 interpolates; and with a linear model the path kernel with
//! fixed coefficients is the network at every T.
use nalgebra::{DMatrix, DVector};
use pathkernel::data::Dataset;
use pathkernel::experiment::Experiment;
use pathkernel::learn::{self, LearnReport, Predictor, krr::Krr};
use pathkernel::replay::RunRecord;
use pathkernel::spec::{Format, Spec};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{Value, json};
use std::path::Path;

const EPS: f64 = f64::EPSILON;

fn normal_matrix(rows: usize, cols: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    DMatrix::from_fn(rows, cols, |_, _| StandardNormal.sample(&mut rng))
}

/// κ(K + λ I) from the eigenvalues of the symmetric K.
fn condition(k: &DMatrix<f64>, ridge: f64) -> f64 {
    let s = k.clone().symmetric_eigenvalues();
    let (lo, hi) = (s.min().max(0.0), s.max());
    (hi + ridge) / (lo + ridge)
}

fn run_learn(spec: &Value) -> (Experiment, LearnReport) {
    let spec = Spec::parse(&spec.to_string(), Format::Json).unwrap();
    let data = Dataset::resolve(&spec, Path::new(".")).unwrap();
    let exp = Experiment::new(spec, data);
    let out = exp.run(&mut |_| {}).unwrap();
    let report = learn::learn(&RunRecord::of_run(&exp, &out), None).unwrap();
    (exp, report)
}

fn predictor<'a>(r: &'a LearnReport, name: &str) -> &'a Predictor {
    r.predictors.iter().find(|p| p.name == name).unwrap()
}

/// C29 (a): KRR with the linear model's tangent kernel K = J Jᵀ, J = [X, 1],
/// is ridge regression on J: J_q Jᵀ (J Jᵀ + λ I)⁻¹ y = J_q (Jᵀ J + λ I)⁻¹ Jᵀ y.
/// Both sides are backward-stable solves of systems with condition number
/// at most κ = κ(J Jᵀ + λ I) (Jᵀ J + λ I has the same nonzero spectrum plus
/// λ), so each is within about n κ ε of the exact value relative to
/// |J_q| |w|; the bound allows 16 n κ ε |J_q|_1 |w|_∞.
#[test]
fn krr_with_the_linear_kernel_is_closed_form_ridge_regression() {
    let spec = json!({"seed": 5,
        "data": {"source": "synthetic", "function": "sine", "n_train": 12, "n_test": 6,
                 "dim": 3, "noise": 0.1},
        "model": {"arch": "linear"}, "loss": {"kind": "squared"}, "reduction": "mean",
        "flow": {"t_end": 2.0, "method": "rk4", "step": 0.1}});
    let (exp, report) = run_learn(&spec);
    let features = |x: &DMatrix<f64>| x.clone().insert_column(x.ncols(), 1.0);
    let (j, jq) = (features(&exp.data.train_x), features(&exp.data.test_x));
    let y = DVector::from_column_slice(exp.data.train_y.as_slice());
    // The primal ridge regression (Jᵀ J + λ I)⁻¹ Jᵀ y.
    let primal_ridge = |j: &DMatrix<f64>, y: &DVector<f64>, ridge: f64| {
        let d = j.ncols();
        (j.transpose() * j + DMatrix::identity(d, d) * ridge)
            .lu()
            .solve(&(j.transpose() * y))
            .unwrap()
    };
    for name in ["krr_tangent_kernel0", "krr_tangent_kernel_end"] {
        let p = predictor(&report, name);
        let ridge = p.ridge.unwrap();
        let w = primal_ridge(&j, &y, ridge);
        let want = &jq * &w;
        let kappa = condition(&(&j * j.transpose()), ridge);
        let n = j.nrows() as f64;
        for (q, (got, want)) in p.predictions.flatten().iter().zip(want.iter()).enumerate() {
            let scale = jq.row(q).abs().sum() * w.amax();
            let bound = 16.0 * n * kappa * EPS * scale;
            assert!(
                (got - want).abs() <= bound,
                "{name} q {q}: {got} vs {want}, bound {bound:e}"
            );
        }
    }
    // The tool's own K^g of the linear model (a replay at the training and
    // query points) at fixed ridges, where κ(J Jᵀ + λ I) ≤ (s_max + λ)/λ is
    // small and the same bound tight.
    let n = j.nrows();
    let record = RunRecord::of_run(&exp, &exp.run(&mut |_| {}).unwrap());
    let mut stacked = DMatrix::zeros(n + jq.nrows(), j.ncols() - 1);
    stacked.rows_mut(0, n).copy_from(&exp.data.train_x);
    stacked.rows_mut(n, jq.nrows()).copy_from(&exp.data.test_x);
    let replay_exp = pathkernel::replay::experiment(&record, stacked, None).unwrap();
    let replayed = pathkernel::replay::replay(&replay_exp, &record.step_sizes).unwrap();
    let k_train = replayed.tangent_kernel0.rows(0, n).into_owned();
    let fit = Krr::new(&k_train, y.as_slice(), 1);
    let top = k_train.symmetric_eigenvalues().max();
    for fraction in [1e-3, 1e-1, 1.0] {
        let ridge = top * fraction;
        let got = replayed.tangent_kernel0.rows(n, jq.nrows()) * fit.alpha(ridge);
        let w = primal_ridge(&j, &y, ridge);
        let want = &jq * &w;
        let rho = (top + ridge) / ridge;
        for q in 0..jq.nrows() {
            let bound = 16.0 * n as f64 * rho * EPS * jq.row(q).abs().sum() * w.amax();
            assert!(
                (got[q] - want[q]).abs() <= bound,
                "ridge {ridge:e} q {q}: {} vs {}, bound {bound:e}",
                got[q],
                want[q]
            );
        }
    }
}

/// Refits without each point's C rows: the brute-force leave-one-out.
fn brute_force_loo(k: &DMatrix<f64>, y: &[f64], group: usize, ridge: f64) -> Vec<f64> {
    let n = y.len();
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(group) {
        let keep: Vec<usize> = (0..n)
            .filter(|r| !(start..start + group).contains(r))
            .collect();
        let kk = DMatrix::from_fn(keep.len(), keep.len(), |a, b| k[(keep[a], keep[b])])
            + DMatrix::identity(keep.len(), keep.len()) * ridge;
        let yy = DVector::from_iterator(keep.len(), keep.iter().map(|&r| y[r]));
        let alpha = kk.lu().solve(&yy).unwrap();
        for r in start..start + group {
            let pred: f64 = keep
                .iter()
                .zip(alpha.iter())
                .map(|(&c, a)| k[(r, c)] * a)
                .sum();
            out.push(y[r] - pred);
        }
    }
    out
}

proptest! {
    #![proptest_config(crate::cases(48))]

    /// C29 (b): the closed-form grouped leave-one-out residual
    /// (I − H_GG)⁻¹ (y − H y)_G equals refitting without G, on Gram kernels
    /// of any rank, groups of C = 1..3 rows, ridges over the grid's upper
    /// part. With ρ = (s_max + λ)/λ ≥ κ(K + λ I): the brute force solves
    /// systems of condition number at most ρ (removing rows keeps the
    /// spectrum within [λ, s_max + λ]) and multiplies by K, which moves its
    /// error by up to s_max/λ ≤ ρ more; the formula forms y − H y, an
    /// absolute error of about n ε |y|, and divides by I − H_GG, whose
    /// eigenvalues are at least λ/(s_max + λ) = 1/ρ. So the difference is at
    /// most about n ρ² ε |y|; the bound allows 16 n ρ² ε |y|_∞.
    #[test]
    fn loo_formula_equals_brute_force(
        points in 2usize..7, c in 1usize..4, rank in 1usize..12,
        ridge_exp in -4.0..1.0f64, seed in any::<u64>(),
    ) {
        let n = points * c;
        let g = normal_matrix(n, rank, seed);
        let k = &g * g.transpose();
        let y: Vec<f64> = normal_matrix(n, 1, seed ^ 1).iter().copied().collect();
        let fit = Krr::new(&k, &y, c);
        let top = k.clone().symmetric_eigenvalues().max().max(1e-300);
        let ridge = top * 10f64.powf(ridge_exp);
        let formula = fit.loo_residuals(ridge).unwrap();
        let brute = brute_force_loo(&k, &y, c, ridge);
        let rho = (top + ridge) / ridge;
        let ymax = y.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let bound = 16.0 * n as f64 * rho * rho * EPS * ymax;
        for (i, (a, b)) in formula.iter().zip(&brute).enumerate() {
            prop_assert!((a - b).abs() <= bound, "row {i}: {a} vs {b}, bound {bound:e}");
        }
    }
}

/// C29 (c): on an invertible kernel, λ = 0 interpolates: K α = y to
/// within the solve's backward error, 16 n κ ε |y|_∞ (K α = V S S⁻¹ Vᵀ y
/// with rounding in V and S⁻¹ relative to κ).
#[test]
fn ridge_zero_on_an_invertible_kernel_interpolates() {
    for (n, seed) in [(5, 1), (9, 2), (16, 3)] {
        let g = normal_matrix(n, n + 3, seed);
        let k = &g * g.transpose();
        let y: Vec<f64> = normal_matrix(n, 1, seed + 100).iter().copied().collect();
        let fit = Krr::new(&k, &y, 1);
        let fitted = &k * fit.alpha(0.0);
        let kappa = condition(&k, 0.0);
        let ymax = y.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let bound = 16.0 * n as f64 * kappa * EPS * ymax;
        for (i, (f, t)) in fitted.iter().zip(&y).enumerate() {
            assert!(
                (f - t).abs() <= bound,
                "n {n} row {i}: {f} vs {t}, bound {bound:e}"
            );
        }
        // and the fitted values H y of the formula tend to y as λ → 0
        let h = fit.fitted(1e-12 * k.amax());
        for (f, t) in h.iter().zip(&y) {
            assert!((f - t).abs() <= 1e-6 * ymax, "{f} vs {t}");
        }
    }
}

/// The grid's choice is the least leave-one-out error among its ridges.
#[test]
fn the_chosen_ridge_has_the_least_loo_error_on_the_grid() {
    let g = normal_matrix(10, 4, 9);
    let k = &g * g.transpose();
    let y: Vec<f64> = normal_matrix(10, 1, 10).iter().copied().collect();
    let fit = Krr::new(&k, &y, 1);
    let choice = fit.select();
    assert_eq!(fit.grid().len(), learn::krr::GRID);
    for ridge in fit.grid() {
        assert!(choice.loo_mse <= fit.loo_mse(ridge));
    }
    assert!(fit.grid().contains(&choice.ridge));
}

proptest! {
    #![proptest_config(crate::cases(24))]

    /// C30: with a linear model, K^g is constant, so the theorem's a_i(x) =
    /// (1/T) ∫ −l'_i dt does not depend on x, the least-squares a* is that
    /// a, and the path kernel with fixed coefficients is the kernel machine,
    /// which (C9 (d)) is the network to rounding: at every T, every method.
    /// Bound (proofs.md C30): 8 (S K + N + 4) ε scale, S the stages, K the
    /// steps, scale = |f(w0; q)| + |f(w_T; q)| + Σ_i |A_i(q)| plus the
    /// rounding of w, |J_q|_1 max |w| over w0 and w_T (proofs.md 3.5).
    #[test]
    fn a_linear_model_is_its_fixed_coefficient_kernel_machine(
        n in 2usize..7, d in 1usize..4, t_end in 0.1..5.0f64,
        method in prop_oneof![Just("gd"), Just("rk4"), Just("dopri5")],
        seed in 0u64..1000, c in 1usize..3,
    ) {
        let k = 16.0;
        let flow = match method {
            "dopri5" => json!({"t_end": t_end, "method": "dopri5", "rtol": 1e-8, "atol": 1e-10}),
            "gd" => json!({"t_end": t_end, "method": "gd", "lr": t_end / k}),
            m => json!({"t_end": t_end, "method": m, "step": t_end / k}),
        };
        let spec = json!({"seed": seed,
            "data": {"source": "synthetic", "function": "linear", "n_train": n, "n_test": 4,
                     "dim": d, "noise": 0.3},
            "model": {"arch": "linear"}, "loss": {"kind": "squared"},
            "reduction": "mean", "flow": flow});
        let mut spec = Spec::parse(&spec.to_string(), Format::Json).unwrap();
        let mut data = Dataset::resolve(&spec, Path::new(".")).unwrap();
        if c > 1 {
            spec.model = spec.model.clone().with_outputs(c);
            // C targets per point: the first and its negative, shifted.
            data.train_y = DMatrix::from_fn(n, c, |i, k| data.train_y[(i, 0)] * (1.0 - 2.0 * k as f64) + k as f64);
        }
        let exp = Experiment::new(spec, data);
        let out = exp.run(&mut |_| {}).unwrap();
        let report = learn::learn(&RunRecord::of_run(&exp, &out), None).unwrap();
        let fixed = predictor(&report, "fixed_coefficients").predictions.flatten();
        let network = predictor(&report, "network").predictions.flatten();
        let stages = if method == "dopri5" { 7.0 } else if method == "rk4" { 4.0 } else { 1.0 };
        let gamma = 8.0 * (stages * out.stats.steps as f64 + n as f64 + 4.0) * EPS;
        let jq = exp.data.test_x.clone().insert_column(d, 1.0);
        let w_size = |w: &[f64]| w.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        let w_max = w_size(&exp.w0).max(w_size(&out.w_end));
        for q in 0..network.len() {
            let coef_mass: f64 = out.coef_integral.row(q).iter().map(|a| a.abs()).sum();
            let scale = out.y0[q].abs() + out.y_end[q].abs() + coef_mass
                + jq.row(q / c).abs().sum() * w_max;
            prop_assert!((fixed[q] - network[q]).abs() <= gamma * scale,
                "{method} T {t_end} q {q}: {} vs {}, bound {:e}", fixed[q], network[q], gamma * scale);
        }
    }
}

/// `learn` on a report file: the table names every predictor, the JSON
/// holds the same numbers, and a bad report exits 2 with one message.
#[test]
fn learn_command_prints_the_table_and_writes_the_json() {
    use crate::common::assert_fails;
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({"seed": 2,
        "data": {"source": "dataset", "name": "iris", "n_train": 30, "n_test": 12, "labels": "index"},
        "model": {"arch": "mlp", "hidden": [6], "activation": "tanh", "outputs": 3},
        "loss": {"kind": "cross_entropy"}, "reduction": "mean",
        "flow": {"t_end": 2.0, "method": "dopri5", "rtol": 1e-6, "atol": 1e-8}});
    let s = dir.path().join("s.json");
    std::fs::write(&s, spec.to_string()).unwrap();
    let r = dir.path().join("r.json");
    let bin = env!("CARGO_BIN_EXE_pathkernel");
    let run = Command::new(bin)
        .args(["run", s.to_str().unwrap(), "--out", r.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success());
    let l = dir.path().join("l.json");
    let out = Command::new(bin)
        .args(["learn", r.to_str().unwrap(), "--out", l.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&l).unwrap()).unwrap();
    assert_eq!(
        json["krr_targets"],
        json!("one-hot rows of the class labels")
    );
    for p in json["predictors"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        assert!(table.contains(name), "{name} not in {table}");
        assert!(p["test_error"]["accuracy"].as_f64().is_some(), "{name}");
        assert_eq!(p["predictions"].as_array().unwrap().len(), 12);
    }
    let network = &json["predictors"][0];
    assert_eq!(network["max_distance_to_network"], json!(0.0));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&r).unwrap()).unwrap();
    assert_eq!(network["test_error"], report["test_error"]["model"]);
    let mut bad = report.clone();
    bad.as_object_mut().unwrap().remove("train_y");
    std::fs::write(&r, bad.to_string()).unwrap();
    let out = Command::new(bin)
        .args(["learn", r.to_str().unwrap()])
        .output()
        .unwrap();
    assert_fails(&out, 2, &["r.json: train_y", "missing"]);
}

/// `learn`'s replay keeps each training point once on the tape and reads
/// the kernel's training rows from it (`Experiment::training_queries`);
/// it must give what the plain replay with the training points stacked
/// into the query points gives, bit for bit: the same products over the
/// same rows (w never reads the query points; each kernel entry is its own
/// dot product of the same factors). Adaptive dopri5 and gd, C = 1 and 3.
#[test]
fn training_queries_equal_stacking_the_training_points() {
    let sine =
        json!({"source": "synthetic", "function": "sine", "n_train": 7, "n_test": 3, "dim": 2});
    let iris =
        json!({"source": "dataset", "name": "iris", "n_train": 7, "n_test": 3, "labels": "index"});
    for (flow, data, outputs, loss) in [
        (
            json!({"t_end": 1.0, "method": "dopri5", "rtol": 1e-6, "atol": 1e-8}),
            sine,
            1,
            "squared",
        ),
        (
            json!({"t_end": 0.5, "method": "gd", "lr": 0.05}),
            iris,
            3,
            "cross_entropy",
        ),
    ] {
        let spec = json!({"seed": 4, "data": data,
            "model": {"arch": "mlp", "hidden": [5, 4], "activation": "tanh", "outputs": outputs},
            "loss": {"kind": loss}, "flow": flow});
        let spec = Spec::parse(&spec.to_string(), Format::Json).unwrap();
        let data = Dataset::resolve(&spec, Path::new(".")).unwrap();
        let run = Experiment::new(spec.clone(), data.clone());
        let steps = run.run(&mut |_| {}).unwrap().step_sizes;
        let mut shared = Experiment::new(spec.clone(), data.clone());
        shared.training_queries = true;
        let mut stacked_data = data.clone();
        stacked_data.test_x = DMatrix::from_fn(10, data.dim(), |r, c| {
            if r < 7 {
                data.train_x[(r, c)]
            } else {
                data.test_x[(r - 7, c)]
            }
        });
        let stacked = Experiment::new(spec, stacked_data);
        let (a, b) = (
            shared.replay(&steps, &mut |_| {}).unwrap(),
            stacked.replay(&steps, &mut |_| {}).unwrap(),
        );
        let bits = |m: &[f64]| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.w_end), bits(&b.w_end));
        assert_eq!(bits(&a.y0), bits(&b.y0));
        assert_eq!(bits(&a.y_end), bits(&b.y_end));
        assert_eq!(
            bits(a.path_kernel.as_slice()),
            bits(b.path_kernel.as_slice())
        );
        assert_eq!(
            bits(a.coef_integral.as_slice()),
            bits(b.coef_integral.as_slice())
        );
        assert_eq!(
            bits(a.tangent_kernel0.as_slice()),
            bits(b.tangent_kernel0.as_slice())
        );
        assert_eq!(
            bits(a.tangent_kernel_end.as_slice()),
            bits(b.tangent_kernel_end.as_slice())
        );
    }
}
