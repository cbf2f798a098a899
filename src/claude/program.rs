//! Whether a program can be started at all: found (a path, or a name on `PATH`), a file,
//! executable — checked before every agent launch so that a missing agent program holds the
//! queue instead of failing runs — and what `<program> --version` says, for the preflight
//! and `orchestrator doctor`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The file `program` names: itself when it has a `/`, else the first executable of that
/// name on `PATH`. An error says why it cannot be started, naming the file.
pub fn resolve(program: &Path) -> Result<PathBuf, String> {
    let shown = program.display();
    let runnable = |path: &Path| -> Result<(), String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a file", path.display()));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("{} is not executable", path.display()));
        }
        Ok(())
    };
    if program.components().count() > 1 || program.is_absolute() {
        return runnable(program).map(|()| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| runnable(candidate).is_ok())
        .ok_or_else(|| format!("agent program {shown} (ORCH_CLAUDE_BIN) is not found on PATH"))
}

/// Why the agent program cannot start, naming the setting that chose it.
pub fn agent_unavailable(why: &str) -> String {
    format!("the agent program cannot start (ORCH_CLAUDE_BIN): {why}")
}

/// What `<program> --version` prints (its first line), or why it could not say within
/// `limit`.
pub async fn version(program: &Path, limit: Duration) -> Result<String, String> {
    let file = resolve(program)?;
    let run = Command::new(&file)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, run)
        .await
        .map_err(|_| {
            format!(
                "{} --version did not answer within {} s",
                file.display(),
                limit.as_secs()
            )
        })?
        .map_err(|e| format!("cannot run {} --version: {e}", file.display()))?;
    let first = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_string)
    };
    if !output.status.success() {
        return Err(format!(
            "{} --version failed ({}): {}",
            file.display(),
            output.status,
            first(&output.stderr).unwrap_or_default()
        ));
    }
    first(&output.stdout).ok_or_else(|| format!("{} --version printed nothing", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_unrunnable_program_is_named() {
        let missing = resolve(Path::new("/nonexistent/claude")).unwrap_err();
        assert!(missing.contains("/nonexistent/claude"), "{missing}");
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("claude");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        assert!(resolve(&plain).unwrap_err().contains("not executable"));
        assert!(resolve(dir.path()).unwrap_err().contains("not a file"));
        let nowhere = resolve(Path::new("no-such-agent-program-xyz")).unwrap_err();
        assert!(nowhere.contains("not found on PATH"), "{nowhere}");
    }

    #[tokio::test]
    async fn the_version_is_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("claude");
        std::fs::write(&fake, "#!/bin/sh\necho\necho '2.1.197 (Claude Code)'\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            version(&fake, Duration::from_secs(10)).await.unwrap(),
            "2.1.197 (Claude Code)"
        );
        assert_eq!(resolve(Path::new("sh")).unwrap().file_name().unwrap(), "sh");
    }
}
