//! A run: select files, read each once, run every enabled content check on it in parallel,
//! then the repository-wide checks; optionally repair what can be repaired.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tracing::{debug, instrument};

use crate::check::{CheckId, Finding, Report, Skipped, Source};
use crate::config::{DEFAULT_BASELINE, Excludes, HooksConfig};
use crate::error::{Error, Result};
use crate::fix;
use crate::git::{Entry, Git};
use crate::notebook;
use crate::pointers::{self, PointerFile};
use crate::secrets::{Baseline, BaselineEntry, SecretScanner};
use crate::syntax::{self, Format};

/// Which files a run looks at, with pre-commit's semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Files staged for the next commit (added, copied, modified, renamed, type-changed),
    /// read from the index: unstaged edits neither hide nor cause findings.
    Staged,
    /// Every tracked file, read from the working tree.
    AllFiles,
    /// Files changed in `from...to` (since their merge base), read from the `to` commit.
    Refs {
        /// The base revision.
        from: String,
        /// The tip revision.
        to: String,
    },
    /// These files, read from the working tree; works outside Git too. Relative paths are
    /// relative to the run's directory.
    Files(Vec<PathBuf>),
}

/// Runs the checks. Build with [`Runner::new`], adjust with the builder methods, then
/// [`Runner::run`].
#[derive(Debug, Clone)]
pub struct Runner {
    dir: PathBuf,
    config: Option<HooksConfig>,
    selection: Selection,
    fix: bool,
    only: Vec<CheckId>,
    skip: Vec<CheckId>,
    update_baseline: bool,
}

#[derive(Debug, Clone, Copy)]
enum Origin {
    Worktree,
    Blob(usize),
}

#[derive(Debug)]
struct Candidate {
    path: String,
    origin: Origin,
    added: bool,
}

/// Everything the per-file work shares.
struct Context<'a> {
    root: &'a Path,
    config: &'a HooksConfig,
    enabled: BTreeSet<CheckId>,
    excludes: HashMap<CheckId, Excludes>,
    scanner: Option<SecretScanner>,
    fix: bool,
    enforce_all: bool,
}

impl Context<'_> {
    fn wants(&self, check: CheckId, path: &str) -> bool {
        self.enabled.contains(&check) && !self.excludes.get(&check).is_some_and(|e| e.matches(path))
    }
}

impl Runner {
    /// A run in `dir` (the repository or any folder inside it), on staged files, with the
    /// configuration from `mlops.toml` at the repository root.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            config: None,
            selection: Selection::Staged,
            fix: false,
            only: Vec::new(),
            skip: Vec::new(),
            update_baseline: false,
        }
    }

    /// Uses this configuration instead of reading `mlops.toml`.
    pub fn config(mut self, config: HooksConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Which files to check (default: staged).
    pub fn selection(mut self, selection: Selection) -> Self {
        self.selection = selection;
        self
    }

    /// Repair what can be repaired (whitespace, end of file, line endings, notebooks) in the
    /// working tree.
    pub fn fix(mut self, fix: bool) -> Self {
        self.fix = fix;
        self
    }

    /// Runs only these checks (among the enabled ones); empty means all.
    pub fn only(mut self, checks: Vec<CheckId>) -> Self {
        self.only = checks;
        self
    }

    /// Does not run these checks.
    pub fn skip(mut self, checks: Vec<CheckId>) -> Self {
        self.skip = checks;
        self
    }

    /// Adds every secret found to the baseline file instead of reporting it.
    pub fn update_baseline(mut self, update: bool) -> Self {
        self.update_baseline = update;
        self
    }

    /// Selects the files, runs the checks and returns what they found.
    ///
    /// # Errors
    /// [`Error::NotAGitRepo`] for a Git selection outside a repository, [`Error::BadRef`],
    /// [`Error::BadPath`] for a named file that does not exist, [`Error::Config`] for a malformed
    /// `[hooks]`, [`Error::Git`]/[`Error::Io`] when Git or the file system fails.
    #[instrument(skip_all, fields(dir = %self.dir.display()))]
    pub fn run(&self) -> Result<Report> {
        let git = Git::discover(&self.dir)?;
        let root = match &git {
            Some(g) => g.root.clone(),
            None => self.dir.clone(),
        };
        let config = match &self.config {
            Some(c) => c.clone(),
            None => HooksConfig::load(&root)?,
        };
        let enabled: BTreeSet<CheckId> = CheckId::ALL
            .into_iter()
            .filter(|c| config.enabled(*c))
            .filter(|c| self.only.is_empty() || self.only.contains(c))
            .filter(|c| !self.skip.contains(c))
            .collect();
        let mut skipped = Vec::new();

        let picked = self.pick(git.as_ref(), &root, &config, &enabled)?;
        let global = Excludes::new(&config.exclude);
        let candidates: Vec<Candidate> = picked
            .candidates
            .into_iter()
            .filter(|c| !global.matches(&c.path))
            .collect();
        debug!(
            files = candidates.len(),
            blobs = picked.oids.len(),
            "selected"
        );

        let blobs = match &git {
            Some(g) => {
                let oids: Vec<&str> = picked.oids.iter().map(String::as_str).collect();
                g.blobs(&oids)?
            }
            None => Vec::new(),
        };

        let excludes = CheckId::ALL
            .into_iter()
            .map(|c| (c, Excludes::new(config.excludes_of(c))))
            .filter(|(_, e)| !e.is_empty())
            .collect();
        let scanner = if enabled.contains(&CheckId::Secrets) {
            Some(SecretScanner::new(&config.secrets.disable_rules)?)
        } else {
            None
        };
        let ctx = Context {
            root: &root,
            config: &config,
            enabled: enabled.clone(),
            excludes,
            scanner,
            fix: self.fix,
            enforce_all: config.large_files.enforce_all || picked.all_added,
        };

        let results: Vec<Result<FileResult>> = candidates
            .par_iter()
            .map(|c| {
                let blob = match c.origin {
                    Origin::Blob(i) => blobs.get(i).map(Vec::as_slice),
                    Origin::Worktree => None,
                };
                check_file(&ctx, c, blob)
            })
            .collect();
        let mut findings = Vec::new();
        let mut fixed_files = Vec::new();
        let mut pointer_contents = Vec::with_capacity(results.len());
        for r in results {
            let r = r?;
            findings.extend(r.findings);
            fixed_files.extend(r.fixed);
            pointer_contents.push(r.pointer);
        }

        if enabled.contains(&CheckId::CaseConflict) {
            let selected: Vec<&str> = candidates.iter().map(|c| c.path.as_str()).collect();
            findings.extend(case_conflicts(&picked.all_paths, &selected, &ctx));
        }
        if enabled.contains(&CheckId::NoCommitToBranch) {
            match (&git, &self.selection) {
                (Some(g), Selection::Staged | Selection::AllFiles) => {
                    findings.extend(protected_branch(g, &config)?);
                }
                _ => skipped.push(Skipped {
                    check: CheckId::NoCommitToBranch,
                    reason: "only checked for staged files or --all-files in a git repository"
                        .into(),
                }),
            }
        }
        if enabled.contains(&CheckId::StalePointers) {
            if matches!(self.selection, Selection::Refs { .. }) {
                skipped.push(Skipped {
                    check: CheckId::StalePointers,
                    reason: "not checked for --from-ref/--to-ref (it compares the working tree and the local cache)".into(),
                });
            } else {
                let mut pointers: Vec<PointerFile> = Vec::new();
                let mut seen = HashSet::new();
                for (c, content) in candidates.iter().zip(pointer_contents) {
                    if pointers::is_pointer(&c.path) {
                        seen.insert(c.path.clone());
                        pointers.push(PointerFile {
                            path: c.path.clone(),
                            content,
                            selected: true,
                        });
                    }
                }
                for p in picked
                    .all_paths
                    .iter()
                    .filter(|p| pointers::is_pointer(p) && !seen.contains(*p))
                {
                    pointers.push(PointerFile {
                        path: p.clone(),
                        content: None,
                        selected: false,
                    });
                }
                match pointers::check(&root, &pointers, ctx.excludes.get(&CheckId::StalePointers))?
                {
                    pointers::Outcome::Ran(f) => findings.extend(f),
                    pointers::Outcome::Skipped(reason) => {
                        skipped.push(Skipped {
                            check: CheckId::StalePointers,
                            reason,
                        });
                    }
                }
            }
        }

        let baselined = self.apply_baseline(&root, &config, &mut findings)?;
        findings.sort_by(|a, b| {
            (a.check, &a.path, a.line, a.column).cmp(&(b.check, &b.path, b.line, b.column))
        });
        fixed_files.sort();
        Ok(Report {
            files_checked: candidates.len(),
            source: picked.source,
            checks: enabled.into_iter().collect(),
            skipped,
            findings,
            fixed_files,
            baselined,
        })
    }

    fn apply_baseline(
        &self,
        root: &Path,
        config: &HooksConfig,
        findings: &mut Vec<Finding>,
    ) -> Result<usize> {
        let path = root.join(
            config
                .secrets
                .baseline
                .as_deref()
                .unwrap_or(Path::new(DEFAULT_BASELINE)),
        );
        let mut baseline = Baseline::load(&path)?;
        let before = findings.len();
        if self.update_baseline {
            let mut added = false;
            for f in findings.iter().filter(|f| f.check == CheckId::Secrets) {
                if let Some(fp) = &f.fingerprint {
                    let rule = f.message.split(':').next().unwrap_or("").to_owned();
                    added |= baseline.entries.insert(BaselineEntry {
                        rule,
                        path: f.path.clone(),
                        fingerprint: fp.clone(),
                    });
                }
            }
            if added {
                baseline.save(&path)?;
            }
        }
        findings.retain(|f| {
            f.check != CheckId::Secrets
                || !f
                    .fingerprint
                    .as_deref()
                    .is_some_and(|fp| baseline.contains(fp))
        });
        Ok(before - findings.len())
    }

    fn pick(
        &self,
        git: Option<&Git>,
        root: &Path,
        config: &HooksConfig,
        enabled: &BTreeSet<CheckId>,
    ) -> Result<Picked> {
        let need_git = |git: Option<&Git>| {
            git.cloned().ok_or_else(|| Error::NotAGitRepo {
                dir: self.dir.clone(),
            })
        };
        let needs_added = enabled.contains(&CheckId::LargeFiles) && !config.large_files.enforce_all;
        match &self.selection {
            Selection::Staged => {
                let g = need_git(git)?;
                let index = g.index()?;
                let by_path: HashMap<&str, &Entry> = index
                    .iter()
                    .filter(|e| e.stage == 0)
                    .map(|e| (e.path.as_str(), e))
                    .collect();
                let mut oids = Vec::new();
                let mut candidates = Vec::new();
                for (status, path) in g.staged()? {
                    let added = status == b'A';
                    let origin = match by_path.get(path.as_str()) {
                        Some(e) if e.is_file() => {
                            oids.push(e.oid.clone());
                            Origin::Blob(oids.len() - 1)
                        }
                        Some(_) => continue, // symlink or submodule: no content to check
                        None if status == b'U' => Origin::Worktree,
                        None => continue,
                    };
                    candidates.push(Candidate {
                        path,
                        origin,
                        added,
                    });
                }
                Ok(Picked {
                    all_paths: dedup_paths(&index),
                    candidates,
                    oids,
                    source: Source::Index,
                    all_added: false,
                })
            }
            Selection::AllFiles => {
                let g = need_git(git)?;
                let index = g.index()?;
                let added: HashSet<String> = if needs_added {
                    g.staged_added()?.into_iter().collect()
                } else {
                    HashSet::new()
                };
                let mut seen = HashSet::new();
                let candidates = index
                    .iter()
                    .filter(|e| e.is_file() && seen.insert(e.path.as_str()))
                    .map(|e| Candidate {
                        path: e.path.clone(),
                        origin: Origin::Worktree,
                        added: added.contains(&e.path),
                    })
                    .collect();
                Ok(Picked {
                    all_paths: dedup_paths(&index),
                    candidates,
                    oids: Vec::new(),
                    source: Source::WorkingTree,
                    all_added: false,
                })
            }
            Selection::Refs { from, to } => {
                let g = need_git(git)?;
                g.verify_commit(from)?;
                g.verify_commit(to)?;
                let tree = g.tree(to)?;
                let by_path: HashMap<&str, &Entry> =
                    tree.iter().map(|e| (e.path.as_str(), e)).collect();
                let mut oids = Vec::new();
                let mut candidates = Vec::new();
                for (status, path) in g.diff_refs(from, to)? {
                    let Some(e) = by_path.get(path.as_str()).filter(|e| e.is_file()) else {
                        continue;
                    };
                    oids.push(e.oid.clone());
                    candidates.push(Candidate {
                        path,
                        origin: Origin::Blob(oids.len() - 1),
                        added: status == b'A',
                    });
                }
                Ok(Picked {
                    all_paths: dedup_paths(&tree),
                    candidates,
                    oids,
                    source: Source::Commit,
                    all_added: false,
                })
            }
            Selection::Files(files) => {
                let mut candidates = Vec::new();
                for file in files {
                    let abs = if file.is_absolute() {
                        file.clone()
                    } else {
                        self.dir.join(file)
                    };
                    let meta = std::fs::symlink_metadata(&abs).map_err(|e| Error::BadPath {
                        path: file.clone(),
                        reason: if e.kind() == std::io::ErrorKind::NotFound {
                            "no such file".into()
                        } else {
                            e.to_string()
                        },
                    })?;
                    if meta.is_dir() {
                        return Err(Error::BadPath {
                            path: file.clone(),
                            reason: "is a directory, not a file".into(),
                        });
                    }
                    if meta.file_type().is_symlink() {
                        continue;
                    }
                    candidates.push(Candidate {
                        path: relative_to(root, &abs),
                        origin: Origin::Worktree,
                        added: false,
                    });
                }
                let (all_paths, all_added) = match git {
                    Some(g) => {
                        let index = g.index()?;
                        if needs_added {
                            let added: HashSet<String> = g.staged_added()?.into_iter().collect();
                            for c in &mut candidates {
                                c.added = added.contains(&c.path);
                            }
                        }
                        (dedup_paths(&index), false)
                    }
                    // Outside Git nothing is "added": every named file is held to the limits.
                    None => (Vec::new(), true),
                };
                Ok(Picked {
                    all_paths,
                    candidates,
                    oids: Vec::new(),
                    source: Source::WorkingTree,
                    all_added,
                })
            }
        }
    }
}

/// The folder whose `mlops.toml` configures runs started in `dir`: the Git work tree root, or
/// `dir` itself outside Git.
///
/// # Errors
/// [`Error::GitSpawn`] when git cannot run; [`Error::Git`] when it fails for another reason
/// than `dir` not being in a repository.
pub fn config_root(dir: &Path) -> Result<PathBuf> {
    Ok(Git::discover(dir)?.map_or_else(|| dir.to_owned(), |g| g.root))
}

struct Picked {
    /// Every path in the index or tree (for case conflicts).
    all_paths: Vec<String>,
    candidates: Vec<Candidate>,
    oids: Vec<String>,
    source: Source,
    /// Every candidate counts as added for the large-files check.
    all_added: bool,
}

fn dedup_paths(entries: &[Entry]) -> Vec<String> {
    let mut seen = HashSet::new();
    entries
        .iter()
        .filter(|e| seen.insert(e.path.as_str()))
        .map(|e| e.path.clone())
        .collect()
}

fn relative_to(root: &Path, abs: &Path) -> String {
    let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let canon = abs
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .and_then(|p| abs.file_name().map(|n| p.join(n)))
        .unwrap_or_else(|| abs.to_owned());
    let rel = canon.strip_prefix(&canon_root).unwrap_or(&canon);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Files bigger than this are first probed for binary content before being read whole.
const PROBE_ABOVE: u64 = 1 << 20;
/// Git's heuristic: a NUL byte in the first 8000 bytes means binary.
const BINARY_PROBE: usize = 8000;

enum Content<'a> {
    Text(std::borrow::Cow<'a, [u8]>),
    Binary,
}

fn load(path: &Path) -> Result<Option<(Content<'static>, u64)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        // Deleted in the working tree but still tracked: nothing to check.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 26) + 1);
    if size > PROBE_ABOVE {
        let mut probe = vec![0; BINARY_PROBE];
        let n = read_full(&mut file, &mut probe).map_err(|e| Error::io(path, e))?;
        if memchr::memchr(0, &probe[..n]).is_some() {
            return Ok(Some((Content::Binary, size)));
        }
        data.extend_from_slice(&probe[..n]);
    }
    file.read_to_end(&mut data)
        .map_err(|e| Error::io(path, e))?;
    let size = data.len() as u64;
    Ok(Some((classify(std::borrow::Cow::Owned(data)), size)))
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn classify(data: std::borrow::Cow<'_, [u8]>) -> Content<'_> {
    let head = &data[..data.len().min(BINARY_PROBE)];
    if memchr::memchr(0, head).is_some() {
        Content::Binary
    } else {
        Content::Text(data)
    }
}

/// What one file gave.
#[derive(Debug, Default)]
struct FileResult {
    findings: Vec<Finding>,
    /// The path, when `--fix` rewrote the file.
    fixed: Option<String>,
    /// A pointer file's checked content (index or commit blobs only), for `stale-pointers`.
    pointer: Option<Vec<u8>>,
}

/// Reads one file and runs every content check on it.
fn check_file(ctx: &Context<'_>, c: &Candidate, blob: Option<&[u8]>) -> Result<FileResult> {
    let abs = ctx.root.join(&c.path);
    let (content, size) = match blob {
        Some(b) => (classify(std::borrow::Cow::Borrowed(b)), b.len() as u64),
        None => match load(&abs)? {
            Some(x) => x,
            None => return Ok(FileResult::default()),
        },
    };
    let mut out = Vec::new();
    let path = c.path.as_str();
    let pointer = blob
        .filter(|_| pointers::is_pointer(path))
        .map(<[u8]>::to_vec);

    if ctx.wants(CheckId::LargeFiles, path) && (c.added || ctx.enforce_all) {
        out.extend(large_file(ctx.config, path, size));
    }
    let Content::Text(data) = content else {
        return Ok(FileResult {
            findings: out,
            fixed: None,
            pointer,
        });
    };
    let data: &[u8] = &data;

    if let Some(scanner) = ctx
        .scanner
        .as_ref()
        .filter(|_| ctx.wants(CheckId::Secrets, path))
    {
        for m in scanner.scan(data) {
            let mut f = Finding::new(
                CheckId::Secrets,
                path,
                Some(m.line),
                format!("{}: {} {}", m.rule.id, m.rule.description, m.redacted),
                format!(
                    "remove it from the file and {}; if it is not a secret, add `mlops:allow-secret` to the line or accept it with `mlops hooks run --update-baseline`",
                    m.rule.rotate
                ),
            );
            f.column = Some(m.column);
            f.fingerprint = Some(m.fingerprint(path));
            out.push(f);
        }
    }
    if ctx.wants(CheckId::MergeConflict, path) {
        let lines = conflict_lines(data);
        if let Some(first) = lines.first() {
            out.push(Finding::new(
                CheckId::MergeConflict,
                path,
                Some(*first),
                format!("merge-conflict markers on {}", list_lines(&lines)),
                "resolve the conflict, remove the markers, then add the file again",
            ));
        }
    }
    let format = Format::of(path);
    if let Some(format) = format.filter(|_| ctx.wants(CheckId::Syntax, path))
        && let Err(e) = syntax::check(format, data)
    {
        let mut f = Finding::new(
            CheckId::Syntax,
            path,
            e.line,
            format!("{} does not parse: {}", format_name(format), e.message),
            "fix the syntax at the reported line and column",
        );
        f.column = e.column;
        out.push(f);
    }

    // Fixable checks: find first; repair (all at once, one write) only with --fix.
    let mut fixable = Vec::new();
    let mut stripped_notebook: Option<Vec<u8>> = None;
    if path.to_ascii_lowercase().ends_with(".ipynb")
        && ctx.wants(CheckId::NotebookOutputs, path)
        && let Ok(mut nb) = serde_json::from_slice::<serde_json::Value>(data)
    {
        let s = notebook::strip(&mut nb, &ctx.config.notebook_outputs);
        if s.any() {
            fixable.push(Finding::new(
                CheckId::NotebookOutputs,
                path,
                None,
                format!("notebook has {}", s.describe()),
                "`mlops hooks run --fix` strips them (nbstripout's defaults); put \"keep_output\": true in a cell's metadata to keep its output",
            ));
            if ctx.fix {
                stripped_notebook = Some(notebook::to_jupyter_json(&nb));
            }
        }
    }
    let trailing = ctx.wants(CheckId::TrailingWhitespace, path);
    if trailing {
        let lines = fix::trailing_whitespace_lines(data);
        if let Some(first) = lines.first() {
            fixable.push(Finding::new(
                CheckId::TrailingWhitespace,
                path,
                Some(*first),
                format!("trailing whitespace on {}", list_lines(&lines)),
                "`mlops hooks run --fix` removes it",
            ));
        }
    }
    let mixed = ctx.wants(CheckId::MixedLineEnding, path);
    if mixed {
        let (crlf, lf, cr) = fix::line_endings(data);
        if [crlf, lf, cr].iter().filter(|n| **n > 0).count() > 1 {
            fixable.push(Finding::new(
                CheckId::MixedLineEnding,
                path,
                None,
                format!("mixed line endings: {crlf} CRLF, {lf} LF, {cr} CR"),
                "`mlops hooks run --fix` converts every line to the most common ending",
            ));
        }
    }
    let eof = ctx.wants(CheckId::EndOfFile, path);
    if eof && fix::fix_end_of_file(data).is_some() {
        let last_is_newline = matches!(data.last(), Some(b'\n' | b'\r'));
        let msg = if !last_is_newline {
            "no newline at the end of the file"
        } else if data.iter().all(|b| *b == b'\n' || *b == b'\r') {
            "the file has only blank lines"
        } else {
            "blank lines at the end of the file"
        };
        let line = memchr::memchr_iter(b'\n', data).count() + usize::from(!last_is_newline);
        fixable.push(Finding::new(
            CheckId::EndOfFile,
            path,
            Some(line.max(1)),
            msg,
            "end the file with exactly one newline (`mlops hooks run --fix` does it)",
        ));
    }

    let mut fixed_path = None;
    if ctx.fix && !fixable.is_empty() {
        let mut new = stripped_notebook.unwrap_or_else(|| data.to_vec());
        if trailing {
            new = fix::strip_trailing_whitespace(&new);
        }
        if mixed && let Some(f) = fix::fix_mixed_line_endings(&new) {
            new = f;
        }
        if eof && let Some(f) = fix::fix_end_of_file(&new) {
            new = f;
        }
        if new != data {
            // Content from the index or a commit is only repaired in the working tree when the
            // working file is that same content; otherwise the fix would lose unstaged edits.
            let same = blob.is_none() || std::fs::read(&abs).map(|w| w == data).unwrap_or(false);
            if same {
                fix::write_atomic(&abs, &new)?;
                for f in &mut fixable {
                    f.fixed = true;
                }
                fixed_path = Some(c.path.clone());
            } else {
                for f in &mut fixable {
                    f.fix.push_str(
                        " (not fixed: the working file differs from the checked content)",
                    );
                }
            }
        }
    }
    out.extend(fixable);
    Ok(FileResult {
        findings: out,
        fixed: fixed_path,
        pointer,
    })
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Yaml => "YAML",
        Format::Json => "JSON",
        Format::Toml => "TOML",
    }
}

fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", (b / 1024.0).ceil())
    }
}

fn large_file(config: &HooksConfig, path: &str, size: u64) -> Option<Finding> {
    let lf = &config.large_files;
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let is_model = ext.is_some_and(|e| {
        lf.model_extensions
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&e))
    });
    let limit_kib = if is_model {
        lf.model_max_kib.min(lf.max_kib)
    } else {
        lf.max_kib
    };
    if size <= limit_kib.saturating_mul(1024) {
        return None;
    }
    let (what, fix) = if is_model {
        (
            "model and data files",
            format!("track it with `mlops add {path}` and commit the pointer file instead"),
        )
    } else {
        (
            "files",
            format!(
                "track it with `mlops add {path}`, make it smaller, or raise [hooks.large-files] max-kib"
            ),
        )
    };
    Some(Finding::new(
        CheckId::LargeFiles,
        path,
        None,
        format!(
            "{} is over the {limit_kib} KiB limit for {what}",
            human_size(size)
        ),
        fix,
    ))
}

/// `line 3` or `lines 3, 7, 9 and 4 more`.
fn list_lines(lines: &[usize]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = lines.iter().take(SHOWN).map(ToString::to_string).collect();
    let more = lines.len().saturating_sub(SHOWN);
    match (lines.len(), more) {
        (1, _) => format!("line {}", shown[0]),
        (_, 0) => format!("lines {}", shown.join(", ")),
        _ => format!("lines {} and {more} more", shown.join(", ")),
    }
}

/// 1-based lines holding conflict markers. `=======` and `|||||||` count only inside a
/// `<<<<<<<` block, so Markdown and reStructuredText underlines do not.
fn conflict_lines(data: &[u8]) -> Vec<usize> {
    if memchr::memmem::find(data, b"<<<<<<<").is_none()
        && memchr::memmem::find(data, b">>>>>>>").is_none()
    {
        return Vec::new();
    }
    let marker = |line: &[u8], m: &[u8]| {
        line.starts_with(m) && (line.len() == m.len() || line[m.len()] == b' ')
    };
    let mut found = Vec::new();
    let mut inside = false;
    for (no, raw) in data.split(|b| *b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if marker(line, b"<<<<<<<") {
            inside = true;
            found.push(no + 1);
        } else if marker(line, b">>>>>>>") {
            inside = false;
            found.push(no + 1);
        } else if inside && (marker(line, b"=======") || marker(line, b"|||||||")) {
            found.push(no + 1);
        }
    }
    found
}

fn case_conflicts(all: &[String], selected: &[&str], ctx: &Context<'_>) -> Vec<Finding> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for p in all
        .iter()
        .map(String::as_str)
        .chain(selected.iter().copied())
    {
        names.insert(p);
        let mut rest = p;
        while let Some((dir, _)) = rest.rsplit_once('/') {
            names.insert(dir);
            rest = dir;
        }
    }
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for n in names {
        groups.entry(n.to_lowercase()).or_default().push(n);
    }
    let mut out = Vec::new();
    for members in groups.values().filter(|m| m.len() > 1) {
        let involved = selected.iter().find(|s| {
            members
                .iter()
                .any(|m| **s == *m || s.starts_with(&format!("{m}/")))
        });
        let Some(path) = involved else { continue };
        if !ctx.wants(CheckId::CaseConflict, path) {
            continue;
        }
        let list: Vec<String> = members.iter().map(|m| format!("`{m}`")).collect();
        out.push(Finding::new(
            CheckId::CaseConflict,
            path,
            None,
            format!("{} differ only by case", list.join(" and ")),
            "rename one of them: they are the same path on macOS and Windows",
        ));
    }
    out
}

fn protected_branch(git: &Git, config: &HooksConfig) -> Result<Vec<Finding>> {
    let Some(branch) = git.current_branch()? else {
        return Ok(Vec::new());
    };
    let protected = config.protected_branches();
    let hit = protected.iter().any(|p| {
        globset::GlobBuilder::new(p.as_str())
            .literal_separator(true)
            .build()
            .is_ok_and(|g| g.compile_matcher().is_match(&branch))
    });
    if !hit {
        return Ok(Vec::new());
    }
    Ok(vec![Finding::new(
        CheckId::NoCommitToBranch,
        "",
        None,
        format!("committing directly to the protected branch `{branch}`"),
        "create a branch (`git switch -c NAME`), commit there and open a merge request",
    )])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_markers_need_an_opening_marker_for_the_separator() {
        assert_eq!(
            conflict_lines(b"a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> other\n"),
            vec![2, 4, 6]
        );
        assert!(conflict_lines(b"Title\n=======\n\ntext\n").is_empty());
        assert!(conflict_lines(b"x = '<<<<<<<<<<'\n").is_empty());
        assert_eq!(
            conflict_lines(b"<<<<<<<\r\n=======\r\n>>>>>>>\r\n"),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn line_lists_are_short() {
        assert_eq!(list_lines(&[4]), "line 4");
        assert_eq!(list_lines(&[1, 2]), "lines 1, 2");
        assert_eq!(
            list_lines(&[1, 2, 3, 4, 5, 6, 7]),
            "lines 1, 2, 3, 4, 5 and 2 more"
        );
    }

    #[test]
    fn large_file_limits_depend_on_extension() {
        let c = HooksConfig::default();
        assert!(large_file(&c, "a.txt", 400 * 1024).is_none());
        let f = large_file(&c, "a.txt", 600 * 1024).unwrap();
        assert!(
            f.message.contains("over the 500 KiB limit for files"),
            "{}",
            f.message
        );
        let f = large_file(&c, "models/m.PT", 200 * 1024).unwrap();
        assert!(f.fix.contains("mlops add models/m.PT"), "{}", f.fix);
        assert!(
            f.message.contains("100 KiB limit for model and data files"),
            "{}",
            f.message
        );
    }
}
