//! The merge queue's owned work: building a batch's stacked candidates, CI on one of them,
//! the test of `main` alone, publishing the green, and the fast-forward. Each runs as the
//! repository's one piece of work under a new generation and reports back by message.

use ractor::ActorRef;
use tracing::warn;

use super::{MergeQueue, MergeQueueMsg, RepoQueue, Report};
use crate::WorkItemId;
use crate::actors::owned::report_to;
use crate::ports::merge_queue::{CandidateBuild, FastForward, QueueEntry};

/// What building a batch's candidates came to, member by member, in order; the build stops
/// at the first infrastructure error.
pub struct Builds {
    /// Each member tried, and its outcome.
    pub built: Vec<(WorkItemId, CandidateBuild)>,
    /// The member whose build failed, and why.
    pub error: Option<(WorkItemId, String)>,
}

impl MergeQueue {
    pub(super) fn start_build(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        queue: &mut RepoQueue,
        repo: &str,
        ids: Vec<WorkItemId>,
    ) {
        queue.generation += 1;
        let generation = queue.generation;
        let (tasks, forge, repo) = (
            self.deps.tasks.clone(),
            self.deps.forge.clone(),
            repo.to_string(),
        );
        queue.work = Some(report_to(myself, async move {
            let mut builds = Builds {
                built: Vec::new(),
                error: None,
            };
            let mut onto: Option<String> = None;
            for id in ids {
                let task = match tasks.load_task(&id).await {
                    Ok(Some(task)) => task,
                    Ok(None) => {
                        builds.error = Some((id.clone(), format!("task {id} is not in the store")));
                        break;
                    }
                    Err(e) => {
                        builds.error = Some((id.clone(), format!("cannot load task {id}: {e}")));
                        break;
                    }
                };
                match forge.build_candidate(&task, onto.as_deref()).await {
                    Ok(CandidateBuild::Built { sha, base }) => {
                        onto = Some(sha.clone());
                        builds.built.push((id, CandidateBuild::Built { sha, base }));
                    }
                    Ok(CandidateBuild::Conflict { files }) => {
                        if let Err(e) = forge.merge_main_into_worktree(&task).await {
                            warn!(task = %id, error = %e, "cannot merge main into the worktree for the developer");
                        }
                        builds.built.push((id, CandidateBuild::Conflict { files }));
                    }
                    Err(e) => {
                        builds.error = Some((id, e));
                        break;
                    }
                }
            }
            MergeQueueMsg::Built(Report {
                repo,
                generation,
                result: builds,
            })
        }));
    }

    /// Tests the candidate of the batch's `index`-th member (1-based).
    pub(super) fn start_test(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        queue: &mut RepoQueue,
        repo: &str,
        index: usize,
        sha: String,
    ) {
        queue.generation += 1;
        let generation = queue.generation;
        let (forge, repo) = (self.deps.forge.clone(), repo.to_string());
        queue.work = Some(report_to(myself, async move {
            let result = forge.test_commit(&repo, &sha).await;
            MergeQueueMsg::Tested(Report {
                repo,
                generation,
                result: (index, sha, result),
            })
        }));
    }

    /// Tests `main` alone at its current head; `known_red` is a commit already known red
    /// (not tested again).
    pub(super) fn start_main_test(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        queue: &mut RepoQueue,
        repo: &str,
        known_red: Option<String>,
    ) {
        queue.generation += 1;
        let generation = queue.generation;
        let (forge, repo) = (self.deps.forge.clone(), repo.to_string());
        queue.work = Some(report_to(myself, async move {
            let result = match forge.main_head(&repo).await {
                Ok(sha) if known_red.as_deref() == Some(sha.as_str()) => Ok((sha, None)),
                Ok(sha) => {
                    let outcome = forge.test_commit(&repo, &sha).await;
                    Ok((sha, Some(outcome)))
                }
                Err(e) => Err(e),
            };
            MergeQueueMsg::MainTested(Report {
                repo,
                generation,
                result,
            })
        }));
    }

    /// Publishes the green batch's candidates, in order, as their branches' heads.
    pub(super) fn start_publish(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        queue: &mut RepoQueue,
        repo: &str,
        members: &[QueueEntry],
    ) {
        queue.generation += 1;
        let generation = queue.generation;
        let (tasks, forge, repo) = (
            self.deps.tasks.clone(),
            self.deps.forge.clone(),
            repo.to_string(),
        );
        let members: Vec<(WorkItemId, Option<String>)> = members
            .iter()
            .map(|m| (m.work_item_id.clone(), m.candidate.clone()))
            .collect();
        queue.work = Some(report_to(myself, async move {
            let mut result = Ok(());
            for (id, candidate) in members {
                let published = match (candidate, tasks.load_task(&id).await) {
                    (Some(sha), Ok(Some(task))) => forge.publish_candidate(&task, &sha).await,
                    (None, _) => Err(format!("{id} has no candidate to publish")),
                    (_, Ok(None)) => Err(format!("task {id} is not in the store")),
                    (_, Err(e)) => Err(format!("cannot load task {id}: {e}")),
                };
                if let Err(e) = published {
                    result = Err(e);
                    break;
                }
            }
            MergeQueueMsg::Published(Report {
                repo,
                generation,
                result,
            })
        }));
    }

    /// Fast-forwards `main` to the batch's top candidate; then the other members' pull
    /// requests are marked merged (their candidates are on `main` now).
    pub(super) fn start_fast_forward(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        queue: &mut RepoQueue,
        repo: &str,
        members: &[QueueEntry],
    ) {
        queue.generation += 1;
        let generation = queue.generation;
        let (tasks, forge, repo) = (
            self.deps.tasks.clone(),
            self.deps.forge.clone(),
            repo.to_string(),
        );
        let members: Vec<(WorkItemId, Option<String>)> = members
            .iter()
            .map(|m| (m.work_item_id.clone(), m.candidate.clone()))
            .collect();
        queue.work = Some(report_to(myself, async move {
            let (top, top_candidate) = members.last().cloned().expect("a batch has members");
            let result = match (top_candidate, tasks.load_task(&top).await) {
                (None, _) => Ok(FastForward::MainMoved {
                    main: "(no candidate recorded)".into(),
                }),
                (Some(sha), Ok(Some(task))) => forge.fast_forward_main(&task, &sha).await,
                (_, Ok(None)) => Err(format!("task {top} is not in the store")),
                (_, Err(e)) => Err(format!("cannot load task {top}: {e}")),
            };
            if result == Ok(FastForward::Merged) {
                for (id, candidate) in &members[..members.len() - 1] {
                    if let (Some(sha), Ok(Some(task))) = (candidate, tasks.load_task(id).await)
                        && let Err(e) = forge.fast_forward_main(&task, sha).await
                    {
                        warn!(task = %id, error = %e, "cannot confirm a batched candidate on main");
                    }
                }
            }
            MergeQueueMsg::FastForwarded(Report {
                repo,
                generation,
                result,
            })
        }));
    }
}
