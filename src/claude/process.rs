//! Agent processes as the operating system sees them: reading a process's start time, and
//! the [`ProcessControl`] port the reaper and the startup sweep use to tell whether an agent
//! still runs and to stop its whole process group — only ever the group of the process that
//! was started, never whatever now holds a reused pid.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_actors::ports::ProcessId;
use orchestrator_actors::ports::workbench::ProcessControl;

use super::shim::{group_alive, signal_group};
use crate::os::procs::{live_member_since, stat_of};

/// How often a group being stopped is polled.
const POLL: Duration = Duration::from_millis(25);

/// The start time of `pid` in clock ticks after boot; 0 when it cannot be read.
pub use crate::os::procs::start_ticks;

/// Whether a living process still belongs to `process`'s group as it was started: the
/// leader itself (same pid, same start time), or — once the leader is gone — a member of
/// its group that started no earlier than it did. An unknown start time (0) never matches:
/// a pid alone identifies nothing.
fn owns_group(process: &ProcessId) -> bool {
    if process.start_ticks == 0 {
        return false;
    }
    if let Some(leader) = stat_of(process.pid) {
        let alive = leader.is_live();
        return leader.start_ticks == process.start_ticks
            && (alive || group_has_member_since(process));
    }
    group_has_member_since(process)
}

/// Whether a non-zombie process in group `process.pid` started at or after the leader.
fn group_has_member_since(process: &ProcessId) -> bool {
    live_member_since(i64::from(process.pid), process.start_ticks).unwrap_or(false)
}

/// The real process table.
pub struct OsProcesses {
    /// Between SIGTERM and SIGKILL.
    grace: Duration,
}

impl OsProcesses {
    /// Stops groups with `grace` between SIGTERM and SIGKILL: the same grace the runner
    /// gives an agent at its timeout (`ORCH_AGENT_TERM_GRACE_S`).
    pub fn new(grace: Duration) -> Self {
        Self { grace }
    }
}

#[async_trait]
impl ProcessControl for OsProcesses {
    fn is_alive(&self, process: &ProcessId) -> bool {
        owns_group(process)
    }

    async fn kill_group(&self, process: &ProcessId) -> bool {
        if !owns_group(process) {
            return false;
        }
        let Ok(pgid) = libc::pid_t::try_from(process.pid) else {
            return false;
        };
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if !group_alive(pgid) {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        // Only if it is still ours: the group may have emptied and its id been reused.
        if owns_group(process) {
            signal_group(pgid, libc::SIGKILL);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_is_killed_only_while_its_leader_is_the_process_that_was_started() {
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 1000 & sleep 1000"])
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut ticks = 0;
        for _ in 0..100 {
            ticks = start_ticks(pid);
            if ticks != 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let me = ProcessId {
            pid,
            start_ticks: ticks,
        };
        let os = OsProcesses::new(Duration::from_millis(200));
        // A pid with another start time is somebody else: never touched.
        let impostor = ProcessId {
            pid,
            start_ticks: ticks + 1,
        };
        assert!(!os.is_alive(&impostor));
        assert!(!os.kill_group(&impostor).await);
        assert!(!os.is_alive(&ProcessId {
            pid,
            start_ticks: 0
        }));
        assert!(os.is_alive(&me));
        assert!(os.kill_group(&me).await);
        let _ = child.wait().await;
        let pgid = libc::pid_t::try_from(pid).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_alive(pgid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!group_alive(pgid), "the group survived");
        assert!(!os.is_alive(&me));
    }
}
