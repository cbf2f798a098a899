//! How task actors ask the dispatcher, the queue's only writer, to change their jobs: by
//! name, with a timeout.

use ractor::RpcReplyPort;

use super::{ASK_TIMEOUT, DISPATCH, DispatchMsg};
use crate::WorkItemId;
use crate::ports::NewJob;

/// Asks the dispatcher to enqueue `job`; `Ok(None)` when the task already has an active job.
pub async fn enqueue(job: NewJob) -> Result<Option<i64>, String> {
    let what = format!("{} job for task {}", job.role, job.work_item_id);
    ask(|reply| DispatchMsg::Enqueue(job, reply))
        .await?
        .map_err(|e| format!("cannot enqueue the {what}: {e}"))
}

/// Asks the dispatcher to withdraw the task's queued job.
pub async fn cancel_queued(id: WorkItemId) -> Result<u32, String> {
    ask(|reply| DispatchMsg::CancelQueued(id, reply)).await?
}

/// Asks the dispatcher to stop the task's work: its queued job cancelled, its running one
/// ended with its agent's process group killed.
pub async fn stop_task(id: WorkItemId, reason: String) -> Result<u32, String> {
    ask(|reply| DispatchMsg::StopTask(id, reason, reply)).await?
}

/// One RPC to the dispatcher, with [`ASK_TIMEOUT`].
async fn ask<T: Send + 'static>(
    msg: impl FnOnce(RpcReplyPort<T>) -> DispatchMsg,
) -> Result<T, String> {
    let dispatch = ractor::registry::where_is(DISPATCH).ok_or("dispatch is not running")?;
    match ractor::rpc::call(&dispatch, msg, Some(ASK_TIMEOUT)).await {
        Ok(ractor::rpc::CallResult::Success(answer)) => Ok(answer),
        Ok(_) => Err(format!(
            "dispatch did not answer within {} s",
            ASK_TIMEOUT.as_secs()
        )),
        Err(e) => Err(format!("dispatch is unreachable: {e}")),
    }
}
