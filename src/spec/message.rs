//! Messages for a spec that does not fit the types: serde's errors reworded
//! for a user who has not read the Rust types, with the allowed names read
//! from the derived code and the nearest one suggested.
use super::read::{LossTwin, TAGGED};
use super::{DataSpecTwin, Method, ModelSpecTwin, Parameterization, Reduction, SyntheticFunction};
use super::{DatasetName, Labels};
use crate::activation::Activation;
use crate::error::{InputError, shown};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;
use std::fmt;

/// The layer kinds of `model.layers` (SPEC §10).
pub(super) fn layer_kinds() -> &'static [&'static str] {
    variant_names(super::LayerSpecTwin::deserialize)
}

/// The names a field of enum type accepts, read from the derived code.
pub(super) fn allowed_values(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "data" | "source" => variant_names(DataSpecTwin::deserialize),
        "model" | "arch" => variant_names(ModelSpecTwin::deserialize),
        "loss" | "kind" => variant_names(LossTwin::deserialize),
        "function" => variant_names(SyntheticFunction::deserialize),
        "activation" => variant_names(Activation::deserialize),
        "method" => variant_names(Method::deserialize),
        "reduction" => variant_names(Reduction::deserialize),
        "parameterization" => variant_names(Parameterization::deserialize),
        "name" => variant_names(DatasetName::deserialize),
        "labels" => variant_names(Labels::deserialize),
        _ => return None,
    })
}

/// The variant names a derived `Deserialize` of an externally tagged enum
/// passes to `deserialize_enum`.
fn variant_names<T>(deserialize: fn(Probe) -> Result<T, Probed>) -> &'static [&'static str] {
    match deserialize(Probe) {
        Err(Probed(names)) => names,
        Ok(_) => &[],
    }
}

struct Probe;

#[derive(Debug)]
struct Probed(&'static [&'static str]);

impl fmt::Display for Probed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "variants {:?}", self.0)
    }
}
impl std::error::Error for Probed {}
impl de::Error for Probed {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Probed(&[])
    }
}

impl<'de> Deserializer<'de> for Probe {
    type Error = Probed;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed(&[]))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        Err(Probed(variants))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// serde's error, reworded, at the dotted path it occurred.
pub(super) fn shape_error(error: serde_path_to_error::Error<serde_json::Error>) -> InputError {
    shape_error_at("", error)
}

/// [`shape_error`] for a value read on its own at `prefix` (a layer of
/// `model.layers`).
pub(super) fn shape_error_at(
    prefix: &str,
    error: serde_path_to_error::Error<serde_json::Error>,
) -> InputError {
    use serde_path_to_error::Segment;
    let mut path = prefix.to_owned();
    let mut variant: Option<(&str, String)> = None; // ("arch", "mlp") in a tagged object
    for segment in error.path() {
        match segment {
            Segment::Seq { index } => {
                // Inside a list (`model.layers[2]`) the tagged object's
                // variant no longer describes the error's object.
                variant = None;
                path.push_str(&format!("[{index}]"));
            }
            Segment::Map { key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&shown(key));
            }
            Segment::Enum { variant: name } => {
                let tag = TAGGED
                    .iter()
                    .find(|(field, _)| *field == path)
                    .map(|t| t.1)
                    .or(is_layer(&path).then_some("kind"));
                variant = tag.map(|tag| (tag, name.clone()));
            }
            Segment::Unknown => path.push_str(".?"),
        }
    }
    // A layer of `model.layers` is tagged by `kind` (SPEC §10).
    let layer = is_layer(&path);
    let tag = variant
        .as_ref()
        .map(|(tag, _)| *tag)
        .or(layer.then_some("kind"));
    let context = variant
        .map(|(tag, name)| format!(" (for {tag} `{name}`)"))
        .unwrap_or_default();
    let at = |name: &str| match path.as_str() {
        "" => name.to_owned(),
        p => format!("{p}.{name}"),
    };
    let message = error.inner().to_string();
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // The path already ends at the unknown key; a tagged object's tag
        // was taken out by `untag` but is allowed too.
        let (found, names) = found_and_allowed(rest);
        let allowed: Vec<&str> = tag.into_iter().chain(names).collect();
        return unknown(path, "field", &context, found, &allowed);
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (found, names) = found_and_allowed(rest);
        return unknown(path, "value", "", found, &names);
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let name = quoted(rest).first().copied().unwrap_or_default();
        return InputError::new(
            at(name),
            format!("missing required field `{name}`{context}"),
        );
    }
    let location = if path.is_empty() {
        "spec".to_owned()
    } else {
        path
    };
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|r| r.rsplit_once(", expected "))
        {
            let last = location.rsplit('.').next().unwrap_or_default();
            let expected = match allowed_values(last) {
                Some(names) if expected.contains("string") => format!("one of {}", list(names)),
                _ => expected_text(expected),
            };
            return InputError::new(
                location,
                format!("found {}, expected {expected}", found_text(found)),
            );
        }
    }
    InputError::new(location, message)
}

/// True at one layer of `model.layers` (`model.layers[2]`).
fn is_layer(path: &str) -> bool {
    path.starts_with("model.layers[") && path.ends_with(']')
}

/// An unknown field or value: the nearest allowed name, if any is close, and
/// the list of allowed names.
pub(super) fn unknown(
    location: String,
    what: &str,
    context: &str,
    found: &str,
    allowed: &[&str],
) -> InputError {
    let lower = found.to_lowercase();
    let nearest = allowed
        .iter()
        .map(|name| (strsim::normalized_damerau_levenshtein(&lower, name), *name))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let mut problem = format!("unknown {what} `{}`{context}.", shown(found));
    if let Some((_, name)) = nearest {
        problem.push_str(&format!(" Did you mean `{name}`?"));
    }
    problem.push_str(&format!(" Allowed: {}", list(allowed)));
    InputError::new(location, problem)
}

/// The user's name and the allowed names of serde's "`found`, expected
/// one of `a`, `b`" (or "expected `a`", or "there are no fields"); the
/// found name may hold backquotes itself, the allowed ones never do.
fn found_and_allowed(rest: &str) -> (&str, Vec<&str>) {
    let (found, allowed) = match rest.rsplit_once("`, expected ") {
        Some((found, allowed)) => (found, quoted(allowed)),
        None => (rest.rsplit_once("`, ").map_or(rest, |r| r.0), Vec::new()),
    };
    (found.strip_prefix('`').unwrap_or(found), allowed)
}

/// The backquoted names in a serde message, in order.
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

pub(super) fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// A JSON value in a message: scalars as written, containers by kind.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
        scalar => scalar.to_string(),
    }
}

/// serde's `Unexpected` (`integer \`3\``) as the user wrote it (`3`).
fn found_text(found: &str) -> String {
    let scalar = ["boolean ", "integer ", "floating point "]
        .iter()
        .find_map(|kind| found.strip_prefix(kind));
    match (scalar, found) {
        (Some(value), _) => value.trim_matches('`').to_owned(),
        (None, "sequence") => "an array".to_owned(),
        (None, "map") => "an object".to_owned(),
        (None, "unit value") => "null".to_owned(),
        (None, other) => other.strip_prefix("string ").unwrap_or(other).to_owned(),
    }
}

/// serde's `expecting` text (`usize`) in spec terms.
fn expected_text(expected: &str) -> String {
    match expected {
        "usize" | "u64" | "u32" => "a whole number >= 0".to_owned(),
        "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array".to_owned(),
        other if other.starts_with("struct ") => "an object (a table)".to_owned(),
        other => other.to_owned(),
    }
}
