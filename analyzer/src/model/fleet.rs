//! Fleet statistics: how one call site behaves across many captures grouped into units
//! (targets, hosts or label values). Pure: per-capture summaries in, per-site counts,
//! rate spreads and outliers out (see [`OutlierRule`] for the outlier definition).

use std::collections::HashMap;

use serde::Serialize;

use crate::model::metric::Metric;

/// How captures are grouped into units (`fleet rank --by`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitBy {
    /// Every capture is its own unit.
    Capture,
    /// The manifest's `target`.
    Target,
    /// The manifest's `host`.
    Host,
    /// The value of a manifest label.
    Label(String),
}

/// Why a `--by` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitByError {
    /// Not one of the known groupings.
    #[error("unknown grouping {0:?} (use capture, target, host or label:KEY)")]
    Unknown(String),
    /// `label:` with an empty or malformed key.
    #[error("bad label key {0:?} (letters, digits, '_', '-', '.' and '/', at most 128)")]
    BadKey(String),
}

impl UnitBy {
    /// Parses `capture`, `target`, `host` or `label:KEY`.
    pub fn parse(s: &str) -> Result<UnitBy, UnitByError> {
        match s {
            "capture" => Ok(UnitBy::Capture),
            "target" => Ok(UnitBy::Target),
            "host" => Ok(UnitBy::Host),
            _ => match s.strip_prefix("label:") {
                Some(key) if is_label_key(key) => Ok(UnitBy::Label(key.to_string())),
                Some(key) => Err(UnitByError::BadKey(key.to_string())),
                None => Err(UnitByError::Unknown(s.to_string())),
            },
        }
    }

    /// The stable name (`capture`, `target`, `host`, `label:KEY`).
    pub fn code(&self) -> String {
        match self {
            UnitBy::Capture => "capture".into(),
            UnitBy::Target => "target".into(),
            UnitBy::Host => "host".into(),
            UnitBy::Label(k) => format!("label:{k}"),
        }
    }
}

/// Whether `key` is a usable label key: 1 to 128 ASCII letters, digits, `_`, `-`, `.`, `/`.
pub fn is_label_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

/// The outlier rule: unit `u` is an outlier of a site when the site is present in at least
/// `min_units` units, is a leak in `u`, and `u`'s rate `r` is far above the other units'
/// rates `R` (leave-one-out, so the outlier does not mask itself):
///
/// - `r > median(R) + z * 1.4826 * MAD(R)` (a robust z-score above `z`), and
/// - `r >= factor * median(R)` when `median(R) > 0` (at least `factor` times the others).
///
/// MAD is the median absolute deviation from the median.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OutlierRule {
    /// Robust z-score a rate must exceed.
    pub z: f64,
    /// Times the median of the other units a rate must reach.
    pub factor: f64,
    /// Units where the site is present needed before outliers are called.
    pub min_units: usize,
}

impl Default for OutlierRule {
    fn default() -> Self {
        OutlierRule {
            z: 3.0,
            factor: 3.0,
            min_units: 3,
        }
    }
}

/// Scale making the MAD of normal data estimate its standard deviation.
pub const MAD_SCALE: f64 = 1.4826;

/// The distribution of a site's rates across units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Lowest rate.
    pub min: f64,
    /// 10th percentile (linear interpolation).
    pub p10: f64,
    /// Median.
    pub median: f64,
    /// 90th percentile (linear interpolation).
    pub p90: f64,
    /// Highest rate.
    pub max: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f64,
}

/// Quantile `q` (0..1) of sorted `v` with linear interpolation; `v` must not be empty.
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The spread of `rates`; `None` when empty. Non-finite rates are ignored.
pub fn spread(rates: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = rates.iter().copied().filter(|r| r.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let median = quantile_sorted(&v, 0.5);
    Some(Spread {
        min: v[0],
        p10: quantile_sorted(&v, 0.1),
        median,
        p90: quantile_sorted(&v, 0.9),
        max: v[v.len() - 1],
        mad: mad(&v, median),
    })
}

/// Median absolute deviation of `v` from `center`.
fn mad(v: &[f64], center: f64) -> f64 {
    let mut dev: Vec<f64> = v.iter().map(|x| (x - center).abs()).collect();
    dev.sort_by(f64::total_cmp);
    if dev.is_empty() {
        0.0
    } else {
        quantile_sorted(&dev, 0.5)
    }
}

/// One unit's value for a site, as the outlier rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitRate {
    /// Unit index.
    pub unit: usize,
    /// Rate per hour.
    pub rate: f64,
    /// Whether the site leaks in the unit.
    pub leak: bool,
}

/// A unit whose rate stands out, with the numbers that made it one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Outlier {
    /// Unit index.
    pub unit: usize,
    /// Its rate per hour.
    pub rate: f64,
    /// Median rate of the other units.
    pub others_median: f64,
    /// `rate / others_median` (infinite when the others do not grow).
    pub ratio: f64,
    /// Robust z-score of the rate against the other units (infinite when their MAD is 0).
    pub z: f64,
}

/// The units whose rate is an outlier by `rule`, highest rate first.
pub fn outliers(units: &[UnitRate], rule: &OutlierRule) -> Vec<Outlier> {
    if units.len() < rule.min_units.max(2) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, u) in units.iter().enumerate() {
        if !u.leak || !u.rate.is_finite() || u.rate <= 0.0 {
            continue;
        }
        let mut rest: Vec<f64> = units
            .iter()
            .enumerate()
            .filter(|(j, o)| *j != i && o.rate.is_finite())
            .map(|(_, o)| o.rate)
            .collect();
        if rest.is_empty() {
            continue;
        }
        rest.sort_by(f64::total_cmp);
        let m = quantile_sorted(&rest, 0.5);
        let s = MAD_SCALE * mad(&rest, m);
        let z = if s > 0.0 {
            (u.rate - m) / s
        } else if u.rate > m {
            f64::INFINITY
        } else {
            0.0
        };
        let far = z > rule.z;
        let times = m <= 0.0 || u.rate >= rule.factor * m;
        if far && times {
            out.push(Outlier {
                unit: u.unit,
                rate: u.rate,
                others_median: m,
                ratio: if m > 0.0 { u.rate / m } else { f64::INFINITY },
                z,
            });
        }
    }
    out.sort_by(|a, b| b.rate.total_cmp(&a.rate));
    out
}

/// What one capture says about one site.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Metric.
    pub metric: Metric,
    /// Site key (as `rank --by` groups).
    pub site: String,
    /// Rate per hour in this capture.
    pub rate: f64,
    /// Whether the capture's verdict for the site is a leak.
    pub leak: bool,
}

/// One (site, capture) cell of the accumulator: 24 bytes, so a fleet of many captures is
/// held as compact cells rather than whole rankings.
#[derive(Debug, Clone, Copy)]
struct Cell {
    unit: u32,
    capture: u32,
    rate: f64,
    leak: bool,
}

/// Collects observations capture by capture; [`FleetAccumulator::finish`] turns them into
/// per-site summaries.
#[derive(Debug, Default)]
pub struct FleetAccumulator {
    units: Vec<String>,
    unit_index: HashMap<String, u32>,
    unit_captures: Vec<usize>,
    captures: u32,
    sites: HashMap<(Metric, String), Vec<Cell>>,
}

/// A unit: its name and how many of the captures belong to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    /// The unit's value (target, host, label value or capture name).
    pub name: String,
    /// Captures in the unit.
    pub captures: usize,
}

/// One unit's rate for a site (the median over the unit's captures where it is present).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteUnitRate {
    /// Unit index into [`FleetStats::units`].
    pub unit: usize,
    /// Rate per hour.
    pub rate: f64,
    /// Whether the site leaks in at least one of the unit's captures.
    pub leak: bool,
}

/// A site across the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteStats {
    /// Metric.
    pub metric: Metric,
    /// Site key.
    pub site: String,
    /// Units where the site leaks (in at least one of the unit's captures).
    pub units_leaking: usize,
    /// Units where the site is present.
    pub units_present: usize,
    /// Captures where the site is a leak.
    pub captures_leaking: usize,
    /// Captures where the site is present.
    pub captures_present: usize,
    /// Spread of the units' rates.
    pub spread: Spread,
    /// Units whose rate stands out ([`OutlierRule`]), highest first.
    pub outliers: Vec<Outlier>,
    /// Every unit's rate, highest first.
    pub rates: Vec<SiteUnitRate>,
}

/// The result of [`FleetAccumulator::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct FleetStats {
    /// Units in order of first appearance.
    pub units: Vec<Unit>,
    /// Sites that leak in at least one unit, by [`site_order`].
    pub sites: Vec<SiteStats>,
    /// Sites seen that leak nowhere.
    pub quiet_sites: usize,
}

impl FleetAccumulator {
    /// Adds one capture, belonging to `unit`, with its observations.
    pub fn add(&mut self, unit: &str, observations: impl IntoIterator<Item = Observation>) {
        let next = self.units.len() as u32;
        let u = *self.unit_index.entry(unit.to_string()).or_insert(next);
        if u == next {
            self.units.push(unit.to_string());
            self.unit_captures.push(0);
        }
        self.unit_captures[u as usize] += 1;
        let capture = self.captures;
        self.captures += 1;
        for o in observations {
            self.sites
                .entry((o.metric, o.site))
                .or_default()
                .push(Cell {
                    unit: u,
                    capture,
                    rate: o.rate,
                    leak: o.leak,
                });
        }
    }

    /// Captures added so far.
    pub fn captures(&self) -> usize {
        self.captures as usize
    }

    /// Per-site statistics of the sites that leak in at least one unit.
    pub fn finish(self, rule: &OutlierRule) -> FleetStats {
        let mut quiet = 0;
        let mut sites = Vec::new();
        for ((metric, site), cells) in self.sites {
            if !cells.iter().any(|c| c.leak) {
                quiet += 1;
                continue;
            }
            sites.push(site_stats(metric, site, &cells, rule));
        }
        sites.sort_by(site_order);
        FleetStats {
            units: self
                .units
                .into_iter()
                .zip(self.unit_captures)
                .map(|(name, captures)| Unit { name, captures })
                .collect(),
            sites,
            quiet_sites: quiet,
        }
    }
}

/// The order of sites: more leaking units first, then byte metrics before goroutines and
/// objects, then higher median rate, then the key.
pub fn site_order(a: &SiteStats, b: &SiteStats) -> std::cmp::Ordering {
    let priority = |m: Metric| match m {
        Metric::InuseSpace | Metric::Native => 0,
        Metric::Goroutines => 1,
        Metric::InuseObjects => 2,
    };
    b.units_leaking
        .cmp(&a.units_leaking)
        .then(priority(a.metric).cmp(&priority(b.metric)))
        .then(b.spread.median.total_cmp(&a.spread.median))
        .then(a.site.cmp(&b.site))
}

fn site_stats(metric: Metric, site: String, cells: &[Cell], rule: &OutlierRule) -> SiteStats {
    let mut by_unit: HashMap<u32, (Vec<f64>, bool)> = HashMap::new();
    for c in cells {
        let e = by_unit.entry(c.unit).or_default();
        e.0.push(c.rate);
        e.1 |= c.leak;
    }
    let mut captures: Vec<u32> = cells.iter().map(|c| c.capture).collect();
    captures.sort_unstable();
    captures.dedup();
    let captures_leaking = {
        let mut l: Vec<u32> = cells.iter().filter(|c| c.leak).map(|c| c.capture).collect();
        l.sort_unstable();
        l.dedup();
        l.len()
    };
    let mut rates: Vec<SiteUnitRate> = by_unit
        .into_iter()
        .map(|(unit, (r, leak))| SiteUnitRate {
            unit: unit as usize,
            rate: spread(&r).map_or(0.0, |s| s.median),
            leak,
        })
        .collect();
    rates.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(a.unit.cmp(&b.unit)));
    let values: Vec<f64> = rates.iter().map(|r| r.rate).collect();
    let view: Vec<UnitRate> = rates
        .iter()
        .map(|r| UnitRate {
            unit: r.unit,
            rate: r.rate,
            leak: r.leak,
        })
        .collect();
    SiteStats {
        metric,
        site,
        units_leaking: rates.iter().filter(|r| r.leak).count(),
        units_present: rates.len(),
        captures_leaking,
        captures_present: captures.len(),
        spread: spread(&values).unwrap_or(Spread {
            min: 0.0,
            p10: 0.0,
            median: 0.0,
            p90: 0.0,
            max: 0.0,
            mad: 0.0,
        }),
        outliers: outliers(&view, rule),
        rates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ur(unit: usize, rate: f64, leak: bool) -> UnitRate {
        UnitRate { unit, rate, leak }
    }

    fn obs(site: &str, rate: f64, leak: bool) -> Observation {
        Observation {
            metric: Metric::InuseSpace,
            site: site.into(),
            rate,
            leak,
        }
    }

    #[test]
    fn parses_groupings_and_refuses_bad_keys() {
        assert_eq!(UnitBy::parse("host"), Ok(UnitBy::Host));
        assert_eq!(UnitBy::parse("label:pod"), Ok(UnitBy::Label("pod".into())));
        assert_eq!(
            UnitBy::parse("label:app.kubernetes.io/name")
                .unwrap()
                .code(),
            "label:app.kubernetes.io/name"
        );
        assert!(matches!(
            UnitBy::parse("label:"),
            Err(UnitByError::BadKey(_))
        ));
        assert!(matches!(
            UnitBy::parse("label:a b"),
            Err(UnitByError::BadKey(_))
        ));
        assert!(matches!(UnitBy::parse("pod"), Err(UnitByError::Unknown(_))));
    }

    #[test]
    fn spread_of_hand_values() {
        let s = spread(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 100.0);
        assert_eq!(s.median, 3.0);
        // deviations 2,1,0,1,97 -> median 1
        assert_eq!(s.mad, 1.0);
        assert!((s.p10 - 1.4).abs() < 1e-12, "{}", s.p10);
        assert!((s.p90 - 61.6).abs() < 1e-12, "{}", s.p90);
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[f64::NAN]), None);
        let one = spread(&[5.0]).unwrap();
        assert_eq!(
            (one.min, one.median, one.max, one.mad),
            (5.0, 5.0, 5.0, 0.0)
        );
    }

    #[test]
    fn the_unit_leaking_ten_times_faster_is_the_only_outlier() {
        let units = [
            ur(0, 10.0, true),
            ur(1, 11.0, true),
            ur(2, 9.0, true),
            ur(3, 100.0, true),
            ur(4, 10.5, true),
        ];
        let o = outliers(&units, &OutlierRule::default());
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!(o[0].unit, 3);
        assert!((o[0].ratio - 100.0 / 10.25).abs() < 1e-9, "{o:?}");
        assert!(o[0].z > 3.0);
    }

    #[test]
    fn outliers_need_both_distance_and_factor() {
        let rule = OutlierRule::default();
        // Far in z (the others agree closely) but only 1.5x: not an outlier.
        let close = [
            ur(0, 10.0, true),
            ur(1, 10.1, true),
            ur(2, 9.9, true),
            ur(3, 15.0, true),
        ];
        assert!(outliers(&close, &rule).is_empty());
        // 4.5x the median of the others, but they are spread as widely: not an outlier.
        let wide = [
            ur(0, 2.0, true),
            ur(1, 10.0, true),
            ur(2, 30.0, true),
            ur(3, 45.0, true),
        ];
        assert!(
            outliers(&wide, &rule).is_empty(),
            "{:?}",
            outliers(&wide, &rule)
        );
        // Identical others (MAD 0): any rate 3x above is an outlier, with infinite z.
        let flat = [ur(0, 2.0, true), ur(1, 2.0, true), ur(2, 6.0, true)];
        let o = outliers(&flat, &rule);
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].unit, 2);
        assert!(o[0].z.is_infinite());
        // Exactly 3x is enough, just under is not.
        let just = [ur(0, 2.0, true), ur(1, 2.0, true), ur(2, 5.99, true)];
        assert!(outliers(&just, &rule).is_empty());
    }

    #[test]
    fn outliers_must_leak_and_need_enough_units() {
        let rule = OutlierRule::default();
        let not_leak = [ur(0, 1.0, true), ur(1, 1.0, true), ur(2, 50.0, false)];
        assert!(outliers(&not_leak, &rule).is_empty());
        let two = [ur(0, 1.0, true), ur(1, 50.0, true)];
        assert!(outliers(&two, &rule).is_empty());
        // Others flat at zero: a leaking unit is an outlier with an infinite ratio.
        let alone = [ur(0, 0.0, false), ur(1, 0.0, false), ur(2, 7.0, true)];
        let o = outliers(&alone, &rule);
        assert_eq!(o.len(), 1);
        assert!(o[0].ratio.is_infinite());
    }

    #[test]
    fn accumulator_counts_units_and_captures_and_orders_sites() {
        let mut acc = FleetAccumulator::default();
        // Unit "a" has two captures: one leaks site x at 10, one at 30 (unit rate 20).
        acc.add("a", [obs("x", 10.0, true), obs("y", 1.0, false)]);
        acc.add("a", [obs("x", 30.0, false), obs("quiet", 0.0, false)]);
        acc.add("b", [obs("x", 12.0, true), obs("y", 500.0, true)]);
        acc.add("c", [obs("x", 200.0, true)]);
        acc.add("d", [obs("x", 18.0, false)]);
        assert_eq!(acc.captures(), 5);
        let s = acc.finish(&OutlierRule::default());
        assert_eq!(s.quiet_sites, 1);
        assert_eq!(
            s.units
                .iter()
                .map(|u| (u.name.as_str(), u.captures))
                .collect::<Vec<_>>(),
            [("a", 2), ("b", 1), ("c", 1), ("d", 1)]
        );
        assert_eq!(s.sites.len(), 2);
        let x = &s.sites[0];
        assert_eq!(x.site, "x");
        assert_eq!((x.units_leaking, x.units_present), (3, 4));
        assert_eq!((x.captures_leaking, x.captures_present), (3, 5));
        // Unit rates: a 20, b 12, c 200, d 18.
        assert_eq!(x.rates[0].unit, 2);
        assert_eq!(x.rates.iter().find(|r| r.unit == 0).unwrap().rate, 20.0);
        assert_eq!(x.spread.median, 19.0);
        assert_eq!(x.outliers.len(), 1);
        assert_eq!(x.outliers[0].unit, 2);
        assert_eq!(x.outliers[0].others_median, 18.0);
        let y = &s.sites[1];
        assert_eq!((y.units_leaking, y.units_present), (1, 2));
        // Only two units: too few for outliers.
        assert!(y.outliers.is_empty());
    }
}
