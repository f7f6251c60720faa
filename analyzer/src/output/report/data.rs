//! What a report needs beyond the ranking, read with SQL from the registered tables:
//! profiles and runs (restarts), scrape failures and gaps, per-profile totals for the
//! timeline (taken from the ranking's scan for the kinds it read), the runtime's
//! leaked-goroutine report, and the two profiles (and per-stack values) a flame graph of
//! growth compares.

use std::collections::{BTreeMap, HashMap};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use leakscope_capture::schema::col;

use super::axis::{format_duration, format_time, Unit, SEC};
use super::flame::FlameTree;
use crate::error::{AnalyzeError, Result};
use crate::model::ids::IdMap;
use crate::model::site::{FrameRef, Frames};
use crate::rank::Ranking;
use crate::source::catalog::{literal, Catalog};
use crate::source::load::{load_stacks, Metric};
use crate::source::profiles::ProfileListing;
pub use crate::source::profiles::ProfileRef;
use crate::source::totals::{ProfileTotals, Total};
pub use crate::source::window::Window;
use crate::source::window::{choose_window, window_pair};

/// One run (process incarnation) of one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpan {
    /// Capture name.
    pub capture: String,
    /// Run id.
    pub run_id: String,
    /// First profile or process sample, ns.
    pub first: i64,
    /// Last profile or process sample, ns.
    pub last: i64,
    /// First and last profile, ns (None without profiles).
    pub profile_span: Option<(i64, i64)>,
    /// Profiles in the run.
    pub profiles: usize,
}

/// Profiles of one kind in one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct KindCount {
    /// Capture name.
    pub capture: String,
    /// Profile kind.
    pub kind: String,
    /// Profiles.
    pub count: usize,
    /// First profile, ns.
    pub first: i64,
    /// Last profile, ns.
    pub last: i64,
}

/// Consecutive failed scrape attempts of one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureRun {
    /// Capture name.
    pub capture: String,
    /// First failure, ns.
    pub first: i64,
    /// Last failure, ns.
    pub last: i64,
    /// Failed attempts.
    pub attempts: usize,
    /// The first failure: endpoint and error (or HTTP status).
    pub what: String,
}

/// Scrape attempts of one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeCount {
    /// Capture name.
    pub capture: String,
    /// Attempts.
    pub total: usize,
    /// Failed attempts.
    pub failed: usize,
}

/// A flame graph of growth of one profile kind.
#[derive(Debug, Clone)]
pub struct FlameData {
    /// Profile kind.
    pub kind: String,
    /// Section title.
    pub title: String,
    /// Unit of values.
    pub unit: Unit,
    /// Earlier profile.
    pub before: ProfileRef,
    /// Later profile.
    pub after: ProfileRef,
    /// Growth per call path.
    pub tree: FlameTree,
    /// Caveat (the window spans a restart), if any.
    pub note: Option<String>,
}

/// Per-profile totals of one kind, per run: (run label `capture/run`, points).
pub type Totals = Vec<(String, Vec<(i64, f64)>)>;

/// Everything the report reads besides the ranking.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Every profile, by time.
    pub profiles: Vec<ProfileRef>,
    /// Runs, by first time.
    pub runs: Vec<RunSpan>,
    /// Profile counts per capture and kind.
    pub kinds: Vec<KindCount>,
    /// Scrape attempts per capture.
    pub scrapes: Vec<ScrapeCount>,
    /// Failed scrape attempts, grouped into consecutive runs.
    pub failures: Vec<FailureRun>,
    /// Spans without profiles inside a run: start, end, description.
    pub gaps: Vec<(i64, i64, String)>,
    /// Total goroutines per goroutine profile.
    pub goroutines: Totals,
    /// Total in-use bytes per heap profile (sampled heap).
    pub heap: Totals,
    /// Total outstanding bytes per native profile.
    pub native: Totals,
    /// Goroutines the runtime's leak detector reports, by call site (latest profile).
    pub leak_detector: Vec<(String, i64)>,
    /// The flame graphs' window.
    pub window: Option<Window>,
    /// Flame graphs of growth, one per profile kind with two distinct profiles.
    pub flames: Vec<FlameData>,
}

/// Strings of column `i` (any string type), nulls as "".
fn strs(b: &RecordBatch, i: usize) -> Result<Vec<String>> {
    let a = datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
        .map_err(|e| AnalyzeError::Sql(format!("report: column {i} as text: {e}")))?;
    let a = a.as_string::<i32>();
    Ok((0..a.len())
        .map(|r| {
            if a.is_valid(r) {
                a.value(r).to_string()
            } else {
                String::new()
            }
        })
        .collect())
}

/// Integers (or timestamps as ns) of column `i`.
fn ints(b: &RecordBatch, i: usize) -> Result<Vec<Option<i64>>> {
    let a = datafusion::arrow::compute::cast(b.column(i), &DataType::Int64)
        .map_err(|e| AnalyzeError::Sql(format!("report: column {i} as integer: {e}")))?;
    Ok(a.as_primitive::<Int64Type>().iter().collect())
}

fn u64s(b: &RecordBatch, i: usize) -> Result<Vec<u64>> {
    let a = datafusion::arrow::compute::cast(b.column(i), &DataType::UInt64)
        .map_err(|e| AnalyzeError::Sql(format!("report: column {i} as id: {e}")))?;
    Ok(a.as_primitive::<UInt64Type>()
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

async fn read_runs(cat: &Catalog, profiles: &[ProfileRef]) -> Result<Vec<RunSpan>> {
    let mut runs: BTreeMap<(String, String), RunSpan> = BTreeMap::new();
    for p in profiles {
        let r = runs
            .entry((p.capture.clone(), p.run_id.clone()))
            .or_insert_with(|| RunSpan {
                capture: p.capture.clone(),
                run_id: p.run_id.clone(),
                first: p.time_ns,
                last: p.time_ns,
                profile_span: Some((p.time_ns, p.time_ns)),
                profiles: 0,
            });
        r.first = r.first.min(p.time_ns);
        r.last = r.last.max(p.time_ns);
        r.profile_span = r
            .profile_span
            .map(|(a, b)| (a.min(p.time_ns), b.max(p.time_ns)));
        r.profiles += 1;
    }
    let batches = crate::sql::collect(&cat.ctx,
        "SELECT capture, COALESCE(run_id, 'unknown'), MIN(time), MAX(time) FROM process GROUP BY 1, 2",
    )
    .await?;
    for b in &batches {
        let (cap, run, lo, hi) = (strs(b, 0)?, strs(b, 1)?, ints(b, 2)?, ints(b, 3)?);
        for r in 0..b.num_rows() {
            let (Some(lo), Some(hi)) = (lo[r], hi[r]) else {
                continue;
            };
            let e = runs
                .entry((cap[r].clone(), run[r].clone()))
                .or_insert_with(|| RunSpan {
                    capture: cap[r].clone(),
                    run_id: run[r].clone(),
                    first: lo,
                    last: hi,
                    profile_span: None,
                    profiles: 0,
                });
            e.first = e.first.min(lo);
            e.last = e.last.max(hi);
        }
    }
    let mut v: Vec<RunSpan> = runs.into_values().collect();
    v.sort_by(|a, b| (a.first, &a.capture, &a.run_id).cmp(&(b.first, &b.capture, &b.run_id)));
    Ok(v)
}

fn kind_counts(profiles: &[ProfileRef]) -> Vec<KindCount> {
    let mut m: BTreeMap<(String, String), KindCount> = BTreeMap::new();
    for p in profiles {
        let e = m
            .entry((p.capture.clone(), p.kind.clone()))
            .or_insert_with(|| KindCount {
                capture: p.capture.clone(),
                kind: p.kind.clone(),
                count: 0,
                first: p.time_ns,
                last: p.time_ns,
            });
        e.count += 1;
        e.first = e.first.min(p.time_ns);
        e.last = e.last.max(p.time_ns);
    }
    m.into_values().collect()
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Gaps: consecutive profiles of one kind in one run further apart than twice that kind's
/// usual (median) interval; overlapping gaps of several kinds are merged.
pub fn find_gaps(profiles: &[ProfileRef]) -> Vec<(i64, i64, String)> {
    let mut times: BTreeMap<(&str, &str, &str), Vec<i64>> = BTreeMap::new();
    for p in profiles {
        times
            .entry((&p.capture, &p.kind, &p.run_id))
            .or_default()
            .push(p.time_ns);
    }
    let mut usual: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    for ((cap, kind, _), t) in &mut times {
        t.sort_unstable();
        usual
            .entry((cap, kind))
            .or_default()
            .extend(t.windows(2).map(|w| w[1].saturating_sub(w[0])));
    }
    let usual: BTreeMap<(&str, &str), i64> = usual
        .into_iter()
        .filter_map(|(k, v)| median(v).map(|m| (k, m)))
        .collect();
    let mut gaps: Vec<(i64, i64, i64)> = Vec::new();
    for ((cap, kind, _), t) in &times {
        let Some(&m) = usual.get(&(*cap, *kind)) else {
            continue;
        };
        for w in t.windows(2) {
            let gap = w[1].saturating_sub(w[0]);
            if gap > m.saturating_mul(2) && gap > SEC {
                gaps.push((w[0], w[1], m));
            }
        }
    }
    gaps.sort_unstable();
    let mut merged: Vec<(i64, i64, i64)> = Vec::new();
    for g in gaps {
        match merged.last_mut() {
            Some(last) if g.0 <= last.1 => {
                last.1 = last.1.max(g.1);
                last.2 = last.2.max(g.2);
            }
            _ => merged.push(g),
        }
    }
    merged
        .into_iter()
        .map(|(a, b, m)| {
            (
                a,
                b,
                format!(
                    "scrape gap: no profile for {} from {} (usual interval {})",
                    format_duration(b.saturating_sub(a)),
                    format_time(a),
                    format_duration(m)
                ),
            )
        })
        .collect()
}

async fn read_scrapes(cat: &Catalog) -> Result<(Vec<ScrapeCount>, Vec<FailureRun>)> {
    let batches = crate::sql::collect(
        &cat.ctx,
        "SELECT capture, COUNT(*), SUM(CASE WHEN ok THEN 0 ELSE 1 END) FROM scrapes \
         GROUP BY capture ORDER BY capture",
    )
    .await?;
    let mut counts = Vec::new();
    for b in &batches {
        let (cap, total, failed) = (strs(b, 0)?, ints(b, 1)?, ints(b, 2)?);
        for r in 0..b.num_rows() {
            counts.push(ScrapeCount {
                capture: cap[r].clone(),
                total: total[r].unwrap_or(0) as usize,
                failed: failed[r].unwrap_or(0) as usize,
            });
        }
    }
    let batches = crate::sql::collect(&cat.ctx,
        "SELECT capture, time, endpoint, COALESCE(error, CASE WHEN http_status IS NULL THEN 'failed' \
         ELSE 'HTTP ' || CAST(http_status AS VARCHAR) END) FROM scrapes WHERE NOT ok \
         ORDER BY capture, time, endpoint",
    )
    .await?;
    let mut failures: Vec<FailureRun> = Vec::new();
    for b in &batches {
        let (cap, time, endpoint, error) = (strs(b, 0)?, ints(b, 1)?, strs(b, 2)?, strs(b, 3)?);
        for r in 0..b.num_rows() {
            let t = time[r].unwrap_or(0);
            match failures.last_mut() {
                Some(f) if f.capture == cap[r] && t.saturating_sub(f.last) <= 60 * SEC => {
                    f.last = t;
                    f.attempts += 1;
                }
                _ => failures.push(FailureRun {
                    capture: cap[r].clone(),
                    first: t,
                    last: t,
                    attempts: 1,
                    what: format!("{}: {}", endpoint[r], error[r]),
                }),
            }
        }
    }
    failures.sort_by(|a, b| (a.first, &a.capture).cmp(&(b.first, &b.capture)));
    Ok((counts, failures))
}

/// The timelines of per-profile totals: profile kind and the sample column summed.
const TIMELINES: [(&str, &str); 3] = [
    ("goroutine", col::GOROUTINES),
    ("heap", col::INUSE_BYTES),
    ("native", col::INUSE_BYTES),
];

/// Per-profile totals of the timeline kinds, by run.
///
/// A kind the ranking's scan summed (`scanned`) over all of its profiles (not after
/// `--first`) takes its totals from there; only the other kinds are summed here with SQL.
/// On the 100M-row capture that SQL pass was a second full scan of the samples (1.9 s CPU):
/// with it the report took 2.31x the CPU of `rank`, without it 1.12x.
async fn read_totals(
    cat: &Catalog,
    profiles: &[ProfileRef],
    scanned: &[&ProfileTotals],
) -> Result<(Totals, Totals, Totals)> {
    let mut from_scan: HashMap<&str, &ProfileTotals> = HashMap::new();
    let mut missing = Vec::new();
    for (kind, column) in TIMELINES {
        let found = scanned
            .iter()
            .find(|t| t.kind == kind && t.column == column && t.covers(profiles));
        match found {
            Some(t) => {
                from_scan.insert(kind, t);
            }
            None if profiles.iter().any(|p| p.kind == kind) => missing.push((kind, column)),
            None => {}
        }
    }
    let sums = sql_totals(cat, &missing).await?;
    let mut by: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    for p in profiles {
        let total = match from_scan.get(p.kind.as_str()) {
            Some(t) => t.get(p),
            None => sums.get(&(p.capture.clone(), p.profile_id)).copied(),
        };
        // Not a timeline kind, or a profile without sample rows.
        let Some(Total::Sum(v)) = total else {
            continue;
        };
        by.entry((p.kind.clone(), format!("{}/{}", p.capture, p.run_id)))
            .or_default()
            .push((p.time_ns, v.unwrap_or(0) as f64));
    }
    let mut out: HashMap<String, Totals> = HashMap::new();
    for ((kind, run), mut pts) in by {
        pts.sort_by_key(|p| p.0);
        out.entry(kind).or_default().push((run, pts));
    }
    let mut take = |k: &str| {
        let mut v = out.remove(k).unwrap_or_default();
        v.sort_by_key(|(run, pts)| (pts.first().map(|p| p.0), run.clone()));
        v
    };
    Ok((take("goroutine"), take("heap"), take("native")))
}

/// Per-profile totals of the `(kind, column)` pairs in `wanted`, with one SQL pass over
/// the sample rows of those kinds; keyed by capture and profile id.
async fn sql_totals(
    cat: &Catalog,
    wanted: &[(&str, &str)],
) -> Result<HashMap<(String, u64), Total>> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    // Grouped by profile only (no strings per row); each profile is of one kind, so the
    // sum that counts is picked per kind after the query.
    let cases = wanted
        .iter()
        .map(|(kind, column)| format!("WHEN {} THEN {column}", literal(kind)))
        .collect::<Vec<_>>()
        .join(" ");
    let kinds = wanted
        .iter()
        .map(|(kind, _)| literal(kind))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT capture, profile_id, SUM(CASE kind {cases} END) FROM samples \
         WHERE kind IN ({kinds}) GROUP BY capture, profile_id"
    );
    for b in &crate::sql::collect(&cat.ctx, &sql).await? {
        let (cap, id, sum) = (strs(b, 0)?, u64s(b, 1)?, ints(b, 2)?);
        for r in 0..b.num_rows() {
            out.insert((cap[r].clone(), id[r]), Total::Sum(sum[r]));
        }
    }
    Ok(out)
}

/// Outstanding native bytes per snapshot of the eBPF tracer's `native_outstanding` table,
/// when the catalog has that table.
async fn read_native_outstanding(cat: &Catalog) -> Result<Totals> {
    if !cat.ctx.table_exist("native_outstanding").unwrap_or(false) {
        return Ok(Vec::new());
    }
    let batches = crate::sql::collect(
        &cat.ctx,
        "SELECT capture, run_id, time, SUM(outstanding_bytes) FROM native_outstanding \
         GROUP BY capture, run_id, time ORDER BY capture, run_id, time",
    )
    .await?;
    let mut by: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for b in &batches {
        let (cap, run, time, v) = (strs(b, 0)?, strs(b, 1)?, ints(b, 2)?, ints(b, 3)?);
        for r in 0..b.num_rows() {
            by.entry(format!("{}/{}", cap[r], run[r]))
                .or_default()
                .push((time[r].unwrap_or(0), v[r].unwrap_or(0) as f64));
        }
    }
    let mut v: Totals = by.into_iter().collect();
    v.sort_by_key(|(run, pts)| (pts.first().map(|p| p.0), run.clone()));
    Ok(v)
}

async fn read_leak_detector(cat: &Catalog) -> Result<Vec<(String, i64)>> {
    let batches = crate::sql::collect(&cat.ctx,
        "SELECT i.site, SUM(s.goroutines) FROM samples s \
         JOIN (SELECT capture, MAX(time) AS t FROM profiles WHERE kind = 'goroutineleak' GROUP BY capture) l \
         ON s.capture = l.capture AND s.time = l.t \
         JOIN stack_info i ON s.stack_id = i.stack_id \
         WHERE s.kind = 'goroutineleak' GROUP BY i.site ORDER BY 2 DESC, 1 LIMIT 25",
    )
    .await?;
    let mut out = Vec::new();
    for b in &batches {
        let (site, n) = (strs(b, 0)?, ints(b, 1)?);
        for r in 0..b.num_rows() {
            let n = n[r].unwrap_or(0);
            if n > 0 {
                out.push((site[r].clone(), n));
            }
        }
    }
    Ok(out)
}

/// Flame graphs of growth in window `w`; `known` are the stacks when already loaded. The
/// values of every pair of profiles are read in one pass (see [`crate::source::values`]).
fn read_flames(
    cat: &Catalog,
    profiles: &[ProfileRef],
    w: &Window,
    known: Option<&IdMap<Frames>>,
) -> Result<Vec<FlameData>> {
    const KINDS: [(Metric, &str, &str, Unit); 3] = [
        (
            Metric::InuseSpace,
            "inuse_bytes",
            "Go heap in use",
            Unit::Bytes,
        ),
        (Metric::Goroutines, "goroutines", "Goroutines", Unit::Count),
        (
            Metric::Native,
            "inuse_bytes",
            "Native (C) memory outstanding",
            Unit::Bytes,
        ),
    ];
    let pairs: Vec<_> = KINDS
        .iter()
        .filter_map(|k| {
            window_pair(profiles, k.0.kind(), w).map(|(before, after)| (k, before, after))
        })
        .collect();
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let loaded;
    let stacks = match known {
        Some(s) => s,
        None => {
            loaded = load_stacks(cat)?;
            &loaded
        }
    };
    let mut columns: Vec<&str> = pairs.iter().map(|(k, ..)| k.1).collect();
    columns.sort_unstable();
    columns.dedup();
    let keys: Vec<_> = pairs
        .iter()
        .flat_map(|(_, before, after)| [before.key(), after.key()])
        .collect();
    let values = crate::source::values::stack_values(cat, &keys, &columns)?;
    let mut out = Vec::new();
    for (&(&(metric, column, title, unit), before, after), v) in pairs.iter().zip(values.chunks(2))
    {
        let c = columns.iter().position(|c| *c == column).unwrap_or(0);
        let (v1, v2) = (&v[0], &v[1]);
        let value = |m: &IdMap<Vec<i64>>, id: &u64| m.get(id).map_or(0.0, |s| s[c] as f64);
        let mut ids: Vec<u64> = v1.keys().chain(v2.keys()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let deltas: Vec<(&[FrameRef], f64)> = ids
            .iter()
            .map(|id| {
                let d = value(v2, id) - value(v1, id);
                (stacks.get(id).map_or(&[][..], |f| &f[..]), d)
            })
            .collect();
        let tree = FlameTree::build(deltas);
        let note = (!before.same_run(after)).then(|| {
            format!(
                "the two profiles belong to different runs ({} and {}): a restart lies between them, so this compares two processes",
                before.run_id, after.run_id
            )
        });
        out.push(FlameData {
            kind: metric.kind().to_string(),
            title: title.to_string(),
            unit,
            before: before.clone(),
            after: after.clone(),
            tree,
            note,
        });
    }
    Ok(out)
}

/// Reads everything the report needs from the catalog, reusing what `ranking` already read
/// (the profiles table, per-profile totals, stacks); `from`/`to` choose the flame window.
///
/// The reads after the profiles are independent queries and go at the same time: one
/// after the other, each waited on its own planning and scan, and together they took
/// 0.14 s after the ranking of 100M rows (perf: the main thread planning one query while
/// the workers sat idle).
pub async fn gather(
    cat: &Catalog,
    ranking: &Ranking,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<ReportData> {
    let scanned = ranking.scanned_totals();
    let profiles = match &ranking.listing {
        Some(listing) => listing.by_time(),
        None => ProfileListing::read(&cat.ctx).await?.by_time(),
    };
    let window = choose_window(&profiles, from, to)?;
    let leak_detector = async {
        if profiles.iter().any(|p| p.kind == "goroutineleak") {
            read_leak_detector(cat).await
        } else {
            Ok(Vec::new())
        }
    };
    // A direct read on the rayon pool (tens of milliseconds). It holds this task while it
    // runs, so the queries above plan no further meanwhile; `try_join!` has started them
    // (polled in order), and the scans they spawned go on on the runtime's threads.
    let flames = async {
        match &window {
            Some(w) => read_flames(cat, &profiles, w, ranking.stacks.as_deref()),
            None => Ok(Vec::new()),
        }
    };
    let (runs, (scrapes, failures), (goroutines, heap, native), traced, leak_detector, flames) = futures::try_join!(
        read_runs(cat, &profiles),
        read_scrapes(cat),
        read_totals(cat, &profiles, &scanned),
        read_native_outstanding(cat),
        leak_detector,
        flames,
    )?;
    let native = if traced.is_empty() { native } else { traced };
    Ok(ReportData {
        kinds: kind_counts(&profiles),
        gaps: find_gaps(&profiles),
        profiles,
        runs,
        scrapes,
        failures,
        goroutines,
        heap,
        native,
        leak_detector,
        window,
        flames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(run: &str, kind: &str, s: i64) -> ProfileRef {
        ProfileRef {
            capture: "c".into(),
            run_id: run.into(),
            run: format!("c/{run}"),
            kind: kind.into(),
            time_ns: s * SEC,
            profile_id: s as u64,
            period: 1,
        }
    }

    /// Writes a capture of 6 heap and 6 goroutine profiles in which some rows have no
    /// stack in the stacks table, one heap profile has only null bytes and one goroutine
    /// profile has no rows at all.
    fn odd_capture(dir: &std::path::Path) {
        use leakscope_capture::manifest::{Manifest, Session};
        use leakscope_capture::rows::{ProfileRow, SampleRow, SampleValues, StackRow};
        use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
        use leakscope_capture::stack::Frame;
        let session = Session {
            mode: "import".into(),
            recorder_version: "test".into(),
            target: "test://totals".into(),
            host: "test".into(),
            start_time: "2026-12-01T00:00:00Z".into(),
            options: serde_json::json!({}),
        };
        Manifest::new(session).write(dir).unwrap();
        let mut w = SegmentWriter::new(dir, RotationPolicy::default());
        for sid in [1u64, 2] {
            w.add_stack(StackRow {
                stack_id: sid,
                origin: "go".into(),
                frames: vec![Frame {
                    function: format!("main.site{sid}"),
                    file: "/src/main.go".into(),
                    line: sid as i64,
                    ..Default::default()
                }],
            });
        }
        for i in 0..6u64 {
            for (kind, id) in [("heap", 100 + i), ("goroutine", 200 + i)] {
                let time_ns = (1_800_000_000 + 60 * i as i64) * SEC;
                w.add_profile(ProfileRow {
                    profile_id: id,
                    time_ns,
                    kind: kind.into(),
                    target: "test://totals".into(),
                    pid: None,
                    run_id: "run-1".into(),
                    period: 1,
                    period_type: String::new(),
                    sample_types: Vec::new(),
                    duration_ns: 0,
                    scrape_ms: None,
                    source: String::new(),
                    sample_count: 3,
                });
                if id == 203 {
                    continue; // a profile without sample rows
                }
                // Stack 9 is not in the stacks table.
                for (sid, v) in [(1u64, 1000 * (i as i64 + 1)), (2, 7), (9, 5 + i as i64)] {
                    let null = id == 102 || (sid == 2 && i % 2 == 0);
                    let v = (!null).then_some(v);
                    let values = match kind {
                        "heap" => SampleValues {
                            inuse_bytes: v,
                            ..Default::default()
                        },
                        _ => SampleValues {
                            goroutines: v,
                            ..Default::default()
                        },
                    };
                    w.add_sample(SampleRow {
                        profile_id: id,
                        time_ns,
                        run_id: "run-1".into(),
                        kind: kind.into(),
                        stack_id: sid,
                        values,
                        labels: None,
                    });
                }
            }
        }
        w.rotate().unwrap();
    }

    async fn ranked(dir: &std::path::Path, first: Option<u64>) -> (Catalog, crate::rank::Ranking) {
        use crate::model::site::{GroupBy, SiteRules};
        let cat = crate::source::catalog::open(&[dir.to_path_buf()], &SiteRules::default())
            .await
            .unwrap();
        let opts = crate::rank::RankOptions {
            by: GroupBy::Site,
            metrics: Vec::new(),
            rules: SiteRules::default(),
            sources: crate::source::go_source::SourceRoots(Vec::new()),
            keep_series: 0,
            first: first.map(std::time::Duration::from_secs),
        };
        let ranking = crate::rank::rank(&cat, &opts, &|_| {}).await.unwrap();
        (cat, ranking)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_scans_totals_are_the_sql_sums() {
        let dir = tempfile::tempdir().unwrap();
        odd_capture(dir.path());
        let (cat, ranking) = ranked(dir.path(), None).await;
        let profiles = ProfileListing::read(&cat.ctx).await.unwrap().by_time();
        let scanned = ranking.scanned_totals();
        let kinds: Vec<&str> = scanned.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, ["heap", "goroutine"]);
        let sql = sql_totals(&cat, &TIMELINES).await.unwrap();
        for t in &scanned {
            assert!(t.covers(&profiles));
            for p in profiles.iter().filter(|p| p.kind == t.kind) {
                let want = sql
                    .get(&(p.capture.clone(), p.profile_id))
                    .copied()
                    .unwrap_or(Total::NoRows);
                assert_eq!(t.get(p), Some(want), "{} {}", p.kind, p.profile_id);
            }
        }
        let id = |kind: &str, id: u64| {
            let p = profiles.iter().find(|p| p.profile_id == id).unwrap();
            scanned.iter().find(|t| t.kind == kind).unwrap().get(p)
        };
        // 4000 + 7 + 8 (stack 2 is null in even profiles; stack 9 is unknown but counts).
        assert_eq!(id("heap", 103), Some(Total::Sum(Some(4015))));
        assert_eq!(id("heap", 102), Some(Total::Sum(None)));
        assert_eq!(id("goroutine", 203), Some(Total::NoRows));
        let all_sql = read_totals(&cat, &profiles, &[]).await.unwrap();
        assert_eq!(
            read_totals(&cat, &profiles, &scanned).await.unwrap(),
            all_sql
        );
        assert_eq!(
            all_sql.0[0].1.len(),
            5,
            "the goroutine profile without rows is left out"
        );
        assert_eq!(
            all_sql.1[0].1[2],
            (1_800_000_120 * SEC, 0.0),
            "all null reads 0"
        );
    }

    /// Per-stack sums of one profile by SQL, as the flame graphs and `export-pprof` read
    /// them before the direct read.
    async fn sql_stack_values(
        cat: &Catalog,
        p: &ProfileRef,
        columns: &[&str],
    ) -> BTreeMap<u64, Vec<i64>> {
        let sums: Vec<String> = columns
            .iter()
            .map(|c| format!("SUM(COALESCE({c}, 0))"))
            .collect();
        let sql = format!(
            "SELECT stack_id, {} FROM samples WHERE capture = {} AND kind = {} \
             AND time = arrow_cast({}, 'Timestamp(Nanosecond, Some(\"UTC\"))') \
             AND profile_id = CAST('{}' AS BIGINT UNSIGNED) GROUP BY stack_id",
            sums.join(", "),
            literal(&p.capture),
            literal(&p.kind),
            p.time_ns,
            p.profile_id
        );
        let mut out = BTreeMap::new();
        for b in crate::sql::collect(&cat.ctx, &sql).await.unwrap() {
            let ids = u64s(&b, 0).unwrap();
            let cols: Vec<Vec<Option<i64>>> = (0..columns.len())
                .map(|k| ints(&b, 1 + k).unwrap())
                .collect();
            for (r, id) in ids.iter().enumerate() {
                out.insert(*id, cols.iter().map(|c| c[r].unwrap_or(0)).collect());
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn direct_stack_values_are_the_sql_sums_and_keep_captures_apart() {
        // Two copies of the odd capture (the same profile ids in both: mixed, every sum
        // would double) and the demo capture.
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        odd_capture(a.path());
        odd_capture(b.path());
        let demo =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures/demo");
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf(), demo];
        let cat = crate::source::catalog::open(&dirs, &crate::model::site::SiteRules::default())
            .await
            .unwrap();
        let profiles = ProfileListing::read(&cat.ctx).await.unwrap().by_time();
        let columns = [col::INUSE_BYTES, col::GOROUTINES, col::INUSE_OBJECTS];
        let keys: Vec<_> = profiles.iter().map(ProfileRef::key).collect();
        let direct = crate::source::values::stack_values(&cat, &keys, &columns).unwrap();
        assert_eq!(direct.len(), profiles.len());
        let mut stacks = 0;
        for (p, got) in profiles.iter().zip(&direct) {
            let want = sql_stack_values(&cat, p, &columns).await;
            let got: BTreeMap<u64, Vec<i64>> = got.iter().map(|(k, v)| (*k, v.clone())).collect();
            assert_eq!(got, want, "{} {} {}", p.capture, p.kind, p.profile_id);
            stacks += got.len();
        }
        assert!(stacks > 100, "{stacks} stacks: the demo capture was read");
        // The odd captures' stack 9 has no stack row and is kept; a profile without rows
        // has no stacks; one asked for twice, or of a capture not open, reads alike.
        let heap = profiles.iter().find(|p| p.profile_id == 103).unwrap();
        let empty = profiles.iter().find(|p| p.profile_id == 203).unwrap();
        let mut gone = heap.key();
        gone.capture = "no such capture";
        let again = crate::source::values::stack_values(
            &cat,
            &[heap.key(), empty.key(), heap.key(), gone],
            &[col::INUSE_BYTES],
        )
        .unwrap();
        assert_eq!(again[0].get(&9), Some(&vec![8]));
        assert!(again[1].is_empty() && again[3].is_empty());
        assert_eq!(again[0], again[2]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn totals_cut_short_by_first_are_summed_with_sql() {
        let dir = tempfile::tempdir().unwrap();
        odd_capture(dir.path());
        let (cat, ranking) = ranked(dir.path(), Some(150)).await;
        let profiles = ProfileListing::read(&cat.ctx).await.unwrap().by_time();
        let scanned = ranking.scanned_totals();
        assert!(scanned.iter().all(|t| !t.covers(&profiles)));
        let (g, heap, _) = read_totals(&cat, &profiles, &scanned).await.unwrap();
        assert_eq!(
            (g[0].1.len(), heap[0].1.len()),
            (5, 6),
            "every profile, not the first 3"
        );
        assert_eq!(
            read_totals(&cat, &profiles, &scanned).await.unwrap(),
            read_totals(&cat, &profiles, &[]).await.unwrap()
        );
    }

    #[test]
    fn gaps_are_long_intervals_within_a_run() {
        let mut ps: Vec<ProfileRef> = (0..10).map(|i| p("a", "heap", i * 10)).collect();
        ps.push(p("a", "heap", 200));
        // A restart is not a gap.
        ps.extend((0..5).map(|i| p("b", "heap", 1000 + i * 10)));
        let g = find_gaps(&ps);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!((g[0].0, g[0].1), (90 * SEC, 200 * SEC));
        assert!(g[0].2.contains("1m 50s"), "{}", g[0].2);
    }
}
