//! `gemm` equals a plain triple loop, on products large enough to take its
//! split-and-join path (the models of the other tests are too small to reach
//! it, so without these a wrong split went unnoticed: mutation testing).
use nalgebra::DMatrix;
use pathkernel::linalg::{gemm, view, view_mut};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

fn random(rows: usize, cols: usize, rng: &mut ChaCha20Rng) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| StandardNormal.sample(rng))
}

/// dst (m x n) = [dst +] alpha lhs (m x k) rhs (k x n) through `gemm`, against
/// the same sums taken in index order. Both orders of a k-term sum carry an
/// error of at most gamma_k = k u (u = EPSILON / 2) times the sum of absolute
/// terms, the accumulation and the alpha scaling one rounding more each, so
/// they differ by at most (k + 2) EPSILON (|alpha| sum |a b| + |dst0|).
fn check(m: usize, n: usize, k: usize, accumulate: bool, seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let (a, b, c0) = (
        random(m, k, &mut rng),
        random(k, n, &mut rng),
        random(m, n, &mut rng),
    );
    let alpha = -0.75;
    let mut got = c0.clone();
    gemm(view_mut(&mut got), accumulate, view(&a), view(&b), alpha);
    for i in 0..m {
        for j in 0..n {
            let (mut sum, mut abs) = (0.0, 0.0);
            for l in 0..k {
                sum += a[(i, l)] * b[(l, j)];
                abs += (a[(i, l)] * b[(l, j)]).abs();
            }
            let base = if accumulate { c0[(i, j)] } else { 0.0 };
            let want = base + alpha * sum;
            let tol = (k as f64 + 2.0) * f64::EPSILON * (alpha.abs() * abs + base.abs());
            assert!(
                (got[(i, j)] - want).abs() <= tol,
                "{m}x{n}x{k} accumulate={accumulate} at ({i}, {j}): {} vs {want}",
                got[(i, j)]
            );
        }
    }
}

/// 200 x 150 x 40 is 1.2e6 multiply-adds, over twice the 2^18 threshold with
/// both sides above 2 x 48: it is split by rows, then its halves by columns;
/// 150 x 201 the other way round (an odd side), 1000 x 20 by rows only.
#[test]
fn split_products_equal_the_plain_sum() {
    for accumulate in [false, true] {
        check(200, 150, 40, accumulate, 1);
        check(150, 201, 40, accumulate, 2);
        check(1000, 20, 40, accumulate, 3);
    }
}

/// Small products, and 90 x 90 x 80 (above the work threshold but with no
/// side of 2 x 48), stay on one thread and must agree all the same.
#[test]
fn unsplit_products_equal_the_plain_sum() {
    for accumulate in [false, true] {
        check(3, 5, 7, accumulate, 4);
        check(90, 90, 80, accumulate, 5);
        check(1, 1, 1, accumulate, 6);
    }
}
