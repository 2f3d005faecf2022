//! Large arrays out of the JSON report (SPEC §12): `--arrays npz`.
//!
//! Every top-level field of the report that is a rectangular array of
//! numbers (nested to any depth, `null` allowed) with more than
//! [`MAX_INLINE`] numbers goes to `REPORT.npz` (the report's path with its
//! extension replaced), one member per field, named like the field, in
//! numpy's `.npy` format: little-endian float64 (int64 when every number of
//! the field is an integer, as `batches` will be), C order, the shape of the
//! nested JSON arrays (`path_kernel`: M x N). In the JSON the field becomes
//! `{"npz": "NAME"}`. A `null` (an undefined entry of `a`) becomes NaN in the
//! npz; no other entry of a report is NaN, so NaN there means exactly null.
//! Fields inside `spec` are never moved (the spec is an object, not an
//! array), nor any array that is not rectangular or holds a non-number.
//!
//! The transformation works on the report's serialized form, field by
//! field (each top-level field as a `serde_json::Value`, in the order the
//! report writes them), so it applies to whatever arrays the report gains.
//! The `.npy` headers are written by the `npyz` crate and the zip by the
//! `zip` crate (members stored uncompressed, as `numpy.savez` does, with a
//! fixed timestamp so that the same run gives the same bytes).
//!
//! Both files are written whole or not at all: the npz first, then the
//! JSON, each through a temporary file renamed into place; if the JSON
//! cannot be written the npz just written is removed.
use super::{Report, write_atomic, write_atomic_with};
use crate::error::InputError;
use serde::Serialize;
use serde::ser::{self, Impossible, SerializeMap, SerializeStruct};
use serde_json::{Value, json};
use std::fmt::Display;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Most numbers an array field may have and stay in the JSON report.
pub const MAX_INLINE: usize = 4096;

/// Where a report's large arrays go (`--arrays`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrays {
    /// Everything in the JSON report.
    #[default]
    Json,
    /// Arrays of more than 4096 numbers in REPORT.npz beside it.
    Npz,
}

/// One array taken out of the report.
#[derive(Clone, Debug, PartialEq)]
pub struct NpzArray {
    /// The field's name, the member's name without `.npy`.
    pub name: String,
    /// The nested arrays' lengths, outermost first.
    pub shape: Vec<u64>,
    /// The numbers in C order (the last index fastest).
    pub data: NpzData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NpzData {
    F64(Vec<f64>),
    I64(Vec<i64>),
}

/// The npz file of the report at `path`: its extension replaced by `npz`.
pub fn npz_path(path: &Path) -> PathBuf {
    path.with_extension("npz")
}

impl Report {
    /// Writes the report to `path`, and with [`Arrays::Npz`] its large
    /// arrays to [`npz_path`] (module doc). A report with no large array
    /// writes no npz, and the same JSON as [`Arrays::Json`].
    pub fn write_with_arrays(&self, path: &Path, arrays: Arrays) -> Result<(), InputError> {
        write_with_arrays(self, path, arrays)
    }
}

/// [`Report::write_with_arrays`] for any report-like object (the outputs
/// of `kernel` and `learn` too).
pub fn write_with_arrays<T: Serialize>(
    report: &T,
    path: &Path,
    arrays: Arrays,
) -> Result<(), InputError> {
    if arrays == Arrays::Json {
        let text = serde_json::to_string_pretty(report).expect("a report always serialises");
        return write_atomic(path, &format!("{text}\n"), "the report");
    }
    let (json, moved) = split(report).expect("a report always serialises");
    let text = format!("{json}\n");
    if moved.is_empty() {
        return write_atomic(path, &text, "the report");
    }
    let npz = npz_path(path);
    write_npz(&npz, &moved)?;
    write_atomic(path, &text, "the report").inspect_err(|_| {
        let _ = std::fs::remove_file(&npz);
    })
}

/// The pretty JSON text of `report` (an object: a struct, or a map with
/// string keys), byte for byte as `serde_json::to_string_pretty` writes it,
/// except that each top-level field that is a rectangular numeric array of
/// more than [`MAX_INLINE`] numbers reads `{"npz": NAME}`; and those arrays,
/// in field order.
///
/// Each field is converted to a `serde_json::Value` to find its shape, but
/// the text of a field that stays is written from the field itself:
/// serde_json's `Value` keeps object keys sorted, and a report reads best in
/// the order of SPEC §5 (nested objects such as `conditions` included).
pub fn split<T: Serialize + ?Sized>(
    report: &T,
) -> Result<(String, Vec<NpzArray>), serde_json::Error> {
    let fields = report.serialize(TopLevel)?;
    let mut text = String::from("{");
    let mut moved = Vec::new();
    for (i, (name, field)) in fields.into_iter().enumerate() {
        let value = match field {
            Field::Text(value) => value,
            Field::Array(shape, data) => {
                let value = serde_json::to_string_pretty(&json!({ "npz": name }))?;
                moved.push(NpzArray {
                    name: name.clone(),
                    shape,
                    data,
                });
                value
            }
        };
        if i > 0 {
            text.push(',');
        }
        // One level deeper than the field's own pretty text: a JSON string
        // holds no raw newline, so every newline is the printer's.
        text.push_str("\n  ");
        text.push_str(&serde_json::to_string(&name)?);
        text.push_str(": ");
        text.push_str(&value.replace('\n', "\n  "));
    }
    text.push_str(if text.len() > 1 { "\n}" } else { "}" });
    Ok((text, moved))
}

/// A rectangular numeric array of more than [`MAX_INLINE`] numbers: its
/// shape and numbers; else None.
pub fn large_array(value: &Value) -> Option<(Vec<u64>, NpzData)> {
    let (shape, data) = numeric_array(value)?;
    let count = match &data {
        NpzData::F64(v) => v.len(),
        NpzData::I64(v) => v.len(),
    };
    (count > MAX_INLINE).then_some((shape, data))
}

/// The shape and numbers of a rectangular array of numbers (nested to any
/// depth), or None for anything else. A null stands for one number or for
/// a whole sub-array (SPEC §8's null C-vector of `a`) and becomes NaN in
/// each of its places. Integers only give int64; any float or null gives
/// float64. Where only nulls fill the deepest levels their shape cannot be
/// known, and they count as single numbers.
pub fn numeric_array(value: &Value) -> Option<(Vec<u64>, NpzData)> {
    if !value.is_array() {
        return None;
    }
    let shape = shape_of(value)?.dims;
    let mut leaves = Vec::new();
    flatten(value, &shape, &mut leaves);
    let integers: Option<Vec<i64>> = leaves
        .iter()
        .map(|n| n.filter(|n| !n.is_f64()).and_then(|n| n.as_i64()))
        .collect();
    if let Some(ints) = integers {
        return Some((shape, NpzData::I64(ints)));
    }
    let floats = leaves
        .iter()
        .map(|n| n.map_or(Some(f64::NAN), |n| n.as_f64()))
        .collect::<Option<Vec<f64>>>()?;
    Some((shape, NpzData::F64(floats)))
}

/// What is known of a value's shape: `dims`, and when `open`, possibly more
/// dimensions after them (where only nulls were seen).
struct Shape {
    dims: Vec<u64>,
    open: bool,
}

/// The shape of a number (`[]`), a null (`[]`, open) or an array (its
/// length, then its items' common shape), or None when two items' shapes
/// cannot be the same or a leaf is not a number.
fn shape_of(value: &Value) -> Option<Shape> {
    match value {
        Value::Number(_) => Some(Shape {
            dims: Vec::new(),
            open: false,
        }),
        Value::Null => Some(Shape {
            dims: Vec::new(),
            open: true,
        }),
        Value::Array(items) => {
            let mut inner = Shape {
                dims: Vec::new(),
                open: true,
            };
            for item in items {
                inner = merge(inner, shape_of(item)?)?;
            }
            let mut dims = vec![items.len() as u64];
            dims.extend(inner.dims);
            Some(Shape {
                dims,
                open: inner.open,
            })
        }
        _ => None,
    }
}

/// The shape both `a` and `b` may be, if any: equal when both are known,
/// else the one that extends the other (of two as long, the known one).
fn merge(a: Shape, b: Shape) -> Option<Shape> {
    let a_first = a.dims.len() > b.dims.len() || a.dims.len() == b.dims.len() && !a.open;
    let (long, short) = if a_first { (a, b) } else { (b, a) };
    let fits = long.dims.starts_with(&short.dims)
        && (short.open || long.dims.len() == short.dims.len() && !long.open);
    fits.then_some(long)
}

/// Pushes the numbers of `value`, an array of `shape` (as [`shape_of`]
/// found it), in C order; None for each place a null fills.
fn flatten<'a>(value: &'a Value, shape: &[u64], out: &mut Vec<Option<&'a serde_json::Number>>) {
    match value {
        Value::Array(items) => {
            for item in items {
                flatten(item, &shape[1..], out);
            }
        }
        Value::Number(n) => out.push(Some(n)),
        _ => {
            let count = shape.iter().product::<u64>() as usize;
            out.extend(std::iter::repeat_n(None, count));
        }
    }
}

/// Writes `arrays` as an npz file at `path`, atomically.
pub fn write_npz(path: &Path, arrays: &[NpzArray]) -> Result<(), InputError> {
    use zip::write::SimpleFileOptions;
    write_atomic_with(path, "the npz arrays", |file| {
        let mut zip = zip::ZipWriter::new(BufWriter::new(file));
        for array in arrays {
            let count: u64 = array.shape.iter().product();
            let options = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .last_modified_time(zip::DateTime::default())
                .unix_permissions(0o644)
                // zip64 past 4 GiB (8 bytes a number, and the header).
                .large_file(count.saturating_mul(8) >= u64::from(u32::MAX) - 65536);
            zip.start_file(npyz::npz::file_name_from_array_name(&array.name), options)?;
            match &array.data {
                NpzData::F64(data) => write_member(&mut zip, &array.shape, data)?,
                NpzData::I64(data) => write_member(&mut zip, &array.shape, data)?,
            }
        }
        zip.finish()?.flush()
    })
}

// ---------------------------------------------------------------- fields

/// A top-level field: its pretty JSON text, or the array that moves.
enum Field {
    Text(String),
    Array(Vec<u64>, NpzData),
}

/// The serializer that collects a report's top-level fields in order.
struct TopLevel;

/// Collects the fields for [`TopLevel`].
struct Collect {
    fields: Vec<(String, Field)>,
    key: Option<String>,
}

impl Collect {
    fn push<T: Serialize + ?Sized>(
        &mut self,
        key: String,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let field = match large_array(&serde_json::to_value(value)?) {
            Some((shape, data)) => Field::Array(shape, data),
            None => Field::Text(serde_json::to_string_pretty(value)?),
        };
        self.fields.push((key, field));
        Ok(())
    }
}

fn not_an_object<T>() -> Result<T, serde_json::Error> {
    Err(ser::Error::custom("the report is not an object"))
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ret, serde_json::Error> {
            not_an_object()
        })*
    };
}

impl ser::Serializer for TopLevel {
    type Ok = Vec<(String, Field)>;
    type Error = serde_json::Error;
    type SerializeSeq = Impossible<Self::Ok, Self::Error>;
    type SerializeTuple = Impossible<Self::Ok, Self::Error>;
    type SerializeTupleStruct = Impossible<Self::Ok, Self::Error>;
    type SerializeTupleVariant = Impossible<Self::Ok, Self::Error>;
    type SerializeMap = Collect;
    type SerializeStruct = Collect;
    type SerializeStructVariant = Impossible<Self::Ok, Self::Error>;

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Collect, Self::Error> {
        Ok(Collect {
            fields: Vec::with_capacity(len),
            key: None,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Collect, Self::Error> {
        Ok(Collect {
            fields: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        not_an_object()
    }
    fn collect_str<T: Display + ?Sized>(self, _: &T) -> Result<Self::Ok, Self::Error> {
        not_an_object()
    }
    refuse! {
        serialize_bool(bool) -> Self::Ok;
        serialize_i8(i8) -> Self::Ok;
        serialize_i16(i16) -> Self::Ok;
        serialize_i32(i32) -> Self::Ok;
        serialize_i64(i64) -> Self::Ok;
        serialize_u8(u8) -> Self::Ok;
        serialize_u16(u16) -> Self::Ok;
        serialize_u32(u32) -> Self::Ok;
        serialize_u64(u64) -> Self::Ok;
        serialize_f32(f32) -> Self::Ok;
        serialize_f64(f64) -> Self::Ok;
        serialize_char(char) -> Self::Ok;
        serialize_str(&str) -> Self::Ok;
        serialize_bytes(&[u8]) -> Self::Ok;
        serialize_none() -> Self::Ok;
        serialize_unit() -> Self::Ok;
        serialize_unit_struct(&'static str) -> Self::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> Self::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

impl SerializeStruct for Collect {
    type Ok = Vec<(String, Field)>;
    type Error = serde_json::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        self.push(key.to_owned(), value)
    }
    fn end(self) -> Result<Self::Ok, Self::Error> {
        Ok(self.fields)
    }
}

impl SerializeMap for Collect {
    type Ok = Vec<(String, Field)>;
    type Error = serde_json::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Self::Error> {
        match serde_json::to_value(key)? {
            Value::String(key) => {
                self.key = Some(key);
                Ok(())
            }
            _ => Err(ser::Error::custom("a report's keys are strings")),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        let key = self.key.take().unwrap_or_default();
        self.push(key, value)
    }
    fn end(self) -> Result<Self::Ok, Self::Error> {
        Ok(self.fields)
    }
}

/// One .npy member of `shape` holding `data`, in numpy's default dtype for T.
fn write_member<T, W>(zip: &mut W, shape: &[u64], data: &[T]) -> std::io::Result<()>
where
    T: npyz::AutoSerialize + Copy,
    W: std::io::Write,
{
    use npyz::WriterBuilder;
    let mut writer = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(zip)
        .begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()
}
