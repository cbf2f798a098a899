//! `merge-queue` — the singleton that keeps `main` green: one FIFO per repository, owned
//! here and journaled ([`MergeQueueStore`]), so a restart resumes every queue in order.
//!
//! A task joins its repository's queue when its tests pass. The first in line gets the
//! repository's **lease**: its candidate — its branch merged into the current `main`, built
//! in the orchestrator's clone — is tested exactly as it is; a green candidate is deployed by
//! the task (the lease is held through its deploy stages), then `main` is fast-forwarded to
//! it. So every commit on `main`'s first-parent line passed CI as it is, and production only
//! ever runs such a commit. A red candidate is checked against `main` alone first (the
//! runaway guard, [`crate::domain::merge_queue`]): if `main` itself is red the queue freezes
//! instead of bouncing task after task. A task leaves the queue (and gives up the lease)
//! whenever it leaves the queue's window — rolled back, blocked, stopped or done.
//!
//! The slow work — building, testing, fast-forwarding — runs in futures this actor owns, one
//! per repository at a time, and reports back by message; a report from work that was
//! superseded (its generation passed) is ignored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio_util::task::AbortOnDropHandle;
use tracing::warn;

use crate::WorkItemId;
use crate::actors::describe::{Describe, Description};
use crate::actors::task::TaskMsg;
use crate::actors::tracker;
use crate::domain::gates::CiOutcome;
use crate::ports::merge_queue::{
    FastForward, Freeze, FreezeKind, Integration, MergeQueueStore, QueueEntry, RepoQueueState,
};
use crate::ports::workbench::Forge;
use crate::ports::{Notice, Store, TaskRecord};

mod ask;
mod requests;
mod steps;
mod view;
mod work;

pub use ask::{freeze, join, leave, overview, ready_to_merge, unfreeze};

pub use view::{EntryView, RepoView};

/// Registered name of the merge queue.
pub const MERGE_QUEUE: &str = "merge-queue";

/// How long a task's request waits for the queue.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Who the runaway guard is, in the journal.
const GUARD: &str = "merge-queue";

/// What the merge queue works with.
pub struct MergeQueueDeps {
    /// Its journal.
    pub store: Arc<dyn MergeQueueStore>,
    /// Tasks, read (a restarted queue reloads its holders' records).
    pub tasks: Arc<dyn Store>,
    /// Candidates, CI and the fast-forward.
    pub forge: Arc<dyn Forge>,
    /// Pause before retrying infrastructure trouble.
    pub retry_delay: Duration,
    /// Infrastructure failures in a row one holder's step may have before its task is
    /// blocked (`ORCH_MERGE_RETRY_MAX`).
    pub infra_retries: u32,
    /// How often a queue frozen because `main` is red looks at `main` again.
    pub main_recheck: Duration,
    /// How many waiting tasks one lease takes at most (`ORCH_MERGE_BATCH_MAX`; 1: no
    /// batching).
    pub batch_max: usize,
}

/// A repository's queue in memory.
#[derive(Default)]
struct RepoQueue {
    /// Its entries in arrival order (the holder among them).
    entries: Vec<QueueEntry>,
    /// Its freeze and the last green `main`.
    state: RepoQueueState,
    /// The last `main` tested on its own, and whether it was green.
    main_verdict: Option<(String, bool)>,
    /// A red top candidate waiting for the verdict on `main` alone: its output.
    pending_red: Option<String>,
    /// A red batch being bisected.
    bisect: Option<Bisect>,
    /// The batch (or its green prefix) tested green: its candidates are to be published
    /// before its tasks hear of it.
    publish_pending: bool,
    /// Infrastructure failures in a row of the current step.
    infra_failures: u32,
    /// The last infrastructure trouble, for the view.
    last_error: Option<String>,
    /// Increases whenever work starts: a report of older work is stale.
    generation: u64,
    /// The one piece of work in flight (build, test, fast-forward, main check).
    work: Option<AbortOnDropHandle<()>>,
    /// A timed retry.
    timer: Option<AbortOnDropHandle<()>>,
    /// When a frozen queue last looked at `main`.
    last_main_check: Option<std::time::Instant>,
    /// Counters for the view.
    counts: Counts,
}

/// What a repository's queue did since start.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counts {
    /// Candidates built.
    pub built: u64,
    /// CI runs (candidates and `main` alone).
    pub ci_runs: u64,
    /// Fast-forwards of `main`.
    pub merged: u64,
    /// Tasks sent back (red candidate or conflict).
    pub bounced: u64,
}

/// A red batch's bisection: members `1..=lo` green together, `1..=hi` red together, and the
/// failing output of each red candidate tested, by member.
#[derive(Clone, Debug)]
pub(super) struct Bisect {
    lo: usize,
    hi: usize,
    outputs: BTreeMap<usize, String>,
}

impl Bisect {
    /// A batch of `members` whose top tested red with `output`, on a green `main`.
    fn new(members: usize, output: String) -> Self {
        Self {
            lo: 0,
            hi: members,
            outputs: BTreeMap::from([(members, output)]),
        }
    }
}

impl RepoQueue {
    /// The batch holding the lease, in order (empty when nobody holds it).
    fn members(&self) -> Vec<QueueEntry> {
        self.entries
            .iter()
            .filter(|e| e.state.holds_lease())
            .cloned()
            .collect()
    }
    fn entry_mut(&mut self, id: &WorkItemId) -> Option<&mut QueueEntry> {
        self.entries.iter_mut().find(|e| &e.work_item_id == id)
    }
    fn busy(&self) -> bool {
        self.work.as_ref().is_some_and(|w| !w.is_finished())
            || self.timer.as_ref().is_some_and(|t| !t.is_finished())
    }
    fn stop_work(&mut self) {
        self.generation += 1;
        self.work = None;
        self.timer = None;
        self.infra_failures = 0;
        self.pending_red = None;
        self.bisect = None;
        self.publish_pending = false;
    }
}

/// The queue's state.
pub struct MergeQueueState {
    /// Each repository's queue.
    repos: BTreeMap<String, RepoQueue>,
    /// Arrival counter (continues after the journal's largest).
    next_seq: i64,
}

/// What a freeze or thaw request came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FreezeReply {
    /// The repository.
    pub repo: String,
    /// False when it already was as asked.
    pub changed: bool,
    /// Its freeze afterwards.
    pub frozen: Option<Freeze>,
}

/// Messages the merge queue handles.
pub enum MergeQueueMsg {
    /// `GET /actors`, `GET /queue`.
    Describe(RpcReplyPort<Description>),
    /// Every repository's queue, for `GET /queue`.
    Overview(RpcReplyPort<Vec<RepoView>>),
    /// A task whose tests passed joins (idempotent); replies with its place (0 = holder).
    Join(Box<TaskRecord>, RpcReplyPort<Result<usize, String>>),
    /// A task leaves its queue, giving up the lease if it holds it (idempotent).
    Leave(WorkItemId, RpcReplyPort<()>),
    /// The holder deployed its candidate: fast-forward `main` to it. A task the queue does
    /// not know (recovered in that phase) joins at the back, its candidate to be built and
    /// tested before anything merges.
    ReadyToMerge(Box<TaskRecord>, RpcReplyPort<Result<(), String>>),
    /// An operator freezes a repository's queue.
    Freeze {
        /// The repository.
        repo: String,
        /// Who.
        by: String,
        /// Why.
        reason: String,
        /// The reply.
        reply: RpcReplyPort<Result<FreezeReply, String>>,
    },
    /// An operator thaws it.
    Unfreeze {
        /// The repository.
        repo: String,
        /// Who.
        by: String,
        /// The reply.
        reply: RpcReplyPort<Result<FreezeReply, String>>,
    },
    /// Owned work: the batch's candidates were built (or not).
    Built(Report<work::Builds>),
    /// Owned work: CI on the candidate of the batch's n-th member ended.
    Tested(Report<(usize, String, CiOutcome)>),
    /// Owned work: `main` alone was tested (the runaway guard, or a frozen queue's recheck);
    /// no outcome when it had not moved from a commit known red.
    MainTested(Report<Result<(String, Option<CiOutcome>), String>>),
    /// Owned work: the green batch's candidates were published as their branches' heads.
    Published(Report<Result<(), String>>),
    /// Owned work: the fast-forward ended.
    FastForwarded(Report<Result<FastForward, String>>),
    /// A timed retry, or the interval: drive every repository.
    Tick,
}

/// A piece of owned work's report.
pub struct Report<T> {
    /// The repository.
    repo: String,
    /// The generation it was started in.
    generation: u64,
    /// What it found.
    result: T,
}

impl Describe for MergeQueueMsg {
    const KIND: &'static str = "merge-queue";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        MergeQueueMsg::Describe(reply)
    }
}

/// The merge queue.
pub struct MergeQueue {
    deps: Arc<MergeQueueDeps>,
}

impl MergeQueue {
    /// A merge queue working with `deps`.
    pub fn new(deps: Arc<MergeQueueDeps>) -> Self {
        Self { deps }
    }
}

impl Actor for MergeQueue {
    type Msg = MergeQueueMsg;
    type State = MergeQueueState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let (entries, repos) = self.deps.store.load_merge_queue().await?;
        let mut state = MergeQueueState {
            repos: BTreeMap::new(),
            next_seq: entries.iter().map(|e| e.seq).max().unwrap_or(0) + 1,
        };
        for repo in repos {
            let name = repo.repo.clone();
            state.repos.entry(name).or_default().state = repo;
        }
        for entry in entries {
            let queue = state.repos.entry(entry.repo.clone()).or_default();
            queue.state.repo = entry.repo.clone();
            queue.entries.push(entry);
        }
        for queue in state.repos.values_mut() {
            queue.entries.sort_by_key(|e| e.seq);
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself.cast(MergeQueueMsg::Tick)?;
        myself.send_interval(self.deps.main_recheck, || MergeQueueMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MergeQueueMsg::Describe(reply) => {
                let details = serde_json::to_value(view::views(state))?;
                let _ = reply.send(Description {
                    details: serde_json::json!({ "repos": details }),
                    ..Description::default()
                });
            }
            MergeQueueMsg::Overview(reply) => {
                let _ = reply.send(view::views(state));
            }
            MergeQueueMsg::Join(task, reply) => {
                let answer = self.join(&myself, state, *task).await;
                let _ = reply.send(answer);
            }
            MergeQueueMsg::Leave(id, reply) => {
                self.leave(&myself, state, &id).await?;
                let _ = reply.send(());
            }
            MergeQueueMsg::ReadyToMerge(task, reply) => {
                let answer = self.ready(&myself, state, *task).await;
                let _ = reply.send(answer);
            }
            MergeQueueMsg::Freeze {
                repo,
                by,
                reason,
                reply,
            } => {
                let answer = self
                    .freeze(state, &repo, FreezeKind::Operator, &by, &reason)
                    .await;
                let _ = reply.send(answer);
            }
            MergeQueueMsg::Unfreeze { repo, by, reply } => {
                let answer = self.thaw(&myself, state, &repo, &by, "").await;
                let _ = reply.send(answer);
            }
            MergeQueueMsg::Built(report) => self.on_built(&myself, state, report).await?,
            MergeQueueMsg::Tested(report) => self.on_tested(&myself, state, report).await?,
            MergeQueueMsg::MainTested(report) => {
                self.on_main_tested(&myself, state, report).await?
            }
            MergeQueueMsg::Published(report) => self.on_published(&myself, state, report).await?,
            MergeQueueMsg::FastForwarded(report) => {
                self.on_fast_forwarded(&myself, state, report).await?
            }
            MergeQueueMsg::Tick => {
                let repos: Vec<String> = state.repos.keys().cloned().collect();
                for repo in repos {
                    self.drive(&myself, state, &repo).await?;
                }
            }
        }
        Ok(())
    }
}

/// Tells task `id`'s actor the queue's news; a task whose actor is not running hears it
/// again when it rejoins on start.
fn tell(id: &WorkItemId, news: Integration) {
    match ractor::registry::where_is(id.actor_name()) {
        Some(cell) => {
            let actor: ActorRef<TaskMsg> = cell.into();
            let _ = actor.cast(TaskMsg::Integrated(news));
        }
        None => warn!(task = %id, ?news, "the task's actor is not running; it hears on restart"),
    }
}

/// Appends to the queue's journal; a failure is logged (the decision itself is saved).
async fn journal(
    store: &dyn MergeQueueStore,
    repo: &str,
    task: Option<&WorkItemId>,
    what: &str,
    by: &str,
    detail: &str,
) {
    if let Err(e) = store.journal_queue(repo, task, what, by, detail).await {
        warn!(%repo, %what, error = %e, "cannot journal a merge-queue decision");
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The service-wide notice when a queue freezes or thaws by itself.
fn notice(text: String) {
    tracker::notice(Notice {
        topic: "merge queue".into(),
        text,
    });
}
