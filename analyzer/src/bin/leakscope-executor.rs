//! `leakscope-executor`: a Ballista executor that knows leakscope's SQL functions; it
//! registers with a `leakscope-scheduler` and runs the tasks of `leakscope sql --cluster`
//! queries (see docs/cluster.md). Thin: parses the command line and calls
//! `leakscope::source::cluster::run_executor`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use leakscope::source::cluster::{self, ExecutorOptions};

const EXAMPLES: &str = "Examples:
  leakscope-executor --scheduler df://127.0.0.1:50050
  leakscope-executor --scheduler df://127.0.0.1:50050 --port 50061 --grpc-port 50062   # a second one
  leakscope-executor --scheduler df://sched.internal:50050 --bind-host 0.0.0.0 \\
      --external-host worker1.internal --concurrent-tasks 4 --work-dir /var/tmp/leakscope

Executors read captures by the paths the client gives: every executor must see local
captures at the same absolute paths (the same machine, or a shared file system). For
s3:// captures, every executor (and the scheduler) needs read access to the bucket from
its own AWS environment, and the same --s3-endpoint as the client.";

/// Runs a Ballista executor with leakscope's SQL functions until SIGINT or SIGTERM.
#[derive(Parser)]
#[command(name = "leakscope-executor", version, after_help = EXAMPLES)]
struct Args {
    /// The scheduler to register with.
    #[arg(
        long,
        default_value = "df://127.0.0.1:50050",
        value_name = "df://HOST:PORT"
    )]
    scheduler: String,
    /// Address to listen on (IP; 0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    bind_host: String,
    /// Host name the scheduler and the other executors reach this executor by
    /// (default: --bind-host).
    #[arg(long, value_name = "HOST")]
    external_host: Option<String>,
    /// Arrow Flight port (shuffle data and query results).
    #[arg(long, short, default_value_t = 50051)]
    port: u16,
    /// gRPC port (tasks pushed by the scheduler).
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Tasks to run at once (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    concurrent_tasks: usize,
    /// Directory for shuffle files (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// How long to keep trying to reach the scheduler at start-up (0s: one try).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    connect_timeout: Duration,
    /// S3-compatible server for the segments of `s3://` captures (e.g.
    /// http://127.0.0.1:9000; plain HTTP allowed, path-style requests). Credentials come
    /// from this process's AWS environment; without this flag, AWS S3 itself.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(e) = &args.s3_endpoint {
        leakscope::source::remote::set_endpoint(e)?;
    }
    let options = ExecutorOptions {
        external_host: args.external_host.unwrap_or_else(|| args.bind_host.clone()),
        scheduler: args.scheduler,
        bind_host: args.bind_host,
        flight_port: args.port,
        grpc_port: args.grpc_port,
        concurrent_tasks: args.concurrent_tasks,
        work_dir: args.work_dir,
        connect_timeout: args.connect_timeout,
    };
    cluster::run_executor(options).await?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    cluster::run_binary("leakscope-executor", run(args))
}
