//! `leakscope export-pprof`: the growth between two profiles of a capture as a pprof
//! profile (values at the later profile minus the earlier one, per stack), so `go tool
//! pprof` and other pprof tools can show what grew.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use leakscope_capture::pprof::proto;
use prost::Message;

use crate::error::{AnalyzeError, Result};
use crate::model::site::FrameRef;
use crate::source::catalog::Catalog;
use crate::source::load::{load_stacks, Metric};
use crate::source::profiles::{ProfileListing, ProfileRef};
use crate::source::values::stack_values;
use crate::source::window::{choose_window, window_pair};

/// The two profiles a delta is taken between.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Earlier profile.
    pub from: ProfileRef,
    /// Later profile.
    pub to: ProfileRef,
}

/// Picks the two profiles of `metric` the delta is taken between, as the report's flame
/// graphs do ([`crate::source::window`]): by default the first and last profile of the
/// latest run; with `from`/`to` (ns), the first at or after `from` and the last at or
/// before `to`.
pub async fn choose_pair(
    cat: &Catalog,
    metric: Metric,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Pair> {
    let profiles = ProfileListing::read(&cat.ctx)
        .await?
        .timeline(metric.kind(), None)
        .profiles;
    let name = cat
        .captures
        .first()
        .map(|c| c.dir.clone())
        .unwrap_or_default();
    let none = || AnalyzeError::NotEnoughData {
        path: name.clone(),
        reason: format!("no {} profiles in the chosen window", metric.kind()),
    };
    // A bound beyond every profile leaves nothing to compare, whichever way round.
    let after_all = from.is_some_and(|f| profiles.iter().all(|p| p.time_ns < f));
    let before_all = to.is_some_and(|t| profiles.iter().all(|p| p.time_ns > t));
    if after_all || before_all {
        return Err(none());
    }
    let w = choose_window(&profiles, from, to)?.ok_or_else(none)?;
    let Some((a, b)) = window_pair(&profiles, metric.kind(), &w) else {
        return Err(AnalyzeError::NotEnoughData {
            path: name,
            reason: format!(
                "need two {} profiles between --from and --to, found {}",
                metric.kind(),
                w.count(&profiles, metric.kind())
            ),
        });
    };
    if !a.same_run(b) {
        log::warn!(
            "--from and --to fall in different runs ({} and {}): the target restarted in between",
            a.run,
            b.run
        );
    }
    Ok(Pair {
        from: a.clone(),
        to: b.clone(),
    })
}

/// Builds pprof's string table, functions and locations from frames.
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(String, String), u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<(u64, i64), u64>,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder::default();
        b.string("");
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(id) = self.string_ids.get(s) {
            return *id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_ids.insert(s.to_string(), id);
        id
    }

    fn location(&mut self, f: &FrameRef) -> u64 {
        let key = (f.function.clone(), f.file.clone());
        let fid = match self.function_ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.functions.len() as u64 + 1;
                let name = self.string(if f.function.is_empty() {
                    "??"
                } else {
                    &f.function
                });
                let file = self.string(&f.file);
                self.functions.push(proto::Function {
                    id,
                    name,
                    system_name: name,
                    filename: file,
                    start_line: 0,
                });
                self.function_ids.insert(key, id);
                id
            }
        };
        if let Some(id) = self.location_ids.get(&(fid, f.line)) {
            return *id;
        }
        let id = self.locations.len() as u64 + 1;
        self.locations.push(proto::Location {
            id,
            mapping_id: 0,
            address: 0,
            line: vec![proto::Line {
                function_id: fid,
                line: f.line,
            }],
            is_folded: false,
        });
        self.location_ids.insert((fid, f.line), id);
        id
    }
}

/// Sample types written for a metric: (name, unit, samples column).
fn sample_types(metric: Metric) -> Vec<(&'static str, &'static str, &'static str)> {
    match metric {
        Metric::InuseSpace | Metric::InuseObjects => vec![
            ("inuse_objects", "count", "inuse_objects"),
            ("inuse_space", "bytes", "inuse_bytes"),
        ],
        Metric::Goroutines => vec![("goroutine", "count", "goroutines")],
        Metric::Native => vec![("native_outstanding", "bytes", "inuse_bytes")],
    }
}

/// Builds the delta profile between the pair's two profiles.
pub async fn delta_profile(cat: &Catalog, metric: Metric, w: &Pair) -> Result<proto::Profile> {
    let types = sample_types(metric);
    let columns: Vec<&str> = types.iter().map(|t| t.2).collect();
    let mut values = stack_values(cat, &[w.from.key(), w.to.key()], &columns)?.into_iter();
    let (before, after) = (
        values.next().unwrap_or_default(),
        values.next().unwrap_or_default(),
    );
    let stacks = load_stacks(cat)?;
    let mut b = Builder::new();
    let sample_type: Vec<proto::ValueType> = types
        .iter()
        .map(|(n, u, _)| proto::ValueType {
            r#type: b.string(n),
            unit: b.string(u),
        })
        .collect();
    let mut ids: Vec<u64> = before.keys().chain(after.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut samples = Vec::new();
    for id in ids {
        let zero = vec![0; columns.len()];
        let a = after.get(&id).unwrap_or(&zero);
        let z = before.get(&id).unwrap_or(&zero);
        let value: Vec<i64> = a.iter().zip(z).map(|(x, y)| x.saturating_sub(*y)).collect();
        if value.iter().all(|v| *v == 0) {
            continue;
        }
        let Some(frames) = stacks.get(&id) else {
            continue;
        };
        let location_id = frames.iter().map(|f| b.location(f)).collect();
        samples.push(proto::Sample {
            location_id,
            value,
            label: Vec::new(),
        });
    }
    let comment = b.string(&format!(
        "leakscope delta: {} at {} minus {} at {}",
        metric.kind(),
        crate::units::report_time(w.to.time_ns),
        metric.kind(),
        crate::units::report_time(w.from.time_ns)
    ));
    let period_type = proto::ValueType {
        r#type: sample_type.last().map(|t| t.r#type).unwrap_or(0),
        unit: sample_type.last().map(|t| t.unit).unwrap_or(0),
    };
    Ok(proto::Profile {
        sample_type,
        sample: samples,
        mapping: Vec::new(),
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: w.to.time_ns,
        duration_nanos: w.to.time_ns.saturating_sub(w.from.time_ns),
        period_type: Some(period_type),
        period: 1,
        comment: vec![comment],
        default_sample_type: 0,
    })
}

/// Writes `profile` gzip-compressed to `path` (atomically and durably, see
/// [`leakscope_capture::durable::replace_file`]).
pub fn write_profile(profile: &proto::Profile, path: &Path) -> std::io::Result<()> {
    leakscope_capture::durable::replace_file(path, |w| {
        let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
        gz.write_all(&profile.encode_to_vec())?;
        gz.finish().map(|_| ())
    })
    .map_err(|e| match e {
        leakscope_capture::CaptureError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    })
}
