//! Data versioning commands over `mlops-cas`: init, add, status, checkout, push, fetch, pull,
//! gc, remote.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::GlobalArgs;
use crate::exit::{self, Outcome};
use crate::output::{Table, print_json};
use crate::progress::Bar;
use mlops_cas::{Change, InitOptions, Repo, TransferOptions, TransferReport};

/// Data versioning commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create .mlops/ (config, ignore rules) here.
    Init {
        /// Allow a folder that is not inside a Git work tree.
        #[arg(long)]
        no_git: bool,
    },
    /// Track files or folders: hash, cache, write pointers, ignore payloads.
    Add {
        /// Files or folders to track.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// What differs: workspace vs pointers, objects missing from cache or remote, stages out of date.
    Status {
        /// Also check which objects the remote lacks.
        #[arg(long)]
        remote: bool,
        /// The remote to compare with (default: the default remote).
        #[arg(short = 'r', long = "remote-name", value_name = "NAME")]
        remote_name: Option<String>,
        /// Concurrent remote requests.
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
    },
    /// Put tracked payloads in the workspace from the cache.
    Checkout {
        /// Only these tracked paths (or folders containing them).
        paths: Vec<PathBuf>,
        /// Overwrite workspace changes that are not in the cache.
        #[arg(long)]
        force: bool,
    },
    /// Upload objects the remote lacks.
    Push(TransferArgs),
    /// Download objects the cache lacks.
    Fetch(TransferArgs),
    /// Fetch, then checkout.
    Pull {
        #[command(flatten)]
        transfer: TransferArgs,
        /// Overwrite workspace changes that are not in the cache.
        #[arg(long)]
        force: bool,
    },
    /// Drop objects that no pointer or lock file references (dry run unless --force).
    Gc {
        /// Collect in the remote instead of the local cache.
        #[arg(long)]
        remote: bool,
        /// The remote (default: the default remote).
        #[arg(short = 'r', long = "remote-name", value_name = "NAME")]
        remote_name: Option<String>,
        /// Really delete.
        #[arg(long)]
        force: bool,
    },
    /// Manage remotes.
    #[command(subcommand)]
    Remote(RemoteCommand),
}

/// Arguments shared by push, fetch and pull.
#[derive(Debug, Args)]
pub(crate) struct TransferArgs {
    /// Only these tracked paths (or folders containing them).
    paths: Vec<PathBuf>,
    /// The remote (default: the default remote).
    #[arg(short = 'r', long = "remote", value_name = "NAME")]
    remote: Option<String>,
    /// Objects in flight at once (default: 4 per core).
    #[arg(short = 'j', long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

/// `mlops remote …`
#[derive(Debug, Subcommand)]
pub(crate) enum RemoteCommand {
    /// Add a remote: a folder, file://, s3://, gs://, az:// or http(s):// URL.
    Add {
        /// Its name.
        name: String,
        /// Where it is.
        url: String,
        /// Make it the default remote.
        #[arg(long)]
        default: bool,
    },
    /// List remotes.
    List,
    /// Remove a remote.
    Remove {
        /// Its name.
        name: String,
    },
    /// Set the default remote.
    Default {
        /// Its name.
        name: String,
    },
}

fn cas(err: mlops_cas::Error) -> anyhow::Error {
    let usage = err.is_usage();
    exit::classify(err, usage)
}

/// Paths as the user typed them, made absolute against the working folder.
fn absolute(work: &Path, paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                work.join(p)
            }
        })
        .collect()
}

pub(crate) fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let work = global.work_dir()?;
    if let Command::Init { no_git } = cmd {
        let repo = Repo::init(&work, &InitOptions::new().no_git(no_git)).map_err(cas)?;
        if global.json {
            print_json(&serde_json::json!({ "root": repo.root() }))?;
        } else if !global.quiet {
            println!("initialised mlops in {}", repo.root().display());
        }
        return Ok(Outcome::Success);
    }
    let repo = Repo::discover(&work).map_err(cas)?;
    match cmd {
        Command::Init { .. } => Ok(Outcome::Success),
        Command::Add { paths } => add(&repo, &work, &paths, global),
        Command::Status {
            remote,
            remote_name,
            jobs,
        } => status(&repo, remote, remote_name.as_deref(), jobs, global),
        Command::Checkout { paths, force } => {
            let _lock = repo.lock().map_err(cas)?;
            let out = repo
                .checkout(&absolute(&work, &paths), force)
                .map_err(cas)?;
            if global.json {
                print_json(&serde_json::json!({ "checked_out": out }))?;
            } else if !global.quiet {
                let files: u64 = out.iter().map(|c| c.files).sum();
                println!("checked out {} path(s), {files} file(s) written", out.len());
            }
            Ok(Outcome::Success)
        }
        Command::Push(args) => transfer(&repo, &work, &args, Direction::Push, false, global),
        Command::Fetch(args) => transfer(&repo, &work, &args, Direction::Fetch, false, global),
        Command::Pull {
            transfer: args,
            force,
        } => transfer(&repo, &work, &args, Direction::Pull, force, global),
        Command::Gc {
            remote,
            remote_name,
            force,
        } => gc(&repo, remote, remote_name.as_deref(), force, global),
        Command::Remote(rc) => remote_cmd(&repo, rc, global),
    }
}

fn add(
    repo: &Repo,
    work: &Path,
    paths: &[PathBuf],
    global: &GlobalArgs,
) -> anyhow::Result<Outcome> {
    let _lock = repo.lock().map_err(cas)?;
    let spinner = Bar::spinner(global.progress_allowed(), "hashing");
    let added = repo.add(&absolute(work, paths));
    spinner.finish();
    let added = added.map_err(cas)?;
    if global.json {
        print_json(&serde_json::json!({ "added": added }))?;
    } else if !global.quiet {
        let mut t = Table::new(["path", "hash", "size", "files", "new objects"]);
        for a in &added {
            t.row([
                a.path.display().to_string(),
                a.object.hash.short(),
                a.object.size.to_string(),
                a.object
                    .files
                    .map_or_else(|| "-".to_owned(), |f| f.to_string()),
                a.new_objects.to_string(),
            ]);
        }
        t.print();
        let mut files: Vec<String> = Vec::new();
        for a in &added {
            files.push(a.pointer.display().to_string());
            let ignore = a
                .pointer
                .parent()
                .unwrap_or(Path::new(""))
                .join(".gitignore");
            let ignore = ignore.display().to_string();
            if !files.contains(&ignore) {
                files.push(ignore);
            }
        }
        println!(
            "\nto track the changes with git, run:\n    git add {}",
            files.join(" ")
        );
    }
    Ok(Outcome::Success)
}

/// One tracked path's differences, as `status --json` prints them.
#[derive(Debug, Serialize)]
struct StatusEntry {
    path: PathBuf,
    pointer: PathBuf,
    states: Vec<Change>,
}

fn status(
    repo: &Repo,
    remote: bool,
    remote_name: Option<&str>,
    jobs: Option<usize>,
    global: &GlobalArgs,
) -> anyhow::Result<Outcome> {
    let spinner = Bar::spinner(global.progress_allowed(), "checking");
    let result = if remote || remote_name.is_some() {
        repo.open_remote(remote_name).and_then(|r| {
            repo.status_with_remote(&r, jobs.unwrap_or_else(mlops_cas::transfer::default_jobs))
        })
    } else {
        repo.status()
    };
    spinner.finish();
    let changes: Vec<StatusEntry> = result
        .map_err(cas)?
        .into_iter()
        .map(|s| StatusEntry {
            path: s.path,
            pointer: s.pointer,
            states: s.changes,
        })
        .collect();
    let stages = crate::commands::stage_status(repo)?;
    if global.json {
        print_json(&serde_json::json!({ "changes": changes, "stages": stages }))?;
        return Ok(Outcome::Success);
    }
    if changes.is_empty() && stages.is_empty() {
        if !global.quiet {
            println!("everything is in sync");
        }
        return Ok(Outcome::Success);
    }
    if !changes.is_empty() {
        let mut t = Table::new(["path", "state"]);
        for c in &changes {
            let states: Vec<&str> = c.states.iter().map(|s| change_name(*s)).collect();
            t.row([c.path.display().to_string(), states.join(", ")]);
        }
        t.print();
    }
    if !stages.is_empty() {
        if !changes.is_empty() {
            println!();
        }
        let mut t = Table::new(["stage", "out of date because"]);
        for s in &stages {
            t.row([s.name.clone(), s.reasons.join("; ")]);
        }
        t.print();
    }
    Ok(Outcome::Success)
}

fn change_name(c: Change) -> &'static str {
    match c {
        Change::Modified => "modified",
        Change::Missing => "missing",
        Change::NotInCache => "not in cache",
        Change::Corrupt => "corrupt in cache",
        Change::NotInRemote => "not in remote",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Push,
    Fetch,
    Pull,
}

fn transfer(
    repo: &Repo,
    work: &Path,
    args: &TransferArgs,
    dir: Direction,
    force: bool,
    global: &GlobalArgs,
) -> anyhow::Result<Outcome> {
    let _lock = repo.lock().map_err(cas)?;
    let remote = repo.open_remote(args.remote.as_deref()).map_err(cas)?;
    let label = match dir {
        Direction::Push => "pushing",
        Direction::Fetch | Direction::Pull => "fetching",
    };
    let bar = Bar::transfer(global.progress_allowed(), label);
    let feed = bar.clone();
    let mut options =
        TransferOptions::default().progress(std::sync::Arc::new(move |p: &mlops_cas::Progress| {
            feed.update(p)
        }));
    if let Some(j) = args.jobs {
        options = options.jobs(usize::from(j));
    }
    let paths = absolute(work, &args.paths);
    let result: mlops_cas::Result<(TransferReport, Option<Vec<mlops_cas::CheckedOut>>)> = match dir
    {
        Direction::Push => repo.push(&paths, &remote, &options).map(|r| (r, None)),
        Direction::Fetch => repo.fetch(&paths, &remote, &options).map(|r| (r, None)),
        Direction::Pull => repo
            .pull(&paths, &remote, &options, force)
            .map(|(r, c)| (r, Some(c))),
    };
    bar.finish();
    let (report, checked_out) = result.map_err(cas)?;
    if global.json {
        print_json(
            &serde_json::json!({ "remote": remote.name(), "transfer": report, "checked_out": checked_out }),
        )?;
    } else if !global.quiet {
        let verb = if dir == Direction::Push {
            "pushed"
        } else {
            "fetched"
        };
        println!(
            "{verb} {} object(s), {} byte(s); {} already there",
            report.transferred, report.bytes, report.already_present
        );
        if let Some(c) = checked_out {
            let files: u64 = c.iter().map(|c| c.files).sum();
            println!("checked out {} path(s), {files} file(s) written", c.len());
        }
    }
    Ok(Outcome::Success)
}

fn gc(
    repo: &Repo,
    remote: bool,
    remote_name: Option<&str>,
    force: bool,
    global: &GlobalArgs,
) -> anyhow::Result<Outcome> {
    let _lock = repo.lock().map_err(cas)?;
    let report = if remote || remote_name.is_some() {
        let r = repo.open_remote(remote_name).map_err(cas)?;
        repo.gc_remote(&r, force, mlops_cas::transfer::default_jobs())
            .map_err(cas)?
    } else {
        repo.gc(force).map_err(cas)?
    };
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        let verb = if force { "removed" } else { "would remove" };
        println!(
            "{verb} {} unreferenced object(s) ({} bytes); kept {}",
            report.unreferenced, report.unreferenced_bytes, report.kept
        );
        if report.stale_hash_entries > 0 {
            let verb = if force { "dropped" } else { "would drop" };
            println!(
                "{verb} {} hash-cache entr{} of files gone or changed",
                report.stale_hash_entries,
                if report.stale_hash_entries == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
        }
        if !force && (report.unreferenced > 0 || report.stale_hash_entries > 0) {
            println!("dry run: use --force to delete");
        }
    }
    Ok(Outcome::Success)
}

fn remote_cmd(repo: &Repo, cmd: RemoteCommand, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let root = repo.root();
    match cmd {
        RemoteCommand::List => {
            let config = repo.config();
            if global.json {
                let list: Vec<_> = config
                    .remotes
                    .iter()
                    .map(|(n, r)| serde_json::json!({ "name": n, "url": r.url, "default": config.default_remote.as_deref() == Some(n) }))
                    .collect();
                print_json(&serde_json::json!({ "remotes": list }))?;
            } else {
                let mut t = Table::new(["name", "url", "default"]);
                for (n, r) in &config.remotes {
                    t.row([
                        n.clone(),
                        r.url.clone(),
                        if config.default_remote.as_deref() == Some(n) {
                            "*".into()
                        } else {
                            String::new()
                        },
                    ]);
                }
                if t.is_empty() {
                    println!("no remotes; add one with `mlops remote add NAME URL`");
                } else {
                    t.print();
                }
            }
            return Ok(Outcome::Success);
        }
        RemoteCommand::Add { name, url, default } => {
            validate_remote_name(&name)?;
            let _lock = repo.lock().map_err(cas)?;
            // Check the URL parses and its backend is available before saving it.
            let probe = mlops_cas::RemoteConfig {
                url: url.clone(),
                options: Default::default(),
            };
            if !url.contains("://") || url.starts_with("file://") {
                // Folder remotes are created on first use, not now.
            } else {
                mlops_cas::Remote::open(&name, &probe, root).map_err(cas)?;
            }
            let mut ed = mlops_cas::ConfigEditor::open(root).map_err(cas)?;
            ed.set_remote(&name, &url);
            if default {
                ed.set_default(&name);
            }
            ed.save().map_err(cas)?;
        }
        RemoteCommand::Remove { name } => {
            let _lock = repo.lock().map_err(cas)?;
            let mut ed = mlops_cas::ConfigEditor::open(root).map_err(cas)?;
            if !ed.remove_remote(&name) {
                return Err(cas(mlops_cas::Error::UnknownRemote {
                    name,
                    known: repo.config().remotes.keys().cloned().collect(),
                }));
            }
            ed.save().map_err(cas)?;
        }
        RemoteCommand::Default { name } => {
            let _lock = repo.lock().map_err(cas)?;
            if !repo.config().remotes.contains_key(&name) {
                return Err(cas(mlops_cas::Error::UnknownRemote {
                    name,
                    known: repo.config().remotes.keys().cloned().collect(),
                }));
            }
            let mut ed = mlops_cas::ConfigEditor::open(root).map_err(cas)?;
            ed.set_default(&name);
            ed.save().map_err(cas)?;
        }
    }
    // Re-load to prove the edited file is valid.
    mlops_cas::Config::load(root).map_err(cas)?;
    Ok(Outcome::Success)
}

fn validate_remote_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(exit::usage(anyhow::anyhow!(
            "remote name `{name}` must be letters, digits, `-` or `_`"
        )))
    }
}
