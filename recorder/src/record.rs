//! The recording loop: every interval, scrape the target's profiles and MemStats, read
//! /proc, attribute everything to a run, and buffer it in the capture's segment writer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::pprof::{self, DecodedProfile, ProfileKind};
use leakscope_capture::rows::{ProcessRow, ScrapeRow};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};

use crate::fetch::{Attempt, Fetched, Fetcher};
use crate::ingest::{write_profile, ProfileMeta};
use crate::memstats::{self, MemStats};
use crate::procfs;
use crate::retain::Retention;
use crate::runs::{Observation, RunTracker};
use crate::target::Target;
use crate::{host_name, now_ns, rfc3339, RECORDER_VERSION};

/// Everything `record` needs.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// What to scrape.
    pub target: Target,
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
    check_writable(&opts.out)?;
    let fetcher = Fetcher::new(opts.timeout, opts.retries, Duration::from_millis(250), opts.target.headers().to_vec());
    let target_name = opts.target.to_string();
    if !opts.wait {
        let url = opts.target.profile_url("heap", "");
        let probe = fetcher.get(&url, Instant::now() + opts.timeout * (opts.retries + 1) + Duration::from_secs(2));
        match (&probe.body, probe.error()) {
            (Some(body), _) => {
                pprof::parse(body, Some(ProfileKind::Heap)).map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
            }
            (None, Some(err)) => bail!("{url}: {err} (use --wait to start before the target is up)"),
            (None, None) => bail!("{url}: no response"),
        }
    }
    let session = Session {
        mode: "record".into(),
        recorder_version: RECORDER_VERSION.into(),
        target: target_name.clone(),
        host: host_name(),
        start_time: rfc3339(now_ns()),
        options: opts.manifest_options.clone(),
    };
    Manifest::open_or_create(&opts.out, session)?;
    let writer = SegmentWriter::new(&opts.out, opts.rotation);
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
    };
    log::info!(
        "recording {} every {:?} into {}{}",
        rec.target_name,
        rec.opts.interval,
        rec.opts.out.display(),
        rec.opts.duration.map(|d| format!(" for {d:?}")).unwrap_or_default()
    );
    let result = rec.run_loop(&stop);
    let final_commit = rec.commit(true);
    result?;
    final_commit?;
    rec.summary.runs = rec.runs.runs();
    Ok(rec.summary)
}

fn check_writable(out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create capture directory {}", out.display()))?;
    let probe = out.join(".leakscope-write-test");
    std::fs::write(&probe, b"ok").with_context(|| format!("capture directory {} is not writable", out.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

impl Recorder {
    fn run_loop(&mut self, stop: &Receiver<()>) -> anyhow::Result<()> {
        let interval = self.opts.interval;
        let started = Instant::now();
        let end = self.opts.duration.map(|d| started + d);
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
            self.tick(next + interval);
            if self.writer.should_rotate(now_ns()) {
                self.commit(false)?;
            }
            next += interval;
            while next <= Instant::now() {
                next += interval; // skip ticks missed while a slow target answered
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
                if let Some(r) = self.opts.retain {
                    match r.apply(&self.opts.out, now_ns()) {
                        Ok(p) if p.segment_sets > 0 => {
                            log::info!("retention removed {} segment sets ({} bytes)", p.segment_sets, p.bytes)
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
        if !self.opts.target.is_local() {
            return;
        }
        if self.next_pid_search > 0 {
            self.next_pid_search -= 1;
            return;
        }
        match procfs::find_listening_pid(self.opts.target.port()) {
            Some(pid) => {
                log::info!("target process is PID {pid}");
                self.pid = Some(pid);
                self.pid_start = procfs::process_start_ns(pid);
            }
            None => self.next_pid_search = 5,
        }
    }

    fn note(&mut self, key: &str, ok: bool, error: Option<&str>) {
        let prev = self.last_ok.insert(key.to_string(), ok);
        match (prev, ok, error) {
            (Some(true) | None, false, Some(err)) => log::warn!("{key}: {err}"),
            (Some(false), true, _) => log::info!("{key}: ok again"),
            _ => {}
        }
    }

    fn scrape_rows(&mut self, kind: &str, endpoint: &str, attempts: &[Attempt], final_error: Option<String>) -> Vec<ScrapeRow> {
        let n = attempts.len();
        attempts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let error = if i + 1 == n && final_error.is_some() { final_error.clone() } else { a.error.clone() };
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
                }
            })
            .collect()
    }

    fn fetch_memstats(&mut self, deadline: Instant, scrapes: &mut Vec<ScrapeRow>) -> Option<(MemStats, &'static str)> {
        if self.vars_served != Some(false) {
            let url = self.opts.target.vars_url();
            let f = self.fetcher.get(&url, deadline);
            let parsed = f.body.as_deref().map(memstats::parse_vars);
            let final_error = match &parsed {
                Some(Err(e)) => Some(e.to_string()),
                _ => None,
            };
            let endpoint = self.opts.target.vars_path().to_string();
            scrapes.extend(self.scrape_rows("memstats", &endpoint, &f.attempts, final_error.clone()));
            match parsed {
                Some(Ok(ms)) => {
                    self.vars_served = Some(true);
                    return Some((ms, "vars"));
                }
                _ if self.vars_served.is_none() => {
                    log::info!("{url} has no MemStats ({}); using heap?debug=1", final_error.as_deref().or(f.error()).unwrap_or("?"));
                    self.vars_served = Some(false);
                }
                _ => {
                    self.note(&url, false, final_error.as_deref().or(f.error()));
                    return None;
                }
            }
        }
        let url = self.opts.target.profile_url("heap", "debug=1");
        let f = self.fetcher.get(&url, deadline);
        let parsed = f.body.as_deref().map(memstats::parse_heap_debug1);
        let final_error = match &parsed {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        let endpoint = self.opts.target.profile_path("heap", "debug=1");
        scrapes.extend(self.scrape_rows("memstats", &endpoint, &f.attempts, final_error.clone()));
        let ok = matches!(parsed, Some(Ok(_)));
        self.note(&url, ok, final_error.as_deref().or(f.error()));
        parsed.and_then(Result::ok).map(|ms| (ms, "heap_debug1"))
    }

    fn fetch_profile(&mut self, kind: ProfileKind, deadline: Instant) -> Option<Scraped> {
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
        let url = self.opts.target.profile_url(name, query);
        let endpoint = self.opts.target.profile_path(name, query);
        let fetched = self.fetcher.get(&url, deadline);
        if kind == ProfileKind::GoroutineLeak && self.leak_served.is_none() {
            let served = fetched.status() != Some(404);
            if !served {
                log::info!("{url}: not served (needs Go 1.26 with GOEXPERIMENT=goroutineleakprofile, or Go 1.27+)");
            }
            self.leak_served = Some(served);
        }
        let (profile, parse_error) = match fetched.body.as_deref().map(|b| pprof::parse(b, Some(kind))) {
            Some(Ok(p)) => (Some(p), None),
            Some(Err(e)) => (None, Some(format!("not a valid profile: {e}"))),
            None => (None, None),
        };
        self.note(&url, profile.is_some(), parse_error.as_deref().or(fetched.error()));
        Some(Scraped { kind, endpoint, fetched, profile, parse_error })
    }

    fn tick(&mut self, deadline: Instant) {
        let t0 = now_ns();
        let mut scrapes = Vec::new();
        self.refresh_pid();
        let mut process = ProcessRow::new(t0, &self.target_name);
        process.pid = self.pid;
        process.process_start_ns = self.pid_start;
        let mut have_process = false;
        if let Some(pid) = self.pid {
            let started = Instant::now();
            let read = procfs::read_stats(pid);
            let error = read.as_ref().err().map(|e| format!("/proc/{pid}/status: {e}"));
            if let Ok(stats) = read {
                for (col, v) in stats {
                    process.set(col, v);
                }
                have_process = true;
            }
            scrapes.extend(self.scrape_rows(
                "proc",
                &format!("/proc/{pid}"),
                &[Attempt { start_ns: t0, duration_ms: started.elapsed().as_secs_f64() * 1e3, status: None, bytes: None, error }],
                None,
            ));
        }
        let ms = self.fetch_memstats(deadline, &mut scrapes);
        if let Some((ms, source)) = &ms {
            for (col, v) in ms {
                process.set(col, *v);
            }
            process.memstats_source = Some(source.to_string());
            have_process = true;
        }
        let kinds = self.opts.profiles.clone();
        let scraped: Vec<Scraped> = kinds.into_iter().filter_map(|k| self.fetch_profile(k, deadline)).collect();

        let heap_alloc_total = scraped
            .iter()
            .find(|s| s.kind == ProfileKind::Heap)
            .and_then(|s| s.profile.as_ref())
            .map(|p| p.total(|v| v.alloc_bytes));
        let (run_id, new_run) = self.runs.observe(Observation {
            time_ns: t0,
            pid: self.pid,
            start_ns: self.pid_start,
            total_alloc: ms.as_ref().and_then(|(m, _)| memstats::get(m, "go_total_alloc_bytes")),
            num_gc: ms.as_ref().and_then(|(m, _)| memstats::get(m, "go_num_gc")),
            profile_alloc_total: heap_alloc_total,
        });
        if new_run && self.runs.runs() > 1 {
            log::info!("target restarted: new run {run_id}");
            self.leak_served = None;
            self.vars_served = None;
        }

        if have_process {
            process.run_id = Some(run_id.clone());
            self.writer.add_process(process);
            self.summary.process_rows += 1;
        }
        for s in scraped {
            let mut profile_id = None;
            if let Some(p) = &s.profile {
                let time_ns = if p.time_ns > 0 { p.time_ns } else { s.fetched.attempts.last().map_or(t0, |a| a.start_ns) };
                let scrape_ms = s.fetched.attempts.last().map(|a| a.duration_ms);
                let meta = ProfileMeta {
                    time_ns,
                    target: &self.target_name,
                    pid: self.pid,
                    run_id: &run_id,
                    scrape_ms,
                    source: &s.endpoint,
                };
                profile_id = Some(write_profile(&mut self.writer, p, &meta));
                *self.summary.profiles.entry(s.kind.as_str()).or_default() += 1;
            }
            let mut rows = self.scrape_rows(s.kind.as_str(), &s.endpoint, &s.fetched.attempts, s.parse_error);
            if let Some(last) = rows.last_mut() {
                last.profile_id = profile_id;
            }
            scrapes.extend(rows);
        }
        for mut row in scrapes {
            row.run_id = Some(run_id.clone());
            self.writer.add_scrape(row);
        }
    }
}
