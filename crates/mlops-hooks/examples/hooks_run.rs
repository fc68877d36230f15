//! Runs every default check (or only the comma-separated check ids given as the second argument)
//! on all tracked files of the Git repository given as the first argument (default: the current
//! folder) and prints the time taken and the number of findings per check.
//!
//! `cargo run --release -p mlops-hooks --example hooks_run -- PATH [ID,...]`
#![allow(clippy::print_stdout, reason = "an example prints its result")]

use std::collections::BTreeMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".to_owned());
    let only = match std::env::args().nth(2) {
        Some(ids) => ids
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<mlops_hooks::CheckId>, _>>()?,
        None => Vec::new(),
    };
    let start = std::time::Instant::now();
    let report = mlops_hooks::Runner::new(&dir)
        .selection(mlops_hooks::Selection::AllFiles)
        .only(only)
        .run()?;
    let mut per_check: BTreeMap<String, usize> = BTreeMap::new();
    for f in &report.findings {
        *per_check.entry(f.check.to_string()).or_default() += 1;
    }
    println!(
        "{} files checked in {:?}",
        report.files_checked,
        start.elapsed()
    );
    for (check, n) in per_check {
        println!("{check}: {n}");
    }
    Ok(())
}
