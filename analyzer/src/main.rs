//! `leakscope`: the analyzer command line (thin: parsing and printing only).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use leakscope::catalog::{self, Catalog};
use leakscope::load::Metric;
use leakscope::rank::{rank, RankOptions, Ranking};
use leakscope::site::{GroupBy, SiteRules};
use leakscope::sql::{self, OutputFormat, QUERIES};
use leakscope::{parse_rate, render};

const EXAMPLES: &str = "Examples:
  leakscope rank fixtures/captures/demo
  leakscope rank cap --metric goroutines --format markdown > ticket.md
  leakscope sql cap \"SELECT site, SUM(inuse_bytes) FROM sample_stacks GROUP BY site\"
  leakscope sql before after --query top_growth
  leakscope check cap --max-growth 5MiB/h --min-confidence 0.95
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
}

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
}

#[derive(Args, Clone)]
struct Selection {
    /// Capture directories (several: before/after, many hosts).
    #[arg(required = true)]
    captures: Vec<PathBuf>,
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
    /// Largest acceptable growth of a byte metric, e.g. 5MiB/h.
    #[arg(long, default_value = "5MiB/h")]
    max_growth: String,
    /// Largest acceptable goroutine growth, e.g. 100/h.
    #[arg(long, default_value = "100/h")]
    max_goroutine_growth: String,
    /// Smallest confidence (0..1) for a finding to fail the check.
    #[arg(long, default_value_t = 0.95)]
    min_confidence: f64,
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
    #[arg(long, value_enum, default_value = "inuse-space")]
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
    let cat = catalog::open(&a.sel.captures, &rules(&a.sel.skip)?).await?;
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
    for s in &cat.skipped {
        eprintln!(
            "leakscope: warning: skipping corrupt segment {}: {}",
            s.path.display(),
            s.reason.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(cat)
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
    let rules = rules(&sel.skip)?;
    let cat = open(&sel.captures, &rules).await?;
    let pb = progress_bar();
    let opts = RankOptions {
        by: sel.by,
        metrics: sel.metric.clone(),
        rules,
        sources: leakscope::hints::SourceRoots(sel.source.clone()),
        keep_series,
    };
    let ranking = rank(&cat, &opts, &|rows| {
        if rows % 65_536 < 8192 {
            pb.set_message(format!("{rows} sample rows read"));
            pb.tick();
        }
    })
    .await?;
    pb.finish_and_clear();
    let profiles: usize = ranking.sections.iter().map(|s| s.profiles).sum();
    let names = sel
        .captures
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if profiles == 0 && ranking.process.is_none() {
        bail!("{names}: empty capture: no profiles or process samples to analyse");
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
        bail!(
            "{names}: not enough profiles to fit a trend ({counts}; need at least {} in one run)",
            leakscope::fit::MIN_POINTS
        );
    }
    Ok(ranking)
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
    let cat = open(&captures, &SiteRules::default()).await?;
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
        RankFormat::Table => print!("{}", render::text(r, top)),
        RankFormat::Markdown => print!("{}", render::markdown(r, top)),
        RankFormat::Json => println!("{}", serde_json::to_string_pretty(r)?),
    }
    Ok(())
}

fn check(r: &Ranking, a: &CheckArgs) -> anyhow::Result<bool> {
    let max_bytes = parse_rate(&a.max_growth).map_err(|e| anyhow::anyhow!("--max-growth {e}"))?;
    let max_gor = parse_rate(&a.max_goroutine_growth)
        .map_err(|e| anyhow::anyhow!("--max-goroutine-growth {e}"))?;
    let mut failed = false;
    for f in r.leaks() {
        let limit = match f.metric {
            Metric::Goroutines => max_gor,
            Metric::InuseObjects => f64::INFINITY,
            _ => max_bytes,
        };
        if f.fit.confidence >= a.min_confidence && f.fit.rate_per_hour > limit {
            failed = true;
            println!(
                "LEAK {} {}: {} (confidence {:.0}%, limit {})",
                f.metric.unit(),
                f.site,
                render::format_rate(f.metric, f.fit.rate_per_hour),
                f.fit.confidence * 100.0,
                render::format_rate(f.metric, limit)
            );
        }
    }
    if !failed {
        println!("OK: no leak above the thresholds. {}", r.verdict);
    }
    Ok(failed)
}

#[tokio::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {
        Command::Sql(a) => run_sql(a).await.map(|_| ExitCode::SUCCESS),
        Command::Rank(a) => match run_rank(&a.sel, 0).await {
            Ok(r) => print_ranking(&r, a.format, a.top).map(|_| ExitCode::SUCCESS),
            Err(e) => Err(e),
        },
        Command::ExportPprof(a) => run_export(&a).await.map(|_| ExitCode::SUCCESS),
        Command::Report(a) => run_report(&a).await.map(|_| ExitCode::SUCCESS),
        Command::Check(a) => match run_rank(&a.sel, 0).await {
            Ok(r) => check(&r, &a).map(|leak| ExitCode::from(if leak { 1 } else { 0 })),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!(
                "leakscope: error: {}",
                msg.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(2)
        }
    }
}
