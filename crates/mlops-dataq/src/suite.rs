//! Suites from TOML: `[checks.NAME]` tables in `mlops.toml` (other sections are ignored) or a
//! standalone suite file (either `[checks.NAME]` tables or one suite at the top level). Errors
//! name the file, line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::dataset::CsvOptions;
use crate::error::{Error, Result};
use crate::model::{DriftMethod, Expectation, Kind, Scalar, Severity, Stat, Suite, TypeSpec};

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    checks: Option<Spanned<BTreeMap<String, Spanned<RawSuite>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    #[serde(default)]
    description: Option<String>,
    data: Spanned<String>,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    sample_rows: Option<usize>,
    #[serde(default)]
    csv: Option<Spanned<RawCsv>>,
    #[serde(default)]
    expect: Vec<Spanned<RawExpectation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCsv {
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    types: BTreeMap<String, String>,
    #[serde(default)]
    infer_rows: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpectation {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    mostly: Option<f64>,
    severity: Option<String>,
    column: Option<String>,
    columns: Option<toml::Value>,
    min: Option<toml::Value>,
    max: Option<toml::Value>,
    strict: Option<bool>,
    strict_min: Option<bool>,
    strict_max: Option<bool>,
    values: Option<Vec<toml::Value>>,
    sentinels: Option<Vec<toml::Value>>,
    pattern: Option<String>,
    q: Option<Vec<f64>>,
    min_fraction: Option<f64>,
    max_fraction: Option<f64>,
    min_count: Option<u64>,
    other: Option<String>,
    method: Option<String>,
    threshold: Option<f64>,
    drift_share: Option<f64>,
    bins: Option<usize>,
    reference: Option<String>,
    max_age: Option<String>,
    forbidden: Option<Vec<String>>,
}

impl RawExpectation {
    /// The option keys present (besides `type`, `name`, `mostly`, `severity`).
    fn present(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! check {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        check!(
            column,
            columns,
            min,
            max,
            strict,
            strict_min,
            strict_max,
            values,
            sentinels,
            pattern,
            q,
            min_fraction,
            max_fraction,
            min_count,
            other,
            method,
            threshold,
            drift_share,
            bins,
            reference,
            max_age,
            forbidden
        );
        v
    }
}

/// Where a suite comes from, for error messages.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let (line, column) = line_col(self.text, span.start);
        Error::Suite {
            path: self.path.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn toml_error(&self, err: &toml::de::Error) -> Error {
        let span = err.span().unwrap_or(0..0);
        let message = err.message().trim().to_owned();
        self.error(span, message)
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses the `[checks.*]` suites of `text` (the contents of `path`, e.g. `mlops.toml`),
/// ignoring every other section. Relative data paths resolve against `path`'s folder.
///
/// Fails with the file, line and column on malformed TOML or an invalid expectation.
pub fn parse_config(path: &Path, text: &str) -> Result<Vec<Suite>> {
    let src = Source { path, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    let Some(checks) = raw.checks else {
        return Ok(Vec::new());
    };
    let base = path.parent().unwrap_or(Path::new("")).to_owned();
    checks
        .into_inner()
        .into_iter()
        .map(|(name, raw)| build_suite(&src, name, raw, &base))
        .collect()
}

/// Parses a standalone suite file: `[checks.NAME]` tables, or one suite at the top level (named
/// after the file's stem).
pub fn parse_suite_file(path: &Path, text: &str) -> Result<Vec<Suite>> {
    let src = Source { path, text };
    let value: toml::Table = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    if value.contains_key("checks") {
        return parse_config(path, text);
    }
    let raw: Spanned<RawSuite> = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    let name = path
        .file_stem()
        .map_or_else(|| "suite".to_owned(), |s| s.to_string_lossy().into_owned());
    let base = path.parent().unwrap_or(Path::new("")).to_owned();
    Ok(vec![build_suite(&src, name, raw, &base)?])
}

/// Reads and parses a suite file (see [`parse_suite_file`]).
pub fn load_suite_file(path: &Path) -> Result<Vec<Suite>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_suite_file(path, &text)
}

fn build_suite(
    src: &Source<'_>,
    name: String,
    raw: Spanned<RawSuite>,
    base: &Path,
) -> Result<Suite> {
    let raw = raw.into_inner();
    let _ = raw.description;
    let mut csv = CsvOptions::default();
    if let Some(c) = raw.csv {
        let span = c.span();
        let c = c.into_inner();
        if let Some(d) = c.delimiter {
            let bytes = d.as_bytes();
            let d = match d.as_str() {
                "\\t" | "tab" => b'\t',
                _ if bytes.len() == 1 => bytes[0],
                _ => {
                    return Err(src.error(
                        span,
                        format!("csv.delimiter must be one character, got `{d}`"),
                    ));
                }
            };
            csv.delimiter = Some(d);
        }
        for (col, t) in c.types {
            let spec = TypeSpec::parse(&t).ok_or_else(|| {
                src.error(
                    span.clone(),
                    format!("csv.types.{col}: unknown type `{t}`; {TYPES_HINT}"),
                )
            })?;
            csv.types.push((col, spec.csv_type()));
        }
        if c.infer_rows.is_some() {
            csv.infer_rows = c.infer_rows;
        }
    }
    let data_span = raw.data.span();
    let data = raw.data.into_inner();
    if data.trim().is_empty() {
        return Err(src.error(data_span, "`data` is empty: give a file, directory or glob"));
    }
    let mut suite = Suite::new(name, data, base);
    suite.reference = raw.reference;
    suite.csv = csv;
    if let Some(n) = raw.sample_rows {
        suite.sample_rows = n;
    }
    for e in raw.expect {
        let span = e.span();
        suite
            .expectations
            .push(build_expectation(src, span, e.into_inner())?);
    }
    Ok(suite)
}

const TYPES_HINT: &str = "use int8..int64, uint8..uint64, float32, float64, bool, date, timestamp, string, or integer/float/numeric";

fn allowed(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "row_count" => &["min", "max"],
        "schema" => &["columns", "strict", "forbidden"],
        "unique" => &["column", "columns"],
        "not_null" => &["column", "sentinels"],
        "between" => &["column", "min", "max", "strict", "strict_min", "strict_max"],
        "in_set" | "not_in_set" => &["column", "values"],
        "regex" => &["column", "pattern"],
        "length_between" => &["column", "min", "max"],
        "increasing" => &["column", "strict"],
        "mean" | "median" | "stddev" | "min" | "max" | "sum" | "distinct_count"
        | "unique_ratio" => &["column", "min", "max"],
        "quantiles" => &["column", "q", "min", "max"],
        "class_balance" => &["column", "min_fraction", "max_fraction", "min_count"],
        "no_overlap" => &["column", "columns", "other"],
        "drift" => &[
            "column",
            "columns",
            "method",
            "threshold",
            "drift_share",
            "bins",
            "reference",
        ],
        "freshness" => &["column", "max_age"],
        _ => return None,
    })
}

const KINDS: &str = "row_count, schema, unique, not_null, between, in_set, not_in_set, regex, length_between, increasing, mean, median, stddev, min, max, sum, quantiles, distinct_count, unique_ratio, class_balance, no_overlap, drift, freshness";

fn build_expectation(
    src: &Source<'_>,
    span: Range<usize>,
    raw: RawExpectation,
) -> Result<Expectation> {
    let err = |msg: String| src.error(span.clone(), format!("expectation `{}`: {msg}", raw.kind));
    let Some(allowed) = allowed(&raw.kind) else {
        return Err(src.error(
            span.clone(),
            format!("unknown expectation type `{}`; known: {KINDS}", raw.kind),
        ));
    };
    for key in raw.present() {
        if !allowed.contains(&key) {
            return Err(err(format!(
                "unknown option `{key}`; allowed: {}",
                allowed.join(", ")
            )));
        }
    }
    let column = || {
        raw.column
            .clone()
            .ok_or_else(|| err("needs `column`".into()))
    };
    let columns = || -> Result<Vec<String>> {
        match (&raw.column, &raw.columns) {
            (Some(c), None) => Ok(vec![c.clone()]),
            (None, Some(toml::Value::Array(a))) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| err("`columns` must be a list of names".into()))
                })
                .collect(),
            (None, Some(toml::Value::String(s))) => Ok(vec![s.clone()]),
            (Some(_), Some(_)) => Err(err("give `column` or `columns`, not both".into())),
            (None, None) => Err(err("needs `column` or `columns`".into())),
            (None, Some(_)) => Err(err("`columns` must be a list of names".into())),
        }
    };
    let num = |v: &Option<toml::Value>, key: &str| -> Result<Option<f64>> {
        match v {
            None => Ok(None),
            Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
            Some(toml::Value::Float(f)) => Ok(Some(*f)),
            Some(other) => Err(err(format!(
                "`{key}` must be a number, got {}",
                other.type_str()
            ))),
        }
    };
    let count = |v: &Option<toml::Value>, key: &str| -> Result<Option<u64>> {
        match v {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as u64)),
            Some(_) => Err(err(format!("`{key}` must be a non-negative integer"))),
        }
    };
    let bounds_needed = |min: &Option<f64>, max: &Option<f64>| -> Result<()> {
        if min.is_none() && max.is_none() {
            return Err(err("needs `min` or `max`".into()));
        }
        if let (Some(a), Some(b)) = (min, max)
            && a > b
        {
            return Err(err(format!("`min` ({a}) is greater than `max` ({b})")));
        }
        Ok(())
    };
    let scalars = |v: &Option<Vec<toml::Value>>, key: &str| -> Result<Vec<Scalar>> {
        v.iter()
            .flatten()
            .map(|x| match x {
                toml::Value::Boolean(b) => Ok(Scalar::Bool(*b)),
                toml::Value::Integer(i) => Ok(Scalar::Int(*i)),
                toml::Value::Float(f) => Ok(Scalar::Float(*f)),
                toml::Value::String(s) => Ok(Scalar::Str(s.clone())),
                other => Err(err(format!(
                    "`{key}` entries must be strings, numbers or booleans, got {}",
                    other.type_str()
                ))),
            })
            .collect()
    };

    let kind = match raw.kind.as_str() {
        "row_count" => {
            let (min, max) = (count(&raw.min, "min")?, count(&raw.max, "max")?);
            bounds_needed(&min.map(|x| x as f64), &max.map(|x| x as f64))?;
            Kind::RowCount { min, max }
        }
        "schema" => {
            let columns = match &raw.columns {
                None => Vec::new(),
                Some(toml::Value::Table(t)) => t
                    .iter()
                    .map(|(name, ty)| {
                        let ty = ty
                            .as_str()
                            .ok_or_else(|| err(format!("columns.{name} must be a type name")))?;
                        let spec = TypeSpec::parse(ty).ok_or_else(|| {
                            err(format!("columns.{name}: unknown type `{ty}`; {TYPES_HINT}"))
                        })?;
                        Ok((name.clone(), spec))
                    })
                    .collect::<Result<Vec<_>>>()?,
                Some(_) => return Err(err("`columns` must be a table of name = \"type\"".into())),
            };
            let forbidden = raw.forbidden.clone().unwrap_or_default();
            for g in &forbidden {
                globset::Glob::new(g).map_err(|e| err(format!("forbidden glob `{g}`: {e}")))?;
            }
            Kind::Schema {
                columns,
                strict: raw.strict.unwrap_or(false),
                forbidden,
            }
        }
        "unique" => Kind::Unique {
            columns: columns()?,
        },
        "not_null" => Kind::NotNull {
            column: column()?,
            sentinels: scalars(&raw.sentinels, "sentinels")?,
        },
        "between" => {
            let (min, max) = (num(&raw.min, "min")?, num(&raw.max, "max")?);
            bounds_needed(&min, &max)?;
            let strict = raw.strict.unwrap_or(false);
            Kind::Between {
                column: column()?,
                min,
                max,
                strict_min: raw.strict_min.unwrap_or(strict),
                strict_max: raw.strict_max.unwrap_or(strict),
            }
        }
        "in_set" | "not_in_set" => {
            let values = scalars(&raw.values, "values")?;
            if raw.values.is_none() {
                return Err(err("needs `values`".into()));
            }
            if raw.kind == "in_set" {
                Kind::InSet {
                    column: column()?,
                    values,
                }
            } else {
                Kind::NotInSet {
                    column: column()?,
                    values,
                }
            }
        }
        "regex" => {
            let pattern = raw
                .pattern
                .clone()
                .ok_or_else(|| err("needs `pattern`".into()))?;
            regex::Regex::new(&pattern).map_err(|e| err(format!("bad pattern: {e}")))?;
            Kind::Regex {
                column: column()?,
                pattern,
            }
        }
        "length_between" => {
            let (min, max) = (count(&raw.min, "min")?, count(&raw.max, "max")?);
            bounds_needed(&min.map(|x| x as f64), &max.map(|x| x as f64))?;
            Kind::LengthBetween {
                column: column()?,
                min,
                max,
            }
        }
        "increasing" => Kind::Increasing {
            column: column()?,
            strict: raw.strict.unwrap_or(false),
        },
        "mean" | "median" | "stddev" | "min" | "max" | "sum" | "distinct_count"
        | "unique_ratio" => {
            let stat = match raw.kind.as_str() {
                "mean" => Stat::Mean,
                "median" => Stat::Median,
                "stddev" => Stat::Stddev,
                "min" => Stat::Min,
                "max" => Stat::Max,
                "sum" => Stat::Sum,
                "distinct_count" => Stat::DistinctCount,
                _ => Stat::UniqueRatio,
            };
            let (min, max) = (num(&raw.min, "min")?, num(&raw.max, "max")?);
            bounds_needed(&min, &max)?;
            Kind::Aggregate {
                column: column()?,
                stat,
                min,
                max,
            }
        }
        "quantiles" => {
            let q = raw
                .q
                .clone()
                .ok_or_else(|| err("needs `q` (a list of quantiles in [0, 1])".into()))?;
            let list = |v: &Option<toml::Value>, key: &str| -> Result<Vec<f64>> {
                match v {
                    Some(toml::Value::Array(a)) => a
                        .iter()
                        .map(|x| match x {
                            toml::Value::Integer(i) => Ok(*i as f64),
                            toml::Value::Float(f) => Ok(*f),
                            _ => Err(err(format!("`{key}` must be a list of numbers"))),
                        })
                        .collect(),
                    None => Ok(vec![f64::NEG_INFINITY; q.len()]),
                    Some(_) => Err(err(format!(
                        "`{key}` must be a list of numbers, one per quantile"
                    ))),
                }
            };
            let mut min = list(&raw.min, "min")?;
            let mut max = list(&raw.max, "max")?;
            if raw.max.is_none() {
                max = vec![f64::INFINITY; q.len()];
            }
            if raw.min.is_none() {
                min = vec![f64::NEG_INFINITY; q.len()];
            }
            if min.len() != q.len() || max.len() != q.len() {
                return Err(err(
                    "`min` and `max` need one entry per quantile in `q`".into()
                ));
            }
            if q.iter().any(|x| !(0.0..=1.0).contains(x)) {
                return Err(err("quantiles in `q` must be within [0, 1]".into()));
            }
            Kind::Quantiles {
                column: column()?,
                q,
                min,
                max,
            }
        }
        "class_balance" => {
            if raw.min_fraction.is_none() && raw.max_fraction.is_none() && raw.min_count.is_none() {
                return Err(err(
                    "needs `min_fraction`, `max_fraction` or `min_count`".into()
                ));
            }
            Kind::ClassBalance {
                column: column()?,
                min_fraction: raw.min_fraction,
                max_fraction: raw.max_fraction,
                min_count: raw.min_count,
            }
        }
        "no_overlap" => Kind::NoOverlap {
            columns: columns()?,
            other: raw
                .other
                .clone()
                .ok_or_else(|| err("needs `other` (the dataset to compare with)".into()))?,
        },
        "drift" => {
            let method = match raw.method.as_deref().unwrap_or("auto") {
                "psi" => DriftMethod::Psi,
                "ks" => DriftMethod::Ks,
                "wasserstein" => DriftMethod::Wasserstein,
                "jensen_shannon" | "js" => DriftMethod::JensenShannon,
                "chi2" | "chisquare" => DriftMethod::Chi2,
                "auto" => DriftMethod::Auto,
                other => {
                    return Err(err(format!(
                        "unknown method `{other}`; use psi, ks, wasserstein, jensen_shannon, chi2 or auto"
                    )));
                }
            };
            let drift_share = raw.drift_share.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&drift_share) {
                return Err(err("`drift_share` must be within [0, 1]".into()));
            }
            let bins = raw.bins.unwrap_or(10);
            if bins < 2 {
                return Err(err("`bins` must be at least 2".into()));
            }
            let columns = if raw.column.is_some() || raw.columns.is_some() {
                columns()?
            } else {
                Vec::new()
            };
            Kind::Drift {
                columns,
                method,
                threshold: raw.threshold,
                drift_share,
                bins,
                reference: raw.reference.clone(),
            }
        }
        "freshness" => {
            let text = raw
                .max_age
                .clone()
                .ok_or_else(|| err("needs `max_age` (e.g. \"36h\")".into()))?;
            let max_age = humantime::parse_duration(&text)
                .map_err(|e| err(format!("bad `max_age` `{text}`: {e}")))?;
            Kind::Freshness {
                column: column()?,
                max_age,
            }
        }
        _ => unreachable!("checked by allowed()"),
    };
    let mostly = raw.mostly.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&mostly) {
        return Err(err(format!("`mostly` must be within [0, 1], got {mostly}")));
    }
    if raw.mostly.is_some() && !kind.row_level() {
        return Err(err("`mostly` applies only to row-level expectations".into()));
    }
    let severity = match raw.severity.as_deref() {
        None | Some("error") => Severity::Error,
        Some("warn" | "warning") => Severity::Warn,
        Some(other) => {
            return Err(err(format!(
                "unknown severity `{other}`; use error or warn"
            )));
        }
    };
    Ok(Expectation {
        kind,
        mostly,
        severity,
        name: raw.name,
    })
}
