//! Per-stack values of chosen profiles: the one read behind every delta between two
//! profiles (`export-pprof`, the report's flame graphs). A profile is named by capture,
//! kind, time and id, so the read skips row groups and pages by their time statistics and
//! two captures that hold the same profile id never mix.
//!
//! The read is direct ([`scan::profile_stack_sums`]), one pass for every profile asked
//! for, not a SQL query per profile: see there for why.

use crate::error::Result;
use crate::model::ids::IdMap;
use crate::source::catalog::Catalog;
use crate::source::scan::{self, WantedProfile};
use leakscope_capture::schema::Table;

/// One profile of a capture.
#[derive(Debug, Clone, Copy)]
pub struct ProfileKey<'a> {
    /// Capture name (as in the `capture` column).
    pub capture: &'a str,
    /// Profile kind (`heap`, `goroutine`, `native`).
    pub kind: &'a str,
    /// Profile time, ns since the epoch.
    pub time_ns: i64,
    /// Profile id.
    pub profile_id: u64,
}

/// For each profile of `profiles`, the values of `columns` (sample columns) of every
/// stack in it, summed per stack (missing values count 0): stack id -> values in
/// `columns` order. A profile of a capture `cat` does not hold has no stacks.
pub fn stack_values(
    cat: &Catalog,
    profiles: &[ProfileKey<'_>],
    columns: &[&str],
) -> Result<Vec<IdMap<Vec<i64>>>> {
    // A capture that is not open matches no segment (`usize::MAX` is no capture's index).
    let wanted: Vec<WantedProfile> = profiles
        .iter()
        .map(|p| WantedProfile {
            capture: cat
                .captures
                .iter()
                .position(|c| c.name == p.capture)
                .unwrap_or(usize::MAX),
            kind: p.kind,
            time_ns: p.time_ns,
            profile_id: p.profile_id,
        })
        .collect();
    let segs = scan::segments(cat, Table::Samples)?;
    scan::profile_stack_sums(&segs, &wanted, columns)
}
