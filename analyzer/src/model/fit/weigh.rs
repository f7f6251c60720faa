//! Weighing a would-be leak against the evidence behind it (see [`crate::model::evidence`]):
//! growth in one or two jumps is a step; a site that kept allocating but stopped retaining
//! is a plateau; too few observations or quanta, one cycle of a possible batch, a load
//! wave, growth within one GC cycle's garbage or no clear growth at the end make it
//! `growing`.

use super::run::RunFit;
use super::Verdict;
use crate::model::evidence::{self, AllocCheckpoints, Retention, SeriesContext, Shortfall};
use crate::model::reason::{Basis, Qualifier, Reason};

/// A verdict with its reason and confidence, as it stands at one step of the judgement.
pub(super) struct Judged {
    pub(super) verdict: Verdict,
    pub(super) reason: Reason,
    pub(super) confidence: f64,
}

/// What [`weigh_evidence`] looks at beyond the verdict.
pub(super) struct EvidenceInput<'a> {
    pub(super) fits: &'a [RunFit],
    pub(super) allocs: &'a [AllocCheckpoints],
    pub(super) ctx: &'a SeriesContext,
    pub(super) quantum: Option<f64>,
    pub(super) quanta: f64,
    pub(super) observations: usize,
    pub(super) late_significant: bool,
    /// In-use growth over the runs (start level to end level, runs added up).
    pub(super) growth: f64,
}

/// Checks a leak verdict against the evidence behind it (see [`crate::model::evidence`]): growth
/// in one or two jumps is a step, not a trend; a site that kept allocating but stopped
/// retaining is a plateau; too few observations or quanta, one cycle of a possible batch,
/// or no clear growth at the end make it `growing`.
pub(super) fn weigh_evidence(
    j: Judged,
    e: &EvidenceInput,
) -> (Judged, Option<Shortfall>, Option<Retention>) {
    if !j.verdict.is_leak() {
        return (j, None, None);
    }
    let growing = |j: Judged, s: Shortfall| {
        let judged = Judged {
            verdict: Verdict::Growing,
            reason: j.reason.with(Qualifier::TooEarly(s)),
            confidence: super::confidence::capped(j.confidence),
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
            confidence: super::confidence::capped(j.confidence),
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
    if let Some(window) = turnover(e) {
        let s = Shortfall::Turnover {
            growth: e.growth,
            per_observation: window,
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

/// The allocations between two observations ([`evidence::turnover_window`]) when the
/// growth is no larger and the series scatters like garbage (tau below
/// [`evidence::TURNOVER_MAX_TAU`]): garbage of one GC cycle could account for it. Only where
/// every fitted run has its allocation totals.
fn turnover(e: &EvidenceInput) -> Option<f64> {
    if e.allocs.len() != e.fits.len() || within_run_tau(e.fits) >= evidence::TURNOVER_MAX_TAU {
        return None;
    }
    let points: Vec<usize> = e.fits.iter().map(|f| f.points).collect();
    evidence::turnover_window(e.allocs, &points).filter(|w| e.growth <= *w)
}

/// Kendall's tau over the pairs within each run. A combined statistic's `tau()` divides by
/// every pair of points across runs too, which no run compares: two runs of 60 points each
/// rising steadily read 0.45 that way, 0.9 this way.
fn within_run_tau(fits: &[RunFit]) -> f64 {
    let (s, pairs) = fits.iter().fold((0.0, 0.0), |(s, pairs), f| {
        (s + f.mk.s, pairs + f.mk.pairs())
    });
    if pairs > 0.0 {
        s / pairs
    } else {
        0.0
    }
}
