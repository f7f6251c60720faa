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
