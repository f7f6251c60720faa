//! Actionable hints from stacks and shapes: what a growing group's stacks suggest, as
//! typed [`Hint`]s with stable codes. They are worded as likelihoods, never as certainties,
//! by [`crate::output::words::hint`].

use crate::model::metric::Metric;
use crate::model::site::FrameRef;

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
    /// The group's call-site frames (to look at their source lines when available).
    pub site_frames: &'a [FrameRef],
    /// Where source files may be found.
    pub sources: &'a dyn SourceLines,
}

/// Where hints read Go source lines from (on this machine:
/// [`crate::source::go_source::SourceRoots`]); a trait so the hints stay pure.
pub trait SourceLines: Sync {
    /// The source lines of a Go frame from its line to the end of its function, trimmed,
    /// when its file can be found.
    fn rest_of_function(&self, f: &FrameRef) -> Option<Vec<String>>;

    /// The source line of a Go frame, when its file can be found.
    fn line(&self, f: &FrameRef) -> Option<String> {
        self.rest_of_function(f)?.into_iter().next()
    }
}

/// Source evidence of sub-slice retention at an allocation site, strongest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubSlice {
    /// The allocated buffer is sliced later in the same function: (line number, line).
    Sliced(i64, String),
    /// The source was read and the buffer is not sliced there.
    NotSliced,
    /// No source (or no named buffer) to tell.
    Unknown,
}

/// Whether the buffer allocated at `f` (`buf := make(...)` or `buf = make(...)`) is
/// sliced (`buf[i:j]`) further down its function, as a sub-slice that outlives it would be.
pub fn sub_slice_at(sources: &dyn SourceLines, f: &FrameRef) -> SubSlice {
    static ALLOC: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let Some(lines) = sources.rest_of_function(f) else {
        return SubSlice::Unknown;
    };
    let alloc = ALLOC.get_or_init(|| {
        regex::Regex::new(r"^(?:var\s+)?(\w+)(?:\s+\[\]\w+)?\s*:?=\s*make\(").expect("static regex")
    });
    static STORED_WHOLE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let stored_whole = STORED_WHOLE.get_or_init(|| {
        regex::Regex::new(r"\bappend\(\s*[\w.\[\]]+\s*,\s*make\(").expect("static regex")
    });
    let Some(var) = alloc.captures(&lines[0]).map(|c| c[1].to_string()) else {
        // `list = append(list, make(...))`: the buffer goes whole into a collection.
        return if stored_whole.is_match(&lines[0]) {
            SubSlice::NotSliced
        } else {
            SubSlice::Unknown
        };
    };
    let sliced = regex::Regex::new(&format!(r"\b{}\[[^\]\[]*:[^\]\[]*\]", regex::escape(&var)))
        .expect("escaped identifier");
    lines
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, l)| sliced.is_match(l))
        .map(|(i, l)| SubSlice::Sliced(f.line + i as i64, l.clone()))
        .unwrap_or(SubSlice::NotSliced)
}

/// Whether a Go source line stores into an indexed element (`m[k] = v`): when that line
/// allocates, the allocation is map storage.
pub fn is_index_assignment(line: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^[\w.()*\]\[]*\w\[[^\]]+\]\s*(=|\+=|\|=)\s*[^=]").expect("static regex")
    })
    .is_match(line)
}

fn has(functions: &[String], pred: impl Fn(&str) -> bool) -> bool {
    functions.iter().any(|f| pred(f))
}

/// What a group's stacks suggest about its growth.
#[derive(Debug, Clone, PartialEq)]
pub enum Hint {
    /// Go's goroutine leak detector reports this many goroutines of the group.
    RuntimeReportedLeaked {
        /// Goroutines reported.
        goroutines: f64,
    },
    /// Goroutines of HTTP client connections accumulate.
    HttpClientConnections,
    /// Goroutines parked on a channel receive (or a select) accumulate.
    ParkedOnChannel {
        /// Parked in a select rather than a plain receive.
        select: bool,
    },
    /// Goroutines blocked sending on a channel accumulate.
    BlockedSending,
    /// Goroutines blocked on a lock or WaitGroup accumulate.
    BlockedOnLock,
    /// Goroutines waiting on network I/O accumulate.
    WaitingOnNetwork,
    /// Goroutines sleeping in a loop accumulate.
    SleepingInLoop,
    /// The goroutines' code also creates tickers or timers.
    TickerNeverStopped,
    /// Heap growth is goroutine descriptors and stacks.
    GoroutineDescriptors,
    /// Heap growth comes from creating tickers or timers.
    TimerAllocations,
    /// The growth is map storage.
    MapOnlyGrows,
    /// The growing allocation is an indexed store (`m[k] = v`) at this source line.
    MapAssignment {
        /// Source line number.
        line: i64,
        /// The line, trimmed.
        text: String,
    },
    /// Live objects are large; what the source says about sub-slices of them.
    LargeObjects {
        /// Mean bytes per live object.
        size: f64,
        /// Source evidence of sub-slice retention.
        evidence: SubSlice,
    },
    /// The stack crosses into C (cgo): Go-side wrappers grow.
    CgoWrappers,
    /// C memory allocated without a matching free.
    NativeUnfreed,
    /// The C memory is allocated from Go through cgo.
    CgoMissingFree,
}

impl Hint {
    /// Stable code for scripts (JSON `hint_codes`), kebab-case.
    pub fn code(&self) -> &'static str {
        match self {
            Hint::RuntimeReportedLeaked { .. } => "runtime-leak-report",
            Hint::HttpClientConnections => "http-client-connections",
            Hint::ParkedOnChannel { .. } => "parked-on-channel",
            Hint::BlockedSending => "blocked-sending",
            Hint::BlockedOnLock => "blocked-on-lock",
            Hint::WaitingOnNetwork => "waiting-on-network",
            Hint::SleepingInLoop => "sleeping-in-loop",
            Hint::TickerNeverStopped => "ticker-never-stopped",
            Hint::GoroutineDescriptors => "goroutine-descriptors",
            Hint::TimerAllocations => "timers-never-stopped",
            Hint::MapOnlyGrows | Hint::MapAssignment { .. } => "map-only-grows",
            Hint::LargeObjects {
                evidence: SubSlice::Sliced(..),
                ..
            } => "sub-slice-retention",
            Hint::LargeObjects {
                evidence: SubSlice::NotSliced,
                ..
            } => "large-buffers-kept",
            Hint::LargeObjects {
                evidence: SubSlice::Unknown,
                ..
            } => "large-objects",
            Hint::CgoWrappers => "cgo-go-side",
            Hint::NativeUnfreed => "native-unfreed",
            Hint::CgoMissingFree => "cgo-missing-free",
        }
    }
}

/// A finding's hints, most specific first (JSON: `hints`, the words, and `hint_codes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints(pub Vec<Hint>);

/// Functions that create timers or tickers.
pub fn is_timer_function(f: &str) -> bool {
    matches!(
        f,
        "time.NewTicker" | "time.Tick" | "time.After" | "time.NewTimer" | "time.AfterFunc"
    ) || f.starts_with("time.newTimer")
}

/// Hints for one group, most specific first.
pub fn hints(h: &HintInput<'_>) -> Vec<Hint> {
    let f = h.functions;
    let mut out = Vec::new();
    if h.runtime_leaked > 0.0 {
        out.push(Hint::RuntimeReportedLeaked {
            goroutines: h.runtime_leaked,
        });
    }
    if !h.growing {
        return out;
    }
    match h.metric {
        Metric::Goroutines => {
            let recv = has(f, |s| s.starts_with("runtime.chanrecv"));
            let select = has(f, |s| s == "runtime.selectgo");
            let send = has(f, |s| s.starts_with("runtime.chansend"));
            if has(f, |s| s.starts_with("net/http.(*persistConn)")) {
                out.push(Hint::HttpClientConnections);
            } else if recv || select {
                out.push(Hint::ParkedOnChannel { select });
            } else if send {
                out.push(Hint::BlockedSending);
            } else if has(f, |s| {
                s.starts_with("sync.(*Mutex)")
                    || s.contains("semacquire")
                    || s == "sync.(*WaitGroup).Wait"
            }) {
                out.push(Hint::BlockedOnLock);
            } else if has(f, |s| {
                s.starts_with("internal/poll.") || s.starts_with("net.")
            }) {
                out.push(Hint::WaitingOnNetwork);
            } else if has(f, |s| s == "time.Sleep") {
                out.push(Hint::SleepingInLoop);
            }
            if h.allocates_timers || has(f, is_timer_function) {
                out.push(Hint::TickerNeverStopped);
            }
        }
        Metric::InuseSpace | Metric::InuseObjects => {
            if has(f, |s| s == "runtime.malg" || s == "runtime.allgadd") {
                out.push(Hint::GoroutineDescriptors);
            }
            if has(f, is_timer_function) {
                out.push(Hint::TimerAllocations);
            }
            if has(f, |s| {
                s.starts_with("runtime.mapassign")
                    || s.starts_with("internal/runtime/maps.")
                    || s == "runtime.hashGrow"
                    || s == "runtime.makemap"
            }) {
                out.push(Hint::MapOnlyGrows);
            } else if let Some((f, line)) = h.site_frames.iter().find_map(|f| {
                h.sources
                    .line(f)
                    .filter(|l| is_index_assignment(l))
                    .map(|l| (f, l))
            }) {
                out.push(Hint::MapAssignment {
                    line: f.line,
                    text: line,
                });
            }
            if h.object_size >= 32.0 * 1024.0 {
                let evidence = h
                    .site_frames
                    .iter()
                    .map(|f| sub_slice_at(h.sources, f))
                    .min()
                    .unwrap_or(SubSlice::Unknown);
                out.push(Hint::LargeObjects {
                    size: h.object_size,
                    evidence,
                });
            }
            if has(f, |s| s.contains("_Cfunc_") || s == "runtime.cgocall") {
                out.push(Hint::CgoWrappers);
            }
        }
        Metric::Native => {
            out.push(Hint::NativeUnfreed);
            if has(f, |s| {
                s.contains("_Cfunc_") || s == "runtime.cgocall" || s == "runtime.asmcgocall"
            }) {
                out.push(Hint::CgoMissingFree);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::go_source::SourceRoots;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// `sub_slice_at` for the frame at `line` of a Go file holding `src`.
    fn sub_slice_in(src: &str, line: i64) -> SubSlice {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.go");
        std::fs::write(&file, src).unwrap();
        let f = FrameRef {
            function: "main.f".into(),
            file: file.display().to_string(),
            line,
        };
        sub_slice_at(&SourceRoots::default(), &f)
    }

    #[test]
    fn sub_slice_evidence_from_source() {
        let returned = "package main\n\nfunc loadRecord(size int) []byte {\n\tbuf := make([]byte, size)\n\tfill(buf)\n\treturn buf[:16]\n}\n\nfunc other() []byte {\n\tx := make([]byte, 8)\n\treturn x[1:2]\n}\n";
        assert_eq!(
            sub_slice_in(returned, 4),
            SubSlice::Sliced(6, "return buf[:16]".into())
        );
        // Slicing in the next function does not count.
        let whole = "package main\n\nfunc keep() {\n\tbuf := make([]byte, 1<<16)\n\tall = append(all, buf)\n}\n\nfunc other(buf []byte) []byte {\n\treturn buf[:1]\n}\n";
        assert_eq!(sub_slice_in(whole, 4), SubSlice::NotSliced);
        let appended =
            "package main\n\nfunc keep() {\n\tall = append(all, make([]byte, 1<<16))\n}\n";
        assert_eq!(sub_slice_in(appended, 4), SubSlice::NotSliced);
        // Not an allocation we can name, or no source at all.
        let other = "package main\n\nfunc f() {\n\tg(make([]byte, 10))\n}\n";
        assert_eq!(sub_slice_in(other, 4), SubSlice::Unknown);
        let missing = FrameRef {
            function: "main.f".into(),
            file: "/nonexistent/main.go".into(),
            line: 4,
        };
        assert_eq!(
            sub_slice_at(&SourceRoots::default(), &missing),
            SubSlice::Unknown
        );
    }

    #[test]
    fn index_assignment() {
        assert!(is_index_assignment("sessions[s.id] = s"));
        assert!(is_index_assignment("c.byKey[k] += 1"));
        assert!(!is_index_assignment("x := a[i]"));
        assert!(!is_index_assignment("if m[k] == v {"));
        assert!(!is_index_assignment("buf := make([]byte, n)"));
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
            site_frames: &[],
            sources: &SourceRoots::default(),
        });
        assert_eq!(h[0], Hint::ParkedOnChannel { select: false }, "{h:?}");
        let f = names(&[
            "runtime.mallocgc",
            "runtime.mapassign_faststr",
            "main.cache",
        ]);
        let h = hints(&HintInput {
            metric: Metric::InuseSpace,
            functions: &f,
            object_size: 100.0,
            growing: true,
            runtime_leaked: 0.0,
            allocates_timers: false,
            site_frames: &[],
            sources: &SourceRoots::default(),
        });
        assert!(h.contains(&Hint::MapOnlyGrows), "{h:?}");
        let h = hints(&HintInput {
            metric: Metric::InuseSpace,
            functions: &f,
            object_size: 100.0,
            growing: false,
            runtime_leaked: 0.0,
            allocates_timers: false,
            site_frames: &[],
            sources: &SourceRoots::default(),
        });
        assert!(h.is_empty());
        let f = names(&[
            "runtime.mallocgc",
            "runtime.newobject",
            "runtime.malg",
            "runtime.newproc1",
            "runtime.systemstack",
        ]);
        let h = hints(&HintInput {
            metric: Metric::InuseSpace,
            functions: &f,
            object_size: 400.0,
            growing: true,
            runtime_leaked: 0.0,
            allocates_timers: false,
            site_frames: &[],
            sources: &SourceRoots::default(),
        });
        assert!(h.contains(&Hint::GoroutineDescriptors), "{h:?}");
    }
}
