//! The pipeline's stages. A task moves `created → … → done`; `cancelled` is a terminal sink
//! reachable from any stage. Terminal tasks have no actor.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A pipeline stage, spelled in the store and on the wire as in [`Stage::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Accepted from the tracker, not yet started.
    Created,
    /// The analyst writes the business request, BRD, requirements and acceptance criteria.
    Analysis,
    /// The architect records decisions as ADRs.
    Architecture,
    /// The developer implements on the task branch.
    Development,
    /// The reviewer judges the change.
    Review,
    /// The tester runs the test plan.
    Testing,
    /// The deployer rolls out to the staging stand.
    DeployStaging,
    /// The deployer rolls out to production.
    Deploy,
    /// Finished and merged: terminal.
    Done,
    /// Abandoned: terminal, reachable from any stage.
    Cancelled,
}

impl Stage {
    /// Every stage in pipeline order, terminal sinks last.
    pub const ALL: [Stage; 10] = [
        Stage::Created,
        Stage::Analysis,
        Stage::Architecture,
        Stage::Development,
        Stage::Review,
        Stage::Testing,
        Stage::DeployStaging,
        Stage::Deploy,
        Stage::Done,
        Stage::Cancelled,
    ];

    /// The canonical spelling used in the store, the API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Created => "created",
            Stage::Analysis => "analysis",
            Stage::Architecture => "architecture",
            Stage::Development => "development",
            Stage::Review => "review",
            Stage::Testing => "testing",
            Stage::DeployStaging => "deploy-staging",
            Stage::Deploy => "deploy",
            Stage::Done => "done",
            Stage::Cancelled => "cancelled",
        }
    }

    /// A terminal task is finished for good and has no actor.
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Done | Stage::Cancelled)
    }
}

/// A stage name that is not one of [`Stage::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown stage {0:?} (expected one of: created, analysis, architecture, development, review, testing, deploy-staging, deploy, done, cancelled)"
)]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| UnknownStage(s.to_string()))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_round_trips_and_matches_serde() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>().unwrap(), stage);
            assert_eq!(
                serde_json::to_value(stage).unwrap(),
                serde_json::json!(stage.as_str())
            );
        }
    }

    #[test]
    fn only_done_and_cancelled_are_terminal() {
        let terminal: Vec<_> = Stage::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [Stage::Done, Stage::Cancelled]);
    }

    #[test]
    fn unknown_stage_names_the_value() {
        let err = "Deploy".parse::<Stage>().unwrap_err();
        assert!(err.to_string().contains("\"Deploy\""));
    }
}
