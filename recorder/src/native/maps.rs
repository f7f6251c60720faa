//! Finds the allocators a process has mapped: `/proc/PID/maps` plus the ELF symbols of each
//! executable file mapping (not name matching: any object that defines `malloc` counts).

use std::collections::HashMap;
use std::path::PathBuf;

use object::{Object, ObjectSection, ObjectSymbol};

use super::NativeError;

/// The functions the tracer probes, in attach order.
pub const ALLOCATOR_FUNCTIONS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
];

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
    Some(Allocator {
        open_path,
        path: m.path.clone(),
        functions,
    })
}

/// File offsets of the allocator functions an ELF image defines; `None` without `malloc`.
pub fn allocator_offsets(data: &[u8]) -> Option<Vec<(&'static str, u64)>> {
    let file = object::File::parse(data).ok()?;
    let mut found: HashMap<&'static str, u64> = HashMap::new();
    for sym in file.dynamic_symbols().chain(file.symbols()) {
        if !sym.is_definition() || sym.kind() != object::SymbolKind::Text {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let name = name.split('@').next().unwrap_or(name);
        let Some(&f) = ALLOCATOR_FUNCTIONS.iter().find(|f| **f == name) else {
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
    for f in ALLOCATOR_FUNCTIONS {
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
