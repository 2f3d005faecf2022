"""Layered models (SPEC section 10) for the reference, written from SPEC.md alone.

    n_params, jac = layers_model(model, dim, activations)

jac(w, x) -> (f, J): the C outputs of one example and J[c], the gradient
d f_c / d w in the flat layout of section 10 (layers in order; dense W
(out, in) row-major then b; conv W (out_ch, in_ch, k[, k]) then b (out_ch);
layer_norm gamma then beta, one entry per feature of its input). The forward
pass keeps each layer's input; the backward pass is run once per output c
from the one-hot sensitivity e_c, each layer mapping d f_c / d (its output)
to d f_c / d (its input) and writing its own parameters' gradient. Nothing
is batched or vectorised: every sum is a loop over the indices the SPEC's
formula names, so that the code reads as the formula does.

A feature map is a flat row-major list with a shape tuple: (D,) when flat,
(channels, length) for conv1d, (channels, height, width) for conv2d.
Standard library only.
"""

import itertools
import math

LAYER_DEFAULTS = {
    "dense": {"bias": True},
    "conv1d": {"stride": 1, "padding": "valid", "bias": True},
    "conv2d": {"stride": 1, "padding": "valid", "bias": True},
    "layer_norm": {"eps": 1e-5, "affine": True},
}


def with_layer_defaults(model):
    """The model with section 10's defaults filled into each layer."""
    model.setdefault("init_scale", 1.0)
    for layer in model["layers"]:
        for k, v in LAYER_DEFAULTS.get(layer["kind"], {}).items():
            layer.setdefault(k, v)
    return model


def _size(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _strides(shape):
    """Row-major strides: index of (i0, i1, ...) is sum i_k stride_k."""
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= s
    return tuple(reversed(out))


def _flat(shape, idx):
    return sum(i * s for i, s in zip(idx, _strides(shape)))


class Dense:
    def __init__(self, spec, shape, off):
        if len(shape) != 1:
            raise ValueError(f"dense needs a flat input, got shape {shape}")
        self.n_in, self.n_out = shape[0], spec["units"]
        self.w_off = off
        self.b_off = off + self.n_in * self.n_out if spec["bias"] else None
        self.n_params = self.n_in * self.n_out + (self.n_out if spec["bias"] else 0)
        self.shape_out = (self.n_out,)
        self.fixed = {self.b_off + j: 0.0 for j in range(self.n_out)} if spec["bias"] else {}

    def forward(self, w, u):
        z = []
        for j in range(self.n_out):
            s = math.fsum(w[self.w_off + j * self.n_in + k] * u[k] for k in range(self.n_in))
            if self.b_off is not None:
                s += w[self.b_off + j]
            z.append(s)
        return z

    def backward(self, w, u, dz, g):
        for j in range(self.n_out):
            for k in range(self.n_in):
                g[self.w_off + j * self.n_in + k] = dz[j] * u[k]
            if self.b_off is not None:
                g[self.b_off + j] = dz[j]
        return [math.fsum(w[self.w_off + j * self.n_in + k] * dz[j] for j in range(self.n_out))
                for k in range(self.n_in)]


class Conv:
    """out[o, p] = b[o] + sum_{c, j} W[o, c, j] in[c, s p + j - pad], p and j
    tuples over the spatial axes (one for conv1d, two for conv2d)."""

    def __init__(self, spec, shape, off, dims):
        if len(shape) != dims + 1:
            raise ValueError(f"conv{dims}d needs a (channels, {dims} spatial) input, got {shape}")
        k, s = spec["kernel"], spec["stride"]
        pad = (k - 1) // 2 if spec["padding"] == "same" else 0
        if spec["padding"] == "same" and k % 2 == 0:
            raise ValueError("same padding needs an odd kernel")
        self.c_in, self.c_out, self.k, self.s, self.pad, self.dims = shape[0], spec["channels"], k, s, pad, dims
        self.shape_in = tuple(shape)
        spatial = tuple((n + 2 * pad - k) // s + 1 for n in shape[1:])
        if min(spatial) < 1:
            raise ValueError(f"kernel {k} larger than its input {shape}")
        self.shape_out = (self.c_out,) + spatial
        self.w_shape = (self.c_out, self.c_in) + (k,) * dims
        self.w_off = off
        n_w = _size(self.w_shape)
        self.b_off = off + n_w if spec["bias"] else None
        self.n_params = n_w + (self.c_out if spec["bias"] else 0)
        self.fixed = {self.b_off + o: 0.0 for o in range(self.c_out)} if spec["bias"] else {}

    def _taps(self):
        """Every (o, p, c, j, input position) with the input position inside
        the (unpadded) input: the terms of the sum; padding contributes 0."""
        for o in range(self.c_out):
            for p in itertools.product(*(range(n) for n in self.shape_out[1:])):
                for c in range(self.c_in):
                    for j in itertools.product(range(self.k), repeat=self.dims):
                        pos = tuple(self.s * pi + ji - self.pad for pi, ji in zip(p, j))
                        if all(0 <= q < n for q, n in zip(pos, self.shape_in[1:])):
                            yield o, p, c, j, pos

    def forward(self, w, u):
        out = [0.0] * _size(self.shape_out)
        terms = [[] for _ in out]
        for o, p, c, j, pos in self._taps():
            wi = self.w_off + _flat(self.w_shape, (o, c) + j)
            terms[_flat(self.shape_out, (o,) + p)].append(w[wi] * u[_flat(self.shape_in, (c,) + pos)])
        for o in range(self.c_out):
            for p in itertools.product(*(range(n) for n in self.shape_out[1:])):
                r = _flat(self.shape_out, (o,) + p)
                out[r] = math.fsum(terms[r]) + (w[self.b_off + o] if self.b_off is not None else 0.0)
        return out

    def backward(self, w, u, dz, g):
        du = [0.0] * len(u)
        gw = {}
        for o, p, c, j, pos in self._taps():
            dy = dz[_flat(self.shape_out, (o,) + p)]
            wi = self.w_off + _flat(self.w_shape, (o, c) + j)
            ui = _flat(self.shape_in, (c,) + pos)
            gw.setdefault(wi, []).append(dy * u[ui])
            du[ui] += w[wi] * dy
        for wi in range(self.w_off, self.w_off + _size(self.w_shape)):
            g[wi] = math.fsum(gw.get(wi, []))
        if self.b_off is not None:
            per = _size(self.shape_out[1:])
            for o in range(self.c_out):
                g[self.b_off + o] = math.fsum(dz[o * per:(o + 1) * per])
        return du


class Activation:
    def __init__(self, spec, shape, off, activations):
        self.sigma = activations[spec["name"]]
        self.shape_out, self.n_params, self.fixed = tuple(shape), 0, {}

    def forward(self, w, u):
        return [self.sigma(v)[0] for v in u]

    def backward(self, w, u, dz, g):
        return [d * self.sigma(v)[1] for v, d in zip(u, dz)]


class AvgPool:
    """Non-overlapping windows of size^dims over the spatial axes; the
    remainder of each axis dropped."""

    def __init__(self, spec, shape, off):
        if len(shape) < 2:
            raise ValueError(f"avg_pool needs a (channels, spatial...) input, got {shape}")
        self.size = spec["size"]
        self.shape_in = tuple(shape)
        self.shape_out = (shape[0],) + tuple(n // self.size for n in shape[1:])
        if min(self.shape_out[1:]) < 1:
            raise ValueError(f"pool size {self.size} past the edge of {shape}")
        self.n_params, self.fixed = 0, {}
        self.area = self.size ** (len(shape) - 1)

    def _windows(self):
        for c in range(self.shape_out[0]):
            for p in itertools.product(*(range(n) for n in self.shape_out[1:])):
                cells = [
                    _flat(self.shape_in, (c,) + tuple(self.size * pi + ji for pi, ji in zip(p, j)))
                    for j in itertools.product(range(self.size), repeat=len(p))
                ]
                yield _flat(self.shape_out, (c,) + p), cells

    def forward(self, w, u):
        out = [0.0] * _size(self.shape_out)
        for r, cells in self._windows():
            out[r] = math.fsum(u[q] for q in cells) / self.area
        return out

    def backward(self, w, u, dz, g):
        du = [0.0] * len(u)
        for r, cells in self._windows():
            for q in cells:
                du[q] = dz[r] / self.area
        return du


class Flatten:
    def __init__(self, spec, shape, off):
        self.shape_out, self.n_params, self.fixed = (_size(shape),), 0, {}

    def forward(self, w, u):
        return list(u)

    def backward(self, w, u, dz, g):
        return list(dz)


class LayerNorm:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over all F features of
    one example, var = mean((x - mean)^2) (biased); gamma, beta of length F."""

    def __init__(self, spec, shape, off):
        self.f = _size(shape)
        self.eps = spec["eps"]
        self.shape_out = tuple(shape)
        self.affine = spec["affine"]
        self.g_off, self.b_off = off, off + self.f
        self.n_params = 2 * self.f if self.affine else 0
        self.fixed = {}
        if self.affine:
            self.fixed = {off + j: 1.0 for j in range(self.f)}
            self.fixed.update({off + self.f + j: 0.0 for j in range(self.f)})

    def _normalise(self, u):
        mean = math.fsum(u) / self.f
        var = math.fsum((v - mean) ** 2 for v in u) / self.f
        sd = math.sqrt(var + self.eps)
        return [(v - mean) / sd for v in u], sd

    def forward(self, w, u):
        xhat, _ = self._normalise(u)
        if not self.affine:
            return xhat
        return [w[self.g_off + j] * xhat[j] + w[self.b_off + j] for j in range(self.f)]

    def backward(self, w, u, dz, g):
        xhat, sd = self._normalise(u)
        if self.affine:
            for j in range(self.f):
                g[self.g_off + j] = dz[j] * xhat[j]
                g[self.b_off + j] = dz[j]
            dxhat = [dz[j] * w[self.g_off + j] for j in range(self.f)]
        else:
            dxhat = list(dz)
        # d xhat_j / d x_k = (delta_jk - 1/F - xhat_j xhat_k / F) / sd.
        m1 = math.fsum(dxhat) / self.f
        m2 = math.fsum(d * x for d, x in zip(dxhat, xhat)) / self.f
        return [(dxhat[k] - m1 - xhat[k] * m2) / sd for k in range(self.f)]


def build_layers(model, dim, activations):
    """The layer objects in order and P; refuses a stack section 10 refuses."""
    shape = tuple(model["input_shape"])
    if _size(shape) != dim:
        raise ValueError(f"input_shape {shape} does not hold D = {dim}")
    layers, off = [], 0
    for spec in model["layers"]:
        kind = spec["kind"]
        if kind == "dense":
            layer = Dense(spec, shape, off)
        elif kind in ("conv1d", "conv2d"):
            layer = Conv(spec, shape, off, 1 if kind == "conv1d" else 2)
        elif kind == "activation":
            layer = Activation(spec, shape, off, activations)
        elif kind == "avg_pool":
            layer = AvgPool(spec, shape, off)
        elif kind == "flatten":
            layer = Flatten(spec, shape, off)
        elif kind == "layer_norm":
            layer = LayerNorm(spec, shape, off)
        else:
            raise ValueError(f"unknown layer kind {kind}")
        layers.append(layer)
        off += layer.n_params
        shape = layer.shape_out
    n_out = int(model.get("outputs", 1))
    if not layers or not isinstance(layers[-1], Dense) or layers[-1].n_out != n_out:
        raise ValueError(f"the last layer must be dense with {n_out} units")
    return layers, off


def layers_model(model, dim, activations):
    layers, n_params = build_layers(model, dim, activations)
    n_out = layers[-1].n_out

    def jac(w, x):
        ins = [list(x)]
        for layer in layers:
            ins.append(layer.forward(w, ins[-1]))
        f = ins[-1]
        js = []
        for c in range(n_out):
            g = [0.0] * n_params
            d = [1.0 if j == c else 0.0 for j in range(n_out)]
            for layer, u in zip(reversed(layers), reversed(ins[:-1])):
                d = layer.backward(w, u, d, g)
            js.append(g)
        return f, js

    return n_params, jac


def init_fixed_entries(model, dim, activations):
    """The entries of a drawn w0 that section 10 fixes: biases and beta 0,
    gamma 1."""
    fixed = {}
    for layer in build_layers(model, dim, activations)[0]:
        fixed.update(layer.fixed)
    return fixed
