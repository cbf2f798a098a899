//! The [`Housekeeping`] port: the worktrees directory (a finished task's worktree removed
//! through the forge, its branch kept), the runs directory (a run's files, grouped by run
//! id), and the webhook journal's retention in the store.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use orchestrator_actors::ports::workbench::Forge;
use orchestrator_actors::ports::{Housekeeping, RunFiles, TaskRecord};

use crate::store::SqliteStore;

/// The service's directories and journal, for housekeeping.
pub struct ServiceHousekeeping {
    /// The journal and the runs' records.
    pub store: Arc<SqliteStore>,
    /// Removes worktrees.
    pub forge: Arc<dyn Forge>,
    /// `<data>/runs`.
    pub runs_dir: PathBuf,
    /// `ORCH_WORKTREES_DIR`.
    pub worktrees_dir: PathBuf,
}

/// The run a file in the runs directory belongs to: its name up to the first dot
/// (`run-7-1-<boot>.log` → `run-7-1-<boot>`); `None` for what is not a run's.
fn run_of(name: &str) -> Option<&str> {
    let (stem, _) = name.split_once('.')?;
    stem.starts_with("run-").then_some(stem)
}

/// Every run with files in `dir`, and since when its newest file was last written.
fn list_runs(dir: &std::path::Path, now: SystemTime) -> Result<Vec<RunFiles>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut newest: BTreeMap<String, SystemTime> = BTreeMap::new();
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(run) = name.to_str().and_then(run_of) else {
            continue;
        };
        let modified = meta.modified().unwrap_or(now);
        let slot = newest.entry(run.to_string()).or_insert(modified);
        *slot = (*slot).max(modified);
    }
    Ok(newest
        .into_iter()
        .map(|(run_id, at)| RunFiles {
            run_id,
            age: now.duration_since(at).unwrap_or_default(),
        })
        .collect())
}

#[async_trait]
impl Housekeeping for ServiceHousekeeping {
    async fn worktrees(&self) -> Result<Vec<String>, String> {
        let entries = match std::fs::read_dir(&self.worktrees_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", self.worktrees_dir.display())),
        };
        Ok(entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect())
    }

    async fn remove_worktree(&self, task: &TaskRecord) -> Result<(), String> {
        self.forge.remove_worktree(task).await
    }

    async fn run_files(&self) -> Result<Vec<RunFiles>, String> {
        let dir = self.runs_dir.clone();
        tokio::task::spawn_blocking(move || list_runs(&dir, SystemTime::now()))
            .await
            .map_err(|e| e.to_string())?
    }

    async fn live_runs(&self) -> Result<HashSet<String>, String> {
        self.store.live_runs().await.map_err(|e| e.to_string())
    }

    async fn remove_run_files(&self, run_id: &str) -> Result<u32, String> {
        let dir = self.runs_dir.clone();
        let run = run_id.to_string();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_str().and_then(run_of) != Some(run.as_str()) {
                    continue;
                }
                std::fs::remove_file(entry.path())
                    .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
                removed += 1;
            }
            Ok(removed)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn prune_events(&self, older_than: Duration) -> Result<u64, String> {
        let before = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let before = humantime::format_rfc3339_millis(before).to_string();
        self.store
            .prune_events(before)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_s_files_are_grouped_and_aged_by_their_newest() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "run-1-1-b.log",
            "run-1-1-b.out",
            "run-2-1-b.exit",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("locks")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        let runs = list_runs(dir.path(), later).unwrap();
        let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["run-1-1-b", "run-2-1-b"]);
        assert!(runs.iter().all(|r| r.age >= Duration::from_secs(3590)));
        assert_eq!(run_of("run-1-1-b.abandoned"), Some("run-1-1-b"));
        assert_eq!(run_of("locks"), None);
    }
}
