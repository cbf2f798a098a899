//! The files each role writes in a scripted (dry) run: the same names and the same
//! machine-readable YAML front matter the quality gates read from real agents, with bodies
//! that say plainly that no model wrote them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use orchestrator_actors::domain::artifacts;
use orchestrator_actors::{Stage, WorkItemId};

use super::directives::Role;

/// Said in every file body, so nobody mistakes a dry run for an agent's work.
const DRY_RUN_NOTE: &str =
    "> Written by the orchestrator's scripted agent (dry run): no model was involved.";

/// What one role's run needs to know to write its files.
#[derive(Clone, Debug)]
pub struct Job<'a> {
    /// Which role is played.
    pub role: Role,
    /// The task's work item.
    pub work_item: &'a WorkItemId,
    /// `docs/work-items/<ID>/` in the worktree.
    pub artifacts_dir: &'a Path,
    /// The worktree root, where the developer's change goes.
    pub worktree: &'a Path,
    /// This role's run count on the task, from 1.
    pub attempt: u32,
    /// The stage, which tells the deployer staging from production.
    pub stage: Option<Stage>,
    /// The task text as given with `-p`.
    pub task: &'a str,
    /// The verdict this attempt was scripted to give.
    pub verdict: &'static str,
}

/// Writes the role's files and returns their paths, in the order written.
pub fn write(job: &Job<'_>) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Writer {
        job,
        title: title(job.task, job.work_item),
        written: Vec::new(),
    };
    match job.role {
        Role::Analyst => analyst(&mut out)?,
        Role::Architect => architect(&mut out)?,
        Role::Developer => {
            let path = append_change(job)?;
            out.written.push(path);
        }
        Role::Reviewer => reviewer(&mut out)?,
        Role::Tester => tester(&mut out)?,
        Role::Deployer => deployer(&mut out)?,
    }
    Ok(out.written)
}

/// Writes files under the artifacts directory and remembers what it wrote.
struct Writer<'a> {
    /// The run being played.
    job: &'a Job<'a>,
    /// The task's title, for headings and names.
    title: String,
    /// Paths written so far.
    written: Vec<PathBuf>,
}

impl Writer<'_> {
    /// Writes `name` (relative to the artifacts directory), creating directories.
    fn put(&mut self, name: &str, content: String) -> std::io::Result<()> {
        let path = self.job.artifacts_dir.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, content)?;
        self.written.push(path);
        Ok(())
    }

    /// Writes a Markdown artifact: front matter `fields` plus the common ones, then `body`.
    fn markdown(&mut self, name: &str, fields: &[(&str, &str)], body: &str) -> std::io::Result<()> {
        let text = doc(fields, self.job.work_item, Some(self.job.attempt), body);
        self.put(name, text)
    }
}

fn analyst(out: &mut Writer<'_>) -> std::io::Result<()> {
    let (id, title) = (out.job.work_item, out.title.clone());
    // The business request is the customer's text; a human may have written it already, and
    // it is not the analyst's to rewrite.
    if !out
        .job
        .artifacts_dir
        .join("00-business-request.md")
        .exists()
    {
        let body = format!(
            "# Business request {id}\n\n{DRY_RUN_NOTE} The request below is the task text as \
             given.\n\n{}\n",
            out.job.task.trim()
        );
        let text = doc(&[("type", "business-request")], id, None, &body);
        out.put("00-business-request.md", text)?;
    }
    out.markdown(
        "01-brd.md",
        &[("type", "brd")],
        &format!(
            "# BRD — {id}: {title}\n\n{DRY_RUN_NOTE}\n\n## Goal\n\n{title}\n\n## Scope\n\n\
             - What the business request asks for, nothing more.\n"
        ),
    )?;
    out.markdown(
        "02-trz.md",
        &[("type", "trz")],
        &format!(
            "# Technical requirements — {id}\n\n{DRY_RUN_NOTE}\n\n## Requirements\n\n\
             - REQ-01: {title}\n"
        ),
    )?;
    out.markdown(
        "03-acceptance-criteria.md",
        &[("type", "acceptance-criteria")],
        &format!(
            "# Acceptance criteria — {id}\n\n{DRY_RUN_NOTE}\n\n\
             - AC-01: REQ-01 is met and the test plan passes.\n"
        ),
    )?;
    let plan = test_plan(id, out.job.attempt, &title);
    out.put("04-test-plan.yaml", plan)
}

fn architect(out: &mut Writer<'_>) -> std::io::Result<()> {
    let (id, attempt, verdict) = (out.job.work_item, out.job.attempt, out.job.verdict);
    let title = out.title.clone();
    // A conflicting ADR is not accepted: it sends the task back to analysis.
    let (status, heading, decision) = if verdict == "CONFLICT" {
        (
            "proposed",
            "Proposed",
            "None: the requirements contradict each other or the architecture (scripted \
             CONFLICT), so analysis has to revisit them.",
        )
    } else {
        (
            "accepted",
            "Accepted",
            "Implement REQ-01 inside the existing structure; no new component, no new \
             dependency.",
        )
    };
    out.markdown(
        &artifacts::adr_file(1, &title),
        &[("type", "adr"), ("status", status), ("verdict", verdict)],
        &format!(
            "# ADR-001: {title}\n\n{DRY_RUN_NOTE}\n\n## Status\n\n{heading}\n\n\
             ## Context\n\nWork item {id} (attempt {attempt}).\n\n## Decision\n\n{decision}\n\n\
             ## Consequences\n\nNone beyond the change itself.\n"
        ),
    )
}

fn reviewer(out: &mut Writer<'_>) -> std::io::Result<()> {
    let (id, attempt, verdict) = (out.job.work_item, out.job.attempt, out.job.verdict);
    let findings = if verdict == "REQUEST_CHANGES" {
        format!(
            "### P0 — Blocker\n\n\
             - [ ] The change for {id} has no test (scripted finding, attempt {attempt}).\n\n\
             ### P1 — Must fix\n\n\
             - [ ] CHANGELOG.md does not mention {id} (scripted finding, attempt {attempt}).\n"
        )
    } else {
        "No P0 or P1 findings.\n".to_string()
    };
    out.markdown(
        "12-review.md",
        &[("type", "review"), ("verdict", verdict)],
        &format!(
            "# Review {id}\n\n{DRY_RUN_NOTE}\n\n## Summary\n\n\
             Scripted verdict {verdict} on attempt {attempt}.\n\n## Findings\n\n{findings}"
        ),
    )
}

fn tester(out: &mut Writer<'_>) -> std::io::Result<()> {
    let (id, attempt, verdict) = (out.job.work_item, out.job.attempt, out.job.verdict);
    let mut body = format!(
        "# Test report — {id}\n\n{DRY_RUN_NOTE} No test was run.\n\n## Results\n\n\
         | TC ID | Description | Result |\n|---|---|---|\n| TC-01 | {} | {verdict} |\n",
        out.title
    );
    if verdict == "FAIL" {
        let _ = write!(
            body,
            "\n## Failed\n\n- TC-01: scripted failure on attempt {attempt}.\n"
        );
    }
    let _ = write!(body, "\n## Summary\n\n{verdict}\n");
    out.markdown(
        "13-test-report.md",
        &[("type", "test-report"), ("result", verdict)],
        &body,
    )
}

fn deployer(out: &mut Writer<'_>) -> std::io::Result<()> {
    let (id, attempt, verdict) = (out.job.work_item, out.job.attempt, out.job.verdict);
    let (file, key, heading) = match out.job.stage {
        Some(Stage::DeployStaging) => ("15-staging-log.md", "staging_status", "Staging gate log"),
        _ => ("14-deploy-log.md", "deploy_status", "Deploy log"),
    };
    out.markdown(
        file,
        &[(key, verdict), ("type", "deploy-log")],
        &format!(
            "# {heading} — {id}\n\n{DRY_RUN_NOTE} Nothing was deployed.\n\n\
             Scripted status {verdict} on attempt {attempt}.\n"
        ),
    )
}

/// A Markdown file: front matter (`fields`, then the work item, attempt and author), body.
fn doc(fields: &[(&str, &str)], id: &WorkItemId, attempt: Option<u32>, body: &str) -> String {
    let mut out = String::from("---\n");
    for (key, value) in fields {
        let _ = writeln!(out, "{key}: {value}");
    }
    // Quoted: an id like `0123` or `1e5` would otherwise be read as a number.
    let _ = writeln!(out, "work_item_id: \"{id}\"");
    if let Some(attempt) = attempt {
        let _ = writeln!(out, "version: {attempt}");
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let _ = write!(
        out,
        "author: scripted-agent\ngenerated_at: \"{now}\"\n---\n\n{body}"
    );
    out
}

/// The test plan: YAML through serde, so any title is quoted correctly.
fn test_plan(id: &WorkItemId, attempt: u32, title: &str) -> String {
    #[derive(serde::Serialize)]
    struct Plan<'a> {
        /// Artifact kind, as in the Markdown artifacts' front matter.
        r#type: &'static str,
        /// The task's work item.
        work_item_id: &'a str,
        /// The analyst attempt that wrote it.
        version: u32,
        /// Always `scripted-agent`.
        author: &'static str,
        /// The test cases.
        cases: Vec<Case<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Case<'a> {
        /// `TC-NN`.
        id: &'static str,
        /// What is checked.
        title: &'a str,
        /// The acceptance criterion it proves.
        covers: &'static str,
        /// The expected outcome.
        expected: &'static str,
    }
    let plan = Plan {
        r#type: "test-plan",
        work_item_id: id.as_str(),
        version: attempt,
        author: "scripted-agent",
        cases: vec![Case {
            id: "TC-01",
            title,
            covers: "AC-01",
            expected: "PASS",
        }],
    };
    let yaml = serde_yaml::to_string(&plan).unwrap_or_default();
    format!(
        "# Written by the orchestrator's scripted agent (dry run): no model was involved.\n{yaml}"
    )
}

/// The developer's change: one line per attempt in `changes/<ID>.md` at the worktree root, a
/// real diff for the orchestrator to commit (the agent itself never commits). One file per
/// work item, so tasks running side by side in one repository never conflict at merge.
fn append_change(job: &Job<'_>) -> std::io::Result<PathBuf> {
    let path = job
        .worktree
        .join("changes")
        .join(format!("{}.md", job.work_item));
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    let existing = std::fs::read(&path).unwrap_or_default();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut text = String::new();
    if existing.is_empty() {
        text.push_str(
            "# Changes\n\nLines added by the orchestrator's scripted agent (dry runs).\n\n",
        );
    } else if !existing.ends_with(b"\n") {
        text.push('\n');
    }
    let _ = writeln!(
        text,
        "- {}: scripted dry-run change, developer attempt {} ({})",
        job.work_item,
        job.attempt,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    // What it was asked to fix, quoted, so a run's input can be read back from the branch.
    if let Some((_, must_fix)) = job.task.split_once("Must fix before anything else:\n") {
        for line in must_fix.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(text, "  > {line}");
        }
    }
    file.write_all(text.as_bytes())?;
    Ok(path)
}

/// The task's title: its first line that is not a directive, without Markdown heading marks.
pub fn title(task: &str, id: &WorkItemId) -> String {
    let line = task
        .lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .find(|l| !l.is_empty() && !l.starts_with(super::directives::PREFIX));
    match line {
        Some(line) => line.chars().take(80).collect(),
        None => format!("work item {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_skips_directives_and_heading_marks() {
        let id = WorkItemId::parse("ORCH-7").unwrap();
        let task = "\n  scripted-agent: reviewer=APPROVED\n## Add a /health endpoint\nbody";
        assert_eq!(title(task, &id), "Add a /health endpoint");
        assert_eq!(
            title("scripted-agent: tester=FAIL\n", &id),
            "work item ORCH-7"
        );
    }

    #[test]
    fn adr_names_are_safe_file_names() {
        assert_eq!(
            artifacts::adr_file(1, "Add a /health endpoint!"),
            "06-adr/ADR-001-add-a-health-endpoint.md"
        );
        assert_eq!(
            artifacts::adr_file(1, "Добавить эндпоинт"),
            "06-adr/ADR-001-decision.md"
        );
        let long = artifacts::adr_file(1, &"word ".repeat(30));
        let slug = long
            .trim_start_matches("06-adr/ADR-001-")
            .trim_end_matches(".md");
        assert!(slug.len() <= 40 && !slug.ends_with('-'), "{long}");
    }
}
