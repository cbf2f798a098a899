//! Branch calls: create a branch from a ref, delete one. Branch names go into the path with
//! their slashes raw, because Gitea routes `branches/*` as a wildcard.

use reqwest::Method;
use serde_json::json;

use super::{Call, GiteaClient, GiteaError, status_error};

impl GiteaClient {
    /// Creates branch `name` at `from_ref` (a branch, tag or sha). Gitea answers 409 when the
    /// branch exists and 404 when `from_ref` does not; both are errors naming the status.
    pub async fn create_branch(
        &self,
        repo: &str,
        name: &str,
        from_ref: &str,
    ) -> Result<(), GiteaError> {
        check_branch(name)?;
        let call = Call {
            op: "create_branch",
            method: Method::POST,
            segments: &["branches"],
            query: &[],
        };
        let body = json!({ "new_branch_name": name, "old_ref_name": from_ref });
        let (answer, path) = self.send(repo, &call, Some(&body)).await?;
        match answer.status {
            201 => Ok(()),
            _ => Err(status_error(&call, path, &answer)),
        }
    }

    /// Deletes branch `name`: `Ok(true)` when Gitea deleted it (204), `Ok(false)` when it did
    /// not exist (404), so cleanup can be repeated safely.
    pub async fn delete_branch(&self, repo: &str, name: &str) -> Result<bool, GiteaError> {
        check_branch(name)?;
        let mut segments = vec!["branches"];
        segments.extend(name.split('/'));
        let call = Call {
            op: "delete_branch",
            method: Method::DELETE,
            segments: &segments,
            query: &[],
        };
        let (answer, path) = self.send(repo, &call, None::<&()>).await?;
        match answer.status {
            204 => Ok(true),
            404 => Ok(false),
            _ => Err(status_error(&call, path, &answer)),
        }
    }
}

/// Refuses names git would refuse, or that would change the path's meaning.
pub(crate) fn check_branch(name: &str) -> Result<(), GiteaError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        Some("it has an empty path component")
    } else if name
        .split('/')
        .any(|part| part == "." || part == ".." || part.starts_with('.'))
    {
        Some("a component starts with '.'")
    } else if name
        .chars()
        .any(|c| c.is_control() || " ~^:?*[\\".contains(c))
    {
        Some("it has a character git does not allow in branch names")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(GiteaError::Invalid {
            what: "branch",
            value: name.to_string(),
            reason: reason.to_string(),
        }),
        None => Ok(()),
    }
}
