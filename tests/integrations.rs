//! End to end with Plane, Gitea and Telegram faked on loopback and the dry-run agent: a
//! card moved on the Plane board becomes a task, the board follows the pipeline, humans
//! steer it by moving the card, CI and the merge go through Gitea, and the Telegram chat
//! holds one live card per task.

mod common;

use std::time::Duration;

use common::{BIN, Service, eventually, reach, task, webhooks_settled};
use orchestrator_testkit::gitea::{GiteaFake, GiteaFakeConfig, WebhookTarget};
use orchestrator_testkit::plane::{PlaneFake, PlaneFakeConfig, PlaneUser};
use orchestrator_testkit::telegram::TelegramFake;
use serde_json::json;

const PLANE_TOKEN: &str = "plane-main-token";
const ANALYST_TOKEN: &str = "plane-analyst-token";
const GITEA_SECRET: &str = "gitea-hook-secret";
const BOT_TOKEN: &str = "123456:telegram-test-token";

/// Everything one scenario runs against.
struct World {
    plane: PlaneFake,
    gitea: GiteaFake,
    telegram: TelegramFake,
    project: String,
    human: PlaneUser,
    service: Service,
    _dir: tempfile::TempDir,
}

/// Starts the fakes and the service; `omit` names board statuses the Plane project lacks.
async fn world(confirm_deploy: bool, omit: &[&str]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("app.git");
    orchestrator::git::sample::create_sample_origin(&origin)
        .await
        .unwrap();
    let plane = PlaneFake::start(
        PlaneFakeConfig::new("acme", PLANE_TOKEN).with_token(ANALYST_TOKEN, "Analyst bot"),
    );
    let project = plane.add_project("ACME");
    plane.default_board_without(&project, omit);
    let human = plane.add_user("Ann Human");
    let gitea = GiteaFake::start(GiteaFakeConfig::default());
    gitea.add_repo("acme/app", Some(origin.clone()));
    let telegram = TelegramFake::start(BOT_TOKEN);

    let projects = json!([{
        "repo": "acme/app", "origin": origin, "prefix": "ACME",
        "test_cmd": orchestrator::git::sample::SAMPLE_TEST_CMD,
        "confirm_deploy": confirm_deploy,
        "plane_project_id": project, "gitea_repo": "acme/app",
    }]);
    let env = [
        ("ORCH_PROJECTS_JSON", projects.to_string()),
        ("ORCH_CLAUDE_BIN", BIN.to_string()),
        ("ORCH_CLAUDE_ARGS", "scripted-agent".to_string()),
        ("ORCH_OPERATOR_TOKEN", common::TOKEN.to_string()),
        ("ORCH_RETRY_DELAY_S", "1".to_string()),
        ("ORCH_PLANE_API_URL", plane.url()),
        ("ORCH_PLANE_API_TOKEN", PLANE_TOKEN.to_string()),
        ("ORCH_PLANE_WORKSPACE_SLUG", "acme".to_string()),
        (
            "ORCH_PLANE_WEBHOOK_SECRET",
            plane.webhook_secret().to_string(),
        ),
        ("ORCH_PLANE_BOT_ANALYST", ANALYST_TOKEN.to_string()),
        ("ORCH_PLANE_STATES_TTL_S", "0".to_string()),
        ("ORCH_GITEA_URL", gitea.url()),
        ("ORCH_GITEA_TOKEN", gitea.token().to_string()),
        ("ORCH_GITEA_WEBHOOK_SECRET", GITEA_SECRET.to_string()),
        ("ORCH_CI_POLL_S", "1".to_string()),
        ("ORCH_CI_WAIT_S", "120".to_string()),
        ("ORCH_TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_string()),
        ("ORCH_TELEGRAM_CHAT_ID", "-100200300".to_string()),
        ("ORCH_TELEGRAM_API_URL", telegram.url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let service = Service::start(&dir.path().join("data"), &env);
    plane.set_webhook_target(&format!("{}/webhook/plane", service.base));
    gitea.set_webhook(Some(WebhookTarget {
        url: format!("{}/webhook/gitea", service.base),
        secret: GITEA_SECRET.to_string(),
    }));
    World {
        plane,
        gitea,
        telegram,
        project,
        human,
        service,
        _dir: dir,
    }
}

impl World {
    /// A human moves the issue to `state` on the board; the intake must take it.
    async fn move_to(&self, issue: &str, state: &str) {
        let reply = self
            .plane
            .move_issue(issue, state, &self.human.id, "state_id")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains("accepted"), "{}", reply.body);
    }

    /// Waits until the merge queue pushed a candidate as `branch`'s head (it was at
    /// `before`), and reports CI green on exactly that commit; returns the candidate.
    async fn green_candidate(&self, branch: &str, before: &str) -> String {
        let candidate = eventually(
            "the candidate on Gitea",
            Duration::from_secs(60),
            || async {
                let queue = self.service.get("/queue").await.1;
                let candidate = queue["merge_queues"][0]["candidate"].as_str()?.to_string();
                (candidate != before
                    && self.gitea.branch_sha("acme/app", branch).as_deref() == Some(&candidate))
                .then_some(candidate)
            },
        )
        .await;
        let delivery = self
            .gitea
            .emit_status("acme/app", &candidate, "success", "ci/build")
            .await
            .unwrap();
        assert_eq!(delivery.status, Some(200), "{}", delivery.response);
        candidate
    }

    /// Waits until the issue shows `state` on the board.
    async fn board_shows(&self, issue: &str, state: &str) {
        eventually(
            &format!("the board to show {state}"),
            Duration::from_secs(60),
            || async { (self.plane.state_name_of(issue).as_deref() == Some(state)).then_some(()) },
        )
        .await;
    }
}

#[tokio::test]
async fn a_plane_card_travels_the_pipeline_through_gitea_into_main() {
    let w = world(false, &[]).await;
    let issue = w.plane.add_issue(
        &w.project,
        "Add a greeting",
        "<p>Say hello &amp; wave.</p>",
        &[],
    );
    w.move_to(&issue.id, "In Progress").await;

    // QG-0 passed: the task is named after the issue and the board follows it.
    let id = format!("ACME-{}", issue.sequence_id);
    reach(&w.service, &id, "analysis", "awaiting-approval").await;
    w.board_shows(&issue.id, "In Review").await;
    let comments = w.plane.comments(&issue.id);
    let analyst = w.plane.user_for_token(ANALYST_TOKEN).unwrap();
    assert!(
        comments.iter().any(|c| c.actor == analyst.id),
        "the analyst's comment is posted under its own bot: {comments:?}"
    );

    w.move_to(&issue.id, "Approved").await;
    let t = reach(&w.service, &id, "development", "gating").await;
    let branch = t["branch"].as_str().unwrap().to_string();
    w.board_shows(&issue.id, "Development").await;

    // The pull request is Gitea's; CI goes green there.
    let sha = eventually("the branch on Gitea", Duration::from_secs(30), || async {
        w.gitea.branch_sha("acme/app", &branch)
    })
    .await;
    assert!(
        w.gitea.pull("acme/app", 1).is_some(),
        "a pull request was opened"
    );
    let delivery = w
        .gitea
        .emit_status("acme/app", &sha, "success", "ci/build")
        .await
        .unwrap();
    assert_eq!(delivery.status, Some(200), "{}", delivery.response);

    // Tests passed: the merge queue pushes the candidate (the branch merged into main) as
    // the branch's head and awaits Gitea's CI on exactly that commit.
    let candidate = w.green_candidate(&branch, &sha).await;
    reach(&w.service, &id, "done", "idle").await;
    w.board_shows(&issue.id, "Done").await;
    let merge = w.gitea.merge_requests();
    assert_eq!(merge.len(), 1, "one merge through Gitea's API");
    assert_eq!(merge[0].json()["Do"], "fast-forward-only");
    assert_eq!(merge[0].json()["head_commit_id"], candidate.as_str());
    assert_eq!(
        w.gitea.branch_sha("acme/app", "main").as_deref(),
        Some(candidate.as_str()),
        "main is exactly the tested candidate"
    );
    let pr = w.gitea.pull("acme/app", 1).unwrap();
    assert_eq!(pr["merged"], true, "{pr}");

    // Telegram: exactly one live card for the task, edited through every stage, and the
    // approval alert as a separate, notifying message.
    let head = format!("<b>{id}</b> ·");
    let card = eventually("the card to show done", Duration::from_secs(30), || async {
        let cards: Vec<_> = w
            .telegram
            .messages()
            .into_iter()
            .filter(|m| m.text.starts_with(&head))
            .collect();
        (cards.len() == 1 && cards[0].text.contains("done")).then(|| cards[0].clone())
    })
    .await;
    let shown: Vec<&String> = card.edits.iter().chain([&card.text]).collect();
    for stage in [
        "analysis",
        "architecture",
        "development",
        "review",
        "testing",
        "deploy",
    ] {
        assert!(
            shown.iter().any(|t| t.contains(&format!("<b>{stage}</b>"))),
            "the card never showed {stage}: {shown:#?}"
        );
    }
    assert!(card.edits.len() >= 6, "edited at every stage: {shown:#?}");
    assert!(card.link_preview_disabled && card.disable_notification);
    assert_eq!(card.parse_mode.as_deref(), Some("HTML"));
    let alerts: Vec<_> = w
        .telegram
        .messages()
        .into_iter()
        .filter(|m| m.text.starts_with("🔔") && m.text.contains(&id))
        .collect();
    assert!(
        alerts
            .iter()
            .any(|a| a.text.contains("Approved") && !a.disable_notification),
        "the approval alert: {alerts:#?}"
    );
}

#[tokio::test]
async fn a_board_without_confirm_deploy_never_deploys() {
    let w = world(true, &["Confirm Deploy"]).await;
    let auto = w.plane.add_label(&w.project, "autoApprove", "#22c55e");
    let issue = w
        .plane
        .add_issue(&w.project, "Add a greeting", "<p>Say hello.</p>", &[&auto]);
    w.move_to(&issue.id, "In Progress").await;
    let id = format!("ACME-{}", issue.sequence_id);
    let t = reach(&w.service, &id, "development", "gating").await;
    let sha = eventually("the branch on Gitea", Duration::from_secs(30), || async {
        w.gitea
            .branch_sha("acme/app", t["branch"].as_str().unwrap())
    })
    .await;
    w.gitea
        .emit_status("acme/app", &sha, "success", "ci/build")
        .await
        .unwrap();
    w.green_candidate(t["branch"].as_str().unwrap(), &sha).await;
    reach(&w.service, &id, "deploy", "awaiting-deploy-confirm").await;

    // A forged delivery claiming "Confirm Deploy" names a state id that is not on this
    // board: it triggers nothing.
    let forged_state = w
        .plane
        .add_state(&w.project, "Confirm Deploy (elsewhere)", "started");
    let body = w
        .plane
        .issue_updated_body(
            &issue.id,
            "state",
            json!(null),
            json!(forged_state),
            &w.human,
        )
        .unwrap();
    let reply = w.plane.deliver("issue", &body).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Acted on and journaled: whatever it was going to do to the task, it has done.
    webhooks_settled(&w.service).await;
    let t = task(&w.service, &id).await;
    assert_eq!(
        (t["stage"].as_str(), t["phase"].as_str()),
        (Some("deploy"), Some("awaiting-deploy-confirm")),
        "{t}"
    );
    assert!(w.gitea.merge_requests().is_empty(), "nothing merged");
}

#[tokio::test]
async fn on_gitea_main_moving_before_the_fast_forward_rebuilds_and_retests_the_candidate() {
    let w = world(true, &[]).await;
    let auto = w.plane.add_label(&w.project, "autoApprove", "#22c55e");
    let issue = w
        .plane
        .add_issue(&w.project, "Add a greeting", "<p>Say hello.</p>", &[&auto]);
    w.move_to(&issue.id, "In Progress").await;
    let id = format!("ACME-{}", issue.sequence_id);
    let t = reach(&w.service, &id, "development", "gating").await;
    let branch = t["branch"].as_str().unwrap().to_string();
    let sha = eventually("the branch on Gitea", Duration::from_secs(30), || async {
        w.gitea.branch_sha("acme/app", &branch)
    })
    .await;

    // A pull request merged by hand into another base is journaled and ignored.
    let delivery = w
        .gitea
        .emit_pull_request_merged_into("acme/app", 1, "release")
        .await
        .unwrap();
    assert_eq!(delivery.status, Some(200), "{}", delivery.response);
    webhooks_settled(&w.service).await;
    assert_ne!(task(&w.service, &id).await["stage"], "done");

    w.gitea
        .emit_status("acme/app", &sha, "success", "ci/build")
        .await
        .unwrap();
    let first = w.green_candidate(&branch, &sha).await;
    reach(&w.service, &id, "deploy", "awaiting-deploy-confirm").await;
    // main moves on Gitea while the deploy waits for its confirmation.
    let origin = w._dir.path().join("app.git");
    let outside =
        orchestrator_testkit::gitea::commit_to_branch(&origin, "main", "OUTSIDE.md", "x\n");
    let (status, reply) = w
        .service
        .post_json(
            &format!("/tasks/{id}/confirm-deploy"),
            &json!({}),
            Some(common::TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    // The fast-forward is refused (409: main is not the candidate's ancestor any more); the
    // candidate is rebuilt on the moved main and tested again before anything merges.
    let second = w.green_candidate(&branch, &first).await;
    reach(&w.service, &id, "done", "idle").await;
    let merges = w.gitea.merge_requests();
    let statuses: Vec<u16> = merges.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [409, 200], "{merges:?}");
    assert_eq!(merges[0].json()["head_commit_id"], first.as_str());
    assert_eq!(merges[1].json()["head_commit_id"], second.as_str());
    assert_eq!(w.gitea.branch_sha("acme/app", "main"), Some(second.clone()));
    let parent = std::process::Command::new("git")
        .args(["rev-parse", &format!("{second}^1")])
        .current_dir(&origin)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&parent.stdout).trim(), outside);
}

#[tokio::test]
async fn a_cancelled_plane_task_restarts_as_a_new_task_from_to_analyse() {
    let w = world(false, &[]).await;
    let issue = w
        .plane
        .add_issue(&w.project, "Add a greeting", "<p>Say hello.</p>", &[]);
    w.move_to(&issue.id, "In Progress").await;
    let id = format!("ACME-{}", issue.sequence_id);
    reach(&w.service, &id, "analysis", "awaiting-approval").await;
    w.move_to(&issue.id, "STOP").await;
    reach(&w.service, &id, "cancelled", "idle").await;

    w.move_to(&issue.id, "To Analyse").await;
    let new = format!("{id}-r2");
    let fresh = reach(&w.service, &new, "analysis", "awaiting-approval").await;
    assert!(
        fresh["transitions"]
            .to_string()
            .contains(&format!("restart of {id}")),
        "{fresh}"
    );
    assert_eq!(task(&w.service, &id).await["stage"], "cancelled");
    // The issue now drives the new task: an approval on the board moves it on.
    w.move_to(&issue.id, "Approved").await;
    reach(&w.service, &new, "development", "gating").await;
}

#[tokio::test]
async fn qg0_blocks_an_issue_without_a_description_and_says_why() {
    let w = world(false, &[]).await;
    let issue = w.plane.add_issue(&w.project, &"x".repeat(201), "", &[]);
    w.move_to(&issue.id, "To Analyse").await;
    w.board_shows(&issue.id, "Blocked").await;
    let comments = eventually("the QG-0 comment", Duration::from_secs(30), || async {
        let c = w.plane.comments(&issue.id);
        (!c.is_empty()).then_some(c)
    })
    .await;
    let text = &comments[0].comment_html;
    assert!(text.contains("201 characters"), "{text}");
    assert!(text.contains("description is empty"), "{text}");
    let (_, tasks) = w.service.get("/tasks").await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 0, "{tasks}");
}

#[tokio::test]
async fn a_plane_issue_meets_the_same_creation_rule_as_a_local_task() {
    let w = world(false, &[]).await;
    let label = w.plane.add_label(&w.project, &"l".repeat(51), "#ff0000");
    let issue = w
        .plane
        .add_issue(&w.project, "Add a greeting", "<p>Say hello.</p>", &[&label]);
    w.move_to(&issue.id, "To Analyse").await;
    w.board_shows(&issue.id, "Blocked").await;
    let comments = eventually("the refusal's comment", Duration::from_secs(30), || async {
        let c = w.plane.comments(&issue.id);
        (!c.is_empty()).then_some(c)
    })
    .await;
    let text = &comments[0].comment_html;
    assert!(
        text.contains("must be 1-50 characters on one line"),
        "{text}"
    );
    let (_, tasks) = w.service.get("/tasks").await;
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 0, "{tasks}");
}

#[tokio::test]
async fn a_rejection_hands_the_latest_human_comment_to_the_analyst() {
    let w = world(false, &[]).await;
    let issue = w
        .plane
        .add_issue(&w.project, "Add a greeting", "<p>Say hello.</p>", &[]);
    w.move_to(&issue.id, "In Progress").await;
    let id = format!("ACME-{}", issue.sequence_id);
    reach(&w.service, &id, "analysis", "awaiting-approval").await;
    w.plane.add_comment(
        &issue.id,
        &w.human.id,
        "<p>Too vague: name the <b>greeting</b> text.</p>",
    );
    w.move_to(&issue.id, "Rejected").await;
    let t = eventually(
        "the rejection to reach the analyst",
        Duration::from_secs(30),
        || async {
            let t = task(&w.service, &id).await;
            (t["stage_attempts"] == 2).then_some(t)
        },
    )
    .await;
    let note = t["note"].as_str().unwrap_or_default();
    assert!(note.contains("Too vague: name the greeting text."), "{t}");
}
