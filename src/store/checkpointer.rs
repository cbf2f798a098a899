//! WAL checkpoints, mostly off the writer's path. SQLite's automatic checkpoint runs inside
//! the commit that grows the log past a threshold: that one write copies every page the log
//! holds into the database and fsyncs twice while each write queued behind it waits — the
//! tail of the store's latency. Here the writer's WAL hook ([`WalWatch`]) nudges a
//! `store-checkpoint` thread every [`STEP_PAGES`] of growth; on its own connection it runs a
//! PASSIVE checkpoint, which copies what no reader still needs and never blocks the writer or
//! the readers. The writer still checkpoints itself at [`WRITER_PAGES`], as SQLite would — but
//! by then the thread has copied nearly everything, so that pass is short, and it is what
//! lets SQLite restart the log from the top (a log copied only while the writer keeps
//! appending is never wholly copied, so it would grow without end).

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use super::OpenError;
use super::connection;

/// Log growth, in pages, between two nudges of the checkpoint thread.
pub(crate) const STEP_PAGES: i32 = 250;

/// Log size, in pages, at which the writer checkpoints itself — SQLite's own default.
pub(crate) const WRITER_PAGES: i32 = 1000;

/// What the writer does after a commit, given the log's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing: the log has not grown enough since the last nudge.
    Nothing,
    /// Ask the checkpoint thread for a checkpoint.
    Nudge,
    /// Checkpoint on the writer itself, so that the log can restart.
    Checkpoint,
}

/// Watches the log's size after each commit of the writer connection.
pub(crate) struct WalWatch {
    nudge: SyncSender<()>,
    /// Log size at which to nudge next.
    next: i32,
    /// Log size at the previous commit; a smaller one means the log restarted.
    last: i32,
}

impl WalWatch {
    fn new(nudge: SyncSender<()>) -> Self {
        Self {
            nudge,
            next: STEP_PAGES,
            last: 0,
        }
    }

    /// Decides what to do now that the log holds `pages` pages.
    pub(crate) fn decide(&mut self, pages: i32) -> Action {
        if pages < self.last {
            self.next = STEP_PAGES; // the log restarted from the top
        }
        self.last = pages;
        if pages >= WRITER_PAGES {
            Action::Checkpoint
        } else if pages >= self.next {
            self.next = pages + STEP_PAGES;
            Action::Nudge
        } else {
            Action::Nothing
        }
    }

    /// The writer connection's WAL hook.
    fn on_commit(&mut self, wal: &mut Wal, pages: i32) -> rusqlite::Result<()> {
        match self.decide(pages) {
            Action::Nothing => {}
            // Full: a checkpoint is already asked for and will see these pages too.
            // Disconnected: the thread is gone; the writer's own pass still bounds the log.
            Action::Nudge => drop(self.nudge.try_send(())),
            // A failure here must not fail the commit that has already happened.
            Action::Checkpoint => {
                if let Err(e) = wal.checkpoint() {
                    tracing::warn!(error = %e, "WAL checkpoint on the writer failed");
                }
            }
        }
        Ok(())
    }
}

/// Keeps the checkpoint thread running while held; see [`start`].
pub(crate) struct Keepalive {
    /// Never sends; the thread's channel stays open while it exists.
    _nudge: SyncSender<()>,
}

/// Installs the hook on the writer connection and starts the checkpoint thread; returns its
/// handle and a [`Keepalive`]. The thread ends once both the hook and the keepalive are gone:
/// the writer drops the keepalive only after its connection is wholly closed. (The hook goes
/// first, while the connection still holds its lock on the file; were the thread to close its
/// own connection then, each would see the other still there and neither, being the last,
/// would fold the log into the database and delete it.)
pub(crate) fn start(
    path: &Path,
    writer: &mut Connection,
) -> Result<(JoinHandle<()>, Keepalive), OpenError> {
    let conn = connection::open_checkpointer(path)?;
    let (nudge, nudges) = mpsc::sync_channel(1);
    let keepalive = Keepalive {
        _nudge: nudge.clone(),
    };
    let mut watch = WalWatch::new(nudge);
    writer
        .wal_hook(Some(move |wal: &mut Wal, pages| {
            watch.on_commit(wal, pages)
        }))
        .map_err(|e| OpenError::Configure {
            path: path.to_owned(),
            detail: format!("cannot watch the WAL: {e}"),
        })?;
    let thread = std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || serve(conn, nudges))
        .map_err(|e| OpenError::Writer {
            path: path.to_owned(),
            detail: format!("cannot spawn the checkpoint thread: {e}"),
        })?;
    Ok((thread, keepalive))
}

/// The thread's loop: one PASSIVE checkpoint per nudge.
fn serve(conn: Connection, nudges: Receiver<()>) {
    while nudges.recv().is_ok() {
        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match outcome {
            Ok((log, copied)) => tracing::trace!(log, copied, "WAL checkpoint"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the checkpoint connection failed");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::tasks::backend;
    use crate::store::test_support::temp_store;

    fn watch() -> WalWatch {
        WalWatch::new(mpsc::sync_channel(1).0)
    }

    #[test]
    fn nudges_once_per_step_of_growth() {
        let mut w = watch();
        assert_eq!(w.decide(10), Action::Nothing);
        assert_eq!(w.decide(STEP_PAGES - 1), Action::Nothing);
        assert_eq!(w.decide(STEP_PAGES + 5), Action::Nudge);
        // Until the log has grown by another step, no more nudges.
        assert_eq!(w.decide(STEP_PAGES + 100), Action::Nothing);
        assert_eq!(w.decide(2 * STEP_PAGES + 4), Action::Nothing);
        assert_eq!(w.decide(2 * STEP_PAGES + 5), Action::Nudge);
    }

    #[test]
    fn a_restarted_log_counts_from_zero_again() {
        let mut w = watch();
        assert_eq!(w.decide(STEP_PAGES + 100), Action::Nudge);
        assert_eq!(w.decide(3), Action::Nothing);
        assert_eq!(w.decide(STEP_PAGES), Action::Nudge);
    }

    #[test]
    fn the_writer_checkpoints_itself_at_its_threshold_until_the_log_restarts() {
        let mut w = watch();
        assert_eq!(w.decide(WRITER_PAGES), Action::Checkpoint);
        // Readers on old snapshots can keep the log from restarting: try again each commit.
        assert_eq!(w.decide(WRITER_PAGES + 1), Action::Checkpoint);
        assert_eq!(w.decide(2), Action::Nothing);
        assert_eq!(w.decide(STEP_PAGES), Action::Nudge);
    }

    #[tokio::test]
    async fn the_thread_copies_the_log_into_the_database_before_the_writer_would() {
        let (dir, store) = temp_store().await;
        let db = dir.path().join("orchestrator.db");
        let before = std::fs::metadata(&db).unwrap().len();
        // Some 400 pages of log, below the writer's own threshold, in many commits as the
        // service makes them.
        for i in 0..40 {
            store
                .write(move |conn| {
                    for j in 0..10 {
                        conn.execute(
                            "INSERT INTO events (source, kind, dedup_key) VALUES ('test', 'bulk', ?1)",
                            [format!("{i}-{j}")],
                        )
                        .and_then(|_| {
                            conn.execute(
                                "INSERT INTO event_bodies (event_id, encoding, body)
                                 VALUES (last_insert_rowid(), 'identity', zeroblob(4000))",
                                [],
                            )
                        })
                        .map_err(backend("test"))?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        // Below its threshold the writer never checkpoints, so only the thread can have
        // grown the database file.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let size = std::fs::metadata(&db).unwrap().len();
            if size > before + 1024 * 1024 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint copied the log: the database is still {size} bytes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.close().await;
    }
}
