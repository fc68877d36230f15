//! mlops-hooks: fast local guardrails for ML repositories, run before a mistake becomes history.
//!
//! A [`Runner`] selects files with pre-commit's semantics ([`Selection`]: staged blobs read from
//! the index, all tracked files, the files changed between two refs, or an explicit list), reads
//! each file once and runs every enabled check on it in parallel: large and model files,
//! secrets, merge-conflict markers, YAML/JSON/TOML syntax, whitespace, line endings, case
//! conflicts, notebook outputs, stale data pointers, protected branches. It returns a
//! [`Report`] of [`Finding`]s, each naming the file, the line where there is one, and the fix.
//! With [`Runner::fix`], whitespace, end-of-file, line-ending and notebook problems are repaired.
//!
//! The main types: [`Runner`], [`Selection`], [`HooksConfig`] (the `[hooks]` section of
//! `mlops.toml`), [`CheckId`], [`Report`], [`SecretScanner`] (usable alone), [`install`].
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mlops_hooks::{CheckId, Runner, Selection};
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("params.yaml"), "lr: 0.1\nlr: 0.2\n")?;
//! std::fs::write(dir.path().join("notes.md"), "all good\n")?;
//! let report = Runner::new(dir.path())
//!     .selection(Selection::Files(vec!["params.yaml".into(), "notes.md".into()]))
//!     .run()?;
//! assert!(!report.passed());
//! let finding = report.findings_of(CheckId::Syntax).next().ok_or("no syntax finding")?;
//! assert_eq!((finding.path.as_str(), finding.line), ("params.yaml", Some(2)));
//! # Ok(()) }
//! ```

mod check;
mod config;
mod error;
mod fix;
mod git;
pub mod install;
mod notebook;
mod pointers;
mod run;
mod secrets;
mod syntax;
mod yaml_fast;

pub use check::{CheckId, Finding, Report, Skipped, Source};
pub use config::{
    BranchConfig, CONFIG_FILE, CommonConfig, DEFAULT_BASELINE, HooksConfig, LargeFilesConfig,
    MODEL_EXTENSIONS, NotebookConfig, Pattern, SecretsConfig,
};
pub use error::{Error, Result};
pub use fix::{
    fix_end_of_file, fix_mixed_line_endings, line_endings, strip_trailing_whitespace,
    trailing_whitespace_lines,
};
pub use notebook::{DEFAULT_EXTRA_KEYS, Stripped, strip as strip_notebook, to_jupyter_json};
pub use run::{Runner, Selection, config_root};
pub use secrets::{
    ALLOW_PRAGMAS, Baseline, BaselineEntry, RULES, Rule, SecretMatch, SecretScanner, looks_random,
    redact,
};
pub use syntax::{Format, SyntaxError, check as check_syntax};
