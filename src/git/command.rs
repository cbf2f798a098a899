//! The one way this crate runs git: argv only (never a shell), stdin closed, a pinned
//! environment and identity, a time limit, and errors that name the command, the directory,
//! the exit code and the tail of git's complaint.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::owner::CLONE_ENV;

/// How long one git invocation may run before it is killed: a fetch from an unreachable
/// remote must surface as an error the caller can defer on, not hang a task forever.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// How much of git's stderr an error keeps; the end is where git says what went wrong.
const STDERR_TAIL_BYTES: usize = 2000;

/// Longest command line shown in an error; commit messages can be long.
const COMMAND_SHOWN_CHARS: usize = 300;

/// `-c` settings given to every invocation. The identity makes commits and merges independent
/// of the host's git config; `core.hooksPath` keeps hooks an agent may have written into the
/// shared `.git` from ever running inside the service; signing would need a key and a prompt.
const CONFIG: &[&str] = &[
    "user.name=orchestrator",
    "user.email=orchestrator@localhost",
    "init.defaultBranch=main",
    "core.hooksPath=/dev/null",
    "commit.gpgSign=false",
    // Automatic gc and maintenance (after a fetch or a commit) stay on, but in the foreground:
    // then they run inside the git that triggered them, and so inside the clone's turn
    // (`owner.rs`). Detached, they would outlive it and repack refs (`packed-refs.lock`)
    // under the next operation; switched off, the clones would need a gc of our own.
    "gc.autoDetach=false",
    "maintenance.autoDetach=false",
];

/// Variables that would point git at another repository or inject config. They are set when
/// the service (or its test suite) runs under a git hook, and must never leak into our calls.
const SCRUBBED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
];

/// Everything that can go wrong in the workspace adapter; each message names the command,
/// path, branch or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git ran and exited non-zero (or was killed by a signal).
    #[error("`{command}` failed in {} ({}): {stderr}", .dir.display(), exit_text(*.code))]
    Failed {
        /// The command line, e.g. `git merge --no-ff origin/feature/X-1`.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// Its exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// The last part of its stderr.
        stderr: String,
    },
    /// git could not be started or waited for (not installed, directory missing, …).
    #[error("cannot run `{command}` in {}: {source}", .dir.display())]
    Spawn {
        /// The command line.
        command: String,
        /// Where it was to run.
        dir: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// git ran past [`GIT_TIMEOUT`] and was killed.
    #[error("`{command}` in {} did not finish within {after:?} and was killed", .dir.display())]
    Timeout {
        /// The command line.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// The limit it ran past.
        after: Duration,
    },
    /// An input (repo name, artifact path, branch, id, sha, origin) was rejected before any
    /// git call, so bad input changes nothing.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What the input is, e.g. `repo name`.
        what: &'static str,
        /// The input, verbatim.
        value: String,
        /// The rule it broke.
        reason: String,
    },
    /// A push to `main` was asked for; `main` changes only through the forge's merge.
    #[error("refusing to push branch {branch:?}: main changes only through a merge")]
    ProtectedBranch {
        /// The branch that was refused.
        branch: String,
    },
    /// The clone's lock is still held after its marked holders were ended: a process this
    /// service did not start as one of the clone's git (or cannot end) keeps it.
    #[error(
        "clone {} is held by another process ({}); {ended} leftover git process(es) were ended but the lock is still taken",
        .clone.display(),
        .lock.display()
    )]
    Held {
        /// The clone.
        clone: PathBuf,
        /// Its lock file.
        lock: PathBuf,
        /// How many processes marked as its git were ended.
        ended: usize,
    },
    /// What was to be committed still holds a merge conflict's markers: the work is not
    /// done, and nothing was committed.
    #[error(
        "{} still holds merge-conflict markers (<<<<<<< … >>>>>>>) in {}: resolve them before the work is committed",
        .worktree.display(),
        .files.join(", ")
    )]
    ConflictMarkers {
        /// The worktree.
        worktree: PathBuf,
        /// The files with markers.
        files: Vec<String>,
    },
    /// A file-system operation around git failed.
    #[error("cannot access {}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The repository or a directory is not in the state the operation needs.
    #[error("{}: {problem}", .path.display())]
    State {
        /// The clone, worktree or directory concerned.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_string(),
    }
}

/// What one git run produced, for callers to whom a non-zero exit is an answer rather than
/// a failure (a merge conflict, `merge-base --is-ancestor`, `diff --quiet`).
pub(crate) struct GitOutput {
    /// Exit code; `None` when a signal ended git.
    pub code: Option<i32>,
    /// Raw stdout: file contents read through git must not be trimmed or re-encoded.
    pub stdout: Vec<u8>,
    /// stderr, lossily decoded.
    pub stderr: String,
    /// The command line, kept to build an error from this output.
    command: String,
    /// Where it ran.
    dir: PathBuf,
}

impl GitOutput {
    /// Whether git exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout as trimmed text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }

    /// This run as a [`GitError::Failed`].
    pub fn into_error(self) -> GitError {
        GitError::Failed {
            command: self.command,
            dir: self.dir,
            code: self.code,
            stderr: tail_utf8(self.stderr.trim().as_bytes(), STDERR_TAIL_BYTES),
        }
    }
}

/// Runs `git <args>` in `cwd` and returns its trimmed stdout; a non-zero exit is an error.
pub async fn git(cwd: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = git_output(cwd, args).await?;
    if out.success() {
        Ok(out.text())
    } else {
        Err(out.into_error())
    }
}

/// Runs `git <args>` in `cwd` and returns whatever it produced; only failing to run at all
/// (or running past [`GIT_TIMEOUT`]) is an error.
pub(crate) async fn git_output(cwd: &Path, args: &[&str]) -> Result<GitOutput, GitError> {
    git_output_with(cwd, args, |_| {}).await
}

/// [`git_output`], with `prepare` adjusting the command before it starts (a clone's turn
/// hands git the clone's lock and marker).
pub(crate) async fn git_output_with(
    cwd: &Path,
    args: &[&str],
    prepare: impl FnOnce(&mut Command),
) -> Result<GitOutput, GitError> {
    let command = command_line(args);
    let mut cmd = Command::new("git");
    for setting in CONFIG {
        cmd.arg("-c").arg(setting);
    }
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Dropping the future on timeout must not leave git running — nor what it started
        // (remote helpers, pack-objects): its own group, killed whole by `GroupKill`.
        .kill_on_drop(true)
        .process_group(0)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        // Messages we match on (push rejections) must not be translated.
        .env("LC_ALL", "C");
    for name in SCRUBBED_ENV {
        cmd.env_remove(name);
    }
    // Only git run during a clone's turn may carry its marker: a later boot ends what does.
    cmd.env_remove(CLONE_ENV);
    prepare(&mut cmd);
    let spawn_error = |source| GitError::Spawn {
        command: command.clone(),
        dir: cwd.to_path_buf(),
        source,
    };
    let child = cmd.spawn().map_err(spawn_error)?;
    let mut group = GroupKill(child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()));
    let output = match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
        Ok(result) => {
            // It ended and was reaped: its group id may be reused from now on.
            group.0 = None;
            result.map_err(spawn_error)?
        }
        Err(_) => {
            return Err(GitError::Timeout {
                command,
                dir: cwd.to_path_buf(),
                after: GIT_TIMEOUT,
            });
        }
    };
    Ok(GitOutput {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        command,
        dir: cwd.to_path_buf(),
    })
}

/// SIGKILLs a git's whole process group if its call is abandoned (timed out, or its future
/// dropped) before git ended.
struct GroupKill(Option<libc::pid_t>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) has no memory effects; a negative pid addresses the group git
            // leads (its leader is not reaped yet, so the id is still its own).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// `git <args>` as a reader would type it, quoted where needed and cut to a readable length.
fn command_line(args: &[&str]) -> String {
    let line = format!("git {}", shell_words::join(args));
    match line.char_indices().nth(COMMAND_SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The last `max` bytes of `bytes` as text, starting on a character boundary.
pub(crate) fn tail_utf8(bytes: &[u8], max: usize) -> String {
    let mut start = bytes.len().saturating_sub(max);
    // Skip UTF-8 continuation bytes so the cut never splits a character.
    while start < bytes.len() && bytes[start] & 0xC0 == 0x80 {
        start += 1;
    }
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// `path` as an argv item; git takes paths as text, so a non-UTF-8 path is refused by name.
pub(crate) fn path_arg(path: &Path) -> Result<&str, GitError> {
    path.to_str().ok_or_else(|| GitError::Invalid {
        what: "path",
        value: path.display().to_string(),
        reason: "it is not valid UTF-8".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_command_is_named_with_its_directory_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = git(dir.path(), &["merge", "--no-ff", "origin/feature/X-1"])
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("`git merge --no-ff origin/feature/X-1` failed in "),
            "{text}"
        );
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains("exit code 128"), "{text}");
        assert!(text.contains("not a git repository"), "{text}");
    }

    #[tokio::test]
    async fn stdout_is_trimmed_and_the_identity_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "--quiet"]).await.unwrap();
        assert_eq!(
            git(dir.path(), &["symbolic-ref", "HEAD"]).await.unwrap(),
            "refs/heads/main"
        );
        assert_eq!(
            git(dir.path(), &["var", "GIT_COMMITTER_IDENT"])
                .await
                .unwrap()
                .split(" <")
                .next(),
            Some("orchestrator")
        );
    }

    #[test]
    fn tails_never_split_a_character() {
        assert_eq!(tail_utf8("aé".as_bytes(), 1), "");
        assert_eq!(tail_utf8("aé".as_bytes(), 2), "é");
        assert_eq!(tail_utf8(b"abc", 10), "abc");
        assert!(command_line(&["commit", "-m", &"x".repeat(1000)]).ends_with('…'));
    }

    #[tokio::test]
    async fn an_abandoned_git_takes_what_it_started_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        // An alias that starts a long-running child of git, as a remote helper would be.
        let alias = format!(
            "alias.hang=!sh -c 'echo $$ > {}; exec sleep 60'",
            pid_file.display()
        );
        let cwd = dir.path().to_path_buf();
        let call = tokio::spawn(async move { git_output(&cwd, &["-c", &alias, "hang"]).await });
        let mut child = None;
        for _ in 0..400 {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                child = Some(pid);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let child = child.expect("git started its child");
        call.abort();
        let _ = call.await;
        let mut gone = false;
        for _ in 0..200 {
            if !crate::os::procs::stat_of(child).is_some_and(|s| s.is_live()) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(gone, "git's child {child} outlived the abandoned call");
    }
}
