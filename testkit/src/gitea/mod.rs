//! A loopback fake of the Gitea REST API (`/api/v1`) and its webhooks, faithful to the
//! contract in `shared/contracts/gitea.md`: branches, commit statuses, pull requests and
//! merges — backed by a real bare git repo when given one — with fault injection, a log of
//! every request, and signed webhook deliveries to a receiver under test.
//!
//! Like the Anthropic stub it serves from a thread and runtime of its own, so sync and async
//! tests use it alike; the webhook emitters are `async` because the receiver usually runs on
//! the test's own runtime.

mod api;
mod git;
mod model;
mod pulls;
mod webhook;
mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};

use crate::server::{Loopback, Server};

pub use git::{commit_to_branch, init_bare_repo, is_ancestor};
pub use webhook::{Delivery, WebhookError, WebhookTarget, hmac_sha256_hex};
pub use wire::go_indent;

/// The token a [`GiteaFakeConfig::default`] accepts.
pub const DEFAULT_TOKEN: &str = "gitea-fake-token";

/// How long dropping the fake waits for answers in flight before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How a [`GiteaFake`] starts.
#[derive(Clone, Debug)]
pub struct GiteaFakeConfig {
    /// The only token accepted in `Authorization: token <TOKEN>`.
    pub token: String,
    /// Where webhooks go from the start; [`GiteaFake::set_webhook`] changes it later.
    pub webhook: Option<WebhookTarget>,
}

impl Default for GiteaFakeConfig {
    /// Accepts [`DEFAULT_TOKEN`]; sends no webhooks.
    fn default() -> Self {
        Self {
            token: DEFAULT_TOKEN.to_string(),
            webhook: None,
        }
    }
}

/// An error the fake answers with instead of serving a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The HTTP method it applies to; `None` for any.
    pub method: Option<String>,
    /// A substring the request path must contain, e.g. `/merge`.
    pub path_contains: String,
    /// The status answered.
    pub status: u16,
    /// The `message` of the `APIError` body.
    pub message: String,
}

/// One request the fake received, and what it answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query, e.g. `/api/v1/repos/o/r/pulls/1/merge`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Every header, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// The raw body, lossily decoded.
    pub body: String,
    /// The HTTP status answered.
    pub status: u16,
}

impl RecordedRequest {
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Whether this is a merge request (`POST …/pulls/{index}/merge`).
    pub fn is_merge(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/merge")
    }
}

/// State shared by the handler and the test.
pub(crate) struct Shared {
    /// `http://127.0.0.1:<port>`.
    base_url: String,
    /// The accepted token.
    token: String,
    /// Repositories by `owner/name`.
    repos: Mutex<BTreeMap<String, model::Repo>>,
    /// Faults waiting for matching requests, oldest first.
    faults: Mutex<VecDeque<Fault>>,
    /// Every request received.
    log: Mutex<Vec<RecordedRequest>>,
    /// Webhooks sent on the fake's own initiative (status posted, PR merged).
    deliveries: Mutex<Vec<Delivery>>,
    /// Where webhooks go.
    webhook: Mutex<Option<WebhookTarget>>,
    /// Source of ids (repos, statuses, pull requests, deliveries).
    next_id: AtomicU64,
}

impl Shared {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake on `127.0.0.1:<ephemeral port>`. Dropping it shuts the server down.
pub struct GiteaFake {
    /// State shared with the handler.
    shared: Arc<Shared>,
    /// The server thread; dropping it stops the server.
    _server: Server,
}

impl GiteaFake {
    /// Binds `127.0.0.1:0` and starts serving on a thread of its own.
    ///
    /// # Panics
    /// When the loopback port cannot be bound or the thread cannot start.
    pub fn start(config: GiteaFakeConfig) -> GiteaFake {
        let port = Loopback::bind("gitea fake");
        let addr = port.addr();
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            token: config.token,
            repos: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            deliveries: Mutex::new(Vec::new()),
            webhook: Mutex::new(config.webhook),
            next_id: AtomicU64::new(0),
        });
        let app = Router::new()
            .fallback(api::handle)
            .with_state(shared.clone());
        GiteaFake {
            shared,
            _server: port.serve(app, Some(SHUTDOWN_GRACE)),
        }
    }

    /// `http://127.0.0.1:<port>`, the Gitea base URL (the API is under `/api/v1`).
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The token the fake accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Adds repository `full_name` (`owner/name`). With `bare`, a bare git repo holding at
    /// least `main`, branches, refs and merges are real git on it; without, branches live in
    /// memory and `main` starts at an invented sha.
    pub fn add_repo(&self, full_name: &str, bare: Option<PathBuf>) {
        let repo = model::Repo::new(self.shared.id(), full_name, bare);
        lock(&self.shared.repos).insert(full_name.to_string(), repo);
    }

    /// The sha `branch` of `repo` points at, if both exist.
    pub fn branch_sha(&self, repo: &str, branch: &str) -> Option<String> {
        lock(&self.shared.repos).get(repo)?.branch_sha(branch)
    }

    /// Points `branch` of a memory-mode `repo` at `sha` (creating it), as a push would.
    ///
    /// # Panics
    /// When the repo is unknown or backed by a bare repo (push to it with git instead).
    pub fn set_branch(&self, repo: &str, branch: &str, sha: &str) {
        let mut repos = lock(&self.shared.repos);
        let repo = repos
            .get_mut(repo)
            .unwrap_or_else(|| panic!("gitea fake: no repo {repo:?}"));
        assert!(
            repo.bare.is_none(),
            "gitea fake: {} is backed by a bare repo; push to it with git",
            repo.full_name
        );
        repo.branches.insert(branch.to_string(), sha.to_string());
    }

    /// Records a commit status on `sha` as `POST /statuses/{sha}` would, without sending
    /// a webhook.
    ///
    /// # Panics
    /// When the repo is unknown.
    pub fn set_status(&self, repo: &str, sha: &str, state: &str, context: &str, description: &str) {
        let status = self.new_status(sha, state, context, description);
        let mut repos = lock(&self.shared.repos);
        let repo = repos
            .get_mut(repo)
            .unwrap_or_else(|| panic!("gitea fake: no repo {repo:?}"));
        repo.statuses.push(status);
    }

    fn new_status(
        &self,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
    ) -> model::Status {
        model::Status {
            id: self.shared.id(),
            sha: sha.to_string(),
            state: state.to_string(),
            target_url: format!("{}/ci/{sha}", self.shared.base_url),
            description: description.to_string(),
            context: context.to_string(),
            created_at: wire::now_rfc3339(),
        }
    }

    /// Pull request `index` of `repo` as the API would return it.
    pub fn pull(&self, repo: &str, index: u64) -> Option<Value> {
        let mut repos = lock(&self.shared.repos);
        let repo = repos.get_mut(repo)?;
        repo.refresh_pulls();
        let pull = repo.pulls.iter().find(|p| p.number == index)?;
        Some(repo.pull_json(&self.shared.base_url, pull))
    }

    /// Closes pull request `index` of `repo` without merging; `false` if there is none.
    pub fn close_pull(&self, repo: &str, index: u64) -> bool {
        let mut repos = lock(&self.shared.repos);
        let Some(pull) = repos.get_mut(repo).and_then(|r| r.pull_mut(index)) else {
            return false;
        };
        pull.state = "closed".to_string();
        pull.closed_at = Some(wire::now_rfc3339());
        pull.updated_at = wire::now_rfc3339();
        true
    }

    /// Queues `fault` for the first later request that matches it.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Queues an answer of `status` with `message` (e.g. 405 "Please try again later") for
    /// the next `POST …/pulls/{index}/merge`.
    pub fn push_merge_fault(&self, status: u16, message: &str) {
        self.push_fault(Fault {
            method: Some("POST".to_string()),
            path_contains: "/merge".to_string(),
            status,
            message: message.to_string(),
        });
    }

    /// Queues an answer of `status` with `message` for the next combined-status read.
    pub fn push_status_fault(&self, status: u16, message: &str) {
        self.push_fault(Fault {
            method: Some("GET".to_string()),
            path_contains: "/status".to_string(),
            status,
            message: message.to_string(),
        });
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// The merge requests received so far.
    pub fn merge_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_merge)
            .collect()
    }

    /// Sets (or, with `None`, clears) where webhooks go.
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        *lock(&self.shared.webhook) = target;
    }

    /// Webhooks the fake sent on its own (after a status was posted or a PR merged through
    /// the API), with the receiver's answers, in the order they completed.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared.deliveries).clone()
    }

    /// Waits up to `timeout` for the fake to have sent `count` webhooks on its own; returns
    /// them (fewer on timeout).
    pub async fn wait_deliveries(&self, count: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let sent = self.deliveries();
            if sent.len() >= count || tokio::time::Instant::now() >= deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The headers and exact body bytes Gitea would send for `payload` as `event`
    /// (`X-Gitea-Event`) / `event_type` (`X-Gitea-Event-Type`), signed with the configured
    /// secret (empty when no target is set), for replay and tamper tests.
    pub fn signed_delivery(
        &self,
        event: &str,
        event_type: &str,
        payload: &Value,
    ) -> (Vec<(String, String)>, Vec<u8>) {
        let secret = lock(&self.shared.webhook)
            .as_ref()
            .map(|t| t.secret.clone())
            .unwrap_or_default();
        let uuid = wire::delivery_uuid(self.shared.id());
        webhook::signed(&secret, &uuid, event, event_type, payload)
    }

    /// POSTs `body` with `headers` (as from [`signed_delivery`](Self::signed_delivery),
    /// possibly altered) to the webhook target.
    pub async fn send_delivery(
        &self,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Delivery, WebhookError> {
        let url = self.target()?.url;
        Ok(webhook::send(&url, headers, body).await)
    }

    fn target(&self) -> Result<WebhookTarget, WebhookError> {
        lock(&self.shared.webhook)
            .clone()
            .ok_or(WebhookError::NoTarget)
    }

    async fn emit(
        &self,
        event: &str,
        event_type: &str,
        payload: Value,
    ) -> Result<Delivery, WebhookError> {
        self.target()?;
        let (headers, body) = self.signed_delivery(event, event_type, &payload);
        self.send_delivery(&headers, body).await
    }

    /// Records status `state` for `context` on `sha` (so the API agrees with the hook) and
    /// sends the `status` webhook; returns the receiver's answer.
    pub async fn emit_status(
        &self,
        repo: &str,
        sha: &str,
        state: &str,
        context: &str,
    ) -> Result<Delivery, WebhookError> {
        self.target()?;
        let status = self.new_status(sha, state, context, &format!("{context} is {state}"));
        let payload = {
            let mut repos = lock(&self.shared.repos);
            let r = repos.get_mut(repo).ok_or_else(|| unknown_repo(repo))?;
            r.statuses.push(status.clone());
            webhook::status_payload(&self.shared.base_url, r, &status)
        };
        self.emit("status", "status", payload).await
    }

    /// Sends `pull_request` action `closed` for PR `index`, with `merged` as given (and the
    /// PR shown closed). The fake's own state is not changed: merge through the API or
    /// [`close_pull`](Self::close_pull) for that.
    pub async fn emit_pull_request_closed(
        &self,
        repo: &str,
        index: u64,
        merged: bool,
    ) -> Result<Delivery, WebhookError> {
        self.target()?;
        let payload = self.pull_payload(repo, index, |pull| {
            pull.state = "closed".to_string();
            pull.merged = merged;
            if pull.closed_at.is_none() {
                pull.closed_at = Some(wire::now_rfc3339());
            }
            if merged && pull.merged_at.is_none() {
                pull.merged_at = pull.closed_at.clone();
            }
            ("closed", None)
        })?;
        self.emit("pull_request", "pull_request", payload).await
    }

    /// Sends `pull_request` action `closed`, merged, for PR `index` as if it had been
    /// retargeted to `base` and merged there by hand (the fake's own state is not changed).
    pub async fn emit_pull_request_merged_into(
        &self,
        repo: &str,
        index: u64,
        base: &str,
    ) -> Result<Delivery, WebhookError> {
        self.target()?;
        let payload = self.pull_payload(repo, index, |pull| {
            pull.state = "closed".to_string();
            pull.merged = true;
            pull.base = base.to_string();
            let now = wire::now_rfc3339();
            pull.closed_at = Some(now.clone());
            pull.merged_at = Some(now);
            ("closed", None)
        })?;
        self.emit("pull_request", "pull_request", payload).await
    }

    /// Sends a review of PR `index`: `pull_request_approved` or `pull_request_rejected`,
    /// action `reviewed`, `review: {type, content}`.
    pub async fn emit_review(
        &self,
        repo: &str,
        index: u64,
        approved: bool,
        content: &str,
    ) -> Result<Delivery, WebhookError> {
        self.target()?;
        let (event, event_type) = if approved {
            ("pull_request_approved", "pull_request_review_approved")
        } else {
            ("pull_request_rejected", "pull_request_review_rejected")
        };
        let review = json!({ "type": event_type, "content": content });
        let payload = self.pull_payload(repo, index, |_| ("reviewed", Some(review)))?;
        self.emit(event, event_type, payload).await
    }

    /// Sends a `push` of `branch` from `before` to `after`.
    pub async fn emit_push(
        &self,
        repo: &str,
        branch: &str,
        before: &str,
        after: &str,
    ) -> Result<Delivery, WebhookError> {
        self.target()?;
        let payload = {
            let repos = lock(&self.shared.repos);
            let r = repos.get(repo).ok_or_else(|| unknown_repo(repo))?;
            webhook::push_payload(&self.shared.base_url, r, branch, before, after)
        };
        self.emit("push", "push", payload).await
    }

    /// A `PullRequestPayload` for PR `index` of `repo`; `shape` adjusts a copy of the PR and
    /// names the action and review.
    fn pull_payload(
        &self,
        repo: &str,
        index: u64,
        shape: impl FnOnce(&mut model::Pull) -> (&'static str, Option<Value>),
    ) -> Result<Value, WebhookError> {
        let mut repos = lock(&self.shared.repos);
        let r = repos.get_mut(repo).ok_or_else(|| unknown_repo(repo))?;
        r.refresh_pulls();
        let mut pull = r
            .pulls
            .iter()
            .find(|p| p.number == index)
            .cloned()
            .ok_or_else(|| WebhookError::Unknown(format!("no pull request #{index} in {repo}")))?;
        let (action, review) = shape(&mut pull);
        Ok(webhook::pull_request_payload(
            &self.shared.base_url,
            r,
            &pull,
            action,
            review,
        ))
    }
}

fn unknown_repo(repo: &str) -> WebhookError {
    WebhookError::Unknown(format!("no repo {repo:?}"))
}
