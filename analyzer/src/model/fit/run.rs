//! Features of one run of a series: slopes (Theil-Sen early, late, overall, of the floor),
//! trend tests, resets, peaks, knees, growth quanta and how growth splits over the run.
//! [`super::features`] combines the runs of a series.

use super::{ALPHA, MIN_POINTS};
use crate::model::evidence;
use crate::model::stats::{self, KendallS};

/// Features of one run.
#[derive(Debug, Clone, Default)]
pub(super) struct RunFit {
    pub(super) hours: f64,
    pub(super) ts: f64,
    pub(super) early_ts: f64,
    pub(super) late_ts: f64,
    pub(super) floor_ts: f64,
    pub(super) ols_slope: f64,
    pub(super) ols_r2: f64,
    pub(super) mk: KendallS,
    pub(super) late_mk: KendallS,
    /// Growth in quanta before and after each of [`SLOWING_SPLITS`].
    pub(super) split_quanta: [QuantaSplit; SLOWING_SPLITS.len()],
    pub(super) floor_mk: KendallS,
    /// The run peaked early and came down for real (see [`falls_from_peak`]).
    pub(super) falls_from_peak: bool,
    /// Theil-Sen slope after a knee where growth began or sped up; else `ts`.
    pub(super) recent_ts: f64,
    /// Level of the last 10% of points (at least 5).
    pub(super) recent_end: f64,
    pub(super) start: f64,
    pub(super) end: f64,
    pub(super) peak: f64,
    pub(super) peak_frac: f64,
    pub(super) last_high_frac: f64,
    pub(super) resets: usize,
    /// Growth stopped at a knee: (knee position 0..1, slope before, slope after).
    pub(super) stopped: Option<(f64, f64, f64)>,
    /// Points of the run (before any reduction).
    pub(super) points: usize,
    /// The median rise between neighbouring points, when anything rose.
    pub(super) quantum: Option<f64>,
    /// Rise of the level over the last [`evidence::LATE_SHARE`] of the run (0 if it fell).
    pub(super) late_rise: f64,
    /// The run rose in one or two jumps (see [`evidence::steps`]).
    pub(super) steps: Option<evidence::Steps>,
    /// Rise of the floor (Theil-Sen over the troughs) across the run.
    pub(super) floor_rise: f64,
    /// Hours from the run's start to its first reset.
    pub(super) first_reset_hours: Option<f64>,
    /// Hours from the run's start to a mid-run low well below the starting level (see
    /// [`Shortfall::DippedMidRun`]).
    pub(super) dip_hours: Option<f64>,
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
/// Neighbouring pairs [`find_resets`] tests at once, into one `u64` mask (at most 64).
const RESET_BLOCK: usize = 64;

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
        let max_up = stats::largest_rise(c);
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

pub(super) fn fit_run(x_all: &[f64], y_all: &[f64]) -> Option<RunFit> {
    let n_all = y_all.len().min(x_all.len());
    if n_all < MIN_POINTS {
        return None;
    }
    // The helpers below take a run's points as equal-length slices.
    let (x_all, y_all) = (&x_all[..n_all], &y_all[..n_all]);
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
    let (peak, peak_i, lo) = stats::peak_and_low(y_all);
    let mut noise_sd = None;
    let reset_at = find_resets(y_all, peak, lo, &mut noise_sd);
    let resets = reset_at.len();
    let (fx, fy) = floor_points(x_all, y_all, &reset_at);
    let floor_ts = stats::theil_sen(&fx, &fy).unwrap_or(0.0);
    let floor_mk = stats::mann_kendall(&fx, &fy);
    let [knee, bend] = stats::knees(x, y, knee_sides(n));
    let (stopped, recent_ts) = knee_changes(x, y, ts, knee, &split_at);
    let mk = trend_test(x, y, ts, bend);
    let recent_end = stats::median(&y[n - (n / 10).max(5).min(n)..]).unwrap_or(0.0);
    let start = edge_level(y, true);
    let end = edge_level(y, false);
    let peak_frac = peak_i as f64 / (n_all - 1) as f64;
    let falls_from_peak = peak_frac < 0.5
        && end < 0.8 * peak
        && falls_from_peak(x, y, &y_all[..n_all], peak_i, end, noise_sd);
    // The step noise is needed below in any case (the dip and the steps): computed once per
    // run here (it was computed twice for most runs, each a copy and two selections over
    // every point).
    let noise_sd = noise_sd.unwrap_or_else(|| stats::step_noise_sd(y_all));
    // Levels as medians of three neighbours, as in QuantaSplit: exact on a staircase.
    let level = |i: usize| stats::median(&y[i.saturating_sub(1)..(i + 2).min(n)]).unwrap_or(y[i]);
    let late_at = (((1.0 - evidence::LATE_SHARE) * (n - 1) as f64).round() as usize).min(n - 1);
    let late_rise = (level(n - 1) - level(late_at)).max(0.0);
    let floor_span = fx.last().copied().unwrap_or(0.0) - fx.first().copied().unwrap_or(0.0);
    let dip_hours = dip_hours(x_all, y_all, start, end, noise_sd);
    Some(RunFit {
        dip_hours,
        points: n_all,
        quantum,
        late_rise,
        steps: evidence::steps_given_noise(y_all, |_| noise_sd),
        floor_rise: floor_ts * floor_span,
        first_reset_hours: first_reset_hours(x_all, y_all, &reset_at),
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

/// Resets: drops of at least half the range (and 10% of the peak, and
/// [`RESET_NOISE_SIGMAS`] times the step noise) in one step that stay down: the two points
/// before are high and the two from the drop on are low. A lone noise dip in a long, noisy
/// series is not a reset; nor are drops in a series that does not build up between them.
/// `noise_sd` caches the step noise once computed.
fn find_resets(y_all: &[f64], peak: f64, lo: f64, noise_sd: &mut Option<f64>) -> Vec<usize> {
    let n_all = y_all.len();
    let range = peak - lo;
    if range <= 0.0 {
        return Vec::new();
    }
    // Nearly every drop fails the first test, and once the step noise is known nearly
    // every one left fails the second: each block of neighbouring pairs is reduced to a
    // bit mask of the drops that pass the tests known so far (vector compares, no branch
    // per pair), and only those pairs are judged, in order, as before. (Judged one by one
    // in every block holding a drop over half the range, the pairs and the test that
    // picked the blocks took 18% of the fits; perf, 100M rows by stack. One by one
    // everywhere it was 8 us of a 10,000-point run's fit; as a `filter` over indices,
    // 13 us.)
    let noise_bar = |sd: f64| RESET_NOISE_SIGMAS * sd;
    // A bar of minus infinity passes every drop, NaN included, as no test did.
    let mut bars = [
        0.5 * range,
        0.1 * peak.abs(),
        noise_sd.map_or(f64::NEG_INFINITY, noise_bar),
    ];
    let mut reset_at = Vec::new();
    let pairs = n_all.saturating_sub(1);
    for b in (0..pairs).step_by(RESET_BLOCK) {
        let mut passed = stats::drops_passing(&y_all[b..(b + RESET_BLOCK).min(pairs) + 1], bars);
        while passed != 0 {
            let at = b + passed.trailing_zeros() as usize;
            passed &= passed - 1;
            let sd = *noise_sd.get_or_insert_with(|| stats::step_noise_sd(y_all));
            bars[2] = noise_bar(sd);
            // The block's mask was taken before the step noise may have been known.
            if y_all[at] - y_all[at + 1] < bars[2] {
                continue;
            }
            let i = at + 1;
            if stays_down(y_all, i, range) {
                reset_at.push(i);
            }
        }
    }
    // A sawtooth builds up between resets: most cycles must end higher than they start.
    // Drops in a noisy but flat series do not pass, so they are not counted as resets.
    if builds_up_between(y_all, &reset_at, range) {
        reset_at
    } else {
        Vec::new()
    }
}

/// Whether the drop into point `i` stays down: the two points before it are all above the
/// two from it on by at least 0.3 of the series' `range`.
fn stays_down(y: &[f64], i: usize, range: f64) -> bool {
    let before = y[i.saturating_sub(2)..i]
        .iter()
        .copied()
        .fold(f64::MAX, f64::min);
    let after = y[i..(i + 2).min(y.len())]
        .iter()
        .copied()
        .fold(f64::MIN, f64::max);
    before - after >= 0.3 * range
}

/// The run's floor as (hours, level) points: the trough of every cycle between resets when
/// the series resets periodically (equal chunks shorter than the period would see mid-ramp
/// minima as a rising floor); otherwise the minimum of each of k equal-count chunks. At
/// most [`MAX_FLOOR_POINTS`] troughs: neighbouring cycles merge (bounds the cost).
fn floor_points(x_all: &[f64], y_all: &[f64], reset_at: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let n_all = y_all.len();
    let bounds: Vec<(usize, usize)> = if reset_at.len() >= 2 {
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
        let (i, v) = stats::first_min(&y_all[lo..hi])
            .map(|(i, v)| (lo + i, v))
            .unwrap_or((lo, 0.0));
        fx.push(x_all[i]);
        fy.push(v);
    }
    (fx, fy)
}

/// Fewest points on either side of the knee of [`knee_changes`] (a sixth of the judged
/// points) and of the bend of [`trend_test`] (a twentieth, so a leak that starts late is
/// a bend), at least 3.
fn knee_sides(n: usize) -> [usize; 2] {
    [(n / 6).max(3), (n / 20).max(3)]
}

/// A broken-stick fit of the (reduced) run: whether growth stopped at a knee (slowed 5x or
/// more and stayed stopped, judged on the post-knee segment as a whole, which is robust to
/// noise) as (knee position 0..1, slope before, slope after); and the current rate, which
/// is the slope after a knee where growth began or sped up 2x or more (the whole-run slope
/// `ts` dilutes it), else `ts`. `knee` is the run's knee ([`knee_sides`]); `split_at(k)` is
/// the growth in quanta either side of k.
fn knee_changes(
    x: &[f64],
    y: &[f64],
    ts: f64,
    knee: Option<stats::Knee>,
    split_at: &dyn Fn(usize) -> Option<QuantaSplit>,
) -> (Option<(f64, f64, f64)>, f64) {
    let n = y.len();
    let segments = knee.and_then(|k| {
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
    (stopped, recent_ts)
}

/// Mann-Kendall with its variance widened for noise with memory, judged on the residuals
/// of a two-segment fit whose break may sit near either end (a leak that starts late is a
/// bend, not correlated noise: `bend`, see [`knee_sides`]); of the Theil-Sen line (slope
/// `ts`) when there is none.
fn trend_test(x: &[f64], y: &[f64], ts: f64, bend: Option<stats::Knee>) -> KendallS {
    let residuals: Vec<f64> = x
        .iter()
        .zip(y)
        .map(|(x, y)| match &bend {
            Some(k) => y - k.at(*x),
            None => y - ts * x,
        })
        .collect();
    stats::mann_kendall(x, y).corrected_for_autocorrelation(&residuals)
}

/// Hours from the run's start to a low in its middle well below where it started, by half
/// the run's net growth (`start` to `end`) and by [`RESET_NOISE_SIGMAS`] of step noise (one
/// noisy point is no dip).
fn dip_hours(x_all: &[f64], y_all: &[f64], start: f64, end: f64, noise_sd: f64) -> Option<f64> {
    let n_all = y_all.len();
    let (lo, hi) = (n_all / 10, n_all - n_all / 10);
    let (i, low) = stats::first_min(&y_all[lo..hi])
        .map(|(i, v)| (lo + i, v))
        .unwrap_or((0, start));
    let depth = start - low;
    (end > start && depth > 0.5 * (end - start) && depth > RESET_NOISE_SIGMAS * noise_sd)
        .then(|| x_all[i] - x_all[0])
}

/// Hours from the run's start to its first reset, when that reset drops back to where the
/// run began (a batch's first flush); one that leaves the level well above it (a partial
/// clean-up) does not count.
fn first_reset_hours(x_all: &[f64], y_all: &[f64], reset_at: &[usize]) -> Option<f64> {
    reset_at
        .first()
        .filter(|&&i| {
            let drop = y_all[i - 1] - y_all[i];
            let low = y_all[i..(i + 2).min(y_all.len())]
                .iter()
                .copied()
                .fold(f64::MAX, f64::min);
            low - y_all[..i].iter().copied().fold(f64::MAX, f64::min) <= 0.25 * drop
        })
        .map(|&i| x_all[i] - x_all[0])
}

/// Chance, under a constant rate, of growth after a fitted knee as far from the
/// expected share as observed, below which the rate changed at the knee (either way).
const KNEE_P: f64 = 0.01;

/// The same for growth that slowed after any of [`SLOWING_SPLITS`] (fixed splits, not
/// chosen to fit; corrected for their number). Early splits matter: a cache that fills in
/// a few sampled steps shows its stop as little growth over most of the run.
pub(super) const SLOWING_P: f64 = 0.05;

/// Where growth is split to ask whether it slowed: fractions of each run's points.
pub(super) const SLOWING_SPLITS: [f64; 3] = [0.2, 0.4, 0.6];

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
pub(super) struct QuantaSplit {
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
    pub(super) fn combine(self, other: Self) -> Self {
        QuantaSplit {
            after: self.after + other.after,
            all: self.all + other.all,
            expected: self.expected + other.expected,
        }
    }

    /// Chance under a constant rate of this little growth after the split, or less
    /// (1 when there is no growth to judge).
    pub(super) fn p_slower(&self) -> f64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Hours 0..n in steps of 0.1.
    fn hours(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64 * 0.1).collect()
    }

    #[test]
    fn a_sawtooth_resets_and_its_floor_is_the_cycle_troughs() {
        // Four cycles of a ramp 0..9 that drops back to 0.
        let y: Vec<f64> = (0..40).map(|i| (i % 10) as f64).collect();
        let x = hours(40);
        let mut sd = None;
        let resets = find_resets(&y, 9.0, 0.0, &mut sd);
        assert_eq!(resets, [10, 20, 30]);
        let (fx, fy) = floor_points(&x, &y, &resets);
        assert_eq!(fy, [0.0; 4]);
        assert_eq!(fx.len(), 4);
        assert_eq!(first_reset_hours(&x, &y, &resets), Some(x[10]));
    }

    /// [`find_resets`] as it was before the blocks: every pair judged one by one.
    fn resets_one_by_one(y: &[f64], peak: f64, lo: f64, noise_sd: &mut Option<f64>) -> Vec<usize> {
        let range = peak - lo;
        if range <= 0.0 {
            return Vec::new();
        }
        let mut reset_at = Vec::new();
        for (at, w) in y.windows(2).enumerate() {
            let d = w[0] - w[1];
            if d < 0.5 * range || d < 0.1 * peak.abs() {
                continue;
            }
            let i = at + 1;
            let sd = *noise_sd.get_or_insert_with(|| stats::step_noise_sd(y));
            if d < RESET_NOISE_SIGMAS * sd {
                continue;
            }
            if stays_down(y, i, range) {
                reset_at.push(i);
            }
        }
        if builds_up_between(y, &reset_at, range) {
            reset_at
        } else {
            Vec::new()
        }
    }

    /// Passing over quiet blocks finds the same resets, and computes the step noise at the
    /// same point, as judging every pair: sawtooths with drops on and next to block edges,
    /// noise, NaNs, and lengths around multiples of the block.
    #[test]
    fn resets_found_by_blocks_are_the_resets_found_one_by_one() {
        let mut u = stats::test_uniforms(31);
        for round in 0..300 {
            let n = 2 + (round * 7) % 300;
            let period = 3 + round % (2 * RESET_BLOCK);
            let y: Vec<f64> = (0..n)
                .map(|i| match round % 4 {
                    0 => (i % period) as f64 * 10.0 + u(),
                    1 => 100.0 + u() * 50.0,
                    2 if i == n / 2 => f64::NAN,
                    _ => ((i % period) as f64).powi(2) - u() * 5.0,
                })
                .collect();
            let (peak, _, lo) = stats::peak_and_low(&y);
            let (mut a, mut b) = (None, None);
            assert_eq!(
                find_resets(&y, peak, lo, &mut a),
                resets_one_by_one(&y, peak, lo, &mut b),
                "round {round}"
            );
            assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "round {round}");
        }
    }

    #[test]
    fn noise_and_a_one_way_drop_are_not_resets() {
        // A flat series with alternating noise: drops of the whole range, but nothing
        // builds up between them.
        let y: Vec<f64> = (0..40).map(|i| 100.0 + (i % 2) as f64).collect();
        assert!(find_resets(&y, 101.0, 100.0, &mut None).is_empty());
        // Growth, then one partial clean-up that leaves the level well above the start.
        let mut y: Vec<f64> = (0..20).map(|i| 10.0 + i as f64).collect();
        y.extend((0..20).map(|i| 20.0 + i as f64));
        let x = hours(40);
        let resets = find_resets(&y, 39.0, 10.0, &mut None);
        assert_eq!(first_reset_hours(&x, &y, &resets), None, "{resets:?}");
    }

    #[test]
    fn a_mid_run_low_well_below_the_start_is_a_dip() {
        let x = hours(50);
        // Starts at 100, falls to 20 in the middle, ends at 200.
        let y: Vec<f64> = (0..50)
            .map(|i| match i {
                0..=9 => 100.0,
                10..=29 => 20.0,
                _ => 200.0,
            })
            .collect();
        let start = edge_level(&y, true);
        let end = edge_level(&y, false);
        assert_eq!(dip_hours(&x, &y, start, end, 1.0), Some(x[10]));
        // Without the low: none.
        let y: Vec<f64> = (0..50).map(|i| 100.0 + i as f64).collect();
        let (start, end) = (edge_level(&y, true), edge_level(&y, false));
        assert_eq!(dip_hours(&x, &y, start, end, 1.0), None);
    }

    #[test]
    fn growth_that_stops_at_a_knee_is_stopped_and_one_that_starts_late_is_recent() {
        let x = hours(60);
        let quantum = |y: &[f64]| growth_quantum(y);
        // Rises 1 per point for 20 points, then flat.
        let y: Vec<f64> = (0..60).map(|i| i.min(20) as f64).collect();
        let q = quantum(&y);
        let split = |k: usize| q.and_then(|q| QuantaSplit::at(&x, &y, k, q));
        let ts = stats::theil_sen(&x, &y).unwrap();
        let [knee, _] = stats::knees(&x, &y, knee_sides(y.len()));
        let (stopped, _) = knee_changes(&x, &y, ts, knee, &split);
        let (at, before, after) = stopped.expect("stopped at the knee");
        assert!((0.2..0.45).contains(&at), "{at}");
        assert!(before > 5.0 && after.abs() < 1e-9, "{before} {after}");
        // Flat for 40 points, then rising: the current rate is the late slope.
        let y: Vec<f64> = (0..60).map(|i| (i.max(40) - 40) as f64).collect();
        let q = quantum(&y);
        let split = |k: usize| q.and_then(|q| QuantaSplit::at(&x, &y, k, q));
        let ts = stats::theil_sen(&x, &y).unwrap_or(0.0);
        let [knee, _] = stats::knees(&x, &y, knee_sides(y.len()));
        let (stopped, recent) = knee_changes(&x, &y, ts, knee, &split);
        assert!(stopped.is_none());
        assert!(
            recent > 2.0 * ts && (recent - 10.0).abs() < 1.0,
            "{recent} vs {ts}"
        );
    }
}
