//! The Telegram notifier and the tracker against the loopback Bot API fake: send then edit,
//! flood control waited out, a card deleted in the chat sent anew, "not modified" as success,
//! HTML escaping of hostile titles, and the wire format of every request.

use std::sync::Arc;
use std::time::Duration;

use orchestrator::store::SqliteStore;
use orchestrator::telegram::TelegramNotifier;
use orchestrator_actors::actors::tracker::{Tracker, TrackerDeps, TrackerMode, TrackerMsg};
use orchestrator_actors::fakes::MemoryCards;
use orchestrator_actors::fakes::MemoryJobs;
use orchestrator_actors::fakes::MemoryStore;
use orchestrator_actors::ports::{
    Alert, AlertKind, Card, CardState, CardStore, CardTotals, JobStore, MessageId, NewTask,
    Notifier, NotifyError, Phase, Store, TaskUpdate,
};
use orchestrator_actors::{Stage, WorkItemId};
use orchestrator_testkit::TelegramFake;
use ractor::{Actor, ActorRef};
use serde_json::json;

const TOKEN: &str = "123456:test-token";
const CHAT: &str = "-1001";

fn id(s: &str) -> WorkItemId {
    WorkItemId::parse(s).unwrap()
}

fn notifier(fake: &TelegramFake) -> Arc<TelegramNotifier> {
    Arc::new(TelegramNotifier::new(&fake.url(), TOKEN, CHAT))
}

fn card(title: &str, state: CardState) -> Card {
    Card {
        work_item_id: id("ORCH-1"),
        title: title.into(),
        stage: Stage::Analysis,
        state,
        rows: Vec::new(),
        totals: CardTotals::default(),
    }
}

/// Every text-carrying request asked for HTML and no link previews.
fn assert_wire(fake: &TelegramFake) {
    let texts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| ["sendmessage", "editmessagetext"].contains(&r.method_lower().as_str()))
        .collect();
    assert!(!texts.is_empty());
    for r in texts {
        assert_eq!(r.body["parse_mode"], "HTML", "{:?}", r.body);
        assert_eq!(
            r.body["link_preview_options"],
            json!({"is_disabled": true}),
            "{:?}",
            r.body
        );
        assert_eq!(r.body["chat_id"], json!(-1001));
    }
}

#[tokio::test]
async fn a_card_is_sent_then_edited_in_place() {
    let fake = TelegramFake::start(TOKEN);
    let n = notifier(&fake);
    let sent = n
        .send_card(&card("first", CardState::Working))
        .await
        .unwrap();
    n.edit_card(sent, &card("first", CardState::Gating))
        .await
        .unwrap();
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(MessageId(m.id), sent);
    assert_eq!(m.edits.len(), 1);
    assert!(m.text.contains("checking the gate"), "{}", m.text);
    assert_eq!(m.parse_mode.as_deref(), Some("HTML"));
    assert!(m.link_preview_disabled);
    assert!(m.disable_notification, "cards are silent");
    assert_wire(&fake);
}

#[tokio::test]
async fn hostile_titles_are_escaped_and_accepted() {
    let fake = TelegramFake::start(TOKEN);
    let n = notifier(&fake);
    let title = "Speed up <1m builds & a <b> fix";
    n.send_card(&card(
        title,
        CardState::Blocked {
            reason: "x < y".into(),
        },
    ))
    .await
    .unwrap();
    let m = &fake.cards_for("ORCH-1")[0];
    assert!(
        m.text
            .contains("Speed up &lt;1m builds &amp; a &lt;b&gt; fix"),
        "{}",
        m.text
    );
    assert_wire(&fake);
    // The fake refuses what Telegram would refuse: the same title unescaped.
    let raw = fake.url();
    let refused = reqwest::Client::new()
        .post(format!("{raw}/bot{TOKEN}/sendMessage"))
        .json(&json!({"chat_id": 1, "text": title, "parse_mode": "HTML"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("Bad Request: can't parse entities: "),
        "{body}"
    );
}

#[tokio::test]
async fn alerts_notify_and_editing_unchanged_text_is_not_modified() {
    let fake = TelegramFake::start(TOKEN);
    let n = notifier(&fake);
    n.send_alert(&Alert {
        work_item_id: id("ORCH-1"),
        kind: AlertKind::ApprovalRequested,
        text: "analysis passed; approve or reject".into(),
    })
    .await
    .unwrap();
    assert!(!fake.messages()[0].disable_notification, "alerts notify");
    let c = card("same", CardState::Working);
    let sent = n.send_card(&c).await.unwrap();
    assert_eq!(n.edit_card(sent, &c).await, Err(NotifyError::NotModified));
    assert_eq!(
        n.edit_card(MessageId(99), &c).await,
        Err(NotifyError::NotFound)
    );
    // Deleting twice: already gone is success.
    n.delete_message(sent).await.unwrap();
    n.delete_message(sent).await.unwrap();
    let wrong = TelegramNotifier::new(&fake.url(), "1:wrong", CHAT);
    assert!(matches!(
        wrong.send_card(&c).await,
        Err(NotifyError::Failed(e)) if e.contains("401 Unauthorized")
    ));
    assert_wire(&fake);
}

struct Rig {
    store: Arc<dyn Store>,
    deps: Arc<TrackerDeps>,
}

impl Rig {
    fn new(
        store: Arc<dyn Store>,
        jobs: Arc<dyn JobStore>,
        cards: Arc<dyn CardStore>,
        fake: &TelegramFake,
    ) -> Self {
        let deps = Arc::new(TrackerDeps {
            store: store.clone(),
            jobs,
            notifier: notifier(fake),
            cards,
            mode: TrackerMode::Edit,
            max_retry_wait: Duration::from_secs(30),
        });
        Self { store, deps }
    }

    fn memory(fake: &TelegramFake) -> Self {
        Self::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryJobs::new()),
            Arc::new(MemoryCards::new()),
            fake,
        )
    }

    async fn tracker(&self) -> ActorRef<TrackerMsg> {
        Actor::spawn(None, Tracker::new(self.deps.clone()), ())
            .await
            .unwrap()
            .0
    }

    async fn task(&self, name: &str, title: &str) -> WorkItemId {
        self.store
            .create_task(NewTask {
                work_item_id: id(name),
                repo: "acme/app".into(),
                title: title.into(),
                description: String::new(),
                labels: Vec::new(),
            })
            .await
            .unwrap()
            .work_item_id
    }

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

/// Refreshes `task` and waits until the tracker has nothing left to do; its Describe.
async fn refresh(tracker: &ActorRef<TrackerMsg>, task: &WorkItemId) -> serde_json::Value {
    tracker.cast(TrackerMsg::Refresh(task.clone())).unwrap();
    for _ in 0..3000 {
        let d = tracker
            .call(TrackerMsg::Describe, Some(Duration::from_secs(5)))
            .await
            .unwrap()
            .unwrap()
            .details;
        if d["pending"] == 0 {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the tracker did not settle");
}

#[tokio::test]
async fn flood_control_is_waited_out_then_the_card_is_edited() {
    let fake = TelegramFake::start(TOKEN);
    let rig = Rig::memory(&fake);
    let tracker = rig.tracker().await;
    let task = rig.task("ORCH-1", "flood").await;
    refresh(&tracker, &task).await;

    fake.push_flood(1, 1);
    rig.set_phase(&task, Phase::Working).await;
    let d = refresh(&tracker, &task).await;
    let requests = fake.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("sendMessage", 200),
            ("editMessageText", 429),
            ("editMessageText", 200)
        ]
    );
    assert_eq!(
        requests[1].description.as_deref(),
        Some("Too Many Requests: retry after 1")
    );
    assert!(requests[2].at - requests[1].at >= Duration::from_secs(1));
    assert_eq!(d["counters"]["retried_after"], 1);
    assert_eq!(d["counters"]["edited"], 1);
    assert_eq!(fake.cards_for("ORCH-1").len(), 1);
    assert_wire(&fake);
}

#[tokio::test]
async fn a_card_deleted_in_the_chat_is_sent_anew_and_its_id_saved() {
    let fake = TelegramFake::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(
        SqliteStore::open(&dir.path().join("orchestrator.db"))
            .await
            .unwrap(),
    );
    let rig = Rig::new(sqlite.clone(), sqlite.clone(), sqlite.clone(), &fake);
    let tracker = rig.tracker().await;
    let task = rig.task("ORCH-1", "gone").await;
    refresh(&tracker, &task).await;
    fake.forget_message(1);

    rig.set_phase(&task, Phase::Working).await;
    let d = refresh(&tracker, &task).await;
    let seen: Vec<_> = fake
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.description.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("sendMessage".to_string(), None),
            (
                "editMessageText".to_string(),
                Some("Bad Request: message to edit not found".to_string())
            ),
            ("sendMessage".to_string(), None),
        ]
    );
    assert_eq!(sqlite.card_message(&task).await.unwrap(), Some(2));
    assert_eq!(d["counters"]["sent"], 2);
    assert_eq!(d["counters"]["failed"], 0);
    assert_eq!(fake.cards_for("ORCH-1")[0].id, 2);
    tracker.stop_and_wait(None, None).await.unwrap();
    sqlite.close().await;
}

#[tokio::test]
async fn message_is_not_modified_counts_as_success() {
    let fake = TelegramFake::start(TOKEN);
    let rig = Rig::memory(&fake);
    let task = rig.task("ORCH-1", "unchanged").await;
    let first = rig.tracker().await;
    refresh(&first, &task).await;
    first.stop_and_wait(None, None).await.unwrap();

    // A restarted tracker does not know what the card shows: it edits, Telegram says the
    // text is the same, and that is fine.
    let second = rig.tracker().await;
    let d = refresh(&second, &task).await;
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.method, "editMessageText");
    assert!(
        last.description
            .unwrap()
            .starts_with("Bad Request: message is not modified")
    );
    assert_eq!(d["counters"]["edited"], 1);
    assert_eq!(d["counters"]["failed"], 0);
    assert_wire(&fake);
}
