//! A sweep's grid: a base spec and axes, each a field path and the values
//! it takes; the cells are the Cartesian product of the axes in a fixed
//! order (the last axis varies fastest, as nested loops in the order the
//! axes are listed), so that a cell's index names the same experiment on
//! every machine and in every shard.
use crate::error::{InputError, shown};
use crate::spec::{Format, Spec, parse_value};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// Most cells a grid may have (six-digit cell names; a million runs is
/// far past one study).
pub const MAX_CELLS: usize = 1_000_000;

/// One step of a field path: an object's field or an array's element.
#[derive(Clone, Debug, PartialEq)]
enum Key {
    Field(String),
    Index(usize),
}

/// One axis: the field it sets and the values it takes, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    /// As written: `model.hidden`, `flow.lr`, `model.layers[0].channels`.
    pub field: String,
    path: Vec<Key>,
    pub values: Vec<Value>,
}

/// A grid as read, with the directory its data paths are relative to.
#[derive(Clone, Debug)]
pub struct Grid {
    pub base: Value,
    pub axes: Vec<Axis>,
    /// The grid file's directory (a csv spec's paths start there).
    pub dir: PathBuf,
    cells: usize,
}

impl Grid {
    /// Reads a grid file (TOML by the `.toml` extension, else JSON):
    /// `base` (a spec) and `axes` (a list of `{field, values}`).
    pub fn from_path(path: &Path) -> Result<Grid, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(
                path.display().to_string(),
                format!("cannot read the grid: {e}"),
            )
        })?;
        let value = parse_value(&text, Format::of_path(path), Some(path))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Grid::from_value(value, dir)
    }

    /// The grid of a value; every cell's spec is checked, so that a wrong
    /// value is refused before any cell runs.
    pub fn from_value(value: Value, dir: PathBuf) -> Result<Grid, InputError> {
        let Value::Object(mut top) = value else {
            return Err(InputError::new(
                "grid",
                "found no object, allowed: an object with `base` (a spec) and `axes`",
            ));
        };
        if let Some(key) = top.keys().find(|k| !["base", "axes"].contains(&k.as_str())) {
            return Err(InputError::new(
                shown(key),
                "unknown field of a grid, allowed: `base` and `axes`",
            ));
        }
        let base = top
            .remove("base")
            .ok_or_else(|| InputError::new("base", "missing: the spec every cell starts from"))?;
        let axes = match top.remove("axes") {
            Some(Value::Array(axes)) => axes,
            None => Vec::new(),
            Some(other) => {
                return Err(InputError::new(
                    "axes",
                    format!("found {other}, allowed: a list of {{field, values}}"),
                ));
            }
        };
        let axes = axes
            .into_iter()
            .enumerate()
            .map(|(i, a)| axis(i, a))
            .collect::<Result<Vec<_>, _>>()?;
        let cells = axes.iter().try_fold(1usize, |n, a| {
            n.checked_mul(a.values.len()).filter(|&n| n <= MAX_CELLS)
        });
        let Some(cells) = cells else {
            return Err(InputError::new(
                "axes",
                format!("the product of the axes' lengths is over {MAX_CELLS} cells"),
            ));
        };
        let grid = Grid {
            base,
            axes,
            dir,
            cells,
        };
        for cell in 0..cells {
            grid.spec(cell)?;
        }
        Ok(grid)
    }

    /// The number of cells, the product of the axes' lengths (1 with no axis).
    pub fn len(&self) -> usize {
        self.cells
    }

    pub fn is_empty(&self) -> bool {
        self.cells == 0
    }

    /// The position of `cell` on each axis: the last axis varies fastest.
    pub fn coordinates(&self, cell: usize) -> Vec<usize> {
        let mut rest = cell;
        let mut at = vec![0; self.axes.len()];
        for (a, axis) in self.axes.iter().enumerate().rev() {
            at[a] = rest % axis.values.len();
            rest /= axis.values.len();
        }
        at
    }

    /// The axes' values at `cell`, in axis order.
    pub fn values(&self, cell: usize) -> Vec<&Value> {
        self.coordinates(cell)
            .into_iter()
            .zip(&self.axes)
            .map(|(i, a)| &a.values[i])
            .collect()
    }

    /// The spec of `cell`: the base with each axis's value set. A wrong
    /// one is refused naming the cell, its values and the spec's field.
    pub fn spec(&self, cell: usize) -> Result<Spec, InputError> {
        let mut value = self.base.clone();
        for (axis, v) in self.axes.iter().zip(self.values(cell)) {
            set(&mut value, &axis.path, v.clone())
                .map_err(|why| InputError::new(format!("axes: {}", axis.field), why))?;
        }
        Spec::from_value(value).map_err(|e| {
            InputError::new(
                format!("cell {cell} ({}): {}", self.describe(cell), e.location),
                e.problem,
            )
        })
    }

    /// `field=value` for each axis at `cell`, for messages.
    pub fn describe(&self, cell: usize) -> String {
        self.axes
            .iter()
            .zip(self.values(cell))
            .map(|(a, v)| format!("{}={}", a.field, cell_text(v)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The grid as one line of JSON: what a sweep's directory records, so
    /// that a shard started on another grid is refused.
    pub fn canonical(&self) -> String {
        let axes: Vec<Value> = self
            .axes
            .iter()
            .map(|a| json!({"field": a.field, "values": a.values}))
            .collect();
        json!({"base": self.base, "axes": axes}).to_string()
    }
}

/// An axis's value as a summary row shows it: a string as is, anything
/// else as compact JSON (`[16,16]`, `0.01`).
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn axis(i: usize, value: Value) -> Result<Axis, InputError> {
    let at = |field: &str| format!("axes[{i}].{field}");
    let Value::Object(mut a) = value else {
        return Err(InputError::new(
            format!("axes[{i}]"),
            "found no object, allowed: {field, values}",
        ));
    };
    if let Some(key) = a
        .keys()
        .find(|k| !["field", "values"].contains(&k.as_str()))
    {
        return Err(InputError::new(
            at(&shown(key)),
            "unknown field of an axis, allowed: `field` and `values`",
        ));
    }
    let Some(Value::String(field)) = a.remove("field") else {
        return Err(InputError::new(
            at("field"),
            "missing or not a string; allowed: a field path such as `model.hidden` or `flow.lr`",
        ));
    };
    let path = parse_path(&field).map_err(|why| InputError::new(at("field"), why))?;
    let values = match a.remove("values") {
        Some(Value::Array(v)) if !v.is_empty() => v,
        _ => {
            return Err(InputError::new(
                at("values"),
                "missing or empty; allowed: a non-empty list of the field's values",
            ));
        }
    };
    Ok(Axis {
        field,
        path,
        values,
    })
}

/// `a.b[2].c` as keys; a segment is a name followed by any `[index]`.
fn parse_path(field: &str) -> Result<Vec<Key>, String> {
    let wrong = || {
        format!(
            "found `{}`, allowed: field names joined by `.`, each optionally followed by \
             `[index]` (e.g. `model.layers[0].channels`)",
            shown(field)
        )
    };
    let mut keys = Vec::new();
    for segment in field.split('.') {
        let (name, mut rest) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(wrong());
        }
        keys.push(Key::Field(name.to_owned()));
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']').ok_or_else(wrong)?;
            keys.push(Key::Index(inner[..close].parse().map_err(|_| wrong())?));
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return Err(wrong());
        }
    }
    Ok(keys)
}

/// Sets the field at `path` in `root`: a missing field of an object is
/// added (objects on the way too), an array's element must exist.
fn set(root: &mut Value, path: &[Key], value: Value) -> Result<(), String> {
    let Some((key, rest)) = path.split_first() else {
        *root = value;
        return Ok(());
    };
    let next = match key {
        Key::Field(name) => {
            if root.is_null() {
                *root = Value::Object(Map::new());
            }
            let Value::Object(map) = root else {
                return Err(format!("the base has no object where `{name}` is set"));
            };
            map.entry(name.clone()).or_insert(Value::Null)
        }
        Key::Index(i) => {
            let Value::Array(items) = root else {
                return Err(format!("the base has no list where `[{i}]` is set"));
            };
            let len = items.len();
            items
                .get_mut(*i)
                .ok_or_else(|| format!("the base's list has {len} entries, no [{i}]"))?
        }
    };
    set(next, rest, value)
}
