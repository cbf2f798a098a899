//! The clone's owner. Every git call that writes a clone's refs, config, index or object store
//! — in the clone itself or in a task worktree of it, which shares all of those — runs during
//! the clone's *turn*: one operation at a time, in the order they asked (tokio's mutex is
//! fair). A turn also holds the clone's OS lock, `<repos>/_locks/<clone>.lock`, which each of
//! its git processes inherits as descriptor 3 together with the marker `ORCH_GIT_CLONE=<clone>`.
//! A git left running by a dead boot (a push survives the service's SIGKILL) keeps that lock,
//! so the next turn sees it, waits for it a bounded time, then ends the processes carrying the
//! marker — and only those — before it touches the clone.
//!
//! Reads stay outside the turn: `cat-file`, `ls-tree`, `rev-parse` and `worktree list` take no
//! lock, and a ref they read is replaced by a rename (loose refs and `packed-refs` alike), so
//! they see one side of a concurrent update and never fail on a lock. A CI run is the
//! project's command, not our git, and runs outside the turn too. Agents run git in their
//! worktrees outside our turns; the lock files that git shares with them are cleared only
//! once they are too old to belong to a live git ([`clear_stale_locks`]).

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::process::Command;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use super::command::{GitError, GitOutput, git_output_with, path_arg};
use crate::os::lockfile::LockFile;
use crate::os::procs::{self, Marked};

/// The variable that marks a git process as working on a clone; its value is the clone's
/// absolute path. Set only on the git a turn runs, so nothing else can carry it.
pub(crate) const CLONE_ENV: &str = "ORCH_GIT_CLONE";

/// The prefix [`CLONE_ENV`] is found under in a process's environment.
const MARK_PREFIX: &str = "ORCH_GIT_";

/// The descriptor a turn's git gets the clone's lock at: the first after stdin/out/err.
const LOCK_FD: RawFd = 3;

/// How long a turn waits for a git of an earlier boot to let go of the clone before ending
/// it: a push that survived its boot usually finishes within this, and its work is kept.
pub const LEFTOVER_GIT_WAIT: Duration = Duration::from_secs(30);

/// Between SIGTERM and SIGKILL for a leftover git: on SIGTERM git removes its lock files.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// How long the lock may stay taken once its marked holders ended: the kernel closes a dead
/// process's files at once, so this only covers a slow exit.
const AFTER_END_WAIT: Duration = Duration::from_secs(5);

/// How often a leftover is looked at while it is given time to exit.
const POLL: Duration = Duration::from_millis(20);

/// A lock file the clone shares with agents' git older than this is left over by a killed
/// git: a live one holds a ref, `packed-refs` or config lock only while it writes the file.
const SHARED_LOCK_STALE_AFTER: Duration = Duration::from_secs(60);

/// Where the clones' OS locks live, beside the clones: no clone can have this name, since a
/// repo name never starts with `_`.
const LOCKS_DIR: &str = "_locks";

/// The queue of every clone this process works on, by its lock file. One per process, not
/// per `Workspace`: two workspaces over one clone must take turns rather than take each
/// other's git for a dead boot's.
static QUEUES: LazyLock<Mutex<HashMap<PathBuf, Arc<AsyncMutex<()>>>>> =
    LazyLock::new(Mutex::default);

/// A clone's turn: while it lives, only git it runs writes to the clone or its worktrees.
#[derive(Debug)]
pub(crate) struct CloneTurn {
    /// Our place in the clone's queue, held until the operation ends.
    _queue: OwnedMutexGuard<()>,
    /// The clone's OS lock, handed to every git of the turn.
    lock: LockFile,
    /// The marker value: the clone's absolute path, its parent directory canonical.
    mark: String,
}

impl CloneTurn {
    /// Waits for the turn of `clone`, then for its OS lock: up to `leftover_wait` while a git
    /// of an earlier boot still holds it, after which the processes carrying the clone's
    /// marker are ended. Lock files a killed git left behind are cleared before it returns.
    pub(crate) async fn take(clone: &Path, leftover_wait: Duration) -> Result<Self, GitError> {
        let (lock_path, mark) = identity(clone).await?;
        let queue = {
            let mut queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
            queues.entry(lock_path.clone()).or_default().clone()
        };
        let place = queue.lock_owned().await;
        let lock = take_lock(&lock_path, &mark, leftover_wait).await?;
        clear_stale_locks(clone).await;
        Ok(Self {
            _queue: place,
            lock,
            mark,
        })
    }

    /// Makes the process `cmd` starts one of this turn's: it holds the clone's lock and
    /// carries the clone's marker, so it is found again if it outlives the service.
    pub(crate) fn hand_to(&self, cmd: &mut Command) {
        self.lock.pass_to(cmd, LOCK_FD);
        cmd.env(CLONE_ENV, &self.mark);
    }

    /// [`command::git`](super::command::git) as one of this turn's processes.
    pub(crate) async fn git(&self, cwd: &Path, args: &[&str]) -> Result<String, GitError> {
        let out = self.git_output(cwd, args).await?;
        if out.success() {
            Ok(out.text())
        } else {
            Err(out.into_error())
        }
    }

    /// [`command::git_output`](super::command::git_output) as one of this turn's processes.
    pub(crate) async fn git_output(
        &self,
        cwd: &Path,
        args: &[&str],
    ) -> Result<GitOutput, GitError> {
        git_output_with(cwd, args, |cmd| self.hand_to(cmd)).await
    }
}

/// The lock file of `clone` and its marker value. The clones' directory is made canonical,
/// so every spelling of a clone's path queues for the same lock.
async fn identity(clone: &Path) -> Result<(PathBuf, String), GitError> {
    let invalid = || GitError::Invalid {
        what: "clone path",
        value: clone.display().to_string(),
        reason: "it names no directory inside a parent directory".to_string(),
    };
    let (Some(parent), Some(name)) = (clone.parent(), clone.file_name()) else {
        return Err(invalid());
    };
    let locks = parent.join(LOCKS_DIR);
    tokio::fs::create_dir_all(&locks)
        .await
        .map_err(|source| GitError::Io {
            path: locks.clone(),
            source,
        })?;
    let parent = tokio::fs::canonicalize(parent)
        .await
        .map_err(|source| GitError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    let mut lock_name = name.to_os_string();
    lock_name.push(".lock");
    let mark = path_arg(&parent.join(name))?.to_string();
    Ok((parent.join(LOCKS_DIR).join(lock_name), mark))
}

/// Takes the OS lock at `path`. Our own git never holds it outside a turn (the queue keeps
/// this process's operations apart), so a holder is a git of an earlier boot, or something
/// it started: it gets `leftover_wait` to finish, then what carries the clone's marker is
/// ended. A holder without the marker is never touched, and the clone stays unusable —
/// [`GitError::Held`], infrastructure trouble for the caller — until it lets go.
async fn take_lock(path: &Path, mark: &str, leftover_wait: Duration) -> Result<LockFile, GitError> {
    let io = |source| GitError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(lock) = LockFile::try_acquire(path).map_err(io)? {
        return Ok(lock);
    }
    tracing::warn!(clone = mark, lock = %path.display(), wait = ?leftover_wait, "a git process of an earlier boot still works on the clone; waiting for it");
    if let Some(lock) = LockFile::acquire(path, leftover_wait).await.map_err(io)? {
        return Ok(lock);
    }
    let ended = end_leftovers(mark).await;
    tracing::warn!(clone = mark, pids = ?ended, "ended the git processes an earlier boot left on the clone");
    LockFile::acquire(path, AFTER_END_WAIT)
        .await
        .map_err(io)?
        .ok_or_else(|| GitError::Held {
            clone: PathBuf::from(mark),
            lock: path.to_path_buf(),
            ended: ended.len(),
        })
}

/// Ends every living process marked as working on the clone `mark`: SIGTERM, then after
/// [`TERM_GRACE`] SIGKILL to whatever still carries the marker (looked up again, so a child
/// started meanwhile goes too). A process is signalled only while its pid still has the
/// start time it was found with. Returns the pids found.
async fn end_leftovers(mark: &str) -> Vec<u32> {
    let found = find_marked(mark).await;
    for process in &found {
        signal(process, libc::SIGTERM);
    }
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline && found.iter().any(is_alive) {
        tokio::time::sleep(POLL).await;
    }
    for process in find_marked(mark).await {
        signal(&process, libc::SIGKILL);
    }
    found.iter().map(|p| p.pid).collect()
}

async fn find_marked(mark: &str) -> Vec<Marked> {
    let mark = mark.to_string();
    tokio::task::spawn_blocking(move || procs::marked(MARK_PREFIX, CLONE_ENV, &mark))
        .await
        .unwrap_or_default()
}

/// Whether `process` still runs as the process it was found as (not a reused pid).
fn is_alive(process: &Marked) -> bool {
    procs::stat_of(process.pid)
        .is_some_and(|s| s.is_live() && s.start_ticks == process.stat.start_ticks)
}

fn signal(process: &Marked, signal: libc::c_int) {
    if let (true, Ok(pid)) = (is_alive(process), i32::try_from(process.pid)) {
        // SAFETY: kill(2) has no memory effects; the pid was checked against its start time
        // just before, so it is still the marked process.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Lock files of the clone's own working tree and of its local `main`: only git run during
/// the clone's turn takes them, so with the turn and the OS lock held they are stale.
const CLONE_LOCK_FILES: &[&str] = &[
    "index.lock",
    "HEAD.lock",
    "ORIG_HEAD.lock",
    "refs/heads/main.lock",
];

/// Lock files the clone shares with agents' git in their worktrees (a `git fetch`, a commit,
/// `git config`), besides every `*.lock` under `refs/`: stale only past
/// [`SHARED_LOCK_STALE_AFTER`]. A worktree's private files (`worktrees/<id>/…`) are never
/// touched: an agent may be using them right now.
const SHARED_LOCK_FILES: &[&str] = &["packed-refs.lock", "config.lock"];

/// Removes lock files a killed git left in the clone (an aborted operation's git dies with
/// its future; a dead boot's git is ended above): left in place they would fail every later
/// operation on the clone.
async fn clear_stale_locks(clone: &Path) {
    let git_dir = clone.join(".git");
    let mut stale: Vec<PathBuf> = CLONE_LOCK_FILES.iter().map(|n| git_dir.join(n)).collect();
    let shared = git_dir.clone();
    let old = tokio::task::spawn_blocking(move || {
        let before = SystemTime::now() - SHARED_LOCK_STALE_AFTER;
        let mut old: Vec<PathBuf> = SHARED_LOCK_FILES
            .iter()
            .map(|n| shared.join(n))
            .filter(|p| modified_before(p, before))
            .collect();
        lock_files_under(&shared.join("refs"), before, &mut old);
        old
    })
    .await
    .unwrap_or_default();
    stale.extend(old);
    for path in stale {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => tracing::warn!(path = %path.display(), "removed a stale git lock file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale git lock file")
            }
        }
    }
}

/// Every `*.lock` file under `dir` last written before `before`.
fn lock_files_under(dir: &Path, before: SystemTime, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => lock_files_under(&path, before, found),
            Ok(kind)
                if kind.is_file()
                    && path.extension().is_some_and(|e| e == "lock")
                    && modified_before(&path, before) =>
            {
                found.push(path)
            }
            _ => {}
        }
    }
}

fn modified_before(path: &Path, before: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t < before)
}
