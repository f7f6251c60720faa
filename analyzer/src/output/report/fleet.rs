//! The fleet report (`fleet rank --html FILE`): one self-contained HTML file (no scripts,
//! no external resources) with the summary, the outliers, a table of the sites that leak
//! somewhere with a strip chart of every unit's rate (inline SVG), the units and what was
//! skipped. Deterministic: the same fleet ranking gives the same file.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{AnalyzeError, Result};
use crate::output::escape_html as escape;
use crate::output::fleet::{outlier, skipped_line, summary};
use crate::output::render::{format_rate, short_site};
use crate::rank::fleet::{FleetRanking, FleetSite};

/// Sites shown in the report at most.
pub const MAX_SITES: usize = 200;

const CSS: &str = r#"
:root{--ink:#1d1d1f;--muted:#6b6b6b;--line:#e2e2e2;--soft:#f6f7f9;--leak:#c0392b;--unit:#1f5fa8;--quiet:#95a5a6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);overflow-wrap:anywhere}
main{max-width:1240px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:4px 0}
h2{font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.summary{border-left:6px solid var(--leak);background:var(--soft);padding:10px 16px;margin-top:12px;font-size:15px}
.summary.clean{border-color:#2e7d32}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;vertical-align:top;padding:5px 6px;border-bottom:1px solid var(--line)}
th{font-size:12px;color:var(--muted);font-weight:600;background:var(--soft)}
td.num{text-align:right;white-space:nowrap}
.mono{font-family:ui-monospace,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
.muted{color:var(--muted)}
.out{color:var(--leak);font-weight:600}
svg{display:block}
ul.outliers li{margin:4px 0}
table.units{width:auto;min-width:420px}table.units td,table.units th{padding-right:24px}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"#;

/// Width and height of a strip chart, in CSS pixels.
const STRIP: (f64, f64) = (280.0, 34.0);

/// A strip chart of one site's unit rates: a dot per unit on a linear axis from 0 (or the
/// lowest rate, if negative) to the highest, the p10-p90 band shaded, the median as a line;
/// leaking units blue, others grey, outliers red and larger. Each dot has a tooltip.
fn strip(s: &FleetSite) -> String {
    let (w, h) = STRIP;
    let pad = 6.0;
    let lo = s.spread.min.min(0.0);
    let hi = s.spread.max.max(lo + f64::MIN_POSITIVE);
    let x = |v: f64| pad + (v - lo) / (hi - lo) * (w - 2.0 * pad);
    let mut out = format!(
        "<svg class=\"strip\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-label=\"rates of {} unit(s)\">",
        s.rates.len()
    );
    let _ = write!(
        out,
        "<line x1=\"{pad}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\" stroke=\"#ccc\"/>\
         <rect x=\"{:.1}\" y=\"6\" width=\"{:.1}\" height=\"16\" fill=\"#e8eef7\"/>\
         <line x1=\"{m:.1}\" y1=\"4\" x2=\"{m:.1}\" y2=\"24\" stroke=\"#333\" stroke-width=\"1.5\"><title>median {}</title></line>",
        x(s.spread.p10),
        (x(s.spread.p90) - x(s.spread.p10)).max(1.0),
        escape(&format_rate(s.metric, s.spread.median)),
        y = 14,
        x2 = w - pad,
        m = x(s.spread.median),
    );
    for r in s.rates.iter().rev() {
        let is_out = s.outliers.iter().any(|o| o.unit == r.unit);
        let (fill, radius) = match (is_out, r.leak) {
            (true, _) => ("var(--leak)", 5.5),
            (false, true) => ("var(--unit)", 3.5),
            (false, false) => ("var(--quiet)", 3.0),
        };
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"14\" r=\"{radius}\" fill=\"{fill}\" fill-opacity=\"0.8\"><title>{}: {}{}</title></circle>",
            x(r.rate),
            escape(&r.unit),
            escape(&format_rate(s.metric, r.rate)),
            if r.leak { " (leak)" } else { "" }
        );
    }
    let _ = write!(
        out,
        "<text x=\"{pad}\" y=\"33\" font-size=\"9\" fill=\"#6b6b6b\">{}</text>\
         <text x=\"{}\" y=\"33\" font-size=\"9\" fill=\"#6b6b6b\" text-anchor=\"end\">{}</text></svg>",
        escape(&format_rate(s.metric, lo)),
        w - pad,
        escape(&format_rate(s.metric, hi))
    );
    out
}

fn sites(out: &mut String, f: &FleetRanking) {
    let _ = write!(
        out,
        "<section id=\"sites\"><h2>Sites leaking in at least one unit</h2>\
         <p class=\"muted\">{} site(s) leak somewhere{}; {} other site(s) leak nowhere. \
         Rates per unit are the median over the unit's captures. Chart: one dot per unit \
         (blue leaking, grey not, red outlier), shaded p10–p90, line at the median.</p>",
        f.sites.len(),
        if f.sites.len() > MAX_SITES {
            format!(" (first {MAX_SITES} shown)")
        } else {
            String::new()
        },
        f.quiet_sites
    );
    if f.sites.is_empty() {
        out.push_str("</section>");
        return;
    }
    out.push_str(
        "<table class=\"sites\"><thead><tr><th>#</th><th>site</th><th>units leaking</th>\
         <th>captures leaking</th><th>median</th><th>p10 – p90</th><th>MAD</th>\
         <th>rates by unit</th><th>outliers</th></tr></thead><tbody>",
    );
    for s in f.sites.iter().take(MAX_SITES) {
        let outliers = s
            .outliers
            .iter()
            .map(|o| {
                format!(
                    "<span class=\"out\">{}</span> {}",
                    escape(&o.unit),
                    escape(&crate::output::fleet::times(o))
                )
            })
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(
            out,
            "<tr><td class=\"num\">{}</td><td class=\"mono\" title=\"{}\">{}<br><span class=\"muted\">{}</span></td>\
             <td class=\"num\">{} / {}</td><td class=\"num\">{} / {}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{} – {}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            s.rank,
            escape(&s.site),
            escape(&short_site(&s.site)),
            escape(s.metric.code()),
            s.units_leaking,
            s.units_present,
            s.captures_leaking,
            s.captures_present,
            escape(&format_rate(s.metric, s.spread.median)),
            escape(&format_rate(s.metric, s.spread.p10)),
            escape(&format_rate(s.metric, s.spread.p90)),
            escape(&format_rate(s.metric, s.spread.mad)),
            strip(s),
            outliers
        );
    }
    out.push_str("</tbody></table></section>");
}

fn outliers(out: &mut String, f: &FleetRanking) {
    let items: Vec<String> = f
        .sites
        .iter()
        .flat_map(|s| {
            s.outliers.iter().map(move |o| {
                format!(
                    "<li><span class=\"mono\">{}</span>: {}</li>",
                    escape(&short_site(&s.site)),
                    escape(&outlier(s.metric, o))
                )
            })
        })
        .collect();
    let r = &f.outlier_rule;
    let _ = write!(
        out,
        "<section id=\"outliers\"><h2>Outliers</h2><p class=\"muted\">A unit is an outlier of a \
         site when the site leaks there, is present in at least {} units, and its rate is more \
         than {} robust standard deviations (1.4826 × MAD) above the median of the other units \
         and at least {}× that median.</p>",
        r.min_units, r.z, r.factor
    );
    if items.is_empty() {
        out.push_str("<p>No outliers.</p>");
    } else {
        let _ = write!(out, "<ul class=\"outliers\">{}</ul>", items.join(""));
    }
    out.push_str("</section>");
}

fn units(out: &mut String, f: &FleetRanking) {
    let _ = write!(
        out,
        "<section id=\"units\"><h2>Units ({} by {})</h2><table class=\"units\"><thead><tr><th>unit</th>\
         <th>captures</th><th>sites leaking</th></tr></thead><tbody>",
        f.units.len(),
        escape(&f.by)
    );
    for u in &f.units {
        let leaking = f
            .sites
            .iter()
            .filter(|s| s.rates.iter().any(|r| r.unit == u.name && r.leak))
            .count();
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{leaking}</td></tr>",
            escape(&u.name),
            u.captures
        );
    }
    out.push_str("</tbody></table></section>");
    if !f.skipped_captures.is_empty() || !f.skipped_segments.is_empty() {
        out.push_str("<section id=\"skipped\"><h2>Left out</h2><ul>");
        for s in &f.skipped_captures {
            let _ = write!(out, "<li>capture {}</li>", escape(&skipped_line(s)));
        }
        for s in &f.skipped_segments {
            let _ = write!(
                out,
                "<li>segment {}: {}</li>",
                escape(&s.path.display().to_string()),
                escape(&s.reason)
            );
        }
        out.push_str("</ul></section>");
    }
}

/// The report as one HTML document; `command` is shown verbatim at the end.
pub fn render(f: &FleetRanking, command: &str) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"leakscope {}\">\
         <title>leakscope fleet: {}</title><style>{}</style></head><body><main>\
         <h1>leakscope fleet report</h1><p class=\"muted mono\">{} · by {} · stacks by {}</p>\
         <p class=\"summary{}\">{}</p>",
        env!("CARGO_PKG_VERSION"),
        escape(&f.location),
        CSS.trim(),
        escape(&f.location),
        escape(&f.by),
        escape(&format!("{:?}", f.group_by).to_lowercase()),
        if f.sites.is_empty() { " clean" } else { "" },
        escape(&summary(f))
    );
    outliers(&mut out, f);
    sites(&mut out, f);
    units(&mut out, f);
    let _ = writeln!(
        out,
        "<section id=\"command\"><h2>Command</h2><pre class=\"mono\">{}</pre></section>\
         <footer>leakscope {} fleet report · self-contained: no scripts, no external resources.</footer>\
         </main></body></html>",
        escape(command),
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// Writes the report to `path`.
pub fn write(f: &FleetRanking, path: &Path, command: &str) -> Result<()> {
    std::fs::write(path, render(f, command)).map_err(|source| AnalyzeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_the_outlier_and_escapes_units() {
        let f = crate::output::fleet::tests::fleet();
        let html = render(&f, "leakscope fleet rank /data/fleet --by host");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            html.contains("<span class=\"out\">pod-c</span> 10.0x the others"),
            "{html}"
        );
        assert!(html.contains("pod-&lt;d&gt;") && !html.contains("pod-<d>"));
        assert!(html.contains("<svg class=\"strip\""));
        assert_eq!(html.matches("<circle").count(), 4);
        assert!(!html.contains("<script"));
    }
}
