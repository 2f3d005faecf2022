"""JAX + optax peer of `pathkernel run` for an sgd/adam bench spec (SPEC sections 3, 9).

What a researcher would write, from SPEC section 9 alone, to train an mlp
with optax and decompose f(w_K; q) - f(w_0; q) over the training points both
ways, for the bench specs benches/specs/sgd_momentum.json and adam.json:

  - the step: g_k = sum_i l'_{k,i} grad f(w_k; x_i) through optax.sgd
    (momentum, nesterov) or optax.adam, the learning rate eta_k per step;
  - per-example gradients by jax.vmap(jax.grad(f)), each point's share
    x_{k,i} = l'_{k,i} grad f(w_k; x_i) carried through a buffer of its own
    (sgd: buf_i = mu buf_i + x_i, d_i = buf_i or x_i + mu buf_i; adam:
    m_i = b1 m_i + (1 - b1) x_i, d_i = P_k m_i / (1 - b1^{k+1}) with
    P_k = 1 / (sqrt(nu_k / (1 - b2^{k+1})) + eps) from optax's own nu),
    G_{k,i} = -eta_k d_i (no weight decay: the bench specs have none);
  - the Domingos form: A_i(q) += grad f(w_k; q) . G_{k,i} and
    K^p(q, x_i) += eta_k grad f(w_k; q)^T P_k grad f(w_k; x_i);
  - the exact form: gbar_k(q) = int_0^1 grad f(w_k + s Delta_k; q) ds by
    8-point Gauss-Legendre on the segment, A^e_i(q) += gbar_k(q) . G_{k,i};
  - the second-order term r2(q) += 1/2 Delta_k^T hess f(w_k; q) Delta_k, a
    second derivative along Delta_k by nested jax.jvp;

the whole loop under jax.jit and lax.scan, float64.

The batches and step sizes come from pathkernel's report (`--report`, SPEC
section 9: the report holds `batches` and `step_sizes` so anyone can replay
the run; the epoch shuffle is pathkernel's own generator). After one
untimed run (which compiles) the peer compares w_end, coef_integral,
path_kernel, exact_coef_integral and second_order_term with the report and
stops unless each is within TOL of the field's largest magnitude; then it
times `--repeats` runs.

Usage:  python optimizer_jax.py SPEC.json --report REPORT.json [--repeats R] [--json OUT]
"""

import argparse
import json
import resource
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

# Both sides compute the same finite sums of the same discrete run; they
# differ by the order of rounding only. Over K = 400 steps each sum gathers
# K terms whose rounding is about 1e-16 of the largest term, and the
# iterates themselves differ by rounding amplified by the training map
# (mildly expanding at these learning rates), so 1e-9 of a field's largest
# magnitude is far above what the two can differ by and far below what a
# wrong term moves (a dropped step or a wrong coefficient moves a field by
# 1e-3 of its size or more).
TOL = 1e-9


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mlp(sizes):
    """f(w, x) of an mlp with tanh hidden layers (SPEC section 3 layout:
    per layer W (out, in) row-major, then b), and its P."""
    shapes = list(zip(sizes[1:], sizes[:-1]))
    P = sum(o * i + o for o, i in shapes)

    def f(w, x):
        k, u = 0, x
        for layer, (o, i) in enumerate(shapes):
            W = w[k : k + o * i].reshape(o, i)
            k += o * i
            b = w[k : k + o]
            k += o
            z = W @ u + b
            u = jnp.tanh(z) if layer < len(shapes) - 1 else z
        return u[0]

    return f, P


def build(spec, report):
    model, flow = spec["model"], spec["flow"]
    assert model["arch"] == "mlp" and model.get("activation", "tanh") == "tanh"
    assert model.get("bias", True) and model.get("parameterization", "standard") == "standard"
    assert model.get("outputs", 1) == 1 and spec["loss"]["kind"] == "squared"
    assert not flow.get("weight_decay"), "this peer covers runs without weight decay"
    method = flow["method"]
    assert method in ("sgd", "adam")
    d = spec["data"]
    X = jnp.asarray(np.array(d["train_x"], dtype=np.float64))
    Y = jnp.asarray(np.array(d["train_y"], dtype=np.float64))
    Q = jnp.asarray(np.array(d["test_x"], dtype=np.float64))
    N, D = X.shape
    f, P = mlp([D] + list(model["hidden"]) + [1])
    w0 = jnp.asarray(np.array(spec["init"]["w0"], dtype=np.float64))
    assert w0.shape == (P,)

    batches = report["batches"]
    K = len(batches)
    counts = np.zeros((K, N))
    for k, b in enumerate(batches):
        for i in b:
            counts[k, i] += 1.0
    mean = spec.get("reduction", "sum") == "mean"
    ck = np.array([1.0 / len(b) if mean else 1.0 for b in batches])
    weights = jnp.asarray(counts * ck[:, None])  # n_i c_k: l'_{k,i} = that times (f - y)
    etas = jnp.asarray(np.array(report["step_sizes"], dtype=np.float64))
    lr = lambda count: etas[count]  # noqa: E731

    mu = float(flow.get("momentum", 0.0))
    nesterov = bool(flow.get("nesterov", False))
    b1, b2 = float(flow.get("beta1", 0.9)), float(flow.get("beta2", 0.999))
    eps = float(flow.get("eps", 1e-8))
    if method == "sgd":
        tx = optax.sgd(lr, momentum=mu if mu > 0 else None, nesterov=nesterov)
    else:
        tx = optax.adam(lr, b1=b1, b2=b2, eps=eps)

    fx = jax.vmap(f, in_axes=(None, 0))
    grads = jax.vmap(jax.grad(f), in_axes=(None, 0))  # per-example gradients
    nodes, node_w = np.polynomial.legendre.leggauss(8)
    nodes, node_w = (nodes + 1.0) / 2.0, node_w / 2.0

    def second(w, delta):
        along = lambda t: fx(w + t * delta, Q)  # noqa: E731
        first = lambda t: jax.jvp(along, (t,), (1.0,))[1]  # noqa: E731
        return jax.jvp(first, (0.0,), (1.0,))[1]

    def step(carry, inputs):
        w, state, bufs, Kp, A, Ae, r2 = carry
        k, weight, eta = inputs
        lp = weight * (fx(w, X) - Y)  # l'_{k,i}, zero off the batch
        Jx = grads(w, X)  # (N, P)
        g = lp @ Jx
        updates, state = tx.update(g, state, w)
        w1 = optax.apply_updates(w, updates)
        x = lp[:, None] * Jx
        t = k + 1.0
        if method == "sgd":
            bufs = mu * bufs + x
            d = x + mu * bufs if nesterov else bufs
            pre = jnp.ones(P)
        else:
            bufs = b1 * bufs + (1.0 - b1) * x
            nu = state[0].nu
            pre = 1.0 / (jnp.sqrt(nu / (1.0 - b2**t)) + eps)
            d = pre * bufs / (1.0 - b1**t)
        G = -eta * d  # (N, P)
        Jq = grads(w, Q)  # (M, P)
        Kp = Kp + eta * (Jq * pre) @ Jx.T
        A = A + Jq @ G.T
        delta = w1 - w
        gbar = sum(float(c) * grads(w + float(s) * delta, Q) for s, c in zip(nodes, node_w))
        Ae = Ae + gbar @ G.T
        r2 = r2 + 0.5 * second(w, delta)
        return (w1, state, bufs, Kp, A, Ae, r2), None

    M = Q.shape[0]
    init = (
        w0,
        tx.init(w0),
        jnp.zeros((N, P)),
        jnp.zeros((M, N)),
        jnp.zeros((M, N)),
        jnp.zeros((M, N)),
        jnp.zeros(M),
    )
    xs = (jnp.arange(K, dtype=jnp.float64), weights, etas)

    @jax.jit
    def run(init, xs):
        out, _ = jax.lax.scan(step, init, xs)
        return out

    def residuals(out):
        w_end, _, _, _, A, Ae, _ = out
        f0, f1 = fx(w0, Q), fx(w_end, Q)
        return (
            float(jnp.max(jnp.abs(f1 - f0 - A.sum(axis=1)))),
            float(jnp.max(jnp.abs(f1 - f0 - Ae.sum(axis=1)))),
        )

    return dict(run=run, init=init, xs=xs, residuals=residuals, N=N, M=M, P=P, K=K)


def field(report, name):
    v = report[name]
    return np.array(v, dtype=np.float64)


def compare(report, out, N, M):
    """Largest difference over each field's largest magnitude."""
    w_end, _, _, Kp, A, Ae, r2 = out
    # Report matrices are lists of rows (m over n), as SPEC section 5 writes them.
    pairs = {
        "w_end": (np.asarray(w_end), field(report, "w_end")),
        "path_kernel": (np.asarray(Kp), field(report, "path_kernel").reshape(M, N)),
        "coef_integral": (np.asarray(A), field(report, "coef_integral").reshape(M, N)),
        "exact_coef_integral": (np.asarray(Ae), field(report, "exact_coef_integral").reshape(M, N)),
        "second_order_term": (np.asarray(r2), field(report, "second_order_term").reshape(M)),
    }
    return {k: float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for k, (a, b) in pairs.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--report", required=True, help="pathkernel's report of the same spec (JSON)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    spec = json.load(open(args.spec))
    report = json.load(open(args.report))
    prob = build(spec, report)
    print(f"N {prob['N']}, M {prob['M']}, P {prob['P']}, steps {prob['K']}", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(prob["run"](prob["init"], prob["xs"]))
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    agreement = compare(report, out, prob["N"], prob["M"])
    residual, exact_residual = prob["residuals"](out)
    print(f"first run (compiles): {first:.2f} s; agreement {agreement}", flush=True)
    print(f"max residual {residual:.3e}, max exact residual {exact_residual:.3e}", flush=True)
    bad = {k: v for k, v in agreement.items() if not v <= TOL}
    if bad:
        raise SystemExit(f"disagrees with the report beyond {TOL}: {bad}")

    # Wall time and the process's CPU time (all its threads): on a machine
    # that others load, the CPU time is the steadier figure.
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(prob["run"](prob["init"], prob["xs"]))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        print(f"run: {times[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU", flush=True)
    result = dict(
        spec=args.spec,
        steps=prob["K"],
        first_run_s=first,
        first_run_cpu_s=first_cpu,
        times_s=times,
        cpu_s=cpu,
        median_s=statistics.median(times),
        median_cpu_s=statistics.median(cpu),
        agreement=agreement,
        max_residual=residual,
        max_exact_residual=exact_residual,
        peak_rss_mb=peak_rss_mb(),
        jax=jax.__version__,
        optax=optax.__version__,
    )
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
