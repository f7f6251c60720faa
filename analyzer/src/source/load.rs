//! Loads per-group time series out of a catalog: one dense row per group, one column per
//! profile, zeros where a group is absent from a profile (absent means none in use).
//!
//! Samples are streamed straight into the matrix (no wide GROUP BY), so memory is
//! `groups x profiles` values plus one record batch at a time.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::error::Result;
use crate::model::evidence;
use crate::model::fit::RunSeries;
pub use crate::model::ids::{IdHasher, IdMap};
pub use crate::model::metric::Metric;
use crate::model::site::{FrameRef, Frames, GroupBy, SiteRules};
use crate::model::stats;
use crate::source::catalog::Catalog;
use crate::source::profiles::ProfileRef;
use crate::source::totals::ProfileTotals;
use leakscope_capture::schema::{col, Table};

/// One group's series as (run label, times in ns, values), run by run.
pub type RunPoints = Vec<(String, Vec<i64>, Vec<f64>)>;

/// Per-group series for one metric, stored by profile: `columns[p][g]`.
#[derive(Debug, Default)]
pub struct SeriesSet {
    /// Profile columns, sorted by run then time.
    pub profiles: Vec<ProfileRef>,
    /// Column ranges of each run, in order.
    pub runs: Vec<(String, std::ops::Range<usize>)>,
    /// Group keys.
    pub keys: Vec<String>,
    /// Representative stack of each group: the stack contributing the most.
    pub stacks: Vec<Frames>,
    /// Every function appearing in any stack of the group.
    pub functions: Vec<Vec<String>>,
    /// Distinct call-site frames of each group's stacks.
    pub site_frames: Vec<Vec<FrameRef>>,
    /// Stacks in each group.
    pub stack_counts: Vec<usize>,
    /// The value of every group in every profile, profile by profile.
    pub matrix: crate::source::matrix::Matrix,
    /// Mean bytes per object of each group at the end of each run (heap only; 0 otherwise).
    pub object_size: Vec<f64>,
    /// Sample rows of the counted profiles of this metric.
    pub rows: u64,
    /// Profiles dropped as repeats of the previous observation (heap: no GC between).
    pub repeats: usize,
    /// Median sampling period of the profiles (bytes for heap, 1 for goroutines).
    pub sampling_period: Option<f64>,
    /// Heap: allocated bytes of each group at each run's checkpoints, `slot * groups +
    /// group` (slot = run * checkpoints + checkpoint); empty for other metrics.
    pub alloc_at: Vec<f64>,
    /// Heap: the profile position of each checkpoint slot.
    pub checkpoint_cols: Vec<usize>,
    /// The metric's column summed per profile over every row the scan read, for every
    /// profile of the timeline (also those left out as unseen or repeats).
    pub totals: Option<ProfileTotals>,
}

impl SeriesSet {
    /// The allocation checkpoints of group `g` in run `r`, with in-use values from `row`
    /// (the group's row over every profile) and times from `hours`; `None` for non-heap.
    pub fn alloc_checkpoints(
        &self,
        g: usize,
        r: usize,
        row: &[f64],
        hours: &[f64],
    ) -> Option<evidence::AllocCheckpoints> {
        let k = evidence::CHECKPOINTS.len();
        let ng = self.keys.len();
        let slots = r * k..(r + 1) * k;
        let cols = self.checkpoint_cols.get(slots.clone())?;
        let mut c = evidence::AllocCheckpoints::default();
        for (i, (&p, slot)) in cols.iter().zip(slots).enumerate() {
            c.hours[i] = hours[p];
            c.inuse[i] = row[p];
            c.alloc[i] = *self.alloc_at.get(slot * ng + g)?;
        }
        Some(c)
    }

    /// Rows of the groups in `groups`, each over every profile (a cache-friendly transpose).
    pub fn rows_of(&self, groups: std::ops::Range<usize>) -> Vec<Vec<f64>> {
        let mut flat = Vec::new();
        self.rows_into(groups.clone(), &mut flat);
        let np = self.matrix.profiles();
        flat.chunks(np.max(1))
            .take(groups.len())
            .map(<[f64]>::to_vec)
            .collect()
    }

    /// Rows of the groups in `groups` written one after another into `out` (reused, so
    /// fitting thousands of groups does not allocate and fault in fresh memory per chunk).
    pub fn rows_into(&self, groups: std::ops::Range<usize>, out: &mut Vec<f64>) {
        let np = self.matrix.profiles();
        let ng = groups.len();
        if np == 0 {
            out.clear();
            return;
        }
        if out.len() != ng * np {
            // Every element is written by the transpose, so a reused buffer of the right
            // size is not cleared first.
            out.clear();
            out.resize(ng * np, 0.0);
        }
        self.matrix.transpose_into(groups, out);
    }

    /// Time of each profile in hours since the first profile of its run.
    pub fn run_hours(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.profiles.len()];
        for (_, r) in &self.runs {
            let t0 = self.profiles[r.start].time_ns;
            for p in r.clone() {
                out[p] = crate::units::hours_between(t0, self.profiles[p].time_ns);
            }
        }
        out
    }

    /// The group's series split by run.
    pub fn runs_of(&self, g: usize) -> Vec<RunSeries> {
        let row = self.rows_of(g..g + 1).pop().unwrap_or_default();
        self.runs
            .iter()
            .map(|(name, r)| RunSeries {
                run: name.clone(),
                time_ns: self.profiles[r.clone()].iter().map(|c| c.time_ns).collect(),
                y: row[r.clone()].to_vec(),
            })
            .collect()
    }

    /// The group's series as chart points, run by run.
    pub fn points_of(&self, g: usize) -> RunPoints {
        self.runs_of(g)
            .into_iter()
            .map(|r| (r.run, r.time_ns, r.y))
            .collect()
    }
}

/// Loads every stack's frames (one copy per stack id) with a direct parallel scan.
pub fn load_stacks(cat: &Catalog) -> Result<IdMap<Frames>> {
    crate::source::scan::read_stacks(&crate::source::scan::segments(cat, Table::Stacks)?)
}

/// Assigns every stack to a group; returns stack -> group index and the group keys.
pub fn group_stacks(
    stacks: &IdMap<Frames>,
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

/// What every metric's series is built from: the catalog, its profiles listing and every
/// stack's frames, each read once per ranking.
#[derive(Clone, Copy)]
pub struct SeriesSources<'a> {
    /// The captures.
    pub cat: &'a Catalog,
    /// Every profile of the captures.
    pub listing: &'a crate::source::profiles::ProfileListing,
    /// Every stack's frames.
    pub stacks: &'a IdMap<Frames>,
}

/// Builds the group x profile matrix of `metric`, calling `progress` with rows read.
pub async fn load_series(
    sources: SeriesSources<'_>,
    metric: Metric,
    by: GroupBy,
    rules: &SiteRules,
    first: Option<std::time::Duration>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SeriesSet> {
    let SeriesSources {
        cat,
        listing,
        stacks,
    } = sources;
    let clock = std::time::Instant::now();
    let crate::source::profiles::Timeline { profiles, pos, .. } =
        listing.timeline(metric.kind(), first);
    log::debug!(
        "{} profiles listed in {:?}",
        profiles.len(),
        clock.elapsed()
    );
    let (group_of, keys) = group_stacks(stacks, by, rules);
    log::debug!("{} groups keyed in {:?}", keys.len(), clock.elapsed());
    let ng = keys.len();
    // Dense stack indices: the scan's per-row lookups and sums stay in small arrays.
    let mut stack_ids: Vec<u64> = group_of.keys().copied().collect();
    stack_ids.sort_unstable();
    let stack_index: IdMap<u32> = stack_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();
    let stack_group: Vec<u32> = stack_ids.iter().map(|id| group_of[id] as u32).collect();
    let capture_index: HashMap<&str, usize> = cat
        .captures
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let profile_capture: Vec<usize> = profiles
        .iter()
        .map(|p| capture_index.get(p.capture.as_str()).copied().unwrap_or(0))
        .collect();
    let segs = crate::source::scan::segments(cat, Table::Samples)?;
    let scan = crate::source::scan::SampleScan {
        kind: metric.kind(),
        column: metric.column(),
        profile_pos: &pos,
        profile_capture: &profile_capture,
        stack_index: &stack_index,
        stack_group: &stack_group,
        groups: ng,
        progress,
    };
    // On a cluster the executors read the sample rows (the heavy step); here, this process.
    let matrix = if cat.cluster.is_some() {
        crate::source::cluster_scan::scan_samples(&cat.ctx, &scan, &profiles, &stack_ids).await?
    } else {
        crate::source::scan::scan_samples(&segs, &scan, profiles.len())?
    };
    log::debug!(
        "{} sample rows scanned in {:?}",
        matrix.rows,
        clock.elapsed()
    );
    let totals = matrix
        .totals
        .map(|t| ProfileTotals::new(metric.kind(), metric.column(), &profiles, &t));
    // Profiles without any sample row (their samples segment is corrupt or was never
    // committed) would read as "everything dropped to zero": leave them out.
    let (mut values, seen) = (matrix.matrix, matrix.seen);
    values.retain_columns(&seen);
    let (profiles, runs) = drop_unseen(profiles, &seen);
    // A heap profile changes only when a GC completes: scrapes within one GC cycle repeat
    // the same observation, and counting them would overstate the evidence.
    let (values, profiles, runs, repeats) = if metric.kind() == "heap" {
        let keep = distinct_observations(&values, &runs);
        let repeats = keep.iter().filter(|k| !**k).count();
        let mut values = values;
        values.retain_columns(&keep);
        let (profiles, runs) = drop_unseen(profiles, &keep);
        (values, profiles, runs, repeats)
    } else {
        (values, profiles, runs, 0)
    };
    let sampling_period = stats::median(
        &profiles
            .iter()
            .filter(|p| p.period > 0)
            .map(|p| p.period as f64)
            .collect::<Vec<_>>(),
    );
    let (object_size, alloc_at, checkpoint_cols) = if let Some(alloc) = metric.alloc_column() {
        heap_checkpoints(
            &segs,
            &profiles,
            &runs,
            &stack_index,
            &stack_group,
            ng,
            alloc,
        )?
    } else {
        (vec![0.0; ng], Vec::new(), Vec::new())
    };
    log::debug!("object sizes in {:?}", clock.elapsed());
    let described = describe_groups(GroupMembers {
        stack_weight: &matrix.stack_weight,
        stack_ids: &stack_ids,
        stack_group: &stack_group,
        groups: ng,
        stacks,
        rules,
    });
    let GroupDescriptions {
        rep,
        functions,
        site_frames,
        stack_counts,
    } = described;
    Ok(SeriesSet {
        profiles,
        runs,
        keys,
        stacks: rep,
        functions,
        site_frames,
        stack_counts,
        matrix: values,
        object_size,
        rows: matrix.rows,
        repeats,
        sampling_period,
        alloc_at,
        checkpoint_cols,
        totals,
    })
}

/// The stacks seen by the scan and how they map to groups (see [`describe_groups`]).
struct GroupMembers<'a> {
    /// Per dense stack index, its summed value when the scan saw it.
    stack_weight: &'a [Option<f64>],
    /// Stack id per dense stack index.
    stack_ids: &'a [u64],
    /// Group per dense stack index.
    stack_group: &'a [u32],
    /// Number of groups.
    groups: usize,
    /// Frames of every stack.
    stacks: &'a IdMap<Frames>,
    /// How a stack's site frame is chosen.
    rules: &'a SiteRules,
}

/// What each group shows in a finding (see [`describe_groups`]).
struct GroupDescriptions {
    /// The group's heaviest stack (the smallest id among equals).
    rep: Vec<Frames>,
    /// Every function on the group's stacks, in first-seen order.
    functions: Vec<Vec<String>>,
    /// The distinct site frames of the group's stacks, in first-seen order.
    site_frames: Vec<Vec<FrameRef>>,
    /// Stacks seen per group.
    stack_counts: Vec<usize>,
}

/// One group's part of [`GroupDescriptions`].
struct OneGroup {
    rep: Frames,
    functions: Vec<String>,
    site_frames: Vec<FrameRef>,
    stacks: usize,
}

/// Each group's representative stack, functions, site frames and stack count, from the
/// stacks the scan saw (in stack index order within each group). Groups are described in
/// parallel: one after another, this took 54 ms of a ranking of 100M rows by stack
/// (10,000 groups of one stack, every frame's function copied and hashed), after the scan
/// and before the fits, on one core.
fn describe_groups(m: GroupMembers) -> GroupDescriptions {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); m.groups];
    for (si, w) in m.stack_weight.iter().enumerate() {
        if w.is_some() {
            members[m.stack_group[si] as usize].push(si);
        }
    }
    let described: Vec<OneGroup> = members
        .par_iter()
        .map(|stacks| {
            let mut best: (f64, u64) = (f64::MIN, 0);
            let mut functions: Vec<String> = Vec::new();
            let mut site_frames: Vec<FrameRef> = Vec::new();
            // What the group already holds: one hash lookup per frame, not a scan of the
            // group's list (a site with 100,000 stacks made that quadratic).
            let mut seen_frames: HashSet<&FrameRef> = HashSet::new();
            let mut seen_functions: HashSet<&str> = HashSet::new();
            for &si in stacks {
                let (sid, w) = (m.stack_ids[si], m.stack_weight[si].unwrap_or(0.0));
                let frames = &m.stacks[&sid];
                if let Some(f) = frames.get(m.rules.site_index(frames)) {
                    if seen_frames.insert(f) {
                        site_frames.push(f.clone());
                    }
                }
                if w > best.0 || (w == best.0 && sid < best.1) {
                    best = (w, sid);
                }
                for f in frames.iter() {
                    if seen_functions.insert(f.function.as_str()) {
                        functions.push(f.function.clone());
                    }
                }
            }
            OneGroup {
                rep: m.stacks.get(&best.1).cloned().unwrap_or_default(),
                functions,
                site_frames,
                stacks: stacks.len(),
            }
        })
        .collect();
    let mut out = GroupDescriptions {
        rep: Vec::with_capacity(m.groups),
        functions: Vec::with_capacity(m.groups),
        site_frames: Vec::with_capacity(m.groups),
        stack_counts: Vec::with_capacity(m.groups),
    };
    for g in described {
        out.rep.push(g.rep);
        out.functions.push(g.functions);
        out.site_frames.push(g.site_frames);
        out.stack_counts.push(g.stacks);
    }
    out
}

/// Which profile columns are new observations: the first of each run, and every one whose
/// values differ from the previous column of its run (a heap profile that no GC changed is
/// the same observation again).
fn distinct_observations(
    m: &crate::source::matrix::Matrix,
    runs: &[(String, std::ops::Range<usize>)],
) -> Vec<bool> {
    // In parallel: by stack this compares the whole 800 MB matrix (10,000 x 10,000).
    let mut keep = vec![true; m.profiles()];
    for (_, r) in runs.iter().filter(|(_, r)| r.len() > 1) {
        keep[r.start + 1..r.end]
            .par_iter_mut()
            .zip(r.start + 1..r.end)
            .for_each(|(k, p)| *k = m.column(p) != m.column(p - 1));
    }
    keep
}

/// One targeted read of the heap profiles at every run's [`evidence::CHECKPOINTS`]: the
/// mean bytes per live object of each group at the runs' last profiles, the allocated
/// values of each group at every checkpoint (`alloc_column`, in the metric's unit;
/// `slot * groups + group`, slot = run * k + checkpoint), and the profile position of each
/// slot.
fn heap_checkpoints(
    segs: &[crate::source::scan::Segment],
    profiles: &[ProfileRef],
    runs: &[(String, std::ops::Range<usize>)],
    stack_index: &IdMap<u32>,
    stack_group: &[u32],
    groups: usize,
    alloc_column: &'static str,
) -> Result<(Vec<f64>, Vec<f64>, Vec<usize>)> {
    let k = evidence::CHECKPOINTS.len();
    let cols: Vec<usize> = runs
        .iter()
        .flat_map(|(_, r)| (0..k).map(move |i| r.start + evidence::checkpoint_index(r.len(), i)))
        .collect();
    let slots: IdMap<usize> = cols
        .iter()
        .enumerate()
        .map(|(slot, &p)| (profiles[p].profile_id, slot))
        .collect();
    let times: Vec<i64> = cols.iter().map(|&p| profiles[p].time_ns).collect();
    let sums = crate::source::scan::sums_at(
        segs,
        &crate::source::scan::SumsAt {
            slots: &slots,
            nslots: cols.len(),
            times: &times,
            columns: &[col::INUSE_BYTES, col::INUSE_OBJECTS, alloc_column],
            stack_index,
            stack_group,
            groups,
        },
    )?;
    // Mean bytes per live object over the last profile of every run: what each group
    // holds when it has grown the most.
    let (mut bytes, mut objects) = (vec![0.0; groups], vec![0.0; groups]);
    for r in 0..runs.len() {
        let slot = r * k + k - 1;
        for g in 0..groups {
            bytes[g] += sums[0][slot * groups + g];
            objects[g] += sums[1][slot * groups + g];
        }
    }
    let object_size = bytes
        .iter()
        .zip(&objects)
        .map(|(b, o)| if *o > 0.0 { b / o } else { 0.0 })
        .collect();
    let alloc = sums.into_iter().nth(2).unwrap_or_default();
    Ok((object_size, alloc, cols))
}

/// Removes the profiles that got no sample row from the timeline; returns it with its runs.
fn drop_unseen(
    profiles: Vec<ProfileRef>,
    seen: &[bool],
) -> (Vec<ProfileRef>, Vec<(String, std::ops::Range<usize>)>) {
    let kept: Vec<ProfileRef> = profiles
        .into_iter()
        .zip(seen)
        .filter(|(_, s)| **s)
        .map(|(p, _)| p)
        .collect();
    let mut runs: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for (i, p) in kept.iter().enumerate() {
        match runs.last_mut() {
            Some((n, r)) if *n == p.run => r.end = i + 1,
            _ => runs.push((p.run.clone(), i..i + 1)),
        }
    }
    (kept, runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_profiles_no_gc_changed_are_repeats() {
        // 2 groups x 6 profiles (column-major), two runs of 3: columns 1 and 4 repeat their
        // predecessor; column 3 equals column 2 but starts a new run.
        let cols = [
            [1.0, 2.0],
            [1.0, 2.0],
            [1.0, 3.0],
            [1.0, 3.0],
            [1.0, 3.0],
            [4.0, 3.0],
        ];
        let m = crate::source::matrix::Matrix::from_columns(2, &cols.concat());
        let runs = vec![("a".to_string(), 0..3), ("b".to_string(), 3..6)];
        assert_eq!(
            distinct_observations(&m, &runs),
            vec![true, false, true, true, false, true]
        );
    }

    #[test]
    fn rows_into_transposes_any_shape_and_reuses_the_buffer() {
        for (groups, profiles) in [(5, 19), (3, 8), (1, 1), (4, 0)] {
            let data: Vec<f64> = (0..groups * profiles).map(|i| i as f64).collect();
            let set = SeriesSet {
                matrix: crate::source::matrix::Matrix::from_columns(groups, &data),
                ..SeriesSet::default()
            };
            let mut out = vec![-1.0; 7];
            for range in [0..groups, 1..groups.min(3)] {
                set.rows_into(range.clone(), &mut out);
                assert_eq!(out.len(), range.len() * profiles);
                for (k, g) in range.clone().enumerate() {
                    for p in 0..profiles {
                        assert_eq!(
                            out[k * profiles + p],
                            (p * groups + g) as f64,
                            "{groups}x{profiles} g{g} p{p}"
                        );
                    }
                }
            }
        }
    }
}
