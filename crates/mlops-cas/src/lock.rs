//! The repository lock: one mutating command at a time. An exclusive `flock` on
//! `.mlops/lock`, released by the kernel when the process ends (even by `kill -9`), with the
//! holder's pid and command line written inside so the second command can say who holds it.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Held while a mutating command runs; dropping it releases the lock.
#[derive(Debug)]
pub struct RepoLock {
    file: std::fs::File,
    path: PathBuf,
}

impl RepoLock {
    /// Takes the lock at `path`, failing at once with the holder's pid if another process has it.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the holder; I/O errors.
    pub fn acquire(path: &Path) -> Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let mut lines = text.lines();
                let pid = lines
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0);
                let command = lines.next().unwrap_or("").to_owned();
                return Err(Error::Locked {
                    pid,
                    command,
                    path: path.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        let cmdline: Vec<String> = std::env::args().collect();
        file.set_len(0).at(path)?;
        file.rewind().at(path)?;
        writeln!(file, "{}\n{}", std::process::id(), cmdline.join(" ")).at(path)?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lock");
        let held = RepoLock::acquire(&p).unwrap();
        let err = RepoLock::acquire(&p).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("another mlops command is running"), "{msg}");
        drop(held);
        RepoLock::acquire(&p).unwrap();
    }
}
