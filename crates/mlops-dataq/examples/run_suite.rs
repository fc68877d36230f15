//! Runs the suites of a suite file and prints each report as JSON: the library without the CLI,
//! e.g. `cargo run --release -p mlops-dataq --example run_suite -- suite.toml`.
#![allow(clippy::print_stdout, reason = "an example program prints its result")]

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: run_suite SUITE.toml")?
        .into();
    for suite in mlops_dataq::load_suite_file(&path)? {
        let report = mlops_dataq::run_suite(&suite, &mlops_dataq::CheckOptions::default())?;
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
