//! The local forge's CI: a project's test command run in a task worktree at its HEAD. It keeps
//! a code failure (the command ran and exited non-zero) apart from infrastructure trouble (it
//! could not be parsed, started or finished in time), which must never roll a task back.

use orchestrator_actors::domain::gates::CiOutcome;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;

use super::Workspace;
use super::command::tail_utf8;

/// How much output a red run reports: the end is where test runners summarise.
pub(crate) const OUTPUT_TAIL_BYTES: usize = 4096;

/// Output kept while the command runs; older output is dropped so a chatty suite cannot
/// exhaust memory.
const KEEP_BYTES: usize = 64 * 1024;

/// After the command ends, how long to wait for output still in the pipe.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

impl Workspace {
    /// Runs `test_cmd` (split like a POSIX shell would split words, but never run by one) in
    /// `worktree` with stdin closed, killing it and everything it started after `timeout`.
    pub async fn run_test_cmd(
        &self,
        worktree: &Path,
        test_cmd: &str,
        timeout: Duration,
    ) -> CiOutcome {
        match run(worktree, test_cmd, timeout).await {
            Ok(run) => run,
            Err(message) => CiOutcome::ToolError { message },
        }
    }
}

async fn run(worktree: &Path, test_cmd: &str, timeout: Duration) -> Result<CiOutcome, String> {
    let argv = shell_words::split(test_cmd)
        .map_err(|e| format!("cannot parse test command {test_cmd:?}: {e}"))?;
    let Some((program, args)) = argv.split_first() else {
        return Err(format!("test command {test_cmd:?} is empty"));
    };
    if !tokio::fs::metadata(worktree)
        .await
        .is_ok_and(|m| m.is_dir())
    {
        return Err(format!(
            "cannot run `{test_cmd}`: worktree {} is not a directory",
            worktree.display()
        ));
    }
    // One pipe for both streams keeps stdout and stderr interleaved as the command wrote them.
    let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot run `{test_cmd}`: {e}"))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| format!("cannot run `{test_cmd}`: {e}"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(worktree)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // Our copies of the pipe's write end live in `cmd`; the read end sees EOF only once they
    // are closed.
    drop(cmd);
    let mut child = spawned.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("cannot run `{test_cmd}`: program {program:?} not found")
        }
        _ => format!("cannot run `{test_cmd}`: {e}"),
    })?;
    let group = ProcessGroup(child.id());
    let mut output = pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| format!("cannot read the output of `{test_cmd}`: {e}"))?;

    let started = Instant::now();
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 8192];
    let mut eof = false;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            read = output.read(&mut chunk), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => keep(&mut kept, &chunk[..n]),
            },
            status = child.wait() => break Some(status),
            _ = &mut deadline => break None,
        }
    };
    // Whatever the command left running goes with it: it must neither outlive the run nor
    // hold the output pipe open.
    drop(group);
    if status.is_none() {
        let _ = child.wait().await;
    }
    let _ = tokio::time::timeout(DRAIN_GRACE, async {
        while !eof {
            match output.read(&mut chunk).await {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => keep(&mut kept, &chunk[..n]),
            }
        }
    })
    .await;

    let tail = tail_utf8(&kept, OUTPUT_TAIL_BYTES);
    match status {
        None => Err(format!(
            "`{test_cmd}` did not finish within {timeout:?} and was killed; output tail:\n{}",
            tail_utf8(tail.as_bytes(), 1024)
        )),
        Some(Err(e)) => Err(format!("cannot wait for `{test_cmd}`: {e}")),
        Some(Ok(status)) if status.success() => {
            let last = tail.lines().rev().map(str::trim).find(|l| !l.is_empty());
            let mut summary = format!(
                "`{test_cmd}` passed in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            if let Some(last) = last {
                summary.push_str(": ");
                summary.extend(last.chars().take(200));
            }
            Ok(CiOutcome::Green { summary })
        }
        Some(Ok(_)) => Ok(CiOutcome::Red { output_tail: tail }),
    }
}

/// Appends `bytes`, dropping the oldest output beyond [`KEEP_BYTES`].
fn keep(kept: &mut Vec<u8>, bytes: &[u8]) {
    kept.extend_from_slice(bytes);
    if kept.len() > 2 * KEEP_BYTES {
        kept.drain(..kept.len() - KEEP_BYTES);
    }
}

/// The process group a test command was started in (its id is the command's pid). Dropping it
/// kills the whole group, also when the caller abandons the run half-way.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    /// SIGKILL to every process still in the group; an empty group is fine.
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: kill(2) has no memory effects; a negative pid addresses the group the
            // command was spawned into (process_group(0)), which holds only its processes.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
    }
}
