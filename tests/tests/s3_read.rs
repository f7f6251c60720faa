//! `leakscope` commands reading `s3://BUCKET/PREFIX` captures in place, against a real
//! S3-compatible server: moto (PyPI `moto[server]`, in memory) with credential checks
//! turned on by `tests/scripts/moto_s3.py` (the same server as tests/tests/s3_upload.rs).
//! (a) `rank --format json` (by site and by stack), `check`, `sql --query top_growth` and
//! `export-pprof` give the same bytes from S3 as from the local copy, and an uncommitted set
//! in the bucket (files without a marker) changes nothing; the bytes read from S3 for one
//! `rank` are measured against the capture's size; (b) bad credentials, a missing bucket, a
//! prefix without a capture and an unreachable endpoint fail with one line naming the URL,
//! exit 2, no secret shown, in bounded time.
//! Needs python3 with moto[server] and boto3 (tests/run.sh installs them): with CI=true a
//! missing moto fails, elsewhere the tests skip loudly.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::*;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStoreExt;

const BUCKET: &str = "caps";

/// A moto S3 server on a free loopback port, with a bucket and one valid access key.
struct Moto {
    child: Child,
    port: u16,
    key: String,
    secret: String,
    /// moto's request log (one line per request, in the order served).
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts the server; None after [`require`] when moto is not installed.
    fn start_or_skip() -> Option<Moto> {
        let have = Command::new("python3")
            .args(["-c", "import moto.server, boto3, flask, werkzeug"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !require(
            have,
            "python3 with moto[server] (pip install 'moto[server]')",
        ) {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("python3")
            .arg(root().join("tests/scripts/moto_s3.py"))
            .args([&port.to_string(), BUCKET])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("starting moto");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("moto did not start within 60 s");
        let mut parts = line.split_whitespace();
        assert_eq!(parts.next(), Some("READY"), "moto said {line:?}");
        let key = parts.next().unwrap().to_string();
        let secret = parts.next().unwrap().to_string();
        Some(Moto {
            child,
            port,
            key,
            secret,
            _log: log,
        })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The recorder's environment: this server's valid credentials, nothing else of AWS.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    fn store(&self) -> object_store::aws::AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(&self.key)
            .with_secret_access_key(&self.secret)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every file below `dir`, as (capture-relative `/` path, absolute path), sorted.
fn files_below(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, PathBuf)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                out.push((rel, p));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A local copy of the demo capture with commit markers (as the recorder writes today),
/// in `tmp/cap`, uploaded file by file below `s3://caps/team/cap`.
fn upload_demo(moto: &Moto, tmp: &Path) -> (PathBuf, String) {
    let local = tmp.join("cap");
    std::fs::create_dir_all(&local).unwrap();
    for (rel, p) in files_below(&demo_capture()) {
        let to = local.join(&rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(p, to).unwrap();
    }
    leakscope_capture::segment::ensure_commit_markers(&local).unwrap();
    let store = moto.store();
    runtime().block_on(async {
        for (rel, p) in files_below(&local) {
            let key = object_store::path::Path::from(format!("team/cap/{rel}"));
            store
                .put(&key, std::fs::read(p).unwrap().into())
                .await
                .unwrap();
        }
    });
    (local, format!("s3://{BUCKET}/team/cap"))
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Runs `leakscope ARGS` with `env` (and `--s3-endpoint` when given).
fn analyzer(args: &[&str], endpoint: Option<&str>, env: &[(&'static str, String)]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    if let Some(e) = endpoint {
        all.extend(["--s3-endpoint", e]);
    }
    run_env(
        &bin("leakscope"),
        &all,
        &env_refs(env),
        Duration::from_secs(120),
    )
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success() || o.status.code() == Some(1),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Runs the same command on the local copy and on S3: stdout (and exit status) must be
/// equal once the local path is written as the URL.
fn assert_same(moto: &Moto, local: &Path, url: &str, args: &[&str]) {
    assert_same_with(moto, local, url, args, &[]);
}

/// [`assert_same`] with `remote_args` added to the S3 run only (`--cluster URL`, say).
fn assert_same_with(moto: &Moto, local: &Path, url: &str, args: &[&str], remote_args: &[&str]) {
    let env = moto.env();
    let endpoint = moto.endpoint();
    let with = |cap: &str| -> Vec<String> {
        args.iter()
            .map(|a| {
                if *a == "CAP" {
                    cap.to_string()
                } else {
                    a.to_string()
                }
            })
            .collect()
    };
    let l = with(local.to_str().unwrap());
    let mut r = with(url);
    r.extend(remote_args.iter().map(|a| a.to_string()));
    let lo = analyzer(&l.iter().map(String::as_str).collect::<Vec<_>>(), None, &[]);
    let ro = analyzer(
        &r.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(&endpoint),
        &env,
    );
    let lt = ok(&lo, &format!("local {args:?}")).replace(local.to_str().unwrap(), url);
    let rt = ok(&ro, &format!("s3 {args:?}"));
    assert_eq!(lo.status.code(), ro.status.code(), "{args:?}: exit status");
    assert!(!lt.is_empty(), "{args:?}: no output");
    assert_eq!(lt, rt, "{args:?}: S3 output differs from local");
}

/// A Ballista cluster reads S3 captures in place: the scheduler lists, and both executors
/// read, the segments with S3 stores of their own (this server's endpoint and credentials,
/// given to them as to the client). `rank --cluster` by site and by stack and `sql
/// --cluster` on the S3 capture give the bytes the local copy gives in one process.
#[test]
fn cluster_reads_s3_captures_like_local_ones() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (local, url) = upload_demo(&moto, tmp.path());
    let (env, endpoint) = (moto.env(), moto.endpoint());
    let mut cluster = Cluster::start_with(&["--s3-endpoint", &endpoint], &env_refs(&env));
    let on_cluster = ["--cluster", cluster.url.as_str()];
    for args in [
        &["rank", "CAP", "--format", "json"][..],
        &["rank", "CAP", "--format", "json", "--by", "stack"],
        &["sql", "CAP", "--query", "top_growth", "--format", "csv"],
        &[
            "sql",
            "CAP",
            "SELECT kind, count(*) AS n, sum(inuse_bytes) AS b FROM samples GROUP BY kind \
             ORDER BY kind",
            "--format",
            "csv",
        ],
    ] {
        assert_same_with(&moto, &local, &url, args, &on_cluster);
    }
    cluster.assert_running();
}

#[test]
fn commands_read_s3_captures_like_local_ones() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (local, url) = upload_demo(&moto, tmp.path());
    // A set being uploaded (no marker yet) must be ignored: copies of a committed set's
    // profiles and samples under a new stem would double every value if read.
    let store = moto.store();
    runtime().block_on(async {
        for (rel, p) in files_below(&local) {
            if rel.contains("20261128T064229.336Z-000000-6eb28aa6")
                && (rel.starts_with("samples/") || rel.starts_with("profiles/"))
            {
                let rel = rel.replace(
                    "20261128T064229.336Z-000000-6eb28aa6",
                    "20261128T070000.000Z-000000-0badf00d",
                );
                let key = object_store::path::Path::from(format!("team/cap/{rel}"));
                store
                    .put(&key, std::fs::read(p).unwrap().into())
                    .await
                    .unwrap();
            }
        }
    });
    for args in [
        &["rank", "CAP", "--format", "json"][..],
        &["rank", "CAP", "--format", "json", "--by", "stack"],
        &["rank", "CAP"],
        &["check", "CAP"],
        &["sql", "CAP", "--query", "top_growth", "--format", "csv"],
        &[
            "sql",
            "CAP",
            "SELECT count(*) AS n, sum(inuse_bytes) AS b FROM samples",
            "--format",
            "csv",
        ],
    ] {
        assert_same(&moto, &local, &url, args);
    }
    // watch --once: the same verdict (here: a leak whose alert cannot be posted, exit 3).
    let hook = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/")
    };
    let lw = analyzer(
        &[
            "watch",
            local.to_str().unwrap(),
            "--once",
            "--webhook",
            &hook,
        ],
        None,
        &[],
    );
    let rw = analyzer(
        &["watch", &url, "--once", "--webhook", &hook],
        Some(&moto.endpoint()),
        &moto.env(),
    );
    assert_eq!(
        lw.status.code(),
        rw.status.code(),
        "watch: local {} / s3 {}",
        String::from_utf8_lossy(&lw.stderr),
        String::from_utf8_lossy(&rw.stderr)
    );
    assert!(!String::from_utf8_lossy(&rw.stderr).contains("panicked"));

    // report: written from S3 too (its HTML holds the command line, so not compared).
    let html = tmp.path().join("s3-report.html");
    ok(
        &analyzer(
            &["report", &url, "-o", html.to_str().unwrap()],
            Some(&moto.endpoint()),
            &moto.env(),
        ),
        "s3 report",
    );
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        text.contains(&url) && text.len() > 10_000,
        "report lacks the capture"
    );

    // export-pprof: the same profile file, byte for byte.
    let lp = tmp.path().join("local.pb.gz");
    let rp = tmp.path().join("s3.pb.gz");
    ok(
        &analyzer(
            &[
                "export-pprof",
                local.to_str().unwrap(),
                "-o",
                lp.to_str().unwrap(),
            ],
            None,
            &[],
        ),
        "local export",
    );
    ok(
        &analyzer(
            &["export-pprof", &url, "-o", rp.to_str().unwrap()],
            Some(&moto.endpoint()),
            &moto.env(),
        ),
        "s3 export",
    );
    assert_eq!(
        std::fs::read(&lp).unwrap(),
        std::fs::read(&rp).unwrap(),
        "export-pprof differs"
    );

    // Bytes read from S3 by one rank, against the capture's Parquet bytes.
    let mut env = moto.env();
    env.push(("RUST_LOG", "leakscope::source::remote=debug".into()));
    let o = analyzer(
        &["rank", &url, "--format", "json"],
        Some(&moto.endpoint()),
        &env,
    );
    ok(&o, "rank with stats");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("bytes from S3"))
        .unwrap_or_else(|| panic!("no read statistics: {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "read").unwrap();
    let read: u64 = words[at + 1].parse().unwrap();
    let requests: u64 = words[at + 6].parse().unwrap();
    let parquet: u64 = files_below(&local)
        .iter()
        .filter(|(r, _)| r.ends_with(".parquet"))
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .sum();
    let ratio = read as f64 / parquet as f64;
    println!(
        "rank from S3 read {read} bytes in {requests} requests; the capture's Parquet files hold {parquet} bytes (ratio {ratio:.3})"
    );
    // The demo's files are 4-43 KiB: each footer tail (16 KiB) is read when the capture is
    // opened and again by DataFusion, so this tiny capture reads more than its size; see
    // the synthetic capture below for segments of a realistic size.
    assert!(read > 0 && read < parquet * 4, "read {read} of {parquet}");
}

#[test]
fn bad_credentials_bucket_prefix_or_endpoint_fail_on_one_line_with_status_2() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_local, url) = upload_demo(&moto, tmp.path());
    let endpoint = moto.endpoint();
    let good = moto.env();
    let mut bad_secret = good.clone();
    bad_secret[1].1 = "hunter2-not-the-secret".into();
    let mut bad_key = good.clone();
    bad_key[0].1 = "AKIAWRONGWRONGWRONG1".into();
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    };
    let missing_bucket = "s3://no-such-bucket/team/cap".to_string();
    let empty_prefix = format!("s3://{BUCKET}/nothing/here");
    let u = url.as_str();
    // (what, capture URL, environment, words the one-line error must name)
    type Case<'a> = (&'a str, &'a str, &'a [(&'static str, String)], Vec<&'a str>);
    let cases: Vec<Case> = vec![
        ("bad secret", u, &bad_secret, vec![u]),
        ("bad key id", u, &bad_key, vec![u]),
        (
            "missing bucket",
            &missing_bucket,
            &good,
            vec!["no-such-bucket"],
        ),
        (
            "no capture",
            &empty_prefix,
            &good,
            vec![&empty_prefix, "manifest.json"],
        ),
        (
            "bad url",
            "s3://Bad_Bucket/x",
            &good,
            vec!["s3://Bad_Bucket/x"],
        ),
    ];
    for (what, cap, env, needles) in cases {
        for cmd in [
            &["rank", cap][..],
            &["check", cap],
            &["sql", cap, "--query", "top_growth"],
        ] {
            let start = Instant::now();
            let o = analyzer(cmd, Some(&endpoint), env);
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{what}: took {:?}",
                start.elapsed()
            );
            assert_eq!(
                o.status.code(),
                Some(2),
                "{what} {cmd:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_one_line_error(&o, &needles);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(
                !stderr.contains(&moto.secret) && !stderr.contains("hunter2"),
                "{what}: secret shown: {stderr}"
            );
        }
    }
    // Unreachable endpoint: bounded by the store's timeouts and retries.
    let start = Instant::now();
    let o = analyzer(&["rank", &url], Some(&dead), &good);
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "unreachable: took {:?}",
        start.elapsed()
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_one_line_error(&o, &[url.as_str()]);
    // A malformed endpoint.
    let o = analyzer(&["rank", &url], Some("ftp://x"), &good);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["--s3-endpoint"]);
}

/// The bytes read from S3 by `rank` of the capture at `url` (from the analyzer's debug log).
fn bytes_read(moto: &Moto, url: &str, by: &str) -> (u64, u64, String) {
    let mut env = moto.env();
    env.push(("RUST_LOG", "leakscope::source::remote=debug".into()));
    let o = analyzer(
        &["rank", url, "--format", "json", "--by", by],
        Some(&moto.endpoint()),
        &env,
    );
    let out = ok(&o, "rank with stats");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("bytes from S3"))
        .unwrap_or_else(|| panic!("no read statistics: {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "read").unwrap();
    (
        words[at + 1].parse().unwrap(),
        words[at + 6].parse().unwrap(),
        out,
    )
}

/// On a synthetic capture of 300k sample rows (segments of a few MiB), `rank` from S3 gives
/// the local ranking and reads less than the capture's Parquet bytes: the scans fetch the
/// columns they need, DataFusion prunes and range-reads.
#[test]
fn rank_of_a_larger_capture_reads_less_than_the_capture_from_s3() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("big");
    let o = run(
        Path::new(env!("CARGO_BIN_EXE_leakscope-synth")),
        &[
            "--out",
            local.to_str().unwrap(),
            "--profiles",
            "600",
            "--stacks",
            "500",
            "--rotate-size",
            "2MiB",
        ],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let store = moto.store();
    runtime().block_on(async {
        for (rel, p) in files_below(&local) {
            let key = object_store::path::Path::from(format!("synth/big/{rel}"));
            store
                .put(&key, std::fs::read(p).unwrap().into())
                .await
                .unwrap();
        }
    });
    let url = format!("s3://{BUCKET}/synth/big");
    let parquet: u64 = files_below(&local)
        .iter()
        .filter(|(r, _)| r.ends_with(".parquet"))
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .sum();
    for by in ["site", "stack"] {
        let (read, requests, remote) = bytes_read(&moto, &url, by);
        let lo = analyzer(
            &[
                "rank",
                local.to_str().unwrap(),
                "--format",
                "json",
                "--by",
                by,
            ],
            None,
            &[],
        );
        let expect = ok(&lo, "local rank").replace(local.to_str().unwrap(), &url);
        assert_eq!(
            expect, remote,
            "rank --by {by}: S3 output differs from local"
        );
        let ratio = read as f64 / parquet as f64;
        println!(
            "synthetic capture, rank --by {by} from S3 read {read} bytes in {requests} requests; its Parquet files hold {parquet} bytes (ratio {ratio:.3})"
        );
        assert!(ratio < 1.0, "read {read} of {parquet}");
    }
}

/// `fleet rank s3://BUCKET/PREFIX` finds every capture below the prefix (one listing) and
/// ranks them like the same captures in a local directory; a prefix without captures is a
/// one-line error naming it.
#[test]
fn fleet_rank_reads_every_capture_below_an_s3_prefix() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (local, url) = upload_demo(&moto, tmp.path());
    // A second copy, one level deeper, locally and in the bucket.
    let fleet = tmp.path().join("fleet");
    let store = moto.store();
    for (rel, p) in files_below(&local) {
        for to in [
            fleet.join("cap").join(&rel),
            fleet.join("other/cap2").join(&rel),
        ] {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&p, to).unwrap();
        }
    }
    runtime().block_on(async {
        for (rel, p) in files_below(&local) {
            let key = object_store::path::Path::from(format!("team/other/cap2/{rel}"));
            store
                .put(&key, std::fs::read(p).unwrap().into())
                .await
                .unwrap();
        }
    });
    assert!(url.ends_with("/team/cap"));
    let prefix = format!("s3://{BUCKET}/team");
    let env = moto.env();
    let endpoint = moto.endpoint();
    fn args(loc: &str) -> Vec<&str> {
        vec!["fleet", "rank", loc, "--format", "json"]
    }
    let remote = ok(
        &analyzer(&args(&prefix), Some(&endpoint), &env),
        "fleet rank s3",
    );
    let local_out = ok(
        &analyzer(&args(fleet.to_str().unwrap()), None, &[]),
        "fleet rank local",
    );
    let r: serde_json::Value = serde_json::from_str(&remote).unwrap();
    let l: serde_json::Value = serde_json::from_str(&local_out).unwrap();
    assert_eq!(r["captures_found"], 2, "{r:#}");
    assert_eq!(r["captures_ranked"], 2, "{r:#}");
    assert_eq!(r["units"], l["units"]);
    assert_eq!(r["sites"], l["sites"]);
    assert_eq!(r["location"], prefix);

    let empty = format!("s3://{BUCKET}/nothing-here");
    let out = analyzer(&args(&empty), Some(&endpoint), &env);
    assert_eq!(out.status.code(), Some(2));
    assert_one_line_error(&out, &["nothing-here", "no captures found"]);
}
