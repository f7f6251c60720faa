//! Call sites: which frame of a stack is "the caller that matters".
//!
//! A Go heap stack starts in the allocator (`runtime.mallocgc`, `runtime.makeslice`, ...)
//! and a goroutine stack in the scheduler (`runtime.gopark`). The call site is the first
//! frame, from the leaf, that belongs to the program rather than to the Go runtime, the
//! standard library, or a C allocator; stacks with no such frame use their leaf.

use regex::Regex;

/// How stacks are grouped for ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// First frame outside the runtime/standard library, with file and line.
    Site,
    /// The whole stack (stack id).
    Stack,
    /// First frame outside the runtime/standard library, function name only.
    Function,
}

/// One frame as the analyzer needs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct FrameRef {
    /// Function name ("" when unsymbolized).
    pub function: String,
    /// Source file.
    pub file: String,
    /// Source line (0 when unknown).
    pub line: i64,
}

/// A stack's frames, leaf first, shared: the stack table, each group's representative
/// stack and its finding hold the same frames. (Copied into the group and rendered into
/// each finding as text, they were about 50 allocations per finding: 30 ms of both cores
/// after the fits at 10,000 findings, perf.)
pub type Frames = std::sync::Arc<[FrameRef]>;

impl FrameRef {
    /// `function file:line`, omitting unknown parts.
    pub fn display(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for FrameRef {
    /// `function file:line`, omitting unknown parts (`??` for an unsymbolized function).
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let f = if self.function.is_empty() {
            "??"
        } else {
            &self.function
        };
        if self.file.is_empty() {
            out.write_str(f)
        } else {
            write!(out, "{f} {}:{}", self.file, self.line)
        }
    }
}

/// C allocator and libc entry points, never a call site of their own.
const NATIVE_SYSTEM: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "free",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "mmap",
    "mmap64",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "_int_malloc",
];

/// Decides which frames are "system" (runtime, standard library, allocator).
#[derive(Debug, Clone, Default)]
pub struct SiteRules {
    /// Extra frames to skip (e.g. an in-house pool library), matched against the function.
    pub skip: Vec<Regex>,
}

/// The Go package path of a function name (`net/http.(*conn).serve` -> `net/http`).
pub fn go_package(function: &str) -> Option<&str> {
    let last_slash = function.rfind('/').map(|i| i + 1).unwrap_or(0);
    let dot = function[last_slash..].find('.')? + last_slash;
    Some(&function[..dot])
}

/// Top-level packages of the Go standard library (and `vendor/` copies inside it).
const GO_STD_ROOTS: &[&str] = &[
    "archive",
    "arena",
    "bufio",
    "builtin",
    "bytes",
    "cmp",
    "compress",
    "container",
    "context",
    "crypto",
    "database",
    "debug",
    "embed",
    "encoding",
    "errors",
    "expvar",
    "flag",
    "fmt",
    "go",
    "hash",
    "html",
    "image",
    "index",
    "internal",
    "io",
    "iter",
    "log",
    "maps",
    "math",
    "mime",
    "net",
    "os",
    "path",
    "plugin",
    "reflect",
    "regexp",
    "runtime",
    "slices",
    "sort",
    "strconv",
    "strings",
    "structs",
    "sync",
    "syscall",
    "testing",
    "text",
    "time",
    "unicode",
    "unique",
    "unsafe",
    "vendor",
    "weak",
];

/// Packages that are machinery rather than a place a program waits or allocates on purpose.
const GO_LOW_LEVEL_ROOTS: &[&str] = &[
    "runtime", "internal", "sync", "syscall", "reflect", "unsafe",
];

fn root_of(function: &str) -> Option<&str> {
    let pkg = go_package(function)?;
    Some(pkg.split('/').next().unwrap_or(pkg))
}

/// True for Go runtime and standard-library functions (by the package path's first
/// element, so module paths without a dot such as `myservice/cache` are not mistaken for
/// the standard library).
pub fn is_go_std(function: &str) -> bool {
    root_of(function).is_some_and(|r| GO_STD_ROOTS.contains(&r))
}

/// Whether a runtime function only carries out an allocation asked for by its caller
/// (`mallocgc` and its variants, `newobject`, `makeslice`, `growslice`, ...).
fn is_allocation_entry(function: &str) -> bool {
    const ENTRIES: &[&str] = &[
        "runtime.malloc",
        "runtime.newobject",
        "runtime.newarray",
        "runtime.makeslice",
        "runtime.growslice",
        "runtime.makemap",
        "runtime.mapassign",
        "runtime.rawstring",
        "runtime.rawbyteslice",
        "runtime.rawruneslice",
        "runtime.concatstring",
        "runtime.slicebytetostring",
        "runtime.persistentalloc",
    ];
    ENTRIES.iter().any(|e| function.starts_with(e))
}

fn is_low_level(function: &str) -> bool {
    root_of(function).is_some_and(|r| GO_LOW_LEVEL_ROOTS.contains(&r))
        || NATIVE_SYSTEM.contains(&function)
}

impl SiteRules {
    /// Whether the frame is system code rather than a candidate call site.
    pub fn is_system(&self, function: &str) -> bool {
        if function.is_empty() {
            return false;
        }
        is_go_std(function)
            || NATIVE_SYSTEM.contains(&function)
            || function.starts_with("__GI_")
            || self.skip.iter().any(|r| r.is_match(function))
    }

    /// Index (from the leaf) of the call-site frame: the first non-system frame; for stacks
    /// entirely inside the standard library, the first frame outside the runtime and
    /// low-level packages (e.g. `net/http.(*persistConn).readLoop`); for stacks entirely
    /// inside the runtime, the first frame past the allocator's entry points (e.g.
    /// `runtime.malg`, goroutine descriptors); else the leaf.
    pub fn site_index(&self, frames: &[FrameRef]) -> usize {
        frames
            .iter()
            .position(|f| !self.is_system(&f.function))
            .or_else(|| frames.iter().position(|f| !is_low_level(&f.function)))
            .or_else(|| {
                frames
                    .iter()
                    .position(|f| !is_allocation_entry(&f.function))
            })
            .unwrap_or(0)
    }

    /// Group key of a stack under `by`; `stack_id` is used for [`GroupBy::Stack`].
    pub fn group_key(&self, by: GroupBy, stack_id: u64, frames: &[FrameRef]) -> String {
        match by {
            GroupBy::Stack => format!("{stack_id:016x}"),
            GroupBy::Site => frames
                .get(self.site_index(frames))
                .map(FrameRef::display)
                .unwrap_or_else(|| "<empty stack>".into()),
            GroupBy::Function => frames
                .get(self.site_index(frames))
                .map(|f| {
                    if f.function.is_empty() {
                        "??".to_string()
                    } else {
                        f.function.clone()
                    }
                })
                .unwrap_or_else(|| "<empty stack>".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr(f: &str) -> FrameRef {
        FrameRef {
            function: f.into(),
            file: "x.go".into(),
            line: 7,
        }
    }

    #[test]
    fn packages_and_std() {
        assert_eq!(go_package("net/http.(*conn).serve"), Some("net/http"));
        assert_eq!(go_package("github.com/a/b.(*T).M"), Some("github.com/a/b"));
        assert_eq!(go_package("main.loadRecord"), Some("main"));
        assert!(is_go_std("runtime.mallocgc"));
        assert!(is_go_std("internal/runtime/maps.newarray"));
        assert!(is_go_std("encoding/json.Unmarshal"));
        assert!(!is_go_std("main.loadRecord"));
        assert!(!is_go_std("github.com/a/b.F"));
        assert!(!is_go_std("leaky_c_alloc"));
        assert!(
            !is_go_std("scenario/leaks.(*Cache).Put"),
            "dotless module path"
        );
    }

    #[test]
    fn site_is_first_user_frame() {
        let rules = SiteRules::default();
        let st = [
            fr("runtime.mallocgc"),
            fr("runtime.makeslice"),
            fr("main.loadRecord"),
            fr("main.main"),
        ];
        assert_eq!(rules.site_index(&st), 2);
        assert_eq!(
            rules.group_key(GroupBy::Site, 1, &st),
            "main.loadRecord x.go:7"
        );
        assert_eq!(
            rules.group_key(GroupBy::Function, 1, &st),
            "main.loadRecord"
        );
        let all_std = [fr("runtime.gopark"), fr("runtime.main")];
        assert_eq!(rules.site_index(&all_std), 0);
        let goroutine_structs = [
            fr("runtime.mallocgc"),
            fr("runtime.newobject"),
            fr("runtime.malg"),
            fr("runtime.newproc1"),
            fr("runtime.systemstack"),
        ];
        assert_eq!(rules.site_index(&goroutine_structs), 2);
        let only_alloc = [fr("runtime.mallocgc"), fr("runtime.growslice")];
        assert_eq!(rules.site_index(&only_alloc), 0);
        let http = [
            fr("runtime.gopark"),
            fr("runtime.selectgo"),
            fr("net/http.(*persistConn).readLoop"),
        ];
        assert_eq!(rules.site_index(&http), 2);
        let native = [fr("malloc"), fr("leaky_c_alloc"), fr("main._Cfunc_leak")];
        assert_eq!(rules.site_index(&native), 1);
        let custom = SiteRules {
            skip: vec![Regex::new("^main\\.loadRecord$").unwrap()],
        };
        assert_eq!(custom.site_index(&st), 3);
    }
}
