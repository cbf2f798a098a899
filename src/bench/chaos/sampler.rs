//! The process table as the chaos bench watches it: every 100 ms, which agent processes run
//! in which task worktree. Two agents in one worktree at once — neither started by the other —
//! is an overlap: work a restart left running beside its relaunch. Also the last resort of
//! the bench's cleanup: whatever still runs under its temp dir when it ends is killed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::os::procs::{pids, stat_of};

/// Time between two looks at the process table.
const EVERY: Duration = Duration::from_millis(100);

/// The argument that marks an agent process: the scripted agent is this binary run as
/// `orchestrator scripted-agent …`.
const AGENT_ARG: &str = "scripted-agent";
/// The subcommand of the supervisor every agent runs under.
const SHIM_ARG: &str = "agent-shim";

/// What the sampler saw over a run.
#[derive(Clone, Debug, Default)]
pub struct Sightings {
    /// Looks at the process table taken.
    pub samples: usize,
    /// Distinct agent processes seen (pid and start time).
    pub agents: BTreeSet<(u32, u64)>,
    /// Looks that found two unrelated agents sharing a worktree.
    pub overlap_moments: usize,
    /// The worktrees (task ids) where that happened.
    pub overlap_worktrees: BTreeSet<String>,
    /// The first few overlaps, described (task, pids and start times).
    pub examples: Vec<String>,
}

/// Overlaps described in [`Sightings::examples`] at most.
const EXAMPLES: usize = 5;

/// A sampler thread, stopped by [`Sampler::finish`] or when dropped.
pub struct Sampler {
    /// Tells the thread to stop.
    stop: Arc<AtomicBool>,
    /// The thread, which hands back what it saw.
    thread: Option<JoinHandle<Sightings>>,
}

impl Sampler {
    /// Starts watching the worktrees under `worktrees`.
    pub fn start(worktrees: PathBuf) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Sightings::default();
            while !flag.load(Ordering::Relaxed) {
                look(&worktrees, &mut seen);
                std::thread::sleep(EVERY);
            }
            seen
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the thread and returns what it saw.
    pub fn finish(mut self) -> Sightings {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One agent process found in a worktree.
struct Agent {
    /// Its pid.
    pid: u32,
    /// Its start time, so a reused pid is another process.
    start: u64,
}

/// One look at the process table.
fn look(worktrees: &Path, seen: &mut Sightings) {
    seen.samples += 1;
    let mut by_worktree: BTreeMap<String, Vec<Agent>> = BTreeMap::new();
    for (pid, cwd) in processes_under(worktrees) {
        if !is_agent(pid) {
            continue;
        }
        let Some(stat) = stat_of(pid) else { continue };
        if !stat.is_live() {
            continue;
        }
        let Some(task) = cwd
            .strip_prefix(worktrees)
            .ok()
            .and_then(|rel| rel.components().next())
        else {
            continue;
        };
        seen.agents.insert((pid, stat.start_ticks));
        by_worktree
            .entry(task.as_os_str().to_string_lossy().into_owned())
            .or_default()
            .push(Agent {
                pid,
                start: stat.start_ticks,
            });
    }
    let mut overlap = false;
    for (task, agents) in &by_worktree {
        let unrelated = agents.iter().enumerate().any(|(i, a)| {
            agents[i + 1..]
                .iter()
                .any(|b| !descends(a.pid, b.pid) && !descends(b.pid, a.pid))
        });
        if unrelated {
            overlap = true;
            seen.overlap_worktrees.insert(task.clone());
            if seen.examples.len() < EXAMPLES {
                let pids: Vec<String> = agents
                    .iter()
                    .map(|a| format!("pid {} (start tick {})", a.pid, a.start))
                    .collect();
                seen.examples.push(format!(
                    "{task} at look {}: {}",
                    seen.samples,
                    pids.join(", ")
                ));
            }
        }
    }
    if overlap {
        seen.overlap_moments += 1;
    }
}

/// Live processes whose working directory is under `root`, with that directory.
fn processes_under(root: &Path) -> Vec<(u32, PathBuf)> {
    let me = std::process::id();
    pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            cwd.starts_with(root).then_some((pid, cwd))
        })
        .collect()
}

/// Whether `pid` was started as `… scripted-agent …` — the agent itself, not the
/// `agent-shim` it runs under (whose argv names the agent's too).
fn is_agent(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            let args: Vec<&[u8]> = raw.split(|&b| b == 0).skip(1).collect();
            args.first() != Some(&SHIM_ARG.as_bytes())
                && args.iter().any(|arg| *arg == AGENT_ARG.as_bytes())
        })
        .unwrap_or(false)
}

/// Whether `pid` descends from `ancestor` (following parents up to 64 levels).
fn descends(pid: u32, ancestor: u32) -> bool {
    let mut at = pid;
    for _ in 0..64 {
        let Some(parent) = stat_of(at).and_then(|s| u32::try_from(s.ppid).ok()) else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        at = parent;
    }
    false
}

/// Kills (SIGKILL) every live process still working under `root` — what a killed service
/// left behind and no later boot took over; returns how many there were.
pub fn kill_leftovers(root: &Path) -> usize {
    let mut killed = 0;
    for (pid, _) in processes_under(root) {
        if !stat_of(pid).is_some_and(|s| s.is_live()) {
            continue;
        }
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) on a pid just seen working in the bench's own temp dir.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed += 1;
            }
        }
    }
    killed
}
