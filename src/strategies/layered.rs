//! Small layered models (SPEC §10) for the search and the properties: a
//! convolution (1-D on [1, w] or 2-D on [1, h, w], h and w up to 6) with an
//! activation, an optional average pool and a dense output layer; or a dense
//! layer followed by layer_norm. Every draw is a valid spec: the kernel is
//! clamped to the input and made odd under "same" padding, and the pool is
//! only drawn where the feature map has room for it.
use crate::activation::Activation;
use crate::spec::{LayerSpec, ModelSpec, Padding};
use proptest::prelude::*;

/// The longest spatial axis of a drawn convolution's input: its D is at
/// most this squared, whatever the space's `dim`.
pub const MAX_CONV_SIDE: usize = 6;

/// The choices of a layered model, drawn before its weights; each field
/// shrinks towards the simplest model (1-D, 2 x 2, one channel, kernel 1,
/// stride 1, "valid", no pool).
#[derive(Clone, Debug)]
pub(super) struct LayeredShape {
    two_d: bool,
    height: usize,
    width: usize,
    channels: usize,
    kernel: usize,
    stride: usize,
    same: bool,
    pool: bool,
}

pub(super) fn layered_shape() -> BoxedStrategy<LayeredShape> {
    (
        any::<bool>(),
        2..=MAX_CONV_SIDE,
        2..=MAX_CONV_SIDE,
        1..=3usize,
        1..=3usize,
        1..=2usize,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(two_d, height, width, channels, kernel, stride, same, pool)| LayeredShape {
                two_d,
                height,
                width,
                channels,
                kernel,
                stride,
                same,
                pool,
            },
        )
        .boxed()
}

impl LayeredShape {
    /// The convolution's input shape (one channel).
    fn input_shape(&self) -> Vec<usize> {
        if self.two_d {
            vec![1, self.height, self.width]
        } else {
            vec![1, self.width]
        }
    }

    /// D of the convolutional model.
    pub(super) fn conv_input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// The kernel as drawn, at most the shortest spatial axis and odd under
    /// "same" (whose padding (k - 1) / 2 needs it).
    fn kernel(&self) -> usize {
        let shortest = self.input_shape()[1..].iter().copied().min().unwrap_or(1);
        let k = self.kernel.min(shortest);
        if self.same && k % 2 == 0 { k - 1 } else { k }
    }

    /// conv → activation → (avg_pool 2) → flatten → dense(outputs).
    pub(super) fn conv_model(
        &self,
        activation: Activation,
        init_scale: f64,
        outputs: usize,
    ) -> ModelSpec {
        let (kernel, stride) = (self.kernel(), self.stride);
        let padding = if self.same {
            Padding::Same
        } else {
            Padding::Valid
        };
        let pad = if self.same { (kernel - 1) / 2 } else { 0 };
        let spatial = &self.input_shape()[1..];
        let out = |l: usize| (l + 2 * pad - kernel) / stride + 1;
        let conv = if self.two_d {
            LayerSpec::Conv2d {
                channels: self.channels,
                kernel,
                stride,
                padding,
                bias: true,
            }
        } else {
            LayerSpec::Conv1d {
                channels: self.channels,
                kernel,
                stride,
                padding,
                bias: true,
            }
        };
        let mut layers = vec![conv, LayerSpec::Activation { name: activation }];
        if self.pool && spatial.iter().all(|&l| out(l) >= 2) {
            layers.push(LayerSpec::AvgPool { size: 2 });
        }
        layers.push(LayerSpec::Flatten {});
        layers.push(LayerSpec::Dense {
            units: outputs,
            bias: true,
        });
        ModelSpec::Layers {
            input_shape: self.input_shape(),
            layers,
            init_scale,
            outputs,
        }
    }

    /// dense(width) → layer_norm → activation → dense(outputs) on [d].
    pub(super) fn layer_norm_model(
        &self,
        d: usize,
        width: usize,
        activation: Activation,
        init_scale: f64,
        outputs: usize,
    ) -> ModelSpec {
        ModelSpec::Layers {
            input_shape: vec![d],
            layers: vec![
                LayerSpec::Dense {
                    units: width,
                    bias: true,
                },
                // The padding draw doubles as the affine switch: both
                // shrink to the default (affine).
                LayerSpec::LayerNorm {
                    eps: 1e-5,
                    affine: !self.same,
                },
                LayerSpec::Activation { name: activation },
                LayerSpec::Dense {
                    units: outputs,
                    bias: true,
                },
            ],
            init_scale,
            outputs,
        }
    }
}
