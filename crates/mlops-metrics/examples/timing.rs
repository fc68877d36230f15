//! Times the metric computation alone, excluding the file read: the timing mode behind
//! `cargo xtask bench metrics` (built in release there).
//!
//! usage: `timing DIR GATE` — reads `DIR/mlops.toml`, loads the gate's predictions (not timed),
//! then times `evaluate` and the ROC AUC kernel alone, and prints JSON:
//! `{"read_s": …, "compute_s": …, "roc_auc_s": …, "report": {…}}`.
#![allow(clippy::print_stdout, reason = "an example prints its result")]

use std::path::PathBuf;
use std::time::Instant;

use mlops_metrics::{Predictions, Target, evaluate, load_gates};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: timing DIR GATE")?);
    let name = args.next().ok_or("usage: timing DIR GATE")?;
    let gates = load_gates(&dir.join("mlops.toml"))?;
    let gate = gates
        .iter()
        .find(|g| g.name == name)
        .ok_or("no such gate")?;
    let start = Instant::now();
    let table = Predictions::read(&dir.join(&gate.predictions), &gate.columns, gate.task)?;
    let read = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let report = evaluate(&table, &gate.options)?;
    let compute = start.elapsed().as_secs_f64();

    let Target::Classification {
        classes, y_true, ..
    } = &table.target
    else {
        return Err("the timing mode needs a classification table".into());
    };
    let pos = gate.options.pos_label.as_deref().unwrap_or("1");
    let code = classes.iter().position(|c| c.to_string() == pos);
    let is_pos: Vec<bool> = y_true.iter().map(|&c| Some(c as usize) == code).collect();
    let score = table
        .score
        .as_deref()
        .ok_or("the gate has no score column")?;
    let start = Instant::now();
    let auc = mlops_metrics::classification::roc_auc(&is_pos, score)?;
    let roc_auc = start.elapsed().as_secs_f64();
    let out = serde_json::json!({ "read_s": read, "compute_s": compute, "roc_auc_s": roc_auc, "roc_auc": auc, "report": report });
    println!("{out}");
    Ok(())
}
