//! Finds the allocators a process has mapped: `/proc/PID/maps` plus the ELF symbols of each
//! executable file mapping (not name matching: any object that defines `malloc` counts, so
//! glibc, jemalloc, tcmalloc, mimalloc or a custom allocator are found alike).

use std::collections::HashMap;
use std::path::PathBuf;

use object::{Object, ObjectSection, ObjectSymbol};

use super::loader::{is_entry_only, probed_functions};
use super::NativeError;

/// One executable file mapping of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Path as shown in the maps file.
    pub path: String,
    /// Device and inode: the identity of the file.
    pub dev_inode: (String, u64),
}

/// Parses the executable, file-backed mappings of a `/proc/PID/maps` text (one per file).
pub fn executable_mappings(maps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let (Some(_range), Some(perms), Some(_off), Some(dev), Some(inode)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let path = it.collect::<Vec<_>>().join(" ");
        let inode: u64 = inode.parse().unwrap_or(0);
        if !perms.contains('x')
            || inode == 0
            || !path.starts_with('/')
            || path.ends_with(" (deleted)")
        {
            continue;
        }
        let m = Mapping {
            path,
            dev_inode: (dev.to_string(), inode),
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Reads and parses `/proc/PID/maps`.
pub fn read_executable_mappings(pid: u32) -> Result<Vec<Mapping>, NativeError> {
    let path = format!("/proc/{pid}/maps");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(executable_mappings(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NativeError::NoSuchPid(pid)),
        Err(source) => Err(NativeError::Proc { path, source }),
    }
}

/// An allocator found in one mapped file: where to attach each function it defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocator {
    /// Path to open for attaching (through `/proc/PID/root` so containers work).
    pub open_path: PathBuf,
    /// Path as the process maps it.
    pub path: String,
    /// (function, file offset) for each probed function the file defines. Aliases at one
    /// offset (glibc's `aligned_alloc` = `memalign`) are listed once, under the first name.
    pub functions: Vec<(&'static str, u64)>,
    /// (function, bytes) for functions whose entry-only probe may sit past their first
    /// instructions (see [`entry_skip`]); functions not listed are probed at their start.
    pub entry_skips: Vec<(&'static str, u64)>,
}

impl Allocator {
    /// Bytes past the start of `function` where an entry-only probe (one without a return
    /// probe, which must sit at the first instruction) can be placed.
    pub fn entry_skip(&self, function: &str) -> u64 {
        self.entry_skips
            .iter()
            .find(|(f, _)| *f == function)
            .map_or(0, |(_, n)| *n)
    }
}

/// Inspects one mapped file; `None` when it does not define `malloc`.
pub fn inspect(pid: u32, m: &Mapping) -> Option<Allocator> {
    let rooted = PathBuf::from(format!("/proc/{pid}/root{}", m.path));
    let open_path = if rooted.exists() {
        rooted
    } else {
        PathBuf::from(&m.path)
    };
    let data = std::fs::read(&open_path).ok()?;
    let functions = allocator_offsets(&data)?;
    let entry_skips = functions
        .iter()
        .filter(|(f, _)| is_entry_only(f))
        .filter_map(|(f, off)| {
            let code = data.get(usize::try_from(*off).ok()?..)?;
            let n = entry_skip(code);
            (n > 0).then_some((*f, n as u64))
        })
        .collect();
    Some(Allocator {
        open_path,
        path: m.path.clone(),
        functions,
        entry_skips,
    })
}

/// Where past the start of a function's machine code (`code`, x86-64) an entry probe costs
/// least without changing what it sees.
///
/// The kernel emulates a probed jump, call, `nop` or `push reg`; any other instruction is
/// single-stepped out of line: a second trap, which costs microseconds (about 10 us on the
/// VM of docs/performance.md, 20 times an emulated probe). glibc's `free` starts with
/// `test %rdi,%rdi; je ...`, so probing it at its first instruction single-steps on every
/// call. An instruction that writes only the flags (`test`/`cmp` between registers, and
/// `endbr64`, which writes nothing) does not change the argument registers an entry program
/// reads, and always falls through to the next one; so the probe can move past up to three
/// of them when that lands on an emulated instruction. Returns 0 otherwise (probe the
/// start). Only for probes without a return probe: a return probe hijacks the return
/// address at the stack pointer, so it must fire before the function pushes anything.
#[cfg(target_arch = "x86_64")]
pub fn entry_skip(code: &[u8]) -> usize {
    if emulated(code) {
        return 0;
    }
    let mut at = 0;
    for _ in 0..3 {
        let Some(n) = flags_only_len(&code[at.min(code.len())..]) else {
            return 0;
        };
        at += n;
        if emulated(&code[at.min(code.len())..]) {
            return at;
        }
    }
    0
}

/// Other architectures: always the function's start.
#[cfg(not(target_arch = "x86_64"))]
pub fn entry_skip(_code: &[u8]) -> usize {
    0
}

/// Length of a leading instruction that writes at most the flags and touches no memory:
/// `endbr64`, or `test`/`cmp` between two registers (optional REX prefix).
#[cfg(target_arch = "x86_64")]
fn flags_only_len(code: &[u8]) -> Option<usize> {
    if code.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        return Some(4); // endbr64
    }
    let rex = usize::from(matches!(code.first(), Some(0x40..=0x4f)));
    let (&op, &modrm) = (code.get(rex)?, code.get(rex + 1)?);
    // test r/m,r (84, 85); cmp r/m,r and r,r/m (38, 39, 3a, 3b); mod = 11: register operands.
    (matches!(op, 0x84 | 0x85 | 0x38..=0x3b) && modrm >> 6 == 0b11).then_some(rex + 2)
}

/// True when the kernel emulates the instruction at the start of `code` instead of
/// single-stepping it (arch/x86/kernel/uprobes.c: `branch_setup_xol_ops`,
/// `push_setup_xol_ops`): jcc, jmp, call rel32, `nop` (0x90), `push reg`.
#[cfg(target_arch = "x86_64")]
fn emulated(code: &[u8]) -> bool {
    matches!(
        code,
        [0x70..=0x7f | 0xeb | 0xe9 | 0xe8 | 0x90 | 0x50..=0x57, ..]
            | [0x0f, 0x80..=0x8f, ..]
            | [0x41, 0x50..=0x57, ..]
    )
}

/// File offsets of the allocator functions an ELF image defines; `None` without `malloc`.
///
/// Only global (or weak) definitions count: the exported symbols a caller can bind to
/// (`.dynsym`, or `.symtab` for a static executable). A file-local helper that happens to
/// be named like an allocator function is not the allocator's entry point. An object that
/// defines `malloc` but whose `malloc` the process does not call (glibc's, when jemalloc is
/// `LD_PRELOAD`ed) is probed too: its probes never fire. Calls from one traced allocator into
/// another (a wrapper whose `malloc` calls the next one) are reported once, by the
/// outermost call (the eBPF program's nesting check, counter `nested_calls`).
pub fn allocator_offsets(data: &[u8]) -> Option<Vec<(&'static str, u64)>> {
    let file = object::File::parse(data).ok()?;
    let mut found: HashMap<&'static str, u64> = HashMap::new();
    for sym in file.dynamic_symbols().chain(file.symbols()) {
        if !sym.is_definition() || sym.kind() != object::SymbolKind::Text || sym.is_local() {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let name = name.split('@').next().unwrap_or(name);
        let Some(f) = probed_functions().find(|f| *f == name) else {
            continue;
        };
        if found.contains_key(f) {
            continue;
        }
        let Some(idx) = sym.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(idx) else {
            continue;
        };
        let Some((sec_off, _)) = section.file_range() else {
            continue;
        };
        let Some(rel) = sym.address().checked_sub(section.address()) else {
            continue;
        };
        found.insert(f, sec_off + rel);
    }
    found.get("malloc")?;
    let mut out: Vec<(&'static str, u64)> = Vec::new();
    for f in probed_functions() {
        if let Some(&off) = found.get(f) {
            if !out.iter().any(|(_, o)| *o == off) {
                out.push((f, off));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn entry_probes_skip_flag_only_instructions_onto_emulated_ones() {
        // glibc 2.36 free: test %rdi,%rdi; je rel32; push %rbp
        assert_eq!(
            entry_skip(&[0x48, 0x85, 0xff, 0x0f, 0x84, 0xbf, 0, 0, 0, 0x55]),
            3
        );
        // test %rdi,%rdi; je rel8
        assert_eq!(entry_skip(&[0x48, 0x85, 0xff, 0x74, 0x10]), 3);
        // endbr64; push %r12
        assert_eq!(entry_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x41, 0x54]), 4);
        // endbr64; test %rdi,%rdi; je
        assert_eq!(
            entry_skip(&[0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x85, 0xff, 0x74, 0x10]),
            7
        );
        // Already emulated: push %r12 (malloc), push %rbp.
        assert_eq!(entry_skip(&[0x41, 0x54, 0x55]), 0);
        assert_eq!(entry_skip(&[0x55, 0x48, 0x89, 0xe5]), 0);
        // mov %rdi,%rax writes a register: stay at the start.
        assert_eq!(entry_skip(&[0x48, 0x89, 0xf8, 0x55]), 0);
        // test with a memory operand (mod != 11), or nothing emulated after the test.
        assert_eq!(entry_skip(&[0x48, 0x85, 0x07, 0x74, 0x10]), 0);
        assert_eq!(entry_skip(&[0x48, 0x85, 0xff, 0x48, 0x89, 0xf8]), 0);
        assert_eq!(entry_skip(&[0x48, 0x85]), 0);
        assert_eq!(entry_skip(&[]), 0);
    }

    #[test]
    fn keeps_executable_file_mappings_once() {
        let maps = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 123 /usr/bin/app
55d0c0a01000-55d0c0a02000 r-xp 00001000 fe:01 123 /usr/bin/app
7f0000000000-7f0000100000 r-xp 00028000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
7f0000300000-7f0000301000 r-xp 00000000 00:00 0 [vdso]
7f0000400000-7f0000401000 r-xp 00000000 fe:01 789 /tmp/my lib.so
7f0000500000-7f0000501000 r-xp 00000000 fe:01 790 /tmp/gone.so (deleted)
";
        let m = executable_mappings(maps);
        let paths: Vec<_> = m.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/usr/bin/app",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/tmp/my lib.so"
            ]
        );
        assert_eq!(m[1].dev_inode, ("fe:01".to_string(), 456));
    }

    #[test]
    fn finds_the_c_library_allocator_and_not_the_recorder() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let libc = executable_mappings(&maps)
            .into_iter()
            .find(|m| m.path.contains("libc.so"))
            .expect("libc mapped");
        let a = inspect(std::process::id(), &libc).expect("libc defines malloc");
        let names: Vec<_> = a.functions.iter().map(|(f, _)| *f).collect();
        for f in ["malloc", "calloc", "realloc", "free", "posix_memalign"] {
            assert!(names.contains(&f), "{f} missing from {names:?}");
        }
        assert!(
            a.entry_skips.iter().all(|(f, _)| *f == "free"),
            "{:?}",
            a.entry_skips
        );
        assert!(allocator_offsets(b"not an elf").is_none());
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let own = executable_mappings(&maps)
            .into_iter()
            .find(|m| std::path::Path::new(&m.path) == exe);
        assert!(
            own.is_some_and(|m| inspect(std::process::id(), &m).is_none()),
            "the test binary defines malloc?"
        );
    }
}
