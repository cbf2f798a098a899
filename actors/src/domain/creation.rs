//! How a task comes to be. Every task — asked for on the local tracker (`POST /tasks`) or
//! started from a tracker issue (Plane) — passes one creation rule: the same limits on its
//! title, description and labels, a repo that is a configured project taking its tasks from
//! where this one comes from, and an id allocated by its origin. [`validate`] is that rule
//! (pure); [`TaskCreator::create`] is the one way in: it applies the rule, writes the task
//! through the store and starts its actor.

use crate::WorkItemId;
use crate::domain::projects::Projects;
use crate::ports::{NewTask, NewTaskFields, StoreError, TrackerLink};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
/// Most labels on one task.
pub const MAX_LABELS: usize = 20;
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 50;

/// Where a task comes from, which decides its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The local tracker: the next number of its project's prefix (`ACME-001`, …).
    Local,
    /// An issue on a tracker: `<prefix>-<number>` after the issue's own number, linked to
    /// the issue (one task per issue, one issue per task).
    Issue {
        /// The issue.
        link: TrackerLink,
        /// Its number on the tracker (Plane's `sequence_id`).
        number: i64,
    },
}

/// A task asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRequest {
    /// The project's repository.
    pub repo: String,
    /// One line.
    pub title: String,
    /// What is wanted and why (may be empty for the local tracker).
    pub description: String,
    /// Labels (`Bug`, `autoApprove`, …).
    pub labels: Vec<String>,
    /// Where it comes from.
    pub origin: Origin,
}

/// A request the rule accepted: what the store is to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Creation {
    /// A task numbered by its project's counter.
    Numbered {
        /// The project's id prefix.
        prefix: String,
        /// The task.
        fields: NewTaskFields,
    },
    /// A task named after its issue and linked to it.
    Linked {
        /// The task.
        task: NewTask,
        /// Its issue.
        link: TrackerLink,
    },
}

/// Why a task was not created, naming the field or id at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    /// A field breaks a limit of the rule.
    #[error("{field} {reason}")]
    Invalid {
        /// The field (or the item of a list field) at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repo is not a configured project.
    #[error("unknown repo {repo:?} (configured: {configured})")]
    UnknownRepo {
        /// The repo asked for.
        repo: String,
        /// The repos there are.
        configured: String,
    },
    /// The project takes its tasks from a tracker, not from where this request came.
    #[error(
        "repo {repo:?} takes its tasks from Plane (plane_project_id is set): move an issue to a start status on its board instead"
    )]
    TrackedElsewhere {
        /// The repo asked for.
        repo: String,
    },
    /// The issue's tracker project is not the project's.
    #[error("repo {repo:?} takes no tasks from {tracker} project {project}")]
    NotItsTracker {
        /// The repo asked for.
        repo: String,
        /// The tracker of the issue.
        tracker: String,
        /// The tracker's project of the issue.
        project: String,
    },
    /// The id is taken, or the issue already has a task.
    #[error("work item id {id} is already taken ({what})")]
    Taken {
        /// The id the task would have had.
        id: WorkItemId,
        /// What the store found in its way.
        what: String,
    },
    /// The store could not write the task.
    #[error("cannot create the task: {0}")]
    Store(StoreError),
    /// The task was written but its actor did not start.
    #[error("task {id} was created but its actor did not start: {reason}")]
    NotStarted {
        /// The task.
        id: WorkItemId,
        /// Why.
        reason: String,
    },
}

/// The id of a cancelled task's restart: `ACME-7` → `ACME-7-r2`, `ACME-7-r2` → `ACME-7-r3`
/// (the attempt it is). `None` when it would not fit a work-item id.
pub fn restart_id(old: &WorkItemId) -> Option<WorkItemId> {
    let text = old.as_str();
    let (base, attempt) = match text.rsplit_once("-r") {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            match n.parse::<u32>() {
                Ok(n) if n >= 2 => (base, n + 1),
                _ => (text, 2),
            }
        }
        _ => (text, 2),
    };
    WorkItemId::parse(&format!("{base}-r{attempt}")).ok()
}

impl CreateError {
    /// Whether the request itself is at fault (a field, the repo, the origin) rather than
    /// the moment (a taken id) or the machinery (the store, the actor).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            CreateError::Invalid { .. }
                | CreateError::UnknownRepo { .. }
                | CreateError::NotItsTracker { .. }
        )
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CreateError {
    CreateError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The creation rule: `request` checked against the registry, its text tidied (the title
/// and labels trimmed), and its id decided by its origin — or the first thing wrong with it.
pub fn validate(projects: &Projects, request: TaskRequest) -> Result<Creation, CreateError> {
    let TaskRequest {
        repo,
        title,
        description,
        labels,
        origin,
    } = request;
    let Some(project) = projects.get(&repo) else {
        return Err(CreateError::UnknownRepo {
            repo,
            configured: projects.configured(),
        });
    };
    match (&origin, &project.plane_project_id) {
        (Origin::Local, Some(_)) => return Err(CreateError::TrackedElsewhere { repo }),
        (Origin::Issue { link, .. }, ours) if ours.as_deref() != Some(&link.project_ref) => {
            return Err(CreateError::NotItsTracker {
                repo,
                tracker: link.tracker.clone(),
                project: link.project_ref.clone(),
            });
        }
        _ => {}
    }
    let title = title.trim().to_string();
    if title.is_empty() {
        return Err(invalid("title", "must not be empty"));
    }
    let title_chars = title.chars().count();
    if title_chars > MAX_TITLE_CHARS {
        return Err(invalid(
            "title",
            format!("is {title_chars} characters long; at most {MAX_TITLE_CHARS} are allowed"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(invalid(
            "title",
            "must be one line without control characters",
        ));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if labels.len() > MAX_LABELS {
        return Err(invalid(
            "labels",
            format!("are {}; at most {MAX_LABELS} are allowed", labels.len()),
        ));
    }
    let labels = labels
        .into_iter()
        .map(|label| {
            let ok = !label.trim().is_empty()
                && label.chars().count() <= MAX_LABEL_CHARS
                && !label.chars().any(char::is_control);
            if ok {
                Ok(label.trim().to_string())
            } else {
                Err(invalid(
                    format!("label {label:?}"),
                    format!("must be 1-{MAX_LABEL_CHARS} characters on one line"),
                ))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match origin {
        Origin::Local => Creation::Numbered {
            prefix: project.prefix.clone(),
            fields: NewTaskFields {
                repo,
                title,
                description,
                labels,
            },
        },
        Origin::Issue { link, number } => {
            if number < 1 {
                return Err(invalid(
                    "sequence_id",
                    format!("must be a positive number, not {number}"),
                ));
            }
            let id = WorkItemId::parse(&format!("{}-{number}", project.prefix))
                .map_err(|e| invalid("sequence_id", format!("cannot name the task: {e}")))?;
            Creation::Linked {
                task: NewTask {
                    work_item_id: id,
                    repo,
                    title,
                    description,
                    labels,
                },
                link,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_id_says_which_attempt_it_is() {
        let id = |s: &str| WorkItemId::parse(s).unwrap();
        assert_eq!(restart_id(&id("ACME-7")), Some(id("ACME-7-r2")));
        assert_eq!(restart_id(&id("ACME-7-r2")), Some(id("ACME-7-r3")));
        assert_eq!(restart_id(&id("ACME-7-r9")), Some(id("ACME-7-r10")));
        // Not a restart suffix: a restart of its own.
        assert_eq!(restart_id(&id("ACME-r")), Some(id("ACME-r-r2")));
        assert_eq!(restart_id(&id("ACME-r1")), Some(id("ACME-r1-r2")));
        assert_eq!(restart_id(&id(&"A".repeat(64))), None);
    }
    use crate::domain::projects::Project;

    fn projects() -> Projects {
        let project = |repo: &str, prefix: &str, plane: Option<&str>| Project {
            repo: repo.into(),
            origin: "o".into(),
            prefix: prefix.into(),
            test_cmd: "t".into(),
            staging: false,
            confirm_deploy: false,
            deploy: true,
            plane_project_id: plane.map(str::to_string),
            gitea_repo: None,
            plane_states: Default::default(),
            append_only: Project::default_append_only(),
        };
        Projects::new(vec![
            project("acme/app", "ACME", None),
            project("acme/web", "WEB", Some("p-1")),
        ])
        .unwrap()
    }

    fn local(repo: &str, title: &str) -> TaskRequest {
        TaskRequest {
            repo: repo.into(),
            title: title.into(),
            description: String::new(),
            labels: Vec::new(),
            origin: Origin::Local,
        }
    }

    fn issue(project: &str, number: i64) -> Origin {
        Origin::Issue {
            link: TrackerLink {
                tracker: "plane".into(),
                project_ref: project.into(),
                issue_ref: "issue-1".into(),
            },
            number,
        }
    }

    #[test]
    fn a_local_task_is_numbered_by_its_project_and_tidied() {
        let request = TaskRequest {
            labels: vec![" Bug ".into()],
            ..local("acme/app", "  Add login ")
        };
        let Creation::Numbered { prefix, fields } = validate(&projects(), request).unwrap() else {
            panic!("a local task is numbered");
        };
        assert_eq!(prefix, "ACME");
        assert_eq!(fields.title, "Add login");
        assert_eq!(fields.labels, vec!["Bug"]);
    }

    #[test]
    fn an_issue_is_named_after_its_number_and_linked() {
        let request = TaskRequest {
            description: "Why.".into(),
            origin: issue("p-1", 42),
            ..local("acme/web", "Add login")
        };
        let Creation::Linked { task, link } = validate(&projects(), request).unwrap() else {
            panic!("an issue's task is linked");
        };
        assert_eq!(task.work_item_id.as_str(), "WEB-42");
        assert_eq!(link.issue_ref, "issue-1");
    }

    #[test]
    fn every_bad_input_is_named() {
        let long = "x".repeat(201);
        let many: Vec<String> = (0..21).map(|i| format!("l{i}")).collect();
        for (request, expected) in [
            (
                local("acme/nope", "t"),
                "unknown repo \"acme/nope\" (configured: acme/app, acme/web)",
            ),
            (local("acme/app", "  "), "title must not be empty"),
            (
                local("acme/app", &long),
                "title is 201 characters long; at most 200 are allowed",
            ),
            (
                local("acme/app", "a\tb"),
                "title must be one line without control characters",
            ),
            (
                TaskRequest {
                    description: "d".repeat(20_001),
                    ..local("acme/app", "t")
                },
                "description is longer than 20000 characters",
            ),
            (
                TaskRequest {
                    labels: many,
                    ..local("acme/app", "t")
                },
                "labels are 21; at most 20 are allowed",
            ),
            (
                TaskRequest {
                    labels: vec!["ok".into(), " ".into()],
                    ..local("acme/app", "t")
                },
                "label \" \" must be 1-50 characters on one line",
            ),
            (
                TaskRequest {
                    origin: issue("p-1", 0),
                    ..local("acme/web", "t")
                },
                "sequence_id must be a positive number, not 0",
            ),
        ] {
            let err = validate(&projects(), request).unwrap_err();
            assert_eq!(err.to_string(), expected);
            assert!(err.is_bad_request(), "{err}");
        }
    }

    #[test]
    fn a_project_takes_tasks_only_from_its_own_tracker() {
        let err = validate(&projects(), local("acme/web", "t")).unwrap_err();
        assert!(matches!(err, CreateError::TrackedElsewhere { .. }), "{err}");
        assert!(!err.is_bad_request(), "a conflict, not a bad request");
        for (repo, project) in [("acme/app", "p-1"), ("acme/web", "p-2")] {
            let request = TaskRequest {
                origin: issue(project, 1),
                ..local(repo, "t")
            };
            let err = validate(&projects(), request).unwrap_err();
            assert!(matches!(err, CreateError::NotItsTracker { .. }), "{err}");
        }
    }
}
