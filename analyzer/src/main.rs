//! `leakscope`: the analyzer command line (thin: parsing and printing only).

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use leakscope::alert::{crossings, Thresholds};
use leakscope::catalog::{self, Catalog, SkippedSegment};
use leakscope::load::Metric;
use leakscope::output::{escape_control, escape_document};
use leakscope::rank::{rank, RankOptions, Ranking};
use leakscope::render;
use leakscope::site::{GroupBy, SiteRules};
use leakscope::sql::{self, OutputFormat, QUERIES};
use leakscope::watch::{self, BodyFormat, State, Webhook};

const EXAMPLES: &str = "Examples:
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
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

const WATCH_EXAMPLES: &str =
    "Exit status with --once: 0 nothing above the thresholds (or no data yet), \
1 a site is above them (alerted now or before), 2 bad input, 3 the alert could not be posted.
Without --once: runs until SIGINT/SIGTERM, then exits 0.

Examples:
  leakscope watch cap --webhook https://hooks.slack.com/services/T0/B0/XXXX
  LEAKSCOPE_WEBHOOK=https://alerts.internal/hook leakscope watch cap --body generic --every 1m \\
      --max-growth 20MiB/h --state /var/lib/leakscope/watch-api.json
  leakscope watch cap --once --webhook http://127.0.0.1:9000/ --state watch.json   # from cron";

#[derive(Args)]
struct SqlArgs {
    /// Capture directories, then optionally the SQL text (the last argument if it contains a space).
    #[arg(value_name = "CAPTURE... [SQL]")]
    args: Vec<String>,
    /// Run a shipped query by name (see --list).
    #[arg(long, short)]
    query: Option<String>,
    /// List shipped queries with descriptions.
    #[arg(long)]
    list: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Write results to this file instead of stdout (required for parquet).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Run on a Ballista cluster (leakscope-scheduler and leakscope-executor, see
    /// docs/cluster.md) instead of in this process; executors read the same capture paths.
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
}

#[derive(Args, Clone)]
struct Selection {
    /// Capture directories (several: before/after, many hosts).
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    #[command(flatten)]
    group: Grouping,
}

/// How to group and rank (shared by every ranking command).
#[derive(Args, Clone)]
struct Grouping {
    /// How to group stacks.
    #[arg(long, value_enum, default_value = "site")]
    by: GroupBy,
    /// Metrics to rank (repeatable); default: every metric the capture has.
    #[arg(long, value_enum)]
    metric: Vec<Metric>,
    /// Extra frames (regex on function names) that are never a call site, e.g. an in-house pool.
    #[arg(long, value_name = "REGEX")]
    skip: Vec<String>,
    /// Directories to find Go sources in (for hints quoting the growing line); the recorded
    /// path is tried first, then its trailing components under each directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    source: Vec<PathBuf>,
    /// Judge only the first DURATION of the recording (e.g. 2m): the verdicts as they
    /// stood then. Process memory is still summarised over the whole capture.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    first: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RankFormat {
    Table,
    Json,
    Markdown,
}

#[derive(Args)]
struct RankArgs {
    #[command(flatten)]
    sel: Selection,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    format: RankFormat,
    /// Rows per section in table/markdown output.
    #[arg(long, default_value_t = 15)]
    top: usize,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    sel: Selection,
    #[command(flatten)]
    limits: Limits,
}

/// Alert thresholds (`check` and `watch`).
#[derive(Args)]
struct Limits {
    /// Largest acceptable growth of a byte metric, e.g. 5MiB/h.
    #[arg(long, default_value = "5MiB/h")]
    max_growth: String,
    /// Largest acceptable goroutine growth, e.g. 100/h.
    #[arg(long, default_value = "100/h")]
    max_goroutine_growth: String,
    /// Smallest confidence (0..1) for a finding to count. Confidence is calibrated (a leak
    /// at confidence c was a real leak at least a share c of the time on simulated
    /// recordings, docs/accuracy.md), so 0.9 already means at most one false alarm in ten.
    #[arg(long, default_value_t = 0.9)]
    min_confidence: f64,
    /// Also count sites that are `growing` (too early to tell) above the growth limits:
    /// `check` fails on them, `watch` alerts on them.
    #[arg(long, alias = "alert-on-growing")]
    fail_on_growing: bool,
}

impl Limits {
    fn parse(&self) -> anyhow::Result<Thresholds> {
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
struct WatchArgs {
    /// Capture directory, usually one a recorder is still writing.
    capture: PathBuf,
    #[command(flatten)]
    group: Grouping,
    #[command(flatten)]
    limits: Limits,
    /// Webhook to POST alerts to (Slack incoming webhook, or any HTTP(S) endpoint taking JSON).
    #[arg(
        long,
        env = "LEAKSCOPE_WEBHOOK",
        hide_env_values = true,
        value_name = "URL"
    )]
    webhook: String,
    /// Time between rounds (from the start of one to the start of the next), e.g. 30s, 5m.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    every: Duration,
    /// Body of the POST: Slack message (text + blocks with fields) or a generic JSON document.
    #[arg(long, value_enum, default_value = "slack")]
    body: BodyFormat,
    /// Run one round and exit (status 0 clean, 1 above the thresholds, 3 post failed).
    #[arg(long)]
    once: bool,
    /// Remember alerted sites in this JSON file across restarts (default: in memory only).
    /// Must not be inside the capture directory.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Do not post "resolved" when an alerted site stays below the thresholds.
    #[arg(long)]
    no_resolved: bool,
    /// Timeout of each POST attempt (connecting: at most 5s of it).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,
}

/// A humantime duration (`30s`, `5m`, `1h30m`), longer than zero.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?}: {e} (e.g. 30s, 5m, 1h)"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(d)
}

#[derive(Args)]
struct ExportArgs {
    /// Capture directories.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    /// Start of the window (RFC 3339); default: first profile of the latest run.
    #[arg(long)]
    from: Option<String>,
    /// End of the window (RFC 3339); default: last profile of the latest run.
    #[arg(long)]
    to: Option<String>,
    /// What to export: heap (inuse_space, with inuse_objects) or goroutines.
    #[arg(long, value_enum, default_value = "inuse_space")]
    metric: Metric,
    /// Output file (gzip-compressed pprof protobuf).
    #[arg(long, short, required = true)]
    output: PathBuf,
}

async fn run_export(a: &ExportArgs) -> anyhow::Result<()> {
    let parse = |s: &Option<String>, flag: &str| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|t| leakscope::parse_time(t).map_err(|e| anyhow::anyhow!("{flag} {e}")))
            .transpose()
    };
    let from = parse(&a.from, "--from")?;
    let to = parse(&a.to, "--to")?;
    let cat = open(&a.captures, &SiteRules::default()).await?;
    let w = leakscope::export::choose_window(&cat, a.metric, from, to).await?;
    let profile = leakscope::export::delta_profile(&cat, a.metric, &w).await?;
    leakscope::export::write_profile(&profile, &a.output)
        .with_context(|| format!("{}: cannot write", a.output.display()))?;
    eprintln!(
        "wrote {} ({} stacks changed between {} and {})",
        a.output.display(),
        profile.sample.len(),
        leakscope::report_time(w.from.1.time_ns),
        leakscope::report_time(w.to.1.time_ns)
    );
    Ok(())
}

#[derive(Args)]
struct ReportArgs {
    #[command(flatten)]
    sel: Selection,
    /// HTML file to write.
    #[arg(long, short, required = true, value_name = "FILE")]
    output: PathBuf,
    /// Also write PNG charts (timeline, top sites, flame graphs) into this directory.
    #[arg(long, value_name = "DIR")]
    png: Option<PathBuf>,
    /// Start of the flame graphs' growth window (RFC 3339); default: the latest run's first profile.
    #[arg(long, value_parser = leakscope::parse_time)]
    from: Option<i64>,
    /// End of the growth window (RFC 3339); default: the latest run's last profile.
    #[arg(long, value_parser = leakscope::parse_time)]
    to: Option<i64>,
    /// Rows of the ranked-sites tables.
    #[arg(long, default_value_t = 30)]
    top: usize,
}

async fn run_report(a: &ReportArgs) -> anyhow::Result<()> {
    let ranking = run_rank(&a.sel, a.top.max(leakscope::report::PNG_SITES)).await?;
    let cat = catalog::open(&a.sel.captures, &rules(&a.sel.group.skip)?).await?;
    let opts = leakscope::report::ReportOptions {
        from: a.from,
        to: a.to,
        top: a.top,
        command: leakscope::report::command_line(std::env::args_os()),
    };
    let report = leakscope::report::Report::build(&cat, &ranking, opts).await?;
    for path in leakscope::report::write(&report, &a.output, a.png.as_deref())? {
        println!("{}", path.display());
    }
    Ok(())
}

fn rules(skip: &[String]) -> anyhow::Result<SiteRules> {
    let skip = skip
        .iter()
        .map(|s| regex::Regex::new(s).with_context(|| format!("--skip '{s}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(SiteRules { skip })
}

async fn open(captures: &[PathBuf], rules: &SiteRules) -> anyhow::Result<Catalog> {
    let cat = catalog::open(captures, rules).await?;
    warn_skipped(&cat.skipped, &mut HashSet::new());
    Ok(cat)
}

/// Warns about unreadable (corrupt or foreign) segments, once per file (`warned`
/// remembers them).
fn warn_skipped(skipped: &[SkippedSegment], warned: &mut HashSet<PathBuf>) {
    for s in skipped {
        if warned.insert(s.path.clone()) {
            eprintln!(
                "leakscope: warning: skipping segment {}: {}",
                one_line(&s.path.display().to_string()),
                one_line(&s.reason)
            );
        }
    }
}

/// Text with every run of whitespace (newlines included) collapsed to one space, and any
/// other control or bidi character shown escaped (see `leakscope::output`).
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    escape_control(&joined).into_owned()
}

fn progress_bar() -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    }
}

async fn run_rank(sel: &Selection, keep_series: usize) -> anyhow::Result<Ranking> {
    let ranking = rank_captures(
        &sel.captures,
        &sel.group,
        keep_series,
        true,
        &mut HashSet::new(),
    )
    .await?;
    if let Some(problem) = lacks_data(&ranking, &sel.captures) {
        bail!(problem);
    }
    Ok(ranking)
}

/// Opens the captures (warning about corrupt segments not in `warned` yet) and ranks them,
/// keeping the series of the first `keep_series` findings.
async fn rank_captures(
    captures: &[PathBuf],
    g: &Grouping,
    keep_series: usize,
    progress: bool,
    warned: &mut HashSet<PathBuf>,
) -> anyhow::Result<Ranking> {
    let rules = rules(&g.skip)?;
    let cat = catalog::open(captures, &rules).await?;
    warn_skipped(&cat.skipped, warned);
    let pb = if progress {
        progress_bar()
    } else {
        indicatif::ProgressBar::hidden()
    };
    let opts = RankOptions {
        by: g.by,
        metrics: g.metric.clone(),
        rules,
        sources: leakscope::hints::SourceRoots(g.source.clone()),
        keep_series,
        first: g.first,
    };
    let ranking = rank(&cat, &opts, &|rows| {
        if rows % 65_536 < 8192 {
            pb.set_message(format!("{rows} sample rows read"));
            pb.tick();
        }
    })
    .await?;
    pb.finish_and_clear();
    Ok(ranking)
}

/// Why a ranking cannot be trusted yet (no data, or too few profiles for a trend), if so.
fn lacks_data(ranking: &Ranking, captures: &[PathBuf]) -> Option<String> {
    let profiles: usize = ranking.sections.iter().map(|s| s.profiles).sum();
    let names = captures
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if profiles == 0 && ranking.process.is_none() {
        return Some(format!(
            "{names}: empty capture: no profiles or process samples to analyse"
        ));
    }
    let longest = ranking
        .sections
        .iter()
        .map(|s| s.longest_run)
        .max()
        .unwrap_or(0);
    if longest < leakscope::fit::MIN_POINTS {
        let counts = ranking
            .sections
            .iter()
            .map(|s| format!("{} {} profile(s)", s.profiles, s.metric.kind()))
            .collect::<Vec<_>>()
            .join(", ");
        return Some(format!(
            "{names}: not enough profiles to fit a trend ({counts}; need at least {} in one run)",
            leakscope::fit::MIN_POINTS
        ));
    }
    None
}

fn split_sql_args(args: &[String]) -> (Vec<PathBuf>, Option<String>) {
    match args.split_last() {
        Some((last, rest)) if last.contains(char::is_whitespace) => {
            (rest.iter().map(PathBuf::from).collect(), Some(last.clone()))
        }
        _ => (args.iter().map(PathBuf::from).collect(), None),
    }
}

async fn run_sql(a: SqlArgs) -> anyhow::Result<()> {
    if a.list {
        for q in QUERIES {
            println!("{:<22} {}", q.name, q.description());
        }
        return Ok(());
    }
    let (captures, text) = split_sql_args(&a.args);
    let query = match (&a.query, text) {
        (Some(_), Some(_)) => bail!("give either SQL text or --query NAME, not both"),
        (Some(name), None) => Some(sql::canned(name)?.sql.to_string()),
        (None, t) => t,
    };
    if captures.is_empty() {
        bail!("no capture given (usage: leakscope sql CAPTURE... \"SELECT ...\")");
    }
    let cat = match &a.cluster {
        Some(url) => {
            let cat = leakscope::cluster::open(url, &captures, &SiteRules::default()).await?;
            warn_skipped(&cat.skipped, &mut HashSet::new());
            cat
        }
        None => open(&captures, &SiteRules::default()).await?,
    };
    match query {
        Some(q) => run_one(&cat, &q, a.format, a.output.as_deref()).await,
        None if std::io::stdin().is_terminal() => repl(&cat, a.format).await,
        None => {
            let mut q = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut q)?;
            run_one(&cat, &q, a.format, a.output.as_deref()).await
        }
    }
}

async fn run_one(
    cat: &Catalog,
    q: &str,
    format: OutputFormat,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let batches = sql::collect(&cat.ctx, q).await?;
    match (format, output) {
        (OutputFormat::Parquet, _) => {
            sql::write_results(&batches, format, &mut std::io::sink(), output)
        }
        (_, Some(path)) => {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("{}: cannot create", path.display()))?;
            sql::write_results(&batches, format, &mut f, None)
        }
        (_, None) => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            sql::write_results(&batches, format, &mut lock, None)
        }
    }
}

async fn repl(cat: &Catalog, format: OutputFormat) -> anyhow::Result<()> {
    eprintln!("leakscope SQL: end statements with ';'. Tables: profiles, samples, stacks, process, scrapes; views: stack_info, sample_stacks. Ctrl-D quits.");
    let stdin = std::io::stdin();
    let mut buf = String::new();
    eprint!("sql> ");
    for line in stdin.lock().lines() {
        let line = line?;
        buf.push_str(&line);
        buf.push('\n');
        if line.trim_end().ends_with(';') {
            let q = std::mem::take(&mut buf);
            if let Err(e) = run_one(cat, q.trim().trim_end_matches(';'), format, None).await {
                eprintln!("error: {e:#}");
            }
            eprint!("sql> ");
        } else {
            eprint!("  -> ");
        }
        std::io::stderr().flush()?;
    }
    Ok(())
}

fn print_ranking(r: &Ranking, format: RankFormat, top: usize) -> anyhow::Result<()> {
    match format {
        RankFormat::Table => print!("{}", escape_document(&render::text(r, top))),
        RankFormat::Markdown => print!("{}", escape_document(&render::markdown(r, top))),
        RankFormat::Json => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, r)?;
            writeln!(out)?;
            out.flush()?;
        }
    }
    Ok(())
}

fn check(r: &Ranking, t: &Thresholds) -> bool {
    let found = crossings(r, t);
    for c in &found {
        let tag = if c.finding.fit.verdict.is_leak() {
            "LEAK"
        } else {
            "GROWING"
        };
        println!("{tag} {}", escape_control(&c.describe()));
    }
    if found.is_empty() {
        println!(
            "OK: no leak above the thresholds. {}",
            escape_control(&r.verdict)
        );
    }
    !found.is_empty()
}

/// Attempts per webhook post in one round.
const WEBHOOK_ATTEMPTS: u32 = 3;
/// Pause before the first retry of a post; doubled for each further retry.
const WEBHOOK_BACKOFF: Duration = Duration::from_secs(1);

/// Stop requests (SIGINT, SIGTERM): a flag for blocking code, a channel for async waits. A
/// second signal exits at once.
#[derive(Clone)]
struct Stop {
    flag: Arc<AtomicBool>,
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Stop {
    fn install() -> anyhow::Result<Stop> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let flag = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .context("installing signal handlers")?;
        let seen = flag.clone();
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if seen.swap(true, Ordering::SeqCst) {
                    std::process::exit(128 + sig);
                }
                eprintln!("leakscope: watch: stopping (send the signal again to exit at once)");
                let _ = tx.send(true);
            }
        });
        Ok(Stop { flag, rx })
    }

    fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The watched capture directory, absolute. A directory without manifest.json is accepted
/// while it is empty (a recorder about to write it); anything else must be a capture.
fn watched_capture(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = dir.join(leakscope_capture::manifest::MANIFEST_FILE);
    let empty = || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if dir.is_dir() && !manifest.exists() && empty() {
        return std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()));
    }
    Ok(catalog::open_capture(dir)?.dir)
}

/// The state file as an absolute path; refused inside the capture (the recorder's directory).
fn state_path(state: &Path, capture: &Path) -> anyhow::Result<PathBuf> {
    let name = state
        .file_name()
        .with_context(|| format!("--state {}: not a file name", state.display()))?;
    let parent = match state.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent).with_context(|| {
        format!(
            "--state {}: directory {} does not exist",
            state.display(),
            parent.display()
        )
    })?;
    if dir.starts_with(capture) {
        bail!(
            "--state {}: is inside the capture {}, which belongs to the recorder; keep the state elsewhere",
            state.display(),
            capture.display()
        );
    }
    Ok(dir.join(name))
}

/// How a round ended.
enum RoundEnd {
    /// No manifest or too few profiles yet.
    Waiting,
    /// Ranked: how many sites are above the thresholds, and whether a due post failed.
    Ranked { above: usize, post_failed: bool },
    /// A stop was requested while ranking.
    Stopped,
}

/// The watch loop's state between rounds.
struct Watcher {
    args: WatchArgs,
    capture: PathBuf,
    thresholds: Thresholds,
    webhook: Webhook,
    state: State,
    state_path: Option<PathBuf>,
    saved: State,
    warned: HashSet<PathBuf>,
    stop: Stop,
}

impl Watcher {
    /// One round: reopen the capture (new segments appear between rounds), rank, post what
    /// is due, remember what was delivered.
    async fn round(&mut self) -> anyhow::Result<RoundEnd> {
        let manifest = self
            .capture
            .join(leakscope_capture::manifest::MANIFEST_FILE);
        if !manifest.exists() {
            eprintln!(
                "leakscope: watch: waiting for data: {}: no manifest.json yet",
                self.capture.display()
            );
            return Ok(RoundEnd::Waiting);
        }
        let captures = [self.capture.clone()];
        let ranking = tokio::select! {
            r = rank_captures(&captures, &self.args.group, 0, false, &mut self.warned) => r?,
            _ = self.stop.wait() => return Ok(RoundEnd::Stopped),
        };
        if let Some(problem) = lacks_data(&ranking, &captures) {
            eprintln!("leakscope: watch: waiting for data: {}", one_line(&problem));
            return Ok(RoundEnd::Waiting);
        }
        let found = crossings(&ranking, &self.thresholds);
        self.state.observe(&found, !self.args.no_resolved);
        let alerts = self.state.pending(&found, &ranking, &self.thresholds);
        let mut post_failed = false;
        let outcome = if alerts.is_empty() {
            "nothing new to post".to_string()
        } else {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let (target, host) = catalog::open_capture(&self.capture)
                .map(|c| (c.manifest.target, c.manifest.host))
                .unwrap_or_default();
            let origin = watch::Origin {
                name: self
                    .capture
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "capture".into()),
                dir: self.capture.clone(),
                target,
                host,
                time: now.clone(),
            };
            let body = watch::body(self.args.body, &origin, &alerts);
            let (webhook, flag) = (&self.webhook, &self.stop.flag);
            let what = watch::headline(&origin, &alerts);
            let what = what.split_once(": ").map_or(&*what, |(_, w)| w).to_string();
            match tokio::task::block_in_place(|| webhook.post(&body, flag)) {
                Ok(d) => {
                    self.state.commit(&alerts, &now);
                    for a in &alerts {
                        println!("{}", escape_control(&a.describe()));
                    }
                    format!(
                        "posted {what} to {} (HTTP {}, {} attempt(s))",
                        webhook.shown(),
                        d.status,
                        d.attempts
                    )
                }
                Err(e) => {
                    post_failed = true;
                    eprintln!("leakscope: warning: {}", one_line(&e.to_string()));
                    format!("not posted: {what}")
                }
            }
        };
        self.save_state();
        eprintln!(
            "leakscope: watch: {} site(s) above the thresholds; {outcome}",
            found.len()
        );
        Ok(RoundEnd::Ranked {
            above: found.len(),
            post_failed,
        })
    }

    /// Writes the state file when the state changed; a failure is a warning (the state
    /// stays in memory).
    fn save_state(&mut self) {
        let Some(path) = &self.state_path else {
            return;
        };
        if self.state == self.saved {
            return;
        }
        match self.state.save(path) {
            Ok(()) => self.saved = self.state.clone(),
            Err(e) => eprintln!("leakscope: warning: {}", one_line(&e.to_string())),
        }
    }
}

async fn run_watch(a: WatchArgs) -> anyhow::Result<ExitCode> {
    let thresholds = a.limits.parse()?;
    rules(&a.group.skip)?;
    let webhook = Webhook::new(&a.webhook, a.timeout, WEBHOOK_ATTEMPTS, WEBHOOK_BACKOFF)?;
    let capture = watched_capture(&a.capture)?;
    let state_path = a
        .state
        .as_deref()
        .map(|p| state_path(p, &capture))
        .transpose()?;
    let state = match &state_path {
        Some(p) => {
            let (s, warning) = State::open(p, &capture)?;
            if let Some(w) = warning {
                eprintln!("leakscope: warning: {}", one_line(&w));
            }
            s.save(p)?;
            s
        }
        None => State::new(&capture),
    };
    let stop = Stop::install()?;
    let (once, every) = (a.once, a.every);
    if !once {
        eprintln!(
            "leakscope: watch: watching {} every {}, posting to {}",
            capture.display(),
            humantime::format_duration(every),
            webhook.shown()
        );
    }
    let mut w = Watcher {
        args: a,
        capture,
        thresholds,
        webhook,
        saved: state.clone(),
        state,
        state_path,
        warned: HashSet::new(),
        stop: stop.clone(),
    };
    loop {
        let started = Instant::now();
        match w.round().await {
            Err(e) if once => return Err(e),
            Err(e) => eprintln!(
                "leakscope: warning: {}: {}; trying again next round",
                w.capture.display(),
                one_line(&format!("{e:#}"))
            ),
            Ok(RoundEnd::Stopped) if once => return Ok(ExitCode::from(130)),
            Ok(RoundEnd::Stopped) => break,
            Ok(RoundEnd::Waiting) if once => return Ok(ExitCode::SUCCESS),
            Ok(RoundEnd::Ranked { above, post_failed }) if once => {
                return Ok(ExitCode::from(match (post_failed, above) {
                    (true, _) => 3,
                    (false, 0) => 0,
                    (false, _) => 1,
                }))
            }
            Ok(_) => {}
        }
        if stop.requested() {
            break;
        }
        let next = tokio::time::Instant::from_std(started + every);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait() => break,
        }
    }
    eprintln!("leakscope: watch: stopped");
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sql(a) => run_sql(a).await.map(|_| ExitCode::SUCCESS),
        Command::Rank(a) => match run_rank(&a.sel, 0).await {
            Ok(r) => print_ranking(&r, a.format, a.top).map(|_| ExitCode::SUCCESS),
            Err(e) => Err(e),
        },
        Command::ExportPprof(a) => run_export(&a).await.map(|_| ExitCode::SUCCESS),
        Command::Report(a) => run_report(&a).await.map(|_| ExitCode::SUCCESS),
        Command::Check(a) => {
            let thresholds = a.limits.parse()?;
            let r = run_rank(&a.sel, 0).await?;
            Ok(ExitCode::from(if check(&r, &thresholds) { 1 } else { 0 }))
        }
        Command::Watch(a) => run_watch(a).await,
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Watch(_)) {
        // Before the runtime starts its threads: they inherit the lower priority.
        for failed in watch::lower_priority() {
            log::debug!("could not lower the priority: {failed}");
        }
    }
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(anyhow::Error::new(e).context("starting the async runtime")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leakscope: error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
