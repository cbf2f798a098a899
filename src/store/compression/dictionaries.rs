//! The compression dictionaries of delivery bodies (see [`super::bodies`]): one per family —
//! the source, kind and scope of a delivery — made of the family's first body, kept in
//! `body_dictionaries`, and cached here once its write has committed. A family's bodies may
//! drift from their dictionary (Gitea upgraded, a repository's settings rewritten): a body
//! that still keeps over a quarter of its size against a dictionary an hour old or more
//! becomes the family's new one. Bodies keep naming the dictionary they were compressed
//! against, so a dictionary is never changed or dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use orchestrator_actors::ports::{NewEvent, StoreError};
use rusqlite::{Connection, OptionalExtension};
use tracing::warn;

use super::bodies::{Dictionary, MAX_DICTIONARY, StoredBody};
use crate::store::intake::unix_ms;
use crate::store::lock;
use crate::store::tasks::backend;

/// How old (ms) a dictionary must be before a body that outgrew it replaces it.
const REFRESH_MS: i64 = 3_600_000;

/// Most bytes of dictionaries cached; a family that finds the cache full has its bodies
/// compressed alone (a few hundred families of 64 KiB bodies; thousands of 4 KiB ones).
const MAX_CACHED_BYTES: usize = 32 << 20;

/// Deliveries alike enough to share a dictionary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Family {
    source: String,
    kind: String,
    scope: String,
}

impl Family {
    /// The family of `event`; `None` when it names no scope.
    pub(crate) fn of(event: &NewEvent) -> Option<Self> {
        Some(Self {
            source: event.source.clone(),
            kind: event.kind.clone(),
            scope: event.scope.clone()?,
        })
    }
}

/// A body offered to the writer as its family's dictionary.
pub(crate) struct Offer {
    /// Whose.
    pub family: Family,
    /// The body, as received.
    pub raw: Vec<u8>,
    /// Whether it replaces a dictionary the family outgrew (else it is taken only when the
    /// family has none).
    pub replaces: bool,
}

/// Families' dictionaries, as committed.
#[derive(Debug, Default)]
pub(crate) struct Dictionaries(Mutex<Cache>);

/// The dictionaries cached, and their bytes in all.
#[derive(Debug, Default)]
struct Cache {
    by_family: HashMap<Family, Arc<Dictionary>>,
    bytes: usize,
}

impl Dictionaries {
    /// Encodes `raw`, a body of `family`, against the family's dictionary; and, when the
    /// family has none cached (or has outgrown it), offers `raw` to the writer, which takes
    /// the family's dictionary from the journal or makes one of it.
    pub(crate) fn encode(
        &self,
        family: Option<Family>,
        raw: Vec<u8>,
        now_ms: i64,
    ) -> (StoredBody, Option<Offer>) {
        let Some(family) = family else {
            return (StoredBody::encode(&raw, None), None);
        };
        let (dictionary, full) = {
            let cache = lock(&self.0);
            let dictionary = cache.by_family.get(&family).cloned();
            (dictionary, cache.bytes + raw.len() > MAX_CACHED_BYTES)
        };
        let body = StoredBody::encode(&raw, dictionary.as_deref());
        // Kept against it (or as it came) in over a quarter of its size: the family's
        // bodies have moved away from the dictionary.
        let replaces = dictionary.as_ref().is_some_and(|d| {
            body.bytes.len() > raw.len() / 4 && now_ms.saturating_sub(d.created_ms) >= REFRESH_MS
        });
        let offered = (dictionary.is_none() || replaces) && !full && raw.len() <= MAX_DICTIONARY;
        let offer = offered.then_some(Offer {
            family,
            raw,
            replaces,
        });
        (body, offer)
    }

    /// Caches `dictionary` as its family's, unless a newer one is cached already.
    pub(crate) fn publish(&self, family: Family, dictionary: Dictionary) {
        let mut cache = lock(&self.0);
        if cache
            .by_family
            .get(&family)
            .is_none_or(|d| d.id < dictionary.id)
        {
            cache.bytes += dictionary.bytes.len();
            if let Some(old) = cache.by_family.insert(family, Arc::new(dictionary)) {
                cache.bytes -= old.bytes.len();
            }
        }
    }
}

/// On the writer: the dictionary of the family `offer` is for — the newest journaled, or one
/// made of the offered body when there is none or the offer replaces one that is stale.
pub(crate) fn take_offer(
    conn: &Connection,
    offer: Offer,
    now: SystemTime,
) -> Result<(Family, Dictionary), StoreError> {
    let Offer {
        family,
        raw,
        replaces,
    } = offer;
    let failed = |e| {
        backend(format!(
            "keep a dictionary of {} {} bodies of {}",
            family.source, family.kind, family.scope
        ))(e)
    };
    let newest = conn
        .prepare_cached(
            "SELECT id, body, created_at FROM body_dictionaries
             WHERE source = ?1 AND kind = ?2 AND scope = ?3 ORDER BY id DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row((&family.source, &family.kind, &family.scope), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()
        })
        .map_err(failed)?;
    let now_ms = unix_ms(now);
    if let Some((id, bytes, created_at)) = newest {
        // A time that does not read counts as long ago: the dictionary is still good to
        // compress against, and the next body that outgrows it replaces it.
        let created_ms = humantime::parse_rfc3339(&created_at).map_or_else(
            |e| {
                warn!(dictionary = id, %created_at, error = %e, "a body dictionary's time does not read");
                i64::MIN
            },
            unix_ms,
        );
        // A replacement made since the offer was, or no replacement asked for.
        if !replaces || now_ms.saturating_sub(created_ms) < REFRESH_MS {
            let dictionary = Dictionary {
                id,
                bytes,
                created_ms,
            };
            return Ok((family, dictionary));
        }
    }
    let created_at = humantime::format_rfc3339_millis(now).to_string();
    let id = conn
        .prepare_cached(
            "INSERT INTO body_dictionaries (source, kind, scope, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                (
                    &family.source,
                    &family.kind,
                    &family.scope,
                    &raw,
                    &created_at,
                ),
                |r| r.get::<_, i64>(0),
            )
        })
        .map_err(failed)?;
    // Kept to the millisecond, as it reads back.
    let created_ms = now_ms;
    let dictionary = Dictionary {
        id,
        bytes: raw,
        created_ms,
    };
    Ok((family, dictionary))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use orchestrator_actors::ports::{EventJournal, Journaled, NewEvent};

    use super::{Dictionaries, Dictionary, Family, MAX_CACHED_BYTES, MAX_DICTIONARY};
    use crate::store::SqliteStore;
    use crate::store::test_support::{fails_at_commit, hold_writer, select};

    const WINDOW: Duration = Duration::from_secs(600);

    /// Status `n` of `scope`'s commit, an indented body of some 1.5 KiB.
    fn status(scope: Option<&str>, n: u32) -> NewEvent {
        let repo = scope.unwrap_or("elsewhere/app");
        let body = serde_json::to_vec_pretty(&serde_json::json!({
            "commit": {"id": "5f0c6c1d", "message": "feat: say hello\n"},
            "context": "ci/build", "description": format!("build #{n}"), "id": n,
            "created_at": format!("2026-11-22T10:00:{:02}Z", n % 60),
            "repository": {
                "id": 1, "full_name": repo, "description": "The acme application",
                "html_url": format!("http://gitea/{repo}"),
                "clone_url": format!("http://gitea/{repo}.git"),
                "ssh_url": format!("git@gitea:{repo}.git"), "default_branch": "main",
                "owner": {"id": 1, "login": "acme", "email": "acme@example.com",
                          "avatar_url": "http://gitea/avatars/acme", "visibility": "public"}
            },
            "sender": {"id": 2, "login": "ci", "email": "ci@example.com",
                       "avatar_url": "http://gitea/avatars/ci", "visibility": "public"},
            "sha": "5f0c6c1d", "state": "pending",
            "target_url": format!("http://ci/builds/{n}")
        }))
        .unwrap();
        raw_status(scope, n, body)
    }

    /// Delivery `n` of `scope` with `body`.
    fn raw_status(scope: Option<&str>, n: u32, body: Vec<u8>) -> NewEvent {
        NewEvent {
            source: "gitea".into(),
            kind: "status".into(),
            delivery_id: Some(format!("d-{}-{n}", scope.unwrap_or("-"))),
            body_hash: crate::intake::signature::body_hash(&body),
            payload: body,
            scope: scope.map(str::to_string),
            settled: None,
            commit: None,
        }
    }

    /// Journals `event`, noting its id and body in `journaled`: its id.
    async fn journal(
        store: &SqliteStore,
        event: NewEvent,
        journaled: &mut Vec<(i64, Vec<u8>)>,
    ) -> i64 {
        let raw = event.payload.clone();
        match store.journal_event(event, None, WINDOW).await.unwrap() {
            Journaled::New { id, .. } => {
                journaled.push((id, raw));
                id
            }
            Journaled::Duplicate => panic!("a new delivery"),
        }
    }

    /// How event `id`'s body is kept: its encoding, dictionary and stored size.
    async fn kept(store: &SqliteStore, id: i64) -> (String, Option<i64>, i64) {
        store
            .read(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT encoding, dictionary_id, length(body) FROM event_bodies
                         WHERE event_id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .unwrap())
            })
            .await
            .unwrap()
    }

    /// Every dictionary: id, scope and body.
    async fn dictionaries(store: &SqliteStore) -> Vec<(i64, String, Vec<u8>)> {
        let sql = "SELECT id, scope, body FROM body_dictionaries ORDER BY id";
        select(store, sql, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).await
    }

    /// Every body journaled so far comes back as it was received.
    async fn all_come_back(store: &SqliteStore, journaled: &[(i64, Vec<u8>)]) {
        for (id, raw) in journaled {
            assert_eq!(store.event_body(*id).await.unwrap().as_ref(), Some(raw));
        }
    }

    #[tokio::test]
    async fn a_family_s_bodies_are_kept_against_its_first_one_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mut journaled = Vec::new();
        let j = &mut journaled;
        // The first of a family is kept alone and becomes its dictionary.
        let first = journal(&store, status(Some("acme/app"), 1), j).await;
        let (encoding, dictionary, alone) = kept(&store, first).await;
        assert_eq!((encoding.as_str(), dictionary), ("lz4", None));
        let dictionary = dictionaries(&store).await;
        assert_eq!(dictionary, [(1, "acme/app".to_string(), j[0].1.clone())]);
        // The next ones are kept against it, in a fraction of the size.
        let second = journal(&store, status(Some("acme/app"), 2), j).await;
        let (encoding, dictionary, against) = kept(&store, second).await;
        assert_eq!((encoding.as_str(), dictionary), ("lz4-dict", Some(1)));
        assert!(against * 5 < alone, "{against} against {alone} alone");
        // Another scope is another family; no scope, no family.
        let other = journal(&store, status(Some("acme/web"), 1), j).await;
        assert_eq!(kept(&store, other).await.1, None);
        for n in 1..=2 {
            let none = journal(&store, status(None, n), j).await;
            assert_eq!(kept(&store, none).await.1, None);
        }
        assert_eq!(dictionaries(&store).await.len(), 2);
        store.close().await;

        // After a restart the family's bodies go on against the same dictionary: the first
        // one, while the journal is asked for it, alone.
        let store = SqliteStore::open(&path).await.unwrap();
        let third = journal(&store, status(Some("acme/app"), 3), j).await;
        assert_eq!(kept(&store, third).await.1, None);
        let fourth = journal(&store, status(Some("acme/app"), 4), j).await;
        assert_eq!(kept(&store, fourth).await.1, Some(1));
        assert_eq!(dictionaries(&store).await.len(), 2);
        all_come_back(&store, &journaled).await;
        store.close().await;
    }

    #[tokio::test]
    async fn a_family_that_outgrew_a_dictionary_an_hour_old_gets_a_new_one() {
        // A time that does not read counts as long ago.
        for long_ago in ["2026-01-01T00:00:00.000Z", "not a time"] {
            outgrow_a_dictionary_made(long_ago).await;
        }
    }

    async fn outgrow_a_dictionary_made(long_ago: &'static str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let scope = Some("acme/app");
        // Bodies nothing like a status, each like the others: the same noise, numbered.
        let unlike = |n: u32| -> Vec<u8> {
            let mut x = 0x9e37_79b9_u32;
            let noise = (0..2_400).map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            });
            n.to_le_bytes().into_iter().chain(noise).collect()
        };
        let mut journaled = Vec::new();
        let j = &mut journaled;
        for n in 1..=2 {
            journal(&store, status(scope, n), j).await;
        }
        // Outgrown, but the dictionary is new: it stays.
        let outgrown = journal(&store, raw_status(scope, 3, unlike(3)), j).await;
        let (encoding, dictionary, _) = kept(&store, outgrown).await;
        assert_eq!((encoding.as_str(), dictionary), ("identity", None));
        assert_eq!(dictionaries(&store).await.len(), 1);
        store
            .write(move |conn| {
                conn.execute("UPDATE body_dictionaries SET created_at = ?1", [long_ago])
                    .unwrap();
                Ok(())
            })
            .await
            .unwrap();
        store.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        // Fetched again after the restart, now known to be old…
        journal(&store, raw_status(scope, 4, unlike(4)), j).await;
        // …and outgrown: the body becomes the family's dictionary.
        let outgrown = journal(&store, raw_status(scope, 5, unlike(5)), j).await;
        assert_eq!(kept(&store, outgrown).await.1, None);
        let dictionaries = dictionaries(&store).await;
        assert_eq!(dictionaries.len(), 2);
        assert_eq!(dictionaries[1].2, unlike(5));
        let after = journal(&store, raw_status(scope, 6, unlike(6)), j).await;
        let (encoding, dictionary, _) = kept(&store, after).await;
        assert_eq!((encoding.as_str(), dictionary), ("lz4-dict", Some(2)));
        all_come_back(&store, &journaled).await;
        store.close().await;
    }

    #[test]
    fn only_a_family_without_a_dictionary_offers_its_body_while_the_cache_has_room() {
        let dictionaries = Dictionaries::default();
        let family = |scope: &str| Family::of(&status(Some(scope), 0));
        let body = |n| status(Some("acme/app"), n).payload;
        let (_, offer) = dictionaries.encode(family("acme/app"), body(1), 0);
        assert!(!offer.expect("none cached yet").replaces);
        // No family, or a body LZ4 could not reach the end of: no offer.
        assert!(dictionaries.encode(None, body(1), 0).1.is_none());
        let huge = vec![b' '; MAX_DICTIONARY + 1];
        assert!(dictionaries.encode(family("acme/app"), huge, 0).1.is_none());
        // A family with a dictionary compresses against it; once the cache is full, a new
        // family is compressed alone and offers nothing.
        let filling = Dictionary {
            id: 1,
            bytes: vec![b' '; MAX_CACHED_BYTES - 100],
            created_ms: 0,
        };
        dictionaries.publish(family("acme/app").unwrap(), filling);
        let (stored, offer) = dictionaries.encode(family("acme/app"), body(2), 0);
        assert_eq!((stored.dictionary, offer.is_none()), (Some(1), true));
        let (stored, offer) = dictionaries.encode(family("acme/web"), body(2), 0);
        assert_eq!((stored.dictionary, offer.is_none()), (None, true));
    }

    #[tokio::test]
    async fn a_dictionary_whose_write_was_not_committed_is_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("o.db")).await.unwrap());
        let release = hold_writer(&store).await;
        let mut first = std::pin::pin!(store.journal_event(status(Some("a/b"), 1), None, WINDOW));
        // A batch-mate that fails at COMMIT, failing the batch.
        let mut dangling = std::pin::pin!(store.write(fails_at_commit));
        assert!(futures::poll!(&mut first).is_pending());
        assert!(futures::poll!(&mut dangling).is_pending());
        release.send(()).unwrap();
        let (first, dangling) = tokio::join!(first, dangling);
        assert!(first.is_err() && dangling.is_err());
        assert!(dictionaries(&store).await.is_empty());
        // Had the lost dictionary been cached, this body would name a row that is not there.
        let mut journaled = Vec::new();
        let j = &mut journaled;
        let second = journal(&store, status(Some("a/b"), 2), j).await;
        let third = journal(&store, status(Some("a/b"), 3), j).await;
        assert_eq!(kept(&store, second).await.1, None);
        let dictionaries = dictionaries(&store).await;
        assert_eq!(dictionaries.len(), 1);
        assert_eq!(kept(&store, third).await.1, Some(dictionaries[0].0));
        all_come_back(&store, &journaled).await;
    }
}
