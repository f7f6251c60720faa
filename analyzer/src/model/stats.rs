//! Trend statistics on short, noisy time series: OLS, Theil-Sen, Mann-Kendall.
//!
//! All functions take `x` (time, any unit) and `y` (value) of equal length and never panic
//! on degenerate input (too few points, constant x): they return `None` or neutral values.

use super::select;

/// Points above which the O(n²) estimators work on a bucketed (median) series instead.
pub const MAX_PAIRWISE_POINTS: usize = 256;

/// Ordinary least squares fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ols {
    /// Slope in y units per x unit.
    pub slope: f64,
    /// Intercept at x = 0.
    pub intercept: f64,
    /// Coefficient of determination (0 when y is constant).
    pub r2: f64,
}

/// Least-squares line through the points; `None` with fewer than 2 points or constant x.
pub fn ols(x: &[f64], y: &[f64]) -> Option<Ols> {
    let n = x.len().min(y.len());
    if n < 2 {
        return None;
    }
    // One pass over values shifted by the first point (keeps the sums well conditioned).
    let (x0, y0) = (x[0], y[0]);
    let (mut sx, mut sy, mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (xi, yi) in x[..n].iter().zip(&y[..n]) {
        let (dx, dy) = (xi - x0, yi - y0);
        sx += dx;
        sy += dy;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    let nf = n as f64;
    let (mx, my) = (sx / nf, sy / nf);
    let sxx = sxx - sx * mx;
    let sxy = sxy - sx * my;
    let syy = syy - sy * my;
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy > 0.0 {
        (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    Some(Ols {
        slope,
        intercept: (my + y0) - slope * (mx + x0),
        r2,
    })
}

/// A two-segment ("broken stick") least-squares fit with the break at one of the points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knee {
    /// Index of the break point.
    pub index: usize,
    /// Slope before the break.
    pub before: f64,
    /// Slope after the break.
    pub after: f64,
    /// The fitted line's value at the first point's x.
    pub intercept: f64,
    /// x of the break point.
    pub x_break: f64,
}

impl Knee {
    /// The fitted two-segment line at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.intercept
            + self.before * x.min(self.x_break)
            + self.after * (x - self.x_break).max(0.0)
    }
}

/// Finds the break point (with at least `min_side` points on each side) whose continuous
/// two-segment line fits best; `None` when the series is too short.
pub fn knee(x: &[f64], y: &[f64], min_side: usize) -> Option<Knee> {
    let n = x.len().min(y.len());
    let candidates = knee_candidates(n, min_side)?;
    first_best(&knee_fits(&x[..n], &y[..n], candidates), |_| true)
}

/// [`knee`] for two minimum sides at once: `[knee(x, y, sides[0]), knee(x, y, sides[1])]`.
/// When both try every point as the break (fewer than 96 candidates, as on a reduced
/// run's 64 points), the wider range's fits include the narrower one's, each fitted and
/// summed the same way, so both knees come from one set of fits: the first best within
/// each range. The ranking fits two knees per run (the knee test and the trend test's
/// bend); the shared fits save the second one's (about 5 us of a 10,000-point run).
pub fn knees(x: &[f64], y: &[f64], sides: [usize; 2]) -> [Option<Knee>; 2] {
    let n = x.len().min(y.len());
    // `knee_candidates` steps by 1 below twice KNEE_FITS candidates.
    let every_point = |s: usize| s >= 2 && n > 2 * s && n - 2 * s < 2 * KNEE_FITS;
    if !sides.iter().all(|s| every_point(*s)) {
        return sides.map(|s| knee(x, y, s));
    }
    let widest = sides[0].min(sides[1]);
    let fits = knee_fits(&x[..n], &y[..n], widest..n - widest);
    sides.map(|s| first_best(&fits, |k| (s..n - s).contains(&k)))
}

/// Break points a knee fit tries: about [`KNEE_FITS`] of them, evenly spread, at least
/// `min_side` points from either end; `None` when the series is too short.
fn knee_candidates(n: usize, min_side: usize) -> Option<std::iter::StepBy<std::ops::Range<usize>>> {
    if n < 2 * min_side + 1 || min_side < 2 {
        return None;
    }
    let len = n - 2 * min_side;
    Some((min_side..n - min_side).step_by((len / KNEE_FITS).max(1)))
}

/// About how many break points [`knee`] tries.
const KNEE_FITS: usize = 48;

/// Each candidate break's two-segment fit (those whose equations are solvable) with its
/// sum of squared residuals.
fn knee_fits(x: &[f64], y: &[f64], candidates: impl Iterator<Item = usize>) -> Vec<(Knee, f64)> {
    let prefix = KneePrefix::new(x, y);
    let fits: Vec<Knee> = candidates
        .filter_map(|k| {
            let xk = x[k];
            let (m, v) = match &prefix {
                Some(p) => p.normal_equations(x, y, xk),
                None => knee_normal_equations(x, y, xk),
            };
            solve3(m, v).map(|c| Knee {
                index: k,
                before: c[1],
                after: c[2],
                intercept: c[0],
                x_break: xk,
            })
        })
        .collect();
    // The sums go `SSE_LANES` candidates per pass over the points: each is still added
    // point by point in order (the same bits as one candidate at a time), but the lanes'
    // additions do not wait on each other. One candidate per pass waited on its previous
    // addition at every point, and the knee took 5% of a ranking of 100M rows by stack
    // (perf).
    let mut out = Vec::with_capacity(fits.len());
    for group in fits.chunks(SSE_LANES) {
        // Lanes past the group's end repeat its first fit; `zip` stops before them.
        for (sse, knee) in squared_residuals(x, y, group).into_iter().zip(group) {
            out.push((*knee, sse));
        }
    }
    out
}

/// The first fit with the smallest sum of squared residuals among those whose break
/// index is `kept`.
fn first_best(fits: &[(Knee, f64)], kept: impl Fn(usize) -> bool) -> Option<Knee> {
    let mut best: Option<(f64, Knee)> = None;
    for (knee, sse) in fits.iter().filter(|(k, _)| kept(k.index)) {
        if best.as_ref().is_none_or(|(b, _)| *sse < *b) {
            best = Some((*sse, *knee));
        }
    }
    best.map(|(_, k)| k)
}

/// Candidates whose sums of squared residuals [`knee`] adds in one pass over the points.
const SSE_LANES: usize = 4;

/// The sum of squared residuals of each of up to [`SSE_LANES`] knee fits, each added in
/// point order from -0.0 (what `Iterator::sum` of `f64` does), in one pass over the points.
fn squared_residuals(x: &[f64], y: &[f64], fits: &[Knee]) -> [f64; SSE_LANES] {
    let mut lanes = [*fits.first().expect("at least one fit"); SSE_LANES];
    lanes[..fits.len()].copy_from_slice(fits);
    let mut sse = [-0.0f64; SSE_LANES];
    for (xi, yi) in x.iter().zip(y) {
        for (s, k) in sse.iter_mut().zip(&lanes) {
            let f =
                k.intercept + k.before * xi.min(k.x_break) + k.after * (xi - k.x_break).max(0.0);
            *s += (yi - f).powi(2);
        }
    }
    sse
}

/// The normal equations of the two-segment fit with its break at `xk`: the sums over
/// every point of `r r'` and `r y`, regressors `r = (1, min(x, xk), max(x - xk, 0))`,
/// added in point order.
fn knee_normal_equations(x: &[f64], y: &[f64], xk: f64) -> ([[f64; 3]; 3], [f64; 3]) {
    let mut m = [[0.0f64; 3]; 3];
    let mut v = [0.0f64; 3];
    for (xi, yi) in x.iter().zip(y) {
        let r = [1.0, xi.min(xk), (xi - xk).max(0.0)];
        for a in 0..3 {
            v[a] += r[a] * yi;
            for b in 0..3 {
                m[a][b] += r[a] * r[b];
            }
        }
    }
    (m, v)
}

/// Running sums for [`knee`] over time-ordered, finite points, so that each candidate
/// break adds only the points after it: the same sums, bit for bit, as
/// [`knee_normal_equations`]. Up to the break a point's regressors are `(1, x, +0.0)`: the
/// products with 1 are exact, and the ones with +0.0 add +0.0 to sums that are still
/// +0.0, which changes nothing; so the sums reach the break as these running sums do.
/// The points after it are added in order, as before. Each candidate then adds only the
/// points after its break, 9 sums instead of 12 over every point; the sum of squared
/// residuals still takes every point.
struct KneePrefix {
    /// Sums of x, x², y and x·y over the first `i` points, at `i`.
    sums: Vec<[f64; 4]>,
}

impl KneePrefix {
    /// `None` unless x never decreases and every value is finite (with an infinity, a
    /// product with +0.0 is NaN, not nothing).
    fn new(x: &[f64], y: &[f64]) -> Option<Self> {
        let ordered = x.windows(2).all(|w| w[0] <= w[1]);
        if !ordered || !x.iter().chain(y).all(|v| v.is_finite()) {
            return None;
        }
        let mut sums = Vec::with_capacity(x.len() + 1);
        let mut s = [0.0f64; 4];
        sums.push(s);
        for (xi, yi) in x.iter().zip(y) {
            s[0] += xi;
            s[1] += xi * xi;
            s[2] += yi;
            s[3] += xi * yi;
            sums.push(s);
        }
        Some(KneePrefix { sums })
    }

    /// [`knee_normal_equations`] for the break at `xk`.
    fn normal_equations(&self, x: &[f64], y: &[f64], xk: f64) -> ([[f64; 3]; 3], [f64; 3]) {
        // Points up to the break: x <= xk, a prefix of the ordered points.
        let j = x.partition_point(|v| *v <= xk);
        let [mut m01, mut m11, mut v0, mut v1] = self.sums[j];
        let (mut m02, mut m12, mut m22, mut v2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (xi, yi) in x[j..].iter().zip(&y[j..]) {
            let d = xi - xk;
            v0 += yi;
            v1 += xk * yi;
            v2 += d * yi;
            m01 += xk;
            m02 += d;
            m11 += xk * xk;
            m12 += xk * d;
            m22 += d * d;
        }
        let m00 = x.len() as f64;
        (
            [[m00, m01, m02], [m01, m11, m12], [m02, m12, m22]],
            [v0, v1, v2],
        )
    }
}

/// Solves a 3x3 linear system by Gaussian elimination with partial pivoting.
fn solve3(mut m: [[f64; 3]; 3], mut v: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[piv][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, piv);
        v.swap(col, piv);
        for row in col + 1..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (cell, p) in m[row].iter_mut().zip(pivot_row).skip(col) {
                *cell -= f * p;
            }
            v[row] -= f * v[col];
        }
    }
    let mut out = [0.0; 3];
    for row in (0..3).rev() {
        let mut acc = v[row];
        for k in row + 1..3 {
            acc -= m[row][k] * out[k];
        }
        out[row] = acc / m[row][row];
    }
    Some(out)
}

/// Median of a slice (selects in a copy); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    median_of_keys(&mut values.iter().map(|v| order_key(*v)).collect::<Vec<_>>())
}

/// Ranks from 1, ties sharing their average rank.
fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && v[order[j]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j + 1) as f64 / 2.0;
        for &k in &order[i..j] {
            ranks[k] = rank;
        }
        i = j;
    }
    ranks
}

/// Standard deviation of the point-to-point noise of a series, robustly: the scaled median
/// absolute deviation of its first differences, divided by sqrt(2). Steady trends (the
/// median difference) and rare large jumps (resets) do not inflate it. 0 for fewer than 3
/// points or when most steps are equal (quantized series).
pub fn step_noise_sd(y: &[f64]) -> f64 {
    if y.len() < 3 {
        return 0.0;
    }
    // Selection on integer keys in reused buffers: this runs on every point of every
    // series (10,000 x 10,000 on the rank benchmark), and total_cmp selection with a fresh
    // allocation was its largest single cost after the sort in evidence::steps.
    thread_local! {
        static KEYS: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
        static SCRATCH: std::cell::RefCell<select::Scratch> =
            std::cell::RefCell::new(select::Scratch::default());
    }
    // Finite values have differences without NaNs, whose medians [`median_by_ranks`] finds
    // (see there); a NaN or an infinity takes [`median_of_keys`].
    let finite = finite(y);
    KEYS.with(|keys| {
        SCRATCH.with(|scratch| {
            let (mut d, mut scratch) = (keys.borrow_mut(), scratch.borrow_mut());
            let mut median = |d: &mut [i64], fast: bool| {
                if fast {
                    median_by_ranks(d, &mut scratch)
                } else {
                    median_of_keys(d)
                }
            };
            d.clear();
            // Pairs as two offset slices, not `windows(2)`: the loop then compiles to vectors.
            d.extend(y[1..].iter().zip(y).map(|(b, a)| order_key(b - a)));
            let mid = median(&mut d, finite).unwrap_or(0.0);
            // The selection may leave other keys in `d`: the distances are computed afresh
            // from the points (the same bits as from the keys, which convert exactly).
            d.clear();
            d.extend(
                y[1..]
                    .iter()
                    .zip(y)
                    .map(|(b, a)| order_key(((b - a) - mid).abs())),
            );
            // With a finite median, no distance is a NaN (an infinite difference is an
            // infinite distance).
            let mad = median(&mut d, finite && mid.is_finite()).unwrap_or(0.0);
            1.4826 * mad / std::f64::consts::SQRT_2
        })
    })
}

/// [`median_of_keys`] for keys of values without NaNs, by [`select::ranks`]: the median is
/// then the mean of the values of the keys ranked `n / 2 - 1` and `n / 2` (`n` even), the
/// former being the largest of the lower half that `median_of_keys` folds with `f64::max`
/// (equal bit for bit: keys order like the values, and a zero's sign, where `f64::max`
/// may choose either, does not change the mean). Leaves other keys in `k`.
fn median_by_ranks(k: &mut [i64], scratch: &mut select::Scratch) -> Option<f64> {
    if k.is_empty() {
        return None;
    }
    let m = k.len() / 2;
    let odd = k.len() % 2 == 1;
    let (lower, upper) = select::ranks(k, m, !odd, scratch);
    let upper = from_order_key(upper);
    Some(match lower {
        Some(lower) if !odd => (from_order_key(lower) + upper) / 2.0,
        _ => upper,
    })
}

/// An integer that orders like `v` under [`f64::total_cmp`] (the same transform it uses),
/// so selections run on plain integers, several times faster than comparing floats.
#[inline]
fn order_key(v: f64) -> i64 {
    let k = v.to_bits() as i64;
    k ^ ((((k >> 63) as u64) >> 1) as i64)
}

/// The value of an [`order_key`] (the transform is its own inverse).
#[inline]
fn from_order_key(k: i64) -> f64 {
    f64::from_bits((k ^ ((((k >> 63) as u64) >> 1) as i64)) as u64)
}

/// Lanes of the folds that [`in_lanes`] runs.
const LANES: usize = 8;

/// Calls `visit(lane, value)` on every value in order: value `i` in lane `i % LANES`,
/// the values after the last whole group of [`LANES`] in lane 0. A fold that keeps one
/// accumulator per lane then compiles to vector instructions: each lane waits only on
/// its own previous step, not on every earlier value's.
#[inline(always)]
fn in_lanes(values: &[f64], mut visit: impl FnMut(usize, f64)) {
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (l, v) in chunk.iter().enumerate() {
            visit(l, *v);
        }
    }
    for v in tail {
        visit(0, *v);
    }
}

/// Whether every value is finite with its sign bit clear (so not -0.0): then bit patterns,
/// read as integers, order like the values. One pass in [`LANES`], all in float registers
/// so that it vectorizes: the least of `1.0` with each value's sign (a bitwise copy of the
/// sign, no compare), and `v * 0.0` summed (NaN for an infinity or a NaN, else 0). As two
/// float compares per value folded into one `bool`, LLVM rewrote the test into integer
/// bit tests one value at a time (8 us of a 10,000-point run's fit, half of
/// [`bucket_medians`]' own time); with the bits or-ed as integers, it moved every lane
/// between float and integer registers (6 us; perf, 100M rows by stack).
pub fn non_negative_finite(values: &[f64]) -> bool {
    let mut sign = [1.0f64; LANES];
    let mut zero = [0.0f64; LANES];
    in_lanes(values, |l, v| {
        let s = 1.0f64.copysign(v);
        sign[l] = if s < sign[l] { s } else { sign[l] };
        zero[l] += v * 0.0;
    });
    sign.iter().all(|s| *s > 0.0) && zero.iter().all(|z| *z == 0.0)
}

/// Whether every value is finite: `v * 0.0` summed in [`LANES`] (NaN for an infinity or
/// a NaN, else 0), which vectorizes.
pub fn finite(values: &[f64]) -> bool {
    let mut zero = [0.0f64; LANES];
    in_lanes(values, |l, v| zero[l] += v * 0.0);
    zero.iter().all(|z| *z == 0.0)
}

/// The largest rise between neighbouring values of `y`, or 0 when none rose (what
/// `y.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)` gives, up to the sign of a
/// zero). Folded in [`LANES`] lanes, which vectorizes: the fold with `f64::max` waited on
/// its last step at every point (3% of the fits on the 100M-row ranking by stack, in
/// [`crate::model::fit`]'s test of sawtooth cycles).
pub fn largest_rise(y: &[f64]) -> f64 {
    let Some(pairs) = y.len().checked_sub(1) else {
        return 0.0;
    };
    let (now, next) = (&y[..pairs], &y[1..]);
    let mut top = [0.0f64; LANES];
    let whole = pairs - pairs % LANES;
    for (a, b) in now[..whole]
        .chunks_exact(LANES)
        .zip(next[..whole].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let d = b[l] - a[l];
            top[l] = if d > top[l] { d } else { top[l] };
        }
    }
    for (a, b) in now[whole..].iter().zip(&next[whole..]) {
        let d = b - a;
        top[0] = if d > top[0] { d } else { top[0] };
    }
    top.iter().fold(0.0, |m, t| if *t > m { *t } else { m })
}

/// Bit `k` set when the drop of pair `k`, `ys[k] - ys[k + 1]`, is not below any of `bars`
/// (`!(d < bar)`, so a NaN drop passes); at most 64 pairs (`ys.len() <= 65`).
///
/// On x86-64, two pairs per step with SSE2 compares and a move of their sign bits, which
/// every x86-64 CPU has: the block's mask without a branch per pair.
pub fn drops_passing(ys: &[f64], bars: [f64; 3]) -> u64 {
    let pairs = ys.len().saturating_sub(1);
    assert!(pairs <= 64, "{pairs} pairs in one mask");
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of x86-64.
        let (mask, done) = unsafe { sse2_drops_passing(ys, bars) };
        mask | drops_passing_from(ys, bars, done)
    }
    #[cfg(not(target_arch = "x86_64"))]
    drops_passing_from(ys, bars, 0)
}

/// [`drops_passing`] two pairs at a time while two are left: the mask and the number of
/// pairs it covers.
///
/// # Safety
/// The CPU must have SSE2 (every x86-64 CPU does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
unsafe fn sse2_drops_passing(ys: &[f64], bars: [f64; 3]) -> (u64, usize) {
    use std::arch::x86_64::*;
    let pairs = ys.len().saturating_sub(1);
    let [a, b, c] = bars.map(|bar| _mm_set1_pd(bar));
    let mut mask = 0u64;
    let mut k = 0;
    while k + 2 <= pairs {
        // SAFETY: k + 2 <= pairs = ys.len() - 1, so both loads of two values end within
        // `ys`.
        let (now, next) = unsafe {
            (
                _mm_loadu_pd(ys.as_ptr().add(k)),
                _mm_loadu_pd(ys.as_ptr().add(k + 1)),
            )
        };
        let d = _mm_sub_pd(now, next);
        // `cmpnlt`: not less than, true for a NaN, as `!(d < bar)`.
        let pass = _mm_and_pd(
            _mm_and_pd(_mm_cmpnlt_pd(d, a), _mm_cmpnlt_pd(d, b)),
            _mm_cmpnlt_pd(d, c),
        );
        mask |= (_mm_movemask_pd(pass) as u64) << k;
        k += 2;
    }
    (mask, k)
}

/// [`drops_passing`] for the pairs from `from` on, one at a time.
fn drops_passing_from(ys: &[f64], bars: [f64; 3], from: usize) -> u64 {
    let pairs = ys.len().saturating_sub(1);
    (from..pairs)
        .filter(|&k| {
            let d = ys[k] - ys[k + 1];
            !bars.iter().any(|bar| d < *bar)
        })
        .fold(0, |mask, k| mask | 1 << k)
}

/// Index and value of the first smallest value under [`f64::total_cmp`] (what
/// `iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1))` returns); `None` when empty.
///
/// Two passes that vectorize: the smallest value by float compares in eight lanes, then the
/// first index holding it. Without NaNs, float order is total order but for the sign of a
/// zero, which the second pass settles (-0.0 comes first). With a NaN the integer-key pass
/// ([`first_min_by_keys`]) decides. The key pass alone took 11.5 us of a 10,000-point run's
/// fit (floor chunks and the dip; perf, 100M rows by stack): 64-bit integer compares do not
/// vectorize on baseline x86-64, float compares do.
pub fn first_min(values: &[f64]) -> Option<(usize, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut low = [f64::INFINITY; LANES];
    let mut nan = [false; LANES];
    in_lanes(values, |l, v| {
        low[l] = if v < low[l] { v } else { low[l] };
        nan[l] |= v.is_nan();
    });
    if nan.contains(&true) {
        return first_min_by_keys(values);
    }
    let m = low
        .iter()
        .fold(f64::INFINITY, |a, b| if *b < a { *b } else { a });
    let at = if m == 0.0 {
        first_index(values, |v| v.to_bits() == (-0.0f64).to_bits())
            .or_else(|| first_index(values, |v| v == 0.0))
    } else {
        first_index(values, |v| v == m)
    }?;
    Some((at, values[at]))
}

/// Index of the first value that `hit`s: blocks of 16 are tested without branches (a
/// vector compare), then the hit block value by value.
fn first_index(values: &[f64], hit: impl Fn(f64) -> bool) -> Option<usize> {
    const BLOCK: usize = 16;
    let block = values
        .chunks(BLOCK)
        .position(|c| c.iter().fold(false, |any, v| any | hit(*v)))?;
    let from = block * BLOCK;
    Some(from + values[from..].iter().position(|v| hit(*v))?)
}

/// [`first_min`] by comparing integer [`order_key`]s, for values that may hold NaNs. Four
/// lanes keep four running minima, so that each comparison waits on its lane's last one,
/// not on every earlier element's; the lanes then yield the smallest key, the earliest
/// index among equals.
fn first_min_by_keys(values: &[f64]) -> Option<(usize, f64)> {
    const LANES: usize = 4;
    // Each lane starts at its first element's index, as a single running minimum starts
    // at index 0: an element beats it only with a strictly smaller key.
    let mut at: [usize; LANES] = std::array::from_fn(|l| l);
    let mut best = [i64::MAX; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for l in 0..LANES {
            let k = order_key(chunk[l]);
            if k < best[l] {
                (at[l], best[l]) = (c * LANES + l, k);
            }
        }
    }
    let base = values.len() - tail.len();
    for (l, v) in tail.iter().enumerate() {
        let k = order_key(*v);
        if k < best[l] {
            (at[l], best[l]) = (base + l, k);
        }
    }
    let (at, _) = (0..LANES.min(values.len()))
        .map(|l| (at[l], best[l]))
        .min_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)))?;
    Some((at, values[at]))
}

/// The first largest value of `y` under `>` (NaNs never are; `f64::MIN` and index 0 when
/// no value exceeds `f64::MIN`), its index, and the smallest value (`f64::min`, from
/// `f64::MAX`): what one pass with `if v > peak` and `lo = lo.min(v)` gives. Only the sign
/// of a zero low may differ from the single pass.
///
/// Two passes that vectorize: the largest and smallest values in eight lanes, then the
/// first index holding the largest (the first value equal to the maximum is the one the
/// single pass keeps: every value before it is smaller). The single chain of `max`, `min`
/// and `cmov` cost about 20 us on a 10,000-point run; four scalar lanes with indices, 6 us
/// (perf, 100M rows by stack).
pub fn peak_and_low(y: &[f64]) -> (f64, usize, f64) {
    let mut peak = [f64::MIN; LANES];
    let mut low = [f64::MAX; LANES];
    in_lanes(y, |l, v| {
        peak[l] = if v > peak[l] { v } else { peak[l] };
        low[l] = low[l].min(v);
    });
    let top = peak
        .iter()
        .fold(f64::MIN, |a, b| if *b > a { *b } else { a });
    let lo = low.into_iter().fold(f64::MAX, f64::min);
    match first_index(y, |v| v == top).filter(|_| top > f64::MIN) {
        Some(at) => (y[at], at, lo),
        None => (f64::MIN, 0, lo),
    }
}

/// [`median_in_place`] over [`order_key`]s: the same value bit for bit (equal keys are
/// equal bit patterns, and the lower half's maximum is folded with `f64::max` as there).
fn median_of_keys(k: &mut [i64]) -> Option<f64> {
    if k.is_empty() {
        return None;
    }
    let m = k.len() / 2;
    let odd = k.len() % 2 == 1;
    let (lower, upper, _) = k.select_nth_unstable(m);
    let upper = from_order_key(*upper);
    Some(if odd {
        upper
    } else {
        (lower
            .iter()
            .map(|k| from_order_key(*k))
            .fold(f64::MIN, f64::max)
            + upper)
            / 2.0
    })
}

/// Median of a scratch slice, reordering it in place; `None` when empty.
fn median_in_place(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let m = v.len() / 2;
    let odd = v.len() % 2 == 1;
    let (lower, upper, _) = v.select_nth_unstable_by(m, f64::total_cmp);
    let upper = *upper;
    Some(if odd {
        upper
    } else {
        (lower.iter().copied().fold(f64::MIN, f64::max) + upper) / 2.0
    })
}

/// Reduces a series to at most `max` points: equal-count buckets, each the median x and y.
pub fn bucket_medians(x: &[f64], y: &[f64], max: usize) -> (Vec<f64>, Vec<f64>) {
    let n = x.len().min(y.len());
    if n <= max || max == 0 {
        return (x[..n].to_vec(), y[..n].to_vec());
    }
    // Both checks below fold without stopping early, so that they compile to vector
    // compares (`all` stops at the first failure and went one point at a time).
    let sorted_x = x[..n - 1]
        .iter()
        .zip(&x[1..n])
        .fold(true, |sorted, (a, b)| sorted & (a <= b));
    // Whether every bucket's median can be selected on bit patterns: checked once for the
    // series, not bucket by bucket (a bit test per value there that did not vectorize).
    let non_negative = non_negative_finite(&y[..n]);
    let mut bx = Vec::with_capacity(max);
    let mut by = Vec::with_capacity(max);
    let mut scratch = Vec::with_capacity(n / max + 2);
    let mut bits = Vec::with_capacity(n / max + 2);
    let mut select_scratch = select::Scratch::default();
    for b in 0..max {
        let lo = b * n / max;
        let hi = ((b + 1) * n / max).max(lo + 1);
        let mx = if sorted_x {
            let m = lo + (hi - lo) / 2;
            if (hi - lo) % 2 == 1 {
                x[m]
            } else {
                (x[m - 1] + x[m]) / 2.0
            }
        } else {
            median(&x[lo..hi]).unwrap_or(0.0)
        };
        bx.push(mx);
        let part = &y[lo..hi];
        if non_negative {
            by.push(median_non_negative(part, &mut bits, &mut select_scratch));
        } else {
            scratch.clear();
            scratch.extend_from_slice(part);
            by.push(median_in_place(&mut scratch).unwrap_or(0.0));
        }
    }
    (bx, by)
}

/// Median of non-empty values that pass [`non_negative_finite`]: with the sign bit clear,
/// a value's bit pattern is its [`order_key`], so the keys are taken without the transform
/// and the median is [`median_by_ranks`]'s.
fn median_non_negative(values: &[f64], keys: &mut Vec<i64>, scratch: &mut select::Scratch) -> f64 {
    keys.clear();
    keys.extend(values.iter().map(|v| v.to_bits() as i64));
    median_by_ranks(keys, scratch).unwrap_or(0.0)
}

/// Theil-Sen slope: the median of pairwise slopes (robust to up to ~29% outliers).
pub fn theil_sen(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n > MAX_PAIRWISE_POINTS {
        let (bx, by) = bucket_medians(x, y, MAX_PAIRWISE_POINTS);
        return theil_sen(&bx, &by);
    }
    thread_local! {
        static SLOPES: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
        static SCRATCH: std::cell::RefCell<select::Scratch> =
            std::cell::RefCell::new(select::Scratch::default());
    }
    SLOPES.with(|cell| {
        // Slopes as order keys: the median is selected on integers (see `order_key`).
        // Each point's row of slopes is written whole, without a test per pair, which
        // vectorizes (two divisions per instruction); a row with a pair of equal times
        // (no slope) is written again, pair by pair, without those. Pushed pair by pair
        // with the test, the 2,016 slopes of 64 points took 2.9 us; row by row, 1.3 us
        // (a microbenchmark of both loops).
        // Not cleared first: every key up to the final length is written below and the
        // rest truncated, so only a buffer that grows gets zeros (clearing wrote all
        // 2,016 again each call, 8% of the loop in the same microbenchmark).
        let mut slopes = cell.borrow_mut();
        slopes.resize(n * n.saturating_sub(1) / 2, 0);
        let (mut len, mut nan) = (0, false);
        for i in 0..n {
            let (xi, yi) = (x[i], y[i]);
            let (xs, ys) = (&x[i + 1..n], &y[i + 1..n]);
            let (mut flat, mut row_nan) = (false, false);
            for ((key, xj), yj) in slopes[len..len + xs.len()].iter_mut().zip(xs).zip(ys) {
                let dx = xj - xi;
                let slope = (yj - yi) / dx;
                flat |= dx == 0.0;
                row_nan |= slope.is_nan();
                *key = order_key(slope);
            }
            if !flat {
                nan |= row_nan;
                len += xs.len();
                continue;
            }
            for (xj, yj) in xs.iter().zip(ys) {
                let dx = xj - xi;
                if dx != 0.0 {
                    let slope = (yj - yi) / dx;
                    nan |= slope.is_nan();
                    slopes[len] = order_key(slope);
                    len += 1;
                }
            }
        }
        slopes.truncate(len);
        if nan {
            median_of_keys(&mut slopes)
        } else {
            SCRATCH.with(|scratch| median_by_ranks(&mut slopes, &mut scratch.borrow_mut()))
        }
    })
}

/// Benjamini-Hochberg q-values: the false discovery rate at which each p-value would be
/// significant when all of them are tested together (same order as `p`).
pub fn bh_qvalues(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (k, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (k + 1) as f64);
        q[i] = running.clamp(0.0, 1.0);
    }
    q
}

/// Mann-Kendall statistic of one series: S and its variance under H0 with tie correction.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KendallS {
    /// Sum of signs of all later-minus-earlier differences.
    pub s: f64,
    /// Variance of S under "no trend", corrected for tied values.
    pub var: f64,
    /// Number of points used.
    pub n: usize,
}

impl KendallS {
    /// The same statistic with its variance inflated for serial correlation (Hamed & Rao
    /// 1998): the ranks of the detrended series are autocorrelated when the noise has
    /// memory (a sampled heap profile whose live samples persist for several scrapes),
    /// and then S varies far more than it would for independent points, so an uncorrected
    /// test calls random wandering a trend. `residuals` are the series minus its fitted
    /// trend (a two-segment fit, so that a bend is not mistaken for correlated noise). Only
    /// lags up to n/3 whose autocorrelation is significant at 5% count; the variance is
    /// never reduced.
    pub fn corrected_for_autocorrelation(self, residuals: &[f64]) -> KendallS {
        let n = residuals.len();
        if n < 8 || self.var <= 0.0 {
            return self;
        }
        let ranks = average_ranks(residuals);
        let mean = (n as f64 + 1.0) / 2.0;
        let centered: Vec<f64> = ranks.iter().map(|r| r - mean).collect();
        let denom: f64 = centered.iter().map(|c| c * c).sum();
        if denom <= 0.0 {
            return self;
        }
        let bound = 1.96 / (n as f64).sqrt();
        let nf = n as f64;
        let mut sum = 0.0;
        for k in 1..=n / 3 {
            let rho = centered[..n - k]
                .iter()
                .zip(&centered[k..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / denom;
            if rho.abs() > bound {
                let m = (n - k) as f64;
                sum += m * (m - 1.0) * (m - 2.0) * rho;
            }
        }
        let factor = 1.0 + 2.0 * sum / (nf * (nf - 1.0) * (nf - 2.0));
        KendallS {
            var: self.var * factor.max(1.0),
            ..self
        }
    }

    /// Adds an independent series' statistic (e.g. another run): S and variances sum.
    pub fn combine(self, other: KendallS) -> KendallS {
        KendallS {
            s: self.s + other.s,
            var: self.var + other.var,
            n: self.n + other.n,
        }
    }

    /// One-sided p-value for an increasing trend (continuity corrected); 1.0 when undefined.
    pub fn p_increasing(&self) -> f64 {
        if self.var <= 0.0 {
            return 1.0;
        }
        let z = if self.s > 0.0 {
            (self.s - 1.0) / self.var.sqrt()
        } else if self.s < 0.0 {
            (self.s + 1.0) / self.var.sqrt()
        } else {
            0.0
        };
        1.0 - normal_cdf(z)
    }

    /// One-sided p-value for a decreasing trend (continuity corrected); 1.0 when undefined.
    pub fn p_decreasing(&self) -> f64 {
        KendallS {
            s: -self.s,
            ..*self
        }
        .p_increasing()
    }

    /// Two-sided p-value for any monotone trend; 1.0 when undefined.
    pub fn p_two_sided(&self) -> f64 {
        let p = self.p_increasing();
        (2.0 * p.min(1.0 - p)).clamp(0.0, 1.0)
    }

    /// Pairs of the `n` points, `n (n - 1) / 2` (of one series; combined runs were not
    /// compared across).
    pub fn pairs(&self) -> f64 {
        (self.n * self.n.saturating_sub(1)) as f64 / 2.0
    }

    /// Kendall's tau-a: S over the number of pairs (-1..1).
    pub fn tau(&self) -> f64 {
        let pairs = self.pairs();
        if pairs > 0.0 {
            self.s / pairs
        } else {
            0.0
        }
    }
}

/// Mann-Kendall S and tie-corrected variance of `y` in time order (x only orders/buckets).
pub fn mann_kendall(x: &[f64], y: &[f64]) -> KendallS {
    if x.len().min(y.len()) > MAX_PAIRWISE_POINTS {
        let (bx, by) = bucket_medians(x, y, MAX_PAIRWISE_POINTS);
        return mann_kendall(&bx, &by);
    }
    let n = x.len().min(y.len());
    let y = &y[..n];
    if n < 3 {
        return KendallS {
            n,
            ..KendallS::default()
        };
    }
    // Each sign as two compares (a NaN is neither above nor below), summed per point:
    // this vectorizes, where a `match` on `partial_cmp` went pair by pair (1.6 against
    // 0.8 us for 64 points, a microbenchmark of both loops). Integer sums: the same in
    // any order.
    let s: i64 = (0..n)
        .map(|i| {
            let yi = y[i];
            y[i + 1..]
                .iter()
                .map(|&yj| i64::from(yj > yi) - i64::from(yj < yi))
                .sum::<i64>()
        })
        .sum();
    let mut sorted = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        if t > 1.0 {
            tie_term += t * (t - 1.0) * (2.0 * t + 5.0);
        }
        i = j;
    }
    let nf = n as f64;
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - tie_term) / 18.0;
    KendallS {
        s: s as f64,
        var: var.max(0.0),
        n,
    }
}

/// Standard normal cumulative distribution function.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

/// Lower tail of the hypergeometric distribution: the chance that `draws` items taken
/// without replacement from `total` items, `marked` of them marked, hold `k` or fewer
/// marked ones (Fisher's exact test, one-sided). 1 when the arguments are inconsistent.
pub fn hypergeometric_lower(total: u64, marked: u64, draws: u64, k: u64) -> f64 {
    if marked > total || draws > total {
        return 1.0;
    }
    let ln_choose = |n: u64, r: u64| {
        libm::lgamma(n as f64 + 1.0)
            - libm::lgamma(r as f64 + 1.0)
            - libm::lgamma((n - r) as f64 + 1.0)
    };
    let lo = (marked + draws).saturating_sub(total);
    let hi = k.min(marked).min(draws);
    let ln_all = ln_choose(total, draws);
    (lo..=hi)
        .map(|i| (ln_choose(marked, i) + ln_choose(total - marked, draws - i) - ln_all).exp())
        .sum::<f64>()
        .min(1.0)
}

/// Binomial(n, p) tail: P(X <= k) when `lower`, else P(X >= k).
pub fn binomial_tail(n: u64, k: u64, p: f64, lower: bool) -> f64 {
    if k > n {
        return if lower { 1.0 } else { 0.0 };
    }
    if n > 1000 {
        // Normal approximation with continuity correction: exact sums cost O(n).
        let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
        return if lower {
            normal_cdf((k as f64 + 0.5 - mean) / sd)
        } else {
            1.0 - normal_cdf((k as f64 - 0.5 - mean) / sd)
        };
    }
    // pmf(k) once, in logs; then neighbours by the ratio of successive terms, walking
    // away from k into the tail until the terms stop mattering.
    let (nf, kf) = (n as f64, k as f64);
    let q = 1.0 - p;
    let ln_pmf_k = libm::lgamma(nf + 1.0) - libm::lgamma(kf + 1.0) - libm::lgamma(nf - kf + 1.0)
        + kf * p.ln()
        + (nf - kf) * q.ln();
    let mut term = ln_pmf_k.exp();
    let mut sum = term;
    if lower {
        for i in (1..=k).rev() {
            term *= i as f64 / (nf - i as f64 + 1.0) * (q / p);
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
    } else {
        for i in k..n {
            term *= (nf - i as f64) / (i as f64 + 1.0) * (p / q);
            sum += term;
            if term < sum * 1e-17 {
                break;
            }
        }
    }
    sum.clamp(0.0, 1.0)
}

/// Uniform numbers in [0, 1) on a 10^-6 grid from an xorshift64 generator started at
/// `state` (non-zero): deterministic noise for tests.
#[cfg(test)]
pub(crate) fn test_uniforms(mut state: u64) -> impl FnMut() -> f64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1_000_000) as f64 / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector mask of passing drops is the one the plain test gives pair by pair:
    /// every length up to 65 values, NaNs, infinities, signed zeros, and bars of minus
    /// infinity and NaN.
    #[test]
    fn drops_passing_is_the_plain_test_pair_by_pair() {
        let mut u = test_uniforms(77);
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0];
        for round in 0..2_000 {
            let n = round % 66;
            let ys: Vec<f64> = (0..n)
                .map(|_| match (u() * 40.0) as usize {
                    k if k < specials.len() => specials[k],
                    _ => (u() * 100.0).round(),
                })
                .collect();
            let mut bar = |k: usize| match k {
                0 => f64::NEG_INFINITY,
                1 => f64::NAN,
                _ => u() * 120.0 - 10.0,
            };
            let bars = [bar(round % 7), bar((round / 7) % 5), bar((round / 35) % 4)];
            let plain = (0..n.saturating_sub(1)).fold(0u64, |mask, k| {
                let d = ys[k] - ys[k + 1];
                let small = d < bars[0] || d < bars[1] || d < bars[2];
                mask | (u64::from(!small) << k)
            });
            assert_eq!(
                drops_passing(&ys, bars),
                plain,
                "round {round}: {ys:?} {bars:?}"
            );
        }
    }

    /// The integer-key median is the float median bit for bit: odd and even lengths, ties,
    /// signed zeros, negatives, infinities.
    #[test]
    fn key_median_is_the_total_cmp_median() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let special = [
            0.0,
            -0.0,
            1.5,
            -1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
        ];
        for len in 1..40 {
            for _ in 0..20 {
                let v: Vec<f64> = (0..len)
                    .map(|_| match next() % 4 {
                        0 => special[(next() % special.len() as u64) as usize],
                        1 => (next() % 5) as f64 - 2.0,
                        _ => (next() as i64 >> 11) as f64 / 1e3,
                    })
                    .collect();
                let want = median_in_place(&mut v.clone()).map(f64::to_bits);
                assert_eq!(median(&v).map(f64::to_bits), want, "{v:?}");
                let mut keys: Vec<i64> = v.iter().map(|x| order_key(*x)).collect();
                assert_eq!(median_of_keys(&mut keys).map(f64::to_bits), want, "{v:?}");
                for x in &v {
                    assert_eq!(from_order_key(order_key(*x)).to_bits(), x.to_bits());
                }
            }
        }
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn binomial_tails() {
        // Binomial(4, 0.5): P(X <= 0) = 1/16, P(X >= 3) = 5/16.
        assert!((binomial_tail(4, 0, 0.5, true) - 0.0625).abs() < 1e-12);
        assert!((binomial_tail(4, 3, 0.5, false) - 0.3125).abs() < 1e-12);
        assert!((binomial_tail(10, 10, 0.3, true) - 1.0).abs() < 1e-12);
        // The normal approximation above n = 1000 agrees with the exact sum near it.
        let exact = binomial_tail(1000, 480, 0.5, true);
        let approx = binomial_tail(1001, 480, 0.5, true);
        assert!((exact - approx).abs() < 0.02, "{exact} {approx}");
    }

    #[test]
    fn bh_qvalues_are_monotone_and_scaled() {
        let q = bh_qvalues(&[0.01, 0.04, 0.03, 0.5]);
        // Sorted p: 0.01, 0.03, 0.04, 0.5 -> 0.04, 0.0533, 0.0533, 0.5.
        assert!((q[0] - 0.04).abs() < 1e-12);
        assert!((q[2] - 0.16 / 3.0).abs() < 1e-12);
        assert!((q[1] - 0.16 / 3.0).abs() < 1e-12);
        assert!((q[3] - 0.5).abs() < 1e-12);
        assert!(bh_qvalues(&[]).is_empty());
    }

    #[test]
    fn bucket_medians_of_non_negative_and_mixed_values() {
        let x: Vec<f64> = (0..1000).map(f64::from).collect();
        let y: Vec<f64> = (0..1000).map(|i| f64::from((i * 7919) % 1000)).collect();
        let (bx, by) = bucket_medians(&x, &y, 10);
        for b in 0..10 {
            let part = &y[b * 100..(b + 1) * 100];
            assert_eq!(by[b], median(part).unwrap());
            assert_eq!(bx[b], median(&x[b * 100..(b + 1) * 100]).unwrap());
        }
        let neg: Vec<f64> = y.iter().map(|v| v - 500.0).collect();
        let (_, bn) = bucket_medians(&x, &neg, 10);
        assert!(bn
            .iter()
            .zip(&by)
            .all(|(n, p)| (n + 500.0 - p).abs() < 1e-9));
    }

    #[test]
    fn autocorrelated_noise_widens_the_variance_and_iid_noise_does_not() {
        let mut uniform = test_uniforms(0x2545_f491_4f6c_dd1d);
        let x: Vec<f64> = (0..120).map(f64::from).collect();
        let iid: Vec<f64> = (0..120).map(|_| uniform()).collect();
        // Samples that live for 12 scrapes: the level holds in blocks.
        let levels: Vec<f64> = (0..10).map(|_| uniform()).collect();
        let blocky: Vec<f64> = (0..120)
            .map(|i| levels[i / 12] + 0.01 * uniform())
            .collect();
        for (y, lo, hi) in [(&iid, 1.0, 1.5), (&blocky, 2.0, f64::INFINITY)] {
            let mk = mann_kendall(&x, y);
            let ratio = mk.corrected_for_autocorrelation(y).var / mk.var;
            assert!(ratio >= lo && ratio <= hi, "{ratio}");
        }
    }

    #[test]
    fn step_noise_ignores_trend_and_rare_jumps() {
        // A ramp with uniform noise of sd 1 (xorshift).
        let mut uniform = test_uniforms(0x9e37_79b9_7f4a_7c15);
        let mut y: Vec<f64> = (0..2000)
            .map(|i| i as f64 * 0.5 + (uniform() - 0.5) * 12f64.sqrt())
            .collect();
        let base = step_noise_sd(&y);
        y[1000] -= 500.0;
        y[1500] += 800.0;
        let with_jumps = step_noise_sd(&y);
        // The MAD of a difference of uniforms reads its sd within ~15%.
        assert!((base - 1.0).abs() < 0.2, "{base}");
        assert!((with_jumps - base).abs() < 0.02, "{base} {with_jumps}");
        assert_eq!(step_noise_sd(&[5.0; 10]), 0.0);
        assert_eq!(step_noise_sd(&[1.0, 2.0]), 0.0);
    }

    #[test]
    fn ols_recovers_a_line() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 * v + 1.0).collect();
        let f = ols(&x, &y).unwrap();
        assert!((f.slope - 3.0).abs() < 1e-12 && (f.intercept - 1.0).abs() < 1e-9);
        assert!((f.r2 - 1.0).abs() < 1e-12);
        assert!(ols(&[1.0, 1.0], &[2.0, 3.0]).is_none());
    }

    /// The largest rise in lanes decides like the fold it replaced: every length up to
    /// 40, NaNs, infinities, falls only.
    #[test]
    fn largest_rise_is_the_fold_of_rises() {
        let mut u = test_uniforms(9);
        for round in 0..2_000 {
            let n = round % 41;
            let y: Vec<f64> = (0..n)
                .map(|i| match (round % 6, i % 9) {
                    (1, 4) => f64::NAN,
                    (2, 2) => f64::INFINITY,
                    (3, _) => -(i as f64),
                    _ => (u() * 100.0).round(),
                })
                .collect();
            let fold = y.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
            let lanes = largest_rise(&y);
            assert!(
                lanes == fold,
                "round {round}: {lanes} against {fold} for {y:?}"
            );
        }
    }

    /// Slopes written row by row give the median that pushing them pair by pair gave, bit
    /// for bit: repeated times (pairs without a slope), NaNs, infinities, one to 70 points.
    #[test]
    fn theil_sen_by_rows_is_the_pairwise_median() {
        let pairwise = |x: &[f64], y: &[f64]| {
            let (mut keys, mut nan) = (Vec::new(), false);
            for i in 0..x.len() {
                for j in i + 1..x.len() {
                    let dx = x[j] - x[i];
                    if dx != 0.0 {
                        let slope = (y[j] - y[i]) / dx;
                        nan |= slope.is_nan();
                        keys.push(order_key(slope));
                    }
                }
            }
            if nan {
                median_of_keys(&mut keys)
            } else {
                median_by_ranks(&mut keys, &mut select::Scratch::default())
            }
        };
        let mut u = test_uniforms(5);
        for round in 0..600 {
            let n = 1 + round % 70;
            let mut t = 0.0;
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    // About one time in eight repeats the last.
                    t += if round % 3 == 0 && u() < 0.125 {
                        0.0
                    } else {
                        u() + 0.01
                    };
                    t
                })
                .collect();
            let y: Vec<f64> = (0..n)
                .map(|i| match (round % 5, i) {
                    (1, 3) => f64::NAN,
                    (2, 0) => f64::INFINITY,
                    _ => (u() * 1e6).round() + i as f64 * 7.0,
                })
                .collect();
            assert_eq!(
                theil_sen(&x, &y).map(f64::to_bits),
                pairwise(&x, &y).map(f64::to_bits),
                "round {round}"
            );
        }
    }

    #[test]
    fn theil_sen_ignores_outliers() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        let mut y: Vec<f64> = x.iter().map(|v| 2.0 * v).collect();
        y[5] = 1000.0;
        y[15] = -1000.0;
        assert!((theil_sen(&x, &y).unwrap() - 2.0).abs() < 1e-9);
        let ols_slope = ols(&x, &y).unwrap().slope;
        assert!((ols_slope - 2.0).abs() > 1.0, "OLS is pulled by outliers");
    }

    #[test]
    fn mann_kendall_matches_reference_values() {
        // Strictly increasing n=10: S = 45, Var = 10*9*25/18 = 125.
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let k = mann_kendall(&x, &x);
        assert_eq!(k.s, 45.0);
        assert!((k.var - 125.0).abs() < 1e-9);
        // z = 44/sqrt(125) = 3.9355 -> one-sided p ~ 4.15e-5.
        assert!(
            (k.p_increasing() - 4.15e-5).abs() < 1e-6,
            "{}",
            k.p_increasing()
        );
        // Ties: y = [1,1,2,2,3]: S = 8; ties two groups of 2 -> var = (5*4*15 - 2*2*1*9)/18 = 14.6667.
        let k = mann_kendall(&[0., 1., 2., 3., 4.], &[1., 1., 2., 2., 3.]);
        assert_eq!(k.s, 8.0);
        assert!((k.var - 14.666_666).abs() < 1e-4);
        // Constant series: no evidence at all.
        let k = mann_kendall(&x, &[5.0; 10]);
        assert_eq!(k.s, 0.0);
        assert_eq!(k.p_increasing(), 1.0);
    }

    /// S summed by compares is the sum of `partial_cmp` signs: ties, NaNs, infinities.
    #[test]
    fn mann_kendall_s_is_the_sum_of_pair_signs() {
        let mut u = test_uniforms(23);
        for round in 0..400 {
            let n = 3 + round % 60;
            let y: Vec<f64> = (0..n)
                .map(|i| match (round % 4, i % 7) {
                    (1, 3) => f64::NAN,
                    (2, 5) => f64::NEG_INFINITY,
                    _ => (u() * 8.0).round(),
                })
                .collect();
            let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let mut signs = 0i64;
            for i in 0..n {
                for j in i + 1..n {
                    signs += match y[j].partial_cmp(&y[i]) {
                        Some(std::cmp::Ordering::Greater) => 1,
                        Some(std::cmp::Ordering::Less) => -1,
                        _ => 0,
                    };
                }
            }
            assert_eq!(mann_kendall(&x, &y).s, signs as f64, "round {round}");
        }
    }

    #[test]
    fn combined_runs_strengthen_evidence() {
        let x: Vec<f64> = (0..6).map(f64::from).collect();
        let one = mann_kendall(&x, &x);
        let two = one.combine(one);
        assert!(two.p_increasing() < one.p_increasing());
    }

    /// The running sums give the knee's normal equations bit for bit, at every break, on
    /// noisy, stepped, flat and negative series with repeated times.
    #[test]
    fn knee_prefix_sums_match_the_direct_sums_bit_for_bit() {
        let mut u = test_uniforms(17);
        for round in 0..200 {
            let n = 7 + round % 70;
            let mut t = 0.0;
            let x: Vec<f64> = (0..n)
                .map(|_| {
                    // Some times repeat (bucket medians of a gap can).
                    if u() > 0.1 {
                        t += 0.001 + u() * 0.05;
                    }
                    t
                })
                .collect();
            let y: Vec<f64> = (0..n)
                .map(|i| match round % 4 {
                    0 => 1e9 + u() * 8e6 + i as f64 * 1e4,
                    1 => {
                        if i > n / 3 {
                            5.0 * 524_288.0
                        } else {
                            0.0
                        }
                    }
                    2 => 42.0,
                    _ => -3.5 + u() - i as f64 * 0.25,
                })
                .collect();
            let prefix = KneePrefix::new(&x, &y).expect("ordered, finite");
            for &xk in &x {
                let (m, v) = prefix.normal_equations(&x, &y, xk);
                let (m0, v0) = knee_normal_equations(&x, &y, xk);
                let bits = |m: [[f64; 3]; 3], v: [f64; 3]| {
                    m.concat()
                        .iter()
                        .chain(&v)
                        .map(|f| f.to_bits())
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(m, v), bits(m0, v0), "round {round} xk {xk}");
            }
        }
        // Unordered or infinite points take the direct sums.
        assert!(KneePrefix::new(&[1.0, 0.0], &[1.0, 1.0]).is_none());
        assert!(KneePrefix::new(&[0.0, 1.0], &[f64::INFINITY, 1.0]).is_none());
    }

    /// The knee as it was chosen before the lanes: one candidate's sum of squared
    /// residuals at a time, through `Iterator::sum`.
    fn knee_one_at_a_time(x: &[f64], y: &[f64], min_side: usize) -> Option<Knee> {
        let n = x.len().min(y.len());
        if n < 2 * min_side + 1 || min_side < 2 {
            return None;
        }
        let candidates: Vec<usize> = (min_side..n - min_side).collect();
        let stride = (candidates.len() / 48).max(1);
        let mut best: Option<(f64, Knee)> = None;
        for &k in candidates.iter().step_by(stride) {
            let xk = x[k];
            let (m, v) = knee_normal_equations(x, y, xk);
            let Some(c) = solve3(m, v) else { continue };
            let sse: f64 = (0..n)
                .map(|i| {
                    let f = c[0] + c[1] * x[i].min(xk) + c[2] * (x[i] - xk).max(0.0);
                    (y[i] - f).powi(2)
                })
                .sum();
            if best.as_ref().is_none_or(|(b, _)| sse < *b) {
                let knee = Knee {
                    index: k,
                    before: c[1],
                    after: c[2],
                    intercept: c[0],
                    x_break: xk,
                };
                best = Some((sse, knee));
            }
        }
        best.map(|(_, k)| k)
    }

    /// Summing the candidates' squared residuals in lanes picks the same knee, with the
    /// same bits, as one candidate at a time: on noisy, stepped, flat (ties everywhere),
    /// bent and NaN-holding series, with every candidate count modulo the lanes.
    #[test]
    fn knee_lanes_pick_the_same_knee_bit_for_bit() {
        let mut u = test_uniforms(23);
        for round in 0..400 {
            let n = 7 + round % 130;
            let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.01 + u() * 1e-3).collect();
            let y: Vec<f64> = (0..n)
                .map(|i| match round % 5 {
                    0 => 1e9 + u() * 8e6 + i as f64 * 1e4,
                    1 => f64::from(u8::from(i > n / 3)) * 524_288.0,
                    2 => 42.0,
                    3 => (i.min(n / 2) as f64) * 3.0 + u(),
                    _ if i == n / 2 => f64::NAN,
                    _ => u(),
                })
                .collect();
            let bits = |k: Option<Knee>| {
                k.map(|k| {
                    let f = [k.before, k.after, k.intercept, k.x_break];
                    (k.index, f.map(f64::to_bits))
                })
            };
            for min_side in [2, 3, (n / 6).max(3), (n / 20).max(3)] {
                let (a, b) = (knee(&x, &y, min_side), knee_one_at_a_time(&x, &y, min_side));
                assert_eq!(bits(a), bits(b), "round {round} min_side {min_side}");
            }
            // Two knees from one set of fits (`knees`) are the knees fitted apart.
            for sides in [[(n / 6).max(3), (n / 20).max(3)], [2, 3], [3, 2], [4, 4]] {
                let [a, b] = knees(&x, &y, sides);
                let want = sides.map(|s| bits(knee_one_at_a_time(&x, &y, s)));
                assert_eq!([bits(a), bits(b)], want, "round {round} sides {sides:?}");
            }
        }
    }

    /// `len` values drawn from `pool` (edge cases: zeros of both signs, NaNs, ties).
    fn draws(u: &mut impl FnMut() -> f64, pool: &[f64], len: usize) -> Vec<f64> {
        (0..len)
            .map(|_| pool[(u() * pool.len() as f64) as usize % pool.len()])
            .collect()
    }

    /// `peak_and_low` gives what the single pass gives: the same peak bits and index, and
    /// the same low (a zero's sign aside).
    #[test]
    fn peak_and_low_is_the_single_pass() {
        let mut u = test_uniforms(9);
        let pool = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::NAN,
            7.0,
            7.0,
            f64::MIN,
            f64::NEG_INFINITY,
        ];
        // The same draws without the NaN too: long draws nearly always hold one.
        let no_nan: Vec<f64> = pool.iter().copied().filter(|v| !v.is_nan()).collect();
        for len in (0..40).chain([63, 64, 65, 130, 257]) {
            for i in 0..60 {
                let y = draws(&mut u, if i % 2 == 0 { &pool } else { &no_nan }, len);
                let (mut peak, mut peak_i, mut lo) = (f64::MIN, 0, f64::MAX);
                for (i, v) in y.iter().enumerate() {
                    if *v > peak {
                        (peak, peak_i) = (*v, i);
                    }
                    lo = lo.min(*v);
                }
                let (p, pi, l) = peak_and_low(&y);
                assert_eq!((p.to_bits(), pi), (peak.to_bits(), peak_i), "{y:?}");
                assert!(l == lo || (l.is_nan() && lo.is_nan()), "{y:?}: {l} vs {lo}");
            }
        }
    }

    /// `non_negative_finite` is the test value by value, at every length around the lanes.
    #[test]
    fn non_negative_finite_is_the_test_value_by_value() {
        let mut u = test_uniforms(31);
        let pool = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            7.0,
        ];
        // Mostly safe values, so that long draws pass often enough to test that side too.
        let safe = [0.0, 1.0, 7.0, f64::MAX, 5e-324, 3.5];
        for len in (0..40).chain([63, 64, 65, 130, 257]) {
            for i in 0..80 {
                let mut y = draws(&mut u, &safe, len);
                if i % 2 == 0 && len > 0 {
                    let at = (u() * len as f64) as usize % len;
                    y[at] = draws(&mut u, &pool, 1)[0];
                }
                let want = y.iter().all(|v| v.is_finite() && !v.is_sign_negative());
                assert_eq!(non_negative_finite(&y), want, "{y:?}");
            }
        }
    }

    /// A negative zero takes the `total_cmp` path in `bucket_medians` (its bit pattern would
    /// order above every positive value).
    #[test]
    fn bucket_medians_of_values_with_a_negative_zero() {
        let x: Vec<f64> = (0..300).map(f64::from).collect();
        let mut y: Vec<f64> = (0..300).map(|i| f64::from(i % 7)).collect();
        for v in y.iter_mut().step_by(2) {
            *v = -0.0;
        }
        let (_, by) = bucket_medians(&x, &y, 3);
        for b in 0..3 {
            assert_eq!(
                by[b],
                median(&y[b * 100..(b + 1) * 100]).unwrap(),
                "bucket {b}"
            );
        }
        assert_eq!(by[0], 0.0);
    }

    /// `first_min` picks what `min_by(total_cmp)` picks, ties, zeros and NaNs included.
    #[test]
    fn first_min_is_min_by_total_cmp() {
        let mut u = test_uniforms(5);
        let pool = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            2.5,
            2.5,
        ];
        // The same draws without NaNs too (then the float passes decide, not the keys).
        let no_nan: Vec<f64> = pool.iter().copied().filter(|v| !v.is_nan()).collect();
        for len in (0..40).chain([63, 64, 65, 130, 257]) {
            for i in 0..40 {
                let v = draws(&mut u, if i % 2 == 0 { &pool } else { &no_nan }, len);
                let want = v
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, v)| (i, v.to_bits()));
                assert_eq!(first_min(&v).map(|(i, v)| (i, v.to_bits())), want, "{v:?}");
            }
        }
    }

    #[test]
    fn knee_finds_the_break() {
        let x: Vec<f64> = (0..40).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v.min(12.0) * 10.0).collect();
        let k = knee(&x, &y, 3).unwrap();
        assert_eq!(k.index, 12);
        assert!(
            (k.before - 10.0).abs() < 1e-6 && k.after.abs() < 1e-6,
            "{k:?}"
        );
        let line: Vec<f64> = x.iter().map(|v| v * 3.0).collect();
        let k = knee(&x, &line, 3).unwrap();
        assert!(
            (k.before - 3.0).abs() < 1e-6 && (k.after - 3.0).abs() < 1e-6,
            "{k:?}"
        );
    }

    #[test]
    fn normal_cdf_reference() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-12);
        assert!((normal_cdf(1.959_963_985) - 0.975).abs() < 1e-9);
    }

    #[test]
    fn bucketing_bounds_work() {
        let x: Vec<f64> = (0..10_000).map(f64::from).collect();
        let (bx, by) = bucket_medians(&x, &x, 100);
        assert_eq!(bx.len(), 100);
        assert!(by.windows(2).all(|w| w[0] < w[1]));
        assert!((theil_sen(&x, &x).unwrap() - 1.0).abs() < 1e-9);
    }
}
