//! The analyzer's command line on the bundled demo capture: SQL (typed, shipped, formats,
//! several captures), and bad input: each a one-line error with the right exit code.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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

#[test]
fn every_shipped_query_runs_on_the_demo() {
    let list = leakscope(&["sql", "--list"]);
    assert!(list.status.success());
    let names: Vec<String> = stdout(&list)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(names.len() >= 5, "{names:?}");
    for q in &names {
        let o = leakscope(&["sql", &s(&demo_capture()), "--query", q, "--format", "csv"]);
        assert!(
            o.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout(&o).lines().count() >= 2, "{q} returned no rows");
    }
    let o = leakscope(&[
        "sql",
        &s(&demo_capture()),
        "--query",
        "top_growth",
        "--format",
        "csv",
    ]);
    let second = stdout(&o).lines().nth(1).unwrap().to_string();
    assert!(second.starts_with("main.loadRecord"), "{second}");
}

#[test]
fn metric_names_take_the_profile_spelling_and_the_kebab_one() {
    for (name, unit) in [
        ("inuse_objects", "objects"),
        ("inuse-objects", "objects"),
        ("inuse_space", "bytes"),
        ("goroutines", "goroutines"),
    ] {
        let o = leakscope(&[
            "rank",
            &s(&demo_capture()),
            "--metric",
            name,
            "--format",
            "json",
        ]);
        assert!(
            o.status.success(),
            "--metric {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let sections = r["sections"].as_array().unwrap();
        assert_eq!(sections.len(), 1, "--metric {name}");
        assert_eq!(sections[0]["findings"][0]["unit"], unit, "--metric {name}");
    }
}

#[test]
fn typed_sql_formats_and_several_captures() {
    let q = "SELECT capture, COUNT(*) AS n FROM profiles GROUP BY capture ORDER BY capture";
    let o = leakscope(&[
        "sql",
        &s(&demo_capture()),
        &s(&demo_capture()),
        q,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert_eq!(rows[0]["n"], rows[1]["n"]);
    assert_ne!(rows[0]["capture"], rows[1]["capture"]);

    // Views and functions read naturally.
    let q = "SELECT site_function, format_bytes(CAST(SUM(inuse_bytes) AS DOUBLE)) AS b \
             FROM sample_stacks WHERE kind = 'heap' GROUP BY site_function \
             ORDER BY SUM(inuse_bytes) DESC LIMIT 1";
    let o = leakscope(&["sql", &s(&demo_capture()), q, "--format", "csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("main.loadRecord"), "{}", stdout(&o));

    // Partition column and pruning: a date filter that matches nothing returns nothing.
    let q = "SELECT COUNT(*) AS n FROM samples WHERE date = '1999-01-01'";
    let o = leakscope(&["sql", &s(&demo_capture()), q, "--format", "csv"]);
    assert_eq!(stdout(&o).lines().nth(1), Some("0"));

    // Parquet output is a real Parquet file.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.parquet");
    let o = leakscope(&[
        "sql",
        &s(&demo_capture()),
        "SELECT stack_id, time FROM samples LIMIT 10",
        "--format",
        "parquet",
        "--output",
        &s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");

    // SQL statistics functions agree with the ranking's direction.
    let q = "SELECT theil_sen(to_unixtime(time) / 3600.0, CAST(goroutines AS DOUBLE)) > 0 AS up, \
             mann_kendall_p(to_unixtime(time) / 3600.0, CAST(goroutines AS DOUBLE)) < 0.01 AS sig \
             FROM (SELECT time, SUM(goroutines) AS goroutines FROM samples WHERE kind = 'goroutine' GROUP BY time)";
    let o = leakscope(&["sql", &s(&demo_capture()), q, "--format", "csv"]);
    assert_eq!(
        stdout(&o).lines().nth(1),
        Some("true,true"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_input_is_a_one_line_error_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // Not a capture: an empty directory, a regular file, a missing path.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "hello").unwrap();
    let missing = dir.path().join("missing");
    for p in [&empty, &file, &missing] {
        let o = leakscope(&["rank", &s(p)]);
        assert_eq!(o.status.code(), Some(2), "{}", p.display());
        assert_one_line_error(&o, &[&s(p), "not a leakscope capture"]);
    }
    // An empty capture: a manifest, no data.
    let bare = dir.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(
        demo_capture().join("manifest.json"),
        bare.join("manifest.json"),
    )
    .unwrap();
    let o = leakscope(&["rank", &s(&bare)]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &[&s(&bare), "empty capture"]);
    let o = leakscope(&["check", &s(&bare)]);
    assert_eq!(o.status.code(), Some(2));

    // A capture with one profile.
    let one = dir.path().join("one");
    let imp = run(
        &recorder(),
        &[
            "import",
            &s(&root().join("fixtures/pprof/go1.27/heap.pb.gz")),
            "--out",
            &s(&one),
        ],
        Duration::from_secs(60),
    );
    assert!(
        imp.status.success(),
        "{}",
        String::from_utf8_lossy(&imp.stderr)
    );
    let o = leakscope(&["rank", &s(&one)]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &[&s(&one), "not enough profiles"]);

    // Unknown query, invalid SQL, both SQL and --query.
    let o = leakscope(&["sql", &s(&demo_capture()), "--query", "no_such_query"]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["unknown query 'no_such_query'"]);
    let o = leakscope(&["sql", &s(&demo_capture()), "SELEC oops FROM nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["SQL error"]);
    let o = leakscope(&["sql", &s(&demo_capture()), "SELECT * FROM no_such_table"]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["no_such_table"]);
    let o = leakscope(&["check", &s(&demo_capture()), "--max-growth", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["--max-growth"]);
}

#[test]
fn corrupt_segment_is_named_and_the_rest_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("demo");
    copy_dir(&demo_capture(), &cap);
    let mut segs: Vec<PathBuf> = walk(&cap.join("samples"));
    segs.sort();
    let victim = segs[1].clone();
    let len = std::fs::metadata(&victim).unwrap().len() as usize;
    std::fs::write(&victim, vec![0x42u8; len]).unwrap();
    let o = leakscope(&["rank", &s(&cap), "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&s(&victim)) && err.contains("corrupt"),
        "stderr must name the corrupt segment: {err}"
    );
    assert!(!err.contains("panicked"));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["skipped"].as_array().unwrap().len(), 1);
    let top = &r["sections"][0]["findings"][0];
    assert_eq!(top["verdict"], "leak");
    assert!(
        top["site"].as_str().unwrap().starts_with("main.loadRecord"),
        "profiles of the lost segment must not read as drops: {top}"
    );
    // SQL over the same capture works too, without the bad file.
    let o = leakscope(&[
        "sql",
        &s(&cap),
        "SELECT COUNT(*) FROM samples",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A segment whose footer is sound but whose page makes the Parquet decoder panic
/// (definition levels that disagree with the page header; found by the `capture_read` fuzz
/// target): every command that decodes the column fails with one line naming the segment
/// and exit 2, never a panic, and a query that does not touch the column still works.
#[test]
fn a_decoder_panic_names_the_damaged_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("demo");
    copy_dir(&demo_capture(), &cap);
    let mut segs: Vec<PathBuf> = walk(&cap.join("samples"));
    segs.sort();
    let victim = segs[0].clone();
    let bad = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../capture/tests/data/bad-definition-levels.parquet");
    std::fs::copy(&bad, &victim).unwrap();
    for sql in [
        "SELECT * FROM samples",
        "SELECT profile_id, SUM(alloc_objects) FROM samples GROUP BY profile_id",
    ] {
        let args = ["sql", &s(&cap), sql, "--format", "csv"];
        let o = leakscope(&args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_one_line_error(&o, &[&s(&victim), "corrupt Parquet data"]);
    }
    let o = leakscope(&["sql", &s(&cap), "SELECT COUNT(*) FROM samples"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = leakscope(&["rank", &s(&cap)]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));

    // A footer declaring lists of two billion booleans in 3 KB (also found by the fuzz
    // target; parquet spends a quarter second per read on it) is skipped as corrupt by
    // name, before the Parquet crate sees it.
    let slow = segs[1].clone();
    let footer =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/capture_read/bool-list-footer");
    std::fs::copy(&footer, &slow).unwrap();
    let o = leakscope(&["sql", &s(&cap), "SELECT COUNT(*) FROM samples"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&s(&slow)) && err.contains("corrupt footer"),
        "{err}"
    );
}

/// A capture with commit markers where one set lost its marker (a `kill -9` between two
/// renames, or a set being committed while the analyzer reads): SQL and ranking both leave
/// it out and warn, naming it.
#[test]
fn an_incomplete_set_is_left_out_of_sql_and_ranking() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("demo");
    copy_dir(&demo_capture(), &cap);
    leakscope_capture::segment::ensure_commit_markers(&cap).unwrap();
    let count = |table: &str| {
        let q = format!("SELECT COUNT(*) AS n FROM {table}");
        let o = leakscope(&["sql", &s(&cap), &q, "--format", "csv"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let n: u64 = stdout(&o).lines().nth(1).unwrap().parse().unwrap();
        (n, String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (profiles, samples) = (count("profiles").0, count("samples").0);
    let mut segs: Vec<PathBuf> = walk(&cap.join("samples"));
    segs.sort();
    let stem = segs[1].file_stem().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(cap.join("_commits").join(format!("{stem}.commit"))).unwrap();
    let (p, err) = count("profiles");
    assert!(
        p < profiles,
        "{p} of {profiles} profiles: the incomplete set is visible"
    );
    assert!(
        err.contains(&format!("incomplete segment set {stem} ignored")),
        "{err}"
    );
    assert!(count("samples").0 < samples);
    let o = leakscope(&["rank", &s(&cap), "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let top = &r["sections"][0]["findings"][0];
    assert!(
        top["site"].as_str().unwrap().starts_with("main.loadRecord"),
        "{top}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out
}

#[test]
fn export_pprof_opens_in_go_tool_pprof() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("delta.pb.gz");
    let o = leakscope(&["export-pprof", &s(&demo_capture()), "-o", &s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let Some(go) = go() else {
        require(false, "the Go toolchain (go tool pprof)");
        return;
    };
    let top = run(
        &go,
        &[
            "tool",
            "pprof",
            "-top",
            "-sample_index=inuse_space",
            &s(&out),
        ],
        Duration::from_secs(120),
    );
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    let text = stdout(&top);
    let first = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        first.contains("main.loadRecord"),
        "top of the delta: {text}"
    );
    assert!(text.contains("leakscope delta"), "{text}");

    // Goroutines, with an explicit window.
    let gout = dir.path().join("g.pb.gz");
    let o = leakscope(&[
        "export-pprof",
        &s(&demo_capture()),
        "--metric",
        "goroutines",
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "-o",
        &s(&gout),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top = run(
        &go,
        &["tool", "pprof", "-top", &s(&gout)],
        Duration::from_secs(120),
    );
    assert!(
        stdout(&top).contains("main.blockedWorker"),
        "{}",
        stdout(&top)
    );

    // Bad input: an unparsable time, an empty window.
    let o = leakscope(&[
        "export-pprof",
        &s(&demo_capture()),
        "--from",
        "yesterday",
        "-o",
        &s(&gout),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["--from", "RFC 3339"]);
    let o = leakscope(&[
        "export-pprof",
        &s(&demo_capture()),
        "--from",
        "2100-01-01T00:00:00Z",
        "-o",
        &s(&gout),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["no heap profiles"]);
}

/// The demo's first 20 seconds (about ten heap profiles) are too little evidence for a
/// leak: its leaks are `growing` with a shortfall and an estimate of how much longer to
/// record, `check` passes unless `--fail-on-growing`, and the full capture still fails it.
#[test]
fn a_short_prefix_is_growing_not_leak_and_check_passes_unless_asked() {
    let demo = s(&demo_capture());
    let o = leakscope(&["rank", &demo, "--first", "20s", "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["schema_version"], 3);
    let heap = &r["sections"][0];
    assert!(
        heap["profiles"].as_u64().unwrap() < 12,
        "{}",
        heap["profiles"]
    );
    let findings = heap["findings"].as_array().unwrap();
    assert!(
        findings.iter().all(|f| f["verdict"] != "leak"),
        "{findings:?}"
    );
    let growing: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["verdict"] == "growing")
        .collect();
    assert!(!growing.is_empty(), "{findings:?}");
    for f in &growing {
        assert_eq!(f["reason_code"], "too-early", "{f}");
        assert_eq!(f["shortfall"]["code"], "few-observations", "{f}");
        assert!(f["record_more_hours"].as_f64().unwrap() > 0.0, "{f}");
    }
    let table = leakscope(&["rank", &demo, "--first", "20s"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("too early to tell") && text.contains("more"),
        "{text}"
    );
    // check on the heap (goroutines that the runtime's own leak detector reports are leaks
    // at once): growing is no failure by default; it is with --fail-on-growing.
    let o = leakscope(&["check", &demo, "--first", "20s", "--metric", "inuse_space"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = leakscope(&[
        "check",
        &demo,
        "--first",
        "20s",
        "--metric",
        "inuse_space",
        "--fail-on-growing",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("GROWING "));
    let o = leakscope(&["check", &demo]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
