//! Process-level memory: does RSS grow, and does the Go heap (plus stacks) explain it?

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType};
use arrow_array::Array;
use serde::Serialize;

use crate::error::Result;
use crate::model::fit::{fit_series, Fit, RunSeries};
use crate::source::catalog::Catalog;
use crate::units::format_bytes;

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
    /// The finding in words.
    pub message: String,
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
    let batches = crate::sql::collect(&cat.ctx, &sql).await?;
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
        message: String::new(),
    };
    summary.message = explain(&mut summary);
    Ok(Some(summary))
}

fn explain(s: &mut ProcessSummary) -> String {
    let rate = |c: &str| s.get(c).map(|m| m.fit.rate_per_hour).unwrap_or(0.0);
    let Some(rss) = s.get("rss_bytes") else {
        return "no RSS samples (the recorder had no PID for the target): process-level memory not analysed".into();
    };
    let rss_rate = rss.fit.rate_per_hour;
    let heap = rate("go_heap_inuse_bytes");
    let stacks = rate("go_stack_inuse_bytes");
    if !rss.fit.verdict.is_leak() {
        return format!(
            "RSS is not growing steadily ({}; {}/h)",
            rss.fit.verdict.label(),
            format_bytes(rss_rate)
        );
    }
    let go = heap.max(0.0) + stacks.max(0.0);
    let unexplained = rss_rate - go;
    if s.get("go_heap_inuse_bytes").is_none() {
        return format!(
            "RSS grows {}/h; no Go MemStats were recorded, so the Go share is unknown",
            format_bytes(rss_rate)
        );
    }
    if unexplained > 0.5 * rss_rate {
        s.unexplained_per_hour = unexplained;
        format!(
            "memory Go cannot see: RSS grows {}/h while the Go heap grows {}/h and goroutine stacks {}/h; {}/h ({:.0}% of the growth) is outside Go's accounting: likely native (CGO/C) allocations, or fragmentation/retained spans",
            format_bytes(rss_rate),
            format_bytes(heap),
            format_bytes(stacks),
            format_bytes(unexplained),
            100.0 * unexplained / rss_rate
        )
    } else {
        format!(
            "RSS grows {}/h, mostly explained by the Go heap ({}/h) and goroutine stacks ({}/h): look at the heap and goroutine sections",
            format_bytes(rss_rate),
            format_bytes(heap),
            format_bytes(stacks)
        )
    }
}
