//! `leakscope-recorder record --upload s3://BUCKET/PREFIX` against a real S3-compatible
//! server: moto (PyPI `moto[server]`, in memory) with credential checks turned on by
//! `tests/scripts/moto_s3.py`. The remote capture is read back through the S3 API with the
//! capture crate's `remote::list_remote_capture` (what the analyzer will use).
//! (a) a recording's committed sets and manifest arrive byte-identical; (b) SIGKILLed
//! recorders restarted on the same `--out`/`--upload` leave no gap and no duplicate, and
//! a remote marker never lacks one of its files; (c) bad credentials, a missing bucket, an
//! unreachable endpoint and a malformed URL fail fast with one line; (d) while the store is
//! down, `--retain` keeps every set not uploaded and the exit says what is pending.
//! Needs python3 with moto[server] and boto3 (tests/run.sh installs them): with CI=true a
//! missing moto fails, elsewhere the tests skip loudly.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use leakscope_capture::remote::{list_remote_capture, RemoteListing, RemoteUrl};
use leakscope_capture::segment::{committed_sets, relative_key};
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
    log: tempfile::NamedTempFile,
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
            log,
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

    /// Lists the remote capture at `url` through the S3 API.
    fn list(&self, url: &RemoteUrl) -> RemoteListing {
        let store = self.store();
        runtime()
            .block_on(list_remote_capture(&store, url))
            .unwrap()
    }

    /// The bytes of `key`.
    fn get(&self, key: &object_store::path::Path) -> Vec<u8> {
        let store = self.store();
        runtime().block_on(async {
            store
                .get(key)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        })
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

    /// Asserts from moto's request log that every successful marker upload below `prefix`
    /// came after the successful uploads of all of its set's data files (`files`: stem ->
    /// relative paths), and returns how many markers were uploaded.
    fn assert_markers_last(
        &self,
        prefix: &str,
        files: &BTreeMap<String, BTreeMap<String, u64>>,
    ) -> usize {
        let log = std::fs::read_to_string(self.log.path()).unwrap();
        let puts: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"PUT /") && l.contains("\" 200 "))
            .collect();
        let is_put = |l: &str, rel: &str| {
            let encoded = format!("PUT /{BUCKET}/{prefix}/{} ", rel.replace('=', "%3D"));
            l.contains(&encoded) || l.contains(&format!("PUT /{BUCKET}/{prefix}/{rel} "))
        };
        let mut markers = 0;
        for (stem, rels) in files {
            let marker_rel = format!("_commits/{stem}.commit");
            let Some(marker) = puts.iter().position(|l| is_put(l, &marker_rel)) else {
                continue;
            };
            markers += 1;
            for rel in rels.keys() {
                // The last upload of each file, even one repeated after a kill.
                match puts.iter().rposition(|l| is_put(l, rel)) {
                    Some(i) => assert!(i < marker, "{rel} was uploaded after its marker"),
                    None => panic!("marker of {stem} uploaded, {rel} never"),
                }
            }
        }
        markers
    }

    /// Stores `bytes` at `key` (as an interrupted upload would have left them).
    fn put(&self, key: &object_store::path::Path, bytes: Vec<u8>) {
        let store = self.store();
        runtime().block_on(store.put(key, bytes.into())).unwrap();
    }

    /// How many successful PUTs of `rel` below `prefix` moto has served.
    fn put_count(&self, prefix: &str, rel: &str) -> usize {
        let log = std::fs::read_to_string(self.log.path()).unwrap();
        let encoded = format!("PUT /{BUCKET}/{prefix}/{} ", rel.replace('=', "%3D"));
        let plain = format!("PUT /{BUCKET}/{prefix}/{rel} ");
        log.lines()
            .filter(|l| (l.contains(&encoded) || l.contains(&plain)) && l.contains("\" 200 "))
            .count()
    }

    /// Stops the server (the store becomes unreachable).
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Local committed sets: stem -> (relative path -> size).
fn local_sets(out: &Path) -> BTreeMap<String, BTreeMap<String, u64>> {
    committed_sets(out)
        .unwrap()
        .into_iter()
        .map(|set| {
            let files = set
                .files
                .iter()
                .map(|f| (relative_key(out, &f.path).unwrap(), f.bytes))
                .collect();
            (set.stem, files)
        })
        .collect()
}

/// Remote committed sets: stem -> (relative path -> size).
fn remote_sets(
    listing: &RemoteListing,
    url: &RemoteUrl,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let prefix = format!("{}/", url.prefix);
    listing
        .committed
        .iter()
        .map(|set| {
            let files = set
                .files
                .iter()
                .map(|m| {
                    let rel = m
                        .location
                        .as_ref()
                        .strip_prefix(&prefix)
                        .unwrap()
                        .to_string();
                    (rel, m.size)
                })
                .collect();
            (set.stem.clone(), files)
        })
        .collect()
}

/// The remote capture equals the local one: the same committed sets with the same files,
/// byte-identical, no incomplete set, and the same manifest.
fn assert_remote_equals_local(moto: &Moto, url: &RemoteUrl, out: &Path) {
    let listing = moto.list(url);
    let local = local_sets(out);
    assert!(!local.is_empty(), "nothing committed locally");
    assert!(
        listing.incomplete.is_empty(),
        "remote sets without their marker: {:?}",
        listing.incomplete
    );
    assert_eq!(remote_sets(&listing, url), local, "remote sets differ");
    for rel in local.values().flat_map(|files| files.keys()) {
        let remote = moto.get(&url.key(rel));
        let here = std::fs::read(out.join(rel)).unwrap();
        assert!(remote == here, "{rel}: remote bytes differ");
    }
    assert!(listing.manifest.is_some(), "no remote manifest.json");
    let manifest = moto.get(&url.key("manifest.json"));
    assert_eq!(
        String::from_utf8_lossy(&manifest),
        std::fs::read_to_string(out.join("manifest.json")).unwrap(),
        "remote manifest differs"
    );
}

/// (a) Record the leaky service with `--upload`; after the stop the prefix holds exactly
/// the locally committed sets, byte-identical, each marker written after its files, and
/// the manifest; neither the manifest nor the log holds a credential.
#[test]
fn a_recording_arrives_byte_identical_with_its_manifest() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let svc = Service::start(&svc_bin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let url = RemoteUrl::parse("s3://caps/team/api").unwrap();
    let endpoint = moto.endpoint();
    let env = moto.env();
    let args = [
        "record",
        "--target",
        &svc.url(),
        "--out",
        s(&out),
        "--interval",
        "200ms",
        "--rotate",
        "1s",
        "--duration",
        "5s",
        "--upload",
        "s3://caps/team/api/",
        "--s3-endpoint",
        &endpoint,
    ];
    let o = run_env(&recorder(), &args, &env_refs(&env), Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "record failed:\n{stderr}");
    assert!(
        stderr.contains("every committed segment set is in s3://caps/team/api"),
        "{stderr}"
    );
    assert_remote_equals_local(&moto, &url, &out);
    let listing = moto.list(&url);
    assert!(
        listing.committed.len() >= 3,
        "{} sets",
        listing.committed.len()
    );
    for set in &listing.committed {
        let newest = set.files.iter().map(|f| f.last_modified).max().unwrap();
        assert!(
            set.marker.last_modified >= newest,
            "{}: marker before a file",
            set.stem
        );
    }
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m["options"]["upload"], "s3://caps/team/api/");
    for secret in [&moto.key, &moto.secret] {
        assert!(
            !manifest.contains(secret.as_str()),
            "credential in the manifest"
        );
        assert!(!stderr.contains(secret.as_str()), "credential in the log");
    }
}

/// (b) SIGKILL the recorder at seeded moments while it records and uploads (a set every
/// 400 ms), restart it on the same `--out` and `--upload` each time. After every kill each
/// remote marker has every file of its set (the marker is written last); data files
/// without a marker belong to a locally committed set. After a clean final run the remote
/// holds every locally committed set exactly once, byte-identical: no gap, no duplicate.
#[test]
fn killed_recorders_resume_uploading_without_gaps_or_duplicates() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let svc = Service::start(&svc_bin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let url = RemoteUrl::parse("s3://caps/crash").unwrap();
    let endpoint = moto.endpoint();
    let env = moto.env();
    let target = svc.url();
    let args = |duration: Option<&'static str>| {
        let mut a = vec![
            "record",
            "--target",
            &target,
            "--out",
            s(&out),
            "--interval",
            "100ms",
            "--rotate",
            "400ms",
            "--upload",
            "s3://caps/crash",
            "--s3-endpoint",
            &endpoint,
        ];
        if let Some(d) = duration {
            a.extend(["--duration", d]);
        }
        a
    };
    let mut seed: u64 = 0x005e_ed0f_5300;
    let mut uploaded_before_kill = 0;
    for round in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let r = Running::spawn_env(&recorder(), &args(None), &env_refs(&env));
        r.wait_for_line("recording", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("round {round}: recorder did not start:\n{}", r.stderr()));
        std::thread::sleep(Duration::from_millis(800 + seed % 1700));
        let stderr = r.stderr();
        r.kill9();
        assert!(!stderr.contains("error:"), "round {round}:\n{stderr}");
        let listing = moto.list(&url);
        let local = local_sets(&out);
        let remote = remote_sets(&listing, &url);
        for (stem, files) in &remote {
            assert_eq!(
                Some(files),
                local.get(stem),
                "round {round}: remote set {stem} has its marker but not exactly its files"
            );
        }
        for stem in &listing.incomplete {
            assert!(
                local.contains_key(stem),
                "round {round}: remote data of {stem}, which is not committed locally"
            );
        }
        assert!(
            remote.len() >= uploaded_before_kill,
            "round {round}: remote sets went from {uploaded_before_kill} to {}",
            remote.len()
        );
        uploaded_before_kill = remote.len();
        eprintln!(
            "round {round}: {} local sets, {} remote, {} incomplete remotely",
            local.len(),
            remote.len(),
            listing.incomplete.len()
        );
    }
    let o = run_env(
        &recorder(),
        &args(Some("2s")),
        &env_refs(&env),
        Duration::from_secs(90),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "final run failed:\n{stderr}");
    assert_remote_equals_local(&moto, &url, &out);
    let local = local_sets(&out);
    let markers = moto.assert_markers_last("crash", &local);
    assert_eq!(
        markers,
        local.len(),
        "a set was uploaded without a logged marker"
    );
}

/// A bad-input case: what, environment, `--upload`, `--s3-endpoint`, expected words.
type Case<'a> = (
    &'a str,
    Vec<(&'static str, String)>,
    &'a str,
    &'a str,
    Vec<&'a str>,
);

/// (c) Bad credentials, a wrong key id, a missing bucket, an unreachable endpoint and a
/// malformed URL: one error line naming the URL, exit 1, within seconds, before anything
/// is recorded (the target here does not even exist) and without the secret.
#[test]
fn bad_credentials_bucket_endpoint_or_url_fail_fast_on_one_line() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let endpoint = moto.endpoint();
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let good = moto.env();
    let with = |key: &str, secret: &str| {
        vec![
            ("AWS_ACCESS_KEY_ID", key.to_string()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    };
    let cases: Vec<Case> = vec![
        (
            "wrong secret",
            with(&moto.key, "not-the-secret-1234"),
            "s3://caps/x",
            &endpoint,
            vec!["s3://caps/x", "SignatureDoesNotMatch"],
        ),
        (
            "unknown key id",
            with("AKIAUNKNOWNKEY000000", &moto.secret),
            "s3://caps/x",
            &endpoint,
            vec!["s3://caps/x", "InvalidAccessKeyId"],
        ),
        (
            "missing bucket",
            good.clone(),
            "s3://no-such-bucket/x",
            &endpoint,
            vec!["s3://no-such-bucket/x", "NoSuchBucket"],
        ),
        (
            "unreachable endpoint",
            good.clone(),
            "s3://caps/x",
            &dead,
            vec!["s3://caps/x", &dead],
        ),
        (
            "malformed URL",
            good.clone(),
            "s3:/caps/x",
            &endpoint,
            vec!["s3:/caps/x", "expected s3://BUCKET/PREFIX"],
        ),
        (
            "credentials in the URL",
            good.clone(),
            "s3://AKIA:hunter2@caps/x",
            &endpoint,
            vec!["credentials do not belong in the URL"],
        ),
    ];
    let rec = recorder();
    for (what, env, url, ep, needles) in &cases {
        let out = dir.path().join(what.replace(' ', "-"));
        let started = Instant::now();
        let o = run_env(
            &rec,
            &[
                "record",
                "--target",
                "http://127.0.0.1:1",
                "--out",
                s(&out),
                "--upload",
                url,
                "--s3-endpoint",
                ep,
            ],
            &env_refs(env),
            Duration::from_secs(60),
        );
        let took = started.elapsed();
        eprintln!(
            "{what}: {took:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
        assert_one_line_error(&o, needles);
        assert_eq!(o.status.code(), Some(2), "{what}");
        assert!(took < Duration::from_secs(15), "{what}: took {took:?}");
        assert!(!out.exists(), "{what}: --out was created before the check");
        let stderr = String::from_utf8_lossy(&o.stderr);
        for secret in [&moto.secret, &"hunter2".to_string()] {
            assert!(!stderr.contains(secret.as_str()), "{what}: secret shown");
        }
    }
    // import checks the same way before importing anything.
    let out = dir.path().join("import");
    let env = with(&moto.key, "not-the-secret-1234");
    let profile = root().join("fixtures/pprof");
    let o = run_env(
        &recorder(),
        &[
            "import",
            s(&profile),
            "--out",
            s(&out),
            "--upload",
            "s3://caps/imp",
            "--s3-endpoint",
            &endpoint,
        ],
        &env_refs(&env),
        Duration::from_secs(60),
    );
    assert_one_line_error(&o, &["s3://caps/imp", "SignatureDoesNotMatch"]);
    assert!(!out.exists(), "import wrote before the upload check");
}

/// (d) The store goes away mid-recording: recording goes on, `--retain 1B` (which would
/// keep only the newest set) keeps every set not uploaded, and the stop exits 0 after
/// `--upload-wait`, warning how many sets are pending. A restart with the store back
/// (a new, empty moto) uploads all of them.
#[test]
fn a_store_outage_loses_nothing_locally_and_retention_waits_for_the_upload() {
    let Some(mut moto) = Moto::start_or_skip() else {
        return;
    };
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    let svc = Service::start(&svc_bin, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let endpoint = moto.endpoint();
    let env = moto.env();
    let target = svc.url();
    let args = [
        "record",
        "--target",
        &target,
        "--out",
        s(&out),
        "--interval",
        "100ms",
        "--rotate",
        "400ms",
        "--retain",
        "1B",
        "--upload",
        "s3://caps/outage",
        "--s3-endpoint",
        &endpoint,
        "--upload-wait",
        "1s",
    ];
    let r = Running::spawn_env(&recorder(), &args, &env_refs(&env));
    r.wait_for_line("uploaded segment set", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("nothing uploaded:\n{}", r.stderr()));
    moto.stop();
    std::thread::sleep(Duration::from_millis(3000));
    let kept = local_sets(&out).len();
    assert!(
        kept >= 4,
        "retention deleted sets that were not uploaded: {kept} left\n{}",
        r.stderr()
    );
    r.signal(libc::SIGTERM);
    let o = r.wait(Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("upload to s3://caps/outage"),
        "{stderr}"
    );
    let pending_line = stderr
        .lines()
        .find(|l| l.contains("not uploaded to s3://caps/outage"))
        .unwrap_or_else(|| panic!("no pending count at exit:\n{stderr}"));
    let pending: usize = pending_line
        .split("upload: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{pending_line}"));
    assert!(pending >= kept - 1, "{pending_line} ({kept} kept)");
    // A new store (moto keeps nothing): a short run uploads everything that is committed.
    let Some(moto2) = Moto::start_or_skip() else {
        return;
    };
    let endpoint2 = moto2.endpoint();
    let mut args2: Vec<&str> = args.to_vec();
    let ep = args2.iter().position(|a| *a == endpoint.as_str()).unwrap();
    args2[ep] = &endpoint2;
    let retain = args2.iter().position(|a| *a == "--retain").unwrap();
    args2.drain(retain..retain + 2); // keep what is there, to compare
    args2.extend(["--duration", "1s"]);
    let o = run_env(
        &recorder(),
        &args2,
        &env_refs(&moto2.env()),
        Duration::from_secs(90),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let url = RemoteUrl::parse("s3://caps/outage").unwrap();
    assert_remote_equals_local(&moto2, &url, &out);
    let _ = std::io::stderr().flush();
}

/// An upload interrupted in the middle of a set (one file there whole, one cut short, no
/// marker) is completed by the next run: the whole file is not sent again, the short one
/// is replaced, the marker comes last. `import --upload` of the same files again (every
/// profile a duplicate) uploads nothing twice. No Go needed.
#[test]
fn an_interrupted_set_upload_is_completed_and_nothing_is_sent_twice() {
    let Some(moto) = Moto::start_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capture");
    let profiles = root().join("fixtures/pprof");
    let rec = recorder();
    let o = run(
        &rec,
        &["import", s(&profiles), "--out", s(&out)],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let local = local_sets(&out);
    let (stem, files) = local.iter().next().unwrap();
    let rels: Vec<&String> = files.keys().collect();
    assert!(rels.len() >= 3, "{rels:?}");
    let url = RemoteUrl::parse("s3://caps/partial").unwrap();
    let whole = std::fs::read(out.join(rels[0])).unwrap();
    moto.put(&url.key(rels[0]), whole);
    let cut = std::fs::read(out.join(rels[1])).unwrap();
    moto.put(&url.key(rels[1]), cut[..cut.len() / 2].to_vec());
    let listing = moto.list(&url);
    assert_eq!(listing.incomplete, vec![stem.clone()]);
    assert!(listing.committed.is_empty());

    let endpoint = moto.endpoint();
    let env = moto.env();
    let upload = |what: &str| {
        let o = run_env(
            &rec,
            &[
                "import",
                s(&profiles),
                "--out",
                s(&out),
                "--upload",
                "s3://caps/partial",
                "--s3-endpoint",
                &endpoint,
            ],
            &env_refs(&env),
            Duration::from_secs(60),
        );
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{what}: {stderr}");
        assert!(
            stderr.contains("skipped 9 duplicate profile(s)"),
            "{what}: {stderr}"
        );
        assert!(
            stderr.contains("every committed segment set is in s3://caps/partial"),
            "{what}: {stderr}"
        );
    };
    upload("first upload");
    assert_remote_equals_local(&moto, &url, &out);
    assert_eq!(
        moto.put_count("partial", rels[0]),
        1,
        "a whole file was sent again"
    );
    assert_eq!(
        moto.put_count("partial", rels[1]),
        2,
        "the cut file was not replaced"
    );
    assert_eq!(moto.assert_markers_last("partial", &local), local.len());
    upload("second upload");
    for rel in files.keys() {
        assert!(moto.put_count("partial", rel) <= 2, "{rel} uploaded again");
    }
    assert_eq!(
        moto.put_count("partial", &format!("_commits/{stem}.commit")),
        1,
        "the marker was uploaded twice"
    );
    assert_remote_equals_local(&moto, &url, &out);
}
