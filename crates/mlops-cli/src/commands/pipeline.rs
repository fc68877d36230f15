//! Pipeline commands over `mlops-pipeline`: repro, dag, metrics show/diff, params diff, stage add.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::GlobalArgs;
use crate::exit::{self, Outcome};
use crate::output::{Table, print_json};
use mlops_cas::Repo;
use mlops_pipeline::edit::NewStage;
use mlops_pipeline::metrics::ValueChange;
use mlops_pipeline::render::Format;
use mlops_pipeline::{Action, CancelToken, Event, Executor, LocalExecutor, Pipeline, ReproOptions};

/// Pipeline commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the stages that are out of date, in dependency order, independent ones in parallel.
    Repro(ReproArgs),
    /// Draw the pipeline.
    Dag {
        /// Output format.
        #[arg(long, value_enum, default_value_t = DagFormat::Ascii)]
        format: DagFormat,
    },
    /// Metric values from the stages' metric files.
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// Parameter values the stages read.
    #[command(subcommand)]
    Params(ParamsCommand),
    /// Edit the stages in mlops.toml.
    #[command(subcommand)]
    Stage(StageCommand),
}

/// `mlops repro` arguments.
#[derive(Debug, Args)]
pub(crate) struct ReproArgs {
    /// Stages to bring up to date (with what they depend on); all when omitted.
    stages: Vec<String>,
    /// Stages run at once (default: the number of cores).
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Only list what would run and why.
    #[arg(long)]
    dry_run: bool,
    /// Run the selected stages even if nothing changed.
    #[arg(long)]
    force: bool,
    /// After a failure, keep running stages that do not depend on it.
    #[arg(long)]
    keep_going: bool,
    /// Always run; never restore outputs from the run-cache.
    #[arg(long)]
    no_run_cache: bool,
    /// Where commands run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    executor: ExecutorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExecutorKind {
    /// `sh -c` on this machine.
    Local,
    /// Kubernetes Jobs (stages need a [stages.NAME.k8s] table).
    K8s,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DagFormat {
    Ascii,
    Dot,
    Mermaid,
    Json,
}

/// `mlops metrics …`
#[derive(Debug, Subcommand)]
pub(crate) enum MetricsCommand {
    /// Metric values in the workspace.
    Show,
    /// Metric values against a Git revision.
    Diff(DiffArgs),
}

/// `mlops params …`
#[derive(Debug, Subcommand)]
pub(crate) enum ParamsCommand {
    /// Parameter values against a Git revision.
    Diff(DiffArgs),
}

/// Arguments of the diff commands.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The Git revision to compare with.
    #[arg(default_value = "HEAD")]
    rev: String,
    /// Also list values that did not change.
    #[arg(long)]
    all: bool,
}

/// `mlops stage …`
#[derive(Debug, Subcommand)]
pub(crate) enum StageCommand {
    /// Add a stage to mlops.toml (comments and order kept).
    Add {
        /// The stage name.
        name: String,
        /// The shell command.
        #[arg(long)]
        cmd: String,
        /// A dependency (repeat).
        #[arg(short = 'd', long = "dep")]
        deps: Vec<String>,
        /// An out (repeat).
        #[arg(short = 'o', long = "out")]
        outs: Vec<String>,
        /// A param, FILE:KEY (repeat).
        #[arg(short = 'p', long = "param")]
        params: Vec<String>,
        /// A metrics file (repeat).
        #[arg(short = 'm', long = "metric")]
        metrics: Vec<String>,
        /// The folder the command runs in.
        #[arg(long)]
        wdir: Option<String>,
        /// Replace a stage of the same name.
        #[arg(long)]
        force: bool,
    },
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
    let repo = Repo::discover(&work).map_err(cas_err)?;
    let root = repo.root().to_owned();
    match cmd {
        Command::Repro(args) => repro(&repo, args, global),
        Command::Dag { format } => {
            let pipeline = Pipeline::load(&root).map_err(pipeline_err)?;
            let format = match format {
                DagFormat::Ascii if global.json => Format::Json,
                DagFormat::Ascii => Format::Ascii,
                DagFormat::Dot => Format::Dot,
                DagFormat::Mermaid => Format::Mermaid,
                DagFormat::Json => Format::Json,
            };
            print!("{}", mlops_pipeline::render::render(&pipeline, format));
            Ok(Outcome::Success)
        }
        Command::Metrics(MetricsCommand::Show) => {
            let pipeline = Pipeline::load(&root).map_err(pipeline_err)?;
            let (values, missing) =
                mlops_pipeline::metrics::show(pipeline.spec()).map_err(pipeline_err)?;
            if global.json {
                print_json(&serde_json::json!({ "metrics": values, "missing": missing }))?;
            } else {
                let mut table = Table::new(["file", "key", "value"]);
                for v in &values {
                    table.row([v.file.clone(), v.key.clone(), scalar(&v.value)]);
                }
                if !table.is_empty() {
                    table.print();
                }
                for m in &missing {
                    eprintln!("{m}: missing (run `mlops repro` to produce it)");
                }
            }
            Ok(Outcome::Success)
        }
        Command::Metrics(MetricsCommand::Diff(d)) => {
            let pipeline = Pipeline::load(&root).map_err(pipeline_err)?;
            let changes = mlops_pipeline::metrics::diff(pipeline.spec(), &d.rev, d.all)
                .map_err(pipeline_err)?;
            print_changes(&changes, &d.rev, global)
        }
        Command::Params(ParamsCommand::Diff(d)) => {
            let pipeline = Pipeline::load(&root).map_err(pipeline_err)?;
            let changes = mlops_pipeline::metrics::params_diff(pipeline.spec(), &d.rev, d.all)
                .map_err(pipeline_err)?;
            print_changes(&changes, &d.rev, global)
        }
        Command::Stage(StageCommand::Add {
            name,
            cmd,
            deps,
            outs,
            params,
            metrics,
            wdir,
            force,
        }) => {
            let _lock = repo.lock().map_err(cas_err)?;
            let mut stage = NewStage::new(name.clone(), cmd);
            stage.deps = deps;
            stage.outs = outs;
            stage.params = params;
            stage.metrics = metrics;
            stage.wdir = wdir;
            mlops_pipeline::edit::add_stage(&root, &stage, force).map_err(pipeline_err)?;
            if global.json {
                print_json(&serde_json::json!({ "added": name }))?;
            } else if !global.quiet {
                println!("added stage {name} to mlops.toml");
            }
            Ok(Outcome::Success)
        }
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_changes(
    changes: &[ValueChange],
    rev: &str,
    global: &GlobalArgs,
) -> anyhow::Result<Outcome> {
    if global.json {
        print_json(&serde_json::json!({ "rev": rev, "changes": changes }))?;
        return Ok(Outcome::Success);
    }
    if changes.is_empty() {
        if !global.quiet {
            eprintln!("no changes against {rev}");
        }
        return Ok(Outcome::Success);
    }
    let mut table = Table::new(["file", "key", rev, "workspace", "change"]);
    for c in changes {
        let show =
            |v: &Option<serde_json::Value>| v.as_ref().map_or_else(|| "-".to_owned(), scalar);
        let change = c
            .change
            .map_or_else(|| "-".to_owned(), |x| format!("{x:+}"));
        table.row([
            c.file.clone(),
            c.key.clone(),
            show(&c.old),
            show(&c.new),
            change,
        ]);
    }
    table.print();
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct ReproJson<'a> {
    dry_run: bool,
    succeeded: bool,
    stages: &'a [mlops_pipeline::StageReport],
    failures: &'a [mlops_pipeline::StageFailure],
}

fn repro(repo: &Repo, args: ReproArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let root = repo.root().to_owned();
    let pipeline = Pipeline::load(&root).map_err(pipeline_err)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(repo.lock().map_err(cas_err)?)
    };
    let mut options = ReproOptions::new()
        .targets(args.stages)
        .dry_run(args.dry_run)
        .force(args.force)
        .keep_going(args.keep_going)
        .run_cache(!args.no_run_cache);
    if let Some(j) = args.jobs {
        if j == 0 {
            return Err(exit::usage(anyhow::anyhow!("-j must be at least 1")));
        }
        options = options.jobs(j);
    }
    let quiet = global.quiet;
    let mut local = LocalExecutor::new();
    if !quiet {
        local = local.with_output(Arc::new(|line: &str| {
            let stderr = std::io::stderr();
            let mut err = stderr.lock();
            let _ = writeln!(err, "{line}");
        }));
    }
    let executor: Box<dyn Executor> = match args.executor {
        ExecutorKind::Local => Box::new(local),
        ExecutorKind::K8s => Box::new(k8s_executor(&root, local, quiet)?),
    };
    let cancel = CancelToken::new();
    if !args.dry_run {
        crate::interrupt::cancel_on_interrupt(
            cancel.clone(),
            "interrupted: stopping running stages",
        );
    }
    let events = |event: &Event<'_>| {
        if quiet {
            return;
        }
        match event {
            Event::Started { stage, reasons } => {
                let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                eprintln!("running {stage}: {}", why.join("; "));
            }
            Event::Finished(r) if r.action == Action::Restored => {
                eprintln!("restored {} from the run-cache", r.name);
            }
            Event::Failed(f) => {
                let mut msg = format!(
                    "stage {} failed: {}\n  log: {}",
                    f.stage,
                    f.message,
                    f.log.display()
                );
                for line in &f.log_tail {
                    msg.push_str(&format!("\n  | {line}"));
                }
                eprintln!("{msg}");
            }
            _ => {}
        }
    };
    let report = pipeline
        .repro(repo, executor.as_ref(), &options, &cancel, &events)
        .map_err(pipeline_err)?;
    if global.json {
        print_json(&ReproJson {
            dry_run: args.dry_run,
            succeeded: report.succeeded(),
            stages: &report.stages,
            failures: &report.failures,
        })?;
    } else if args.dry_run {
        let mut table = Table::new(["stage", "state", "why"]);
        for s in &report.stages {
            let state = match s.action {
                Action::WouldRun => "would run",
                Action::Frozen => "frozen",
                _ => "up to date",
            };
            let why: Vec<String> = s.reasons.iter().map(ToString::to_string).collect();
            table.row([s.name.clone(), state.to_owned(), why.join("; ")]);
        }
        if !table.is_empty() {
            table.print();
        }
    } else if !quiet {
        let count = |a: Action| report.stages.iter().filter(|s| s.action == a).count();
        let mut parts = vec![format!("{} ran", count(Action::Ran))];
        for (a, label) in [
            (Action::Restored, "restored from the run-cache"),
            (Action::UpToDate, "up to date"),
            (Action::Frozen, "frozen"),
            (Action::Failed, "failed"),
            (Action::NotRun, "not run"),
        ] {
            if count(a) > 0 {
                parts.push(format!("{} {label}", count(a)));
            }
        }
        eprintln!("{}", parts.join(", "));
    }
    Ok(Outcome::from_passed(report.succeeded()))
}

fn k8s_executor(
    root: &Path,
    local: LocalExecutor,
    quiet: bool,
) -> anyhow::Result<mlops_k8s::K8sExecutor> {
    let config =
        mlops_k8s::K8sConfig::load(&root.join(mlops_pipeline::SPEC_FILE)).map_err(|e| {
            let usage = e.is_usage();
            exit::classify(e, usage)
        })?;
    let sink: Option<mlops_k8s::LogSink> = if quiet {
        None
    } else {
        Some(Arc::new(|line: &str| eprintln!("{line}")))
    };
    let exec = mlops_k8s::K8sExecutor::connect(config, &mlops_k8s::ClusterOptions::from_env())
        .map_err(|e| {
            let usage = e.is_usage();
            exit::classify(e, usage)
        })?
        .with_fallback(Box::new(local))
        .follow(sink);
    Ok(exec)
}
