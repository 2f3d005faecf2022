"""JAX + diffrax peer of `pathkernel run` for a layered bench spec (SPEC section 10).

The same augmented ODE, solver and timing as classifier_jax.py (its main),
with the model a researcher writes for SPEC section 10: lax.conv_general_dilated
for the convolutions (cross-correlations, NCHW / OIHW, "same" as symmetric
padding (k - 1) / 2), a reshape-and-mean for avg_pool, and the parameters cut
from the flat w in the section 10 layout (conv W (out_ch, in_ch, k, k) then
b, dense W (out, in) then b, layer_norm gamma then beta). Per-example
Jacobians by jax.vmap(jax.jacrev(f)), as in the mlp peer.

Usage:  python cnn_jax.py [SPEC.json] [--report REPORT.json] [--repeats R] [--json OUT]
Default SPEC: /work/shared/bench/cnn.json. With --report (pathkernel's report
of the same spec) the peer first checks that it reproduces w_end, y_end,
path_kernel and coef_integral, and times nothing if it does not.
"""

import math
import sys

import jax
import jax.numpy as jnp
from jax import lax

from classifier_jax import main

DEFAULT_SPEC = "/work/shared/bench/cnn.json"

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid,
               "identity": lambda z: z, "softplus": jax.nn.softplus, "sin": jnp.sin}


def layers_model(spec, D, C):
    """(f, P) for an "arch": "layers" spec: f(w, x) the C outputs of one example."""
    model = spec["model"]
    shape = tuple(model["input_shape"])
    assert math.prod(shape) == D
    plan, P = [], 0  # (kind, settings, parameter offset)
    for layer in model["layers"]:
        kind = layer["kind"]
        if kind in ("conv1d", "conv2d"):
            dims = 1 if kind == "conv1d" else 2
            k, s, o = layer["kernel"], layer.get("stride", 1), layer["channels"]
            pad = (k - 1) // 2 if layer.get("padding", "valid") == "same" else 0
            bias = layer.get("bias", True)
            wshape = (o, shape[0]) + (k,) * dims
            plan.append((kind, dict(wshape=wshape, stride=(s,) * dims, pad=[(pad, pad)] * dims, bias=bias), P))
            P += math.prod(wshape) + (o if bias else 0)
            shape = (o,) + tuple((n + 2 * pad - k) // s + 1 for n in shape[1:])
        elif kind == "dense":
            (n_in,) = shape
            bias = layer.get("bias", True)
            plan.append((kind, dict(wshape=(layer["units"], n_in), bias=bias), P))
            P += layer["units"] * n_in + (layer["units"] if bias else 0)
            shape = (layer["units"],)
        elif kind == "activation":
            plan.append((kind, dict(fn=ACTIVATIONS[layer["name"]]), P))
        elif kind == "avg_pool":
            z = layer["size"]
            out = (shape[0],) + tuple(n // z for n in shape[1:])
            plan.append((kind, dict(size=z, out=out), P))
            shape = out
        elif kind == "flatten":
            plan.append((kind, {}, P))
            shape = (math.prod(shape),)
        elif kind == "layer_norm":
            affine = layer.get("affine", True)
            plan.append((kind, dict(n=math.prod(shape), eps=layer.get("eps", 1e-5), affine=affine), P))
            P += 2 * math.prod(shape) if affine else 0
        else:
            raise SystemExit(f"layer kind {kind!r} not covered by this peer")
    assert shape == (C,), f"the last layer gives {shape}, not {C} outputs"
    in_shape = tuple(model["input_shape"])

    def f(w, x):
        u = x.reshape(in_shape)
        for kind, st, off in plan:
            if kind in ("conv1d", "conv2d"):
                n_w = math.prod(st["wshape"])
                W = w[off : off + n_w].reshape(st["wshape"])
                spatial = "HW" if kind == "conv2d" else "H"
                u = lax.conv_general_dilated(
                    u[None], W, window_strides=st["stride"], padding=st["pad"],
                    dimension_numbers=("NC" + spatial, "OI" + spatial, "NC" + spatial))[0]
                if st["bias"]:
                    b = w[off + n_w : off + n_w + st["wshape"][0]]
                    u = u + b.reshape((-1,) + (1,) * (u.ndim - 1))
            elif kind == "dense":
                o, i = st["wshape"]
                u = w[off : off + o * i].reshape(o, i) @ u
                if st["bias"]:
                    u = u + w[off + o * i : off + o * i + o]
            elif kind == "activation":
                u = st["fn"](u)
            elif kind == "avg_pool":
                z, out = st["size"], st["out"]
                u = u[(slice(None),) + tuple(slice(0, n * z) for n in out[1:])]
                split = (out[0],) + tuple(d for n in out[1:] for d in (n, z))
                u = u.reshape(split).mean(axis=tuple(range(2, len(split), 2)))
            elif kind == "flatten":
                u = u.reshape(-1)
            elif kind == "layer_norm":
                mean = u.mean()
                var = ((u - mean) ** 2).mean()  # biased, SPEC section 10
                u = (u - mean) / jnp.sqrt(var + st["eps"])
                if st["affine"]:
                    n = st["n"]
                    u = w[off : off + n].reshape(u.shape) * u + w[off + n : off + 2 * n].reshape(u.shape)
        return u

    return f, P


if __name__ == "__main__":
    main(default_spec=DEFAULT_SPEC, argv=sys.argv[1:], model_fn=layers_model, arch="layers")
