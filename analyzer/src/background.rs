//! Work nobody waits for: freeing large results off the caller's thread.

/// Drops `value` on a detached thread, so the caller goes on at once.
///
/// Freeing what a ranking of 100M rows by stack holds (the 400 MB matrix, and the frames
/// and function lists of 10,000 groups, each its own allocation) took about 50 ms of a 2 s
/// run on the thread that had to print the result next. Nothing joins the thread: a
/// process that exits first never finishes it, which is the point. If no thread can be
/// started, `value` is dropped here.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    // On failure `spawn` drops the closure, and with it `value`, on this thread.
    let _ = std::thread::Builder::new()
        .name("leakscope-drop".into())
        .spawn(move || drop(value));
}
