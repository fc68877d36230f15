//! `mlops check --infer DATA`: a starting suite written from the data (column types, null-free
//! columns, observed ranges and small sets), for the user to edit.

use std::fmt::Write as _;
use std::path::Path;

use crate::dataset::{CsvOptions, Dataset};
use crate::engine::{CheckOptions, run_suite};
use crate::error::Result;
use crate::model::{Expectation, Kind, Stat, Suite, is_string, type_name};

/// Columns with at most this many distinct values get an `in_set`.
const MAX_SET: usize = 20;

/// Reads `data` (relative to `base`) and returns a suite named `name` as TOML text:
/// `[checks.NAME]` with a `schema`, a `row_count` lower bound, `not_null` for null-free columns,
/// `between` with the observed range for numeric columns and `in_set` for columns with at most
/// 20 distinct values (and at most half as many as rows, so keys are not taken for sets).
pub fn infer_suite(name: &str, data: &str, base: &Path) -> Result<String> {
    let ds = Dataset::open(data, base, &CsvOptions::default())?;
    let schema = ds.schema().clone();
    // One scan gathers what we need: nulls, min/max and distinct counts per column.
    let mut probe = Suite::new(name, data, base);
    for f in schema.fields() {
        let col = f.name().clone();
        let dt = f.data_type();
        probe = probe.expect(Expectation::new(Kind::NotNull {
            column: col.clone(),
            sentinels: Vec::new(),
        }));
        if dt.is_numeric() {
            for stat in [Stat::Min, Stat::Max] {
                probe = probe.expect(Expectation::new(Kind::Aggregate {
                    column: col.clone(),
                    stat,
                    min: None,
                    max: Some(f64::INFINITY),
                }));
            }
        }
        if dt.is_integer() || is_string(dt) || matches!(dt, arrow::datatypes::DataType::Boolean) {
            probe = probe.expect(Expectation::new(Kind::Aggregate {
                column: col.clone(),
                stat: Stat::DistinctCount,
                min: None,
                max: Some(f64::INFINITY),
            }));
        }
    }
    probe.sample_rows = 0;
    let report = run_suite(&probe, &CheckOptions::default())?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Starting suite inferred from {data} ({} rows). Edit the bounds before relying on it.",
        report.rows
    );
    let _ = writeln!(out, "[checks.{}]", toml_key(name));
    let _ = writeln!(out, "data = {}", toml_str(data));
    let _ = writeln!(out);
    let _ = writeln!(out, "[[checks.{}.expect]]", toml_key(name));
    let _ = writeln!(out, "type = \"schema\"");
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "{} = {}",
                toml_key(f.name()),
                toml_str(&type_name(f.data_type()))
            )
        })
        .collect();
    let _ = writeln!(out, "columns = {{ {} }}", cols.join(", "));
    let _ = writeln!(out);
    let _ = writeln!(out, "[[checks.{}.expect]]", toml_key(name));
    let _ = writeln!(out, "type = \"row_count\"");
    let _ = writeln!(out, "min = {}", if report.rows > 0 { 1 } else { 0 });
    let mut results = report.results.iter();
    for f in schema.fields() {
        let col = f.name();
        let dt = f.data_type();
        let header = |out: &mut String, kind: &str| {
            let _ = writeln!(out);
            let _ = writeln!(out, "[[checks.{}.expect]]", toml_key(name));
            let _ = writeln!(out, "type = \"{kind}\"");
            let _ = writeln!(out, "column = {}", toml_str(col));
        };
        if let Some(nn) = results.next()
            && nn.passed
            && report.rows > 0
        {
            header(&mut out, "not_null");
        }
        if dt.is_numeric() {
            let (min, max) = (results.next(), results.next());
            if let (Some(min), Some(max)) = (min, max)
                && !min.observed.is_null()
                && !max.observed.is_null()
            {
                header(&mut out, "between");
                let _ = writeln!(out, "min = {}", min.observed);
                let _ = writeln!(out, "max = {}", max.observed);
            }
        }
        if (dt.is_integer() || is_string(dt) || matches!(dt, arrow::datatypes::DataType::Boolean))
            && let Some(d) = results.next()
        {
            let distinct = d.observed.as_u64().unwrap_or(u64::MAX);
            if distinct > 0 && (distinct as usize) <= MAX_SET && distinct * 2 <= report.rows {
                let values = distinct_values(&ds, col, base, data)?;
                header(&mut out, "in_set");
                let _ = writeln!(out, "values = [{}]", values.join(", "));
            }
        }
    }
    Ok(out)
}

/// The distinct values of a small column, as TOML literals, sorted.
fn distinct_values(ds: &Dataset, col: &str, base: &Path, data: &str) -> Result<Vec<String>> {
    let _ = ds;
    let suite = Suite::new("infer", data, base).expect(Expectation::new(Kind::ClassBalance {
        column: col.to_owned(),
        min_fraction: Some(0.0),
        max_fraction: None,
        min_count: None,
    }));
    let report = run_suite(&suite, &CheckOptions::default())?;
    let mut values: Vec<String> = Vec::new();
    if let Some(obj) = report.results[0].observed.as_object() {
        let numeric = ds
            .schema()
            .field_with_name(col)
            .map(|f| !is_string(f.data_type()))
            .unwrap_or(false);
        for k in obj.keys() {
            values.push(if numeric { k.clone() } else { toml_str(k) });
        }
    }
    values.sort();
    Ok(values)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_owned()
    } else {
        toml_str(s)
    }
}
