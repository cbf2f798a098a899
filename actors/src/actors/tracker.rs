//! `tracker` — keeps one live card per task in the team chat and posts alerts. A `Refresh`
//! re-renders the task's card from the store (off the handler) and queues it; deliveries go
//! out one at a time from a FIFO the actor owns, each in a spawned task that reports back, so
//! a burst of refreshes never has two chat calls in flight and `handle` never waits on I/O.
//!
//! Every distinct card state a task passed through is delivered in order (the chat shows the
//! task's whole path); only a card identical to the last one queued for its task is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::WorkItemId;
use crate::actors::describe::{Describe, Description};
use crate::domain::card;
use crate::ports::{
    Alert, Card, CardStore, JobStore, MessageId, Notice, Notifier, NotifyError, Store,
};

/// Registered name of the tracker.
pub const TRACKER: &str = "tracker";

/// Flood-control answers one delivery sits out before it is given up.
pub const MAX_FLOOD_RETRIES: u32 = 5;

/// How a changed card reaches the chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerMode {
    /// Edit the card's message in place.
    Edit,
    /// Delete the old message and send the card anew, so it is the chat's latest message.
    Bump,
}

impl TrackerMode {
    /// The spelling used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerMode::Edit => "edit",
            TrackerMode::Bump => "bump",
        }
    }
}

/// What the tracker works with.
pub struct TrackerDeps {
    /// Tasks, for rendering.
    pub store: Arc<dyn Store>,
    /// Agent runs, for rendering.
    pub jobs: Arc<dyn JobStore>,
    /// The chat.
    pub notifier: Arc<dyn Notifier>,
    /// Which message is each task's card.
    pub cards: Arc<dyn CardStore>,
    /// Edit in place or bump (`ORCH_TRACKER_MODE`).
    pub mode: TrackerMode,
    /// Longest single wait on a flood-control answer; a longer `retry_after` is cut to this.
    pub max_retry_wait: Duration,
}

/// The tracker actor.
pub struct Tracker {
    deps: Arc<TrackerDeps>,
}

impl Tracker {
    /// A tracker working with `deps`.
    pub fn new(deps: Arc<TrackerDeps>) -> Self {
        Self { deps }
    }
}

/// Asks the running tracker to refresh `id`'s card; does nothing when no tracker runs.
pub fn refresh(id: WorkItemId) {
    send(TrackerMsg::Refresh(id));
}

/// Hands `alert` to the running tracker; does nothing when no tracker runs.
pub fn alert(alert: Alert) {
    send(TrackerMsg::Alert(alert));
}

/// Hands `notice` (about the service, not a task) to the running tracker; does nothing when
/// no tracker runs.
pub fn notice(notice: Notice) {
    send(TrackerMsg::Notice(notice));
}

fn send(msg: TrackerMsg) {
    if let Some(tracker) = ractor::registry::where_is(TRACKER) {
        let _ = tracker.send_message(msg);
    }
}

/// How a delivery ended up in the chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// The card went out as a new message (first show, or its old one was gone).
    Sent(i64),
    /// The card's message was edited (or already showed it).
    Edited(i64),
    /// The old message was deleted and the card sent anew.
    Bumped(i64),
    /// The alert was posted.
    Alerted,
}

/// Messages the tracker handles.
pub enum TrackerMsg {
    /// Anyone (the task actor) after a task changed: re-render its card from the store and
    /// show it.
    Refresh(WorkItemId),
    /// Anyone: post an alert, in turn with the cards.
    Alert(Alert),
    /// Anyone (the disk watchdog): post a notice about the service, in turn with the cards.
    Notice(Notice),
    /// Anyone: reply with queue length, cards known and counters.
    Describe(RpcReplyPort<Description>),
    /// Self, from a spawned load: the card as rendered for refresh number `seq` of the task
    /// (`None` when the task or the store was unavailable).
    Rendered {
        /// The task.
        id: WorkItemId,
        /// The refresh's number among the task's refreshes.
        seq: u64,
        /// The card.
        card: Option<Card>,
    },
    /// Self, from the delivery task: the delivery in flight is over.
    Delivered {
        /// The task it was for; `None` for a notice.
        id: Option<WorkItemId>,
        /// The card delivered; `None` for an alert.
        card: Option<Card>,
        /// How it was shown, or why it was not.
        outcome: Result<Shown, String>,
        /// Flood-control waits it sat out.
        retried: u32,
    },
}

impl Describe for TrackerMsg {
    const KIND: &'static str = "tracker";
    fn describe(reply: RpcReplyPort<Description>) -> Self {
        TrackerMsg::Describe(reply)
    }
}

/// Counters of what the tracker did, for `GET /actors`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrackerCounters {
    /// Cards sent as new messages.
    pub sent: u64,
    /// Cards edited in place (including "not modified").
    pub edited: u64,
    /// Cards deleted and sent anew.
    pub bumped: u64,
    /// Alerts posted.
    pub alerts: u64,
    /// Refreshes dropped because the card had not changed.
    pub unchanged: u64,
    /// Flood-control waits sat out.
    pub retried_after: u64,
    /// Deliveries (or renders) that failed.
    pub failed: u64,
}

/// One delivery waiting for its turn.
enum Delivery {
    Card(Card),
    Alert(Alert),
    Notice(Notice),
}

/// What the tracker knows of one task's card.
#[derive(Default)]
struct Slot {
    /// The card's message, once known (else the card store is asked).
    message_id: Option<i64>,
    /// Number of the task's next refresh.
    next_seq: u64,
    /// Number of the refresh whose card is queued next; later ones wait in `arrived`.
    next_ready: u64,
    /// Rendered cards that arrived before an earlier refresh's did.
    arrived: BTreeMap<u64, Option<Card>>,
    /// The card last queued, to drop an identical one.
    last: Option<Card>,
}

/// The tracker's bookkeeping.
pub struct TrackerState {
    /// Per task: the card's message, sequence and last shown state.
    slots: HashMap<WorkItemId, Slot>,
    /// Deliveries waiting, in order.
    queue: VecDeque<Delivery>,
    /// A delivery is in flight.
    in_flight: bool,
    /// The delivery in flight, owned: it ends with the actor.
    delivery: Option<AbortOnDropHandle<()>>,
    /// Cards being rendered, owned: they end with the actor.
    renders: JoinSet<()>,
    /// Renders not yet back.
    loading: usize,
    /// What it did.
    counters: TrackerCounters,
}

impl TrackerState {
    /// Starts the next delivery if none is in flight.
    fn pump(&mut self, myself: &ActorRef<TrackerMsg>, deps: &Arc<TrackerDeps>) {
        if self.in_flight {
            return;
        }
        let Some(delivery) = self.queue.pop_front() else {
            return;
        };
        self.in_flight = true;
        let deps = deps.clone();
        let myself = myself.clone();
        let known = match &delivery {
            Delivery::Card(card) => self
                .slots
                .get(&card.work_item_id)
                .and_then(|s| s.message_id),
            Delivery::Alert(_) | Delivery::Notice(_) => None,
        };
        self.delivery = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            let mut retried = 0;
            let msg = match delivery {
                Delivery::Card(card) => TrackerMsg::Delivered {
                    id: Some(card.work_item_id.clone()),
                    outcome: deliver_card(&deps, &card, known, &mut retried).await,
                    card: Some(card),
                    retried,
                },
                Delivery::Alert(alert) => TrackerMsg::Delivered {
                    outcome: call(&deps, Call::Alert(&alert), &mut retried)
                        .await
                        .map(|_| Shown::Alerted)
                        .map_err(|e| {
                            format!("cannot post the alert for {}: {e}", alert.work_item_id)
                        }),
                    id: Some(alert.work_item_id),
                    card: None,
                    retried,
                },
                Delivery::Notice(notice) => TrackerMsg::Delivered {
                    outcome: call(&deps, Call::Notice(&notice), &mut retried)
                        .await
                        .map(|_| Shown::Alerted)
                        .map_err(|e| format!("cannot post the {} notice: {e}", notice.topic)),
                    id: None,
                    card: None,
                    retried,
                },
            };
            let _ = myself.cast(msg);
        })));
    }
}

/// One chat call.
#[derive(Clone, Copy)]
enum Call<'a> {
    Send(&'a Card),
    Edit(MessageId, &'a Card),
    Delete(MessageId),
    Alert(&'a Alert),
    Notice(&'a Notice),
}

/// Makes `call`, sitting out flood-control answers (each wait capped) up to
/// [`MAX_FLOOD_RETRIES`] times. Returns the new message's id for a send.
async fn call(
    deps: &TrackerDeps,
    call: Call<'_>,
    retried: &mut u32,
) -> Result<Option<MessageId>, NotifyError> {
    let n = deps.notifier.as_ref();
    let mut floods = 0;
    loop {
        let result = match call {
            Call::Send(card) => n.send_card(card).await.map(Some),
            Call::Edit(id, card) => n.edit_card(id, card).await.map(|()| None),
            Call::Delete(id) => n.delete_message(id).await.map(|()| None),
            Call::Alert(alert) => n.send_alert(alert).await.map(|()| None),
            Call::Notice(notice) => n.send_notice(notice).await.map(|()| None),
        };
        match result {
            Err(NotifyError::RetryAfter(after)) if floods < MAX_FLOOD_RETRIES => {
                floods += 1;
                *retried += 1;
                let wait = after.min(deps.max_retry_wait);
                warn!(
                    retry_after_s = after.as_secs_f64(),
                    wait_s = wait.as_secs_f64(),
                    "chat flood control; waiting before retrying"
                );
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// Shows `card`: sends it the first time, later edits (or bumps) the message `known` or the
/// card store names.
async fn deliver_card(
    deps: &TrackerDeps,
    card: &Card,
    known: Option<i64>,
    retried: &mut u32,
) -> Result<Shown, String> {
    let id = &card.work_item_id;
    let existing = match known {
        Some(m) => Some(m),
        None => deps
            .cards
            .card_message(id)
            .await
            .map_err(|e| format!("cannot look up the card message of {id}: {e}"))?,
    };
    let Some(old) = existing else {
        return send_new(deps, card, retried).await.map(Shown::Sent);
    };
    match deps.mode {
        TrackerMode::Edit => match call(deps, Call::Edit(MessageId(old), card), retried).await {
            Ok(_) | Err(NotifyError::NotModified) => Ok(Shown::Edited(old)),
            Err(NotifyError::NotFound) => {
                info!(task = %id, message = old, "card message gone; sending a new card");
                send_new(deps, card, retried).await.map(Shown::Sent)
            }
            Err(e) => Err(format!("cannot edit the card of {id} (message {old}): {e}")),
        },
        TrackerMode::Bump => {
            match call(deps, Call::Delete(MessageId(old)), retried).await {
                Ok(_) | Err(NotifyError::NotFound) => {}
                // The new card goes out anyway; the old one stays behind.
                Err(e) => {
                    warn!(task = %id, message = old, error = %e, "cannot delete the old card")
                }
            }
            send_new(deps, card, retried).await.map(Shown::Bumped)
        }
    }
}

/// Sends `card` as a new message and remembers it as the task's card.
async fn send_new(deps: &TrackerDeps, card: &Card, retried: &mut u32) -> Result<i64, String> {
    let id = &card.work_item_id;
    let sent = call(deps, Call::Send(card), retried)
        .await
        .map_err(|e| format!("cannot send the card of {id}: {e}"))?
        .ok_or_else(|| format!("sending the card of {id} returned no message id"))?;
    if let Err(e) = deps.cards.save_card_message(id, sent.0).await {
        // Shown and known in memory; only a restart would lose track of it.
        warn!(task = %id, message = sent.0, error = %e, "cannot save the card's message id");
    }
    Ok(sent.0)
}

/// Renders the card of `id` from the store.
async fn render(deps: &TrackerDeps, id: &WorkItemId) -> Result<Option<Card>, String> {
    let task = deps
        .store
        .load_task(id)
        .await
        .map_err(|e| format!("cannot load task {id}: {e}"))?;
    let Some(task) = task else {
        return Ok(None);
    };
    let runs = deps
        .jobs
        .runs(id)
        .await
        .map_err(|e| format!("cannot load the runs of {id}: {e}"))?;
    Ok(Some(card::build(&task, &runs)))
}

impl Actor for Tracker {
    type Msg = TrackerMsg;
    type State = TrackerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(TrackerState {
            slots: HashMap::new(),
            queue: VecDeque::new(),
            in_flight: false,
            delivery: None,
            renders: JoinSet::new(),
            loading: 0,
            counters: TrackerCounters::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrackerMsg::Refresh(id) => {
                let slot = state.slots.entry(id.clone()).or_default();
                let seq = slot.next_seq;
                slot.next_seq += 1;
                state.loading += 1;
                let deps = self.deps.clone();
                // Reap the renders that ended, so the set holds only those in flight.
                while state.renders.try_join_next().is_some() {}
                state.renders.spawn(async move {
                    let card = render(&deps, &id).await.unwrap_or_else(|e| {
                        warn!(task = %id, error = %e, "cannot render the tracker card");
                        None
                    });
                    let _ = myself.cast(TrackerMsg::Rendered { id, seq, card });
                });
            }
            TrackerMsg::Rendered { id, seq, card } => {
                state.loading = state.loading.saturating_sub(1);
                if card.is_none() {
                    state.counters.failed += 1;
                }
                let slot = state.slots.entry(id).or_default();
                slot.arrived.insert(seq, card);
                // Cards are queued in refresh order, whatever order their loads finished in.
                while let Some(card) = slot.arrived.remove(&slot.next_ready) {
                    slot.next_ready += 1;
                    let Some(card) = card else { continue };
                    if slot.last.as_ref() == Some(&card) {
                        state.counters.unchanged += 1;
                        continue;
                    }
                    slot.last = Some(card.clone());
                    state.queue.push_back(Delivery::Card(card));
                }
                state.pump(&myself, &self.deps);
            }
            TrackerMsg::Alert(alert) => {
                state.queue.push_back(Delivery::Alert(alert));
                state.pump(&myself, &self.deps);
            }
            TrackerMsg::Notice(notice) => {
                state.queue.push_back(Delivery::Notice(notice));
                state.pump(&myself, &self.deps);
            }
            TrackerMsg::Delivered {
                id,
                card,
                outcome,
                retried,
            } => {
                state.in_flight = false;
                state.delivery = None;
                let c = &mut state.counters;
                c.retried_after += u64::from(retried);
                match outcome {
                    Ok(shown) => {
                        let repoint = match shown {
                            Shown::Sent(m) => {
                                c.sent += 1;
                                Some(m)
                            }
                            Shown::Edited(m) => {
                                c.edited += 1;
                                Some(m)
                            }
                            Shown::Bumped(m) => {
                                c.bumped += 1;
                                Some(m)
                            }
                            Shown::Alerted => {
                                c.alerts += 1;
                                None
                            }
                        };
                        if let (Some(m), Some(id)) = (repoint, id) {
                            state.slots.entry(id).or_default().message_id = Some(m);
                        }
                    }
                    Err(e) => {
                        c.failed += 1;
                        warn!(task = ?id, error = %e, "tracker delivery failed");
                        // Not shown: the same card must not be dropped as unchanged next time.
                        if let Some(slot) = id.as_ref().and_then(|id| state.slots.get_mut(id))
                            && card.is_some()
                            && slot.last == card
                        {
                            slot.last = None;
                        }
                    }
                }
                state.pump(&myself, &self.deps);
            }
            TrackerMsg::Describe(reply) => {
                let _ = reply.send(Description {
                    details: json!({
                        "mode": self.deps.mode.as_str(),
                        "pending": state.queue.len() + usize::from(state.in_flight) + state.loading,
                        "loading": state.loading,
                        "cards_known": state.slots.values().filter(|s| s.message_id.is_some()).count(),
                        "counters": state.counters,
                    }),
                    ..Description::default()
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
