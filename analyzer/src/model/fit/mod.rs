//! Fits one series (per run, then combined across runs) and classifies its shape.
//!
//! A leak is growth that is statistically significant (Mann-Kendall, tie-corrected,
//! combined over runs), still going at the end of each run (late Theil-Sen slope close to
//! the overall one), and whose floor rises too (a sawtooth that resets to the same floor is
//! a batch, not a leak). Growth that stopped is a plateau; an early peak then flat or down
//! is a warm-up.

use serde::Serialize;

pub mod classify;
pub mod confidence;
pub mod features;
mod run;
mod weigh;

use run::{fit_run, RunFit};
pub use run::{REDUCED_POINTS, REDUCE_ABOVE};
use weigh::{weigh_evidence, EvidenceInput, Judged};

use crate::model::evidence::{self, AllocCheckpoints, Retention, SeriesContext, Shortfall};
pub use crate::model::reason::ReasonCode;
use crate::model::reason::{Basis, Qualifier, Reason};
use crate::model::stats;

/// Fewest points per run for a run to be fitted.
pub const MIN_POINTS: usize = 5;
/// Significance level of the trend tests.
pub const ALPHA: f64 = 0.05;
/// Growth over the window, relative to the starting level, below which a significant
/// trend is only a possible leak.
pub const MIN_RELATIVE_GROWTH: f64 = 0.05;

/// One run's series: time in hours since the run's first point, and values.
#[derive(Debug, Clone, Default)]
pub struct RunSeries {
    /// Run label (capture and run id).
    pub run: String,
    /// Absolute time of each point, ns since the epoch.
    pub time_ns: Vec<i64>,
    /// Values.
    pub y: Vec<f64>,
}

impl RunSeries {
    fn hours(&self) -> Vec<f64> {
        let t0 = self.time_ns.first().copied().unwrap_or(0);
        self.time_ns
            .iter()
            .map(|t| crate::units::hours_between(t0, *t))
            .collect()
    }
}

/// Shape of a series, as judged by [`fit_series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Significant, sustained growth.
    Leak,
    /// Significant growth that is slowing down, or evidence from one signal only.
    PossibleLeak,
    /// Grew, but the data cannot yet tell a leak from a cache still filling or a batch not
    /// yet flushed: too few observations or sampling quanta, no clear growth at the end, or
    /// one cycle of a possible batch (see [`crate::model::evidence`]).
    Growing,
    /// Grew, then stopped growing (a bounded cache filling up).
    Plateau,
    /// Periodic resets to a flat floor (batches, buffers flushed).
    Sawtooth,
    /// Rose early, then flat or falling (warm-up released or retained once).
    WarmUp,
    /// Significantly decreasing.
    Shrinking,
    /// No significant trend.
    Steady,
    /// Not enough points to judge.
    TooShort,
}

impl Verdict {
    /// Whether the verdict counts as a leak finding.
    pub fn is_leak(self) -> bool {
        matches!(self, Verdict::Leak | Verdict::PossibleLeak)
    }

    /// Stable code, as in JSON and alert state (`leak`, `possible-leak`, `growing`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Leak => "leak",
            Verdict::PossibleLeak => "possible-leak",
            Verdict::Growing => "growing",
            Verdict::Plateau => "plateau",
            Verdict::Sawtooth => "sawtooth",
            Verdict::WarmUp => "warm-up",
            Verdict::Shrinking => "shrinking",
            Verdict::Steady => "steady",
            Verdict::TooShort => "too-short",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Leak => "leak",
            Verdict::PossibleLeak => "possible leak",
            Verdict::Growing => "growing, too early to tell",
            Verdict::Plateau => "plateau",
            Verdict::Sawtooth => "sawtooth",
            Verdict::WarmUp => "warm-up",
            Verdict::Shrinking => "shrinking",
            Verdict::Steady => "steady",
            Verdict::TooShort => "too short",
        }
    }
}

/// The combined fit of a series over all its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Fit {
    /// Classification.
    pub verdict: Verdict,
    /// Confidence that the series is a leak (0..1); for non-leaks, how sure of growth.
    pub confidence: f64,
    /// Estimated growth rate, units per hour (Theil-Sen, run-duration weighted).
    pub rate_per_hour: f64,
    /// OLS slope, units per hour (run-duration weighted).
    pub ols_per_hour: f64,
    /// OLS R² (run-duration weighted).
    pub r2: f64,
    /// Slope over the last 40% of each run relative to the whole-run slope.
    pub late_ratio: f64,
    /// One-sided Mann-Kendall p-value of an increasing trend, runs combined.
    pub mk_p: f64,
    /// `mk_p` adjusted for the number of series ranked together (Benjamini-Hochberg).
    pub mk_q: f64,
    /// One-sided Mann-Kendall p-value of a decreasing trend (judges "shrinking").
    #[serde(skip)]
    pub mk_p_down: f64,
    /// A leak trend demoted to a possible leak because it changed the level by under
    /// [`MIN_RELATIVE_GROWTH`].
    #[serde(skip)]
    pub small_effect: bool,
    /// Kendall's tau, runs combined.
    pub tau: f64,
    /// Sum over runs of (end level - start level).
    pub growth: f64,
    /// Level at the start of the first run (median of its first points).
    pub start: f64,
    /// Level at the end of the last run.
    pub end: f64,
    /// Highest value seen.
    pub peak: f64,
    /// Large drops (resets) seen.
    pub resets: usize,
    /// Runs fitted.
    pub runs: usize,
    /// Points fitted.
    pub points: usize,
    /// Hours covered by fitted runs.
    pub hours: f64,
    /// Growth in quanta of one sampled allocation (see [`crate::model::evidence`]); 0 when the
    /// series did not grow.
    pub quanta: f64,
    /// What kept a growing series from being called a leak (verdict `growing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortfall: Option<Shortfall>,
    /// For a `growing` series: hours more to record, at the observed pace, for a decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_more_hours: Option<f64>,
    /// The site kept allocating but stopped retaining (or stopped allocating): the
    /// evidence that turned growth into a plateau.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Why the verdict was reached, as data (JSON: `reason_code` and `reason`, the words;
    /// see [`crate::output::json`]).
    #[serde(flatten)]
    pub reason: Reason,
}

impl Fit {
    /// What the verdict rests on, as a stable code.
    pub fn code(&self) -> ReasonCode {
        self.reason.code()
    }
}

/// A growth trend whose Benjamini-Hochberg q-value reaches this is no evidence of a leak.
pub const NO_EVIDENCE_Q: f64 = 0.5;

/// Adjusts fits of series ranked together for multiple testing: among thousands of call
/// sites some reach p < 0.05 by chance. Each trend p-value becomes a Benjamini-Hochberg
/// q-value; leak confidence is rescaled from (1 - p) to (1 - q), and a leak whose q is not
/// below [`ALPHA`] is only a possible leak, and one whose q reaches [`NO_EVIDENCE_Q`] is
/// steady. A plateau (growth that stopped), a shrinking series, or a possible leak too
/// small to matter whose trend is not significant after the adjustment is steady.
pub fn adjust_for_multiple_tests(fits: &mut [Fit]) {
    let p: Vec<f64> = fits.iter().map(|f| f.mk_p).collect();
    let p_down: Vec<f64> = fits.iter().map(|f| f.mk_p_down).collect();
    let tested = fits.len();
    let q_up = stats::bh_qvalues(&p);
    let q_down = stats::bh_qvalues(&p_down);
    for ((f, q), q_down) in fits.iter_mut().zip(q_up).zip(q_down) {
        f.mk_q = q;
        let trend_q = match f.verdict {
            Verdict::Plateau => Some(q),
            Verdict::PossibleLeak if f.small_effect => Some(q),
            // At NO_EVIDENCE_Q half of such discoveries would be false: no trend.
            Verdict::Leak | Verdict::PossibleLeak | Verdict::Growing if q >= NO_EVIDENCE_Q => {
                Some(q)
            }
            Verdict::Shrinking => Some(q_down),
            _ => None,
        };
        if let Some(tq) = trend_q.filter(|tq| *tq >= ALPHA) {
            f.reason
                .qualifiers
                .push(Qualifier::NotSignificantAcrossSites {
                    tested,
                    q: tq,
                    steady: true,
                });
            f.verdict = Verdict::Steady;
            f.confidence = 0.0;
            continue;
        }
        if !f.verdict.is_leak() {
            continue;
        }
        let scale = if f.mk_p < 1.0 {
            (1.0 - q) / (1.0 - f.mk_p)
        } else {
            0.0
        };
        f.confidence = (f.confidence * scale).clamp(0.0, 1.0);
        if q >= ALPHA && f.verdict == Verdict::Leak {
            f.verdict = Verdict::PossibleLeak;
            f.reason
                .qualifiers
                .push(Qualifier::NotSignificantAcrossSites {
                    tested,
                    q,
                    steady: false,
                });
        }
    }
}

/// Fits every run of a series and classifies the combination.
pub fn fit_series(runs: &[RunSeries]) -> Fit {
    let hours: Vec<Vec<f64>> = runs.iter().map(RunSeries::hours).collect();
    let views: Vec<RunView> = runs
        .iter()
        .zip(&hours)
        .map(|(r, h)| RunView::new(h, &r.y))
        .collect();
    fit_runs(&views, &SeriesContext::default())
}

/// One run of a series, borrowed: hours since the run's first point, and values.
#[derive(Debug, Clone, Copy)]
pub struct RunView<'a> {
    /// Time of each point in hours since the run's first point.
    pub hours: &'a [f64],
    /// Values.
    pub y: &'a [f64],
    /// Allocation totals at [`evidence::CHECKPOINTS`] (heap series), when read.
    pub alloc: Option<AllocCheckpoints>,
}

impl<'a> RunView<'a> {
    /// A run with no allocation totals.
    pub fn new(hours: &'a [f64], y: &'a [f64]) -> Self {
        RunView {
            hours,
            y,
            alloc: None,
        }
    }
}

/// [`fit_series`] over borrowed runs (no copies of long series), knowing what one sampled
/// event adds to the series (see [`SeriesContext`]): each run's features, combined
/// ([`features`]), classified ([`classify`]), given a confidence ([`confidence`]), then
/// weighed against the evidence ([`weigh`]).
pub fn fit_runs(runs: &[RunView], ctx: &SeriesContext) -> Fit {
    let fits: Vec<RunFit> = runs.iter().filter_map(|r| fit_run(r.hours, r.y)).collect();
    if fits.is_empty() {
        return too_short(runs);
    }
    let allocs: Vec<AllocCheckpoints> = runs
        .iter()
        .filter(|r| r.y.len() >= MIN_POINTS)
        .filter_map(|r| r.alloc)
        .collect();
    let f = features::combine(&fits, ctx);
    let c = classify::classify(&f);
    let judged = Judged {
        verdict: c.verdict,
        confidence: confidence::of(&f, &c),
        reason: c.reason,
    };
    let evidence = EvidenceInput {
        fits: &fits,
        allocs: &allocs,
        ctx,
        quantum: f.quantum,
        quanta: f.quanta,
        observations: f.observations,
        late_significant: f.late_significant,
        growth: f.growth,
    };
    let (mut judged, shortfall, retention) = weigh_evidence(judged, &evidence);
    if judged.verdict.is_leak() {
        let sampled_quanta = ctx.quantum().map_or(f64::INFINITY, |_| f.quanta);
        judged.confidence *= evidence::leak_evidence_factor(f.observations, sampled_quanta);
    }
    let record_more_hours = shortfall.and_then(|s| {
        evidence::record_more_hours(
            &s,
            f.observations,
            f.hours,
            c.rate,
            f.quantum.unwrap_or(1.0),
        )
    });
    Fit {
        verdict: judged.verdict,
        confidence: judged.confidence,
        rate_per_hour: c.rate,
        ols_per_hour: f.ols,
        r2: f.r2,
        late_ratio: f.late_ratio,
        mk_p: f.p_up,
        mk_q: f.p_up,
        mk_p_down: f.p_down,
        small_effect: c.small_effect.is_some(),
        tau: f.mk.tau(),
        growth: f.growth,
        start: f.start,
        end: f.end,
        peak: f.peak,
        resets: f.resets,
        runs: fits.len(),
        points: runs.iter().map(|r| r.y.len()).sum(),
        hours: f.hours,
        quanta: f.quanta,
        shortfall,
        record_more_hours,
        retention,
        reason: judged.reason,
    }
}

/// The fit of a series with fewer than [`MIN_POINTS`] points in every run.
fn too_short(runs: &[RunView]) -> Fit {
    Fit {
        verdict: Verdict::TooShort,
        confidence: 0.0,
        rate_per_hour: 0.0,
        ols_per_hour: 0.0,
        r2: 0.0,
        late_ratio: 0.0,
        mk_p: 1.0,
        mk_q: 1.0,
        mk_p_down: 1.0,
        small_effect: false,
        tau: 0.0,
        growth: 0.0,
        start: runs
            .first()
            .and_then(|r| r.y.first())
            .copied()
            .unwrap_or(0.0),
        end: runs.last().and_then(|r| r.y.last()).copied().unwrap_or(0.0),
        peak: runs
            .iter()
            .flat_map(|r| r.y.iter().copied())
            .fold(0.0f64, f64::max),
        resets: 0,
        runs: 0,
        points: runs.iter().map(|r| r.y.len()).sum(),
        hours: 0.0,
        quanta: 0.0,
        shortfall: None,
        record_more_hours: None,
        retention: None,
        reason: Reason::new(Basis::TooFewPoints { need: MIN_POINTS }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(f: impl Fn(f64) -> f64, n: usize) -> RunSeries {
        // Deterministic jitter: a fixed pseudo-random sequence.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 1000) as f64 / 1000.0 - 0.5
        };
        RunSeries {
            run: "r".into(),
            time_ns: (0..n as i64).map(|i| i * 10_000_000_000).collect(),
            y: (0..n).map(|i| f(i as f64) + noise()).collect(),
        }
    }

    /// A series with roughly normal noise of standard deviation `sd` (sum of 12 uniforms).
    fn noisy(f: impl Fn(f64) -> f64, n: usize, sd: f64, seed: u64) -> RunSeries {
        let mut uniform = crate::model::stats::test_uniforms(
            0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d),
        );
        RunSeries {
            run: "r".into(),
            time_ns: (0..n as i64).map(|i| i * 10_000_000_000).collect(),
            y: (0..n)
                .map(|i| f(i as f64) + sd * ((0..12).map(|_| uniform()).sum::<f64>() - 6.0))
                .collect(),
        }
    }

    /// The verdicts of a shape over 20 noise seeds.
    fn verdicts(f: impl Fn(f64) -> f64 + Copy, n: usize, sd: f64) -> Vec<Verdict> {
        (0..20)
            .map(|seed| fit_series(&[noisy(f, n, sd, seed)]).verdict)
            .collect()
    }

    #[test]
    fn shapes_hold_their_verdicts_under_noise() {
        // Leaks: late onset, slow under heavy noise, one partial cleanup on the way.
        let late_onset = |i: f64| 1000.0 + 20.0 * (i - 60.0).max(0.0);
        let slow = |i: f64| 1000.0 + 5.0 * i;
        let cleaned_once = |i: f64| 1000.0 + 10.0 * i - if i >= 60.0 { 400.0 } else { 0.0 };
        for (name, v) in [
            ("late onset", verdicts(late_onset, 120, 20.0)),
            ("slow, noisy", verdicts(slow, 120, 60.0)),
            ("cleaned once", verdicts(cleaned_once, 120, 20.0)),
        ] {
            assert!(v.iter().all(|v| *v == Verdict::Leak), "{name}: {v:?}");
        }
        // Non-leaks: a flushed batch and a filling cache under noise, a two-level series.
        let batch = |i: f64| 500.0 + (i % 12.0) * 50.0;
        let cache = |i: f64| 500.0 + (i * 20.0).min(1000.0);
        let two_level = |i: f64| {
            if (i * 7.0) % 5.0 < 1.0 {
                5120.0
            } else {
                4096.0
            }
        };
        for (name, v) in [
            ("batch", verdicts(batch, 120, 20.0)),
            ("cache", verdicts(cache, 120, 30.0)),
            ("two levels", verdicts(two_level, 120, 0.0)),
        ] {
            assert!(v.iter().all(|v| !v.is_leak()), "{name}: {v:?}");
        }
        assert!(verdicts(batch, 120, 20.0)
            .iter()
            .all(|v| *v == Verdict::Sawtooth));
        assert!(verdicts(cache, 120, 30.0)
            .iter()
            .all(|v| *v == Verdict::Plateau));
        assert!(verdicts(two_level, 120, 0.0)
            .iter()
            .all(|v| *v == Verdict::Steady));
    }

    #[test]
    fn sparsely_sampled_batch_is_a_sawtooth_not_a_leak() {
        // A batch buffer flushed every few seconds, seen through Go's default heap sampling
        // (one sample per 512 KiB): 0 to 3 samples live at a time, some cycles one jump.
        // Recorded from the fixture service at -memprofilerate 524288, 2 s interval.
        let y = [
            526338.0, 0.0, 0.0, 526338.0, 526338.0, 0.0, 0.0, 526338.0, 526338.0, 0.0, 526723.0,
            526723.0, 526723.0, 0.0, 526723.0, 526723.0, 526723.0, 0.0, 0.0, 526338.0, 526338.0,
            0.0, 526338.0, 526338.0, 526338.0, 0.0, 0.0, 0.0, 0.0, 526723.0, 526723.0, 1053061.0,
            1053061.0, 1053447.0, 1053447.0, 1053447.0, 1053447.0, 0.0, 526338.0, 1053061.0,
            1053061.0, 0.0, 0.0, 1053061.0, 1053061.0, 0.0, 526723.0, 1580171.0, 1580171.0, 0.0,
            0.0, 526723.0,
        ];
        let r = RunSeries {
            run: "r".into(),
            time_ns: (0..y.len() as i64).map(|i| i * 2_000_000_000).collect(),
            y: y.to_vec(),
        };
        let f = fit_series(&[r]);
        assert!(!f.verdict.is_leak(), "{f:?}");
        assert_eq!(f.verdict, Verdict::Sawtooth, "{f:?}");
    }

    #[test]
    fn late_onset_leak_reports_its_current_rate() {
        // Flat, then +20000 per run from `onset` on: 60000/h over a 1/3 h run.
        for (onset, min_share) in [(0.5, 0.9), (0.75, 0.9), (0.9, 0.5)] {
            let f = fit_series(&[series(
                |i| 1000.0 + (i / 120.0 - onset).max(0.0) * 20000.0,
                120,
            )]);
            assert_eq!(f.verdict, Verdict::Leak, "onset {onset}: {f:?}");
            assert!(
                f.rate_per_hour >= min_share * 60000.0 && f.rate_per_hour <= 1.1 * 60000.0,
                "onset {onset}: {}",
                f.rate_per_hour
            );
        }
    }

    /// A heap-profile-like staircase: `n` points, each adding Poisson(`per_point(i)`)
    /// quanta of 512 KiB (drawn as 20 Bernoulli sub-steps).
    fn sampled_staircase(seed: u64, n: usize, per_point: impl Fn(usize) -> f64) -> RunSeries {
        let mut u = stats::test_uniforms(seed);
        let mut level = 0.0;
        let mut s = series(|_| 0.0, n);
        s.y = (0..n)
            .map(|i| {
                for _ in 0..20 {
                    if u() < per_point(i) / 20.0 {
                        level += 524_288.0;
                    }
                }
                level
            })
            .collect();
        s
    }

    #[test]
    fn bunched_samples_of_a_constant_rate_are_not_a_speed_up() {
        // 40 points, 0.35 samples per point (about 14 steps): the steps bunch by chance.
        let sped_up = (1..=60u64)
            .map(|seed| fit_series(&[sampled_staircase(seed * 7919, 40, |_| 0.35)]))
            .filter(|f| f.reason.has(|q| matches!(q, Qualifier::SpedUp { .. })))
            .count();
        assert!(
            sped_up <= 3,
            "{sped_up} of 60 constant-rate staircases 'sped up'"
        );
    }

    #[test]
    fn gaps_between_samples_of_a_constant_rate_are_not_a_plateau() {
        // 45 points, 0.2 samples per point (about 9 steps): long flat gaps happen by chance.
        // Without the chance checks about a quarter of these were plateaus or possible leaks.
        // With so few steps, 'growing' (too early to tell) is an honest answer; calling the
        // growth stopped is not.
        let missed = (1..=100u64)
            .map(|seed| fit_series(&[sampled_staircase(seed * 6151, 45, |_| 0.2)]))
            .filter(|f| !matches!(f.verdict, Verdict::Leak | Verdict::Growing))
            .count();
        assert!(
            missed <= 4,
            "{missed} of 100 constant-rate staircases not a leak"
        );
    }

    #[test]
    fn sampled_cache_that_fills_then_stops_is_a_plateau() {
        // One sample per point for 15 points, then none for 30.
        let plateaus = (1..=40u64)
            .map(|seed| {
                fit_series(&[sampled_staircase(seed * 7207, 45, |i| {
                    if i < 15 {
                        1.0
                    } else {
                        0.0
                    }
                })])
            })
            .filter(|f| f.verdict == Verdict::Plateau)
            .count();
        assert!(
            plateaus >= 38,
            "only {plateaus} of 40 filled caches are plateaus"
        );
    }

    #[test]
    fn sampled_leak_that_starts_half_way_still_reports_its_current_rate() {
        // Nothing for 30 points, then 0.8 samples per point for 30.
        let mut sped_up = 0;
        for seed in 1..=40u64 {
            let f = fit_series(&[sampled_staircase(seed * 104_729, 60, |i| {
                if i < 30 {
                    0.0
                } else {
                    0.8
                }
            })]);
            if f.verdict == Verdict::Leak && f.reason.has(|q| matches!(q, Qualifier::SpedUp { .. }))
            {
                sped_up += 1;
            }
        }
        assert!(
            sped_up >= 36,
            "only {sped_up} of 40 late leaks report their current rate"
        );
    }

    #[test]
    fn linear_growth_is_a_leak() {
        let f = fit_series(&[series(|i| 100.0 + 5.0 * i, 60)]);
        assert_eq!(f.verdict, Verdict::Leak, "{f:?}");
        assert!(f.confidence > 0.95);
        // 5 units per 10 s = 1800 per hour.
        assert!(
            (f.rate_per_hour - 1800.0).abs() < 50.0,
            "{}",
            f.rate_per_hour
        );
    }

    #[test]
    fn filled_cache_is_a_plateau() {
        let f = fit_series(&[series(|i| (i * 10.0).min(200.0), 60)]);
        assert_eq!(f.verdict, Verdict::Plateau, "{f:?}");
    }

    #[test]
    fn periodic_flush_is_a_sawtooth() {
        let f = fit_series(&[series(|i| (i % 8.0) * 50.0, 60)]);
        assert_eq!(f.verdict, Verdict::Sawtooth, "{f:?}");
    }

    #[test]
    fn early_peak_is_warm_up() {
        let f = fit_series(&[series(|i| if i < 5.0 { i * 100.0 } else { 10.0 }, 60)]);
        assert!(matches!(f.verdict, Verdict::WarmUp), "{f:?}");
    }

    #[test]
    fn noise_is_steady() {
        let f = fit_series(&[series(|_| 500.0, 60)]);
        assert_eq!(f.verdict, Verdict::Steady, "{f:?}");
    }

    #[test]
    fn restart_is_not_a_drop() {
        // Two runs of the same leak: each restarts from the bottom.
        let a = series(|i| 10.0 * i, 30);
        let b = series(|i| 10.0 * i, 30);
        let f = fit_series(&[a, b]);
        assert_eq!(f.verdict, Verdict::Leak, "{f:?}");
        assert_eq!(f.runs, 2);
        assert_eq!(f.resets, 0);
    }

    #[test]
    fn coarse_steps_to_the_end_are_a_leak() {
        // A slow leak seen through heap sampling: flat stretches, then a jump, to the end.
        let f = fit_series(&[series(
            |i| (i / 8.0).floor() * 512.0 + ((i as i64 % 59) / 58) as f64 * 512.0,
            60,
        )]);
        assert_eq!(f.verdict, Verdict::Leak, "{f:?}");
    }

    #[test]
    fn tiny_drift_on_a_large_level_is_not_a_leak() {
        // 0.5% growth over the run on a level of 1e6: significant, but not a leak.
        let f = fit_series(&[series(|i| 1e6 + 80.0 * i, 60)]);
        assert_eq!(f.verdict, Verdict::PossibleLeak, "{f:?}");
        assert!(f.confidence < 0.2, "{f:?}");
    }

    #[test]
    fn short_period_sawtooth_ending_on_a_ramp_is_a_sawtooth() {
        // Period 10 in 60 points; the run ends at the top of a ramp.
        let f = fit_series(&[series(|i| 100.0 + ((i + 1.0) % 10.0) * 40.0, 60)]);
        assert_eq!(f.verdict, Verdict::Sawtooth, "{f:?}");
    }

    #[test]
    fn rising_floor_under_a_sawtooth_is_a_leak() {
        let f = fit_series(&[series(|i| 100.0 + 20.0 * i + (i % 8.0) * 60.0, 60)]);
        assert_eq!(f.verdict, Verdict::Leak, "{f:?}");
    }

    #[test]
    fn noise_dips_in_a_long_series_are_not_resets() {
        // 2,000 points of bell-shaped noise (sum of three uniforms): one-point drops of
        // half the range happen, resets must not.
        let f = fit_series(&[series(
            |i| {
                let u = |k: u64| {
                    let h = (i as u64 * 3 + k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    ((h >> 33) % 1000) as f64
                };
                1000.0 + u(0) + u(1) + u(2)
            },
            2000,
        )]);
        assert!(f.resets < 20, "{f:?}");
        assert_eq!(f.verdict, Verdict::Steady, "{f:?}");
    }

    #[test]
    fn bounded_noise_in_a_long_series_is_steady_not_a_sawtooth() {
        // 10,000 points of bounded bell-shaped noise (as heap sampling gives).
        let f = fit_series(&[series(
            |i| {
                let u = |k: u64| {
                    let h = (i as u64 * 4 + k + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    ((h >> 33) % 1000) as f64
                };
                1e6 + u(0) + u(1) + u(2) + u(3)
            },
            10_000,
        )]);
        assert_eq!(f.verdict, Verdict::Steady, "{f:?}");
    }

    /// Heap context at Go's default sampling, 1 KiB objects.
    fn heap_ctx() -> SeriesContext {
        SeriesContext {
            sampling_period: Some(524_288.0),
            object_size: 1024.0,
        }
    }

    fn fit_heap(s: &RunSeries) -> Fit {
        let hours = s.hours();
        fit_runs(&[RunView::new(&hours, &s.y)], &heap_ctx())
    }

    #[test]
    fn a_table_replaced_once_is_a_step_however_large() {
        // 8 MiB, replaced by 24 MiB a third of the way in, with churn noise around it.
        let mut u = stats::test_uniforms(11);
        let mut s = series(|_| 0.0, 40);
        s.y = (0..40)
            .map(|i| if i < 13 { 8.0 } else { 24.0 } * 1048576.0 + 300_000.0 * u())
            .collect();
        let f = fit_heap(&s);
        assert!(
            matches!(f.verdict, Verdict::Steady | Verdict::Plateau),
            "{f:?}"
        );
        // The same step late in the run, where no stop can show: still not a trend.
        let mut s = series(|_| 0.0, 40);
        s.y = (0..40)
            .map(|i| if i < 30 { 8.0 } else { 24.0 } * 1048576.0 + 300_000.0 * u())
            .collect();
        let f = fit_heap(&s);
        assert!(!f.verdict.is_leak(), "{f:?}");
        assert_ne!(f.verdict, Verdict::Growing, "{f:?}");
        // Two jumps of one sampled allocation each may be a slow leak: too early.
        let mut s = series(|_| 0.0, 40);
        s.y = (0..40)
            .map(|i| 524_288.0 * f64::from(u8::from(i >= 12) + u8::from(i >= 30)))
            .collect();
        let f = fit_heap(&s);
        assert_eq!(f.verdict, Verdict::Growing, "{f:?}");
    }

    #[test]
    fn a_minute_of_a_batch_is_too_early_and_says_how_long_to_wait() {
        // Six scrapes at 10 s of a buffer that has not flushed yet: a perfect rise.
        let mut s = series(|_| 0.0, 6);
        s.y = (0..6).map(|i| 4.0 * 524_288.0 * i as f64).collect();
        let f = fit_heap(&s);
        assert_eq!(f.verdict, Verdict::Growing, "{f:?}");
        assert_eq!(
            f.shortfall,
            Some(Shortfall::FewObservations { have: 6, need: 12 })
        );
        // Six more observations at the pace seen (6 in 50 s): 50 s.
        let more = f.record_more_hours.unwrap() * 3600.0;
        assert!((more - 50.0).abs() < 1.0, "{more}");
        assert!(f.confidence < 0.5);
    }

    #[test]
    fn a_ring_that_filled_early_is_never_a_leak() {
        // Filled by two sampled allocations in the first fifth of 24 scrapes, then flat:
        // too few quanta to show a stop, so not a leak (growing, or a plateau).
        let mut s = series(|_| 0.0, 24);
        s.y = (0..24)
            .map(|i| 524_288.0 * f64::from(u8::from(i >= 2) + u8::from(i >= 4)))
            .collect();
        let f = fit_heap(&s);
        assert!(!f.verdict.is_leak(), "{f:?}");
        // With its allocations read: they kept flowing and were no longer retained.
        let hours = s.hours();
        let mut alloc = AllocCheckpoints::default();
        for i in 0..evidence::CHECKPOINTS.len() {
            let p = evidence::checkpoint_index(24, i);
            alloc.hours[i] = hours[p];
            alloc.inuse[i] = s.y[p];
            // Two quanta allocated per scrape from the start, all freed but the ring's.
            alloc.alloc[i] = 524_288.0 * 2.0 * p as f64;
        }
        let view = RunView {
            hours: &hours,
            y: &s.y,
            alloc: Some(alloc),
        };
        // A series that would be a leak on its own: growth spread over the run.
        let f = fit_runs(&[view], &heap_ctx());
        assert!(!f.verdict.is_leak(), "{f:?}");
    }

    /// A churning site's garbage, as the fixture service's churn trap shows it under a
    /// contended CPU: objects allocated while a GC marks read as in use until the next GC,
    /// so in-use swings between the one live 16 KiB buffer and a cycle's worth of dead ones
    /// (20 to 45 here), and early in the service's life, while GC cycles are short, it
    /// mostly sits at the bottom. The site allocates 240 buffers between two heap profiles
    /// and never keeps more than one.
    #[test]
    fn churn_garbage_that_rises_with_gc_cycles_is_too_early_not_a_leak() {
        const BUF: f64 = 16_384.0;
        let n = 40;
        let mut u = stats::test_uniforms(3);
        let mut s = series(|_| 0.0, n);
        s.y = (0..n)
            .map(|i| {
                // Positions of the recorded series' lows (only the live buffer).
                let low = [0, 1, 2, 3, 4, 6, 9, 12, 21, 30, 34, 38].contains(&i);
                let dead = if low {
                    0.0
                } else {
                    (20.0 + 25.0 * u()).round()
                };
                BUF * (1.0 + dead)
            })
            .collect();
        let ctx = SeriesContext {
            sampling_period: Some(4096.0),
            object_size: BUF,
        };
        let hours = s.hours();
        let checkpoints = |y: &[f64], allocated_per_scrape: f64| {
            let mut alloc = AllocCheckpoints::default();
            for i in 0..evidence::CHECKPOINTS.len() {
                let p = evidence::checkpoint_index(n, i);
                alloc.hours[i] = hours[p];
                alloc.inuse[i] = y[p];
                alloc.alloc[i] = BUF * (1.0 + allocated_per_scrape * p as f64);
            }
            alloc
        };
        let fit = |alloc| {
            fit_runs(
                &[RunView {
                    hours: &hours,
                    y: &s.y,
                    alloc,
                }],
                &ctx,
            )
        };
        // On its in-use alone the series grew significantly (Mann-Kendall), scattered as
        // garbage is (small tau).
        let alone = fit(None);
        assert!(alone.mk_p < ALPHA, "{alone:?}");
        assert!(alone.tau < evidence::TURNOVER_MAX_TAU, "{alone:?}");
        // Knowing what the site allocates, its growth is within one cycle's garbage.
        let churn = fit(Some(checkpoints(&s.y, 240.0)));
        assert_eq!(churn.verdict, Verdict::Growing, "{churn:?}");
        let Some(Shortfall::Turnover {
            growth,
            per_observation,
        }) = churn.shortfall
        else {
            panic!("{churn:?}")
        };
        assert!(growth <= per_observation && per_observation >= 200.0 * BUF);
        assert!(
            churn.record_more_hours.is_some_and(|h| h > 0.0),
            "{churn:?}"
        );
        // The same growth kept for good rises steadily (one buffer in about 200 retained,
        // under sampling noise): within one interval's allocations, but no garbage.
        let y: Vec<f64> = (0..n)
            .map(|i| BUF * (1.0 + (12.0 * i as f64 / 39.0 + 2.0 * u()).round()))
            .collect();
        let kept = fit_runs(
            &[RunView {
                hours: &hours,
                y: &y,
                alloc: Some(checkpoints(&y, 240.0)),
            }],
            &ctx,
        );
        assert!(kept.tau >= evidence::TURNOVER_MAX_TAU, "{kept:?}");
        assert!(kept.verdict.is_leak(), "{kept:?}");
    }

    #[test]
    fn a_cache_at_capacity_that_keeps_allocating_is_a_plateau() {
        // 30 scrapes: 20 quanta retained by half-way, then 2 more while 40 were allocated.
        let mut s = series(|_| 0.0, 30);
        s.y = (0..30)
            .map(|i| {
                524_288.0
                    * if i < 15 {
                        (i * 4 / 3) as f64
                    } else {
                        20.0 + ((i - 15) / 7) as f64
                    }
            })
            .collect();
        let hours = s.hours();
        let mut alloc = AllocCheckpoints::default();
        for i in 0..evidence::CHECKPOINTS.len() {
            let p = evidence::checkpoint_index(30, i);
            alloc.hours[i] = hours[p];
            alloc.inuse[i] = s.y[p];
            alloc.alloc[i] = 524_288.0
                * if p < 15 {
                    (p * 4 / 3) as f64
                } else {
                    20.0 + 3.0 * (p - 15) as f64
                };
        }
        let with = fit_runs(
            &[RunView {
                hours: &hours,
                y: &s.y,
                alloc: Some(alloc),
            }],
            &heap_ctx(),
        );
        assert_eq!(with.verdict, Verdict::Plateau, "{with:?}");
        if let Some(r) = with.retention {
            assert!(r.late < 0.2 && r.early > 0.8, "{r:?}");
        }
    }

    #[test]
    fn one_step_up_is_steady_and_says_why() {
        // One heap-profile sample (512 KiB) appears at 60% of the run and stays: the
        // straddling pairs make Mann-Kendall significant, but the median slope is 0.
        let mut s = series(|_| 0.0, 90);
        s.y = (0..90)
            .map(|i| if i < 54 { 0.0 } else { 524_288.0 })
            .collect();
        let f = fit_series(&[s]);
        assert!(f.mk_p < ALPHA, "{f:?}");
        assert_eq!(f.verdict, Verdict::Steady, "{f:?}");
        assert!(
            matches!(f.reason.basis, Basis::TooFewSteps { .. }),
            "{:?}",
            f.reason
        );
        assert_eq!(f.code(), ReasonCode::TooFewSteps);
    }

    #[test]
    fn verdict_codes_are_the_json_names() {
        for v in [
            Verdict::Leak,
            Verdict::PossibleLeak,
            Verdict::Growing,
            Verdict::Plateau,
            Verdict::Sawtooth,
            Verdict::WarmUp,
            Verdict::Shrinking,
            Verdict::Steady,
            Verdict::TooShort,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.code());
        }
    }

    #[test]
    fn too_few_points() {
        let f = fit_series(&[series(|i| i, 3)]);
        assert_eq!(f.verdict, Verdict::TooShort);
    }
}
