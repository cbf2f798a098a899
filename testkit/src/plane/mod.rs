//! A loopback fake of a self-hosted Plane: the API v1 endpoints the orchestrator calls
//! (states, labels, issues, comments) with Plane's auth, error and pagination shapes, fault
//! injection, a log of every request, and signed webhook deliveries in Plane's exact bytes.
//!
//! Like the Anthropic stub it serves on its own thread and runtime; webhook sends are `async`
//! and run on the caller's runtime. The shapes follow `/work/shared/contracts/plane.md`.

mod api;
mod board;
mod model;
mod paginate;
mod pyjson;
mod webhook;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use serde_json::Value;

use crate::server::{Loopback, Server};

use board::Board;

pub use board::DEFAULT_BOARD;
pub use model::{CommentRec, IssueRec, PlaneUser};
pub use pyjson::{Py, python_json, python_json_ordered};
pub use webhook::{Delivery, DeliveryReply, WebhookError, signature};

/// How the fake starts.
#[derive(Clone, Debug)]
pub struct PlaneFakeConfig {
    /// The workspace slug in every API path.
    pub workspace_slug: String,
    /// The API tokens accepted, each with the user it acts as; the first is the main one.
    pub api_tokens: Vec<(String, PlaneUser)>,
    /// Where webhooks are POSTed; can also be set later with
    /// [`PlaneFake::set_webhook_target`].
    pub webhook_url: Option<String>,
    /// The webhook's secret; empty means deliveries go unsigned.
    pub webhook_secret: String,
}

impl PlaneFakeConfig {
    /// A workspace `slug` whose main token `token` acts as a user named `orchestrator`, with
    /// a `plane_wh_…` secret like Plane generates and no webhook target yet.
    pub fn new(slug: &str, token: &str) -> PlaneFakeConfig {
        PlaneFakeConfig {
            workspace_slug: slug.to_string(),
            api_tokens: vec![(token.to_string(), PlaneUser::named("orchestrator"))],
            webhook_url: None,
            webhook_secret: format!("plane_wh_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Also accepts `token`, acting as a new user called `display_name` (a role's bot).
    pub fn with_token(mut self, token: &str, display_name: &str) -> PlaneFakeConfig {
        self.api_tokens
            .push((token.to_string(), PlaneUser::named(display_name)));
        self
    }

    /// Sends webhooks to `url`, signed with `secret` (empty: unsigned).
    pub fn with_webhook(mut self, url: Option<&str>, secret: &str) -> PlaneFakeConfig {
        self.webhook_url = url.map(str::to_string);
        self.webhook_secret = secret.to_string();
        self
    }
}

/// A fault answered instead of the next API request that passes authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlaneFault {
    /// DRF's throttle: 429 with `Retry-After: retry_after_s`.
    Throttle {
        /// Seconds announced in the body and the header.
        retry_after_s: u64,
    },
    /// Plane's catch-all 500 `{"error": "Something went wrong please try again later"}`.
    ServerError,
}

/// One request the fake received and what it answered.
#[derive(Clone, Debug)]
pub struct PlaneRequest {
    /// When it arrived.
    pub at: Instant,
    /// `GET`, `PATCH`, `POST`, …
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string, percent-decoded, by parameter name.
    pub query: BTreeMap<String, String>,
    /// Every header, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON; `None` when empty or not JSON.
    pub body: Option<Value>,
    /// The HTTP status answered.
    pub status: u16,
}

impl PlaneRequest {
    /// The value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The API token it carried.
    pub fn api_key(&self) -> Option<&str> {
        self.header("x-api-key")
    }
}

/// An API token the fake knows.
#[derive(Clone, Debug)]
struct ApiToken {
    /// The secret value sent in `X-Api-Key`.
    token: String,
    /// The user it acts as.
    user: PlaneUser,
    /// Revoked tokens answer 403 like unknown ones.
    revoked: bool,
}

/// State shared by the handler, the webhook sender and the test.
struct Shared {
    /// The workspace slug in every path.
    slug: String,
    /// The workspace's UUID, as in webhook envelopes and objects.
    workspace_id: String,
    /// The webhook's UUID, as in webhook envelopes.
    webhook_id: String,
    /// The webhook's secret; empty means unsigned.
    webhook_secret: String,
    /// Where webhooks go.
    webhook_url: Mutex<Option<String>>,
    /// Accepted tokens.
    tokens: Mutex<Vec<ApiToken>>,
    /// Users without a token (people moving cards), by id.
    people: Mutex<HashMap<String, PlaneUser>>,
    /// The data.
    board: Mutex<Board>,
    /// Faults for the next authenticated requests, oldest first.
    faults: Mutex<VecDeque<PlaneFault>>,
    /// While set, every authenticated API request answers Plane's catch-all 500.
    down: std::sync::atomic::AtomicBool,
    /// Every request received.
    log: Mutex<Vec<PlaneRequest>>,
}

impl Shared {
    /// The user behind a live token.
    fn user_for_token(&self, token: &str) -> Option<PlaneUser> {
        lock(&self.tokens)
            .iter()
            .find(|t| t.token == token && !t.revoked)
            .map(|t| t.user.clone())
    }

    /// Any user the fake knows, by id: a token's user or a person added by the test.
    fn user(&self, id: &str) -> Option<PlaneUser> {
        let by_token = lock(&self.tokens)
            .iter()
            .find(|t| t.user.id == id)
            .map(|t| t.user.clone());
        by_token.or_else(|| lock(&self.people).get(id).cloned())
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake on `127.0.0.1:<ephemeral port>`. Dropping it shuts the server down.
pub struct PlaneFake {
    /// Where it listens.
    addr: SocketAddr,
    /// State shared with the handler.
    shared: Arc<Shared>,
    /// The server thread; dropping it stops the server.
    _server: Server,
}

impl PlaneFake {
    /// Binds `127.0.0.1:0` and starts serving on a thread of its own.
    ///
    /// # Panics
    /// When the loopback port cannot be bound or the thread cannot start: a test cannot run
    /// without its fake.
    pub fn start(config: PlaneFakeConfig) -> PlaneFake {
        let port = Loopback::bind("plane fake");
        let addr = port.addr();
        let tokens = config
            .api_tokens
            .into_iter()
            .map(|(token, user)| ApiToken {
                token,
                user,
                revoked: false,
            })
            .collect();
        let shared = Arc::new(Shared {
            slug: config.workspace_slug,
            workspace_id: model::new_id(),
            webhook_id: model::new_id(),
            webhook_secret: config.webhook_secret,
            webhook_url: Mutex::new(config.webhook_url),
            tokens: Mutex::new(tokens),
            people: Mutex::new(HashMap::new()),
            board: Mutex::new(Board::default()),
            faults: Mutex::new(VecDeque::new()),
            down: std::sync::atomic::AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(api::handle)
            .with_state(shared.clone());
        PlaneFake {
            addr,
            shared,
            // Every answer is immediate: no grace period is needed.
            _server: port.serve(app, None),
        }
    }

    /// `http://127.0.0.1:<port>`; the API lives under `/api/v1/`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The workspace slug.
    pub fn workspace_slug(&self) -> &str {
        &self.shared.slug
    }

    /// The workspace's UUID.
    pub fn workspace_id(&self) -> &str {
        &self.shared.workspace_id
    }

    /// The webhook secret deliveries are signed with (empty: unsigned).
    pub fn webhook_secret(&self) -> &str {
        &self.shared.webhook_secret
    }

    /// Sends later webhooks to `url`.
    pub fn set_webhook_target(&self, url: &str) {
        *lock(&self.shared.webhook_url) = Some(url.to_string());
    }

    /// The user a token acts as (also for a revoked token).
    pub fn user_for_token(&self, token: &str) -> Option<PlaneUser> {
        lock(&self.shared.tokens)
            .iter()
            .find(|t| t.token == token)
            .map(|t| t.user.clone())
    }

    /// Registers a person without a token (someone moving cards in the UI); returns them.
    pub fn add_user(&self, display_name: &str) -> PlaneUser {
        let user = PlaneUser::named(display_name);
        lock(&self.shared.people).insert(user.id.clone(), user.clone());
        user
    }

    /// From now on `token` answers 403 "Given API token is not valid".
    pub fn revoke_token(&self, token: &str) {
        for t in lock(&self.shared.tokens).iter_mut() {
            if t.token == token {
                t.revoked = true;
            }
        }
    }

    /// The next `n` authenticated API requests answer 429 with `Retry-After: retry_after_s`.
    pub fn push_throttle(&self, n: usize, retry_after_s: u64) {
        let mut faults = lock(&self.shared.faults);
        faults.extend(std::iter::repeat_n(
            PlaneFault::Throttle { retry_after_s },
            n,
        ));
    }

    /// Queues `fault` for the next authenticated API request that finds no earlier one.
    pub fn push_fault(&self, fault: PlaneFault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// An outage: while `down`, every authenticated API request answers Plane's catch-all
    /// 500, whoever sends it.
    pub fn set_down(&self, down: bool) {
        self.shared
            .down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<PlaneRequest> {
        let mut log = lock(&self.shared.log).clone();
        log.sort_by_key(|r| r.at);
        log
    }

    /// A new project keyed `identifier` (e.g. `ACME`); its id.
    pub fn add_project(&self, identifier: &str) -> String {
        lock(&self.shared.board).add_project(identifier)
    }

    /// A new state at the end of the project's board; its id. The project's first state is
    /// its default.
    pub fn add_state(&self, project: &str, name: &str, group: &str) -> String {
        lock(&self.shared.board).add_state(project, name, group)
    }

    /// Every state of [`DEFAULT_BOARD`]; ids by name.
    pub fn default_board(&self, project: &str) -> HashMap<String, String> {
        self.default_board_without(project, &[])
    }

    /// The states of [`DEFAULT_BOARD`] except those named in `omit`; ids by name.
    pub fn default_board_without(&self, project: &str, omit: &[&str]) -> HashMap<String, String> {
        let mut board = lock(&self.shared.board);
        DEFAULT_BOARD
            .iter()
            .filter(|(name, _)| !omit.contains(name))
            .map(|(name, group)| (name.to_string(), board.add_state(project, name, group)))
            .collect()
    }

    /// A new label; its id.
    pub fn add_label(&self, project: &str, name: &str, color: &str) -> String {
        let mut board = lock(&self.shared.board);
        let id = model::new_id();
        board.labels.push(model::LabelRec {
            id: id.clone(),
            project: project.to_string(),
            name: name.to_string(),
            color: color.to_string(),
            created_at: model::now_iso(),
        });
        id
    }

    /// A new issue in the project's default state, numbered next in the project.
    ///
    /// # Panics
    /// When the project is unknown or has no states: the test set it up wrong.
    pub fn add_issue(
        &self,
        project: &str,
        name: &str,
        description_html: &str,
        labels: &[&str],
    ) -> IssueRec {
        lock(&self.shared.board)
            .add_issue(project, name, description_html, labels)
            .unwrap_or_else(|| panic!("plane fake: project {project} is unknown or has no states"))
    }

    /// A new comment by `actor_user_id` on an issue.
    ///
    /// # Panics
    /// When the issue is unknown: the test set it up wrong.
    pub fn add_comment(&self, issue: &str, actor_user_id: &str, html: &str) -> CommentRec {
        let mut board = lock(&self.shared.board);
        let project = board
            .issue(issue)
            .map(|i| i.project.clone())
            .unwrap_or_else(|| panic!("plane fake: no issue {issue}"));
        let comment = CommentRec {
            id: model::new_id(),
            issue: issue.to_string(),
            project,
            actor: actor_user_id.to_string(),
            comment_html: html.to_string(),
            created_at: model::now_iso(),
        };
        board.comments.push(comment.clone());
        comment
    }

    /// The issue as it is now.
    pub fn issue(&self, id: &str) -> Option<IssueRec> {
        lock(&self.shared.board).issue(id).cloned()
    }

    /// The name of the issue's current state.
    pub fn state_name_of(&self, issue: &str) -> Option<String> {
        let board = lock(&self.shared.board);
        let state = board.issue(issue)?.state.clone();
        board.state(&state).map(|s| s.name.clone())
    }

    /// The id of the project's state called `name`.
    pub fn state_id(&self, project: &str, name: &str) -> Option<String> {
        lock(&self.shared.board)
            .state_named(project, name)
            .map(|s| s.id.clone())
    }

    /// The comments on an issue, oldest first.
    pub fn comments(&self, issue: &str) -> Vec<CommentRec> {
        lock(&self.shared.board)
            .comments
            .iter()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }
}
