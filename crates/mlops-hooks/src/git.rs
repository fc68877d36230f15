//! The few Git plumbing commands the hooks need, each run once per invocation: `ls-files`,
//! `diff --name-status`, `ls-tree`, and one `cat-file --batch` for every blob.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// An entry of the index or a tree: mode, object id and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Octal mode: `100644`, `100755`, `120000` (symlink), `160000` (submodule).
    pub(crate) mode: u32,
    /// The blob id.
    pub(crate) oid: String,
    /// Merge stage (0 when not conflicted).
    pub(crate) stage: u8,
    /// Repository-relative path.
    pub(crate) path: String,
}

impl Entry {
    /// A regular file (not a symlink or a submodule).
    pub(crate) fn is_file(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
}

/// A repository found by `git rev-parse`.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    pub(crate) root: PathBuf,
}

impl Git {
    /// The repository containing `dir`, or `None` when `dir` is not inside one.
    pub(crate) fn discover(dir: &Path) -> Result<Option<Git>> {
        let out = Command::new("git")
            .args(["rev-parse", "--show-toplevel"])
            .current_dir(dir)
            .output()
            .map_err(|source| Error::GitSpawn { source })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("not a git repository") {
                return Ok(None);
            }
            return Err(Error::Git {
                args: "rev-parse --show-toplevel".into(),
                stderr: stderr.trim().to_owned(),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(Some(Git {
            root: PathBuf::from(text.trim_end_matches(['\n', '\r'])),
        }))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(&self.root);
        cmd
    }

    /// Runs git and returns stdout, failing on a non-zero exit.
    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .command(args)
            .output()
            .map_err(|source| Error::GitSpawn { source })?;
        if !out.status.success() {
            return Err(Error::Git {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// Every index entry (`git ls-files --stage -z`).
    pub(crate) fn index(&self) -> Result<Vec<Entry>> {
        let out = self.run(&["ls-files", "--stage", "-z"])?;
        Ok(split_z(&out).filter_map(parse_ls_files).collect())
    }

    /// Paths and statuses of staged changes, pre-commit's filter (`ACMRTUXB`, renames split).
    pub(crate) fn staged(&self) -> Result<Vec<(u8, String)>> {
        let out = self.run(&[
            "diff",
            "--staged",
            "--name-status",
            "--no-renames",
            "--no-ext-diff",
            "-z",
            "--diff-filter=ACMRTUXB",
        ])?;
        Ok(parse_name_status(&out))
    }

    /// Paths added in the index (`--diff-filter=A`), for the large-files check.
    pub(crate) fn staged_added(&self) -> Result<Vec<String>> {
        let out = self.run(&[
            "diff",
            "--staged",
            "--name-only",
            "--no-renames",
            "--no-ext-diff",
            "-z",
            "--diff-filter=A",
        ])?;
        Ok(split_z(&out)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }

    /// Fails with [`Error::BadRef`] unless `rev` names a commit.
    pub(crate) fn verify_commit(&self, rev: &str) -> Result<()> {
        let spec = format!("{rev}^{{commit}}");
        let ok = self
            .command(&["rev-parse", "--verify", "--quiet", &spec])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| Error::GitSpawn { source })?
            .success();
        if ok {
            Ok(())
        } else {
            Err(Error::BadRef {
                rev: rev.to_owned(),
            })
        }
    }

    /// Paths and statuses changed between the merge base of `from` and `to` (`from...to`).
    pub(crate) fn diff_refs(&self, from: &str, to: &str) -> Result<Vec<(u8, String)>> {
        let range = format!("{from}...{to}");
        let out = self.run(&[
            "diff",
            "--name-status",
            "--no-renames",
            "--no-ext-diff",
            "-z",
            "--diff-filter=ACMRTUXB",
            &range,
            "--",
        ])?;
        Ok(parse_name_status(&out))
    }

    /// Every file of the tree of `rev` (`git ls-tree -r -z`).
    pub(crate) fn tree(&self, rev: &str) -> Result<Vec<Entry>> {
        let out = self.run(&["ls-tree", "-r", "-z", "--full-tree", rev])?;
        Ok(split_z(&out).filter_map(parse_ls_tree).collect())
    }

    /// The current branch, `None` on a detached HEAD. Works before the first commit.
    pub(crate) fn current_branch(&self) -> Result<Option<String>> {
        let out = self
            .command(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .output()
            .map_err(|source| Error::GitSpawn { source })?;
        if !out.status.success() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    /// The hooks folder (honours `core.hooksPath` and worktrees).
    pub(crate) fn hooks_dir(&self) -> Result<PathBuf> {
        let out = self.run(&["rev-parse", "--git-path", "hooks"])?;
        let p = PathBuf::from(String::from_utf8_lossy(&out).trim());
        Ok(if p.is_absolute() {
            p
        } else {
            self.root.join(p)
        })
    }

    /// The contents of `oids`, in order, from one `git cat-file --batch`.
    pub(crate) fn blobs(&self, oids: &[&str]) -> Result<Vec<Vec<u8>>> {
        if oids.is_empty() {
            return Ok(Vec::new());
        }
        let mut child = self
            .command(&["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::GitSpawn { source })?;
        let mut stdin = child.stdin.take().ok_or_else(|| Error::Git {
            args: "cat-file --batch".into(),
            stderr: "no stdin".into(),
        })?;
        let request: Vec<u8> = oids.iter().flat_map(|o| o.bytes().chain([b'\n'])).collect();
        // Written from another thread so git never blocks on a full stdout pipe.
        let writer = std::thread::spawn(move || stdin.write_all(&request));
        let stdout = child.stdout.take().ok_or_else(|| Error::Git {
            args: "cat-file --batch".into(),
            stderr: "no stdout".into(),
        })?;
        let mut reader = BufReader::with_capacity(1 << 20, stdout);
        let mut blobs = Vec::with_capacity(oids.len());
        let mut header = String::new();
        for oid in oids {
            header.clear();
            reader
                .read_line(&mut header)
                .map_err(|e| Error::io("git cat-file", e))?;
            let mut parts = header.trim_end().split(' ');
            let (_, kind, size) = (parts.next(), parts.next(), parts.next());
            let size: usize = match (kind, size.and_then(|s| s.parse().ok())) {
                (Some("blob"), Some(size)) => size,
                _ => {
                    let _ = child.kill();
                    return Err(Error::CatFile {
                        oid: (*oid).to_owned(),
                        answer: header.trim_end().to_owned(),
                    });
                }
            };
            let mut data = vec![0; size + 1];
            reader
                .read_exact(&mut data)
                .map_err(|e| Error::io("git cat-file", e))?;
            data.truncate(size);
            blobs.push(data);
        }
        drop(reader);
        let _ = writer.join();
        let _ = child.wait();
        Ok(blobs)
    }
}

fn split_z(out: &[u8]) -> impl Iterator<Item = &[u8]> {
    out.split(|b| *b == 0).filter(|s| !s.is_empty())
}

fn parse_ls_files(rec: &[u8]) -> Option<Entry> {
    // "<mode> <oid> <stage>\t<path>"
    let tab = memchr::memchr(b'\t', rec)?;
    let head = std::str::from_utf8(&rec[..tab]).ok()?;
    let mut parts = head.split(' ');
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let oid = parts.next()?.to_owned();
    let stage = parts.next()?.parse().ok()?;
    let path = String::from_utf8_lossy(&rec[tab + 1..]).into_owned();
    Some(Entry {
        mode,
        oid,
        stage,
        path,
    })
}

fn parse_ls_tree(rec: &[u8]) -> Option<Entry> {
    // "<mode> <type> <oid>\t<path>"
    let tab = memchr::memchr(b'\t', rec)?;
    let head = std::str::from_utf8(&rec[..tab]).ok()?;
    let mut parts = head.split(' ');
    let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
    let kind = parts.next()?;
    let oid = parts.next()?.to_owned();
    if kind != "blob" {
        return None;
    }
    let path = String::from_utf8_lossy(&rec[tab + 1..]).into_owned();
    Some(Entry {
        mode,
        oid,
        stage: 0,
        path,
    })
}

fn parse_name_status(out: &[u8]) -> Vec<(u8, String)> {
    let mut items = split_z(out);
    let mut result = Vec::new();
    while let (Some(status), Some(path)) = (items.next(), items.next()) {
        let code = status.first().copied().unwrap_or(b'M');
        result.push((code, String::from_utf8_lossy(path).into_owned()));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plumbing_records_parse() {
        let e = parse_ls_files(b"100644 abc 0\tdir/a b.txt").unwrap();
        assert_eq!(
            (e.mode, e.oid.as_str(), e.stage, e.path.as_str()),
            (0o100644, "abc", 0, "dir/a b.txt")
        );
        assert!(e.is_file());
        let link = parse_ls_files(b"120000 abc 0\tlink").unwrap();
        assert!(!link.is_file());
        assert!(parse_ls_tree(b"160000 commit abc\tsub").is_none());
        assert_eq!(parse_ls_tree(b"100755 blob def\tx.sh").unwrap().oid, "def");
        assert_eq!(
            parse_name_status(b"A\0new.py\0M\0old.py\0"),
            vec![(b'A', "new.py".to_owned()), (b'M', "old.py".to_owned())]
        );
    }
}
