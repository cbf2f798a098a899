//! Throwaway checkouts: a commit of a clone checked out, detached, in a directory of its own
//! under `<repos>/_ci/`, for a CI run that must neither touch a task's worktree nor leave
//! anything in it (a test suite's caches and build output go with the checkout). Made and
//! removed during the clone's turn; what runs in it runs outside the turn.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orchestrator_actors::domain::gates::CiOutcome;

use super::command::{GitError, path_arg};
use super::owner::CloneTurn;
use super::{Workspace, names, remove_dir_all};

/// Where throwaway checkouts live, beside the clones (no repository name starts with `_`).
const CHECKOUTS_DIR: &str = "_ci";

/// Numbers this process's checkouts.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Workspace {
    /// Runs `test_cmd` on commit `sha` of `clone`, exactly as committed, in a throwaway
    /// checkout that is removed afterwards. A checkout that cannot be made is a
    /// [`CiOutcome::ToolError`] (infrastructure), never a red verdict.
    pub async fn run_test_cmd_at(
        &self,
        clone: &Path,
        sha: &str,
        test_cmd: &str,
        timeout: Duration,
    ) -> CiOutcome {
        let dir = match self.checkout(clone, sha).await {
            Ok(dir) => dir,
            Err(e) => {
                return CiOutcome::ToolError {
                    message: format!("cannot check out {sha} to run the tests: {e}"),
                };
            }
        };
        let outcome = self.run_test_cmd(&dir, test_cmd, timeout).await;
        if let Err(e) = self.drop_checkout(clone, &dir).await {
            tracing::warn!(checkout = %dir.display(), error = %e, "cannot remove a CI checkout");
        }
        outcome
    }

    /// Checks `sha` out, detached, into a new directory under `<repos>/_ci/`.
    async fn checkout(&self, clone: &Path, sha: &str) -> Result<PathBuf, GitError> {
        names::sha(sha)?;
        let name = clone
            .file_name()
            .map_or_else(|| "clone".into(), |n| n.to_string_lossy().into_owned());
        let root = self.cache_dir.join(CHECKOUTS_DIR);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = root.join(format!("{name}-{}-{n}", std::process::id()));
        let turn = self.turn(clone).await?;
        sweep_leftovers(&turn, clone, &root, &name).await;
        super::create_dir_all(&root).await?;
        turn.git(
            clone,
            &[
                "worktree",
                "add",
                "--quiet",
                "--detach",
                path_arg(&dir)?,
                sha,
            ],
        )
        .await?;
        Ok(dir)
    }

    /// Removes a throwaway checkout and git's record of it.
    async fn drop_checkout(&self, clone: &Path, dir: &Path) -> Result<(), GitError> {
        let turn = self.turn(clone).await?;
        remove_checkout(&turn, clone, dir).await
    }
}

async fn remove_checkout(turn: &CloneTurn, clone: &Path, dir: &Path) -> Result<(), GitError> {
    let remove = ["worktree", "remove", "--force", path_arg(dir)?];
    if turn.git(clone, &remove).await.is_err() {
        remove_dir_all(dir).await?;
    }
    turn.git(clone, &["worktree", "prune"]).await.map(drop)
}

/// Removes the checkouts of `clone` an earlier process left (killed mid-run): with one
/// service per data directory, a checkout named with another pid is nobody's.
async fn sweep_leftovers(turn: &CloneTurn, clone: &Path, root: &Path, name: &str) {
    let Ok(mut entries) = tokio::fs::read_dir(root).await else {
        return;
    };
    let mine = format!("{name}-{}-", std::process::id());
    let ours = format!("{name}-");
    while let Ok(Some(entry)) = entries.next_entry().await {
        let file = entry.file_name().to_string_lossy().into_owned();
        let of_this_clone = file
            .strip_prefix(&ours)
            .is_some_and(|rest| rest.split('-').count() == 2);
        if of_this_clone && !file.starts_with(&mine) {
            let dir = entry.path();
            if let Err(e) = remove_checkout(turn, clone, &dir).await {
                tracing::warn!(checkout = %dir.display(), error = %e, "cannot remove a CI checkout an earlier boot left");
            }
        }
    }
}
