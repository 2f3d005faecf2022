//! A plain, per-example forward pass written straight from SPEC §3 over dual
//! numbers: the independent forward-mode reference that the batched reverse
//! mode of the models is checked against. Slow (one pass per parameter) and
//! never used by the engine.
use crate::spec::{ModelSpec, Parameterization};
use num_dual::Dual64;

/// f(w; x) with dual-number parameters.
pub fn output(spec: &ModelSpec, w: &[Dual64], x: &[f64]) -> Dual64 {
    let x: Vec<Dual64> = x.iter().map(|&v| Dual64::from(v)).collect();
    let mut params = w.iter().copied();
    let mut take = |n: usize| -> Vec<Dual64> { params.by_ref().take(n).collect() };
    match *spec {
        ModelSpec::Linear { .. } => {
            let v = take(x.len());
            dot(&v, &x) + take(1)[0]
        }
        ModelSpec::Mlp {
            ref hidden,
            activation,
            bias,
            parameterization,
            ..
        } => {
            let mut u = x;
            for (l, &out) in hidden.iter().chain([&1]).enumerate() {
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
            u[0]
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
            dense(&u, 1)[0]
        }
        ModelSpec::DiagLinear { .. } => {
            let u = take(x.len());
            let v = take(x.len());
            (0..x.len())
                .map(|j| (u[j] * u[j] - v[j] * v[j]) * x[j])
                .fold(Dual64::from(0.0), |s, t| s + t)
        }
    }
}

/// ∇_w f(w; x) by forward mode: one dual-number pass per parameter.
pub fn gradient(spec: &ModelSpec, w: &[f64], x: &[f64]) -> Vec<f64> {
    let mut wd: Vec<Dual64> = w.iter().map(|&v| Dual64::from(v)).collect();
    (0..w.len())
        .map(|p| {
            wd[p] = Dual64::new(w[p], 1.0);
            let g = output(spec, &wd, x).eps;
            wd[p] = Dual64::from(w[p]);
            g
        })
        .collect()
}

fn dot(a: &[Dual64], b: &[Dual64]) -> Dual64 {
    a.iter()
        .zip(b)
        .fold(Dual64::from(0.0), |s, (&a, &b)| s + a * b)
}
