//! Each project's workflow states, fetched from Plane at most once per TTL. Moving a card
//! needs a state id by name on every transition; asking Plane each time would spend the
//! API budget (60 requests a minute by default) on data that changes only when someone edits
//! the board. When a refresh fails, the last good set keeps serving: a board is far more
//! likely to be unchanged than Plane is to be back within seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::client::PlaneClient;
use super::error::PlaneError;
use super::types::PlaneState;

/// What is known about one project.
struct Entry {
    /// The last set Plane returned.
    states: Arc<Vec<PlaneState>>,
    /// When Plane was last asked, successfully or not; the next refresh waits a TTL from it.
    asked_at: Instant,
}

/// A TTL cache of states per project.
pub struct StatesCache {
    /// Where states come from.
    client: PlaneClient,
    /// How long a fetched set (or a failed refresh) is trusted before Plane is asked again.
    ttl: Duration,
    /// Per project id. The async lock is held across the fetch so concurrent callers of a
    /// stale project wait for one request instead of each sending their own.
    entries: Mutex<HashMap<String, Entry>>,
}

impl StatesCache {
    /// A cache over `client` that refreshes a project's states once they are `ttl` old.
    pub fn new(client: PlaneClient, ttl: Duration) -> StatesCache {
        StatesCache {
            client,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The project's states: cached while fresh, else refetched. A failed refetch serves the
    /// last good set (and logs a warning); with no good set yet, the error is returned.
    pub async fn get(&self, project_id: &str) -> Result<Arc<Vec<PlaneState>>, PlaneError> {
        let mut entries = self.entries.lock().await;
        if let Some(entry) = entries.get(project_id)
            && entry.asked_at.elapsed() < self.ttl
        {
            return Ok(entry.states.clone());
        }
        match self.client.list_states(project_id).await {
            Ok(states) => {
                let states = Arc::new(states);
                let entry = Entry {
                    states: states.clone(),
                    asked_at: Instant::now(),
                };
                entries.insert(project_id.to_string(), entry);
                Ok(states)
            }
            Err(error) => match entries.get_mut(project_id) {
                Some(entry) => {
                    tracing::warn!(
                        project_id,
                        %error,
                        "cannot refresh Plane states; serving the last good set"
                    );
                    entry.asked_at = Instant::now();
                    Ok(entry.states.clone())
                }
                None => Err(error),
            },
        }
    }

    /// The project's state called `name`, from [`get`](Self::get).
    pub async fn by_name(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Option<PlaneState>, PlaneError> {
        let states = self.get(project_id).await?;
        Ok(states.iter().find(|s| s.name == name).cloned())
    }

    /// Forgets the project's set, so the next [`get`](Self::get) asks Plane: for when Plane
    /// refused a state id the cache handed out, a sign the board was edited.
    pub async fn invalidate(&self, project_id: &str) {
        self.entries.lock().await.remove(project_id);
    }
}
