//! What the merge queue does with what it is asked: a task joins, leaves, or is ready for
//! the fast-forward; an operator freezes or thaws a repository's queue.

use ractor::{ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use super::{FreezeReply, MergeQueue, MergeQueueMsg, MergeQueueState, journal, now, tell};
use crate::WorkItemId;
use crate::ports::TaskRecord;
use crate::ports::merge_queue::{EntryState, Freeze, FreezeKind, Integration, QueueEntry};

impl MergeQueue {
    pub(super) async fn join(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        task: TaskRecord,
    ) -> Result<usize, String> {
        let repo = task.repo.clone();
        let id = task.work_item_id.clone();
        let queue = state.repos.entry(repo.clone()).or_default();
        queue.state.repo = repo.clone();
        if let Some(place) = queue.entries.iter().position(|e| e.work_item_id == id) {
            // A restarted task asks again: it keeps its place, and hears again what it may
            // have missed.
            let entry = &queue.entries[place];
            if entry.state == EntryState::Deploying
                && let Some(sha) = entry.candidate.clone()
            {
                let members = queue.members();
                let top = members.last().map(|m| m.work_item_id.clone());
                match top {
                    Some(top) if top != id => tell(&id, Integration::BatchedGreen { sha, top }),
                    _ => tell(&id, Integration::CandidateGreen { sha }),
                }
            }
            return Ok(place);
        }
        let entry = QueueEntry {
            work_item_id: id.clone(),
            repo: repo.clone(),
            seq: state.next_seq,
            state: EntryState::Waiting,
            candidate: None,
            base: None,
            ready: false,
            joined_at: now(),
        };
        state.next_seq += 1;
        self.deps
            .store
            .save_queue_entry(&entry)
            .await
            .map_err(|e| format!("cannot journal {id} joining the merge queue: {e}"))?;
        let queue = state.repos.entry(repo.clone()).or_default();
        queue.entries.push(entry);
        let place = queue.entries.len() - 1;
        info!(task = %id, %repo, place, "joined the merge queue");
        self.drive(myself, state, &repo)
            .await
            .map_err(|e| e.to_string())?;
        Ok(place)
    }

    pub(super) async fn leave(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        id: &WorkItemId,
    ) -> Result<(), ActorProcessingErr> {
        let Some((repo, queue)) = state
            .repos
            .iter_mut()
            .find(|(_, q)| q.entries.iter().any(|e| &e.work_item_id == id))
        else {
            return Ok(());
        };
        let repo = repo.clone();
        let held = queue.members().iter().any(|m| &m.work_item_id == id);
        if held {
            // Whatever the batch was doing ends with it; the others wait again, first.
            self.requeue_members(state, &repo).await?;
        }
        if let Some(queue) = state.repos.get_mut(&repo) {
            queue.entries.retain(|e| &e.work_item_id != id);
        }
        self.deps.store.remove_queue_entry(id).await?;
        info!(task = %id, %repo, held, "left the merge queue");
        self.drive(myself, state, &repo).await
    }

    pub(super) async fn ready(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        task: TaskRecord,
    ) -> Result<(), String> {
        let id = &task.work_item_id;
        let known = state
            .repos
            .get(&task.repo)
            .is_some_and(|q| q.entries.iter().any(|e| &e.work_item_id == id));
        if !known {
            warn!(task = %id, repo = %task.repo, "asked to merge a task the merge queue does not know; it joins and is tested first");
            let id = id.clone();
            self.join(myself, state, task.clone()).await?;
            let queue = state.repos.get_mut(&task.repo).expect("joined");
            let entry = queue.entry_mut(&id).expect("joined");
            entry.ready = true;
            let entry = entry.clone();
            return self
                .deps
                .store
                .save_queue_entry(&entry)
                .await
                .map_err(|e| e.to_string());
        }
        let repo = task.repo.clone();
        let queue = state.repos.get_mut(&repo).expect("known above");
        let entry = queue.entry_mut(id).expect("found above");
        match entry.state {
            EntryState::Merged => {
                let sha = entry.candidate.clone().unwrap_or_default();
                tell(id, Integration::Merged { sha });
                return Ok(());
            }
            EntryState::Merging => return Ok(()),
            EntryState::Deploying => {
                entry.ready = true;
                entry.state = EntryState::Merging;
            }
            // Rebuilding (after `main` moved, or its batch was broken up): the fast-forward
            // follows the new candidate's green, without another deploy.
            EntryState::Building | EntryState::Testing | EntryState::Waiting => entry.ready = true,
        }
        let entry = entry.clone();
        self.deps
            .store
            .save_queue_entry(&entry)
            .await
            .map_err(|e| e.to_string())?;
        self.drive(myself, state, &repo)
            .await
            .map_err(|e| e.to_string())
    }

    pub(super) async fn freeze(
        &self,
        state: &mut MergeQueueState,
        repo: &str,
        kind: FreezeKind,
        by: &str,
        reason: &str,
    ) -> Result<FreezeReply, String> {
        let queue = state.repos.entry(repo.to_string()).or_default();
        queue.state.repo = repo.to_string();
        if let Some(frozen) = &queue.state.frozen
            && kind == FreezeKind::Operator
            && frozen.kind == FreezeKind::Operator
        {
            return Ok(FreezeReply {
                repo: repo.to_string(),
                changed: false,
                frozen: Some(frozen.clone()),
            });
        }
        let freeze = Freeze {
            kind,
            by: by.to_string(),
            reason: reason.to_string(),
            at: now(),
        };
        let mut saved = queue.state.clone();
        saved.frozen = Some(freeze.clone());
        // Journaled first: a freeze that is not written is not in force.
        self.deps
            .store
            .save_repo_queue(&saved)
            .await
            .map_err(|e| format!("cannot journal the freeze of {repo}: {e}"))?;
        journal(&*self.deps.store, repo, None, "frozen", by, reason).await;
        queue.state = saved;
        warn!(%repo, %by, %reason, "merge queue frozen");
        Ok(FreezeReply {
            repo: repo.to_string(),
            changed: true,
            frozen: Some(freeze),
        })
    }

    pub(super) async fn thaw(
        &self,
        myself: &ActorRef<MergeQueueMsg>,
        state: &mut MergeQueueState,
        repo: &str,
        by: &str,
        why: &str,
    ) -> Result<FreezeReply, String> {
        let Some(queue) = state.repos.get_mut(repo) else {
            return Ok(FreezeReply {
                repo: repo.to_string(),
                changed: false,
                frozen: None,
            });
        };
        if queue.state.frozen.is_none() {
            return Ok(FreezeReply {
                repo: repo.to_string(),
                changed: false,
                frozen: None,
            });
        }
        let mut saved = queue.state.clone();
        saved.frozen = None;
        self.deps
            .store
            .save_repo_queue(&saved)
            .await
            .map_err(|e| format!("cannot journal the thaw of {repo}: {e}"))?;
        journal(&*self.deps.store, repo, None, "unfrozen", by, why).await;
        queue.state = saved;
        info!(%repo, %by, "merge queue unfrozen");
        self.drive(myself, state, repo)
            .await
            .map_err(|e| e.to_string())?;
        Ok(FreezeReply {
            repo: repo.to_string(),
            changed: true,
            frozen: None,
        })
    }
}
