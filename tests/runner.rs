//! The runner against tiny `sh` scripts standing in for the agent (tests may use a shell;
//! the product never does): results, garbage, errors, timeouts with stubborn grandchildren,
//! leftovers, environment and working directory — each run under the real `agent-shim`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use orchestrator::claude::runner::{AgentCommand, run};
use orchestrator::claude::shim::group_alive;

/// The binary under test: it runs each agent under its `agent-shim`.
const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

const GOOD: &str = r#"{"type":"result","subtype":"success","is_error":false,"result":"done","num_turns":2,"modelUsage":{"m":{"inputTokens":3,"outputTokens":4,"costUSD":0.5}}}"#;

/// A command that runs `script` with `/bin/sh` in `dir`, logging to `dir/logs/run.log`, with
/// a 2 s grace between SIGTERM and SIGKILL.
fn agent(dir: &Path, script: &str, timeout: Duration) -> AgentCommand {
    let path = dir.join("agent.sh");
    std::fs::write(&path, script).unwrap();
    AgentCommand {
        program: PathBuf::from("/bin/sh"),
        args: vec![path.display().to_string()],
        cwd: dir.to_path_buf(),
        env: Vec::new(),
        log_path: dir.join("logs").join("nested").join("run.log"),
        timeout,
        term_grace: Duration::from_secs(2),
        shim: PathBuf::from(BIN),
    }
}

fn errno_is_esrch() -> bool {
    std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Waits until not even a zombie of the group is left. Init reaps orphans at its own pace,
/// so this polls (generously) instead of asserting at once.
async fn group_vanishes(pgid: libc::pid_t) -> bool {
    for _ in 0..1200 {
        // SAFETY: signal 0 only probes for existence.
        if unsafe { libc::kill(-pgid, 0) } == -1 && errno_is_esrch() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_good_result_is_parsed_and_both_streams_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = agent(
        dir.path(),
        &format!("echo 'working on it' >&2\necho '{GOOD}'\n"),
        Duration::from_secs(30),
    );
    let log_path = cmd.log_path.clone();
    let outcome = run(cmd).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert!(!outcome.timed_out);
    assert!(outcome.pid.is_some());
    let result = outcome.result.as_ref().unwrap();
    assert_eq!(result.result.as_deref(), Some("done"));
    assert_eq!(result.total_tokens(), 7);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let header = log.lines().next().unwrap();
    assert!(
        header.contains("agent start") && header.contains("agent.sh"),
        "{header}"
    );
    assert!(log.contains("working on it") && log.contains(GOOD), "{log}");
    assert!(
        log.trim_end().lines().last().unwrap().contains("agent end"),
        "{log}"
    );
    assert!(
        outcome.log_tail.contains("working on it"),
        "{}",
        outcome.log_tail
    );
}

#[tokio::test]
async fn output_that_is_not_json_is_a_failed_result_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(agent(
        dir.path(),
        "echo 'I refuse to speak JSON'\n",
        Duration::from_secs(30),
    ))
    .await;
    assert_eq!(outcome.exit_code, Some(0));
    assert!(!outcome.success());
    let reason = outcome.result.unwrap_err();
    assert!(reason.contains("not a CLI result object"), "{reason}");
    assert!(reason.contains("I refuse to speak JSON"), "{reason}");
}

#[tokio::test]
async fn exit_1_with_an_error_result_is_not_success() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(agent(
        dir.path(),
        "echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"result\":\"Not logged in · Please run /login\"}'\nexit 1\n",
        Duration::from_secs(30),
    ))
    .await;
    assert_eq!(outcome.exit_code, Some(1));
    assert!(!outcome.success());
    let result = outcome.result.unwrap();
    assert!(result.is_error);
    assert_eq!(
        result.error_message().as_deref(),
        Some("Not logged in · Please run /login")
    );
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group_even_what_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Everything here ignores SIGTERM, so only the SIGKILL after the grace stops it; the
    // background grandchild also holds stdout open, which must not hang the run.
    let script = "trap '' TERM\nsleep 1000 &\necho $! > grandchild.pid\nsleep 1000\n";
    let outcome = run(agent(dir.path(), script, Duration::from_secs(2))).await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, Some(-9));
    assert_eq!(outcome.result.clone().unwrap_err(), "timeout after 2 s");
    assert!(!outcome.success());
    assert!(
        outcome.log_tail.contains("timed out true"),
        "{}",
        outcome.log_tail
    );

    let pgid = libc::pid_t::try_from(outcome.pid.unwrap()).unwrap();
    let grandchild: libc::pid_t = std::fs::read_to_string(dir.path().join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !group_alive(pgid),
        "a process of the group is still running"
    );
    assert!(group_vanishes(pgid).await, "the group never vanished");
    // SAFETY: signal 0 only probes for existence.
    assert!(unsafe { libc::kill(grandchild, 0) } == -1 && errno_is_esrch());
}

/// An agent that, once told to stop, needs `flush_s` seconds to finish writing before it
/// exits by itself, leaving `flushed.mark` behind as proof that it got to.
fn slow_to_stop(flush_s: u32) -> String {
    format!(
        "trap 'sleep {flush_s}; echo flushed > flushed.mark; exit 0' TERM\nsleep 1000 &\nwait\n"
    )
}

#[tokio::test]
async fn a_long_configured_grace_lets_an_agent_finish_writing_past_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    // 3 s of clean-up is more than the 2 s the grace used to be, far less than the 60 s set.
    let mut cmd = agent(dir.path(), &slow_to_stop(3), Duration::from_millis(500));
    cmd.term_grace = Duration::from_secs(60);
    let outcome = run(cmd).await;
    assert!(outcome.timed_out);
    assert_eq!(
        outcome.exit_code,
        Some(0),
        "stopped by SIGKILL before it finished: {outcome:?}"
    );
    assert!(dir.path().join("flushed.mark").exists());
    let pgid = libc::pid_t::try_from(outcome.pid.unwrap()).unwrap();
    assert!(!group_alive(pgid));
}

#[tokio::test]
async fn a_zero_grace_sigkills_a_group_that_would_take_its_time() {
    let dir = tempfile::tempdir().unwrap();
    // With the old fixed 2 s grace this agent would have finished its 1 s of clean-up.
    let mut cmd = agent(dir.path(), &slow_to_stop(1), Duration::from_millis(500));
    cmd.term_grace = Duration::ZERO;
    let outcome = run(cmd).await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, Some(-9), "{outcome:?}");
    assert!(!dir.path().join("flushed.mark").exists());
    let pgid = libc::pid_t::try_from(outcome.pid.unwrap()).unwrap();
    assert!(group_vanishes(pgid).await, "the group never vanished");
    // Whatever the group had started is gone with it: nothing writes the mark later.
    assert!(!dir.path().join("flushed.mark").exists());
}

#[tokio::test]
async fn a_timed_out_agent_that_obeys_sigterm_reports_that_signal() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(agent(
        dir.path(),
        "sleep 1000 &\nsleep 1000\n",
        Duration::from_millis(500),
    ))
    .await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, Some(-libc::SIGTERM));
    assert_eq!(outcome.result.unwrap_err(), "timeout after 0.5 s");
    let pgid = libc::pid_t::try_from(outcome.pid.unwrap()).unwrap();
    assert!(!group_alive(pgid));
}

#[tokio::test]
async fn processes_left_behind_by_a_finished_agent_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run(agent(
        dir.path(),
        &format!("sleep 1000 &\necho '{GOOD}'\n"),
        Duration::from_secs(30),
    ))
    .await;
    assert!(outcome.success(), "{outcome:?}");
    assert!(!outcome.timed_out);
    let pgid = libc::pid_t::try_from(outcome.pid.unwrap()).unwrap();
    assert!(!group_alive(pgid));
    assert!(
        outcome.log_tail.contains("left processes"),
        "{}",
        outcome.log_tail
    );
}

#[tokio::test]
async fn env_and_cwd_are_passed() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("worktree");
    std::fs::create_dir(&work).unwrap();
    let mut cmd = agent(
        dir.path(),
        "printf '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"%s|%s\"}' \"$(pwd -P)\" \"$AGENT_GREETING\"\n",
        Duration::from_secs(30),
    );
    cmd.cwd = work.clone();
    cmd.env = vec![("AGENT_GREETING".into(), "hello there".into())];
    let outcome = run(cmd).await;
    let text = outcome.result.unwrap().result.unwrap();
    let expected = format!("{}|hello there", work.canonicalize().unwrap().display());
    assert_eq!(text, expected);
}

#[tokio::test]
async fn a_program_that_cannot_start_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = agent(dir.path(), "", Duration::from_secs(5));
    cmd.program = dir.path().join("no-such-agent");
    let outcome = run(cmd).await;
    assert_eq!(outcome.exit_code, None);
    assert_eq!(outcome.pid, None);
    let reason = outcome.result.unwrap_err();
    assert!(
        reason.contains("cannot start") && reason.contains("no-such-agent"),
        "{reason}"
    );
    assert!(
        outcome.log_tail.contains("cannot start"),
        "{}",
        outcome.log_tail
    );
}

#[tokio::test]
async fn the_log_tail_covers_only_this_run() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = agent(
        dir.path(),
        "echo first-run-output\n",
        Duration::from_secs(30),
    );
    let _ = run(cmd.clone()).await;
    std::fs::write(dir.path().join("agent.sh"), "echo second-run-output\n").unwrap();
    let outcome = run(cmd.clone()).await;
    assert!(outcome.log_tail.contains("second-run-output"));
    assert!(!outcome.log_tail.contains("first-run-output"));
    // Appended, not truncated: the earlier run is still in the file.
    let log = std::fs::read_to_string(&cmd.log_path).unwrap();
    assert!(log.contains("first-run-output") && log.contains("second-run-output"));
}

/// A request for run `run_id` of the analyst in `worktree`.
fn request(run_id: &str, worktree: &Path) -> orchestrator_actors::ports::workbench::AgentRequest {
    use orchestrator_actors::ports::workbench::{AgentRequest, Workplace};
    AgentRequest {
        run_id: run_id.into(),
        work_item_id: orchestrator_actors::WorkItemId::parse("ACME-1").unwrap(),
        stage: orchestrator_actors::Stage::Analysis,
        role: orchestrator_actors::Role::Analyst,
        task_text: "analyse".into(),
        workplace: Workplace {
            branch: "feature/ACME-1".into(),
            worktree: worktree.to_path_buf(),
            artifacts_dir: worktree.join("docs/work-items/ACME-1"),
        },
        attempt: 1,
        adopted: false,
        budget_left_nano_usd: None,
    }
}

#[tokio::test]
async fn a_new_agent_never_starts_while_an_earlier_one_lives_in_its_worktree() {
    use orchestrator::claude::launcher::CliLauncher;
    use orchestrator::claude::shim::RunFiles;
    use orchestrator_actors::ports::workbench::AgentRunner;

    let dir = tempfile::tempdir().unwrap();
    let worktree = dir.path().join("ACME-1");
    std::fs::create_dir(&worktree).unwrap();
    let script = dir.path().join("agent.sh");
    // Run A ignores SIGTERM and would work for a minute; run B answers at once.
    std::fs::write(
        &script,
        format!(
            "if [ \"$ORCH_AGENT_RUN\" = run-b ]; then echo '{GOOD}'; exit 0; fi\ntrap '' TERM\nsleep 60\n"
        ),
    )
    .unwrap();
    let config = orchestrator::config::Config::from_vars(
        [("ORCH_AGENT_TERM_GRACE_S", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let launcher = std::sync::Arc::new(
        CliLauncher::new(
            PathBuf::from("/bin/sh"),
            vec![script.display().to_string()],
            runs.clone(),
            config.agents,
            Default::default(),
        )
        .with_shim(PathBuf::from(BIN)),
    );
    // Run A starts, then its watcher goes away (the service died): A keeps working.
    let a = {
        let launcher = launcher.clone();
        let request = request("run-a", &worktree);
        tokio::spawn(async move {
            let (spawned, _) = tokio::sync::oneshot::channel();
            launcher.run(request, spawned).await
        })
    };
    let files_a = RunFiles::of(&runs.join("run-a.log"));
    let mut started_a = None;
    for _ in 0..400 {
        started_a = files_a.started();
        if started_a.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let started_a = started_a.expect("run A started");
    a.abort();
    let _ = a.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pgid_a = libc::pid_t::try_from(started_a.pid).unwrap();
    assert!(group_alive(pgid_a), "run A outlives its watcher");

    // Run B in the same worktree: A is ended first, and only then does B start.
    let (spawned, _) = tokio::sync::oneshot::channel();
    let report = launcher.run(request("run-b", &worktree), spawned).await;
    assert!(report.success, "{report:?}");
    assert!(!group_alive(pgid_a), "run A's agent is gone");
    let ended_a = files_a.ended().expect("A's shim recorded its end");
    assert_eq!(ended_a.exit_code, Some(-libc::SIGKILL), "{ended_a:?}");
    let started_b = RunFiles::of(&runs.join("run-b.log")).started().unwrap();
    assert!(
        ended_a.ended_unix_ms <= started_b.started_unix_ms,
        "B started at {} while A lived until {}",
        started_b.started_unix_ms,
        ended_a.ended_unix_ms
    );
}
