//! Renders a [`Comparison`] (`leakscope compare`): terminal table, markdown for tickets,
//! and JSON (docs/compare-json.md).

use std::fmt::Write as _;
use std::io::Write;

use comfy_table::{presets, ContentArrangement, Table};

use crate::model::compare::Change;
use crate::output::render::{format_hours, short_site};
use crate::output::words;
use crate::rank::compare::{Comparison, SideSummary};

/// The outcome in one line: `FAIL` with the new and worse leaks, or `OK`, then the counts.
pub fn summary(c: &Comparison, fail_on_inconclusive: bool) -> String {
    let counts = Change::ALL
        .iter()
        .filter(|ch| c.count(**ch) > 0)
        .map(|ch| format!("{} {}", c.count(*ch), words::change(*ch)))
        .collect::<Vec<_>>()
        .join(", ");
    let counts = if counts.is_empty() {
        "no sites on either side".to_string()
    } else {
        counts
    };
    let head = if c.fails(fail_on_inconclusive) {
        let n = c.count(Change::NewLeak) + c.count(Change::Worse);
        if n == 0 {
            "FAIL: sites the data cannot tell about (--fail-on-inconclusive)".to_string()
        } else {
            format!("FAIL: {n} new or worse leak(s)")
        }
    } else {
        "OK: no new or worse leak".to_string()
    };
    format!("{head} ({counts})")
}

/// What one side was judged on: its captures, then per metric profiles, runs and hours.
pub fn side_line(name: &str, s: &SideSummary) -> String {
    let sections = s
        .sections
        .iter()
        .map(|x| {
            format!(
                "{} {} profiles, {} run(s), {}",
                x.metric.code(),
                x.profiles,
                x.runs,
                format_hours(x.hours)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let short = if s.too_few_profiles {
        " — too few profiles to fit a trend: every site is inconclusive"
    } else {
        ""
    };
    format!("{name}: {} ({sections}){short}", s.captures.join(", "))
}

fn table(c: &Comparison, top: usize, markdown: bool) -> String {
    let mut t = Table::new();
    if markdown {
        t.load_preset(presets::ASCII_MARKDOWN);
    } else {
        t.load_preset(presets::UTF8_BORDERS_ONLY);
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if t.width().is_none() {
            t.set_width(200);
        }
    }
    t.set_header(vec![
        "change",
        "metric",
        "site",
        "before",
        "rate before",
        "after",
        "rate after",
        "why",
    ]);
    let esc = |s: &str| {
        if markdown {
            crate::output::markdown_cell(s)
        } else {
            crate::output::escape_control(s).into_owned()
        }
    };
    for s in c
        .sites
        .iter()
        .filter(|s| s.change != Change::Unchanged)
        .take(top)
    {
        t.add_row(vec![
            words::change(s.change).to_string(),
            s.metric.code().to_string(),
            esc(&short_site(&s.site)),
            words::side_verdict(&s.before),
            words::side_rate(s.metric, &s.before),
            words::side_verdict(&s.after),
            words::side_rate(s.metric, &s.after),
            esc(&words::change_why(s)),
        ]);
    }
    t.to_string()
}

/// Lines under the table: rows left out, and the unchanged sites.
fn footer(c: &Comparison, top: usize) -> String {
    let changed = c.sites.len() - c.count(Change::Unchanged);
    let mut out = String::new();
    if changed > top {
        let _ = writeln!(out, "({} more sites not shown; --top)", changed - top);
    }
    let _ = writeln!(
        out,
        "{} unchanged site(s): not leaking on either side. Rates are whole-window Theil-Sen slopes with {:.0}% intervals.",
        c.count(Change::Unchanged),
        c.interval_level * 100.0
    );
    out
}

/// Terminal rendering: outcome, the two sides, then the sites that changed.
pub fn text(c: &Comparison, top: usize, fail_on_inconclusive: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary(c, fail_on_inconclusive));
    let _ = writeln!(out, "{}", side_line("BEFORE", &c.before));
    let _ = writeln!(out, "{}\n", side_line("AFTER", &c.after));
    if c.sites.len() > c.count(Change::Unchanged) {
        let _ = writeln!(out, "{}", table(c, top, false));
    }
    out.push_str(&footer(c, top));
    out
}

/// Markdown rendering for tickets and pull requests.
pub fn markdown(c: &Comparison, top: usize, fail_on_inconclusive: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## leakscope compare\n\n**{}**\n\n- {}\n- {}\n",
        crate::output::markdown_cell(&summary(c, fail_on_inconclusive)),
        crate::output::markdown_cell(&side_line("BEFORE", &c.before)),
        crate::output::markdown_cell(&side_line("AFTER", &c.after)),
    );
    if c.sites.len() > c.count(Change::Unchanged) {
        let _ = writeln!(out, "{}\n", table(c, top, true));
    }
    out.push_str(&footer(c, top));
    out
}

/// Writes `c` as pretty-printed JSON (no trailing newline): the typed comparison, each
/// site's `why` in words, and the outcome (`fails`, `summary`).
pub fn write_json(
    out: &mut impl Write,
    c: &Comparison,
    fail_on_inconclusive: bool,
) -> serde_json::Result<()> {
    let mut doc = serde_json::to_value(c)?;
    if let Some(sites) = doc.get_mut("sites").and_then(|s| s.as_array_mut()) {
        for (v, s) in sites.iter_mut().zip(&c.sites) {
            if let Some(o) = v.as_object_mut() {
                o.insert("why".into(), words::change_why(s).into());
            }
        }
    }
    if let Some(o) = doc.as_object_mut() {
        o.insert("fails".into(), c.fails(fail_on_inconclusive).into());
        o.insert("summary".into(), summary(c, fail_on_inconclusive).into());
    }
    serde_json::to_writer_pretty(out, &doc)
}
