//! `orchestrator agent-shim` — the small supervisor every agent runs under (the pattern of
//! containerd-shim and conmon). The service starts it in a session of its own; it starts the
//! agent in a process group of its own, waits for it, stops whatever the agent left running
//! in its group, and writes the agent's exit status beside the output already in
//! `<data>/runs/`. It outlives the service: a service killed, or stopped to be upgraded,
//! leaves its agents working, and the next boot finds each run's files and adopts it.
//!
//! A run's files, all named after its log `<run>.log`:
//! - `<run>.log` — our lines, the agent's stderr, then a copy of its stdout;
//! - `<run>.out` — the agent's stdout (the CLI's result object);
//! - `<run>.pid` — the agent's pid, start time and start instant, written once it runs;
//! - `<run>.exit` — how it ended, written last: its presence means the run is over;
//! - `<run>.abandoned` — written by a service that killed the agent on its way out
//!   (`ORCH_SHUTDOWN_AGENTS=stop`): the run is not to be adopted.
//!
//! Both the shim and the agent carry the run's marker in their environment
//! ([`MARK_HOME`], [`MARK_RUN`], [`MARK_WORKTREE`]), and both hold the worktree's lock on an
//! inherited descriptor, so a later boot finds every process of a run in `/proc` and no other
//! agent can start in that worktree while any of them lives.

use std::io::{Read, Seek, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::os::procs;

/// Environment marker: the service instance's runs directory (which instance started it).
pub const MARK_HOME: &str = "ORCH_AGENT_HOME";
/// Environment marker: the run's id.
pub const MARK_RUN: &str = "ORCH_AGENT_RUN";
/// Environment marker: the worktree the run works in.
pub const MARK_WORKTREE: &str = "ORCH_AGENT_WORKTREE";
/// Environment marker: set on the shim only, to tell it from its agent.
pub const MARK_SHIM: &str = "ORCH_AGENT_SHIM";
/// The prefix all markers share.
pub const MARK_PREFIX: &str = "ORCH_AGENT_";

/// The descriptor the worktree's lock is handed on as.
pub const LOCK_FD: i32 = 3;

/// Most of the agent's stdout copied into its log.
const STDOUT_COPY_MAX: u64 = 8 << 20;

/// `agent-shim` arguments. Not for people: the service starts it.
#[derive(clap::Args, Debug)]
pub struct ShimArgs {
    /// The run's log; the run's other files sit beside it.
    #[arg(long)]
    pub log: PathBuf,
    /// Between SIGTERM and SIGKILL when the agent's leftovers are stopped.
    #[arg(long, default_value_t = 20_000)]
    pub grace_ms: u64,
    /// The agent program and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// The files of one run, named after its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFiles {
    /// `<run>.log`.
    pub log: PathBuf,
    /// `<run>.out`.
    pub out: PathBuf,
    /// `<run>.pid`.
    pub pid: PathBuf,
    /// `<run>.exit`.
    pub exit: PathBuf,
    /// `<run>.abandoned`.
    pub abandoned: PathBuf,
}

impl RunFiles {
    /// The files of the run logging to `log`.
    pub fn of(log: &Path) -> Self {
        Self {
            log: log.to_path_buf(),
            out: log.with_extension("out"),
            pid: log.with_extension("pid"),
            exit: log.with_extension("exit"),
            abandoned: log.with_extension("abandoned"),
        }
    }

    /// Removes what an earlier launch of the same run left (never the log).
    pub fn clear(&self) {
        for path in [&self.out, &self.pid, &self.exit, &self.abandoned] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The agent's start, once the shim recorded it.
    pub fn started(&self) -> Option<Started> {
        read_json(&self.pid)
    }

    /// The agent's end, once the shim recorded it.
    pub fn ended(&self) -> Option<Ended> {
        read_json(&self.exit)
    }
}

/// `<run>.pid`: the agent as it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// Its pid, which is also its process group.
    pub pid: u32,
    /// Its start time in clock ticks after boot (with the pid, its identity).
    pub start_ticks: u64,
    /// When it started, in milliseconds since the Unix epoch (its budgets count from it).
    pub started_unix_ms: u64,
}

/// `<run>.exit`: how the agent ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// Its exit code, or minus the signal that ended it; `None` when it never started.
    pub exit_code: Option<i32>,
    /// Why it never started, when it did not.
    pub error: Option<String>,
    /// When it ended, in milliseconds since the Unix epoch.
    pub ended_unix_ms: u64,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes `value` to `path` whole or not at all (a sibling temp file, then a rename).
fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The shim's main: never panics, always leaves `<run>.exit` behind.
pub fn main(args: &ShimArgs) -> ExitCode {
    // The service's signals are not ours: a shutdown must not take the agent's supervisor
    // with it. Only the agent's own group is ever signalled to stop a run.
    for signal in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE] {
        // SAFETY: setting a disposition to SIG_IGN has no memory effects.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
    let files = RunFiles::of(&args.log);
    let ended = supervise(args, &files);
    if let Err(e) = write_json(&files.exit, &ended) {
        note(&files, &format!("cannot record the agent's exit: {e}"));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Appends one line of ours to the run's log.
fn note(files: &RunFiles, line: &str) {
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
    {
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
        let _ = writeln!(log, "=== {stamp} {line}");
    }
}

/// Starts the agent, waits for it and cleans up after it.
fn supervise(args: &ShimArgs, files: &RunFiles) -> Ended {
    let not_started = |error: String| {
        note(files, &error);
        Ended {
            exit_code: None,
            error: Some(error),
            ended_unix_ms: unix_ms(SystemTime::now()),
        }
    };
    let Some((program, rest)) = args.command.split_first() else {
        return not_started("the shim was given no agent program".into());
    };
    let open = |path: &Path, append: bool| {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
    };
    let (out, err) = match (open(&files.out, false), open(&files.log, true)) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(e), _) | (_, Err(e)) => {
            return not_started(format!("cannot open the run's files: {e}"));
        }
    };
    let mut command = std::process::Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env_remove(MARK_SHIM)
        // Its own group, so a timeout can signal the agent and everything it spawned at once.
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            // The shim ignores these; the agent must not inherit that.
            for signal in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGPIPE] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return not_started(format!("cannot start {program}: {e}")),
    };
    let pid = child.id();
    let started = Started {
        pid,
        start_ticks: procs::start_ticks(pid),
        started_unix_ms: unix_ms(SystemTime::now()),
    };
    if let Err(e) = write_json(&files.pid, &started) {
        note(files, &format!("cannot record the agent's pid {pid}: {e}"));
    }
    let status = child.wait();
    let exit_code = status.ok().map(|s| {
        s.code()
            .or_else(|| s.signal().map(|signal| -signal))
            .unwrap_or(-1)
    });
    let pgid = libc::pid_t::try_from(pid).unwrap_or(0);
    if pgid > 0 && group_alive(pgid) {
        // Whatever it left running would keep using the worktree behind our back.
        note(
            files,
            "agent exited but left processes in its group; stopping them",
        );
        stop_group(pgid, Duration::from_millis(args.grace_ms));
    }
    copy_stdout(files);
    Ended {
        exit_code,
        error: None,
        ended_unix_ms: unix_ms(SystemTime::now()),
    }
}

/// Appends (the end of) the agent's stdout to its log, so the log tells the whole story.
fn copy_stdout(files: &RunFiles) {
    let copy = || -> std::io::Result<()> {
        let mut out = std::fs::File::open(&files.out)?;
        let len = out.metadata()?.len();
        if len == 0 {
            return Ok(());
        }
        out.seek(std::io::SeekFrom::Start(
            len.saturating_sub(STDOUT_COPY_MAX),
        ))?;
        let mut bytes = Vec::new();
        out.read_to_end(&mut bytes)?;
        let mut log = std::fs::OpenOptions::new().append(true).open(&files.log)?;
        log.write_all(&bytes)?;
        if !bytes.ends_with(b"\n") {
            log.write_all(b"\n")?;
        }
        Ok(())
    };
    if let Err(e) = copy() {
        note(
            files,
            &format!("cannot copy the agent's stdout into the log: {e}"),
        );
    }
}

/// Whether any process of the group is still running (zombies do not count).
pub fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    if unsafe { libc::kill(-pgid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    }
    procs::live_member_since(i64::from(pgid), 0).unwrap_or(true)
}

/// Sends `signal` to every process of the group.
pub fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; a negative pid addresses the group.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// SIGTERM to the group, `grace` to go, then SIGKILL; waits (bounded) until it is gone.
fn stop_group(pgid: libc::pid_t, grace: Duration) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
    signal_group(pgid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_alive(pgid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(25));
    }
}
