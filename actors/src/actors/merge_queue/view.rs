//! How the merge queue reads for people (`GET /queue`, `GET /actors`).

use serde::Serialize;

use super::{Counts, MergeQueueState};
use crate::WorkItemId;
use crate::domain::merge_queue::queue_state;
use crate::ports::merge_queue::{EntryState, Freeze};

/// One task in a repository's queue.
#[derive(Clone, Debug, Serialize)]
pub struct EntryView {
    /// The task.
    pub work_item_id: WorkItemId,
    /// Where it stands.
    pub state: EntryState,
    /// Its candidate, once built.
    pub candidate: Option<String>,
    /// The `main` its candidate was built on.
    pub base: Option<String>,
    /// When it joined.
    pub joined_at: String,
}

/// One repository's merge queue.
#[derive(Clone, Debug, Serialize)]
pub struct RepoView {
    /// The repository.
    pub repo: String,
    /// `frozen`, what the holder is doing (`building`, `testing`, `deploying`, `merging`),
    /// or `idle`.
    pub state: &'static str,
    /// The task holding the lease (the first of its batch).
    pub holder: Option<WorkItemId>,
    /// The batch holding the lease, in order (one task unless the queue batches).
    pub batch: Vec<WorkItemId>,
    /// The candidate under test or deployed: the batch's top.
    pub candidate: Option<String>,
    /// The tasks waiting, in order.
    pub waiting: Vec<WorkItemId>,
    /// Every entry, in order (the holder, the waiting, the merged that have not left yet).
    pub entries: Vec<EntryView>,
    /// Its freeze.
    pub frozen: Option<Freeze>,
    /// The last `main` commit seen green.
    pub last_green_main: Option<String>,
    /// The last infrastructure trouble.
    pub last_error: Option<String>,
    /// Infrastructure failures in a row of the current step.
    pub infra_failures: u32,
    /// What it did since start.
    pub counts: Counts,
}

pub(super) fn views(state: &MergeQueueState) -> Vec<RepoView> {
    state
        .repos
        .iter()
        .map(|(repo, q)| {
            let members = q.members();
            let holder = members.first();
            let state = if q.bisect.is_some() {
                Some(EntryState::Testing)
            } else {
                members.last().map(|m| m.state)
            };
            RepoView {
                repo: repo.clone(),
                state: queue_state(q.state.frozen.as_ref(), state),
                holder: holder.map(|h| h.work_item_id.clone()),
                batch: members.iter().map(|m| m.work_item_id.clone()).collect(),
                candidate: members.iter().rev().find_map(|m| m.candidate.clone()),
                waiting: q
                    .entries
                    .iter()
                    .filter(|e| e.state == EntryState::Waiting)
                    .map(|e| e.work_item_id.clone())
                    .collect(),
                entries: q
                    .entries
                    .iter()
                    .map(|e| EntryView {
                        work_item_id: e.work_item_id.clone(),
                        state: e.state,
                        candidate: e.candidate.clone(),
                        base: e.base.clone(),
                        joined_at: e.joined_at.clone(),
                    })
                    .collect(),
                frozen: q.state.frozen.clone(),
                last_green_main: q.state.last_green_main.clone(),
                last_error: q.last_error.clone(),
                infra_failures: q.infra_failures,
                counts: q.counts,
            }
        })
        .collect()
}
