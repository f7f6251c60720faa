//! Per-profile totals of one sample column, summed by the ranking's sample scan over every
//! row it reads of each profile (the rows of stacks no group holds too), so that the
//! report's memory and goroutine timelines need no second pass over the samples.
//!
//! A profile's total is what `SELECT SUM(column) FROM samples GROUP BY capture, profile_id`
//! gives for it: an exact integer sum (wrapping on overflow, like DataFusion's `SUM`), NULL
//! when every value is null, and no row at all for a profile without sample rows.

use std::collections::HashMap;

use crate::model::ids::IdMap;
use crate::source::profiles::ProfileRef;

/// One profile's total of one sample column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// The profile has no sample row (its samples segment is missing or corrupt).
    NoRows,
    /// The sum of its values; `None` when every value is null.
    Sum(Option<i64>),
}

/// A running `SUM` of an integer column: `None` until a non-null value is added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntSum {
    sum: i64,
    any: bool,
}

impl IntSum {
    /// Adds one non-null value.
    #[inline]
    pub fn add(&mut self, v: i64) {
        self.sum = self.sum.wrapping_add(v);
        self.any = true;
    }

    /// Adds a partial sum (a `SUM` of some of the rows: `None` when all were null).
    pub fn add_sum(&mut self, part: Option<i64>) {
        if let Some(v) = part {
            self.add(v);
        }
    }

    /// The total of a profile that had `rows`, from this sum of its values.
    pub fn total(self, rows: bool) -> Total {
        match rows {
            false => Total::NoRows,
            true => Total::Sum(self.any.then_some(self.sum)),
        }
    }
}

/// The totals of one sample column for every profile one scan read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileTotals {
    /// Profile kind scanned.
    pub kind: &'static str,
    /// Sample column summed.
    pub column: &'static str,
    /// Capture name -> profile id -> total.
    by_capture: HashMap<String, IdMap<Total>>,
}

impl ProfileTotals {
    /// The totals of `profiles` (a scan's matrix columns), `totals` in the same order.
    pub fn new(
        kind: &'static str,
        column: &'static str,
        profiles: &[ProfileRef],
        totals: &[Total],
    ) -> ProfileTotals {
        debug_assert_eq!(profiles.len(), totals.len(), "one total per profile");
        let mut by_capture: HashMap<String, IdMap<Total>> = HashMap::new();
        for (p, t) in profiles.iter().zip(totals) {
            by_capture
                .entry(p.capture.clone())
                .or_default()
                .insert(p.profile_id, *t);
        }
        ProfileTotals {
            kind,
            column,
            by_capture,
        }
    }

    /// The total of profile `p`; `None` when the scan did not read `p` (another kind, or
    /// a profile after `--first`).
    pub fn get(&self, p: &ProfileRef) -> Option<Total> {
        self.by_capture.get(&p.capture)?.get(&p.profile_id).copied()
    }

    /// Whether the scan read every profile of its kind among `profiles`.
    pub fn covers(&self, profiles: &[ProfileRef]) -> bool {
        profiles
            .iter()
            .filter(|p| p.kind == self.kind)
            .all(|p| self.get(p).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(capture: &str, kind: &str, id: u64) -> ProfileRef {
        ProfileRef {
            capture: capture.into(),
            run_id: "r".into(),
            run: format!("{capture}/r"),
            kind: kind.into(),
            time_ns: id as i64,
            profile_id: id,
            period: 1,
        }
    }

    #[test]
    fn a_sum_is_null_until_a_value_and_wraps_like_sql() {
        let mut s = IntSum::default();
        assert_eq!(s.total(false), Total::NoRows);
        assert_eq!(s.total(true), Total::Sum(None));
        s.add_sum(None);
        assert_eq!(s.total(true), Total::Sum(None));
        s.add(0);
        assert_eq!(s.total(true), Total::Sum(Some(0)));
        s.add(i64::MAX);
        s.add_sum(Some(2));
        assert_eq!(s.total(true), Total::Sum(Some(i64::MIN + 1)));
    }

    #[test]
    fn totals_are_per_capture_and_cover_only_what_was_read() {
        let read = [profile("a", "heap", 1), profile("b", "heap", 1)];
        let t = ProfileTotals::new(
            "heap",
            "inuse_bytes",
            &read,
            &[Total::Sum(Some(5)), Total::NoRows],
        );
        assert_eq!(t.get(&read[0]), Some(Total::Sum(Some(5))));
        assert_eq!(t.get(&read[1]), Some(Total::NoRows));
        assert_eq!(t.get(&profile("c", "heap", 1)), None);
        let mut all = read.to_vec();
        all.push(profile("a", "goroutine", 7));
        assert!(t.covers(&all), "other kinds are not its business");
        all.push(profile("a", "heap", 2));
        assert!(!t.covers(&all));
    }
}
