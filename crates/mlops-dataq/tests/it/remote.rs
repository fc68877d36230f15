//! Datasets behind object-store URLs (feature `object-store`): `file://` always; `s3://` when
//! `.ci/run` starts the S3 server and exports MLOPS_TEST_S3_ENDPOINT and MLOPS_TEST_S3_BUCKET.

use mlops_dataq::{CheckOptions, Expectation, Kind, Suite, run_suite};

use crate::*;

fn suite_over(url: &str) -> Suite {
    Suite::new("t", url, "/")
        .expect(Expectation::new(between("x", 0.0, 10.0)))
        .expect(Expectation::new(Kind::Unique {
            columns: vec!["x".into()],
        }))
}

#[test]
fn file_urls_read_files_prefixes_and_globs_like_local_paths() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    write_parquet(
        &parts.join("part-0.parquet"),
        &batch(vec![("x", i64s(vec![Some(1), Some(2), Some(2)]))]),
        2,
    );
    write_parquet(
        &parts.join("part-1.parquet"),
        &batch(vec![("x", i64s(vec![Some(50), Some(3)]))]),
        1,
    );
    std::fs::write(parts.join("part-2.csv"), "x\n4\n").unwrap();
    let base = format!("file://{}", parts.display());
    let local = run_suite(
        &suite_over(&parts.join("part-*.parquet").display().to_string()),
        &CheckOptions::default(),
    )
    .unwrap();
    for url in [
        format!("{base}/part-*.parquet"),
        format!("{base}/part-1.parquet"),
    ] {
        let r = run_suite(&suite_over(&url), &CheckOptions::default()).unwrap();
        if url.contains('*') {
            assert_eq!(r.rows, 5);
            assert_eq!(r.results, local.results, "{url}");
            assert_eq!(r.results[0].failing_rows[0].row, 3);
            assert_eq!(r.results[1].failing_rows[0].row, 2);
        } else {
            assert_eq!(r.rows, 2);
        }
    }
    let csv = run_suite(
        &suite_over(&format!("{base}/part-2.csv")),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(csv.rows, 1);
    let err = run_suite(
        &suite_over(&format!("{base}/nothing-*.parquet")),
        &CheckOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no files match"), "{err}");
}

#[cfg(feature = "s3")]
#[test]
fn s3_urls_read_through_the_async_reader() {
    use object_store::ObjectStoreExt;
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("MLOPS_TEST_S3_ENDPOINT"),
        std::env::var("MLOPS_TEST_S3_BUCKET"),
    ) else {
        eprintln!(
            "MLOPS_TEST_S3_ENDPOINT/MLOPS_TEST_S3_BUCKET not set: the S3 test needs the server .ci/run starts"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.parquet");
    write_parquet(
        &file,
        &batch(vec![("x", i64s(vec![Some(1), Some(20), Some(1)]))]),
        2,
    );
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_bucket_name(&bucket)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.put(
        &"dataq-test/d.parquet".into(),
        std::fs::read(&file).unwrap().into(),
    ))
    .unwrap();
    require_endpoint_env(&endpoint);
    let r = run_suite(
        &suite_over(&format!("s3://{bucket}/dataq-test/d.parquet")),
        &CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(r.rows, 3);
    assert_eq!(r.results[0].failing_rows[0].row, 1);
    assert_eq!(r.results[1].failing_rows[0].row, 2);
}

#[cfg(feature = "s3")]
fn require_endpoint_env(endpoint: &str) {
    // The crate reads the endpoint like the credentials, from AWS_* variables the CI exports
    // (setting them here would need `unsafe` set_var, denied in this workspace).
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok() || std::env::var("AWS_ENDPOINT").is_ok(),
        "export AWS_ENDPOINT_URL={endpoint} and AWS_ALLOW_HTTP=true for the S3 test"
    );
}
