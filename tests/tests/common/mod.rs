//! Shared helpers for the end-to-end tests: locating binaries, building and running the Go
//! fixture service, a scriptable HTTP server for bad-input cases, and the "required part"
//! policy (fail in CI, skip loudly elsewhere).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Path of a workspace binary built by `cargo build` (target/debug next to the test exe).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace` first (tests/run.sh does)", p.display());
    p
}

/// A part a test needs (Go, root, ...) is missing: panic in CI, otherwise skip loudly.
/// Returns true when the test should go on.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("required test part missing in CI: {what}");
    }
    eprintln!("\n!!!!!!!! SKIPPING: {what} is missing (tests/run.sh installs it) !!!!!!!!\n");
    false
}

/// The Go toolchain to build fixtures with: $LEAKSCOPE_GO, else `go` on PATH, else Debian's.
pub fn go() -> Option<PathBuf> {
    if let Ok(g) = std::env::var("LEAKSCOPE_GO") {
        return Some(PathBuf::from(g));
    }
    for cand in ["go", "/usr/lib/go/bin/go", "/usr/lib/go-1.19/bin/go"] {
        if Command::new(cand).arg("version").output().is_ok_and(|o| o.status.success()) {
            return Some(PathBuf::from(cand));
        }
    }
    None
}

/// Builds `fixtures/go/leaky-service` once per test process; None when Go is missing.
pub fn leaky_service_binary() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = go()?;
        let out = root().join("target/test-fixtures");
        std::fs::create_dir_all(&out).unwrap();
        let bin = out.join(format!("leaky-service-{}", std::process::id()));
        let status = Command::new(&go)
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(root().join("fixtures/go/leaky-service"))
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .status()
            .expect("running go build");
        assert!(status.success(), "go build of the leaky service failed");
        Some(bin)
    })
    .clone()
}

/// A running leaky service; killed on drop.
pub struct Service {
    pub child: Child,
    pub addr: String,
}

impl Service {
    /// Starts the fixture service on a free port with extra flags.
    pub fn start(bin: &Path, args: &[&str]) -> Service {
        let mut child = Command::new(bin)
            .args(["-addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting leaky service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").expect("service banner").to_string();
        Service { child, addr }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a binary to completion with a timeout, returning its output.
pub fn run(bin: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{} {:?} did not finish within {timeout:?}; stderr: {}",
                bin.display(),
                args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts a failed run printed exactly one error line mentioning each of `needles`.
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "error line lacks {n:?}: {}", errors[0]);
    }
}

/// A scriptable HTTP server: `respond(path) -> (status, body, delay)`.
pub struct FakeServer {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    /// Serves until dropped.
    pub fn start(respond: impl Fn(&str) -> (u16, Vec<u8>, Duration) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let respond = respond.clone();
                        std::thread::spawn(move || {
                            s.set_nonblocking(false).ok();
                            let mut buf = [0u8; 4096];
                            let n = s.read(&mut buf).unwrap_or(0);
                            let req = String::from_utf8_lossy(&buf[..n]);
                            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                            let (status, body, delay) = respond(&path);
                            std::thread::sleep(delay);
                            let head = format!(
                                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = s.write_all(head.as_bytes());
                            let _ = s.write_all(&body);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeServer { addr, stop }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads a real fixture profile.
pub fn fixture_profile(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("fixtures/pprof").join(rel)).unwrap()
}
