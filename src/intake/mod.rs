//! The webhook intake: a delivery from Plane or Gitea is checked (signature over the raw
//! body, JSON, the shape of its event), journaled once (a replayed delivery id, or the same
//! body within the window, is a duplicate), answered at once, and acted on off the request:
//! task actors are told by message, tasks are created through the one creation rule
//! ([`TaskCreator`]), cards move through the [`Board`] port. A commit status whose branch the
//! journal write found is the exception that proves the rule: what it comes to is decided in
//! that write, and the task is told once the write has committed, before the answer. Every
//! other outcome goes to the [`Settler`], which journals them in batches (ADR 0007).

mod gitea;
pub mod payload;
mod plane;
mod reconcile;
mod settler;
pub mod signature;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, StatusCode};
use orchestrator_actors::WorkItemId;
use orchestrator_actors::actors::task::TaskCreator;
use orchestrator_actors::actors::task::{HumanAction, HumanReply, TaskMsg};
use orchestrator_actors::ports::{
    Board, BranchHeads, EventJournal, Journaled, NewEvent, Settlement, Store, TrackerLinks,
};
use ractor::rpc::CallResult;
use ractor::{ActorRef, registry};
use serde_json::Value;
use tracing::{info, warn};

use crate::config::Integrations;
use crate::config::projects::Projects;
use crate::gitea::GiteaClient;
use crate::plane::{PlaneClient, StatesCache};

pub use reconcile::IntakeReconciler;
pub use settler::Settler;

/// Largest webhook body accepted (larger → 413).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long the intake waits for a task actor to take a human action.
const ACTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The sender of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `POST /webhook/plane`.
    Plane,
    /// `POST /webhook/gitea`.
    Gitea,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Plane => "plane",
            Source::Gitea => "gitea",
        }
    }
}

/// The answer to a delivery that was not refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Journaled; acted on in the background.
    Accepted,
    /// Journaled; nothing to do (unknown project, own bot, an event nobody acts on).
    Ignored,
    /// Seen before; nothing done.
    Duplicate,
}

impl Reply {
    /// The `status` of the JSON answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Reply::Accepted => "accepted",
            Reply::Ignored => "ignored",
            Reply::Duplicate => "duplicate",
        }
    }
}

/// A refused delivery: its status and a message naming what was wrong.
#[derive(Debug)]
pub struct Refusal {
    /// 400, 401, 404 or 500.
    pub status: StatusCode,
    /// What was wrong.
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// The Plane side of the intake.
pub struct PlaneIntake {
    /// The API.
    pub client: Arc<PlaneClient>,
    /// Each project's states.
    pub states: Arc<StatesCache>,
    /// The webhook secret (`None`: unsigned deliveries allowed).
    pub secret: Option<String>,
}

/// The Gitea side of the intake.
pub struct GiteaIntake {
    /// The API.
    pub client: Arc<GiteaClient>,
    /// The webhook secret (`None`: unsigned deliveries allowed).
    pub secret: Option<String>,
}

/// The Plane user ids of the orchestrator's own accounts: configured, plus those learned
/// from Plane's answers to its writes. Their events are never acted on.
#[derive(Debug, Default)]
pub struct BotAccounts(RwLock<HashSet<String>>);

impl BotAccounts {
    /// Accounts known up front.
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        Self(RwLock::new(ids.into_iter().collect()))
    }

    /// Remembers `id` as one of ours.
    pub fn learn(&self, id: &str) {
        if id.is_empty() {
            return;
        }
        let mut ids = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ids.insert(id.to_string()) {
            info!(user = %id, "learned a Plane account of the orchestrator");
        }
    }

    /// Whether `id` is one of ours.
    pub fn is_ours(&self, id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }
}

/// Everything the intake works with.
pub struct Intake {
    /// The delivery journal.
    pub journal: Arc<dyn EventJournal>,
    /// Tasks.
    pub store: Arc<dyn Store>,
    /// Task ↔ issue links.
    pub links: Arc<dyn TrackerLinks>,
    /// Branch heads, to trace a commit status to its task.
    pub heads: Arc<dyn BranchHeads>,
    /// The one way a task is created.
    pub creator: Arc<TaskCreator>,
    /// The tracker board: the cards of issues refused a start, comments on tasks' cards.
    pub board: Arc<dyn Board>,
    /// The project registry.
    pub projects: Arc<Projects>,
    /// Integration settings.
    pub settings: Integrations,
    /// Plane, when configured.
    pub plane: Option<PlaneIntake>,
    /// Gitea, when configured.
    pub gitea: Option<GiteaIntake>,
    /// The orchestrator's own Plane accounts.
    pub bots: Arc<BotAccounts>,
    /// Journals what became of each delivery acted on.
    pub settler: Settler,
}

impl Intake {
    /// Checks, journals and answers one delivery; what it asks for runs in the background.
    pub async fn receive(
        self: &Arc<Self>,
        source: Source,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reply, Refusal> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (secret, sig_header, delivery_header) = match source {
            Source::Plane => {
                let Some(plane) = &self.plane else {
                    return Err(refuse(
                        StatusCode::NOT_FOUND,
                        "no Plane integration is configured (ORCH_PLANE_API_URL)",
                    ));
                };
                (&plane.secret, "X-Plane-Signature", "X-Plane-Delivery")
            }
            Source::Gitea => {
                let Some(gitea) = &self.gitea else {
                    return Err(refuse(
                        StatusCode::NOT_FOUND,
                        "no Gitea integration is configured (ORCH_GITEA_URL)",
                    ));
                };
                (&gitea.secret, "X-Gitea-Signature", "X-Gitea-Delivery")
            }
        };
        let signature = match secret {
            Some(secret) => Some(
                signature::verify(secret, sig_header, header(sig_header), body)
                    .map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.to_string()))?,
            ),
            None => None,
        };
        let not_json = |e: serde_json::Error| {
            if e.is_syntax() || e.is_eof() {
                refuse(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not valid JSON: {e}"),
                )
            } else {
                refuse(StatusCode::BAD_REQUEST, format!("unexpected payload: {e}"))
            }
        };
        let parsed = match source {
            Source::Plane => {
                let json = serde_json::from_slice::<Value>(body).map_err(not_json)?;
                payload::plane(&json).map(Parsed::Plane)
            }
            Source::Gitea => {
                let fields = payload::gitea_fields(body).map_err(not_json)?;
                let event = header("X-Gitea-Event").ok_or_else(|| {
                    refuse(StatusCode::BAD_REQUEST, "missing X-Gitea-Event header")
                })?;
                payload::gitea(event, &fields).map(Parsed::Gitea)
            }
        }
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("unexpected payload: {e}")))?;
        let kind = match &parsed {
            Parsed::Plane(d) => d.kind(),
            Parsed::Gitea(d) => d.kind(),
        };
        let ignored = match &parsed {
            Parsed::Plane(d) => self.plane_ignores(d),
            Parsed::Gitea(d) => self.gitea_ignores(d),
        };
        let commit = match &parsed {
            Parsed::Gitea(d) if ignored.is_none() => self.gitea_commit(d),
            _ => None,
        };
        // Registry projects only: each scope gets a compression dictionary in the journal.
        let scope = match &parsed {
            Parsed::Plane(d) => d.project().filter(|p| self.projects.by_plane(p).is_some()),
            Parsed::Gitea(d) => d.repo().filter(|r| self.projects.by_gitea(r).is_some()),
        }
        .map(str::to_string);
        let event = NewEvent {
            source: source.as_str().into(),
            kind,
            delivery_id: header(delivery_header)
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            body_hash: signature.unwrap_or_else(|| signature::body_hash(body)),
            payload: body.to_vec(),
            scope,
            settled: ignored.as_ref().map(|why| format!("ignored: {why}")),
            commit,
        };
        // The commonest delivery of all — a status, one per CI step — is mostly decided
        // within the write that journals it, outcome and all; the task hears of it once that
        // write has committed.
        let act = match &parsed {
            Parsed::Gitea(d) if ignored.is_none() => self.status_act(d),
            _ => None,
        };
        let (id, branches) = match self
            .journal
            .journal_event(event, act, self.settings.dedup_window)
            .await
        {
            Ok(Journaled::New {
                acted: true,
                recheck,
                ..
            }) => {
                if let Some(task) = recheck {
                    recheck_gate(&task);
                }
                return Ok(Reply::Accepted);
            }
            Ok(Journaled::New { id, branches, .. }) => (id, branches),
            Ok(Journaled::Duplicate) => return Ok(Reply::Duplicate),
            Err(e) => {
                return Err(refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot journal the delivery: {e}"),
                ));
            }
        };
        if ignored.is_some() {
            return Ok(Reply::Ignored);
        }
        let acting = self.settler.acting();
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let (task, outcome) = match parsed {
                Parsed::Plane(d) => me.act_on_plane(d).await,
                Parsed::Gitea(d) => me.act_on_gitea(d, branches).await,
            };
            me.settler.settle(settlement(id, task, outcome), acting);
        });
        Ok(Reply::Accepted)
    }

    /// How many accepted deliveries are still being acted on.
    pub fn acting(&self) -> usize {
        self.settler.in_progress()
    }
}

/// What acting on a delivery came to: the task concerned, and the outcome in words (or why
/// it failed).
type Acted = (Option<WorkItemId>, Result<String, String>);

/// What became of delivery `id`, for the journal.
fn settlement(id: i64, task: Option<WorkItemId>, outcome: Result<String, String>) -> Settlement {
    let (outcome, error) = match outcome {
        Ok(outcome) => (outcome, None),
        Err(error) => {
            warn!(event = id, %error, "webhook delivery could not be acted on");
            ("failed".to_string(), Some(error))
        }
    };
    Settlement {
        id,
        work_item_id: task,
        outcome,
        error,
    }
}

/// A delivery read from its body.
enum Parsed {
    Plane(payload::PlaneDelivery),
    Gitea(payload::GiteaDelivery),
}

/// Tells task `id` to re-check its gate (a commit status changed); whether its actor runs.
pub(crate) fn recheck_gate(id: &WorkItemId) -> bool {
    registry::where_is(id.actor_name())
        .map(ActorRef::<TaskMsg>::from)
        .is_some_and(|actor| actor.cast(TaskMsg::Recheck).is_ok())
}

/// Hands `action` to the actor of task `id`; its reply, or why it could not be delivered.
pub(crate) async fn tell_task(id: &WorkItemId, action: HumanAction) -> Result<HumanReply, String> {
    let actor: ActorRef<TaskMsg> = registry::where_is(id.actor_name())
        .map(ActorRef::from)
        .ok_or_else(|| format!("task {id} has no live actor"))?;
    match actor
        .call(|reply| TaskMsg::Human(action, reply), Some(ACTOR_TIMEOUT))
        .await
    {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => Err(format!("task {id} did not answer in time")),
        _ => Err(format!("task {id}'s actor stopped before answering")),
    }
}
