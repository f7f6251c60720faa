//! A linear-time sanity walk of a Parquet footer (Thrift compact protocol) before the
//! Parquet crate decodes it.
//!
//! parquet 59 skips unknown footer fields element by element and treats a list element of
//! type bool as zero bytes, although the compact protocol spends one byte on each. A 3 KB
//! footer that declares lists of two billion booleans then costs about 0.25 s of CPU per
//! read in a release build and about 100 s under the `capture_read` fuzz target's
//! sanitizers (found by it; CI's 10 s per-input limit). Every element of every compact
//! list takes at least one byte, so a list that declares more elements than bytes remain
//! is corrupt; this walk rejects it after looking at each footer byte at most once, and
//! otherwise leaves all decoding to the Parquet crate.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Deepest nesting of structs, lists and maps accepted (the Parquet crate's own limit).
const MAX_DEPTH: u32 = 64;

/// Why a footer is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FooterError(String);

impl fmt::Display for FooterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt footer: {}", self.0)
    }
}

/// Compact-protocol type codes (thrift-compact-protocol.md).
mod ty {
    pub const BOOL_TRUE: u8 = 1;
    pub const BOOL_FALSE: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const I16: u8 = 4;
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SET: u8 = 10;
    pub const MAP: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const UUID: u8 = 13;
}

/// A cursor over the footer bytes.
struct Walk<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Walk<'_> {
    fn fail<T>(&self, what: &str) -> Result<T, FooterError> {
        Err(FooterError(format!("{what} at byte {}", self.pos)))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, FooterError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.fail("unexpected end"),
        }
    }

    fn skip(&mut self, n: usize) -> Result<(), FooterError> {
        if n > self.remaining() {
            return self.fail(&format!("{n} bytes declared, {} left", self.remaining()));
        }
        self.pos += n;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, FooterError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift.min(63);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.fail("varint longer than 10 bytes")
    }

    /// A declared element count, at most one element per remaining byte.
    fn count(&mut self, n: u64, what: &str) -> Result<usize, FooterError> {
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => self.fail(&format!(
                "{what} of {n} elements in {} bytes",
                self.remaining()
            )),
        }
    }

    /// One value of type `t`; `in_list` values of type bool take a byte.
    fn value(&mut self, t: u8, in_list: bool, depth: u32) -> Result<(), FooterError> {
        if depth > MAX_DEPTH {
            return self.fail("nesting deeper than 64");
        }
        match t {
            ty::BOOL_TRUE | ty::BOOL_FALSE if in_list => self.skip(1),
            ty::BOOL_TRUE | ty::BOOL_FALSE => Ok(()),
            ty::BYTE => self.skip(1),
            ty::I16 | ty::I32 | ty::I64 => self.varint().map(drop),
            ty::DOUBLE => self.skip(8),
            ty::BINARY => {
                let n = self.varint()?;
                self.skip(usize::try_from(n).unwrap_or(usize::MAX))
            }
            ty::LIST | ty::SET => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let n = self.count(n, "list")?;
                for _ in 0..n {
                    self.value(h & 0x0f, true, depth + 1)?;
                }
                Ok(())
            }
            ty::MAP => {
                let n = self.varint()?;
                let n = self.count(n, "map")?;
                if n > 0 {
                    let kv = self.byte()?;
                    for _ in 0..n {
                        self.value(kv >> 4, true, depth + 1)?;
                        self.value(kv & 0x0f, true, depth + 1)?;
                    }
                }
                Ok(())
            }
            ty::STRUCT => self.fields(depth + 1),
            ty::UUID => self.skip(16),
            other => self.fail(&format!("unknown type {other}")),
        }
    }

    /// The fields of a struct, up to its stop byte.
    fn fields(&mut self, depth: u32) -> Result<(), FooterError> {
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(());
            }
            if h >> 4 == 0 {
                self.varint()?; // the field id, when not a delta
            }
            self.value(h & 0x0f, false, depth)?;
        }
    }
}

/// Checks the footer of the Parquet file `bytes` (the whole file, or at least its tail
/// holding the footer, its length and `PAR1`). Files too short to have a footer are left
/// to the Parquet crate, which names that problem itself.
pub fn check_tail(tail: &[u8]) -> Result<(), FooterError> {
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Ok(());
    }
    let len = u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]) as usize;
    if len > n - 8 {
        return Ok(());
    }
    let mut w = Walk {
        buf: &tail[n - 8 - len..n - 8],
        pos: 0,
    };
    w.fields(0)
}

/// Reads the footer of `file` (its last 8 + footer-length bytes, or the whole file when
/// shorter) and checks it with [`check_tail`]; the file is left at its start. The outer
/// error is an I/O failure, the inner one a corrupt footer.
pub fn check_file(file: &mut File) -> std::io::Result<Result<(), FooterError>> {
    let len = file.metadata()?.len();
    if len < 8 {
        return Ok(Ok(()));
    }
    let mut last = [0u8; 8];
    file.seek(SeekFrom::Start(len - 8))?;
    file.read_exact(&mut last)?;
    let footer = u64::from(u32::from_le_bytes([last[0], last[1], last[2], last[3]]));
    let start = len.saturating_sub(footer + 8);
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.seek(SeekFrom::Start(start))?;
    file.take(len - start).read_to_end(&mut tail)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(check_tail(&tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(footer: &[u8]) -> Vec<u8> {
        let mut f = b"PAR1".to_vec();
        f.extend_from_slice(footer);
        f.extend_from_slice(&(footer.len() as u32).to_le_bytes());
        f.extend_from_slice(b"PAR1");
        f
    }

    #[test]
    fn real_segments_pass() {
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/captures/demo");
        let mut seen = 0;
        for table in crate::schema::Table::ALL {
            for seg in crate::segment::list_segments(std::path::Path::new(demo), table).unwrap() {
                let bytes = std::fs::read(&seg.path).unwrap();
                check_tail(&bytes).unwrap_or_else(|e| panic!("{}: {e}", seg.path.display()));
                seen += 1;
            }
        }
        assert!(seen > 5, "{seen} segments");
    }

    #[test]
    fn a_list_longer_than_its_bytes_is_rejected() {
        // Field 1 of type list (delta 1, type 9), 2^31 booleans (size 15 + varint).
        let footer = [0x19, 0xf1, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        let err = check_tail(&file(&footer)).unwrap_err().to_string();
        assert!(err.contains("list of 2147483648 elements"), "{err}");
        // Three booleans in three bytes are fine.
        let footer = [0x19, 0x31, 0x01, 0x02, 0x01, 0x00];
        assert_eq!(check_tail(&file(&footer)), Ok(()));
    }

    #[test]
    fn deep_nesting_and_truncation_are_rejected() {
        let mut deep = vec![0x1c; 70]; // struct in struct in ...
        deep.extend([0u8; 70]);
        assert!(check_tail(&file(&deep)).is_err());
        assert!(check_tail(&file(&[0x18, 0x7f])).is_err()); // binary of 127 bytes in 0
        assert_eq!(check_tail(b"not parquet"), Ok(()));
    }
}
