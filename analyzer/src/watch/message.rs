//! The words and JSON bodies of an alert: a one-line headline, a summary, a Slack message
//! (text plus blocks of fields) and a generic JSON document.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::state::{Alert, Status};
use crate::output::render::short_site;

/// Alerts detailed in one Slack message (Slack allows 50 blocks); the rest are counted.
pub const SLACK_MAX_ALERTS: usize = 10;

/// Shape of the JSON posted to the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Slack incoming-webhook message: `text` plus `blocks` with one section of fields per site.
    Slack,
    /// A plain document: capture, time and an array of findings.
    Generic,
}

/// Where an alert comes from, for the message.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Capture name (directory name).
    pub name: String,
    /// Capture directory.
    pub dir: PathBuf,
    /// Recorded target (from the manifest).
    pub target: String,
    /// Recording host (from the manifest).
    pub host: String,
    /// Time of the round (RFC 3339).
    pub time: String,
}

/// A one-line summary of a round's alerts, e.g. `leakscope: 3 new leak(s) in demo`.
pub fn headline(origin: &Origin, alerts: &[Alert]) -> String {
    let count = |s: Status| alerts.iter().filter(|a| a.status == s).count();
    let mut parts = Vec::new();
    if count(Status::New) > 0 {
        parts.push(format!("{} new leak(s)", count(Status::New)));
    }
    if count(Status::Changed) > 0 {
        parts.push(format!("{} changed", count(Status::Changed)));
    }
    if count(Status::Resolved) > 0 {
        parts.push(format!("{} resolved", count(Status::Resolved)));
    }
    format!("leakscope: {} in {}", parts.join(", "), origin.name)
}

/// The fallback text of a message: headline and the first site.
pub fn summary(origin: &Origin, alerts: &[Alert]) -> String {
    let mut s = headline(origin, alerts);
    if let Some(a) = alerts.first() {
        let what = match a.status {
            Status::Resolved => format!(
                "{} ({}) is resolved: {}",
                short_site(&a.site),
                a.unit,
                a.change
            ),
            _ => format!(
                "{} ({}) grows {} (confidence {:.0}%, limit {})",
                short_site(&a.site),
                a.unit,
                a.rate_text,
                a.confidence * 100.0,
                a.limit_text
            ),
        };
        s.push_str(&format!(". {}: {what}", a.status.label()));
    }
    s
}

/// Escapes text for Slack mrkdwn (control and bidi characters shown as escapes, see
/// [`crate::output`]; `&`, `<`, `>` as entities) and clips it to `max` characters.
fn slack_escape(s: &str, max: usize) -> String {
    let s = crate::output::escape_control(s);
    let clipped: String = if s.chars().count() > max {
        s.chars()
            .take(max.saturating_sub(1))
            .chain(std::iter::once('…'))
            .collect()
    } else {
        s.to_string()
    };
    clipped
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Inline code in mrkdwn (backticks inside are replaced, they would end the span).
fn slack_code(s: &str, max: usize) -> String {
    format!("`{}`", slack_escape(&s.replace('`', "'"), max))
}

/// The Slack incoming-webhook body: `text` (notification fallback), a header block, one
/// section per site (at most [`SLACK_MAX_ALERTS`]) with fields Site, Metric, Rate,
/// Confidence, Verdict, Hint and Capture, and a context line.
pub fn slack_body(origin: &Origin, alerts: &[Alert]) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(&crate::output::escape_control(&headline(origin, alerts)), 150)},
    })];
    for a in alerts.iter().take(SLACK_MAX_ALERTS) {
        let mut title = format!(
            "*{}*: {}",
            a.status.label(),
            slack_code(&short_site(&a.site), 500)
        );
        if !a.change.is_empty() {
            title.push_str(&format!(" ({})", slack_escape(&a.change, 500)));
        }
        let hint = a.hints.first().map(String::as_str).unwrap_or("-");
        let field = |name: &str, value: String| json!({"type": "mrkdwn", "text": format!("*{name}*\n{value}")});
        let rate = if a.limit_text == "-" {
            a.rate_text.clone()
        } else {
            format!("{} (limit {})", a.rate_text, a.limit_text)
        };
        blocks.push(json!({"type": "divider"}));
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": title},
            "fields": [
                field("Site", slack_code(&a.site, 1800)),
                field("Metric", slack_escape(&format!("{} ({})", a.unit, a.metric), 1800)),
                field("Rate", slack_escape(&rate, 1800)),
                field("Confidence", format!("{:.0}%", a.confidence * 100.0)),
                field("Verdict", slack_escape(&a.verdict, 1800)),
                field("Hint", slack_escape(hint, 1800)),
                field("Capture", slack_escape(&origin.name, 1800)),
            ],
        }));
    }
    let mut context = format!(
        "leakscope {} · capture {} · target {} on {} · {}",
        env!("CARGO_PKG_VERSION"),
        origin.dir.display(),
        origin.target,
        origin.host,
        origin.time
    );
    if alerts.len() > SLACK_MAX_ALERTS {
        context.push_str(&format!(
            " · {} more site(s) not shown",
            alerts.len() - SLACK_MAX_ALERTS
        ));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": slack_escape(&context, 2900)}],
    }));
    json!({
        "text": slack_escape(&summary(origin, alerts), 3000),
        "blocks": blocks,
    })
}

pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars()
            .take(max.saturating_sub(1))
            .chain(std::iter::once('…'))
            .collect()
    } else {
        s.to_string()
    }
}

/// The generic body: source, capture, time, a summary and every alert as a finding.
pub fn generic_body(origin: &Origin, alerts: &[Alert]) -> Value {
    json!({
        "source": "leakscope",
        "version": env!("CARGO_PKG_VERSION"),
        "capture": origin.dir,
        "capture_name": origin.name,
        "target": origin.target,
        "host": origin.host,
        "time": origin.time,
        "summary": crate::output::escape_control(&summary(origin, alerts)),
        "findings": alerts,
    })
}

/// The body of a round's alerts in the chosen format.
pub fn body(format: BodyFormat, origin: &Origin, alerts: &[Alert]) -> Value {
    match format {
        BodyFormat::Slack => slack_body(origin, alerts),
        BodyFormat::Generic => generic_body(origin, alerts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_slack_text() {
        assert_eq!(slack_escape("a<b>&c", 100), "a&lt;b&gt;&amp;c");
        assert_eq!(slack_escape("abcdef", 4), "abc…");
        assert_eq!(slack_code("f`x`", 100), "`f'x'`");
    }
}
