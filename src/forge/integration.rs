//! The forge's half of the merge queue: a task's candidate built in the clone and pushed as
//! its branch's head, CI on exactly one commit (local: the test command in a throwaway
//! checkout; Gitea: the commit's combined status, awaited), and the fast-forward of `main`
//! (local: a plain push; Gitea: the pull request merged `fast-forward-only`), confirmed by
//! `origin/main` containing the candidate.

use orchestrator_actors::domain::gates::CiOutcome;
use orchestrator_actors::ports::TaskRecord;
use orchestrator_actors::ports::merge_queue::{CandidateBuild, FastForward};

use super::ProjectForge;
use crate::git::{CandidateOutcome, FastForwardOutcome};

impl ProjectForge {
    /// Builds the task's candidate onto `onto` (`origin/main` when `None`).
    pub(super) async fn candidate(
        &self,
        task: &TaskRecord,
        onto: Option<&str>,
    ) -> Result<CandidateBuild, String> {
        let clone = self.clone_of(task).await?;
        let branch = self.branch(task);
        let message = format!(
            "Merge {branch} into main: {} ({})",
            task.title, task.work_item_id
        );
        let built = self
            .workspace
            .build_candidate(&clone, &branch, onto, &message)
            .await
            .map_err(|e| format!("cannot build the candidate of {branch}: {e}"))?;
        Ok(match built {
            CandidateOutcome::Built { sha, base } => {
                // Gitea's CI runs on what is pushed: its candidate is published now.
                if self.gitea_of(task).is_some() {
                    self.publish(task, &sha).await?;
                }
                CandidateBuild::Built { sha, base }
            }
            CandidateOutcome::Conflict { files } => CandidateBuild::Conflict { files },
        })
    }

    /// Pushes the task's `candidate` as its branch's head and moves its worktree to it.
    pub(super) async fn publish(&self, task: &TaskRecord, candidate: &str) -> Result<(), String> {
        let clone = self.clone_of(task).await?;
        let branch = self.branch(task);
        let worktree = self.worktree(task);
        self.workspace
            .publish_candidate(&clone, Some(&worktree), &branch, candidate)
            .await
            .map_err(|e| format!("cannot publish the candidate {candidate} of {branch}: {e}"))?;
        if let Err(e) = self
            .heads
            .record_branch_head(&task.repo, &branch, candidate)
            .await
        {
            tracing::warn!(task = %task.work_item_id, error = %e, "cannot record the branch head");
        }
        Ok(())
    }

    /// Whether the repository's candidates may be stacked in batches: not on Gitea, whose CI
    /// needs each candidate pushed as its branch's head before it is tested — a batch split
    /// by a bisection would leave the earlier members' changes in the later members' branches.
    pub(super) fn batches(&self, repo: &str) -> bool {
        self.project_of(repo)
            .is_ok_and(|p| p.gitea_repo.is_none() || self.gitea.is_none())
    }

    /// CI on exactly commit `sha` of `repo`.
    pub(super) async fn ci_at(&self, repo: &str, sha: &str) -> CiOutcome {
        let project = match self.project_of(repo) {
            Ok(project) => project,
            Err(message) => return CiOutcome::ToolError { message },
        };
        if let (Some(gitea), Some(gitea_repo)) = (&self.gitea, &project.gitea_repo) {
            return gitea.ci(gitea_repo, sha).await;
        }
        match self.ensure_clone_of(project).await {
            Ok(clone) => {
                self.workspace
                    .run_test_cmd_at(&clone, sha, &project.test_cmd, self.ci_timeout)
                    .await
            }
            Err(e) => CiOutcome::ToolError {
                message: format!("cannot find the commit to test: {e}"),
            },
        }
    }

    /// Fast-forwards `main` to the task's `candidate`.
    pub(super) async fn fast_forward(
        &self,
        task: &TaskRecord,
        candidate: &str,
    ) -> Result<FastForward, String> {
        let clone = self.clone_of(task).await?;
        if let Some((gitea, repo)) = self.gitea_of(task) {
            let branch = self.branch(task);
            if let Err(refused) = gitea.fast_forward(repo, task, &branch, candidate).await {
                // Refused: either `main` moved (rebuild) or something else is wrong.
                let main = self
                    .workspace
                    .main_head(&clone)
                    .await
                    .map_err(|e| e.to_string())?;
                return match self.workspace.is_merged(&clone, candidate).await {
                    Ok(true) => Ok(FastForward::Merged),
                    Ok(false)
                        if !self
                            .workspace
                            .is_ancestor(&clone, &main, candidate)
                            .await
                            .unwrap_or(true) =>
                    {
                        Ok(FastForward::MainMoved { main })
                    }
                    Ok(false) => Err(refused),
                    Err(e) => Err(e.to_string()),
                };
            }
            return match self.workspace.is_merged(&clone, candidate).await {
                Ok(true) => Ok(FastForward::Merged),
                Ok(false) => Err(format!(
                    "Gitea answered the fast-forward but origin/main does not contain {candidate}"
                )),
                Err(e) => Err(e.to_string()),
            };
        }
        let outcome = self
            .workspace
            .fast_forward_main(&clone, candidate)
            .await
            .map_err(|e| format!("cannot fast-forward main to {candidate}: {e}"))?;
        match outcome {
            FastForwardOutcome::Merged => {
                let branch = self.branch(task);
                if let Err(e) = self
                    .pulls
                    .mark_pull_request_merged(&task.repo, &branch)
                    .await
                {
                    tracing::warn!(task = %task.work_item_id, error = %e, "cannot mark the pull request merged");
                }
                Ok(FastForward::Merged)
            }
            FastForwardOutcome::MainMoved { main } => Ok(FastForward::MainMoved { main }),
        }
    }
}
