//! Chooses the stub's answer from the request content alone: report "done" after the CLI ran
//! the stub's writes, otherwise ask for the role's files through `Write` (preceded by a `Read`
//! of the files that already exist, which the CLI's `Write` tool demands).

use std::path::Path;

use serde_json::{Value, json};

use super::artifacts::{self, PlannedFile};
use super::config::StubConfig;
use super::prompt;

/// One content block of a reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// A `text` block.
    Text(String),
    /// A `tool_use` block.
    ToolUse {
        /// `toolu_…`, unique within the stub.
        id: String,
        /// The tool, `Write` or `Read`.
        name: &'static str,
        /// The tool's arguments.
        input: Value,
    },
}

/// A whole assistant turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The content blocks, in order.
    pub blocks: Vec<Block>,
    /// `end_turn` or `tool_use`.
    pub stop_reason: &'static str,
}

/// The final text after the CLI reports the stub's writes.
pub const DONE: &str = "done";
/// The text answered when the request offers no `Write` tool.
pub const NO_WRITE_TOOL: &str = "Hello from the Anthropic API stub: no Write tool was offered.";
/// The text answered when no working directory is known.
pub const NO_WORKING_DIR: &str = "The Anthropic API stub cannot tell the working directory: the system prompt names none \
     and StubConfig::working_dir is unset.";

impl Reply {
    fn text(text: &str) -> Reply {
        Reply {
            blocks: vec![Block::Text(text.to_string())],
            stop_reason: "end_turn",
        }
    }
}

/// The answer to the Messages request `body`. `next_id` hands out unique numbers for
/// `tool_use` ids; nothing else is shared between requests.
pub fn choose(body: &Value, config: &StubConfig, next_id: &mut dyn FnMut() -> u64) -> Reply {
    let after_tools = prompt::last_user_has_tool_result(body);
    let uses = prompt::last_assistant_tool_uses(body);
    let after_reads = !uses.is_empty() && uses.iter().all(|name| *name == "Read");
    if after_tools && !after_reads {
        return Reply::text(DONE);
    }
    if !prompt::offers_tool(body, "Write") {
        return Reply::text(NO_WRITE_TOOL);
    }
    let Some(cwd) = prompt::working_dir(body).or_else(|| config.working_dir.clone()) else {
        return Reply::text(NO_WORKING_DIR);
    };
    let assignment = prompt::assignment(body);
    let files = artifacts::plan(assignment.as_ref(), &cwd, &config.verdicts);
    let who = assignment.as_ref().map_or_else(
        || "no role was named".to_string(),
        |a| format!("the {} of {}", a.role, a.work_item),
    );
    if !after_reads && prompt::offers_tool(body, "Read") {
        let existing: Vec<&Path> = files
            .iter()
            .map(|f| f.path.as_path())
            .filter(|p| p.exists())
            .collect();
        if !existing.is_empty() {
            return reads(&existing, &who, next_id);
        }
    }
    writes(&files, &who, next_id)
}

fn reads(paths: &[&Path], who: &str, next_id: &mut dyn FnMut() -> u64) -> Reply {
    let mut blocks = vec![Block::Text(format!(
        "Reading {} existing file(s) before rewriting them ({who}).",
        paths.len()
    ))];
    blocks.extend(paths.iter().map(|path| Block::ToolUse {
        id: format!("toolu_stub{:06}", next_id()),
        name: "Read",
        input: json!({ "file_path": path.display().to_string() }),
    }));
    Reply {
        blocks,
        stop_reason: "tool_use",
    }
}

fn writes(files: &[PlannedFile], who: &str, next_id: &mut dyn FnMut() -> u64) -> Reply {
    let mut blocks = vec![Block::Text(format!(
        "Writing {} file(s) ({who}).",
        files.len()
    ))];
    blocks.extend(files.iter().map(|file| Block::ToolUse {
        id: format!("toolu_stub{:06}", next_id()),
        name: "Write",
        input: json!({
            "file_path": file.path.display().to_string(),
            "content": file.content,
        }),
    }));
    Reply {
        blocks,
        stop_reason: "tool_use",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(cwd: &Path, messages: Value) -> Value {
        json!({
            "system": [{"type": "text", "text": format!(" - Primary working directory: {}", cwd.display())}],
            "messages": messages,
            "tools": [{"name": "Read"}, {"name": "Write"}, {"name": "Bash"}]
        })
    }

    fn counter() -> impl FnMut() -> u64 {
        let mut n = 0;
        move || {
            n += 1;
            n
        }
    }

    fn tool_uses(reply: &Reply) -> Vec<(&'static str, String)> {
        reply
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { name, input, .. } => {
                    Some((*name, input["file_path"].as_str().unwrap().to_string()))
                }
                Block::Text(_) => None,
            })
            .collect()
    }

    const ANALYST: &str =
        "T\n\nYou are the analyst for work item A-1.\nArtifacts: docs/work-items/A-1/\n";

    #[test]
    fn a_fresh_prompt_gets_one_write_per_artifact_at_absolute_paths() {
        let cwd = tempfile::tempdir().unwrap();
        let body = request(cwd.path(), json!([{"role": "user", "content": ANALYST}]));
        let reply = choose(&body, &StubConfig::default(), &mut counter());
        assert_eq!(reply.stop_reason, "tool_use");
        let uses = tool_uses(&reply);
        assert_eq!(uses.len(), 4);
        for (name, path) in uses {
            assert_eq!(name, "Write");
            assert!(
                path.starts_with(&cwd.path().join("docs/work-items/A-1").display().to_string())
            );
        }
    }

    #[test]
    fn existing_files_are_read_first_then_written_then_done() {
        let cwd = tempfile::tempdir().unwrap();
        let brd = cwd.path().join("docs/work-items/A-1/01-brd.md");
        std::fs::create_dir_all(brd.parent().unwrap()).unwrap();
        std::fs::write(&brd, "old").unwrap();
        let mut ids = counter();
        let first = json!([{"role": "user", "content": ANALYST}]);
        let reply = choose(
            &request(cwd.path(), first),
            &StubConfig::default(),
            &mut ids,
        );
        assert_eq!(tool_uses(&reply), [("Read", brd.display().to_string())]);

        let after_read = json!([
            {"role": "user", "content": ANALYST},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_stub000001", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_stub000001", "content": "old"}]}
        ]);
        let reply = choose(
            &request(cwd.path(), after_read),
            &StubConfig::default(),
            &mut ids,
        );
        assert_eq!(tool_uses(&reply).len(), 4);
        assert!(tool_uses(&reply).iter().all(|(name, _)| *name == "Write"));

        let after_write = json!([
            {"role": "user", "content": ANALYST},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_stub000002", "name": "Write", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_stub000002", "content": "ok"}]}
        ]);
        let reply = choose(
            &request(cwd.path(), after_write),
            &StubConfig::default(),
            &mut ids,
        );
        assert_eq!(reply, Reply::text(DONE));
    }

    #[test]
    fn without_write_tool_or_directory_the_reply_is_text() {
        let no_write = json!({"messages": [{"role": "user", "content": ANALYST}], "tools": [{"name": "Bash"}]});
        let reply = choose(&no_write, &StubConfig::default(), &mut counter());
        assert_eq!(reply, Reply::text(NO_WRITE_TOOL));
        let no_dir = json!({"messages": [{"role": "user", "content": ANALYST}], "tools": [{"name": "Write"}]});
        let reply = choose(&no_dir, &StubConfig::default(), &mut counter());
        assert_eq!(reply, Reply::text(NO_WORKING_DIR));
    }
}
