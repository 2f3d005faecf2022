//! `--arrays npz` (SPEC §12): the large arrays of a report go to REPORT.npz,
//! equal bit for bit to the plain JSON report's arrays, the JSON keeps the
//! rest in its order, a small report writes no npz, and a failed write
//! leaves neither file.
use crate::common::{assert_fails, entries};
use pathkernel::data::Dataset;
use pathkernel::experiment::Experiment;
use pathkernel::report::Report;
use pathkernel::report::npz::{
    Arrays, MAX_INLINE, NpzArray, NpzData, large_array, numeric_array, split, write_npz,
};
use pathkernel::spec::{Format, Spec};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn pathkernel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// A linear model on 70 training and 70 query points of D = 1, gd with the
/// exact path kernel: six M x N fields of 4900 numbers. K^g(q, x) = q x + 1,
/// so K^p(q = -1, x = 1) is exactly 0 and `a` has nulls there.
fn big_spec() -> Value {
    big_spec_with(1)
}

/// [`big_spec`] with C outputs (C > 1: C targets per row); the C x C blocks
/// are (q x + 1) I, so a[m][i] is a null C-vector where q x = -1.
fn big_spec_with(c: usize) -> Value {
    let xs: Vec<Vec<f64>> = (0..70).map(|i| vec![f64::from(i) / 35.0 - 1.0]).collect();
    let mut train_x = xs.clone();
    train_x[69] = vec![1.0];
    let target = |i: i32, k: usize| (f64::from(i) * 0.7 + k as f64).sin();
    let train_y = if c == 1 {
        json!((0..70).map(|i| target(i, 0)).collect::<Vec<_>>())
    } else {
        json!(
            (0..70)
                .map(|i| (0..c).map(|k| target(i, k)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        )
    };
    let test_x: Vec<Vec<f64>> = xs.iter().rev().cloned().collect();
    let model = if c == 1 {
        json!({"arch": "linear"})
    } else {
        json!({"arch": "linear", "outputs": c})
    };
    json!({
        "seed": 2,
        "data": {"source": "inline", "train_x": train_x, "train_y": train_y, "test_x": test_x},
        "model": model,
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": {"t_end": 1.0, "method": "gd", "lr": 0.25, "exact_path_kernel": true}
    })
}

/// Runs `spec` with `--out DIR/NAME.json` and `extra` arguments.
fn run(dir: &Path, name: &str, spec: &Value, extra: &[&str]) -> Output {
    let spec_path = dir.join(format!("{name}.spec"));
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let report = dir.join(format!("{name}.json"));
    let mut args = vec![
        "run",
        spec_path.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = pathkernel(&args);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The members of an npz file: name -> (shape, numbers as f64 bits or i64).
fn read_npz(path: &Path) -> BTreeMap<String, (Vec<u64>, NpzData)> {
    let file = std::fs::File::open(path).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    let mut members = BTreeMap::new();
    for file_name in names {
        let name = npyz::npz::array_name_from_file_name(&file_name)
            .unwrap_or_else(|| panic!("{file_name} is not an array"))
            .to_owned();
        let npy = npyz::NpyFile::new(zip.by_name(&file_name).unwrap()).unwrap();
        let shape = npy.shape().to_vec();
        assert_eq!(npy.order(), npyz::Order::C);
        let data = match npy.dtype().descr().trim_matches('\'') {
            "<f8" => NpzData::F64(npy.into_vec::<f64>().unwrap()),
            "<i8" => NpzData::I64(npy.into_vec::<i64>().unwrap()),
            other => panic!("{name}: dtype {other}"),
        };
        members.insert(name, (shape, data));
    }
    members
}

/// A nested JSON array's shape and leaves, by a walk of its own: the
/// shape from the arrays at each depth (all of one length), then the leaves
/// in order, a null filling its whole place (a number, or a C-vector of `a`)
/// with NaN.
fn json_array(value: &Value) -> (Vec<u64>, Vec<f64>) {
    fn shape(v: &Value, depth: usize, dims: &mut Vec<u64>) {
        if let Value::Array(items) = v {
            if dims.len() == depth {
                dims.push(items.len() as u64);
            }
            assert_eq!(dims[depth], items.len() as u64, "ragged");
            for item in items {
                shape(item, depth + 1, dims);
            }
        }
    }
    fn walk(v: &Value, rest: &[u64], out: &mut Vec<f64>) {
        match v {
            Value::Array(items) => {
                for item in items {
                    walk(item, &rest[1..], out);
                }
            }
            Value::Null => {
                let count = rest.iter().product::<u64>() as usize;
                out.extend(std::iter::repeat_n(f64::NAN, count));
            }
            other => out.push(other.as_f64().unwrap()),
        }
    }
    let mut dims = Vec::new();
    shape(value, 0, &mut dims);
    let mut out = Vec::new();
    walk(value, &dims, &mut out);
    (dims, out)
}

/// Same f64, bit for bit, with NaN (from null) equal to NaN.
fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// The top-level keys of a report's text, in the order written.
fn key_order(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once("\":"))
        .map(|(k, _)| k.to_owned())
        .collect()
}

#[test]
fn a_big_run_puts_its_large_arrays_in_an_npz_equal_to_the_json_run() {
    let dir = tempfile::tempdir().unwrap();
    let spec = big_spec();
    run(dir.path(), "plain", &spec, &[]);
    run(dir.path(), "plain2", &spec, &["--arrays", "json"]);
    run(dir.path(), "split", &spec, &["--arrays", "npz"]);
    assert_eq!(
        entries(dir.path()),
        [
            "plain.json",
            "plain.spec",
            "plain2.json",
            "plain2.spec",
            "split.json",
            "split.npz",
            "split.spec"
        ]
        .map(String::from)
        .into(),
        "no npz for a json run, no temporary file"
    );
    let plain_text = std::fs::read_to_string(dir.path().join("plain.json")).unwrap();
    let split_text = std::fs::read_to_string(dir.path().join("split.json")).unwrap();
    assert_eq!(
        plain_text,
        std::fs::read_to_string(dir.path().join("plain2.json"))
            .unwrap()
            .replace("plain2", "plain"),
        "--arrays json is the default"
    );
    let plain: Value = serde_json::from_str(&plain_text).unwrap();
    let split: Value = serde_json::from_str(&split_text).unwrap();
    assert_eq!(
        key_order(&plain_text),
        key_order(&split_text),
        "field order"
    );

    // The fields to move: every top-level array of more than 4096 numbers.
    let big: BTreeSet<String> = plain
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_array() && json_array(v).1.len() > 4096)
        .map(|(k, _)| k.clone())
        .collect();
    let expected: BTreeSet<String> = [
        "path_kernel",
        "coef_integral",
        "a",
        "tangent_kernel0",
        "tangent_kernel_end",
        "exact_coef_integral",
    ]
    .map(String::from)
    .into();
    assert_eq!(big, expected);

    let members = read_npz(&dir.path().join("split.npz"));
    assert_eq!(members.keys().cloned().collect::<BTreeSet<_>>(), big);
    for (key, value) in split.as_object().unwrap() {
        if big.contains(key) {
            assert_eq!(value, &json!({"npz": key}), "{key}");
            let (shape, numbers) = json_array(&plain[key]);
            let (npz_shape, data) = &members[key];
            assert_eq!(npz_shape, &shape, "{key}");
            assert_eq!(shape, [70, 70]);
            let NpzData::F64(data) = data else {
                panic!("{key}: float64 expected")
            };
            assert!(same_bits(data, &numbers), "{key} differs");
        } else {
            assert_eq!(value, &plain[key], "{key} changed");
        }
    }
    // a's nulls are NaN, exactly where the JSON has null.
    let NpzData::F64(a) = &members["a"].1 else {
        panic!()
    };
    let nulls = plain["a"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .filter(|v| v.is_null())
        .count();
    assert!(nulls >= 1);
    assert_eq!(a.iter().filter(|v| v.is_nan()).count(), nulls);

    numpy_reads(&dir.path().join("split.npz"), &plain_text, &big);

    // The same spec gives the same npz, byte for byte.
    run(dir.path(), "again", &spec, &["--arrays", "npz"]);
    assert_eq!(
        std::fs::read(dir.path().join("again.npz")).unwrap(),
        std::fs::read(dir.path().join("split.npz")).unwrap()
    );
}

/// Where numpy is installed: np.load reads the npz with the JSON report's
/// shapes and values (null as NaN). numpy is not installed for this test.
fn numpy_reads(npz: &Path, plain_json: &str, big: &BTreeSet<String>) {
    let has_numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_numpy {
        println!("note: numpy is not installed; the npz was not read with np.load");
        return;
    }
    let json_path = npz.with_extension("plain-for-numpy.json");
    std::fs::write(&json_path, plain_json).unwrap();
    let script = r#"
import json, sys
import numpy as np
npz, report, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
r = json.load(open(report))
def dims(v, depth, out):
    if isinstance(v, list):
        if len(out) == depth:
            out.append(len(v))
        assert out[depth] == len(v), "ragged"
        for x in v:
            dims(x, depth + 1, out)
    return out
def fill(v, rest):
    if isinstance(v, list):
        return [fill(x, rest[1:]) for x in v]
    if v is None:
        return np.full(rest, np.nan).tolist() if rest else np.nan
    return v
with np.load(npz) as arrays:
    assert sorted(arrays.files) == sorted(names), arrays.files
    for name in names:
        got = arrays[name]
        shape = dims(r[name], 0, [])
        want = np.array(fill(r[name], shape), dtype=np.float64)
        assert got.dtype == np.float64, (name, got.dtype)
        assert got.shape == tuple(shape) == want.shape, (name, got.shape, shape)
        assert np.array_equal(got, want, equal_nan=True), name
print("numpy ok")
"#;
    let names: Vec<&str> = big.iter().map(String::as_str).collect();
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            npz.to_str().unwrap(),
            json_path.to_str().unwrap(),
            &names.join(","),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("numpy ok"),
        "numpy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(json_path).unwrap();
    println!("numpy read the npz: same shapes and values");
}

#[test]
fn a_small_run_writes_no_npz_and_the_same_json() {
    let dir = tempfile::tempdir().unwrap();
    let spec = json!({
        "seed": 5,
        "data": {"source": "synthetic", "function": "sine", "n_train": 64, "n_test": 64, "dim": 2},
        "model": {"arch": "mlp", "hidden": [3]},
        "loss": {"kind": "squared"},
        "reduction": "mean",
        "flow": {"t_end": 0.5, "method": "rk4", "step": 0.25}
    });
    // 64 x 64 = 4096 numbers: not more than 4096, so it stays.
    run(dir.path(), "plain", &spec, &[]);
    run(dir.path(), "split", &spec, &["--arrays", "npz"]);
    assert_eq!(
        entries(dir.path()),
        ["plain.json", "plain.spec", "split.json", "split.spec"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plain.json")).unwrap(),
        std::fs::read_to_string(dir.path().join("split.json")).unwrap(),
        "the npz path writes the same JSON when nothing moves"
    );
}

#[test]
fn an_npz_path_that_is_the_report_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.json");
    std::fs::write(&spec, big_spec().to_string()).unwrap();
    let out = dir.path().join("r.npz");
    let result = pathkernel(&[
        "run",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--arrays",
        "npz",
    ]);
    assert_fails(&result, 2, &["--out:", "r.npz", "another extension"]);
    let result = pathkernel(&["run", spec.to_str().unwrap(), "--arrays", "npy"]);
    assert_eq!(result.status.code(), Some(2));
    assert_eq!(entries(dir.path()), ["s.json".to_owned()].into());
}

/// The report of `big_spec`, run in process.
fn big_report() -> Report {
    let spec = Spec::parse(&big_spec().to_string(), Format::Json).unwrap();
    let data = Dataset::resolve(&spec, Path::new(".")).unwrap();
    let exp = Experiment::new(spec, data);
    let outcome = exp.run(&mut |_| {}).unwrap();
    Report::new(&exp, &outcome)
}

#[test]
fn a_failed_write_leaves_neither_file() {
    let report = big_report();
    // The JSON cannot be put in place (its path is a directory that is not
    // empty) after the npz was written: the npz is removed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("keep"), "x").unwrap();
    let error = report.write_with_arrays(&path, Arrays::Npz).unwrap_err();
    assert!(error.location.ends_with("r.json"), "{error}");
    assert_eq!(entries(dir.path()), ["r.json".to_owned()].into());
    // The npz cannot be put in place: the JSON is not written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    std::fs::create_dir(dir.path().join("r.npz")).unwrap();
    std::fs::write(dir.path().join("r.npz").join("keep"), "x").unwrap();
    let error = report.write_with_arrays(&path, Arrays::Npz).unwrap_err();
    assert!(error.location.ends_with("r.npz"), "{error}");
    assert_eq!(entries(dir.path()), ["r.npz".to_owned()].into());
    // And with both paths free, both are written.
    std::fs::remove_dir_all(dir.path().join("r.npz")).unwrap();
    report.write_with_arrays(&path, Arrays::Npz).unwrap();
    assert_eq!(
        entries(dir.path()),
        ["r.json".to_owned(), "r.npz".to_owned()].into()
    );
}

#[test]
fn the_split_json_keeps_the_reports_order_and_fields() {
    let report = big_report();
    let plain_text = report.to_json();
    let (text, moved) = split(&report).unwrap();
    assert_eq!(key_order(&text), key_order(&plain_text));
    let plain: Value = serde_json::from_str(&plain_text).unwrap();
    let split: Value = serde_json::from_str(&text).unwrap();
    let names: BTreeSet<&str> = moved.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names.len(), 6);
    for (key, value) in split.as_object().unwrap() {
        if names.contains(key.as_str()) {
            assert_eq!(value, &json!({"npz": key}));
        } else {
            assert_eq!(value, &plain[key], "{key}");
        }
    }
    // Nested objects keep their order too: the text of `conditions` is
    // the plain report's, line for line.
    let block = |t: &str| {
        let start = t.find("\n  \"conditions\"").unwrap();
        t[start..].to_owned()
    };
    assert_eq!(block(&text), block(&plain_text));
}

#[test]
fn numeric_arrays_of_any_depth_are_recognised_and_others_left() {
    let nested = json!([[[1.5, 2.0], [3.0, null]], [[5.0, 6.0], [7.0, 8.0]]]);
    let (shape, data) = numeric_array(&nested).unwrap();
    assert_eq!(shape, [2, 2, 2]);
    let NpzData::F64(v) = data else { panic!() };
    assert_eq!(&v[..3], [1.5, 2.0, 3.0]);
    assert!(v[3].is_nan());
    assert_eq!(v[7], 8.0);
    assert_eq!(
        numeric_array(&json!([[1, 2], [3, 4]])),
        Some((vec![2, 2], NpzData::I64(vec![1, 2, 3, 4])))
    );
    // A float among integers makes it float64.
    assert_eq!(
        numeric_array(&json!([1, 2.5])),
        Some((vec![2], NpzData::F64(vec![1.0, 2.5])))
    );
    assert_eq!(
        numeric_array(&json!([])),
        Some((vec![0], NpzData::I64(vec![])))
    );
    // A null stands for a number or a whole sub-array (a null C-vector).
    let nan_at = |v: &Value| -> (Vec<u64>, Vec<bool>) {
        let (shape, data) = numeric_array(v).unwrap();
        let NpzData::F64(data) = data else {
            panic!("{v}")
        };
        (shape, data.iter().map(|x| x.is_nan()).collect())
    };
    assert_eq!(
        nan_at(&json!([[[1.0, 2.0], null], [[3.0, 4.0], [5.0, 6.0]]])),
        (
            vec![2, 2, 2],
            vec![false, false, true, true, false, false, false, false]
        )
    );
    assert_eq!(
        nan_at(&json!([[null, null], [[1.0, 2.0], [3.0, 4.0]]])),
        (
            vec![2, 2, 2],
            vec![true, true, true, true, false, false, false, false]
        )
    );
    assert_eq!(
        nan_at(&json!([null, [1.0, 2.0]])),
        (vec![2, 2], vec![true, true, false, false])
    );
    assert_eq!(
        nan_at(&json!([[null], [1.0]])),
        (vec![2, 1], vec![true, false])
    );
    assert_eq!(nan_at(&json!([null, null])), (vec![2], vec![true, true]));
    for not in [
        json!(3.0),
        json!({"a": [1.0]}),
        json!([[1.0, 2.0], [3.0]]),
        json!([[1.0, 2.0], 3.0]),
        json!([1.0, "x"]),
        json!([true]),
        json!([[1.0], [[2.0]]]),
        json!([[1.0, 2.0], [null, [3.0]]]),
        json!([[null, 1.0], [[2.0], null]]),
    ] {
        assert_eq!(numeric_array(&not), None, "{not}");
    }
}

#[test]
fn only_arrays_of_more_than_4096_numbers_move() {
    let array = |n: usize| Value::from((0..n).map(|i| i as f64 + 0.5).collect::<Vec<_>>());
    assert!(large_array(&array(MAX_INLINE)).is_none());
    assert!(large_array(&array(MAX_INLINE + 1)).is_some());
    // A serde_json object serialises its keys sorted.
    let report = json!({
        "spec": {"data": {"train_x": array(5000)}},
        "at_limit": array(MAX_INLINE),
        "past_limit": array(MAX_INLINE + 1),
        "cube": vec![vec![vec![0.25; 17]; 17]; 17],
        "batches": vec![vec![3u64; 100]; 50],
        "words": vec!["x"; 5000],
    });
    let (text, moved) = split(&report).unwrap();
    let names: Vec<&str> = moved.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["batches", "cube", "past_limit"]);
    assert_eq!(moved[0].shape, [50, 100]);
    assert_eq!(moved[0].data, NpzData::I64(vec![3; 5000]));
    assert_eq!(moved[1].shape, [17, 17, 17]);
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["past_limit"], json!({"npz": "past_limit"}));
    assert_eq!(back["at_limit"], array(MAX_INLINE));
    assert_eq!(back["spec"], report["spec"]);
    assert_eq!(back["words"], report["words"]);
    // Nothing to move: the text is serde_json's own.
    let small = json!({"a": [1.0, 2.0], "b": {"c": [], "d": {}}, "e": null});
    let (text, moved) = split(&small).unwrap();
    assert!(moved.is_empty());
    assert_eq!(text, serde_json::to_string_pretty(&small).unwrap());
    assert_eq!(split(&json!({})).unwrap().0, "{}");
    assert!(split(&json!([1.0])).is_err());

    // Written and read back: shapes, dtypes and values.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.npz");
    write_npz(&path, &moved_of(&report)).unwrap();
    let back = read_npz(&path);
    for NpzArray { name, shape, data } in &moved_of(&report) {
        assert_eq!(&back[name], &(shape.clone(), data.clone()), "{name}");
    }
}

fn moved_of(report: &Value) -> Vec<NpzArray> {
    split(report).unwrap().1
}

#[test]
fn a_run_with_2_outputs_moves_its_blocks_in_their_nested_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = big_spec_with(2);
    run(dir.path(), "plain", &spec, &[]);
    run(dir.path(), "split", &spec, &["--arrays", "npz"]);
    let plain_text = std::fs::read_to_string(dir.path().join("plain.json")).unwrap();
    let plain: Value = serde_json::from_str(&plain_text).unwrap();
    let split: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("split.json")).unwrap())
            .unwrap();
    let members = read_npz(&dir.path().join("split.npz"));
    let shapes: BTreeMap<&str, Vec<u64>> = members
        .iter()
        .map(|(k, (shape, _))| (k.as_str(), shape.clone()))
        .collect();
    let block = vec![70, 70, 2, 2];
    let vector = vec![70, 70, 2];
    let expected: BTreeMap<&str, Vec<u64>> = [
        ("path_kernel", block.clone()),
        ("tangent_kernel0", block.clone()),
        ("tangent_kernel_end", block),
        ("coef_integral", vector.clone()),
        ("a", vector.clone()),
        ("exact_coef_integral", vector),
    ]
    .into();
    assert_eq!(shapes, expected);
    for (key, (shape, data)) in &members {
        assert_eq!(split[key], json!({"npz": key}), "{key}");
        let (json_shape, numbers) = json_array(&plain[key]);
        assert_eq!(&json_shape, shape, "{key}");
        let NpzData::F64(data) = data else {
            panic!("{key}: float64 expected")
        };
        assert!(same_bits(data, &numbers), "{key} differs");
    }
    // A null C-vector of a is C NaNs.
    let null_vectors = plain["a"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .filter(|v| v.is_null())
        .count();
    assert!(null_vectors >= 1);
    let NpzData::F64(a) = &members["a"].1 else {
        panic!()
    };
    assert_eq!(a.iter().filter(|v| v.is_nan()).count(), 2 * null_vectors);
    let names: BTreeSet<String> = members.keys().cloned().collect();
    numpy_reads(&dir.path().join("split.npz"), &plain_text, &names);
}

/// gd's per-query fields of SPEC §9 move like every other large array: with
/// M = 4100 query points (N = 3, a tanh mlp [2]) y0, y_end, kernel_machine,
/// residual, exact_kernel_machine, exact_residual, second_order_term and
/// second_order_residual (4100 numbers each) and the M x N matrices go to
/// the npz, bit for bit the plain report's.
#[test]
fn gd_second_order_and_exact_residuals_move_to_the_npz() {
    let dir = tempfile::tempdir().unwrap();
    let test_x: Vec<Vec<f64>> = (0..4100)
        .map(|i| vec![f64::from(i) / 2050.0 - 1.0])
        .collect();
    let spec = json!({
        "seed": 2,
        "data": {"source": "inline", "train_x": [[-0.5], [0.1], [0.8]], "train_y": [0.3, -0.2, 0.9],
                 "test_x": test_x},
        "model": {"arch": "mlp", "hidden": [2], "activation": "tanh"},
        "loss": {"kind": "squared"},
        "flow": {"t_end": 1.0, "method": "gd", "lr": 0.25, "exact_path_kernel": true}
    });
    run(dir.path(), "plain", &spec, &[]);
    run(dir.path(), "split", &spec, &["--arrays", "npz"]);
    let plain: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plain.json")).unwrap())
            .unwrap();
    let split: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("split.json")).unwrap())
            .unwrap();
    let members = read_npz(&dir.path().join("split.npz"));
    for key in [
        "exact_residual",
        "second_order_term",
        "second_order_residual",
    ] {
        assert_eq!(split[key], json!({"npz": key}), "{key}");
        let (shape, numbers) = json_array(&plain[key]);
        assert_eq!(shape, [4100]);
        let (npz_shape, NpzData::F64(data)) = &members[key] else {
            panic!("{key}: float64 expected")
        };
        assert_eq!(npz_shape, &shape);
        assert!(same_bits(data, &numbers), "{key} differs");
    }
    assert!(
        json_array(&plain["second_order_term"])
            .1
            .iter()
            .any(|&v| v != 0.0)
    );
}
