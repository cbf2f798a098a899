//! The web dashboard at `/`: server-rendered pages (askama templates in `templates/dashboard/`,
//! every value escaped by them) of the board, a task, the queue and the actor tree, kept live
//! over Server-Sent Events with a small inline script, and the operator's actions as forms
//! behind a login (an HttpOnly, SameSite=Strict session cookie and a CSRF token per form).
//! It reads through the same store queries and actor RPCs as the JSON routes and acts only
//! through the operator routes' own path (`operator::perform`); its errors are HTML pages.

mod actions;
mod live;
mod pages;
mod session;
mod views;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use orchestrator_actors::ports::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::{ApiError, AppState};
use crate::store::SqliteStore;
use live::BoardFrame;
use session::{Session, Sessions};

/// The session cookie's name.
const SESSION_COOKIE: &str = "orch_session";
/// The login form's own CSRF cookie (there is no session yet to hold its token).
const LOGIN_COOKIE: &str = "orch_login";

/// Where a Plane issue's page is: the instance's address and the workspace's slug.
#[derive(Clone, Debug)]
pub struct PlaneWeb {
    /// The Plane instance's base URL (`ORCH_PLANE_API_URL`).
    pub url: String,
    /// The workspace slug (`ORCH_PLANE_WORKSPACE_SLUG`).
    pub workspace: String,
}

/// The dashboard's own state: the session owner, the board's feed and what stops its
/// streams. Both owners are work of this value: they end when the router holding it drops.
pub struct Dashboard {
    /// The session table's owner.
    sessions: Sessions,
    /// The board's latest rendering; only the feed sends on it.
    board: watch::Receiver<BoardFrame>,
    /// Ends every live stream when the service stops, so the HTTP drain does not wait on them.
    shutdown: CancellationToken,
    /// Links to Plane issues, when Plane is configured.
    plane: Option<PlaneWeb>,
    /// The session owner and the board feed, ended with this value.
    _owned: Vec<AbortOnDropHandle<()>>,
}

impl Dashboard {
    /// Starts the session owner and the board's feed over `store`'s tasks and `journal`'s
    /// spend; live streams end when `shutdown` is cancelled.
    pub fn start(
        store: Arc<dyn Store>,
        journal: Arc<SqliteStore>,
        plane: Option<PlaneWeb>,
        shutdown: CancellationToken,
    ) -> Dashboard {
        let (sessions, session_owner) = Sessions::start();
        let (board, feed) = live::start_board_feed(store, journal);
        Dashboard {
            sessions,
            board,
            shutdown,
            plane,
            _owned: vec![session_owner, feed],
        }
    }
}

/// The dashboard's routes. They are mounted outside the JSON error layer: their errors are
/// HTML pages a person reads.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::board))
        .route("/ui/tasks/{id}", get(pages::task))
        .route("/ui/queue", get(pages::queue))
        .route("/ui/actors", get(pages::actors))
        .route("/ui/runs/{run_id}/log", get(pages::run_log))
        .route("/ui/events/board", get(live::board))
        .route("/ui/events/tasks/{id}", get(live::task))
        .route("/ui/events/queue", get(live::queue))
        .route("/ui/events/actors", get(live::actors))
        .route("/ui/login", get(actions::login_form).post(actions::login))
        .route("/ui/logout", post(actions::logout))
        .route("/ui/tasks/{id}/{action}", post(actions::act))
        .route("/ui/merge-queue/{action}", post(actions::merge_queue))
}

/// Who is looking: whether actions are possible at all, and the operator's session if there
/// is one.
#[derive(Clone, Debug, Default)]
pub(super) struct Viewer {
    /// An operator token is configured.
    pub enabled: bool,
    /// The session the request's cookie names, if it is live.
    pub session: Option<Session>,
}

impl Viewer {
    /// Reads the request's session cookie and asks the session owner about it.
    pub(super) async fn of(state: &AppState, headers: &HeaderMap) -> Viewer {
        let enabled = state.operator_token.is_some();
        let session = match cookie(headers, SESSION_COOKIE) {
            Some(id) if enabled => state.dashboard.sessions.find(id).await,
            _ => None,
        };
        Viewer { enabled, session }
    }

    /// The CSRF token the page's forms carry; empty without a session.
    pub(super) fn csrf(&self) -> String {
        self.session
            .as_ref()
            .map(|s| s.csrf.clone())
            .unwrap_or_default()
    }
}

/// A short fingerprint of a live part's HTML: the page says which version it shows (`?v=`),
/// each event carries its own as its id (sent back as `Last-Event-ID` on a reconnect), and a
/// stream sends nothing the page already shows.
pub(super) fn version(html: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    html.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The value of cookie `name` in the request, if it has one.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Strict always; `max_age` 0 removes it.
pub(super) fn set_cookie(name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    ))
    .expect("cookie values are hex tokens")
}

/// What every page's frame needs: its title, the navigation's current entry, who is looking
/// and the script's nonce.
pub(super) struct Chrome {
    /// The page's title.
    pub title: String,
    /// `board`, `queue`, `actors` or empty.
    pub nav: &'static str,
    /// Operator actions are configured.
    pub enabled: bool,
    /// An operator is logged in.
    pub logged_in: bool,
    /// The session's CSRF token, for the logout form.
    pub csrf: String,
    /// This page's path, for the login link to come back to.
    pub here: String,
    /// The live stream's path; empty for a page that does not follow one.
    pub events: String,
    /// The nonce the page's one script and style carry (see the Content-Security-Policy).
    pub nonce: String,
    /// An error page: no login state is shown.
    pub bare: bool,
}

impl Chrome {
    /// The frame of a page at `here` for `viewer`.
    pub(super) fn new(
        title: impl Into<String>,
        nav: &'static str,
        here: impl Into<String>,
        events: impl Into<String>,
        viewer: &Viewer,
    ) -> Chrome {
        Chrome {
            title: title.into(),
            nav,
            enabled: viewer.enabled,
            logged_in: viewer.session.is_some(),
            csrf: viewer.csrf(),
            here: here.into(),
            events: events.into(),
            nonce: session::random_token(),
            bare: false,
        }
    }
}

/// A rendered page with its headers: HTML, never cached, and a Content-Security-Policy that
/// lets only the page's own nonce'd script and style run.
pub(super) fn page(status: StatusCode, nonce: &str, html: String) -> Response {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// Renders `template` as a page, or an error page if it cannot be rendered.
pub(super) fn render(status: StatusCode, nonce: &str, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => page(status, nonce, html),
        Err(e) => {
            PageError(ApiError::internal(format!("cannot render the page: {e}"))).into_response()
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage {
    /// The frame (a read-only one: the error page offers no forms).
    chrome: Chrome,
    /// The status, e.g. `401 Unauthorized`.
    status: String,
    /// What was wrong, naming the field, id or key.
    message: String,
}

/// A dashboard error: the API's error, shown as an HTML page with the same status.
#[derive(Debug)]
pub(super) struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<orchestrator_actors::ports::StoreError> for PageError {
    fn from(e: orchestrator_actors::ports::StoreError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let ApiError { status, message } = self.0;
        let chrome = Chrome {
            bare: true,
            ..Chrome::new("Error", "", "/", "", &Viewer::default())
        };
        let nonce = chrome.nonce.clone();
        let body = ErrorPage {
            status: format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
            message: message.clone(),
            chrome,
        };
        match body.render() {
            Ok(html) => page(status, &nonce, html),
            // The page cannot fail to render; should it, the words still reach the reader.
            Err(_) => (status, message).into_response(),
        }
    }
}
