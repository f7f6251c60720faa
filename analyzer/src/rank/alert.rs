//! Alert thresholds shared by `check` and `watch`: which findings of a [`Ranking`] are
//! leaks fast and certain enough to fail a check or to post an alert.

use super::{Finding, Ranking};
use crate::model::fit::Verdict;
use crate::model::metric::Metric;

/// A threshold flag whose value does not parse or is out of range.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {reason}")]
pub struct ThresholdError {
    /// The flag, e.g. `--max-growth`.
    pub flag: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

/// When a finding counts: leak verdict, confidence and rate limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Largest acceptable growth of a byte metric, bytes per hour.
    pub max_bytes_per_hour: f64,
    /// Largest acceptable goroutine growth, goroutines per hour.
    pub max_goroutines_per_hour: f64,
    /// Smallest confidence (0..1) for a finding to count.
    pub min_confidence: f64,
    /// Whether `growing` findings (too early to tell) above the rate limit count too,
    /// whatever their confidence.
    pub include_growing: bool,
}

impl Thresholds {
    /// Parses the flag values (`5MiB/h`, `100/h`, `0.95`), naming the flag on error.
    pub fn parse(
        max_growth: &str,
        max_goroutine_growth: &str,
        min_confidence: f64,
    ) -> Result<Thresholds, ThresholdError> {
        let rate = |flag: &'static str, text: &str| {
            let v =
                crate::units::parse_rate(text).map_err(|reason| ThresholdError { flag, reason })?;
            if v.is_nan() || v < 0.0 {
                return Err(ThresholdError {
                    flag,
                    reason: format!("'{text}': must not be negative"),
                });
            }
            Ok(v)
        };
        let max_bytes_per_hour = rate("--max-growth", max_growth)?;
        let max_goroutines_per_hour = rate("--max-goroutine-growth", max_goroutine_growth)?;
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(ThresholdError {
                flag: "--min-confidence",
                reason: format!("'{min_confidence}': must be between 0 and 1"),
            });
        }
        Ok(Thresholds {
            max_bytes_per_hour,
            max_goroutines_per_hour,
            min_confidence,
            include_growing: false,
        })
    }

    /// The rate limit (units per hour) of a metric; object counts never alert on their own.
    pub fn limit(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Goroutines => self.max_goroutines_per_hour,
            Metric::InuseObjects => f64::INFINITY,
            Metric::InuseSpace | Metric::Native => self.max_bytes_per_hour,
        }
    }

    /// Whether a finding is a leak above its metric's limit with enough confidence.
    pub fn crosses(&self, f: &Finding) -> bool {
        let counts = match f.fit.verdict {
            Verdict::Growing => self.include_growing,
            v => v.is_leak() && f.fit.confidence >= self.min_confidence,
        };
        counts && f.fit.rate_per_hour > self.limit(f.metric)
    }
}

/// A finding above the thresholds, with the limit it crossed.
#[derive(Debug, Clone, Copy)]
pub struct Crossing<'a> {
    /// The finding.
    pub finding: &'a Finding,
    /// The limit of its metric, units per hour.
    pub limit: f64,
}

/// Every leak finding above the thresholds, in the ranking's combined order.
pub fn crossings<'a>(r: &'a Ranking, t: &Thresholds) -> Vec<Crossing<'a>> {
    r.findings
        .iter()
        .filter(|f| t.crosses(f))
        .map(|f| Crossing {
            finding: f,
            limit: t.limit(f.metric),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_thresholds() {
        let t = Thresholds::parse("5MiB/h", "100/h", 0.95).unwrap();
        assert_eq!(t.max_bytes_per_hour, 5.0 * 1024.0 * 1024.0);
        assert_eq!(t.limit(Metric::Goroutines), 100.0);
        assert_eq!(t.limit(Metric::Native), t.max_bytes_per_hour);
        assert!(t.limit(Metric::InuseObjects).is_infinite());
        let e = Thresholds::parse("5MiB/fortnight", "100/h", 0.95).unwrap_err();
        assert!(e.to_string().starts_with("--max-growth "), "{e}");
        let e = Thresholds::parse("5MiB/h", "-3/h", 0.95).unwrap_err();
        assert!(e.to_string().starts_with("--max-goroutine-growth "), "{e}");
        let e = Thresholds::parse("5MiB/h", "100/h", 1.5).unwrap_err();
        assert!(e.to_string().starts_with("--min-confidence "), "{e}");
        assert!(Thresholds::parse("5MiB/h", "100/h", f64::NAN).is_err());
    }
}
