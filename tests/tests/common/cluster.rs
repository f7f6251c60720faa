//! A Ballista cluster of real processes for the end-to-end tests: one `leakscope-scheduler`
//! and two `leakscope-executor`s on free local ports, their stderr collected, killed on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bin;

/// A server process of the cluster; its stderr is collected, and it is killed on drop (and
/// by the kernel if the test process dies first).
pub struct Server {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin(name));
        cmd.args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl(2) only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (tx, lines) = channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, all) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        Server {
            name: name.to_string(),
            child,
            lines,
            stderr,
        }
    }

    /// Waits for a stderr line containing `needle`; panics with the stderr on timeout or exit.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) if Instant::now() >= end => panic!(
                    "{}: no line with {needle:?} within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.stderr.lock().unwrap()
                ),
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!(
                            "{} exited ({status}) before printing {needle:?}; stderr:\n{}",
                            self.name,
                            self.stderr.lock().unwrap()
                        );
                    }
                }
            }
        }
    }
}

impl Server {
    /// Panics with the server's stderr if it has exited.
    pub fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "{} exited; stderr:\n{}",
            self.name,
            self.stderr.lock().unwrap()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free local TCP port (bound, then released for the executor to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scheduler and two executors, all registered; every process is killed on drop.
pub struct Cluster {
    /// The scheduler, `df://127.0.0.1:PORT`.
    pub url: String,
    // Dropped in field order: executors first, then the scheduler.
    pub executors: Vec<Server>,
    /// The scheduler process.
    pub scheduler: Server,
}

impl Cluster {
    /// Panics with a server's stderr if any of them has exited.
    pub fn assert_running(&mut self) {
        for s in self.executors.iter_mut().chain([&mut self.scheduler]) {
            s.assert_running();
        }
    }

    /// Starts a scheduler and two executors and waits until both executors registered.
    pub fn start() -> Cluster {
        Cluster::start_with(&[], &[])
    }

    /// [`Cluster::start`] with `args` added to every server's command line and `env` to
    /// its environment (an S3 endpoint and credentials, say).
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Cluster {
        let scheduler_args: Vec<&str> = ["--port", "0"].iter().chain(args).copied().collect();
        let mut scheduler = Server::spawn("leakscope-scheduler", &scheduler_args, env);
        let line = scheduler.wait_for("listening on", Duration::from_secs(60));
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("df://"))
            .unwrap_or_else(|| panic!("no df:// URL in {line:?}"))
            .trim_end_matches(')')
            .to_string();
        let mut executors = Vec::new();
        for _ in 0..2 {
            let (flight, grpc) = (free_port().to_string(), free_port().to_string());
            let mut exec_args = vec![
                "--scheduler",
                url.as_str(),
                "--port",
                flight.as_str(),
                "--grpc-port",
                grpc.as_str(),
                "--concurrent-tasks",
                "2",
            ];
            exec_args.extend(args);
            executors.push(Server::spawn("leakscope-executor", &exec_args, env));
        }
        for e in &mut executors {
            e.wait_for("Executor registration succeed", Duration::from_secs(60));
        }
        Cluster {
            url,
            executors,
            scheduler,
        }
    }
}
