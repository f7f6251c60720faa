//! Shared helpers for the end-to-end tests: locating binaries, building and running the Go
//! fixture service, a scriptable HTTP server for bad-input cases, and the "required part"
//! policy (fail in CI, skip loudly elsewhere).
#![allow(dead_code)]

pub mod build;
pub mod capture;
pub mod cluster;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Runs the analyzer binary with a 2-minute timeout.
pub fn leakscope(args: &[&str]) -> Output {
    run(&bin("leakscope"), args, Duration::from_secs(120))
}

/// The bundled demo capture.
pub fn demo_capture() -> PathBuf {
    root().join("fixtures/captures/demo")
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a workspace binary built by `cargo build` (target/debug next to the test exe).
pub fn bin(name: &str) -> PathBuf {
    let p = target_profile_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` first (tests/run.sh does)",
        p.display()
    );
    p
}

/// target/debug (or target/release): the directory holding the test exe's `deps/`.
fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The newest modification time of the files below `dir`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().ok()?.modified().ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// The `leakscope-recorder` binary. `cargo test -p leakscope-tests` does not build other
/// packages' binaries, so this runs `cargo build -p leakscope-recorder` (once per test
/// process) when the binary is missing, or older than the recorder or capture sources.
/// A missing binary that does not build fails every test; a stale one whose rebuild fails
/// (someone's edit in progress) is used as it is, with a loud warning.
pub fn recorder() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = BIN.get_or_init(|| {
        let dir = target_profile_dir();
        let p = dir.join("leakscope-recorder");
        let built = std::fs::metadata(&p).and_then(|m| m.modified()).ok();
        let sources = ["recorder", "capture"]
            .iter()
            .flat_map(|c| [root().join(c).join("src"), root().join(c).join("Cargo.toml")])
            // The eBPF object the recorder embeds (include_bytes!).
            .chain([root().join("ebpf")])
            .filter_map(|s| {
                if s.is_dir() {
                    newest_mtime(&s)
                } else {
                    s.metadata().and_then(|m| m.modified()).ok()
                }
            })
            .max();
        if built.is_some() && sources <= built {
            return Ok(p);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "leakscope-recorder"]).current_dir(root());
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let why = if built.is_none() { "missing" } else { "older than its sources" };
        eprintln!("{} is {why}: running cargo build -p leakscope-recorder", p.display());
        let ok = cmd.status().is_ok_and(|s| s.success());
        match (ok && p.exists(), built.is_some()) {
            (true, _) => Ok(p),
            (false, true) => {
                eprintln!("\n!!!!!!!! cargo build -p leakscope-recorder FAILED: testing the STALE {} !!!!!!!!\n", p.display());
                Ok(p)
            }
            (false, false) => Err(format!("{} is missing and cargo build -p leakscope-recorder failed", p.display())),
        }
    });
    result.clone().unwrap_or_else(|e| panic!("{e}"))
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
        if Command::new(cand)
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(PathBuf::from(cand));
        }
    }
    None
}

/// Builds `fixtures/go/leaky-service` once per test process; None when Go is missing.
/// The binary is built under a temporary name and renamed over
/// `target/test-fixtures/leaky-service-GOVERSION`, so concurrent test processes never see
/// a partial file and old builds do not pile up.
pub fn leaky_service_binary() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let go = go()?;
        let out = root().join("target/test-fixtures");
        std::fs::create_dir_all(&out).unwrap();
        let tmp = out.join(format!(".leaky-service-{}.tmp", std::process::id()));
        let version = Command::new(&go)
            .args(["env", "GOVERSION"])
            .env("GOTOOLCHAIN", "local")
            .output()
            .expect("running go env GOVERSION");
        let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        let bin = out.join(format!("leaky-service-{version}"));
        let status = Command::new(&go)
            .args(["build", "-o"])
            .arg(&tmp)
            .arg(".")
            .current_dir(root().join("fixtures/go/leaky-service"))
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .status()
            .expect("running go build");
        assert!(status.success(), "go build of the leaky service failed");
        std::fs::rename(&tmp, &bin).unwrap();
        Some(bin)
    })
    .clone()
}

/// The leaky service binary, or None after [`require`] (skip outside CI, panic in CI).
pub fn leaky_service_or_skip() -> Option<PathBuf> {
    let bin = leaky_service_binary();
    if require(
        bin.is_some(),
        "the Go toolchain (for fixtures/go/leaky-service)",
    ) {
        bin
    } else {
        None
    }
}

/// A running leaky service; killed on drop.
pub struct Service {
    pub child: Child,
    pub addr: String,
}

impl Service {
    /// Starts the fixture service on a free port with extra flags. It exits by itself after
    /// 5 minutes (`args` may override `-duration`) so a killed test leaves no orphan behind.
    pub fn start(bin: &Path, args: &[&str]) -> Service {
        let mut child = Command::new(bin)
            .args(["-addr", "127.0.0.1:0", "-duration", "300s"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting leaky service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("service banner")
            .to_string();
        Service { child, addr }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The service's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a binary to completion with a timeout, returning its output. Both pipes are drained
/// by threads while waiting, so large outputs never block the child.
pub fn run(bin: &Path, args: &[&str], timeout: Duration) -> Output {
    run_env(bin, args, &[], timeout)
}

/// [`run`] with extra environment variables.
pub fn run_env(bin: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_t = drain(Box::new(child.stdout.take().unwrap()));
    let err_t = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_t.join().unwrap_or_default();
            panic!(
                "{} {:?} did not finish within {timeout:?}; stderr: {}",
                bin.display(),
                args,
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// A CLI error line, `PROGRAM: error: ...` (log lines such as `[TIME ERROR] ...` are not:
/// they may quote an error text that itself contains "error:").
pub fn is_error_line(line: &str) -> bool {
    line.split_once(": error: ").is_some_and(|(program, _)| {
        !program.is_empty() && !program.contains(char::is_whitespace) && !program.starts_with('[')
    })
}

/// Asserts a failed run printed exactly one error line mentioning each of `needles`.
pub fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| is_error_line(l)).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    for n in needles {
        assert!(
            errors[0].contains(n),
            "error line lacks {n:?}: {}",
            errors[0]
        );
    }
}

/// A scriptable HTTP server: `respond(path) -> (status, body, delay)`.
pub struct FakeServer {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    /// Serves until dropped.
    pub fn start(
        respond: impl Fn(&str) -> (u16, Vec<u8>, Duration) + Send + Sync + 'static,
    ) -> FakeServer {
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

/// A child process (usually the recorder) whose stderr is collected line by line while it
/// runs; killed on drop so a failing test leaves nothing behind.
pub struct Running {
    child: Option<Child>,
    started: Instant,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Spawns `bin args` with stderr captured (stdout discarded).
    pub fn spawn(bin: &Path, args: &[&str]) -> Running {
        Running::spawn_env(bin, args, &[])
    }

    /// [`Running::spawn`] with extra environment variables.
    pub fn spawn_env(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let (tx, lines) = std::sync::mpsc::channel();
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let (pipe, all) = (child.stderr.take().unwrap(), stderr.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Running {
            child: Some(child),
            started: Instant::now(),
            lines,
            stderr,
            reader: Some(reader),
        }
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Time since the process was spawned.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on a child we own and have not reaped yet.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Waits until a stderr line containing `needle` arrives; None on timeout or exit.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the exit (panicking after `timeout`) and returns status and stderr.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "process did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        Output {
            status,
            stdout: Vec::new(),
            stderr: self.stderr().into_bytes(),
        }
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill9(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A small tmpfs mounted on a temporary directory; unmounted (then removed) on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `200k`); None when mounting is impossible (not root,
    /// no CAP_SYS_ADMIN, ...).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let (fs, data) = (
            CString::new("tmpfs").unwrap(),
            CString::new(format!("size={size}")).unwrap(),
        );
        // SAFETY: valid NUL-terminated strings for the duration of the call.
        let rc = unsafe {
            libc::mount(
                fs.as_ptr(),
                target.as_ptr(),
                fs.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            eprintln!(
                "mount -t tmpfs on {}: {}",
                dir.path().display(),
                std::io::Error::last_os_error()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        use std::os::unix::ffi::OsStrExt;
        let target = std::ffi::CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            eprintln!(
                "umount {}: {}",
                self.dir.path().display(),
                std::io::Error::last_os_error()
            );
        }
    }
}
