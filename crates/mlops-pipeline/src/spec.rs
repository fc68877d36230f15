//! Stage specs: the `[stages.NAME]` tables of `mlops.toml`, validated, with matrix sweeps expanded
//! and every path made relative to the repository root. Other top-level tables (`[checks]`,
//! `[gates]`, `[hooks]`, `[k8s]`) belong to other crates and are ignored here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// The name of the file holding the stages, at the repository root.
pub const SPEC_FILE: &str = "mlops.toml";

/// One stage, after matrix expansion. Paths are relative to the repository root.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stage {
    /// `train`, or for a matrix expansion `train@lr=0.01,depth=4`.
    pub name: String,
    /// The shell command (run with `sh -c` in `wdir`).
    pub cmd: String,
    /// The folder the command runs in, relative to the root (empty for the root itself).
    pub wdir: PathBuf,
    /// Files and folders the command reads.
    pub deps: Vec<PathBuf>,
    /// Values in params files the command reads.
    pub params: Vec<ParamRef>,
    /// Files and folders the command writes (cached by content hash).
    pub outs: Vec<PathBuf>,
    /// Small metric files the command writes; their values are recorded in the lock.
    pub metrics: Vec<PathBuf>,
    /// Extra environment variables for the command (part of the fingerprint).
    pub env: BTreeMap<String, String>,
    /// Run every time, whatever changed.
    pub always_changed: bool,
    /// Never run; the last recorded outputs stand.
    pub frozen: bool,
    /// The raw `[stages.NAME.k8s]` table, for the Kubernetes executor.
    pub k8s: Option<toml::Table>,
    /// The line of `mlops.toml` where the stage is declared.
    pub line: usize,
}

/// A value in a params file: `configs/train.yaml:model.lr`. The key is a dotted path; an empty key
/// means the whole file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParamRef {
    /// The params file, relative to the repository root.
    pub file: PathBuf,
    /// The dotted key path, or empty for the whole file.
    pub key: String,
}

impl fmt::Display for ParamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", slash(&self.file))
        } else {
            write!(f, "{}:{}", slash(&self.file), self.key)
        }
    }
}

/// `path` with `/` separators, for messages and the lock file.
pub fn slash(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// All stages of a repository, sorted by name.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Spec {
    /// The repository root (the folder holding `mlops.toml`).
    pub root: PathBuf,
    /// The stages, sorted by name.
    pub stages: Vec<Stage>,
}

impl Spec {
    /// Reads `ROOT/mlops.toml`.
    ///
    /// Fails with [`Error::NoSpec`] when the file does not exist and [`Error::Syntax`] (file, line,
    /// column) when it is malformed or a stage is invalid.
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(SPEC_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoSpec { path });
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        Self::parse(root, Path::new(SPEC_FILE), &text)
    }

    /// Parses the text of an `mlops.toml`; `file` is used in messages.
    pub fn parse(root: &Path, file: &Path, text: &str) -> Result<Self> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            Error::at_offset(file, text, offset, e.message().trim().to_owned())
        })?;
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let ctx = Ctx {
            file,
            text,
            line_starts,
        };
        let mut stages = Vec::new();
        for (name, raw_stage) in raw.stages {
            ctx.check_name(&name)?;
            expand(&ctx, &name, raw_stage, &mut stages)?;
        }
        stages.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in stages.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(Error::Syntax {
                    file: file.to_owned(),
                    line: pair[1].line,
                    column: 1,
                    message: format!("stage name {} is declared twice", pair[1].name),
                });
            }
        }
        Ok(Self {
            root: root.to_owned(),
            stages,
        })
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.stages[i])
    }

    /// The index of the stage called `name`, or [`Error::UnknownStage`].
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.stages
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .map_err(|_| {
                let mut known: Vec<_> = self
                    .stages
                    .iter()
                    .take(10)
                    .map(|s| s.name.as_str())
                    .collect();
                if self.stages.len() > 10 {
                    known.push("…");
                }
                Error::UnknownStage {
                    name: name.to_owned(),
                    known: if known.is_empty() {
                        "(none)".into()
                    } else {
                        known.join(", ")
                    },
                }
            })
    }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    stages: BTreeMap<Spanned<String>, Spanned<RawStage>>,
}

/// `matrix = { key = [values] }`, with spans to report errors and keep the written key order.
type RawMatrix = BTreeMap<Spanned<String>, Spanned<Vec<Spanned<toml::Value>>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    cmd: Spanned<String>,
    #[serde(default)]
    deps: Vec<Spanned<String>>,
    #[serde(default)]
    params: Vec<Spanned<String>>,
    #[serde(default)]
    outs: Vec<Spanned<String>>,
    #[serde(default)]
    metrics: Vec<Spanned<String>>,
    #[serde(default)]
    wdir: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    always_changed: bool,
    #[serde(default)]
    frozen: bool,
    #[serde(default)]
    matrix: Option<RawMatrix>,
    #[serde(default)]
    k8s: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for people reading mlops.toml; not used")]
    desc: Option<String>,
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offsets where lines start, so finding a stage's line is a binary search, not a scan
    /// from the top of the file (which made parsing quadratic in the number of stages).
    line_starts: Vec<usize>,
}

impl Ctx<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> Result<T> {
        Err(Error::at_offset(self.file, self.text, span.start, message))
    }

    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.line_starts
            .partition_point(|&start| start <= span.start)
    }

    fn check_name(&self, name: &Spanned<String>) -> Result<()> {
        let ok = !name.get_ref().is_empty()
            && name
                .get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(())
        } else {
            self.err(
                name.span(),
                format!(
                    "invalid stage name `{}`: use letters, digits, `_`, `-` and `.`",
                    name.get_ref()
                ),
            )
        }
    }
}

/// One combination of matrix values, in the order the keys are written.
type Combination = Vec<(String, String)>;

fn expand(
    ctx: &Ctx<'_>,
    name: &Spanned<String>,
    raw: Spanned<RawStage>,
    out: &mut Vec<Stage>,
) -> Result<()> {
    let stage_span = name.span();
    let raw = raw.into_inner();
    let combinations: Vec<Combination> = match &raw.matrix {
        None => vec![Vec::new()],
        Some(matrix) => {
            let mut keys: Vec<_> = matrix.iter().collect();
            keys.sort_by_key(|(k, _)| k.span().start);
            if keys.is_empty() {
                return ctx.err(
                    stage_span,
                    format!("stage {}: matrix has no keys", name.get_ref()),
                );
            }
            let mut combos: Vec<Combination> = vec![Vec::new()];
            for (key, values) in keys {
                if values.get_ref().is_empty() {
                    return ctx.err(
                        values.span(),
                        format!("matrix key {} has no values", key.get_ref()),
                    );
                }
                let mut rendered = Vec::new();
                for value in values.get_ref() {
                    rendered.push(matrix_value(ctx, value)?);
                }
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        rendered.iter().map(move |v| {
                            let mut c = c.clone();
                            c.push((key.get_ref().clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            }
            combos
        }
    };
    for combo in combinations {
        let stage_name = if combo.is_empty() {
            name.get_ref().clone()
        } else {
            let parts: Vec<_> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}@{}", name.get_ref(), parts.join(","))
        };
        let sub = |s: &Spanned<String>| substitute(ctx, s, &combo);
        let wdir = match &raw.wdir {
            Some(w) => normalize(ctx, &stage_name, Path::new(""), w, &sub(w)?)?,
            None => PathBuf::new(),
        };
        let paths = |list: &[Spanned<String>]| -> Result<Vec<PathBuf>> {
            let mut out = Vec::with_capacity(list.len());
            for p in list {
                let path = normalize(ctx, &stage_name, &wdir, p, &sub(p)?)?;
                if path.as_os_str().is_empty() {
                    return ctx.err(
                        p.span(),
                        format!("stage {stage_name}: a path may not be the repository root itself"),
                    );
                }
                out.push(path);
            }
            Ok(out)
        };
        let mut params = Vec::new();
        for p in &raw.params {
            let text = sub(p)?;
            let (file, key) = match text.rsplit_once(':') {
                Some((f, k)) => (f.to_owned(), k.to_owned()),
                None => (text.clone(), String::new()),
            };
            if file.is_empty() {
                return ctx.err(
                    p.span(),
                    format!("param `{text}`: write FILE:KEY, e.g. params.yaml:model.lr"),
                );
            }
            let file = normalize(ctx, &stage_name, &wdir, p, &file)?;
            if crate::values::Format::of(&file).is_none() {
                return ctx.err(
                    p.span(),
                    format!(
                        "params file {}: use a .toml, .yaml, .yml or .json file",
                        slash(&file)
                    ),
                );
            }
            params.push(ParamRef { file, key });
        }
        let mut env = BTreeMap::new();
        for (k, v) in &raw.env {
            env.insert(k.clone(), sub(v)?);
        }
        out.push(Stage {
            name: stage_name.clone(),
            cmd: sub(&raw.cmd)?,
            deps: paths(&raw.deps)?,
            outs: paths(&raw.outs)?,
            metrics: paths(&raw.metrics)?,
            params,
            wdir,
            env,
            always_changed: raw.always_changed,
            frozen: raw.frozen,
            k8s: raw.k8s.clone(),
            line: ctx.line(stage_span.clone()),
        });
    }
    Ok(())
}

fn matrix_value(ctx: &Ctx<'_>, value: &Spanned<toml::Value>) -> Result<String> {
    match value.get_ref() {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(format!("{f:?}")),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => ctx.err(
            value.span(),
            "matrix values must be strings, numbers or booleans",
        ),
    }
}

/// Replaces every `${matrix.KEY}` in `s`; other `${…}` (shell variables) are left alone.
fn substitute(ctx: &Ctx<'_>, s: &Spanned<String>, combo: &[(String, String)]) -> Result<String> {
    const OPEN: &str = "${matrix.";
    let text = s.get_ref();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return ctx.err(s.span(), "unclosed `${matrix.` substitution");
        };
        let key = &after[..end];
        match combo.iter().find(|(k, _)| k == key) {
            Some((_, v)) => out.push_str(v),
            None => {
                return ctx.err(
                    s.span(),
                    format!("`${{matrix.{key}}}`: the stage's matrix has no key {key}"),
                );
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `wdir/path` cleaned lexically and made relative to the root; paths leaving the root are errors.
fn normalize(
    ctx: &Ctx<'_>,
    stage: &str,
    wdir: &Path,
    at: &Spanned<String>,
    path: &str,
) -> Result<PathBuf> {
    if path.is_empty() {
        return ctx.err(at.span(), format!("stage {stage}: empty path"));
    }
    let outside = || Error::PathOutside {
        stage: stage.to_owned(),
        path: path.to_owned(),
    };
    let joined = wdir.join(path);
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in joined.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(outside());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside()),
        }
    }
    Ok(parts.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Spec> {
        Spec::parse(Path::new("/r"), Path::new("mlops.toml"), text)
    }

    #[test]
    fn reads_every_field_and_ignores_other_sections() {
        let spec = parse(
            r#"
[checks.raw]
whatever = 1

[stages.train]
cmd = "python train.py"
wdir = "src"
deps = ["train.py", "../data/x.csv"]
params = ["../params.yaml:model.lr", "../p.toml"]
outs = ["../model.bin"]
metrics = ["../metrics.json"]
env = { SEED = "1" }
always_changed = true
frozen = false

[stages.train.k8s]
image = "python:3.12"
"#,
        )
        .unwrap();
        let s = &spec.stages[0];
        assert_eq!(s.name, "train");
        assert_eq!(s.wdir, Path::new("src"));
        assert_eq!(
            s.deps,
            [PathBuf::from("src/train.py"), PathBuf::from("data/x.csv")]
        );
        assert_eq!(
            s.params[0],
            ParamRef {
                file: "params.yaml".into(),
                key: "model.lr".into()
            }
        );
        assert_eq!(s.params[1].to_string(), "p.toml");
        assert_eq!(s.outs, [PathBuf::from("model.bin")]);
        assert_eq!(s.metrics, [PathBuf::from("metrics.json")]);
        assert_eq!(s.env["SEED"], "1");
        assert!(s.always_changed);
        assert_eq!(
            s.k8s.as_ref().unwrap()["image"].as_str(),
            Some("python:3.12")
        );
        assert_eq!(s.line, 5);
    }

    #[test]
    fn matrix_expands_in_written_order_and_substitutes() {
        let spec = parse(
            r#"[stages.train]
cmd = "train --lr ${matrix.lr} --depth ${matrix.depth} $HOME ${USER}"
outs = ["models/${matrix.lr}-${matrix.depth}.bin"]
matrix = { lr = [0.01, 0.1], depth = [4, 6] }
"#,
        )
        .unwrap();
        let names: Vec<_> = spec.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "train@lr=0.01,depth=4",
                "train@lr=0.01,depth=6",
                "train@lr=0.1,depth=4",
                "train@lr=0.1,depth=6"
            ]
        );
        let s = spec.stage("train@lr=0.1,depth=6").unwrap();
        assert_eq!(s.cmd, "train --lr 0.1 --depth 6 $HOME ${USER}");
        assert_eq!(s.outs, [PathBuf::from("models/0.1-6.bin")]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("[stages.a]\ncmd = \"x\"\ndeps = [\"a\",\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mlops.toml:3:"), "{e}");
        let e = parse("[stages.a]\ncmd = \"x\"\nouts = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mlops.toml:3:8:"), "{e}");
        let e = parse("[stages.a]\ncmd = \"x\"\ndep = [\"a\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mlops.toml:3:1:") && e.contains("unknown field `dep`"),
            "{e}"
        );
        let e = parse("[stages.a]\ndeps = []\n").unwrap_err().to_string();
        assert!(e.contains("missing field `cmd`"), "{e}");
        let e = parse("[stages.a]\ncmd = \"x ${matrix.lr}\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mlops.toml:2:7:") && e.contains("no key lr"),
            "{e}"
        );
        let e = parse("[stages.\"a b\"]\ncmd = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mlops.toml:1:9:") && e.contains("invalid stage name"),
            "{e}"
        );
        let e = parse("[stages.a]\ncmd = \"x\"\nparams = [\"p.ini:x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mlops.toml:3:11:") && e.contains(".toml, .yaml"),
            "{e}"
        );
    }

    #[test]
    fn paths_outside_the_root_are_rejected() {
        let e = parse("[stages.a]\ncmd = \"x\"\ndeps = [\"../x\"]\n").unwrap_err();
        assert!(matches!(e, Error::PathOutside { .. }), "{e}");
        let e = parse("[stages.a]\ncmd = \"x\"\nouts = [\"/etc/passwd\"]\n").unwrap_err();
        assert!(e.to_string().contains("outside the repository"), "{e}");
    }

    #[test]
    fn unknown_stage_lists_known_ones() {
        let spec = parse("[stages.a]\ncmd = \"x\"\n[stages.b]\ncmd = \"y\"\n").unwrap();
        assert_eq!(spec.index_of("b").unwrap(), 1);
        assert_eq!(
            spec.index_of("c").unwrap_err().to_string(),
            "unknown stage `c`; stages: a, b"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in "(\\[stages\\.[a-z@ ]{0,3}\\]\n|cmd = \"[a-z${}.]{0,8}\"\n|deps = \\[\"[a-z./]{0,6}\"\\]\n|matrix = \\{ x = \\[[0-9, ]{0,5}\\] \\}\n|[a-z=\"\\[\\] ]{0,10}\n){0,6}") {
            let _ = parse(&text);
        }

        #[test]
        fn normalized_paths_stay_inside(path in "[a-z./]{1,12}") {
            if let Ok(spec) = parse(&format!("[stages.a]\ncmd = \"x\"\ndeps = [\"{path}\"]\n")) {
                for d in &spec.stages[0].deps {
                    prop_assert!(d.components().all(|c| matches!(c, Component::Normal(_))), "{:?}", d);
                }
            }
        }
    }
}
