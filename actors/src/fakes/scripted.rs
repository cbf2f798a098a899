//! A forge and an agent runner that do what a test scripted, and count what was asked of
//! them: launches, publishes, gates and merges in flight (a guard notices when a future is
//! dropped half-way, so a test can see that stopping an actor ended its work).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::gates::{CiOutcome, GateOutcome};
use crate::domain::pipeline::{GateKind, Role};
use crate::domain::resilience::FailureClass;
use crate::ports::merge_queue::{CandidateBuild, FastForward};
use crate::ports::workbench::{
    AgentReport, AgentRequest, AgentRunner, Forge, PublishError, SpawnNotice, Workplace,
};
use crate::ports::{ProcessId, RunFinish, RunOutcome, TaskRecord};

/// The candidate every scripted build makes.
pub const SCRIPTED_CANDIDATE: &str = "0123456789abcdef0123456789abcdef01234567";
/// Where a scripted origin's `main` is.
pub const SCRIPTED_MAIN: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// What one agent run does.
#[derive(Clone, Debug)]
pub enum RunScript {
    /// Exits 0 with a good result.
    Succeed,
    /// Fails this way.
    Fail(FailureClass, String),
    /// Panics half-way.
    Panic,
    /// Runs until its future is dropped.
    Hang,
}

/// Counts a future in flight; the count drops when the future ends or is dropped.
struct InFlight<'a>(&'a AtomicU32);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicU32, peak: &AtomicU32) -> Self {
        let now = count.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An agent runner playing scripted runs in order (then succeeding).
#[derive(Default)]
pub struct ScriptedRunner {
    /// The runs to play, first first.
    script: Mutex<VecDeque<RunScript>>,
    /// Runs started.
    pub launched: AtomicU32,
    /// Runs in flight now.
    pub running: AtomicU32,
    /// Most runs ever in flight at once.
    pub peak: AtomicU32,
}

impl ScriptedRunner {
    /// A runner that plays `script`, then succeeds.
    pub fn new(script: impl IntoIterator<Item = RunScript>) -> Self {
        Self {
            script: Mutex::new(script.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Runs started so far.
    pub fn launched(&self) -> u32 {
        self.launched.load(Ordering::SeqCst)
    }

    /// Runs in flight now.
    pub fn running(&self) -> u32 {
        self.running.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl AgentRunner for ScriptedRunner {
    fn model(&self, _role: Role) -> Option<String> {
        Some("scripted".into())
    }
    fn log_path(&self, run_id: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{run_id}.log"))
    }
    async fn run(&self, request: AgentRequest, spawned: SpawnNotice) -> AgentReport {
        let n = self.launched.fetch_add(1, Ordering::SeqCst) + 1;
        let _flight = InFlight::enter(&self.running, &self.peak);
        let step = self
            .script
            .lock()
            .expect("poisoned")
            .pop_front()
            .unwrap_or(RunScript::Succeed);
        // A process id no real process has (pid 0 is never an agent's).
        let _ = spawned.send(ProcessId {
            pid: 0,
            start_ticks: u64::from(n),
        });
        let report = |success: bool, class: FailureClass, reason: String| AgentReport {
            success,
            reason,
            class,
            model: Some("scripted".into()),
            log_path: self.log_path(&request.run_id).display().to_string(),
            finish: RunFinish {
                exit_code: Some(if success { 0 } else { 1 }),
                outcome: if success {
                    RunOutcome::Succeeded
                } else {
                    RunOutcome::Failed
                },
                input_tokens: 10,
                output_tokens: 5,
                cost_usd: 0.01,
                ..RunFinish::default()
            },
            infrastructure: false,
        };
        match step {
            RunScript::Succeed => report(true, FailureClass::Permanent, String::new()),
            RunScript::Fail(class, reason) => report(false, class, reason),
            RunScript::Panic => panic!("scripted agent panic in run {}", request.run_id),
            RunScript::Hang => std::future::pending().await,
        }
    }
}

/// A forge whose publishes fail as often as scripted, whose gates pass (or hang), and whose
/// merges take as long as scripted; it counts what is in flight.
pub struct ScriptedForge {
    /// Publishes still to fail.
    publish_failures: AtomicU32,
    /// Publishes still to refuse the work itself (conflict markers left in it).
    publish_rejections: AtomicU32,
    /// Publishes asked for.
    pub publishes: AtomicU32,
    /// Gate evaluations hang until dropped.
    gates_hang: bool,
    /// Gate evaluations in flight now.
    pub gates_running: AtomicU32,
    /// How long a merge takes.
    merge_takes: Duration,
    /// Merges started.
    pub merges: AtomicU32,
    /// Merges in flight now.
    pub merges_running: AtomicU32,
    /// Most merges ever in flight at once.
    pub merges_peak: AtomicU32,
    /// Peak of gates in flight.
    gates_peak: AtomicU32,
    /// Worktrees removed.
    pub removed: AtomicU32,
    /// Where worktrees are said to be.
    root: std::path::PathBuf,
}

impl Default for ScriptedForge {
    fn default() -> Self {
        Self {
            publish_failures: AtomicU32::new(0),
            publish_rejections: AtomicU32::new(0),
            publishes: AtomicU32::new(0),
            gates_hang: false,
            gates_running: AtomicU32::new(0),
            merge_takes: Duration::ZERO,
            merges: AtomicU32::new(0),
            merges_running: AtomicU32::new(0),
            merges_peak: AtomicU32::new(0),
            gates_peak: AtomicU32::new(0),
            removed: AtomicU32::new(0),
            root: std::env::temp_dir(),
        }
    }
}

impl ScriptedForge {
    /// The first `n` publishes fail.
    pub fn failing_publishes(mut self, n: u32) -> Self {
        self.publish_failures = AtomicU32::new(n);
        self
    }

    /// The first `n` publishes refuse the agent's work (it still holds conflict markers).
    pub fn rejecting_publishes(mut self, n: u32) -> Self {
        self.publish_rejections = AtomicU32::new(n);
        self
    }

    /// Gate evaluations never end on their own.
    pub fn hanging_gates(mut self) -> Self {
        self.gates_hang = true;
        self
    }

    /// Each merge takes `d`.
    pub fn slow_merges(mut self, d: Duration) -> Self {
        self.merge_takes = d;
        self
    }

    /// Reads a counter.
    pub fn count(counter: &AtomicU32) -> u32 {
        counter.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Forge for ScriptedForge {
    async fn prepare(&self, task: &TaskRecord) -> Result<Workplace, String> {
        let worktree = self.root.join(task.work_item_id.as_str());
        Ok(Workplace {
            branch: crate::domain::branch::of(task),
            artifacts_dir: worktree.join("docs"),
            worktree,
        })
    }
    async fn publish(&self, _task: &TaskRecord, _role: Role) -> Result<(), PublishError> {
        self.publishes.fetch_add(1, Ordering::SeqCst);
        let refuse = self.publish_rejections.load(Ordering::SeqCst);
        if refuse > 0 {
            self.publish_rejections.store(refuse - 1, Ordering::SeqCst);
            return Err(PublishError::Rejected(
                "the worktree still holds merge-conflict markers in src/app.rs (scripted)".into(),
            ));
        }
        let left = self.publish_failures.load(Ordering::SeqCst);
        if left > 0 {
            self.publish_failures.store(left - 1, Ordering::SeqCst);
            return Err("git push failed: the origin is unreachable (scripted)".into());
        }
        Ok(())
    }
    async fn evaluate_gate(&self, _task: &TaskRecord, _gate: GateKind) -> GateOutcome {
        let _flight = InFlight::enter(&self.gates_running, &self.gates_peak);
        if self.gates_hang {
            std::future::pending::<()>().await;
        }
        GateOutcome::Pass {
            reason: "scripted pass".into(),
        }
    }
    async fn build_candidate(
        &self,
        _task: &TaskRecord,
        onto: Option<&str>,
    ) -> Result<CandidateBuild, String> {
        Ok(CandidateBuild::Built {
            sha: SCRIPTED_CANDIDATE.into(),
            base: onto.unwrap_or(SCRIPTED_MAIN).into(),
        })
    }
    async fn publish_candidate(&self, _task: &TaskRecord, _candidate: &str) -> Result<(), String> {
        Ok(())
    }
    async fn test_commit(&self, _repo: &str, _sha: &str) -> CiOutcome {
        CiOutcome::Green {
            summary: "scripted pass".into(),
        }
    }
    async fn main_head(&self, _repo: &str) -> Result<String, String> {
        Ok(SCRIPTED_MAIN.into())
    }
    async fn fast_forward_main(
        &self,
        _task: &TaskRecord,
        _candidate: &str,
    ) -> Result<FastForward, String> {
        self.merges.fetch_add(1, Ordering::SeqCst);
        let _flight = InFlight::enter(&self.merges_running, &self.merges_peak);
        tokio::time::sleep(self.merge_takes).await;
        Ok(FastForward::Merged)
    }
    async fn delete_branch(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn merge_main_into_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn remove_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        self.removed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn is_on_main(&self, _task: &TaskRecord, sha: &str) -> Result<bool, String> {
        // A scripted origin's main holds every commit but those named "not-on-main".
        Ok(!sha.contains("not-on-main"))
    }
}
