//! Turns a decoded profile into `profiles`, `samples` and `stacks` rows.

use leakscope_capture::pprof::DecodedProfile;
use leakscope_capture::rows::{ProfileRow, SampleRow, StackRow};
use leakscope_capture::segment::SegmentWriter;
use xxhash_rust::xxh3::xxh3_64;

/// Where a profile came from and which run it belongs to.
#[derive(Debug, Clone)]
pub struct ProfileMeta<'a> {
    /// Profile time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Target URL or import root.
    pub target: &'a str,
    /// PID when known.
    pub pid: Option<u32>,
    /// Run id.
    pub run_id: &'a str,
    /// Scrape wall time, for scraped profiles.
    pub scrape_ms: Option<f64>,
    /// Endpoint path or file path.
    pub source: &'a str,
}

/// The profile id: a hash of target, kind, time and source (unique within a capture).
pub fn profile_id(target: &str, kind: &str, time_ns: i64, source: &str) -> u64 {
    let key = format!("{target}\0{kind}\0{time_ns}\0{source}");
    xxh3_64(key.as_bytes())
}

/// Buffers one profile's rows in `w`; returns the profile id.
pub fn write_profile(w: &mut SegmentWriter, p: &DecodedProfile, m: &ProfileMeta) -> u64 {
    let kind = p.kind.as_str();
    let id = profile_id(m.target, kind, m.time_ns, m.source);
    for stack_id in p.stack_ids() {
        if !w.has_stack(stack_id) {
            w.add_stack(StackRow {
                stack_id,
                origin: "go".into(),
                frames: p.frames(stack_id),
            });
        }
    }
    w.add_profile(ProfileRow {
        profile_id: id,
        time_ns: m.time_ns,
        kind: kind.into(),
        target: m.target.into(),
        pid: m.pid,
        run_id: m.run_id.into(),
        period: p.period,
        period_type: p.period_type.clone(),
        sample_types: p.sample_types.clone(),
        duration_ns: p.duration_ns,
        scrape_ms: m.scrape_ms,
        source: m.source.into(),
        sample_count: p.samples.len() as u32,
    });
    for s in &p.samples {
        w.add_sample(SampleRow {
            profile_id: id,
            time_ns: m.time_ns,
            run_id: m.run_id.into(),
            kind: kind.into(),
            stack_id: s.stack_id,
            values: s.values,
            labels: s.labels.clone(),
        });
    }
    id
}
