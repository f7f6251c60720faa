//! Outstanding-allocation accounting per raw stack, fed by decoded events.

use std::collections::HashMap;

use super::event::{Event, EventKind};

/// Totals of one stack (weighted by sampling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackTotals {
    /// Bytes allocated and not freed.
    pub outstanding_bytes: i64,
    /// Blocks allocated and not freed.
    pub outstanding_count: i64,
    /// Bytes allocated since tracing started.
    pub allocated_bytes: i64,
    /// Blocks allocated since tracing started.
    pub allocated_count: i64,
}

/// Outstanding bytes and blocks by kernel stack hash.
#[derive(Debug, Default, Clone)]
pub struct Accounting {
    by_stack: HashMap<u64, StackTotals>,
}

impl Accounting {
    /// Applies one event. A free carries its allocation's stack hash, size and weight, so
    /// no address table is needed here (the kernel keeps it).
    pub fn apply(&mut self, e: &Event) {
        let w = i64::from(e.weight.max(1));
        let bytes = (e.size as i64).saturating_mul(w);
        let t = self.by_stack.entry(e.stack_hash).or_default();
        match e.kind {
            EventKind::Alloc => {
                t.outstanding_bytes += bytes;
                t.outstanding_count += w;
                t.allocated_bytes += bytes;
                t.allocated_count += w;
            }
            EventKind::Free => {
                t.outstanding_bytes -= bytes;
                t.outstanding_count -= w;
            }
        }
    }

    /// Totals by stack hash.
    pub fn stacks(&self) -> &HashMap<u64, StackTotals> {
        &self.by_stack
    }

    /// Outstanding bytes over all stacks.
    pub fn outstanding_bytes(&self) -> i64 {
        self.by_stack.values().map(|t| t.outstanding_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                s1.outstanding_count,
                s1.allocated_bytes,
                s1.allocated_count
            ),
            (50, 1, 150, 2)
        );
        assert_eq!(a.outstanding_bytes(), 60);
    }

    #[test]
    fn sampled_events_are_weighted() {
        let mut a = Accounting::default();
        a.apply(&ev(EventKind::Alloc, 3, 64, 10));
        assert_eq!(a.stacks()[&3].outstanding_bytes, 640);
        assert_eq!(a.stacks()[&3].outstanding_count, 10);
        a.apply(&ev(EventKind::Free, 3, 64, 10));
        assert_eq!(a.stacks()[&3].outstanding_bytes, 0);
    }
}
