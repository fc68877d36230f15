//! `.mlops/config.toml` (tracked) and `.mlops/config.local.toml` (per machine, credentials):
//! cache location, link order, remotes and the default remote. The local file overrides the
//! tracked one key by key. Edits keep comments and order (`toml_edit`).
//!
//! ```toml
//! [core]
//! remote = "storage"              # the default remote
//!
//! [cache]
//! dir = ".mlops/cache"            # relative to the repository root
//! link = ["reflink", "hardlink", "copy"]
//!
//! [remotes.storage]
//! url = "s3://bucket/project"
//! endpoint = "http://127.0.0.1:9000"   # optional, S3-compatible servers
//! region = "us-east-1"                 # optional
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{LinkKind, write_atomic};

/// The tracked configuration file, relative to the repository root.
pub const CONFIG_FILE: &str = ".mlops/config.toml";
/// The per-machine configuration file, relative to the repository root.
pub const LOCAL_CONFIG_FILE: &str = ".mlops/config.local.toml";

/// The merged configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The default remote's name.
    pub default_remote: Option<String>,
    /// The cache folder (absolute).
    pub cache_dir: PathBuf,
    /// How objects are put into the workspace, in order of preference.
    pub link: Vec<LinkKind>,
    /// Remotes by name.
    pub remotes: BTreeMap<String, RemoteConfig>,
}

/// One remote: its URL and backend options (endpoint, region, credentials from the local file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteConfig {
    /// `/path`, `file://…`, `s3://…`, `gs://…`, `az://…`, `http(s)://…`.
    pub url: String,
    /// Other keys, passed to the backend (never printed: may hold credentials).
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    core: RawCore,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    remotes: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCore {
    remote: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    dir: Option<PathBuf>,
    link: Option<Vec<String>>,
}

impl Config {
    /// Loads and merges the two configuration files of the repository at `root`.
    ///
    /// # Errors
    /// Malformed TOML (file, line, column), unknown keys, unknown link kinds, a remote without
    /// `url`, a default remote that is not configured.
    pub fn load(root: &Path) -> Result<Self> {
        let main = read_raw(&root.join(CONFIG_FILE))?;
        let local = read_raw(&root.join(LOCAL_CONFIG_FILE))?;
        let mut remotes: BTreeMap<String, BTreeMap<String, toml::Value>> = main.remotes;
        for (name, table) in local.remotes {
            remotes.entry(name).or_default().extend(table);
        }
        let mut out = BTreeMap::new();
        for (name, table) in remotes {
            let mut rc = RemoteConfig::default();
            for (k, v) in table {
                let v = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                if k == "url" {
                    rc.url = v;
                } else {
                    rc.options.insert(k, v);
                }
            }
            if rc.url.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: remote `{name}` has no `url`",
                    root.join(CONFIG_FILE).display()
                )));
            }
            out.insert(name, rc);
        }
        let cache_dir = local
            .cache
            .dir
            .or(main.cache.dir)
            .unwrap_or_else(|| PathBuf::from(".mlops/cache"));
        let link = match local.cache.link.or(main.cache.link) {
            Some(kinds) => kinds
                .iter()
                .map(|k| k.parse())
                .collect::<Result<Vec<LinkKind>>>()?,
            None => LinkKind::DEFAULT_ORDER.to_vec(),
        };
        if link.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: cache.link must name at least one of reflink, hardlink, copy",
                root.join(CONFIG_FILE).display()
            )));
        }
        let default_remote = local.core.remote.or(main.core.remote);
        if let Some(name) = &default_remote
            && !out.contains_key(name)
        {
            return Err(Error::Invalid(format!(
                "{}: default remote `{name}` is not configured",
                root.join(CONFIG_FILE).display()
            )));
        }
        Ok(Self {
            default_remote,
            cache_dir: root.join(cache_dir),
            link,
            remotes: out,
        })
    }

    /// The remote named `name`, or the default remote when `name` is `None`.
    ///
    /// # Errors
    /// [`Error::UnknownRemote`] or [`Error::NoDefaultRemote`].
    pub fn remote(&self, name: Option<&str>) -> Result<(String, &RemoteConfig)> {
        let name = match name.or(self.default_remote.as_deref()) {
            Some(n) => n,
            None if self.remotes.len() == 1 => {
                self.remotes.keys().next().map_or("", String::as_str)
            }
            None => return Err(Error::NoDefaultRemote),
        };
        self.remotes
            .get(name)
            .map(|r| (name.to_owned(), r))
            .ok_or_else(|| Error::UnknownRemote {
                name: name.to_owned(),
                known: self.remotes.keys().cloned().collect(),
            })
    }
}

fn read_raw(path: &Path) -> Result<RawConfig> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RawConfig::default()),
        Err(e) => return Err(Error::io(path, e)),
    };
    toml::from_str(&text).map_err(|e| Error::toml(path, &text, &e))
}

/// Edits `.mlops/config.toml` in place, keeping comments and order.
#[derive(Debug)]
pub struct ConfigEditor {
    path: PathBuf,
    doc: toml_edit::DocumentMut,
}

impl ConfigEditor {
    /// Opens the tracked config of the repository at `root` for editing.
    ///
    /// # Errors
    /// I/O and parse errors.
    pub fn open(root: &Path) -> Result<Self> {
        let path = root.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |s| crate::error::line_column(&text, s.start));
            Error::Parse {
                path: path.clone(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        Ok(Self { path, doc })
    }

    /// Adds (or replaces the URL of) remote `name`.
    pub fn set_remote(&mut self, name: &str, url: &str) {
        let remotes = self.doc.entry("remotes").or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        });
        if let Some(remotes) = remotes.as_table_like_mut() {
            let entry = remotes
                .entry(name)
                .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
            entry["url"] = toml_edit::value(url);
        }
    }

    /// Removes remote `name`; returns whether it existed. Clears the default if it pointed there.
    pub fn remove_remote(&mut self, name: &str) -> bool {
        let existed = self
            .doc
            .get_mut("remotes")
            .and_then(toml_edit::Item::as_table_like_mut)
            .and_then(|t| t.remove(name))
            .is_some();
        if self
            .doc
            .get("core")
            .and_then(|c| c.get("remote"))
            .and_then(toml_edit::Item::as_str)
            == Some(name)
            && let Some(core) = self
                .doc
                .get_mut("core")
                .and_then(toml_edit::Item::as_table_like_mut)
        {
            core.remove("remote");
        }
        existed
    }

    /// Sets the default remote.
    pub fn set_default(&mut self, name: &str) {
        let core = self
            .doc
            .entry("core")
            .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
        core["remote"] = toml_edit::value(name);
    }

    /// Writes the edited file atomically.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self) -> Result<()> {
        write_atomic(&self.path, self.doc.to_string().as_bytes())
    }
}

/// Writes a fresh config for `mlops init` unless one exists.
pub(crate) fn write_initial(root: &Path) -> Result<()> {
    let path = root.join(CONFIG_FILE);
    if path.exists() {
        return Ok(());
    }
    let text = "# mlops configuration (tracked by Git). Per-machine overrides and credentials go in\n# .mlops/config.local.toml, which is not tracked.\n\n[cache]\n# dir = \".mlops/cache\"\n# How tracked files are put into the workspace, in order of preference.\nlink = [\"reflink\", \"hardlink\", \"copy\"]\n";
    write_atomic(&path, text.as_bytes())?;
    let _ = std::fs::metadata(&path).at(&path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with(config: &str, local: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(".mlops")).unwrap();
        std::fs::write(d.path().join(CONFIG_FILE), config).unwrap();
        if !local.is_empty() {
            std::fs::write(d.path().join(LOCAL_CONFIG_FILE), local).unwrap();
        }
        d
    }

    #[test]
    fn local_overrides_and_defaults() {
        let d = repo_with(
            "[core]\nremote = \"a\"\n[remotes.a]\nurl = \"/tmp/a\"\n[remotes.b]\nurl = \"s3://b/p\"\nregion = \"x\"\n",
            "[remotes.b]\nregion = \"y\"\nsecret_access_key = \"s\"\n[cache]\nlink = [\"copy\"]\n",
        );
        let c = Config::load(d.path()).unwrap();
        assert_eq!(c.link, vec![LinkKind::Copy]);
        assert_eq!(c.cache_dir, d.path().join(".mlops/cache"));
        assert_eq!(c.remote(None).unwrap().0, "a");
        let (_, b) = c.remote(Some("b")).unwrap();
        assert_eq!(b.options["region"], "y");
        assert_eq!(b.options["secret_access_key"], "s");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let d = repo_with("[cache]\nlink = [\"copy\"\n", "");
        let e = Config::load(d.path()).unwrap_err();
        assert!(e.is_usage());
        assert!(e.to_string().contains("config.toml:2:"), "{e}");
        let d = repo_with("[cache]\nlink = [\"symlink\"]\n", "");
        assert!(
            Config::load(d.path())
                .unwrap_err()
                .to_string()
                .contains("unknown link kind `symlink`")
        );
        let d = repo_with("[core]\nremote = \"nope\"\n", "");
        assert!(
            Config::load(d.path())
                .unwrap_err()
                .to_string()
                .contains("default remote `nope` is not configured")
        );
        let d = repo_with("[remotes.a]\nregion = \"x\"\n", "");
        assert!(
            Config::load(d.path())
                .unwrap_err()
                .to_string()
                .contains("remote `a` has no `url`")
        );
        let d = repo_with("[cach]\n", "");
        assert!(
            Config::load(d.path())
                .unwrap_err()
                .to_string()
                .contains("unknown field `cach`")
        );
    }

    #[test]
    fn unknown_remote_lists_known_ones() {
        let d = repo_with("[remotes.a]\nurl = \"/x\"\n[remotes.b]\nurl = \"/y\"\n", "");
        let c = Config::load(d.path()).unwrap();
        assert_eq!(
            c.remote(Some("zz")).unwrap_err().to_string(),
            "unknown remote `zz`; configured remotes: a, b"
        );
        assert!(matches!(c.remote(None), Err(Error::NoDefaultRemote)));
    }

    #[test]
    fn editor_keeps_comments() {
        let d = repo_with("# keep me\n[cache]\nlink = [\"copy\"] # and me\n", "");
        let mut ed = ConfigEditor::open(d.path()).unwrap();
        ed.set_remote("origin", "/srv/remote");
        ed.set_default("origin");
        ed.save().unwrap();
        let text = std::fs::read_to_string(d.path().join(CONFIG_FILE)).unwrap();
        assert!(
            text.contains("# keep me") && text.contains("# and me"),
            "{text}"
        );
        let c = Config::load(d.path()).unwrap();
        assert_eq!(c.remote(None).unwrap().1.url, "/srv/remote");
        let mut ed = ConfigEditor::open(d.path()).unwrap();
        assert!(ed.remove_remote("origin"));
        assert!(!ed.remove_remote("origin"));
        ed.save().unwrap();
        assert!(Config::load(d.path()).unwrap().remotes.is_empty());
    }
}
