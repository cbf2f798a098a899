//! The local forge's merge: a `--no-ff` merge of a pushed task branch into `main`, done in the
//! repository's clone and published with a plain (never forced) push. A conflict is an answer,
//! not an error; losing a race to another push is retried once on the new `main`.

use std::path::Path;

use super::command::GitError;
use super::owner::CloneTurn;
use super::{Workspace, fetch, names, require_origin_main};

/// What a merge into `main` came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// `main` on origin now contains the branch.
    Merged {
        /// The merge commit (or origin's `main` itself when the branch was already in it).
        sha: String,
    },
    /// The branch does not merge cleanly; origin's `main` is untouched.
    Conflict {
        /// The conflicted paths, relative to the repository root.
        files: Vec<String>,
    },
}

/// One merge attempt's result: done, or lost a race to a concurrent push of `main`.
enum Attempt {
    /// Finished, one way or the other.
    Done(MergeOutcome),
    /// origin's `main` moved between our fetch and our push.
    Raced(GitError),
}

impl Workspace {
    /// Merges `origin/<branch>` into `origin/main` with a merge commit titled `message` and
    /// pushes `main`. Runs in the clone's own working tree: nothing else uses it (artifacts are
    /// read from `origin/main` objects, tasks have their own worktrees), and the clone's turn
    /// keeps merges of one repository in sequence. The caller still confirms the merge with
    /// [`Workspace::is_merged`].
    pub async fn merge_into_main(
        &self,
        clone: &Path,
        branch: &str,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        names::task_branch(branch)?;
        let turn = self.turn(clone).await?;
        match merge_once(&turn, clone, branch, message).await? {
            Attempt::Done(outcome) => Ok(outcome),
            Attempt::Raced(error) => {
                tracing::info!(%branch, %error, "origin/main moved during the merge; retrying once");
                match merge_once(&turn, clone, branch, message).await? {
                    Attempt::Done(outcome) => Ok(outcome),
                    Attempt::Raced(error) => Err(error),
                }
            }
        }
    }
}

async fn merge_once(
    turn: &CloneTurn,
    clone: &Path,
    branch: &str,
    message: &str,
) -> Result<Attempt, GitError> {
    fetch(turn, clone).await?;
    require_origin_main(clone).await?;
    let theirs = format!("origin/{branch}");
    let exists = turn
        .git_output(
            clone,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/remotes/{theirs}"),
            ],
        )
        .await?;
    if !exists.success() {
        return Err(GitError::State {
            path: clone.to_path_buf(),
            problem: format!("branch {branch} is not on origin (was it pushed?)"),
        });
    }
    // Start from exactly origin/main, whatever an interrupted earlier merge left behind.
    let _ = turn.git_output(clone, &["merge", "--abort"]).await?;
    turn.git(
        clone,
        &[
            "checkout",
            "--quiet",
            "--force",
            "-B",
            "main",
            "origin/main",
        ],
    )
    .await?;
    turn.git(clone, &["clean", "--quiet", "--force", "-d", "-x"])
        .await?;

    let merged = turn
        .git_output(
            clone,
            &["merge", "--no-ff", "--no-edit", "-m", message, &theirs],
        )
        .await?;
    if !merged.success() {
        let files = conflicted_files(turn, clone).await?;
        if let Err(e) = turn.git(clone, &["merge", "--abort"]).await {
            // The next merge resets the working tree anyway.
            tracing::warn!(error = %e, "git merge --abort failed after a failed merge");
        }
        if files.is_empty() {
            return Err(merged.into_error());
        }
        return Ok(Attempt::Done(MergeOutcome::Conflict { files }));
    }
    let sha = turn.git(clone, &["rev-parse", "--verify", "HEAD"]).await?;
    let pushed = turn
        .git_output(
            clone,
            &[
                "push",
                "--quiet",
                "origin",
                "refs/heads/main:refs/heads/main",
            ],
        )
        .await?;
    if pushed.success() {
        Ok(Attempt::Done(MergeOutcome::Merged { sha }))
    } else if lost_race(&pushed.stderr) {
        Ok(Attempt::Raced(pushed.into_error()))
    } else {
        Err(pushed.into_error())
    }
}

/// Paths left unmerged by a failed merge.
async fn conflicted_files(turn: &CloneTurn, clone: &Path) -> Result<Vec<String>, GitError> {
    let out = turn
        .git_output(clone, &["diff", "--name-only", "--diff-filter=U", "-z"])
        .await?;
    if !out.success() {
        return Err(out.into_error());
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// Whether a push of `main` failed because origin's `main` moved: refused as not a
/// fast-forward by our side, or by the remote when it updated the ref after us.
fn lost_race(stderr: &str) -> bool {
    stderr.contains("[rejected]")
        || (stderr.contains("[remote rejected]")
            && ["failed to update ref", "failed to lock", "cannot lock ref"]
                .iter()
                .any(|reason| stderr.contains(reason)))
}

#[cfg(test)]
mod tests {
    use super::lost_race;

    #[test]
    fn only_a_moved_main_counts_as_a_lost_race() {
        assert!(lost_race(
            " ! [rejected]        main -> main (fetch first)\nerror: failed to push some refs"
        ));
        assert!(lost_race(
            " ! [remote rejected] main -> main (failed to update ref)"
        ));
        assert!(!lost_race(
            " ! [remote rejected] main -> main (pre-receive hook declined)"
        ));
        assert!(!lost_race("fatal: could not read from remote repository"));
    }
}
