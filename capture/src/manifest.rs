//! `manifest.json`: what a capture is, who wrote it, when, and with which options.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lock::{CaptureLock, LOCK_FILE};
use crate::{CaptureError, Result, FORMAT_VERSION};

/// File name of the manifest inside a capture directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Value of [`Manifest::format`].
pub const FORMAT_NAME: &str = "leakscope-capture";

/// One recording or import session that wrote into the capture.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// `record` or `import`.
    pub mode: String,
    /// Version of the recorder that wrote it.
    pub recorder_version: String,
    /// Target URL (record) or import paths joined by spaces.
    pub target: String,
    /// Host name of the machine that recorded.
    pub host: String,
    /// Start time, RFC 3339 UTC.
    pub start_time: String,
    /// Options as given (header values are redacted).
    pub options: serde_json::Value,
}

/// The capture manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always `leakscope-capture`.
    pub format: String,
    /// Capture format version ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// Recorder version of the first session.
    pub recorder_version: String,
    /// Target of the first session.
    pub target: String,
    /// Host of the first session.
    pub host: String,
    /// Start time of the first session (RFC 3339 UTC).
    pub start_time: String,
    /// Options of the first session.
    pub options: serde_json::Value,
    /// Every session, first one included, oldest first.
    pub sessions: Vec<Session>,
    /// Labels of the capture (`key` -> `value`, e.g. `pod`, `region`), for grouping many
    /// captures (`leakscope fleet rank --by label:KEY`). Absent from the file when empty,
    /// so a manifest without labels is written as before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Parses a `--label KEY=VALUE` argument: KEY is 1 to 128 ASCII letters, digits, `_`, `-`,
/// `.` or `/`; VALUE is any text without control characters.
pub fn parse_label(text: &str) -> std::result::Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE"))?;
    let key_ok = !key.is_empty()
        && key.len() <= 128
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if !key_ok {
        return Err(format!(
            "{text:?}: the key must be 1 to 128 letters, digits, '_', '-', '.' or '/'"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{text:?}: control character in the value"));
    }
    Ok((key.to_string(), value.to_string()))
}

impl Manifest {
    /// A new manifest whose first session is `session`.
    pub fn new(session: Session) -> Self {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            recorder_version: session.recorder_version.clone(),
            target: session.target.clone(),
            host: session.host.clone(),
            start_time: session.start_time.clone(),
            options: session.options.clone(),
            sessions: vec![session],
            labels: BTreeMap::new(),
        }
    }

    /// Reads and validates the manifest of capture `dir`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST_FILE);
        if !dir.is_dir() {
            return Err(not_a_capture(dir, "not a directory"));
        }
        let text = fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                not_a_capture(dir, "not a leakscope capture (no manifest.json)")
            } else {
                CaptureError::io(&path, e)
            }
        })?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| not_a_capture(&path, &format!("invalid manifest: {e}")))?;
        if m.format != FORMAT_NAME {
            return Err(not_a_capture(
                &path,
                &format!("unknown format {:?}", m.format),
            ));
        }
        if m.format_version > FORMAT_VERSION {
            return Err(not_a_capture(
                &path,
                &format!(
                    "capture format version {} is newer than this build supports ({FORMAT_VERSION})",
                    m.format_version
                ),
            ));
        }
        Ok(m)
    }

    /// Opens capture `dir` for writing: creates it with a new manifest, or appends `session`
    /// to an existing capture's manifest (removing temporary segments a crashed writer left).
    /// A non-empty directory that is not a capture is refused. Takes the capture's lock for
    /// the call only; a writer that goes on writing uses [`Manifest::open_locked`].
    pub fn open_or_create(dir: &Path, session: Session) -> Result<Manifest> {
        let lock = CaptureLock::acquire(dir)?;
        Manifest::open_locked(&lock, session)
    }

    /// [`Manifest::open_or_create`] for the capture whose lock the caller holds (and keeps
    /// while it writes). Also gives a capture from before commit markers its `_commits`
    /// folder (see [`crate::segment::ensure_commit_markers`]).
    pub fn open_locked(lock: &CaptureLock, session: Session) -> Result<Manifest> {
        let dir = lock.dir();
        let manifest = if dir.join(MANIFEST_FILE).exists() {
            let mut m = Manifest::read(dir)?;
            m.sessions.push(session);
            crate::segment::remove_temporaries(dir);
            m
        } else {
            let entries = fs::read_dir(dir).map_err(|e| CaptureError::io(dir, e))?;
            let foreign = entries
                .flatten()
                .any(|e| !is_creation_leftover(dir, &e.file_name().to_string_lossy()));
            if foreign {
                return Err(not_a_capture(
                    dir,
                    "directory is not empty and is not a leakscope capture (no manifest.json); choose another --out",
                ));
            }
            crate::segment::remove_temporaries(dir); // an interrupted creation's
            Manifest::new(session)
        };
        crate::segment::ensure_commit_markers(dir)?;
        manifest.write(dir)?;
        Ok(manifest)
    }

    /// Adds `labels` (a later value for a key replaces the earlier one) and writes the
    /// manifest when that changed it.
    pub fn add_labels(&mut self, dir: &Path, labels: &BTreeMap<String, String>) -> Result<()> {
        let before = self.labels.clone();
        self.labels
            .extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        if self.labels != before {
            self.write(dir)?;
        }
        Ok(())
    }

    /// Writes the manifest atomically (temporary file, fsync, rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let tmp: PathBuf = dir.join(format!(".{MANIFEST_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| CaptureError::BadProfile(e.to_string()))?;
        crate::durable::write_atomically(&tmp, &path, |f| {
            use std::io::Write;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")
        })
    }
}

/// Whether `name` in capture directory `dir` (which has no manifest yet) is what a writer
/// killed while creating the capture leaves behind: the lock, the temporary manifest, the
/// temporary or the still empty `_commits` folder. Such a directory is reused, not refused
/// as foreign (found while writing tests/tests/crash_injection.rs: a kill between
/// `_commits` and `manifest.json` left a capture no writer would open again).
fn is_creation_leftover(dir: &Path, name: &str) -> bool {
    use crate::segment::COMMITS_DIR;
    name == LOCK_FILE
        || name == format!(".{MANIFEST_FILE}.tmp")
        || name == format!(".{COMMITS_DIR}.tmp")
        || (name == COMMITS_DIR
            && fs::read_dir(dir.join(COMMITS_DIR)).is_ok_and(|mut e| e.next().is_none()))
}

fn not_a_capture(path: &Path, reason: &str) -> CaptureError {
    CaptureError::NotACapture {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            mode: "record".into(),
            recorder_version: "test".into(),
            target: "t".into(),
            host: "h".into(),
            start_time: "2026-11-28T06:42:29Z".into(),
            options: serde_json::Value::Null,
        }
    }

    #[test]
    fn labels_are_optional_and_absent_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::open_or_create(dir.path(), session()).unwrap();
        let text = fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap();
        assert!(!text.contains("labels"), "{text}");
        assert!(Manifest::read(dir.path()).unwrap().labels.is_empty());
        let mut m = m;
        m.labels.insert("pod".into(), "api-7".into());
        m.write(dir.path()).unwrap();
        let back = Manifest::read(dir.path()).unwrap();
        assert_eq!(back.labels.get("pod").map(String::as_str), Some("api-7"));
        let mut m = back;
        let more = BTreeMap::from([("region".to_string(), "eu".to_string())]);
        m.add_labels(dir.path(), &more).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap().labels.len(), 2);
        assert_eq!(parse_label("pod=a=b"), Ok(("pod".into(), "a=b".into())));
        assert!(parse_label("pod").is_err());
        assert!(parse_label("=x").is_err());
        assert!(parse_label("a b=x").is_err());
        assert!(parse_label("a=\u{1b}[2J").is_err());
    }

    /// A number in the options that the default float parser reads one ulp off (a fuzz
    /// find) reads back with the same bits once the manifest is rewritten.
    #[test]
    fn long_numbers_in_options_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::open_or_create(dir.path(), session()).unwrap();
        let long = format!("1677728{}16", "8".repeat(91));
        m.options = serde_json::from_str(&format!("{{\"rotate_size\": {long}}}")).unwrap();
        m.write(dir.path()).unwrap();
        let once = Manifest::read(dir.path()).unwrap();
        once.write(dir.path()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), once);
        assert_eq!(once, m);
    }

    #[test]
    fn a_capture_whose_creation_was_killed_is_created_again() {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("capture");
        fs::create_dir_all(cap.join(crate::segment::COMMITS_DIR)).unwrap();
        fs::create_dir_all(cap.join("._commits.tmp")).unwrap();
        fs::write(cap.join(LOCK_FILE), "PID 1\n").unwrap();
        fs::write(cap.join(".manifest.json.tmp"), "{\"form").unwrap();
        let m = Manifest::open_or_create(&cap, session()).unwrap();
        assert_eq!(Manifest::read(&cap).unwrap(), m);
        assert!(!cap.join("._commits.tmp").exists());

        // Markers without a manifest, or any other file: not ours, refused.
        let other = dir.path().join("other");
        fs::create_dir_all(other.join("_commits")).unwrap();
        fs::write(other.join("_commits/x.commit"), "").unwrap();
        let e = Manifest::open_or_create(&other, session()).unwrap_err();
        assert!(e.to_string().contains("not a leakscope capture"), "{e}");
        let other = dir.path().join("third");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("notes.txt"), "").unwrap();
        assert!(Manifest::open_or_create(&other, session()).is_err());
    }
}
