//! The one choice of a growth window and of the two profiles it compares, shared by
//! `export-pprof` and the report's flame graphs so that both show the same delta.
//!
//! By default the window is the latest run, its first to its last profile, and only that
//! run's profiles are compared (with many captures side by side, another pod's profile at
//! the same moment is a different process). `--from`/`--to` choose the window by time; its
//! two profiles are the first at or after the start and the last at or before the end.

use crate::error::{AnalyzeError, Result};
use crate::source::profiles::ProfileRef;

/// How a window was chosen (worded by the outputs).
#[derive(Debug, Clone, PartialEq)]
pub enum WindowBasis {
    /// No bounds given: the latest run of this capture, first to last profile.
    LatestRun {
        /// Capture name.
        capture: String,
        /// Run id.
        run_id: String,
    },
    /// `--from` and `--to`.
    FromTo,
    /// `--from`, to the last profile.
    FromToLast,
    /// `--to`, from the first profile.
    FirstTo,
}

/// A growth window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Start, ns.
    pub from: i64,
    /// End, ns.
    pub to: i64,
    /// How it was chosen.
    pub basis: WindowBasis,
}

impl Window {
    /// Whether profile `p` may be one of the window's two profiles.
    fn admits(&self, p: &ProfileRef) -> bool {
        let in_run = match &self.basis {
            WindowBasis::LatestRun { capture, run_id } => {
                p.capture == *capture && p.run_id == *run_id
            }
            _ => true,
        };
        in_run && p.time_ns >= self.from && p.time_ns <= self.to
    }

    /// Profiles of `kind` the window admits (what a pair is chosen from).
    pub fn count(&self, profiles: &[ProfileRef], kind: &str) -> usize {
        profiles
            .iter()
            .filter(|p| p.kind == kind && self.admits(p))
            .count()
    }
}

/// Chooses the window over `profiles` (any kinds; the latest run is the one whose first
/// profile is latest, ties by capture then run id). `None` when there are no profiles; an
/// error when `--from`/`--to` leave an empty or reversed window.
pub fn choose_window(
    profiles: &[ProfileRef],
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Option<Window>> {
    let (Some(first), Some(last)) = (
        profiles.iter().map(|p| p.time_ns).min(),
        profiles.iter().map(|p| p.time_ns).max(),
    ) else {
        return Ok(None);
    };
    let w = match (from, to) {
        (None, None) => {
            let mut spans: std::collections::BTreeMap<(&str, &str), (i64, i64)> =
                Default::default();
            for p in profiles {
                let s = spans
                    .entry((p.capture.as_str(), p.run_id.as_str()))
                    .or_insert((p.time_ns, p.time_ns));
                *s = (s.0.min(p.time_ns), s.1.max(p.time_ns));
            }
            let (&(capture, run_id), &(a, b)) = spans
                .iter()
                .max_by_key(|(k, s)| (s.0, **k))
                .expect("a profile exists");
            Window {
                from: a,
                to: b,
                basis: WindowBasis::LatestRun {
                    capture: capture.to_string(),
                    run_id: run_id.to_string(),
                },
            }
        }
        (f, t) => Window {
            from: f.unwrap_or(first),
            to: t.unwrap_or(last),
            basis: match (f, t) {
                (Some(_), Some(_)) => WindowBasis::FromTo,
                (Some(_), None) => WindowBasis::FromToLast,
                _ => WindowBasis::FirstTo,
            },
        },
    };
    if (from.is_some() || to.is_some()) && w.from >= w.to {
        return Err(AnalyzeError::EmptyWindow {
            from: w.from,
            to: w.to,
        });
    }
    Ok(Some(w))
}

/// The two profiles of `kind` the window compares: the first at or after its start and the
/// last at or before its end (on a tie, one of the same run as the first); `None` unless
/// they are two profiles in time order.
pub fn window_pair<'a>(
    profiles: &'a [ProfileRef],
    kind: &str,
    w: &Window,
) -> Option<(&'a ProfileRef, &'a ProfileRef)> {
    let mut of: Vec<&ProfileRef> = profiles
        .iter()
        .filter(|p| p.kind == kind && w.admits(p))
        .collect();
    of.sort_by(|a, b| {
        (a.time_ns, &a.capture, a.profile_id).cmp(&(b.time_ns, &b.capture, b.profile_id))
    });
    let before = *of.first()?;
    let last = of.last()?.time_ns;
    let after = of
        .iter()
        .filter(|p| p.time_ns == last)
        .max_by_key(|p| p.same_run(before))?;
    (before.time_ns < after.time_ns).then_some((before, *after))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn p(capture: &str, run: &str, kind: &str, s: i64) -> ProfileRef {
        ProfileRef {
            capture: capture.into(),
            run_id: run.into(),
            run: format!("{capture}/{run}"),
            kind: kind.into(),
            time_ns: s * SEC,
            profile_id: s as u64,
            period: 1,
        }
    }

    #[test]
    fn window_defaults_and_overrides() {
        let mut ps: Vec<ProfileRef> = (0..=10).map(|i| p("c", "r1", "heap", i * 10)).collect();
        ps.extend((0..=10).map(|i| p("c", "r2", "heap", 200 + i * 10)));
        let w = choose_window(&ps, None, None).unwrap().unwrap();
        assert_eq!((w.from, w.to), (200 * SEC, 300 * SEC), "the latest run");
        assert!(
            matches!(&w.basis, WindowBasis::LatestRun { run_id, .. } if run_id == "r2"),
            "{:?}",
            w.basis
        );
        let w = choose_window(&ps, Some(50 * SEC), None).unwrap().unwrap();
        assert_eq!(
            (w.from, w.to, w.basis),
            (50 * SEC, 300 * SEC, WindowBasis::FromToLast)
        );
        let w = choose_window(&ps, None, Some(250 * SEC)).unwrap().unwrap();
        assert_eq!(
            (w.from, w.to, w.basis),
            (0, 250 * SEC, WindowBasis::FirstTo)
        );
        assert!(choose_window(&ps, Some(90 * SEC), Some(10 * SEC)).is_err());
        assert_eq!(choose_window(&[], None, None).unwrap(), None);
    }

    #[test]
    fn the_pair_is_the_first_and_last_profile_inside_preferring_the_same_run() {
        let mut ps: Vec<ProfileRef> = (0..10).map(|i| p("c", "a", "heap", i * 10)).collect();
        // The same times in a second capture.
        ps.extend((0..10).map(|i| p("c#2", "a", "heap", i * 10)));
        let w = Window {
            from: 12 * SEC,
            to: 76 * SEC,
            basis: WindowBasis::FromTo,
        };
        let (a, b) = window_pair(&ps, "heap", &w).unwrap();
        assert_eq!((a.time_ns, b.time_ns), (20 * SEC, 70 * SEC));
        assert_eq!(
            (a.capture.as_str(), b.capture.as_str()),
            ("c", "c"),
            "same run on ties"
        );
        assert_eq!(w.count(&ps, "heap"), 12);
        assert!(window_pair(&ps, "goroutine", &w).is_none());
        let w = Window {
            from: 12 * SEC,
            to: 19 * SEC,
            basis: WindowBasis::FromTo,
        };
        assert!(window_pair(&ps, "heap", &w).is_none());
    }

    #[test]
    fn the_latest_run_window_compares_only_that_run() {
        // Two pods recorded side by side: their runs overlap in time.
        let mut ps: Vec<ProfileRef> = (0..10).map(|i| p("pod-a", "r", "heap", i * 10)).collect();
        ps.extend((0..10).map(|i| p("pod-b", "r", "heap", 5 + i * 10)));
        let w = choose_window(&ps, None, None).unwrap().unwrap();
        let (a, b) = window_pair(&ps, "heap", &w).unwrap();
        assert_eq!((a.capture.as_str(), b.capture.as_str()), ("pod-b", "pod-b"));
        assert_eq!((a.time_ns, b.time_ns), (5 * SEC, 95 * SEC));
    }
}
