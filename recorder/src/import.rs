//! `import`: pprof files (curl downloads, `go test -memprofile`, home-made collectors) into
//! a capture. Time comes from the profile itself, else from a `YYYY-MM-DD_HH-MM-SS` stamp in
//! the file name, else from the file's mtime; an implausible time rejects the file.
//!
//! Memory stays bounded whatever the number of files: a first pass reads only each file's
//! time (in parallel), then the files are decoded in time order, [`DECODE_BATCH`] (and at
//! most [`DECODE_BATCH_BYTES`] decompressed) at a time, in parallel, and written into
//! segment sets committed every [`SET_PROFILES`] profiles.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use leakscope_capture::lock::CaptureLock;
use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::pprof::{self, DecodedProfile, ProfileKind};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use rayon::prelude::*;

use crate::ingest::{profile_id, write_profile, ProfileMeta};
use crate::runs::{Observation, RunTracker};
use crate::{host_name, implausible_time, now_ns, rfc3339, RECORDER_VERSION};

/// Profiles decoded at once (in parallel) in time order.
pub const DECODE_BATCH: usize = 32;

/// Decompressed bytes of the profiles decoded at once: a batch ends before it would pass
/// this (a single larger profile is a batch of its own).
pub const DECODE_BATCH_BYTES: usize = 64 << 20;

/// Profiles per segment set: the set is committed once it holds this many.
pub const SET_PROFILES: usize = 256;

/// Largest profile file read.
pub const MAX_FILE_BYTES: u64 = crate::fetch::MAX_BODY_BYTES;

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
    /// `--label KEY=VALUE`: labels added to the manifest.
    pub labels: std::collections::BTreeMap<String, String>,
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

/// A file after the first pass: where it is, its target, and its time.
struct Head {
    path: PathBuf,
    target: String,
    time_ns: i64,
    /// Decompressed size of the profile.
    raw_len: usize,
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
        .map(|t| {
            // Past 2262 (or before 1677) saturates, so the check rejects it by name.
            let t = t.and_utc();
            t.timestamp_nanos_opt().unwrap_or(if t.timestamp() > 0 {
                i64::MAX
            } else {
                i64::MIN
            })
        })
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

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "file is {len} bytes, larger than the {} MiB accepted",
            MAX_FILE_BYTES >> 20
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

fn decode_file(path: &Path) -> Result<DecodedProfile, String> {
    let bytes = read_file(path)?;
    pprof::parse(&bytes, kind_hint(path)).map_err(|e| e.to_string())
}

/// First pass: the file's time (from the profile, its name, or its mtime; checked against
/// `now_ns`) and target, without decoding the profile.
fn head(path: &Path, target: Option<&str>, now_ns: i64) -> Result<Head, String> {
    let bytes = read_file(path)?;
    let (own, raw_len) = match pprof::peek_time(&bytes).map_err(|e| e.to_string())? {
        Some(t) => t,
        // Not a protobuf: the full decoder says why.
        None => {
            return Err(decode_file(path)
                .err()
                .unwrap_or_else(|| "not a pprof protobuf".into()))
        }
    };
    let time_ns = if own < 0 {
        return Err(format!(
            "time_nanos {own} is negative: not a time (fix the profile or its collector)"
        ));
    } else if own > 0 {
        if let Some(why) = implausible_time("time_nanos", own, now_ns) {
            return Err(why);
        }
        own
    } else if let Some(t) = time_from_name(path) {
        if let Some(why) = implausible_time("the time in the file name", t, now_ns) {
            return Err(why);
        }
        t
    } else {
        let m = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| e.to_string())?;
        let t = m
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        if let Some(why) = implausible_time(
            "the profile has no time, and the file's modification time",
            t,
            now_ns,
        ) {
            return Err(format!(
                "{why} (put a YYYY-MM-DD_HH-MM-SS stamp in the file name)"
            ));
        }
        t
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
    Ok(Head {
        path: path.to_path_buf(),
        target,
        time_ns,
        raw_len,
    })
}

/// The capture being written: opened (lock taken, session appended) at the first profile
/// that decodes, so an import of nothing but bad files writes nothing.
struct Open {
    _lock: CaptureLock,
    writer: SegmentWriter,
    known: std::collections::HashSet<u64>,
}

fn open(opts: &ImportOptions, files: usize) -> anyhow::Result<Open> {
    let lock = CaptureLock::acquire(&opts.out)?;
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
        options: serde_json::json!({ "target": opts.target, "files": files }),
    };
    Manifest::open_locked(&lock, session)?.add_labels(&opts.out, &opts.labels)?;
    // Profiles already in the capture (or earlier in this import) are not stored twice.
    let known = leakscope_capture::read::profile_ids(&opts.out)?;
    let writer = SegmentWriter::new(
        &opts.out,
        RotationPolicy {
            max_age_ns: i64::MAX,
            max_bytes: 64 << 20,
        },
    );
    Ok(Open {
        _lock: lock,
        writer,
        known,
    })
}

/// Splits `order` into consecutive batches of at most [`DECODE_BATCH`] profiles and
/// [`DECODE_BATCH_BYTES`] decompressed bytes (at least one profile each).
fn batches(order: &[Head]) -> Vec<&[Head]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, h) in order.iter().enumerate() {
        let full =
            i - start == DECODE_BATCH || bytes.saturating_add(h.raw_len) > DECODE_BATCH_BYTES;
        if i > start && full {
            out.push(&order[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(h.raw_len);
    }
    if start < order.len() {
        out.push(&order[start..]);
    }
    out
}

/// Imports the files; bad files are reported in the summary and the rest still imported.
pub fn run(opts: &ImportOptions) -> anyhow::Result<ImportSummary> {
    let files = collect_files(&opts.paths)?;
    let bar = if opts.progress {
        ProgressBar::new(files.len() as u64 * 2)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} reading {pos}/{len} (each file twice) [{bar:30}] {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let now = now_ns();
    let heads: Vec<Result<Head, (PathBuf, String)>> = files
        .par_iter()
        .map(|p| {
            let r = head(p, opts.target.as_deref(), now).map_err(|e| (p.clone(), e));
            bar.inc(1);
            r
        })
        .collect();
    let mut summary = ImportSummary::default();
    let mut order = Vec::with_capacity(heads.len());
    for r in heads {
        match r {
            Ok(h) => order.push(h),
            Err(f) => summary.failed.push(f),
        }
    }
    order.sort_by(|a, b| (a.time_ns, &a.target, &a.path).cmp(&(b.time_ns, &b.target, &b.path)));

    let mut out: Option<Open> = None;
    let mut trackers: std::collections::HashMap<String, RunTracker> = Default::default();
    for batch in batches(&order) {
        let decoded: Vec<Result<DecodedProfile, String>> = batch
            .par_iter()
            .map(|h| {
                let r = decode_file(&h.path);
                bar.inc(1);
                r
            })
            .collect();
        for (h, d) in batch.iter().zip(decoded) {
            let profile = match d {
                Ok(p) => p,
                Err(e) => {
                    summary.failed.push((h.path.clone(), e));
                    continue;
                }
            };
            let o = match &mut out {
                Some(o) => o,
                None => out.insert(open(opts, files.len())?),
            };
            let source = h.path.display().to_string();
            if !o.known.insert(profile_id(
                &h.target,
                profile.kind.as_str(),
                h.time_ns,
                &source,
            )) {
                summary.skipped += 1;
                continue;
            }
            if o.writer.buffered_profiles() >= SET_PROFILES || o.writer.should_rotate_now() {
                summary.segments += o.writer.rotate()?.len();
            }
            let tracker = trackers.entry(h.target.clone()).or_default();
            let alloc_total =
                (profile.kind == ProfileKind::Heap).then(|| profile.total(|v| v.alloc_bytes));
            let (run_id, _) = tracker.observe(Observation {
                time_ns: h.time_ns,
                profile_alloc_total: alloc_total.filter(|t| *t > 0),
                ..Default::default()
            });
            let meta = ProfileMeta {
                time_ns: h.time_ns,
                target: &h.target,
                pid: None,
                run_id: &run_id,
                scrape_ms: None,
                source: &source,
            };
            write_profile(&mut o.writer, &profile, &meta);
            summary.imported += 1;
        }
    }
    bar.finish_and_clear();
    if let Some(o) = &mut out {
        summary.segments += o.writer.rotate()?.len();
    }
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
        assert_eq!(
            time_from_name(Path::new("heap_2999-01-01_00-00-00.prof")),
            Some(i64::MAX)
        );
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
            labels: Default::default(),
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
    fn decode_batches_are_bounded_by_count_and_bytes() {
        let head = |raw_len| Head {
            path: PathBuf::new(),
            target: String::new(),
            time_ns: 0,
            raw_len,
        };
        let small: Vec<Head> = (0..70).map(|_| head(1000)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [32, 32, 6]);
        let big = [head(40 << 20), head(40 << 20), head(200 << 20), head(1)];
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 1, 1, 1]);
        assert!(batches(&[]).is_empty());
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
