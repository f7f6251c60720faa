//! Loads per-group time series out of a catalog: one dense row per group, one column per
//! profile, zeros where a group is absent from a profile (absent means none in use).
//!
//! Samples are streamed straight into the matrix (no wide GROUP BY), so memory is
//! `groups x profiles` values plus one record batch at a time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType, UInt64Type};
use arrow_array::Array;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use rayon::prelude::*;

use crate::error::{AnalyzeError, Result};
use crate::fit::RunSeries;
use crate::site::{FrameRef, GroupBy, SiteRules};
use crate::udf::frames_of;

/// Hasher for keys that already are uniform 64-bit hashes (stack ids, profile ids).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Map keyed by 64-bit ids.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A sample value column and the profile kind it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Go heap bytes in use (heap profile, as of the last GC).
    InuseSpace,
    /// Go heap objects in use.
    InuseObjects,
    /// Goroutines (goroutine profile).
    Goroutines,
    /// Native (C) bytes outstanding, traced with eBPF.
    Native,
}

impl Metric {
    /// `profiles.kind` holding this metric.
    pub fn kind(self) -> &'static str {
        match self {
            Metric::InuseSpace | Metric::InuseObjects => "heap",
            Metric::Goroutines => "goroutine",
            Metric::Native => "native",
        }
    }

    /// `samples` column holding this metric.
    pub fn column(self) -> &'static str {
        match self {
            Metric::InuseSpace | Metric::Native => "inuse_bytes",
            Metric::InuseObjects => "inuse_objects",
            Metric::Goroutines => "goroutines",
        }
    }

    /// Unit of the metric's values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::InuseSpace | Metric::Native => "bytes",
            Metric::InuseObjects => "objects",
            Metric::Goroutines => "goroutines",
        }
    }

    /// Section title.
    pub fn title(self) -> &'static str {
        match self {
            Metric::InuseSpace => "Go heap (bytes in use)",
            Metric::InuseObjects => "Go heap (objects in use)",
            Metric::Goroutines => "Goroutines",
            Metric::Native => "Native (C) memory outstanding",
        }
    }
}

/// A profile column of the matrix.
#[derive(Debug, Clone)]
pub struct ProfileCol {
    /// Run label: `capture/run_id`.
    pub run: String,
    /// Profile time, ns since the epoch.
    pub time_ns: i64,
}

/// Per-group series for one metric.
#[derive(Debug, Default)]
pub struct SeriesSet {
    /// Profile columns, sorted by run then time.
    pub profiles: Vec<ProfileCol>,
    /// Column ranges of each run, in order.
    pub runs: Vec<(String, std::ops::Range<usize>)>,
    /// Group keys.
    pub keys: Vec<String>,
    /// Representative stack of each group: the stack contributing the most.
    pub stacks: Vec<Vec<FrameRef>>,
    /// Every function appearing in any stack of the group.
    pub functions: Vec<Vec<String>>,
    /// Distinct call-site frames of each group's stacks.
    pub site_frames: Vec<Vec<FrameRef>>,
    /// Stacks in each group.
    pub stack_counts: Vec<usize>,
    /// `values[g * profiles.len() + p]`.
    pub values: Vec<f64>,
    /// Mean bytes per object of each group (heap metrics only; 0 otherwise).
    pub object_size: Vec<f64>,
    /// Sample rows read.
    pub rows: u64,
}

impl SeriesSet {
    /// The group's series split by run.
    pub fn runs_of(&self, g: usize) -> Vec<RunSeries> {
        let p = self.profiles.len();
        let row = &self.values[g * p..(g + 1) * p];
        self.runs
            .iter()
            .map(|(name, r)| RunSeries {
                run: name.clone(),
                time_ns: self.profiles[r.clone()].iter().map(|c| c.time_ns).collect(),
                y: row[r.clone()].to_vec(),
            })
            .collect()
    }
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<arrow_array::RecordBatch>> {
    ctx.sql(sql)
        .await
        .map_err(AnalyzeError::df(format!("planning {sql}")))?
        .collect()
        .await
        .map_err(AnalyzeError::df(format!("running {sql}")))
}

/// Loads the profile timeline of `kind`: columns sorted by run (in time order), then time.
pub async fn load_profiles(
    ctx: &SessionContext,
    kind: &str,
) -> Result<(
    Vec<ProfileCol>,
    Vec<(String, std::ops::Range<usize>)>,
    IdMap<usize>,
)> {
    let batches = collect(
        ctx,
        &format!("SELECT capture, run_id, profile_id, time FROM profiles WHERE kind = '{kind}'"),
    )
    .await?;
    let mut rows: Vec<(String, u64, i64)> = Vec::new();
    for b in &batches {
        let cap = b.column(0).as_string::<i32>();
        let run = b.column(1).as_string::<i32>();
        let pid = b.column(2).as_primitive::<UInt64Type>();
        let t = b.column(3).as_primitive::<TimestampNanosecondType>();
        for i in 0..b.num_rows() {
            rows.push((
                format!("{}/{}", cap.value(i), run.value(i)),
                pid.value(i),
                t.value(i),
            ));
        }
    }
    // Order runs by their first profile time, then profiles by time.
    let mut first: HashMap<String, i64> = HashMap::new();
    for (r, _, t) in &rows {
        let e = first.entry(r.clone()).or_insert(*t);
        *e = (*e).min(*t);
    }
    rows.sort_by(|a, b| (first[&a.0], &a.0, a.2, a.1).cmp(&(first[&b.0], &b.0, b.2, b.1)));
    // The same profile can appear twice (a capture given twice, an overlapping import):
    // keep its first occurrence only, so positions and ids stay one-to-one.
    let mut seen_ids = std::collections::HashSet::new();
    rows.retain(|r| seen_ids.insert(r.1));
    let mut profiles = Vec::with_capacity(rows.len());
    let mut pos = IdMap::default();
    let mut runs: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for (i, (run, pid, t)) in rows.into_iter().enumerate() {
        match runs.last_mut() {
            Some((name, r)) if *name == run => r.end = i + 1,
            _ => runs.push((run.clone(), i..i + 1)),
        }
        pos.insert(pid, i);
        profiles.push(ProfileCol { run, time_ns: t });
    }
    Ok((profiles, runs, pos))
}

/// Loads every stack's frames (deduplicated by stack id).
pub async fn load_stacks(ctx: &SessionContext) -> Result<IdMap<Vec<FrameRef>>> {
    // Streamed: every segment set repeats the stacks its samples use, so the table holds
    // many copies of each; only the first copy of each id is decoded and kept.
    let sql = "SELECT stack_id, frames FROM stacks";
    let mut stream = ctx
        .sql(sql)
        .await
        .map_err(AnalyzeError::df(format!("planning {sql}")))?
        .execute_stream()
        .await
        .map_err(AnalyzeError::df(format!("running {sql}")))?;
    let mut out = IdMap::default();
    while let Some(batch) = stream.next().await {
        let b = batch.map_err(AnalyzeError::df("reading stacks"))?;
        let ids = b.column(0).as_primitive::<UInt64Type>();
        let frames = b.column(1).as_list::<i32>();
        for i in 0..b.num_rows() {
            out.entry(ids.value(i))
                .or_insert_with(|| frames_of(frames, i));
        }
    }
    Ok(out)
}

/// Assigns every stack to a group; returns stack -> group index and the group keys.
pub fn group_stacks(
    stacks: &IdMap<Vec<FrameRef>>,
    by: GroupBy,
    rules: &SiteRules,
) -> (IdMap<usize>, Vec<String>) {
    let mut ids: Vec<&u64> = stacks.keys().collect();
    ids.sort();
    let keyed: Vec<(u64, String)> = ids
        .par_iter()
        .map(|id| (**id, rules.group_key(by, **id, &stacks[*id])))
        .collect();
    let mut group_of = IdMap::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut keys = Vec::new();
    for (id, key) in keyed {
        let g = *index.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            keys.len() - 1
        });
        group_of.insert(id, g);
    }
    (group_of, keys)
}

/// Builds the group x profile matrix of `metric`, calling `progress` with rows read.
pub async fn load_series(
    ctx: &SessionContext,
    metric: Metric,
    stacks: &IdMap<Vec<FrameRef>>,
    by: GroupBy,
    rules: &SiteRules,
    progress: &dyn Fn(u64),
) -> Result<SeriesSet> {
    let (profiles, runs, pos) = load_profiles(ctx, metric.kind()).await?;
    let (group_of, keys) = group_stacks(stacks, by, rules);
    let np = profiles.len();
    let ng = keys.len();
    let mut values = vec![0.0f64; ng * np];
    let mut stack_weight: IdMap<f64> = IdMap::default();
    let mut bytes = vec![0.0f64; ng];
    let mut objects = vec![0.0f64; ng];
    let heap = metric.kind() == "heap";
    let extra = if heap {
        ", inuse_bytes AS heap_bytes, inuse_objects AS heap_objects"
    } else {
        ""
    };
    let sql = format!(
        "SELECT stack_id, profile_id, {col}{extra} FROM samples WHERE kind = '{kind}' AND {col} IS NOT NULL",
        col = metric.column(),
        kind = metric.kind()
    );
    let mut stream = ctx
        .sql(&sql)
        .await
        .map_err(AnalyzeError::df(format!("planning {sql}")))?
        .execute_stream()
        .await
        .map_err(AnalyzeError::df(format!("running {sql}")))?;
    let mut rows = 0u64;
    let mut seen = vec![false; np];
    while let Some(batch) = stream.next().await {
        let b = batch.map_err(AnalyzeError::df("reading samples"))?;
        let sid = b.column(0).as_primitive::<UInt64Type>();
        let pid = b.column(1).as_primitive::<UInt64Type>();
        let val = b.column(2).as_primitive::<Int64Type>();
        let (hb, ho) = if heap {
            (
                Some(b.column(3).as_primitive::<Int64Type>()),
                Some(b.column(4).as_primitive::<Int64Type>()),
            )
        } else {
            (None, None)
        };
        for i in 0..b.num_rows() {
            let (Some(&g), Some(&p)) = (group_of.get(&sid.value(i)), pos.get(&pid.value(i))) else {
                continue;
            };
            let v = val.value(i) as f64;
            seen[p] = true;
            values[g * np + p] += v;
            *stack_weight.entry(sid.value(i)).or_insert(0.0) += v;
            if let (Some(hb), Some(ho)) = (hb, ho) {
                if hb.is_valid(i) && ho.is_valid(i) {
                    bytes[g] += hb.value(i) as f64;
                    objects[g] += ho.value(i) as f64;
                }
            }
        }
        rows += b.num_rows() as u64;
        progress(rows);
    }
    // Profiles without any sample row (their samples segment is corrupt or was never
    // committed) would read as "everything dropped to zero": leave them out.
    let (profiles, runs, values) = if seen.iter().all(|s| *s) {
        (profiles, runs, values)
    } else {
        drop_unseen(&profiles, &runs, &values, &seen, ng)
    };
    // Representative stack and function set per group.
    let mut best: Vec<(f64, u64)> = vec![(f64::MIN, 0); ng];
    let mut functions: Vec<Vec<String>> = vec![Vec::new(); ng];
    let mut stack_counts = vec![0usize; ng];
    let mut site_frames: Vec<Vec<FrameRef>> = vec![Vec::new(); ng];
    for (sid, w) in &stack_weight {
        let g = group_of[sid];
        stack_counts[g] += 1;
        if let Some(f) = stacks[sid].get(rules.site_index(&stacks[sid])) {
            if !site_frames[g].contains(f) {
                site_frames[g].push(f.clone());
            }
        }
        if *w > best[g].0 || (*w == best[g].0 && *sid < best[g].1) {
            best[g] = (*w, *sid);
        }
        for f in &stacks[sid] {
            if !functions[g].contains(&f.function) {
                functions[g].push(f.function.clone());
            }
        }
    }
    let rep: Vec<Vec<FrameRef>> = best
        .iter()
        .map(|(_, sid)| stacks.get(sid).cloned().unwrap_or_default())
        .collect();
    let object_size = bytes
        .iter()
        .zip(&objects)
        .map(|(b, o)| if *o > 0.0 { b / o } else { 0.0 })
        .collect();
    Ok(SeriesSet {
        profiles,
        runs,
        keys,
        stacks: rep,
        functions,
        site_frames,
        stack_counts,
        values,
        object_size,
        rows,
    })
}

type Timeline = (
    Vec<ProfileCol>,
    Vec<(String, std::ops::Range<usize>)>,
    Vec<f64>,
);

/// Removes the profile columns not marked in `seen` from the timeline and the matrix.
fn drop_unseen(
    profiles: &[ProfileCol],
    runs: &[(String, std::ops::Range<usize>)],
    values: &[f64],
    seen: &[bool],
    groups: usize,
) -> Timeline {
    let keep: Vec<usize> = (0..profiles.len()).filter(|&p| seen[p]).collect();
    let np = profiles.len();
    let mut new_values = Vec::with_capacity(groups * keep.len());
    for g in 0..groups {
        new_values.extend(keep.iter().map(|&p| values[g * np + p]));
    }
    let mut new_runs: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for (i, &p) in keep.iter().enumerate() {
        let name = &profiles[p].run;
        match new_runs.last_mut() {
            Some((n, r)) if n == name => r.end = i + 1,
            _ => new_runs.push((name.clone(), i..i + 1)),
        }
    }
    debug_assert!(runs.len() >= new_runs.len());
    let new_profiles = keep.iter().map(|&p| profiles[p].clone()).collect();
    (new_profiles, new_runs, new_values)
}
