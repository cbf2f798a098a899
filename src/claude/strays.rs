//! Finding this instance's agents again, whatever happened to the boot that started them.
//! Every agent and its shim carry three environment markers — the instance (its runs
//! directory), the run and the worktree — which `/proc` shows for as long as they or any
//! descendant that inherited them live. With them a later boot tells what an earlier boot
//! left of a run (still running, ended with its exit recorded, or gone), ends what it cannot
//! adopt, and never starts an agent in a worktree whose lock an earlier agent still holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orchestrator_actors::ports::ProcessId;
use orchestrator_actors::ports::workbench::RunTrace;

use super::shim::{
    MARK_HOME, MARK_PREFIX, MARK_RUN, MARK_SHIM, MARK_WORKTREE, RunFiles, group_alive, signal_group,
};
use crate::os::lockfile::LockFile;
use crate::os::procs::{self, Marked};

/// How long a worktree's lock may take to come free once the agents holding it were ended.
const LOCK_SETTLE: Duration = Duration::from_secs(10);

/// How long a shim whose agent was ended has to record that and exit.
const SHIM_EXIT: Duration = Duration::from_secs(3);

/// How often processes being ended are looked at.
const POLL: Duration = Duration::from_millis(25);

/// The markers of one service instance's agents.
#[derive(Clone, Debug)]
pub struct Marks {
    /// The instance: its runs directory, absolute.
    home: String,
    /// Where the worktrees' lock files are.
    locks_dir: PathBuf,
    /// Between SIGTERM and SIGKILL when an agent is ended.
    grace: Duration,
}

impl Marks {
    /// The marks of the instance whose run logs go to `runs_dir`.
    pub fn new(runs_dir: &Path, grace: Duration) -> Self {
        Self {
            home: runs_dir.display().to_string(),
            locks_dir: runs_dir.join("locks"),
            grace,
        }
    }

    /// The environment markers of run `run_id` in `worktree`.
    pub fn of(&self, run_id: &str, worktree: &Path) -> Vec<(String, String)> {
        vec![
            (MARK_HOME.to_string(), self.home.clone()),
            (MARK_RUN.to_string(), run_id.to_string()),
            (MARK_WORKTREE.to_string(), worktree.display().to_string()),
        ]
    }

    /// The lock file of `worktree`: held by its agent (and the agent's shim) while it lives.
    pub fn lock_path(&self, worktree: &Path) -> PathBuf {
        let name = worktree
            .file_name()
            .map_or_else(|| "worktree".into(), |n| n.to_string_lossy().into_owned());
        self.locks_dir.join(format!("{name}.lock"))
    }

    /// Every living process of this instance's agents.
    fn mine(&self) -> Vec<Marked> {
        procs::marked(MARK_PREFIX, MARK_HOME, &self.home)
    }

    /// The living processes of run `run_id` (its shim, its agent and their descendants).
    pub fn processes_of(&self, run_id: &str) -> Vec<Marked> {
        self.mine()
            .into_iter()
            .filter(|m| m.marks.get(MARK_RUN).map(String::as_str) == Some(run_id))
            .collect()
    }

    /// The shim of run `run_id`, if it still runs.
    pub fn shim_of(&self, run_id: &str) -> Option<ProcessId> {
        self.processes_of(run_id)
            .into_iter()
            .find(|m| m.marks.contains_key(MARK_SHIM))
            .map(|m| ProcessId {
                pid: m.pid,
                start_ticks: m.stat.start_ticks,
            })
    }

    /// What an earlier boot left of run `run_id`, logging to `log`.
    pub fn trace(&self, run_id: &str, log: &Path) -> RunTrace {
        let files = RunFiles::of(log);
        if files.abandoned.exists() {
            return RunTrace::Gone;
        }
        if !self.processes_of(run_id).is_empty() {
            return RunTrace::Running;
        }
        if files.ended().is_some() {
            return RunTrace::Ended;
        }
        if !files.pid.exists() {
            // Nothing of it runs and its shim never recorded an agent: it never started.
            return RunTrace::Unstarted;
        }
        RunTrace::Gone
    }

    /// Ends every agent of this instance whose run is not in `keep`; returns what it ended.
    pub async fn end_strays(&self, keep: &[String]) -> Vec<String> {
        let mut by_run: BTreeMap<String, Vec<Marked>> = BTreeMap::new();
        for m in self.mine() {
            let run = m.marks.get(MARK_RUN).cloned().unwrap_or_default();
            if !keep.contains(&run) {
                by_run.entry(run).or_default().push(m);
            }
        }
        let mut ended = Vec::new();
        for (run, found) in by_run {
            let pids: Vec<u32> = found.iter().map(|m| m.pid).collect();
            tracing::warn!(run = %run, ?pids, "ending an agent no running job owns");
            self.end(found).await;
            ended.push(format!("run {run} (pids {pids:?})"));
        }
        ended
    }

    /// Takes the lock of `worktree` for a new agent. Held means an earlier agent there still
    /// lives: it is not the new run's (a run is launched once), so it is ended first. An
    /// error when the lock cannot be had even so (an infrastructure failure).
    pub async fn claim_worktree(&self, worktree: &Path) -> Result<LockFile, String> {
        let path = self.lock_path(worktree);
        let cannot = |e: std::io::Error| format!("cannot lock {}: {e}", path.display());
        if let Some(lock) = LockFile::try_acquire(&path).map_err(cannot)? {
            return Ok(lock);
        }
        let there = worktree.display().to_string();
        let found: Vec<Marked> = self
            .mine()
            .into_iter()
            .filter(|m| m.marks.get(MARK_WORKTREE) == Some(&there))
            .collect();
        let runs: BTreeSet<&str> = found
            .iter()
            .filter_map(|m| m.marks.get(MARK_RUN).map(String::as_str))
            .collect();
        tracing::warn!(worktree = %there, ?runs, "an earlier agent still works in this worktree; ending it before a new one starts");
        let described = format!("{runs:?}");
        self.end(found).await;
        match LockFile::acquire(&path, LOCK_SETTLE)
            .await
            .map_err(cannot)?
        {
            Some(lock) => Ok(lock),
            None => Err(format!(
                "the worktree {there} is still locked by an earlier agent (runs {described}) after ending it"
            )),
        }
    }

    /// Ends `found`: each agent's process group gets SIGTERM, the grace, then SIGKILL; then
    /// whatever shim is left is killed (it ignores SIGTERM by design).
    async fn end(&self, found: Vec<Marked>) {
        // SAFETY: getpgrp(2) cannot fail and has no memory effects.
        let own_group = i64::from(unsafe { libc::getpgrp() });
        let groups: BTreeSet<libc::pid_t> = found
            .iter()
            .filter(|m| !m.marks.contains_key(MARK_SHIM))
            .map(|m| m.stat.pgrp)
            .filter(|g| *g > 1 && *g != own_group)
            .filter_map(|g| libc::pid_t::try_from(g).ok())
            .collect();
        for group in &groups {
            signal_group(*group, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.grace;
        while groups.iter().any(|g| group_alive(*g)) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        for group in groups.iter().filter(|g| group_alive(**g)) {
            signal_group(*group, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while groups.iter().any(|g| group_alive(*g)) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        // A shim whose agent is gone records its end and exits by itself; one that does not
        // (it never started its agent, or hangs) is killed.
        let still = |m: &Marked| {
            procs::stat_of(m.pid)
                .is_some_and(|s| s.is_live() && s.start_ticks == m.stat.start_ticks)
        };
        let shims: Vec<&Marked> = found
            .iter()
            .filter(|m| m.marks.contains_key(MARK_SHIM))
            .collect();
        let deadline = Instant::now() + SHIM_EXIT;
        while shims.iter().any(|m| still(m)) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        for shim in shims {
            if still(shim)
                && let Ok(pid) = libc::pid_t::try_from(shim.pid)
            {
                // SAFETY: kill(2) has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Descendants that left the agent's group (setsid) but kept its marker.
        for m in found.iter().filter(|m| !m.marks.contains_key(MARK_SHIM)) {
            if still(m)
                && let Ok(pid) = libc::pid_t::try_from(m.pid)
            {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_dead_boot_left_of_a_run_is_read_from_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let marks = Marks::new(dir.path(), Duration::from_secs(1));
        let log = dir.path().join("run-1-1.log");
        let files = RunFiles::of(&log);
        // Journaled, but no agent ever started: launch it now as the same run.
        assert_eq!(marks.trace("run-1-1", &log), RunTrace::Unstarted);
        // An agent started and vanished without a recorded end: nothing to adopt.
        std::fs::write(
            &files.pid,
            r#"{"pid":1,"start_ticks":1,"started_unix_ms":1}"#,
        )
        .unwrap();
        assert_eq!(marks.trace("run-1-1", &log), RunTrace::Gone);
        // Its end recorded while nobody watched: adopt the result.
        std::fs::write(
            &files.exit,
            r#"{"exit_code":0,"error":null,"ended_unix_ms":2}"#,
        )
        .unwrap();
        assert_eq!(marks.trace("run-1-1", &log), RunTrace::Ended);
        // Killed by a service stopping with ORCH_SHUTDOWN_AGENTS=stop: never adopted.
        std::fs::write(&files.abandoned, "x").unwrap();
        assert_eq!(marks.trace("run-1-1", &log), RunTrace::Gone);
    }
}
