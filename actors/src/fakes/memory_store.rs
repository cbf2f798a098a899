//! An in-memory [`Store`] (and [`TrackerLinks`]) with the same semantics as the SQLite one,
//! for actor tests and tools that need no durability.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::ports::{
    NewTask, NewTaskFields, Phase, Store, StoreError, TaskRecord, TaskUpdate, TrackerLink,
    TrackerLinks, Transition,
};
use crate::{Stage, WorkItemId};

/// Tasks and journals held in a mutex; insertion order is creation order.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Tasks keyed by id, each with its creation sequence number.
    tasks: BTreeMap<WorkItemId, (u64, TaskRecord)>,
    /// Journals keyed by task id.
    transitions: BTreeMap<WorkItemId, Vec<Transition>>,
    /// Next creation sequence number.
    seq: u64,
    /// Last number handed out per id prefix.
    counters: BTreeMap<String, u64>,
    /// The tracker issue of each task created from one.
    links: BTreeMap<WorkItemId, TrackerLink>,
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn sorted(inner: &Inner) -> Vec<TaskRecord> {
        let mut all: Vec<_> = inner.tasks.values().cloned().collect();
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, t)| t).collect()
    }
}

impl MemoryStore {
    fn insert(inner: &mut Inner, task: NewTask) -> Result<TaskRecord, StoreError> {
        if inner.tasks.contains_key(&task.work_item_id) {
            return Err(StoreError::Duplicate(format!("task {}", task.work_item_id)));
        }
        let at = now();
        let record = TaskRecord {
            work_item_id: task.work_item_id.clone(),
            repo: task.repo,
            title: task.title,
            description: task.description,
            stage: Stage::Created,
            paused: false,
            labels: task.labels,
            branch: None,
            phase: Phase::Idle,
            blocked_reason: None,
            developer_retries: 0,
            stage_attempts: 0,
            note: None,
            created_at: at.clone(),
            updated_at: at.clone(),
        };
        inner.seq += 1;
        let seq = inner.seq;
        inner
            .tasks
            .insert(task.work_item_id.clone(), (seq, record.clone()));
        inner.transitions.insert(
            task.work_item_id,
            vec![Transition {
                from: None,
                to: Stage::Created,
                reason: "task created".into(),
                at,
            }],
        );
        Ok(record)
    }
}

#[async_trait]
impl TrackerLinks for MemoryStore {
    async fn create_linked_task(
        &self,
        task: NewTask,
        link: TrackerLink,
    ) -> Result<TaskRecord, StoreError> {
        let mut inner = self.inner.lock().expect("memory store poisoned");
        let linked = inner
            .links
            .values()
            .any(|l| l.tracker == link.tracker && l.issue_ref == link.issue_ref);
        if linked {
            return Err(StoreError::Duplicate(format!(
                "a task for {} issue {}",
                link.tracker, link.issue_ref
            )));
        }
        let id = task.work_item_id.clone();
        let record = Self::insert(&mut inner, task)?;
        inner.links.insert(id, link);
        Ok(record)
    }

    async fn linked_task(
        &self,
        tracker: &str,
        issue_ref: &str,
    ) -> Result<Option<WorkItemId>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(inner
            .links
            .iter()
            .find(|(_, l)| l.tracker == tracker && l.issue_ref == issue_ref)
            .map(|(id, _)| id.clone()))
    }

    async fn task_link(&self, id: &WorkItemId) -> Result<Option<TrackerLink>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(inner.links.get(id).cloned())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn restart_task(
        &self,
        old: &WorkItemId,
        task: NewTask,
    ) -> Result<TaskRecord, StoreError> {
        let mut inner = self.inner.lock().expect("memory store poisoned");
        let Some((_, old_task)) = inner.tasks.get(old).cloned() else {
            return Err(StoreError::NotFound(format!("task {old}")));
        };
        let new = task.work_item_id.clone();
        let record = Self::insert(&mut inner, task)?;
        let at = now();
        inner
            .transitions
            .entry(old.clone())
            .or_default()
            .push(Transition {
                from: Some(old_task.stage),
                to: old_task.stage,
                reason: format!("restarted as {new}"),
                at: at.clone(),
            });
        inner
            .transitions
            .entry(new.clone())
            .or_default()
            .push(Transition {
                from: Some(Stage::Created),
                to: Stage::Created,
                reason: format!("restart of {old}, which was cancelled"),
                at,
            });
        if let Some(link) = inner.links.remove(old) {
            inner.links.insert(new, link);
        }
        Ok(record)
    }

    async fn create_task(&self, task: NewTask) -> Result<TaskRecord, StoreError> {
        let mut inner = self.inner.lock().expect("memory store poisoned");
        Self::insert(&mut inner, task)
    }

    async fn create_numbered_task(
        &self,
        prefix: &str,
        task: NewTaskFields,
    ) -> Result<TaskRecord, StoreError> {
        let mut inner = self.inner.lock().expect("memory store poisoned");
        let counter = inner.counters.entry(prefix.to_string()).or_insert(0);
        *counter += 1;
        let id = WorkItemId::parse(&format!("{prefix}-{:03}", *counter))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Self::insert(
            &mut inner,
            NewTask {
                work_item_id: id,
                repo: task.repo,
                title: task.title,
                description: task.description,
                labels: task.labels,
            },
        )
    }

    async fn update_task(
        &self,
        id: &WorkItemId,
        expected: Stage,
        update: TaskUpdate,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().expect("memory store poisoned");
        let at = now();
        let Some((_, task)) = inner.tasks.get_mut(id) else {
            return Err(StoreError::NotFound(format!("task {id}")));
        };
        if task.stage != expected {
            return Ok(false);
        }
        update.apply_to(task);
        task.updated_at = at.clone();
        if let Some((to, reason)) = update.to {
            inner
                .transitions
                .entry(id.clone())
                .or_default()
                .push(Transition {
                    from: Some(expected),
                    to,
                    reason,
                    at,
                });
        }
        Ok(true)
    }
    async fn load_task(&self, id: &WorkItemId) -> Result<Option<TaskRecord>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(inner.tasks.get(id).map(|(_, t)| t.clone()))
    }

    async fn active_task_ids(&self) -> Result<Vec<WorkItemId>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(Self::sorted(&inner)
            .into_iter()
            .filter(|t| !t.stage.is_terminal())
            .map(|t| t.work_item_id)
            .collect())
    }

    async fn list_tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(Self::sorted(&inner))
    }

    async fn transitions(&self, id: &WorkItemId) -> Result<Vec<Transition>, StoreError> {
        let inner = self.inner.lock().expect("memory store poisoned");
        Ok(inner.transitions.get(id).cloned().unwrap_or_default())
    }

    async fn record_transition(
        &self,
        id: &WorkItemId,
        from: Stage,
        to: Stage,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock().expect("memory store poisoned");
        let at = now();
        let Some((_, task)) = inner.tasks.get_mut(id) else {
            return Err(StoreError::NotFound(format!("task {id}")));
        };
        if task.stage != from {
            return Ok(false);
        }
        task.stage = to;
        task.updated_at = at.clone();
        inner
            .transitions
            .entry(id.clone())
            .or_default()
            .push(Transition {
                from: Some(from),
                to,
                reason: reason.to_string(),
                at,
            });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_task(id: &str) -> NewTask {
        NewTask {
            work_item_id: WorkItemId::parse(id).unwrap(),
            repo: "acme/app".into(),
            title: format!("title {id}"),
            description: String::new(),
            labels: Vec::new(),
        }
    }

    #[tokio::test]
    async fn transition_is_compare_and_set() {
        let store = MemoryStore::new();
        let id = store
            .create_task(new_task("T-1"))
            .await
            .unwrap()
            .work_item_id;
        assert!(
            store
                .record_transition(&id, Stage::Created, Stage::Analysis, "start")
                .await
                .unwrap()
        );
        // A replay of the same decision changes nothing.
        assert!(
            !store
                .record_transition(&id, Stage::Created, Stage::Analysis, "start")
                .await
                .unwrap()
        );
        let journal = store.transitions(&id).await.unwrap();
        assert_eq!(journal.len(), 2);
        assert_eq!(journal[1].from, Some(Stage::Created));
    }

    #[tokio::test]
    async fn terminal_tasks_are_not_active_and_duplicates_are_refused() {
        let store = MemoryStore::new();
        let a = store
            .create_task(new_task("T-1"))
            .await
            .unwrap()
            .work_item_id;
        let b = store
            .create_task(new_task("T-2"))
            .await
            .unwrap()
            .work_item_id;
        store
            .record_transition(&a, Stage::Created, Stage::Cancelled, "dropped")
            .await
            .unwrap();
        assert_eq!(store.active_task_ids().await.unwrap(), vec![b]);
        let err = store.create_task(new_task("T-1")).await.unwrap_err();
        assert_eq!(err, StoreError::Duplicate("task T-1".into()));
    }

    #[tokio::test]
    async fn one_task_per_issue_and_one_issue_per_task() {
        let store = MemoryStore::new();
        let link = |issue: &str| TrackerLink {
            tracker: "plane".into(),
            project_ref: "p".into(),
            issue_ref: issue.into(),
        };
        store
            .create_linked_task(new_task("T-1"), link("i1"))
            .await
            .unwrap();
        let t1 = WorkItemId::parse("T-1").unwrap();
        assert_eq!(
            store.linked_task("plane", "i1").await.unwrap(),
            Some(t1.clone())
        );
        assert_eq!(store.task_link(&t1).await.unwrap(), Some(link("i1")));
        // The same id for another issue, or another id for the same issue: refused whole.
        for (id, issue) in [("T-1", "i2"), ("T-2", "i1")] {
            let refused = store.create_linked_task(new_task(id), link(issue)).await;
            assert!(
                matches!(refused, Err(StoreError::Duplicate(_))),
                "{id} {issue}"
            );
        }
        assert_eq!(store.list_tasks().await.unwrap().len(), 1);
    }
}
