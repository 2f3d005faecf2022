//! A plain, per-example forward pass written straight from SPEC §3 over dual
//! numbers: the independent forward-mode reference that the batched reverse
//! mode of the models is checked against. Slow (one pass per parameter) and
//! never used by the engine.
use crate::spec::{ModelSpec, Parameterization};
use num_dual::Dual64;

/// f(w; x) with dual-number parameters, for a one-output model (the first
/// output of any other).
pub fn output(spec: &ModelSpec, w: &[Dual64], x: &[f64]) -> Dual64 {
    outputs(spec, w, x)[0]
}

/// The C outputs f_c(w; x) with dual-number parameters (SPEC §3, §8).
pub fn outputs(spec: &ModelSpec, w: &[Dual64], x: &[f64]) -> Vec<Dual64> {
    let c = spec.outputs();
    let x: Vec<Dual64> = x.iter().map(|&v| Dual64::from(v)).collect();
    let mut params = w.iter().copied();
    let mut take = |n: usize| -> Vec<Dual64> { params.by_ref().take(n).collect() };
    match *spec {
        ModelSpec::Linear { .. } => {
            let v = take(c * x.len());
            let b = take(c);
            (0..c)
                .map(|o| dot(&v[o * x.len()..(o + 1) * x.len()], &x) + b[o])
                .collect()
        }
        ModelSpec::Mlp {
            ref hidden,
            activation,
            bias,
            parameterization,
            ..
        } => {
            let mut u = x;
            for (l, &out) in hidden.iter().chain([&c]).enumerate() {
                let scale = match parameterization {
                    Parameterization::Standard => 1.0,
                    Parameterization::Ntk => 1.0 / (u.len() as f64).sqrt(),
                };
                let wmat = take(out * u.len());
                let b = if bias {
                    take(out)
                } else {
                    vec![Dual64::from(0.0); out]
                };
                let z: Vec<Dual64> = (0..out)
                    .map(|o| dot(&wmat[o * u.len()..(o + 1) * u.len()], &u) * scale + b[o])
                    .collect();
                u = if l < hidden.len() {
                    z.into_iter().map(|z| activation.apply_dual(z)).collect()
                } else {
                    z
                };
            }
            u
        }
        ModelSpec::Resmlp {
            width,
            blocks,
            activation,
            ..
        } => {
            let mut dense = |u: &[Dual64], out: usize| -> Vec<Dual64> {
                let wmat = take(out * u.len());
                let b = take(out);
                (0..out)
                    .map(|o| dot(&wmat[o * u.len()..(o + 1) * u.len()], u) + b[o])
                    .collect()
            };
            let mut u = dense(&x, width);
            for _ in 0..blocks {
                let a: Vec<Dual64> = dense(&u, width)
                    .into_iter()
                    .map(|h| activation.apply_dual(h))
                    .collect();
                let r = dense(&a, width);
                u = u.iter().zip(&r).map(|(&u, &r)| u + r).collect();
            }
            dense(&u, c)
        }
        ModelSpec::DiagLinear { .. } => {
            let u = take(x.len());
            let v = take(x.len());
            vec![
                (0..x.len())
                    .map(|j| (u[j] * u[j] - v[j] * v[j]) * x[j])
                    .fold(Dual64::from(0.0), |s, t| s + t),
            ]
        }
    }
}

/// ∇_w f(w; x) by forward mode (one dual-number pass per parameter), for a
/// one-output model (the first output of any other).
pub fn gradient(spec: &ModelSpec, w: &[f64], x: &[f64]) -> Vec<f64> {
    gradients(spec, w, x).swap_remove(0)
}

/// ∇_w f_c(w; x) for each output c, by forward mode.
pub fn gradients(spec: &ModelSpec, w: &[f64], x: &[f64]) -> Vec<Vec<f64>> {
    let mut wd: Vec<Dual64> = w.iter().map(|&v| Dual64::from(v)).collect();
    let mut grads = vec![vec![0.0; w.len()]; spec.outputs()];
    for p in 0..w.len() {
        wd[p] = Dual64::new(w[p], 1.0);
        for (g, f) in grads.iter_mut().zip(outputs(spec, &wd, x)) {
            g[p] = f.eps;
        }
        wd[p] = Dual64::from(w[p]);
    }
    grads
}

fn dot(a: &[Dual64], b: &[Dual64]) -> Dual64 {
    a.iter()
        .zip(b)
        .fold(Dual64::from(0.0), |s, (&a, &b)| s + a * b)
}
