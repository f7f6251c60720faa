//! The running native tracer: a reader thread drains the ring buffer into the accounting;
//! each interval [`NativeTracer::write`] re-scans the maps (new `dlopen`ed allocators),
//! symbolizes new stacks and buffers the capture rows.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use aya::maps::{MapData, RingBuf};
use leakscope_capture::rows::{
    NativeCountersRow, NativeEventRow, NativeOutstandingRow, ProfileRow, SampleRow, SampleValues,
    StackRow,
};
use leakscope_capture::schema::NATIVE_COUNTERS;
use leakscope_capture::segment::SegmentWriter;
use leakscope_capture::stack::stack_id;

use super::account::{Accounting, StackTotals};
use super::event::{Event, EventKind, KERNEL_COUNTERS};
use super::loader::{entry_skip_enabled, preflight, Loaded};
use super::maps::{inspect, read_executable_mappings};
use super::sampling::Sampling;
use super::symbolize::StackSymbolizer;
use super::NativeError;
use crate::ingest::profile_id;

/// At most this many `native_events` rows are buffered per interval; the rest is counted.
pub const MAX_EVENTS_PER_INTERVAL: usize = 1_000_000;

/// Source string of native profiles.
pub const NATIVE_SOURCE: &str = "ebpf:uprobe";

/// What to trace and how.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    /// Process to trace.
    pub pid: u32,
    /// Which allocation calls are traced (every one by default).
    pub sampling: Sampling,
    /// Capacity of the kernel's outstanding-allocation table.
    pub max_outstanding: u32,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Write `native_events` rows.
    pub write_events: bool,
}

impl Default for NativeOptions {
    fn default() -> Self {
        NativeOptions {
            pid: 0,
            sampling: Sampling::default(),
            max_outstanding: 1_000_000,
            ring_bytes: 16 << 20,
            write_events: true,
        }
    }
}

/// State shared with the reader thread.
struct Shared {
    acct: Accounting,
    known_stacks: HashSet<u64>,
    new_stacks: Vec<(u64, Vec<u64>)>,
    events: Vec<Event>,
    events_not_written: u64,
    bad_events: u64,
}

/// Totals of one interval, for logs and tests.
#[derive(Debug, Clone, Default)]
pub struct NativeSnapshot {
    /// Outstanding bytes over all stacks.
    pub outstanding_bytes: i64,
    /// Stacks with rows this interval.
    pub stacks: usize,
    /// Events written.
    pub events: usize,
    /// Sum of the loss counters (lost events, full tables, bad records).
    pub losses: u64,
}

/// A native tracer attached to one process.
pub struct NativeTracer {
    opts: NativeOptions,
    loaded: Loaded,
    seen_files: HashSet<(String, u64)>,
    libraries: Vec<String>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    symbolizer: StackSymbolizer,
    stack_of_hash: HashMap<u64, u64>,
    stack_rows: HashMap<u64, StackRow>,
    last_allocated: HashMap<u64, i64>,
    /// Intervals in a row each stack (capture id) had nothing outstanding and no new
    /// allocation.
    idle: HashMap<u64, u32>,
    /// Stacks forgotten so far (`native_counters.stacks_evicted`).
    evicted: u64,
    unsymbolized: u64,
    clock_offset_ns: i64,
}

/// Intervals a stack must stay idle (nothing outstanding, no new allocation) before the
/// tracer forgets it. Its tables only grew before: a process that keeps making new stacks
/// (plugins, JIT, generated code) grew the recorder without bound. At the default 10 s
/// interval, 10 minutes.
pub const IDLE_INTERVALS_BEFORE_EVICTION: u32 = 60;

/// Counts one more interval for every stack in `activity` (capture id, whether it was
/// active) and returns, in id order, those idle for `limit` intervals in a row (they are
/// dropped from `idle`).
fn idle_to_evict(
    idle: &mut HashMap<u64, u32>,
    activity: impl Iterator<Item = (u64, bool)>,
    limit: u32,
) -> Vec<u64> {
    let mut out = Vec::new();
    for (id, active) in activity {
        let n = idle.entry(id).or_insert(0);
        *n = if active { 0 } else { n.saturating_add(1) };
        if *n >= limit {
            out.push(id);
        }
    }
    for id in &out {
        idle.remove(id);
    }
    out.sort_unstable();
    out
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl NativeTracer {
    /// Checks privileges, loads the programs, attaches them to every allocator the process
    /// maps, and starts reading events.
    pub fn start(opts: NativeOptions) -> Result<NativeTracer, NativeError> {
        preflight(opts.pid)?;
        let mut loaded = Loaded::load(
            opts.pid,
            opts.sampling,
            opts.max_outstanding,
            opts.ring_bytes,
        )?;
        let ring = loaded.take_ring()?;
        let shared = Arc::new(Mutex::new(Shared {
            acct: Accounting::new(opts.sampling),
            known_stacks: HashSet::new(),
            new_stacks: Vec::new(),
            events: Vec::new(),
            events_not_written: 0,
            bad_events: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut t = NativeTracer {
            symbolizer: StackSymbolizer::new(opts.pid),
            opts,
            loaded,
            seen_files: HashSet::new(),
            libraries: Vec::new(),
            shared: shared.clone(),
            stop: stop.clone(),
            reader: None,
            stack_of_hash: HashMap::new(),
            stack_rows: HashMap::new(),
            last_allocated: HashMap::new(),
            idle: HashMap::new(),
            evicted: 0,
            unsymbolized: 0,
            clock_offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        };
        let objects = t.rescan()?;
        if t.libraries.is_empty() {
            return Err(NativeError::NoAllocator {
                pid: t.opts.pid,
                objects,
            });
        }
        let write_events = t.opts.write_events;
        t.reader = Some(std::thread::spawn(move || {
            read_loop(ring, shared, stop, write_events)
        }));
        Ok(t)
    }

    /// The traced PID.
    pub fn pid(&self) -> u32 {
        self.opts.pid
    }

    /// Traced allocator libraries.
    pub fn libraries(&self) -> &[String] {
        &self.libraries
    }

    /// Uprobes attached.
    pub fn probes(&self) -> u32 {
        self.loaded.probes()
    }

    /// Attaches to allocators mapped since the last scan; returns the executable mappings seen.
    pub fn rescan(&mut self) -> Result<usize, NativeError> {
        let mappings = read_executable_mappings(self.opts.pid)?;
        for m in &mappings {
            if !self.seen_files.insert(m.dev_inode.clone()) {
                continue;
            }
            if let Some(a) = inspect(self.opts.pid, m) {
                if !self.libraries.is_empty() && self.opts.sampling.is_sampled() {
                    // Before the second library's probes exist: no call can nest unseen.
                    self.loaded.set_nesting()?;
                }
                self.loaded.attach(&a)?;
                let skips: Vec<String> = if entry_skip_enabled() {
                    a.entry_skips
                        .iter()
                        .map(|(f, n)| format!("{f} at +{n}"))
                        .collect()
                } else {
                    Vec::new()
                };
                log::info!(
                    "native: tracing {} in {} (PID {}){}",
                    a.functions
                        .iter()
                        .map(|(f, _)| *f)
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.path,
                    self.opts.pid,
                    if skips.is_empty() {
                        String::new()
                    } else {
                        format!("; entry probes {}", skips.join(", "))
                    }
                );
                self.libraries.push(a.path);
            }
        }
        Ok(mappings.len())
    }

    /// True while the traced process exists.
    pub fn alive(&self) -> bool {
        // A zombie (exited, not yet reaped by its parent) counts as gone.
        match std::fs::read_to_string(format!("/proc/{}/stat", self.opts.pid)) {
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => false,
        }
    }

    /// The capture stack id of kernel stack hash `hash` (symbolizing it when new).
    fn stack_for(&mut self, hash: u64, ips: &[u64]) -> u64 {
        if let Some(id) = self.stack_of_hash.get(&hash) {
            return *id;
        }
        let (frames, ok) = self.symbolizer.frames(ips);
        if !ok {
            self.unsymbolized += 1;
        }
        let id = stack_id(&frames);
        self.stack_rows.entry(id).or_insert_with(|| StackRow {
            stack_id: id,
            origin: "native".into(),
            frames,
        });
        self.stack_of_hash.insert(hash, id);
        id
    }

    /// Buffers one interval's rows into `w`: stacks, `native_outstanding`, `native_events`,
    /// `native_counters`, and a `native` profile with its samples (for the analyzer).
    pub fn write(
        &mut self,
        w: &mut SegmentWriter,
        time_ns: i64,
        run_id: &str,
        target: &str,
    ) -> NativeSnapshot {
        if self.alive() {
            if let Err(e) = self.rescan() {
                log::warn!("native: re-scanning the maps of PID {}: {e}", self.opts.pid);
            }
        }
        let (acct, new_stacks, events, not_written, bad) = {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            (
                s.acct.clone(),
                std::mem::take(&mut s.new_stacks),
                std::mem::take(&mut s.events),
                s.events_not_written,
                s.bad_events,
            )
        };
        for (hash, ips) in &new_stacks {
            self.stack_for(*hash, ips);
        }
        let pid = self.opts.pid;
        // Aggregate by capture stack id (several raw stacks can symbolize alike).
        let mut by_id: HashMap<u64, StackTotals> = HashMap::new();
        for (hash, t) in acct.stacks() {
            let id = self.stack_for(*hash, &[]);
            *by_id.entry(id).or_default() += *t;
        }
        let mut ids: Vec<u64> = by_id.keys().copied().collect();
        ids.sort_unstable();
        let prof_id = profile_id(target, "native", time_ns, NATIVE_SOURCE);
        let mut snap = NativeSnapshot::default();
        let mut samples = Vec::new();
        let mut activity = Vec::with_capacity(ids.len());
        for id in ids {
            let t = by_id[&id];
            // Counts are estimates (fractional under byte sampling), rounded per stack.
            let v = [
                t.outstanding_bytes,
                t.outstanding_count.rounded(),
                t.allocated_bytes,
                t.allocated_count.rounded(),
            ];
            snap.outstanding_bytes += v[0];
            let changed = self.last_allocated.insert(id, v[3]) != Some(v[3]);
            let idle = v[1] == 0 && v[0] == 0 && !changed;
            activity.push((id, !idle));
            if idle {
                continue;
            }
            if !w.has_stack(id) {
                if let Some(row) = self.stack_rows.get(&id) {
                    w.add_stack(row.clone());
                }
            }
            w.add_native_outstanding(NativeOutstandingRow {
                time_ns,
                pid,
                run_id: run_id.into(),
                stack_id: id,
                outstanding_bytes: v[0],
                outstanding_count: v[1],
                allocated_bytes: v[2],
                allocated_count: v[3],
            });
            snap.stacks += 1;
            samples.push(SampleRow {
                profile_id: prof_id,
                time_ns,
                run_id: run_id.into(),
                kind: "native".into(),
                stack_id: id,
                values: SampleValues {
                    inuse_objects: Some(v[1]),
                    inuse_bytes: Some(v[0]),
                    alloc_objects: Some(v[3]),
                    alloc_bytes: Some(v[2]),
                    goroutines: None,
                },
                labels: None,
            });
        }
        w.add_profile(ProfileRow {
            profile_id: prof_id,
            time_ns,
            kind: "native".into(),
            target: target.into(),
            pid: Some(pid),
            run_id: run_id.into(),
            period: self.opts.sampling.period(),
            period_type: "space/bytes".into(),
            sample_types: vec![
                "inuse_objects/count".into(),
                "inuse_space/bytes".into(),
                "alloc_objects/count".into(),
                "alloc_space/bytes".into(),
            ],
            duration_ns: 0,
            scrape_ms: None,
            source: NATIVE_SOURCE.into(),
            sample_count: samples.len() as u32,
        });
        for s in samples {
            w.add_sample(s);
        }
        for e in &events {
            let id = self.stack_for(e.stack_hash, &e.ips);
            let weight = self.opts.sampling.weight(e.size, e.weight);
            if !w.has_stack(id) {
                if let Some(row) = self.stack_rows.get(&id) {
                    w.add_stack(row.clone());
                }
            }
            w.add_native_event(NativeEventRow {
                time_ns: e.ts as i64 + self.clock_offset_ns,
                pid,
                tid: e.tid,
                run_id: run_id.into(),
                kind: if e.kind == EventKind::Alloc {
                    "alloc"
                } else {
                    "free"
                }
                .into(),
                address: e.addr,
                size: e.size,
                weight: e.weight,
                stack_id: id,
                alloc_time_ns: (e.kind == EventKind::Free)
                    .then(|| e.alloc_ts as i64 + self.clock_offset_ns),
                weight_bytes: Some(weight.bytes),
                weight_count: Some(weight.count.as_f64()),
            });
        }
        snap.events = events.len();
        let kernel = self.loaded.counters().unwrap_or([0; KERNEL_COUNTERS]);
        let mut values = vec![0u64; NATIVE_COUNTERS.len()];
        values[..KERNEL_COUNTERS].copy_from_slice(&kernel);
        let mut set = |name: &str, v: u64| {
            if let Some(i) = NATIVE_COUNTERS.iter().position(|c| c.name == name) {
                values[i] = v;
            }
        };
        set("bad_events", bad);
        set("events_not_written", not_written);
        set("unsymbolized_stacks", self.unsymbolized);
        snap.losses = [
            "lost_alloc_events",
            "lost_free_events",
            "table_full",
            "stash_full",
            "bad_events",
        ]
        .iter()
        .filter_map(|n| NATIVE_COUNTERS.iter().position(|c| c.name == *n))
        .map(|i| values[i])
        .sum();
        self.evict_idle(activity, &acct);
        w.add_native_counters(NativeCountersRow {
            time_ns,
            pid,
            run_id: run_id.into(),
            values,
            sample_every: self.opts.sampling.sample_every(),
            probes: self.loaded.probes(),
            libraries: self.libraries.join(" "),
            sample_bytes: Some(self.opts.sampling.sample_bytes()),
            stacks_evicted: Some(self.evicted),
        });
        snap
    }

    /// Forgets the stacks idle for [`IDLE_INTERVALS_BEFORE_EVICTION`] intervals: their
    /// rows, symbols and totals, here and in the reader's tables (which then treat the stack
    /// as new if it allocates again). `acct` is the snapshot the interval was written from;
    /// a stack with an event since then is kept.
    fn evict_idle(&mut self, activity: Vec<(u64, bool)>, acct: &Accounting) {
        let ids = idle_to_evict(
            &mut self.idle,
            activity.into_iter(),
            IDLE_INTERVALS_BEFORE_EVICTION,
        );
        if ids.is_empty() {
            return;
        }
        let gone: HashSet<u64> = ids.into_iter().collect();
        let hashes: Vec<u64> = self
            .stack_of_hash
            .iter()
            .filter(|(_, id)| gone.contains(id))
            .map(|(h, _)| *h)
            .collect();
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut kept = HashSet::new();
        for h in &hashes {
            let seen = acct.stacks().get(h).copied().unwrap_or_default();
            if s.acct.forget_if_unchanged(*h, &seen) {
                s.known_stacks.remove(h);
                self.stack_of_hash.remove(h);
            } else if let Some(id) = self.stack_of_hash.get(h) {
                kept.insert(*id);
            }
        }
        drop(s);
        for id in gone.difference(&kept) {
            self.stack_rows.remove(id);
            self.last_allocated.remove(id);
            self.evicted += 1;
        }
    }

    /// Stops the reader thread after it drained what the kernel had buffered.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Drop for NativeTracer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_loop(
    mut ring: RingBuf<MapData>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    write_events: bool,
) {
    let fd = ring.as_raw_fd();
    let mut batch: Vec<Result<Event, ()>> = Vec::with_capacity(4096);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        while let Some(item) = ring.next() {
            batch.push(Event::parse(&item).map_err(|_| ()));
            if batch.len() >= 4096 {
                break;
            }
        }
        if stopping {
            // Final drain: everything the kernel buffered before stop, then leave.
            while let Some(item) = ring.next() {
                batch.push(Event::parse(&item).map_err(|_| ()));
            }
        }
        if !batch.is_empty() {
            let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
            for e in batch.drain(..) {
                let Ok(e) = e else {
                    s.bad_events += 1;
                    continue;
                };
                s.acct.apply(&e);
                if e.kind == EventKind::Alloc && s.known_stacks.insert(e.stack_hash) {
                    s.new_stacks.push((e.stack_hash, e.ips.clone()));
                }
                if write_events {
                    if s.events.len() < MAX_EVENTS_PER_INTERVAL {
                        let mut e = e;
                        e.ips = Vec::new();
                        s.events.push(e);
                    } else {
                        s.events_not_written += 1;
                    }
                }
            }
        }
        if stopping {
            break;
        }
    }
}

#[cfg(test)]
mod eviction_tests {
    use super::*;

    #[test]
    fn stacks_idle_for_the_limit_are_evicted_and_activity_resets_the_count() {
        let mut idle = HashMap::new();
        // Stack 1 stays idle, stack 2 is active every third interval.
        let mut evicted = Vec::new();
        for i in 0..5u32 {
            let act = [(1, false), (2, i % 3 == 0)];
            evicted.extend(idle_to_evict(&mut idle, act.into_iter(), 3));
        }
        assert_eq!(evicted, vec![1]);
        // Evicted after the third idle interval; its count starts over (2 since).
        assert_eq!(idle.get(&1), Some(&2), "an evicted stack starts over");
        assert_eq!(idle.get(&2), Some(&1));
    }
}
