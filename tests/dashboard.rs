//! The web dashboard, driven in a real browser: headless Chromium (Debian's `chromium`
//! package, which `.ci/run` installs) over the DevTools protocol (chromiumoxide), against the
//! real binary with the scripted agent. Without the browser these tests fail, saying how to
//! install it; they never skip.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::page::ScreenshotParams;
use common::*;
use futures::StreamExt;
use tokio_util::task::AbortOnDropHandle;

/// How to get the browser, for the failure that says it is missing.
const INSTALL: &str = "install Debian's Chromium with `apt-get install -y chromium` (.ci/run does \
                       it), or point CHROMIUM_BIN at a Chromium or Chrome binary";

/// The browser: `CHROMIUM_BIN`, else `chromium` on the PATH, else `/usr/bin/chromium`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHROMIUM_BIN={} is not a file: {INSTALL}",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("chromium"))
        .chain([PathBuf::from("/usr/bin/chromium")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("the dashboard's browser tests need headless Chromium, and none was found: {INSTALL}")
        })
}

/// A headless Chromium and the task that pumps its DevTools connection (ended with it).
struct Chromium {
    /// The browser.
    browser: Browser,
    /// Pumps the protocol's messages; aborted when the test ends.
    _pump: AbortOnDropHandle<()>,
    /// The browser's own profile directory.
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts a fresh headless browser with a new empty profile and no network beyond
    /// loopback to reach for.
    async fn launch() -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(chromium())
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(1400, 900)
            .viewport(None)
            .args([
                "disable-gpu",
                "disable-quic",
                "disable-component-update",
                "disable-background-networking",
                "disable-sync",
                "no-first-run",
            ])
            .launch_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|e| panic!("cannot configure Chromium: {e}"));
        let (browser, mut handler) = Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("Chromium did not start ({e}): {INSTALL}"));
        let pump = AbortOnDropHandle::new(tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    break;
                }
            }
        }));
        Chromium {
            browser,
            _pump: pump,
            _profile: profile,
        }
    }

    /// A new tab at `url`, loaded.
    async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.expect("open a tab");
        page.wait_for_navigation().await.expect("the page loads");
        page
    }

    /// Ends the browser.
    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
    }
}

/// Evaluates `js` in the page and reads its value.
async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> T {
    page.evaluate(js)
        .await
        .unwrap_or_else(|e| panic!("evaluate {js}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("the value of {js}: {e}"))
}

/// Waits until `js` is true in the page, without reloading it. While a navigation is under
/// way the page cannot answer; that counts as not yet.
async fn until(page: &Page, what: &str, js: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = match page.evaluate(js).await {
            Ok(value) => value.into_value::<bool>().unwrap_or(false),
            Err(_) => false,
        };
        if now {
            return;
        }
        if Instant::now() >= deadline {
            let body: String = eval(page, "document.body.innerText").await;
            panic!("timed out waiting for {what} ({js}); the page shows:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `selector` from inside the page: one step, so a live update that
/// replaces the element in between cannot make it miss.
async fn click(page: &Page, selector: &str) {
    let clicked: bool = eval(
        page,
        &format!(
            "(function () {{ var e = document.querySelector('{selector}'); \
             if (!e) {{ return false; }} e.click(); return true; }})()"
        ),
    )
    .await;
    assert!(clicked, "nothing to click at {selector}");
}

/// Where this run keeps its screenshots for a person to look at: the test run's temp dir
/// (`target/tmp`), kept after the run.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The card of `id` and the stage column it stands in, as a JS expression.
fn card_stage(id: &str) -> String {
    format!(
        "(function () {{ var c = document.querySelector('[data-task=\"{id}\"]'); \
         return c ? c.closest('.column').getAttribute('data-stage') : null; }})()"
    )
}

/// Logs in through the login form with `token`, coming back to `next`; waits until `then`
/// holds in the page that answers.
async fn log_in(page: &Page, base: &str, token: &str, next: &str, then: &str) {
    page.goto(format!("{base}/ui/login?next={next}"))
        .await
        .expect("open the login page");
    until(
        page,
        "the login form",
        "document.getElementById('login') !== null",
        Duration::from_secs(10),
    )
    .await;
    page.find_element("#login input[name=token]")
        .await
        .expect("the login form's token field")
        .click()
        .await
        .unwrap()
        .type_str(token)
        .await
        .unwrap();
    click(page, "#login button[type=submit]").await;
    until(page, "the login's answer", then, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn the_board_follows_a_running_task_to_done_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local(dir.path(), false).await;
    let chromium = Chromium::launch().await;
    let page = chromium.open(&format!("{}/", service.base)).await;
    // Anything set now is lost if the page reloads.
    let _: bool = eval(&page, "window.sameDocument = true").await;
    until(
        &page,
        "the live connection",
        "document.getElementById('conn').textContent === 'live'",
        Duration::from_secs(20),
    )
    .await;

    let id = create(&service, "Greet by name", "Say hello.", &["autoApprove"]).await;
    let running = format!(
        "(function () {{ var s = {}; return s !== null && s !== 'done' && s !== 'cancelled'; }})()",
        card_stage(&id)
    );
    until(
        &page,
        "the running task's card",
        &running,
        Duration::from_secs(30),
    )
    .await;
    let stage: String = eval(&page, &card_stage(&id)).await;
    let card: String = eval(
        &page,
        &format!("document.querySelector('[data-task=\"{id}\"]').innerText"),
    )
    .await;
    assert!(card.contains("Greet by name"), "{card}");
    assert!(card.contains("retries 0"), "{card}");
    let shot = screenshot_dir().join("board.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
        .await
        .expect("a screenshot of the board");
    println!(
        "screenshot of the board (task {id} in {stage}): {}",
        shot.display()
    );

    let done = format!("{} === 'done'", card_stage(&id));
    until(
        &page,
        "the card in the done column",
        &done,
        Duration::from_secs(120),
    )
    .await;
    assert!(
        eval::<bool>(&page, "window.sameDocument === true").await,
        "the page was reloaded"
    );
    let card: String = eval(
        &page,
        &format!("document.querySelector('[data-task=\"{id}\"]').innerText"),
    )
    .await;
    let done = task(&service, &id).await;
    assert_eq!(done["stage"], "done");
    let ran = runs(&done).len();
    assert!(
        card.contains(&format!("runs {ran}")),
        "{card} (the API: {ran} runs)"
    );
    let shot = screenshot_dir().join("board-done.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
        .await
        .unwrap();
    println!("screenshot of the board with {id} done: {}", shot.display());
    // On a phone's screen the columns stack.
    page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
        .await
        .expect("a phone's screen");
    let stacked: bool = eval(
        &page,
        "(function () { var c = document.querySelectorAll('.column'); \
         return Array.prototype.every.call(c, function (e) { \
         return e.getBoundingClientRect().left === c[0].getBoundingClientRect().left; }); })()",
    )
    .await;
    assert!(stacked, "the columns stack on a narrow screen");
    let shot = screenshot_dir().join("board-phone.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
        .await
        .unwrap();
    println!("screenshot of the board on a phone: {}", shot.display());
    chromium.close().await;
}

#[tokio::test]
async fn approve_from_the_page_moves_a_waiting_task_on() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local(dir.path(), false).await;
    let id = create(&service, "Needs a look", "Wait for the operator.", &[]).await;
    reach(&service, &id, "analysis", "awaiting-approval").await;

    let chromium = Chromium::launch().await;
    let page = chromium
        .open(&format!("{}/ui/tasks/{id}", service.base))
        .await;
    assert!(
        eval::<bool>(&page, "document.getElementById('form-approve') === null").await,
        "no form before the login"
    );
    log_in(
        &page,
        &service.base,
        TOKEN,
        &format!("/ui/tasks/{id}"),
        "document.getElementById('form-approve') !== null",
    )
    .await;
    let url = page.url().await.unwrap().unwrap_or_default();
    assert!(url.ends_with(&format!("/ui/tasks/{id}")), "{url}");
    let shot = screenshot_dir().join("task.png");
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
        .await
        .unwrap();
    println!(
        "screenshot of {id}'s page, waiting for approval: {}",
        shot.display()
    );
    click(&page, "#form-approve button").await;
    until(
        &page,
        "the task's page after the approve",
        "document.getElementById('flash') !== null",
        Duration::from_secs(20),
    )
    .await;
    let flash: String = eval(&page, "document.getElementById('flash').innerText").await;
    assert_eq!(flash, "Approve: done.");
    eventually(
        "the task past analysis",
        Duration::from_secs(60),
        || async {
            let t = task(&service, &id).await;
            (t["stage"] != "analysis").then_some(())
        },
    )
    .await;
    let reasons = task(&service, &id).await["transitions"].to_string();
    assert!(reasons.contains("architecture"), "{reasons}");
    // The page follows it too.
    until(
        &page,
        "the page to show the next stage",
        "document.getElementById('stage').innerText !== 'analysis'",
        Duration::from_secs(30),
    )
    .await;
    // The queue and the actor tree, as an operator would look next.
    for (path, ready, name) in [
        (
            "/ui/queue",
            "document.getElementById('queue-breaker') !== null",
            "queue.png",
        ),
        (
            "/ui/actors",
            "document.getElementById('actors').innerText.indexOf('dispatch') >= 0",
            "actors.png",
        ),
    ] {
        page.goto(format!("{}{path}", service.base)).await.unwrap();
        until(&page, path, ready, Duration::from_secs(20)).await;
        let shot = screenshot_dir().join(name);
        page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &shot)
            .await
            .unwrap();
        println!("screenshot of {path}: {}", shot.display());
    }
    chromium.close().await;
}

/// POSTs a form from inside the page (as a forged page would) and returns the status.
async fn post_from_page(page: &Page, path: &str, body: &str) -> u16 {
    eval(
        page,
        &format!(
            "fetch('{path}', {{method: 'POST', headers: {{'Content-Type': \
             'application/x-www-form-urlencoded'}}, body: '{body}'}}).then(r => r.status)"
        ),
    )
    .await
}

#[tokio::test]
async fn an_action_without_a_session_or_its_csrf_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local(dir.path(), false).await;
    let id = create(&service, "Hands off", "Nobody approves this.", &[]).await;
    reach(&service, &id, "analysis", "awaiting-approval").await;
    let chromium = Chromium::launch().await;
    let page = chromium
        .open(&format!("{}/ui/tasks/{id}", service.base))
        .await;
    let path = format!("/ui/tasks/{id}/approve");
    assert_eq!(post_from_page(&page, &path, "csrf=guess").await, 401);
    log_in(
        &page,
        &service.base,
        "not-the-token-0000000000",
        "/",
        "document.getElementById('error') !== null",
    )
    .await;
    let error: String = eval(&page, "document.getElementById('error').innerText").await;
    assert!(error.contains("wrong operator token"), "{error}");
    assert_eq!(post_from_page(&page, &path, "csrf=guess").await, 401);
    log_in(
        &page,
        &service.base,
        TOKEN,
        &format!("/ui/tasks/{id}"),
        "document.getElementById('form-approve') !== null",
    )
    .await;
    // Logged in, but a form without the session's token is a forgery.
    assert_eq!(post_from_page(&page, &path, "csrf=guess").await, 403);
    assert_eq!(post_from_page(&page, &path, "reason=x").await, 400);
    let t = task(&service, &id).await;
    assert_eq!(
        (&t["stage"], &t["phase"]),
        (
            &serde_json::json!("analysis"),
            &serde_json::json!("awaiting-approval")
        ),
        "nothing changed"
    );
    chromium.close().await;

    // Without a configured token the dashboard is read-only and says how to enable actions.
    let bare = tempfile::tempdir().unwrap();
    let read_only = Service::start(&bare.path().join("data"), &[]);
    let chromium = Chromium::launch().await;
    let page = chromium.open(&format!("{}/", read_only.base)).await;
    let hint: String = eval(&page, "document.getElementById('enable-hint').innerText").await;
    assert!(hint.contains("ORCH_OPERATOR_TOKEN"), "{hint}");
    assert_eq!(
        post_from_page(&page, "/ui/tasks/ACME-001/approve", "csrf=x").await,
        403
    );
    chromium.close().await;
}

/// A GET of a dashboard page with an optional cookie: the status, the body and the cookies
/// it set.
async fn fetch(service: &Service, path: &str, cookie: Option<&str>) -> (u16, String, Vec<String>) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", service.base));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let response = request.send().await.expect("GET");
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap(), cookies)
}

/// POSTs a form with a cookie; the status, the body and where it redirects.
async fn submit(
    service: &Service,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (u16, String, Option<String>, Vec<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{}{path}", service.base))
        .header("Cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (status, response.text().await.unwrap(), location, cookies)
}

/// The `name=value` of the cookie `name` among `set_cookies`.
fn cookie_pair(set_cookies: &[String], name: &str) -> String {
    set_cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie {name} in {set_cookies:?}"))
        .to_string()
}

/// The value of the hidden field `csrf` in `html`.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn bad_forms_get_a_clear_4xx_change_nothing_and_every_value_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local(dir.path(), false).await;
    let id = create(&service, "<script>alert(1)</script> & co", "", &[]).await;
    reach(&service, &id, "analysis", "awaiting-approval").await;

    let (status, board, _) = fetch(&service, "/", None).await;
    assert_eq!(status, 200);
    assert!(board.contains("alert(1)"), "{board}");
    assert!(
        !board.contains("<script>alert(1)"),
        "an unescaped title: {board}"
    );
    assert!(
        !board.contains("</script> & co"),
        "an unescaped title: {board}"
    );
    assert!(board.contains("name=\"viewport\""), "usable on a phone");

    // The login: its own CSRF cookie, then the token for a session cookie.
    let (_, login, cookies) = fetch(&service, "/ui/login", None).await;
    let login_cookie = cookie_pair(&cookies, "orch_login");
    assert!(cookies[0].contains("HttpOnly") && cookies[0].contains("SameSite=Strict"));
    let login_csrf = csrf_field(&login);
    let (status, page, _, _) = submit(
        &service,
        "/ui/login",
        &login_cookie,
        &[("token", TOKEN), ("csrf", "forged")],
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("csrf"), "{page}");
    let (status, _, location, cookies) = submit(
        &service,
        "/ui/login",
        &login_cookie,
        &[
            ("token", TOKEN),
            ("csrf", &login_csrf),
            ("next", "https://elsewhere.example/"),
        ],
    )
    .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/")),
        "only a local path"
    );
    let session = cookie_pair(&cookies, "orch_session");
    let set = cookies
        .iter()
        .find(|c| c.starts_with("orch_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );

    let (_, page, _) = fetch(&service, &format!("/ui/tasks/{id}"), Some(&session)).await;
    let csrf = csrf_field(&page);
    let reject = format!("/ui/tasks/{id}/reject");
    for (form, status, needle) in [
        (vec![("csrf", csrf.as_str())], 400, "reason is required"),
        (
            vec![("csrf", csrf.as_str()), ("reason", "   ")],
            400,
            "reason is required",
        ),
        (
            vec![("csrf", csrf.as_str()), ("why", "x")],
            400,
            "unknown field `why`",
        ),
        (vec![("reason", "no token")], 400, "missing field `csrf`"),
        (vec![("csrf", "0000"), ("reason", "x")], 403, "csrf"),
    ] {
        let (got, page, _, _) = submit(&service, &reject, &session, &form).await;
        assert_eq!(got, status, "{form:?}: {page}");
        assert!(
            page.contains(needle),
            "{form:?} should say {needle:?}: {page}"
        );
    }
    let (got, page, _, _) = submit(
        &service,
        &format!("/ui/tasks/{id}/launch"),
        &session,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(got, 404, "{page}");
    assert!(page.contains("unknown action"), "{page}");
    let (got, page, _, _) = submit(
        &service,
        "/ui/tasks/..%2Fx/approve",
        &session,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(got, 400, "{page}");
    assert!(page.contains("invalid work item id"), "{page}");
    let t = task(&service, &id).await;
    assert_eq!(t["phase"], "awaiting-approval", "nothing changed");
    assert_eq!(t["stage"], "analysis");

    // A reject with a reason goes through, and says so on the task's page.
    let (got, _, location, _) = submit(
        &service,
        &reject,
        &session,
        &[("csrf", &csrf), ("reason", "Say <b>why</b>")],
    )
    .await;
    assert_eq!(got, 303);
    let location = location.unwrap();
    assert_eq!(location, format!("/ui/tasks/{id}?did=reject&changed=true"));
    let (_, page, _) = fetch(&service, &location, Some(&session)).await;
    assert!(page.contains("Reject: done."), "{page}");
    assert!(page.contains("why"), "{page}");
    assert!(
        !page.contains("<b>why</b>"),
        "the reason, unescaped: {page}"
    );

    // The queue's page freezes and thaws a repository's merge queue, through the same path
    // as POST /repos/{repo}/merge-queue/freeze.
    let (_, page, _) = fetch(&service, "/ui/queue", Some(&session)).await;
    assert_eq!(
        page.matches("data-repo=\"acme/app\"").count(),
        1,
        "one freeze form per repository: {page}"
    );
    let freeze = "/ui/merge-queue/freeze";
    for (form, status, needle) in [
        (
            vec![("csrf", csrf.as_str()), ("repo", "acme/app")],
            400,
            "reason is required",
        ),
        (
            vec![
                ("csrf", csrf.as_str()),
                ("repo", "acme/nope"),
                ("reason", "x"),
            ],
            404,
            "not a configured project",
        ),
        (
            vec![("csrf", "0000"), ("repo", "acme/app"), ("reason", "x")],
            403,
            "csrf",
        ),
    ] {
        let (got, page, _, _) = submit(&service, freeze, &session, &form).await;
        assert_eq!(got, status, "{form:?}: {page}");
        assert!(
            page.contains(needle),
            "{form:?} should say {needle:?}: {page}"
        );
    }
    let merge_queue = || async {
        let (_, queue) = service.get("/queue").await;
        queue["merge_queues"]
            .as_array()
            .and_then(|q| q.iter().find(|r| r["repo"] == "acme/app").cloned())
            .unwrap_or_default()
    };
    assert!(merge_queue().await["frozen"].is_null(), "nothing changed");
    let (got, _, location, _) = submit(
        &service,
        freeze,
        &session,
        &[
            ("csrf", &csrf),
            ("repo", "acme/app"),
            ("reason", "release <now>"),
        ],
    )
    .await;
    assert_eq!(got, 303);
    let location = location.unwrap();
    assert_eq!(location, "/ui/queue?did=freeze&changed=true");
    assert_eq!(merge_queue().await["frozen"]["reason"], "release <now>");
    let (_, page, _) = fetch(&service, &location, Some(&session)).await;
    assert!(page.contains("freeze: done."), "{page}");
    assert!(
        page.contains("release &#60;now&#62;"),
        "the reason, escaped: {page}"
    );
    let (got, _, location, _) = submit(
        &service,
        "/ui/merge-queue/unfreeze",
        &session,
        &[("csrf", &csrf), ("repo", "acme/app")],
    )
    .await;
    assert_eq!(
        (got, location.as_deref()),
        (303, Some("/ui/queue?did=unfreeze&changed=true"))
    );
    assert!(merge_queue().await["frozen"].is_null());

    // The other pages answer, and a run's log is shown.
    for path in ["/ui/queue", "/ui/actors"] {
        let (status, page, _) = fetch(&service, path, None).await;
        assert_eq!(status, 200, "{path}: {page}");
    }
    let run = runs(&task(&service, &id).await)[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, page, _) = fetch(&service, &format!("/ui/runs/{run}/log"), None).await;
    assert_eq!(status, 200, "{page}");
    let (status, page, _) = fetch(&service, "/ui/runs/no-such-run/log", None).await;
    assert_eq!(status, 404, "{page}");
    assert!(page.contains("run no-such-run not found"), "{page}");
}

/// Logs in through the login form over plain HTTP; the session's cookie (`name=value`).
async fn session(service: &Service) -> String {
    let (_, login, cookies) = fetch(service, "/ui/login", None).await;
    let login_cookie = cookie_pair(&cookies, "orch_login");
    let (status, page, _, cookies) = submit(
        service,
        "/ui/login",
        &login_cookie,
        &[("token", TOKEN), ("csrf", &csrf_field(&login))],
    )
    .await;
    assert_eq!(status, 303, "{page}");
    cookie_pair(&cookies, "orch_session")
}

#[tokio::test]
async fn a_blocked_task_is_retried_from_its_page_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let service = start_local(dir.path(), false).await;
    let id = create(
        &service,
        "Flaky login",
        "scripted-agent: tester=FAIL,FAIL,FAIL,PASS",
        &["autoApprove"],
    )
    .await;
    reach(&service, &id, "testing", "blocked").await;
    let session = session(&service).await;
    let (_, page, _) = fetch(&service, &format!("/ui/tasks/{id}"), Some(&session)).await;
    assert!(
        page.contains("id=\"form-retry\""),
        "a blocked task offers retry: {page}"
    );
    assert!(!page.contains("id=\"form-approve\""), "{page}");
    let csrf = csrf_field(&page);
    let retry = format!("/ui/tasks/{id}/retry");
    let (status, page, _, _) = submit(
        &service,
        &retry,
        &session,
        &[("csrf", &csrf), ("reason", "x")],
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("not a reason"), "{page}");
    assert_eq!(
        task(&service, &id).await["phase"],
        "blocked",
        "nothing changed"
    );
    let note = "The login test needs the seeded admin user.";
    let (status, _, location, _) = submit(
        &service,
        &retry,
        &session,
        &[("csrf", &csrf), ("note", note)],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some(format!("/ui/tasks/{id}?did=retry&changed=true").as_str())
    );
    let done = reach(&service, &id, "done", "idle").await;
    let journal = done["transitions"].to_string();
    assert!(
        journal.contains(&format!("retried by operator: {note}")),
        "{journal}"
    );
    // Not blocked any more: a second retry is refused by name.
    let (status, page, _, _) = submit(&service, &retry, &session, &[("csrf", &csrf)]).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("is done"), "{page}");
}
