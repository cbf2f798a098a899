//! A sample project to point the local forge at: a bare origin whose `main` holds a tiny shell
//! app and its test, runnable on a fresh Debian machine with only git, sh and coreutils. Used by
//! `demo`-style runs and by the workspace tests.

use std::path::Path;

use super::command::{GitError, git, git_output, path_arg};

/// The sample's test command, as a project would configure it.
pub const SAMPLE_TEST_CMD: &str = "sh test.sh";

/// The files on the sample's `main`: path and content (kept as real files beside this module
/// so they can be read and run as they are).
const FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("sample/README.md")),
    ("app.sh", include_str!("sample/app.sh")),
    ("test.sh", include_str!("sample/test.sh")),
    ("docs/work-items/.gitkeep", ""),
];

/// Creates a bare repository at `path` whose `main` holds the sample app. An existing bare
/// repository at `path` is left alone, so this is safe to call on every start.
pub async fn create_sample_origin(path: &Path) -> Result<(), GitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GitError::Io { path, source }
    };
    if tokio::fs::try_exists(path).await.map_err(io(path))? {
        let bare = git_output(path, &["rev-parse", "--is-bare-repository"]).await?;
        if bare.success() && bare.text() == "true" {
            return Ok(());
        }
        return Err(GitError::State {
            path: path.to_path_buf(),
            problem: "exists and is not a bare git repository".to_string(),
        });
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(GitError::Invalid {
            what: "sample origin path",
            value: path.display().to_string(),
            reason: "it has no parent directory or no name".to_string(),
        });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = name.to_string_lossy();
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(io(parent))?;
    // Build beside the target and rename, so an interrupted run never leaves a bare repository
    // without `main` that a later call would accept as done.
    let seed = parent.join(format!(".{name}.seed"));
    let partial = parent.join(format!(".{name}.partial"));
    for leftover in [&seed, &partial] {
        match tokio::fs::remove_dir_all(leftover).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(leftover)(e)),
            _ => {}
        }
    }
    git(parent, &["init", "--quiet", path_arg(&seed)?]).await?;
    for (rel, content) in FILES {
        let file = seed.join(rel);
        if let Some(dir) = file.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
        }
        tokio::fs::write(&file, content).await.map_err(io(&file))?;
    }
    git(&seed, &["add", "--all"]).await?;
    git(&seed, &["commit", "--quiet", "-m", "chore: sample app"]).await?;
    git(
        parent,
        &[
            "clone",
            "--quiet",
            "--bare",
            "--no-local",
            "--",
            path_arg(&seed)?,
            path_arg(&partial)?,
        ],
    )
    .await?;
    // The seed is deleted below; the origin must not point back at it.
    git(&partial, &["remote", "remove", "origin"]).await?;
    tokio::fs::rename(&partial, path).await.map_err(io(path))?;
    tokio::fs::remove_dir_all(&seed).await.map_err(io(&seed))?;
    Ok(())
}
