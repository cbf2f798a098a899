//! The work-item artifact canon: the files each role leaves under `docs/work-items/<ID>/` and
//! the front-matter keys that carry the machine-readable verdicts. Gates, prompts and tools
//! name these files through this module so a rename happens in one place.

use crate::WorkItemId;

/// Directory (relative to the repository root) holding one sub-directory per work item.
pub const WORK_ITEMS_DIR: &str = "docs/work-items";

pub const BUSINESS_REQUEST: &str = "00-business-request.md";
/// Business requirements document (analyst).
pub const BRD: &str = "01-brd.md";
/// Technical requirements: modules, APIs, schema changes (analyst).
pub const TRZ: &str = "02-trz.md";
/// Acceptance criteria with clear pass/fail conditions (analyst).
pub const ACCEPTANCE_CRITERIA: &str = "03-acceptance-criteria.md";
/// Test plan the tester executes (analyst).
pub const TEST_PLAN: &str = "04-test-plan.yaml";
/// Directory of the work item's ADRs, named `ADR-NNN-slug.md` (architect).
pub const ADR_DIR: &str = "06-adr";
/// The reviewer's report; its front matter carries `verdict:`.
pub const REVIEW: &str = "12-review.md";
/// The tester's report; its front matter carries `result:` (or `verdict:` / `status:`).
pub const TEST_REPORT: &str = "13-test-report.md";
/// The production deploy log; its front matter carries `deploy_status:`.
pub const DEPLOY_LOG: &str = "14-deploy-log.md";
/// The staging deploy log; its front matter carries `staging_status:`.
pub const STAGING_LOG: &str = "15-staging-log.md";

/// What the analysis stage must leave behind before its gate can pass.
pub const ANALYSIS_ARTIFACTS: [&str; 4] = [BRD, TRZ, ACCEPTANCE_CRITERIA, TEST_PLAN];

/// `docs/work-items/<ID>`: the work item's artifact directory, relative to the repo root.
pub fn work_item_dir(id: &WorkItemId) -> String {
    format!("{WORK_ITEMS_DIR}/{id}")
}

/// `docs/work-items/<ID>/<file>`: one artifact's path relative to the repo root. `file` may
/// itself contain a sub-directory (`06-adr/ADR-001-x.md`).
pub fn path(id: &WorkItemId, file: &str) -> String {
    format!("{}/{file}", work_item_dir(id))
}

/// `docs/work-items/<ID>/06-adr`: where the architect's decisions live.
pub fn adr_dir(id: &WorkItemId) -> String {
    path(id, ADR_DIR)
}

/// `06-adr/ADR-<NNN>-<slug>.md`: the path (relative to the work item's directory) of ADR
/// number `number` titled `title`; a title without ASCII words gets the slug `decision`.
pub fn adr_file(number: u32, title: &str) -> String {
    let slug = match crate::domain::ids::slug(title, 40) {
        s if s.is_empty() => "decision".to_string(),
        s => s,
    };
    format!("{ADR_DIR}/ADR-{number:03}-{slug}.md")
}

/// Whether a file name in [`ADR_DIR`] is an ADR (`ADR-*.md`). Case is ignored because
/// agents are inconsistent about it and a missed ADR would wrongly fail the gate.
pub fn is_adr_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.len() > "adr-.md".len() && lower.starts_with("adr-") && lower.ends_with(".md")
}

/// How a verdict artifact's keys combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRule {
    /// Every listed key must be present.
    All,
    /// At least one listed key must be present; the gate reads all of those present. Used
    /// where producers historically disagreed on the key name.
    AnyOf,
}

/// A verdict artifact and the front-matter keys its gate reads. Gates read only front
/// matter, never prose, so a report that says "PASS" in a sentence cannot pass by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerdictArtifact {
    /// File name inside the work-item directory.
    pub file: &'static str,
    /// The keys carrying the verdict, in the order the gate reports them.
    pub keys: &'static [&'static str],
    /// Whether all keys or any one of them is required.
    pub rule: KeyRule,
    /// The values a producer should write, for prompts and error messages. (The test
    /// report's gate also accepts synonyms; see [`crate::domain::gates`].)
    pub values: &'static [&'static str],
}

/// The review verdict key in [`REVIEW`].
pub const REVIEW_VERDICT_KEY: &str = "verdict";
/// The keys a test report's verdict may be written under, in [`TEST_REPORT`].
pub const TEST_REPORT_KEYS: [&str; 3] = ["result", "verdict", "status"];
/// The staging verdict key in [`STAGING_LOG`].
pub const STAGING_STATUS_KEY: &str = "staging_status";
/// The production verdict key in [`DEPLOY_LOG`].
pub const DEPLOY_STATUS_KEY: &str = "deploy_status";
/// The key an ADR uses to report that the requirements cannot be met as written.
pub const ADR_VERDICT_KEY: &str = "verdict";

/// Every verdict artifact and its keys.
pub const VERDICT_ARTIFACTS: [VerdictArtifact; 4] = [
    VerdictArtifact {
        file: REVIEW,
        keys: &[REVIEW_VERDICT_KEY],
        rule: KeyRule::All,
        values: &["APPROVED", "REQUEST_CHANGES"],
    },
    VerdictArtifact {
        file: TEST_REPORT,
        keys: &TEST_REPORT_KEYS,
        rule: KeyRule::AnyOf,
        values: &["PASS", "FAIL"],
    },
    VerdictArtifact {
        file: DEPLOY_LOG,
        keys: &[DEPLOY_STATUS_KEY],
        rule: KeyRule::All,
        values: &["SUCCESS", "FAILED"],
    },
    VerdictArtifact {
        file: STAGING_LOG,
        keys: &[STAGING_STATUS_KEY],
        rule: KeyRule::All,
        values: &["SUCCESS", "FAILED"],
    },
];

/// The verdict contract of `file`, or `None` when it is not a verdict artifact.
pub fn verdict_artifact(file: &str) -> Option<&'static VerdictArtifact> {
    VERDICT_ARTIFACTS.iter().find(|a| a.file == file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> WorkItemId {
        WorkItemId::parse("ORCH-7").unwrap()
    }

    #[test]
    fn paths_are_relative_to_the_repo_root() {
        assert_eq!(work_item_dir(&id()), "docs/work-items/ORCH-7");
        assert_eq!(path(&id(), REVIEW), "docs/work-items/ORCH-7/12-review.md");
        assert_eq!(adr_dir(&id()), "docs/work-items/ORCH-7/06-adr");
    }

    #[test]
    fn adr_names_are_recognised() {
        for ok in ["ADR-001-storage.md", "adr-2.md", "ADR-010-x.MD"] {
            assert!(is_adr_file_name(ok), "{ok}");
        }
        for no in [
            "ADR-.md",
            "README.md",
            "ADR-001.txt",
            "notes-ADR-1.md",
            "ADR-1.md.bak",
        ] {
            assert!(!is_adr_file_name(no), "{no}");
        }
    }

    #[test]
    fn each_verdict_artifact_names_its_keys() {
        assert_eq!(verdict_artifact(REVIEW).unwrap().keys, ["verdict"]);
        assert_eq!(verdict_artifact(TEST_REPORT).unwrap().rule, KeyRule::AnyOf);
        assert_eq!(
            verdict_artifact(STAGING_LOG).unwrap().keys,
            ["staging_status"]
        );
        assert_eq!(
            verdict_artifact(DEPLOY_LOG).unwrap().keys,
            ["deploy_status"]
        );
        assert!(verdict_artifact(BRD).is_none());
    }
}
