//! The intake's ports — [`EventJournal`], [`TrackerLinks`], [`BranchHeads`] — on the SQLite
//! store: writes on the writer thread, reads on the pool.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::{
    ActInWrite, BranchHeads, EventJournal, Journaled, NewEvent, NewTask, Settlement, StoreError,
    TaskRecord, TrackerLink, TrackerLinks,
};

use super::compression::dictionaries::Family;
use super::{SqliteStore, intake};

#[async_trait]
impl EventJournal for SqliteStore {
    async fn journal_event(
        &self,
        mut event: NewEvent,
        act: Option<ActInWrite>,
        window: Duration,
    ) -> Result<Journaled, StoreError> {
        // Compressed here, off the one writer thread.
        let family = Family::of(&event);
        let now_ms = intake::unix_ms(SystemTime::now());
        let (body, offer) =
            self.dictionaries
                .encode(family, std::mem::take(&mut event.payload), now_ms);
        let recent = Arc::clone(&self.recent);
        let (journaled, dictionary) = self
            .write_undoable(move |conn| {
                intake::journal_event(conn, &recent, &event, &body, offer, act, window)
            })
            .await?;
        if let Some((family, dictionary)) = dictionary {
            self.dictionaries.publish(family, dictionary);
        }
        Ok(journaled)
    }

    async fn settle_events(&self, settled: Vec<Settlement>) -> Result<(), StoreError> {
        if settled.is_empty() {
            return Ok(());
        }
        self.write(move |conn| intake::settle_events(conn, &settled))
            .await
    }

    async fn event_body(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |conn| intake::event_body(conn, id)).await
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
    use std::sync::Mutex;

    use super::*;
    use orchestrator_actors::ports::{ActedInWrite, BranchAt, CommitRef, Store};

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
            payload: body.as_bytes().to_vec(),
            scope: None,
            settled: None,
            commit: None,
        }
    }

    fn is_new(journaled: &Journaled) -> bool {
        matches!(journaled, Journaled::New { .. })
    }

    #[tokio::test]
    async fn a_delivery_id_or_a_body_seen_within_the_window_is_a_duplicate() {
        let (_dir, store) = store().await;
        let w = Duration::from_secs(600);
        assert!(is_new(
            &store
                .journal_event(event(Some("d1"), "a"), None, w)
                .await
                .unwrap()
        ));
        // The same delivery id with another body: a replay of the delivery.
        assert_eq!(
            store
                .journal_event(event(Some("d1"), "b"), None, w)
                .await
                .unwrap(),
            Journaled::Duplicate
        );
        // A fresh delivery id with the same body (Plane's retries): a replay of the body.
        assert_eq!(
            store
                .journal_event(event(Some("d2"), "a"), None, w)
                .await
                .unwrap(),
            Journaled::Duplicate
        );
        // Outside the window the same body is news again.
        assert!(is_new(
            &store
                .journal_event(event(None, "a"), None, Duration::ZERO)
                .await
                .unwrap()
        ));
    }

    #[tokio::test]
    async fn the_replay_window_outlives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let w = Duration::from_secs(600);
        let store = SqliteStore::open(&path).await.unwrap();
        for body in ["old", "a", "back", "b"] {
            assert!(is_new(
                &store
                    .journal_event(event(None, body), None, w)
                    .await
                    .unwrap()
            ));
        }
        // One delivered long ago is out of any window that follows; one journaled after the
        // clock was set back half an hour is out of this one, and no end to the window
        // either: what came in before it is still read.
        store
            .write(|conn| {
                conn.execute_batch(
                    "UPDATE events SET received_at = '2020-01-01T00:00:00.000Z'
                     WHERE body_hash = 'hash-of-old';
                     UPDATE events
                     SET received_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 minutes')
                     WHERE body_hash = 'hash-of-back';",
                )
                .map_err(crate::store::tasks::backend("test"))
            })
            .await
            .unwrap();
        store.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        for (body, new) in [
            ("a", false),
            ("b", false),
            ("back", true),
            ("old", true),
            ("c", true),
        ] {
            let answer = store
                .journal_event(event(None, body), None, w)
                .await
                .unwrap();
            assert_eq!(is_new(&answer), new, "{body}");
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_delivery_whose_write_was_not_committed_is_news_when_it_comes_again() {
        let (_dir, store) = store().await;
        let store = Arc::new(store);
        let w = Duration::from_secs(600);
        let release = crate::store::test_support::hold_writer(&store).await;
        let mut first = std::pin::pin!(store.journal_event(event(None, "a"), None, w));
        // A batch-mate that fails at COMMIT, failing the batch.
        let mut dangling = std::pin::pin!(store.write(crate::store::test_support::fails_at_commit));
        assert!(futures::poll!(&mut first).is_pending());
        assert!(futures::poll!(&mut dangling).is_pending());
        release.send(()).unwrap();
        let (first, dangling) = tokio::join!(first, dangling);
        assert!(first.is_err() && dangling.is_err());
        // The sender retries the delivery it was refused.
        assert!(is_new(
            &store
                .journal_event(event(None, "a"), None, w)
                .await
                .unwrap()
        ));
        assert_eq!(
            store
                .journal_event(event(None, "a"), None, w)
                .await
                .unwrap(),
            Journaled::Duplicate
        );
    }

    #[tokio::test]
    async fn a_body_is_kept_byte_for_byte() {
        let (_dir, store) = store().await;
        let w = Duration::from_secs(600);
        let indented = format!(
            "{{\n  \"sender\": {{\n    \"login\": \"ci\"\n  }},{}\n}}",
            "\n  \"x\": 1,".repeat(200)
        );
        let mut ids = Vec::new();
        // Compressed, kept as it came, and not even UTF-8.
        for raw in [
            indented.into_bytes(),
            b"{}".to_vec(),
            vec![0xff, 0xfe, b'{'],
        ] {
            let mut event = event(None, "");
            event.body_hash = signature_of(&raw);
            event.payload = raw.clone();
            match store.journal_event(event, None, w).await.unwrap() {
                Journaled::New { id, .. } => ids.push((id, raw)),
                Journaled::Duplicate => panic!("a new body"),
            }
        }
        for (id, raw) in ids {
            assert_eq!(store.event_body(id).await.unwrap(), Some(raw));
        }
        assert_eq!(store.event_body(999).await.unwrap(), None);
    }

    fn signature_of(raw: &[u8]) -> String {
        crate::intake::signature::body_hash(raw)
    }

    #[tokio::test]
    async fn outcomes_are_journaled_together() {
        let (_dir, store) = store().await;
        let w = Duration::from_secs(600);
        let mut ids = Vec::new();
        for body in ["a", "b"] {
            match store
                .journal_event(event(None, body), None, w)
                .await
                .unwrap()
            {
                Journaled::New { id, .. } => ids.push(id),
                Journaled::Duplicate => panic!("{body} is new"),
            }
        }
        store
            .settle_events(vec![
                Settlement {
                    id: ids[0],
                    work_item_id: Some(WorkItemId::parse("ACME-1").unwrap()),
                    outcome: "gate re-checked".into(),
                    error: None,
                },
                Settlement {
                    id: ids[1],
                    work_item_id: None,
                    outcome: "failed".into(),
                    error: Some("task ACME-2 did not answer in time".into()),
                },
            ])
            .await
            .unwrap();
        let settled = |task: Option<&str>, outcome: &str, error: Option<&str>| Row {
            task: task.map(str::to_string),
            outcome: Some(outcome.to_string()),
            error: error.map(str::to_string),
            processed: true,
        };
        assert_eq!(
            journal(&store).await,
            vec![
                (ids[0], settled(Some("ACME-1"), "gate re-checked", None)),
                (
                    ids[1],
                    settled(None, "failed", Some("task ACME-2 did not answer in time"))
                ),
            ]
        );
    }

    /// A journaled delivery, as far as its outcome goes.
    #[derive(Debug, PartialEq)]
    struct Row {
        task: Option<String>,
        outcome: Option<String>,
        error: Option<String>,
        processed: bool,
    }

    /// Every journaled delivery, by id.
    async fn journal(store: &SqliteStore) -> Vec<(i64, Row)> {
        let sql = "SELECT id, work_item_id, outcome, error, processed_at IS NOT NULL
                   FROM events ORDER BY id";
        crate::store::test_support::select(store, sql, |r| {
            let row = Row {
                task: r.get(1)?,
                outcome: r.get(2)?,
                error: r.get(3)?,
                processed: r.get(4)?,
            };
            Ok((r.get(0)?, row))
        })
        .await
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
    async fn the_journal_write_resolves_a_commit_to_its_branches() {
        let (_dir, store) = store().await;
        // A status naming `sha` of `repo`, journaled: the branches found at it.
        async fn at(store: &SqliteStore, repo: &str, sha: &str) -> Vec<BranchAt> {
            let status = NewEvent {
                commit: Some(CommitRef {
                    repo: repo.into(),
                    sha: sha.into(),
                }),
                ..event(None, &format!("{repo}@{sha}"))
            };
            match store
                .journal_event(status, None, Duration::ZERO)
                .await
                .unwrap()
            {
                Journaled::New { branches, .. } => branches,
                Journaled::Duplicate => panic!("outside any window"),
            }
        }
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
            at(&store, "acme/app", "abc").await,
            vec![BranchAt {
                branch: "feature/A-2".into(),
                task: None
            }]
        );
        assert!(at(&store, "acme/web", "def").await.is_empty());
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
            at(&store, "acme/app", "def").await,
            vec![BranchAt {
                branch: "feature/A-1".into(),
                task: Some(WorkItemId::parse("A-3").unwrap())
            }]
        );
    }

    #[tokio::test]
    async fn a_delivery_acted_on_in_its_write_is_journaled_settled() {
        let (_dir, store) = store().await;
        let w = Duration::from_secs(600);
        store
            .record_branch_head("acme/app", "feature/A-1", "abc")
            .await
            .unwrap();
        let status = |delivery: &str, body: &str| NewEvent {
            commit: Some(CommitRef {
                repo: "acme/app".into(),
                sha: "abc".into(),
            }),
            ..event(Some(delivery), body)
        };
        let (runs, seen) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(Vec::new())));
        let act = |outcome: Option<&'static str>| -> Option<ActInWrite> {
            let (runs, seen) = (Arc::clone(&runs), Arc::clone(&seen));
            Some(Box::new(move |branches: &mut Vec<BranchAt>| {
                *runs.lock().unwrap() += 1;
                seen.lock().unwrap().extend(branches.iter().cloned());
                if outcome.is_some() {
                    branches.clear();
                }
                outcome.map(|o| ActedInWrite {
                    task: Some(WorkItemId::parse("A-1").unwrap()),
                    outcome: o.to_string(),
                    recheck: Some(WorkItemId::parse("A-1").unwrap()),
                })
            }))
        };
        let first = store
            .journal_event(status("d1", "a"), act(Some("gate re-checked")), w)
            .await
            .unwrap();
        let Journaled::New {
            id,
            branches,
            acted: true,
            recheck,
        } = first
        else {
            panic!("acted on: {first:?}");
        };
        assert!(branches.is_empty(), "the act took them");
        // The task to tell comes back with the committed write; the act told nobody.
        assert_eq!(recheck, Some(WorkItemId::parse("A-1").unwrap()));
        assert_eq!(seen.lock().unwrap()[0].branch, "feature/A-1");
        // Declining leaves the branches for acting after the write, and nothing settled.
        let second = store
            .journal_event(status("d2", "b"), act(None), w)
            .await
            .unwrap();
        let Journaled::New {
            id: later,
            branches,
            acted: false,
            recheck: None,
        } = second
        else {
            panic!("not acted on: {second:?}");
        };
        assert_eq!(branches.len(), 1);
        // A replay — of the delivery, or of the body — and a settled delivery: never acted on.
        for replay in [status("d1", "c"), status("d3", "a")] {
            let answer = store
                .journal_event(replay, act(Some("again")), w)
                .await
                .unwrap();
            assert_eq!(answer, Journaled::Duplicate);
        }
        let ignored = NewEvent {
            settled: Some("ignored: not ours".into()),
            ..status("d4", "d")
        };
        let answer = store
            .journal_event(ignored, act(Some("acted")), w)
            .await
            .unwrap();
        assert!(matches!(answer, Journaled::New { acted: false, .. }));
        assert_eq!(*runs.lock().unwrap(), 2);
        let rows = journal(&store).await;
        assert_eq!(rows.len(), 3);
        let acted = Row {
            task: Some("A-1".into()),
            outcome: Some("gate re-checked".into()),
            error: None,
            processed: true,
        };
        assert_eq!(rows[0], (id, acted));
        let unsettled = Row {
            task: None,
            outcome: None,
            error: None,
            processed: false,
        };
        assert_eq!(rows[1], (later, unsettled));
        assert_eq!(rows[2].1.outcome.as_deref(), Some("ignored: not ours"));
    }
}
