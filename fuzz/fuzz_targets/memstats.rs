//! Fuzz target: bytes → both MemStats parsers of the recorder (expvar `/debug/vars` JSON
//! and the `# runtime.MemStats` section of `heap?debug=1` text). Errors are fine; a panic,
//! an OOM or a hang is a bug. Every value a parser returns names a known column.
#![no_main]

use leakscope_recorder::memstats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for parsed in [
        memstats::parse_vars(data),
        memstats::parse_heap_debug1(data),
    ] {
        if let Ok(ms) = parsed {
            assert!(!ms.is_empty(), "a parsed MemStats has at least one field");
            for (column, _) in &ms {
                assert!(memstats::get(&ms, column).is_some(), "{column} looks up");
            }
        }
    }
});
