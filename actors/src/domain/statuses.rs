//! What the statuses of a tracker board mean to the pipeline: those a human moves a card to
//! in order to steer a task ([`HumanTrigger`]), the columns a task's card shows in
//! ([`BoardStatus`], one per pipeline stage and phase), their logical keys and default names,
//! and a project's own names for them ([`StatusNames`]). Which board state is which name is
//! the tracker adapter's business; what the name means is decided here.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::ports::BoardStatus;

/// What a human moving a card to a status asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HumanTrigger {
    /// Start the task (QG-0 first), or resume it.
    Start,
    /// Approve the analysis.
    Approve,
    /// Reject the analysis (the reason is the latest human comment).
    Reject,
    /// Release the production deploy.
    ConfirmDeploy,
    /// Stop the task.
    Stop,
}

/// The statuses that steer a task: logical key, default name, meaning.
pub const TRIGGERS: [(&str, &str, HumanTrigger); 6] = [
    ("to_analyse", "To Analyse", HumanTrigger::Start),
    ("in_progress", "In Progress", HumanTrigger::Start),
    ("approved", "Approved", HumanTrigger::Approve),
    ("rejected", "Rejected", HumanTrigger::Reject),
    (
        "confirm_deploy",
        "Confirm Deploy",
        HumanTrigger::ConfirmDeploy,
    ),
    ("stop", "STOP", HumanTrigger::Stop),
];

/// Every logical key a project's status names may rename: the triggers, then the columns.
pub const STATUS_KEYS: [&str; 17] = [
    "to_analyse",
    "in_progress",
    "approved",
    "rejected",
    "confirm_deploy",
    "stop",
    "analysis",
    "in_review",
    "architecture",
    "development",
    "review",
    "testing",
    "deploying",
    "awaiting_deploy",
    "done",
    "blocked",
    "cancelled",
];

/// The status names of one project's board that differ from the defaults, by logical key
/// (`approved`, `confirm_deploy`, `development`, …). Keys are checked when the projects are
/// read ([`StatusNames::unknown_key`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StatusNames(BTreeMap<String, String>);

impl StatusNames {
    /// Names by logical key.
    pub fn new(names: BTreeMap<String, String>) -> Self {
        Self(names)
    }

    /// The renamings, by logical key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The first key that is not a logical key of [`STATUS_KEYS`], if any.
    pub fn unknown_key(&self) -> Option<&str> {
        self.0
            .keys()
            .map(String::as_str)
            .find(|key| !STATUS_KEYS.contains(key))
    }

    /// The name of logical key `key` on this board.
    fn name<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.0.get(key).map_or(default, String::as_str)
    }

    /// The name of the column `status` on this board.
    pub fn column(&self, status: BoardStatus) -> &str {
        self.name(status.key(), status.default_name())
    }

    /// What moving a card to the status called `name` asks for; `None` for a status that
    /// steers nothing. Whether the board has such a status at all is for the caller to make
    /// sure of (a trigger is a status on the project's own board — fail-closed).
    pub fn trigger(&self, name: &str) -> Option<HumanTrigger> {
        TRIGGERS
            .iter()
            .find(|(key, default, _)| self.name(key, default) == name)
            .map(|(_, _, trigger)| *trigger)
    }

    /// Whether the status called `name` steers tasks (so a card is never moved there).
    pub fn is_trigger(&self, name: &str) -> bool {
        self.trigger(name).is_some()
    }

    /// Whether the status called `name` is one of the pipeline's columns on this board.
    pub fn is_column(&self, name: &str) -> bool {
        BoardStatus::ALL.iter().any(|s| self.column(*s) == name)
    }

    /// What a board whose statuses are called `present` lacks. A trigger it lacks can
    /// never be pulled (Confirm Deploy only matters to a project that waits for it); a
    /// column it lacks falls back to a base status, so a card shows less.
    pub fn missing_on<'a>(
        &'a self,
        present: &[&str],
        confirm_deploy: bool,
    ) -> (Vec<&'a str>, Vec<&'a str>) {
        let lacks = |name: &&str| !present.contains(name);
        let triggers = TRIGGERS
            .iter()
            .filter(|(_, _, t)| confirm_deploy || *t != HumanTrigger::ConfirmDeploy)
            .map(|(key, default, _)| self.name(key, default))
            .filter(lacks)
            .collect();
        let columns = BoardStatus::ALL
            .iter()
            .map(|s| self.column(*s))
            .filter(lacks)
            .collect();
        (triggers, columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_are_the_triggers_and_the_columns() {
        let expected: Vec<&str> = TRIGGERS
            .iter()
            .map(|(key, _, _)| *key)
            .chain(BoardStatus::ALL.iter().map(|s| s.key()))
            .collect();
        assert_eq!(STATUS_KEYS.to_vec(), expected);
    }

    #[test]
    fn default_names_steer_as_the_table_says() {
        let names = StatusNames::default();
        for (name, trigger) in [
            ("To Analyse", Some(HumanTrigger::Start)),
            ("In Progress", Some(HumanTrigger::Start)),
            ("Approved", Some(HumanTrigger::Approve)),
            ("Rejected", Some(HumanTrigger::Reject)),
            ("Confirm Deploy", Some(HumanTrigger::ConfirmDeploy)),
            ("STOP", Some(HumanTrigger::Stop)),
            ("Analysis", None),
            ("Done", None),
            // Names are exact: a look-alike steers nothing.
            ("approved", None),
        ] {
            assert_eq!(names.trigger(name), trigger, "{name}");
        }
        assert!(names.is_column("Awaiting Deploy"));
        assert!(!names.is_column("Approved"));
        assert_eq!(names.column(BoardStatus::InReview), "In Review");
    }

    #[test]
    fn a_board_is_told_which_statuses_it_lacks_under_their_own_names() {
        let names = StatusNames::new(BTreeMap::from([(
            "approved".to_string(),
            "Ship it".to_string(),
        )]));
        let mut present: Vec<&str> = TRIGGERS.iter().map(|(_, d, _)| *d).collect();
        present.retain(|n| !["Approved", "STOP", "Confirm Deploy"].contains(n));
        present.extend(BoardStatus::ALL.iter().map(|s| s.default_name()));
        present.retain(|n| *n != "Awaiting Deploy");
        let (triggers, columns) = names.missing_on(&present, true);
        assert_eq!(triggers, vec!["Ship it", "Confirm Deploy", "STOP"]);
        assert_eq!(columns, vec!["Awaiting Deploy"]);
        let (triggers, _) = names.missing_on(&present, false);
        assert_eq!(triggers, vec!["Ship it", "STOP"]);
    }

    #[test]
    fn a_renamed_status_steers_under_its_new_name_only() {
        let names = StatusNames::new(BTreeMap::from([
            ("approved".to_string(), "Ship it".to_string()),
            ("done".to_string(), "Released".to_string()),
        ]));
        assert_eq!(names.trigger("Ship it"), Some(HumanTrigger::Approve));
        assert_eq!(names.trigger("Approved"), None);
        assert_eq!(names.column(BoardStatus::Done), "Released");
        assert!(names.is_column("Released") && !names.is_column("Done"));
        assert_eq!(names.unknown_key(), None);
        let typo = StatusNames::new(BTreeMap::from([("aproved".into(), "A".into())]));
        assert_eq!(typo.unknown_key(), Some("aproved"));
    }
}
