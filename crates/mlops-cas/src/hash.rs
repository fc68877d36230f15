//! BLAKE3 content hashes: [`Hash`], and hashing of bytes, readers and files. Large files are read
//! in 16 MiB buffers by one thread and hashed on all cores; small files are read whole.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, IoContext, Result};

/// Files at least this large are hashed on all cores while a second thread reads ahead.
const LARGE_FILE: u64 = 4 << 20;

/// A BLAKE3 hash, written `blake3:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The textual prefix of every hash.
    pub const PREFIX: &'static str = "blake3:";

    /// The hash with these 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 hex digits, without the `blake3:` prefix.
    pub fn to_hex(&self) -> String {
        let mut out = [0u8; 64];
        String::from_utf8_lossy(self.hex_into(&mut out)).into_owned()
    }

    /// Writes `blake3:<64 hex>` into `out` and returns it (no allocation: a manifest of 20,000
    /// entries writes 20,000 of them).
    pub fn text<'a>(&self, out: &'a mut [u8; 71]) -> &'a str {
        let (prefix, digits) = out.split_at_mut(Self::PREFIX.len());
        prefix.copy_from_slice(Self::PREFIX.as_bytes());
        let mut hex = [0u8; 64];
        digits.copy_from_slice(self.hex_into(&mut hex));
        // Only ASCII was written.
        std::str::from_utf8(out).unwrap_or_default()
    }

    /// Writes the 64 hex digits into `out` and returns them (no allocation: object paths and the
    /// hash cache format hashes by the ten thousand).
    pub fn hex_into<'a>(&self, out: &'a mut [u8; 64]) -> &'a [u8] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        out
    }

    /// The hash written as exactly 64 lowercase hex digits (what [`Hash::hex_into`] writes);
    /// `None` for anything else.
    pub fn from_hex(digits: &[u8]) -> Option<Self> {
        fn value(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            }
        }
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (out, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            *out = value(pair[0])? << 4 | value(pair[1])?;
        }
        Some(Self(bytes))
    }

    /// The first 8 hex digits, for people.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// The object key `blake3/<2 hex>/<62 hex>` used in the cache and in every remote.
    pub fn object_key(&self) -> String {
        let h = self.to_hex();
        format!("blake3/{}/{}", &h[..2], &h[2..])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text(&mut [0u8; 71]))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Hash {
    type Err = Error;

    /// Parses `blake3:<64 hex>`; fails with a message saying what form is expected.
    fn from_str(s: &str) -> Result<Self> {
        let hexpart = s.strip_prefix(Self::PREFIX).ok_or_else(|| {
            Error::Invalid(format!(
                "hash `{s}` must start with `blake3:` followed by 64 hex digits"
            ))
        })?;
        Self::from_hex(hexpart.as_bytes()).ok_or_else(|| {
            Error::Invalid(format!(
                "hash `{s}` must be `blake3:` followed by 64 lowercase hex digits"
            ))
        })
    }
}

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.text(&mut [0u8; 71]))
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The hash of `bytes`.
pub fn hash_bytes(bytes: &[u8]) -> Hash {
    Hash(*blake3::hash(bytes).as_bytes())
}

/// The hash of everything `reader` yields.
///
/// # Errors
/// Fails when reading fails; `path` names the source in the error.
pub fn hash_reader(mut reader: impl Read, path: &Path) -> Result<(Hash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Hash(*hasher.finalize().as_bytes()), total))
}

/// The hash and size of the file at `path`: hashed on all cores when large.
///
/// # Errors
/// Fails when the file cannot be opened or read.
pub fn hash_file(path: &Path) -> Result<Hash> {
    hash_file_sized(path).map(|(h, _)| h)
}

/// Like [`hash_file`], also returning the number of bytes hashed.
///
/// # Errors
/// Fails when the file cannot be opened or read.
pub fn hash_file_sized(path: &Path) -> Result<(Hash, u64)> {
    let mut file = std::fs::File::open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    if len >= LARGE_FILE {
        return hash_large(file, path);
    }
    // Small files: one read into a buffer sized from the metadata.
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
    file.read_to_end(&mut buf).at(path)?;
    Ok((hash_bytes(&buf), buf.len() as u64))
}

/// Large files: a reader thread fills 16 MiB buffers while the hasher spreads each one over all
/// cores. Memory stays at a few buffers however large the file (a memory map would count the
/// whole file in the resident set).
fn hash_large(mut file: std::fs::File, path: &Path) -> Result<(Hash, u64)> {
    const CHUNK: usize = 16 << 20;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(1);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..2 {
        let _ = empty_tx.send(vec![0u8; CHUNK]);
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                buf.resize(CHUNK, 0);
                let mut filled = 0;
                let result = loop {
                    match file.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                buf.truncate(filled);
                let done = filled == 0 || result.is_err();
                if full_tx.send(result.map(|()| buf)).is_err() || done {
                    return;
                }
            }
        });
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        while let Ok(chunk) = full_rx.recv() {
            let chunk = chunk.at(path)?;
            if chunk.is_empty() {
                break;
            }
            hasher.update_rayon(&chunk);
            total += chunk.len() as u64;
            let _ = empty_tx.send(chunk);
        }
        drop(empty_tx);
        Ok((Hash(*hasher.finalize().as_bytes()), total))
    })
}

/// Hashes the file at `path` whose length is already known from a `stat` (saves one): one
/// exact read for small files; large files are hashed on all cores. If the
/// file changed length meanwhile, the callers' stamp checks catch it.
///
/// # Errors
/// Fails when the file cannot be opened or read.
pub(crate) fn hash_file_known_len(path: &Path, len: u64) -> Result<Hash> {
    if len >= LARGE_FILE {
        return hash_file(path);
    }
    let mut file = std::fs::File::open(path).at(path)?;
    hash_exact(&mut file, len).at(path)
}

/// [`hash_file_known_len`] for a file named relative to its open folder (no path walk), or
/// already `opened` there. A small file is returned still open, for linking exactly what was
/// read; a large one is hashed by path on all cores.
///
/// # Errors
/// Fails when the file cannot be opened or read.
pub(crate) fn hash_file_at(
    at: crate::walk::At<'_>,
    len: u64,
    opened: Option<std::fs::File>,
) -> Result<(Hash, Option<std::fs::File>)> {
    if len >= LARGE_FILE {
        return Ok((hash_file(&at.path())?, None));
    }
    let mut file = match opened {
        Some(file) => file,
        None => at.open_read().map_err(|e| Error::io(at.path(), e))?,
    };
    let hash = hash_exact(&mut file, len).map_err(|e| Error::io(at.path(), e))?;
    Ok((hash, Some(file)))
}

/// The hash of the first `len` bytes of a small file, read at once into a buffer that each
/// thread keeps (allocating and zeroing one per file showed up in `add`'s profile).
fn hash_exact(file: &mut std::fs::File, len: u64) -> std::io::Result<Hash> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    BUF.with_borrow_mut(|buf| {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let bytes = &mut buf[..len];
        file.read_exact(bytes)?;
        Ok(hash_bytes(bytes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        // BLAKE3 of the empty input, from the reference test vectors.
        assert_eq!(
            hash_bytes(b"").to_string(),
            "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn object_key_splits_two_hex() {
        let h = hash_bytes(b"");
        assert_eq!(
            h.object_key(),
            "blake3/af/1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn rejects_malformed_hashes() {
        for bad in [
            "",
            "blake3:",
            "sha256:00",
            "blake3:XYZ",
            &format!("blake3:{}", "A".repeat(64)),
            &format!("blake3:{}", "0".repeat(63)),
        ] {
            let err = bad.parse::<Hash>().unwrap_err().to_string();
            assert!(err.contains("blake3:"), "{bad}: {err}");
        }
    }

    #[test]
    fn large_and_small_files_hash_like_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 1000, (LARGE_FILE as usize) + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let p = dir.path().join(format!("f{len}"));
            std::fs::write(&p, &data).unwrap();
            assert_eq!(
                hash_file_sized(&p).unwrap(),
                (hash_bytes(&data), len as u64)
            );
            assert_eq!(
                hash_reader(&data[..], &p).unwrap(),
                (hash_bytes(&data), len as u64)
            );
        }
    }

    #[test]
    fn missing_file_names_path() {
        let err = hash_file(Path::new("/nonexistent/x.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/nonexistent/x.csv: "), "{err}");
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(bytes in any::<[u8; 32]>()) {
            let h = Hash::from_bytes(bytes);
            prop_assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        }

        #[test]
        fn text_display_and_json_are_the_prefixed_hex(bytes in any::<[u8; 32]>()) {
            let h = Hash::from_bytes(bytes);
            let want = format!("blake3:{}", hex::encode(bytes));
            let mut buf = [0u8; 71];
            prop_assert_eq!(h.text(&mut buf), want.as_str());
            prop_assert_eq!(h.to_string(), want.clone());
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(&json, &format!("\"{want}\""));
            prop_assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        }

        #[test]
        fn hex_matches_the_hex_crate(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(Hash::from_bytes(bytes).to_hex(), hex::encode(bytes));
        }

        #[test]
        fn from_hex_parses_like_the_hex_crate(bytes in any::<[u8; 32]>(), cut in 0usize..64) {
            let text = hex::encode(bytes);
            prop_assert_eq!(Hash::from_hex(text.as_bytes()), Some(Hash::from_bytes(bytes)));
            prop_assert_eq!(Hash::from_hex(&text.as_bytes()[..cut]), None);
            let upper = text.to_uppercase();
            prop_assert_eq!(Hash::from_hex(upper.as_bytes()).is_some(), upper == text);
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Hash>();
        }
    }
}
