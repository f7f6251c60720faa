//! Fits one series (per run, then combined across runs) and classifies its shape.
//!
//! A leak is growth that is statistically significant (Mann-Kendall, tie-corrected,
//! combined over runs), still going at the end of each run (late Theil-Sen slope close to
//! the overall one), and whose floor rises too (a sawtooth that resets to the same floor is
//! a batch, not a leak). Growth that stopped is a plateau; an early peak then flat or down
//! is a warm-up.

use serde::Serialize;

use crate::model::evidence::{self, AllocCheckpoints, Retention, SeriesContext, Shortfall};
pub use crate::model::reason::ReasonCode;
use crate::model::reason::{Basis, Qualifier, Reason};
use crate::model::stats::{self, KendallS};

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

/// Features of one run.
#[derive(Debug, Clone, Default)]
struct RunFit {
    hours: f64,
    ts: f64,
    early_ts: f64,
    late_ts: f64,
    floor_ts: f64,
    ols_slope: f64,
    ols_r2: f64,
    mk: KendallS,
    late_mk: KendallS,
    /// Growth in quanta before and after each of [`SLOWING_SPLITS`].
    split_quanta: [QuantaSplit; SLOWING_SPLITS.len()],
    floor_mk: KendallS,
    /// The run peaked early and came down for real (see [`falls_from_peak`]).
    falls_from_peak: bool,
    /// Theil-Sen slope after a knee where growth began or sped up; else `ts`.
    recent_ts: f64,
    /// Level of the last 10% of points (at least 5).
    recent_end: f64,
    start: f64,
    end: f64,
    peak: f64,
    peak_frac: f64,
    last_high_frac: f64,
    resets: usize,
    /// Growth stopped at a knee: (knee position 0..1, slope before, slope after).
    stopped: Option<(f64, f64, f64)>,
    /// Points of the run (before any reduction).
    points: usize,
    /// The median rise between neighbouring points, when anything rose.
    quantum: Option<f64>,
    /// Rise of the level over the last [`evidence::LATE_SHARE`] of the run (0 if it fell).
    late_rise: f64,
    /// The run rose in one or two jumps (see [`evidence::steps`]).
    steps: Option<evidence::Steps>,
    /// Rise of the floor (Theil-Sen over the troughs) across the run.
    floor_rise: f64,
    /// Hours from the run's start to its first reset.
    first_reset_hours: Option<f64>,
    /// Hours from the run's start to a mid-run low well below the starting level (see
    /// [`Shortfall::DippedMidRun`]).
    dip_hours: Option<f64>,
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

fn edge_level(y: &[f64], head: bool) -> f64 {
    let k = (y.len() / 5).max(2).min(y.len());
    let part = if head { &y[..k] } else { &y[y.len() - k..] };
    stats::median(part).unwrap_or(0.0)
}

/// Index of the last point that set a new high by more than 10% of the series' range: for a
/// leak (even one growing in coarse sampled steps) this is near the end; for a filled
/// cache it is where the plateau began.
fn last_new_high(y: &[f64]) -> usize {
    let lo = y.iter().copied().fold(f64::MAX, f64::min);
    let hi = y.iter().copied().fold(f64::MIN, f64::max);
    let step = 0.1 * (hi - lo);
    let mut best = f64::MIN;
    let mut at = 0;
    for (i, v) in y.iter().enumerate() {
        if i == 0 || *v > best + step {
            at = i;
        }
        best = best.max(*v);
    }
    at
}

/// Runs longer than this are judged on [`REDUCED_POINTS`] bucket medians for the pairwise,
/// break-point and level statistics (OLS, peak, floor and reset features still use every
/// point). This bounds the cost per series: 10,000-point runs fit in tens of microseconds.
pub const REDUCE_ABOVE: usize = 256;
/// Most floor points (cycle troughs or chunk minima) per run.
const MAX_FLOOR_POINTS: usize = 32;

/// A drop counts as a reset only when it is at least this many standard deviations of the
/// series' step noise ([`stats::step_noise_sd`]): iid noise of sd 1 makes a one-step drop
/// of 5 (a difference of 3.5 sd) about once in 4,000 steps.
const RESET_NOISE_SIGMAS: f64 = 5.0;

/// The largest step up a sawtooth cycle may take, as a fraction of its drop.
const MAX_UP_STEP_OF_DROP: f64 = 0.6;
/// Points a long run is reduced to.
pub const REDUCED_POINTS: usize = 64;

/// Whether the cycles between drops build up: in at least two thirds of them the mean of
/// the last third exceeds the mean of the first third by a quarter of the series' range,
/// and at least a third of them climb gradually, no single step up more than
/// [`MAX_UP_STEP_OF_DROP`] of the drop that ends the cycle (of the drop that starts it, for
/// the last cycle). Noise, and values quantized to two levels, jump up as far as they drop
/// in every cycle; a sawtooth climbs in smaller steps than its flush at least some of the
/// time (seen through sparse heap sampling, some of its cycles are single jumps too).
/// Cycles of fewer than 4 points skip the thirds test; with fewer than two cycles of 2
/// points or more the drops are kept as they are.
fn builds_up_between(y: &[f64], drops: &[usize], range: f64) -> bool {
    if drops.len() < 2 {
        return true;
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    let drop_at = |i: usize| y[i - 1] - y[i];
    let (mut cycles, mut rising, mut gradual) = (0usize, 0usize, 0usize);
    let ends = drops.iter().copied().chain(std::iter::once(y.len()));
    for (lo, hi) in std::iter::once(0).chain(drops.iter().copied()).zip(ends) {
        let c = &y[lo..hi];
        if c.len() < 2 {
            continue;
        }
        let drop = if hi < y.len() {
            drop_at(hi)
        } else {
            drop_at(lo)
        };
        let max_up = c.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        let third = c.len() / 3;
        cycles += 1;
        let climbs = c.len() < 4 || mean(&c[c.len() - third..]) - mean(&c[..third]) >= 0.25 * range;
        rising += usize::from(climbs);
        gradual += usize::from(max_up <= MAX_UP_STEP_OF_DROP * drop);
    }
    cycles < 2 || (3 * rising >= 2 * cycles && 3 * gradual >= cycles)
}

/// Whether a run that peaked early came down from its peak for real, not by one noise
/// spike: the points from the peak on fall significantly (Mann-Kendall), or the peak is a
/// short high stretch (the peak and a neighbour in the upper half between the end level and
/// the peak, no point of the run's second half there) and the fall is
/// [`RESET_NOISE_SIGMAS`] times the step noise. `peak_i` indexes all the points `y_all`;
/// `x`, `y` are the judged points (bucket medians of long runs).
fn falls_from_peak(
    x: &[f64],
    y: &[f64],
    y_all: &[f64],
    peak_i: usize,
    end: f64,
    noise_sd: Option<f64>,
) -> bool {
    let peak_at = (peak_i * y.len() / y_all.len()).min(y.len() - 1);
    if stats::mann_kendall(&x[peak_at..], &y[peak_at..]).p_decreasing() < ALPHA {
        return true;
    }
    let peak = y_all[peak_i];
    let mid = (peak + end) / 2.0;
    let high = |i: usize| y_all.get(i).is_some_and(|v| *v >= mid);
    let stretch = (peak_i > 0 && high(peak_i - 1)) || high(peak_i + 1);
    let late_high = y_all[y_all.len() / 2..].iter().any(|v| *v >= mid);
    let sd = noise_sd.unwrap_or_else(|| stats::step_noise_sd(y_all));
    stretch && !late_high && peak - end >= RESET_NOISE_SIGMAS * sd
}

fn fit_run(x_all: &[f64], y_all: &[f64]) -> Option<RunFit> {
    let n_all = y_all.len().min(x_all.len());
    if n_all < MIN_POINTS {
        return None;
    }
    let hours = x_all[n_all - 1] - x_all[0];
    if hours <= 0.0 {
        return None;
    }
    let reduced;
    let (x, y): (&[f64], &[f64]) = if n_all > REDUCE_ABOVE {
        reduced = stats::bucket_medians(x_all, y_all, REDUCED_POINTS);
        (&reduced.0, &reduced.1)
    } else {
        (x_all, y_all)
    };
    let n = y.len();
    let ts = stats::theil_sen(x, y).unwrap_or(0.0);
    let ols = stats::ols(x_all, y_all);
    let late_from = n - ((n * 2) / 5).max(4).min(n);
    let late_ts = stats::theil_sen(&x[late_from..], &y[late_from..]).unwrap_or(0.0);
    let late_mk = stats::mann_kendall(&x[late_from..], &y[late_from..]);
    let quantum = growth_quantum(&y[..x.len().min(n)]);
    let split_at = |k: usize| quantum.and_then(|q| QuantaSplit::at(x, y, k, q));
    let split_quanta =
        SLOWING_SPLITS.map(|f| split_at((f * (n - 1) as f64).round() as usize).unwrap_or_default());
    let early_to = n - late_from;
    let early_ts = stats::theil_sen(&x[..early_to], &y[..early_to]).unwrap_or(0.0);
    let (mut peak, mut peak_i) = (f64::MIN, 0);
    let mut lo = f64::MAX;
    for (i, v) in y_all.iter().enumerate() {
        if *v > peak {
            peak = *v;
            peak_i = i;
        }
        lo = lo.min(*v);
    }
    let range = peak - lo;
    // Resets: drops of at least half the range (and 10% of the peak, and
    // RESET_NOISE_SIGMAS times the step noise) in one step that stay down: the two points
    // before are high and the two from the drop on are low. A lone noise dip in a long,
    // noisy series is not a reset.
    let mut noise_sd = None;
    let reset_at: Vec<usize> = if range > 0.0 {
        (1..n_all)
            .filter(|&i| {
                let d = y_all[i - 1] - y_all[i];
                if d < 0.5 * range || d < 0.1 * peak.abs() {
                    return false;
                }
                let sd = *noise_sd.get_or_insert_with(|| stats::step_noise_sd(y_all));
                if d < RESET_NOISE_SIGMAS * sd {
                    return false;
                }
                let before = y_all[i.saturating_sub(2)..i]
                    .iter()
                    .copied()
                    .fold(f64::MAX, f64::min);
                let after = y_all[i..(i + 2).min(n_all)]
                    .iter()
                    .copied()
                    .fold(f64::MIN, f64::max);
                before - after >= 0.3 * range
            })
            .collect()
    } else {
        Vec::new()
    };
    // A sawtooth builds up between resets: most cycles must end higher than they start.
    // Drops in a noisy but flat series do not pass, so they are not counted as resets.
    let reset_at = if builds_up_between(y_all, &reset_at, range) {
        reset_at
    } else {
        Vec::new()
    };
    let resets = reset_at.len();
    // Floor: the trough of every cycle between resets when the series resets periodically
    // (equal chunks shorter than the period would see mid-ramp minima as a rising floor);
    // otherwise the minimum of each of k equal-count chunks.
    let bounds: Vec<(usize, usize)> = if resets >= 2 {
        std::iter::once(0)
            .chain(reset_at.iter().copied())
            .zip(reset_at.iter().copied().chain(std::iter::once(n_all)))
            .collect()
    } else {
        let k = (n_all / 4).clamp(3, 8);
        (0..k)
            .map(|c| {
                let lo = c * n_all / k;
                (lo, ((c + 1) * n_all / k).max(lo + 1))
            })
            .collect()
    };
    // At most MAX_FLOOR_POINTS troughs: neighbouring cycles merge (bounds the cost).
    let bounds: Vec<(usize, usize)> = if bounds.len() > MAX_FLOOR_POINTS {
        (0..MAX_FLOOR_POINTS)
            .map(|c| {
                let a = c * bounds.len() / MAX_FLOOR_POINTS;
                let b = ((c + 1) * bounds.len() / MAX_FLOOR_POINTS).max(a + 1);
                (bounds[a].0, bounds[b - 1].1)
            })
            .collect()
    } else {
        bounds
    };
    let (mut fx, mut fy) = (
        Vec::with_capacity(bounds.len()),
        Vec::with_capacity(bounds.len()),
    );
    for (lo, hi) in bounds {
        let (i, v) = y_all[lo..hi]
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, v)| (lo + i, *v))
            .unwrap_or((lo, 0.0));
        fx.push(x_all[i]);
        fy.push(v);
    }
    let floor_ts = stats::theil_sen(&fx, &fy).unwrap_or(0.0);
    let floor_mk = stats::mann_kendall(&fx, &fy);
    // Broken-stick fit: did growth stop (slow down 5x or more) at some point and stay
    // stopped? Judged on the post-knee segment as a whole, which is robust to noise.
    // Theil-Sen slopes of the two segments at the knee, and the growth in quanta either
    // side of it: (knee, before, after, split).
    let segments = stats::knee(x, y, (n / 6).max(3)).and_then(|k| {
        let before = stats::theil_sen(&x[..=k.index], &y[..=k.index])?;
        let after = stats::theil_sen(&x[k.index..], &y[k.index..])?;
        let split = split_at(k.index);
        Some((k, before, after, split))
    });
    let stopped = segments
        .as_ref()
        .and_then(|&(ref k, before, after, split)| {
            let pre_growth = before * (x[k.index] - x[0]);
            let post_growth = after.max(0.0) * (x[n - 1] - x[k.index]);
            let at = k.index as f64 / (n - 1) as f64;
            (at <= 0.7
                && before > 0.0
                && after < 0.2 * before
                && post_growth < 0.25 * pre_growth
                && split.is_some_and(|q| q.p_slower() < KNEE_P))
            .then_some((k.index as f64 / (n - 1) as f64, before, after))
        });
    // The other way round: growth that began (or sped up 2x or more) part-way through. Its
    // current rate is the slope after the knee; the whole-run slope dilutes it.
    let recent_ts = segments
        .as_ref()
        .and_then(|&(_, before, after, split)| {
            (after > 0.0
                && after > 2.0 * before.max(0.0)
                && split.is_some_and(|q| q.p_faster() < KNEE_P))
            .then_some(after)
        })
        .unwrap_or(ts)
        .max(ts);
    // Mann-Kendall with its variance widened for noise with memory, judged on the residuals
    // of a two-segment fit whose break may sit near either end (a leak that starts late is
    // a bend, not correlated noise); of the Theil-Sen line when there is none.
    let bend = stats::knee(x, y, (n / 20).max(3));
    let residuals: Vec<f64> = x
        .iter()
        .zip(y)
        .map(|(x, y)| match &bend {
            Some(k) => y - k.at(*x),
            None => y - ts * x,
        })
        .collect();
    let mk = stats::mann_kendall(x, y).corrected_for_autocorrelation(&residuals);
    let recent_end = stats::median(&y[n - (n / 10).max(5).min(n)..]).unwrap_or(0.0);
    let start = edge_level(y, true);
    let end = edge_level(y, false);
    let peak_frac = peak_i as f64 / (n_all - 1) as f64;
    let falls_from_peak = peak_frac < 0.5
        && end < 0.8 * peak
        && falls_from_peak(x, y, &y_all[..n_all], peak_i, end, noise_sd);
    // Levels as medians of three neighbours, as in QuantaSplit: exact on a staircase.
    let level = |i: usize| stats::median(&y[i.saturating_sub(1)..(i + 2).min(n)]).unwrap_or(y[i]);
    let late_at = (((1.0 - evidence::LATE_SHARE) * (n - 1) as f64).round() as usize).min(n - 1);
    let late_rise = (level(n - 1) - level(late_at)).max(0.0);
    let floor_span = fx.last().copied().unwrap_or(0.0) - fx.first().copied().unwrap_or(0.0);
    // A low in the middle of the run well below where it started, by half the run's net
    // growth and by RESET_NOISE_SIGMAS of step noise (one noisy point is no dip).
    let dip_hours = {
        let (lo, hi) = (n_all / 10, n_all - n_all / 10);
        let (i, low) = y_all[lo..hi]
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, v)| (lo + i, *v))
            .unwrap_or((0, start));
        let sd = noise_sd.unwrap_or_else(|| stats::step_noise_sd(y_all));
        let depth = start - low;
        (end > start && depth > 0.5 * (end - start) && depth > RESET_NOISE_SIGMAS * sd)
            .then(|| x_all[i] - x_all[0])
    };
    Some(RunFit {
        dip_hours,
        points: n_all,
        quantum,
        late_rise,
        steps: evidence::steps(y_all),
        floor_rise: floor_ts * floor_span,
        // Only a drop back to where the run began looks like a batch's first flush; one
        // that leaves the level well above it (a partial clean-up) does not.
        first_reset_hours: reset_at
            .first()
            .filter(|&&i| {
                let drop = y_all[i - 1] - y_all[i];
                let low = y_all[i..(i + 2).min(n_all)]
                    .iter()
                    .copied()
                    .fold(f64::MAX, f64::min);
                low - y_all[..i].iter().copied().fold(f64::MAX, f64::min) <= 0.25 * drop
            })
            .map(|&i| x_all[i] - x_all[0]),
        recent_ts,
        recent_end,
        falls_from_peak,
        stopped,
        hours,
        ts,
        early_ts,
        late_ts,
        floor_ts,
        ols_slope: ols.map(|o| o.slope).unwrap_or(0.0),
        ols_r2: ols.map(|o| o.r2).unwrap_or(0.0),
        mk,
        late_mk,
        split_quanta,
        floor_mk,
        start,
        end,
        peak,
        peak_frac,
        last_high_frac: last_new_high(y) as f64 / (n - 1).max(1) as f64,
        resets,
    })
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

/// Chance, under a constant rate, of growth after a fitted knee as far from the
/// expected share as observed, below which the rate changed at the knee (either way).
const KNEE_P: f64 = 0.01;

/// The same for growth that slowed after any of [`SLOWING_SPLITS`] (fixed splits, not
/// chosen to fit; corrected for their number). Early splits matter: a cache that fills in
/// a few sampled steps shows its stop as little growth over most of the run.
const SLOWING_P: f64 = 0.05;

/// Where growth is split to ask whether it slowed: fractions of each run's points.
const SLOWING_SPLITS: [f64; 3] = [0.2, 0.4, 0.6];

/// The median rise between neighbouring points (one sampling period in a sampled heap
/// profile); `None` when nothing rose.
fn growth_quantum(y: &[f64]) -> Option<f64> {
    let rises: Vec<f64> = y
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0.0)
        .collect();
    stats::median(&rises).filter(|q| *q > 0.0)
}

/// Growth on either side of a split, counted in quanta, against a constant rate.
///
/// A quantum is the median rise between neighbouring points. In a sampled heap profile
/// that is one sampling period, and rises arrive like a Poisson process, so a constant rate
/// can bunch its steps into an apparent speed-up, or leave a long flat gap that looks like
/// growth stopped. Under a constant rate the quanta after the split are Binomial(all
/// quanta, share of the time after the split). Splits of several runs add up (their
/// shares averaged, weighted by quanta).
#[derive(Debug, Clone, Copy, Default)]
struct QuantaSplit {
    /// Quanta of growth after the split.
    after: f64,
    /// Quanta of growth on both sides.
    all: f64,
    /// Quanta expected after the split under a constant rate.
    expected: f64,
}

impl QuantaSplit {
    /// The split of `y` at index `k` in quanta of [`growth_quantum`]; `None` when nothing
    /// rose or a side is empty.
    fn at(x: &[f64], y: &[f64], k: usize, quantum: f64) -> Option<Self> {
        let n = x.len().min(y.len());
        if k == 0 || k + 1 >= n {
            return None;
        }
        // Levels as medians of three neighbours: exact on a staircase, robust to a spike.
        let level =
            |i: usize| stats::median(&y[i.saturating_sub(1)..(i + 2).min(n)]).unwrap_or(y[i]);
        let (span_before, span_after) = (x[k] - x[0], x[n - 1] - x[k]);
        let before = (level(k) - level(0)).max(0.0) / quantum;
        let after = (level(n - 1) - level(k)).max(0.0) / quantum;
        let all = before + after;
        let share = span_after / (span_before + span_after);
        (all > 0.0 && share > 0.0 && share < 1.0).then_some(QuantaSplit {
            after,
            all,
            expected: all * share,
        })
    }

    /// Sum of two runs' splits.
    fn combine(self, other: Self) -> Self {
        QuantaSplit {
            after: self.after + other.after,
            all: self.all + other.all,
            expected: self.expected + other.expected,
        }
    }

    /// Chance under a constant rate of this little growth after the split, or less
    /// (1 when there is no growth to judge).
    fn p_slower(&self) -> f64 {
        self.tail(true)
    }

    /// Chance under a constant rate of this much growth after the split, or more.
    fn p_faster(&self) -> f64 {
        self.tail(false)
    }

    fn tail(&self, lower: bool) -> f64 {
        let n = self.all.round();
        if n < 1.0 || self.expected <= 0.0 {
            return 1.0;
        }
        let share = (self.expected / self.all).clamp(1e-9, 1.0 - 1e-9);
        let k = self.after.round().clamp(0.0, n);
        stats::binomial_tail(n as u64, k as u64, share, lower)
    }
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
/// event adds to the series (see [`SeriesContext`]).
pub fn fit_runs(runs: &[RunView], ctx: &SeriesContext) -> Fit {
    let fits: Vec<RunFit> = runs.iter().filter_map(|r| fit_run(r.hours, r.y)).collect();
    let allocs: Vec<AllocCheckpoints> = runs
        .iter()
        .filter(|r| r.y.len() >= MIN_POINTS)
        .filter_map(|r| r.alloc)
        .collect();
    let points: usize = runs.iter().map(|r| r.y.len()).sum();
    let peak_all = runs
        .iter()
        .flat_map(|r| r.y.iter().copied())
        .fold(0.0f64, f64::max);
    if fits.is_empty() {
        return Fit {
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
            peak: peak_all,
            resets: 0,
            runs: 0,
            points,
            hours: 0.0,
            quanta: 0.0,
            shortfall: None,
            record_more_hours: None,
            retention: None,
            reason: Reason::new(Basis::TooFewPoints { need: MIN_POINTS }),
        };
    }
    let w: f64 = fits.iter().map(|f| f.hours).sum();
    let wavg = |g: &dyn Fn(&RunFit) -> f64| fits.iter().map(|f| g(f) * f.hours).sum::<f64>() / w;
    let rate = wavg(&|f| f.ts);
    let late = wavg(&|f| f.late_ts);
    let early = wavg(&|f| f.early_ts);
    let floor = wavg(&|f| f.floor_ts);
    let ols = wavg(&|f| f.ols_slope);
    let r2 = wavg(&|f| f.ols_r2);
    let peak_frac = wavg(&|f| f.peak_frac);
    let last_high = wavg(&|f| f.last_high_frac);
    let mk = fits
        .iter()
        .fold(KendallS::default(), |a, f| a.combine(f.mk));
    let late_mk = fits
        .iter()
        .fold(KendallS::default(), |a, f| a.combine(f.late_mk));
    let floor_mk = fits
        .iter()
        .fold(KendallS::default(), |a, f| a.combine(f.floor_mk));
    let falls_after_peak = fits.iter().any(|f| f.falls_from_peak);
    let growth: f64 = fits.iter().map(|f| f.end - f.start).sum();
    let resets: usize = fits.iter().map(|f| f.resets).sum();
    let start = fits[0].start;
    let end = fits[fits.len() - 1].end;
    let peak = fits.iter().map(|f| f.peak).fold(f64::MIN, f64::max);
    let p_up = mk.p_increasing();
    let p_down = mk.p_decreasing();
    let late_ratio = if rate > 0.0 { late / rate } else { 0.0 };
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
    let late_significant = late_mk.p_increasing() < ALPHA;
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
    // Growth in the last 40% relative to the first 40%: ~1 for a steady leak, near 0 for a
    // cache that filled up (even one that keeps creeping from sampling noise).
    let decel = if early > 0.0 {
        late / early
    } else {
        f64::INFINITY
    };
    let early_peak = peak_frac < 0.5 && peak > 0.0 && end < 0.8 * peak;

    let stopped_at_knee = match (stopped_hours >= 0.5 * w, knee) {
        (true, Some((at, before, after))) => Some(Basis::StoppedAtKnee { at, before, after }),
        _ => None,
    };
    let (verdict, basis) = if peak <= 0.0 {
        (Verdict::Steady, Basis::AlwaysZero)
    } else if p_up >= ALPHA || rate <= 0.0 || growth <= 0.0 {
        if resets >= 3 || (resets >= 2 && !early_peak) {
            (Verdict::Sawtooth, Basis::ResetsWithoutTrend { resets })
        } else if early_peak && peak > 1.25 * start.max(end) && falls_after_peak {
            (
                Verdict::WarmUp,
                Basis::PeakedThenFell {
                    peak_at: peak_frac,
                    end_of_peak: end / peak,
                },
            )
        } else if p_down < ALPHA && rate < 0.0 {
            (Verdict::Shrinking, Basis::Decreasing)
        } else if let Some(basis) = stopped_at_knee.clone().filter(|_| p_up < ALPHA) {
            // Rose for a while then flat for most of the run: the median slope is 0.
            (Verdict::Plateau, basis)
        } else if p_up < ALPHA && growth > 0.0 {
            // Mostly flat with a step or two up (typical of one heap-profile sample
            // appearing): the pairs that straddle the step make Mann-Kendall significant,
            // but most slopes are zero, so there is no rate to call a trend.
            (Verdict::Steady, Basis::TooFewSteps { growth, p: p_up })
        } else {
            (Verdict::Steady, Basis::NoTrend { p: p_up })
        }
    } else if resets >= 2 && !floor_rising {
        (Verdict::Sawtooth, Basis::ResetsToFlatFloor { resets })
    } else if early_peak && late <= 0.1 * rate {
        (Verdict::WarmUp, Basis::RoseEarly { peak_at: peak_frac })
    } else if let Some(basis) = stopped_at_knee.clone() {
        (Verdict::Plateau, basis)
    } else if slowing_beyond_chance
        && ((late_ratio < 0.25 && !late_significant && last_high < 0.75)
            || (decel < 0.2 && late_mk.p_increasing() > 0.01 && last_high < 0.9))
    {
        (Verdict::Plateau, Basis::Slowed { late_ratio, decel })
    } else if slowing_beyond_chance && (late_ratio < 0.5 || decel < 0.2) && last_high < 0.9 {
        (
            Verdict::PossibleLeak,
            Basis::Slowing {
                p: p_up,
                late_ratio,
            },
        )
    } else {
        let still_growing = late_ratio >= 0.5 && decel >= 0.2;
        (
            Verdict::Leak,
            Basis::SustainedGrowth {
                p: p_up,
                tau: mk.tau(),
                slower_at_end: (!still_growing).then_some(late_ratio),
                floor_rising,
            },
        )
    };
    let reason = Reason::new(basis);
    // How much the growth kept up to the end; late slowing within chance does not count.
    let persistence = if slowing_beyond_chance {
        (late_ratio / 0.75)
            .max((last_high - 0.5) / 0.4)
            .clamp(0.0, 1.0)
    } else {
        1.0
    };
    let mut confidence = match verdict {
        Verdict::Leak | Verdict::PossibleLeak => (1.0 - p_up) * persistence,
        Verdict::Plateau | Verdict::Sawtooth | Verdict::WarmUp => {
            ((1.0 - p_up) * persistence * 0.5).min(0.49)
        }
        _ => 0.0,
    };
    // Effect size: growth that is significant but tiny next to what the site already held
    // (long captures make drift of a fraction of a percent significant) is not called a
    // leak; it stays a possible one, with confidence scaled by how small it is.
    let level: f64 = fits.iter().map(|f| f.start.max(0.0)).sum();
    let relative = if level > 0.0 {
        growth / level
    } else {
        f64::INFINITY
    };
    // Growth that began late shows at the very end before it moves the end level (the
    // median of the last 20%), so a leak's effect size also looks at the last 10%.
    let recent_growth: f64 = fits.iter().map(|f| f.recent_end - f.start).sum();
    let leak_relative = if level > 0.0 {
        growth.max(recent_growth) / level
    } else {
        f64::INFINITY
    };
    let small_effect = verdict.is_leak() && leak_relative < MIN_RELATIVE_GROWTH;
    let (verdict, reason) = if small_effect {
        let relative = leak_relative;
        confidence *= (relative / MIN_RELATIVE_GROWTH).clamp(0.0, 1.0);
        (
            Verdict::PossibleLeak,
            reason.with(Qualifier::SmallEffect {
                relative,
                floor: MIN_RELATIVE_GROWTH,
            }),
        )
    } else if (verdict == Verdict::Plateau && relative < MIN_RELATIVE_GROWTH)
        || (verdict == Verdict::Shrinking && -relative < MIN_RELATIVE_GROWTH)
    {
        // A trend too small to matter: the same effect-size floor as for growth.
        confidence = 0.0;
        (
            Verdict::Steady,
            Reason::new(Basis::SmallChange {
                relative,
                floor: MIN_RELATIVE_GROWTH,
            }),
        )
    } else {
        (verdict, reason)
    };
    // A leak's rate is its current one: after the knee when growth began or sped up.
    let recent = wavg(&|f| f.recent_ts);
    let (leak_rate, reason) = if verdict.is_leak() && recent > 1.5 * rate.max(0.0) {
        (
            recent,
            reason.with(Qualifier::SpedUp {
                recent,
                whole: rate,
            }),
        )
    } else {
        (rate, reason)
    };
    let observations: usize = fits.iter().map(|f| f.points).sum();
    let quanta = quantum
        .filter(|q| *q > 0.0)
        .map(|q| growth.max(recent_growth).max(0.0) / q)
        .unwrap_or(0.0);
    let judged = Judged {
        verdict,
        reason,
        confidence,
    };
    let evidence = EvidenceInput {
        fits: &fits,
        allocs: &allocs,
        ctx,
        quantum,
        quanta,
        observations,
        late_significant,
    };
    let (mut judged, shortfall, retention) = weigh_evidence(judged, &evidence);
    if judged.verdict.is_leak() {
        let sampled_quanta = ctx.quantum().map_or(f64::INFINITY, |_| quanta);
        judged.confidence *= evidence::leak_evidence_factor(observations, sampled_quanta);
    }
    let record_more_hours = shortfall.and_then(|s| {
        evidence::record_more_hours(&s, observations, w, leak_rate, quantum.unwrap_or(1.0))
    });
    let Judged {
        verdict,
        reason,
        confidence,
    } = judged;
    Fit {
        verdict,
        confidence,
        rate_per_hour: leak_rate,
        ols_per_hour: ols,
        r2,
        late_ratio,
        mk_p: p_up,
        mk_q: p_up,
        mk_p_down: p_down,
        small_effect,
        tau: mk.tau(),
        growth,
        start,
        end,
        peak,
        resets,
        runs: fits.len(),
        points,
        hours: w,
        quanta,
        shortfall,
        record_more_hours,
        retention,
        reason,
    }
}

/// A verdict with its reason and confidence, as it stands at one step of the judgement.
struct Judged {
    verdict: Verdict,
    reason: Reason,
    confidence: f64,
}

/// What [`weigh_evidence`] looks at beyond the verdict.
struct EvidenceInput<'a> {
    fits: &'a [RunFit],
    allocs: &'a [AllocCheckpoints],
    ctx: &'a SeriesContext,
    quantum: Option<f64>,
    quanta: f64,
    observations: usize,
    late_significant: bool,
}

/// Confidence of a `growing` series: how sure of growth, capped like the other non-leaks.
fn growing_confidence(c: f64) -> f64 {
    (c * 0.5).min(0.49)
}

/// Checks a leak verdict against the evidence behind it (see [`crate::model::evidence`]): growth
/// in one or two jumps is a step, not a trend; a site that kept allocating but stopped
/// retaining is a plateau; too few observations or quanta, one cycle of a possible batch,
/// or no clear growth at the end make it `growing`.
fn weigh_evidence(j: Judged, e: &EvidenceInput) -> (Judged, Option<Shortfall>, Option<Retention>) {
    if !j.verdict.is_leak() {
        return (j, None, None);
    }
    let growing = |j: Judged, s: Shortfall| {
        let judged = Judged {
            verdict: Verdict::Growing,
            reason: j.reason.with(Qualifier::TooEarly(s)),
            confidence: growing_confidence(j.confidence),
        };
        (judged, Some(s), None)
    };
    // One or two jumps, flat between (every fitted run that grew did so in steps).
    let grew: Vec<&RunFit> = e.fits.iter().filter(|f| f.end > f.start).collect();
    let jumps: usize = grew
        .iter()
        .map(|f| f.steps.map_or(usize::MAX, |s| s.count))
        .fold(0, usize::saturating_add);
    if !grew.is_empty() && jumps <= 2 {
        let largest = grew
            .iter()
            .filter_map(|f| f.steps.map(|s| s.largest))
            .fold(0.0, f64::max);
        let sampled = e.ctx.sampling_period.is_some_and(|p| largest <= 2.0 * p);
        if !sampled {
            let judged = Judged {
                verdict: Verdict::Steady,
                reason: Reason::new(Basis::OneTimeStep { jumps, largest }),
                confidence: 0.0,
            };
            return (judged, None, None);
        }
    }
    // Retention is judged in counts of sampled events: only where the series moves in
    // whole samples (its quantum is the profile's, not a finer median rise), so that the
    // binomial model holds; a finer series' noise is no count of events.
    let counts_events = |q: &f64| e.ctx.quantum().is_some_and(|c| *q >= 0.5 * c);
    if let Some(r) = e
        .quantum
        .filter(|q| counts_events(q) && e.allocs.len() == e.fits.len())
        .and_then(|q| evidence::retention_fall(e.allocs, q))
    {
        let judged = Judged {
            verdict: Verdict::Plateau,
            reason: Reason::new(Basis::StoppedRetaining(r)),
            confidence: growing_confidence(j.confidence),
        };
        return (judged, None, Some(r));
    }
    if e.observations < evidence::MIN_OBSERVATIONS {
        let s = Shortfall::FewObservations {
            have: e.observations,
            need: evidence::MIN_OBSERVATIONS,
        };
        return growing(j, s);
    }
    if let Some(period) = e
        .fits
        .iter()
        .filter(|f| f.resets == 1)
        .find_map(|f| f.first_reset_hours)
    {
        let s = Shortfall::OneCycle {
            period_hours: period,
        };
        return growing(j, s);
    }
    // Quanta of sampled events only where the sampling is known (heap, goroutines): the
    // median rise of an unsampled series is no count of events.
    if let Some(dip) = e.fits.iter().find_map(|f| f.dip_hours) {
        let s = Shortfall::DippedMidRun { dip_hours: dip };
        return growing(j, s);
    }
    if let Some(q) = e
        .quantum
        .filter(|_| e.ctx.quantum().is_some() && e.quanta < evidence::MIN_QUANTA)
    {
        let s = Shortfall::FewQuanta {
            have: e.quanta,
            need: evidence::MIN_QUANTA,
            quantum: q,
        };
        return growing(j, s);
    }
    let late_quanta = e
        .quantum
        .map(|q| e.fits.iter().map(|f| f.late_rise).sum::<f64>() / q)
        .unwrap_or(f64::INFINITY);
    if late_quanta < evidence::LATE_QUANTA && !e.late_significant {
        let s = Shortfall::NoLateGrowth { late_quanta };
        return growing(j, s);
    }
    (j, None, None)
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
