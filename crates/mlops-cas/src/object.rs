//! [`Object`]: what a pointer or lock entry names: a hash, a size, and for a directory the
//! number of files in its manifest.

use serde::{Deserialize, Serialize};

use crate::hash::Hash;

/// A stored payload: one file, or a directory (then `hash` is its manifest's hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Object {
    /// The content hash (of the bytes, or of the manifest).
    pub hash: Hash,
    /// Bytes; for a directory, the sum of its files.
    pub size: u64,
    /// Number of files, for directories only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

impl Object {
    /// Whether this object is a directory manifest.
    pub fn is_dir(&self) -> bool {
        self.files.is_some()
    }
}
