//! The sample scan of `rank --cluster` as distributed plans: the executors read every
//! sample row and aggregate it to the group x profile matrix; the client only receives the
//! matrix (groups x profiles rows) and one weight per stack, then fits locally with rayon.
//!
//! Which stack belongs to which group, and which profiles count (the listing's timeline:
//! `--first`, a repeated profile kept once, the copy of the capture that counts), are
//! decided here exactly as for the local scan ([`crate::source::scan::scan_samples`]) and
//! shipped with the query as two inline `VALUES` tables, so custom `--skip` rules apply on
//! the cluster too and the result is the local one: every sum is an exact integer sum (a
//! group's values stay far below 2^53), whatever order the executors add in.
//!
//! Network cost: the query text carries about 30 bytes per stack and per profile; the
//! answer is one row (matrix column, group, sum, count: 24 bytes) per non-empty cell of
//! the matrix plus one row per stack. By site that is orders of magnitude less
//! than the sample rows the executors read; by stack the matrix is as large as the data.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt32Type};
use arrow_array::Array;
use datafusion::prelude::SessionContext;
use leakscope_capture::schema::{col, Table};

use crate::error::Result;
use crate::source::catalog::{literal, CAPTURE_COLUMN};
use crate::source::matrix::Matrix;
use crate::source::profiles::ProfileRef;
use crate::source::scan::{SampleMatrix, SampleScan};
use crate::source::totals::IntSum;

/// `VALUES` rows naming the profiles that count: (capture, profile id as text, matrix
/// column). The answer carries the column, not the capture and id: 24 bytes per cell
/// instead of about 80 with the capture's name in every row.
fn profile_values(profiles: &[ProfileRef]) -> String {
    profiles
        .iter()
        .enumerate()
        .map(|(c, p)| format!("({}, '{}', {c})", literal(&p.capture), p.profile_id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `VALUES` rows giving each known stack its dense index and group: (id as text, index,
/// group).
fn stack_values(stack_ids: &[u64], stack_group: &[u32]) -> String {
    stack_ids
        .iter()
        .zip(stack_group)
        .enumerate()
        .map(|(si, (id, g))| format!("('{id}', {si}, {g})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The FROM clause shared by both queries: samples of the scan's kind, joined to the
/// profiles that count and (outer: rows of unknown stacks still count as rows read) to the
/// known stacks.
///
/// Both inline tables come first, so that DataFusion builds its hash tables from them and
/// Ballista broadcasts them to every task (`CollectLeft`, below the broadcast thresholds of
/// [`crate::source::cluster::session_config`]): the sample rows never leave the task that
/// read them, only the partial aggregates do. Written the other way round (samples `LEFT
/// JOIN` stacks), the planner repartitioned every sample row by stack id over the network.
fn from_clause(scan: &SampleScan, profiles: &str, stacks: &str) -> String {
    format!(
        "FROM (VALUES {stacks}) AS m(sid, si, g) \
         RIGHT JOIN (\
           SELECT p.col, s.{sid}, s.{value} \
           FROM (VALUES {profiles}) AS p(capture, pid, col) \
           JOIN {samples} s \
             ON s.{CAPTURE_COLUMN} = p.capture AND s.{pid} = CAST(p.pid AS BIGINT UNSIGNED) \
           WHERE s.{kind} = {k}) s \
         ON s.{sid} = CAST(m.sid AS BIGINT UNSIGNED)",
        samples = Table::Samples.name(),
        pid = col::PROFILE_ID,
        sid = col::STACK_ID,
        kind = col::KIND,
        value = scan.column,
        k = literal(scan.kind),
    )
}

/// Runs the scan on the cluster behind `ctx`: the same [`SampleMatrix`] the local scan
/// builds from `profiles` (matrix columns, in order; their ids and captures are the ones
/// `scan.profile_pos` admits) and the dense stacks `stack_ids` (index order).
pub async fn scan_samples(
    ctx: &SessionContext,
    scan: &SampleScan<'_>,
    profiles: &[ProfileRef],
    stack_ids: &[u64],
) -> Result<SampleMatrix> {
    let mut matrix = Matrix::zeroed(scan.groups, profiles.len());
    let mut seen = vec![false; profiles.len()];
    let mut stack_weight = vec![None; stack_ids.len()];
    let mut rows = 0u64;
    if profiles.is_empty() {
        return Ok(SampleMatrix {
            matrix,
            seen,
            stack_weight,
            rows,
            totals: Some(Vec::new()),
        });
    }
    let mut sums = vec![IntSum::default(); profiles.len()];
    let from = from_clause(
        scan,
        &profile_values(profiles),
        &stack_values(stack_ids, scan.stack_group),
    );
    let value = format!("s.{}", scan.column);
    // One job answers both questions, through two grouping sets (a Ballista job costs
    // tens of milliseconds of scheduling whatever its size, which `fleet rank --cluster`
    // paid twice per capture):
    // - (col, g): the matrix, one sum per (profile, group), every admitted row counted;
    //   rows of unknown stacks (g NULL) add to the profile's total only.
    // - (si): each known stack's total over the counted profiles (the representative
    //   stack); its rows have col NULL, which a matrix row never has.
    // No WHERE: filtering out the unknown stacks (`m.si IS NOT NULL`) turns the outer join
    // into an inner one, and the planner then broadcast the sample side of that join to
    // every task (16 bytes per row over loopback). NULL keys and sums are skipped here.
    let query = format!(
        "SELECT c, g, si, SUM(v), COUNT(*) FROM (\
           SELECT CAST(s.col AS INT UNSIGNED) AS c, CAST(m.g AS INT UNSIGNED) AS g, \
             CAST(m.si AS INT UNSIGNED) AS si, {value} AS v {from}) \
         GROUP BY GROUPING SETS ((c, g), (si))",
    );
    for b in crate::sql::collect(ctx, &query).await? {
        let col = b.column(0).as_primitive::<UInt32Type>();
        let g = b.column(1).as_primitive::<UInt32Type>();
        let si = b.column(2).as_primitive::<UInt32Type>();
        let sum = b.column(3).as_primitive::<Int64Type>();
        let n = b.column(4).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if col.is_null(i) {
                if si.is_null(i) || sum.is_null(i) {
                    continue;
                }
                if let Some(w) = stack_weight.get_mut(si.value(i) as usize) {
                    *w = Some(sum.value(i) as f64);
                }
                continue;
            }
            let p = col.value(i) as usize;
            if p >= profiles.len() {
                continue;
            }
            seen[p] = true;
            rows += n.value(i) as u64;
            sums[p].add_sum(sum.is_valid(i).then(|| sum.value(i)));
            if g.is_valid(i) && sum.is_valid(i) {
                matrix.add(p, g.value(i) as usize, sum.value(i));
            }
        }
    }
    (scan.progress)(rows);
    let totals = sums.iter().zip(&seen).map(|(s, r)| s.total(*r)).collect();
    Ok(SampleMatrix {
        matrix,
        seen,
        stack_weight,
        rows,
        totals: Some(totals),
    })
}
