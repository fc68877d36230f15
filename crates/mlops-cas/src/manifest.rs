//! Directory manifests: the sorted list of a directory's files (relative path, hash, size,
//! executable bit), stored and addressed like any object.
//!
//! **Architecture Invariant:** a manifest from a remote is untrusted. [`Manifest::from_bytes`]
//! rejects absolute paths, `..`, empty or `.` components, backslashes, NUL bytes, unsorted and
//! duplicate entries, so no checkout can write outside its directory. Manifests hold no links.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hash::{Hash, hash_bytes};

/// One file in a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Path relative to the directory, `/`-separated.
    pub path: String,
    /// The file's hash.
    pub hash: Hash,
    /// The file's size in bytes.
    pub size: u64,
    /// Whether the file is executable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exec: bool,
}

/// A directory's content: entries sorted by path, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version, 1.
    pub version: u32,
    /// The files, sorted by `path` (byte order).
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// A manifest of `entries`, sorted; fails on duplicates or unsafe paths.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the offending path.
    pub fn new(mut entries: Vec<ManifestEntry>) -> Result<Self> {
        // A folder listing arrives sorted already; checking is one pass, sorting is more.
        if !entries.is_sorted_by(|a, b| a.path.as_bytes() <= b.path.as_bytes()) {
            entries.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        }
        let m = Self {
            version: 1,
            entries,
        };
        m.validate()?;
        Ok(m)
    }

    /// The canonical bytes of this manifest (what its hash is of).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Exactly what `serde_json::to_vec(self)` writes (a property test holds them equal),
        // written directly: a 20,000-entry manifest is hashed by every `status`. A large one is
        // written in pieces on all cores and joined.
        let mut out = Vec::with_capacity(32 + self.entries.len() * 140);
        out.extend_from_slice(b"{\"version\":");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.extend_from_slice(b",\"entries\":[");
        if self.entries.len() >= PARALLEL_FROM {
            let pieces: Vec<Vec<u8>> = self
                .entries
                .par_chunks(PIECE)
                .enumerate()
                .map(|(i, piece)| {
                    let mut v = Vec::with_capacity(piece.len() * 140);
                    write_entries(&mut v, piece, i > 0);
                    v
                })
                .collect();
            for piece in &pieces {
                out.extend_from_slice(piece);
            }
        } else {
            write_entries(&mut out, &self.entries, false);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// The hash of [`to_bytes`](Self::to_bytes).
    pub fn hash(&self) -> Hash {
        hash_bytes(&self.to_bytes())
    }

    /// Sum of the entries' sizes.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Parses and validates untrusted manifest bytes.
    ///
    /// # Errors
    /// [`Error::Invalid`] for malformed JSON, unsafe paths, duplicates or unsorted entries.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let m: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::Invalid(format!("malformed directory manifest: {e}")))?;
        if m.version != 1 {
            return Err(Error::Invalid(format!(
                "unsupported manifest version {}",
                m.version
            )));
        }
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        let entries = &self.entries;
        if entries.len() < PARALLEL_FROM {
            return check_run(entries);
        }
        // Pieces overlap by one entry so that every neighbouring pair is checked; the first
        // error in entry order is reported, as a single pass would.
        let results: Vec<Result<()>> = (0..entries.len().div_ceil(PIECE))
            .into_par_iter()
            .map(|i| {
                let start = i * PIECE;
                check_run(&entries[start..(start + PIECE + 1).min(entries.len())])
            })
            .collect();
        results.into_iter().collect()
    }

    /// The entry's path under `base`.
    pub fn join(base: &Path, entry: &ManifestEntry) -> PathBuf {
        let mut p = base.to_path_buf();
        p.extend(entry.path.split('/'));
        p
    }
}

/// `s` as a JSON string the way `serde_json` writes it: `"` and `\\` escaped, control
/// characters as `\\b \\t \\n \\f \\r` or `\\u00xx`, everything else as is (UTF-8).
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..0x20 => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(c >> 4)],
                HEX[usize::from(c & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The decimal digits of `n`, written into the end of `buf`.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Manifests with at least this many entries are checked and written in parallel pieces.
const PARALLEL_FROM: usize = 4096;
/// Entries per parallel piece.
const PIECE: usize = 2048;

/// Checks a run of neighbouring entries: each path is safe, each pair is in strictly increasing
/// byte order, and no entry is also the folder of the next (`a` and `a/b`).
fn check_run(entries: &[ManifestEntry]) -> Result<()> {
    for e in entries {
        check_entry_path(&e.path)?;
    }
    for pair in entries.windows(2) {
        let (a, b) = (&pair[0].path, &pair[1].path);
        match a.as_bytes().cmp(b.as_bytes()) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(Error::Invalid(format!(
                    "manifest has a duplicate entry `{a}`"
                )));
            }
            std::cmp::Ordering::Greater => {
                return Err(Error::Invalid(format!(
                    "manifest entries are not sorted (`{a}` before `{b}`)"
                )));
            }
        }
        // A file and a folder of the same name cannot both exist.
        if b.len() > a.len() && b.as_bytes()[a.len()] == b'/' && b.starts_with(a.as_str()) {
            return Err(Error::Invalid(format!(
                "manifest entry `{a}` is both a file and a folder"
            )));
        }
    }
    Ok(())
}

/// Writes the entries as `{...}`, separated by commas, and with one before the first when
/// `after_others` (a piece that continues an earlier one).
fn write_entries(out: &mut Vec<u8>, entries: &[ManifestEntry], after_others: bool) {
    let mut hash = [0u8; 71];
    let mut number = [0u8; 20];
    for (i, e) in entries.iter().enumerate() {
        if i > 0 || after_others {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"path\":");
        write_json_str(out, &e.path);
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(e.hash.text(&mut hash).as_bytes());
        out.extend_from_slice(b"\",\"size\":");
        out.extend_from_slice(format_u64(e.size, &mut number));
        if e.exec {
            out.extend_from_slice(b",\"exec\":true");
        }
        out.push(b'}');
    }
}

fn check_entry_path(path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Invalid(format!(
            "manifest entry `{path}` rejected: {why}"
        )))
    };
    if path.is_empty() {
        return bad("empty path");
    }
    let bytes = path.as_bytes();
    if bytes.first() == Some(&b'/') {
        return bad("absolute path");
    }
    if bytes.iter().any(|&c| c == b'\\' || c == 0) {
        return bad("backslash or NUL in path");
    }
    if bytes.len() >= 2 && bytes[1] == b':' {
        return bad("drive-letter path");
    }
    for part in bytes.split(|&c| c == b'/') {
        match part {
            b"" => return bad("empty path component"),
            b"." => return bad("`.` component"),
            b".." => return bad("`..` leaves the directory"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            hash: hash_bytes(path.as_bytes()),
            size: 3,
            exec: false,
        }
    }

    #[test]
    fn sorted_canonical_and_stable() {
        let a = Manifest::new(vec![entry("b"), entry("a/x"), entry("a-b")]).unwrap();
        let b = Manifest::new(vec![entry("a-b"), entry("b"), entry("a/x")]).unwrap();
        assert_eq!(a.hash(), b.hash());
        let paths: Vec<_> = a.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a-b", "a/x", "b"]);
        assert_eq!(Manifest::from_bytes(&a.to_bytes()).unwrap(), a);
        assert_eq!(a.total_size(), 9);
    }

    #[test]
    fn untrusted_paths_are_rejected() {
        for (bad, why) in [
            ("../etc/passwd", "`..`"),
            ("a/../../b", "`..`"),
            ("/etc/passwd", "absolute"),
            ("a//b", "empty path component"),
            ("./a", "`.` component"),
            ("a\\..\\b", "backslash"),
            ("C:/x", "drive-letter"),
        ] {
            let raw = format!(
                r#"{{"version":1,"entries":[{{"path":{},"hash":"{}","size":1}}]}}"#,
                serde_json::to_string(bad).unwrap(),
                hash_bytes(b"")
            );
            let err = Manifest::from_bytes(raw.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn duplicates_unsorted_and_file_folder_clashes_are_rejected() {
        let h = hash_bytes(b"");
        let raw = |a: &str, b: &str| {
            format!(
                r#"{{"version":1,"entries":[{{"path":"{a}","hash":"{h}","size":1}},{{"path":"{b}","hash":"{h}","size":1}}]}}"#
            )
        };
        assert!(
            Manifest::from_bytes(raw("a", "a").as_bytes())
                .unwrap_err()
                .to_string()
                .contains("duplicate entry `a`")
        );
        assert!(
            Manifest::from_bytes(raw("b", "a").as_bytes())
                .unwrap_err()
                .to_string()
                .contains("not sorted")
        );
        assert!(
            Manifest::from_bytes(raw("a", "a/b").as_bytes())
                .unwrap_err()
                .to_string()
                .contains("both a file and a folder")
        );
        assert!(Manifest::new(vec![entry("x"), entry("x")]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(
            Manifest::from_bytes(b"{")
                .unwrap_err()
                .to_string()
                .contains("malformed directory manifest")
        );
        assert!(
            Manifest::from_bytes(br#"{"version":2,"entries":[]}"#)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
    }

    #[test]
    fn bytes_match_serde_json_on_edge_cases() {
        for (path, size, exec) in [
            ("plain", 0, false),
            ("quote\"back\\slash", u64::MAX, true),
            ("ctl\u{0}\u{1f}\u{7f}\n\r\t\u{8}\u{c}", 10, false),
            ("ünï/cødé 🚀", 1, true),
        ] {
            let m = Manifest {
                version: 1,
                entries: vec![
                    entry(path),
                    ManifestEntry {
                        size,
                        exec,
                        ..entry("z")
                    },
                ],
            };
            assert_eq!(
                String::from_utf8(m.to_bytes()).unwrap(),
                serde_json::to_string(&m).unwrap()
            );
        }
        let empty = Manifest {
            version: 1,
            entries: Vec::new(),
        };
        assert_eq!(empty.to_bytes(), br#"{"version":1,"entries":[]}"#);
    }

    /// `n` sorted, distinct entries: `f000000`, `f000001`, ...
    fn many(n: usize) -> Vec<ManifestEntry> {
        (0..n).map(|i| entry(&format!("f{i:06}"))).collect()
    }

    #[test]
    fn a_large_manifest_is_written_in_pieces_exactly_as_serde_json() {
        for n in [PARALLEL_FROM, PARALLEL_FROM + 1, PIECE * 3 + 5] {
            let mut entries = many(n);
            entries[7].exec = true;
            entries[n - 1].exec = true;
            let m = Manifest::new(entries).unwrap();
            assert_eq!(m.to_bytes(), serde_json::to_vec(&m).unwrap(), "{n} entries");
            assert_eq!(Manifest::from_bytes(&m.to_bytes()).unwrap(), m);
        }
    }

    #[test]
    fn a_large_manifest_is_checked_across_piece_boundaries() {
        let n = PIECE * 3;
        // Duplicate, unsorted and file-and-folder pairs exactly where two pieces meet.
        let at = PIECE - 1;
        let mut dup = many(n);
        dup[at + 1].path = dup[at].path.clone();
        let mut unsorted = many(n);
        unsorted.swap(at, at + 1);
        let mut both = many(n);
        both[at + 1].path = format!("{}/inside", both[at].path);
        for (entries, want) in [
            (dup, "duplicate entry `f002047`"),
            (unsorted, "not sorted (`f002048` before `f002047`)"),
            (both, "`f002047` is both a file and a folder"),
        ] {
            let m = Manifest {
                version: 1,
                entries,
            };
            let err = Manifest::from_bytes(&serde_json::to_vec(&m).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        // Of two faults, the first in entry order is the one reported.
        let mut two = many(n);
        two[PIECE * 2 + 3].path = "../late".to_owned();
        two[10].path = "/early".to_owned();
        let m = Manifest {
            version: 1,
            entries: two,
        };
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("`/early`"), "{err}");
    }

    proptest! {
        #[test]
        fn from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Manifest::from_bytes(&bytes);
        }

        #[test]
        fn bytes_are_exactly_what_serde_json_writes(
            entries in proptest::collection::vec(
                (any::<String>(), any::<[u8; 32]>(), any::<u64>(), any::<bool>()),
                0..12,
            ),
            version in any::<u32>(),
        ) {
            let m = Manifest {
                version,
                entries: entries
                    .into_iter()
                    .map(|(path, hash, size, exec)| ManifestEntry {
                        path,
                        hash: Hash::from_bytes(hash),
                        size,
                        exec,
                    })
                    .collect(),
            };
            prop_assert_eq!(m.to_bytes(), serde_json::to_vec(&m).unwrap());
        }

        #[test]
        fn accepted_paths_stay_inside(paths in proptest::collection::vec("[a-z.]{1,4}(/[a-z.]{1,4}){0,3}", 1..8)) {
            let entries: Vec<_> = paths.iter().map(|p| entry(p)).collect();
            if let Ok(m) = Manifest::new(entries) {
                for e in &m.entries {
                    let joined = Manifest::join(Path::new("/base"), e);
                    prop_assert!(joined.starts_with("/base"));
                    prop_assert!(!e.path.split('/').any(|c| c == ".." || c == "."));
                }
            }
        }
    }
}
