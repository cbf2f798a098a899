//! `task:<id>` — one actor per non-terminal task. It is spawned with its id only and reloads
//! its state from the store in `pre_start`, so startup recovery and a supervised restart take
//! the same path and a restart can never resurrect stale in-memory state.

use std::sync::Arc;
use std::time::SystemTime;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;

use crate::WorkItemId;
use crate::describe::{Describe, Description};
use crate::ports::{Store, TaskRecord};
use crate::supervisor::{ChildLoader, ChildSpec};

/// The task actor; its only dependency is the store it reloads from.
pub struct TaskActor {
    /// Where the task's state is read from.
    store: Arc<dyn Store>,
}

impl TaskActor {
    /// A task actor reading from `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

/// The task's in-memory state, rebuilt from the store on every start.
pub struct TaskState {
    /// The task as last loaded or decided.
    record: TaskRecord,
    /// When this incarnation loaded it (RFC 3339).
    loaded_at: String,
}

/// Messages a task actor handles.
pub enum TaskMsg {
    /// Anyone (`GET /actors`, `GET /tasks/{id}`): reply with the task's live state.
    Describe(RpcReplyPort<Description>),
    /// Debug builds only, from the debug HTTP route or tests: panic inside the handler, to
    /// prove that the supervisor restarts the actor with its state reloaded.
    #[cfg(debug_assertions)]
    Crash(String),
    /// Debug builds only: block the handler this long, to prove that one stuck actor cannot
    /// hang introspection.
    #[cfg(debug_assertions)]
    Stall(std::time::Duration),
}

impl Describe for TaskMsg {
    const KIND: &'static str = "task";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        TaskMsg::Describe(reply)
    }
}

impl Actor for TaskActor {
    type Msg = TaskMsg;
    type State = TaskState;
    type Arguments = WorkItemId;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        id: WorkItemId,
    ) -> Result<Self::State, ActorProcessingErr> {
        let record = self
            .store
            .load_task(&id)
            .await
            .map_err(|e| format!("cannot load task {id}: {e}"))?
            .ok_or_else(|| format!("task {id} is not in the store"))?;
        if record.stage.is_terminal() {
            return Err(format!(
                "task {id} is {}: terminal tasks have no actor",
                record.stage
            )
            .into());
        }
        Ok(TaskState {
            record,
            loaded_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TaskMsg::Describe(reply) => {
                let r = &state.record;
                let _ = reply.send(Description {
                    details: json!({
                        "work_item_id": r.work_item_id,
                        "repo": r.repo,
                        "title": r.title,
                        "stage": r.stage,
                        "paused": r.paused,
                        "loaded_at": state.loaded_at,
                    }),
                    ..Description::default()
                });
            }
            #[cfg(debug_assertions)]
            TaskMsg::Crash(reason) => panic!(
                "task {} crashed on request: {reason}",
                state.record.work_item_id
            ),
            #[cfg(debug_assertions)]
            TaskMsg::Stall(duration) => tokio::time::sleep(duration).await,
        }
        Ok(())
    }
}

/// The child spec of the actor for task `id`.
pub fn task_spec(store: Arc<dyn Store>, id: WorkItemId) -> ChildSpec {
    ChildSpec::new(id.actor_name(), move || {
        (TaskActor::new(store.clone()), id.clone())
    })
}

/// Loads one child spec per non-terminal task in the store: the `tasks` supervisor's children.
pub fn task_loader(store: Arc<dyn Store>) -> ChildLoader {
    Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            let ids = store
                .active_task_ids()
                .await
                .map_err(|e| format!("cannot list active tasks: {e}"))?;
            Ok(ids
                .into_iter()
                .map(|id| task_spec(store.clone(), id))
                .collect())
        })
    })
}
