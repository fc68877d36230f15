//! Reading a predictions table (Parquet or CSV, through Arrow) into coded columns, and pairing
//! candidate rows with baseline rows.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::labels::{Label, LabelValues, encode};

/// What kind of target the table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Task {
    /// Class labels in `y_true` / `y_pred`.
    #[default]
    Classification,
    /// Numbers in `y_true` / `y_pred`.
    Regression,
}

/// Which columns of the table play which role.
#[derive(Debug, Clone)]
pub struct Columns {
    /// The true label or value (default `y_true`).
    pub y_true: String,
    /// The predicted label or value (default `y_pred`).
    pub y_pred: String,
    /// Binary probability of the positive label.
    pub score: Option<String>,
    /// Multiclass probabilities: (label as written, column), one per class.
    pub scores: Vec<(String, String)>,
    /// Segment columns (metrics are also computed per value of each).
    pub segments: Vec<String>,
    /// Row identifier used to pair baseline rows; by position when absent.
    pub id: Option<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Self {
            y_true: "y_true".to_owned(),
            y_pred: "y_pred".to_owned(),
            score: None,
            scores: Vec::new(),
            segments: Vec::new(),
            id: None,
        }
    }
}

/// The target columns.
#[derive(Debug, Clone)]
pub enum Target {
    /// Coded class labels.
    Classification {
        /// Sorted union of the labels of both columns.
        classes: Vec<Label>,
        /// Codes of the true labels.
        y_true: Vec<u32>,
        /// Codes of the predicted labels.
        y_pred: Vec<u32>,
    },
    /// Numbers.
    Regression {
        /// True values.
        y_true: Vec<f64>,
        /// Predicted values.
        y_pred: Vec<f64>,
    },
}

/// A segment column, coded.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The column name.
    pub name: String,
    /// Its distinct values, sorted.
    pub values: Vec<Label>,
    /// Per row, the index of its value.
    pub codes: Vec<u32>,
}

/// Multiclass probability columns.
#[derive(Debug, Clone)]
pub struct ClassScores {
    /// The class of each column, sorted.
    pub classes: Vec<Label>,
    /// One column per class, same order.
    pub columns: Vec<Vec<f64>>,
}

/// A predictions table in memory: coded labels, scores, segments, ids.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// Where it was read from (for messages).
    pub source: PathBuf,
    /// Labels or values.
    pub target: Target,
    /// Binary score column.
    pub score: Option<Vec<f64>>,
    /// Multiclass probability columns.
    pub scores: Option<ClassScores>,
    /// Segment columns.
    pub segments: Vec<Segment>,
    /// Row ids, when an id column was configured.
    pub ids: Option<Vec<Label>>,
}

impl Predictions {
    /// The number of rows.
    pub fn len(&self) -> usize {
        match &self.target {
            Target::Classification { y_true, .. } => y_true.len(),
            Target::Regression { y_true, .. } => y_true.len(),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds predictions from in-memory Arrow columns (name → array).
    ///
    /// Fails when a configured column is missing or holds unusable values, or the table is empty.
    pub fn from_arrays(
        source: &Path,
        arrays: &HashMap<String, ArrayRef>,
        columns: &Columns,
        task: Task,
    ) -> Result<Self> {
        let get = |name: &str| -> Result<&ArrayRef> {
            arrays.get(name).ok_or_else(|| {
                let mut available: Vec<&str> = arrays.keys().map(String::as_str).collect();
                available.sort_unstable();
                Error::MissingColumn {
                    path: source.to_owned(),
                    column: name.to_owned(),
                    available: available.join(", "),
                }
            })
        };
        let bad = |column: &str, message: String| Error::BadColumn {
            path: source.to_owned(),
            column: column.to_owned(),
            message,
        };
        let labels = |column: &str| -> Result<LabelValues> {
            LabelValues::from_arrow(get(column)?.as_ref()).map_err(|m| bad(column, m))
        };
        let numbers = |column: &str| -> Result<Vec<f64>> {
            let array = get(column)?;
            if array.null_count() > 0 {
                return Err(bad(
                    column,
                    format!("{} null values; fill or drop them", array.null_count()),
                ));
            }
            let values = to_f64(array.as_ref()).map_err(|e| bad(column, e.to_string()))?;
            if let Some(i) = values.par_iter().position_first(|v| v.is_nan()) {
                return Err(bad(column, format!("row {i} is NaN")));
            }
            Ok(values)
        };
        if get(&columns.y_true)?.is_empty() {
            return Err(Error::EmptyTable {
                path: source.to_owned(),
            });
        }
        let target = match task {
            Task::Classification => {
                let t = labels(&columns.y_true)?;
                let p = labels(&columns.y_pred)?;
                let mut coded = encode(&[&t, &p]).map_err(|m| bad(&columns.y_pred, m))?;
                let y_pred = coded.codes.pop().unwrap_or_default();
                let y_true = coded.codes.pop().unwrap_or_default();
                Target::Classification {
                    classes: coded.classes,
                    y_true,
                    y_pred,
                }
            }
            Task::Regression => Target::Regression {
                y_true: numbers(&columns.y_true)?,
                y_pred: numbers(&columns.y_pred)?,
            },
        };
        let score = columns.score.as_deref().map(numbers).transpose()?;
        let scores = if columns.scores.is_empty() {
            None
        } else {
            let mut pairs = Vec::new();
            for (label, column) in &columns.scores {
                let parsed = label
                    .parse::<i64>()
                    .map_or_else(|_| Label::Str(label.clone()), Label::Int);
                pairs.push((parsed, numbers(column)?));
            }
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let (classes, columns) = pairs.into_iter().unzip();
            Some(ClassScores { classes, columns })
        };
        let mut segments = Vec::new();
        for name in &columns.segments {
            let values = labels(name)?;
            let mut coded = encode(&[&values]).map_err(|m| bad(name, m))?;
            segments.push(Segment {
                name: name.clone(),
                values: coded.classes,
                codes: coded.codes.pop().unwrap_or_default(),
            });
        }
        let ids = match &columns.id {
            None => None,
            Some(name) => {
                let values = labels(name)?;
                let coded = encode(&[&values]).map_err(|m| bad(name, m))?;
                let codes = coded.codes.first().map(Vec::as_slice).unwrap_or_default();
                Some(
                    codes
                        .iter()
                        .map(|&c| coded.classes[c as usize].clone())
                        .collect(),
                )
            }
        };
        let predictions = Self {
            source: source.to_owned(),
            target,
            score,
            scores,
            segments,
            ids,
        };
        if predictions.is_empty() {
            return Err(Error::EmptyTable {
                path: source.to_owned(),
            });
        }
        Ok(predictions)
    }

    /// Reads the configured columns of a `.parquet` or `.csv` file.
    ///
    /// Fails when the file cannot be read or decoded, a column is missing or unusable, or the
    /// table is empty.
    pub fn read(path: &Path, columns: &Columns, task: Task) -> Result<Self> {
        let mut wanted = vec![columns.y_true.clone(), columns.y_pred.clone()];
        wanted.extend(columns.score.iter().cloned());
        wanted.extend(columns.scores.iter().map(|(_, c)| c.clone()));
        wanted.extend(columns.segments.iter().cloned());
        wanted.extend(columns.id.iter().cloned());
        wanted.sort();
        wanted.dedup();
        let arrays = read_columns(path, &wanted)?;
        Self::from_arrays(path, &arrays, columns, task)
    }

    /// The rows `index` (in that order, repeats allowed): for bootstrap resamples and joins.
    pub fn take(&self, index: &[u32]) -> Self {
        let pick_u32 = |v: &[u32]| index.iter().map(|&i| v[i as usize]).collect::<Vec<u32>>();
        let pick_f64 = |v: &[f64]| index.iter().map(|&i| v[i as usize]).collect::<Vec<f64>>();
        let target = match &self.target {
            Target::Classification {
                classes,
                y_true,
                y_pred,
            } => Target::Classification {
                classes: classes.clone(),
                y_true: pick_u32(y_true),
                y_pred: pick_u32(y_pred),
            },
            Target::Regression { y_true, y_pred } => Target::Regression {
                y_true: pick_f64(y_true),
                y_pred: pick_f64(y_pred),
            },
        };
        Self {
            source: self.source.clone(),
            target,
            score: self.score.as_deref().map(pick_f64),
            scores: self.scores.as_ref().map(|s| ClassScores {
                classes: s.classes.clone(),
                columns: s.columns.iter().map(|c| pick_f64(c)).collect(),
            }),
            segments: self
                .segments
                .iter()
                .map(|s| Segment {
                    name: s.name.clone(),
                    values: s.values.clone(),
                    codes: pick_u32(&s.codes),
                })
                .collect(),
            ids: self
                .ids
                .as_ref()
                .map(|ids| index.iter().map(|&i| ids[i as usize].clone()).collect()),
        }
    }

    /// Reorders `baseline` so its row `i` is the baseline prediction for this table's row `i`:
    /// by the id column when both have one, else by position. The baseline's true labels, when it
    /// has them, must agree with the candidate's.
    ///
    /// Fails with a count of the rows that do not join.
    pub fn align(&self, baseline: &Self) -> Result<Self> {
        let join_err = |message: String| Error::BaselineJoin {
            path: baseline.source.clone(),
            message,
        };
        let aligned = match (&self.ids, &baseline.ids) {
            (Some(ours), Some(theirs)) => {
                let mut at: HashMap<&Label, u32> = HashMap::with_capacity(theirs.len());
                for (i, id) in theirs.iter().enumerate() {
                    if at.insert(id, i as u32).is_some() {
                        return Err(join_err(format!("id {id} appears more than once")));
                    }
                }
                let mut index = Vec::with_capacity(ours.len());
                let mut missing = Vec::new();
                for id in ours {
                    match at.get(id) {
                        Some(&i) => index.push(i),
                        None => missing.push(id),
                    }
                }
                if !missing.is_empty() || ours.len() != theirs.len() {
                    let extra = theirs.len() + missing.len() - ours.len();
                    let first = missing
                        .first()
                        .map(|id| format!(" (first: {id})"))
                        .unwrap_or_default();
                    return Err(join_err(format!(
                        "{} of {} candidate rows have no baseline row with the same id{first}, and {} baseline rows match no candidate row",
                        missing.len(),
                        ours.len(),
                        extra
                    )));
                }
                baseline.take(&index)
            }
            (None, None) => {
                if self.len() != baseline.len() {
                    return Err(join_err(format!(
                        "has {} rows but the candidate has {}; rows are paired by position when no id column is set",
                        baseline.len(),
                        self.len()
                    )));
                }
                baseline.clone()
            }
            _ => {
                return Err(join_err(
                    "only one of the tables has the id column".to_owned(),
                ));
            }
        };
        let differ = match (&self.target, &aligned.target) {
            (
                Target::Classification {
                    classes: a,
                    y_true: t1,
                    ..
                },
                Target::Classification {
                    classes: b,
                    y_true: t2,
                    ..
                },
            ) => t1
                .iter()
                .zip(t2)
                .filter(|(x, y)| a[**x as usize] != b[**y as usize])
                .count(),
            (Target::Regression { y_true: t1, .. }, Target::Regression { y_true: t2, .. }) => {
                t1.iter().zip(t2).filter(|(x, y)| x != y).count()
            }
            _ => 0,
        };
        if differ > 0 {
            return Err(join_err(format!(
                "y_true differs from the candidate's in {differ} of {} joined rows; both must describe the same examples",
                self.len()
            )));
        }
        Ok(aligned)
    }
}

/// Converts a numeric Arrow column to `f64`.
pub(crate) fn to_f64(array: &dyn Array) -> std::result::Result<Vec<f64>, arrow::error::ArrowError> {
    match array.data_type() {
        DataType::Float64 => Ok(array.as_primitive::<Float64Type>().values().to_vec()),
        t if t.is_numeric() || *t == DataType::Boolean => {
            let cast = arrow::compute::cast(array, &DataType::Float64)?;
            Ok(cast.as_primitive::<Float64Type>().values().to_vec())
        }
        other => Err(arrow::error::ArrowError::CastError(format!(
            "type {other} is not numeric"
        ))),
    }
}

/// Reads the named columns of a Parquet or CSV file as whole arrays.
///
/// Fails when the file cannot be read, is malformed, or lacks a column.
pub fn read_columns(path: &Path, wanted: &[String]) -> Result<HashMap<String, ArrayRef>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let missing = |column: &str, names: Vec<String>| Error::MissingColumn {
        path: path.to_owned(),
        column: column.to_owned(),
        available: names.join(", "),
    };
    let batches: Vec<RecordBatch> = match ext.as_str() {
        "parquet" | "pq" => {
            let pq = |source| Error::Parquet {
                path: path.to_owned(),
                source,
            };
            let file = File::open(path).map_err(io)?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq)?;
            let schema = builder.schema().clone();
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let mut roots = Vec::new();
            for w in wanted {
                let i = names
                    .iter()
                    .position(|n| n == w)
                    .ok_or_else(|| missing(w, names.clone()))?;
                roots.push(i);
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            let groups = builder.metadata().num_row_groups();
            drop(builder);
            // Row groups decode in parallel, each task with its own reader.
            let parts: Vec<Vec<RecordBatch>> = (0..groups)
                .into_par_iter()
                .map(|g| -> Result<Vec<RecordBatch>> {
                    let file = File::open(path).map_err(io)?;
                    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(pq)?
                        .with_projection(mask.clone())
                        .with_row_groups(vec![g])
                        .with_batch_size(1 << 16)
                        .build()
                        .map_err(pq)?;
                    reader
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| Error::Arrow {
                            path: path.to_owned(),
                            source: e,
                        })
                })
                .collect::<Result<_>>()?;
            parts.into_iter().flatten().collect()
        }
        "csv" => {
            use arrow::csv::reader::Format;
            let arrow_err = |source| Error::Arrow {
                path: path.to_owned(),
                source,
            };
            let mut file = File::open(path).map_err(io)?;
            let (schema, _) = Format::default()
                .with_header(true)
                .infer_schema(&mut file, None)
                .map_err(arrow_err)?;
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            let mut projection = Vec::new();
            for w in wanted {
                projection.push(
                    names
                        .iter()
                        .position(|n| n == w)
                        .ok_or_else(|| missing(w, names.clone()))?,
                );
            }
            let file = File::open(path).map_err(io)?;
            let reader = arrow::csv::ReaderBuilder::new(std::sync::Arc::new(schema))
                .with_header(true)
                .with_projection(projection)
                .with_batch_size(1 << 16)
                .build(file)
                .map_err(arrow_err)?;
            reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(arrow_err)?
        }
        _ => {
            return Err(Error::UnsupportedFormat {
                path: path.to_owned(),
            });
        }
    };
    let mut out = HashMap::new();
    for name in wanted {
        let parts: Vec<&dyn Array> = batches
            .iter()
            .filter_map(|b| b.column_by_name(name).map(|c| c.as_ref()))
            .collect();
        let array = if parts.is_empty() {
            arrow::array::new_empty_array(&DataType::Null)
        } else {
            arrow::compute::concat(&parts).map_err(|e| Error::Arrow {
                path: path.to_owned(),
                source: e,
            })?
        };
        out.insert(name.clone(), array);
    }
    Ok(out)
}
