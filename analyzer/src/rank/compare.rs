//! `leakscope compare BEFORE AFTER`: the two rankings matched site by site (metric and
//! group key), each side's rate given a confidence interval and the pair judged by the
//! rules of [`crate::model::compare`]. Typed data only; words are in
//! [`crate::output::compare`].

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::Serialize;

use crate::model::compare::{
    judge, rate_interval, Change, RateInterval, RateShift, Side, SideState,
};
use crate::model::fit::{RunView, Verdict, MIN_POINTS};
use crate::model::site::{FrameRef, GroupBy};
use crate::rank::{Finding, Ranking};
use crate::source::load::Metric;

/// Version of the comparison's JSON (`compare --format json`, docs/compare-json.md).
pub const COMPARISON_SCHEMA_VERSION: u32 = 1;

/// How to judge the two sides.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// Smallest confidence for a leak to count as leaking (below it: unsure).
    pub min_confidence: f64,
}

/// One metric of one side: what it was judged on.
#[derive(Debug, Clone, Serialize)]
pub struct SideSection {
    /// Metric.
    pub metric: Metric,
    /// Distinct profiles.
    pub profiles: usize,
    /// Runs.
    pub runs: usize,
    /// Profiles of the longest run.
    pub longest_run: usize,
    /// Hours recorded, runs added up.
    pub hours: f64,
}

/// What one side (BEFORE or AFTER) was made of.
#[derive(Debug, Clone, Serialize)]
pub struct SideSummary {
    /// Captures read.
    pub captures: Vec<String>,
    /// One entry per metric ranked.
    pub sections: Vec<SideSection>,
    /// No run has enough profiles to fit a trend: every site of this side is unsure.
    pub too_few_profiles: bool,
}

impl SideSummary {
    fn of(r: &Ranking) -> SideSummary {
        SideSummary {
            captures: r.captures.clone(),
            sections: r
                .sections
                .iter()
                .map(|s| SideSection {
                    metric: s.metric,
                    profiles: s.profiles,
                    runs: s.runs,
                    longest_run: s.longest_run,
                    hours: s.hours,
                })
                .collect(),
            too_few_profiles: r.shortage().is_some(),
        }
    }

    /// Whether a site of `metric` missing from this side means it is gone (the side could
    /// have judged it), rather than that the side knows nothing.
    fn can_judge(&self, metric: Metric) -> bool {
        self.sections
            .iter()
            .any(|s| s.metric == metric && s.longest_run >= MIN_POINTS)
    }
}

/// A site's fit on one side, as far as the comparison uses it.
#[derive(Debug, Clone, Serialize)]
pub struct SideFit {
    /// The side's verdict (as `rank` gives it).
    pub verdict: Verdict,
    /// The verdict's confidence.
    pub confidence: f64,
    /// The rate `rank` reports (for a leak that sped up: its recent rate), units per hour.
    pub rate_per_hour: f64,
    /// Confidence interval of the rate over the whole window (see
    /// [`crate::model::compare::rate_interval`]); absent when too short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<RateInterval>,
    /// Level at the end of the side's last run.
    pub end: f64,
    /// Rank in the side's section (1-based).
    pub rank: usize,
}

/// One side of one site.
#[derive(Debug, Clone, Serialize)]
pub struct SiteSide {
    /// What the side says, for the rules.
    pub state: SideState,
    /// The fit, unless the site has no samples on this side.
    #[serde(flatten)]
    pub fit: Option<SideFit>,
}

impl SiteSide {
    /// The rate interval, when known.
    pub fn interval(&self) -> Option<&RateInterval> {
        self.fit.as_ref().and_then(|f| f.interval.as_ref())
    }
}

/// One site (metric and group key) before and after.
#[derive(Debug, Clone, Serialize)]
pub struct SiteChange {
    /// Metric.
    pub metric: Metric,
    /// Unit of values and rates.
    pub unit: &'static str,
    /// Group key (call site, function or stack id).
    pub site: String,
    /// The verdict of the comparison.
    pub change: Change,
    /// How the after-rate stands to the before-rate.
    pub rates: RateShift,
    /// The site in BEFORE.
    pub before: SiteSide,
    /// The site in AFTER.
    pub after: SiteSide,
    /// Representative stack, leaf first (from AFTER when the site is there).
    pub stack: Vec<String>,
}

/// Everything `compare` produces.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// [`COMPARISON_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Grouping used on both sides.
    pub by: GroupBy,
    /// Smallest confidence for a leak to count as leaking.
    pub min_confidence: f64,
    /// Coverage of the rate intervals.
    pub interval_level: f64,
    /// BEFORE.
    pub before: SideSummary,
    /// AFTER.
    pub after: SideSummary,
    /// Sites per change (every change listed, zeros included).
    pub counts: BTreeMap<&'static str, usize>,
    /// Every site of either side, most serious change first.
    pub sites: Vec<SiteChange>,
}

impl Comparison {
    /// Sites whose change is `c`.
    pub fn count(&self, c: Change) -> usize {
        self.sites.iter().filter(|s| s.change == c).count()
    }

    /// Whether a CI gate fails: a new leak or a worse one (or, with
    /// `fail_on_inconclusive`, a site the data cannot tell about).
    pub fn fails(&self, fail_on_inconclusive: bool) -> bool {
        self.sites
            .iter()
            .any(|s| s.change.fails() || (fail_on_inconclusive && s.change == Change::Inconclusive))
    }
}

/// A finding's series as runs in hours since each run's start.
fn interval_of(f: &Finding) -> Option<RateInterval> {
    let hours: Vec<Vec<f64>> = f
        .series
        .iter()
        .map(|(_, t, _)| {
            let t0 = t.first().copied().unwrap_or(0);
            t.iter()
                .map(|t| crate::units::hours_between(t0, *t))
                .collect()
        })
        .collect();
    let views: Vec<RunView> = f
        .series
        .iter()
        .zip(&hours)
        .map(|((_, _, y), h)| RunView::new(h, y))
        .collect();
    rate_interval(&views)
}

/// One side ranked, with the rate interval of every finding; the series the intervals
/// were computed from are dropped (a side's series are large, and the other side is
/// ranked next).
#[derive(Debug, Clone)]
pub struct RankedSide {
    /// The side's ranking (findings without their series).
    pub ranking: Ranking,
    intervals: HashMap<(Metric, String), RateInterval>,
}

impl RankedSide {
    /// Computes the interval of every finding of `ranking` (ranked with
    /// `RankOptions::keep_series` at least its number of findings: a finding without its
    /// series gets no interval), then drops the series.
    pub fn new(mut ranking: Ranking) -> RankedSide {
        let intervals = ranking
            .sections
            .par_iter()
            .flat_map_iter(|s| s.findings.iter())
            .filter_map(|f| interval_of(f).map(|i| ((f.metric, f.site.clone()), i)))
            .collect();
        for f in ranking
            .sections
            .iter_mut()
            .flat_map(|s| s.findings.iter_mut())
            .chain(ranking.findings.iter_mut())
        {
            f.series = Vec::new();
        }
        RankedSide { ranking, intervals }
    }
}

fn side_of(
    f: Option<&Finding>,
    intervals: &HashMap<(Metric, String), RateInterval>,
    summary: &SideSummary,
    metric: Metric,
    o: &CompareOptions,
) -> SiteSide {
    match f {
        Some(f) => SiteSide {
            state: SideState::of(f.fit.verdict, f.fit.confidence, o.min_confidence),
            fit: Some(SideFit {
                verdict: f.fit.verdict,
                confidence: f.fit.confidence,
                rate_per_hour: f.fit.rate_per_hour,
                interval: intervals.get(&(f.metric, f.site.clone())).copied(),
                end: f.fit.end,
                rank: f.rank,
            }),
        },
        None if summary.can_judge(metric) => SiteSide {
            state: SideState::Absent,
            fit: None,
        },
        None => SiteSide {
            state: SideState::Unsure,
            fit: None,
        },
    }
}

/// Byte metrics first (what runs a host out of memory), as in the ranking.
fn metric_priority(m: Metric) -> u8 {
    match m {
        Metric::InuseSpace | Metric::Native => 0,
        Metric::Goroutines => 1,
        Metric::InuseObjects => 2,
    }
}

/// The faster of a site's two rates (interval centres, else the fit's rate).
fn top_rate(s: &SiteChange) -> f64 {
    [&s.before, &s.after]
        .iter()
        .filter_map(|side| {
            side.interval()
                .map(|i| i.rate_per_hour)
                .or(side.fit.as_ref().map(|f| f.rate_per_hour))
        })
        .fold(f64::MIN, f64::max)
}

/// Every finding of a ranking by (metric, group key).
fn index(r: &Ranking) -> HashMap<(Metric, String), &Finding> {
    r.sections
        .iter()
        .flat_map(|s| s.findings.iter())
        .map(|f| ((f.metric, f.site.clone()), f))
        .collect()
}

/// Compares two sides ranked with the same grouping, metrics and rules.
pub fn compare(before: &RankedSide, after: &RankedSide, o: &CompareOptions) -> Comparison {
    let (bi, ai) = (&before.intervals, &after.intervals);
    let (before, after) = (&before.ranking, &after.ranking);
    let (sb, sa) = (SideSummary::of(before), SideSummary::of(after));
    let (ib, ia) = (index(before), index(after));
    let mut keys: Vec<&(Metric, String)> = ib
        .keys()
        .chain(ia.keys().filter(|k| !ib.contains_key(*k)))
        .collect();
    keys.sort_by(|a, b| (metric_priority(a.0), &a.1).cmp(&(metric_priority(b.0), &b.1)));
    let mut sites: Vec<SiteChange> = keys
        .par_iter()
        .map(|key| {
            let (fb, fa) = (ib.get(*key).copied(), ia.get(*key).copied());
            let b = side_of(fb, bi, &sb, key.0, o);
            let a = side_of(fa, ai, &sa, key.0, o);
            let (change, rates) = judge(
                &Side {
                    state: b.state,
                    interval: b.interval().copied(),
                },
                &Side {
                    state: a.state,
                    interval: a.interval().copied(),
                },
            );
            SiteChange {
                metric: key.0,
                unit: key.0.unit(),
                site: key.1.clone(),
                change,
                rates,
                stack: fa
                    .or(fb)
                    .map(|f| f.stack.iter().map(FrameRef::display).collect())
                    .unwrap_or_default(),
                before: b,
                after: a,
            }
        })
        .collect();
    sites.sort_by(|a, b| {
        a.change
            .cmp(&b.change)
            .then(metric_priority(a.metric).cmp(&metric_priority(b.metric)))
            .then(top_rate(b).total_cmp(&top_rate(a)))
            .then(a.site.cmp(&b.site))
    });
    let counts = Change::ALL
        .iter()
        .map(|c| (c.code(), sites.iter().filter(|s| s.change == *c).count()))
        .collect();
    Comparison {
        schema_version: COMPARISON_SCHEMA_VERSION,
        by: before.by,
        min_confidence: o.min_confidence,
        interval_level: crate::model::compare::INTERVAL_LEVEL,
        before: sb,
        after: sa,
        counts,
        sites,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fit::{fit_series, RunSeries};
    use crate::model::hints::Hints;
    use crate::rank::{Section, RANKING_SCHEMA_VERSION};

    const POINTS: usize = 60;

    /// A heap finding fitted from `POINTS` values 10 s apart (plus jitter), with its series kept.
    fn finding(site: &str, seed: u64, f: impl Fn(f64) -> f64) -> Finding {
        // Trend-free jitter: a permutation of 0..13 repeated, shifted by the seed.
        let jitter = |i: usize| ((i as u64 + seed) * 7919 % 13) as f64 * 4.0;
        let run = RunSeries {
            run: "r".into(),
            time_ns: (0..POINTS as i64).map(|i| i * 10_000_000_000).collect(),
            y: (0..POINTS).map(|i| f(i as f64) + jitter(i)).collect(),
        };
        Finding {
            rank: 1,
            metric: Metric::InuseSpace,
            unit: Metric::InuseSpace.unit(),
            site: site.into(),
            fit: fit_series(std::slice::from_ref(&run)),
            hints: Hints(Vec::new()),
            stack: vec![FrameRef {
                function: site.into(),
                file: "main.go".into(),
                line: 1,
            }]
            .into(),
            stacks: 1,
            object_size: 0.0,
            series: vec![(run.run, run.time_ns, run.y)],
            group: 0,
        }
    }

    fn ranking(findings: Vec<Finding>, profiles: usize) -> Ranking {
        Ranking {
            schema_version: RANKING_SCHEMA_VERSION,
            captures: vec!["cap".into()],
            skipped: Vec::new(),
            by: GroupBy::Site,
            findings: findings.clone(),
            sections: vec![Section {
                metric: Metric::InuseSpace,
                title: Metric::InuseSpace.title(),
                profiles,
                runs: 1,
                longest_run: profiles,
                repeats: 0,
                hours: 0.16,
                rows: 0,
                findings,
                totals: None,
            }],
            process: None,
            stacks: None,
            listing: None,
        }
    }

    fn leak(site: &str, seed: u64) -> Finding {
        finding(site, seed, |i| 1000.0 + 400.0 * i)
    }

    fn flat(site: &str, seed: u64) -> Finding {
        finding(site, seed, |_| 1000.0)
    }

    const OPTS: CompareOptions = CompareOptions {
        min_confidence: 0.9,
    };

    fn change_of<'a>(c: &'a Comparison, site: &str) -> &'a SiteChange {
        c.sites.iter().find(|s| s.site == site).unwrap()
    }

    #[test]
    fn sites_are_matched_by_key_and_judged() {
        let before = RankedSide::new(ranking(
            vec![leak("a", 1), flat("b", 2), leak("d", 3)],
            POINTS,
        ));
        let after = RankedSide::new(ranking(
            vec![flat("a", 4), flat("b", 5), leak("c", 6)],
            POINTS,
        ));
        // The intervals are computed, the series dropped.
        assert!(before.ranking.findings.iter().all(|f| f.series.is_empty()));
        assert_eq!(before.intervals.len(), 3);
        let c = compare(&before, &after, &OPTS);
        assert_eq!(c.sites.len(), 4);
        let a = change_of(&c, "a");
        assert_eq!(
            (a.change, a.rates),
            (Change::Fixed, RateShift::Lower),
            "{a:?}"
        );
        assert!(
            a.before.interval().unwrap().contains(2400.0 * 60.0),
            "{a:?}"
        );
        assert_eq!(change_of(&c, "b").change, Change::Unchanged);
        let new = change_of(&c, "c");
        assert_eq!(new.change, Change::NewLeak);
        assert_eq!(new.before.state, SideState::Absent);
        assert!(new.before.fit.is_none());
        let gone = change_of(&c, "d");
        assert_eq!(
            (gone.change, gone.after.state),
            (Change::Fixed, SideState::Absent)
        );
        // Most serious first; the counts and the gate agree.
        assert_eq!(c.sites[0].site, "c");
        assert_eq!(c.counts["new-leak"], 1);
        assert_eq!(c.counts["fixed"], 2);
        assert_eq!(c.counts["worse"], 0);
        assert!(c.fails(false));
    }

    #[test]
    fn a_side_that_cannot_judge_makes_missing_sites_unsure() {
        let before = RankedSide::new(ranking(vec![leak("a", 1)], POINTS));
        // Three profiles: no run long enough for a trend; the site has no samples at all.
        let after = RankedSide::new(ranking(Vec::new(), 3));
        let c = compare(&before, &after, &OPTS);
        let a = change_of(&c, "a");
        assert_eq!(
            (a.change, a.after.state),
            (Change::Inconclusive, SideState::Unsure)
        );
        assert!(c.after.too_few_profiles);
        assert!(!c.fails(false));
        assert!(c.fails(true));
    }

    #[test]
    fn a_side_against_itself_is_still_leaking_or_unchanged() {
        let side = || RankedSide::new(ranking(vec![leak("a", 1), flat("b", 2)], POINTS));
        let c = compare(&side(), &side(), &OPTS);
        assert_eq!(change_of(&c, "a").change, Change::StillLeaking);
        assert_eq!(change_of(&c, "b").change, Change::Unchanged);
        assert!(!c.fails(true));
    }
}
