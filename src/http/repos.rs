//! Operator routes on a repository (Bearer `ORCH_OPERATOR_TOKEN`, as the task actions):
//! `POST /repos/{repo}/merge-queue/freeze` (`{"reason", "by"?}`) and
//! `POST /repos/{repo}/merge-queue/unfreeze` (`{"reason"?, "by"?}`). `{repo}` is the
//! project's repo as configured (`acme/app`; its slash may be sent as is or as `%2F`).
//! The merge queue journals each with who and why; a frozen queue holds, never drops a task.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use orchestrator_actors::actors::merge_queue::{self, FreezeReply};
use serde::Deserialize;

use super::body::JsonBody;
use super::operator::authorize;
use super::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/repos/{*path}", post(act))
}

/// A freeze's or thaw's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoBody {
    /// Why (required to freeze).
    #[serde(default)]
    reason: Option<String>,
    /// Who, for the journal (default `operator`).
    #[serde(default)]
    by: Option<String>,
}

fn text(value: Option<&str>, field: &str, required: bool) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !v.trim().is_empty() && v.chars().count() <= 2000 => {
            Ok(Some(v.trim().to_string()))
        }
        Some(_) => Err(ApiError::bad_request(format!(
            "{field} must be 1-2000 characters"
        ))),
        None if required => Err(ApiError::bad_request(format!(
            "a JSON body with {{\"{field}\": \"…\"}} is required"
        ))),
        None => Ok(None),
    }
}

async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(path): Path<String>,
    body: Option<JsonBody<RepoBody>>,
) -> Result<Json<FreezeReply>, ApiError> {
    authorize(&state, &headers)?;
    let (repo, action) = match path.rsplit_once("/merge-queue/") {
        Some((repo, action)) if !repo.is_empty() => (repo.to_string(), action.to_string()),
        _ => {
            return Err(ApiError::not_found(format!(
                "unknown route /repos/{path} (expected /repos/<repo>/merge-queue/freeze or /unfreeze)"
            )));
        }
    };
    let body = body.map(|JsonBody(b)| b);
    perform(
        &state,
        &repo,
        &action,
        body.as_ref().and_then(|b| b.reason.as_deref()),
        body.as_ref().and_then(|b| b.by.as_deref()),
    )
    .await
    .map(Json)
}

/// Freezes or thaws `repo`'s merge queue (`action`: `freeze`, which needs a reason, or
/// `unfreeze`) for `by` (default `operator`) — the one path of these routes and the
/// dashboard's forms. Authorization is the caller's.
pub(super) async fn perform(
    state: &AppState,
    repo: &str,
    action: &str,
    reason: Option<&str>,
    by: Option<&str>,
) -> Result<FreezeReply, ApiError> {
    if state.creator.tasks.projects.get(repo).is_none() {
        return Err(ApiError::not_found(format!(
            "repo {repo:?} is not a configured project"
        )));
    }
    let by = text(by, "by", false)?.unwrap_or_else(|| "operator".to_string());
    let repo = repo.to_string();
    let reply = match action {
        "freeze" => {
            let reason = text(reason, "reason", true)?.unwrap_or_default();
            merge_queue::freeze(repo, by, reason).await
        }
        "unfreeze" => {
            text(reason, "reason", false)?;
            merge_queue::unfreeze(repo, by).await
        }
        other => {
            return Err(ApiError::not_found(format!(
                "unknown merge-queue action {other:?} (freeze, unfreeze)"
            )));
        }
    };
    reply.map_err(|e| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: e,
    })
}
