//! The decision ladder: a series' [`Features`] to a verdict and the [`Reason`] for it. First
//! the shape (trend or not, resets, early peak, a knee, slowing), then the effect size (a
//! trend too small next to the level it started from is no leak), then the rate a leak
//! reports (its recent one, after a speed-up).

use super::features::Features;
use super::{Verdict, ALPHA, MIN_RELATIVE_GROWTH};
use crate::model::reason::{Basis, Qualifier, Reason};

/// A classified series.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// A leak trend demoted to a possible leak for its small effect: the growth relative
    /// to the starting level (it scales the confidence down).
    pub small_effect: Option<f64>,
    /// The rate to report, units per hour: the recent one after a speed-up.
    pub rate: f64,
}

/// The shape of the series: its verdict and basis before the effect size is weighed.
pub fn shape(f: &Features) -> (Verdict, Basis) {
    let stopped_at_knee = f
        .stopped_at_knee
        .map(|(at, before, after)| Basis::StoppedAtKnee { at, before, after });
    let (p_up, resets) = (f.p_up, f.resets);
    if f.peak <= 0.0 {
        (Verdict::Steady, Basis::AlwaysZero)
    } else if p_up >= ALPHA || f.rate <= 0.0 || f.growth <= 0.0 {
        if resets >= 3 || (resets >= 2 && !f.early_peak) {
            (Verdict::Sawtooth, Basis::ResetsWithoutTrend { resets })
        } else if f.early_peak && f.peak > 1.25 * f.start.max(f.end) && f.falls_after_peak {
            (
                Verdict::WarmUp,
                Basis::PeakedThenFell {
                    peak_at: f.peak_frac,
                    end_of_peak: f.end / f.peak,
                },
            )
        } else if f.p_down < ALPHA && f.rate < 0.0 {
            (Verdict::Shrinking, Basis::Decreasing)
        } else if let Some(basis) = stopped_at_knee.filter(|_| p_up < ALPHA) {
            // Rose for a while then flat for most of the run: the median slope is 0.
            (Verdict::Plateau, basis)
        } else if p_up < ALPHA && f.growth > 0.0 {
            // Mostly flat with a step or two up (typical of one heap-profile sample
            // appearing): the pairs that straddle the step make Mann-Kendall significant,
            // but most slopes are zero, so there is no rate to call a trend.
            (
                Verdict::Steady,
                Basis::TooFewSteps {
                    growth: f.growth,
                    p: p_up,
                },
            )
        } else {
            (Verdict::Steady, Basis::NoTrend { p: p_up })
        }
    } else if resets >= 2 && !f.floor_rising {
        (Verdict::Sawtooth, Basis::ResetsToFlatFloor { resets })
    } else if f.early_peak && f.late <= 0.1 * f.rate {
        (
            Verdict::WarmUp,
            Basis::RoseEarly {
                peak_at: f.peak_frac,
            },
        )
    } else if let Some(basis) = stopped_at_knee {
        (Verdict::Plateau, basis)
    } else if f.slowing_beyond_chance
        && ((f.late_ratio < 0.25 && !f.late_significant && f.last_high < 0.75)
            || (f.decel < 0.2 && f.late_mk.p_increasing() > 0.01 && f.last_high < 0.9))
    {
        (
            Verdict::Plateau,
            Basis::Slowed {
                late_ratio: f.late_ratio,
                decel: f.decel,
            },
        )
    } else if f.slowing_beyond_chance && (f.late_ratio < 0.5 || f.decel < 0.2) && f.last_high < 0.9
    {
        (
            Verdict::PossibleLeak,
            Basis::Slowing {
                p: p_up,
                late_ratio: f.late_ratio,
            },
        )
    } else {
        let still_growing = f.late_ratio >= 0.5 && f.decel >= 0.2;
        (
            Verdict::Leak,
            Basis::SustainedGrowth {
                p: p_up,
                tau: f.mk.tau(),
                slower_at_end: (!still_growing).then_some(f.late_ratio),
                floor_rising: f.floor_rising,
            },
        )
    }
}

/// The verdict, reason and reported rate of a series (see the module docs).
pub fn classify(f: &Features) -> Classified {
    let (verdict, basis) = shape(f);
    let reason = Reason::new(basis);
    // Effect size: growth that is significant but tiny next to what the site already held
    // (long captures make drift of a fraction of a percent significant) is not called a
    // leak; it stays a possible one, with confidence scaled by how small it is.
    let relative = if f.level > 0.0 {
        f.growth / f.level
    } else {
        f64::INFINITY
    };
    // Growth that began late shows at the very end before it moves the end level (the
    // median of the last 20%), so a leak's effect size also looks at the last 10%.
    let leak_relative = if f.level > 0.0 {
        f.growth.max(f.recent_growth) / f.level
    } else {
        f64::INFINITY
    };
    let small_effect =
        (verdict.is_leak() && leak_relative < MIN_RELATIVE_GROWTH).then_some(leak_relative);
    let (verdict, reason) = if let Some(relative) = small_effect {
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
    let (rate, reason) = if verdict.is_leak() && f.recent > 1.5 * f.rate.max(0.0) {
        (
            f.recent,
            reason.with(Qualifier::SpedUp {
                recent: f.recent,
                whole: f.rate,
            }),
        )
    } else {
        (f.rate, reason)
    };
    Classified {
        verdict,
        reason,
        small_effect,
        rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reason::ReasonCode;

    /// A series growing 10 units/h from a level of `level`, significant, still going.
    fn growing(level: f64) -> Features {
        Features {
            hours: 10.0,
            rate: 10.0,
            late: 10.0,
            early: 10.0,
            recent: 10.0,
            p_up: 1e-6,
            p_down: 1.0,
            growth: 100.0,
            recent_growth: 100.0,
            level,
            start: level,
            end: level + 100.0,
            peak: level + 100.0,
            peak_frac: 1.0,
            last_high: 1.0,
            late_ratio: 1.0,
            decel: 1.0,
            ..Features::default()
        }
    }

    #[test]
    fn sustained_growth_is_a_leak_and_a_speed_up_reports_the_recent_rate() {
        let c = classify(&growing(1000.0));
        assert_eq!(c.verdict, Verdict::Leak);
        assert_eq!(c.reason.code(), ReasonCode::SustainedGrowth);
        assert_eq!((c.rate, c.small_effect), (10.0, None));
        let c = classify(&Features {
            recent: 40.0,
            ..growing(1000.0)
        });
        assert_eq!(c.rate, 40.0);
        assert!(c.reason.has(|q| matches!(q, Qualifier::SpedUp { .. })));
    }

    #[test]
    fn growth_tiny_next_to_its_level_is_only_a_possible_leak() {
        let c = classify(&growing(1e6));
        assert_eq!(c.verdict, Verdict::PossibleLeak);
        assert_eq!(c.reason.code(), ReasonCode::SmallEffect);
        assert_eq!(c.small_effect, Some(1e-4));
    }

    #[test]
    fn no_trend_with_resets_is_a_sawtooth_and_zero_is_steady() {
        let f = Features {
            p_up: 0.4,
            resets: 3,
            ..growing(1000.0)
        };
        assert_eq!(
            shape(&f),
            (Verdict::Sawtooth, Basis::ResetsWithoutTrend { resets: 3 })
        );
        assert_eq!(
            shape(&Features::default()),
            (Verdict::Steady, Basis::AlwaysZero)
        );
    }

    #[test]
    fn a_knee_over_most_of_the_run_is_a_plateau() {
        let f = Features {
            stopped_at_knee: Some((0.3, 50.0, 0.5)),
            ..growing(1000.0)
        };
        let (v, b) = shape(&f);
        assert_eq!(v, Verdict::Plateau);
        assert_eq!(b.code(), ReasonCode::StoppedAtKnee);
    }
}
