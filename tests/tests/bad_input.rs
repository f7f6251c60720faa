//! Bad targets, bad files and bad disks: every failure is one error line naming the URL or
//! file, a non-zero exit, never a panic, and never a damaged capture.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::capture::{committed_files, Capture};
use common::*;
use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::pprof::proto;
use prost::Message;

const QUICK: Duration = Duration::from_secs(20);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `record` against `url` into a fresh directory with extra flags.
fn record(url: &str, extra: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let mut args = vec![
        "record",
        "--target",
        url,
        "--out",
        s(&out),
        "--interval",
        "1s",
        "--duration",
        "3s",
    ];
    args.extend_from_slice(extra);
    let o = run(&recorder(), &args, QUICK);
    assert!(
        !out.join("manifest.json").exists(),
        "a capture was started for a target that failed"
    );
    (o, dir)
}

/// A fake target answering every request with `status`/`body` after `delay`; counts requests.
fn fake(status: u16, body: &[u8], delay: Duration) -> (FakeServer, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let (h, body) = (hits.clone(), body.to_vec());
    let server = FakeServer::start(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        (status, body.clone(), delay)
    });
    (server, hits)
}

fn heap_url(server: &FakeServer) -> String {
    format!("{}/debug/pprof/heap", server.url())
}

#[test]
fn refused_connection_names_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let (o, _d) = record(&url, &[]);
    assert_one_line_error(
        &o,
        &[&format!("{url}/debug/pprof/heap"), "connection refused"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn http_404_is_not_retried_and_names_the_url() {
    let (server, hits) = fake(404, b"404 page not found\n", Duration::ZERO);
    let (o, _d) = record(&server.url(), &["--retries", "3"]);
    assert_one_line_error(&o, &[&heap_url(&server), "404"]);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a 404 must not be retried");
}

#[test]
fn http_500_is_retried_then_named() {
    let (server, hits) = fake(500, b"boom\n", Duration::ZERO);
    let (o, _d) = record(&server.url(), &["--retries", "2"]);
    assert_one_line_error(&o, &[&heap_url(&server), "500"]);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "--retries 2 means 3 attempts"
    );
    let (server, hits) = fake(500, b"boom\n", Duration::ZERO);
    let (o, _d) = record(&server.url(), &["--retries", "0"]);
    assert_one_line_error(&o, &[&heap_url(&server), "500"]);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "--retries 0 means 1 attempt"
    );
}

#[test]
fn html_instead_of_a_profile_is_named() {
    let html = b"<!DOCTYPE html>\n<html><head><title>Login</title></head><body>Please sign in</body></html>\n";
    let (server, _) = fake(200, html, Duration::ZERO);
    let (o, _d) = record(&server.url(), &["--retries", "0"]);
    assert_one_line_error(&o, &[&heap_url(&server), "not a pprof protobuf"]);
}

#[test]
fn slow_endpoint_times_out() {
    let (server, _) = fake(
        200,
        &fixture_profile("go1.27/heap.pb.gz"),
        Duration::from_secs(5),
    );
    let started = Instant::now();
    let (o, _d) = record(&server.url(), &["--timeout", "1s", "--retries", "0"]);
    assert_one_line_error(&o, &[&heap_url(&server), "timed out"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "--timeout 1s took {:?}",
        started.elapsed()
    );
}

#[test]
fn non_protobuf_body_is_named() {
    // Field 1 with wire type 7 does not exist: not decodable as any protobuf.
    let junk: Vec<u8> = [0x0f, 0x00, 0xfe, 0xff, 0x13, 0x37]
        .iter()
        .copied()
        .cycle()
        .take(600)
        .collect();
    let (server, _) = fake(200, &junk, Duration::ZERO);
    let (o, _d) = record(&server.url(), &["--retries", "0"]);
    assert_one_line_error(&o, &[&heap_url(&server), "not a pprof protobuf"]);
    // The same bytes gzip-compressed.
    let (server, _) = fake(200, &gzip(&junk), Duration::ZERO);
    let (o, _d) = record(&server.url(), &["--retries", "0"]);
    assert_one_line_error(&o, &[&heap_url(&server), "not a pprof protobuf"]);
}

#[test]
fn wrong_profile_kind_is_named() {
    let (server, _) = fake(
        200,
        &fixture_profile("go1.27/goroutine.pb.gz"),
        Duration::ZERO,
    );
    let (o, _d) = record(&server.url(), &["--retries", "0"]);
    assert_one_line_error(&o, &[&heap_url(&server), "expected a heap profile"]);
}

// ---------------------------------------------------------------------------------------
// import

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A small valid heap profile (main.leak <- main.main) at `time_nanos`.
fn heap_profile(time_nanos: i64) -> proto::Profile {
    use proto::*;
    Profile {
        sample_type: vec![
            ValueType { r#type: 1, unit: 2 },
            ValueType { r#type: 3, unit: 4 },
        ],
        sample: vec![Sample {
            location_id: vec![1, 2],
            value: vec![3, 3072],
            label: vec![],
        }],
        location: vec![
            Location {
                id: 1,
                address: 0x1010,
                line: vec![Line {
                    function_id: 1,
                    line: 12,
                }],
                ..Default::default()
            },
            Location {
                id: 2,
                address: 0x2020,
                line: vec![Line {
                    function_id: 2,
                    line: 30,
                }],
                ..Default::default()
            },
        ],
        function: vec![
            Function {
                id: 1,
                name: 5,
                system_name: 5,
                filename: 7,
                start_line: 10,
            },
            Function {
                id: 2,
                name: 6,
                system_name: 6,
                filename: 7,
                start_line: 28,
            },
        ],
        string_table: [
            "",
            "inuse_objects",
            "count",
            "inuse_space",
            "bytes",
            "main.leak",
            "main.main",
            "/src/main.go",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        time_nanos,
        period_type: Some(ValueType { r#type: 3, unit: 4 }),
        period: 4096,
        ..Default::default()
    }
}

/// Imports `bad` (named `name`) twice: next to a good file (exactly one error line naming
/// the bad file, exit 1, the good profile imported) and alone (non-zero, named, nothing
/// written).
fn import_rejects(name: &str, bad: &[u8], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.pb.gz");
    std::fs::write(
        &good,
        gzip(&heap_profile(1_795_428_005_000_000_000).encode_to_vec()),
    )
    .unwrap();
    let bad_path = dir.path().join(name);
    std::fs::write(&bad_path, bad).unwrap();
    let mut all: Vec<&str> = vec![s(&bad_path)];
    all.extend_from_slice(needles);

    let out = dir.path().join("capture");
    let o = run(
        &recorder(),
        &["import", s(&good), s(&bad_path), "--out", s(&out)],
        QUICK,
    );
    assert_one_line_error(&o, &all);
    assert_eq!(o.status.code(), Some(1));
    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    assert_eq!(c.profiles.len(), 1, "the good file must still be imported");
    assert_eq!(c.profiles[0].source, s(&good));

    let out = dir.path().join("capture-bad-only");
    let o = run(
        &recorder(),
        &["import", s(&bad_path), "--out", s(&out)],
        QUICK,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );
    let named: Vec<&str> = stderr
        .lines()
        .filter(|l| is_error_line(l) && all.iter().all(|n| l.contains(n)))
        .collect();
    assert_eq!(named.len(), 1, "the bad file must be named once: {stderr}");
    assert!(
        !out.join("manifest.json").exists(),
        "nothing importable, yet a capture was written"
    );
}

#[test]
fn import_truncated_gzip_is_named() {
    let whole = fixture_profile("go1.27/heap.pb.gz");
    import_rejects("truncated.pb.gz", &whole[..whole.len() / 2], &["gzip"]);
}

#[test]
fn import_non_protobuf_file_is_named() {
    let junk: Vec<u8> = (0u8..=255).rev().cycle().take(4096).collect();
    import_rejects("junk.pprof", &junk, &["not a pprof protobuf"]);
    import_rejects(
        "notes.pb.gz",
        b"heap profile: 1: 2 [3: 4] @ heap/1048576\n",
        &["not a pprof protobuf"],
    );
}

#[test]
fn import_out_of_range_string_index_is_named() {
    let mut p = heap_profile(1_795_428_010_000_000_000);
    p.function[1].name = 4242;
    import_rejects(
        "bad-string.pb.gz",
        &gzip(&p.encode_to_vec()),
        &["string index 4242", "out of range"],
    );
    let mut p = heap_profile(1_795_428_010_000_000_000);
    p.sample_type[0].unit = -1;
    import_rejects(
        "bad-unit.pb.gz",
        &gzip(&p.encode_to_vec()),
        &["string index -1"],
    );
}

#[test]
fn import_missing_location_id_is_named() {
    let mut p = heap_profile(1_795_428_010_000_000_000);
    p.sample[0].location_id = vec![1, 99];
    import_rejects(
        "bad-location.pb.gz",
        &gzip(&p.encode_to_vec()),
        &["missing location id 99"],
    );
    let mut p = heap_profile(1_795_428_010_000_000_000);
    p.location[0].line[0].function_id = 77;
    import_rejects(
        "bad-function.pb.gz",
        &gzip(&p.encode_to_vec()),
        &["missing function id 77"],
    );
}

// ---------------------------------------------------------------------------------------
// bad disks

/// A directory path below a regular file: nothing can be created there, even by root.
fn under_a_file(dir: &Path) -> PathBuf {
    let file = dir.join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    file.join("capture")
}

#[test]
fn unwritable_out_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = under_a_file(dir.path());
    let (server, hits) = fake(200, &fixture_profile("go1.27/heap.pb.gz"), Duration::ZERO);
    let args = [
        "record",
        "--target",
        &server.url(),
        "--out",
        s(&out),
        "--interval",
        "1s",
        "--duration",
        "2s",
    ];
    let o = run(&recorder(), &args, QUICK);
    assert_one_line_error(&o, &[s(&out)]);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the target was scraped although --out is unusable"
    );

    let fixture = root().join("fixtures/pprof/go1.27/heap.pb.gz");
    let o = run(
        &recorder(),
        &["import", s(&fixture), "--out", s(&out)],
        QUICK,
    );
    assert_one_line_error(&o, &[s(&out)]);
}

/// A 200 KiB tmpfs fills up after a few segments: the recorder stops with one error line
/// about the failed write, and what it committed before stays readable and consistent.
#[test]
fn disk_full_mid_segment_stops_with_one_error_and_keeps_committed_data() {
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let fs = Tmpfs::mount("200k");
    if !require(
        fs.is_some(),
        "a 200 KiB tmpfs (mount needs root or CAP_SYS_ADMIN)",
    ) {
        return;
    }
    let fs = fs.unwrap();
    let svc = Service::start(&svc_bin, &[]);
    let out = fs.path().join("capture");
    let args = [
        "record",
        "--target",
        &svc.url(),
        "--out",
        s(&out),
        "--interval",
        "250ms",
        "--rotate",
        "1s",
        "--duration",
        "60s",
    ];
    let started = Instant::now();
    let o = run(&recorder(), &args, Duration::from_secs(40));
    assert_one_line_error(
        &o,
        &[
            "writing capture segment failed",
            "No space left on device",
            s(&out),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?} to give up",
        started.elapsed()
    );

    let files = committed_files(&out);
    assert!(
        files.len() >= 5,
        "not even one segment set was committed before the disk filled: {files:?}"
    );
    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    assert!(!c.profiles.is_empty() && !c.process.is_empty());
    let mut leftovers = Vec::new();
    let mut dirs = vec![out.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else if e.file_name().to_string_lossy().ends_with(".tmp") {
                leftovers.push(e.path());
            }
        }
    }
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

/// One table's directory cannot be created (a regular file is in the way) for the first
/// commit; once it is removed, the retried commit must bring every row in, and none of
/// the rows committed by the failed attempt may be lost or orphaned.
#[test]
fn a_failed_commit_is_retried_without_losing_rows() {
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let svc = Service::start(&svc_bin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let session = Session {
        mode: "record".into(),
        recorder_version: "test".into(),
        target: svc.url(),
        host: "test".into(),
        start_time: "2026-01-01T00:00:00Z".into(),
        options: serde_json::json!({}),
    };
    Manifest::open_or_create(&out, session).unwrap();
    let blocker = out.join("samples");
    std::fs::write(&blocker, b"in the way").unwrap();

    let args = [
        "record",
        "--target",
        &svc.url(),
        "--out",
        s(&out),
        "--interval",
        "1s",
        "--rotate",
        "1s",
        "--duration",
        "5s",
    ];
    let r = Running::spawn(&recorder(), &args);
    let line = r.wait_for_line(
        "writing capture segment failed (will retry)",
        Duration::from_secs(10),
    );
    assert!(
        line.as_deref().is_some_and(|l| l.contains("samples")),
        "no retryable failure: {}",
        r.stderr()
    );
    std::fs::remove_file(&blocker).unwrap();
    let o = r.wait(QUICK);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");

    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    let done = stderr
        .lines()
        .find(|l| l.contains("done: "))
        .expect("summary line");
    let written: usize = done
        .split("done: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        c.profiles.len(),
        written,
        "profiles committed vs. recorded ({done})"
    );
    let ok_heap = c
        .scrapes
        .iter()
        .filter(|s| s.kind == "heap" && s.ok)
        .count();
    assert_eq!(c.profiles_of("heap").len(), ok_heap);
}

// ---------------------------------------------------------------------------------------
// issue #11: evidence integrity

/// The decompression-amplification profile: one 1 MiB function name, one location with
/// 4,000 lines of it, one sample referencing that location 1,000 times. About 1 KiB gzipped.
fn amplifying_profile() -> Vec<u8> {
    let mut p = heap_profile(1_795_428_020_000_000_000);
    p.string_table[5] = "f".repeat(1 << 20);
    p.location[0].line = (0..4000)
        .map(|i| proto::Line {
            function_id: 1,
            line: i,
        })
        .collect();
    p.sample[0].location_id = vec![1; 1000];
    gzip(&p.encode_to_vec())
}

/// Runs the recorder with its address space limited to 1 GiB (`prlimit --as`): decoding
/// that allocates without bound dies instead of taking the machine down.
fn recorder_in_1gib(args: &[&str], timeout: Duration) -> std::process::Output {
    let bin = recorder();
    let mut all = vec!["--as=1073741824", "--", s(&bin)];
    all.extend_from_slice(args);
    run(Path::new("/usr/bin/prlimit"), &all, timeout)
}

#[test]
fn import_of_an_amplifying_profile_fails_with_one_line_and_bounded_memory() {
    let hostile = amplifying_profile();
    assert!(hostile.len() < 16 << 10, "{} bytes", hostile.len());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("amplify.pb.gz");
    std::fs::write(&bad, &hostile).unwrap();
    let out = dir.path().join("capture");
    let started = Instant::now();
    let o = recorder_in_1gib(&["import", s(&bad), "--out", s(&out)], QUICK);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Nothing could be imported: an error (exit status 2, docs/cli.md "Exit status").
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("memory allocation"),
        "{stderr}"
    );
    let named: Vec<&str> = stderr
        .lines()
        .filter(|l| is_error_line(l) && l.contains(s(&bad)))
        .collect();
    assert_eq!(named.len(), 1, "{stderr}");
    assert!(
        named[0].contains("profile too large when decoded"),
        "{}",
        named[0]
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Next to good files, only the hostile one fails.
    import_rejects(
        "amplify.pb.gz",
        &hostile,
        &["profile too large when decoded"],
    );
}

#[test]
fn record_logs_a_failed_scrape_for_an_amplifying_profile_and_keeps_recording() {
    let hostile = amplifying_profile();
    let good = fixture_profile("go1.27/goroutine.pb.gz");
    let server = FakeServer::start(move |path| {
        let body = if path.contains("goroutine") {
            good.clone()
        } else {
            hostile.clone()
        };
        (200, body, Duration::ZERO)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let args = [
        "record",
        "--target",
        &server.url(),
        "--out",
        s(&out),
        "--interval",
        "1s",
        "--duration",
        "3s",
        "--profiles",
        "heap,goroutine",
        "--wait",
    ];
    let o = recorder_in_1gib(&args, QUICK);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("profile too large when decoded"))
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "one warning per failing endpoint: {stderr}"
    );
    assert!(warned[0].contains(&heap_url(&server)), "{}", warned[0]);
    // (The fixture goroutine profile is served again and again with its own time, so
    // its profile ids repeat: no consistency check here.)
    let c = Capture::load(&out);
    let heap: Vec<_> = c.scrapes.iter().filter(|s| s.kind == "heap").collect();
    assert!(heap.len() >= 2, "{heap:?}");
    for s in &heap {
        assert!(!s.ok && s.http_status == Some(200), "{s:?}");
        let e = s.error.as_deref().unwrap_or("");
        assert!(e.contains("profile too large when decoded"), "{e}");
    }
    assert!(c.profiles_of("heap").is_empty());
    assert_eq!(
        c.profiles_of("goroutine").len(),
        heap.len(),
        "recording went on"
    );
}

#[test]
fn import_rejects_times_at_the_edge() {
    let far = |t: i64| gzip(&heap_profile(t).encode_to_vec());
    import_rejects(
        "max.pb.gz",
        &far(i64::MAX),
        &[
            "time_nanos 9223372036854775807",
            "2262-04-11",
            "more than a day after",
        ],
    );
    import_rejects("negative.pb.gz", &far(-5), &["time_nanos -5 is negative"]);
    import_rejects(
        "old.pb.gz",
        &far(631_152_000_000_000_000), // 1990-01-01
        &["1990-01-01", "before 2000"],
    );
    // No time in the profile: the name's stamp is checked the same way.
    import_rejects(
        "heap_2999-01-01_00-00-00.pb.gz",
        &far(0),
        &["the time in the file name", "more than a day after"],
    );
}

/// A target whose profiles carry `time(now)`: served by a fake server answering heap
/// requests with a fresh small profile.
fn clock_target(time: impl Fn(i64) -> i64 + Send + Sync + 'static) -> FakeServer {
    FakeServer::start(move |path| {
        if path.contains("heap") {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i64;
            let body = gzip(&heap_profile(time(now)).encode_to_vec());
            (200, body, Duration::ZERO)
        } else {
            (404, Vec::new(), Duration::ZERO)
        }
    })
}

fn record_clock_target(server: &FakeServer, out: &Path) -> String {
    let args = [
        "record",
        "--target",
        &server.url(),
        "--out",
        s(out),
        "--interval",
        "500ms",
        "--duration",
        "3s",
        "--profiles",
        "heap",
        "--rotate",
        "1m",
        "--retain",
        "7d",
    ];
    let o = run(&recorder(), &args, QUICK);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}

const DAY: i64 = 86_400 * 1_000_000_000;

#[test]
fn a_skewed_target_clock_is_kept_as_data_but_names_nothing() {
    let today = chrono::Utc::now().format("date=%Y-%m-%d").to_string();
    for (ahead, implausible) in [(-DAY, false), (DAY / 2, false), (3 * DAY, true)] {
        let server = clock_target(move |now| now + ahead);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("capture");
        let stderr = record_clock_target(&server, &out);
        let warn = if implausible {
            "is implausible: more than a day after this machine's clock"
        } else {
            "the target's clock is"
        };
        assert_eq!(
            stderr.lines().filter(|l| l.contains(warn)).count(),
            1,
            "one warning: {stderr}"
        );
        let c = Capture::load(&out);
        c.assert_consistent(&[]);
        // One set for the whole 3 s (--rotate 1m), named and dated by the recorder's
        // clock, and not pruned by --retain 7d however far off the target is.
        let stems: std::collections::BTreeSet<&String> = c.stems.values().flatten().collect();
        assert_eq!(stems.len(), 1, "{stems:?}");
        let files = committed_files(&out);
        assert!(
            files.iter().all(|f| f.to_string_lossy().contains(&today)),
            "{files:?} not in {today}"
        );
        let heap = c.profiles_of("heap");
        assert!(heap.len() >= 4, "{}", heap.len());
        for p in &heap {
            let scrape = c
                .scrapes
                .iter()
                .find(|s| s.profile_id == Some(p.profile_id))
                .unwrap();
            let offset_ns = (scrape.clock_offset_ms.unwrap() * 1e6) as i64;
            assert!(
                (offset_ns - ahead).abs() < 2_000_000_000,
                "{offset_ns} vs {ahead}"
            );
            let stored_offset = p.time_ns - scrape.time_ns;
            if implausible {
                assert!(
                    stored_offset.abs() < 2_000_000_000,
                    "the recorder's time is stored"
                );
            } else {
                assert!(
                    (stored_offset - offset_ns).abs() < 1_000,
                    "the target's time is kept: {stored_offset} vs {offset_ns}"
                );
            }
        }
    }
}

#[test]
fn a_second_writer_on_one_capture_is_refused() {
    let (server, _) = fake(200, &fixture_profile("go1.27/heap.pb.gz"), Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let args = [
        "record",
        "--target",
        &server.url(),
        "--out",
        s(&out),
        "--interval",
        "500ms",
        "--profiles",
        "heap",
    ];
    let first = Running::spawn(&recorder(), &args);
    assert!(
        first.wait_for_line("recording", QUICK).is_some(),
        "{}",
        first.stderr()
    );
    let fixture = root().join("fixtures/pprof/go1.27/heap.pb.gz");
    let o = run(
        &recorder(),
        &["import", s(&fixture), "--out", s(&out)],
        QUICK,
    );
    let lock_msg = "another leakscope-recorder (record or import) is writing this capture";
    assert_one_line_error(&o, &[s(&out), lock_msg, &format!("PID {}", first.pid())]);
    let second = run(&recorder(), &args, QUICK);
    assert_one_line_error(&second, &[s(&out), lock_msg]);
    first.signal(libc::SIGTERM);
    let o = first.wait(QUICK);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Capture::load(&out).assert_consistent(&[]);
    // Once the first writer is done, the capture is free again.
    let o = run(
        &recorder(),
        &["import", s(&fixture), "--out", s(&out)],
        QUICK,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A tiny HTTP server that keeps every request (head included) and answers with
/// `respond(path)` (a whole raw HTTP response). Serves until the test process ends.
fn logging_server(
    respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (log2, respond) = (log.clone(), Arc::new(respond));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (log, respond) = (log2.clone(), respond.clone());
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                log.lock().unwrap().push(text);
                let _ = stream.write_all(&respond(&path));
            });
        }
    });
    (addr, log)
}

fn response(status: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// `--target http://user:pa@ss@host` with `--header X-Api-Key: ...`: the heap endpoint
/// redirects to another origin, the goroutine endpoint within the target's. Neither the
/// password nor the header value reaches a log line, the capture or the other origin; the
/// same-origin redirect is followed with the headers.
#[test]
fn secrets_stay_with_the_target() {
    let (other, other_log) = logging_server(|_| response("200 OK", "", b"stolen"));
    let goroutine = fixture_profile("go1.27/goroutine.pb.gz");
    let steal = format!("http://{other}/steal?from=heap");
    let (addr, log) = logging_server(move |path| match path {
        "/debug/pprof/heap" => response("302 Found", &format!("Location: {steal}\r\n"), b""),
        "/debug/pprof/goroutine" => response("302 Found", "Location: /moved/goroutine\r\n", b""),
        "/moved/goroutine" => response("200 OK", "", &goroutine),
        _ => response("404 Not Found", "", b""),
    });
    let (password, key) = ("pa@ss-hunter2", "sekrit-api-key-42");
    let target = format!("http://user:{password}@{addr}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let args = [
        "record",
        "--target",
        &target,
        "--header",
        &format!("X-Api-Key: {key}"),
        "--out",
        s(&out),
        "--interval",
        "500ms",
        "--duration",
        "2s",
        "--profiles",
        "heap,goroutine",
        "--wait",
    ];
    let o = run(&recorder(), &args, QUICK);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // Secret fragments: the password, the part after its '@' (what the old mask showed),
    // the header value, and the base64 of user:password.
    let basic = {
        let t = leakscope_recorder_basic(&format!("user:{password}"));
        format!("Basic {t}")
    };
    let secrets = [password, "ss-hunter2", key, basic.as_str()];
    for secret in secrets {
        assert!(!stderr.contains(secret), "{secret:?} logged: {stderr}");
    }
    assert!(stderr.contains("redirect to another origin"), "{stderr}");
    assert!(stderr.contains(&format!("http://***@{addr}")), "{stderr}");

    assert!(
        other_log.lock().unwrap().is_empty(),
        "a request went to the other origin: {:?}",
        other_log.lock().unwrap()
    );
    let requests = log.lock().unwrap().clone();
    let moved: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("GET /moved/goroutine"))
        .collect();
    assert!(
        !moved.is_empty(),
        "the same-origin redirect was not followed"
    );
    for r in &moved {
        let r = r.to_ascii_lowercase();
        assert!(r.contains(&format!("x-api-key: {key}")), "{r}");
        assert!(r.contains(&basic.to_ascii_lowercase()), "{r}");
    }

    let c = Capture::load(&out);
    assert!(!c.profiles_of("goroutine").is_empty());
    let mut stored: Vec<String> = vec![std::fs::read_to_string(out.join("manifest.json")).unwrap()];
    stored.extend(c.profiles.iter().map(|p| p.target.clone()));
    stored.extend(c.process.iter().map(|p| p.target.clone()));
    stored.extend(c.scrapes.iter().map(|s| s.target.clone()));
    stored.extend(c.scrapes.iter().filter_map(|s| s.error.clone()));
    stored.extend(c.scrapes.iter().map(|s| s.endpoint.clone()));
    for text in &stored {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} stored: {text}");
        }
    }
    let heap: Vec<_> = c.scrapes.iter().filter(|s| s.kind == "heap").collect();
    assert!(!heap.is_empty());
    for s in heap {
        assert!(!s.ok, "{s:?}");
        let e = s.error.as_deref().unwrap_or("");
        assert!(
            e.contains(&format!("redirect to another origin (http://{other})")),
            "{e}"
        );
        assert!(
            !e.contains("steal"),
            "the other origin's path is shown: {e}"
        );
    }
    for f in committed_files(&out) {
        let bytes = std::fs::read(&f).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} in {}",
                f.display()
            );
        }
    }
}

/// base64 of `s` (standard alphabet, padded), as in an `Authorization: Basic` header.
fn leakscope_recorder_basic(s: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ABC[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
