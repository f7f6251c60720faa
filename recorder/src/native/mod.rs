//! Native (C/CGO) allocation tracing with eBPF uprobes (`record --native`).
//!
//! [`loader`] loads the C eBPF program (`ebpf/native_alloc.bpf.c`, embedded as a compiled
//! object) with aya and attaches it to the allocator functions of the libraries that
//! [`maps`] finds in `/proc/PID/maps`. [`tracer`] drains the ring buffer on a thread,
//! keeps the outstanding-allocation accounting ([`account`]) per raw stack, symbolizes new
//! stacks with blazesym ([`symbolize`]) and turns each interval into capture rows.
//! [`event`] mirrors the kernel's record layout and counters; [`sampling`] holds the
//! sampling modes and the weights that keep sampled totals unbiased.

pub mod account;
pub mod event;
pub mod loader;
pub mod maps;
pub mod sampling;
pub mod symbolize;
pub mod tracer;

pub use sampling::Sampling;
pub use tracer::{NativeOptions, NativeSnapshot, NativeTracer};

/// Why native tracing could not start or continue. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The recorder lacks the privileges to load eBPF programs and open uprobes.
    #[error(
        "native tracing needs root, or CAP_BPF and CAP_PERFMON (running as uid {uid} without them)"
    )]
    NotPrivileged {
        /// Effective user id of the recorder.
        uid: u32,
    },
    /// The kernel has no uprobe perf PMU.
    #[error("this kernel has no uprobe support (/sys/bus/event_source/devices/uprobe missing; needs CONFIG_UPROBE_EVENTS)")]
    NoUprobes,
    /// The PID does not exist.
    #[error("no process with PID {0}")]
    NoSuchPid(u32),
    /// No mapped object of the target defines an allocator the tracer knows.
    #[error("PID {pid}: no allocator found: none of its {objects} mapped executable files defines malloc (a pure Go program without cgo, or a static binary without symbols?)")]
    NoAllocator {
        /// Target PID.
        pid: u32,
        /// Executable file mappings inspected.
        objects: usize,
    },
    /// Loading the eBPF object failed.
    #[error("loading the eBPF program failed: {0}")]
    Load(String),
    /// Attaching a uprobe failed.
    #[error("attaching uprobe {function} in {path}: {reason}")]
    Attach {
        /// Allocator function.
        function: String,
        /// Library path.
        path: String,
        /// Error text.
        reason: String,
    },
    /// Reading /proc failed.
    #[error("{path}: {source}")]
    Proc {
        /// File read.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
