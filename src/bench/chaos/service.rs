//! This binary's `serve` as a child process the chaos bench can SIGKILL and start again on the
//! same data dir, port and environment; its log goes to one file across restarts. Every wait
//! is bounded, and dropping it kills the process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// How long a (re)started service may take to answer `/health`.
const HEALTHY_WITHIN: Duration = Duration::from_secs(60);
/// How long a killed or stopped process may take to be reaped.
const EXIT_WITHIN: Duration = Duration::from_secs(15);
/// Starts tried when a fresh process exits before it is healthy (e.g. the port is briefly
/// still held).
const STARTS: u32 = 3;

/// A `serve` process and how to start it again.
pub struct Serve {
    /// The running process, if any.
    child: Option<Child>,
    /// Its `ORCH_*` environment.
    env: Vec<(String, String)>,
    /// Its working directory (no `.env` there).
    cwd: PathBuf,
    /// Where its stderr goes, appended across restarts.
    log: PathBuf,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Serve {
    /// A service to be started in `cwd` with `env` (`ORCH_BIND` included) at `base`.
    pub fn new(cwd: &Path, env: Vec<(String, String)>, base: String) -> Serve {
        Serve {
            child: None,
            env,
            cwd: cwd.to_path_buf(),
            log: cwd.join("serve.log"),
            base,
        }
    }

    /// Starts the process and waits until it answers `/health`; returns when it was
    /// spawned (the instant a restart is timed from) and how long it took to be healthy.
    pub async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<(Instant, Duration)> {
        let mut last = None;
        for _ in 0..STARTS {
            let spawned = self.spawn()?;
            match self.wait_healthy(http, spawned).await {
                Ok(()) => return Ok((spawned, spawned.elapsed())),
                Err(e) => last = Some(e),
            }
            self.kill().await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last.expect("at least one start was tried"))
    }

    fn spawn(&mut self) -> anyhow::Result<Instant> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut command = Command::new(std::env::current_exe()?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ORCH_") {
                command.env_remove(key);
            }
        }
        command
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let spawned = Instant::now();
        self.child = Some(command.spawn().context("cannot start `serve`")?);
        Ok(spawned)
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client, since: Instant) -> anyhow::Result<()> {
        loop {
            if let Ok(r) = http.get(format!("{}/health", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "serve exited before it was healthy ({status}); see {}",
                    self.log.display()
                );
            }
            if since.elapsed() > HEALTHY_WITHIN {
                bail!(
                    "serve was not healthy within {} s; see {}",
                    HEALTHY_WITHIN.as_secs(),
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGKILLs the process, with no warning, and reaps it.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        child.start_kill().ok();
        tokio::time::timeout(EXIT_WITHIN, child.wait())
            .await
            .context("serve was not reaped after SIGKILL")?
            .context("cannot wait for serve")?;
        Ok(())
    }

    /// Stops the process gracefully (SIGTERM), or with SIGKILL if it does not exit in time.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) on the pid of a child we own and have not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(EXIT_WITHIN, child.wait())
            .await
            .is_ok()
        {
            self.child = None;
            return Ok(());
        }
        self.kill().await?;
        bail!(
            "serve did not stop within {} s of SIGTERM",
            EXIT_WITHIN.as_secs()
        )
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
