//! The dashboard's forms (POST): the login that exchanges the operator token for a session,
//! the logout, the operator actions on a task and a merge queue's freeze and thaw. Every form
//! carries a CSRF token checked here; an action needs a live session and goes through the
//! operator routes' own path (`operator::human_action` and `operator::perform`,
//! `repos::perform`). A refused form changes nothing.

use askama::Template;
use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{self, SESSION_TTL};
use super::{Chrome, LOGIN_COOKIE, PageError, SESSION_COOKIE, Viewer, cookie, render, set_cookie};
use crate::http::operator::{Given, human_action, perform, same_secret};
use crate::http::repos;
use crate::http::tasks::parse_id;
use crate::http::{ApiError, AppState};

/// How long a login form may be left open before it is sent.
const LOGIN_FORM_TTL_S: u64 = 600;

/// What actions are refused with while no operator token is configured.
fn disabled() -> PageError {
    PageError(ApiError {
        status: StatusCode::FORBIDDEN,
        message: "operator actions are disabled: set ORCH_OPERATOR_TOKEN (in the environment or \
                  .env) and restart the service to enable them"
            .into(),
    })
}

/// A form body that could not be read, naming what was wrong with it.
fn bad_form(e: FormRejection) -> PageError {
    PageError(ApiError {
        status: if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        } else {
            StatusCode::BAD_REQUEST
        },
        message: format!("the form is not valid: {}", e.body_text()),
    })
}

/// A form's CSRF token that is not the one expected.
fn csrf_mismatch(what: &str) -> PageError {
    PageError(ApiError {
        status: StatusCode::FORBIDDEN,
        message: format!(
            "the form's csrf field does not match {what}; reload the page and send the form again"
        ),
    })
}

/// Only a path on this site is a place to go back to after the login.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.into(),
        _ => "/".into(),
    }
}

/// The login page.
#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    /// The frame.
    chrome: Chrome,
    /// The login form's CSRF token (also in its cookie).
    login_csrf: String,
    /// Where to go after logging in.
    next: String,
}

/// The login page's query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginQuery {
    /// Where to go after logging in.
    #[serde(default)]
    next: Option<String>,
}

/// `GET /ui/login`: the form, with a fresh CSRF token in a short-lived cookie.
pub(super) async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let viewer = Viewer::of(&state, &headers).await;
    let chrome = Chrome::new("Log in", "", "/ui/login", "", &viewer);
    let nonce = chrome.nonce.clone();
    let login_csrf = session::random_token();
    let mut response = render(
        StatusCode::OK,
        &nonce,
        &LoginPage {
            chrome,
            login_csrf: login_csrf.clone(),
            next: local_path(query.next.as_deref()),
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &login_csrf, "/ui/login", LOGIN_FORM_TTL_S),
    );
    Ok(response)
}

/// The login form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginForm {
    /// The operator token (`ORCH_OPERATOR_TOKEN`).
    token: String,
    /// The login form's CSRF token.
    csrf: String,
    /// Where to go after logging in.
    #[serde(default)]
    next: Option<String>,
}

/// `POST /ui/login`: the operator token for a session cookie.
pub(super) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Some(expected) = state.operator_token.as_deref() else {
        return Err(disabled());
    };
    let Form(form) = form.map_err(bad_form)?;
    match cookie(&headers, LOGIN_COOKIE) {
        Some(issued) if same_secret(&form.csrf, issued) => {}
        _ => {
            return Err(csrf_mismatch(
                "the login form's cookie (it lasts 10 minutes)",
            ));
        }
    }
    if !same_secret(&form.token, expected) {
        return Err(PageError(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "wrong operator token: the token field must be ORCH_OPERATOR_TOKEN".into(),
        }));
    }
    let session = state
        .dashboard
        .sessions
        .open()
        .await
        .ok_or_else(|| ApiError::unavailable("the service is stopping"))?;
    let mut response = Redirect::to(&local_path(form.next.as_deref())).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &session.id, "/", SESSION_TTL.as_secs()),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/ui/login", 0),
    );
    Ok(response)
}

/// A form sent from a page with a session: just its CSRF token, and a reason where the
/// action takes one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActionForm {
    /// The session's CSRF token.
    csrf: String,
    /// Why (a reject needs one; a stop may have one).
    #[serde(default)]
    reason: Option<String>,
    /// A retry's note for the next agent.
    #[serde(default)]
    note: Option<String>,
}

/// The live session the request's cookie names; refused without one.
async fn session_of(state: &AppState, headers: &HeaderMap) -> Result<super::Session, PageError> {
    if state.operator_token.is_none() {
        return Err(disabled());
    }
    Viewer::of(state, headers).await.session.ok_or_else(|| {
        PageError(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "no operator session: log in at /ui/login with the operator token \
                      (ORCH_OPERATOR_TOKEN) first"
                .into(),
        })
    })
}

/// A form that carries the session's CSRF token.
trait Signed {
    /// The token the form carries.
    fn csrf(&self) -> &str;
}

impl Signed for ActionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Signed for RepoForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The form of a request with a live session, read and checked against its CSRF token.
async fn checked_form<T: Signed>(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<(super::Session, T), PageError> {
    let session = session_of(state, headers).await?;
    let Form(form) = form.map_err(bad_form)?;
    if !same_secret(form.csrf(), &session.csrf) {
        return Err(csrf_mismatch("your session's"));
    }
    Ok((session, form))
}

/// `POST /ui/logout`.
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (session, _) = checked_form(&state, &headers, form).await?;
    state.dashboard.sessions.close(&session.id).await;
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", "/", 0));
    Ok(response)
}

/// `POST /ui/tasks/{id}/{action}`: an operator action from a task's page. Session and CSRF
/// first, then the action exactly as `POST /tasks/{id}/{action}` takes it; back to the
/// task's page, which says whether it changed anything.
pub(super) async fn act(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((raw, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (_, form) = checked_form(&state, &headers, form).await?;
    let id = parse_id(&raw)?;
    // An empty field is none at all: a reject is refused, a stop gets the default reason, a
    // retry goes without a note.
    let given = Given {
        reason: form.reason.as_deref().filter(|r| !r.trim().is_empty()),
        note: form.note.as_deref().filter(|n| !n.trim().is_empty()),
    };
    let human = human_action(
        &action,
        given,
        "a reason is required to reject: fill in the reason field",
    )?;
    let reply = perform(&state, &id, human).await?;
    let mut response = Redirect::to(&format!(
        "/ui/tasks/{id}?did={action}&changed={}",
        reply.changed
    ))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A form of the queue's page: freeze or thaw a repository's merge queue.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RepoForm {
    /// The session's CSRF token.
    csrf: String,
    /// The configured project's repository.
    repo: String,
    /// Why (a freeze needs one).
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /ui/merge-queue/{action}` (`freeze`, `unfreeze`): a repository's merge queue from
/// the queue's page, through the same path as `POST /repos/{repo}/merge-queue/{action}`;
/// back to the queue's page, which says whether it changed anything.
pub(super) async fn merge_queue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    form: Result<Form<RepoForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (_, form) = checked_form(&state, &headers, form).await?;
    let reason = form.reason.as_deref().filter(|r| !r.trim().is_empty());
    if action == "freeze" && reason.is_none() {
        return Err(ApiError::bad_request(
            "a reason is required to freeze: fill in the reason field",
        )
        .into());
    }
    let reply = repos::perform(&state, &form.repo, &action, reason, None).await?;
    let mut response =
        Redirect::to(&format!("/ui/queue?did={action}&changed={}", reply.changed)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
