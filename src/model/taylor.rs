//! Second-order Taylor mode through a batched model: for w(t) = w + t Δ,
//! every value v between layers is carried with its first two derivatives
//! in t at t = 0, (v, v', v''), so that the output's v'' is Δᵀ ∇²_w f Δ
//! without any P x P Hessian. A dense map z = s W u + b gives
//! z' = s (ΔW u + W u') + Δb and z'' = s (2 ΔW u' + W u''), three pairs of
//! matrix products; an activation a = σ(z) gives a' = σ'(z) z' and
//! a'' = σ''(z) z'² + σ'(z) z''. Used only by `crate::second_order`, never
//! by the gradient or tangent-kernel hot paths.
use crate::activation::Activation;
use nalgebra::DMatrix;

/// A batch's values (rows x features, column-major as every tape value)
/// with their first and second derivatives along the direction.
#[derive(Clone, Debug)]
pub struct Jet {
    pub value: DMatrix<f64>,
    pub first: DMatrix<f64>,
    pub second: DMatrix<f64>,
}

impl Jet {
    pub fn zeros(rows: usize, cols: usize) -> Jet {
        Jet {
            value: DMatrix::zeros(rows, cols),
            first: DMatrix::zeros(rows, cols),
            second: DMatrix::zeros(rows, cols),
        }
    }

    /// The jet of a constant input: the batch, with zero derivatives.
    pub fn constant(x: &DMatrix<f64>) -> Jet {
        Jet {
            value: x.clone(),
            first: DMatrix::zeros(x.nrows(), x.ncols()),
            second: DMatrix::zeros(x.nrows(), x.ncols()),
        }
    }

    /// (value, first, second) as an array, for layers that map each alike.
    pub fn parts(&self) -> [&DMatrix<f64>; 3] {
        [&self.value, &self.first, &self.second]
    }

    pub fn parts_mut(&mut self) -> [&mut DMatrix<f64>; 3] {
        [&mut self.value, &mut self.first, &mut self.second]
    }

    /// self += other, part by part (a residual connection).
    pub fn add_assign(&mut self, other: &Jet) {
        for (a, b) in self.parts_mut().into_iter().zip(other.parts()) {
            crate::vecmath::add_assign(a.as_mut_slice(), b.as_slice());
        }
    }
}

/// The buffers of one model's Taylor pass over a fixed batch. `jets[0]` is
/// the batch (constant), the last jet the output (rows x C); what lies
/// between is the model's own. Allocated once; every pass overwrites it.
#[derive(Clone, Debug)]
pub struct TaylorTape {
    pub jets: Vec<Jet>,
    /// Model-private buffers (patch matrices, per-row moments).
    pub(crate) scratch: Vec<DMatrix<f64>>,
}

impl TaylorTape {
    /// The output jet: f, f' = ∇f · Δ and f'' = Δᵀ ∇²f Δ, rows x C.
    pub fn output(&self) -> &Jet {
        self.jets.last().expect("a tape has an output jet")
    }
}

/// u = σ(z) with its derivatives: u' = σ'(z) z', u'' = σ''(z) z'² + σ'(z) z''.
/// tanh, sigmoid and silu go through `vecmath`'s vectorised jets (the
/// kernels of the forward pass); the others call the scalar functions.
pub(crate) fn activation_jet(activation: Activation, z: &Jet, u: &mut Jet) {
    let zs = [z.value.as_slice(), z.first.as_slice(), z.second.as_slice()];
    let Jet {
        value,
        first,
        second,
    } = u;
    let us = [
        value.as_mut_slice(),
        first.as_mut_slice(),
        second.as_mut_slice(),
    ];
    match activation {
        Activation::Tanh => crate::vecmath::tanh_jet(zs, us),
        Activation::Sigmoid => crate::vecmath::sigmoid_jet(zs, us),
        Activation::Silu => crate::vecmath::silu_jet(zs, us),
        _ => crate::vecmath::jet_loop(zs, us, |z| {
            let (s, d) = activation.apply_with_derivative(z);
            (s, d, activation.second_derivative(z))
        }),
    }
}
