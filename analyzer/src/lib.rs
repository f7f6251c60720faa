//! leakscope analyzer: SQL over captures, leak ranking of call sites, and reports.
//!
//! The pipeline reads top-down: [`catalog`] registers captures in DataFusion, [`load`]
//! turns samples into per-site series, [`fit`] and [`stats`] judge each series, [`rank`]
//! orders the findings with [`hints`], and [`render`] writes them for people.
//! [`alert`] holds the thresholds of `check` and `watch`; [`watch`] turns rounds of ranking
//! into webhook alerts, one per site until it changes.

pub mod alert;
pub mod calibration;
pub mod catalog;
pub mod cluster;
pub mod conform;
pub mod error;
pub mod evidence;
pub mod export;
pub mod fit;
pub mod hints;
pub mod load;
pub mod output;
pub mod pread;
pub mod process;
pub mod rank;
pub mod render;
pub mod report;
pub mod scan;
pub mod site;
pub mod sql;
pub mod stats;
pub mod store;
pub mod udf;
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
