//! Fuzz target: arbitrary bytes (seeded with real segments, so mostly schema- and
//! footer-mutated Parquet) written as a segment of every table of a scratch capture, once
//! committed (with a `_commits/` marker) and once as a legacy capture, then read through
//! the capture crate's reader (`list_segments`, `read_table`, `profile_ids`,
//! `incomplete_sets`). Errors are fine; a panic, an OOM or a hang is a bug. The Parquet
//! decoder's own panics on damaged pages are contained by the reader and count as errors
//! (`decode_guard`, whose hook defers every other panic to libFuzzer's, which aborts).
#![no_main]

use std::fs;
use std::path::Path;

use leakscope_capture::decode_guard;
use leakscope_capture::read;
use leakscope_capture::schema::Table;
use leakscope_capture::segment;
use libfuzzer_sys::fuzz_target;

const STEM: &str = "20261128T064229.336Z-000000-6eb28aa6";

fn read_everything(dir: &Path) {
    for table in Table::ALL {
        if let Ok(segs) = segment::list_segments(dir, table) {
            for s in segs {
                let _ = read::read_segment(&s.path);
            }
        }
        let _ = read::read_table(dir, table);
    }
    let _ = read::profile_ids(dir);
    let _ = segment::incomplete_sets(dir);
    let _ = segment::incomplete_files(dir);
}

fuzz_target!(|data: &[u8]| {
    decode_guard::install_hook();
    let base = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    };
    let Ok(dir) = base else { return };
    for table in Table::ALL {
        let part = dir.path().join(table.name()).join("date=2026-11-28");
        if fs::create_dir_all(&part).is_err()
            || fs::write(part.join(format!("{STEM}.parquet")), data).is_err()
        {
            return;
        }
    }
    read_everything(dir.path()); // legacy capture: no markers, every set counts
    let commits = dir.path().join("_commits");
    if fs::create_dir_all(&commits).is_err()
        || fs::write(commits.join(format!("{STEM}.commit")), b"").is_err()
    {
        return;
    }
    read_everything(dir.path());
});
