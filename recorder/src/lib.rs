//! `leakscope-recorder`: records a live Go service (pprof scrapes, process memory) into a
//! leakscope capture, and imports pprof files people already have.
//!
//! The binary is a thin CLI over these modules: [`target`] (what to scrape), [`fetch`]
//! (HTTP with timeouts and retries), [`memstats`] and [`procfs`] (process memory),
//! [`runs`] (restart detection), [`native`] (eBPF tracing of C allocations), [`ingest`] (profiles into capture rows), [`record`] (the
//! scrape loop), [`import`] (files into a capture), [`retain`] (retention policy) and [`upload`]
//! (`--upload`: committed sets to S3); [`malloc`] tunes glibc malloc for `record`.

pub mod fetch;
pub mod import;
pub mod ingest;
pub mod malloc;
pub mod memstats;
pub mod native;
pub mod procfs;
pub mod record;
pub mod retain;
pub mod runs;
pub mod target;
pub mod upload;

/// Version written into capture manifests.
pub const RECORDER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Nanoseconds since the Unix epoch, now (this machine's clock).
pub fn now_ns() -> i64 {
    leakscope_capture::segment::system_now_ns()
}

/// Earliest plausible profile time: 2000-01-01T00:00:00Z.
pub const EARLIEST_PLAUSIBLE_NS: i64 = 946_684_800 * 1_000_000_000;

/// How far after this machine's clock a profile time may be: one day.
pub const MAX_AHEAD_NS: i64 = 86_400 * 1_000_000_000;

/// Why profile time `t_ns` (`what` names where it came from) is implausible against this
/// machine's clock `now_ns`: before 2000, or more than a day after `now_ns`. `None` when
/// it is plausible.
pub fn implausible_time(what: &str, t_ns: i64, now_ns: i64) -> Option<String> {
    if t_ns < EARLIEST_PLAUSIBLE_NS {
        Some(format!(
            "{what} {t_ns} ({}) is implausible: before 2000-01-01",
            rfc3339(t_ns)
        ))
    } else if t_ns > now_ns.saturating_add(MAX_AHEAD_NS) {
        Some(format!(
            "{what} {t_ns} ({}) is implausible: more than a day after this machine's clock ({})",
            rfc3339(t_ns),
            rfc3339(now_ns)
        ))
    } else {
        None
    }
}

/// This machine's host name (from /proc, falling back to `$HOSTNAME`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Formats a time for humans and manifests (RFC 3339, UTC, seconds).
pub fn rfc3339(ns: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_at_the_edges_are_named_and_never_overflow() {
        let now = 1_795_428_000 * 1_000_000_000;
        assert_eq!(implausible_time("time_nanos", now, now), None);
        assert_eq!(
            implausible_time("time_nanos", now + MAX_AHEAD_NS, now),
            None
        );
        let e = implausible_time("time_nanos", i64::MAX, now).unwrap();
        assert!(
            e.contains("2262-04-11") && e.contains("more than a day after"),
            "{e}"
        );
        let e = implausible_time("time_nanos", -1, now).unwrap();
        assert!(e.contains("before 2000"), "{e}");
        assert!(implausible_time("t", i64::MIN, i64::MAX).is_some());
        assert!(implausible_time("t", i64::MAX, i64::MAX).is_none());
    }
}
