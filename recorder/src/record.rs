//! The recording loop: every interval, scrape the target's profiles and MemStats, read
//! /proc, attribute everything to a run, and buffer it in the capture's segment writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use leakscope_capture::lock::{CaptureLock, LOCK_FILE};
use leakscope_capture::manifest::{Manifest, Session, MANIFEST_FILE};
use leakscope_capture::pprof::{self, DecodedProfile, ProfileKind};
use leakscope_capture::rows::{ProcessRow, ScrapeRow};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};

use crate::fetch::{Attempt, Fetched, Fetcher};
use crate::ingest::{write_profile, ProfileMeta};
use crate::memstats::{self, MemStats};
use crate::native::{NativeOptions, NativeTracer};
use crate::procfs;
use crate::retain::Retention;
use crate::runs::{Observation, RunTracker};
use crate::target::Target;
use crate::{host_name, implausible_time, now_ns, rfc3339, RECORDER_VERSION};

/// Offset between the target's clock (a profile's own time) and this machine's beyond which
/// the recorder warns that the target's clock is skewed.
pub const SKEW_WARN_NS: i64 = 60 * 1_000_000_000;

/// Everything `record` needs.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// What to scrape (None: `--native` alone, nothing is scraped).
    pub target: Option<Target>,
    /// Capture directory.
    pub out: PathBuf,
    /// Time between scrapes.
    pub interval: Duration,
    /// Stop after this long (None: until SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// PID of the target when given.
    pub pid: Option<u32>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Retention limit.
    pub retain: Option<Retention>,
    /// Segment rotation.
    pub rotation: RotationPolicy,
    /// Profiles to scrape.
    pub profiles: Vec<ProfileKind>,
    /// Ask the target to run a GC before each heap profile (`?gc=1`).
    pub gc: bool,
    /// Start even if the target does not answer yet.
    pub wait: bool,
    /// Options for the manifest (header values redacted).
    pub manifest_options: serde_json::Value,
    /// Trace native (C) allocations of a PID with eBPF (`--native`).
    pub native: Option<NativeOptions>,
    /// `--upload`: woken after each commit; retention keeps the sets not uploaded yet.
    pub upload: Option<crate::upload::UploadHandle>,
    /// `--label KEY=VALUE`: labels added to the manifest.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// What a recording did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Profiles written, by kind.
    pub profiles: HashMap<&'static str, u64>,
    /// Scrape attempts that failed.
    pub failed_attempts: u64,
    /// Process samples written.
    pub process_rows: u64,
    /// Runs (process incarnations) seen.
    pub runs: u32,
    /// Segment files committed.
    pub segments: usize,
    /// Native snapshots written (`--native`).
    pub native_snapshots: u64,
    /// Native losses counted by the tracer at the end (lost events, full tables).
    pub native_losses: u64,
}

/// Consecutive failed segment commits tolerated before recording stops.
const MAX_COMMIT_FAILURES: u32 = 3;

struct Recorder {
    opts: RecordOptions,
    target_name: String,
    fetcher: Fetcher,
    writer: SegmentWriter,
    runs: RunTracker,
    pid: Option<u32>,
    pid_start: Option<i64>,
    next_pid_search: u32,
    leak_served: Option<bool>,
    vars_served: Option<bool>,
    last_ok: HashMap<String, bool>,
    commit_failures: u32,
    summary: Summary,
    native: Option<NativeTracer>,
    /// Per endpoint: whether the last profile's time was skewed or implausible.
    clock_off: HashMap<String, bool>,
    /// The capture's lock, held while recording.
    _lock: Option<CaptureLock>,
}

/// A fetched profile before its run is known.
struct Scraped {
    kind: ProfileKind,
    endpoint: String,
    fetched: Fetched,
    profile: Option<DecodedProfile>,
    parse_error: Option<String>,
}

/// Records until the duration ends or `stop` fires; the open segment is always committed.
pub fn run(opts: RecordOptions, stop: Receiver<()>) -> anyhow::Result<Summary> {
    let headers = opts
        .target
        .as_ref()
        .map(|t| t.headers().to_vec())
        .unwrap_or_default();
    let fetcher = Fetcher::new(
        opts.timeout,
        opts.retries,
        Duration::from_millis(250),
        headers,
    );
    let target_name = target_name(&opts);
    // Native tracing starts first: its errors (privileges, PID, allocator) leave nothing behind.
    let native = match &opts.native {
        Some(n) => Some(NativeTracer::start(n.clone())?),
        None => None,
    };
    // Directories this run creates; removed again (while empty) when startup fails.
    let created: Vec<PathBuf> = opts
        .out
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    let lock = match start(&opts, &fetcher, &target_name) {
        Ok(lock) => lock,
        Err(e) => {
            for dir in &created {
                if std::fs::remove_dir(dir).is_err() {
                    break; // not empty (or not ours to remove): keep it and its parents
                }
            }
            return Err(e);
        }
    };
    let mut writer = SegmentWriter::new(&opts.out, opts.rotation);
    writer.set_low_memory_encoding();
    let mut rec = Recorder {
        pid: opts.pid,
        opts,
        target_name,
        fetcher,
        writer,
        runs: RunTracker::new(),
        pid_start: None,
        next_pid_search: 0,
        leak_served: None,
        vars_served: None,
        last_ok: HashMap::new(),
        commit_failures: 0,
        summary: Summary::default(),
        native,
        clock_off: HashMap::new(),
        _lock: Some(lock),
    };
    log::info!(
        "recording {} every {:?} into {}{}",
        rec.target_name,
        rec.opts.interval,
        rec.opts.out.display(),
        rec.opts
            .duration
            .map(|d| format!(" for {d:?}"))
            .unwrap_or_default()
    );
    let result = rec.run_loop(&stop);
    if let Some(mut tracer) = rec.native.take() {
        // Drain what the kernel still buffers, then write the last snapshot.
        tracer.stop();
        let t = now_ns();
        let run_id = rec
            .runs
            .current()
            .map(str::to_string)
            .unwrap_or_else(|| format!("pid{}", tracer.pid()));
        let snap = tracer.write(&mut rec.writer, t, &run_id, &rec.target_name);
        rec.summary.native_snapshots += 1;
        rec.summary.native_losses = snap.losses;
    }
    let final_commit = rec.commit(true);
    result?;
    final_commit?;
    rec.summary.runs = rec.runs.runs();
    Ok(rec.summary)
}

/// Checks the capture directory and (without `--wait`) the target, then opens the capture.
/// The name stored as `target`: the base URL, or `pid:PID` for `--native` alone.
fn target_name(opts: &RecordOptions) -> String {
    match (&opts.target, &opts.native) {
        (Some(t), _) => t.to_string(),
        (None, Some(n)) => format!("pid:{}", n.pid),
        (None, None) => "unknown".into(),
    }
}

/// Probes the target, then takes the capture's lock (held until recording ends) and opens
/// the capture. The lock is taken right before the manifest is written, so a directory
/// holds a lock file without a manifest only for that instant (a `watch` started on a
/// fresh directory during a slow probe still sees it empty); a second writer fails there.
fn start(
    opts: &RecordOptions,
    fetcher: &Fetcher,
    target_name: &str,
) -> anyhow::Result<CaptureLock> {
    check_writable(&opts.out)?;
    if let (Some(target), false) = (&opts.target, opts.wait) {
        let url = target.profile_url("heap", "");
        let probe = fetcher.get(
            &url,
            Instant::now() + opts.timeout * (opts.retries + 1) + Duration::from_secs(2),
        );
        match (&probe.body, probe.error()) {
            (Some(body), _) => {
                pprof::parse(body, Some(ProfileKind::Heap))
                    .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            }
            (None, Some(err)) => {
                bail!("{url}: {err} (use --wait to start before the target is up)")
            }
            (None, None) => bail!("{url}: no response"),
        }
    }
    let session = Session {
        mode: "record".into(),
        recorder_version: RECORDER_VERSION.into(),
        target: target_name.to_string(),
        host: host_name(),
        start_time: rfc3339(now_ns()),
        options: opts.manifest_options.clone(),
    };
    let lock = CaptureLock::acquire(&opts.out)?;
    match Manifest::open_locked(&lock, session) {
        Ok(mut m) => m.add_labels(&opts.out, &opts.labels)?,
        Err(e) => {
            if !opts.out.join(MANIFEST_FILE).exists() {
                let _ = std::fs::remove_file(opts.out.join(LOCK_FILE)); // ours, and no capture
            }
            return Err(e.into());
        }
    }
    Ok(lock)
}

fn check_writable(out: &Path) -> anyhow::Result<()> {
    leakscope_capture::durable::create_dir_all(out)
        .with_context(|| format!("cannot create capture directory {}", out.display()))?;
    let probe = out.join(".leakscope-write-test");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("capture directory {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The tick after `next`, skipping ticks missed while a slow target answered (computed,
/// not looped: a tiny interval after a long stall costs nothing). `None` past the end of
/// the clock.
fn next_tick(next: Instant, interval: Duration, now: Instant) -> Option<Instant> {
    let t = next.checked_add(interval)?;
    if t > now {
        return Some(t);
    }
    let step = interval.as_nanos().max(1);
    let skip = now.duration_since(t).as_nanos() / step + 1;
    let add = u64::try_from(skip.saturating_mul(step)).ok()?;
    t.checked_add(Duration::from_nanos(add))
}

impl Recorder {
    fn run_loop(&mut self, stop: &Receiver<()>) -> anyhow::Result<()> {
        let interval = self.opts.interval;
        let started = Instant::now();
        // A duration past the end of the clock is no end.
        let end = self.opts.duration.and_then(|d| started.checked_add(d));
        let mut next = started;
        loop {
            let now = Instant::now();
            let wait = next.saturating_duration_since(now);
            match stop.recv_timeout(wait) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    log::info!("stopping: committing the open segment");
                    return Ok(());
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if end.is_some_and(|e| Instant::now() >= e) {
                return Ok(());
            }
            self.tick(next.checked_add(interval).unwrap_or(next))?;
            if self.opts.target.is_none() && self.native.as_ref().is_some_and(|t| !t.alive()) {
                log::info!(
                    "process {} exited: stopping",
                    self.opts.native.as_ref().map_or(0, |n| n.pid)
                );
                return Ok(());
            }
            match next_tick(next, interval, Instant::now()) {
                Some(t) => next = t,
                None => return Ok(()), // past the end of the clock
            }
        }
    }

    /// Commits the open segment set; tolerates a few consecutive failures (e.g. a full disk
    /// that gets space back) unless `last`.
    fn commit(&mut self, last: bool) -> anyhow::Result<()> {
        match self.writer.rotate() {
            Ok(files) => {
                self.summary.segments += files.len();
                self.commit_failures = 0;
                let upload = self.opts.upload.as_ref();
                if let Some(u) = upload {
                    u.notify();
                }
                if let Some(r) = self.opts.retain {
                    let keep = |stem: &str| upload.is_some_and(|u| u.keep(stem));
                    match r.apply_keeping(&self.opts.out, now_ns(), &keep) {
                        Ok(p) if p.segment_sets > 0 => {
                            log::info!(
                                "retention removed {} segment sets ({} bytes)",
                                p.segment_sets,
                                p.bytes
                            )
                        }
                        Ok(_) => {}
                        Err(e) => log::warn!("retention: {e}"),
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.commit_failures += 1;
                if last || self.commit_failures >= MAX_COMMIT_FAILURES {
                    return Err(anyhow::anyhow!("writing capture segment failed: {e}"));
                }
                log::error!("writing capture segment failed (will retry): {e}");
                Ok(())
            }
        }
    }

    /// True when the scrape target is on this machine (its PID can be found).
    fn is_local(&self) -> bool {
        self.opts.target.as_ref().is_some_and(|t| t.is_local())
    }

    fn refresh_pid(&mut self) {
        if let Some(pid) = self.pid {
            let start = procfs::process_start_ns(pid);
            let same = procfs::alive(pid) && (self.pid_start.is_none() || start == self.pid_start);
            if same {
                self.pid_start = start;
                return;
            }
            log::info!("process {pid} is gone");
            self.pid = None;
            self.pid_start = None;
        }
        if !self.is_local() {
            return;
        }
        if self.next_pid_search > 0 {
            self.next_pid_search -= 1;
            return;
        }
        let Some(port) = self.opts.target.as_ref().map(|t| t.port()) else {
            return;
        };
        match procfs::find_listening_pid(port) {
            Some(pid) => {
                log::info!("target process is PID {pid}");
                self.pid = Some(pid);
                self.pid_start = procfs::process_start_ns(pid);
            }
            None => self.next_pid_search = 5,
        }
    }

    /// Attributes observation `o` to a run. When it starts a run of a local target, the PID
    /// is looked up again right away (not at the next periodic search) so that a restarted
    /// process's run is named after its new PID and start time, not `remote`.
    fn observe_run(&mut self, mut o: Observation) -> (String, bool) {
        if self.is_local() && self.runs.is_restart(&o) {
            self.next_pid_search = 0;
            self.refresh_pid();
            o.pid = self.pid;
            o.start_ns = self.pid_start;
        }
        self.runs.observe(o)
    }

    /// Sets the row's PID and fills its /proc columns; true when they could be read.
    fn read_proc(
        &mut self,
        t0: i64,
        process: &mut ProcessRow,
        scrapes: &mut Vec<ScrapeRow>,
    ) -> bool {
        process.pid = self.pid;
        process.process_start_ns = self.pid_start;
        let Some(pid) = self.pid else { return false };
        let started = Instant::now();
        let read = procfs::read_stats(pid);
        let error = read
            .as_ref()
            .err()
            .map(|e| format!("/proc/{pid}/status: {e}"));
        let ok = read.is_ok();
        for (col, v) in read.unwrap_or_default() {
            process.set(col, v);
        }
        scrapes.extend(self.scrape_rows(
            "proc",
            &format!("/proc/{pid}"),
            &[Attempt {
                start_ns: t0,
                duration_ms: started.elapsed().as_secs_f64() * 1e3,
                status: None,
                bytes: None,
                error,
            }],
            None,
        ));
        ok
    }

    fn note(&mut self, key: &str, ok: bool, error: Option<&str>) {
        let prev = self.last_ok.insert(key.to_string(), ok);
        match (prev, ok, error) {
            (Some(true) | None, false, Some(err)) => log::warn!("{key}: {err}"),
            (Some(false), true, _) => log::info!("{key}: ok again"),
            _ => {}
        }
    }

    fn scrape_rows(
        &mut self,
        kind: &str,
        endpoint: &str,
        attempts: &[Attempt],
        final_error: Option<String>,
    ) -> Vec<ScrapeRow> {
        let n = attempts.len();
        attempts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let error = if i + 1 == n && final_error.is_some() {
                    final_error.clone()
                } else {
                    a.error.clone()
                };
                if error.is_some() {
                    self.summary.failed_attempts += 1;
                }
                ScrapeRow {
                    time_ns: a.start_ns,
                    target: self.target_name.clone(),
                    endpoint: endpoint.to_string(),
                    kind: kind.to_string(),
                    attempt: i as u32 + 1,
                    ok: error.is_none(),
                    http_status: a.status.map(i32::from),
                    error,
                    duration_ms: a.duration_ms,
                    bytes: a.bytes,
                    run_id: None,
                    profile_id: None,
                    clock_offset_ms: None,
                }
            })
            .collect()
    }

    fn fetch_memstats(
        &mut self,
        deadline: Instant,
        scrapes: &mut Vec<ScrapeRow>,
    ) -> Option<(MemStats, &'static str)> {
        let target = self.opts.target.clone()?;
        if self.vars_served != Some(false) {
            let url = target.vars_url();
            let f = self.fetcher.get(&url, deadline);
            let parsed = f.body.as_deref().map(memstats::parse_vars);
            let final_error = match &parsed {
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            let endpoint = target.vars_path().to_string();
            scrapes.extend(self.scrape_rows(
                "memstats",
                &endpoint,
                &f.attempts,
                final_error.clone(),
            ));
            // Only a definitive answer means there is no expvar: a body that is not expvar
            // MemStats, or a client error such as 404. A transport error, timeout or 5xx (e.g.
            // with --wait before the target is up) tries /debug/vars again next tick.
            let definitive = matches!(parsed, Some(Err(_)))
                || f.status()
                    .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
            match parsed {
                Some(Ok(ms)) => {
                    self.vars_served = Some(true);
                    return Some((ms, "vars"));
                }
                _ if self.vars_served.is_none() && definitive => {
                    log::info!(
                        "{url} has no MemStats ({}); using heap?debug=1",
                        final_error.as_deref().or(f.error()).unwrap_or("?")
                    );
                    self.vars_served = Some(false);
                }
                _ => {
                    self.note(&url, false, final_error.as_deref().or(f.error()));
                    return None;
                }
            }
        }
        let url = target.profile_url("heap", "debug=1");
        let f = self.fetcher.get(&url, deadline);
        let parsed = f.body.as_deref().map(memstats::parse_heap_debug1);
        let final_error = match &parsed {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        let endpoint = target.profile_path("heap", "debug=1");
        scrapes.extend(self.scrape_rows("memstats", &endpoint, &f.attempts, final_error.clone()));
        let ok = matches!(parsed, Some(Ok(_)));
        self.note(&url, ok, final_error.as_deref().or(f.error()));
        parsed.and_then(Result::ok).map(|ms| (ms, "heap_debug1"))
    }

    fn fetch_profile(&mut self, kind: ProfileKind, deadline: Instant) -> Option<Scraped> {
        let target = self.opts.target.clone()?;
        let (name, query) = match kind {
            ProfileKind::Heap => ("heap", if self.opts.gc { "gc=1" } else { "" }),
            ProfileKind::Goroutine => ("goroutine", ""),
            ProfileKind::GoroutineLeak => {
                if self.leak_served == Some(false) {
                    return None;
                }
                ("goroutineleak", "")
            }
        };
        let url = target.profile_url(name, query);
        let endpoint = target.profile_path(name, query);
        let fetched = self.fetcher.get(&url, deadline);
        if kind == ProfileKind::GoroutineLeak && self.leak_served.is_none() {
            // Only a 404 means "not served"; without an answer (target down) ask again next tick.
            if fetched.status() == Some(404) {
                log::info!("{url}: not served (needs Go 1.26 with GOEXPERIMENT=goroutineleakprofile, or Go 1.27+)");
                self.leak_served = Some(false);
            } else if fetched.body.is_some() {
                self.leak_served = Some(true);
            }
        }
        let (profile, parse_error) =
            match fetched.body.as_deref().map(|b| pprof::parse(b, Some(kind))) {
                Some(Ok(p)) => (Some(p), None),
                Some(Err(e)) => (None, Some(format!("not a valid profile: {e}"))),
                None => (None, None),
            };
        self.note(
            &url,
            profile.is_some(),
            parse_error.as_deref().or(fetched.error()),
        );
        Some(Scraped {
            kind,
            endpoint,
            fetched,
            profile,
            parse_error,
        })
    }

    fn tick(&mut self, deadline: Instant) -> anyhow::Result<()> {
        let t0 = now_ns();
        let mut scrapes = Vec::new();
        self.refresh_pid();
        let mut process = ProcessRow::new(t0, &self.target_name);
        let mut have_proc = self.read_proc(t0, &mut process, &mut scrapes);
        let ms = self.fetch_memstats(deadline, &mut scrapes);
        let kinds = self.opts.profiles.clone();
        let scraped: Vec<Scraped> = kinds
            .into_iter()
            .filter_map(|k| self.fetch_profile(k, deadline))
            .collect();

        let heap_alloc_total = scraped
            .iter()
            .find(|s| s.kind == ProfileKind::Heap)
            .and_then(|s| s.profile.as_ref())
            .map(|p| p.total(|v| v.alloc_bytes));
        let (run_id, new_run) = self.observe_run(Observation {
            time_ns: t0,
            pid: self.pid,
            start_ns: self.pid_start,
            total_alloc: ms
                .as_ref()
                .and_then(|(m, _)| memstats::get(m, "go_total_alloc_bytes")),
            num_gc: ms.as_ref().and_then(|(m, _)| memstats::get(m, "go_num_gc")),
            profile_alloc_total: heap_alloc_total,
        });
        if new_run && self.runs.runs() > 1 {
            log::info!("target restarted: new run {run_id}");
            self.leak_served = None;
            self.vars_served = None;
        }
        if self.pid != process.pid {
            // The PID was found again for the new run: /proc figures of that process.
            process = ProcessRow::new(t0, &self.target_name);
            have_proc = self.read_proc(t0, &mut process, &mut scrapes);
        }
        if let Some((ms, source)) = &ms {
            for (col, v) in ms {
                process.set(col, *v);
            }
            process.memstats_source = Some(source.to_string());
        }
        let process = (have_proc || ms.is_some()).then_some(process);
        self.store(t0, process, scraped, scrapes, &run_id)?;
        self.store_native(&run_id)
    }

    /// Buffers the native tracer's rows for this tick (snapshot time: now).
    fn store_native(&mut self, run_id: &str) -> anyhow::Result<()> {
        if self.native.is_none() {
            return Ok(());
        }
        let t = now_ns();
        if self.writer.should_rotate_now() {
            self.commit(false)?;
        }
        let Some(tracer) = self.native.as_mut() else {
            return Ok(());
        };
        // With a scrape target the recording goes on after the traced process exits: the
        // tracer drains what is left, writes its last snapshot and stops.
        let exited = self.opts.target.is_some() && !tracer.alive();
        if exited {
            tracer.stop();
        }
        let snap = tracer.write(&mut self.writer, t, run_id, &self.target_name);
        if exited {
            log::info!(
                "native: process {} exited: native tracing stopped",
                tracer.pid()
            );
            self.native = None;
        }
        self.summary.native_snapshots += 1;
        self.summary.native_losses = snap.losses;
        log::debug!(
            "native: {} bytes outstanding over {} stacks, {} events, {} losses",
            snap.outstanding_bytes,
            snap.stacks,
            snap.events,
            snap.losses
        );
        Ok(())
    }

    /// Buffers one tick's rows. Before each row the open segment set is committed when, by
    /// this machine's clock, it is old or big enough or the UTC date changed; the rows'
    /// own times (a profile's is the target's clock) never decide it.
    fn store(
        &mut self,
        t0: i64,
        process: Option<ProcessRow>,
        scraped: Vec<Scraped>,
        mut scrapes: Vec<ScrapeRow>,
        run_id: &str,
    ) -> anyhow::Result<()> {
        let mut may_commit = true;
        if let Some(mut process) = process {
            self.rotate_before(&mut may_commit)?;
            process.run_id = Some(run_id.to_string());
            self.writer.add_process(process);
            self.summary.process_rows += 1;
        }
        for s in scraped {
            let mut profile_id = None;
            let mut clock_offset_ms = None;
            if let Some(p) = &s.profile {
                let requested = s.fetched.attempts.last().map_or(t0, |a| a.start_ns);
                let (time_ns, offset_ns) = self.profile_time(&s.endpoint, p.time_ns, requested);
                clock_offset_ms = offset_ns.map(|o| o as f64 / 1e6);
                self.rotate_before(&mut may_commit)?;
                let scrape_ms = s.fetched.attempts.last().map(|a| a.duration_ms);
                let meta = ProfileMeta {
                    time_ns,
                    target: &self.target_name,
                    pid: self.pid,
                    run_id,
                    scrape_ms,
                    source: &s.endpoint,
                };
                profile_id = Some(write_profile(&mut self.writer, p, &meta));
                *self.summary.profiles.entry(s.kind.as_str()).or_default() += 1;
            }
            let mut rows = self.scrape_rows(
                s.kind.as_str(),
                &s.endpoint,
                &s.fetched.attempts,
                s.parse_error,
            );
            if let Some(last) = rows.last_mut() {
                last.profile_id = profile_id;
                last.clock_offset_ms = clock_offset_ms;
            }
            scrapes.extend(rows);
        }
        for mut row in scrapes {
            self.rotate_before(&mut may_commit)?;
            row.run_id = Some(run_id.to_string());
            self.writer.add_scrape(row);
        }
        // Commit now, not a tick later, once the set is old or big enough.
        self.rotate_before(&mut may_commit)
    }

    /// The `time` stored for a profile whose own time is `profile_ns` (0: none), requested
    /// at `requested_ns` (this machine's clock), and the target's clock offset. A profile
    /// without a time, or with an implausible one (before 2000, more than a day ahead), gets
    /// the request's time; a skewed target keeps its own times. Both are warned about once
    /// per endpoint, and the offset is kept in `scrapes.clock_offset_ms`.
    fn profile_time(
        &mut self,
        endpoint: &str,
        profile_ns: i64,
        requested_ns: i64,
    ) -> (i64, Option<i64>) {
        if profile_ns == 0 {
            return (requested_ns, None);
        }
        let offset = profile_ns.saturating_sub(requested_ns);
        let implausible = implausible_time("time_nanos", profile_ns, requested_ns);
        let skewed = offset.saturating_abs() > SKEW_WARN_NS;
        let was_off = self
            .clock_off
            .insert(endpoint.to_string(), implausible.is_some() || skewed);
        let url = format!("{}{endpoint}", self.target_name);
        match (&implausible, skewed, was_off) {
            (Some(why), _, Some(false) | None) => log::warn!(
                "{url}: the profile's {why}; storing this machine's time of the request instead"
            ),
            (None, true, Some(false) | None) => log::warn!(
                "{url}: the target's clock is {:.1} s {} this machine's; profile times are the target's (see scrapes.clock_offset_ms)",
                offset.saturating_abs() as f64 / 1e9,
                if offset > 0 { "ahead of" } else { "behind" }
            ),
            (None, false, Some(true)) => log::info!("{url}: the target's clock agrees again"),
            _ => {}
        }
        match implausible {
            Some(_) => (requested_ns, Some(offset)),
            None => (profile_ns, Some(offset)),
        }
    }

    /// Commits the open set when it is old or big enough, or the UTC date changed, by this
    /// machine's clock; after a failed commit (`may_commit` turns false) the retry waits for
    /// the next tick.
    fn rotate_before(&mut self, may_commit: &mut bool) -> anyhow::Result<()> {
        if *may_commit && self.writer.should_rotate_now() {
            self.commit(false)?;
            *may_commit = self.commit_failures == 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakscope_capture::read::read_segment;
    use leakscope_capture::schema::Table;
    use leakscope_capture::segment::list_segments;
    use std::io::Write;
    use std::net::TcpListener;

    const SECOND: i64 = 1_000_000_000;

    fn options(target: &str, out: &Path) -> RecordOptions {
        RecordOptions {
            target: Some(Target::parse(target, "/debug/pprof", "/debug/vars", &[]).unwrap()),
            out: out.to_path_buf(),
            interval: Duration::from_secs(1),
            duration: None,
            pid: None,
            timeout: Duration::from_secs(1),
            retries: 0,
            retain: None,
            rotation: RotationPolicy::default(),
            profiles: vec![ProfileKind::Heap],
            gc: false,
            wait: false,
            manifest_options: serde_json::json!({}),
            native: None,
            upload: None,
            labels: Default::default(),
        }
    }

    fn recorder(target: &str, out: &Path) -> Recorder {
        let opts = options(target, out);
        Recorder {
            target_name: target_name(&opts),
            fetcher: Fetcher::new(
                opts.timeout,
                opts.retries,
                Duration::from_millis(1),
                Vec::new(),
            ),
            writer: SegmentWriter::new(out, opts.rotation),
            runs: RunTracker::new(),
            pid: None,
            pid_start: None,
            next_pid_search: 0,
            leak_served: None,
            vars_served: None,
            last_ok: HashMap::new(),
            commit_failures: 0,
            summary: Summary::default(),
            native: None,
            clock_off: HashMap::new(),
            _lock: None,
            opts,
        }
    }

    /// A local URL nothing listens on.
    fn refused_url() -> String {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("http://127.0.0.1:{port}")
    }

    /// A local URL that answers every request with 404.
    fn not_found_url() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = std::io::Read::read(&mut s, &mut [0u8; 2048]);
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        format!("http://{addr}")
    }

    fn scrape(time_ns: i64) -> ScrapeRow {
        ScrapeRow {
            time_ns,
            target: "t".into(),
            endpoint: "/debug/pprof/heap".into(),
            kind: "heap".into(),
            attempt: 1,
            ok: true,
            http_status: Some(200),
            error: None,
            duration_ms: 1.0,
            bytes: Some(1),
            run_id: None,
            profile_id: None,
            clock_offset_ms: None,
        }
    }

    #[test]
    fn rows_after_midnight_land_in_the_new_date() {
        let before = 1_763_942_399 * SECOND; // 2025-11-23T23:59:59Z
        let after = before + 2 * SECOND;
        let dir = tempfile::tempdir().unwrap();
        let mut rec = recorder(&refused_url(), dir.path());
        let clock = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(before));
        let c = clock.clone();
        rec.writer.set_clock(std::sync::Arc::new(move || {
            c.load(std::sync::atomic::Ordering::SeqCst)
        }));
        rec.writer.add_process(ProcessRow::new(before, "t"));
        clock.store(after, std::sync::atomic::Ordering::SeqCst);
        rec.store(
            after,
            Some(ProcessRow::new(after, "t")),
            Vec::new(),
            vec![scrape(after)],
            "r",
        )
        .unwrap();
        rec.commit(true).unwrap();
        let rows_by_date = |table| {
            let mut by_date = std::collections::BTreeMap::new();
            for seg in list_segments(dir.path(), table).unwrap() {
                let date = seg
                    .path
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let rows: usize = read_segment(&seg.path)
                    .unwrap()
                    .iter()
                    .map(|b| b.num_rows())
                    .sum();
                *by_date.entry(date).or_insert(0) += rows;
            }
            by_date.into_iter().collect::<Vec<_>>()
        };
        let day = |d: &str, n| (format!("date=2025-11-{d}"), n);
        assert_eq!(rows_by_date(Table::Process), [day("23", 1), day("24", 1)]);
        assert_eq!(rows_by_date(Table::Scrapes), [day("24", 1)]);
    }

    #[test]
    fn missed_ticks_are_skipped_without_looping_or_overflowing() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(10);
        // One nanosecond ticks after a 10 s stall: the next tick is just after now.
        let next = next_tick(t0, Duration::from_nanos(1), now).unwrap();
        assert!(next > now && next <= now + Duration::from_nanos(1));
        assert_eq!(
            next_tick(t0, Duration::from_secs(3), now),
            Some(t0 + Duration::from_secs(12))
        );
        assert_eq!(
            next_tick(t0, Duration::from_secs(3), t0),
            Some(t0 + Duration::from_secs(3))
        );
        assert_eq!(next_tick(t0, Duration::MAX, now), None);
    }

    #[test]
    fn only_a_definitive_answer_decides_what_the_target_serves() {
        let dir = tempfile::tempdir().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Target not up yet (--wait): nothing is decided, /debug/vars is asked again next tick.
        let mut rec = recorder(&refused_url(), dir.path());
        let mut scrapes = Vec::new();
        assert!(rec.fetch_memstats(deadline, &mut scrapes).is_none());
        assert_eq!(
            rec.vars_served, None,
            "a refused connection switched MemStats to heap?debug=1"
        );
        assert_eq!(scrapes.len(), 1);
        assert!(rec
            .fetch_profile(ProfileKind::GoroutineLeak, deadline)
            .is_some());
        assert_eq!(
            rec.leak_served, None,
            "a refused connection decided goroutineleak"
        );
        // A 404 is definitive.
        let mut rec = recorder(&not_found_url(), dir.path());
        rec.fetch_memstats(deadline, &mut scrapes);
        assert_eq!(rec.vars_served, Some(false));
        rec.fetch_profile(ProfileKind::GoroutineLeak, deadline);
        assert_eq!(rec.leak_served, Some(false));
        assert!(rec
            .fetch_profile(ProfileKind::GoroutineLeak, deadline)
            .is_none());
    }

    #[test]
    fn a_restarted_local_target_is_named_after_its_new_pid() {
        let child = std::process::Command::new("python3")
            .args(["-c", "import socket,time;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();print(s.getsockname()[1],flush=True);time.sleep(30)"])
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { return };
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut rec = recorder(&format!("http://127.0.0.1:{}", line.trim()), dir.path());
        let t = 1_700_000_000 * SECOND;
        rec.runs.observe(Observation {
            time_ns: t,
            pid: Some(u32::MAX),
            total_alloc: Some(1000),
            ..Default::default()
        });
        // The old process is gone and the periodic PID search is backing off; the restarted
        // target answers with counters that went back.
        rec.pid = None;
        rec.next_pid_search = 5;
        let (run, new) = rec.observe_run(Observation {
            time_ns: t + 10 * SECOND,
            total_alloc: Some(10),
            ..Default::default()
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(new);
        assert!(run.ends_with(&format!("-pid{}", child.id())), "{run}");
        assert_eq!(rec.pid, Some(child.id()));
    }

    #[test]
    fn a_failed_start_removes_only_the_directories_it_created() {
        let dir = tempfile::tempdir().unwrap();
        let target = refused_url();
        let out = dir.path().join("new/capture");
        let (_tx, rx) = std::sync::mpsc::channel();
        let e = run(options(&target, &out), rx).unwrap_err();
        assert!(format!("{e:#}").contains("connection refused"), "{e:#}");
        assert!(
            !dir.path().join("new").exists(),
            "left an empty --out behind"
        );
        let existing = dir.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        let (_tx, rx) = std::sync::mpsc::channel();
        assert!(run(options(&target, &existing), rx).is_err());
        assert!(existing.is_dir(), "removed a directory it did not create");
    }
}
