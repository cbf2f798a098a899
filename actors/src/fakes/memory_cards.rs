//! An in-memory [`CardStore`] for tests: the chat message id of each task's card.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::WorkItemId;
use crate::ports::{CardStore, StoreError};

/// Card message ids kept in a map; share it (in an `Arc`) to survive an actor restart.
#[derive(Debug, Default)]
pub struct MemoryCards {
    ids: Mutex<HashMap<WorkItemId, i64>>,
}

impl MemoryCards {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl CardStore for MemoryCards {
    async fn card_message(&self, id: &WorkItemId) -> Result<Option<i64>, StoreError> {
        let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(ids.get(id).copied())
    }

    async fn save_card_message(&self, id: &WorkItemId, message_id: i64) -> Result<(), StoreError> {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.insert(id.clone(), message_id);
        Ok(())
    }
}
