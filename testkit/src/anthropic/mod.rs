//! A loopback stub of the Anthropic Messages API for the real Claude Code CLI. It answers
//! `POST /v1/messages` by playing the role the orchestrator's prompt names (asking the CLI to
//! `Write` that role's artifacts), or with an injected [`Fault`], and logs every request.
//!
//! The stub runs on its own thread and runtime, so sync and async tests use it alike. It
//! shares the filesystem with the CLI it serves and looks at it for two things only: whether
//! a file it is about to have written exists (then it asks for a `Read` first, which the
//! CLI's `Write` tool demands), and the developer's current change file (so each run appends).

mod artifacts;
mod config;
mod prompt;
mod reply;
mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::server::{Loopback, Server};

pub use artifacts::FALLBACK_FILE;
pub use config::{Fault, StubConfig, USAGE_LIMIT_PREFIX, Verdicts, usage_limit_message};
pub use reply::{DONE, NO_WORKING_DIR, NO_WRITE_TOOL};

/// The only route the stub serves.
pub const MESSAGES_PATH: &str = "/v1/messages";

/// Request headers kept in [`RecordedRequest::headers`] (lowercase).
pub const RECORDED_HEADERS: [&str; 10] = [
    "anthropic-beta",
    "anthropic-version",
    "authorization",
    "content-type",
    "user-agent",
    "x-api-key",
    "x-app",
    "x-claude-code-session-id",
    "x-stainless-retry-count",
    "x-stainless-timeout",
];

/// How long dropping the stub waits for answers in flight (a [`Fault::Slow`] sleeping, a
/// client holding a stream) before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// One request the stub received, and what it answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// When it arrived, for measuring the spacing of retries.
    pub at: Instant,
    /// When it arrived, on the wall clock.
    pub at_system: SystemTime,
    /// `POST`, `HEAD`, …
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// The [`RECORDED_HEADERS`] the request carried, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON; `None` when empty or not JSON.
    pub body: Option<Value>,
    /// The HTTP status answered.
    pub status: u16,
    /// Whether the answer was an SSE stream.
    pub streamed: bool,
    /// The fault injected instead of (or, for [`Fault::Slow`], before) the normal answer.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    /// Whether this is a `POST /v1/messages` (any query string).
    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path.split('?').next() == Some(MESSAGES_PATH)
    }

    /// The value of a recorded header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// State shared by the handler and the test.
struct Shared {
    /// The configuration the stub started with.
    config: StubConfig,
    /// Faults waiting for the next `POST`s, oldest first.
    faults: Mutex<VecDeque<Fault>>,
    /// The fault every `POST` gets while set and the queue is empty.
    default_fault: Mutex<Option<Fault>>,
    /// Every request received.
    log: Mutex<Vec<RecordedRequest>>,
    /// Source of unique message, tool-use and request ids.
    next_id: AtomicU64,
}

impl Shared {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The fault for the next `POST`: the oldest queued one, else the default.
    fn take_fault(&self) -> Option<Fault> {
        lock(&self.faults)
            .pop_front()
            .or_else(|| lock(&self.default_fault).clone())
    }
}

/// A poisoned lock only means another test thread panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running stub on `127.0.0.1:<ephemeral port>`. Dropping it shuts the server down.
pub struct AnthropicStub {
    /// Where it listens.
    addr: SocketAddr,
    /// State shared with the handler.
    shared: Arc<Shared>,
    /// The server thread; dropping it stops the server.
    _server: Server,
}

impl AnthropicStub {
    /// Binds `127.0.0.1:0` and starts serving on a thread of its own.
    ///
    /// # Panics
    /// When the loopback port cannot be bound or the thread cannot start: a test cannot run
    /// without its stub.
    pub fn start(config: StubConfig) -> AnthropicStub {
        let port = Loopback::bind("anthropic stub");
        let addr = port.addr();
        let shared = Arc::new(Shared {
            default_fault: Mutex::new(config.default_fault.clone()),
            config,
            faults: Mutex::new(VecDeque::new()),
            log: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        AnthropicStub {
            addr,
            shared,
            _server: port.serve(app, Some(SHUTDOWN_GRACE)),
        }
    }

    /// `http://127.0.0.1:<port>`, the value for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request answered so far, in order of arrival (a [`Fault::Slow`] one is logged
    /// once its delay is over).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let mut log = lock(&self.shared.log).clone();
        log.sort_by_key(|r| r.at);
        log
    }

    /// The `POST /v1/messages` requests received so far, in order of arrival.
    pub fn messages_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_messages)
            .collect()
    }

    /// Queues `fault` for the next `POST /v1/messages` that finds no earlier fault queued.
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Sets (or, with `None`, clears) the fault every `POST /v1/messages` gets while the
    /// queue of [`push_fault`](Self::push_fault) is empty.
    pub fn set_default_fault(&self, fault: Option<Fault>) {
        *lock(&self.shared.default_fault) = fault;
    }
}

/// Every request lands here: the stub routes by hand so that everything gets logged.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (at, at_system) = (Instant::now(), SystemTime::now());
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let request_id = format!("req_stub{:06}", shared.id());
    let mut record = RecordedRequest {
        at,
        at_system,
        method: method.to_string(),
        path,
        headers: RECORDED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                Some((name.to_string(), value.to_string()))
            })
            .collect(),
        body: parsed,
        status: 200,
        streamed: false,
        fault: None,
    };
    let mut response = if !record.is_messages() {
        let message = format!("stub: no route for {} {}", record.method, record.path);
        error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            &message,
            &request_id,
        )
    } else {
        record.fault = shared.take_fault();
        match record.fault.as_ref() {
            Some(fault) => match fault_response(fault, &request_id) {
                Some(response) => response,
                None => {
                    if let Fault::Slow { delay } = fault {
                        tokio::time::sleep(*delay).await;
                    }
                    messages(&shared, &record, body.len(), &request_id)
                }
            },
            None => messages(&shared, &record, body.len(), &request_id),
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", value);
    }
    record.status = response.status().as_u16();
    record.streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    lock(&shared.log).push(record);
    response
}

/// The normal answer to a Messages request: SSE when asked for (and not forced off), else a
/// JSON Message; 400 when the body is not a JSON object.
fn messages(
    shared: &Shared,
    record: &RecordedRequest,
    body_len: usize,
    request_id: &str,
) -> Response {
    let Some(body) = record.body.as_ref().filter(|b| b.is_object()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "stub: the request body is not a JSON object",
            request_id,
        );
    };
    let reply = reply::choose(body, &shared.config, &mut || shared.id());
    let usage = wire::Usage::of(body_len, &reply);
    let model = body["model"].as_str().unwrap_or("claude-sonnet-4-5");
    let id = format!("msg_stub{:06}", shared.id());
    if body["stream"] == true && !shared.config.force_json {
        let text = wire::sse(&reply, &id, model, usage);
        (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            text,
        )
            .into_response()
    } else {
        axum::Json(wire::message(&reply, &id, model, usage)).into_response()
    }
}

/// A JSON error reply in the API's shape.
fn error(status: StatusCode, error_type: &str, message: &str, request_id: &str) -> Response {
    let body = wire::error_body(error_type, message, request_id);
    (status, axum::Json(body)).into_response()
}

/// The error reply for an injected fault; `None` for [`Fault::Slow`], which delays the normal
/// answer instead.
fn fault_response(fault: &Fault, request_id: &str) -> Option<Response> {
    let too_many = StatusCode::TOO_MANY_REQUESTS;
    Some(match fault {
        Fault::RateLimited { retry_after_s } => {
            let message = "Number of request tokens has exceeded your per-minute rate limit \
                           (stubbed by the test)";
            let mut response = error(too_many, "rate_limit_error", message, request_id);
            set_header(&mut response, "retry-after", &retry_after_s.to_string());
            response
        }
        Fault::UsageLimit { resets_at_unix } => {
            let message = usage_limit_message(*resets_at_unix);
            let mut response = error(too_many, "rate_limit_error", &message, request_id);
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let wait = (*resets_at_unix - now).max(0);
            set_header(&mut response, "retry-after", &wait.to_string());
            set_header(
                &mut response,
                "anthropic-ratelimit-unified-status",
                "rejected",
            );
            set_header(
                &mut response,
                "anthropic-ratelimit-unified-reset",
                &resets_at_unix.to_string(),
            );
            response
        }
        Fault::Overloaded => error(
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
            "Overloaded",
            request_id,
        ),
        Fault::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error",
            request_id,
        ),
        Fault::BadRequest { message } => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message,
            request_id,
        ),
        Fault::Unauthorized => error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
            request_id,
        ),
        Fault::Slow { .. } => return None,
    })
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
