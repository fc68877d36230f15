//! Evaluation: every expectation of a suite becomes a [`Check`] with a mergeable partial
//! [`State`]. Units of the dataset (Parquet row groups, CSV files) are evaluated in parallel;
//! their partial states are merged in row order, so row numbers, "first failing rows" and
//! `increasing` come out exactly as a sequential scan would give them. Parquet footer statistics
//! answer `not_null` and `between` for a row group without decoding it when they are conclusive.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::mpsc;

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::column::{self, Key, KeyView, f64_view, micros_view, num_json, str_view};
use crate::dataset::{Dataset, Unit};
use crate::error::{Error, Result};
use crate::model::{
    DriftMethod, Expectation, Kind, Scalar, Severity, Stat, Suite, is_string, type_name,
};
use crate::report::{ExpectationResult, FailingRow, SuiteReport};
use crate::stats;

/// A fast hasher for fixed-width keys (folded 128-bit multiply), used by every hash set here.
#[derive(Default, Clone, Copy)]
pub(crate) struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        let full = u128::from(self.0 ^ x) * u128::from(0x9E37_79B9_7F4A_7C15u64);
        self.0 = (full as u64) ^ ((full >> 64) as u64);
    }
    #[inline]
    fn write_i64(&mut self, x: i64) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

type FastSet<K> = HashSet<K, BuildHasherDefault<FoldHasher>>;
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// How a suite is evaluated.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckOptions {
    /// "Now" for `freshness` (the system clock when `None`).
    pub now: Option<jiff::Timestamp>,
    /// Answer checks from Parquet statistics where they are conclusive (default true). The
    /// results are identical either way; turning it off forces a full scan.
    pub use_statistics: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            now: None,
            use_statistics: true,
        }
    }
}

impl CheckOptions {
    /// Sets "now" for freshness (builder style).
    #[must_use]
    pub fn with_now(mut self, now: jiff::Timestamp) -> Self {
        self.now = Some(now);
        self
    }

    /// Turns the Parquet statistics fast path on or off (builder style).
    #[must_use]
    pub fn with_statistics(mut self, on: bool) -> Self {
        self.use_statistics = on;
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Partial states

/// Row-level outcome: values checked, values failing, the first failing rows.
#[derive(Debug, Default, Clone)]
pub(crate) struct RowState {
    checked: u64,
    unexpected: u64,
    samples: Vec<(u64, Value)>,
}

impl RowState {
    #[inline]
    fn fail(&mut self, row: u64, value: impl FnOnce() -> Value, cap: usize) {
        self.unexpected += 1;
        if self.samples.len() < cap {
            self.samples.push((row, value()));
        }
    }

    fn merge(&mut self, other: Self, offset: u64, cap: usize) {
        self.checked += other.checked;
        self.unexpected += other.unexpected;
        for (row, v) in other.samples {
            if self.samples.len() >= cap {
                break;
            }
            self.samples.push((row + offset, v));
        }
    }
}

/// Streaming moments (Chan et al. merge), min and max.
#[derive(Debug, Clone)]
pub(crate) struct Moments {
    count: u64,
    sum: f64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Moments {
    #[inline]
    fn push(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        let d = v - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn merge(&mut self, o: &Self) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = o.clone();
            return;
        }
        let n = (self.count + o.count) as f64;
        let d = o.mean - self.mean;
        self.m2 += o.m2 + d * d * self.count as f64 * o.count as f64 / n;
        self.mean += d * o.count as f64 / n;
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// `unique`. Integer keys (the common case: ids) are appended in row order and checked at the
/// end by sorting a copy (16 bytes per row at the peak, sorted on all cores), which is faster and
/// smaller than a hash set of 10M entries; only values found twice are then traced back to their
/// rows. Other keys go through a hash set in row order as units merge.
#[derive(Debug, Default)]
pub(crate) struct UniqueState {
    pending_ints: Vec<i64>,
    pending_int_rows: Option<Vec<u64>>,
    pending_keys: Vec<(u64, Vec<Key>)>,
    all_ints: Vec<i64>,
    /// Row of each entry of `all_ints`, once a null made rows and positions differ.
    all_int_rows: Option<Vec<u64>>,
    /// For integer columns whose range the footers give and that is at most 16 values per row:
    /// a bitmap over the range, tested in row order as units merge (2 bits per row, no copy).
    dense: Option<DenseInts>,
    keys: FastSet<Vec<Key>>,
    rows: RowState,
}

/// A bitmap over `[base, base + bits)`; values outside (statistics that lied) go to a set.
#[derive(Debug)]
pub(crate) struct DenseInts {
    base: i64,
    len: u64,
    bits: Vec<u64>,
    outside: FastSet<i64>,
    distinct: u64,
}

impl DenseInts {
    fn new(min: i64, max: i64) -> Self {
        let len = (max as i128 - min as i128 + 1) as u64;
        Self {
            base: min,
            len,
            bits: vec![0; len.div_ceil(64) as usize],
            outside: FastSet::default(),
            distinct: 0,
        }
    }

    /// Records `v`; false when it was seen before.
    #[inline]
    fn insert(&mut self, v: i64) -> bool {
        let off = (v as i128 - self.base as i128) as u128;
        let fresh = if off < u128::from(self.len) {
            let (word, bit) = ((off / 64) as usize, off % 64);
            let mask = 1u64 << bit;
            let fresh = self.bits[word] & mask == 0;
            self.bits[word] |= mask;
            fresh
        } else {
            self.outside.insert(v)
        };
        self.distinct += u64::from(fresh);
        fresh
    }
}

impl UniqueState {
    /// Finds the duplicates among `all_ints`: the count, the first failing rows (in row order)
    /// and the number of distinct values.
    fn resolve_ints(&mut self, cap: usize) -> u64 {
        if let Some(d) = &self.dense {
            return d.distinct;
        }
        if self.all_ints.is_empty() {
            return 0;
        }
        let mut sorted = self.all_ints.clone();
        sorted.par_sort_unstable();
        let mut distinct = 1u64;
        let mut duplicated: FastSet<i64> = FastSet::default();
        for w in sorted.windows(2) {
            if w[0] == w[1] {
                duplicated.insert(w[0]);
            } else {
                distinct += 1;
            }
        }
        drop(sorted);
        if !duplicated.is_empty() {
            let mut seen: FastSet<i64> = FastSet::default();
            for (i, v) in self.all_ints.iter().enumerate() {
                if duplicated.contains(v) && !seen.insert(*v) {
                    let row = self.all_int_rows.as_ref().map_or(i as u64, |r| r[i]);
                    self.rows.fail(row, || Value::from(*v), cap);
                }
            }
        }
        distinct
    }
}

/// A partial state per check.
#[derive(Debug)]
pub(crate) enum State {
    Nothing,
    Rows(RowState),
    Increasing {
        rows: RowState,
        first: Option<(u64, f64)>,
        last: Option<f64>,
    },
    Unique(Box<UniqueState>),
    Moments(Moments),
    Values(Vec<f64>),
    Distinct {
        set: FastSet<Key>,
        count: u64,
    },
    Counts(FastMap<Key, u64>),
    Newest(Option<i64>),
    Drift(Vec<DriftState>),
    Overlap {
        rows: RowState,
        shared: FastSet<Vec<Key>>,
    },
    Keys(Vec<Vec<Key>>),
}

#[derive(Debug)]
pub(crate) enum DriftState {
    Bins(Vec<u64>),
    Values(Vec<f64>),
    Counts(FastMap<Key, u64>),
}

/// The partial result of some rows: the row count and one state per check.
#[derive(Debug)]
pub(crate) struct Partial {
    rows: u64,
    states: Vec<State>,
}

// ---------------------------------------------------------------------------------------------
// Checks

#[derive(Debug)]
enum SetMatch {
    Nums(Vec<f64>),
    Strs(Vec<String>),
    StrSet(FastSet<Box<str>>),
    Keys(FastSet<Key>),
}

#[derive(Debug)]
struct DriftColumn {
    name: String,
    method: DriftMethod,
    threshold: f64,
    numeric: bool,
    /// Sorted finite reference values (numeric columns).
    ref_values: Vec<f64>,
    /// Reference category counts (categorical columns, and numeric chi2).
    ref_counts: FastMap<Key, u64>,
    /// PSI interior edges.
    edges: Vec<f64>,
}

#[derive(Debug)]
enum Check {
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
    },
    Schema,
    Unique {
        cols: Vec<String>,
        int_fast: bool,
        /// The column's exact value range from Parquet statistics, when small enough for a bitmap.
        dense: Option<(i64, i64)>,
    },
    NotNull {
        col: String,
        nums: Vec<f64>,
        strs: Vec<String>,
        numeric: bool,
        floating: bool,
    },
    Between {
        col: String,
        min: Option<f64>,
        max: Option<f64>,
        smin: bool,
        smax: bool,
        integer: bool,
    },
    Set {
        col: String,
        negate: bool,
        set: SetMatch,
        /// A signed integer column: footer min/max can prove an `in_set` holds.
        int_col: bool,
    },
    Regex {
        col: String,
        re: regex::Regex,
    },
    Length {
        col: String,
        min: Option<u64>,
        max: Option<u64>,
    },
    Increasing {
        col: String,
        strict: bool,
    },
    Moments {
        col: String,
        stat: Stat,
        min: Option<f64>,
        max: Option<f64>,
    },
    Median {
        col: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    Quantiles {
        col: String,
        q: Vec<f64>,
        min: Vec<f64>,
        max: Vec<f64>,
    },
    Distinct {
        col: String,
        stat: Stat,
        min: Option<f64>,
        max: Option<f64>,
    },
    ClassBalance {
        col: String,
        min_f: Option<f64>,
        max_f: Option<f64>,
        min_count: Option<u64>,
    },
    NoOverlap {
        cols: Vec<String>,
        other: FastSet<Vec<Key>>,
        other_name: String,
    },
    Drift {
        cols: Vec<DriftColumn>,
        share: f64,
        reference: String,
    },
    Freshness {
        col: String,
        max_age: std::time::Duration,
        now: jiff::Timestamp,
    },
    CollectValues {
        col: String,
    },
    CollectCounts {
        col: String,
    },
    CollectKeys {
        cols: Vec<String>,
    },
}

impl Check {
    fn columns(&self) -> Vec<&str> {
        match self {
            Self::RowCount { .. } | Self::Schema => Vec::new(),
            Self::Unique { cols, .. }
            | Self::NoOverlap { cols, .. }
            | Self::CollectKeys { cols } => cols.iter().map(String::as_str).collect(),
            Self::Drift { cols, .. } => cols.iter().map(|c| c.name.as_str()).collect(),
            Self::NotNull { col, .. }
            | Self::Between { col, .. }
            | Self::Set { col, .. }
            | Self::Regex { col, .. }
            | Self::Length { col, .. }
            | Self::Increasing { col, .. }
            | Self::Moments { col, .. }
            | Self::Median { col, .. }
            | Self::Quantiles { col, .. }
            | Self::Distinct { col, .. }
            | Self::ClassBalance { col, .. }
            | Self::Freshness { col, .. }
            | Self::CollectValues { col }
            | Self::CollectCounts { col } => vec![col.as_str()],
        }
    }

    fn empty(&self) -> State {
        match self {
            Self::RowCount { .. } | Self::Schema => State::Nothing,
            Self::Unique { .. } => State::Unique(Box::default()),
            Self::NotNull { .. }
            | Self::Between { .. }
            | Self::Set { .. }
            | Self::Regex { .. }
            | Self::Length { .. } => State::Rows(RowState::default()),
            Self::Increasing { .. } => State::Increasing {
                rows: RowState::default(),
                first: None,
                last: None,
            },
            Self::Moments { .. } => State::Moments(Moments::default()),
            Self::Median { .. } | Self::Quantiles { .. } | Self::CollectValues { .. } => {
                State::Values(Vec::new())
            }
            Self::Distinct { .. } => State::Distinct {
                set: FastSet::default(),
                count: 0,
            },
            Self::ClassBalance { .. } | Self::CollectCounts { .. } => {
                State::Counts(FastMap::default())
            }
            Self::NoOverlap { .. } => State::Overlap {
                rows: RowState::default(),
                shared: FastSet::default(),
            },
            Self::Drift { cols, .. } => State::Drift(
                cols.iter()
                    .map(|c| match (c.method, c.numeric) {
                        (DriftMethod::Psi, _) => DriftState::Bins(vec![0; c.edges.len() + 1]),
                        (DriftMethod::Chi2, _) | (DriftMethod::JensenShannon, false) => {
                            DriftState::Counts(FastMap::default())
                        }
                        _ => DriftState::Values(Vec::new()),
                    })
                    .collect(),
            ),
            Self::Freshness { .. } => State::Newest(None),
            Self::CollectKeys { .. } => State::Keys(Vec::new()),
        }
    }

    /// The state of a whole unit from Parquet statistics, when they answer the check exactly.
    fn answer_from_stats(&self, ds: &Dataset, unit: Unit) -> Option<State> {
        match self {
            Self::RowCount { .. } | Self::Schema => Some(State::Nothing),
            Self::NotNull {
                col,
                nums,
                strs,
                floating: false,
                ..
            } if nums.is_empty() && strs.is_empty() => {
                let s = ds.unit_stats(unit, col)?;
                (s.null_count == 0).then(|| {
                    State::Rows(RowState {
                        checked: s.rows,
                        unexpected: 0,
                        samples: Vec::new(),
                    })
                })
            }
            Self::Between {
                col,
                min,
                max,
                smin,
                smax,
                integer: true,
            } => {
                let s = ds.unit_stats(unit, col)?;
                let non_null = s.rows - s.null_count;
                if non_null > 0 {
                    let (lo, hi) = (s.min?, s.max?);
                    let lo_ok = min.is_none_or(|m| if *smin { lo > m } else { lo >= m });
                    let hi_ok = max.is_none_or(|m| if *smax { hi < m } else { hi <= m });
                    if !(lo_ok && hi_ok) {
                        return None;
                    }
                }
                Some(State::Rows(RowState {
                    checked: non_null,
                    unexpected: 0,
                    samples: Vec::new(),
                }))
            }
            // Every integer between the footer's min and max is allowed: no value can fail.
            Self::Set {
                col,
                negate: false,
                set: SetMatch::Nums(nums),
                int_col: true,
            } => {
                let s = ds.unit_stats(unit, col)?;
                let non_null = s.rows - s.null_count;
                if non_null > 0 {
                    let (lo, hi) = (s.min?, s.max?);
                    if hi - lo > 4096.0 {
                        return None;
                    }
                    let mut v = lo;
                    while v <= hi {
                        if !nums.contains(&v) {
                            return None;
                        }
                        v += 1.0;
                    }
                }
                Some(State::Rows(RowState {
                    checked: non_null,
                    unexpected: 0,
                    samples: Vec::new(),
                }))
            }
            _ => None,
        }
    }

    /// Folds one batch (rows `base..base + n` of the unit) into the state.
    fn update(&self, state: &mut State, batch: &RecordBatch, base: u64, cap: usize) -> Result<()> {
        let col = |name: &str| -> Result<ArrayRef> {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| Error::Config(format!("internal: column `{name}` not decoded")))
        };
        match (self, state) {
            (Self::RowCount { .. } | Self::Schema, _) => {}
            (
                Self::NotNull {
                    col: c,
                    nums,
                    strs,
                    numeric,
                    floating,
                },
                State::Rows(st),
            ) => {
                let arr = col(c)?;
                st.checked += arr.len() as u64;
                if *numeric && (*floating || !nums.is_empty()) {
                    let a = f64_view(&arr)?;
                    for i in 0..a.len() {
                        if a.is_null(i) {
                            st.fail(base + i as u64, || Value::Null, cap);
                        } else {
                            let v = a.value(i);
                            if v.is_nan() || nums.contains(&v) {
                                st.fail(base + i as u64, || num_json(v), cap);
                            }
                        }
                    }
                } else if !strs.is_empty() && is_string(arr.data_type()) {
                    let a = str_view(&arr)?;
                    for i in 0..a.len() {
                        if a.is_null(i) {
                            st.fail(base + i as u64, || Value::Null, cap);
                        } else if strs.iter().any(|s| s == a.value(i)) {
                            st.fail(
                                base + i as u64,
                                || Value::String(a.value(i).to_owned()),
                                cap,
                            );
                        }
                    }
                } else if let Some(nulls) = arr.logical_nulls() {
                    // Logical nulls: an all-null (type Null) CSV column has no null buffer.
                    for i in 0..arr.len() {
                        if nulls.is_null(i) {
                            st.fail(base + i as u64, || Value::Null, cap);
                        }
                    }
                }
            }
            (
                Self::Between {
                    col: c,
                    min,
                    max,
                    smin,
                    smax,
                    ..
                },
                State::Rows(st),
            ) => {
                let a = f64_view(&col(c)?)?;
                let (lo, hi) = (
                    min.unwrap_or(f64::NEG_INFINITY),
                    max.unwrap_or(f64::INFINITY),
                );
                let (smin, smax) = (*smin && min.is_some(), *smax && max.is_some());
                let ok = |v: f64| {
                    (if smin { v > lo } else { v >= lo }) && (if smax { v < hi } else { v <= hi })
                };
                for_each_number(&a, |i, v| {
                    st.checked += 1;
                    if !ok(v) {
                        st.fail(base + i as u64, || num_json(v), cap);
                    }
                });
            }
            (
                Self::Set {
                    col: c,
                    negate,
                    set,
                    ..
                },
                State::Rows(st),
            ) => {
                let arr = col(c)?;
                match set {
                    SetMatch::Nums(nums) => {
                        let a = f64_view(&arr)?;
                        for_each_number(&a, |i, v| {
                            st.checked += 1;
                            if nums.contains(&v) == *negate {
                                st.fail(base + i as u64, || num_json(v), cap);
                            }
                        });
                    }
                    SetMatch::Strs(_) | SetMatch::StrSet(_) if matches!(arr.data_type(), DataType::Dictionary(k, v) if **k == DataType::Int32 && **v == DataType::Utf8) =>
                    {
                        let dict = arr
                            .as_any()
                            .downcast_ref::<arrow::array::DictionaryArray<arrow::datatypes::Int32Type>>()
                            .ok_or_else(|| Error::Config("internal: dictionary column".into()))?;
                        let values = str_view(dict.values())?;
                        // Membership of each dictionary value, once.
                        let member: Vec<bool> = (0..values.len())
                            .map(|j| {
                                values.is_valid(j)
                                    && match set {
                                        SetMatch::Strs(strs) => {
                                            strs.iter().any(|s| s == values.value(j))
                                        }
                                        SetMatch::StrSet(strs) => strs.contains(values.value(j)),
                                        _ => false,
                                    }
                            })
                            .collect();
                        let keys = dict.keys();
                        for i in 0..keys.len() {
                            if keys.is_valid(i) {
                                let k = keys.value(i) as usize;
                                if !values.is_valid(k) {
                                    continue;
                                }
                                st.checked += 1;
                                if member[k] == *negate {
                                    st.fail(
                                        base + i as u64,
                                        || Value::String(values.value(k).to_owned()),
                                        cap,
                                    );
                                }
                            }
                        }
                    }
                    SetMatch::Strs(strs) => {
                        let a = str_view(&arr)?;
                        for i in 0..a.len() {
                            if a.is_valid(i) {
                                st.checked += 1;
                                let v = a.value(i);
                                if strs.iter().any(|s| s == v) == *negate {
                                    st.fail(base + i as u64, || Value::String(v.to_owned()), cap);
                                }
                            }
                        }
                    }
                    SetMatch::StrSet(strs) => {
                        let a = str_view(&arr)?;
                        for i in 0..a.len() {
                            if a.is_valid(i) {
                                st.checked += 1;
                                let v = a.value(i);
                                if strs.contains(v) == *negate {
                                    st.fail(base + i as u64, || Value::String(v.to_owned()), cap);
                                }
                            }
                        }
                    }
                    SetMatch::Keys(keys) => {
                        let kv = KeyView::new(&arr)?;
                        for i in 0..arr.len() {
                            if let Some(k) = kv.key(i) {
                                st.checked += 1;
                                if keys.contains(&k) == *negate {
                                    st.fail(base + i as u64, || k.to_json(), cap);
                                }
                            }
                        }
                    }
                }
            }
            (Self::Regex { col: c, re }, State::Rows(st)) => {
                let a = str_view(&col(c)?)?;
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        st.checked += 1;
                        let v = a.value(i);
                        if !re.is_match(v) {
                            st.fail(base + i as u64, || Value::String(v.to_owned()), cap);
                        }
                    }
                }
            }
            (Self::Length { col: c, min, max }, State::Rows(st)) => {
                let a = str_view(&col(c)?)?;
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        st.checked += 1;
                        let v = a.value(i);
                        let n = v.chars().count() as u64;
                        if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                            st.fail(base + i as u64, || Value::String(v.to_owned()), cap);
                        }
                    }
                }
            }
            (Self::Increasing { col: c, strict }, State::Increasing { rows, first, last }) => {
                let arr = col(c)?;
                let a = if column::is_temporal(arr.data_type()) {
                    let m = micros_view(&arr)?;
                    Float64Array::from_iter(m.iter().map(|v| v.map(|x| x as f64)))
                } else {
                    f64_view(&arr)?
                };
                for_each_number(&a, |i, v| {
                    rows.checked += 1;
                    let row = base + i as u64;
                    match *last {
                        None => {
                            if first.is_none() {
                                *first = Some((row, v));
                            }
                        }
                        Some(p) => {
                            if if *strict { v <= p } else { v < p } {
                                rows.fail(row, || num_json(v), cap);
                            }
                        }
                    }
                    *last = Some(v);
                });
            }
            (Self::Unique { cols, int_fast, .. }, State::Unique(u)) => {
                if *int_fast {
                    let arr = col(&cols[0])?;
                    let KeyView::Int(a) = KeyView::new(&arr)? else {
                        return Err(Error::Config(
                            "internal: unique fast path on a non-integer column".into(),
                        ));
                    };
                    if a.null_count() == 0 && u.pending_int_rows.is_none() {
                        u.pending_ints.extend_from_slice(a.values());
                    } else {
                        let rows = u
                            .pending_int_rows
                            .get_or_insert_with(|| (0..u.pending_ints.len() as u64).collect());
                        for i in 0..a.len() {
                            if a.is_valid(i) {
                                u.pending_ints.push(a.value(i));
                                rows.push(base + i as u64);
                            }
                        }
                    }
                } else {
                    let views = cols
                        .iter()
                        .map(|c| KeyView::new(&col(c)?))
                        .collect::<Result<Vec<_>>>()?;
                    'rows: for i in 0..batch.num_rows() {
                        let mut key = Vec::with_capacity(views.len());
                        for v in &views {
                            match v.key(i) {
                                Some(k) => key.push(k),
                                None => continue 'rows,
                            }
                        }
                        u.pending_keys.push((base + i as u64, key));
                    }
                }
            }
            (Self::Moments { col: c, .. }, State::Moments(m)) => {
                let a = f64_view(&col(c)?)?;
                for_each_number(&a, |_, v| m.push(v));
            }
            (Self::Median { col: c, .. } | Self::Quantiles { col: c, .. }, State::Values(vals)) => {
                let a = f64_view(&col(c)?)?;
                for_each_number(&a, |_, v| vals.push(v));
            }
            (Self::CollectValues { col: c }, State::Values(vals)) => {
                let a = f64_view(&col(c)?)?;
                for_each_number(&a, |_, v| {
                    if v.is_finite() {
                        vals.push(v);
                    }
                });
            }
            (Self::Distinct { col: c, .. }, State::Distinct { set, count }) => {
                let arr = col(c)?;
                let kv = KeyView::new(&arr)?;
                for i in 0..arr.len() {
                    if let Some(k) = kv.key(i) {
                        *count += 1;
                        set.insert(k);
                    }
                }
            }
            (
                Self::ClassBalance { col: c, .. } | Self::CollectCounts { col: c },
                State::Counts(counts),
            ) => {
                let arr = col(c)?;
                let kv = KeyView::new(&arr)?;
                for i in 0..arr.len() {
                    if let Some(k) = kv.key(i) {
                        *counts.entry(k).or_insert(0) += 1;
                    }
                }
            }
            (Self::CollectKeys { cols }, State::Keys(keys)) => {
                let views = cols
                    .iter()
                    .map(|c| KeyView::new(&col(c)?))
                    .collect::<Result<Vec<_>>>()?;
                'rows: for i in 0..batch.num_rows() {
                    let mut key = Vec::with_capacity(views.len());
                    for v in &views {
                        match v.key(i) {
                            Some(k) => key.push(k),
                            None => continue 'rows,
                        }
                    }
                    keys.push(key);
                }
            }
            (Self::NoOverlap { cols, other, .. }, State::Overlap { rows, shared }) => {
                let views = cols
                    .iter()
                    .map(|c| KeyView::new(&col(c)?))
                    .collect::<Result<Vec<_>>>()?;
                'rows: for i in 0..batch.num_rows() {
                    let mut key = Vec::with_capacity(views.len());
                    for v in &views {
                        match v.key(i) {
                            Some(k) => key.push(k),
                            None => continue 'rows,
                        }
                    }
                    rows.checked += 1;
                    if other.contains(&key) {
                        rows.fail(base + i as u64, || key_json(cols, &key), cap);
                        shared.insert(key);
                    }
                }
            }
            (Self::Drift { cols, .. }, State::Drift(states)) => {
                for (c, s) in cols.iter().zip(states.iter_mut()) {
                    let arr = col(&c.name)?;
                    match s {
                        DriftState::Bins(bins) => {
                            let a = f64_view(&arr)?;
                            for_each_number(&a, |_, v| {
                                if v.is_finite() {
                                    bins[stats::quantile_bin(&c.edges, v)] += 1;
                                }
                            });
                        }
                        DriftState::Values(vals) => {
                            let a = f64_view(&arr)?;
                            for_each_number(&a, |_, v| {
                                if v.is_finite() {
                                    vals.push(v);
                                }
                            });
                        }
                        DriftState::Counts(counts) => {
                            if c.numeric {
                                let a = f64_view(&arr)?;
                                for_each_number(&a, |_, v| {
                                    if let (true, Some(k)) = (v.is_finite(), Key::float(v)) {
                                        *counts.entry(k).or_insert(0) += 1;
                                    }
                                });
                            } else {
                                let kv = KeyView::new(&arr)?;
                                for i in 0..arr.len() {
                                    if let Some(k) = kv.key(i) {
                                        *counts.entry(k).or_insert(0) += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (Self::Freshness { col: c, .. }, State::Newest(newest)) => {
                let a = micros_view(&col(c)?)?;
                if let Some(m) = arrow::compute::max(&a) {
                    *newest = Some(newest.map_or(m, |n: i64| n.max(m)));
                }
            }
            (check, _) => {
                return Err(Error::Config(format!(
                    "internal: state does not fit {check:?}"
                )));
            }
        }
        Ok(())
    }

    /// Merges `other` (the next rows, starting at row `offset`) into `acc`.
    fn merge(&self, acc: &mut State, other: State, offset: u64, cap: usize) {
        match (acc, other) {
            (State::Rows(a), State::Rows(b)) => a.merge(b, offset, cap),
            (
                State::Increasing { rows, first, last },
                State::Increasing {
                    rows: brows,
                    first: bfirst,
                    last: blast,
                },
            ) => {
                let strict = matches!(self, Self::Increasing { strict: true, .. });
                if let (Some(p), Some((row, v))) = (*last, bfirst)
                    && if strict { v <= p } else { v < p }
                {
                    rows.fail(row + offset, || num_json(v), cap);
                }
                if first.is_none() {
                    *first = bfirst.map(|(r, v)| (r + offset, v));
                }
                // Boundary failure counted above; merge the rest.
                rows.merge(brows, offset, cap);
                if blast.is_some() {
                    *last = blast;
                }
            }
            (State::Unique(a), State::Unique(b)) => {
                let b = *b;
                let cols = match self {
                    Self::Unique { cols, .. } => cols.as_slice(),
                    _ => &[],
                };
                a.rows.checked += b.pending_ints.len() as u64;
                if let Some(dense) = &mut a.dense {
                    for (i, v) in b.pending_ints.iter().enumerate() {
                        if !dense.insert(*v) {
                            let row = b.pending_int_rows.as_ref().map_or(i as u64, |r| r[i]);
                            a.rows.fail(row + offset, || Value::from(*v), cap);
                        }
                    }
                } else if a.all_int_rows.is_none() && b.pending_int_rows.is_some() {
                    // Until now every row had a value: positions were rows.
                    a.all_int_rows = Some((0..a.all_ints.len() as u64).collect());
                }
                if let (None, Some(rows)) = (&a.dense, &mut a.all_int_rows) {
                    match &b.pending_int_rows {
                        Some(r) => rows.extend(r.iter().map(|x| x + offset)),
                        None => rows.extend((0..b.pending_ints.len() as u64).map(|x| x + offset)),
                    }
                }
                if a.dense.is_none() {
                    a.all_ints.extend_from_slice(&b.pending_ints);
                }
                for (row, key) in b.pending_keys {
                    a.rows.checked += 1;
                    if a.keys.contains(&key) {
                        a.rows.fail(row + offset, || key_json(cols, &key), cap);
                    } else {
                        a.keys.insert(key);
                    }
                }
            }
            (State::Moments(a), State::Moments(b)) => a.merge(&b),
            (State::Values(a), State::Values(mut b)) => a.append(&mut b),
            (
                State::Distinct { set, count },
                State::Distinct {
                    set: bset,
                    count: bcount,
                },
            ) => {
                *count += bcount;
                if set.len() < bset.len() {
                    let small = std::mem::replace(set, bset);
                    set.extend(small);
                } else {
                    set.extend(bset);
                }
            }
            (State::Counts(a), State::Counts(b)) => merge_counts(a, b),
            (State::Newest(a), State::Newest(b)) => {
                *a = match (*a, b) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                }
            }
            (
                State::Overlap { rows, shared },
                State::Overlap {
                    rows: brows,
                    shared: bshared,
                },
            ) => {
                rows.merge(brows, offset, cap);
                shared.extend(bshared);
            }
            (State::Keys(a), State::Keys(mut b)) => a.append(&mut b),
            (State::Drift(a), State::Drift(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    match (x, y) {
                        (DriftState::Bins(x), DriftState::Bins(y)) => {
                            for (p, q) in x.iter_mut().zip(y) {
                                *p += q;
                            }
                        }
                        (DriftState::Values(x), DriftState::Values(mut y)) => x.append(&mut y),
                        (DriftState::Counts(x), DriftState::Counts(y)) => merge_counts(x, y),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
}

fn merge_counts(a: &mut FastMap<Key, u64>, b: FastMap<Key, u64>) {
    for (k, n) in b {
        *a.entry(k).or_insert(0) += n;
    }
}

fn key_json(cols: &[String], key: &[Key]) -> Value {
    if key.len() == 1 {
        return key[0].to_json();
    }
    let mut m = serde_json::Map::new();
    for (c, k) in cols.iter().zip(key) {
        m.insert(c.clone(), k.to_json());
    }
    Value::Object(m)
}

/// Calls `f(i, v)` for every non-null, non-NaN value.
#[inline]
fn for_each_number(a: &Float64Array, mut f: impl FnMut(usize, f64)) {
    if a.null_count() == 0 {
        for (i, &v) in a.values().iter().enumerate() {
            if !v.is_nan() {
                f(i, v);
            }
        }
    } else {
        for i in 0..a.len() {
            if a.is_valid(i) {
                let v = a.value(i);
                if !v.is_nan() {
                    f(i, v);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scanning

/// Evaluates `checks` over `ds` in parallel units, merging partial states in row order.
fn scan(ds: &Dataset, checks: &[Check], cap: usize, use_stats: bool) -> Result<Partial> {
    let units = ds.units();
    let empty = || Partial {
        rows: 0,
        states: checks.iter().map(Check::empty).collect(),
    };
    let (tx, rx) = mpsc::channel::<(usize, Result<Partial>)>();
    let result = std::thread::scope(|s| {
        let merger = s.spawn(move || {
            let mut acc = empty();
            // Size exact-uniqueness sets once from the row count the footers give (no rehashing).
            if let Some(rows) = ds.rows_from_metadata() {
                for (check, st) in checks.iter().zip(&mut acc.states) {
                    match (check, st) {
                        (
                            Check::Unique {
                                dense: Some((lo, hi)),
                                ..
                            },
                            State::Unique(u),
                        ) => {
                            u.dense = Some(DenseInts::new(*lo, *hi));
                        }
                        (Check::Unique { int_fast: true, .. }, State::Unique(u)) => {
                            u.all_ints.reserve_exact(usize::try_from(rows).unwrap_or(0));
                        }
                        _ => {}
                    }
                }
            }
            let mut next = 0usize;
            let mut buffered: BTreeMap<usize, Partial> = BTreeMap::new();
            let mut first_err: Option<(usize, Error)> = None;
            for (i, r) in rx {
                match r {
                    Err(e) => {
                        if first_err.as_ref().is_none_or(|(j, _)| i < *j) {
                            first_err = Some((i, e));
                        }
                    }
                    Ok(p) => {
                        buffered.insert(i, p);
                        while let Some(p) = buffered.remove(&next) {
                            let offset = acc.rows;
                            for ((check, a), b) in
                                checks.iter().zip(acc.states.iter_mut()).zip(p.states)
                            {
                                check.merge(a, b, offset, cap);
                            }
                            acc.rows += p.rows;
                            next += 1;
                        }
                    }
                }
            }
            match first_err {
                Some((_, e)) => Err(e),
                None => Ok(acc),
            }
        });
        units
            .par_iter()
            .enumerate()
            .for_each_with(tx, |tx, (i, unit)| {
                let _ = tx.send((i, scan_unit(ds, *unit, checks, cap, use_stats)));
            });
        merger.join()
    });
    match result {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn scan_unit(
    ds: &Dataset,
    unit: Unit,
    checks: &[Check],
    cap: usize,
    use_stats: bool,
) -> Result<Partial> {
    let mut states: Vec<Option<State>> = checks
        .iter()
        .map(|c| {
            if use_stats {
                c.answer_from_stats(ds, unit)
            } else {
                None
            }
        })
        .collect();
    let known_rows = ds.unit_rows(unit);
    let mut needed: Vec<String> = Vec::new();
    for (c, s) in checks.iter().zip(&states) {
        if s.is_none() {
            for col in c.columns() {
                if !needed.iter().any(|n| n == col) {
                    needed.push(col.to_owned());
                }
            }
        }
    }
    if needed.is_empty() {
        if let Some(rows) = known_rows {
            tracing::trace!(?unit, "answered from statistics");
            return Ok(Partial {
                rows,
                states: states
                    .into_iter()
                    .zip(checks)
                    .map(|(s, c)| s.unwrap_or_else(|| c.empty()))
                    .collect(),
            });
        }
        // Only the row count is needed and the format does not know it: decode one column.
        if let Some(f) = ds.schema().fields().first() {
            needed.push(f.name().clone());
        }
    }
    let mut live: Vec<(usize, State)> = Vec::new();
    for (i, s) in states.iter_mut().enumerate() {
        if s.is_none() {
            live.push((i, checks[i].empty()));
        }
    }
    let mut rows = 0u64;
    // String columns only checked for set membership are read dictionary-encoded.
    let dictionary: Vec<String> = needed
        .iter()
        .filter(|c| {
            let mut users = checks
                .iter()
                .zip(&states)
                .filter(|(_, s)| s.is_none())
                .map(|(ch, _)| ch)
                .filter(|ch| ch.columns().contains(&c.as_str()));
            users.all(|ch| {
                matches!(
                    ch,
                    Check::Set {
                        set: SetMatch::Strs(_) | SetMatch::StrSet(_),
                        ..
                    }
                )
            })
        })
        .cloned()
        .collect();
    ds.scan_unit(unit, Some(&needed), &dictionary, &mut |batch| {
        for (i, st) in &mut live {
            checks[*i].update(st, batch, rows, cap)?;
        }
        rows += batch.num_rows() as u64;
        Ok(())
    })?;
    for (i, st) in live {
        states[i] = Some(st);
    }
    Ok(Partial {
        rows,
        states: states
            .into_iter()
            .zip(checks)
            .map(|(s, c)| s.unwrap_or_else(|| c.empty()))
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------------
// Planning

fn field<'a>(data: &str, schema: &'a Schema, name: &str) -> Result<&'a DataType> {
    match schema.field_with_name(name) {
        Ok(f) => Ok(f.data_type()),
        Err(_) => {
            let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
            Err(Error::MissingColumn {
                data: data.to_owned(),
                column: name.to_owned(),
                closest: column::closest_names(name, &names),
            })
        }
    }
}

fn type_err(data: &str, e: &Expectation, col: &str, needs: &str, dt: &DataType) -> Error {
    Error::TypeMismatch {
        data: data.to_owned(),
        expectation: e.kind.type_name().to_owned(),
        column: col.to_owned(),
        needs: needs.to_owned(),
        found: type_name(dt),
    }
}

fn need(
    ok: bool,
    data: &str,
    e: &Expectation,
    col: &str,
    needs: &str,
    dt: &DataType,
) -> Result<()> {
    // An all-null CSV column is inferred as type Null: it fits every expectation (no values).
    if ok || matches!(dt, DataType::Null) {
        Ok(())
    } else {
        Err(type_err(data, e, col, needs, dt))
    }
}

fn open(location: &str, suite: &Suite) -> Result<Dataset> {
    Dataset::open(location, &suite.base_dir, &suite.csv)
}

fn plan(suite: &Suite, ds: &Dataset, opts: &CheckOptions) -> Result<Vec<Check>> {
    let schema = ds.schema();
    let data = suite.data.as_str();
    let mut checks = Vec::with_capacity(suite.expectations.len());
    for e in &suite.expectations {
        let check = match &e.kind {
            Kind::RowCount { min, max } => Check::RowCount {
                min: *min,
                max: *max,
            },
            Kind::Schema { .. } => Check::Schema,
            Kind::Unique { columns } => {
                for c in columns {
                    let dt = field(data, schema, c)?;
                    need(
                        column::is_keyable(dt),
                        data,
                        e,
                        c,
                        "a number, string, boolean or timestamp column",
                        dt,
                    )?;
                }
                let int_fast = columns.len() == 1 && {
                    let dt = field(data, schema, &columns[0])?;
                    dt.is_integer() || column::is_temporal(dt)
                };
                let dense = if int_fast && opts.use_statistics {
                    let dt = field(data, schema, &columns[0])?;
                    let physical_int = matches!(
                        dt,
                        DataType::Int32
                            | DataType::Int64
                            | DataType::Date32
                            | DataType::Timestamp(..)
                    );
                    match (
                        physical_int,
                        ds.int_range(&columns[0]),
                        ds.rows_from_metadata(),
                    ) {
                        (true, Some((lo, hi)), Some(rows)) => {
                            let span = hi as i128 - lo as i128 + 1;
                            (span <= 16 * i128::from(rows.max(1024))).then_some((lo, hi))
                        }
                        _ => None,
                    }
                } else {
                    None
                };
                Check::Unique {
                    cols: columns.clone(),
                    int_fast,
                    dense,
                }
            }
            Kind::NotNull { column, sentinels } => {
                let dt = field(data, schema, column)?;
                let numeric = dt.is_numeric();
                let nums: Vec<f64> = sentinels.iter().filter_map(Scalar::as_f64).collect();
                let strs: Vec<String> = sentinels
                    .iter()
                    .filter_map(|s| match s {
                        Scalar::Str(x) => Some(x.clone()),
                        _ => None,
                    })
                    .collect();
                if numeric && !strs.is_empty() {
                    need(
                        false,
                        data,
                        e,
                        column,
                        "numeric sentinels for a numeric column",
                        dt,
                    )?;
                }
                if !numeric && !nums.is_empty() {
                    need(
                        false,
                        data,
                        e,
                        column,
                        "string sentinels for a non-numeric column",
                        dt,
                    )?;
                }
                Check::NotNull {
                    col: column.clone(),
                    nums,
                    strs,
                    numeric,
                    floating: dt.is_floating() || !numeric,
                }
            }
            Kind::Between {
                column,
                min,
                max,
                strict_min,
                strict_max,
            } => {
                let dt = field(data, schema, column)?;
                need(
                    column::is_numeric(dt),
                    data,
                    e,
                    column,
                    "a numeric column",
                    dt,
                )?;
                Check::Between {
                    col: column.clone(),
                    min: *min,
                    max: *max,
                    smin: *strict_min,
                    smax: *strict_max,
                    // Footer min/max are compared as signed integers: unsigned columns scan.
                    integer: matches!(
                        dt,
                        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
                    ),
                }
            }
            Kind::InSet { column, values } | Kind::NotInSet { column, values } => {
                let negate = matches!(e.kind, Kind::NotInSet { .. });
                let dt = field(data, schema, column)?;
                let set = if matches!(dt, DataType::Null) {
                    SetMatch::Keys(FastSet::default())
                } else if dt.is_numeric() {
                    let nums: Option<Vec<f64>> = values.iter().map(Scalar::as_f64).collect();
                    match nums {
                        Some(n) => SetMatch::Nums(n),
                        None => {
                            return Err(type_err(
                                data,
                                e,
                                column,
                                "string values for a string column, numbers for a numeric one",
                                dt,
                            ));
                        }
                    }
                } else if is_string(dt) {
                    let strs: Option<Vec<String>> = values
                        .iter()
                        .map(|s| match s {
                            Scalar::Str(x) => Some(x.clone()),
                            _ => None,
                        })
                        .collect();
                    match strs {
                        Some(s) if s.len() <= 16 => SetMatch::Strs(s),
                        Some(s) => {
                            SetMatch::StrSet(s.into_iter().map(String::into_boxed_str).collect())
                        }
                        None => {
                            return Err(type_err(
                                data,
                                e,
                                column,
                                "string values for a string column",
                                dt,
                            ));
                        }
                    }
                } else if matches!(dt, DataType::Boolean) {
                    let keys: Option<FastSet<Key>> = values
                        .iter()
                        .map(|s| match s {
                            Scalar::Bool(b) => Some(Key::Bool(*b)),
                            _ => None,
                        })
                        .collect();
                    match keys {
                        Some(k) => SetMatch::Keys(k),
                        None => {
                            return Err(type_err(
                                data,
                                e,
                                column,
                                "boolean values for a boolean column",
                                dt,
                            ));
                        }
                    }
                } else {
                    return Err(type_err(
                        data,
                        e,
                        column,
                        "a numeric, string or boolean column",
                        dt,
                    ));
                };
                Check::Set {
                    col: column.clone(),
                    negate,
                    set,
                    int_col: matches!(
                        dt,
                        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
                    ),
                }
            }
            Kind::Regex { column, pattern } => {
                let dt = field(data, schema, column)?;
                need(is_string(dt), data, e, column, "a string column", dt)?;
                let re = regex::Regex::new(pattern)
                    .map_err(|err| Error::Config(format!("regex `{pattern}`: {err}")))?;
                Check::Regex {
                    col: column.clone(),
                    re,
                }
            }
            Kind::LengthBetween { column, min, max } => {
                let dt = field(data, schema, column)?;
                need(is_string(dt), data, e, column, "a string column", dt)?;
                Check::Length {
                    col: column.clone(),
                    min: *min,
                    max: *max,
                }
            }
            Kind::Increasing { column, strict } => {
                let dt = field(data, schema, column)?;
                need(
                    dt.is_numeric() || column::is_temporal(dt),
                    data,
                    e,
                    column,
                    "a numeric or timestamp column",
                    dt,
                )?;
                Check::Increasing {
                    col: column.clone(),
                    strict: *strict,
                }
            }
            Kind::Aggregate {
                column,
                stat,
                min,
                max,
            } => {
                let dt = field(data, schema, column)?;
                if stat.numeric() {
                    need(dt.is_numeric(), data, e, column, "a numeric column", dt)?;
                } else {
                    need(
                        column::is_keyable(dt),
                        data,
                        e,
                        column,
                        "a number, string, boolean or timestamp column",
                        dt,
                    )?;
                }
                match stat {
                    Stat::Median => Check::Median {
                        col: column.clone(),
                        min: *min,
                        max: *max,
                    },
                    Stat::DistinctCount | Stat::UniqueRatio => Check::Distinct {
                        col: column.clone(),
                        stat: *stat,
                        min: *min,
                        max: *max,
                    },
                    _ => Check::Moments {
                        col: column.clone(),
                        stat: *stat,
                        min: *min,
                        max: *max,
                    },
                }
            }
            Kind::Quantiles {
                column,
                q,
                min,
                max,
            } => {
                let dt = field(data, schema, column)?;
                need(dt.is_numeric(), data, e, column, "a numeric column", dt)?;
                Check::Quantiles {
                    col: column.clone(),
                    q: q.clone(),
                    min: min.clone(),
                    max: max.clone(),
                }
            }
            Kind::ClassBalance {
                column,
                min_fraction,
                max_fraction,
                min_count,
            } => {
                let dt = field(data, schema, column)?;
                need(
                    column::is_keyable(dt),
                    data,
                    e,
                    column,
                    "a label column (number, string or boolean)",
                    dt,
                )?;
                Check::ClassBalance {
                    col: column.clone(),
                    min_f: *min_fraction,
                    max_f: *max_fraction,
                    min_count: *min_count,
                }
            }
            Kind::NoOverlap { columns, other } => {
                for c in columns {
                    let dt = field(data, schema, c)?;
                    need(
                        column::is_keyable(dt),
                        data,
                        e,
                        c,
                        "a number, string, boolean or timestamp column",
                        dt,
                    )?;
                }
                let other_ds = open(other, suite)?;
                for c in columns {
                    field(other, other_ds.schema(), c)?;
                }
                let collected = scan(
                    &other_ds,
                    &[Check::CollectKeys {
                        cols: columns.clone(),
                    }],
                    0,
                    false,
                )?;
                let mut set = FastSet::default();
                if let Some(State::Keys(keys)) = collected.states.into_iter().next() {
                    set.extend(keys);
                }
                Check::NoOverlap {
                    cols: columns.clone(),
                    other: set,
                    other_name: other.clone(),
                }
            }
            Kind::Drift {
                columns,
                method,
                threshold,
                drift_share,
                bins,
                reference,
            } => {
                let reference = reference.clone().or_else(|| suite.reference.clone()).ok_or_else(|| {
                    Error::Config(format!(
                        "suite `{}`: expectation `drift` needs a reference dataset: set `reference` in the suite or the expectation",
                        suite.name
                    ))
                })?;
                let ref_ds = open(&reference, suite)?;
                plan_drift(
                    suite,
                    ds,
                    &ref_ds,
                    columns,
                    *method,
                    *threshold,
                    *drift_share,
                    *bins,
                    &reference,
                    e,
                )?
            }
            Kind::Freshness { column, max_age } => {
                let dt = field(data, schema, column)?;
                need(
                    column::is_temporal(dt),
                    data,
                    e,
                    column,
                    "a timestamp or date column",
                    dt,
                )?;
                Check::Freshness {
                    col: column.clone(),
                    max_age: *max_age,
                    now: opts.now.unwrap_or_else(jiff::Timestamp::now),
                }
            }
        };
        checks.push(check);
    }
    Ok(checks)
}

#[allow(clippy::too_many_arguments)]
fn plan_drift(
    suite: &Suite,
    ds: &Dataset,
    ref_ds: &Dataset,
    columns: &[String],
    method: DriftMethod,
    threshold: Option<f64>,
    share: f64,
    bins: usize,
    reference: &str,
    e: &Expectation,
) -> Result<Check> {
    let schema = ds.schema();
    let ref_schema = ref_ds.schema();
    let drift_type =
        |dt: &DataType| dt.is_numeric() || is_string(dt) || matches!(dt, DataType::Boolean);
    let names: Vec<String> = if columns.is_empty() {
        schema
            .fields()
            .iter()
            .filter(|f| drift_type(f.data_type()) && ref_schema.field_with_name(f.name()).is_ok())
            .map(|f| f.name().clone())
            .collect()
    } else {
        columns.to_vec()
    };
    if names.is_empty() {
        return Err(Error::Config(format!(
            "suite `{}`: `drift` found no common columns with {reference}",
            suite.name
        )));
    }
    let mut collectors = Vec::new();
    let mut numeric = Vec::new();
    for c in &names {
        let dt = field(&suite.data, schema, c)?;
        let rdt = field(reference, ref_schema, c)?;
        need(
            drift_type(dt),
            &suite.data,
            e,
            c,
            "a numeric, string or boolean column",
            dt,
        )?;
        let num = dt.is_numeric();
        if num != rdt.is_numeric() {
            return Err(Error::TypeMismatch {
                data: reference.to_owned(),
                expectation: "drift".into(),
                column: c.clone(),
                needs: format!(
                    "the same kind of type as in {} ({})",
                    suite.data,
                    type_name(dt)
                ),
                found: type_name(rdt),
            });
        }
        if matches!(
            method,
            DriftMethod::Psi | DriftMethod::Ks | DriftMethod::Wasserstein
        ) && !num
        {
            need(
                false,
                &suite.data,
                e,
                c,
                &format!("a numeric column for `{}`", method.name()),
                dt,
            )?;
        }
        numeric.push(num);
        collectors.push(if num {
            Check::CollectValues { col: c.clone() }
        } else {
            Check::CollectCounts { col: c.clone() }
        });
    }
    let collected = scan(ref_ds, &collectors, 0, false)?;
    let mut cols = Vec::new();
    for ((name, num), state) in names.into_iter().zip(numeric).zip(collected.states) {
        let (mut ref_values, mut ref_counts) = (Vec::new(), FastMap::default());
        match state {
            State::Values(mut v) => {
                v.par_sort_unstable_by(f64::total_cmp);
                ref_values = v;
            }
            State::Counts(c) => ref_counts = c,
            _ => {}
        }
        let n = if num {
            ref_values.len() as u64
        } else {
            ref_counts.values().sum()
        };
        let nunique = if num {
            let mut u = 0usize;
            let mut prev = None;
            for v in &ref_values {
                if prev != Some(*v) {
                    u += 1;
                    prev = Some(*v);
                }
            }
            u
        } else {
            ref_counts.len()
        };
        let chosen = match method {
            DriftMethod::Auto => match (n <= 1000, num) {
                (true, true) if nunique > 5 => DriftMethod::Ks,
                (true, _) => DriftMethod::Chi2,
                (false, true) if nunique > 5 => DriftMethod::Wasserstein,
                (false, _) => DriftMethod::JensenShannon,
            },
            m => m,
        };
        if num && chosen == DriftMethod::Chi2 {
            for v in &ref_values {
                if let Some(k) = Key::float(*v) {
                    *ref_counts.entry(k).or_insert(0) += 1;
                }
            }
        }
        let edges = if chosen == DriftMethod::Psi {
            stats::quantile_edges(&ref_values, bins)
        } else {
            Vec::new()
        };
        cols.push(DriftColumn {
            name,
            method: chosen,
            threshold: threshold.unwrap_or_else(|| chosen.default_threshold()),
            numeric: num,
            ref_values,
            ref_counts,
            edges,
        });
    }
    Ok(Check::Drift {
        cols,
        share,
        reference: reference.to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Results

/// Runs every expectation of `suite` in one scan of its dataset and returns the report.
///
/// Fails when the data cannot be read, or an expectation names a missing column or does not fit
/// a column's type (before scanning anything).
pub fn run_suite(suite: &Suite, opts: &CheckOptions) -> Result<SuiteReport> {
    let ds = open(&suite.data, suite)?;
    let checks = plan(suite, &ds, opts)?;
    let cap = suite.sample_rows;
    let partial = scan(&ds, &checks, cap, opts.use_statistics)?;
    let rows = partial.rows;
    let mut results = Vec::with_capacity(checks.len());
    for ((e, check), state) in suite.expectations.iter().zip(&checks).zip(partial.states) {
        results.push(finish(e, check, state, rows, ds.schema(), cap));
    }
    let errors = results
        .iter()
        .filter(|r| !r.passed && r.severity == Severity::Error)
        .count();
    let warnings = results
        .iter()
        .filter(|r| !r.passed && r.severity == Severity::Warn)
        .count();
    Ok(SuiteReport {
        suite: suite.name.clone(),
        data: suite.data.clone(),
        rows,
        passed: errors == 0,
        errors,
        warnings,
        results,
    })
}

struct Outcome {
    passed: bool,
    observed: Value,
    element_count: u64,
    unexpected: u64,
    samples: Vec<(u64, Value)>,
    details: Value,
    message: String,
}

fn bounds_text(min: Option<f64>, max: Option<f64>) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "-inf".to_owned(), |x| format!("{x}"));
    format!(
        "[{}, {}]",
        f(min),
        max.map_or_else(|| "inf".to_owned(), |x| format!("{x}"))
    )
}

fn within(v: f64, min: Option<f64>, max: Option<f64>) -> bool {
    !v.is_nan() && min.is_none_or(|m| v >= m) && max.is_none_or(|m| v <= m)
}

fn rows_outcome(e: &Expectation, st: RowState, what: &str) -> Outcome {
    let frac = if st.checked == 0 {
        0.0
    } else {
        st.unexpected as f64 / st.checked as f64
    };
    let passed = if e.mostly >= 1.0 {
        st.unexpected == 0
    } else {
        1.0 - frac >= e.mostly - 1e-12
    };
    let rows: Vec<String> = st.samples.iter().map(|(r, _)| r.to_string()).collect();
    let message = if st.unexpected == 0 {
        format!("all {} values ok", st.checked)
    } else {
        format!(
            "{} of {} values {what} at rows [{}{}]",
            st.unexpected,
            st.checked,
            rows.join(", "),
            if st.unexpected as usize > rows.len() {
                ", …"
            } else {
                ""
            }
        )
    };
    Outcome {
        passed,
        observed: json!(st.unexpected),
        element_count: st.checked,
        unexpected: st.unexpected,
        samples: st.samples,
        details: Value::Null,
        message,
    }
}

fn value_outcome(
    name: &str,
    v: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    n: u64,
) -> Outcome {
    match v {
        None => Outcome {
            passed: false,
            observed: Value::Null,
            element_count: 0,
            unexpected: 0,
            samples: Vec::new(),
            details: Value::Null,
            message: format!("{name}: no non-null values"),
        },
        Some(v) => {
            let ok = within(v, min, max);
            Outcome {
                passed: ok,
                observed: num_json(v),
                element_count: n,
                unexpected: u64::from(!ok),
                samples: Vec::new(),
                details: Value::Null,
                message: format!(
                    "{name} = {v}{} {}",
                    if ok { " within" } else { " outside" },
                    bounds_text(min, max)
                ),
            }
        }
    }
}

fn sort_values(v: &mut [f64]) {
    if v.len() > 100_000 {
        v.par_sort_unstable_by(f64::total_cmp);
    } else {
        v.sort_unstable_by(f64::total_cmp);
    }
}

fn finish(
    e: &Expectation,
    check: &Check,
    state: State,
    rows: u64,
    schema: &Schema,
    cap: usize,
) -> ExpectationResult {
    let o = outcome(e, check, state, rows, schema, cap);
    let unexpected_fraction = if o.element_count == 0 {
        0.0
    } else {
        o.unexpected as f64 / o.element_count as f64
    };
    ExpectationResult {
        expectation: e.kind.type_name().to_owned(),
        name: e.display_name(),
        columns: e.kind.columns(),
        severity: e.severity,
        passed: o.passed,
        observed: o.observed,
        element_count: o.element_count,
        unexpected_count: o.unexpected,
        unexpected_fraction,
        mostly: e.mostly,
        failing_rows: o
            .samples
            .into_iter()
            .map(|(row, value)| FailingRow { row, value })
            .collect(),
        details: o.details,
        message: o.message,
    }
}

fn outcome(
    e: &Expectation,
    check: &Check,
    state: State,
    rows: u64,
    schema: &Schema,
    cap: usize,
) -> Outcome {
    match (check, state) {
        (Check::RowCount { min, max }, _) => {
            let ok = min.is_none_or(|m| rows >= m) && max.is_none_or(|m| rows <= m);
            Outcome {
                passed: ok,
                observed: json!(rows),
                element_count: 1,
                unexpected: u64::from(!ok),
                samples: Vec::new(),
                details: Value::Null,
                message: format!(
                    "{rows} rows{} {}",
                    if ok { " within" } else { " outside" },
                    bounds_text(min.map(|x| x as f64), max.map(|x| x as f64))
                ),
            }
        }
        (Check::Schema, _) => schema_outcome(e, schema),
        (Check::NotNull { .. }, State::Rows(st)) => rows_outcome(e, st, "missing"),
        (
            Check::Between {
                min,
                max,
                smin,
                smax,
                ..
            },
            State::Rows(st),
        ) => {
            let lo = min.map_or_else(
                || "(-inf".to_owned(),
                |m| format!("{}{m}", if *smin { "(" } else { "[" }),
            );
            let hi = max.map_or_else(
                || "inf)".to_owned(),
                |m| format!("{m}{}", if *smax { ")" } else { "]" }),
            );
            rows_outcome(e, st, &format!("outside {lo}, {hi}"))
        }
        (Check::Set { negate, .. }, State::Rows(st)) => rows_outcome(
            e,
            st,
            if *negate {
                "in the forbidden set"
            } else {
                "not in the set"
            },
        ),
        (Check::Regex { re, .. }, State::Rows(st)) => {
            rows_outcome(e, st, &format!("not matching `{}`", re.as_str()))
        }
        (Check::Length { min, max, .. }, State::Rows(st)) => rows_outcome(
            e,
            st,
            &format!(
                "with a length outside {}",
                bounds_text(min.map(|x| x as f64), max.map(|x| x as f64))
            ),
        ),
        (Check::Increasing { strict, .. }, State::Increasing { rows, .. }) => rows_outcome(
            e,
            rows,
            if *strict {
                "not greater than the previous value"
            } else {
                "smaller than the previous value"
            },
        ),
        (Check::Unique { .. }, State::Unique(mut u)) => {
            let distinct = u.resolve_ints(cap).max(u.keys.len() as u64);
            let mut o = rows_outcome(e, u.rows, "duplicating an earlier row");
            o.details = json!({ "distinct": distinct });
            o
        }
        (Check::NoOverlap { other_name, .. }, State::Overlap { rows, shared }) => {
            let mut o = rows_outcome(e, rows, &format!("with a key also in {other_name}"));
            o.observed = json!(shared.len());
            o.details = json!({ "shared_keys": shared.len(), "other": other_name });
            o
        }
        (Check::Moments { stat, min, max, .. }, State::Moments(m)) => {
            let v = if m.count == 0 {
                None
            } else {
                match stat {
                    Stat::Mean => Some(m.sum / m.count as f64),
                    Stat::Sum => Some(m.sum),
                    Stat::Min => Some(m.min),
                    Stat::Max => Some(m.max),
                    Stat::Stddev => (m.count > 1).then(|| (m.m2 / (m.count - 1) as f64).sqrt()),
                    _ => None,
                }
            };
            value_outcome(stat.name(), v, *min, *max, m.count)
        }
        (Check::Median { min, max, .. }, State::Values(mut v)) => {
            sort_values(&mut v);
            let med = (!v.is_empty()).then(|| stats::quantile_sorted(&v, 0.5));
            value_outcome("median", med, *min, *max, v.len() as u64)
        }
        (Check::Quantiles { q, min, max, .. }, State::Values(mut v)) => {
            if v.is_empty() {
                return value_outcome("quantiles", None, None, None, 0);
            }
            sort_values(&mut v);
            let mut observed = serde_json::Map::new();
            let mut bad = 0u64;
            let mut parts = Vec::new();
            for ((q, lo), hi) in q.iter().zip(min).zip(max) {
                let x = stats::quantile_sorted(&v, *q);
                let ok = x >= *lo && x <= *hi;
                bad += u64::from(!ok);
                observed.insert(q.to_string(), num_json(x));
                if !ok {
                    parts.push(format!("q{q} = {x} outside [{lo}, {hi}]"));
                }
            }
            Outcome {
                passed: bad == 0,
                observed: Value::Object(observed),
                element_count: q.len() as u64,
                unexpected: bad,
                samples: Vec::new(),
                details: Value::Null,
                message: if bad == 0 {
                    "all quantiles within bounds".into()
                } else {
                    parts.join("; ")
                },
            }
        }
        (Check::Distinct { stat, min, max, .. }, State::Distinct { set, count }) => {
            let v = match stat {
                Stat::DistinctCount => Some(set.len() as f64),
                _ => (count > 0).then(|| set.len() as f64 / count as f64),
            };
            value_outcome(stat.name(), v, *min, *max, count)
        }
        (
            Check::ClassBalance {
                min_f,
                max_f,
                min_count,
                ..
            },
            State::Counts(counts),
        ) => {
            let total: u64 = counts.values().sum();
            let mut classes: Vec<(Key, u64)> = counts.into_iter().collect();
            classes.sort();
            let mut observed = serde_json::Map::new();
            let mut details = serde_json::Map::new();
            let mut bad = Vec::new();
            for (k, n) in &classes {
                let f = *n as f64 / total as f64;
                observed.insert(k.label(), num_json(f));
                details.insert(k.label(), json!(n));
                let ok = min_f.is_none_or(|m| f >= m)
                    && max_f.is_none_or(|m| f <= m)
                    && min_count.is_none_or(|m| *n >= m);
                if !ok {
                    bad.push(format!("{} ({n} rows, {:.4})", k.label(), f));
                }
            }
            let passed = bad.is_empty() && total > 0;
            Outcome {
                passed,
                observed: Value::Object(observed),
                element_count: classes.len() as u64,
                unexpected: bad.len() as u64,
                samples: Vec::new(),
                details: json!({ "counts": Value::Object(details) }),
                message: if total == 0 {
                    "no labels".into()
                } else if bad.is_empty() {
                    format!("{} classes within bounds", classes.len())
                } else {
                    format!("classes out of bounds: {}", bad.join(", "))
                },
            }
        }
        (Check::Freshness { max_age, now, .. }, State::Newest(newest)) => match newest {
            None => value_outcome("freshness", None, None, None, 0),
            Some(micros) => {
                let now_us = now.as_microsecond();
                let age_us = now_us.saturating_sub(micros);
                let limit = i64::try_from(max_age.as_micros()).unwrap_or(i64::MAX);
                let ok = age_us <= limit;
                let newest_text = jiff::Timestamp::from_microsecond(micros)
                    .map_or_else(|_| micros.to_string(), |t| t.to_string());
                let age = std::time::Duration::from_micros(age_us.max(0) as u64);
                Outcome {
                    passed: ok,
                    observed: json!(newest_text),
                    element_count: 1,
                    unexpected: u64::from(!ok),
                    samples: Vec::new(),
                    details: json!({ "age_seconds": age_us as f64 / 1e6, "max_age_seconds": max_age.as_secs_f64(), "now": now.to_string() }),
                    message: format!(
                        "newest {newest_text} is {} old ({} allowed)",
                        humantime::format_duration(std::time::Duration::from_secs(age.as_secs())),
                        humantime::format_duration(*max_age)
                    ),
                }
            }
        },
        (
            Check::Drift {
                cols,
                share,
                reference,
            },
            State::Drift(states),
        ) => drift_outcome(cols, states, *share, reference),
        _ => Outcome {
            passed: false,
            observed: Value::Null,
            element_count: 0,
            unexpected: 0,
            samples: Vec::new(),
            details: Value::Null,
            message: "internal: no result".into(),
        },
    }
}

fn schema_outcome(e: &Expectation, schema: &Schema) -> Outcome {
    let Kind::Schema {
        columns,
        strict,
        forbidden,
    } = &e.kind
    else {
        return value_outcome("schema", None, None, None, 0);
    };
    let mut problems = Vec::new();
    for (name, spec) in columns {
        match schema.field_with_name(name) {
            Err(_) => {
                let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
                let close = column::closest_names(name, &names);
                problems.push(if close.is_empty() {
                    format!("missing column `{name}`")
                } else {
                    format!("missing column `{name}` (closest: {})", close.join(", "))
                });
            }
            Ok(f) if !spec.matches(f.data_type()) => problems.push(format!(
                "column `{name}` is {}, expected {spec:?}",
                type_name(f.data_type())
            )),
            Ok(_) => {}
        }
    }
    if *strict {
        for f in schema.fields() {
            if !columns.iter().any(|(n, _)| n == f.name()) {
                problems.push(format!("unexpected column `{}`", f.name()));
            }
        }
    }
    for g in forbidden {
        if let Ok(glob) = globset::Glob::new(g) {
            let m = glob.compile_matcher();
            for f in schema.fields() {
                if m.is_match(f.name()) {
                    problems.push(format!("forbidden column `{}` (matches `{g}`)", f.name()));
                }
            }
        }
    }
    let observed: serde_json::Map<String, Value> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), json!(type_name(f.data_type()))))
        .collect();
    Outcome {
        passed: problems.is_empty(),
        observed: Value::Object(observed),
        element_count: schema.fields().len() as u64,
        unexpected: problems.len() as u64,
        samples: Vec::new(),
        details: json!({ "problems": problems }),
        message: if problems.is_empty() {
            "schema ok".into()
        } else {
            problems.join("; ")
        },
    }
}

/// One column's drift verdict.
fn drift_column(c: &DriftColumn, state: DriftState) -> Value {
    let mut statistic = f64::NAN;
    let mut pvalue: Option<f64> = None;
    let mut note = None;
    match state {
        DriftState::Bins(cur) => {
            let mut reference = vec![0u64; c.edges.len() + 1];
            for v in &c.ref_values {
                reference[stats::quantile_bin(&c.edges, *v)] += 1;
            }
            if c.ref_values.is_empty() || cur.iter().sum::<u64>() == 0 {
                note = Some("no values to compare");
            } else {
                statistic = stats::psi(&reference, &cur);
            }
        }
        DriftState::Values(mut cur) => {
            sort_values(&mut cur);
            if c.ref_values.is_empty() || cur.is_empty() {
                note = Some("no values to compare");
            } else {
                match c.method {
                    DriftMethod::Ks => {
                        let r = stats::ks_2samp_sorted(&c.ref_values, &cur);
                        statistic = r.statistic;
                        pvalue = Some(r.pvalue);
                    }
                    DriftMethod::Wasserstein => {
                        let norm = stats::std_pop(&c.ref_values).max(0.001);
                        statistic = stats::wasserstein_sorted(&c.ref_values, &cur) / norm;
                    }
                    _ => {
                        let lo = c.ref_values[0].min(cur[0]);
                        let hi = c.ref_values[c.ref_values.len() - 1].max(cur[cur.len() - 1]);
                        let edges = stats::histogram_edges(lo, hi, 30);
                        let hist = |vals: &[f64]| {
                            let mut h = vec![0.0; 30];
                            for v in vals {
                                if let Some(b) = stats::histogram_bin(&edges, *v) {
                                    h[b] += 1.0;
                                }
                            }
                            let n = vals.len() as f64;
                            h.iter_mut().for_each(|x| *x /= n);
                            h
                        };
                        statistic = stats::jensen_shannon(&hist(&c.ref_values), &hist(&cur));
                    }
                }
            }
        }
        DriftState::Counts(cur) => {
            let rn: u64 = c.ref_counts.values().sum();
            let cn: u64 = cur.values().sum();
            if rn == 0 || cn == 0 {
                note = Some("no values to compare");
            } else {
                let mut keys: Vec<&Key> = c.ref_counts.keys().chain(cur.keys()).collect();
                keys.sort();
                keys.dedup();
                let r: Vec<f64> = keys
                    .iter()
                    .map(|k| *c.ref_counts.get(*k).unwrap_or(&0) as f64)
                    .collect();
                let o: Vec<f64> = keys
                    .iter()
                    .map(|k| *cur.get(*k).unwrap_or(&0) as f64)
                    .collect();
                if c.method == DriftMethod::Chi2 {
                    let k_norm = cn as f64 / rn as f64;
                    let exp: Vec<f64> = r.iter().map(|x| x * k_norm).collect();
                    let (s, p) = stats::chisquare(&o, &exp);
                    statistic = s;
                    pvalue = Some(if p.is_nan() { 1.0 } else { p });
                } else {
                    let rp: Vec<f64> = r.iter().map(|x| x / rn as f64).collect();
                    let op: Vec<f64> = o.iter().map(|x| x / cn as f64).collect();
                    statistic = stats::jensen_shannon(&rp, &op);
                }
            }
        }
    }
    let drifted = match (note, pvalue) {
        (Some(_), _) => true,
        (None, Some(p)) => p < c.threshold,
        (None, None) => statistic >= c.threshold,
    };
    json!({
        "column": c.name,
        "method": c.method.name(),
        "statistic": num_json(statistic),
        "p_value": pvalue.map_or(Value::Null, num_json),
        "threshold": c.threshold,
        "drifted": drifted,
        "note": note,
    })
}

fn drift_outcome(
    cols: &[DriftColumn],
    states: Vec<DriftState>,
    share: f64,
    reference: &str,
) -> Outcome {
    let per: Vec<Value> = cols
        .iter()
        .zip(states)
        .map(|(c, s)| drift_column(c, s))
        .collect();
    let drifted: Vec<&str> = per
        .iter()
        .filter(|v| v["drifted"] == Value::Bool(true))
        .filter_map(|v| v["column"].as_str())
        .collect();
    let n = per.len();
    let observed_share = drifted.len() as f64 / n as f64;
    let dataset_drift = observed_share >= share && !drifted.is_empty();
    Outcome {
        passed: !dataset_drift,
        observed: num_json(observed_share),
        element_count: n as u64,
        unexpected: drifted.len() as u64,
        samples: Vec::new(),
        details: json!({ "reference": reference, "drift_share": share, "dataset_drift": dataset_drift, "columns": per }),
        message: if drifted.is_empty() {
            format!("no drift in {n} columns")
        } else {
            format!(
                "{} of {n} columns drifted: {}",
                drifted.len(),
                drifted.join(", ")
            )
        },
    }
}
