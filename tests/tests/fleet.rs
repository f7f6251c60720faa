//! `leakscope fleet rank` end to end: a fleet of synthetic captures (`leakscope-synth`)
//! where the planted leak sites leak in every pod but one, one pod leaks ten times faster,
//! one pod records another target and has no `pod` label, and one capture is corrupt. The
//! counts, the outlier, the JSON, markdown and HTML outputs, and the bad-input errors are
//! checked.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn synth() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leakscope-synth"))
}

/// Pods of the fleet: (host, target, leak scale, `pod` label?).
const PODS: &[(&str, &str, &str, bool)] = &[
    ("pod-1", "api", "1.0", true),
    ("pod-2", "api", "1.1", true),
    ("pod-3", "api", "10", true),
    ("pod-4", "api", "0.9", true),
    ("pod-5", "api", "1.2", true),
    ("pod-6", "api", "0", true),
    ("pod-7", "worker", "1.05", false),
];

/// Writes the fleet below `dir/fleet` (one level of region folders, to check the walk);
/// returns the fleet directory and the planted leak sites.
fn make_fleet(dir: &Path) -> (PathBuf, Vec<String>) {
    let fleet = dir.join("fleet");
    let mut leak_sites = Vec::new();
    for (i, (host, target, scale, labelled)) in PODS.iter().enumerate() {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        std::fs::create_dir_all(fleet.join(region)).unwrap();
        let out = fleet.join(region).join(host);
        let truth = dir.join(format!("{host}.truth.json"));
        let label = format!("pod={host}");
        let mut args = vec![
            "--out",
            out.to_str().unwrap(),
            "--truth",
            truth.to_str().unwrap(),
            "--profiles",
            "40",
            "--stacks",
            "60",
            "--leak-sites",
            "2",
            "--trap-sites",
            "1",
            "--interval-secs",
            "60",
            "--seed",
            "7",
            "--host",
            host,
            "--target",
            target,
            "--leak-scale",
            scale,
        ];
        if *labelled {
            args.extend(["--label", &label]);
        }
        let run_out = run(&synth(), &args, Duration::from_secs(120));
        assert!(
            run_out.status.success(),
            "leakscope-synth {args:?}: {}",
            String::from_utf8_lossy(&run_out.stderr)
        );
        let t: Value = serde_json::from_str(&std::fs::read_to_string(&truth).unwrap()).unwrap();
        leak_sites = t["leaks"]["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
    }
    // A corrupt capture among them: its manifest is not JSON.
    let broken = fleet.join("us/broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("manifest.json"), "{\"format\": ").unwrap();
    assert_eq!(leak_sites.len(), 2);
    (fleet, leak_sites)
}

fn fleet_rank(args: &[&str]) -> std::process::Output {
    let mut all = vec!["fleet", "rank"];
    all.extend_from_slice(args);
    run(&bin("leakscope"), &all, Duration::from_secs(300))
}

fn ok_json(args: &[&str]) -> (Value, String) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = fleet_rank(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fleet rank {all:?} failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("fleet JSON");
    (v, stderr)
}

fn site<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == key)
        .unwrap_or_else(|| panic!("site {key} missing from {v:#}"))
}

#[test]
fn fleet_rank_counts_leaking_units_and_names_the_outlier() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, leaks) = make_fleet(dir.path());
    let loc = fleet.to_str().unwrap();
    let html = dir.path().join("fleet.html");

    // --by host: seven units of one capture each; the corrupt capture is skipped.
    let (v, stderr) = ok_json(&[loc, "--by", "host", "--html", html.to_str().unwrap()]);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["by"], "host");
    assert_eq!(v["captures_found"], 8);
    assert_eq!(v["captures_ranked"], 7);
    assert_eq!(v["units"].as_array().unwrap().len(), 7);
    let skipped = v["skipped_captures"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0]["capture"].as_str().unwrap().ends_with("broken"));
    assert_eq!(skipped[0]["code"], "unreadable");
    assert!(
        stderr.contains("warning: skipping capture") && stderr.contains("broken"),
        "{stderr}"
    );
    // The planted leaks are the two most widespread sites, leaking in 6 of 7 pods.
    let top: Vec<&str> = v["sites"].as_array().unwrap()[..2]
        .iter()
        .map(|s| s["site"].as_str().unwrap())
        .collect();
    for key in &leaks {
        assert!(
            top.contains(&key.as_str()),
            "{key} not in the top 2: {top:?}"
        );
        let s = site(&v, key);
        assert_eq!(s["units_leaking"], 6, "{s:#}");
        assert_eq!(s["units_present"], 7, "{s:#}");
        assert_eq!(s["captures_leaking"], 6);
        let outliers = s["outliers"].as_array().unwrap();
        assert_eq!(outliers.len(), 1, "{s:#}");
        assert_eq!(outliers[0]["unit"], "pod-3");
        let ratio = outliers[0]["ratio"].as_f64().unwrap();
        assert!((7.0..14.0).contains(&ratio), "ratio {ratio}");
        // pod-6 does not leak: its rate is the lowest, and not a leak.
        let rates = s["rates"].as_array().unwrap();
        assert_eq!(rates[0]["unit"], "pod-3");
        let pod6 = rates.iter().find(|r| r["unit"] == "pod-6").unwrap();
        assert_eq!(pod6["leak"], false);
        let sp = &s["spread"];
        assert!(sp["min"].as_f64().unwrap() <= sp["p10"].as_f64().unwrap());
        assert!(sp["p10"].as_f64().unwrap() <= sp["median"].as_f64().unwrap());
        assert!(sp["median"].as_f64().unwrap() <= sp["p90"].as_f64().unwrap());
        assert!(sp["mad"].as_f64().unwrap() > 0.0);
    }
    // No other site has an outlier, and no trap leaks in most pods.
    for s in v["sites"].as_array().unwrap() {
        if !leaks.iter().any(|k| s["site"] == k.as_str()) {
            assert!(s["outliers"].as_array().unwrap().is_empty(), "{s:#}");
            assert!(s["units_leaking"].as_u64().unwrap() <= 1, "{s:#}");
        }
    }
    assert!(v["summary"].as_str().unwrap().contains("pod-3"));
    let report = std::fs::read_to_string(&html).expect("HTML report written");
    assert!(report.starts_with("<!DOCTYPE html>"));
    assert!(
        report.contains("<span class=\"out\">pod-3</span>"),
        "outlier not named in the report"
    );
    assert!(report.contains("<svg class=\"strip\""));
    assert!(!report.contains("<script"));

    // The same result with one job at a time (the order does not depend on scheduling).
    let (v1, _) = ok_json(&[loc, "--by", "host", "--jobs", "1"]);
    assert_eq!(v1["sites"], v["sites"]);
    assert_eq!(v1["units"], v["units"]);

    // --by target: api (six pods) and worker; too few units for outliers.
    let (t, _) = ok_json(&[loc, "--by", "target"]);
    let names: Vec<&str> = t["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "worker"]);
    assert_eq!(t["units"][0]["captures"], 6);
    let s = site(&t, &leaks[0]);
    assert_eq!(
        (s["units_leaking"].clone(), s["units_present"].clone()),
        (2.into(), 2.into())
    );
    assert_eq!(s["captures_leaking"], 6);
    assert_eq!(s["captures_present"], 7);
    assert!(s["outliers"].as_array().unwrap().is_empty());

    // --by label:pod: pod-7 has no label and is skipped with a warning.
    let (l, stderr) = ok_json(&[loc, "--by", "label:pod"]);
    assert_eq!(l["units"].as_array().unwrap().len(), 6);
    assert_eq!(l["captures_ranked"], 6);
    assert!(
        stderr.contains("pod-7") && stderr.contains("no label \"pod\""),
        "{stderr}"
    );
    assert_eq!(site(&l, &leaks[0])["outliers"][0]["unit"], "pod-3");

    // Table and markdown name the outlier too.
    let out = fleet_rank(&[loc, "--by", "host", "--format", "markdown"]);
    assert!(out.status.success());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("### Outliers") && md.contains("pod-3 leaks"),
        "{md}"
    );
    let out = fleet_rank(&[loc, "--by", "host"]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("6/7") && table.contains("pod-3"), "{table}");
}

#[test]
fn fleet_rank_bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "x").unwrap();
    // One good capture, for the flag errors.
    let one = dir.path().join("one");
    let cap = one.join("cap");
    let out = run(
        &synth(),
        &[
            "--out",
            cap.to_str().unwrap(),
            "--profiles",
            "20",
            "--stacks",
            "60",
            "--leak-sites",
            "1",
            "--trap-sites",
            "1",
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec![missing.to_str().unwrap()], vec!["missing"]),
        (
            vec![file.to_str().unwrap()],
            vec!["file.txt", "not a directory"],
        ),
        (
            vec![empty.to_str().unwrap()],
            vec!["empty", "no captures found"],
        ),
        (
            vec![one.to_str().unwrap(), "--by", "label:bad key"],
            vec!["one", "bad label key"],
        ),
        (
            vec![one.to_str().unwrap(), "--by", "pod"],
            vec!["one", "unknown grouping"],
        ),
        (
            vec![one.to_str().unwrap(), "--by", "label:zone"],
            vec!["one", "label \"zone\""],
        ),
        (
            vec![one.to_str().unwrap(), "--outlier-factor", "0.5"],
            vec!["one", "--outlier-factor"],
        ),
    ];
    for (args, needles) in cases {
        let out = fleet_rank(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_one_line_error(&out, &needles);
    }
    // The good capture alone ranks: a fleet of one (no outliers possible).
    let out = fleet_rank(&[one.to_str().unwrap(), "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["captures_ranked"], 1);
    assert_eq!(v["units"][0]["name"], "cap");

    // A corrupt segment in a capture is skipped with a warning, as `rank` does.
    let samples = common::capture::committed_files(&cap)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/samples/"))
        .expect("a samples segment");
    std::fs::write(&samples, b"PAR1 not parquet").unwrap();
    let out = fleet_rank(&[one.to_str().unwrap(), "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("warning: skipping segment") && stderr.contains("samples"),
        "{stderr}"
    );
    if out.status.success() {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["skipped_segments"].as_array().unwrap().len(), 1, "{v:#}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
    }
}
