//! Renders a [`Ranking`] for people: terminal table, markdown for tickets, and the verdict.

use std::fmt::Write as _;

use comfy_table::{presets, ContentArrangement, Table};

use crate::model::fit::Verdict;
use crate::output::escape_control;
use crate::rank::{Finding, Ranking};
use crate::source::load::Metric;
use crate::units::format_bytes;

/// A value in the metric's unit, human readable.
pub fn format_value(metric: Metric, v: f64) -> String {
    match metric {
        Metric::InuseSpace | Metric::Native => format_bytes(v),
        _ => format!("{v:.0}"),
    }
}

pub use crate::output::words::format_rate;

/// Why a ranking of `names` (the captures, comma-separated) cannot be trusted yet, in words.
pub fn shortage(names: &str, s: &crate::rank::Shortage) -> String {
    match s {
        crate::rank::Shortage::Empty => {
            format!("{names}: empty capture: no profiles or process samples to analyse")
        }
        crate::rank::Shortage::TooFewProfiles { profiles, need } => {
            let counts = profiles
                .iter()
                .map(|(m, n)| format!("{n} {} profile(s)", m.kind()))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{names}: not enough profiles to fit a trend ({counts}; need at least {need} in one run)"
            )
        }
    }
}

/// One line of text: every run of whitespace (newlines included) collapsed to one space,
/// and any other control or bidi character shown escaped (see [`crate::output`]).
pub fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    escape_control(&joined).into_owned()
}

/// A finding above the thresholds in one line: `unit site: rate (confidence N%, limit L)`.
pub fn crossing(c: &crate::rank::alert::Crossing) -> String {
    let f = c.finding;
    format!(
        "{} {}: {} (confidence {:.0}%, limit {})",
        f.metric.unit(),
        f.site,
        format_rate(f.metric, f.fit.rate_per_hour),
        f.fit.confidence * 100.0,
        format_rate(f.metric, c.limit)
    )
}

/// A duration given in hours, for people: `45s`, `3m20s`, `2h05m`, `3d4h`.
pub fn format_hours(h: f64) -> String {
    if !h.is_finite() || h < 0.0 {
        return "?".into();
    }
    let s = (h * 3600.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The verdict of a finding with the evidence behind it: its label, the points and span
/// it was judged on, and for `growing` how much longer to record.
pub fn verdict_cell(f: &Finding) -> String {
    format!("{} ({})", f.fit.verdict.label(), evidence_note(f))
}

/// The evidence behind a finding's verdict: points and span judged, and for `growing` how
/// much longer to record (`14 pts, 2m10s; record ~3m00s more`).
pub fn evidence_note(f: &Finding) -> String {
    let mut s = format!("{} pts, {}", f.fit.points, format_hours(f.fit.hours));
    if let Some(more) = f.fit.record_more_hours {
        let _ = write!(s, "; record ~{} more", format_hours(more));
    }
    s
}

fn describe(f: &Finding) -> String {
    let mut s = format!(
        "{} ({}) grows {} (confidence {:.0}%, now {})",
        f.site,
        f.metric.unit(),
        format_rate(f.metric, f.fit.rate_per_hour),
        f.fit.confidence * 100.0,
        format_value(f.metric, f.fit.end)
    );
    if let Some(h) = f.hints.0.first() {
        let _ = write!(s, ": {}", crate::output::words::hint(h));
    }
    s
}

/// The one-paragraph verdict: what leaks, how fast, how sure.
pub fn verdict(r: &Ranking) -> String {
    let leaks = r.leaks();
    let mut out = String::new();
    let sure: Vec<_> = leaks
        .iter()
        .filter(|f| f.fit.verdict == Verdict::Leak)
        .collect();
    if leaks.is_empty() {
        let checked: Vec<String> = r
            .sections
            .iter()
            .map(|s| format!("{} {}", s.findings.len(), s.title.to_lowercase()))
            .collect();
        let _ = write!(
            out,
            "No leak found: checked {} group(s) ({})",
            r.sections.iter().map(|s| s.findings.len()).sum::<usize>(),
            checked.join(", ")
        );
        let shapes: Vec<String> = r
            .sections
            .iter()
            .flat_map(|s| s.findings.iter())
            .filter(|f| {
                matches!(
                    f.fit.verdict,
                    Verdict::Plateau | Verdict::Sawtooth | Verdict::WarmUp
                )
            })
            .take(3)
            .map(|f| format!("{} is a {}", f.site, f.fit.verdict.label()))
            .collect();
        if !shapes.is_empty() {
            let _ = write!(out, "; growth that is not a leak: {}", shapes.join(", "));
        }
        out.push('.');
    } else {
        let _ = write!(
            out,
            "{} leak(s) found{}. Top: {}.",
            sure.len(),
            if leaks.len() > sure.len() {
                format!(" and {} possible", leaks.len() - sure.len())
            } else {
                String::new()
            },
            describe(leaks[0])
        );
        for f in leaks.iter().skip(1).take(3) {
            let _ = write!(
                out,
                " Also {} grows {} ({:.0}%).",
                f.site,
                format_rate(f.metric, f.fit.rate_per_hour),
                f.fit.confidence * 100.0
            );
        }
    }
    let growing: Vec<&Finding> = r
        .findings
        .iter()
        .filter(|f| f.fit.verdict == Verdict::Growing)
        .collect();
    if let Some(top) = growing.first() {
        let more = growing
            .iter()
            .filter_map(|f| f.fit.record_more_hours)
            .fold(0.0, f64::max);
        let _ = write!(
            out,
            " {} site(s) growing, too early to tell (record ~{} more to decide); fastest: {} grows {}.",
            growing.len(),
            format_hours(more),
            top.site,
            format_rate(top.metric, top.fit.rate_per_hour)
        );
    }
    if let Some(p) = &r.process {
        let _ = write!(
            out,
            " Process: {}.",
            crate::output::words::process(&p.finding)
        );
    }
    if !r.skipped.is_empty() {
        let _ = write!(
            out,
            " {} unreadable segment(s) were skipped.",
            r.skipped.len()
        );
    }
    out
}

fn section_table(findings: &[Finding], top: usize, markdown: bool) -> String {
    let mut t = Table::new();
    if markdown {
        t.load_preset(presets::ASCII_MARKDOWN);
    } else {
        t.load_preset(presets::UTF8_BORDERS_ONLY);
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if t.width().is_none() {
            t.set_width(180);
        }
    }
    t.set_header(vec![
        "#",
        "verdict",
        "rate",
        "confidence",
        "growth",
        "now",
        "site",
        "why / hint",
    ]);
    let esc = |s: &str| {
        if markdown {
            crate::output::markdown_cell(s)
        } else {
            crate::output::escape_control(s).into_owned()
        }
    };
    for f in findings.iter().take(top) {
        let why = crate::output::words::why(f);
        t.add_row(vec![
            f.rank.to_string(),
            verdict_cell(f),
            format_rate(f.metric, f.fit.rate_per_hour),
            format!("{:.0}%", f.fit.confidence * 100.0),
            format_value(f.metric, f.fit.growth),
            format_value(f.metric, f.fit.end),
            esc(&short_site(&f.site)),
            esc(&why),
        ]);
    }
    t.to_string()
}

/// What a section was judged on: distinct profiles (and repeats left out), runs, span.
pub fn section_span(s: &crate::rank::Section) -> String {
    let repeats = if s.repeats > 0 {
        format!(
            " ({} repeats of an unchanged heap profile left out: no GC between scrapes)",
            s.repeats
        )
    } else {
        String::new()
    };
    format!(
        "{} profiles{repeats}, {} run(s), {} recorded",
        s.profiles,
        s.runs,
        format_hours(s.hours)
    )
}

/// A site key with its source path cut to the file name (`main.f main.go:12`).
pub fn short_site(site: &str) -> String {
    match site.rsplit_once(' ') {
        Some((func, loc)) if loc.contains('/') => {
            format!("{func} {}", loc.rsplit('/').next().unwrap_or(loc))
        }
        _ => site.to_string(),
    }
}

/// Terminal rendering: verdict, then one table per section, then process memory.
pub fn text(r: &Ranking, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", escape_control(&verdict(r)));
    for s in &r.sections {
        let _ = writeln!(out, "== {} — {}", s.title, section_span(s));
        if s.findings.is_empty() {
            let _ = writeln!(out, "(no samples)\n");
            continue;
        }
        let _ = writeln!(out, "{}\n", section_table(&s.findings, top, false));
    }
    if let Some(p) = &r.process {
        let _ = writeln!(
            out,
            "== Process memory\n{}",
            crate::output::words::process(&p.finding)
        );
        for m in &p.metrics {
            let _ = writeln!(
                out,
                "  {:<24} {:>12}  {} ({:.0}%)",
                m.label,
                format!("{}/h", format_bytes(m.fit.rate_per_hour)),
                m.fit.verdict.label(),
                m.fit.confidence * 100.0
            );
        }
    }
    for s in &r.skipped {
        let _ = writeln!(
            out,
            "skipped segment {}: {}",
            escape_control(&s.path.display().to_string()),
            escape_control(&s.reason)
        );
    }
    out
}

/// Markdown rendering for tickets.
pub fn markdown(r: &Ranking, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## leakscope verdict\n\n{}\n",
        crate::output::markdown_cell(&verdict(r))
    );
    for s in &r.sections {
        let _ = writeln!(out, "### {} ({})\n", s.title, section_span(s));
        if !s.findings.is_empty() {
            let _ = writeln!(out, "{}\n", section_table(&s.findings, top, true));
        }
    }
    if let Some(p) = &r.process {
        let _ = writeln!(
            out,
            "### Process memory\n\n{}\n",
            crate::output::words::process(&p.finding)
        );
    }
    out
}
