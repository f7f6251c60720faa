//! Numbers, sizes, rates and times for people and from people: formatting (bytes,
//! compact numbers, RFC 3339 times) and parsing (rates such as `5MiB/h`, RFC 3339). Pure.

/// Formats a byte count with binary units (`1.5 MiB`); used by SQL and every output.
pub fn format_bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let sign = if v < 0.0 { "-" } else { "" };
    let mut x = v.abs();
    let mut u = 0;
    while x >= 1024.0 && u < UNITS.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{sign}{x:.0} B")
    } else {
        format!("{sign}{x:.1} {}", UNITS[u])
    }
}

/// A number in 3 significant digits with a k/M/G suffix (unit-free).
pub fn compact(v: f64) -> String {
    let a = v.abs();
    let (d, suffix) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let text = format!("{:.3}", v / d);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

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
    fn compact_numbers() {
        assert_eq!(super::compact(142_600_000.0), "142.6M");
        assert_eq!(super::compact(0.0), "0");
        assert_eq!(super::compact(-1500.0), "-1.5k");
    }

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
