//! glibc malloc settings for the long-running `record` command.
//!
//! glibc raises its mmap threshold (128 KiB at start) up to the size of every large block
//! that is freed, so after the first segment commit the ~1 MiB Parquet page and zstd buffers
//! of each commit came from the main heap instead of mmap; they left it fragmented and it
//! never shrank. Fixing the threshold at 64 KiB (which also turns off that adjustment) gives
//! large blocks back to the kernel as soon as they are freed: at `--interval 1s` the median
//! RSS fell by about 3 MiB (20.2 to 16.9 MiB, `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536`,
//! docs/performance.md). `import` keeps glibc's defaults: it allocates large blocks
//! continually and is short-lived.

/// Sets the recorder's malloc options (glibc only; a no-op elsewhere).
pub fn tune_for_recording() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Blocks of at least this size are mmapped and unmapped when freed.
        const MMAP_THRESHOLD: libc::c_int = 64 << 10;
        // SAFETY: mallopt only changes allocator parameters; called before other threads start.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if ok != 1 {
            log::debug!("mallopt(M_MMAP_THRESHOLD) failed");
        }
    }
}
