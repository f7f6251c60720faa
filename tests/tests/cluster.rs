//! `leakscope sql --cluster` and `rank --cluster` on a real Ballista cluster: one
//! `leakscope-scheduler` and two `leakscope-executor` processes on free local ports answer
//! every shipped query, and ad-hoc queries with leakscope's SQL functions, exactly as the
//! local `leakscope sql` does (on the demo capture, a synthetic capture with several segment
//! sets and dates, and a capture with an uncommitted set); the cluster's ranking is the local
//! one byte for byte; an unreachable scheduler is a one-line error in bounded time.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::{free_port, Cluster};
use common::*;

fn run_sql(cap: &Path, cluster: Option<&str>, sql: &str, format: &str) -> String {
    let cap = cap.display().to_string();
    let mut args = vec!["sql", cap.as_str(), sql, "--format", format];
    if let Some(url) = cluster {
        args.extend(["--cluster", url]);
    }
    let o = leakscope(&args);
    let where_ = cluster.unwrap_or("local");
    assert!(
        o.status.success(),
        "{where_}: {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Compares local and cluster output of `sql` on `cap`; rows sorted first when the query
/// fixes no order. Returns the number of data rows.
fn same_output(cap: &Path, url: &str, sql: &str, format: &str, ordered: bool) -> usize {
    let local = run_sql(cap, None, sql, format);
    let remote = run_sql(cap, Some(url), sql, format);
    let (mut l, mut r): (Vec<&str>, Vec<&str>) =
        (local.lines().collect(), remote.lines().collect());
    if !ordered {
        l.sort();
        r.sort();
    }
    assert_eq!(
        l,
        r,
        "{} {sql} ({format}): cluster output differs from local",
        cap.display()
    );
    l.len().saturating_sub(1)
}

fn has_order_by(sql: &str) -> bool {
    sql.to_ascii_uppercase().contains("ORDER BY")
}

/// Ad-hoc queries over every table and view, using every leakscope SQL function; none of
/// them fixes the row order unless it says ORDER BY.
const AD_HOC: &[&str] = &[
    "SELECT stack_id, leaf_function(frames) AS leaf, user_frame(frames) AS site, \
     user_function(frames) AS site_function, blocked_in(frames) AS blocked, \
     render_stack(frames) AS stack_text FROM stacks",
    // One point per profile, and raw samples (many points share an x).
    "WITH per AS (SELECT i.site, s.time, SUM(s.inuse_bytes) AS bytes FROM samples s \
     JOIN stack_info i ON s.stack_id = i.stack_id WHERE s.kind = 'heap' GROUP BY i.site, s.time) \
     SELECT site, theil_sen(to_unixtime(time) / 3600.0, CAST(bytes AS DOUBLE)) AS slope, \
     mann_kendall_p(to_unixtime(time) / 3600.0, CAST(bytes AS DOUBLE)) AS p, COUNT(*) AS n \
     FROM per GROUP BY site",
    "SELECT i.site, theil_sen(to_unixtime(s.time) / 3600.0, CAST(s.inuse_bytes AS DOUBLE)) AS slope, \
     mann_kendall_p(to_unixtime(s.time) / 3600.0, CAST(s.inuse_bytes AS DOUBLE)) AS p, \
     COUNT(*) AS n FROM samples s JOIN stack_info i ON s.stack_id = i.stack_id \
     WHERE s.kind = 'heap' GROUP BY i.site",
    "SELECT site_function, format_bytes(CAST(SUM(inuse_bytes) AS DOUBLE)) AS b FROM sample_stacks \
     WHERE kind = 'heap' GROUP BY site_function ORDER BY SUM(inuse_bytes) DESC, site_function",
    "SELECT capture, date, kind, COUNT(*) AS n, SUM(inuse_bytes) AS bytes FROM samples \
     GROUP BY capture, date, kind ORDER BY capture, date, kind",
    "SELECT COUNT(*) AS n FROM samples WHERE date = '1999-01-01'",
    "SELECT (SELECT COUNT(*) FROM profiles) AS profiles, (SELECT COUNT(*) FROM process) AS process, \
     (SELECT COUNT(*) FROM scrapes) AS scrapes, (SELECT COUNT(*) FROM stacks) AS stacks",
    "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns \
     WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
];

fn shipped_queries() -> Vec<String> {
    let o = leakscope(&["sql", "--list"]);
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

fn query_text(name: &str) -> String {
    std::fs::read_to_string(root().join("queries").join(format!("{name}.sql"))).unwrap()
}

/// Runs the shipped query `name` on `cap` in `format`, locally or on the cluster at `url`.
fn shipped(cap: &str, name: &str, format: &str, url: Option<&str>) -> std::process::Output {
    let mut args = vec!["sql", cap, "--query", name, "--format", format];
    if let Some(u) = url {
        args.extend(["--cluster", u]);
    }
    leakscope(&args)
}

/// Every shipped query (by --query, in each of `formats`) and every ad-hoc query.
fn check_capture(cap: &Path, url: &str, formats: &[&str]) {
    let queries = shipped_queries();
    assert!(queries.len() >= 6, "{queries:?}");
    for q in &queries {
        let ordered = has_order_by(&query_text(q));
        let cap_s = cap.display().to_string();
        for &format in formats {
            let local = shipped(&cap_s, q, format, None);
            let remote = shipped(&cap_s, q, format, Some(url));
            assert!(
                local.status.success(),
                "{q}: {}",
                String::from_utf8_lossy(&local.stderr)
            );
            assert!(
                remote.status.success(),
                "{q} on the cluster: {}",
                String::from_utf8_lossy(&remote.stderr)
            );
            let (l, r) = (
                String::from_utf8_lossy(&local.stdout),
                String::from_utf8_lossy(&remote.stdout),
            );
            if ordered {
                assert_eq!(
                    l, r,
                    "{q} ({format}) on {cap_s}: cluster output differs from local"
                );
            } else {
                let (mut l, mut r): (Vec<&str>, Vec<&str>) =
                    (l.lines().collect(), r.lines().collect());
                l.sort();
                r.sort();
                assert_eq!(l, r, "{q} ({format}) on {cap_s}");
            }
            if format == "csv" {
                eprintln!(
                    "{cap_s}: {q}: {} rows, same on the cluster",
                    l.lines().count().saturating_sub(1)
                );
            }
        }
    }
    for sql in AD_HOC {
        let n = same_output(cap, url, sql, "csv", has_order_by(sql));
        eprintln!("{}: {} rows, same on the cluster: {sql}", cap.display(), n);
    }
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

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn synthetic_capture(dir: &Path) -> PathBuf {
    let cap = dir.join("synth");
    let synth = PathBuf::from(env!("CARGO_BIN_EXE_leakscope-synth"));
    let args = [
        "--out",
        cap.to_str().unwrap(),
        "--profiles",
        "40",
        "--stacks",
        "150",
        "--runs",
        "2",
        "--rotate-size",
        "256KiB",
        "--start",
        "2026-01-05T23:55:00Z",
        "--writers",
        "2",
    ];
    let o = run(&synth, &args, Duration::from_secs(120));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    cap
}

#[test]
fn the_cluster_answers_like_the_local_engine() {
    let cluster = Cluster::start();
    let url = cluster.url.clone();
    check_capture(&demo_capture(), &url, &["csv", "table", "json"]);

    let dir = tempfile::tempdir().unwrap();
    let synth = synthetic_capture(dir.path());
    check_capture(&synth, &url, &["csv"]);

    // A set without its commit marker is left out on the cluster too.
    let cap = dir.path().join("demo");
    copy_dir(&demo_capture(), &cap);
    leakscope_capture::segment::ensure_commit_markers(&cap).unwrap();
    let counts = "SELECT (SELECT COUNT(*) FROM profiles) AS p, (SELECT COUNT(*) FROM samples) AS s";
    let before = run_sql(&cap, Some(&url), counts, "csv");
    let mut segs = walk(&cap.join("samples"));
    segs.sort();
    let stem = segs[1].file_stem().unwrap().to_str().unwrap().to_string();
    std::fs::remove_file(cap.join("_commits").join(format!("{stem}.commit"))).unwrap();
    let local = run_sql(&cap, None, counts, "csv");
    let remote = run_sql(&cap, Some(&url), counts, "csv");
    assert_eq!(local, remote);
    assert_ne!(
        before, remote,
        "the uncommitted set is visible on the cluster"
    );

    // Every process is still up (none crashed on a query).
    let mut cluster = cluster;
    cluster.assert_running();
}

/// `leakscope rank CAPTURES ARGS --format json`, locally or on the cluster at `url`: the
/// exit code and the JSON.
fn rank_json(caps: &[&Path], args: &[&str], url: Option<&str>) -> (Option<i32>, String) {
    let caps: Vec<String> = caps.iter().map(|c| c.display().to_string()).collect();
    let mut all: Vec<&str> = vec!["rank"];
    all.extend(caps.iter().map(String::as_str));
    all.extend(args);
    all.extend(["--format", "json"]);
    if let Some(u) = url {
        all.extend(["--cluster", u]);
    }
    let o = leakscope(&all);
    assert!(
        o.status.code() == Some(0),
        "{all:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), String::from_utf8(o.stdout).unwrap())
}

/// `rank --cluster` reads and aggregates the sample rows on the executors and fits here:
/// the ranking JSON is byte-identical to the local one for every grouping, with custom
/// `--skip` rules (decided here, shipped with the query) and `--first`, on one capture and
/// on two at once; `check` gives the same verdict and exit code.
#[test]
fn rank_on_the_cluster_is_the_local_ranking() {
    let cluster = Cluster::start();
    let url = cluster.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let synth = synthetic_capture(dir.path());
    let demo = demo_capture();
    let cases: Vec<(Vec<&Path>, Vec<&str>)> = vec![
        (vec![&demo], vec!["--by", "site"]),
        (vec![&demo], vec!["--by", "stack"]),
        (vec![&demo], vec!["--by", "function"]),
        (vec![&demo], vec!["--skip", "main.handle", "--first", "1m"]),
        (vec![&synth], vec!["--by", "site"]),
        (vec![&synth], vec!["--by", "stack"]),
        (vec![&demo, &synth], vec!["--by", "site"]),
    ];
    let mut outputs = Vec::new();
    for (caps, args) in &cases {
        let local = rank_json(caps, args, None);
        let remote = rank_json(caps, args, Some(url));
        let v: serde_json::Value = serde_json::from_str(&local.1).expect("rank JSON");
        let findings = v["findings"].as_array().map_or(0, Vec::len);
        assert!(findings > 0, "{args:?}: no findings to compare");
        assert!(
            local == remote,
            "{caps:?} {args:?}: the cluster's ranking differs from the local one"
        );
        eprintln!("{caps:?} {args:?}: {findings} findings, byte-identical on the cluster");
        outputs.push(local.1);
    }
    // The custom rule and --first did change the ranking (so they reached the cluster's
    // plan rather than being ignored on both sides).
    assert_ne!(outputs[0], outputs[3], "--skip/--first changed nothing");

    let cap = demo.display().to_string();
    let local = leakscope(&["check", &cap]);
    let remote = leakscope(&["check", &cap, "--cluster", url]);
    assert_eq!(local.status.code(), remote.status.code());
    assert_eq!(local.stdout, remote.stdout);
    assert_eq!(local.status.code(), Some(1), "the demo leaks");

    // `report --cluster` takes its memory timeline from the totals the cluster's scan
    // summed per profile: the same report as in process, apart from the command line.
    let html = |extra: &[&str]| {
        let out = dir.path().join(format!("report{}.html", extra.len()));
        let mut args = vec!["report", cap.as_str(), "-o", out.to_str().unwrap()];
        args.extend(extra);
        let o = leakscope(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let cut = text
            .find("<section id=\"command\">")
            .expect("command section");
        text[..cut].to_string()
    };
    assert!(
        html(&[]) == html(&["--cluster", url]),
        "the cluster's report differs from the local one"
    );

    // `fleet rank --cluster` scans every capture of a fleet on the executors: the same
    // fleet JSON (units, outliers, spreads) as in process.
    let fleet = dir.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    copy_dir(&demo, &fleet.join("demo"));
    copy_dir(&synth, &fleet.join("synth"));
    let loc = fleet.display().to_string();
    let args = ["fleet", "rank", &loc, "--by", "capture", "--format", "json"];
    let local = leakscope(&args);
    let mut on_cluster = args.to_vec();
    on_cluster.extend(["--cluster", url]);
    let remote = leakscope(&on_cluster);
    assert_eq!(
        local.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&local.stdout).expect("fleet JSON");
    assert_eq!(v["captures_ranked"], 2, "{v}");
    assert!(
        local.stdout == remote.stdout && local.status.code() == remote.status.code(),
        "fleet rank differs on the cluster: {}",
        String::from_utf8_lossy(&remote.stderr)
    );
}

#[test]
fn an_unreachable_scheduler_is_a_one_line_error() {
    let port = free_port();
    let url = format!("df://127.0.0.1:{port}");
    let started = Instant::now();
    let o = leakscope(&[
        "sql",
        &demo_capture().display().to_string(),
        "SELECT COUNT(*) AS n FROM samples",
        "--cluster",
        &url,
    ]);
    assert_one_line_error(&o, &[&url, "cannot reach"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let o = leakscope(&[
        "sql",
        &demo_capture().display().to_string(),
        "SELECT 1 AS x",
        "--cluster",
        "http://127.0.0.1:1",
    ]);
    assert_one_line_error(&o, &["http://127.0.0.1:1", "df://HOST:PORT"]);

    let o = leakscope(&[
        "fleet",
        "rank",
        &demo_capture().display().to_string(),
        "--cluster",
        &url,
    ]);
    assert_one_line_error(&o, &[&url, "cannot reach"]);
}
