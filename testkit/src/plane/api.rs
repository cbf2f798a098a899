//! The REST side of the fake: routes by hand so every request is logged, then checks the
//! token, injected faults and the path, and answers with the shapes and errors Plane's API
//! v1 views produce. Handlers only parse and shape; the data changes live in [`Board`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::board::Board;
use super::model::{CommentRec, new_id, now_iso};
use super::paginate::paginate;
use super::{PlaneFault, PlaneRequest, Shared, lock};

/// Plane's `ObjectDoesNotExist` answer.
const NOT_FOUND: &str = "The requested resource does not exist.";

/// Every request lands here.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut record = PlaneRequest {
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: parse_query(uri.query().unwrap_or("")),
        headers: headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect(),
        body: serde_json::from_slice(&body).ok(),
        status: 0,
    };
    let response = answer(&shared, &record);
    record.status = response.status().as_u16();
    lock(&shared.log).push(record);
    response
}

/// The answer to one request: authentication, then faults, then the route.
fn answer(shared: &Shared, request: &PlaneRequest) -> Response {
    let Some(rest) = request.path.strip_prefix("/api/v1/") else {
        return error(StatusCode::NOT_FOUND, "error", NOT_FOUND);
    };
    let user = match request.api_key() {
        None => {
            let detail = "Authentication credentials were not provided.";
            return error(StatusCode::FORBIDDEN, "detail", detail);
        }
        Some(token) => match shared.user_for_token(token) {
            Some(user) => user,
            None => {
                return error(
                    StatusCode::FORBIDDEN,
                    "detail",
                    "Given API token is not valid",
                );
            }
        },
    };
    if shared.down.load(std::sync::atomic::Ordering::SeqCst) {
        return fault_response(&PlaneFault::ServerError);
    }
    if let Some(fault) = lock(&shared.faults).pop_front() {
        return fault_response(&fault);
    }
    // Django's routes all end in a slash; without one nothing matches.
    let Some(rest) = rest.strip_suffix('/') else {
        return error(StatusCode::NOT_FOUND, "error", NOT_FOUND);
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut board = lock(&shared.board);
    let route = Route {
        request,
        workspace: &shared.workspace_id,
    };
    match segments.as_slice() {
        ["workspaces", slug, "projects", project, tail @ ..] if *slug == shared.slug => {
            if board.project(project).is_none() {
                return error(StatusCode::NOT_FOUND, "error", NOT_FOUND);
            }
            route.project(&mut board, project, tail, &user.id)
        }
        ["workspaces", slug, "issues" | "work-items", key] if *slug == shared.slug => {
            match request.method.as_str() {
                "GET" => route.by_identifier(&board, key),
                other => not_allowed(other),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "error", NOT_FOUND),
    }
}

/// What a route handler needs besides the board.
struct Route<'a> {
    /// The request being answered.
    request: &'a PlaneRequest,
    /// The workspace's UUID, rendered into objects.
    workspace: &'a str,
}

impl Route<'_> {
    /// Everything under `projects/{project}/`.
    fn project(&self, board: &mut Board, project: &str, tail: &[&str], user: &str) -> Response {
        let method = self.request.method.as_str();
        match (method, tail) {
            ("GET", ["states"]) => {
                let items = board
                    .states_of(project)
                    .iter()
                    .map(|s| s.api(self.workspace))
                    .collect();
                self.page(items)
            }
            ("GET", ["labels"]) => {
                let items = board
                    .labels
                    .iter()
                    .filter(|l| l.project == project)
                    .map(|l| l.api(self.workspace))
                    .collect();
                self.page(items)
            }
            ("GET", ["issues" | "work-items"]) => {
                let items = board
                    .issues
                    .iter()
                    .filter(|i| i.project == project)
                    .map(|i| self.issue_json(board, i))
                    .collect();
                self.page(items)
            }
            ("GET", ["issues" | "work-items", issue]) => match board.issue_in(project, issue) {
                Some(found) => ok(self.issue_json(board, found)),
                None => error(StatusCode::NOT_FOUND, "error", NOT_FOUND),
            },
            ("PATCH", ["issues" | "work-items", issue]) => self.patch(board, project, issue),
            ("GET", ["issues" | "work-items", issue, "comments"]) => {
                if board.issue_in(project, issue).is_none() {
                    return error(StatusCode::NOT_FOUND, "error", NOT_FOUND);
                }
                let items = board
                    .comments
                    .iter()
                    .filter(|c| c.issue == *issue)
                    .map(|c| c.api(self.workspace).to_value())
                    .collect();
                self.page(items)
            }
            ("POST", ["issues" | "work-items", issue, "comments"]) => {
                self.comment(board, project, issue, user)
            }
            (_, ["states" | "labels"] | ["issues" | "work-items", ..]) => not_allowed(method),
            _ => error(StatusCode::NOT_FOUND, "error", NOT_FOUND),
        }
    }

    /// `GET workspaces/{slug}/work-items/{IDENT}-{seq}/`.
    fn by_identifier(&self, board: &Board, key: &str) -> Response {
        let found = key.rsplit_once('-').and_then(|(ident, seq)| {
            let seq: i64 = seq.parse().ok()?;
            let project = board.projects.iter().find(|p| p.identifier == ident)?;
            board
                .issues
                .iter()
                .find(|i| i.project == project.id && i.sequence_id == seq)
        });
        match found {
            Some(issue) => ok(self.issue_json(board, issue)),
            None => error(StatusCode::NOT_FOUND, "error", NOT_FOUND),
        }
    }

    /// An issue as the API shows it, honouring `?expand=state`.
    fn issue_json(&self, board: &Board, issue: &super::IssueRec) -> Value {
        let expand = self.request.query.get("expand").map_or("", String::as_str);
        let state = expand
            .split(',')
            .any(|e| e.trim() == "state")
            .then(|| board.state(&issue.state).map(|s| s.lite().to_value()))
            .flatten();
        issue.api(self.workspace, state)
    }

    /// `PATCH …/issues/{id}/`: the fields the orchestrator writes, validated as the
    /// serializer does.
    fn patch(&self, board: &mut Board, project: &str, issue: &str) -> Response {
        if board.issue_in(project, issue).is_none() {
            return error(StatusCode::NOT_FOUND, "error", NOT_FOUND);
        }
        let Some(Value::Object(body)) = self.request.body.as_ref() else {
            let detail = "JSON parse error - Expecting value: line 1 column 1 (char 0)";
            return error(StatusCode::BAD_REQUEST, "detail", detail);
        };
        if let Some(state) = body.get("state") {
            let Some(state) = state.as_str() else {
                return field_error("state", "Incorrect type. Expected pk value.");
            };
            match board.state(state) {
                None => {
                    let message = format!("Invalid pk \"{state}\" - object does not exist.");
                    return field_error("state", &message);
                }
                Some(found) if found.project != project => {
                    let message = "State is not valid please pass a valid state_id";
                    return field_error("non_field_errors", message);
                }
                Some(_) => {}
            }
        }
        if let Some(priority) = body.get("priority") {
            let valid = ["urgent", "high", "medium", "low", "none"];
            if !priority.as_str().is_some_and(|p| valid.contains(&p)) {
                let message = format!("\"{}\" is not a valid choice.", value_text(priority));
                return field_error("priority", &message);
            }
        }
        let project_labels: Vec<String> = board
            .labels
            .iter()
            .filter(|l| l.project == project)
            .map(|l| l.id.clone())
            .collect();
        if let Some(state) = body.get("state").and_then(Value::as_str) {
            board.set_state(issue, state);
        }
        let Some(record) = board.issue_mut(issue) else {
            return error(StatusCode::NOT_FOUND, "error", NOT_FOUND);
        };
        if let Some(name) = body.get("name").and_then(Value::as_str) {
            record.name = name.to_string();
        }
        if let Some(html) = body.get("description_html").and_then(Value::as_str) {
            record.description_html = html.to_string();
        }
        if let Some(priority) = body.get("priority").and_then(Value::as_str) {
            record.priority = priority.to_string();
        }
        if let Some(labels) = body.get("labels").and_then(Value::as_array) {
            // The set is replaced; labels of other projects are silently dropped.
            record.labels = labels
                .iter()
                .filter_map(Value::as_str)
                .filter(|l| project_labels.iter().any(|p| p == l))
                .map(str::to_string)
                .collect();
        }
        record.updated_at = now_iso();
        let updated = record.clone();
        ok(self.issue_json(board, &updated))
    }

    /// `POST …/issues/{id}/comments/`: 201 with the comment, written by the token's user.
    fn comment(&self, board: &mut Board, project: &str, issue: &str, user: &str) -> Response {
        if board.issue_in(project, issue).is_none() {
            return error(StatusCode::NOT_FOUND, "error", NOT_FOUND);
        }
        let html = self
            .request
            .body
            .as_ref()
            .and_then(|b| b.get("comment_html"))
            .and_then(Value::as_str);
        let Some(html) = html else {
            return field_error("comment_html", "This field is required.");
        };
        let comment = CommentRec {
            id: new_id(),
            issue: issue.to_string(),
            project: project.to_string(),
            actor: user.to_string(),
            comment_html: html.to_string(),
            created_at: now_iso(),
        };
        board.comments.push(comment.clone());
        let body = comment.api(self.workspace).to_value();
        (StatusCode::CREATED, axum::Json(body)).into_response()
    }

    /// A paginated list answer, or the paginator's 400.
    fn page(&self, items: Vec<Value>) -> Response {
        match paginate(&self.request.query, items) {
            Ok(page) => ok(page),
            Err(body) => (StatusCode::BAD_REQUEST, axum::Json(body)).into_response(),
        }
    }
}

/// The answer to an injected fault.
fn fault_response(fault: &PlaneFault) -> Response {
    match fault {
        PlaneFault::Throttle { retry_after_s } => {
            let detail =
                format!("Request was throttled. Expected available in {retry_after_s} seconds.");
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "detail", &detail);
            if let Ok(value) = HeaderValue::from_str(&retry_after_s.to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
        PlaneFault::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            "Something went wrong please try again later",
        ),
    }
}

fn ok(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `{key: message}` with `status`, the shape of DRF's `detail` and Plane's `error` answers.
fn error(status: StatusCode, key: &str, message: &str) -> Response {
    (status, axum::Json(json!({ key: message }))).into_response()
}

/// A serializer error: 400 `{field: [message]}`.
fn field_error(field: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ field: [message] })),
    )
        .into_response()
}

/// DRF's 405 for a method a route does not serve.
fn not_allowed(method: &str) -> Response {
    let detail = format!("Method \"{method}\" not allowed.");
    error(StatusCode::METHOD_NOT_ALLOWED, "detail", &detail)
}

/// A JSON value as Python's `str()` would show it in a message.
fn value_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

/// `a=1&b=x%3Ay` → `{a: "1", b: "x:y"}`, `+` read as a space.
fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(raw: &str) -> String {
    // A literal `+` arrives as `%2B`, so every bare one is a space.
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_percent_decoded() {
        let query = parse_query("per_page=2&cursor=2%3A1%3A0&q=a+b&bad=%zz&end=%4");
        assert_eq!(query["per_page"], "2");
        assert_eq!(query["cursor"], "2:1:0");
        assert_eq!(query["q"], "a b");
        assert_eq!(query["bad"], "%zz");
        assert_eq!(query["end"], "%4");
    }
}
