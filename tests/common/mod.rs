//! Black-box harness: runs the real `orchestrator` binary on a temp data dir and an ephemeral
//! loopback port, reads its address from its log, and talks HTTP to it.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator::store::SqliteStore;
use orchestrator_actors::ports::{NewTask, Store};
use orchestrator_actors::{Stage, WorkItemId};
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

/// A command for the binary with a clean `ORCH_*` environment, run in `cwd` (so no stray
/// `.env` is picked up).
pub fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("ORCH_")) {
        cmd.env_remove(key);
    }
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// A running `orchestrator serve`.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The extra environment it was started with.
    env: Vec<(String, String)>,
    log: Arc<Mutex<String>>,
}

impl Service {
    /// Starts `serve` on `data_dir` with extra environment, and waits until it listens.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Service {
        let cwd = data_dir.parent().expect("data dir has a parent");
        let mut cmd = command(cwd);
        cmd.arg("serve")
            .env("ORCH_DATA_DIR", data_dir)
            .env("ORCH_BIND", "127.0.0.1:0")
            .env("ORCH_LOG", "info")
            // A test's outcome must not depend on how full the machine's disk is: the disk
            // watchdog only pauses dispatch here for a test that sets its thresholds.
            .env("ORCH_DISK_WARN_PCT", "100")
            .env("ORCH_DISK_CRITICAL_PCT", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn orchestrator");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let rest = &line[at + "listening on ".len()..];
                    let url: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(url);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "service did not start listening; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Service {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log,
        }
    }

    /// Starts another service on the same data directory with the same environment (after
    /// this one died or stopped).
    pub fn restart(&self) -> Service {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Service::start(&self.data_dir, &env)
    }

    /// The extra environment it was started with.
    pub fn env_vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// GET `path`, returning the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = reqwest::get(format!("{}{path}", self.base))
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// POST `path` with no body, returning the status and the JSON body.
    pub async fn post(&self, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its agents outlive it by design; a finished test leaves none behind.
        let home = self.data_dir.join("runs").display().to_string();
        for found in orchestrator::os::procs::marked("ORCH_AGENT_", "ORCH_AGENT_HOME", &home) {
            // SAFETY: kill(2) on a process this test's service started (found by its marker).
            unsafe { libc::kill(found.pid as i32, libc::SIGKILL) };
        }
    }
}

/// Seeds tasks (id, stage) into the database under `data_dir`, before the service starts.
pub async fn seed(data_dir: &Path, tasks: &[(&str, Stage)]) {
    std::fs::create_dir_all(data_dir).unwrap();
    let store = SqliteStore::open(&data_dir.join("orchestrator.db"))
        .await
        .unwrap();
    for (id, stage) in tasks {
        let id = WorkItemId::parse(id).unwrap();
        store
            .create_task(NewTask {
                work_item_id: id.clone(),
                repo: "acme/app".into(),
                title: format!("Task {id}"),
                description: "seeded by a test".into(),
                labels: Vec::new(),
            })
            .await
            .unwrap();
        if *stage != Stage::Created {
            assert!(
                store
                    .record_transition(&id, Stage::Created, *stage, "seeded")
                    .await
                    .unwrap()
            );
        }
    }
    store.close().await;
}

/// Polls `probe` until it yields `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The child of an `/actors` node named `name`.
pub fn child<'a>(node: &'a Value, name: &str) -> &'a Value {
    node["children"]
        .as_array()
        .and_then(|c| c.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no child {name} in {node}"))
}

/// Stalls a task's actor for `ms` and waits until it really is stuck (its Describe times
/// out), so a signal sent next cannot overtake the queued stall. Needs a short
/// `ORCH_DESCRIBE_TIMEOUT_MS`.
pub async fn stall(service: &Service, id: &str, ms: u64) {
    let (status, _) = service
        .post(&format!("/debug/tasks/{id}/stall?ms={ms}"))
        .await;
    assert_eq!(status, 202);
    eventually("the actor to be stuck", Duration::from_secs(10), || async {
        let (_, task) = service.get(&format!("/tasks/{id}")).await;
        task["actor"]["error"]
            .as_str()
            .filter(|e| e.contains("timed out"))
            .map(|_| ())
    })
    .await;
}

/// The operator token the pipeline tests configure.
pub const TOKEN: &str = "test-operator-token-0123";

impl Service {
    /// POST `path` with a JSON body and, if given, a Bearer token.
    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }
}

/// A sample project's environment: a bare origin under `dir` with a tiny app and its test
/// command, the dry-run agent (this binary), an operator token and quick retries.
pub async fn local_mode(dir: &Path, projects: &[(&str, &str, bool)]) -> Vec<(String, String)> {
    let mut list = Vec::new();
    for (repo, prefix, confirm_deploy) in projects {
        let origin = dir.join(format!("{prefix}.git"));
        orchestrator::git::sample::create_sample_origin(&origin)
            .await
            .unwrap();
        list.push(serde_json::json!({
            "repo": repo,
            "origin": origin,
            "prefix": prefix,
            "test_cmd": orchestrator::git::sample::SAMPLE_TEST_CMD,
            "confirm_deploy": confirm_deploy,
        }));
    }
    vec![
        ("ORCH_PROJECTS_JSON".into(), Value::Array(list).to_string()),
        ("ORCH_CLAUDE_BIN".into(), BIN.into()),
        ("ORCH_CLAUDE_ARGS".into(), "scripted-agent".into()),
        ("ORCH_OPERATOR_TOKEN".into(), TOKEN.into()),
        ("ORCH_RETRY_DELAY_S".into(), "1".into()),
        ("ORCH_MAX_CONCURRENCY".into(), "2".into()),
    ]
}

/// Starts the service in local mode with one project `acme/app` (prefix `ACME`) and `extra`
/// environment on top.
pub async fn start_local_with(dir: &Path, confirm_deploy: bool, extra: &[(&str, &str)]) -> Service {
    let mut env = local_mode(dir, &[("acme/app", "ACME", confirm_deploy)]).await;
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Service::start(&dir.join("data"), &env)
}

/// Starts the service in local mode with one project `acme/app` (prefix `ACME`).
pub async fn start_local(dir: &Path, confirm_deploy: bool) -> Service {
    start_local_with(dir, confirm_deploy, &[]).await
}

/// Creates a task on `acme/app` through the local tracker; returns its id.
pub async fn create(service: &Service, title: &str, description: &str, labels: &[&str]) -> String {
    let body = serde_json::json!({"repo": "acme/app", "title": title, "description": description, "labels": labels});
    let (status, reply) = service.post_json("/tasks", &body, None).await;
    assert_eq!(status, 201, "{reply}");
    reply["work_item_id"].as_str().unwrap().to_string()
}

/// `GET /tasks/{id}`.
pub async fn task(service: &Service, id: &str) -> Value {
    service.get(&format!("/tasks/{id}")).await.1
}

/// Waits until the task is at `stage` in `phase`.
pub async fn reach(service: &Service, id: &str, stage: &str, phase: &str) -> Value {
    eventually(
        &format!("{id} at {stage}/{phase}"),
        Duration::from_secs(60),
        || async {
            let t = task(service, id).await;
            (t["stage"] == stage && t["phase"] == phase).then_some(t)
        },
    )
    .await
}

/// The task's agent runs, oldest first.
pub fn runs(task: &Value) -> Vec<Value> {
    task["runs"].as_array().cloned().unwrap_or_default()
}

/// Waits until the task's first run has ended; returns the task then.
pub async fn first_run_ended(service: &Service, id: &str) -> Value {
    eventually("the first run to end", Duration::from_secs(60), || async {
        let t = task(service, id).await;
        runs(&t)
            .first()
            .filter(|r| r["status"] != "running")
            .map(|_| t.clone())
    })
    .await
}

/// Waits until every accepted webhook delivery has been acted on and its outcome journaled:
/// `GET /status` shows `webhooks_in_progress` at 0. A delivery counts as in progress from
/// before it is answered, so after its reply this proves the intake is done with it.
pub async fn webhooks_settled(service: &Service) {
    eventually(
        "the webhook deliveries to be settled",
        Duration::from_secs(30),
        || async {
            let (_, status) = service.get("/status").await;
            (status["webhooks_in_progress"] == 0).then_some(())
        },
    )
    .await;
}

/// Proves the dispatcher has claimed past every job queued so far: creates a witness task
/// on `acme/app` and waits until its first agent run has ended; returns the witness's id.
/// Claims go oldest first, so any claimable job queued before the witness's was claimed
/// no later than it, and its run journaled by the time the witness's run is over.
pub async fn dispatch_caught_up(service: &Service) -> String {
    let witness = create(
        service,
        "Witness",
        "Shows that the dispatcher has moved on.",
        &[],
    )
    .await;
    first_run_ended(service, &witness).await;
    witness
}
