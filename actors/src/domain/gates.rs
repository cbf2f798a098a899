//! Gate evaluation: decides from a stage's artifacts (or the CI outcome) whether a task may
//! leave the stage. Pure logic over the [`ArtifactSource`] port; verdicts come only from
//! front matter, and anything that cannot be read as a clear green is not a pass. [`qg0`] is
//! the gate before all of them: whether a tracker issue may become a task at all.

use crate::domain::artifacts::{self, ANALYSIS_ARTIFACTS};
use crate::domain::frontmatter::{self, FrontMatter};
use crate::domain::pipeline::GateKind;
use crate::{Stage, WorkItemId};

/// Read access to a work item's artifacts. The adapter looks in the task's worktree first and
/// falls back to `origin/main`, because some logs are merged to main by a separate change.
/// Calls block; callers run gates off the async workers.
pub trait ArtifactSource: Send + Sync {
    /// The text of `rel_path` (relative to the repo root); `Ok(None)` when the file does not
    /// exist anywhere; `Err` for infrastructure trouble (git, I/O), described for a human.
    fn read(&self, rel_path: &str) -> Result<Option<String>, String>;
    /// The file names directly inside `rel_dir`; empty when the directory does not exist;
    /// `Err` for infrastructure trouble.
    fn list_dir(&self, rel_dir: &str) -> Result<Vec<String>, String>;
}

/// The result of one gate evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateOutcome {
    /// Green: the task may move on.
    Pass {
        /// What was checked, naming the file and key.
        reason: String,
    },
    /// A real red verdict: the task goes back (spending a retry).
    Fail {
        /// What is wrong, naming the file and key.
        reason: String,
        /// Text to hand the next agent verbatim (review findings, failing tests, CI output),
        /// so it fixes the actual problem instead of re-reading the whole artifact.
        must_fix: Option<String>,
        /// Where to go back to when it differs from the stage's `StageSpec::on_fail`: set only
        /// when the artifact itself says the problem lies earlier (an architect's conflict
        /// with the requirements goes back to `analysis`). `None`: use the table.
        back_to: Option<Stage>,
    },
    /// The gate could not be evaluated (infrastructure trouble, CI not run yet): try again
    /// later. Never a rollback and never spends a retry.
    Defer {
        /// What could not be done, naming the file or tool.
        reason: String,
    },
}

impl GateOutcome {
    /// The human-readable reason, whichever the outcome.
    pub fn reason(&self) -> &str {
        match self {
            GateOutcome::Pass { reason }
            | GateOutcome::Fail { reason, .. }
            | GateOutcome::Defer { reason } => reason,
        }
    }

    /// Whether the gate is green.
    pub fn is_pass(&self) -> bool {
        matches!(self, GateOutcome::Pass { .. })
    }

    /// Where a red outcome sends a task that is in `stage`: the gate's own target if it named
    /// one, else the pipeline table's. `None` for Pass and Defer (the task stays).
    pub fn rollback_target(&self, stage: Stage) -> Option<Stage> {
        match self {
            GateOutcome::Fail { back_to, .. } => {
                back_to.or(crate::domain::pipeline::spec(stage).on_fail)
            }
            _ => None,
        }
    }
}

/// Start of the reason when an architect reports that the requirements cannot be met.
pub const REQUIREMENTS_CONFLICT: &str = "architect reports a conflict with the requirements";

/// Whether `outcome` is the architect's requirements conflict, which goes back to `analysis`
/// rather than re-running the architect.
pub fn is_requirements_conflict(outcome: &GateOutcome) -> bool {
    matches!(
        outcome,
        GateOutcome::Fail { back_to: Some(Stage::Analysis), reason, .. }
            if reason.starts_with(REQUIREMENTS_CONFLICT)
    )
}

/// What the CI adapter observed when it ran the project's checks on the task branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiOutcome {
    /// Every check passed.
    Green {
        /// One line for the journal (e.g. which command ran, how long).
        summary: String,
    },
    /// The checks ran and failed.
    Red {
        /// The end of the output, which is what a developer needs to see.
        output_tail: String,
    },
    /// The checks could not be run (runner down, timeout, missing tool).
    ToolError {
        /// What went wrong, for the operator.
        message: String,
    },
}

/// Everything a gate needs besides the artifacts.
#[derive(Clone, Debug)]
pub struct GateContext<'a> {
    /// The work item whose artifacts are checked.
    pub id: &'a WorkItemId,
    /// Whether the project has a staging stand; without one the staging gate is N/A.
    pub has_staging: bool,
    /// The CI run's outcome for the task branch; `None` until CI has run.
    pub ci: Option<CiOutcome>,
}

/// Evaluates gate `kind` for `ctx.id`.
pub fn evaluate(kind: GateKind, src: &dyn ArtifactSource, ctx: &GateContext) -> GateOutcome {
    let result = match kind {
        GateKind::AnalysisComplete => analysis_complete(src, ctx.id),
        GateKind::ArchitectureDone => architecture_done(src, ctx.id),
        GateKind::CiGreen => Ok(ci_green(ctx.ci.as_ref())),
        GateKind::ReviewVerdict => review_verdict(src, ctx.id),
        GateKind::TestReport => test_report(src, ctx.id),
        GateKind::StagingStatus if !ctx.has_staging => Ok(pass(format!(
            "N/A: project has no staging stand ({} not checked)",
            artifacts::STAGING_LOG
        ))),
        GateKind::StagingStatus => status_log(
            src,
            ctx.id,
            artifacts::STAGING_LOG,
            artifacts::STAGING_STATUS_KEY,
        ),
        GateKind::DeployStatus => status_log(
            src,
            ctx.id,
            artifacts::DEPLOY_LOG,
            artifacts::DEPLOY_STATUS_KEY,
        ),
    };
    // Early exits (missing file, source error) travel as `Err` so each gate reads linearly.
    result.unwrap_or_else(|outcome| outcome)
}

type Gate = Result<GateOutcome, GateOutcome>;

fn pass(reason: String) -> GateOutcome {
    GateOutcome::Pass { reason }
}

fn fail(reason: String, must_fix: Option<String>) -> GateOutcome {
    GateOutcome::Fail {
        reason,
        must_fix,
        back_to: None,
    }
}

/// Reads an artifact: `Err(Defer)` on source trouble; `Ok(None)` when it does not exist.
fn read(src: &dyn ArtifactSource, rel_path: &str) -> Result<Option<String>, GateOutcome> {
    src.read(rel_path).map_err(|err| GateOutcome::Defer {
        reason: format!("cannot read {rel_path}: {err}"),
    })
}

/// Reads an artifact the stage's role had to write: missing is the role's failure.
fn read_required(src: &dyn ArtifactSource, rel_path: &str) -> Result<String, GateOutcome> {
    read(src, rel_path)?.ok_or_else(|| {
        fail(
            format!("{rel_path} not found: the role did not write it"),
            None,
        )
    })
}

/// Reads a verdict artifact's front matter and body; a file without a usable block fails,
/// because a verdict that cannot be read is not a green one.
fn read_verdict(
    src: &dyn ArtifactSource,
    rel_path: &str,
    keys: &str,
) -> Result<(FrontMatter, String), GateOutcome> {
    let text = read_required(src, rel_path)?;
    match frontmatter::split(&text) {
        Ok((Some(front_matter), body)) => Ok((front_matter, body.to_string())),
        Ok((None, _)) => Err(fail(
            format!(
                "{rel_path} has no front matter: {keys} must be in a leading `---` block (prose is ignored)"
            ),
            None,
        )),
        Err(err) => Err(fail(format!("{rel_path}: {err}; cannot read {keys}"), None)),
    }
}

fn analysis_complete(src: &dyn ArtifactSource, id: &WorkItemId) -> Gate {
    let mut missing = Vec::new();
    for file in ANALYSIS_ARTIFACTS {
        let rel_path = artifacts::path(id, file);
        if read(src, &rel_path)?.is_none_or(|text| text.trim().is_empty()) {
            missing.push(rel_path);
        }
    }
    if missing.is_empty() {
        Ok(pass(format!(
            "analysis artifacts present in {}: {}",
            artifacts::work_item_dir(id),
            ANALYSIS_ARTIFACTS.join(", ")
        )))
    } else {
        Ok(fail(
            format!(
                "analysis incomplete, missing or empty: {}",
                missing.join(", ")
            ),
            None,
        ))
    }
}

fn architecture_done(src: &dyn ArtifactSource, id: &WorkItemId) -> Gate {
    let dir = artifacts::adr_dir(id);
    let mut names: Vec<String> = src
        .list_dir(&dir)
        .map_err(|err| GateOutcome::Defer {
            reason: format!("cannot list {dir}/: {err}"),
        })?
        .into_iter()
        .filter(|name| artifacts::is_adr_file_name(name))
        .collect();
    names.sort();
    let mut decisions = Vec::new();
    for name in names {
        let rel_path = format!("{dir}/{name}");
        // The listing said it exists; vanishing now is a race in the source, not a verdict.
        let text = read(src, &rel_path)?.ok_or_else(|| GateOutcome::Defer {
            reason: format!("{rel_path} was listed but could not be read"),
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let key = artifacts::ADR_VERDICT_KEY;
        match frontmatter::split(&text) {
            Ok((Some(front_matter), body)) => {
                let verdict = front_matter.get(key).unwrap_or_default();
                if verdict.trim().eq_ignore_ascii_case("CONFLICT") {
                    return Ok(GateOutcome::Fail {
                        reason: format!(
                            "{REQUIREMENTS_CONFLICT}: {rel_path} has front-matter `{key}: CONFLICT`"
                        ),
                        must_fix: non_blank(body),
                        back_to: Some(Stage::Analysis),
                    });
                }
            }
            Ok((None, _)) => {}
            // Front matter is optional in an ADR, but a broken one may hide a conflict.
            Err(err) => {
                return Ok(fail(
                    format!("{rel_path}: {err}; cannot tell whether `{key}` reports CONFLICT"),
                    None,
                ));
            }
        }
        decisions.push(rel_path);
    }
    if decisions.is_empty() {
        Ok(fail(
            format!("no ADR: {dir}/ holds no non-empty ADR-*.md file"),
            None,
        ))
    } else {
        Ok(pass(format!("ADRs recorded: {}", decisions.join(", "))))
    }
}

fn ci_green(ci: Option<&CiOutcome>) -> GateOutcome {
    match ci {
        None => GateOutcome::Defer {
            reason: "CI has not run on the task branch yet".to_string(),
        },
        Some(CiOutcome::Green { summary }) => pass(format!("CI green: {summary}")),
        Some(CiOutcome::Red { output_tail }) => fail(
            "CI red: the project's checks failed on the task branch".to_string(),
            non_blank(output_tail),
        ),
        Some(CiOutcome::ToolError { message }) => GateOutcome::Defer {
            reason: format!("CI could not run: {message}"),
        },
    }
}

fn review_verdict(src: &dyn ArtifactSource, id: &WorkItemId) -> Gate {
    let rel_path = artifacts::path(id, artifacts::REVIEW);
    let key = artifacts::REVIEW_VERDICT_KEY;
    let (front_matter, body) = read_verdict(src, &rel_path, &format!("`{key}`"))?;
    let Some(verdict) = front_matter.get(key) else {
        return Ok(fail(
            format!(
                "{rel_path}: front matter has no `{key}` (expected APPROVED or REQUEST_CHANGES)"
            ),
            None,
        ));
    };
    let normalized = verdict.trim().to_ascii_uppercase();
    Ok(match normalized.as_str() {
        "APPROVED" => pass(format!("{rel_path}: `{key}: APPROVED`")),
        "REQUEST_CHANGES" => {
            let findings = sections(&body, |heading| has_word(heading, &["P0", "P1"]));
            fail(
                format!("{rel_path}: `{key}: REQUEST_CHANGES` (P0/P1 findings to fix)"),
                non_blank(&findings.unwrap_or(body)),
            )
        }
        _ => fail(
            format!("{rel_path}: `{key}` is {verdict:?}, expected APPROVED or REQUEST_CHANGES"),
            None,
        ),
    })
}

/// Words that make a test-report key green or red. Red wins over green in any key, so a
/// report cannot pass while any of its keys admits a failure.
const PASS_WORDS: [&str; 5] = ["PASS", "PASSED", "GREEN", "SUCCESS", "OK"];
const FAIL_WORDS: [&str; 5] = ["FAIL", "FAILED", "BLOCKED", "RED", "ERROR"];

fn test_report(src: &dyn ArtifactSource, id: &WorkItemId) -> Gate {
    let rel_path = artifacts::path(id, artifacts::TEST_REPORT);
    let keys = artifacts::TEST_REPORT_KEYS;
    let named = keys.map(|k| format!("`{k}`")).join(" / ");
    let (front_matter, body) = read_verdict(src, &rel_path, &named)?;
    let failing_part = || {
        let part = sections(&body, |heading| {
            has_word(heading, &["FAIL", "FAILED", "FAILING", "BLOCKED"])
        });
        non_blank(&part.unwrap_or_else(|| body.clone()))
    };
    let mut found = Vec::new();
    let mut green = None;
    for key in keys {
        let Some(value) = front_matter.get(key) else {
            continue;
        };
        if has_word(&value, &FAIL_WORDS) {
            return Ok(fail(
                format!("{rel_path}: `{key}: {value}` is a failing verdict"),
                failing_part(),
            ));
        }
        if green.is_none() && has_word(&value, &PASS_WORDS) {
            green = Some(format!("`{key}: {value}`"));
        }
        found.push(format!("`{key}: {value}`"));
    }
    match green {
        Some(verdict) => Ok(pass(format!("{rel_path}: {verdict}"))),
        None if found.is_empty() => Ok(fail(
            format!("{rel_path}: front matter has none of {named} (expected PASS or FAIL)"),
            None,
        )),
        None => Ok(fail(
            format!(
                "{rel_path}: no pass verdict in {} (expected one of {})",
                found.join(", "),
                PASS_WORDS.join(", ")
            ),
            failing_part(),
        )),
    }
}

/// The staging and production logs share one shape: `<key>: SUCCESS | FAILED`.
fn status_log(src: &dyn ArtifactSource, id: &WorkItemId, file: &str, key: &str) -> Gate {
    let rel_path = artifacts::path(id, file);
    let (front_matter, body) = read_verdict(src, &rel_path, &format!("`{key}`"))?;
    let Some(status) = front_matter.get(key) else {
        return Ok(fail(
            format!("{rel_path}: front matter has no `{key}` (expected SUCCESS or FAILED)"),
            None,
        ));
    };
    Ok(match status.trim().to_ascii_uppercase().as_str() {
        "SUCCESS" => pass(format!("{rel_path}: `{key}: SUCCESS`")),
        "FAILED" => fail(format!("{rel_path}: `{key}: FAILED`"), non_blank(&body)),
        _ => fail(
            format!("{rel_path}: `{key}` is {status:?}, expected SUCCESS or FAILED"),
            None,
        ),
    })
}

fn non_blank(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Whether `text` contains one of `words` as a whole word, ignoring case (`P1` matches
/// `### P1 — Must fix` but not `P10`; `FAILED` matches `status: FAILED (2 of 9)`).
fn has_word(text: &str, words: &[&str]) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|word| words.iter().any(|w| word.eq_ignore_ascii_case(w)))
}

/// The Markdown sections whose heading satisfies `wanted`, verbatim: each heading line and
/// everything up to the next heading of the same or a higher level. Headings inside fenced
/// code blocks are content. `None` when no heading matches.
fn sections(body: &str, wanted: impl Fn(&str) -> bool) -> Option<String> {
    let mut picked: Vec<&str> = Vec::new();
    let mut open: Option<usize> = None;
    let mut fence: Option<&str> = None;
    for line in body.lines() {
        // Up to three spaces of indent keep a heading a heading; four make it code.
        let indent = line.len() - line.trim_start_matches(' ').len();
        let trimmed = if indent <= 3 { &line[indent..] } else { "" };
        let heading = if fence.is_some() {
            None
        } else {
            heading(trimmed)
        };
        if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = match fence {
                Some(open_marker) if open_marker == marker => None,
                None => Some(marker),
                other => other,
            };
        }
        if let Some((level, text)) = heading {
            if open.is_some_and(|open_level| level <= open_level) {
                open = None;
                picked.push("");
            }
            if open.is_none() && wanted(text) {
                open = Some(level);
            }
        }
        if open.is_some() {
            picked.push(line);
        }
    }
    let text = picked.join("\n");
    non_blank(&text)
}

/// `(level, text)` of an ATX heading line (`## Title`), else `None`.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    let valid = (1..=6).contains(&level) && (rest.is_empty() || rest.starts_with([' ', '\t']));
    valid.then(|| (level, rest.trim()))
}

/// Why QG-0 refused a tracker issue: every problem, in words a human can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qg0Refusal {
    /// Each problem, one sentence each.
    pub problems: Vec<String>,
}

impl Qg0Refusal {
    /// The comment the issue's card gets.
    pub fn comment(&self) -> String {
        let list: Vec<String> = self.problems.iter().map(|p| format!("- {p}")).collect();
        format!(
            "QG-0 failed, the task was not started:\n{}\nFix the issue and move it to a start status again.",
            list.join("\n")
        )
    }

    /// One line for the delivery's journal.
    pub fn summary(&self) -> String {
        format!("QG-0 failed: {}", self.problems.join("; "))
    }
}

/// QG-0, the gate at the door: whether a tracker issue is fit to become a task — a title
/// (at most `title_max` characters, counted as characters, not bytes) and a description that
/// says what is wanted. Every problem is listed, not only the first. Issues of the local
/// tracker pass no QG-0: `POST /tasks` answers the caller at once instead.
pub fn qg0(title: &str, description: &str, title_max: usize) -> Result<(), Qg0Refusal> {
    let mut problems = Vec::new();
    let title = title.trim();
    if title.is_empty() {
        problems.push("the title is empty".to_string());
    }
    let chars = title.chars().count();
    if chars > title_max {
        problems.push(format!(
            "the title is {chars} characters long; at most {title_max} are allowed"
        ));
    }
    if description.trim().is_empty() {
        problems.push("the description is empty: say what is wanted and why".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Qg0Refusal { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::qg0;

    #[test]
    fn qg0_lists_every_problem() {
        assert!(qg0("Add login", "Users need it.", 200).is_ok());
        let long = "x".repeat(201);
        let problems = qg0(&long, "  ", 200).unwrap_err().problems;
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("201 characters"));
        assert!(problems[1].contains("description is empty"));
        assert_eq!(
            qg0("", "d", 200).unwrap_err().problems,
            vec!["the title is empty"]
        );
        // Characters, not bytes: 200 Cyrillic letters pass.
        assert!(qg0(&"я".repeat(200), "d", 200).is_ok());
    }

    #[test]
    fn a_refusal_tells_the_card_and_the_journal_why() {
        let refusal = qg0("  ", "", 10).unwrap_err();
        assert_eq!(
            refusal.comment(),
            "QG-0 failed, the task was not started:\n- the title is empty\n- the description is empty: say what is wanted and why\nFix the issue and move it to a start status again."
        );
        assert_eq!(
            refusal.summary(),
            "QG-0 failed: the title is empty; the description is empty: say what is wanted and why"
        );
    }
}
