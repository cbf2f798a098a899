//! Operator routes (Bearer `ORCH_OPERATOR_TOKEN`): `POST /tasks/{id}/approve | reject |
//! confirm-deploy | pause | resume | stop | retry | restart | budget`. Without a configured
//! token they are refused with 403; a missing or wrong token gets 401. Each action is a
//! message to the task's actor, whose reply says whether anything changed (a replayed
//! approve changes nothing).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use orchestrator_actors::WorkItemId;
use orchestrator_actors::actors::task::{HumanAction, HumanReply, RestartError, TaskMsg};
use orchestrator_actors::domain::creation::CreateError;
use orchestrator_actors::ports::Phase;
use ractor::rpc::CallResult;
use ractor::{ActorRef, registry};
use serde::Deserialize;

use super::body::JsonBody;
use super::tasks::parse_id;
use super::{ApiError, AppState};

/// How long an operator request waits for the task actor.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/budget", post(budget))
        .route("/tasks/{id}/restart", post(restart))
        .route("/tasks/{id}/{action}", post(act))
}

/// `POST /tasks/{id}/restart`: a cancelled task starts afresh as a new task (`<id>-r2`, …),
/// its tracker issue linked to the new one; the old one stays in the journal. 201 with the
/// new id; 404 for an unknown task; 409 for a task that is not cancelled or was already
/// restarted.
async fn restart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Option<JsonBody<ActionBody>>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    authorize(&state, &headers)?;
    let id = parse_id(&raw)?;
    if let Some(JsonBody(b)) = &body
        && (b.reason.is_some() || b.note.is_some())
    {
        return Err(ApiError::bad_request("restart takes no reason or note"));
    }
    let task = state
        .store
        .load_task(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    let new = state.creator.restart(&task).await.map_err(|e| {
        let status = match &e {
            RestartError::NotCancelled { .. }
            | RestartError::AlreadyRestarted { .. }
            | RestartError::NoId(_) => StatusCode::CONFLICT,
            RestartError::Create(CreateError::Store(store)) => ApiError::from(store.clone()).status,
            RestartError::Create(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "work_item_id": new.work_item_id, "restart_of": id })),
    ))
}

/// Whether `given` is the secret `expected`, in time that depends only on their lengths.
pub(super) fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Checks the Bearer token in constant time relative to the token's length.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.operator_token.as_deref() else {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: "operator routes are disabled: set ORCH_OPERATOR_TOKEN to enable them".into(),
        });
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same_secret(given, expected) {
        return Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message:
                "missing or wrong operator token (Authorization: Bearer <ORCH_OPERATOR_TOKEN>)"
                    .into(),
        });
    }
    Ok(())
}

/// An operator action's body: `{"reason": "…"}` (a reject needs one, a stop may have one),
/// or `{"note": "…"}` for a retry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Why, for the task's journal and its next agent.
    #[serde(default)]
    reason: Option<String>,
    /// A retry's note, passed verbatim to the next agent run.
    #[serde(default)]
    note: Option<String>,
}

/// The optional `note` of a retry (1-10,000 characters).
fn note(given: Option<&str>) -> Result<Option<String>, ApiError> {
    match given {
        Some(n) if !n.trim().is_empty() && n.chars().count() <= 10_000 => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::bad_request("note must be 1-10000 characters")),
        None => Ok(None),
    }
}

/// The optional `reason`; `required` makes it mandatory, and `missing` says how to give one.
fn reason(given: Option<&str>, required: bool, missing: &str) -> Result<String, ApiError> {
    match given {
        Some(r) if !r.trim().is_empty() && r.chars().count() <= 2000 => Ok(r.trim().to_string()),
        Some(_) => Err(ApiError::bad_request("reason must be 1-2000 characters")),
        None if required => Err(ApiError::bad_request(missing)),
        None => Ok(String::new()),
    }
}

/// `POST /tasks/{id}/budget`'s body: the task's new spend cap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetBody {
    /// The cap in US dollars (positive).
    usd: f64,
}

/// `POST /tasks/{id}/budget` `{"usd": <dollars>}`: sets the task's own spend cap. A task
/// waiting for budget launches the run that was due when the new cap is above its spend,
/// and keeps waiting (its reply says `awaiting-budget`) when it is not.
async fn budget(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody<BudgetBody>,
) -> Result<Json<HumanReply>, ApiError> {
    authorize(&state, &headers)?;
    let id = parse_id(&raw)?;
    let cap = orchestrator_actors::domain::budget::cap_from_usd(body.usd)
        .map_err(|e| ApiError::bad_request(format!("usd {e}")))?;
    perform(&state, &id, HumanAction::SetBudget(cap))
        .await
        .map(Json)
}

/// The operator actions a task's actor takes, by their path name.
pub(super) const ACTIONS: &str = "approve, reject, confirm-deploy, pause, resume, stop, retry";

/// What came with an action: a reason (a reject needs one, a stop may have one) or a
/// retry's note.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Given<'a> {
    /// Why, for the task's journal and its next agent.
    pub reason: Option<&'a str>,
    /// A retry's note, passed verbatim to the next agent run.
    pub note: Option<&'a str>,
}

/// Reads an action's name and what came with it into what the task's actor is told — the
/// one reading shared by these routes and the dashboard's forms. `missing` is the error's
/// text when a reject comes without a reason.
pub(super) fn human_action(
    action: &str,
    given: Given<'_>,
    missing: &str,
) -> Result<HumanAction, ApiError> {
    let takes_note = action == "retry";
    if !takes_note && given.note.is_some() {
        return Err(ApiError::bad_request(format!(
            "{action} takes no note (only retry does)"
        )));
    }
    if takes_note && given.reason.is_some() {
        return Err(ApiError::bad_request(
            "retry takes {\"note\": \"…\"}, not a reason",
        ));
    }
    Ok(match action {
        "approve" => HumanAction::Approve,
        "retry" => HumanAction::Retry {
            by: "operator".into(),
            note: note(given.note)?,
        },
        "reject" => HumanAction::Reject(reason(given.reason, true, missing)?),
        "confirm-deploy" => HumanAction::ConfirmDeploy,
        "pause" => HumanAction::Pause,
        "resume" => HumanAction::Resume,
        "stop" => {
            let why = reason(given.reason, false, missing)?;
            HumanAction::Cancel(if why.is_empty() {
                "stopped by the operator".into()
            } else {
                why
            })
        }
        other => {
            return Err(ApiError::not_found(format!(
                "unknown action {other:?} ({ACTIONS})"
            )));
        }
    })
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    body: Option<JsonBody<ActionBody>>,
) -> Result<Json<HumanReply>, ApiError> {
    authorize(&state, &headers)?;
    let id = parse_id(&raw)?;
    let given = body
        .as_ref()
        .map_or_else(Given::default, |JsonBody(b)| Given {
            reason: b.reason.as_deref(),
            note: b.note.as_deref(),
        });
    let action = human_action(
        &action,
        given,
        "a JSON body {\"reason\": \"…\"} is required",
    )?;
    perform(&state, &id, action).await.map(Json)
}

/// Tells the task's actor what the operator decided and waits for its answer: a terminal or
/// unknown task is refused before anything is sent, and so is a retry of a task that is not
/// blocked. Authorization is the caller's.
pub(super) async fn perform(
    state: &AppState,
    id: &WorkItemId,
    action: HumanAction,
) -> Result<HumanReply, ApiError> {
    let task = state
        .store
        .load_task(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    if task.stage.is_terminal() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("task {id} is {}; nothing more can happen to it", task.stage),
        });
    }
    if matches!(action, HumanAction::Retry { .. }) && task.phase != Phase::Blocked {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "task {id} is not blocked (it is {} at {}); only a blocked task can be retried",
                task.phase.as_str(),
                task.stage
            ),
        });
    }
    let actor: ActorRef<TaskMsg> = registry::where_is(id.actor_name())
        .map(ActorRef::from)
        .ok_or_else(|| {
            ApiError::unavailable(format!("task {id} has no live actor (see GET /actors)"))
        })?;
    match actor
        .call(|reply| TaskMsg::Human(action, reply), Some(ACTOR_TIMEOUT))
        .await
    {
        Ok(CallResult::Success(reply)) => Ok(reply),
        Ok(CallResult::Timeout) => Err(ApiError::unavailable(format!(
            "task {id} did not answer within 10 s"
        ))),
        _ => Err(ApiError::unavailable(format!(
            "task {id}'s actor stopped before answering"
        ))),
    }
}
