//! How a task actor carries out its decisions' effects: queue changes are asked of
//! `dispatch`; everything slow (a gate evaluation, a merge, an outside merge's check, a
//! worktree's removal, a timed retry) is started as work the actor owns, which reports back
//! by message.

use ractor::{ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use super::side_work::wake_dispatch;
use super::{TaskActor, TaskMsg, TaskState};
use crate::actors::owned::owned;
use crate::domain::task_machine::Effect;
use crate::ports::NewJob;

impl TaskActor {
    /// Carries out one effect (boxed, like [`Self::process`]).
    pub(super) async fn run_effect(
        &self,
        myself: &ActorRef<TaskMsg>,
        state: &mut TaskState,
        effect: Effect,
    ) -> Result<(), ActorProcessingErr> {
        Box::pin(self.carry_out(myself, state, effect)).await
    }

    /// Carries out one effect. Queue changes are asked of `dispatch` (an error fails the
    /// incarnation, and its restart decides again from the store); everything slow is
    /// started as owned work that reports back by message.
    pub(super) async fn carry_out(
        &self,
        myself: &ActorRef<TaskMsg>,
        state: &mut TaskState,
        effect: Effect,
    ) -> Result<(), ActorProcessingErr> {
        let deps = self.deps.clone();
        let me = myself.clone();
        let task = state.record.clone();
        match effect {
            Effect::Enqueue {
                stage,
                role,
                task_text,
            } => {
                let job = NewJob {
                    work_item_id: task.work_item_id.clone(),
                    stage,
                    role,
                    task_text,
                };
                if crate::actors::dispatch::enqueue(job).await?.is_none() {
                    warn!(task = %task.work_item_id, "the task already has an active job");
                }
            }
            Effect::EvaluateGate { stage, gate } => {
                state.work.gate = Some(owned(async move {
                    let outcome = deps.forge.evaluate_gate(&task, gate).await;
                    let _ = me.cast(TaskMsg::GateEvaluated { stage, outcome });
                }));
            }
            Effect::RetryGateLater { stage, gate } => {
                state.infra_streak += 1;
                state.work.timer = Some(owned(async move {
                    tokio::time::sleep(deps.retry_delay).await;
                    let _ = me.cast(TaskMsg::EvaluateGate { stage, gate });
                }));
            }
            Effect::JoinMergeQueue => {
                // The queue answers by message; asked off the handler so a busy queue never
                // holds the task, and asked again after a pause if it cannot be reached.
                state.work.merge = Some(owned(async move {
                    let id = task.work_item_id.clone();
                    if let Err(e) = crate::actors::merge_queue::join(task).await {
                        warn!(task = %id, error = %e, "cannot join the merge queue; asking again");
                        tokio::time::sleep(deps.retry_delay).await;
                        let _ = me.cast(TaskMsg::AskQueue);
                    }
                }));
            }
            Effect::LeaveMergeQueue => {
                crate::actors::merge_queue::leave(task.work_item_id.clone()).await?;
            }
            Effect::Merge => {
                state.work.merge = Some(owned(async move {
                    let id = task.work_item_id.clone();
                    if let Err(e) = crate::actors::merge_queue::ready_to_merge(task).await {
                        warn!(task = %id, error = %e, "cannot ask the merge queue for the fast-forward; asking again");
                        tokio::time::sleep(deps.retry_delay).await;
                        let _ = me.cast(TaskMsg::AskQueue);
                    }
                }));
            }
            Effect::CheckOutsideMerge { sha, by } => {
                if state.work.merge.as_ref().is_some_and(|m| !m.is_finished()) {
                    return Ok(()); // one merge (or check) at a time
                }
                state.work.merge = Some(owned(async move {
                    let on_main = deps.forge.is_on_main(&task, &sha).await;
                    let _ = me.cast(TaskMsg::OutsideMergeChecked { sha, by, on_main });
                }));
            }
            Effect::RetryOutsideMergeCheckLater { sha, by } => {
                state.infra_streak += 1;
                state.work.timer = Some(owned(async move {
                    tokio::time::sleep(deps.retry_delay).await;
                    let _ = me.cast(TaskMsg::CheckOutsideMerge { sha, by });
                }));
            }
            Effect::Republish { stage, role } => {
                state.work.gate = Some(owned(async move {
                    let result = deps
                        .forge
                        .publish(&task, role)
                        .await
                        .map_err(|e| e.to_string());
                    let _ = me.cast(TaskMsg::Republished { stage, result });
                }));
            }
            Effect::StopWork { reason } => {
                let stopped =
                    crate::actors::dispatch::stop_task(task.work_item_id.clone(), reason).await?;
                if stopped > 0 {
                    info!(task = %task.work_item_id, jobs = stopped, "the task's work was stopped");
                }
            }
            Effect::DiscardWork => {
                state.work.cleanup = Some(owned(async move {
                    if let Err(e) = deps.forge.remove_worktree(&task).await {
                        warn!(task = %task.work_item_id, error = %e, "cannot remove the worktree");
                    }
                    match deps.forge.delete_branch(&task).await {
                        Ok(()) => {
                            info!(task = %task.work_item_id, "the stopped task's branch is deleted on the origin")
                        }
                        Err(e) => {
                            warn!(task = %task.work_item_id, error = %e, "cannot delete the stopped task's branch")
                        }
                    }
                }));
            }
            Effect::CancelJobs => {
                crate::actors::dispatch::cancel_queued(task.work_item_id.clone()).await?;
            }
            Effect::RemoveWorktree => {
                state.work.cleanup = Some(owned(async move {
                    match deps.forge.remove_worktree(&task).await {
                        Ok(()) => info!(task = %task.work_item_id, "worktree removed"),
                        Err(e) => {
                            warn!(task = %task.work_item_id, error = %e, "cannot remove the worktree")
                        }
                    }
                }));
            }
            Effect::WakeDispatch => wake_dispatch(),
            Effect::Stop => myself.stop(Some(format!("task is {}", task.stage))),
        }
        Ok(())
    }
}
