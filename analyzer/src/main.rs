//! `leakscope`: the analyzer command line (thin: parsing and printing only).

mod cli;
mod fleet_cmd;

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use cli::*;
use leakscope::model::site::SiteRules;
use leakscope::output::render::{self, one_line};
use leakscope::output::results::{write_results, OutputFormat};
use leakscope::output::{escape_control, escape_document};
use leakscope::rank::alert::{crossings, Thresholds};
use leakscope::rank::{rank, RankOptions, Ranking};
use leakscope::source::catalog::{self, Catalog, SkippedSegment};
use leakscope::sql::{self, QUERIES};
use leakscope::watch::runner::{CaptureRounds, Runner, Stop, WatchEnd};
use leakscope::watch::{self, State, Webhook};
use leakscope_capture::{decode_guard, exit};

/// The exit status of a finished `watch` (see [`leakscope_capture::exit`]).
fn watch_status(end: WatchEnd) -> ExitCode {
    ExitCode::from(match end {
        WatchEnd::Clean => exit::OK,
        WatchEnd::Above => exit::FOUND,
        WatchEnd::PostFailed => exit::UNDELIVERED,
        WatchEnd::Interrupted => exit::INTERRUPTED,
    })
}

async fn run_export(a: &ExportArgs) -> anyhow::Result<()> {
    let parse = |s: &Option<String>, flag: &str| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|t| leakscope::units::parse_time(t).map_err(|e| anyhow::anyhow!("{flag} {e}")))
            .transpose()
    };
    let from = parse(&a.from, "--from")?;
    let to = parse(&a.to, "--to")?;
    let cat = open(&a.captures, &SiteRules::default()).await?;
    let metric = a.metric.into();
    let w = leakscope::output::export::choose_pair(&cat, metric, from, to).await?;
    let profile = leakscope::output::export::delta_profile(&cat, metric, &w).await?;
    leakscope::output::export::write_profile(&profile, &a.output)
        .with_context(|| format!("{}: cannot write", a.output.display()))?;
    eprintln!(
        "wrote {} ({} stacks changed between {} and {})",
        a.output.display(),
        profile.sample.len(),
        leakscope::units::report_time(w.from.time_ns),
        leakscope::units::report_time(w.to.time_ns)
    );
    Ok(())
}

async fn run_report(a: &ReportArgs) -> anyhow::Result<()> {
    let (cat, ranking) =
        open_and_rank(&a.sel, a.top.max(leakscope::output::report::PNG_SITES)).await?;
    let opts = leakscope::output::report::ReportOptions {
        from: a.from,
        to: a.to,
        top: a.top,
        command: leakscope::output::report::command_line(std::env::args_os()),
    };
    let report = leakscope::output::report::Report::build(&cat, &ranking, opts).await?;
    for path in leakscope::output::report::write(&report, &a.output, a.png.as_deref())? {
        println!("{}", path.display());
    }
    // Freeing the ranking (with the series of its top findings) and the catalog took
    // about 40 ms after the files were written (perf, 100M rows); nothing waits for it.
    let leakscope::output::report::Report { data, .. } = report;
    leakscope::background::drop_in_background((cat, ranking, data));
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
    let (cat, ranking) = open_and_rank(sel, keep_series).await?;
    leakscope::background::drop_in_background(cat);
    Ok(ranking)
}

/// Opens the captures once (warning about unreadable segments), ranks them keeping the
/// series of the first `keep_series` findings, and refuses a ranking without enough data;
/// the catalog is returned for commands that read more of it (`report`).
async fn open_and_rank(sel: &Selection, keep_series: usize) -> anyhow::Result<(Catalog, Ranking)> {
    let rules = rules(&sel.group.skip)?;
    let cat = match &sel.cluster {
        Some(url) => {
            let cat = leakscope::source::cluster::open(url, &sel.captures, &rules).await?;
            warn_skipped(&cat.skipped, &mut HashSet::new());
            cat
        }
        None => open(&sel.captures, &rules).await?,
    };
    let pb = progress_bar();
    let opts = rank_options(&sel.group, rules, keep_series);
    let ranking = rank(&cat, &opts, &|rows| {
        if rows % 65_536 < 8192 {
            pb.set_message(format!("{rows} sample rows read"));
            pb.tick();
        }
    })
    .await?;
    pb.finish_and_clear();
    if let Some(problem) = lacks_data(&ranking, &sel.captures) {
        bail!(problem);
    }
    Ok((cat, ranking))
}

/// How to rank, from the grouping flags.
fn rank_options(g: &Grouping, rules: SiteRules, keep_series: usize) -> RankOptions {
    RankOptions {
        by: g.by.into(),
        metrics: g.metric.iter().map(|m| (*m).into()).collect(),
        rules,
        sources: leakscope::source::go_source::SourceRoots(g.source.clone()),
        keep_series,
        first: g.first,
    }
}

/// Why a ranking of `captures` cannot be trusted yet, in words, if so.
fn lacks_data(ranking: &Ranking, captures: &[PathBuf]) -> Option<String> {
    let names = captures
        .iter()
        .map(|c| c.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    ranking.shortage().map(|s| render::shortage(&names, &s))
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
            let cat =
                leakscope::source::cluster::open(url, &captures, &SiteRules::default()).await?;
            warn_skipped(&cat.skipped, &mut HashSet::new());
            cat
        }
        None => open(&captures, &SiteRules::default()).await?,
    };
    match query {
        Some(q) => run_one(&cat, &q, a.format.into(), a.output.as_deref()).await,
        None if std::io::stdin().is_terminal() => repl(&cat, a.format.into()).await,
        None => {
            let mut q = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut q)?;
            run_one(&cat, &q, a.format.into(), a.output.as_deref()).await
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
        (OutputFormat::Parquet, _) => write_results(&batches, format, &mut std::io::sink(), output),
        (_, Some(path)) => {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("{}: cannot create", path.display()))?;
            write_results(&batches, format, &mut f, None)
        }
        (_, None) => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            write_results(&batches, format, &mut lock, None)
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
            // 1 MiB at a time: the ranking of 10,000 findings is 44 MB of JSON.
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            leakscope::output::json::write_ranking(&mut out, r)?;
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
        println!("{tag} {}", escape_control(&render::crossing(c)));
    }
    if found.is_empty() {
        println!(
            "OK: no leak above the thresholds. {}",
            escape_control(&render::verdict(r))
        );
    }
    !found.is_empty()
}

/// Attempts per webhook post in one round.
const WEBHOOK_ATTEMPTS: u32 = 3;
/// Pause before the first retry of a post; doubled for each further retry.
const WEBHOOK_BACKOFF: Duration = Duration::from_secs(1);

async fn run_watch(a: WatchArgs) -> anyhow::Result<ExitCode> {
    let thresholds = a.limits.parse()?;
    let rules = rules(&a.group.skip)?;
    let webhook = Webhook::new(&a.webhook, a.timeout, WEBHOOK_ATTEMPTS, WEBHOOK_BACKOFF)?;
    let capture = watch::watched_capture(&a.capture)?;
    let state_path = a
        .state
        .as_deref()
        .map(|p| watch::state_path(p, &capture))
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
    let stop = Stop::on_signals().context("installing signal handlers")?;
    if !a.once {
        eprintln!(
            "leakscope: watch: watching {} every {}, posting to {}",
            capture.display(),
            humantime::format_duration(a.every),
            webhook.shown()
        );
    }
    let rounds = CaptureRounds {
        capture: capture.clone(),
        options: rank_options(&a.group, rules, 0),
        warned: HashSet::new(),
    };
    let mut runner = Runner::new(
        rounds,
        webhook,
        thresholds,
        a.body.into(),
        (state, state_path),
        stop,
    );
    runner.resolve = !a.no_resolved;
    let end = runner.run(a.every, a.once, &capture).await?;
    Ok(watch_status(end))
}

/// Ranks one side of `compare` (every finding keeps its series, for the rate intervals);
/// an empty side is an error naming it, a side with too few profiles is judged unsure.
async fn rank_side(
    path: &std::path::Path,
    g: &Grouping,
) -> anyhow::Result<leakscope::rank::compare::RankedSide> {
    let rules = rules(&g.skip)?;
    let cat = open(&capture_group(path).await, &rules).await?;
    let pb = progress_bar();
    pb.set_message(format!("ranking {}", path.display()));
    let ranking = rank(&cat, &rank_options(g, rules, usize::MAX), &|_| pb.tick()).await?;
    pb.finish_and_clear();
    if let Some(s @ leakscope::rank::Shortage::Empty) = ranking.shortage() {
        bail!(render::shortage(&path.display().to_string(), &s));
    }
    Ok(leakscope::rank::compare::RankedSide::new(ranking))
}

/// The captures a `compare` side names: the captures at or below it, as `fleet rank`
/// finds them (a local directory or an s3:// prefix holding several is a group ranked
/// together); the path itself when none is found, so that opening it names the problem.
async fn capture_group(path: &std::path::Path) -> Vec<PathBuf> {
    leakscope::source::discover::find_captures(path)
        .await
        .unwrap_or_else(|_| vec![path.to_path_buf()])
}

async fn run_compare(a: &CompareArgs) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.min_confidence) {
        bail!(
            "--min-confidence {}: must be between 0 and 1",
            a.min_confidence
        );
    }
    let before = rank_side(&a.before, &a.group).await.context("BEFORE")?;
    let after = rank_side(&a.after, &a.group).await.context("AFTER")?;
    let opts = leakscope::rank::compare::CompareOptions {
        min_confidence: a.min_confidence,
    };
    let c = leakscope::rank::compare::compare(&before, &after, &opts);
    let strict = a.fail_on_inconclusive;
    match a.format {
        RankFormat::Table => print!(
            "{}",
            escape_document(&leakscope::output::compare::text(&c, a.top, strict))
        ),
        RankFormat::Markdown => print!(
            "{}",
            escape_document(&leakscope::output::compare::markdown(&c, a.top, strict))
        ),
        RankFormat::Json => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            leakscope::output::compare::write_json(&mut out, &c, strict)?;
            writeln!(out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::from(if c.fails(strict) {
        exit::FOUND
    } else {
        exit::OK
    }))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(e) = &cli.s3_endpoint {
        leakscope::source::remote::set_endpoint(e)?;
    }
    match cli.command {
        Command::Sql(a) => run_sql(a).await.map(|_| ExitCode::SUCCESS),
        Command::Rank(a) => {
            let r = run_rank(&a.sel, 0).await?;
            let printed = print_ranking(&r, a.format, a.top).map(|_| ExitCode::SUCCESS);
            leakscope::background::drop_in_background(r);
            printed
        }
        Command::ExportPprof(a) => run_export(&a).await.map(|_| ExitCode::SUCCESS),
        Command::Report(a) => run_report(&a).await.map(|_| ExitCode::SUCCESS),
        Command::Check(a) => {
            let thresholds = a.limits.parse()?;
            let r = run_rank(&a.sel, 0).await?;
            Ok(ExitCode::from(if check(&r, &thresholds) {
                exit::FOUND
            } else {
                exit::OK
            }))
        }
        Command::Watch(a) => run_watch(a).await,
        Command::Fleet(FleetCommand::Rank(a)) => fleet_cmd::run_rank(&a).await,
        Command::Compare(a) => run_compare(&a).await,
    }
}

fn main() -> ExitCode {
    decode_guard::install_hook();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let locations = cli.command.locations();
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
        Ok(rt) => match std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(run(cli)))) {
            Ok(r) => r,
            // Only a panic of the Parquet/Arrow decoders (stashed by the hook) is bad input;
            // any other panic is a bug and keeps its default report and exit status.
            Err(payload) if decode_guard::is_stashed() => Err(anyhow::anyhow!(
                "{}",
                decode_guard::panic_message(&*payload)
            )),
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(e) => Err(anyhow::Error::new(e).context("starting the async runtime")),
    };
    // A decoder panic inside a worker may also come back as an ordinary error ("task
    // panicked"); either way, name the damaged segment.
    let result = match decode_guard::take_stashed() {
        Some(message) => Err(decoder_failure(&locations, message)),
        None => result,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("leakscope: error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(exit::ERROR)
        }
    }
}

/// The one-line error for a decoder panic: the damaged segment found below `locations`, or
/// (remote captures, or a damage that no longer reproduces) the locations and the message.
fn decoder_failure(locations: &[PathBuf], message: String) -> anyhow::Error {
    match leakscope::source::corrupt::find_corrupt_segment(locations) {
        Some(e) => anyhow::Error::new(e),
        None => {
            let names: Vec<String> = locations.iter().map(|l| l.display().to_string()).collect();
            anyhow::anyhow!(
                "{}: corrupt Parquet data in a segment (the decoder failed: {message})",
                names.join(", ")
            )
        }
    }
}
