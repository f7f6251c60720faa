//! A [`FleetRanking`] for people and programs: the words (summary, skipped captures,
//! outliers), the terminal table, markdown for tickets and the JSON document
//! (docs/fleet-json.md). The HTML report is [`crate::output::report::fleet`].

use std::fmt::Write as _;
use std::io::Write;

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

use crate::model::metric::Metric;
use crate::output::render::{format_rate, short_site};
use crate::output::{escape_control, markdown_cell};
use crate::rank::fleet::{FleetOutlier, FleetRanking, FleetSite, SkipReason, SkippedCapture};

/// Why a capture was left out, in words.
pub fn skip_reason(r: &SkipReason) -> String {
    match r {
        SkipReason::Unreadable { error } => crate::output::render::one_line(error),
        SkipReason::NotEnoughData { profiles, need } if profiles.is_empty() => {
            format!("not enough data: no profiles (need at least {need} in one run)")
        }
        SkipReason::NotEnoughData { profiles, need } => format!(
            "not enough profiles to fit a trend ({}; need at least {need} in one run)",
            profiles
                .iter()
                .map(|(m, n)| format!("{n} {} profile(s)", m.kind()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        SkipReason::NoLabel { key } => format!("its manifest has no label {key:?}"),
    }
}

/// A skipped capture in one line: `CAPTURE: why`.
pub fn skipped_line(s: &SkippedCapture) -> String {
    format!(
        "{}: {}",
        crate::output::render::one_line(&s.capture),
        skip_reason(&s.reason)
    )
}

/// How many times the others' median, or "others flat" when they do not grow.
pub fn times(o: &FleetOutlier) -> String {
    match o.ratio {
        Some(r) => format!("{r:.1}x the others"),
        None => "the others flat".to_string(),
    }
}

/// An outlier in words: `UNIT leaks RATE (N.Nx the others' median M)`.
pub fn outlier(metric: Metric, o: &FleetOutlier) -> String {
    match o.ratio {
        Some(r) => format!(
            "{} leaks {}, {r:.1}x the median of the other units ({})",
            o.unit,
            format_rate(metric, o.rate),
            format_rate(metric, o.others_median)
        ),
        None => format!(
            "{} leaks {} while the other units do not grow (median {})",
            o.unit,
            format_rate(metric, o.rate),
            format_rate(metric, o.others_median)
        ),
    }
}

/// The fleet in one paragraph: what was ranked, the most widespread leak, the outliers.
pub fn summary(f: &FleetRanking) -> String {
    let mut out = format!(
        "Ranked {} of {} capture(s) in {} unit(s) by {}",
        f.captures_ranked,
        f.captures_found,
        f.units.len(),
        f.by
    );
    if !f.skipped_captures.is_empty() {
        let _ = write!(out, " ({} skipped)", f.skipped_captures.len());
    }
    out.push_str(". ");
    match f.sites.first() {
        None => out.push_str("No site leaks in any unit."),
        Some(top) => {
            let _ = write!(
                out,
                "{} site(s) leak somewhere; most widespread: {} leaks in {} of {} unit(s) \
                 where present (median {}).",
                f.sites.len(),
                top.site,
                top.units_leaking,
                top.units_present,
                format_rate(top.metric, top.spread.median)
            );
        }
    }
    let outliers: Vec<(&FleetSite, &FleetOutlier)> = f
        .sites
        .iter()
        .flat_map(|s| s.outliers.iter().map(move |o| (s, o)))
        .collect();
    if let Some((s, o)) = outliers.first() {
        let _ = write!(
            out,
            " {} outlier(s); first: at {}, {}.",
            outliers.len(),
            s.site,
            outlier(s.metric, o)
        );
    }
    out
}

/// Rate range `p10 – p90`.
fn range(s: &FleetSite) -> String {
    format!(
        "{} – {}",
        format_rate(s.metric, s.spread.p10),
        format_rate(s.metric, s.spread.p90)
    )
}

fn sites_table(f: &FleetRanking, top: usize, markdown: bool) -> String {
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
        "units leaking",
        "captures leaking",
        "median rate",
        "p10 – p90",
        "MAD",
        "outliers",
        "site",
    ]);
    let esc = |s: &str| {
        if markdown {
            markdown_cell(s)
        } else {
            escape_control(s).into_owned()
        }
    };
    for s in f.sites.iter().take(top) {
        let outliers = s
            .outliers
            .iter()
            .map(|o| {
                format!(
                    "{} {} ({})",
                    o.unit,
                    format_rate(s.metric, o.rate),
                    times(o)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        t.add_row(vec![
            s.rank.to_string(),
            format!("{}/{}", s.units_leaking, s.units_present),
            format!("{}/{}", s.captures_leaking, s.captures_present),
            format_rate(s.metric, s.spread.median),
            range(s),
            format_rate(s.metric, s.spread.mad),
            esc(&outliers),
            esc(&format!("[{}] {}", s.metric.code(), short_site(&s.site))),
        ]);
    }
    t.to_string()
}

/// Terminal rendering: the summary, the sites table, then what was left out.
pub fn text(f: &FleetRanking, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", escape_control(&summary(f)));
    if f.sites.is_empty() {
        let _ = writeln!(
            out,
            "(no site leaks in any unit; {} quiet site(s))",
            f.quiet_sites
        );
    } else {
        let _ = writeln!(
            out,
            "== Sites leaking in at least one unit ({} shown of {}; {} quiet site(s) not shown)",
            f.sites.len().min(top),
            f.sites.len(),
            f.quiet_sites
        );
        let _ = writeln!(out, "{}", sites_table(f, top, false));
    }
    let outliers: Vec<String> = f
        .sites
        .iter()
        .take(top)
        .flat_map(|s| {
            s.outliers
                .iter()
                .map(move |o| format!("  {}: {}", short_site(&s.site), outlier(s.metric, o)))
        })
        .collect();
    if !outliers.is_empty() {
        let _ = writeln!(out, "\n== Outliers");
        for o in outliers {
            let _ = writeln!(out, "{}", escape_control(&o));
        }
    }
    for s in &f.skipped_captures {
        let _ = writeln!(out, "skipped capture {}", escape_control(&skipped_line(s)));
    }
    for s in &f.skipped_segments {
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
pub fn markdown(f: &FleetRanking, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## leakscope fleet\n\n{}\n",
        markdown_cell(&summary(f))
    );
    if !f.sites.is_empty() {
        let _ = writeln!(
            out,
            "### Sites leaking in at least one unit\n\n{}\n",
            sites_table(f, top, true)
        );
    }
    let outliers: Vec<String> = f
        .sites
        .iter()
        .take(top)
        .flat_map(|s| {
            s.outliers.iter().map(move |o| {
                format!(
                    "- `{}`: {}",
                    markdown_cell(&short_site(&s.site)).replace("\\`", "'"),
                    markdown_cell(&outlier(s.metric, o))
                )
            })
        })
        .collect();
    if !outliers.is_empty() {
        let _ = writeln!(out, "### Outliers\n\n{}\n", outliers.join("\n"));
    }
    if !f.skipped_captures.is_empty() {
        let _ = writeln!(out, "### Skipped captures\n");
        for s in &f.skipped_captures {
            let _ = writeln!(out, "- {}", markdown_cell(&skipped_line(s)));
        }
        out.push('\n');
    }
    out
}

/// The JSON document: every field of the fleet ranking, then its summary in words.
#[derive(Serialize)]
struct FleetDocument<'a> {
    #[serde(flatten)]
    fleet: &'a FleetRanking,
    /// One-paragraph summary.
    summary: String,
}

/// Writes `f` as pretty-printed JSON to `out` (no trailing newline).
pub fn write_json(out: &mut impl Write, f: &FleetRanking) -> serde_json::Result<()> {
    let doc = FleetDocument {
        fleet: f,
        summary: summary(f),
    };
    serde_json::to_writer_pretty(out, &doc)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::fleet::{OutlierRule, Spread, Unit};
    use crate::model::site::GroupBy;
    use crate::rank::fleet::{FleetRate, FLEET_SCHEMA_VERSION};

    /// A hand-built fleet: one site leaking in 3 of 4 units, `pod-c` ten times faster.
    pub(crate) fn fleet() -> FleetRanking {
        let rate = |u: &str, r: f64, leak: bool| FleetRate {
            unit: u.into(),
            rate: r,
            leak,
        };
        FleetRanking {
            schema_version: FLEET_SCHEMA_VERSION,
            location: "/data/fleet".into(),
            by: "host".into(),
            group_by: GroupBy::Site,
            outlier_rule: OutlierRule::default(),
            captures_found: 5,
            captures_ranked: 4,
            units: ["pod-a", "pod-b", "pod-c", "pod-<d>"]
                .iter()
                .map(|n| Unit {
                    name: n.to_string(),
                    captures: 1,
                })
                .collect(),
            sites: vec![FleetSite {
                rank: 1,
                metric: Metric::InuseSpace,
                unit: "bytes",
                site: "main.leak /src/main.go:12".into(),
                units_leaking: 3,
                units_present: 4,
                captures_leaking: 3,
                captures_present: 4,
                spread: Spread {
                    min: 0.0,
                    p10: 300_000.0,
                    median: 1_050_000.0,
                    p90: 7_000_000.0,
                    max: 10_000_000.0,
                    mad: 100_000.0,
                },
                outliers: vec![FleetOutlier {
                    unit: "pod-c".into(),
                    rate: 10_000_000.0,
                    others_median: 1_000_000.0,
                    ratio: Some(10.0),
                    z: Some(40.0),
                }],
                rates: vec![
                    rate("pod-c", 10_000_000.0, true),
                    rate("pod-a", 1_100_000.0, true),
                    rate("pod-b", 1_000_000.0, true),
                    rate("pod-<d>", 0.0, false),
                ],
            }],
            quiet_sites: 7,
            skipped_captures: vec![SkippedCapture {
                capture: "/data/fleet/broken".into(),
                reason: SkipReason::NoLabel { key: "pod".into() },
            }],
            skipped_segments: vec![],
        }
    }

    #[test]
    fn text_and_markdown_name_the_site_counts_and_outlier() {
        let f = fleet();
        let t = text(&f, 10);
        assert!(t.contains("3/4"), "{t}");
        assert!(t.contains("pod-c leaks 9.5 MiB/h, 10.0x the median"), "{t}");
        assert!(
            t.contains("skipped capture /data/fleet/broken: its manifest has no label \"pod\""),
            "{t}"
        );
        let m = markdown(&f, 10);
        assert!(m.contains("### Outliers") && m.contains("pod-c"), "{m}");
        assert!(
            summary(&f).starts_with("Ranked 4 of 5 capture(s) in 4 unit(s) by host (1 skipped).")
        );
    }

    #[test]
    fn json_has_the_schema_version_and_summary() {
        let mut buf = Vec::new();
        write_json(&mut buf, &fleet()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["schema_version"], FLEET_SCHEMA_VERSION);
        assert_eq!(v["sites"][0]["outliers"][0]["unit"], "pod-c");
        assert_eq!(v["sites"][0]["spread"]["median"], 1_050_000.0);
        assert_eq!(v["skipped_captures"][0]["code"], "no_label");
        assert_eq!(v["group_by"], "site");
        assert!(v["summary"].as_str().unwrap().contains("outlier"));
    }
}
