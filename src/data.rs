//! The data of an experiment, resolved from its spec: synthetic generators,
//! inline arrays or CSV files.
use nalgebra::{DMatrix, DVector};

/// Training inputs (N x D), targets (N) and query inputs (M x D).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub train_x: DMatrix<f64>,
    pub train_y: DVector<f64>,
    pub test_x: DMatrix<f64>,
}
