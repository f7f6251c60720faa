//! Why a verdict was reached, as data: the finding that decided it (a [`Basis`] with its
//! numbers) and the qualifications added on the way (a list of [`Qualifier`]s, in the
//! order they were made). The stable [`ReasonCode`] follows from them; the words are
//! [`crate::output::words::reason`].

use serde::Serialize;

use super::evidence::{Retention, Shortfall};

/// What a verdict rests on: a stable code for scripts and alert state (serialized in
/// kebab-case, e.g. `sustained-growth`); the finding's `reason` gives the numbers in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    /// Significant growth, still going at the end.
    SustainedGrowth,
    /// Significant growth that slowed by more than chance allows (possible leak).
    Slowing,
    /// Significant growth too small next to the site's level (possible leak).
    SmallEffect,
    /// Grew, but the evidence is short of a leak (`growing`; see the finding's shortfall).
    TooEarly,
    /// Not significant once every series ranked together is counted.
    NotSignificantAcrossSites,
    /// Go's goroutine leak detector reports these goroutines.
    RuntimeLeakDetector,
    /// Growth stopped at a fitted knee (plateau).
    StoppedAtKnee,
    /// The last part of the run grows far slower than the rest, beyond chance (plateau).
    Slowed,
    /// Allocations continued but were no longer retained (plateau).
    StoppedRetaining,
    /// Allocations stopped (plateau).
    AllocationsStopped,
    /// Resets to a floor that does not rise (sawtooth).
    Resets,
    /// An early peak, then flat or falling (warm-up).
    PeakedThenFell,
    /// A significant decrease (shrinking).
    Decreasing,
    /// One or two jumps, flat between (steady).
    OneTimeStep,
    /// Rose in too few steps to have a median slope (steady).
    TooFewSteps,
    /// A level change too small to matter (steady).
    SmallChange,
    /// No significant trend (steady).
    NoTrend,
    /// Always zero (steady).
    AlwaysZero,
    /// Too few points to judge.
    TooFewPoints,
}

/// The finding that decided a verdict, with its numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Basis {
    /// The series is always zero.
    AlwaysZero,
    /// No trend, and this many resets to a flat floor (sawtooth).
    ResetsWithoutTrend {
        /// Resets seen.
        resets: usize,
    },
    /// A growth trend, but this many resets back to a floor that does not rise (sawtooth).
    ResetsToFlatFloor {
        /// Resets seen.
        resets: usize,
    },
    /// No trend: an early peak, then a fall (warm-up).
    PeakedThenFell {
        /// Where the peak is, as a share of the run (0..1).
        peak_at: f64,
        /// The end level as a share of the peak.
        end_of_peak: f64,
    },
    /// A growth trend that all happened early: peak early, then flat or falling (warm-up).
    RoseEarly {
        /// Where the peak is, as a share of the run (0..1).
        peak_at: f64,
    },
    /// A significant decrease.
    Decreasing,
    /// Growth stopped at a fitted knee.
    StoppedAtKnee {
        /// Where the knee is, as a share of the run (0..1).
        at: f64,
        /// Slope before the knee, units per hour.
        before: f64,
        /// Slope after the knee, units per hour.
        after: f64,
    },
    /// A significant rise, in too few steps to have a median slope.
    TooFewSteps {
        /// Rise over the runs.
        growth: f64,
        /// Mann-Kendall p-value of an increasing trend.
        p: f64,
    },
    /// No significant trend.
    NoTrend {
        /// Mann-Kendall p-value of an increasing trend.
        p: f64,
    },
    /// The last 40% of the run grows far slower than the rest, beyond chance.
    Slowed {
        /// Late slope over the whole-run slope.
        late_ratio: f64,
        /// Late slope over the early slope.
        decel: f64,
    },
    /// Significant growth that slowed by more than chance allows.
    Slowing {
        /// Mann-Kendall p-value of an increasing trend.
        p: f64,
        /// Late slope over the whole-run slope.
        late_ratio: f64,
    },
    /// Significant growth, still going at the end.
    SustainedGrowth {
        /// Mann-Kendall p-value of an increasing trend.
        p: f64,
        /// Kendall's tau.
        tau: f64,
        /// The late slope over the whole-run slope, when the end was slower (within what
        /// sampling noise allows); `None` when still growing at the end.
        slower_at_end: Option<f64>,
        /// The floor under the growth rises too.
        floor_rising: bool,
    },
    /// A level change too small to matter.
    SmallChange {
        /// Change from start to end, relative to the starting level.
        relative: f64,
        /// The smallest relative change that counts.
        floor: f64,
    },
    /// One or two jumps, flat between them.
    OneTimeStep {
        /// Jumps seen.
        jumps: usize,
        /// The largest jump.
        largest: f64,
    },
    /// The site kept allocating but stopped retaining, or stopped allocating.
    StoppedRetaining(Retention),
    /// Too few points in every run.
    TooFewPoints {
        /// Points one run needs.
        need: usize,
    },
}

/// A qualification added to a verdict after its basis.
#[derive(Debug, Clone, PartialEq)]
pub enum Qualifier {
    /// A leak trend demoted because the growth is small next to the starting level.
    SmallEffect {
        /// Growth relative to the starting level.
        relative: f64,
        /// The smallest relative growth that counts.
        floor: f64,
    },
    /// Growth sped up part-way; the rate reported is the recent one.
    SpedUp {
        /// Rate since the speed-up, units per hour.
        recent: f64,
        /// Rate over the whole run, units per hour.
        whole: f64,
    },
    /// Not a leak yet: what is missing.
    TooEarly(Shortfall),
    /// Not significant once every series ranked together is counted.
    NotSignificantAcrossSites {
        /// Series tested together.
        tested: usize,
        /// The Benjamini-Hochberg q-value.
        q: f64,
        /// Whether that made the verdict `steady` (else a possible leak).
        steady: bool,
    },
    /// Go's goroutine leak detector reports goroutines of this group.
    RuntimeLeakDetector {
        /// Goroutines reported leaked.
        leaked: f64,
    },
}

/// Why a verdict was reached: its basis and the qualifications added after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// The finding that decided it.
    pub basis: Basis,
    /// Qualifications, in the order they were made.
    pub qualifiers: Vec<Qualifier>,
}

impl Reason {
    /// A reason with no qualifications.
    pub fn new(basis: Basis) -> Reason {
        Reason {
            basis,
            qualifiers: Vec::new(),
        }
    }

    /// This reason with `q` added.
    pub fn with(mut self, q: Qualifier) -> Reason {
        self.qualifiers.push(q);
        self
    }

    /// Whether any qualification matches `pred`.
    pub fn has(&self, pred: impl Fn(&Qualifier) -> bool) -> bool {
        self.qualifiers.iter().any(pred)
    }

    /// The stable code: the last qualification that changed the verdict, else the basis.
    pub fn code(&self) -> ReasonCode {
        self.qualifiers
            .iter()
            .rev()
            .find_map(Qualifier::code)
            .unwrap_or_else(|| self.basis.code())
    }
}

impl Basis {
    /// The stable code of this basis.
    pub fn code(&self) -> ReasonCode {
        match self {
            Basis::AlwaysZero => ReasonCode::AlwaysZero,
            Basis::ResetsWithoutTrend { .. } | Basis::ResetsToFlatFloor { .. } => {
                ReasonCode::Resets
            }
            Basis::PeakedThenFell { .. } | Basis::RoseEarly { .. } => ReasonCode::PeakedThenFell,
            Basis::Decreasing => ReasonCode::Decreasing,
            Basis::StoppedAtKnee { .. } => ReasonCode::StoppedAtKnee,
            Basis::TooFewSteps { .. } => ReasonCode::TooFewSteps,
            Basis::NoTrend { .. } => ReasonCode::NoTrend,
            Basis::Slowed { .. } => ReasonCode::Slowed,
            Basis::Slowing { .. } => ReasonCode::Slowing,
            Basis::SustainedGrowth { .. } => ReasonCode::SustainedGrowth,
            Basis::SmallChange { .. } => ReasonCode::SmallChange,
            Basis::OneTimeStep { .. } => ReasonCode::OneTimeStep,
            Basis::StoppedRetaining(r) if r.allocations_stopped => ReasonCode::AllocationsStopped,
            Basis::StoppedRetaining(_) => ReasonCode::StoppedRetaining,
            Basis::TooFewPoints { .. } => ReasonCode::TooFewPoints,
        }
    }
}

impl Qualifier {
    /// The code this qualification gives the verdict, if it changed it.
    pub fn code(&self) -> Option<ReasonCode> {
        match self {
            Qualifier::SmallEffect { .. } => Some(ReasonCode::SmallEffect),
            Qualifier::SpedUp { .. } => None,
            Qualifier::TooEarly(_) => Some(ReasonCode::TooEarly),
            Qualifier::NotSignificantAcrossSites { .. } => {
                Some(ReasonCode::NotSignificantAcrossSites)
            }
            Qualifier::RuntimeLeakDetector { .. } => Some(ReasonCode::RuntimeLeakDetector),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_the_last_qualifier_that_changed_the_verdict() {
        let r = Reason::new(Basis::SustainedGrowth {
            p: 1e-6,
            tau: 0.9,
            slower_at_end: None,
            floor_rising: false,
        });
        assert_eq!(r.code(), ReasonCode::SustainedGrowth);
        let r = r.with(Qualifier::SpedUp {
            recent: 2.0,
            whole: 1.0,
        });
        assert_eq!(
            r.code(),
            ReasonCode::SustainedGrowth,
            "a speed-up keeps the code"
        );
        let r = r.with(Qualifier::TooEarly(Shortfall::NoLateGrowth {
            late_quanta: 1.0,
        }));
        assert_eq!(r.code(), ReasonCode::TooEarly);
        let r = r.with(Qualifier::RuntimeLeakDetector { leaked: 3.0 });
        assert_eq!(r.code(), ReasonCode::RuntimeLeakDetector);
        assert!(r.has(|q| matches!(q, Qualifier::SpedUp { .. })));
    }

    #[test]
    fn retention_codes_follow_whether_allocations_stopped() {
        let mut ret = Retention {
            early: 0.5,
            late: 0.0,
            late_allocated: 40.0,
            p: 1e-5,
            allocations_stopped: false,
        };
        assert_eq!(
            Basis::StoppedRetaining(ret).code(),
            ReasonCode::StoppedRetaining
        );
        ret.allocations_stopped = true;
        assert_eq!(
            Basis::StoppedRetaining(ret).code(),
            ReasonCode::AllocationsStopped
        );
    }
}
