//! `pathkernel sweep GRID --out DIR [--shard i/n] [--jobs J]`: every cell of
//! a grid (`grid`) run as an experiment, each writing its report and one
//! summary row (`row`); `pathkernel collect DIR` (`collect`) merges the
//! rows.
//!
//! The directory: `grid.json` (the grid as read; a shard started on another
//! grid is refused), and per cell `cells/cell-NNNNNN.json` (the report,
//! with `.npz` beside it under `--arrays npz`) and `cells/cell-NNNNNN.csv`
//! (its row, header included). Every file is written whole or not at all,
//! and the row last: a cell with a row is finished and skipped by a later
//! run, so a killed job resumes where it stopped.
use crate::data::Dataset;
use crate::error::{Error, InputError, RunError};
use crate::experiment::Experiment;
use crate::report::npz::Arrays;
use crate::report::{Report, write_atomic};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub mod collect;
pub mod grid;
pub mod row;

pub use grid::Grid;

/// Shard i of n: cells i, i + n, i + 2n, ... of the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole grid.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// `i/n` with 0 <= i < n.
    pub fn parse(text: &str) -> Result<Shard, InputError> {
        let wrong = || {
            InputError::new(
                "--shard",
                format!(
                    "found `{}`, allowed: i/n with whole numbers 0 <= i < n (e.g. 0/4)",
                    crate::error::shown(text)
                ),
            )
        };
        let (i, n) = text.split_once('/').ok_or_else(wrong)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| wrong())?,
            n.trim().parse().map_err(|_| wrong())?,
        );
        if index >= count {
            return Err(wrong());
        }
        Ok(Shard { index, count })
    }

    /// This shard's cells of a grid of `cells`, in increasing order.
    pub fn cells(self, cells: usize) -> impl Iterator<Item = usize> {
        (self.index..cells).step_by(self.count)
    }
}

/// What `sweep` is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    pub shard: Shard,
    /// Cells run at once; the cores are shared out among them.
    pub jobs: usize,
    pub arrays: Arrays,
    /// Set by Ctrl-C: the running cells stop before their next step and
    /// write nothing; no new cell starts.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// The file of `cell` with extension `ext` in `dir`'s cells folder.
pub fn cell_path(dir: &Path, cell: usize, ext: &str) -> PathBuf {
    dir.join("cells").join(format!("cell-{cell:06}.{ext}"))
}

/// Runs the shard's unfinished cells; returns the text to print.
pub fn command(grid_path: &Path, dir: &Path, options: &Options) -> Result<String, Error> {
    let grid = Grid::from_path(grid_path)?;
    if options.jobs == 0 {
        return Err(InputError::new("--jobs", "found 0, allowed: a whole number >= 1").into());
    }
    let mine: Vec<usize> = options.shard.cells(grid.len()).collect();
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&c| !cell_path(dir, c, "csv").exists())
        .collect();
    // Bad data (a missing CSV, a run over the memory limit) is refused
    // before any cell runs.
    for &cell in &todo {
        let spec = grid.spec(cell)?;
        let data = Dataset::resolve(&spec, &grid.dir)?;
        let (n, m) = (data.train_x.nrows(), data.test_x.nrows());
        spec.check_size(data.dim(), n, m, crate::spec::DEFAULT_MAX_MEMORY_GIB)
            .map_err(|e| {
                InputError::new(
                    format!("cell {cell} ({}): {}", grid.describe(cell), e.location),
                    e.problem,
                )
            })?;
    }
    prepare(&grid, dir)?;
    let failed = run_cells(&grid, dir, &todo, options)?;
    let Shard { index, count } = options.shard;
    Ok(format!(
        "sweep: shard {index}/{count}: {} of {} cells; {} run ({failed} failed, their \
         message in the status column), {} finished before\n  rows in {}; merge them with \
         `pathkernel collect {}`\n",
        mine.len(),
        grid.len(),
        todo.len(),
        mine.len() - todo.len(),
        dir.join("cells").display(),
        dir.display(),
    ))
}

/// Creates the directory and records the grid, or checks that the grid
/// already recorded there is this one.
fn prepare(grid: &Grid, dir: &Path) -> Result<(), InputError> {
    let fail = |e: std::io::Error| InputError::new("--out", format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("cells")).map_err(fail)?;
    let record = dir.join("grid.json");
    let text = format!("{}\n", grid.canonical());
    match std::fs::read_to_string(&record) {
        Ok(old) if old == text => Ok(()),
        Ok(_) => Err(InputError::new(
            "--out",
            format!(
                "{} holds the cells of another grid ({}); give a new directory",
                dir.display(),
                record.display()
            ),
        )),
        Err(_) => write_atomic(&record, &text, "the grid record"),
    }
}

/// Runs `todo` on `jobs` workers, each with its own rayon pool of
/// cores / jobs threads (at least one), so that the cells' matrix products
/// never ask for more threads than there are cores; returns how many runs
/// failed. The first bad input or interrupt stops every worker before its
/// next cell.
fn run_cells(grid: &Grid, dir: &Path, todo: &[usize], options: &Options) -> Result<usize, Error> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = options.jobs.min(todo.len()).max(1);
    let threads = (cores / jobs).max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                    Ok(pool) => pool,
                    Err(e) => {
                        let e = InputError::new("--jobs", format!("cannot start a worker: {e}"));
                        stop.store(true, Ordering::SeqCst);
                        first_error.lock().unwrap().get_or_insert(e.into());
                        return;
                    }
                };
                while !stop.load(Ordering::SeqCst) {
                    let Some(&cell) = todo.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        break;
                    };
                    match pool.install(|| run_cell(grid, dir, cell, options)) {
                        Ok(line) => {
                            if line.starts_with("failed") {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                            let text = format!("cell {cell} ({}): {line}\n", grid.describe(cell));
                            crate::cli::emit(&text);
                        }
                        Err(e) => {
                            stop.store(true, Ordering::SeqCst);
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(failed.into_inner()),
    }
}

/// Runs one cell and writes its report and then its row; returns what to
/// print. A failed run is the cell's result (a row saying so); an
/// interrupt or bad input is an error, and writes nothing.
fn run_cell(grid: &Grid, dir: &Path, cell: usize, options: &Options) -> Result<String, Error> {
    let spec = grid.spec(cell)?;
    let data = Dataset::resolve(&spec, &grid.dir)?;
    let mut exp = Experiment::new(spec, data);
    exp.interrupt = options.interrupt.clone();
    let started = std::time::Instant::now();
    let outcome = exp.run(&mut |_| {});
    let seconds = started.elapsed().as_secs_f64();
    exp.check_interrupt()?;
    let values: Vec<String> = grid.values(cell).into_iter().map(grid::cell_text).collect();
    let (record, line) = match outcome {
        Ok(outcome) => {
            let report = Report::new(&exp, &outcome);
            report.write_with_arrays(&cell_path(dir, cell, "json"), options.arrays)?;
            let line = format!(
                "ok, max |residual| {:.3e}, {} evaluations, {seconds:.3} s",
                report.max_abs_residual, report.rhs_evals
            );
            (row::finished(cell, values, &report, seconds), line)
        }
        Err(e @ RunError::Interrupted { .. }) => return Err(e.into()),
        Err(e) => {
            let message = e.to_string();
            let line = format!("failed: {message}");
            (row::failed(cell, values, &message, seconds), line)
        }
    };
    let fields: Vec<&str> = grid.axes.iter().map(|a| a.field.as_str()).collect();
    let text = row::to_csv(&[row::header(&fields), record]);
    write_atomic(&cell_path(dir, cell, "csv"), &text, "the cell's row")?;
    Ok(line)
}
