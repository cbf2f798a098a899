//! The forge: the [`Forge`] port over the git [`Workspace`] and the project registry.
//! Gates read artifacts from the task's worktree first, then `origin/main`. For a project
//! on the local forge, CI is its test command at the branch head and the merge is the
//! workspace's `--no-ff` merge into `main`; for a project with a `gitea_repo`, pull
//! requests, CI and the merge are Gitea's ([`gitea`]). Either way a merge counts only once
//! it is an ancestor of `origin/main`, and every pushed head is recorded (a CI status
//! names only a commit).

pub use crate::gitea::GiteaForge;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_actors::domain::gates::{
    self, ArtifactSource, CiOutcome, GateContext, GateOutcome,
};
use orchestrator_actors::domain::{artifacts, branch};
use orchestrator_actors::ports::merge_queue::{CandidateBuild, FastForward};
use orchestrator_actors::ports::workbench::{Forge, PublishError, Workplace};
use orchestrator_actors::ports::{BranchHeads, PullRequestStore, TaskRecord};
use orchestrator_actors::{GateKind, Role};

use crate::config::projects::{Project, Projects};
use crate::git::{GitError, Workspace};

mod integration;

/// The local forge.
pub struct ProjectForge {
    /// Clones, worktrees and merges.
    workspace: Arc<Workspace>,
    /// Its pull requests.
    pulls: Arc<dyn PullRequestStore>,
    /// The project registry.
    projects: Arc<Projects>,
    /// Budget of one CI run.
    ci_timeout: Duration,
    /// Where pushed branch heads are recorded.
    heads: Arc<dyn BranchHeads>,
    /// Gitea, for the projects that use it.
    gitea: Option<GiteaForge>,
}

impl ProjectForge {
    /// A forge over `workspace` for `projects`, keeping its pull requests in `pulls` and
    /// branch heads in `heads`; projects with a `gitea_repo` go through `gitea`.
    pub fn new(
        workspace: Arc<Workspace>,
        pulls: Arc<dyn PullRequestStore>,
        projects: Arc<Projects>,
        ci_timeout: Duration,
        heads: Arc<dyn BranchHeads>,
        gitea: Option<GiteaForge>,
    ) -> Self {
        Self {
            workspace,
            pulls,
            projects,
            ci_timeout,
            heads,
            gitea,
        }
    }

    /// The Gitea repository of the task's project and the Gitea access, if it uses Gitea.
    fn gitea_of(&self, task: &TaskRecord) -> Option<(&GiteaForge, &str)> {
        let repo = self.projects.get(&task.repo)?.gitea_repo.as_deref()?;
        Some((self.gitea.as_ref()?, repo))
    }

    fn project(&self, task: &TaskRecord) -> Result<&Project, String> {
        self.projects.get(&task.repo).ok_or_else(|| {
            format!(
                "repo {:?} of task {} is not a configured project",
                task.repo, task.work_item_id
            )
        })
    }

    fn branch(&self, task: &TaskRecord) -> String {
        branch::of(task)
    }

    fn worktree(&self, task: &TaskRecord) -> PathBuf {
        self.workspace
            .worktrees_dir()
            .join(task.work_item_id.as_str())
    }

    /// Where the task's repository's clone is, as it stands (no fetch, nothing created).
    fn clone_path(&self, task: &TaskRecord) -> Result<PathBuf, String> {
        self.workspace
            .clone_dir(&self.project(task)?.repo)
            .map_err(|e| e.to_string())
    }

    async fn clone_of(&self, task: &TaskRecord) -> Result<PathBuf, String> {
        self.ensure_clone_of(self.project(task)?).await
    }

    /// The project of `repo`.
    fn project_of(&self, repo: &str) -> Result<&Project, String> {
        self.projects
            .get(repo)
            .ok_or_else(|| format!("repo {repo:?} is not a configured project"))
    }

    /// The project's clone, made if missing, with its append-only files set.
    async fn ensure_clone_of(&self, project: &Project) -> Result<PathBuf, String> {
        let clone = self
            .workspace
            .ensure_clone(&project.repo, &project.origin)
            .await
            .map_err(|e| e.to_string())?;
        self.workspace
            .set_append_only(&clone, &project.append_only)
            .await
            .map_err(|e| e.to_string())?;
        Ok(clone)
    }
}

/// The artifacts a gate may look at, read ahead (the gates themselves are synchronous).
struct Prefetched {
    /// File contents by path relative to the repository root.
    files: HashMap<String, String>,
    /// File names by directory.
    dirs: HashMap<String, Vec<String>>,
}

impl ArtifactSource for Prefetched {
    fn read(&self, rel_path: &str) -> Result<Option<String>, String> {
        Ok(self.files.get(rel_path).cloned())
    }
    fn list_dir(&self, rel_dir: &str) -> Result<Vec<String>, String> {
        Ok(self
            .dirs
            .get(rel_dir.trim_end_matches('/'))
            .cloned()
            .unwrap_or_default())
    }
}

impl ProjectForge {
    /// Reads every file of the task's work-item directory and its ADR directory.
    async fn prefetch(&self, task: &TaskRecord) -> Result<Prefetched, String> {
        let clone = self.clone_of(task).await?;
        let worktree = self.worktree(task);
        let worktree = worktree.is_dir().then_some(worktree);
        let mut files = HashMap::new();
        let mut dirs = HashMap::new();
        for dir in [
            artifacts::work_item_dir(&task.work_item_id),
            artifacts::adr_dir(&task.work_item_id),
        ] {
            let names = self
                .workspace
                .list_artifact_dir(&clone, worktree.as_deref(), &dir)
                .await
                .map_err(|e| e.to_string())?;
            for name in &names {
                let rel = format!("{dir}/{name}");
                if let Some(text) = self
                    .workspace
                    .read_artifact(&clone, worktree.as_deref(), &rel)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    files.insert(rel, text);
                }
            }
            dirs.insert(dir, names);
        }
        Ok(Prefetched { files, dirs })
    }
}

#[async_trait]
impl Forge for ProjectForge {
    async fn prepare(&self, task: &TaskRecord) -> Result<Workplace, String> {
        let clone = self.clone_of(task).await?;
        let branch = self.branch(task);
        let worktree = self
            .workspace
            .create_worktree(&clone, task.work_item_id.as_str(), &branch)
            .await
            .map_err(|e| e.to_string())?;
        let artifacts_dir = worktree.join(artifacts::work_item_dir(&task.work_item_id));
        tokio::fs::create_dir_all(&artifacts_dir)
            .await
            .map_err(|e| format!("cannot create {}: {e}", artifacts_dir.display()))?;
        Ok(Workplace {
            branch,
            worktree,
            artifacts_dir,
        })
    }

    async fn publish(&self, task: &TaskRecord, role: Role) -> Result<(), PublishError> {
        if role == Role::Deployer {
            // The deployer works on the tested candidate, which is what `main` becomes: its
            // logs stay in the worktree (its gates read them there) and nothing is committed
            // on top of what was tested.
            return Ok(());
        }
        // The clone as it stands: prepare made it, and publishing needs no fetch.
        let clone = self.clone_path(task)?;
        let worktree = self.worktree(task);
        let message = format!("{role}: {} {}", task.work_item_id, task.title);
        self.workspace
            .commit_all(&clone, &worktree, &message)
            .await
            .map_err(|e| match e {
                e @ GitError::ConflictMarkers { .. } => PublishError::Rejected(e.to_string()),
                e => PublishError::Infrastructure(e.to_string()),
            })?;
        let branch = self.branch(task);
        self.workspace
            .push_branch(&clone, &worktree, &branch)
            .await
            .map_err(|e| e.to_string())?;
        let head = self
            .workspace
            .head_sha(&worktree)
            .await
            .map_err(|e| e.to_string())?;
        if let Err(e) = self
            .heads
            .record_branch_head(&task.repo, &branch, &head)
            .await
        {
            tracing::warn!(task = %task.work_item_id, error = %e, "cannot record the branch head");
        }
        if role == Role::Developer
            && let Some((gitea, repo)) = self.gitea_of(task)
        {
            gitea.ensure_pull_request(repo, task, &branch).await?;
        } else if role == Role::Developer {
            // The branch now carries code: it gets its pull request (one, however often the
            // developer runs).
            let title = format!("{}: {}", task.work_item_id, task.title);
            let (pr, created) = self
                .pulls
                .ensure_pull_request(&task.repo, &branch, "main", &title)
                .await
                .map_err(|e| format!("cannot open a pull request for {branch}: {e}"))?;
            if created {
                tracing::info!(task = %task.work_item_id, number = pr.number, %branch, "pull request opened");
            }
        }
        Ok(())
    }

    async fn evaluate_gate(&self, task: &TaskRecord, gate: GateKind) -> GateOutcome {
        let rules = self.projects.rules(&task.repo).unwrap_or_default();
        let source = match self.prefetch(task).await {
            Ok(source) => source,
            Err(reason) => {
                return GateOutcome::Defer {
                    reason: format!("cannot read the artifacts: {reason}"),
                };
            }
        };
        let ci = if gate == GateKind::CiGreen {
            // The branch's head exactly as committed: never run in the task's worktree,
            // where what the tests leave behind would be committed next.
            Some(match self.workspace.head_sha(&self.worktree(task)).await {
                Ok(sha) => self.ci_at(&task.repo, &sha).await,
                Err(e) => CiOutcome::ToolError {
                    message: format!("cannot read the branch head: {e}"),
                },
            })
        } else {
            None
        };
        let context = GateContext {
            id: &task.work_item_id,
            has_staging: rules.has_staging,
            ci,
        };
        gates::evaluate(gate, &source, &context)
    }

    async fn remove_worktree(&self, task: &TaskRecord) -> Result<(), String> {
        // The clone as it stands: removing a worktree needs no fetch, so an unreachable
        // origin cannot keep a finished task's directory alive.
        let clone = self.clone_path(task)?;
        self.workspace
            .remove_worktree(&clone, task.work_item_id.as_str())
            .await
            .map_err(|e| format!("cannot remove the worktree of {}: {e}", task.work_item_id))
    }

    async fn is_on_main(&self, task: &TaskRecord, sha: &str) -> Result<bool, String> {
        // `is_merged` fetches; the clone exists (the task's branch was published from it).
        let clone = self.clone_path(task)?;
        self.workspace
            .is_merged(&clone, sha)
            .await
            .map_err(|e| e.to_string())
    }

    async fn build_candidate(
        &self,
        task: &TaskRecord,
        onto: Option<&str>,
    ) -> Result<CandidateBuild, String> {
        self.candidate(task, onto).await
    }

    async fn publish_candidate(&self, task: &TaskRecord, candidate: &str) -> Result<(), String> {
        self.publish(task, candidate).await
    }

    fn batches(&self, repo: &str) -> bool {
        ProjectForge::batches(self, repo)
    }

    async fn test_commit(&self, repo: &str, sha: &str) -> CiOutcome {
        self.ci_at(repo, sha).await
    }

    async fn main_head(&self, repo: &str) -> Result<String, String> {
        let project = self.project_of(repo)?;
        let clone = self.ensure_clone_of(project).await?;
        self.workspace
            .main_head(&clone)
            .await
            .map_err(|e| e.to_string())
    }

    async fn fast_forward_main(
        &self,
        task: &TaskRecord,
        candidate: &str,
    ) -> Result<FastForward, String> {
        self.fast_forward(task, candidate).await
    }

    async fn delete_branch(&self, task: &TaskRecord) -> Result<(), String> {
        // The clone as it stands: a task that never pushed has no branch there to delete.
        let clone = self.clone_path(task)?;
        if !clone.join(".git").exists() {
            return Ok(());
        }
        let branch = self.branch(task);
        self.workspace
            .delete_remote_branch(&clone, &branch)
            .await
            .map_err(|e| format!("cannot delete {branch} on the origin: {e}"))
    }

    async fn merge_main_into_worktree(&self, task: &TaskRecord) -> Result<(), String> {
        let clone = self.clone_of(task).await?;
        let worktree = self.worktree(task);
        if !worktree.is_dir() {
            return Ok(()); // the developer's next run starts from a fresh one
        }
        self.workspace
            .merge_main_into_worktree(&clone, &worktree)
            .await
            .map_err(|e| e.to_string())
    }
}
