//! `mlops k8s render|run`: a stage as a Kubernetes Job, printed or run, over `mlops-k8s`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::GlobalArgs;
use crate::exit::{self, Outcome};
use crate::output::{Table, print_json};
use mlops_cas::Repo;
use mlops_k8s::{ClusterOptions, JobIdentity, K8sConfig, K8sExecutor, RunOutcome, StageInfo};
use mlops_pipeline::{CancelToken, Pipeline, ReproOptions};

/// `mlops k8s …`
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the stage's Job manifest as YAML (deterministic; no cluster needed; valid for
    /// `kubectl apply -f -`).
    Render(RenderArgs),
    /// Run the stage (and its out-of-date upstream stages) as Jobs, record the runs in mlops.lock.
    Run(RunArgs),
    /// In the pod's init container: fetch the deps by hash from the remote into the working
    /// folder, and install this binary for the main container.
    #[command(hide = true)]
    PodFetch(PodFetchArgs),
    /// In the pod's main container: run the command, then push the outs and report their hashes
    /// in the termination message. Exits with the command's exit code.
    #[command(hide = true)]
    PodRun(PodRunArgs),
}

/// `mlops k8s pod-fetch` arguments.
#[derive(Debug, Args)]
pub(crate) struct PodFetchArgs {
    /// The remote URL.
    #[arg(long)]
    remote: String,
    /// The working folder (the emptyDir mount).
    #[arg(long)]
    root: PathBuf,
    /// Copy this binary here.
    #[arg(long)]
    install: Option<PathBuf>,
    /// `PATH=blake3:HASH` (a directory as `PATH/=blake3:HASH`).
    deps: Vec<String>,
}

/// `mlops k8s pod-run` arguments.
#[derive(Debug, Args)]
pub(crate) struct PodRunArgs {
    /// The remote URL.
    #[arg(long)]
    remote: String,
    /// The working folder (the emptyDir mount).
    #[arg(long)]
    root: PathBuf,
    /// A declared out or metric file, relative to the root (repeat).
    #[arg(long = "out")]
    outs: Vec<PathBuf>,
    /// Where the out report goes.
    #[arg(long, default_value = "/dev/termination-log")]
    report: PathBuf,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// `mlops k8s render` arguments.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// The stage.
    stage: String,
    /// Namespace for the manifest (default: the stage's or `[k8s]` namespace, else `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

/// `mlops k8s run` arguments.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The stage.
    stage: String,
    /// Stream the container's log to stderr while it runs.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Keep a failed Job (and its pods) in the cluster for `kubectl describe`.
    #[arg(long)]
    keep: bool,
    /// Run even if the stage is up to date.
    #[arg(long)]
    force: bool,
    /// The kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: the current context).
    #[arg(long)]
    context: Option<String>,
    /// The namespace (default: the stage's or `[k8s]` namespace, else the context's).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

fn k8s_err(err: mlops_k8s::Error) -> anyhow::Error {
    let usage = err.is_usage();
    exit::classify(err, usage)
}

fn pipeline_err(err: mlops_pipeline::Error) -> anyhow::Error {
    let usage = err.is_usage();
    exit::classify(err, usage)
}

fn cas_err(err: mlops_cas::Error) -> anyhow::Error {
    let usage = err.is_usage();
    exit::classify(err, usage)
}

pub(crate) fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let work = global.work_dir()?;
    match cmd {
        Command::Render(args) => render(&work, &args),
        Command::Run(args) => run_stage(&work, args, global),
        Command::PodFetch(args) => {
            let files = mlops_k8s::pod::fetch_deps(
                &args.root,
                &args.remote,
                &args.deps,
                args.install.as_deref(),
            )
            .map_err(k8s_err)?;
            if !global.quiet {
                eprintln!(
                    "fetched {} deps ({files} files) into {}",
                    args.deps.len(),
                    args.root.display()
                );
            }
            Ok(Outcome::Success)
        }
        Command::PodRun(args) => {
            let code = mlops_k8s::pod::run_and_push(
                &args.root,
                &std::env::current_dir()?,
                &args.remote,
                &args.outs,
                &args.command,
                &args.report,
            )
            .map_err(k8s_err)?;
            if code == 0 {
                Ok(Outcome::Success)
            } else {
                // The container's exit code is the command's: the Job's podFailurePolicy and the
                // recorded exit code depend on it.
                std::process::exit(code)
            }
        }
    }
}

/// The repository, its `mlops.toml` and the validated Kubernetes configuration.
fn load(work: &Path) -> anyhow::Result<(Repo, PathBuf, K8sConfig)> {
    let repo = Repo::discover(work).map_err(cas_err)?;
    let file = repo.root().join(mlops_pipeline::SPEC_FILE);
    if !file.is_file() {
        return Err(exit::usage(anyhow::anyhow!(
            "{}: not found; declare stages with [stages.NAME] tables first",
            file.display()
        )));
    }
    let config = K8sConfig::load(&file).map_err(k8s_err)?;
    Ok((repo, file, config))
}

fn render(work: &Path, args: &RenderArgs) -> anyhow::Result<Outcome> {
    let (repo, file, config) = load(work)?;
    let settings = config.resolve(&args.stage, &file).map_err(k8s_err)?;
    let pipeline = Pipeline::load(repo.root()).map_err(pipeline_err)?;
    let job = pipeline
        .stage_job(&repo, &args.stage)
        .map_err(pipeline_err)?;
    let stage = StageInfo::from(&job);
    let namespace = args
        .namespace
        .clone()
        .or_else(|| settings.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    if let Err(message) = mlops_k8s::values::check_dns_label(&namespace, "namespace") {
        return Err(exit::usage(anyhow::anyhow!("--namespace: {message}")));
    }
    let id =
        JobIdentity::new(&stage, namespace, "").with_git_commit(mlops_k8s::git_commit(repo.root()));
    let yaml =
        mlops_k8s::render_yaml(&mlops_k8s::build_job(&stage, &settings, &id)).map_err(k8s_err)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(yaml.as_bytes())?;
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct RunJson<'a> {
    stage: &'a str,
    succeeded: bool,
    up_to_date: bool,
    jobs: Vec<JobJson<'a>>,
}

#[derive(Serialize)]
struct JobJson<'a> {
    stage: &'a str,
    #[serde(flatten)]
    outcome: &'a RunOutcome,
}

fn run_stage(work: &Path, args: RunArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let (repo, file, config) = load(work)?;
    // Configuration problems (unknown stage, no k8s table, no image, bad quantity) are reported
    // before any cluster is contacted.
    config.resolve(&args.stage, &file).map_err(k8s_err)?;
    if let Some(ns) = &args.namespace {
        mlops_k8s::values::check_dns_label(ns, "namespace")
            .map_err(|m| exit::usage(anyhow::anyhow!("--namespace: {m}")))?;
    }
    let pipeline = Pipeline::load(repo.root()).map_err(pipeline_err)?;
    let options = ClusterOptions::from_env()
        .with_kubeconfig(args.kubeconfig.clone())
        .with_context(args.context.clone())
        .with_namespace(args.namespace.clone());
    let sink: Option<mlops_k8s::LogSink> = (args.follow && !global.quiet).then(|| {
        let sink: mlops_k8s::LogSink = Arc::new(|line: &str| {
            let stderr = std::io::stderr();
            let mut err = stderr.lock();
            let _ = writeln!(err, "{line}");
        });
        sink
    });
    let executor = K8sExecutor::connect(config, &options)
        .map_err(k8s_err)?
        .keep_on_failure(args.keep)
        .follow(sink);
    let cancel = CancelToken::new();
    crate::interrupt::cancel_on_interrupt(cancel.clone(), "interrupted: deleting running Jobs");
    let quiet = global.quiet;
    let events = |event: &mlops_pipeline::Event<'_>| {
        if quiet {
            return;
        }
        if let mlops_pipeline::Event::Started { stage, .. } = event {
            eprintln!("running {stage} as a Kubernetes Job");
        }
    };
    let repro = ReproOptions::new()
        .targets(vec![args.stage.clone()])
        .force(args.force)
        .run_cache(false);
    let report = pipeline
        .repro(&repo, &executor, &repro, &cancel, &events)
        .map_err(pipeline_err)?;
    let outcomes = executor.outcomes();
    let succeeded = report.succeeded();
    if global.json {
        print_json(&RunJson {
            stage: &args.stage,
            succeeded,
            up_to_date: outcomes.is_empty() && succeeded,
            jobs: outcomes
                .iter()
                .map(|(stage, outcome)| JobJson { stage, outcome })
                .collect(),
        })?;
    } else if !quiet {
        if outcomes.is_empty() && succeeded {
            eprintln!(
                "{} is up to date (use --force to run it anyway)",
                args.stage
            );
        }
        let mut table = Table::new([
            "stage",
            "job",
            "result",
            "exit",
            "node",
            "image digest",
            "log",
        ]);
        for (stage, o) in &outcomes {
            let result = if o.succeeded {
                "succeeded".to_owned()
            } else {
                let mut r = format!("failed: {}", o.reason.as_deref().unwrap_or("unknown"));
                if o.kept {
                    r.push_str(" (kept)");
                }
                r
            };
            let digest = o
                .image_id
                .as_deref()
                .and_then(|id| id.rsplit_once('@'))
                .map_or_else(|| "-".to_owned(), |(_, d)| d.chars().take(19).collect());
            table.row([
                stage.clone(),
                format!("{}/{}", o.namespace, o.job),
                result,
                o.exit_code
                    .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                o.node.clone().unwrap_or_else(|| "-".to_owned()),
                digest,
                o.log_path.display().to_string(),
            ]);
        }
        if !table.is_empty() {
            table.print();
        }
        for (stage, o) in outcomes.iter().filter(|(_, o)| !o.succeeded) {
            if let Some(message) = &o.message {
                eprintln!(
                    "{stage}: {}: {message}",
                    o.reason.as_deref().unwrap_or("failed")
                );
            }
        }
        for failure in &report.failures {
            eprintln!("stage {} failed: {}", failure.stage, failure.message);
        }
    }
    Ok(Outcome::from_passed(succeeded))
}
