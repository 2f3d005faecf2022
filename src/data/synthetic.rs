//! The synthetic data sets. Every draw comes from
//! `rng::generator(seed, RngStream::Data)`, in this order:
//!
//! 1. (linear only) the coefficients a_j ~ Normal(0, 1/dim), j = 1..dim;
//! 2. the n_train training inputs, row by row;
//! 3. the n_test query inputs, row by row;
//! 4. one noise draw per training row: z ~ Normal(0, 1) for regression,
//!    u ~ Uniform[0, 1) for classification (drawn even when noise is 0).
//!
//! A uniform coordinate is 2u - 1 with u in [0, 1) from rand's 53-bit
//! `random::<f64>()`, so inputs lie in [-1, 1). Normals are rand_distr's
//! `StandardNormal`. The query inputs carry no targets.
use super::Dataset;
use crate::rng::{RngStream, generator};
use crate::spec::SyntheticFunction;
use nalgebra::DMatrix;
use rand::RngExt;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;

/// The generator's name as written in a spec.
pub(super) fn name(function: SyntheticFunction) -> &'static str {
    match function {
        SyntheticFunction::Sine => "sine",
        SyntheticFunction::Linear => "linear",
        SyntheticFunction::Xor => "xor",
        SyntheticFunction::Moons => "moons",
    }
}

/// The data set of `function` for `seed` (the spec is validated: sizes >= 1,
/// dim >= 2 for xor and moons, 0 <= noise <= 1/2 for them).
///
/// - sine: x uniform in [-1, 1)^dim, y = sin(pi sum_j x_j / sqrt(dim)) + noise z.
/// - linear: x uniform, y = a . x + noise z.
/// - xor: x uniform, y = +1 if x_1 x_2 >= 0 else -1; flipped when u < noise.
/// - moons: row i lies on the upper moon (label -1) for even i, on the lower
///   (label +1) for odd i, at angle theta = pi u: (cos theta, sin theta) or
///   (1 - cos theta, 1/2 - sin theta), then shifted and scaled by
///   ((p_1 - 1/2) / 1.5, (p_2 - 1/4) / 1.5) into [-1, 1] x [-1/2, 1/2];
///   coordinates 3..dim are uniform. Labels flipped when u < noise.
pub(super) fn generate(
    function: SyntheticFunction,
    n_train: usize,
    n_test: usize,
    dim: usize,
    noise: f64,
    seed: u64,
) -> Dataset {
    let mut rng = generator(seed, RngStream::Data);
    let coefficients: Vec<f64> = match function {
        SyntheticFunction::Linear => {
            let sd = 1.0 / (dim as f64).sqrt();
            (0..dim).map(|_| sd * normal(&mut rng)).collect()
        }
        _ => Vec::new(),
    };
    let train_x = inputs(function, n_train, dim, &mut rng);
    let test_x = inputs(function, n_test, dim, &mut rng);
    // Row by row, so that the noise draws come in row order.
    let mut train_y = Vec::with_capacity(n_train);
    for i in 0..n_train {
        let x: Vec<f64> = train_x.row(i).iter().copied().collect();
        train_y.push(match function {
            SyntheticFunction::Sine => {
                let s: f64 = x.iter().sum();
                (PI * s / (dim as f64).sqrt()).sin() + noise * normal(&mut rng)
            }
            SyntheticFunction::Linear => {
                let dot: f64 = x.iter().zip(&coefficients).map(|(x, a)| x * a).sum();
                dot + noise * normal(&mut rng)
            }
            SyntheticFunction::Xor | SyntheticFunction::Moons => {
                let label = match function {
                    SyntheticFunction::Xor if x[0] * x[1] >= 0.0 => 1.0,
                    SyntheticFunction::Xor => -1.0,
                    _ => moon_label(i),
                };
                let flip = rng.random::<f64>() < noise;
                if flip { -label } else { label }
            }
        });
    }
    Dataset {
        train_x,
        train_y: DMatrix::from_vec(n_train, 1, train_y),
        test_x,
        test_y: None,
    }
}

/// n rows of inputs for `function`, drawn row by row.
fn inputs(
    function: SyntheticFunction,
    n: usize,
    dim: usize,
    rng: &mut ChaCha20Rng,
) -> DMatrix<f64> {
    let mut values = Vec::with_capacity(n * dim);
    for i in 0..n {
        let mut first = 0;
        if function == SyntheticFunction::Moons {
            values.extend(moon_point(i, rng));
            first = 2;
        }
        for _ in first..dim {
            values.push(uniform(rng));
        }
    }
    DMatrix::from_row_slice(n, dim, &values)
}

/// Even rows on the upper moon (-1), odd rows on the lower (+1).
fn moon_label(i: usize) -> f64 {
    if i.is_multiple_of(2) { -1.0 } else { 1.0 }
}

fn moon_point(i: usize, rng: &mut ChaCha20Rng) -> [f64; 2] {
    let theta = PI * rng.random::<f64>();
    let (p1, p2) = if moon_label(i) < 0.0 {
        (theta.cos(), theta.sin())
    } else {
        (1.0 - theta.cos(), 0.5 - theta.sin())
    };
    [(p1 - 0.5) / 1.5, (p2 - 0.25) / 1.5]
}

fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    2.0 * rng.random::<f64>() - 1.0
}

fn normal(rng: &mut ChaCha20Rng) -> f64 {
    StandardNormal.sample(rng)
}
