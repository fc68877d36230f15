//! Readers: a dataset is one file, a directory of files or a glob, in Parquet or CSV, read as
//! Arrow batches. Work is split into units (one Parquet row group, or one CSV file) that are read
//! independently, so they can be processed on all cores.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::statistics::Statistics;

use crate::error::{Error, Result};

/// Rows per Arrow batch while scanning.
const BATCH_SIZE: usize = 64 * 1024;

/// The on-disk format of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// Comma- (or otherwise) separated values with a header line.
    Csv,
}

/// How CSV files are read.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CsvOptions {
    /// Field delimiter (`,` by default; `\t` for `.tsv` files).
    pub delimiter: Option<u8>,
    /// Declared column types, overriding inference for the columns they name.
    pub types: Vec<(String, DataType)>,
    /// How many records type inference reads (all when `None`).
    pub infer_rows: Option<usize>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: None,
            types: Vec::new(),
            infer_rows: Some(100_000),
        }
    }
}

/// One file of a dataset.
#[derive(Debug)]
pub(crate) struct DataFile {
    pub(crate) path: PathBuf,
    pub(crate) kind: FileKind,
}

#[derive(Debug)]
pub(crate) enum FileKind {
    Parquet(ArrowReaderMetadata),
    Csv {
        delimiter: u8,
    },
    /// A file in an object store (`s3://…`, `file://…`), read through `object_store`.
    #[cfg(feature = "object-store")]
    Remote(crate::remote::RemoteFile),
}

impl FileKind {
    fn parquet_meta(&self) -> Option<&ArrowReaderMetadata> {
        match self {
            Self::Parquet(m) => Some(m),
            #[cfg(feature = "object-store")]
            Self::Remote(r) => r.parquet.as_ref(),
            Self::Csv { .. } => None,
        }
    }
}

/// Whether `location` is a URL (`scheme://…`) rather than a local path.
fn is_url(location: &str) -> bool {
    location.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() > 1
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
    })
}

#[cfg(feature = "object-store")]
fn open_url(location: &str, csv: &CsvOptions) -> Result<Vec<(DataFile, SchemaRef, Format)>> {
    crate::remote::open(location, csv)
}

#[cfg(not(feature = "object-store"))]
fn open_url(location: &str, _csv: &CsvOptions) -> Result<Vec<(DataFile, SchemaRef, Format)>> {
    Err(Error::Config(format!(
        "{location}: object-store URLs need mlops-dataq built with the `object-store` (or `s3`) feature"
    )))
}

/// A piece of a dataset read independently: one Parquet row group or one whole CSV file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unit {
    file: usize,
    row_group: Option<usize>,
}

/// A dataset: one or more files with one schema, read as a sequence of Arrow batches.
#[derive(Debug)]
pub struct Dataset {
    name: String,
    format: Format,
    schema: SchemaRef,
    files: Vec<DataFile>,
}

impl Dataset {
    /// Opens `location`: a file, a directory (every `.parquet`/`.csv` file below it, in path
    /// order) or a glob (`data/part-*.parquet`), relative to `base`. Reads only metadata (Parquet
    /// footers) or infers the schema (CSV).
    ///
    /// Fails when nothing matches, a file is unreadable, or the files disagree on their schema.
    pub fn open(location: &str, base: &Path, csv: &CsvOptions) -> Result<Self> {
        let opened: Vec<(DataFile, SchemaRef, Format)> = if is_url(location) {
            open_url(location, csv)?
        } else {
            resolve(location, base)?
                .iter()
                .map(|p| open_file(p, csv))
                .collect::<Result<_>>()?
        };
        let mut files: Vec<DataFile> = Vec::with_capacity(opened.len());
        let mut first: Option<(SchemaRef, Format)> = None;
        for (file, file_schema, file_format) in opened {
            match &first {
                None => first = Some((file_schema, file_format)),
                Some((schema, format)) => {
                    if !same_columns(schema, &file_schema) || *format != file_format {
                        return Err(Error::SchemaMismatch {
                            path: file.path,
                            first: files
                                .first()
                                .map(|f| f.path.display().to_string())
                                .unwrap_or_default(),
                        });
                    }
                }
            }
            files.push(file);
        }
        let Some((schema, format)) = first else {
            return Err(Error::NotFound(location.to_owned()));
        };
        Ok(Self {
            name: location.to_owned(),
            format,
            schema,
            files,
        })
    }

    /// The location the dataset was opened from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format of its files.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The Arrow schema (the first file's; all files agree on names and types).
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The files, in the order their rows are numbered.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// The units of work, in row order.
    pub(crate) fn units(&self) -> Vec<Unit> {
        let mut units = Vec::new();
        for (i, file) in self.files.iter().enumerate() {
            match file.kind.parquet_meta() {
                Some(meta) => {
                    for rg in 0..meta.metadata().num_row_groups() {
                        units.push(Unit {
                            file: i,
                            row_group: Some(rg),
                        });
                    }
                }
                None => units.push(Unit {
                    file: i,
                    row_group: None,
                }),
            }
        }
        units
    }

    /// The number of rows of a unit when the file's metadata knows it (Parquet).
    pub(crate) fn unit_rows(&self, unit: Unit) -> Option<u64> {
        match (self.files[unit.file].kind.parquet_meta(), unit.row_group) {
            (Some(meta), Some(rg)) => u64::try_from(meta.metadata().row_group(rg).num_rows()).ok(),
            _ => None,
        }
    }

    /// The total number of rows when every file's metadata knows it (Parquet only).
    pub fn rows_from_metadata(&self) -> Option<u64> {
        self.units().into_iter().map(|u| self.unit_rows(u)).sum()
    }

    /// Parquet statistics of `column` in a unit: what the footer says without decoding.
    pub(crate) fn unit_stats(&self, unit: Unit, column: &str) -> Option<ColumnStats> {
        let (Some(meta), Some(rg)) = (self.files[unit.file].kind.parquet_meta(), unit.row_group)
        else {
            return None;
        };
        let rg_meta = meta.metadata().row_group(rg);
        let idx = rg_meta
            .columns()
            .iter()
            .position(|c| c.column_descr().path().parts() == [column.to_owned()])?;
        let stats = rg_meta.column(idx).statistics()?;
        let null_count = stats.null_count_opt()?;
        let rows = u64::try_from(rg_meta.num_rows()).ok()?;
        let (min, max) = match stats {
            Statistics::Int32(s) if s.min_is_exact() && s.max_is_exact() => (
                s.min_opt().map(|v| f64::from(*v)),
                s.max_opt().map(|v| f64::from(*v)),
            ),
            Statistics::Int64(s) if s.min_is_exact() && s.max_is_exact() => (
                s.min_opt().and_then(|v| exact_f64(*v)),
                s.max_opt().and_then(|v| exact_f64(*v)),
            ),
            _ => (None, None),
        };
        Some(ColumnStats {
            rows,
            null_count,
            min,
            max,
        })
    }

    /// The exact range of an integer column over the whole dataset from Parquet statistics, when
    /// every row group has them (`None` otherwise, or for CSV).
    pub(crate) fn int_range(&self, column: &str) -> Option<(i64, i64)> {
        let mut range: Option<(i64, i64)> = None;
        for unit in self.units() {
            let (Some(meta), Some(rg)) =
                (self.files[unit.file].kind.parquet_meta(), unit.row_group)
            else {
                return None;
            };
            let rg_meta = meta.metadata().row_group(rg);
            let idx = rg_meta
                .columns()
                .iter()
                .position(|c| c.column_descr().path().parts() == [column.to_owned()])?;
            let stats = rg_meta.column(idx).statistics()?;
            let (lo, hi) = match stats {
                Statistics::Int32(s) if s.min_is_exact() && s.max_is_exact() => {
                    match (s.min_opt(), s.max_opt()) {
                        (Some(a), Some(b)) => (i64::from(*a), i64::from(*b)),
                        _ if stats.null_count_opt() == u64::try_from(rg_meta.num_rows()).ok() => {
                            continue;
                        }
                        _ => return None,
                    }
                }
                Statistics::Int64(s) if s.min_is_exact() && s.max_is_exact() => {
                    match (s.min_opt(), s.max_opt()) {
                        (Some(a), Some(b)) => (*a, *b),
                        _ if stats.null_count_opt() == u64::try_from(rg_meta.num_rows()).ok() => {
                            continue;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            };
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        range
    }

    /// Reads a unit's batches, decoding only `columns` (names; all when `None`), and calls `f`
    /// on each batch in row order.
    pub(crate) fn scan_unit(
        &self,
        unit: Unit,
        columns: Option<&[String]>,
        dictionary: &[String],
        f: &mut dyn FnMut(&RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let file = &self.files[unit.file];
        let indices: Option<Vec<usize>> = columns.map(|cols| {
            let mut idx: Vec<usize> = cols
                .iter()
                .filter_map(|c| self.schema.index_of(c).ok())
                .collect();
            idx.sort_unstable();
            idx.dedup();
            idx
        });
        let open_local = || {
            File::open(&file.path).map_err(|source| Error::Io {
                path: file.path.clone(),
                source,
            })
        };
        match &file.kind {
            #[cfg(feature = "object-store")]
            FileKind::Remote(remote) => {
                crate::remote::scan(remote, &self.schema, unit.row_group, indices, BATCH_SIZE, f)?;
            }
            FileKind::Parquet(meta) => {
                let handle = open_local()?;
                let meta = with_dictionary(meta, dictionary);
                let mut builder =
                    ParquetRecordBatchReaderBuilder::new_with_metadata(handle, meta.clone())
                        .with_batch_size(BATCH_SIZE);
                if let Some(rg) = unit.row_group {
                    builder = builder.with_row_groups(vec![rg]);
                }
                if let Some(idx) = indices {
                    let mask = ProjectionMask::roots(meta.parquet_schema(), idx);
                    builder = builder.with_projection(mask);
                }
                let reader = builder.build().map_err(|source| Error::Parquet {
                    path: file.path.clone(),
                    source,
                })?;
                for batch in reader {
                    let batch = batch.map_err(|e| arrow_error(&file.path, e))?;
                    f(&batch)?;
                }
            }
            FileKind::Csv { delimiter } => {
                let handle = open_local()?;
                let mut builder = arrow::csv::ReaderBuilder::new(Arc::clone(&self.schema))
                    .with_header(true)
                    .with_delimiter(*delimiter)
                    .with_batch_size(BATCH_SIZE);
                if let Some(idx) = indices {
                    builder = builder.with_projection(idx);
                }
                let reader = builder
                    .build(handle)
                    .map_err(|e| arrow_error(&file.path, e))?;
                for batch in reader {
                    let batch = batch.map_err(|e| arrow_error(&file.path, e))?;
                    f(&batch)?;
                }
            }
        }
        Ok(())
    }
}

/// The reader metadata with the string columns named in `dictionary` read as
/// `Dictionary(Int32, Utf8)`: dictionary-encoded pages then decode to keys without building one
/// string per row (set checks evaluate each dictionary value once).
fn with_dictionary(meta: &ArrowReaderMetadata, dictionary: &[String]) -> ArrowReaderMetadata {
    if dictionary.is_empty() {
        return meta.clone();
    }
    let mut changed = false;
    let fields: Vec<Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if matches!(f.data_type(), DataType::Utf8) && dictionary.iter().any(|d| d == f.name()) {
                changed = true;
                f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                ))
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    if !changed {
        return meta.clone();
    }
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        meta.schema().metadata().clone(),
    ));
    let options = ArrowReaderOptions::new().with_schema(schema);
    ArrowReaderMetadata::try_new(Arc::clone(meta.metadata()), options)
        .unwrap_or_else(|_| meta.clone())
}

/// What a Parquet footer says about one column chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ColumnStats {
    /// Rows in the row group.
    pub(crate) rows: u64,
    /// Null values.
    pub(crate) null_count: u64,
    /// Exact minimum of the non-null values (integer columns only).
    pub(crate) min: Option<f64>,
    /// Exact maximum of the non-null values (integer columns only).
    pub(crate) max: Option<f64>,
}

fn exact_f64(v: i64) -> Option<f64> {
    // Only integers that f64 represents exactly take the statistics path.
    (v.unsigned_abs() <= (1u64 << 53)).then_some(v as f64)
}

pub(crate) fn arrow_error(path: &Path, err: ArrowError) -> Error {
    match err {
        ArrowError::CsvError(message) => Error::Csv {
            path: path.to_owned(),
            message: lower_first(&message),
        },
        ArrowError::ParseError(message) => Error::Csv {
            path: path.to_owned(),
            message: physical_line(&lower_first(&message)),
        },
        ArrowError::ParquetError(message) => Error::Parquet {
            path: path.to_owned(),
            source: parquet::errors::ParquetError::General(message),
        },
        ArrowError::ExternalError(e) => match e.downcast::<parquet::errors::ParquetError>() {
            Ok(source) => Error::Parquet {
                path: path.to_owned(),
                source: *source,
            },
            Err(e) => Error::Arrow {
                context: path.display().to_string(),
                source: ArrowError::ExternalError(e),
            },
        },
        other => Error::Arrow {
            context: path.display().to_string(),
            source: other,
        },
    }
}

/// Arrow numbers value-parse errors by data record (1-based, header not counted); ragged-row
/// errors already count physical lines. Report physical lines (the header is line 1) for both.
fn physical_line(message: &str) -> String {
    let Some(at) = message.find(" at line ") else {
        return message.to_owned();
    };
    let start = at + " at line ".len();
    let digits: String = message[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    match digits.parse::<u64>() {
        Ok(n) => format!(
            "{}{}{}",
            &message[..start],
            n + 1,
            &message[start + digits.len()..]
        ),
        Err(_) => message.to_owned(),
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

pub(crate) fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

pub(crate) fn is_data_file(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("parquet" | "pq" | "parq" | "csv" | "tsv")
    )
}

/// The files `location` names, in order.
fn resolve(location: &str, base: &Path) -> Result<Vec<PathBuf>> {
    let full = base.join(location);
    if is_glob(location) {
        let pattern = full.to_string_lossy().into_owned();
        let glob = globset::GlobBuilder::new(&pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Config(format!("{location}: bad glob: {e}")))?
            .compile_matcher();
        // Walk from the longest folder prefix without glob characters.
        let mut root = PathBuf::new();
        for comp in full.components() {
            let s = comp.as_os_str().to_string_lossy();
            if is_glob(&s) {
                break;
            }
            root.push(comp);
        }
        let mut out: Vec<PathBuf> = walkdir::WalkDir::new(&root)
            .sort_by_file_name()
            .into_iter()
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_type().is_file() && glob.is_match(e.path()))
            .map(walkdir::DirEntry::into_path)
            .collect();
        out.sort();
        if out.is_empty() {
            return Err(Error::NotFound(location.to_owned()));
        }
        return Ok(out);
    }
    if full.is_dir() {
        let mut out: Vec<PathBuf> = walkdir::WalkDir::new(&full)
            .sort_by_file_name()
            .into_iter()
            .filter_map(std::result::Result::ok)
            .filter(|e| {
                e.file_type().is_file()
                    && is_data_file(e.path())
                    && !e.file_name().to_string_lossy().starts_with(['.', '_'])
            })
            .map(walkdir::DirEntry::into_path)
            .collect();
        out.sort();
        if out.is_empty() {
            return Err(Error::NotFound(location.to_owned()));
        }
        return Ok(out);
    }
    if !full.exists() {
        return Err(Error::NotFound(location.to_owned()));
    }
    Ok(vec![full])
}

fn sniff_parquet(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let n = f.read(&mut magic).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(n == 4 && &magic == b"PAR1")
}

fn open_file(path: &Path, csv: &CsvOptions) -> Result<(DataFile, SchemaRef, Format)> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let parquet = match ext.as_deref() {
        Some("parquet" | "pq" | "parq") => true,
        Some("csv" | "tsv" | "txt") => false,
        _ => sniff_parquet(path)?,
    };
    if parquet {
        let handle = File::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let meta =
            ArrowReaderMetadata::load(&handle, ArrowReaderOptions::new()).map_err(|source| {
                Error::Parquet {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let schema = Arc::clone(meta.schema());
        return Ok((
            DataFile {
                path: path.to_owned(),
                kind: FileKind::Parquet(meta),
            },
            schema,
            Format::Parquet,
        ));
    }
    let delimiter = csv_delimiter(csv, ext.as_deref());
    let handle = File::open(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let schema = csv_schema(path, std::io::BufReader::new(handle), delimiter, csv)?;
    Ok((
        DataFile {
            path: path.to_owned(),
            kind: FileKind::Csv { delimiter },
        },
        schema,
        Format::Csv,
    ))
}

/// The delimiter for a CSV file with extension `ext`.
pub(crate) fn csv_delimiter(csv: &CsvOptions, ext: Option<&str>) -> u8 {
    csv.delimiter
        .unwrap_or(if ext == Some("tsv") { b'\t' } else { b',' })
}

/// The schema of a CSV file: inferred from its first records, overridden by declared types.
pub(crate) fn csv_schema(
    path: &Path,
    reader: impl std::io::Read,
    delimiter: u8,
    csv: &CsvOptions,
) -> Result<SchemaRef> {
    let format = arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter);
    let (inferred, _) = format
        .infer_schema(reader, csv.infer_rows)
        .map_err(|e| arrow_error(path, e))?;
    if inferred.fields().is_empty() {
        return Err(Error::Csv {
            path: path.to_owned(),
            message: "empty file: no header line".into(),
        });
    }
    let declared: HashMap<&str, &DataType> =
        csv.types.iter().map(|(n, t)| (n.as_str(), t)).collect();
    for (name, _) in &csv.types {
        if inferred.index_of(name).is_err() {
            let names: Vec<String> = inferred.fields().iter().map(|f| f.name().clone()).collect();
            return Err(Error::MissingColumn {
                data: path.display().to_string(),
                column: name.clone(),
                closest: crate::closest_names(name, &names),
            });
        }
    }
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match declared.get(f.name().as_str()) {
            Some(t) => Field::new(f.name(), (*t).clone(), true),
            None => f.as_ref().clone().with_nullable(true),
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}
