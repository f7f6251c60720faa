//! Evidence integrity, the analyzer's side (issue #11): hostile or unusual captures are
//! analysed or refused with a warning that names the file, never with a panic or a hang.
//!
//! - foreign Parquet: segments rewritten by pyarrow and DuckDB (from PyPI; required in CI,
//!   skipped loudly elsewhere) with other column types,
//! - times at the edge: a profile stamped `i64::MAX` (and one at `i64::MIN`),
//! - control characters and bidi overrides in function names, files and labels,
//! - one call site with 100,000 distinct stacks (quadratic grouping).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::build::{stack, write_heap_capture, HeapProfile};
use common::*;
use serde_json::Value;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Asserts the run did not panic (exit 101, "panicked") and returns its stderr.
fn no_panic(o: &Output, what: &str) -> String {
    let err = text(&o.stderr);
    assert!(
        o.status.code() != Some(101) && !err.contains("panicked"),
        "{what} panicked: {err}"
    );
    err
}

/// Asserts success without a panic; returns stderr.
fn ok(o: &Output, what: &str) -> String {
    let err = no_panic(o, what);
    assert!(o.status.success(), "{what} failed: {err}");
    err
}

/// Runs rank, sql over every table, report and export-pprof on `cap`; every one must
/// succeed. Returns the ranking (JSON), the SQL counts (JSON) and the stderr of all.
fn analyse_everything(cap: &Path, dir: &Path) -> (Value, Value, String) {
    let mut stderr = String::new();
    let o = leakscope(&["rank", &s(cap), "--format", "json"]);
    stderr += &ok(&o, "rank");
    let ranking: Value = serde_json::from_slice(&o.stdout).expect("rank JSON");
    for format in ["table", "markdown"] {
        stderr += &ok(&leakscope(&["rank", &s(cap), "--format", format]), "rank");
    }
    let q = "SELECT (SELECT COUNT(*) FROM profiles) AS profiles, \
             (SELECT COUNT(*) FROM samples) AS samples, \
             (SELECT SUM(inuse_bytes) FROM samples) AS bytes, \
             (SELECT COUNT(*) FROM stack_info) AS stacks, \
             (SELECT COUNT(DISTINCT site) FROM sample_stacks) AS sites, \
             (SELECT COUNT(*) FROM process) AS process, \
             (SELECT COUNT(*) FROM scrapes) AS scrapes";
    let o = leakscope(&["sql", &s(cap), q, "--format", "json"]);
    stderr += &ok(&o, "sql");
    let counts: Value = serde_json::from_slice(&o.stdout).expect("sql JSON");
    let html = dir.join("report.html");
    let o = leakscope(&[
        "report",
        &s(cap),
        "-o",
        &s(&html),
        "--png",
        &s(&dir.join("png")),
    ]);
    stderr += &ok(&o, "report");
    assert!(std::fs::metadata(&html).unwrap().len() > 1000);
    let pprof = dir.join("growth.pb.gz");
    stderr += &ok(
        &leakscope(&["export-pprof", &s(cap), "-o", &s(&pprof)]),
        "export-pprof",
    );
    (ranking, counts, stderr)
}

/// (metric, site, verdict) of every finding, in order.
fn findings(r: &Value) -> Vec<(String, String, String)> {
    r["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["findings"].as_array().unwrap().iter())
        .map(|f| {
            (
                f["metric"].to_string(),
                f["site"].to_string(),
                f["fit"]["verdict"].to_string(),
            )
        })
        .collect()
}

/// Whether `python3` can import every module of `modules`.
fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A copy of the demo capture at `dir/name` with its segments rewritten by
/// `tests/scripts/foreign_rewrite.py MODE`; returns it and the files rewritten.
fn foreign_copy(dir: &Path, name: &str, mode: &str) -> (PathBuf, Vec<String>) {
    let cap = dir.join(name);
    copy_dir(&demo_capture(), &cap);
    let script = root().join("tests/scripts/foreign_rewrite.py");
    let o = Command::new("python3")
        .arg(&script)
        .args([mode, &s(&cap)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{mode}: {}", text(&o.stderr));
    let files = text(&o.stdout).lines().map(str::to_string).collect();
    (cap, files)
}

/// Lines of `stderr` that warn about skipping a segment.
fn skip_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("warning: skipping segment"))
        .collect()
}

#[test]
fn foreign_parquet_reads_when_lossless_and_is_skipped_by_name_when_not() {
    if !require(
        python_has("pyarrow"),
        "python3 with pyarrow (pip install pyarrow)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (want_rank, want_counts, err) = analyse_everything(&demo_capture(), dir.path());
    assert!(skip_warnings(&err).is_empty(), "{err}");

    // Other types, every one lossless: the same findings and the same counts.
    let (cap, files) = foreign_copy(dir.path(), "types", "pyarrow-types");
    assert!(files.len() >= 20, "{files:?}");
    let (rank, counts, err) = analyse_everything(&cap, dir.path());
    assert!(skip_warnings(&err).is_empty(), "nothing to skip: {err}");
    assert_eq!(findings(&rank), findings(&want_rank));
    assert_eq!(counts, want_counts);

    // stack_id as int64 with negative ids: that segment is skipped, named, and the rest
    // analysed; so is a stacks segment whose ids are text.
    for (mode, why) in [("int64-ids", "Int64"), ("text-ids", "Utf8")] {
        let (cap, files) = foreign_copy(dir.path(), mode, mode);
        assert_eq!(files.len(), 1);
        let (rank, counts, err) = analyse_everything(&cap, dir.path());
        let warned = skip_warnings(&err);
        assert!(!warned.is_empty(), "{mode}: no warning: {err}");
        assert!(
            warned
                .iter()
                .all(|w| w.contains(&files[0]) && w.contains("stack_id") && w.contains(why)),
            "{mode}: {warned:?}"
        );
        assert!(!findings(&rank).is_empty(), "{mode}: the rest is ranked");
        assert!(counts[0]["profiles"].as_i64().unwrap() > 0, "{counts}");
        let skipped = rank["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 1, "{mode}: {skipped:?}");
    }
}

#[test]
fn duckdb_rewritten_capture_reads_like_the_original() {
    if !require(
        python_has("duckdb, pyarrow"),
        "python3 with duckdb and pyarrow (pip install duckdb pyarrow)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (want_rank, want_counts, _) = analyse_everything(&demo_capture(), dir.path());
    let (cap, files) = foreign_copy(dir.path(), "duck", "duckdb");
    assert!(files.len() >= 20, "{files:?}");
    let (rank, counts, err) = analyse_everything(&cap, dir.path());
    assert!(skip_warnings(&err).is_empty(), "{err}");
    assert_eq!(findings(&rank), findings(&want_rank));
    assert_eq!(counts, want_counts);
}

const T0: i64 = 1_796_083_200_000_000_000; // 2026-12-01T00:00:00Z

/// Six normal heap profiles 10 s apart (one growing site, one steady), then `extra`.
fn edge_capture(dir: &Path, extra: &[i64]) -> PathBuf {
    let grow = stack("main.grow", "/src/app/grow.go", "main.main");
    let steady = stack("main.steady", "/src/app/steady.go", "main.main");
    let mut profiles: Vec<HeapProfile> = (0..6)
        .map(|i| HeapProfile {
            time_ns: T0 + i * 10_000_000_000,
            samples: vec![(&grow[..], (i + 1) * 1_048_576), (&steady[..], 524_288)],
        })
        .collect();
    for t in extra {
        profiles.push(HeapProfile {
            time_ns: *t,
            samples: vec![(&grow[..], 7 * 1_048_576), (&steady[..], 524_288)],
        });
    }
    let cap = dir.join("cap");
    write_heap_capture(&cap, &profiles, None);
    cap
}

#[test]
fn a_profile_at_the_end_of_time_is_reported_not_a_panic_or_a_hang() {
    for extra in [vec![i64::MAX], vec![i64::MAX, i64::MAX - 1]] {
        let dir = tempfile::tempdir().unwrap();
        let cap = edge_capture(dir.path(), &extra);
        let start = Instant::now();
        let (rank, _, _) = analyse_everything(&cap, dir.path());
        assert!(!findings(&rank).is_empty());
        // The report's time axis used to loop without end in release builds.
        assert!(start.elapsed() < Duration::from_secs(110));
        let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(
            html.contains("2262-04-11"),
            "the last profile's date is shown"
        );
    }
}

#[test]
fn profiles_at_the_start_of_time_do_not_panic() {
    // Times before the run's first profile are i64::MIN: every difference overflows i64.
    let dir = tempfile::tempdir().unwrap();
    let cap = edge_capture(dir.path(), &[i64::MIN, 0]);
    for args in [
        vec!["rank", "--format", "json"],
        vec!["sql", "SELECT MIN(time), MAX(time) FROM profiles"],
    ] {
        let mut a = vec![args[0], cap.to_str().unwrap()];
        a.extend(&args[1..]);
        ok(&leakscope(&a), args[0]);
    }
    let out = dir.path().join("r.html");
    no_panic(&leakscope(&["report", &s(&cap), "-o", &s(&out)]), "report");
    no_panic(
        &leakscope(&[
            "export-pprof",
            &s(&cap),
            "-o",
            &s(&dir.path().join("g.pb.gz")),
        ]),
        "export-pprof",
    );
}

/// A function name with a clear-screen sequence, a newline, a carriage return, a table
/// pipe, backticks and a right-to-left override.
pub const HOSTILE: &str = "main.evil\u{1b}[2J\nnext|row\r`code`\u{202e}gnp.exe";

/// Characters that must never reach a terminal or document raw.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
        .collect()
}

#[test]
fn control_characters_in_names_are_escaped_in_every_text_output() {
    let dir = tempfile::tempdir().unwrap();
    let evil = stack(HOSTILE, "/src/app/ev\u{1b}]8;;x\u{7}il.go", "main.main");
    let profiles: Vec<HeapProfile> = (0..8)
        .map(|i| HeapProfile {
            time_ns: T0 + i * 10_000_000_000,
            samples: vec![(&evil[..], (i + 1) * 4 * 1_048_576)],
        })
        .collect();
    let cap = dir.path().join("cap");
    write_heap_capture(&cap, &profiles, Some("user=\u{1b}[31mred\u{202e}"));

    for format in ["table", "markdown"] {
        let o = leakscope(&["rank", &s(&cap), "--format", format, "--by", "function"]);
        ok(&o, "rank");
        let out = text(&o.stdout);
        assert!(raw_controls(&out).is_empty(), "{format}: {out:?}");
        assert!(out.contains("main.evil\\x1b[2J\\nnext"), "{format}: {out}");
        assert!(out.contains("\\u{202e}"), "{format}: {out}");
        if format == "markdown" {
            assert!(
                out.contains("next\\|row") && out.contains("\\`code\\`"),
                "{out}"
            );
            // Every table row is one line: the header's column count holds for each.
            let rows: Vec<&str> = out.lines().filter(|l| l.starts_with('|')).collect();
            let cols = |l: &str| l.matches('|').count() - l.matches("\\|").count();
            assert!(rows.iter().all(|r| cols(r) == cols(rows[0])), "{out}");
        }
    }
    // JSON keeps the exact name (serde escapes it).
    let o = leakscope(&["rank", &s(&cap), "--format", "json", "--by", "function"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r.to_string().contains("\\u001b[2J\\nnext|row\\r"), "{r}");

    let o = leakscope(&[
        "check",
        &s(&cap),
        "--max-growth",
        "1B/h",
        "--min-confidence",
        "0",
    ]);
    no_panic(&o, "check");
    assert!(
        raw_controls(&text(&o.stdout)).is_empty(),
        "{}",
        text(&o.stdout)
    );

    let q = "SELECT leaf_function, site, labels FROM sample_stacks LIMIT 3";
    let o = leakscope(&["sql", &s(&cap), q]);
    ok(&o, "sql");
    let out = text(&o.stdout);
    assert!(raw_controls(&out).is_empty(), "{out:?}");
    assert!(out.contains("\\x1b[31mred"), "{out}");

    let html = dir.path().join("r.html");
    let png = dir.path().join("png");
    ok(
        &leakscope(&["report", &s(&cap), "-o", &s(&html), "--png", &s(&png)]),
        "report",
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(raw_controls(&page).is_empty(), "raw controls in the HTML");
    assert!(page.contains("main.evil\\x1b[2J"), "escaped name shown");
}

#[test]
fn one_site_with_100k_distinct_stacks_ranks() {
    // One allocation site reached from 100,000 distinct callers (generated handlers,
    // closures): grouping searched each group's function list linearly per frame, which is
    // quadratic in the distinct functions of one site.
    const STACKS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let stacks: Vec<_> = (0..STACKS)
        .map(|i| {
            stack(
                "main.(*Store).put",
                "/src/app/store.go",
                &format!("main.gen.func{i}"),
            )
        })
        .collect();
    // 12 profiles: the fewest independent observations a leak verdict rests on.
    let profiles: Vec<HeapProfile> = (0..12)
        .map(|p| HeapProfile {
            time_ns: T0 + p * 10_000_000_000,
            samples: stacks.iter().map(|s| (&s[..], (p + 1) * 8192)).collect(),
        })
        .collect();
    write_heap_capture(&cap, &profiles, None);
    let start = Instant::now();
    let o = run(
        &bin("leakscope"),
        &["rank", &s(&cap), "--format", "json"],
        Duration::from_secs(600),
    );
    ok(&o, "rank");
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &r["sections"][0]["findings"][0];
    assert_eq!(f["stacks"], STACKS, "{f}");
    assert_eq!(f["verdict"], "leak", "{f}");
    eprintln!(
        "rank of one site with {STACKS} stacks: {:?}",
        start.elapsed()
    );
}
