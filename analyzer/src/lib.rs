//! leakscope analyzer: SQL over captures, leak ranking of call sites, and reports.
//!
//! The folders show the flow, and which parts do I/O:
//! - [`source`] reads captures (I/O): [`source::catalog`] registers them in DataFusion,
//!   [`source::scan`] reads sample columns straight from Parquet, [`source::load`] turns
//!   samples into per-group series.
//! - [`sql`] is the DataFusion side: running SQL, and leakscope's SQL functions.
//! - [`model`] is pure computation on those series: [`model::fit`] and [`model::evidence`]
//!   judge each series, [`model::hints`] suggests causes, [`model::alert`] holds the
//!   thresholds of `check` and `watch`.
//! - [`rank`] runs the pipeline: source, then model, in parallel with rayon.
//! - [`output`] turns typed results into text, JSON, HTML, PNG and pprof (I/O at the edge).
//! - [`watch`] turns rounds of ranking into webhook alerts, one per site until it changes.

pub mod error;
pub mod model;
pub mod output;
pub mod rank;
pub mod source;
pub mod sql;
pub mod watch;

pub use error::{AnalyzeError, Result};

/// RFC 3339 text (UTC, milliseconds) of a time in ns since the epoch.
pub fn report_time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Hours from `t0` to `t` (both ns since the epoch), exact in sign and never overflowing
/// (a profile stamped `i64::MIN` or `i64::MAX` included).
pub fn hours_between(t0: i64, t: i64) -> f64 {
    (i128::from(t) - i128::from(t0)) as f64 / 3.6e12
}

/// Parses an RFC 3339 time into ns since the epoch.
pub fn parse_time(s: &str) -> std::result::Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map_err(|e| format!("'{s}': not an RFC 3339 time ({e}), e.g. 2026-11-28T06:43:00Z"))?
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("'{s}': out of range"))
}

/// Parses a growth threshold such as `5MiB/h`, `100/h`, `2GiB/d` into units per hour.
pub fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (amount, per) = match t.rsplit_once('/') {
        Some((a, p)) => (a.trim(), p.trim()),
        None => (t, "h"),
    };
    let hours = match per {
        "s" | "sec" => 1.0 / 3600.0,
        "m" | "min" => 1.0 / 60.0,
        "h" | "hour" | "hr" => 1.0,
        "d" | "day" => 24.0,
        _ => {
            return Err(format!(
                "'{s}': unknown time unit '{per}' (use /s, /m, /h or /d)"
            ))
        }
    };
    let value = if let Ok(v) = amount.parse::<f64>() {
        v
    } else {
        amount
            .parse::<bytesize::ByteSize>()
            .map_err(|e| format!("'{s}': {e}"))?
            .as_u64() as f64
    };
    Ok(value / hours)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates() {
        assert_eq!(super::parse_rate("5MiB/h").unwrap(), 5.0 * 1024.0 * 1024.0);
        assert_eq!(super::parse_rate("100/h").unwrap(), 100.0);
        assert_eq!(super::parse_rate("1/m").unwrap(), 60.0);
        assert_eq!(super::parse_rate("48KiB/d").unwrap(), 2048.0);
        assert!(super::parse_rate("5MiB/fortnight").is_err());
        assert!(super::parse_rate("lots/h").is_err());
    }
}
