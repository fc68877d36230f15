//! mlops-hooks: see the crate description in Cargo.toml.
