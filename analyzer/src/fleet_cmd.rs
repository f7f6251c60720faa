//! `leakscope fleet rank`: parsing the flags into fleet options, progress and warnings on
//! stderr, then the chosen format on stdout and the optional HTML report.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use leakscope::model::fleet::{OutlierRule, UnitBy};
use leakscope::output::escape_document;
use leakscope::output::render::one_line;
use leakscope::rank::fleet::{rank_fleet, FleetOptions, FleetRanking};
use leakscope::rank::RankOptions;
use leakscope::AnalyzeError;

use crate::cli::{FleetRankArgs, RankFormat};

/// The fleet options of the flags; a bad flag is an error naming the location.
fn options(a: &FleetRankArgs) -> anyhow::Result<FleetOptions> {
    let fail = |reason: String| AnalyzeError::Fleet {
        location: a.location.clone(),
        reason,
    };
    let by = UnitBy::parse(&a.by).map_err(|e| fail(format!("--by: {e}")))?;
    if !(a.outlier_factor.is_finite() && a.outlier_factor >= 1.0) {
        bail!(fail(
            "--outlier-factor must be a number of at least 1".into()
        ));
    }
    if !(a.outlier_z.is_finite() && a.outlier_z >= 0.0) {
        bail!(fail("--outlier-z must be a number of at least 0".into()));
    }
    Ok(FleetOptions {
        by,
        rank: RankOptions {
            by: a.group.into(),
            metrics: a.metric.iter().map(|m| (*m).into()).collect(),
            rules: crate::rules(&a.skip)?,
            sources: Default::default(),
            keep_series: 0,
            first: a.first,
        },
        jobs: usize::from(a.jobs),
        cluster: a.cluster.clone(),
        rule: OutlierRule {
            z: a.outlier_z,
            factor: a.outlier_factor,
            ..OutlierRule::default()
        },
    })
}

/// Runs `fleet rank`: warnings for what was left out, the ranking on stdout, the report.
pub(crate) async fn run_rank(a: &FleetRankArgs) -> anyhow::Result<ExitCode> {
    let opts = options(a)?;
    let pb = crate::progress_bar();
    let fleet = rank_fleet(&a.location, &opts, &|done, total| {
        pb.set_message(format!("{done}/{total} captures ranked"));
        pb.tick();
    })
    .await?;
    pb.finish_and_clear();
    for s in &fleet.skipped_captures {
        eprintln!(
            "leakscope: warning: skipping capture {}",
            one_line(&leakscope::output::fleet::skipped_line(s))
        );
    }
    crate::warn_skipped(&fleet.skipped_segments, &mut HashSet::new());
    print(&fleet, a.format, a.top)?;
    if let Some(path) = &a.html {
        let command = leakscope::output::report::command_line(std::env::args_os());
        leakscope::output::report::fleet::write(&fleet, path, &command)
            .with_context(|| format!("{}: cannot write the HTML report", path.display()))?;
        eprintln!("leakscope: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print(f: &FleetRanking, format: RankFormat, top: usize) -> anyhow::Result<()> {
    use leakscope::output::fleet;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        RankFormat::Table => write!(out, "{}", escape_document(&fleet::text(f, top)))?,
        RankFormat::Markdown => write!(out, "{}", escape_document(&fleet::markdown(f, top)))?,
        RankFormat::Json => {
            fleet::write_json(&mut out, f)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}
