//! Exact order statistics of integer keys: the key of rank `k` (0-based, the k-th
//! smallest) and, for the median of an even count, the key of rank `k - 1` too.
//!
//! The ranking selects medians of every point of every series (the step noise: two
//! selections of 10,000 keys per run; the bucket medians: 64 selections of 156 keys), and
//! std's `select_nth_unstable` was a fifth of the fit (perf, 100M rows by stack). On a CPU
//! with AVX-512 the partitions here move eight keys per instruction with compress stores:
//!
//! - Long inputs are first cut to a band: two pivots read off an evenly spaced sample of
//!   256 keys bracket rank `k` with a wide margin, and one pass counts the keys below the
//!   band and stores the keys inside it. When the band misses rank `k` (the sample was
//!   unlucky), the whole input is selected instead, so the answer never depends on the
//!   sample.
//! - Then (or at once, for short inputs) quickselect with three-way partitions, each round
//!   writing the keys below and above the pivot to two buffers, until at most [`SMALL`]
//!   keys are left for std's selection. After [`MAX_ROUNDS`] rounds (a pivot sequence
//!   that keeps missing) std's selection finishes the job.
//!
//! Without AVX-512, and for inputs of at most [`SMALL`] keys, std's selection runs. Either
//! way the keys returned are the input's keys of those ranks: the same values as sorting
//! would give, whatever the path.

/// Inputs this short go straight to std's selection.
const SMALL: usize = 32;
/// Inputs at least this long are cut to a band first.
const BAND_FROM: usize = 1024;
/// Keys in the sample the band's pivots are read from.
const SAMPLE: usize = 256;
/// Sample ranks either side of rank `k`'s place in the sample: the rank of a quantile in
/// a sample of 256 has a standard deviation of at most 8, so 24 is three of them.
const MARGIN: usize = 24;
/// Quickselect rounds before std's selection takes over.
const MAX_ROUNDS: usize = 48;

/// Buffers reused between selections (the band and the partitions' outputs).
#[derive(Debug, Default)]
pub struct Scratch {
    buf: Vec<i64>,
}

/// The keys of ranks `k - 1` (`None` when `k` is 0 or `below` is false) and `k` of
/// `keys`, which is left in an unspecified order (some of its keys may be overwritten by
/// others of the same input). Panics when `k >= keys.len()`.
pub fn ranks(keys: &mut [i64], k: usize, below: bool, scratch: &mut Scratch) -> (Option<i64>, i64) {
    assert!(k < keys.len(), "rank {k} of {} keys", keys.len());
    let below = below && k > 0;
    #[cfg(target_arch = "x86_64")]
    if keys.len() > SMALL
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("popcnt")
    {
        // SAFETY: the CPU has AVX-512F and POPCNT (checked above).
        return unsafe { avx512::ranks(keys, k, below, scratch) };
    }
    std_ranks(keys, k, below)
}

/// [`ranks`] by std's `select_nth_unstable`.
fn std_ranks(keys: &mut [i64], k: usize, below: bool) -> (Option<i64>, i64) {
    let (lower, at, _) = keys.select_nth_unstable(k);
    let at = *at;
    (below.then(|| lower.iter().copied().max().unwrap_or(at)), at)
}

/// Median of three.
#[inline]
fn median3(a: i64, b: i64, c: i64) -> i64 {
    a.max(b).min(a.min(b).max(c))
}

/// A pivot for quickselect: the median of three spread keys, or of three such medians.
fn pivot(src: &[i64]) -> i64 {
    let n = src.len();
    if n < 512 {
        return median3(src[n / 4], src[n / 2], src[3 * n / 4]);
    }
    let s = n / 9;
    let m = |i: usize| median3(src[i * s], src[i * s + s / 3], src[i * s + 2 * s / 3]);
    median3(
        median3(m(0), m(1), m(2)),
        median3(m(3), m(4), m(5)),
        median3(m(6), m(7), m(8)),
    )
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// Where rank `k` of a three-way partition lies.
    #[derive(Clone, Copy, PartialEq)]
    enum Zone {
        Less,
        Equal,
        Greater,
    }

    /// [`super::ranks`] with AVX-512 partitions.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and POPCNT.
    #[target_feature(enable = "avx512f,popcnt")]
    pub(super) unsafe fn ranks(
        keys: &mut [i64],
        k: usize,
        below: bool,
        scratch: &mut Scratch,
    ) -> (Option<i64>, i64) {
        let n = keys.len();
        // Three regions of n keys: the band and two partition outputs. Grown (and zeroed)
        // only when too small: zeroing 30,000 keys per selection would cost more than the
        // selection saves.
        if scratch.buf.len() < 3 * n {
            scratch.buf.resize(3 * n, 0);
        }
        let (band_buf, rest) = scratch.buf.split_at_mut(n);
        let (one, two) = rest.split_at_mut(n);
        if n >= BAND_FROM {
            let (a, b) = band_pivots(keys, k);
            // SAFETY: AVX-512F and POPCNT, as this function requires; band_buf holds n keys.
            let (under, len) = unsafe { band(keys, a, b, band_buf) };
            let first = if below { k - 1 } else { k };
            if under <= first && k < under + len {
                // SAFETY: three buffers of at least n keys each, the first holding the band.
                return unsafe {
                    quickselect(
                        [band_buf.as_mut_ptr(), one.as_mut_ptr(), two.as_mut_ptr()],
                        len,
                        k - under,
                        below,
                    )
                };
            }
        }
        // SAFETY: three buffers of at least n keys each, the first holding the input.
        unsafe {
            quickselect(
                [keys.as_mut_ptr(), one.as_mut_ptr(), two.as_mut_ptr()],
                n,
                k,
                below,
            )
        }
    }

    /// Pivots `a <= b` read off an evenly spaced sample, [`MARGIN`] sample ranks either
    /// side of where rank `k` falls in it.
    fn band_pivots(keys: &[i64], k: usize) -> (i64, i64) {
        let n = keys.len();
        let step = n / SAMPLE;
        let mut sample: [i64; SAMPLE] = std::array::from_fn(|i| keys[i * step + step / 2]);
        let at = k * SAMPLE / n;
        let (lo, hi) = (at.saturating_sub(MARGIN), (at + MARGIN).min(SAMPLE - 1));
        let (_, a, upper) = sample.select_nth_unstable(lo);
        let a = *a;
        let b = if hi > lo {
            *upper.select_nth_unstable(hi - lo - 1).1
        } else {
            a
        };
        (a, b)
    }

    /// Counts the keys below `a` and stores those in `a..=b` to `out` (at least as long
    /// as `keys`); returns (count below, count stored). Every store lands below the count
    /// of keys read so far, so `out` never overflows.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and POPCNT.
    #[target_feature(enable = "avx512f,popcnt")]
    unsafe fn band(keys: &[i64], a: i64, b: i64, out: &mut [i64]) -> (usize, usize) {
        assert!(out.len() >= keys.len());
        let (va, vb) = (_mm512_set1_epi64(a), _mm512_set1_epi64(b));
        let dst = out.as_mut_ptr();
        let (mut under, mut len) = (0usize, 0usize);
        let chunks = keys.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: c holds 8 keys; the store writes at most 8 keys from len, and len
            // counts only keys read before this chunk, so it ends within out.
            unsafe {
                let v = _mm512_loadu_si512(c.as_ptr().cast());
                let lt = _mm512_cmplt_epi64_mask(v, va);
                let inside = _mm512_cmple_epi64_mask(v, vb) & !lt;
                _mm512_mask_compressstoreu_epi64(dst.add(len).cast(), inside, v);
                under += lt.count_ones() as usize;
                len += inside.count_ones() as usize;
            }
        }
        for &x in tail {
            // len counts keys read before x, fewer than n: in bounds.
            out[len] = x;
            under += usize::from(x < a);
            len += usize::from(x >= a && x <= b);
        }
        (under, len)
    }

    /// Writes the keys of `src` below `p` to `lt` and those above to `gt`; returns their
    /// counts. Every store (the scalar tail's are unconditional) lands below the count of
    /// keys read so far.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and POPCNT; `lt` and `gt` must each have room for
    /// `src.len()` keys and overlap neither `src` nor each other.
    #[target_feature(enable = "avx512f,popcnt")]
    unsafe fn partition(src: &[i64], p: i64, lt: *mut i64, gt: *mut i64) -> (usize, usize) {
        let vp = _mm512_set1_epi64(p);
        let (mut nl, mut ng) = (0usize, 0usize);
        let chunks = src.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: as the caller promises; at most the keys read so far are stored.
            unsafe {
                let v = _mm512_loadu_si512(c.as_ptr().cast());
                let ml = _mm512_cmplt_epi64_mask(v, vp);
                let mg = _mm512_cmpgt_epi64_mask(v, vp);
                _mm512_mask_compressstoreu_epi64(lt.add(nl).cast(), ml, v);
                _mm512_mask_compressstoreu_epi64(gt.add(ng).cast(), mg, v);
                nl += ml.count_ones() as usize;
                ng += mg.count_ones() as usize;
            }
        }
        for &x in tail {
            // SAFETY: nl and ng are below the keys read so far, within the room promised.
            unsafe {
                *lt.add(nl) = x;
                *gt.add(ng) = x;
            }
            nl += usize::from(x < p);
            ng += usize::from(x > p);
        }
        (nl, ng)
    }

    /// Quickselect over three rotating buffers: `bufs[0]` holds the `len` keys; each
    /// round partitions the current buffer into the other two.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and POPCNT; each buffer must have room for `len` keys,
    /// and they must not overlap.
    #[target_feature(enable = "avx512f,popcnt")]
    unsafe fn quickselect(
        bufs: [*mut i64; 3],
        mut len: usize,
        mut k: usize,
        below: bool,
    ) -> (Option<i64>, i64) {
        let mut cur = 0;
        let mut rounds = 0;
        while len > SMALL && rounds < MAX_ROUNDS {
            rounds += 1;
            // SAFETY: bufs[cur] holds len keys (the input, or a partition's output).
            let src = unsafe { std::slice::from_raw_parts(bufs[cur], len) };
            let p = pivot(src);
            let (a, b) = ((cur + 1) % 3, (cur + 2) % 3);
            // SAFETY: the other two buffers, with room for len keys each.
            let (nl, ng) = unsafe { partition(src, p, bufs[a], bufs[b]) };
            let zone = |r: usize| {
                if r < nl {
                    Zone::Less
                } else if r < len - ng {
                    Zone::Equal
                } else {
                    Zone::Greater
                }
            };
            let lower = if below { zone(k - 1) } else { zone(k) };
            match (lower, zone(k)) {
                (Zone::Less, Zone::Less) => (cur, len) = (a, nl),
                (Zone::Greater, Zone::Greater) => {
                    k -= len - ng;
                    (cur, len) = (b, ng);
                }
                (Zone::Equal, Zone::Equal) => return (below.then_some(p), p),
                // Rank k - 1 is the largest key below the pivot.
                (Zone::Less, Zone::Equal) => {
                    // SAFETY: the partition wrote nl keys there.
                    let lt = unsafe { std::slice::from_raw_parts(bufs[a], nl) };
                    return (lt.iter().copied().max(), p);
                }
                // Rank k is the smallest key above the pivot.
                (Zone::Equal, Zone::Greater) => {
                    // SAFETY: the partition wrote ng keys there.
                    let gt = unsafe { std::slice::from_raw_parts(bufs[b], ng) };
                    let at = gt.iter().copied().min().unwrap_or(p);
                    return (Some(p), at);
                }
                // Ranks k - 1 and k are neighbours: the equal zone (which holds the pivot)
                // lies between the other two.
                _ => unreachable!("ranks {} and {k} split across the pivot", k - 1),
            }
        }
        // SAFETY: bufs[cur] holds len keys.
        let rest = unsafe { std::slice::from_raw_parts_mut(bufs[cur], len) };
        std_ranks(rest, k, below)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stats::test_uniforms;

    /// The answer by sorting.
    fn sorted_ranks(keys: &[i64], k: usize, below: bool) -> (Option<i64>, i64) {
        let mut s = keys.to_vec();
        s.sort_unstable();
        ((below && k > 0).then(|| s[k - 1]), s[k])
    }

    /// Every path (std, quickselect alone, band then quickselect, band missed) gives the
    /// ranks sorting gives (on a CPU without AVX-512, std's twice), on random, tied, sorted, reversed and two-valued keys.
    #[test]
    fn ranks_are_the_sorted_keys_at_those_ranks() {
        let mut u = test_uniforms(77);
        let mut scratch = Scratch::default();
        let lens = [
            1, 2, 3, 31, 32, 33, 40, 100, 156, 157, 511, 512, 1023, 1024, 1500, 9_999,
        ];
        for (round, (n, pattern)) in lens
            .iter()
            .flat_map(|n| (0..6).map(move |p| (*n, p)))
            .enumerate()
        {
            let keys: Vec<i64> = (0..n)
                .map(|i| match pattern {
                    0 => (u() * 2e18 - 1e18) as i64,
                    1 => (u() * 7.0) as i64,
                    2 => i as i64,
                    3 => -(i as i64),
                    4 => i64::from(u() < 0.5) * i64::MAX,
                    // Organ pipe: a pattern that defeats median-of-three pivots.
                    _ => (i.min(n - i) as i64) * 3,
                })
                .collect();
            for k in [0, 1, n / 2, (n - 1) / 2, n - 1, n / 3]
                .into_iter()
                .filter(|k| *k < n)
            {
                for below in [false, true] {
                    let mut work = keys.clone();
                    let got = ranks(&mut work, k, below, &mut scratch);
                    let want = sorted_ranks(&keys, k, below);
                    assert_eq!(got, want, "round {round} n {n} k {k}");
                    // The path of CPUs without AVX-512, whatever this one has.
                    let below = below && k > 0;
                    let std = std_ranks(&mut keys.clone(), k, below);
                    assert_eq!(std, want, "std: round {round} n {n} k {k}");
                }
            }
        }
    }

    /// A band whose sample misses rank k (the keys sit in a block the evenly spaced
    /// sample never reads) still gives the exact answer.
    #[test]
    fn a_sample_that_misses_the_rank_still_selects_exactly() {
        let n = 4096;
        let step = n / SAMPLE;
        // Sampled positions hold 0; every other key is large and distinct.
        let keys: Vec<i64> = (0..n)
            .map(|i| {
                if i % step == step / 2 {
                    0
                } else {
                    1_000 + i as i64
                }
            })
            .collect();
        let mut scratch = Scratch::default();
        for k in [n / 2, n / 2 + 1, n - 1, 300] {
            let mut work = keys.clone();
            let got = ranks(&mut work, k, true, &mut scratch);
            assert_eq!(got, sorted_ranks(&keys, k, true), "k {k}");
        }
    }
}
