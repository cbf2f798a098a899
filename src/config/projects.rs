//! The projects the orchestrator works on, from `ORCH_PROJECTS_JSON`:
//! `[{"repo","origin","prefix","test_cmd","staging","confirm_deploy","plane_project_id",
//! "gitea_repo","plane_states","append_only","budget_usd"}]`, read into the one [`Projects`]
//! registry (a domain type of the actors crate). Validated up front; an error names the
//! entry and the field.

use orchestrator_actors::domain::statuses::STATUS_KEYS;

pub use orchestrator_actors::domain::projects::{Project, Projects};

/// Whether `name` looks like `owner/name` (letters, digits, `-`, `_`, `.`; no part starting
/// with `.` or `-`).
pub fn is_repo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.split('/').count() == 2
        && name.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && !part.starts_with('-')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// Parses and validates the JSON list; `Err` is the reason, without the key's name.
pub fn parse(json: &str) -> Result<Projects, String> {
    if json.trim().is_empty() {
        return Ok(Projects::default());
    }
    let projects: Vec<Project> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON list of projects: {e}"))?;
    for (i, p) in projects.iter().enumerate() {
        let at =
            |field: &str, why: &str| format!("project #{} ({:?}): {field} {why}", i + 1, p.repo);
        let repo_ok = !p.repo.is_empty()
            && p.repo.len() <= 100
            && p.repo.split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && !part.starts_with('-')
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        if !repo_ok {
            return Err(at(
                "repo",
                "must look like owner/name (letters, digits, '-', '_', '.')",
            ));
        }
        let prefix_ok = (1..=10).contains(&p.prefix.len())
            && p.prefix.as_bytes()[0].is_ascii_uppercase()
            && p.prefix
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !prefix_ok {
            return Err(at(
                "prefix",
                "must be 1-10 upper-case letters or digits, starting with a letter",
            ));
        }
        if p.origin.trim().is_empty() || p.origin.starts_with('-') {
            return Err(at("origin", "must be a repository path or URL"));
        }
        match shell_words::split(&p.test_cmd) {
            Ok(argv) if !argv.is_empty() => {}
            _ => {
                return Err(at(
                    "test_cmd",
                    "must be a command line, e.g. \"cargo test\"",
                ));
            }
        }
        if let Some(id) = &p.plane_project_id
            && (id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(at(
                "plane_project_id",
                "must be a Plane project id (a UUID)",
            ));
        }
        if let Some(gitea) = &p.gitea_repo
            && !is_repo_name(gitea)
        {
            return Err(at("gitea_repo", "must look like owner/name"));
        }
        if let Some(bad) = p.append_only.iter().find(|pattern| {
            pattern.is_empty()
                || pattern.len() > 200
                || pattern.starts_with(['!', '#'])
                || pattern.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            return Err(at(
                "append_only",
                &format!(
                    "has {bad:?}: each entry must be a path or glob (gitattributes pattern) without spaces, not starting with '!' or '#'"
                ),
            ));
        }
        if let Some(key) = p.plane_states.unknown_key() {
            return Err(at(
                "plane_states",
                &format!(
                    "has an unknown key {key:?} (expected one of: {})",
                    STATUS_KEYS.join(", ")
                ),
            ));
        }
        for (key, name) in p.plane_states.iter() {
            if name.trim().is_empty() {
                return Err(at(
                    "plane_states",
                    &format!("maps {key:?} to an empty name"),
                ));
            }
        }
    }
    // Each on its own: the registry refuses a repo, prefix or tracker named twice.
    Projects::new(projects).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[{"repo":"acme/app","origin":"/srv/git/app.git","prefix":"ACME","test_cmd":"sh test.sh"},
        {"repo":"acme/web","origin":"/srv/git/web.git","prefix":"WEB","test_cmd":"npm test","staging":true,"confirm_deploy":true}]"#;

    #[test]
    fn a_valid_list_parses_with_defaults() {
        let projects = parse(GOOD).unwrap();
        assert_eq!(projects.len(), 2);
        let (app, web) = (
            &projects.get("acme/app").unwrap(),
            &projects.get("acme/web").unwrap(),
        );
        assert!(!app.staging && !app.confirm_deploy);
        assert!(web.staging && web.confirm_deploy);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn each_bad_entry_is_named_with_its_field() {
        for (json, needle) in [
            (r#"{"repo":"x"}"#, "not a JSON list"),
            (
                r#"[{"repo":"../etc","origin":"o","prefix":"A","test_cmd":"t"}]"#,
                "repo must look like",
            ),
            (
                r#"[{"repo":"a/b","origin":"o","prefix":"a1","test_cmd":"t"}]"#,
                "prefix must be",
            ),
            (
                r#"[{"repo":"a/b","origin":"--upload-pack=x","prefix":"A","test_cmd":"t"}]"#,
                "origin must be",
            ),
            (
                r#"[{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"t","append_only":["CHANGE LOG.md"]}]"#,
                "append_only has",
            ),
            (
                r#"[{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"'unterminated"}]"#,
                "test_cmd must be",
            ),
            (
                r#"[{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"t","colour":"red"}]"#,
                "unknown field",
            ),
            (
                r#"[{"repo":"a/b","origin":"o","prefix":"A","test_cmd":"t"},{"repo":"a/c","origin":"o","prefix":"A","test_cmd":"t"}]"#,
                "project #2 (\"a/c\"): prefix is used",
            ),
        ] {
            let err = parse(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
