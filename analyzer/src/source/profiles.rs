//! The one listing of a catalog's profiles: read once from the `profiles` table, with a
//! profile that appears twice (a capture given twice, an overlapping import) kept once.
//! The series ([`crate::source::load`]), the report and `export-pprof` all start here, so
//! they agree on which profiles exist and in what order.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType, UInt64Type};
use datafusion::prelude::SessionContext;
use leakscope_capture::schema::col;

use crate::error::Result;
use crate::model::ids::IdMap;
use crate::source::catalog::CAPTURE_COLUMN;
use crate::source::values::ProfileKey;

/// One profile of one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRef {
    /// Capture name (as in the `capture` column).
    pub capture: String,
    /// Run id (one process incarnation).
    pub run_id: String,
    /// Run label: `capture/run_id`.
    pub run: String,
    /// `heap`, `goroutine`, `goroutineleak`, `native`.
    pub kind: String,
    /// Profile time, ns since the epoch.
    pub time_ns: i64,
    /// Profile id.
    pub profile_id: u64,
    /// Sampling period of the profile (`MemProfileRate` bytes for heap, 1 for goroutines).
    pub period: i64,
}

impl ProfileRef {
    /// The key that names this profile's sample rows (see [`crate::source::values`]).
    pub fn key(&self) -> ProfileKey<'_> {
        ProfileKey {
            capture: &self.capture,
            kind: &self.kind,
            time_ns: self.time_ns,
            profile_id: self.profile_id,
        }
    }

    /// Whether `other` is a profile of the same run (same capture and run id).
    pub fn same_run(&self, other: &ProfileRef) -> bool {
        self.capture == other.capture && self.run_id == other.run_id
    }
}

/// The profiles of one kind as the series see them: runs in order of their first profile,
/// profiles by time within a run.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Profiles, run by run.
    pub profiles: Vec<ProfileRef>,
    /// Each run's label and its range in `profiles`, in order.
    pub runs: Vec<(String, Range<usize>)>,
    /// Profile id -> position in `profiles`.
    pub pos: IdMap<usize>,
}

/// Every profile of a catalog, as read (no order; see [`ProfileListing::timeline`] and
/// [`ProfileListing::by_time`]).
#[derive(Debug, Clone, Default)]
pub struct ProfileListing {
    rows: Vec<ProfileRef>,
}

impl ProfileListing {
    /// Reads the `profiles` table once.
    pub async fn read(ctx: &SessionContext) -> Result<Self> {
        let sql = format!(
            "SELECT {CAPTURE_COLUMN}, {}, {}, {}, {}, {} FROM {}",
            col::RUN_ID,
            col::KIND,
            col::TIME,
            col::PROFILE_ID,
            col::PERIOD,
            leakscope_capture::schema::Table::Profiles.name()
        );
        let mut rows = Vec::new();
        for b in crate::sql::collect(ctx, &sql).await? {
            let cap = b.column(0).as_string::<i32>();
            let run = b.column(1).as_string::<i32>();
            let kind = b.column(2).as_string::<i32>();
            let t = b.column(3).as_primitive::<TimestampNanosecondType>();
            let id = b.column(4).as_primitive::<UInt64Type>();
            let period = b.column(5).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                rows.push(ProfileRef {
                    capture: cap.value(i).to_string(),
                    run_id: run.value(i).to_string(),
                    run: format!("{}/{}", cap.value(i), run.value(i)),
                    kind: kind.value(i).to_string(),
                    time_ns: t.value(i),
                    profile_id: id.value(i),
                    period: period.value(i),
                });
            }
        }
        Ok(ProfileListing { rows })
    }

    /// Number of profiles listed (of every kind).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no profile is listed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A listing of the given profiles (tests and callers that already hold rows).
    pub fn from_rows(rows: Vec<ProfileRef>) -> Self {
        ProfileListing { rows }
    }

    /// Profile kinds present, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.rows.iter().map(|p| p.kind.clone()).collect();
        k.sort_unstable();
        k.dedup();
        k
    }

    /// The profiles of `kind`: runs ordered by their first profile, then profiles by time;
    /// a repeated profile id is kept at its first position only, so positions and ids stay
    /// one-to-one.
    ///
    /// With `first`, only the profiles within that long of the earliest one are kept: the
    /// capture as it stood after that much recording.
    pub fn timeline(&self, kind: &str, first: Option<std::time::Duration>) -> Timeline {
        let mut rows: Vec<&ProfileRef> = self.rows.iter().filter(|p| p.kind == kind).collect();
        if let Some(d) = first {
            let t0 = rows.iter().map(|p| p.time_ns).min().unwrap_or(0);
            let end = t0.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            rows.retain(|p| p.time_ns <= end);
        }
        let mut run_start: HashMap<&str, i64> = HashMap::new();
        for p in &rows {
            let e = run_start.entry(p.run.as_str()).or_insert(p.time_ns);
            *e = (*e).min(p.time_ns);
        }
        rows.sort_by(|a, b| {
            (run_start[a.run.as_str()], &a.run, a.time_ns, a.profile_id).cmp(&(
                run_start[b.run.as_str()],
                &b.run,
                b.time_ns,
                b.profile_id,
            ))
        });
        let mut seen = HashSet::new();
        rows.retain(|p| seen.insert(p.profile_id));
        let mut t = Timeline::default();
        for (i, p) in rows.into_iter().enumerate() {
            match t.runs.last_mut() {
                Some((name, r)) if *name == p.run => r.end = i + 1,
                _ => t.runs.push((p.run.clone(), i..i + 1)),
            }
            t.pos.insert(p.profile_id, i);
            t.profiles.push(p.clone());
        }
        t
    }

    /// Every kind's [`ProfileListing::timeline`] merged in time order (ties by capture,
    /// kind, id): the report's listing.
    pub fn by_time(&self) -> Vec<ProfileRef> {
        let mut all: Vec<ProfileRef> = self
            .kinds()
            .iter()
            .flat_map(|k| self.timeline(k, None).profiles)
            .collect();
        all.sort_by(|a, b| {
            (a.time_ns, &a.capture, &a.kind, a.profile_id).cmp(&(
                b.time_ns,
                &b.capture,
                &b.kind,
                b.profile_id,
            ))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn profile(capture: &str, run: &str, kind: &str, secs: i64, id: u64) -> ProfileRef {
        ProfileRef {
            capture: capture.into(),
            run_id: run.into(),
            run: format!("{capture}/{run}"),
            kind: kind.into(),
            time_ns: secs * 1_000_000_000,
            profile_id: id,
            period: 1,
        }
    }

    #[test]
    fn timeline_orders_runs_by_first_profile_and_keeps_a_repeated_id_once() {
        let rows = vec![
            profile("c", "late", "heap", 100, 5),
            profile("c", "early", "heap", 20, 2),
            profile("c", "early", "heap", 10, 1),
            profile("c", "late", "heap", 90, 4),
            // The same profile again in a copy of the capture, and another kind.
            profile("c#2", "early", "heap", 10, 1),
            profile("c", "early", "goroutine", 10, 9),
        ];
        let t = ProfileListing::from_rows(rows).timeline("heap", None);
        let ids: Vec<u64> = t.profiles.iter().map(|p| p.profile_id).collect();
        assert_eq!(ids, [1, 2, 4, 5]);
        // Both copies' runs start at 10 s; the run label breaks the tie ('#' < '/').
        assert_eq!(
            t.profiles[0].capture, "c#2",
            "the first in timeline order is kept"
        );
        assert_eq!(
            t.runs,
            vec![
                ("c#2/early".to_string(), 0..1),
                ("c/early".to_string(), 1..2),
                ("c/late".to_string(), 2..4)
            ]
        );
        assert_eq!(t.pos[&4], 2);
    }

    #[test]
    fn first_keeps_the_profiles_within_that_long_of_the_earliest() {
        let rows = (0..10)
            .map(|i| profile("c", "r", "heap", i * 60, i as u64))
            .collect();
        let l = ProfileListing::from_rows(rows);
        let t = l.timeline("heap", Some(std::time::Duration::from_secs(180)));
        assert_eq!(t.profiles.len(), 4, "0, 1, 2 and 3 minutes");
    }

    #[test]
    fn by_time_merges_kinds_without_repeats() {
        let rows = vec![
            profile("c", "r", "goroutine", 20, 7),
            profile("c", "r", "heap", 10, 1),
            profile("c", "r", "heap", 20, 2),
            profile("d", "r", "heap", 20, 2),
        ];
        let all = ProfileListing::from_rows(rows).by_time();
        let got: Vec<(&str, u64)> = all
            .iter()
            .map(|p| (p.kind.as_str(), p.profile_id))
            .collect();
        assert_eq!(got, [("heap", 1), ("goroutine", 7), ("heap", 2)]);
    }
}
