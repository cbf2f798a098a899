//! Validated identifiers. A work-item id ends up in actor names, file paths and git branch
//! names, so it is checked once at the edge and carried as a type afterwards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted work-item id; longer ones are rejected rather than truncated.
pub const MAX_WORK_ITEM_ID_LEN: usize = 64;

/// The id of a task on the board, e.g. `ORCH-59`.
///
/// Accepted: 1–64 ASCII letters, digits, `-`, `_` or `.`, starting with a letter or digit and
/// never containing `..`, so it is safe as a path segment, a branch name and an argv item
/// (it can never look like an option).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WorkItemId(String);

/// Why a string is not a valid [`WorkItemId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid work item id {value:?}: {reason}")]
pub struct InvalidWorkItemId {
    /// The rejected input, verbatim.
    pub value: String,
    /// What rule it broke.
    pub reason: &'static str,
}

impl WorkItemId {
    /// Validates `value` as a work-item id.
    pub fn parse(value: &str) -> Result<Self, InvalidWorkItemId> {
        let fail = |reason| {
            Err(InvalidWorkItemId {
                value: value.to_string(),
                reason,
            })
        };
        if value.is_empty() {
            return fail("it is empty");
        }
        if value.len() > MAX_WORK_ITEM_ID_LEN {
            return fail("it is longer than 64 characters");
        }
        if !value.as_bytes()[0].is_ascii_alphanumeric() {
            return fail("it must start with a letter or a digit");
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return fail("only ASCII letters, digits, '-', '_' and '.' are allowed");
        }
        if value.contains("..") {
            return fail("it must not contain '..'");
        }
        Ok(Self(value.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry name of this task's actor: `task:<id>`.
    pub fn actor_name(&self) -> String {
        format!("{}{}", TASK_ACTOR_PREFIX, self.0)
    }
}

/// Prefix of every task actor's registered name.
pub const TASK_ACTOR_PREFIX: &str = "task:";

impl fmt::Display for WorkItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for WorkItemId {
    type Err = InvalidWorkItemId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for WorkItemId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Lowercase ASCII words of `text` joined by `-`, at most `max_chars` long, cut at a word
/// boundary when there is one; empty when `text` has no ASCII letters or digits. Safe in
/// branch and file names.
pub fn slug(text: &str, max_chars: usize) -> String {
    let mut slug = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.len() <= max_chars {
        return slug.to_string();
    }
    // The slug is ASCII, so byte offsets are character offsets.
    let head = &slug[..max_chars];
    let cut = if slug.as_bytes()[max_chars] == b'-' {
        head
    } else {
        head.rfind('-').map_or(head, |at| &head[..at])
    };
    cut.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_board_style_ids() {
        for ok in ["ORCH-59", "LOC-1", "a", "x_1.2", "9-lives"] {
            assert_eq!(WorkItemId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_traversal_options_and_junk() {
        for (bad, why) in [
            ("", "empty"),
            ("-rf", "start with"),
            ("../etc", "start with"),
            ("a..b", "'..'"),
            ("a/b", "only ASCII"),
            ("a b", "only ASCII"),
            ("ä", "start with"),
        ] {
            let err = WorkItemId::parse(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert!(WorkItemId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn actor_name_is_prefixed() {
        assert_eq!(
            WorkItemId::parse("ORCH-1").unwrap().actor_name(),
            "task:ORCH-1"
        );
    }
}
