//! Gate evaluation against in-memory artifacts: one table per gate, covering the verdict
//! files agents actually get wrong (prose verdicts, mixed signals, broken YAML, odd case).

use std::collections::HashMap;

use orchestrator_actors::domain::gates::{
    ArtifactSource, CiOutcome, GateContext, GateOutcome, evaluate, is_requirements_conflict,
};
use orchestrator_actors::{GateKind, Stage, WorkItemId};

const DIR: &str = "docs/work-items/ORCH-1";

/// Artifacts keyed by repo-relative path; `broken` makes every call fail like a git outage.
#[derive(Default)]
struct Memory {
    files: HashMap<String, String>,
    broken: bool,
}

impl Memory {
    fn with(files: &[(&str, &str)]) -> Self {
        let files = files
            .iter()
            .map(|(name, text)| (format!("{DIR}/{name}"), text.to_string()))
            .collect();
        Self {
            files,
            broken: false,
        }
    }
}

impl ArtifactSource for Memory {
    fn read(&self, rel_path: &str) -> Result<Option<String>, String> {
        if self.broken {
            return Err("git show origin/main failed: connection reset".into());
        }
        Ok(self.files.get(rel_path).cloned())
    }

    fn list_dir(&self, rel_dir: &str) -> Result<Vec<String>, String> {
        if self.broken {
            return Err("git ls-tree failed: connection reset".into());
        }
        let prefix = format!("{rel_dir}/");
        Ok(self
            .files
            .keys()
            .filter_map(|path| path.strip_prefix(&prefix))
            .filter(|name| !name.contains('/'))
            .map(str::to_string)
            .collect())
    }
}

/// What a case expects: the outcome's kind and words its reason must contain.
enum Expect {
    Pass(&'static str),
    Fail(&'static str),
}

/// One row of a gate's table: a name for failure messages, the artifacts, the expectation.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Expect);

fn id() -> WorkItemId {
    WorkItemId::parse("ORCH-1").unwrap()
}

fn run(kind: GateKind, files: &[(&str, &str)], has_staging: bool) -> GateOutcome {
    let id = id();
    let ctx = GateContext {
        id: &id,
        has_staging,
        ci: None,
    };
    evaluate(kind, &Memory::with(files), &ctx)
}

fn check(kind: GateKind, cases: &[Case]) {
    for (name, files, expect) in cases {
        let outcome = run(kind, files, true);
        let (ok, words) = match (expect, &outcome) {
            (Expect::Pass(w), GateOutcome::Pass { .. }) => (true, w),
            (Expect::Fail(w), GateOutcome::Fail { .. }) => (true, w),
            (Expect::Pass(w) | Expect::Fail(w), _) => (false, w),
        };
        assert!(ok, "{kind} / {}: wrong outcome {outcome:?}", name);
        assert!(
            outcome.reason().contains(words),
            "{kind} / {}: reason {:?} lacks {words:?}",
            name,
            outcome.reason()
        );
    }
}

fn must_fix(outcome: &GateOutcome) -> &str {
    match outcome {
        GateOutcome::Fail {
            must_fix: Some(text),
            ..
        } => text,
        other => panic!("expected a Fail with must_fix, got {other:?}"),
    }
}

fn source_error_defers(kind: GateKind) {
    let id = id();
    let ctx = GateContext {
        id: &id,
        has_staging: true,
        ci: None,
    };
    let source = Memory {
        broken: true,
        ..Memory::default()
    };
    let outcome = evaluate(kind, &source, &ctx);
    assert!(
        matches!(&outcome, GateOutcome::Defer { reason } if reason.contains("connection reset")),
        "{kind}: {outcome:?}"
    );
}

#[test]
fn a_source_error_defers_every_artifact_gate() {
    for kind in GateKind::ALL {
        if kind != GateKind::CiGreen {
            source_error_defers(kind);
        }
    }
}

const BRD: (&str, &str) = ("01-brd.md", "# BRD\n");
const TRZ: (&str, &str) = ("02-trz.md", "# TRZ\n");
const AC: (&str, &str) = ("03-acceptance-criteria.md", "# AC\n");
const PLAN: (&str, &str) = ("04-test-plan.yaml", "tests: []\n");

#[test]
fn analysis_needs_all_four_artifacts_non_blank() {
    check(
        GateKind::AnalysisComplete,
        &[
            ("all present", &[BRD, TRZ, AC, PLAN], Expect::Pass(DIR)),
            (
                "plan missing",
                &[BRD, TRZ, AC],
                Expect::Fail("docs/work-items/ORCH-1/04-test-plan.yaml"),
            ),
            (
                "whitespace-only BRD",
                &[("01-brd.md", " \n\t\n"), TRZ, AC, PLAN],
                Expect::Fail("01-brd.md"),
            ),
            (
                "nothing written",
                &[],
                Expect::Fail("02-trz.md, docs/work-items/ORCH-1/03-acceptance"),
            ),
        ],
    );
}

#[test]
fn architecture_needs_an_adr_and_no_conflict() {
    check(
        GateKind::ArchitectureDone,
        &[
            (
                "one ADR",
                &[("06-adr/ADR-001-store.md", "# Use SQLite\n")],
                Expect::Pass("06-adr/ADR-001-store.md"),
            ),
            (
                "accepted ADR with front matter",
                &[("06-adr/ADR-001-x.md", "---\nstatus: accepted\n---\n# X\n")],
                Expect::Pass("ADR-001-x.md"),
            ),
            ("no ADR directory", &[BRD], Expect::Fail("06-adr/")),
            (
                "only non-ADR files and an empty ADR",
                &[("06-adr/notes.md", "# n\n"), ("06-adr/ADR-002-y.md", "\n")],
                Expect::Fail("ADR-*.md"),
            ),
            (
                "broken front matter in an ADR",
                &[("06-adr/ADR-001-x.md", "---\nverdict: [CONFLICT\n---\n")],
                Expect::Fail("ADR-001-x.md"),
            ),
        ],
    );
}

#[test]
fn an_architect_conflict_goes_back_to_analysis() {
    let files = [
        ("06-adr/ADR-001-ok.md", "# Fine\n"),
        (
            "06-adr/ADR-002-clash.md",
            "---\nVerdict: conflict\n---\nAC-3 contradicts TRZ §2.\n",
        ),
    ];
    let outcome = run(GateKind::ArchitectureDone, &files, true);
    assert!(is_requirements_conflict(&outcome), "{outcome:?}");
    assert!(
        outcome
            .reason()
            .starts_with("architect reports a conflict with the requirements")
    );
    assert!(outcome.reason().contains("ADR-002-clash.md") && outcome.reason().contains("verdict"));
    assert_eq!(must_fix(&outcome), "AC-3 contradicts TRZ §2.");
    assert_eq!(
        outcome.rollback_target(Stage::Architecture),
        Some(Stage::Analysis)
    );

    let missing = run(GateKind::ArchitectureDone, &[], true);
    assert!(!is_requirements_conflict(&missing));
    assert_eq!(
        missing.rollback_target(Stage::Architecture),
        Some(Stage::Architecture)
    );
}

#[test]
fn ci_outcome_maps_to_the_gate() {
    let id = id();
    let gate = |ci: Option<CiOutcome>| {
        let ctx = GateContext {
            id: &id,
            has_staging: false,
            ci,
        };
        evaluate(GateKind::CiGreen, &Memory::default(), &ctx)
    };
    assert!(
        matches!(gate(None), GateOutcome::Defer { reason } if reason.contains("CI has not run"))
    );
    let green = gate(Some(CiOutcome::Green {
        summary: "cargo test: 212 passed".into(),
    }));
    assert!(green.is_pass() && green.reason().contains("212 passed"));
    let red = gate(Some(CiOutcome::Red {
        output_tail: "test store::jobs ... FAILED\n".into(),
    }));
    assert_eq!(must_fix(&red), "test store::jobs ... FAILED");
    assert_eq!(
        red.rollback_target(Stage::Development),
        Some(Stage::Development)
    );
    let broken = gate(Some(CiOutcome::ToolError {
        message: "runner offline".into(),
    }));
    assert!(matches!(broken, GateOutcome::Defer { reason } if reason.contains("runner offline")));
}

/// A realistic reviewer report: findings nested under `## Findings`, a code block that
/// contains a heading-like line, and a P2 section that must not reach the developer.
const REVIEW_REQUEST_CHANGES: &str = include_str!("fixtures/gates/12-review-request-changes.md");

#[test]
fn review_reads_only_the_front_matter_verdict() {
    check(
        GateKind::ReviewVerdict,
        &[
            (
                "approved",
                &[("12-review.md", "---\nverdict: APPROVED\n---\n# ok\n")],
                Expect::Pass("verdict: APPROVED"),
            ),
            (
                "key and value in another case",
                &[("12-review.md", "---\nVerdict: approved\n---\n")],
                Expect::Pass("12-review.md"),
            ),
            (
                "request changes",
                &[(
                    "12-review.md",
                    "---\nverdict: REQUEST_CHANGES\n---\nfix it\n",
                )],
                Expect::Fail("REQUEST_CHANGES"),
            ),
            (
                "unknown value",
                &[("12-review.md", "---\nverdict: LGTM\n---\n")],
                Expect::Fail("`verdict` is \"LGTM\""),
            ),
            (
                "verdict only in prose",
                &[("12-review.md", "# Review\n\nverdict: APPROVED\n")],
                Expect::Fail("12-review.md has no front matter"),
            ),
            (
                "front matter not at the top",
                &[("12-review.md", "# Review\n---\nverdict: APPROVED\n---\n")],
                Expect::Fail("no front matter"),
            ),
            (
                "key missing",
                &[("12-review.md", "---\ntype: review\n---\nAPPROVED\n")],
                Expect::Fail("front matter has no `verdict`"),
            ),
            (
                "YAML that does not parse",
                &[("12-review.md", "---\nverdict: APPROVED\n  bad: [\n---\n")],
                Expect::Fail("is not valid YAML"),
            ),
            (
                "unterminated block",
                &[("12-review.md", "---\nverdict: APPROVED\n")],
                Expect::Fail("never closed"),
            ),
            (
                "no review written",
                &[],
                Expect::Fail("docs/work-items/ORCH-1/12-review.md not found"),
            ),
        ],
    );
}

#[test]
fn request_changes_hands_over_the_p0_and_p1_findings_verbatim() {
    let outcome = run(
        GateKind::ReviewVerdict,
        &[("12-review.md", REVIEW_REQUEST_CHANGES)],
        true,
    );
    let text = must_fix(&outcome);
    assert!(text.starts_with("### P0 — Blocker\n- [ ] docs/architecture.md not updated"));
    assert!(
        text.contains("### P2 inside a code block is content"),
        "{text}"
    );
    assert!(
        text.contains("### P1 — Must fix\n- [ ] no test for the retry path"),
        "{text}"
    );
    assert!(
        !text.contains("rename `x`") && !text.contains("Not ready"),
        "{text}"
    );

    let top_level =
        "---\nverdict: request_changes\n---\n# R\n## P1\n- a\n### detail\nb\n## P2\n- c\n";
    let outcome = run(
        GateKind::ReviewVerdict,
        &[("12-review.md", top_level)],
        true,
    );
    assert_eq!(must_fix(&outcome), "## P1\n- a\n### detail\nb");

    let no_sections = "---\nverdict: REQUEST_CHANGES\n---\nPlease add tests.\n";
    let outcome = run(
        GateKind::ReviewVerdict,
        &[("12-review.md", no_sections)],
        true,
    );
    assert_eq!(must_fix(&outcome), "Please add tests.");
    assert_eq!(
        outcome.rollback_target(Stage::Review),
        Some(Stage::Development)
    );
}

#[test]
fn test_report_needs_a_pass_token_and_no_fail_token() {
    check(
        GateKind::TestReport,
        &[
            (
                "result PASS",
                &[("13-test-report.md", "---\nresult: PASS\n---\n")],
                Expect::Pass("result: PASS"),
            ),
            (
                "legacy status with extra words",
                &[(
                    "13-test-report.md",
                    "---\nstatus: passed — ready-to-deploy\n---\n",
                )],
                Expect::Pass("status"),
            ),
            (
                "negative wins over positive",
                &[(
                    "13-test-report.md",
                    "---\nresult: PASS\nstatus: FAILED\n---\n",
                )],
                Expect::Fail("`status: FAILED`"),
            ),
            (
                "prose says PASS, front matter BLOCKED",
                &[(
                    "13-test-report.md",
                    "---\nverdict: BLOCKED\n---\nAll checks PASS. 23 passed.\n",
                )],
                Expect::Fail("`verdict: BLOCKED`"),
            ),
            (
                "no recognised token",
                &[("13-test-report.md", "---\nstatus: done\n---\n")],
                Expect::Fail("no pass verdict in `status: done`"),
            ),
            (
                "no verdict key",
                &[("13-test-report.md", "---\ntype: test-report\n---\nPASS\n")],
                Expect::Fail("none of `result` / `verdict` / `status`"),
            ),
            (
                "prose only",
                &[("13-test-report.md", "# Report\nresult: PASS\n")],
                Expect::Fail("13-test-report.md has no front matter"),
            ),
            (
                "YAML that does not parse",
                &[("13-test-report.md", "---\nresult: PASS: [\n---\n")],
                Expect::Fail("not valid YAML"),
            ),
            (
                "no report",
                &[],
                Expect::Fail("13-test-report.md not found"),
            ),
        ],
    );
}

#[test]
fn a_failing_report_hands_over_its_failing_sections() {
    let report = "---\nresult: FAIL\n---\n# Report\n## Environment\nrust 1.95\n## Failed tests\n- TC-04 retry budget\n## Summary\nFAIL\n";
    let outcome = run(GateKind::TestReport, &[("13-test-report.md", report)], true);
    assert_eq!(must_fix(&outcome), "## Failed tests\n- TC-04 retry budget");

    let plain = "---\nresult: FAIL\n---\nTC-04 broke.\n";
    let outcome = run(GateKind::TestReport, &[("13-test-report.md", plain)], true);
    assert_eq!(must_fix(&outcome), "TC-04 broke.");
    assert_eq!(
        outcome.rollback_target(Stage::Testing),
        Some(Stage::Development)
    );
}

/// Cases shared by the staging and production logs: `(name, document, expectation)`; an
/// empty document means the log was never written.
fn status_cases(file: &'static str, key: &'static str) -> Vec<(&'static str, String, Expect)> {
    vec![
        (
            "success",
            format!("---\n{key}: SUCCESS\n---\nok\n"),
            Expect::Pass(key),
        ),
        (
            "lowercase value, upper-case key",
            format!("---\n{}: success\n---\n", key.to_uppercase()),
            Expect::Pass(file),
        ),
        (
            "failed",
            format!("---\n{key}: FAILED\n---\n2 checks failed\n"),
            Expect::Fail("FAILED"),
        ),
        (
            "other value",
            format!("---\n{key}: DONE\n---\n"),
            Expect::Fail("expected SUCCESS or FAILED"),
        ),
        (
            "key missing",
            "---\ntimestamp: 2026-01-01\n---\n".to_string(),
            Expect::Fail(key),
        ),
        (
            "prose only",
            format!("# Log\n{key}: SUCCESS\n"),
            Expect::Fail("no front matter"),
        ),
        ("no log", String::new(), Expect::Fail(file)),
    ]
}

#[test]
fn staging_and_deploy_logs_need_success() {
    for (kind, file, key) in [
        (
            GateKind::StagingStatus,
            "15-staging-log.md",
            "staging_status",
        ),
        (GateKind::DeployStatus, "14-deploy-log.md", "deploy_status"),
    ] {
        let (labels, texts): (Vec<_>, Vec<String>) = status_cases(file, key)
            .into_iter()
            .map(|(name, text, expect)| ((name, expect), text))
            .unzip();
        let files: Vec<Vec<(&str, &str)>> = texts
            .iter()
            .map(|text| match text.as_str() {
                "" => vec![],
                text => vec![(file, text)],
            })
            .collect();
        let table: Vec<Case> = labels
            .into_iter()
            .zip(&files)
            .map(|((name, expect), files)| (name, files.as_slice(), expect))
            .collect();
        check(kind, &table);
    }
}

#[test]
fn staging_is_not_applicable_without_a_stand() {
    let failed = [("15-staging-log.md", "---\nstaging_status: FAILED\n---\n")];
    let outcome = run(GateKind::StagingStatus, &failed, false);
    assert!(outcome.is_pass(), "{outcome:?}");
    assert!(
        outcome
            .reason()
            .starts_with("N/A: project has no staging stand")
    );
    let deploy = run(GateKind::DeployStatus, &[], false);
    assert!(!deploy.is_pass(), "the production gate never becomes N/A");
}
