//! Renders cards and alerts as Telegram HTML. This is the escaping boundary: every data value
//! (title, reason, model, alert text) is HTML-escaped here, and every line keeps its tags
//! balanced, so cutting a too-long text at a line end never leaves an entity open.

use orchestrator_actors::ports::{Alert, Card, CardState, Notice, RowStatus};

/// Telegram's limit on a message's text.
pub const MAX_TEXT: usize = 4096;
/// Longest title shown, in characters.
const MAX_TITLE: usize = 256;
/// Longest blocked reason or alert text shown, in characters.
const MAX_REASON: usize = 1500;
/// Longest model name shown, in characters.
const MAX_MODEL: usize = 64;

/// Escapes `&`, `<` and `>` (all Telegram's HTML mode requires outside attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to `max` characters (with `…`), then escaped: the cut never splits an entity.
fn clip(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return escape(text);
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    escape(&format!("{cut}…"))
}

/// Whole nano-dollars as dollars with four decimals, rounded half up.
fn dollars(nanos: u64) -> String {
    let tenths_of_mills = nanos.saturating_add(50_000) / 100_000;
    format!(
        "${}.{:04}",
        tenths_of_mills / 10_000,
        tenths_of_mills % 10_000
    )
}

fn icon(status: RowStatus) -> &'static str {
    match status {
        RowStatus::Queued => "🕓",
        RowStatus::Running => "⏳",
        RowStatus::Gating => "🔍",
        RowStatus::Waiting => "✋",
        RowStatus::Blocked => "⛔",
        RowStatus::Paused => "⏸",
        RowStatus::Passed => "✅",
        RowStatus::Failed => "❌",
        RowStatus::Skipped => "⏭",
        RowStatus::Cancelled => "🚫",
    }
}

fn state_line(card: &Card) -> String {
    let stage = card.stage.as_str();
    let (icon, what) = match &card.state {
        CardState::Idle => ("🕓", "starting".to_string()),
        CardState::Working => ("⏳", "working".to_string()),
        CardState::Gating => ("🔍", "checking the gate".to_string()),
        CardState::InMergeQueue => ("🚦", "in the merge queue".to_string()),
        CardState::Merging => ("🔀", "merging".to_string()),
        CardState::AwaitingApproval => ("✋", "<b>awaiting approval</b>".to_string()),
        CardState::AwaitingDeployConfirm => ("✋", "<b>awaiting deploy confirm</b>".to_string()),
        CardState::Blocked { reason } => (
            "⛔",
            format!("<b>blocked</b>: {}", clip(reason, MAX_REASON)),
        ),
        CardState::Paused => ("⏸", "paused".to_string()),
        CardState::Done => ("🏁", "<b>done</b>".to_string()),
        CardState::Cancelled => ("🚫", "<b>cancelled</b>".to_string()),
    };
    match card.state {
        CardState::Done | CardState::Cancelled => format!("{icon} {what}"),
        _ => format!("{icon} <b>{stage}</b> · {what}"),
    }
}

/// The card as Telegram HTML, at most [`MAX_TEXT`] UTF-16 units long.
pub fn card(card: &Card) -> String {
    let mut lines = vec![
        format!(
            "<b>{}</b> · {}",
            escape(card.work_item_id.as_str()),
            clip(&card.title, MAX_TITLE)
        ),
        state_line(card),
        String::new(),
    ];
    for row in &card.rows {
        let mut line = format!(
            "{} {} · {}",
            icon(row.status),
            row.stage.as_str(),
            row.status.as_str()
        );
        if row.attempt > 0 {
            line.push_str(&format!(
                " · #{} · {}↓ {}↑ tok · {}",
                row.attempt,
                row.input_tokens,
                row.output_tokens,
                dollars(row.cost_nanos)
            ));
        }
        if let Some(model) = &row.model {
            line.push_str(&format!(" · <code>{}</code>", clip(model, MAX_MODEL)));
        }
        lines.push(line);
    }
    let t = &card.totals;
    lines.push(format!(
        "<b>Total</b> · {}↓ {}↑ tok · {}",
        t.input_tokens,
        t.output_tokens,
        dollars(t.cost_nanos)
    ));
    fit(lines)
}

/// The alert as Telegram HTML, at most [`MAX_TEXT`] UTF-16 units long.
pub fn alert(alert: &Alert) -> String {
    fit(vec![
        format!(
            "🔔 <b>{}</b> · {}",
            escape(alert.work_item_id.as_str()),
            alert.kind.as_str()
        ),
        clip(&alert.text, MAX_REASON),
    ])
}

/// A notice about the service as Telegram HTML, at most [`MAX_TEXT`] UTF-16 units long.
pub fn notice(notice: &Notice) -> String {
    fit(vec![
        format!("🔔 <b>orchestrator</b> · {}", escape(&notice.topic)),
        clip(&notice.text, MAX_REASON),
    ])
}

/// Joins `lines`, dropping whole lines from the end (each line's tags are balanced) until
/// the text fits [`MAX_TEXT`], measured in UTF-16 units as Telegram counts.
fn fit(mut lines: Vec<String>) -> String {
    let len = |lines: &[String]| {
        lines
            .iter()
            .map(|l| l.encode_utf16().count() + 1)
            .sum::<usize>()
    };
    if len(&lines) <= MAX_TEXT {
        return lines.join("\n");
    }
    while len(&lines) + 2 > MAX_TEXT && lines.len() > 1 {
        lines.pop();
    }
    lines.push("…".to_string());
    let text = lines.join("\n");
    if text.encode_utf16().count() <= MAX_TEXT {
        return text;
    }
    // A single line too long (cannot happen with the clipped fields): plain text only.
    escape(&text.chars().take(MAX_TEXT / 8).collect::<String>())
}

#[cfg(test)]
mod tests {
    use orchestrator_actors::ports::{AlertKind, CardTotals, StageRow};
    use orchestrator_actors::{Stage, WorkItemId};

    use super::*;

    fn sample(title: &str, state: CardState) -> Card {
        Card {
            work_item_id: WorkItemId::parse("ORCH-7").unwrap(),
            title: title.into(),
            stage: Stage::Development,
            state,
            rows: vec![
                StageRow {
                    stage: Stage::Analysis,
                    status: RowStatus::Passed,
                    attempt: 1,
                    input_tokens: 1200,
                    output_tokens: 340,
                    cost_nanos: 12_345_678,
                    model: Some("claude-<x>".into()),
                },
                StageRow {
                    stage: Stage::Architecture,
                    status: RowStatus::Skipped,
                    attempt: 0,
                    input_tokens: 0,
                    output_tokens: 0,
                    cost_nanos: 0,
                    model: None,
                },
            ],
            totals: CardTotals {
                input_tokens: 1200,
                output_tokens: 340,
                cost_nanos: 12_345_678,
            },
        }
    }

    #[test]
    fn every_data_value_is_escaped() {
        let text = card(&sample(
            "Fix <1m & a <b>",
            CardState::Blocked {
                reason: "x < y & z > w".into(),
            },
        ));
        assert!(text.contains("Fix &lt;1m &amp; a &lt;b&gt;"), "{text}");
        assert!(text.contains("x &lt; y &amp; z &gt; w"), "{text}");
        assert!(text.contains("<code>claude-&lt;x&gt;</code>"), "{text}");
        assert!(text.contains("✅ analysis · passed · #1 · 1200↓ 340↑ tok · $0.0123"));
        assert!(text.contains("⏭ architecture · skipped\n"), "{text}");
        assert!(text.contains("<b>Total</b> · 1200↓ 340↑ tok · $0.0123"));
    }

    #[test]
    fn dollars_round_half_up_to_four_decimals() {
        assert_eq!(dollars(0), "$0.0000");
        assert_eq!(dollars(49_999), "$0.0000");
        assert_eq!(dollars(50_000), "$0.0001");
        assert_eq!(dollars(1_234_567_890_000), "$1234.5679");
    }

    #[test]
    fn long_values_are_cut_outside_entities_and_the_text_fits() {
        let title = "&".repeat(5000);
        let text = card(&sample(
            &title,
            CardState::Blocked {
                reason: "<".repeat(5000),
            },
        ));
        assert!(text.encode_utf16().count() <= MAX_TEXT);
        let first = text.lines().next().unwrap();
        assert!(first.ends_with("&amp;…"), "{first}");
        assert!(!text.contains("&am…") && !text.contains("&l…"));
        let long = alert(&Alert {
            work_item_id: WorkItemId::parse("ORCH-7").unwrap(),
            kind: AlertKind::DeployFailed,
            text: "é".repeat(10_000),
        });
        assert!(long.encode_utf16().count() <= MAX_TEXT);
        assert!(long.starts_with("🔔 <b>ORCH-7</b> · deploy failed\n"));
        let disk = notice(&Notice {
            topic: "disk".into(),
            text: "data <dir> is 96% full".into(),
        });
        assert_eq!(
            disk,
            "🔔 <b>orchestrator</b> · disk\ndata &lt;dir&gt; is 96% full"
        );
    }

    #[test]
    fn too_many_lines_are_dropped_whole() {
        let lines: Vec<String> = (0..2000).map(|i| format!("<b>{i}</b>")).collect();
        let text = fit(lines);
        assert!(text.encode_utf16().count() <= MAX_TEXT);
        assert!(text.ends_with("</b>\n…"));
    }
}
