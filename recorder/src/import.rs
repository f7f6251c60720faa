//! `import`: pprof files (curl downloads, `go test -memprofile`, home-made collectors) into
//! a capture. Files are decoded in parallel; time comes from the profile itself, else from a
//! `YYYY-MM-DD_HH-MM-SS` stamp in the file name, else from the file's mtime.

use std::path::{Path, PathBuf};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::pprof::{self, DecodedProfile, ProfileKind};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use rayon::prelude::*;

use crate::ingest::{write_profile, ProfileMeta};
use crate::runs::{Observation, RunTracker};
use crate::{host_name, now_ns, rfc3339, RECORDER_VERSION};

/// Everything `import` needs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Files and directories to import.
    pub paths: Vec<PathBuf>,
    /// Capture directory.
    pub out: PathBuf,
    /// Target name for every profile (default: each file's directory).
    pub target: Option<String>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportSummary {
    /// Profiles imported.
    pub imported: usize,
    /// Files that failed, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Runs detected.
    pub runs: u32,
    /// Segment files written.
    pub segments: usize,
}

struct Loaded {
    path: PathBuf,
    target: String,
    time_ns: i64,
    profile: DecodedProfile,
}

fn is_profile_name(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [".pb.gz", ".pprof", ".prof", ".pb", ".gz", ".pprof.gz"].iter().any(|e| name.ends_with(e))
}

/// Expands the given paths into profile files; directories are walked for profile names.
pub fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        if meta.is_file() {
            files.push(p.clone());
            continue;
        }
        let before = files.len();
        for entry in walkdir::WalkDir::new(p).sort_by_file_name() {
            let entry = entry.map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            if entry.file_type().is_file() && is_profile_name(entry.path()) {
                files.push(entry.into_path());
            }
        }
        if files.len() == before {
            bail!("{}: no profile files (*.pb.gz, *.pprof, *.prof) found", p.display());
        }
    }
    Ok(files)
}

/// Parses a `YYYY-MM-DD_HH-MM-SS` (or `YYYY-MM-DDTHH:MM:SS`) stamp in a file name as UTC.
pub fn time_from_name(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let bytes = name.as_bytes();
    (0..bytes.len().saturating_sub(18)).find_map(|i| {
        let s = name.get(i..i + 19)?;
        ["%Y-%m-%d_%H-%M-%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H-%M-%S"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
            .and_then(|t| t.and_utc().timestamp_nanos_opt())
    })
}

fn kind_hint(path: &Path) -> Option<ProfileKind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.contains("goroutineleak") {
        Some(ProfileKind::GoroutineLeak)
    } else {
        None
    }
}

fn load(path: &Path, target: Option<&str>) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let profile = pprof::parse(&bytes, kind_hint(path)).map_err(|e| e.to_string())?;
    let time_ns = if profile.time_ns > 0 {
        profile.time_ns
    } else if let Some(t) = time_from_name(path) {
        t
    } else {
        let m = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| e.to_string())?;
        m.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
    };
    let target = match target {
        Some(t) => t.to_string(),
        None => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            format!("file://{}", dir.display())
        }
    };
    Ok(Loaded { path: path.to_path_buf(), target, time_ns, profile })
}

/// Imports the files; bad files are reported in the summary and the rest still imported.
pub fn run(opts: &ImportOptions) -> anyhow::Result<ImportSummary> {
    let files = collect_files(&opts.paths)?;
    let bar = if opts.progress { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} decoding {pos}/{len} profiles [{bar:30}] {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let results: Vec<Result<Loaded, (PathBuf, String)>> = files
        .par_iter()
        .map(|p| {
            let r = load(p, opts.target.as_deref()).map_err(|e| (p.clone(), e));
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut summary = ImportSummary::default();
    let mut loaded = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(l) => loaded.push(l),
            Err(f) => summary.failed.push(f),
        }
    }
    if loaded.is_empty() {
        return Ok(summary);
    }
    loaded.sort_by(|a, b| (a.time_ns, &a.target, &a.path).cmp(&(b.time_ns, &b.target, &b.path)));

    let session = Session {
        mode: "import".into(),
        recorder_version: RECORDER_VERSION.into(),
        target: opts.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
        host: host_name(),
        start_time: rfc3339(now_ns()),
        options: serde_json::json!({ "target": opts.target, "files": files.len() }),
    };
    Manifest::open_or_create(&opts.out, session)?;
    let mut writer = SegmentWriter::new(
        &opts.out,
        RotationPolicy { max_age_ns: 6 * 3600 * 1_000_000_000, max_bytes: 64 << 20 },
    );
    let mut trackers: std::collections::HashMap<String, RunTracker> = Default::default();
    for l in &loaded {
        if writer.should_rotate(l.time_ns) {
            summary.segments += writer.rotate()?.len();
        }
        let tracker = trackers.entry(l.target.clone()).or_default();
        let alloc_total = (l.profile.kind == ProfileKind::Heap).then(|| l.profile.total(|v| v.alloc_bytes));
        let (run_id, _) = tracker.observe(Observation {
            time_ns: l.time_ns,
            profile_alloc_total: alloc_total.filter(|t| *t > 0),
            ..Default::default()
        });
        let source = l.path.display().to_string();
        let meta = ProfileMeta {
            time_ns: l.time_ns,
            target: &l.target,
            pid: None,
            run_id: &run_id,
            scrape_ms: None,
            source: &source,
        };
        write_profile(&mut writer, &l.profile, &meta);
        summary.imported += 1;
    }
    summary.segments += writer.rotate()?.len();
    summary.runs = trackers.values().map(|t| t.runs()).sum();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_from_collector_names() {
        let t = time_from_name(Path::new("/x/heap_2026-11-23_10-00-05.prof")).unwrap();
        assert_eq!(rfc3339(t), "2026-11-23T10:00:05Z");
        assert_eq!(time_from_name(Path::new("heap.pb.gz")), None);
    }
}
