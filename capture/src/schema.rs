//! The one definition of every capture table: names, Arrow schemas and column docs.
//!
//! `docs/capture-format.md` documents the same columns; a unit test keeps the two in step.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// Name of the hive partition column encoded in segment paths (`date=YYYY-MM-DD`).
pub const PARTITION_COLUMN: &str = "date";

/// The capture's tables, one folder each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per recorded profile (a scrape or an imported file).
    Profiles,
    /// One row per profile sample: a stack and its values.
    Samples,
    /// Stack id to ordered frames.
    Stacks,
    /// Process memory: /proc and Go runtime MemStats, one row per interval.
    Process,
    /// Every scrape attempt, successful or not.
    Scrapes,
    /// Native (C) allocations outstanding per stack, one snapshot per interval (eBPF tracer).
    NativeOutstanding,
    /// Traced native allocations and frees, one row each (eBPF tracer).
    NativeEvents,
    /// The native tracer's cumulative counters (losses included), one row per interval.
    NativeCounters,
}

impl Table {
    /// Every table, in the order segments are committed (stacks first so that a committed
    /// sample's stack is always committed too).
    pub const ALL: [Table; 8] = [
        Table::Stacks,
        Table::Profiles,
        Table::Samples,
        Table::Process,
        Table::Scrapes,
        Table::NativeOutstanding,
        Table::NativeEvents,
        Table::NativeCounters,
    ];

    /// Folder and SQL table name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Profiles => "profiles",
            Table::Samples => "samples",
            Table::Stacks => "stacks",
            Table::Process => "process",
            Table::Scrapes => "scrapes",
            Table::NativeOutstanding => "native_outstanding",
            Table::NativeEvents => "native_events",
            Table::NativeCounters => "native_counters",
        }
    }

    /// The table's Arrow schema (without the partition column).
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Profiles => profiles_schema(),
            Table::Samples => samples_schema(),
            Table::Stacks => stacks_schema(),
            Table::Process => process_schema(),
            Table::Scrapes => scrapes_schema(),
            Table::NativeOutstanding => native_outstanding_schema(),
            Table::NativeEvents => native_events_schema(),
            Table::NativeCounters => native_counters_schema(),
        }
    }
}

/// Column names of `profiles`, `samples` and `stacks` (and of a stack's frames), one
/// constant each: the schemas below and every reader use these, so a rename is one edit.
pub mod col {
    /// Profile id (`profiles`, `samples`).
    pub const PROFILE_ID: &str = "profile_id";
    /// Timestamp, ns UTC (every table).
    pub const TIME: &str = "time";
    /// Profile kind: `heap`, `goroutine`, `goroutineleak`, `native`.
    pub const KIND: &str = "kind";
    /// Target URL or name.
    pub const TARGET: &str = "target";
    /// Target process id.
    pub const PID: &str = "pid";
    /// Run id: one process incarnation.
    pub const RUN_ID: &str = "run_id";
    /// Sampling period.
    pub const PERIOD: &str = "period";
    /// What the period counts.
    pub const PERIOD_TYPE: &str = "period_type";
    /// The profile's sample types.
    pub const SAMPLE_TYPES: &str = "sample_types";
    /// Profile duration, ns.
    pub const DURATION_NS: &str = "duration_ns";
    /// Scrape wall time, ms.
    pub const SCRAPE_MS: &str = "scrape_ms";
    /// Where the profile came from (URL or file).
    pub const SOURCE: &str = "source";
    /// Samples in the profile.
    pub const SAMPLE_COUNT: &str = "sample_count";
    /// Stack id (`samples`, `stacks`).
    pub const STACK_ID: &str = "stack_id";
    /// Live objects.
    pub const INUSE_OBJECTS: &str = "inuse_objects";
    /// Live bytes.
    pub const INUSE_BYTES: &str = "inuse_bytes";
    /// Objects allocated since start.
    pub const ALLOC_OBJECTS: &str = "alloc_objects";
    /// Bytes allocated since start.
    pub const ALLOC_BYTES: &str = "alloc_bytes";
    /// Goroutines.
    pub const GOROUTINES: &str = "goroutines";
    /// Sample labels.
    pub const LABELS: &str = "labels";
    /// Stack origin (`go`, `native`).
    pub const ORIGIN: &str = "origin";
    /// Frames in the stack.
    pub const DEPTH: &str = "depth";
    /// The stack's frames, leaf first.
    pub const FRAMES: &str = "frames";
    /// Frame: function name.
    pub const FUNCTION: &str = "function";
    /// Frame: source file.
    pub const FILE: &str = "file";
    /// Frame: source line.
    pub const LINE: &str = "line";
    /// Frame: inlined into its caller.
    pub const INLINED: &str = "inlined";
    /// Frame: instruction address.
    pub const ADDRESS: &str = "address";
    /// Frame: mapping (binary or library path).
    pub const MAPPING: &str = "mapping";
    /// Frame: build id of the mapping.
    pub const BUILD_ID: &str = "build_id";
    /// Frame: offset in the mapping's file.
    pub const FILE_OFFSET: &str = "file_offset";
}

/// The timestamp type used by every `time` column: nanoseconds, UTC.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn field(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

/// Schema of `profiles`.
pub fn profiles_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field(col::PROFILE_ID, DataType::UInt64, false),
        field(col::TIME, time_type(), false),
        field(col::KIND, DataType::Utf8, false),
        field(col::TARGET, DataType::Utf8, false),
        field(col::PID, DataType::UInt32, true),
        field(col::RUN_ID, DataType::Utf8, false),
        field(col::PERIOD, DataType::Int64, false),
        field(col::PERIOD_TYPE, DataType::Utf8, false),
        field(
            col::SAMPLE_TYPES,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
            false,
        ),
        field(col::DURATION_NS, DataType::Int64, false),
        field(col::SCRAPE_MS, DataType::Float64, true),
        field(col::SOURCE, DataType::Utf8, false),
        field(col::SAMPLE_COUNT, DataType::UInt32, false),
    ]))
}

/// Schema of `samples`.
pub fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field(col::PROFILE_ID, DataType::UInt64, false),
        field(col::TIME, time_type(), false),
        field(col::RUN_ID, DataType::Utf8, false),
        field(col::KIND, DataType::Utf8, false),
        field(col::STACK_ID, DataType::UInt64, false),
        field(col::INUSE_OBJECTS, DataType::Int64, true),
        field(col::INUSE_BYTES, DataType::Int64, true),
        field(col::ALLOC_OBJECTS, DataType::Int64, true),
        field(col::ALLOC_BYTES, DataType::Int64, true),
        field(col::GOROUTINES, DataType::Int64, true),
        field(col::LABELS, DataType::Utf8, true),
    ]))
}

/// Fields of one element of `stacks.frames`.
pub fn frame_fields() -> Fields {
    Fields::from(vec![
        field(col::FUNCTION, DataType::Utf8, false),
        field(col::FILE, DataType::Utf8, false),
        field(col::LINE, DataType::Int64, false),
        field(col::INLINED, DataType::Boolean, false),
        field(col::ADDRESS, DataType::UInt64, true),
        field(col::MAPPING, DataType::Utf8, true),
        field(col::BUILD_ID, DataType::Utf8, true),
        field(col::FILE_OFFSET, DataType::UInt64, true),
    ])
}

/// The `frames` list element field.
pub fn frame_item_field() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(frame_fields()), false))
}

/// Schema of `stacks`.
pub fn stacks_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field(col::STACK_ID, DataType::UInt64, false),
        field(col::ORIGIN, DataType::Utf8, false),
        field(col::DEPTH, DataType::UInt32, false),
        field(col::FRAMES, DataType::List(frame_item_field()), false),
    ]))
}

/// One numeric column of `process`: name, unit and meaning.
#[derive(Debug, Clone, Copy)]
pub struct MetricColumn {
    /// Column name.
    pub name: &'static str,
    /// Unit (bytes, count, ns).
    pub unit: &'static str,
    /// Meaning, as documented.
    pub doc: &'static str,
}

const fn m(name: &'static str, unit: &'static str, doc: &'static str) -> MetricColumn {
    MetricColumn { name, unit, doc }
}

/// The numeric `process` columns, in schema order (all nullable Int64).
pub const PROCESS_METRICS: &[MetricColumn] = &[
    m(
        "rss_bytes",
        "bytes",
        "VmRSS from /proc/PID/status: resident set size",
    ),
    m(
        "rss_anon_bytes",
        "bytes",
        "RssAnon: resident anonymous memory (heap, stacks, C malloc)",
    ),
    m(
        "rss_file_bytes",
        "bytes",
        "RssFile: resident file-backed memory",
    ),
    m(
        "rss_shmem_bytes",
        "bytes",
        "RssShmem: resident shared memory",
    ),
    m("vm_size_bytes", "bytes", "VmSize: virtual address space"),
    m("vm_hwm_bytes", "bytes", "VmHWM: peak resident set size"),
    m(
        "vm_swap_bytes",
        "bytes",
        "VmSwap: swapped-out anonymous memory",
    ),
    m("threads", "count", "Threads: OS threads of the process"),
    m(
        "pss_bytes",
        "bytes",
        "Pss from smaps_rollup: proportional set size",
    ),
    m("pss_anon_bytes", "bytes", "Pss_Anon from smaps_rollup"),
    m("anonymous_bytes", "bytes", "Anonymous from smaps_rollup"),
    m(
        "go_alloc_bytes",
        "bytes",
        "MemStats.Alloc: bytes of allocated heap objects",
    ),
    m(
        "go_total_alloc_bytes",
        "bytes",
        "MemStats.TotalAlloc: cumulative bytes allocated",
    ),
    m(
        "go_sys_bytes",
        "bytes",
        "MemStats.Sys: total bytes obtained from the OS",
    ),
    m(
        "go_mallocs",
        "count",
        "MemStats.Mallocs: cumulative heap objects allocated",
    ),
    m(
        "go_frees",
        "count",
        "MemStats.Frees: cumulative heap objects freed",
    ),
    m(
        "go_heap_alloc_bytes",
        "bytes",
        "MemStats.HeapAlloc: bytes of allocated heap objects",
    ),
    m(
        "go_heap_sys_bytes",
        "bytes",
        "MemStats.HeapSys: heap bytes obtained from the OS",
    ),
    m(
        "go_heap_idle_bytes",
        "bytes",
        "MemStats.HeapIdle: bytes in idle spans",
    ),
    m(
        "go_heap_inuse_bytes",
        "bytes",
        "MemStats.HeapInuse: bytes in in-use spans",
    ),
    m(
        "go_heap_released_bytes",
        "bytes",
        "MemStats.HeapReleased: bytes returned to the OS",
    ),
    m(
        "go_heap_objects",
        "count",
        "MemStats.HeapObjects: allocated heap objects",
    ),
    m(
        "go_stack_inuse_bytes",
        "bytes",
        "MemStats.StackInuse: bytes in goroutine stack spans",
    ),
    m(
        "go_stack_sys_bytes",
        "bytes",
        "MemStats.StackSys: stack bytes obtained from the OS",
    ),
    m(
        "go_mspan_inuse_bytes",
        "bytes",
        "MemStats.MSpanInuse: bytes of mspan structures",
    ),
    m(
        "go_mcache_inuse_bytes",
        "bytes",
        "MemStats.MCacheInuse: bytes of mcache structures",
    ),
    m(
        "go_gc_sys_bytes",
        "bytes",
        "MemStats.GCSys: bytes of GC metadata",
    ),
    m(
        "go_other_sys_bytes",
        "bytes",
        "MemStats.OtherSys: other off-heap runtime bytes",
    ),
    m(
        "go_next_gc_bytes",
        "bytes",
        "MemStats.NextGC: target heap size of the next GC",
    ),
    m("go_num_gc", "count", "MemStats.NumGC: completed GC cycles"),
    m(
        "go_pause_total_ns",
        "ns",
        "MemStats.PauseTotalNs: cumulative GC pause time",
    ),
];

/// Schema of `process`.
pub fn process_schema() -> SchemaRef {
    let mut fields = vec![
        field("time", time_type(), false),
        field("target", DataType::Utf8, false),
        field("run_id", DataType::Utf8, true),
        field("pid", DataType::UInt32, true),
        field("process_start", time_type(), true),
    ];
    fields.extend(
        PROCESS_METRICS
            .iter()
            .map(|c| field(c.name, DataType::Int64, true)),
    );
    fields.push(field("memstats_source", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

/// Schema of `scrapes`.
pub fn scrapes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("time", time_type(), false),
        field("target", DataType::Utf8, false),
        field("endpoint", DataType::Utf8, false),
        field("kind", DataType::Utf8, false),
        field("attempt", DataType::UInt32, false),
        field("ok", DataType::Boolean, false),
        field("http_status", DataType::Int32, true),
        field("error", DataType::Utf8, true),
        field("duration_ms", DataType::Float64, false),
        field("bytes", DataType::UInt64, true),
        field("run_id", DataType::Utf8, true),
        field("profile_id", DataType::UInt64, true),
        field("clock_offset_ms", DataType::Float64, true),
    ]))
}

/// Schema of `native_outstanding`.
pub fn native_outstanding_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("time", time_type(), false),
        field("pid", DataType::UInt32, false),
        field("run_id", DataType::Utf8, false),
        field("stack_id", DataType::UInt64, false),
        field("outstanding_bytes", DataType::Int64, false),
        field("outstanding_count", DataType::Int64, false),
        field("allocated_bytes", DataType::Int64, false),
        field("allocated_count", DataType::Int64, false),
    ]))
}

/// Schema of `native_events`.
pub fn native_events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("time", time_type(), false),
        field("pid", DataType::UInt32, false),
        field("tid", DataType::UInt32, false),
        field("run_id", DataType::Utf8, false),
        field("kind", DataType::Utf8, false),
        field("address", DataType::UInt64, false),
        field("size", DataType::UInt64, false),
        field("weight", DataType::UInt32, false),
        field("stack_id", DataType::UInt64, false),
        field("alloc_time", time_type(), true),
        // Added after the first native captures: nullable, null in older segments.
        field("weight_bytes", DataType::UInt64, true),
        field("weight_count", DataType::Float64, true),
    ]))
}

/// The cumulative counter columns of `native_counters`, in schema order (all UInt64).
pub const NATIVE_COUNTERS: &[MetricColumn] = &[
    m("alloc_calls", "count", "Allocation calls seen (sampled or not)"),
    m("alloc_sampled", "count", "Allocation calls selected by sampling"),
    m("alloc_null", "count", "Sampled calls that returned no memory"),
    m("alloc_events", "count", "Allocation events sent to the recorder"),
    m("free_calls", "count", "free/realloc calls with a non-NULL pointer"),
    m("free_matched", "count", "Of those, blocks that were traced (found in the outstanding table)"),
    m("lost_alloc_events", "count", "Allocations lost because the ring buffer was full (not tracked)"),
    m("lost_free_events", "count", "Frees lost because the ring buffer was full (the block stays outstanding)"),
    m("table_full", "count", "Allocations not tracked because the outstanding table was full"),
    m("stack_failures", "count", "Allocations whose user stack could not be read (kept with an empty stack)"),
    m("stash_full", "count", "Allocations lost because the per-thread entry/return stash was full"),
    m("replaced", "count", "Allocations at an address still outstanding (its free was not seen; counted as freed)"),
    m("stacks_truncated", "count", "Stacks that hit the 127-frame limit (outer frames cut)"),
    m("lost_alloc_bytes", "bytes", "Weighted bytes of the lost or untracked allocations above"),
    m("lost_free_bytes", "bytes", "Weighted bytes of the lost frees above"),
    m("nested_calls", "count", "Allocator calls made inside another traced allocator call (reported once, by the outer call)"),
    m("bad_events", "count", "Ring buffer records the recorder could not decode"),
    m("events_not_written", "count", "Events traced but not written to native_events (per-interval cap)"),
    m("unsymbolized_stacks", "count", "Stacks whose symbolization failed entirely (frames kept as addresses)"),
];

/// Schema of `native_counters`.
pub fn native_counters_schema() -> SchemaRef {
    let mut fields = vec![
        field("time", time_type(), false),
        field("pid", DataType::UInt32, false),
        field("run_id", DataType::Utf8, false),
    ];
    fields.extend(
        NATIVE_COUNTERS
            .iter()
            .map(|c| field(c.name, DataType::UInt64, false)),
    );
    fields.push(field("sample_every", DataType::UInt32, false));
    fields.push(field("probes", DataType::UInt32, false));
    fields.push(field("libraries", DataType::Utf8, false));
    // Added after the first native captures: nullable, null in older segments.
    fields.push(field("sample_bytes", DataType::UInt64, true));
    fields.push(field("stacks_evicted", DataType::UInt64, true));
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_cover_every_column() {
        let doc = include_str!("../../docs/capture-format.md");
        for t in Table::ALL {
            assert!(
                doc.contains(&format!("### `{}`", t.name())),
                "table {} undocumented",
                t.name()
            );
            for f in t.schema().fields() {
                assert!(
                    doc.contains(&format!("| `{}` |", f.name())),
                    "column {}.{} undocumented in docs/capture-format.md",
                    t.name(),
                    f.name()
                );
            }
        }
        for f in frame_fields().iter() {
            assert!(
                doc.contains(&format!("| `frames.{}` |", f.name())),
                "frame field {} undocumented",
                f.name()
            );
        }
    }
}
