//! mlops-dataq: see the crate description in Cargo.toml.
