//! Remotes through `object_store`: a local folder or `file://` URL (always available), and
//! `s3://`, `gs://`, `az://`, `http(s)://` behind the `s3`, `gcs`, `azure` and `http` features.
//! Objects live at `<prefix>/blake3/<2 hex>/<62 hex>` as in the cache.
//!
//! Credentials and endpoints come from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as
//! `object_store` reads them) or from the remote's table in `.mlops/config.local.toml`; they are
//! never printed: [`Remote::url`] is the configured URL, which holds none.

use std::path::Path;
use std::sync::Arc;
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))]
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path as StorePath;

use crate::config::RemoteConfig;
use crate::error::{Error, Result};
use crate::hash::Hash;

/// An opened remote.
#[derive(Debug, Clone)]
pub struct Remote {
    name: String,
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// For folder remotes: the folder. Transfers then use plain file operations on all cores
    /// (the same atomic temp-and-rename the object store does, without an async hop per call).
    local_root: Option<std::path::PathBuf>,
}

/// Retries within `object_store`'s HTTP clients: few and short, so an unreachable remote fails
/// in seconds rather than minutes. Our own transfer loop retries whole objects on top.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))]
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

#[cfg(any(feature = "s3", feature = "gcs", feature = "azure", feature = "http"))]
fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300))
}

impl Remote {
    /// Opens remote `name` configured as `config`; relative folder paths are relative to `root`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an unsupported scheme, a scheme whose feature is off, or an option
    /// the backend does not know.
    pub fn open(name: &str, config: &RemoteConfig, root: &Path) -> Result<Self> {
        let url = config.url.trim();
        let invalid = |msg: String| Error::Invalid(format!("remote `{name}` ({url}): {msg}"));
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let mut local_root = None;
        let (store, prefix): (Arc<dyn ObjectStore>, StorePath) = match scheme.as_deref() {
            None | Some("file") => {
                let path = match url.strip_prefix("file://") {
                    Some(p) => std::path::PathBuf::from(p),
                    None => root.join(url),
                };
                if !config.options.is_empty() {
                    return Err(invalid(format!(
                        "a folder remote takes no options (found {})",
                        keys(config)
                    )));
                }
                std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                local_root = Some(path.canonicalize().map_err(|e| Error::io(&path, e))?);
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&path)
                    .map_err(|e| invalid(e.to_string()))?;
                (Arc::new(fs), StorePath::default())
            }
            Some("s3" | "s3a") => open_s3(url, config).map_err(invalid)?,
            Some("gs") => open_gcs(url, config).map_err(invalid)?,
            Some("az" | "abfs" | "abfss" | "azure") => open_azure(url, config).map_err(invalid)?,
            Some("http" | "https") => open_http(url, config).map_err(invalid)?,
            Some(other) => {
                return Err(invalid(format!(
                    "unsupported scheme `{other}://`; use a folder path, file://, s3://, gs://, az:// or http(s)://"
                )));
            }
        };
        Ok(Self {
            name: name.to_owned(),
            url: url.to_owned(),
            store,
            prefix,
            local_root,
        })
    }

    /// The remote's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configured URL (holds no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The folder of a folder remote (`None` for object stores).
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The store path of an object.
    pub fn object_path(&self, hash: &Hash) -> StorePath {
        let key = hash.object_key();
        if self.prefix.as_ref().is_empty() {
            StorePath::from(key.as_str())
        } else {
            StorePath::from(format!("{}/{key}", self.prefix.as_ref()).as_str())
        }
    }

    /// The store path under which all objects live.
    pub fn objects_prefix(&self) -> StorePath {
        if self.prefix.as_ref().is_empty() {
            StorePath::from("blake3")
        } else {
            StorePath::from(format!("{}/blake3", self.prefix.as_ref()).as_str())
        }
    }

    /// Parses an object hash back from a store path listed under [`Self::objects_prefix`].
    pub fn hash_of(&self, location: &StorePath) -> Option<Hash> {
        let mut parts: Vec<&str> = location.as_ref().rsplitn(3, '/').collect();
        if parts.len() < 2 {
            return None;
        }
        parts.truncate(2);
        format!("blake3:{}{}", parts[1], parts[0]).parse().ok()
    }

    /// An [`Error::Remote`] for `err`.
    pub(crate) fn err(&self, err: object_store::Error) -> Error {
        Error::Remote {
            url: self.url.clone(),
            source: Box::new(err),
        }
    }
}

fn keys(config: &RemoteConfig) -> String {
    config
        .options
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

type Opened = std::result::Result<(Arc<dyn ObjectStore>, StorePath), String>;

#[cfg_attr(
    not(any(feature = "s3", feature = "gcs", feature = "azure")),
    allow(dead_code, reason = "used by the cloud backends")
)]
fn url_prefix(url: &str) -> StorePath {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let path = rest
        .split_once('/')
        .map_or("", |(_, p)| p)
        .trim_matches('/');
    StorePath::from(path)
}

#[cfg(feature = "s3")]
fn open_s3(url: &str, config: &RemoteConfig) -> Opened {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    let bucket_url = url
        .split_once("://")
        .map(|(_, r)| r.split('/').next().unwrap_or(""))
        .unwrap_or("");
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket_url)
        .with_retry(retry_config())
        .with_client_options(client_options());
    let mut allow_http = None;
    for (k, v) in &config.options {
        if k == "allow_http" {
            allow_http = Some(v == "true");
            continue;
        }
        let key: AmazonS3ConfigKey = k.parse().map_err(|_| format!("unknown S3 option `{k}`"))?;
        b = b.with_config(key, v.clone());
    }
    // A plain-http endpoint (a local S3-compatible server) needs http allowed.
    let endpoint = config
        .options
        .get("endpoint")
        .cloned()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT").ok());
    if allow_http.unwrap_or_else(|| {
        endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    }) {
        b = b.with_allow_http(true);
    }
    let store = b.build().map_err(|e| e.to_string())?;
    Ok((Arc::new(store), url_prefix(url)))
}

#[cfg(not(feature = "s3"))]
fn open_s3(_url: &str, _config: &RemoteConfig) -> Opened {
    Err("S3 remotes need mlops-cas built with the `s3` feature".to_owned())
}

#[cfg(feature = "gcs")]
fn open_gcs(url: &str, config: &RemoteConfig) -> Opened {
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_url(url)
        .with_retry(retry_config())
        .with_client_options(client_options());
    for (k, v) in &config.options {
        let key: GoogleConfigKey = k.parse().map_err(|_| format!("unknown GCS option `{k}`"))?;
        b = b.with_config(key, v.clone());
    }
    let store = b.build().map_err(|e| e.to_string())?;
    Ok((Arc::new(store), url_prefix(url)))
}

#[cfg(not(feature = "gcs"))]
fn open_gcs(_url: &str, _config: &RemoteConfig) -> Opened {
    Err("GCS remotes need mlops-cas built with the `gcs` feature".to_owned())
}

#[cfg(feature = "azure")]
fn open_azure(url: &str, config: &RemoteConfig) -> Opened {
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_url(url)
        .with_retry(retry_config())
        .with_client_options(client_options());
    for (k, v) in &config.options {
        let key: AzureConfigKey = k
            .parse()
            .map_err(|_| format!("unknown Azure option `{k}`"))?;
        b = b.with_config(key, v.clone());
    }
    let store = b.build().map_err(|e| e.to_string())?;
    Ok((Arc::new(store), url_prefix(url)))
}

#[cfg(not(feature = "azure"))]
fn open_azure(_url: &str, _config: &RemoteConfig) -> Opened {
    Err("Azure remotes need mlops-cas built with the `azure` feature".to_owned())
}

#[cfg(feature = "http")]
fn open_http(url: &str, config: &RemoteConfig) -> Opened {
    if !config.options.is_empty() {
        return Err(format!(
            "an HTTP remote takes no options (found {})",
            keys(config)
        ));
    }
    let store = object_store::http::HttpBuilder::new()
        .with_url(url)
        .with_retry(retry_config())
        .with_client_options(client_options())
        .build()
        .map_err(|e| e.to_string())?;
    Ok((Arc::new(store), StorePath::default()))
}

#[cfg(not(feature = "http"))]
fn open_http(_url: &str, _config: &RemoteConfig) -> Opened {
    Err("HTTP remotes need mlops-cas built with the `http` feature".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(url: &str) -> RemoteConfig {
        RemoteConfig {
            url: url.into(),
            options: Default::default(),
        }
    }

    #[test]
    fn folder_remote_paths_and_hash_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let r = Remote::open("r", &rc("store"), d.path()).unwrap();
        assert!(d.path().join("store").is_dir());
        let h = crate::hash::hash_bytes(b"x");
        let p = r.object_path(&h);
        assert_eq!(p.as_ref(), h.object_key());
        assert_eq!(r.hash_of(&p), Some(h));
        assert_eq!(r.objects_prefix().as_ref(), "blake3");
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = Remote::open("r", &rc("ftp://x/y"), d.path()).unwrap_err();
        assert!(e.is_usage());
        assert!(e.to_string().contains("unsupported scheme `ftp://`"), "{e}");
        let mut with_opts = rc("/tmp/x");
        with_opts.options.insert("region".into(), "x".into());
        assert!(
            Remote::open("r", &with_opts, d.path())
                .unwrap_err()
                .to_string()
                .contains("takes no options")
        );
    }

    #[test]
    fn prefix_from_url() {
        assert_eq!(url_prefix("s3://bucket/a/b/").as_ref(), "a/b");
        assert_eq!(url_prefix("s3://bucket").as_ref(), "");
    }
}
