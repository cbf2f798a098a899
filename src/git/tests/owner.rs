//! The clone's owner under load: many tasks of one repository preparing, committing,
//! pushing and fetching at once on one shared clone, and a git process of a dead boot that
//! still holds the clone.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::process::{Child, Command};

use super::super::command::git_output;
use super::super::owner::{CLONE_ENV, CloneTurn};
use super::{GitError, Setup, Workspace, branch_name, git, setup, write};
use crate::os::lockfile::LockFile;

/// Tasks run at once on one clone: enough for git's ref locks to collide when anything
/// runs outside the owner (with pushes outside the clone's lock, 9 runs in 10 failed with
/// "cannot lock ref 'refs/remotes/origin/…': is at … but expected …").
const TASKS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_of_one_repository_never_fail_on_a_git_lock() {
    let s = Arc::new(setup().await);
    let origin = s.origin.to_str().unwrap().to_string();
    let mut work = tokio::task::JoinSet::new();
    for i in 0..TASKS {
        let s = Arc::clone(&s);
        let origin = origin.clone();
        work.spawn(async move {
            let id = format!("T-{}", 100 + i);
            let branch = branch_name(&id, "Load");
            one_task(&s, &origin, &id, &branch)
                .await
                .map_err(|e| format!("{id}: {e}"))
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = work.join_next().await {
        if let Err(e) = done.unwrap() {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every branch reached the origin with its own commit.
    for i in 0..TASKS {
        let id = format!("T-{}", 100 + i);
        let branch = branch_name(&id, "Load");
        let file = format!("{branch}:load-{id}.txt");
        assert_eq!(
            git(&s.origin, &["show", &file]).await.unwrap(),
            id,
            "{file}"
        );
    }
}

/// What a task's runs do to the clone: prepare (fetch, worktree), publish twice (commit,
/// push), and a gate's fetch in between.
async fn one_task(s: &Setup, origin: &str, id: &str, branch: &str) -> Result<(), String> {
    let e = |e: GitError| e.to_string();
    let clone = s.ws.ensure_clone("acme/app", origin).await.map_err(e)?;
    let wt = s.ws.create_worktree(&clone, id, branch).await.map_err(e)?;
    for round in 0..2 {
        write(
            &wt,
            &format!("load-{id}.txt"),
            if round == 0 { "draft" } else { id },
        );
        s.ws.commit_all(&clone, &wt, &format!("feat: {id} round {round}"))
            .await
            .map_err(e)?;
        s.ws.push_branch(&clone, &wt, branch).await.map_err(e)?;
        s.ws.ensure_clone("acme/app", origin).await.map_err(e)?;
    }
    let head = s.ws.head_sha(&wt).await.map_err(e)?;
    if s.ws.is_merged(&clone, &head).await.map_err(e)? {
        return Err(format!("{head} reads as merged"));
    }
    Ok(())
}

/// A process the dead boot left on `clone`: started during one of the clone's turns (so it
/// holds the clone's lock and carries its marker), then the turn ended with the boot.
async fn leftover(clone: &Path, argv: &[&str]) -> Child {
    let turn = CloneTurn::take(clone, Duration::ZERO).await.unwrap();
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).kill_on_drop(true);
    turn.hand_to(&mut cmd);
    cmd.spawn().unwrap()
}

/// A second boot's workspace over the same clones, giving leftovers `wait`.
fn next_boot(s: &Setup, wait: Duration) -> Workspace {
    Workspace::new(s.clone.parent().unwrap(), s.ws.worktrees_dir()).with_leftover_git_wait(wait)
}

/// How `child` ended; a child still running after a minute was not ended at all.
async fn exit_of(child: &mut Child) -> ExitStatus {
    tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the leftover was never ended")
        .unwrap()
}

fn still_running(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[tokio::test]
async fn a_git_left_by_a_dead_boot_is_waited_for_then_ended_and_nothing_else_is() {
    let s = setup().await;
    let origin = s.origin.to_str().unwrap();

    // A push that survived its boot and finishes within the wait (here it lands on the
    // origin directly): the next boot's fetch runs after it, so it sees the pushed branch,
    // and the push was never cut short.
    let push = format!("sleep 3; git -C '{origin}' branch left main");
    let mut survivor = leftover(&s.clone, &["sh", "-c", &push]).await;
    let ws = next_boot(&s, Duration::from_secs(120));
    ws.ensure_clone("acme/app", origin).await.unwrap();
    assert!(exit_of(&mut survivor).await.success());
    git(
        &s.clone,
        &["rev-parse", "--verify", "refs/remotes/origin/left"],
    )
    .await
    .expect("the fetch waited for the leftover push");

    // Past the wait, what carries the clone's marker is ended with SIGTERM (git removes its
    // lock files on it) — the background child too. Bystanders are left alone: a process
    // holding an unrelated lock, and one marked for another clone.
    let term_seen = s.scratch.join("term-seen");
    let trap = format!(
        "trap 'touch {}; exit 0' TERM; sleep 600 & wait",
        term_seen.display()
    );
    let mut stuck = leftover(&s.clone, &["sh", "-c", &trap]).await;
    let unrelated = LockFile::try_acquire(&s.scratch.join("unrelated.lock"))
        .unwrap()
        .unwrap();
    let mut holder = Command::new("sleep");
    holder.arg("600").kill_on_drop(true);
    unrelated.pass_to(&mut holder, 3);
    let mut holder = holder.spawn().unwrap();
    drop(unrelated);
    let mut other_clone = Command::new("sleep")
        .arg("600")
        .env(CLONE_ENV, s.scratch.join("other-clone"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ws = next_boot(&s, Duration::from_millis(200));
    ws.ensure_clone("acme/app", origin).await.unwrap();
    assert!(
        exit_of(&mut stuck).await.success(),
        "ended by its TERM trap"
    );
    assert!(term_seen.exists());
    assert!(marked_on(&s.clone).is_empty(), "{:?}", marked_on(&s.clone));
    assert!(still_running(&mut holder));
    assert!(LockFile::is_held(&s.scratch.join("unrelated.lock")));
    assert!(still_running(&mut other_clone));

    // One that ignores SIGTERM gets SIGKILL after the grace.
    let mut deaf = leftover(&s.clone, &["sh", "-c", "trap '' TERM; sleep 600"]).await;
    let (wt, branch) = (
        s.ws.worktrees_dir().join("T-40"),
        branch_name("T-40", "After"),
    );
    ws.create_worktree(&s.clone, "T-40", &branch).await.unwrap();
    assert_eq!(exit_of(&mut deaf).await.signal(), Some(libc::SIGKILL));
    assert!(marked_on(&s.clone).is_empty(), "{:?}", marked_on(&s.clone));
    assert!(wt.join("README.md").exists());
    assert!(still_running(&mut holder) && still_running(&mut other_clone));

    // A process without the marker that holds the clone's lock is never ended: the clone
    // stays unusable, an error naming it, until it lets go.
    let lock = s.clone.parent().unwrap().join("_locks/acme__app.lock");
    let taken = LockFile::try_acquire(&lock).unwrap().unwrap();
    let mut squatter = Command::new("sleep");
    squatter.arg("600").kill_on_drop(true);
    taken.pass_to(&mut squatter, 3);
    let mut squatter = squatter.spawn().unwrap();
    drop(taken);
    let err = ws.ensure_clone("acme/app", origin).await.unwrap_err();
    assert!(matches!(err, GitError::Held { ended: 0, .. }), "{err}");
    assert!(err.to_string().contains("acme__app.lock"), "{err}");
    assert!(still_running(&mut squatter));
    squatter.kill().await.unwrap();
    ws.ensure_clone("acme/app", origin).await.unwrap();

    for mut child in [holder, other_clone] {
        assert!(still_running(&mut child));
        child.kill().await.unwrap();
    }
}

/// The living processes marked as git of `clone`.
fn marked_on(clone: &Path) -> Vec<u32> {
    let clone = std::fs::canonicalize(clone).unwrap();
    crate::os::procs::marked("ORCH_GIT_", CLONE_ENV, clone.to_str().unwrap())
        .into_iter()
        .map(|p| p.pid)
        .collect()
}

#[tokio::test]
async fn old_lock_files_on_shared_refs_are_cleared_and_fresh_or_private_ones_kept() {
    let s = setup().await;
    let (_, branch, _) = super::task_with(&s, "T-41", "Gone", &[("g.txt", "g\n")]).await;
    // The branch leaves the origin: the next fetch prunes it, which takes packed-refs.lock.
    git(&s.origin, &["branch", "--quiet", "-D", &branch])
        .await
        .unwrap();
    let git_dir = s.clone.join(".git");
    let long_ago = SystemTime::now() - Duration::from_secs(600);
    let aged = |rel: &str| {
        write(&git_dir, rel, "");
        let file = std::fs::File::options()
            .write(true)
            .open(git_dir.join(rel))
            .unwrap();
        file.set_modified(long_ago).unwrap();
    };
    // Left by gits killed long ago: one of ours, or an agent's.
    aged("packed-refs.lock");
    aged("refs/remotes/origin/feature/elsewhere.lock");
    // A worktree's own lock is its agent's business, however old.
    aged("worktrees/T-41/index.lock");
    // A fresh one may belong to a git working right now.
    write(&git_dir, "refs/heads/feature/T-42-busy.lock", "");

    s.ws.ensure_clone("acme/app", s.origin.to_str().unwrap())
        .await
        .unwrap();
    let pruned = git_output(
        &s.clone,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/remotes/origin/{branch}"),
        ],
    )
    .await
    .unwrap();
    assert!(!pruned.success(), "the fetch pruned the deleted branch");
    assert!(!git_dir.join("packed-refs.lock").exists());
    assert!(
        !git_dir
            .join("refs/remotes/origin/feature/elsewhere.lock")
            .exists()
    );
    assert!(git_dir.join("worktrees/T-41/index.lock").exists());
    assert!(git_dir.join("refs/heads/feature/T-42-busy.lock").exists());
}
