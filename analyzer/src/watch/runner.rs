//! The watch loop: a round ranks the capture, posts what is due and remembers what was
//! delivered; rounds repeat every `--every` until a stop is requested (or once, with
//! `--once`, ending in an exit status). The loop reaches the outside world only through
//! [`Rounds`] (where rankings come from) and [`Notifier`] (where alerts go), so its
//! behaviour is unit-tested with fakes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::message::{body, headline, BodyFormat, Origin};
use super::state::State;
use super::webhook::{Delivered, DeliveryError, Webhook};
use crate::output::escape_control;
use crate::output::render::one_line;
use crate::rank::alert::{crossings, Thresholds};
use crate::rank::{rank, RankOptions, Ranking};
use crate::source::catalog;

/// Where alerts go.
pub trait Notifier {
    /// POSTs one round's alert body; `stop` cuts retries short.
    fn post(&self, body: &Value, stop: &AtomicBool) -> Result<Delivered, DeliveryError>;
    /// The destination as shown in messages (secrets hidden).
    fn shown(&self) -> &str;
}

impl Notifier for Webhook {
    fn post(&self, body: &Value, stop: &AtomicBool) -> Result<Delivered, DeliveryError> {
        Webhook::post(self, body, stop)
    }
    fn shown(&self) -> &str {
        Webhook::shown(self)
    }
}

/// What one look at the capture found.
pub enum Look {
    /// Nothing to judge yet (no manifest, too few profiles); why, in words.
    Waiting(String),
    /// A ranking, and where it comes from (for the message).
    Ranked(Box<Ranking>, Origin),
}

/// Where rankings come from: the watched capture as it is now.
#[allow(async_fn_in_trait)]
pub trait Rounds {
    /// Ranks the capture as it is now.
    async fn look(&mut self) -> crate::Result<Look>;
}

/// The real [`Rounds`]: reopens the capture every round (new segment sets appear between
/// rounds) and ranks its committed segments, warning once per unreadable segment.
pub struct CaptureRounds {
    /// The capture directory, absolute.
    pub capture: PathBuf,
    /// How to rank.
    pub options: RankOptions,
    /// Segments already warned about.
    pub warned: HashSet<PathBuf>,
}

impl Rounds for CaptureRounds {
    async fn look(&mut self) -> crate::Result<Look> {
        let remote = crate::source::remote::is_remote(&self.capture);
        let manifest = self
            .capture
            .join(leakscope_capture::manifest::MANIFEST_FILE);
        if !remote && !manifest.exists() {
            return Ok(Look::Waiting(format!(
                "{}: no manifest.json yet",
                self.capture.display()
            )));
        }
        let captures = [self.capture.clone()];
        let cat = catalog::open(&captures, &self.options.rules).await?;
        for s in &cat.skipped {
            if self.warned.insert(s.path.clone()) {
                eprintln!(
                    "leakscope: warning: skipping segment {}: {}",
                    one_line(&s.path.display().to_string()),
                    one_line(&s.reason)
                );
            }
        }
        let ranking = rank(&cat, &self.options, &|_| {}).await?;
        if let Some(s) = ranking.shortage() {
            let names = self.capture.display().to_string();
            return Ok(Look::Waiting(crate::output::render::shortage(&names, &s)));
        }
        // The catalog already read the manifest: no second read per round.
        let (target, host) = cat
            .captures
            .first()
            .map(|c| (c.manifest.target.clone(), c.manifest.host.clone()))
            .unwrap_or_default();
        let origin = Origin {
            name: self
                .capture
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "capture".into()),
            dir: self.capture.clone(),
            target,
            host,
            time: String::new(),
        };
        Ok(Look::Ranked(Box::new(ranking), origin))
    }
}

/// Stop requests (SIGINT, SIGTERM): a flag for blocking code, a channel for async waits.
#[derive(Clone)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    tx: Arc<tokio::sync::watch::Sender<bool>>,
    rx: tokio::sync::watch::Receiver<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// A stop that only [`Stop::request`] triggers.
    pub fn new() -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        Stop {
            flag: Arc::new(AtomicBool::new(false)),
            tx: Arc::new(tx),
            rx,
        }
    }

    /// A stop triggered by SIGINT or SIGTERM; a second signal exits at once.
    pub fn on_signals() -> std::io::Result<Stop> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let stop = Stop::new();
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
        let seen = stop.clone();
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if seen.requested() {
                    std::process::exit(128 + sig);
                }
                eprintln!("leakscope: watch: stopping (send the signal again to exit at once)");
                seen.request();
            }
        });
        Ok(stop)
    }

    /// Asks the loop to stop.
    pub fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.tx.send(true);
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves when a stop is requested.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// How a round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundEnd {
    /// No manifest or too few profiles yet.
    Waiting,
    /// Ranked: how many sites are above the thresholds, and whether a due post failed.
    Ranked {
        /// Sites above the thresholds.
        above: usize,
        /// A due post failed (it is posted again next round).
        post_failed: bool,
    },
    /// A stop was requested while ranking.
    Stopped,
}

/// How `watch` ended (the binary maps it to an exit status, docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    /// Stopped by a request, or (`--once`) nothing above the thresholds or no data yet.
    Clean,
    /// (`--once`) A site is above the thresholds (alerted now or before).
    Above,
    /// (`--once`) The alert could not be posted.
    PostFailed,
    /// (`--once`) Interrupted while ranking.
    Interrupted,
}

/// The watch loop's state between rounds.
pub struct Runner<R: Rounds, N: Notifier> {
    /// Where rankings come from.
    pub rounds: R,
    /// Where alerts go.
    pub notifier: N,
    /// When a finding counts.
    pub thresholds: Thresholds,
    /// Body of the POST.
    pub body: BodyFormat,
    /// Post "resolved" when an alerted site stays below the thresholds.
    pub resolve: bool,
    /// What was alerted.
    pub state: State,
    /// Where the state is kept, if anywhere.
    pub state_path: Option<PathBuf>,
    /// The state as last saved.
    saved: State,
    /// Stop requests.
    pub stop: Stop,
}

impl<R: Rounds, N: Notifier> Runner<R, N> {
    /// A runner starting from `state` (as saved at `state_path`, if any).
    pub fn new(
        rounds: R,
        notifier: N,
        thresholds: Thresholds,
        body: BodyFormat,
        state: (State, Option<PathBuf>),
        stop: Stop,
    ) -> Self {
        Runner {
            rounds,
            notifier,
            thresholds,
            body,
            resolve: true,
            saved: state.0.clone(),
            state: state.0,
            state_path: state.1,
            stop,
        }
    }

    /// One round: rank, post what is due, remember what was delivered.
    pub async fn round(&mut self) -> crate::Result<RoundEnd> {
        let look = tokio::select! {
            l = self.rounds.look() => l?,
            _ = self.stop.wait() => return Ok(RoundEnd::Stopped),
        };
        let (ranking, mut origin) = match look {
            Look::Waiting(why) => {
                eprintln!("leakscope: watch: waiting for data: {}", one_line(&why));
                return Ok(RoundEnd::Waiting);
            }
            Look::Ranked(r, o) => (r, o),
        };
        let found = crossings(&ranking, &self.thresholds);
        self.state.observe(&found, self.resolve);
        let alerts = self.state.pending(&found, &ranking, &self.thresholds);
        let mut post_failed = false;
        let outcome = if alerts.is_empty() {
            "nothing new to post".to_string()
        } else {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            origin.time = now.clone();
            let body = body(self.body, &origin, &alerts);
            let what = headline(&origin, &alerts);
            let what = what.split_once(": ").map_or(&*what, |(_, w)| w).to_string();
            let (notifier, flag) = (&self.notifier, &self.stop.flag);
            match tokio::task::block_in_place(|| notifier.post(&body, flag)) {
                Ok(d) => {
                    self.state.commit(&alerts, &now);
                    for a in &alerts {
                        println!("{}", escape_control(&a.describe()));
                    }
                    format!(
                        "posted {what} to {} (HTTP {}, {} attempt(s))",
                        notifier.shown(),
                        d.status,
                        d.attempts
                    )
                }
                Err(e) => {
                    post_failed = true;
                    eprintln!("leakscope: warning: {}", one_line(&e.to_string()));
                    format!("not posted: {what}")
                }
            }
        };
        self.save_state();
        eprintln!(
            "leakscope: watch: {} site(s) above the thresholds; {outcome}",
            found.len()
        );
        Ok(RoundEnd::Ranked {
            above: found.len(),
            post_failed,
        })
    }

    /// Writes the state file when the state changed; a failure is a warning (the state
    /// stays in memory).
    fn save_state(&mut self) {
        let Some(path) = &self.state_path else {
            return;
        };
        if self.state == self.saved {
            return;
        }
        match self.state.save(path) {
            Ok(()) => self.saved = self.state.clone(),
            Err(e) => eprintln!("leakscope: warning: {}", one_line(&e.to_string())),
        }
    }

    /// Runs rounds `every` apart (from the start of one to the start of the next) until a
    /// stop is requested; with `once`, one round whose outcome is the result. A failed round
    /// is a warning and the next round tries again (with `once`, it is the error).
    pub async fn run(
        &mut self,
        every: Duration,
        once: bool,
        shown: &Path,
    ) -> crate::Result<WatchEnd> {
        loop {
            let started = Instant::now();
            match self.round().await {
                Err(e) if once => return Err(e),
                Err(e) => eprintln!(
                    "leakscope: warning: {}: {}; trying again next round",
                    shown.display(),
                    one_line(&e.to_string())
                ),
                Ok(RoundEnd::Stopped) if once => return Ok(WatchEnd::Interrupted),
                Ok(RoundEnd::Stopped) => break,
                Ok(RoundEnd::Waiting) if once => return Ok(WatchEnd::Clean),
                Ok(RoundEnd::Ranked { above, post_failed }) if once => {
                    return Ok(match (post_failed, above) {
                        (true, _) => WatchEnd::PostFailed,
                        (false, 0) => WatchEnd::Clean,
                        (false, _) => WatchEnd::Above,
                    })
                }
                Ok(_) => {}
            }
            if self.stop.requested() {
                break;
            }
            let next = tokio::time::Instant::from_std(started + every);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.stop.wait() => break,
            }
        }
        eprintln!("leakscope: watch: stopped");
        Ok(WatchEnd::Clean)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::fit::{fit_series, RunSeries, Verdict};
    use crate::model::metric::Metric;
    use crate::model::site::GroupBy;
    use crate::rank::{Finding, RANKING_SCHEMA_VERSION};

    /// Rounds that hand out prepared looks, one per round (then waiting).
    struct Scripted(Vec<Look>);

    impl Rounds for Scripted {
        async fn look(&mut self) -> crate::Result<Look> {
            Ok(if self.0.is_empty() {
                Look::Waiting("no more".into())
            } else {
                self.0.remove(0)
            })
        }
    }

    /// A notifier that records bodies, failing while `fail` is set.
    #[derive(Default)]
    struct Recorded {
        posted: Mutex<Vec<Value>>,
        fail: AtomicBool,
    }

    impl Notifier for &Recorded {
        fn post(&self, body: &Value, _stop: &AtomicBool) -> Result<Delivered, DeliveryError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(DeliveryError {
                    url: "test://".into(),
                    attempts: 1,
                    last: "refused".into(),
                });
            }
            self.posted.lock().unwrap().push(body.clone());
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        }
        fn shown(&self) -> &str {
            "test://"
        }
    }

    /// A ranking with one heap site growing 1 MiB per 10 s for `points` profiles.
    fn leaking(points: usize) -> Look {
        let series = RunSeries {
            run: "c/1".into(),
            time_ns: (0..points as i64).map(|i| i * 10_000_000_000).collect(),
            y: (0..points).map(|i| (i as f64 + 1.0) * 1048576.0).collect(),
        };
        let fit = fit_series(&[series]);
        assert_eq!(fit.verdict, Verdict::Leak, "{:?}", fit.reason);
        let finding = Finding {
            rank: 1,
            metric: Metric::InuseSpace,
            unit: "bytes",
            site: "main.leak main.go:10".into(),
            fit,
            hints: Default::default(),
            stack: Arc::from(Vec::new()),
            stacks: 1,
            object_size: 0.0,
            series: Vec::new(),
            group: 0,
        };
        let ranking = Ranking {
            schema_version: RANKING_SCHEMA_VERSION,
            captures: vec!["c".into()],
            skipped: Vec::new(),
            by: GroupBy::Site,
            findings: vec![finding],
            sections: Vec::new(),
            process: None,
            stacks: None,
            listing: None,
        };
        let origin = Origin {
            name: "c".into(),
            dir: PathBuf::from("/c"),
            target: String::new(),
            host: String::new(),
            time: String::new(),
        };
        Look::Ranked(Box::new(ranking), origin)
    }

    fn runner(looks: Vec<Look>, notifier: &Recorded) -> Runner<Scripted, &Recorded> {
        let thresholds = Thresholds::parse("1KiB/h", "1/h", 0.0).unwrap();
        Runner::new(
            Scripted(looks),
            notifier,
            thresholds,
            BodyFormat::Generic,
            (State::new(Path::new("/c")), None),
            Stop::new(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_site_is_posted_once_until_it_changes() {
        let sink = Recorded::default();
        let mut r = runner(vec![leaking(60), leaking(60)], &sink);
        let first = r.round().await.unwrap();
        assert_eq!(
            first,
            RoundEnd::Ranked {
                above: 1,
                post_failed: false
            }
        );
        let second = r.round().await.unwrap();
        assert_eq!(
            second,
            RoundEnd::Ranked {
                above: 1,
                post_failed: false
            }
        );
        assert_eq!(sink.posted.lock().unwrap().len(), 1, "posted again");
        assert_eq!(r.round().await.unwrap(), RoundEnd::Waiting);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_failed_post_is_retried_next_round_and_once_reports_it() {
        let sink = Recorded::default();
        sink.fail.store(true, Ordering::SeqCst);
        let mut r = runner(vec![leaking(60), leaking(60)], &sink);
        let end = r.run(Duration::from_millis(1), true, Path::new("/c")).await;
        assert_eq!(end.unwrap(), WatchEnd::PostFailed);
        sink.fail.store(false, Ordering::SeqCst);
        let end = r.run(Duration::from_millis(1), true, Path::new("/c")).await;
        assert_eq!(end.unwrap(), WatchEnd::Above);
        assert_eq!(sink.posted.lock().unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn once_without_data_is_clean_and_a_stop_ends_the_loop() {
        let sink = Recorded::default();
        let mut r = runner(Vec::new(), &sink);
        let end = r.run(Duration::from_millis(1), true, Path::new("/c")).await;
        assert_eq!(end.unwrap(), WatchEnd::Clean);
        let stop = r.stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stop.request();
        });
        let end = r
            .run(Duration::from_millis(5), false, Path::new("/c"))
            .await;
        assert_eq!(end.unwrap(), WatchEnd::Clean);
        assert!(sink.posted.lock().unwrap().is_empty());
    }
}
