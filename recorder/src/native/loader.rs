//! Loads the embedded eBPF object with aya and attaches its uprobes to allocators.

use std::num::NonZeroU32;

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};

use super::event::KERNEL_COUNTERS;
use super::maps::Allocator;
use super::sampling::Sampling;
use super::NativeError;

/// The compiled `ebpf/native_alloc.bpf.c` (rebuild with `ebpf/build.sh`).
pub static OBJECT: &[u8] = include_bytes!("../../../ebpf/native_alloc.bpf.o");

/// sha256 of the source `OBJECT` was compiled from (written by `ebpf/build.sh`).
pub const OBJECT_SOURCE_SHA256: &str =
    include_str!("../../../ebpf/native_alloc.bpf.o.source-sha256");

/// The functions the tracer probes, with their programs: (function, entry program, return
/// program; none for functions probed on entry only). The one list of probed functions:
/// [`probed_functions`] and [`is_entry_only`] read it, and `maps` looks for these names in
/// every object that defines `malloc`. Past the C functions: jemalloc's non-standard API,
/// tcmalloc's `tc_free_sized` (tcmalloc's other `tc_*` names are aliases of the C
/// functions, at the same address, so probed once), and the C++ `operator new`/`delete`
/// that jemalloc and tcmalloc export: a C++ program using them calls these directly, never
/// `malloc`. The C++ operators of libstdc++ are not probed (libstdc++ does not define
/// `malloc`; its `operator new` calls `malloc`). Where two names share an address, the
/// first listed is kept (glibc's `aligned_alloc` = `memalign`).
const PROBES: &[(&str, &str, Option<&str>)] = &[
    ("malloc", "size1_enter", Some("alloc_return")),
    ("calloc", "calloc_enter", Some("alloc_return")),
    ("realloc", "realloc_enter", Some("alloc_return")),
    ("free", "free_enter", None),
    (
        "posix_memalign",
        "posix_memalign_enter",
        Some("posix_memalign_return"),
    ),
    ("aligned_alloc", "size2_enter", Some("alloc_return")),
    ("memalign", "size2_enter", Some("alloc_return")),
    ("valloc", "size1_enter", Some("alloc_return")),
    ("pvalloc", "size1_enter", Some("alloc_return")),
    // jemalloc: mallocx(size, flags), rallocx(ptr, size, flags), dallocx(ptr, flags),
    // sdallocx(ptr, size, flags).
    ("mallocx", "size1_enter", Some("alloc_return")),
    ("rallocx", "realloc_enter", Some("alloc_return")),
    ("dallocx", "free_enter", None),
    ("sdallocx", "free_enter", None),
    // tcmalloc: tc_free_sized(ptr, size).
    ("tc_free_sized", "free_enter", None),
    // C++ operator new (size first; the alignment, if any, second) and delete (pointer
    // first), as exported by jemalloc and tcmalloc.
    ("_Znwm", "size1_enter", Some("alloc_return")),
    ("_Znam", "size1_enter", Some("alloc_return")),
    ("_ZnwmRKSt9nothrow_t", "size1_enter", Some("alloc_return")),
    ("_ZnamRKSt9nothrow_t", "size1_enter", Some("alloc_return")),
    ("_ZnwmSt11align_val_t", "size1_enter", Some("alloc_return")),
    ("_ZnamSt11align_val_t", "size1_enter", Some("alloc_return")),
    (
        "_ZnwmSt11align_val_tRKSt9nothrow_t",
        "size1_enter",
        Some("alloc_return"),
    ),
    (
        "_ZnamSt11align_val_tRKSt9nothrow_t",
        "size1_enter",
        Some("alloc_return"),
    ),
    ("_ZdlPv", "free_enter", None),
    ("_ZdaPv", "free_enter", None),
    ("_ZdlPvm", "free_enter", None),
    ("_ZdaPvm", "free_enter", None),
    ("_ZdlPvRKSt9nothrow_t", "free_enter", None),
    ("_ZdaPvRKSt9nothrow_t", "free_enter", None),
    ("_ZdlPvSt11align_val_t", "free_enter", None),
    ("_ZdaPvSt11align_val_t", "free_enter", None),
    ("_ZdlPvmSt11align_val_t", "free_enter", None),
    ("_ZdaPvmSt11align_val_t", "free_enter", None),
    ("_ZdlPvSt11align_val_tRKSt9nothrow_t", "free_enter", None),
    ("_ZdaPvSt11align_val_tRKSt9nothrow_t", "free_enter", None),
];

/// Names of every program in the object.
const PROGRAMS: &[&str] = &[
    "size1_enter",
    "size2_enter",
    "calloc_enter",
    "realloc_enter",
    "posix_memalign_enter",
    "alloc_return",
    "posix_memalign_return",
    "free_enter",
];

/// Checks privileges and uprobe support before loading anything.
pub fn preflight(pid: u32) -> Result<(), NativeError> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(NativeError::NoSuchPid(pid));
    }
    let uid = unsafe { libc::geteuid() };
    if uid != 0 && !has_caps() {
        return Err(NativeError::NotPrivileged { uid });
    }
    if !std::path::Path::new("/sys/bus/event_source/devices/uprobe/type").exists() {
        return Err(NativeError::NoUprobes);
    }
    Ok(())
}

/// True when the effective capabilities include CAP_BPF (39) and CAP_PERFMON (38), or
/// CAP_SYS_ADMIN (21).
fn has_caps() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    has(21) || (has(39) && has(38))
}

/// The loaded programs and maps.
pub struct Loaded {
    ebpf: Ebpf,
    pid: u32,
    probes: u32,
}

impl Loaded {
    /// Loads the object for `pid` with the sampling mode and table sizes.
    pub fn load(
        pid: u32,
        sampling: Sampling,
        max_outstanding: u32,
        ring_bytes: u32,
    ) -> Result<Loaded, NativeError> {
        let sample_every = sampling.sample_every();
        let sample_bytes = sampling.sample_bytes();
        // The reader is woken once an eighth of the ring is unread (and polls on a timer).
        let wakeup_bytes = u64::from(ring_bytes / 8).max(4096);
        let mut ebpf = EbpfLoader::new()
            .override_global("target_tgid", &pid, true)
            .override_global("sample_every", &sample_every, true)
            .override_global("sample_bytes", &sample_bytes, true)
            .override_global("wakeup_bytes", &wakeup_bytes, true)
            .map_max_entries("allocs", max_outstanding)
            .map_max_entries("events", ring_bytes)
            .load(OBJECT)
            .map_err(|e| load_error(&e))?;
        for name in PROGRAMS {
            let prog: &mut UProbe = ebpf
                .program_mut(name)
                .ok_or_else(|| {
                    NativeError::Load(format!("program {name} missing from the object"))
                })?
                .try_into()
                .map_err(|e| NativeError::Load(format!("{name}: {e}")))?;
            prog.load()
                .map_err(|e| NativeError::Load(format!("{name}: {}", chain(&e))))?;
        }
        Ok(Loaded {
            ebpf,
            pid,
            probes: 0,
        })
    }

    /// Attaches entry (and return) probes to every function `a` defines.
    pub fn attach(&mut self, a: &Allocator) -> Result<(), NativeError> {
        // Scoped to the process: the kernel installs the breakpoints only in its address
        // space (all its threads); the program also checks the tgid (`target_tgid`).
        let scope =
            UProbeScope::OneProcess(NonZeroU32::new(self.pid).ok_or(NativeError::NoSuchPid(0))?);
        let mut ordered: Vec<&(&str, u64)> = a.functions.iter().collect();
        ordered.sort_by_key(|(f, _)| attach_rank(f));
        for (function, offset) in ordered {
            let Some((_, entry, ret)) = PROBES.iter().find(|(f, _, _)| f == function) else {
                continue;
            };
            // An entry-only probe may sit past leading flag-only instructions, where the
            // kernel emulates the probed instruction instead of single-stepping it.
            // LEAKSCOPE_NATIVE_ENTRY_SKIP=0 probes every function at its first instruction
            // (for measuring what the skip saves: benches/native_overhead.sh).
            let entry_offset = if ret.is_none() && entry_skip_enabled() {
                offset + a.entry_skip(function)
            } else {
                *offset
            };
            // The return probe before the entry probe: a call whose entry program ran
            // always has its return seen (else its stash would linger, and the block go
            // unreported).
            for prog_name in ret.iter().copied().chain(std::iter::once(*entry)) {
                let at = if prog_name == *entry {
                    entry_offset
                } else {
                    *offset
                };
                let prog: &mut UProbe = self
                    .ebpf
                    .program_mut(prog_name)
                    .and_then(|p| p.try_into().ok())
                    .ok_or_else(|| NativeError::Load(format!("program {prog_name} missing")))?;
                prog.attach(
                    UProbeAttachLocation::AbsoluteOffset(at),
                    &a.open_path,
                    scope,
                )
                .map_err(|e| NativeError::Attach {
                    function: function.to_string(),
                    path: a.path.clone(),
                    reason: chain(&e),
                })?;
                self.probes += 1;
            }
        }
        Ok(())
    }

    /// Tells the programs that allocator calls may nest across libraries (more than one
    /// allocator library traced): unsampled calls are then stashed too, so that a call
    /// nested in one is not sampled on its own (`config[0]` in the eBPF program).
    pub fn set_nesting(&mut self) -> Result<(), NativeError> {
        let map = self
            .ebpf
            .map_mut("config")
            .ok_or_else(|| NativeError::Load("map config missing".into()))?;
        let mut arr: Array<&mut MapData, u32> =
            Array::try_from(map).map_err(|e| NativeError::Load(format!("config: {e}")))?;
        arr.set(0, 1, 0)
            .map_err(|e| NativeError::Load(format!("config: {e}")))
    }

    /// Uprobes attached so far.
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// Takes the ring buffer (for the reader thread).
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, NativeError> {
        let map = self
            .ebpf
            .take_map("events")
            .ok_or_else(|| NativeError::Load("map events missing".into()))?;
        RingBuf::try_from(map).map_err(|e| NativeError::Load(format!("events: {e}")))
    }

    /// The kernel counters, summed over CPUs.
    pub fn counters(&self) -> Result<[u64; KERNEL_COUNTERS], NativeError> {
        let map = self
            .ebpf
            .map("counters")
            .ok_or_else(|| NativeError::Load("map counters missing".into()))?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| NativeError::Load(format!("counters: {e}")))?;
        let mut out = [0u64; KERNEL_COUNTERS];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = arr.get(&(i as u32), 0) {
                *slot = values.iter().copied().fold(0u64, u64::wrapping_add);
            }
        }
        Ok(out)
    }
}

/// Attach order of `function`'s probes (lowest first), so that no block is miscounted
/// while the probes go in one by one: frees first, then realloc-likes (which free and
/// allocate), so that a block whose allocation is traced never has an untraced free (its
/// address, reused, would show as `replaced`); then C++ `operator new`, before the C
/// functions it may call (jemalloc's aligned `operator new` calls `aligned_alloc` through
/// the PLT): an outer call probed before its inner one reports the block with the right
/// stack, while the reverse would report it from inside `operator new` for a moment.
fn attach_rank(function: &str) -> u8 {
    match PROBES.iter().find(|(p, _, _)| *p == function) {
        Some((_, _, None)) => 0,
        Some((_, "realloc_enter", _)) => 1,
        _ if function.starts_with("_Zn") => 2,
        _ => 3,
    }
}

/// Every probed function, in [`PROBES`] order.
pub fn probed_functions() -> impl Iterator<Item = &'static str> {
    PROBES.iter().map(|(f, _, _)| *f)
}

/// Whether `function` is probed on entry only (no return probe), so that its probe may sit
/// past its first instructions (`maps::entry_skip`).
pub fn is_entry_only(function: &str) -> bool {
    PROBES
        .iter()
        .any(|(f, _, ret)| *f == function && ret.is_none())
}

/// False when `LEAKSCOPE_NATIVE_ENTRY_SKIP=0` (entry-only probes at function starts).
pub fn entry_skip_enabled() -> bool {
    std::env::var("LEAKSCOPE_NATIVE_ENTRY_SKIP").map_or(true, |v| v != "0")
}

/// An error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn load_error(e: &aya::EbpfError) -> NativeError {
    let text = chain(e);
    if text.contains("Operation not permitted") || text.contains("EPERM") {
        let uid = unsafe { libc::geteuid() };
        return NativeError::NotPrivileged { uid };
    }
    NativeError::Load(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded object must be built from the current source: run `ebpf/build.sh`.
    #[test]
    fn object_is_current() {
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf/native_alloc.bpf.c");
        let out = std::process::Command::new("sha256sum")
            .arg(src)
            .output()
            .expect("sha256sum runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let current = text.split_whitespace().next().unwrap_or("");
        assert_eq!(
            current,
            OBJECT_SOURCE_SHA256.trim(),
            "ebpf/native_alloc.bpf.c changed since ebpf/native_alloc.bpf.o was built: run ebpf/build.sh"
        );
        assert_eq!(&OBJECT[..4], b"\x7fELF");
    }

    #[test]
    fn outer_functions_are_attached_before_those_they_call() {
        let mut fns = vec![
            "malloc",
            "_ZnwmSt11align_val_t",
            "aligned_alloc",
            "realloc",
            "_ZdlPv",
            "free",
            "_Znwm",
            "rallocx",
            "mallocx",
        ];
        fns.sort_by_key(|f| attach_rank(f));
        assert_eq!(
            fns,
            [
                "_ZdlPv",
                "free",
                "realloc",
                "rallocx",
                "_ZnwmSt11align_val_t",
                "_Znwm",
                "malloc",
                "aligned_alloc",
                "mallocx"
            ]
        );
    }

    #[test]
    fn every_program_exists_in_the_object() {
        let obj = aya_obj_names(OBJECT);
        for p in PROGRAMS {
            assert!(obj.contains(*p), "program {p} not in the object");
        }
    }

    fn aya_obj_names(data: &[u8]) -> String {
        // Program names appear in the ELF string table.
        String::from_utf8_lossy(data).into_owned()
    }

    #[test]
    fn a_missing_pid_is_one_clear_error() {
        let e = preflight(u32::MAX - 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("no process with PID {}", u32::MAX - 1)
        );
    }
}
