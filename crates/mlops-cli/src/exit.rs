//! Exit codes, decided in one place: `0` success, `1` what ran or was checked failed, `2` usage or
//! configuration error, `3` runtime failure (I/O, network, cluster).

use std::fmt;

/// What a command that worked found: success (exit 0) or a failed check, stage, gate (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything ran and passed.
    Success,
    /// The tool worked and what it ran or checked failed.
    Failure,
}

impl Outcome {
    /// `Success` when `passed`, else `Failure`.
    pub(crate) fn from_passed(passed: bool) -> Self {
        if passed { Self::Success } else { Self::Failure }
    }
}

/// The exit code class of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ExitKind {
    /// Bad flag, malformed file, unknown name: exit 2.
    Usage = 2,
    /// I/O, network, cluster: exit 3.
    Runtime = 3,
}

/// An error with its exit code class attached. Unclassified errors exit 3.
#[derive(Debug)]
pub(crate) struct Classified {
    kind: ExitKind,
    inner: anyhow::Error,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.inner)
    }
}

impl std::error::Error for Classified {}

/// Marks `err` as a usage or configuration error (exit 2).
pub(crate) fn usage(err: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        kind: ExitKind::Usage,
        inner: err.into(),
    })
}

/// Marks `err` as a runtime failure (exit 3).
pub(crate) fn runtime(err: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        kind: ExitKind::Runtime,
        inner: err.into(),
    })
}

/// Marks `err` as usage (exit 2) when `is_usage`, else runtime (exit 3).
pub(crate) fn classify(err: impl Into<anyhow::Error>, is_usage: bool) -> anyhow::Error {
    if is_usage { usage(err) } else { runtime(err) }
}

/// The exit code class of `err`: the outermost classification wins; unclassified is runtime.
pub(crate) fn kind_of(err: &anyhow::Error) -> ExitKind {
    err.chain()
        .find_map(|e| e.downcast_ref::<Classified>())
        .map_or(ExitKind::Runtime, |c| c.kind)
}

/// The message printed after `error: `: the whole cause chain, joined by `: `.
pub(crate) fn render(err: &anyhow::Error) -> String {
    format!("{err:#}")
}
