//! mlops-cas: content-addressed storage for ML data and models.
//!
//! Git keeps small pointer files (`<path>.mlops`); payloads live in a local cache and in remotes
//! (a folder, S3, GCS, Azure, HTTP through `object_store`), addressed by their BLAKE3 hash at
//! `blake3/<2 hex>/<62 hex>`. The main types:
//!
//! - [`Repo`]: a folder with `.mlops/`; `add`, `status`, `checkout`, `push`, `fetch`, `pull`, `gc`.
//! - [`Hash`](struct@Hash), [`hash_file`]: BLAKE3 hashes (large files hashed on all cores while a thread reads ahead).
//! - [`Pointer`], [`Manifest`]: the pointer file and directory manifest formats.
//! - [`Cache`], [`Remote`]: where objects live.
//!
//! ```
//! # fn main() -> Result<(), mlops_cas::Error> {
//! use mlops_cas::{InitOptions, Repo};
//! let dir = tempfile::tempdir().map_err(|e| mlops_cas::Error::Invalid(e.to_string()))?;
//! std::fs::write(dir.path().join("train.csv"), "age\n42\n").map_err(|e| mlops_cas::Error::Invalid(e.to_string()))?;
//! let repo = Repo::init(dir.path(), &InitOptions::new().no_git(true))?;
//! let added = repo.add(&["train.csv".into()])?;
//! assert_eq!(added[0].pointer, std::path::Path::new("train.csv.mlops"));
//! assert!(repo.status()?.is_empty()); // everything in sync
//! # Ok(()) }
//! ```

mod cache;
mod config;
mod error;
mod fsutil;
mod hash;
mod local_transfer;
mod lock;
mod manifest;
mod object;
mod pointer;
mod remote;
mod repo;
mod shards;
mod statcache;
mod sync;
mod threads;
pub mod transfer;
mod walk;

pub use cache::{Cache, Ingest};
pub use config::{CONFIG_FILE, Config, ConfigEditor, LOCAL_CONFIG_FILE, RemoteConfig};
pub use error::{Error, Result};
pub use fsutil::{LinkKind, write_atomic};
pub use hash::{Hash, hash_bytes, hash_file, hash_file_sized, hash_reader};
pub use lock::RepoLock;
pub use manifest::{Manifest, ManifestEntry};
pub use object::Object;
pub use pointer::{POINTER_SUFFIX, Pointer};
pub use remote::Remote;
pub use repo::{Added, Change, CheckedOut, GcReport, InitOptions, PathStatus, Repo, STATE_DIR};
pub use statcache::{Stamp, StatCache};
pub use transfer::{Progress, ProgressFn, TransferOptions, TransferReport};
