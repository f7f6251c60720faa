//! One writer per capture: an exclusive advisory lock (`flock`) on `.leakscope.lock` in the
//! capture directory, held by `record` and `import` for as long as they write. A second
//! writer fails at once instead of sharing temporary names with the first.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::{CaptureError, Result};

/// File name of the lock inside a capture directory.
pub const LOCK_FILE: &str = ".leakscope.lock";

/// The held lock of one capture; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct CaptureLock {
    _file: File,
    dir: PathBuf,
}

impl CaptureLock {
    /// Creates `dir` if needed and takes its lock without waiting. Another live writer
    /// holding it is [`CaptureError::Locked`], naming the directory and the holder's PID.
    pub fn acquire(dir: &Path) -> Result<CaptureLock> {
        crate::durable::create_dir_all(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| CaptureError::io(&path, e))?;
        match try_lock_briefly(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(CaptureError::Locked {
                    path: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" ({holder})")
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(CaptureError::io(&path, e)),
        }
        // Who holds it, for the second writer's message; the lock itself is the flock.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "PID {}", std::process::id());
        Ok(CaptureLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// The locked capture directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Attempts to take the lock over [`LOCK_ATTEMPTS`] tries [`LOCK_RETRY`] apart. A lock
/// just released can still be held for a moment by a child process between its fork and
/// its exec: the child shares the open file, and the flock with it, until exec closes it.
/// Another thread of the same program spawning a process is enough (seen once in the
/// recorder's unit tests, whose process tests start `python3` while an import test took
/// the lock of a capture it had released a moment before).
fn try_lock_briefly(file: &File) -> std::result::Result<(), TryLockError> {
    let mut attempt = 1;
    loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if attempt < LOCK_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(LOCK_RETRY);
            }
            done => return done,
        }
    }
}

/// Tries of [`try_lock_briefly`]: a live second writer is refused after about 0.2 s.
const LOCK_ATTEMPTS: u32 = 20;

/// Wait between two tries of [`try_lock_briefly`].
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_is_done() {
        let dir = tempfile::tempdir().unwrap();
        let first = CaptureLock::acquire(dir.path()).unwrap();
        let e = CaptureLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(e.contains("another leakscope-recorder"), "{e}");
        assert!(e.contains(&format!("PID {}", std::process::id())), "{e}");
        drop(first);
        CaptureLock::acquire(dir.path()).unwrap();
    }
}
