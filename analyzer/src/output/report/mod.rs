//! `leakscope report`: one self-contained HTML file for a ticket (verdict, memory timeline,
//! ranked sites with stacks and charts, goroutine growth, flame graphs of growth, capture
//! metadata, the command), and optionally PNG charts.
//!
//! The report is built from a [`Ranking`] plus a few extra queries ([`data`]). Charts are
//! laid out once as backend-neutral [`scene::Scene`]s on one shared time axis ([`axis`]),
//! then written as inline SVG ([`html`]) or rasterized with plotters ([`png`]). Output is
//! deterministic: stable ordering everywhere, and no time other than the capture's own.

pub mod axis;
pub mod charts;
pub mod data;
pub mod flame;
pub mod fleet;
pub mod html;
pub mod png;
pub mod scene;

use rayon::prelude::*;
use std::path::{Path, PathBuf};

use crate::error::{AnalyzeError, Result};
use crate::rank::{Finding, Ranking};
use crate::source::catalog::{Capture, Catalog, SkippedSegment};
use crate::source::load::Metric;
use axis::{TimeAxis, Unit};
use charts::{Chart, Markers, Series, FIT, PALETTE};
use data::ReportData;
use scene::Scene;

/// Width of full-size charts, in CSS pixels.
pub const CHART_WIDTH: f64 = 1100.0;
/// PNG charts are drawn at this multiple of their HTML size.
pub const PNG_SCALE: f64 = 1.5;
/// Findings charted as PNGs (`site-01.png`...).
pub const PNG_SITES: usize = 5;

/// How the report is made.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Start of the flame graphs' growth window, ns (default: see [`data::choose_window`]).
    pub from: Option<i64>,
    /// End of the growth window, ns.
    pub to: Option<i64>,
    /// Rows of the ranked-sites tables.
    pub top: usize,
    /// The command line that produced the report, shown verbatim.
    pub command: String,
}

/// A report ready to be written.
pub struct Report<'a> {
    /// The ranking shown.
    pub ranking: &'a Ranking,
    /// Extra data read for the report.
    pub data: ReportData,
    /// Options.
    pub opts: ReportOptions,
    /// Captures (name, directory, manifest).
    pub captures: Vec<Capture>,
    /// Segments left out as corrupt.
    pub skipped: Vec<SkippedSegment>,
    /// Shared time axis of every chart.
    pub axis: TimeAxis,
    /// Restarts, gaps and failed scrapes, marked on every chart.
    pub markers: Markers,
}

/// Quotes one argument for a POSIX shell, only when needed.
pub fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,^".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// The command line as typed: `leakscope` and the arguments, quoted for a shell.
pub fn command_line(args: impl IntoIterator<Item = std::ffi::OsString>) -> String {
    let mut out = vec!["leakscope".to_string()];
    out.extend(
        args.into_iter()
            .skip(1)
            .map(|a| shell_quote(&a.to_string_lossy())),
    );
    out.join(" ")
}

fn metric_unit(m: Metric) -> Unit {
    match m {
        Metric::InuseSpace | Metric::Native => Unit::Bytes,
        Metric::InuseObjects | Metric::Goroutines => Unit::Count,
    }
}

impl<'a> Report<'a> {
    /// Reads what the report needs besides `ranking` from `cat`.
    pub async fn build(
        cat: &Catalog,
        ranking: &'a Ranking,
        opts: ReportOptions,
    ) -> Result<Report<'a>> {
        let data = data::gather(cat, ranking, opts.from, opts.to).await?;
        let spans: Vec<(i64, i64)> = data.runs.iter().map(|r| (r.first, r.last)).collect();
        let axis = TimeAxis::new(&spans);
        let mut markers = Markers::default();
        let mut seen = std::collections::BTreeSet::new();
        for r in &data.runs {
            if !seen.insert(r.capture.clone()) {
                markers
                    .restarts
                    .push((r.first, charts::restart_label(&r.run_id, r.first)));
            }
        }
        markers.gaps = data.gaps.clone();
        markers.failures = data
            .failures
            .iter()
            .map(|f| {
                (
                    f.first,
                    format!(
                        "{} failed scrape attempt(s) from {} to {}: {}",
                        f.attempts,
                        axis::format_time(f.first),
                        axis::format_time(f.last),
                        scene::clip(&f.what, 300)
                    ),
                )
            })
            .collect();
        Ok(Report {
            ranking,
            data,
            opts,
            captures: cat.captures.clone(),
            skipped: cat.skipped.clone(),
            axis,
            markers,
        })
    }

    /// Memory over time: RSS, Go heap in use, goroutine stacks, Sys (process samples), the
    /// sampled heap when MemStats are missing, and native outstanding bytes when traced.
    pub fn memory_chart(&self, width: f64, height: f64) -> Option<Scene> {
        let mut series = Vec::new();
        let mut has_heap = false;
        if let Some(p) = &self.ranking.process {
            for m in &p.metrics {
                let (color, w, dashed) = match m.column {
                    "rss_bytes" => (PALETTE[0], 2.2, false),
                    "go_heap_inuse_bytes" => {
                        has_heap = true;
                        (PALETTE[1], 2.2, false)
                    }
                    "go_stack_inuse_bytes" => (PALETTE[2], 1.6, false),
                    _ => (PALETTE[3], 1.2, true),
                };
                series.push(Series {
                    label: m.label.to_string(),
                    color,
                    runs: charts::runs_of(&m.series),
                    dashed,
                    width: w,
                });
            }
        }
        if !has_heap && !self.data.heap.is_empty() {
            series.push(Series {
                label: "Go heap in use (heap profiles, sampled)".into(),
                color: PALETTE[1],
                runs: self.data.heap.iter().map(|(_, p)| p.clone()).collect(),
                dashed: false,
                width: 2.2,
            });
        }
        if !self.data.native.is_empty() {
            series.push(Series {
                label: "native (C) outstanding".into(),
                color: PALETTE[4],
                runs: self.data.native.iter().map(|(_, p)| p.clone()).collect(),
                dashed: false,
                width: 2.2,
            });
        }
        if series.is_empty() {
            return None;
        }
        let c = Chart {
            title: "Memory (UTC)".into(),
            unit: Unit::Bytes,
            series,
            markers: &self.markers,
            axis: &self.axis,
        };
        Some(charts::full(&c, width, height))
    }

    /// Total goroutines per goroutine profile.
    pub fn goroutine_chart(&self, width: f64, height: f64) -> Option<Scene> {
        if self.data.goroutines.is_empty() {
            return None;
        }
        let c = Chart {
            title: "Goroutines (all stacks, UTC)".into(),
            unit: Unit::Count,
            series: vec![Series {
                label: "goroutines".into(),
                color: PALETTE[5],
                runs: self
                    .data
                    .goroutines
                    .iter()
                    .map(|(_, p)| p.clone())
                    .collect(),
                dashed: false,
                width: 2.2,
            }],
            markers: &self.markers,
            axis: &self.axis,
        };
        Some(charts::full(&c, width, height))
    }

    /// One finding's series with its fitted trend: a full chart or a sparkline.
    pub fn site_chart(&self, f: &Finding, width: f64, height: f64, spark: bool) -> Scene {
        let name = crate::output::render::short_site(&f.site);
        let c = Chart {
            title: if spark {
                format!(
                    "{} over time, with the fitted trend",
                    scene::clip(&name, 200)
                )
            } else {
                format!(
                    "{} — {} {} ({}, {:.0}% confidence)",
                    scene::clip(&name, 200),
                    f.metric.title(),
                    crate::output::render::format_rate(f.metric, f.fit.rate_per_hour),
                    f.fit.verdict.label(),
                    f.fit.confidence * 100.0
                )
            },
            unit: metric_unit(f.metric),
            series: vec![
                Series {
                    label: f.metric.title().to_string(),
                    color: PALETTE[1],
                    runs: charts::runs_of(&f.series),
                    dashed: false,
                    width: if spark { 1.4 } else { 2.2 },
                },
                Series {
                    label: format!(
                        "fitted trend {}",
                        crate::output::render::format_rate(f.metric, f.fit.rate_per_hour)
                    ),
                    color: FIT,
                    runs: charts::fitted(&f.series, f.fit.rate_per_hour),
                    dashed: true,
                    width: if spark { 1.2 } else { 1.8 },
                },
            ],
            markers: &self.markers,
            axis: &self.axis,
        };
        if spark {
            charts::spark(&c, width, height)
        } else {
            charts::full(&c, width, height)
        }
    }

    /// The findings charted first: leaks in the verdict's order (most confident first), else
    /// the top findings of the combined list.
    pub fn top_findings(&self, n: usize) -> Vec<&'a Finding> {
        let leaks: Vec<&'a Finding> = self.ranking.leaks().into_iter().take(n).collect();
        if leaks.is_empty() {
            self.ranking.findings.iter().take(n.min(3)).collect()
        } else {
            leaks
        }
    }

    /// The PNG charts: (file name, scene).
    pub fn png_charts(&self) -> Vec<(String, Scene)> {
        let mut out = Vec::new();
        let panels: Vec<Scene> = [
            self.memory_chart(800.0, 300.0),
            self.goroutine_chart(800.0, 220.0),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(s) = Scene::stacked(&panels, "Memory and goroutine timeline") {
            out.push(("timeline.png".to_string(), s));
        }
        for (i, f) in self.top_findings(PNG_SITES).into_iter().enumerate() {
            out.push((
                format!("site-{:02}.png", i + 1),
                self.site_chart(f, 800.0, 300.0, false),
            ));
        }
        for fl in &self.data.flames {
            out.push((
                format!("flame-{}.png", fl.kind),
                fl.tree.scene(800.0, fl.unit, &html::flame_caption(fl)),
            ));
        }
        out
    }
}

/// `AnalyzeError` of a failed durable write.
fn write_error(e: leakscope_capture::CaptureError) -> AnalyzeError {
    AnalyzeError::Report(e.to_string())
}

/// Writes the HTML report to `html_path` and, with `png_dir`, the PNG charts into that
/// directory (created if missing). Returns every file written, HTML first.
///
/// The HTML and the charts are drawn at the same time, the charts in parallel, each into
/// its own temporary file; they are then committed in order, and a chart that fails
/// leaves the ones before it committed and none after it, as one after the other. Drawn
/// one after the other on one thread, the page (29 ms) and the seven PNGs of the 100M-row
/// capture's report (42 ms) kept the other core idle (perf).
pub fn write(report: &Report, html_path: &Path, png_dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    let write_html = || {
        let text = html::render(report);
        leakscope_capture::durable::replace_file(html_path, |w| {
            std::io::Write::write_all(w, text.as_bytes())
        })
        .map_err(write_error)
    };
    let draw_pngs = || -> Result<Vec<Result<(PathBuf, PathBuf)>>> {
        let Some(dir) = png_dir else {
            return Ok(Vec::new());
        };
        std::fs::create_dir_all(dir).map_err(|source| AnalyzeError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(report
            .png_charts()
            .into_par_iter()
            .map(|(name, scene)| {
                // The encoder picks the format from the extension: keep `.png` last.
                let tmp = dir.join(format!(".{name}.tmp.png"));
                match png::write_png(&scene, &tmp, PNG_SCALE) {
                    Ok(()) => Ok((tmp, dir.join(name))),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        Err(e)
                    }
                }
            })
            .collect())
    };
    let (html, pngs) = rayon::join(write_html, draw_pngs);
    if let Err(e) = html {
        // No chart is committed without its page.
        for (tmp, _) in pngs.into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(tmp);
        }
        return Err(e);
    }
    let drawn = pngs?;
    let mut written = vec![html_path.to_path_buf()];
    let mut drawn = drawn.into_iter();
    while let Some(chart) = drawn.next() {
        match chart.and_then(|(tmp, path)| {
            leakscope_capture::durable::commit_file(&tmp, &path)
                .map_err(write_error)
                .map(|()| path)
        }) {
            Ok(path) => written.push(path),
            Err(e) => {
                for (tmp, _) in drawn.flatten() {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::site::{GroupBy, SiteRules};
    use crate::rank::{rank, RankOptions};
    use crate::source::go_source::SourceRoots;

    async fn demo(opts: ReportOptions) -> (String, Vec<(String, Scene)>, Vec<String>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures/demo");
        let cat = crate::source::catalog::open(&[dir], &SiteRules::default())
            .await
            .unwrap();
        let ranking = rank(
            &cat,
            &RankOptions {
                by: GroupBy::Site,
                metrics: Vec::new(),
                rules: SiteRules::default(),
                sources: SourceRoots(Vec::new()),
                keep_series: 30,
                first: None,
            },
            &|_| {},
        )
        .await
        .unwrap();
        let r = Report::build(&cat, &ranking, opts).await.unwrap();
        let notes = r
            .data
            .flames
            .iter()
            .filter_map(|f| f.note.clone())
            .collect();
        (html::render(&r), r.png_charts(), notes)
    }

    fn opts() -> ReportOptions {
        ReportOptions {
            from: None,
            to: None,
            top: 30,
            command: "leakscope report fixtures/captures/demo -o report.html".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn demo_report_is_complete_small_and_deterministic() {
        let (a, charts, notes) = demo(opts()).await;
        let (b, charts_b, _) = demo(opts()).await;
        assert_eq!(a, b, "same capture and options, same report");
        assert_eq!(charts, charts_b);
        assert!(a.len() < 2 << 20, "{} bytes", a.len());
        for id in [
            "verdict",
            "top-site",
            "timeline",
            "sites",
            "goroutines",
            "flame",
            "capture",
            "command",
        ] {
            assert!(a.contains(&format!("id=\"{id}\"")), "section {id} missing");
        }
        assert!(a.contains("main.loadRecord"));
        assert!(
            a.contains(">restart</text>"),
            "restart marked on the timeline"
        );
        assert!(a.contains("leakscope report fixtures/captures/demo -o report.html"));
        assert!(a.contains("Content-Security-Policy"));
        assert!(!a.to_lowercase().contains("<script"));
        assert!(notes.is_empty(), "{notes:?}");
        let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"timeline.png"), "{names:?}");
        assert!(names.contains(&"site-01.png"), "{names:?}");
        assert!(names.contains(&"flame-heap.png"), "{names:?}");
        assert!(names.contains(&"flame-goroutine.png"), "{names:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_window_across_the_restart_is_flagged() {
        let o = ReportOptions {
            from: crate::units::parse_time("2026-11-28T06:42:40Z").ok(),
            to: crate::units::parse_time("2026-11-28T06:44:00Z").ok(),
            ..opts()
        };
        let (html, _, notes) = demo(o).await;
        assert!(
            !notes.is_empty() && notes[0].contains("different runs"),
            "{notes:?}"
        );
        assert!(html.contains("--from and --to"));
        assert!(
            html.contains("2026-11-28 06:42:4"),
            "flame starts at the first profile after --from"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a/b.html"), "a/b.html");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(
            command_line(["/x/leakscope", "report", "my cap"].map(std::ffi::OsString::from)),
            "leakscope report 'my cap'"
        );
    }
}
