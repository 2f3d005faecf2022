#!/usr/bin/env python3
"""An independent reference for pathkernel reports, written from SPEC.md alone.

    python3 pathkernel_ref.py REPORT [--spec SPEC]

Reads a report (SPEC section 5), rebuilds the experiment from the report's own
spec, resolved data and w0, recomputes every field it can and prints one line
per disagreement; exit 1 if there is any, 0 otherwise. With --spec, the
original spec (JSON) is read too: its defaults are filled in from SPEC.md here
and must agree with the report's "spec as run", and its inline data and w0
must be the report's resolved data and w0.

Nothing here is shared with the Rust code: the models are differentiated by
hand-written reverse mode one example at a time, the tangent kernel is a plain
dot product of two such gradients, the Runge-Kutta coefficients are the
textbook ones (Butcher; Dormand and Prince 1980; Hairer's DOP853), the
Gauss-Legendre nodes come from Newton's method on the Legendre recurrence.
Standard library only (CPython 3.11), so that CI needs nothing but python3.

Vector outputs (SPEC section 8): a model with "outputs": C > 1 is checked by
separate code (VecExperiment, check_report_vec): per-example Jacobians by a
backward pass carrying C rows of sensitivities, N x C targets with the loss
summed over components or cross_entropy on integer labels, the C x C blocks
K[m][i][c][c'] (c the query point's output, c' the training point's), and
a = K^p^{-1} A per block by Gauss-Jordan, null where the block's 1-norm
reciprocal condition number is below 1e-12. C = 1 keeps the scalar code and
the shapes of section 5 (n_outputs and model.outputs absent or 1).

Layered models (SPEC section 10, "arch": "layers") live in ref_layers.py
beside this file, written from SPEC.md alone as the rest: each layer's
forward pass and hand-written backward pass per example, the C outputs'
gradients by one backward pass per output. They go through the same
experiment and report code as every other architecture.
test_ref_self.py checks the vector code against finite differences, closed
forms and the scalar code, and plants bugs in it (--mutants).

For a fixed-step method (gd, heun, rk4, and dopri5 / dop853 given a "step")
every field is recomputed. For an adaptive run (and verner98, whose
coefficients are not typed in here) the step sequence is the tool's own, so
only what follows from w0 and w_end alone is checked
(losses, outputs, tangent kernels, and the kernel machine, residual and a as
functions of the reported path_kernel and coef_integral).
"""

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_layers  # noqa: E402  (section 10, beside this file)

# ---------------------------------------------------------------- activations
# Each returns (value, derivative); SPEC section 3 fixes the kink conventions:
# relu'(0) = 0, leaky_relu'(0) = 0.01.


def _sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def _act_identity(z):
    return z, 1.0


def _act_tanh(z):
    t = math.tanh(z)
    return t, 1.0 - t * t


def _act_sigmoid(z):
    s = _sigmoid(z)
    return s, s * (1.0 - s)


def _act_softplus(z):
    return _softplus(z), _sigmoid(z)


def _act_gelu(z):
    cdf = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    pdf = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z * cdf, cdf + z * pdf


def _act_silu(z):
    s = _sigmoid(z)
    return z * s, s * (1.0 + z * (1.0 - s))


def _act_sin(z):
    return math.sin(z), math.cos(z)


def _act_relu(z):
    return (z, 1.0) if z > 0.0 else (0.0, 0.0)


def _act_leaky_relu(z):
    return (z, 1.0) if z > 0.0 else (0.01 * z, 0.01)


ACTIVATIONS = {
    "identity": _act_identity,
    "tanh": _act_tanh,
    "sigmoid": _act_sigmoid,
    "softplus": _act_softplus,
    "gelu": _act_gelu,
    "silu": _act_silu,
    "sin": _act_sin,
    "relu": _act_relu,
    "leaky_relu": _act_leaky_relu,
}

# --------------------------------------------------------------------- losses
# loss(params, target, y) -> (l, dl/dy), SPEC section 2, written in forms that
# do not overflow where the true value is representable. Kinks: absolute at
# y = y* and hinge at y* y = 1 take derivative 0.


def _loss_squared(p, t, y):
    r = y - t
    return 0.5 * r * r, r


def _loss_logistic(p, t, y):
    m = t * y
    return _softplus(-m), -t * _sigmoid(-m)


def _loss_bce(p, t, y):
    return _softplus(y) - t * y, _sigmoid(y) - t


def _loss_exponential(p, t, y):
    e = math.exp(-t * y)
    return e, -t * e


def _loss_huber(p, t, y):
    d = p["delta"]
    r = y - t
    if abs(r) <= d:
        return 0.5 * r * r, r
    return d * (abs(r) - 0.5 * d), math.copysign(d, r)


def _loss_log_cosh(p, t, y):
    r = y - t
    a = abs(r)
    return a + math.log1p(math.exp(-2.0 * a)) - math.log(2.0), math.tanh(r)


def _loss_cauchy(p, t, y):
    c = p["c"]
    r = y - t
    q = (r / c) ** 2
    return 0.5 * c * c * math.log1p(q), r / (1.0 + q)


def _loss_absolute(p, t, y):
    r = y - t
    return abs(r), (1.0 if r > 0.0 else (-1.0 if r < 0.0 else 0.0))


def _loss_hinge(p, t, y):
    m = t * y
    return (1.0 - m, -t) if m < 1.0 else (0.0, 0.0)


def _loss_squared_hinge(p, t, y):
    g = max(0.0, 1.0 - t * y)
    return 0.5 * g * g, -t * g


LOSSES = {
    "squared": _loss_squared,
    "logistic": _loss_logistic,
    "bce": _loss_bce,
    "exponential": _loss_exponential,
    "huber": _loss_huber,
    "log_cosh": _loss_log_cosh,
    "cauchy": _loss_cauchy,
    "absolute": _loss_absolute,
    "hinge": _loss_hinge,
    "squared_hinge": _loss_squared_hinge,
}

# --------------------------------------------------------------------- models
# Each model is a function grad(w, x) -> (f, g) with g the full gradient
# d f / d w in the flat layout of SPEC section 3 (matrices row-major, (out, in)).


def linear_model(dim):
    def grad(w, x):
        f = w[dim] + sum(w[k] * x[k] for k in range(dim))
        return f, list(x) + [1.0]

    return dim + 1, grad


def diag_linear_model(dim):
    # f = sum_j (u_j^2 - v_j^2) x_j, layout u then v.
    def grad(w, x):
        f = sum((w[j] * w[j] - w[dim + j] * w[dim + j]) * x[j] for j in range(dim))
        g = [2.0 * w[j] * x[j] for j in range(dim)]
        g += [-2.0 * w[dim + j] * x[j] for j in range(dim)]
        return f, g

    return 2 * dim, grad


def mlp_model(dim, hidden, act, bias, ntk):
    sizes = [dim] + list(hidden) + [1]
    layers = []  # (fan_in, fan_out, W offset, b offset or None, input scale)
    off = 0
    for l in range(len(sizes) - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        w_off = off
        off += n_in * n_out
        b_off = None
        if bias:
            b_off = off
            off += n_out
        scale = 1.0 / math.sqrt(n_in) if ntk else 1.0
        layers.append((n_in, n_out, w_off, b_off, scale))
    n_params = off
    sigma = ACTIVATIONS[act]

    def grad(w, x):
        us = [list(x)]  # inputs of each layer
        dacts = []  # activation derivatives of each hidden layer
        z = None
        for l, (n_in, n_out, w_off, b_off, scale) in enumerate(layers):
            u = us[-1]
            z = []
            for j in range(n_out):
                row = w_off + j * n_in
                s = 0.0
                for k in range(n_in):
                    s += w[row + k] * u[k]
                s *= scale
                if b_off is not None:
                    s += w[b_off + j]
                z.append(s)
            if l < len(layers) - 1:
                pairs = [sigma(v) for v in z]
                us.append([p[0] for p in pairs])
                dacts.append([p[1] for p in pairs])
        f = z[0]
        g = [0.0] * n_params
        delta = [1.0]  # d f / d z of the current layer
        for l in range(len(layers) - 1, -1, -1):
            n_in, n_out, w_off, b_off, scale = layers[l]
            u = us[l]
            for j in range(n_out):
                row = w_off + j * n_in
                dj = delta[j] * scale
                for k in range(n_in):
                    g[row + k] = dj * u[k]
                if b_off is not None:
                    g[b_off + j] = delta[j]
            if l > 0:
                du = [0.0] * n_in
                for j in range(n_out):
                    row = w_off + j * n_in
                    for k in range(n_in):
                        du[k] += w[row + k] * delta[j]
                delta = [du[k] * scale * dacts[l - 1][k] for k in range(n_in)]
        return f, g

    return n_params, grad


def resmlp_model(dim, width, blocks, act):
    sigma = ACTIVATIONS[act]
    win, bin_ = 0, width * dim
    off = bin_ + width
    blk = []  # (W1, b1, W2, b2) offsets
    for _ in range(blocks):
        w1 = off
        b1 = w1 + width * width
        w2 = b1 + width
        b2 = w2 + width * width
        off = b2 + width
        blk.append((w1, b1, w2, b2))
    wout, bout = off, off + width
    n_params = bout + 1

    def matvec(w, o, u, n_out, n_in):
        return [sum(w[o + j * n_in + k] * u[k] for k in range(n_in)) for j in range(n_out)]

    def grad(w, x):
        u = [a + w[bin_ + j] for j, a in enumerate(matvec(w, win, x, width, dim))]
        saved = []  # (u entering the block, act(h), act'(h))
        for w1, b1, w2, b2 in blk:
            h = [a + w[b1 + j] for j, a in enumerate(matvec(w, w1, u, width, width))]
            pairs = [sigma(v) for v in h]
            a = [p[0] for p in pairs]
            da = [p[1] for p in pairs]
            r = matvec(w, w2, a, width, width)
            saved.append((u, a, da))
            u = [u[j] + r[j] + w[b2 + j] for j in range(width)]
        f = sum(w[wout + j] * u[j] for j in range(width)) + w[bout]
        g = [0.0] * n_params
        for j in range(width):
            g[wout + j] = u[j]
        g[bout] = 1.0
        gu = [w[wout + j] for j in range(width)]  # d f / d u
        for (w1, b1, w2, b2), (u_in, a, da) in zip(reversed(blk), reversed(saved)):
            ga = [0.0] * width
            for j in range(width):
                g[b2 + j] = gu[j]
                for k in range(width):
                    g[w2 + j * width + k] = gu[j] * a[k]
                    ga[k] += w[w2 + j * width + k] * gu[j]
            gh = [ga[k] * da[k] for k in range(width)]
            new_gu = list(gu)  # the skip connection
            for j in range(width):
                g[b1 + j] = gh[j]
                for k in range(width):
                    g[w1 + j * width + k] = gh[j] * u_in[k]
                    new_gu[k] += w[w1 + j * width + k] * gh[j]
            gu = new_gu
        for j in range(width):
            g[bin_ + j] = gu[j]
            for k in range(dim):
                g[win + j * dim + k] = gu[j] * x[k]
        return f, g

    return n_params, grad


def build_model(model, dim):
    arch = model["arch"]
    if arch == "linear":
        return linear_model(dim)
    if arch == "diag_linear":
        return diag_linear_model(dim)
    if arch == "mlp":
        return mlp_model(
            dim,
            model["hidden"],
            model["activation"],
            model["bias"],
            model["parameterization"] == "ntk",
        )
    if arch == "resmlp":
        return resmlp_model(dim, model["width"], model["blocks"], model["activation"])
    if arch == "layers":
        if n_outputs_of(model) != 1:
            raise ValueError("the scalar code takes one output")
        n_params, jac = ref_layers.layers_model(model, dim, ACTIVATIONS)

        def grad(w, x):
            f, js = jac(w, x)
            return f[0], js[0]

        return n_params, grad
    raise ValueError(f"unknown arch {arch}")


# ------------------------------------------------------ vector outputs (§8)
# SPEC section 8: linear, mlp and resmlp with C >= 1 outputs, the last layer
# holding C rows. Each model here is jac(w, x) -> (f, J) with f the C outputs
# and J[c] the full gradient d f_c / d w in the flat layout. These are written
# apart from the scalar models above (the backward pass carries a C-row matrix
# of output sensitivities instead of one row), so that at C = 1 the two can be
# compared against each other (tests/reference/test_ref_self.py).


def linear_vec_model(dim, n_out):
    # f_c = V[c] . x + c_c; layout V (C, D) row-major, then c (C).
    n_params = n_out * dim + n_out

    def jac(w, x):
        fs, js = [], []
        for c in range(n_out):
            row = c * dim
            fs.append(w[n_out * dim + c] + sum(w[row + k] * x[k] for k in range(dim)))
            g = [0.0] * n_params
            for k in range(dim):
                g[row + k] = x[k]
            g[n_out * dim + c] = 1.0
            js.append(g)
        return fs, js

    return n_params, jac


def mlp_vec_model(dim, hidden, act, bias, ntk, n_out):
    sizes = [dim] + list(hidden) + [n_out]
    layers = []  # (n_in, n_out, W offset, b offset or None, input scale)
    off = 0
    for n_i, n_o in zip(sizes, sizes[1:]):
        w_off = off
        off += n_i * n_o
        b_off = None
        if bias:
            b_off = off
            off += n_o
        layers.append((n_i, n_o, w_off, b_off, 1.0 / math.sqrt(n_i) if ntk else 1.0))
    n_params = off
    sigma = ACTIVATIONS[act]

    def jac(w, x):
        ins = [list(x)]
        slopes = []
        z = None
        for l, (n_i, n_o, w_off, b_off, scale) in enumerate(layers):
            u = ins[l]
            z = []
            for j in range(n_o):
                s = sum(w[w_off + j * n_i + k] * u[k] for k in range(n_i)) * scale
                if b_off is not None:
                    s += w[b_off + j]
                z.append(s)
            if l + 1 < len(layers):
                vals = [sigma(v) for v in z]
                ins.append([v for v, _ in vals])
                slopes.append([d for _, d in vals])
        # sens[c][j] = d f_c / d z_j of the current layer; identity at the top.
        sens = [[1.0 if j == c else 0.0 for j in range(n_out)] for c in range(n_out)]
        js = [[0.0] * n_params for _ in range(n_out)]
        for l in range(len(layers) - 1, -1, -1):
            n_i, n_o, w_off, b_off, scale = layers[l]
            u = ins[l]
            for c in range(n_out):
                g, sc = js[c], sens[c]
                for j in range(n_o):
                    for k in range(n_i):
                        g[w_off + j * n_i + k] = sc[j] * scale * u[k]
                    if b_off is not None:
                        g[b_off + j] = sc[j]
            if l > 0:
                d = slopes[l - 1]
                sens = [
                    [
                        scale * d[k] * sum(w[w_off + j * n_i + k] * sc[j] for j in range(n_o))
                        for k in range(n_i)
                    ]
                    for sc in sens
                ]
        return z, js

    return n_params, jac


def resmlp_vec_model(dim, width, blocks, act, n_out):
    # Layout: W_in (width, D), b_in, per block W_1, b_1, W_2, b_2, then
    # W_out (C, width), b_out (C).
    sigma = ACTIVATIONS[act]
    w_in = 0
    b_in = width * dim
    off = b_in + width
    blk = []
    for _ in range(blocks):
        blk.append((off, off + width * width, off + width * width + width,
                    off + 2 * width * width + width))
        off += 2 * width * width + 2 * width
    w_out = off
    b_out = w_out + n_out * width
    n_params = b_out + n_out

    def mv(w, o, u, rows, cols):
        return [sum(w[o + r * cols + k] * u[k] for k in range(cols)) for r in range(rows)]

    def jac(w, x):
        u = [v + w[b_in + j] for j, v in enumerate(mv(w, w_in, x, width, dim))]
        tape = []
        for w1, b1, w2, b2 in blk:
            h = [v + w[b1 + j] for j, v in enumerate(mv(w, w1, u, width, width))]
            vals = [sigma(v) for v in h]
            a = [v for v, _ in vals]
            da = [d for _, d in vals]
            r = mv(w, w2, a, width, width)
            tape.append((u, a, da))
            u = [u[j] + r[j] + w[b2 + j] for j in range(width)]
        fs = [v + w[b_out + c] for c, v in enumerate(mv(w, w_out, u, n_out, width))]
        js = [[0.0] * n_params for _ in range(n_out)]
        for c in range(n_out):
            g = js[c]
            for j in range(width):
                g[w_out + c * width + j] = u[j]
            g[b_out + c] = 1.0
            su = [w[w_out + c * width + j] for j in range(width)]  # d f_c / d u
            for (w1, b1, w2, b2), (u_in, a, da) in zip(reversed(blk), reversed(tape)):
                for j in range(width):
                    g[b2 + j] = su[j]
                    for k in range(width):
                        g[w2 + j * width + k] = su[j] * a[k]
                sh = [da[k] * sum(w[w2 + j * width + k] * su[j] for j in range(width))
                      for k in range(width)]
                for j in range(width):
                    g[b1 + j] = sh[j]
                    for k in range(width):
                        g[w1 + j * width + k] = sh[j] * u_in[k]
                su = [su[k] + sum(w[w1 + j * width + k] * sh[j] for j in range(width))
                      for k in range(width)]
            for j in range(width):
                g[b_in + j] = su[j]
                for k in range(dim):
                    g[w_in + j * dim + k] = su[j] * x[k]
        return fs, js

    return n_params, jac


def diag_linear_vec_model(dim):
    # C = 1 only (SPEC section 8): the scalar model, seen as one output.
    n_params, grad = diag_linear_model(dim)

    def jac(w, x):
        f, g = grad(w, x)
        return [f], [g]

    return n_params, jac


def n_outputs_of(model):
    return int(model.get("outputs", 1))


def build_vec_model(model, dim):
    arch = model["arch"]
    n_out = n_outputs_of(model)
    if arch == "linear":
        return linear_vec_model(dim, n_out)
    if arch == "diag_linear":
        if n_out != 1:
            raise ValueError("diag_linear has one output")
        return diag_linear_vec_model(dim)
    if arch == "mlp":
        return mlp_vec_model(dim, model["hidden"], model["activation"], model["bias"],
                             model["parameterization"] == "ntk", n_out)
    if arch == "resmlp":
        return resmlp_vec_model(dim, model["width"], model["blocks"], model["activation"], n_out)
    if arch == "layers":
        return ref_layers.layers_model(model, dim, ACTIVATIONS)
    raise ValueError(f"unknown arch {arch}")


def cross_entropy(label, f):
    """l = logsumexp(f) - f_label and its gradient softmax(f) - onehot(label),
    shifted by the largest logit so that nothing overflows: with mx = f_top,
    l = (mx - f_label) + log1p(sum over c != top of exp(f_c - mx))."""
    n = len(f)
    top = max(range(n), key=lambda c: f[c])
    mx = f[top]
    es = [math.exp(v - mx) for v in f]
    rest = math.fsum(es[c] for c in range(n) if c != top)
    value = (mx - f[label]) + math.log1p(rest)
    total = 1.0 + rest
    grad = [e / total for e in es]
    grad[label] -= 1.0
    return value, grad


def vector_loss(kind, params, target, f):
    """(l, dl/df) for one example with C outputs: cross_entropy on an integer
    label, or a section-2 loss per component summed over c."""
    if kind == "cross_entropy":
        label = int(target)
        if label != target or not 0 <= label < len(f):
            raise ValueError(f"cross_entropy label {target!r} not in 0..{len(f) - 1}")
        return cross_entropy(label, f)
    fn = LOSSES[kind]
    if len(target) != len(f):
        raise ValueError(f"target {target!r} has not {len(f)} components")
    parts = [fn(params, t, y) for t, y in zip(target, f)]
    return math.fsum(l for l, _ in parts), [d for _, d in parts]


# ------------------------------------------------------------ spec defaults
# The defaults SPEC.md and the README name; with --spec they are filled into
# the original spec and must match the report's "spec as run".
MODEL_DEFAULTS = {
    "linear": {"init_scale": 1.0},
    "mlp": {"bias": True, "parameterization": "standard", "init_scale": 1.0},
    "resmlp": {"activation": "tanh", "init_scale": 1.0},
    "diag_linear": {"init_scale": 1.0},
}
LOSS_DEFAULTS = {"huber": {"delta": 1.0}, "cauchy": {"c": 1.0}}
ADAPTIVE = ("dopri5", "dop853", "verner98")
# SPEC section 9's defaults (batch_size N is filled where N is known).
OPT_DEFAULTS = {
    "sgd": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "decoupled": False},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "decoupled": True},
}


def with_defaults(spec):
    s = json.loads(json.dumps(spec))
    s.setdefault("reduction", "sum")
    for k, v in MODEL_DEFAULTS.get(s["model"]["arch"], {}).items():
        s["model"].setdefault(k, v)
    if s["model"]["arch"] == "layers":
        ref_layers.with_layer_defaults(s["model"])
    for k, v in LOSS_DEFAULTS.get(s["loss"]["kind"], {}).items():
        s["loss"].setdefault(k, v)
    flow = s["flow"]
    if flow["method"] == "gd":
        flow.setdefault("exact_path_kernel", False)
    if flow["method"] in ADAPTIVE and "step" not in flow:
        flow.setdefault("rtol", 1e-8)
        flow.setdefault("atol", 1e-10)
    if flow["method"] in OPT_DEFAULTS:
        for k, v in OPT_DEFAULTS[flow["method"]].items():
            flow.setdefault(k, v)
        if "batches" not in flow:
            flow.setdefault("shuffle", "epoch")
        sch = flow.setdefault("schedule", {"kind": "constant"})
        sch.setdefault("warmup_steps", 0)
        if sch["kind"] == "step":
            sch.setdefault("gamma", 0.1)
        if sch["kind"] == "cosine":
            sch.setdefault("final_lr", 0.0)
    return s


# ----------------------------------------------------------------- tableaus
# (c, a, b): explicit Runge-Kutta, a lower triangular (row i has i entries).
EULER = ([0.0], [[]], [1.0])
HEUN = ([0.0, 1.0], [[], [1.0]], [0.5, 0.5])
RK4 = (
    [0.0, 0.5, 0.5, 1.0],
    [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
    [1 / 6, 1 / 3, 1 / 3, 1 / 6],
)
# Dormand-Prince 5(4), the 5th-order solution; the 7th (FSAL) stage has
# weight 0, so a fixed step needs the first six stages.
DOPRI5 = (
    [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0],
    [
        [],
        [1 / 5],
        [3 / 40, 9 / 40],
        [44 / 45, -56 / 15, 32 / 9],
        [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
        [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    ],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
)
# DOP853 (Hairer, Norsett and Wanner; Hairer's dop853.f): the twelve stages of
# the 8th-order solution.
DOP853 = (
    [
        0.0,
        0.526001519587677318785587544488e-01,
        0.789002279381515978178381316732e-01,
        0.118350341907227396726757197510,
        0.281649658092772603273242802490,
        0.333333333333333333333333333333,
        0.25,
        0.307692307692307692307692307692,
        0.651282051282051282051282051282,
        0.6,
        0.857142857142857142857142857142,
        1.0,
    ],
    [
        [],
        [5.26001519587677318785587544488e-2],
        [1.97250569845378994544595329183e-2, 5.91751709536136983633785987549e-2],
        [2.95875854768068491816892993775e-2, 0.0, 8.87627564304205475450678981324e-2],
        [
            2.41365134159266685502369798665e-1,
            0.0,
            -8.84549479328286085344864962717e-1,
            9.24834003261792003115737966543e-1,
        ],
        [
            3.7037037037037037037037037037e-2,
            0.0,
            0.0,
            1.70828608729473871279604482173e-1,
            1.25467687566822425016691814123e-1,
        ],
        [
            3.7109375e-2,
            0.0,
            0.0,
            1.70252211019544039314978060272e-1,
            6.02165389804559606850219397283e-2,
            -1.7578125e-2,
        ],
        [
            3.70920001185047927108779319836e-2,
            0.0,
            0.0,
            1.70383925712239993810214054705e-1,
            1.07262030446373284651809199168e-1,
            -1.53194377486244017527936158236e-2,
            8.27378916381402288758473766002e-3,
        ],
        [
            6.24110958716075717114429577812e-1,
            0.0,
            0.0,
            -3.36089262944694129406857109825,
            -8.68219346841726006818189891453e-1,
            2.75920996994467083049415600797e1,
            2.01540675504778934086186788979e1,
            -4.34898841810699588477366255144e1,
        ],
        [
            4.77662536438264365890433908527e-1,
            0.0,
            0.0,
            -2.48811461997166764192642586468,
            -5.90290826836842996371446475743e-1,
            2.12300514481811942347288949897e1,
            1.52792336328824235832596922938e1,
            -3.32882109689848629194453265587e1,
            -2.03312017085086261358222928593e-2,
        ],
        [
            -9.3714243008598732571704021658e-1,
            0.0,
            0.0,
            5.18637242884406370830023853209,
            1.09143734899672957818500254654,
            -8.14978701074692612513997267357,
            -1.85200656599969598641566180701e1,
            2.27394870993505042818970056734e1,
            2.49360555267965238987089396762,
            -3.0467644718982195003823669022,
        ],
        [
            2.27331014751653820792359768449,
            0.0,
            0.0,
            -1.05344954667372501984066689879e1,
            -2.00087205822486249909675718444,
            -1.79589318631187989172765950534e1,
            2.79488845294199600508499808837e1,
            -2.85899827713502369474065508674,
            -8.87285693353062954433549289258,
            1.23605671757943030647266201528e1,
            6.43392746015763530355970484046e-1,
        ],
    ],
    [
        5.42937341165687622380535766363e-2,
        0.0,
        0.0,
        0.0,
        0.0,
        4.45031289275240888144113950566,
        1.89151789931450038304281599044,
        -5.8012039600105847814672114227,
        3.1116436695781989440891606237e-1,
        -1.52160949662516078556178806805e-1,
        2.01365400804030348374776537501e-1,
        4.47106157277725905176885569043e-2,
    ],
)
TABLEAUS = {"gd": EULER, "heun": HEUN, "rk4": RK4, "dopri5": DOPRI5, "dop853": DOP853}


def check_tableau(name, tab):
    """Guards the typed-in coefficients: rows sum to c, weights to 1."""
    c, a, b = tab
    assert abs(sum(b) - 1.0) < 1e-14, name
    for ci, row in zip(c, a):
        assert abs(sum(row) - ci) < 1e-14, name


for _name, _tab in TABLEAUS.items():
    check_tableau(_name, _tab)


def rhs_evals_allowed(method, k):
    """The honest counts of right-hand-side evaluations for K fixed steps.

    gd, heun, rk4: s per step. dopri5 and dop853 have a first-same-as-last
    stage that the solution does not need: s K without it, s K + 1 when it is
    evaluated at each new point and reused as the next step's first stage."""
    s = len(TABLEAUS[method][2])
    if method in ("dopri5", "dop853"):
        return {s * k, s * k + 1}
    return {s * k}


# -------------------------------------------------------------- quadrature


def gauss_legendre(n):
    """Nodes and weights on [0, 1]: Newton on P_n from the usual guesses."""
    nodes, weights = [], []
    for i in range(1, n + 1):
        x = math.cos(math.pi * (i - 0.25) / (n + 0.5))
        for _ in range(100):
            p0, p1 = 1.0, x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            dp = n * (x * p1 - p0) / (x * x - 1.0)
            dx = p1 / dp
            x -= dx
            if abs(dx) < 1e-16:
                break
        p0, p1 = 1.0, x
        for k in range(2, n + 1):
            p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
        dp = n * (x * p1 - p0) / (x * x - 1.0)
        nodes.append(0.5 * (1.0 - x))
        weights.append(1.0 / ((1.0 - x * x) * dp * dp))  # half of 2/(...)
    return nodes, weights


# ---------------------------------------------------------------- the flow


def dot(u, v):
    return math.fsum(a * b for a, b in zip(u, v))


class Experiment:
    def __init__(self, spec, train_x, train_y, test_x):
        self.spec = spec
        self.xs, self.ys, self.qs = train_x, train_y, test_x
        self.n, self.m = len(train_x), len(test_x)
        self.n_params, self.grad = build_model(spec["model"], len(train_x[0]))
        self.loss_fn = LOSSES[spec["loss"]["kind"]]
        self.loss_params = spec["loss"]
        self.mean = spec["reduction"] == "mean"

    def loss_terms(self, w):
        """Train gradients g_i, losses and weighted derivatives l'_i."""
        gs, ls, dls = [], [], []
        scale = 1.0 / self.n if self.mean else 1.0
        for x, t in zip(self.xs, self.ys):
            f, g = self.grad(w, x)
            l, dl = self.loss_fn(self.loss_params, t, f)
            gs.append(g)
            ls.append(l)
            dls.append(dl * scale)
        return gs, ls, dls

    def loss(self, w):
        ls = self.loss_terms(w)[1]
        total = math.fsum(ls)
        return total / self.n if self.mean else total

    def outputs(self, w):
        return [self.grad(w, q)[0] for q in self.qs]

    def tangent_kernel(self, w):
        gs = [self.grad(w, x)[1] for x in self.xs]
        hs = [self.grad(w, q)[1] for q in self.qs]
        return [[dot(h, g) for g in gs] for h in hs]

    def rhs(self, state):
        """d/dt of (w, K^p, A) with K^p and A flattened row by row (m, i)."""
        p, n = self.n_params, self.n
        w = state[:p]
        gs, _, dls = self.loss_terms(w)
        hs = [self.grad(w, q)[1] for q in self.qs]
        dw = [-math.fsum(dls[i] * gs[i][j] for i in range(n)) for j in range(p)]
        dk, da = [], []
        for h in hs:
            for i in range(n):
                kg = dot(h, gs[i])
                dk.append(kg)
                da.append(-dls[i] * kg)
        return dw + dk + da

    def integrate(self, method, h, k_steps):
        c, a, b = TABLEAUS[method]
        y = list(self.w0) + [0.0] * (2 * self.m * self.n)
        for _ in range(k_steps):
            ks = []
            for row in a:
                yi = list(y)
                for aij, kj in zip(row, ks):
                    if aij != 0.0:
                        yi = [u + h * aij * v for u, v in zip(yi, kj)]
                ks.append(self.rhs(yi))
            y = [
                yj + h * math.fsum(bi * kk[j] for bi, kk in zip(b, ks) if bi != 0.0)
                for j, yj in enumerate(y)
            ]
        return y

    def exact_gd(self, lr, k_steps, nodes=8):
        """The discrete identity of SPEC section 1: per gd step, the test
        gradient averaged along the segment (Gauss-Legendre) against the train
        gradient at the step's start; returns the M x N coefficient sums."""
        s_nodes, s_weights = gauss_legendre(nodes)
        m, n = self.m, self.n
        acc = [[0.0] * n for _ in range(m)]
        w = list(self.w0)
        for _ in range(k_steps):
            gs, _, dls = self.loss_terms(w)
            step = [-lr * math.fsum(dls[i] * gs[i][j] for i in range(n)) for j in range(len(w))]
            ke = [[0.0] * n for _ in range(m)]
            for s, wt in zip(s_nodes, s_weights):
                ws = [u + s * d for u, d in zip(w, step)]
                for mm, q in enumerate(self.qs):
                    hq = self.grad(ws, q)[1]
                    for i in range(n):
                        ke[mm][i] += wt * dot(hq, gs[i])
            for mm in range(m):
                for i in range(n):
                    acc[mm][i] += lr * (-dls[i]) * ke[mm][i]
            w = [u + d for u, d in zip(w, step)]
        return acc


def rk_integrate(rhs, y, method, h, k_steps):
    """K steps of the explicit Runge-Kutta method's tableau on y' = rhs(y)."""
    c, a, b = TABLEAUS[method]
    y = list(y)
    for _ in range(k_steps):
        ks = []
        for row in a:
            yi = list(y)
            for aij, kj in zip(row, ks):
                if aij != 0.0:
                    yi = [u + h * aij * v for u, v in zip(yi, kj)]
            ks.append(rhs(yi))
        y = [
            yj + h * math.fsum(bi * kk[j] for bi, kk in zip(b, ks) if bi != 0.0)
            for j, yj in enumerate(y)
        ]
    return y


class VecExperiment:
    """SPEC section 8: the augmented flow with C x C blocks.

    State: w (P), then K^p flattened as [m][i][c][c'], then A as [m][i][c].
    In a block, c belongs to the query point and c' to the training point."""

    def __init__(self, spec, train_x, train_y, test_x):
        self.spec = spec
        self.xs, self.qs = train_x, test_x
        self.n, self.m = len(train_x), len(test_x)
        self.c = n_outputs_of(spec["model"])
        self.n_params, self.jac = build_vec_model(spec["model"], len(train_x[0]))
        self.kind = spec["loss"]["kind"]
        self.loss_params = spec["loss"]
        if self.kind != "cross_entropy" and self.c == 1:
            train_y = [t if isinstance(t, list) else [t] for t in train_y]
        self.ys = train_y
        self.mean = spec["reduction"] == "mean"

    def loss_terms(self, w):
        """Per training point: the C gradients, the loss and the weighted l'_{i,c}."""
        scale = 1.0 / self.n if self.mean else 1.0
        js, ls, dls = [], [], []
        for x, t in zip(self.xs, self.ys):
            f, jx = self.jac(w, x)
            l, dl = vector_loss(self.kind, self.loss_params, t, f)
            js.append(jx)
            ls.append(l)
            dls.append([scale * d for d in dl])
        return js, ls, dls

    def loss(self, w):
        total = math.fsum(self.loss_terms(w)[1])
        return total / self.n if self.mean else total

    def outputs(self, w):
        return [self.jac(w, q)[0] for q in self.qs]

    def descent(self, w, js, dls):
        """-grad L = -sum_i sum_c l'_{i,c} grad f_c(x_i)."""
        return [
            -math.fsum(dls[i][c] * js[i][c][j] for i in range(self.n) for c in range(self.c))
            for j in range(self.n_params)
        ]

    def blocks(self, hs, js):
        """K^g[m][i][c][c'] = grad f_c(q_m) . grad f_c'(x_i)."""
        return [
            [[[dot(hq[c], jx[cc]) for cc in range(self.c)] for c in range(self.c)] for jx in js]
            for hq in hs
        ]

    def tangent_kernel(self, w):
        js = [self.jac(w, x)[1] for x in self.xs]
        hs = [self.jac(w, q)[1] for q in self.qs]
        return self.blocks(hs, js)

    def rhs(self, state):
        p = self.n_params
        w = state[:p]
        js, _, dls = self.loss_terms(w)
        hs = [self.jac(w, q)[1] for q in self.qs]
        dk, da = [], []
        for per_m in self.blocks(hs, js):
            for i, blk in enumerate(per_m):
                for row in blk:
                    dk.extend(row)
                for c in range(self.c):
                    da.append(-math.fsum(dls[i][cc] * blk[c][cc] for cc in range(self.c)))
        return self.descent(w, js, dls) + dk + da

    def integrate(self, method, h, k_steps):
        """(w_end, K^p [m][i][c][c'], A [m][i][c]) after K fixed steps."""
        m, n, c, p = self.m, self.n, self.c, self.n_params
        y = list(self.w0) + [0.0] * (m * n * c * c + m * n * c)
        y = rk_integrate(self.rhs, y, method, h, k_steps)
        return (y[:p],) + self.unflatten(y[p:])

    def unflatten(self, flat):
        m, n, c = self.m, self.n, self.c
        kflat, aflat = flat[: m * n * c * c], flat[m * n * c * c :]
        kp = [
            [
                [kflat[((mm * n + i) * c + r) * c : ((mm * n + i) * c + r + 1) * c] for r in range(c)]
                for i in range(n)
            ]
            for mm in range(m)
        ]
        aint = [[aflat[(mm * n + i) * c : (mm * n + i + 1) * c] for i in range(n)] for mm in range(m)]
        return kp, aint

    def segment_blocks(self, w, step, js, nodes):
        """[m][i][c][c'] = integral_0^1 grad f_c(w + s step; q_m) . grad f_c'(w; x_i) ds
        by Gauss-Legendre with the given number of nodes."""
        s_nodes, s_weights = gauss_legendre(nodes)
        m, n, c = self.m, self.n, self.c
        ke = [[[[0.0] * c for _ in range(c)] for _ in range(n)] for _ in range(m)]
        for s, wt in zip(s_nodes, s_weights):
            ws = [u + s * d for u, d in zip(w, step)]
            hs = [self.jac(ws, q)[1] for q in self.qs]
            for mm, per_m in enumerate(self.blocks(hs, js)):
                for i, blk in enumerate(per_m):
                    for r in range(c):
                        for cc in range(c):
                            ke[mm][i][r][cc] += wt * blk[r][cc]
        return ke

    def exact_gd(self, lr, k_steps, nodes=8, max_nodes=128):
        """SPEC sections 1 and 8: per gd step, the query Jacobian averaged along
        the segment (Gauss-Legendre) against the training gradients at the
        step's start; returns A^e [m][i][c]. "Enough nodes" is read as: the
        node count doubles from `nodes` until two successive counts agree to
        1e-15 of the block's magnitude (smooth models converge exponentially;
        kinked models are not split at their kinks here)."""
        m, n, c = self.m, self.n, self.c
        acc = [[[0.0] * c for _ in range(n)] for _ in range(m)]
        w = list(self.w0)
        for _ in range(k_steps):
            js, _, dls = self.loss_terms(w)
            step = [lr * d for d in self.descent(w, js, dls)]
            q = nodes
            ke = self.segment_blocks(w, step, js, q)
            while q < max_nodes:
                finer = self.segment_blocks(w, step, js, 2 * q)
                a, b = list(_flat(ke)), list(_flat(finer))
                ke, q = finer, 2 * q
                if max(abs(u - v) for u, v in zip(a, b)) <= 1e-15 * max(map(abs, b), default=0.0):
                    break
            for mm in range(m):
                for i in range(n):
                    for r in range(c):
                        acc[mm][i][r] += lr * math.fsum(
                            -dls[i][cc] * ke[mm][i][r][cc] for cc in range(c)
                        )
            w = [u + d for u, d in zip(w, step)]
        return acc


# ------------------------------------------------------------- comparison
# Tolerance: relative 1e-10 with an absolute floor of 1e-10 times the field's
# magnitude. The tool and this script run the same method at the same step,
# so their states differ only by rounding: about 1e-16 per operation,
# accumulated over at most a few hundred steps and amplified by the flow's
# conditioning (exp of the largest tangent-kernel eigenvalue times T, small
# for the specs the tests use), which stays well below 1e-12. A convention
# error (a factor N, a 1/sqrt(fan_in), a wrong kink, a missing term, one step
# more or less) changes a field by far more than 1e-10 of its magnitude.
# Differences of nearly equal numbers (the residual) take the floor of the
# numbers subtracted, not of the difference.
REL = 1e-10


class Checker:
    def __init__(self):
        self.failures = []
        self.checked = 0

    def fail(self, msg):
        self.failures.append(msg)

    def close(self, name, got, want, floor):
        self.checked += 1
        if got is None or not isinstance(got, (int, float)) or isinstance(got, bool):
            self.fail(f"{name}: report has {got!r}, reference {want!r}")
            return
        tol = REL * max(abs(want), floor)
        if not abs(got - want) <= tol:
            self.fail(
                f"{name}: report {got!r}, reference {want!r} (diff {got - want:.3e}, tol {tol:.1e})"
            )

    def vector(self, name, got, want, floor=None):
        if not isinstance(got, list) or len(got) != len(want):
            self.fail(f"{name}: report has {_short(got)}, reference length {len(want)}")
            return
        if floor is None:
            floor = max((abs(v) for v in want), default=0.0)
        for j, (g, w) in enumerate(zip(got, want)):
            self.close(f"{name}[{j}]", g, w, floor)

    def matrix(self, name, got, want, floor=None):
        if not isinstance(got, list) or len(got) != len(want):
            self.fail(f"{name}: report has {_short(got)}, reference {len(want)} rows")
            return
        if floor is None:
            floor = max((abs(v) for row in want for v in row), default=0.0)
        for r, (g, w) in enumerate(zip(got, want)):
            self.vector(f"{name}[{r}]", g, w, floor)

    def equal(self, name, got, want):
        self.checked += 1
        if isinstance(want, set):
            if got not in want:
                self.fail(f"{name}: report {got!r}, reference one of {sorted(want, key=repr)}")
        elif got != want:
            self.fail(f"{name}: report {_short(got)}, reference {_short(want)}")


def _short(v):
    s = json.dumps(v)
    return s if len(s) < 120 else s[:117] + "..."


def _max_abs(rows):
    return max((abs(v) for row in rows for v in row), default=0.0)


def check_a(chk, report, kp, aint):
    """a = A / K^p, null exactly where K^p = 0. Its tolerance is propagated
    from those of A and K^p: |da| <= (tol_A + |a| tol_K) / |K^p|."""
    ra = report.get("a")
    if not isinstance(ra, list) or len(ra) != len(kp):
        chk.fail(f"a: report has {_short(ra)}")
        return
    tol_k = REL * _max_abs(kp)
    tol_a = REL * _max_abs(aint)
    for m, (row_a, row_k, row_i) in enumerate(zip(ra, kp, aint)):
        if not isinstance(row_a, list) or len(row_a) != len(row_k):
            chk.fail(f"a[{m}]: report has {_short(row_a)}")
            continue
        for i, (got, k, ai) in enumerate(zip(row_a, row_k, row_i)):
            chk.checked += 1
            name = f"a[{m}][{i}]"
            if got is None:
                if abs(k) > tol_k:
                    chk.fail(f"{name}: report null, reference K^p = {k!r} (a = {ai / k!r})")
                continue
            if k == 0.0:
                chk.fail(f"{name}: report {got!r}, reference K^p = 0 (undefined)")
                continue
            want = ai / k
            tol = REL * abs(want) + (tol_a + abs(want) * tol_k) / abs(k)
            if not abs(got - want) <= tol:
                chk.fail(f"{name}: report {got!r}, reference {want!r} (tol {tol:.1e})")


def check_spec(chk, report, original):
    """The report's spec as run holds the original spec with SPEC's defaults;
    inline data and w0 come back unchanged."""
    want = with_defaults(original)

    def walk(path, w, g):
        if isinstance(w, dict):
            if not isinstance(g, dict):
                chk.fail(f"spec{path}: report {_short(g)}, expected an object")
                return
            for k, v in w.items():
                walk(f"{path}.{k}", v, g.get(k))
        elif path == ".model.outputs" and w == 1:
            # SPEC section 8: the default C = 1; the tool may leave it out.
            chk.equal(f"spec{path}", g, {None, 1})
        else:
            chk.equal(f"spec{path}", g, w)

    walk("", want, report.get("spec"))
    data = original["data"]
    if data.get("source") == "inline":
        for key in ("train_x", "train_y", "test_x"):
            chk.equal(key, report.get(key), data[key])
    if "init" in original and "w0" in original["init"]:
        chk.equal("w0", report.get("w0"), original["init"]["w0"])
    return want


def init_fixed_entries(model, dim, n_params):
    """The entries of a drawn w0 that SPEC section 3 fixes, as {index: value}:
    biases (and linear's c) start at 0, diag_linear at u = v = alpha. They
    also pin the layout: a bias stored elsewhere shows up as a nonzero here.
    With C outputs (section 8) the last layer's bias has C entries."""
    arch = model["arch"]
    n_out = n_outputs_of(model)
    if arch == "linear":
        return {dim * n_out + c: 0.0 for c in range(n_out)}
    if arch == "diag_linear":
        return {j: float(model["init_scale"]) for j in range(2 * dim)}
    if arch == "layers":
        return ref_layers.init_fixed_entries(model, dim, ACTIVATIONS)
    fixed = {}
    if arch == "mlp":
        if not model["bias"]:
            return fixed
        sizes = [dim] + list(model["hidden"]) + [n_out]
        off = 0
        for n_i, n_o in zip(sizes, sizes[1:]):
            off += n_i * n_o
            fixed.update((off + j, 0.0) for j in range(n_o))
            off += n_o
        return fixed
    if arch == "resmlp":
        width = model["width"]
        off = width * dim
        fixed.update((off + j, 0.0) for j in range(width))  # b_in
        off += width
        for _ in range(model["blocks"]):
            for _matrix_then_bias in range(2):
                off += width * width
                fixed.update((off + j, 0.0) for j in range(width))
                off += width
        fixed.update((n_params - 1 - c, 0.0) for c in range(n_out))  # b_out
    return fixed


def _flat(v):
    if isinstance(v, list):
        for u in v:
            yield from _flat(u)
    else:
        yield v


def nested(chk, name, got, want, floor=None):
    """Compares nested lists of any depth entry by entry (tolerance as
    Checker.close, one floor for the whole field: its largest magnitude)."""
    if floor is None:
        floor = max((abs(v) for v in _flat(want)), default=0.0)
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            chk.fail(f"{name}: report has {_short(got)}, reference length {len(want)}")
            return
        for j, (g, w) in enumerate(zip(got, want)):
            nested(chk, f"{name}[{j}]", g, w, floor)
    else:
        chk.close(name, got, want, floor)


def norm1(a):
    """The matrix 1-norm: the largest column sum of magnitudes."""
    return max(math.fsum(abs(row[j]) for row in a) for j in range(len(a[0])))


def inverse(a):
    """Gauss-Jordan with partial pivoting on [A | I]; None if a pivot is 0."""
    n = len(a)
    t = [list(map(float, row)) + [1.0 if j == r else 0.0 for j in range(n)] for r, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(t[r][col]))
        if t[piv][col] == 0.0:
            return None
        t[col], t[piv] = t[piv], t[col]
        p = t[col][col]
        t[col] = [v / p for v in t[col]]
        for r in range(n):
            if r != col and t[r][col] != 0.0:
                fac = t[r][col]
                t[r] = [v - fac * u for v, u in zip(t[r], t[col])]
    return [row[n:] for row in t]


RCOND_MIN = 1e-12


def rcond1(a):
    """(1 / (|A|_1 |A^-1|_1), A^-1); 0 and None for a singular (or zero) block."""
    inv = inverse(a)
    if inv is None:
        return 0.0, None
    na, ni = norm1(a), norm1(inv)
    if na == 0.0 or not math.isfinite(ni) or ni == 0.0:
        return 0.0, None
    return 1.0 / (na * ni), inv


def check_a_vec(chk, report, kp, aint):
    """a_i(q_m) = K^p(q_m, x_i)^{-1} A_i(q_m), a C-vector, null as a whole
    where the block's 1-norm reciprocal condition number is below 1e-12.

    Tolerance, to first order: with dK, dA the blocks' own tolerances
    (entrywise REL times the field's largest magnitude),
    |da|_1 <= |K^-1|_1 (|dA|_1 + |dK|_1 |a|_1), |dA|_1 <= C tol_A,
    |dK|_1 <= C tol_K; twice that bound, plus REL relative. The null
    decision is accepted either way when the reference rcond lies within the
    same relative perturbation of the threshold."""
    ra = report.get("a")
    if not isinstance(ra, list) or len(ra) != len(kp):
        chk.fail(f"a: report has {_short(ra)}")
        return
    tol_k = REL * max((abs(v) for v in _flat(kp)), default=0.0)
    tol_a = REL * max((abs(v) for v in _flat(aint)), default=0.0)
    for m, (row_a, row_k, row_i) in enumerate(zip(ra, kp, aint)):
        if not isinstance(row_a, list) or len(row_a) != len(row_k):
            chk.fail(f"a[{m}]: report has {_short(row_a)}")
            continue
        for i, (got, blk, ai) in enumerate(zip(row_a, row_k, row_i)):
            chk.checked += 1
            name = f"a[{m}][{i}]"
            c = len(blk)
            rc, inv = rcond1(blk)
            if inv is None:
                if got is not None:
                    chk.fail(f"{name}: report {_short(got)}, reference block singular (null)")
                continue
            rel_pert = 2.0 * c * tol_k * norm1(inv)  # relative change of rcond, first order
            border = abs(rc - RCOND_MIN) <= RCOND_MIN * (2.0 * rel_pert + 1e-9) or rel_pert >= 0.5
            want = [math.fsum(inv[r][cc] * ai[cc] for cc in range(c)) for r in range(c)]
            if rc < RCOND_MIN:
                if got is not None and not border:
                    chk.fail(f"{name}: report {_short(got)}, reference null (rcond {rc:.3e})")
                continue
            if got is None:
                if not border:
                    chk.fail(f"{name}: report null, reference rcond {rc:.3e}, a = {want!r}")
                continue
            if not isinstance(got, list) or len(got) != c:
                chk.fail(f"{name}: report {_short(got)}, reference a C-vector {want!r}")
                continue
            a1 = math.fsum(abs(v) for v in want)
            bound = 2.0 * norm1(inv) * c * (tol_a + tol_k * a1)
            for r, (g, wv) in enumerate(zip(got, want)):
                if g is None or isinstance(g, bool) or not isinstance(g, (int, float)):
                    chk.fail(f"{name}[{r}]: report {g!r}, reference {wv!r}")
                    continue
                tol = REL * abs(wv) + bound
                if not abs(g - wv) <= tol:
                    chk.fail(f"{name}[{r}]: report {g!r}, reference {wv!r} (diff {g - wv:.3e}, tol {tol:.1e}, rcond {rc:.1e})")


def check_report_vec(chk, report, spec, original):
    """SPEC section 8 (C > 1): every field of section 5 in the shapes of
    section 8, recomputed with the C x C blocks."""
    exp = VecExperiment(spec, report["train_x"], report["train_y"], report["test_x"])
    c = exp.c
    flow = spec["flow"]
    method = flow["method"]
    t_end = float(flow["t_end"])
    w0 = report["w0"]
    chk.equal("version", report.get("version"), 1)
    chk.equal("n_outputs", report.get("n_outputs"), c)
    chk.equal("n_params", report.get("n_params"), exp.n_params)
    if len(w0) != exp.n_params:
        chk.fail(f"w0: {len(w0)} entries, the model has {exp.n_params}")
        return chk
    ys = report["train_y"]
    if exp.kind == "cross_entropy":
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t == int(t)
                   and 0 <= t < c for t in ys):
            chk.fail(f"train_y: cross_entropy needs N labels in 0..{c - 1}, report {_short(ys)}")
            return chk
    elif not all(isinstance(t, list) and len(t) == c for t in ys):
        chk.fail(f"train_y: N rows of {c} reals expected, report {_short(ys)}")
        return chk
    exp.w0 = w0
    drawn = original is not None and "w0" not in original.get("init", {})
    if drawn:
        fixed = init_fixed_entries(spec["model"], len(exp.xs[0]), exp.n_params)
        for j, v in sorted(fixed.items()):
            chk.equal(f"w0[{j}] (fixed by the init rule)", w0[j], v)
    chk.close("t_end", report.get("t_end"), t_end, 0.0)

    step = flow.get("lr") if method == "gd" else flow.get("step")
    fixed = step is not None and method in TABLEAUS
    if fixed:
        k_steps = round(t_end / step)
        w_end, kp, aint = exp.integrate(method, step, k_steps)
        chk.vector("w_end", report.get("w_end"), w_end, max(_max_abs([w0, w_end]), 1e-300))
        nested(chk, "path_kernel", report.get("path_kernel"), kp)
        nested(chk, "coef_integral", report.get("coef_integral"), aint)
        chk.equal("steps", report.get("steps"), k_steps)
        chk.equal("rejected_steps", report.get("rejected_steps"), 0)
        chk.equal("rhs_evals", report.get("rhs_evals"), rhs_evals_allowed(method, k_steps))
    else:
        w_end = report["w_end"]
        kp = report["path_kernel"]
        aint = report["coef_integral"]
        ok = (isinstance(kp, list) and len(kp) == exp.m
              and all(isinstance(r, list) and len(r) == exp.n for r in kp)
              and all(isinstance(b, list) and len(b) == c
                      and all(isinstance(row, list) and len(row) == c for row in b)
                      for r in kp for b in r)
              and isinstance(aint, list) and len(aint) == exp.m
              and all(isinstance(r, list) and len(r) == exp.n
                      and all(isinstance(v, list) and len(v) == c for v in r) for r in aint))
        if not ok:
            chk.fail("path_kernel / coef_integral: not [m][i][c][c'] / [m][i][c]")
            return chk

    y0 = exp.outputs(w0)
    y_end = exp.outputs(w_end)
    y_floor = _max_abs(y0 + y_end)
    nested(chk, "y0", report.get("y0"), y0, y_floor)
    nested(chk, "y_end", report.get("y_end"), y_end, y_floor)
    loss0, loss_end = exp.loss(w0), exp.loss(w_end)
    chk.close("loss0", report.get("loss0"), loss0, max(loss0, loss_end))
    chk.close("loss_end", report.get("loss_end"), loss_end, max(loss0, loss_end))
    nested(chk, "tangent_kernel0", report.get("tangent_kernel0"), exp.tangent_kernel(w0))
    nested(chk, "tangent_kernel_end", report.get("tangent_kernel_end"), exp.tangent_kernel(w_end))
    check_a_vec(chk, report, kp, aint)

    # yhat_c = f_c(w0) + sum_i A_{i,c}; r_c = f_c(w(T)) - yhat_c.
    ms, cs = range(exp.m), range(c)
    km = [[y0[m][r] + math.fsum(aint[m][i][r] for i in range(exp.n)) for r in cs] for m in ms]
    res = [[y_end[m][r] - km[m][r] for r in cs] for m in ms]
    floor = max(
        (abs(y0[m][r]) + abs(y_end[m][r]) + sum(abs(aint[m][i][r]) for i in range(exp.n))
         for m in ms for r in cs),
        default=0.0,
    )
    nested(chk, "kernel_machine", report.get("kernel_machine"), km, floor)
    nested(chk, "residual", report.get("residual"), res, floor)
    chk.close("max_abs_residual", report.get("max_abs_residual"), _max_abs(res), floor)

    if method == "gd" and flow.get("exact_path_kernel"):
        ex = exp.exact_gd(step, round(t_end / step))
        ekm = [[y0[m][r] + math.fsum(ex[m][i][r] for i in range(exp.n)) for r in cs] for m in ms]
        eres = [[y_end[m][r] - ekm[m][r] for r in cs] for m in ms]
        efloor = max(
            (abs(y0[m][r]) + abs(y_end[m][r]) + sum(abs(ex[m][i][r]) for i in range(exp.n))
             for m in ms for r in cs),
            default=0.0,
        )
        nested(chk, "exact_coef_integral", report.get("exact_coef_integral"), ex)
        nested(chk, "exact_kernel_machine", report.get("exact_kernel_machine"), ekm, efloor)
        chk.close("exact_max_abs_residual", report.get("exact_max_abs_residual"), _max_abs(eres), efloor)
        if report.get("exact_residual") is not None:
            nested(chk, "exact_residual", report.get("exact_residual"), eres, efloor)
        if not _max_abs(eres) <= REL * efloor:
            chk.fail(f"exact identity: reference residual {_max_abs(eres):.3e} above {REL * efloor:.1e}")
    else:
        for key in ("exact_coef_integral", "exact_kernel_machine", "exact_max_abs_residual"):
            if report.get(key) is not None:
                chk.fail(f"{key}: present without gd exact_path_kernel")
    return chk


# ------------------------------------------------------- discrete optimizers
# SPEC section 9, written from its text: batches, eta_k, the sgd and adam
# updates as torch.optim / optax state them, and both decompositions with
# per-point buffers kept for every point (no factored shortcut), P_k applied
# elementwise, gbar_k by 8-node Gauss-Legendre on the whole segment.


def opt_step_sizes(flow):
    lr = flow["lr"]
    k_total = flow["steps"] if "steps" in flow else len(flow["batches"])
    sch = flow.get("schedule", {"kind": "constant"})
    warm = sch.get("warmup_steps", 0)
    out = []
    for k in range(k_total):
        if sch["kind"] == "constant":
            eta = lr
        elif sch["kind"] == "step":
            eta = lr * sch.get("gamma", 0.1) ** (k // sch["step_size"])
        else:
            fl = sch.get("final_lr", 0.0)
            eta = lr * ((fl + (lr - fl) * (1.0 + math.cos(math.pi * k / k_total)) / 2.0) / lr)
        if warm > 0:
            eta *= min(1.0, (k + 1) / warm)
        out.append(eta)
    return out


def check_opt_batches(chk, flow, batches, n, k_total):
    """Explicit batches come back as given; "none" is 0..N-1 cut per epoch;
    an "epoch" epoch is a permutation cut the same way; "replacement"
    batches have batch_size indices in 0..N-1."""
    if not isinstance(batches, list) or len(batches) != k_total:
        chk.fail(f"batches: report {_short(batches)}, expected {k_total} batches")
        return False
    if "batches" in flow:
        chk.equal("batches", batches, flow["batches"])
        return True
    size = flow.get("batch_size", n)
    shuffle = flow.get("shuffle", "epoch")
    if shuffle == "replacement":
        ok = all(len(b) == size and all(0 <= i < n for i in b) for b in batches)
        chk.equal("batches (replacement: sizes and range)", ok, True)
        return ok
    cut = [list(range(a, min(a + size, n))) for a in range(0, n, size)]
    per_epoch = len(cut)
    for e in range(0, k_total, per_epoch):
        epoch = batches[e : e + per_epoch]
        if shuffle == "none":
            chk.equal(f"batches[{e}..] (in order)", epoch, cut[: len(epoch)])
        else:
            flat = [i for b in epoch for i in b]
            sizes = [len(b) for b in epoch]
            chk.equal(f"batches[{e}..] sizes", sizes, [len(b) for b in cut[: len(epoch)]])
            if len(epoch) == per_epoch:
                chk.equal(f"batches[{e}..] a permutation", sorted(flat), list(range(n)))
    return True


def run_optimizer(exp, flow, batches, etas, nodes=8):
    """w_end and, as [m][i][c][c'] / [m][i][c] / [m][c]: K^p, A, D, A^e, D^e."""
    p, n, m, C = exp.n_params, exp.n, exp.m, exp.c
    adam = flow["method"] == "adam"
    wd = flow.get("weight_decay", 0.0)
    lam_c, lam_d = (0.0, wd) if flow["decoupled"] else (wd, 0.0)
    mu, nesterov = flow.get("momentum", 0.0), flow.get("nesterov", False)
    b1, b2, eps = flow.get("beta1"), flow.get("beta2"), flow.get("eps")
    s_nodes, s_weights = gauss_legendre(nodes)
    w = list(exp.w0)
    agg, v = [0.0] * p, [0.0] * p
    bufs = [[0.0] * p for _ in range(n)]
    dbuf = [0.0] * p
    kp = [[[[0.0] * C for _ in range(C)] for _ in range(n)] for _ in range(m)]
    a_d = [[[0.0] * C for _ in range(n)] for _ in range(m)]
    a_e = [[[0.0] * C for _ in range(n)] for _ in range(m)]
    d_d = [[0.0] * C for _ in range(m)]
    d_e = [[0.0] * C for _ in range(m)]
    for k, (batch, eta) in enumerate(zip(batches, etas)):
        ck = 1.0 / len(batch) if exp.mean else 1.0
        counts = [batch.count(i) for i in range(n)]
        jacs, shares = [], []
        for i, (x, t) in enumerate(zip(exp.xs, exp.ys)):
            f, jx = exp.jac(w, x)
            _, dl = vector_loss(exp.kind, exp.loss_params, t, f)
            jacs.append(jx)
            lp = [counts[i] * ck * d for d in dl]
            shares.append([math.fsum(lp[c] * jx[c][j] for c in range(C)) for j in range(p)])
        g = [math.fsum(sh[j] for sh in shares) + lam_c * w[j] for j in range(p)]
        t1 = k + 1

        def carry(buf, x):
            """The buffer update and the direction, for any linear stream."""
            if adam:
                nb = [b1 * b + (1.0 - b1) * u for b, u in zip(buf, x)]
                return nb, [u / (1.0 - b1**t1) for u in nb]
            nb = [mu * b + u for b, u in zip(buf, x)]
            return nb, ([u + mu * b for u, b in zip(x, nb)] if nesterov else nb)

        if adam:
            v = [b2 * vv + (1.0 - b2) * gg * gg for vv, gg in zip(v, g)]
            pre = [1.0 / (math.sqrt(vv / (1.0 - b2**t1)) + eps) for vv in v]
        else:
            pre = [1.0] * p
        agg, d = carry(agg, g)
        step = [-eta * pre[j] * d[j] - eta * lam_d * w[j] for j in range(p)]
        gs = []
        for i in range(n):
            bufs[i], di = carry(bufs[i], shares[i])
            gs.append([-eta * pre[j] * di[j] for j in range(p)])
        dbuf, dd = carry(dbuf, [lam_c * u for u in w])
        dk = [-eta * pre[j] * dd[j] - eta * lam_d * w[j] for j in range(p)]
        gbar = [[[0.0] * p for _ in range(C)] for _ in range(m)]
        for s, wt in zip(s_nodes, s_weights):
            ws = [u + s * du for u, du in zip(w, step)]
            for mm, q in enumerate(exp.qs):
                hq = exp.jac(ws, q)[1]
                for c in range(C):
                    gbar[mm][c] = [a + wt * b for a, b in zip(gbar[mm][c], hq[c])]
        for mm, q in enumerate(exp.qs):
            hq = exp.jac(w, q)[1]
            for c in range(C):
                d_d[mm][c] += dot(hq[c], dk)
                d_e[mm][c] += dot(gbar[mm][c], dk)
                for i in range(n):
                    a_d[mm][i][c] += dot(hq[c], gs[i])
                    a_e[mm][i][c] += dot(gbar[mm][c], gs[i])
                    for cc in range(C):
                        kp[mm][i][c][cc] += eta * math.fsum(
                            hq[c][j] * pre[j] * jacs[i][cc][j] for j in range(p))
        w = [u + du for u, du in zip(w, step)]
    return w, kp, a_d, d_d, a_e, d_e


def check_report_opt(chk, report, spec):
    """SPEC section 9: every field of an sgd/adam report recomputed."""
    exp = VecExperiment(spec, report["train_x"], report["train_y"], report["test_x"])
    C, n, m = exp.c, exp.n, exp.m
    flow = dict(spec["flow"])
    flow.setdefault("batch_size", n)
    if "batches" not in spec["flow"]:
        chk.equal("spec.flow.batch_size", report["spec"]["flow"].get("batch_size"), flow["batch_size"])
    w0 = report["w0"]
    exp.w0 = w0
    chk.equal("n_params", report.get("n_params"), exp.n_params)
    etas = opt_step_sizes(flow)
    k_total = len(etas)
    chk.vector("step_sizes", report.get("step_sizes"), etas)
    chk.close("t_end", report.get("t_end"), math.fsum(etas), 0.0)
    chk.equal("steps", report.get("steps"), k_total)
    chk.equal("rejected_steps", report.get("rejected_steps"), 0)
    chk.equal("rhs_evals", report.get("rhs_evals"), k_total)
    batches = report.get("batches")
    if not check_opt_batches(chk, flow, batches, n, k_total):
        return chk
    w_end, kp, a_d, d_d, a_e, d_e = run_optimizer(exp, flow, batches, etas)
    # w_end to 1e-12 relative (SPEC section 9's replay promise).
    scale = max(_max_abs([w0, w_end]), 1e-300)
    got = report.get("w_end")
    chk.checked += 1
    if not isinstance(got, list) or len(got) != len(w_end) or not all(
        abs(g - v) <= 1e-12 * scale for g, v in zip(got, w_end)
    ):
        chk.fail(f"w_end: not within 1e-12 of {scale:.3e} of the reference")
    y0, y_end = exp.outputs(w0), exp.outputs(w_end)
    ms, cs = range(m), range(C)
    km = [[y0[q][c] + math.fsum(a_d[q][i][c] for i in range(n)) + d_d[q][c] for c in cs] for q in ms]
    ekm = [[y0[q][c] + math.fsum(a_e[q][i][c] for i in range(n)) + d_e[q][c] for c in cs] for q in ms]
    res = [[y_end[q][c] - km[q][c] for c in cs] for q in ms]
    eres = [[y_end[q][c] - ekm[q][c] for c in cs] for q in ms]

    def floor_of(a, d):
        return max((abs(y0[q][c]) + abs(y_end[q][c]) + abs(d[q][c])
                    + sum(abs(a[q][i][c]) for i in range(n)) for q in ms for c in cs), default=0.0)

    floor, efloor = floor_of(a_d, d_d), floor_of(a_e, d_e)
    if C == 1:
        # Section 5's shapes: M x N matrices and length-M vectors.
        kp1 = [[kp[q][i][0][0] for i in range(n)] for q in ms]
        a1 = [[a_d[q][i][0] for i in range(n)] for q in ms]
        ae1 = [[a_e[q][i][0] for i in range(n)] for q in ms]
        vec = lambda rows: [r[0] for r in rows]  # noqa: E731
        chk.matrix("path_kernel", report.get("path_kernel"), kp1)
        chk.matrix("coef_integral", report.get("coef_integral"), a1)
        chk.matrix("exact_coef_integral", report.get("exact_coef_integral"), ae1)
        check_a(chk, report, kp1, a1)
        y0v, yev = vec(y0), vec(y_end)
        chk.vector("y0", report.get("y0"), y0v, _max_abs([y0v, yev]))
        chk.vector("y_end", report.get("y_end"), yev, _max_abs([y0v, yev]))
        fields = [("decay_term", vec(d_d), floor), ("exact_decay_term", vec(d_e), efloor),
                  ("kernel_machine", vec(km), floor), ("residual", vec(res), floor),
                  ("exact_kernel_machine", vec(ekm), efloor), ("exact_residual", vec(eres), efloor)]
        for name, want, fl in fields:
            chk.vector(name, report.get(name), want, fl)
        chk.matrix("tangent_kernel0", report.get("tangent_kernel0"), exp_tk(exp, w0, True))
        chk.matrix("tangent_kernel_end", report.get("tangent_kernel_end"), exp_tk(exp, w_end, True))
    else:
        nested(chk, "path_kernel", report.get("path_kernel"), kp)
        nested(chk, "coef_integral", report.get("coef_integral"), a_d)
        nested(chk, "exact_coef_integral", report.get("exact_coef_integral"), a_e)
        check_a_vec(chk, report, kp, a_d)
        yf = _max_abs(y0 + y_end)
        nested(chk, "y0", report.get("y0"), y0, yf)
        nested(chk, "y_end", report.get("y_end"), y_end, yf)
        fields = [("decay_term", d_d, floor), ("exact_decay_term", d_e, efloor),
                  ("kernel_machine", km, floor), ("residual", res, floor),
                  ("exact_kernel_machine", ekm, efloor), ("exact_residual", eres, efloor)]
        for name, want, fl in fields:
            nested(chk, name, report.get(name), want, fl)
        nested(chk, "tangent_kernel0", report.get("tangent_kernel0"), exp.tangent_kernel(w0))
        nested(chk, "tangent_kernel_end", report.get("tangent_kernel_end"), exp.tangent_kernel(w_end))
    chk.close("max_abs_residual", report.get("max_abs_residual"), _max_abs(res), floor)
    chk.close("exact_max_abs_residual", report.get("exact_max_abs_residual"), _max_abs(eres), efloor)
    loss0, loss_end = exp.loss(w0), exp.loss(w_end)
    chk.close("loss0", report.get("loss0"), loss0, max(loss0, loss_end))
    chk.close("loss_end", report.get("loss_end"), loss_end, max(loss0, loss_end))
    # The exact identity closes to rounding in the reference too.
    if not _max_abs(eres) <= REL * efloor:
        chk.fail(f"exact identity: reference residual {_max_abs(eres):.3e} above {REL * efloor:.1e}")
    return chk


def exp_tk(exp, w, scalar):
    """K^g at w as M rows of N (C = 1)."""
    blocks = exp.tangent_kernel(w)
    return [[b[0][0] for b in row] for row in blocks] if scalar else blocks



def check_report(report, original=None):
    chk = Checker()
    spec = with_defaults(report["spec"])
    if original is not None:
        spec = check_spec(chk, report, original)
    if spec["flow"]["method"] in OPT_DEFAULTS:
        return check_report_opt(chk, report, spec)
    if n_outputs_of(spec["model"]) != 1:
        return check_report_vec(chk, report, spec, original)
    # C = 1 keeps the shapes of section 5; n_outputs may be left out.
    chk.equal("n_outputs", report.get("n_outputs"), {None, 1})
    exp = Experiment(spec, report["train_x"], report["train_y"], report["test_x"])
    flow = spec["flow"]
    method = flow["method"]
    t_end = float(flow["t_end"])
    w0 = report["w0"]
    chk.equal("version", report.get("version"), 1)
    chk.equal("n_params", report.get("n_params"), exp.n_params)
    if len(w0) != exp.n_params:
        chk.fail(f"w0: {len(w0)} entries, the model has {exp.n_params}")
        return chk
    exp.w0 = w0
    drawn = original is not None and "w0" not in original.get("init", {})
    if drawn:
        fixed = init_fixed_entries(spec["model"], len(exp.xs[0]), exp.n_params)
        for j, v in sorted(fixed.items()):
            chk.equal(f"w0[{j}] (fixed by the init rule)", w0[j], v)
    chk.close("t_end", report.get("t_end"), t_end, 0.0)

    step = flow.get("lr") if method == "gd" else flow.get("step")
    # verner98's coefficients are not typed in here: its fixed-step runs get
    # the adaptive run's partial check.
    fixed = step is not None and method in TABLEAUS
    if fixed:
        k_steps = round(t_end / step)
        state = exp.integrate(method, step, k_steps)
        p, mn = exp.n_params, exp.m * exp.n
        w_end = state[:p]
        kp = [state[p + r * exp.n : p + (r + 1) * exp.n] for r in range(exp.m)]
        aint = [state[p + mn + r * exp.n : p + mn + (r + 1) * exp.n] for r in range(exp.m)]
        chk.vector("w_end", report.get("w_end"), w_end, max(_max_abs([w0, w_end]), 1e-300))
        chk.matrix("path_kernel", report.get("path_kernel"), kp)
        chk.matrix("coef_integral", report.get("coef_integral"), aint)
        chk.equal("steps", report.get("steps"), k_steps)
        chk.equal("rejected_steps", report.get("rejected_steps"), 0)
        chk.equal("rhs_evals", report.get("rhs_evals"), rhs_evals_allowed(method, k_steps))
    else:
        # Adaptive: the path is the tool's; check what w_end determines.
        w_end = report["w_end"]
        kp = report["path_kernel"]
        aint = report["coef_integral"]

    y0 = exp.outputs(w0)
    y_end = exp.outputs(w_end)
    y_floor = _max_abs([y0, y_end])
    chk.vector("y0", report.get("y0"), y0, y_floor)
    chk.vector("y_end", report.get("y_end"), y_end, y_floor)
    loss0, loss_end = exp.loss(w0), exp.loss(w_end)
    chk.close("loss0", report.get("loss0"), loss0, max(loss0, loss_end))
    chk.close("loss_end", report.get("loss_end"), loss_end, max(loss0, loss_end))
    chk.matrix("tangent_kernel0", report.get("tangent_kernel0"), exp.tangent_kernel(w0))
    chk.matrix("tangent_kernel_end", report.get("tangent_kernel_end"), exp.tangent_kernel(w_end))
    check_a(chk, report, kp, aint)

    # yhat = b + sum_i A_i; r = f(w(T)) - yhat. Floor: the magnitudes summed.
    km = [y0[m] + math.fsum(aint[m]) for m in range(exp.m)]
    res = [y_end[m] - km[m] for m in range(exp.m)]
    floor = max(
        [abs(y0[m]) + abs(y_end[m]) + sum(abs(v) for v in aint[m]) for m in range(exp.m)],
        default=0.0,
    )
    chk.vector("kernel_machine", report.get("kernel_machine"), km, floor)
    chk.vector("residual", report.get("residual"), res, floor)
    chk.close("max_abs_residual", report.get("max_abs_residual"), max(map(abs, res)), floor)

    if method == "gd" and flow.get("exact_path_kernel"):
        ex = exp.exact_gd(step, round(t_end / step))
        ekm = [y0[m] + math.fsum(ex[m]) for m in range(exp.m)]
        eres = [abs(y_end[m] - ekm[m]) for m in range(exp.m)]
        efloor = max(
            [abs(y0[m]) + abs(y_end[m]) + sum(abs(v) for v in ex[m]) for m in range(exp.m)],
            default=0.0,
        )
        chk.matrix("exact_coef_integral", report.get("exact_coef_integral"), ex)
        chk.vector("exact_kernel_machine", report.get("exact_kernel_machine"), ekm, efloor)
        chk.close("exact_max_abs_residual", report.get("exact_max_abs_residual"), max(eres), efloor)
        if report.get("exact_residual") is not None:
            signed = [y_end[m] - ekm[m] for m in range(exp.m)]
            chk.vector("exact_residual", report.get("exact_residual"), signed, efloor)
        # The identity itself: the exact decomposition closes to rounding.
        if not max(eres) <= REL * efloor:
            chk.fail(f"exact identity: reference residual {max(eres):.3e} above {REL * efloor:.1e}")
    else:
        for key in ("exact_coef_integral", "exact_kernel_machine", "exact_max_abs_residual"):
            if report.get(key) is not None:
                chk.fail(f"{key}: present without gd exact_path_kernel")
    return chk


def main(argv):
    args = list(argv[1:])
    original = None
    if "--spec" in args:
        i = args.index("--spec")
        with open(args[i + 1]) as fh:
            original = json.load(fh)
        del args[i : i + 2]
    if len(args) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with open(args[0]) as fh:
        report = json.load(fh)
    chk = check_report(report, original)
    for line in chk.failures:
        print(line)
    spec = report.get("spec", {})
    what = f"{spec.get('model', {}).get('arch')} {spec.get('loss', {}).get('kind')} {spec.get('flow', {}).get('method')}"
    if chk.failures:
        print(f"{args[0]} ({what}): {len(chk.failures)} of {chk.checked} checks disagree")
        return 1
    print(f"{args[0]} ({what}): {chk.checked} checks agree")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
