//! `fleet rank`: ranks every capture below a location on its own (a few at a time), keeps
//! only a compact summary of each (see [`crate::model::fleet::FleetAccumulator`]), and
//! returns per call site how many units it leaks in, the spread of its rates and the units
//! that leak far faster than the others.

use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::error::{AnalyzeError, Result};
use crate::model::fleet::{
    FleetAccumulator, Observation, OutlierRule, SiteStats, Spread, Unit, UnitBy,
};
use crate::model::metric::Metric;
use crate::model::site::GroupBy;
use crate::rank::{rank, RankOptions, Shortage};
use crate::source::catalog::{self, Capture, SkippedSegment};
use crate::source::discover;

/// Version of the fleet ranking's JSON (`fleet rank --format json`, docs/fleet-json.md).
pub const FLEET_SCHEMA_VERSION: u32 = 1;

/// How to rank a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// How captures are grouped into units.
    pub by: UnitBy,
    /// How each capture is ranked.
    pub rank: RankOptions,
    /// Captures ranked at the same time (at least 1).
    pub jobs: usize,
    /// When a unit is an outlier.
    pub rule: OutlierRule,
    /// The Ballista scheduler (`df://HOST:PORT`) that scans each capture, or `None` to scan
    /// in this process.
    pub cluster: Option<String>,
}

/// Why a capture was left out of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SkipReason {
    /// It could not be opened or ranked (corrupt manifest, unreadable files).
    Unreadable {
        /// The error, one line.
        error: String,
    },
    /// Too few profiles to fit a trend, or none at all.
    NotEnoughData {
        /// Profiles of each ranked metric (empty when the capture is empty).
        profiles: Vec<(Metric, usize)>,
        /// Profiles one run needs.
        need: usize,
    },
    /// `--by label:KEY` and its manifest has no label KEY.
    NoLabel {
        /// The key.
        key: String,
    },
}

/// A capture left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedCapture {
    /// The capture (path or `s3://` URL).
    pub capture: String,
    /// Why.
    #[serde(flatten)]
    pub reason: SkipReason,
}

/// A unit whose rate of a site stands out (see [`OutlierRule`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetOutlier {
    /// The unit.
    pub unit: String,
    /// Its rate per hour.
    pub rate: f64,
    /// Median rate of the other units.
    pub others_median: f64,
    /// `rate / others_median`; `None` when the others do not grow.
    pub ratio: Option<f64>,
    /// Robust z-score against the other units; `None` when they all have the same rate.
    pub z: Option<f64>,
}

/// One unit's rate of a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetRate {
    /// The unit.
    pub unit: String,
    /// Rate per hour (median over the unit's captures that have the site).
    pub rate: f64,
    /// Whether the site leaks in at least one of the unit's captures.
    pub leak: bool,
}

/// A call site across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetSite {
    /// Position (1-based).
    pub rank: usize,
    /// Metric.
    pub metric: Metric,
    /// Unit of the rates.
    pub unit: &'static str,
    /// Site key.
    pub site: String,
    /// Units where it leaks.
    pub units_leaking: usize,
    /// Units where it is present.
    pub units_present: usize,
    /// Captures where it leaks.
    pub captures_leaking: usize,
    /// Captures where it is present.
    pub captures_present: usize,
    /// Spread of the units' rates per hour.
    pub spread: Spread,
    /// Units far above the others, highest first.
    pub outliers: Vec<FleetOutlier>,
    /// Every unit's rate, highest first.
    pub rates: Vec<FleetRate>,
}

/// Everything `fleet rank` produces.
#[derive(Debug, Clone, Serialize)]
pub struct FleetRanking {
    /// [`FLEET_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The location given.
    pub location: String,
    /// Grouping of captures into units (`capture`, `target`, `host`, `label:KEY`).
    pub by: String,
    /// Grouping of stacks within each capture.
    pub group_by: GroupBy,
    /// The outlier rule applied.
    pub outlier_rule: OutlierRule,
    /// Captures found below the location.
    pub captures_found: usize,
    /// Captures ranked (found minus skipped).
    pub captures_ranked: usize,
    /// Units, in the order of their first capture.
    pub units: Vec<Unit>,
    /// Sites that leak in at least one unit, most widespread first.
    pub sites: Vec<FleetSite>,
    /// Sites present somewhere that leak nowhere.
    pub quiet_sites: usize,
    /// Captures left out.
    pub skipped_captures: Vec<SkippedCapture>,
    /// Segments left out of the ranked captures (corrupt or foreign).
    pub skipped_segments: Vec<SkippedSegment>,
}

/// What ranking one capture gave: its unit and observations, or why it was left out.
struct Ranked {
    skipped_segments: Vec<SkippedSegment>,
    outcome: std::result::Result<(String, Vec<Observation>), SkipReason>,
}

/// The name of capture `path` as a unit of `--by capture`: its path below the location.
fn capture_name(location: &Path, path: &Path) -> String {
    path.strip_prefix(location)
        .ok()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(path)
        .to_string_lossy()
        .trim_start_matches("s3://")
        .to_string()
}

/// The unit of a capture, or why it has none.
fn unit_of(by: &UnitBy, name: &str, cap: &Capture) -> std::result::Result<String, SkipReason> {
    match by {
        UnitBy::Capture => Ok(name.to_string()),
        UnitBy::Target => Ok(cap.manifest.target.clone()),
        UnitBy::Host => Ok(cap.manifest.host.clone()),
        UnitBy::Label(key) => cap
            .manifest
            .labels
            .get(key)
            .cloned()
            .ok_or_else(|| SkipReason::NoLabel { key: key.clone() }),
    }
}

/// Opens and ranks one capture, keeping only what the fleet needs.
async fn rank_capture(path: &Path, name: &str, opts: &FleetOptions) -> Ranked {
    let dirs = [path.to_path_buf()];
    let opened = match &opts.cluster {
        Some(url) => crate::source::cluster::open(url, &dirs, &opts.rank.rules)
            .await
            .map_err(|e| e.to_string()),
        None => catalog::open(&dirs, &opts.rank.rules)
            .await
            .map_err(|e| e.to_string()),
    };
    let cat = match opened {
        Ok(c) => c,
        Err(error) => {
            return Ranked {
                skipped_segments: Vec::new(),
                outcome: Err(SkipReason::Unreadable { error }),
            }
        }
    };
    let skipped_segments = cat.skipped.clone();
    let unit = match cat.captures.first().map(|c| unit_of(&opts.by, name, c)) {
        Some(Ok(u)) => u,
        Some(Err(reason)) => {
            return Ranked {
                skipped_segments,
                outcome: Err(reason),
            }
        }
        None => {
            return Ranked {
                skipped_segments,
                outcome: Err(SkipReason::Unreadable {
                    error: "no capture opened".into(),
                }),
            }
        }
    };
    let outcome = match rank(&cat, &opts.rank, &|_| {}).await {
        Err(e) => Err(SkipReason::Unreadable {
            error: e.to_string(),
        }),
        Ok(r) => match r.shortage() {
            Some(Shortage::Empty) => Err(SkipReason::NotEnoughData {
                profiles: Vec::new(),
                need: crate::model::fit::MIN_POINTS,
            }),
            Some(Shortage::TooFewProfiles { profiles, need }) => {
                Err(SkipReason::NotEnoughData { profiles, need })
            }
            None => Ok((
                unit,
                r.sections
                    .into_iter()
                    .flat_map(|s| s.findings)
                    .map(|f| Observation {
                        metric: f.metric,
                        leak: f.fit.verdict.is_leak(),
                        rate: f.fit.rate_per_hour,
                        site: f.site,
                    })
                    .collect(),
            )),
        },
    };
    Ranked {
        skipped_segments,
        outcome,
    }
}

/// Ranks every capture below `location` and summarises the fleet. `progress` is called
/// with (captures done, captures found) after each capture. Fails when the location holds
/// no capture, or when no capture could be ranked (or has the `--by` label).
pub async fn rank_fleet(
    location: &Path,
    opts: &FleetOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<FleetRanking> {
    let paths: Vec<PathBuf> = discover::find_captures(location).await?;
    if let Some(url) = &opts.cluster {
        // One reachability check up front: an unreachable scheduler is one error, not a
        // thousand skipped captures.
        crate::source::cluster::connect(url)
            .await
            .map_err(|e| AnalyzeError::Fleet {
                location: location.to_path_buf(),
                reason: e.to_string(),
            })?;
    }
    let total = paths.len();
    let mut acc = FleetAccumulator::default();
    let mut skipped_captures = Vec::new();
    let mut skipped_segments = Vec::new();
    let mut done = 0;
    // `buffered`, not `buffer_unordered`: results arrive in path order, so units and ties
    // are ordered the same way on every run; at most `jobs` rankings exist at once.
    let mut results = stream::iter(paths.iter())
        .map(|p| async move {
            let name = capture_name(location, p);
            let r = rank_capture(p, &name, opts).await;
            (p, r)
        })
        .buffered(opts.jobs.max(1));
    while let Some((path, r)) = results.next().await {
        done += 1;
        progress(done, total);
        skipped_segments.extend(r.skipped_segments);
        match r.outcome {
            Ok((unit, observations)) => acc.add(&unit, observations),
            Err(reason) => skipped_captures.push(SkippedCapture {
                capture: path.display().to_string(),
                reason,
            }),
        }
    }
    let fail = |reason: String| AnalyzeError::Fleet {
        location: location.to_path_buf(),
        reason,
    };
    let ranked = acc.captures();
    if ranked == 0 {
        let why = match &opts.by {
            UnitBy::Label(key)
                if skipped_captures
                    .iter()
                    .all(|s| matches!(s.reason, SkipReason::NoLabel { .. })) =>
            {
                format!("none of the {total} captures has the manifest label {key:?}")
            }
            _ => format!(
                "none of the {total} captures could be ranked (first: {}: {})",
                skipped_captures
                    .first()
                    .map_or(String::new(), |s| s.capture.clone()),
                skipped_captures.first().map_or(String::new(), |s| {
                    match &s.reason {
                        SkipReason::Unreadable { error } => error.clone(),
                        SkipReason::NotEnoughData { .. } => {
                            "not enough profiles to fit a trend".into()
                        }
                        SkipReason::NoLabel { key } => format!("no manifest label {key:?}"),
                    }
                })
            ),
        };
        return Err(fail(why));
    }
    let stats = acc.finish(&opts.rule);
    let names: Vec<String> = stats.units.iter().map(|u| u.name.clone()).collect();
    let sites = stats
        .sites
        .into_iter()
        .enumerate()
        .map(|(i, s)| fleet_site(i + 1, s, &names))
        .collect();
    Ok(FleetRanking {
        schema_version: FLEET_SCHEMA_VERSION,
        location: location.display().to_string(),
        by: opts.by.code(),
        group_by: opts.rank.by,
        outlier_rule: opts.rule,
        captures_found: total,
        captures_ranked: ranked,
        units: stats.units,
        sites,
        quiet_sites: stats.quiet_sites,
        skipped_captures,
        skipped_segments,
    })
}

/// A site's statistics with unit names instead of indices.
fn fleet_site(rank: usize, s: SiteStats, names: &[String]) -> FleetSite {
    let name = |u: usize| names.get(u).cloned().unwrap_or_default();
    let finite = |v: f64| v.is_finite().then_some(v);
    FleetSite {
        rank,
        metric: s.metric,
        unit: s.metric.unit(),
        site: s.site,
        units_leaking: s.units_leaking,
        units_present: s.units_present,
        captures_leaking: s.captures_leaking,
        captures_present: s.captures_present,
        spread: s.spread,
        outliers: s
            .outliers
            .iter()
            .map(|o| FleetOutlier {
                unit: name(o.unit),
                rate: o.rate,
                others_median: o.others_median,
                ratio: finite(o.ratio),
                z: finite(o.z),
            })
            .collect(),
        rates: s
            .rates
            .iter()
            .map(|r| FleetRate {
                unit: name(r.unit),
                rate: r.rate,
                leak: r.leak,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names_are_relative_to_the_location() {
        let loc = Path::new("/data/fleet");
        assert_eq!(
            capture_name(loc, Path::new("/data/fleet/eu/api-1")),
            "eu/api-1"
        );
        assert_eq!(capture_name(loc, loc), "/data/fleet");
        assert_eq!(
            capture_name(Path::new("s3://b/p"), Path::new("s3://b/p/api-2")),
            "api-2"
        );
    }
}
