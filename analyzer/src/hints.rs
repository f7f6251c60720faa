//! Actionable hints from stacks and shapes, worded as likelihoods, never as certainties.

use crate::load::Metric;
use crate::udf::format_bytes;

/// What the hint generator knows about one group.
pub struct HintInput<'a> {
    /// The metric ranked.
    pub metric: Metric,
    /// Every function in any stack of the group.
    pub functions: &'a [String],
    /// Mean bytes per live object (heap only).
    pub object_size: f64,
    /// Whether the group is growing (leak or possible leak).
    pub growing: bool,
    /// Goroutines of this group the runtime's leak detector reported (goroutineleak).
    pub runtime_leaked: f64,
    /// Whether a heap site of the same function allocates timers/tickers.
    pub allocates_timers: bool,
}

fn has(functions: &[String], pred: impl Fn(&str) -> bool) -> bool {
    functions.iter().any(|f| pred(f))
}

/// Functions that create timers or tickers.
pub fn is_timer_function(f: &str) -> bool {
    matches!(
        f,
        "time.NewTicker" | "time.Tick" | "time.After" | "time.NewTimer" | "time.AfterFunc"
    ) || f.starts_with("time.newTimer")
}

/// Hints for one group, most specific first.
pub fn hints(h: &HintInput<'_>) -> Vec<String> {
    let f = h.functions;
    let mut out = Vec::new();
    if h.runtime_leaked > 0.0 {
        out.push(format!(
            "Go's goroutine leak detector (goroutineleak profile) reports {:.0} of these goroutines as blocked forever on unreachable synchronization",
            h.runtime_leaked
        ));
    }
    if !h.growing {
        return out;
    }
    match h.metric {
        Metric::Goroutines => {
            let recv = has(f, |s| s.starts_with("runtime.chanrecv"));
            let select = has(f, |s| s == "runtime.selectgo");
            let send = has(f, |s| s.starts_with("runtime.chansend"));
            if recv || select {
                out.push(format!(
                    "goroutines parked on a channel {} keep accumulating: likely nobody ever sends or closes (add a done/context case or close the channel)",
                    if select { "select" } else { "receive" }
                ));
            } else if send {
                out.push("goroutines blocked sending on a channel keep accumulating: likely the receiver is gone (buffer the channel or select on a done channel)".into());
            } else if has(f, |s| s.starts_with("sync.(*Mutex)") || s.contains("semacquire") || s == "sync.(*WaitGroup).Wait") {
                out.push("goroutines blocked on a lock or WaitGroup keep accumulating: likely a missing Unlock/Done".into());
            } else if has(f, |s| s.starts_with("internal/poll.") || s.starts_with("net.")) {
                out.push("goroutines waiting on network I/O keep accumulating: likely connections or response bodies never closed, or no read deadline".into());
            } else if has(f, |s| s == "time.Sleep") {
                out.push("goroutines sleeping in a loop keep accumulating: likely workers started per request without a stop condition".into());
            }
            if h.allocates_timers || has(f, is_timer_function) {
                out.push("the same code creates time.Ticker/Timer values: likely a ticker never stopped (defer ticker.Stop()) or a goroutine looping on ticker.C with no exit".into());
            }
        }
        Metric::InuseSpace | Metric::InuseObjects => {
            if has(f, is_timer_function) {
                out.push("allocations come from time.NewTicker/time.After: likely tickers or timers created repeatedly and never stopped".into());
            }
            if has(f, |s| {
                s.starts_with("runtime.mapassign")
                    || s.starts_with("internal/runtime/maps.")
                    || s == "runtime.hashGrow"
                    || s == "runtime.makemap"
            }) {
                out.push("the growth is map storage: likely a map that only grows (entries added, never deleted); bound it or evict".into());
            }
            if h.object_size >= 32.0 * 1024.0 {
                out.push(format!(
                    "live objects here average {} each: if callers keep only small sub-slices of these buffers, the whole backing array stays alive (copy the bytes you keep with bytes.Clone or append([]byte(nil), b[i:j]...))",
                    format_bytes(h.object_size)
                ));
            }
            if has(f, |s| s.contains("_Cfunc_") || s == "runtime.cgocall") {
                out.push("the stack crosses into C (cgo): Go-side wrappers grow here; check the C side with --native".into());
            }
        }
        Metric::Native => {
            out.push("C memory allocated without a matching free: invisible to Go's GC and to pprof".into());
            if has(f, |s| s.contains("_Cfunc_") || s == "runtime.cgocall" || s == "runtime.asmcgocall") {
                out.push("called from Go through cgo: check that every C.malloc/C.CString result is passed to C.free".into());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn channel_and_map_hints() {
        let f = names(&["runtime.gopark", "runtime.chanrecv1", "main.worker"]);
        let h = hints(&HintInput {
            metric: Metric::Goroutines,
            functions: &f,
            object_size: 0.0,
            growing: true,
            runtime_leaked: 0.0,
            allocates_timers: false,
        });
        assert!(h[0].contains("channel receive"), "{h:?}");
        let f = names(&["runtime.mallocgc", "runtime.mapassign_faststr", "main.cache"]);
        let h = hints(&HintInput {
            metric: Metric::InuseSpace,
            functions: &f,
            object_size: 100.0,
            growing: true,
            runtime_leaked: 0.0,
            allocates_timers: false,
        });
        assert!(h.iter().any(|s| s.contains("map that only grows")), "{h:?}");
        let h = hints(&HintInput {
            metric: Metric::InuseSpace,
            functions: &f,
            object_size: 100.0,
            growing: false,
            runtime_leaked: 0.0,
            allocates_timers: false,
        });
        assert!(h.is_empty());
    }
}
