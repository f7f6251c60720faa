//! Direct, parallel reads of capture segments for the ranking's two heavy loads: every
//! sample row of one metric, and one copy of every stack.
//!
//! SQL stays the interface for people; this is the ranking's fast path. One rayon task per
//! segment file reads only the columns it needs with the Parquet reader, so the load runs
//! on every core without a query plan, a merge of partition streams or a shared matrix.
//! Segments the catalog skipped as unreadable are skipped here too; columns a foreign
//! writer stored in other types are cast to the capture's as they are read.

use leakscope_capture::schema::col;
use std::collections::HashSet;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use leakscope_capture::schema::Table;
use leakscope_capture::segment::list_segments;
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::statistics::Statistics;
use rayon::prelude::*;

use crate::error::{AnalyzeError, Result};
use crate::model::ids::IdMap;
use crate::model::site::Frames;
use crate::source::catalog::Catalog;
use crate::source::matrix::{ColumnMut, Matrix};
use crate::source::pages::select_int64_pages;
use crate::source::pread::PreadFile;
use crate::source::remote::{RemoteSegment, SegmentBuilder};
use crate::source::totals::{IntSum, Total};
use crate::sql::conform;
use crate::sql::udf::FrameLists;

/// Rows per record batch read from a segment.
const BATCH_ROWS: usize = 16 * 1024;

/// Most bytes of column chunks [`Opened::prefetch`] holds for one file: a larger read (a
/// foreign writer's file of few, large row groups) streams page by page as before, so
/// memory stays bounded by the pages in flight. A segment the recorder rotates at its
/// default 64 MiB holds about 1.3 MB of the columns a ranking reads.
const PREFETCH_MAX_BYTES: u64 = 32 << 20;

/// Fewest stack rows whose frames one rayon task decodes.
const STACK_ROWS_PER_TASK: usize = 256;

/// One committed segment file of a table.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Index of its capture in [`Catalog::captures`].
    pub capture: usize,
    /// Full path (`s3://...` for a remote segment).
    pub path: PathBuf,
    /// The object when the segment is in S3.
    pub remote: Option<RemoteSegment>,
}

/// Every readable segment of `table` in every capture: captures in order, oldest first.
pub fn segments(cat: &Catalog, table: Table) -> Result<Vec<Segment>> {
    let skipped: HashSet<&Path> = cat.skipped.iter().map(|s| s.path.as_path()).collect();
    let mut out = Vec::new();
    for (i, cap) in cat.captures.iter().enumerate() {
        if let Some(r) = &cap.remote {
            out.extend(
                r.table_segments(table)
                    .into_iter()
                    .map(|(path, seg)| Segment {
                        capture: i,
                        path,
                        remote: Some(seg),
                    }),
            );
            continue;
        }
        let files = list_segments(&cap.dir, table).map_err(|e| AnalyzeError::Segment {
            path: cap.dir.join(table.name()),
            reason: e.to_string(),
        })?;
        out.extend(
            files
                .into_iter()
                .filter(|f| !skipped.contains(f.path.as_path()))
                .map(|f| Segment {
                    capture: i,
                    path: f.path,
                    remote: None,
                }),
        );
    }
    Ok(out)
}

fn bad(path: &Path, what: impl std::fmt::Display) -> AnalyzeError {
    AnalyzeError::Segment {
        path: path.to_path_buf(),
        reason: what.to_string(),
    }
}

/// A segment opened for reading some columns, with the table types to read them as.
struct Opened {
    builder: SegmentBuilder,
    want: SchemaRef,
    /// The columns read.
    mask: ProjectionMask,
    /// The local file, to [`Opened::prefetch`] from (`None` in S3).
    file: Option<PreadFile>,
}

impl Opened {
    /// Reads the chunks of the projected columns in `row_groups` (every row group when
    /// `None`) of a local file ahead, one read each (see [`PreadFile::prefetch`]), for a
    /// scan that reads them whole: not with a row selection, which may skip pages. Not
    /// when they add up to more than [`PREFETCH_MAX_BYTES`], or when the footer places a
    /// chunk outside the file (the reader names that error as before).
    fn prefetch(&self, path: &Path, row_groups: Option<&[usize]>) -> Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let meta = self.builder.metadata();
        let all: Vec<usize>;
        let groups = match row_groups {
            Some(g) => g,
            None => {
                all = (0..meta.num_row_groups()).collect();
                &all
            }
        };
        let mut ranges = Vec::new();
        for rg in groups.iter().filter_map(|&g| meta.row_groups().get(g)) {
            for (leaf, c) in rg.columns().iter().enumerate() {
                if !self.mask.leaf_included(leaf) {
                    continue;
                }
                // `byte_range` asserts on negative offsets: a damaged footer's are checked.
                let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
                match (u64::try_from(start), u64::try_from(c.compressed_size())) {
                    (Ok(start), Ok(len)) => ranges.push((start, len)),
                    _ => return Ok(()),
                }
            }
        }
        let len = parquet::file::reader::Length::len(file);
        if ranges
            .iter()
            .any(|(s, l)| s.checked_add(*l).is_none_or(|e| e > len))
            || ranges.iter().map(|r| r.1).sum::<u64>() > PREFETCH_MAX_BYTES
        {
            return Ok(());
        }
        file.prefetch(&ranges).map_err(|source| AnalyzeError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Opens a segment of `table` for reading `columns` (top-level names), `BATCH_ROWS` rows at
/// a time. A column the file lacks reads as nulls when the table allows it. With
/// `page_index`, the file's page index is read too, when it has one (for reads that select
/// rows by page, see [`crate::source::pages`]).
fn open_with(path: &Path, table: Table, columns: &[&str], page_index: bool) -> Result<Opened> {
    let file = File::open(path)
        .and_then(PreadFile::new)
        .map_err(|source| AnalyzeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    // The Arrow schema a writer may store in the footer is not trusted (a damaged one
    // made arrow-ipc panic under fuzzing); the Parquet types are, and conform checks them.
    let options = ArrowReaderOptions::new()
        .with_skip_arrow_metadata(true)
        .with_page_index_policy(if page_index {
            PageIndexPolicy::Optional
        } else {
            PageIndexPolicy::Skip
        });
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file.clone(), options)
        .map_err(|e| bad(path, e))?;
    let mut opened = project(path, SegmentBuilder::Local(builder), table, columns)?;
    opened.file = Some(file);
    Ok(opened)
}

/// Opens a segment, local or in S3 (see [`open_with`]).
fn open_segment(seg: &Segment, table: Table, columns: &[&str]) -> Result<Opened> {
    open_segment_with(seg, table, columns, false)
}

/// [`open_segment`], with the page index of a local file when `page_index` is set. (A
/// samples segment in S3 has its page index read with its footer when its capture is
/// opened, see `remote::check_segment`.)
fn open_segment_with(
    seg: &Segment,
    table: Table,
    columns: &[&str],
    page_index: bool,
) -> Result<Opened> {
    match &seg.remote {
        None => open_with(&seg.path, table, columns, page_index),
        Some(r) => project(&seg.path, SegmentBuilder::remote(r)?, table, columns),
    }
}

/// Sets up reading `columns` of `table` from an opened segment.
fn project(path: &Path, builder: SegmentBuilder, table: Table, columns: &[&str]) -> Result<Opened> {
    let want = conform::project(&table.schema(), columns).map_err(|e| bad(path, e))?;
    let schema = builder.schema().clone();
    let mut roots = Vec::with_capacity(columns.len());
    for f in want.fields() {
        match schema.index_of(f.name()) {
            Ok(i) => roots.push(i),
            Err(_) if f.is_nullable() => {}
            Err(_) => return Err(bad(path, format!("no column '{}'", f.name()))),
        }
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    Ok(Opened {
        builder: builder
            .with_projection(mask.clone())
            .with_batch_size(BATCH_ROWS),
        want,
        mask,
        file: None,
    })
}

/// Reads every batch of a built reader as the table's types (a foreign writer's are cast,
/// see [`crate::sql::conform`]), naming the file on failure.
fn batches(path: &Path, opened: Opened) -> Result<impl Iterator<Item = Result<RecordBatch>> + '_> {
    let Opened { builder, want, .. } = opened;
    let reader = builder.build().map_err(|e| bad(path, e))?;
    Ok(reader.map(move |b| {
        let b = b.map_err(|e| bad(path, e))?;
        conform::conform(&b, &want).map_err(|e| bad(path, e))
    }))
}

/// Position of `name` in a batch (projection keeps the file's column order).
fn column<'b>(batch: &'b RecordBatch, name: &str, path: &Path) -> Result<&'b dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| bad(path, format!("no column '{name}'")))
}

/// Loads one copy of every stack. Every segment set repeats the stacks its samples use, so
/// the ids of all segments are read first (cheap), and frames only for each id's first row.
pub fn read_stacks(segs: &[Segment]) -> Result<IdMap<Frames>> {
    let ids: Vec<Vec<u64>> = segs
        .par_iter()
        .map(|s| {
            let mut out = Vec::new();
            let opened = open_segment(s, Table::Stacks, &[col::STACK_ID])?;
            opened.prefetch(&s.path, None)?;
            for b in batches(&s.path, opened)? {
                let b = b?;
                let ids = column(&b, col::STACK_ID, &s.path)?;
                out.extend(ids.as_primitive::<UInt64Type>().values().iter());
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    // The first row of each id, in segment order, so the copy kept is deterministic.
    let mut seen: IdMap<()> = IdMap::default();
    let wanted: Vec<Vec<usize>> = ids
        .iter()
        .enumerate()
        .map(|(k, file_ids)| {
            // A segment listing the ids of the one before it, in the same order, adds
            // none: one compare of the lists instead of a lookup per id (segment sets
            // usually repeat the same stacks: at 100M rows, 271 of 272 lists equal the
            // one before, 2.7 million lookups on one thread before the frames are read).
            if k > 0 && ids[k - 1] == *file_ids {
                return Vec::new();
            }
            file_ids
                .iter()
                .enumerate()
                .filter(|(_, id)| seen.insert(**id, ()).is_none())
                .map(|(row, _)| row)
                .collect()
        })
        .collect();
    let parts: Vec<Vec<(u64, Frames)>> = segs
        .par_iter()
        .zip(&wanted)
        .zip(&ids)
        .filter(|((_, rows), _)| !rows.is_empty())
        .map(|((s, rows), all)| read_stack_rows(s, rows, all.len()))
        .collect::<Result<_>>()?;
    let mut out = IdMap::default();
    out.reserve(seen.len());
    for (id, frames) in parts.into_iter().flatten() {
        out.entry(id).or_insert(frames);
    }
    Ok(out)
}

/// Decodes the frames of the given rows (sorted) of one stacks segment.
fn read_stack_rows(seg: &Segment, rows: &[usize], total: usize) -> Result<Vec<(u64, Frames)>> {
    let path = &seg.path;
    let mut opened = open_segment(seg, Table::Stacks, &[col::STACK_ID, col::FRAMES])?;
    if rows.len() < total {
        opened.builder = opened
            .builder
            .with_row_selection(RowSelection::from_consecutive_ranges(
                consecutive(rows).into_iter(),
                total,
            ));
    }
    let mut out = Vec::with_capacity(rows.len());
    for b in batches(path, opened)? {
        let b = b?;
        let ids = column(&b, col::STACK_ID, path)?.as_primitive::<UInt64Type>();
        let frames = FrameLists::new(column(&b, col::FRAMES, path)?.as_list::<i32>());
        // Rows in parallel too: the first segment of a capture holds nearly every stack,
        // so its frames were one thread's work while the other core waited (at 10,000
        // stacks, about 45 samples at 1 kHz; perf, 100M rows by stack).
        out.par_extend(
            (0..b.num_rows())
                .into_par_iter()
                .with_min_len(STACK_ROWS_PER_TASK)
                .map(|i| (ids.value(i), Frames::from(frames.frames(i)))),
        );
    }
    Ok(out)
}

/// Sorted indices as maximal ranges of consecutive values.
fn consecutive(rows: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &r in rows {
        match out.last_mut() {
            Some(last) if last.end == r => last.end = r + 1,
            _ => out.push(r..r + 1),
        }
    }
    out
}

/// What [`scan_samples`] reads and where each row goes.
pub struct SampleScan<'a> {
    /// `samples.kind` wanted: row groups whose statistics exclude it are not read.
    pub kind: &'a str,
    /// Value column (`inuse_bytes`, `goroutines`, ...); null values are skipped.
    pub column: &'a str,
    /// Profile id -> matrix column; rows of other profiles are skipped.
    pub profile_pos: &'a IdMap<usize>,
    /// Capture index of each matrix column's profile (the copy that counts).
    pub profile_capture: &'a [usize],
    /// Stack id -> dense stack index; rows of unknown stacks are skipped.
    pub stack_index: &'a IdMap<u32>,
    /// Group of each dense stack index.
    pub stack_group: &'a [u32],
    /// Number of groups (rows of the matrix).
    pub groups: usize,
    /// Called with the running total of rows read.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// The group x profile sums of one metric.
#[derive(Debug, Default)]
pub struct SampleMatrix {
    /// `groups x profiles` sums.
    pub matrix: Matrix,
    /// Whether any row of each profile was read (a profile without rows has a missing or
    /// corrupt samples segment).
    pub seen: Vec<bool>,
    /// Sum of values per dense stack index; `None` for stacks without rows.
    pub stack_weight: Vec<Option<f64>>,
    /// Sample rows of the counted profiles of this metric.
    pub rows: u64,
    /// Each profile column's total of the value column over every row read, rows of
    /// stacks outside any group included (see [`crate::source::totals`]); `None` when the
    /// scan read no rows to sum (no groups).
    pub totals: Option<Vec<Total>>,
}

/// The share of the work done by one rayon worker.
struct Partial {
    /// Profile columns this worker wrote to.
    seen: Vec<usize>,
    /// Summed value per dense stack index.
    weights: Vec<f64>,
    /// Whether each dense stack index had a row.
    present: Vec<bool>,
    rows: u64,
}

impl Partial {
    fn new(stacks: usize) -> Partial {
        Partial {
            seen: Vec::new(),
            weights: vec![0.0; stacks],
            present: vec![false; stacks],
            rows: 0,
        }
    }

    /// Adds the weight a [`Slot`] gathered for its stack.
    fn take(&mut self, slot: &Slot) {
        if slot.hit {
            self.weights[slot.si as usize] += slot.weight;
            self.present[slot.si as usize] = true;
        }
    }

    fn merge(mut self, other: Partial) -> Partial {
        self.seen.extend(other.seen);
        self.weights
            .iter_mut()
            .zip(&other.weights)
            .for_each(|(a, b)| *a += b);
        self.present
            .iter_mut()
            .zip(&other.present)
            .for_each(|(a, b)| *a |= b);
        self.rows += other.rows;
        self
    }
}

/// The row groups whose statistics of `column` pass `may_hold` (all of them when the file
/// has no such column).
fn kept_row_groups(
    builder: &SegmentBuilder,
    column: &str,
    may_hold: impl Fn(Option<&Statistics>) -> bool,
) -> Vec<usize> {
    let at = leaf_index(builder, column);
    builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| at.is_none_or(|k| may_hold(rg.column(k).statistics())))
        .map(|(i, _)| i)
        .collect()
}

/// Leaf index of the top-level column `column` in the file, if it has it.
fn leaf_index(builder: &SegmentBuilder, column: &str) -> Option<usize> {
    builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.name() == column)
}

/// Whether a row group's `kind` statistics allow rows of `kind`.
fn may_hold(stats: Option<&Statistics>, kind: &str) -> bool {
    let Some(Statistics::ByteArray(s)) = stats else {
        return true;
    };
    match (s.min_opt(), s.max_opt()) {
        (Some(lo), Some(hi)) => lo.data() <= kind.as_bytes() && kind.as_bytes() <= hi.data(),
        _ => true,
    }
}

/// One profile column of the matrix while the scan adds into it.
///
/// The matrix comes zeroed but untouched from the allocator. Adding (`+=`) into an
/// untouched page reads it first, which maps the shared zero page, and the write after it
/// faults again and flushes the TLB of every core (an interrupt per page; a VM exit in a
/// guest); and each random add into a column that is not in cache waits on memory. So a
/// column's first user writes its zeros once, sequentially, before the first add: one
/// plain fault per page, and the column is then in cache for the random adds.
struct Column<'m> {
    cells: ColumnMut<'m>,
    warm: bool,
    /// The profile's total of the value column, whatever the rows' stacks.
    total: IntSum,
}

impl Column<'_> {
    /// Writes the column's zeros, once, before its first add.
    fn warm_up(&mut self) {
        if !self.warm {
            self.cells.write_zeros();
            self.warm = true;
        }
    }
}

/// Profile columns of the matrix, each locked by the worker writing it (uncontended: a
/// profile's rows normally sit in one segment).
type Columns<'m> = [Mutex<Column<'m>>];

/// What the scan knows of the stack at one row position of a profile.
#[derive(Clone, Copy)]
struct Slot {
    /// The stack id seen last at this position.
    sid: u64,
    /// Its dense index, or `NO_STACK`.
    si: u32,
    /// Its group (`scan.stack_group[si]`).
    g: u32,
    /// Values of this stack's rows at this position since the slot was filled, not yet
    /// added to the worker's `weights`.
    weight: f64,
    /// Whether any such row had a value.
    hit: bool,
}

impl Slot {
    /// Adds the value of one row of the slot's stack.
    #[inline]
    fn add(&mut self, v: f64) {
        self.weight += v;
        self.hit = true;
    }
}

/// Dense stack indices and groups by row position within a profile, remembered from the
/// previous profile of the segment.
///
/// The profiles of one segment list mostly the same stacks in the same order, so a row's
/// stack id is usually the one at the same position of the previous profile: one compare
/// instead of a hash lookup per row. The group is kept with it, and the stack's weight is
/// summed at the position, so the row loop reads these tables in row order; only the
/// matrix cell is reached at random. With the group read through `stack_group[si]` and
/// the weight added to `weights[si]` per row, those two dependent random reads took as
/// many of the loop's samples as the cell itself (perf, by stack at 100M rows).
#[derive(Default)]
struct StackOrder {
    at: Vec<Slot>,
}

/// A stack id the scan does not know.
const NO_STACK: u32 = u32::MAX;

impl StackOrder {
    /// The slot of stack `sid` at row position `j` of a profile; a slot that held another
    /// stack hands its weight to `part` first.
    #[inline]
    fn slot(
        &mut self,
        j: usize,
        sid: u64,
        stacks: (&IdMap<u32>, &[u32]),
        part: &mut Partial,
    ) -> &mut Slot {
        if j < self.at.len() && self.at[j].sid == sid {
            return &mut self.at[j];
        }
        self.refill(j, sid, stacks, part)
    }

    /// [`StackOrder::slot`] when position `j` holds another stack or none yet: a hash
    /// lookup. Out of line, so the one compare of the usual case inlines into the row
    /// loop (as one call per row, the loop kept its values on the stack around the call:
    /// 14% of the CPU samples of `rank --by stack` at 100M rows were the loop and the call).
    #[cold]
    #[inline(never)]
    fn refill(
        &mut self,
        j: usize,
        sid: u64,
        (stack_index, stack_group): (&IdMap<u32>, &[u32]),
        part: &mut Partial,
    ) -> &mut Slot {
        let si = stack_index.get(&sid).copied().unwrap_or(NO_STACK);
        let g = match si {
            NO_STACK => NO_STACK,
            si => stack_group[si as usize],
        };
        let fresh = Slot {
            sid,
            si,
            g,
            weight: 0.0,
            hit: false,
        };
        if j < self.at.len() {
            let old = std::mem::replace(&mut self.at[j], fresh);
            part.take(&old);
        } else {
            // Positions the scan skipped (rows of profiles that do not count, null values)
            // get this stack's mapping too: it is a true one, so a later row of the same
            // stack there is answered right, and any other stack replaces it.
            self.at.resize(j + 1, fresh);
        }
        &mut self.at[j]
    }

    /// Hands every slot's weight to `part` (at the end of a segment).
    fn flush(&mut self, part: &mut Partial) {
        for slot in self.at.drain(..) {
            part.take(&slot);
        }
    }
}

/// Consecutive rows of one profile within a batch.
struct Rows<'b> {
    /// Position of the first row within its profile.
    at: usize,
    /// The rows' stack ids.
    sid: &'b [u64],
    /// The rows' values (null ones are skipped through `valid`).
    values: &'b [i64],
}

/// Adds rows of one profile to its matrix column, its total and the stacks' weights;
/// `valid(k)` says whether row `k` of the run has a value. The total is summed in a local
/// and added once: through the column it was a load and a store per row.
#[inline]
fn add_rows(
    column: &mut Column,
    order: &mut StackOrder,
    stacks: (&IdMap<u32>, &[u32]),
    part: &mut Partial,
    rows: Rows,
    valid: impl Fn(usize) -> bool,
) {
    let (mut sum, mut any) = (0i64, false);
    let n = rows.sid.len().min(rows.values.len());
    let mut k = 0;
    // While the column is narrow, rows add straight into its `u32` cells, without asking
    // per row whether it widened (a load and a branch each). The first sum that does not
    // fit stops this loop before anything of its row is added, and the loop below goes
    // on from that row, widening the column.
    if let Some(cells) = column.cells.narrow_mut() {
        while k < n {
            if valid(k) {
                let v = rows.values[k];
                let slot = order.slot(rows.at + k, rows.sid[k], stacks, part);
                if slot.si != NO_STACK {
                    let cell = &mut cells[slot.g as usize];
                    match u32::try_from(v).ok().and_then(|v| cell.checked_add(v)) {
                        Some(s) => *cell = s,
                        None => break,
                    }
                    slot.add(v as f64);
                }
                sum = sum.wrapping_add(v);
                any = true;
            }
            k += 1;
        }
    }
    for (k, (&sid, &v)) in rows.sid[..n]
        .iter()
        .zip(&rows.values[..n])
        .enumerate()
        .skip(k)
    {
        if !valid(k) {
            continue;
        }
        // Summed here, before the stack is looked up, so the report's timeline needs no
        // second scan (a GROUP BY over all 100M rows took 1.9 s CPU; this add did not
        // measurably change the scan).
        sum = sum.wrapping_add(v);
        any = true;
        let slot = order.slot(rows.at + k, sid, stacks, part);
        if slot.si == NO_STACK {
            continue;
        }
        slot.add(v as f64);
        column.cells.add(slot.g as usize, v);
    }
    column.total.add_sum(any.then_some(sum));
}

/// Adds one segment's rows to `part` and to the matrix columns.
fn scan_one(
    seg: &Segment,
    scan: &SampleScan,
    columns: &Columns,
    total: &AtomicU64,
    part: &mut Partial,
) -> Result<()> {
    let path = &seg.path;
    let mut opened = open_segment(
        seg,
        Table::Samples,
        &[col::STACK_ID, col::PROFILE_ID, scan.column],
    )?;
    let keep = kept_row_groups(&opened.builder, col::KIND, |s| may_hold(s, scan.kind));
    if keep.is_empty() {
        return Ok(());
    }
    opened.prefetch(path, Some(&keep))?;
    opened.builder = opened.builder.with_row_groups(keep);
    let mut order = StackOrder::default();
    let stacks = (scan.stack_index, scan.stack_group);
    // The profile being read and the row position within it; a profile may span batches.
    let mut last_pid = None;
    let mut j = 0;
    for b in batches(path, opened)? {
        let b = b?;
        let sid = column(&b, col::STACK_ID, path)?.as_primitive::<UInt64Type>();
        let pid = column(&b, col::PROFILE_ID, path)?.as_primitive::<UInt64Type>();
        let val = column(&b, scan.column, path)?.as_primitive::<Int64Type>();
        let nulls = val.nulls().filter(|n| n.null_count() > 0);
        let (sid, pid, values) = (sid.values(), pid.values(), val.values());
        // Rows of the profiles that count (not every row of the row groups read), so the
        // number is the same whichever engine reads and however segments are laid out.
        let mut counted = 0u64;
        // The batch as runs of rows of one profile: the profile's column is looked up and
        // locked once per run, and the rows of a run go through `add_rows` without a test
        // of their profile each.
        let mut lo = 0;
        while lo < pid.len() {
            let p_id = pid[lo];
            let hi = lo + pid[lo..].iter().take_while(|&&p| p == p_id).count();
            if last_pid != Some(p_id) {
                last_pid = Some(p_id);
                j = 0;
            }
            let at = j;
            j += hi - lo;
            let rows = lo..hi;
            lo = hi;
            let Some(&p) = scan.profile_pos.get(&p_id) else {
                continue;
            };
            if scan.profile_capture[p] != seg.capture {
                continue;
            }
            part.seen.push(p);
            counted += rows.len() as u64;
            let mut column = columns[p].lock().unwrap_or_else(|e| e.into_inner());
            column.warm_up();
            let run = Rows {
                at,
                sid: &sid[rows.clone()],
                values: &values[rows.clone()],
            };
            match nulls {
                None => add_rows(&mut column, &mut order, stacks, part, run, |_| true),
                Some(n) => add_rows(&mut column, &mut order, stacks, part, run, |k| {
                    n.is_valid(rows.start + k)
                }),
            }
        }
        part.rows += counted;
        let now = total.fetch_add(b.num_rows() as u64, Ordering::Relaxed) + b.num_rows() as u64;
        (scan.progress)(now);
    }
    order.flush(part);
    Ok(())
}

/// Reads the sample rows of one metric from every segment in parallel into a matrix.
/// A profile whose rows span several segments of its capture is summed across them.
pub fn scan_samples(segs: &[Segment], scan: &SampleScan, profiles: usize) -> Result<SampleMatrix> {
    let total = AtomicU64::new(0);
    let stacks = scan.stack_group.len();
    let mut matrix = Matrix::zeroed(scan.groups, profiles);
    let (part, sums) = if scan.groups == 0 {
        (Partial::new(stacks), None)
    } else {
        let columns: Vec<Mutex<Column>> = matrix
            .columns_mut()
            .into_iter()
            .map(|cells| {
                Mutex::new(Column {
                    cells,
                    warm: false,
                    total: IntSum::default(),
                })
            })
            .collect();
        let part = segs
            .par_iter()
            .try_fold(
                || Partial::new(stacks),
                |mut part, s| scan_one(s, scan, &columns, &total, &mut part).map(|_| part),
            )
            .try_reduce(|| Partial::new(stacks), |a, b| Ok(a.merge(b)))?;
        let sums: Vec<IntSum> = columns
            .into_iter()
            .map(|c| c.into_inner().unwrap_or_else(|e| e.into_inner()).total)
            .collect();
        (part, Some(sums))
    };
    let mut seen = vec![false; profiles];
    for p in part.seen {
        seen[p] = true;
    }
    let totals = sums.map(|sums| sums.iter().zip(&seen).map(|(s, r)| s.total(*r)).collect());
    Ok(SampleMatrix {
        matrix,
        seen,
        stack_weight: part
            .weights
            .iter()
            .zip(&part.present)
            .map(|(w, p)| p.then_some(*w))
            .collect(),
        rows: part.rows,
        totals,
    })
}

/// Whether a row group's `time` statistics (ns) may include one of `times`.
fn may_hold_time(stats: Option<&Statistics>, times: &[i64]) -> bool {
    let Some(Statistics::Int64(s)) = stats else {
        return true;
    };
    match (s.min_opt(), s.max_opt()) {
        (Some(lo), Some(hi)) => holds_any(times, *lo, *hi),
        _ => true,
    }
}

/// Whether one of `times` lies in `[lo, hi]` (a row group's or a page's time range).
fn holds_any(times: &[i64], lo: i64, hi: i64) -> bool {
    times.iter().any(|t| lo <= *t && *t <= hi)
}

/// Sums of `columns` per group at a few chosen profiles (profile id -> slot), read from
/// only the row groups whose time range holds one of `times` (those profiles' times).
/// Returns one `slots x groups` table (slot-major) per column; null values count as 0.
pub struct SumsAt<'a> {
    /// Profile id -> slot.
    pub slots: &'a IdMap<usize>,
    /// Number of slots.
    pub nslots: usize,
    /// Times (ns) of the chosen profiles, for row-group pruning.
    pub times: &'a [i64],
    /// Int64 sample columns to sum.
    pub columns: &'a [&'a str],
    /// Stack id -> dense stack index.
    pub stack_index: &'a IdMap<u32>,
    /// Dense stack index -> group.
    pub stack_group: &'a [u32],
    /// Number of groups.
    pub groups: usize,
}

/// Opens a samples segment for `wanted` columns, keeping only the row groups, and within
/// them the pages (when the file has a page index), whose time range may hold one of
/// `times` (ns); `None` when no row group may.
fn open_at_times(seg: &Segment, wanted: &[&str], times: &[i64]) -> Result<Option<Opened>> {
    let path = &seg.path;
    let mut opened = open_segment_with(seg, Table::Samples, wanted, true)?;
    // Statistics are in the file's unit: prune only when that is the capture's (ns).
    let ns = opened
        .builder
        .schema()
        .field_with_name(col::TIME)
        .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(TimeUnit::Nanosecond, _)));
    if !ns {
        return Ok(Some(opened));
    }
    let keep = kept_row_groups(&opened.builder, col::TIME, |s| may_hold_time(s, times));
    if keep.is_empty() {
        return Ok(None);
    }
    let pages = leaf_index(&opened.builder, col::TIME).and_then(|k| {
        select_int64_pages(opened.builder.metadata(), &keep, k, |lo, hi| {
            holds_any(times, lo, hi)
        })
    });
    opened.builder = opened.builder.with_row_groups(keep);
    log::trace!(
        "{}: rows selected by page: {:?}",
        path.display(),
        pages.as_ref().map(|p| p.row_count())
    );
    if let Some(pages) = pages {
        opened.builder = opened.builder.with_row_selection(pages);
    }
    Ok(Some(opened))
}

/// Reads the sums described by `at` from every segment in parallel.
pub fn sums_at(segs: &[Segment], at: &SumsAt) -> Result<Vec<Vec<f64>>> {
    let width = at.nslots * at.groups;
    let zero = || vec![vec![0.0; width]; at.columns.len()];
    segs.par_iter()
        .try_fold(zero, |mut acc, seg| {
            let path = &seg.path;
            let mut wanted = vec![col::STACK_ID, col::PROFILE_ID];
            wanted.extend_from_slice(at.columns);
            let Some(opened) = open_at_times(seg, &wanted, at.times)? else {
                return Ok(acc);
            };
            for b in batches(path, opened)? {
                let b = b?;
                let sid = column(&b, col::STACK_ID, path)?.as_primitive::<UInt64Type>();
                let pid = column(&b, col::PROFILE_ID, path)?.as_primitive::<UInt64Type>();
                let cols = at
                    .columns
                    .iter()
                    .map(|c| Ok(column(&b, c, path)?.as_primitive::<Int64Type>()))
                    .collect::<Result<Vec<_>>>()?;
                for i in 0..b.num_rows() {
                    let Some(&slot) = at.slots.get(&pid.value(i)) else {
                        continue;
                    };
                    let Some(&si) = at.stack_index.get(&sid.value(i)) else {
                        continue;
                    };
                    let cell = slot * at.groups + at.stack_group[si as usize] as usize;
                    for (sum, col) in acc.iter_mut().zip(&cols) {
                        if !col.is_null(i) {
                            sum[cell] += col.value(i) as f64;
                        }
                    }
                }
            }
            Ok(acc)
        })
        .try_reduce(zero, |mut a, b| {
            for (x, y) in a.iter_mut().zip(b) {
                for (p, q) in x.iter_mut().zip(y) {
                    *p += q;
                }
            }
            Ok(a)
        })
}

/// One profile whose rows [`profile_stack_sums`] sums: the rows that SQL's `WHERE capture
/// = .. AND kind = .. AND time = .. AND profile_id = ..` selects.
#[derive(Debug, Clone, Copy)]
pub struct WantedProfile<'a> {
    /// Index of its capture in [`Catalog::captures`].
    pub capture: usize,
    /// Profile kind (`heap`, `goroutine`, `native`).
    pub kind: &'a str,
    /// Profile time, ns since the epoch.
    pub time_ns: i64,
    /// Profile id.
    pub profile_id: u64,
}

/// Per wanted profile, the sums of `columns` (Int64 sample columns; a null counts 0, and a
/// sum saturates) of each stack id's rows: what `SELECT stack_id, SUM(COALESCE(c, 0)) ..
/// GROUP BY stack_id` gives for each, in one parallel pass over the segments that reads
/// only the row groups and pages whose time range holds a wanted time. Stack ids without
/// a stack row are kept: the caller decides what an unknown stack is.
///
/// Why not SQL: the report's flame graphs asked DataFusion for two profiles one after the
/// other, and each query planned and opened every samples file and decoded the whole row
/// group holding its profile: 0.10-0.12 s of `leakscope sql` each on the 100M-row
/// capture, most of what the report added to the ranking.
pub fn profile_stack_sums(
    segs: &[Segment],
    wanted: &[WantedProfile],
    columns: &[&str],
) -> Result<Vec<IdMap<Vec<i64>>>> {
    let empty = || vec![IdMap::<Vec<i64>>::default(); wanted.len()];
    segs.par_iter()
        .try_fold(empty, |mut acc, seg| {
            let mine: Vec<usize> = (0..wanted.len())
                .filter(|&w| wanted[w].capture == seg.capture)
                .collect();
            if mine.is_empty() {
                return Ok(acc);
            }
            let times: Vec<i64> = mine.iter().map(|&w| wanted[w].time_ns).collect();
            let path = &seg.path;
            let mut read = vec![col::STACK_ID, col::PROFILE_ID, col::TIME, col::KIND];
            read.extend_from_slice(columns);
            let Some(opened) = open_at_times(seg, &read, &times)? else {
                return Ok(acc);
            };
            for b in batches(path, opened)? {
                let b = b?;
                let sid = column(&b, col::STACK_ID, path)?.as_primitive::<UInt64Type>();
                let pid = column(&b, col::PROFILE_ID, path)?.as_primitive::<UInt64Type>();
                let time = column(&b, col::TIME, path)?.as_primitive::<TimestampNanosecondType>();
                let kind = column(&b, col::KIND, path)?.as_string::<i32>();
                let values = columns
                    .iter()
                    .map(|c| Ok(column(&b, c, path)?.as_primitive::<Int64Type>()))
                    .collect::<Result<Vec<_>>>()?;
                for i in 0..b.num_rows() {
                    let p = pid.value(i);
                    // Every wanted profile the row belongs to (one may be asked for twice).
                    for &w in &mine {
                        let want = &wanted[w];
                        if want.profile_id != p
                            || time.value(i) != want.time_ns
                            || kind.value(i) != want.kind
                        {
                            continue;
                        }
                        let sums = acc[w]
                            .entry(sid.value(i))
                            .or_insert_with(|| vec![0; columns.len()]);
                        for (sum, v) in sums.iter_mut().zip(&values) {
                            if v.is_valid(i) {
                                *sum = sum.saturating_add(v.value(i));
                            }
                        }
                    }
                }
            }
            Ok(acc)
        })
        .try_reduce(empty, |mut a, b| {
            for (into, from) in a.iter_mut().zip(b) {
                for (id, sums) in from {
                    let to = into.entry(id).or_insert_with(|| vec![0; sums.len()]);
                    for (x, y) in to.iter_mut().zip(sums) {
                        *x = x.saturating_add(y);
                    }
                }
            }
            Ok(a)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_order_answers_like_the_map_and_keeps_every_weight_whatever_the_order() {
        let map: IdMap<u32> = [(10, 0), (20, 1), (30, 2)].into_iter().collect();
        let groups = [5u32, 3, 5];
        let mut order = StackOrder::default();
        let mut part = Partial::new(3);
        let mut want = [0.0f64; 3];
        // Same order, a permutation, a shorter profile, unknown ids, a longer profile.
        let profiles: [&[u64]; 5] = [
            &[10, 20, 30],
            &[10, 20, 30],
            &[30, 10, 20],
            &[20],
            &[99, 10, 20, 30, 7],
        ];
        let mut value = 0.0;
        // Positions the scan skips (rows of profiles that do not count, null values) leave
        // gaps: a first profile seen only from position 3, then every position.
        for (j, sid) in [(3usize, 30u64), (5, 10)] {
            let slot = order.slot(j, sid, (&map, &groups), &mut part);
            let si = map[&sid];
            assert_eq!((slot.si, slot.g), (si, groups[si as usize]));
            value += 1.0;
            slot.add(value);
            want[si as usize] += value;
        }
        for ids in profiles {
            for (j, sid) in ids.iter().enumerate() {
                let si = map.get(sid).copied().unwrap_or(NO_STACK);
                let slot = order.slot(j, *sid, (&map, &groups), &mut part);
                assert_eq!(slot.si, si, "{ids:?} at {j}");
                if si != NO_STACK {
                    assert_eq!(slot.g, groups[si as usize]);
                    value += 1.0;
                    slot.add(value);
                    want[si as usize] += value;
                }
            }
        }
        order.flush(&mut part);
        assert_eq!(part.weights, want);
        assert_eq!(part.present, [true; 3]);
    }

    /// `add_rows` over runs of one profile, with rows skipped as null and a stack the scan
    /// does not know, sums what adding row by row does: cells, the profile's total (only
    /// its valid rows), and every stack's weight. The column widens on a sum over `u32` or
    /// a negative value in the middle of a run, and rows after that add as `f64`.
    #[test]
    fn rows_of_a_run_add_like_row_by_row_and_skip_the_null_ones() {
        let map: IdMap<u32> = [(10, 0), (20, 1), (30, 2)].into_iter().collect();
        let groups = [1u32, 0, 1];
        let sids = [10u64, 20, 30, 99, 10, 20, 30, 30, 20, 10];
        let cases: [[i64; 10]; 4] = [
            // Narrow throughout.
            [5, 7, 11, 13, 17, 19, 23, 4_000_000_000, 1, 2],
            // Over `u32` at row 6 (the second run's fourth row), in group 1.
            [5, 7, 11, 13, 17, 19, 4_294_967_290, 23, 3, 29],
            // A negative value in the first run.
            [5, -7, 11, 13, 17, 19, 23, 31, 3, 29],
            // A single value over `u32`, then a negative one.
            [5, 7, 11, 13, 1 << 40, 19, 23, 31, -3, 29],
        ];
        let null = |k: usize| k == 2 || k == 5;
        for values in cases {
            let mut matrix = Matrix::zeroed(2, 1);
            let mut column = Column {
                cells: matrix.columns_mut().into_iter().next().unwrap(),
                warm: false,
                total: IntSum::default(),
            };
            column.warm_up();
            let (mut order, mut part) = (StackOrder::default(), Partial::new(3));
            // The profile's rows in two runs (a batch boundary after the third row).
            for (at, rows) in [(0, 0..3), (3, 3..10)] {
                let run = Rows {
                    at,
                    sid: &sids[rows.clone()],
                    values: &values[rows.clone()],
                };
                add_rows(
                    &mut column,
                    &mut order,
                    (&map, &groups),
                    &mut part,
                    run,
                    |k| !null(rows.start + k),
                );
            }
            order.flush(&mut part);
            // The column's last use: the matrix is readable again after it.
            let total = column.total.total(true);
            let (mut cells, mut sum, mut weights) = ([0.0f64; 2], 0i64, [0.0f64; 3]);
            for (k, (sid, v)) in sids.iter().zip(values).enumerate() {
                if null(k) {
                    continue;
                }
                sum += v;
                if let Some(&si) = map.get(sid) {
                    cells[groups[si as usize] as usize] += v as f64;
                    weights[si as usize] += v as f64;
                }
            }
            assert_eq!(total, Total::Sum(Some(sum)), "{values:?}");
            let col = matrix.column(0);
            assert_eq!([col.get(0), col.get(1)], cells, "{values:?}");
            assert_eq!(part.weights, weights, "{values:?}");
            assert_eq!(part.present, [true; 3], "{values:?}");
        }
    }

    /// Regression (found by the capture crate's `capture_read` fuzz target): a segment whose
    /// footer carries a damaged Arrow schema made arrow-ipc panic; the scans and the
    /// catalog's check now open it from its Parquet types alone, failing cleanly or reading.
    #[test]
    fn a_damaged_embedded_arrow_schema_is_no_panic() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../capture/tests/data/bad-arrow-schema.parquet");
        for table in Table::ALL {
            let _ =
                open_with(&path, table, &[], false).map(|o| batches(&path, o).map(|b| b.count()));
        }
    }

    #[test]
    fn consecutive_ranges() {
        assert_eq!(consecutive(&[0, 1, 2, 5, 7, 8]), vec![0..3, 5..6, 7..9]);
        assert!(consecutive(&[]).is_empty());
    }
}
