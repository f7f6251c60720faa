//! Fuzz target: bytes (gzipped or raw pprof) → the capture crate's bounded pprof decoding →
//! stack frames → a segment set committed with the segment writer into a scratch capture,
//! then read back. Errors are fine; a panic, an OOM or a hang is a bug.
#![no_main]

use leakscope_capture::pprof::{self, ProfileKind};
use leakscope_capture::read;
use leakscope_capture::schema::Table;
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use leakscope_recorder::ingest::{write_profile, ProfileMeta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pprof::starts_like_profile(data, true);
    let _ = pprof::peek_time(data);
    // The kind hint is taken from the input's length so both paths are covered.
    let hint = match data.len() % 4 {
        0 => Some(ProfileKind::Goroutine),
        1 => Some(ProfileKind::Heap),
        _ => None,
    };
    let Ok(p) = pprof::parse(data, hint) else {
        return;
    };
    for id in p.stack_ids() {
        let _ = p.frames(id);
    }
    let _ = p.total(|v| v.inuse_bytes);
    // In memory when possible: every commit fsyncs.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = base else { return };
    let mut w = SegmentWriter::new(dir.path(), RotationPolicy::default());
    let meta = ProfileMeta {
        time_ns: 1_795_428_000_000_000_000,
        target: "fuzz",
        pid: None,
        run_id: "r1",
        scrape_ms: None,
        source: "fuzz.pb.gz",
    };
    write_profile(&mut w, &p, &meta);
    w.rotate().expect("a decoded profile commits");
    let samples: usize = read::read_table(dir.path(), Table::Samples)
        .expect("a committed set reads back")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(
        samples,
        p.samples.len(),
        "every decoded sample is committed"
    );
    assert_eq!(
        read::profile_ids(dir.path()).expect("profile ids").len(),
        1,
        "one profile committed"
    );
});
