//! `mlops hooks run|install|list`: guardrails before a mistake becomes history, over
//! `mlops-hooks`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use mlops_hooks::{CheckId, HooksConfig, RULES, Report, Runner, Selection, config_root};
use serde::Serialize;

use crate::GlobalArgs;
use crate::exit::{self, Outcome};
use crate::output::{Table, print_json};

/// Guardrail commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the checks: on staged files (the default), all tracked files, a ref range, or FILEs.
    Run(RunArgs),
    /// Install the Git pre-commit hook (an existing hook is kept and run first).
    Install {
        /// Replace an existing pre-commit hook instead of chaining it.
        #[arg(long)]
        force: bool,
    },
    /// List the checks, whether they are on here, and the secret rules.
    List,
}

/// Arguments of `mlops hooks run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Every tracked file, read from the working tree.
    #[arg(long, conflicts_with_all = ["staged", "from_ref", "files"])]
    all_files: bool,
    /// Staged files, read from the index (the default).
    #[arg(long, conflicts_with_all = ["from_ref", "files"])]
    staged: bool,
    /// Files changed since the merge base of REF and --to-ref, as committed in --to-ref.
    #[arg(
        long,
        value_name = "REF",
        requires = "to_ref",
        conflicts_with = "files"
    )]
    from_ref: Option<String>,
    /// The tip of the range (with --from-ref).
    #[arg(long, value_name = "REF", requires = "from_ref")]
    to_ref: Option<String>,
    /// Repair whitespace, end of file, line endings and notebook outputs in the working tree.
    #[arg(long)]
    fix: bool,
    /// Only these checks (comma-separated ids, see `mlops hooks list`).
    #[arg(long, value_name = "ID,...")]
    only: Option<String>,
    /// Not these checks (comma-separated ids).
    #[arg(long, value_name = "ID,...")]
    skip: Option<String>,
    /// Accept every secret found now: add it to the baseline file instead of failing.
    #[arg(long)]
    update_baseline: bool,
    /// Check these files (as pre-commit passes them); works outside Git too.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Runs a `mlops hooks` command.
pub(crate) fn run(cmd: Command, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Run(args) => run_checks(args, global),
        Command::Install { force } => install(force, global),
        Command::List => list(global),
    }
}

fn lib_err(err: mlops_hooks::Error) -> anyhow::Error {
    let usage = err.is_usage();
    exit::classify(err, usage)
}

#[derive(Serialize)]
struct RunOutput<'a> {
    passed: bool,
    #[serde(flatten)]
    report: &'a Report,
}

fn run_checks(args: RunArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let dir = global.work_dir()?;
    let selection = if args.all_files {
        Selection::AllFiles
    } else if let (Some(from), Some(to)) = (args.from_ref, args.to_ref) {
        Selection::Refs { from, to }
    } else if !args.files.is_empty() {
        Selection::Files(args.files)
    } else {
        Selection::Staged
    };
    let parse = |list: Option<String>| -> anyhow::Result<Vec<CheckId>> {
        list.map_or(Ok(Vec::new()), |l| CheckId::parse_list(&l).map_err(lib_err))
    };
    let report = Runner::new(&dir)
        .selection(selection)
        .fix(args.fix)
        .only(parse(args.only)?)
        .skip(parse(args.skip)?)
        .update_baseline(args.update_baseline)
        .run()
        .map_err(lib_err)?;
    let passed = report.passed();
    if global.json {
        print_json(&RunOutput {
            passed,
            report: &report,
        })?;
    } else {
        print!("{}", render(&report, global.quiet, global.verbose > 0));
    }
    Ok(Outcome::from_passed(passed))
}

/// The report for people: findings grouped by check, then one summary line.
fn render(report: &Report, quiet: bool, verbose: bool) -> String {
    let mut out = String::new();
    let mut current = None;
    for f in &report.findings {
        if current != Some(f.check) {
            current = Some(f.check);
            let n = report.findings_of(f.check).count();
            out.push_str(&format!("{} ({n})\n", f.check));
        }
        let state = if f.fixed { " [fixed]" } else { "" };
        out.push_str(&format!("  {}: {}{state}\n", f.location(), f.message));
        if !f.fixed {
            out.push_str(&format!("      fix: {}\n", f.fix));
        }
    }
    if quiet {
        return out;
    }
    for s in report.skipped.iter().filter(|_| verbose) {
        out.push_str(&format!("skipped {}: {}\n", s.check, s.reason));
    }
    let files = report.files_checked;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if report.findings.is_empty() {
        out.push_str(&format!(
            "hooks: passed ({} checked)\n",
            plural(files, "file")
        ));
    } else {
        let paths: std::collections::BTreeSet<&str> =
            report.findings.iter().map(|f| f.path.as_str()).collect();
        let fixed = report.findings.iter().filter(|f| f.fixed).count();
        let verdict = if report.passed() {
            "passed after fixes"
        } else {
            "failed"
        };
        out.push_str(&format!(
            "hooks: {verdict}: {} in {} ({} fixed; {} checked)\n",
            plural(report.findings.len(), "finding"),
            plural(paths.len(), "file"),
            fixed,
            plural(files, "file"),
        ));
    }
    if report.baselined > 0 {
        out.push_str(&format!(
            "({} accepted by the secrets baseline)\n",
            report.baselined
        ));
    }
    out
}

fn install(force: bool, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let dir = global.work_dir()?;
    let exe = std::env::current_exe().map_err(exit::runtime)?;
    let done = mlops_hooks::install::install(&dir, &exe, force).map_err(lib_err)?;
    if global.json {
        print_json(&done)?;
    } else if !global.quiet {
        let verb = if done.updated { "updated" } else { "installed" };
        println!("{verb} {}", done.hook.display());
        if let Some(legacy) = &done.chained {
            println!(
                "the previous hook was kept as {} and runs first",
                legacy.display()
            );
        }
        if done.replaced {
            println!("the previous hook was replaced (--force)");
        }
    }
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct CheckRow {
    id: CheckId,
    enabled: bool,
    fixable: bool,
    description: &'static str,
}

#[derive(Serialize)]
struct RuleRow {
    id: &'static str,
    description: &'static str,
    enabled: bool,
}

#[derive(Serialize)]
struct ListOutput {
    checks: Vec<CheckRow>,
    secret_rules: Vec<RuleRow>,
}

fn list(global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let dir = global.work_dir()?;
    let root = config_root(&dir).map_err(lib_err)?;
    let config = HooksConfig::load(&root).map_err(lib_err)?;
    let checks: Vec<CheckRow> = CheckId::ALL
        .into_iter()
        .map(|c| CheckRow {
            id: c,
            enabled: config.enabled(c),
            fixable: c.fixable(),
            description: c.description(),
        })
        .collect();
    let secret_rules: Vec<RuleRow> = RULES
        .iter()
        .map(|r| RuleRow {
            id: r.id,
            description: r.description,
            enabled: !config.secrets.disable_rules.iter().any(|d| d == r.id),
        })
        .collect();
    if global.json {
        print_json(&ListOutput {
            checks,
            secret_rules,
        })?;
        return Ok(Outcome::Success);
    }
    let on = |b: bool| if b { "on" } else { "off" };
    let mut t = Table::new(["check", "state", "--fix", "finds"]);
    for c in &checks {
        t.row([
            c.id.to_string(),
            on(c.enabled).to_owned(),
            if c.fixable { "yes" } else { "" }.to_owned(),
            c.description.to_owned(),
        ]);
    }
    t.print();
    println!();
    let mut t = Table::new(["secret rule", "state", "finds"]);
    for r in &secret_rules {
        t.row([
            r.id.to_owned(),
            on(r.enabled).to_owned(),
            r.description.to_owned(),
        ]);
    }
    t.print();
    Ok(Outcome::Success)
}
