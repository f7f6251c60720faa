//! Fuzz target: bytes as a capture's `manifest.json` → `Manifest::read`; a manifest that
//! reads is appended to by a new session (`Manifest::open_or_create`, as a restarting
//! writer does) and must read back equal. Also bytes → the expvar JSON parser, the other
//! JSON the recorder parses. Errors are fine; a panic, an OOM or a hang is a bug.
#![no_main]

use std::path::Path;

use leakscope_capture::manifest::{Manifest, Session};
use leakscope_recorder::memstats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = memstats::parse_vars(data);
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = base else { return };
    if std::fs::write(dir.path().join("manifest.json"), data).is_err() {
        return;
    }
    let Ok(before) = Manifest::read(dir.path()) else {
        return;
    };
    let session = Session {
        mode: "import".into(),
        recorder_version: "fuzz".into(),
        target: "fuzz".into(),
        host: "fuzz".into(),
        start_time: "2026-11-28T06:42:29Z".into(),
        options: serde_json::Value::Null,
    };
    let Ok(after) = Manifest::open_or_create(dir.path(), session.clone()) else {
        return;
    };
    assert_eq!(after.sessions.len(), before.sessions.len() + 1);
    assert_eq!(after.sessions.last(), Some(&session));
    let reread = Manifest::read(dir.path()).expect("a manifest just written reads back");
    assert_eq!(reread, after, "the manifest round-trips");
});
