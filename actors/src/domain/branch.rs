//! The name of a task's branch, a rule of the domain: `feature/<ID>-<slug>`, or `fix/…` for a
//! bug, the slug cut from the title at a word boundary. The task actor names the branch when
//! it first saves a decision; the forge works on the name it is given (and the workspace
//! still checks every branch it touches).

use crate::WorkItemId;
use crate::domain::ids::slug;
use crate::domain::pipeline::Labels;
use crate::ports::TaskRecord;

/// Longest slug in a branch name; long titles make unreadable branches.
pub const MAX_SLUG_CHARS: usize = 30;

/// `feature/<ID>-<slug>` (or `fix/…` for a bug); just `feature/<ID>` when the title has no
/// ASCII letter or digit.
pub fn branch_name(id: &WorkItemId, title: &str, is_bug: bool) -> String {
    let prefix = if is_bug { "fix" } else { "feature" };
    let slug = slug(title, MAX_SLUG_CHARS);
    if slug.is_empty() {
        format!("{prefix}/{id}")
    } else {
        format!("{prefix}/{id}-{slug}")
    }
}

/// The branch `task` works on: the one it has, else the one it gets.
pub fn of(task: &TaskRecord) -> String {
    task.branch.clone().unwrap_or_else(|| {
        branch_name(
            &task.work_item_id,
            &task.title,
            Labels::new(&task.labels).is_bug(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_follow_the_table() {
        for (id, title, is_bug, expected) in [
            ("T-1", "Add login page", false, "feature/T-1-add-login-page"),
            ("T-1", "Add login page", true, "fix/T-1-add-login-page"),
            (
                "BUG-7",
                "  Fix: crash!! on `save` (v2.0)  ",
                true,
                "fix/BUG-7-fix-crash-on-save-v2-0",
            ),
            ("T-2", "Ünïcödé title ☃", false, "feature/T-2-n-c-d-title"),
            ("T-3", "日本語のタイトル", false, "feature/T-3"),
            ("T-3", "", false, "feature/T-3"),
            ("T-3", "!!! ---", true, "fix/T-3"),
            // Cut exactly before a '-'.
            (
                "T-4",
                "This is a very long title that keeps going on and on",
                false,
                "feature/T-4-this-is-a-very-long-title-that",
            ),
            // Cut mid-word: back off to the last boundary.
            (
                "T-5",
                "Add a feature flag for the experimental renderer",
                false,
                "feature/T-5-add-a-feature-flag-for-the",
            ),
            // One long word: no boundary, hard cut.
            (
                "T-6",
                "Supercalifragilisticexpialidocious words",
                false,
                "feature/T-6-supercalifragilisticexpialidoc",
            ),
        ] {
            let name = branch_name(&WorkItemId::parse(id).unwrap(), title, is_bug);
            assert_eq!(name, expected, "title {title:?}");
            let slug = name.split_once(id).unwrap().1;
            assert!(slug.len() <= MAX_SLUG_CHARS + 1, "{name}");
            assert!(!name.ends_with('-'), "{name}");
        }
    }

    #[test]
    fn a_task_keeps_the_branch_it_has_and_a_bug_gets_a_fix_branch() {
        let mut task = TaskRecord {
            work_item_id: WorkItemId::parse("T-9").unwrap(),
            repo: "acme/app".into(),
            title: "Crash on save".into(),
            description: String::new(),
            stage: crate::Stage::Created,
            paused: false,
            labels: vec!["Bug".into()],
            branch: None,
            phase: crate::ports::Phase::Idle,
            blocked_reason: None,
            developer_retries: 0,
            stage_attempts: 0,
            note: None,
            budget_nano_usd: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        assert_eq!(of(&task), "fix/T-9-crash-on-save");
        task.branch = Some("feature/T-9-older".into());
        assert_eq!(of(&task), "feature/T-9-older");
    }
}
