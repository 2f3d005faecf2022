#!/usr/bin/env python3
"""Self-consistency tests of pathkernel_ref.py's vector-output code (SPEC section 8).

    python3 test_ref_self.py            run the checks on pathkernel_ref.py
    python3 test_ref_self.py --mutants  also plant known bugs in a copy of the
                                        reference (pathkernel_ref.py and
                                        ref_layers.py) and require the checks
                                        to fail on each of them

The reference checks the Rust tool; this file checks the reference, without
the tool: per-output gradients against central finite differences, each
output of a C-output model against the scalar model made of that output's
last-layer row, cross_entropy against closed forms and far-out logits, the
vector code at C = 1 against the scalar code, the orientation of the C x C
blocks (c the query point's output, c' the training point's) against
finite-difference gradients, the flow's dw/dt against a finite-difference
gradient of L (the reduction weight), the chain rule d f_c(q)/dt = sum_i
dA_{i,c}/dt, the identity residual of rk4 falling at order 4, the exact gd
identity closing to rounding, and the report checker on reports built here
(which must pass, and fail once a field is disturbed). The layered models of
section 10 (ref_layers.py): every layer's backward pass against finite
differences, each layer's forward pass on numbers worked by hand
(cross-correlation, stride, same padding, the (out_ch, in_ch, k, k) layout,
pooling windows, layer_norm's biased variance, gamma then beta), a
dense-only stack against the mlp code, and a conv whose kernel covers its
whole input against a dense layer. Standard library only.
REF_SCRIPT names the script to load (the mutant runner uses it).
"""

import importlib.util
import json
import math
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.environ.get("REF_SCRIPT", os.path.join(HERE, "pathkernel_ref.py"))


def load(path):
    spec = importlib.util.spec_from_file_location("pathkernel_ref_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


R = load(SCRIPT)
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
    return cond


def close(a, b, rel, absol=0.0):
    return abs(a - b) <= rel * max(abs(a), abs(b)) + absol


TRAIN_X = [[0.5, -0.2], [0.1, 0.9], [-0.7, 0.3], [0.3, 0.4]]
TEST_X = [[0.2, -0.6], [0.0, 0.0], [-0.4, 0.8]]
LABELS3 = [0, 2, 1, 2]
REAL3 = [[0.8, -0.3, 0.1], [-0.5, 0.6, 0.2], [0.3, 0.1, -0.7], [1.2, -0.9, 0.4]]
REAL1 = [0.8, -0.5, 0.3, 1.2]


def model_spec(arch, c, **kw):
    m = {"arch": arch, "outputs": c}
    if arch == "mlp":
        m.update({"hidden": [3, 2], "activation": "tanh", "bias": True, "parameterization": "standard"})
    if arch == "resmlp":
        m.update({"width": 2, "blocks": 2, "activation": "tanh"})
    m.update(kw)
    return m


def spec_of(model, loss="squared", reduction="sum", **loss_kw):
    lo = {"kind": loss}
    lo.update(loss_kw)
    return {"model": model, "loss": lo, "reduction": reduction,
            "flow": {"t_end": 1.0, "method": "rk4", "step": 0.1}}


def draw_w(n_params, seed, scale=0.8):
    rng = random.Random(seed)
    return [rng.gauss(0.0, scale) for _ in range(n_params)]


# ------------------------------------------------------------- gradients


def fd_jac(jac, w, x, c, h=1e-6):
    out = [[0.0] * len(w) for _ in range(c)]
    for j in range(len(w)):
        wp, wm = list(w), list(w)
        wp[j] += h
        wm[j] -= h
        fp, fm = jac(wp, x)[0], jac(wm, x)[0]
        for r in range(c):
            out[r][j] = (fp[r] - fm[r]) / (2 * h)
    return out


MODELS = [
    model_spec("linear", 2),
    model_spec("linear", 3),
    model_spec("mlp", 3),
    model_spec("mlp", 2, activation="sigmoid", parameterization="ntk"),
    model_spec("mlp", 3, activation="gelu", bias=False),
    model_spec("mlp", 2, hidden=[4], activation="relu"),
    model_spec("mlp", 3, hidden=[], activation="tanh", parameterization="ntk"),
    model_spec("mlp", 2, hidden=[2, 3], activation="softplus", parameterization="ntk", bias=False),
    model_spec("resmlp", 3),
    model_spec("resmlp", 2, width=3, blocks=1, activation="silu"),
]


def test_gradients_fd():
    for k, model in enumerate(MODELS):
        c = model["outputs"]
        p, jac = R.build_vec_model(model, 2)
        w = draw_w(p, 100 + k)
        for x in TRAIN_X + [[0.2, -0.6]]:
            f, js = jac(w, x)
            check(len(f) == c and len(js) == c and all(len(g) == p for g in js),
                  f"jac shape for {model}")
            fd = fd_jac(jac, w, x, c)
            for r in range(c):
                for j in range(p):
                    if not close(js[r][j], fd[r][j], 1e-6, 1e-8):
                        check(False, f"grad {model} x={x} c={r} j={j}: {js[r][j]} vs fd {fd[r][j]}")
                        break


def last_layer(model, dim, p):
    """Offsets of the last layer of a C-output model: (W offset, b offset,
    rows C, cols) in the vector layout."""
    c = model["outputs"]
    if model["arch"] == "linear":
        return 0, c * dim, c, dim
    if model["arch"] == "mlp":
        cols = (model["hidden"] or [dim])[-1]
        if model["bias"]:
            return p - c - c * cols, p - c, c, cols
        return p - c * cols, None, c, cols
    if model["arch"] == "resmlp":
        cols = model["width"]
        return p - c - c * cols, p - c, c, cols
    raise ValueError


def test_rows_are_scalar_models():
    """Output c of a C-output model is the scalar (SPEC section 3) model whose
    last layer is row c: same value, same gradient on the shared entries, the
    last-layer gradient in row c only. This pins the section 8 layout."""
    for k, model in enumerate(MODELS):
        c = model["outputs"]
        scalar = dict(model)
        del scalar["outputs"]
        p, jac = R.build_vec_model(model, 2)
        ps, grad = R.build_model(dict(R.MODEL_DEFAULTS[model["arch"]], **scalar), 2)
        w_off, b_off, rows, cols = last_layer(model, 2, p)
        w = draw_w(p, 200 + k)
        for x in TRAIN_X:
            f, js = jac(w, x)
            for r in range(c):
                if model["arch"] == "linear":
                    ws = w[r * cols:(r + 1) * cols] + [w[b_off + r]]
                    shared = []
                else:
                    shared = list(range(w_off))
                    ws = [w[j] for j in shared] + w[w_off + r * cols: w_off + (r + 1) * cols]
                    if b_off is not None:
                        ws.append(w[b_off + r])
                check(len(ws) == ps, f"scalar size {model}")
                fs, gs = grad(ws, x)
                check(close(f[r], fs, 1e-13, 1e-15), f"row {r} of {model}: f {f[r]} vs scalar {fs}")
                mine = [js[r][j] for j in shared] + js[r][w_off + r * cols: w_off + (r + 1) * cols]
                if model["arch"] == "linear":
                    mine = js[r][r * cols:(r + 1) * cols]
                if b_off is not None:
                    mine.append(js[r][b_off + r])
                check(all(close(a, b, 1e-13, 1e-15) for a, b in zip(mine, gs)),
                      f"row {r} of {model}: gradient differs from the scalar model's")
                others = [js[r][w_off + q * cols + j] for q in range(rows) if q != r for j in range(cols)]
                if b_off is not None:
                    others += [js[r][b_off + q] for q in range(rows) if q != r]
                check(all(v == 0.0 for v in others), f"row {r} of {model}: gradient in another row")


# --------------------------------------------------------- cross-entropy


def test_cross_entropy():
    for c in (2, 3, 5):
        for lab in range(c):
            for v in (0.0, 3.7, -1e4, 1e300):
                val, g = R.cross_entropy(lab, [v] * c)
                check(close(val, math.log(c), 1e-15), f"uniform logits C={c}: {val} vs ln C")
                want = [1.0 / c - (1.0 if j == lab else 0.0) for j in range(c)]
                check(all(close(a, b, 1e-15, 1e-16) for a, b in zip(g, want)),
                      f"uniform logits C={c}: gradient {g}")
    # Far-out logits: finite and exact.
    for f, lab, want in (
        ([1e4, -1e4], 1, 2e4),
        ([1e4, -1e4], 0, 0.0),
        ([-1e4, 1e4, 0.0], 0, 2e4),
        ([1e4, 1e4, -1e4], 2, 2e4 + math.log(2.0)),
        ([800.0, -800.0, 0.0], 1, 1600.0),
    ):
        try:
            val, g = R.cross_entropy(lab, f)
        except (OverflowError, ValueError, ZeroDivisionError) as e:
            check(False, f"cross_entropy({lab}, {f}) raised {e!r}")
            continue
        check(math.isfinite(val) and all(math.isfinite(v) for v in g),
              f"cross_entropy({lab}, {f}) not finite: {val}, {g}")
        check(close(val, want, 1e-15, 1e-300), f"cross_entropy({lab}, {f}) = {val}, want {want}")
        check(abs(math.fsum(g)) <= 1e-15, f"gradient of cross_entropy sums to {math.fsum(g)}")
    # Moderate logits: the textbook formula, and the gradient by differences.
    rng = random.Random(5)
    for _ in range(50):
        c = rng.choice((2, 3, 4))
        f = [rng.uniform(-4, 4) for _ in range(c)]
        lab = rng.randrange(c)
        val, g = R.cross_entropy(lab, f)
        naive = math.log(math.fsum(math.exp(v) for v in f)) - f[lab]
        check(close(val, naive, 1e-13, 1e-15), f"cross_entropy {f} {lab}: {val} vs {naive}")
        for j in range(c):
            fp, fm = list(f), list(f)
            fp[j] += 1e-6
            fm[j] -= 1e-6
            d = (R.cross_entropy(lab, fp)[0] - R.cross_entropy(lab, fm)[0]) / 2e-6
            check(close(g[j], d, 1e-6, 1e-9), f"cross_entropy gradient {j}: {g[j]} vs fd {d}")
    # Tiny loss with the label the clear winner: accurate, not rounded to 0.
    val, _ = R.cross_entropy(0, [40.0, 0.0])
    check(close(val, math.exp(-40.0), 1e-12), f"cross_entropy(0, [40, 0]) = {val}")
    # Per-component losses sum over c.
    val, g = R.vector_loss("squared", {}, [1.0, -2.0], [0.5, 0.0])
    check(close(val, 0.125 + 2.0, 1e-15) and g == [-0.5, 2.0], f"squared per component: {val} {g}")
    val, g = R.vector_loss("hinge", {}, [1.0, -1.0], [0.25, -3.0])
    check(close(val, 0.75, 1e-15) and g == [-1.0, 0.0], f"hinge per component: {val} {g}")


# ------------------------------------------------------------ experiments


def vec_exp(model, loss="squared", reduction="sum", ys=None, seed=1, scale=0.8, **loss_kw):
    spec = spec_of(model, loss, reduction, **loss_kw)
    if ys is None:
        ys = LABELS3 if loss == "cross_entropy" else REAL3
    e = R.VecExperiment(spec, TRAIN_X, ys, TEST_X)
    e.w0 = draw_w(e.n_params, seed, scale)
    return e


def test_c1_equals_scalar():
    """At C = 1 the vector code is the scalar code (different backward passes)."""
    cases = [
        ({"arch": "mlp", "hidden": [3, 2], "activation": "tanh", "bias": True, "parameterization": "standard"}, "squared", "mean", REAL1, "rk4", 0.1, 5),
        ({"arch": "mlp", "hidden": [3], "activation": "sigmoid", "bias": False, "parameterization": "ntk"}, "logistic", "sum", [1.0, -1.0, 1.0, -1.0], "heun", 0.05, 6),
        ({"arch": "resmlp", "width": 2, "blocks": 2, "activation": "tanh"}, "huber", "sum", REAL1, "dopri5", 0.25, 4),
        ({"arch": "linear"}, "squared", "sum", REAL1, "gd", 0.05, 8),
        ({"arch": "diag_linear", "init_scale": 0.5}, "squared", "sum", REAL1, "rk4", 0.25, 4),
        ({"arch": "mlp", "hidden": [2, 2], "activation": "sin", "bias": True, "parameterization": "standard"}, "log_cosh", "mean", REAL1, "gd", 0.1, 10),
    ]
    for model, loss, red, ys, method, h, k in cases:
        spec = spec_of(model, loss, red, **R.LOSS_DEFAULTS.get(loss, {}))
        for with_outputs in (False, True):
            m = dict(model, outputs=1) if with_outputs else model
            s = dict(spec, model=m)
            sc = R.Experiment(s, TRAIN_X, ys, TEST_X)
            ve = R.VecExperiment(s, TRAIN_X, ys, TEST_X)
            check(sc.n_params == ve.n_params, f"C=1 {model}: P {sc.n_params} vs {ve.n_params}")
            w = draw_w(sc.n_params, 7, 0.7)
            sc.w0 = ve.w0 = w
            what = f"C=1 {model['arch']} {loss} {method}"
            check(close(sc.loss(w), ve.loss(w), 1e-14), f"{what}: loss")
            check(all(close(a, b[0], 1e-14, 1e-15) for a, b in zip(sc.outputs(w), ve.outputs(w))), f"{what}: outputs")
            tk_s, tk_v = sc.tangent_kernel(w), ve.tangent_kernel(w)
            check(all(close(tk_s[m_][i], tk_v[m_][i][0][0], 1e-13, 1e-15) for m_ in range(3) for i in range(4)),
                  f"{what}: tangent kernel")
            st = sc.integrate(method, h, k)
            w_end, kp, aint = ve.integrate(method, h, k)
            p, mn = sc.n_params, sc.m * sc.n
            scale = max(abs(v) for v in st)
            check(all(close(a, b, 1e-12, 1e-13 * scale) for a, b in zip(st[:p], w_end)), f"{what}: w_end")
            check(all(close(st[p + m_ * 4 + i], kp[m_][i][0][0], 1e-12, 1e-13 * scale)
                      for m_ in range(3) for i in range(4)), f"{what}: path kernel")
            check(all(close(st[p + mn + m_ * 4 + i], aint[m_][i][0], 1e-12, 1e-13 * scale)
                      for m_ in range(3) for i in range(4)), f"{what}: coef integral")
            if method == "gd":
                ex_s, ex_v = sc.exact_gd(h, k), ve.exact_gd(h, k)
                check(all(close(ex_s[m_][i], ex_v[m_][i][0], 1e-12, 1e-14)
                          for m_ in range(3) for i in range(4)), f"{what}: exact coef integral")


def test_block_orientation():
    """K^g[m][i][c][c'] = grad f_c(q_m) . grad f_c'(x_i), by finite differences,
    on models whose blocks are not symmetric (else a transpose would hide)."""
    for model in (model_spec("mlp", 3), model_spec("resmlp", 2), model_spec("mlp", 2, hidden=[2, 3], activation="softplus", parameterization="ntk")):
        e = vec_exp(model, "squared", seed=11, ys=[row[: model["outputs"]] for row in REAL3])
        w = e.w0
        c = e.c
        tk = e.tangent_kernel(w)
        asym = max(abs(tk[m][i][a][b] - tk[m][i][b][a]) for m in range(3) for i in range(4) for a in range(c) for b in range(c))
        check(asym > 1e-3, f"{model}: blocks nearly symmetric ({asym}); the test needs asymmetry")
        fq = [fd_jac(e.jac, w, q, c) for q in TEST_X]
        fx = [fd_jac(e.jac, w, x, c) for x in TRAIN_X]
        for m in range(3):
            for i in range(4):
                for a in range(c):
                    for b in range(c):
                        want = math.fsum(u * v for u, v in zip(fq[m][a], fx[i][b]))
                        if not close(tk[m][i][a][b], want, 1e-6, 1e-8):
                            check(False, f"{model}: K^g[{m}][{i}][{a}][{b}] {tk[m][i][a][b]} vs fd {want}")
        # The rhs's dK/dt is the same block, in the same order.
        d = e.rhs(list(w) + [0.0] * (3 * 4 * c * c + 3 * 4 * c))
        kp, _ = e.unflatten(d[e.n_params:])
        check(all(kp[m][i][a][b] == tk[m][i][a][b] for m in range(3) for i in range(4) for a in range(c) for b in range(c)),
              f"{model}: dK^p/dt is not K^g in [m][i][c][c'] order")


def fd_loss_grad(e, w, h=1e-6):
    out = []
    for j in range(len(w)):
        wp, wm = list(w), list(w)
        wp[j] += h
        wm[j] -= h
        out.append((e.loss(wp) - e.loss(wm)) / (2 * h))
    return out


def test_flow_is_minus_grad_loss():
    """dw/dt = -grad L with L summed (or averaged) over the points and summed
    over the components; the loss itself from closed forms at w = 0."""
    for model, loss, red in (
        (model_spec("mlp", 3), "cross_entropy", "mean"),
        (model_spec("mlp", 3), "cross_entropy", "sum"),
        (model_spec("resmlp", 3), "squared", "mean"),
        (model_spec("linear", 3), "log_cosh", "sum"),
        (model_spec("mlp", 2, hidden=[3]), "logistic", "mean"),
    ):
        ys = None
        if loss == "logistic":
            ys = [[1.0, -1.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]
        e = vec_exp(model, loss, red, ys=ys, seed=3)
        w = e.w0
        d = e.rhs(list(w) + [0.0] * (3 * 4 * e.c * e.c + 3 * 4 * e.c))
        g = fd_loss_grad(e, w)
        for j in range(e.n_params):
            if not close(-d[j], g[j], 1e-6, 1e-9):
                check(False, f"{model['arch']} {loss} {red}: dw/dt[{j}] = {d[j]}, -dL/dw = {-g[j]}")
                break
    # Closed forms at w = 0 (every output 0).
    for red, div in (("sum", 1.0), ("mean", 4.0)):
        e = vec_exp(model_spec("linear", 3), "cross_entropy", red)
        zero = [0.0] * e.n_params
        check(close(e.loss(zero), 4 * math.log(3.0) / div, 1e-15), f"cross_entropy {red} at 0: {e.loss(zero)}")
        _, _, dls = e.loss_terms(zero)
        want = [[(1.0 / 3 - (1.0 if j == LABELS3[i] else 0.0)) / div for j in range(3)] for i in range(4)]
        check(all(close(a, b, 1e-15) for ra, rb in zip(dls, want) for a, b in zip(ra, rb)),
              f"cross_entropy {red}: l' at 0 {dls}")
        e = vec_exp(model_spec("linear", 3), "squared", red)
        want = math.fsum(v * v / 2 for row in REAL3 for v in row) / div
        check(close(e.loss(zero), want, 1e-15), f"squared {red} at 0: {e.loss(zero)} vs {want}")


def test_chain_rule():
    """sum_i dA_{i,c}(q)/dt = grad f_c(q) . dw/dt: the A rate pairs l'_{i,c'}
    with the training point's output c'."""
    for model, loss in ((model_spec("mlp", 3), "cross_entropy"), (model_spec("resmlp", 3), "squared"),
                        (model_spec("mlp", 2, hidden=[2, 3], activation="sigmoid"), "squared")):
        c = model["outputs"]
        ys = None if loss == "cross_entropy" else [row[:c] for row in REAL3]
        e = vec_exp(model, loss, "sum", ys=ys, seed=21)
        w = e.w0
        d = e.rhs(list(w) + [0.0] * (3 * 4 * c * c + 3 * 4 * c))
        dw = d[: e.n_params]
        _, da = e.unflatten(d[e.n_params:])
        for m, q in enumerate(TEST_X):
            js = e.jac(w, q)[1]
            for a in range(c):
                want = math.fsum(u * v for u, v in zip(js[a], dw))
                got = math.fsum(da[m][i][a] for i in range(4))
                check(close(got, want, 1e-12, 1e-14), f"{model['arch']} {loss}: chain rule at q{m} c{a}: {got} vs {want}")


def identity_residual(e, method, h, k):
    w_end, kp, aint = e.integrate(method, h, k)
    y0, y1 = e.outputs(e.w0), e.outputs(w_end)
    return max(abs(y1[m][c] - y0[m][c] - math.fsum(aint[m][i][c] for i in range(e.n)))
               for m in range(e.m) for c in range(e.c))


def test_rk4_order():
    """The identity residual of rk4 falls as h^4 (C = 3 cross_entropy mlp)."""
    e = vec_exp(model_spec("mlp", 3, hidden=[3, 2]), "cross_entropy", "sum", seed=4, scale=1.2)
    rs = [identity_residual(e, "rk4", 1.0 / k, k) for k in (4, 8, 16, 32)]
    orders = [math.log2(a / b) for a, b in zip(rs, rs[1:])]
    check(rs[-1] < 1e-6, f"rk4 residuals {rs}")
    check(3.6 < orders[-1] < 4.4 and 3.3 < orders[-2] < 4.7, f"rk4 observed orders {orders} (residuals {rs})")
    # heun at order 2 and gd at order 1 on the same flow.
    rs = [identity_residual(e, "heun", 1.0 / k, k) for k in (16, 32, 64)]
    o = math.log2(rs[-2] / rs[-1])
    check(1.7 < o < 2.3, f"heun observed order {o} ({rs})")
    rs = [identity_residual(e, "gd", 1.0 / k, k) for k in (32, 64, 128)]
    o = math.log2(rs[-2] / rs[-1])
    check(0.8 < o < 1.2, f"gd observed order {o} ({rs})")


def test_exact_gd_identity():
    """f(w_K) = f(w0) + sum_i A^e_i to rounding, for C = 2 and 3."""
    for model, loss, red in ((model_spec("mlp", 3), "cross_entropy", "mean"),
                             (model_spec("resmlp", 2, activation="sin"), "squared", "mean"),
                             (model_spec("linear", 3), "cross_entropy", "sum")):
        c = model["outputs"]
        ys = None if loss == "cross_entropy" else [row[:c] for row in REAL3]
        e = vec_exp(model, loss, red, ys=ys, seed=9, scale=0.5)
        lr, k = 0.1, 10
        ex = e.exact_gd(lr, k)
        w_end, _, aint = e.integrate("gd", lr, k)
        y0, y1 = e.outputs(e.w0), e.outputs(w_end)
        res = max(abs(y1[m][a] - y0[m][a] - math.fsum(ex[m][i][a] for i in range(4))) for m in range(3) for a in range(c))
        left = max(abs(y1[m][a] - y0[m][a] - math.fsum(aint[m][i][a] for i in range(4))) for m in range(3) for a in range(c))
        check(res < 1e-13, f"exact gd identity {model['arch']} {loss}: residual {res}")
        if model["arch"] != "linear":  # linear: K^g is constant, both agree
            check(left > 1e3 * res, f"exact gd {model['arch']}: left-point residual {left} not far above {res}")


# --------------------------------------------------------------- inverse


def det(a):
    n = len(a)
    if n == 1:
        return a[0][0]
    return math.fsum((-1) ** j * a[0][j] * det([row[:j] + row[j + 1:] for row in a[1:]]) for j in range(n))


def cramer_solve(a, b):
    d = det(a)
    return [det([row[:j] + [b[r]] + row[j + 1:] for r, row in enumerate(a)]) / d for j in range(len(a))]


def test_inverse_and_rcond():
    rng = random.Random(8)
    for _ in range(100):
        n = rng.choice((1, 2, 3, 4))
        a = [[rng.uniform(-2, 2) for _ in range(n)] for _ in range(n)]
        inv = R.inverse(a)
        prod = [[math.fsum(a[i][k] * inv[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
        check(all(close(prod[i][j], 1.0 if i == j else 0.0, 1e-9, 1e-9) for i in range(n) for j in range(n)),
              f"inverse of {a}")
    # A non-symmetric example where a transposed inverse is wrong.
    a = [[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]]
    inv = R.inverse(a)
    b = [1.0, 2.0, 3.0]
    want = cramer_solve(a, b)
    got = [math.fsum(inv[r][k] * b[k] for k in range(3)) for r in range(3)]
    check(all(close(u, v, 1e-14, 1e-15) for u, v in zip(got, want)), f"K^-1 A {got} vs Cramer {want}")
    # rcond in the 1-norm: diag(1, eps) gives eps; a zero or singular block 0.
    check(close(R.rcond1([[1.0, 0.0], [0.0, 1e-13]])[0], 1e-13, 1e-14), "rcond of diag(1, 1e-13)")
    check(close(R.rcond1([[2.0, 1.0], [1.0, 2.0]])[0], 1.0 / 3.0 / 3.0 * 3.0 * 1.0 / 3.0 * 3.0, 1e-14) or
          close(R.rcond1([[2.0, 1.0], [1.0, 2.0]])[0], 1.0 / 3.0, 1e-14), "rcond of [[2,1],[1,2]]")
    check(R.rcond1([[0.0, 0.0], [0.0, 0.0]]) == (0.0, None), "rcond of the zero block")
    check(R.rcond1([[1.0, 2.0], [2.0, 4.0]])[0] < 1e-12, "rcond of a singular block")
    # Pivoting: a leading zero must not stop the inverse.
    inv = R.inverse([[0.0, 1.0], [1.0, 0.0]])
    check(inv == [[0.0, 1.0], [1.0, 0.0]], f"inverse of the swap {inv}")


# ------------------------------------------------- the checker end to end


def make_report(spec, ys, method, h, k, exact=False):
    """A report as SPEC sections 5 and 8 describe it, built from the
    reference's own experiment (a solved by Cramer's rule, not by R.inverse)."""
    spec = json.loads(json.dumps(spec))
    spec["flow"] = {"t_end": h * k, "method": method, ("lr" if method == "gd" else "step"): h}
    if exact:
        spec["flow"]["exact_path_kernel"] = True
    spec["seed"] = 3
    spec["data"] = {"source": "inline", "train_x": TRAIN_X, "train_y": ys, "test_x": TEST_X}
    e = R.VecExperiment(R.with_defaults(spec), TRAIN_X, ys, TEST_X)
    e.w0 = draw_w(e.n_params, 5, 0.8)
    spec["init"] = {"w0": e.w0}
    original = json.loads(json.dumps(spec))
    spec = R.with_defaults(spec)  # the spec as run, defaults filled in
    c = e.c
    w_end, kp, aint = e.integrate(method, h, k)
    y0, y1 = e.outputs(e.w0), e.outputs(w_end)
    km = [[y0[m][a] + math.fsum(aint[m][i][a] for i in range(4)) for a in range(c)] for m in range(3)]
    res = [[y1[m][a] - km[m][a] for a in range(c)] for m in range(3)]
    a = []
    for m in range(3):
        row = []
        for i in range(4):
            big = max(abs(v) for r in kp[m][i] for v in r)
            if big == 0.0 or abs(det(kp[m][i])) < 1e-12 * big ** c:
                row.append(None)
            else:
                row.append(cramer_solve(kp[m][i], aint[m][i]))
        a.append(row)
    rep = {
        "version": 1, "spec": spec, "n_params": e.n_params, "n_outputs": c,
        "w0": e.w0, "w_end": w_end, "train_x": TRAIN_X, "train_y": ys, "test_x": TEST_X,
        "t_end": h * k, "steps": k, "rejected_steps": 0,
        "rhs_evals": k * len(R.TABLEAUS[method][2]),
        "loss0": e.loss(e.w0), "loss_end": e.loss(w_end), "y0": y0, "y_end": y1,
        "path_kernel": kp, "coef_integral": aint, "a": a,
        "tangent_kernel0": e.tangent_kernel(e.w0), "tangent_kernel_end": e.tangent_kernel(w_end),
        "kernel_machine": km, "residual": res, "max_abs_residual": max(abs(v) for r in res for v in r),
    }
    if exact:
        ex = e.exact_gd(h, k)
        ekm = [[y0[m][b] + math.fsum(ex[m][i][b] for i in range(4)) for b in range(c)] for m in range(3)]
        rep["exact_coef_integral"] = ex
        rep["exact_kernel_machine"] = ekm
        rep["exact_residual"] = [[y1[m][b] - ekm[m][b] for b in range(c)] for m in range(3)]
        rep["exact_max_abs_residual"] = max(abs(v) for r in rep["exact_residual"] for v in r)
    return rep, original


def run_checker(rep, original=None):
    return R.check_report(json.loads(json.dumps(rep)), original).failures


def test_checker_end_to_end():
    cases = [
        (spec_of(model_spec("mlp", 3), "cross_entropy", "mean"), LABELS3, "rk4", 0.25, 4, False),
        (spec_of(model_spec("mlp", 2, bias=False), "squared", "sum"), [r[:2] for r in REAL3], "heun", 0.1, 5, False),
        (spec_of(model_spec("resmlp", 3), "squared", "mean"), REAL3, "gd", 0.1, 5, True),
        (spec_of({"arch": "layers", "input_shape": [1, 2], "outputs": 3, "layers": [
            {"kind": "conv1d", "channels": 2, "kernel": 1}, {"kind": "layer_norm"},
            {"kind": "activation", "name": "tanh"}, {"kind": "flatten"},
            {"kind": "dense", "units": 3}]}, "cross_entropy", "mean"), LABELS3, "rk4", 0.25, 2, False),
    ]
    for spec, ys, method, h, k, exact in cases:
        rep, original = make_report(spec, ys, method, h, k, exact)
        what = f"{spec['model']['arch']} {spec['loss']['kind']} {method}"
        fails = run_checker(rep)
        check(not fails, f"checker on a correct report ({what}): {fails[:3]}")
        fails = run_checker(rep, original)
        check(not fails, f"checker with --spec on a correct report ({what}): {fails[:3]}")
        if spec["model"].get("bias") is False:
            check(rep["a"][1] == [None] * 4, f"{what}: the origin's blocks are zero, a null: {rep['a'][1]}")
        # Disturbances the checker must see.
        c = rep["n_outputs"]
        bad = []
        r = json.loads(json.dumps(rep))
        blk = r["path_kernel"][0][1]
        r["path_kernel"][0][1] = [list(col) for col in zip(*blk)]
        bad.append(("transposed K^p block", r))
        r = json.loads(json.dumps(rep))
        blk = r["tangent_kernel_end"][2][3]
        r["tangent_kernel_end"][2][3] = [list(col) for col in zip(*blk)]
        bad.append(("transposed K^g block", r))
        r = json.loads(json.dumps(rep))
        r["a"][0][0] = list(reversed(r["a"][0][0]))
        bad.append(("a reversed", r))
        r = json.loads(json.dumps(rep))
        r["a"][2][1] = None
        bad.append(("a null", r))
        r = json.loads(json.dumps(rep))
        r["coef_integral"][0][2][c - 1] *= 1 + 1e-8
        bad.append(("A off by 1e-8", r))
        r = json.loads(json.dumps(rep))
        r["y_end"] = [row[0] for row in r["y_end"]]
        bad.append(("y_end flattened", r))
        r = json.loads(json.dumps(rep))
        del r["n_outputs"]
        bad.append(("n_outputs missing", r))
        r = json.loads(json.dumps(rep))
        r["residual"][1][0] += 1e-6
        bad.append(("residual moved", r))
        if exact:
            r = json.loads(json.dumps(rep))
            r["exact_coef_integral"][0][0][0] *= 1 + 1e-8
            bad.append(("exact A off", r))
        for name, r in bad:
            check(run_checker(r), f"checker misses '{name}' ({what})")
    # The a tolerance is not vacuous on an ill-conditioned block either.
    rep, _ = make_report(*cases[0][:5])
    r = json.loads(json.dumps(rep))
    r["a"][0][2][0] += 1e-6 * (1 + abs(r["a"][0][2][0]))
    check(run_checker(r), "checker misses a moved by 1e-6")


def test_c1_report_shapes_accepted():
    """A C = 1 report, with and without outputs: 1 / n_outputs: 1, goes the
    scalar way and passes; at C = 1 the fields keep the shapes of section 5."""
    spec = spec_of({"arch": "mlp", "hidden": [3], "activation": "tanh", "outputs": 1}, "squared", "sum")
    rep, original = make_report(spec, REAL1, "rk4", 0.25, 4)
    # Squeeze to section 5's shapes.
    for key in ("y0", "y_end", "kernel_machine", "residual"):
        rep[key] = [row[0] for row in rep[key]]
    for key in ("path_kernel", "tangent_kernel0", "tangent_kernel_end"):
        rep[key] = [[b[0][0] for b in row] for row in rep[key]]
    rep["coef_integral"] = [[v[0] for v in row] for row in rep["coef_integral"]]
    rep["a"] = [[None if v is None else v[0] for v in row] for row in rep["a"]]
    for with_n in (True, False):
        for with_out in (True, False):
            r = json.loads(json.dumps(rep))
            if not with_n:
                del r["n_outputs"]
            if not with_out:
                del r["spec"]["model"]["outputs"]
            fails = run_checker(r, original)
            check(not fails, f"C=1 report (n_outputs {with_n}, outputs {with_out}): {fails[:3]}")
    r = json.loads(json.dumps(rep))
    r["n_outputs"] = 2
    check(run_checker(r), "C=1 report with n_outputs 2 accepted")


# ------------------------------------------------------ layers (section 10)

LAYER_MODELS = [
    # (model, D)
    ({"arch": "layers", "input_shape": [2, 5], "outputs": 2, "layers": [
        {"kind": "conv1d", "channels": 3, "kernel": 3},
        {"kind": "activation", "name": "tanh"},
        {"kind": "flatten"},
        {"kind": "dense", "units": 2}]}, 10),
    ({"arch": "layers", "input_shape": [1, 7], "outputs": 1, "layers": [
        {"kind": "conv1d", "channels": 2, "kernel": 3, "stride": 2, "padding": "same", "bias": False},
        {"kind": "activation", "name": "sigmoid"},
        {"kind": "avg_pool", "size": 2},
        {"kind": "flatten"},
        {"kind": "dense", "units": 1}]}, 7),
    ({"arch": "layers", "input_shape": [2, 4, 5], "outputs": 3, "layers": [
        {"kind": "conv2d", "channels": 2, "kernel": 3, "stride": 2, "padding": "same"},
        {"kind": "activation", "name": "gelu"},
        {"kind": "layer_norm"},
        {"kind": "flatten"},
        {"kind": "dense", "units": 3}]}, 40),
    ({"arch": "layers", "input_shape": [1, 5, 5], "outputs": 2, "layers": [
        {"kind": "conv2d", "channels": 2, "kernel": 2},
        {"kind": "activation", "name": "softplus"},
        {"kind": "avg_pool", "size": 2},
        {"kind": "layer_norm", "affine": False, "eps": 1e-3},
        {"kind": "flatten"},
        {"kind": "dense", "units": 2}]}, 25),
    ({"arch": "layers", "input_shape": [6], "outputs": 1, "layers": [
        {"kind": "dense", "units": 4},
        {"kind": "layer_norm"},
        {"kind": "activation", "name": "sin"},
        {"kind": "dense", "units": 1, "bias": False}]}, 6),
]


def layer_model(model, dim):
    return R.build_vec_model(R.with_defaults({"model": model, "loss": {"kind": "squared"},
                                             "flow": {"method": "rk4"}})["model"], dim)


def test_layers_gradients_fd():
    """Each layer's hand-written backward pass against central differences,
    with every layer kind, stride, padding, pooling and both layer_norms."""
    rng = random.Random(31)
    for k, (model, dim) in enumerate(LAYER_MODELS):
        p, jac = layer_model(model, dim)
        w = draw_w(p, 300 + k)
        c = model["outputs"]
        for _ in range(2):
            x = [rng.uniform(-1, 1) for _ in range(dim)]
            f, js = jac(w, x)
            check(len(f) == c and all(len(g) == p for g in js), f"layers jac shape {model['layers']}")
            fd = fd_jac(jac, w, x, c)
            bad = [(r, j) for r in range(c) for j in range(p) if not close(js[r][j], fd[r][j], 1e-6, 1e-8)]
            check(not bad, f"layers grad {[l['kind'] for l in model['layers']]}: {len(bad)} entries "
                           f"differ from finite differences, first {bad[:1]}")


def first_layer_out(model, w, x):
    layers, _ = R.ref_layers.build_layers(model, len(x), R.ACTIVATIONS)
    return layers[0].forward(w, x)


def ls(input_shape, first, outputs=1):
    """A model whose first layer is `first` (SPEC defaults filled in), closed
    by a flatten and a dense layer so that the stack is valid."""
    m = {"arch": "layers", "input_shape": input_shape, "outputs": outputs,
         "layers": [dict(first), {"kind": "flatten"}, {"kind": "dense", "units": outputs}]}
    return R.ref_layers.with_layer_defaults(m)


def test_layers_hand_computed():
    """Section 10's formulas on numbers worked by hand: cross-correlation
    (not convolution), the layout W (out_ch, in_ch, k[, k]) then b, stride,
    same padding, pooling windows with the remainder dropped, the biased
    variance of layer_norm and gamma then beta."""
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    # conv1d, valid: out[p] = b + sum_j W[j] x[p + j].
    out = first_layer_out(ls([1, 5], {"kind": "conv1d", "channels": 1, "kernel": 3}), [1.0, 2.0, 0.0, 0.5], x)
    check(out == [5.5, 8.5, 11.5], f"conv1d valid: {out}, want [5.5, 8.5, 11.5]")
    # conv1d, same at stride 2: length (5 + 2 - 3) // 2 + 1 = 3, x[2p + j - 1].
    out = first_layer_out(ls([1, 5], {"kind": "conv1d", "channels": 1, "kernel": 3, "stride": 2, "padding": "same"}),
                          [1.0, 2.0, 3.0, 0.0], x)
    check(out == [8.0, 20.0, 14.0], f"conv1d same stride 2: {out}, want [8, 20, 14]")
    # conv2d, 2 input channels (1..9 and all ones), 1 output, kernel 2:
    # W[0, 0] = [[1, 2], [3, 4]], W[0, 1] = [[0, 0], [0, 10]], b = 0.
    img = [float(v) for v in range(1, 10)] + [1.0] * 9
    out = first_layer_out(ls([2, 3, 3], {"kind": "conv2d", "channels": 1, "kernel": 2}),
                          [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 10.0, 0.0], img)
    check(out == [47.0, 57.0, 77.0, 87.0], f"conv2d (o, c, ky, kx) layout: {out}, want [47, 57, 77, 87]")
    # conv2d, 2 output channels: the second's weights follow the first's, then b (2).
    out = first_layer_out(ls([1, 2, 2], {"kind": "conv2d", "channels": 2, "kernel": 1}),
                          [2.0, -1.0, 0.5, 0.25], [1.0, 2.0, 3.0, 4.0])
    check(out == [2.5, 4.5, 6.5, 8.5, -0.75, -1.75, -2.75, -3.75], f"conv2d two outputs: {out}")
    # conv2d, same at stride 2 on 3 x 3 (ones): 2 x 2 positions, centred at 0 and 2.
    out = first_layer_out(ls([1, 3, 3], {"kind": "conv2d", "channels": 1, "kernel": 3, "stride": 2, "padding": "same"}),
                          [1.0] * 9 + [0.0], [1.0] * 9)
    check(out == [4.0, 4.0, 4.0, 4.0], f"conv2d same stride 2: {out}, want four corners of 4")
    # avg_pool 2 on 1 x 3 x 5 (1..15): one row of two windows, the rest dropped.
    out = first_layer_out(ls([1, 3, 5], {"kind": "avg_pool", "size": 2}), [],
                          [float(v) for v in range(1, 16)])
    check(out == [4.0, 6.0], f"avg_pool 2d: {out}, want [4, 6]")
    out = first_layer_out(ls([2, 5], {"kind": "avg_pool", "size": 2}), [], x + [10.0, 0.0, 2.0, 2.0, 7.0])
    check(out == [1.5, 3.5, 5.0, 2.0], f"avg_pool 1d: {out}, want [1.5, 3.5, 5, 2]")
    # layer_norm over [1, 2, 3, 4]: mean 2.5, biased variance 1.25; gamma then beta.
    eps = 1e-5
    want = [(v - 2.5) / math.sqrt(1.25 + eps) for v in (1.0, 2.0, 3.0, 4.0)]
    out = first_layer_out(ls([4], {"kind": "layer_norm", "affine": False}), [], [1.0, 2.0, 3.0, 4.0])
    check(all(close(a, b, 1e-15) for a, b in zip(out, want)), f"layer_norm: {out}, want {want}")
    gamma, beta = [1.0, 2.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.0]
    out = first_layer_out(ls([2, 2], {"kind": "layer_norm"}), gamma + beta, [1.0, 2.0, 3.0, 4.0])
    want = [g * v + b for g, v, b in zip(gamma, want, beta)]
    check(all(close(a, b, 1e-15) for a, b in zip(out, want)), f"layer_norm affine: {out}, want {want}")
    # Fixed init entries: conv bias 0, gamma 1, beta 0, dense bias 0.
    m = R.ref_layers.with_layer_defaults({"arch": "layers", "input_shape": [1, 3], "outputs": 1, "layers": [
        {"kind": "conv1d", "channels": 1, "kernel": 2}, {"kind": "layer_norm"},
        {"kind": "flatten"}, {"kind": "dense", "units": 1}]})
    fixed = R.init_fixed_entries(m, 3, 10)
    check(fixed == {2: 0.0, 3: 1.0, 4: 1.0, 5: 0.0, 6: 0.0, 9: 0.0}, f"layers init entries {fixed}")


def test_layers_against_other_models():
    """Two layouts checked against code written apart: a dense-only stack is
    the mlp (same w, same f and gradients), and a valid conv whose kernel
    covers the whole input is a dense layer on the flattened input."""
    for act, hidden, c in (("tanh", [3, 2], 3), ("relu", [4], 1), ("softplus", [], 2)):
        stack = []
        for h in hidden:
            stack += [{"kind": "dense", "units": h}, {"kind": "activation", "name": act}]
        stack.append({"kind": "dense", "units": c})
        p, jac = layer_model({"arch": "layers", "input_shape": [2], "outputs": c, "layers": stack}, 2)
        pm, jm = R.build_vec_model(model_spec("mlp", c, hidden=hidden, activation=act), 2)
        check(p == pm, f"dense stack P {p} vs mlp {pm}")
        w = draw_w(p, 41)
        for x in TRAIN_X + TEST_X:
            (f, js), (fm, jsm) = jac(w, x), jm(w, x)
            check(all(close(a, b, 1e-14, 1e-15) for a, b in zip(f, fm)), f"dense stack {act} {hidden}: f {f} vs mlp {fm}")
            check(all(close(a, b, 1e-14, 1e-15) for r in range(c) for a, b in zip(js[r], jsm[r])),
                  f"dense stack {act} {hidden}: gradient differs from the mlp's")
    for shape, kind in (([2, 4], "conv1d"), ([2, 3, 3], "conv2d")):
        k = shape[-1]
        conv = {"arch": "layers", "input_shape": shape, "outputs": 2, "layers": [
            {"kind": kind, "channels": 3, "kernel": k}, {"kind": "activation", "name": "tanh"},
            {"kind": "flatten"}, {"kind": "dense", "units": 2}]}
        dense = {"arch": "layers", "input_shape": [math.prod(shape)], "outputs": 2,
                 "layers": [{"kind": "dense", "units": 3}, {"kind": "activation", "name": "tanh"},
                            {"kind": "dense", "units": 2}]}
        d = math.prod(shape)
        p, jac = layer_model(conv, d)
        pd, jd = layer_model(dense, d)
        check(p == pd, f"{kind} over the whole input: P {p} vs dense {pd}")
        w = draw_w(p, 43)
        rng = random.Random(44)
        for _ in range(3):
            x = [rng.uniform(-1, 1) for _ in range(d)]
            (f, js), (fd, jsd) = jac(w, x), jd(w, x)
            check(all(close(a, b, 1e-14, 1e-15) for a, b in zip(f, fd)), f"{kind} full kernel: f {f} vs dense {fd}")
            check(all(close(a, b, 1e-14, 1e-15) for r in range(2) for a, b in zip(js[r], jsd[r])),
                  f"{kind} full kernel: gradient differs from the dense layer's")


TESTS = [
    test_gradients_fd,
    test_rows_are_scalar_models,
    test_cross_entropy,
    test_c1_equals_scalar,
    test_block_orientation,
    test_flow_is_minus_grad_loss,
    test_chain_rule,
    test_rk4_order,
    test_exact_gd_identity,
    test_inverse_and_rcond,
    test_checker_end_to_end,
    test_c1_report_shapes_accepted,
    test_layers_gradients_fd,
    test_layers_hand_computed,
    test_layers_against_other_models,
]


def run_all(verbose=True):
    for t in TESTS:
        before = len(FAILS)
        try:
            t()
        except Exception as e:  # a crash is a failure of that test
            FAILS.append(f"{t.__name__} raised {type(e).__name__}: {e}")
        if verbose:
            n = len(FAILS) - before
            print(f"{t.__name__}: {'ok' if n == 0 else f'{n} failures'}")
    return FAILS


# ---------------------------------------------------------------- mutants
# Planted bugs: (name, [(old, new), ...]) applied to a copy of the script;
# every one must make the checks above fail.
MUTANTS = [
    ("transposed block index c/c'", [("[[[dot(hq[c], jx[cc])", "[[[dot(hq[cc], jx[c])")]),
    ("A pairs l'_{i,c} with K_{cc'} transposed", [
        ("da.append(-math.fsum(dls[i][cc] * blk[c][cc] for cc in range(self.c)))",
         "da.append(-math.fsum(dls[i][cc] * blk[cc][c] for cc in range(self.c)))")]),
    ("missing 1/N under mean", [("dls.append([scale * d for d in dl])", "dls.append(list(dl))")]),
    ("softmax without max-subtraction", [
        ("    mx = f[top]\n", "    mx = 0.0\n"),
        ("    value = (mx - f[label]) + math.log1p(rest)\n", "    value = math.log(math.fsum(es)) - f[label]\n"),
        ("    total = 1.0 + rest\n", "    total = math.fsum(es)\n"),
    ]),
    ("cross_entropy gradient onehot sign", [("grad[label] -= 1.0", "grad[label] += 1.0")]),
    ("resmlp W_out stored column-major", [
        ("g[w_out + c * width + j] = u[j]", "g[w_out + j * n_out + c] = u[j]"),
        ("su = [w[w_out + c * width + j] for j in range(width)]", "su = [w[w_out + j * n_out + c] for j in range(width)]"),
        ("enumerate(mv(w, w_out, u, n_out, width))]", "enumerate([sum(w[w_out + k * n_out + r] * u[k] for k in range(width)) for r in range(n_out)])]"),
    ]),
    ("ntk scale missed in the backward sensitivities", [
        ("                        scale * d[k] * sum(w[w_off + j * n_i + k] * sc[j] for j in range(n_o))",
         "                        d[k] * sum(w[w_off + j * n_i + k] * sc[j] for j in range(n_o))")]),
    ("linear bias before V", [("fs.append(w[n_out * dim + c] + sum(w[row + k] * x[k] for k in range(dim)))",
                               "fs.append(w[c] + sum(w[n_out + row + k] * x[k] for k in range(dim)))")]),
    ("transposed inverse in a", [("want = [math.fsum(inv[r][cc] * ai[cc] for cc in range(c)) for r in range(c)]",
                                  "want = [math.fsum(inv[cc][r] * ai[cc] for cc in range(c)) for r in range(c)]")]),
    ("exact gd pairs the left point on both sides", [("ws = [u + s * d for u, d in zip(w, step)]\n            hs",
                                                     "ws = list(w)\n            hs")]),
    # Section 10, in ref_layers.py (a mutant's edits apply to the file it names).
    ("ref_layers.py: conv kernel flipped (a convolution, not a cross-correlation)", [
        ("pos = tuple(self.s * pi + ji - self.pad", "pos = tuple(self.s * pi + (self.k - 1 - ji) - self.pad")]),
    ("ref_layers.py: layer_norm with the unbiased variance", [
        ("var = math.fsum((v - mean) ** 2 for v in u) / self.f", "var = math.fsum((v - mean) ** 2 for v in u) / (self.f - 1)")]),
    ("ref_layers.py: layer_norm backward without the mean term", [
        ("return [(dxhat[k] - m1 - xhat[k] * m2) / sd", "return [(dxhat[k] - xhat[k] * m2) / sd")]),
    ("ref_layers.py: same padding on the left only", [
        ("pad = (k - 1) // 2 if", "pad = (k - 1) if")]),
]


REF_FILES = ("pathkernel_ref.py", "ref_layers.py")


def run_mutants():
    """Each mutant runs on a copy of the reference's files in a temporary
    folder (pathkernel_ref.py imports ref_layers.py from its own folder);
    a name starting "ref_layers.py:" mutates that file, any other the script."""
    here = os.path.dirname(os.path.abspath(SCRIPT))
    sources = {f: open(os.path.join(here, f)).read() for f in REF_FILES}
    survivors = []
    for name, edits in MUTANTS:
        target = "ref_layers.py" if name.startswith("ref_layers.py:") else "pathkernel_ref.py"
        text = sources[target]
        for old, new in edits:
            n = text.count(old)
            if n != 1:
                survivors.append(f"{name}: pattern found {n} times, the mutant is stale: {old!r}")
                break
            text = text.replace(old, new)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                for f, src in sources.items():
                    with open(os.path.join(tmp, f), "w") as fh:
                        fh.write(text if f == target else src)
                out = subprocess.run([sys.executable, os.path.abspath(__file__)],
                                     env=dict(os.environ, REF_SCRIPT=os.path.join(tmp, "pathkernel_ref.py")),
                                     capture_output=True, text=True)
            caught = [l for l in out.stdout.splitlines() if l.endswith("failures")]
            print(f"mutant '{name}': {'caught by ' + ', '.join(l.split(':')[0] for l in caught) if out.returncode else 'SURVIVED'}")
            if out.returncode == 0:
                survivors.append(f"{name}: survived")
    return survivors


def main(argv):
    fails = run_all()
    for f in fails:
        print("FAIL", f)
    if fails:
        return 1
    print("all self-checks pass")
    if "--mutants" in argv:
        survivors = run_mutants()
        for s in survivors:
            print("MUTANT", s)
        if survivors:
            return 1
        print(f"all {len(MUTANTS)} planted bugs are caught")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
