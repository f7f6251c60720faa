//! Row types for each table and their conversion into Arrow record batches.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    UInt64Array,
};
use arrow_buffer::OffsetBuffer;

use crate::schema::{self, Table, NATIVE_COUNTERS, PROCESS_METRICS};
use crate::stack::Frame;
use crate::Result;

/// One recorded profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRow {
    /// Unique id of this profile within the capture.
    pub profile_id: u64,
    /// Profile time, ns since the Unix epoch (from the profile itself).
    pub time_ns: i64,
    /// `heap`, `goroutine` or `goroutineleak`.
    pub kind: String,
    /// Target URL or import root.
    pub target: String,
    /// Process id when known.
    pub pid: Option<u32>,
    /// Run (process incarnation) id.
    pub run_id: String,
    /// Sampling period (bytes between samples for heap profiles).
    pub period: i64,
    /// Period `type/unit`.
    pub period_type: String,
    /// Sample types as `type/unit`, in profile order.
    pub sample_types: Vec<String>,
    /// The profile's own duration in ns (0 for snapshots).
    pub duration_ns: i64,
    /// Wall time the scrape took, for scraped profiles.
    pub scrape_ms: Option<f64>,
    /// URL path or file the profile came from.
    pub source: String,
    /// Number of samples in the profile.
    pub sample_count: u32,
}

/// The values of one sample, by meaning; absent types are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleValues {
    /// Live objects at the last GC.
    pub inuse_objects: Option<i64>,
    /// Live bytes at the last GC.
    pub inuse_bytes: Option<i64>,
    /// Objects allocated since process start.
    pub alloc_objects: Option<i64>,
    /// Bytes allocated since process start.
    pub alloc_bytes: Option<i64>,
    /// Goroutines with this stack.
    pub goroutines: Option<i64>,
}

/// One sample of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    /// Profile the sample belongs to.
    pub profile_id: u64,
    /// Profile time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Run id of the profile.
    pub run_id: String,
    /// Kind of the profile.
    pub kind: String,
    /// Stable stack id.
    pub stack_id: u64,
    /// The values.
    pub values: SampleValues,
    /// Labels as `key=value` joined by `,` (sorted), when present.
    pub labels: Option<String>,
}

/// One stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StackRow {
    /// Stable stack id (see [`crate::stack`]).
    pub stack_id: u64,
    /// `go` (from a Go profile) or `native` (from the allocator tracer).
    pub origin: String,
    /// Frames, leaf first.
    pub frames: Vec<Frame>,
}

/// One sample of process memory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessRow {
    /// Sample time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Target URL.
    pub target: String,
    /// Run id when known.
    pub run_id: Option<String>,
    /// Process id when known.
    pub pid: Option<u32>,
    /// Process start time, ns since the Unix epoch, when known.
    pub process_start_ns: Option<i64>,
    /// Values aligned with [`PROCESS_METRICS`].
    pub metrics: Vec<Option<i64>>,
    /// Where the Go MemStats came from: `vars` or `heap_debug1`.
    pub memstats_source: Option<String>,
}

impl ProcessRow {
    /// An empty row at `time_ns` with every metric absent.
    pub fn new(time_ns: i64, target: &str) -> Self {
        ProcessRow {
            time_ns,
            target: target.to_string(),
            metrics: vec![None; PROCESS_METRICS.len()],
            ..Default::default()
        }
    }

    /// Sets metric `name`; returns false when no such column exists.
    pub fn set(&mut self, name: &str, value: i64) -> bool {
        match PROCESS_METRICS.iter().position(|c| c.name == name) {
            Some(i) => {
                self.metrics[i] = Some(value);
                true
            }
            None => false,
        }
    }

    /// Reads metric `name`.
    pub fn get(&self, name: &str) -> Option<i64> {
        let i = PROCESS_METRICS.iter().position(|c| c.name == name)?;
        self.metrics.get(i).copied().flatten()
    }
}

/// One scrape attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeRow {
    /// Attempt start, ns since the Unix epoch.
    pub time_ns: i64,
    /// Target URL.
    pub target: String,
    /// Path (and query) requested, or `/proc/PID`.
    pub endpoint: String,
    /// `heap`, `goroutine`, `goroutineleak`, `memstats` or `proc`.
    pub kind: String,
    /// 1 for the first try, 2.. for retries.
    pub attempt: u32,
    /// Whether the attempt produced data.
    pub ok: bool,
    /// HTTP status when a response arrived.
    pub http_status: Option<i32>,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall time of the attempt.
    pub duration_ms: f64,
    /// Body size when a response arrived.
    pub bytes: Option<u64>,
    /// Run id when known.
    pub run_id: Option<String>,
    /// Profile written from this attempt.
    pub profile_id: Option<u64>,
    /// The profile's own time minus the attempt's start (target clock minus recorder
    /// clock), in ms, on the attempt that produced a profile with a time.
    pub clock_offset_ms: Option<f64>,
}

/// One stack's native allocations outstanding at one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeOutstandingRow {
    /// Snapshot time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Traced process.
    pub pid: u32,
    /// Run id.
    pub run_id: String,
    /// Stack of the allocations (`stacks.stack_id`, origin `native`).
    pub stack_id: u64,
    /// Bytes allocated at this stack and not freed (weighted by sampling).
    pub outstanding_bytes: i64,
    /// Blocks allocated at this stack and not freed (weighted by sampling).
    pub outstanding_count: i64,
    /// Bytes allocated at this stack since tracing started (weighted).
    pub allocated_bytes: i64,
    /// Blocks allocated at this stack since tracing started (weighted).
    pub allocated_count: i64,
}

/// One traced native allocation or free.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeEventRow {
    /// Event time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Traced process.
    pub pid: u32,
    /// Thread that allocated or freed.
    pub tid: u32,
    /// Run id.
    pub run_id: String,
    /// `alloc` or `free`.
    pub kind: String,
    /// Block address.
    pub address: u64,
    /// Requested size in bytes.
    pub size: u64,
    /// The sampling rate N of `--native-sample` (1 with `--native-sample-bytes`).
    pub weight: u32,
    /// Allocation stack (for a free, the stack that allocated the block).
    pub stack_id: u64,
    /// For a free: when the block was allocated, ns since the Unix epoch.
    pub alloc_time_ns: Option<i64>,
    /// Estimated bytes this event stands for (unbiased under either sampling mode).
    pub weight_bytes: Option<u64>,
    /// Estimated allocations this event stands for (fractional under byte sampling).
    pub weight_count: Option<f64>,
}

/// The native tracer's cumulative counters at one interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NativeCountersRow {
    /// Time, ns since the Unix epoch.
    pub time_ns: i64,
    /// Traced process.
    pub pid: u32,
    /// Run id.
    pub run_id: String,
    /// Values aligned with [`NATIVE_COUNTERS`].
    pub values: Vec<u64>,
    /// Sampling rate (1 = every allocation).
    pub sample_every: u32,
    /// Uprobes attached.
    pub probes: u32,
    /// Traced libraries, space separated.
    pub libraries: String,
    /// Byte sampling threshold R of `--native-sample-bytes` (0: sampling by calls).
    pub sample_bytes: Option<u64>,
    /// Idle stacks the tracer has forgotten so far (see the recorder's native tracer).
    pub stacks_evicted: Option<u64>,
}

fn ts(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    let mut b = TimestampNanosecondBuilder::new().with_timezone("UTC");
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn i64s(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    let mut b = Int64Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn u64s(values: impl Iterator<Item = Option<u64>>) -> ArrayRef {
    let mut b = UInt64Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn u32s(values: impl Iterator<Item = Option<u32>>) -> ArrayRef {
    let mut b = UInt32Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn f64s(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    let mut b = Float64Builder::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn batch(table: Table, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(table.schema(), columns)?)
}

/// Builds a `profiles` batch.
pub fn profiles_batch(rows: &[ProfileRow]) -> Result<RecordBatch> {
    let mut types = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(
        arrow_schema::Field::new("item", arrow_schema::DataType::Utf8, false),
    ));
    for r in rows {
        for t in &r.sample_types {
            types.values().append_value(t);
        }
        types.append(true);
    }
    batch(
        Table::Profiles,
        vec![
            u64s(rows.iter().map(|r| Some(r.profile_id))),
            ts(rows.iter().map(|r| Some(r.time_ns))),
            strings(rows.iter().map(|r| Some(r.kind.as_str()))),
            strings(rows.iter().map(|r| Some(r.target.as_str()))),
            u32s(rows.iter().map(|r| r.pid)),
            strings(rows.iter().map(|r| Some(r.run_id.as_str()))),
            i64s(rows.iter().map(|r| Some(r.period))),
            strings(rows.iter().map(|r| Some(r.period_type.as_str()))),
            Arc::new(types.finish()),
            i64s(rows.iter().map(|r| Some(r.duration_ns))),
            f64s(rows.iter().map(|r| r.scrape_ms)),
            strings(rows.iter().map(|r| Some(r.source.as_str()))),
            u32s(rows.iter().map(|r| Some(r.sample_count))),
        ],
    )
}

/// Builds a `samples` batch.
pub fn samples_batch(rows: &[SampleRow]) -> Result<RecordBatch> {
    batch(
        Table::Samples,
        vec![
            u64s(rows.iter().map(|r| Some(r.profile_id))),
            ts(rows.iter().map(|r| Some(r.time_ns))),
            strings(rows.iter().map(|r| Some(r.run_id.as_str()))),
            strings(rows.iter().map(|r| Some(r.kind.as_str()))),
            u64s(rows.iter().map(|r| Some(r.stack_id))),
            i64s(rows.iter().map(|r| r.values.inuse_objects)),
            i64s(rows.iter().map(|r| r.values.inuse_bytes)),
            i64s(rows.iter().map(|r| r.values.alloc_objects)),
            i64s(rows.iter().map(|r| r.values.alloc_bytes)),
            i64s(rows.iter().map(|r| r.values.goroutines)),
            strings(rows.iter().map(|r| r.labels.as_deref())),
        ],
    )
}

/// Builds a `stacks` batch.
pub fn stacks_batch(rows: &[StackRow]) -> Result<RecordBatch> {
    let frames: Vec<&Frame> = rows.iter().flat_map(|r| r.frames.iter()).collect();
    let children: Vec<ArrayRef> = vec![
        strings(frames.iter().map(|f| Some(f.function.as_str()))),
        strings(frames.iter().map(|f| Some(f.file.as_str()))),
        Arc::new(Int64Array::from_iter_values(frames.iter().map(|f| f.line))),
        Arc::new(BooleanArray::from_iter(
            frames.iter().map(|f| Some(f.inlined)),
        )),
        Arc::new(UInt64Array::from_iter(frames.iter().map(|f| f.address))),
        Arc::new(StringArray::from_iter(
            frames.iter().map(|f| f.mapping.as_deref()),
        )),
        Arc::new(StringArray::from_iter(
            frames.iter().map(|f| f.build_id.as_deref()),
        )),
        Arc::new(UInt64Array::from_iter(frames.iter().map(|f| f.file_offset))),
    ];
    let values = StructArray::try_new(schema::frame_fields(), children, None)?;
    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|r| r.frames.len()));
    let list = ListArray::try_new(schema::frame_item_field(), offsets, Arc::new(values), None)?;
    batch(
        Table::Stacks,
        vec![
            u64s(rows.iter().map(|r| Some(r.stack_id))),
            strings(rows.iter().map(|r| Some(r.origin.as_str()))),
            u32s(rows.iter().map(|r| Some(r.frames.len() as u32))),
            Arc::new(list),
        ],
    )
}

/// Builds a `process` batch.
pub fn process_batch(rows: &[ProcessRow]) -> Result<RecordBatch> {
    let mut cols = vec![
        ts(rows.iter().map(|r| Some(r.time_ns))),
        strings(rows.iter().map(|r| Some(r.target.as_str()))),
        strings(rows.iter().map(|r| r.run_id.as_deref())),
        u32s(rows.iter().map(|r| r.pid)),
        ts(rows.iter().map(|r| r.process_start_ns)),
    ];
    for i in 0..PROCESS_METRICS.len() {
        cols.push(i64s(
            rows.iter().map(|r| r.metrics.get(i).copied().flatten()),
        ));
    }
    cols.push(strings(rows.iter().map(|r| r.memstats_source.as_deref())));
    batch(Table::Process, cols)
}

/// Builds a `scrapes` batch.
pub fn scrapes_batch(rows: &[ScrapeRow]) -> Result<RecordBatch> {
    let mut status = Int32Builder::new();
    let mut ok = BooleanBuilder::new();
    let mut attempt = UInt32Builder::new();
    for r in rows {
        status.append_option(r.http_status);
        ok.append_value(r.ok);
        attempt.append_value(r.attempt);
    }
    batch(
        Table::Scrapes,
        vec![
            ts(rows.iter().map(|r| Some(r.time_ns))),
            strings(rows.iter().map(|r| Some(r.target.as_str()))),
            strings(rows.iter().map(|r| Some(r.endpoint.as_str()))),
            strings(rows.iter().map(|r| Some(r.kind.as_str()))),
            Arc::new(attempt.finish()),
            Arc::new(ok.finish()),
            Arc::new(status.finish()),
            strings(rows.iter().map(|r| r.error.as_deref())),
            f64s(rows.iter().map(|r| Some(r.duration_ms))),
            u64s(rows.iter().map(|r| r.bytes)),
            strings(rows.iter().map(|r| r.run_id.as_deref())),
            u64s(rows.iter().map(|r| r.profile_id)),
            f64s(rows.iter().map(|r| r.clock_offset_ms)),
        ],
    )
}

/// Builds a `native_outstanding` batch.
pub fn native_outstanding_batch(rows: &[NativeOutstandingRow]) -> Result<RecordBatch> {
    batch(
        Table::NativeOutstanding,
        vec![
            ts(rows.iter().map(|r| Some(r.time_ns))),
            u32s(rows.iter().map(|r| Some(r.pid))),
            strings(rows.iter().map(|r| Some(r.run_id.as_str()))),
            u64s(rows.iter().map(|r| Some(r.stack_id))),
            i64s(rows.iter().map(|r| Some(r.outstanding_bytes))),
            i64s(rows.iter().map(|r| Some(r.outstanding_count))),
            i64s(rows.iter().map(|r| Some(r.allocated_bytes))),
            i64s(rows.iter().map(|r| Some(r.allocated_count))),
        ],
    )
}

/// Builds a `native_events` batch.
pub fn native_events_batch(rows: &[NativeEventRow]) -> Result<RecordBatch> {
    batch(
        Table::NativeEvents,
        vec![
            ts(rows.iter().map(|r| Some(r.time_ns))),
            u32s(rows.iter().map(|r| Some(r.pid))),
            u32s(rows.iter().map(|r| Some(r.tid))),
            strings(rows.iter().map(|r| Some(r.run_id.as_str()))),
            strings(rows.iter().map(|r| Some(r.kind.as_str()))),
            u64s(rows.iter().map(|r| Some(r.address))),
            u64s(rows.iter().map(|r| Some(r.size))),
            u32s(rows.iter().map(|r| Some(r.weight))),
            u64s(rows.iter().map(|r| Some(r.stack_id))),
            ts(rows.iter().map(|r| r.alloc_time_ns)),
            u64s(rows.iter().map(|r| r.weight_bytes)),
            f64s(rows.iter().map(|r| r.weight_count)),
        ],
    )
}

/// Builds a `native_counters` batch.
pub fn native_counters_batch(rows: &[NativeCountersRow]) -> Result<RecordBatch> {
    let mut cols = vec![
        ts(rows.iter().map(|r| Some(r.time_ns))),
        u32s(rows.iter().map(|r| Some(r.pid))),
        strings(rows.iter().map(|r| Some(r.run_id.as_str()))),
    ];
    for i in 0..NATIVE_COUNTERS.len() {
        cols.push(u64s(
            rows.iter()
                .map(|r| Some(r.values.get(i).copied().unwrap_or(0))),
        ));
    }
    cols.push(u32s(rows.iter().map(|r| Some(r.sample_every))));
    cols.push(u32s(rows.iter().map(|r| Some(r.probes))));
    cols.push(strings(rows.iter().map(|r| Some(r.libraries.as_str()))));
    cols.push(u64s(rows.iter().map(|r| r.sample_bytes)));
    cols.push(u64s(rows.iter().map(|r| r.stacks_evicted)));
    batch(Table::NativeCounters, cols)
}
