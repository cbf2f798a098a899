//! The container's build steps, checked as far as a machine without a Docker daemon allows:
//! the Dockerfile is read instruction by instruction (known instructions, JSON-form entry
//! point, stages that exist, the pinned Claude Code CLI and git installed, the CLI's version
//! the one CI tests against), and the compose file is read as YAML (a production service and
//! a `staging` profile with its own data volume and env file). `.ci/run` also runs
//! `hadolint` when it is installed.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Dockerfile's instructions: `(KEYWORD, arguments)`, continuation lines joined,
/// comments and blank lines dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let (body, more) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        current.push_str(body);
        current.push(' ');
        if !more {
            let (keyword, args) = current
                .trim()
                .split_once(' ')
                .unwrap_or((current.trim(), ""));
            out.push((keyword.to_string(), args.trim().to_string()));
            current.clear();
        }
    }
    assert!(
        current.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    out
}

/// The version CI installs (`claude_version=…` in `.ci/run`).
fn ci_claude_version() -> String {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    ci.lines()
        .find_map(|l| l.trim().strip_prefix("claude_version="))
        .expect(".ci/run pins claude_version")
        .to_string()
}

#[test]
fn the_dockerfile_builds_the_service_beside_the_pinned_cli_and_git() {
    let text = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let steps = instructions(&text);
    let known: BTreeSet<&str> = [
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    ]
    .into();
    for (keyword, args) in &steps {
        assert!(
            known.contains(keyword.as_str()),
            "unknown instruction {keyword} {args}"
        );
    }
    let stages: Vec<&str> = steps
        .iter()
        .filter(|(k, _)| k == "FROM")
        .filter_map(|(_, a)| a.split_once(" AS ").map(|(_, name)| name.trim()))
        .collect();
    for (_, args) in steps.iter().filter(|(k, _)| k == "COPY") {
        if let Some(from) = args.strip_prefix("--from=") {
            let stage = from.split_whitespace().next().unwrap();
            assert!(
                stages.contains(&stage),
                "COPY --from={stage}: no such stage"
            );
        }
    }
    let last_from = steps.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let runtime = &steps[last_from..];
    let runs: String = runtime
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, a)| a.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let version = ci_claude_version();
    assert!(
        runtime
            .iter()
            .any(|(k, a)| k == "ARG" && *a == format!("CLAUDE_CODE_VERSION={version}")),
        "the image pins Claude Code {version}, as CI does"
    );
    assert!(
        runs.contains("@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}"),
        "{runs}"
    );
    assert!(
        runs.contains("claude --version"),
        "the build proves the CLI runs: {runs}"
    );
    for package in ["git", "ca-certificates", "tini"] {
        assert!(
            runs.split_whitespace().any(|w| w == package),
            "{package} is installed: {runs}"
        );
    }
    let env: String = runtime
        .iter()
        .filter(|(k, _)| k == "ENV")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(env.contains("ORCH_CLAUDE_BIN=claude"), "{env}");
    assert!(
        !env.contains("API_KEY"),
        "no credentials in the image: {env}"
    );
    for keyword in ["ENTRYPOINT", "CMD"] {
        let (_, args) = runtime.iter().rfind(|(k, _)| k == keyword).unwrap();
        let argv: Vec<String> = serde_json::from_str(args)
            .unwrap_or_else(|e| panic!("{keyword} is a JSON array (exec form): {e}"));
        assert!(!argv.is_empty());
    }
    let (_, entry) = runtime.iter().rfind(|(k, _)| k == "ENTRYPOINT").unwrap();
    assert!(
        entry.contains("tini"),
        "an init reaps the agents' leftovers: {entry}"
    );
}

#[test]
fn compose_runs_production_and_a_staging_profile_on_its_own_data() {
    let text = std::fs::read_to_string(root().join("docker/compose.yaml")).unwrap();
    let compose: Value = serde_yaml::from_str(&text).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let prod = &compose["services"]["orchestrator"];
    let staging = &compose["services"]["orchestrator-staging"];
    assert_eq!(services.len(), 2);
    assert!(prod["profiles"].is_null(), "production starts by default");
    assert_eq!(staging["profiles"][0], "staging");
    let volume = |s: &Value| {
        s["volumes"][0]
            .as_str()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(volume(prod), volume(staging), "staging has its own data");
    for v in [volume(prod), volume(staging)] {
        assert!(
            compose["volumes"].get(&v).is_some(),
            "volume {v} is declared"
        );
    }
    let env_file = |s: &Value| s["env_file"][0]["path"].as_str().unwrap().to_string();
    assert_eq!(env_file(prod), "../.env");
    assert_eq!(env_file(staging), "../.env.staging");
    assert_ne!(prod["ports"][0], staging["ports"][0]);
    assert_eq!(prod["build"]["dockerfile"], "docker/Dockerfile");
    // Where the credentials go is written down where the file is read.
    assert!(
        text.contains("ANTHROPIC_API_KEY"),
        "the comment names the agents' key"
    );
}

#[test]
fn the_reader_joins_continued_lines_and_skips_comments() {
    let steps = instructions("# c\nFROM a AS b\nRUN x \\\n && y\n\nCMD [\"z\"]\n");
    assert_eq!(
        steps,
        vec![
            ("FROM".to_string(), "a AS b".to_string()),
            ("RUN".to_string(), "x  && y".to_string()),
            ("CMD".to_string(), "[\"z\"]".to_string()),
        ]
    );
}
