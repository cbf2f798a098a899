//! What can go wrong talking to Gitea; every variant names the operation, the request and,
//! when Gitea answered, its status and its own `message`.

use std::time::Duration;

/// A failed Gitea call.
#[derive(Debug, thiserror::Error)]
pub enum GiteaError {
    /// Gitea answered with a status the operation does not expect.
    #[error("gitea {op}: {method} {path} answered {status}: {message}")]
    Status {
        /// The client method, e.g. `merge`.
        op: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The request path, e.g. `/api/v1/repos/o/r/pulls/3/merge`.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Gitea's `message` (or the start of the body when it has none).
        message: String,
    },
    /// The request did not get an answer (connection refused, timeout, broken body).
    #[error("gitea {op}: {method} {path} failed: {source}")]
    Transport {
        /// The client method.
        op: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The request path.
        path: String,
        /// reqwest's reason.
        source: reqwest::Error,
    },
    /// Gitea answered 2xx with a body that is not the expected JSON.
    #[error("gitea {op}: {method} {path}: cannot read the answer: {source}")]
    Decode {
        /// The client method.
        op: &'static str,
        /// The HTTP method.
        method: &'static str,
        /// The request path.
        path: String,
        /// serde's reason.
        source: serde_json::Error,
    },
    /// An argument was rejected before any request was made.
    #[error("gitea: invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What the argument is, e.g. `repo`.
        what: &'static str,
        /// The argument, verbatim.
        value: String,
        /// The rule it broke.
        reason: String,
    },
    /// Every status read during a CI wait failed, so there is no verdict at all.
    #[error(
        "gitea wait_ci_green: no answer about {sha} in {repo} within {budget:?}; last error: {last}"
    )]
    NoCiAnswer {
        /// The repo.
        repo: String,
        /// The commit.
        sha: String,
        /// The wait's budget.
        budget: Duration,
        /// The last failure.
        last: Box<GiteaError>,
    },
    /// The merge was refused with a retryable answer on every attempt.
    #[error(
        "gitea merge: {repo}#{index} still not merged after {attempts} attempts; last error: {last}"
    )]
    MergeGaveUp {
        /// The repo.
        repo: String,
        /// The pull request index.
        index: u64,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: Box<GiteaError>,
    },
}

impl GiteaError {
    /// Whether trying again may help: no answer at all, or a 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            GiteaError::Transport { .. } => true,
            GiteaError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The HTTP status Gitea answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GiteaError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
