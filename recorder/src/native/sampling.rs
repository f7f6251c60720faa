//! Sampling modes of the native tracer and the weights that keep its totals unbiased.
//!
//! The kernel decides which allocation calls are traced (`ebpf/native_alloc.bpf.c`,
//! `stash_size`); this module holds what a traced allocation then stands for:
//!
//! - [`Sampling::Every`] (`--native-sample N`): each call is traced with probability 1/N
//!   and stands for N allocations of its size (N × size bytes).
//! - [`Sampling::Bytes`] (`--native-sample-bytes R`): an allocation of `size` bytes is
//!   traced with probability p = min(1, max(size, 1) / R). It stands for size / p bytes,
//!   which is max(size, R) (0 for `malloc(0)`), and 1 / p allocations, which is
//!   max(1, R / max(size, 1)): a fraction, kept in fixed point ([`Count`]).
//!
//! A free carries its allocation's size and weight, so it subtracts exactly what the
//! allocation added.

use std::ops::{AddAssign, SubAssign};

/// How the kernel selects the allocation calls it traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// One call in N at random (1 = every call).
    Every(u32),
    /// Each allocation with probability min(1, max(size, 1) / R), R in bytes (R ≥ 1).
    Bytes(u64),
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling::Every(1)
    }
}

/// One allocation in fixed point: counts are kept in units of 2^-32 so that fractional
/// weights add up and cancel exactly.
pub const COUNT_ONE: i128 = 1 << 32;

/// An estimated number of allocations, in units of 2^-32 ([`COUNT_ONE`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(pub i128);

impl Count {
    /// `n` whole allocations.
    pub fn whole(n: u64) -> Count {
        Count(i128::from(n) * COUNT_ONE)
    }

    /// Rounded to the nearest whole number (halves up), saturating to the i64 range.
    pub fn rounded(self) -> i64 {
        let r = (self.0 + COUNT_ONE / 2).div_euclid(COUNT_ONE);
        r.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// As a floating-point number.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / COUNT_ONE as f64
    }
}

impl AddAssign for Count {
    fn add_assign(&mut self, o: Count) {
        self.0 = self.0.saturating_add(o.0);
    }
}

impl SubAssign for Count {
    fn sub_assign(&mut self, o: Count) {
        self.0 = self.0.saturating_sub(o.0);
    }
}

/// What one traced allocation (or its free) stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weight {
    /// Estimated bytes.
    pub bytes: u64,
    /// Estimated allocations.
    pub count: Count,
}

impl Sampling {
    /// The kernel's `sample_every` (1 unless sampling by calls).
    pub fn sample_every(self) -> u32 {
        match self {
            Sampling::Every(n) => n.max(1),
            Sampling::Bytes(_) => 1,
        }
    }

    /// The kernel's `sample_bytes` (0 unless sampling by bytes).
    pub fn sample_bytes(self) -> u64 {
        match self {
            Sampling::Every(_) => 0,
            Sampling::Bytes(r) => r.max(1),
        }
    }

    /// True when some allocations are not traced.
    pub fn is_sampled(self) -> bool {
        match self {
            Sampling::Every(n) => n > 1,
            Sampling::Bytes(r) => r > 1,
        }
    }

    /// The sampling period written to the `native` profiles: N, or R bytes.
    pub fn period(self) -> i64 {
        match self {
            Sampling::Every(n) => i64::from(n.max(1)),
            Sampling::Bytes(r) => i64::try_from(r).unwrap_or(i64::MAX),
        }
    }

    /// Probability that an allocation of `size` bytes is traced.
    pub fn probability(self, size: u64) -> f64 {
        match self {
            Sampling::Every(n) => 1.0 / f64::from(n.max(1)),
            Sampling::Bytes(r) => (size.max(1) as f64 / r.max(1) as f64).min(1.0),
        }
    }

    /// What a traced allocation of `size` bytes stands for. `event_weight` is the weight
    /// the kernel sent with it (its `sample_every`), used when sampling by calls.
    pub fn weight(self, size: u64, event_weight: u32) -> Weight {
        match self {
            Sampling::Every(_) => {
                let w = event_weight.max(1);
                Weight {
                    bytes: size.saturating_mul(u64::from(w)),
                    count: Count::whole(u64::from(w)),
                }
            }
            Sampling::Bytes(r) => {
                let r = r.max(1);
                if size >= r {
                    return Weight {
                        bytes: size,
                        count: Count::whole(1),
                    };
                }
                // 1 / p = R / max(size, 1) > 1, in units of 2^-32 (floor: < 2^-32 low).
                let count = (i128::from(r) * COUNT_ONE) / i128::from(size.max(1));
                Weight {
                    bytes: if size == 0 { 0 } else { r },
                    count: Count(count),
                }
            }
        }
    }
}

/// The kernel's byte-sampling decision (`sample_by_bytes` in `ebpf/native_alloc.bpf.c`)
/// for a 64-bit random number `rand`: traced when max(size, 1) ≥ R, else when
/// `rand % R < max(size, 1)`, which happens with probability max(size, 1) / R (up to a
/// modulo bias below R / 2^64).
pub fn bytes_sampled(size: u64, r: u64, rand: u64) -> bool {
    let s = size.max(1);
    let r = r.max(1);
    s >= r || rand % r < s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_by_calls_weighs_by_the_rate() {
        let s = Sampling::Every(64);
        let w = s.weight(100, 64);
        assert_eq!(w.bytes, 6400);
        assert_eq!(w.count.rounded(), 64);
        assert_eq!(
            (s.sample_every(), s.sample_bytes(), s.period()),
            (64, 0, 64)
        );
        assert!(s.is_sampled() && !Sampling::Every(1).is_sampled());
        assert_eq!(Sampling::Every(1).weight(7, 1).bytes, 7);
    }

    #[test]
    fn sampling_by_bytes_estimates_max_size_r_bytes_and_r_over_size_blocks() {
        let s = Sampling::Bytes(512 * 1024);
        assert_eq!((s.sample_every(), s.sample_bytes()), (1, 512 * 1024));
        // At or above R: always traced, stands for itself.
        let big = s.weight(1 << 20, 1);
        assert_eq!((big.bytes, big.count), (1 << 20, Count::whole(1)));
        let at = s.weight(512 * 1024, 1);
        assert_eq!((at.bytes, at.count), (512 * 1024, Count::whole(1)));
        // Below R: R bytes, R / size blocks (fractional).
        let small = s.weight(4096, 1);
        assert_eq!((small.bytes, small.count), (512 * 1024, Count::whole(128)));
        let odd = s.weight(3000, 1);
        assert_eq!(odd.bytes, 512 * 1024);
        assert!((odd.count.as_f64() - 524288.0 / 3000.0).abs() < 1e-6);
        assert_eq!(odd.count.rounded(), 175); // 174.76
                                              // malloc(0): sampled like 1 byte, stands for no bytes and R blocks.
        let zero = s.weight(0, 1);
        assert_eq!((zero.bytes, zero.count), (0, Count::whole(512 * 1024)));
        // The kernel's event weight plays no part.
        assert_eq!(s.weight(4096, 9), small);
    }

    #[test]
    fn huge_thresholds_do_not_overflow() {
        let s = Sampling::Bytes(u64::MAX);
        let w = s.weight(1, 1);
        assert_eq!(w.bytes, u64::MAX);
        assert_eq!(w.count, Count(i128::from(u64::MAX) * COUNT_ONE));
        assert_eq!(s.period(), i64::MAX);
        assert!(bytes_sampled(u64::MAX, u64::MAX, 0));
        assert!(!bytes_sampled(1, u64::MAX, u64::MAX - 1));
    }

    #[test]
    fn counts_round_to_nearest() {
        assert_eq!(Count(COUNT_ONE / 2 - 1).rounded(), 0);
        assert_eq!(Count(COUNT_ONE / 2).rounded(), 1);
        assert_eq!(Count(-COUNT_ONE / 2 - 1).rounded(), -1);
        assert_eq!(Count::whole(3).as_f64(), 3.0);
        let mut c = Count::default();
        let w = Sampling::Bytes(1000).weight(3, 1).count;
        c += w;
        c += w;
        c -= w;
        c -= w;
        assert_eq!(c, Count(0), "fixed-point weights cancel exactly");
    }

    #[test]
    fn the_decision_traces_with_probability_size_over_r() {
        let r = 1000;
        // Exactly `size` of every R consecutive random numbers are below it modulo R.
        for size in [0u64, 1, 10, 999] {
            let hits = (0..r).filter(|&x| bytes_sampled(size, r, x)).count() as u64;
            assert_eq!(hits, size.max(1), "size {size}");
            let p = Sampling::Bytes(r).probability(size);
            assert!((p - size.max(1) as f64 / r as f64).abs() < 1e-12);
        }
        assert!((0..r).all(|x| bytes_sampled(1000, r, x) && bytes_sampled(5000, r, x)));
        assert_eq!(Sampling::Bytes(r).probability(5000), 1.0);
    }

    /// xorshift64*: a deterministic stand-in for the kernel's random numbers.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Simulated tracing of a known mix of sizes: the weighted totals of the traced
    /// allocations estimate the true bytes and counts within their standard deviations
    /// (z < 5), computed from the sampling variance:
    /// Var(bytes) = Σ size·(R − size), Var(count) = Σ (R/size − 1) over sizes below R.
    #[test]
    fn weighted_totals_are_unbiased() {
        let r = 64 * 1024;
        let s = Sampling::Bytes(r);
        let sizes = [0u64, 1, 16, 100, 1000, 4096, 60_000, 64 * 1024, 1 << 20];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let (mut true_bytes, mut true_count) = (0u64, 0u64);
        let (mut est_bytes, mut est_count) = (0u64, Count::default());
        let (mut var_bytes, mut var_count) = (0f64, 0f64);
        for i in 0..400_000 {
            let size = sizes[i % sizes.len()];
            true_bytes += size;
            true_count += 1;
            let p = s.probability(size);
            var_bytes += size as f64 * size as f64 * (1.0 - p) / p;
            var_count += (1.0 - p) / p;
            if bytes_sampled(size, r, rng(&mut state)) {
                let w = s.weight(size, 1);
                est_bytes += w.bytes;
                est_count += w.count;
            }
        }
        let zb = (est_bytes as f64 - true_bytes as f64) / var_bytes.sqrt();
        let zc = (est_count.as_f64() - true_count as f64) / var_count.sqrt();
        assert!(
            zb.abs() < 5.0,
            "bytes {est_bytes} vs {true_bytes}: z = {zb:.2}"
        );
        assert!(
            zc.abs() < 5.0,
            "count {est_count:?} vs {true_count}: z = {zc:.2}"
        );
    }
}
