//! The port the disk watchdog reads filesystems through: one reading per filesystem that
//! holds something of the service's (the data directory, the clones, the worktrees), each
//! filesystem once however many of them it holds.

use async_trait::async_trait;

/// How full one filesystem is.
#[derive(Clone, Debug, PartialEq)]
pub struct FsReading {
    /// Which filesystem (its device), stable between readings.
    pub id: String,
    /// What of the service's it holds, for people (`data /srv/orch/data, worktrees …`).
    pub holds: String,
    /// Percent full as `df` counts it (used of used + available), or why it could not be
    /// read.
    pub fill_pct: Result<f64, String>,
}

/// Reads the filesystems.
#[async_trait]
pub trait DiskProbe: Send + Sync + 'static {
    /// One reading per filesystem.
    async fn read(&self) -> Vec<FsReading>;
}
