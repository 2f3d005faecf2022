//! Elementwise math for the hot loops, written branch-free so that loops over
//! it vectorise, and compiled for the widest SIMD the CPU offers (chosen at
//! run time by `multiversion`).
//!
//! libm's scalar exp costs about as much per element as a 128-wide matrix
//! product row, so on wide layers the activations would dominate; no
//! maintained crate offers a vectorisable f64 exp on stable Rust, hence this
//! small one. Only correctly rounded IEEE operations are used: +, −, ×, ÷
//! and the fused multiply-add of `f64::mul_add` (the polynomial's Horner
//! steps), which is one instruction on the FMA targets and libm's exact
//! software fma elsewhere. Rust never contracts a * b + c by itself, so
//! every code path gives bitwise the same result on any x86-64.
use multiversion::multiversion;

/// e^x for x ≤ 0, with a relative error of a few ulp for x ≥ −708; below,
/// e^−708 ≈ 3.3e−308 is returned (an absolute error under 4e−308).
///
/// Cody–Waite reduction x = n ln 2 + r with |r| ≤ ln2/2 (fdlibm's split of
/// ln 2), the Taylor polynomial of degree 13 for e^r (truncation error
/// |r|^14/14! < 5e−18), and the scale 2^n assembled from its bits. The
/// rounding of x log2(e) to n uses the 1.5·2^52 trick, which also leaves n
/// in the low bits of the sum.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // fdlibm's split, by bits: 6.93147180369123816490e-01 (the high part has
    // its low 32 bits zero, so n LN2_HI is exact) and 1.90821492927058770002e-10.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    const INV_FACT: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let x = x.max(-708.0);
    let shifted = x * LOG2E + SHIFT;
    let n = shifted - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = INV_FACT[13];
    for k in (0..13).rev() {
        p = p.mul_add(r, INV_FACT[k]);
    }
    let n_int = shifted.to_bits() as i64 - SHIFT.to_bits() as i64;
    p * f64::from_bits(((n_int + 1023) as u64) << 52)
}

/// tanh and its derivative from e = e^{−2|z|}: tanh|z| = (1 − e)/(1 + e),
/// sech² z = 4e/(1 + e)². Absolute error of tanh below 3 ulp of 1 (the
/// accuracy that matters after a linear layer; relative accuracy is lost
/// only for |z| < 1e−3, where tanh z ≈ z is tiny), relative error of the
/// derivative a few ulp.
#[inline(always)]
pub fn tanh_pair(z: f64) -> (f64, f64) {
    let e = exp_nonpositive(-2.0 * z.abs());
    let inv = 1.0 / (1.0 + e);
    (((1.0 - e) * inv).copysign(z), 4.0 * e * inv * inv)
}

/// (σ(z), σ(−z)) from e = e^{−|z|}, both to a few ulp relative.
#[inline(always)]
pub fn sigmoid_pair(z: f64) -> (f64, f64) {
    let e = exp_nonpositive(-z.abs());
    let big = 1.0 / (1.0 + e);
    let small = e * big;
    if z >= 0.0 { (big, small) } else { (small, big) }
}

/// u = tanh(z), d = tanh'(z) elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn tanh_slices(z: &[f64], u: &mut [f64], d: &mut [f64]) {
    for ((u, d), &z) in u.iter_mut().zip(d.iter_mut()).zip(z) {
        (*u, *d) = tanh_pair(z);
    }
}

/// u = σ(z), d = σ'(z) = σ(z) σ(−z) elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn sigmoid_slices(z: &[f64], u: &mut [f64], d: &mut [f64]) {
    for ((u, d), &z) in u.iter_mut().zip(d.iter_mut()).zip(z) {
        let (s, r) = sigmoid_pair(z);
        (*u, *d) = (s, s * r);
    }
}

/// u = z σ(z), d = σ(z) + z σ(z) σ(−z) elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn silu_slices(z: &[f64], u: &mut [f64], d: &mut [f64]) {
    for ((u, d), &z) in u.iter_mut().zip(d.iter_mut()).zip(z) {
        let (s, r) = sigmoid_pair(z);
        (*u, *d) = (z * s, s + z * s * r);
    }
}

/// Lanes of the explicit partial sums below: a fixed number, so the order
/// of additions (and the result) does not depend on the SIMD width.
const LANES: usize = 8;

/// out = y[start..] + Σ_j c_j v_j[start..] over out's length (one chunk of
/// a Runge–Kutta stage or solution combination).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn linear_combination(out: &mut [f64], y: &[f64], c: &[f64], v: &[Vec<f64>], start: usize) {
    let len = out.len();
    out.copy_from_slice(&y[start..start + len]);
    for (&cj, vj) in c.iter().zip(v) {
        if cj != 0.0 {
            for (o, &x) in out.iter_mut().zip(&vj[start..start + len]) {
                *o += cj * x;
            }
        }
    }
}

/// One chunk of an adaptive step, in one pass over the stages:
/// out = y[start..] + Σ_j c_j k_j[start..] (the step's solution), whether it
/// is finite, and for
/// each error estimate e (`e2` may be empty) the sum over the chunk of
/// (Σ_j e_j k_j[i] / sc_i)², sc_i = atol + rtol max(|y_i|, |out_i|), in
/// Hairer's scaled norm. Works in blocks of `BLOCK` components so that a
/// block of every stage stays in L1; sums go in `LANES` fixed partial sums,
/// then in order.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
#[allow(clippy::too_many_arguments)]
pub fn solution_and_error(
    out: &mut [f64],
    y: &[f64],
    c: &[f64],
    e1: &[f64],
    e2: &[f64],
    k: &[Vec<f64>],
    start: usize,
    (rtol, atol): (f64, f64),
) -> StepSums {
    const BLOCK: usize = 256;
    let mut lanes1 = [0.0f64; LANES];
    let mut lanes2 = [0.0f64; LANES];
    let mut finite = true;
    for (b, out) in out.chunks_mut(BLOCK).enumerate() {
        let lo = start + b * BLOCK;
        let hi = lo + out.len();
        let y = &y[lo..hi];
        out.copy_from_slice(y);
        for (&cj, kj) in c.iter().zip(k) {
            if cj != 0.0 {
                for (o, &x) in out.iter_mut().zip(&kj[lo..hi]) {
                    *o += cj * x;
                }
            }
        }
        finite &= all_finite(out);
        for (e, lanes) in [(e1, &mut lanes1), (e2, &mut lanes2)] {
            if e.is_empty() {
                continue;
            }
            let mut err = [0.0f64; BLOCK];
            let err = &mut err[..out.len()];
            for (&ej, kj) in e.iter().zip(k) {
                if ej != 0.0 {
                    for (acc, &x) in err.iter_mut().zip(&kj[lo..hi]) {
                        *acc += ej * x;
                    }
                }
            }
            add_scaled_squares(lanes, err, y, out, rtol, atol);
        }
    }
    StepSums {
        error1: lanes1.iter().sum(),
        error2: lanes2.iter().sum(),
        finite,
    }
}

/// What [`solution_and_error`] finds over one chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepSums {
    /// The scaled sums of squares of the first and second error estimates.
    pub error1: f64,
    pub error2: f64,
    /// Whether every component of the solution is finite.
    pub finite: bool,
}

/// lanes[i mod LANES] += (d_i / sc_i)², sc_i = atol + rtol max(|y_i|,
/// |z_i|), over blocks of `LANES` (so that the loop vectorises) and then the
/// tail, which keeps each lane's additions in order of i.
#[inline(always)]
fn add_scaled_squares(
    lanes: &mut [f64; LANES],
    d: &[f64],
    y: &[f64],
    z: &[f64],
    rtol: f64,
    atol: f64,
) {
    let term = |d: f64, y: f64, z: f64| {
        let q = d / (atol + rtol * y.abs().max(z.abs()));
        q * q
    };
    let whole = d.len() - d.len() % LANES;
    for ((d, y), z) in d[..whole]
        .chunks_exact(LANES)
        .zip(y.chunks_exact(LANES))
        .zip(z.chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] += term(d[l], y[l], z[l]);
        }
    }
    for i in whole..d.len() {
        lanes[i % LANES] += term(d[i], y[i], z[i]);
    }
}

/// out += a ∘ (b + bias) elementwise: one dense block's kernel, the
/// Hadamard product of its δ and input Gram matrices.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn hadamard_accumulate(out: &mut [f64], a: &[f64], b: &[f64], bias: f64) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o += a * (b + bias);
    }
}

/// out += a ∘ (b + bias) with each entry of b serving `reps` consecutive
/// entries of out and a: one column of a C-output kernel (see
/// `crate::kernel`).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn hadamard_accumulate_rows(out: &mut [f64], a: &[f64], b: &[f64], bias: f64, reps: usize) {
    for ((o, a), &b) in out.chunks_exact_mut(reps).zip(a.chunks_exact(reps)).zip(b) {
        let s = b + bias;
        for (o, &a) in o.iter_mut().zip(a) {
            *o += a * s;
        }
    }
}

/// out = c x elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn scaled_copy(out: &mut [f64], x: &[f64], c: f64) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = c * x;
    }
}

/// x += c elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn add_scalar(x: &mut [f64], c: f64) {
    for v in x.iter_mut() {
        *v += c;
    }
}

/// out += a elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn add_assign(out: &mut [f64], a: &[f64]) {
    for (o, &a) in out.iter_mut().zip(a) {
        *o += a;
    }
}

/// out ∘= a elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn multiply_assign(out: &mut [f64], a: &[f64]) {
    for (o, &a) in out.iter_mut().zip(a) {
        *o *= a;
    }
}

/// out ∘= a with each row of `a` repeated `reps` times: `out` is a
/// column-major (rows · reps) x cols matrix whose row r reps + c pairs with
/// row r of the column-major rows x cols `a` (how the C output
/// sensitivities of an example meet its activation derivatives).
pub fn multiply_assign_rows(out: &mut [f64], a: &[f64], rows: usize, reps: usize) {
    if reps == 1 {
        return multiply_assign(out, a);
    }
    for (o, a) in out.chunks_exact_mut(rows * reps).zip(a.chunks_exact(rows)) {
        for (o, &a) in o.chunks_exact_mut(reps).zip(a) {
            o.iter_mut().for_each(|o| *o *= a);
        }
    }
}

/// Whether every element is finite: a fold without early exit, so that it
/// vectorises.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn all_finite(x: &[f64]) -> bool {
    x.iter().fold(true, |all, v| all & v.is_finite())
}

/// Σ x, in `LANES` fixed partial sums added in order (so it vectorises and
/// the result does not depend on the SIMD width).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn sum(x: &[f64]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// out = a ∘ b elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn product_into(out: &mut [f64], a: &[f64], b: &[f64]) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a * b;
    }
}

/// dst (+)= scale Σ_s d_s u_sᵀ, dst row-major (d_s.len() x u_s.len()), for
/// the `nodes` rows d_s of `d` and u_s of `u` (a weighted sum of a dense
/// block's per-example Jacobians, `crate::jacobian`); nodes = 0 writes 0.
/// dst holds the block's entries from `start` on (row-major index), so that
/// a block can be formed a piece at a time where it is read. Each row of
/// dst stays in cache while the nodes are added into it.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn outer_sum(
    dst: &mut [f64],
    d: &[f64],
    u: &[f64],
    scale: f64,
    nodes: usize,
    start: usize,
    accumulate: bool,
) {
    let fan_in = u.len() / nodes.max(1);
    let fan_out = d.len() / nodes.max(1);
    if nodes == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let mut at = start;
    for row in split_rows(dst, start, fan_in) {
        let (a, b) = (at / fan_in, at % fan_in);
        debug_assert!(a < fan_out, "past the block's end");
        // ROW_LANES entries at a time in registers across the nodes: one
        // store per entry, not one per node.
        let len = row.len();
        let coef = |s: usize| scale * d[s * fan_out + a];
        let mut lanes = row.chunks_exact_mut(ROW_LANES);
        for (i, chunk) in (&mut lanes).enumerate() {
            let chunk: &mut [f64; ROW_LANES] = chunk.try_into().expect("ROW_LANES long");
            let from = b + i * ROW_LANES;
            let mut acc = [0.0; ROW_LANES];
            for s in 0..nodes {
                let (c, us) = (coef(s), &u[s * fan_in + from..][..ROW_LANES]);
                let us: &[f64; ROW_LANES] = us.try_into().expect("ROW_LANES long");
                for l in 0..ROW_LANES {
                    acc[l] = if s == 0 {
                        if accumulate {
                            chunk[l] + c * us[l]
                        } else {
                            c * us[l]
                        }
                    } else {
                        acc[l] + c * us[l]
                    };
                }
            }
            *chunk = acc;
        }
        let tail = lanes.into_remainder();
        let from = b + len - tail.len();
        for (s, us) in u.chunks_exact(fan_in).enumerate() {
            let (c, us) = (coef(s), &us[from..from + tail.len()]);
            if s == 0 && !accumulate {
                tail.iter_mut().zip(us).for_each(|(x, &u)| *x = c * u);
            } else {
                tail.iter_mut().zip(us).for_each(|(x, &u)| *x += c * u);
            }
        }
        at += len;
    }
}

/// Entries of a row that [`outer_sum`] keeps in registers at once (four
/// AVX-512 vectors).
const ROW_LANES: usize = 32;

/// `dst`, the entries from `start` on of a row-major matrix with rows of
/// `width`, cut where its rows end.
fn split_rows(dst: &mut [f64], start: usize, width: usize) -> impl Iterator<Item = &mut [f64]> {
    let first = (width - start % width).min(dst.len());
    let (head, rest) = dst.split_at_mut(first);
    std::iter::once(head)
        .filter(|h| !h.is_empty())
        .chain(rest.chunks_mut(width))
}

/// x ∘= c elementwise (x = c x).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn scale(x: &mut [f64], c: f64) {
    for v in x.iter_mut() {
        *v *= c;
    }
}

/// y += a x elementwise.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn axpy(y: &mut [f64], a: f64, x: &[f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// y += a x elementwise, returning Σ|x| (one pass for a running sum and
/// its terms' magnitude).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn axpy_norm(y: &mut [f64], a: f64, x: &[f64]) -> f64 {
    let mut size = [0.0; 8];
    let (y8, x8) = (y.chunks_exact_mut(8), x.chunks_exact(8));
    let (yt, xt) = (y8.into_remainder(), x8.remainder());
    let mut tail = 0.0;
    for (y, &x) in yt.iter_mut().zip(xt) {
        *y += a * x;
        tail += x.abs();
    }
    for (y, x) in y.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
        for l in 0..8 {
            y[l] += a * x[l];
            size[l] += x[l].abs();
        }
    }
    tail + size.iter().sum::<f64>()
}

/// y += a (d ∘ x) elementwise, returning Σ|d ∘ x| (a preconditioned
/// running sum without forming d ∘ x).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn axpy_product_norm(y: &mut [f64], a: f64, d: &[f64], x: &[f64]) -> f64 {
    let mut size = [0.0; 8];
    let (y8, d8, x8) = (y.chunks_exact_mut(8), d.chunks_exact(8), x.chunks_exact(8));
    let (yt, dt, xt) = (y8.into_remainder(), d8.remainder(), x8.remainder());
    let mut tail = 0.0;
    for ((y, &d), &x) in yt.iter_mut().zip(dt).zip(xt) {
        *y += a * (d * x);
        tail += (d * x).abs();
    }
    let chunks = y.chunks_exact_mut(8).zip(d.chunks_exact(8));
    for ((y, d), x) in chunks.zip(x.chunks_exact(8)) {
        for l in 0..8 {
            let v = d[l] * x[l];
            y[l] += a * v;
            size[l] += v.abs();
        }
    }
    tail + size.iter().sum::<f64>()
}

/// (a · b, Σ|a_j b_j|), in 8 lanes.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn dot_and_size(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (mut sum, mut size) = ([0.0; 8], [0.0; 8]);
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a8.remainder().iter().zip(b8.remainder());
    let (s, m) = tail.fold((0.0, 0.0), |(s, m), (&a, &b)| {
        (s + a * b, m + (a * b).abs())
    });
    for (a, b) in a8.zip(b8) {
        for l in 0..8 {
            let v = a[l] * b[l];
            sum[l] += v;
            size[l] += v.abs();
        }
    }
    (s + sum.iter().sum::<f64>(), m + size.iter().sum::<f64>())
}

/// A batch's activation jet (`crate::model::taylor`): from z and its first
/// two derivatives along a direction, u = σ(z), u' = σ'(z) z' and u'' =
/// σ''(z) z'² + σ'(z) z'', with (σ, σ', σ'') from `sigma`.
#[inline(always)]
pub(crate) fn jet_loop(z: [&[f64]; 3], u: [&mut [f64]; 3], sigma: impl Fn(f64) -> (f64, f64, f64)) {
    let [z0, z1, z2] = z;
    let [u0, u1, u2] = u;
    let outs = u0.iter_mut().zip(u1.iter_mut()).zip(u2.iter_mut());
    for (((u0, u1), u2), ((&z0, &z1), &z2)) in outs.zip(z0.iter().zip(z1).zip(z2)) {
        let (s, d, dd) = sigma(z0);
        *u0 = s;
        *u1 = d * z1;
        *u2 = dd * z1 * z1 + d * z2;
    }
}

/// The tanh jet: σ' = sech² z, σ'' = −2 tanh z sech² z.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn tanh_jet(z: [&[f64]; 3], u: [&mut [f64]; 3]) {
    jet_loop(z, u, |z| {
        let (t, d) = tanh_pair(z);
        (t, d, -2.0 * t * d)
    });
}

/// The sigmoid jet: σ' = s r, σ'' = s r (r − s), r = σ(−z).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn sigmoid_jet(z: [&[f64]; 3], u: [&mut [f64]; 3]) {
    jet_loop(z, u, |z| {
        let (s, r) = sigmoid_pair(z);
        (s, s * r, s * r * (r - s))
    });
}

/// The silu jet: σ = z s, σ' = s + z s r, σ'' = s r (2 + z (r − s)).
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512dq",
    "x86_64+avx2+avx+fma",
    "x86_64+sse4.1"
))]
pub fn silu_jet(z: [&[f64]; 3], u: [&mut [f64]; 3]) {
    jet_loop(z, u, |z| {
        let (s, r) = sigmoid_pair(z);
        (z * s, s + z * s * r, s * r * (2.0 + z * (r - s)))
    });
}
