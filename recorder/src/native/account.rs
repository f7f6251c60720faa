//! Outstanding-allocation accounting per raw stack, fed by decoded events.

use std::collections::HashMap;
use std::ops::AddAssign;

use super::event::{Event, EventKind};
use super::sampling::{Count, Sampling};

/// Totals of one stack (estimates, weighted by sampling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackTotals {
    /// Bytes allocated and not freed.
    pub outstanding_bytes: i64,
    /// Blocks allocated and not freed.
    pub outstanding_count: Count,
    /// Bytes allocated since tracing started.
    pub allocated_bytes: i64,
    /// Blocks allocated since tracing started.
    pub allocated_count: Count,
}

impl AddAssign for StackTotals {
    fn add_assign(&mut self, o: StackTotals) {
        self.outstanding_bytes = self.outstanding_bytes.saturating_add(o.outstanding_bytes);
        self.outstanding_count += o.outstanding_count;
        self.allocated_bytes = self.allocated_bytes.saturating_add(o.allocated_bytes);
        self.allocated_count += o.allocated_count;
    }
}

/// Outstanding bytes and blocks by kernel stack hash.
#[derive(Debug, Default, Clone)]
pub struct Accounting {
    sampling: Sampling,
    by_stack: HashMap<u64, StackTotals>,
}

impl Accounting {
    /// Empty accounting for events traced under `sampling`.
    pub fn new(sampling: Sampling) -> Accounting {
        Accounting {
            sampling,
            by_stack: HashMap::new(),
        }
    }

    /// Applies one event. A free carries its allocation's stack hash, size and weight, so
    /// no address table is needed here (the kernel keeps it), and it subtracts exactly
    /// what its allocation added.
    pub fn apply(&mut self, e: &Event) {
        let w = self.sampling.weight(e.size, e.weight);
        let bytes = i64::try_from(w.bytes).unwrap_or(i64::MAX);
        let t = self.by_stack.entry(e.stack_hash).or_default();
        match e.kind {
            EventKind::Alloc => {
                t.outstanding_bytes = t.outstanding_bytes.saturating_add(bytes);
                t.outstanding_count += w.count;
                t.allocated_bytes = t.allocated_bytes.saturating_add(bytes);
                t.allocated_count += w.count;
            }
            EventKind::Free => {
                t.outstanding_bytes = t.outstanding_bytes.saturating_sub(bytes);
                t.outstanding_count -= w.count;
            }
        }
    }

    /// Totals by stack hash.
    pub fn stacks(&self) -> &HashMap<u64, StackTotals> {
        &self.by_stack
    }

    /// Forgets stack `hash` if its totals are still `expected` (no event since they were
    /// read); returns whether it was forgotten.
    pub fn forget_if_unchanged(&mut self, hash: u64, expected: &StackTotals) -> bool {
        let same = self.by_stack.get(&hash).is_some_and(|t| t == expected);
        if same {
            self.by_stack.remove(&hash);
        }
        same
    }

    /// Outstanding bytes over all stacks.
    pub fn outstanding_bytes(&self) -> i64 {
        self.by_stack.values().map(|t| t.outstanding_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_forgotten_only_when_nothing_happened_since_it_was_read() {
        let mut a = Accounting::new(Sampling::default());
        a.by_stack.insert(7, StackTotals::default());
        let seen = a.stacks()[&7];
        a.by_stack.get_mut(&7).unwrap().allocated_bytes += 1;
        assert!(!a.forget_if_unchanged(7, &seen));
        let seen = a.stacks()[&7];
        assert!(a.forget_if_unchanged(7, &seen));
        assert!(a.stacks().is_empty());
    }

    fn ev(kind: EventKind, stack: u64, size: u64, weight: u32) -> Event {
        Event {
            kind,
            tid: 1,
            ts: 0,
            addr: 0x10,
            size,
            stack_hash: stack,
            alloc_ts: 0,
            weight,
            nframes: 0,
            ips: vec![],
        }
    }

    #[test]
    fn frees_cancel_their_stacks_allocations() {
        let mut a = Accounting::default();
        a.apply(&ev(EventKind::Alloc, 1, 100, 1));
        a.apply(&ev(EventKind::Alloc, 1, 50, 1));
        a.apply(&ev(EventKind::Alloc, 2, 10, 1));
        a.apply(&ev(EventKind::Free, 1, 100, 1));
        let s1 = a.stacks()[&1];
        assert_eq!(
            (
                s1.outstanding_bytes,
                s1.outstanding_count.rounded(),
                s1.allocated_bytes,
                s1.allocated_count.rounded()
            ),
            (50, 1, 150, 2)
        );
        assert_eq!(a.outstanding_bytes(), 60);
    }

    #[test]
    fn sampled_events_are_weighted() {
        let mut a = Accounting::new(Sampling::Every(10));
        a.apply(&ev(EventKind::Alloc, 3, 64, 10));
        assert_eq!(a.stacks()[&3].outstanding_bytes, 640);
        assert_eq!(a.stacks()[&3].outstanding_count.rounded(), 10);
        a.apply(&ev(EventKind::Free, 3, 64, 10));
        assert_eq!(a.stacks()[&3].outstanding_bytes, 0);
    }

    #[test]
    fn byte_sampled_events_weigh_max_size_r_and_cancel_exactly() {
        let mut a = Accounting::new(Sampling::Bytes(1024));
        // 3 blocks of 100 bytes: each stands for 1024 bytes and 10.24 blocks.
        for _ in 0..3 {
            a.apply(&ev(EventKind::Alloc, 4, 100, 1));
        }
        // One block above R stands for itself.
        a.apply(&ev(EventKind::Alloc, 4, 5000, 1));
        let t = a.stacks()[&4];
        assert_eq!(t.outstanding_bytes, 3 * 1024 + 5000);
        assert!((t.outstanding_count.as_f64() - 31.72).abs() < 1e-6);
        assert_eq!(t.outstanding_count.rounded(), 32);
        for size in [100, 100, 100, 5000] {
            a.apply(&ev(EventKind::Free, 4, size, 1));
        }
        let t = a.stacks()[&4];
        assert_eq!((t.outstanding_bytes, t.outstanding_count), (0, Count(0)));
        assert_eq!(t.allocated_count.rounded(), 32);
        let mut sum = StackTotals::default();
        sum += t;
        sum += t;
        assert_eq!(sum.allocated_bytes, 2 * (3 * 1024 + 5000));
    }
}
