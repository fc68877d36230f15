//! mlops-k8s: see the crate description in Cargo.toml.
