//! Configuration errors stop startup with exit code 2 and one line naming the key and the bad
//! value — no panic, no backtrace, nothing created — and `.env` is read but loses to the
//! process environment.

mod common;

use std::time::Duration;

use common::{Service, command};

fn run_serve(cwd: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = command(cwd);
    cmd.arg("serve").env("ORCH_DATA_DIR", cwd.join("data"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run orchestrator");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_clean_line(stderr: &str) {
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_value_exits_2_naming_key_and_value_and_creates_nothing() {
    for (key, value) in [
        ("ORCH_BIND", "nonsense"),
        ("ORCH_LOG_FORMAT", "yaml"),
        ("ORCH_LOG", "info,=["),
        ("ORCH_SHUTDOWN_TIMEOUT_S", "soon"),
        ("ORCH_RESTART_MAX", "-3"),
        ("ORCH_DATA_DIR", ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (code, stderr) = run_serve(dir.path(), &[(key, value)]);
        assert_eq!(code, Some(2), "{key}={value}: {stderr}");
        assert_one_clean_line(&stderr);
        assert!(stderr.contains(&format!("{key}={value:?}")), "{stderr}");
        assert!(
            !dir.path().join("data").exists(),
            "a failed start must change nothing"
        );
    }
}

#[test]
fn a_bad_value_in_dot_env_is_reported_like_one_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "ORCH_BIND=nonsense\n").unwrap();
    let (code, stderr) = run_serve(dir.path(), &[]);
    assert_eq!(code, Some(2));
    assert_one_clean_line(&stderr);
    assert!(stderr.contains("ORCH_BIND=\"nonsense\""), "{stderr}");
}

#[test]
fn a_malformed_dot_env_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "ORCH_BIND='unterminated\n").unwrap();
    let (code, stderr) = run_serve(dir.path(), &[]);
    assert_eq!(code, Some(2));
    assert_one_clean_line(&stderr);
    assert!(stderr.contains(".env"), "{stderr}");
}

#[test]
fn an_occupied_port_fails_with_the_address_named() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_serve(dir.path(), &[("ORCH_BIND", &addr)]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("ORCH_BIND={addr}")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn the_process_environment_wins_over_dot_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "ORCH_BIND=nonsense\nORCH_LOG_FORMAT=json\n",
    )
    .unwrap();
    // The harness sets ORCH_BIND in the environment; ORCH_LOG_FORMAT comes from .env.
    let mut service = Service::start(&dir.path().join("data"), &[]);
    assert_eq!(service.get("/health").await.0, 200);
    assert!(
        service.log().lines().any(|l| l.starts_with('{')),
        "JSON logs from .env expected"
    );
    service.signal(libc::SIGTERM);
    assert!(
        service
            .wait_exit(Duration::from_secs(10))
            .unwrap()
            .success()
    );
}
