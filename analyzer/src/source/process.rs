//! Process-level memory: does RSS grow, and does the Go heap (plus stacks) explain it?

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType};
use arrow_array::Array;
use serde::Serialize;

use crate::error::Result;
use crate::model::fit::{fit_series, Fit, RunSeries};
use crate::source::catalog::Catalog;

/// Process metrics fitted, as (column, label).
pub const PROCESS_SERIES: [(&str, &str); 4] = [
    ("rss_bytes", "RSS"),
    ("go_heap_inuse_bytes", "Go heap in use"),
    ("go_stack_inuse_bytes", "goroutine stacks"),
    ("go_sys_bytes", "Go runtime total (Sys)"),
];

/// One process metric's series and fit.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessMetric {
    /// Column name in `process`.
    pub column: &'static str,
    /// Human label.
    pub label: &'static str,
    /// Fit over all runs.
    pub fit: Fit,
    /// Runs: (label, times ns, values).
    #[serde(skip)]
    pub series: Vec<(String, Vec<i64>, Vec<f64>)>,
}

/// RSS versus what Go accounts for.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessSummary {
    /// Fitted metrics that have data.
    pub metrics: Vec<ProcessMetric>,
    /// RSS growth not explained by Go heap + stacks, bytes/hour (0 when RSS is not growing).
    pub unexplained_per_hour: f64,
    /// What the process-level numbers say (JSON: `message`, in words).
    #[serde(rename = "message")]
    pub finding: ProcessFinding,
}

/// What RSS versus Go's own accounting shows (worded by [`crate::output::words`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessFinding {
    /// No RSS samples (the recorder had no PID for the target).
    NoRss,
    /// RSS is not growing steadily.
    RssNotGrowing {
        /// RSS verdict.
        verdict: crate::model::fit::Verdict,
        /// RSS rate, bytes/hour.
        rss_per_hour: f64,
    },
    /// RSS grows but no Go MemStats were recorded, so the Go share is unknown.
    GoShareUnknown {
        /// RSS rate, bytes/hour.
        rss_per_hour: f64,
    },
    /// More than half of the RSS growth is outside Go's accounting (heap + stacks).
    OutsideGo {
        /// RSS rate, bytes/hour.
        rss_per_hour: f64,
        /// Go heap rate, bytes/hour.
        heap_per_hour: f64,
        /// Goroutine stacks rate, bytes/hour.
        stacks_per_hour: f64,
        /// RSS growth Go does not account for, bytes/hour.
        unexplained_per_hour: f64,
    },
    /// RSS growth is mostly the Go heap and goroutine stacks.
    ExplainedByGo {
        /// RSS rate, bytes/hour.
        rss_per_hour: f64,
        /// Go heap rate, bytes/hour.
        heap_per_hour: f64,
        /// Goroutine stacks rate, bytes/hour.
        stacks_per_hour: f64,
    },
}

impl ProcessSummary {
    /// The metric with column `c`.
    pub fn get(&self, c: &str) -> Option<&ProcessMetric> {
        self.metrics.iter().find(|m| m.column == c)
    }
}

/// One metric's points of one run: (times ns, values).
type Points = (Vec<i64>, Vec<f64>);

/// Fits process metrics; `None` when the capture has no process rows.
pub async fn analyze_process(cat: &Catalog) -> Result<Option<ProcessSummary>> {
    let cols: Vec<&str> = PROCESS_SERIES.iter().map(|(c, _)| *c).collect();
    let sql = format!(
        "SELECT capture, COALESCE(run_id, 'unknown'), time, {} FROM process ORDER BY time",
        cols.join(", ")
    );
    let batches = crate::sql::collect(&cat.in_process, &sql).await?;
    // run label -> per metric (times, values)
    let mut runs: BTreeMap<(i64, String), Vec<Points>> = BTreeMap::new();
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    for b in &batches {
        let cap = b.column(0).as_string::<i32>();
        let run = b.column(1).as_string::<i32>();
        let t = b.column(2).as_primitive::<TimestampNanosecondType>();
        for i in 0..b.num_rows() {
            let label = format!("{}/{}", cap.value(i), run.value(i));
            let f = *first.entry(label.clone()).or_insert(t.value(i));
            let e = runs
                .entry((f, label))
                .or_insert_with(|| vec![(Vec::new(), Vec::new()); cols.len()]);
            for (k, slot) in e.iter_mut().enumerate() {
                let a = b.column(3 + k).as_primitive::<Int64Type>();
                if a.is_valid(i) {
                    slot.0.push(t.value(i));
                    slot.1.push(a.value(i) as f64);
                }
            }
        }
    }
    if runs.is_empty() {
        return Ok(None);
    }
    let mut metrics = Vec::new();
    for (k, (column, label)) in PROCESS_SERIES.iter().enumerate() {
        let series: Vec<RunSeries> = runs
            .iter()
            .filter(|(_, v)| !v[k].0.is_empty())
            .map(|((_, run), v)| RunSeries {
                run: run.clone(),
                time_ns: v[k].0.clone(),
                y: v[k].1.clone(),
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let fit = fit_series(&series);
        metrics.push(ProcessMetric {
            column,
            label,
            fit,
            series: series
                .into_iter()
                .map(|r| (r.run, r.time_ns, r.y))
                .collect(),
        });
    }
    let mut summary = ProcessSummary {
        metrics,
        unexplained_per_hour: 0.0,
        finding: ProcessFinding::NoRss,
    };
    summary.finding = explain(&summary);
    if let ProcessFinding::OutsideGo {
        unexplained_per_hour,
        ..
    } = summary.finding
    {
        summary.unexplained_per_hour = unexplained_per_hour;
    }
    Ok(Some(summary))
}

/// Compares the RSS rate with the Go heap's and the goroutine stacks'.
fn explain(s: &ProcessSummary) -> ProcessFinding {
    let rate = |c: &str| s.get(c).map(|m| m.fit.rate_per_hour).unwrap_or(0.0);
    let Some(rss) = s.get("rss_bytes") else {
        return ProcessFinding::NoRss;
    };
    let rss_per_hour = rss.fit.rate_per_hour;
    let heap_per_hour = rate("go_heap_inuse_bytes");
    let stacks_per_hour = rate("go_stack_inuse_bytes");
    if !rss.fit.verdict.is_leak() {
        return ProcessFinding::RssNotGrowing {
            verdict: rss.fit.verdict,
            rss_per_hour,
        };
    }
    if s.get("go_heap_inuse_bytes").is_none() {
        return ProcessFinding::GoShareUnknown { rss_per_hour };
    }
    let unexplained = rss_per_hour - (heap_per_hour.max(0.0) + stacks_per_hour.max(0.0));
    if unexplained > 0.5 * rss_per_hour {
        ProcessFinding::OutsideGo {
            rss_per_hour,
            heap_per_hour,
            stacks_per_hour,
            unexplained_per_hour: unexplained,
        }
    } else {
        ProcessFinding::ExplainedByGo {
            rss_per_hour,
            heap_per_hour,
            stacks_per_hour,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process columns fitted here are columns of the capture's `process` table (the
    /// capture crate owns the names; a rename there must not silently empty this analysis).
    #[test]
    fn fitted_columns_are_capture_columns() {
        let schema = leakscope_capture::schema::process_schema();
        for (c, _) in PROCESS_SERIES {
            assert!(schema.field_with_name(c).is_ok(), "{c} not in process");
        }
    }
}
