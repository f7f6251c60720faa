//! Lowering `watch`'s CPU and I/O priority, so ranking never competes with the recorder
//! or the service.

/// Lowers this thread's CPU priority by 10 nice levels and (Linux) its I/O priority to
/// the lowest best-effort level, so ranking never competes with the recorder or the
/// service. Threads started afterwards inherit it; call before starting any. Best effort:
/// returns what could not be changed.
pub fn lower_priority() -> Vec<String> {
    let mut failed = Vec::new();
    // SAFETY: plain syscalls without pointers; errno is thread-local.
    #[cfg(target_os = "linux")]
    unsafe {
        *libc::__errno_location() = 0;
        if libc::nice(10) == -1 && *libc::__errno_location() != 0 {
            failed.push(format!("nice: {}", std::io::Error::last_os_error()));
        }
        // ioprio_set(IOPRIO_WHO_PROCESS, 0 = this thread, IOPRIO_CLASS_BE << 13 | 7)
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const BEST_EFFORT_LOWEST: libc::c_long = (2 << 13) | 7;
        if libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            BEST_EFFORT_LOWEST,
        ) != 0
        {
            failed.push(format!("ioprio_set: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: plain syscall without pointers.
    #[cfg(not(target_os = "linux"))]
    unsafe {
        if libc::nice(10) == -1 {
            failed.push(format!("nice: {}", std::io::Error::last_os_error()));
        }
    }
    failed
}
