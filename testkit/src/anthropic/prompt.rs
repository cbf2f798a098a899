//! Reads what the stub needs from a Messages request body: where the CLI runs, which role and
//! work item the orchestrator's prompt names, which tools are offered and what the last turn
//! was. Everything comes from the request itself, so parallel CLIs never share state.

use std::path::PathBuf;

use orchestrator_actors::{Role, WorkItemId};
use serde_json::Value;

/// The system-prompt line carrying the CLI's working directory (default prompt).
const PRIMARY_DIR_PREFIX: &str = "- Primary working directory:";
/// The system-prompt line carrying the working directory under `--bare`.
const CWD_PREFIX: &str = "CWD:";

/// The orchestrator's assignment sentence: `You are the <role> for work item <ID>.`
const ROLE_PREFIX: &str = "You are the ";
/// Separates the role from the work item in [`ROLE_PREFIX`]'s sentence.
const ROLE_INFIX: &str = " for work item ";
/// The orchestrator's artifacts line: `Artifacts: docs/work-items/<ID>/`.
const ARTIFACTS_PREFIX: &str = "Artifacts: ";

/// The role and work item an orchestrator prompt assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The role to play.
    pub role: Role,
    /// The work item whose artifacts to write.
    pub work_item: WorkItemId,
    /// The task's title: the first non-blank line of the prompt block.
    pub title: String,
}

/// The text of a message's content, which is either a string or an array of blocks; only
/// `text` blocks count.
fn texts(content: &Value) -> Vec<&str> {
    match content {
        Value::String(text) => vec![text.as_str()],
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect(),
        _ => Vec::new(),
    }
}

/// The request's messages, empty when absent or malformed.
fn messages(body: &Value) -> &[Value] {
    body["messages"].as_array().map_or(&[], Vec::as_slice)
}

/// The `content` blocks of a message, empty when it is a plain string.
fn blocks(message: &Value) -> &[Value] {
    message["content"].as_array().map_or(&[], Vec::as_slice)
}

/// Whether the last `user` message carries a `tool_result` block: the CLI ran our tool call
/// and is reporting back.
pub fn last_user_has_tool_result(body: &Value) -> bool {
    messages(body)
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .is_some_and(|m| blocks(m).iter().any(|b| b["type"] == "tool_result"))
}

/// The names of the `tool_use` blocks in the last `assistant` message, empty when there is
/// none.
pub fn last_assistant_tool_uses(body: &Value) -> Vec<&str> {
    messages(body)
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .map(|m| {
            blocks(m)
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .filter_map(|b| b["name"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `tools[]` offers a tool called `name`.
pub fn offers_tool(body: &Value, name: &str) -> bool {
    body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == name))
}

/// The CLI's working directory as its system prompt states it (` - Primary working
/// directory: <dir>`, or `CWD: <dir>` under `--bare`). The system prompt may be a string or
/// an array of text blocks; only absolute paths are taken.
pub fn working_dir(body: &Value) -> Option<PathBuf> {
    texts(&body["system"])
        .into_iter()
        .flat_map(str::lines)
        .map(str::trim)
        .find_map(|line| {
            line.strip_prefix(PRIMARY_DIR_PREFIX)
                .or_else(|| line.strip_prefix(CWD_PREFIX))
        })
        .map(|dir| PathBuf::from(dir.trim()))
        .filter(|dir| dir.is_absolute())
}

/// The role and work item named by the first `user` message, in whichever of its text
/// blocks holds the orchestrator's prompt (the CLI puts `<system-reminder>` blocks first).
pub fn assignment(body: &Value) -> Option<Assignment> {
    let first_user = messages(body).iter().find(|m| m["role"] == "user")?;
    texts(&first_user["content"])
        .into_iter()
        .find_map(assignment_in)
}

/// Reads the assignment from one prompt text. The work item comes from the `Artifacts:` line
/// when present, because a trailing `.` cannot be told from the sentence's full stop.
fn assignment_in(text: &str) -> Option<Assignment> {
    let sentence = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(ROLE_PREFIX))?;
    let (role, rest) = sentence.split_once(ROLE_INFIX)?;
    let role = role.trim().parse::<Role>().ok()?;
    let from_artifacts = text
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix(ARTIFACTS_PREFIX))
        .and_then(|dir| dir.trim().trim_end_matches('/').rsplit('/').next())
        .and_then(|id| WorkItemId::parse(id).ok());
    let work_item = match from_artifacts {
        Some(id) => id,
        None => {
            let id = rest.split_whitespace().next()?;
            WorkItemId::parse(id.strip_suffix('.').unwrap_or(id)).ok()?
        }
    };
    let title = text
        .lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    Some(Assignment {
        role,
        work_item,
        title,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn prompt(text: &str) -> Value {
        json!({
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197"},
                {"type": "text", "text": "Env\n - Primary working directory: /tmp/wt-1\n - Is a git repository: true"}
            ],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nskills\n</system-reminder>"},
                {"type": "text", "text": text}
            ]}],
            "tools": [{"name": "Read"}, {"name": "Write"}]
        })
    }

    #[test]
    fn the_orchestrator_prompt_names_role_item_and_title() {
        let body = prompt(
            "Add a /health endpoint\n\nYou are the reviewer for work item ORCH-7.\n\
             Repository: demo\nArtifacts: docs/work-items/ORCH-7/\n\nDetails.\n",
        );
        let got = assignment(&body).unwrap();
        assert_eq!(got.role, Role::Reviewer);
        assert_eq!(got.work_item.as_str(), "ORCH-7");
        assert_eq!(got.title, "Add a /health endpoint");
        assert_eq!(working_dir(&body), Some(PathBuf::from("/tmp/wt-1")));
        assert!(offers_tool(&body, "Write") && !offers_tool(&body, "Bash"));
    }

    #[test]
    fn without_an_artifacts_line_the_sentence_gives_the_item() {
        let body = prompt("You are the analyst for work item v1.2.");
        assert_eq!(assignment(&body).unwrap().work_item.as_str(), "v1.2");
    }

    #[test]
    fn unknown_roles_and_free_text_are_not_assignments() {
        assert_eq!(
            assignment(&prompt("You are the janitor for work item X-1.")),
            None
        );
        assert_eq!(assignment(&prompt("create hello.txt")), None);
    }

    #[test]
    fn bare_mode_states_the_directory_as_cwd() {
        let body = json!({"system": "You are Claude.\nCWD: /work/repo\n"});
        assert_eq!(working_dir(&body), Some(PathBuf::from("/work/repo")));
        assert_eq!(working_dir(&json!({"system": "CWD: relative"})), None);
    }

    #[test]
    fn tool_results_and_tool_uses_are_read_from_the_last_turns() {
        let body = json!({"messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}
            ]}
        ]});
        assert!(last_user_has_tool_result(&body));
        assert_eq!(last_assistant_tool_uses(&body), ["Read"]);
        assert!(!last_user_has_tool_result(&prompt("hi")));
    }
}
