//! The front-matter contract: machine-readable verdicts live in a leading YAML block
//! delimited by `---` lines, never in prose. Gates read it through [`FrontMatter::parse`];
//! agents and tools write it through [`render`] so what they write always parses back.

use serde_yaml::{Mapping, Value};

/// Why a document's leading front-matter block cannot be used. A broken block is an error,
/// not "no front matter", so a gate never mistakes a mangled verdict for a missing one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontMatterError {
    /// The opening `---` has no closing line.
    #[error(
        "front matter opened by `---` on line 1 is never closed (expected a line `---` or `...`)"
    )]
    Unterminated,
    /// The block is not valid YAML.
    #[error("front matter (lines 2–{last_line}) is not valid YAML: {message}")]
    InvalidYaml {
        /// Last line of the block in the document, so the author can find it.
        last_line: usize,
        /// The YAML parser's complaint (its line numbers count from the block's first line).
        message: String,
    },
    /// The block is valid YAML but not a `key: value` mapping.
    #[error("front matter must be a mapping of `key: value` lines, found {found}")]
    NotAMapping {
        /// What the block holds instead (`a list`, `a plain value`).
        found: &'static str,
    },
    /// Two keys differ only in case, so a case-insensitive lookup would be ambiguous.
    #[error("front matter has key {key:?} more than once (keys are compared ignoring case)")]
    DuplicateKey {
        /// The key as written the second time.
        key: String,
    },
}

/// A parsed front-matter block: an ordered YAML mapping with case-insensitive lookup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrontMatter {
    /// The block's entries in document order; keys are unique ignoring case.
    map: Mapping,
}

impl FrontMatter {
    /// An empty block, to be filled with [`FrontMatter::set`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The document's leading front matter, or `None` when it does not start with a `---`
    /// line. A `---` further down is a Markdown rule, not front matter.
    pub fn parse(text: &str) -> Result<Option<FrontMatter>, FrontMatterError> {
        split(text).map(|(front_matter, _body)| front_matter)
    }

    /// The value of `key` (ignoring case) as text: strings verbatim, numbers and booleans in
    /// their YAML spelling. Empty values, lists and maps give `None`: a verdict is one scalar.
    pub fn get(&self, key: &str) -> Option<String> {
        self.find(key).and_then(|(_, value)| scalar_text(value))
    }

    /// Sets `key` to the string `value`, replacing an existing entry whose key differs only in
    /// case (keeping its place and spelling) so the block never gains an ambiguous twin.
    pub fn set(&mut self, key: &str, value: &str) {
        let slot = match self.find(key) {
            Some((existing, _)) => existing.clone(),
            None => Value::String(key.to_string()),
        };
        self.map.insert(slot, Value::String(value.to_string()));
    }

    /// Checks that every key in `keys` has a non-blank scalar value; the error lists the
    /// ones that do not, so an agent can be told exactly what to add.
    pub fn require(&self, keys: &[&str]) -> Result<(), String> {
        let missing: Vec<String> = keys
            .iter()
            .filter(|key| self.get(key).is_none_or(|value| value.trim().is_empty()))
            .map(|key| format!("`{key}`"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "missing or empty front-matter key(s): {}",
                missing.join(", ")
            ))
        }
    }

    /// Whether the block has no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The whole document: this block between `---` lines, then `body` verbatim (so
    /// [`split`] gives back exactly `body`).
    pub fn to_document(&self, body: &str) -> String {
        let mut out = String::from("---\n");
        if !self.map.is_empty() {
            out.push_str(&yaml_text(&self.map));
        }
        out.push_str("---\n");
        out.push_str(body);
        out
    }

    fn find(&self, key: &str) -> Option<(&Value, &Value)> {
        let wanted = key.to_lowercase();
        self.map
            .iter()
            .find(|(k, _)| key_text(k).is_some_and(|k| k.to_lowercase() == wanted))
    }

    fn from_yaml(yaml: &str, last_line: usize) -> Result<Self, FrontMatterError> {
        let value: Value =
            serde_yaml::from_str(yaml).map_err(|err| FrontMatterError::InvalidYaml {
                last_line,
                message: err.to_string(),
            })?;
        let map = match value {
            // An empty or comment-only block is an empty mapping, not an error.
            Value::Null => Mapping::new(),
            Value::Mapping(map) => map,
            Value::Sequence(_) => return Err(FrontMatterError::NotAMapping { found: "a list" }),
            _ => {
                return Err(FrontMatterError::NotAMapping {
                    found: "a plain value",
                });
            }
        };
        let mut seen = Vec::new();
        for key in map.keys().filter_map(key_text) {
            let folded = key.to_lowercase();
            if seen.contains(&folded) {
                return Err(FrontMatterError::DuplicateKey { key });
            }
            seen.push(folded);
        }
        Ok(Self { map })
    }
}

/// Splits a document into its leading front matter (if any) and the body after it. Accepts a
/// UTF-8 BOM and `\r\n` line ends; delimiter lines may carry trailing blanks. Without front
/// matter the body is the whole text (minus a BOM).
pub fn split(text: &str) -> Result<(Option<FrontMatter>, &str), FrontMatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let Some(first) = lines.next() else {
        return Ok((None, text));
    };
    if delimiter(first) != Some("---") {
        return Ok((None, text));
    }
    let yaml_start = first.len();
    let mut offset = yaml_start;
    for (index, line) in lines.enumerate() {
        if delimiter(line).is_some() {
            // `index` counts lines after the opening one; the block's last line is the one
            // before this delimiter, i.e. document line `index + 1`.
            let front_matter = FrontMatter::from_yaml(&text[yaml_start..offset], index + 1)?;
            return Ok((Some(front_matter), &text[offset + line.len()..]));
        }
        offset += line.len();
    }
    Err(FrontMatterError::Unterminated)
}

/// A document whose front matter holds `fields` (in order) followed by `body` verbatim.
/// Values are serialized by serde_yaml, so ones that need quoting (`true`, `1`, `a: b`,
/// multi-line text) are quoted and [`FrontMatter::get`] returns them unchanged.
pub fn render(fields: &[(&str, &str)], body: &str) -> String {
    let mut front_matter = FrontMatter::new();
    for (key, value) in fields {
        front_matter.set(key, value);
    }
    front_matter.to_document(body)
}

/// `Some("---")` or `Some("...")` when `line` is a block delimiter.
fn delimiter(line: &str) -> Option<&'static str> {
    match line.trim_end_matches(['\n', '\r', ' ', '\t']) {
        "---" => Some("---"),
        "..." => Some("..."),
        _ => None,
    }
}

fn key_text(key: &Value) -> Option<String> {
    scalar_text(key)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Tagged(tagged) => scalar_text(&tagged.value),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

fn yaml_text(map: &Mapping) -> String {
    // Serializing an in-memory YAML value has no failure mode left once it parsed (or was
    // built from strings): every node, including complex keys, has a YAML spelling.
    serde_yaml::to_string(map).expect("a YAML mapping always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(text: &str) -> FrontMatter {
        FrontMatter::parse(text).unwrap().unwrap()
    }

    #[test]
    fn reads_a_leading_block_and_returns_the_body() {
        let doc = "---\nverdict: APPROVED # one of APPROVED | REQUEST_CHANGES\nversion: 2\n---\n# Review\n";
        let (front_matter, body) = split(doc).unwrap();
        let front_matter = front_matter.unwrap();
        assert_eq!(front_matter.get("verdict").as_deref(), Some("APPROVED"));
        assert_eq!(front_matter.get("version").as_deref(), Some("2"));
        assert_eq!(body, "# Review\n");
    }

    #[test]
    fn accepts_bom_crlf_and_the_dots_terminator() {
        let doc = "\u{feff}---\r\nstatus: PASS\r\n...\r\nbody\r\n";
        let (front_matter, body) = split(doc).unwrap();
        assert_eq!(front_matter.unwrap().get("status").as_deref(), Some("PASS"));
        assert_eq!(body, "body\r\n");
    }

    #[test]
    fn only_a_block_at_the_very_top_counts() {
        for doc in [
            "# Title\n\n---\nverdict: APPROVED\n---\n",
            "\n---\nverdict: APPROVED\n---\n",
            "verdict: APPROVED\n",
            "",
            "----\nverdict: APPROVED\n----\n",
        ] {
            assert_eq!(FrontMatter::parse(doc).unwrap(), None, "{doc:?}");
        }
    }

    #[test]
    fn broken_blocks_are_errors_that_say_what_is_wrong() {
        let cases = [
            ("---\nverdict: APPROVED\n", "never closed"),
            ("---\nverdict: [APPROVED\n---\n", "not valid YAML"),
            ("---\n- APPROVED\n---\n", "found a list"),
            ("---\nAPPROVED\n---\n", "found a plain value"),
            (
                "---\nverdict: A\nVerdict: B\n---\n",
                "\"Verdict\" more than once",
            ),
        ];
        for (doc, expected) in cases {
            let err = FrontMatter::parse(doc).unwrap_err().to_string();
            assert!(err.contains(expected), "{doc:?}: {err}");
        }
    }

    #[test]
    fn keys_ignore_case_and_scalars_become_text() {
        let front_matter =
            fm("---\nVERDICT: approved\nretries: 3\nok: true\nlist: [a]\nempty:\n---\n");
        assert_eq!(front_matter.get("verdict").as_deref(), Some("approved"));
        assert_eq!(front_matter.get("Retries").as_deref(), Some("3"));
        assert_eq!(front_matter.get("ok").as_deref(), Some("true"));
        assert_eq!(front_matter.get("list"), None);
        assert_eq!(front_matter.get("empty"), None);
        assert_eq!(front_matter.get("absent"), None);
    }

    #[test]
    fn an_empty_block_is_an_empty_mapping() {
        assert!(fm("---\n---\nbody").is_empty());
        assert!(fm("---\n# only a comment\n---\n").is_empty());
    }

    #[test]
    fn require_names_every_missing_or_blank_key() {
        let front_matter = fm("---\nverdict: APPROVED\nversion: ''\n---\n");
        assert_eq!(front_matter.require(&["verdict"]), Ok(()));
        let err = front_matter
            .require(&["verdict", "version", "work_item_id"])
            .unwrap_err();
        assert!(
            err.contains("`version`") && err.contains("`work_item_id`"),
            "{err}"
        );
        assert!(!err.contains("`verdict`"), "{err}");
    }

    #[test]
    fn rendered_documents_parse_back_to_the_same_values() {
        let fields = [
            ("verdict", "APPROVED"),
            ("looks_numeric", "1"),
            ("looks_boolean", "true"),
            ("looks_null", "null"),
            ("has_colon", "a: b # not a comment"),
            ("multi_line", "first\n---\nthird"),
            ("padded", "  x  "),
            ("unicode", "готово"),
        ];
        let body = "\n# Report\n\n---\nnot front matter\n";
        let doc = render(&fields, body);
        let (front_matter, parsed_body) = split(&doc).unwrap();
        let front_matter = front_matter.unwrap();
        for (key, value) in fields {
            assert_eq!(front_matter.get(key).as_deref(), Some(value), "{key}");
        }
        assert_eq!(parsed_body, body);
    }

    #[test]
    fn set_replaces_a_key_written_in_another_case() {
        let mut front_matter = fm("---\nVerdict: REQUEST_CHANGES\nversion: 1\n---\n");
        front_matter.set("verdict", "APPROVED");
        let doc = front_matter.to_document("");
        assert_eq!(doc, "---\nVerdict: APPROVED\nversion: 1\n---\n");
        assert_eq!(fm(&doc).get("verdict").as_deref(), Some("APPROVED"));
    }
}
