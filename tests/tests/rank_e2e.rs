//! Ranking end to end: captures of the leaky fixture service (the bundled demo and fresh
//! recordings with other seeds, lengths and a restart) must rank every injected leak above
//! every non-leak trap of the same metric, per `ground-truth.json`; a service with traps
//! only must come out clean, and `leakscope check` must say so through its exit code.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn ground_truth() -> Value {
    let text = std::fs::read_to_string(root().join("fixtures/go/leaky-service/ground-truth.json"))
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `leakscope rank --by function --format json` over `captures`.
fn rank_json(captures: &[&Path]) -> Value {
    let src = root()
        .join("fixtures/go/leaky-service")
        .display()
        .to_string();
    let mut args: Vec<&str> = vec![
        "rank", "--by", "function", "--format", "json", "--source", &src,
    ];
    let caps: Vec<String> = captures.iter().map(|p| p.display().to_string()).collect();
    args.extend(caps.iter().map(String::as_str));
    let out = run(&bin("leakscope"), &args, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "rank failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rank JSON")
}

/// Patterns of `kind` (leak/trap) whose primary metric is `metric`, given the enabled names.
fn patterns<'a>(gt: &'a Value, kind: &str, metric: &str, enabled: &[&str]) -> Vec<&'a str> {
    gt["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == kind && p["metric"] == metric)
        .filter(|p| enabled.contains(&p["name"].as_str().unwrap()))
        .map(|p| p["function"].as_str().unwrap())
        .collect()
}

fn finding<'a>(section: &'a Value, function: &str) -> Option<&'a Value> {
    section["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["site"] == function)
}

/// Every enabled leak is found as a leak, and ranks above every enabled trap.
fn assert_leaks_above_traps(r: &Value, enabled: &[&str], label: &str) {
    let gt = ground_truth();
    for section in r["sections"].as_array().unwrap() {
        let metric = section["metric"].as_str().unwrap();
        let leaks = patterns(&gt, "leak", metric, enabled);
        let traps = patterns(&gt, "trap", metric, enabled);
        let mut worst_leak = 0;
        for l in &leaks {
            let f = finding(section, l)
                .unwrap_or_else(|| panic!("{label}: leak {l} missing from the {metric} ranking"));
            assert_eq!(
                f["verdict"], "leak",
                "{label}: {l} should be a leak in {metric}: {f}"
            );
            worst_leak = worst_leak.max(f["rank"].as_u64().unwrap());
        }
        for t in &traps {
            if let Some(f) = finding(section, t) {
                let v = f["verdict"].as_str().unwrap();
                assert!(
                    v != "leak" && v != "possible-leak",
                    "{label}: trap {t} judged {v} in {metric}: {f}"
                );
                assert!(
                    f["rank"].as_u64().unwrap() > worst_leak,
                    "{label}: trap {t} (rank {}) ranks above a leak (worst leak rank {worst_leak}) in {metric}",
                    f["rank"]
                );
            }
        }
    }
}

const ALL: &[&str] = &[
    "goroutine",
    "ticker",
    "subslice",
    "map",
    "cgo",
    "churn",
    "cache",
    "batch",
    "warmup",
    "pool",
];

#[test]
fn demo_capture_ranks_every_leak_above_every_trap() {
    let demo = root().join("fixtures/captures/demo");
    let r = rank_json(&[&demo]);
    assert_leaks_above_traps(&r, ALL, "demo");
    let heap = &r["sections"][0];
    assert_eq!(heap["metric"], "inuse_space");
    assert_eq!(heap["runs"], 2, "the demo holds a restart");
    let top = &heap["findings"][0];
    assert_eq!(top["site"], "main.loadRecord");
    assert!(
        top["hints"].to_string().contains("sub-slice"),
        "sub-slice hint expected: {}",
        top["hints"]
    );
    let map = finding(heap, "main.leakGrowingMap").unwrap();
    assert!(map["hints"].to_string().contains("map"), "{}", map["hints"]);
    let gor = &r["sections"][1];
    let blocked = finding(gor, "main.blockedWorker").unwrap();
    assert!(
        blocked["hints"].to_string().contains("channel"),
        "{}",
        blocked["hints"]
    );
    let ticker = finding(gor, "main.tickerPoller").unwrap();
    assert!(
        ticker["hints"].to_string().contains("icker"),
        "{}",
        ticker["hints"]
    );
    assert!(r["verdict"].as_str().unwrap().contains("main.loadRecord"));
}

/// Records the fixture service for `secs` with `args`, appending to `out`.
fn record(out: &Path, secs: u64, args: &[&str]) -> bool {
    let Some(svc_bin) = leaky_service_or_skip() else {
        return false;
    };
    let svc = Service::start(&svc_bin, args);
    let pid = svc.pid().to_string();
    let dur = format!("{secs}s");
    let out_s = out.display().to_string();
    let o = run(
        &recorder(),
        &[
            "record",
            "--target",
            &svc.url(),
            "--pid",
            &pid,
            "--out",
            &out_s,
            "--interval",
            "1s",
            "--duration",
            &dur,
        ],
        Duration::from_secs(secs + 60),
    );
    assert!(
        o.status.success(),
        "recorder failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    true
}

#[test]
fn fresh_recording_with_restart_ranks_leaks_above_traps() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    // Another seed, a smaller cache (fills at ~12 s) and a restart in the middle.
    let args = [
        "-addr",
        "127.0.0.1:0",
        "-seed",
        "11",
        "-cache-capacity",
        "60",
    ];
    if !record(&cap, 32, &args) {
        return;
    }
    let args2 = [
        "-addr",
        "127.0.0.1:0",
        "-seed",
        "12",
        "-cache-capacity",
        "60",
    ];
    assert!(record(&cap, 32, &args2));
    let r = rank_json(&[&cap]);
    assert_eq!(r["sections"][0]["runs"], 2, "restart must start a new run");
    assert_leaks_above_traps(&r, ALL, "seeds 11+12 with restart");
    // check: leaks above 5 MiB/h with confidence fail the gate.
    let cap_s = cap.display().to_string();
    let o = run(
        &bin("leakscope"),
        &["check", &cap_s, "--max-growth", "5MiB/h"],
        Duration::from_secs(60),
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("main.loadRecord"));
}

#[test]
fn traps_only_service_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let args = [
        "-addr",
        "127.0.0.1:0",
        "-seed",
        "5",
        "-leaks",
        "none",
        "-cache-capacity",
        "60",
    ];
    if !record(&cap, 40, &args) {
        return;
    }
    let r = rank_json(&[&cap]);
    let enabled = ["churn", "cache", "batch", "warmup", "pool"];
    assert_leaks_above_traps(&r, &enabled, "traps only");
    let cap_s = cap.display().to_string();
    let o = run(
        &bin("leakscope"),
        &["check", &cap_s, "--max-growth", "5MiB/h"],
        Duration::from_secs(60),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "a service with only traps must pass the gate: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}
