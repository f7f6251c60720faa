//! Panics of the Arrow and Parquet crates on corrupt input, contained and reported as
//! errors.
//!
//! parquet 59 still panics on some damaged pages instead of returning an error. The
//! `capture_read` fuzz target found one: definition levels that disagree with their page
//! header make arrow-buffer's `append_packed_range` panic ("offset + len out of bounds");
//! upstream turns such asserts into errors one at a time (apache/arrow-rs#10108). A damaged
//! segment is bad input, not a bug of ours, so:
//!
//! - [`catch`] runs a read and turns a panic into its message;
//! - [`install_hook`] (called first thing by both binaries) keeps the default panic output
//!   for every panic except those raised inside the Arrow/Parquet crates: those are stashed
//!   ([`take_stashed`]) for the one-line error the caller prints, instead of a backtrace.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once};

/// The last panic message raised inside the Arrow/Parquet crates, for the caller's error.
static STASHED: Mutex<Option<String>> = Mutex::new(None);

/// Whether a panic at source file `file` was raised inside the Arrow or Parquet crates
/// (their registry or vendored folders are named `arrow-…-VERSION` or `parquet-VERSION`).
pub fn is_decoder_location(file: &str) -> bool {
    file.split(['/', '\\']).any(|dir| {
        (dir.starts_with("arrow") || dir.starts_with("parquet"))
            && dir
                .rsplit_once('-')
                .is_some_and(|(_, v)| v.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Installs (once per process) the panic hook described in the module docs; every other
/// panic goes to the hook that was installed before.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info
                .location()
                .is_some_and(|l| is_decoder_location(l.file()))
            {
                let msg = panic_message(info.payload());
                if let Ok(mut slot) = STASHED.lock() {
                    *slot = Some(msg);
                }
                return;
            }
            previous(info);
        }));
    });
}

/// Whether a panic inside the Arrow/Parquet crates has been stashed and not yet taken.
pub fn is_stashed() -> bool {
    STASHED.lock().is_ok_and(|s| s.is_some())
}

/// The message of the last panic raised inside the Arrow/Parquet crates, if any (and
/// clears it).
pub fn take_stashed() -> Option<String> {
    STASHED.lock().ok().and_then(|mut s| s.take())
}

/// Runs `read`; a panic becomes `Err` with its message. Use only around decoding of
/// untrusted files: the state `read` touched is dropped, never reused.
pub fn catch<T>(read: impl FnOnce() -> T) -> std::result::Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(read)).map_err(|p| panic_message(&*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_locations_are_the_arrow_and_parquet_crates() {
        let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        for f in [
            "arrow-buffer-59.3.2/src/util/bit_chunk_iterator.rs",
            "parquet-59.3.2/src/arrow/record_reader/definition_levels.rs",
            "arrow-59.3.2/src/lib.rs",
        ] {
            assert!(is_decoder_location(&format!("{reg}/{f}")), "{f}");
        }
        for f in [
            "/work/main/capture/src/read.rs",
            "/work/main/analyzer/src/source/arrow_helpers.rs",
            "datafusion-55.2.0/src/lib.rs",
            "parquet/src/lib.rs",
        ] {
            assert!(!is_decoder_location(f), "{f}");
        }
    }

    #[test]
    fn a_caught_panic_is_its_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let got = catch(|| -> u8 { panic!("offset + len out of bounds") });
        assert_eq!(got, Err("offset + len out of bounds".to_string()));
    }
}
