//! The spec of a built-in data set (SPEC §11): which set, the split, the
//! scaling and the classes and their encoding. The files and the loading are
//! `crate::data::builtin`; what is known of each set without reading its
//! file (shape, classes) is here, so that a spec's defaults can be filled in
//! before any data are read.
use serde::{Deserialize, Serialize};

/// `"data": {"source": "dataset", "name": "iris", "n_train": 100,
/// "n_test": 50, "standardize": true, "classes": [1, 2], "labels": "signed"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub name: DatasetName,
    pub n_train: usize,
    pub n_test: usize,
    /// Scale the inputs by the training rows' mean and standard deviation
    /// (ddof 0; digits: divide by 16), and a regression target likewise.
    #[serde(default = "super::yes")]
    pub standardize: bool,
    /// The classes kept, in this order (default: all, ascending). None for a
    /// regression set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<usize>>,
    /// How a class becomes a target (default `index`). None for a
    /// regression set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// The built-in data sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetName {
    /// Fisher's iris: 150 x 4, 3 classes.
    Iris,
    /// Efron et al.'s diabetes: 442 x 10 raw features, a real target.
    Diabetes,
    /// 8x8 handwritten digits: 1797 x 64, 10 classes.
    Digits,
    /// Wine recognition: 178 x 13, 3 classes.
    Wine,
    /// Wisconsin diagnostic breast cancer: 569 x 30, 2 classes.
    BreastCancer,
}

/// How the class at position k of `classes` becomes a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Labels {
    /// k itself (one column), the labels of `cross_entropy`.
    Index,
    /// C columns, 1 in column k and 0 elsewhere.
    Onehot,
    /// Two classes: the first -1, the second +1 (the margin losses).
    Signed,
    /// Two classes: the first 0, the second 1 (bce).
    Binary,
}

impl DatasetName {
    /// Every built-in set, in the order of the spec's list of names.
    pub const ALL: [DatasetName; 5] = [
        DatasetName::Iris,
        DatasetName::Diabetes,
        DatasetName::Digits,
        DatasetName::Wine,
        DatasetName::BreastCancer,
    ];

    /// The name as written in a spec.
    pub fn name(self) -> &'static str {
        match self {
            DatasetName::Iris => "iris",
            DatasetName::Diabetes => "diabetes",
            DatasetName::Digits => "digits",
            DatasetName::Wine => "wine",
            DatasetName::BreastCancer => "breast_cancer",
        }
    }

    /// Rows in the whole set.
    pub fn rows(self) -> usize {
        match self {
            DatasetName::Iris => 150,
            DatasetName::Diabetes => 442,
            DatasetName::Digits => 1797,
            DatasetName::Wine => 178,
            DatasetName::BreastCancer => 569,
        }
    }

    /// D, the number of input features.
    pub fn dim(self) -> usize {
        match self {
            DatasetName::Iris => 4,
            DatasetName::Diabetes => 10,
            DatasetName::Digits => 64,
            DatasetName::Wine => 13,
            DatasetName::BreastCancer => 30,
        }
    }

    /// The number of classes, or None for a regression set.
    pub fn n_classes(self) -> Option<usize> {
        match self {
            DatasetName::Iris | DatasetName::Wine => Some(3),
            DatasetName::Digits => Some(10),
            DatasetName::BreastCancer => Some(2),
            DatasetName::Diabetes => None,
        }
    }

    /// The shape of one input as a layered model reads it (SPEC §10):
    /// [channels, height, width] for images (digits: [1, 8, 8]), else [D].
    pub fn input_shape(self) -> Vec<usize> {
        match self {
            DatasetName::Digits => vec![1, 8, 8],
            other => vec![other.dim()],
        }
    }
}

impl DatasetSpec {
    /// Fills the defaults that depend on the set: for a classification set,
    /// every class in ascending order and `index` labels.
    pub fn with_defaults(mut self) -> DatasetSpec {
        if let Some(c) = self.name.n_classes() {
            self.classes.get_or_insert_with(|| (0..c).collect());
            self.labels.get_or_insert(Labels::Index);
        }
        self
    }
}
