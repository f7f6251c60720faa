//! Where a long series' fit spends its time (a timing report, not a check):
//! `cargo bench -p leakscope --bench fit_cost`.

use std::hint::black_box;
use std::time::Instant;

use leakscope::model::fit::{fit_runs, RunView, REDUCED_POINTS};
use leakscope::model::stats;

fn main() {
    let n = 10_000;
    let x: Vec<f64> = (0..n).map(|i| i as f64 / 360.0).collect();
    let mut state = 7u64;
    // A leak of 1 unit per point under uniform noise of +-8M around 1e9.
    let y: Vec<f64> = (0..n)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            1e9 + (state >> 40) as f64 - 8e6 + i as f64
        })
        .collect();
    let reps = 200;
    let time = |name: &str, f: &dyn Fn()| {
        let t = Instant::now();
        for _ in 0..reps {
            f();
        }
        println!(
            "{name:<22} {:>8.1} us",
            t.elapsed().as_secs_f64() * 1e6 / reps as f64
        );
    };
    let (bx, by) = stats::bucket_medians(&x, &y, REDUCED_POINTS);
    time("fit_runs", &|| {
        black_box(fit_runs(&[RunView::new(&x, &y)], &Default::default()));
    });
    time("fit_runs (64 points)", &|| {
        black_box(fit_runs(&[RunView::new(&bx, &by)], &Default::default()));
    });
    time("fit_runs (256 points)", &|| {
        black_box(fit_runs(
            &[RunView::new(&x[..256], &y[..256])],
            &Default::default(),
        ));
    });
    time("floor mins (full)", &|| {
        let k = 8;
        let mut out = 0.0;
        for c in 0..k {
            let (lo, hi) = (c * n / k, (c + 1) * n / k);
            out += y[lo..hi]
                .iter()
                .copied()
                .min_by(|a, b| a.total_cmp(b))
                .unwrap_or(0.0);
        }
        black_box(out);
    });
    time("bucket_medians", &|| {
        black_box(stats::bucket_medians(&x, &y, REDUCED_POINTS));
    });
    time("ols (full)", &|| {
        black_box(stats::ols(&x, &y));
    });
    time("theil_sen (reduced)", &|| {
        black_box(stats::theil_sen(&bx, &by));
    });
    time("mann_kendall (reduced)", &|| {
        black_box(stats::mann_kendall(&bx, &by));
    });
    time("knee (reduced)", &|| {
        black_box(stats::knee(&bx, &by, 10));
    });
    time("step_noise_sd (full)", &|| {
        black_box(stats::step_noise_sd(&y));
    });
    time("steps (full)", &|| {
        black_box(leakscope::model::evidence::steps(&y));
    });
    time("median (full)", &|| {
        black_box(stats::median(&y));
    });
}
