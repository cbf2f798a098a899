//! The spend cap per task, on the real binary in local mode with the dry-run agent (each run
//! reports the cost its `scripted-agent: cost=` directive names, and honours
//! `--max-budget-usd` as the real CLI does): a task whose runs reach the cap launches no more
//! runs and waits in `awaiting-budget` with an alert showing the spend by stage, until the
//! operator raises its cap (then it goes on to `done`) or stops it.

mod common;

use std::time::Duration;

use common::{
    Service, TOKEN, command, eventually, local_mode, reach, runs, start_local_with, task,
};
use serde_json::{Value, json};

async fn set_budget(service: &Service, id: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    service
        .post_json(&format!("/tasks/{id}/budget"), &body, token)
        .await
}

/// The roles of the task's runs, oldest first.
fn roles(task: &Value) -> Vec<String> {
    runs(task)
        .iter()
        .map(|r| r["role"].as_str().unwrap().to_string())
        .collect()
}

/// Each run costs $0.40; the cap is $1.00.
async fn capped(dir: &std::path::Path) -> (Service, String) {
    let service = start_local_with(dir, false, &[("ORCH_TASK_BUDGET_USD", "1.00")]).await;
    let id = common::create(
        &service,
        "Greet by name",
        "Say hello.\n\nscripted-agent: cost=0.4",
        &["autoApprove"],
    )
    .await;
    (service, id)
}

#[tokio::test]
async fn a_task_at_its_cap_waits_for_budget_and_goes_on_once_the_cap_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let (service, id) = capped(dir.path()).await;

    // Analysis ($0.40) and architecture ($0.80) fit; the developer is launched with the
    // $0.20 left, overshoots it (the CLI stops it, its cost recorded), and no further run
    // starts: the task waits for budget.
    let waiting = reach(&service, &id, "development", "awaiting-budget").await;
    assert_eq!(
        roles(&waiting),
        ["analyst", "architect", "developer"],
        "{waiting}"
    );
    let budget = &waiting["budget"];
    assert_eq!(budget["cap_usd"], 1.0, "{budget}");
    assert_eq!(budget["cap_source"], "project");
    assert_eq!(budget["spent_usd"], 1.2);
    assert_eq!(budget["left_usd"], 0.0);
    let overshoot = budget["overshoot_usd"].as_f64().unwrap();
    assert!((overshoot - 0.2).abs() < 1e-9, "{budget}");
    let reason = waiting["blocked_reason"].as_str().unwrap();
    assert!(
        reason.contains("spent $1.20 of the $1.00 cap")
            && reason.contains("analysis $0.40, architecture $0.40, development $0.40")
            && reason.contains("over the cap by $0.20"),
        "{reason}"
    );
    let last = runs(&waiting).pop().unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("Reached maximum budget ($0.2)"),
        "the developer ran under --max-budget-usd with what was left: {last}"
    );
    let log = eventually("the budget alert", Duration::from_secs(10), || async {
        let log = service.log();
        log.contains("budget reached").then_some(log)
    })
    .await;
    assert!(
        log.lines().any(|l| l.contains("tracker alert")
            && l.contains("budget reached")
            && l.contains(&format!("{id} waits for budget"))
            && l.contains("development $0.40")),
        "{log}"
    );

    // It stays there: nothing is launched while it waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = task(&service, &id).await;
    assert_eq!(still["phase"], "awaiting-budget");
    assert_eq!(runs(&still).len(), 3);

    // Bad input is refused, naming what was wrong, and changes nothing.
    for (body, token, status, needle) in [
        (json!({"usd": 5}), None, 401, "operator token"),
        (
            json!({"usd": 5}),
            Some("wrong-token-0123456789"),
            401,
            "operator token",
        ),
        (json!({}), Some(TOKEN), 400, "usd"),
        (json!({"usd": "five"}), Some(TOKEN), 400, "usd"),
        (
            json!({"usd": -1}),
            Some(TOKEN),
            400,
            "usd must be a positive number",
        ),
        (
            json!({"usd": 0}),
            Some(TOKEN),
            400,
            "usd must be a positive number",
        ),
        (json!({"usd": 5, "extra": 1}), Some(TOKEN), 400, "extra"),
    ] {
        let (got, reply) = set_budget(&service, &id, body.clone(), token).await;
        assert_eq!(got, status, "{body}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(needle),
            "{body}: {reply}"
        );
    }
    let (got, reply) = set_budget(&service, "ACME-404", json!({"usd": 5}), Some(TOKEN)).await;
    assert_eq!(got, 404, "{reply}");
    let (got, reply) = set_budget(&service, "not an id", json!({"usd": 5}), Some(TOKEN)).await;
    assert_eq!(got, 400, "{reply}");
    let unchanged = task(&service, &id).await;
    assert_eq!(unchanged["phase"], "awaiting-budget");
    assert_eq!(unchanged["budget"]["cap_source"], "project", "{unchanged}");
    assert_eq!(runs(&unchanged).len(), 3);

    // A cap at or below the spend is kept, and the task keeps waiting.
    let (got, reply) = set_budget(&service, &id, json!({"usd": 1.1}), Some(TOKEN)).await;
    assert_eq!(got, 200, "{reply}");
    assert_eq!(reply["phase"], "awaiting-budget", "{reply}");
    let kept = task(&service, &id).await;
    assert_eq!(kept["budget"]["cap_usd"], 1.1);
    assert_eq!(kept["budget"]["cap_source"], "task");
    assert_eq!(runs(&kept).len(), 3);

    // The CLI raises it: the developer run that was due is launched, and the task goes on.
    let raised = command(dir.path())
        .args(["task", "budget", &id, "10", "--url", &service.base])
        .env("ORCH_OPERATOR_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        raised.status.success(),
        "{}",
        String::from_utf8_lossy(&raised.stderr)
    );
    let said = String::from_utf8_lossy(&raised.stdout);
    assert!(said.contains(&format!("{id} budget: done")), "{said}");
    let done = reach(&service, &id, "done", "idle").await;
    assert_eq!(
        roles(&done),
        [
            "analyst",
            "architect",
            "developer",
            "developer",
            "reviewer",
            "tester",
            "deployer"
        ]
    );
    assert_eq!(done["budget"]["cap_usd"], 10.0);
    let spent = done["budget"]["spent_usd"].as_f64().unwrap();
    assert!((spent - 2.8).abs() < 1e-9, "{}", done["budget"]);
    assert!(done["blocked_reason"].is_null(), "{done}");
}

#[tokio::test]
async fn a_project_cap_overrides_the_default_and_a_waiting_task_can_be_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = local_mode(dir.path(), &[("acme/app", "ACME", false)]).await;
    for (key, value) in &mut env {
        if key == "ORCH_PROJECTS_JSON" {
            let mut projects: Value = serde_json::from_str(value).unwrap();
            projects[0]["budget_usd"] = json!(0.5);
            *value = projects.to_string();
        }
    }
    env.push(("ORCH_TASK_BUDGET_USD".into(), "100".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let service = Service::start(&dir.path().join("data"), &env);
    let id = common::create(
        &service,
        "Greet by name",
        "Say hello.\n\nscripted-agent: cost=0.3",
        &["autoApprove"],
    )
    .await;

    // The analyst ($0.30) fits under the project's $0.50; the architect is launched with
    // $0.20 left and overshoots it.
    let waiting = reach(&service, &id, "architecture", "awaiting-budget").await;
    assert_eq!(waiting["budget"]["cap_usd"], 0.5, "{waiting}");
    assert_eq!(runs(&waiting).len(), 2);

    let (got, reply) = service
        .post_json(
            &format!("/tasks/{id}/stop"),
            &json!({"reason": "too dear"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(got, 200, "{reply}");
    assert_eq!(reply["stage"], "cancelled", "{reply}");
    let stopped = task(&service, &id).await;
    assert_eq!(stopped["stage"], "cancelled");
    assert_eq!(runs(&stopped).len(), 2, "no run started after the cap");
    // A finished task's cap can no longer be set.
    let (got, reply) = set_budget(&service, &id, json!({"usd": 5}), Some(TOKEN)).await;
    assert_eq!(got, 409, "{reply}");
}

#[tokio::test]
async fn a_bad_default_or_project_cap_is_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, needle) in [
        ("ORCH_TASK_BUDGET_USD", "-2", "ORCH_TASK_BUDGET_USD"),
        ("ORCH_TASK_BUDGET_USD", "lots", "ORCH_TASK_BUDGET_USD"),
        (
            "ORCH_PROJECTS_JSON",
            r#"[{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"t","budget_usd":0}]"#,
            "budget_usd must be a positive number",
        ),
    ] {
        let out = command(dir.path())
            .arg("serve")
            .env("ORCH_DATA_DIR", dir.path().join("data"))
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{key}={value}: {err}");
    }
}
