//! How sure a verdict is. A leak's confidence starts from its trend test, scaled by how
//! much the growth kept up to the end and by its effect size; the evidence behind it
//! ([`crate::model::evidence::leak_evidence_factor`]) scales it further. Non-leaks get how
//! sure of growth they are, halved and kept below 0.5.

use super::classify::Classified;
use super::features::Features;
use super::{Verdict, MIN_RELATIVE_GROWTH};

/// How much the growth kept up to the end (0..1); late slowing within chance does not count.
pub fn persistence(f: &Features) -> f64 {
    if f.slowing_beyond_chance {
        (f.late_ratio / 0.75)
            .max((f.last_high - 0.5) / 0.4)
            .clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// The confidence of a classified series, before the evidence is weighed.
pub fn of(f: &Features, c: &Classified) -> f64 {
    let trend = (1.0 - f.p_up) * persistence(f);
    let base = match c.verdict {
        Verdict::Leak | Verdict::PossibleLeak => trend,
        Verdict::Plateau | Verdict::Sawtooth | Verdict::WarmUp => (trend * 0.5).min(0.49),
        _ => 0.0,
    };
    match c.small_effect {
        Some(relative) => base * (relative / MIN_RELATIVE_GROWTH).clamp(0.0, 1.0),
        None => base,
    }
}

/// Confidence of a series judged `growing` or turned into a plateau by its allocations:
/// how sure of growth, capped like the other non-leaks.
pub fn capped(c: f64) -> f64 {
    (c * 0.5).min(0.49)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::reason::{Basis, Reason};

    fn classified(verdict: Verdict, small_effect: Option<f64>) -> Classified {
        Classified {
            verdict,
            reason: Reason::new(Basis::Decreasing),
            small_effect,
            rate: 1.0,
        }
    }

    #[test]
    fn a_leak_is_as_sure_as_its_trend_scaled_by_persistence_and_effect() {
        let f = Features {
            p_up: 0.01,
            ..Features::default()
        };
        assert!((of(&f, &classified(Verdict::Leak, None)) - 0.99).abs() < 1e-12);
        let half = of(&f, &classified(Verdict::PossibleLeak, Some(0.025)));
        assert!((half - 0.495).abs() < 1e-12, "{half}");
        let slowed = Features {
            slowing_beyond_chance: true,
            late_ratio: 0.375,
            last_high: 0.5,
            ..f
        };
        assert!((persistence(&slowed) - 0.5).abs() < 1e-12);
        assert!(of(&f, &classified(Verdict::Plateau, None)) <= 0.49);
        assert_eq!(of(&f, &classified(Verdict::Steady, None)), 0.0);
        assert_eq!(capped(0.99), 0.49);
    }
}
