//! The stage machine as data: which role works each stage, which gate guards its exit, where
//! a green gate leads and where a red one sends the task back. Every caller (task actor,
//! dispatcher, HTTP views) reads this one table instead of re-encoding the pipeline.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Stage;

/// How many times a red gate may send a task back before it stops for a human. The reference
/// system settled on three: enough for a real fix, few enough that a looping agent cannot burn
/// the budget.
pub const MAX_DEVELOPER_RETRIES: u32 = 3;

/// An agent role; each non-terminal working stage is owned by exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes the BRD, technical requirements, acceptance criteria and test plan.
    Analyst,
    /// Records design decisions as ADRs, or reports a conflict with the requirements.
    Architect,
    /// Implements the change on the task branch.
    Developer,
    /// Judges the change and writes `12-review.md`.
    Reviewer,
    /// Runs the test plan and writes `13-test-report.md`.
    Tester,
    /// Rolls out to staging and production and writes their logs.
    Deployer,
}

impl Role {
    /// Every role, in the order their stages run.
    pub const ALL: [Role; 6] = [
        Role::Analyst,
        Role::Architect,
        Role::Developer,
        Role::Reviewer,
        Role::Tester,
        Role::Deployer,
    ];

    /// The spelling used in prompts' file names, the store, the API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Architect => "architect",
            Role::Developer => "developer",
            Role::Reviewer => "reviewer",
            Role::Tester => "tester",
            Role::Deployer => "deployer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role {0:?} (expected one of: analyst, architect, developer, reviewer, tester, deployer)"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// The check that must be green before a task may leave a stage. Evaluated by
/// [`crate::domain::gates::evaluate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// The four analysis artifacts exist and are not blank.
    AnalysisComplete,
    /// At least one ADR exists and none reports a conflict with the requirements.
    ArchitectureDone,
    /// The project's CI passed on the task branch.
    CiGreen,
    /// `verdict:` in `12-review.md` is `APPROVED`.
    ReviewVerdict,
    /// `13-test-report.md` carries a pass token and no fail token.
    TestReport,
    /// `staging_status:` in `15-staging-log.md` is `SUCCESS` (or the project has no staging).
    StagingStatus,
    /// `deploy_status:` in `14-deploy-log.md` is `SUCCESS`.
    DeployStatus,
}

impl GateKind {
    /// Every gate, in pipeline order.
    pub const ALL: [GateKind; 7] = [
        GateKind::AnalysisComplete,
        GateKind::ArchitectureDone,
        GateKind::CiGreen,
        GateKind::ReviewVerdict,
        GateKind::TestReport,
        GateKind::StagingStatus,
        GateKind::DeployStatus,
    ];

    /// The spelling used in logs, journal reasons and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::AnalysisComplete => "analysis-complete",
            GateKind::ArchitectureDone => "architecture-done",
            GateKind::CiGreen => "ci-green",
            GateKind::ReviewVerdict => "review-verdict",
            GateKind::TestReport => "test-report",
            GateKind::StagingStatus => "staging-status",
            GateKind::DeployStatus => "deploy-status",
        }
    }
}

impl fmt::Display for GateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the pipeline table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageSpec {
    /// The stage this row describes.
    pub stage: Stage,
    /// The role whose agent works the stage; `None` where no agent runs (`created`, sinks).
    pub role: Option<Role>,
    /// The gate checked when the role finishes; `None` where leaving needs no check.
    pub gate: Option<GateKind>,
    /// Where a green gate leads (before label-based skips, see [`next_stage`]); `None` for
    /// the terminal stages.
    pub next: Option<Stage>,
    /// Where a red gate sends the task (spending a retry), unless the gate itself names
    /// another target (`GateOutcome::Fail::back_to`). Stages before review re-run their own
    /// role; from review on, every red verdict is the developer's to fix.
    pub on_fail: Option<Stage>,
}

/// The pipeline, one row per [`Stage`] in [`Stage::ALL`] order (checked at compile time).
pub const PIPELINE: &[StageSpec] = &[
    row(Stage::Created, None, None, Some(Stage::Analysis), None),
    row(
        Stage::Analysis,
        Some(Role::Analyst),
        Some(GateKind::AnalysisComplete),
        Some(Stage::Architecture),
        Some(Stage::Analysis),
    ),
    row(
        Stage::Architecture,
        Some(Role::Architect),
        Some(GateKind::ArchitectureDone),
        Some(Stage::Development),
        Some(Stage::Architecture),
    ),
    row(
        Stage::Development,
        Some(Role::Developer),
        Some(GateKind::CiGreen),
        Some(Stage::Review),
        Some(Stage::Development),
    ),
    row(
        Stage::Review,
        Some(Role::Reviewer),
        Some(GateKind::ReviewVerdict),
        Some(Stage::Testing),
        Some(Stage::Development),
    ),
    row(
        Stage::Testing,
        Some(Role::Tester),
        Some(GateKind::TestReport),
        Some(Stage::DeployStaging),
        Some(Stage::Development),
    ),
    row(
        Stage::DeployStaging,
        Some(Role::Deployer),
        Some(GateKind::StagingStatus),
        Some(Stage::Deploy),
        Some(Stage::Development),
    ),
    row(
        Stage::Deploy,
        Some(Role::Deployer),
        Some(GateKind::DeployStatus),
        Some(Stage::Done),
        Some(Stage::Development),
    ),
    row(Stage::Done, None, None, None, None),
    row(Stage::Cancelled, None, None, None, None),
];

// `spec` indexes the table by the stage's discriminant; this makes a misordered or missing
// row a build error instead of a wrong transition at run time.
const _: () = {
    assert!(PIPELINE.len() == Stage::ALL.len());
    let mut i = 0;
    while i < PIPELINE.len() {
        assert!(PIPELINE[i].stage as usize == i);
        assert!(Stage::ALL[i] as usize == i);
        i += 1;
    }
};

const fn row(
    stage: Stage,
    role: Option<Role>,
    gate: Option<GateKind>,
    next: Option<Stage>,
    on_fail: Option<Stage>,
) -> StageSpec {
    StageSpec {
        stage,
        role,
        gate,
        next,
        on_fail,
    }
}

/// The table row for `stage`.
pub fn spec(stage: Stage) -> &'static StageSpec {
    &PIPELINE[stage as usize]
}

/// Where a task in `stage` goes when its gate is green. A `Bug` skips `architecture`: a fix
/// to existing behaviour needs no new design decision, so analysis leads to development.
pub fn next_stage(stage: Stage, labels: &Labels) -> Option<Stage> {
    match spec(stage).next {
        Some(Stage::Architecture) if labels.is_bug() => spec(Stage::Architecture).next,
        next => next,
    }
}

/// Label that routes a task through the bug fast track (see [`next_stage`]).
pub const LABEL_BUG: &str = "bug";
/// Label that lets a task skip the human approval of its analysis.
pub const LABEL_AUTO_APPROVE: &str = "autoApprove";
/// Label that lets a task skip the human confirmation before the production deploy.
pub const LABEL_AUTO_DEPLOY: &str = "autoDeploy";

/// A task's labels from the tracker. Trackers disagree on case (`Bug`, `bug`, `BUG`), so
/// every lookup ignores case and surrounding whitespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(Vec<String>);

impl Labels {
    /// Wraps the labels as the tracker reported them.
    pub fn new<I, S>(labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(labels.into_iter().map(Into::into).collect())
    }

    /// Whether a label equal to `name` (ignoring case and surrounding whitespace) is present.
    pub fn has(&self, name: &str) -> bool {
        let wanted = name.trim().to_lowercase();
        self.0
            .iter()
            .any(|label| label.trim().to_lowercase() == wanted)
    }

    /// The labels as the tracker spelled them.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Labelled `Bug`: takes the fast track that skips architecture.
    pub fn is_bug(&self) -> bool {
        self.has(LABEL_BUG)
    }

    /// Labelled `autoApprove`: the analysis needs no human approval.
    pub fn auto_approve(&self) -> bool {
        self.has(LABEL_AUTO_APPROVE)
    }

    /// Labelled `autoDeploy`: the production deploy needs no human confirmation.
    pub fn auto_deploy(&self) -> bool {
        self.has(LABEL_AUTO_DEPLOY)
    }
}

impl From<Vec<String>> for Labels {
    fn from(labels: Vec<String>) -> Self {
        Self(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_labels() -> Labels {
        Labels::default()
    }

    #[test]
    fn the_happy_path_walks_every_working_stage_in_order() {
        let mut stage = Stage::Created;
        let mut walked = vec![stage];
        while let Some(next) = next_stage(stage, &no_labels()) {
            stage = next;
            walked.push(stage);
        }
        assert_eq!(walked, &Stage::ALL[..9]);
    }

    #[test]
    fn a_bug_skips_architecture_and_nothing_else() {
        let bug = Labels::new(["Bug"]);
        assert_eq!(next_stage(Stage::Analysis, &bug), Some(Stage::Development));
        for stage in Stage::ALL {
            if stage != Stage::Analysis {
                assert_eq!(next_stage(stage, &bug), spec(stage).next, "{stage}");
            }
        }
    }

    #[test]
    fn every_working_stage_has_a_role_a_gate_and_a_rollback() {
        for stage in Stage::ALL {
            let row = spec(stage);
            assert_eq!(row.stage, stage);
            let works = !stage.is_terminal() && stage != Stage::Created;
            assert_eq!(row.role.is_some(), works, "{stage}");
            assert_eq!(row.gate.is_some(), works, "{stage}");
            assert_eq!(row.on_fail.is_some(), works, "{stage}");
            assert_eq!(row.next.is_none(), stage.is_terminal(), "{stage}");
        }
    }

    #[test]
    fn each_gate_guards_exactly_one_stage() {
        for gate in GateKind::ALL {
            let count = PIPELINE.iter().filter(|r| r.gate == Some(gate)).count();
            assert_eq!(count, 1, "{gate}");
        }
    }

    #[test]
    fn red_verdicts_after_development_go_back_to_the_developer() {
        for stage in [
            Stage::Review,
            Stage::Testing,
            Stage::DeployStaging,
            Stage::Deploy,
        ] {
            assert_eq!(spec(stage).on_fail, Some(Stage::Development), "{stage}");
        }
    }

    #[test]
    fn role_spelling_round_trips_and_matches_serde() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.as_str())
            );
        }
        let err = "Tester".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("\"Tester\""), "{err}");
    }

    #[test]
    fn labels_match_regardless_of_case() {
        let labels = Labels::new(["BUG", " autoapprove ", "AutoDeploy"]);
        assert!(labels.is_bug() && labels.auto_approve() && labels.auto_deploy());
        let plain = Labels::new(["feature", "bugfix"]);
        assert!(!plain.is_bug() && !plain.auto_approve() && !plain.auto_deploy());
    }
}
