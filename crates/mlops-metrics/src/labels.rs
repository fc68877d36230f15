//! Class labels and their integer codes.
//!
//! Every label column is turned into `u32` codes into one sorted class list (scikit-learn's
//! `unique_labels`: the union of the columns, sorted), so the metric kernels count in flat arrays
//! and never hash or allocate per row. Coding happens batch by batch as the table is decoded
//! (`code_batch`, against the batch's own sorted labels); the crate's decoder then reconciles the
//! batches' label lists into the table's.

use std::collections::HashMap;
use std::fmt;

use arrow::array::{Array, AsArray, StringArray};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};

/// Integer label spans up to this size (or twice the batch's rows) are coded through a lookup
/// table instead of a sort and search.
const DENSE_SPAN: u64 = 1 << 12;

/// A class label or segment value: integers order numerically, strings lexicographically.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    /// An integer label (also booleans as 0/1 and whole-number floats).
    Int(i64),
    /// A string label.
    Str(String),
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

/// What kind of labels a column holds: integers (also booleans and whole-number floats) or
/// strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Integers.
    Int,
    /// Strings.
    Str,
}

/// The kind of labels a column of type `t` holds, or why it cannot hold labels.
pub(crate) fn kind_of(t: &DataType) -> Result<Kind, String> {
    match t {
        DataType::Boolean | DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            Ok(Kind::Int)
        }
        t if t.is_integer() => Ok(Kind::Int),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(Kind::Str),
        DataType::Dictionary(_, values) => kind_of(values),
        other => Err(format!(
            "type {other} cannot hold labels (use integers or strings)"
        )),
    }
}

/// One batch of a label column (without nulls), borrowed from Arrow's buffers where it can be.
#[derive(Debug, Clone)]
pub(crate) enum Batch {
    /// Integers.
    Int(ScalarBuffer<i64>),
    /// Strings.
    Str(StringArray),
    /// Dictionary-encoded strings: per row an index into `values`.
    Dict {
        /// Per row, the index of its value.
        keys: ScalarBuffer<i32>,
        /// The dictionary (may hold values no row uses, and repeats).
        values: StringArray,
    },
}

/// Converts a numeric Arrow array to `f64` values (borrowed when it already is `f64`).
pub(crate) fn f64_values(array: &dyn Array) -> Result<ScalarBuffer<f64>, String> {
    match array.data_type() {
        DataType::Float64 => Ok(array.as_primitive::<Float64Type>().values().clone()),
        t if t.is_numeric() || *t == DataType::Boolean => {
            let cast =
                arrow::compute::cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
            Ok(cast.as_primitive::<Float64Type>().values().clone())
        }
        other => Err(
            arrow::error::ArrowError::CastError(format!("type {other} is not numeric")).to_string(),
        ),
    }
}

/// Reads one batch of a label column: integers, booleans, whole-number floats, strings or
/// dictionary-encoded strings. The batch must have no nulls (the caller counts them first).
/// `Err(message)` says what is wrong, naming rows as `offset` + their index in the batch.
pub(crate) fn batch(array: &dyn Array, offset: usize) -> Result<Batch, String> {
    match array.data_type() {
        DataType::Int64 => Ok(Batch::Int(
            array.as_primitive::<Int64Type>().values().clone(),
        )),
        DataType::Boolean => Ok(Batch::Int(
            array.as_boolean().values().iter().map(i64::from).collect(),
        )),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let values = f64_values(array)?;
            let mut out = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                let row = offset + i;
                if v.is_nan() {
                    return Err(format!(
                        "row {row} is NaN; labels must be numbers or strings"
                    ));
                }
                if v.fract() != 0.0 || v.abs() > 9.0e15 {
                    return Err(format!(
                        "row {row} is {v}, not a whole number; use integer or string labels (or task = \"regression\")"
                    ));
                }
                out.push(*v as i64);
            }
            Ok(Batch::Int(out.into()))
        }
        t if t.is_integer() => {
            let cast = arrow::compute::cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
            Ok(Batch::Int(
                cast.as_primitive::<Int64Type>().values().clone(),
            ))
        }
        DataType::Utf8 => Ok(Batch::Str(array.as_string::<i32>().clone())),
        DataType::LargeUtf8 | DataType::Utf8View => {
            let cast = arrow::compute::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
            Ok(Batch::Str(cast.as_string::<i32>().clone()))
        }
        DataType::Dictionary(key, values) => match kind_of(values)? {
            Kind::Str => {
                let wanted =
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                let cast;
                let dict = if **key == DataType::Int32 && **values == DataType::Utf8 {
                    array.as_dictionary::<Int32Type>()
                } else {
                    cast = arrow::compute::cast(array, &wanted).map_err(|e| e.to_string())?;
                    cast.as_dictionary::<Int32Type>()
                };
                Ok(Batch::Dict {
                    keys: dict.keys().values().clone(),
                    values: dict.values().as_string::<i32>().clone(),
                })
            }
            Kind::Int => {
                let plain = arrow::compute::cast(array, values).map_err(|e| e.to_string())?;
                batch(plain.as_ref(), offset)
            }
        },
        other => Err(format!(
            "type {other} cannot hold labels (use integers or strings)"
        )),
    }
}

/// The sorted distinct labels of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Local {
    /// Integer labels.
    Int(Vec<i64>),
    /// String labels.
    Str(Vec<String>),
}

/// Codes the batches of the columns of one group (the same rows of each column) against the
/// sorted union of their values, writing one code per row to `out` (one slice per column, as
/// long as its batch). Returns that union.
///
/// Fails when the columns mix integer and string labels or a dictionary key is out of range.
pub(crate) fn code_batch(columns: &[Batch], out: &mut [&mut [u32]]) -> Result<Local, String> {
    if columns.iter().all(|c| matches!(c, Batch::Int(_))) {
        let ints: Vec<&[i64]> = columns
            .iter()
            .filter_map(|c| match c {
                Batch::Int(v) => Some(&v[..]),
                _ => None,
            })
            .collect();
        Ok(Local::Int(code_ints(&ints, out)))
    } else if columns.iter().any(|c| matches!(c, Batch::Int(_))) {
        Err("y_true and y_pred mix integer and string labels".to_owned())
    } else {
        code_strs(columns, out).map(Local::Str)
    }
}

fn code_ints(columns: &[&[i64]], out: &mut [&mut [u32]]) -> Vec<i64> {
    let (lo, hi) = columns.iter().fold((i64::MAX, i64::MIN), |acc, c| {
        c.iter().fold(acc, |(a, b), &x| (a.min(x), b.max(x)))
    });
    if lo > hi {
        return Vec::new();
    }
    let rows: usize = columns.iter().map(|c| c.len()).sum();
    let span = hi.abs_diff(lo);
    if span < DENSE_SPAN.max(2 * rows as u64) {
        // `x - lo` is at most `span`, so the wrapping difference is the true one.
        let mut lut = vec![u32::MAX; span as usize + 1];
        for c in columns {
            for &x in c.iter() {
                lut[x.wrapping_sub(lo) as u64 as usize] = 0;
            }
        }
        let mut classes = Vec::new();
        for (i, slot) in lut.iter_mut().enumerate() {
            if *slot == 0 {
                *slot = classes.len() as u32;
                classes.push(lo.wrapping_add(i as i64));
            }
        }
        for (c, o) in columns.iter().zip(out.iter_mut()) {
            for (x, o) in c.iter().zip(o.iter_mut()) {
                *o = lut[x.wrapping_sub(lo) as u64 as usize];
            }
        }
        return classes;
    }
    let mut values: Vec<i64> = columns.iter().flat_map(|c| c.iter().copied()).collect();
    values.sort_unstable();
    values.dedup();
    for (c, o) in columns.iter().zip(out.iter_mut()) {
        for (x, o) in c.iter().zip(o.iter_mut()) {
            *o = values.binary_search(x).unwrap_or(0) as u32;
        }
    }
    values
}

/// A batch-local dictionary of strings: a short linear list first (label and segment columns
/// usually have a handful of values), a hash map behind it.
#[derive(Default)]
struct Interner<'a> {
    names: Vec<&'a str>,
    index: HashMap<&'a str, u32>,
}

impl<'a> Interner<'a> {
    fn code(&mut self, v: &'a str) -> u32 {
        if let Some(c) = self.names.iter().take(16).position(|n| *n == v) {
            return c as u32;
        }
        *self.index.entry(v).or_insert_with(|| {
            self.names.push(v);
            (self.names.len() - 1) as u32
        })
    }
}

fn code_strs(columns: &[Batch], out: &mut [&mut [u32]]) -> Result<Vec<String>, String> {
    let mut interner = Interner::default();
    for (column, o) in columns.iter().zip(out.iter_mut()) {
        match column {
            Batch::Str(a) => {
                for (i, o) in o.iter_mut().enumerate().take(a.len()) {
                    *o = interner.code(a.value(i));
                }
            }
            Batch::Dict { keys, values } => {
                // Only the values some row uses are labels; repeated values share a code.
                let mut used = vec![false; values.len()];
                for &k in keys.iter() {
                    match usize::try_from(k).ok().and_then(|k| used.get_mut(k)) {
                        Some(u) => *u = true,
                        None => {
                            return Err(format!(
                                "dictionary key {k} is out of range ({} values)",
                                values.len()
                            ));
                        }
                    }
                }
                let lut: Vec<u32> = used
                    .iter()
                    .enumerate()
                    .map(|(j, &u)| if u { interner.code(values.value(j)) } else { 0 })
                    .collect();
                for (&k, o) in keys.iter().zip(o.iter_mut()) {
                    *o = lut[k as usize];
                }
            }
            Batch::Int(_) => {
                return Err("y_true and y_pred mix integer and string labels".to_owned());
            }
        }
    }
    let names = interner.names;
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_unstable_by_key(|&i| names[i as usize]);
    if order.iter().enumerate().any(|(r, &i)| r as u32 != i) {
        let mut rank = vec![0u32; names.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        for o in out.iter_mut() {
            for c in o.iter_mut() {
                *c = rank[*c as usize];
            }
        }
    }
    Ok(order
        .iter()
        .map(|&i| names[i as usize].to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(columns: &[Batch]) -> (Local, Vec<Vec<u32>>) {
        let mut outs: Vec<Vec<u32>> = columns
            .iter()
            .map(|c| match c {
                Batch::Int(v) => vec![u32::MAX; v.len()],
                Batch::Str(a) => vec![u32::MAX; a.len()],
                Batch::Dict { keys, .. } => vec![u32::MAX; keys.len()],
            })
            .collect();
        let mut slices: Vec<&mut [u32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
        let local = code_batch(columns, &mut slices).unwrap();
        (local, outs)
    }

    #[test]
    fn integer_labels_code_in_sorted_order_over_the_union() {
        let t = Batch::Int(vec![5, -2, 5].into());
        let p = Batch::Int(vec![7, 5, -2].into());
        let (local, codes) = code(&[t, p]);
        assert_eq!(local, Local::Int(vec![-2, 5, 7]));
        assert_eq!(codes, vec![vec![1, 0, 1], vec![2, 1, 0]]);
    }

    #[test]
    fn sparse_integer_labels_use_the_search_path() {
        let (local, codes) = code(&[Batch::Int(vec![1 << 40, 0, i64::MIN, i64::MAX].into())]);
        assert_eq!(local, Local::Int(vec![i64::MIN, 0, 1 << 40, i64::MAX]));
        assert_eq!(codes, vec![vec![2, 1, 0, 3]]);
    }

    #[test]
    fn strings_and_dictionaries_share_one_sorted_list() {
        let t = Batch::Str(StringArray::from(vec!["dog", "cat", "dog"]));
        // The dictionary holds a value no row uses ("ant") and a repeat ("eel").
        let p = Batch::Dict {
            keys: vec![3, 1, 2].into(),
            values: StringArray::from(vec!["ant", "eel", "cat", "eel"]),
        };
        let (local, codes) = code(&[t, p]);
        assert_eq!(
            local,
            Local::Str(vec!["cat".into(), "dog".into(), "eel".into()])
        );
        assert_eq!(codes, vec![vec![1, 0, 1], vec![2, 2, 0]]);
    }

    #[test]
    fn mixed_kinds_bad_keys_and_bad_floats_are_rejected() {
        let mut a = [0u32; 1];
        let mut b = [0u32; 1];
        let err = code_batch(
            &[
                Batch::Int(vec![1].into()),
                Batch::Str(StringArray::from(vec!["a"])),
            ],
            &mut [&mut a, &mut b],
        )
        .unwrap_err();
        assert!(err.contains("mix"), "{err}");
        let bad_key = Batch::Dict {
            keys: vec![2].into(),
            values: StringArray::from(vec!["a"]),
        };
        assert!(
            code_batch(&[bad_key], &mut [&mut a])
                .unwrap_err()
                .contains("out of range")
        );
        let nan = arrow::array::Float64Array::from(vec![1.0, f64::NAN]);
        assert!(batch(&nan, 10).unwrap_err().contains("row 11 is NaN"));
        let half = arrow::array::Float64Array::from(vec![0.5]);
        assert!(batch(&half, 0).unwrap_err().contains("not a whole number"));
        let list = arrow::array::new_empty_array(&DataType::Date32);
        assert!(batch(&list, 0).unwrap_err().contains("cannot hold labels"));
        assert!(kind_of(&DataType::Date32).is_err());
    }

    #[test]
    fn booleans_small_integers_and_int_dictionaries_are_integers() {
        let b = arrow::array::BooleanArray::from(vec![true, false]);
        assert!(matches!(batch(&b, 0).unwrap(), Batch::Int(v) if v[..] == [1, 0]));
        let i = arrow::array::Int8Array::from(vec![-3, 4]);
        assert!(matches!(batch(&i, 0).unwrap(), Batch::Int(v) if v[..] == [-3, 4]));
        let d: arrow::array::DictionaryArray<Int32Type> = vec!["x", "y", "x"].into_iter().collect();
        assert!(matches!(batch(&d, 0).unwrap(), Batch::Dict { .. }));
        let small: arrow::array::DictionaryArray<arrow::datatypes::Int8Type> =
            vec!["x", "y"].into_iter().collect();
        assert!(matches!(batch(&small, 0).unwrap(), Batch::Dict { .. }));
    }
}
