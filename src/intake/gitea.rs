//! What a Gitea delivery asks for: a commit status nudges the gate of the task whose branch
//! head it names (the payload has no branch: the store knows which branch is at that
//! commit, else the open pull requests do); a pull request merged by a human outside the
//! deploy stage finishes its task; reviews are reported on the task's card; pushes record
//! the branch head.

use orchestrator_actors::actors::task::HumanAction;
use orchestrator_actors::ports::{ActInWrite, ActedInWrite, BranchAt, CommitRef};
use ractor::registry;
use tracing::warn;

use super::payload::GiteaDelivery;
use super::{Acted, Intake};

impl Intake {
    /// Why a Gitea delivery needs no action, if it needs none.
    pub(super) fn gitea_ignores(&self, d: &GiteaDelivery) -> Option<String> {
        let Some(repo) = d.repo() else {
            return Some(format!("{} names no repository", d.kind()));
        };
        if self.projects.by_gitea(repo).is_none() {
            return Some(format!("Gitea repository {repo} is not in the registry"));
        }
        match d {
            GiteaDelivery::Other { kind, .. } => Some(format!("{kind} triggers nothing")),
            _ => None,
        }
    }

    /// The commit whose branches acting on `d` needs, for the journal write to look up.
    pub(super) fn gitea_commit(&self, d: &GiteaDelivery) -> Option<CommitRef> {
        match d {
            GiteaDelivery::Status { repo, sha, .. } => Some(CommitRef {
                repo: self.projects.by_gitea(repo)?.repo.clone(),
                sha: sha.clone(),
            }),
            _ => None,
        }
    }

    /// Acts on a delivery, given the branches its journal write found at its commit; the
    /// task concerned and the outcome, in words.
    pub(super) async fn act_on_gitea(&self, d: GiteaDelivery, branches: Vec<BranchAt>) -> Acted {
        let Some(project) = d.repo().and_then(|r| self.projects.by_gitea(r)) else {
            return (None, Ok("nothing to do".into()));
        };
        let repo = project.repo.clone();
        match d {
            GiteaDelivery::Status {
                repo: gitea_repo,
                sha,
                state,
                context,
            } => match self.pulls_at(&repo, &gitea_repo, &sha, branches).await {
                Ok(found) => {
                    let acted = status_outcome(&repo, &sha, &state, &context, found);
                    if let Some(task) = &acted.recheck {
                        super::recheck_gate(task);
                    }
                    (acted.task, Ok(acted.outcome))
                }
                Err(e) => (None, Err(e)),
            },
            GiteaDelivery::Merged {
                number,
                head,
                base,
                sha,
                by,
                ..
            } => {
                let task = match self.heads.task_on_branch(&repo, &head).await {
                    Ok(Some(task)) => task,
                    Ok(None) => return (None, Ok(format!("PR #{number} ({head}) has no task"))),
                    Err(e) => return (None, Err(e.to_string())),
                };
                // Only a merge into main can finish a task (fail closed: an unknown base
                // is not main).
                if base.as_deref() != Some("main") {
                    let into = base.as_deref().unwrap_or("an unknown base");
                    return (
                        Some(task),
                        Ok(format!(
                            "PR #{number} merged by {by} into {into}, not main: ignored"
                        )),
                    );
                }
                let action = HumanAction::MergedOutside {
                    sha,
                    by: by.clone(),
                };
                let outcome = super::tell_task(&task, action).await.map(|reply| {
                    if reply.changed {
                        format!(
                            "PR #{number} merged by {by}: task {task} is {}",
                            reply.stage
                        )
                    } else {
                        format!(
                            "PR #{number} merged by {by}: task {task} unchanged ({})",
                            reply.stage
                        )
                    }
                });
                (Some(task), outcome)
            }
            GiteaDelivery::Review {
                number,
                head,
                approved,
                content,
                by,
                ..
            } => {
                let task = match self.heads.task_on_branch(&repo, &head).await {
                    Ok(Some(task)) => task,
                    Ok(None) => return (None, Ok(format!("PR #{number} ({head}) has no task"))),
                    Err(e) => return (None, Err(e.to_string())),
                };
                let verdict = if approved {
                    "approved"
                } else {
                    "requested changes on"
                };
                let mut text = format!("{by} {verdict} pull request #{number}");
                if !content.trim().is_empty() {
                    text.push_str(": ");
                    text.push_str(content.trim());
                }
                let outcome = match self.store.load_task(&task).await {
                    Ok(Some(record)) => self
                        .board
                        .comment(&record, None, &text)
                        .await
                        .map(|()| format!("review noted on the card: {text}")),
                    Ok(None) => Err(format!("task {task} is not in the store")),
                    Err(e) => Err(e.to_string()),
                };
                (Some(task), outcome)
            }
            GiteaDelivery::Push { branch, after, .. } => {
                let Some(branch) = branch else {
                    return (None, Ok("a tag push records nothing".into()));
                };
                let recorded = self
                    .heads
                    .record_branch_head(&repo, &branch, &after)
                    .await
                    .map(|()| format!("{branch} is at {after}"))
                    .map_err(|e| e.to_string());
                (None, recorded)
            }
            GiteaDelivery::Other { .. } => (None, Ok("nothing to do".into())),
        }
    }

    /// How to act on a status within the write that journals it, when its repository is
    /// the registry's: once that write has found branches at its commit, what the status
    /// comes to is decided without I/O; the task is told after the commit. `None` for any
    /// other delivery.
    pub(super) fn status_act(&self, d: &GiteaDelivery) -> Option<ActInWrite> {
        let GiteaDelivery::Status {
            repo,
            sha,
            state,
            context,
        } = d
        else {
            return None;
        };
        let repo = self.projects.by_gitea(repo)?.repo.clone();
        let (sha, state, context) = (sha.clone(), state.clone(), context.clone());
        Some(Box::new(move |branches: &mut Vec<BranchAt>| {
            (!branches.is_empty())
                .then(|| status_outcome(&repo, &sha, &state, &context, std::mem::take(branches)))
        }))
    }

    /// The branches whose head is `sha`: those the store `found` there, else the heads of
    /// Gitea's open pull requests at it (each with its task, when there is one).
    async fn pulls_at(
        &self,
        repo: &str,
        gitea_repo: &str,
        sha: &str,
        mut found: Vec<BranchAt>,
    ) -> Result<Vec<BranchAt>, String> {
        if found.is_empty()
            && let Some(gitea) = &self.gitea
        {
            let mut branches: Vec<String> = gitea
                .client
                .open_pulls(gitea_repo)
                .await
                .map_err(|e| format!("cannot list the open pull requests: {e}"))?
                .into_iter()
                .filter(|pr| pr.head.sha == sha)
                .map(|pr| pr.head.ref_name)
                .collect();
            branches.sort();
            branches.dedup();
            if let [branch] = branches.as_slice() {
                let task = self
                    .heads
                    .task_on_branch(repo, branch)
                    .await
                    .map_err(|e| e.to_string())?;
                found.push(BranchAt {
                    branch: branch.clone(),
                    task,
                });
            } else {
                found.extend(
                    branches
                        .into_iter()
                        .map(|branch| BranchAt { branch, task: None }),
                );
            }
        }
        Ok(found)
    }
}

/// What a status at `sha` of `repo` comes to, given the branches `found` at it: the task on
/// the one branch, to re-check its gate when its actor runs; several candidates leave the
/// status unresolved (logged), never guessed. It only decides — the caller tells the task
/// (after the journal write has committed, when it runs within one).
fn status_outcome(
    repo: &str,
    sha: &str,
    state: &str,
    context: &str,
    mut found: Vec<BranchAt>,
) -> ActedInWrite {
    if found.len() > 1 {
        let branches: Vec<&str> = found.iter().map(|b| b.branch.as_str()).collect();
        warn!(%repo, %sha, ?branches, "a status names a commit several branches are at; left unresolved");
    }
    let (Some(BranchAt { branch, task }), true) = (found.pop(), found.is_empty()) else {
        return ActedInWrite {
            task: None,
            outcome: format!("status {state} of {sha} left unresolved: no single branch is at it"),
            recheck: None,
        };
    };
    let Some(task) = task else {
        return ActedInWrite {
            task: None,
            outcome: format!("no task works on {branch}"),
            recheck: None,
        };
    };
    let running = registry::where_is(task.actor_name()).is_some();
    let outcome = format!(
        "{context} {state} on {branch}: {}",
        if running {
            "gate re-checked"
        } else {
            "task not running"
        }
    );
    ActedInWrite {
        task: Some(task.clone()),
        outcome,
        recheck: running.then_some(task),
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_actors::WorkItemId;
    use orchestrator_actors::actors::task::TaskMsg;
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use tokio::sync::mpsc;

    use super::*;

    /// Stands in for a task actor: reports which messages reach it, in order.
    struct Probe(mpsc::UnboundedSender<&'static str>);

    impl Actor for Probe {
        type Msg = TaskMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<TaskMsg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<TaskMsg>,
            msg: TaskMsg,
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            let _ = self.0.send(match msg {
                TaskMsg::Recheck => "recheck",
                TaskMsg::AskQueue => "merge",
                _ => "other",
            });
            Ok(())
        }
    }

    fn at(branch: &str, task: Option<&WorkItemId>) -> BranchAt {
        BranchAt {
            branch: branch.into(),
            task: task.cloned(),
        }
    }

    #[tokio::test]
    async fn a_status_is_decided_without_a_message_and_the_task_is_told_apart() {
        let id = WorkItemId::parse("GITEA-STATUS-1").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (actor, handle) = Actor::spawn(Some(id.actor_name()), Probe(tx), ())
            .await
            .unwrap();
        let acted = status_outcome(
            "acme/app",
            "abc",
            "success",
            "ci",
            vec![at("f/1", Some(&id))],
        );
        assert_eq!(acted.task.as_ref(), Some(&id));
        assert_eq!(acted.recheck.as_ref(), Some(&id));
        assert_eq!(acted.outcome, "ci success on f/1: gate re-checked");
        // Deciding sent nothing: the first message the task gets is the one told after the
        // decision, and the next is the marker sent behind it.
        assert!(super::super::recheck_gate(&id));
        actor.cast(TaskMsg::AskQueue).unwrap();
        assert_eq!(rx.recv().await, Some("recheck"));
        assert_eq!(rx.recv().await, Some("merge"));
        actor.stop(None);
        handle.await.unwrap();

        // No task running, several branches, no task on the branch: nobody to tell.
        let gone = status_outcome(
            "acme/app",
            "abc",
            "success",
            "ci",
            vec![at("f/1", Some(&id))],
        );
        assert_eq!(gone.outcome, "ci success on f/1: task not running");
        assert_eq!(gone.recheck, None);
        let two = vec![at("f/1", Some(&id)), at("f/2", None)];
        assert_eq!(
            status_outcome("acme/app", "abc", "success", "ci", two).task,
            None
        );
        let none = status_outcome("acme/app", "abc", "success", "ci", vec![at("f/3", None)]);
        assert_eq!(none.outcome, "no task works on f/3");
    }
}
