//! Durable file-system operations shared by every writer of a capture: the one atomic
//! write (temporary file, fsync, rename, fsync of the directory), directory creation that
//! fsyncs each new directory in its parent, and directory fsync that reports its errors.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::{CaptureError, Result};

/// Fsyncs directory `dir`, so entries created, renamed or removed in it survive a power
/// loss. Errors are returned with the directory named, never ignored.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        CaptureError::io(
            dir,
            std::io::Error::new(e.kind(), format!("fsync of the directory: {e}")),
        )
    })
}

/// Creates `dir` and its missing parents; every directory it creates is fsynced in its
/// parent, so a committed file below it is reachable after a power loss.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if missing_parent_is_a_file(dir) {
        return Err(CaptureError::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory (a file is in the way)",
            ),
        ));
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(CaptureError::io(dir, e)),
        }
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// True when `dir`'s nearest existing ancestor (or `dir` itself) is not a directory.
fn missing_parent_is_a_file(dir: &Path) -> bool {
    dir.ancestors()
        .find(|d| d.exists())
        .is_some_and(|d| !d.is_dir())
}

/// Writes `path` atomically: `fill` writes a temporary file `tmp` (same directory), which
/// is flushed, fsynced and renamed over `path`; then the directory is fsynced. On error the
/// temporary file is removed and `path` is untouched.
pub fn write_atomically(
    tmp: &Path,
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let result = (|| -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(tmp)?);
        fill(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        drop(w);
        fs::rename(tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(tmp);
        return Err(CaptureError::io(path, e));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_directories_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        let path = deep.join("f.txt");
        write_atomically(&deep.join(".f.txt.tmp"), &path, |w| w.write_all(b"one")).unwrap();
        let failed = write_atomically(&deep.join(".f.txt.tmp"), &path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        });
        assert!(failed.unwrap_err().to_string().contains("disk on fire"));
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert!(!deep.join(".f.txt.tmp").exists());
    }

    #[test]
    fn a_directory_fsync_error_is_reported_with_the_path() {
        let e = sync_dir(Path::new("/nonexistent/leakscope-dir")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/leakscope-dir"), "{e}");
    }
}
