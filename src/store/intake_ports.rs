//! The intake's ports — [`EventJournal`], [`TrackerLinks`], [`BranchHeads`] — on the SQLite
//! store: writes on the writer thread, reads on the pool.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::{
    BranchAt, BranchHeads, EventJournal, Journaled, NewEvent, NewTask, StoreError, TaskRecord,
    TrackerLink, TrackerLinks,
};

use super::{SqliteStore, intake};

#[async_trait]
impl EventJournal for SqliteStore {
    async fn journal_event(
        &self,
        event: NewEvent,
        window: Duration,
    ) -> Result<Journaled, StoreError> {
        self.write(move |conn| intake::journal_event(conn, &event, window.as_secs()))
            .await
    }

    async fn settle_event(
        &self,
        id: i64,
        work_item_id: Option<WorkItemId>,
        outcome: String,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            intake::settle_event(conn, id, work_item_id.as_ref(), &outcome, error.as_deref())
        })
        .await
    }
}

#[async_trait]
impl TrackerLinks for SqliteStore {
    async fn create_linked_task(
        &self,
        task: NewTask,
        link: TrackerLink,
    ) -> Result<TaskRecord, StoreError> {
        self.write(move |conn| intake::create_linked_task(conn, &task, &link))
            .await
    }

    async fn linked_task(
        &self,
        tracker: &str,
        issue_ref: &str,
    ) -> Result<Option<WorkItemId>, StoreError> {
        let (tracker, issue_ref) = (tracker.to_string(), issue_ref.to_string());
        self.read(move |conn| intake::linked_task(conn, &tracker, &issue_ref))
            .await
    }

    async fn task_link(&self, id: &WorkItemId) -> Result<Option<TrackerLink>, StoreError> {
        let id = id.clone();
        self.read(move |conn| intake::task_link(conn, &id)).await
    }
}

#[async_trait]
impl BranchHeads for SqliteStore {
    async fn record_branch_head(
        &self,
        repo: &str,
        branch: &str,
        sha: &str,
    ) -> Result<(), StoreError> {
        let (repo, branch, sha) = (repo.to_string(), branch.to_string(), sha.to_string());
        self.write(move |conn| intake::record_branch_head(conn, &repo, &branch, &sha))
            .await
    }

    async fn branches_at(&self, repo: &str, sha: &str) -> Result<Vec<BranchAt>, StoreError> {
        let (repo, sha) = (repo.to_string(), sha.to_string());
        self.read(move |conn| intake::branches_at(conn, &repo, &sha))
            .await
    }

    async fn task_on_branch(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Option<WorkItemId>, StoreError> {
        let (repo, branch) = (repo.to_string(), branch.to_string());
        self.read(move |conn| intake::task_on_branch(conn, &repo, &branch))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_actors::ports::Store;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("o.db")).await.unwrap();
        (dir, store)
    }

    fn event(delivery: Option<&str>, body: &str) -> NewEvent {
        NewEvent {
            source: "gitea".into(),
            kind: "status".into(),
            delivery_id: delivery.map(str::to_string),
            body_hash: format!("hash-of-{body}"),
            payload: body.into(),
            settled: None,
        }
    }

    #[tokio::test]
    async fn a_delivery_id_or_a_body_seen_within_the_window_is_a_duplicate() {
        let (_dir, store) = store().await;
        let w = Duration::from_secs(600);
        assert!(matches!(
            store
                .journal_event(event(Some("d1"), "a"), w)
                .await
                .unwrap(),
            Journaled::New(_)
        ));
        // The same delivery id with another body: a replay of the delivery.
        assert_eq!(
            store
                .journal_event(event(Some("d1"), "b"), w)
                .await
                .unwrap(),
            Journaled::Duplicate
        );
        // A fresh delivery id with the same body (Plane's retries): a replay of the body.
        assert_eq!(
            store
                .journal_event(event(Some("d2"), "a"), w)
                .await
                .unwrap(),
            Journaled::Duplicate
        );
        // Outside the window the same body is news again.
        assert!(matches!(
            store
                .journal_event(event(None, "a"), Duration::ZERO)
                .await
                .unwrap(),
            Journaled::New(_)
        ));
    }

    #[tokio::test]
    async fn one_task_per_issue_and_one_issue_per_task() {
        let (_dir, store) = store().await;
        let task = |id: &str| NewTask {
            work_item_id: WorkItemId::parse(id).unwrap(),
            repo: "acme/app".into(),
            title: "t".into(),
            description: "d".into(),
            labels: vec![],
        };
        let link = |issue: &str| TrackerLink {
            tracker: "plane".into(),
            project_ref: "p".into(),
            issue_ref: issue.into(),
        };
        store
            .create_linked_task(task("ACME-1"), link("i1"))
            .await
            .unwrap();
        assert_eq!(
            store
                .linked_task("plane", "i1")
                .await
                .unwrap()
                .unwrap()
                .as_str(),
            "ACME-1"
        );
        // The same id for another issue, or another id for the same issue: refused whole.
        assert!(matches!(
            store.create_linked_task(task("ACME-1"), link("i2")).await,
            Err(StoreError::Duplicate(_))
        ));
        assert!(matches!(
            store.create_linked_task(task("ACME-2"), link("i1")).await,
            Err(StoreError::Duplicate(_))
        ));
        assert!(
            store
                .load_task(&WorkItemId::parse("ACME-2").unwrap())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .task_link(&WorkItemId::parse("ACME-1").unwrap())
                .await
                .unwrap()
                .unwrap()
                .issue_ref,
            "i1"
        );
    }

    #[tokio::test]
    async fn branch_heads_resolve_a_commit_to_its_branches() {
        let (_dir, store) = store().await;
        store
            .record_branch_head("acme/app", "feature/A-1", "abc")
            .await
            .unwrap();
        store
            .record_branch_head("acme/app", "feature/A-2", "abc")
            .await
            .unwrap();
        store
            .record_branch_head("acme/app", "feature/A-1", "def")
            .await
            .unwrap();
        assert_eq!(
            store.branches_at("acme/app", "abc").await.unwrap(),
            vec![BranchAt {
                branch: "feature/A-2".into(),
                task: None
            }]
        );
        assert!(
            store
                .branches_at("acme/web", "def")
                .await
                .unwrap()
                .is_empty()
        );
        // With tasks on the branch, the newest one comes along.
        for id in ["A-1", "A-3"] {
            let id = WorkItemId::parse(id).unwrap();
            store
                .create_task(NewTask {
                    work_item_id: id.clone(),
                    repo: "acme/app".into(),
                    title: "t".into(),
                    description: "d".into(),
                    labels: Vec::new(),
                })
                .await
                .unwrap();
            store
                .write(move |conn| {
                    conn.execute(
                        "UPDATE tasks SET branch = 'feature/A-1' WHERE work_item_id = ?1",
                        [id.as_str()],
                    )
                    .map_err(crate::store::tasks::backend("test"))
                })
                .await
                .unwrap();
        }
        assert_eq!(
            store.branches_at("acme/app", "def").await.unwrap(),
            vec![BranchAt {
                branch: "feature/A-1".into(),
                task: Some(WorkItemId::parse("A-3").unwrap())
            }]
        );
    }
}
