//! How much evidence a growing series holds, and whether it is enough to call a leak.
//!
//! The trend statistics of [`crate::model::fit`] say whether a series grew. Calling it a leak
//! claims more: that it will keep growing. That needs evidence the points may not hold:
//!
//! - **Independent observations.** A heap profile changes only when a GC completes, so
//!   scrapes within one GC cycle repeat one observation (the ranking drops such repeats
//!   before fitting, see [`crate::source::load`]); a 60 s recording at 1 s of a service that ran
//!   14 GCs holds 14 observations, not 60.
//! - **Sampling quanta.** At Go's default 512 KiB heap sampling a 2 MiB rise is four
//!   sampled allocations. Growth is counted in quanta of `max(sampling period, object
//!   size)`, the value one sampled allocation adds.
//! - **Growth still visible at the end.** A cache that filled early and a leak whose last
//!   sampled step is late both fit "it grew"; only growth seen in the last part of the
//!   recording, or a stop that beats chance, tells them apart.
//! - **More than one or two jumps.** A series that moved in one or two jumps and is flat
//!   between them (a reload, a resize, a table replaced once) is never a trend.
//! - **More growth than one GC cycle's garbage.** An object allocated while a GC is marking
//!   survives that GC (it is allocated black) and reads as in use in the next heap profile
//!   even if it died at once. A site that churns through short-lived objects therefore
//!   shows in-use up to what it allocates in one cycle, and that share rises whenever GC
//!   cycles lengthen (the heap grew elsewhere, or the CPU is contended and marking takes
//!   longer). Growth no larger than what the site allocates between two heap profiles may
//!   be that garbage, not retained memory.
//! - **Allocations that keep flowing but are no longer retained** (the retention ratio,
//!   Δ in-use / Δ allocated): a cache, pool or ring at capacity keeps allocating while its
//!   in-use stops following; a leak keeps retaining a steady share.
//!
//! A series that grew but falls short is [`crate::model::fit::Verdict::Growing`]: too early to
//! tell, with the [`Shortfall`] that kept it from being a leak and an estimate of how much
//! longer to record.

use serde::Serialize;

use crate::model::stats;

/// Fewest independent observations (distinct heap profiles, goroutine or native scrapes)
/// for a leak verdict; below it growth is `growing`. Six points can give a Mann-Kendall
/// p-value of 0.0014 from a batch buffer that has not flushed yet.
pub const MIN_OBSERVATIONS: usize = 12;
/// Fewest sampling quanta of growth for a leak verdict.
pub const MIN_QUANTA: f64 = 8.0;
/// Quanta of growth in the last [`LATE_SHARE`] of a run that show growth has not stopped.
pub const LATE_QUANTA: f64 = 3.0;
/// The part of each run judged for "still growing at the end".
pub const LATE_SHARE: f64 = 0.4;
/// Share of a series' rises that its largest one or two must hold to call it a step.
pub const STEP_SHARE: f64 = 0.8;
/// Quanta a sawtooth's floor must rise by before the rise counts as a leak underneath.
pub const FLOOR_QUANTA: f64 = 3.0;
/// Chance under a steady rate below which a fall in retention or allocations is real
/// (after a Bonferroni correction for the splits tried).
pub const RETENTION_P: f64 = 0.01;
/// Smallest share of its allocations a site must have kept before a split for a fall in
/// that share to mean anything: a cache, ring or pool keeps nearly all it allocates while it
/// fills; a site that keeps 0.05% of a torrent of short-lived allocations only shows noise
/// in that share (on the 100M-row synthetic capture such leaks read as stopping).
pub const MIN_EARLY_RETENTION: f64 = 0.05;

/// Kendall's tau from which growth within one GC cycle's garbage ([`turnover_window`])
/// counts as retained all the same. Garbage read as in use is a fresh draw at every
/// observation (what the site allocated while that GC marked), so it scatters over its
/// whole range and a drift in it orders few pairs; memory that is kept rises and stays.
/// Counted over the pairs within each run (two steady runs would read half as much over
/// every pair of points). On
/// 12 live 40 s recordings of the fixture service's churn trap tau was -0.09 to 0.25; the
/// seven planted leaks of the 100M-row synthetic capture that keep less than one interval's
/// allocations over 10,000 observations have 0.99 to 0.998.
pub const TURNOVER_MAX_TAU: f64 = 0.5;

/// Fractions of each run's points where allocation totals are read for the retention
/// signal: the start, three splits and the end. The early split shows a ring or cache
/// that filled in the first minute of a ten-minute recording.
pub const CHECKPOINTS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

/// What the ranking knows about one series beyond its points.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeriesContext {
    /// Value one sampled event adds: the heap profile's sampling period in bytes
    /// (`MemProfileRate`), 1 for goroutine counts; `None` when unknown (the median rise
    /// between points is used instead).
    pub sampling_period: Option<f64>,
    /// Mean bytes per live object (heap); 0 when unknown.
    pub object_size: f64,
}

impl SeriesContext {
    /// Value of one quantum of evidence: what one sampled allocation adds, or `None`.
    pub fn quantum(&self) -> Option<f64> {
        self.sampling_period
            .filter(|p| *p > 0.0)
            .map(|p| p.max(self.object_size))
    }
}

/// Index of checkpoint `i` of [`CHECKPOINTS`] in a run of `n` points.
pub fn checkpoint_index(n: usize, i: usize) -> usize {
    ((CHECKPOINTS[i] * n.saturating_sub(1) as f64).round() as usize).min(n.saturating_sub(1))
}

/// In-use and cumulative allocated totals of one run at [`CHECKPOINTS`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AllocCheckpoints {
    /// Hours since the run's first point, at each checkpoint.
    pub hours: [f64; CHECKPOINTS.len()],
    /// In-use value at each checkpoint.
    pub inuse: [f64; CHECKPOINTS.len()],
    /// Cumulative allocated value (same unit) at each checkpoint.
    pub alloc: [f64; CHECKPOINTS.len()],
}

/// Why growth was not enough to call a leak: the evidence that is missing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum Shortfall {
    /// Fewer independent observations than [`MIN_OBSERVATIONS`].
    FewObservations {
        /// Observations fitted.
        have: usize,
        /// Observations needed.
        need: usize,
    },
    /// Growth of fewer sampling quanta than [`MIN_QUANTA`].
    FewQuanta {
        /// Quanta of growth seen.
        have: f64,
        /// Quanta needed.
        need: f64,
        /// Value of one quantum.
        quantum: f64,
    },
    /// No clear growth in the last part of the recording, and too few quanta to tell a
    /// stop from a gap between samples.
    NoLateGrowth {
        /// Quanta of growth in the last [`LATE_SHARE`] of the runs.
        late_quanta: f64,
    },
    /// One drop seen: a batch flushed about this often would need two cycles to show
    /// whether its floor rises.
    OneCycle {
        /// Hours from the run's start to the drop.
        period_hours: f64,
    },
    /// It fell well below its starting level part-way, then rose: memory that follows a
    /// load wave does this; a leak does not give back what it held before. Another swing
    /// tells.
    DippedMidRun {
        /// Hours from the run's start to the lowest point.
        dip_hours: f64,
    },
    /// It grew by no more than it allocates between two heap profiles: objects allocated
    /// during a GC's mark phase read as in use until the next GC frees them, so this much
    /// growth may be churn not yet collected (see [`turnover_window`]).
    Turnover {
        /// In-use growth over the runs (start level to end level).
        growth: f64,
        /// Most allocated between two observations (distinct heap profiles), runs added up.
        per_observation: f64,
    },
}

/// The growth of a series in one or two jumps, flat between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Steps {
    /// Jumps (1 or 2).
    pub count: usize,
    /// The largest jump.
    pub largest: f64,
}

/// Whether `y` rose in at most two jumps: its largest one or two rises hold
/// [`STEP_SHARE`] of all its rises (or, on a noisy series, at most two rises stand out
/// from the noise by [`STEP_NOISE_SIGMAS`] and make [`STEP_SHARE`] of its net growth), and
/// it kept at least half of them. `None` when it rose more gradually, or not at all.
pub fn steps(y: &[f64]) -> Option<Steps> {
    steps_given_noise(y, stats::step_noise_sd)
}

/// [`steps`] with the series' step noise from `noise_sd` (called at most once), for a
/// caller that already has it.
pub fn steps_given_noise(y: &[f64], noise_sd: impl FnOnce(&[f64]) -> f64) -> Option<Steps> {
    steps_of_rises(y).or_else(|| steps_above_noise(y, noise_sd))
}

/// A rise counts as a jump above the noise when it is this many standard deviations of the
/// series' step noise ([`stats::step_noise_sd`]).
pub const STEP_NOISE_SIGMAS: f64 = 6.0;

fn steps_above_noise(y: &[f64], noise_sd: impl FnOnce(&[f64]) -> f64) -> Option<Steps> {
    let n = y.len();
    if n < 6 {
        return None;
    }
    let sd = noise_sd(y);
    if sd <= 0.0 {
        return None;
    }
    // Most series have no jump or many: decided before the two medians of a fifth of the
    // points each (about 12 us on a 10,000-point run) are selected, by a count that
    // vectorizes (collecting the jumps of every run took 4.6 us of a 10,000-point run's
    // fit; perf, 100M rows by stack).
    let limit = STEP_NOISE_SIGMAS * sd;
    let count = y[1..]
        .iter()
        .zip(y)
        .fold(0usize, |c, (b, a)| c + usize::from(b - a > limit));
    if count == 0 || count > 2 {
        return None;
    }
    let jumps: Vec<f64> = y
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > limit)
        .collect();
    let k = (n / 5).max(2);
    let net = stats::median(&y[n - k..])? - stats::median(&y[..k])?;
    let total: f64 = jumps.iter().sum();
    (!jumps.is_empty()
        && jumps.len() <= 2
        && net > 0.0
        && total >= STEP_SHARE * net
        && total <= 2.0 * net)
        .then(|| Steps {
            count: jumps.len(),
            largest: jumps.iter().copied().fold(0.0, f64::max),
        })
}

/// How far a leak verdict can be trusted given the evidence behind it, as a factor on the
/// trend's confidence: `(1 - 0.5 / sqrt(quanta)) * (1 - 1.5 / observations)`. Measured on
/// simulated recordings (docs/accuracy.md), the share of `leak` verdicts that were real
/// leaks rises with both: 75% at 12-20 observations and 8-24 quanta, 97% past 40
/// observations and 64 quanta; the factor keeps the stated confidence at or under it.
/// `quanta` is infinite for a series whose sampling is unknown (only the observations
/// count then).
pub fn leak_evidence_factor(observations: usize, quanta: f64) -> f64 {
    let q = quanta.max(1.0);
    let n = observations.max(2) as f64;
    ((1.0 - 0.5 / q.sqrt()) * (1.0 - 1.5 / n)).clamp(0.0, 1.0)
}

fn steps_of_rises(y: &[f64]) -> Option<Steps> {
    if y.len() < 3 {
        return None;
    }
    let net = y[y.len() - 1] - y[0];
    let decide = |total: f64, count: usize, top: [f64; 2]| {
        (1..=2.min(count)).find_map(|k| {
            let sum: f64 = top[..k].iter().sum();
            (sum >= STEP_SHARE * total && net >= 0.5 * sum).then_some(Steps {
                count: k,
                largest: top[0],
            })
        })
    };
    let Some(r) = IntegerRises::of(y) else {
        let (total, count, top) = rises_in_order(y);
        return (total > 0.0).then(|| decide(total, count, top)).flatten();
    };
    if r.total <= 0.0 {
        return None;
    }
    // The second largest rise is wanted only when one jump is not enough and two could
    // be: two never make more than twice the largest.
    let second = if r.count >= 2 && 2.0 * r.largest >= STEP_SHARE * r.total {
        second_largest_rise(y, r.largest)
    } else {
        f64::NEG_INFINITY
    };
    let count = if second == f64::NEG_INFINITY {
        r.count.min(1)
    } else {
        r.count
    };
    decide(r.total, count, [r.largest, second])
}

/// The sum, count and largest of the rises of a series of integers, found in lanes that
/// vectorize; `None` unless every value is an integer below 2^52 in magnitude and the sum
/// is at most 2^52. Then every rise and every partial sum, in any order, is an exact
/// integer, so the lanes' sum has the bits of [`rises_in_order`]'s. Matrix series are
/// sums of integer sample values, so they qualify. `rises_in_order` waited on its
/// previous addition at every point: 10.6 us of a 10,000-point run's fit (perf, 100M rows
/// by stack).
struct IntegerRises {
    total: f64,
    count: usize,
    largest: f64,
}

impl IntegerRises {
    fn of(y: &[f64]) -> Option<Self> {
        const LANES: usize = 8;
        // 2^52: a magnitude below it plus 2^52 lies where doubles are the integers, so
        // adding and then subtracting 2^52 rounds it to an integer.
        const BIG: f64 = 4_503_599_627_370_496.0;
        let whole = |v: f64| {
            let m = v.abs();
            (m < BIG) & ((m + BIG) - BIG == m)
        };
        let (mut total, mut count) = ([0.0f64; LANES], [0usize; LANES]);
        let (mut largest, mut ok) = ([0.0f64; LANES], [whole(*y.first()?); LANES]);
        let mut visit = |l: usize, a: f64, b: f64| {
            let d = b - a;
            let rise = if d > 0.0 { d } else { 0.0 };
            total[l] += rise;
            count[l] += usize::from(d > 0.0);
            largest[l] = if rise > largest[l] { rise } else { largest[l] };
            ok[l] &= whole(b);
        };
        let (from, to) = (&y[..y.len() - 1], &y[1..]);
        let (a_chunks, b_chunks) = (from.chunks_exact(LANES), to.chunks_exact(LANES));
        let (a_tail, b_tail) = (a_chunks.remainder(), b_chunks.remainder());
        for (a, b) in a_chunks.zip(b_chunks) {
            for l in 0..LANES {
                visit(l, a[l], b[l]);
            }
        }
        for (a, b) in a_tail.iter().zip(b_tail) {
            visit(0, *a, *b);
        }
        let total = total.iter().sum::<f64>();
        (ok.iter().all(|o| *o) && total <= BIG).then(|| IntegerRises {
            total,
            count: count.iter().sum(),
            largest: largest.into_iter().fold(0.0, f64::max),
        })
    }
}

/// The second largest rise of `y` given its largest (the largest again when it rose by
/// that much twice); `f64::NEG_INFINITY` when nothing else rose.
fn second_largest_rise(y: &[f64], largest: f64) -> f64 {
    let (mut below, mut equal) = (f64::NEG_INFINITY, 0usize);
    for (a, b) in y.iter().zip(&y[1..]) {
        let d = b - a;
        equal += usize::from(d == largest);
        below = if d > 0.0 && d < largest && d > below {
            d
        } else {
            below
        };
    }
    if equal >= 2 {
        largest
    } else {
        below
    }
}

/// The sum of `y`'s rises added in order, how many there are, and the two largest.
fn rises_in_order(y: &[f64]) -> (f64, usize, [f64; 2]) {
    // One pass keeping the sum and the two largest rises, instead of collecting every rise
    // and sorting them: `steps` on a steady 10,000-point series (about 5,000 rises, with one
    // 19 us step-noise estimate) took 98.8 us with the sort and 35.9 us this way (fastest
    // of 15 blocks, old and new code in one binary). The sum adds the same rises in the
    // same order; rises equal under total_cmp are the same value, so the two largest are
    // what the sort put first.
    //
    // Branch-free for the sign of each difference: on a noisy series it is a coin toss, and
    // the mispredicted branch was a third of a 10,000-point run's own fit time (perf, 100M
    // rows by stack; an `if` on the sign compiled back to a branch, `max` does not). A fall,
    // a tie or a NaN becomes a zero: adding it leaves the sum's bits as they were (the sum
    // starts at +0.0 and only grows), and a zero can take a place in the top two only
    // while fewer than two rises were seen, places that are never read (only the first
    // `count` are). Entering the top two is rare, so that branch stays predictable.
    let (mut total, mut count, mut top) = (0.0f64, 0usize, [f64::NEG_INFINITY; 2]);
    for w in y.windows(2) {
        let d = w[1] - w[0];
        let rise = d.max(0.0);
        total += rise;
        count += usize::from(d > 0.0);
        if rise.total_cmp(&top[1]).is_gt() {
            if rise.total_cmp(&top[0]).is_gt() {
                top = [rise, top[0]];
            } else {
                top[1] = rise;
            }
        }
    }
    (total, count, top)
}

/// [`steps_of_rises`] by sorting every rise, as before issue #14: the reference the
/// one-pass selection is tested against.
#[cfg(test)]
fn steps_of_sorted_rises(y: &[f64]) -> Option<Steps> {
    let mut rises: Vec<f64> = y
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0.0)
        .collect();
    let total: f64 = rises.iter().sum();
    if total <= 0.0 || y.len() < 3 {
        return None;
    }
    rises.sort_by(|a, b| b.total_cmp(a));
    let net = y[y.len() - 1] - y[0];
    (1..=2.min(rises.len())).find_map(|k| {
        let top: f64 = rises[..k].iter().sum();
        (top >= STEP_SHARE * total && net >= 0.5 * top).then_some(Steps {
            count: k,
            largest: rises[0],
        })
    })
}

/// The most a site allocates between two observations (distinct heap profiles, each at
/// least one GC apart), runs added up: the largest rate of the four quarters between
/// [`CHECKPOINTS`] of each run of `points` observations. Objects allocated while a GC marks
/// survive it, so up to one cycle's allocations of a site read as in use though they are
/// garbage; a cycle allocates no more than the interval between two observations. `None`
/// without allocation totals for every run (`runs` and `points` pair up), or when they
/// never rose.
///
/// Measured on the fixture service's churn trap (fixtures/go/leaky-service, 40 s at 1 s,
/// CPU contended): its in-use swung between one 17 KiB buffer and about 40 of them, while it
/// allocated about 240 buffers between two heap profiles.
pub fn turnover_window(runs: &[AllocCheckpoints], points: &[usize]) -> Option<f64> {
    if runs.is_empty() || runs.len() != points.len() {
        return None;
    }
    let window: f64 = runs
        .iter()
        .zip(points)
        .map(|(r, &n)| {
            (1..CHECKPOINTS.len())
                .map(|i| {
                    let steps = checkpoint_index(n, i).saturating_sub(checkpoint_index(n, i - 1));
                    let allocated = (r.alloc[i] - r.alloc[i - 1]).max(0.0);
                    if steps > 0 {
                        allocated / steps as f64
                    } else {
                        0.0
                    }
                })
                .fold(0.0, f64::max)
        })
        .sum();
    (window > 0.0).then_some(window)
}

/// The retention signal of a series over its runs' [`AllocCheckpoints`], in quanta.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Retention {
    /// Share of allocated quanta kept in use before the split that judged it.
    pub early: f64,
    /// The same after the split.
    pub late: f64,
    /// Quanta allocated after the split.
    pub late_allocated: f64,
    /// Chance under a steady retention share (or a steady allocation rate, when
    /// allocations stopped) of a fall this large, Bonferroni-corrected.
    pub p: f64,
    /// Allocations themselves stopped (rather than continuing unretained).
    pub allocations_stopped: bool,
}

/// Judges whether a site stopped retaining what it allocates, at each split of
/// [`CHECKPOINTS`] (runs added up): its allocations kept flowing while in-use stopped
/// following them (retention fell beyond chance), or its allocations stopped. `None` when
/// there is too little to judge or no fall.
pub fn retention_fall(runs: &[AllocCheckpoints], quantum: f64) -> Option<Retention> {
    if runs.is_empty() || quantum <= 0.0 {
        return None;
    }
    let splits = CHECKPOINTS.len() - 2;
    let mut best: Option<Retention> = None;
    for s in 1..=splits {
        let (mut re, mut ae, mut rl, mut al, mut te, mut tl) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for r in runs {
            let last = CHECKPOINTS.len() - 1;
            re += (r.inuse[s] - r.inuse[0]).max(0.0) / quantum;
            rl += (r.inuse[last] - r.inuse[s]).max(0.0) / quantum;
            ae += (r.alloc[s] - r.alloc[0]).max(0.0) / quantum;
            al += (r.alloc[last] - r.alloc[s]).max(0.0) / quantum;
            te += r.hours[s] - r.hours[0];
            tl += r.hours[last] - r.hours[s];
        }
        if ae < 2.0 || re < 2.0 || te <= 0.0 || tl <= 0.0 {
            continue;
        }
        let early = (re / ae).min(1.0);
        if early < MIN_EARLY_RETENTION {
            continue;
        }
        let late = if al > 0.0 { (rl / al).min(1.0) } else { 0.0 };
        // In-use growth itself must have slowed (what the in-use statistics could not
        // settle), and the split's evidence must beat chance.
        let slowed = rl <= 0.5 * re * tl / te;
        let judged = if al >= 5.0 {
            // Allocations continued: were they retained at the early share? Fisher's exact
            // test on (retained, allocated) before and after, so a share estimated from a
            // few early quanta is not taken as exact.
            let (ae_n, al_n) = (ae.round().max(re.round()) as u64, al.round() as u64);
            let (re_n, rl_n) = (re.round() as u64, (rl.round() as u64).min(al_n));
            let p = stats::hypergeometric_lower(ae_n + al_n, re_n + rl_n, al_n, rl_n);
            (late < 0.5 * early).then_some((p, false))
        } else {
            // Allocations (nearly) stopped: was that chance under a steady rate?
            let all = (ae + al).round() as u64;
            let share = tl / (te + tl);
            let p = stats::binomial_tail(all, al.round() as u64, share, true);
            (al < 0.25 * (ae + al) * share).then_some((p, true))
        };
        let Some((p, stopped)) = judged.filter(|_| slowed) else {
            continue;
        };
        let p = (p * splits as f64).min(1.0);
        let r = Retention {
            early,
            late,
            late_allocated: al,
            p,
            allocations_stopped: stopped,
        };
        if best.is_none_or(|b| r.p < b.p) {
            best = Some(r);
        }
    }
    best.filter(|r| r.p < RETENTION_P)
}

/// Hours more to record, at the observed pace, for a shortfall to be made up: more
/// observations at the observed observation rate, more quanta at the observed growth rate,
/// time for the observed rate to add five quanta (enough for their absence after a stop
/// to beat chance), or two cycles of the period a single drop suggests.
pub fn record_more_hours(
    shortfall: &Shortfall,
    observations: usize,
    hours: f64,
    rate_per_hour: f64,
    quantum: f64,
) -> Option<f64> {
    let per_hour_obs = observations as f64 / hours;
    let quanta_per_hour = rate_per_hour / quantum;
    let more = match *shortfall {
        Shortfall::FewObservations { have, need } => {
            (need.saturating_sub(have)) as f64 / per_hour_obs
        }
        Shortfall::FewQuanta { have, need, .. } => (need - have).max(1.0) / quanta_per_hour,
        Shortfall::NoLateGrowth { .. } => 5.0 / quanta_per_hour,
        Shortfall::OneCycle { period_hours } => 2.2 * period_hours - hours,
        Shortfall::DippedMidRun { dip_hours } => 2.0 * dip_hours.max(hours - dip_hours),
        // Growth at the observed pace until it exceeds one window, with a margin.
        Shortfall::Turnover {
            growth,
            per_observation,
        } => hours * (1.5 * per_observation / growth.max(f64::MIN_POSITIVE) - 1.0),
    };
    (more.is_finite() && hours > 0.0).then_some(more.max(1.0 / per_hour_obs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_two_jumps_are_steps_gradual_growth_is_not() {
        let one = [1.0, 1.0, 1.0, 9.0, 9.0, 9.0, 9.0];
        assert_eq!(steps(&one).map(|s| s.count), Some(1));
        let two = [1.0, 1.0, 5.0, 5.0, 5.0, 9.0, 9.0];
        assert_eq!(steps(&two).map(|s| s.count), Some(2));
        let ramp: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(steps(&ramp), None);
        // A spike that came back down is no step up.
        assert_eq!(steps(&[1.0, 1.0, 9.0, 1.0, 1.0]), None);
        assert_eq!(steps(&[3.0, 3.0, 3.0]), None);
    }

    /// The two largest rises picked by selection give what sorting every rise gave.
    #[test]
    fn steps_of_rises_matches_a_full_sort() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in (2..30).chain([63, 64, 65, 200]) {
            for round in 0..80 {
                // Fractional values (added in order), integers (added in lanes), integers
                // whose rises add past 2^52 (in order again), and negative halves.
                let (slope, scale) = match round % 4 {
                    0 => (0.1, 1.0),
                    1 => (0.0, 1.0),
                    2 => (0.0, 2f64.powi(50)),
                    _ => (-0.5, 1.0),
                };
                let y: Vec<f64> = (0..len)
                    .map(|i| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let jump = if state.is_multiple_of(7) { 50.0 } else { 0.0 };
                        ((state % (3 + round as u64)) as f64 + jump) * scale + i as f64 * slope
                    })
                    .collect();
                let want = steps_of_sorted_rises(&y);
                assert_eq!(steps_of_rises(&y), want, "{y:?}");
                let (total, count, top) = rises_in_order(&y);
                if let Some(r) = IntegerRises::of(&y) {
                    assert_eq!((r.total.to_bits(), r.count), (total.to_bits(), count));
                    if count >= 1 {
                        assert_eq!(r.largest, top[0]);
                    }
                    if count >= 2 {
                        assert_eq!(second_largest_rise(&y, r.largest), top[1], "{y:?}");
                    }
                }
            }
        }
    }

    fn checkpoints(inuse: [f64; 5], alloc: [f64; 5]) -> AllocCheckpoints {
        AllocCheckpoints {
            hours: CHECKPOINTS.map(|c| c * 0.1),
            inuse,
            alloc,
        }
    }

    #[test]
    fn cache_at_capacity_stops_retaining_a_leak_does_not() {
        // Fills by the half-way point, then keeps allocating 40 quanta unretained.
        let cache = checkpoints([0.0, 10.0, 20.0, 20.0, 21.0], [0.0, 11.0, 22.0, 42.0, 62.0]);
        let r = retention_fall(&[cache], 1.0).expect("a fall");
        assert!(
            !r.allocations_stopped && r.late < 0.1 && r.p < 1e-6,
            "{r:?}"
        );
        // A leak keeps its share (here 50%), even when in-use lagged a little.
        let leak = checkpoints([0.0, 5.0, 10.0, 14.0, 19.0], [0.0, 10.0, 20.0, 30.0, 40.0]);
        assert_eq!(retention_fall(&[leak], 1.0), None);
        // Too little allocated to judge.
        let thin = checkpoints([0.0, 1.0, 2.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(retention_fall(&[thin], 1.0), None);
    }

    #[test]
    fn allocations_that_stop_are_a_stop() {
        let fill = checkpoints([0.0, 15.0, 30.0, 30.0, 30.0], [0.0, 15.0, 30.0, 30.0, 30.0]);
        let r = retention_fall(&[fill], 1.0).expect("a stop");
        assert!(r.allocations_stopped, "{r:?}");
    }

    #[test]
    fn record_more_comes_from_the_pace() {
        // 6 observations in 1 minute: 6 more take another minute.
        let few = Shortfall::FewObservations { have: 6, need: 12 };
        let h = record_more_hours(&few, 6, 1.0 / 60.0, 100.0, 1.0).unwrap();
        assert!((h * 60.0 - 1.0).abs() < 1e-9, "{h}");
        // 4 quanta at 60 quanta/h: 4 more take 4 minutes.
        let q = Shortfall::FewQuanta {
            have: 4.0,
            need: 8.0,
            quantum: 1.0,
        };
        let h = record_more_hours(&q, 30, 0.1, 60.0, 1.0).unwrap();
        assert!((h * 60.0 - 4.0).abs() < 1e-9, "{h}");
        // A drop 90 s in: two cycles need about 200 s in all.
        let one = Shortfall::OneCycle {
            period_hours: 90.0 / 3600.0,
        };
        let h = record_more_hours(&one, 12, 120.0 / 3600.0, 1.0, 1.0).unwrap();
        assert!((h * 3600.0 - 78.0).abs() < 1e-6, "{h}");
    }
}
