//! Typed results in words: why a verdict was reached ([`reason`]), what is missing for a
//! decision ([`shortfall`]) and what the stacks suggest ([`hint`]), as likelihoods. Every sentence people read about a verdict is written
//! here, from the numbers the model returns.

use std::fmt::Write as _;

use crate::model::evidence::{Shortfall, LATE_SHARE};
use crate::model::hints::{Hint, SubSlice};
use crate::model::reason::{Basis, Qualifier, Reason};
use crate::units::{compact, format_bytes};

/// A share as a whole percentage (`0.4` is `40%`).
fn pct(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

/// Why a verdict was reached: its basis, then each qualification in order.
pub fn reason(r: &Reason) -> String {
    let mut out = basis(&r.basis);
    for q in &r.qualifiers {
        qualifier(q, &mut out);
    }
    out
}

/// The basis of a verdict in words.
pub fn basis(b: &Basis) -> String {
    match b {
        Basis::AlwaysZero => "always zero".to_string(),
        Basis::ResetsWithoutTrend { resets } => {
            format!("{resets} resets to a flat floor, no overall trend")
        }
        Basis::ResetsToFlatFloor { resets } => format!(
            "{resets} resets back to a floor that does not rise: periodic flush, not a leak"
        ),
        Basis::PeakedThenFell {
            peak_at,
            end_of_peak,
        } => format!(
            "peaked {} of the way through, then fell to {} of the peak",
            pct(*peak_at),
            pct(*end_of_peak)
        ),
        Basis::RoseEarly { peak_at } => format!(
            "rose early (peak {} of the way through), then flat or falling",
            pct(*peak_at)
        ),
        Basis::Decreasing => "decreasing trend".to_string(),
        Basis::StoppedAtKnee { at, before, after } => format!(
            "grew, then stopped: {} of the way through the run the slope fell from {}/h to {}/h",
            pct(*at),
            compact(*before),
            compact(*after)
        ),
        Basis::TooFewSteps { growth, p } => format!(
            "rose {} in too few steps to call a trend: the median slope is 0 (Mann-Kendall p = {p:.2})",
            compact(*growth)
        ),
        Basis::NoTrend { p } => format!("no significant trend (Mann-Kendall p = {p:.2})"),
        Basis::Slowed { late_ratio, decel } => format!(
            "grew, then stopped: the last 40% of the run grows at {} of the overall rate and {} of the early rate",
            pct(late_ratio.max(0.0)),
            pct(decel.clamp(0.0, 9.99))
        ),
        Basis::Slowing { p, late_ratio } => format!(
            "significant growth (p = {p:.1e}) but slowing: late rate is {} of the overall rate",
            pct(*late_ratio)
        ),
        Basis::SustainedGrowth {
            p,
            tau,
            slower_at_end,
            floor_rising,
        } => {
            let end = match slower_at_end {
                None => "still growing at the end".to_string(),
                Some(late_ratio) => format!(
                    "slower at the end ({} of the overall rate) but no more than sampling noise allows",
                    pct(late_ratio.max(0.0))
                ),
            };
            let floor = if *floor_rising { ", floor rising" } else { "" };
            format!("sustained growth (Mann-Kendall p = {p:.1e}, tau = {tau:.2}), {end}{floor}")
        }
        Basis::SmallChange { relative, floor } => format!(
            "level changed by only {:+.1}% from start to end (under {:.0}%): no trend that matters",
            relative * 100.0,
            floor * 100.0
        ),
        Basis::OneTimeStep { jumps, largest } => format!(
            "moved in {jumps} jump(s) (the largest {}) and flat between: a one-time change such as a reload or a resize, not a trend",
            compact(*largest)
        ),
        Basis::StoppedRetaining(r) => {
            let why = if r.allocations_stopped {
                "grew, then its allocations stopped".to_string()
            } else {
                format!(
                    "grew, then kept allocating ({:.0} sampled allocations) but stopped retaining: {:.0}% kept before, {:.0}% after (a cache, pool or ring at capacity)",
                    r.late_allocated,
                    r.early * 100.0,
                    r.late * 100.0
                )
            };
            format!("{why}; chance under a steady share p = {:.1e}", r.p)
        }
        Basis::TooFewPoints { need } => {
            format!("fewer than {need} points in every run: not enough data to judge")
        }
    }
}

/// Appends a qualification in words to `out`.
fn qualifier(q: &Qualifier, out: &mut String) {
    let _ = match q {
        Qualifier::SmallEffect { relative, floor } => write!(
            out,
            "; but it grew only {:.1}% over its starting level (under {:.0}%)",
            relative * 100.0,
            floor * 100.0
        ),
        Qualifier::SpedUp { recent, whole } => write!(
            out,
            "; growth sped up part-way: {}/h since then, {}/h over the whole run",
            compact(*recent),
            compact(*whole)
        ),
        Qualifier::TooEarly(s) => write!(out, "; too early to tell: {}", shortfall(s)),
        Qualifier::NotSignificantAcrossSites {
            tested,
            q,
            steady: true,
        } => write!(
            out,
            ", but not significant once {tested} series are tested together (q = {q:.2}): steady"
        ),
        Qualifier::NotSignificantAcrossSites {
            tested,
            q,
            steady: false,
        } => write!(
            out,
            "; but not significant once {tested} series are tested together (q = {q:.2})"
        ),
        Qualifier::RuntimeLeakDetector { leaked } => write!(
            out,
            "; the runtime's goroutine leak detector reports {leaked:.0} leaked"
        ),
    };
}

/// What kept a growing series from being called a leak, in words.
pub fn shortfall(s: &Shortfall) -> String {
    match s {
        Shortfall::FewObservations { have, need } => format!(
            "{have} independent observations (distinct heap profiles or scrapes), {need} needed"
        ),
        Shortfall::OneCycle { period_hours } => format!(
            "one drop seen, {:.0} s in: a batch flushed that often needs two cycles to show whether its floor rises",
            period_hours * 3600.0
        ),
        Shortfall::DippedMidRun { dip_hours } => format!(
            "it fell well below its starting level {:.0} s in, then rose: memory that follows load swings like this, and another swing tells",
            dip_hours * 3600.0
        ),
        Shortfall::Turnover {
            growth,
            per_observation,
        } => format!(
            "it grew by {}, no more than the {} it allocates between two heap profiles: objects allocated while a GC runs read as in use until the next one, so this may be garbage not yet collected",
            compact(*growth),
            compact(*per_observation)
        ),
        Shortfall::FewQuanta {
            have,
            need,
            quantum,
        } => format!(
            "it grew by {have:.1} sampling quanta of {} ({need} needed)",
            compact(*quantum)
        ),
        Shortfall::NoLateGrowth { late_quanta } => format!(
            "the last {:.0}% of the recording rose by {late_quanta:.1} quanta, too few to tell a stop from a gap between samples",
            LATE_SHARE * 100.0
        ),
    }
}

/// A hint in words, as a likelihood.
pub fn hint(h: &Hint) -> String {
    match h {
        Hint::RuntimeReportedLeaked { goroutines } => format!(
            "Go's goroutine leak detector (goroutineleak profile) reports {goroutines:.0} of these goroutines as blocked forever on unreachable synchronization"
        ),
        Hint::HttpClientConnections => "goroutines of HTTP client connections keep accumulating: likely response bodies never closed (defer resp.Body.Close()) or a new http.Transport per request".into(),
        Hint::ParkedOnChannel { select } => format!(
            "goroutines parked on a channel {} keep accumulating: likely nobody ever sends or closes (add a done/context case or close the channel)",
            if *select { "select" } else { "receive" }
        ),
        Hint::BlockedSending => "goroutines blocked sending on a channel keep accumulating: likely the receiver is gone (buffer the channel or select on a done channel)".into(),
        Hint::BlockedOnLock => "goroutines blocked on a lock or WaitGroup keep accumulating: likely a missing Unlock/Done".into(),
        Hint::WaitingOnNetwork => "goroutines waiting on network I/O keep accumulating: likely connections or response bodies never closed, or no read deadline".into(),
        Hint::SleepingInLoop => "goroutines sleeping in a loop keep accumulating: likely workers started per request without a stop condition".into(),
        Hint::TickerNeverStopped => "the same code creates time.Ticker/Timer values: likely a ticker never stopped (defer ticker.Stop()) or a goroutine looping on ticker.C with no exit".into(),
        Hint::GoroutineDescriptors => "these are goroutine descriptors and stacks made by `go` statements (runtime.newproc): likely goroutines that never exit; the goroutine section shows where they are blocked".into(),
        Hint::TimerAllocations => "allocations come from time.NewTicker/time.After: likely tickers or timers created repeatedly and never stopped".into(),
        Hint::MapOnlyGrows => "the growth is map storage: likely a map that only grows (entries added, never deleted); bound it or evict".into(),
        Hint::MapAssignment { line, text } => format!(
            "the growing allocation is at `{text}` (line {line}): likely a map that only grows (entries added, never deleted); bound it or evict"
        ),
        Hint::LargeObjects { size, evidence } => {
            let size = format_bytes(*size);
            match evidence {
                SubSlice::Sliced(line, text) => format!(
                    "live objects here average {size} each and `{text}` (line {line}) keeps a slice of the buffer: likely sub-slice retention, the whole backing array stays alive as long as the small slice does (copy the bytes you keep with bytes.Clone or append([]byte(nil), b[i:j]...))"
                ),
                SubSlice::NotSliced => format!(
                    "live objects here average {size} each and the allocating function keeps them whole: likely large buffers held in a collection that only grows; if callers keep only small sub-slices of them, copy those bytes instead"
                ),
                SubSlice::Unknown => format!(
                    "live objects here average {size} each: if callers keep only small sub-slices of these buffers, the whole backing array stays alive (copy the bytes you keep with bytes.Clone or append([]byte(nil), b[i:j]...))"
                ),
            }
        }
        Hint::CgoWrappers => "the stack crosses into C (cgo): Go-side wrappers grow here; check the C side with --native".into(),
        Hint::NativeUnfreed => "C memory allocated without a matching free: invisible to Go's GC and to pprof".into(),
        Hint::CgoMissingFree => "called from Go through cgo: check that every C.malloc/C.CString result is passed to C.free".into(),
    }
}

/// Every hint of a finding in words, most specific first.
pub fn hints(h: &crate::model::hints::Hints) -> Vec<String> {
    h.0.iter().map(hint).collect()
}

/// The one line that best says why a finding matters: its most specific hint, else the
/// reason for its verdict.
pub fn why(f: &crate::rank::Finding) -> String {
    f.hints
        .0
        .first()
        .map_or_else(|| reason(&f.fit.reason), hint)
}

/// A rate per hour in the metric's unit.
pub fn format_rate(metric: crate::model::metric::Metric, v: f64) -> String {
    use crate::model::metric::Metric;
    match metric {
        Metric::InuseSpace | Metric::Native => format!("{}/h", format_bytes(v)),
        Metric::Goroutines => format!("{v:.0} goroutines/h"),
        Metric::InuseObjects => format!("{v:.0} objects/h"),
    }
}

/// The process-level finding (RSS versus Go's accounting) in words.
pub fn process(f: &crate::source::process::ProcessFinding) -> String {
    use crate::source::process::ProcessFinding as P;
    match *f {
        P::NoRss => "no RSS samples (the recorder had no PID for the target): process-level memory not analysed".into(),
        P::RssNotGrowing { verdict, rss_per_hour } => format!(
            "RSS is not growing steadily ({}; {}/h)",
            verdict.label(),
            format_bytes(rss_per_hour)
        ),
        P::GoShareUnknown { rss_per_hour } => format!(
            "RSS grows {}/h; no Go MemStats were recorded, so the Go share is unknown",
            format_bytes(rss_per_hour)
        ),
        P::OutsideGo {
            rss_per_hour,
            heap_per_hour,
            stacks_per_hour,
            unexplained_per_hour,
        } => format!(
            "memory Go cannot see: RSS grows {}/h while the Go heap grows {}/h and goroutine stacks {}/h; {}/h ({:.0}% of the growth) is outside Go's accounting: likely native (CGO/C) allocations, or fragmentation/retained spans",
            format_bytes(rss_per_hour),
            format_bytes(heap_per_hour),
            format_bytes(stacks_per_hour),
            format_bytes(unexplained_per_hour),
            100.0 * unexplained_per_hour / rss_per_hour
        ),
        P::ExplainedByGo {
            rss_per_hour,
            heap_per_hour,
            stacks_per_hour,
        } => format!(
            "RSS grows {}/h, mostly explained by the Go heap ({}/h) and goroutine stacks ({}/h): look at the heap and goroutine sections",
            format_bytes(rss_per_hour),
            format_bytes(heap_per_hour),
            format_bytes(stacks_per_hour)
        ),
    }
}

/// How a growth window was chosen, as the report says it.
pub fn window_basis(b: &crate::source::window::WindowBasis) -> String {
    use crate::source::window::WindowBasis;
    match b {
        WindowBasis::LatestRun { capture, run_id } => {
            format!("the latest run ({run_id} of {capture}), first to last profile")
        }
        WindowBasis::FromTo => "--from and --to".into(),
        WindowBasis::FromToLast => "--from, to the last profile".into(),
        WindowBasis::FirstTo => "--to, from the first profile".into(),
    }
}

/// A comparison's verdict for a site in words (`new leak`, `still leaking`, ...).
pub fn change(c: crate::model::compare::Change) -> &'static str {
    use crate::model::compare::Change;
    match c {
        Change::NewLeak => "new leak",
        Change::Worse => "worse",
        Change::StillLeaking => "still leaking",
        Change::Inconclusive => "inconclusive",
        Change::Improved => "improved",
        Change::Fixed => "fixed",
        Change::Unchanged => "unchanged",
    }
}

/// A rate with its confidence interval (`1.2 MiB/h [0.9 MiB/h .. 1.5 MiB/h]`); the rate
/// `rank` reports when the series is too short for an interval; `-` when absent.
pub fn side_rate(
    metric: crate::model::metric::Metric,
    side: &crate::rank::compare::SiteSide,
) -> String {
    match (side.interval(), &side.fit) {
        (Some(i), _) => format!(
            "{} [{} .. {}]",
            format_rate(metric, i.rate_per_hour),
            format_rate(metric, i.low),
            format_rate(metric, i.high)
        ),
        (None, Some(f)) if f.verdict != crate::model::fit::Verdict::TooShort => {
            format_rate(metric, f.rate_per_hour)
        }
        (None, _) => "-".to_string(),
    }
}

/// What one side said about a site (`leak 97%`, `growing, too early to tell`, `absent`).
pub fn side_verdict(side: &crate::rank::compare::SiteSide) -> String {
    match &side.fit {
        Some(f) if f.verdict.is_leak() => format!("{} {}", f.verdict.label(), pct(f.confidence)),
        Some(f) => f.verdict.label().to_string(),
        None if side.state == crate::model::compare::SideState::Absent => "absent".to_string(),
        None => "no data".to_string(),
    }
}

/// How much faster `a` grows than `b` (interval centres), as `3.2x`, when both grow.
fn times(
    a: Option<&crate::model::compare::RateInterval>,
    b: Option<&crate::model::compare::RateInterval>,
) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a.rate_per_hour > 0.0 && b.rate_per_hour > 0.0 => {
            format!(" ({:.1}x)", a.rate_per_hour / b.rate_per_hour)
        }
        _ => String::new(),
    }
}

/// Why the comparison reached its verdict for a site, in one sentence.
pub fn change_why(s: &crate::rank::compare::SiteChange) -> String {
    use crate::model::compare::{Change, RateShift, SideState};
    let (b, a) = (&s.before, &s.after);
    let unsure = |side: &crate::rank::compare::SiteSide, name: &str| match &side.fit {
        Some(f) if f.verdict.is_leak() => format!(
            "{name} is a {} below the confidence asked for ({})",
            f.verdict.label(),
            pct(f.confidence)
        ),
        Some(f) => format!("{name} is {}", f.verdict.label()),
        None => format!(
            "{name} has too few {} profiles to judge it",
            s.metric.kind()
        ),
    };
    match s.change {
        Change::NewLeak if b.state == SideState::Absent => {
            "leaks in AFTER; no samples of it in BEFORE".to_string()
        }
        Change::NewLeak => format!(
            "leaks in AFTER; {} in BEFORE, at a clearly lower rate{}",
            side_verdict(b),
            times(a.interval(), b.interval())
        ),
        Change::Worse => format!(
            "grows clearly faster in AFTER{}: the rate intervals do not overlap",
            times(a.interval(), b.interval())
        ),
        Change::StillLeaking => {
            "leaks on both sides at rates that cannot be told apart".to_string()
        }
        Change::Improved => format!(
            "grows clearly slower in AFTER{}, but {}",
            times(b.interval(), a.interval()).replace("x)", "x slower)"),
            if a.state == SideState::Leaking {
                "still leaks"
            } else {
                "it is too early to tell whether it still leaks"
            }
        ),
        Change::Fixed if a.state == SideState::Absent => {
            "leaked in BEFORE; no samples of it in AFTER".to_string()
        }
        Change::Fixed => format!(
            "leaked in BEFORE; {} in AFTER, at a clearly lower rate",
            side_verdict(a)
        ),
        Change::Unchanged => "not leaking on either side".to_string(),
        Change::Inconclusive => {
            let mut why = Vec::new();
            if b.state == SideState::Unsure {
                why.push(unsure(b, "BEFORE"));
            }
            if a.state == SideState::Unsure {
                why.push(unsure(a, "AFTER"));
            }
            if why.is_empty() {
                // Leaking on one side, flat on the other, rates not told apart.
                why.push(match (b.state, s.rates) {
                    (SideState::Leaking, RateShift::Unknown) => {
                        "AFTER shows no leak, but has no rate interval to compare".to_string()
                    }
                    (SideState::Leaking, _) => format!(
                        "AFTER shows no significant growth ({}), but its rate cannot be told from BEFORE's",
                        side_verdict(a)
                    ),
                    _ => format!(
                        "leaks in AFTER, but BEFORE ({}) cannot rule out the same rate",
                        side_verdict(b)
                    ),
                });
            }
            why.join("; ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reason::{Basis, Qualifier, Reason};

    #[test]
    fn a_reason_reads_as_its_basis_then_its_qualifications() {
        let r = Reason::new(Basis::SustainedGrowth {
            p: 1.5e-7,
            tau: 0.83,
            slower_at_end: None,
            floor_rising: true,
        })
        .with(Qualifier::SpedUp {
            recent: 2_500_000.0,
            whole: 1_000_000.0,
        })
        .with(Qualifier::TooEarly(Shortfall::FewObservations {
            have: 9,
            need: 12,
        }));
        assert_eq!(
            reason(&r),
            "sustained growth (Mann-Kendall p = 1.5e-7, tau = 0.83), still growing at the end, floor rising; \
             growth sped up part-way: 2.5M/h since then, 1M/h over the whole run; \
             too early to tell: 9 independent observations (distinct heap profiles or scrapes), 12 needed"
        );
    }

    #[test]
    fn hints_have_words_and_distinct_codes_per_diagnosis() {
        let h = Hint::LargeObjects {
            size: 65536.0,
            evidence: SubSlice::Sliced(12, "return buf[:16]".into()),
        };
        assert!(
            hint(&h).contains("`return buf[:16]` (line 12)"),
            "{}",
            hint(&h)
        );
        assert_eq!(h.code(), "sub-slice-retention");
        assert_eq!(
            Hint::ParkedOnChannel { select: true }.code(),
            Hint::ParkedOnChannel { select: false }.code()
        );
        assert!(hint(&Hint::ParkedOnChannel { select: true }).contains("channel select"));
    }
}
