//! The merge queue's RPCs, each with [`ASK_TIMEOUT`]: what task actors and HTTP handlers
//! ask of it.

use ractor::RpcReplyPort;

use super::{ASK_TIMEOUT, FreezeReply, MERGE_QUEUE, MergeQueueMsg, RepoView};
use crate::WorkItemId;
use crate::ports::TaskRecord;

/// One RPC to the merge queue, with [`ASK_TIMEOUT`].
async fn ask<T: Send + 'static>(
    msg: impl FnOnce(RpcReplyPort<T>) -> MergeQueueMsg,
) -> Result<T, String> {
    let queue = ractor::registry::where_is(MERGE_QUEUE).ok_or("the merge queue is not running")?;
    match ractor::rpc::call(&queue, msg, Some(ASK_TIMEOUT)).await {
        Ok(ractor::rpc::CallResult::Success(answer)) => Ok(answer),
        Ok(_) => Err(format!(
            "the merge queue did not answer within {} s",
            ASK_TIMEOUT.as_secs()
        )),
        Err(e) => Err(format!("the merge queue is unreachable: {e}")),
    }
}

/// Asks the queue to take `task` in (idempotent); its place (0 = it holds the lease).
pub async fn join(task: TaskRecord) -> Result<usize, String> {
    ask(|reply| MergeQueueMsg::Join(Box::new(task), reply)).await?
}

/// Asks the queue to let `id` go (idempotent).
pub async fn leave(id: WorkItemId) -> Result<(), String> {
    ask(|reply| MergeQueueMsg::Leave(id, reply)).await
}

/// Tells the queue that `task` deployed its candidate: fast-forward `main` to it.
pub async fn ready_to_merge(task: TaskRecord) -> Result<(), String> {
    ask(|reply| MergeQueueMsg::ReadyToMerge(Box::new(task), reply)).await?
}

/// An operator freezes `repo`'s queue.
pub async fn freeze(repo: String, by: String, reason: String) -> Result<FreezeReply, String> {
    ask(|reply| MergeQueueMsg::Freeze {
        repo,
        by,
        reason,
        reply,
    })
    .await?
}

/// An operator thaws `repo`'s queue.
pub async fn unfreeze(repo: String, by: String) -> Result<FreezeReply, String> {
    ask(|reply| MergeQueueMsg::Unfreeze { repo, by, reply }).await?
}

/// Every repository's queue.
pub async fn overview() -> Result<Vec<RepoView>, String> {
    ask(MergeQueueMsg::Overview).await
}
