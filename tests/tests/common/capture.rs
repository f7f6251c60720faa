//! Reads a whole capture back through `leakscope_capture`'s readers into plain rows, and
//! checks the invariants every capture must satisfy.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float64Type, Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use leakscope_capture::read::read_segment;
use leakscope_capture::schema::{Table, PROCESS_METRICS};
use leakscope_capture::segment::list_segments;
use leakscope_capture::stack::Frame;

/// A `profiles` row (plus the segment stem it was read from).
#[derive(Debug, Clone)]
pub struct Profile {
    pub stem: String,
    pub profile_id: u64,
    pub time_ns: i64,
    pub kind: String,
    pub target: String,
    pub pid: Option<u32>,
    pub run_id: String,
    pub period: i64,
    pub sample_types: Vec<String>,
    pub source: String,
    pub sample_count: u32,
}

/// A `samples` row.
#[derive(Debug, Clone)]
pub struct Sample {
    pub stem: String,
    pub profile_id: u64,
    pub time_ns: i64,
    pub run_id: String,
    pub kind: String,
    pub stack_id: u64,
    pub inuse_objects: Option<i64>,
    pub inuse_bytes: Option<i64>,
    pub alloc_bytes: Option<i64>,
    pub goroutines: Option<i64>,
}

/// A `process` row; `metrics` by column name.
#[derive(Debug, Clone)]
pub struct Process {
    pub stem: String,
    pub time_ns: i64,
    pub target: String,
    pub run_id: Option<String>,
    pub pid: Option<u32>,
    pub metrics: HashMap<&'static str, Option<i64>>,
    pub memstats_source: Option<String>,
}

/// A `scrapes` row.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub stem: String,
    pub time_ns: i64,
    pub target: String,
    pub endpoint: String,
    pub kind: String,
    pub attempt: u32,
    pub ok: bool,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: f64,
    pub run_id: Option<String>,
    pub profile_id: Option<u64>,
    /// Null in segments written before the column existed.
    pub clock_offset_ms: Option<f64>,
}

/// Every committed row of a capture, oldest segment first, rows in stored order.
#[derive(Debug, Default)]
pub struct Capture {
    pub dir: PathBuf,
    pub profiles: Vec<Profile>,
    pub samples: Vec<Sample>,
    /// stack id -> frames (leaf first); every copy of a stack is checked to be identical.
    pub stacks: HashMap<u64, Vec<Frame>>,
    /// Number of stack rows (a stack is repeated in every segment set that uses it).
    pub stack_rows: usize,
    pub process: Vec<Process>,
    pub scrapes: Vec<Scrape>,
    /// Segment stems per table.
    pub stems: BTreeMap<&'static str, Vec<String>>,
}

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("column {name} missing from {:?}", b.schema()))
}

fn u64s(b: &RecordBatch, name: &str) -> Vec<Option<u64>> {
    col(b, name).as_primitive::<UInt64Type>().iter().collect()
}

fn u32s(b: &RecordBatch, name: &str) -> Vec<Option<u32>> {
    col(b, name).as_primitive::<UInt32Type>().iter().collect()
}

fn i64s(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    col(b, name).as_primitive::<Int64Type>().iter().collect()
}

fn times(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    col(b, name)
        .as_primitive::<TimestampNanosecondType>()
        .iter()
        .collect()
}

fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    col(b, name)
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

impl Capture {
    /// Reads every table of capture `dir`; panics (naming the file) if any committed segment
    /// is unreadable or two copies of one stack id differ.
    pub fn load(dir: &Path) -> Capture {
        let mut c = Capture {
            dir: dir.to_path_buf(),
            ..Default::default()
        };
        for table in Table::ALL {
            let segs = list_segments(dir, table).unwrap();
            c.stems
                .insert(table.name(), segs.iter().map(|s| s.stem.clone()).collect());
            for seg in segs {
                let batches = read_segment(&seg.path).unwrap_or_else(|e| {
                    panic!(
                        "committed segment {} is unreadable: {e}",
                        seg.path.display()
                    )
                });
                for b in &batches {
                    c.add(table, &seg.stem, b);
                }
            }
        }
        c
    }

    fn add(&mut self, table: Table, stem: &str, b: &RecordBatch) {
        let n = b.num_rows();
        let stem = || stem.to_string();
        match table {
            Table::Profiles => {
                let (id, time, kind, target) = (
                    u64s(b, "profile_id"),
                    times(b, "time"),
                    strs(b, "kind"),
                    strs(b, "target"),
                );
                let (pid, run, period, source) = (
                    u32s(b, "pid"),
                    strs(b, "run_id"),
                    i64s(b, "period"),
                    strs(b, "source"),
                );
                let count = u32s(b, "sample_count");
                let types = col(b, "sample_types").as_list::<i32>();
                for i in 0..n {
                    let t = types.value(i);
                    self.profiles.push(Profile {
                        stem: stem(),
                        profile_id: id[i].unwrap(),
                        time_ns: time[i].unwrap(),
                        kind: kind[i].clone().unwrap(),
                        target: target[i].clone().unwrap(),
                        pid: pid[i],
                        run_id: run[i].clone().unwrap(),
                        period: period[i].unwrap(),
                        sample_types: t
                            .as_string::<i32>()
                            .iter()
                            .map(|s| s.unwrap().to_string())
                            .collect(),
                        source: source[i].clone().unwrap(),
                        sample_count: count[i].unwrap(),
                    });
                }
            }
            Table::Samples => {
                let (id, time, run, kind) = (
                    u64s(b, "profile_id"),
                    times(b, "time"),
                    strs(b, "run_id"),
                    strs(b, "kind"),
                );
                let (stack, io, ib) = (
                    u64s(b, "stack_id"),
                    i64s(b, "inuse_objects"),
                    i64s(b, "inuse_bytes"),
                );
                let (ab, g) = (i64s(b, "alloc_bytes"), i64s(b, "goroutines"));
                for i in 0..n {
                    self.samples.push(Sample {
                        stem: stem(),
                        profile_id: id[i].unwrap(),
                        time_ns: time[i].unwrap(),
                        run_id: run[i].clone().unwrap(),
                        kind: kind[i].clone().unwrap(),
                        stack_id: stack[i].unwrap(),
                        inuse_objects: io[i],
                        inuse_bytes: ib[i],
                        alloc_bytes: ab[i],
                        goroutines: g[i],
                    });
                }
            }
            Table::Stacks => {
                let ids = u64s(b, "stack_id");
                let depth = u32s(b, "depth");
                let frames = col(b, "frames").as_list::<i32>();
                for i in 0..n {
                    let list = frames.value(i);
                    let s = list.as_struct();
                    let f = |name: &str| s.column_by_name(name).unwrap().clone();
                    let (func, file, line) = (f("function"), f("file"), f("line"));
                    let (inl, addr, map, bid, off) = (
                        f("inlined"),
                        f("address"),
                        f("mapping"),
                        f("build_id"),
                        f("file_offset"),
                    );
                    let opt_str = |a: &ArrayRef, j: usize| {
                        a.is_valid(j)
                            .then(|| a.as_string::<i32>().value(j).to_string())
                    };
                    let opt_u64 = |a: &ArrayRef, j: usize| {
                        a.is_valid(j)
                            .then(|| a.as_primitive::<UInt64Type>().value(j))
                    };
                    let fr: Vec<Frame> = (0..s.len())
                        .map(|j| Frame {
                            function: func.as_string::<i32>().value(j).to_string(),
                            file: file.as_string::<i32>().value(j).to_string(),
                            line: line.as_primitive::<Int64Type>().value(j),
                            inlined: inl.as_boolean().value(j),
                            address: opt_u64(&addr, j),
                            mapping: opt_str(&map, j),
                            build_id: opt_str(&bid, j),
                            file_offset: opt_u64(&off, j),
                        })
                        .collect();
                    assert_eq!(
                        depth[i],
                        Some(fr.len() as u32),
                        "stack depth != frame count"
                    );
                    let id = ids[i].unwrap();
                    // Copies in other segment sets may differ in what the id ignores
                    // (addresses, mapping paths, build ids of symbolized frames, inlining).
                    if let Some(prev) = self.stacks.get(&id) {
                        assert_eq!(
                            identity(prev),
                            identity(&fr),
                            "stack {id} has two different frame lists"
                        );
                    }
                    self.stacks.entry(id).or_insert(fr);
                    self.stack_rows += 1;
                }
            }
            Table::Process => {
                let (time, target, run, pid) = (
                    times(b, "time"),
                    strs(b, "target"),
                    strs(b, "run_id"),
                    u32s(b, "pid"),
                );
                let src = strs(b, "memstats_source");
                let metrics: Vec<(&'static str, Vec<Option<i64>>)> = PROCESS_METRICS
                    .iter()
                    .map(|m| (m.name, i64s(b, m.name)))
                    .collect();
                for i in 0..n {
                    self.process.push(Process {
                        stem: stem(),
                        time_ns: time[i].unwrap(),
                        target: target[i].clone().unwrap(),
                        run_id: run[i].clone(),
                        pid: pid[i],
                        metrics: metrics.iter().map(|(name, v)| (*name, v[i])).collect(),
                        memstats_source: src[i].clone(),
                    });
                }
            }
            Table::Scrapes => {
                let (time, endpoint, kind) =
                    (times(b, "time"), strs(b, "endpoint"), strs(b, "kind"));
                let attempt = u32s(b, "attempt");
                let ok: Vec<Option<bool>> = col(b, "ok").as_boolean().iter().collect();
                let status: Vec<Option<i32>> = col(b, "http_status")
                    .as_primitive::<Int32Type>()
                    .iter()
                    .collect();
                let (error, run, pid) =
                    (strs(b, "error"), strs(b, "run_id"), u64s(b, "profile_id"));
                let dur: Vec<Option<f64>> = col(b, "duration_ms")
                    .as_primitive::<Float64Type>()
                    .iter()
                    .collect();
                let offset: Vec<Option<f64>> = match b.column_by_name("clock_offset_ms") {
                    Some(c) => c.as_primitive::<Float64Type>().iter().collect(),
                    None => vec![None; n],
                };
                let target = strs(b, "target");
                for i in 0..n {
                    self.scrapes.push(Scrape {
                        stem: stem(),
                        time_ns: time[i].unwrap(),
                        target: target[i].clone().unwrap(),
                        endpoint: endpoint[i].clone().unwrap(),
                        kind: kind[i].clone().unwrap(),
                        attempt: attempt[i].unwrap(),
                        ok: ok[i].unwrap(),
                        http_status: status[i],
                        error: error[i].clone(),
                        duration_ms: dur[i].unwrap(),
                        run_id: run[i].clone(),
                        profile_id: pid[i],
                        clock_offset_ms: offset[i],
                    });
                }
            }
            // Native tracer tables (native_outstanding, native_events, native_counters): read
            // directly by tests/tests/native_e2e.rs.
            _ => {}
        }
    }

    /// Profiles of `kind` in stored order.
    pub fn profiles_of(&self, kind: &str) -> Vec<&Profile> {
        self.profiles.iter().filter(|p| p.kind == kind).collect()
    }

    /// True when stack `id` has a frame whose function is `function`.
    pub fn stack_has(&self, id: u64, function: &str) -> bool {
        self.stacks
            .get(&id)
            .is_some_and(|f| f.iter().any(|f| f.function == function))
    }

    /// For each profile of `kind` (stored order): its time and the sum of `value` over the
    /// samples whose stack contains `function`.
    pub fn series(
        &self,
        kind: &str,
        function: &str,
        value: impl Fn(&Sample) -> Option<i64>,
    ) -> Vec<(i64, i64)> {
        let mut sums: HashMap<u64, i64> = HashMap::new();
        for s in self
            .samples
            .iter()
            .filter(|s| s.kind == kind && self.stack_has(s.stack_id, function))
        {
            *sums.entry(s.profile_id).or_default() += value(s).unwrap_or(0);
        }
        self.profiles_of(kind)
            .iter()
            .map(|p| (p.time_ns, sums.get(&p.profile_id).copied().unwrap_or(0)))
            .collect()
    }

    /// Asserts the cross-table invariants: profile ids unique, every sample's stack and
    /// profile committed, stack ids equal to the hash of their frames, and every profile's
    /// samples complete (`sample_count`) except in the segment sets named in `in_flight`
    /// (a set being committed when the writer was killed may lack its later tables).
    pub fn assert_consistent(&self, in_flight: &[&str]) {
        let mut ids = HashSet::new();
        for p in &self.profiles {
            assert!(
                ids.insert(p.profile_id),
                "profile id {} committed twice ({})",
                p.profile_id,
                p.source
            );
        }
        let profiles: HashMap<u64, &Profile> =
            self.profiles.iter().map(|p| (p.profile_id, p)).collect();
        let mut per_profile: HashMap<u64, u32> = HashMap::new();
        let mut missing_stacks = HashSet::new();
        for s in &self.samples {
            if !self.stacks.contains_key(&s.stack_id) {
                missing_stacks.insert(s.stack_id);
            }
            let p = profiles.get(&s.profile_id).unwrap_or_else(|| {
                panic!(
                    "sample in set {} refers to profile {} which is not committed",
                    s.stem, s.profile_id
                )
            });
            assert_eq!(
                (s.time_ns, &s.kind, &s.run_id),
                (p.time_ns, &p.kind, &p.run_id),
                "sample/profile mismatch"
            );
            *per_profile.entry(s.profile_id).or_default() += 1;
        }
        assert!(
            missing_stacks.is_empty(),
            "{} stack ids referenced by committed samples are not committed, e.g. {:?}",
            missing_stacks.len(),
            missing_stacks.iter().take(3).collect::<Vec<_>>()
        );
        for p in &self.profiles {
            let n = per_profile.get(&p.profile_id).copied().unwrap_or(0);
            if in_flight.contains(&p.stem.as_str()) {
                assert!(
                    n == 0 || n == p.sample_count,
                    "profile {} has {n} of {} samples",
                    p.source,
                    p.sample_count
                );
            } else {
                assert_eq!(
                    n, p.sample_count,
                    "profile {} at {} in set {}: committed samples",
                    p.source, p.time_ns, p.stem
                );
            }
        }
        for (id, frames) in &self.stacks {
            assert_eq!(
                leakscope_capture::stack::stack_id(frames),
                *id,
                "stack id is not the hash of its frames"
            );
        }
        for s in &self.scrapes {
            if let Some(id) = s.profile_id {
                assert!(
                    profiles.contains_key(&id) || in_flight.contains(&s.stem.as_str()),
                    "scrape of {} at {} names profile {id}, which is not committed",
                    s.endpoint,
                    s.time_ns
                );
            }
        }
    }
}

/// What a stack id identifies: each frame's function, file and line.
pub fn identity(frames: &[Frame]) -> Vec<(&str, &str, i64)> {
    frames
        .iter()
        .map(|f| (f.function.as_str(), f.file.as_str(), f.line))
        .collect()
}

/// Every file below `dir` whose name ends in `.parquet` and does not start with a dot.
pub fn committed_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") && !name.starts_with('.') {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
