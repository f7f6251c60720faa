//! The kernel's ring-buffer record and counter layout (mirrors `ebpf/native_alloc.bpf.c`).

/// Frames the program's stack walk can return (its `MAX_FRAMES`).
pub const MAX_FRAMES: usize = 127;

/// Size of `struct event_hdr`.
pub const HDR_LEN: usize = 56;

/// Number of kernel counters (`C_COUNT`); indices 0..16 map to the first 16 columns of
/// `leakscope_capture::schema::NATIVE_COUNTERS`.
pub const KERNEL_COUNTERS: usize = 16;

/// What a record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A traced allocation (with its stack).
    Alloc,
    /// The free of a traced block.
    Free,
}

/// One decoded ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Alloc or free.
    pub kind: EventKind,
    /// Thread id.
    pub tid: u32,
    /// Kernel monotonic time of the event, ns.
    pub ts: u64,
    /// Block address.
    pub addr: u64,
    /// Requested size.
    pub size: u64,
    /// Kernel hash of the raw stack (0: no stack).
    pub stack_hash: u64,
    /// Monotonic time of the allocation (for frees).
    pub alloc_ts: u64,
    /// Sampling weight.
    pub weight: u32,
    /// Frames, or a negative error (stack walk failed).
    pub nframes: i32,
    /// Raw user stack, leaf first (allocs only).
    pub ips: Vec<u64>,
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// Shorter than its header or its frames.
    #[error("record of {0} bytes is too short")]
    Short(usize),
    /// Unknown kind.
    #[error("unknown record kind {0}")]
    Kind(u32),
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

impl Event {
    /// Decodes one record.
    pub fn parse(b: &[u8]) -> Result<Event, EventError> {
        if b.len() < HDR_LEN {
            return Err(EventError::Short(b.len()));
        }
        let kind = match u32_at(b, 0) {
            1 => EventKind::Alloc,
            2 => EventKind::Free,
            k => return Err(EventError::Kind(k)),
        };
        let nframes = u32_at(b, 52) as i32;
        let n = nframes.clamp(0, MAX_FRAMES as i32) as usize;
        if kind == EventKind::Alloc && b.len() < HDR_LEN + n * 8 {
            return Err(EventError::Short(b.len()));
        }
        let ips = if kind == EventKind::Alloc {
            (0..n).map(|i| u64_at(b, HDR_LEN + i * 8)).collect()
        } else {
            Vec::new()
        };
        Ok(Event {
            kind,
            tid: u32_at(b, 4),
            ts: u64_at(b, 8),
            addr: u64_at(b, 16),
            size: u64_at(b, 24),
            stack_hash: u64_at(b, 32),
            alloc_ts: u64_at(b, 40),
            weight: u32_at(b, 48),
            nframes,
            ips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u32, nframes: i32, ips: &[u64]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        for v in [100u64, 0x1000, 4096, 42, 90] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&3u32.to_ne_bytes());
        b.extend_from_slice(&nframes.to_ne_bytes());
        for ip in ips {
            b.extend_from_slice(&ip.to_ne_bytes());
        }
        b
    }

    #[test]
    fn decodes_allocs_and_frees() {
        let e = Event::parse(&record(1, 2, &[0x10, 0x20])).unwrap();
        assert_eq!(e.kind, EventKind::Alloc);
        assert_eq!(
            (
                e.tid,
                e.ts,
                e.addr,
                e.size,
                e.stack_hash,
                e.alloc_ts,
                e.weight
            ),
            (7, 100, 0x1000, 4096, 42, 90, 3)
        );
        assert_eq!(e.ips, vec![0x10, 0x20]);
        let f = Event::parse(&record(2, 0, &[])).unwrap();
        assert_eq!(f.kind, EventKind::Free);
        assert!(f.ips.is_empty());
        let failed_stack = Event::parse(&record(1, -14, &[])).unwrap();
        assert_eq!(failed_stack.nframes, -14);
        assert!(failed_stack.ips.is_empty());
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(Event::parse(&[0; 10]), Err(EventError::Short(10)));
        assert_eq!(
            Event::parse(&record(1, 3, &[1])),
            Err(EventError::Short(HDR_LEN + 8))
        );
        assert_eq!(Event::parse(&record(9, 0, &[])), Err(EventError::Kind(9)));
    }
}
