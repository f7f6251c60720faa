//! `leakscope watch` end to end: the real binary ranks the bundled demo capture (or a copy
//! that grows segment by segment, like a capture being recorded) and posts to a real HTTP
//! receiver started here. Checks the Slack and generic bodies, retries, the state file's
//! dedup, one alert per site in a live loop, and a webhook that cannot be reached.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A webhook receiver on 127.0.0.1: records every request, answers with the scripted
/// statuses in order, then 200. One request per connection.
struct Receiver {
    addr: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(statuses: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(statuses.to_vec()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let status = {
                    let mut s = script.lock().unwrap();
                    if s.is_empty() {
                        200
                    } else {
                        s.remove(0)
                    }
                };
                // Recorded before answering: once the client has its answer, the test sees it.
                seen.lock().unwrap().push(req);
                let body = if status == 200 { "ok" } else { "boom" };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Receiver { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}/services/T000/B000/secret-token", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "content-type" => content_type = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        content_type,
        body,
    })
}

/// The sites `leakscope check` reports on the demo with default thresholds, in order.
fn check_sites() -> Vec<String> {
    let o = leakscope(&["check", &s(&demo_capture())]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("LEAK "))
        .map(|l| {
            // "UNIT SITE: RATE (...)": the site is between the unit and the last ": ".
            let rest = l.split_once(' ').unwrap().1;
            rest.rsplit_once(": ").unwrap().0.to_string()
        })
        .collect()
}

fn field_texts(section: &Value) -> Vec<String> {
    section["fields"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| f["text"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn once_posts_one_slack_alert_naming_the_top_leak() {
    let rx = Receiver::start(&[]);
    let o = leakscope(&[
        "watch",
        &s(&demo_capture()),
        "--once",
        "--webhook",
        &rx.url(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "expected one POST, got {reqs:?}");
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/services/T000/B000/secret-token");
    assert!(
        req.content_type.starts_with("application/json"),
        "{}",
        req.content_type
    );
    let body = req.json();
    let sites = check_sites();
    let top = &sites[0];
    assert!(top.starts_with("main.loadRecord "), "{sites:?}");
    let text = body["text"].as_str().expect("text");
    assert!(text.contains("main.loadRecord"), "{text}");
    assert!(
        text.contains(&format!("{} new leak(s)", sites.len())),
        "{text}"
    );
    let sections: Vec<&Value> = body["blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .filter(|b| b["type"] == "section")
        .collect();
    assert_eq!(sections.len(), sites.len());
    let fields = field_texts(sections[0]);
    for name in [
        "Site",
        "Metric",
        "Rate",
        "Confidence",
        "Verdict",
        "Hint",
        "Capture",
    ] {
        assert!(
            fields.iter().any(|f| f.starts_with(&format!("*{name}*\n"))),
            "no {name} field in {fields:?}"
        );
    }
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("*Site*") && f.contains(top.as_str())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"*Verdict*\nleak".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"*Capture*\ndemo".to_string()),
        "{fields:?}"
    );
    // Every site of `check` is in the alert, in check's order.
    for (sec, site) in sections.iter().zip(&sites) {
        assert!(field_texts(sec)[0].contains(site.as_str()), "{site}");
    }
    // Stdout lists what was posted; the webhook's secret path is never printed.
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ALERT ")).count(),
        sites.len()
    );
    assert!(!stderr(&o).contains("secret-token"), "{}", stderr(&o));
}

#[test]
fn generic_body_is_a_plain_document() {
    let rx = Receiver::start(&[]);
    let o = leakscope(&[
        "watch",
        &s(&demo_capture()),
        "--once",
        "--body",
        "generic",
        "--webhook",
        &rx.url(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let body = reqs[0].json();
    assert_eq!(
        body["capture"].as_str().unwrap(),
        s(&std::fs::canonicalize(demo_capture()).unwrap())
    );
    let time = body["time"].as_str().unwrap();
    assert!(
        time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    assert!(body.get("blocks").is_none());
    let findings = body["findings"].as_array().unwrap();
    let sites = check_sites();
    assert_eq!(findings.len(), sites.len());
    for (f, site) in findings.iter().zip(&sites) {
        assert_eq!(f["site"], site.as_str());
        assert_eq!(f["status"], "new");
        assert!(["inuse_space", "goroutines"].contains(&f["metric"].as_str().unwrap()));
        assert!(["bytes", "goroutines"].contains(&f["unit"].as_str().unwrap()));
        assert!(f["rate_per_hour"].as_f64().unwrap() > f["limit_per_hour"].as_f64().unwrap());
        // The default --min-confidence (calibrated confidence, docs/accuracy.md).
        assert!(f["confidence"].as_f64().unwrap() >= 0.9);
        assert!(["leak", "possible-leak"].contains(&f["verdict"].as_str().unwrap()));
        assert!(f["hints"].is_array());
        assert!(!f["stack"].as_array().unwrap().is_empty());
    }
    assert_eq!(findings[0]["metric"], "inuse_space");
    assert_eq!(findings[0]["unit"], "bytes");
}

#[test]
fn server_errors_are_retried_within_the_round() {
    let rx = Receiver::start(&[500, 500]);
    let start = Instant::now();
    let o = leakscope(&[
        "watch",
        &s(&demo_capture()),
        "--once",
        "--webhook",
        &rx.url(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3, "two failures, then delivered");
    assert_eq!(reqs[0].body, reqs[2].body);
    assert!(start.elapsed() >= Duration::from_secs(3), "backoff 1s + 2s");
    let err = stderr(&o);
    assert!(err.contains("(HTTP 200, 3 attempt(s))"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn state_file_prevents_duplicates_and_keeps_failed_alerts_pending() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("watch-state.json");
    let before = walk_names(&demo_capture());

    // Round 1: the receiver fails three times; nothing counts as alerted.
    let rx = Receiver::start(&[503, 503, 503]);
    let args = |url: &str| {
        vec![
            "watch".to_string(),
            s(&demo_capture()),
            "--once".into(),
            "--webhook".into(),
            url.to_string(),
            "--state".into(),
            s(&state),
        ]
    };
    let run1 = |url: &str| {
        let a = args(url);
        leakscope(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run1(&rx.url());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let warnings: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.contains("warning"))
        .map(str::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr(&o));
    assert!(warnings[0].contains("HTTP 503"), "{}", warnings[0]);
    assert_eq!(rx.requests().len(), 3);

    // Round 2: delivered.
    let o = run1(&rx.url());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(rx.requests().len(), 4);
    let sites = check_sites();
    let alerted = rx.requests()[3].json()["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "section")
        .count();
    assert_eq!(alerted, sites.len());

    // Round 3: same capture, same state: nothing new, no request, still exit 1.
    let o = run1(&rx.url());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing new to post"), "{}", stderr(&o));
    assert_eq!(rx.requests().len(), 4, "no duplicate alert");

    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["alerted"].as_array().unwrap().len(), sites.len());
    assert_eq!(
        walk_names(&demo_capture()),
        before,
        "the capture must not be written"
    );

    // The state file may not live inside the capture.
    let o = leakscope(&[
        "watch",
        &s(&demo_capture()),
        "--once",
        "--webhook",
        &rx.url(),
        "--state",
        &s(&demo_capture().join("state.json")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["--state", "inside the capture"]);
}

/// Relative paths of every file below `dir`, sorted.
fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Segment sets of the demo (file stems shared by every table), oldest first.
fn segment_sets() -> Vec<String> {
    let dir = demo_capture().join("profiles/date=2026-11-28");
    let mut sets: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    sets.sort();
    sets
}

/// Commits one segment set into `cap` the way the recorder does: each file written under
/// a hidden temporary name, then renamed.
fn commit_set(cap: &Path, name: &str) {
    for table in ["stacks", "samples", "process", "scrapes", "profiles"] {
        let from = demo_capture()
            .join(table)
            .join("date=2026-11-28")
            .join(name);
        if !from.exists() {
            continue;
        }
        let dir = cap.join(table).join("date=2026-11-28");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::copy(&from, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// Waits for `n` more completed rounds (status lines) of a running watch.
fn rounds(w: &Running, n: usize) {
    for i in 0..n {
        w.wait_for_line("above the thresholds;", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("round {i} did not finish; stderr:\n{}", w.stderr()));
    }
}

#[test]
fn live_capture_alerts_each_site_once() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("live");
    std::fs::create_dir(&cap).unwrap();
    let rx = Receiver::start(&[]);
    let url = rx.url();
    let w = Running::spawn(
        &bin("leakscope"),
        &[
            "watch",
            &s(&cap),
            "--every",
            "1s",
            "--body",
            "generic",
            "--webhook",
            &url,
        ],
    );
    // Nothing recorded yet: an empty directory, then a manifest without segments.
    assert!(
        w.wait_for_line("waiting for data", Duration::from_secs(30))
            .is_some(),
        "{}",
        w.stderr()
    );
    std::fs::copy(
        demo_capture().join("manifest.json"),
        cap.join("manifest.json"),
    )
    .unwrap();
    assert!(
        w.wait_for_line("empty capture", Duration::from_secs(30))
            .is_some(),
        "{}",
        w.stderr()
    );
    assert!(rx.requests().is_empty());

    // Segment sets are committed one by one until sites cross the thresholds (the first
    // set alone may be too little evidence for a confident leak, which watch must not
    // alert on): those sites are alerted, once.
    let sets = segment_sets();
    assert!(sets.len() >= 3, "{sets:?}");
    let mut committed = 0;
    while rx.requests().is_empty() && committed < sets.len() {
        commit_set(&cap, &sets[committed]);
        committed += 1;
        rounds(&w, 1);
        let deadline = Instant::now() + Duration::from_secs(2);
        while rx.requests().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert!(
        committed < sets.len(),
        "no alert before the last set: {}",
        w.stderr()
    );
    let first = rx.requests();
    assert_eq!(first.len(), 1, "stderr:\n{}", w.stderr());
    rounds(&w, 2);
    assert_eq!(rx.requests().len(), 1, "re-alerted: {}", w.stderr());

    // The rest of the recording arrives set by set.
    for set in &sets[committed..] {
        commit_set(&cap, set);
        rounds(&w, 1);
    }
    // Resolved sites need two rounds below the thresholds; then it must go quiet.
    rounds(&w, 3);
    let settled = rx.requests().len();
    rounds(&w, 3);
    let posts = rx.requests();
    assert_eq!(posts.len(), settled, "kept posting: {}", w.stderr());

    // Each site is new at most once, and every change refers to an alerted site.
    let mut new = std::collections::HashSet::new();
    for p in &posts {
        for f in p.json()["findings"].as_array().unwrap() {
            let key = (
                f["metric"].as_str().unwrap().to_string(),
                f["site"].as_str().unwrap().to_string(),
            );
            match f["status"].as_str().unwrap() {
                "new" => assert!(new.insert(key.clone()), "{key:?} alerted twice"),
                "changed" | "resolved" => assert!(new.contains(&key), "{key:?} never alerted"),
                other => panic!("status {other}"),
            }
        }
    }
    assert!(
        posts.len() <= sets.len() + 2,
        "{} posts: {}",
        posts.len(),
        w.stderr()
    );
    let sites = check_sites();
    for site in &sites {
        assert!(new.iter().any(|(_, s)| s == site), "{site} never alerted");
    }

    w.signal(libc::SIGTERM);
    let out = w.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("leakscope: watch: stopped"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        walk_names(&cap).iter().all(|n| !n.contains("state")),
        "watch wrote into the capture"
    );
}

#[test]
fn unreachable_webhook_warns_and_keeps_watching() {
    // A port nobody listens on: bind, note it, close.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hooks/secret-token");
    let o = leakscope(&["watch", &s(&demo_capture()), "--once", "--webhook", &url]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("secret-token"), "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].starts_with(&format!(
            "leakscope: warning: webhook http://127.0.0.1:{port}/"
        )) && warnings[0].contains("connection refused"),
        "{}",
        warnings[0]
    );

    // The loop keeps going: a second round tries again.
    let w = Running::spawn(
        &bin("leakscope"),
        &[
            "watch",
            &s(&demo_capture()),
            "--every",
            "1s",
            "--webhook",
            &url,
        ],
    );
    rounds(&w, 2);
    w.signal(libc::SIGINT);
    let out = w.wait(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("connection refused"))
            .count(),
        2,
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_is_one_line_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let o = leakscope(&[
        "watch",
        &s(&missing),
        "--once",
        "--webhook",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &[&s(&missing), "not a leakscope capture"]);

    for (url, needle) in [
        ("ftp://example.com/x", "scheme must be http or https"),
        ("hooks.example.com/x", "not a URL"),
    ] {
        let o = leakscope(&["watch", &s(&demo_capture()), "--once", "--webhook", url]);
        assert_eq!(o.status.code(), Some(2), "{url}");
        assert_one_line_error(&o, &["--webhook", needle]);
    }
    let o = leakscope(&[
        "watch",
        &s(&demo_capture()),
        "--once",
        "--webhook",
        "http://127.0.0.1:9/",
        "--max-growth",
        "lots",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["--max-growth"]);

    // An empty directory is a capture not written yet: waiting, not an error.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = leakscope(&[
        "watch",
        &s(&empty),
        "--once",
        "--webhook",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("waiting for data"), "{}", stderr(&o));
}

#[test]
fn damaged_state_file_is_kept_aside_and_watch_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("watch-state.json");
    let kept = dir.path().join("watch-state.json.corrupt");
    // What a crash mid-write or a full disk could leave: nothing, or half a document.
    for damaged in ["", "{\"version\": 1, \"capture\": \"/x\", \"alert"] {
        std::fs::write(&state, damaged).unwrap();
        let rx = Receiver::start(&[]);
        let o = leakscope(&[
            "watch",
            &s(&demo_capture()),
            "--once",
            "--webhook",
            &rx.url(),
            "--state",
            &s(&state),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "alerts posted: {err}");
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{err}");
        assert!(
            warnings[0].contains(&s(&state)) && warnings[0].contains(&s(&kept)),
            "{}",
            warnings[0]
        );
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), damaged);
        assert_eq!(rx.requests().len(), 1, "alerted again from an empty state");
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap())
            .expect("a whole state file was written");
        assert!(!saved["alerted"].as_array().unwrap().is_empty());
    }
}

#[test]
fn control_characters_in_sites_reach_webhooks_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let evil = common::build::stack(
        "main.evil\u{1b}[2J\nnext\r`x`\u{202e}gnp.exe",
        "/src/app/evil.go",
        "main.main",
    );
    // 12 profiles: the fewest independent observations a leak alert rests on.
    let profiles: Vec<common::build::HeapProfile> = (0..12)
        .map(|i| common::build::HeapProfile {
            time_ns: 1_796_083_200_000_000_000 + i * 10_000_000_000,
            samples: vec![(&evil[..], (i + 1) * 4 * 1_048_576)],
        })
        .collect();
    // Glob characters in the capture's path are a name, not a pattern.
    let cap = dir.path().join("cap [1]*?");
    common::build::write_heap_capture(&cap, &profiles, None);
    // A control character in the path: object_store refuses such paths, so the capture is
    // refused with one escaped error line.
    let bad = dir.path().join("cap\u{1b}[2J");
    common::build::write_heap_capture(&bad, &profiles[..2], None);
    let o = leakscope(&["rank", &s(&bad)]);
    assert_one_line_error(&o, &["cap\\x1b[2J"]);
    assert!(!stderr(&o).contains('\u{1b}'), "{}", stderr(&o));
    for body in ["slack", "generic"] {
        let rx = Receiver::start(&[]);
        let o = leakscope(&[
            "watch",
            &s(&cap),
            "--once",
            "--body",
            body,
            "--webhook",
            &rx.url(),
            "--max-growth",
            "1B/h",
            "--min-confidence",
            "0",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}'),
            "{out:?}"
        );
        let sent = rx.requests()[0].json();
        // Every text meant for people (Slack's text and blocks, the generic summary) holds
        // no raw control or bidi character; Slack fields start with our own `*Name*\n`.
        let people = if body == "slack" {
            vec![sent["text"].clone(), sent["blocks"].clone()]
        } else {
            vec![sent["summary"].clone()]
        };
        let mut texts = Vec::new();
        strings(&Value::Array(people), &mut texts);
        for t in &texts {
            let value = t.split_once("*\n").map_or(t.as_str(), |(_, v)| v);
            assert!(
                !value.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{body}: {t:?}"
            );
        }
        assert!(
            texts
                .iter()
                .any(|t| t.contains("main.evil\\x1b[2J\\nnext\\r")),
            "{body}: {texts:?}"
        );
        if body == "generic" {
            // The findings keep the exact name for programs.
            assert!(
                sent["findings"].to_string().contains("\\u001b[2J\\nnext"),
                "{sent}"
            );
        }
    }
}

/// Every string in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}
