//! `--upload s3://BUCKET/PREFIX`: a background uploader that ships every committed segment
//! set and the manifest of a local capture to object storage.
//!
//! The local capture stays the source of truth and is written exactly as without
//! `--upload`. The uploader runs on its own thread with a small current-thread tokio
//! runtime (object_store is async; nothing else in the recorder is). Per set it uploads the
//! data files first (skipping a file already there with the same size) and the commit
//! marker last, so a remote reader never sees an incomplete set. Which sets are uploaded is
//! decided from the remote markers (listed at start) and what it uploaded since, so a
//! restarted recorder resumes where a killed one stopped: no local state, no duplicates
//! (keys are the local relative paths), no gaps. Failures are warnings retried with
//! exponential backoff; they never touch the local capture. `--retain` asks
//! [`UploadHandle::keep`] and never deletes a set that is not uploaded yet.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use leakscope_capture::manifest::MANIFEST_FILE;
use leakscope_capture::remote::{self, Endpoint, RemoteError, RemoteUrl};
use leakscope_capture::segment::{self, CommittedSet};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// How often the uploader looks for new committed sets without being woken (each commit
/// of this process wakes it at once; this catches anything else, e.g. a failed wake-up).
const POLL: Duration = Duration::from_secs(5);
/// First wait after a failed upload; doubles per consecutive failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Bound of the start-up check (one listing request).
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Where to upload: the remote capture URL and an optional endpoint override.
#[derive(Debug, Clone)]
pub struct UploadTarget {
    /// `s3://BUCKET/PREFIX`.
    pub url: RemoteUrl,
    /// `--s3-endpoint` (an S3-compatible server; plain HTTP allowed).
    pub endpoint: Option<Endpoint>,
}

/// State shared by the uploader thread and its handles.
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Stems whose marker is in the store (listed at start, or uploaded since).
    uploaded: HashSet<String>,
    /// Committed local sets not uploaded yet, as of the last pass.
    pending: usize,
    /// Set by [`UploadHandle::notify`]: look for new sets now.
    wake: bool,
    /// Set by [`Uploader::finish`]: upload what is committed, then stop by this time.
    stop_by: Option<Instant>,
    /// The thread has ended.
    done: bool,
    /// Sets uploaded by this process.
    sets_uploaded: usize,
    /// The last failure, for the final report.
    last_error: Option<String>,
}

/// A cheap handle to a running uploader, for the recording loop: wake it after a commit,
/// ask whether retention may delete a set.
#[derive(Clone)]
pub struct UploadHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for UploadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UploadHandle")
    }
}

impl UploadHandle {
    /// Wakes the uploader: a set was just committed.
    pub fn notify(&self) {
        let mut s = lock(&self.shared);
        s.wake = true;
        self.shared.changed.notify_all();
    }

    /// True when committed set `stem` must be kept locally: it is not uploaded yet.
    pub fn keep(&self, stem: &str) -> bool {
        !lock(&self.shared).uploaded.contains(stem)
    }

    /// Committed local sets not uploaded yet (as of the uploader's last pass).
    pub fn pending(&self) -> usize {
        lock(&self.shared).pending
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panicked uploader thread leaves consistent data (plain counters and sets).
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// What was left when the uploader stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// Sets uploaded by this process.
    pub uploaded: usize,
    /// Committed local sets still not uploaded.
    pub pending: usize,
    /// The last failure, when any.
    pub last_error: Option<String>,
}

/// An uploader connected to its store (the bucket checked), not yet started.
pub struct Connected {
    target: UploadTarget,
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    uploaded: HashSet<String>,
}

/// A running uploader thread.
pub struct Uploader {
    shared: Arc<Shared>,
    url: RemoteUrl,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Builds the store for `target` and checks the bucket with one cheap request, so bad
/// credentials, a missing bucket or an unreachable endpoint fail before recording begins
/// (one line naming the URL, credentials redacted). Lists the sets already uploaded.
pub fn connect(target: UploadTarget) -> Result<Connected, RemoteError> {
    let store: Arc<dyn ObjectStore> =
        Arc::new(remote::build_s3(&target.url, target.endpoint.as_ref())?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RemoteError::Store {
            url: target.url.to_string(),
            reason: format!("starting the uploader's runtime: {e}"),
        })?;
    let unreachable = || RemoteError::Store {
        url: target.url.to_string(),
        reason: format!(
            "no answer within {}s{}",
            CHECK_TIMEOUT.as_secs(),
            target
                .endpoint
                .as_ref()
                .map(|e| format!(" from {e}"))
                .unwrap_or_default()
        ),
    };
    let stems = runtime.block_on(async {
        tokio::time::timeout(CHECK_TIMEOUT, async {
            remote::check_access(store.as_ref(), &target.url).await?;
            remote::remote_committed_stems(store.as_ref(), &target.url).await
        })
        .await
    });
    let stems = stems.map_err(|_| unreachable())??;
    Ok(Connected {
        target,
        store,
        runtime,
        uploaded: stems.into_iter().collect(),
    })
}

impl Connected {
    /// Sets already in the store (their marker exists).
    pub fn already_uploaded(&self) -> usize {
        self.uploaded.len()
    }

    /// Starts the uploader thread for capture `dir`. It polls `dir` (and wakes on
    /// [`UploadHandle::notify`]) until [`Uploader::finish`]; `dir` may not exist yet.
    pub fn start(self, dir: &Path) -> Uploader {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                uploaded: self.uploaded.clone(),
                ..Default::default()
            }),
            changed: Condvar::new(),
        });
        let url = self.target.url.clone();
        let worker = Worker {
            dir: dir.to_path_buf(),
            url: self.target.url,
            store: self.store,
            shared: shared.clone(),
            manifest_sent: None,
            announced: false,
        };
        let runtime = self.runtime;
        let thread = std::thread::Builder::new()
            .name("upload".into())
            .spawn(move || {
                let mut worker = worker;
                runtime.block_on(worker.run());
                let mut s = lock(&worker.shared);
                s.done = true;
                worker.shared.changed.notify_all();
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                log::warn!("{url}: could not start the uploader thread: {e}");
                let mut s = lock(&shared);
                s.done = true;
                None
            }
        };
        Uploader {
            shared,
            url,
            thread,
        }
    }
}

impl Uploader {
    /// A handle for the recording loop.
    pub fn handle(&self) -> UploadHandle {
        UploadHandle {
            shared: self.shared.clone(),
        }
    }

    /// Stops the thread without waiting or reporting (recording failed to start).
    pub fn abort(self) -> UploadReport {
        let mut s = lock(&self.shared);
        s.stop_by = Some(Instant::now());
        self.shared.changed.notify_all();
        UploadReport {
            uploaded: s.sets_uploaded,
            pending: s.pending,
            last_error: s.last_error.clone(),
        }
    }

    /// Uploads what is committed, waiting at most `max_wait`, stops the thread and says
    /// what is left (also logged: everything uploaded, or how many sets are pending).
    pub fn finish(mut self, max_wait: Duration) -> UploadReport {
        let deadline = Instant::now() + max_wait;
        {
            let mut s = lock(&self.shared);
            s.stop_by = Some(deadline);
            s.wake = true;
            self.shared.changed.notify_all();
            // A request in flight at the deadline gets a little longer to end cleanly.
            let hard = deadline + Duration::from_secs(2);
            while !s.done {
                let left = hard.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s = match self.shared.changed.wait_timeout(s, left) {
                    Ok((g, _)) => g,
                    Err(e) => e.into_inner().0,
                };
            }
        }
        let done = lock(&self.shared).done;
        if done {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        let s = lock(&self.shared);
        let report = UploadReport {
            uploaded: s.sets_uploaded,
            pending: s.pending,
            last_error: s.last_error.clone(),
        };
        if report.pending == 0 && done {
            log::info!(
                "upload: every committed segment set is in {} ({} uploaded by this run)",
                self.url,
                report.uploaded
            );
        } else {
            log::warn!(
                "upload: {} committed segment set(s) not uploaded to {} after waiting {:.0?}{}{}; they stay in the local capture and are uploaded by the next run with the same --out and --upload",
                report.pending,
                self.url,
                max_wait,
                if done { "" } else { " (a request was still in flight)" },
                report
                    .last_error
                    .as_ref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
        report
    }
}

/// The uploader thread's state.
struct Worker {
    dir: PathBuf,
    url: RemoteUrl,
    store: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
    /// The manifest bytes last uploaded.
    manifest_sent: Option<Vec<u8>>,
    /// Whether the pending count at start was logged.
    announced: bool,
}

impl Worker {
    async fn run(&mut self) {
        let mut failures: u32 = 0;
        loop {
            // Stop only after a pass that began once the stop was asked for: an earlier
            // pass may have listed the sets before the final commit.
            let stopping = lock(&self.shared).stop_by;
            let result = self.pass().await;
            let stop_by = {
                let mut s = lock(&self.shared);
                match &result {
                    Ok(()) => {
                        failures = 0;
                        s.last_error = None;
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        s.last_error = Some(e.clone());
                    }
                }
                stopping.or(s.stop_by.filter(|t| Instant::now() >= *t))
            };
            if let Err(e) = &result {
                let pending = lock(&self.shared).pending;
                log::warn!(
                    "upload to {}: {e} ({pending} committed set(s) pending; retrying in {:.1?})",
                    self.url,
                    backoff(failures)
                );
            }
            let pending = lock(&self.shared).pending;
            if let Some(t) = stop_by {
                if (result.is_ok() && pending == 0) || Instant::now() >= t {
                    return;
                }
            }
            let wait = if result.is_ok() {
                if pending > 0 {
                    Duration::ZERO
                } else {
                    POLL
                }
            } else {
                backoff(failures)
            };
            self.wait(wait, result.is_ok()).await;
        }
    }

    /// Waits up to `wait`, never past the stop deadline. A notify (a new commit) or
    /// [`Uploader::finish`] ends the wait early unless the last pass failed: then the
    /// backoff holds.
    async fn wait(&self, wait: Duration, wake_early: bool) {
        let end = Instant::now() + wait;
        loop {
            {
                let mut s = lock(&self.shared);
                let now = Instant::now();
                if now >= end || s.stop_by.is_some_and(|t| now >= t) {
                    return;
                }
                if s.wake && wake_early {
                    s.wake = false;
                    return;
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            tokio::time::sleep(Duration::from_millis(50).min(left)).await;
        }
    }

    /// One pass: the manifest when it changed, then every committed set not uploaded,
    /// oldest first. Stops at the first failure.
    async fn pass(&mut self) -> Result<(), String> {
        let sets = segment::committed_sets(&self.dir).map_err(|e| e.to_string())?;
        let todo: Vec<CommittedSet> = {
            let mut s = lock(&self.shared);
            let todo: Vec<_> = sets
                .into_iter()
                .filter(|set| !s.uploaded.contains(&set.stem))
                .collect();
            s.pending = todo.len();
            todo
        };
        if !self.announced {
            self.announced = true;
            if !todo.is_empty() {
                log::info!(
                    "upload: {} committed segment set(s) of {} not yet in {}: uploading",
                    todo.len(),
                    self.dir.display(),
                    self.url
                );
            }
        }
        self.upload_manifest().await?;
        for set in todo {
            if lock(&self.shared)
                .stop_by
                .is_some_and(|t| Instant::now() >= t)
            {
                break; // out of time: the rest is reported as pending
            }
            let (files, bytes) = self.upload_set(&set).await?;
            let pending = {
                let mut s = lock(&self.shared);
                s.uploaded.insert(set.stem.clone());
                s.pending = s.pending.saturating_sub(1);
                s.sets_uploaded += 1;
                s.pending
            };
            log::info!(
                "uploaded segment set {} to {} ({files} file(s), {bytes} bytes; {pending} pending)",
                set.stem,
                self.url
            );
        }
        Ok(())
    }

    /// Uploads `manifest.json` when it differs from what this process last uploaded.
    async fn upload_manifest(&mut self) -> Result<(), String> {
        let path = self.dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        if self.manifest_sent.as_ref() == Some(&bytes) {
            return Ok(());
        }
        let key = self.url.key(MANIFEST_FILE);
        self.store
            .put(&key, PutPayload::from(bytes.clone()))
            .await
            .map_err(|e| {
                format!(
                    "{}: {}",
                    self.url.url_of(MANIFEST_FILE),
                    remote::describe(&e)
                )
            })?;
        self.manifest_sent = Some(bytes);
        Ok(())
    }

    /// Uploads one set: its data files (each skipped when the store already holds it with
    /// the same size), then its marker. Returns the files and bytes sent.
    async fn upload_set(&self, set: &CommittedSet) -> Result<(usize, u64), String> {
        let (mut files, mut bytes) = (0, 0);
        for f in &set.files {
            let Some(rel) = segment::relative_key(&self.dir, &f.path) else {
                return Err(format!(
                    "{}: not below the capture directory",
                    f.path.display()
                ));
            };
            let key = self.url.key(&rel);
            let data = match std::fs::read(&f.path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.marker_exists(set) => {
                    return Ok((files, bytes)); // deleted locally meanwhile: nothing to ship
                }
                Err(e) => return Err(format!("{}: {e}", f.path.display())),
            };
            match self.store.head(&key).await {
                Ok(meta) if meta.size == data.len() as u64 => continue,
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(format!(
                        "{}: {}",
                        self.url.url_of(&rel),
                        remote::describe(&e)
                    ))
                }
            }
            let len = data.len() as u64;
            self.store
                .put(&key, PutPayload::from(data))
                .await
                .map_err(|e| format!("{}: {}", self.url.url_of(&rel), remote::describe(&e)))?;
            files += 1;
            bytes += len;
        }
        let rel = segment::marker_relpath(&set.stem);
        self.store
            .put(&self.url.key(&rel), PutPayload::new())
            .await
            .map_err(|e| format!("{}: {}", self.url.url_of(&rel), remote::describe(&e)))?;
        Ok((files, bytes))
    }

    fn marker_exists(&self, set: &CommittedSet) -> bool {
        self.dir.join(segment::marker_relpath(&set.stem)).exists()
    }
}

/// The wait after `failures` consecutive failed passes: 0.5 s, 1 s, 2 s, ... up to 60 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF.saturating_mul(1u32 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
