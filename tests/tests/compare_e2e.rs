//! `leakscope compare BEFORE AFTER` on synthetic captures (`leakscope-synth`, same seed,
//! `--steady-leak` choosing which planted leak is written flat): a fixed leak and a new
//! one are told apart and fail the gate; a leak growing faster is worse (slower:
//! improved); a capture against itself changes nothing; a side
//! too short to judge makes sites inconclusive, never fixed; bad input is one error line
//! naming the side and path, exit 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn synth() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leakscope-synth"))
}

/// Writes `dir/name` with two planted leaks (seed 3) of which `--steady-leak quiet` is
/// flat; returns the path and the site keys that leak in it.
fn generate(
    dir: &Path,
    name: &str,
    profiles: usize,
    quiet: usize,
    extra: &[&str],
) -> (PathBuf, Vec<String>) {
    let cap = dir.join(name);
    let profiles = profiles.to_string();
    let quiet = quiet.to_string();
    let mut args = vec![
        "--out",
        cap.to_str().unwrap(),
        "--profiles",
        &profiles,
        "--stacks",
        "200",
        "--leak-sites",
        "2",
        "--trap-sites",
        "1",
        "--steady-leak",
        &quiet,
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    let out = run(&synth(), &args, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "leakscope-synth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth_path = dir.join(format!("{name}.ground-truth.json"));
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    std::fs::remove_file(truth_path).unwrap();
    let leaks = truth["leaks"]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    (cap, leaks)
}

fn compare(before: &Path, after: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec![
        "compare",
        before.to_str().unwrap(),
        after.to_str().unwrap(),
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = leakscope(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("compare JSON: {e}; stderr: {stderr}"));
    (out, doc)
}

/// site key -> the site's entry.
fn by_site(doc: &Value) -> std::collections::HashMap<String, Value> {
    doc["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["site"].as_str().unwrap().to_string(), s.clone()))
        .collect()
}

#[test]
fn a_fixed_leak_and_a_new_one_fail_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let (before, b_leaks) = generate(dir.path(), "before", 120, 1, &[]);
    let (after, a_leaks) = generate(dir.path(), "after", 120, 0, &[]);
    assert_eq!((b_leaks.len(), a_leaks.len()), (1, 1));
    assert_ne!(b_leaks, a_leaks);
    let (out, doc) = compare(&before, &after, &[]);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["fails"], true);
    let sites = by_site(&doc);
    let fixed = &sites[&b_leaks[0]];
    assert_eq!(fixed["change"], "fixed", "{fixed:#}");
    assert_eq!(fixed["before"]["state"], "leaking");
    assert_eq!(fixed["after"]["state"], "flat");
    assert_eq!(fixed["rates"], "lower");
    // The before-rate's interval brackets its centre and excludes no growth.
    let iv = &fixed["before"]["interval"];
    let (low, mid, high) = (
        iv["low"].as_f64().unwrap(),
        iv["rate_per_hour"].as_f64().unwrap(),
        iv["high"].as_f64().unwrap(),
    );
    assert!(0.0 < low && low <= mid && mid <= high, "{iv}");
    assert!(fixed["after"]["interval"]["high"].as_f64().unwrap() < low);
    let new = &sites[&a_leaks[0]];
    assert_eq!(new["change"], "new-leak", "{new:#}");
    assert_eq!(new["before"]["state"], "flat");
    assert_eq!(new["after"]["state"], "leaking");
    assert!(new["why"].as_str().unwrap().contains("leaks in AFTER"));
    // Every other site is planted steady or a trap on both sides: unchanged.
    for (key, s) in &sites {
        if key != &b_leaks[0] && key != &a_leaks[0] {
            assert_eq!(s["change"], "unchanged", "{s:#}");
        }
    }
    assert_eq!(doc["counts"]["new-leak"], 1);
    assert_eq!(doc["counts"]["fixed"], 1);
    assert_eq!(doc["counts"]["unchanged"], sites.len() - 2);
    // The table says the same, with the same exit status.
    let table = leakscope(&["compare", before.to_str().unwrap(), after.to_str().unwrap()]);
    assert_eq!(table.status.code(), Some(1));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("FAIL: 1 new or worse leak(s)"), "{text}");
    assert!(
        text.contains("new leak") && text.contains("fixed"),
        "{text}"
    );
    // Swapped, the new leak is the one fixed and vice versa.
    let (out, doc) = compare(&after, &before, &[]);
    assert_eq!(out.status.code(), Some(1));
    let sites = by_site(&doc);
    assert_eq!(sites[&a_leaks[0]]["change"], "fixed");
    assert_eq!(sites[&b_leaks[0]]["change"], "new-leak");
}

#[test]
fn a_leak_that_grows_faster_is_worse_and_slower_is_improved() {
    // The same planted leak over a run a third as long (profiles 3 s apart, not 10 s):
    // the same growth in less time, 3.3 times the rate.
    let dir = tempfile::tempdir().unwrap();
    let (slow, leaks) = generate(dir.path(), "slow", 120, 1, &[]);
    let (fast, _) = generate(dir.path(), "fast", 120, 1, &["--interval-secs", "3"]);
    let (out, doc) = compare(&slow, &fast, &[]);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let s = &by_site(&doc)[&leaks[0]];
    assert_eq!(
        (&s["change"], &s["rates"]),
        (&"worse".into(), &"higher".into()),
        "{s:#}"
    );
    assert!(s["why"].as_str().unwrap().contains("3.3x"), "{s:#}");
    assert_eq!(
        doc["counts"]["unchanged"],
        doc["sites"].as_array().unwrap().len() - 1
    );
    let (out, doc) = compare(&fast, &slow, &[]);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let s = &by_site(&doc)[&leaks[0]];
    assert_eq!(
        (&s["change"], &s["rates"]),
        (&"improved".into(), &"lower".into()),
        "{s:#}"
    );
}

#[test]
fn a_capture_against_itself_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, leaks) = generate(dir.path(), "cap", 120, 1, &[]);
    let (out, doc) = compare(&cap, &cap, &[]);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["fails"], false);
    for s in doc["sites"].as_array().unwrap() {
        let want = if leaks.contains(&s["site"].as_str().unwrap().to_string()) {
            "still-leaking"
        } else {
            "unchanged"
        };
        assert_eq!(s["change"], want, "{s:#}");
        if want == "still-leaking" {
            assert_eq!(s["rates"], "indistinct");
            assert_eq!(s["before"]["interval"], s["after"]["interval"]);
        }
    }
}

#[test]
fn a_group_of_captures_is_one_side() {
    let dir = tempfile::tempdir().unwrap();
    let group = dir.path().join("before");
    std::fs::create_dir(&group).unwrap();
    let (_, b_leaks) = generate(&group, "day1", 120, 1, &[]);
    generate(&group, "day2", 120, 1, &["--start", "2026-01-06T00:00:00Z"]);
    let (after, a_leaks) = generate(dir.path(), "after", 120, 0, &[]);
    let (out, doc) = compare(&group, &after, &[]);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    assert_eq!(doc["before"]["captures"].as_array().unwrap().len(), 2);
    assert_eq!(doc["before"]["sections"][0]["runs"], 2);
    let sites = by_site(&doc);
    assert_eq!(sites[&b_leaks[0]]["change"], "fixed");
    assert_eq!(sites[&a_leaks[0]]["change"], "new-leak");
}

#[test]
fn a_side_too_short_to_judge_is_inconclusive_not_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (before, b_leaks) = generate(dir.path(), "before", 120, 1, &[]);
    let (after, _) = generate(dir.path(), "after", 4, 0, &[]);
    let (out, doc) = compare(&before, &after, &[]);
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    assert_eq!(doc["after"]["too_few_profiles"], true);
    for s in doc["sites"].as_array().unwrap() {
        assert_eq!(s["change"], "inconclusive", "{s:#}");
        assert_eq!(s["after"]["state"], "unsure");
    }
    assert!(by_site(&doc)[&b_leaks[0]]["why"]
        .as_str()
        .unwrap()
        .contains("AFTER is too short"));
    let (out, doc) = compare(&before, &after, &["--fail-on-inconclusive"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(doc["fails"], true);
}

#[test]
fn bad_input_is_one_line_naming_the_side_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let (cap, _) = generate(dir.path(), "cap", 20, 1, &[]);
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let cases: [(&Path, &Path, &str); 3] = [
        (&missing, &cap, "BEFORE"),
        (&cap, &missing, "AFTER"),
        (&cap, &empty, "AFTER"),
    ];
    for (b, a, side) in cases {
        let out = leakscope(&["compare", b.to_str().unwrap(), a.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        let bad = if side == "BEFORE" { b } else { a };
        assert_one_line_error(&out, &[side, bad.file_name().unwrap().to_str().unwrap()]);
    }
    let out = leakscope(&[
        "compare",
        cap.to_str().unwrap(),
        cap.to_str().unwrap(),
        "--min-confidence",
        "1.5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out, &["--min-confidence"]);
}
