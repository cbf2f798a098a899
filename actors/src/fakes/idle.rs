//! Ports that do nothing: for tests that never get as far as a worktree, an agent, a chat or
//! a process.

use async_trait::async_trait;

use crate::domain::gates::{CiOutcome, GateOutcome};
use crate::domain::pipeline::{GateKind, Role};
use crate::ports::merge_queue::{CandidateBuild, FastForward};
use crate::ports::workbench::{
    AgentReport, AgentRequest, AgentRunner, Forge, ProcessControl, PublishError, SpawnNotice,
    Workplace,
};
use crate::ports::{Alert, Card, MessageId, Notice, Notifier, NotifyError, ProcessId, TaskRecord};

/// A forge for tests that never get as far as a worktree: every gate defers, every merge
/// and every worktree fails as infrastructure trouble.
pub struct NoForge;

#[async_trait]
impl Forge for NoForge {
    async fn prepare(&self, _task: &TaskRecord) -> Result<Workplace, String> {
        Err("no forge in this test".into())
    }
    async fn publish(&self, _task: &TaskRecord, _role: Role) -> Result<(), PublishError> {
        Ok(())
    }
    async fn evaluate_gate(&self, _task: &TaskRecord, _gate: GateKind) -> GateOutcome {
        GateOutcome::Defer {
            reason: "no forge in this test".into(),
        }
    }
    async fn build_candidate(
        &self,
        _task: &TaskRecord,
        _onto: Option<&str>,
    ) -> Result<CandidateBuild, String> {
        Err("no forge in this test".into())
    }
    async fn publish_candidate(&self, _task: &TaskRecord, _candidate: &str) -> Result<(), String> {
        Ok(())
    }
    async fn test_commit(&self, _repo: &str, _sha: &str) -> CiOutcome {
        CiOutcome::ToolError {
            message: "no forge in this test".into(),
        }
    }
    async fn main_head(&self, _repo: &str) -> Result<String, String> {
        Err("no forge in this test".into())
    }
    async fn fast_forward_main(
        &self,
        _task: &TaskRecord,
        _candidate: &str,
    ) -> Result<FastForward, String> {
        Err("no forge in this test".into())
    }
    async fn delete_branch(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(())
    }
    async fn merge_main_into_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        Err("no forge in this test".into())
    }
    async fn remove_worktree(&self, _task: &TaskRecord) -> Result<(), String> {
        Ok(()) // it never made one
    }
    async fn is_on_main(&self, _task: &TaskRecord, _sha: &str) -> Result<bool, String> {
        Err("no forge in this test".into())
    }
}

/// A runner that must never be reached (its dispatcher claims nothing).
pub struct NoRunner;

#[async_trait]
impl AgentRunner for NoRunner {
    fn model(&self, _role: Role) -> Option<String> {
        None
    }
    fn log_path(&self, run_id: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(run_id)
    }
    async fn run(&self, _request: AgentRequest, _spawned: SpawnNotice) -> AgentReport {
        unreachable!("this test's dispatcher claims nothing")
    }
}

/// A chat that swallows every card and alert.
pub struct NoChat;

#[async_trait]
impl Notifier for NoChat {
    async fn send_card(&self, _card: &Card) -> Result<MessageId, NotifyError> {
        Ok(MessageId(1))
    }
    async fn edit_card(&self, _id: MessageId, _card: &Card) -> Result<(), NotifyError> {
        Ok(())
    }
    async fn delete_message(&self, _id: MessageId) -> Result<(), NotifyError> {
        Ok(())
    }
    async fn send_alert(&self, _alert: &Alert) -> Result<(), NotifyError> {
        Ok(())
    }
    async fn send_notice(&self, _notice: &Notice) -> Result<(), NotifyError> {
        Ok(())
    }
}

/// An OS where no process exists.
pub struct NoProcesses;

#[async_trait]
impl ProcessControl for NoProcesses {
    fn is_alive(&self, _process: &ProcessId) -> bool {
        false
    }
    async fn kill_group(&self, _process: &ProcessId) -> bool {
        false
    }
}
