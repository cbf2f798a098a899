//! Names the workspace derives or accepts: clone directory names, artifact paths, branches,
//! shas and origins. Everything here is checked before it reaches git or the file system, so
//! no input can traverse out of a directory or pass for an option. (A task's branch is named
//! by the domain, `orchestrator_actors::domain::branch`; the workspace checks whatever it is given.)

use std::path::Path;

use orchestrator_actors::WorkItemId;

use super::command::GitError;

/// Longest accepted repo name or branch name.
const MAX_NAME_BYTES: usize = 200;

fn invalid(what: &'static str, value: &str, reason: &str) -> GitError {
    GitError::Invalid {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// The cache directory name of `repo`: `acme/app` → `acme__app`.
///
/// Segments are ASCII letters, digits, `.`, `-` and single inner `_`s, start with a letter,
/// digit or `.` and are never `.` or `..`. Forbidding `__` and edge `_` keeps the mapping
/// one-to-one, so two repositories can never share a clone.
pub(crate) fn clone_dir_name(repo: &str) -> Result<String, GitError> {
    let fail = |reason: &str| Err(invalid("repo name", repo, reason));
    if repo.is_empty() {
        return fail("it is empty");
    }
    if repo.len() > MAX_NAME_BYTES {
        return fail("it is longer than 200 bytes");
    }
    for segment in repo.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return fail("each '/'-separated part must be a non-empty name other than '.' or '..'");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return fail("only ASCII letters, digits, '.', '-', '_' and '/' are allowed");
        }
        let first = segment.as_bytes()[0];
        if !(first.is_ascii_alphanumeric() || first == b'.') {
            return fail("each part must start with a letter, a digit or '.'");
        }
        if segment.contains("__") || segment.ends_with('_') {
            return fail("'__' and a trailing '_' are reserved for the clone directory name");
        }
    }
    Ok(repo.replace('/', "__"))
}

/// `rel` as a clean relative path `a/b/c` (`.` parts and repeated `/` dropped); absolute
/// paths and `..` are refused so a read can never leave the worktree or the tree of `main`.
pub(crate) fn artifact_path(rel: &str) -> Result<String, GitError> {
    let fail = |reason: &str| Err(invalid("artifact path", rel, reason));
    if rel.starts_with('/') {
        return fail("it must be relative");
    }
    if rel.contains('\0') {
        return fail("it contains a NUL byte");
    }
    let mut parts = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => return fail("it must not contain '..'"),
            _ => parts.push(part),
        }
    }
    if parts.is_empty() {
        return fail("it names no file");
    }
    Ok(parts.join("/"))
}

/// A branch a task may work on, push and merge: a valid git branch name that can never be
/// read as an option, a full ref or `main` itself.
pub(crate) fn task_branch(branch: &str) -> Result<(), GitError> {
    let fail = |reason: &str| Err(invalid("branch", branch, reason));
    if branch == "main" {
        return Err(GitError::ProtectedBranch {
            branch: branch.to_string(),
        });
    }
    if branch.is_empty() || branch.len() > MAX_NAME_BYTES {
        return fail("it must be 1 to 200 bytes long");
    }
    if !branch
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
    {
        return fail("only ASCII letters, digits, '.', '-', '_' and '/' are allowed");
    }
    if branch.starts_with('-') {
        return fail("it must not start with '-'");
    }
    if branch == "HEAD" || branch.starts_with("refs/") {
        return fail("it must be a plain branch name");
    }
    for part in branch.split('/') {
        if part.is_empty() || part.starts_with('.') || part.ends_with(".lock") {
            return fail(
                "each '/'-separated part must be non-empty, not start with '.' and not end with '.lock'",
            );
        }
    }
    if branch.contains("..") || branch.ends_with('.') {
        return fail("it must not contain '..' or end with '.'");
    }
    Ok(())
}

/// A work-item id, by the same rules as [`WorkItemId`] (it becomes a directory name).
pub(crate) fn work_item_id(id: &str) -> Result<(), GitError> {
    WorkItemId::parse(id)
        .map(|_| ())
        .map_err(|e| invalid("work item id", id, e.reason))
}

/// A commit id: 4 to 64 hex digits, so it can never be read as an option or a ref expression.
pub(crate) fn sha(sha: &str) -> Result<(), GitError> {
    if (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(invalid("commit sha", sha, "expected 4 to 64 hex digits"))
    }
}

/// `origin` as git should be given it: URLs and `host:path` remotes unchanged, a local path
/// made absolute (the clone runs in the cache directory, not the service's working one).
pub(crate) fn origin(origin: &str) -> Result<String, GitError> {
    let fail = |reason: &str| Err(invalid("origin", origin, reason));
    if origin.trim().is_empty() {
        return fail("it is empty");
    }
    if origin.starts_with('-') {
        return fail("it must not start with '-'");
    }
    if origin.chars().any(char::is_control) {
        return fail("it contains a control character");
    }
    let is_url = origin.contains("://");
    // scp-like `user@host:path`: a ':' before any '/'.
    let is_scp = origin
        .find(':')
        .is_some_and(|colon| !origin[..colon].contains('/'));
    if is_url || is_scp {
        return Ok(origin.to_string());
    }
    match std::path::absolute(Path::new(origin)) {
        Ok(path) => match path.to_str() {
            Some(path) => Ok(path.to_string()),
            None => fail("it is not valid UTF-8"),
        },
        Err(e) => fail(&format!("cannot make it absolute: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_branch_the_domain_names_is_one_the_workspace_accepts() {
        for (id, title, is_bug) in [
            ("T-1", "Add login page", false),
            ("BUG-7", "  Fix: crash!! on `save` (v2.0)  ", true),
            ("T-2", "Ünïcödé title ☃", false),
            ("T-3", "日本語のタイトル", false),
            ("T-3", "!!! ---", true),
            (
                "x_1.2",
                "This is a very long title that keeps going on and on",
                false,
            ),
            ("9-lives", "..lock.", false),
        ] {
            let id = WorkItemId::parse(id).unwrap();
            let name = orchestrator_actors::domain::branch::branch_name(&id, title, is_bug);
            task_branch(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn repo_names_map_to_flat_dirs_and_traversal_is_refused() {
        assert_eq!(clone_dir_name("acme/app").unwrap(), "acme__app");
        assert_eq!(clone_dir_name("org/.github").unwrap(), "org__.github");
        assert_eq!(clone_dir_name("a/b_c/d.e-f").unwrap(), "a__b_c__d.e-f");
        for bad in [
            "",
            "..",
            "../x",
            "acme/../../etc",
            "/abs",
            "acme/",
            "a//b",
            "-x",
            "a b",
            "a__b",
            "a_/b",
            "a\\b",
        ] {
            let err = clone_dir_name(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid repo name {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn artifact_paths_are_normalised_and_traversal_is_refused() {
        assert_eq!(
            artifact_path("./docs//work-items/T-1.md").unwrap(),
            "docs/work-items/T-1.md"
        );
        for bad in [
            "",
            ".",
            "/etc/passwd",
            "../x",
            "docs/../../x",
            "a/..",
            "a\0b",
        ] {
            let err = artifact_path(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid artifact path {bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn branches_shas_and_origins_are_checked() {
        task_branch("feature/T-1-x").unwrap();
        assert!(matches!(
            task_branch("main"),
            Err(GitError::ProtectedBranch { .. })
        ));
        for bad in [
            "",
            "-f",
            "--force",
            "refs/heads/x",
            "HEAD",
            "a..b",
            "a/.b",
            "a.lock",
            "a b",
            "a/",
            "a:b",
        ] {
            assert!(task_branch(bad).is_err(), "{bad:?}");
        }
        sha("0123abcd").unwrap();
        assert!(sha("--all").is_err());
        assert!(sha("HEAD~1").is_err());
        assert_eq!(
            origin("https://example.invalid/a.git").unwrap(),
            "https://example.invalid/a.git"
        );
        assert_eq!(
            origin("git@host:acme/app.git").unwrap(),
            "git@host:acme/app.git"
        );
        assert!(Path::new(&origin("rel/origin.git").unwrap()).is_absolute());
        assert!(origin("--upload-pack=x").is_err());
        work_item_id("T-1").unwrap();
        assert!(
            work_item_id("../x")
                .unwrap_err()
                .to_string()
                .contains("\"../x\"")
        );
    }
}
