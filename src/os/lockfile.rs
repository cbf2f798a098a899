//! Lock files whose lock travels with the work: the service takes an exclusive `flock(2)`
//! on a file and hands the locked descriptor to the process it starts, so the lock stays
//! held for as long as that process — or anything it starts that keeps the descriptor —
//! lives, even when the service itself is killed. A later boot that finds the lock taken
//! knows, from the operating system and not from a guess about timing, that the earlier work
//! is still running.

use std::fs::{File, TryLockError};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a taken lock is tried again while waiting for it.
const POLL: Duration = Duration::from_millis(20);

/// An exclusive lock held on a file; released when this value and every descriptor handed
/// on with [`LockFile::pass_to`] are closed.
#[derive(Debug)]
pub struct LockFile {
    file: File,
    path: PathBuf,
}

impl LockFile {
    /// Opens `path` (creating it and its directory) and takes its lock if nobody holds it;
    /// `Ok(None)` when it is taken.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<LockFile>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockFile {
                file,
                path: path.to_path_buf(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Takes the lock of `path`, waiting up to `within` for whoever holds it to let go;
    /// `Ok(None)` when it is still taken then.
    pub async fn acquire(path: &Path, within: Duration) -> std::io::Result<Option<LockFile>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(Some(lock));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether someone holds the lock of `path` now (a missing file is not held).
    pub fn is_held(path: &Path) -> bool {
        if !path.exists() {
            return false;
        }
        matches!(Self::try_acquire(path), Ok(None))
    }

    /// The locked file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands the locked descriptor to the process `cmd` starts, as its descriptor `target`
    /// (open across its own `exec`s), so the lock lives as long as that process and whatever
    /// inherits the descriptor from it.
    pub fn pass_to(&self, cmd: &mut tokio::process::Command, target: RawFd) {
        let fd = self.file.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls are made (dup2, fcntl).
        unsafe {
            cmd.pre_exec(move || {
                if fd == target {
                    if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, target) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_handed_to_a_child_outlives_its_holder_until_the_child_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/one.lock");
        let lock = LockFile::try_acquire(&path).unwrap().expect("free");
        // Taken: a second open file cannot lock it, even in the same process.
        assert!(LockFile::try_acquire(&path).unwrap().is_none());
        let mut cmd = tokio::process::Command::new("sleep");
        cmd.arg("0.5");
        lock.pass_to(&mut cmd, 7);
        let mut child = cmd.spawn().unwrap();
        drop(lock);
        assert!(LockFile::is_held(&path), "the child holds it now");
        child.wait().await.unwrap();
        assert!(!LockFile::is_held(&path));
        let again = LockFile::acquire(&path, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(again.is_some());
    }
}
