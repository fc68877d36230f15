//! Detection and repair of whitespace problems, with pre-commit-hooks' exact semantics, and the
//! atomic write used for every repaired file.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// 1-based numbers of lines ending in whitespace (`' '`, `\t`, `\v`, `\f` or a stray `\r`).
pub fn trailing_whitespace_lines(data: &[u8]) -> Vec<usize> {
    let mut lines = Vec::new();
    for (no, line) in split_lines(data).enumerate() {
        let body = strip_eol(line);
        if body.last().is_some_and(|b| is_ws(*b)) {
            lines.push(no + 1);
        }
    }
    lines
}

/// The content with trailing whitespace removed from every line (line endings kept).
pub fn strip_trailing_whitespace(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in split_lines(data) {
        let body = strip_eol(line);
        let eol = &line[body.len()..];
        let end = body.iter().rposition(|b| !is_ws(*b)).map_or(0, |i| i + 1);
        out.extend_from_slice(&body[..end]);
        out.extend_from_slice(eol);
    }
    out
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

/// Lines including their `\n` (the last one may have none).
fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(line)
    })
}

fn strip_eol(line: &[u8]) -> &[u8] {
    if let Some(l) = line.strip_suffix(b"\r\n") {
        l
    } else if let Some(l) = line.strip_suffix(b"\n") {
        l
    } else {
        line
    }
}

/// The content ending with exactly one line ending, as pre-commit-hooks' `end-of-file-fixer`:
/// an empty file stays empty, a file of only line breaks becomes empty, a missing final newline
/// is added, extra trailing line breaks are removed. `None` when nothing needs to change.
pub fn fix_end_of_file(data: &[u8]) -> Option<Vec<u8>> {
    let last = *data.last()?;
    if last != b'\n' && last != b'\r' {
        let mut out = data.to_vec();
        out.push(b'\n');
        return Some(out);
    }
    let content_end = data.iter().rposition(|b| *b != b'\n' && *b != b'\r');
    let Some(content_end) = content_end.map(|i| i + 1) else {
        return Some(Vec::new());
    };
    let remaining = &data[content_end..];
    for seq in [&b"\n"[..], b"\r\n", b"\r"] {
        if remaining == seq {
            return None;
        }
        if remaining.starts_with(seq) {
            return Some(data[..content_end + seq.len()].to_vec());
        }
    }
    None
}

/// Counts of `\r\n`, lone `\n` and lone `\r` endings.
pub fn line_endings(data: &[u8]) -> (usize, usize, usize) {
    let (mut crlf, mut lf, mut cr) = (0, 0, 0);
    let mut i = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &data[i..]) {
        let at = i + off;
        if data[at] == b'\r' {
            if data.get(at + 1) == Some(&b'\n') {
                crlf += 1;
                i = at + 2;
                continue;
            }
            cr += 1;
        } else {
            lf += 1;
        }
        i = at + 1;
    }
    (crlf, lf, cr)
}

/// The content with every line ending turned into the most common one (ties go to `\n`).
pub fn fix_mixed_line_endings(data: &[u8]) -> Option<Vec<u8>> {
    let (crlf, lf, cr) = line_endings(data);
    if [crlf, lf, cr].iter().filter(|n| **n > 0).count() < 2 {
        return None;
    }
    let target: &[u8] = if lf >= crlf && lf >= cr {
        b"\n"
    } else if crlf >= cr {
        b"\r\n"
    } else {
        b"\r"
    };
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &data[i..]) {
        let at = i + off;
        out.extend_from_slice(&data[i..at]);
        out.extend_from_slice(target);
        i = if data[at] == b'\r' && data.get(at + 1) == Some(&b'\n') {
            at + 2
        } else {
            at + 1
        };
    }
    out.extend_from_slice(&data[i..]);
    Some(out)
}

/// Writes `data` to `path` through a temporary file in the same folder and a rename, keeping
/// the file's permissions.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".mlops-hooks-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(data).map_err(|e| Error::io(path, e))?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), meta.permissions()).map_err(|e| Error::io(path, e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trailing_whitespace_is_found_and_stripped() {
        let data = b"a \nb\t\r\nc\nd \r\x0c";
        assert_eq!(trailing_whitespace_lines(data), vec![1, 2, 4]);
        assert_eq!(strip_trailing_whitespace(data), b"a\nb\r\nc\nd");
        assert!(trailing_whitespace_lines(b"ok\r\n").is_empty());
    }

    #[test]
    fn end_of_file_matches_pre_commit_hooks() {
        assert_eq!(fix_end_of_file(b""), None);
        assert_eq!(fix_end_of_file(b"a"), Some(b"a\n".to_vec()));
        assert_eq!(fix_end_of_file(b"a\n"), None);
        assert_eq!(fix_end_of_file(b"a\r\n"), None);
        assert_eq!(fix_end_of_file(b"a\n\n\n"), Some(b"a\n".to_vec()));
        assert_eq!(fix_end_of_file(b"a\r\n\r\n"), Some(b"a\r\n".to_vec()));
        assert_eq!(fix_end_of_file(b"\n\n"), Some(Vec::new()));
    }

    #[test]
    fn mixed_line_endings_go_to_the_most_common() {
        assert_eq!(line_endings(b"a\r\nb\nc\rd"), (1, 1, 1));
        assert_eq!(
            fix_mixed_line_endings(b"a\r\nb\r\nc\n"),
            Some(b"a\r\nb\r\nc\r\n".to_vec())
        );
        assert_eq!(
            fix_mixed_line_endings(b"a\r\nb\n"),
            Some(b"a\nb\n".to_vec())
        );
        assert_eq!(fix_mixed_line_endings(b"a\nb\n"), None);
    }

    proptest! {
        #[test]
        fn fixes_are_idempotent_and_leave_nothing_to_find(data in proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b' '), Just(b'\t'), Just(b'\n'), Just(b'\r')], 0..64)) {
            let stripped = strip_trailing_whitespace(&data);
            prop_assert!(trailing_whitespace_lines(&stripped).is_empty());
            prop_assert_eq!(strip_trailing_whitespace(&stripped), stripped.clone());
            let eof = fix_end_of_file(&data).unwrap_or(data.clone());
            prop_assert_eq!(fix_end_of_file(&eof), None);
            let mixed = fix_mixed_line_endings(&data).unwrap_or(data.clone());
            prop_assert_eq!(fix_mixed_line_endings(&mixed), None);
        }
    }
}
