//! The SQL of the tracker's cards: which chat message shows each task's live card.

use async_trait::async_trait;
use orchestrator_actors::WorkItemId;
use orchestrator_actors::ports::{CardStore, StoreError};
use rusqlite::{Connection, OptionalExtension};

use super::SqliteStore;
use super::tasks::backend;

fn card_message(conn: &Connection, id: &WorkItemId) -> Result<Option<i64>, StoreError> {
    conn.query_row(
        "SELECT message_id FROM tracker_cards WHERE work_item_id = ?1",
        [id.as_str()],
        |row| row.get(0),
    )
    .optional()
    .map_err(backend(format!("read the tracker card of {id}")))
}

fn save_card_message(
    conn: &mut Connection,
    id: &WorkItemId,
    message_id: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO tracker_cards (work_item_id, message_id) VALUES (?1, ?2)
         ON CONFLICT (work_item_id) DO UPDATE SET message_id = excluded.message_id,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        (id.as_str(), message_id),
    )
    .map_err(backend(format!("save the tracker card of {id}")))?;
    Ok(())
}

#[async_trait]
impl CardStore for SqliteStore {
    async fn card_message(&self, id: &WorkItemId) -> Result<Option<i64>, StoreError> {
        let id = id.clone();
        self.read(move |conn| card_message(conn, &id)).await
    }

    async fn save_card_message(&self, id: &WorkItemId, message_id: i64) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(move |conn| save_card_message(conn, &id, message_id))
            .await
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_actors::ports::{CardStore, Store};

    use crate::store::SqliteStore;
    use crate::store::test_support::{new_task, temp_store, work_item};

    #[tokio::test]
    async fn a_reopened_store_returns_the_repointed_card() {
        let (dir, store) = temp_store().await;
        let id = store
            .create_task(new_task("T-1"))
            .await
            .unwrap()
            .work_item_id;
        assert_eq!(store.card_message(&id).await.unwrap(), None);
        store.save_card_message(&id, 10).await.unwrap();
        store.save_card_message(&id, 11).await.unwrap();
        assert_eq!(store.card_message(&id).await.unwrap(), Some(11));
        store.close().await;

        let store = SqliteStore::open(&dir.path().join("orchestrator.db"))
            .await
            .unwrap();
        assert_eq!(store.card_message(&id).await.unwrap(), Some(11));
        // A card belongs to a task the store knows.
        assert!(
            store
                .save_card_message(&work_item("NOPE-1"), 1)
                .await
                .is_err()
        );
        store.close().await;
    }
}
