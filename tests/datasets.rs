//! The built-in data sets (SPEC §11): the embedded files are the ones
//! data/README.md lists and hold what each set is known for; the split
//! follows the documented shuffle from the seed; scaling, class selection
//! and every label encoding; and each wrong spec is refused by the binary
//! with exit 2 and one line naming the field.
use crate::common::{assert_fails, entries};
use pathkernel::data::Dataset;
use pathkernel::data::builtin::{BuiltinData, load, table};
use pathkernel::rng::{RngStream, generator};
use pathkernel::spec::{DataSpec, DatasetName, DatasetSpec, Format, Labels, Spec};
use rand::Rng;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

fn spec(name: DatasetName, n_train: usize, n_test: usize) -> DatasetSpec {
    DatasetSpec {
        name,
        n_train,
        n_test,
        standardize: true,
        classes: None,
        labels: None,
    }
}

fn raw(name: DatasetName, n_train: usize, n_test: usize) -> DatasetSpec {
    DatasetSpec {
        standardize: false,
        ..spec(name, n_train, n_test)
    }
}

fn class_counts(name: DatasetName) -> Vec<usize> {
    let t = table(name);
    let mut counts = vec![0; t.class_names.len()];
    for &y in &t.y {
        counts[y as usize] += 1;
    }
    counts
}

// ------------------------------------------------------------ the files

#[test]
fn the_embedded_files_have_the_sha256_data_readme_lists() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let listed: Vec<(&str, &str)> = readme
        .lines()
        .filter_map(|l| l.trim().split_once("  "))
        .filter(|(sum, _)| sum.len() == 64 && sum.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    let files: BTreeSet<&str> = listed.iter().map(|(_, f)| *f).collect();
    let expected: BTreeSet<&str> = [
        "iris.csv",
        "digits.csv.gz",
        "diabetes_data_raw.csv.gz",
        "diabetes_target.csv.gz",
        "wine_data.csv",
        "breast_cancer.csv",
    ]
    .into();
    assert_eq!(files, expected, "data/README.md lists every embedded file");
    let Ok(out) = Command::new("sha256sum")
        .args(listed.iter().map(|(_, f)| dir.join(f)))
        .stdin(Stdio::null())
        .output()
    else {
        println!("note: sha256sum is not available; the SHA-256 sums were not checked");
        return;
    };
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for ((sum, file), line) in listed.iter().zip(text.lines()) {
        assert!(
            line.starts_with(sum) && line.ends_with(file),
            "{file}: {line}"
        );
    }
}

#[test]
fn every_set_has_the_shape_and_classes_its_name_promises() {
    for name in DatasetName::ALL {
        let t = table(name);
        assert_eq!((t.rows, t.dim), (name.rows(), name.dim()), "{name:?}");
        assert_eq!(t.x.len(), t.rows * t.dim);
        assert_eq!(t.y.len(), t.rows);
        assert!(t.x.iter().chain(&t.y).all(|v| v.is_finite()));
        match name.n_classes() {
            Some(c) => {
                assert_eq!(t.class_names.len(), c, "{name:?}");
                assert!(
                    t.y.iter()
                        .all(|&y| y.fract() == 0.0 && y >= 0.0 && y < c as f64)
                );
            }
            None => assert!(t.class_names.is_empty()),
        }
    }
    assert_eq!(DatasetName::Digits.input_shape(), vec![1, 8, 8]);
    assert_eq!(DatasetName::Iris.input_shape(), vec![4]);
}

#[test]
fn digits_are_scikit_learns_1797_images_of_counts_0_to_16() {
    let t = table(DatasetName::Digits);
    assert_eq!((t.rows, t.dim), (1797, 64));
    // Counted from the file (and equal to scikit-learn's load_digits).
    assert_eq!(
        class_counts(DatasetName::Digits),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert!(
        t.x.iter()
            .all(|&p| p.fract() == 0.0 && (0.0..=16.0).contains(&p))
    );
    assert!(t.x.contains(&0.0) && t.x.contains(&16.0));
    let first: Vec<f64> = [0, 0, 5, 13, 9, 1, 0, 0].map(f64::from).to_vec();
    assert_eq!(&t.row(0)[..8], first.as_slice());
    assert_eq!(t.y[0], 0.0);
    let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    assert_eq!(t.class_names, names);
}

#[test]
fn iris_has_fishers_values() {
    let t = table(DatasetName::Iris);
    assert_eq!((t.rows, t.dim), (150, 4));
    assert_eq!(class_counts(DatasetName::Iris), [50, 50, 50]);
    assert_eq!(t.class_names, ["setosa", "versicolor", "virginica"]);
    assert_eq!(t.row(0), [5.1, 3.5, 1.4, 0.2]);
    // Rows 35 and 38 (from 1) as Fisher has them; UCI's copy has
    // 4.9, 3.1, 1.5, 0.1 in both.
    assert_eq!(t.row(34), [4.9, 3.1, 1.5, 0.2]);
    assert_eq!(t.row(37), [4.9, 3.6, 1.4, 0.1]);
}

#[test]
fn diabetes_wine_and_breast_cancer_as_scikit_learn_ships_them() {
    let d = table(DatasetName::Diabetes);
    assert_eq!((d.rows, d.dim), (442, 10));
    // The raw, unscaled features (age 59, sex 2, ...) and the target.
    assert_eq!(
        d.row(0),
        [59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]
    );
    assert_eq!(&d.y[..3], [151.0, 75.0, 141.0]);
    let w = table(DatasetName::Wine);
    assert_eq!((w.rows, w.dim), (178, 13));
    assert_eq!(class_counts(DatasetName::Wine), [59, 71, 48]);
    let b = table(DatasetName::BreastCancer);
    assert_eq!((b.rows, b.dim), (569, 30));
    assert_eq!(class_counts(DatasetName::BreastCancer), [212, 357]);
    assert_eq!(b.class_names, ["malignant", "benign"]);
}

// ------------------------------------------------------------ the split

/// The file rows in the order SPEC §11's shuffle puts them, restated from
/// the documented rule: one next_u64 per row from stream 2, sorted by key.
fn shuffled(name: DatasetName, seed: u64) -> Vec<usize> {
    let mut rng = generator(seed, RngStream::DatasetShuffle);
    let keys: Vec<u64> = (0..name.rows()).map(|_| rng.next_u64()).collect();
    let mut order: Vec<usize> = (0..name.rows()).collect();
    order.sort_by_key(|&i| (keys[i], i));
    order
}

#[test]
fn the_split_follows_the_documented_shuffle_and_is_disjoint() {
    for name in DatasetName::ALL {
        let (n, m) = (name.rows() / 2, name.rows() - name.rows() / 2);
        let d = load(&raw(name, n, m), 11).unwrap();
        let order = shuffled(name, 11);
        assert_eq!(d.train_rows, order[..n], "{name:?}");
        assert_eq!(d.test_rows, order[n..], "{name:?}");
        let all: BTreeSet<usize> = d.train_rows.iter().chain(&d.test_rows).copied().collect();
        assert_eq!(all.len(), name.rows(), "every row once: {name:?}");
        // The unscaled inputs are the file's rows.
        let t = table(name);
        for (r, &i) in d.train_rows.iter().enumerate() {
            assert_eq!(
                d.train_x.row(r).iter().copied().collect::<Vec<_>>(),
                t.row(i)
            );
        }
        for (r, &i) in d.test_rows.iter().enumerate() {
            assert_eq!(
                d.test_x.row(r).iter().copied().collect::<Vec<_>>(),
                t.row(i)
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_split_and_another_seed_another() {
    let a = load(&spec(DatasetName::Digits, 50, 20), 5).unwrap();
    let b = load(&spec(DatasetName::Digits, 50, 20), 5).unwrap();
    let c = load(&spec(DatasetName::Digits, 50, 20), 6).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.train_rows, c.train_rows);
    assert_ne!(a.test_rows, c.test_rows);
    // The shuffle has its own stream: not the synthetic data's.
    let mut data = generator(5, RngStream::Data);
    let mut shuffle = generator(5, RngStream::DatasetShuffle);
    assert_ne!(data.next_u64(), shuffle.next_u64());
}

#[test]
fn a_resolved_data_set_is_the_loaded_one() {
    let spec = Spec::parse(
        &json!({
            "seed": 4,
            "data": {"source": "dataset", "name": "wine", "n_train": 30, "n_test": 9, "classes": [2, 1], "labels": "signed"},
            "model": {"arch": "linear"},
            "loss": {"kind": "logistic"},
            "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}
        })
        .to_string(),
        Format::Json,
    )
    .unwrap();
    let DataSpec::Dataset(data) = &spec.data else {
        panic!("a dataset spec")
    };
    let loaded = load(data, 4).unwrap();
    let d = Dataset::resolve(&spec, Path::new(".")).unwrap();
    assert_eq!(d.train_x, loaded.train_x);
    assert_eq!(d.test_x, loaded.test_x);
    assert_eq!(d.train_y, loaded.train_y);
    assert_eq!(d.test_y, Some(loaded.test_y));
}

// ------------------------------------------------------------ scaling

/// Column means and standard deviations (ddof 0) of a matrix's rows.
fn moments(x: &nalgebra::DMatrix<f64>) -> Vec<(f64, f64)> {
    let n = x.nrows() as f64;
    x.column_iter()
        .map(|c| {
            let mean = c.sum() / n;
            let var = c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt())
        })
        .collect()
}

#[test]
fn standardising_uses_the_training_rows_mean_and_std_ddof_0() {
    for name in [
        DatasetName::Iris,
        DatasetName::Wine,
        DatasetName::BreastCancer,
        DatasetName::Diabetes,
    ] {
        let (n, m) = (20, 7);
        let scaled = load(&spec(name, n, m), 2).unwrap();
        let plain = load(&raw(name, n, m), 2).unwrap();
        assert_eq!(scaled.train_rows, plain.train_rows);
        for (j, (mean, std)) in moments(&scaled.train_x).into_iter().enumerate() {
            assert!(mean.abs() < 1e-14, "{name:?} column {j} mean {mean}");
            assert!((std - 1.0).abs() < 1e-14, "{name:?} column {j} std {std}");
        }
        // The query rows with the training rows' moments, not their own.
        for (j, (mean, std)) in moments(&plain.train_x).into_iter().enumerate() {
            for r in 0..m {
                let want = (plain.test_x[(r, j)] - mean) / std;
                let got = scaled.test_x[(r, j)];
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{got} {want}"
                );
            }
        }
    }
}

#[test]
fn diabetes_targets_are_standardised_and_digits_divided_by_16() {
    let scaled = load(&spec(DatasetName::Diabetes, 100, 30), 8).unwrap();
    let plain = load(&raw(DatasetName::Diabetes, 100, 30), 8).unwrap();
    let (mean, std) = moments(&plain.train_y)[0];
    assert!(std > 10.0, "raw targets: {std}");
    let (m, s) = moments(&scaled.train_y)[0];
    assert!(m.abs() < 1e-14 && (s - 1.0).abs() < 1e-14, "{m} {s}");
    for (got, raw) in scaled.test_y.iter().zip(plain.test_y.iter()) {
        assert!((got - (raw - mean) / std).abs() < 1e-12);
    }
    let t = table(DatasetName::Diabetes);
    for (r, &i) in plain.test_rows.iter().enumerate() {
        assert_eq!(plain.test_y[(r, 0)], t.y[i]);
    }

    let scaled = load(&spec(DatasetName::Digits, 40, 10), 8).unwrap();
    let plain = load(&raw(DatasetName::Digits, 40, 10), 8).unwrap();
    assert_eq!(scaled.train_x, plain.train_x / 16.0);
    assert_eq!(scaled.test_x, plain.test_x / 16.0);
    assert_eq!(scaled.input_shape, vec![1, 8, 8]);
}

#[test]
fn a_column_constant_on_the_training_rows_is_only_centred() {
    // One training row: every column is constant on it.
    let d = load(&spec(DatasetName::Iris, 1, 5), 1).unwrap();
    assert!(d.train_x.iter().all(|&x| x == 0.0));
    let plain = load(&raw(DatasetName::Iris, 1, 5), 1).unwrap();
    for j in 0..4 {
        for r in 0..5 {
            let want = plain.test_x[(r, j)] - plain.train_x[(0, j)];
            assert_eq!(d.test_x[(r, j)], want);
        }
    }
}

// ------------------------------------------------------------ classes and labels

fn with_classes(classes: &[usize], labels: Labels, n: usize, m: usize) -> BuiltinData {
    let spec = DatasetSpec {
        classes: Some(classes.to_vec()),
        labels: Some(labels),
        ..spec(DatasetName::Iris, n, m)
    };
    load(&spec, 3).unwrap()
}

/// The file class of each training and query point.
fn file_classes(d: &BuiltinData) -> (Vec<usize>, Vec<usize>) {
    let t = table(DatasetName::Iris);
    let class = |rows: &[usize]| rows.iter().map(|&i| t.y[i] as usize).collect();
    (class(&d.train_rows), class(&d.test_rows))
}

#[test]
fn classes_keep_the_listed_classes_in_shuffled_order() {
    let d = with_classes(&[2, 0], Labels::Index, 70, 30);
    let (train, test) = file_classes(&d);
    assert!(train.iter().chain(&test).all(|c| [0, 2].contains(c)));
    assert_eq!(d.class_names, ["virginica", "setosa"]);
    // The rows kept, in the shuffle's order: the same rows as filtering the
    // whole shuffled set.
    let t = table(DatasetName::Iris);
    let kept: Vec<usize> = shuffled(DatasetName::Iris, 3)
        .into_iter()
        .filter(|&i| t.y[i] != 1.0)
        .collect();
    assert_eq!(d.train_rows, kept[..70]);
    assert_eq!(d.test_rows, kept[70..]);
    // By default every class, ascending, with index labels.
    let all = load(&spec(DatasetName::Iris, 100, 50), 3).unwrap();
    assert_eq!(all.class_names, ["setosa", "versicolor", "virginica"]);
    let (train, _) = file_classes(&all);
    let labels: Vec<usize> = all.train_y.iter().map(|&y| y as usize).collect();
    assert_eq!(labels, train);
}

#[test]
fn every_label_encoding() {
    let classes = [2, 0];
    let position = |c: usize| classes.iter().position(|&d| d == c).unwrap();
    let index = with_classes(&classes, Labels::Index, 60, 40);
    let onehot = with_classes(&classes, Labels::Onehot, 60, 40);
    let signed = with_classes(&classes, Labels::Signed, 60, 40);
    let binary = with_classes(&classes, Labels::Binary, 60, 40);
    for d in [&onehot, &signed, &binary] {
        assert_eq!(d.train_rows, index.train_rows);
        assert_eq!(d.train_x, index.train_x);
    }
    let (train, test) = file_classes(&index);
    for (rows, ys) in [
        (
            &train,
            [
                &index.train_y,
                &onehot.train_y,
                &signed.train_y,
                &binary.train_y,
            ],
        ),
        (
            &test,
            [
                &index.test_y,
                &onehot.test_y,
                &signed.test_y,
                &binary.test_y,
            ],
        ),
    ] {
        let [idx, hot, sgn, bin] = ys;
        assert_eq!(
            (idx.ncols(), hot.ncols(), sgn.ncols(), bin.ncols()),
            (1, 2, 1, 1)
        );
        for (r, &c) in rows.iter().enumerate() {
            let k = position(c);
            assert_eq!(idx[(r, 0)], k as f64);
            assert_eq!(hot[(r, k)], 1.0);
            assert_eq!(hot[(r, 1 - k)], 0.0);
            assert_eq!(sgn[(r, 0)], if k == 0 { -1.0 } else { 1.0 });
            assert_eq!(bin[(r, 0)], if k == 0 { 0.0 } else { 1.0 });
        }
    }
    // Three classes one-hot: C columns, one 1 per row.
    let three = with_classes(&[1, 2, 0], Labels::Onehot, 10, 5);
    assert_eq!(three.train_y.ncols(), 3);
    assert!(three.train_y.row_iter().all(|r| r.sum() == 1.0));
    // Classes never standardised, targets stay labels.
    assert!(signed.train_y.iter().all(|&y| y == -1.0 || y == 1.0));
}

#[test]
fn the_spec_fills_the_classes_and_labels_it_defaults_to() {
    let parse = |data: Value| {
        let spec = Spec::parse(
            &json!({
                "data": data, "model": {"arch": "linear"}, "loss": {"kind": "squared"},
                "flow": {"t_end": 1.0, "method": "rk4", "step": 0.5}
            })
            .to_string(),
            Format::Json,
        )
        .unwrap();
        serde_json::to_value(&spec).unwrap()["data"].clone()
    };
    assert_eq!(
        parse(json!({"source": "dataset", "name": "wine", "n_train": 5, "n_test": 2})),
        json!({"source": "dataset", "name": "wine", "n_train": 5, "n_test": 2,
               "standardize": true, "classes": [0, 1, 2], "labels": "index"})
    );
    assert_eq!(
        parse(
            json!({"source": "dataset", "name": "diabetes", "n_train": 5, "n_test": 2, "standardize": false})
        ),
        json!({"source": "dataset", "name": "diabetes", "n_train": 5, "n_test": 2, "standardize": false})
    );
}

// ------------------------------------------------------------ refused specs

fn pathkernel(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn full_spec(data: Value, loss: &str) -> String {
    json!({
        "seed": 1,
        "data": data,
        "model": {"arch": "linear"},
        "loss": {"kind": loss},
        "reduction": "mean",
        "flow": {"t_end": 0.5, "method": "rk4", "step": 0.25}
    })
    .to_string()
}

#[test]
fn a_wrong_data_set_spec_exits_2_naming_the_field_and_writes_nothing() {
    let iris = |extra: Value| {
        let mut d = json!({"source": "dataset", "name": "iris", "n_train": 20, "n_test": 5});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    };
    let cases: Vec<(Value, &str, Vec<&str>)> = vec![
        (
            json!({"source": "dataset", "name": "irsi", "n_train": 2, "n_test": 1}),
            "squared",
            vec![
                "data.name:",
                "`irsi`",
                "Did you mean `iris`?",
                "`digits`",
                "`diabetes`",
                "`breast_cancer`",
            ],
        ),
        (
            iris(json!({"clases": [0, 1]})),
            "squared",
            vec!["data.clases:", "Did you mean `classes`?"],
        ),
        (
            iris(json!({"label": "index"})),
            "squared",
            vec!["data.label:", "Did you mean `labels`?"],
        ),
        (
            iris(json!({"labels": "onehto"})),
            "squared",
            vec!["data.labels:", "Did you mean `onehot`?"],
        ),
        (
            iris(json!({"standardize": "yes"})),
            "squared",
            vec!["data.standardize:", "true or false"],
        ),
        (
            iris(json!({"classes": [0, 3]})),
            "squared",
            vec!["data.classes[1]:", "found 3", "2 (virginica)"],
        ),
        (
            iris(json!({"classes": [1, 0, 1]})),
            "squared",
            vec!["data.classes[2]:", "already data.classes[0]"],
        ),
        (
            iris(json!({"classes": []})),
            "squared",
            vec!["data.classes:", "no classes"],
        ),
        (
            iris(json!({"n_train": 0})),
            "squared",
            vec!["data.n_train:", "found 0"],
        ),
        (
            iris(json!({"n_test": 0})),
            "squared",
            vec!["data.n_test:", "found 0"],
        ),
        (
            iris(json!({"n_train": 151})),
            "squared",
            vec!["data.n_train:", "150 rows"],
        ),
        (
            iris(json!({"n_train": 100, "n_test": 51})),
            "squared",
            vec!["data.n_test:", "n_test <= 50"],
        ),
        (
            iris(json!({"n_train": 90, "n_test": 11, "classes": [0, 2]})),
            "squared",
            vec!["data.n_test:", "100 rows of classes [0, 2]", "n_test <= 10"],
        ),
        (
            iris(json!({"labels": "signed"})),
            "squared",
            vec!["data.labels:", "`signed` with 3 classes"],
        ),
        (
            iris(json!({"labels": "binary", "classes": [1]})),
            "squared",
            vec!["data.labels:", "`binary` with 1 classes"],
        ),
        (
            iris(json!({"labels": "onehot"})),
            "squared",
            vec!["data.labels:", "rows of 3 targets", "model.outputs = 1"],
        ),
        (
            iris(json!({"classes": [0, 1]})),
            "logistic",
            vec!["data.labels:", "logistic", "-1 or +1"],
        ),
        (
            json!({"source": "dataset", "name": "diabetes", "n_train": 5, "n_test": 2, "classes": [0]}),
            "squared",
            vec!["data.classes:", "regression set"],
        ),
        (
            json!({"source": "dataset", "name": "diabetes", "n_train": 5, "n_test": 2, "labels": "index"}),
            "squared",
            vec!["data.labels:", "regression set"],
        ),
        (
            json!({"source": "dataset", "n_train": 5, "n_test": 2}),
            "squared",
            vec!["data.name:", "missing required field `name`"],
        ),
        (
            json!({"source": "datset", "name": "iris", "n_train": 5, "n_test": 2}),
            "squared",
            vec!["data.source:", "Did you mean `dataset`?"],
        ),
    ];
    for (data, loss, fragments) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report.json");
        let result = pathkernel(
            &["run", "-", "--out", out.to_str().unwrap()],
            &full_spec(data.clone(), loss),
        );
        assert_fails(&result, 2, &fragments);
        assert!(entries(dir.path()).is_empty(), "wrote a file for {data}");
    }
}

#[test]
fn a_run_on_a_data_set_reports_its_resolved_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let data = json!({"source": "dataset", "name": "digits", "n_train": 12, "n_test": 4, "classes": [3, 8], "labels": "signed"});
    let result = pathkernel(
        &["run", "-", "--out", out.to_str().unwrap()],
        &full_spec(data, "logistic"),
    );
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let spec = report["spec"]["data"].clone();
    let spec: DatasetSpec = serde_json::from_value({
        let mut s = spec;
        s.as_object_mut().unwrap().remove("source");
        s
    })
    .unwrap();
    let loaded = load(&spec, 1).unwrap();
    let rows = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect()
    };
    let row_major =
        |m: &nalgebra::DMatrix<f64>| -> Vec<f64> { m.transpose().iter().copied().collect() };
    assert_eq!(rows(&report["train_x"]), row_major(&loaded.train_x));
    assert_eq!(rows(&report["test_x"]), row_major(&loaded.test_x));
    let y: Vec<f64> = report["train_y"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(y, loaded.train_y.as_slice());
    assert_eq!(report["train_x"][0].as_array().unwrap().len(), 64);
}

/// The report of a run of `spec` (JSON text) from standard input.
fn report_of(spec: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let result = pathkernel(&["run", "-", "--out", out.to_str().unwrap()], spec);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// Rows of numbers (or one number per row) of a report field, row-major.
fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| match r.as_array() {
            Some(row) => row.iter().map(|x| x.as_f64().unwrap()).collect(),
            None => vec![r.as_f64().unwrap()],
        })
        .collect()
}

#[test]
fn onehot_and_index_labels_train_c_outputs_and_report_test_y() {
    let row_major =
        |m: &nalgebra::DMatrix<f64>| -> Vec<f64> { m.transpose().iter().copied().collect() };
    for (labels, loss, expected) in [
        ("onehot", "squared", Labels::Onehot),
        ("index", "cross_entropy", Labels::Index),
    ] {
        let data = json!({"source": "dataset", "name": "iris", "n_train": 30, "n_test": 12, "labels": labels});
        let spec = json!({
            "seed": 9,
            "data": data,
            "model": {"arch": "linear", "outputs": 3},
            "loss": {"kind": loss},
            "reduction": "mean",
            "flow": {"t_end": 0.5, "method": "rk4", "step": 0.25}
        });
        let report = report_of(&spec.to_string());
        let data: DatasetSpec = serde_json::from_value({
            let mut d = report["spec"]["data"].clone();
            d.as_object_mut().unwrap().remove("source");
            d
        })
        .unwrap();
        assert_eq!(data.labels, Some(expected));
        let loaded = load(&data, 9).unwrap();
        assert_eq!(
            numbers(&report["train_y"]),
            row_major(&loaded.train_y),
            "{labels}"
        );
        assert_eq!(
            numbers(&report["test_y"]),
            row_major(&loaded.test_y),
            "{labels}"
        );
        let errors = &report["test_error"];
        for who in ["model", "kernel_machine"] {
            assert!(
                errors[who]["mse"].as_f64().unwrap() >= 0.0,
                "{labels}: {errors}"
            );
            let accuracy = errors[who]["accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&accuracy), "{labels}: {errors}");
        }
    }
}
