//! The dashboard's operator sessions: the one owner of the session table. A login exchanges
//! the operator token for a random session id (the cookie) and a CSRF token (in every form);
//! handlers ask this owner by message, and it alone writes the table. It runs as owned work
//! of the dashboard, so it ends with the HTTP server that holds it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

/// How long a session lasts after its login.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Most sessions kept at once; a login past it ends the one closest to expiring.
const MAX_SESSIONS: usize = 256;

/// A logged-in operator's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::http) struct Session {
    /// The random id its cookie carries.
    pub id: String,
    /// The random token every form of this session must carry.
    pub csrf: String,
}

/// What the owner is asked.
enum Msg {
    /// A login succeeded: open a session.
    Open(oneshot::Sender<Session>),
    /// Which session, if any, this cookie's id names.
    Find(String, oneshot::Sender<Option<Session>>),
    /// A logout: end the session.
    Close(String),
}

/// 256 bits from the operating system's random source (two v4 UUIDs: 244 random bits), as
/// hex: for session ids and CSRF tokens.
pub(super) fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The handle handlers ask the owner through.
#[derive(Clone)]
pub(super) struct Sessions {
    /// The owner's mailbox.
    tx: mpsc::Sender<Msg>,
}

impl Sessions {
    /// Starts the owner; it lives as long as the returned handle.
    pub(super) fn start() -> (Sessions, AbortOnDropHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let owner = AbortOnDropHandle::new(tokio::spawn(own(rx)));
        (Sessions { tx }, owner)
    }

    /// Opens a session; `None` only when the owner is gone (the service is stopping).
    pub(super) async fn open(&self) -> Option<Session> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Msg::Open(reply)).await.ok()?;
        answer.await.ok()
    }

    /// The live session whose id is `id`.
    pub(super) async fn find(&self, id: &str) -> Option<Session> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Msg::Find(id.to_string(), reply)).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Ends the session `id` (nothing if there is none).
    pub(super) async fn close(&self, id: &str) {
        let _ = self.tx.send(Msg::Close(id.to_string())).await;
    }
}

/// A session as the owner keeps it.
struct Entry {
    /// Its CSRF token.
    csrf: String,
    /// When it stops being valid.
    expires: Instant,
}

/// The owner's loop: the table is its own, changed only here.
async fn own(mut rx: mpsc::Receiver<Msg>) {
    let mut table: HashMap<String, Entry> = HashMap::new();
    while let Some(msg) = rx.recv().await {
        let now = Instant::now();
        table.retain(|_, e| e.expires > now);
        match msg {
            Msg::Open(reply) => {
                if table.len() >= MAX_SESSIONS
                    && let Some(oldest) = table
                        .iter()
                        .min_by_key(|(_, e)| e.expires)
                        .map(|(id, _)| id.clone())
                {
                    table.remove(&oldest);
                }
                let session = Session {
                    id: random_token(),
                    csrf: random_token(),
                };
                table.insert(
                    session.id.clone(),
                    Entry {
                        csrf: session.csrf.clone(),
                        expires: now + SESSION_TTL,
                    },
                );
                let _ = reply.send(session);
            }
            Msg::Find(id, reply) => {
                let found = table.get(&id).map(|e| Session {
                    id: id.clone(),
                    csrf: e.csrf.clone(),
                });
                let _ = reply.send(found);
            }
            Msg::Close(id) => {
                table.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_is_found_by_its_id_until_it_is_closed() {
        let (sessions, _owner) = Sessions::start();
        let a = sessions.open().await.unwrap();
        let b = sessions.open().await.unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, a.id);
        assert_eq!(a.id.len(), 64);
        assert_eq!(sessions.find(&a.id).await, Some(a.clone()));
        assert_eq!(sessions.find("not-a-session").await, None);
        sessions.close(&a.id).await;
        assert_eq!(sessions.find(&a.id).await, None);
        assert_eq!(sessions.find(&b.id).await, Some(b));
    }
}
