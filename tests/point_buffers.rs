//! The per-point optimizer buffers kept as vectors times scales
//! (`discrete::buffers`, proofs.md §12, C47) against the eager recurrence
//! of SPEC §9: every buffer updated every step, every share G_{k,i} formed,
//! Lᵀ G_k summed directly. The two differ by reassociation only, so they
//! agree to the forward-error bound of proofs.md §12, 8.4.
use pathkernel::discrete::buffers::PointBuffers;
use pathkernel::optimizer::Linear;
use proptest::prelude::*;

/// One step: the batch mask, the inputs x (P x N; only the batch's are
/// read), eta, and L (P x width).
type Step = (Vec<bool>, Vec<f64>, f64, Vec<f64>);

/// One drawn run: sizes, the linear map and the steps.
#[derive(Debug, Clone)]
struct Case {
    p: usize,
    n: usize,
    width: usize,
    linear: Linear,
    steps: Vec<Step>,
}

fn case() -> impl Strategy<Value = Case> {
    let decay = prop_oneof![
        Just(0.0),
        Just(1e-100),
        Just(0.5),
        Just(0.9),
        Just(0.999),
        0.0..1.0f64
    ];
    let linear = (
        decay,
        0.01..1.0f64,
        prop_oneof![Just(0.0), Just(1.0)],
        0.1..2.0f64,
    )
        .prop_map(|(decay, gain, pass, keep)| Linear {
            decay,
            gain,
            pass,
            keep,
        });
    (1..12usize, 1..7usize, 1..4usize, 1..25usize, linear).prop_flat_map(
        |(p, n, width, k, linear)| {
            let step = (
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(-1.0..1.0f64, p * n),
                0.001..0.5f64,
                prop::collection::vec(-1.0..1.0f64, p * width),
            );
            prop::collection::vec(step, k).prop_map(move |steps| Case {
                p,
                n,
                width,
                linear,
                steps,
            })
        },
    )
}

/// Σ_p L(p, q) G_{k,i}(p) by the eager recurrence, and the same sums over
/// absolute values (every term's magnitude), per step, (width x N).
fn eager(c: &Case) -> Vec<(Vec<f64>, Vec<f64>)> {
    let (p, n, w, l) = (c.p, c.n, c.width, c.linear);
    let (mut buf, mut mag) = (vec![0.0; p * n], vec![0.0; p * n]);
    let mut out = Vec::new();
    for (mask, x, eta, lq) in &c.steps {
        let (mut sum, mut size) = (vec![0.0; w * n], vec![0.0; w * n]);
        for i in 0..n {
            for j in 0..p {
                let xi = if mask[i] { x[i * p + j] } else { 0.0 };
                let b = &mut buf[i * p + j];
                *b = l.decay * *b + l.gain * xi;
                let h = &mut mag[i * p + j];
                *h = l.decay.abs() * *h + l.gain.abs() * xi.abs();
                let g = -eta * (l.pass * xi + l.keep * *b);
                let gh = eta * (l.pass.abs() * xi.abs() + l.keep.abs() * *h);
                for q in 0..w {
                    sum[i * w + q] += lq[q * p + j] * g;
                    size[i * w + q] += lq[q * p + j].abs() * gh;
                }
            }
        }
        out.push((sum, size));
    }
    out
}

proptest! {
    #![proptest_config(crate::cases(256))]

    /// C47: at every step, |lazy − eager| ≤ 2 γ_n Σ|terms| with
    /// n = P + 3K + 8 roundings on any term's path (proofs.md §12, 8.4).
    #[test]
    fn scaled_buffers_give_the_eager_sums(c in case()) {
        let (p, n, w, l) = (c.p, c.n, c.width, c.linear);
        let mut buffers = PointBuffers::new(p, n, w);
        let mut got = vec![0.0; w * n];
        let k = c.steps.len();
        let roundings = (p + 3 * k + 8) as f64;
        let gamma = roundings * f64::EPSILON / (1.0 - roundings * f64::EPSILON);
        for ((mask, x, eta, lq), (want, size)) in c.steps.iter().zip(eager(&c)) {
            let batch = (0..n).filter(|&i| mask[i]);
            let (rows, inputs) = buffers.batch_inputs(batch);
            let rows = rows.to_vec();
            for (col, &i) in inputs.chunks_exact_mut(p).zip(&rows) {
                col.copy_from_slice(&x[i * p..(i + 1) * p]);
            }
            buffers.advance(l);
            buffers.contract(lq, w, *eta, l, &mut got);
            for ((g, v), s) in got.iter().zip(&want).zip(&size) {
                prop_assert!((g - v).abs() <= 2.0 * gamma * s, "{g} vs {v} (terms {s})");
            }
        }
    }
}
