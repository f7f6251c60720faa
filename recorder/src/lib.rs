//! `leakscope-recorder`: records a live Go service (pprof scrapes, process memory) into a
//! leakscope capture, and imports pprof files people already have.
//!
//! The binary is a thin CLI over these modules: [`target`] (what to scrape), [`fetch`]
//! (HTTP with timeouts and retries), [`memstats`] and [`procfs`] (process memory),
//! [`runs`] (restart detection), [`native`] (eBPF tracing of C allocations), [`ingest`] (profiles into capture rows), [`record`] (the
//! scrape loop), [`import`] (files into a capture) and [`retain`] (retention policy).

pub mod fetch;
pub mod import;
pub mod ingest;
pub mod memstats;
pub mod native;
pub mod procfs;
pub mod record;
pub mod retain;
pub mod runs;
pub mod target;

/// Version written into capture manifests.
pub const RECORDER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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
