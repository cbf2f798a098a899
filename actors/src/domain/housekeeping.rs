//! What housekeeping may remove: a worktree only once its task is finished for good, a run's
//! files only when they are older than the retention and belong to no live task and no
//! running job. Anything it cannot place is left where it is.

use std::time::Duration;

use crate::Stage;

/// What to do with a directory in the worktrees directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorktreeVerdict {
    /// Its task is done or cancelled: remove it.
    Remove,
    /// Its task is live: never touch it.
    Keep,
    /// No task of that name: not ours to judge; leave it and report it.
    Unknown,
}

/// The verdict on the worktree of a task at `stage` (`None`: no such task).
pub fn worktree(stage: Option<Stage>) -> WorktreeVerdict {
    match stage {
        Some(stage) if stage.is_terminal() => WorktreeVerdict::Remove,
        Some(_) => WorktreeVerdict::Keep,
        None => WorktreeVerdict::Unknown,
    }
}

/// Whether a run's files, last written `age` ago, may go: older than `retention` and not
/// `live` (its job running, or its task not finished).
pub fn run_files_removable(age: Duration, retention: Duration, live: bool) -> bool {
    !live && age >= retention
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_finished_task_s_worktree_goes() {
        assert_eq!(worktree(Some(Stage::Done)), WorktreeVerdict::Remove);
        assert_eq!(worktree(Some(Stage::Cancelled)), WorktreeVerdict::Remove);
        assert_eq!(worktree(Some(Stage::Development)), WorktreeVerdict::Keep);
        assert_eq!(worktree(None), WorktreeVerdict::Unknown);
    }

    #[test]
    fn a_run_s_files_go_only_when_old_and_not_live() {
        let day = Duration::from_secs(86_400);
        assert!(run_files_removable(day * 31, day * 30, false));
        assert!(!run_files_removable(day * 31, day * 30, true));
        assert!(!run_files_removable(day * 29, day * 30, false));
    }
}
