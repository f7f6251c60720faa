//! End-to-end: `leakscope-recorder import` of the real profiles under fixtures/pprof.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::capture::{identity, Capture};
use common::*;
use leakscope_capture::manifest::Manifest;
use leakscope_capture::pprof::{self, ProfileKind};
use leakscope_capture::stack::Frame;
use prost::Message;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn import(paths: &[&Path], out: &Path) -> std::process::Output {
    let mut args = vec!["import"];
    args.extend(paths.iter().map(|p| s(p)));
    args.extend(["--out", s(out)]);
    run(&recorder(), &args, Duration::from_secs(30))
}

/// The profile files under fixtures/pprof, relative path -> absolute path.
fn fixture_files() -> Vec<(String, PathBuf)> {
    let base = root().join("fixtures/pprof");
    let mut out = Vec::new();
    for dir in ["go1.19", "go1.27", "go-test", "collector"] {
        for e in std::fs::read_dir(base.join(dir)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".pb.gz") || name.ends_with(".prof") {
                out.push((format!("{dir}/{name}"), e.path()));
            }
        }
    }
    out.sort();
    out
}

fn hint(name: &str) -> Option<ProfileKind> {
    name.contains("goroutineleak")
        .then_some(ProfileKind::GoroutineLeak)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn imports_every_real_fixture_profile() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let fixtures = root().join("fixtures/pprof");
    let o = import(&[&fixtures], &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !stderr.contains("error:"), "{stderr}");
    let m = Manifest::read(&out).unwrap();
    assert_eq!(
        (m.sessions.len(), m.sessions[0].mode.as_str()),
        (1, "import")
    );

    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    let files = fixture_files();
    assert_eq!(files.len(), 9, "fixture set changed: {files:?}");
    assert_eq!(c.profiles.len(), files.len());
    let count = |k: &str| c.profiles_of(k).len();
    assert_eq!(
        (count("heap"), count("goroutine"), count("goroutineleak")),
        (6, 2, 1)
    );

    for (rel, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        let raw = pprof::decode(&bytes).unwrap();
        let decoded = pprof::parse(&bytes, hint(rel)).unwrap();
        let p = c
            .profiles
            .iter()
            .find(|p| p.source == s(path))
            .unwrap_or_else(|| panic!("{rel} not imported"));
        // Time comes from the profile itself (every real fixture has one).
        assert!(raw.time_nanos > 0, "{rel} has no time_nanos");
        assert_eq!(p.time_ns, raw.time_nanos, "{rel}: time");
        assert_eq!(p.kind, decoded.kind.as_str(), "{rel}: kind");
        assert_eq!(
            p.target,
            format!("file://{}", path.parent().unwrap().display()),
            "{rel}: target"
        );
        assert_eq!(p.pid, None);
        assert_eq!(
            (p.period, &p.sample_types),
            (raw.period, &decoded.sample_types),
            "{rel}"
        );
        assert_eq!(
            p.sample_count as usize,
            decoded.samples.len(),
            "{rel}: sample count"
        );
        // Values survive: per-profile totals equal the decoder's.
        let mine: Vec<_> = c
            .samples
            .iter()
            .filter(|x| x.profile_id == p.profile_id)
            .collect();
        let sum = |f: &dyn Fn(&common::capture::Sample) -> Option<i64>| {
            mine.iter().filter_map(|x| f(x)).sum::<i64>()
        };
        assert_eq!(
            sum(&|x| x.inuse_bytes),
            decoded.total(|v| v.inuse_bytes),
            "{rel}: inuse_bytes"
        );
        assert_eq!(
            sum(&|x| x.alloc_bytes),
            decoded.total(|v| v.alloc_bytes),
            "{rel}: alloc_bytes"
        );
        assert_eq!(
            sum(&|x| x.goroutines),
            decoded.total(|v| v.goroutines),
            "{rel}: goroutines"
        );
        // Stack ids are the decoder's and every stack's frames are the decoder's.
        let ids: HashSet<u64> = mine.iter().map(|x| x.stack_id).collect();
        let expected: HashSet<u64> = decoded.samples.iter().map(|x| x.stack_id).collect();
        assert_eq!(ids, expected, "{rel}: stack ids");
        for id in ids {
            assert_eq!(
                identity(&c.stacks[&id]),
                identity(&decoded.frames(id)),
                "{rel}: frames of stack {id}"
            );
        }
    }

    // The same frames get the same id in every file: no two ids share a frame list, and
    // the collector series (one process) shares the main.loadRecord stacks across files.
    let key = |f: &[Frame]| format!("{:?}", identity(f));
    let mut by_frames: HashMap<String, u64> = HashMap::new();
    for (id, frames) in &c.stacks {
        if let Some(other) = by_frames.insert(key(frames), *id) {
            panic!("stacks {id} and {other} have identical frames");
        }
    }
    // Across Go versions and builds too: the blocked workers' ~512 B buffers are allocated
    // at the same source line in the Go 1.19 and the Go 1.27 build.
    let heap_ids = |dir: &str| -> HashSet<u64> {
        let p = c
            .profiles
            .iter()
            .find(|p| p.source.ends_with(&format!("/{dir}/heap.pb.gz")))
            .unwrap();
        c.samples
            .iter()
            .filter(|x| x.profile_id == p.profile_id)
            .map(|x| x.stack_id)
            .collect()
    };
    let across: Vec<u64> = (&heap_ids("go1.19") & &heap_ids("go1.27"))
        .into_iter()
        .collect();
    assert!(
        across
            .iter()
            .any(|id| c.stack_has(*id, "main.blockedWorker")),
        "no main.blockedWorker stack shared by the Go 1.19 and Go 1.27 heap profiles: {:?}",
        across
            .iter()
            .map(|id| identity(&c.stacks[id]))
            .collect::<Vec<_>>()
    );
    let collector: Vec<_> = c
        .profiles
        .iter()
        .filter(|p| p.source.contains("/collector/"))
        .collect();
    assert_eq!(collector.len(), 3);
    let load_record = |pid: u64| -> HashSet<u64> {
        c.samples
            .iter()
            .filter(|x| x.profile_id == pid && c.stack_has(x.stack_id, "main.loadRecord"))
            .map(|x| x.stack_id)
            .collect()
    };
    let shared = collector
        .iter()
        .map(|p| load_record(p.profile_id))
        .reduce(|a, b| &a & &b)
        .unwrap();
    assert!(
        !shared.is_empty(),
        "main.loadRecord stacks differ between the collector files"
    );
    let runs: HashSet<&str> = collector.iter().map(|p| p.run_id.as_str()).collect();
    assert_eq!(
        runs.len(),
        1,
        "the collector series is one process: {runs:?}"
    );
    // main.loadRecord (the subslice leak) grows over the collector series.
    let series = c.series("heap", "main.loadRecord", |x| x.inuse_bytes);
    let collector_series: Vec<i64> = c
        .profiles_of("heap")
        .iter()
        .zip(&series)
        .filter(|(p, _)| p.source.contains("/collector/"))
        .map(|(_, v)| v.1)
        .collect();
    assert!(
        collector_series.windows(2).all(|w| w[0] < w[1]),
        "{collector_series:?}"
    );

    // A separate import of one file gives the same stack ids as the directory import.
    let one = root().join("fixtures/pprof/go1.27/heap.pb.gz");
    let out2 = dir.path().join("capture-one");
    let o = import(&[&one], &out2);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c2 = Capture::load(&out2);
    let ids2: HashSet<u64> = c2.samples.iter().map(|x| x.stack_id).collect();
    let pid = c
        .profiles
        .iter()
        .find(|p| p.source == s(&one))
        .unwrap()
        .profile_id;
    let ids1: HashSet<u64> = c
        .samples
        .iter()
        .filter(|x| x.profile_id == pid)
        .map(|x| x.stack_id)
        .collect();
    assert_eq!(ids1, ids2);
    assert_eq!(
        c2.profiles[0].profile_id, pid,
        "profile id depends on what the profile is, not on the import"
    );
}

/// Profiles without `time_nanos` take the time from a `YYYY-MM-DD_HH-MM-SS` stamp in the
/// file name, else from the file's mtime.
#[test]
fn file_name_stamp_then_mtime_when_the_profile_has_no_time() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("profiles");
    std::fs::create_dir(&src).unwrap();
    let mut raw =
        pprof::decode(&fixture_profile("collector/heap_2026-11-23_10-00-05.prof")).unwrap();
    raw.time_nanos = 0;
    let bytes = gzip(&raw.encode_to_vec());
    let stamped = src.join("heap_2026-11-23_10-00-05.prof");
    std::fs::write(&stamped, &bytes).unwrap();
    let plain = src.join("heap.pb.gz");
    std::fs::write(&plain, &bytes).unwrap();
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    std::fs::File::options()
        .write(true)
        .open(&plain)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let out = dir.path().join("capture");
    let o = import(&[&src], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    let time = |p: &Path| {
        c.profiles
            .iter()
            .find(|x| x.source == s(p))
            .unwrap()
            .time_ns
    };
    assert_eq!(
        time(&stamped),
        1_795_428_005 * 1_000_000_000,
        "2026-11-23T10:00:05Z from the name"
    );
    assert_eq!(time(&plain), 1_790_000_000 * 1_000_000_000, "mtime");
    // Same profile bytes, same stacks.
    let ids = |p: &Path| -> HashSet<u64> {
        let id = c
            .profiles
            .iter()
            .find(|x| x.source == s(p))
            .unwrap()
            .profile_id;
        c.samples
            .iter()
            .filter(|x| x.profile_id == id)
            .map(|x| x.stack_id)
            .collect()
    };
    assert_eq!(ids(&stamped), ids(&plain));
}

/// A directory with one corrupt file: that file is named, the exit is non-zero, and every
/// other file is still imported.
#[test]
fn directory_with_one_corrupt_file_imports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("profiles");
    for (rel, path) in fixture_files() {
        let to = src.join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(path, to).unwrap();
    }
    let whole = fixture_profile("go1.27/heap.pb.gz");
    let corrupt = src.join("go1.27/heap-cut.pb.gz");
    std::fs::write(&corrupt, &whole[..whole.len() * 2 / 3]).unwrap();
    std::fs::write(
        src.join("go1.27/README.txt"),
        b"not a profile, not picked up",
    )
    .unwrap();

    let out = dir.path().join("capture");
    let o = import(&[&src], &out);
    assert_one_line_error(&o, &[s(&corrupt), "gzip"]);
    assert_eq!(o.status.code(), Some(1));
    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    assert_eq!(c.profiles.len(), 9, "every good file is imported");
    assert!(c.profiles.iter().all(|p| p.source != s(&corrupt)));
}

/// 600 files are decoded in batches and committed every 256 profiles: three segment sets,
/// every profile imported once, in time order across the sets (the sets hold consecutive
/// time ranges), and peak memory does not grow with the file count (measured in
/// docs/performance.md).
#[test]
fn many_files_are_streamed_into_sets_of_256_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let fixture = root().join("fixtures/pprof/go1.27/heap.pb.gz");
    let mut p = pprof::decode(&std::fs::read(&fixture).unwrap()).unwrap();
    let t0 = p.time_nanos;
    // Written in reverse name order of time, so name order is not time order.
    for i in 0..600i64 {
        p.time_nanos = t0 + (600 - i) * 1_000_000_000;
        std::fs::write(
            files.join(format!("heap_{i:04}.pb.gz")),
            gzip(&p.encode_to_vec()),
        )
        .unwrap();
    }
    let out = dir.path().join("capture");
    let o = import(&[&files], &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("imported 600 profiles"), "{stderr}");
    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    assert_eq!(c.profiles.len(), 600);
    let per_set: Vec<usize> = c.stems["profiles"]
        .iter()
        .map(|stem| c.profiles.iter().filter(|p| &p.stem == stem).count())
        .collect();
    assert_eq!(per_set, [256, 256, 88]);
    let times: Vec<i64> = c.profiles.iter().map(|p| p.time_ns).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "not in time order");
}

#[test]
fn labels_go_into_the_manifest_and_a_later_session_updates_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let heap = root().join("fixtures/pprof/go1.27/heap.pb.gz");
    let o = run(
        &recorder(),
        &[
            "import",
            s(&heap),
            "--out",
            s(&out),
            "--label",
            "pod=api-7",
            "--label",
            "region=eu",
        ],
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = Manifest::read(&out).unwrap();
    assert_eq!(m.labels.get("pod").map(String::as_str), Some("api-7"));
    assert_eq!(m.labels.get("region").map(String::as_str), Some("eu"));
    let o = run(
        &recorder(),
        &["import", s(&heap), "--out", s(&out), "--label", "pod=api-8"],
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = Manifest::read(&out).unwrap();
    assert_eq!(m.labels.get("pod").map(String::as_str), Some("api-8"));
    assert_eq!(m.labels.get("region").map(String::as_str), Some("eu"));
    // Without --label, a manifest has no `labels` key at all.
    let plain = dir.path().join("plain");
    assert!(import(&[&heap], &plain).status.success());
    let text = std::fs::read_to_string(plain.join("manifest.json")).unwrap();
    assert!(!text.contains("\"labels\""), "{text}");
    // A bad key is a usage error (exit 2).
    let o = run(
        &recorder(),
        &[
            "import",
            s(&heap),
            "--out",
            s(&dir.path().join("bad")),
            "--label",
            "a b=c",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--label"));
}
