//! The features of a whole series: its runs' features combined (slopes weighted by each
//! run's duration, trend tests added up), plus what one sampled event adds (the growth
//! quantum), whether the floor rises, and whether growth slowed beyond chance. Everything
//! the classification and the confidence look at, and nothing else.

use super::run::{QuantaSplit, RunFit, SLOWING_P, SLOWING_SPLITS};
use super::ALPHA;
use crate::model::evidence::{self, SeriesContext};
use crate::model::stats::{self, KendallS};

/// The combined features of a series (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Hours covered by the fitted runs (the weight of the averages).
    pub hours: f64,
    /// Theil-Sen slope per hour.
    pub rate: f64,
    /// Theil-Sen slope per hour over the last 40% of each run.
    pub late: f64,
    /// Theil-Sen slope per hour over the first 40% of each run.
    pub early: f64,
    /// Theil-Sen slope per hour after the knee where growth began or sped up.
    pub recent: f64,
    /// Least-squares slope per hour and its R².
    pub ols: f64,
    /// R² of the least-squares fit.
    pub r2: f64,
    /// Where the peak is, as a share of the run.
    pub peak_frac: f64,
    /// Where the last new high is, as a share of the run.
    pub last_high: f64,
    /// Mann-Kendall over the whole runs.
    pub mk: KendallS,
    /// Mann-Kendall over the last 40%.
    pub late_mk: KendallS,
    /// One-sided p-value of an increasing trend.
    pub p_up: f64,
    /// One-sided p-value of a decreasing trend.
    pub p_down: f64,
    /// A run peaked early and came down for real.
    pub falls_after_peak: bool,
    /// Sum over runs of (end level - start level).
    pub growth: f64,
    /// Sum over runs of (level of the last 10% - start level).
    pub recent_growth: f64,
    /// Sum over runs of the starting level (at least 0).
    pub level: f64,
    /// Large drops seen.
    pub resets: usize,
    /// Level at the start of the first run, at the end of the last, and highest.
    pub start: f64,
    /// Level at the end of the last run.
    pub end: f64,
    /// Highest level.
    pub peak: f64,
    /// Late slope over the whole-run slope (0 when the rate is not positive).
    pub late_ratio: f64,
    /// Late slope over the early slope (infinite when the early slope is not positive).
    pub decel: f64,
    /// Growth stopped at a fitted knee over at least half the hours: (position, slope
    /// before, slope after) of the last run's knee.
    pub stopped_at_knee: Option<(f64, f64, f64)>,
    /// What one sampled event adds: the profile's quantum, or the median rise.
    pub quantum: Option<f64>,
    /// Growth in quanta (0 when nothing rose or no quantum is known).
    pub quanta: f64,
    /// The floor under resets rises (by more than a sampled object or two).
    pub floor_rising: bool,
    /// Significant growth in the last 40%.
    pub late_significant: bool,
    /// Growth slowed by more than sampling could by chance, at some split.
    pub slowing_beyond_chance: bool,
    /// The peak came early and the end is well below it.
    pub early_peak: bool,
    /// Points fitted, runs added up (independent observations).
    pub observations: usize,
}

/// Combines the fitted runs of a series; `fits` must not be empty.
pub(super) fn combine(fits: &[RunFit], ctx: &SeriesContext) -> Features {
    let w: f64 = fits.iter().map(|f| f.hours).sum();
    let wavg = |g: &dyn Fn(&RunFit) -> f64| fits.iter().map(|f| g(f) * f.hours).sum::<f64>() / w;
    let rate = wavg(&|f| f.ts);
    let late = wavg(&|f| f.late_ts);
    let early = wavg(&|f| f.early_ts);
    let floor = wavg(&|f| f.floor_ts);
    let mk = fits
        .iter()
        .fold(KendallS::default(), |a, f| a.combine(f.mk));
    let late_mk = fits
        .iter()
        .fold(KendallS::default(), |a, f| a.combine(f.late_mk));
    let floor_mk = fits
        .iter()
        .fold(KendallS::default(), |a, f| a.combine(f.floor_mk));
    let growth: f64 = fits.iter().map(|f| f.end - f.start).sum();
    let recent_growth: f64 = fits.iter().map(|f| f.recent_end - f.start).sum();
    let end = fits[fits.len() - 1].end;
    let peak = fits.iter().map(|f| f.peak).fold(f64::MIN, f64::max);
    let peak_frac = wavg(&|f| f.peak_frac);
    let stopped_hours: f64 = fits
        .iter()
        .filter(|f| f.stopped.is_some())
        .map(|f| f.hours)
        .sum();
    let knee = fits.iter().rev().find_map(|f| f.stopped);
    // What one sampled event adds: known from the profile, else the median rise. A series
    // whose median rise is below the profile's quantum was not sampled that coarsely (a
    // real sampled series rises by whole samples): its median rise is the finer quantum.
    let run_quanta: Vec<f64> = fits.iter().filter_map(|f| f.quantum).collect();
    let median_rise = stats::median(&run_quanta);
    let quantum = match (ctx.quantum(), median_rise) {
        (Some(c), Some(m)) => Some(c.min(m)),
        (c, m) => c.or(m),
    };
    // A floor that rose by a sampling quantum or two is a sampled object that happened to
    // survive a flush, not a leak under the sawtooth.
    let floor_rise: f64 = fits.iter().map(|f| f.floor_rise).sum();
    let floor_rising = floor_mk.p_increasing() < ALPHA
        && floor > 0.25 * rate
        && quantum
            .filter(|_| ctx.quantum().is_some())
            .is_none_or(|q| floor_rise >= evidence::FLOOR_QUANTA * q);
    // Growth that slowed by more than sampling could by chance: at any of the splits
    // (runs added up at each), Bonferroni-corrected for trying several.
    let slowing_beyond_chance = (0..SLOWING_SPLITS.len())
        .map(|i| {
            fits.iter()
                .fold(QuantaSplit::default(), |a, f| a.combine(f.split_quanta[i]))
                .p_slower()
        })
        .fold(1.0f64, f64::min)
        * (SLOWING_SPLITS.len() as f64)
        < SLOWING_P;
    Features {
        hours: w,
        rate,
        late,
        early,
        recent: wavg(&|f| f.recent_ts),
        ols: wavg(&|f| f.ols_slope),
        r2: wavg(&|f| f.ols_r2),
        peak_frac,
        last_high: wavg(&|f| f.last_high_frac),
        mk,
        late_mk,
        p_up: mk.p_increasing(),
        p_down: mk.p_decreasing(),
        falls_after_peak: fits.iter().any(|f| f.falls_from_peak),
        growth,
        recent_growth,
        level: fits.iter().map(|f| f.start.max(0.0)).sum(),
        resets: fits.iter().map(|f| f.resets).sum(),
        start: fits[0].start,
        end,
        peak,
        late_ratio: if rate > 0.0 { late / rate } else { 0.0 },
        // Growth in the last 40% relative to the first 40%: ~1 for a steady leak, near 0
        // for a cache that filled up (even one that keeps creeping from sampling noise).
        decel: if early > 0.0 {
            late / early
        } else {
            f64::INFINITY
        },
        stopped_at_knee: knee.filter(|_| stopped_hours >= 0.5 * w),
        quantum,
        quanta: quantum
            .filter(|q| *q > 0.0)
            .map(|q| growth.max(recent_growth).max(0.0) / q)
            .unwrap_or(0.0),
        floor_rising,
        late_significant: late_mk.p_increasing() < ALPHA,
        slowing_beyond_chance,
        early_peak: peak_frac < 0.5 && peak > 0.0 && end < 0.8 * peak,
        observations: fits.iter().map(|f| f.points).sum(),
    }
}
