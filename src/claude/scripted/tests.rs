//! The scripted agent in-process: the environment it needs, the files each role writes
//! (front matter read back with serde_yaml, as the gates will), crashes and the reply shape.

use std::collections::BTreeMap;

use super::*;
use crate::claude::result::parse_stdout;

/// A worktree with its artifacts dir, and the variables a run of `role` gets.
struct Fixture {
    dir: tempfile::TempDir,
    vars: BTreeMap<String, String>,
}

impl Fixture {
    fn new(role: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = dir.path().join("docs/work-items/ORCH-7");
        let mut vars = BTreeMap::new();
        vars.insert("ORCH_ROLE".to_string(), role.to_string());
        vars.insert("ORCH_WORK_ITEM".to_string(), "ORCH-7".to_string());
        vars.insert(
            "ORCH_ARTIFACTS_DIR".to_string(),
            artifacts.display().to_string(),
        );
        Self { dir, vars }
    }

    fn set(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.to_string(), value.to_string());
        self
    }

    fn run(&self, task: &str) -> Reply {
        answer(task, |k| self.vars.get(k).cloned(), self.dir.path())
    }

    fn artifact(&self, name: &str) -> String {
        let path = self.dir.path().join("docs/work-items/ORCH-7").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

/// The front matter of a Markdown artifact, parsed as the gates will parse it.
fn front_matter(text: &str) -> serde_yaml::Mapping {
    let rest = text
        .strip_prefix("---\n")
        .expect("starts with front matter");
    let (yaml, _body) = rest.split_once("\n---\n").expect("front matter is closed");
    serde_yaml::from_str(yaml).unwrap()
}

fn field(text: &str, key: &str) -> String {
    match front_matter(text).get(key) {
        Some(serde_yaml::Value::String(s)) => s.clone(),
        other => panic!("{key}: {other:?} in\n{text}"),
    }
}

#[test]
fn the_analyst_writes_the_analysis_set_and_keeps_a_human_request() {
    let fx = Fixture::new("analyst");
    let reply = fx.run("# Add a health endpoint\nIt should answer 200.");
    assert_eq!(reply.exit, 0, "{reply:?}");
    for name in [
        "00-business-request.md",
        "01-brd.md",
        "02-trz.md",
        "03-acceptance-criteria.md",
    ] {
        let text = fx.artifact(name);
        assert_eq!(field(&text, "work_item_id"), "ORCH-7");
        assert!(text.contains("scripted agent (dry run)"), "{name}");
    }
    assert!(
        fx.artifact("00-business-request.md")
            .contains("It should answer 200.")
    );
    let plan: serde_yaml::Value = serde_yaml::from_str(&fx.artifact("04-test-plan.yaml")).unwrap();
    assert_eq!(plan["cases"][0]["id"], "TC-01");
    assert_eq!(plan["work_item_id"], "ORCH-7");

    // A request a human wrote is not the analyst's to overwrite.
    let request = fx
        .dir
        .path()
        .join("docs/work-items/ORCH-7/00-business-request.md");
    std::fs::write(&request, "the customer's words").unwrap();
    assert_eq!(fx.run("task").exit, 0);
    assert_eq!(
        std::fs::read_to_string(&request).unwrap(),
        "the customer's words"
    );
}

#[test]
fn the_architect_writes_an_adr_that_can_conflict() {
    let fx = Fixture::new("architect");
    assert_eq!(fx.run("Add a health endpoint").exit, 0);
    let adr = fx.artifact("06-adr/ADR-001-add-a-health-endpoint.md");
    assert_eq!(field(&adr, "status"), "accepted");
    assert_eq!(field(&adr, "verdict"), "OK");

    let fx = Fixture::new("architect").set("ORCH_ATTEMPT", "1");
    let reply = fx.run("Add a health endpoint\nscripted-agent: architect=CONFLICT");
    assert!(reply.message.contains("verdict CONFLICT"), "{reply:?}");
    let adr = fx.artifact("06-adr/ADR-001-add-a-health-endpoint.md");
    assert_eq!(field(&adr, "verdict"), "CONFLICT");
}

#[test]
fn the_developer_changes_the_worktree_outside_docs_once_per_attempt() {
    let fx = Fixture::new("developer");
    assert_eq!(fx.run("task").exit, 0);
    let fx = fx.set("ORCH_ATTEMPT", "2");
    let reply = fx.run("task");
    assert!(reply.message.contains("changes/ORCH-7.md"), "{reply:?}");
    let changes = std::fs::read_to_string(fx.dir.path().join("changes/ORCH-7.md")).unwrap();
    assert!(
        changes.contains("ORCH-7") && changes.contains("attempt 1"),
        "{changes}"
    );
    assert!(changes.contains("attempt 2"), "{changes}");
    assert!(
        !fx.dir.path().join("docs").exists(),
        "the developer wrote into docs/"
    );
}

#[test]
fn the_reviewer_follows_the_script_attempt_by_attempt() {
    let task = "scripted-agent: reviewer=REQUEST_CHANGES,APPROVED";
    let fx = Fixture::new("reviewer");
    assert_eq!(fx.run(task).exit, 0);
    let review = fx.artifact("12-review.md");
    assert_eq!(field(&review, "verdict"), "REQUEST_CHANGES");
    assert!(review.contains("### P0 — Blocker") && review.contains("### P1 — Must fix"));

    let fx = fx.set("ORCH_ATTEMPT", "2");
    assert_eq!(fx.run(task).exit, 0);
    let review = fx.artifact("12-review.md");
    assert_eq!(field(&review, "verdict"), "APPROVED");
    assert!(!review.contains("### P0"));
}

#[test]
fn the_tester_reports_failures_in_a_failed_section() {
    let fx = Fixture::new("tester");
    assert_eq!(fx.run("scripted-agent: tester=FAIL").exit, 0);
    let report = fx.artifact("13-test-report.md");
    assert_eq!(field(&report, "result"), "FAIL");
    assert!(report.contains("## Failed"));

    let fx = Fixture::new("tester");
    assert_eq!(fx.run("no directives").exit, 0);
    let report = fx.artifact("13-test-report.md");
    assert_eq!(field(&report, "result"), "PASS");
    assert!(!report.contains("## Failed"));
}

#[test]
fn the_deployer_writes_the_log_of_its_stage() {
    let fx = Fixture::new("deployer").set("ORCH_STAGE", "deploy-staging");
    assert_eq!(fx.run("scripted-agent: deployer=FAILED,SUCCESS").exit, 0);
    assert_eq!(
        field(&fx.artifact("15-staging-log.md"), "staging_status"),
        "FAILED"
    );

    let fx = fx.set("ORCH_STAGE", "deploy").set("ORCH_ATTEMPT", "2");
    assert_eq!(fx.run("scripted-agent: deployer=FAILED,SUCCESS").exit, 0);
    assert_eq!(
        field(&fx.artifact("14-deploy-log.md"), "deploy_status"),
        "SUCCESS"
    );
}

#[test]
fn a_scripted_crash_exits_1_writes_nothing_and_says_so() {
    let fx = Fixture::new("tester");
    let reply = fx.run("scripted-agent: fail=tester:1");
    assert_eq!(reply.exit, 1);
    assert!(reply.message.contains("simulated crash"), "{reply:?}");
    assert!(!fx.dir.path().join("docs").exists());
    let parsed = parse_stdout(&reply.to_json(5).to_string()).unwrap();
    assert!(parsed.is_error);
    assert_eq!(parsed.subtype, "error_during_execution");
    // Only the first attempt was scripted to crash.
    assert_eq!(
        fx.set("ORCH_ATTEMPT", "2")
            .run("scripted-agent: fail=tester:1")
            .exit,
        0
    );
}

#[test]
fn missing_or_invalid_variables_exit_2_naming_the_variable() {
    let cases: [(&str, Option<&str>, &str); 7] = [
        ("ORCH_ROLE", None, "ORCH_ROLE is not set"),
        (
            "ORCH_ROLE",
            Some("poet"),
            "ORCH_ROLE: unknown role \"poet\"",
        ),
        ("ORCH_WORK_ITEM", None, "ORCH_WORK_ITEM is not set"),
        (
            "ORCH_WORK_ITEM",
            Some("../etc"),
            "ORCH_WORK_ITEM: invalid work item id",
        ),
        (
            "ORCH_ARTIFACTS_DIR",
            Some("docs/x"),
            "ORCH_ARTIFACTS_DIR must be an absolute path",
        ),
        (
            "ORCH_ATTEMPT",
            Some("0"),
            "ORCH_ATTEMPT must be a whole number from 1",
        ),
        (
            "ORCH_ATTEMPT",
            Some("two"),
            "ORCH_ATTEMPT must be a whole number from 1",
        ),
    ];
    for (key, value, needle) in cases {
        let mut fx = Fixture::new("tester");
        match value {
            Some(value) => fx = fx.set(key, value),
            None => {
                fx.vars.remove(key);
            }
        }
        let reply = fx.run("task");
        assert_eq!(reply.exit, 2, "{key}={value:?}: {reply:?}");
        assert!(reply.message.contains(needle), "{key}={value:?}: {reply:?}");
    }
    let no_stage = Fixture::new("deployer").run("task");
    assert_eq!(no_stage.exit, 2);
    assert!(
        no_stage.message.contains("ORCH_STAGE is not set"),
        "{no_stage:?}"
    );
    let wrong_stage = Fixture::new("deployer")
        .set("ORCH_STAGE", "review")
        .run("task");
    assert!(
        wrong_stage
            .message
            .contains("ORCH_STAGE must be deploy-staging or deploy")
    );
    let typo = Fixture::new("tester").run("scripted-agent: tester=PASSED");
    assert_eq!(typo.exit, 2);
    assert!(typo.message.contains("tester=PASSED"), "{typo:?}");
}

#[test]
fn the_reply_is_a_cli_result_labelled_as_a_dry_run() {
    let fx = Fixture::new("analyst");
    let reply = fx.run("task");
    let json = reply.to_json(12);
    let parsed = parse_stdout(&json.to_string()).unwrap();
    assert_eq!(parsed.subtype, "success");
    assert!(!parsed.is_error);
    assert_eq!(parsed.num_turns, Some(1));
    assert_eq!(parsed.duration_ms, Some(12));
    assert_eq!(parsed.primary_model(), Some("scripted-agent"));
    assert_eq!(parsed.cost_usd(), 0.0);
    assert!(parsed.session_id.unwrap().starts_with("scripted-"));
    let text = parsed.result.unwrap();
    assert!(
        text.starts_with("[scripted-agent] dry run: analyst wrote"),
        "{text}"
    );
    assert!(text.contains("docs/work-items/ORCH-7/01-brd.md"), "{text}");
}

#[test]
fn a_run_past_max_budget_usd_ends_as_the_clis_budget_error_with_its_whole_cost() {
    let fx = Fixture::new("analyst");
    let within = fx.run("scripted-agent: cost=0.4").within_budget(Some(0.5));
    assert_eq!((within.exit, within.over_budget), (0, false));
    let over = fx.run("scripted-agent: cost=0.4").within_budget(Some(0.2));
    assert_eq!(over.exit, 1);
    let parsed = parse_stdout(&over.to_json(3).to_string()).unwrap();
    assert_eq!(parsed.subtype, "error_max_budget_usd");
    assert!(parsed.is_error);
    assert_eq!(
        parsed.cost_usd(),
        0.4,
        "the overshoot is reported, not hidden"
    );
    assert_eq!(
        parsed.error_message().as_deref(),
        Some("Reached maximum budget ($0.2)")
    );
    // Without the flag nothing changes.
    assert_eq!(
        fx.run("scripted-agent: cost=0.4").within_budget(None).exit,
        0
    );
}
