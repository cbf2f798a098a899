//! The git adapter behind the Workspace port: one local clone per repository, one worktree per
//! task branch, artifact reads (the task worktree first, then `origin/main`), commits, pushes,
//! the local forge's merge and CI run. Every git call is argv through [`command::git`].
//!
//! One writer per clone: every operation that writes a clone's refs, config, index or
//! objects — fetch, worktree add and remove, merge, and a task worktree's commit and push,
//! since a worktree shares all of those with its clone — runs during the clone's turn, and
//! its git through that turn ([`owner`]); reads (`rev-parse`, `cat-file`, `ls-tree`) do not
//! need one.

mod candidate;
mod checkout;
mod ci;
pub mod command;
mod names;
mod owner;
pub mod sample;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
#[cfg(test)]
pub use candidate::MergeOutcome;
pub use candidate::{CandidateOutcome, FastForwardOutcome};
pub use command::GitError;
use command::{git, git_output, path_arg};
use owner::CloneTurn;
pub use owner::LEFTOVER_GIT_WAIT;

/// Local clones and task worktrees on this machine. The git operations that write a clone
/// take turns on it ([`owner`]), which git itself would otherwise fail with "cannot lock ref"
/// when tasks of one repo run together.
#[derive(Debug)]
pub struct Workspace {
    /// One non-bare clone per repository, named after it (`<data>/repos`).
    cache_dir: PathBuf,
    /// One worktree per task, named after its id (`ORCH_WORKTREES_DIR`).
    worktrees_dir: PathBuf,
    /// How long a git of an earlier boot may keep working on a clone before it is ended.
    leftover_git_wait: Duration,
}

impl Workspace {
    /// A workspace keeping clones in `cache_dir` and worktrees in `worktrees_dir`. Both are
    /// made absolute now: git resolves relative paths against the directory it runs in.
    pub fn new(cache_dir: impl Into<PathBuf>, worktrees_dir: impl Into<PathBuf>) -> Self {
        let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
        Self {
            cache_dir: absolute(cache_dir.into()),
            worktrees_dir: absolute(worktrees_dir.into()),
            leftover_git_wait: LEFTOVER_GIT_WAIT,
        }
    }

    /// This workspace, giving a git left running on a clone by an earlier boot `wait`
    /// (instead of [`LEFTOVER_GIT_WAIT`]) to finish before it is ended.
    pub fn with_leftover_git_wait(mut self, wait: Duration) -> Self {
        self.leftover_git_wait = wait;
        self
    }

    /// The workspace described by the service configuration.
    pub fn from_config(config: &Config) -> Self {
        Self::new(config.repos_dir(), config.worktrees_dir.clone())
    }

    /// Where the task worktrees live.
    pub fn worktrees_dir(&self) -> &Path {
        &self.worktrees_dir
    }

    /// Where the clone of `repo` is (or would be), without touching it or its origin.
    pub fn clone_dir(&self, repo: &str) -> Result<PathBuf, GitError> {
        Ok(self.cache_dir.join(names::clone_dir_name(repo)?))
    }

    /// Makes sure a local clone of `repo` exists under the cache directory and is up to date
    /// with `origin` (a bare repository path or a git URL); returns its path.
    pub async fn ensure_clone(&self, repo: &str, origin: &str) -> Result<PathBuf, GitError> {
        let name = names::clone_dir_name(repo)?;
        let origin = names::origin(origin)?;
        let clone = self.cache_dir.join(&name);
        let turn = self.turn(&clone).await?;
        if exists(&clone.join(".git")).await? {
            // The configured origin may have moved since the clone was made.
            if turn.git(&clone, &["remote", "get-url", "origin"]).await? != origin {
                turn.git(&clone, &["remote", "set-url", "origin", &origin])
                    .await?;
            }
            fetch(&turn, &clone).await?;
            return Ok(clone);
        }
        create_dir_all(&self.cache_dir).await?;
        // Clone beside the target and rename, so an interrupted clone never looks finished.
        let partial = self.cache_dir.join(format!(".{name}.partial"));
        remove_dir_all(&partial).await?;
        let partial_arg = path_arg(&partial)?;
        turn.git(
            &self.cache_dir,
            &["clone", "--quiet", "--", &origin, partial_arg],
        )
        .await?;
        tokio::fs::rename(&partial, &clone)
            .await
            .map_err(|source| GitError::Io {
                path: clone.clone(),
                source,
            })?;
        Ok(clone)
    }

    /// Marks `patterns` as append-only in `clone` (`.git/info/attributes`, shared by its
    /// worktrees): git merges them with its built-in `union` driver, keeping both sides'
    /// lines, so entries two tasks each added never conflict. Only the orchestrator's clone
    /// gets the attributes; the repository itself is not changed. Written only when they
    /// differ, during the clone's turn.
    pub async fn set_append_only(&self, clone: &Path, patterns: &[String]) -> Result<(), GitError> {
        let mut wanted = String::from("# Written by the orchestrator: append-only files.\n");
        for pattern in patterns {
            wanted.push_str(&format!("{pattern} merge=union\n"));
        }
        let path = clone.join(".git").join("info").join("attributes");
        if tokio::fs::read_to_string(&path).await.ok().as_deref() == Some(wanted.as_str()) {
            return Ok(());
        }
        let _turn = self.turn(clone).await?;
        if let Some(dir) = path.parent() {
            create_dir_all(dir).await?;
        }
        tokio::fs::write(&path, wanted).await.map_err(io_at(&path))
    }

    /// Creates the worktree of task `id` on `branch`, freshly based on `origin/main` (fetched
    /// first), at `<worktrees_dir>/<id>`. An existing worktree of that task on that branch is
    /// returned untouched, so a restarted task never loses work in progress.
    pub async fn create_worktree(
        &self,
        clone: &Path,
        id: &str,
        branch: &str,
    ) -> Result<PathBuf, GitError> {
        names::work_item_id(id)?;
        names::task_branch(branch)?;
        let path = self.worktrees_dir.join(id);
        let turn = self.turn(clone).await?;
        fetch(&turn, clone).await?;
        // Forget worktrees whose directories were deleted by hand, so their paths can be reused.
        turn.git(clone, &["worktree", "prune"]).await?;
        if let Some(checked_out) = registered_worktree(clone, &path).await? {
            if checked_out.as_deref() == Some(branch) {
                return Ok(path);
            }
            return Err(GitError::State {
                path,
                problem: format!(
                    "is already a worktree on {} instead of {branch}",
                    checked_out.as_deref().unwrap_or("a detached HEAD")
                ),
            });
        }
        if exists(&path).await? {
            return Err(GitError::State {
                path,
                problem: format!("exists but is not a worktree of {}", clone.display()),
            });
        }
        create_dir_all(&self.worktrees_dir).await?;
        // --no-track: the task branch must not track origin/main, or a bare `git push` in the
        // worktree would aim at main.
        turn.git(
            clone,
            &[
                "worktree",
                "add",
                "--quiet",
                "--no-track",
                "-B",
                branch,
                path_arg(&path)?,
                "origin/main",
            ],
        )
        .await?;
        Ok(path)
    }

    /// Reads artifact `rel` from the task worktree if it is there, else from `origin/main` in
    /// `clone` (as last fetched); `Ok(None)` when neither has it.
    pub async fn read_artifact(
        &self,
        clone: &Path,
        worktree: Option<&Path>,
        rel: &str,
    ) -> Result<Option<String>, GitError> {
        let rel = names::artifact_path(rel)?;
        if let Some(worktree) = worktree
            && let Some(text) = read_worktree_file(worktree, &rel).await?
        {
            return Ok(Some(text));
        }
        require_origin_main(clone).await?;
        let spec = format!("origin/main:{rel}");
        let kind = git_output(clone, &["cat-file", "-t", &spec]).await?;
        if !kind.success() || kind.text() != "blob" {
            return Ok(None);
        }
        let out = git_output(clone, &["cat-file", "blob", &spec]).await?;
        if !out.success() {
            return Err(out.into_error());
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// File names directly in `rel_dir`: the union of the worktree's directory and the same
    /// directory on `origin/main`, sorted. A directory missing in both lists nothing.
    pub async fn list_artifact_dir(
        &self,
        clone: &Path,
        worktree: Option<&Path>,
        rel_dir: &str,
    ) -> Result<Vec<String>, GitError> {
        let rel = names::artifact_path(rel_dir)?;
        let mut found = BTreeSet::new();
        if let Some(worktree) = worktree
            && let Some(dir) = inside_worktree(worktree, &rel).await?
            && tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir())
        {
            let mut entries = tokio::fs::read_dir(&dir).await.map_err(io_at(&dir))?;
            while let Some(entry) = entries.next_entry().await.map_err(io_at(&dir))? {
                let is_file = entry.file_type().await.is_ok_and(|t| t.is_file());
                if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
                    found.insert(name.to_string());
                }
            }
        }
        require_origin_main(clone).await?;
        let out = git_output(clone, &["ls-tree", "-z", &format!("origin/main:{rel}")]).await?;
        // A failure here means the directory is not on main (or is a file there).
        if out.success() {
            for entry in out.stdout.split(|b| *b == 0) {
                let entry = String::from_utf8_lossy(entry);
                // `<mode> SP <type> SP <oid> TAB <name>`; symlinks (120000) are not artifacts.
                if let Some((meta, name)) = entry.split_once('\t')
                    && meta.starts_with("100")
                    && meta.split(' ').nth(1) == Some("blob")
                {
                    found.insert(name.to_string());
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Stages everything in `worktree` (a worktree of `clone`) and commits it; the new HEAD
    /// sha, or `None` when there was nothing to commit. Runs during the clone's turn: the
    /// commit writes the clone's objects and refs, and may start git's automatic gc.
    pub async fn commit_all(
        &self,
        clone: &Path,
        worktree: &Path,
        message: &str,
    ) -> Result<Option<String>, GitError> {
        let turn = self.turn(clone).await?;
        turn.git(worktree, &["add", "--all"]).await?;
        let staged = turn
            .git_output(worktree, &["diff", "--cached", "--quiet"])
            .await?;
        match staged.code {
            Some(0) => return Ok(None),
            Some(1) => {}
            _ => return Err(staged.into_error()),
        }
        // A conflict left unresolved is never committed as if it were resolved.
        let added = turn
            .git(
                worktree,
                &["diff", "--cached", "-U0", "--no-color", "--no-ext-diff"],
            )
            .await?;
        let files = files_with_conflict_markers(&added);
        if !files.is_empty() {
            return Err(GitError::ConflictMarkers {
                worktree: worktree.to_path_buf(),
                files,
            });
        }
        turn.git(worktree, &["commit", "--quiet", "-m", message])
            .await?;
        self.head_sha(worktree).await.map(Some)
    }

    /// Pushes `branch` from `worktree` (a worktree of `clone`) to the same name on origin and
    /// sets it as upstream, during the clone's turn: that writes the clone's
    /// `refs/remotes/origin/<branch>` and config, which a fetch writes too. Never forces,
    /// and refuses `main`: main changes only through [`Workspace::merge_into_main`].
    pub async fn push_branch(
        &self,
        clone: &Path,
        worktree: &Path,
        branch: &str,
    ) -> Result<(), GitError> {
        names::task_branch(branch)?;
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        let turn = self.turn(clone).await?;
        turn.git(
            worktree,
            &["push", "--quiet", "--set-upstream", "origin", &refspec],
        )
        .await?;
        Ok(())
    }

    /// The commit checked out in `dir` (a clone or a worktree).
    pub async fn head_sha(&self, dir: &Path) -> Result<String, GitError> {
        git(dir, &["rev-parse", "--verify", "HEAD"]).await
    }

    /// Whether commit `sha` is on `origin/main`, fetched now: the only accepted proof that a
    /// merge happened.
    pub async fn is_merged(&self, clone: &Path, sha: &str) -> Result<bool, GitError> {
        names::sha(sha)?;
        let turn = self.turn(clone).await?;
        fetch(&turn, clone).await?;
        let out = turn
            .git_output(
                clone,
                &[
                    "merge-base",
                    "--is-ancestor",
                    sha,
                    "refs/remotes/origin/main",
                ],
            )
            .await?;
        match out.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(out.into_error()),
        }
    }

    /// Removes the worktree of task `id` and git's record of it; the branch stays, in the
    /// clone and on the origin. Idempotent: no worktree there is `Ok`. A directory at the
    /// worktree's place that is not a worktree of `clone` is left alone and is an error.
    pub async fn remove_worktree(&self, clone: &Path, id: &str) -> Result<(), GitError> {
        names::work_item_id(id)?;
        let path = self.worktrees_dir.join(id);
        let turn = self.turn(clone).await?;
        // Without a clone nothing was ever checked out from it.
        let registered = exists(&clone.join(".git")).await?
            && registered_worktree(clone, &path).await?.is_some();
        if !registered {
            if exists(&path).await? {
                return Err(GitError::State {
                    path,
                    problem: format!("exists but is not a worktree of {}", clone.display()),
                });
            }
            return Ok(());
        }
        // --force: a finished task's uncommitted leftovers must not keep its directory alive.
        let remove = ["worktree", "remove", "--force", path_arg(&path)?];
        if let Err(e) = turn.git(clone, &remove).await {
            // A worktree an agent damaged (its `.git` file deleted) is still ours to delete.
            tracing::debug!(error = %e, worktree = %path.display(), "git worktree remove failed; deleting the directory");
            remove_dir_all(&path).await?;
        }
        turn.git(clone, &["worktree", "prune"]).await?;
        if registered_worktree(clone, &path).await?.is_some() {
            return Err(GitError::State {
                path,
                problem: format!("is still a worktree of {} after removal", clone.display()),
            });
        }
        Ok(())
    }

    /// The turn of `clone`, held by every operation that writes to it or its worktrees.
    async fn turn(&self, clone: &Path) -> Result<CloneTurn, GitError> {
        CloneTurn::take(clone, self.leftover_git_wait).await
    }
}

/// The files whose added lines in `diff` (a unified diff) hold a merge conflict's markers:
/// both a `<<<<<<< ` and a `>>>>>>> ` line (a lone `=======` is a Markdown underline).
fn files_with_conflict_markers(diff: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut file: Option<&str> = None;
    let (mut ours, mut theirs) = (false, false);
    let mut flush = |file: Option<&str>, ours: bool, theirs: bool| {
        if let (Some(file), true, true) = (file, ours, theirs) {
            found.push(file.to_string());
        }
    };
    for line in diff.lines() {
        if let Some(path) = line.strip_prefix("+++ ") {
            flush(file, ours, theirs);
            file = Some(path.strip_prefix("b/").unwrap_or(path));
            (ours, theirs) = (false, false);
        } else if let Some(added) = line.strip_prefix('+') {
            ours |= added.starts_with("<<<<<<< ") || added == "<<<<<<<";
            theirs |= added.starts_with(">>>>>>> ") || added == ">>>>>>>";
        }
    }
    flush(file, ours, theirs);
    found
}

/// Brings the clone's view of origin up to date.
async fn fetch(turn: &CloneTurn, clone: &Path) -> Result<(), GitError> {
    turn.git(clone, &["fetch", "--quiet", "--prune", "origin"])
        .await
        .map(drop)
}

/// Artifact reads from `main` need `origin/main`; its absence is a broken clone, not a
/// missing artifact, and must not read as "no verdict". A read, so it needs no turn.
async fn require_origin_main(clone: &Path) -> Result<(), GitError> {
    let out = git_output(
        clone,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "refs/remotes/origin/main",
        ],
    )
    .await?;
    if out.success() {
        Ok(())
    } else {
        Err(GitError::State {
            path: clone.to_path_buf(),
            problem: "has no origin/main (is the origin empty?)".to_string(),
        })
    }
}

/// The branch checked out in the registered worktree at `path`: `None` when no worktree of
/// `clone` is there, `Some(None)` when it is on a detached HEAD. A read (`worktree list`
/// writes nothing), so it needs no turn; its callers hold one to act on the answer.
async fn registered_worktree(
    clone: &Path,
    path: &Path,
) -> Result<Option<Option<String>>, GitError> {
    let list = git(clone, &["worktree", "list", "--porcelain"]).await?;
    let wanted = tokio::fs::canonicalize(path)
        .await
        .unwrap_or_else(|_| path.to_path_buf());
    for entry in list.split("\n\n") {
        let mut lines = entry.lines();
        let Some(listed) = lines.next().and_then(|l| l.strip_prefix("worktree ")) else {
            continue;
        };
        let listed = tokio::fs::canonicalize(listed)
            .await
            .unwrap_or_else(|_| PathBuf::from(listed));
        if listed == wanted {
            let branch = lines
                .find_map(|l| l.strip_prefix("branch refs/heads/"))
                .map(str::to_string);
            return Ok(Some(branch));
        }
    }
    Ok(None)
}

/// `worktree/rel` if it exists and, symlinks resolved, stays inside the worktree; an agent
/// must not be able to point an artifact at a file elsewhere on the host.
async fn inside_worktree(worktree: &Path, rel: &str) -> Result<Option<PathBuf>, GitError> {
    let root = tokio::fs::canonicalize(worktree)
        .await
        .map_err(io_at(worktree))?;
    let real = match tokio::fs::canonicalize(worktree.join(rel)).await {
        Ok(real) => real,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(source) => {
            return Err(GitError::Io {
                path: worktree.join(rel),
                source,
            });
        }
    };
    if !real.starts_with(&root) {
        return Err(GitError::Invalid {
            what: "artifact path",
            value: rel.to_string(),
            reason: format!("it resolves outside the worktree, to {}", real.display()),
        });
    }
    Ok(Some(real))
}

async fn read_worktree_file(worktree: &Path, rel: &str) -> Result<Option<String>, GitError> {
    let Some(file) = inside_worktree(worktree, rel).await? else {
        return Ok(None);
    };
    if !tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let bytes = tokio::fs::read(&file).await.map_err(io_at(&file))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> GitError + '_ {
    move |source| GitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

async fn exists(path: &Path) -> Result<bool, GitError> {
    tokio::fs::try_exists(path).await.map_err(io_at(path))
}

async fn create_dir_all(path: &Path) -> Result<(), GitError> {
    tokio::fs::create_dir_all(path).await.map_err(io_at(path))
}

/// Deletes `path` and everything under it; already gone is fine.
async fn remove_dir_all(path: &Path) -> Result<(), GitError> {
    match tokio::fs::remove_dir_all(path).await {
        Err(e) if !is_missing(&e) => Err(io_at(path)(e)),
        _ => Ok(()),
    }
}
