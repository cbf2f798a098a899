//! The projects the orchestrator works on, from `ORCH_PROJECTS_JSON`:
//! `[{"repo","origin","prefix","test_cmd","staging","confirm_deploy","plane_project_id",
//! "gitea_repo","plane_states"}]`. Validated up front; an error names the entry and the field.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One project.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Repository name tasks refer to, e.g. `acme/app`.
    pub repo: String,
    /// Where it is pushed and merged: a bare repository path or a git URL.
    pub origin: String,
    /// Prefix of the work-item ids of its tasks (`ACME` → `ACME-001`).
    pub prefix: String,
    /// The command CI runs at the branch head (split into argv, never run by a shell).
    pub test_cmd: String,
    /// The project has a staging stand.
    #[serde(default)]
    pub staging: bool,
    /// A production deploy waits for an explicit confirm-deploy.
    #[serde(default)]
    pub confirm_deploy: bool,
    /// The Plane project its tasks come from; without one it uses the local tracker.
    #[serde(default)]
    pub plane_project_id: Option<String>,
    /// The Gitea repository (`owner/name`) its pull requests, CI and merges go through;
    /// without one it uses the local forge.
    #[serde(default)]
    pub gitea_repo: Option<String>,
    /// Status names of this project's Plane board that differ from the defaults, by logical
    /// key (`approved`, `confirm_deploy`, `development`, …).
    #[serde(default)]
    pub plane_states: BTreeMap<String, String>,
}

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
pub fn parse(json: &str) -> Result<Vec<Project>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
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
        for (key, name) in &p.plane_states {
            if !crate::board::STATUS_KEYS.contains(&key.as_str()) {
                return Err(at(
                    "plane_states",
                    &format!(
                        "has an unknown key {key:?} (expected one of: {})",
                        crate::board::STATUS_KEYS.join(", ")
                    ),
                ));
            }
            if name.trim().is_empty() {
                return Err(at(
                    "plane_states",
                    &format!("maps {key:?} to an empty name"),
                ));
            }
        }
        if p.plane_project_id.is_some()
            && projects[..i]
                .iter()
                .any(|q| q.plane_project_id == p.plane_project_id)
        {
            return Err(at("plane_project_id", "is used by another project"));
        }
        if p.gitea_repo.is_some() && projects[..i].iter().any(|q| q.gitea_repo == p.gitea_repo) {
            return Err(at("gitea_repo", "is used by another project"));
        }
        if projects[..i].iter().any(|q| q.repo == p.repo) {
            return Err(at("repo", "is listed twice"));
        }
        if projects[..i].iter().any(|q| q.prefix == p.prefix) {
            return Err(at("prefix", "is used by another project"));
        }
    }
    Ok(projects)
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
        assert!(!projects[0].staging && !projects[0].confirm_deploy);
        assert!(projects[1].staging && projects[1].confirm_deploy);
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
