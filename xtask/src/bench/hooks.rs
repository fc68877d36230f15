//! `cargo xtask bench hooks`: `mlops hooks run --all-files` against pre-commit with
//! pre-commit-hooks and against prek's Rust built-in hooks, and the secrets check alone against
//! detect-secrets, on a generated Git repository: 10,000 text files of 2-20 KiB (Python, YAML,
//! JSON, Markdown) with 20 planted secrets and one 15 MiB `.pt` file.
//!
//! Every side runs in the same committed repository with a warm page cache. The peers run the
//! seven hooks of `../shared/bench/precommit-local.yaml` / `prek-builtin.yaml` (large files,
//! private key, merge conflict, YAML, JSON, trailing whitespace, end of file); mlops runs its
//! default set, which adds the full secrets rules, TOML syntax, line endings, case conflicts and
//! notebooks. Both fail on the planted findings, so exit code 1 counts as a completed run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{BenchContext, Report, Row, compare, measure, version_of};

const FILES: usize = 10_000;
const SECRETS_SUBSET: usize = 1_000;
const PLANTED: usize = 20;
const MODEL_BYTES: usize = 15 << 20;

pub(crate) fn run(ctx: &BenchContext) -> anyhow::Result<Report> {
    let files = (FILES / ctx.shrink).max(PLANTED * 4);
    let subset = (SECRETS_SUBSET / ctx.shrink).max(PLANTED * 4).min(files);
    let mut report = Report::default();

    let full = ctx.dir("hooks-repo")?;
    eprintln!("generating a repository of {files} files with {PLANTED} planted secrets");
    let planted = generate(&full, files, subset)?;
    std::fs::write(
        full.join("mlops.toml"),
        "[hooks.large-files]\nenforce-all = true\n",
    )?;
    commit(&full)?;
    let small = ctx.dir("hooks-secrets-repo")?;
    copy_first(&full, &small, subset)?;
    commit(&small)?;

    let mlops = |dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "-C".to_owned(),
            dir.display().to_string(),
            "hooks".into(),
            "run".into(),
        ];
        args.push("--all-files".into());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        accept_findings(&ctx.mlops, &args, dir, &[])
    };

    // What the secrets check finds on the whole repository: all planted, nothing else.
    let found = secrets_found(ctx, &full)?;
    let missed: Vec<&String> = planted.iter().filter(|p| !found.contains(p)).collect();
    let extra: Vec<&String> = found.iter().filter(|f| !planted.contains(f)).collect();
    report.notes.push(format!(
        "Secrets check on all {files} files: {} of {PLANTED} planted secrets found{}; {} finding(s) elsewhere{}.",
        PLANTED - missed.len(),
        if missed.is_empty() { String::new() } else { format!(" (missed: {missed:?})") },
        extra.len(),
        if extra.is_empty() { String::new() } else { format!(" ({extra:?})") },
    ));
    // Warm the page cache for everyone.
    time_quietly(&mlops(&full, &[]))?;

    let ours_all = || mlops(&full, &[]);
    let scratch = ctx.scratch.path();
    let label = format!("7 hooks on {files} files (+ secrets etc. for mlops)");

    // pre-commit + pre-commit-hooks (repo: local, language: system).
    let precommit = ctx.peer("pre-commit");
    let theirs = match (&precommit, &ctx.peers_bin) {
        (Some(pc), Some(bin)) => {
            let cfg = scratch.join("precommit-local.yaml");
            let template = std::fs::read_to_string(shared_bench("precommit-local.yaml"))?;
            std::fs::write(
                &cfg,
                template.replace("PEERS_BIN/", &format!("{}/", bin.display())),
            )?;
            let home = scratch.join("pre-commit-home");
            let cmd = || {
                let args = [
                    "run".to_owned(),
                    "--all-files".into(),
                    "-c".into(),
                    cfg.display().to_string(),
                ];
                accept_findings(pc, &args, &full, &[("PRE_COMMIT_HOME", home.as_path())])
            };
            let (o, t) = compare(ctx.runs, || Ok(()), ours_all, || Ok(()), cmd)?;
            Some((o, t))
        }
        _ => None,
    };
    let pre_commit_name = match (&precommit, ctx.peer("python")) {
        (Some(pc), Some(py)) => format!(
            "{} + pre-commit-hooks {}",
            version_of(pc),
            python_version(&py, "pre-commit-hooks")
        ),
        _ => "pre-commit".to_owned(),
    };
    let (ours, theirs) = match theirs {
        Some((o, t)) => (o, Some(t)),
        None => (measure(ctx.runs, || Ok(()), ours_all)?, None),
    };
    report.rows.push(Row {
        workload: label.clone(),
        peer: pre_commit_name,
        ours,
        theirs,
        goal: Some(10.0),
    });

    // prek with its Rust built-in hooks.
    let prek = ctx.peer("prek");
    let (ours, theirs) = match &prek {
        Some(prek) => {
            let cfg = shared_bench("prek-builtin.yaml");
            let home = scratch.join("prek-home");
            let cmd = || {
                let args = [
                    "run".to_owned(),
                    "--all-files".into(),
                    "-c".into(),
                    cfg.display().to_string(),
                ];
                accept_findings(prek, &args, &full, &[("PREK_HOME", home.as_path())])
            };
            time_quietly(&cmd())?; // first run sets up prek's store
            let (o, t) = compare(ctx.runs, || Ok(()), ours_all, || Ok(()), cmd)?;
            (o, Some(t))
        }
        None => (measure(ctx.runs, || Ok(()), ours_all)?, None),
    };
    let prek_name = prek
        .as_ref()
        .map_or_else(|| "prek".to_owned(), |p| version_of(p));
    report.rows.push(Row {
        workload: label,
        peer: prek_name,
        ours,
        theirs,
        goal: Some(1.5),
    });

    // The secrets check alone against detect-secrets, on the first files (all 20 planted).
    let ds = ctx.peer("detect-secrets");
    let ours_secrets = || mlops(&small, &["--only", "secrets"]);
    let (ours, theirs) = match &ds {
        Some(ds) => {
            let cmd = || accept_findings(ds, &["scan".to_owned()], &small, &[]);
            let (o, t) = compare(ctx.runs, || Ok(()), ours_secrets, || Ok(()), cmd)?;
            (o, Some(t))
        }
        None => (measure(ctx.runs, || Ok(()), ours_secrets)?, None),
    };
    let ds_name = ds.as_ref().map_or_else(
        || "detect-secrets".to_owned(),
        |d| format!("detect-secrets {}", version_of(d)),
    );
    report.rows.push(Row {
        workload: format!("secrets scan of {subset} files"),
        peer: ds_name,
        ours,
        theirs,
        goal: Some(250.0),
    });
    let whole = measure(ctx.runs, || Ok(()), || mlops(&full, &["--only", "secrets"]))?;
    report.notes.push(format!(
        "mlops secrets check alone on all {files} files: {:.0} ms median ({} runs).",
        whole.median.as_secs_f64() * 1000.0,
        whole.runs
    ));
    let bytes = dir_bytes(&full)?;
    report.notes.push(format!(
        "Workload: {files} files ({:.0} MiB with the 15 MiB .pt), seeded; {} runs per side, alternating, medians; \
         exit code 1 (findings) counts as a completed run. mlops runs its default checks with \
         `[hooks.large-files] enforce-all = true` (as the peers' `--enforce-all`); the peers run \
         the seven hooks of ../shared/bench/{{precommit-local,prek-builtin}}.yaml; detect-secrets \
         runs `scan` (git-tracked files) in a repository of the first {subset} files.",
        bytes as f64 / f64::from(1 << 20),
        ctx.runs
    ));
    if ctx.shrink > 1 {
        report.notes.push(format!(
            "Shrunk by {} (--shrink): numbers not comparable with the issue's.",
            ctx.shrink
        ));
    }
    Ok(report)
}

fn shared_bench(name: &str) -> PathBuf {
    crate::util::workspace_root()
        .join("../shared/bench")
        .join(name)
}

fn python_version(python: &Path, package: &str) -> String {
    Command::new(python)
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{package}'))"),
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "?".to_owned(), |s| s.trim().to_owned())
}

/// `program args` in `dir`, through `sh` so that exit code 1 (the checks found something, as
/// planted) counts as success and only 2 and above fail the benchmark.
fn accept_findings(program: &Path, args: &[String], dir: &Path, envs: &[(&str, &Path)]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#""$@" >/dev/null; s=$?; [ "$s" -le 1 ] || { echo "exit $s" >&2; exit "$s"; }"#);
    c.arg("sh").arg(program).args(args).current_dir(dir);
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

fn time_quietly(cmd: &Command) -> anyhow::Result<()> {
    super::harness::time_once(cmd).map(|_| ())
}

/// Paths of the secret findings of `mlops --json hooks run --all-files --only secrets`.
fn secrets_found(ctx: &BenchContext, dir: &Path) -> anyhow::Result<Vec<String>> {
    let out = Command::new(&ctx.mlops)
        .arg("-C")
        .arg(dir)
        .args(["--json", "hooks", "run", "--all-files", "--only", "secrets"])
        .output()?;
    if out.status.code().is_none_or(|c| c > 1) {
        bail!(
            "mlops hooks run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("mlops --json output")?;
    let findings = v["findings"].as_array().context("findings array")?;
    Ok(findings
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_owned))
        .collect())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn commit(dir: &Path) -> anyhow::Result<()> {
    git(dir, &["init", "-q"])?;
    git(dir, &["add", "-A"])?;
    git(dir, &["commit", "-qm", "workload"])
}

fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if e.file_name() == ".git" {
                continue;
            }
            let meta = e.metadata()?;
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// The relative path of file number `i`: four kinds in turn, 40 folders of 25 subfolders.
fn file_path(i: usize) -> String {
    let ext = ["py", "yaml", "json", "md"][i % 4];
    format!("pkg{:02}/mod{:02}/file{i:05}.{ext}", i % 40, (i / 40) % 25)
}

fn copy_first(from: &Path, to: &Path, n: usize) -> anyhow::Result<()> {
    for i in 0..n {
        let rel = file_path(i);
        let dest = to.join(&rel);
        std::fs::create_dir_all(dest.parent().context("parent")?)?;
        std::fs::copy(from.join(&rel), dest)?;
    }
    Ok(())
}

const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "labore",
    "magna",
    "aliqua",
    "feature",
    "model",
    "train",
    "batch",
    "epoch",
    "loss",
    "metric",
    "dataset",
    "split",
    "label",
    "score",
    "weight",
    "layer",
    "embedding",
    "token",
    "schema",
    "column",
    "pipeline",
    "stage",
    "cache",
    "remote",
    "drift",
];

fn word(rng: &mut ChaCha8Rng) -> &'static str {
    WORDS[rng.random_range(0..WORDS.len())]
}

fn sentence(rng: &mut ChaCha8Rng, n: usize) -> String {
    (0..n).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
}

fn chars(rng: &mut ChaCha8Rng, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

fn uuid(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}-{}-4{}-a{}-{}",
        chars(rng, HEX, 8),
        chars(rng, HEX, 4),
        chars(rng, HEX, 3),
        chars(rng, HEX, 3),
        chars(rng, HEX, 12)
    )
}

/// One planted secret: the variable name and the value (a PEM block for private keys).
fn plant(rng: &mut ChaCha8Rng, k: usize) -> (String, String) {
    let pem = |rng: &mut ChaCha8Rng, label: &str| {
        let body: Vec<String> = (0..5).map(|_| chars(rng, B64, 64)).collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----",
            body.join("\n")
        )
    };
    let (name, value) = match k % PLANTED {
        0 => ("AWS_ACCESS_KEY_ID", format!("AKIA{}", chars(rng, B32, 16))),
        1 => ("AWS_SECRET_ACCESS_KEY", chars(rng, ALNUM, 40)),
        2 => ("GH_TOKEN", format!("ghp_{}", chars(rng, ALNUM, 36))),
        3 => ("GH_APP", format!("ghs_{}", chars(rng, ALNUM, 36))),
        4 => ("GITLAB", format!("glpat-{}", chars(rng, ALNUM, 20))),
        5 => (
            "SLACK_BOT",
            format!(
                "xoxb-{}-{}-{}",
                chars(rng, b"0123456789", 12),
                chars(rng, b"0123456789", 13),
                chars(rng, ALNUM, 24)
            ),
        ),
        6 => (
            "ALERTS_HOOK",
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                chars(rng, B32, 8),
                chars(rng, B32, 10),
                chars(rng, ALNUM, 24)
            ),
        ),
        7 => ("STRIPE", format!("sk_live_{}", chars(rng, ALNUM, 24))),
        8 => ("MAPS", format!("AIza{}", chars(rng, URLSAFE, 35))),
        9 => (
            "JUDGE",
            format!(
                "sk-proj-{}T3BlbkFJ{}",
                chars(rng, ALNUM, 40),
                chars(rng, ALNUM, 40)
            ),
        ),
        10 => (
            "CLAUDE",
            format!("sk-ant-api03-{}AA", chars(rng, ALNUM, 93)),
        ),
        11 => (
            "HUB",
            format!(
                "hf_{}Ab",
                chars(
                    rng,
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                    32
                )
            ),
        ),
        12 => (
            "SESSION",
            format!(
                "eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}",
                chars(rng, URLSAFE, 40),
                chars(rng, URLSAFE, 43)
            ),
        ),
        13 => (
            "FEATURE_DB",
            format!(
                "postgresql://trainer:{}@features.internal:5432/fs",
                chars(rng, ALNUM, 16)
            ),
        ),
        14 => (
            "DB_PASSWORD",
            format!("{}!{}", chars(rng, ALNUM, 10), chars(rng, ALNUM, 6)),
        ),
        15 => ("SERVING_API_KEY", chars(rng, ALNUM, 32)),
        16 => ("DEPLOY_KEY", pem(rng, "RSA PRIVATE KEY")),
        17 => ("SSH_KEY", pem(rng, "OPENSSH PRIVATE KEY")),
        18 => (
            "GH_FINE",
            format!(
                "github_pat_{}_{}",
                chars(rng, ALNUM, 22),
                chars(rng, ALNUM, 59)
            ),
        ),
        _ => (
            "BROKER",
            format!("redis://:{}@cache.internal:6379/0", chars(rng, ALNUM, 18)),
        ),
    };
    (name.to_owned(), value)
}

/// The planted line(s) in the syntax of file kind `ext`.
fn planted_text(ext: &str, name: &str, value: &str) -> String {
    let multiline = value.contains('\n');
    match (ext, multiline) {
        ("py", false) => format!("{name} = \"{value}\"\n"),
        ("py", true) => format!("{name} = \"\"\"{value}\"\"\"\n"),
        ("yaml", false) => format!("{}: \"{value}\"\n", name.to_lowercase()),
        ("yaml", true) => {
            let indented: Vec<String> = value.lines().map(|l| format!("  {l}")).collect();
            format!("{}: |\n{}\n", name.to_lowercase(), indented.join("\n"))
        }
        ("json", _) => format!(
            "\"{}\": \"{}\"",
            name.to_lowercase(),
            value.replace('\n', "\\n")
        ),
        (_, false) => format!("Set `{name}={value}` before running the job.\n\n"),
        (_, true) => format!("```\n{value}\n```\n\n"),
    }
}

fn python_block(rng: &mut ChaCha8Rng, n: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "def {}_{}_{n}(batch, weight={}):",
        word(rng),
        word(rng),
        rng.random_range(1..100)
    );
    let _ = writeln!(s, "    \"\"\"{}.\"\"\"", sentence(rng, 8));
    s.push_str("    total = 0.0\n    for item in batch:\n        total += item * weight\n");
    s.push_str("    return total / max(len(batch), 1)\n\n");
    match rng.random_range(0..6) {
        0 => {
            let _ = writeln!(s, "MAX_TOKENS_{n} = {}", rng.random_range(128..8192));
        }
        1 => {
            let _ = writeln!(s, "RUN_ID_{n} = \"{}\"", uuid(rng));
        }
        2 => {
            let _ = writeln!(s, "COMMIT_{n} = \"{}\"", chars(rng, HEX, 40));
        }
        3 => {
            let _ = writeln!(s, "api_key_{n} = os.environ[\"SERVICE_API_KEY\"]");
        }
        4 => {
            let _ = writeln!(
                s,
                "tokenizer_{n} = load_tokenizer(\"{}-{}\")",
                word(rng),
                word(rng)
            );
        }
        _ => {}
    }
    s.push('\n');
    s
}

fn yaml_block(rng: &mut ChaCha8Rng, n: usize) -> String {
    let mut s = format!("{}_{n}:\n", word(rng));
    let _ = writeln!(s, "  learning_rate: 0.{}", rng.random_range(1..999));
    let _ = writeln!(
        s,
        "  layers: [{}, {}, {}]",
        rng.random_range(8..512),
        rng.random_range(8..512),
        rng.random_range(8..512)
    );
    let _ = writeln!(s, "  description: \"{}\"", sentence(rng, 6));
    match rng.random_range(0..4) {
        0 => s.push_str("  password: ${DB_PASSWORD}\n"),
        1 => {
            let _ = writeln!(s, "  checksum: {}", chars(rng, HEX, 64));
        }
        2 => {
            let _ = writeln!(s, "  run_id: {}", uuid(rng));
        }
        _ => {}
    }
    s
}

fn json_record(rng: &mut ChaCha8Rng, n: usize) -> String {
    format!(
        "    {{\"id\": {n}, \"name\": \"{} {}\", \"score\": 0.{}, \"uuid\": \"{}\", \"tags\": [\"{}\", \"{}\"]}}",
        word(rng),
        word(rng),
        rng.random_range(1..99_999),
        uuid(rng),
        word(rng),
        word(rng)
    )
}

fn markdown_block(rng: &mut ChaCha8Rng, n: usize) -> String {
    let mut s = format!("## {} {n}\n\n", sentence(rng, 3));
    let _ = writeln!(s, "{}.\n", sentence(rng, 40));
    let _ = writeln!(s, "- {}\n- {}\n", sentence(rng, 5), sentence(rng, 5));
    let _ = writeln!(
        s,
        "| {} | {} |\n|---|---|\n| {} | {} |\n",
        word(rng),
        word(rng),
        rng.random_range(0..1000),
        rng.random_range(0..1000)
    );
    s
}

/// Writes the files; returns the paths holding planted secrets.
fn generate(root: &Path, files: usize, subset: usize) -> anyhow::Result<Vec<String>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x600d_5eed);
    let stride = subset / PLANTED;
    let mut planted = Vec::new();
    for i in 0..files {
        let rel = file_path(i);
        let ext = &rel[rel.rfind('.').map_or(0, |p| p + 1)..];
        let target = rng.random_range((2usize << 10)..=(20 << 10));
        let secret = (i % stride == 3 && i / stride < PLANTED).then(|| plant(&mut rng, i / stride));
        let mut text = String::with_capacity(target + 1024);
        let mut n = 0;
        match ext {
            "json" => {
                text.push_str("{\n  \"records\": [\n");
                let mut first = true;
                while text.len() < target {
                    if !first {
                        text.push_str(",\n");
                    }
                    first = false;
                    text.push_str(&json_record(&mut rng, n));
                    n += 1;
                }
                text.push_str("\n  ]");
                if let Some((name, value)) = &secret {
                    text.push_str(",\n  ");
                    text.push_str(&planted_text(ext, name, value));
                }
                text.push_str("\n}\n");
            }
            _ => {
                if ext == "md" {
                    let _ = writeln!(text, "# {}\n", sentence(&mut rng, 4));
                }
                while text.len() < target {
                    let block = match ext {
                        "py" => python_block(&mut rng, n),
                        "yaml" => yaml_block(&mut rng, n),
                        _ => markdown_block(&mut rng, n),
                    };
                    text.push_str(&block);
                    n += 1;
                    if n == 2
                        && let Some((name, value)) = &secret
                    {
                        text.push_str(&planted_text(ext, name, value));
                    }
                }
                while text.ends_with("\n\n") {
                    text.pop();
                }
            }
        }
        if secret.is_some() {
            planted.push(rel.clone());
        }
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(path, text)?;
    }
    let mut model = vec![0u8; MODEL_BYTES];
    rng.fill_bytes(&mut model);
    std::fs::create_dir_all(root.join("models"))?;
    std::fs::write(root.join("models/checkpoint.pt"), model)?;
    Ok(planted)
}
