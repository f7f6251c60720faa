//! `leakscope-recorder`: record a live Go service, or import pprof files, into a capture.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use leakscope_capture::pprof::ProfileKind;
use leakscope_capture::segment::RotationPolicy;
use leakscope_recorder::import::{self, ImportOptions};
use leakscope_recorder::record::{self, RecordOptions};
use leakscope_recorder::retain::Retention;
use leakscope_recorder::target::Target;

#[derive(Parser)]
#[command(name = "leakscope-recorder", version, about = "Record a Go service's memory (pprof + process stats) into a leakscope capture")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scrape a live service's pprof endpoints and process memory at a fixed interval.
    #[command(after_help = "Examples:
  leakscope-recorder record --target http://localhost:6060 --out ./capture
  leakscope-recorder record --target http://10.0.0.5:6060 --out /var/lib/leakscope/api \\
      --interval 30s --duration 24h --retain 7d
  leakscope-recorder record --target https://svc.internal/admin --pprof-path /debug/pprof \\
      --header 'Authorization: Bearer $TOKEN' --out ./capture

Stops on --duration, SIGINT or SIGTERM, always committing the open segment.")]
    Record(RecordArgs),
    /// Import pprof heap/goroutine files (.pb.gz, .pprof, heap_YYYY-MM-DD_HH-MM-SS.prof) into a capture.
    #[command(after_help = "Examples:
  leakscope-recorder import ./profiles/ --out ./capture
  leakscope-recorder import heap1.pb.gz heap2.pb.gz --out ./capture --target api-7f9c")]
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct RecordArgs {
    /// Base URL of the service serving net/http/pprof (http or https, optional path prefix).
    #[arg(long)]
    target: String,
    /// Capture directory (created, or appended to when it already is a capture).
    #[arg(long)]
    out: PathBuf,
    /// Time between scrapes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// PID of the target, for /proc memory (found automatically for local targets).
    #[arg(long)]
    pid: Option<u32>,
    /// Extra request header 'Name: value' (repeatable; values are never logged).
    #[arg(long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Per-request timeout (default: the interval, at most 30s).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Retries after a failed request (with exponential backoff and jitter).
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Delete old segments: an age like 7d, or a total size like 10GiB.
    #[arg(long)]
    retain: Option<Retention>,
    /// Commit a segment at least this often (at most this much data is lost on a crash).
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    rotate: Duration,
    /// Commit a segment once this much data is buffered.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    rotate_size: u64,
    /// Profiles to scrape (goroutineleak is skipped when the target does not serve it).
    #[arg(long, value_delimiter = ',', default_value = "heap,goroutine,goroutineleak", value_parser = parse_kind)]
    profiles: Vec<ProfileKind>,
    /// Path of net/http/pprof below the target URL.
    #[arg(long, default_value = "/debug/pprof")]
    pprof_path: String,
    /// Path of expvar below the target URL (MemStats; falls back to heap?debug=1).
    #[arg(long, default_value = "/debug/vars")]
    vars_path: String,
    /// Ask the target to GC before each heap profile (fresher in-use numbers, costs a GC).
    #[arg(long)]
    gc: bool,
    /// Start even if the target does not answer yet (failures are recorded as gaps).
    #[arg(long)]
    wait: bool,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Profile files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Capture directory (created, or appended to when it already is a capture).
    #[arg(long)]
    out: PathBuf,
    /// Target name for all profiles (default: each file's directory).
    #[arg(long)]
    target: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 10s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{s:?}: {e} (e.g. 16MiB)"))
}

fn parse_kind(s: &str) -> Result<ProfileKind, String> {
    match s.trim() {
        "heap" => Ok(ProfileKind::Heap),
        "goroutine" => Ok(ProfileKind::Goroutine),
        "goroutineleak" => Ok(ProfileKind::GoroutineLeak),
        other => Err(format!("unknown profile {other:?} (heap, goroutine, goroutineleak)")),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(a) => record_cmd(a),
        Command::Import(a) => import_cmd(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("leakscope-recorder: error: {msg}");
            ExitCode::from(1)
        }
    }
}

fn record_cmd(a: RecordArgs) -> anyhow::Result<ExitCode> {
    let target = Target::parse(&a.target, &a.pprof_path, &a.vars_path, &a.headers)?;
    let timeout = a.timeout.unwrap_or_else(|| a.interval.min(Duration::from_secs(30)));
    let manifest_options = serde_json::json!({
        "interval": humantime::format_duration(a.interval).to_string(),
        "duration": a.duration.map(|d| humantime::format_duration(d).to_string()),
        "pid": a.pid,
        "timeout": humantime::format_duration(timeout).to_string(),
        "retries": a.retries,
        "retain": a.retain.map(|r| format!("{r:?}")),
        "rotate": humantime::format_duration(a.rotate).to_string(),
        "rotate_size": a.rotate_size,
        "profiles": a.profiles.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "pprof_path": a.pprof_path,
        "vars_path": a.vars_path,
        "gc": a.gc,
        "header_names": target.header_names(),
    });
    let opts = RecordOptions {
        target,
        out: a.out,
        interval: a.interval,
        duration: a.duration,
        pid: a.pid,
        timeout,
        retries: a.retries,
        retain: a.retain,
        rotation: RotationPolicy {
            max_age_ns: a.rotate.as_nanos().min(i64::MAX as u128) as i64,
            max_bytes: a.rotate_size as usize,
        },
        profiles: a.profiles,
        gc: a.gc,
        wait: a.wait,
        manifest_options,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("installing signal handlers")?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    let out = opts.out.clone();
    let s = record::run(opts, rx)?;
    let mut kinds: Vec<_> = s.profiles.iter().map(|(k, n)| format!("{n} {k}")).collect();
    kinds.sort();
    log::info!(
        "done: {} profiles ({}), {} process samples, {} failed scrape attempts, {} run(s), {} segment files in {}",
        s.profiles.values().sum::<u64>(),
        if kinds.is_empty() { "none".into() } else { kinds.join(", ") },
        s.process_rows,
        s.failed_attempts,
        s.runs,
        s.segments,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn import_cmd(a: ImportArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let opts = ImportOptions {
        paths: a.paths,
        out: a.out,
        target: a.target,
        progress: std::io::stderr().is_terminal(),
    };
    let s = import::run(&opts)?;
    for (path, reason) in &s.failed {
        eprintln!("leakscope-recorder: error: {}: {}", path.display(), reason.replace('\n', " "));
    }
    if s.imported == 0 {
        anyhow::bail!("no profile could be imported ({} failed)", s.failed.len());
    }
    log::info!(
        "imported {} profiles ({} run(s), {} segment files) into {}{}",
        s.imported,
        s.runs,
        s.segments,
        opts.out.display(),
        if s.failed.is_empty() { String::new() } else { format!("; {} files failed", s.failed.len()) }
    );
    Ok(if s.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
