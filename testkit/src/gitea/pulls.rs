//! The fake's pull request endpoints: list, create (409 for a duplicate, 422 for head ==
//! base), look up by branches, and merge — checked in the order Gitea checks, with a real
//! `--no-ff` merge when the repo is backed by a bare git repo.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::Shared;
use super::api::{Reply, deliver_later, error, field, not_found, unprocessable};
use super::model::{Pull, Repo};
use super::webhook;
use super::wire::{self, now_rfc3339};

/// Gitea's default page size (`[api] DEFAULT_PAGING_NUM`).
const DEFAULT_LIMIT: usize = 30;

/// Gitea's largest page size (`[api] MAX_RESPONSE_ITEMS`).
const MAX_LIMIT: usize = 50;

/// The merge styles `MergePullRequestOption.Do` accepts.
const MERGE_STYLES: [&str; 6] = [
    "merge",
    "rebase",
    "rebase-merge",
    "squash",
    "fast-forward-only",
    "manually-merged",
];

/// Whether `pull` passes the list's `state` filter (default `open`).
pub(super) fn state_matches(pull: &Pull, query: &BTreeMap<String, String>) -> bool {
    match query.get("state").map_or("open", String::as_str) {
        "all" => true,
        state => pull.state == state,
    }
}

/// `GET /pulls`: newest first, paged by `page` and `limit`.
pub(super) fn list_pulls(base: &str, repo: &mut Repo, query: &BTreeMap<String, String>) -> Reply {
    repo.refresh_pulls();
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT)
        .min(MAX_LIMIT);
    let items: Vec<Value> = repo
        .pulls
        .iter()
        .rev()
        .filter(|p| state_matches(p, query))
        .skip((page - 1) * limit)
        .take(limit)
        .map(|p| repo.pull_json(base, p))
        .collect();
    (StatusCode::OK, Some(Value::Array(items)))
}

/// `POST /pulls`: 201, or 409 while an unmerged PR for the same head and base is open.
pub(super) fn create_pull(shared: &Arc<Shared>, repo: &mut Repo, body: Option<Value>) -> Reply {
    let base = shared.base_url.as_str();
    let (head, base_branch, title) = (
        field(&body, "head"),
        field(&body, "base"),
        field(&body, "title"),
    );
    if title.is_empty() {
        return unprocessable(base, "[Title]: Required");
    }
    if head == base_branch {
        return unprocessable(
            base,
            "Invalid PullRequest: There are no changes between the head and the base",
        );
    }
    let (Some(head_sha), Some(base_sha)) = (repo.branch_sha(&head), repo.branch_sha(&base_branch))
    else {
        return not_found(
            base,
            &format!("head {head:?} or base {base_branch:?} is not a branch"),
        );
    };
    if let Some(existing) = repo
        .pulls
        .iter()
        .find(|p| p.state == "open" && !p.merged && p.head == head && p.base == base_branch)
    {
        let message = format!(
            "pull request already exists for these targets [id: {}, issue_id: {}, head_repo_id: {}, base_repo_id: {}, head_branch: {head}, base_branch: {base_branch}]",
            existing.id, existing.id, repo.id, repo.id
        );
        return error(StatusCode::CONFLICT, base, &message);
    }
    let now = now_rfc3339();
    let pull = Pull {
        id: shared.id(),
        number: repo.pulls.len() as u64 + 1,
        title,
        body: field(&body, "body"),
        head,
        base: base_branch,
        head_sha,
        base_sha,
        state: "open".to_string(),
        merged: false,
        merge_commit_sha: None,
        merged_at: None,
        closed_at: None,
        created_at: now.clone(),
        updated_at: now,
    };
    let value = repo.pull_json(base, &pull);
    repo.pulls.push(pull);
    (StatusCode::CREATED, Some(value))
}

/// Runs `then` on PR `index` (with shas refreshed), or answers 404.
pub(super) fn with_pull(
    base: &str,
    repo: &mut Repo,
    index: &str,
    then: impl FnOnce(&Repo, &Pull) -> Reply,
) -> Reply {
    repo.refresh_pulls();
    let number = index.parse::<u64>().unwrap_or(0);
    match repo.pulls.iter().find(|p| p.number == number) {
        Some(pull) => then(repo, pull),
        None => not_found(base, &format!("pull request #{number} does not exist")),
    }
}

/// `GET /pulls/{base}/{head}`: the open PR between them, else the newest.
pub(super) fn pull_by_branches(
    base: &str,
    repo: &mut Repo,
    base_branch: &str,
    head: &str,
) -> Reply {
    repo.refresh_pulls();
    let mut matching: Vec<&Pull> = repo
        .pulls
        .iter()
        .filter(|p| p.base == base_branch && p.head == head)
        .collect();
    // An open one first, then the newest.
    matching.sort_by_key(|p| (p.state == "open", p.number));
    match matching.last() {
        Some(pull) => (StatusCode::OK, Some(repo.pull_json(base, pull))),
        None => not_found(
            base,
            &format!("no pull request from {head:?} into {base_branch:?}"),
        ),
    }
}

/// `POST /pulls/{index}/merge`, checked in the order of Gitea's `MergePullRequest` and
/// `CheckPullMergeable`.
pub(super) fn merge_pull(
    shared: &Arc<Shared>,
    repo: &mut Repo,
    index: &str,
    body: Option<Value>,
) -> Reply {
    let base = shared.base_url.as_str();
    let Some(body) = body.filter(Value::is_object) else {
        return unprocessable(base, "the body is not a MergePullRequestOption object");
    };
    let style = body
        .get("Do")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if style.is_empty() {
        return unprocessable(base, "[Do]: Required");
    }
    if !MERGE_STYLES.contains(&style.as_str()) {
        return unprocessable(
            base,
            &format!("[Do]: In {style:?} is not one of {MERGE_STYLES:?}"),
        );
    }
    repo.refresh_pulls();
    let number = index.parse::<u64>().unwrap_or(0);
    let Some(pull) = repo.pulls.iter().find(|p| p.number == number).cloned() else {
        return not_found(base, &format!("pull request #{number} does not exist"));
    };
    if pull.merged {
        return error(StatusCode::METHOD_NOT_ALLOWED, base, "PR already merged");
    }
    if pull.state != "open" {
        return not_found(base, &format!("pull request #{number} is closed"));
    }
    if style != "merge" && style != "fast-forward-only" {
        // The fake performs real `--no-ff` merges and fast-forwards only; other styles are
        // refused the way a repo that disallows them refuses.
        let message = format!("{style} is not allowed an allowed merge style for this repository");
        return error(StatusCode::METHOD_NOT_ALLOWED, base, &message);
    }
    let expected_head = body
        .get("head_commit_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !expected_head.is_empty() && expected_head != pull.head_sha {
        return error(StatusCode::CONFLICT, base, "head out of date");
    }
    let title = body
        .get("MergeTitleField")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let mut message = title.map_or_else(
        || {
            format!(
                "Merge pull request '{}' (#{number}) from {} into {}",
                pull.title, pull.head, pull.base
            )
        },
        str::to_string,
    );
    if let Some(extra) = body
        .get("MergeMessageField")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        message = format!("{message}\n\n{extra}");
    }
    let merged = match &repo.bare {
        Some(bare) if style == "fast-forward-only" => {
            super::git::fast_forward(bare, &pull.base, &pull.head)
        }
        Some(bare) => super::git::merge(bare, &pull.base, &pull.head, &message),
        None => Err(super::git::MergeFailure::Other(String::new())),
    };
    let merge_sha = match &repo.bare {
        Some(_) => match merged {
            Ok(sha) => sha,
            Err(super::git::MergeFailure::Diverged) => {
                // Gitea's ErrMergeDivergingFastForwardOnly: the base is not an ancestor.
                return error(
                    StatusCode::CONFLICT,
                    base,
                    "Not possible to fast-forward: the base has diverged from the head",
                );
            }
            Err(super::git::MergeFailure::Conflict { stdout, stderr }) => {
                // Gitea serialises its ErrMergeConflicts struct as the 409 body.
                let body =
                    json!({ "Style": "merge", "StdOut": stdout, "StdErr": stderr, "Err": {} });
                return (StatusCode::CONFLICT, Some(body));
            }
            Err(super::git::MergeFailure::Other(e)) => {
                return error(StatusCode::INTERNAL_SERVER_ERROR, base, &e);
            }
        },
        None => {
            let sha = wire::fake_sha(&format!(
                "merge {} {} {}",
                pull.base_sha,
                pull.head_sha,
                shared.id()
            ));
            repo.branches.insert(pull.base.clone(), sha.clone());
            sha
        }
    };
    let now = now_rfc3339();
    if let Some(stored) = repo.pull_mut(number) {
        stored.state = "closed".to_string();
        stored.merged = true;
        stored.merge_commit_sha = Some(merge_sha);
        stored.merged_at = Some(now.clone());
        stored.closed_at = Some(now.clone());
        stored.updated_at = now;
    }
    if body
        .get("delete_branch_after_merge")
        .and_then(Value::as_bool)
        == Some(true)
    {
        // Gitea answers 200 for the merge even when deleting the branch fails afterwards.
        let _ = repo.delete_branch(&pull.head);
    }
    if let Some(merged) = repo.pulls.iter().find(|p| p.number == number) {
        let payload = webhook::pull_request_payload(base, repo, merged, "closed", None);
        deliver_later(shared, "pull_request", "pull_request", payload);
    }
    (StatusCode::OK, None)
}
