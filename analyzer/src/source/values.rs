//! Per-stack values of one profile: the one query behind every delta between two profiles
//! (`export-pprof`, the report's flame graphs). The profile is named by capture, kind, time
//! and id, so the scan skips row groups by their time statistics and two captures that hold
//! the same profile id never mix.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::Array;

use crate::error::Result;
use crate::source::catalog::{literal, Catalog};

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

/// The values of `columns` (sample columns) of every stack in profile `p`, summed per
/// stack (missing values count 0): stack id -> values in `columns` order.
pub async fn stack_values(
    cat: &Catalog,
    p: &ProfileKey<'_>,
    columns: &[&str],
) -> Result<HashMap<u64, Vec<i64>>> {
    let sums = columns
        .iter()
        .map(|c| format!("SUM(COALESCE({c}, 0))"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT stack_id, {sums} FROM samples WHERE capture = {} AND kind = {} \
         AND time = arrow_cast({}, 'Timestamp(Nanosecond, Some(\"UTC\"))') \
         AND profile_id = CAST('{}' AS BIGINT UNSIGNED) GROUP BY stack_id",
        literal(p.capture),
        literal(p.kind),
        p.time_ns,
        p.profile_id
    );
    let mut out: HashMap<u64, Vec<i64>> = HashMap::new();
    for b in crate::sql::collect(&cat.ctx, &sql).await? {
        let ids = b.column(0).as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            let e = out
                .entry(ids.value(i))
                .or_insert_with(|| vec![0; columns.len()]);
            for (k, slot) in e.iter_mut().enumerate() {
                let a = b.column(1 + k).as_primitive::<Int64Type>();
                if a.is_valid(i) {
                    *slot = slot.saturating_add(a.value(i));
                }
            }
        }
    }
    Ok(out)
}
