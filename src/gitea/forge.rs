//! The Gitea half of the forge, for projects with a `gitea_repo`: the pull request is
//! Gitea's (ensure-open), CI is Gitea's combined commit status of the branch head (polled:
//! failure/error is red at once, pending is waited for within a budget), and the merge is
//! Gitea's merge API (`Do: fast-forward-only`, pinned to the tested candidate), confirmed by
//! ancestry of `origin/main`.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_actors::domain::gates::CiOutcome;
use orchestrator_actors::ports::TaskRecord;

use crate::gitea::{CiVerdict, GiteaClient, MergeOptions, MergeOutcome};

/// Gitea access for the forge.
pub struct GiteaForge {
    /// The API.
    pub client: Arc<GiteaClient>,
    /// How often a pending status is polled.
    pub ci_poll: Duration,
    /// How long pending is waited for before the gate defers.
    pub ci_wait: Duration,
}

impl GiteaForge {
    /// Opens the branch's pull request into `main`, unless one is open already.
    pub async fn ensure_pull_request(
        &self,
        gitea_repo: &str,
        task: &TaskRecord,
        branch: &str,
    ) -> Result<u64, String> {
        let title = format!("{}: {}", task.work_item_id, task.title);
        let body = format!(
            "Work item {} — opened by the orchestrator.\n\n{}",
            task.work_item_id, task.description
        );
        let (pr, created) = self
            .client
            .ensure_open_pr(gitea_repo, branch, "main", &title, &body)
            .await
            .map_err(|e| format!("cannot open a pull request for {branch}: {e}"))?;
        if created {
            tracing::info!(task = %task.work_item_id, number = pr.number, %branch, "Gitea pull request opened");
        }
        Ok(pr.number)
    }

    /// CI of commit `sha`, as the gate needs it.
    pub async fn ci(&self, gitea_repo: &str, sha: &str) -> CiOutcome {
        match self
            .client
            .wait_ci_green(gitea_repo, sha, self.ci_poll, self.ci_wait)
            .await
        {
            Ok(CiVerdict::Green { summary }) => CiOutcome::Green { summary },
            Ok(CiVerdict::Red { details }) => CiOutcome::Red {
                output_tail: details,
            },
            // Not an answer about the code: the gate defers and asks again later.
            Ok(pending @ CiVerdict::StillPending { .. }) => CiOutcome::ToolError {
                message: format!("{pending} for {sha}"),
            },
            Err(e) => CiOutcome::ToolError {
                message: format!("cannot read the CI status of {sha}: {e}"),
            },
        }
    }

    /// Fast-forwards `main` to `candidate` (the branch's head) by merging the branch's pull
    /// request `fast-forward-only`, pinned to that head. `Err` says why Gitea refused.
    pub async fn fast_forward(
        &self,
        gitea_repo: &str,
        task: &TaskRecord,
        branch: &str,
        candidate: &str,
    ) -> Result<(), String> {
        let number = self.ensure_pull_request(gitea_repo, task, branch).await?;
        let options = MergeOptions::fast_forward_only(candidate);
        match self.client.merge(gitea_repo, number, &options).await {
            Ok(MergeOutcome::Merged | MergeOutcome::AlreadyMerged) => Ok(()),
            Ok(MergeOutcome::Conflict { message }) => Err(format!(
                "Gitea refused the fast-forward of #{number}: {message}"
            )),
            Err(e) => Err(format!("cannot fast-forward #{number}: {e}")),
        }
    }
}
