//! What the fake Gitea holds: repositories with their branches (in memory or in a real bare
//! repo), commit statuses and pull requests, and the rules Gitea applies to them (combined
//! status, branch refs), shaped into Gitea's JSON objects.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::git;
use super::wire::{self, fake_user, now_rfc3339, payload_commit, repository};

/// One commit status as posted to `POST /statuses/{sha}`.
#[derive(Clone, Debug)]
pub struct Status {
    /// Gitea's id for it.
    pub id: u64,
    /// The commit it is about.
    pub sha: String,
    /// `pending`, `success`, `error`, `failure`, `warning` or `skipped`.
    pub state: String,
    /// The CI's link.
    pub target_url: String,
    /// The CI's one-line explanation.
    pub description: String,
    /// What was checked, e.g. `ci/test`.
    pub context: String,
    /// When it was posted (RFC 3339).
    pub created_at: String,
}

/// One pull request.
#[derive(Clone, Debug)]
pub struct Pull {
    /// Gitea's global id.
    pub id: u64,
    /// The per-repo index (`number`).
    pub number: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub body: String,
    /// Head branch.
    pub head: String,
    /// Base branch.
    pub base: String,
    /// Head sha, kept current while the PR is open (Gitea updates it on push).
    pub head_sha: String,
    /// Base sha, likewise.
    pub base_sha: String,
    /// `open` or `closed`.
    pub state: String,
    /// Whether it was merged.
    pub merged: bool,
    /// The merge commit once merged.
    pub merge_commit_sha: Option<String>,
    /// When it was merged.
    pub merged_at: Option<String>,
    /// When it was closed (merged or not).
    pub closed_at: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// One repository of the fake.
#[derive(Debug)]
pub struct Repo {
    /// Gitea's repo id.
    pub id: u64,
    /// `owner/name`.
    pub full_name: String,
    /// The bare repository backing it; `None` keeps branches in [`Repo::branches`].
    pub bare: Option<PathBuf>,
    /// Branch name → sha, in memory mode only.
    pub branches: BTreeMap<String, String>,
    /// Every status posted, oldest first.
    pub statuses: Vec<Status>,
    /// Pull requests by index order.
    pub pulls: Vec<Pull>,
    /// Comments posted on issues and pull requests: (index, body), oldest first.
    pub comments: Vec<(u64, String)>,
}

impl Repo {
    /// A repo; in memory mode it starts with a `main` branch at an invented sha.
    pub fn new(id: u64, full_name: &str, bare: Option<PathBuf>) -> Repo {
        let mut branches = BTreeMap::new();
        if bare.is_none() {
            branches.insert(
                "main".to_string(),
                wire::fake_sha(&format!("{full_name}@main")),
            );
        }
        Repo {
            id,
            full_name: full_name.to_string(),
            bare,
            branches,
            statuses: Vec::new(),
            pulls: Vec::new(),
            comments: Vec::new(),
        }
    }

    /// The sha of `branch`, if it exists.
    pub fn branch_sha(&self, branch: &str) -> Option<String> {
        match &self.bare {
            Some(bare) => git::branch_sha(bare, branch),
            None => self.branches.get(branch).cloned(),
        }
    }

    /// The commit `reference` names: a branch, or (bare mode) anything git resolves, or
    /// (memory mode) a hex sha.
    pub fn resolve(&self, reference: &str) -> Option<String> {
        if let Some(sha) = self.branch_sha(reference) {
            return Some(sha);
        }
        match &self.bare {
            Some(bare) => git::resolve(bare, reference),
            None => is_hex_sha(reference).then(|| reference.to_string()),
        }
    }

    /// Points `branch` at `sha`; `false` when it already exists.
    pub fn create_branch(&mut self, branch: &str, sha: &str) -> Result<bool, String> {
        if self.branch_sha(branch).is_some() {
            return Ok(false);
        }
        match &self.bare {
            Some(bare) => {
                let out = git::run(
                    bare,
                    &["update-ref", &format!("refs/heads/{branch}"), sha, ""],
                );
                if out.ok { Ok(true) } else { Err(out.stderr) }
            }
            None => {
                self.branches.insert(branch.to_string(), sha.to_string());
                Ok(true)
            }
        }
    }

    /// Deletes `branch`; `false` when it does not exist.
    pub fn delete_branch(&mut self, branch: &str) -> Result<bool, String> {
        let Some(sha) = self.branch_sha(branch) else {
            return Ok(false);
        };
        match &self.bare {
            Some(bare) => {
                let out = git::run(
                    bare,
                    &["update-ref", "-d", &format!("refs/heads/{branch}"), &sha],
                );
                if out.ok { Ok(true) } else { Err(out.stderr) }
            }
            None => Ok(self.branches.remove(branch).is_some()),
        }
    }

    /// Gitea's `Branch` object for an existing `branch` at `sha`.
    pub fn branch_json(&self, base_url: &str, branch: &str, sha: &str) -> Value {
        let (message, timestamp) = self
            .bare
            .as_ref()
            .and_then(|bare| git::commit_info(bare, sha))
            .unwrap_or_else(|| (String::new(), now_rfc3339()));
        json!({
            "name": branch,
            "commit": payload_commit(base_url, &self.full_name, sha, &message, &timestamp),
            "protected": false,
            "required_approvals": 0,
            "enable_status_check": false,
            "status_check_contexts": [],
            "user_can_push": true,
            "user_can_merge": true,
            "effective_branch_protection_name": ""
        })
    }

    /// The newest status per context for `sha`, ordered by id, as Gitea's
    /// `GetLatestCommitStatus` picks them.
    pub fn latest_statuses(&self, sha: &str) -> Vec<&Status> {
        let mut latest: BTreeMap<&str, &Status> = BTreeMap::new();
        for status in self.statuses.iter().filter(|s| s.sha == sha) {
            latest.insert(&status.context, status);
        }
        let mut out: Vec<&Status> = latest.into_values().collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// Gitea's `CommitStatus` object; the state goes under the key `status`.
    pub fn status_json(&self, base_url: &str, status: &Status) -> Value {
        json!({
            "id": status.id,
            "status": status.state,
            "target_url": status.target_url,
            "description": status.description,
            "url": format!("{base_url}/api/v1/repos/{}/statuses/{}", self.full_name, status.sha),
            "context": status.context,
            "creator": fake_user(base_url),
            "created_at": status.created_at,
            "updated_at": status.created_at
        })
    }

    /// Gitea's `CombinedStatus` for `sha`; with no statuses, the zero value Gitea returns.
    pub fn combined_json(&self, base_url: &str, sha: &str) -> Value {
        let latest = self.latest_statuses(sha);
        if latest.is_empty() {
            return json!({
                "state": "",
                "sha": "",
                "total_count": 0,
                "statuses": null,
                "repository": null,
                "commit_url": "",
                "url": ""
            });
        }
        let states: Vec<&str> = latest.iter().map(|s| s.state.as_str()).collect();
        json!({
            "state": combine(&states),
            "sha": sha,
            "total_count": latest.len(),
            "statuses": latest.iter().map(|s| self.status_json(base_url, s)).collect::<Vec<_>>(),
            "repository": repository(base_url, &self.full_name, self.id),
            "commit_url": format!("{base_url}/api/v1/repos/{}/commits/{sha}", self.full_name),
            "url": format!("{base_url}/api/v1/repos/{}/commits/{sha}/status", self.full_name)
        })
    }

    /// The pull request with index `number`.
    pub fn pull_mut(&mut self, number: u64) -> Option<&mut Pull> {
        self.pulls.iter_mut().find(|p| p.number == number)
    }

    /// Brings open PRs' head and base shas up to date with their branches.
    pub fn refresh_pulls(&mut self) {
        let current: Vec<(Option<String>, Option<String>)> = self
            .pulls
            .iter()
            .map(|p| {
                if p.state == "open" {
                    (self.branch_sha(&p.head), self.branch_sha(&p.base))
                } else {
                    (None, None)
                }
            })
            .collect();
        for (pull, (head, base)) in self.pulls.iter_mut().zip(current) {
            if let Some(head) = head {
                pull.head_sha = head;
            }
            if let Some(base) = base {
                pull.base_sha = base;
            }
        }
    }

    /// Gitea's `PullRequest` object.
    pub fn pull_json(&self, base_url: &str, pull: &Pull) -> Value {
        let repo = repository(base_url, &self.full_name, self.id);
        let html = format!("{base_url}/{}/pulls/{}", self.full_name, pull.number);
        // Gitea points head.ref at the pull ref once the head branch is gone.
        let head_ref = if self.branch_sha(&pull.head).is_some() {
            pull.head.clone()
        } else {
            format!("refs/pull/{}/head", pull.number)
        };
        let merged_by = if pull.merged {
            fake_user(base_url)
        } else {
            Value::Null
        };
        json!({
            "id": pull.id,
            "url": html,
            "number": pull.number,
            "user": fake_user(base_url),
            "title": pull.title,
            "body": pull.body,
            "labels": [],
            "milestone": null,
            "assignee": null,
            "assignees": null,
            "requested_reviewers": null,
            "state": pull.state,
            "draft": false,
            "is_locked": false,
            "comments": 0,
            "review_comments": 0,
            "additions": 0,
            "deletions": 0,
            "changed_files": 0,
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "mergeable": pull.state == "open",
            "merged": pull.merged,
            "merged_at": pull.merged_at,
            "merged_by": merged_by,
            "merge_commit_sha": pull.merge_commit_sha,
            "allow_maintainer_edit": false,
            "base": {
                "label": pull.base,
                "ref": pull.base,
                "sha": pull.base_sha,
                "repo_id": self.id,
                "repo": repo
            },
            "head": {
                "label": pull.head,
                "ref": head_ref,
                "sha": pull.head_sha,
                "repo_id": self.id,
                "repo": repo
            },
            "merge_base": pull.base_sha,
            "due_date": null,
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "pin_order": 0
        })
    }
}

/// The states a status may carry.
pub const STATES: [&str; 6] = [
    "pending", "success", "error", "failure", "warning", "skipped",
];

/// Newer Gitea's `CommitStatusStates.Combine`: failure if any context is error or failure,
/// success if every one is success, warning or skipped (and there is one), else pending.
pub fn combine(states: &[&str]) -> &'static str {
    if states.iter().any(|s| matches!(*s, "error" | "failure")) {
        "failure"
    } else if !states.is_empty()
        && states
            .iter()
            .all(|s| matches!(*s, "success" | "warning" | "skipped"))
    {
        "success"
    } else {
        "pending"
    }
}

/// Whether `s` looks like a (possibly abbreviated) commit sha.
fn is_hex_sha(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_state_follows_newer_gitea() {
        assert_eq!(combine(&["success", "warning", "skipped"]), "success");
        assert_eq!(combine(&["success", "pending"]), "pending");
        assert_eq!(combine(&["pending", "error"]), "failure");
        assert_eq!(combine(&[]), "pending");
    }

    #[test]
    fn no_statuses_is_the_empty_combined_status() {
        let repo = Repo::new(1, "o/r", None);
        let v = repo.combined_json("http://x", "abc1234");
        assert_eq!(v["state"], "");
        assert_eq!(v["total_count"], 0);
        assert!(v["statuses"].is_null());
    }
}
