//! Maps keyed by stack and profile ids, which already are uniform 64-bit hashes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for keys that already are uniform 64-bit hashes (stack ids, profile ids).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Map keyed by 64-bit ids.
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
