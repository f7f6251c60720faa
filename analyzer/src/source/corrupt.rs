//! Naming the segment behind a decoder failure: the Parquet decoder can panic on a damaged
//! page (see `leakscope_capture::decode_guard`), and a panic inside DataFusion's or the
//! scan's worker threads does not say which file it was reading. After such a failure the
//! binary decodes the segments below the command's locations one by one, with the panic
//! contained, and reports the first one that fails to decode. This costs one full read of
//! the captures (about 1.5 GB for 100M rows), only on this error path.

use std::path::{Path, PathBuf};

use leakscope_capture::read::read_segment;
use leakscope_capture::CaptureError;

/// Every `.parquet` file below `dir` (hidden folders left out), in path order.
fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
}

/// The first segment below `locations` (local directories; others are left out) that the
/// decoder fails on, as its one-line error, or `None` when every segment decodes.
pub fn find_corrupt_segment(locations: &[PathBuf]) -> Option<CaptureError> {
    let mut files = Vec::new();
    for l in locations.iter().filter(|l| l.is_dir()) {
        parquet_files(l, &mut files);
    }
    files.into_iter().find_map(|f| match read_segment(&f) {
        Err(e @ CaptureError::CorruptData { .. }) => Some(e),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_damaged_segment_is_found_among_good_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("cap");
        let demo = root.join("fixtures/captures/demo/samples");
        let part = cap.join("samples/date=2026-11-28");
        std::fs::create_dir_all(&part).unwrap();
        let mut good = Vec::new();
        parquet_files(&demo, &mut good);
        std::fs::copy(&good[0], part.join("a.parquet")).unwrap();
        std::fs::copy(
            root.join("capture/tests/data/bad-definition-levels.parquet"),
            part.join("b.parquet"),
        )
        .unwrap();
        assert!(find_corrupt_segment(std::slice::from_ref(&demo)).is_none());
        let err = find_corrupt_segment(&[cap]).expect("the damaged segment");
        assert!(err.to_string().contains("b.parquet"), "{err}");
    }
}
