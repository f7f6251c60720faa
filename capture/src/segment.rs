//! Crash-safe segment writing, rotation and retention.
//!
//! Rows are buffered in memory per table, encoded: every table's rows go, a few hundred KiB
//! at a time, into a Parquet file being written in memory (zstd pages, not Rust structs, so a
//! minute of 1 s scrapes costs a few MiB instead of ~25 MiB: docs/performance.md). Nothing
//! reaches the disk before rotation. On rotation every table with rows is finished and
//! written to a hidden temporary file (`.NAME.parquet.tmp`), fsynced and renamed to its final
//! name, stacks first; once every file of the set is in place, an empty commit marker
//! `_commits/STEM.commit` is created and its directory fsynced. Readers take a set only when
//! its marker exists, so a `kill -9` between two tables' renames leaves nothing visible,
//! and loses at most the rows buffered since the last rotation. Each segment set carries
//! every stack its samples reference, so a committed set is self-contained. A capture
//! without a `_commits` folder predates markers: every set in it is taken (see
//! [`ensure_commit_markers`] for how a writer upgrades it).
//!
//! Layout: `TABLE/date=YYYY-MM-DD/YYYYMMDDTHHMMSS.mmmZ-SEQ-TAG.parquet`; names sort by the
//! recorder's clock at the set's first row, never by the target's.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::io::Write;

use arrow_array::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::durable::{create_dir_all, sync_dir};
use crate::rows::{
    self, NativeCountersRow, NativeEventRow, NativeOutstandingRow, ProcessRow, ProfileRow,
    SampleRow, ScrapeRow, StackRow,
};
use crate::schema::{Table, PARTITION_COLUMN};
use crate::{CaptureError, Result};

/// Folder (in the capture directory) of the segment sets' commit markers.
pub const COMMITS_DIR: &str = "_commits";

/// File name ending of a commit marker: `_commits/STEM.commit`.
pub const COMMIT_SUFFIX: &str = ".commit";

/// Path of set `stem`'s commit marker relative to the capture root, `/`-separated
/// (`_commits/STEM.commit`): the one place that names markers, locally and under a remote
/// prefix alike.
pub fn marker_relpath(stem: &str) -> String {
    format!("{COMMITS_DIR}/{stem}{COMMIT_SUFFIX}")
}

/// The set stem named by a commit marker's file name (`STEM.commit`), or `None` for any
/// other name (temporaries and dot-files included).
pub fn marker_stem(file_name: &str) -> Option<&str> {
    if file_name.starts_with('.') {
        return None;
    }
    file_name
        .strip_suffix(COMMIT_SUFFIX)
        .filter(|s| !s.is_empty() && !s.contains('/'))
}

/// The writer's clock: ns since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// This machine's clock, in ns since the Unix epoch (saturating, never panics).
pub fn system_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// When a segment set is closed and a new one started.
#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    /// Maximum time span of one segment, in ns.
    pub max_age_ns: i64,
    /// Maximum estimated buffered size before rotating, in bytes.
    pub max_bytes: usize,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            max_age_ns: 5 * 60 * 1_000_000_000,
            max_bytes: 16 << 20,
        }
    }
}

/// Estimated bytes of one table's rows held as Rust structs before they are encoded into the
/// table's in-memory Parquet file. Rows as structs cost about 400 bytes of RSS each (two
/// `String`s per sample row, Vec slack); encoded they cost a few bytes. 128 KiB is about
/// 1,000 sample rows, one scrape of the leaky-service fixture, so structs never hold more
/// than about one tick.
const ENCODE_AFTER_BYTES: usize = 128 << 10;

/// In-memory Parquet a table's writer holds before its row group is closed, with
/// [`SegmentWriter::set_low_memory_encoding`]: 2 MiB is about 20,000 sample rows, a few row
/// groups per minute at `--interval 1s` and one at 10 s.
const LOW_MEMORY_ROW_GROUP: usize = 2 << 20;

/// One table's encoded rows of the open set.
enum Encoded {
    /// A Parquet file being written in memory.
    Open(Box<ArrowWriter<Vec<u8>>>),
    /// The finished file of a commit that failed, kept as is for the retry.
    Finished(Vec<u8>),
}

/// Buffers rows for every table and commits them as Parquet segments.
pub struct SegmentWriter {
    dir: PathBuf,
    policy: RotationPolicy,
    tag: String,
    seq: u64,
    start_ns: Option<i64>,
    profiles: Vec<ProfileRow>,
    samples: Vec<SampleRow>,
    stacks: Vec<StackRow>,
    process: Vec<ProcessRow>,
    scrapes: Vec<ScrapeRow>,
    native_outstanding: Vec<NativeOutstandingRow>,
    native_events: Vec<NativeEventRow>,
    native_counters: Vec<NativeCountersRow>,
    stacks_in_segment: HashSet<u64>,
    buffered_bytes: usize,
    /// Per table (index in [`Table::ALL`]): the rows already encoded.
    encoded: [Option<Encoded>; 8],
    /// Per table: estimated bytes of the rows still held as structs.
    pending_bytes: [usize; 8],
    /// Set by [`Self::set_low_memory_encoding`].
    low_memory: bool,
    props: Arc<WriterProperties>,
    clock: Clock,
}

impl SegmentWriter {
    /// A writer for capture directory `dir` (which must exist).
    pub fn new(dir: &Path, policy: RotationPolicy) -> Self {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
            .set_max_row_group_row_count(Some(1 << 20))
            .build();
        SegmentWriter {
            dir: dir.to_path_buf(),
            policy,
            tag: format!(
                "{:08x}",
                (std::process::id() as u64) << 16 ^ fastish_nonce()
            ),
            seq: 0,
            start_ns: None,
            profiles: Vec::new(),
            samples: Vec::new(),
            stacks: Vec::new(),
            process: Vec::new(),
            scrapes: Vec::new(),
            native_outstanding: Vec::new(),
            native_events: Vec::new(),
            native_counters: Vec::new(),
            stacks_in_segment: HashSet::new(),
            buffered_bytes: 0,
            encoded: Default::default(),
            pending_bytes: [0; 8],
            low_memory: false,
            props: Arc::new(props),
            clock: Arc::new(system_now_ns),
        }
    }

    /// Encodes for a long-lived writer of small sets (the recorder), whose memory between
    /// two commits matters more than the last percent of compression: no dictionaries
    /// (except in `stacks`, whose repeated frame names they shrink), and a table's row group
    /// is closed once its writer holds [`LOW_MEMORY_ROW_GROUP`]. Measured on one minute of
    /// 1 s scrapes of the leaky-service fixture (55,884 sample rows, live heap counted by a
    /// counting allocator): the samples writer held 3.3 MiB with the defaults and 1.8 MiB so,
    /// and wrote a smaller file (97 KiB against 151 KiB: zstd does better on plain values
    /// than on dictionary indices); the process writer (45 columns, 61 rows) held 2.5 MiB of
    /// empty dictionaries with the defaults, 0.1 MiB so. Each closed row group also frees
    /// its columns' zstd contexts, which otherwise live until the commit (heaptrack: 10 MiB of
    /// `ZSTD_resetCCtx_internal` at the peak with 64 KiB pages and one row group). `import`
    /// and bulk writers keep the defaults, on which the analyzer's benchmarks were measured.
    pub fn set_low_memory_encoding(&mut self) {
        self.low_memory = true;
    }

    /// Replaces the writer's clock (this machine's by default); for tests.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The writer's clock now: what set stamps, partitions and rotation go by.
    pub fn now_ns(&self) -> i64 {
        (self.clock)()
    }

    /// True when the open set should be committed now (see [`Self::should_rotate`]).
    pub fn should_rotate_now(&self) -> bool {
        self.should_rotate(self.now_ns())
    }

    /// The capture directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counts a buffered row of `table`. The set's stamp is the writer's clock at its first
    /// row; the row's own time (maybe the target's clock) never names or dates a set.
    fn touch(&mut self, table: Table, _row_time_ns: i64, bytes: usize) {
        if self.start_ns.is_none() {
            self.start_ns = Some(self.now_ns());
        }
        self.buffered_bytes = self.buffered_bytes.saturating_add(bytes);
        let i = table_index(table);
        self.pending_bytes[i] = self.pending_bytes[i].saturating_add(bytes);
    }

    /// Encodes `table`'s rows once enough of them are held as structs. A failure keeps the
    /// rows as they are: [`Self::rotate`] encodes them again and reports it.
    fn maybe_encode(&mut self, table: Table) {
        if self.pending_bytes[table_index(table)] >= ENCODE_AFTER_BYTES {
            if let Err(e) = self.encode(table) {
                log::warn!("encoding buffered {} rows: {e}", table.name());
            }
        }
    }

    /// Moves `table`'s rows held as structs into its in-memory Parquet file.
    fn encode(&mut self, table: Table) -> Result<()> {
        let batch = match table {
            Table::Stacks if !self.stacks.is_empty() => rows::stacks_batch(&self.stacks),
            Table::Profiles if !self.profiles.is_empty() => rows::profiles_batch(&self.profiles),
            Table::Samples if !self.samples.is_empty() => rows::samples_batch(&self.samples),
            Table::Process if !self.process.is_empty() => rows::process_batch(&self.process),
            Table::Scrapes if !self.scrapes.is_empty() => rows::scrapes_batch(&self.scrapes),
            Table::NativeOutstanding if !self.native_outstanding.is_empty() => {
                rows::native_outstanding_batch(&self.native_outstanding)
            }
            Table::NativeEvents if !self.native_events.is_empty() => {
                rows::native_events_batch(&self.native_events)
            }
            Table::NativeCounters if !self.native_counters.is_empty() => {
                rows::native_counters_batch(&self.native_counters)
            }
            _ => return Ok(()),
        }?;
        let i = table_index(table);
        let name = self.dir.join(table.name());
        let writer = match self.encoded[i].take() {
            Some(Encoded::Open(w)) => w,
            Some(Encoded::Finished(bytes)) => {
                // Rows after a failed commit: the retry rewrites the whole set, so start the
                // file again from the rows of the finished one (rare: only after a failure).
                let reopened = reopen(&bytes, &batch, &self.props_for(table));
                match reopened {
                    Ok(w) => w,
                    Err(e) => {
                        self.encoded[i] = Some(Encoded::Finished(bytes));
                        return Err(CaptureError::parquet(name, e));
                    }
                }
            }
            None => Box::new(
                ArrowWriter::try_new(Vec::new(), batch.schema(), Some(self.props_for(table)))
                    .map_err(|e| CaptureError::parquet(&name, e))?,
            ),
        };
        let mut writer = writer;
        let written = writer.write(&batch);
        let flushed = match written {
            Ok(()) if self.low_memory && writer.memory_size() > LOW_MEMORY_ROW_GROUP => {
                writer.flush()
            }
            _ => Ok(()),
        };
        // A failed write leaves the writer unusable for this batch, but what it wrote before
        // is intact; the rows stay held as structs for the next attempt.
        self.encoded[i] = Some(Encoded::Open(writer));
        written.map_err(|e| CaptureError::parquet(&name, e))?;
        match table {
            Table::Stacks => self.stacks.clear(),
            Table::Profiles => self.profiles.clear(),
            Table::Samples => self.samples.clear(),
            Table::Process => self.process.clear(),
            Table::Scrapes => self.scrapes.clear(),
            Table::NativeOutstanding => self.native_outstanding.clear(),
            Table::NativeEvents => self.native_events.clear(),
            Table::NativeCounters => self.native_counters.clear(),
        }
        self.pending_bytes[i] = 0;
        // The rows are in the writer even when closing the row group failed; such a writer
        // fails again at the commit, which then keeps the set for its retry.
        flushed.map_err(|e| CaptureError::parquet(&name, e))
    }

    /// The Parquet writer properties of `table`'s files.
    fn props_for(&self, table: Table) -> WriterProperties {
        let props = (*self.props).clone();
        if self.low_memory && table != Table::Stacks {
            props.into_builder().set_dictionary_enabled(false).build()
        } else {
            props
        }
    }

    /// `table`'s finished Parquet file of the open set, or None when it has no rows.
    fn finish(&mut self, table: Table) -> Result<Option<&[u8]>> {
        self.encode(table)?;
        let i = table_index(table);
        if let Some(Encoded::Open(_)) = &self.encoded[i] {
            if let Some(Encoded::Open(w)) = self.encoded[i].take() {
                let bytes = w
                    .into_inner()
                    .map_err(|e| CaptureError::parquet(self.dir.join(table.name()), e))?;
                self.encoded[i] = Some(Encoded::Finished(bytes));
            }
        }
        Ok(match &self.encoded[i] {
            Some(Encoded::Finished(bytes)) => Some(bytes.as_slice()),
            _ => None,
        })
    }

    /// Buffers a profile row.
    pub fn add_profile(&mut self, row: ProfileRow) {
        let size = 128 + row.target.len() + row.source.len() + row.sample_types.len() * 24;
        self.touch(Table::Profiles, row.time_ns, size);
        self.profiles.push(row);
        self.maybe_encode(Table::Profiles);
    }

    /// Buffers a sample row.
    pub fn add_sample(&mut self, row: SampleRow) {
        let size = 96 + row.run_id.len() + row.labels.as_ref().map_or(0, |l| l.len());
        self.touch(Table::Samples, row.time_ns, size);
        self.samples.push(row);
        self.maybe_encode(Table::Samples);
    }

    /// True when stack `stack_id` is already part of the open segment set.
    pub fn has_stack(&self, stack_id: u64) -> bool {
        self.stacks_in_segment.contains(&stack_id)
    }

    /// Buffers a stack unless the open segment set already has it.
    pub fn add_stack(&mut self, row: StackRow) {
        if self.stacks_in_segment.insert(row.stack_id) {
            let size = 32
                + row
                    .frames
                    .iter()
                    .map(|f| 64 + f.function.len() + f.file.len())
                    .sum::<usize>();
            self.touch(Table::Stacks, 0, size);
            self.stacks.push(row);
            self.maybe_encode(Table::Stacks);
        }
    }

    /// Buffers a process row.
    pub fn add_process(&mut self, row: ProcessRow) {
        self.touch(Table::Process, row.time_ns, 64 + row.metrics.len() * 9);
        self.process.push(row);
        self.maybe_encode(Table::Process);
    }

    /// Buffers a scrape row.
    pub fn add_scrape(&mut self, row: ScrapeRow) {
        let size = 96 + row.endpoint.len() + row.error.as_ref().map_or(0, |e| e.len());
        self.touch(Table::Scrapes, row.time_ns, size);
        self.scrapes.push(row);
        self.maybe_encode(Table::Scrapes);
    }

    /// Buffers a `native_outstanding` row.
    pub fn add_native_outstanding(&mut self, row: NativeOutstandingRow) {
        self.touch(Table::NativeOutstanding, row.time_ns, 64 + row.run_id.len());
        self.native_outstanding.push(row);
        self.maybe_encode(Table::NativeOutstanding);
    }

    /// Buffers a `native_events` row.
    pub fn add_native_event(&mut self, row: NativeEventRow) {
        self.touch(Table::NativeEvents, row.time_ns, 80 + row.run_id.len());
        self.native_events.push(row);
        self.maybe_encode(Table::NativeEvents);
    }

    /// Buffers a `native_counters` row.
    pub fn add_native_counters(&mut self, row: NativeCountersRow) {
        self.touch(
            Table::NativeCounters,
            row.time_ns,
            64 + row.values.len() * 8 + row.libraries.len(),
        );
        self.native_counters.push(row);
        self.maybe_encode(Table::NativeCounters);
    }

    /// Estimated bytes buffered in the open segment set.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// True when the open set should be committed at `now_ns` (the writer's clock): it is
    /// older than the policy allows, larger than the policy allows, or `now_ns` falls on
    /// another UTC date. A clock that went back never counts as age.
    pub fn should_rotate(&self, now_ns: i64) -> bool {
        let Some(start) = self.start_ns else {
            return false;
        };
        now_ns.saturating_sub(start) >= self.policy.max_age_ns
            || self.buffered_bytes >= self.policy.max_bytes
            || utc_date(now_ns) != utc_date(start)
    }

    /// Profile rows buffered in the open set.
    pub fn buffered_profiles(&self) -> usize {
        self.profiles.len()
    }

    /// Commits every buffered table as a segment, then the set's commit marker, and starts
    /// a new set. Returns the segment files written. On error, the tables this call already
    /// wrote are removed again and every row stays buffered, so a later call retries the
    /// whole set under the same name (a committed file is never replaced by one with fewer
    /// rows); without its marker, no reader ever saw them.
    pub fn rotate(&mut self) -> Result<Vec<PathBuf>> {
        let Some(start) = self.start_ns else {
            return Ok(Vec::new());
        };
        ensure_commit_markers(&self.dir)?;
        let stem = format!("{}-{:06}-{}", format_stamp(start), self.seq, self.tag);
        let date = utc_date(start).format("%Y-%m-%d").to_string();
        let mut written = Vec::new();
        for table in Table::ALL {
            let part_dir = self
                .dir
                .join(table.name())
                .join(format!("{PARTITION_COLUMN}={date}"));
            let path = part_dir.join(format!("{stem}.parquet"));
            let result = match self.finish(table) {
                Ok(Some(bytes)) => write_segment(&part_dir, &path, bytes),
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                // Roll the set back: the retry rewrites every table under the same names.
                // Newest first, so a committed sample's stack is never removed before it.
                for p in written.iter().rev() {
                    let _ = fs::remove_file(p);
                }
                return Err(e);
            }
            written.push(path);
        }
        if let Err(e) = write_marker(&self.dir, &stem) {
            for p in written.iter().rev() {
                let _ = fs::remove_file(p);
            }
            return Err(e);
        }
        self.stacks.clear();
        self.profiles.clear();
        self.samples.clear();
        self.process.clear();
        self.scrapes.clear();
        self.native_outstanding.clear();
        self.native_events.clear();
        self.native_counters.clear();
        self.encoded = Default::default();
        self.pending_bytes = [0; 8];
        self.seq += 1;
        self.start_ns = None;
        self.buffered_bytes = 0;
        self.stacks_in_segment.clear();
        Ok(written)
    }
}

/// Writes a finished Parquet file's `bytes` as segment `path` (temporary file, fsync, rename).
fn write_segment(part_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    create_dir_all(part_dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("segment");
    let tmp = part_dir.join(format!(".{name}.tmp"));
    crate::durable::write_atomically(&tmp, path, |out| out.write_all(bytes))
}

/// Index of `table` in [`Table::ALL`] (the per-table arrays of [`SegmentWriter`]).
fn table_index(table: Table) -> usize {
    Table::ALL.iter().position(|t| *t == table).unwrap_or(0)
}

/// A new in-memory Parquet writer holding the rows of finished file `bytes` (same schema as
/// `like`), for rows that arrive after a failed commit.
fn reopen(
    bytes: &[u8],
    like: &RecordBatch,
    props: &WriterProperties,
) -> parquet::errors::Result<Box<ArrowWriter<Vec<u8>>>> {
    let mut w = ArrowWriter::try_new(Vec::new(), like.schema(), Some(props.clone()))?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))?.build()?;
    for batch in reader {
        let batch = batch?;
        // The stored file's schema carries the same fields; rebuild on `like`'s schema so the
        // writer accepts it whatever metadata the reader attached.
        let batch = RecordBatch::try_new(like.schema(), batch.columns().to_vec())?;
        w.write(&batch)?;
    }
    Ok(Box::new(w))
}

/// Creates the empty commit marker of set `stem` and fsyncs its directory: from then on
/// readers take the set.
fn write_marker(dir: &Path, stem: &str) -> Result<()> {
    let commits = dir.join(COMMITS_DIR);
    create_dir_all(&commits)?;
    let marker = dir.join(marker_relpath(stem));
    File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(|e| CaptureError::io(&marker, e))?;
    sync_dir(&commits)
}

/// Makes sure capture `dir` has its `_commits` folder before a set is committed. A capture
/// written before commit markers existed has none, and every set in it counts as
/// committed; this writes a marker for each of those sets into a temporary folder and
/// renames it to `_commits` in one step, so readers see either the old rule or all markers.
pub fn ensure_commit_markers(dir: &Path) -> Result<()> {
    let commits = dir.join(COMMITS_DIR);
    if commits.is_dir() {
        return Ok(());
    }
    let tmp = dir.join(format!(".{COMMITS_DIR}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| CaptureError::io(&tmp, e))?;
    }
    let mut stems = Vec::new();
    for t in Table::ALL {
        stems.extend(list_files(dir, t)?.into_iter().map(|s| s.stem));
    }
    stems.sort();
    stems.dedup();
    create_dir_all(&tmp)?;
    for stem in &stems {
        let marker = tmp.join(format!("{stem}{COMMIT_SUFFIX}"));
        File::create(&marker).map_err(|e| CaptureError::io(&marker, e))?;
    }
    sync_dir(&tmp)?;
    if let Err(e) = fs::rename(&tmp, &commits) {
        let _ = fs::remove_dir_all(&tmp);
        if !commits.is_dir() {
            return Err(CaptureError::io(&commits, e));
        } // another writer of this process made it first: its markers are the same
    }
    sync_dir(dir)
}

/// The stems of the committed sets of capture `dir`, or `None` for a capture without
/// commit markers (every set counts).
pub fn committed_stems(dir: &Path) -> Result<Option<HashSet<String>>> {
    let commits = dir.join(COMMITS_DIR);
    let entries = match fs::read_dir(&commits) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CaptureError::io(&commits, e)),
    };
    let mut stems = HashSet::new();
    for e in entries {
        let name = e.map_err(|e| CaptureError::io(&commits, e))?.file_name();
        if let Some(stem) = marker_stem(&name.to_string_lossy()) {
            stems.insert(stem.to_string());
        }
    }
    Ok(Some(stems))
}

fn fastish_nonce() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now.subsec_nanos() as u64) & 0xffff
}

fn utc_date(ns: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_nanos(ns).date_naive()
}

/// Formats a segment stamp: `YYYYMMDDTHHMMSS.mmmZ` (sorts lexically by time).
pub fn format_stamp(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns)
        .format("%Y%m%dT%H%M%S%.3fZ")
        .to_string()
}

/// One committed segment set on disk: its stem and its files, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedSet {
    /// The stem shared by the set's files (`STAMP-SEQ-TAG`).
    pub stem: String,
    /// The set's files, in the order the writer commits tables (stacks first).
    pub files: Vec<SegmentFile>,
}

/// Every committed segment set of capture `dir`, oldest first (for a capture from before
/// commit markers, every set on disk). Sets without a marker are left out silently.
pub fn committed_sets(dir: &Path) -> Result<Vec<CommittedSet>> {
    // Not through `list_segments`: a set being committed right now is no news to warn about.
    let committed = committed_stems(dir)?;
    let mut by_stem: std::collections::BTreeMap<String, Vec<SegmentFile>> = Default::default();
    for t in Table::ALL {
        for f in list_files(dir, t)? {
            if committed.as_ref().is_none_or(|c| c.contains(&f.stem)) {
                by_stem.entry(f.stem.clone()).or_default().push(f);
            }
        }
    }
    Ok(by_stem
        .into_iter()
        .map(|(stem, files)| CommittedSet { stem, files })
        .collect())
}

/// Path of `file` relative to capture `dir`, `/`-separated (`TABLE/date=D/STEM.parquet`):
/// the same relative path is the object key below a remote prefix.
pub fn relative_key(dir: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(dir).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|p| p.join("/"))
}

/// A committed segment file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// Table it belongs to.
    pub table: Table,
    /// Full path.
    pub path: PathBuf,
    /// File stem shared by all tables of one segment set.
    pub stem: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Lists the committed segments of `table` in capture `dir`, oldest first. Temporary files
/// (`.*.tmp`) and foreign files are ignored, and so are the files of incomplete segment
/// sets (no commit marker: being committed right now, or left by an interrupted commit);
/// each incomplete set is reported once per process as a warning naming it.
pub fn list_segments(dir: &Path, table: Table) -> Result<Vec<SegmentFile>> {
    let files = list_files(dir, table)?;
    let Some(committed) = committed_stems(dir)? else {
        return Ok(files); // a capture from before commit markers: every set counts
    };
    let (complete, incomplete): (Vec<_>, Vec<_>) =
        files.into_iter().partition(|f| committed.contains(&f.stem));
    for f in &incomplete {
        warn_incomplete(dir, &f.stem, &f.path);
    }
    Ok(complete)
}

/// The stems of the incomplete segment sets of capture `dir`: files on disk without a
/// commit marker. Always empty for a capture from before commit markers.
pub fn incomplete_sets(dir: &Path) -> Result<Vec<String>> {
    let Some(committed) = committed_stems(dir)? else {
        return Ok(Vec::new());
    };
    let mut stems = Vec::new();
    for t in Table::ALL {
        stems.extend(
            list_files(dir, t)?
                .into_iter()
                .map(|f| f.stem)
                .filter(|s| !committed.contains(s)),
        );
    }
    stems.sort();
    stems.dedup();
    Ok(stems)
}

/// The files of the incomplete segment sets of capture `dir` (see [`incomplete_sets`]), for
/// readers that list files themselves and must hide these (each set is warned about once).
pub fn incomplete_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(committed) = committed_stems(dir)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for t in Table::ALL {
        for f in list_files(dir, t)? {
            if !committed.contains(&f.stem) {
                warn_incomplete(dir, &f.stem, &f.path);
                out.push(f.path);
            }
        }
    }
    Ok(out)
}

fn warn_incomplete(dir: &Path, stem: &str, path: &Path) {
    static WARNED: Mutex<Option<HashSet<(PathBuf, String)>>> = Mutex::new(None);
    let Ok(mut warned) = WARNED.lock() else {
        return;
    };
    if warned
        .get_or_insert_with(HashSet::new)
        .insert((dir.to_path_buf(), stem.to_string()))
    {
        log::warn!(
            "{}: incomplete segment set {stem} ignored: no commit marker (being committed right now, or left by an interrupted commit), e.g. {}",
            dir.display(),
            path.display()
        );
    }
}

/// Every `*.parquet` file of `table`, marker or not, oldest first.
fn list_files(dir: &Path, table: Table) -> Result<Vec<SegmentFile>> {
    let table_dir = dir.join(table.name());
    let mut out = Vec::new();
    let parts = match fs::read_dir(&table_dir) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(CaptureError::io(&table_dir, e)),
    };
    for part in parts {
        let part = part.map_err(|e| CaptureError::io(&table_dir, e))?.path();
        if !part.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&part).map_err(|e| CaptureError::io(&part, e))? {
            let entry = entry.map_err(|e| CaptureError::io(&part, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".parquet") {
                continue;
            }
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let stem = name.trim_end_matches(".parquet").to_string();
            out.push(SegmentFile {
                table,
                path,
                stem,
                bytes,
            });
        }
    }
    out.sort_by(|a, b| a.stem.cmp(&b.stem));
    Ok(out)
}

/// Deletes the temporary segment files (`.*.parquet.tmp`) in capture `dir`, left behind by a
/// writer that crashed mid-commit; they are never valid. Best effort: returns how many went.
pub fn remove_temporaries(dir: &Path) -> usize {
    let mut removed = 0;
    if fs::remove_dir_all(dir.join(format!(".{COMMITS_DIR}.tmp"))).is_ok() {
        removed += 1;
    }
    for table in Table::ALL {
        let Ok(parts) = fs::read_dir(dir.join(table.name())) else {
            continue;
        };
        for part in parts.flatten() {
            let Ok(entries) = fs::read_dir(part.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.')
                    && name.ends_with(".parquet.tmp")
                    && fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
    }
    removed
}

/// What a retention pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Segment sets removed.
    pub segment_sets: usize,
    /// Bytes freed.
    pub bytes: u64,
}

/// Deletes whole segment sets (all tables of one stem) older than `max_age_ns` before
/// `now_ns`, then the oldest sets while the capture exceeds `max_bytes`. The newest
/// committed set whose stamp is not in the future (more than a day after `now_ns`) is
/// always kept. A set
/// is deleted marker first (and the marker's directory fsynced), so an interrupted pass
/// leaves an incomplete set that readers ignore and the next pass deletes. Incomplete sets
/// are pruned like the others.
pub fn prune(
    dir: &Path,
    max_age_ns: Option<i64>,
    max_bytes: Option<u64>,
    now_ns: i64,
) -> Result<Pruned> {
    prune_keeping(dir, max_age_ns, max_bytes, now_ns, &|_| false)
}

/// [`prune`], but a set for whose stem `keep` returns true is never deleted (the recorder's
/// `--upload` keeps the sets not yet uploaded); it still counts toward `max_bytes`.
pub fn prune_keeping(
    dir: &Path,
    max_age_ns: Option<i64>,
    max_bytes: Option<u64>,
    now_ns: i64,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Pruned> {
    const DAY_NS: i64 = 86_400 * 1_000_000_000;
    let mut all = Vec::new();
    for t in Table::ALL {
        all.extend(list_files(dir, t)?);
    }
    let mut stems: Vec<String> = all.iter().map(|s| s.stem.clone()).collect();
    stems.sort();
    stems.dedup();
    let mut total: u64 = all.iter().map(|s| s.bytes).sum();
    let mut pruned = Pruned::default();
    let future = |stem: &str| stem_time_ns(stem).is_some_and(|t| t > now_ns.saturating_add(DAY_NS));
    let committed = committed_stems(dir)?;
    let is_committed = |stem: &str| committed.as_ref().is_none_or(|c| c.contains(stem));
    let newest = stems
        .iter()
        .rev()
        .find(|s| !future(s) && is_committed(s))
        .cloned();
    let commits = dir.join(COMMITS_DIR);
    for stem in &stems {
        if Some(stem) == newest.as_ref() {
            continue;
        }
        let too_old = match (max_age_ns, stem_time_ns(stem)) {
            (Some(age), Some(t)) => now_ns.saturating_sub(t) > age,
            _ => false,
        };
        let too_big = max_bytes.is_some_and(|m| total > m);
        if !too_old && !too_big {
            continue;
        }
        if is_committed(stem) && keep(stem) {
            continue; // held back by the caller (e.g. not uploaded yet)
        }
        let marker = dir.join(marker_relpath(stem));
        match fs::remove_file(&marker) {
            Ok(()) => sync_dir(&commits)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CaptureError::io(&marker, e)),
        }
        let mut parents = Vec::new();
        for seg in all.iter().filter(|s| &s.stem == stem) {
            fs::remove_file(&seg.path).map_err(|e| CaptureError::io(&seg.path, e))?;
            total = total.saturating_sub(seg.bytes);
            pruned.bytes += seg.bytes;
            if let Some(parent) = seg.path.parent() {
                parents.push(parent.to_path_buf());
            }
        }
        for parent in parents {
            if fs::remove_dir(&parent).is_err() {
                sync_dir(&parent)?; // still holds other sets: make the removals durable
            } else if let Some(table_dir) = parent.parent() {
                sync_dir(table_dir)?;
            }
        }
        pruned.segment_sets += 1;
    }
    Ok(pruned)
}

/// Parses the time encoded at the start of a segment stem.
pub fn stem_time_ns(stem: &str) -> Option<i64> {
    let stamp = stem.split('-').next()?;
    let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ").ok()?;
    t.and_utc().timestamp_nanos_opt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::read_table;
    use crate::rows::SampleValues;
    use crate::stack::Frame;

    const T0: i64 = 1_763_900_000_000_000_000;

    /// A writer whose clock reads `clock` (ns), for stamps and dates the test chooses.
    fn writer_at(
        dir: &Path,
        policy: RotationPolicy,
        clock: &Arc<std::sync::atomic::AtomicI64>,
    ) -> SegmentWriter {
        let mut w = SegmentWriter::new(dir, policy);
        let c = clock.clone();
        w.set_clock(Arc::new(move || {
            c.load(std::sync::atomic::Ordering::SeqCst)
        }));
        w
    }

    fn clock_at(t: i64) -> Arc<std::sync::atomic::AtomicI64> {
        Arc::new(std::sync::atomic::AtomicI64::new(t))
    }

    fn sample(t: i64, stack: u64) -> SampleRow {
        SampleRow {
            profile_id: 1,
            time_ns: t,
            run_id: "r".into(),
            kind: "heap".into(),
            stack_id: stack,
            values: SampleValues {
                inuse_bytes: Some(10),
                ..Default::default()
            },
            labels: None,
        }
    }

    fn stack(id: u64) -> StackRow {
        StackRow {
            stack_id: id,
            origin: "go".into(),
            frames: vec![Frame {
                function: "main.f".into(),
                file: "m.go".into(),
                line: 3,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn rotation_writes_self_contained_sets_and_names_sort_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer_at(
            dir.path(),
            RotationPolicy {
                max_age_ns: 10,
                max_bytes: 1 << 30,
            },
            &clock_at(T0),
        );
        w.add_stack(stack(7));
        w.add_sample(sample(T0, 7));
        assert!(!w.should_rotate(T0 + 5));
        assert!(w.should_rotate(T0 + 10));
        let first = w.rotate().unwrap();
        assert_eq!(first.len(), 2);
        // Same stack again in the next set: it must be written again.
        assert!(!w.has_stack(7));
        w.add_stack(stack(7));
        w.add_sample(sample(T0 + 1_000_000, 7));
        w.rotate().unwrap();
        let segs = list_segments(dir.path(), Table::Stacks).unwrap();
        assert_eq!(segs.len(), 2);
        assert!(segs[0].stem < segs[1].stem);
        let batches = read_table(dir.path(), Table::Samples).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let p = &segs[0].path;
        assert!(
            p.to_string_lossy().contains("stacks/date=2025-11-23/"),
            "{p:?}"
        );
    }

    #[test]
    fn a_new_utc_date_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let w = {
            let mut w = writer_at(dir.path(), RotationPolicy::default(), &clock_at(T0));
            w.add_sample(sample(T0, 1));
            w
        };
        let next_day = T0 + 24 * 3600 * 1_000_000_000;
        assert!(w.should_rotate(next_day));
    }

    #[test]
    fn prune_removes_old_sets_but_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock_at(T0);
        let mut w = writer_at(dir.path(), RotationPolicy::default(), &clock);
        for i in 0..3 {
            clock.store(
                T0 + i * 3600 * 1_000_000_000,
                std::sync::atomic::Ordering::SeqCst,
            );
            w.add_stack(stack(1));
            w.add_sample(sample(T0 + i * 3600 * 1_000_000_000, 1));
            w.rotate().unwrap();
        }
        let now = T0 + 2 * 3600 * 1_000_000_000 + 1;
        let p = prune(dir.path(), Some(90 * 60 * 1_000_000_000), None, now).unwrap();
        assert_eq!(p.segment_sets, 1);
        assert_eq!(list_segments(dir.path(), Table::Samples).unwrap().len(), 2);
        let p = prune(dir.path(), None, Some(1), now).unwrap();
        assert_eq!(p.segment_sets, 1);
        assert_eq!(list_segments(dir.path(), Table::Samples).unwrap().len(), 1);
    }

    #[test]
    fn prune_keeping_never_deletes_a_kept_committed_set() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock_at(T0);
        let mut w = writer_at(dir.path(), RotationPolicy::default(), &clock);
        let mut stems = Vec::new();
        for i in 0..4 {
            clock.store(
                T0 + i * 3600 * 1_000_000_000,
                std::sync::atomic::Ordering::SeqCst,
            );
            w.add_stack(stack(1));
            w.add_sample(sample(T0, 1));
            let files = w.rotate().unwrap();
            let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
            stems.push(name.trim_end_matches(".parquet").to_string());
        }
        // Keep the second set (e.g. not uploaded yet): a size limit of 1 byte removes the
        // others but the newest, and never the kept one.
        let kept = stems[1].clone();
        let p = prune_keeping(dir.path(), None, Some(1), T0, &|s| s == kept).unwrap();
        assert_eq!(p.segment_sets, 2);
        let left: Vec<String> = committed_sets(dir.path())
            .unwrap()
            .into_iter()
            .map(|s| s.stem)
            .collect();
        assert_eq!(left, vec![stems[1].clone(), stems[3].clone()]);
        assert_eq!(marker_relpath("S"), "_commits/S.commit");
        assert_eq!(marker_stem("S.commit"), Some("S"));
        assert_eq!(marker_stem(".S.commit"), None);
        let set = &committed_sets(dir.path()).unwrap()[0];
        assert_eq!(
            relative_key(dir.path(), &set.files[0].path).unwrap(),
            format!("stacks/date=2025-11-23/{}.parquet", stems[1])
        );
    }

    #[test]
    fn low_memory_encoding_closes_row_groups_and_keeps_every_row_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::new(dir.path(), RotationPolicy::default());
        w.set_low_memory_encoding();
        w.add_stack(stack(1));
        let n = 200_000;
        for i in 0..n {
            let mut s = sample(T0 + i as i64, 1);
            let v = i as i64 * 7919;
            s.values = SampleValues {
                inuse_objects: Some(v ^ 5),
                inuse_bytes: Some(v ^ 3),
                alloc_objects: Some(v + 1),
                alloc_bytes: Some(v),
                goroutines: None,
            };
            w.add_sample(s);
        }
        let files = w.rotate().unwrap();
        let samples = files
            .iter()
            .find(|p| p.to_string_lossy().contains("/samples/"))
            .unwrap();
        let meta = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(
                File::open(samples).unwrap(),
            )
            .unwrap(),
        )
        .clone();
        assert!(meta.num_row_groups() > 1, "one row group for {n} rows");
        let mut times = Vec::new();
        for b in read_table(dir.path(), Table::Samples).unwrap() {
            let col = b.column_by_name("time").unwrap();
            let col = col
                .as_any()
                .downcast_ref::<arrow_array::TimestampNanosecondArray>()
                .unwrap();
            times.extend(col.values().iter().copied());
        }
        assert_eq!(times, (0..n).map(|i| T0 + i as i64).collect::<Vec<_>>());
    }

    #[test]
    fn rows_encoded_in_pieces_come_back_whole_and_in_order_even_after_a_failed_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::new(dir.path(), RotationPolicy::default());
        // Enough rows for several in-memory encodes (ENCODE_AFTER_BYTES) before the commit.
        let n = 3 * ENCODE_AFTER_BYTES / 97 + 5;
        w.add_stack(stack(1));
        for i in 0..n {
            w.add_sample(sample(T0 + i as i64, 1));
        }
        assert!(
            w.samples.len() < n,
            "rows were never encoded: {} held as structs",
            w.samples.len()
        );
        let blocker = dir.path().join(Table::Samples.name());
        fs::write(&blocker, b"").unwrap();
        assert!(w.rotate().is_err());
        // Rows after the failure join the same set; the retry writes them all.
        for i in n..n + 10 {
            w.add_sample(sample(T0 + i as i64, 1));
        }
        fs::remove_file(&blocker).unwrap();
        w.rotate().unwrap();
        let mut times = Vec::new();
        for b in read_table(dir.path(), Table::Samples).unwrap() {
            let col = b.column_by_name("time").unwrap();
            let col = col
                .as_any()
                .downcast_ref::<arrow_array::TimestampNanosecondArray>()
                .unwrap();
            times.extend(col.values().iter().copied());
        }
        let want: Vec<i64> = (0..n + 10).map(|i| T0 + i as i64).collect();
        assert_eq!(times, want);
        assert_eq!(list_segments(dir.path(), Table::Samples).unwrap().len(), 1);
    }

    #[test]
    fn a_retry_after_a_failed_commit_keeps_every_stack_its_samples_need() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::new(dir.path(), RotationPolicy::default());
        w.add_stack(stack(7));
        w.add_sample(sample(T0, 7));
        // A file where the samples folder belongs: stacks commit, samples fail.
        let blocker = dir.path().join(Table::Samples.name());
        fs::write(&blocker, b"").unwrap();
        assert!(w.rotate().is_err());
        // More rows arrive before the retry, with a new stack.
        w.add_stack(stack(8));
        w.add_sample(sample(T0 + 1, 8));
        fs::remove_file(&blocker).unwrap();
        w.rotate().unwrap();
        let ids = |table: Table| -> HashSet<u64> {
            let mut ids = HashSet::new();
            for b in read_table(dir.path(), table).unwrap() {
                let col = b.column_by_name("stack_id").unwrap();
                let col = col
                    .as_any()
                    .downcast_ref::<arrow_array::UInt64Array>()
                    .unwrap();
                ids.extend(col.values().iter().copied());
            }
            ids
        };
        assert_eq!(ids(Table::Samples), HashSet::from([7, 8]));
        assert_eq!(
            ids(Table::Stacks),
            HashSet::from([7, 8]),
            "a committed sample lost its stack"
        );
        let stems = |t| {
            list_segments(dir.path(), t)
                .unwrap()
                .into_iter()
                .map(|s| s.stem)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            stems(Table::Stacks),
            stems(Table::Samples),
            "sets are not self-contained"
        );
    }

    #[test]
    fn reopening_a_capture_removes_stale_temporaries() {
        use crate::manifest::{Manifest, Session};
        let dir = tempfile::tempdir().unwrap();
        let session = || Session {
            mode: "record".into(),
            recorder_version: "test".into(),
            target: "t".into(),
            host: "h".into(),
            start_time: "2025-11-23T00:00:00Z".into(),
            options: serde_json::json!({}),
        };
        Manifest::open_or_create(dir.path(), session()).unwrap();
        let mut w = writer_at(dir.path(), RotationPolicy::default(), &clock_at(T0));
        w.add_stack(stack(1));
        w.add_sample(sample(T0, 1));
        let committed = w.rotate().unwrap();
        let part = dir.path().join("samples/date=2025-11-23");
        let stale = part.join(".20251123T000000.000Z-000000-dead.parquet.tmp");
        fs::write(&stale, b"half").unwrap();
        let other = part.join("notes.tmp");
        fs::write(&other, b"not ours").unwrap();
        Manifest::open_or_create(dir.path(), session()).unwrap();
        assert!(!stale.exists(), "stale temporary survived reopening");
        assert!(other.exists());
        assert!(committed.iter().all(|p| p.exists()));
    }

    #[test]
    fn temporary_files_are_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("samples/date=2025-11-23");
        fs::create_dir_all(&part).unwrap();
        fs::write(part.join(".x.parquet.tmp"), b"half").unwrap();
        assert!(list_segments(dir.path(), Table::Samples)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn sets_are_named_and_dated_by_the_writers_clock_not_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock_at(T0);
        let mut w = writer_at(dir.path(), RotationPolicy::default(), &clock);
        // A target a day ahead: its rows do not force a commit per row, nor date the set.
        let ahead = T0 + 86_400 * 1_000_000_000;
        w.add_sample(sample(ahead, 1));
        assert!(!w.should_rotate_now());
        w.add_sample(sample(ahead + 1, 1));
        let files = w.rotate().unwrap();
        assert_eq!(files.len(), 1);
        assert!(
            files[0]
                .to_string_lossy()
                .contains("date=2025-11-23/20251123T"),
            "{files:?}"
        );
        // Time that runs backwards (or a hostile row time) never overflows.
        w.add_sample(sample(i64::MIN, 1));
        let _ = w.should_rotate(i64::MIN);
        assert!(w.should_rotate(i64::MAX));
    }

    #[test]
    fn a_set_without_its_marker_is_invisible_and_a_legacy_capture_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock_at(T0);
        let mut w = writer_at(dir.path(), RotationPolicy::default(), &clock);
        w.add_stack(stack(1));
        w.add_sample(sample(T0, 1));
        w.rotate().unwrap();
        // An interrupted commit: the next set's files are there, its marker is not.
        clock.store(T0 + 1_000_000_000, std::sync::atomic::Ordering::SeqCst);
        w.add_stack(stack(2));
        w.add_sample(sample(T0, 2));
        let files = w.rotate().unwrap();
        let stem = files[0].file_stem().unwrap().to_str().unwrap().to_string();
        fs::remove_file(
            dir.path()
                .join(COMMITS_DIR)
                .join(format!("{stem}{COMMIT_SUFFIX}")),
        )
        .unwrap();
        assert_eq!(list_segments(dir.path(), Table::Samples).unwrap().len(), 1);
        assert_eq!(
            incomplete_sets(dir.path()).unwrap(),
            std::slice::from_ref(&stem)
        );
        // Pruning deletes incomplete sets too, marker first.
        let p = prune(dir.path(), None, Some(1), T0 + 2_000_000_000).unwrap();
        assert_eq!(p.segment_sets, 1);
        assert!(incomplete_sets(dir.path()).unwrap().is_empty());

        // A capture from before markers (the repository's demo): every set counts, and the
        // first commit into it adopts them all.
        let demo = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/captures/demo"
        ));
        let legacy = list_segments(demo, Table::Samples).unwrap();
        assert!(!legacy.is_empty());
        let copy = tempfile::tempdir().unwrap();
        for seg in Table::ALL
            .iter()
            .flat_map(|t| list_segments(demo, *t).unwrap())
        {
            let rel = seg.path.strip_prefix(demo).unwrap();
            fs::create_dir_all(copy.path().join(rel).parent().unwrap()).unwrap();
            fs::copy(&seg.path, copy.path().join(rel)).unwrap();
        }
        let mut w = writer_at(copy.path(), RotationPolicy::default(), &clock_at(T0));
        w.add_stack(stack(1));
        w.add_sample(sample(T0, 1));
        w.rotate().unwrap();
        assert_eq!(
            list_segments(copy.path(), Table::Samples).unwrap().len(),
            legacy.len() + 1
        );
        assert!(incomplete_sets(copy.path()).unwrap().is_empty());
    }

    #[test]
    fn a_future_dated_set_never_takes_the_newest_slot() {
        let dir = tempfile::tempdir().unwrap();
        let clock = clock_at(T0);
        let mut w = writer_at(dir.path(), RotationPolicy::default(), &clock);
        w.add_sample(sample(T0, 1));
        w.rotate().unwrap();
        // A set stamped ten days ahead (a capture written when stamps came from profiles).
        clock.store(
            T0 + 10 * 86_400 * 1_000_000_000,
            std::sync::atomic::Ordering::SeqCst,
        );
        w.add_sample(sample(T0, 2));
        w.rotate().unwrap();
        let hour = 3600 * 1_000_000_000;
        let p = prune(dir.path(), Some(hour), None, T0 + 2 * hour).unwrap();
        assert_eq!(p.segment_sets, 0, "the newest plausible set was pruned");
        assert_eq!(list_segments(dir.path(), Table::Samples).unwrap().len(), 2);
        // Hostile stamps never overflow the age arithmetic.
        assert_eq!(
            prune(dir.path(), Some(1), None, i64::MIN)
                .unwrap()
                .segment_sets,
            0
        );
        prune(dir.path(), Some(1), None, i64::MAX).unwrap();
    }
}
