//! From text to a [`Spec`]: syntax, then shape, each error reported once with
//! the field's dotted path (`model.hidden[1]`), what was found and what is
//! allowed.
//!
//! The text is first read into a `serde_json::Value` (TOML too), refusing
//! duplicate keys and non-finite numbers with their line and column. Then the
//! tag of each internally tagged object (`data.source`, `model.arch`,
//! `loss.kind`) is checked and moved outside (`{"mlp": {...}}`), and the
//! externally tagged twins of the spec types are read through
//! serde_path_to_error, which follows paths into them; `message` rewords
//! serde's errors.
use super::message::{allowed_values, describe, list, unknown};
use super::{DataSpec, DataSpecTwin, LayerSpec, LayerSpecTwin, ModelSpec, ModelSpecTwin};
use super::{FlowSpec, InitSpec, Reduction, Spec};
use crate::error::InputError;
use crate::loss::Loss;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;

/// The syntax of a spec file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Toml,
}

impl Format {
    /// TOML for a `.toml` extension, else JSON.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Json,
        }
    }
}

impl Spec {
    /// Reads, fills the defaults of and validates a spec. A syntax error's
    /// location is `line L, column C`; any other names the field.
    pub fn parse(text: &str, format: Format) -> Result<Spec, InputError> {
        read(text, format, None)
    }

    /// [`Spec::parse`] on a file, TOML if its extension is `.toml`, else JSON.
    /// A syntax error's location is `path:line:column`.
    pub fn from_path(path: &Path) -> Result<Spec, InputError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(
                path.display().to_string(),
                format!("cannot read the spec: {e}"),
            )
        })?;
        read(&text, Format::of_path(path), Some(path))
    }

    /// [`Spec::parse`] of a spec already read into a JSON value (a sweep's
    /// cell: its grid's base spec with the axes' values set).
    pub fn from_value(value: Value) -> Result<Spec, InputError> {
        shape(value)
    }
}

/// The text of a JSON or TOML file as a JSON value, with the syntax checks
/// of a spec (duplicate keys and non-finite numbers refused with their
/// line and column; `origin` names the file in the location).
pub fn parse_value(text: &str, format: Format, origin: Option<&Path>) -> Result<Value, InputError> {
    syntax(text, format, origin)
}

fn read(text: &str, format: Format, origin: Option<&Path>) -> Result<Spec, InputError> {
    shape(syntax(text, format, origin)?)
}

/// The spec of a value: its tags, shape, defaults and ranges.
fn shape(mut value: Value) -> Result<Spec, InputError> {
    untag(&mut value)?;
    check_layers(&value)?;
    let spec = serde_path_to_error::deserialize::<_, Twin>(value)
        .map_err(super::message::shape_error)?
        .0
        .with_defaults();
    spec.validate()?;
    Ok(spec)
}

/// The objects whose variant is named by a field inside them.
pub(super) const TAGGED: [(&str, &str); 3] =
    [("data", "source"), ("model", "arch"), ("loss", "kind")];

/// The spec, with its tagged fields read through their externally tagged twins.
#[derive(Deserialize)]
#[serde(remote = "Spec", deny_unknown_fields)]
#[allow(dead_code)]
struct SpecTwin {
    #[serde(default)]
    seed: u64,
    #[serde(with = "DataSpecTwin")]
    data: DataSpec,
    #[serde(with = "ModelSpecTwin")]
    model: ModelSpec,
    #[serde(default)]
    init: Option<InitSpec>,
    #[serde(with = "LossTwin")]
    loss: Loss,
    #[serde(default)]
    reduction: Reduction,
    flow: FlowSpec,
}

#[derive(Deserialize)]
struct Twin(#[serde(with = "SpecTwin")] Spec);

/// `Loss` (in `crate::loss`) externally tagged, every variant with braces so
/// that `{"squared": {}}` reads and `{"squared": {"delta": 1}}` is an unknown
/// field. Kept equal to `Loss` by the round-trip test over every kind.
#[derive(Deserialize)]
#[serde(remote = "Loss", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
pub(super) enum LossTwin {
    Squared {},
    Logistic {},
    Bce {},
    Exponential {},
    Huber {
        #[serde(default = "super::one")]
        delta: f64,
    },
    LogCosh {},
    Cauchy {
        #[serde(default = "super::one")]
        c: f64,
    },
    Absolute {},
    Hinge {},
    SquaredHinge {},
    CrossEntropy {},
}

// ---------------------------------------------------------------- syntax

/// The document as a JSON value, or a syntax error with line and column.
fn syntax(text: &str, format: Format, origin: Option<&Path>) -> Result<Value, InputError> {
    match format {
        Format::Json => serde_json::from_str::<Strict>(text)
            .map(|s| s.0)
            .map_err(|e| {
                let position = format!(" at line {} column {}", e.line(), e.column());
                let message = e.to_string();
                let message = message.strip_suffix(&position).unwrap_or(&message);
                syntax_error(
                    origin,
                    e.line(),
                    e.column(),
                    &format!("invalid JSON: {message}"),
                )
            }),
        Format::Toml => toml::from_str::<Strict>(text).map(|s| s.0).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start).min(text.len());
            let before = &text[..text.floor_char_boundary(offset)];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            syntax_error(
                origin,
                line,
                column,
                &format!("invalid TOML: {}", e.message().trim_end()),
            )
        }),
    }
}

fn syntax_error(origin: Option<&Path>, line: usize, column: usize, message: &str) -> InputError {
    let location = match origin {
        Some(path) => format!("{}:{line}:{column}", path.display()),
        None => format!("line {line}, column {column}"),
    };
    InputError::new(location, message)
}

/// A JSON value read strictly: a key given twice or a non-finite number
/// (TOML's `inf`, `nan`) is an error, reported where it occurs.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

/// The key under which the toml crate hands a date-time to a visitor.
const TOML_DATETIME: &str = "$__toml_private_datetime";

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, string, boolean, array or object")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("found {v:?}, allowed: finite numbers only")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|s| s.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == TOML_DATETIME {
                return Err(de::Error::custom(
                    "found a date-time, allowed: numbers, strings, booleans, arrays and tables",
                ));
            }
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("the key `{key}` is given twice")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

// ---------------------------------------------------------------- tags

#[derive(Deserialize)]
#[allow(dead_code)] // read only for its errors
struct LayerTwin(#[serde(with = "LayerSpecTwin")] LayerSpec);

/// Reads each layer of a `layers` model on its own through its externally
/// tagged twin, so that an error inside one names its field
/// (`model.layers[0].kernel`); `ModelSpec` reads the list with serde's
/// internally tagged enum, which loses the path inside a layer. A layer
/// whose `kind` is missing or unknown is left to that read, which names it.
fn check_layers(root: &Value) -> Result<(), InputError> {
    let Some(Value::Array(layers)) = root.pointer("/model/layers/layers") else {
        return Ok(());
    };
    let names = super::message::layer_kinds();
    for (index, layer) in layers.iter().enumerate() {
        let Value::Object(fields) = layer else {
            continue;
        };
        let Some(Value::String(kind)) = fields.get("kind") else {
            continue;
        };
        if !names.contains(&kind.as_str()) {
            continue;
        }
        let mut rest = fields.clone();
        rest.remove("kind");
        let tagged = Value::Object(Map::from_iter([(kind.clone(), Value::Object(rest))]));
        serde_path_to_error::deserialize::<_, LayerTwin>(tagged)
            .map_err(|e| super::message::shape_error_at(&format!("model.layers[{index}]"), e))?;
    }
    Ok(())
}

/// Checks the tag of each tagged object and moves it outside:
/// `{"arch": "mlp", "hidden": [4]}` becomes `{"mlp": {"hidden": [4]}}`.
fn untag(root: &mut Value) -> Result<(), InputError> {
    let Value::Object(fields) = root else {
        return Err(InputError::new(
            "spec",
            format!(
                "found {}, expected an object (a table) of fields",
                describe(root)
            ),
        ));
    };
    for (field, tag) in TAGGED {
        let Some(value) = fields.get_mut(field) else {
            continue; // reported as a missing field by serde
        };
        let names = allowed_values(field).unwrap_or(&[]);
        let Value::Object(inner) = value else {
            return Err(InputError::new(
                field,
                format!(
                    "found {}, expected an object with `{tag}`: one of {}",
                    describe(value),
                    list(names)
                ),
            ));
        };
        let location = format!("{field}.{tag}");
        let variant = match inner.remove(tag) {
            Some(Value::String(name)) if names.contains(&name.as_str()) => name,
            Some(Value::String(name)) => {
                return Err(unknown(location, "value", "", &name, names));
            }
            Some(other) => {
                return Err(InputError::new(
                    location,
                    format!(
                        "found {}, expected one of {}",
                        describe(&other),
                        list(names)
                    ),
                ));
            }
            None => {
                return Err(InputError::new(
                    location,
                    format!("missing required field `{tag}`; allowed: {}", list(names)),
                ));
            }
        };
        let rest = std::mem::take(inner);
        *value = Value::Object(Map::from_iter([(variant, Value::Object(rest))]));
    }
    Ok(())
}
