//! The files the stub has the CLI write for each role: the same names and front matter the
//! orchestrator's gates read (`orchestrator_actors::domain::artifacts`), with bodies that say no model
//! wrote them. The verdicts come from [`Verdicts`].

use std::path::{Path, PathBuf};

use orchestrator_actors::domain::artifacts;
use orchestrator_actors::domain::frontmatter;
use orchestrator_actors::{Role, WorkItemId};

use super::config::Verdicts;
use super::prompt::Assignment;

/// Said in every body, so nobody mistakes a stubbed run for an agent's work.
const STUB_NOTE: &str = "> Written through the Anthropic API stub: no model was involved.";

/// The file written when the prompt names no role the stub knows.
pub const FALLBACK_FILE: &str = "stub-output.txt";

/// One file the stub asks the CLI to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFile {
    /// Absolute path, as the `Write` tool requires.
    pub path: PathBuf,
    /// The whole content.
    pub content: String,
}

/// The files for `assignment` under the working directory `cwd`; a single
/// [`FALLBACK_FILE`] when there is no assignment. The developer's change file is read from
/// disk (the stub runs beside the CLI) so each run appends a line and leaves a real diff.
pub fn plan(assignment: Option<&Assignment>, cwd: &Path, verdicts: &Verdicts) -> Vec<PlannedFile> {
    let Some(a) = assignment else {
        return vec![PlannedFile {
            path: cwd.join(FALLBACK_FILE),
            content: "Written through the Anthropic API stub: the prompt named no role.\n"
                .to_string(),
        }];
    };
    let dir = cwd.join(artifacts::work_item_dir(&a.work_item));
    let file = |name: &str, content: String| PlannedFile {
        path: dir.join(name),
        content,
    };
    let (id, title) = (&a.work_item, a.title.as_str());
    match a.role {
        Role::Analyst => vec![
            file(artifacts::BRD, brd(id, title)),
            file(artifacts::TRZ, trz(id, title)),
            file(artifacts::ACCEPTANCE_CRITERIA, acceptance(id)),
            file(artifacts::TEST_PLAN, test_plan(id, title)),
        ],
        Role::Architect => vec![file(
            &artifacts::adr_file(1, title),
            adr(id, title, &verdicts.architect),
        )],
        Role::Developer => vec![change(cwd, id)],
        Role::Reviewer => vec![file(artifacts::REVIEW, review(id, &verdicts.reviewer))],
        Role::Tester => vec![file(
            artifacts::TEST_REPORT,
            test_report(id, title, &verdicts.tester),
        )],
        // The prompt does not say which deploy stage runs, so both logs are written; each
        // gate reads only its own.
        Role::Deployer => vec![
            file(
                artifacts::STAGING_LOG,
                deploy_log(id, artifacts::STAGING_STATUS_KEY, &verdicts.staging),
            ),
            file(
                artifacts::DEPLOY_LOG,
                deploy_log(id, artifacts::DEPLOY_STATUS_KEY, &verdicts.deploy),
            ),
        ],
    }
}

/// A Markdown artifact: `fields`, the work item and the author as front matter, then `body`.
fn doc(fields: &[(&str, &str)], id: &WorkItemId, body: &str) -> String {
    let mut all = fields.to_vec();
    all.extend([("work_item_id", id.as_str()), ("author", "anthropic-stub")]);
    frontmatter::render(&all, body)
}

fn brd(id: &WorkItemId, title: &str) -> String {
    doc(
        &[("type", "brd")],
        id,
        &format!(
            "# BRD — {id}: {title}\n\n{STUB_NOTE}\n\n## Goal\n\n{title}\n\n## Scope\n\n\
             - What the business request asks for, nothing more.\n"
        ),
    )
}

fn trz(id: &WorkItemId, title: &str) -> String {
    doc(
        &[("type", "trz")],
        id,
        &format!(
            "# Technical requirements — {id}\n\n{STUB_NOTE}\n\n## Requirements\n\n\
             - REQ-01: {title}\n"
        ),
    )
}

fn acceptance(id: &WorkItemId) -> String {
    doc(
        &[("type", "acceptance-criteria")],
        id,
        &format!(
            "# Acceptance criteria — {id}\n\n{STUB_NOTE}\n\n\
             - AC-01: REQ-01 is met and the test plan passes.\n"
        ),
    )
}

/// The test plan is YAML; JSON string literals are valid YAML scalars, so any title is quoted
/// correctly.
fn test_plan(id: &WorkItemId, title: &str) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "# Written through the Anthropic API stub: no model was involved.\n\
         type: test-plan\nwork_item_id: {}\nauthor: anthropic-stub\ncases:\n\
         - id: TC-01\n  title: {}\n  covers: AC-01\n  expected: PASS\n",
        quote(id.as_str()),
        quote(title)
    )
}

fn adr(id: &WorkItemId, title: &str, verdict: &str) -> String {
    let conflict = verdict.trim().eq_ignore_ascii_case("CONFLICT");
    let (status, decision) = if conflict {
        (
            "proposed",
            "None: the requirements contradict each other (stubbed CONFLICT), so analysis \
             has to revisit them.",
        )
    } else {
        (
            "accepted",
            "Implement REQ-01 inside the existing structure; no new component.",
        )
    };
    doc(
        &[("type", "adr"), ("status", status), ("verdict", verdict)],
        id,
        &format!(
            "# ADR-001: {title}\n\n{STUB_NOTE}\n\n## Status\n\n{status}\n\n## Context\n\n\
             Work item {id}.\n\n## Decision\n\n{decision}\n\n## Consequences\n\nNone.\n"
        ),
    )
}

fn review(id: &WorkItemId, verdict: &str) -> String {
    let findings = if verdict.trim().eq_ignore_ascii_case("REQUEST_CHANGES") {
        format!(
            "### P0 — Blocker\n\n- [ ] The change for {id} has no test (stubbed finding).\n\n\
             ### P1 — Must fix\n\n- [ ] CHANGELOG.md does not mention {id} (stubbed finding).\n"
        )
    } else {
        "No P0 or P1 findings.\n".to_string()
    };
    doc(
        &[("type", "review"), ("verdict", verdict)],
        id,
        &format!(
            "# Review {id}\n\n{STUB_NOTE}\n\n## Summary\n\nStubbed verdict {verdict}.\n\n\
             ## Findings\n\n{findings}"
        ),
    )
}

fn test_report(id: &WorkItemId, title: &str, result: &str) -> String {
    let mut body = format!(
        "# Test report — {id}\n\n{STUB_NOTE} No test was run.\n\n## Results\n\n\
         | TC ID | Description | Result |\n|---|---|---|\n| TC-01 | {title} | {result} |\n"
    );
    if result.trim().eq_ignore_ascii_case("FAIL") {
        body.push_str("\n## Failed\n\n- TC-01: stubbed failure.\n");
    }
    body.push_str(&format!("\n## Summary\n\n{result}\n"));
    doc(&[("type", "test-report"), ("result", result)], id, &body)
}

fn deploy_log(id: &WorkItemId, key: &str, status: &str) -> String {
    doc(
        &[(key, status), ("type", "deploy-log")],
        id,
        &format!("# Deploy log — {id}\n\n{STUB_NOTE} Nothing was deployed.\n\n{key}: {status}\n"),
    )
}

/// The developer's change: `changes/<ID>.md` at the worktree root (as the dry-run agent
/// writes it), its current text plus one line numbered after the lines already there.
fn change(cwd: &Path, id: &WorkItemId) -> PlannedFile {
    let path = cwd.join("changes").join(format!("{id}.md"));
    let mut content = std::fs::read_to_string(&path).unwrap_or_default();
    if content.is_empty() {
        content.push_str("# Changes\n\nLines added through the Anthropic API stub.\n\n");
    } else if !content.ends_with('\n') {
        content.push('\n');
    }
    let run = content.lines().filter(|l| l.starts_with("- ")).count() + 1;
    content.push_str(&format!("- {id}: stubbed change, developer run {run}\n"));
    PlannedFile { path, content }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orchestrator_actors::GateKind;
    use orchestrator_actors::domain::gates::{self, ArtifactSource, GateContext, GateOutcome};

    use super::*;

    /// Artifacts held in memory, keyed by path relative to the repository root.
    struct Files(BTreeMap<String, String>);

    impl ArtifactSource for Files {
        fn read(&self, rel_path: &str) -> Result<Option<String>, String> {
            Ok(self.0.get(rel_path).cloned())
        }
        fn list_dir(&self, rel_dir: &str) -> Result<Vec<String>, String> {
            let prefix = format!("{rel_dir}/");
            Ok(self
                .0
                .keys()
                .filter_map(|k| k.strip_prefix(&prefix))
                .filter(|rest| !rest.contains('/'))
                .map(str::to_string)
                .collect())
        }
    }

    fn run(role: Role, verdicts: &Verdicts, files: &mut BTreeMap<String, String>) {
        let cwd = Path::new("/repo");
        let a = Assignment {
            role,
            work_item: WorkItemId::parse("ORCH-7").unwrap(),
            title: "Add a /health endpoint: \"quoted\"".to_string(),
        };
        for f in plan(Some(&a), cwd, verdicts) {
            let rel = f.path.strip_prefix(cwd).unwrap().display().to_string();
            files.insert(rel, f.content);
        }
    }

    fn gate(kind: GateKind, files: &BTreeMap<String, String>) -> GateOutcome {
        let id = WorkItemId::parse("ORCH-7").unwrap();
        let ctx = GateContext {
            id: &id,
            has_staging: true,
            ci: None,
        };
        gates::evaluate(kind, &Files(files.clone()), &ctx)
    }

    #[test]
    fn default_verdicts_pass_every_gate_the_roles_feed() {
        let mut files = BTreeMap::new();
        for role in Role::ALL {
            run(role, &Verdicts::default(), &mut files);
        }
        for kind in [
            GateKind::AnalysisComplete,
            GateKind::ArchitectureDone,
            GateKind::ReviewVerdict,
            GateKind::TestReport,
            GateKind::StagingStatus,
            GateKind::DeployStatus,
        ] {
            let outcome = gate(kind, &files);
            assert!(outcome.is_pass(), "{kind:?}: {outcome:?}");
        }
        assert!(
            files.contains_key("changes/ORCH-7.md"),
            "{:?}",
            files.keys()
        );
    }

    #[test]
    fn failing_verdicts_fail_their_gates_with_findings() {
        let verdicts = Verdicts {
            architect: "CONFLICT".into(),
            reviewer: "REQUEST_CHANGES".into(),
            tester: "FAIL".into(),
            staging: "FAILED".into(),
            deploy: "FAILED".into(),
        };
        let mut files = BTreeMap::new();
        for role in Role::ALL {
            run(role, &verdicts, &mut files);
        }
        assert!(gates::is_requirements_conflict(&gate(
            GateKind::ArchitectureDone,
            &files
        )));
        match gate(GateKind::ReviewVerdict, &files) {
            GateOutcome::Fail { must_fix, .. } => {
                assert!(must_fix.unwrap().contains("### P0"));
            }
            other => panic!("review: {other:?}"),
        }
        for kind in [
            GateKind::TestReport,
            GateKind::StagingStatus,
            GateKind::DeployStatus,
        ] {
            let outcome = gate(kind, &files);
            assert!(
                matches!(outcome, GateOutcome::Fail { .. }),
                "{kind:?}: {outcome:?}"
            );
        }
    }

    #[test]
    fn the_developer_appends_to_its_change_file() {
        let cwd = tempfile::tempdir().unwrap();
        let a = Assignment {
            role: Role::Developer,
            work_item: WorkItemId::parse("ORCH-7").unwrap(),
            title: "t".into(),
        };
        let first = plan(Some(&a), cwd.path(), &Verdicts::default()).remove(0);
        assert_eq!(first.path, cwd.path().join("changes/ORCH-7.md"));
        std::fs::create_dir_all(first.path.parent().unwrap()).unwrap();
        std::fs::write(&first.path, &first.content).unwrap();
        let second = plan(Some(&a), cwd.path(), &Verdicts::default()).remove(0);
        assert!(second.content.starts_with(&first.content));
        assert!(
            second.content.ends_with("developer run 2\n"),
            "{}",
            second.content
        );
    }

    #[test]
    fn without_a_role_one_fallback_file_is_written() {
        let files = plan(None, Path::new("/w"), &Verdicts::default());
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, Path::new("/w/stub-output.txt"));
    }
}
