//! Reading Parquet and CSV tables, baselines.
