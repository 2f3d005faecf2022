//! layer_norm {eps, affine}: y = γ ∘ (x − mean) / sqrt(var + eps) + β over
//! all features of one example (biased variance), γ then β (SPEC §10).
//!
//! The per-(example, output) gradients of γ and β are δ ∘ x̂ and δ, kept as
//! one explicit Jacobian block of 2 F columns [δ ∘ x̂, δ]; the input's
//! sensitivity is (γ ∘ δ − mean(γ ∘ δ) − x̂ mean(γ ∘ δ ∘ x̂)) / sqrt(var + eps).
use super::{Backward, Forward, Layer, LayerError, Slots, TaylorIo};
use crate::model::Block;
use crate::vecmath::{add_assign, hadamard_accumulate, hadamard_accumulate_rows};
use rand_chacha::ChaCha20Rng;

#[derive(Debug)]
pub(crate) struct LayerNorm {
    features: usize,
    eps: f64,
    affine: bool,
    offset: usize,
    shape: Vec<usize>,
}

impl LayerNorm {
    pub fn new(
        input: &[usize],
        eps: f64,
        affine: bool,
        offset: usize,
    ) -> Result<LayerNorm, LayerError> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err((
                "eps",
                format!("found {eps:?}, allowed: a finite number > 0"),
            ));
        }
        Ok(LayerNorm {
            features: input.iter().product(),
            eps,
            affine,
            offset,
            shape: input.to_vec(),
        })
    }
}

impl Layer for LayerNorm {
    fn output_shape(&self) -> &[usize] {
        &self.shape
    }
    fn n_params(&self) -> usize {
        if self.affine { 2 * self.features } else { 0 }
    }
    fn init(&self, _rng: &mut ChaCha20Rng, _init_scale: f64, w: &mut Vec<f64>) {
        if self.affine {
            w.extend(std::iter::repeat_n(1.0, self.features));
            w.extend(std::iter::repeat_n(0.0, self.features));
        }
    }
    fn blocks(&self, slots: Slots) -> Vec<Block> {
        if self.affine {
            vec![Block::Explicit {
                offset: self.offset,
                jac: slots.explicit,
            }]
        } else {
            Vec::new()
        }
    }
    fn explicit_widths(&self) -> Vec<usize> {
        if self.affine {
            vec![2 * self.features]
        } else {
            Vec::new()
        }
    }
    /// x̂ (rows x F), 1 / sqrt(var + eps) and the mean (rows), and the two
    /// means of the backward pass (rows · C each).
    fn scratch(&self, rows: usize, c: usize) -> Vec<(usize, usize)> {
        vec![
            (rows, self.features),
            (rows, 1),
            (rows, 1),
            (rows * c, 1),
            (rows * c, 1),
        ]
    }

    fn forward(&self, w: &[f64], io: Forward<'_>) {
        let rows = io.input.nrows();
        let f = self.features as f64;
        let x = io.input.as_slice();
        let [xhat, inv, mean, ..] = io.scratch else {
            unreachable!("five scratch matrices")
        };
        let (xhat, inv, mean) = (xhat.as_mut_slice(), inv.as_mut_slice(), mean.as_mut_slice());
        mean.fill(0.0);
        for col in x.chunks_exact(rows) {
            add_assign(mean, col);
        }
        mean.iter_mut().for_each(|m| *m /= f);
        inv.fill(0.0);
        for col in x.chunks_exact(rows) {
            for ((v, &x), &m) in inv.iter_mut().zip(col).zip(mean.iter()) {
                *v += (x - m) * (x - m);
            }
        }
        inv.iter_mut()
            .for_each(|v| *v = 1.0 / (*v / f + self.eps).sqrt());
        for (dst, col) in xhat.chunks_exact_mut(rows).zip(x.chunks_exact(rows)) {
            for (((d, &x), &m), &s) in dst.iter_mut().zip(col).zip(mean.iter()).zip(inv.iter()) {
                *d = (x - m) * s;
            }
        }
        let out = io.output.as_mut_slice();
        if !self.affine {
            out.copy_from_slice(xhat);
            return;
        }
        let (gamma, beta) = w[self.offset..self.offset + 2 * self.features].split_at(self.features);
        for (((dst, col), &g), &b) in out
            .chunks_exact_mut(rows)
            .zip(xhat.chunks_exact(rows))
            .zip(gamma)
            .zip(beta)
        {
            for (d, &v) in dst.iter_mut().zip(col) {
                *d = g * v + b;
            }
        }
    }

    fn backward(&self, w: &[f64], io: Backward<'_>) {
        let (rows, c) = (io.input.nrows(), io.outputs);
        let rc = rows * c;
        let g = io.g_out.as_slice();
        let [xhat, inv, _, m1, m2] = io.scratch else {
            unreachable!("five scratch matrices")
        };
        let xhat = xhat.as_slice();
        if self.affine {
            let jac = io.explicit[0].as_mut_slice();
            let (dgamma, dbeta) = jac.split_at_mut(self.features * rc);
            dbeta.copy_from_slice(g);
            dgamma.fill(0.0);
            for ((dst, delta), col) in dgamma
                .chunks_exact_mut(rc)
                .zip(g.chunks_exact(rc))
                .zip(xhat.chunks_exact(rows))
            {
                if c == 1 {
                    hadamard_accumulate(dst, delta, col, 0.0);
                } else {
                    hadamard_accumulate_rows(dst, delta, col, 0.0, c);
                }
            }
        }
        let Some(g_in) = io.g_in else { return };
        let f = self.features as f64;
        let g_in = g_in.as_mut_slice();
        let (m1, m2) = (m1.as_mut_slice(), m2.as_mut_slice());
        // g_in = γ ∘ δ, then the two means over features.
        g_in.copy_from_slice(g);
        if self.affine {
            let gamma = &w[self.offset..self.offset + self.features];
            for (col, &gm) in g_in.chunks_exact_mut(rc).zip(gamma) {
                col.iter_mut().for_each(|v| *v *= gm);
            }
        }
        m1.fill(0.0);
        m2.fill(0.0);
        for (col, xcol) in g_in.chunks_exact(rc).zip(xhat.chunks_exact(rows)) {
            add_assign(m1, col);
            for (k, &v) in col.iter().enumerate() {
                m2[k] += v * xcol[k / c];
            }
        }
        let inv = inv.as_slice();
        for (col, xcol) in g_in.chunks_exact_mut(rc).zip(xhat.chunks_exact(rows)) {
            for (k, v) in col.iter_mut().enumerate() {
                let r = k / c;
                *v = inv[r] * (*v - m1[k] / f - xcol[r] * (m2[k] / f));
            }
        }
    }

    /// Per example: μ, μ', μ'' (6 columns: the three means, then s, s', s'').
    fn taylor_scratch(&self, rows: usize) -> Vec<(usize, usize)> {
        vec![(rows, 6)]
    }

    /// With d = x − μ, v = mean(d²) and s = (v + eps)^(−1/2):
    /// v' = 2 mean(d d'), v'' = 2 mean(d'² + d d''), s' = −s³ v'/2,
    /// s'' = 3 s⁵ v'²/4 − s³ v''/2; x̂ = d s, x̂' = d' s + d s',
    /// x̂'' = d'' s + 2 d' s' + d s''; y = γ x̂ + β, y' = Δγ x̂ + γ x̂' + Δβ,
    /// y'' = 2 Δγ x̂' + γ x̂''.
    fn taylor(&self, w: &[f64], dw: &[f64], io: TaylorIo<'_>) {
        let rows = io.input.value.nrows();
        let f = self.features as f64;
        let [x0, x1, x2] = io.input.parts().map(|m| m.as_slice());
        let moments = io.scratch[0].as_mut_slice();
        moments.fill(0.0);
        let (means, scales) = moments.split_at_mut(3 * rows);
        let (m0, rest) = means.split_at_mut(rows);
        let (m1, m2) = rest.split_at_mut(rows);
        for ((c0, c1), c2) in x0
            .chunks_exact(rows)
            .zip(x1.chunks_exact(rows))
            .zip(x2.chunks_exact(rows))
        {
            add_assign(m0, c0);
            add_assign(m1, c1);
            add_assign(m2, c2);
        }
        for m in [&mut *m0, &mut *m1, &mut *m2] {
            m.iter_mut().for_each(|v| *v /= f);
        }
        let (s0, rest) = scales.split_at_mut(rows);
        let (s1, s2) = rest.split_at_mut(rows);
        let d = |c: &[f64], m: &[f64], r: usize| c[r] - m[r];
        for j in 0..self.features {
            let col = j * rows..(j + 1) * rows;
            let (c0, c1, c2) = (&x0[col.clone()], &x1[col.clone()], &x2[col]);
            for r in 0..rows {
                let (d0, d1, d2) = (d(c0, m0, r), d(c1, m1, r), d(c2, m2, r));
                s0[r] += d0 * d0;
                s1[r] += d0 * d1;
                s2[r] += d1 * d1 + d0 * d2;
            }
        }
        for r in 0..rows {
            let (v, v1, v2) = (s0[r] / f, 2.0 * s1[r] / f, 2.0 * s2[r] / f);
            let s = 1.0 / (v + self.eps).sqrt();
            let s3 = s * s * s;
            s0[r] = s;
            s1[r] = -0.5 * s3 * v1;
            s2[r] = 0.75 * s3 * s * s * v1 * v1 - 0.5 * s3 * v2;
        }
        let [y0, y1, y2] = io.output.parts_mut().map(|m| m.as_mut_slice());
        let params = self.affine.then(|| (&w[self.offset..], &dw[self.offset..]));
        for j in 0..self.features {
            let col = j * rows..(j + 1) * rows;
            let (c0, c1, c2) = (&x0[col.clone()], &x1[col.clone()], &x2[col.clone()]);
            for r in 0..rows {
                let (d0, d1, d2) = (d(c0, m0, r), d(c1, m1, r), d(c2, m2, r));
                let h0 = d0 * s0[r];
                let h1 = d1 * s0[r] + d0 * s1[r];
                let h2 = d2 * s0[r] + 2.0 * d1 * s1[r] + d0 * s2[r];
                let k = col.start + r;
                (y0[k], y1[k], y2[k]) = match params {
                    None => (h0, h1, h2),
                    Some((p, dp)) => {
                        let (g, b) = (p[j], p[self.features + j]);
                        let (dg, db) = (dp[j], dp[self.features + j]);
                        (g * h0 + b, dg * h0 + g * h1 + db, 2.0 * dg * h1 + g * h2)
                    }
                };
            }
        }
    }
}
