//! How task actors come to be: their child spec and the `tasks` supervisor's loader (one per
//! non-terminal task), starting the actor of a task just created, and [`TaskCreator`] — the
//! one way a task is created: the domain's creation rule, the store, then its actor.

use std::sync::Arc;
use std::time::Duration;

use ractor::registry;

use super::{TaskActor, TaskDeps};
use crate::WorkItemId;
use crate::actors::supervisor::{ChildLoader, ChildSpec};
use crate::domain::creation::{CreateError, Creation, TaskRequest, restart_id, validate};
use crate::ports::{StoreError, TaskRecord, TrackerLinks};

/// The child spec of the actor for task `id`.
pub fn task_spec(deps: Arc<TaskDeps>, id: WorkItemId) -> ChildSpec {
    ChildSpec::new(id.actor_name(), move || {
        (TaskActor::new(deps.clone()), id.clone())
    })
}

/// Loads one child spec per non-terminal task in the store: the `tasks` supervisor's children.
pub fn task_loader(deps: Arc<TaskDeps>) -> ChildLoader {
    Arc::new(move || {
        let deps = deps.clone();
        Box::pin(async move {
            let ids = deps
                .store
                .active_task_ids()
                .await
                .map_err(|e| format!("cannot list active tasks: {e}"))?;
            Ok(ids
                .into_iter()
                .map(|id| task_spec(deps.clone(), id))
                .collect())
        })
    })
}

/// Starts the actor of a task just created, under the `tasks` supervisor.
pub async fn spawn_task_actor(deps: Arc<TaskDeps>, id: WorkItemId) -> Result<(), String> {
    let tasks = registry::where_is(crate::actors::tree::TASKS)
        .ok_or("the tasks supervisor is not running")?;
    let spec = task_spec(deps, id.clone());
    match ractor::rpc::call(
        &tasks,
        |reply| crate::actors::supervisor::SupervisorMsg::StartChild(spec, reply),
        Some(Duration::from_secs(10)),
    )
    .await
    {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        Ok(_) => Err(format!(
            "the tasks supervisor did not start task {id} in time"
        )),
        Err(e) => Err(format!("the tasks supervisor is unreachable: {e}")),
    }
}

/// The one way a task is created: the rule, the store, then its actor.
pub struct TaskCreator {
    /// What task actors work with (the store and the project registry among it).
    pub tasks: Arc<TaskDeps>,
    /// Where a task from an issue is written, linked to it.
    pub links: Arc<dyn TrackerLinks>,
}

impl TaskCreator {
    /// Validates `request`, writes the task and starts its actor under the `tasks`
    /// supervisor; the task as written. Nothing is written when the rule refuses it.
    pub async fn create(&self, request: TaskRequest) -> Result<TaskRecord, CreateError> {
        let written = match validate(&self.tasks.projects, request)? {
            Creation::Numbered { prefix, fields } => self
                .tasks
                .store
                .create_numbered_task(&prefix, fields)
                .await
                .map_err(CreateError::Store)?,
            Creation::Linked { task, link } => {
                let id = task.work_item_id.clone();
                self.links
                    .create_linked_task(task, link)
                    .await
                    .map_err(|e| match e {
                        StoreError::Duplicate(what) => CreateError::Taken { id, what },
                        e => CreateError::Store(e),
                    })?
            }
        };
        let id = written.work_item_id.clone();
        spawn_task_actor(self.tasks.clone(), id.clone())
            .await
            .map_err(|reason| CreateError::NotStarted { id, reason })?;
        Ok(written)
    }

    /// Starts a fresh task in place of the cancelled task `old` (same repo, title,
    /// description and labels; its tracker issue, if any, now links to the new one), under
    /// the id [`restart_id`] gives; the old task stays as it is in the journal.
    pub async fn restart(&self, old: &TaskRecord) -> Result<TaskRecord, RestartError> {
        if old.stage != crate::Stage::Cancelled {
            return Err(RestartError::NotCancelled {
                id: old.work_item_id.clone(),
                stage: old.stage,
            });
        }
        let Some(new) = restart_id(&old.work_item_id) else {
            return Err(RestartError::NoId(old.work_item_id.clone()));
        };
        let task = crate::ports::NewTask {
            work_item_id: new.clone(),
            repo: old.repo.clone(),
            title: old.title.clone(),
            description: old.description.clone(),
            labels: old.labels.clone(),
        };
        let written = self
            .tasks
            .store
            .restart_task(&old.work_item_id, task)
            .await
            .map_err(|e| match e {
                StoreError::Duplicate(_) => RestartError::AlreadyRestarted {
                    id: old.work_item_id.clone(),
                    new: new.clone(),
                },
                e => RestartError::Create(CreateError::Store(e)),
            })?;
        spawn_task_actor(self.tasks.clone(), new.clone())
            .await
            .map_err(|reason| RestartError::Create(CreateError::NotStarted { id: new, reason }))?;
        Ok(written)
    }
}

/// Why a task cannot be restarted.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// Only a cancelled task starts afresh.
    #[error("task {id} is {stage}, not cancelled: only a cancelled task can be restarted")]
    NotCancelled {
        /// The task.
        id: WorkItemId,
        /// Where it is.
        stage: crate::Stage,
    },
    /// It was restarted already.
    #[error("task {id} was already restarted as {new}")]
    AlreadyRestarted {
        /// The task.
        id: WorkItemId,
        /// Its restart.
        new: WorkItemId,
    },
    /// Its restart's id would be too long.
    #[error("task {0}'s restart would need an id longer than 64 characters")]
    NoId(WorkItemId),
    /// Writing or starting the new task failed.
    #[error(transparent)]
    Create(CreateError),
}
