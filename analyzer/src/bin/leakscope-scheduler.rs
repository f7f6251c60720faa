//! `leakscope-scheduler`: a Ballista scheduler that knows leakscope's SQL functions and
//! capture tables, for `leakscope sql --cluster df://HOST:PORT` (see docs/cluster.md).
//! Thin: parses the command line and calls `leakscope::source::cluster::run_scheduler`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use leakscope::source::cluster::{self, SchedulerOptions};

const EXAMPLES: &str = "Examples:
  leakscope-scheduler                                   # df://127.0.0.1:50050
  leakscope-scheduler --bind-host 0.0.0.0 --external-host sched.internal --port 50050
  leakscope-executor --scheduler df://127.0.0.1:50050   # then start executors
  leakscope sql --cluster df://127.0.0.1:50050 CAPTURE --query top_growth";

/// Runs a Ballista scheduler with leakscope's SQL functions until SIGINT or SIGTERM.
#[derive(Parser)]
#[command(name = "leakscope-scheduler", version, after_help = EXAMPLES)]
struct Args {
    /// Address to listen on (host name or IP; 0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    bind_host: String,
    /// gRPC port of the scheduler (0: any free port; the chosen one is printed).
    #[arg(long, short, default_value_t = cluster::DEFAULT_SCHEDULER_PORT)]
    port: u16,
    /// Host name executors and clients reach this scheduler by (default: --bind-host).
    #[arg(long, value_name = "HOST")]
    external_host: Option<String>,
    /// How long to keep a finished job's state (plan and stages) for clients to ask about
    /// (Ballista's default: 1h; each kept job holds its plan in memory).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration, value_name = "DURATION")]
    keep_finished_jobs: std::time::Duration,
    /// S3-compatible server for the segments of `s3://` captures (e.g.
    /// http://127.0.0.1:9000; plain HTTP allowed, path-style requests). Credentials come
    /// from this process's AWS environment; without this flag, AWS S3 itself.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
}

fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("--bind-host {host}: cannot resolve"))?
        .next()
        .with_context(|| format!("--bind-host {host}: no address"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(e) = &args.s3_endpoint {
        leakscope::source::remote::set_endpoint(e)?;
    }
    let bind = resolve(&args.bind_host, args.port)?;
    let external_host = args.external_host.unwrap_or(args.bind_host);
    let options = SchedulerOptions {
        bind,
        external_host: external_host.clone(),
        keep_finished_jobs: args.keep_finished_jobs,
    };
    cluster::run_scheduler(options, |addr| {
        eprintln!(
            "leakscope-scheduler: listening on {addr} (clients and executors: df://{external_host}:{})",
            addr.port()
        );
    })
    .await?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    cluster::run_binary("leakscope-scheduler", run(args))
}
