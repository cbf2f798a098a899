//! Pull request calls: open one idempotently, read and list them, and merge with the retries
//! Gitea's transient refusals call for (405 while mergeability is checked, 5xx, no answer),
//! telling a real conflict (409) and an earlier merge apart from failure.

use reqwest::Method;
use serde_json::json;

use super::branches::check_branch;
use super::{Call, GiteaClient, GiteaError, MergeOptions, MergeOutcome, PullRequest, status_error};

/// The page size used when listing; Gitea's default maximum.
const PAGE_LIMIT: usize = 50;

/// Gitea's 405 message for a PR that was merged already.
const ALREADY_MERGED: &str = "already merged";

impl GiteaClient {
    /// Opens a PR from `head` into `base`, or finds the open one Gitea says already exists
    /// (409), so repeating the call is harmless. Returns the PR and whether it was created.
    pub async fn ensure_open_pr(
        &self,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<(PullRequest, bool), GiteaError> {
        check_branch(head)?;
        check_branch(base)?;
        let call = Call {
            op: "ensure_open_pr",
            method: Method::POST,
            segments: &["pulls"],
            query: &[],
        };
        let request = json!({ "head": head, "base": base, "title": title, "body": body });
        let (answer, path) = self.send(repo, &call, Some(&request)).await?;
        match answer.status {
            201 => serde_json::from_str(&answer.body)
                .map(|pr| (pr, true))
                .map_err(|source| GiteaError::Decode {
                    op: call.op,
                    method: "POST",
                    path,
                    source,
                }),
            409 => Ok((self.pull_by_branches(repo, base, head).await?, false)),
            _ => Err(status_error(&call, path, &answer)),
        }
    }

    /// The PR from `head` into `base` (`GET /pulls/{base}/{head}`).
    pub async fn pull_by_branches(
        &self,
        repo: &str,
        base: &str,
        head: &str,
    ) -> Result<PullRequest, GiteaError> {
        check_branch(head)?;
        // The route is `pulls/{base}/*`: the head keeps its slashes raw.
        let mut segments = vec!["pulls", base];
        segments.extend(head.split('/'));
        let call = Call {
            op: "pull_by_branches",
            method: Method::GET,
            segments: &segments,
            query: &[],
        };
        self.json(repo, &call, None::<&()>, &[200]).await
    }

    /// Closes PR `index` (Gitea answers 201 for an edit).
    pub async fn close_pull(&self, repo: &str, index: u64) -> Result<(), GiteaError> {
        let index = index.to_string();
        let call = Call {
            op: "close_pull",
            method: Method::PATCH,
            segments: &["pulls", &index],
            query: &[],
        };
        let body = serde_json::json!({ "state": "closed" });
        let _: PullRequest = self.json(repo, &call, Some(&body), &[200, 201]).await?;
        Ok(())
    }

    /// Comments `text` on issue or PR `index`.
    pub async fn comment(&self, repo: &str, index: u64, text: &str) -> Result<(), GiteaError> {
        let index = index.to_string();
        let call = Call {
            op: "comment",
            method: Method::POST,
            segments: &["issues", &index, "comments"],
            query: &[],
        };
        let body = serde_json::json!({ "body": text });
        let _: serde_json::Value = self.json(repo, &call, Some(&body), &[201]).await?;
        Ok(())
    }

    /// PR number `index`.
    pub async fn pull_request(&self, repo: &str, index: u64) -> Result<PullRequest, GiteaError> {
        let index = index.to_string();
        let call = Call {
            op: "pull_request",
            method: Method::GET,
            segments: &["pulls", &index],
            query: &[],
        };
        self.json(repo, &call, None::<&()>, &[200]).await
    }

    /// Every open PR, reading page after page until a short one.
    pub async fn open_pulls(&self, repo: &str) -> Result<Vec<PullRequest>, GiteaError> {
        let mut all = Vec::new();
        for page in 1.. {
            let query = [
                ("state", "open".to_string()),
                ("page", page.to_string()),
                ("limit", PAGE_LIMIT.to_string()),
            ];
            let call = Call {
                op: "open_pulls",
                method: Method::GET,
                segments: &["pulls"],
                query: &query,
            };
            let batch: Vec<PullRequest> = self.json(repo, &call, None::<&()>, &[200]).await?;
            let done = batch.len() < PAGE_LIMIT;
            all.extend(batch);
            if done {
                break;
            }
        }
        Ok(all)
    }

    /// The open PR whose head is at `sha`; a status webhook names only the sha, so this is
    /// how it finds its PR.
    pub async fn find_open_pr_by_sha(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Option<PullRequest>, GiteaError> {
        Ok(self
            .open_pulls(repo)
            .await?
            .into_iter()
            .find(|pr| pr.head.sha.eq_ignore_ascii_case(sha)))
    }

    /// Merges PR `index` as `options` say. 200 (whose body is empty) is [`MergeOutcome::Merged`];
    /// 409 is a terminal [`MergeOutcome::Conflict`]; a 405 saying "already merged" — or any
    /// 405 after which the PR reads as merged — is [`MergeOutcome::AlreadyMerged`]; other 405s,
    /// 5xx and no answer are retried with the client's [`RetryPolicy`](super::RetryPolicy).
    pub async fn merge(
        &self,
        repo: &str,
        index: u64,
        options: &MergeOptions,
    ) -> Result<MergeOutcome, GiteaError> {
        let index_text = index.to_string();
        let call = Call {
            op: "merge",
            method: Method::POST,
            segments: &["pulls", &index_text, "merge"],
            query: &[],
        };
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = match self.send(repo, &call, Some(options)).await {
                Ok((answer, path)) => match answer.status {
                    200..=299 => return Ok(MergeOutcome::Merged),
                    409 => {
                        return Ok(MergeOutcome::Conflict {
                            message: super::gitea_message(&answer.body),
                        });
                    }
                    405 => {
                        let error = status_error(&call, path, &answer);
                        if super::gitea_message(&answer.body)
                            .to_ascii_lowercase()
                            .contains(ALREADY_MERGED)
                            || self.is_merged(repo, index).await
                        {
                            return Ok(MergeOutcome::AlreadyMerged);
                        }
                        error
                    }
                    status if status >= 500 => status_error(&call, path, &answer),
                    _ => return Err(status_error(&call, path, &answer)),
                },
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            if attempt >= attempts {
                return Err(GiteaError::MergeGaveUp {
                    repo: repo.to_string(),
                    index,
                    attempts,
                    last: Box::new(last),
                });
            }
            tokio::time::sleep(self.retry.delay(attempt)).await;
        }
    }

    /// Whether PR `index` reads as merged; a failed read counts as not merged, so the merge
    /// is retried rather than wrongly reported done. Needed because some Gitea versions send
    /// the "already merged" 405 with an empty message.
    async fn is_merged(&self, repo: &str, index: u64) -> bool {
        self.pull_request(repo, index)
            .await
            .is_ok_and(|pr| pr.merged)
    }
}
