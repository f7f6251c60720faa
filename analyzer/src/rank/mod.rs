//! Ranks call sites by leak rate: loads each metric's series, fits every group in parallel
//! (rayon), attaches hints, and orders leaks first by rate.

pub mod alert;
pub mod compare;
pub mod fleet;

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::model::evidence::SeriesContext;
use crate::model::fit::{adjust_for_multiple_tests, fit_runs, Fit, RunView, Verdict};
use crate::model::hints::{hints, is_timer_function, HintInput, Hints};
use crate::model::site::{FrameRef, Frames, GroupBy, SiteRules};
use crate::source::catalog::Catalog;
use crate::source::load::{load_series, IdMap, Metric, SeriesSet, SeriesSources};
use crate::source::process::{analyze_process, ProcessSummary};
use crate::source::profiles::ProfileListing;
use crate::source::totals::ProfileTotals;
use leakscope_capture::schema::Table;

/// What to rank and how.
#[derive(Debug, Clone)]
pub struct RankOptions {
    /// Grouping of stacks.
    pub by: GroupBy,
    /// Metrics to rank; empty means every metric the capture has.
    pub metrics: Vec<Metric>,
    /// Call-site rules.
    pub rules: SiteRules,
    /// Where to find source files for hints.
    pub sources: crate::source::go_source::SourceRoots,
    /// Findings that keep their series for charts: this many at the top of the combined
    /// list and of each section (0: none, for `rank` and `check`).
    pub keep_series: usize,
    /// Judge only the first this-long of the recording (what the verdict was then).
    pub first: Option<std::time::Duration>,
}

/// One ranked group.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Position in its section (1-based).
    pub rank: usize,
    /// Metric ranked.
    pub metric: Metric,
    /// Unit of values and rates.
    pub unit: &'static str,
    /// Group key (call site, function or stack id).
    pub site: String,
    /// The fit and verdict.
    #[serde(flatten)]
    pub fit: Fit,
    /// Hints, most specific first (JSON: `hints` in words and `hint_codes`).
    #[serde(flatten)]
    pub hints: Hints,
    /// Representative stack, leaf first (JSON: each frame as `function file:line`).
    /// Shared with the stack table: the combined list copies every finding of every
    /// section, and copying the frames was most of that copy.
    #[serde(serialize_with = "frames_as_text")]
    pub stack: Frames,
    /// Distinct stacks in the group.
    pub stacks: usize,
    /// Mean bytes per live object (heap only).
    #[serde(skip_serializing_if = "is_zero")]
    pub object_size: f64,
    /// The series: (time ns, value), all runs, for charts; only kept for the top findings
    /// (see [`RankOptions::keep_series`]).
    #[serde(skip)]
    pub series: crate::source::load::RunPoints,
    /// Row of the group in its metric's series set.
    #[serde(skip)]
    pub group: usize,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// All findings of one metric, ordered.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Metric.
    pub metric: Metric,
    /// Title.
    pub title: &'static str,
    /// Profiles of this kind.
    pub profiles: usize,
    /// Runs (restarts + 1) with profiles of this kind.
    pub runs: usize,
    /// Profiles in the longest run.
    pub longest_run: usize,
    /// Profiles left out as repeats of the previous observation (a heap profile no GC
    /// changed); `profiles` counts the distinct ones.
    pub repeats: usize,
    /// Hours from the first to the last profile of each run, added up.
    pub hours: f64,
    /// Sample rows of the counted profiles of this metric.
    pub rows: u64,
    /// Findings, leaks first then by rate.
    pub findings: Vec<Finding>,
    /// The metric's column summed per profile by the scan (the report's timelines);
    /// `None` when the scan did not sum them.
    #[serde(skip)]
    pub totals: Option<ProfileTotals>,
}

/// Version of the ranking's JSON (`rank --format json`, docs/ranking-json.md): 2 added
/// `reason_code`, the `growing` verdict with `shortfall` and `record_more_hours`,
/// `retention`, `quanta`, `hours`, and each section's `repeats` and `hours`; 3 added each
/// finding's `hint_codes`.
pub const RANKING_SCHEMA_VERSION: u32 = 3;

/// Everything `rank` produces.
#[derive(Debug, Clone, Serialize)]
pub struct Ranking {
    /// [`RANKING_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Captures analysed.
    pub captures: Vec<String>,
    /// Segments skipped as corrupt.
    pub skipped: Vec<crate::source::catalog::SkippedSegment>,
    /// Grouping used.
    pub by: GroupBy,
    /// Every finding of every metric in one list: leaks first (most confident, byte
    /// metrics before goroutines, then fastest), then the rest by verdict.
    pub findings: Vec<Finding>,
    /// One section per metric.
    pub sections: Vec<Section>,
    /// Process-level memory (RSS vs Go heap vs stacks).
    pub process: Option<ProcessSummary>,
    /// Every stack's frames as the ranking loaded them, for the report's flame graphs
    /// (reading them again took 0.25 s on the 100M-row capture); `None` when not loaded.
    #[serde(skip)]
    pub stacks: Option<Arc<IdMap<Frames>>>,
    /// The profiles table as the ranking read it, for the report (reading it again
    /// through SQL took 43 ms of the report's 0.14 s after the ranking of 100M rows);
    /// `None` when not loaded.
    #[serde(skip)]
    pub listing: Option<Arc<ProfileListing>>,
}

impl Ranking {
    /// The per-profile totals each section's scan summed (see [`Section::totals`]).
    pub fn scanned_totals(&self) -> Vec<&ProfileTotals> {
        self.sections
            .iter()
            .filter_map(|s| s.totals.as_ref())
            .collect()
    }
}

/// Why a ranking cannot be trusted yet.
#[derive(Debug, Clone, PartialEq)]
pub enum Shortage {
    /// No profiles and no process samples at all.
    Empty,
    /// No run has enough profiles to fit a trend: profiles per metric, and the points
    /// one run needs ([`crate::model::fit::MIN_POINTS`]).
    TooFewProfiles {
        /// Profiles of each ranked metric.
        profiles: Vec<(Metric, usize)>,
        /// Profiles one run needs.
        need: usize,
    },
}

impl Ranking {
    /// Why this ranking cannot be trusted yet (no data, or too few profiles for a trend).
    pub fn shortage(&self) -> Option<Shortage> {
        let profiles: usize = self.sections.iter().map(|s| s.profiles).sum();
        if profiles == 0 && self.process.is_none() {
            return Some(Shortage::Empty);
        }
        let longest = self
            .sections
            .iter()
            .map(|s| s.longest_run)
            .max()
            .unwrap_or(0);
        if longest < crate::model::fit::MIN_POINTS {
            return Some(Shortage::TooFewProfiles {
                profiles: self
                    .sections
                    .iter()
                    .map(|s| (s.metric, s.profiles))
                    .collect(),
                need: crate::model::fit::MIN_POINTS,
            });
        }
        None
    }

    /// Every leak finding, in the combined order of [`Ranking::findings`].
    pub fn leaks(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.fit.verdict.is_leak())
            .collect()
    }
}

/// Metrics with at least one profile in the listing.
fn present_metrics(listing: &ProfileListing) -> Vec<Metric> {
    let kinds = listing.kinds();
    [Metric::InuseSpace, Metric::Goroutines, Metric::Native]
        .into_iter()
        .filter(|m| kinds.iter().any(|k| k == m.kind()))
        .collect()
}

/// Every stack's frames and the profiles table, read at the same time: the stacks on a
/// blocking thread (a parallel Parquet scan), the listing through DataFusion meanwhile.
/// One after the other they took 85 and 52 ms of a 2 s ranking of 100M rows by stack, and
/// the listing was read twice (once for the metrics present, once per metric ranked).
async fn stacks_and_listing(cat: &Catalog) -> Result<(IdMap<Frames>, ProfileListing)> {
    let segs = crate::source::scan::segments(cat, Table::Stacks)?;
    let stacks = tokio::task::spawn_blocking(move || crate::source::scan::read_stacks(&segs));
    let listing = ProfileListing::read(&cat.in_process).await;
    let stacks = match stacks.await {
        Ok(read) => read?,
        // A panic (a Parquet decoder's, which main names as bad input) goes on unwinding
        // as it did when the stacks were read on this thread; a blocking task is never
        // cancelled.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    Ok((stacks, listing?))
}

/// Goroutines the runtime's leak detector reported, by group key (latest profile, summed).
async fn runtime_leaked(
    cat: &Catalog,
    stacks: &IdMap<Frames>,
    opts: &RankOptions,
) -> Result<std::collections::HashMap<String, f64>> {
    // With --first, the latest leak report within the prefix (from the earliest profile).
    let within = match opts.first {
        Some(d) => format!(
            " AND time <= (SELECT MIN(time) FROM profiles) + INTERVAL '{} milliseconds'",
            d.as_millis()
        ),
        None => String::new(),
    };
    let sql = format!(
        "SELECT s.stack_id, SUM(s.goroutines) FROM samples s \
         JOIN (SELECT capture, MAX(time) AS t FROM profiles WHERE kind = 'goroutineleak'{within} GROUP BY capture) l \
         ON s.capture = l.capture AND s.time = l.t \
         WHERE s.kind = 'goroutineleak' GROUP BY s.stack_id"
    );
    let batches = crate::sql::collect(&cat.ctx, &sql).await?;
    let mut out = std::collections::HashMap::new();
    for b in &batches {
        use arrow_array::cast::AsArray;
        let ids = b.column(0).as_primitive::<arrow_array::types::UInt64Type>();
        let n = b.column(1).as_primitive::<arrow_array::types::Int64Type>();
        for i in 0..b.num_rows() {
            if let Some(fr) = stacks.get(&ids.value(i)) {
                let key = opts.rules.group_key(opts.by, ids.value(i), fr);
                *out.entry(key).or_insert(0.0) += n.value(i) as f64;
            }
        }
    }
    Ok(out)
}

/// Orders a section's findings (leaks first, then by verdict, faster, higher, by site)
/// and numbers them.
fn order(findings: &mut Vec<Finding>) {
    let order = sorted_positions(findings, false, |a, b| {
        let la = a.fit.verdict.is_leak();
        let lb = b.fit.verdict.is_leak();
        lb.cmp(&la)
            .then(a.fit.verdict.cmp(&b.fit.verdict))
            .then(b.fit.rate_per_hour.total_cmp(&a.fit.rate_per_hour))
            .then(b.fit.peak.total_cmp(&a.fit.peak))
            .then(a.site.cmp(&b.site))
    });
    *findings = in_order(std::mem::take(findings), &order);
    for (i, f) in findings.iter_mut().enumerate() {
        f.rank = i + 1;
    }
}

/// Positions of `items` in the order of `cmp`, stably (equal items keep their order);
/// in parallel when `parallel`. Positions are sorted rather than the items: a finding is
/// a few hundred bytes, and a sort moves each one about log2(n) times (some 13 times at
/// 10,000 findings; memory copies inside the two sorts showed in perf of the tail).
fn sorted_positions<T: Sync>(
    items: &[T],
    parallel: bool,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering + Sync,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    let by = |a: &usize, b: &usize| cmp(&items[*a], &items[*b]);
    if parallel {
        order.par_sort_by(by);
    } else {
        order.sort_by(by);
    }
    order
}

/// `items` moved into the order of `positions` (a permutation of their indices: the item
/// at `positions[k]` goes to `k`), in place, one cycle of the permutation at a time.
/// Collected into a new vector, the 10,000 findings of a ranking by stack (4 MB) landed on
/// fresh pages, and the kernel's zeroing of them was 16 ms of the tail's main thread
/// (perf, 100M rows by stack).
fn in_order<T>(mut items: Vec<T>, positions: &[usize]) -> Vec<T> {
    debug_assert_eq!(items.len(), positions.len());
    let mut placed = vec![false; items.len()];
    for start in 0..items.len() {
        // Each swap puts the item wanted at `at` there; the cycle ends where the item
        // wanted is the one `start` held, which the swaps have carried along to `at`.
        let mut at = start;
        while !placed[at] {
            placed[at] = true;
            let from = positions[at];
            if from == start {
                break;
            }
            items.swap(at, from);
            at = from;
        }
    }
    items
}

/// Groups fitted per rayon task: their rows are gathered from the by-profile matrix at once.
const FIT_CHUNK: usize = 64;

fn fit_groups(
    set: &SeriesSet,
    metric: Metric,
    leaked: &std::collections::HashMap<String, f64>,
    timer_sites: &HashSet<String>,
    sources: &crate::source::go_source::SourceRoots,
) -> Vec<Finding> {
    let hours = set.run_hours();
    let chunks: Vec<std::ops::Range<usize>> = (0..set.keys.len())
        .step_by(FIT_CHUNK)
        .map(|lo| lo..(lo + FIT_CHUNK).min(set.keys.len()))
        .collect();
    let fitted: Vec<(usize, Fit)> = chunks
        .into_par_iter()
        .flat_map_iter(|chunk| {
            thread_local! {
                static ROWS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            ROWS.with(|rows| {
                let mut rows = rows.borrow_mut();
                set.rows_into(chunk.clone(), &mut rows);
                let np = set.profiles.len();
                chunk
                    .clone()
                    .filter(|g| set.stack_counts[*g] > 0)
                    .map(|g| {
                        let row = &rows[(g - chunk.start) * np..(g - chunk.start + 1) * np];
                        let views: Vec<RunView> = set
                            .runs
                            .iter()
                            .enumerate()
                            .map(|(i, (_, r))| RunView {
                                hours: &hours[r.clone()],
                                y: &row[r.clone()],
                                alloc: set.alloc_checkpoints(g, i, row, &hours),
                            })
                            .collect();
                        let ctx = SeriesContext {
                            sampling_period: set.sampling_period,
                            object_size: set.object_size[g],
                        };
                        (g, fit_runs(&views, &ctx))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let (groups, mut fits): (Vec<usize>, Vec<Fit>) = fitted.into_iter().unzip();
    adjust_for_multiple_tests(&mut fits);
    groups
        .into_par_iter()
        .zip(fits)
        .map(|(g, fit)| finding(set, g, fit, metric, leaked, timer_sites, sources))
        .collect()
}

/// A group's finding from its fit: runtime leak reports folded in, hints attached.
fn finding(
    set: &SeriesSet,
    g: usize,
    mut fit: Fit,
    metric: Metric,
    leaked: &std::collections::HashMap<String, f64>,
    timer_sites: &HashSet<String>,
    sources: &crate::source::go_source::SourceRoots,
) -> Finding {
    let runtime_leaked = leaked.get(&set.keys[g]).copied().unwrap_or(0.0);
    if metric == Metric::Goroutines
        && runtime_leaked > 0.0
        && !matches!(fit.verdict, Verdict::Shrinking | Verdict::Leak)
    {
        fit.reason
            .qualifiers
            .push(crate::model::reason::Qualifier::RuntimeLeakDetector {
                leaked: runtime_leaked,
            });
        fit.verdict = Verdict::Leak;
        // The runtime's own report is the evidence: nothing is missing any more.
        fit.shortfall = None;
        fit.record_more_hours = None;
        fit.confidence = fit.confidence.max(0.99);
    }
    let site_fn = set.stacks[g]
        .get(crate::model::site::SiteRules::default().site_index(&set.stacks[g]))
        .map(|f| f.function.clone())
        .unwrap_or_default();
    let hint_list = hints(&HintInput {
        metric,
        functions: &set.functions[g],
        object_size: set.object_size[g],
        growing: fit.verdict.is_leak(),
        runtime_leaked,
        allocates_timers: timer_sites.contains(&site_fn),
        site_frames: &set.site_frames[g],
        sources,
    });
    Finding {
        rank: 0,
        metric,
        unit: metric.unit(),
        site: set.keys[g].clone(),
        fit,
        hints: Hints(hint_list),
        stack: set.stacks[g].clone(),
        stacks: set.stack_counts[g],
        object_size: set.object_size[g],
        series: Vec::new(),
        group: g,
    }
}

/// Copies the series of the findings that can reach the top `n` of the section or of the
/// combined list out of the section's series set.
fn keep_series(section: &mut Section, set: &SeriesSet, n: usize) {
    let mut order: Vec<usize> = (0..section.findings.len()).collect();
    order.sort_by(|&a, &b| combined_order(&section.findings[a], &section.findings[b]));
    let n = n.min(section.findings.len());
    let mut picked: Vec<usize> = order.into_iter().take(n).chain(0..n).collect();
    picked.sort_unstable();
    picked.dedup();
    // In parallel, one task per series: each is gathered from every profile column of the
    // matrix, a cache miss each (15 ms on one thread for the report's 30 of 1,000 sites at
    // 100M rows, perf). The picked findings cluster at the front of the list, so a
    // parallel pass over the whole list left them to one thread.
    let series: Vec<(usize, crate::source::load::RunPoints)> = picked
        .par_iter()
        .map(|&i| (i, set.points_of(section.findings[i].group)))
        .collect();
    for (i, s) in series {
        section.findings[i].series = s;
    }
}

/// The order of [`Ranking::findings`]: leaks first, more confident (in tenths: confidence
/// is calibrated, and 0.96 against 0.97 says less than a rate ten times higher), byte
/// metrics before goroutines (they are what runs a host out of memory; goroutine leaks cost
/// memory through their stacks and what they pin), then faster.
fn combined_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    let priority = |f: &Finding| match f.metric {
        Metric::InuseSpace | Metric::Native => 0,
        Metric::Goroutines => 1,
        Metric::InuseObjects => 2,
    };
    let confidence = |f: &Finding| (f.fit.confidence * 10.0).floor() as i64;
    b.fit
        .verdict
        .is_leak()
        .cmp(&a.fit.verdict.is_leak())
        .then(a.fit.verdict.cmp(&b.fit.verdict))
        .then(confidence(b).cmp(&confidence(a)))
        .then(priority(a).cmp(&priority(b)))
        .then(b.fit.rate_per_hour.total_cmp(&a.fit.rate_per_hour))
        .then(a.site.cmp(&b.site))
}

/// Serializes frames as the list of their `function file:line` texts, each written
/// straight into the output.
fn frames_as_text<S: serde::Serializer>(v: &Frames, s: S) -> std::result::Result<S::Ok, S::Error> {
    /// One frame as its text.
    struct Text<'a>(&'a FrameRef);
    impl Serialize for Text<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            s.collect_str(self.0)
        }
    }
    s.collect_seq(v.iter().map(Text))
}

/// All sections' findings in one order, comparable across metrics.
fn combined(sections: &[Section]) -> Vec<Finding> {
    let all: Vec<&Finding> = sections.iter().flat_map(|s| &s.findings).collect();
    let order = sorted_positions(&all, true, |a, b| combined_order(a, b));
    order.par_iter().map(|&i| all[i].clone()).collect()
}

/// Ranks every group of every requested metric.
pub async fn rank(
    cat: &Catalog,
    opts: &RankOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Ranking> {
    let clock = std::time::Instant::now();
    let (stacks, listing) = stacks_and_listing(cat).await?;
    log::info!(
        "{} stacks and {} profiles loaded in {:?}",
        stacks.len(),
        listing.len(),
        clock.elapsed()
    );
    let metrics = if opts.metrics.is_empty() {
        present_metrics(&listing)
    } else {
        opts.metrics.clone()
    };
    // Functions whose heap stacks allocate timers: cross-referenced by goroutine hints.
    let timer_sites: HashSet<String> = stacks
        .values()
        .filter(|fr| fr.iter().any(|f| is_timer_function(&f.function)))
        .filter_map(|fr| {
            fr.get(SiteRules::default().site_index(fr))
                .map(|f| f.function.clone())
        })
        .collect();
    let leaked = if metrics.contains(&Metric::Goroutines) {
        runtime_leaked(cat, &stacks, opts).await?
    } else {
        Default::default()
    };
    let mut sections = Vec::new();
    for metric in metrics {
        let clock = std::time::Instant::now();
        let sources = SeriesSources {
            cat,
            listing: &listing,
            stacks: &stacks,
        };
        let mut set =
            load_series(sources, metric, opts.by, &opts.rules, opts.first, progress).await?;
        log::info!(
            "{metric:?}: {} rows into {} groups x {} profiles in {:?}",
            set.rows,
            set.keys.len(),
            set.profiles.len(),
            clock.elapsed()
        );
        let clock = std::time::Instant::now();
        let mut findings = fit_groups(&set, metric, &leaked, &timer_sites, &opts.sources);
        log::info!(
            "{metric:?}: {} groups fitted in {:?}",
            findings.len(),
            clock.elapsed()
        );
        order(&mut findings);
        let mut section = Section {
            metric,
            title: metric.title(),
            profiles: set.profiles.len(),
            runs: set.runs.len(),
            longest_run: set.runs.iter().map(|(_, r)| r.len()).max().unwrap_or(0),
            repeats: set.repeats,
            hours: set
                .runs
                .iter()
                .map(|(_, r)| {
                    let (a, b) = (
                        set.profiles[r.start].time_ns,
                        set.profiles[r.end - 1].time_ns,
                    );
                    b.saturating_sub(a) as f64 / 3.6e12
                })
                .sum(),
            rows: set.rows,
            findings,
            totals: set.totals.take(),
        };
        // Only the top findings keep their series; the matrix is dropped here.
        keep_series(&mut section, &set, opts.keep_series);
        crate::background::drop_in_background(set);
        sections.push(section);
    }
    let clock = std::time::Instant::now();
    let process = analyze_process(cat).await?;
    log::info!("process memory analysed in {:?}", clock.elapsed());
    let findings = combined(&sections);
    let ranking = Ranking {
        schema_version: RANKING_SCHEMA_VERSION,
        findings,
        captures: cat
            .captures
            .iter()
            .map(|c| c.dir.display().to_string())
            .collect(),
        skipped: cat.skipped.clone(),
        by: opts.by,
        sections,
        process,
        stacks: Some(Arc::new(stacks)),
        listing: Some(Arc::new(listing)),
    };
    Ok(ranking)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moving items in place, cycle by cycle, gives what picking them one by one into a
    /// new vector gives, for every permutation of small lengths and shuffles of longer
    /// ones (fixed points, one long cycle, many short ones).
    #[test]
    fn in_order_moves_each_item_to_its_position() {
        let check = |positions: &[usize]| {
            let items: Vec<String> = (0..positions.len()).map(|i| format!("item {i}")).collect();
            let want: Vec<String> = positions.iter().map(|&i| items[i].clone()).collect();
            assert_eq!(in_order(items, positions), want, "{positions:?}");
        };
        check(&[]);
        for n in 1..=6usize {
            // Every permutation of 0..n (Heap's algorithm).
            let mut p: Vec<usize> = (0..n).collect();
            let mut c = vec![0usize; n];
            check(&p);
            let mut i = 0;
            while i < n {
                if c[i] < i {
                    p.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
                    check(&p);
                    c[i] += 1;
                    i = 0;
                } else {
                    c[i] = 0;
                    i += 1;
                }
            }
        }
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for n in [7usize, 64, 1000] {
            let mut p: Vec<usize> = (0..n).collect();
            for k in (1..n).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                p.swap(k, (state % (k as u64 + 1)) as usize);
            }
            check(&p);
            // One cycle through every position.
            check(&(0..n).map(|i| (i + 1) % n).collect::<Vec<_>>());
        }
    }
}
