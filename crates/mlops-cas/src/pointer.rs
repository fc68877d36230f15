//! Pointer files: `<path>.mlops`, a small TOML file tracked by Git that names a payload by hash.
//!
//! ```toml
//! path = "training.csv"     # relative to the pointer's folder
//! hash = "blake3:9f2c…"     # of the file's bytes, or of the directory manifest
//! size = 2048               # bytes; for a directory, the sum
//! files = 12                # directories only
//! ```

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::hash::Hash;
use crate::object::Object;

/// The file name suffix of pointer files.
pub const POINTER_SUFFIX: &str = ".mlops";

/// A parsed pointer file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointer {
    /// The payload, relative to the pointer's folder.
    pub path: PathBuf,
    /// The payload's hash (of its bytes, or of its directory manifest).
    pub hash: Hash,
    /// Bytes; for a directory, the sum of its files.
    pub size: u64,
    /// Number of files, for directories only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

impl Pointer {
    /// A pointer to `object`, stored at `path` (relative to the pointer's folder).
    pub fn new(path: impl Into<PathBuf>, object: &Object) -> Self {
        Self {
            path: path.into(),
            hash: object.hash,
            size: object.size,
            files: object.files,
        }
    }

    /// The object this pointer names.
    pub fn object(&self) -> Object {
        Object {
            hash: self.hash,
            size: self.size,
            files: self.files,
        }
    }

    /// Reads and validates the pointer file at `pointer_file`.
    ///
    /// # Errors
    /// I/O errors; malformed TOML with line and column; a `path` that is absolute or leaves
    /// the pointer's folder.
    pub fn read(pointer_file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(pointer_file).at(pointer_file)?;
        Self::parse(&text, pointer_file)
    }

    /// Parses pointer text; `origin` names the file in errors.
    ///
    /// # Errors
    /// As [`Pointer::read`], without the I/O.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let pointer: Self = toml::from_str(text).map_err(|e| Error::toml(origin, text, &e))?;
        check_relative(&pointer.path).map_err(|reason| Error::Parse {
            path: origin.to_owned(),
            line: 1,
            column: 1,
            message: format!("path `{}` {reason}", pointer.path.display()),
        })?;
        Ok(pointer)
    }

    /// The TOML text of this pointer.
    pub fn to_toml(&self) -> String {
        let mut s = format!(
            "path = {}\nhash = \"{}\"\nsize = {}\n",
            toml_string(&self.path.to_string_lossy()),
            self.hash,
            self.size
        );
        if let Some(files) = self.files {
            s.push_str(&format!("files = {files}\n"));
        }
        s
    }

    /// Writes the pointer atomically (temporary file + rename) to `pointer_file`.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn write(&self, pointer_file: &Path) -> Result<()> {
        crate::fsutil::write_atomic(pointer_file, self.to_toml().as_bytes())
    }

    /// The pointer file path for a payload path: `data/x.csv` → `data/x.csv.mlops`.
    pub fn file_for(payload: &Path) -> PathBuf {
        let mut s = payload.as_os_str().to_owned();
        s.push(POINTER_SUFFIX);
        PathBuf::from(s)
    }

    /// Whether `path` names a pointer file (ends in `.mlops`, and is not the `.mlops` folder).
    pub fn is_pointer_file(path: &Path) -> bool {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() > POINTER_SUFFIX.len() && n.ends_with(POINTER_SUFFIX))
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Checks that `path` is relative and stays inside its base: no root, no `..`, not empty.
pub(crate) fn check_relative(path: &Path) -> std::result::Result<(), &'static str> {
    if path.as_os_str().is_empty() {
        return Err("is empty");
    }
    for c in path.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("must not contain `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("must be relative"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_bytes;
    use proptest::prelude::*;

    fn sample() -> Pointer {
        Pointer {
            path: "training.csv".into(),
            hash: hash_bytes(b"x"),
            size: 1,
            files: None,
        }
    }

    #[test]
    fn roundtrip_file_and_directory() {
        let p = sample();
        assert_eq!(Pointer::parse(&p.to_toml(), Path::new("p")).unwrap(), p);
        let d = Pointer {
            files: Some(12),
            path: "images dir/x\"y".into(),
            ..sample()
        };
        assert_eq!(Pointer::parse(&d.to_toml(), Path::new("p")).unwrap(), d);
        assert!(d.to_toml().contains("files = 12\n"));
    }

    #[test]
    fn malformed_toml_names_line_and_column() {
        let err =
            Pointer::parse("path = \"a\"\nhash = blake3\n", Path::new("d/a.mlops")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("d/a.mlops:2:8:"), "{msg}");
        assert!(err.is_usage());
    }

    #[test]
    fn bad_hash_and_unknown_field_are_errors() {
        let err = Pointer::parse(
            "path = \"a\"\nhash = \"md5:00\"\nsize = 1\n",
            Path::new("a.mlops"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("blake3:"), "{err}");
        let text = format!("{}colour = 1\n", sample().to_toml());
        let err = Pointer::parse(&text, Path::new("a.mlops")).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn escaping_paths_are_rejected() {
        for bad in ["../x", "/etc/passwd", "a/../../b"] {
            let p = Pointer {
                path: bad.into(),
                ..sample()
            };
            let err = Pointer::parse(&p.to_toml(), Path::new("a.mlops"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn pointer_file_names() {
        assert_eq!(
            Pointer::file_for(Path::new("data/x.csv")),
            PathBuf::from("data/x.csv.mlops")
        );
        assert!(Pointer::is_pointer_file(Path::new("data/x.csv.mlops")));
        assert!(!Pointer::is_pointer_file(Path::new(".mlops")));
        assert!(!Pointer::is_pointer_file(Path::new("x.csv")));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = Pointer::parse(&s, Path::new("p.mlops"));
        }

        #[test]
        fn roundtrip_any_name(name in "[a-zA-Z0-9 _.\"'\\\\-]{1,30}", size in any::<u64>(), files in proptest::option::of(any::<u64>())) {
            prop_assume!(name != "." && name != "..");
            let p = Pointer { path: name.into(), hash: hash_bytes(b"q"), size, files };
            prop_assert_eq!(Pointer::parse(&p.to_toml(), Path::new("p")).unwrap(), p);
        }
    }
}
