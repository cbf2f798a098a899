//! Agents outlive the service, on the real binary with the dry-run agent: an agent running
//! across a SIGKILL or a graceful restart is adopted by the next boot, its result used and
//! the run launched once; a kill right after a spawn, before anything about the agent is
//! journaled, never leaves two agents in one worktree; an agent whose identity cannot be
//! verified is never adopted and never killed; `ORCH_SHUTDOWN_AGENTS=stop` keeps the old
//! behaviour.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Service, create, eventually, runs, start_local_with, task};
use orchestrator::claude::shim::{MARK_HOME, MARK_PREFIX, MARK_RUN, MARK_WORKTREE};
use orchestrator::os::procs;
use serde_json::Value;

/// Whether `pid` is a running (not zombie) process.
fn running(pid: i64) -> bool {
    u32::try_from(pid)
        .ok()
        .and_then(procs::stat_of)
        .is_some_and(|s| s.is_live())
}

/// The task's running job in `GET /queue`, once it has a pid.
async fn running_job(service: &Service) -> Option<Value> {
    let (_, queue) = service.get("/queue").await;
    queue["jobs"]
        .as_array()?
        .iter()
        .find(|j| j["status"] == "running" && j["pid"].is_i64())
        .cloned()
}

/// The analyst's runs of task `id`.
async fn analyst_runs(service: &Service, id: &str) -> Vec<Value> {
    runs(&task(service, id).await)
        .into_iter()
        .filter(|r| r["role"] == "analyst")
        .collect()
}

/// Waits until the analyst's one run of `id` succeeded and returns it.
async fn analysis_done(service: &Service, id: &str) -> Value {
    eventually(
        "the analyst's run to succeed",
        Duration::from_secs(60),
        || async {
            analyst_runs(service, id)
                .await
                .into_iter()
                .find(|r| r["status"] == "succeeded")
        },
    )
    .await
}

/// Processes of the agents of the service on `data_dir` working in task `id`'s worktree:
/// (pid, run).
fn agents_in_worktree(data_dir: &Path, id: &str) -> Vec<(u32, String)> {
    let home = data_dir.join("runs").display().to_string();
    procs::marked(MARK_PREFIX, MARK_HOME, &home)
        .into_iter()
        .filter(|m| {
            m.marks
                .get(MARK_WORKTREE)
                .is_some_and(|w| w.ends_with(&format!("/{id}")))
        })
        .map(|m| (m.pid, m.marks.get(MARK_RUN).cloned().unwrap_or_default()))
        .collect()
}

/// Asserts the adoption of the analyst's run `before` (as `/queue` showed it before the
/// restart) by `second`: same run, same pid, attempt 1, shown as adopted; the agent's result
/// is used and the run was launched once.
async fn assert_adopted(second: &Service, id: &str, before: &Value) {
    let job = eventually("the run to be adopted", Duration::from_secs(30), || async {
        running_job(second)
            .await
            .filter(|j| !j["adopted_by"].is_null())
    })
    .await;
    assert_eq!(job["run_id"], before["run_id"], "{job}");
    assert_eq!(job["pid"], before["pid"], "the same agent: {job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_ne!(job["adopted_by"], job["launched_by"], "{job}");
    let (_, actors) = second.get("/actors").await;
    let text = actors.to_string();
    assert!(
        text.contains(&format!("run:{}", job["job"])) && text.contains("\"adopted\":true"),
        "the adopted run is under dispatch: {text}"
    );
    let run = analysis_done(second, id).await;
    let all = analyst_runs(second, id).await;
    assert_eq!(all.len(), 1, "launched exactly once: {all:?}");
    assert_eq!(run["run_id"], before["run_id"]);
    assert!(
        !run["launched_by"].is_null() && !run["adopted_by"].is_null(),
        "{run}"
    );
    assert_ne!(run["launched_by"], run["adopted_by"], "{run}");
    assert!(
        second
            .log()
            .contains("adopted a run a previous boot left running")
    );
}

#[tokio::test]
async fn an_agent_running_across_a_sigkill_is_adopted_and_its_result_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_local_with(dir.path(), false, &[("ORCH_REAPER_TICK_S", "1")]).await;
    let id = create(&first, "Outlives", "scripted-agent: sleep=analyst:5", &[]).await;
    let before = eventually("the agent to start", Duration::from_secs(30), || {
        running_job(&first)
    })
    .await;
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).expect("it died");
    assert!(
        running(before["pid"].as_i64().unwrap()),
        "the agent outlives a SIGKILLed service"
    );
    let second = first.restart();
    assert_adopted(&second, &id, &before).await;
    // And the pipeline carries on from the adopted result: the analysis gate read the
    // adopted agent's artifact and waits for a human's approval.
    common::reach(&second, &id, "analysis", "awaiting-approval").await;
}

#[tokio::test]
async fn a_graceful_restart_keeps_the_agent_running_and_the_next_boot_adopts_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_local_with(dir.path(), false, &[]).await;
    let id = create(&first, "Upgrade", "scripted-agent: sleep=analyst:5", &[]).await;
    let before = eventually("the agent to start", Duration::from_secs(30), || {
        running_job(&first)
    })
    .await;
    first.signal(libc::SIGTERM);
    let status = first
        .wait_exit(Duration::from_secs(20))
        .expect("it stopped");
    assert!(status.success(), "a clean exit: {status:?}");
    assert!(
        running(before["pid"].as_i64().unwrap()),
        "ORCH_SHUTDOWN_AGENTS=adopt (the default) leaves the agent running"
    );
    let second = first.restart();
    assert_adopted(&second, &id, &before).await;
}

#[tokio::test]
async fn with_shutdown_agents_stop_a_graceful_stop_kills_the_agent_and_the_job_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("ORCH_SHUTDOWN_AGENTS", "stop")];
    let mut first = start_local_with(dir.path(), false, &env).await;
    let id = create(&first, "Stopped", "scripted-agent: sleep=analyst:60", &[]).await;
    let before = eventually("the agent to start", Duration::from_secs(30), || {
        running_job(&first)
    })
    .await;
    let orphan = before["pid"].as_i64().unwrap();
    first.signal(libc::SIGTERM);
    first
        .wait_exit(Duration::from_secs(20))
        .expect("it stopped");
    eventually(
        "the agent to be stopped",
        Duration::from_secs(10),
        || async { (!running(orphan)).then_some(()) },
    )
    .await;
    let mut second = first.restart();
    let job = eventually("the job to run again", Duration::from_secs(30), || async {
        running_job(&second)
            .await
            .filter(|j| j["run_id"] != before["run_id"])
    })
    .await;
    assert_eq!(job["attempts"], 2, "{job}");
    assert!(job["adopted_by"].is_null(), "{job}");
    let statuses: Vec<String> = analyst_runs(&second, &id)
        .await
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["abandoned", "running"]);
    second.signal(libc::SIGTERM);
    second
        .wait_exit(Duration::from_secs(20))
        .expect("it stopped");
    let fresh = job["pid"].as_i64().unwrap();
    eventually(
        "the second agent to stop",
        Duration::from_secs(10),
        || async { (!running(fresh)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_kill_right_after_the_spawn_never_leaves_two_agents_in_one_worktree() {
    let dir = tempfile::tempdir().unwrap();
    // The debug build's fault point: the service dies right after the agent's shim started,
    // before the agent's pid is journaled anywhere.
    let env = [("ORCH_DEBUG_DIE_AFTER_SPAWN", "1")];
    let mut first = start_local_with(dir.path(), false, &env).await;
    let id = create(&first, "Orphaned", "scripted-agent: sleep=analyst:4", &[]).await;
    first
        .wait_exit(Duration::from_secs(30))
        .expect("the service dies at its fault point");
    let data = first.data_dir.clone();
    let orphans = eventually("the orphaned agent", Duration::from_secs(10), || async {
        let found = agents_in_worktree(&data, &id);
        (!found.is_empty()).then_some(found)
    })
    .await;

    // Watch the worktree from now on: never two runs' agents in it at once.
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (stop, most, id, data) = (stop.clone(), most.clone(), id.clone(), data.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let runs: BTreeSet<String> = agents_in_worktree(&data, &id)
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect();
                most.fetch_max(runs.len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let mut second = Service::start(
        &first.data_dir,
        &first
            .env_vars()
            .iter()
            .filter(|(k, _)| k != "ORCH_DEBUG_DIE_AFTER_SPAWN")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let run = analysis_done(&second, &id).await;
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(
        most.load(Ordering::Relaxed),
        1,
        "two runs' agents shared the worktree"
    );
    let all = analyst_runs(&second, &id).await;
    assert_eq!(
        all.len(),
        1,
        "the orphan was adopted, not relaunched: {all:?}"
    );
    assert_eq!(run["run_id"], orphans[0].1.as_str(), "{run}");
    assert!(!run["adopted_by"].is_null(), "{run}");
    second.signal(libc::SIGTERM);
    second
        .wait_exit(Duration::from_secs(20))
        .expect("it stopped");
}

#[tokio::test]
async fn an_agent_whose_identity_cannot_be_verified_is_never_adopted_nor_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_local_with(dir.path(), false, &[("ORCH_SHUTDOWN_AGENTS", "stop")]).await;
    let id = create(&first, "Reused", "scripted-agent: sleep=analyst:60", &[]).await;
    let before = eventually("the agent to start", Duration::from_secs(30), || {
        running_job(&first)
    })
    .await;
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).expect("it died");
    let data = first.data_dir.clone();
    // The agent dies without a word while the service is down (its shim first, so nothing
    // records its exit) ...
    let run_id = before["run_id"].as_str().unwrap().to_string();
    for (pid, run) in agents_in_worktree(&data, &id) {
        assert_eq!(run, run_id);
        let shim = procs::environ_with_prefix(pid, MARK_PREFIX)
            .is_some_and(|m| m.contains_key("ORCH_AGENT_SHIM"));
        if shim {
            // SAFETY: kill(2) on a process this test's service started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
    for (pid, _) in agents_in_worktree(&data, &id) {
        // SAFETY: as above.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    }
    eventually("the agent to be gone", Duration::from_secs(10), || async {
        agents_in_worktree(&data, &id).is_empty().then_some(())
    })
    .await;
    // ... and its pid now belongs to someone else: a process with the journaled pid and start
    // time but none of the run's marks.
    let mut stranger = std::process::Command::new("sleep")
        .arg("120")
        .spawn()
        .unwrap();
    let pid = stranger.id();
    let ticks = eventually(
        "the stranger's start time",
        Duration::from_secs(5),
        || async { Some(procs::start_ticks(pid)).filter(|t| *t != 0) },
    )
    .await;
    let db = rusqlite::Connection::open(first.data_dir.join("orchestrator.db")).unwrap();
    db.execute(
        "UPDATE jobs SET pid = ?1, pid_start = ?2 WHERE run_id = ?3",
        rusqlite::params![pid, ticks as i64, run_id],
    )
    .unwrap();
    drop(db);

    let mut second = first.restart();
    let job = eventually("the job to run again", Duration::from_secs(30), || async {
        running_job(&second)
            .await
            .filter(|j| j["run_id"] != run_id.as_str())
    })
    .await;
    assert_eq!(
        job["attempts"], 2,
        "not adopted: relaunched as attempt 2: {job}"
    );
    assert!(job["adopted_by"].is_null(), "{job}");
    assert!(
        running(i64::from(pid)),
        "a process that is not the run's must never be killed"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
    second.signal(libc::SIGTERM);
    second
        .wait_exit(Duration::from_secs(20))
        .expect("it stopped");
}

#[tokio::test]
async fn an_adopted_agent_keeps_the_time_budget_counted_from_its_real_start() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ORCH_AGENT_TIMEOUT_ANALYST_S", "3"),
        ("ORCH_AGENT_TERM_GRACE_S", "1"),
    ];
    let mut first = start_local_with(dir.path(), false, &env).await;
    let id = create(&first, "Slow", "scripted-agent: sleep=analyst:60", &[]).await;
    let before = eventually("the agent to start", Duration::from_secs(30), || {
        running_job(&first)
    })
    .await;
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(10)).expect("it died");
    // Down for longer than the whole budget: the next boot adopts an agent already over it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = first.restart();
    let run = eventually(
        "the adopted run to time out",
        Duration::from_secs(20),
        || async {
            analyst_runs(&second, &id)
                .await
                .into_iter()
                .find(|r| r["run_id"] == before["run_id"] && r["status"] == "timeout")
        },
    )
    .await;
    assert!(!run["adopted_by"].is_null(), "{run}");
    assert!(
        run["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("timeout after 3 s"),
        "{run}"
    );
    assert!(!running(before["pid"].as_i64().unwrap()));
}
