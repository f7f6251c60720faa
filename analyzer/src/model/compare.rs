//! Before/after statistics of one call site (`leakscope compare`): a confidence interval
//! of the growth rate on each side, and the rules that turn two sides into a [`Change`].
//!
//! # The interval
//!
//! [`rate_interval`] is Sen's (1968) nonparametric confidence interval for the Theil-Sen
//! slope, with the variance of Kendall's S inflated for serial correlation (Hamed & Rao
//! 1998), runs pooled as the seasons of the seasonal Kendall slope (Hirsch et al. 1982):
//! pairwise slopes only within a run, S variances of the runs added up. Why this one:
//!
//! - It inverts the same rank test the fit already trusts (Mann-Kendall, tie-corrected,
//!   corrected for autocorrelation), so the interval excludes zero roughly when the trend
//!   test is significant, and it is centred on the same robust slope.
//! - It is distribution-free and robust to the outliers and quantized steps of sampled
//!   heap profiles, where a least-squares standard error is not.
//! - Profile series are autocorrelated (a sampled allocation stays for many scrapes). An
//!   i.i.d. bootstrap over points breaks that dependence and gives intervals far too
//!   narrow; a block bootstrap needs many more points than a 5- to 60-point run has; a
//!   bootstrap over runs is degenerate with one or two runs. The Hamed-Rao factor widens
//!   the interval by exactly the variance inflation that correlated ranks cause, and only
//!   when the correlation is significant. It is not perfect: on simulated series with
//!   AR(1) noise of coefficient 0.3 the 95% interval covers the true slope about 88-91% of
//!   the time, at 0.6 about 76-81% (the correlation estimated from 12-60 points is biased
//!   low), against 94-97% for independent noise. [`APART_RATIO`] is the margin that keeps
//!   that from turning into verdicts.
//! - It costs one sort of the pairwise slopes the Theil-Sen estimate needs anyway (long
//!   runs are reduced to bucket medians first, as the fit does).
//!
//! # The rules
//!
//! Each side of a site is a [`SideState`]: leaking (a leak or possible leak at the
//! confidence asked for), unsure (growing but too early to tell, too short to judge, or a
//! leak below that confidence), flat (steady, plateau, sawtooth, warm-up, shrinking) or
//! absent (no sample of the site on that side, though the side has enough profiles to
//! judge). The rates are [`RateShift::Higher`] after only when the two intervals do not
//! overlap *and* the after-rate is at least [`APART_RATIO`] times the before-rate
//! ([`RateShift::Lower`] the other way round): a statistically clear but tiny difference
//! is no change worth a verdict. [`judge`] documents the table.

use serde::Serialize;

use crate::model::fit::{RunView, Verdict, MIN_POINTS, REDUCED_POINTS, REDUCE_ABOVE};
use crate::model::stats::{self, KendallS};

/// Coverage of [`RateInterval`]s.
pub const INTERVAL_LEVEL: f64 = 0.95;
/// The standard normal quantile of (1 + [`INTERVAL_LEVEL`]) / 2.
const Z: f64 = 1.959_963_984_540_054;
/// How many times faster (or slower) one side must grow than the other, besides the
/// intervals not overlapping, for the rates to count as different.
pub const APART_RATIO: f64 = 1.5;

/// A confidence interval of a growth rate, units per hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateInterval {
    /// The slope the interval is centred on: the median of the within-run pairwise slopes
    /// (the seasonal Theil-Sen slope).
    pub rate_per_hour: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Coverage ([`INTERVAL_LEVEL`]).
    pub level: f64,
}

impl RateInterval {
    /// Whether `rate` lies inside the interval (bounds included).
    pub fn contains(&self, rate: f64) -> bool {
        self.low <= rate && rate <= self.high
    }
}

/// Sen's confidence interval of the growth rate of a series over its runs (see the module
/// docs); `None` when no run has [`MIN_POINTS`] points over a positive span.
pub fn rate_interval(runs: &[RunView]) -> Option<RateInterval> {
    let mut slopes: Vec<f64> = Vec::new();
    let mut s = KendallS::default();
    for r in runs {
        let n = r.hours.len().min(r.y.len());
        if n < MIN_POINTS || r.hours[n - 1] <= r.hours[0] {
            continue;
        }
        let reduced;
        let (x, y): (&[f64], &[f64]) = if n > REDUCE_ABOVE {
            reduced = stats::bucket_medians(&r.hours[..n], &r.y[..n], REDUCED_POINTS);
            (&reduced.0, &reduced.1)
        } else {
            (&r.hours[..n], &r.y[..n])
        };
        let first = slopes.len();
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                let dx = x[j] - x[i];
                if dx != 0.0 {
                    slopes.push((y[j] - y[i]) / dx);
                }
            }
        }
        let run_slope = stats::median(&slopes[first..]).unwrap_or(0.0);
        let residuals: Vec<f64> = x
            .iter()
            .zip(y)
            .map(|(xi, yi)| yi - run_slope * xi)
            .collect();
        s = s.combine(stats::mann_kendall(x, y).corrected_for_autocorrelation(&residuals));
    }
    if slopes.is_empty() {
        return None;
    }
    slopes.sort_by(f64::total_cmp);
    let n = slopes.len() as f64;
    let c = Z * s.var.max(0.0).sqrt();
    // Sen: the lower bound is the M1-th smallest slope, the upper the (M2+1)-th, with
    // M1 = (N - C)/2 and M2 = (N + C)/2 (1-based ranks, interpolated between slopes).
    let at = |rank: f64| {
        let i = (rank - 1.0).clamp(0.0, n - 1.0);
        let (lo, hi) = (i.floor() as usize, i.ceil() as usize);
        slopes[lo] + (slopes[hi] - slopes[lo]) * (i - lo as f64)
    };
    let median = stats::median(&slopes).unwrap_or(0.0);
    Some(RateInterval {
        rate_per_hour: median,
        low: at((n - c) / 2.0).min(median),
        high: at((n + c) / 2.0 + 1.0).max(median),
        level: INTERVAL_LEVEL,
    })
}

/// What one side says about a site, for the comparison rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SideState {
    /// A leak or possible leak at the confidence asked for.
    Leaking,
    /// Growing but too early to tell, too short to judge, or a leak below the confidence
    /// asked for: no basis for a verdict either way.
    Unsure,
    /// Steady, plateau, sawtooth, warm-up or shrinking: not leaking.
    Flat,
    /// No sample of the site on this side, which has enough profiles to judge.
    Absent,
}

impl SideState {
    /// The state of a side whose fit has `verdict` at `confidence`; leaks count from
    /// `min_confidence` on.
    pub fn of(verdict: Verdict, confidence: f64, min_confidence: f64) -> SideState {
        match verdict {
            Verdict::Leak | Verdict::PossibleLeak if confidence >= min_confidence => {
                SideState::Leaking
            }
            Verdict::Leak | Verdict::PossibleLeak | Verdict::Growing | Verdict::TooShort => {
                SideState::Unsure
            }
            Verdict::Plateau
            | Verdict::Sawtooth
            | Verdict::WarmUp
            | Verdict::Shrinking
            | Verdict::Steady => SideState::Flat,
        }
    }

    /// Stable code, as in JSON.
    pub fn code(self) -> &'static str {
        match self {
            SideState::Leaking => "leaking",
            SideState::Unsure => "unsure",
            SideState::Flat => "flat",
            SideState::Absent => "absent",
        }
    }

    fn not_leaking(self) -> bool {
        matches!(self, SideState::Flat | SideState::Absent)
    }
}

/// How the after-rate stands to the before-rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateShift {
    /// The intervals do not overlap, after above, and after grows at least
    /// [`APART_RATIO`] times as fast.
    Higher,
    /// The intervals do not overlap, after below, and before grew at least
    /// [`APART_RATIO`] times as fast.
    Lower,
    /// Both intervals known, and the rates are not told apart.
    Indistinct,
    /// A side has no interval (absent, or too short).
    Unknown,
}

impl RateShift {
    /// Stable code, as in JSON.
    pub fn code(self) -> &'static str {
        match self {
            RateShift::Higher => "higher",
            RateShift::Lower => "lower",
            RateShift::Indistinct => "indistinct",
            RateShift::Unknown => "unknown",
        }
    }
}

/// Whether `a` grows clearly faster than `b`: intervals apart and [`APART_RATIO`].
fn clearly_faster(a: &RateInterval, b: &RateInterval) -> bool {
    a.low > b.high && a.rate_per_hour > 0.0 && a.rate_per_hour >= APART_RATIO * b.rate_per_hour
}

/// How the rate after stands to the rate before (see [`RateShift`]).
pub fn rate_shift(before: Option<&RateInterval>, after: Option<&RateInterval>) -> RateShift {
    match (before, after) {
        (Some(b), Some(a)) if clearly_faster(a, b) => RateShift::Higher,
        (Some(b), Some(a)) if clearly_faster(b, a) => RateShift::Lower,
        (Some(_), Some(_)) => RateShift::Indistinct,
        _ => RateShift::Unknown,
    }
}

/// What happened to a site between BEFORE and AFTER, most serious first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// Leaking after, and not before (flat, or absent), growing clearly faster than before.
    NewLeak,
    /// Leaking after, leaking (or growing) before, and clearly faster after.
    Worse,
    /// Leaking on both sides at rates not told apart.
    StillLeaking,
    /// The data cannot tell: a side is too early to tell or too short, or the rates
    /// cannot be told apart where a verdict would need them to be.
    Inconclusive,
    /// Leaking before, and after clearly slower (still leaking, or too early to tell).
    Improved,
    /// Leaking before; after not leaking and clearly slower, or gone.
    Fixed,
    /// Not leaking on either side.
    Unchanged,
}

impl Change {
    /// Stable code, as in JSON (`new-leak`, `worse`, `still-leaking`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Change::NewLeak => "new-leak",
            Change::Worse => "worse",
            Change::StillLeaking => "still-leaking",
            Change::Inconclusive => "inconclusive",
            Change::Improved => "improved",
            Change::Fixed => "fixed",
            Change::Unchanged => "unchanged",
        }
    }

    /// Every change, most serious first.
    pub const ALL: [Change; 7] = [
        Change::NewLeak,
        Change::Worse,
        Change::StillLeaking,
        Change::Inconclusive,
        Change::Improved,
        Change::Fixed,
        Change::Unchanged,
    ];

    /// Whether the change fails a CI gate: a new leak, or a leak that got worse.
    pub fn fails(self) -> bool {
        matches!(self, Change::NewLeak | Change::Worse)
    }
}

/// One side of a site: its state and, unless absent or too short, its rate interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    /// What the side says.
    pub state: SideState,
    /// Confidence interval of the side's rate.
    pub interval: Option<RateInterval>,
}

/// The change of a site from its two sides, and how the rates compare. The rules, with
/// L leaking, U unsure, F flat, A absent (see [`SideState`]) and the shift of the rates
/// ([`rate_shift`]):
///
/// | before | after | change |
/// |---|---|---|
/// | L | L | `worse` if higher, `improved` if lower, else `still-leaking` |
/// | L | F | `fixed` if lower, else `inconclusive` (not significant after, but the rate cannot be told from before's) |
/// | L | A | `fixed` (the site is gone) |
/// | L | U | `improved` if lower, else `inconclusive` |
/// | F | L | `new-leak` if higher, else `inconclusive` (before could not rule out the rate) |
/// | A | L | `new-leak` |
/// | U | L | `worse` if higher, else `inconclusive` (before was too early to tell) |
/// | F/A | F/A | `unchanged` |
/// | U | F/A/U | `inconclusive` |
/// | F/A | U | `inconclusive` |
pub fn judge(before: &Side, after: &Side) -> (Change, RateShift) {
    use SideState::*;
    let shift = rate_shift(before.interval.as_ref(), after.interval.as_ref());
    let change = match (before.state, after.state) {
        (Leaking, Leaking) => match shift {
            RateShift::Higher => Change::Worse,
            RateShift::Lower => Change::Improved,
            _ => Change::StillLeaking,
        },
        (Leaking, Absent) => Change::Fixed,
        (Leaking, Flat) if shift == RateShift::Lower => Change::Fixed,
        (Leaking, Unsure) if shift == RateShift::Lower => Change::Improved,
        (Absent, Leaking) => Change::NewLeak,
        (Flat, Leaking) if shift == RateShift::Higher => Change::NewLeak,
        (Unsure, Leaking) if shift == RateShift::Higher => Change::Worse,
        (b, a) if b.not_leaking() && a.not_leaking() => Change::Unchanged,
        _ => Change::Inconclusive,
    };
    (change, shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(runs: &[(Vec<f64>, Vec<f64>)]) -> Option<RateInterval> {
        let views: Vec<RunView> = runs.iter().map(|(x, y)| RunView::new(x, y)).collect();
        rate_interval(&views)
    }

    fn hours(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64 / 60.0).collect()
    }

    fn ci(rate: f64, low: f64, high: f64) -> RateInterval {
        RateInterval {
            rate_per_hour: rate,
            low,
            high,
            level: INTERVAL_LEVEL,
        }
    }

    /// A standard normal draw (Box-Muller) from test uniforms.
    fn normal(u: &mut impl FnMut() -> f64) -> f64 {
        let (a, b) = (u().max(1e-12), u());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }

    #[test]
    fn a_straight_line_has_a_point_interval_at_its_slope() {
        let x = hours(20);
        let y: Vec<f64> = x.iter().map(|h| 100.0 + 600.0 * h).collect();
        let c = interval(&[(x, y)]).unwrap();
        assert!((c.rate_per_hour - 600.0).abs() < 1e-6, "{c:?}");
        assert!(
            (c.low - 600.0).abs() < 1e-6 && (c.high - 600.0).abs() < 1e-6,
            "{c:?}"
        );
    }

    #[test]
    fn a_hand_computed_interval() {
        // Slopes of (0,0) (1,1) (2,4) (3,3) (4,8) (5,6), x in hours: 15 pairwise slopes.
        let x = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let y = vec![0.0, 1.0, 4.0, 3.0, 8.0, 6.0];
        let mut slopes = vec![];
        for i in 0..6 {
            for j in i + 1..6 {
                slopes.push((y[j] - y[i]) / (x[j] - x[i]));
            }
        }
        slopes.sort_by(f64::total_cmp);
        // Var(S) for n = 6 without ties: 6*5*17/18 = 28.33; C = 1.96 * 5.32 = 10.43;
        // M1 = (15 - 10.43)/2 = 2.28, M2 + 1 = 13.72.
        let c = interval(&[(x, y)]).unwrap();
        let lerp = |r: f64| {
            let i = r - 1.0;
            let lo = i.floor() as usize;
            slopes[lo] + (slopes[lo + 1] - slopes[lo]) * (i - lo as f64)
        };
        let cc = Z * (6.0f64 * 5.0 * 17.0 / 18.0).sqrt();
        assert!(
            (c.low - lerp((15.0 - cc) / 2.0)).abs() < 1e-9,
            "{c:?} {slopes:?}"
        );
        assert!(
            (c.high - lerp((15.0 + cc) / 2.0 + 1.0)).abs() < 1e-9,
            "{c:?}"
        );
        assert!((c.rate_per_hour - slopes[7]).abs() < 1e-12);
        assert!(c.low < c.rate_per_hour && c.rate_per_hour < c.high);
    }

    #[test]
    fn too_short_has_no_interval() {
        assert_eq!(interval(&[(hours(4), vec![1.0, 2.0, 3.0, 4.0])]), None);
        assert_eq!(interval(&[]), None);
        // No time span.
        assert_eq!(interval(&[(vec![0.0; 6], vec![1.0; 6])]), None);
    }

    #[test]
    fn runs_pool_within_run_slopes_only() {
        // Two runs of the same leak, each restarting from the bottom: a restart is no slope.
        let x = hours(30);
        let y: Vec<f64> = x.iter().map(|h| 60.0 * h).collect();
        let c = interval(&[(x.clone(), y.clone()), (x, y)]).unwrap();
        assert!((c.rate_per_hour - 60.0).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn long_runs_are_reduced_and_still_cover_the_slope() {
        let mut u = stats::test_uniforms(5);
        let x = hours(5000);
        let y: Vec<f64> = x
            .iter()
            .map(|h| 1000.0 * h + 50.0 * normal(&mut u))
            .collect();
        let c = interval(&[(x, y)]).unwrap();
        assert!(c.contains(1000.0), "{c:?}");
        assert!(c.high - c.low < 100.0, "{c:?}");
    }

    /// Share of `sims` series (slope 1200/h over `n` points a minute apart, AR(1) noise
    /// with coefficient `phi` and sd `sd`) whose interval covers the true slope.
    fn coverage(seed: u64, sims: usize, n: usize, phi: f64, sd: f64) -> f64 {
        let mut u = stats::test_uniforms(seed);
        let x = hours(n);
        let mut covered = 0;
        for _ in 0..sims {
            let mut e = normal(&mut u) * sd / (1.0 - phi * phi).sqrt();
            let y: Vec<f64> = x
                .iter()
                .map(|h| {
                    e = phi * e + sd * normal(&mut u);
                    5000.0 + 1200.0 * h + e
                })
                .collect();
            if interval(&[(x.clone(), y)]).unwrap().contains(1200.0) {
                covered += 1;
            }
        }
        covered as f64 / sims as f64
    }

    #[test]
    fn the_interval_covers_the_true_slope_at_about_the_nominal_rate() {
        // Independent noise: Sen's interval is exact up to the normal approximation.
        for n in [12, 30] {
            let c = coverage(17 + n as u64, 400, n, 0.0, 20.0);
            assert!((0.91..=0.99).contains(&c), "n {n}: coverage {c}");
        }
        // Correlated noise (a sampled object stays for a few scrapes): the Hamed-Rao
        // inflation widens the interval; with strong correlation it under-covers (the
        // correlation estimated from 12-60 points is biased low), as the module docs say.
        let c = coverage(29, 400, 30, 0.3, 20.0);
        assert!(c >= 0.86, "AR(1) 0.3: coverage {c}");
        let c = coverage(31, 400, 60, 0.6, 20.0);
        assert!(c >= 0.72, "AR(1) 0.6: coverage {c}");
    }

    fn side(state: SideState, iv: Option<RateInterval>) -> Side {
        Side {
            state,
            interval: iv,
        }
    }

    #[test]
    fn the_rules_table() {
        use SideState::*;
        let fast = Some(ci(1000.0, 900.0, 1100.0));
        let similar = Some(ci(1050.0, 950.0, 1150.0));
        let slow = Some(ci(100.0, 50.0, 150.0));
        let flat = Some(ci(0.0, -20.0, 20.0));
        let wide_flat = Some(ci(0.0, -500.0, 1500.0));
        let cases = [
            (side(Leaking, slow), side(Leaking, fast), Change::Worse),
            (side(Leaking, fast), side(Leaking, slow), Change::Improved),
            (
                side(Leaking, fast),
                side(Leaking, similar),
                Change::StillLeaking,
            ),
            (side(Leaking, fast), side(Flat, flat), Change::Fixed),
            (
                side(Leaking, fast),
                side(Flat, wide_flat),
                Change::Inconclusive,
            ),
            (side(Leaking, fast), side(Absent, None), Change::Fixed),
            (side(Leaking, fast), side(Unsure, slow), Change::Improved),
            (
                side(Leaking, fast),
                side(Unsure, similar),
                Change::Inconclusive,
            ),
            (side(Flat, flat), side(Leaking, fast), Change::NewLeak),
            (
                side(Flat, wide_flat),
                side(Leaking, fast),
                Change::Inconclusive,
            ),
            (side(Absent, None), side(Leaking, fast), Change::NewLeak),
            (side(Unsure, slow), side(Leaking, fast), Change::Worse),
            (
                side(Unsure, similar),
                side(Leaking, fast),
                Change::Inconclusive,
            ),
            (
                side(Unsure, None),
                side(Leaking, fast),
                Change::Inconclusive,
            ),
            (side(Flat, flat), side(Flat, wide_flat), Change::Unchanged),
            (side(Flat, flat), side(Absent, None), Change::Unchanged),
            (side(Absent, None), side(Flat, flat), Change::Unchanged),
            (side(Unsure, slow), side(Flat, flat), Change::Inconclusive),
            (side(Flat, flat), side(Unsure, slow), Change::Inconclusive),
            (side(Unsure, slow), side(Unsure, slow), Change::Inconclusive),
            (side(Unsure, None), side(Absent, None), Change::Inconclusive),
        ];
        for (b, a, want) in cases {
            assert_eq!(judge(&b, &a).0, want, "{b:?} -> {a:?}");
        }
    }

    #[test]
    fn apart_but_barely_faster_is_not_worse() {
        // Tight intervals apart, but only 20% faster: still leaking, not worse.
        let b = side(SideState::Leaking, Some(ci(1000.0, 990.0, 1010.0)));
        let a = side(SideState::Leaking, Some(ci(1200.0, 1190.0, 1210.0)));
        assert_eq!(judge(&b, &a), (Change::StillLeaking, RateShift::Indistinct));
    }

    #[test]
    fn states_from_verdicts() {
        assert_eq!(SideState::of(Verdict::Leak, 0.95, 0.9), SideState::Leaking);
        assert_eq!(SideState::of(Verdict::Leak, 0.5, 0.9), SideState::Unsure);
        assert_eq!(
            SideState::of(Verdict::PossibleLeak, 0.95, 0.9),
            SideState::Leaking
        );
        assert_eq!(
            SideState::of(Verdict::Growing, 0.99, 0.9),
            SideState::Unsure
        );
        assert_eq!(
            SideState::of(Verdict::TooShort, 0.0, 0.9),
            SideState::Unsure
        );
        for v in [
            Verdict::Plateau,
            Verdict::Sawtooth,
            Verdict::WarmUp,
            Verdict::Shrinking,
            Verdict::Steady,
        ] {
            assert_eq!(SideState::of(v, 0.0, 0.9), SideState::Flat);
        }
    }

    #[test]
    fn codes_are_the_json_names() {
        for c in Change::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.code());
        }
        for s in [
            SideState::Leaking,
            SideState::Unsure,
            SideState::Flat,
            SideState::Absent,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.code());
        }
        for r in [
            RateShift::Higher,
            RateShift::Lower,
            RateShift::Indistinct,
            RateShift::Unknown,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.code());
        }
        assert!(Change::NewLeak.fails() && Change::Worse.fails());
        assert!(!Change::Inconclusive.fails() && !Change::StillLeaking.fails());
    }
}
