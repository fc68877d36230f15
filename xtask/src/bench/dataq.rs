//! `cargo xtask bench dataq`: a generated 10M-row Parquet file (id int64 unique, age int32 with
//! 0.1% nulls, plan string of 3 values, score float64, churned 0/1, ts timestamp) and a 1M-row
//! reference; the suite not_null(age), between(age, 0, 120), unique(id), in_set(plan),
//! in_set(churned), PSI drift of age. mlops (`mlops check`) side by side with the same checks in
//! pandas and as a pandera schema (both read included), and against the floor: decoding just the
//! needed columns with the `parquet` crate on all cores, measured in-process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{self, BenchContext, Measurement, Report, Row, Sample};

const PANDAS: &str = include_str!("dataq_pandas.py");
const PANDERA: &str = include_str!("dataq_pandera.py");
const ROWS: usize = 10_000_000;
const REF_ROWS: usize = 1_000_000;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("age", DataType::Int32, true),
        Field::new("plan", DataType::Utf8, false),
        Field::new("score", DataType::Float64, false),
        Field::new("churned", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]))
}

/// Writes `rows` seeded rows; ids are a bijection of 0..rows (unique, shuffled order).
fn generate(path: &Path, rows: usize, seed: u64, age_shift: i32) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(File::create(path)?, schema(), Some(props))?;
    let plans = ["basic", "pro", "enterprise"];
    let modulus = rows as u64;
    // A multiplier coprime with the row count makes i -> i*k mod n a permutation.
    let k = (0..)
        .map(|d| 7_919_u64 + d)
        .find(|k| gcd(*k, modulus) == 1)
        .unwrap_or(1);
    let chunk = 1_000_000.min(rows);
    let mut start = 0usize;
    while start < rows {
        let n = chunk.min(rows - start);
        let ids: Vec<i64> = (start..start + n)
            .map(|i| ((i as u64 * k) % modulus) as i64)
            .collect();
        let ages: Vec<Option<i32>> = (0..n)
            .map(|_| {
                if rng.random_bool(0.001) {
                    None
                } else {
                    Some(rng.random_range(18..90) + age_shift)
                }
            })
            .collect();
        let plan: Vec<&str> = (0..n).map(|_| plans[rng.random_range(0..3usize)]).collect();
        let score: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
        let churned: Vec<i64> = (0..n).map(|_| i64::from(rng.random_bool(0.2))).collect();
        let ts: Vec<i64> = (0..n)
            .map(|i| 1_767_225_600_000_000 + (start + i) as i64 * 1_000_000)
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int32Array::from(ages)),
            Arc::new(StringArray::from(plan)),
            Arc::new(Float64Array::from(score)),
            Arc::new(Int64Array::from(churned)),
            Arc::new(TimestampMicrosecondArray::from(ts)),
        ];
        w.write(&RecordBatch::try_new(schema(), cols)?)?;
        start += n;
    }
    w.close()?;
    Ok(())
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

const SUITE: &str = r#"
data = "data.parquet"
reference = "reference.parquet"

[[expect]]
type = "not_null"
column = "age"
mostly = 0.99

[[expect]]
type = "between"
column = "age"
min = 0
max = 120

[[expect]]
type = "unique"
column = "id"

[[expect]]
type = "in_set"
column = "plan"
values = ["basic", "pro", "enterprise"]

[[expect]]
type = "in_set"
column = "churned"
values = [0, 1]

[[expect]]
type = "drift"
column = "age"
method = "psi"
"#;

/// Decodes `columns` of every row group of `path` on all cores; returns the rows decoded.
fn decode_columns(path: &Path, columns: &[&str]) -> anyhow::Result<usize> {
    let meta = ArrowReaderMetadata::load(&File::open(path)?, ArrowReaderOptions::new())?;
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| meta.schema().index_of(c))
        .collect::<Result<_, _>>()?;
    let mask = ProjectionMask::roots(meta.parquet_schema(), idx);
    let groups = meta.metadata().num_row_groups();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let rg = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if rg >= groups {
                            return Ok(());
                        }
                        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                            File::open(path)?,
                            meta.clone(),
                        )
                        .with_row_groups(vec![rg])
                        .with_projection(mask.clone())
                        .with_batch_size(64 * 1024)
                        .build()?;
                        for batch in reader {
                            total
                                .fetch_add(batch?.num_rows(), std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("decode thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(total.into_inner())
}

fn python_cmd(python: &Path, script: &Path, dir: &Path) -> Command {
    let mut c = Command::new(python);
    c.arg(script)
        .arg(dir.join("data.parquet"))
        .arg(dir.join("reference.parquet"))
        .current_dir(dir);
    c
}

pub(crate) fn run(ctx: &BenchContext) -> anyhow::Result<Report> {
    let dir = ctx.dir("dataq")?;
    let rows = ROWS / ctx.shrink;
    let ref_rows = REF_ROWS / ctx.shrink;
    eprintln!("generating {rows} rows and a {ref_rows}-row reference");
    generate(&dir.join("data.parquet"), rows, 42, 0)?;
    generate(&dir.join("reference.parquet"), ref_rows, 7, 1)?;
    let suite = dir.join("suite.toml");
    std::fs::write(&suite, SUITE)?;
    let pandas_py = dir.join("pandas_suite.py");
    std::fs::write(&pandas_py, PANDAS)?;
    let pandera_py = dir.join("pandera_suite.py");
    std::fs::write(&pandera_py, PANDERA)?;

    let mlops = || {
        let mut c = Command::new(&ctx.mlops);
        c.arg("-q").arg("check").arg("suite.toml").current_dir(&dir);
        c
    };
    // Warm the page cache and check both agree before timing.
    harness::time_once(&mlops()).context("mlops check failed on the benchmark data")?;
    let mut report = Report::default();
    let python = ctx.peer("python");
    let workload = format!(
        "read {}M rows + not_null, between, unique, in_set x2, psi drift",
        rows / 1_000_000
    );

    match &python {
        Some(py) => {
            let (ours, pandas) = harness::compare(
                ctx.runs,
                || Ok(()),
                mlops,
                || Ok(()),
                || python_cmd(py, &pandas_py, &dir),
            )?;
            report.rows.push(Row {
                workload: workload.clone(),
                peer: "pandas".into(),
                ours,
                theirs: Some(pandas),
                goal: Some(10.0),
            });
            let (ours2, pandera) = harness::compare(
                ctx.runs,
                || Ok(()),
                mlops,
                || Ok(()),
                || python_cmd(py, &pandera_py, &dir),
            )?;
            report.rows.push(Row {
                workload: workload.clone(),
                peer: "pandera".into(),
                ours: ours2,
                theirs: Some(pandera),
                goal: Some(1.0),
            });
            let mem = ours.max_rss_kib as f64 / pandas.max_rss_kib.max(1) as f64;
            report.notes.push(format!(
                "Peak memory: mlops {:.0} MiB = {:.0}% of pandas ({:.0} MiB); goal under 25%: {}.",
                ours.max_rss_kib as f64 / 1024.0,
                mem * 100.0,
                pandas.max_rss_kib as f64 / 1024.0,
                if mem < 0.25 { "met" } else { "NOT met" }
            ));
        }
        None => {
            let ours = harness::measure(ctx.runs, || Ok(()), mlops)?;
            for peer in ["pandas", "pandera"] {
                report.rows.push(Row {
                    workload: workload.clone(),
                    peer: peer.into(),
                    ours,
                    theirs: None,
                    goal: None,
                });
            }
        }
    }

    // The floor: decode just the needed columns (data: id, age, plan, churned; reference: age),
    // alternating with mlops runs so both see the same machine load.
    let mut floor_samples = Vec::new();
    let mut ours_samples = Vec::new();
    for _ in 0..ctx.runs {
        ours_samples.push(harness::time_once(&mlops())?);
        let t = Instant::now();
        let n = decode_columns(&dir.join("data.parquet"), &["id", "age", "plan", "churned"])?
            + decode_columns(&dir.join("reference.parquet"), &["age"])?;
        anyhow::ensure!(n == rows + ref_rows, "floor decoded {n} rows");
        floor_samples.push(Sample {
            wall: t.elapsed(),
            max_rss_kib: 0,
        });
    }
    report.rows.push(Row {
        workload: "floor: decode the needed columns with the parquet crate (in-process, all cores)"
            .into(),
        peer: "parquet crate decode".into(),
        ours: Measurement::of(&ours_samples),
        theirs: Some(Measurement::of(&floor_samples)),
        goal: Some(0.67),
    });
    let pandas_version = python
        .as_ref()
        .and_then(|py| {
            Command::new(py)
                .args(["-c", "import pandas, pandera, pyarrow; print(pandas.__version__, pandera.__version__, pyarrow.__version__)"])
                .output()
                .ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "not installed".into());
    report.notes.push(format!(
        "pandas / pandera / pyarrow: {pandas_version}. Both Python sides read only the needed columns (read included); \
         pandera validates lazily and PSI is computed in numpy after it. The floor row's ratio is floor/mlops: \
         goal 0.67 = mlops within 1.5x of the floor; its peak RSS is not measured (in-process)."
    ));
    report.notes.push(format!(
        "Data: {} ({:.0} MiB), reference {} rows.",
        PathBuf::from("data.parquet").display(),
        file_mib(&dir.join("data.parquet")),
        ref_rows
    ));
    Ok(report)
}

fn file_mib(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1_048_576.0)
}
