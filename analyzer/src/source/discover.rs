//! Finding the captures below a fleet location: a local directory (walked a few levels
//! deep, not into captures) or an `s3://` prefix (one listing).

use std::path::{Path, PathBuf};

use leakscope_capture::manifest::MANIFEST_FILE;

use crate::error::{AnalyzeError, Result};
use crate::source::remote;

/// Directory levels below the location searched for captures.
pub const MAX_DEPTH: usize = 4;

/// The captures below `location`, sorted: directories (or prefixes) holding a
/// `manifest.json`. A location that is itself a capture is a fleet of one. Fails on one
/// line naming the location when it is missing, unreadable or holds no capture.
pub async fn find_captures(location: &Path) -> Result<Vec<PathBuf>> {
    let fail = |reason: String| AnalyzeError::Fleet {
        location: location.to_path_buf(),
        reason,
    };
    let found = if remote::is_remote(location) {
        remote::find_captures(&location.to_string_lossy())
            .await?
            .into_iter()
            .map(PathBuf::from)
            .collect()
    } else {
        let meta = std::fs::metadata(location).map_err(|e| fail(e.to_string()))?;
        if !meta.is_dir() {
            return Err(fail("not a directory".into()));
        }
        let mut found = Vec::new();
        walk(location, 0, &mut found).map_err(|e| fail(e.to_string()))?;
        found.sort();
        found
    };
    if found.is_empty() {
        return Err(fail(format!(
            "no captures found (no {MANIFEST_FILE} in it or up to {MAX_DEPTH} levels below)"
        )));
    }
    Ok(found)
}

/// Adds `dir` if it is a capture, else walks its subdirectories (hidden ones skipped).
fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.join(MANIFEST_FILE).exists() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // Below the location, an unreadable directory is not fatal.
        Err(_) if depth > 0 => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if !hidden && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth + 1, found)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finds_captures_below_and_not_inside_captures() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for c in ["a", "team/b", "team/deep/c", ".hidden/d"] {
            std::fs::create_dir_all(root.join(c)).unwrap();
            std::fs::write(root.join(c).join(MANIFEST_FILE), "{}").unwrap();
        }
        std::fs::create_dir_all(root.join("a/samples/x")).unwrap();
        std::fs::write(root.join("a/samples/x").join(MANIFEST_FILE), "{}").unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        let found = find_captures(root).await.unwrap();
        let rel: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(rel, ["a", "team/b", "team/deep/c"]);
        let e = find_captures(&root.join("empty"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("empty") && e.contains("no captures found"),
            "{e}"
        );
        let e = find_captures(&root.join("missing"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
