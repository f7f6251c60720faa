//! Run ids: one per incarnation of the target process. A restart (new PID, new process
//! start time, or cumulative counters going backwards) starts a new run, so the analyzer
//! never mistakes a restart for a drop or a jump.

use crate::rfc3339;

/// What one tick (or one imported profile) tells about the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observation {
    /// Time of the observation, ns since the Unix epoch.
    pub time_ns: i64,
    /// PID when known.
    pub pid: Option<u32>,
    /// Process start time when known.
    pub start_ns: Option<i64>,
    /// MemStats.TotalAlloc (cumulative) when known.
    pub total_alloc: Option<i64>,
    /// MemStats.NumGC (cumulative) when known.
    pub num_gc: Option<i64>,
    /// Sum of the heap profile's alloc_space (cumulative) when known.
    pub profile_alloc_total: Option<i64>,
}

#[derive(Debug, Clone)]
struct Run {
    id: String,
    last: Observation,
}

/// Tracks the current run and detects restarts.
#[derive(Debug, Default)]
pub struct RunTracker {
    current: Option<Run>,
    runs_started: u32,
}

fn went_back(prev: Option<i64>, now: Option<i64>, tolerance: f64) -> bool {
    match (prev, now) {
        (Some(p), Some(n)) => (n as f64) < (p as f64) * (1.0 - tolerance),
        _ => false,
    }
}

fn changed<T: PartialEq>(prev: Option<T>, now: Option<T>) -> bool {
    matches!((prev, now), (Some(p), Some(n)) if p != n)
}

impl RunTracker {
    /// A tracker with no run yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when observation `o` would start a new run (the first one, or after a restart).
    pub fn is_restart(&self, o: &Observation) -> bool {
        match &self.current {
            None => true,
            Some(r) => {
                let l = &r.last;
                changed(l.pid, o.pid)
                    || changed(
                        l.start_ns.map(|s| s / 1_000_000_000),
                        o.start_ns.map(|s| s / 1_000_000_000),
                    )
                    || went_back(l.total_alloc, o.total_alloc, 0.0)
                    || went_back(l.num_gc, o.num_gc, 0.0)
                    || went_back(l.profile_alloc_total, o.profile_alloc_total, 0.005)
            }
        }
    }

    /// Feeds an observation; returns the run id it belongs to and whether it started a run.
    pub fn observe(&mut self, o: Observation) -> (String, bool) {
        let restart = self.is_restart(&o);
        if restart {
            self.runs_started += 1;
            let stamp = rfc3339(o.start_ns.unwrap_or(o.time_ns)).replace([':', '-'], "");
            let who = o
                .pid
                .map_or_else(|| "remote".to_string(), |p| format!("pid{p}"));
            let mut id = format!("{stamp}-{who}");
            if self.current.as_ref().is_some_and(|r| r.id == id) {
                id = format!("{id}-{}", self.runs_started);
            }
            self.current = Some(Run { id, last: o });
        } else if let Some(r) = &mut self.current {
            // Keep the last known value of each signal so a gap in one source does not hide a reset.
            let l = &mut r.last;
            l.time_ns = o.time_ns;
            l.pid = o.pid.or(l.pid);
            l.start_ns = o.start_ns.or(l.start_ns);
            l.total_alloc = o.total_alloc.or(l.total_alloc);
            l.num_gc = o.num_gc.or(l.num_gc);
            l.profile_alloc_total = o.profile_alloc_total.or(l.profile_alloc_total);
        }
        let id = self
            .current
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default();
        (id, restart)
    }

    /// The current run id, if any.
    pub fn current(&self) -> Option<&str> {
        self.current.as_ref().map(|r| r.id.as_str())
    }

    /// Number of runs seen so far.
    pub fn runs(&self) -> u32 {
        self.runs_started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(t: i64, pid: Option<u32>, total: Option<i64>) -> Observation {
        Observation {
            time_ns: t * 1_000_000_000,
            pid,
            total_alloc: total,
            ..Default::default()
        }
    }

    #[test]
    fn pid_change_and_counter_reset_start_runs() {
        let mut r = RunTracker::new();
        let (a, new) = r.observe(obs(1_700_000_000, Some(10), Some(100)));
        assert!(new);
        assert_eq!(
            r.observe(obs(1_700_000_010, Some(10), Some(200))),
            (a.clone(), false)
        );
        // Counter gap then reset.
        assert!(!r.observe(obs(1_700_000_020, Some(10), None)).1);
        let (b, new) = r.observe(obs(1_700_000_030, Some(10), Some(50)));
        assert!(new && b != a, "{a} {b}");
        let (c, new) = r.observe(obs(1_700_000_040, Some(11), Some(60)));
        assert!(new && c != b);
        assert_eq!(r.runs(), 3);
    }

    #[test]
    fn profile_alloc_total_tolerates_tiny_jitter() {
        let mut r = RunTracker::new();
        let o = |t, v| Observation {
            time_ns: t,
            profile_alloc_total: Some(v),
            ..Default::default()
        };
        r.observe(o(1, 1_000_000));
        assert!(!r.observe(o(2, 999_000)).1);
        assert!(r.observe(o(3, 10_000)).1);
    }
}
