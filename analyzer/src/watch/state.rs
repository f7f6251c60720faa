//! What `watch` remembers between rounds: which sites were alerted, with what verdict and
//! rate, and how many rounds each has stayed below the thresholds; kept in a JSON file
//! when asked, written durably.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::WatchError;
use crate::model::site::FrameRef;
use crate::output::render::format_rate;
use crate::rank::alert::{Crossing, Thresholds};
use crate::rank::{Finding, Ranking};
use crate::source::load::Metric;

/// Rounds in a row a previously alerted site must stay below the thresholds to be resolved.
pub const RESOLVE_AFTER: u32 = 2;

/// Factor by which a site's rate must grow or shrink since its last alert to be re-alerted.
pub const RATE_CHANGE_FACTOR: f64 = 2.0;

/// Version of the state file layout.
const STATE_VERSION: u32 = 1;

/// Why a site is in an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Crosses the thresholds and was not alerted before.
    New,
    /// Still crosses, but its verdict changed or its rate doubled or halved since its alert.
    Changed,
    /// Was alerted and has stayed below the thresholds for [`RESOLVE_AFTER`] rounds.
    Resolved,
}

impl Status {
    /// Label for people.
    pub fn label(self) -> &'static str {
        match self {
            Status::New => "New leak",
            Status::Changed => "Changed",
            Status::Resolved => "Resolved",
        }
    }
}

/// One site in an alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// New, changed or resolved.
    pub status: Status,
    /// Call site (group key).
    pub site: String,
    /// Metric (`inuse_space`, `goroutines`, `native`, ...).
    pub metric: String,
    /// Unit of the rate.
    pub unit: String,
    /// Current verdict (`leak`, `possible-leak`; for resolved sites whatever it is now, or
    /// `gone` when the site is no longer in the capture).
    pub verdict: String,
    /// Growth rate, units per hour (for a site that is gone: the rate last alerted).
    pub rate_per_hour: f64,
    /// The limit of the metric, units per hour.
    pub limit_per_hour: f64,
    /// Confidence (0..1).
    pub confidence: f64,
    /// Rate of the previous alert of this site (changed and resolved sites).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_rate_per_hour: Option<f64>,
    /// What changed, or why the site is resolved; empty for new sites.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub change: String,
    /// Hints, worded as likelihoods.
    pub hints: Vec<String>,
    /// Representative stack, leaf first.
    pub stack: Vec<String>,
    /// Human-readable rate and limit, e.g. `1.2 GiB/h`.
    #[serde(skip)]
    pub rate_text: String,
    /// Human-readable limit.
    #[serde(skip)]
    pub limit_text: String,
}

impl Alert {
    /// One line for people: `ALERT|CHANGED unit site: rate (confidence N%, limit L)[: change]`
    /// or `RESOLVED unit site: why`.
    pub fn describe(&self) -> String {
        if self.status == Status::Resolved {
            return format!("RESOLVED {} {}: {}", self.unit, self.site, self.change);
        }
        let mut s = format!(
            "{} {} {}: {} (confidence {:.0}%, limit {})",
            match self.status {
                Status::Changed => "CHANGED",
                _ => "ALERT",
            },
            self.unit,
            self.site,
            self.rate_text,
            self.confidence * 100.0,
            self.limit_text
        );
        if !self.change.is_empty() {
            s.push_str(": ");
            s.push_str(&self.change);
        }
        s
    }
}

/// The stable name of a metric (`inuse_space`, ...).
fn metric_name(m: Metric) -> String {
    m.code().to_string()
}

/// The stable code of a finding's verdict (`leak`, `possible-leak`, ...).
fn verdict_name(f: &Finding) -> String {
    f.fit.verdict.code().to_string()
}

fn alert_of(status: Status, f: &Finding, limit: f64) -> Alert {
    Alert {
        status,
        site: f.site.clone(),
        metric: metric_name(f.metric),
        unit: f.metric.unit().to_string(),
        verdict: verdict_name(f),
        rate_per_hour: f.fit.rate_per_hour,
        limit_per_hour: limit,
        confidence: f.fit.confidence,
        previous_rate_per_hour: None,
        change: String::new(),
        hints: crate::output::words::hints(&f.hints),
        stack: f.stack.iter().map(FrameRef::display).collect(),
        rate_text: format_rate(f.metric, f.fit.rate_per_hour),
        limit_text: format_rate(f.metric, limit),
    }
}

/// What was last alerted for one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Metric name.
    pub metric: String,
    /// Call site.
    pub site: String,
    /// Verdict when last alerted.
    pub verdict: String,
    /// Rate when last alerted, units per hour.
    pub rate_per_hour: f64,
    /// Confidence when last alerted.
    pub confidence: f64,
    /// Unit of the rate.
    pub unit: String,
    /// Human-readable rate when last alerted.
    pub rate_text: String,
    /// When the site was first alerted (RFC 3339).
    pub first_alerted: String,
    /// When the site was last alerted (RFC 3339).
    pub last_alerted: String,
    /// Rounds in a row the site has been below the thresholds since.
    #[serde(default)]
    pub misses: u32,
}

/// Sites alerted so far, by (metric, site); optionally persisted as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The watched capture directory (absolute).
    pub capture: PathBuf,
    /// Alerted sites.
    pub alerted: BTreeMap<(String, String), Entry>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    capture: PathBuf,
    alerted: Vec<Entry>,
}

fn key_of(f: &Finding) -> (String, String) {
    (metric_name(f.metric), f.site.clone())
}

/// What changed materially since an entry was alerted, given the site's verdict and rate
/// now: another verdict, or a rate at least [`RATE_CHANGE_FACTOR`] times higher or lower.
fn material_change(e: &Entry, verdict: &str, metric: Metric, now: f64) -> Option<String> {
    if verdict != e.verdict {
        return Some(format!("verdict changed from {} to {verdict}", e.verdict));
    }
    let before = e.rate_per_hour;
    if before > 0.0 && now >= before * RATE_CHANGE_FACTOR {
        return Some(format!(
            "rate went up from {} to {}",
            e.rate_text,
            format_rate(metric, now)
        ));
    }
    if before > 0.0 && now <= before / RATE_CHANGE_FACTOR {
        return Some(format!(
            "rate went down from {} to {}",
            e.rate_text,
            format_rate(metric, now)
        ));
    }
    None
}

impl State {
    /// An empty state for `capture`.
    pub fn new(capture: &Path) -> State {
        State {
            capture: capture.to_path_buf(),
            alerted: BTreeMap::new(),
        }
    }

    /// Reads the state file, or an empty state when it does not exist yet. A file written
    /// for another capture or by a newer version is refused, and so is a damaged one (empty,
    /// truncated, not JSON); [`State::open`] recovers from the last.
    pub fn load(path: &Path, capture: &Path) -> Result<State, WatchError> {
        Self::read(path, capture).map_err(|(_, e)| e)
    }

    /// Reads the state file like [`State::load`], but a damaged file (empty, truncated or
    /// not JSON, as a crash or a full disk may leave an older leakscope's file) is renamed
    /// to `NAME.corrupt` and an empty state is returned, with a one-line warning naming both
    /// files. Sites alerted before are then alerted once more.
    pub fn open(path: &Path, capture: &Path) -> Result<(State, Option<String>), WatchError> {
        match Self::read(path, capture) {
            Ok(s) => Ok((s, None)),
            Err((false, e)) => Err(e),
            Err((true, e)) => {
                let mut kept = path.as_os_str().to_owned();
                kept.push(".corrupt");
                let kept = PathBuf::from(kept);
                std::fs::rename(path, &kept).map_err(|r| WatchError::State {
                    path: path.to_path_buf(),
                    reason: format!("{e}; and it cannot be moved aside: {r}"),
                })?;
                let warning = format!(
                    "{e}; starting with an empty state (the damaged file was kept as {})",
                    kept.display()
                );
                Ok((State::new(capture), Some(warning)))
            }
        }
    }

    /// Reads the state file; the error says whether the file is damaged (`true`) rather
    /// than unreadable or refused.
    fn read(path: &Path, capture: &Path) -> Result<State, (bool, WatchError)> {
        let err = |reason: String| WatchError::State {
            path: path.to_path_buf(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::new(capture)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err((true, err(format!("not a leakscope watch state file ({e})"))))
            }
            Err(e) => return Err((false, err(format!("cannot read: {e}")))),
        };
        let file: StateFile = serde_json::from_str(&text).map_err(|e| {
            let what = if text.trim().is_empty() {
                "empty file".to_string()
            } else {
                e.to_string()
            };
            (
                true,
                err(format!("not a leakscope watch state file ({what})")),
            )
        })?;
        if file.version != STATE_VERSION {
            return Err((
                false,
                err(format!(
                    "state version {} is not supported (expected {STATE_VERSION})",
                    file.version
                )),
            ));
        }
        if file.capture != capture {
            return Err((
                false,
                err(format!(
                    "was written for capture {}, not {}; use another state file",
                    file.capture.display(),
                    capture.display()
                )),
            ));
        }
        Ok(State {
            capture: file.capture,
            alerted: file
                .alerted
                .into_iter()
                .map(|e| ((e.metric.clone(), e.site.clone()), e))
                .collect(),
        })
    }

    /// Writes the state file atomically and durably: a temporary file next to it, fsynced,
    /// renamed over it, and the directory fsynced (the capture crate's
    /// [`write_atomically`](leakscope_capture::segment::write_atomically)). A crash leaves
    /// the old file or the new one, never a part.
    pub fn save(&self, path: &Path) -> Result<(), WatchError> {
        let err = |reason: String| WatchError::State {
            path: path.to_path_buf(),
            reason,
        };
        let file = StateFile {
            version: STATE_VERSION,
            capture: self.capture.clone(),
            alerted: self.alerted.values().cloned().collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| err(e.to_string()))?;
        if path.file_name().is_none() {
            return Err(err("not a file name".into()));
        }
        leakscope_capture::durable::replace_file(path, |f| {
            use std::io::Write;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")
        })
        .map_err(|e| match e {
            leakscope_capture::CaptureError::Io { source, .. } => {
                err(format!("cannot write: {source}"))
            }
            other => err(format!("cannot write: {other}")),
        })
    }

    /// Counts a round: sites crossing now have no misses, alerted sites not crossing one
    /// more. Without resolve messages, sites past [`RESOLVE_AFTER`] misses are forgotten.
    pub fn observe(&mut self, crossings: &[Crossing], resolve: bool) {
        let now: std::collections::HashSet<(String, String)> =
            crossings.iter().map(|c| key_of(c.finding)).collect();
        for (k, e) in self.alerted.iter_mut() {
            if now.contains(k) {
                e.misses = 0;
            } else {
                e.misses = e.misses.saturating_add(1);
            }
        }
        if !resolve {
            self.alerted.retain(|_, e| e.misses < RESOLVE_AFTER);
        }
    }

    /// The alerts due this round (after [`State::observe`]): new and materially changed
    /// crossings in the ranking's order, then resolved sites.
    pub fn pending(
        &self,
        crossings: &[Crossing],
        ranking: &Ranking,
        thresholds: &Thresholds,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        for c in crossings {
            let f = c.finding;
            match self.alerted.get(&key_of(f)) {
                None => out.push(alert_of(Status::New, f, c.limit)),
                Some(e) => {
                    let change =
                        material_change(e, &verdict_name(f), f.metric, f.fit.rate_per_hour);
                    if let Some(change) = change {
                        let mut a = alert_of(Status::Changed, f, c.limit);
                        a.previous_rate_per_hour = Some(e.rate_per_hour);
                        a.change = change;
                        out.push(a);
                    }
                }
            }
        }
        // The first finding of each key, looked up once per resolved site (not a scan of
        // every finding per site).
        let mut by_key: HashMap<(String, String), &Finding> = HashMap::new();
        for f in &ranking.findings {
            by_key.entry(key_of(f)).or_insert(f);
        }
        for (k, e) in &self.alerted {
            if e.misses < RESOLVE_AFTER {
                continue;
            }
            let current = by_key.get(k).map(|f| (*f, thresholds.limit(f.metric)));
            let mut a = match current {
                Some((f, limit)) => {
                    let mut a = alert_of(Status::Resolved, f, limit);
                    a.change = format!(
                        "below the thresholds for {} rounds (now {}, {:.0}% confident)",
                        e.misses,
                        f.fit.verdict.label(),
                        f.fit.confidence * 100.0
                    );
                    a
                }
                None => Alert {
                    status: Status::Resolved,
                    site: e.site.clone(),
                    metric: e.metric.clone(),
                    unit: e.unit.clone(),
                    verdict: "gone".into(),
                    rate_per_hour: e.rate_per_hour,
                    limit_per_hour: f64::NAN,
                    confidence: e.confidence,
                    previous_rate_per_hour: None,
                    change: format!("no longer in the capture for {} rounds", e.misses),
                    hints: Vec::new(),
                    stack: Vec::new(),
                    rate_text: e.rate_text.clone(),
                    limit_text: "-".into(),
                },
            };
            a.previous_rate_per_hour = Some(e.rate_per_hour);
            out.push(a);
        }
        out
    }

    /// Records alerts that were delivered: new and changed sites are (re)stored with their
    /// current values, resolved sites are forgotten.
    pub fn commit(&mut self, alerts: &[Alert], now: &str) {
        for a in alerts {
            let key = (a.metric.clone(), a.site.clone());
            match a.status {
                Status::Resolved => {
                    self.alerted.remove(&key);
                }
                Status::New | Status::Changed => {
                    let first = self
                        .alerted
                        .get(&key)
                        .map(|e| e.first_alerted.clone())
                        .unwrap_or_else(|| now.to_string());
                    self.alerted.insert(
                        key,
                        Entry {
                            metric: a.metric.clone(),
                            site: a.site.clone(),
                            verdict: a.verdict.clone(),
                            rate_per_hour: a.rate_per_hour,
                            confidence: a.confidence,
                            unit: a.unit.clone(),
                            rate_text: a.rate_text.clone(),
                            first_alerted: first,
                            last_alerted: now.to_string(),
                            misses: 0,
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(verdict: &str, rate: f64) -> Entry {
        Entry {
            metric: "inuse_space".into(),
            site: "main.f main.go:1".into(),
            verdict: verdict.into(),
            rate_per_hour: rate,
            confidence: 1.0,
            unit: "bytes".into(),
            rate_text: format!("{rate}/h"),
            first_alerted: "t0".into(),
            last_alerted: "t0".into(),
            misses: 0,
        }
    }

    #[test]
    fn state_round_trips_and_refuses_other_captures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let cap = dir.path().join("cap");
        assert_eq!(State::load(&path, &cap).unwrap(), State::new(&cap));
        let mut s = State::new(&cap);
        let e = entry("leak", 100.0);
        s.alerted.insert((e.metric.clone(), e.site.clone()), e);
        s.save(&path).unwrap();
        assert_eq!(State::load(&path, &cap).unwrap(), s);
        let e = State::load(&path, &dir.path().join("other")).unwrap_err();
        assert!(e.to_string().contains("was written for capture"), "{e}");
        std::fs::write(&path, "{").unwrap();
        assert!(State::load(&path, &cap).is_err());
    }

    #[test]
    fn damaged_state_files_are_kept_aside_and_start_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let kept = dir.path().join("state.json.corrupt");
        let cap = dir.path().join("cap");
        for damaged in [
            &b""[..],
            b"{\"version\": 1, \"capt",
            b"\xff\xfe\x00",
            b"  \n",
        ] {
            std::fs::write(&path, damaged).unwrap();
            let (s, warning) = State::open(&path, &cap).unwrap();
            assert_eq!(s, State::new(&cap));
            let w = warning.expect("a warning");
            assert!(w.contains("state.json") && w.contains(".corrupt"), "{w}");
            assert!(!w.contains('\n'), "one line: {w}");
            assert_eq!(std::fs::read(&kept).unwrap(), damaged);
            assert!(!path.exists());
        }
        // A readable file of another capture stays an error and stays in place.
        let mut other = State::new(&dir.path().join("other"));
        let e = entry("leak", 1.0);
        other.alerted.insert((e.metric.clone(), e.site.clone()), e);
        other.save(&path).unwrap();
        assert!(State::open(&path, &cap).is_err());
        assert!(path.exists());
        // Saved through a temporary file that does not stay behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn commit_keeps_first_alert_time_and_forgets_resolved() {
        let mut s = State::new(Path::new("/c"));
        let a = Alert {
            status: Status::New,
            site: "main.f main.go:1".into(),
            metric: "inuse_space".into(),
            unit: "bytes".into(),
            verdict: "leak".into(),
            rate_per_hour: 10.0,
            limit_per_hour: 1.0,
            confidence: 1.0,
            previous_rate_per_hour: None,
            change: String::new(),
            hints: vec![],
            stack: vec![],
            rate_text: "10 B/h".into(),
            limit_text: "1 B/h".into(),
        };
        s.commit(std::slice::from_ref(&a), "t1");
        let changed = Alert {
            status: Status::Changed,
            rate_per_hour: 30.0,
            ..a.clone()
        };
        s.commit(&[changed], "t2");
        let e = s.alerted.values().next().unwrap();
        assert_eq!(
            (e.first_alerted.as_str(), e.last_alerted.as_str()),
            ("t1", "t2")
        );
        assert_eq!(e.rate_per_hour, 30.0);
        let resolved = Alert {
            status: Status::Resolved,
            ..a
        };
        s.commit(&[resolved], "t3");
        assert!(s.alerted.is_empty());
    }

    #[test]
    fn only_material_changes_re_alert() {
        let e = entry("leak", 100.0);
        let m = Metric::InuseSpace;
        assert_eq!(material_change(&e, "leak", m, 100.0), None);
        assert_eq!(material_change(&e, "leak", m, 190.0), None);
        assert_eq!(material_change(&e, "leak", m, 51.0), None);
        let up = material_change(&e, "leak", m, 200.0).unwrap();
        assert!(up.starts_with("rate went up from 100/h to "), "{up}");
        let down = material_change(&e, "leak", m, 50.0).unwrap();
        assert!(down.starts_with("rate went down"), "{down}");
        let v = material_change(&e, "possible-leak", m, 100.0).unwrap();
        assert_eq!(v, "verdict changed from leak to possible-leak");
    }

    #[test]
    fn observe_counts_misses() {
        let mut s = State::new(Path::new("/c"));
        let e = entry("leak", 100.0);
        s.alerted.insert((e.metric.clone(), e.site.clone()), e);
        s.observe(&[], true);
        s.observe(&[], true);
        assert_eq!(s.alerted.values().next().unwrap().misses, 2);
        let mut quiet = s.clone();
        quiet.observe(&[], false);
        assert!(quiet.alerted.is_empty());
    }
}

#[cfg(test)]
mod state_property_tests {
    //! Randomized property (seeded xorshift; thousands of state files: valid ones mutated
    //! byte-wise, truncated, or random bytes): loading never panics, and `State::open`
    //! either reads the file, refuses it, or keeps it aside and starts empty.
    use super::*;

    #[test]
    fn random_state_files_load_or_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let capture = dir.path().join("capture");
        let path = dir.path().join("state.json");
        State::new(&capture).save(&path).unwrap();
        let valid = std::fs::read(&path).unwrap();
        let mut x = 0x5eed_0004_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let mut bytes = valid.clone();
            match next() % 4 {
                0 => bytes.truncate((next() as usize) % (bytes.len() + 1)),
                1 => {
                    for _ in 0..1 + next() % 4 {
                        let i = (next() as usize) % bytes.len();
                        bytes[i] = next() as u8;
                    }
                }
                2 => bytes = (0..next() % 64).map(|_| next() as u8).collect(),
                _ => {
                    let i = (next() as usize) % bytes.len();
                    let junk = ["null", "{}", "[]", "1e999", "\"\\u0000\"", "-0", "{\"a\":"];
                    bytes.splice(i..i, junk[(next() % 7) as usize].bytes());
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let _ = State::load(&path, &capture);
            if let Ok((_, Some(_))) = State::open(&path, &capture) {
                assert!(!path.exists(), "a damaged file stays in place");
            }
            let _ = std::fs::remove_file(format!("{}.corrupt", path.display()));
        }
    }
}
