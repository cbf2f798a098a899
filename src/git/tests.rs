//! The workspace against real git in temporary directories: a sample origin, a clone, task
//! worktrees, the local merge and CI runs, asserting what a task would see.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::command::git;
use super::sample::{SAMPLE_TEST_CMD, create_sample_origin};
use orchestrator_actors::domain::gates::CiOutcome;

use super::{CandidateOutcome, FastForwardOutcome, GitError, MergeOutcome, Workspace};

mod content;
mod owner;

/// The branch the domain names for a feature task `id` titled `title`.
fn branch_name(id: &str, title: &str) -> String {
    let id = orchestrator_actors::WorkItemId::parse(id).unwrap();
    orchestrator_actors::domain::branch::branch_name(&id, title, false)
}

/// A sample origin, a workspace and a clone of the origin in a fresh temporary directory.
struct Setup {
    /// Keeps the directory alive for the test's duration.
    _tmp: TempDir,
    /// The bare origin.
    origin: PathBuf,
    /// The workspace under test.
    ws: Workspace,
    /// The clone of `acme/app`.
    clone: PathBuf,
    /// A directory for scratch files.
    scratch: PathBuf,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin.git");
    create_sample_origin(&origin).await.unwrap();
    let ws = Workspace::new(tmp.path().join("repos"), tmp.path().join("worktrees"));
    let clone = ws
        .ensure_clone("acme/app", origin.to_str().unwrap())
        .await
        .unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    Setup {
        origin,
        ws,
        clone,
        scratch,
        _tmp: tmp,
    }
}

async fn origin_main(origin: &Path) -> String {
    git(origin, &["rev-parse", "refs/heads/main"])
        .await
        .unwrap()
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Starts task `id` on a fresh worktree, writes `files`, commits and pushes; returns the
/// worktree, branch and commit.
async fn task_with(
    s: &Setup,
    id: &str,
    title: &str,
    files: &[(&str, &str)],
) -> (PathBuf, String, String) {
    let branch = branch_name(id, title);
    let wt = s.ws.create_worktree(&s.clone, id, &branch).await.unwrap();
    for (rel, content) in files {
        write(&wt, rel, content);
    }
    let sha =
        s.ws.commit_all(&s.clone, &wt, &format!("feat: {title}"))
            .await
            .unwrap()
            .unwrap();
    s.ws.push_branch(&s.clone, &wt, &branch).await.unwrap();
    (wt, branch, sha)
}

#[tokio::test]
async fn a_task_goes_from_worktree_to_merged_main_and_a_conflict_leaves_main_alone() {
    let s = setup().await;
    assert!(s.clone.ends_with("repos/acme__app"));
    // The sample origin and the clone are both idempotent.
    create_sample_origin(&s.origin).await.unwrap();
    let again =
        s.ws.ensure_clone("acme/app", s.origin.to_str().unwrap())
            .await
            .unwrap();
    assert_eq!(again, s.clone);
    let main_before = origin_main(&s.origin).await;

    // The worktree is on the task branch, based on origin/main.
    let branch = branch_name("T-1", "Add notes");
    let wt =
        s.ws.create_worktree(&s.clone, "T-1", &branch)
            .await
            .unwrap();
    assert_eq!(wt, s.ws.worktrees_dir().join("T-1"));
    assert_eq!(
        git(&wt, &["branch", "--show-current"]).await.unwrap(),
        branch
    );
    assert_eq!(s.ws.head_sha(&wt).await.unwrap(), main_before);

    write(&wt, "NOTES.md", "one\n");
    write(&wt, "README.md", "# changed in the task\n");
    write(
        &wt,
        "docs/work-items/T-1.md",
        "---\nverdict: APPROVE\n---\n",
    );
    // Re-creating the worktree of a running task keeps its work.
    let same =
        s.ws.create_worktree(&s.clone, "T-1", &branch)
            .await
            .unwrap();
    assert_eq!(same, wt);
    assert!(wt.join("NOTES.md").exists());

    // A second task branched off the same main, touching the same file differently.
    let (wt2, branch2, sha2) = task_with(&s, "T-2", "Other notes", &[("NOTES.md", "two\n")]).await;

    let sha1 =
        s.ws.commit_all(&s.clone, &wt, "feat: add notes")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(s.ws.head_sha(&wt).await.unwrap(), sha1);
    assert_eq!(
        s.ws.commit_all(&s.clone, &wt, "nothing").await.unwrap(),
        None
    );
    s.ws.push_branch(&s.clone, &wt, &branch).await.unwrap();
    let pushed = git(&s.origin, &["rev-parse", &format!("refs/heads/{branch}")])
        .await
        .unwrap();
    assert_eq!(pushed, sha1);

    // Artifacts: the worktree first, then origin/main; absent in both is None.
    let read = |wt: Option<PathBuf>, rel: &'static str| {
        let (ws, clone) = (&s.ws, s.clone.clone());
        async move { ws.read_artifact(&clone, wt.as_deref(), rel).await.unwrap() }
    };
    assert_eq!(
        read(Some(wt.clone()), "README.md").await.unwrap(),
        "# changed in the task\n"
    );
    let readme_on_main = read(None, "README.md").await.unwrap();
    assert!(
        readme_on_main.starts_with("# Sample app\n"),
        "{readme_on_main}"
    );
    assert_eq!(
        read(Some(s.scratch.clone()), "README.md").await.unwrap(),
        readme_on_main
    );
    assert_eq!(read(Some(wt.clone()), "NOTES.md").await.unwrap(), "one\n");
    assert_eq!(read(None, "NOTES.md").await, None);
    assert_eq!(read(Some(wt.clone()), "docs/missing.md").await, None);
    let listed =
        s.ws.list_artifact_dir(&s.clone, Some(&wt), "docs/work-items")
            .await
            .unwrap();
    assert_eq!(listed, [".gitkeep", "T-1.md"]);
    let listed =
        s.ws.list_artifact_dir(&s.clone, None, "docs/work-items/")
            .await
            .unwrap();
    assert_eq!(listed, [".gitkeep"]);
    assert!(
        s.ws.list_artifact_dir(&s.clone, None, "nowhere")
            .await
            .unwrap()
            .is_empty()
    );

    // Merge: a merge commit with two parents lands on origin's main.
    assert!(!s.ws.is_merged(&s.clone, &sha1).await.unwrap());
    let outcome =
        s.ws.merge_into_main(&s.clone, &branch, "Merge T-1: add notes")
            .await
            .unwrap();
    let MergeOutcome::Merged { sha: merge_sha } = outcome else {
        panic!("expected a merge, got {outcome:?}");
    };
    assert_eq!(origin_main(&s.origin).await, merge_sha);
    let parents = git(&s.origin, &["rev-list", "--parents", "-n", "1", &merge_sha])
        .await
        .unwrap();
    assert_eq!(
        parents.split(' ').collect::<Vec<_>>(),
        [merge_sha.as_str(), &main_before, &sha1]
    );
    assert_eq!(
        git(&s.origin, &["log", "-1", "--format=%s", "main"])
            .await
            .unwrap(),
        "Merge T-1: add notes"
    );
    assert!(s.ws.is_merged(&s.clone, &sha1).await.unwrap());
    assert!(!s.ws.is_merged(&s.clone, &sha2).await.unwrap());
    assert_eq!(read(None, "NOTES.md").await.unwrap(), "one\n");

    // The conflicting branch: reported with its file, main untouched, the clone reusable.
    let outcome =
        s.ws.merge_into_main(&s.clone, &branch2, "Merge T-2")
            .await
            .unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::Conflict {
            files: vec!["NOTES.md".to_string()]
        }
    );
    assert_eq!(origin_main(&s.origin).await, merge_sha);
    assert!(!s.ws.is_merged(&s.clone, &sha2).await.unwrap());
    assert_eq!(git(&s.clone, &["status", "--porcelain"]).await.unwrap(), "");

    // Cleanup removes the worktree; a new one for the same id starts from the new main.
    s.ws.remove_worktree(&s.clone, "T-2").await.unwrap();
    assert!(!wt2.exists());
    let wt2 =
        s.ws.create_worktree(&s.clone, "T-2", &branch2)
            .await
            .unwrap();
    assert_eq!(s.ws.head_sha(&wt2).await.unwrap(), merge_sha);
}

/// Whether git still records a worktree of task `id` in `clone`.
async fn recorded(clone: &Path, id: &str) -> bool {
    let list = git(clone, &["worktree", "list", "--porcelain"])
        .await
        .unwrap();
    list.lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .any(|path| Path::new(path).ends_with(Path::new("worktrees").join(id)))
}

#[tokio::test]
async fn a_removed_worktree_keeps_its_branch_and_can_be_made_again() {
    let s = setup().await;
    let (wt, branch, sha) = task_with(&s, "T-7", "Clean up", &[("done.txt", "x\n")]).await;
    // Leftovers an agent never committed do not keep the directory alive.
    write(&wt, "scratch/left-over.txt", "junk\n");
    assert!(recorded(&s.clone, "T-7").await);

    s.ws.remove_worktree(&s.clone, "T-7").await.unwrap();
    assert!(!wt.exists());
    assert!(!recorded(&s.clone, "T-7").await);
    let local = format!("refs/heads/{branch}");
    assert_eq!(git(&s.clone, &["rev-parse", &local]).await.unwrap(), sha);
    assert_eq!(git(&s.origin, &["rev-parse", &local]).await.unwrap(), sha);

    // Idempotent: gone already, or never there, or no clone at all.
    s.ws.remove_worktree(&s.clone, "T-7").await.unwrap();
    s.ws.remove_worktree(&s.clone, "T-8").await.unwrap();
    s.ws.remove_worktree(&s.scratch.join("no-clone"), "T-7")
        .await
        .unwrap();

    // The task can have its worktree again, on its branch.
    let again =
        s.ws.create_worktree(&s.clone, "T-7", &branch)
            .await
            .unwrap();
    assert_eq!(again, wt);
    assert_eq!(
        git(&again, &["branch", "--show-current"]).await.unwrap(),
        branch
    );
    assert!(recorded(&s.clone, "T-7").await);
}

#[tokio::test]
async fn removing_a_damaged_worktree_still_clears_it_and_strangers_are_left_alone() {
    let s = setup().await;
    // An agent deleted the worktree's `.git` file: git no longer knows it as a worktree.
    let (wt, branch, sha) = task_with(&s, "T-9", "Damaged", &[("d.txt", "d\n")]).await;
    std::fs::remove_file(wt.join(".git")).unwrap();
    s.ws.remove_worktree(&s.clone, "T-9").await.unwrap();
    assert!(!wt.exists());
    assert!(!recorded(&s.clone, "T-9").await);
    let local = format!("refs/heads/{branch}");
    assert_eq!(git(&s.clone, &["rev-parse", &local]).await.unwrap(), sha);

    // A directory in a worktree's place that git never made is not ours to delete.
    let stranger = s.ws.worktrees_dir().join("T-10");
    write(&stranger, "keep.txt", "mine\n");
    let err = s.ws.remove_worktree(&s.clone, "T-10").await.unwrap_err();
    assert!(
        err.to_string().contains("T-10") && err.to_string().contains("not a worktree"),
        "{err}"
    );
    assert!(stranger.join("keep.txt").exists());

    // A bad id is refused before anything is touched.
    let err = s.ws.remove_worktree(&s.clone, "../T-10").await.unwrap_err();
    assert!(matches!(err, GitError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("\"../T-10\""), "{err}");
    assert!(stranger.join("keep.txt").exists());
}

#[tokio::test]
async fn a_fast_forward_that_loses_the_race_for_main_builds_again_on_the_moved_main() {
    let s = setup().await;
    let (_, branch, sha) = task_with(&s, "T-3", "Race", &[("race.txt", "x\n")]).await;
    // The origin moves main under the first push, as a concurrent merge would.
    let hook = s.origin.join("hooks/pre-receive");
    let marker = s.scratch.join("moved");
    let script = format!(
        "#!/bin/sh\n\
         [ -e '{marker}' ] && exit 0\n\
         touch '{marker}'\n\
         unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n\
         tree=$(git rev-parse main^{{tree}})\n\
         moved=$(echo moved | GIT_AUTHOR_NAME=x GIT_AUTHOR_EMAIL=x@x GIT_COMMITTER_NAME=x \
         GIT_COMMITTER_EMAIL=x@x git commit-tree -p main \"$tree\")\n\
         git update-ref refs/heads/main \"$moved\"\n",
        marker = marker.display()
    );
    std::fs::write(&hook, script).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&hook)
        .status()
        .unwrap();

    let CandidateOutcome::Built { sha: candidate, .. } =
        s.ws.build_candidate(&s.clone, &branch, None, "Merge T-3")
            .await
            .unwrap()
    else {
        panic!("expected a candidate");
    };
    // The push is refused: main moved. Nothing untested lands; the queue must rebuild.
    let outcome = s.ws.fast_forward_main(&s.clone, &candidate).await.unwrap();
    assert!(marker.exists(), "the hook never ran, so no race was staged");
    let moved = origin_main(&s.origin).await;
    assert_eq!(
        outcome,
        FastForwardOutcome::MainMoved {
            main: moved.clone()
        }
    );
    assert_ne!(moved, candidate);
    assert!(!s.ws.is_merged(&s.clone, &candidate).await.unwrap());

    // Rebuilt on the moved main, it fast-forwards; its first parent is the moved main.
    let CandidateOutcome::Built { sha: rebuilt, base } =
        s.ws.build_candidate(&s.clone, &branch, None, "Merge T-3")
            .await
            .unwrap()
    else {
        panic!("expected a candidate");
    };
    assert_eq!(base, moved);
    assert_eq!(
        s.ws.fast_forward_main(&s.clone, &rebuilt).await.unwrap(),
        FastForwardOutcome::Merged
    );
    assert_eq!(origin_main(&s.origin).await, rebuilt);
    let first_parent = git(&s.origin, &["rev-parse", &format!("{rebuilt}^1")])
        .await
        .unwrap();
    assert_eq!(first_parent, moved, "the candidate's first parent is main");
    assert!(s.ws.is_merged(&s.clone, &sha).await.unwrap());
    // Fast-forwarding to a candidate main already holds changes nothing (a retry after a
    // lost answer): the first candidate is the rebuilt one's second parent.
    assert_eq!(
        s.ws.fast_forward_main(&s.clone, &rebuilt).await.unwrap(),
        FastForwardOutcome::Merged
    );
}

#[tokio::test]
async fn main_is_never_pushed_from_a_task_and_bad_names_change_nothing() {
    let s = setup().await;
    let main_before = origin_main(&s.origin).await;
    let (wt, _, _) = task_with(&s, "T-4", "Try main", &[("x.txt", "x\n")]).await;
    let err = s.ws.push_branch(&s.clone, &wt, "main").await.unwrap_err();
    assert!(matches!(err, GitError::ProtectedBranch { .. }), "{err}");
    assert!(err.to_string().contains("\"main\""), "{err}");
    assert_eq!(origin_main(&s.origin).await, main_before);
    assert!(s.ws.merge_into_main(&s.clone, "main", "x").await.is_err());

    for rel in ["../etc/passwd", "/etc/passwd", "docs/../../x"] {
        let err =
            s.ws.read_artifact(&s.clone, Some(&wt), rel)
                .await
                .unwrap_err();
        assert!(err.to_string().contains(&format!("{rel:?}")), "{err}");
        let err =
            s.ws.list_artifact_dir(&s.clone, Some(&wt), rel)
                .await
                .unwrap_err();
        assert!(err.to_string().contains(&format!("{rel:?}")), "{err}");
    }
    // A symlink cannot smuggle a host file in as an artifact.
    std::os::unix::fs::symlink("/etc/hostname", wt.join("verdict.md")).unwrap();
    let err =
        s.ws.read_artifact(&s.clone, Some(&wt), "verdict.md")
            .await
            .unwrap_err();
    assert!(err.to_string().contains("outside the worktree"), "{err}");

    for repo in ["../evil", "acme/../../etc", "/abs"] {
        let err =
            s.ws.ensure_clone(repo, s.origin.to_str().unwrap())
                .await
                .unwrap_err();
        assert!(err.to_string().contains(&format!("{repo:?}")), "{err}");
    }
    let err =
        s.ws.create_worktree(&s.clone, "../T-5", "feature/T-5")
            .await
            .unwrap_err();
    assert!(err.to_string().contains("\"../T-5\""), "{err}");
    let err =
        s.ws.create_worktree(&s.clone, "T-5", "--force")
            .await
            .unwrap_err();
    assert!(err.to_string().contains("\"--force\""), "{err}");
    let leftovers = std::fs::read_dir(s.ws.worktrees_dir()).unwrap().count();
    assert_eq!(leftovers, 1, "only T-4's worktree exists");
}

#[tokio::test]
async fn ci_tells_green_from_red_from_tool_trouble() {
    let s = setup().await;
    let branch = branch_name("T-6", "CI");
    let wt =
        s.ws.create_worktree(&s.clone, "T-6", &branch)
            .await
            .unwrap();
    let long = Duration::from_secs(60);

    let run = s.ws.run_test_cmd(&wt, SAMPLE_TEST_CMD, long).await;
    let CiOutcome::Green { summary } = run else {
        panic!("expected green, got {run:?}")
    };
    assert!(
        summary.contains("sh test.sh") && summary.contains("all tests passed"),
        "{summary}"
    );

    // Break the app: the sample's own test goes red and says why.
    write(&wt, "app.sh", "printf 'Bye\\n'\n");
    let run = s.ws.run_test_cmd(&wt, SAMPLE_TEST_CMD, long).await;
    let CiOutcome::Red { output_tail } = run else {
        panic!("expected red, got {run:?}")
    };
    assert!(output_tail.contains("not ok - app.sh Ada"), "{output_tail}");

    // A long failing output keeps its end, within the limit; stderr is captured too.
    let noisy =
        "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; echo boom >&2; exit 3";
    let run =
        s.ws.run_test_cmd(&wt, &format!("sh -c '{noisy}'"), long)
            .await;
    let CiOutcome::Red { output_tail } = run else {
        panic!("expected red, got {run:?}")
    };
    assert!(
        output_tail.len() <= super::ci::OUTPUT_TAIL_BYTES,
        "{}",
        output_tail.len()
    );
    assert!(output_tail.ends_with("line 2999\nboom\n"), "{output_tail}");

    for (cmd, expected) in [
        (
            "definitely-not-a-program-9f2 --all",
            "definitely-not-a-program-9f2",
        ),
        ("sh 'unterminated", "cannot parse"),
        ("   ", "is empty"),
    ] {
        let run = s.ws.run_test_cmd(&wt, cmd, long).await;
        let CiOutcome::ToolError { message } = run else {
            panic!("{cmd}: expected a tool error, got {run:?}")
        };
        assert!(message.contains(expected), "{message}");
    }

    // A timeout kills the command and what it started, and is never a red verdict.
    let pid_file = s.scratch.join("background.pid");
    let cmd = format!(
        "sh -c 'echo started; sleep 120 & echo $! > {}; wait'",
        pid_file.display()
    );
    let run =
        s.ws.run_test_cmd(&wt, &cmd, Duration::from_millis(500))
            .await;
    let CiOutcome::ToolError { message } = run else {
        panic!("expected a tool error, got {run:?}")
    };
    assert!(
        message.contains("did not finish within") && message.contains("sleep 120"),
        "{message}"
    );
    assert!(message.contains("started"), "{message}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    // Gone, or a zombie waiting for init to reap it; never still sleeping. SIGKILL takes
    // effect asynchronously, so allow the kernel a moment on a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        if state.is_empty() || state.split(' ').nth(2) == Some("Z") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "background sleep survived: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let missing = s.scratch.join("gone");
    let run = s.ws.run_test_cmd(&missing, SAMPLE_TEST_CMD, long).await;
    assert!(matches!(run, CiOutcome::ToolError { .. }), "{run:?}");
}

#[tokio::test]
async fn lock_files_a_killed_git_left_in_the_clone_do_not_wedge_the_next_merge() {
    let s = setup().await;
    let (_, branch, sha) = task_with(&s, "T-11", "After a kill", &[("k.txt", "k\n")]).await;
    // What a merge's git leaves behind when its future is aborted and git is SIGKILLed.
    for name in ["index.lock", "HEAD.lock", "refs/heads/main.lock"] {
        write(&s.clone.join(".git"), name, "");
    }
    let outcome =
        s.ws.merge_into_main(&s.clone, &branch, "Merge T-11")
            .await
            .unwrap();
    assert!(
        matches!(outcome, MergeOutcome::Merged { .. }),
        "{outcome:?}"
    );
    assert!(s.ws.is_merged(&s.clone, &sha).await.unwrap());
    assert!(!s.clone.join(".git/index.lock").exists());
}
