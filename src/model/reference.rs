//! A plain, per-example forward pass written straight from SPEC §3 over dual
//! numbers: the independent forward-mode reference that the batched reverse
//! mode of the models is checked against. Slow (one pass per parameter) and
//! never used by the engine. Generic over num-dual's numbers: Dual64 gives
//! gradients, Dual2_64 the second directional derivatives that
//! `crate::second_order` is checked against.
use crate::spec::{LayerSpec, ModelSpec, Padding, Parameterization};
use num_dual::{Dual2_64, Dual64, DualNum};

/// f(w; x) with dual-number parameters, for a one-output model (the first
/// output of any other).
pub fn output<D: DualNum<Primitive = f64> + Copy>(spec: &ModelSpec, w: &[D], x: &[f64]) -> D {
    outputs(spec, w, x)[0]
}

/// The C outputs f_c(w; x) with dual-number parameters (SPEC §3, §8).
pub fn outputs<D: DualNum<Primitive = f64> + Copy>(spec: &ModelSpec, w: &[D], x: &[f64]) -> Vec<D> {
    let c = spec.outputs();
    let x: Vec<D> = x.iter().map(|&v| D::from(v)).collect();
    let mut params = w.iter().copied();
    let mut take = |n: usize| -> Vec<D> { params.by_ref().take(n).collect() };
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
                    vec![D::from(0.0); out]
                };
                let z: Vec<D> = (0..out)
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
            let mut dense = |u: &[D], out: usize| -> Vec<D> {
                let wmat = take(out * u.len());
                let b = take(out);
                (0..out)
                    .map(|o| dot(&wmat[o * u.len()..(o + 1) * u.len()], u) + b[o])
                    .collect()
            };
            let mut u = dense(&x, width);
            for _ in 0..blocks {
                let a: Vec<D> = dense(&u, width)
                    .into_iter()
                    .map(|h| activation.apply_dual(h))
                    .collect();
                let r = dense(&a, width);
                u = u.iter().zip(&r).map(|(&u, &r)| u + r).collect();
            }
            dense(&u, c)
        }
        ModelSpec::Layers {
            ref input_shape,
            ref layers,
            ..
        } => {
            let mut shape = input_shape.clone();
            let mut u = x;
            for layer in layers {
                (u, shape) = layer_output(layer, &shape, u, &mut take);
            }
            u
        }
        ModelSpec::DiagLinear { .. } => {
            let u = take(x.len());
            let v = take(x.len());
            vec![
                (0..x.len())
                    .map(|j| (u[j] * u[j] - v[j] * v[j]) * x[j])
                    .fold(D::from(0.0), |s, t| s + t),
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

/// d²/dt² f_c(w + t Δ; x) at t = 0 = Δᵀ ∇²_w f_c(w; x) Δ for each output
/// c, by one pass of second-order dual numbers (w_p + Δ_p t, t² kept).
pub fn second_directional(spec: &ModelSpec, w: &[f64], dw: &[f64], x: &[f64]) -> Vec<f64> {
    let wd: Vec<Dual2_64> = w
        .iter()
        .zip(dw)
        .map(|(&w, &d)| Dual2_64::new(w, d, 0.0))
        .collect();
    outputs(spec, &wd, x).iter().map(|f| f.v2).collect()
}

fn dot<D: DualNum<Primitive = f64> + Copy>(a: &[D], b: &[D]) -> D {
    a.iter().zip(b).fold(D::from(0.0), |s, (&a, &b)| s + a * b)
}

/// One layer of SPEC §10 applied to one example's features `u` of `shape`
/// (row-major: channel, then each spatial axis), taking its parameters in
/// layout order; returns the output and its shape. Written as the plain
/// loops of the contract, one output entry at a time.
fn layer_output<D: DualNum<Primitive = f64> + Copy>(
    layer: &LayerSpec,
    shape: &[usize],
    u: Vec<D>,
    take: &mut impl FnMut(usize) -> Vec<D>,
) -> (Vec<D>, Vec<usize>) {
    let zero = D::from(0.0);
    match *layer {
        LayerSpec::Dense { units, bias } => {
            let wmat = take(units * u.len());
            let b = if bias { take(units) } else { vec![zero; units] };
            let z = (0..units)
                .map(|o| dot(&wmat[o * u.len()..(o + 1) * u.len()], &u) + b[o])
                .collect();
            (z, vec![units])
        }
        LayerSpec::Conv1d {
            channels,
            kernel,
            stride,
            padding,
            bias,
        } => {
            let (c_in, len) = (shape[0], shape[1]);
            let pad = if padding == Padding::Same {
                (kernel - 1) / 2
            } else {
                0
            };
            let out_len = (len + 2 * pad - kernel) / stride + 1;
            let wmat = take(channels * c_in * kernel);
            let b = if bias {
                take(channels)
            } else {
                vec![zero; channels]
            };
            let mut out = vec![zero; channels * out_len];
            for o in 0..channels {
                for p in 0..out_len {
                    let mut s = b[o];
                    for c in 0..c_in {
                        for j in 0..kernel {
                            let i = (stride * p + j) as isize - pad as isize;
                            if i >= 0 && (i as usize) < len {
                                s += wmat[(o * c_in + c) * kernel + j] * u[c * len + i as usize];
                            }
                        }
                    }
                    out[o * out_len + p] = s;
                }
            }
            (out, vec![channels, out_len])
        }
        LayerSpec::Conv2d {
            channels,
            kernel,
            stride,
            padding,
            bias,
        } => {
            let (c_in, h, wd) = (shape[0], shape[1], shape[2]);
            let pad = if padding == Padding::Same {
                (kernel - 1) / 2
            } else {
                0
            };
            let oh = (h + 2 * pad - kernel) / stride + 1;
            let ow = (wd + 2 * pad - kernel) / stride + 1;
            let wmat = take(channels * c_in * kernel * kernel);
            let b = if bias {
                take(channels)
            } else {
                vec![zero; channels]
            };
            let mut out = vec![zero; channels * oh * ow];
            for o in 0..channels {
                for py in 0..oh {
                    for px in 0..ow {
                        let mut s = b[o];
                        for c in 0..c_in {
                            for jy in 0..kernel {
                                for jx in 0..kernel {
                                    let iy = (stride * py + jy) as isize - pad as isize;
                                    let ix = (stride * px + jx) as isize - pad as isize;
                                    if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                        continue;
                                    }
                                    let wv = wmat[((o * c_in + c) * kernel + jy) * kernel + jx];
                                    s += wv * u[(c * h + iy as usize) * wd + ix as usize];
                                }
                            }
                        }
                        out[(o * oh + py) * ow + px] = s;
                    }
                }
            }
            (out, vec![channels, oh, ow])
        }
        LayerSpec::Activation { name } => (
            u.into_iter().map(|z| name.apply_dual(z)).collect(),
            shape.to_vec(),
        ),
        LayerSpec::AvgPool { size } => {
            let c = shape[0];
            let spatial = &shape[1..];
            let out_sp: Vec<usize> = spatial.iter().map(|&l| l / size).collect();
            let window = size.pow(spatial.len() as u32) as f64;
            let mut out = Vec::new();
            if spatial.len() == 1 {
                for ch in 0..c {
                    for p in 0..out_sp[0] {
                        let s = (0..size).fold(zero, |s, j| s + u[ch * spatial[0] + p * size + j]);
                        out.push(s / window);
                    }
                }
            } else {
                let (h, wd) = (spatial[0], spatial[1]);
                for ch in 0..c {
                    for py in 0..out_sp[0] {
                        for px in 0..out_sp[1] {
                            let mut s = zero;
                            for jy in 0..size {
                                for jx in 0..size {
                                    s += u[(ch * h + py * size + jy) * wd + px * size + jx];
                                }
                            }
                            out.push(s / window);
                        }
                    }
                }
            }
            let mut out_shape = vec![c];
            out_shape.extend(out_sp);
            (out, out_shape)
        }
        LayerSpec::Flatten {} => (u, vec![shape.iter().product()]),
        LayerSpec::LayerNorm { eps, affine } => {
            let n = u.len() as f64;
            let mean = u.iter().fold(zero, |s, &v| s + v) / n;
            let var = u.iter().fold(zero, |s, &v| s + (v - mean) * (v - mean)) / n;
            let sd = (var + eps).sqrt();
            let xhat: Vec<D> = u.iter().map(|&v| (v - mean) / sd).collect();
            let out = if affine {
                let gamma = take(u.len());
                let beta = take(u.len());
                (0..u.len()).map(|i| gamma[i] * xhat[i] + beta[i]).collect()
            } else {
                xhat
            };
            (out, shape.to_vec())
        }
    }
}
