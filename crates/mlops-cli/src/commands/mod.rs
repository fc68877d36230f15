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
    /// Why it would run, one line per reason.
    pub(crate) reasons: Vec<String>,
}

/// Stages out of date in `repo` (empty when there is no `mlops.toml` or no stage).
pub(crate) fn stage_status(repo: &mlops_cas::Repo) -> anyhow::Result<Vec<StageStatus>> {
    let all = mlops_pipeline::stage_status(repo).map_err(|e| {
        let usage = e.is_usage();
        crate::exit::classify(e, usage)
    })?;
    Ok(all
        .into_iter()
        .filter(|s| s.state == mlops_pipeline::State::OutOfDate)
        .map(|s| StageStatus {
            name: s.name,
            reasons: s.reasons.iter().map(ToString::to_string).collect(),
        })
        .collect())
}
