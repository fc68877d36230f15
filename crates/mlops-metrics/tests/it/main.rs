//! Integration tests of mlops-metrics' public API.

mod gates;
mod golden;
mod props;
mod tables;
