//! The two commands that run *inside* the pod in data mode, and the local step before a Job:
//!
//! - [`push_deps`] (local, before the Job is applied): every dep is stored in the local cache and
//!   uploaded to the remote, so the pod can fetch exactly that version.
//! - [`fetch_deps`] (`mlops k8s pod-fetch`, the init container): fetches each dep by hash from the
//!   remote into the working folder (an `emptyDir`), verified, and installs the `mlops` binary
//!   for the main container.
//! - [`run_and_push`] (`mlops k8s pod-run`, the main container): runs the stage command, then
//!   stores and uploads the declared outs and reports their hashes in the termination message
//!   (`{"outs": {"path": "blake3:…"}}`), which the runner hands to the pipeline as
//!   `ExecutionRecord::remote_outs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlops_cas::{Hash, InitOptions, Manifest, Object, Remote, RemoteConfig, Repo, TransferOptions};
use tracing::info;

use crate::error::{Error, Result};
use crate::manifest::Dep;

/// The largest termination message Kubernetes keeps (bytes).
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

fn cas(context: &str) -> impl FnOnce(mlops_cas::Error) -> Error + '_ {
    move |e| Error::Data {
        context: context.to_owned(),
        source: e,
    }
}

/// Opens `url` as a remote: the repository's configured remote with that URL when there is one
/// (so its options in `config.local.toml` apply), else the URL alone (credentials from the
/// environment).
pub fn open_remote(repo: &Repo, url: &str) -> Result<Remote> {
    for name in repo.config().remotes.keys() {
        if let Ok((name, config)) = repo.config().remote(Some(name))
            && config.url.trim_end_matches('/') == url.trim_end_matches('/')
        {
            return Remote::open(&name, config, repo.root()).map_err(cas("open remote"));
        }
    }
    let config = RemoteConfig {
        url: url.to_owned(),
        options: BTreeMap::new(),
    };
    Remote::open("k8s-data", &config, repo.root()).map_err(cas("open remote"))
}

/// The objects (hash, size) that make up `object`: itself, and for a directory every file.
fn objects_of(repo: &Repo, object: &Object, path: &Path) -> Result<Vec<(Hash, u64)>> {
    let mut out = vec![(object.hash, object.size)];
    if object.is_dir() {
        let bytes = repo
            .cache()
            .read_verified(&object.hash, path)
            .map_err(cas("read manifest"))?;
        let manifest = Manifest::from_bytes(&bytes).map_err(cas("read manifest"))?;
        out[0].1 = 0;
        out.extend(manifest.entries.iter().map(|e| (e.hash, e.size)));
    }
    Ok(out)
}

/// Stores every dep of the stage in the local cache and uploads what the remote lacks. Fails
/// when a dep's content is no longer the hash the stage was scheduled with.
pub fn push_deps(repo: &Repo, remote_url: &str, deps: &[Dep]) -> Result<u64> {
    let remote = open_remote(repo, remote_url)?;
    let mut objects = Vec::new();
    for dep in deps {
        let abs = repo.root().join(&dep.path);
        let object = repo.store_path(&abs).map_err(cas("store dep"))?;
        if object.hash.to_string() != dep.hash {
            return Err(Error::Data {
                context: format!(
                    "dep {} changed since the stage was scheduled ({} now)",
                    dep.path.display(),
                    object.hash.short()
                ),
                source: mlops_cas::Error::Invalid("changed dep".to_owned()),
            });
        }
        objects.extend(objects_of(repo, &object, &abs)?);
    }
    let report = repo
        .push_objects(&objects, &remote, &TransferOptions::default())
        .map_err(cas("push deps"))?;
    info!(
        objects = objects.len(),
        transferred = report.transferred,
        "deps pushed for the pod"
    );
    Ok(report.transferred)
}

/// A dep as the init container receives it: `path=blake3:…` for a file, `path/=blake3:…` for a
/// directory.
pub fn dep_arg(dep: &Dep) -> String {
    let path = dep
        .path
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    format!("{path}{}={}", if dep.dir { "/" } else { "" }, dep.hash)
}

/// Parses [`dep_arg`]'s form back: (relative path, hash, is a directory).
pub fn parse_dep_arg(arg: &str) -> Result<(PathBuf, Hash, bool)> {
    let bad = |m: &str| Error::Invalid {
        key: format!("dep `{arg}`"),
        message: m.to_owned(),
    };
    let (path, hash) = arg
        .rsplit_once('=')
        .ok_or_else(|| bad("expected PATH=blake3:HASH"))?;
    let hash: Hash = hash
        .parse()
        .map_err(|_| bad("the hash is not blake3:<64 hex>"))?;
    let dir = path.ends_with('/');
    let path = PathBuf::from(path.trim_end_matches('/'));
    if path.as_os_str().is_empty()
        || path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(bad(
            "the path must be relative and stay inside the working folder",
        ));
    }
    Ok((path, hash, dir))
}

/// The init container: materialises each dep under `root` from the remote, verified, and copies
/// the running `mlops` binary to `install` for the main container.
pub fn fetch_deps(
    root: &Path,
    remote_url: &str,
    deps: &[String],
    install: Option<&Path>,
) -> Result<u64> {
    std::fs::create_dir_all(root).map_err(|source| Error::Io {
        path: root.to_owned(),
        source,
    })?;
    let repo = Repo::init(root, &InitOptions::new().no_git(true))
        .map_err(cas("init the pod workspace"))?;
    let remote = open_remote(&repo, remote_url)?;
    let options = TransferOptions::default();
    let mut files = 0;
    for arg in deps {
        let (path, hash, dir) = parse_dep_arg(arg)?;
        files += materialise(&repo, &remote, &options, root, &path, hash, dir)?;
        info!(path = %path.display(), hash = %hash.short(), "dep materialised");
    }
    if let Some(target) = install {
        install_self(target)?;
    }
    Ok(files)
}

/// Fetches one object (a directory's manifest and then its files) into the cache and restores
/// it at `root/path`. Returns the files written.
fn materialise(
    repo: &Repo,
    remote: &Remote,
    options: &TransferOptions,
    root: &Path,
    path: &Path,
    hash: Hash,
    dir: bool,
) -> Result<u64> {
    let dest = root.join(path);
    repo.fetch_objects(&[(hash, 0)], remote, options)
        .map_err(cas("fetch"))?;
    let object = if dir {
        let bytes = repo
            .cache()
            .read_verified(&hash, &dest)
            .map_err(cas("read manifest"))?;
        let manifest = Manifest::from_bytes(&bytes).map_err(cas("read manifest"))?;
        let entries: Vec<(Hash, u64)> = manifest.entries.iter().map(|e| (e.hash, e.size)).collect();
        repo.fetch_objects(&entries, remote, options)
            .map_err(cas("fetch"))?;
        Object {
            hash,
            size: manifest.total_size(),
            files: Some(manifest.entries.len() as u64),
        }
    } else {
        let size = std::fs::metadata(repo.cache().object_path(&hash))
            .map(|m| m.len())
            .unwrap_or(0);
        Object {
            hash,
            size,
            files: None,
        }
    };
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    repo.restore(&object, &dest).map_err(cas("restore"))
}

/// The local side after a successful data-mode run: brings each out the pod reported
/// (path, hash, is a directory) from the remote into the cache and the workspace, verified.
pub fn fetch_outs(repo: &Repo, remote_url: &str, outs: &[(PathBuf, String, bool)]) -> Result<u64> {
    let remote = open_remote(repo, remote_url)?;
    let options = TransferOptions::default();
    let mut files = 0;
    for (path, hash, dir) in outs {
        let hash: Hash = hash.parse().map_err(|_| Error::Invalid {
            key: format!("reported out {}", path.display()),
            message: format!("`{hash}` is not a blake3 hash"),
        })?;
        if path.is_absolute()
            || path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::Invalid {
                key: format!("reported out {}", path.display()),
                message: "the path must stay inside the workspace".to_owned(),
            });
        }
        files += materialise(repo, &remote, &options, repo.root(), path, hash, *dir)?;
    }
    Ok(files)
}

fn install_self(target: &Path) -> Result<()> {
    let me = std::env::current_exe().map_err(|source| Error::Io {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    std::fs::copy(&me, target).map_err(|source| Error::Io {
        path: target.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o755)).map_err(
            |source| Error::Io {
                path: target.to_owned(),
                source,
            },
        )?;
    }
    Ok(())
}

/// The main container: runs `command` in `workdir` (inheriting stdio), and when it exits 0
/// stores and uploads each of `outs` (relative to `root`) and writes `{"outs": {…}}` to
/// `report`. Returns the command's exit code (128 + signal when killed).
pub fn run_and_push(
    root: &Path,
    workdir: &Path,
    remote_url: &str,
    outs: &[PathBuf],
    command: &[String],
    report: &Path,
) -> Result<i32> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::Invalid {
            key: "pod-run".to_owned(),
            message: "no command after `--`".to_owned(),
        });
    };
    let status = std::process::Command::new(program)
        .args(args)
        .current_dir(workdir)
        .status()
        .map_err(|source| Error::Io {
            path: PathBuf::from(program),
            source,
        })?;
    let code = status.code().unwrap_or_else(|| {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
        #[cfg(not(unix))]
        {
            1
        }
    });
    if code != 0 {
        return Ok(code);
    }
    let repo = Repo::open(root).map_err(cas("open the pod workspace"))?;
    let remote = open_remote(&repo, remote_url)?;
    let mut objects = Vec::new();
    let mut hashes = serde_json::Map::new();
    for out in outs {
        let abs = root.join(out);
        let object = repo.store_path(&abs).map_err(cas("store out"))?;
        objects.extend(objects_of(&repo, &object, &abs)?);
        let mut key = out
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if object.is_dir() {
            key.push('/');
        }
        hashes.insert(key, serde_json::Value::String(object.hash.to_string()));
    }
    repo.push_objects(&objects, &remote, &TransferOptions::default())
        .map_err(cas("push outs"))?;
    let message = serde_json::json!({ "outs": hashes }).to_string();
    if message.len() > TERMINATION_MESSAGE_LIMIT {
        tracing::warn!(
            bytes = message.len(),
            "the out report is larger than a termination message keeps"
        );
    }
    std::fs::write(report, message).map_err(|source| Error::Io {
        path: report.to_owned(),
        source,
    })?;
    Ok(0)
}
