//! The tracker against an in-memory chat: send then edit, the chat's answers (not modified,
//! not found, flood control), bump mode, a restart, and serialized deliveries.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::fakes::MemoryCards;
use crate::fakes::MemoryJobs;
use crate::fakes::MemoryStore;
use crate::ports::{AlertKind, CardState, NewTask, Phase, TaskUpdate};
use crate::{Stage, WorkItemId};

/// One call the chat received.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    at: Instant,
    method: &'static str,
    message: Option<i64>,
    answer: Result<(), NotifyError>,
}

#[derive(Default)]
struct Chat {
    next_id: i64,
    /// Live messages: their card (`None` for an alert) and each earlier version.
    messages: BTreeMap<i64, (Option<Card>, Vec<Card>)>,
    calls: Vec<Seen>,
    /// Answers forced on the next calls, oldest first.
    faults: VecDeque<NotifyError>,
}

/// An in-memory chat that answers like Telegram and counts calls in flight.
#[derive(Default)]
struct FakeChat {
    chat: Mutex<Chat>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// How long each call takes.
    latency: Duration,
}

impl FakeChat {
    fn slow(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Chat> {
        self.chat.lock().unwrap()
    }

    fn push_fault(&self, e: NotifyError) {
        self.lock().faults.push_back(e);
    }

    fn forget(&self, id: i64) {
        self.lock().messages.remove(&id);
    }

    fn calls(&self) -> Vec<(&'static str, Option<i64>)> {
        self.lock()
            .calls
            .iter()
            .map(|c| (c.method, c.message))
            .collect()
    }

    fn card(&self, id: i64) -> Option<Card> {
        self.lock().messages.get(&id).and_then(|m| m.0.clone())
    }

    /// Every version message `id` showed, oldest first.
    fn versions(&self, id: i64) -> Vec<Card> {
        let chat = self.lock();
        let (now, before) = &chat.messages[&id];
        before.iter().chain(now).cloned().collect()
    }

    async fn op(
        &self,
        method: &'static str,
        message: Option<i64>,
        apply: impl FnOnce(&mut Chat) -> Result<i64, NotifyError>,
    ) -> Result<i64, NotifyError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        let at = Instant::now();
        let answer = {
            let mut chat = self.lock();
            match chat.faults.pop_front() {
                Some(e) => Err(e),
                None => apply(&mut chat),
            }
        };
        self.lock().calls.push(Seen {
            at,
            method,
            message,
            answer: answer.clone().map(|_| ()),
        });
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    fn new_message(chat: &mut Chat, card: Option<Card>) -> i64 {
        chat.next_id += 1;
        chat.messages.insert(chat.next_id, (card, Vec::new()));
        chat.next_id
    }
}

#[async_trait]
impl Notifier for FakeChat {
    async fn send_card(&self, card: &Card) -> Result<MessageId, NotifyError> {
        let card = card.clone();
        self.op("send", None, |chat| Ok(Self::new_message(chat, Some(card))))
            .await
            .map(MessageId)
    }

    async fn edit_card(&self, id: MessageId, card: &Card) -> Result<(), NotifyError> {
        let card = card.clone();
        self.op("edit", Some(id.0), |chat| {
            let (now, before) = chat.messages.get_mut(&id.0).ok_or(NotifyError::NotFound)?;
            if now.as_ref() == Some(&card) {
                return Err(NotifyError::NotModified);
            }
            before.extend(now.replace(card));
            Ok(id.0)
        })
        .await
        .map(|_| ())
    }

    async fn delete_message(&self, id: MessageId) -> Result<(), NotifyError> {
        self.op("delete", Some(id.0), |chat| {
            chat.messages.remove(&id.0).ok_or(NotifyError::NotFound)?;
            Ok(id.0)
        })
        .await
        .map(|_| ())
    }

    async fn send_alert(&self, _alert: &Alert) -> Result<(), NotifyError> {
        self.op("alert", None, |chat| Ok(Self::new_message(chat, None)))
            .await
            .map(|_| ())
    }

    async fn send_notice(&self, _notice: &Notice) -> Result<(), NotifyError> {
        self.op("notice", None, |chat| Ok(Self::new_message(chat, None)))
            .await
            .map(|_| ())
    }
}

struct Rig {
    store: Arc<MemoryStore>,
    chat: Arc<FakeChat>,
    cards: Arc<MemoryCards>,
    deps: Arc<TrackerDeps>,
}

fn id(s: &str) -> WorkItemId {
    WorkItemId::parse(s).unwrap()
}

impl Rig {
    fn new(mode: TrackerMode, chat: FakeChat) -> Self {
        Self::with_cards(mode, chat, Arc::new(MemoryCards::new()))
    }

    fn with_cards(mode: TrackerMode, chat: FakeChat, cards: Arc<MemoryCards>) -> Self {
        let store = Arc::new(MemoryStore::new());
        let chat = Arc::new(chat);
        let deps = Arc::new(TrackerDeps {
            store: store.clone(),
            jobs: Arc::new(MemoryJobs::new()),
            notifier: chat.clone(),
            cards: cards.clone(),
            mode,
            max_retry_wait: Duration::from_secs(60),
        });
        Self {
            store,
            chat,
            cards,
            deps,
        }
    }

    async fn spawn(&self) -> ActorRef<TrackerMsg> {
        // Unnamed: tests run in parallel and the registry is process-global.
        Actor::spawn(None, Tracker::new(self.deps.clone()), ())
            .await
            .unwrap()
            .0
    }

    async fn task(&self, name: &str) -> WorkItemId {
        self.store
            .create_task(NewTask {
                work_item_id: id(name),
                repo: "acme/app".into(),
                title: format!("title of {name}"),
                description: String::new(),
                labels: Vec::new(),
            })
            .await
            .unwrap()
            .work_item_id
    }

    /// Moves the task to `phase` (entering analysis the first time).
    async fn set_phase(&self, task: &WorkItemId, phase: Phase) {
        let record = self.store.load_task(task).await.unwrap().unwrap();
        let mut update = TaskUpdate::keep(&record);
        if record.stage == Stage::Created {
            update.to = Some((Stage::Analysis, "start".into()));
        }
        update.phase = phase;
        assert!(
            self.store
                .update_task(task, record.stage, update)
                .await
                .unwrap()
        );
    }
}

async fn describe(tracker: &ActorRef<TrackerMsg>) -> serde_json::Value {
    tracker
        .call(TrackerMsg::Describe, Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .unwrap()
        .details
}

/// Waits until nothing is loading, queued or in flight.
async fn settle(tracker: &ActorRef<TrackerMsg>) -> serde_json::Value {
    for _ in 0..10_000 {
        let d = describe(tracker).await;
        if d["pending"] == 0 {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the tracker did not settle: {}", describe(tracker).await);
}

async fn refresh_and_settle(
    tracker: &ActorRef<TrackerMsg>,
    task: &WorkItemId,
) -> serde_json::Value {
    tracker.cast(TrackerMsg::Refresh(task.clone())).unwrap();
    settle(tracker).await
}

#[tokio::test]
async fn the_first_refresh_sends_the_card_and_later_ones_edit_it() {
    let rig = Rig::new(TrackerMode::Edit, FakeChat::default());
    let tracker = rig.spawn().await;
    let task = rig.task("T-1").await;

    refresh_and_settle(&tracker, &task).await;
    assert_eq!(rig.chat.calls(), [("send", None)]);
    assert_eq!(rig.cards.card_message(&task).await.unwrap(), Some(1));

    rig.set_phase(&task, Phase::Working).await;
    let d = refresh_and_settle(&tracker, &task).await;
    assert_eq!(rig.chat.calls(), [("send", None), ("edit", Some(1))]);
    assert_eq!(rig.chat.card(1).unwrap().stage, Stage::Analysis);
    assert_eq!(d["counters"]["sent"], 1);
    assert_eq!(d["counters"]["edited"], 1);
    assert_eq!(d["cards_known"], 1);

    // Nothing changed: nothing is sent.
    let d = refresh_and_settle(&tracker, &task).await;
    assert_eq!(rig.chat.calls().len(), 2);
    assert_eq!(d["counters"]["unchanged"], 1);
}

#[tokio::test]
async fn message_is_not_modified_counts_as_success() {
    let rig = Rig::new(TrackerMode::Edit, FakeChat::default());
    let tracker = rig.spawn().await;
    let task = rig.task("T-1").await;
    refresh_and_settle(&tracker, &task).await;
    rig.set_phase(&task, Phase::Working).await;
    rig.chat.push_fault(NotifyError::NotModified);
    let d = refresh_and_settle(&tracker, &task).await;
    assert_eq!(d["counters"]["edited"], 1);
    assert_eq!(d["counters"]["failed"], 0);
    assert_eq!(rig.chat.calls(), [("send", None), ("edit", Some(1))]);
}

#[tokio::test]
async fn a_card_deleted_in_the_chat_is_sent_anew_and_repointed() {
    let rig = Rig::new(TrackerMode::Edit, FakeChat::default());
    let tracker = rig.spawn().await;
    let task = rig.task("T-1").await;
    refresh_and_settle(&tracker, &task).await;
    rig.chat.forget(1);

    rig.set_phase(&task, Phase::Working).await;
    refresh_and_settle(&tracker, &task).await;
    assert_eq!(
        rig.chat.calls(),
        [("send", None), ("edit", Some(1)), ("send", None)]
    );
    assert_eq!(rig.cards.card_message(&task).await.unwrap(), Some(2));

    rig.set_phase(&task, Phase::Gating).await;
    let d = refresh_and_settle(&tracker, &task).await;
    assert_eq!(rig.chat.calls().last(), Some(&("edit", Some(2))));
    assert_eq!(d["counters"]["sent"], 2);
    assert_eq!(d["counters"]["failed"], 0);
}

#[tokio::test(start_paused = true)]
async fn flood_control_is_waited_out_then_the_edit_goes_through() {
    let rig = Rig::new(TrackerMode::Edit, FakeChat::default());
    let tracker = rig.spawn().await;
    let task = rig.task("T-1").await;
    refresh_and_settle(&tracker, &task).await;

    rig.set_phase(&task, Phase::Working).await;
    rig.chat
        .push_fault(NotifyError::RetryAfter(Duration::from_secs(3)));
    let d = refresh_and_settle(&tracker, &task).await;
    let calls = rig.chat.lock().calls.clone();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(
        calls[1].answer,
        Err(NotifyError::RetryAfter(Duration::from_secs(3)))
    );
    assert_eq!((calls[2].method, calls[2].answer.clone()), ("edit", Ok(())));
    assert!(calls[2].at - calls[1].at >= Duration::from_secs(3));
    assert_eq!(d["counters"]["retried_after"], 1);
    assert_eq!(d["counters"]["edited"], 1);
}

#[tokio::test]
async fn bump_mode_deletes_the_old_card_and_sends_a_new_one() {
    let rig = Rig::new(TrackerMode::Bump, FakeChat::default());
    let tracker = rig.spawn().await;
    let task = rig.task("T-1").await;
    refresh_and_settle(&tracker, &task).await;
    rig.set_phase(&task, Phase::Working).await;
    let d = refresh_and_settle(&tracker, &task).await;
    assert_eq!(
        rig.chat.calls(),
        [("send", None), ("delete", Some(1)), ("send", None)]
    );
    assert_eq!(rig.cards.card_message(&task).await.unwrap(), Some(2));
    assert_eq!(d["counters"]["bumped"], 1);

    // A failed delete does not hold the card back.
    rig.set_phase(&task, Phase::Gating).await;
    rig.chat.push_fault(NotifyError::Failed("nope".into()));
    refresh_and_settle(&tracker, &task).await;
    assert_eq!(rig.chat.calls()[3..], [("delete", Some(2)), ("send", None)]);
    assert_eq!(rig.cards.card_message(&task).await.unwrap(), Some(3));
}

#[tokio::test]
async fn a_restarted_tracker_keeps_editing_the_saved_card() {
    let cards = Arc::new(MemoryCards::new());
    let rig = Rig::with_cards(TrackerMode::Edit, FakeChat::default(), cards.clone());
    let task = rig.task("T-1").await;
    let first = rig.spawn().await;
    refresh_and_settle(&first, &task).await;
    first.stop_and_wait(None, None).await.unwrap();

    let second = rig.spawn().await;
    rig.set_phase(&task, Phase::Working).await;
    refresh_and_settle(&second, &task).await;
    assert_eq!(rig.chat.calls(), [("send", None), ("edit", Some(1))]);
}

#[tokio::test]
async fn every_distinct_state_is_shown_in_order() {
    // A slow chat lets refreshes pile up behind the delivery in flight.
    let rig = Rig::new(TrackerMode::Edit, FakeChat::slow(Duration::from_millis(20)));
    let tracker = rig.spawn().await;
    let task = rig.task("T-1").await;
    let phases = [Phase::Working, Phase::Gating, Phase::AwaitingApproval];
    tracker.cast(TrackerMsg::Refresh(task.clone())).unwrap();
    for phase in phases {
        // Each refresh is rendered before the next change, as when the task actor sends it.
        loop {
            if describe(&tracker).await["loading"] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        rig.set_phase(&task, phase).await;
        tracker.cast(TrackerMsg::Refresh(task.clone())).unwrap();
    }
    settle(&tracker).await;
    let shown: Vec<_> = rig.chat.versions(1).into_iter().map(|c| c.state).collect();
    assert_eq!(
        shown,
        [
            CardState::Idle,
            CardState::Working,
            CardState::Gating,
            CardState::AwaitingApproval
        ]
    );
}

#[tokio::test]
async fn a_burst_never_has_two_calls_in_flight() {
    let rig = Rig::new(TrackerMode::Edit, FakeChat::slow(Duration::from_millis(2)));
    let tracker = rig.spawn().await;
    let mut tasks = Vec::new();
    for n in 1..=3 {
        tasks.push(rig.task(&format!("T-{n}")).await);
    }
    for round in 0..6 {
        for task in &tasks {
            let phase = [Phase::Working, Phase::Gating][round % 2];
            tracker.cast(TrackerMsg::Refresh(task.clone())).unwrap();
            rig.set_phase(task, phase).await;
            tracker.cast(TrackerMsg::Refresh(task.clone())).unwrap();
        }
        tracker
            .cast(TrackerMsg::Alert(Alert {
                work_item_id: tasks[0].clone(),
                kind: AlertKind::Blocked,
                text: format!("round {round}"),
            }))
            .unwrap();
        // A notice about the service takes its turn with the cards and alerts.
        tracker
            .cast(TrackerMsg::Notice(crate::ports::Notice {
                topic: "disk".into(),
                text: format!("round {round}"),
            }))
            .unwrap();
    }
    let d = settle(&tracker).await;
    assert_eq!(rig.chat.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(d["counters"]["alerts"], 12, "six alerts and six notices");
    assert_eq!(d["counters"]["sent"], 3, "one card per task");
    assert_eq!(d["counters"]["failed"], 0);
    for (n, task) in tasks.iter().enumerate() {
        let message = rig.cards.card_message(task).await.unwrap().unwrap();
        let card = rig.chat.card(message).unwrap();
        assert_eq!(&card.work_item_id, task, "task {n}");
        assert_eq!(card.state, CardState::Gating, "the last state shows");
    }
}

#[tokio::test]
async fn the_helpers_are_no_ops_without_a_tracker() {
    // No actor is registered as `tracker` in this test binary's unit tests.
    refresh(id("T-1"));
    alert(Alert {
        work_item_id: id("T-1"),
        kind: AlertKind::AgentFailed,
        text: "x".into(),
    });
}
