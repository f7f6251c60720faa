//! Prints the calibration tables of docs/accuracy.md from simulated recordings (see
//! `leakscope::model::calibration`): the reliability of `leak` verdicts by confidence, verdicts
//! by recording length for leaks and for traps, false alarms by trap shape, and the
//! recording time at which leaks of given rates are first called leaks.
//!
//! `cargo bench -p leakscope --bench calibration [-- RECORDINGS SEED]`

use std::collections::BTreeMap;

use leakscope::model::calibration::{
    judge, observe, reliability, trials, Recording, Scenario, Trial, GO_DEFAULT_RATE, PREFIXES,
};
use leakscope::model::fit::Verdict;

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * a as f64 / b as f64)
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let recordings: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(4000);
    let seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let t = std::time::Instant::now();
    let all = trials(recordings, seed);
    println!(
        "{recordings} simulated recordings (seed {seed}), {} judged prefixes, in {:.1} s\n",
        all.len(),
        t.elapsed().as_secs_f64()
    );

    if std::env::var_os("CALIBRATION_DUMP").is_some() {
        dump(&all);
    }
    if std::env::var_os("CALIBRATION_MISSED").is_some() {
        for t in all.iter().filter(|t| {
            t.leaking
                && t.prefix_s >= 600.0
                && !matches!(t.fit.verdict, Verdict::Leak | Verdict::Growing)
        }) {
            println!(
                "missed {:?} rate {:.0} obj {:.0} churn {:.0} | start {:.0} gc {:.1} | {:?} pts {} q {:.1} | {}",
                t.scenario.shape,
                t.scenario.rate,
                t.scenario.object_size,
                t.scenario.churn,
                t.recording.start_s,
                t.recording.gc_period_s,
                t.fit.verdict,
                t.fit.points,
                t.fit.quanta,
                leakscope::output::words::reason(&t.fit.reason)
            );
        }
    }
    if std::env::var_os("CALIBRATION_CSV").is_some() {
        for t in all.iter().filter(|t| t.fit.verdict == Verdict::Leak) {
            println!(
                "csv,{},{},{:.2},{:.1},{:.3},{}",
                u8::from(t.leaking),
                t.fit.points,
                t.fit.quanta,
                t.prefix_s,
                t.fit.confidence,
                t.scenario.shape.name()
            );
        }
    }
    println!("Reliability of `leak` verdicts (all prefixes):\n");
    println!("| confidence | leak verdicts | real leaks | share real |");
    println!("|---|---|---|---|");
    for r in reliability(&all) {
        println!(
            "| {:.2}-{:.2} | {} | {} | {} |",
            r.lo,
            r.hi.min(1.0),
            r.called,
            r.real,
            pct(r.real, r.called)
        );
    }

    println!("\nVerdicts by recording length:\n");
    println!("| prefix | traps | trap → leak | trap → possible | trap → growing | leaks | leak → leak | leak → growing | leak → other |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in PREFIXES {
        let at: Vec<&Trial> = all.iter().filter(|t| t.prefix_s == p).collect();
        let traps: Vec<&&Trial> = at.iter().filter(|t| !t.scenario.shape.is_leak()).collect();
        let leaks: Vec<&&Trial> = at.iter().filter(|t| t.leaking).collect();
        let count =
            |v: &[&&Trial], verdict: Verdict| v.iter().filter(|t| t.fit.verdict == verdict).count();
        let leak_called = count(&leaks, Verdict::Leak);
        let leak_growing = count(&leaks, Verdict::Growing);
        println!(
            "| {:.0} min | {} | {} | {} | {} | {} | {} | {} | {} |",
            p / 60.0,
            traps.len(),
            pct(count(&traps, Verdict::Leak), traps.len()),
            pct(count(&traps, Verdict::PossibleLeak), traps.len()),
            pct(count(&traps, Verdict::Growing), traps.len()),
            leaks.len(),
            pct(leak_called, leaks.len()),
            pct(leak_growing, leaks.len()),
            pct(leaks.len() - leak_called - leak_growing, leaks.len()),
        );
    }

    println!("\nStability as the recording grows (each recording judged at every prefix):\n");
    let mut by_rec: BTreeMap<u64, Vec<&Trial>> = BTreeMap::new();
    for t in &all {
        by_rec.entry(t.recording_id).or_default().push(t);
    }
    let (mut leaks_flipped, mut leaks_called, mut traps_called, mut traps_kept) = (0, 0, 0, 0);
    for prefixes in by_rec.values() {
        let called: Vec<bool> = prefixes
            .iter()
            .map(|t| t.fit.verdict == Verdict::Leak)
            .collect();
        let Some(first) = called.iter().position(|c| *c) else {
            continue;
        };
        let later_not = called[first..].iter().any(|c| !c);
        if prefixes[0].scenario.shape.is_leak() {
            leaks_called += 1;
            leaks_flipped += usize::from(later_not);
        } else {
            traps_called += 1;
            traps_kept += usize::from(!called[called.len() - 1]);
        }
    }
    println!("| | recordings | share |");
    println!("|---|---|---|");
    println!(
        "| leaks once called `leak`, later not | {leaks_flipped} of {leaks_called} | {} |",
        pct(leaks_flipped, leaks_called)
    );
    println!(
        "| traps once called `leak`, no longer at 10 min | {traps_kept} of {traps_called} | {} |",
        pct(traps_kept, traps_called)
    );

    println!("\nTraps that showed their bound before the last 40% of the recording (filled, flushed twice, peaked, replaced):\n");
    println!("| prefix | traps | → leak | → possible leak | → growing |");
    println!("|---|---|---|---|---|");
    for p in PREFIXES {
        let shown: Vec<&Trial> = all
            .iter()
            .filter(|t| t.prefix_s == p && t.bound_shown())
            .collect();
        let count = |v: Verdict| shown.iter().filter(|t| t.fit.verdict == v).count();
        println!(
            "| {:.0} min | {} | {} | {} | {} |",
            p / 60.0,
            shown.len(),
            pct(count(Verdict::Leak), shown.len()),
            pct(count(Verdict::PossibleLeak), shown.len()),
            pct(count(Verdict::Growing), shown.len()),
        );
    }

    println!("\nTraps called `leak`, by shape and recording length:\n");
    let mut by_shape: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    for t in all.iter().filter(|t| !t.scenario.shape.is_leak()) {
        let row = by_shape
            .entry(t.scenario.shape.name())
            .or_insert_with(|| vec![(0, 0); PREFIXES.len()]);
        let i = PREFIXES.iter().position(|p| *p == t.prefix_s).unwrap_or(0);
        row[i].1 += 1;
        row[i].0 += usize::from(t.fit.verdict == Verdict::Leak);
    }
    let head: Vec<String> = PREFIXES
        .iter()
        .map(|p| format!("{:.0} min", p / 60.0))
        .collect();
    println!("| trap | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(PREFIXES.len()));
    for (name, row) in &by_shape {
        let cells: Vec<String> = row.iter().map(|(a, b)| format!("{a}/{b}")).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }

    println!("\nTime to a `leak` verdict (10 s scrapes, GC every ~5 s, 1 KiB objects, 512 KiB sampling; 40 recordings each):\n");
    println!(
        "| leak rate | called by 2 min | by 5 min | by 10 min | median time | 90th percentile |"
    );
    println!("|---|---|---|---|---|---|");
    for mib_h in [8.0, 16.0, 64.0, 256.0, 1024.0] {
        let s = Scenario::leak(mib_h * 1024.0 * 1024.0 / 3600.0, 1024.0);
        let rec = Recording::from_start(600.0, 10.0, 5.0);
        let mut firsts: Vec<f64> = (0..40u64)
            .map(|seed| {
                let obs = observe(&s, &rec, 1000 + seed);
                (1..=20)
                    .map(|k| k as f64 * 30.0)
                    .find(|p| {
                        judge(&obs.prefix(*p), GO_DEFAULT_RATE, 1024.0).verdict == Verdict::Leak
                    })
                    .unwrap_or(f64::INFINITY)
            })
            .collect();
        firsts.sort_by(f64::total_cmp);
        let by = |s: f64| firsts.iter().filter(|f| **f <= s).count();
        let show = |v: f64| {
            if v.is_finite() {
                format!("{:.1} min", v / 60.0)
            } else {
                "> 10 min".into()
            }
        };
        println!(
            "| {mib_h} MiB/h | {} | {} | {} | {} | {} |",
            pct(by(120.0), 40),
            pct(by(300.0), 40),
            pct(by(600.0), 40),
            show(firsts[20]),
            show(firsts[35]),
        );
    }
}

/// With `CALIBRATION_DUMP=1`, prints every trap called a leak (for investigation).
#[allow(dead_code)]
fn dump(all: &[Trial]) {
    for t in all
        .iter()
        .filter(|t| t.bound_shown() && t.fit.verdict == Verdict::Leak)
    {
        println!(
            "{:?} rate {:.0} B/s obj {:.0} churn {:.0} | start {:.0} int {} gc {:.1} | prefix {} | pts {} quanta {:.1} conf {:.3} | {}",
            t.scenario.shape,
            t.scenario.rate,
            t.scenario.object_size,
            t.scenario.churn,
            t.recording.start_s,
            t.recording.interval_s,
            t.recording.gc_period_s,
            t.prefix_s,
            t.fit.points,
            t.fit.quanta,
            t.fit.confidence,
            leakscope::output::words::reason(&t.fit.reason)
        );
    }
}
