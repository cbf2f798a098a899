//! The fake's git: argv only, a pinned identity and environment, for the bare repositories
//! that back a [`GiteaFake`](super::GiteaFake) repo, plus helpers tests use to make them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `-c` settings for every run, so results never depend on the host's git config or hooks.
const CONFIG: &[&str] = &[
    "user.name=gitea-fake",
    "user.email=gitea-fake@localhost",
    "init.defaultBranch=main",
    "core.hooksPath=/dev/null",
    "commit.gpgSign=false",
];

/// Variables that would point git at another repository; a test run under a git hook has them.
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

/// What one git run produced.
pub(crate) struct GitRun {
    /// Whether it exited 0.
    pub ok: bool,
    /// Trimmed stdout.
    pub stdout: String,
    /// stderr, for error messages and conflict bodies.
    pub stderr: String,
}

/// Runs `git <args>` in `dir`; failing to start git at all is reported as a failed run.
pub(crate) fn run(dir: &Path, args: &[&str]) -> GitRun {
    let mut cmd = Command::new("git");
    for setting in CONFIG {
        cmd.arg("-c").arg(setting);
    }
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C");
    for name in SCRUBBED_ENV {
        cmd.env_remove(name);
    }
    match cmd.output() {
        Ok(out) => GitRun {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        },
        Err(e) => GitRun {
            ok: false,
            stdout: String::new(),
            stderr: format!("cannot run git {args:?} in {}: {e}", dir.display()),
        },
    }
}

/// Runs `git <args>` in `dir` and returns its stdout, panicking with git's complaint on
/// failure: for test setup, where a failure means the test cannot run.
fn must(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.ok,
        "git {args:?} failed in {}: {}",
        dir.display(),
        out.stderr
    );
    out.stdout
}

/// The commit `reference` (branch, tag or sha) names in the bare repo, if any.
pub(crate) fn resolve(bare: &Path, reference: &str) -> Option<String> {
    if reference.starts_with('-') {
        return None;
    }
    let out = run(
        bare,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{reference}^{{commit}}"),
        ],
    );
    out.ok.then_some(out.stdout)
}

/// The sha of `refs/heads/<branch>`, if the branch exists.
pub(crate) fn branch_sha(bare: &Path, branch: &str) -> Option<String> {
    resolve(bare, &format!("refs/heads/{branch}"))
}

/// The subject line and committer date (strict ISO 8601) of `sha`.
pub(crate) fn commit_info(bare: &Path, sha: &str) -> Option<(String, String)> {
    let out = run(bare, &["show", "-s", "--format=%s%x00%cI", sha]);
    let (subject, date) = out.stdout.split_once('\0')?;
    out.ok.then(|| (subject.to_string(), date.to_string()))
}

/// Creates a bare repository at `<parent>/<name>.git` whose `main` holds one commit (a
/// `README.md`), and returns its path.
///
/// # Panics
/// When git fails: the test cannot run without its repository.
pub fn init_bare_repo(parent: &Path, name: &str) -> PathBuf {
    let bare = parent.join(format!("{name}.git"));
    let bare_arg = bare.to_string_lossy().into_owned();
    must(
        parent,
        &[
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            &bare_arg,
        ],
    );
    let seed = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    must(seed.path(), &["clone", "--quiet", &bare_arg, "work"]);
    let work = seed.path().join("work");
    std::fs::write(work.join("README.md"), format!("# {name}\n"))
        .unwrap_or_else(|e| panic!("cannot write README.md in {}: {e}", work.display()));
    must(&work, &["add", "README.md"]);
    must(&work, &["commit", "--quiet", "-m", "initial commit"]);
    must(
        &work,
        &["push", "--quiet", "origin", "HEAD:refs/heads/main"],
    );
    bare
}

/// Commits `content` to `file` on `branch` of the bare repo (creating the branch from `main`
/// when it does not exist), pushes it, and returns the new commit's sha.
///
/// # Panics
/// When git fails.
pub fn commit_to_branch(bare: &Path, branch: &str, file: &str, content: &str) -> String {
    let seed = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let bare_arg = bare.to_string_lossy().into_owned();
    must(seed.path(), &["clone", "--quiet", &bare_arg, "work"]);
    let work = seed.path().join("work");
    let start = if branch_sha(bare, branch).is_some() {
        format!("origin/{branch}")
    } else {
        "origin/main".to_string()
    };
    must(&work, &["checkout", "--quiet", "-B", branch, &start]);
    let path = work.join(file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    std::fs::write(&path, content)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    must(&work, &["add", "--", file]);
    must(
        &work,
        &["commit", "--quiet", "-m", &format!("change {file}")],
    );
    must(
        &work,
        &[
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:refs/heads/{branch}"),
        ],
    );
    must(&work, &["rev-parse", "HEAD"])
}

/// Whether `ancestor` is reachable from `descendant` in the bare repo.
pub fn is_ancestor(bare: &Path, ancestor: &str, descendant: &str) -> bool {
    run(bare, &["merge-base", "--is-ancestor", ancestor, descendant]).ok
}

/// Why a real merge did not happen.
pub(crate) enum MergeFailure {
    /// The branches conflict; git's stdout and stderr, for the 409 body.
    Conflict {
        /// git's stdout (it names the conflicting files there).
        stdout: String,
        /// git's stderr.
        stderr: String,
    },
    /// A fast-forward-only merge whose base is not an ancestor of the head.
    Diverged,
    /// Anything else went wrong (clone, push, …).
    Other(String),
}

/// Moves `base` to `head` if `base` is an ancestor of it (Gitea's `fast-forward-only`);
/// returns the new base sha.
pub(crate) fn fast_forward(bare: &Path, base: &str, head: &str) -> Result<String, MergeFailure> {
    let head_sha = branch_sha(bare, head)
        .ok_or_else(|| MergeFailure::Other(format!("branch {head} does not exist")))?;
    let base_sha = branch_sha(bare, base)
        .ok_or_else(|| MergeFailure::Other(format!("branch {base} does not exist")))?;
    if !run(bare, &["merge-base", "--is-ancestor", &base_sha, &head_sha]).ok {
        return Err(MergeFailure::Diverged);
    }
    let out = run(
        bare,
        &[
            "update-ref",
            &format!("refs/heads/{base}"),
            &head_sha,
            &base_sha,
        ],
    );
    if !out.ok {
        return Err(MergeFailure::Other(format!("update-ref: {}", out.stderr)));
    }
    Ok(head_sha)
}

/// Merges `head` into `base` with `--no-ff` in a scratch clone and pushes the result to the
/// bare repo, as Gitea does in its temporary repository; returns the merge commit's sha.
pub(crate) fn merge(
    bare: &Path,
    base: &str,
    head: &str,
    message: &str,
) -> Result<String, MergeFailure> {
    let scratch = tempfile::tempdir().map_err(|e| MergeFailure::Other(e.to_string()))?;
    let bare_arg = bare.to_string_lossy().into_owned();
    let step = |dir: &Path, args: &[&str]| {
        let out = run(dir, args);
        if out.ok {
            Ok(out)
        } else {
            Err(MergeFailure::Other(format!("git {args:?}: {}", out.stderr)))
        }
    };
    step(
        scratch.path(),
        &["clone", "--quiet", "--branch", base, &bare_arg, "work"],
    )?;
    let work = scratch.path().join("work");
    let merged = run(
        &work,
        &["merge", "--no-ff", "-m", message, &format!("origin/{head}")],
    );
    if !merged.ok {
        return Err(MergeFailure::Conflict {
            stdout: merged.stdout,
            stderr: merged.stderr,
        });
    }
    step(
        &work,
        &[
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:refs/heads/{base}"),
        ],
    )?;
    Ok(step(&work, &["rev-parse", "HEAD"])?.stdout)
}
