//! Gitea's webhook bodies, named by their `X-Gitea-Event` header: a commit status, a pull
//! request merged, a review, a push. Only the fields read are built.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Gitea delivery, as far as the pipeline cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GiteaDelivery {
    /// A commit status changed (`status`; no `branches` field — the sha is all there is).
    Status {
        /// `owner/name`.
        repo: String,
        /// The commit.
        sha: String,
        /// `pending`, `success`, `error`, `failure`, `warning`.
        state: String,
        /// The status context, e.g. `ci/build`.
        context: String,
    },
    /// A pull request was closed as merged.
    Merged {
        /// `owner/name`.
        repo: String,
        /// The PR number.
        number: i64,
        /// Its head branch.
        head: String,
        /// The branch it was merged into (`None` when the payload does not say).
        base: Option<String>,
        /// The merge commit.
        sha: String,
        /// Who merged it.
        by: String,
    },
    /// A review approved or requested changes.
    Review {
        /// `owner/name`.
        repo: String,
        /// The PR number.
        number: i64,
        /// Its head branch.
        head: String,
        /// Approved (else changes requested).
        approved: bool,
        /// The review's text.
        content: String,
        /// The reviewer.
        by: String,
    },
    /// A branch was pushed.
    Push {
        /// `owner/name`.
        repo: String,
        /// The branch (`refs/heads/` stripped); `None` for tags.
        branch: Option<String>,
        /// The new head.
        after: String,
    },
    /// Anything else.
    Other {
        /// What it was.
        kind: String,
        /// `owner/name`, when the payload has one.
        repo: Option<String>,
    },
}

impl GiteaDelivery {
    /// The repository it concerns.
    pub fn repo(&self) -> Option<&str> {
        match self {
            GiteaDelivery::Status { repo, .. }
            | GiteaDelivery::Merged { repo, .. }
            | GiteaDelivery::Review { repo, .. }
            | GiteaDelivery::Push { repo, .. } => Some(repo),
            GiteaDelivery::Other { repo, .. } => repo.as_deref(),
        }
    }

    /// The kind to journal.
    pub fn kind(&self) -> String {
        match self {
            GiteaDelivery::Status { .. } => "status".into(),
            GiteaDelivery::Merged { .. } => "pull_request.merged".into(),
            GiteaDelivery::Review { approved: true, .. } => "pull_request_approved".into(),
            GiteaDelivery::Review { .. } => "pull_request_rejected".into(),
            GiteaDelivery::Push { .. } => "push".into(),
            GiteaDelivery::Other { kind, .. } => kind.clone(),
        }
    }
}

/// Parses a Gitea body into the fields [`gitea`] reads. A delivery carries whole repository,
/// sender and commit objects (some 4 KiB); building them only to drop them was the intake's
/// largest cost, so the rest is skipped unbuilt (still checked to be JSON). A field read keeps
/// whatever JSON it holds, for [`gitea`] to judge; an object on the way to one that is not an
/// object is an error.
pub fn gitea_fields(body: &[u8]) -> Result<GiteaFields, serde_json::Error> {
    serde_json::from_slice(body)
}

/// What [`gitea`] reads of a Gitea body.
#[derive(Debug, Deserialize, Serialize)]
pub struct GiteaFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repository: Option<RepoFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sender: Option<UserFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pull_request: Option<PullFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    review: Option<ReviewFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<Value>,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    git_ref: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize)]
struct RepoFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_name: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize)]
struct UserFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize)]
struct PullFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    head: Option<HeadFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base: Option<HeadFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merged: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merge_commit_sha: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merged_by: Option<UserFields>,
}

#[derive(Debug, Deserialize, Serialize)]
struct HeadFields {
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    git_ref: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<Value>,
}

#[derive(Debug, Deserialize, Serialize)]
struct ReviewFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<Value>,
}

/// The string a field read holds; `None` when it is missing or holds anything else.
fn text(field: &Option<Value>) -> Option<&str> {
    field.as_ref().and_then(Value::as_str)
}

/// The string field `path` holds, else an error naming it.
fn required_text<'a>(field: &'a Option<Value>, path: &str) -> Result<&'a str, String> {
    text(field).ok_or_else(|| format!("{path} is missing or not a string"))
}

/// Reads a Gitea webhook body of event `event` (the `X-Gitea-Event` header), as
/// [`gitea_fields`] parsed it.
pub fn gitea(event: &str, body: &GiteaFields) -> Result<GiteaDelivery, String> {
    let repo = body
        .repository
        .as_ref()
        .and_then(|r| text(&r.full_name))
        .map(str::to_string);
    let need_repo = || repo.clone().ok_or("repository.full_name is missing");
    let login = |user: &Option<UserFields>| {
        user.as_ref()
            .and_then(|u| text(&u.login).or_else(|| text(&u.username)))
            .map(str::to_string)
    };
    let sender = || login(&body.sender).unwrap_or_else(|| "someone".to_string());
    let pull = body.pull_request.as_ref();
    let head = || -> Result<String, String> {
        pull.and_then(|p| p.head.as_ref())
            .and_then(|h| text(&h.git_ref).or_else(|| text(&h.label)))
            .map(str::to_string)
            .ok_or_else(|| "pull_request.head.ref is missing".into())
    };
    let number = || -> Result<i64, String> {
        body.number
            .as_ref()
            .or_else(|| pull.and_then(|p| p.number.as_ref()))
            .and_then(Value::as_i64)
            .ok_or_else(|| "number is missing".into())
    };
    let action = text(&body.action);
    Ok(match event {
        "status" => GiteaDelivery::Status {
            repo: need_repo()?,
            sha: required_text(&body.sha, "sha")?.to_string(),
            state: required_text(&body.state, "state")?.to_string(),
            context: text(&body.context).unwrap_or("").to_string(),
        },
        "pull_request"
            if action == Some("closed")
                && pull
                    .and_then(|p| p.merged.as_ref())
                    .and_then(Value::as_bool)
                    == Some(true) =>
        {
            GiteaDelivery::Merged {
                repo: need_repo()?,
                number: number()?,
                head: head()?,
                base: pull
                    .and_then(|p| p.base.as_ref())
                    .and_then(|b| text(&b.git_ref).or_else(|| text(&b.label)))
                    .map(str::to_string),
                sha: pull
                    .and_then(|p| text(&p.merge_commit_sha))
                    .unwrap_or("")
                    .to_string(),
                by: pull
                    .and_then(|p| login(&p.merged_by))
                    .unwrap_or_else(sender),
            }
        }
        "pull_request_approved" | "pull_request_rejected" => GiteaDelivery::Review {
            repo: need_repo()?,
            number: number()?,
            head: head()?,
            approved: event == "pull_request_approved",
            content: body
                .review
                .as_ref()
                .and_then(|r| text(&r.content))
                .unwrap_or("")
                .to_string(),
            by: sender(),
        },
        "push" => GiteaDelivery::Push {
            repo: need_repo()?,
            branch: required_text(&body.git_ref, "ref")?
                .strip_prefix("refs/heads/")
                .map(str::to_string),
            after: required_text(&body.after, "after")?.to_string(),
        },
        other => GiteaDelivery::Other {
            kind: match action {
                Some(action) => format!("{other}.{action}"),
                None => other.to_string(),
            },
            repo,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gitea_events_are_read_by_their_header_name() {
        let repo = json!({"full_name": "acme/app"});
        let status = json!({"sha": "abc", "state": "success", "context": "ci/build",
                            "repository": repo, "sender": {"login": "ci"}});
        assert_eq!(
            read("status", &status).unwrap(),
            GiteaDelivery::Status {
                repo: "acme/app".into(),
                sha: "abc".into(),
                state: "success".into(),
                context: "ci/build".into()
            }
        );
        let merged = json!({"action": "closed", "number": 3, "repository": repo,
            "pull_request": {"merged": true, "merge_commit_sha": "m1",
                             "head": {"ref": "feature/A-1-x", "label": "feature/A-1-x"},
                             "merged_by": {"login": "bob"}}});
        assert_eq!(
            read("pull_request", &merged).unwrap().kind(),
            "pull_request.merged"
        );
        // The base it was merged into is read (and its absence is not taken for main).
        let GiteaDelivery::Merged { base, .. } = read("pull_request", &merged).unwrap() else {
            panic!()
        };
        assert_eq!(base, None);
        let mut into_release = merged.clone();
        into_release["pull_request"]["base"] =
            json!({"ref": "release/1.x", "label": "release/1.x"});
        let GiteaDelivery::Merged { base, .. } = read("pull_request", &into_release).unwrap()
        else {
            panic!()
        };
        assert_eq!(base.as_deref(), Some("release/1.x"));
        let mut closed = merged.clone();
        closed["pull_request"]["merged"] = json!(false);
        assert_eq!(
            read("pull_request", &closed).unwrap().kind(),
            "pull_request.closed"
        );
        let review = json!({"action": "reviewed", "number": 3, "repository": repo,
            "pull_request": {"head": {"ref": "feature/A-1-x"}}, "sender": {"login": "rev"},
            "review": {"type": "pull_request_review_rejected", "content": "fix it"}});
        let GiteaDelivery::Review {
            approved,
            content,
            by,
            ..
        } = read("pull_request_rejected", &review).unwrap()
        else {
            panic!()
        };
        assert!(!approved);
        assert_eq!((content.as_str(), by.as_str()), ("fix it", "rev"));
        let push = json!({"ref": "refs/heads/feature/A-1-x", "after": "s2", "repository": repo});
        assert_eq!(
            read("push", &push).unwrap(),
            GiteaDelivery::Push {
                repo: "acme/app".into(),
                branch: Some("feature/A-1-x".into()),
                after: "s2".into()
            }
        );
        assert!(
            read("status", &json!({"sha": "x"}))
                .unwrap_err()
                .contains("repository")
        );
    }

    /// Reads `body` as the intake does.
    fn read(event: &str, body: &Value) -> Result<GiteaDelivery, String> {
        gitea(
            event,
            &gitea_fields(&serde_json::to_vec(body).unwrap()).unwrap(),
        )
    }

    #[test]
    fn only_the_fields_read_are_kept_and_the_rest_must_still_be_json() {
        let body = br#"{"sha": "s1", "state": "success", "context": "ci",
            "repository": {"id": 1, "full_name": "acme/app", "owner": {"login": "acme"},
                           "topics": ["a", {"b": [1.5, null]}]},
            "sender": {"login": "ci", "avatar_url": "x"}, "commit": {"id": "s1"}}"#;
        let kept = |body: &[u8]| serde_json::to_value(gitea_fields(body).unwrap()).unwrap();
        assert_eq!(
            kept(body),
            json!({"sha": "s1", "state": "success", "context": "ci",
                   "repository": {"full_name": "acme/app"}, "sender": {"login": "ci"}})
        );
        // A field read keeps whatever it holds, for `gitea` to refuse.
        assert_eq!(kept(br#"{"number": "7"}"#), json!({"number": "7"}));
        assert_eq!(
            read(
                "pull_request_approved",
                &json!({"number": "7", "repository": {"full_name": "a/b"}})
            ),
            Err("number is missing".to_string())
        );
        let syntax = gitea_fields(br#"{"sha": "s1", "commit": {"id": }"#).unwrap_err();
        assert!(syntax.is_syntax(), "{syntax}");
        let shape = gitea_fields(br#"{"repository": "acme/app"}"#).unwrap_err();
        assert!(shape.is_data(), "{shape}");
    }
}
