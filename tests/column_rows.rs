//! `Jacobians::column_rows`, the piece of a held sum of Jacobians that a
//! step's tile of the deferred sums forms where it reads it
//! (`discrete::query`), against the whole column `Jacobians::finish`
//! writes: the same numbers, bit for bit (the same products and sums in
//! the same order), for any range of parameters, cutting rows of dense
//! blocks, biases and explicit blocks anywhere.
use crate::model::arch_strategy;
use pathkernel::jacobian::Jacobians;
use pathkernel::model;
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

proptest! {
    #![proptest_config(crate::cases(64))]

    #[test]
    fn column_rows_are_the_written_column(spec in arch_strategy(), dim in 1usize..4,
                                          rows in 1usize..4, nodes in 1usize..4,
                                          seed in any::<u64>()) {
        let m = model::build(&spec, dim);
        let p = m.n_params();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let x = nalgebra::DMatrix::from_fn(rows, dim, |_, _| rng.random_range(-1.0..1.0));
        let mut tape = m.tape(&x);
        let all: Vec<usize> = (0..rows).collect();
        let columns = rows * spec.outputs();
        let (mut held, mut written) = (
            Jacobians::new(m.as_ref(), &tape, rows, nodes),
            Jacobians::new(m.as_ref(), &tape, rows, nodes),
        );
        held.begin_sum(&all);
        written.begin_sum(&all);
        let mut want = vec![0.0; p * columns];
        for _ in 0..nodes {
            let w: Vec<f64> = (0..p).map(|_| rng.random_range(-1.0..1.0)).collect();
            m.forward(&w, &mut tape);
            m.backward(&w, &mut tape);
            let weight = rng.random_range(0.1..1.0);
            held.add_node(&tape, weight, None, &mut []);
            written.add_node(&tape, weight, None, &mut want);
        }
        written.finish(&mut want);
        prop_assert!(held.held());
        let mut got = vec![f64::NAN; p];
        for j in 0..columns {
            let (a, b) = (rng.random_range(0..=p), rng.random_range(0..=p));
            let range = a.min(b)..a.max(b);
            let out = &mut got[..range.len()];
            held.column_rows(j, range.clone(), out);
            prop_assert_eq!(&*out, &want[j * p + range.start..j * p + range.end], "column {}, rows {:?}", j, range);
        }
    }
}
