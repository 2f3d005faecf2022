//! The per-point optimizer buffers with their sums deferred to each
//! point's draws (`discrete::buffers`, proofs.md §12, 8.5, C48) against the
//! eager recurrence of SPEC §9: every buffer updated every step, every
//! share G_{k,i} formed, Lᵀ G_k summed directly. The two are the same sums
//! reassociated, so they agree to the forward-error bound of 8.5.
use pathkernel::discrete::buffers::{PointBuffers, REBASE_BELOW};
use pathkernel::discrete::query::Query;
use pathkernel::optimizer::Linear;
use proptest::prelude::*;

/// One step: the batch mask, the inputs x (P x N; only the batch's are
/// read), eta, keep (Adam's bias correction changes it per step), L (P x
/// width), and whether every sum is settled after the step (`finish`,
/// which a run calls once, mid-run here to test that it is a rebase).
#[derive(Debug, Clone)]
struct Step {
    mask: Vec<bool>,
    x: Vec<f64>,
    eta: f64,
    keep: f64,
    l: Vec<f64>,
    settle: bool,
}

/// One drawn run: sizes, the map's fixed numbers and the steps.
#[derive(Debug, Clone)]
struct Case {
    p: usize,
    n: usize,
    width: usize,
    decay: f64,
    gain: f64,
    pass: f64,
    steps: Vec<Step>,
    /// A step's tiles (parameters, columns of both streams side by side).
    tiles: (usize, usize),
}

impl Case {
    fn linear(&self, s: &Step) -> Linear {
        Linear {
            decay: self.decay,
            gain: self.gain,
            pass: self.pass,
            keep: s.keep,
        }
    }
}

fn case() -> impl Strategy<Value = Case> {
    // sgd momentum (gain 1, pass 0; Nesterov pass 1), Adam (gain 1 − β1,
    // keep 1 / (1 − β1^t)), and decays that rebase every step (0, 1e−100,
    // 0.01), every few steps (0.5) or rarely (0.9, 0.999).
    let decay = prop_oneof![
        Just(0.0),
        Just(1e-100),
        Just(0.01),
        Just(0.5),
        Just(0.9),
        Just(0.999),
        0.0..1.0f64
    ];
    let fixed = (decay, 0.01..1.0f64, prop_oneof![Just(0.0), Just(1.0)]);
    let tiles = (1..12usize, 1..7usize);
    (1..12usize, 1..7usize, 1..4usize, 1..41usize, fixed, tiles).prop_flat_map(
        |(p, n, width, k, (decay, gain, pass), tiles)| {
            let step = (
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(-1.0..1.0f64, p * n),
                prop_oneof![Just(0.0), 0.001..0.5f64],
                0.1..10.0f64,
                prop::collection::vec(-1.0..1.0f64, p * width),
                prop::bool::weighted(0.1),
            )
                .prop_map(|(mask, x, eta, keep, l, settle)| Step {
                    mask,
                    x,
                    eta,
                    keep,
                    l,
                    settle,
                });
            prop::collection::vec(step, k).prop_map(move |steps| Case {
                p,
                n,
                width,
                decay,
                gain,
                pass,
                steps,
                tiles,
            })
        },
    )
}

/// Σ_k Σ_p L_k(p, q) G_{k,i}(p) by the eager recurrence, after each step,
/// (width x N).
fn eager(c: &Case) -> Vec<Vec<f64>> {
    let (p, n, w) = (c.p, c.n, c.width);
    let mut buf = vec![0.0; p * n];
    let mut sum = vec![0.0; w * n];
    let mut out = Vec::new();
    for s in &c.steps {
        let l = c.linear(s);
        for i in 0..n {
            for j in 0..p {
                let xi = if s.mask[i] { s.x[i * p + j] } else { 0.0 };
                let b = &mut buf[i * p + j];
                *b = l.decay * *b + l.gain * xi;
                let g = -s.eta * (l.pass * xi + l.keep * *b);
                for q in 0..w {
                    sum[i * w + q] += s.l[q * p + j] * g;
                }
            }
        }
        out.push(sum.clone());
    }
    out
}

/// The windows between rebases, as `PointBuffers` opens them: the step
/// where Π (the product of the decays since the last rebase) would fall
/// below `REBASE_BELOW`, and the step after a settle, start a window.
fn windows(c: &Case) -> Vec<usize> {
    let (mut scale, mut window, mut out) = (1.0, 0, Vec::new());
    for s in &c.steps {
        let next = scale * c.decay;
        if next < REBASE_BELOW {
            window += 1;
            scale = 1.0;
        } else {
            scale = next;
        }
        out.push(window);
        if s.settle {
            window += 1;
            scale = 1.0;
        }
    }
    out
}

/// The magnitudes of 8.5 after each step, (width x N): for every draw d of
/// point i and step j ≥ d, |c_j| gain Π(d+1..j) |L_j|ᵀ|x_{d,i}|, the same
/// for j < d in d's window with the weight 1/Π(j+1..d) (the terms the
/// deferred form cancels), and the pass terms |eta pass| |L_d|ᵀ|x_{d,i}|.
fn magnitudes(c: &Case) -> Vec<Vec<f64>> {
    let (p, n, w, k) = (c.p, c.n, c.width, c.steps.len());
    let window = windows(c);
    let decays = |from: usize, to: usize| c.decay.powi((to - from) as i32);
    let dot = |j: usize, d: usize, i: usize, q: usize| -> f64 {
        let (l, x) = (
            &c.steps[j].l[q * p..(q + 1) * p],
            &c.steps[d].x[i * p..(i + 1) * p],
        );
        l.iter().zip(x).map(|(a, b)| (a * b).abs()).sum()
    };
    let mut out = Vec::new();
    let mut size = vec![0.0; w * n];
    for now in 0..k {
        // Pairs completed at step `now`: j = now with every draw d ≤ now,
        // and d = now with every earlier j of its window.
        for i in 0..n {
            for q in 0..w {
                let sj = &c.steps[now];
                let cj = (sj.eta * sj.keep).abs();
                let mut add = 0.0;
                for d in (0..=now).filter(|&d| c.steps[d].mask[i]) {
                    add += cj * c.gain * decays(d, now) * dot(now, d, i, q);
                }
                if sj.mask[i] {
                    add += (sj.eta * c.pass).abs() * dot(now, now, i, q);
                    for j in (0..now).filter(|&j| window[j] == window[now]) {
                        let s = &c.steps[j];
                        let weight = 1.0 / decays(j, now);
                        add += (s.eta * s.keep).abs() * c.gain * weight * dot(j, now, i, q);
                    }
                }
                size[i * w + q] += add;
            }
        }
        out.push(size.clone());
    }
    out
}

proptest! {
    #![proptest_config(crate::cases(256))]

    /// C48: after every settle and at the end, |deferred − eager| ≤ 3 γ_n
    /// Σ|terms| with n = P + 6K + 8 (proofs.md §12, 8.5), and the bound the
    /// buffers report is at least twice the magnitudes' sum over the points
    /// (plus the pass terms once). A second stream, without a bound, adds
    /// 2 L_k (so its sums are twice the first's) beside it in the same
    /// tiles, which are drawn small so that a step crosses their edges.
    #[test]
    fn deferred_sums_give_the_eager_sums(c in case()) {
        let (p, n, w) = (c.p, c.n, c.width);
        let mut buffers = PointBuffers::new(p, n, &[(w, true), (w, false)])
            .with_tiles(c.tiles.0, c.tiles.1);
        let k = c.steps.len();
        let roundings = (p + 6 * k + 8) as f64;
        let gamma = roundings * f64::EPSILON / (1.0 - roundings * f64::EPSILON);
        let (want, size) = (eager(&c), magnitudes(&c));
        for (at, s) in c.steps.iter().enumerate() {
            let l = c.linear(s);
            let batch = (0..n).filter(|&i| s.mask[i]);
            let (rows, inputs) = buffers.batch_inputs(batch);
            let rows = rows.to_vec();
            for (col, &i) in inputs.chunks_exact_mut(p).zip(&rows) {
                col.copy_from_slice(&s.x[i * p..(i + 1) * p]);
            }
            let twice: Vec<f64> = s.l.iter().map(|v| 2.0 * v).collect();
            let queries = [(Query::Formed(&s.l), None), (Query::Formed(&twice), None)];
            buffers.step(l, s.eta, &queries);
            if !(s.settle || at + 1 == k) {
                continue;
            }
            buffers.finish();
            for (stream, times) in [(0, 1.0), (1, 2.0)] {
                let got = buffers.total(stream);
                for ((g, v), m) in got.iter().zip(&want[at]).zip(&size[at]) {
                    let (v, m) = (times * v, times * m);
                    prop_assert!((g - v).abs() <= 3.0 * gamma * m, "step {at}, stream {stream}: {g} vs {v} (terms {m})");
                }
            }
        }
        prop_assert!(buffers.magnitude(1).iter().all(|&b| b == 0.0), "a stream without a bound reports one");
        // The reported bound: 2 Σ_i of the pair magnitudes + the pass terms.
        let mut pairs = vec![0.0; w];
        let mut passes = vec![0.0; w];
        for s in &c.steps {
            for i in (0..n).filter(|&i| s.mask[i]) {
                for (q, pass) in passes.iter_mut().enumerate() {
                    let l = &s.l[q * p..(q + 1) * p];
                    let x = &s.x[i * p..(i + 1) * p];
                    let dot: f64 = l.iter().zip(x).map(|(a, b)| (a * b).abs()).sum();
                    *pass += (s.eta * c.pass).abs() * dot;
                }
            }
        }
        for (q, total) in pairs.iter_mut().enumerate() {
            *total = (0..n).map(|i| size[k - 1][i * w + q]).sum::<f64>() - passes[q];
        }
        for ((got, pair), pass) in buffers.magnitude(0).iter().zip(&pairs).zip(&passes) {
            let want = 2.0 * pair + pass;
            prop_assert!(*got >= want * (1.0 - 1e-12), "bound {got} below {want}");
        }
    }
}
