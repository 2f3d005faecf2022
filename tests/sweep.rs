//! `pathkernel sweep` and `collect` (src/sweep/): the shards partition the
//! grid, a cell's row is the same bytes (but its `seconds`) whatever the
//! shard and `--jobs`, an interrupted sweep resumes to the same rows, and
//! the Slurm script runs the shards a job array would.
use crate::common::{assert_fails, entries};
use pathkernel::sweep::{Grid, Shard};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// 2 widths x 3 seeds x 2 max_steps: 12 cells, the 6 with max_steps 1
/// failing (dopri5 reaches max_steps), the others running.
fn grid() -> Value {
    json!({
        "base": {
            "seed": 1,
            "data": {"source": "synthetic", "function": "sine", "n_train": 8, "n_test": 3, "dim": 2},
            "model": {"arch": "mlp", "hidden": [4], "activation": "tanh"},
            "loss": {"kind": "squared"},
            "flow": {"t_end": 1.0, "method": "dopri5", "rtol": 1e-9, "atol": 1e-12}
        },
        "axes": [
            {"field": "model.hidden", "values": [[4], [8, 8]]},
            {"field": "seed", "values": [1, 2, 3]},
            {"field": "flow.max_steps", "values": [1, 10000]}
        ]
    })
}

fn pathkernel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pathkernel"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A temporary directory holding grid.json.
fn with_grid(grid: &Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grid.json");
    std::fs::write(&path, grid.to_string()).unwrap();
    (dir, path)
}

fn sweep(grid: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "sweep",
        grid.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&pathkernel(&args))
}

/// Each cell file's text by name, under `out/cells`.
fn cell_files(out: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(out.join("cells"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// A CSV text without its last column (`seconds`, the one column that
/// differs between runs).
fn timeless(csv: &str) -> String {
    csv.lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(head, _)| head))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files with each row's seconds dropped.
fn timeless_files(files: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(k, v)| {
            let v = if k.ends_with(".csv") {
                timeless(v)
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

proptest! {
    #![proptest_config(crate::cases(256))]
    /// Shards 0..n of n take every cell exactly once, whatever n and the
    /// grid's size, each in increasing order.
    #[test]
    fn shards_partition_the_grid(cells in 0usize..500, n in 1usize..64) {
        let mut seen = vec![0u32; cells];
        for index in 0..n {
            let mine: Vec<usize> = Shard { index, count: n }.cells(cells).collect();
            prop_assert!(mine.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(mine.iter().all(|&c| c % n == index));
            for c in mine {
                seen[c] += 1;
            }
        }
        prop_assert!(seen.iter().all(|&k| k == 1), "{:?}", seen);
    }
}

#[test]
fn a_shard_is_i_of_n_with_i_below_n() {
    assert_eq!(Shard::parse("2/5").unwrap(), Shard { index: 2, count: 5 });
    for wrong in ["5/5", "0/0", "1", "a/2", "-1/2", ""] {
        let e = Shard::parse(wrong).unwrap_err();
        assert_eq!(e.location, "--shard", "{wrong}");
    }
}

#[test]
fn cells_are_the_product_with_the_last_axis_fastest() {
    let (dir, path) = with_grid(&grid());
    let g = Grid::from_path(&path).unwrap();
    assert_eq!(g.len(), 12);
    // cell = (width index * 3 + seed index) * 2 + max_steps index
    assert_eq!(g.coordinates(0), [0, 0, 0]);
    assert_eq!(g.coordinates(1), [0, 0, 1]);
    assert_eq!(g.coordinates(7), [1, 0, 1]);
    assert_eq!(g.coordinates(11), [1, 2, 1]);
    let spec = g.spec(9).unwrap();
    assert_eq!(spec.seed, 2);
    assert_eq!(spec.flow.max_steps, 10000);
    assert_eq!(
        g.describe(9),
        "model.hidden=[8,8], seed=2, flow.max_steps=10000"
    );
    // The same grid in TOML reads to the same cells.
    let toml = r#"
[base]
seed = 1
data = { source = "synthetic", function = "sine", n_train = 8, n_test = 3, dim = 2 }
model = { arch = "mlp", hidden = [4], activation = "tanh" }
loss = { kind = "squared" }
flow = { t_end = 1.0, method = "dopri5", rtol = 1e-9, atol = 1e-12 }

[[axes]]
field = "model.hidden"
values = [[4], [8, 8]]

[[axes]]
field = "seed"
values = [1, 2, 3]

[[axes]]
field = "flow.max_steps"
values = [1, 10000]
"#;
    let toml_path = dir.path().join("grid.toml");
    std::fs::write(&toml_path, toml).unwrap();
    assert_eq!(
        Grid::from_path(&toml_path).unwrap().canonical(),
        g.canonical()
    );
}

#[test]
fn a_wrong_grid_is_refused_naming_the_cell_and_writes_nothing() {
    let mut bad = grid();
    bad["axes"][1]["values"] = json!([1, "two"]);
    let mut negative = grid();
    negative["axes"][2] = json!({"field": "flow.rtol", "values": [1e-9, -1.0]});
    let mut path = grid();
    path["axes"][0]["field"] = json!("model..hidden");
    let mut unknown = grid();
    unknown["axes"][0]["field"] = json!("model.hiden");
    let cases = [
        (bad, vec!["cell 2 (", "seed=two", "seed: found"]),
        (negative, vec!["cell 1 (", "flow.rtol=-1.0", "flow.rtol"]),
        (path, vec!["axes[0].field", "model..hidden"]),
        (unknown, vec!["cell 0 (", "model.hiden", "unknown field"]),
    ];
    for (g, fragments) in cases {
        let (dir, path) = with_grid(&g);
        let out = dir.path().join("out");
        let run = pathkernel(&[
            "sweep",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_fails(&run, 2, &fragments);
        assert!(!out.exists(), "nothing written");
    }
}

#[test]
fn rows_are_the_same_across_jobs_shards_and_a_resumed_run() {
    let (dir, path) = with_grid(&grid());
    let one = dir.path().join("jobs1");
    let two = dir.path().join("jobs2");
    let text = sweep(&path, &one, &["--jobs", "1"]);
    assert!(text.contains("12 of 12 cells; 12 run (6 failed"), "{text}");
    sweep(&path, &two, &["--jobs", "2"]);
    let files = cell_files(&one);
    assert_eq!(files.len(), 12 + 6, "12 rows and the 6 reports of the runs");
    assert_eq!(timeless_files(&files), timeless_files(&cell_files(&two)));
    let row = &files["cell-000009.csv"];
    let mut lines = row.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("cell,model.hidden,seed,flow.max_steps,status,max_abs_residual,")
    );
    assert!(
        lines.next().unwrap().starts_with("9,\"[8,8]\",2,10000,ok,"),
        "{row}"
    );
    assert!(
        files["cell-000008.csv"].contains("8,\"[8,8]\",2,1,failed: the run reached max_steps = 1")
    );

    // The Slurm script's three tasks, with the variables Slurm sets.
    let slurm = dir.path().join("slurm");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sweep.slurm");
    for task in 0..3 {
        let out = Command::new("bash")
            .arg(&script)
            .env("GRID", &path)
            .env("OUT", &slurm)
            .env("PATHKERNEL", env!("CARGO_BIN_EXE_pathkernel"))
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_ARRAY_TASK_MIN", "0")
            .env("SLURM_ARRAY_TASK_MAX", "2")
            .env("SLURM_CPUS_PER_TASK", "1")
            .output()
            .unwrap();
        let text = ok(&out);
        assert!(
            text.contains(&format!("shard {task}/3: 4 of 12 cells")),
            "{text}"
        );
    }
    assert_eq!(timeless_files(&files), timeless_files(&cell_files(&slurm)));

    // collect merges them into one CSV in cell order, the same from either.
    let table = ok(&pathkernel(&["collect", slurm.to_str().unwrap()]));
    assert!(table.contains("12 rows written"), "{table}");
    ok(&pathkernel(&["collect", one.to_str().unwrap()]));
    let summary = |d: &Path| std::fs::read_to_string(d.join("summary.csv")).unwrap();
    assert_eq!(timeless(&summary(&slurm)), timeless(&summary(&one)));
    let cells: Vec<String> = summary(&one)
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(cells, (0..12).map(|c| c.to_string()).collect::<Vec<_>>());

    // A killed sweep: two cells unfinished (no row; one with its report
    // written, one without), a temporary file left behind. The rerun runs
    // those two alone, to the same rows; the others are untouched.
    let cells_dir = one.join("cells");
    std::fs::remove_file(cells_dir.join("cell-000003.csv")).unwrap();
    std::fs::remove_file(cells_dir.join("cell-000005.csv")).unwrap();
    std::fs::remove_file(cells_dir.join("cell-000005.json")).unwrap();
    let text = sweep(&path, &one, &["--jobs", "2"]);
    assert!(text.contains("2 run (0 failed"), "{text}");
    assert!(text.contains("10 finished before"), "{text}");
    let resumed = cell_files(&one);
    for (name, body) in &files {
        if name == "cell-000003.csv" || name == "cell-000005.csv" {
            assert_eq!(timeless(&resumed[name]), timeless(body), "{name}");
        } else {
            assert_eq!(&resumed[name], body, "{name} untouched");
        }
    }
    // collect of a partial sweep says which cells are missing.
    std::fs::remove_file(cells_dir.join("cell-000010.csv")).unwrap();
    let table = ok(&pathkernel(&["collect", one.to_str().unwrap()]));
    assert!(table.contains("1 cells not finished yet: 10"), "{table}");

    // Another grid into the same directory is refused.
    let mut other = grid();
    other["axes"][1]["values"] = json!([1, 2]);
    let (_d2, other_path) = with_grid(&other);
    let before = entries(&cells_dir);
    let run = pathkernel(&[
        "sweep",
        other_path.to_str().unwrap(),
        "--out",
        one.to_str().unwrap(),
    ]);
    assert_fails(&run, 2, &["--out", "another grid"]);
    assert_eq!(entries(&cells_dir), before);
}

/// C25 for C > 1: the C x C kernel blocks are formed in column blocks of a
/// fixed width, however many threads share them, so a cell's report (its
/// K^p, A, every field) and row are the same bits with --jobs 1 (both
/// threads in one cell) and --jobs 2 (one thread per cell). iris with
/// C = 3 makes the training kernel 5 column blocks and the query kernel 2.
#[test]
fn rows_and_reports_of_a_classifier_are_the_same_across_jobs() {
    let (dir, path) = with_grid(&json!({
        "base": {
            "seed": 1,
            "data": {"source": "dataset", "name": "iris", "n_train": 90, "n_test": 30},
            "model": {"arch": "mlp", "hidden": [6], "activation": "tanh", "outputs": 3},
            "loss": {"kind": "cross_entropy"},
            "flow": {"t_end": 0.5, "method": "rk4", "step": 0.05}
        },
        "axes": [{"field": "seed", "values": [1, 2]}]
    }));
    let one = dir.path().join("jobs1");
    let two = dir.path().join("jobs2");
    sweep(&path, &one, &["--jobs", "1"]);
    sweep(&path, &two, &["--jobs", "2"]);
    let files = cell_files(&one);
    assert_eq!(files.len(), 2 + 2, "2 rows and 2 reports");
    assert!(files["cell-000001.json"].contains("\"path_kernel\""));
    assert_eq!(timeless_files(&files), timeless_files(&cell_files(&two)));
}
