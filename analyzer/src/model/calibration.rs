//! Simulated recordings of one call site, for measuring how often verdicts are right.
//!
//! A scenario is a shape of allocation and freeing (a leak, a cache, a batch, a load wave,
//! ...) with random parameters. [`observe`] records it the way leakscope sees a real Go
//! service: allocations are sampled as Go's heap profiler does (an object of `s` bytes is
//! sampled with probability `1 - exp(-s / rate)` and counted as `s / p`), a heap profile
//! shows the state as of the last completed GC (objects allocated while that GC marked
//! count as in use though they died: they were allocated black), the recorder scrapes at a
//! fixed interval,
//! and scrapes that saw the same GC are one observation (as the ranking counts them).
//! [`judge`] fits what was observed as the ranking does. The calibration test and
//! `cargo bench -p leakscope --bench calibration` (docs/accuracy.md) run thousands of these
//! over prefixes of each recording: the first 1, 2, 3, 5 and 10 minutes.

use crate::model::evidence::{checkpoint_index, AllocCheckpoints, SeriesContext, CHECKPOINTS};
use crate::model::fit::{fit_runs, Fit, RunView};

/// Go's default heap sampling rate (`runtime.MemProfileRate`), bytes.
pub const GO_DEFAULT_RATE: f64 = 512.0 * 1024.0;

/// How the service allocates at the simulated site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Never freed, from `start_s` on.
    Leak {
        /// When the leak begins, seconds since the service started.
        start_s: f64,
    },
    /// A bounded cache that fills in `fill_s` and then evicts its oldest entry for every
    /// new one (allocations continue), or stops allocating when full (`evicts: false`).
    Cache {
        /// Time to fill, seconds.
        fill_s: f64,
        /// Whether it keeps allocating (and evicting) once full.
        evicts: bool,
    },
    /// A buffer that accumulates and is flushed every `period_s`.
    Batch {
        /// Flush period, seconds.
        period_s: f64,
    },
    /// Allocates until `peak_s`, then frees all but `keep` of it.
    WarmUp {
        /// End of the warm-up, seconds.
        peak_s: f64,
        /// Share kept.
        keep: f64,
    },
    /// Memory that follows a load wave: allocation rate `1 ± 0.8 sin`, a 60 s lifetime.
    LoadWave {
        /// Period of the wave, seconds.
        period_s: f64,
        /// Phase, radians.
        phase: f64,
    },
    /// One large table replaced by a larger one at `at_s` (a reload or resize).
    Step {
        /// Time of the replacement, seconds.
        at_s: f64,
    },
    /// Short-lived allocations only (2 s lifetime).
    Churn,
}

impl Shape {
    /// Whether the shape is a real leak.
    pub fn is_leak(self) -> bool {
        matches!(self, Shape::Leak { .. })
    }

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Leak { start_s } if start_s > 0.0 => "late leak",
            Shape::Leak { .. } => "leak",
            Shape::Cache { evicts: true, .. } => "cache (evicting)",
            Shape::Cache { .. } => "cache (fill once)",
            Shape::Batch { .. } => "batch",
            Shape::WarmUp { .. } => "warm-up",
            Shape::LoadWave { .. } => "load wave",
            Shape::Step { .. } => "one-time step",
            Shape::Churn => "churn",
        }
    }
}

/// One simulated site.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    /// Its shape.
    pub shape: Shape,
    /// Bytes per second allocated into the shape's structure.
    pub rate: f64,
    /// Bytes per object.
    pub object_size: f64,
    /// Bytes per second of unrelated short-lived allocations at the same site.
    pub churn: f64,
}

impl Scenario {
    /// A leak of `rate` bytes per second from the service's start, in objects of
    /// `object_size` bytes, with no other allocations at the site.
    pub fn leak(rate: f64, object_size: f64) -> Scenario {
        Scenario {
            shape: Shape::Leak { start_s: 0.0 },
            rate,
            object_size,
            churn: 0.0,
        }
    }
}

impl Recording {
    /// From the service's start for `span_s`, scraped every `interval_s`, with a GC about
    /// every `gc_period_s` whose marking takes no time, at Go's default heap sampling.
    pub fn from_start(span_s: f64, interval_s: f64, gc_period_s: f64) -> Recording {
        Recording {
            start_s: 0.0,
            span_s,
            interval_s,
            gc_period_s,
            mark_share: 0.0,
            gc_ramp_s: 0.0,
            sampling: GO_DEFAULT_RATE,
        }
    }
}

/// How the service is recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recording {
    /// Seconds since the service started when recording begins.
    pub start_s: f64,
    /// Seconds recorded.
    pub span_s: f64,
    /// Scrape interval, seconds.
    pub interval_s: f64,
    /// Mean time between GC cycles, seconds (each gap uniform within ±50%).
    pub gc_period_s: f64,
    /// Share of each gap between GCs that the next GC spends marking: objects allocated
    /// then survive it (allocated black) and read as in use until the GC after.
    pub mark_share: f64,
    /// Seconds from the service's start over which GC gaps lengthen from a fifth of
    /// `gc_period_s` to all of it, as the live heap grows to its steady size (0: never).
    pub gc_ramp_s: f64,
    /// Heap sampling rate, bytes.
    pub sampling: f64,
}

/// What the recorder saw: one point per distinct heap observation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Hours since the recording's first point.
    pub hours: Vec<f64>,
    /// In-use bytes.
    pub inuse: Vec<f64>,
    /// Cumulative allocated bytes.
    pub alloc: Vec<f64>,
}

impl Observed {
    /// The first `seconds` of the recording.
    pub fn prefix(&self, seconds: f64) -> Observed {
        let n = self
            .hours
            .partition_point(|h| *h * 3600.0 <= seconds + 1e-9);
        Observed {
            hours: self.hours[..n].to_vec(),
            inuse: self.inuse[..n].to_vec(),
            alloc: self.alloc[..n].to_vec(),
        }
    }
}

/// A small deterministic random source (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// A uniform number in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform number in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// A number spread evenly on a log scale between lo and hi.
    pub fn log_between(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.uniform()).exp()
    }

    /// A Poisson-distributed count with mean `mean`.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            // Normal approximation (sum of 12 uniforms).
            let z: f64 = (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0;
            return (mean + z * mean.sqrt()).round().max(0.0) as u64;
        }
        let limit = (-mean).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= self.uniform();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }
}

/// One sampled allocation: when it was made and freed, and what the profile counts for it.
#[derive(Debug, Clone, Copy)]
struct Sampled {
    at: f64,
    freed: f64,
    weight: f64,
}

/// Sampled allocations of `count` Poisson arrivals per unit rate over `[t0, t1)` at rate
/// `rate(t)` objects per second, each freed at `free(t)`.
fn sample_objects(
    rng: &mut Rng,
    (t0, t1): (f64, f64),
    rate: &dyn Fn(f64) -> f64,
    size: f64,
    sampling: f64,
    free: &mut dyn FnMut(&mut Rng, f64) -> f64,
    out: &mut Vec<Sampled>,
) {
    let p = 1.0 - (-size / sampling).exp();
    let weight = size / p;
    let dt: f64 = 0.5;
    let mut t = t0;
    while t < t1 {
        let step = dt.min(t1 - t);
        let mean = rate(t + step / 2.0) / size * p * step;
        for _ in 0..rng.poisson(mean) {
            let at = t + rng.uniform() * step;
            let freed = free(rng, at);
            out.push(Sampled { at, freed, weight });
        }
        t += step;
    }
}

/// Records `s` as specified by `rec`.
pub fn observe(s: &Scenario, rec: &Recording, seed: u64) -> Observed {
    let mut rng = Rng::new(seed);
    let end = rec.start_s + rec.span_s;
    let mut objs = Vec::new();
    let size = s.object_size;
    let r = s.rate;
    match s.shape {
        Shape::Leak { start_s } => sample_objects(
            &mut rng,
            (start_s, end),
            &|_| r,
            size,
            rec.sampling,
            &mut |_, _| f64::INFINITY,
            &mut objs,
        ),
        Shape::Cache { fill_s, evicts } => sample_objects(
            &mut rng,
            (0.0, if evicts { end } else { fill_s.min(end) }),
            &|_| r,
            size,
            rec.sampling,
            &mut |_, at| if evicts { at + fill_s } else { f64::INFINITY },
            &mut objs,
        ),
        Shape::Batch { period_s } => sample_objects(
            &mut rng,
            (0.0, end),
            &|_| r,
            size,
            rec.sampling,
            &mut |_, at| ((at / period_s).floor() + 1.0) * period_s,
            &mut objs,
        ),
        Shape::WarmUp { peak_s, keep } => sample_objects(
            &mut rng,
            (0.0, peak_s.min(end)),
            &|_| r,
            size,
            rec.sampling,
            &mut |rng, _| {
                if rng.uniform() < keep {
                    f64::INFINITY
                } else {
                    peak_s + rng.between(0.0, 10.0)
                }
            },
            &mut objs,
        ),
        Shape::LoadWave { period_s, phase } => sample_objects(
            &mut rng,
            (0.0, end),
            &|t| r * (1.0 + 0.8 * (std::f64::consts::TAU * t / period_s + phase).sin()),
            size,
            rec.sampling,
            &mut |_, at| at + 60.0,
            &mut objs,
        ),
        Shape::Step { at_s } => {
            // The old table since start, replaced by one twice its size: `rate` is its size.
            objs.push(Sampled {
                at: 0.0,
                freed: at_s,
                weight: r,
            });
            objs.push(Sampled {
                at: at_s,
                freed: f64::INFINITY,
                weight: 2.0 * r,
            });
        }
        Shape::Churn => sample_objects(
            &mut rng,
            (0.0, end),
            &|_| r,
            size,
            rec.sampling,
            &mut |_, at| at + 2.0,
            &mut objs,
        ),
    }
    if s.churn > 0.0 {
        sample_objects(
            &mut rng,
            (0.0, end),
            &|_| s.churn,
            size,
            rec.sampling,
            &mut |rng, at| at + rng.between(0.5, 3.0),
            &mut objs,
        );
    }
    // GC cycles from the service's start; each scrape sees the last completed one.
    let mut gcs = Vec::new();
    let mut t = rng.between(0.0, rec.gc_period_s);
    while t <= end {
        gcs.push(t);
        let grown = if rec.gc_ramp_s > 0.0 {
            (0.2 + 0.8 * t / rec.gc_ramp_s).min(1.0)
        } else {
            1.0
        };
        t += rec.gc_period_s * grown * rng.between(0.5, 1.5);
    }
    let mut out = Observed::default();
    let mut last_gc = None;
    let mut scrape = rec.start_s;
    let first = rec.start_s;
    while scrape <= end + 1e-9 {
        let k = gcs.partition_point(|g| *g <= scrape);
        if k > 0 && last_gc != Some(k) {
            last_gc = Some(k);
            let g = gcs[k - 1];
            let marked_from = g - rec.mark_share * (g - if k > 1 { gcs[k - 2] } else { 0.0 });
            let (mut inuse, mut alloc) = (0.0, 0.0);
            for o in &objs {
                if o.at <= g {
                    alloc += o.weight;
                    if o.freed > g || o.at > marked_from {
                        inuse += o.weight;
                    }
                }
            }
            out.hours.push((scrape - first) / 3600.0);
            out.inuse.push(inuse);
            out.alloc.push(alloc);
        }
        scrape += rec.interval_s;
    }
    out
}

/// Fits what was observed as the ranking does: with the heap profile's sampling rate, the
/// site's object size and its allocation totals at the checkpoints.
pub fn judge(obs: &Observed, sampling: f64, object_size: f64) -> Fit {
    let n = obs.hours.len();
    let alloc = (n > 0).then(|| {
        let mut c = AllocCheckpoints::default();
        for i in 0..CHECKPOINTS.len() {
            let p = checkpoint_index(n, i);
            c.hours[i] = obs.hours[p];
            c.inuse[i] = obs.inuse[p];
            c.alloc[i] = obs.alloc[p];
        }
        c
    });
    let view = RunView {
        hours: &obs.hours,
        y: &obs.inuse,
        alloc,
    };
    let ctx = SeriesContext {
        sampling_period: Some(sampling),
        object_size,
    };
    fit_runs(&[view], &ctx)
}

/// A random scenario: leaks (some starting late) at 8 to 512 MiB/h, and the traps that
/// look like them, with parameters spread over what services do.
pub fn random_scenario(rng: &mut Rng) -> Scenario {
    let mib_h = |v: f64| v * 1024.0 * 1024.0 / 3600.0;
    let rate = mib_h(rng.log_between(8.0, 512.0));
    let object_size = rng.log_between(64.0, 256.0 * 1024.0);
    let churn = if rng.uniform() < 0.5 {
        0.0
    } else {
        rate * rng.log_between(0.1, 10.0)
    };
    let shape = match (rng.uniform() * 9.0) as u32 {
        0 | 1 => Shape::Leak { start_s: 0.0 },
        2 => Shape::Leak {
            start_s: rng.between(0.0, 600.0),
        },
        3 => Shape::Cache {
            fill_s: rng.log_between(20.0, 900.0),
            evicts: rng.uniform() < 0.7,
        },
        4 => Shape::Batch {
            period_s: rng.log_between(8.0, 600.0),
        },
        5 => Shape::WarmUp {
            peak_s: rng.log_between(20.0, 300.0),
            keep: rng.between(0.0, 0.5),
        },
        6 => Shape::LoadWave {
            period_s: rng.log_between(300.0, 3600.0),
            phase: rng.between(0.0, std::f64::consts::TAU),
        },
        7 => Shape::Step {
            at_s: rng.between(10.0, 500.0),
        },
        _ => Shape::Churn,
    };
    let rate = match shape {
        // A table of 4 to 64 MiB.
        Shape::Step { .. } => rng.log_between(4.0, 64.0) * 1024.0 * 1024.0,
        // Churn is a torrent: 0.1 to 4 MiB/s of garbage.
        Shape::Churn => rng.log_between(0.1, 4.0) * 1024.0 * 1024.0,
        _ => rate,
    };
    Scenario {
        shape,
        rate,
        object_size,
        churn,
    }
}

/// A random way of recording: from the service's start or later, at 10 s or 30 s, with GCs
/// every 1 to 30 s that mark for 0.5% to 20% of the time between them (in half the
/// services the gaps lengthen five-fold over the first 1 to 15 minutes as the heap grows),
/// at Go's default heap sampling.
pub fn random_recording(rng: &mut Rng, span_s: f64) -> Recording {
    Recording {
        start_s: if rng.uniform() < 0.5 {
            0.0
        } else {
            rng.between(0.0, 900.0)
        },
        span_s,
        interval_s: if rng.uniform() < 0.5 { 10.0 } else { 30.0 },
        gc_period_s: rng.log_between(1.0, 30.0),
        mark_share: rng.log_between(0.005, 0.2),
        gc_ramp_s: if rng.uniform() < 0.5 {
            0.0
        } else {
            rng.log_between(60.0, 900.0)
        },
        sampling: GO_DEFAULT_RATE,
    }
}

/// Prefixes of every recording that are judged, seconds.
pub const PREFIXES: [f64; 5] = [60.0, 120.0, 180.0, 300.0, 600.0];

/// One judged prefix of one simulated recording.
#[derive(Debug, Clone)]
pub struct Trial {
    /// Which simulated recording the prefix is of.
    pub recording_id: u64,
    /// The scenario.
    pub scenario: Scenario,
    /// How it was recorded.
    pub recording: Recording,
    /// Seconds of the recording judged.
    pub prefix_s: f64,
    /// Whether the leak had begun before the end of the prefix (traps: false).
    pub leaking: bool,
    /// The verdict.
    pub fit: Fit,
}

impl Trial {
    /// Whether a trap showed its bound before the last 40% of the judged prefix: a cache
    /// filled, a batch flushed twice, a warm-up peaked, a table was replaced, a load wave
    /// passed its crest (churn always). A trap still filling at the end of the recording
    /// is growth no data can tell from a leak yet; one that showed its bound must never be
    /// called a leak. `false` for leaks.
    pub fn bound_shown(&self) -> bool {
        let seen = self.recording.start_s + 0.6 * self.prefix_s;
        match self.scenario.shape {
            Shape::Leak { .. } => false,
            Shape::Cache { fill_s, .. } => fill_s <= seen,
            Shape::Batch { period_s } => 2.0 * period_s <= seen,
            Shape::WarmUp { peak_s, .. } => peak_s <= seen,
            Shape::Step { at_s } => at_s <= seen,
            Shape::LoadWave { period_s, .. } => period_s / 2.0 <= 0.6 * self.prefix_s,
            Shape::Churn => true,
        }
    }
}

/// Judges every prefix of `recordings` random recordings (seeded) of random scenarios.
pub fn trials(recordings: usize, seed: u64) -> Vec<Trial> {
    use rayon::prelude::*;
    (0..recordings as u64)
        .into_par_iter()
        .flat_map_iter(|i| {
            let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(i));
            let scenario = random_scenario(&mut rng);
            let recording = random_recording(&mut rng, PREFIXES[PREFIXES.len() - 1]);
            let obs = observe(&scenario, &recording, rng.0);
            PREFIXES.into_iter().map(move |prefix_s| {
                let leaking = match scenario.shape {
                    Shape::Leak { start_s } => start_s < recording.start_s + prefix_s,
                    _ => false,
                };
                Trial {
                    recording_id: i,
                    scenario,
                    recording,
                    prefix_s,
                    leaking,
                    fit: judge(
                        &obs.prefix(prefix_s),
                        recording.sampling,
                        scenario.object_size,
                    ),
                }
            })
        })
        .collect()
}

/// Confidence bins of the reliability table: `[lo, hi)`.
pub const CONFIDENCE_BINS: [(f64, f64); 5] = [
    (0.0, 0.5),
    (0.5, 0.9),
    (0.9, 0.95),
    (0.95, 0.99),
    (0.99, 1.01),
];

/// One row of the reliability table: leak verdicts with confidence in a bin.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reliability {
    /// Lower end of the bin.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
    /// Leak verdicts in the bin.
    pub called: usize,
    /// Of those, real leaks that had begun.
    pub real: usize,
}

impl Reliability {
    /// Share of the bin's leak verdicts that were real leaks.
    pub fn precision(&self) -> f64 {
        if self.called == 0 {
            1.0
        } else {
            self.real as f64 / self.called as f64
        }
    }
}

/// The reliability table of `trials`: `leak` verdicts by confidence bin.
pub fn reliability(trials: &[Trial]) -> Vec<Reliability> {
    CONFIDENCE_BINS
        .iter()
        .map(|&(lo, hi)| {
            let called: Vec<&Trial> = trials
                .iter()
                .filter(|t| t.fit.verdict == crate::model::fit::Verdict::Leak)
                .filter(|t| t.fit.confidence >= lo && t.fit.confidence < hi)
                .collect();
            Reliability {
                lo,
                hi,
                called: called.len(),
                real: called.iter().filter(|t| t.leaking).count(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fit::Verdict;

    #[test]
    fn leak_verdicts_are_calibrated_and_traps_that_showed_their_bound_are_never_leaks() {
        let all = trials(1500, 3);
        for r in reliability(&all).iter().filter(|r| r.called >= 40) {
            let in_bin: Vec<f64> = all
                .iter()
                .filter(|t| t.fit.verdict == Verdict::Leak)
                .map(|t| t.fit.confidence)
                .filter(|c| *c >= r.lo && *c < r.hi)
                .collect();
            let mean = in_bin.iter().sum::<f64>() / in_bin.len() as f64;
            let se = (mean * (1.0 - mean) / r.called as f64).sqrt();
            assert!(
                r.precision() >= mean - 2.0 * se,
                "confidence {:.2}-{:.2}: {} of {} real (mean confidence {mean:.3})",
                r.lo,
                r.hi,
                r.real,
                r.called
            );
        }
        let shown: Vec<&Trial> = all.iter().filter(|t| t.bound_shown()).collect();
        let false_leaks: Vec<String> = shown
            .iter()
            .filter(|t| t.fit.verdict == Verdict::Leak)
            .map(|t| {
                format!(
                    "{:?} at {} s: {}",
                    t.scenario.shape,
                    t.prefix_s,
                    crate::output::words::reason(&t.fit.reason)
                )
            })
            .collect();
        assert!(
            false_leaks.len() * 200 <= shown.len(),
            "{} of {} traps that showed their bound called leaks: {false_leaks:#?}",
            false_leaks.len(),
            shown.len()
        );
        // Every verdict on a minute of data is at most `growing`.
        assert!(all
            .iter()
            .filter(|t| t.prefix_s <= 60.0)
            .all(|t| t.fit.verdict != Verdict::Leak));
        // Full-length leaks are mostly found.
        let long: Vec<&Trial> = all
            .iter()
            .filter(|t| t.leaking && t.prefix_s >= 600.0)
            .collect();
        let found = long
            .iter()
            .filter(|t| t.fit.verdict == Verdict::Leak)
            .count();
        assert!(
            found * 2 >= long.len(),
            "{found} of {} leaks found at 10 min",
            long.len()
        );
    }

    #[test]
    fn a_leak_observed_grows_by_its_rate() {
        let s = Scenario::leak(100.0 * 1024.0, 1024.0);
        let rec = Recording::from_start(600.0, 10.0, 2.0);
        let o = observe(&s, &rec, 1);
        assert!(o.hours.len() >= 55, "{}", o.hours.len());
        let grown = o.inuse.last().unwrap();
        let want = 100.0 * 1024.0 * 600.0;
        assert!((grown / want - 1.0).abs() < 0.2, "{grown} vs {want}");
        assert_eq!(o.inuse, o.alloc, "a pure leak retains all it allocates");
    }

    #[test]
    fn scrapes_between_gcs_are_one_observation() {
        let s = Scenario {
            shape: Shape::Churn,
            rate: 1e6,
            object_size: 1024.0,
            churn: 0.0,
        };
        let rec = Recording::from_start(60.0, 1.0, 4.3);
        let n = observe(&s, &rec, 2).hours.len();
        assert!((10..=20).contains(&n), "{n} observations of ~14 GCs");
    }
}
