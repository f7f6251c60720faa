//! `import`: pprof files (curl downloads, `go test -memprofile`, home-made collectors) into
//! a capture. Files are decoded in parallel; time comes from the profile itself, else from a
//! `YYYY-MM-DD_HH-MM-SS` stamp in the file name, else from the file's mtime.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::pprof::{self, DecodedProfile, ProfileKind};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use rayon::prelude::*;

use crate::ingest::{profile_id, write_profile, ProfileMeta};
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
    /// Profiles skipped because the capture already holds them (same profile id).
    pub skipped: usize,
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

/// File name endings taken as profiles when a directory is walked.
pub const PROFILE_EXTENSIONS: [&str; 6] = [".pb.gz", ".pprof.gz", ".pprof", ".prof", ".pb", ".gz"];

fn is_profile_name(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    PROFILE_EXTENSIONS.iter().any(|e| name.ends_with(e))
}

/// True unless `p` is a bare `.gz` file (not `.pb.gz` or `.pprof.gz`) whose decompressed
/// start is not a pprof protobuf, e.g. a rotated `app.log.gz` next to the profiles.
fn is_gzipped_profile_or_not_gz(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.ends_with(".gz") || name.ends_with(".pb.gz") || name.ends_with(".pprof.gz") {
        return true;
    }
    const HEAD: usize = 4096;
    let mut head = Vec::new();
    let read = std::fs::File::open(p).and_then(|f| {
        flate2::read::GzDecoder::new(f)
            .take(HEAD as u64)
            .read_to_end(&mut head)
    });
    read.is_ok() && pprof::starts_like_profile(&head, head.len() < HEAD)
}

/// Expands the given paths into profile files. Named files are always taken; directories
/// are walked for profile names, skipping `.gz` files that are not gzipped profiles.
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
                if is_gzipped_profile_or_not_gz(entry.path()) {
                    files.push(entry.into_path());
                } else {
                    log::debug!(
                        "{}: skipped, not a gzipped pprof profile",
                        entry.path().display()
                    );
                }
            }
        }
        if files.len() == before {
            let patterns: Vec<String> =
                PROFILE_EXTENSIONS.iter().map(|e| format!("*{e}")).collect();
            bail!(
                "{}: no profile files ({}) found",
                p.display(),
                patterns.join(", ")
            );
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
        [
            "%Y-%m-%d_%H-%M-%S",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H-%M-%S",
        ]
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
        let m = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| e.to_string())?;
        m.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    let target = match target {
        Some(t) => t.to_string(),
        None => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            format!("file://{}", dir.display())
        }
    };
    Ok(Loaded {
        path: path.to_path_buf(),
        target,
        time_ns,
        profile,
    })
}

/// Imports the files; bad files are reported in the summary and the rest still imported.
pub fn run(opts: &ImportOptions) -> anyhow::Result<ImportSummary> {
    let files = collect_files(&opts.paths)?;
    let bar = if opts.progress {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} decoding {pos}/{len} profiles [{bar:30}] {per_sec} eta {eta}",
        )
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
        target: opts
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        host: host_name(),
        start_time: rfc3339(now_ns()),
        options: serde_json::json!({ "target": opts.target, "files": files.len() }),
    };
    Manifest::open_or_create(&opts.out, session)?;
    // Profiles already in the capture (or earlier in this import) are not stored twice.
    let mut known = leakscope_capture::read::profile_ids(&opts.out)?;
    let mut writer = SegmentWriter::new(
        &opts.out,
        RotationPolicy {
            max_age_ns: 6 * 3600 * 1_000_000_000,
            max_bytes: 64 << 20,
        },
    );
    let mut trackers: std::collections::HashMap<String, RunTracker> = Default::default();
    for l in &loaded {
        let source = l.path.display().to_string();
        if !known.insert(profile_id(
            &l.target,
            l.profile.kind.as_str(),
            l.time_ns,
            &source,
        )) {
            summary.skipped += 1;
            continue;
        }
        if writer.should_rotate(l.time_ns) {
            summary.segments += writer.rotate()?.len();
        }
        let tracker = trackers.entry(l.target.clone()).or_default();
        let alloc_total =
            (l.profile.kind == ProfileKind::Heap).then(|| l.profile.total(|v| v.alloc_bytes));
        let (run_id, _) = tracker.observe(Observation {
            time_ns: l.time_ns,
            profile_alloc_total: alloc_total.filter(|t| *t > 0),
            ..Default::default()
        });
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

    const HEAP: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/pprof/go1.27/heap.pb.gz"
    );

    fn options(paths: &[&Path], out: &Path) -> ImportOptions {
        ImportOptions {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            out: out.to_path_buf(),
            target: Some("api".into()),
            progress: false,
        }
    }

    #[test]
    fn importing_the_same_profile_again_skips_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("capture");
        let heap = Path::new(HEAP);
        let first = run(&options(&[heap, heap], &out)).unwrap();
        assert_eq!((first.imported, first.skipped), (1, 1));
        let again = run(&options(&[heap], &out)).unwrap();
        assert_eq!((again.imported, again.skipped), (0, 1));
        assert_eq!(leakscope_capture::read::profile_ids(&out).unwrap().len(), 1);
        let rows: usize =
            leakscope_capture::read::read_table(&out, leakscope_capture::schema::Table::Profiles)
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum();
        assert_eq!(rows, 1, "duplicate profile rows");
    }

    #[test]
    fn walking_a_directory_skips_gz_files_that_are_not_profiles() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(HEAP, dir.path().join("a.pb.gz")).unwrap();
        std::fs::copy(HEAP, dir.path().join("b.gz")).unwrap();
        let log = dir.path().join("app.log.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&log).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(b"2026-11-23T10:00:00Z INFO listening on :6060\n")
            .unwrap();
        gz.finish().unwrap();
        std::fs::write(dir.path().join("notes.gz"), b"not even gzip").unwrap();
        let files = collect_files(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.pb.gz", "b.gz"]);
        // A file named explicitly is always tried (and reported when bad).
        assert_eq!(collect_files(std::slice::from_ref(&log)).unwrap(), [log]);
    }

    #[test]
    fn the_no_profiles_message_lists_every_accepted_extension() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let e = collect_files(&[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        let listed = "(*.pb.gz, *.pprof.gz, *.pprof, *.prof, *.pb, *.gz)";
        assert_eq!(
            e,
            format!("{}: no profile files {listed} found", dir.path().display())
        );
        for ext in PROFILE_EXTENSIONS {
            assert!(listed.contains(&format!("*{ext},")) || listed.contains(&format!("*{ext})")));
            assert!(is_profile_name(Path::new(&format!("x{ext}"))));
        }
    }
}
