//! Candidates and the fast-forward of `main` — the git half of the merge queue. A task's
//! candidate is its pushed branch merged into `main` (first parent `main`), made in the
//! clone's own working tree (nothing else uses it: artifacts are read from objects, tasks
//! have their own worktrees) during the clone's turn, and pushed as the branch's new head —
//! a fast-forward of the branch, never forced. `main` then only ever moves by a plain push
//! to a tested candidate that descends from it. A conflict is an answer, not an error.

use std::path::Path;

use super::command::GitError;
use super::owner::CloneTurn;
use super::{Workspace, exists, fetch, names, require_origin_main};

/// What building a candidate came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CandidateOutcome {
    /// Built and pushed as the branch's head.
    Built {
        /// The candidate.
        sha: String,
        /// The commit it was built on (its first parent).
        base: String,
    },
    /// The branch does not merge cleanly; nothing was pushed.
    Conflict {
        /// The conflicted paths, relative to the repository root.
        files: Vec<String>,
    },
}

/// What a fast-forward of `main` came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FastForwardOutcome {
    /// `origin/main` contains the candidate.
    Merged,
    /// `origin/main` moved away from the candidate's base (it is not an ancestor of the
    /// candidate): the candidate must be rebuilt.
    MainMoved {
        /// Where `origin/main` is.
        main: String,
    },
}

/// What the tests' merge into `main` came to (a candidate built and fast-forwarded at once).
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// `main` on origin now contains the branch.
    Merged {
        /// The candidate `main` now points at.
        sha: String,
    },
    /// The branch does not merge cleanly; origin's `main` is untouched.
    Conflict {
        /// The conflicted paths.
        files: Vec<String>,
    },
}

impl Workspace {
    /// Builds the candidate of `branch` (as pushed) onto `onto` (a commit; `origin/main`
    /// fetched now when `None`) with a merge commit titled `message`, in the clone only
    /// (nothing is pushed: see [`Workspace::publish_candidate`]). A branch already contained
    /// in the base has the base as its candidate.
    pub async fn build_candidate(
        &self,
        clone: &Path,
        branch: &str,
        onto: Option<&str>,
        message: &str,
    ) -> Result<CandidateOutcome, GitError> {
        names::task_branch(branch)?;
        if let Some(onto) = onto {
            names::sha(onto)?;
        }
        let turn = self.turn(clone).await?;
        fetch(&turn, clone).await?;
        require_origin_main(clone).await?;
        let base = match onto {
            Some(onto) => turn.git(clone, &["rev-parse", "--verify", onto]).await?,
            None => {
                turn.git(
                    clone,
                    &["rev-parse", "--verify", "refs/remotes/origin/main"],
                )
                .await?
            }
        };
        let theirs_ref = format!("refs/remotes/origin/{branch}");
        let theirs = turn
            .git_output(clone, &["rev-parse", "--verify", "--quiet", &theirs_ref])
            .await?;
        if !theirs.success() {
            return Err(GitError::State {
                path: clone.to_path_buf(),
                problem: format!("branch {branch} is not on origin (was it pushed?)"),
            });
        }
        let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_string();
        let sha = if is_ancestor(&turn, clone, &theirs, &base).await? {
            base.clone()
        } else {
            // Start from exactly the base, whatever an interrupted earlier build left.
            let _ = turn.git_output(clone, &["merge", "--abort"]).await?;
            turn.git(
                clone,
                &["checkout", "--quiet", "--force", "--detach", &base],
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
                let files = conflicted_files(&turn, clone).await?;
                if let Err(e) = turn.git(clone, &["merge", "--abort"]).await {
                    // The next build resets the working tree anyway.
                    tracing::warn!(error = %e, "git merge --abort failed after a failed merge");
                }
                if files.is_empty() {
                    return Err(merged.into_error());
                }
                return Ok(CandidateOutcome::Conflict { files });
            }
            turn.git(clone, &["rev-parse", "--verify", "HEAD"]).await?
        };
        Ok(CandidateOutcome::Built { sha, base })
    }

    /// Publishes `candidate` as `branch`'s head (a fast-forward of the branch: the candidate
    /// descends from it; never forced) and moves `worktree` (the task's, if it exists) to it.
    /// Idempotent.
    pub async fn publish_candidate(
        &self,
        clone: &Path,
        worktree: Option<&Path>,
        branch: &str,
        candidate: &str,
    ) -> Result<(), GitError> {
        names::task_branch(branch)?;
        names::sha(candidate)?;
        let turn = self.turn(clone).await?;
        let refspec = format!("{candidate}:refs/heads/{branch}");
        turn.git(clone, &["push", "--quiet", "origin", &refspec])
            .await?;
        turn.git(
            clone,
            &[
                "update-ref",
                &format!("refs/remotes/origin/{branch}"),
                candidate,
            ],
        )
        .await?;
        if let Some(worktree) = worktree
            && exists(worktree).await?
        {
            turn.git(worktree, &["merge", "--ff-only", "--quiet", candidate])
                .await?;
        }
        Ok(())
    }

    /// Moves `origin/main` to `candidate` with a plain push, if `main` is still an ancestor
    /// of it; `main` already containing it is success too (a retry after a lost answer).
    pub async fn fast_forward_main(
        &self,
        clone: &Path,
        candidate: &str,
    ) -> Result<FastForwardOutcome, GitError> {
        names::sha(candidate)?;
        let turn = self.turn(clone).await?;
        fetch(&turn, clone).await?;
        require_origin_main(clone).await?;
        let main = turn
            .git(
                clone,
                &["rev-parse", "--verify", "refs/remotes/origin/main"],
            )
            .await?;
        if is_ancestor(&turn, clone, candidate, &main).await? {
            return Ok(FastForwardOutcome::Merged);
        }
        if !is_ancestor(&turn, clone, &main, candidate).await? {
            return Ok(FastForwardOutcome::MainMoved { main });
        }
        let refspec = format!("{candidate}:refs/heads/main");
        let pushed = turn
            .git_output(clone, &["push", "--quiet", "origin", &refspec])
            .await?;
        if pushed.success() {
            turn.git(
                clone,
                &["update-ref", "refs/remotes/origin/main", candidate],
            )
            .await?;
            Ok(FastForwardOutcome::Merged)
        } else if lost_race(&pushed.stderr) {
            fetch(&turn, clone).await?;
            let main = turn
                .git(
                    clone,
                    &["rev-parse", "--verify", "refs/remotes/origin/main"],
                )
                .await?;
            Ok(FastForwardOutcome::MainMoved { main })
        } else {
            Err(pushed.into_error())
        }
    }

    /// Deletes `branch` on the origin (a task branch; never `main`); already gone is `Ok`.
    pub async fn delete_remote_branch(&self, clone: &Path, branch: &str) -> Result<(), GitError> {
        names::task_branch(branch)?;
        let turn = self.turn(clone).await?;
        let out = turn
            .git_output(clone, &["push", "--quiet", "origin", "--delete", branch])
            .await?;
        if out.success() || out.stderr.contains("remote ref does not exist") {
            let _ = turn
                .git_output(
                    clone,
                    &["update-ref", "-d", &format!("refs/remotes/origin/{branch}")],
                )
                .await?;
            return Ok(());
        }
        Err(out.into_error())
    }

    /// Whether commit `ancestor` is an ancestor of (or equal to) `descendant` in `clone` (a
    /// read: no turn, no fetch).
    pub async fn is_ancestor(
        &self,
        clone: &Path,
        ancestor: &str,
        descendant: &str,
    ) -> Result<bool, GitError> {
        names::sha(ancestor)?;
        names::sha(descendant)?;
        let out = super::command::git_output(
            clone,
            &["merge-base", "--is-ancestor", ancestor, descendant],
        )
        .await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(out.into_error()),
        }
    }

    /// Where `origin/main` of `clone` is, fetched now.
    pub async fn main_head(&self, clone: &Path) -> Result<String, GitError> {
        let turn = self.turn(clone).await?;
        fetch(&turn, clone).await?;
        require_origin_main(clone).await?;
        turn.git(
            clone,
            &["rev-parse", "--verify", "refs/remotes/origin/main"],
        )
        .await
    }

    /// Merges the latest `origin/main` into `worktree` without committing, leaving any
    /// conflicts in place (for the developer to resolve). A merge already in progress there
    /// is left as it is.
    pub async fn merge_main_into_worktree(
        &self,
        clone: &Path,
        worktree: &Path,
    ) -> Result<(), GitError> {
        let turn = self.turn(clone).await?;
        fetch(&turn, clone).await?;
        require_origin_main(clone).await?;
        let in_progress = turn
            .git_output(
                worktree,
                &["rev-parse", "--verify", "--quiet", "MERGE_HEAD"],
            )
            .await?;
        if in_progress.success() {
            return Ok(());
        }
        let merged = turn
            .git_output(
                worktree,
                &[
                    "merge",
                    "--no-ff",
                    "--no-commit",
                    "refs/remotes/origin/main",
                ],
            )
            .await?;
        if merged.success() || !conflicted_files(&turn, worktree).await?.is_empty() {
            Ok(())
        } else {
            Err(merged.into_error())
        }
    }

    /// The tests' merge: the candidate of `branch` built on `origin/main` and `main`
    /// fast-forwarded to it.
    #[cfg(test)]
    pub async fn merge_into_main(
        &self,
        clone: &Path,
        branch: &str,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        match self.build_candidate(clone, branch, None, message).await? {
            CandidateOutcome::Conflict { files } => Ok(MergeOutcome::Conflict { files }),
            CandidateOutcome::Built { sha, .. } => match self.fast_forward_main(clone, &sha).await?
            {
                FastForwardOutcome::Merged => Ok(MergeOutcome::Merged { sha }),
                FastForwardOutcome::MainMoved { main } => Err(GitError::State {
                    path: clone.to_path_buf(),
                    problem: format!("main moved to {main}"),
                }),
            },
        }
    }
}

/// Whether `a` is an ancestor of (or equal to) `b`.
async fn is_ancestor(turn: &CloneTurn, clone: &Path, a: &str, b: &str) -> Result<bool, GitError> {
    let out = turn
        .git_output(clone, &["merge-base", "--is-ancestor", a, b])
        .await?;
    match out.code {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(out.into_error()),
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
