//! The batch-wise decoder against a plain reference: whatever the row-group sizes, encodings and
//! column types, the coded table is the sorted union of the labels and every row maps back to
//! its value.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Float32Array, Float64Array, Int8Array, Int32Array, Int64Array,
    LargeStringArray, StringArray,
};
use arrow::datatypes::{Int8Type, Int32Type};
use arrow::record_batch::RecordBatch;
use mlops_metrics::{Columns, Label, Predictions, Target, Task};
use proptest::prelude::*;

/// How a label column is stored.
#[derive(Debug, Clone, Copy)]
enum Store {
    Int64,
    Int32,
    Float32,
    Utf8,
    LargeUtf8,
    Dict,
}

/// A label column's values as the test sees them: integers or strings.
#[derive(Debug, Clone)]
enum Values {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Values {
    fn labels(&self) -> Vec<Label> {
        match self {
            Self::Int(v) => v.iter().map(|&x| Label::Int(x)).collect(),
            Self::Str(v) => v.iter().map(|x| Label::Str(x.clone())).collect(),
        }
    }

    fn array(&self, store: Store) -> ArrayRef {
        match (self, store) {
            (Self::Int(v), Store::Int32) => Arc::new(Int32Array::from(
                v.iter().map(|&x| x as i32).collect::<Vec<_>>(),
            )),
            (Self::Int(v), Store::Float32) => Arc::new(Float32Array::from(
                v.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            )),
            (Self::Int(v), _) => Arc::new(Int64Array::from(v.clone())),
            (Self::Str(v), Store::LargeUtf8) => Arc::new(LargeStringArray::from(v.clone())),
            (Self::Str(v), Store::Dict) => Arc::new(
                v.iter()
                    .map(String::as_str)
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
            (Self::Str(v), _) => Arc::new(StringArray::from(v.clone())),
        }
    }
}

/// The reference: the sorted union of the labels, and each column's values.
fn expected(columns: &[&Values]) -> (Vec<Label>, Vec<Vec<Label>>) {
    let all: BTreeSet<Label> = columns.iter().flat_map(|c| c.labels()).collect();
    (
        all.into_iter().collect(),
        columns.iter().map(|c| c.labels()).collect(),
    )
}

fn decoded(classes: &[Label], codes: &[u32]) -> Vec<Label> {
    codes.iter().map(|&c| classes[c as usize].clone()).collect()
}

/// Integer labels from a small range, a wide sparse range, or strings from a small alphabet;
/// `n` rows.
fn values(n: usize, kind: u8) -> BoxedStrategy<Values> {
    match kind {
        0 => prop::collection::vec(-3i64..5, n)
            .prop_map(Values::Int)
            .boxed(),
        1 => prop::collection::vec(
            prop_oneof![
                Just(i64::MIN),
                Just(i64::MAX),
                -2i64..2,
                (1i64 << 40)..(1i64 << 40) + 3
            ],
            n,
        )
        .prop_map(Values::Int)
        .boxed(),
        _ => prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "", "zz", "é"]), n)
            .prop_map(|v| Values::Str(v.into_iter().map(str::to_owned).collect()))
            .boxed(),
    }
}

fn store_for(v: &Values, pick: u8) -> Store {
    match (v, pick % 3) {
        (Values::Int(x), 1) if x.iter().all(|&i| i32::try_from(i).is_ok()) => Store::Int32,
        (Values::Int(x), 2) if x.iter().all(|&i| i.unsigned_abs() < 1 << 20) => Store::Float32,
        (Values::Int(_), _) => Store::Int64,
        (Values::Str(_), 0) => Store::Utf8,
        (Values::Str(_), 1) => Store::LargeUtf8,
        (Values::Str(_), _) => Store::Dict,
    }
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group: usize, dictionary: bool) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .set_dictionary_enabled(dictionary)
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn case() -> impl Strategy<Value = (Values, Values, Values, Vec<f64>, u8, u8, u8, usize, bool)> {
    (1usize..300, 0u8..3, 0u8..3).prop_flat_map(|(n, label_kind, segment_kind)| {
        (
            values(n, label_kind),
            values(n, label_kind),
            values(n, segment_kind),
            prop::collection::vec(0.0f64..1.0, n),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            1usize..80,
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn parquet_row_groups_and_in_memory_arrays_code_like_the_reference(
        (t, p, seg, score, st, sp, ss, row_group, dictionary) in case()
    ) {
        let arrays = vec![
            ("y_true", t.array(store_for(&t, st))),
            ("y_pred", p.array(store_for(&p, sp))),
            ("segment", seg.array(store_for(&seg, ss))),
            ("score", Arc::new(Float64Array::from(score.clone())) as ArrayRef),
        ];
        let columns = Columns {
            score: Some("score".into()),
            segments: vec!["segment".into()],
            ..Columns::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        write_parquet(&path, arrays.clone(), row_group, dictionary);
        let from_file = Predictions::read(&path, &columns, Task::Classification).unwrap();
        let map: HashMap<String, ArrayRef> =
            arrays.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let in_memory =
            Predictions::from_arrays("mem".as_ref(), &map, &columns, Task::Classification).unwrap();
        let (classes, want) = expected(&[&t, &p]);
        let (seg_values, want_seg) = expected(&[&seg]);
        for table in [&from_file, &in_memory] {
            let Target::Classification { classes: got, y_true, y_pred } = &table.target else {
                panic!("not classification")
            };
            prop_assert_eq!(got, &classes);
            prop_assert_eq!(decoded(got, y_true), want[0].clone());
            prop_assert_eq!(decoded(got, y_pred), want[1].clone());
            prop_assert_eq!(&table.segments[0].values, &seg_values);
            prop_assert_eq!(
                decoded(&table.segments[0].values, &table.segments[0].codes),
                want_seg[0].clone()
            );
            prop_assert_eq!(table.score.as_deref(), Some(score.as_slice()));
        }
    }
}

/// More rows than one in-memory batch, with labels that appear only in later batches and
/// problems far from the first batch: codes are merged across batches and rows are counted over
/// the whole table.
#[test]
fn batches_of_large_tables_merge_their_labels_and_count_rows_globally() {
    let n = 200_000usize;
    // Early rows only see labels 20 and 30, later ones 5 and 10; the segment only gains "a"
    // after 150_000 rows.
    let t: Vec<i64> = (0..n)
        .map(|i| {
            if i < 100_000 {
                [20, 30][i % 2]
            } else {
                [5, 10][i % 2]
            }
        })
        .collect();
    let p: Vec<i64> = (0..n).map(|i| [30, 20, 5][i % 3]).collect();
    let seg: DictionaryArray<Int8Type> = (0..n)
        .map(|i| if i < 150_000 { "b" } else { "a" })
        .collect();
    let mut map: HashMap<String, ArrayRef> = HashMap::new();
    map.insert("y_true".into(), Arc::new(Int64Array::from(t.clone())));
    map.insert("y_pred".into(), Arc::new(Int64Array::from(p.clone())));
    map.insert("g".into(), Arc::new(seg));
    let columns = Columns {
        segments: vec!["g".into()],
        ..Columns::default()
    };
    let table =
        Predictions::from_arrays("big".as_ref(), &map, &columns, Task::Classification).unwrap();
    let Target::Classification {
        classes,
        y_true,
        y_pred,
    } = &table.target
    else {
        panic!()
    };
    assert_eq!(classes, &[5, 10, 20, 30].map(Label::Int).to_vec());
    assert!(
        decoded(classes, y_true)
            .iter()
            .zip(&t)
            .all(|(a, &b)| *a == Label::Int(b))
    );
    assert!(
        decoded(classes, y_pred)
            .iter()
            .zip(&p)
            .all(|(a, &b)| *a == Label::Int(b))
    );
    let s = &table.segments[0];
    assert_eq!(
        s.values,
        vec![Label::Str("a".into()), Label::Str("b".into())]
    );
    assert!(
        s.codes
            .iter()
            .enumerate()
            .all(|(i, &c)| c == u32::from(i < 150_000))
    );

    // A NaN label and a NaN score deep in the table are reported at their table rows.
    let mut f: Vec<f64> = t.iter().map(|&x| x as f64).collect();
    f[131_072 + 7] = f64::NAN;
    map.insert("y_true".into(), Arc::new(Float64Array::from(f)));
    let msg = Predictions::from_arrays("big".as_ref(), &map, &columns, Task::Classification)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("column `y_true`") && msg.contains("row 131079 is NaN"),
        "{msg}"
    );
    map.insert("y_true".into(), Arc::new(Int64Array::from(t)));
    let mut score = vec![0.5; n];
    score[70_000] = f64::NAN;
    map.insert("s".into(), Arc::new(Float64Array::from(score)));
    let with_score = Columns {
        score: Some("s".into()),
        ..columns.clone()
    };
    let msg = Predictions::from_arrays("big".as_ref(), &map, &with_score, Task::Classification)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("column `s`") && msg.contains("row 70000 is NaN"),
        "{msg}"
    );
    // Nulls are counted over every batch, with the first one's row.
    let nulls: Vec<Option<i64>> = (0..n)
        .map(|i| (i % 100_000 != 99_999).then_some(1))
        .collect();
    map.insert("y_pred".into(), Arc::new(Int64Array::from(nulls)));
    let msg = Predictions::from_arrays("big".as_ref(), &map, &columns, Task::Classification)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("column `y_pred`: 2 null values (first at row 99999)"),
        "{msg}"
    );
}

#[test]
fn in_memory_columns_of_different_lengths_and_small_integer_types() {
    let mut map: HashMap<String, ArrayRef> = HashMap::new();
    map.insert("y_true".into(), Arc::new(Int8Array::from(vec![1, -1, 1])));
    map.insert("y_pred".into(), Arc::new(Int8Array::from(vec![1, 1, -1])));
    let table = Predictions::from_arrays(
        "m".as_ref(),
        &map,
        &Columns::default(),
        Task::Classification,
    )
    .unwrap();
    let Target::Classification {
        classes, y_true, ..
    } = &table.target
    else {
        panic!()
    };
    assert_eq!(classes, &[Label::Int(-1), Label::Int(1)]);
    assert_eq!(y_true, &[1, 0, 1]);
    map.insert("y_pred".into(), Arc::new(Int8Array::from(vec![1, 1])));
    let msg = Predictions::from_arrays(
        "m".as_ref(),
        &map,
        &Columns::default(),
        Task::Classification,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("column `y_pred`: has 2 rows but `y_true` has 3"),
        "{msg}"
    );
}
