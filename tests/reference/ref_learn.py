#!/usr/bin/env python3
"""An independent reference for `pathkernel learn` (SPEC section 13), written
from SPEC.md alone.

    python3 ref_learn.py REPORT LEARN

REPORT is a run's report (SPEC section 5, one output, a fixed-step method,
query targets in test_y); LEARN is what `pathkernel learn REPORT --out LEARN`
wrote. Prints one line per disagreement; exit 1 if there is any, 0 otherwise.

What is recomputed, and how (nothing shared with the Rust code):
- The kernels on the training set. The flow never reads the query points
  (SPEC section 13), so the replay with the training points and then the
  query points as queries is the run of the report's spec with those query
  points: pathkernel_ref.py's Experiment integrates it at the same fixed
  step (its own backprop and tableaus) and gives K^p and A at every row, and
  its tangent kernel at w0 and w_end gives K^g.
- Kernel ridge regression on the training targets with each of K^p,
  K^g(w0), K^g(w_end): dual coefficients (K + lambda I)^-1 y by Gauss-Jordan,
  with K symmetrised, (K + K^T) / 2. Each ridge's leave-one-out error by
  brute force: N refits, each without one point, predicting it; the mean
  of the squared residuals. The ridge grid is the one README.md states
  (SPEC says "a log grid" only): lambda_k = s_max 10^(1 - k/2), k = 0..26,
  s_max the kernel's largest eigenvalue (here by cyclic Jacobi rotations),
  the least leave-one-out error winning and the larger ridge on a tie.
- a*: for each training point i, the least-squares fit over the training
  rows j of A_i(x_j) = K^p(x_j, x_i) a, i.e. sum_j K_ji A_ji / sum_j K_ji^2;
  its prediction f(w0; q) + sum_i K^p(q, x_i) a*_i.
- The kernel machine f(w0; q) + sum_i A_i(q); the network f(w_end; q).
- For each predictor at the query points: the mean squared error against
  test_y, the accuracy where the targets are class labels (-1/+1: the sign;
  0/1: against 1/2), and the root-mean-square and largest distance from
  f(w_end).

Tolerance: 1e-10 of each field's largest magnitude (REL of
pathkernel_ref.py). Both sides integrate the same steps from the same w0,
so K^p and A differ by rounding, about 1e-15 relative (pathkernel_ref.py's
analysis); the chosen ridges in tests/reference_learn.rs are at least 1e-4
s_max (noisy targets), so (K + lambda I), of condition number at most
1 + s_max / lambda, amplifies that rounding to about 1e-11 of alpha at
most; the eigen-route and the refits agree as exactly as that. A case whose
leave-one-out errors tie to 1e-10 between two ridges could choose
differently on the two sides: none of the committed cases comes close.
"""

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pathkernel_ref as ref  # noqa: E402

GRID = 27
REL = 1e-10


def solve(a, b):
    inv = ref.inverse(a)
    if inv is None:
        return None
    return [math.fsum(r[j] * b[j] for j in range(len(b))) for r in inv]


def largest_eigenvalue(a):
    """Cyclic Jacobi rotations on a symmetric matrix until the off-diagonal
    part is below rounding; the largest diagonal entry."""
    n = len(a)
    a = [list(r) for r in a]
    for _ in range(100):
        off = math.fsum(a[p][q] ** 2 for p in range(n) for q in range(n) if p != q)
        if off <= 1e-34 * math.fsum(a[p][p] ** 2 for p in range(n)):
            break
        for p in range(n):
            for q in range(p + 1, n):
                if a[p][q] == 0.0:
                    continue
                theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q])
                t = math.copysign(1.0, theta) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(n):
                    akp, akq = a[k][p], a[k][q]
                    a[k][p], a[k][q] = c * akp - s * akq, s * akp + c * akq
                for k in range(n):
                    apk, aqk = a[p][k], a[q][k]
                    a[p][k], a[q][k] = c * apk - s * aqk, s * apk + c * aqk
    return max(a[p][p] for p in range(n))


def fit(k, y, ridge, keep):
    """Dual coefficients on the rows `keep` of k."""
    sub = [[k[i][j] + (ridge if i == j else 0.0) for j in keep] for i in keep]
    return solve(sub, [y[i] for i in keep])


def loo_mse(k, y, ridge):
    n = len(y)
    res = []
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        if not keep:
            res.append(y[i])
            continue
        alpha = fit(k, y, ridge, keep)
        if alpha is None:
            return math.inf
        res.append(y[i] - math.fsum(k[i][j] * a for j, a in zip(keep, alpha)))
    return math.fsum(r * r for r in res) / n


def krr(k_train, k_query, y):
    n = len(y)
    k = [[(k_train[i][j] + k_train[j][i]) / 2.0 for j in range(n)] for i in range(n)]
    top = max(largest_eigenvalue(k), 0.0)
    scale = top if top > 0.0 else 1.0
    best = None
    for g in range(GRID):
        ridge = scale * 10.0 ** (1.0 - g / 2.0)
        e = loo_mse(k, y, ridge)
        if best is None or e < best[1]:
            best = (ridge, e)
    ridge, e = best
    alpha = fit(k, y, ridge, list(range(n)))
    pred = [math.fsum(r[j] * alpha[j] for j in range(n)) for r in k_query]
    return ridge, e, pred


def classes(loss, targets):
    kind = loss["kind"]
    if kind in ("logistic", "exponential", "hinge", "squared_hinge"):
        return "signed"
    if kind == "bce":
        return "binary"
    if all(t in (-1.0, 1.0) for t in targets):
        return "signed"
    if all(t in (0.0, 1.0) for t in targets):
        return "binary"
    return None


def errors(loss, targets, pred):
    m = len(targets)
    mse = math.fsum((p - t) ** 2 for p, t in zip(pred, targets)) / m
    kind = classes(loss, targets)
    if kind == "signed":
        acc = sum((p > 0.0) == (t > 0.0) for p, t in zip(pred, targets)) / m
    elif kind == "binary":
        acc = sum((p > 0.5) == (t > 0.5) for p, t in zip(pred, targets)) / m
    else:
        acc = None
    return mse, acc


def predictors(report):
    spec = ref.with_defaults(report["spec"])
    flow = spec["flow"]
    method = flow["method"]
    step = flow.get("lr") if method == "gd" else flow.get("step")
    if step is None or method not in ref.TABLEAUS:
        raise SystemExit("ref_learn.py: a fixed-step run is needed")
    xs, ys, qs = report["train_x"], report["train_y"], report["test_x"]
    n = len(xs)
    exp = ref.Experiment(spec, xs, ys, xs + qs)
    exp.w0 = report["w0"]
    k_steps = round(float(flow["t_end"]) / step)
    state = exp.integrate(method, step, k_steps)
    p, rows = exp.n_params, exp.m
    w_end = state[:p]
    kp = [state[p + r * n : p + (r + 1) * n] for r in range(rows)]
    aint = [state[p + rows * n + r * n : p + rows * n + (r + 1) * n] for r in range(rows)]
    y0 = exp.outputs(exp.w0)
    y_end = exp.outputs(w_end)
    k0 = exp.tangent_kernel(exp.w0)
    k_end = exp.tangent_kernel(w_end)
    out = [("network", None, None, y_end[n:])]
    out.append(("kernel_machine", None, None, [y0[r] + math.fsum(aint[r]) for r in range(n, rows)]))
    for name, k in (
        ("krr_path_kernel", kp),
        ("krr_tangent_kernel0", k0),
        ("krr_tangent_kernel_end", k_end),
    ):
        ridge, e, pred = krr(k[:n], k[n:], ys)
        out.append((name, ridge, e, pred))
    astar = []
    for i in range(n):
        kk = math.fsum(kp[j][i] ** 2 for j in range(n))
        astar.append(math.fsum(kp[j][i] * aint[j][i] for j in range(n)) / kk if kk > 0.0 else 0.0)
    out.append(
        (
            "fixed_coefficients",
            None,
            None,
            [y0[r] + math.fsum(kp[r][i] * astar[i] for i in range(n)) for r in range(n, rows)],
        )
    )
    return spec, out


def check(report, learned):
    chk = ref.Checker()
    spec, want = predictors(report)
    targets = report.get("test_y")
    got = {p["name"]: p for p in learned["predictors"]}
    chk.equal("predictors", [p["name"] for p in learned["predictors"]], [w[0] for w in want])
    network = want[0][3]
    floor = max(1e-300, max(abs(v) for v in network))
    for name, ridge, e, pred in want:
        g = got.get(name)
        if g is None:
            continue
        chk.vector(f"{name}.predictions", g.get("predictions"), pred, floor)
        if ridge is not None:
            chk.close(f"{name}.ridge", g.get("ridge"), ridge, ridge)
            chk.close(f"{name}.loo_mse", g.get("loo_mse"), e, e)
        d = [a - b for a, b in zip(pred, network)]
        rms = math.sqrt(math.fsum(x * x for x in d) / len(d))
        chk.close(f"{name}.rms_distance_to_network", g.get("rms_distance_to_network"), rms, floor)
        chk.close(f"{name}.max_distance_to_network", g.get("max_distance_to_network"), max(map(abs, d)), floor)
        if targets is not None:
            mse, acc = errors(spec["loss"], targets, pred)
            te = g.get("test_error") or {}
            chk.close(f"{name}.test_error.mse", te.get("mse"), mse, max(mse, floor * floor))
            chk.equal(f"{name}.test_error.accuracy", te.get("accuracy"), acc)
    return chk


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as fh:
        report = json.load(fh)
    with open(argv[2]) as fh:
        learned = json.load(fh)
    chk = check(report, learned)
    for line in chk.failures:
        print(line)
    if chk.failures:
        print(f"{argv[2]}: {len(chk.failures)} of {chk.checked} checks disagree")
        return 1
    print(f"{argv[2]}: {chk.checked} checks agree")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
