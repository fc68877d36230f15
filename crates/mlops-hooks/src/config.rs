//! The `[hooks]` section of `mlops.toml`. Other sections of the file are ignored here.
//!
//! ```toml
//! [hooks]
//! exclude = ["vendor/**"]            # globs, never checked by any check
//! disable = ["mixed-line-ending"]    # checks turned off
//!
//! [hooks.large-files]
//! max-kib = 500                      # any added file
//! model-max-kib = 100                # .pt .onnx .parquet ... (use `mlops add` for those)
//!
//! [hooks.secrets]
//! baseline = ".mlops-secrets-baseline.toml"
//! disable-rules = ["jwt"]
//!
//! [hooks.no-commit-to-branch]
//! branches = ["main"]
//! ```

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Deserializer};

use crate::check::CheckId;
use crate::error::{Error, Result};

/// The file the configuration lives in, at the repository root.
pub const CONFIG_FILE: &str = "mlops.toml";

/// The default secrets baseline, relative to the repository root.
pub const DEFAULT_BASELINE: &str = ".mlops-secrets-baseline.toml";

/// Model and data extensions held to `model-max-kib` by default.
pub const MODEL_EXTENSIONS: &[&str] = &[
    "pkl",
    "pickle",
    "pt",
    "pth",
    "h5",
    "hdf5",
    "onnx",
    "bin",
    "safetensors",
    "ckpt",
    "npy",
    "npz",
    "parquet",
    "feather",
    "arrow",
];

/// A glob from the configuration, checked when the file is read.
///
/// `*` and `?` do not cross `/`, `**` does; a pattern without `/` also matches the file name
/// alone (so `*.lock` excludes lock files in every folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// Parses a glob.
    ///
    /// # Errors
    /// A message saying why the glob is invalid.
    pub fn new(glob: &str) -> std::result::Result<Self, String> {
        build_glob(glob).map_err(|e| format!("invalid glob `{glob}`: {e}"))?;
        Ok(Self(glob.to_owned()))
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn build_glob(glob: &str) -> std::result::Result<globset::Glob, globset::Error> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for CheckId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A compiled set of [`Pattern`]s.
#[derive(Debug, Clone)]
pub(crate) struct Excludes {
    full: GlobSet,
    name: GlobSet,
}

impl Excludes {
    pub(crate) fn new(patterns: &[Pattern]) -> Self {
        let mut full = GlobSetBuilder::new();
        let mut name = GlobSetBuilder::new();
        for p in patterns {
            // Validated at parse time; a pattern built in code that fails is skipped.
            if let Ok(g) = build_glob(p.as_str()) {
                if p.as_str().contains('/') {
                    full.add(g);
                } else {
                    name.add(g.clone());
                    full.add(g);
                }
            }
        }
        let empty = || GlobSet::empty();
        Self {
            full: full.build().unwrap_or_else(|_| empty()),
            name: name.build().unwrap_or_else(|_| empty()),
        }
    }

    /// Whether the repository-relative `path` is excluded.
    pub(crate) fn matches(&self, path: &str) -> bool {
        if self.full.is_match(path) {
            return true;
        }
        let file_name = path.rsplit('/').next().unwrap_or(path);
        self.name.is_match(file_name)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.full.is_empty()
    }
}

/// Options every check has.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommonConfig {
    /// `false` turns the check off.
    pub enabled: Option<bool>,
    /// Paths this check skips.
    #[serde(default)]
    pub exclude: Vec<Pattern>,
}

/// `[hooks.large-files]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LargeFilesConfig {
    /// `false` turns the check off.
    pub enabled: Option<bool>,
    /// Paths this check skips.
    pub exclude: Vec<Pattern>,
    /// Limit for any file, KiB (default 500, as pre-commit-hooks).
    pub max_kib: u64,
    /// Limit for model and data files, KiB (default 100).
    pub model_max_kib: u64,
    /// Extensions (without dot, any case) held to `model-max-kib`.
    pub model_extensions: Vec<String>,
    /// Check every selected file, not only files being added (pre-commit-hooks' `--enforce-all`).
    pub enforce_all: bool,
}

impl Default for LargeFilesConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            exclude: Vec::new(),
            max_kib: 500,
            model_max_kib: 100,
            model_extensions: MODEL_EXTENSIONS.iter().map(|s| (*s).to_owned()).collect(),
            enforce_all: false,
        }
    }
}

/// `[hooks.secrets]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SecretsConfig {
    /// `false` turns the check off.
    pub enabled: Option<bool>,
    /// Paths this check skips.
    pub exclude: Vec<Pattern>,
    /// Baseline file of accepted findings, relative to the repository root
    /// (default `.mlops-secrets-baseline.toml`; a missing file is an empty baseline).
    pub baseline: Option<PathBuf>,
    /// Rule ids turned off (see `mlops hooks list`).
    #[serde(deserialize_with = "rule_ids")]
    pub disable_rules: Vec<String>,
}

fn rule_ids<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    let ids = Vec::<String>::deserialize(d)?;
    for id in &ids {
        if !crate::secrets::RULES.iter().any(|r| r.id == id) {
            let known: Vec<_> = crate::secrets::RULES.iter().map(|r| r.id).collect();
            return Err(serde::de::Error::custom(format!(
                "unknown secret rule `{id}` (known rules: {})",
                known.join(", ")
            )));
        }
    }
    Ok(ids)
}

/// `[hooks.notebook-outputs]`: nbstripout's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NotebookConfig {
    /// `false` turns the check off.
    pub enabled: Option<bool>,
    /// Paths this check skips.
    pub exclude: Vec<Pattern>,
    /// Keep every output (nbstripout `--keep-output`); cells and notebooks can also say
    /// `"keep_output": true` in their metadata.
    pub keep_output: bool,
    /// Keep execution counts (nbstripout `--keep-count`).
    pub keep_count: bool,
    /// More metadata keys to strip, as `metadata.KEY` or `cell.metadata.KEY`.
    pub extra_keys: Vec<String>,
}

/// `[hooks.no-commit-to-branch]`: on when `branches` is set or `enabled = true`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct BranchConfig {
    /// `true` turns the check on (with `main` and `master` when no branches are given).
    pub enabled: Option<bool>,
    /// Paths this check skips (unused: the check is about the branch).
    pub exclude: Vec<Pattern>,
    /// Protected branch names or globs.
    pub branches: Vec<Pattern>,
}

/// The `[hooks]` section: which checks run and their options. `Default` is the safe set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
#[non_exhaustive]
pub struct HooksConfig {
    /// Paths no check looks at.
    pub exclude: Vec<Pattern>,
    /// Checks turned off.
    pub disable: Vec<CheckId>,
    /// `[hooks.large-files]`.
    pub large_files: LargeFilesConfig,
    /// `[hooks.secrets]`.
    pub secrets: SecretsConfig,
    /// `[hooks.merge-conflict]`.
    pub merge_conflict: CommonConfig,
    /// `[hooks.syntax]`.
    pub syntax: CommonConfig,
    /// `[hooks.trailing-whitespace]`.
    pub trailing_whitespace: CommonConfig,
    /// `[hooks.end-of-file]`.
    pub end_of_file: CommonConfig,
    /// `[hooks.mixed-line-ending]`.
    pub mixed_line_ending: CommonConfig,
    /// `[hooks.case-conflict]`.
    pub case_conflict: CommonConfig,
    /// `[hooks.notebook-outputs]`.
    pub notebook_outputs: NotebookConfig,
    /// `[hooks.stale-pointers]`.
    pub stale_pointers: CommonConfig,
    /// `[hooks.no-commit-to-branch]`.
    pub no_commit_to_branch: BranchConfig,
}

#[derive(Deserialize)]
struct Root {
    #[serde(default)]
    hooks: Option<HooksConfig>,
}

impl HooksConfig {
    /// Parses the `[hooks]` section of a whole `mlops.toml` text; `path` is used in errors.
    ///
    /// # Errors
    /// [`Error::Config`] with the line and column of the problem.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        match toml::from_str::<Root>(text) {
            Ok(root) => Ok(root.hooks.unwrap_or_default()),
            Err(e) => {
                let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
                Err(Error::Config {
                    path: path.to_owned(),
                    line,
                    column,
                    message: e.message().trim_end().to_owned(),
                })
            }
        }
    }

    /// Reads `mlops.toml` in `root`; a missing file gives the defaults.
    ///
    /// # Errors
    /// [`Error::Config`] for a malformed file, [`Error::Io`] when it cannot be read.
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(CONFIG_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Whether `check` is on in this configuration.
    pub fn enabled(&self, check: CheckId) -> bool {
        if self.disable.contains(&check) {
            return false;
        }
        if check == CheckId::NoCommitToBranch {
            let b = &self.no_commit_to_branch;
            return b.enabled.unwrap_or(!b.branches.is_empty());
        }
        self.common(check).0.unwrap_or(true)
    }

    fn common(&self, check: CheckId) -> (Option<bool>, &[Pattern]) {
        match check {
            CheckId::LargeFiles => (self.large_files.enabled, &self.large_files.exclude),
            CheckId::Secrets => (self.secrets.enabled, &self.secrets.exclude),
            CheckId::MergeConflict => (self.merge_conflict.enabled, &self.merge_conflict.exclude),
            CheckId::Syntax => (self.syntax.enabled, &self.syntax.exclude),
            CheckId::TrailingWhitespace => (
                self.trailing_whitespace.enabled,
                &self.trailing_whitespace.exclude,
            ),
            CheckId::EndOfFile => (self.end_of_file.enabled, &self.end_of_file.exclude),
            CheckId::MixedLineEnding => (
                self.mixed_line_ending.enabled,
                &self.mixed_line_ending.exclude,
            ),
            CheckId::CaseConflict => (self.case_conflict.enabled, &self.case_conflict.exclude),
            CheckId::NotebookOutputs => (
                self.notebook_outputs.enabled,
                &self.notebook_outputs.exclude,
            ),
            CheckId::StalePointers => (self.stale_pointers.enabled, &self.stale_pointers.exclude),
            CheckId::NoCommitToBranch => (
                self.no_commit_to_branch.enabled,
                &self.no_commit_to_branch.exclude,
            ),
        }
    }

    /// The exclude patterns of one check (not including the global ones).
    pub fn excludes_of(&self, check: CheckId) -> &[Pattern] {
        self.common(check).1
    }

    /// The protected branches (defaults `main`, `master` when the check is on without a list).
    pub fn protected_branches(&self) -> Vec<Pattern> {
        if self.no_commit_to_branch.branches.is_empty() {
            vec![Pattern("main".into()), Pattern("master".into())]
        } else {
            self.no_commit_to_branch.branches.clone()
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HooksConfig> {
        HooksConfig::from_toml(text, Path::new("mlops.toml"))
    }

    #[test]
    fn missing_section_gives_the_safe_defaults() {
        let c = parse("[stages.train]\ncmd = \"python train.py\"\n").unwrap();
        assert!(c.enabled(CheckId::Secrets));
        assert!(c.enabled(CheckId::LargeFiles));
        assert!(!c.enabled(CheckId::NoCommitToBranch));
        assert_eq!(c.large_files.max_kib, 500);
    }

    #[test]
    fn options_and_disabling_are_read() {
        let c = parse(
            "[hooks]\ndisable = [\"syntax\"]\nexclude = [\"vendor/**\"]\n[hooks.large-files]\nmax-kib = 10\n\
             [hooks.secrets]\nenabled = false\n[hooks.no-commit-to-branch]\nbranches = [\"release/*\"]\n",
        )
        .unwrap();
        assert!(!c.enabled(CheckId::Syntax));
        assert!(!c.enabled(CheckId::Secrets));
        assert!(c.enabled(CheckId::NoCommitToBranch));
        assert_eq!(c.large_files.max_kib, 10);
        assert_eq!(c.protected_branches(), vec![Pattern("release/*".into())]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = parse("[stages.a]\ncmd = \"x\"\n[hooks]\ndisable = [\"secret\"]\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("mlops.toml:4:"), "{msg}");
        assert!(msg.contains("unknown check `secret`"), "{msg}");
        assert!(err.is_usage());

        let msg = parse("[hooks.large-files]\nmax-kb = 3\n")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("mlops.toml:2:1:"), "{msg}");
        assert!(msg.contains("max-kb"), "{msg}");

        let msg = parse("[hooks]\nexclude = [\"a/[b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("invalid glob `a/[b`"), "{msg}");
        assert!(msg.starts_with("mlops.toml:2:"), "{msg}");

        let msg = parse("[hooks.secrets]\ndisable-rules = [\"nope\"]\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("unknown secret rule `nope`"), "{msg}");

        let msg = parse("[hooks\n").unwrap_err().to_string();
        assert!(msg.starts_with("mlops.toml:1:"), "{msg}");
    }

    #[test]
    fn excludes_match_full_paths_and_bare_names() {
        let pats = [
            Pattern::new("vendor/**").unwrap(),
            Pattern::new("*.lock").unwrap(),
        ];
        let ex = Excludes::new(&pats);
        assert!(ex.matches("vendor/a/b.py"));
        assert!(ex.matches("deep/dir/poetry.lock"));
        assert!(!ex.matches("src/vendor.py"));
        let star = Excludes::new(&[Pattern::new("data/*.csv").unwrap()]);
        assert!(star.matches("data/a.csv"));
        assert!(!star.matches("data/sub/a.csv"));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 7), (2, 4));
        assert_eq!(line_col("", 5), (1, 1));
    }
}
