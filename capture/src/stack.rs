//! Stack frames and the stable 64-bit stack id.
//!
//! The stack id is `xxh3_64` over the concatenated encoding of every frame, leaf first.
//! A frame encodes as `function`, `0x00`, `file`, `0x00`, `line` (i64 little endian); a
//! frame without a function name (unsymbolized native code) adds `build_id`, `0x00` and
//! `file_offset` (u64 little endian) so distinct addresses stay distinct; when such a frame
//! has no file offset its `address` is hashed instead (0 when it has neither). Mapping paths
//! never enter the hash, and addresses enter it only through those unsymbolized frames
//! without a file offset, so a symbolized code path gets the same id across profiles,
//! processes, segments, runs and hosts, while an unsymbolized one is only stable as long as
//! its addresses are (e.g. not across ASLR or rebuilds).

use xxhash_rust::xxh3::Xxh3;

/// One frame of a stack: a function at a source position, maybe inlined into its caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// Function name as the profile or symbolizer gave it (may be empty when unknown).
    pub function: String,
    /// Source file path (may be empty).
    pub file: String,
    /// Source line, 0 when unknown.
    pub line: i64,
    /// True when this frame was inlined into the next (caller) frame.
    pub inlined: bool,
    /// Instruction address when the frame is not symbolized.
    pub address: Option<u64>,
    /// Path of the mapped object (binary or library) when known.
    pub mapping: Option<String>,
    /// Build id of the mapped object when known.
    pub build_id: Option<String>,
    /// Offset of the address within the mapped file, for offline symbolization.
    pub file_offset: Option<u64>,
}

impl Frame {
    /// Appends this frame's canonical encoding (see module docs) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.function.as_bytes());
        out.push(0);
        out.extend_from_slice(self.file.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.line.to_le_bytes());
        if self.function.is_empty() {
            out.extend_from_slice(self.build_id.as_deref().unwrap_or("").as_bytes());
            out.push(0);
            out.extend_from_slice(&self.file_offset.or(self.address).unwrap_or(0).to_le_bytes());
        }
    }
}

/// Incremental stack id computation over pre-encoded frame bytes.
#[derive(Default)]
pub struct StackHasher(Xxh3);

impl StackHasher {
    /// Starts a new stack.
    pub fn new() -> Self {
        StackHasher(Xxh3::new())
    }

    /// Feeds the canonical encoding of one or more frames (leaf first).
    pub fn update(&mut self, encoded_frames: &[u8]) {
        self.0.update(encoded_frames);
    }

    /// The stack id.
    pub fn finish(&self) -> u64 {
        self.0.digest()
    }
}

/// The stack id of `frames` (leaf first).
pub fn stack_id(frames: &[Frame]) -> u64 {
    let mut buf = Vec::with_capacity(frames.len() * 48);
    for f in frames {
        f.encode_into(&mut buf);
    }
    let mut h = StackHasher::new();
    h.update(&buf);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: &str, file: &str, line: i64) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
            ..Default::default()
        }
    }

    #[test]
    fn id_ignores_addresses_and_mappings() {
        let a = vec![
            f("main.leak", "/src/main.go", 10),
            f("main.main", "/src/main.go", 3),
        ];
        let mut b = a.clone();
        b[0].address = Some(0x4000);
        b[0].mapping = Some("/bin/x".into());
        assert_eq!(stack_id(&a), stack_id(&b));
    }

    #[test]
    fn id_depends_on_order_lines_and_boundaries() {
        let a = vec![f("main.a", "x.go", 1), f("main.b", "x.go", 2)];
        let swapped = vec![f("main.b", "x.go", 2), f("main.a", "x.go", 1)];
        let other_line = vec![f("main.a", "x.go", 1), f("main.b", "x.go", 3)];
        let shifted = vec![f("main.ax", ".go", 1), f("main.b", "x.go", 2)];
        assert_ne!(stack_id(&a), stack_id(&swapped));
        assert_ne!(stack_id(&a), stack_id(&other_line));
        assert_ne!(stack_id(&a), stack_id(&shifted));
    }

    #[test]
    fn unsymbolized_frames_differ_by_offset() {
        let mut a = Frame {
            build_id: Some("abc".into()),
            file_offset: Some(16),
            ..Default::default()
        };
        let b = a.clone();
        a.file_offset = Some(32);
        assert_ne!(stack_id(&[a]), stack_id(&[b]));
    }

    #[test]
    fn unsymbolized_frames_without_offset_hash_the_address() {
        // As the module docs say: with no function and no file offset, the address counts.
        let a = Frame {
            address: Some(0x4000),
            ..Default::default()
        };
        let b = Frame {
            address: Some(0x5000),
            ..Default::default()
        };
        assert_ne!(stack_id(std::slice::from_ref(&a)), stack_id(&[b]));
        let with_offset = Frame {
            file_offset: Some(16),
            ..a.clone()
        };
        let other_address = Frame {
            address: Some(0x5000),
            ..with_offset.clone()
        };
        assert_eq!(stack_id(&[with_offset]), stack_id(&[other_address]));
    }

    #[test]
    fn id_is_stable_across_releases() {
        // Pinned value: changing it breaks GROUP BY stack_id across old and new captures.
        let s = vec![f("main.leak", "/src/main.go", 10)];
        assert_eq!(stack_id(&s), STABLE_ID);
    }

    const STABLE_ID: u64 = 12862053064111890561;
}
