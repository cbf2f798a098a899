//! The project registry: the one list of projects the orchestrator works on, shared (behind
//! an `Arc`) by everyone who needs it — task actors for their [`ProjectRules`], the creation
//! rule for a project's prefix and tracker, the forge, the board and the webhook intake for
//! the rest. The service reads it from its configuration and checks every field there; the
//! registry itself guarantees that repos, prefixes, Plane projects and Gitea repos are unique.

use std::collections::HashMap;

use serde::Deserialize;

use crate::domain::statuses::StatusNames;
use crate::domain::task_machine::ProjectRules;

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
    /// The project deploys (default): a green merge candidate goes through the deploy
    /// stages before `main` is fast-forwarded to it. Without, it is fast-forwarded at once.
    #[serde(default = "Project::deploys_by_default")]
    pub deploy: bool,
    /// The Plane project its tasks come from; without one it uses the local tracker.
    #[serde(default)]
    pub plane_project_id: Option<String>,
    /// The Gitea repository (`owner/name`) its pull requests, CI and merges go through;
    /// without one it uses the local forge.
    #[serde(default)]
    pub gitea_repo: Option<String>,
    /// Status names of this project's Plane board that differ from the defaults.
    #[serde(default)]
    pub plane_states: StatusNames,
    /// Files every change only appends to (gitattributes patterns, default `CHANGELOG.md`):
    /// the orchestrator's clone merges them with git's `union` driver, so two tasks that each
    /// add an entry never conflict there. The user's repository is not touched.
    #[serde(default = "Project::default_append_only")]
    pub append_only: Vec<String>,
}

impl Project {
    /// The append-only files of a project that names none: `CHANGELOG.md`.
    pub fn default_append_only() -> Vec<String> {
        vec!["CHANGELOG.md".to_string()]
    }

    /// A project deploys unless it says otherwise.
    pub fn deploys_by_default() -> bool {
        true
    }

    /// The rules that change how its tasks flow.
    pub fn rules(&self) -> ProjectRules {
        ProjectRules {
            has_staging: self.staging,
            confirm_deploy: self.confirm_deploy,
            skip_deploy: !self.deploy,
            ..ProjectRules::default()
        }
    }
}

/// Why a list of projects cannot be a registry: the entry (1-based) and the field that
/// clashes with an earlier entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("project #{entry} ({repo:?}): {field} {why}")]
pub struct RegistryError {
    /// The entry's position in the list, from 1.
    pub entry: usize,
    /// Its repo.
    pub repo: String,
    /// The field that clashes.
    pub field: &'static str,
    /// How.
    pub why: &'static str,
}

/// Every configured project, indexed by repo, Plane project and Gitea repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Projects {
    /// The projects, in configuration order.
    list: Vec<Project>,
    /// Position in `list` by repo.
    by_repo: HashMap<String, usize>,
    /// Position in `list` by Plane project id.
    by_plane: HashMap<String, usize>,
    /// Position in `list` by Gitea repository.
    by_gitea: HashMap<String, usize>,
}

impl Projects {
    /// The registry of `list`; refused when two projects share a repo, a prefix, a Plane
    /// project or a Gitea repository.
    pub fn new(list: Vec<Project>) -> Result<Self, RegistryError> {
        let mut registry = Self::default();
        let mut prefixes = HashMap::new();
        for (i, p) in list.iter().enumerate() {
            let clash = |field, why| RegistryError {
                entry: i + 1,
                repo: p.repo.clone(),
                field,
                why,
            };
            if let Some(id) = &p.plane_project_id
                && registry.by_plane.insert(id.clone(), i).is_some()
            {
                return Err(clash("plane_project_id", "is used by another project"));
            }
            if let Some(repo) = &p.gitea_repo
                && registry.by_gitea.insert(repo.clone(), i).is_some()
            {
                return Err(clash("gitea_repo", "is used by another project"));
            }
            if registry.by_repo.insert(p.repo.clone(), i).is_some() {
                return Err(clash("repo", "is listed twice"));
            }
            if prefixes.insert(p.prefix.as_str(), i).is_some() {
                return Err(clash("prefix", "is used by another project"));
            }
        }
        registry.list = list;
        Ok(registry)
    }

    /// The project of `repo`.
    pub fn get(&self, repo: &str) -> Option<&Project> {
        self.by_repo.get(repo).map(|&i| &self.list[i])
    }

    /// The project whose tasks come from Plane project `id`.
    pub fn by_plane(&self, id: &str) -> Option<&Project> {
        self.by_plane.get(id).map(|&i| &self.list[i])
    }

    /// The project whose forge is Gitea repository `repo`.
    pub fn by_gitea(&self, repo: &str) -> Option<&Project> {
        self.by_gitea.get(repo).map(|&i| &self.list[i])
    }

    /// The rules of the project that owns `repo`; `None` for a repo nobody configured.
    pub fn rules(&self, repo: &str) -> Option<ProjectRules> {
        self.get(repo).map(Project::rules)
    }

    /// Every project, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Project> {
        self.list.iter()
    }

    /// How many projects there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The configured repos, for a message about one that is not: `a/b, c/d`, or a hint
    /// when there are none.
    pub fn configured(&self) -> String {
        if self.list.is_empty() {
            "none; set ORCH_PROJECTS_JSON".to_string()
        } else {
            let repos: Vec<&str> = self.list.iter().map(|p| p.repo.as_str()).collect();
            repos.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(repo: &str, prefix: &str) -> Project {
        Project {
            repo: repo.into(),
            origin: "o".into(),
            prefix: prefix.into(),
            test_cmd: "t".into(),
            staging: false,
            confirm_deploy: true,
            deploy: true,
            plane_project_id: None,
            gitea_repo: None,
            plane_states: StatusNames::default(),
            append_only: Project::default_append_only(),
        }
    }

    #[test]
    fn a_project_is_found_by_each_of_its_keys() {
        let mut web = project("acme/web", "WEB");
        web.plane_project_id = Some("p-1".into());
        web.gitea_repo = Some("acme/web-git".into());
        let projects = Projects::new(vec![project("acme/app", "ACME"), web]).unwrap();
        assert_eq!(projects.get("acme/app").unwrap().prefix, "ACME");
        assert_eq!(projects.by_plane("p-1").unwrap().repo, "acme/web");
        assert_eq!(projects.by_gitea("acme/web-git").unwrap().repo, "acme/web");
        assert_eq!(
            projects.rules("acme/web"),
            Some(ProjectRules {
                has_staging: false,
                confirm_deploy: true,
                ..ProjectRules::default()
            })
        );
        assert!(projects.get("acme/nope").is_none() && projects.by_plane("p-2").is_none());
        assert_eq!(projects.configured(), "acme/app, acme/web");
        assert_eq!(
            Projects::default().configured(),
            "none; set ORCH_PROJECTS_JSON"
        );
    }

    #[test]
    fn a_clash_names_the_entry_and_the_field() {
        let mut gitea = project("a/c", "C");
        gitea.gitea_repo = Some("g/x".into());
        for (second, needle) in [
            (
                project("a/c", "A"),
                "project #2 (\"a/c\"): prefix is used by another project",
            ),
            (
                project("a/b", "B"),
                "project #2 (\"a/b\"): repo is listed twice",
            ),
        ] {
            let err = Projects::new(vec![project("a/b", "A"), second]).unwrap_err();
            assert_eq!(err.to_string(), needle);
        }
        let mut again = project("a/d", "D");
        again.gitea_repo = Some("g/x".into());
        let err = Projects::new(vec![gitea, again]).unwrap_err();
        assert_eq!(err.field, "gitea_repo");
    }
}
