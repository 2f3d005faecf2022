//! Layered models (SPEC §10) against the independent reference
//! (tests/reference/ref_layers.py, beside pathkernel_ref.py): plain Python
//! written from SPEC.md alone, each layer's forward pass a loop over the
//! indices of the SPEC's formula and its backward pass written by hand, one
//! example and one output at a time. The cases cover conv1d and conv2d with
//! "valid" and "same" padding at stride 1 and 2, with and without bias,
//! avg_pool on both, layer_norm with and without affine, a relu conv net
//! whose query point at the origin meets the kinks at w0, C = 1 to 3 outputs
//! with cross_entropy, and the methods gd (with the exact path kernel), heun,
//! rk4, fixed-step dop853 and adaptive dopri5.
//!
//! Tolerance (the reference's REL, stated in pathkernel_ref.py): 1e-10 of
//! each field's largest magnitude. Both sides run the same method at the
//! same step from the same w0, so they differ only by rounding: each forward
//! and backward value is a sum of at most a few dozen products (≈ 1e-15
//! relative), the kernel sums P ≤ 130 such products, and at most 24 steps
//! carry the difference forward, amplified by the flow's conditioning
//! (exp(λ_max T) ≤ e for these small T and "mean" or small sums). layer_norm
//! divides by sqrt(var + eps): its rounding is relative to the features'
//! spread, not their size, and the inputs here are spread (no near-constant
//! feature map; the all-zero query point gives exactly 0 on both sides), so
//! it adds no amplification beyond that. The total stays below 1e-13 of each
//! field (observed: every case agrees at 1e-14); a layout, stride, padding
//! or variance error moves a field by far more than 1e-10 of it.
use crate::reference::agrees;
use serde_json::{Value, json};

/// Four training points and three query points in D = prod(input_shape),
/// spread values from a fixed formula; the second query point is the origin
/// (biases start at 0: every pre-activation of a relu net is 0 there).
fn data(dim: usize, train_y: Value) -> Value {
    let row = |r: usize| -> Vec<f64> {
        (0..dim)
            .map(|k| (((r * dim + k) as f64 * 0.618 + 0.3).sin() * 1000.0).round() / 1000.0)
            .collect()
    };
    json!({
        "source": "inline",
        "train_x": (0..4).map(row).collect::<Vec<_>>(),
        "train_y": train_y,
        "test_x": [row(4), vec![0.0; dim], row(5)],
    })
}

fn spec(
    input_shape: &[usize],
    layers: Value,
    outputs: usize,
    train_y: Value,
    loss: &str,
    reduction: &str,
    flow: Value,
) -> Value {
    let dim = input_shape.iter().product();
    json!({
        "seed": 3,
        "data": data(dim, train_y),
        "model": { "arch": "layers", "input_shape": input_shape, "outputs": outputs, "layers": layers },
        "loss": { "kind": loss },
        "reduction": reduction,
        "flow": flow,
    })
}

fn real() -> Value {
    json!([0.8, -0.5, 0.3, 1.2])
}

fn labels3() -> Value {
    json!([0, 2, 1, 2])
}

fn rk4(t_end: f64, step: f64) -> Value {
    json!({"t_end": t_end, "method": "rk4", "step": step})
}

#[test]
fn conv1d_valid_tanh_squared_rk4() {
    agrees(spec(
        &[2, 5],
        json!([
            {"kind": "conv1d", "channels": 3, "kernel": 3},
            {"kind": "activation", "name": "tanh"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 1}
        ]),
        1,
        real(),
        "squared",
        "mean",
        rk4(0.5, 0.1),
    ));
}

/// Same padding at stride 2: length floor((7 + 2 - 3) / 2) + 1 = 4, then a
/// pool of 2 leaves 2; no bias on the convolution.
#[test]
fn conv1d_same_stride2_no_bias_avg_pool_sigmoid_logistic_heun() {
    agrees(spec(
        &[1, 7],
        json!([
            {"kind": "conv1d", "channels": 2, "kernel": 3, "stride": 2, "padding": "same", "bias": false},
            {"kind": "activation", "name": "sigmoid"},
            {"kind": "avg_pool", "size": 2},
            {"kind": "flatten"},
            {"kind": "dense", "units": 1}
        ]),
        1,
        json!([1.0, -1.0, 1.0, -1.0]),
        "logistic",
        "sum",
        json!({"t_end": 0.5, "method": "heun", "step": 0.05}),
    ));
}

/// Valid padding at stride 2 on 5 x 5: (5 - 3) / 2 + 1 = 2 positions per
/// axis, the windows starting at 0 and 2 (so every input row is read).
#[test]
fn conv2d_valid_stride2_softplus_mean_gd_exact_path_kernel() {
    agrees(spec(
        &[1, 5, 5],
        json!([
            {"kind": "conv2d", "channels": 2, "kernel": 3, "stride": 2},
            {"kind": "activation", "name": "softplus"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 1}
        ]),
        1,
        real(),
        "squared",
        "mean",
        json!({"t_end": 0.5, "method": "gd", "lr": 0.1, "exact_path_kernel": true}),
    ));
}

/// A small CNN as in SPEC §10 with C = 3 and cross_entropy: conv2d same,
/// tanh, avg_pool 2, dense; fixed-step dop853.
#[test]
fn conv2d_same_avg_pool_tanh_c3_cross_entropy_dop853_fixed_step() {
    agrees(spec(
        &[1, 4, 4],
        json!([
            {"kind": "conv2d", "channels": 2, "kernel": 3, "padding": "same"},
            {"kind": "activation", "name": "tanh"},
            {"kind": "avg_pool", "size": 2},
            {"kind": "flatten"},
            {"kind": "dense", "units": 3}
        ]),
        3,
        labels3(),
        "cross_entropy",
        "sum",
        json!({"t_end": 0.5, "method": "dop853", "step": 0.25}),
    ));
}

/// Two input channels, same padding at stride 2 (4 x 4 -> 2 x 2), gelu, a
/// hidden dense layer and C = 2 real targets.
#[test]
fn conv2d_same_stride2_two_channels_gelu_c2_squared_rk4() {
    agrees(spec(
        &[2, 4, 4],
        json!([
            {"kind": "conv2d", "channels": 2, "kernel": 3, "stride": 2, "padding": "same"},
            {"kind": "activation", "name": "gelu"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 3},
            {"kind": "activation", "name": "tanh"},
            {"kind": "dense", "units": 2}
        ]),
        2,
        json!([[0.8, -0.3], [-0.5, 0.6], [0.3, 0.1], [1.2, -0.9]]),
        "squared",
        "mean",
        rk4(0.4, 0.1),
    ));
}

/// layer_norm with affine (gamma, beta per feature) between dense layers.
#[test]
fn dense_layer_norm_affine_tanh_squared_rk4() {
    agrees(spec(
        &[6],
        json!([
            {"kind": "dense", "units": 4},
            {"kind": "layer_norm"},
            {"kind": "activation", "name": "tanh"},
            {"kind": "dense", "units": 1}
        ]),
        1,
        real(),
        "squared",
        "sum",
        rk4(0.5, 0.1),
    ));
}

/// layer_norm without affine over a (channels, length) map, C = 3.
#[test]
fn conv1d_layer_norm_no_affine_c3_cross_entropy_gd_exact_path_kernel() {
    agrees(spec(
        &[1, 6],
        json!([
            {"kind": "conv1d", "channels": 2, "kernel": 3, "padding": "same"},
            {"kind": "layer_norm", "affine": false, "eps": 1e-3},
            {"kind": "activation", "name": "silu"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 3}
        ]),
        3,
        labels3(),
        "cross_entropy",
        "mean",
        json!({"t_end": 0.5, "method": "gd", "lr": 0.1, "exact_path_kernel": true}),
    ));
}

/// A relu conv net: at the origin every pre-activation is 0 at w0, so
/// tangent_kernel0 there depends on relu'(0) = 0 inside the feature maps.
#[test]
fn conv2d_relu_net_squared_rk4() {
    agrees(spec(
        &[1, 4, 4],
        json!([
            {"kind": "conv2d", "channels": 2, "kernel": 3},
            {"kind": "activation", "name": "relu"},
            {"kind": "flatten"},
            {"kind": "dense", "units": 3},
            {"kind": "activation", "name": "relu"},
            {"kind": "dense", "units": 1}
        ]),
        1,
        real(),
        "squared",
        "mean",
        rk4(0.5, 0.1),
    ));
}

/// An adaptive run: the path is the tool's, so the reference checks what w0
/// and w_end determine.
#[test]
fn conv2d_avg_pool_c3_cross_entropy_adaptive_dopri5() {
    agrees(spec(
        &[1, 4, 4],
        json!([
            {"kind": "conv2d", "channels": 2, "kernel": 3, "padding": "same"},
            {"kind": "activation", "name": "tanh"},
            {"kind": "avg_pool", "size": 2},
            {"kind": "flatten"},
            {"kind": "dense", "units": 3}
        ]),
        3,
        labels3(),
        "cross_entropy",
        "mean",
        json!({"t_end": 1.0, "method": "dopri5", "rtol": 1e-9, "atol": 1e-12}),
    ));
}
