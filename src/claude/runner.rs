//! Runs one agent process: argv only (never a shell), under the [`shim`](super::shim) — our
//! small supervisor that outlives the service — in a process group of its own, stdout and
//! stderr going to the run's files in `<data>/runs/`, and a hard timeout, counted from the
//! agent's real start, that takes down the whole group. [`launch`] starts a run; [`attach`]
//! takes over one an earlier boot started (its shim still running or its exit recorded) and
//! carries on exactly as the first boot would have. Whatever the agent does — garbage
//! output, a hang, orphaned children — the caller gets an [`AgentOutcome`], never a panic.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use orchestrator_actors::ports::ProcessId;
use orchestrator_actors::ports::workbench::SpawnNotice;

use super::result::{CliResult, parse_stdout};
use super::shim::{LOCK_FD, MARK_SHIM, RunFiles, Started, group_alive, signal_group, unix_ms};
use crate::os::lockfile::LockFile;
use crate::os::procs;

/// How much of the end of the run's log an outcome carries, for error messages and the API.
const LOG_TAIL_BYTES: u64 = 2048;

/// Stdout read for the result; a runaway agent cannot exhaust our memory, and the result
/// object is at the end, which is what is kept.
const STDOUT_CAPTURE_MAX: u64 = 8 << 20;

/// Bound on waiting for a SIGKILLed group to end and its shim to say so: a process that
/// escaped the group (e.g. `setsid`) must not hang the run.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a run's files and processes are looked at while it is watched.
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
    /// This binary, which runs the agent under `agent-shim` (see [`super::shim`]).
    pub shim: PathBuf,
}

/// The binary the shim runs from: this very executable, even if its file was replaced by an
/// upgrade since it started.
pub fn this_binary() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        return proc_exe;
    }
    std::env::current_exe().unwrap_or(proc_exe)
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

/// What happens to a run's agent when the future watching it is dropped (the service stops
/// or the run's owner ends it) before the agent ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDrop {
    /// Kill its group, and record the run as abandoned so no later boot adopts it.
    Kill,
    /// Leave it running under its shim, for the next boot to adopt.
    Keep,
}

/// The agent's supervisor, as the watcher knows it.
enum Shim {
    /// Started by this boot: our child.
    Child(Child),
    /// Started by an earlier boot: found by its marker (`None` when it is gone).
    Adopted(Option<ProcessId>),
}

impl Shim {
    fn alive(&mut self) -> bool {
        match self {
            Shim::Child(child) => matches!(child.try_wait(), Ok(None)),
            Shim::Adopted(Some(process)) => is_process(process),
            Shim::Adopted(None) => false,
        }
    }

    /// The pid to kill when the agent never got to start.
    fn pid(&self) -> Option<libc::pid_t> {
        let pid = match self {
            Shim::Child(child) => child.id()?,
            Shim::Adopted(process) => process.as_ref()?.pid,
        };
        libc::pid_t::try_from(pid).ok()
    }
}

/// Whether `process` is alive and is the process that was recorded (same start time).
fn is_process(process: &ProcessId) -> bool {
    process.start_ticks != 0
        && procs::stat_of(process.pid)
            .is_some_and(|s| s.is_live() && s.start_ticks == process.start_ticks)
}

/// Kills the agent's group should the watch be dropped before the run ended (and
/// `OnDrop::Kill` was asked for), recording the run as abandoned first.
struct Guard {
    pgid: Option<libc::pid_t>,
    abandoned: PathBuf,
    on_drop: OnDrop,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let (Some(pgid), OnDrop::Kill) = (self.pgid, self.on_drop) {
            let _ = std::fs::write(&self.abandoned, b"killed by the service on its way out\n");
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// Runs `cmd` to completion or timeout under a fresh shim. See the module docs.
pub async fn run(cmd: AgentCommand) -> AgentOutcome {
    run_announced(cmd, None).await
}

/// [`run`], announcing the agent (pid and start time) on `spawned` once it runs.
pub async fn run_announced(cmd: AgentCommand, spawned: Option<SpawnNotice>) -> AgentOutcome {
    launch(&cmd, None, spawned, OnDrop::Kill).await
}

/// Starts `cmd` under a new shim (handing it `lock`, which it and the agent then hold for as
/// long as either lives) and watches it to its end.
pub async fn launch(
    cmd: &AgentCommand,
    lock: Option<LockFile>,
    spawned: Option<SpawnNotice>,
    on_drop: OnDrop,
) -> AgentOutcome {
    let (mut log, log_start) = match open_run_log(cmd).await {
        Ok(opened) => opened,
        Err(outcome) => return outcome,
    };
    let files = RunFiles::of(&cmd.log_path);
    files.clear();
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
    let shim_stderr = match log.try_clone().await {
        Ok(file) => Stdio::from(file.into_std().await),
        Err(_) => Stdio::null(),
    };
    let mut command = Command::new(&cmd.shim);
    command
        .arg("agent-shim")
        .arg("--log")
        .arg(&cmd.log_path)
        .arg("--grace-ms")
        .arg(cmd.term_grace.as_millis().to_string())
        .arg("--")
        .arg(&cmd.program)
        .args(&cmd.args)
        .current_dir(&cmd.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(shim_stderr)
        // It must outlive us: never killed with our future, never reached by our signals.
        .kill_on_drop(false);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORCH_") {
            command.env_remove(key);
        }
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    command.env(MARK_SHIM, "1");
    // SAFETY: setsid(2) is async-signal-safe; it makes the shim a session (and group) of its
    // own, out of reach of the signals a terminal or a service manager sends to ours.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    if let Some(lock) = &lock {
        lock.pass_to(&mut command, LOCK_FD);
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot start the agent's shim {}: {e}", cmd.shim.display());
            log_line(&mut log, &format!("=== {} {reason}", now())).await;
            let mut outcome = not_started(reason);
            outcome.log_tail = tail(&cmd.log_path, log_start).await;
            return outcome;
        }
    };
    // The shim holds the lock now; our copy goes.
    drop(lock);
    fault_point_after_spawn();
    watch(
        cmd,
        files,
        Shim::Child(child),
        spawned,
        log,
        log_start,
        on_drop,
    )
    .await
}

/// The run's log, opened for appending, and its length; a log that cannot be opened is a
/// run that never started.
async fn open_run_log(cmd: &AgentCommand) -> Result<(File, u64), AgentOutcome> {
    open_log(&cmd.log_path).await.map_err(|e| {
        not_started(format!(
            "cannot open the agent log {}: {e}",
            cmd.log_path.display()
        ))
    })
}

/// Debug builds only: with `ORCH_DEBUG_DIE_AFTER_SPAWN` set, the service kills itself right
/// after an agent's shim started, before anything about it is journaled (tests of adoption).
fn fault_point_after_spawn() {
    #[cfg(debug_assertions)]
    if std::env::var_os("ORCH_DEBUG_DIE_AFTER_SPAWN").is_some() {
        tracing::warn!("ORCH_DEBUG_DIE_AFTER_SPAWN: dying right after an agent's spawn");
        // SAFETY: kill(2) on ourselves; SIGKILL cannot be caught, nothing runs after it.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Takes over the run of `cmd` an earlier boot started: its shim (`shim`, when still
/// running) or the exit it recorded. Watches it to its end as [`launch`] would have.
pub async fn attach(
    cmd: &AgentCommand,
    shim: Option<ProcessId>,
    spawned: Option<SpawnNotice>,
    on_drop: OnDrop,
) -> AgentOutcome {
    let (mut log, _) = match open_run_log(cmd).await {
        Ok(opened) => opened,
        Err(outcome) => return outcome,
    };
    let files = RunFiles::of(&cmd.log_path);
    let what = if files.ended().is_some() {
        "its agent ended while no boot watched"
    } else {
        "its agent is still running"
    };
    log_line(
        &mut log,
        &format!("=== {} run adopted by a new boot: {what}", now()),
    )
    .await;
    // The log is the run's own: all of it is this run's.
    watch(cmd, files, Shim::Adopted(shim), spawned, log, 0, on_drop).await
}

/// Watches a run until the shim records the agent's end, enforcing the timeout from the
/// agent's real start; then reads its result.
async fn watch(
    cmd: &AgentCommand,
    files: RunFiles,
    mut shim: Shim,
    mut spawned: Option<SpawnNotice>,
    mut log: File,
    log_start: u64,
    on_drop: OnDrop,
) -> AgentOutcome {
    let watched_from = Instant::now();
    let mut guard = Guard {
        pgid: None,
        abandoned: files.abandoned.clone(),
        on_drop,
    };
    let mut agent: Option<Started> = None;
    let mut timed_out = false;
    let mut term_at: Option<Instant> = None;
    let mut killed_at: Option<Instant> = None;
    let mut vanished = None;
    let ended = loop {
        if agent.is_none()
            && let Some(started) = files.started()
        {
            agent = Some(started);
            guard.pgid = libc::pid_t::try_from(started.pid).ok();
            if let Some(spawned) = spawned.take() {
                let _ = spawned.send(ProcessId {
                    pid: started.pid,
                    start_ticks: started.start_ticks,
                });
            }
            tracing::info!(pid = started.pid, program = %cmd.program.display(), cwd = %cmd.cwd.display(), "agent running");
        }
        if let Some(ended) = files.ended() {
            break Some(ended);
        }
        let now = Instant::now();
        let over = match agent {
            Some(started) => {
                let since = Duration::from_millis(started.started_unix_ms);
                SystemTime::now() >= SystemTime::UNIX_EPOCH + since + cmd.timeout
            }
            None => watched_from.elapsed() >= cmd.timeout,
        };
        if over && !timed_out {
            timed_out = true;
            tracing::warn!(
                pid = agent.map(|a| a.pid),
                timeout_s = secs(cmd.timeout),
                "agent timed out; stopping its process group"
            );
            match guard.pgid {
                Some(pgid) => signal_group(pgid, libc::SIGTERM),
                // Never got to start its agent: the shim itself goes.
                None => {
                    if let Some(pid) = shim.pid() {
                        // SAFETY: kill(2); the shim is ours (our child or verified by marker).
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            term_at = Some(now);
        }
        if let Some(term) = term_at
            && killed_at.is_none()
            && now.duration_since(term) >= cmd.term_grace
        {
            if let Some(pgid) = guard.pgid {
                signal_group(pgid, libc::SIGKILL);
            }
            killed_at = Some(now);
        }
        if killed_at.is_some_and(|k| now.duration_since(k) >= SETTLE_TIMEOUT) {
            break None;
        }
        if !shim.alive() {
            // It writes the exit before it exits.
            if let Some(ended) = files.ended() {
                break Some(ended);
            }
            let agent_alive = agent.is_some_and(|a| {
                is_process(&ProcessId {
                    pid: a.pid,
                    start_ticks: a.start_ticks,
                })
            });
            if !agent_alive {
                vanished = Some(if agent.is_some() {
                    "the agent's shim ended without recording how the agent ended"
                } else {
                    "the agent's shim ended before it started the agent"
                });
                break None;
            }
        }
        tokio::time::sleep(POLL).await;
    };
    if let Shim::Child(child) = &mut shim {
        // It exits right after writing the exit; reap it.
        let _ = tokio::time::timeout(SETTLE_TIMEOUT, child.wait()).await;
    }
    if guard.pgid.is_none_or(|pgid| !group_alive(pgid)) {
        // Gone: never signal that id again, it may be reused.
        guard.pgid = None;
    }
    let exit_code = ended.as_ref().and_then(|e| e.exit_code);
    let result = if timed_out {
        Err(format!("timeout after {} s", secs(cmd.timeout)))
    } else if let Some(error) = ended.as_ref().and_then(|e| e.error.clone()) {
        Err(error)
    } else if let Some(why) = vanished {
        Err(why.to_string())
    } else {
        parse_stdout(&read_stdout(&files.out).await)
    };
    let verdict = match &result {
        Ok(r) if r.is_error => format!("error result ({})", r.error_message().unwrap_or_default()),
        Ok(_) => "result ok".to_string(),
        Err(reason) => format!("no result: {reason}"),
    };
    let took = agent.map_or(watched_from.elapsed().as_secs_f64(), |a| {
        let end = ended
            .as_ref()
            .map_or(unix_ms(SystemTime::now()), |e| e.ended_unix_ms);
        end.saturating_sub(a.started_unix_ms) as f64 / 1000.0
    });
    log_line(
        &mut log,
        &format!(
            "=== {} agent end: exit {exit_code:?}, timed out {timed_out}, {took:.1} s, {verdict}",
            now(),
        ),
    )
    .await;
    tracing::info!(
        pid = agent.map(|a| a.pid),
        ?exit_code,
        timed_out,
        "agent finished"
    );
    AgentOutcome {
        exit_code,
        timed_out,
        result,
        log_tail: tail(&cmd.log_path, log_start).await,
        pid: agent.map(|a| a.pid),
    }
}

/// The end of the agent's stdout (where the result object is), lossy UTF-8.
async fn read_stdout(path: &Path) -> String {
    let read = async {
        let mut file = File::open(path).await?;
        let len = file.metadata().await?.len();
        file.seek(std::io::SeekFrom::Start(
            len.saturating_sub(STDOUT_CAPTURE_MAX),
        ))
        .await?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await?;
        Ok::<_, std::io::Error>(bytes)
    };
    String::from_utf8_lossy(&read.await.unwrap_or_default()).into_owned()
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
