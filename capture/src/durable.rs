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
    let filled = (|| -> std::io::Result<()> {
        let mut w = BufWriter::new(File::create(tmp)?);
        fill(&mut w)?;
        w.flush()
    })();
    if let Err(e) = filled {
        let _ = fs::remove_file(tmp);
        return Err(CaptureError::io(path, e));
    }
    commit_file(tmp, path)
}

/// [`write_atomically`] through the temporary file [`temp_path_for`] `path`: the one way
/// every leakscope file that is not a segment (manifest, watch state, reports, charts,
/// exported profiles) reaches the disk.
pub fn replace_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    write_atomically(&temp_path_for(path), path, fill)
}

/// The temporary file that stands in for `path` while it is written: `.NAME.tmp` in the
/// same directory (so the rename is atomic).
pub fn temp_path_for(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Makes `tmp` (already written) the file `path`: fsyncs it, renames it over `path`, and
/// fsyncs the directory. On error `tmp` is removed and `path` is untouched. For writers
/// that can only write to a path (an image encoder); the rest use [`write_atomically`].
pub fn commit_file(tmp: &Path, path: &Path) -> Result<()> {
    let result = File::open(tmp)
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(tmp, path));
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
    fn replace_file_leaves_the_old_file_on_failure_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        replace_file(&path, |w| w.write_all(b"one")).unwrap();
        let failed = replace_file(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.unwrap_err().to_string().contains("state.json"));
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert!(!temp_path_for(&path).exists());
        let tmp = temp_path_for(&path);
        fs::write(&tmp, b"two").unwrap();
        commit_file(&tmp, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp.exists());
    }

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
