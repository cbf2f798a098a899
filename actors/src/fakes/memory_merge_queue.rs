//! An in-memory [`MergeQueueStore`], for actor tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::WorkItemId;
use crate::ports::StoreError;
use crate::ports::merge_queue::{MergeQueueStore, QueueEntry, RepoQueueState};

/// Entries, repository states and the journal, held in a mutex.
#[derive(Default)]
pub struct MemoryMergeQueue {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<WorkItemId, QueueEntry>,
    repos: BTreeMap<String, RepoQueueState>,
    journal: Vec<(String, Option<WorkItemId>, String, String, String)>,
}

impl MemoryMergeQueue {
    /// The journal so far: (repo, task, what, by, detail).
    pub fn journal(&self) -> Vec<(String, Option<WorkItemId>, String, String, String)> {
        self.inner.lock().unwrap().journal.clone()
    }
}

#[async_trait]
impl MergeQueueStore for MemoryMergeQueue {
    async fn load_merge_queue(&self) -> Result<(Vec<QueueEntry>, Vec<RepoQueueState>), StoreError> {
        let inner = self.inner.lock().unwrap();
        let mut entries: Vec<_> = inner.entries.values().cloned().collect();
        entries.sort_by(|a, b| (&a.repo, a.seq).cmp(&(&b.repo, b.seq)));
        Ok((entries, inner.repos.values().cloned().collect()))
    }
    async fn save_queue_entry(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        inner
            .entries
            .insert(entry.work_item_id.clone(), entry.clone());
        Ok(())
    }
    async fn remove_queue_entry(&self, id: &WorkItemId) -> Result<(), StoreError> {
        self.inner.lock().unwrap().entries.remove(id);
        Ok(())
    }
    async fn save_repo_queue(&self, state: &RepoQueueState) -> Result<(), StoreError> {
        let mut inner = self.inner.lock().unwrap();
        inner.repos.insert(state.repo.clone(), state.clone());
        Ok(())
    }
    async fn journal_queue(
        &self,
        repo: &str,
        task: Option<&WorkItemId>,
        what: &str,
        by: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.inner.lock().unwrap().journal.push((
            repo.to_string(),
            task.cloned(),
            what.to_string(),
            by.to_string(),
            detail.to_string(),
        ));
        Ok(())
    }
}
