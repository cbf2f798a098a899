//! The disk watchdog in the running service: with thresholds every real filesystem is past,
//! no agent run starts, and `GET /queue` says why.

mod common;

use std::time::Duration;

use common::{create, eventually, start_local_with};

#[tokio::test]
async fn a_critically_full_disk_pauses_dispatch_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local_with(
        dir.path(),
        false,
        &[("ORCH_DISK_WARN_PCT", "1"), ("ORCH_DISK_CRITICAL_PCT", "1")],
    )
    .await;
    let queue = eventually("the pause", Duration::from_secs(30), || async {
        let (_, queue) = service.get("/queue").await;
        (!queue["paused_for_disk"].is_null()).then_some(queue)
    })
    .await;
    let reason = queue["paused_for_disk"].as_str().unwrap();
    assert!(reason.contains("critical at 1%"), "{queue}");
    assert!(reason.contains("data "), "{queue}");
    let filesystems = queue["disk"]["filesystems"].as_object().unwrap();
    assert!(
        filesystems.values().all(|fs| fs["level"] == "critical"),
        "{queue}"
    );
    create(&service, "Add a greeting", "Say hello.", &[]).await;
    let queue = eventually("the job queued", Duration::from_secs(30), || async {
        let (_, queue) = service.get("/queue").await;
        (queue["jobs"].as_array().is_some_and(|j| !j.is_empty())).then_some(queue)
    })
    .await;
    // The next ticks claim nothing either.
    let (_, later) = service.get("/queue").await;
    for q in [&queue, &later] {
        let jobs = q["jobs"].as_array().unwrap();
        assert!(jobs.iter().all(|j| j["status"] == "queued"), "{q}");
    }
}
