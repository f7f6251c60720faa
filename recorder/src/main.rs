//! `leakscope-recorder`: record a live Go service, or import pprof files, into a capture.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use leakscope_capture::pprof::ProfileKind;
use leakscope_capture::segment::RotationPolicy;
use leakscope_recorder::import::{self, ImportOptions};
use leakscope_recorder::native::Sampling;
use leakscope_recorder::record::{self, RecordOptions};
use leakscope_recorder::retain::Retention;
use leakscope_recorder::target::Target;
use leakscope_recorder::upload::{self, UploadTarget};

#[derive(Parser)]
#[command(
    name = "leakscope-recorder",
    version,
    about = "Record a Go service's memory (pprof + process stats) into a leakscope capture"
)]
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
      --header \"Authorization: Bearer $TOKEN\" --out ./capture
  leakscope-recorder record --pid 4242 --native --out ./capture      (C allocations, as root)
  leakscope-recorder record --pid 4242 --native --native-sample-bytes 512KiB --out ./capture
  leakscope-recorder record --target http://localhost:6060 --pid 4242 --native --out ./capture

Stops on --duration, SIGINT or SIGTERM, always committing the open segment.")]
    Record(Box<RecordArgs>),
    /// Import pprof heap/goroutine files (.pb.gz, .pprof, heap_YYYY-MM-DD_HH-MM-SS.prof) into a capture.
    #[command(after_help = "Examples:
  leakscope-recorder import ./profiles/ --out ./capture
  leakscope-recorder import heap1.pb.gz heap2.pb.gz --out ./capture --target api-7f9c")]
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct RecordArgs {
    /// Base URL of the service serving net/http/pprof (http or https, optional path prefix).
    /// Optional with --native (then only native allocations and /proc are recorded).
    #[arg(long, required_unless_present = "native")]
    target: Option<String>,
    /// Capture directory (created, or appended to when it already is a capture).
    #[arg(long)]
    out: PathBuf,
    /// Label of the capture in its manifest (repeatable), e.g. `--label pod=api-7`: groups
    /// captures in `leakscope fleet rank --by label:KEY`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = leakscope_capture::manifest::parse_label)]
    labels: Vec<(String, String)>,
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
    #[arg(long, value_parser = parse_retain)]
    retain: Option<RetainArg>,
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
    /// Trace native (C/cgo) allocations of --pid with eBPF uprobes on its malloc (needs root).
    #[arg(long, requires = "pid")]
    native: bool,
    /// With --native: trace one allocation in N (weighted by N, so totals stay unbiased).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    native_sample: u32,
    /// With --native: sample by size instead: an allocation of SIZE bytes or more is always
    /// traced, a smaller one with probability size/SIZE (weighted so totals stay unbiased).
    #[arg(long, value_name = "SIZE", requires = "native", value_parser = parse_sample_bytes)]
    native_sample_bytes: Option<u64>,
    /// With --native: capacity of the kernel's outstanding-allocation table.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1024..))]
    native_max_outstanding: u32,
    /// With --native: write every traced allocation and free to the native_events table.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    native_events: bool,
    /// Also upload every committed segment set and the manifest to s3://BUCKET/PREFIX in
    /// the background (credentials from the AWS environment: AWS_ACCESS_KEY_ID, ...).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    upload: Option<String>,
    /// With --upload: an S3-compatible server instead of AWS (e.g. http://127.0.0.1:9000;
    /// plain HTTP and path-style requests).
    #[arg(long, value_name = "URL", requires = "upload")]
    s3_endpoint: Option<String>,
    /// With --upload: how long to wait on exit for the sets not uploaded yet (what is left
    /// is uploaded by the next run with the same --out and --upload).
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    upload_wait: Duration,
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Profile files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Capture directory (created, or appended to when it already is a capture).
    #[arg(long)]
    out: PathBuf,
    /// Label of the capture in its manifest (repeatable), e.g. `--label pod=api-7`: groups
    /// captures in `leakscope fleet rank --by label:KEY`.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = leakscope_capture::manifest::parse_label)]
    labels: Vec<(String, String)>,
    /// Target name for all profiles (default: each file's directory).
    #[arg(long)]
    target: Option<String>,
    /// Also upload every committed segment set and the manifest to s3://BUCKET/PREFIX in
    /// the background (credentials from the AWS environment: AWS_ACCESS_KEY_ID, ...).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    upload: Option<String>,
    /// With --upload: an S3-compatible server instead of AWS (e.g. http://127.0.0.1:9000;
    /// plain HTTP and path-style requests).
    #[arg(long, value_name = "URL", requires = "upload")]
    s3_endpoint: Option<String>,
    /// With --upload: how long to wait on exit for the sets not uploaded yet (what is left
    /// is uploaded by the next run with the same --out and --upload).
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    upload_wait: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 10s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(d)
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 60s, 5m, 0s)"))
}

/// `--upload` and `--s3-endpoint` parsed (one-line errors naming the URL).
fn upload_target(
    upload: Option<&str>,
    endpoint: Option<&str>,
) -> anyhow::Result<Option<UploadTarget>> {
    let Some(url) = upload else {
        return Ok(None);
    };
    let url = leakscope_capture::remote::RemoteUrl::parse(url)?;
    let endpoint = endpoint
        .map(leakscope_capture::remote::Endpoint::parse)
        .transpose()?;
    Ok(Some(UploadTarget { url, endpoint }))
}

/// Connects the uploader (checking the bucket: fails fast on bad credentials, a missing
/// bucket or an unreachable endpoint) and starts it on capture `out`.
fn start_upload(
    target: Option<UploadTarget>,
    out: &std::path::Path,
) -> anyhow::Result<Option<upload::Uploader>> {
    let Some(target) = target else {
        return Ok(None);
    };
    let url = target.url.clone();
    let connected = upload::connect(target)?;
    log::info!(
        "uploading committed segment sets to {url} ({} already there)",
        connected.already_uploaded()
    );
    Ok(Some(connected.start(out)))
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{s:?}: {e} (e.g. 16MiB)"))
}

fn parse_sample_bytes(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("{s:?}: must be at least 1 byte (e.g. 512KiB)")),
        n => Ok(n),
    }
}

/// The sampling mode of `--native`: `--native-sample N` or `--native-sample-bytes SIZE`,
/// which exclude each other.
fn native_sampling(a: &RecordArgs) -> Result<Sampling, String> {
    match a.native_sample_bytes {
        Some(_) if a.native_sample > 1 => Err(format!(
            "--native-sample-bytes cannot be used with --native-sample {} (sample by size or by calls, not both)",
            a.native_sample
        )),
        Some(r) => Ok(Sampling::Bytes(r)),
        None => Ok(Sampling::Every(a.native_sample)),
    }
}

/// `--retain` parsed, with the text given (what the manifest records).
#[derive(Clone)]
struct RetainArg {
    limit: Retention,
    text: String,
}

fn parse_retain(s: &str) -> Result<RetainArg, String> {
    Ok(RetainArg {
        limit: s.parse()?,
        text: s.trim().to_string(),
    })
}

fn parse_kind(s: &str) -> Result<ProfileKind, String> {
    match s.trim() {
        "heap" => Ok(ProfileKind::Heap),
        "goroutine" => Ok(ProfileKind::Goroutine),
        "goroutineleak" => Ok(ProfileKind::GoroutineLeak),
        other => Err(format!(
            "unknown profile {other:?} (heap, goroutine, goroutineleak)"
        )),
    }
}

fn main() -> ExitCode {
    // A damaged segment read back (import's resume, upload) is an error naming the file,
    // without a panic report on stderr.
    leakscope_capture::decode_guard::install_hook();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    if let Command::Record(a) = &cli.command {
        if let Err(msg) = native_sampling(a) {
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, msg)
                .exit();
        }
    }
    let result = match cli.command {
        Command::Record(a) => record_cmd(*a),
        Command::Import(a) => import_cmd(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leakscope-recorder: error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(leakscope_capture::exit::ERROR)
        }
    }
}

/// A runtime error message on one line: line breaks (`\n`, `\r`) become single spaces.
fn one_line(msg: &str) -> String {
    msg.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The options recorded in the manifest (header names only, never values).
fn manifest_options(
    a: &RecordArgs,
    target: Option<&Target>,
    timeout: Duration,
) -> serde_json::Value {
    let mut o = serde_json::json!({
        "interval": humantime::format_duration(a.interval).to_string(),
        "duration": a.duration.map(|d| humantime::format_duration(d).to_string()),
        "pid": a.pid,
        "timeout": humantime::format_duration(timeout).to_string(),
        "retries": a.retries,
        "retain": a.retain.as_ref().map(|r| r.text.clone()),
        "rotate": humantime::format_duration(a.rotate).to_string(),
        "rotate_size": a.rotate_size,
        "profiles": a.profiles.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "pprof_path": a.pprof_path,
        "vars_path": a.vars_path,
        "gc": a.gc,
        "header_names": target.map(|t| t.header_names()).unwrap_or_default(),
    });
    if let Some(u) = &a.upload {
        // The URL and endpoint only: credentials come from the environment, never stored.
        o["upload"] = serde_json::json!(u);
        o["s3_endpoint"] = serde_json::json!(a.s3_endpoint);
    }
    if a.native {
        o["native"] = serde_json::json!(true);
        o["native_sample"] = serde_json::json!(a.native_sample);
        o["native_sample_bytes"] = serde_json::json!(a.native_sample_bytes);
        o["native_max_outstanding"] = serde_json::json!(a.native_max_outstanding);
        o["native_events"] = serde_json::json!(a.native_events);
    }
    o
}

fn record_cmd(a: RecordArgs) -> anyhow::Result<ExitCode> {
    leakscope_recorder::malloc::tune_for_recording();
    let target = match &a.target {
        Some(t) => Some(Target::parse(t, &a.pprof_path, &a.vars_path, &a.headers)?),
        None => None,
    };
    let timeout = a
        .timeout
        .unwrap_or_else(|| a.interval.min(Duration::from_secs(30)));
    let upload_target = upload_target(a.upload.as_deref(), a.s3_endpoint.as_deref())?;
    let manifest_options = manifest_options(&a, target.as_ref(), timeout);
    let sampling = native_sampling(&a).map_err(anyhow::Error::msg)?;
    let native = a.native.then(|| leakscope_recorder::native::NativeOptions {
        pid: a.pid.unwrap_or(0),
        sampling,
        max_outstanding: a.native_max_outstanding,
        write_events: a.native_events,
        ..Default::default()
    });
    let uploader = start_upload(upload_target, &a.out)?;
    let upload_wait = a.upload_wait;
    let opts = RecordOptions {
        labels: a.labels.into_iter().collect(),
        upload: uploader.as_ref().map(|u| u.handle()),
        target,
        out: a.out,
        interval: a.interval,
        duration: a.duration,
        pid: a.pid,
        timeout,
        retries: a.retries,
        retain: a.retain.map(|r| r.limit),
        rotation: RotationPolicy {
            max_age_ns: a.rotate.as_nanos().min(i64::MAX as u128) as i64,
            max_bytes: a.rotate_size as usize,
        },
        profiles: a.profiles,
        gc: a.gc,
        wait: a.wait,
        manifest_options,
        native,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    let out = opts.out.clone();
    let result = record::run(opts, rx);
    let report = uploader.map(|u| match &result {
        Ok(_) => u.finish(upload_wait),
        Err(_) => u.abort(),
    });
    let s = result?;
    let mut kinds: Vec<_> = s.profiles.iter().map(|(k, n)| format!("{n} {k}")).collect();
    kinds.sort();
    if s.native_snapshots > 0 {
        log::info!(
            "native: {} snapshots, {} events lost or untracked",
            s.native_snapshots,
            s.native_losses
        );
    }
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
    let _ = report; // pending sets were logged by finish(); the capture is complete locally
    Ok(ExitCode::SUCCESS)
}

fn import_cmd(a: ImportArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let upload_target = upload_target(a.upload.as_deref(), a.s3_endpoint.as_deref())?;
    // Checked before importing (fails fast); started once the import has committed.
    let connected = upload_target.map(upload::connect).transpose()?;
    let opts = ImportOptions {
        paths: a.paths,
        out: a.out,
        target: a.target,
        progress: std::io::stderr().is_terminal(),
        labels: a.labels.into_iter().collect(),
    };
    let s = import::run(&opts)?;
    if let Some(c) = connected {
        if opts
            .out
            .join(leakscope_capture::manifest::MANIFEST_FILE)
            .exists()
        {
            c.start(&opts.out).finish(a.upload_wait);
        }
    }
    for (path, reason) in &s.failed {
        eprintln!(
            "leakscope-recorder: error: {}: {}",
            path.display(),
            one_line(reason)
        );
    }
    if s.imported == 0 && s.skipped == 0 {
        anyhow::bail!("no profile could be imported ({} failed)", s.failed.len());
    }
    log::info!(
        "imported {} profiles ({} run(s), {} segment files) into {}{}{}",
        s.imported,
        s.runs,
        s.segments,
        opts.out.display(),
        if s.skipped == 0 {
            String::new()
        } else {
            format!("; skipped {} duplicate profile(s)", s.skipped)
        },
        if s.failed.is_empty() {
            String::new()
        } else {
            format!("; {} files failed", s.failed.len())
        }
    );
    Ok(if s.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(leakscope_capture::exit::FOUND)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn record_args(extra: &[&str]) -> RecordArgs {
        let mut args = vec![
            "leakscope-recorder",
            "record",
            "--target",
            "http://127.0.0.1:6060",
            "--out",
            "c",
        ];
        args.extend_from_slice(extra);
        match Cli::try_parse_from(args).unwrap().command {
            Command::Record(a) => *a,
            Command::Import(_) => unreachable!(),
        }
    }

    #[test]
    fn help_example_lets_the_shell_expand_the_token() {
        let help = Cli::command()
            .find_subcommand_mut("record")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(
            help.contains(r#"--header "Authorization: Bearer $TOKEN""#),
            "{help}"
        );
        assert!(!help.contains("'Authorization"), "{help}");
    }

    #[test]
    fn manifest_keeps_retain_as_given() {
        let target =
            Target::parse("http://127.0.0.1:6060", "/debug/pprof", "/debug/vars", &[]).unwrap();
        for text in ["7d", "10GiB"] {
            let a = record_args(&["--retain", text]);
            let options = manifest_options(&a, Some(&target), Duration::from_secs(10));
            assert_eq!(options["retain"], text);
        }
        let a = record_args(&[]);
        assert!(manifest_options(&a, Some(&target), Duration::from_secs(10))["retain"].is_null());
        assert!(Cli::try_parse_from([
            "leakscope-recorder",
            "record",
            "--target",
            "h:1",
            "--out",
            "c",
            "--retain",
            "soon"
        ])
        .is_err());
    }

    #[test]
    fn native_needs_a_pid_and_makes_the_target_optional() {
        let parse = |args: &[&str]| {
            let mut v = vec!["leakscope-recorder", "record", "--out", "c"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v)
        };
        assert!(parse(&[]).is_err(), "neither --target nor --native");
        assert!(parse(&["--native"]).is_err(), "--native without --pid");
        assert!(parse(&["--native", "--pid", "1", "--native-sample", "0"]).is_err());
        let Command::Record(a) = parse(&["--native", "--pid", "1", "--native-sample", "10"])
            .unwrap()
            .command
        else {
            unreachable!()
        };
        assert!(a.target.is_none() && a.native && a.native_sample == 10 && a.native_events);
        let o = manifest_options(&a, None, Duration::from_secs(1));
        assert_eq!(o["native_sample"], 10);
        let plain = record_args(&[]);
        assert!(manifest_options(&plain, None, Duration::from_secs(1))
            .get("native")
            .is_none());
    }

    #[test]
    fn native_sample_bytes_takes_a_size_and_excludes_sampling_by_calls() {
        let parse = |args: &[&str]| {
            let mut v = vec!["leakscope-recorder", "record", "--out", "c", "--pid", "1"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).map(|c| match c.command {
                Command::Record(a) => *a,
                Command::Import(_) => unreachable!(),
            })
        };
        let a = parse(&["--native", "--native-sample-bytes", "512KiB"]).unwrap();
        assert_eq!(a.native_sample_bytes, Some(512 * 1024));
        assert_eq!(native_sampling(&a), Ok(Sampling::Bytes(512 * 1024)));
        let o = manifest_options(&a, None, Duration::from_secs(1));
        assert_eq!(
            (
                o["native_sample_bytes"].as_u64(),
                o["native_sample"].as_u64()
            ),
            (Some(524288), Some(1))
        );
        // Plain bytes and decimal units too.
        let a = parse(&["--native", "--native-sample-bytes", "4096"]).unwrap();
        assert_eq!(native_sampling(&a), Ok(Sampling::Bytes(4096)));
        let a = parse(&["--native", "--native-sample-bytes", "1MB"]).unwrap();
        assert_eq!(a.native_sample_bytes, Some(1_000_000));
        // --native-sample 1 (every call, the default) may be given alongside.
        let a = parse(&[
            "--native",
            "--native-sample",
            "1",
            "--native-sample-bytes",
            "1KiB",
        ])
        .unwrap();
        assert_eq!(native_sampling(&a), Ok(Sampling::Bytes(1024)));
        // A rate above 1 conflicts, named in the message.
        let a = parse(&[
            "--native",
            "--native-sample",
            "10",
            "--native-sample-bytes",
            "1KiB",
        ])
        .unwrap();
        let e = native_sampling(&a).unwrap_err();
        assert!(e.contains("--native-sample 10") && !e.contains('\n'), "{e}");
        // Bad sizes and missing --native are usage errors.
        for bad in ["0", "0KiB", "lots", "-5", ""] {
            assert!(
                parse(&["--native", "--native-sample-bytes", bad]).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse(&["--native-sample-bytes", "1KiB", "--target", "h:1"]).is_err());
        // Without the flag: sampling by calls, recorded as null.
        let a = parse(&["--native", "--native-sample", "64"]).unwrap();
        assert_eq!(native_sampling(&a), Ok(Sampling::Every(64)));
        assert!(
            manifest_options(&a, None, Duration::from_secs(1))["native_sample_bytes"].is_null()
        );
    }

    #[test]
    fn upload_urls_are_checked_and_only_the_url_reaches_the_manifest() {
        let t = upload_target(Some("s3://caps/team/api/"), Some("http://127.0.0.1:9000"))
            .unwrap()
            .unwrap();
        assert_eq!(t.url.to_string(), "s3://caps/team/api");
        assert!(upload_target(None, None).unwrap().is_none());
        for (url, endpoint) in [
            ("s3:/caps", None),
            ("s3://KEY:hunter2@caps/x", None),
            ("s3://caps/x", Some("http://KEY:hunter2@127.0.0.1:9000")),
        ] {
            let e = format!("{:#}", upload_target(Some(url), endpoint).unwrap_err());
            assert!(!e.contains("hunter2") && !e.contains('\n'), "{e}");
        }
        let a = record_args(&["--upload", "s3://caps/x", "--s3-endpoint", "http://h:1"]);
        let o = manifest_options(&a, None, Duration::from_secs(1));
        assert_eq!(
            (o["upload"].as_str(), o["s3_endpoint"].as_str()),
            (Some("s3://caps/x"), Some("http://h:1"))
        );
        assert!(
            manifest_options(&record_args(&[]), None, Duration::from_secs(1))
                .get("upload")
                .is_none()
        );
        // --s3-endpoint needs --upload.
        assert!(Cli::try_parse_from([
            "leakscope-recorder",
            "record",
            "--target",
            "h:1",
            "--out",
            "c",
            "--s3-endpoint",
            "http://h:1"
        ])
        .is_err());
    }

    #[test]
    fn runtime_errors_are_one_line() {
        let e = anyhow::anyhow!("line one\r\nline two\n\nline three\r").context("outer");
        assert_eq!(
            one_line(&format!("{e:#}")),
            "outer: line one line two line three"
        );
    }
}
