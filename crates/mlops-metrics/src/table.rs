//! Reading a predictions table (Parquet or CSV, through Arrow) into coded columns, and pairing
//! candidate rows with baseline rows.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{DataType, FieldRef, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use rayon::prelude::*;

use crate::decode::{BatchResult, Decoded, Decoder, Outputs, Plan, Problem};
use crate::error::{Error, Result};
use crate::labels::Label;

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

    /// Builds predictions from in-memory Arrow columns (name → array, all of the same length).
    ///
    /// Fails when a configured column is missing or holds unusable values, or the table is empty.
    pub fn from_arrays(
        source: &Path,
        arrays: &HashMap<String, ArrayRef>,
        columns: &Columns,
        task: Task,
    ) -> Result<Self> {
        let (plan, roles) = plan(columns, task);
        let mut available: Vec<String> = arrays.keys().cloned().collect();
        available.sort_unstable();
        first_missing(source, &plan, &available)?;
        let chosen: Vec<ArrayRef> = plan
            .names
            .iter()
            .filter_map(|name| arrays.get(name).cloned())
            .collect();
        let rows = arrays.get(&columns.y_true).map_or(0, |a| a.len());
        for (name, array) in plan.names.iter().zip(&chosen) {
            if array.len() != rows {
                return Err(Error::BadColumn {
                    path: source.to_owned(),
                    column: name.clone(),
                    message: format!(
                        "has {} rows but `{}` has {rows}",
                        array.len(),
                        columns.y_true
                    ),
                });
            }
        }
        let batches: Vec<Vec<ArrayRef>> = (0..rows)
            .step_by(BATCH_ROWS)
            .map(|start| {
                let n = BATCH_ROWS.min(rows - start);
                chosen.iter().map(|a| a.slice(start, n)).collect()
            })
            .collect();
        let types: Vec<DataType> = chosen.iter().map(|a| a.data_type().clone()).collect();
        let decoded = decode_all(source, &plan, &types, batches, rows)?;
        Self::assemble(source, decoded, &roles, rows)
    }

    /// Reads the configured columns of a `.parquet` or `.csv` file.
    ///
    /// Parquet row groups decode in parallel, batch by batch, each batch coded straight into the
    /// final columns; string label and segment columns are read dictionary-encoded and coded by
    /// dictionary index.
    ///
    /// Fails when the file cannot be read or decoded, a column is missing or unusable, or the
    /// table is empty.
    pub fn read(path: &Path, columns: &Columns, task: Task) -> Result<Self> {
        let (plan, roles) = plan(columns, task);
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let (decoded, rows) = match ext.as_str() {
            "parquet" | "pq" => read_parquet(path, &plan)?,
            "csv" => read_csv(path, &plan)?,
            _ => {
                return Err(Error::UnsupportedFormat {
                    path: path.to_owned(),
                });
            }
        };
        Self::assemble(path, decoded, &roles, rows)
    }

    /// Puts decoded columns in their places.
    fn assemble(source: &Path, decoded: Decoded, roles: &Roles, rows: usize) -> Result<Self> {
        if rows == 0 {
            return Err(Error::EmptyTable {
                path: source.to_owned(),
            });
        }
        let mut groups = decoded.groups.into_iter();
        let mut numbers = decoded.numbers.into_iter();
        let target = match roles.task {
            Task::Classification => {
                let coded = groups.next().unwrap_or_default();
                let mut codes = coded.codes.into_iter();
                Target::Classification {
                    classes: coded.classes,
                    y_true: codes.next().unwrap_or_default(),
                    y_pred: codes.next().unwrap_or_default(),
                }
            }
            Task::Regression => Target::Regression {
                y_true: numbers.next().unwrap_or_default(),
                y_pred: numbers.next().unwrap_or_default(),
            },
        };
        let score = roles.score.then(|| numbers.next().unwrap_or_default());
        let scores = if roles.scores.is_empty() {
            None
        } else {
            let mut pairs: Vec<(Label, Vec<f64>)> = roles
                .scores
                .iter()
                .map(|label| (label.clone(), numbers.next().unwrap_or_default()))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let (classes, columns) = pairs.into_iter().unzip();
            Some(ClassScores { classes, columns })
        };
        let segments = roles
            .segments
            .iter()
            .map(|name| {
                let coded = groups.next().unwrap_or_default();
                Segment {
                    name: name.clone(),
                    values: coded.classes,
                    codes: coded.codes.into_iter().next().unwrap_or_default(),
                }
            })
            .collect();
        let ids = roles.id.then(|| {
            let coded = groups.next().unwrap_or_default();
            let codes = coded.codes.into_iter().next().unwrap_or_default();
            codes
                .iter()
                .map(|&c| coded.classes[c as usize].clone())
                .collect()
        });
        Ok(Self {
            source: source.to_owned(),
            target,
            score,
            scores,
            segments,
            ids,
        })
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

/// Rows per decoded batch: large enough to amortise per-batch work, small enough that a batch's
/// columns stay in cache while they are coded.
const BATCH_ROWS: usize = 1 << 16;

/// What the decoded groups and number columns are, in the order [`plan`] adds them.
#[derive(Debug)]
struct Roles {
    task: Task,
    score: bool,
    scores: Vec<Label>,
    segments: Vec<String>,
    id: bool,
}

/// The columns to decode for `columns` and `task`, in the order their problems are reported:
/// the target, the score columns, the segments, the id.
fn plan(columns: &Columns, task: Task) -> (Plan, Roles) {
    let mut plan = Plan::default();
    match task {
        Task::Classification => {
            plan.group(&[&columns.y_true, &columns.y_pred]);
        }
        Task::Regression => {
            plan.number(&columns.y_true);
            plan.number(&columns.y_pred);
        }
    }
    if let Some(score) = &columns.score {
        plan.number(score);
    }
    for (_, column) in &columns.scores {
        plan.number(column);
    }
    for segment in &columns.segments {
        plan.group(&[segment]);
    }
    if let Some(id) = &columns.id {
        plan.group(&[id]);
    }
    let roles = Roles {
        task,
        score: columns.score.is_some(),
        scores: columns
            .scores
            .iter()
            .map(|(label, _)| {
                label
                    .parse::<i64>()
                    .map_or_else(|_| Label::Str(label.clone()), Label::Int)
            })
            .collect(),
        segments: columns.segments.clone(),
        id: columns.id.is_some(),
    };
    (plan, roles)
}

/// The first of `plan`'s columns (in name order) that `available` lacks.
fn first_missing(path: &Path, plan: &Plan, available: &[String]) -> Result<()> {
    let mut wanted: Vec<&String> = plan.names.iter().collect();
    wanted.sort();
    match wanted.iter().find(|w| !available.contains(w)) {
        Some(w) => Err(Error::MissingColumn {
            path: path.to_owned(),
            column: (*w).clone(),
            available: available.join(", "),
        }),
        None => Ok(()),
    }
}

fn bad_column(path: &Path) -> impl Fn(Problem) -> Error + '_ {
    move |p| Error::BadColumn {
        path: path.to_owned(),
        column: p.column,
        message: p.message,
    }
}

/// Decodes in-memory batches (`batches[i][c]` is column `plan.names[c]` of batch `i`), in
/// parallel.
fn decode_all(
    source: &Path,
    plan: &Plan,
    types: &[DataType],
    batches: Vec<Vec<ArrayRef>>,
    rows: usize,
) -> Result<Decoded> {
    let decoder = Decoder::new(plan, types);
    let mut outputs = Outputs::new(plan, rows).map_err(|message| Error::BadColumn {
        path: source.to_owned(),
        column: plan.names.first().cloned().unwrap_or_default(),
        message,
    })?;
    let lengths: Vec<usize> = batches
        .iter()
        .map(|b| b.first().map_or(0, |a| a.len()))
        .collect();
    let offsets: Vec<usize> = lengths
        .iter()
        .scan(0, |at, &n| {
            *at += n;
            Some(*at - n)
        })
        .collect();
    let results: Vec<BatchResult> = outputs
        .split(&lengths)
        .into_par_iter()
        .zip(batches)
        .zip(offsets)
        .map(|((part, arrays), offset)| decoder.batch(&arrays, offset, part))
        .collect();
    decoder
        .finish(outputs, results, rows)
        .map_err(bad_column(source))
}

/// Reads a Parquet file: row groups in parallel, each in batches of [`BATCH_ROWS`] decoded
/// straight into the output columns. String label columns are read dictionary-encoded.
fn read_parquet(path: &Path, plan: &Plan) -> Result<(Decoded, usize)> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let pq = |source| Error::Parquet {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(pq)?;
    let schema = Arc::clone(meta.schema());
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    first_missing(path, plan, &names)?;
    // Keep the dictionary encoding of string label columns: rows become dictionary indices
    // instead of materialised strings. A schema the reader refuses leaves the plain one.
    let hinted: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            t @ (DataType::Utf8 | DataType::LargeUtf8) if plan.is_label(f.name()) => {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(t.clone()),
                )))
            }
            _ => Arc::clone(f),
        })
        .collect();
    let meta = if hinted.iter().zip(schema.fields()).any(|(a, b)| a != b) {
        let hint = Arc::new(Schema::new_with_metadata(hinted, schema.metadata().clone()));
        ArrowReaderMetadata::try_new(
            Arc::clone(meta.metadata()),
            ArrowReaderOptions::new().with_schema(hint),
        )
        .unwrap_or(meta)
    } else {
        meta
    };
    let fields = meta.schema().fields();
    let mut roots = Vec::with_capacity(plan.names.len());
    let mut types = Vec::with_capacity(plan.names.len());
    for name in &plan.names {
        let i = names.iter().position(|n| n == name).unwrap_or(0);
        roots.push(i);
        types.push(
            fields
                .get(i)
                .map_or(DataType::Null, |f| f.data_type().clone()),
        );
    }
    let mask = ProjectionMask::roots(meta.parquet_schema(), roots);
    let group_rows: Vec<usize> = meta
        .metadata()
        .row_groups()
        .iter()
        .map(|g| usize::try_from(g.num_rows()).unwrap_or(0))
        .collect();
    let starts: Vec<usize> = group_rows
        .iter()
        .scan(0, |at, &n| {
            *at += n;
            Some(*at - n)
        })
        .collect();
    let rows: usize = group_rows.iter().sum();
    let decoder = Decoder::new(plan, &types);
    let mut outputs = Outputs::new(plan, rows)
        .map_err(|message| pq(parquet::errors::ParquetError::General(message)))?;
    let parts = outputs.split(&group_rows);
    let results: Vec<Vec<BatchResult>> = parts
        .into_par_iter()
        .enumerate()
        .map(|(g, mut part)| -> Result<Vec<BatchResult>> {
            let file = File::open(path).map_err(io)?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                .with_projection(mask.clone())
                .with_row_groups(vec![g])
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(pq)?;
            let mut offset = starts.get(g).copied().unwrap_or(0);
            let mut out = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|source| Error::Arrow {
                    path: path.to_owned(),
                    source,
                })?;
                let n = batch.num_rows();
                let piece = part.take_front(n).ok_or_else(|| {
                    pq(parquet::errors::ParquetError::General(format!(
                        "row group {g} holds more rows than its metadata says"
                    )))
                })?;
                let arrays =
                    plan.names
                        .iter()
                        .map(|name| {
                            batch.column_by_name(name).cloned().ok_or_else(|| {
                                Error::MissingColumn {
                                    path: path.to_owned(),
                                    column: name.clone(),
                                    available: names.join(", "),
                                }
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                out.push(decoder.batch(&arrays, offset, piece));
                offset += n;
            }
            if part.rows() > 0 {
                return Err(pq(parquet::errors::ParquetError::General(format!(
                    "row group {g} holds fewer rows than its metadata says"
                ))));
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    let decoded = decoder
        .finish(outputs, results.into_iter().flatten().collect(), rows)
        .map_err(bad_column(path))?;
    Ok((decoded, rows))
}

/// Reads a CSV file with a header (types inferred) and decodes its batches in parallel.
fn read_csv(path: &Path, plan: &Plan) -> Result<(Decoded, usize)> {
    use arrow::csv::reader::Format;
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
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
    first_missing(path, plan, &names)?;
    let projection: Vec<usize> = plan
        .names
        .iter()
        .map(|w| names.iter().position(|n| n == w).unwrap_or(0))
        .collect();
    let types: Vec<DataType> = projection
        .iter()
        .map(|&i| {
            schema
                .fields()
                .get(i)
                .map_or(DataType::Null, |f| f.data_type().clone())
        })
        .collect();
    let file = File::open(path).map_err(io)?;
    let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_projection(projection)
        .with_batch_size(BATCH_ROWS)
        .build(file)
        .map_err(arrow_err)?;
    let mut batches = Vec::new();
    let mut rows = 0;
    for batch in reader {
        let batch = batch.map_err(arrow_err)?;
        rows += batch.num_rows();
        let arrays = plan
            .names
            .iter()
            .map(|name| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| Error::MissingColumn {
                        path: path.to_owned(),
                        column: name.clone(),
                        available: names.join(", "),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        batches.push(arrays);
    }
    let decoded = decode_all(path, plan, &types, batches, rows)?;
    Ok((decoded, rows))
}
