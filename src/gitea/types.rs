//! The Gitea objects the client reads, reduced to the fields the orchestrator uses, and the
//! verdicts it derives from them (CI state, merge outcome).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The CI state of a commit, folded to the three answers the pipeline acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CiState {
    /// Every context is success, warning or skipped.
    Success,
    /// A context reported error or failure.
    Failure,
    /// Anything else, including no statuses yet (Gitea's `""`) and unknown states.
    Pending,
}

impl CiState {
    /// One status value (`success`, `error`, …) or Gitea's combined `state`.
    pub fn parse(state: &str) -> CiState {
        match state {
            "success" | "warning" | "skipped" => CiState::Success,
            "failure" | "error" => CiState::Failure,
            _ => CiState::Pending,
        }
    }

    /// Newer Gitea's `Combine` over the per-context states: failure if any failed, success if
    /// all passed (and there is one), else pending. Older Gitea's combined `state` takes the
    /// "worst" state and can say `warning`, so the client folds the items itself.
    pub fn combine<'a>(states: impl IntoIterator<Item = &'a str>) -> CiState {
        let mut any = false;
        let mut all_passed = true;
        for state in states {
            any = true;
            match CiState::parse(state) {
                CiState::Failure => return CiState::Failure,
                CiState::Pending => all_passed = false,
                CiState::Success => {}
            }
        }
        if any && all_passed {
            CiState::Success
        } else {
            CiState::Pending
        }
    }
}

/// One context's latest status in a [`CombinedStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StatusItem {
    /// What was checked, e.g. `ci/test`.
    #[serde(default)]
    pub context: String,
    /// Its state; Gitea's `CommitStatus` carries it under the key `status`, not `state`.
    #[serde(default)]
    pub status: String,
    /// The CI's one-line explanation.
    #[serde(default)]
    pub description: String,
    /// The CI's link.
    #[serde(default)]
    pub target_url: String,
}

/// A commit's CI state and the per-context statuses behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CombinedStatus {
    /// The folded state.
    pub state: CiState,
    /// The latest status per context (empty when none were posted).
    pub statuses: Vec<StatusItem>,
}

/// The wire form of Gitea's `CombinedStatus`; `statuses` is `null` when there are none.
#[derive(Deserialize)]
pub(crate) struct CombinedStatusWire {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub statuses: Option<Vec<StatusItem>>,
}

impl From<CombinedStatusWire> for CombinedStatus {
    fn from(wire: CombinedStatusWire) -> Self {
        let statuses = wire.statuses.unwrap_or_default();
        let state = if statuses.is_empty() {
            CiState::parse(&wire.state)
        } else {
            CiState::combine(statuses.iter().map(|s| s.status.as_str()))
        };
        CombinedStatus { state, statuses }
    }
}

/// What a CI wait concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiVerdict {
    /// Every context passed.
    Green {
        /// Which contexts passed, e.g. `2 contexts passed: ci/test, ci/lint`.
        summary: String,
    },
    /// A context failed; terminal, the wait stops at once.
    Red {
        /// The failing contexts with their states and descriptions.
        details: String,
    },
    /// The budget ran out while CI was still pending.
    StillPending {
        /// How long the wait lasted.
        after: Duration,
    },
}

impl std::fmt::Display for CiVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CiVerdict::Green { summary } => write!(f, "CI green: {summary}"),
            CiVerdict::Red { details } => write!(f, "CI red: {details}"),
            CiVerdict::StillPending { after } => {
                write!(f, "CI still pending after {} s", after.as_secs())
            }
        }
    }
}

/// One side of a pull request (Gitea's `PRBranchInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PrBranch {
    /// The branch name.
    #[serde(default)]
    pub label: String,
    /// The ref: the branch name, or `refs/pull/N/head` once the head branch is gone.
    #[serde(default, rename = "ref")]
    pub ref_name: String,
    /// The commit it points at.
    #[serde(default)]
    pub sha: String,
    /// The repository's id.
    #[serde(default)]
    pub repo_id: u64,
}

/// A Gitea pull request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PullRequest {
    /// The per-repo index.
    pub number: u64,
    /// `open` or `closed`.
    #[serde(default)]
    pub state: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Description.
    #[serde(default)]
    pub body: String,
    /// Whether it was merged.
    #[serde(default)]
    pub merged: bool,
    /// When it was merged.
    #[serde(default)]
    pub merged_at: Option<String>,
    /// The merge commit, once merged.
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    /// Whether Gitea currently considers it mergeable.
    #[serde(default)]
    pub mergeable: bool,
    /// The web page.
    #[serde(default)]
    pub html_url: String,
    /// The branch to merge.
    #[serde(default)]
    pub head: PrBranch,
    /// The branch to merge into.
    #[serde(default)]
    pub base: PrBranch,
}

/// How a merge is to be done (the body of `POST /pulls/{index}/merge`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MergeOptions {
    /// The merge style: `merge`, `rebase`, `rebase-merge`, `squash`, `fast-forward-only`.
    /// Gitea requires the capitalised key `Do`.
    #[serde(rename = "Do")]
    pub style: String,
    /// The merge commit's title; Gitea's default when `None`.
    #[serde(rename = "MergeTitleField", skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The merge commit's message body.
    #[serde(rename = "MergeMessageField", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Refuse the merge (409) if the head moved away from this sha.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_commit_id: Option<String>,
    /// Delete the head branch once merged.
    pub delete_branch_after_merge: bool,
}

impl MergeOptions {
    /// A fast-forward of the base to the head, refused unless the head is still `head`.
    pub fn fast_forward_only(head: &str) -> MergeOptions {
        MergeOptions {
            style: "fast-forward-only".to_string(),
            title: None,
            message: None,
            head_commit_id: Some(head.to_string()),
            delete_branch_after_merge: false,
        }
    }

    /// A `--no-ff` merge commit titled `title`.
    pub fn merge_commit(title: impl Into<String>) -> MergeOptions {
        MergeOptions {
            style: "merge".to_string(),
            title: Some(title.into()),
            message: None,
            head_commit_id: None,
            delete_branch_after_merge: false,
        }
    }
}

/// How a merge request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Gitea merged it now.
    Merged,
    /// The PR had already been merged (by an earlier attempt whose answer was lost, or by
    /// someone else).
    AlreadyMerged,
    /// Gitea refused with 409: a git conflict, a moved head, a rejected push.
    Conflict {
        /// Gitea's explanation.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> CombinedStatus {
        serde_json::from_str::<CombinedStatusWire>(json)
            .unwrap()
            .into()
    }

    #[test]
    fn no_statuses_is_pending() {
        let cs = parse(r#"{"state":"","sha":"","total_count":0,"statuses":null}"#);
        assert_eq!(cs.state, CiState::Pending);
        assert!(cs.statuses.is_empty());
    }

    #[test]
    fn items_decide_over_an_older_gitea_warning_state() {
        let cs = parse(
            r#"{"state":"warning","statuses":[{"context":"a","status":"success"},{"context":"b","status":"warning"}]}"#,
        );
        assert_eq!(cs.state, CiState::Success);
        let cs = parse(r#"{"state":"failure","statuses":[{"context":"a","status":"error"}]}"#);
        assert_eq!(cs.state, CiState::Failure);
        let cs = parse(r#"{"state":"pending","statuses":[{"context":"a","status":"weird"}]}"#);
        assert_eq!(cs.state, CiState::Pending);
    }

    #[test]
    fn merge_options_use_gitea_keys() {
        let v = serde_json::to_value(MergeOptions::merge_commit("t")).unwrap();
        assert_eq!(v["Do"], "merge");
        assert_eq!(v["MergeTitleField"], "t");
        assert!(v.get("MergeMessageField").is_none());
    }

    #[test]
    fn still_pending_names_the_seconds() {
        let v = CiVerdict::StillPending {
            after: Duration::from_millis(3400),
        };
        assert_eq!(v.to_string(), "CI still pending after 3 s");
    }
}
