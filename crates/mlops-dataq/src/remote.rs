//! Datasets in object stores (`s3://bucket/prefix/…`, `file:///…`, other `object_store`
//! schemes compiled in): listing, globbing, Parquet through the async reader (only the needed
//! row groups and columns are fetched), CSV fetched whole. Credentials and endpoints come from
//! the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, …), never from suites.

// `ParquetObjectReader` is deprecated in parquet 60 in favour of a hand-written
// `AsyncFileReader`; it still does exactly what is needed here (ranged GETs of the footer and the
// projected column chunks). Replace it when the workspace moves past parquet 60.
#![allow(deprecated)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetObjectReader;

use crate::dataset::{
    CsvOptions, DataFile, FileKind, Format, arrow_error, csv_delimiter, csv_schema, is_data_file,
};
use crate::error::{Error, Result};

/// One object of a dataset.
#[derive(Debug)]
pub(crate) struct RemoteFile {
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    url: String,
    size: u64,
    /// Footer metadata when the object is Parquet.
    pub(crate) parquet: Option<ArrowReaderMetadata>,
    delimiter: u8,
}

fn runtime(url: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::ObjectStore {
            url: url.to_owned(),
            message: e.to_string(),
        })
}

fn store_error(url: &str, e: impl std::fmt::Display) -> Error {
    Error::ObjectStore {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// Store options from the environment: every `AWS_*` variable, lower-cased, as `object_store`
/// expects (`aws_endpoint_url`, `aws_allow_http`, …).
fn env_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("AWS_") || k.starts_with("GOOGLE_") || k.starts_with("AZURE_")
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Lists and opens the objects `location` names: one object, every data file under a prefix,
/// or those matching a glob in the last path segments.
pub(crate) fn open(location: &str, csv: &CsvOptions) -> Result<Vec<(DataFile, SchemaRef, Format)>> {
    // The part of the URL before the first glob segment addresses the store and the prefix.
    let (base, pattern) = match location.find(['*', '?', '[', '{']) {
        Some(g) => {
            let cut = location[..g].rfind('/').unwrap_or(g);
            (&location[..cut], Some(&location[cut + 1..]))
        }
        None => (location, None),
    };
    let url = url::Url::parse(base).map_err(|e| store_error(location, format!("bad url: {e}")))?;
    let (store, prefix) =
        object_store::parse_url_opts(&url, env_options()).map_err(|e| store_error(location, e))?;
    let store: Arc<dyn ObjectStore> = Arc::from(store);
    let rt = runtime(location)?;
    rt.block_on(async {
        let mut metas = Vec::new();
        match pattern {
            Some(pattern) => {
                let full = if prefix.as_ref().is_empty() {
                    pattern.to_owned()
                } else {
                    format!("{}/{pattern}", prefix.as_ref())
                };
                let glob = globset::GlobBuilder::new(&full)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::Config(format!("{location}: bad glob: {e}")))?
                    .compile_matcher();
                let mut list = store.list(Some(&prefix));
                while let Some(m) = list.next().await {
                    let m = m.map_err(|e| store_error(location, e))?;
                    if glob.is_match(m.location.as_ref()) {
                        metas.push(m);
                    }
                }
            }
            None => match store.head(&prefix).await {
                Ok(m) => metas.push(m),
                Err(object_store::Error::NotFound { .. }) => {
                    let mut list = store.list(Some(&prefix));
                    while let Some(m) = list.next().await {
                        let m = m.map_err(|e| store_error(location, e))?;
                        let name = m.location.filename().unwrap_or("");
                        if is_data_file(Path::new(m.location.as_ref()))
                            && !name.starts_with(['.', '_'])
                        {
                            metas.push(m);
                        }
                    }
                }
                Err(e) => return Err(store_error(location, e)),
            },
        }
        if metas.is_empty() {
            return Err(Error::NotFound(location.to_owned()));
        }
        metas.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        let scheme_base = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            let object_url = format!("{scheme_base}/{}", m.location.as_ref());
            let ext = Path::new(m.location.as_ref())
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            let is_parquet = !matches!(ext.as_deref(), Some("csv" | "tsv" | "txt"));
            let (parquet, schema, format, delimiter) = if is_parquet {
                let mut reader = ParquetObjectReader::new(Arc::clone(&store), m.location.clone())
                    .with_file_size(m.size);
                let meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
                    .await
                    .map_err(|source| Error::Parquet {
                        path: PathBuf::from(&object_url),
                        source,
                    })?;
                let schema = Arc::clone(meta.schema());
                (Some(meta), schema, Format::Parquet, b',')
            } else {
                let delimiter = csv_delimiter(csv, ext.as_deref());
                let bytes = store
                    .get(&m.location)
                    .await
                    .map_err(|e| store_error(&object_url, e))?
                    .bytes()
                    .await
                    .map_err(|e| store_error(&object_url, e))?;
                let schema = csv_schema(Path::new(&object_url), &bytes[..], delimiter, csv)?;
                (None, schema, Format::Csv, delimiter)
            };
            let file = RemoteFile {
                store: Arc::clone(&store),
                location: m.location.clone(),
                url: object_url.clone(),
                size: m.size,
                parquet,
                delimiter,
            };
            out.push((
                DataFile {
                    path: PathBuf::from(object_url),
                    kind: FileKind::Remote(file),
                },
                schema,
                format,
            ));
        }
        Ok(out)
    })
}

/// Reads one unit of a remote file (a row group, or the whole CSV object), decoding only the
/// columns at `indices`, and calls `f` on each batch in row order.
pub(crate) fn scan(
    file: &RemoteFile,
    schema: &SchemaRef,
    row_group: Option<usize>,
    indices: Option<Vec<usize>>,
    batch_size: usize,
    f: &mut dyn FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let rt = runtime(&file.url)?;
    let path = PathBuf::from(&file.url);
    rt.block_on(async {
        match &file.parquet {
            Some(meta) => {
                let reader =
                    ParquetObjectReader::new(Arc::clone(&file.store), file.location.clone())
                        .with_file_size(file.size);
                let mut builder =
                    ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta.clone())
                        .with_batch_size(batch_size);
                if let Some(rg) = row_group {
                    builder = builder.with_row_groups(vec![rg]);
                }
                if let Some(idx) = indices {
                    builder =
                        builder.with_projection(ProjectionMask::roots(meta.parquet_schema(), idx));
                }
                let mut stream = builder.build().map_err(|source| Error::Parquet {
                    path: path.clone(),
                    source,
                })?;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|source| Error::Parquet {
                        path: path.clone(),
                        source,
                    })?;
                    f(&batch)?;
                }
            }
            None => {
                let bytes = file
                    .store
                    .get(&file.location)
                    .await
                    .map_err(|e| store_error(&file.url, e))?
                    .bytes()
                    .await
                    .map_err(|e| store_error(&file.url, e))?;
                let mut builder = arrow::csv::ReaderBuilder::new(Arc::clone(schema))
                    .with_header(true)
                    .with_delimiter(file.delimiter)
                    .with_batch_size(batch_size);
                if let Some(idx) = indices {
                    builder = builder.with_projection(idx);
                }
                let reader = builder
                    .build(&bytes[..])
                    .map_err(|e| arrow_error(&path, e))?;
                for batch in reader {
                    let batch = batch.map_err(|e| arrow_error(&path, e))?;
                    f(&batch)?;
                }
            }
        }
        Ok(())
    })
}
