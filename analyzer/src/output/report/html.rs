//! The HTML page: one self-contained file (inline CSS and SVG, no script, no external
//! reference; a Content-Security-Policy forbids loading anything). Every string that comes
//! from a capture (function names, file paths, labels, targets, errors) is escaped, and long
//! ones are clipped and wrapped.

use std::fmt::Write as _;

use super::axis::{format_duration, format_time};
use super::data::FlameData;
use super::scene::clip;
use super::{Report, CHART_WIDTH};
use crate::model::fit::Verdict;
use crate::output::render::{format_rate, format_value, short_site};
use crate::rank::Finding;
use crate::source::load::Metric;

/// Longest site name shown in a table row (the full name is in the row's details).
const SITE_CHARS: usize = 160;
/// Longest text shown for one stack frame, hint or detail.
const TEXT_CHARS: usize = 600;
/// Rows of the events table.
const EVENT_ROWS: usize = 100;

pub use crate::output::escape_html as escape;

/// Clipped and escaped.
fn text(s: &str, max: usize) -> String {
    escape(&clip(s, max))
}

/// Longest single word (a site or path) kept inside running text.
const WORD_CHARS: usize = 200;

/// Running text (verdict, hints): every overlong word clipped, then the whole; escaped.
fn prose(s: &str, max: usize) -> String {
    let words: String = s
        .split(' ')
        .map(|w| clip(w, WORD_CHARS))
        .collect::<Vec<_>>()
        .join(" ");
    text(&words, max)
}

const CSS: &str = r#"
:root{--ink:#1d1d1f;--muted:#6b6b6b;--line:#e2e2e2;--bg:#fff;--soft:#f6f7f9;--leak:#c0392b;--maybe:#d35400;--ok:#2e7d32;--shape:#5d6d7e}
*{box-sizing:border-box}
body{margin:0;overflow-wrap:anywhere;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:4px 0}
h2{font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
p{margin:6px 0}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
.sub{color:var(--muted)}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}
.verdict{border-left:6px solid var(--ok);background:var(--soft);padding:10px 16px;margin-top:12px}
.verdict.leak{border-color:var(--leak)}
.verdict .text{font-size:15px}
.top{margin:10px 0;padding:8px 12px;background:#fff;border:1px solid var(--line)}
.top .site{font-size:16px;font-weight:600}
.wrap,.site,.stack li,td{overflow-wrap:anywhere;word-break:break-word}
svg{max-width:100%;height:auto;display:block;font-family:system-ui,"DejaVu Sans",sans-serif}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;vertical-align:top;padding:5px 6px;border-bottom:1px solid var(--line)}
th{font-size:12px;color:var(--muted);font-weight:600;background:var(--soft)}
td.num,th.num{text-align:right;white-space:nowrap}
table.sites{table-layout:fixed}
table.sites col.n{width:34px}table.sites col.v{width:104px}table.sites col.r{width:150px}
table.sites col.c{width:62px}table.sites col.g{width:80px}table.sites col.s{width:236px}
.hint{color:#333;font-size:13px}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;color:#fff;background:var(--shape);white-space:nowrap}
.badge.leak{background:var(--leak)}.badge.possible-leak{background:var(--maybe)}.badge.growing{background:#b7950b}.badge.steady,.badge.too-short,.badge.shrinking{background:#95a5a6}
.metric{display:block;color:var(--muted);font-size:11px;margin-top:2px}
details{margin-top:4px}
summary{cursor:pointer;color:#1f5fa8;font-size:12.5px}
ol.stack{margin:4px 0 4px 22px;padding:0;font-family:ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12px}
.muted{color:var(--muted)}
.note{background:#fff8e1;border:1px solid #f2d16b;padding:6px 10px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;overflow-wrap:anywhere}
pre{background:var(--soft);padding:10px;white-space:pre-wrap;overflow-wrap:anywhere}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"#;

fn badge(v: Verdict) -> String {
    format!("<span class=\"badge {}\">{}</span>", v.code(), v.label())
}

fn metric_label(m: Metric) -> &'static str {
    match m {
        Metric::InuseSpace => "Go heap bytes",
        Metric::InuseObjects => "Go heap objects",
        Metric::Goroutines => "goroutines",
        Metric::Native => "native bytes",
    }
}

/// The caption of a flame graph: what grew between which two profiles.
pub fn flame_caption(f: &FlameData) -> String {
    format!(
        "{} growth from {} to {} ({}): +{} in {} stack(s)",
        f.title,
        format_time(f.before.time_ns),
        format_time(f.after.time_ns),
        format_duration(f.after.time_ns.saturating_sub(f.before.time_ns)),
        f.unit.format(f.tree.growth),
        f.tree.growing_stacks
    )
}

fn site_rows(out: &mut String, r: &Report, findings: &[Finding], top: usize, id_prefix: &str) {
    out.push_str(
        "<table class=\"sites\"><colgroup><col class=\"n\"><col><col class=\"v\"><col class=\"r\">\
         <col class=\"c\"><col class=\"g\"><col class=\"g\"><col class=\"s\"></colgroup>\
         <thead><tr><th class=\"num\">#</th><th>call site and hint</th><th>verdict</th>\
         <th class=\"num\">rate</th><th class=\"num\">confidence</th><th class=\"num\">growth</th>\
         <th class=\"num\">now</th><th>series and fitted trend</th></tr></thead><tbody>",
    );
    for (i, f) in findings.iter().take(top).enumerate() {
        let why = crate::output::words::why(f);
        let _ = write!(
            out,
            "<tr id=\"{id_prefix}-{}\"><td class=\"num\">{}</td><td><div class=\"site mono\" title=\"{}\">{}</div>\
             <div class=\"hint\">{}</div><details><summary>stack ({} frame(s){}) and evidence</summary>\
             <div class=\"mono wrap\">{}</div><ol class=\"stack\">",
            i + 1,
            i + 1,
            text(&f.site, 2000),
            text(&short_site(&f.site), SITE_CHARS),
            prose(&why, TEXT_CHARS),
            f.stack.len(),
            if f.stacks > 1 {
                format!(", {} distinct stacks; the largest shown", f.stacks)
            } else {
                String::new()
            },
            text(&f.site, TEXT_CHARS),
        );
        for frame in f.stack.iter() {
            let _ = write!(out, "<li>{}</li>", text(&frame.display(), TEXT_CHARS));
        }
        let _ = write!(
            out,
            "</ol><p class=\"muted\">{}. {} point(s) in {} run(s) over {}; start {}, end {}, peak {}; Mann-Kendall p = {:.2e}, R² = {:.2}.</p>",
            prose(&crate::output::words::reason(&f.fit.reason), TEXT_CHARS),
            f.fit.points,
            f.fit.runs,
            format_duration((f.fit.hours * 3.6e12) as i64),
            escape(&format_value(f.metric, f.fit.start)),
            escape(&format_value(f.metric, f.fit.end)),
            escape(&format_value(f.metric, f.fit.peak)),
            f.fit.mk_p,
            f.fit.r2,
        );
        if f.hints.0.len() > 1 {
            out.push_str("<ul>");
            for h in &f.hints.0[1..] {
                let h = crate::output::words::hint(h);
                let _ = write!(out, "<li class=\"hint\">{}</li>", prose(&h, TEXT_CHARS));
            }
            out.push_str("</ul>");
        }
        let _ = write!(
            out,
            "</details></td><td>{}<span class=\"metric\">{}</span><span class=\"metric evidence\">{}</span></td><td class=\"num\">{}</td>\
             <td class=\"num\">{:.0}%</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            badge(f.fit.verdict),
            metric_label(f.metric),
            escape(&crate::output::render::evidence_note(f)),
            escape(&format_rate(f.metric, f.fit.rate_per_hour)),
            f.fit.confidence * 100.0,
            escape(&format_value(f.metric, f.fit.growth)),
            escape(&format_value(f.metric, f.fit.end)),
            r.site_chart(f, 228.0, 58.0, true).to_svg("spark"),
        );
    }
    out.push_str("</tbody></table>");
    if findings.len() > top {
        let _ = write!(
            out,
            "<p class=\"muted\">{} more not shown (raise <code>--top</code>, or run <code>leakscope rank</code>).</p>",
            findings.len() - top
        );
    }
}

fn header(out: &mut String, r: &Report) {
    let names: Vec<&str> = r.captures.iter().map(|c| c.name.as_str()).collect();
    let targets: Vec<String> = {
        let mut t: Vec<String> = r
            .captures
            .iter()
            .map(|c| c.manifest.target.clone())
            .collect();
        t.dedup();
        t
    };
    let (t0, t1) = r.axis.span();
    let _ = write!(
        out,
        "<header><h1>leakscope report: {}</h1><p class=\"sub wrap\">{} · {} to {} ({}) · {} run(s)</p>\
         <nav><a href=\"#verdict\">Verdict</a><a href=\"#timeline\">Memory timeline</a>\
         <a href=\"#sites\">Ranked sites</a><a href=\"#goroutines\">Goroutines</a>\
         <a href=\"#flame\">Flame graphs</a><a href=\"#capture\">Capture</a><a href=\"#command\">Command</a></nav></header>",
        text(&names.join(", "), 300),
        text(&targets.join(", "), 400),
        format_time(t0),
        format_time(t1),
        format_duration(t1.saturating_sub(t0)),
        r.data.runs.len(),
    );
}

fn verdict(out: &mut String, r: &Report) {
    let leaks = r.ranking.leaks();
    let _ = write!(
        out,
        "<section id=\"verdict\" class=\"verdict{}\"><h2>Verdict</h2><p class=\"text\">{}</p>",
        if leaks.is_empty() { "" } else { " leak" },
        prose(&crate::output::render::verdict(r.ranking), 4000)
    );
    let top = r.top_findings(1);
    if let Some(f) = top.first() {
        let _ = write!(
            out,
            "<div class=\"top\"><div class=\"muted\">{}</div><div id=\"top-site\" class=\"site mono\" title=\"{}\">{}</div>\
             <div>{} {} · {} · confidence {:.0}% · now {}</div><div class=\"hint\">{}</div></div>",
            if f.fit.verdict.is_leak() {
                "Top leak"
            } else if f.fit.verdict == Verdict::Growing {
                "Growing, too early to tell (not a confirmed leak)"
            } else {
                "Largest finding (not a leak)"
            },
            text(&f.site, 2000),
            text(&short_site(&f.site), SITE_CHARS),
            badge(f.fit.verdict),
            metric_label(f.metric),
            escape(&format_rate(f.metric, f.fit.rate_per_hour)),
            f.fit.confidence * 100.0,
            escape(&format_value(f.metric, f.fit.end)),
            prose(
                &crate::output::words::why(f),
                TEXT_CHARS
            ),
        );
        out.push_str(&r.site_chart(f, CHART_WIDTH, 280.0, false).to_svg("chart"));
    }
    out.push_str("</section>");
}

fn timeline(out: &mut String, r: &Report) {
    out.push_str("<section id=\"timeline\"><h2>Memory timeline</h2>");
    let (memory, goroutines) = (
        r.memory_chart(CHART_WIDTH, 320.0),
        r.goroutine_chart(CHART_WIDTH, 220.0),
    );
    if memory.is_none() && goroutines.is_none() {
        out.push_str("<p class=\"muted\">No process samples or profiles to chart.</p>");
    }
    for s in [memory, goroutines].into_iter().flatten() {
        out.push_str(&s.to_svg("chart"));
    }
    out.push_str(
        "<p class=\"muted\">Dashed vertical lines are restarts (a new run); yellow bands are scrape gaps; \
         red ticks are failed scrape attempts; gray bands stand for long spans without data, compressed. \
         Hover a marker for details.</p>",
    );
    match &r.ranking.process {
        Some(p) => {
            let _ = write!(
                out,
                "<p><b>Process memory:</b> {}</p>",
                prose(&crate::output::words::process(&p.finding), TEXT_CHARS)
            );
        }
        None => out.push_str(
            "<p class=\"muted\">No process samples (an imported capture): RSS and MemStats are not charted.</p>",
        ),
    }
    // Events: restarts, gaps, failed scrapes.
    let mut events: Vec<(i64, &str, String)> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for run in &r.data.runs {
        let first = seen.insert(run.capture.clone());
        events.push((
            run.first,
            if first { "run started" } else { "restart" },
            format!(
                "{} {} ({} profiles, {})",
                run.capture,
                run.run_id,
                run.profiles,
                format_duration(run.last.saturating_sub(run.first))
            ),
        ));
    }
    for (a, _, what) in &r.data.gaps {
        events.push((*a, "scrape gap", what.clone()));
    }
    for f in &r.data.failures {
        events.push((
            f.first,
            "scrape failed",
            format!(
                "{}: {} attempt(s) until {}: {}",
                f.capture,
                f.attempts,
                format_time(f.last),
                f.what
            ),
        ));
    }
    events.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    out.push_str("<h3>Events</h3><table><thead><tr><th>time (UTC)</th><th>event</th><th>detail</th></tr></thead><tbody>");
    for (t, what, detail) in events.iter().take(EVENT_ROWS) {
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"wrap\">{}</td></tr>",
            format_time(*t),
            what,
            prose(detail, TEXT_CHARS)
        );
    }
    out.push_str("</tbody></table>");
    if events.len() > EVENT_ROWS {
        let _ = write!(
            out,
            "<p class=\"muted\">{} more events (see <code>leakscope sql CAPTURE --query gaps_and_restarts</code>).</p>",
            events.len() - EVENT_ROWS
        );
    }
    out.push_str("</section>");
}

fn sites(out: &mut String, r: &Report) {
    out.push_str("<section id=\"sites\"><h2>Ranked call sites</h2>");
    let _ = write!(
        out,
        "<p class=\"muted\">Every metric's findings in one order: leaks first (most confident, byte \
         metrics before goroutines, then fastest). Grouped by {}. Rates are per hour; growth sums each run's rise; \
         the chart shows every run on the report's time axis with the fitted trend (dashed).</p>",
        match r.ranking.by {
            crate::model::site::GroupBy::Site => "call site (first frame outside the runtime and standard library, with its line)",
            crate::model::site::GroupBy::Function => "call-site function",
            crate::model::site::GroupBy::Stack => "whole stack",
        }
    );
    if r.ranking.findings.is_empty() {
        out.push_str("<p>No samples to rank.</p>");
    } else {
        site_rows(out, r, &r.ranking.findings, r.opts.top, "site");
    }
    out.push_str("</section>");
}

fn goroutines(out: &mut String, r: &Report) {
    out.push_str("<section id=\"goroutines\"><h2>Goroutine growth</h2>");
    let section = r
        .ranking
        .sections
        .iter()
        .find(|s| s.metric == Metric::Goroutines);
    match section {
        None => out.push_str("<p class=\"muted\">The capture has no goroutine profiles.</p>"),
        Some(s) => {
            let growing = s
                .findings
                .iter()
                .filter(|f| f.fit.verdict.is_leak())
                .count();
            let _ = write!(
                out,
                "<p>{} goroutine profile(s) in {} run(s); {} call site(s), {} of them growing.</p>",
                s.profiles,
                s.runs,
                s.findings.len(),
                growing
            );
            if let Some(c) = r.goroutine_chart(CHART_WIDTH, 220.0) {
                out.push_str(&c.to_svg("chart"));
            }
            if let Some(stacks) = r
                .ranking
                .process
                .as_ref()
                .and_then(|p| p.get("go_stack_inuse_bytes"))
            {
                let _ = write!(
                    out,
                    "<p>Goroutine stack memory: {}/h ({}).</p>",
                    escape(&crate::units::format_bytes(stacks.fit.rate_per_hour)),
                    stacks.fit.verdict.label()
                );
            }
            if !s.findings.is_empty() {
                site_rows(out, r, &s.findings, r.opts.top, "goroutine");
            }
        }
    }
    if !r.data.leak_detector.is_empty() {
        out.push_str(
            "<h3>Go's goroutine leak detector</h3><p class=\"muted\">Goroutines the runtime reports as blocked \
             forever on unreachable synchronization (goroutineleak profile, latest per capture), by call site.</p>\
             <table><thead><tr><th>call site</th><th class=\"num\">leaked goroutines</th></tr></thead><tbody>",
        );
        for (site, n) in &r.data.leak_detector {
            let _ = write!(
                out,
                "<tr><td class=\"mono wrap\" title=\"{}\">{}</td><td class=\"num\">{n}</td></tr>",
                text(site, 2000),
                text(&short_site(site), SITE_CHARS)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}

fn flames(out: &mut String, r: &Report) {
    out.push_str("<section id=\"flame\"><h2>Flame graphs of growth</h2>");
    match &r.data.window {
        None => out.push_str("<p class=\"muted\">No profiles: nothing to compare.</p>"),
        Some(w) => {
            let _ = write!(
                out,
                "<p>Window: {} to {} ({}), chosen as {}. Each flame graph compares the first profile at or \
                 after the start with the last at or before the end (as <code>leakscope export-pprof</code> \
                 does); widths are growth per call path (root at the bottom, callers below \
                 callees; program frames warm, runtime and standard library gray). Choose other times \
                 with <code>--from</code>/<code>--to</code> (RFC 3339).</p>",
                format_time(w.from),
                format_time(w.to),
                format_duration(w.to.saturating_sub(w.from)),
                escape(&crate::output::words::window_basis(&w.basis))
            );
            if r.data.flames.is_empty() {
                out.push_str(
                    "<p class=\"muted\">Fewer than two profiles of any kind in this window.</p>",
                );
            }
        }
    }
    for f in &r.data.flames {
        let _ = write!(out, "<h3>{}</h3>", escape(&f.title));
        if let Some(n) = &f.note {
            let _ = write!(out, "<p class=\"note\">Note: {}</p>", prose(n, TEXT_CHARS));
        }
        out.push_str(
            &f.tree
                .scene(CHART_WIDTH, f.unit, &flame_caption(f))
                .to_svg("flame"),
        );
        if f.tree.shrinking_stacks > 0 {
            let _ = write!(
                out,
                "<p class=\"muted\">Not drawn: {} stack(s) shrank by {} in all.</p>",
                f.tree.shrinking_stacks,
                escape(&f.unit.format(f.tree.shrink))
            );
        }
    }
    out.push_str("</section>");
}

fn options_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn capture(out: &mut String, r: &Report) {
    out.push_str("<section id=\"capture\"><h2>Capture</h2>");
    for c in &r.captures {
        let m = &c.manifest;
        let _ = write!(
            out,
            "<h3>{}</h3><dl class=\"meta\"><dt>directory</dt><dd class=\"mono\">{}</dd>\
             <dt>target</dt><dd class=\"mono\">{}</dd><dt>host</dt><dd>{}</dd>\
             <dt>started</dt><dd>{}</dd><dt>recorder</dt><dd>leakscope-recorder {} (capture format {})</dd>\
             <dt>options</dt><dd class=\"mono\">{}</dd>",
            text(&c.name, 300),
            text(&c.dir.display().to_string(), TEXT_CHARS),
            text(&m.target, TEXT_CHARS),
            text(&m.host, 200),
            text(&m.start_time, 100),
            text(&m.recorder_version, 100),
            m.format_version,
            text(&options_text(&m.options), 2000),
        );
        if m.sessions.len() > 1 {
            out.push_str("<dt>sessions</dt><dd><ol>");
            for s in &m.sessions {
                let _ = write!(
                    out,
                    "<li>{} at {} on {}: <span class=\"mono\">{}</span></li>",
                    text(&s.mode, 40),
                    text(&s.start_time, 100),
                    text(&s.host, 200),
                    text(&s.target, TEXT_CHARS)
                );
            }
            out.push_str("</ol></dd>");
        }
        let kinds: Vec<String> = r
            .data
            .kinds
            .iter()
            .filter(|k| k.capture == c.name)
            .map(|k| format!("{} {}", k.count, k.kind))
            .collect();
        let _ = write!(
            out,
            "<dt>profiles</dt><dd>{}</dd>",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                text(&kinds.join(", "), 400)
            }
        );
        if let Some(s) = r.data.scrapes.iter().find(|s| s.capture == c.name) {
            let _ = write!(
                out,
                "<dt>scrapes</dt><dd>{} attempt(s), {} failed</dd>",
                s.total, s.failed
            );
        }
        out.push_str("</dl><table><thead><tr><th>run</th><th>first (UTC)</th><th>last (UTC)</th><th class=\"num\">duration</th><th class=\"num\">profiles</th></tr></thead><tbody>");
        for run in r.data.runs.iter().filter(|x| x.capture == c.name) {
            let _ = write!(
                out,
                "<tr><td class=\"mono wrap\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                text(&run.run_id, 200),
                format_time(run.first),
                format_time(run.last),
                format_duration(run.last.saturating_sub(run.first)),
                run.profiles
            );
        }
        out.push_str("</tbody></table>");
    }
    if !r.skipped.is_empty() {
        out.push_str("<h3>Skipped segments</h3><ul>");
        for s in &r.skipped {
            let _ = write!(
                out,
                "<li class=\"mono wrap\">{}: {}</li>",
                text(&s.path.display().to_string(), TEXT_CHARS),
                text(&s.reason, TEXT_CHARS)
            );
        }
        out.push_str("</ul>");
    }
    let sections: Vec<String> = r
        .ranking
        .sections
        .iter()
        .map(|s| {
            format!(
                "{}: {} profiles, {} run(s), {} group(s)",
                s.title,
                s.profiles,
                s.runs,
                s.findings.len()
            )
        })
        .collect();
    let _ = write!(
        out,
        "<p class=\"muted\">Analysed: {}.</p></section>",
        escape(&sections.join("; "))
    );
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let names: Vec<&str> = r.captures.iter().map(|c| c.name.as_str()).collect();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"leakscope {}\">\
         <title>leakscope report: {}</title><style>{}</style></head><body><main>",
        env!("CARGO_PKG_VERSION"),
        text(&names.join(", "), 200),
        CSS.trim()
    );
    header(&mut out, r);
    verdict(&mut out, r);
    timeline(&mut out, r);
    sites(&mut out, r);
    goroutines(&mut out, r);
    flames(&mut out, r);
    capture(&mut out, r);
    let _ = writeln!(
        out,
        "<section id=\"command\"><h2>Command</h2><p>This report was produced by:</p><pre><code>{}</code></pre>\
         <p class=\"muted\">leakscope {}. The same capture and command give the same report.</p></section>\
         <footer>leakscope report · self-contained: no scripts, no external resources.</footer></main></body></html>",
        escape(&r.opts.command),
        env!("CARGO_PKG_VERSION"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            escape("<script>a=\"b\" & 'c'</script>\u{1b}"),
            "&lt;script&gt;a=&quot;b&quot; &amp; &#39;c&#39;&lt;/script&gt;\\x1b"
        );
        assert_eq!(escape("a\u{202e}b\r"), "a\\u{202e}b\\r");
        assert_eq!(text(&"x".repeat(10), 4), "xxx…");
        let long = format!("Top: main.{} grows <fast>", "A".repeat(5000));
        let p = prose(&long, 4000);
        assert!(p.len() < 300 && p.ends_with("grows &lt;fast&gt;"), "{p}");
    }
}

#[cfg(test)]
mod escape_property_tests {
    //! Randomized property (seeded xorshift; thousands of strings mixing markup, quotes,
    //! controls, bidi overrides and other Unicode): no `<`, `>` or quote from data survives
    //! [`escape`], every `&` starts an entity, and no unsafe character is left raw.
    use super::*;

    fn random_text(state: &mut u64) -> String {
        const PIECES: &[&str] = &[
            "<",
            ">",
            "&",
            "\"",
            "'",
            "<script>",
            "</div>",
            "&amp;",
            "&#",
            "\n",
            "\t",
            "\r",
            "\x1b[2J",
            "\u{202e}",
            "\u{2028}",
            "\u{0}",
            "\u{7f}",
            "\u{85}",
            "é",
            "漢",
            "🦀",
            "a",
            "main.(*T).leak",
            " ",
            "\\",
            "`",
            "|",
        ];
        let mut s = String::new();
        let n = *state % 24;
        for _ in 0..n {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            if (*state).is_multiple_of(5) {
                s.push(char::from_u32((*state >> 8) as u32 % 0x11_0000).unwrap_or('?'));
            } else {
                s.push_str(PIECES[(*state % PIECES.len() as u64) as usize]);
            }
        }
        s
    }

    #[test]
    fn no_markup_or_unsafe_character_from_data_survives_escaping() {
        let mut state = 0x5eed_0003_u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let data = random_text(&mut state);
            let html = escape(&data);
            assert!(
                !html.contains(['<', '>', '"', '\'']),
                "{data:?} escaped to {html:?}"
            );
            for (i, _) in html.match_indices('&') {
                let entity = &html[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "{data:?} escaped to {html:?}"
                );
            }
            assert!(
                !html
                    .chars()
                    .any(|c| c != '\n' && c != '\t' && crate::output::is_unsafe(c)),
                "{data:?} escaped to {html:?}"
            );
            let cell = crate::output::markdown_cell(&data);
            assert!(!cell.contains(['<', '>']), "{data:?} as markdown {cell:?}");
            assert!(
                !crate::output::escape_control(&data)
                    .chars()
                    .any(crate::output::is_unsafe),
                "{data:?}"
            );
        }
    }
}
