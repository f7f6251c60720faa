//! `leakscope report` end to end: the demo report is small, deterministic and references
//! nothing outside itself; hostile symbols (markup, quotes, huge names) render as text; and
//! a real headless Chromium opens the report from disk with no console error, no network
//! request, the verdict and the top site visible (screenshot kept in
//! `target/test-artifacts/report.png`). Chromium is driven over the DevTools protocol on a
//! pipe (`--remote-debugging-pipe`: requests on fd 3, replies on fd 4).

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use common::*;
use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::rows::{ProfileRow, SampleRow, SampleValues, StackRow};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use leakscope_capture::stack::{stack_id, Frame};
use serde_json::{json, Value};

fn leakscope(args: &[&str]) -> Output {
    run(&bin("leakscope"), args, Duration::from_secs(180))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "leakscope failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// References that would load something: `src`/`href`-like attributes not pointing into the
/// page (`#...`) or at inline `data:`, and `url(`/`@import` in style sheets and `style`
/// attributes. Text content (which may quote markup from the capture) is not a reference.
fn external_refs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (tags, styles) = tags(html);
    for (tag, attrs) in &tags {
        for (name, value) in attrs {
            let v = value.trim().to_ascii_lowercase();
            let loads = [
                "src",
                "href",
                "xlink:href",
                "action",
                "formaction",
                "srcset",
                "poster",
                "data",
                "background",
            ]
            .contains(&name.as_str());
            if loads && !(v.starts_with('#') || v.starts_with("data:")) {
                out.push(format!("<{tag} {name}={value}>"));
            }
            if name == "style" && (v.contains("url(") || v.contains("@import")) {
                out.push(format!("<{tag} style={value}>"));
            }
        }
    }
    for css in styles {
        let c = css.to_ascii_lowercase();
        if c.contains("url(") || c.contains("@import") {
            out.push("url( or @import in a style sheet".into());
        }
    }
    out
}

/// Every start tag of `html` with its attributes (names lowercase, values as written, with
/// `&quot;` and `&amp;` left encoded), and the text of every `<style>` element: a small
/// tokenizer for text, comments, and quoted or unquoted attribute values.
#[allow(clippy::type_complexity)]
fn tags(html: &str) -> (Vec<(String, Vec<(String, String)>)>, Vec<String>) {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut styles = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        i += 1;
        if html[i..].starts_with("!--") {
            i = html[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        if i < b.len() && (b[i] == b'!' || b[i] == b'/') {
            i = html[i..].find('>').map_or(b.len(), |e| i + e + 1);
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let name = html[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                i += 1;
                break;
            }
            let a = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !b"=>/".contains(&b[i]) {
                i += 1;
            }
            let attr = html[a..i].to_ascii_lowercase();
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                match b.get(i) {
                    Some(&q) if q == b'"' || q == b'\'' => {
                        let end = html[i + 1..].find(q as char).map_or(b.len(), |e| i + 1 + e);
                        value = html[i + 1..end].to_string();
                        i = end + 1;
                    }
                    _ => {
                        let a = i;
                        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                            i += 1;
                        }
                        value = html[a..i].to_string();
                    }
                }
            }
            attrs.push((attr, value));
        }
        if name == "style" && i < b.len() {
            let end = html[i..].find("</style").map_or(b.len(), |e| i + e);
            styles.push(html[i..end].to_string());
            i = end;
        }
        out.push((name, attrs));
    }
    (out, styles)
}

fn demo_report(dir: &Path, png: bool) -> (PathBuf, Output) {
    let html = dir.join("report.html");
    let demo = root().join("fixtures/captures/demo");
    let mut args = vec!["report".to_string(), s(&demo), "-o".into(), s(&html)];
    if png {
        args.extend(["--png".into(), s(&dir.join("png"))]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    (html.clone(), leakscope(&a))
}

#[test]
fn demo_report_is_small_deterministic_and_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let (html, out) = demo_report(dir.path(), true);
    ok(&out);
    let first = std::fs::read(&html).unwrap();
    let pngs: Vec<(String, Vec<u8>)> = {
        let mut v: Vec<_> = std::fs::read_dir(dir.path().join("png"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    // Every written file is listed on stdout, the HTML first.
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(listed[0], s(&html));
    assert_eq!(listed.len(), 1 + pngs.len(), "{listed:?}");

    assert!(
        first.len() < 2 << 20,
        "demo report is {} bytes",
        first.len()
    );
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(
        external_refs(&text).is_empty(),
        "{:?}",
        external_refs(&text)
    );
    assert!(!text.to_ascii_lowercase().contains("<script"));
    assert!(!text.contains("<link") && !text.contains("<img") && !text.contains("<iframe"));
    assert!(text.contains("Content-Security-Policy"));
    for id in [
        "verdict",
        "top-site",
        "timeline",
        "sites",
        "goroutines",
        "flame",
        "capture",
        "command",
    ] {
        assert!(text.contains(&format!("id=\"{id}\"")), "no #{id}");
    }
    // The exact command, and no clock time other than the capture's.
    assert!(text.contains(&format!(
        "leakscope report {} -o {}",
        s(&root().join("fixtures/captures/demo")),
        s(&html)
    )));

    let names: Vec<&str> = pngs.iter().map(|(n, _)| n.as_str()).collect();
    for want in ["timeline.png", "site-01.png", "flame-heap.png"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for (n, bytes) in &pngs {
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{n} is not a PNG");
        // IHDR width: PNGs are at least 1000 px wide, for a readable ticket thumbnail.
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        assert!(width >= 1000, "{n} is {width} px wide");
    }

    // Same capture, same command: byte-identical report and charts.
    let (_, again) = demo_report(dir.path(), true);
    ok(&again);
    assert!(
        std::fs::read(&html).unwrap() == first,
        "the report changed between two runs"
    );
    for (n, bytes) in &pngs {
        assert!(
            &std::fs::read(dir.path().join("png").join(n)).unwrap() == bytes,
            "{n} changed between two runs"
        );
    }
}

#[test]
fn bad_windows_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let demo = s(&root().join("fixtures/captures/demo"));
    let out = s(&dir.path().join("r.html"));
    let o = leakscope(&[
        "report",
        &demo,
        "-o",
        &out,
        "--from",
        "2026-11-28T06:44:00Z",
        "--to",
        "2026-11-28T06:43:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["must start before it ends"]);
    assert!(!dir.path().join("r.html").exists());
    let o = leakscope(&["report", &demo, "-o", &out, "--from", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));
    let o = leakscope(&["report", &demo, "-o", "/nonexistent-dir/r.html"]);
    assert_eq!(o.status.code(), Some(2));
    assert_one_line_error(&o, &["/nonexistent-dir/r.html"]);
}

// ---------------------------------------------------------------------------------------
// A capture whose every string is hostile.

const LONG: usize = 10_000;

fn frame(function: &str, file: &str, line: i64) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
        ..Default::default()
    }
}

/// Writes a capture (8 heap and 8 goroutine profiles, growing) whose function names, file
/// paths, labels, run id, target, host and options carry markup, quotes and a 10,000
/// character name.
fn hostile_capture(dir: &Path) {
    let target = "http://evil.invalid/\"><script>alert('target')</script>";
    let session = Session {
        mode: "import".into(),
        recorder_version: "0.1.0".into(),
        target: target.into(),
        host: "<img src=x onerror=alert('host')>".into(),
        start_time: "2026-01-05T00:00:00Z".into(),
        options: json!({ "target": "<script>alert('opt')</script>", "files": 16 }),
    };
    Manifest::open_or_create(dir, session).unwrap();
    let long = format!("main.{}", "A".repeat(LONG));
    let names = [
        "main.(*Evil).<script>alert(\"leak\")</script>".to_string(),
        "main.quote'\"&amp;<b onmouseover=alert(1)>".to_string(),
        long,
    ];
    let file = "/src/\"><img src=x onerror=alert('file')>.go";
    let run_id = "run<script>alert('run')</script>";
    let mut w = SegmentWriter::new(dir, RotationPolicy::default());
    let t0 = 1_767_571_200_000_000_000i64; // 2026-01-05T00:00:00Z
    for (kind, leaf) in [
        ("heap", "runtime.mallocgc"),
        ("goroutine", "runtime.gopark"),
    ] {
        let stacks: Vec<Vec<Frame>> = names
            .iter()
            .enumerate()
            .map(|(k, n)| {
                vec![
                    frame(leaf, "/usr/lib/go/src/runtime/x.go", 1),
                    frame(n, file, 10 + k as i64),
                    frame("main.main", "/src/<main>.go", 3),
                ]
            })
            .collect();
        for i in 0..8i64 {
            let time_ns = t0 + i * 10_000_000_000;
            let profile_id = (i as u64) << 1 | u64::from(kind == "goroutine");
            w.add_profile(ProfileRow {
                profile_id,
                time_ns,
                kind: kind.into(),
                target: target.into(),
                pid: None,
                run_id: run_id.into(),
                period: if kind == "heap" { 524_288 } else { 1 },
                period_type: if kind == "heap" {
                    "space/bytes"
                } else {
                    "goroutine/count"
                }
                .into(),
                sample_types: if kind == "heap" {
                    vec!["inuse_objects/count".into(), "inuse_space/bytes".into()]
                } else {
                    vec!["goroutine/count".into()]
                },
                duration_ns: 0,
                scrape_ms: None,
                source: format!("/tmp/<script>{kind}</script>.pb.gz"),
                sample_count: names.len() as u32,
            });
            for (k, frames) in stacks.iter().enumerate() {
                let id = stack_id(frames);
                if !w.has_stack(id) {
                    w.add_stack(StackRow {
                        stack_id: id,
                        origin: "go".into(),
                        frames: frames.clone(),
                    });
                }
                let grow = (i + 1) * (k as i64 + 1);
                let values = if kind == "heap" {
                    SampleValues {
                        inuse_objects: Some(grow * 10),
                        inuse_bytes: Some(grow * 100_000),
                        ..Default::default()
                    }
                } else {
                    SampleValues {
                        goroutines: Some(grow * 3),
                        ..Default::default()
                    }
                };
                w.add_sample(SampleRow {
                    profile_id,
                    time_ns,
                    run_id: run_id.into(),
                    kind: kind.into(),
                    stack_id: id,
                    values,
                    labels: Some("<script>k</script>=\"v\"".into()),
                });
            }
        }
    }
    w.rotate().unwrap();
}

fn hostile_report(dir: &Path) -> PathBuf {
    let cap = dir.join("evil<script>alert('dir')<!--");
    hostile_capture(&cap);
    let html = dir.join("hostile.html");
    let o = leakscope(&[
        "report",
        &s(&cap),
        "-o",
        &s(&html),
        "--png",
        &s(&dir.join("png")),
    ]);
    ok(&o);
    html
}

#[test]
fn hostile_symbols_are_escaped_and_clipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = hostile_report(dir.path());
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::copy(&path, artifacts.join("report-hostile.html")).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("<script"),
        "unescaped <script from the data"
    );
    assert!(!lower.contains("<img"), "unescaped <img from the data");
    let (all, _) = tags(&html);
    assert!(all.len() > 100, "the tokenizer found {} tags", all.len());
    for (tag, attrs) in all {
        assert!(
            !["script", "img", "iframe", "object", "embed", "link", "base"].contains(&tag.as_str()),
            "<{tag}> in the report"
        );
        for (a, _) in attrs {
            assert!(
                !a.starts_with("on"),
                "event handler attribute {a} on <{tag}>"
            );
        }
    }
    assert!(
        html.contains("&lt;script&gt;alert("),
        "hostile names are shown as text"
    );
    assert!(
        external_refs(&html).is_empty(),
        "{:?}",
        external_refs(&html)
    );
    // The 10,000-character name is clipped everywhere (tooltips keep at most 2,000).
    assert!(
        !html.contains(&"A".repeat(2001)),
        "a long name was not clipped"
    );
    assert!(
        html.contains(&"A".repeat(100)),
        "the long name is shown, clipped"
    );
    assert!(html.contains("A…"));
    assert!(html.len() < 1 << 20, "{} bytes", html.len());
    assert!(dir.path().join("png/site-01.png").exists());
}

// ---------------------------------------------------------------------------------------
// Headless Chromium over the DevTools protocol.

fn chromium() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("LEAKSCOPE_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "chromium", "chromium-browser"].map(PathBuf::from))
        .collect();
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn chromium_or_skip() -> Option<PathBuf> {
    let c = chromium();
    require(
        c.is_some(),
        "Chromium (Debian package chromium, /usr/bin/chromium)",
    )
    .then_some(c?)
}

/// A Chromium child driven over `--remote-debugging-pipe`.
struct Browser {
    child: Child,
    to: File,
    from: Receiver<Value>,
    next: u64,
    events: Vec<Value>,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

/// A pipe whose ends do not leak into other children, the child's end moved to fd >= 10.
fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    fds.map(|fd| {
        // SAFETY: duplicating and closing descriptors we own.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        assert!(high >= 10);
        unsafe { libc::close(fd) };
        high
    })
    .into()
}

impl Browser {
    fn launch(bin: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (child_reads, we_write) = pipe();
        let (we_read, child_writes) = pipe();
        let mut cmd = Command::new(bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-pipe",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe dup2 calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(child_reads, 3) < 0 || libc::dup2(child_writes, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting chromium");
        // SAFETY: closing our copies of the child's ends; adopting our own ends.
        let (to, from) = unsafe {
            libc::close(child_reads);
            libc::close(child_writes);
            (File::from_raw_fd(we_write), File::from_raw_fd(we_read))
        };
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(from);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            to,
            from: rx,
            next: 0,
            events: Vec::new(),
            session: None,
            _profile: profile,
        }
    }

    fn recv(&mut self) -> Value {
        self.from
            .recv_timeout(Duration::from_secs(120))
            .expect("no message from chromium within 120 s (it hung or exited)")
    }

    /// Sends a command (to the attached page, if any) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        loop {
            let v = self.recv();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    fn wait_event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events[i].clone();
        }
        loop {
            let v = self.recv();
            self.events.push(v.clone());
            if v["method"] == method {
                return v;
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a page did when opened.
struct Visit {
    /// Console messages, exceptions, log errors, dialogs.
    errors: Vec<String>,
    /// URLs requested other than the page itself.
    requests: Vec<String>,
    /// Result of [`PROBE`].
    probe: Value,
    /// Screenshot of the first 1280x2000 pixels.
    screenshot: Vec<u8>,
}

/// Runs in the page: visibility of the verdict and the top site, and what the page holds.
const PROBE: &str = r#"(() => {
  const vis = id => {
    const e = document.getElementById(id);
    if (!e) return { found: false };
    const r = e.getBoundingClientRect();
    const s = getComputedStyle(e);
    const hit = document.elementFromPoint(r.left + Math.min(5, r.width / 2), r.top + Math.min(10, r.height / 2));
    return { found: true, text: e.innerText, width: r.width, height: r.height,
             shown: s.display !== 'none' && s.visibility !== 'hidden' && parseFloat(s.opacity) > 0,
             inViewport: r.top >= 0 && r.top + Math.min(r.height, 40) <= innerHeight,
             onTop: !!hit && (hit === e || e.contains(hit)) };
  };
  return { verdict: vis('verdict'), top: vis('top-site'), title: document.title,
           svgs: document.querySelectorAll('svg').length,
           active: document.querySelectorAll('script,img,iframe,object,embed,link,[onerror],[onload],[onmouseover]').length,
           resources: performance.getEntriesByType('resource').map(e => e.name) };
})()"#;

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 byte {c}"),
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(val(*c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn visit(chromium: &Path, page: &Path) -> Visit {
    let url = format!("file://{}", page.display());
    let mut b = Browser::launch(chromium);
    let target = b.call("Target.createTarget", json!({ "url": "about:blank" }));
    let attached = b.call(
        "Target.attachToTarget",
        json!({ "targetId": target["targetId"], "flatten": true }),
    );
    b.session = attached["sessionId"].as_str().map(String::from);
    for domain in ["Page", "Runtime", "Log", "Network"] {
        b.call(&format!("{domain}.enable"), json!({}));
    }
    let nav = b.call("Page.navigate", json!({ "url": url }));
    assert!(nav.get("errorText").is_none(), "navigation failed: {nav}");
    b.wait_event("Page.loadEventFired");
    let probe = b.call(
        "Runtime.evaluate",
        json!({ "expression": PROBE, "returnByValue": true }),
    )["result"]["value"]
        .clone();
    let shot = b.call("Page.captureScreenshot", json!({ "format": "png" }));
    let screenshot = base64_decode(shot["data"].as_str().expect("screenshot data"));
    let mut errors = Vec::new();
    let mut requests = Vec::new();
    for e in &b.events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Runtime.exceptionThrown" => errors.push(format!("exception: {p}")),
            "Runtime.consoleAPICalled" => errors.push(format!("console.{}: {p}", p["type"])),
            "Log.entryAdded"
                if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) =>
            {
                errors.push(format!(
                    "log {}: {}",
                    p["entry"]["level"], p["entry"]["text"]
                ))
            }
            "Page.javascriptDialogOpening" => errors.push(format!("dialog: {p}")),
            "Network.requestWillBeSent" => {
                let u = p["request"]["url"].as_str().unwrap_or("").to_string();
                if u != url {
                    requests.push(u);
                }
            }
            _ => {}
        }
    }
    let _ = b.call("Browser.close", json!({}));
    Visit {
        errors,
        requests,
        probe,
        screenshot,
    }
}

fn visible(probe: &Value, key: &str) -> String {
    let v = &probe[key];
    for flag in ["found", "shown", "inViewport", "onTop"] {
        assert_eq!(v[flag], json!(true), "#{key} is not {flag}: {v}");
    }
    assert!(
        v["width"].as_f64().unwrap() > 0.0 && v["height"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    v["text"].as_str().unwrap().to_string()
}

#[test]
fn demo_report_renders_in_chromium() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (html, out) = demo_report(dir.path(), false);
    ok(&out);
    let v = visit(&chromium, &html);
    assert!(v.errors.is_empty(), "console errors: {:#?}", v.errors);
    assert!(v.requests.is_empty(), "network requests: {:#?}", v.requests);
    assert_eq!(v.probe["resources"], json!([]), "{}", v.probe);
    assert_eq!(v.probe["active"], json!(0), "{}", v.probe);
    assert!(v.probe["svgs"].as_u64().unwrap() >= 10, "{}", v.probe);
    let verdict = visible(&v.probe, "verdict");
    let top = visible(&v.probe, "top");
    assert!(verdict.contains("leak(s) found"), "{verdict}");
    assert!(top.starts_with("main.loadRecord"), "{top}");
    let function = top.split_whitespace().next().unwrap();
    assert!(
        verdict.contains(&format!("Top: {function} ")),
        "the top site is the verdict's: {verdict}"
    );
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    assert!(
        v.screenshot.starts_with(b"\x89PNG"),
        "screenshot is not a PNG"
    );
    std::fs::write(artifacts.join("report.png"), &v.screenshot).unwrap();
    std::fs::copy(&html, artifacts.join("report.html")).unwrap();
}

#[test]
fn hostile_report_runs_nothing_in_chromium() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let html = hostile_report(dir.path());
    let v = visit(&chromium, &html);
    assert!(
        v.errors.is_empty(),
        "console errors or dialogs: {:#?}",
        v.errors
    );
    assert!(v.requests.is_empty(), "network requests: {:#?}", v.requests);
    assert_eq!(v.probe["active"], json!(0), "{}", v.probe);
    assert!(
        v.probe["title"].as_str().unwrap().contains("<script>"),
        "the title shows the name as text"
    );
    let top = visible(&v.probe, "top");
    assert!(
        top.chars().count() <= 161,
        "the top site is clipped: {} chars",
        top.chars().count()
    );
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("report-hostile.png"), &v.screenshot).unwrap();
}
