//! mlops-metrics: see the crate description in Cargo.toml.
