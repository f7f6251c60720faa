//! `leakscope watch`: re-ranks a capture while it is recorded and posts an alert to a
//! webhook when a call site crosses the [`Thresholds`](crate::rank::alert::Thresholds).
//!
//! One alert per site until it changes: [`State`] remembers what was posted (keyed by
//! metric and site) and a round posts only sites that are new, whose verdict changed or
//! whose rate doubled or halved since the last post, and sites that stopped crossing for
//! [`RESOLVE_AFTER`] rounds in a row ("resolved"). A round's alerts go out in one request
//! ([`Webhook::post`], with retries); a failed request leaves the state as it was, so the
//! same alerts are posted again next round. The state can be kept in a JSON file, never in
//! the capture directory (it belongs to the recorder).
//!
//! The modules: [`state`] (what was alerted), [`message`] (alert words and JSON bodies),
//! [`webhook`] (delivery with retries), [`runner`] (the round loop, behind the
//! [`runner::Notifier`] and [`runner::Rounds`] traits so it is unit-tested without a
//! network or a capture), [`priority`] (nice and ionice).

pub mod message;
pub mod priority;
pub mod runner;
pub mod state;
pub mod webhook;

use std::path::{Path, PathBuf};

pub use message::{body, generic_body, headline, slack_body, summary, BodyFormat, Origin};
pub use priority::lower_priority;
pub use state::{Alert, Entry, State, Status, RATE_CHANGE_FACTOR, RESOLVE_AFTER};
pub use webhook::{check_url, redact_url, Delivered, DeliveryError, Webhook};

/// What `watch` cannot work with: its webhook URL or its state file.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `--webhook` is not an absolute http(s) URL.
    #[error("--webhook {shown}: {reason}")]
    BadUrl {
        /// The URL with its path and credentials hidden.
        shown: String,
        /// What is wrong.
        reason: String,
    },
    /// The state file cannot be read, parsed or written.
    #[error("--state {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The watched capture directory, absolute. A directory without manifest.json is accepted
/// while it is empty (a recorder about to write it); anything else must be a capture.
pub fn watched_capture(dir: &Path) -> crate::Result<PathBuf> {
    if crate::source::remote::is_remote(dir) {
        // Checked when each round opens it (a prefix may still be empty).
        return Ok(dir.to_path_buf());
    }
    let manifest = dir.join(leakscope_capture::manifest::MANIFEST_FILE);
    let empty = || std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    if dir.is_dir() && !manifest.exists() && empty() {
        return std::fs::canonicalize(dir).map_err(|source| crate::AnalyzeError::Io {
            path: dir.to_path_buf(),
            source,
        });
    }
    Ok(crate::source::catalog::open_capture(dir)?.dir)
}

/// The state file as an absolute path; refused inside the capture (the recorder's directory).
pub fn state_path(state: &Path, capture: &Path) -> Result<PathBuf, WatchError> {
    let err = |reason: String| WatchError::State {
        path: state.to_path_buf(),
        reason,
    };
    let name = state
        .file_name()
        .ok_or_else(|| err("not a file name".into()))?;
    let parent = match state.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(parent)
        .map_err(|_| err(format!("directory {} does not exist", parent.display())))?;
    if dir.starts_with(capture) {
        return Err(err(format!(
            "is inside the capture {}, which belongs to the recorder; keep the state elsewhere",
            capture.display()
        )));
    }
    Ok(dir.join(name))
}
