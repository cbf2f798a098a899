//! Runs one agent process: argv only (never a shell), in its own process group, stdout and
//! stderr appended to a per-run log, and a hard timeout that takes down the whole group.
//! Whatever the agent does — garbage output, a hang, orphaned children — the caller gets an
//! [`AgentOutcome`], never a panic.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::fs::File;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use orchestrator_actors::ports::ProcessId;
use orchestrator_actors::ports::workbench::SpawnNotice;

use super::result::{CliResult, parse_stdout};

/// How much of the end of the run's log an outcome carries, for error messages and the API.
const LOG_TAIL_BYTES: u64 = 2048;

/// Stdout kept in memory for the result; a runaway agent cannot exhaust our memory, and
/// the result object is at the end, which is what is kept.
const STDOUT_CAPTURE_MAX: usize = 8 << 20;

/// Bound on waiting for the pipes to close or a SIGKILLed group to vanish: a process that
/// escaped the group (e.g. `setsid`) must not hang the run.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the group is polled while it is being stopped.
const POLL: Duration = Duration::from_millis(25);

/// Everything needed to start one agent process.
#[derive(Clone, Debug)]
pub struct AgentCommand {
    /// The executable (the `claude` CLI, or this binary for `scripted-agent`).
    pub program: PathBuf,
    /// Its arguments, passed as they are: no shell ever sees them.
    pub args: Vec<String>,
    /// Working directory: the task's worktree.
    pub cwd: PathBuf,
    /// Variables added to the environment. The service's own `ORCH_*` variables are not
    /// inherited (they are its configuration, tokens included); everything else is.
    pub env: Vec<(String, String)>,
    /// The run's log; stdout and stderr are appended to it (parent directories are created).
    pub log_path: PathBuf,
    /// Wall-clock limit; past it the whole process group is stopped.
    pub timeout: Duration,
    /// How long the group has between SIGTERM and SIGKILL when it is stopped: enough for
    /// the CLI to finish writing its files and transcript (`ORCH_AGENT_TERM_GRACE_S`).
    pub term_grace: Duration,
}

/// What became of one agent process.
#[derive(Clone, Debug)]
pub struct AgentOutcome {
    /// The exit code, or minus the signal number when a signal ended it (`-9` after our
    /// SIGKILL); `None` when it never started or could not be waited for.
    pub exit_code: Option<i32>,
    /// The run hit [`AgentCommand::timeout`] and was stopped.
    pub timed_out: bool,
    /// The parsed result object, or why there is none (not started, timeout, bad stdout).
    pub result: Result<CliResult, String>,
    /// The last ~2 KB this run wrote to its log (this run only), lossy UTF-8.
    pub log_tail: String,
    /// Pid of the agent, which is also its process-group id; `None` if it never started.
    pub pid: Option<u32>,
}

impl AgentOutcome {
    /// The agent finished its job: exit 0, a result object, and no error reported in it.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && matches!(&self.result, Ok(result) if !result.is_error)
    }
}

/// Runs `cmd` to completion or timeout. See the module docs for the guarantees.
pub async fn run(cmd: AgentCommand) -> AgentOutcome {
    run_announced(cmd, None).await
}

/// [`run`], announcing the process (pid and start time) on `spawned` once it exists.
pub async fn run_announced(cmd: AgentCommand, spawned: Option<SpawnNotice>) -> AgentOutcome {
    let started = Instant::now();
    let (mut log, log_start) = match open_log(&cmd.log_path).await {
        Ok(opened) => opened,
        Err(e) => {
            return not_started(format!(
                "cannot open the agent log {}: {e}",
                cmd.log_path.display()
            ));
        }
    };
    let mut argv = vec![cmd.program.display().to_string()];
    argv.extend(cmd.args.iter().cloned());
    let env_names: Vec<&str> = cmd.env.iter().map(|(k, _)| k.as_str()).collect();
    // Names only: values may be credentials and logs get shared.
    log_line(
        &mut log,
        &format!(
            "=== {} agent start: argv {argv:?} cwd {:?} env {env_names:?} timeout {} s",
            now(),
            cmd.cwd,
            secs(cmd.timeout)
        ),
    )
    .await;

    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .current_dir(&cmd.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout can signal the agent and everything it spawned at once.
        .process_group(0)
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORCH_") {
            command.env_remove(key);
        }
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot start {}: {e}", cmd.program.display());
            log_line(&mut log, &format!("=== {} {reason}", now())).await;
            let mut outcome = not_started(reason);
            outcome.log_tail = tail(&cmd.log_path, log_start).await;
            return outcome;
        }
    };
    let pid = child.id();
    let pgid = pid.and_then(|p| libc::pid_t::try_from(p).ok());
    // Should this future be dropped mid-run (service shutdown), kill_on_drop only reaches the
    // leader; the guard takes the rest of the group with it.
    let mut guard = GroupGuard(pgid);
    if let (Some(spawned), Some(pid)) = (spawned, pid) {
        let _ = spawned.send(ProcessId {
            pid,
            start_ticks: super::process::start_ticks(pid),
        });
    }
    tracing::info!(pid, program = %cmd.program.display(), cwd = %cmd.cwd.display(), "agent started");

    let stdout = Arc::new(Mutex::new(Vec::new()));
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(spawn_pump(
            out,
            log.try_clone().await.ok(),
            Some(stdout.clone()),
        ));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(spawn_pump(err, log.try_clone().await.ok(), None));
    }

    let mut timed_out = false;
    let mut wait_error = None;
    let status = match tokio::time::timeout(cmd.timeout, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => {
            wait_error = Some(format!("cannot wait for the agent: {e}"));
            None
        }
        Err(_) => {
            timed_out = true;
            tracing::warn!(
                pid,
                timeout_s = secs(cmd.timeout),
                "agent timed out; stopping its process group"
            );
            None
        }
    };
    let status = match pgid {
        Some(pgid) if status.is_none() || group_alive(pgid) => {
            if status.is_some() {
                // Whatever it left running would keep using the worktree behind our back.
                log_line(
                    &mut log,
                    &format!(
                        "=== {} agent exited but left processes in its group; stopping them",
                        now()
                    ),
                )
                .await;
            }
            stop_group(&mut child, pgid, status, cmd.term_grace).await
        }
        _ => status,
    };
    if pgid.is_none_or(|pgid| !group_alive(pgid)) {
        // Gone: never signal that id again, it may be reused.
        guard.0 = None;
    }
    for pump in pumps {
        settle(pump).await;
    }

    let exit_code = status.map(exit_code);
    let result = if timed_out {
        Err(format!("timeout after {} s", secs(cmd.timeout)))
    } else if let Some(reason) = wait_error {
        Err(reason)
    } else {
        let captured = stdout.lock().map(|out| out.clone()).unwrap_or_default();
        parse_stdout(&String::from_utf8_lossy(&captured))
    };
    let verdict = match &result {
        Ok(r) if r.is_error => format!("error result ({})", r.error_message().unwrap_or_default()),
        Ok(_) => "result ok".to_string(),
        Err(reason) => format!("no result: {reason}"),
    };
    log_line(
        &mut log,
        &format!(
            "=== {} agent end: exit {exit_code:?}, timed out {timed_out}, {:.1} s, {verdict}",
            now(),
            started.elapsed().as_secs_f64()
        ),
    )
    .await;
    tracing::info!(pid, ?exit_code, timed_out, "agent finished");
    AgentOutcome {
        exit_code,
        timed_out,
        result,
        log_tail: tail(&cmd.log_path, log_start).await,
        pid,
    }
}

/// SIGTERM to the group, `grace` to go, then SIGKILL to whatever is left; reaps the leader
/// and waits (bounded) until the group is gone. Returns the leader's exit status.
async fn stop_group(
    child: &mut Child,
    pgid: libc::pid_t,
    mut leader: Option<ExitStatus>,
    grace: Duration,
) -> Option<ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    loop {
        if leader.is_none() {
            leader = child.try_wait().ok().flatten();
        }
        if leader.is_some() && !group_alive(pgid) {
            return leader;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    signal_group(pgid, libc::SIGKILL);
    if leader.is_none() {
        // In case the leader left the group; SIGKILL cannot be ignored, so this returns.
        let _ = child.start_kill();
        leader = child.wait().await.ok();
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    leader
}

/// Sends `signal` to every process of the group.
pub(crate) fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; a negative pid addresses the group we created.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether any process of the group is still running. Zombies do not count: orphans are
/// reaped by init whenever it gets to it, and a zombie holds neither pipes nor files.
pub(crate) fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    super::process::live_member_since(i64::from(pgid), 0).unwrap_or(true)
}

/// SIGKILLs the group if a run is abandoned before it finished (its future dropped).
struct GroupGuard(Option<libc::pid_t>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// Copies one pipe into the log (and, for stdout, into `capture`) until it closes. Each
/// pump has its own append-mode handle, so chunks land whole and in arrival order.
fn spawn_pump<R>(
    mut from: R,
    mut log: Option<File>,
    capture: Option<Arc<Mutex<Vec<u8>>>>,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // A failing log (disk full) must not stall the agent: keep draining its pipe.
            if let Some(file) = log.as_mut()
                && (file.write_all(&buf[..n]).await.is_err() || file.flush().await.is_err())
            {
                log = None;
            }
            if let Some(capture) = &capture
                && let Ok(mut out) = capture.lock()
            {
                out.extend_from_slice(&buf[..n]);
                if out.len() > 2 * STDOUT_CAPTURE_MAX {
                    let cut = out.len() - STDOUT_CAPTURE_MAX;
                    out.drain(..cut);
                }
            }
        }
    })
}

/// Waits for a pump to see its pipe close, bounded by [`SETTLE_TIMEOUT`].
async fn settle(mut pump: JoinHandle<()>) {
    if tokio::time::timeout(SETTLE_TIMEOUT, &mut pump)
        .await
        .is_err()
    {
        pump.abort();
    }
}

/// Opens the log for appending (creating its directory) and returns it with its length, so
/// the tail can be limited to this run.
async fn open_log(path: &Path) -> std::io::Result<(File, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let len = file.metadata().await?.len();
    Ok((file, len))
}

/// Appends one line of our own to the log; a failure to log never fails the run.
async fn log_line(log: &mut File, line: &str) {
    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
    let _ = log.flush().await;
}

/// The last [`LOG_TAIL_BYTES`] written since `from`, starting on a character boundary.
async fn tail(path: &Path, from: u64) -> String {
    let read = async {
        let mut file = File::open(path).await?;
        let len = file.metadata().await?.len();
        let start = from.max(len.saturating_sub(LOG_TAIL_BYTES));
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await?;
        Ok::<_, std::io::Error>(bytes)
    };
    let bytes = read.await.unwrap_or_default();
    let skip = bytes.iter().take_while(|b| (**b & 0xC0) == 0x80).count();
    String::from_utf8_lossy(&bytes[skip..]).into_owned()
}

fn not_started(reason: String) -> AgentOutcome {
    AgentOutcome {
        exit_code: None,
        timed_out: false,
        result: Err(reason),
        log_tail: String::new(),
        pid: None,
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| -signal))
        .unwrap_or(-1)
}

/// Seconds for messages: whole when whole, so `timeout after 600 s` reads naturally.
fn secs(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        duration.as_secs().to_string()
    } else {
        format!("{:.1}", duration.as_secs_f64())
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests;
