//! Butcher's order conditions, generated from rooted trees and evaluated on a
//! tableau: weights `b` over stages `a` give order p exactly when
//! Phi(t) = 1/gamma(t) for every rooted tree t with at most p vertices
//! (J. C. Butcher 1963; Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.2).
//!
//! Trees come from canonical level sequences (Beyer & Hedetniemi 1980), so
//! each tree appears once; a tree's subtrees are earlier entries of the same
//! list, which lets every evaluation reuse its subtrees' stage vectors.

use std::collections::HashMap;

/// A rooted tree, as an entry of the list made by [`rooted_trees`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// Subtrees hanging from the root: indices of earlier entries of the same
    /// list, in increasing order, repeated by multiplicity.
    pub children: Vec<usize>,
    /// Number of vertices |t|.
    pub order: u32,
    /// Density gamma(t) = |t| * prod gamma(subtrees).
    pub gamma: u64,
    /// Symmetry sigma(t) = prod sigma(subtree)^m * m! over distinct subtrees
    /// of multiplicity m: the order of the tree's automorphism group.
    pub sigma: u64,
}

/// Largest order for which gamma and sigma fit in a u64 (they are at most
/// |t|!); far beyond any practical use, as there are ~1e7 trees of order 20.
pub const MAX_TREE_ORDER: u32 = 20;

/// All rooted trees with 1 to `max_order` vertices, by increasing order; the
/// single vertex is entry 0. Counts per order: 1, 1, 2, 4, 9, 20, 48, 115,
/// 286, 719, ... (OEIS A000081). `max_order` is clamped to [`MAX_TREE_ORDER`].
pub fn rooted_trees(max_order: u32) -> Vec<Tree> {
    let max_order = max_order.min(MAX_TREE_ORDER) as usize;
    let mut trees = Vec::new();
    let mut ids: HashMap<Vec<usize>, usize> = HashMap::new();
    for n in 1..=max_order {
        for_each_level_sequence(n, |levels| {
            let (children, end) = subtree_ids(levels, 0, &ids);
            debug_assert_eq!(end, n);
            debug_assert!(!ids.contains_key(&children), "a tree generated twice");
            let tree = make_tree(children.clone(), &trees);
            ids.insert(children, trees.len());
            trees.push(tree);
        });
    }
    trees
}

/// Calls `visit` with the canonical level sequence (root at level 1) of each
/// rooted tree with `n` vertices, in decreasing lexicographic order: from the
/// path [1, 2, ..., n] to the star [1, 2, 2, ..., 2]. Beyer & Hedetniemi,
/// "Constant time generation of rooted trees", SIAM J. Comput. 9 (1980).
fn for_each_level_sequence(n: usize, mut visit: impl FnMut(&[u32])) {
    if n == 0 {
        return;
    }
    let mut l: Vec<u32> = (1..=n as u32).collect();
    loop {
        visit(&l);
        // p: the last vertex deeper than level 2; none left means the star.
        let Some(p) = l.iter().rposition(|&x| x > 2) else {
            return;
        };
        // q: p's parent, the last earlier vertex one level up.
        let q = l[..p]
            .iter()
            .rposition(|&x| x == l[p] - 1)
            .expect("a vertex below level 2 has a parent");
        for i in p..n {
            l[i] = l[i - (p - q)];
        }
    }
}

/// Ids of the subtrees of the vertex at `pos` (sorted), and the position just
/// past its subtree. Every proper subtree is smaller than the tree being
/// generated, so it has already been interned.
fn subtree_ids(
    levels: &[u32],
    pos: usize,
    ids: &HashMap<Vec<usize>, usize>,
) -> (Vec<usize>, usize) {
    let mut children = Vec::new();
    let mut next = pos + 1;
    while next < levels.len() && levels[next] > levels[pos] {
        let (grandchildren, end) = subtree_ids(levels, next, ids);
        children.push(ids[&grandchildren]);
        next = end;
    }
    children.sort_unstable();
    (children, next)
}

fn make_tree(children: Vec<usize>, trees: &[Tree]) -> Tree {
    let order = 1 + children.iter().map(|&c| trees[c].order).sum::<u32>();
    let gamma = u64::from(order) * children.iter().map(|&c| trees[c].gamma).product::<u64>();
    let mut sigma = 1u64;
    for run in children.chunk_by(|x, y| x == y) {
        let m = run.len() as u64;
        sigma *= trees[run[0]].sigma.pow(run.len() as u32) * (1..=m).product::<u64>();
    }
    Tree {
        children,
        order,
        gamma,
        sigma,
    }
}

/// One order condition evaluated on a tableau's weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    /// Index of the tree in the list given to [`conditions`].
    pub tree: usize,
    pub order: u32,
    /// The elementary weight Phi(t) = sum_i b_i Phi_i(t).
    pub phi: f64,
    /// Phi(t) - 1/gamma(t): zero in exact arithmetic when the condition holds.
    pub residual: f64,
    /// Bound on |residual| due to f64 alone, for a method whose exact
    /// coefficients satisfy the condition: `gamma_k * magnitude + u / gamma(t)`
    /// (Higham's gamma_k = k u / (1 - k u), u = EPSILON / 2), where magnitude
    /// is Phi(t) evaluated on |a| and |b| (the sum of |terms|) and
    /// k = |t| (s + 4) counts the roundings along one term: per vertex, up to
    /// 3 for its coefficient (a literal `p / q` is two rounded literals and a
    /// division), 1 multiplication, s - 1 additions, plus |t| - 1 products.
    pub bound: f64,
}

/// The order conditions of weights `b` on stages `a` (`a[i]` holds a_ij for
/// j < i, as in [`crate::tableau::Tableau`]) for each tree of `trees`, which
/// must be a list made by [`rooted_trees`]. Phi_i is computed once per tree
/// from its subtrees' vectors: O(trees x stages^2) work in all.
pub fn conditions(a: &[Vec<f64>], b: &[f64], trees: &[Tree]) -> Vec<Condition> {
    let s = b.len();
    // Per tree: Phi_i(t) and (A Phi(t))_i, and the same on absolute values.
    let mut phi_i = vec![0.0; trees.len() * s];
    let mut a_phi = vec![0.0; trees.len() * s];
    let mut phi_i_abs = vec![0.0; trees.len() * s];
    let mut a_phi_abs = vec![0.0; trees.len() * s];
    let mut out = Vec::with_capacity(trees.len());
    let u = f64::EPSILON / 2.0;
    for (t, tree) in trees.iter().enumerate() {
        let at = t * s;
        for i in 0..s {
            let (mut p, mut q) = (1.0, 1.0);
            for &c in &tree.children {
                p *= a_phi[c * s + i];
                q *= a_phi_abs[c * s + i];
            }
            phi_i[at + i] = p;
            phi_i_abs[at + i] = q;
        }
        for i in 0..s {
            let row = a.get(i).map_or(&[][..], |r| &r[..r.len().min(i)]);
            let (mut p, mut q) = (0.0, 0.0);
            for (j, &aij) in row.iter().enumerate() {
                p += aij * phi_i[at + j];
                q += aij.abs() * phi_i_abs[at + j];
            }
            a_phi[at + i] = p;
            a_phi_abs[at + i] = q;
        }
        let phi: f64 = (0..s).map(|i| b[i] * phi_i[at + i]).sum();
        let magnitude: f64 = (0..s).map(|i| b[i].abs() * phi_i_abs[at + i]).sum();
        let inv_gamma = 1.0 / tree.gamma as f64;
        let k = f64::from(tree.order) * (s as f64 + 4.0) * u;
        out.push(Condition {
            tree: t,
            order: tree.order,
            phi,
            residual: phi - inv_gamma,
            bound: k / (1.0 - k) * magnitude + u * inv_gamma,
        });
    }
    out
}

/// max |Phi(t) - 1/gamma(t)| over the trees of each order 1..=max_order
/// (entry p - 1 for order p). Pass b - e for an embedded method's weights.
pub fn max_residual_by_order(a: &[Vec<f64>], b: &[f64], max_order: u32) -> Vec<f64> {
    let trees = rooted_trees(max_order);
    let mut worst = vec![0.0f64; trees.last().map_or(0, |t| t.order as usize)];
    for c in conditions(a, b, &trees) {
        let w = &mut worst[c.order as usize - 1];
        *w = w.max(c.residual.abs());
    }
    worst
}

/// The largest p <= max_order such that every condition of order <= p holds
/// within `slack` times its rounding [`Condition::bound`] (slack = 1 asks for
/// agreement up to f64 rounding of the coefficients and of the evaluation).
pub fn satisfied_order(a: &[Vec<f64>], b: &[f64], max_order: u32, slack: f64) -> u32 {
    let trees = rooted_trees(max_order);
    conditions(a, b, &trees)
        .iter()
        .filter(|c| c.residual.is_nan() || c.residual.abs() > slack * c.bound)
        .map(|c| c.order - 1)
        .min()
        .unwrap_or_else(|| trees.last().map_or(0, |t| t.order))
}
