//! The dashboard's live updates over Server-Sent Events: each page's script replaces its
//! live part with every `live` event's HTML. The board is rendered once per change for every
//! connected dashboard by one feed (the only sender on its `watch`); a task's, the queue's
//! and the actor tree's streams render for their own connection. Every stream sends only
//! what changed and ends when the client goes or the service stops.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use orchestrator_actors::ports::Store;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::task::AbortOnDropHandle;
use tracing::debug;

use super::pages::{self, ActorsFragment, BoardFragment, QueueFragment, TaskFragment};
use super::{PageError, Viewer, version};
use crate::http::AppState;
use crate::http::tasks::parse_id;
use crate::store::SqliteStore;

/// How often the board's feed and each page's stream look again.
const TICK: Duration = Duration::from_secs(1);
/// How often the queue and the actor tree (which ask actors) look again.
const SLOW_TICK: Duration = Duration::from_secs(2);

/// The board as last rendered by the feed.
#[derive(Clone, Debug, Default)]
pub(super) struct BoardFrame {
    /// The board's live part, rendered.
    pub html: Arc<String>,
    /// Its version (see [`version`]).
    pub version: String,
    /// When it was rendered; `None` before the first rendering.
    pub at: Option<Instant>,
}

/// Which version of its live part the page already shows: the `Last-Event-ID` of a
/// reconnecting stream, else the page's `?v=`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Since {
    /// The version the page was rendered with.
    #[serde(default)]
    v: Option<String>,
}

impl Since {
    /// The version the client already has, if it said.
    fn version(self, headers: &HeaderMap) -> Option<String> {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or(self.v)
    }
}

/// Starts the board's feed: while any dashboard follows the board, it renders the board each
/// tick and sends it when it changed. It lives as long as the returned handle.
pub(super) fn start_board_feed(
    store: Arc<dyn Store>,
    journal: Arc<SqliteStore>,
) -> (watch::Receiver<BoardFrame>, AbortOnDropHandle<()>) {
    let (tx, rx) = watch::channel(BoardFrame::default());
    let feed = AbortOnDropHandle::new(tokio::spawn(board_feed(tx, store, journal)));
    (rx, feed)
}

async fn board_feed(
    tx: watch::Sender<BoardFrame>,
    store: Arc<dyn Store>,
    journal: Arc<SqliteStore>,
) {
    let mut ticker = interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // The dashboard keeps one receiver to hand out; any other is a follower.
        if tx.receiver_count() <= 1 {
            continue;
        }
        let rendered = match pages::board_live(store.as_ref(), &journal).await {
            Ok(live) => BoardFragment { live: &live }
                .render()
                .map_err(|e| e.to_string()),
            Err(PageError(e)) => Err(e.message),
        };
        match rendered {
            Ok(html) => {
                let now = Instant::now();
                tx.send_if_modified(|frame| {
                    // The time always moves on (followers joining need a fresh frame); the
                    // HTML only when it changed, and only then are the followers woken.
                    let changed = *frame.html != html;
                    frame.at = Some(now);
                    if changed {
                        frame.version = version(&html);
                        frame.html = Arc::new(html);
                    }
                    changed
                });
            }
            Err(e) => debug!(error = %e, "the board feed could not render the board"),
        }
    }
}

/// A `live` event carrying `html`, with its version as the event's id.
fn live_event(html: &str, version: &str) -> Result<Event, Infallible> {
    Ok(Event::default().event("live").id(version).data(html))
}

/// Wraps a stream of events for the response: a keep-alive comment every 15 s, and the end
/// of the stream when the service stops.
fn sse<S>(
    state: &AppState,
    events: S,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<S>>
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let stop = state.dashboard.shutdown.clone().cancelled_owned();
    Sse::new(events.take_until(stop)).keep_alive(KeepAlive::default())
}

/// `GET /ui/events/board`: the board's frames from the feed, each once it changed; a fresh
/// frame first, when the feed has one the page does not show, so nothing that changed since
/// the page was rendered is missed.
pub(super) async fn board(
    State(state): State<AppState>,
    headers: HeaderMap,
    since: Result<Query<Since>, QueryRejection>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut last = since
        .map(|Query(s)| s)
        .unwrap_or_default()
        .version(&headers);
    let mut rx = state.dashboard.board.clone();
    let first = {
        let frame = rx.borrow_and_update();
        frame
            .at
            .filter(|at| at.elapsed() <= TICK * 2)
            .map(|_| frame.clone())
    };
    let changes = stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let frame = rx.borrow_and_update().clone();
        Some((frame, rx))
    });
    let events = stream::iter(first).chain(changes).filter_map(move |frame| {
        let fresh = last.as_deref() != Some(frame.version.as_str());
        last = Some(frame.version.clone());
        std::future::ready(fresh.then(|| live_event(&frame.html, &frame.version)))
    });
    sse(&state, events)
}

/// A stream that renders with `render` every `period` and sends each version once, starting
/// after `since` (the version the page shows).
fn polled<F, Fut>(
    period: Duration,
    since: Option<String>,
    render: F,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<String, PageError>> + Send,
{
    let mut ticker = interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    stream::unfold(
        (ticker, since, render),
        |(mut ticker, mut last, mut render)| async move {
            loop {
                ticker.tick().await;
                match render().await {
                    Ok(html) => {
                        let now = version(&html);
                        if last.as_deref() != Some(now.as_str()) {
                            let event = live_event(&html, &now);
                            last = Some(now);
                            return Some((event, (ticker, last, render)));
                        }
                    }
                    Err(PageError(e)) => debug!(error = %e.message, "a live view could not render"),
                }
            }
        },
    )
}

/// Renders a template's live part, as the page would.
fn rendered(template: &impl Template) -> Result<String, PageError> {
    template.render().map_err(|e| {
        PageError(crate::http::ApiError::internal(format!(
            "cannot render the live view: {e}"
        )))
    })
}

/// `GET /ui/events/tasks/{id}`: the task's live part for this viewer (its forms carry the
/// session's CSRF token).
pub(super) async fn task(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    since: Result<Query<Since>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let id = parse_id(&raw)?;
    let since = since
        .map(|Query(s)| s)
        .unwrap_or_default()
        .version(&headers);
    let viewer = Viewer::of(&state, &headers).await;
    let source = state.clone();
    let events = polled(TICK, since, move || {
        let (state, id, viewer) = (source.clone(), id.clone(), viewer.clone());
        async move {
            let live = pages::task_live(&state, &id, &viewer).await?;
            rendered(&TaskFragment { live: &live })
        }
    });
    Ok(sse(&state, events))
}

/// `GET /ui/events/queue`: the queue and, for this viewer, its freeze forms.
pub(super) async fn queue(
    State(state): State<AppState>,
    headers: HeaderMap,
    since: Result<Query<Since>, QueryRejection>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let since = since
        .map(|Query(s)| s)
        .unwrap_or_default()
        .version(&headers);
    let viewer = Viewer::of(&state, &headers).await;
    let source = state.clone();
    let events = polled(SLOW_TICK, since, move || {
        let (state, viewer) = (source.clone(), viewer.clone());
        async move {
            let live = pages::queue_live(&state, &viewer).await?;
            rendered(&QueueFragment { live: &live })
        }
    });
    sse(&state, events)
}

/// `GET /ui/events/actors`.
pub(super) async fn actors(
    State(state): State<AppState>,
    headers: HeaderMap,
    since: Result<Query<Since>, QueryRejection>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let since = since
        .map(|Query(s)| s)
        .unwrap_or_default()
        .version(&headers);
    let source = state.clone();
    let events = polled(SLOW_TICK, since, move || {
        let state = source.clone();
        async move {
            let rows = pages::actor_rows(&state).await?;
            rendered(&ActorsFragment { rows: &rows })
        }
    });
    sse(&state, events)
}
