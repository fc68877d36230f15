//! `cargo xtask demo`: the seed lab's workflow, end to end, in a temporary folder, on built-in
//! defaults and a local-folder remote. Each step prints the command it runs and its output, and
//! the demo fails if any step's exit code is not the expected one.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util::{build_mlops_debug, describe};

/// One demo step: what it shows, the command, and the exit code it must end with.
struct Step<'a> {
    title: &'a str,
    args: Vec<String>,
    expect: i32,
}

fn step<'a>(title: &'a str, args: &[&str], expect: i32) -> Step<'a> {
    Step {
        title,
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        expect,
    }
}

pub(crate) fn run(keep: bool) -> anyhow::Result<()> {
    let mlops = build_mlops_debug()?;
    let tmp = tempfile::Builder::new().prefix("mlops-demo-").tempdir()?;
    let root = tmp.path().join("churn-model");
    let remote = tmp.path().join("remote-storage");
    std::fs::create_dir_all(&root)?;
    git(&root, &["init", "-q"])?;
    write_lab_files(&root)?;

    let remote_s = remote.to_string_lossy().into_owned();
    let steps = vec![
        step("Initialise mlops beside Git", &["init"], 0),
        step(
            "Track the raw data by content hash (Git keeps only the pointer)",
            &["add", "data/raw/customers.csv"],
            0,
        ),
        step(
            "Add a local-folder remote and make it the default",
            &["remote", "add", "storage", &remote_s, "--default"],
            0,
        ),
        step("Push the data to the remote", &["push"], 0),
        step("Everything is in sync", &["status", "--remote"], 0),
    ];
    run_steps(&mlops, &root, &steps)?;

    git(&root, &["add", "-A"])?;
    git(
        &root,
        &[
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@example.invalid",
            "commit",
            "-qm",
            "track data",
        ],
    )?;

    banner("A fresh clone has pointers, not payloads");
    let clone = tmp.path().join("clone");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            &root.to_string_lossy(),
            &clone.to_string_lossy(),
        ],
    )?;
    // The remote is per machine in real life; here the clone shares the tracked config.
    let steps = vec![
        step(
            "Status in the clone: the payload is missing and not in the cache",
            &["status"],
            0,
        ),
        step(
            "Pull: fetch the exact bytes by hash, verify them, check them out",
            &["pull"],
            0,
        ),
        step("In sync again", &["--json", "status"], 0),
    ];
    run_steps(&mlops, &clone, &steps)?;
    let a = std::fs::read(root.join("data/raw/customers.csv"))?;
    let b = std::fs::read(clone.join("data/raw/customers.csv"))?;
    if a != b {
        bail!("the pulled file differs from the original");
    }
    println!(
        "\nthe clone has the exact bytes of data/raw/customers.csv ({} bytes)",
        b.len()
    );

    banner("Data tests: the seed lab's check finds the invalid age");
    write_pipeline_files(&clone)?;
    let steps = vec![
        step(
            "The raw data breaks `between(age, 0, 120)`: exit 1, naming the row and value",
            &["check", "raw"],
            1,
        ),
        step("The pipeline, as a graph", &["dag"], 0),
        step(
            "Which stages would run, and why",
            &["repro", "--dry-run", "score"],
            0,
        ),
        step(
            "Run them: prepare drops invalid rows, score predicts churn",
            &["repro", "score"],
            0,
        ),
        step("Nothing changed: nothing runs", &["repro", "score"], 0),
        step(
            "The prepared data passes its suite",
            &["check", "prepared"],
            0,
        ),
        step(
            "The model-quality gate: overall and per plan",
            &["evaluate", "release"],
            0,
        ),
        step("Metrics recorded by the stage", &["metrics", "show"], 0),
    ];
    run_steps(&mlops, &clone, &steps)?;

    banner("Guardrails before history: a 2 MiB checkpoint staged by mistake");
    std::fs::create_dir_all(clone.join("models"))?;
    std::fs::write(clone.join("models/model.pt"), vec![7u8; 2 << 20])?;
    git(&clone, &["add", "models/model.pt"])?;
    run_steps(
        &mlops,
        &clone,
        &[step(
            "The hook stops it and says how to fix it",
            &["hooks", "run", "--staged"],
            1,
        )],
    )?;
    git(&clone, &["rm", "-q", "--cached", "models/model.pt"])?;
    let steps = vec![
        step("Track it by hash instead", &["add", "models/model.pt"], 0),
        step(
            "The Kubernetes Job that would run the training stage (no cluster needed)",
            &["k8s", "render", "train"],
            0,
        ),
    ];
    run_steps(&mlops, &clone, &steps)?;

    banner("Bad input is explained, with exit code 2");
    run_steps(
        &mlops,
        &clone,
        &[step(
            "A path outside the repository",
            &["add", "/etc/hostname"],
            2,
        )],
    )?;
    run_steps(
        &mlops,
        &clone,
        &[step("An unknown stage", &["repro", "nope"], 2)],
    )?;

    if keep {
        let path = tmp.keep();
        println!("\ndemo folder kept at {}", path.display());
    }
    println!("\ndemo finished: every step ended as expected");
    Ok(())
}

/// The lab's pipeline, suites and gate, and a tiny rule-based "model" in shell.
fn write_pipeline_files(root: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::write(
        root.join("src/score.sh"),
        "#!/bin/sh\n# A rule-based churn model: high spenders on the basic plan churn.\nset -e\nmkdir -p eval metrics\nawk -F, 'NR==1 {print \"customer_id,plan,churned,predicted,score\"; next}\n  { s = ($4 > 150 && $3 == \"basic\") ? 0.9 : 0.1; p = (s > 0.5) ? 1 : 0;\n    print $1 \",\" $3 \",\" $5 \",\" p \",\" s }' data/prepared.csv > eval/predictions.csv\nrows=$(($(wc -l < eval/predictions.csv) - 1))\nprintf '{\"rows\": %d}\\n' \"$rows\" > metrics/score.json\n",
    )?;
    std::fs::write(
        root.join("mlops.toml"),
        r#"# The churn lab: data checks, a two-stage pipeline, a release gate, a Job spec.

[checks.raw]
data = "data/raw/customers.csv"

[[checks.raw.expect]]
type = "not_null"
column = "age"

[[checks.raw.expect]]
type = "between"
column = "age"
min = 0
max = 120

[[checks.raw.expect]]
type = "in_set"
column = "plan"
values = ["basic", "pro", "team"]

[[checks.raw.expect]]
type = "unique"
column = "customer_id"

[checks.prepared]
data = "data/prepared.csv"

[[checks.prepared.expect]]
type = "between"
column = "age"
min = 0
max = 120

[[checks.prepared.expect]]
type = "row_count"
min = 400

[stages.prepare]
cmd = "awk -F, 'NR == 1 || ($2 >= 0 && $2 <= 120)' data/raw/customers.csv > data/prepared.csv"
deps = ["data/raw/customers.csv"]
outs = ["data/prepared.csv"]

[stages.score]
cmd = "sh src/score.sh"
deps = ["src/score.sh", "data/prepared.csv"]
outs = ["eval/predictions.csv"]
metrics = ["metrics/score.json"]

[stages.train]
cmd = "python train.py"
deps = ["data/prepared.csv"]
outs = ["models/model.pt"]

[stages.train.k8s]
image = "python:3.12-slim"
cpu = "500m"
memory = "512Mi"
deadline = "2h"

[gates.release]
predictions = "eval/predictions.csv"
y_true = "churned"
y_pred = "predicted"
score = "score"
segments = ["plan"]
requirements = [
  "accuracy >= 0.6",
  { metric = "accuracy", segment = "plan", max_segment_gap = 0.3 },
]
"#,
    )?;
    Ok(())
}

fn banner(title: &str) {
    println!("\n=== {title} ===");
}

fn run_steps(mlops: &Path, dir: &Path, steps: &[Step<'_>]) -> anyhow::Result<()> {
    for s in steps {
        println!("\n# {}", s.title);
        let mut cmd = Command::new(mlops);
        cmd.current_dir(dir).args(&s.args).env("NO_COLOR", "1");
        println!("$ mlops {}", s.args.join(" "));
        let out = cmd.output().with_context(|| describe(&cmd))?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let code = out.status.code().unwrap_or(-1);
        if code != s.expect {
            bail!(
                "step `{}` exited with {code}, expected {}",
                s.title,
                s.expect
            );
        }
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("git")
        .current_dir(dir)
        .args(args)
        .status()
        .context("running git")?;
    if !status.success() {
        bail!("git {} failed", args.join(" "));
    }
    Ok(())
}

/// The lab's files: a seeded customer table, with one invalid age for the data checks to find.
fn write_lab_files(root: &Path) -> anyhow::Result<()> {
    use rand::{RngExt, SeedableRng};
    let raw: PathBuf = root.join("data/raw");
    std::fs::create_dir_all(&raw)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut csv = String::from("customer_id,age,plan,monthly_spend,churned\n");
    let plans = ["basic", "pro", "team"];
    for id in 1..=500 {
        let age: i32 = if id == 137 {
            212
        } else {
            rng.random_range(18..90)
        };
        let plan = plans[rng.random_range(0..plans.len())];
        let spend: f64 = rng.random_range(5.0..200.0);
        let churned = u8::from(rng.random_bool(0.2));
        csv.push_str(&format!("{id},{age},{plan},{spend:.2},{churned}\n"));
    }
    std::fs::write(raw.join("customers.csv"), csv)?;
    std::fs::write(root.join(".gitignore"), "")?;
    Ok(())
}
