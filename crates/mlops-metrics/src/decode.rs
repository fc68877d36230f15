//! Decoding the configured columns of a table batch by batch, straight into their final form.
//!
//! Every output column (label codes as `u32`, numbers as `f64`) is allocated once at its full
//! length; each batch (a slice of a Parquet row group, of a CSV file, or of an in-memory array)
//! writes its rows in place, in parallel with the other batches. Label columns are coded against
//! the batch's own sorted labels; at the end the batches' label lists are merged into the table's
//! and only the batches whose list differs from it are recoded. So no column is concatenated or
//! copied whole, and a batch's Arrow arrays are dropped as soon as it is coded.

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use rayon::prelude::*;

use crate::labels::{self, Kind, Label, Local};

/// Which columns to read and what each becomes: groups of label columns coded against one class
/// list (`y_true` with `y_pred`; each segment column; the id column) and number columns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// The distinct columns to read.
    pub(crate) names: Vec<String>,
    /// Label groups: indices into `names`.
    groups: Vec<Vec<usize>>,
    /// Number columns: indices into `names`.
    numbers: Vec<usize>,
    /// Groups and number columns in the order their problems are reported.
    order: Vec<Role>,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Group(usize),
    Number(usize),
}

impl Plan {
    fn column(&mut self, name: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.names.len() - 1
            }
        }
    }

    /// Adds label columns coded against one class list; returns the group's index.
    pub(crate) fn group(&mut self, names: &[&str]) -> usize {
        let columns = names.iter().map(|n| self.column(n)).collect();
        self.groups.push(columns);
        self.order.push(Role::Group(self.groups.len() - 1));
        self.groups.len() - 1
    }

    /// Adds a number column; returns its index among the number columns.
    pub(crate) fn number(&mut self, name: &str) -> usize {
        let column = self.column(name);
        self.numbers.push(column);
        self.order.push(Role::Number(self.numbers.len() - 1));
        self.numbers.len() - 1
    }

    /// Whether column `name` (as read) is coded as labels.
    pub(crate) fn is_label(&self, name: &str) -> bool {
        self.groups
            .iter()
            .flatten()
            .any(|&c| self.names.get(c).is_some_and(|n| n == name))
    }
}

/// A label group, coded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Coded {
    /// The sorted union of the group's values.
    pub(crate) classes: Vec<Label>,
    /// One code column per column of the group.
    pub(crate) codes: Vec<Vec<u32>>,
}

/// The decoded columns.
#[derive(Debug, Clone, Default)]
pub(crate) struct Decoded {
    /// Per label group, in the order of [`Plan::group`] calls.
    pub(crate) groups: Vec<Coded>,
    /// Per number column, in the order of [`Plan::number`] calls.
    pub(crate) numbers: Vec<Vec<f64>>,
}

/// A column that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The column name.
    pub(crate) column: String,
    /// What is wrong.
    pub(crate) message: String,
}

/// What is wrong with one column over the batches seen so far.
#[derive(Debug, Clone, Default)]
struct Issue {
    nulls: usize,
    first_null: Option<usize>,
    /// The first unusable row (or the batch start for whole-batch problems) and the message.
    bad: Option<(usize, String)>,
}

impl Issue {
    fn absorb(&mut self, other: Self) {
        self.nulls += other.nulls;
        self.first_null = match (self.first_null, other.first_null) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some((row, message)) = other.bad
            && self.bad.as_ref().is_none_or(|(r, _)| row < *r)
        {
            self.bad = Some((row, message));
        }
    }

    fn nulls(array: &dyn Array, offset: usize) -> Option<Self> {
        let nulls = array.null_count();
        (nulls > 0).then(|| Self {
            nulls,
            first_null: (0..array.len())
                .find(|&i| array.is_null(i))
                .map(|i| offset + i),
            bad: None,
        })
    }

    fn bad(row: usize, message: String) -> Self {
        Self {
            bad: Some((row, message)),
            ..Self::default()
        }
    }
}

/// The decoded form of one batch: where it sits, the labels of each group, what went wrong.
#[derive(Debug)]
pub(crate) struct BatchResult {
    offset: usize,
    rows: usize,
    locals: Vec<Option<Local>>,
    group_issues: Vec<Vec<Issue>>,
    number_issues: Vec<Issue>,
}

/// The output columns, allocated once at full length.
#[derive(Debug)]
pub(crate) struct Outputs {
    groups: Vec<Vec<Vec<u32>>>,
    numbers: Vec<Vec<f64>>,
}

/// The part of every output column that one batch (or a run of batches) writes.
#[derive(Debug, Default)]
pub(crate) struct Part<'a> {
    groups: Vec<Vec<&'a mut [u32]>>,
    numbers: Vec<&'a mut [f64]>,
    rows: usize,
}

impl<'a> Part<'a> {
    /// Splits off the first `rows` rows (`None` when fewer remain).
    pub(crate) fn take_front(&mut self, rows: usize) -> Option<Part<'a>> {
        if rows > self.rows {
            return None;
        }
        let groups = self
            .groups
            .iter_mut()
            .map(|g| {
                g.iter_mut()
                    .map(|s| {
                        let (head, tail) = std::mem::take(s).split_at_mut(rows);
                        *s = tail;
                        head
                    })
                    .collect()
            })
            .collect();
        let numbers = self
            .numbers
            .iter_mut()
            .map(|s| {
                let (head, tail) = std::mem::take(s).split_at_mut(rows);
                *s = tail;
                head
            })
            .collect();
        self.rows -= rows;
        Some(Part {
            groups,
            numbers,
            rows,
        })
    }

    /// The rows left.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }
}

impl Outputs {
    /// Allocates every output column of `plan` for `rows` rows.
    ///
    /// Fails, instead of aborting the process, when they cannot be allocated (a corrupt Parquet
    /// footer can claim any number of rows).
    pub(crate) fn new(plan: &Plan, rows: usize) -> Result<Self, String> {
        let per_row = 4 * plan.groups.iter().map(Vec::len).sum::<usize>() + 8 * plan.numbers.len();
        let too_many = || format!("{rows} rows do not fit in memory");
        let bytes = rows.checked_mul(per_row).ok_or_else(too_many)?;
        // A trial reservation of the total, never written so never backed by memory, turns an
        // impossible size into an error; the zeroed outputs below are then paged in lazily.
        Vec::<u8>::new()
            .try_reserve_exact(bytes)
            .map_err(|_| too_many())?;
        Ok(Self {
            groups: plan
                .groups
                .iter()
                .map(|g| g.iter().map(|_| vec![0; rows]).collect())
                .collect(),
            numbers: plan.numbers.iter().map(|_| vec![0.0; rows]).collect(),
        })
    }

    fn whole(&mut self) -> Part<'_> {
        let rows = self
            .groups
            .iter()
            .flatten()
            .map(Vec::len)
            .chain(self.numbers.iter().map(Vec::len))
            .next()
            .unwrap_or(0);
        Part {
            groups: self
                .groups
                .iter_mut()
                .map(|g| g.iter_mut().map(Vec::as_mut_slice).collect())
                .collect(),
            numbers: self.numbers.iter_mut().map(Vec::as_mut_slice).collect(),
            rows,
        }
    }

    /// Consecutive parts of `lengths` rows each (fewer parts when the lengths run past the end).
    pub(crate) fn split(&mut self, lengths: &[usize]) -> Vec<Part<'_>> {
        let mut rest = self.whole();
        lengths.iter().map_while(|&n| rest.take_front(n)).collect()
    }
}

/// The plan with the label kind of each group, ready to decode batches.
#[derive(Debug)]
pub(crate) struct Decoder<'p> {
    plan: &'p Plan,
    /// Per group, its kind of labels, or `None` when its columns mix kinds or one cannot hold
    /// labels (then batches are only checked, and the problem reported at the end).
    kinds: Vec<Option<Kind>>,
}

impl<'p> Decoder<'p> {
    /// `types[i]` is the Arrow type of `plan.names[i]`.
    pub(crate) fn new(plan: &'p Plan, types: &[DataType]) -> Self {
        let kinds = plan
            .groups
            .iter()
            .map(|g| {
                let kinds: Vec<Option<Kind>> = g
                    .iter()
                    .map(|&c| types.get(c).and_then(|t| labels::kind_of(t).ok()))
                    .collect();
                match kinds.first() {
                    Some(&Some(k)) if kinds.iter().all(|x| *x == Some(k)) => Some(k),
                    _ => None,
                }
            })
            .collect();
        Self { plan, kinds }
    }

    /// Decodes one batch: `arrays[i]` holds rows `offset..offset + part.rows()` of
    /// `plan.names[i]`, and `part` is where those rows go.
    pub(crate) fn batch(&self, arrays: &[ArrayRef], offset: usize, part: Part<'_>) -> BatchResult {
        let Part {
            mut groups,
            numbers,
            rows,
        } = part;
        let mut locals = Vec::with_capacity(self.plan.groups.len());
        let mut group_issues = Vec::with_capacity(self.plan.groups.len());
        for ((g, columns), out) in self.plan.groups.iter().enumerate().zip(groups.iter_mut()) {
            let mut issues = vec![Issue::default(); columns.len()];
            let mut batches = Vec::with_capacity(columns.len());
            for (issue, &c) in issues.iter_mut().zip(columns) {
                let Some(array) = arrays.get(c) else {
                    *issue = Issue::bad(offset, "column missing from a batch".to_owned());
                    continue;
                };
                if let Some(nulls) = Issue::nulls(array.as_ref(), offset) {
                    *issue = nulls;
                    continue;
                }
                match labels::batch(array.as_ref(), offset) {
                    Ok(b) => batches.push(b),
                    Err(message) => *issue = Issue::bad(offset, message),
                }
            }
            let mut local = None;
            if batches.len() == columns.len() && self.kinds[g].is_some() {
                match labels::code_batch(&batches, out) {
                    Ok(l) => local = Some(l),
                    Err(message) => {
                        if let Some(issue) = issues.first_mut() {
                            *issue = Issue::bad(offset, message);
                        }
                    }
                }
            }
            locals.push(local);
            group_issues.push(issues);
        }
        let number_issues = self
            .plan
            .numbers
            .iter()
            .zip(numbers)
            .map(|(&c, out)| match arrays.get(c) {
                Some(array) => copy_numbers(array.as_ref(), out, offset),
                None => Issue::bad(offset, "column missing from a batch".to_owned()),
            })
            .collect();
        BatchResult {
            offset,
            rows,
            locals,
            group_issues,
            number_issues,
        }
    }

    /// Merges the batches' results (which must cover rows `0..rows` of `outputs`, in any order):
    /// reports the first problem in plan order, else merges each group's label lists and recodes
    /// the batches whose list differs.
    pub(crate) fn finish(
        &self,
        mut outputs: Outputs,
        mut results: Vec<BatchResult>,
        rows: usize,
    ) -> Result<Decoded, Problem> {
        results.sort_by_key(|r| r.offset);
        let mut covered = 0;
        for r in &results {
            if r.offset != covered {
                break;
            }
            covered += r.rows;
        }
        if covered != rows {
            return Err(Problem {
                column: self.plan.names.first().cloned().unwrap_or_default(),
                message: format!("the batches hold {covered} rows, the table {rows}"),
            });
        }
        self.check(&results)?;
        let mut classes = Vec::with_capacity(self.plan.groups.len());
        let mut remaps: Vec<Vec<Option<Vec<u32>>>> = results
            .iter()
            .map(|_| vec![None; self.plan.groups.len()])
            .collect();
        for g in 0..self.plan.groups.len() {
            let locals: Vec<&Local> = results
                .iter()
                .filter_map(|r| r.locals.get(g).and_then(Option::as_ref))
                .collect();
            let all = union(&locals);
            for (r, remap) in results.iter().zip(remaps.iter_mut()) {
                if let Some(Some(local)) = r.locals.get(g)
                    && *local != all
                {
                    remap[g] = Some(positions(local, &all));
                }
            }
            classes.push(match all {
                Local::Int(v) => v.into_iter().map(Label::Int).collect::<Vec<_>>(),
                Local::Str(v) => v.into_iter().map(Label::Str).collect(),
            });
        }
        if remaps.iter().flatten().any(Option::is_some) {
            let lengths: Vec<usize> = results.iter().map(|r| r.rows).collect();
            outputs
                .split(&lengths)
                .into_par_iter()
                .zip(remaps)
                .for_each(|(mut part, remap)| {
                    for (g, remap) in remap.iter().enumerate() {
                        let (Some(remap), Some(columns)) = (remap, part.groups.get_mut(g)) else {
                            continue;
                        };
                        for column in columns.iter_mut() {
                            for code in column.iter_mut() {
                                *code = remap[*code as usize];
                            }
                        }
                    }
                });
        }
        Ok(Decoded {
            groups: outputs
                .groups
                .into_iter()
                .zip(classes)
                .map(|(codes, classes)| Coded { classes, codes })
                .collect(),
            numbers: outputs.numbers,
        })
    }

    /// The first problem, in plan order: per column nulls, then the first unusable row; for a
    /// group, then mixed kinds.
    fn check(&self, results: &[BatchResult]) -> Result<(), Problem> {
        let name = |c: usize| self.plan.names.get(c).cloned().unwrap_or_default();
        for role in &self.plan.order {
            match *role {
                Role::Group(g) => {
                    let columns = &self.plan.groups[g];
                    for (i, &c) in columns.iter().enumerate() {
                        let mut issue = Issue::default();
                        for r in results {
                            if let Some(x) = r.group_issues.get(g).and_then(|v| v.get(i)) {
                                issue.absorb(x.clone());
                            }
                        }
                        if issue.nulls > 0 {
                            return Err(Problem {
                                column: name(c),
                                message: format!(
                                    "{} null values (first at row {}); labels must not be null",
                                    issue.nulls,
                                    issue.first_null.unwrap_or(0)
                                ),
                            });
                        }
                        if let Some((_, message)) = issue.bad {
                            return Err(Problem {
                                column: name(c),
                                message,
                            });
                        }
                    }
                    if self.kinds[g].is_none() {
                        return Err(Problem {
                            column: name(columns.last().copied().unwrap_or(0)),
                            message: "y_true and y_pred mix integer and string labels".to_owned(),
                        });
                    }
                }
                Role::Number(k) => {
                    let mut issue = Issue::default();
                    for r in results {
                        if let Some(x) = r.number_issues.get(k) {
                            issue.absorb(x.clone());
                        }
                    }
                    let column = name(self.plan.numbers[k]);
                    if issue.nulls > 0 {
                        return Err(Problem {
                            column,
                            message: format!("{} null values; fill or drop them", issue.nulls),
                        });
                    }
                    if let Some((_, message)) = issue.bad {
                        return Err(Problem { column, message });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Copies a batch of a number column into `out`, reporting nulls, a non-numeric type or the
/// first NaN.
fn copy_numbers(array: &dyn Array, out: &mut [f64], offset: usize) -> Issue {
    if let Some(nulls) = Issue::nulls(array, offset) {
        return nulls;
    }
    let values = match labels::f64_values(array) {
        Ok(v) => v,
        Err(message) => return Issue::bad(offset, message),
    };
    if values.len() != out.len() {
        return Issue::bad(
            offset,
            format!(
                "a batch holds {} values for {} rows",
                values.len(),
                out.len()
            ),
        );
    }
    out.copy_from_slice(&values);
    match values.iter().position(|v| v.is_nan()) {
        Some(i) => Issue::bad(offset + i, format!("row {} is NaN", offset + i)),
        None => Issue::default(),
    }
}

/// The sorted union of label lists (integer lists and string lists never meet in one group).
fn union(locals: &[&Local]) -> Local {
    if locals.iter().all(|l| matches!(l, Local::Int(_))) {
        let mut all: Vec<i64> = Vec::new();
        for l in locals {
            if let Local::Int(v) = l {
                all.extend_from_slice(v);
            }
        }
        all.sort_unstable();
        all.dedup();
        Local::Int(all)
    } else {
        let mut all: Vec<&String> = Vec::new();
        for l in locals {
            if let Local::Str(v) = l {
                all.extend(v);
            }
        }
        all.sort_unstable();
        all.dedup();
        Local::Str(all.into_iter().cloned().collect())
    }
}

/// Where each label of `local` sits in `all` (which contains them all).
fn positions(local: &Local, all: &Local) -> Vec<u32> {
    match (local, all) {
        (Local::Int(l), Local::Int(a)) => l
            .iter()
            .map(|x| a.binary_search(x).unwrap_or(0) as u32)
            .collect(),
        (Local::Str(l), Local::Str(a)) => l
            .iter()
            .map(|x| a.binary_search(x).unwrap_or(0) as u32)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};

    use super::*;

    /// Decodes `arrays` (one per plan column, equally long) cut into batches of `lengths`.
    fn run(plan: &Plan, arrays: &[ArrayRef], lengths: &[usize]) -> Result<Decoded, Problem> {
        let rows = arrays.first().map_or(0, |a| a.len());
        let types: Vec<DataType> = arrays.iter().map(|a| a.data_type().clone()).collect();
        let decoder = Decoder::new(plan, &types);
        let mut outputs = Outputs::new(plan, rows).unwrap();
        let mut offsets = Vec::new();
        let mut at = 0;
        for &n in lengths {
            offsets.push(at);
            at += n;
        }
        let results: Vec<BatchResult> = outputs
            .split(lengths)
            .into_iter()
            .zip(offsets)
            .map(|(part, offset)| {
                let slices: Vec<ArrayRef> = arrays
                    .iter()
                    .map(|a| a.slice(offset, part.rows()))
                    .collect();
                decoder.batch(&slices, offset, part)
            })
            .collect();
        decoder.finish(outputs, results, rows)
    }

    #[test]
    fn batches_with_different_labels_are_recoded_to_the_tables_list() {
        let mut plan = Plan::default();
        plan.group(&["t", "p"]);
        plan.number("s");
        let t: ArrayRef = Arc::new(Int64Array::from(vec![5, 5, 1, 9, 1]));
        let p: ArrayRef = Arc::new(Int64Array::from(vec![5, 5, 5, 9, 7]));
        let s: ArrayRef = Arc::new(Float64Array::from(vec![0.1, 0.2, 0.3, 0.4, 0.5]));
        let d = run(&plan, &[t, p, s], &[2, 1, 2]).unwrap();
        assert_eq!(d.groups[0].classes, [1, 5, 7, 9].map(Label::Int).to_vec());
        assert_eq!(
            d.groups[0].codes,
            vec![vec![1, 1, 0, 3, 0], vec![1, 1, 1, 3, 2]]
        );
        assert_eq!(d.numbers[0], vec![0.1, 0.2, 0.3, 0.4, 0.5]);
    }

    #[test]
    fn the_first_problem_in_plan_order_is_reported_with_table_rows() {
        let mut plan = Plan::default();
        plan.group(&["t", "p"]);
        plan.number("s");
        let t: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None, None]));
        let p: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c", "d"]));
        let s: ArrayRef = Arc::new(Float64Array::from(vec![0.0, 0.0, f64::NAN, 0.0]));
        let err = run(&plan, &[t.clone(), p.clone(), s.clone()], &[2, 2]).unwrap_err();
        assert_eq!(err.column, "t");
        assert_eq!(
            err.message,
            "2 null values (first at row 2); labels must not be null"
        );
        let t: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 4]));
        let err = run(&plan, &[t.clone(), p, s.clone()], &[3, 1]).unwrap_err();
        assert_eq!(
            (err.column.as_str(), err.message.as_str()),
            ("p", "y_true and y_pred mix integer and string labels")
        );
        let err = run(&plan, &[t.clone(), t, s], &[1, 1, 1, 1]).unwrap_err();
        assert_eq!(
            (err.column.as_str(), err.message.as_str()),
            ("s", "row 2 is NaN")
        );
    }

    #[test]
    fn impossible_row_counts_are_an_error_not_an_abort() {
        let mut plan = Plan::default();
        plan.group(&["t", "p"]);
        plan.number("s");
        let err = Outputs::new(&plan, usize::MAX / 4).unwrap_err();
        assert!(err.contains("do not fit in memory"), "{err}");
        assert!(Outputs::new(&plan, 1 << 50).is_err());
    }

    #[test]
    fn batches_that_do_not_cover_the_table_are_an_error() {
        let mut plan = Plan::default();
        plan.number("s");
        let s: ArrayRef = Arc::new(Float64Array::from(vec![0.0, 1.0, 2.0]));
        let decoder = Decoder::new(&plan, &[DataType::Float64]);
        let mut outputs = Outputs::new(&plan, 3).unwrap();
        let results: Vec<BatchResult> = outputs
            .split(&[2])
            .into_iter()
            .map(|part| decoder.batch(&[s.slice(0, 2)], 0, part))
            .collect();
        let err = decoder.finish(outputs, results, 3).unwrap_err();
        assert!(err.message.contains("2 rows, the table 3"), "{err:?}");
    }
}
