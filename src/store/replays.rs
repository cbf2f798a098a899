//! The replay window of the delivery journal: when each body (by source and hash) last came
//! in, for as far back as any caller's window reaches. A replay of a body is recognised here
//! rather than through an index of the journal: the hashes are random, so such an index puts
//! one more page into every commit — and under load that page, written to the log and again
//! to the database, was the costliest part of journaling a delivery.
//!
//! Only the writer thread journals deliveries, and it alone touches the window; the journal
//! table stays the truth: the window is loaded from it on first use (the rows of the longest
//! window asked for, read newest first by id), and a note made by a write whose batch then
//! fails to commit is taken back.
//!
//! Memory is one entry (some 150 bytes) per delivery of the longest window: at the default
//! 600 s, a steady 10 deliveries a second keep 6,000.

use std::collections::{HashMap, VecDeque};

use orchestrator_actors::ports::StoreError;
use rusqlite::Connection;

use super::tasks::backend;

/// How far (ms) the clock may have been set back while the journal was written and the
/// window still be loaded whole.
const CLOCK_SLACK_MS: i64 = 3_600_000;

/// Bodies journaled lately.
#[derive(Debug, Default)]
pub(crate) struct RecentBodies {
    /// How far back (ms) the window holds every body; `None` until loaded.
    span_ms: Option<i64>,
    /// When each body last came in (unix ms), by [`key`].
    last: HashMap<String, i64>,
    /// The same notes in the order they were made, to drop the ones that age out; a note
    /// superseded by a later one for the same body is skipped when dropped.
    order: VecDeque<(i64, String)>,
}

/// The window's key of a body from `source`.
pub(crate) fn key(source: &str, body_hash: &str) -> String {
    format!("{source}:{body_hash}")
}

impl RecentBodies {
    /// Makes sure the window holds every body journaled in the last `window_ms` before
    /// `now_ms`, reading the journal through `conn` when it does not yet reach that far.
    pub(crate) fn cover(
        &mut self,
        conn: &Connection,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if self.span_ms.is_some_and(|span| span >= window_ms) {
            return Ok(());
        }
        let cutoff = now_ms.saturating_sub(window_ms);
        // Newest first by id, which is the order of arrival: no index on the time is kept
        // up for this one read at startup. The clock may have been set back a little since
        // some of these rows were written, so the read goes on a while past the cutoff.
        let stop = cutoff.saturating_sub(CLOCK_SLACK_MS);
        let what = "load the replay window";
        let mut stmt = conn
            .prepare(
                "SELECT source, body_hash,
                        CAST(round((julianday(received_at) - 2440587.5) * 86400000.0) AS INTEGER)
                 FROM events ORDER BY id DESC",
            )
            .map_err(backend(what))?;
        let mut rows = stmt.query([]).map_err(backend(what))?;
        let mut notes = Vec::new();
        while let Some(row) = rows.next().map_err(backend(what))? {
            let at: i64 = row.get(2).map_err(backend(what))?;
            if at < stop {
                break;
            }
            let (source, hash): (String, Option<String>) = (
                row.get(0).map_err(backend(what))?,
                row.get(1).map_err(backend(what))?,
            );
            if let Some(hash) = hash.filter(|_| at >= cutoff) {
                notes.push((at, key(&source, &hash)));
            }
        }
        // Noted oldest first, as they came in.
        notes.sort_by_key(|(at, _)| *at);
        self.last.clear();
        self.order.clear();
        for (at, key) in notes {
            self.note(key, at);
        }
        self.span_ms = Some(window_ms);
        Ok(())
    }

    /// Whether the body under `key` came in after `cutoff_ms`.
    pub(crate) fn seen_after(&self, key: &str, cutoff_ms: i64) -> bool {
        self.last.get(key).is_some_and(|&at| at > cutoff_ms)
    }

    /// Notes that the body under `key` came in at `at_ms`, and forgets what has aged out of
    /// the window since.
    pub(crate) fn note(&mut self, key: String, at_ms: i64) {
        if let Some(span) = self.span_ms {
            let cutoff = at_ms.saturating_sub(span);
            while let Some((at, _)) = self.order.front() {
                if *at > cutoff {
                    break;
                }
                let (at, old) = self.order.pop_front().expect("a front entry");
                if self.last.get(&old) == Some(&at) {
                    self.last.remove(&old);
                }
            }
        }
        self.last.insert(key.clone(), at_ms);
        self.order.push_back((at_ms, key));
    }

    /// Takes back the note of `key` at `at_ms` (its write was not committed), unless a later
    /// one replaced it.
    pub(crate) fn forget(&mut self, key: &str, at_ms: i64) {
        if self.last.get(key) == Some(&at_ms) {
            self.last.remove(key);
        }
    }

    /// How many bodies the window holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_seen_until_it_ages_out_and_notes_past_the_window_are_dropped() {
        let mut recent = RecentBodies {
            span_ms: Some(1_000),
            ..RecentBodies::default()
        };
        recent.note(key("gitea", "a"), 10_000);
        recent.note(key("gitea", "b"), 10_500);
        assert!(recent.seen_after(&key("gitea", "a"), 9_999));
        assert!(!recent.seen_after(&key("gitea", "a"), 10_000));
        assert!(!recent.seen_after(&key("plane", "a"), 0), "by source");
        // A later note drops what the window no longer reaches.
        recent.note(key("gitea", "c"), 11_200);
        assert_eq!(recent.len(), 2);
        assert!(!recent.seen_after(&key("gitea", "a"), 0));
        assert!(recent.seen_after(&key("gitea", "b"), 0));
    }

    #[test]
    fn a_renewed_note_survives_the_ageing_of_its_first() {
        let mut recent = RecentBodies {
            span_ms: Some(1_000),
            ..RecentBodies::default()
        };
        recent.note(key("gitea", "a"), 10_000);
        recent.note(key("gitea", "a"), 10_900);
        recent.note(key("gitea", "b"), 11_500);
        assert!(recent.seen_after(&key("gitea", "a"), 10_800));
        // Forgetting the superseded note leaves the newer one.
        recent.forget(&key("gitea", "a"), 10_000);
        assert!(recent.seen_after(&key("gitea", "a"), 10_800));
        recent.forget(&key("gitea", "a"), 10_900);
        assert!(!recent.seen_after(&key("gitea", "a"), 0));
    }
}
