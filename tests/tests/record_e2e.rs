//! End-to-end: `leakscope-recorder record` against the real leaky Go service, read back
//! through `leakscope_capture`'s readers.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::capture::{committed_files, Capture};
use common::*;
use leakscope_capture::manifest::Manifest;
use leakscope_capture::read::{read_segment, read_table};
use leakscope_capture::schema::Table;

const SECOND: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// `(function, metric, approx_per_20s)` of a ground-truth pattern.
fn ground_truth(name: &str) -> (String, String, f64) {
    let text = std::fs::read_to_string(root().join("fixtures/go/leaky-service/ground-truth.json"))
        .unwrap();
    let gt: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = gt["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .expect(name);
    (
        p["function"].as_str().unwrap().to_string(),
        p["metric"].as_str().unwrap().to_string(),
        p["approx_per_20s"].as_f64().unwrap(),
    )
}

/// Mean time and mean value of the first and of the last third of a series.
fn thirds(series: &[(i64, i64)]) -> ((f64, f64), (f64, f64)) {
    let n = series.len() / 3;
    assert!(n >= 2, "series too short: {series:?}");
    let mean = |s: &[(i64, i64)]| {
        let k = s.len() as f64;
        (
            s.iter().map(|p| p.0 as f64).sum::<f64>() / k,
            s.iter().map(|p| p.1 as f64).sum::<f64>() / k,
        )
    };
    (mean(&series[..n]), mean(&series[series.len() - n..]))
}

fn strictly_increasing(times: &[i64]) -> bool {
    times.windows(2).all(|w| w[0] < w[1])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn records_20s_of_the_leaky_service_and_the_leaks_show() {
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let rec = recorder();
    let svc = Service::start(&svc_bin, &["-leaks", "all", "-traps", "all"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let (t0, started) = (now_ns(), Instant::now());
    let args = [
        "record",
        "--target",
        &svc.url(),
        "--out",
        s(&out),
        "--interval",
        "1s",
        "--duration",
        "20s",
    ];
    let o = run(&rec, &args, Duration::from_secs(40));
    let t1 = now_ns();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "record failed: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "a 20 s recording took {:?}",
        started.elapsed()
    );
    // Nothing went wrong (an old Go answers 404 for goroutineleak, reported once).
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("error:") || l.contains("ERROR") || l.contains("WARN"))
        .filter(|l| !l.contains("/debug/pprof/goroutineleak: HTTP 404"))
        .collect();
    assert!(problems.is_empty(), "{stderr}");

    let m = Manifest::read(&out).unwrap();
    assert_eq!(m.sessions.len(), 1);
    assert_eq!(m.sessions[0].mode, "record");
    assert_eq!(m.target, svc.url());
    assert_eq!(m.options["interval"], "1s");

    let c = Capture::load(&out);
    c.assert_consistent(&[]);

    // About one profile of each kind per second, in time order, from this process.
    for kind in ["heap", "goroutine"] {
        let ps = c.profiles_of(kind);
        assert!(
            ps.len() >= 15 && ps.len() <= 21,
            "{} {kind} profiles",
            ps.len()
        );
        let times: Vec<i64> = ps.iter().map(|p| p.time_ns).collect();
        assert!(
            strictly_increasing(&times),
            "{kind} profile times not increasing: {times:?}"
        );
        assert!(
            times[0] >= t0 - SECOND && *times.last().unwrap() <= t1 + SECOND,
            "{kind} times outside the run"
        );
        assert!(
            times.last().unwrap() - times[0] >= 14 * SECOND,
            "{kind} profiles span too little"
        );
        for p in &ps {
            assert_eq!(p.pid, Some(svc.pid()), "{kind} profile pid");
            assert!(
                p.sample_count > 0 && p.source.starts_with("/debug/pprof/"),
                "{p:?}"
            );
        }
    }
    let runs: std::collections::HashSet<&str> =
        c.profiles.iter().map(|p| p.run_id.as_str()).collect();
    assert_eq!(runs.len(), 1, "one process, one run: {runs:?}");

    // Heap leaks: in-use bytes of the leaking functions grow at about the documented rate.
    for name in ["subslice", "map"] {
        let (function, metric, per_20s) = ground_truth(name);
        assert_eq!(metric, "inuse_space");
        let series = c.series("heap", &function, |s| s.inuse_bytes);
        let ((ta, va), (tb, vb)) = thirds(&series);
        let expected = per_20s * (tb - ta) / (20.0 * SECOND as f64);
        eprintln!("{function}: in-use {va:.0} -> {vb:.0} B (expected about +{expected:.0})");
        assert!(
            vb - va >= 0.3 * expected && vb > va,
            "{function}: in-use {va:.0} -> {vb:.0} B, expected about +{expected:.0} B; series {series:?}"
        );
    }
    // Goroutine leaks: counts never drop and grow at about the documented rate.
    for name in ["goroutine", "ticker"] {
        let (function, metric, per_20s) = ground_truth(name);
        assert_eq!(metric, "goroutines");
        let series = c.series("goroutine", &function, |s| s.goroutines);
        let counts: Vec<i64> = series.iter().map(|p| p.1).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "{function} goroutines dropped: {counts:?}"
        );
        let (first, last) = (series[0], *series.last().unwrap());
        let expected = per_20s * (last.0 - first.0) as f64 / (20.0 * SECOND as f64);
        eprintln!(
            "{function}: {} -> {} goroutines (expected about +{expected:.0})",
            first.1, last.1
        );
        assert!(
            (last.1 - first.1) as f64 >= 0.6 * expected,
            "{function}: {} -> {} goroutines, expected about +{expected:.0}",
            first.1,
            last.1
        );
    }
    // The worker-pool trap is constant: 8 parked goroutines (the first scrape may race startup).
    let pool = c.series("goroutine", "main.poolWorker", |s| s.goroutines);
    assert!(pool[1..].iter().all(|p| p.1 == 8), "pool workers: {pool:?}");

    // goroutineleak (Go 1.26+ serves it): only the blocked workers, growing.
    let leak = c.profiles_of("goroutineleak");
    if !leak.is_empty() {
        assert!(leak.len() >= 15, "{} goroutineleak profiles", leak.len());
        for smp in c.samples.iter().filter(|s| s.kind == "goroutineleak") {
            assert!(
                c.stack_has(smp.stack_id, "main.blockedWorker"),
                "goroutineleak reports {:?}",
                c.stacks[&smp.stack_id]
            );
        }
        let series = c.series("goroutineleak", "main.blockedWorker", |s| s.goroutines);
        assert!(
            series.last().unwrap().1 > series[0].1,
            "goroutineleak counts: {series:?}"
        );
    }

    // Process memory every interval, from /proc and expvar.
    assert!(c.process.len() >= 15, "{} process rows", c.process.len());
    let times: Vec<i64> = c.process.iter().map(|p| p.time_ns).collect();
    assert!(strictly_increasing(&times), "process times not increasing");
    for p in &c.process {
        assert_eq!(p.pid, Some(svc.pid()));
        assert!(p.metrics["rss_bytes"].unwrap_or(0) > 1 << 20, "rss: {p:?}");
        assert!(
            p.metrics["go_heap_alloc_bytes"].unwrap_or(0) > 0,
            "heap alloc: {p:?}"
        );
        assert_eq!(p.memstats_source.as_deref(), Some("vars"));
        assert_eq!(p.run_id.as_deref(), runs.iter().next().copied());
    }
    let total: Vec<i64> = c
        .process
        .iter()
        .map(|p| p.metrics["go_total_alloc_bytes"].unwrap())
        .collect();
    assert!(
        strictly_increasing(&total),
        "TotalAlloc must grow: {total:?}"
    );

    // Every scrape attempt succeeded (an old Go without goroutineleak answers 404 once).
    let failed: Vec<_> = c.scrapes.iter().filter(|s| !s.ok).collect();
    if leak.is_empty() {
        assert!(
            failed.len() == 1
                && failed[0].kind == "goroutineleak"
                && failed[0].http_status == Some(404),
            "failed scrapes: {failed:?}"
        );
    } else {
        assert!(failed.is_empty(), "failed scrapes: {failed:?}");
    }
    for kind in ["proc", "memstats", "heap", "goroutine"] {
        let n = c.scrapes.iter().filter(|s| s.kind == kind && s.ok).count();
        assert!(n >= 15, "{n} ok {kind} scrapes");
    }
    for kind in ["heap", "goroutine"] {
        let with_id = c
            .scrapes
            .iter()
            .filter(|s| s.kind == kind && s.profile_id.is_some())
            .count();
        assert_eq!(
            with_id,
            c.profiles_of(kind).len(),
            "{kind} scrapes naming their profile"
        );
    }
}

/// Record with `--rotate 2s`, then SIGKILL the recorder mid-run.
#[test]
fn kill_9_leaves_only_readable_complete_segments() {
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let rec = recorder();
    let svc = Service::start(&svc_bin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let args = [
        "record",
        "--target",
        &svc.url(),
        "--out",
        s(&out),
        "--interval",
        "500ms",
        "--rotate",
        "2s",
    ];
    let r = Running::spawn(&rec, &args);
    std::thread::sleep(Duration::from_millis(7000));
    let kill_ns = now_ns();
    let status = r.kill9();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the recorder exited before the kill: {status:?}"
    );

    // Every file a reader would pick up is a complete Parquet file.
    let files = committed_files(&out);
    assert!(
        !files.is_empty(),
        "nothing committed in 7 s with --rotate 2s"
    );
    for f in &files {
        read_segment(f).unwrap_or_else(|e| {
            panic!(
                "committed file {} is unreadable after kill -9: {e}",
                f.display()
            )
        });
    }
    let c = Capture::load(&out);
    let mut stems: Vec<&String> = c.stems.values().flatten().collect();
    stems.sort();
    stems.dedup();
    let in_flight = stems.last().unwrap().as_str();
    // Only the set being committed at the kill may lack tables; the others are complete.
    assert!(stems.len() >= 2, "segment sets after 7 s: {stems:?}");
    for stem in &stems[..stems.len() - 1] {
        // Native tables exist only in --native recordings; this one checks the pprof tables.
        for (table, list) in c.stems.iter().filter(|(t, _)| !t.starts_with("native")) {
            assert!(
                list.contains(stem),
                "set {stem} has no {table} segment: a partial set was left behind"
            );
        }
    }
    c.assert_consistent(&[in_flight]);
    // At most about one rotation interval (plus the tick in progress) is lost.
    let last = c.profiles.iter().map(|p| p.time_ns).max().unwrap();
    assert!(
        last >= kill_ns - 4 * SECOND,
        "newest committed profile is {:.1} s older than the kill",
        (kill_ns - last) as f64 / SECOND as f64
    );

    // Stray temporary files (a crash mid-write, or garbage) are invisible to readers.
    let part = files
        .iter()
        .find(|f| f.to_string_lossy().contains("/samples/"))
        .unwrap();
    let bytes = std::fs::read(part).unwrap();
    let stem = part.file_name().unwrap().to_str().unwrap();
    std::fs::write(
        part.with_file_name(format!(".{stem}.tmp")),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    std::fs::write(
        part.with_file_name(".20990101T000000.000Z-000009-deadbeef.parquet.tmp"),
        b"PAR1 garbage",
    )
    .unwrap();
    let stacks_dir = files
        .iter()
        .find(|f| f.to_string_lossy().contains("/stacks/"))
        .unwrap()
        .parent()
        .unwrap();
    std::fs::write(stacks_dir.join(".x.parquet.tmp"), b"").unwrap();
    let samples_before = c.samples.len();
    let rows: usize = read_table(&out, Table::Samples)
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(
        rows, samples_before,
        "a stray .tmp changed what readers see"
    );
    let again = Capture::load(&out);
    assert_eq!(
        (again.profiles.len(), again.stack_rows),
        (c.profiles.len(), c.stack_rows)
    );

    // The crashed capture can be appended to; a recorder restart is not a target restart.
    let args = [
        "record",
        "--target",
        &svc.url(),
        "--out",
        s(&out),
        "--interval",
        "500ms",
        "--duration",
        "2s",
    ];
    let o = run(&rec, &args, Duration::from_secs(20));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(Manifest::read(&out).unwrap().sessions.len(), 2);
    let after = Capture::load(&out);
    after.assert_consistent(&[in_flight]);
    assert!(after.profiles.len() > c.profiles.len());
    let runs: std::collections::HashSet<&str> =
        after.profiles.iter().map(|p| p.run_id.as_str()).collect();
    assert_eq!(runs.len(), 1, "same target process, same run: {runs:?}");
}

/// Stop with `signal` after ~3.5 s with the default `--rotate 1m`: nothing is committed
/// before the signal, everything (the last interval included) is committed after it.
fn stop_commits_everything(signal: i32) {
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let rec = recorder();
    let svc = Service::start(&svc_bin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let args = [
        "record",
        "--target",
        &svc.url(),
        "--out",
        s(&out),
        "--interval",
        "1s",
    ];
    let r = Running::spawn(&rec, &args);
    r.wait_for_line("recording", Duration::from_secs(10))
        .expect("recorder did not start");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        committed_files(&out).is_empty(),
        "committed before the signal with --rotate 1m"
    );
    let sent = Instant::now();
    let sent_ns = now_ns();
    r.signal(signal);
    let o = r.wait(Duration::from_secs(10));
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "exit after signal {signal}: {stderr}"
    );
    assert!(took < Duration::from_millis(2500), "took {took:?} to stop");
    assert!(!stderr.contains("error:"), "{stderr}");

    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    let heap = c.profiles_of("heap");
    assert!(heap.len() >= 3, "{} heap profiles", heap.len());
    for kind in ["heap", "goroutine"] {
        let last = c.profiles_of(kind).iter().map(|p| p.time_ns).max().unwrap();
        assert!(
            last >= sent_ns - 1_500_000_000,
            "last {kind} profile {:.1} s before the signal",
            (sent_ns - last) as f64 / 1e9
        );
    }
    let last_process = c.process.iter().map(|p| p.time_ns).max().unwrap();
    assert!(
        last_process >= sent_ns - 1_500_000_000,
        "last process row too old"
    );
    assert_eq!(c.process.len(), heap.len());
    assert!(
        c.scrapes.iter().all(|s| s.ok || s.kind == "goroutineleak"),
        "{:?}",
        c.scrapes
    );
}

#[test]
fn sigterm_exits_zero_promptly_and_commits_the_last_interval() {
    stop_commits_everything(libc::SIGTERM);
}

#[test]
fn sigint_exits_zero_promptly_and_commits_the_last_interval() {
    stop_commits_everything(libc::SIGINT);
}
