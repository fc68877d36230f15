//! Typed views of Arrow columns: numbers as f64, strings, and hashable keys.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::is_string;

/// A hashable cell value: set members, class labels, unique keys, categories.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Bool(bool),
    Int(i64),
    /// f64 bits, with -0.0 folded into 0.0 (NaN is never a key: it counts as missing).
    Float(u64),
    Str(Box<str>),
}

impl Key {
    pub(crate) fn float(f: f64) -> Option<Self> {
        if f.is_nan() {
            None
        } else if f == 0.0 {
            Some(Self::Float(0f64.to_bits()))
        } else {
            Some(Self::Float(f.to_bits()))
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::Float(bits) => num_json(f64::from_bits(*bits)),
            Self::Str(s) => Value::String(s.to_string()),
        }
    }

    /// A display form for class names and categories.
    pub(crate) fn label(&self) -> String {
        match self {
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(bits) => f64::from_bits(*bits).to_string(),
            Self::Str(s) => s.to_string(),
        }
    }
}

/// A JSON number for f64 (null for NaN and infinities, which JSON cannot hold... as strings).
pub(crate) fn num_json(f: f64) -> Value {
    if f.is_finite() {
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            Value::from(f as i64)
        } else {
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
    } else if f.is_nan() {
        Value::String("NaN".into())
    } else if f > 0.0 {
        Value::String("inf".into())
    } else {
        Value::String("-inf".into())
    }
}

fn cast_to(arr: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if arr.data_type() == to {
        return Ok(Arc::clone(arr));
    }
    cast(arr, to).map_err(|source| Error::Arrow {
        context: format!("casting to {to}"),
        source,
    })
}

/// Whether a column can be read as numbers.
pub(crate) fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
}

/// Whether a column can be read as timestamps.
pub(crate) fn is_temporal(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    )
}

/// Whether a column can give keys (sets, uniqueness, classes, categories).
pub(crate) fn is_keyable(dt: &DataType) -> bool {
    dt.is_numeric() || is_string(dt) || is_temporal(dt) || matches!(dt, DataType::Boolean)
}

/// Numbers as f64 (integers beyond 2^53 lose precision).
pub(crate) fn f64_view(arr: &ArrayRef) -> Result<Float64Array> {
    Ok(cast_to(arr, &DataType::Float64)?
        .as_primitive::<arrow::datatypes::Float64Type>()
        .clone())
}

/// Strings (plain, large, view or dictionary-encoded) as a plain string array.
pub(crate) fn str_view(arr: &ArrayRef) -> Result<StringArray> {
    Ok(cast_to(arr, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// Timestamps and dates as microseconds since the Unix epoch.
pub(crate) fn micros_view(arr: &ArrayRef) -> Result<Int64Array> {
    let factor: i64 = match arr.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => -1_000,
        DataType::Date32 => 86_400_000_000,
        DataType::Date64 => 1_000,
        other => {
            return Err(Error::Arrow {
                context: "reading timestamps".into(),
                source: arrow::error::ArrowError::CastError(format!("{other} is not temporal")),
            });
        }
    };
    let raw: ArrayRef = match arr.data_type() {
        DataType::Date32 => cast_to(&cast_to(arr, &DataType::Int32)?, &DataType::Int64)?,
        _ => cast_to(arr, &DataType::Int64)?,
    };
    let ints = raw.as_primitive::<arrow::datatypes::Int64Type>();
    Ok(if factor > 0 {
        ints.unary(|v| v.saturating_mul(factor))
    } else {
        ints.unary(|v| v.div_euclid(-factor))
    })
}

/// A column read as keys.
pub(crate) enum KeyView {
    Int(Int64Array),
    Float(Float64Array),
    Str(StringArray),
    Bool(BooleanArray),
}

impl KeyView {
    pub(crate) fn new(arr: &ArrayRef) -> Result<Self> {
        let dt = arr.data_type();
        Ok(if dt.is_integer() || is_temporal(dt) {
            let a = match dt {
                DataType::Date32 => cast_to(&cast_to(arr, &DataType::Int32)?, &DataType::Int64)?,
                _ => cast_to(arr, &DataType::Int64)?,
            };
            Self::Int(a.as_primitive::<arrow::datatypes::Int64Type>().clone())
        } else if dt.is_numeric() {
            Self::Float(f64_view(arr)?)
        } else if matches!(dt, DataType::Boolean) {
            Self::Bool(arr.as_boolean().clone())
        } else {
            Self::Str(str_view(arr)?)
        })
    }

    /// The key at row `i`, `None` when null (or NaN).
    #[inline]
    pub(crate) fn key(&self, i: usize) -> Option<Key> {
        match self {
            Self::Int(a) => a.is_valid(i).then(|| Key::Int(a.value(i))),
            Self::Float(a) => {
                if a.is_valid(i) {
                    Key::float(a.value(i))
                } else {
                    None
                }
            }
            Self::Str(a) => a.is_valid(i).then(|| Key::Str(a.value(i).into())),
            Self::Bool(a) => a.is_valid(i).then(|| Key::Bool(a.value(i))),
        }
    }
}

/// Up to three existing column names closest to `name` (edit distance), for error messages.
pub fn closest_names(name: &str, names: &[String]) -> Vec<String> {
    let lower = name.to_lowercase();
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .map(|n| (levenshtein(&lower, &n.to_lowercase()), n))
        .collect();
    scored.sort();
    let limit = name.chars().count().max(3);
    scored
        .into_iter()
        .filter(|(d, _)| *d <= limit)
        .take(3)
        .map(|(_, n)| n.clone())
        .collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_names_rank_by_edit_distance() {
        let names: Vec<String> = ["age", "agent", "plan", "score"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(closest_names("agee", &names), vec!["age", "agent", "plan"]);
        assert!(closest_names("zzzzzzzzzzzzzzzz", &["a".to_string()]).len() <= 1);
    }

    #[test]
    fn negative_zero_and_zero_are_one_key() {
        assert_eq!(Key::float(-0.0), Key::float(0.0));
        assert_eq!(Key::float(f64::NAN), None);
    }
}
