//! Integration tests of mlops-metrics' public API.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod decode;
mod gates;
mod golden;
mod props;
mod tables;
