//! The multilinear selection for kinks held at one training point
//! (proofs.md E11, E15). With slopes λ the field is G(λ) = Σ_S Π_{l∈S} λ_l
//! M_S over subsets S of the held kinks, M_S the Möbius differences of the
//! corner fields; M_S = 0 when S holds kinks at two training points (each
//! point's part of the field depends only on its own slopes), so only the
//! subsets of one point's held kinks enter. The sliding λ solves
//! r_j(λ) = Σ_S Π_{l∈S} λ_l ∇g_j · M_S = 0 (Newton's method), which is the
//! ε → 0 limit of the flow with smoothed units: relu'(0) := λ_l there.
use super::MAX_SLIDING;

/// Subsets of at most MAX_SLIDING kinks with two or more elements.
pub const MAX_SUBSETS: usize = (1 << MAX_SLIDING) - MAX_SLIDING - 1;

/// Most Newton steps. On the systems of feedforward models Newton ends
/// in at most k + 1 steps (E15 (ii)); more means no root near the start.
pub const NEWTON_STEPS: usize = 32;

/// Writes into `out` every subset (a bit mask over positions in `points`)
/// of two or more kinks at one training point, ordered by size, so that
/// a subset's proper subsets come before it. Allocates nothing when `out`
/// has capacity MAX_SUBSETS.
pub fn same_point_subsets(points: &[usize], out: &mut Vec<u8>) {
    out.clear();
    for (l, p) in points.iter().enumerate() {
        if points[..l].contains(p) {
            continue;
        }
        let group = points
            .iter()
            .enumerate()
            .filter(|(_, q)| *q == p)
            .fold(0u8, |m, (i, _)| m | 1 << i);
        // Every sub-mask of `group` with two or more bits.
        let mut sub = group;
        while sub != 0 {
            if sub.count_ones() >= 2 {
                out.push(sub);
            }
            sub = (sub - 1) & group;
        }
    }
    out.sort_unstable_by_key(|m| m.count_ones());
}

/// Turns corner values G_S (S = `subsets[i]`, in `corners[i]`) into the
/// Möbius differences M_S = G_S − G_∅ − Σ_{l∈S} (G_l − G_∅) − Σ M_T over
/// the subsets T ⊊ S of `subsets`, given `base(d)` = G_∅ and `single(l, d)`
/// = G_l − G_∅. Then G(λ) = G_∅ + Σ_l λ_l (G_l − G_∅) + Σ_S Π_S λ M_S.
pub fn mobius<V: AsMut<[f64]> + AsRef<[f64]>>(
    subsets: &[u8],
    corners: &mut [V],
    base: impl Fn(usize) -> f64,
    single: impl Fn(usize, usize) -> f64,
) {
    for i in 0..subsets.len() {
        let s = subsets[i];
        let (done, rest) = corners.split_at_mut(i);
        let m = rest[0].as_mut();
        for (d, v) in m.iter_mut().enumerate() {
            let mut acc = *v - base(d);
            for l in (0..MAX_SLIDING).filter(|l| s & 1 << l != 0) {
                acc -= single(l, d);
            }
            for (t, prev) in subsets[..i].iter().zip(done.iter()) {
                if t & s == *t {
                    acc -= prev.as_ref()[d];
                }
            }
            *v = acc;
        }
    }
}

/// Π_{l ∈ mask} λ_l.
pub fn weight(mask: u8, lambda: &[f64]) -> f64 {
    lambda
        .iter()
        .enumerate()
        .filter(|(l, _)| mask & 1 << l != 0)
        .map(|(_, v)| v)
        .product()
}

/// The held kinks' rate system: r_j(λ) = r0_j + Σ_l λ_l singles[l k + j]
/// + Σ_i Π_{S_i} λ mixed[i][j] (j, l < k; `singles` column-major).
pub struct RateSystem<'a> {
    pub r0: &'a [f64],
    pub singles: &'a [f64],
    pub subsets: &'a [u8],
    pub mixed: &'a [[f64; MAX_SLIDING]],
}

impl RateSystem<'_> {
    fn k(&self) -> usize {
        self.r0.len()
    }

    /// r(λ) into `r` and its Jacobian ∂r_j/∂λ_l = singles[l k + j] +
    /// Σ_{S∋l} Π_{S∖l} λ mixed[S][j] into `jac` (column-major).
    pub fn residual(&self, lambda: &[f64], r: &mut [f64], jac: &mut [f64]) {
        let k = self.k();
        for j in 0..k {
            r[j] = self.r0[j]
                + (0..k)
                    .map(|l| lambda[l] * self.singles[l * k + j])
                    .sum::<f64>()
                + self
                    .subsets
                    .iter()
                    .zip(self.mixed)
                    .map(|(&s, m)| weight(s, lambda) * m[j])
                    .sum::<f64>();
            for l in 0..k {
                jac[l * k + j] = self.singles[l * k + j]
                    + self
                        .subsets
                        .iter()
                        .zip(self.mixed)
                        .filter(|(s, _)| *s & 1 << l != 0)
                        .map(|(&s, m)| weight(s & !(1 << l), lambda) * m[j])
                        .sum::<f64>();
            }
        }
    }

    /// Newton's method on r(λ) = 0 from `lambda`. Stops when the update is
    /// within 4 ulps of max|λ|, or once it is below √ε and no longer halves
    /// (the rounding floor of r: quadratic convergence from √ε would have
    /// reached ε). Returns the steps taken, or None: a singular Jacobian, a
    /// non-finite λ, or NEWTON_STEPS without converging.
    pub fn newton(&self, lambda: &mut [f64]) -> Option<usize> {
        let k = self.k();
        let (mut r, mut jac) = ([0.0; MAX_SLIDING], [0.0; MAX_SLIDING * MAX_SLIDING]);
        let mut previous = f64::INFINITY;
        for step in 1..=NEWTON_STEPS {
            self.residual(lambda, &mut r[..k], &mut jac[..k * k]);
            for v in &mut r[..k] {
                *v = -*v;
            }
            if !super::gauss(&mut jac[..k * k], &mut r[..k]) {
                return None;
            }
            let mut size = 0.0f64;
            for (l, d) in lambda.iter_mut().zip(&r[..k]) {
                *l += d;
                size = size.max(d.abs());
            }
            let scale = lambda.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if !scale.is_finite() {
                return None;
            }
            if size <= 4.0 * f64::EPSILON * scale
                || (size <= f64::EPSILON.sqrt() && size > previous / 2.0)
            {
                return Some(step);
            }
            previous = size;
        }
        None
    }
}
