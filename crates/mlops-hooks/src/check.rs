//! Check ids, findings and the report of a run.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;

/// One guardrail. Ids are stable: they appear in `mlops.toml`, `--only`/`--skip` and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum CheckId {
    /// Files above a size limit (smaller for model and data extensions).
    LargeFiles,
    /// Credentials: cloud keys, tokens, private keys, passwords.
    Secrets,
    /// Merge-conflict markers left in a file.
    MergeConflict,
    /// YAML, JSON and TOML that do not parse (JSON duplicate keys included).
    Syntax,
    /// Spaces or tabs at the end of a line.
    TrailingWhitespace,
    /// A file that does not end with exactly one newline.
    EndOfFile,
    /// A file mixing `\r\n` and `\n` line endings.
    MixedLineEnding,
    /// Paths that differ only by case (they collide on macOS and Windows).
    CaseConflict,
    /// Jupyter notebooks with outputs, execution counts or volatile metadata.
    NotebookOutputs,
    /// Data whose content no longer matches its `.mlops` pointer, or a pointer whose object is
    /// missing from the cache.
    StalePointers,
    /// Committing directly to a protected branch (off unless configured).
    NoCommitToBranch,
}

impl CheckId {
    /// Every check, in report order.
    pub const ALL: [CheckId; 11] = [
        Self::LargeFiles,
        Self::Secrets,
        Self::MergeConflict,
        Self::Syntax,
        Self::TrailingWhitespace,
        Self::EndOfFile,
        Self::MixedLineEnding,
        Self::CaseConflict,
        Self::NotebookOutputs,
        Self::StalePointers,
        Self::NoCommitToBranch,
    ];

    /// The stable id, e.g. `large-files`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LargeFiles => "large-files",
            Self::Secrets => "secrets",
            Self::MergeConflict => "merge-conflict",
            Self::Syntax => "syntax",
            Self::TrailingWhitespace => "trailing-whitespace",
            Self::EndOfFile => "end-of-file",
            Self::MixedLineEnding => "mixed-line-ending",
            Self::CaseConflict => "case-conflict",
            Self::NotebookOutputs => "notebook-outputs",
            Self::StalePointers => "stale-pointers",
            Self::NoCommitToBranch => "no-commit-to-branch",
        }
    }

    /// One line saying what the check looks for.
    pub fn description(self) -> &'static str {
        match self {
            Self::LargeFiles => {
                "added files above the size limit; model and data files above a smaller one"
            }
            Self::Secrets => {
                "cloud keys, API tokens, private keys, passwords in URLs and assignments"
            }
            Self::MergeConflict => "merge-conflict markers (<<<<<<<, =======, >>>>>>>)",
            Self::Syntax => "YAML, JSON (duplicate keys rejected) and TOML that do not parse",
            Self::TrailingWhitespace => "spaces or tabs at the end of a line",
            Self::EndOfFile => "files not ending in exactly one newline",
            Self::MixedLineEnding => "files mixing CRLF and LF line endings",
            Self::CaseConflict => "paths that differ only by letter case",
            Self::NotebookOutputs => {
                "notebooks with outputs, execution counts or volatile metadata"
            }
            Self::StalePointers => {
                "data changed without `mlops add`, or pointers whose object is not cached"
            }
            Self::NoCommitToBranch => "commits made directly on a protected branch",
        }
    }

    /// Whether `--fix` can repair what this check finds.
    pub fn fixable(self) -> bool {
        matches!(
            self,
            Self::TrailingWhitespace
                | Self::EndOfFile
                | Self::MixedLineEnding
                | Self::NotebookOutputs
        )
    }

    /// Parses a comma-separated list of ids (`--only secrets,syntax`).
    ///
    /// # Errors
    /// [`Error::UnknownCheck`] naming the first unknown id.
    pub fn parse_list(list: &str) -> Result<Vec<CheckId>, Error> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    pub(crate) fn known_list() -> String {
        Self::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| Error::UnknownCheck {
                name: s.to_owned(),
                known: Self::known_list(),
            })
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that found it.
    pub check: CheckId,
    /// Repository-relative path with `/` separators (empty for repository-wide findings such as
    /// a protected branch).
    pub path: String,
    /// 1-based line, where the finding has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column, where the finding has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong. Secrets appear redacted, never whole.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// Whether `--fix` repaired it in the working tree.
    pub fixed: bool,
    /// For secrets: the baseline fingerprint (rule, path and hash of the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl Finding {
    pub(crate) fn new(
        check: CheckId,
        path: &str,
        line: Option<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check,
            path: path.to_owned(),
            line,
            column: None,
            message: message.into(),
            fix: fix.into(),
            fixed: false,
            fingerprint: None,
        }
    }

    /// `path:line:column` or the parts of it that exist.
    pub fn location(&self) -> String {
        let mut s = self.path.clone();
        if let Some(line) = self.line {
            s.push_str(&format!(":{line}"));
            if let Some(col) = self.column {
                s.push_str(&format!(":{col}"));
            }
        }
        s
    }
}

/// A check that was enabled but did not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The check.
    pub check: CheckId,
    /// Why it did not run, e.g. `no .mlops/ folder`.
    pub reason: String,
}

/// Where the checked content came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Source {
    /// Staged blobs from the Git index.
    Index,
    /// Files in the working tree.
    WorkingTree,
    /// Blobs of the `--to-ref` commit.
    Commit,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How many files were selected and looked at.
    pub files_checked: usize,
    /// Where their content was read from.
    pub source: Source,
    /// The checks that ran.
    pub checks: Vec<CheckId>,
    /// Enabled checks that could not run here.
    pub skipped: Vec<Skipped>,
    /// Every finding, ordered by check, path and line.
    pub findings: Vec<Finding>,
    /// Files rewritten by `--fix`.
    pub fixed_files: Vec<String>,
    /// Secret findings matched by the baseline and therefore not reported.
    pub baselined: usize,
}

impl Report {
    /// Whether the run passed: no findings, or only findings `--fix` repaired in the working
    /// tree when that is what was checked. A fix made while checking staged content still fails
    /// (the commit would contain the unfixed version until the file is added again).
    pub fn passed(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.fixed && self.source == Source::WorkingTree)
    }

    /// The findings of one check.
    pub fn findings_of(&self, check: CheckId) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.check == check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_unknown_ids_name_the_known_ones() {
        for c in CheckId::ALL {
            assert_eq!(c.as_str().parse::<CheckId>().unwrap(), c);
        }
        let err = "secret".parse::<CheckId>().unwrap_err().to_string();
        assert!(err.contains("unknown check `secret`"), "{err}");
        assert!(err.contains("secrets"), "{err}");
        assert_eq!(
            CheckId::parse_list("secrets, syntax,").unwrap(),
            vec![CheckId::Secrets, CheckId::Syntax]
        );
    }

    #[test]
    fn location_joins_the_parts_that_exist() {
        let mut f = Finding::new(CheckId::Syntax, "a.yaml", Some(3), "m", "f");
        assert_eq!(f.location(), "a.yaml:3");
        f.column = Some(7);
        assert_eq!(f.location(), "a.yaml:3:7");
        f.line = None;
        assert_eq!(f.location(), "a.yaml");
    }
}
