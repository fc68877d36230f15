//! Gates from mlops.toml.
