//! The fake's REST surface: one hand-written router (so every request is logged, even ones
//! no route takes), the token check, injected faults, and one function per endpoint with the
//! status codes and bodies the contract gives for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::model::{self, Repo, Status};
use super::pulls::{
    create_pull, edit_pull, list_pulls, merge_pull, pull_by_branches, state_matches, with_pull,
};
use super::webhook;
use super::wire::{self, api_error, now_rfc3339};
use super::{RecordedRequest, Shared, lock};

/// Where the API lives.
const API_PREFIX: &str = "/api/v1";

/// Every request lands here.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut record = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
    };
    let response = answer(&shared, &record);
    record.status = response.status().as_u16();
    lock(&shared.log).push(record);
    response
}

/// A reply: status and JSON body (`None` for an empty body).
pub(super) type Reply = (StatusCode, Option<Value>);

fn answer(shared: &Arc<Shared>, req: &RecordedRequest) -> Response {
    let base = shared.base_url.as_str();
    let Some(rest) = req.path.strip_prefix(API_PREFIX) else {
        return reply(not_found(base, "no such page"));
    };
    let expected = format!("token {}", shared.token);
    match req.header("authorization") {
        Some(given) if given == expected => {}
        Some(_) => return reply(error(StatusCode::UNAUTHORIZED, base, "invalid token")),
        None => return reply(error(StatusCode::UNAUTHORIZED, base, "token is required")),
    }
    if let Some(fault) = take_fault(shared, req) {
        let status =
            StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return reply(error(status, base, &fault.message));
    }
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let ["repos", owner, name, tail @ ..] = segments.as_slice() else {
        return reply(not_found(base, "no such endpoint"));
    };
    let full_name = format!("{}/{}", decode(owner), decode(name));
    let mut repos = lock(&shared.repos);
    let Some(repo) = repos.get_mut(&full_name) else {
        return reply(not_found(
            base,
            &format!("repository {full_name} does not exist"),
        ));
    };
    let body: Option<Value> = serde_json::from_str(&req.body).ok();
    let method = req.method.as_str();
    let query = parse_query(req.query.as_deref());
    let (status, value) = match (method, tail) {
        ("POST", ["branches"]) => create_branch(base, repo, body),
        ("GET", ["branches", branch @ ..]) if !branch.is_empty() => {
            get_branch(base, repo, &join(branch))
        }
        ("DELETE", ["branches", branch @ ..]) if !branch.is_empty() => {
            delete_branch(base, repo, &join(branch))
        }
        ("GET", ["commits", reference, "status"]) => {
            let sha = repo
                .resolve(&decode(reference))
                .unwrap_or_else(|| decode(reference));
            (StatusCode::OK, Some(repo.combined_json(base, &sha)))
        }
        ("GET", ["commits", reference, "statuses"]) => {
            let sha = repo
                .resolve(&decode(reference))
                .unwrap_or_else(|| decode(reference));
            let list: Vec<Value> = repo
                .statuses
                .iter()
                .rev()
                .filter(|s| s.sha == sha)
                .map(|s| repo.status_json(base, s))
                .collect();
            (StatusCode::OK, Some(Value::Array(list)))
        }
        ("POST", ["statuses", sha]) => create_status(shared, repo, &decode(sha), body),
        ("GET", ["pulls"]) => list_pulls(base, repo, &query),
        ("POST", ["pulls"]) => create_pull(shared, repo, body),
        ("GET", ["pulls", index]) if index.parse::<u64>().is_ok() => {
            with_pull(base, repo, index, |repo, pull| {
                (StatusCode::OK, Some(repo.pull_json(base, pull)))
            })
        }
        ("GET", ["pulls", index, "merge"]) if index.parse::<u64>().is_ok() => {
            with_pull(base, repo, index, |_, pull| {
                if pull.merged {
                    (StatusCode::NO_CONTENT, None)
                } else {
                    (StatusCode::NOT_FOUND, None)
                }
            })
        }
        ("POST", ["pulls", index, "merge"]) if index.parse::<u64>().is_ok() => {
            merge_pull(shared, repo, index, body)
        }
        ("PATCH", ["pulls", index]) if index.parse::<u64>().is_ok() => {
            edit_pull(base, repo, index, body)
        }
        ("POST", ["issues", index, "comments"]) if index.parse::<u64>().is_ok() => {
            let text = body
                .as_ref()
                .and_then(|b| b.get("body"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string();
            if text.is_empty() {
                unprocessable(base, "[Body]: Required")
            } else {
                let number = index.parse::<u64>().unwrap_or(0);
                repo.comments.push((number, text.clone()));
                let id = repo.comments.len();
                (
                    StatusCode::CREATED,
                    Some(serde_json::json!({"id": id, "body": text})),
                )
            }
        }
        ("GET", ["pulls", base_branch, head @ ..]) if !head.is_empty() => {
            pull_by_branches(base, repo, &decode(base_branch), &join(head))
        }
        _ => not_found(base, &format!("no route for {method} {}", req.path)),
    };
    let mut response = reply((status, value));
    if method == "GET" && tail == ["pulls"] {
        let total = repo
            .pulls
            .iter()
            .filter(|p| state_matches(p, &query))
            .count();
        if let Ok(v) = total.to_string().parse() {
            response.headers_mut().insert("x-total-count", v);
        }
    }
    response
}

/// The first queued fault matching `req`, removed from the queue.
fn take_fault(shared: &Shared, req: &RecordedRequest) -> Option<super::Fault> {
    let mut faults = lock(&shared.faults);
    let at = faults.iter().position(|f| {
        f.method.as_deref().is_none_or(|m| m == req.method) && req.path.contains(&f.path_contains)
    })?;
    faults.remove(at)
}

fn reply((status, body): Reply) -> Response {
    match body {
        Some(body) => (
            status,
            [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
            body.to_string(),
        )
            .into_response(),
        None => status.into_response(),
    }
}

pub(super) fn error(status: StatusCode, base: &str, message: &str) -> Reply {
    (status, Some(api_error(base, message)))
}

/// Gitea's API 404 body.
pub(super) fn not_found(base: &str, detail: &str) -> Reply {
    let mut body = api_error(base, "The target couldn't be found.");
    body["errors"] = json!([detail]);
    (StatusCode::NOT_FOUND, Some(body))
}

pub(super) fn unprocessable(base: &str, message: &str) -> Reply {
    error(StatusCode::UNPROCESSABLE_ENTITY, base, message)
}

/// A string field of a JSON body; empty when absent.
pub(super) fn field(body: &Option<Value>, key: &str) -> String {
    body.as_ref()
        .and_then(|b| b.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn create_branch(base: &str, repo: &mut Repo, body: Option<Value>) -> Reply {
    let name = field(&body, "new_branch_name");
    if name.is_empty() {
        return unprocessable(base, "[NewBranchName]: Required");
    }
    let mut old = field(&body, "old_ref_name");
    if old.is_empty() {
        old = field(&body, "old_branch_name");
    }
    if old.is_empty() {
        old = "main".to_string();
    }
    let Some(sha) = repo.resolve(&old) else {
        return not_found(base, &format!("The old ref {old:?} does not exist"));
    };
    match repo.create_branch(&name, &sha) {
        Ok(true) => (
            StatusCode::CREATED,
            Some(repo.branch_json(base, &name, &sha)),
        ),
        Ok(false) => error(StatusCode::CONFLICT, base, "The branch already exists."),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, base, &e),
    }
}

fn get_branch(base: &str, repo: &Repo, branch: &str) -> Reply {
    match repo.branch_sha(branch) {
        Some(sha) => (StatusCode::OK, Some(repo.branch_json(base, branch, &sha))),
        None => not_found(base, &format!("branch {branch:?} does not exist")),
    }
}

fn delete_branch(base: &str, repo: &mut Repo, branch: &str) -> Reply {
    if branch == "main" {
        return error(StatusCode::FORBIDDEN, base, "can not delete default branch");
    }
    match repo.delete_branch(branch) {
        Ok(true) => (StatusCode::NO_CONTENT, None),
        Ok(false) => not_found(base, &format!("branch {branch:?} does not exist")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, base, &e),
    }
}

fn create_status(shared: &Arc<Shared>, repo: &mut Repo, sha: &str, body: Option<Value>) -> Reply {
    let base = shared.base_url.as_str();
    let state = field(&body, "state");
    if !model::STATES.contains(&state.as_str()) {
        return unprocessable(base, &format!("invalid commit status state {state:?}"));
    }
    let Some(full_sha) = repo.resolve(sha) else {
        return not_found(base, &format!("commit {sha:?} does not exist"));
    };
    let mut context = field(&body, "context");
    if context.is_empty() {
        context = "default".to_string();
    }
    let status = Status {
        id: shared.id(),
        sha: full_sha,
        state,
        target_url: field(&body, "target_url"),
        description: field(&body, "description"),
        context,
        created_at: now_rfc3339(),
    };
    repo.statuses.push(status.clone());
    let payload = webhook::status_payload(base, repo, &status);
    deliver_later(shared, "status", "status", payload);
    (StatusCode::CREATED, Some(repo.status_json(base, &status)))
}

/// Sends a webhook in the background, as Gitea's hook queue does, and records the answer.
pub(super) fn deliver_later(
    shared: &Arc<Shared>,
    event: &'static str,
    event_type: &'static str,
    payload: Value,
) {
    let Some(target) = lock(&shared.webhook).clone() else {
        return;
    };
    let uuid = wire::delivery_uuid(shared.id());
    let (headers, body) = webhook::signed(&target.secret, &uuid, event, event_type, &payload);
    let shared = shared.clone();
    tokio::spawn(async move {
        let delivery = webhook::send(&target.url, &headers, body).await;
        lock(&shared.deliveries).push(delivery);
    });
}

fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Raw path segments joined back with `/` and percent-decoded, for routes whose last part
/// is a branch name that may contain slashes.
fn join(segments: &[&str]) -> String {
    decode(&segments.join("/"))
}

/// Percent-decoding; `+` stays as it is, since paths do not use it for spaces.
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_percent_decoded() {
        assert_eq!(decode("feature%2FX-1"), "feature/X-1");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(join(&["feature", "X-1"]), "feature/X-1");
    }
}
