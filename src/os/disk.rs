//! How full the filesystems holding the service's directories are (`statvfs`), each
//! filesystem read once however many of those directories it holds: the
//! [`DiskProbe`] port of the disk watchdog.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use orchestrator_actors::ports::{DiskProbe, FsReading};

/// Reads the filesystems under a list of named directories.
pub struct StatvfsProbe {
    /// What each directory is, and where.
    dirs: Vec<(String, PathBuf)>,
}

impl StatvfsProbe {
    /// A probe of `dirs`, each named for people (`data`, `worktrees`, …).
    pub fn new(dirs: Vec<(String, PathBuf)>) -> Self {
        Self { dirs }
    }
}

/// The nearest existing directory at or above `path` (a directory not created yet lives on
/// its parent's filesystem).
fn existing(path: &Path) -> Option<&Path> {
    path.ancestors().find(|p| p.exists())
}

/// Percent full as `df` counts it: used of (used + available to unprivileged users).
pub fn fill_pct(path: &Path) -> Result<f64, String> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a properly sized out-parameter.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(format!(
            "statvfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    let used = stat.f_blocks.saturating_sub(stat.f_bfree) as f64;
    let available = stat.f_bavail as f64;
    if used + available <= 0.0 {
        return Ok(0.0);
    }
    Ok(100.0 * used / (used + available))
}

/// The readings of `dirs`: one per filesystem, naming every directory it holds.
pub fn read(dirs: &[(String, PathBuf)]) -> Vec<FsReading> {
    let mut found: Vec<(u64, Vec<String>, PathBuf)> = Vec::new();
    let mut failed = Vec::new();
    for (name, dir) in dirs {
        let shown = format!("{name} {}", dir.display());
        let Some(at) = existing(dir) else {
            failed.push(FsReading {
                id: format!("unreadable:{}", dir.display()),
                holds: shown,
                fill_pct: Err(format!("no part of {} exists", dir.display())),
            });
            continue;
        };
        match std::fs::metadata(at) {
            Ok(meta) => match found.iter_mut().find(|(dev, _, _)| *dev == meta.dev()) {
                Some((_, holds, _)) => holds.push(shown),
                None => found.push((meta.dev(), vec![shown], at.to_path_buf())),
            },
            Err(e) => failed.push(FsReading {
                id: format!("unreadable:{}", dir.display()),
                holds: shown,
                fill_pct: Err(format!("{}: {e}", at.display())),
            }),
        }
    }
    found
        .into_iter()
        .map(|(dev, holds, at)| FsReading {
            id: format!("dev:{dev}"),
            holds: holds.join(", "),
            fill_pct: fill_pct(&at),
        })
        .chain(failed)
        .collect()
}

#[async_trait]
impl DiskProbe for StatvfsProbe {
    async fn read(&self) -> Vec<FsReading> {
        let dirs = self.dirs.clone();
        tokio::task::spawn_blocking(move || read(&dirs))
            .await
            .unwrap_or_else(|e| {
                vec![FsReading {
                    id: "probe".into(),
                    holds: "every directory".into(),
                    fill_pct: Err(format!("the reading failed: {e}")),
                }]
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_on_one_filesystem_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = vec![
            ("data".to_string(), dir.path().to_path_buf()),
            // Not created yet: it lives on its parent's filesystem.
            ("worktrees".to_string(), dir.path().join("worktrees")),
        ];
        let readings = read(&dirs);
        assert_eq!(readings.len(), 1, "{readings:?}");
        let fill = *readings[0].fill_pct.as_ref().unwrap();
        assert!((0.0..=100.0).contains(&fill), "{fill}");
        assert!(readings[0].holds.contains("data ") && readings[0].holds.contains("worktrees "));
    }

    #[test]
    fn a_directory_that_cannot_be_read_says_so() {
        let readings = read(&[("data".to_string(), PathBuf::from("relative/nowhere"))]);
        assert_eq!(readings.len(), 1);
        assert!(readings[0].fill_pct.is_err(), "{readings:?}");
    }
}
