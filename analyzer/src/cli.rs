//! The command line of `leakscope` (binary-only): clap's argument types, and the value
//! enums that map onto the library's types (the library itself does not depend on clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use leakscope::model::metric::Metric;
use leakscope::model::site::GroupBy;
use leakscope::output::results::OutputFormat;
use leakscope::rank::alert::Thresholds;
use leakscope::watch::BodyFormat;

/// Declares a clap value enum that mirrors a library enum variant for variant (same
/// names, same help), with the conversion into it.
macro_rules! value_enum {
    ($(#[$doc:meta])* $name:ident => $target:ty { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        pub(crate) enum $name {
            $($(#[$vdoc])* $variant),*
        }
        impl From<$name> for $target {
            fn from(v: $name) -> $target {
                match v {
                    $($name::$variant => <$target>::$variant),*
                }
            }
        }
    };
}

value_enum! {
    /// `--metric`: a sample value column and the profile kind it comes from.
    MetricArg => Metric {
        /// Go heap bytes in use (heap profile, as of the last GC).
        #[value(name = "inuse_space", alias = "inuse-space")]
        InuseSpace,
        /// Go heap objects in use.
        #[value(name = "inuse_objects", alias = "inuse-objects")]
        InuseObjects,
        /// Goroutines (goroutine profile).
        Goroutines,
        /// Native (C) bytes outstanding, traced with eBPF.
        Native,
    }
}

value_enum! {
    /// `--by`: how stacks are grouped for ranking.
    GroupByArg => GroupBy {
        /// First frame outside the runtime/standard library, with file and line.
        Site,
        /// The whole stack (stack id).
        Stack,
        /// First frame outside the runtime/standard library, function name only.
        Function,
    }
}

value_enum! {
    /// `sql --format`: output format of query results.
    OutputFormatArg => OutputFormat {
        /// Aligned text table.
        Table,
        /// CSV with a header row.
        Csv,
        /// JSON array of objects.
        Json,
        /// Parquet file (requires --output).
        Parquet,
    }
}

value_enum! {
    /// `watch --body`: shape of the JSON posted to the webhook.
    BodyFormatArg => BodyFormat {
        /// Slack incoming-webhook message: `text` plus `blocks` with one section of fields per site.
        Slack,
        /// A plain document: capture, time and an array of findings.
        Generic,
    }
}

pub(crate) const EXAMPLES: &str = "Examples:
  leakscope rank fixtures/captures/demo
  leakscope rank cap --metric goroutines --format markdown > ticket.md
  leakscope sql cap \"SELECT site, SUM(inuse_bytes) FROM sample_stacks GROUP BY site\"
  leakscope sql before after --query top_growth
  leakscope check cap --max-growth 5MiB/h --min-confidence 0.9
  leakscope watch cap --every 5m --webhook https://hooks.slack.com/services/... --state watch.json
  leakscope report cap -o report.html --png charts";

/// Finds what leaks in a leakscope capture, and lets you ask your own questions in SQL.
#[derive(Parser)]
#[command(name = "leakscope", version, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// S3-compatible server for `s3://BUCKET/PREFIX` captures (e.g. http://127.0.0.1:9000;
    /// plain HTTP allowed, path-style requests). Credentials come from the AWS environment.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) s3_endpoint: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run SQL over one or more captures (tables: profiles, samples, stacks, process, scrapes;
    /// views: stack_info, sample_stacks).
    Sql(SqlArgs),
    /// Rank call sites by leak rate, with confidence, shape and hints.
    Rank(RankArgs),
    /// Exit 1 when a leak above the thresholds is found, 0 when clean, 2 on bad input.
    Check(CheckArgs),
    /// Write the growth between two profiles as a pprof file (`go tool pprof` opens it).
    ExportPprof(ExportArgs),
    /// Write a self-contained HTML report (verdict, memory timeline, ranked sites with stacks
    /// and charts, goroutines, flame graphs of growth); optionally PNG charts.
    Report(ReportArgs),
    /// Re-rank a capture while it is recorded and post an alert to a webhook (Slack or
    /// generic JSON) when a site crosses the thresholds; one alert per site until it changes.
    #[command(after_help = WATCH_EXAMPLES)]
    Watch(WatchArgs),
    /// Questions about many captures at once (a fleet of pods, hosts or services).
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Compare two captures (or groups of captures) site by site: growth rate before and
    /// after with confidence intervals, and a verdict per site (new leak, worse, still
    /// leaking, inconclusive, improved, fixed, unchanged). Exit 1 on a new or worse leak.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
}

pub(crate) const WATCH_EXAMPLES: &str =
    "Exit status with --once: 0 nothing above the thresholds (or no data yet), \
1 a site is above them (alerted now or before), 2 bad input, 3 the alert could not be posted.
Without --once: runs until SIGINT/SIGTERM, then exits 0.

Examples:
  leakscope watch cap --webhook https://hooks.slack.com/services/T0/B0/XXXX
  LEAKSCOPE_WEBHOOK=https://alerts.internal/hook leakscope watch cap --body generic --every 1m \\
      --max-growth 20MiB/h --state /var/lib/leakscope/watch-api.json
  leakscope watch cap --once --webhook http://127.0.0.1:9000/ --state watch.json   # from cron";

#[derive(Args)]
pub(crate) struct SqlArgs {
    /// Capture directories, then optionally the SQL text (the last argument if it contains a space).
    #[arg(value_name = "CAPTURE... [SQL]")]
    pub(crate) args: Vec<String>,
    /// Run a shipped query by name (see --list).
    #[arg(long, short)]
    pub(crate) query: Option<String>,
    /// List shipped queries with descriptions.
    #[arg(long)]
    pub(crate) list: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub(crate) format: OutputFormatArg,
    /// Write results to this file instead of stdout (required for parquet).
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Run on a Ballista cluster (leakscope-scheduler and leakscope-executor, see
    /// docs/cluster.md) instead of in this process; executors read the same capture paths.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) cluster: Option<String>,
}

#[derive(Args, Clone)]
pub(crate) struct Selection {
    /// Capture directories (several: before/after, many hosts).
    #[arg(required = true)]
    pub(crate) captures: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) group: Grouping,
    /// Read and aggregate the sample rows on a Ballista cluster (leakscope-scheduler and
    /// leakscope-executor, see docs/cluster.md); fitting stays in this process. Executors
    /// read the same capture paths.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) cluster: Option<String>,
}

/// How to group and rank (shared by every ranking command).
#[derive(Args, Clone)]
pub(crate) struct Grouping {
    /// How to group stacks.
    #[arg(long, value_enum, default_value = "site")]
    pub(crate) by: GroupByArg,
    /// Metrics to rank (repeatable); default: every metric the capture has.
    #[arg(long, value_enum)]
    pub(crate) metric: Vec<MetricArg>,
    /// Extra frames (regex on function names) that are never a call site, e.g. an in-house pool.
    #[arg(long, value_name = "REGEX")]
    pub(crate) skip: Vec<String>,
    /// Directories to find Go sources in (for hints quoting the growing line); the recorded
    /// path is tried first, then its trailing components under each directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) source: Vec<PathBuf>,
    /// Judge only the first DURATION of the recording (e.g. 2m): the verdicts as they
    /// stood then. Process memory is still summarised over the whole capture.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) first: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RankFormat {
    Table,
    Json,
    Markdown,
}

#[derive(Args)]
pub(crate) struct RankArgs {
    #[command(flatten)]
    pub(crate) sel: Selection,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub(crate) format: RankFormat,
    /// Rows per section in table/markdown output.
    #[arg(long, default_value_t = 15)]
    pub(crate) top: usize,
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) sel: Selection,
    #[command(flatten)]
    pub(crate) limits: Limits,
}

/// Alert thresholds (`check` and `watch`).
#[derive(Args)]
pub(crate) struct Limits {
    /// Largest acceptable growth of a byte metric, e.g. 5MiB/h.
    #[arg(long, default_value = "5MiB/h")]
    pub(crate) max_growth: String,
    /// Largest acceptable goroutine growth, e.g. 100/h.
    #[arg(long, default_value = "100/h")]
    pub(crate) max_goroutine_growth: String,
    /// Smallest confidence (0..1) for a finding to count. Confidence is calibrated (a leak
    /// at confidence c was a real leak at least a share c of the time on simulated
    /// recordings, docs/accuracy.md), so 0.9 already means at most one false alarm in ten.
    #[arg(long, default_value_t = 0.9)]
    pub(crate) min_confidence: f64,
    /// Also count sites that are `growing` (too early to tell) above the growth limits:
    /// `check` fails on them, `watch` alerts on them.
    #[arg(long, alias = "alert-on-growing")]
    pub(crate) fail_on_growing: bool,
}

impl Limits {
    pub(crate) fn parse(&self) -> anyhow::Result<Thresholds> {
        let mut t = Thresholds::parse(
            &self.max_growth,
            &self.max_goroutine_growth,
            self.min_confidence,
        )?;
        t.include_growing = self.fail_on_growing;
        Ok(t)
    }
}

#[derive(Args)]
pub(crate) struct WatchArgs {
    /// Capture directory, usually one a recorder is still writing.
    pub(crate) capture: PathBuf,
    #[command(flatten)]
    pub(crate) group: Grouping,
    #[command(flatten)]
    pub(crate) limits: Limits,
    /// Webhook to POST alerts to (Slack incoming webhook, or any HTTP(S) endpoint taking JSON).
    #[arg(
        long,
        env = "LEAKSCOPE_WEBHOOK",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) webhook: String,
    /// Time between rounds (from the start of one to the start of the next), e.g. 30s, 5m.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) every: Duration,
    /// Body of the POST: Slack message (text + blocks with fields) or a generic JSON document.
    #[arg(long, value_enum, default_value = "slack")]
    pub(crate) body: BodyFormatArg,
    /// Run one round and exit (status 0 clean, 1 above the thresholds, 3 post failed).
    #[arg(long)]
    pub(crate) once: bool,
    /// Remember alerted sites in this JSON file across restarts (default: in memory only).
    /// Must not be inside the capture directory.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// Do not post "resolved" when an alerted site stays below the thresholds.
    #[arg(long)]
    pub(crate) no_resolved: bool,
    /// Timeout of each POST attempt (connecting: at most 5s of it).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Duration,
}

/// A humantime duration (`30s`, `5m`, `1h30m`), longer than zero.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?}: {e} (e.g. 30s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(d)
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// Capture directories.
    #[arg(required = true)]
    pub(crate) captures: Vec<PathBuf>,
    /// Start of the window (RFC 3339); default: first profile of the latest run.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// End of the window (RFC 3339); default: last profile of the latest run.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// What to export: heap (inuse_space, with inuse_objects) or goroutines.
    #[arg(long, value_enum, default_value = "inuse_space")]
    pub(crate) metric: MetricArg,
    /// Output file (gzip-compressed pprof protobuf).
    #[arg(long, short, required = true)]
    pub(crate) output: PathBuf,
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    pub(crate) sel: Selection,
    /// HTML file to write.
    #[arg(long, short, required = true, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// Also write PNG charts (timeline, top sites, flame graphs) into this directory.
    #[arg(long, value_name = "DIR")]
    pub(crate) png: Option<PathBuf>,
    /// Start of the flame graphs' growth window (RFC 3339); default: the latest run's first profile.
    #[arg(long, value_parser = leakscope::units::parse_time)]
    pub(crate) from: Option<i64>,
    /// End of the growth window (RFC 3339); default: the latest run's last profile.
    #[arg(long, value_parser = leakscope::units::parse_time)]
    pub(crate) to: Option<i64>,
    /// Rows of the ranked-sites tables.
    #[arg(long, default_value_t = 30)]
    pub(crate) top: usize,
}

/// `leakscope fleet VERB`.
#[derive(Subcommand)]
pub(crate) enum FleetCommand {
    /// Rank every capture below LOCATION on its own, then per call site: in how many units
    /// it leaks, the spread of its rates, and the units that leak far faster than the others.
    #[command(after_help = FLEET_EXAMPLES)]
    Rank(FleetRankArgs),
}

pub(crate) const FLEET_EXAMPLES: &str = "Exit status: 0 ranked (leaks or not), 2 bad input \
(LOCATION missing, no captures, bad --by, no capture could be ranked).

Examples:
  leakscope fleet rank /var/lib/leakscope/captures --by host
  leakscope fleet rank s3://captures/prod --by label:pod --format markdown > fleet.md
  leakscope fleet rank captures --by target --html fleet.html --format json > fleet.json";

#[derive(Args)]
pub(crate) struct FleetRankArgs {
    /// Directory or s3://BUCKET/PREFIX holding the captures (searched up to 4 levels deep).
    pub(crate) location: PathBuf,
    /// How captures are grouped into units: capture (each its own), target, host, or
    /// label:KEY (the manifest's `labels`; captures without the label are skipped).
    #[arg(
        long,
        default_value = "capture",
        value_name = "capture|target|host|label:KEY"
    )]
    pub(crate) by: String,
    /// How stacks are grouped within each capture.
    #[arg(long, value_enum, default_value = "site")]
    pub(crate) group: GroupByArg,
    /// Metrics to rank (repeatable); default: every metric each capture has.
    #[arg(long, value_enum)]
    pub(crate) metric: Vec<MetricArg>,
    /// Extra frames (regex on function names) that are never a call site.
    #[arg(long, value_name = "REGEX")]
    pub(crate) skip: Vec<String>,
    /// Judge only the first DURATION of each recording (e.g. 2m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) first: Option<Duration>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub(crate) format: RankFormat,
    /// Sites in table/markdown output.
    #[arg(long, default_value_t = 20)]
    pub(crate) top: usize,
    /// Also write a self-contained HTML fleet report to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) html: Option<PathBuf>,
    /// Captures ranked at the same time.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) jobs: u16,
    /// Read and aggregate each capture's sample rows on a Ballista cluster
    /// (leakscope-scheduler and leakscope-executor, see docs/cluster.md); fitting and the
    /// fleet summary stay in this process. Executors read the same capture paths.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) cluster: Option<String>,
    /// An outlier's rate is at least this many times the other units' median.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) outlier_factor: f64,
    /// An outlier's rate is more than this many robust standard deviations (1.4826 x MAD)
    /// above the other units' median.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) outlier_z: f64,
}

pub(crate) const COMPARE_EXAMPLES: &str =
    "Exit status: 0 no new or worse leak, 1 a new or worse leak (or, with \
--fail-on-inconclusive, a site the data cannot tell about), 2 bad input.

Examples:
  leakscope compare caps/v1.41 caps/v1.42
  leakscope compare s3://captures/api/before/ s3://captures/api/after/ --format markdown
  leakscope compare before after --metric goroutines --format json > compare.json";

#[derive(Args)]
pub(crate) struct CompareArgs {
    /// The baseline: a capture directory, an s3:// URL, or a directory or prefix holding
    /// several captures (ranked together).
    pub(crate) before: PathBuf,
    /// What to judge against the baseline (the same forms).
    pub(crate) after: PathBuf,
    #[command(flatten)]
    pub(crate) group: Grouping,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub(crate) format: RankFormat,
    /// Rows of the table/markdown output (sites that did not change are only counted).
    #[arg(long, default_value_t = 30)]
    pub(crate) top: usize,
    /// Smallest confidence (0..1) for a leak verdict to count as leaking; below it the
    /// side is unsure and the site inconclusive rather than fixed or new.
    #[arg(long, default_value_t = 0.9)]
    pub(crate) min_confidence: f64,
    /// Also exit 1 when a site is inconclusive (a side too early to tell, or rates that
    /// cannot be told apart where a verdict needs them to be).
    #[arg(long)]
    pub(crate) fail_on_inconclusive: bool,
}

impl Command {
    /// Every local capture location the command reads (for naming a corrupt segment after
    /// a decoder failure); `sql` arguments count when they are existing directories.
    pub(crate) fn locations(&self) -> Vec<PathBuf> {
        match self {
            Command::Sql(a) => a
                .args
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.is_dir())
                .collect(),
            Command::Rank(a) => a.sel.captures.clone(),
            Command::Check(a) => a.sel.captures.clone(),
            Command::ExportPprof(a) => a.captures.clone(),
            Command::Report(a) => a.sel.captures.clone(),
            Command::Watch(a) => vec![a.capture.clone()],
            Command::Fleet(FleetCommand::Rank(a)) => vec![a.location.clone()],
            Command::Compare(a) => vec![a.before.clone(), a.after.clone()],
        }
    }
}
