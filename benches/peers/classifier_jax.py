"""JAX + diffrax peer of `pathkernel run` for an mlp bench spec (SPEC sections 1, 3, 4, 8).

What a researcher would write to get the path kernel and the coefficient
integrals by integrating the augmented ODE (w, K^p, A) with diffrax's Dopri5:

    dw/dt   = -grad L(w)
    dK^p/dt = K^g(q, x)                      K^g_{cc'}(q, x) = grad f_c(q) . grad f_c'(x)
    dA/dt   = sum_c' -l'_{i,c'} K^g_{cc'}(q, x_i)

with per-example Jacobians from jax.vmap(jax.jacrev(f)), float64, everything
under jax.jit, diffrax's defaults (integral PID controller, RMS norm over the
whole augmented state, dt0=None: diffrax 0.7.2 then starts at 0.01, see README.md).

Usage:  python classifier_jax.py [SPEC.json] [--repeats R] [--rhs-calls K] [--no-count] [--json OUT]
Default SPEC: /work/shared/bench/classifier.json. Any mlp spec with inline data
and init.w0, loss squared or cross_entropy, reduction sum or mean, C >= 1
outputs (C = 1: outputs of shape (1,), K^p of shape (M, N, 1, 1)) runs through
the same code.
"""

import argparse
import json
import resource
import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_SPEC = "/work/shared/bench/classifier.json"


def peak_rss_mb():
    # Linux: ru_maxrss is in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load(path, arch="mlp"):
    with open(path) as fh:
        spec = json.load(fh)
    model = spec["model"]
    assert model["arch"] == arch, f"this peer covers the {arch} architecture only"
    if arch == "mlp":
        assert model.get("parameterization", "standard") == "standard"
        assert model.get("bias", True), "bias false is not covered"
        assert model.get("activation", "tanh") == "tanh"
    assert spec["data"]["source"] == "inline"
    flow = spec["flow"]
    assert flow["method"] == "dopri5" and "step" not in flow
    return spec


def mlp_model(spec, D, C):
    """(f, P): f(w, x) the C outputs of the mlp, P its parameter count."""
    sizes = [D] + list(spec["model"]["hidden"]) + [C]

    # SPEC section 3 / 8 layout: per layer W (out, in) row-major, then b.
    shapes = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        shapes.append((fan_out, fan_in))
    P = sum(o * i + o for o, i in shapes)

    def unflatten(w):
        params, k = [], 0
        for o, i in shapes:
            W = w[k : k + o * i].reshape(o, i)
            k += o * i
            b = w[k : k + o]
            k += o
            params.append((W, b))
        return params

    def f(w, x):
        """Model outputs f(w; x), shape (C,)."""
        params = unflatten(w)
        u = x
        for W, b in params[:-1]:
            u = jnp.tanh(W @ u + b)
        W, b = params[-1]
        return W @ u + b

    return f, P


def make_problem(spec, model_fn=mlp_model):
    d = spec["data"]
    X = jnp.asarray(np.array(d["train_x"], dtype=np.float64))
    Q = jnp.asarray(np.array(d["test_x"], dtype=np.float64))
    N, D = X.shape
    M = Q.shape[0]
    C = int(spec["model"].get("outputs", 1))
    kind = spec["loss"]["kind"]
    red = spec.get("reduction", "sum")
    c_red = 1.0 / N if red == "mean" else 1.0
    if kind == "cross_entropy":
        assert C >= 2
        Y = jnp.asarray(np.array(d["train_y"], dtype=np.int64))
    elif kind == "squared":
        Y = jnp.asarray(np.array(d["train_y"], dtype=np.float64)).reshape(N, C)
    else:
        raise SystemExit(f"loss {kind!r} not covered by this peer")

    f, P = model_fn(spec, D, C)
    w0 = jnp.asarray(np.array(spec["init"]["w0"], dtype=np.float64))
    assert w0.shape == (P,), (w0.shape, P)

    def per_example_loss(F, y):
        if kind == "cross_entropy":
            return jax.nn.logsumexp(F) - F[y]
        return 0.5 * jnp.sum((F - y) ** 2)

    def loss_of_outputs(FX):
        return c_red * jnp.sum(jax.vmap(per_example_loss)(FX, Y))

    def loss(w):
        return loss_of_outputs(jax.vmap(f, in_axes=(None, 0))(w, X))

    jac = jax.vmap(jax.jacrev(f), in_axes=(None, 0))  # per-example Jacobians (B, C, P)

    def vector_field(t, state, args):
        w, Kp, A = state
        FX = jax.vmap(f, in_axes=(None, 0))(w, X)  # (N, C)
        lp = jax.grad(loss_of_outputs)(FX)  # l' = dL/df, reduction weight included, (N, C)
        Jx = jac(w, X)  # (N, C, P)
        Jq = jac(w, Q)  # (M, C, P)
        Kg = jnp.einsum("mcp,ndp->mncd", Jq, Jx)  # K^g_{cc'}(q_m, x_n), (M, N, C, C)
        # -grad L(w). (The same vector is -sum_i J_i^T l'_i, but writing it as
        # jnp.einsum("ncp,nc->p", Jx, lp) made XLA's CPU code for the whole
        # evaluation about 4x slower with jax 0.10.2; jax.grad is what a
        # researcher writes first anyway.)
        dw = -jax.grad(loss)(w)
        dA = -jnp.einsum("mncd,nd->mnc", Kg, lp)
        return dw, Kg, dA

    y0 = (w0, jnp.zeros((M, N, C, C)), jnp.zeros((M, N, C)))
    flow = spec["flow"]
    rtol = float(flow.get("rtol", 1e-8))
    atol = float(flow.get("atol", 1e-10))
    t_end = float(flow["t_end"])
    max_steps = int(flow.get("max_steps", 100_000))

    def solve_with(vf):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(vf),
            diffrax.Dopri5(),
            t0=0.0,
            t1=t_end,
            dt0=None,
            y0=y0,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps,
        )

    fq = jax.jit(jax.vmap(f, in_axes=(None, 0)))
    return dict(
        N=N, M=M, C=C, P=P, D=D, X=X, Q=Q, w0=w0, y0=y0, f=f, fq=fq, loss=jax.jit(loss),
        vector_field=vector_field, solve_with=solve_with, rtol=rtol, atol=atol,
        t_end=t_end, red=red, kind=kind,
    )


def instrumented_vector_field(prob, calls, progress_every):
    """The same right-hand side, counting its evaluations (for the untimed solve)."""

    def note(t):
        calls.append(float(t))
        if progress_every and len(calls) % progress_every == 0:
            print(f"  ... {len(calls)} evaluations, t = {float(t):.6g}", file=sys.stderr, flush=True)

    def vf(t, state, args):
        jax.debug.callback(note, t, ordered=True)
        return prob["vector_field"](t, state, args)

    return vf


def residual(prob, sol):
    w_end, A = sol.ys[0][-1], sol.ys[2][-1]
    f0q = prob["fq"](prob["w0"], prob["Q"])
    f1q = prob["fq"](w_end, prob["Q"])
    r = f1q - (f0q + A.sum(axis=1))  # f(w_end; q) - yhat(q), over m (and c)
    return float(jnp.max(jnp.abs(r))), float(jnp.max(jnp.abs(f1q - f0q)))


# Agreement with pathkernel's report (--report): both solve the same ODE by
# dopri5 at the spec's rtol and atol, on different step sequences (diffrax
# starts at h = 0.01, pathkernel by Hairer's starting step). Each step's
# local error is held to about rtol |y| + atol, and the propagated
# 5th-order solution's error lies well below the 4th-order estimate that is
# controlled; over S steps the global errors add to at most S (rtol |y| +
# atol), times the flow's growth factor (the loss decreases, so the flow is
# not expanding much here). With S below 60 and rtol 1e-8 that is under
# 1e-6 of each field's largest magnitude: TOL. A different model, layout or
# loss moves the fields by O(1) of their size.
TOL = 1e-6


def report_field(report, name, path):
    """A report field as an array, read from the npz beside the report when
    the JSON holds {"npz": NAME} (SPEC section 12)."""
    v = report[name]
    if isinstance(v, dict) and "npz" in v:
        return np.load(path.rsplit(".", 1)[0] + ".npz")[v["npz"]]
    return np.array(v, dtype=np.float64)


def compare_with_report(prob, sol, path):
    """Max differences, relative to each field's largest magnitude, between
    this solve and pathkernel's report; (ok, {field: relative difference})."""
    with open(path) as fh:
        report = json.load(fh)
    C = prob["C"]
    w_end = sol.ys[0][-1]
    mine = {
        "w_end": np.asarray(w_end),
        "y_end": np.asarray(prob["fq"](w_end, prob["Q"])),
        "path_kernel": np.asarray(sol.ys[1][-1]),
        "coef_integral": np.asarray(sol.ys[2][-1]),
    }
    if C == 1:
        mine = {"w_end": mine["w_end"], "y_end": mine["y_end"][:, 0],
                "path_kernel": mine["path_kernel"][:, :, 0, 0], "coef_integral": mine["coef_integral"][:, :, 0]}
    diffs = {}
    for name, v in mine.items():
        theirs = report_field(report, name, path)
        assert theirs.shape == v.shape, (name, theirs.shape, v.shape)
        diffs[name] = float(np.max(np.abs(theirs - v)) / np.max(np.abs(theirs)))
    return all(d <= TOL for d in diffs.values()), diffs


def main(default_spec=DEFAULT_SPEC, argv=None, model_fn=mlp_model, arch="mlp"):
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=default_spec)
    ap.add_argument("--repeats", type=int, default=3, help="timed whole solves (median)")
    ap.add_argument("--rhs-calls", type=int, default=None, help="timed single evaluations")
    ap.add_argument("--no-count", action="store_true",
                    help="skip the instrumented solve (it counts the evaluations and is the warm-up)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--report", default=None,
                    help="pathkernel's report of the same spec: w_end, y_end, path_kernel and "
                         "coef_integral must agree to TOL before anything is timed")
    a = ap.parse_args(argv)

    spec = load(a.spec, arch)
    prob = make_problem(spec, model_fn)
    big = prob["P"] * prob["N"] * prob["C"] >= 1e6
    rss_start = peak_rss_mb()
    out = dict(spec=a.spec, jax=jax.__version__, diffrax=diffrax.__version__, P=prob["P"])

    def dump():
        out["peak_rss_mb"] = peak_rss_mb()
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(out, fh, indent=1)

    print(f"spec {a.spec}: P {prob['P']}, D {prob['D']}, N {prob['N']}, M {prob['M']}, "
          f"C {prob['C']}, loss {prob['kind']} ({prob['red']}), dopri5 rtol {prob['rtol']:g} "
          f"atol {prob['atol']:g}, t_end {prob['t_end']:g}")
    print(f"jax {jax.__version__}, diffrax {diffrax.__version__}, devices {jax.devices()}", flush=True)

    # --- one evaluation of the right-hand side (jit, steady state) ---
    rhs = jax.jit(prob["vector_field"])
    t_c = time.perf_counter()
    jax.block_until_ready(rhs(0.0, prob["y0"], None))
    rhs_compile = time.perf_counter() - t_c
    n_calls = a.rhs_calls or (10 if big else 1000)
    for _ in range(min(3, n_calls)):
        jax.block_until_ready(rhs(0.0, prob["y0"], None))
    rhs_times = []
    for _ in range(n_calls):
        t_s = time.perf_counter()
        jax.block_until_ready(rhs(0.0, prob["y0"], None))
        rhs_times.append(time.perf_counter() - t_s)
    out.update(rhs_median_s=statistics.median(rhs_times), rhs_min_s=min(rhs_times),
               rhs_max_s=max(rhs_times), rhs_calls=n_calls)
    print(f"one evaluation: median {out['rhs_median_s'] * 1e3:.4g} ms over {n_calls} calls "
          f"(min {min(rhs_times) * 1e3:.4g}, max {max(rhs_times) * 1e3:.4g}); "
          f"compile + first call {rhs_compile:.2f} s", flush=True)
    dump()

    # --- the instrumented solve: evaluation count, step counts, residual; also the warm-up ---
    if not a.no_count:
        calls = []
        vf = instrumented_vector_field(prob, calls, 50 if big else 0)
        counted = jax.jit(lambda: prob["solve_with"](vf))
        t_c = time.perf_counter()
        sol = counted()
        jax.block_until_ready(sol.ys)
        first = time.perf_counter() - t_c
        stats = {k: int(v) for k, v in sol.stats.items()}
        max_r, change = residual(prob, sol)
        out.update(instrumented_solve_s=first, rhs_evals=len(calls), stats=stats,
                   max_abs_residual=max_r, max_abs_change=change)
        print(f"instrumented solve (compile + run, counting): {first:.4g} s; result {sol.result}")
        print(f"stats: {stats}; right-hand-side evaluations: {len(calls)}")
        print(f"identity residual max |f(w_end;q) - f(w0;q) - sum_i A_i(q)| = {max_r:.3e} "
              f"(max |f(w_end;q) - f(w0;q)| = {change:.3e})", flush=True)
        dump()
        if a.report:
            ok, diffs = compare_with_report(prob, sol, a.report)
            out["report_relative_differences"] = diffs
            dump()
            print("against pathkernel's report (relative to each field's largest magnitude): "
                  + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
                  + f"; {'agree' if ok else 'DISAGREE'} to {TOL:g}", flush=True)
            if not ok:
                raise SystemExit("the peer does not reproduce pathkernel's report: nothing timed")

    # --- the whole solve, timed: compiled ahead of time, then `repeats` runs ---
    t_c = time.perf_counter()
    solve = jax.jit(lambda: prob["solve_with"](prob["vector_field"])).lower().compile()
    out["solve_compile_s"] = time.perf_counter() - t_c
    print(f"solve compiled in {out['solve_compile_s']:.2f} s", flush=True)
    if a.no_count:  # the warm-up run the instrumented solve otherwise provides
        jax.block_until_ready(solve().ys)
    times = []
    for k in range(a.repeats):
        t_s = time.perf_counter()
        sol = solve()
        jax.block_until_ready(sol.ys)
        times.append(time.perf_counter() - t_s)
        print(f"  timed solve {k + 1}: {times[-1] * 1e3:.5g} ms", flush=True)
        out["solve_times_s"] = times
        dump()
    med = statistics.median(times)
    stats = {k: int(v) for k, v in sol.stats.items()}
    max_r, change = residual(prob, sol)
    out.update(solve_median_s=med, stats=stats, max_abs_residual=max_r, max_abs_change=change,
               loss0=float(prob["loss"](prob["w0"])), loss_end=float(prob["loss"](sol.ys[0][-1])),
               w_end_norm=float(jnp.linalg.norm(sol.ys[0][-1])), Kp_sum=float(sol.ys[1][-1].sum()))
    print(f"whole solve: median {med * 1e3:.5g} ms over {a.repeats} runs "
          f"(min {min(times) * 1e3:.5g}, max {max(times) * 1e3:.5g}); result {sol.result}")
    print(f"stats: {stats}")
    print(f"loss0 {out['loss0']:.17g}, loss_end {out['loss_end']:.17g}")
    print(f"identity residual max |f(w_end;q) - f(w0;q) - sum_i A_i(q)| = {max_r:.3e} "
          f"(max |f(w_end;q) - f(w0;q)| = {change:.3e})")
    dump()
    print(f"peak resident memory {out['peak_rss_mb']:.0f} MB "
          f"(after loading the spec and data: {rss_start:.0f} MB)", flush=True)
    return out


if __name__ == "__main__":
    main(argv=sys.argv[1:])
