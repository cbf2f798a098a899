//! CI calls: read a commit's combined status, and wait for it to turn green or red within a
//! budget. A failure is terminal at once; pending is polled; read errors are retried while
//! the budget lasts.

use std::time::Duration;

use reqwest::Method;
use tokio::time::Instant;

use super::types::CombinedStatusWire;
use super::{Call, CiState, CiVerdict, CombinedStatus, GiteaClient, GiteaError};

impl GiteaClient {
    /// The combined CI status of `reference` (a sha, or a branch without slashes). No
    /// statuses at all (Gitea's `state: ""`) reads as pending.
    pub async fn combined_status(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<CombinedStatus, GiteaError> {
        let call = Call {
            op: "combined_status",
            method: Method::GET,
            segments: &["commits", reference, "status"],
            query: &[],
        };
        let wire: CombinedStatusWire = self.json(repo, &call, None::<&()>, &[200]).await?;
        Ok(wire.into())
    }

    /// Polls the combined status of `sha` every `poll_interval` until it is green or red or
    /// `budget` has passed. A read that fails with no answer or a 5xx is retried within the
    /// budget; any other error ends the wait. If no read ever succeeded, the last error is
    /// returned inside [`GiteaError::NoCiAnswer`].
    pub async fn wait_ci_green(
        &self,
        repo: &str,
        sha: &str,
        poll_interval: Duration,
        budget: Duration,
    ) -> Result<CiVerdict, GiteaError> {
        let started = Instant::now();
        let deadline = started + budget;
        let mut answered = false;
        let mut last_error = None;
        loop {
            match self.combined_status(repo, sha).await {
                Ok(status) => {
                    answered = true;
                    match status.state {
                        CiState::Success => return Ok(green(&status)),
                        CiState::Failure => return Ok(red(&status)),
                        CiState::Pending => {}
                    }
                }
                Err(e) if e.is_transient() => last_error = Some(e),
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return match (answered, last_error) {
                    (false, Some(last)) => Err(GiteaError::NoCiAnswer {
                        repo: repo.to_string(),
                        sha: sha.to_string(),
                        budget,
                        last: Box::new(last),
                    }),
                    _ => Ok(CiVerdict::StillPending {
                        after: now - started,
                    }),
                };
            }
            tokio::time::sleep(poll_interval.min(deadline - now)).await;
        }
    }
}

fn green(status: &CombinedStatus) -> CiVerdict {
    let contexts: Vec<&str> = status.statuses.iter().map(|s| s.context.as_str()).collect();
    CiVerdict::Green {
        summary: format!("{} passed: {}", plural(contexts.len()), contexts.join(", ")),
    }
}

fn red(status: &CombinedStatus) -> CiVerdict {
    let failing: Vec<String> = status
        .statuses
        .iter()
        .filter(|s| CiState::parse(&s.status) == CiState::Failure)
        .map(|s| {
            let mut line = format!("{} is {}", s.context, s.status);
            if !s.description.is_empty() {
                line.push_str(&format!(" ({})", s.description));
            }
            if !s.target_url.is_empty() {
                line.push_str(&format!(" <{}>", s.target_url));
            }
            line
        })
        .collect();
    let details = if failing.is_empty() {
        "Gitea reports the combined state as failed".to_string()
    } else {
        failing.join("; ")
    };
    CiVerdict::Red { details }
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 context".to_string()
    } else {
        format!("{n} contexts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitea::StatusItem;

    fn item(context: &str, status: &str, description: &str) -> StatusItem {
        StatusItem {
            context: context.into(),
            status: status.into(),
            description: description.into(),
            target_url: String::new(),
        }
    }

    #[test]
    fn red_names_only_the_failing_contexts_and_why() {
        let status = CombinedStatus {
            state: CiState::Failure,
            statuses: vec![
                item("ci/lint", "success", "ok"),
                item("ci/test", "failure", "3 tests failed"),
                item("ci/build", "error", ""),
            ],
        };
        let CiVerdict::Red { details } = red(&status) else {
            panic!("not red")
        };
        assert_eq!(
            details,
            "ci/test is failure (3 tests failed); ci/build is error"
        );
    }
}
