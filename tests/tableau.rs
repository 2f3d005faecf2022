//! The Butcher tableaux against the order conditions, and the rooted-tree
//! machinery against known counts and hand-written conditions.

use approx::assert_relative_eq;
use pathkernel::order_conditions::{
    Condition, conditions, max_residual_by_order, rooted_trees, satisfied_order,
};
use pathkernel::tableau::{ErrorEstimator, Tableau};
use proptest::prelude::*;

fn all_tableaux() -> Vec<Tableau> {
    ["euler", "heun", "rk4", "dopri5", "dop853", "verner98"]
        .iter()
        .map(|n| Tableau::by_name(n).expect("a known method"))
        .collect()
}

const U: f64 = f64::EPSILON / 2.0;

// ---------------------------------------------------------------- trees --

#[test]
fn tree_counts_match_oeis_a000081() {
    let trees = rooted_trees(10);
    let mut counts = vec![0usize; 10];
    for t in &trees {
        counts[t.order as usize - 1] += 1;
    }
    assert_eq!(counts, [1, 1, 2, 4, 9, 20, 48, 115, 286, 719]);
}

#[test]
fn trees_are_distinct_and_subtrees_come_first() {
    let trees = rooted_trees(9);
    let mut seen = std::collections::HashSet::new();
    for (i, t) in trees.iter().enumerate() {
        assert!(seen.insert(t.children.clone()), "tree {i} repeats");
        assert!(t.children.iter().all(|&c| c < i));
        assert!(t.children.windows(2).all(|w| w[0] <= w[1]));
    }
}

/// Two classical identities tie gamma and sigma down for every order:
/// sum over trees of order n of n!/sigma(t) = n^(n-1) (Cayley: labelled
/// rooted trees) and of n!/(sigma(t) gamma(t)) = (n-1)! (monotonically
/// labelled trees). Integer arithmetic: exact.
#[test]
fn gamma_and_sigma_satisfy_the_labelling_identities() {
    let trees = rooted_trees(10);
    for n in 1..=10u64 {
        let fact: u64 = (1..=n).product();
        let of_order = trees.iter().filter(|t| u64::from(t.order) == n);
        let (mut labelled, mut monotone) = (0u64, 0u64);
        for t in of_order {
            assert_eq!(fact % t.sigma, 0);
            assert_eq!(fact % (t.sigma * t.gamma), 0);
            labelled += fact / t.sigma;
            monotone += fact / (t.sigma * t.gamma);
        }
        assert_eq!(labelled, n.pow(n as u32 - 1), "order {n}");
        assert_eq!(monotone, fact / n, "order {n}");
    }
}

/// A random explicit 4-stage tableau (entries in [-1, 1]).
fn random_tableau() -> impl Strategy<Value = (Vec<Vec<f64>>, Vec<f64>)> {
    (
        prop::collection::vec(-1.0f64..1.0, 6),
        prop::collection::vec(-1.0f64..1.0, 4),
    )
        .prop_map(|(l, b)| {
            let a = vec![vec![], vec![l[0]], vec![l[1], l[2]], vec![l[3], l[4], l[5]]];
            (a, b)
        })
}

proptest! {
    /// The recursive Phi against the conditions of orders 1-4 written out by
    /// hand (HNW I, §II.2), told apart by gamma (distinct within each
    /// order up to 4). Terms are below 4^4 in size, 16 roundings each, so
    /// 1e-12 absolute covers both summation orders with room.
    #[test]
    fn phi_matches_the_hand_written_conditions((a, b) in random_tableau()) {
        let s = 4;
        let at = |i: usize, j: usize| if j < i { a[i][j] } else { 0.0 };
        let c: Vec<f64> = (0..s).map(|i| (0..s).map(|j| at(i, j)).sum()).collect();
        let ac = |i: usize| (0..s).map(|j| at(i, j) * c[j]).sum::<f64>();
        let acc = |i: usize| (0..s).map(|j| at(i, j) * c[j] * c[j]).sum::<f64>();
        let aac = |i: usize| (0..s).map(|j| at(i, j) * ac(j)).sum::<f64>();
        let sum = |f: &dyn Fn(usize) -> f64| (0..s).map(|i| b[i] * f(i)).sum::<f64>();
        let expected: Vec<(u64, f64)> = vec![
            (1, sum(&|_| 1.0)),
            (2, sum(&|i| c[i])),
            (3, sum(&|i| c[i] * c[i])),
            (6, sum(&ac)),
            (4, sum(&|i| c[i].powi(3))),
            (8, sum(&|i| c[i] * ac(i))),
            (12, sum(&acc)),
            (24, sum(&aac)),
        ];
        let trees = rooted_trees(4);
        let got = conditions(&a, &b, &trees);
        prop_assert_eq!(got.len(), expected.len());
        for (gamma, value) in expected {
            let hit: Vec<&Condition> = got.iter().filter(|c| trees[c.tree].gamma == gamma).collect();
            prop_assert_eq!(hit.len(), 1);
            prop_assert!((hit[0].phi - value).abs() <= 1e-12, "gamma {}: {} vs {}", gamma, hit[0].phi, value);
            assert_relative_eq!(hit[0].residual, value - 1.0 / gamma as f64, epsilon = 1e-12);
        }
    }
}

// ------------------------------------------------------------- tableaux --

#[test]
fn shapes_are_consistent() {
    for t in all_tableaux() {
        let s = t.stages();
        assert_eq!(t.c.len(), s, "{}", t.name);
        assert_eq!(t.a.len(), s, "{}", t.name);
        assert_eq!(t.c[0], 0.0, "{}", t.name);
        for (i, row) in t.a.iter().enumerate() {
            assert_eq!(row.len(), i, "{} row {i}", t.name);
        }
        match &t.error {
            ErrorEstimator::None => {}
            ErrorEstimator::Embedded { e, .. } => assert_eq!(e.len(), s, "{}", t.name),
            ErrorEstimator::Dop853 { e5, e3 } => {
                assert_eq!((e5.len(), e3.len()), (s, s), "{}", t.name)
            }
        }
    }
    assert_eq!(Tableau::dopri5().stages(), 7);
    assert_eq!(Tableau::dop853().stages(), 12);
    assert_eq!(Tableau::verner98().stages(), 16);
}

/// c_i = sum_j a_ij. Each literal carries at most 3 roundings (p / q), and
/// the sum i - 1 more, so |c_i - sum| <= (s + 6) u (|c_i| + sum |a_ij|).
#[test]
fn row_sums_equal_nodes() {
    for t in all_tableaux() {
        let s = t.stages() as f64;
        for (i, row) in t.a.iter().enumerate() {
            let sum: f64 = row.iter().sum();
            let size = t.c[i].abs() + row.iter().map(|x| x.abs()).sum::<f64>();
            let bound = (s + 6.0) * U * size;
            assert!(
                (t.c[i] - sum).abs() <= bound,
                "{} stage {}: c = {}, row sum = {}, bound {bound:e}",
                t.name,
                i + 1,
                t.c[i],
                sum
            );
        }
    }
}

/// Weights `b` have order exactly `order`: every condition up to `order`
/// holds within its f64 rounding bound (Condition::bound), and some
/// condition of order + 1 misses by more than a thousand times its bound,
/// which rounding cannot explain.
fn assert_exact_order(name: &str, a: &[Vec<f64>], b: &[f64], order: u32) {
    assert_eq!(
        satisfied_order(a, b, order + 1, 1.0),
        order,
        "{name}: residuals by order {:?}",
        max_residual_by_order(a, b, order + 1)
    );
    let trees = rooted_trees(order + 1);
    let clear_miss = conditions(a, b, &trees)
        .iter()
        .filter(|c| c.order == order + 1)
        .any(|c| c.residual.abs() > 1e3 * c.bound);
    assert!(
        clear_miss,
        "{name}: no clear failure at order {}",
        order + 1
    );
}

#[test]
fn each_method_has_its_claimed_order() {
    let claimed = [
        ("euler", 1),
        ("heun", 2),
        ("rk4", 4),
        ("dopri5", 5),
        ("dop853", 8),
        ("verner98", 9),
    ];
    for (name, order) in claimed {
        let t = Tableau::by_name(name).unwrap();
        assert_eq!(t.order, order, "{name}");
        assert_exact_order(name, &t.a, &t.b, order);
    }
}

/// What the estimators carry: dopri5's b - e is Dormand–Prince's 4th-order
/// solution; in DOP853, b - e5 has order 5 and b - e3 = bhh order 3 (each
/// exactly: the next order fails); Verner's b_hat has order 8.
#[test]
fn embedded_weights_have_their_orders() {
    let claimed: [(&str, &[u32]); 6] = [
        ("euler", &[]),
        ("heun", &[]),
        ("rk4", &[]),
        ("dopri5", &[4]),
        ("dop853", &[5, 3]),
        ("verner98", &[8]),
    ];
    for (name, orders) in claimed {
        let t = Tableau::by_name(name).unwrap();
        let embedded = t.embedded_weights();
        let got: Vec<u32> = embedded.iter().map(|w| w.order).collect();
        assert_eq!(got, orders, "{name}");
        for w in &embedded {
            assert_exact_order(name, &t.a, &w.b_hat, w.order);
        }
        if let ErrorEstimator::Embedded { order, .. } = t.error {
            assert_eq!(order, orders[0], "{name}");
        }
    }
}

/// The stages each published weight vector uses (1-based), which pins the
/// sign of e: the order conditions alone cannot, as b + e has the same order
/// as b - e. dop853.f: b on 1, 6..12, bhh on 1, 9, 12, er on 1, 6..12;
/// Verner: b on 1, 8..15, b_hat on 1, 8..13, 16; dopri5: b_hat skips 2.
#[test]
fn weights_use_the_published_stages() {
    let support = |w: &[f64]| -> Vec<usize> {
        w.iter()
            .enumerate()
            .filter(|(_, x)| **x != 0.0)
            .map(|(i, _)| i + 1)
            .collect()
    };
    let d = Tableau::dop853();
    assert_eq!(support(&d.b), [1, 6, 7, 8, 9, 10, 11, 12]);
    let ErrorEstimator::Dop853 { e5, .. } = &d.error else {
        panic!("dop853 has Hairer's estimator pair")
    };
    assert_eq!(support(e5), [1, 6, 7, 8, 9, 10, 11, 12]);
    let w = d.embedded_weights();
    assert_eq!(support(&w[1].b_hat), [1, 9, 12]);
    let v = Tableau::verner98();
    assert_eq!(support(&v.b), [1, 8, 9, 10, 11, 12, 13, 14, 15]);
    assert_eq!(
        support(&v.embedded_weights()[0].b_hat),
        [1, 8, 9, 10, 11, 12, 13, 16]
    );
    let p = Tableau::dopri5();
    assert_eq!(support(&p.embedded_weights()[0].b_hat), [1, 3, 4, 5, 6, 7]);
}

#[test]
fn fsal_is_detected() {
    let fsal: Vec<(&str, bool)> = all_tableaux()
        .iter()
        .map(|t| (t.name, t.is_fsal()))
        .collect();
    assert_eq!(
        fsal,
        [
            ("euler", false),
            ("heun", false),
            ("rk4", false),
            ("dopri5", true),
            ("dop853", false),
            ("verner98", false),
        ]
    );
}

#[test]
fn names_resolve() {
    for name in Tableau::NAMES {
        let t = Tableau::by_name(name).unwrap_or_else(|| panic!("{name} unknown"));
        let expected = if name == "gd" { "euler" } else { name };
        assert_eq!(t.name, expected);
    }
    assert_eq!(Tableau::by_name("gd"), Some(Tableau::euler()));
    assert_eq!(Tableau::by_name("rk45"), None);
    assert_eq!(Tableau::by_name("DOPRI5"), None);
}

/// The whole set of conditions up to order 10 for the 16-stage pair (1205
/// trees in one pass); the per-order maxima agree with the per-tree list,
/// vanish to rounding through order 9 and not at order 10.
#[test]
fn verner_up_to_order_ten() {
    let t = Tableau::verner98();
    let worst = max_residual_by_order(&t.a, &t.b, 10);
    let trees = rooted_trees(10);
    let mut expected = vec![0.0f64; 10];
    for c in conditions(&t.a, &t.b, &trees) {
        let m = &mut expected[c.order as usize - 1];
        *m = m.max(c.residual.abs());
    }
    assert_eq!(worst, expected);
    assert_eq!(satisfied_order(&t.a, &t.b, 10, 1.0), 9);
}

#[test]
fn nan_weights_satisfy_nothing() {
    let t = Tableau::rk4();
    let b = vec![f64::NAN; 4];
    assert_eq!(satisfied_order(&t.a, &b, 5, 1.0), 0);
}
