//! Class labels and their integer codes.
//!
//! Every label column is turned into `u32` codes into one sorted class list (scikit-learn's
//! `unique_labels`: the union of the columns, sorted), so the metric kernels count in flat arrays
//! and never hash or allocate per row.

use std::collections::HashMap;
use std::fmt;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::DataType;
use rayon::prelude::*;

/// Rows handled by one parallel task.
const CHUNK: usize = 1 << 16;
/// Integer label ranges up to this size are coded through a lookup table instead of a search.
const DENSE_RANGE: i64 = 1 << 20;

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

/// The values of one label-like column, ready to be coded.
#[derive(Debug, Clone)]
pub enum LabelValues {
    /// Integers.
    Int(Vec<i64>),
    /// Strings (an Arrow array without nulls).
    Str(StringArray),
}

impl LabelValues {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match self {
            Self::Int(v) => v.len(),
            Self::Str(a) => a.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads an Arrow column as labels: integers, booleans, whole-number floats or strings.
    /// `Err(message)` says what is wrong (nulls, NaN, fractional values, unsupported type).
    pub fn from_arrow(array: &dyn Array) -> Result<Self, String> {
        if array.null_count() > 0 {
            let first = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
            return Err(format!(
                "{} null values (first at row {first}); labels must not be null",
                array.null_count()
            ));
        }
        match array.data_type() {
            DataType::Boolean => Ok(Self::Int(
                array
                    .as_boolean()
                    .iter()
                    .map(|b| i64::from(b.unwrap_or(false)))
                    .collect(),
            )),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => {
                let values = crate::table::to_f64(array).map_err(|e| e.to_string())?;
                let mut out = Vec::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    if v.is_nan() {
                        return Err(format!("row {i} is NaN; labels must be numbers or strings"));
                    }
                    if v.fract() != 0.0 || v.abs() > 9.0e15 {
                        return Err(format!(
                            "row {i} is {v}, not a whole number; use integer or string labels (or task = \"regression\")"
                        ));
                    }
                    out.push(*v as i64);
                }
                Ok(Self::Int(out))
            }
            t if t.is_integer() => {
                let cast =
                    arrow::compute::cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
                Ok(Self::Int(
                    cast.as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec(),
                ))
            }
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Dictionary(_, _) => {
                let cast =
                    arrow::compute::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
                Ok(Self::Str(cast.as_string::<i32>().clone()))
            }
            other => Err(format!(
                "type {other} cannot hold labels (use integers or strings)"
            )),
        }
    }
}

/// Columns coded against one sorted class list.
#[derive(Debug, Clone)]
pub struct Coded {
    /// The sorted union of the columns' values.
    pub classes: Vec<Label>,
    /// One code column per input column, `classes[code]` being the value.
    pub codes: Vec<Vec<u32>>,
}

/// Codes `columns` against the sorted union of their values.
///
/// Fails when the columns mix integer and string labels.
pub fn encode(columns: &[&LabelValues]) -> Result<Coded, String> {
    let ints: Vec<&Vec<i64>> = columns
        .iter()
        .filter_map(|c| match c {
            LabelValues::Int(v) => Some(v),
            LabelValues::Str(_) => None,
        })
        .collect();
    let strs: Vec<&StringArray> = columns
        .iter()
        .filter_map(|c| match c {
            LabelValues::Str(a) => Some(a),
            LabelValues::Int(_) => None,
        })
        .collect();
    match (ints.is_empty(), strs.is_empty()) {
        (false, true) => Ok(encode_ints(&ints)),
        (true, _) => Ok(encode_strs(&strs)),
        (false, false) => Err("y_true and y_pred mix integer and string labels".to_owned()),
    }
}

fn encode_ints(columns: &[&Vec<i64>]) -> Coded {
    let (lo, hi) = columns
        .par_iter()
        .flat_map(|c| c.par_chunks(CHUNK))
        .map(|ch| {
            ch.iter()
                .fold((i64::MAX, i64::MIN), |(a, b), &x| (a.min(x), b.max(x)))
        })
        .reduce(
            || (i64::MAX, i64::MIN),
            |(a, b), (c, d)| (a.min(c), b.max(d)),
        );
    if lo > hi {
        return Coded {
            classes: Vec::new(),
            codes: columns.iter().map(|_| Vec::new()).collect(),
        };
    }
    if hi.saturating_sub(lo) < DENSE_RANGE {
        let range = (hi - lo + 1) as usize;
        let seen = columns
            .par_iter()
            .flat_map(|c| c.par_chunks(CHUNK))
            .fold(
                || vec![false; range],
                |mut s, ch| {
                    for &x in ch {
                        s[(x - lo) as usize] = true;
                    }
                    s
                },
            )
            .reduce(
                || vec![false; range],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x |= y;
                    }
                    a
                },
            );
        let mut lut = vec![0u32; range];
        let mut classes = Vec::new();
        for (i, &s) in seen.iter().enumerate() {
            if s {
                lut[i] = classes.len() as u32;
                classes.push(Label::Int(lo + i as i64));
            }
        }
        let codes = columns
            .iter()
            .map(|c| c.par_iter().map(|&x| lut[(x - lo) as usize]).collect())
            .collect();
        return Coded { classes, codes };
    }
    let mut values: Vec<i64> = columns.iter().flat_map(|c| c.iter().copied()).collect();
    values.par_sort_unstable();
    values.dedup();
    let codes = columns
        .iter()
        .map(|c| {
            c.par_iter()
                .map(|x| values.binary_search(x).unwrap_or(0) as u32)
                .collect()
        })
        .collect();
    Coded {
        classes: values.into_iter().map(Label::Int).collect(),
        codes,
    }
}

/// Codes one chunk of strings against a chunk-local dictionary (a short linear list first: label
/// and segment columns usually have a handful of values).
fn encode_str_chunk(array: &StringArray, start: usize, end: usize) -> (Vec<&str>, Vec<u32>) {
    let mut names: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut codes = Vec::with_capacity(end - start);
    for i in start..end {
        let v = array.value(i);
        let code = match names.iter().take(16).position(|n| *n == v) {
            Some(c) => c as u32,
            None => *index.entry(v).or_insert_with(|| {
                names.push(v);
                (names.len() - 1) as u32
            }),
        };
        codes.push(code);
    }
    (names, codes)
}

fn encode_strs(columns: &[&StringArray]) -> Coded {
    let chunks: Vec<Vec<(Vec<&str>, Vec<u32>)>> = columns
        .iter()
        .map(|a| {
            let n = a.len();
            (0..n.div_ceil(CHUNK))
                .into_par_iter()
                .map(|c| encode_str_chunk(a, c * CHUNK, ((c + 1) * CHUNK).min(n)))
                .collect()
        })
        .collect();
    let mut all: Vec<&str> = chunks
        .iter()
        .flatten()
        .flat_map(|(names, _)| names.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    let codes = chunks
        .iter()
        .map(|col| {
            let mut out = Vec::with_capacity(col.iter().map(|(_, c)| c.len()).sum());
            for (names, local) in col {
                let remap: Vec<u32> = names
                    .iter()
                    .map(|n| all.binary_search(n).unwrap_or(0) as u32)
                    .collect();
                out.extend(local.iter().map(|&c| remap[c as usize]));
            }
            out
        })
        .collect();
    Coded {
        classes: all.into_iter().map(|s| Label::Str(s.to_owned())).collect(),
        codes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_code_in_sorted_order_over_the_union() {
        let t = LabelValues::Int(vec![5, -2, 5]);
        let p = LabelValues::Int(vec![7, 5, -2]);
        let coded = encode(&[&t, &p]).unwrap();
        assert_eq!(
            coded.classes,
            vec![Label::Int(-2), Label::Int(5), Label::Int(7)]
        );
        assert_eq!(coded.codes, vec![vec![1, 0, 1], vec![2, 1, 0]]);
    }

    #[test]
    fn sparse_integer_labels_use_the_search_path() {
        let t = LabelValues::Int(vec![1 << 40, 0]);
        let coded = encode(&[&t]).unwrap();
        assert_eq!(coded.classes, vec![Label::Int(0), Label::Int(1 << 40)]);
        assert_eq!(coded.codes, vec![vec![1, 0]]);
    }

    #[test]
    fn string_labels_code_lexicographically_across_chunks() {
        let many: Vec<&str> = (0..CHUNK * 2 + 5)
            .map(|i| ["dog", "cat", "eel"][i % 3])
            .collect();
        let t = LabelValues::Str(StringArray::from(many.clone()));
        let coded = encode(&[&t]).unwrap();
        assert_eq!(coded.classes.len(), 3);
        assert_eq!(coded.classes[0], Label::Str("cat".into()));
        for (i, &c) in coded.codes[0].iter().enumerate() {
            assert_eq!(coded.classes[c as usize].to_string(), many[i]);
        }
    }

    #[test]
    fn mixed_types_and_bad_floats_are_rejected() {
        let t = LabelValues::Int(vec![1]);
        let p = LabelValues::Str(StringArray::from(vec!["a"]));
        assert!(encode(&[&t, &p]).unwrap_err().contains("mix"));
        let nan = arrow::array::Float64Array::from(vec![1.0, f64::NAN]);
        assert!(
            LabelValues::from_arrow(&nan)
                .unwrap_err()
                .contains("row 1 is NaN")
        );
        let half = arrow::array::Float64Array::from(vec![0.5]);
        assert!(
            LabelValues::from_arrow(&half)
                .unwrap_err()
                .contains("not a whole number")
        );
        let nulls = arrow::array::Int64Array::from(vec![Some(1), None]);
        assert!(
            LabelValues::from_arrow(&nulls)
                .unwrap_err()
                .contains("null")
        );
    }
}
