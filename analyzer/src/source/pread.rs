//! A Parquet [`ChunkReader`] over a file that reads with positioned reads (`pread`).
//!
//! The parquet crate's own `impl ChunkReader for File` clones the descriptor, seeks and
//! closes it again for every page it reads: four system calls per page where one does.
//! On the 100M-row benchmark capture that was about 37,000 `dup`/`lseek`/`close` triples.
//!
//! A scan that reads whole column chunks can [`PreadFile::prefetch`] them: each is then
//! read with one `pread`, and the reader's pages and page headers are slices of it. Read
//! page by page, every page cost two reads: its header through an 8 KiB buffer (for a
//! header of about 20 bytes) and its data into a buffer of its own. At 100M rows
//! that was 36,000 reads, 137 MB of them header buffers (`strace -c`, by stack).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use parquet::errors::Result as ParquetResult;
use parquet::file::reader::{ChunkReader, Length};

/// A file read by offset; clones share one descriptor and the chunks prefetched.
#[derive(Debug, Clone)]
pub struct PreadFile {
    file: Arc<File>,
    len: u64,
    chunks: Arc<OnceLock<Vec<Chunk>>>,
}

/// Bytes of the file read ahead, from offset `start`.
#[derive(Debug)]
struct Chunk {
    start: u64,
    bytes: Bytes,
}

/// Ranges closer than this are read as one (the gap is read and not used).
const MERGE_GAP: u64 = 4096;

impl PreadFile {
    /// Wraps an open file, reading its length once.
    pub fn new(file: File) -> io::Result<PreadFile> {
        let len = file.metadata()?.len();
        Ok(PreadFile {
            file: Arc::new(file),
            len,
            chunks: Arc::default(),
        })
    }

    /// Reads the byte ranges `(start, length)` now, each with one `pread` (ranges less
    /// than [`MERGE_GAP`] apart as one), so that later reads inside them are slices of
    /// memory. Only the first call on a file (or its clones) counts. A range past the end
    /// of the file is an error.
    pub fn prefetch(&self, ranges: &[(u64, u64)]) -> io::Result<()> {
        if self.chunks.get().is_some() {
            return Ok(());
        }
        let mut ranges: Vec<(u64, u64)> = ranges.iter().copied().filter(|r| r.1 > 0).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (start, len) in ranges {
            let end = start
                .checked_add(len)
                .filter(|e| *e <= self.len)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "range {start}+{len} past the end of the file ({})",
                            self.len
                        ),
                    )
                })?;
            match merged.last_mut() {
                Some((s, l)) if start <= *s + *l + MERGE_GAP => *l = (*l).max(end - *s),
                _ => merged.push((start, len)),
            }
        }
        let chunks = merged
            .into_iter()
            .map(|(start, len)| {
                Ok(Chunk {
                    start,
                    bytes: self.read_at(start, len as usize)?,
                })
            })
            .collect::<io::Result<Vec<Chunk>>>()?;
        // Another clone may have set them meanwhile: theirs cover the same reads.
        let _ = self.chunks.set(chunks);
        Ok(())
    }

    /// The prefetched chunk holding offset `start`, and where `start` is in it.
    fn locate(&self, start: u64) -> Option<(&Bytes, usize)> {
        let chunks = self.chunks.get()?;
        let c = &chunks[chunks
            .partition_point(|c| c.start <= start)
            .checked_sub(1)?];
        let from = usize::try_from(start - c.start).ok()?;
        (from < c.bytes.len()).then_some((&c.bytes, from))
    }

    /// `len` bytes from `start`, with one positioned read.
    fn read_at(&self, start: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, start)?;
        Ok(buf.into())
    }
}

impl Length for PreadFile {
    fn len(&self) -> u64 {
        self.len
    }
}

/// A sequential reader from an offset of a [`PreadFile`].
#[derive(Debug)]
pub struct PreadCursor {
    file: Arc<File>,
    pos: u64,
}

impl Read for PreadCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A sequential reader from an offset: of a prefetched chunk, or of the file.
#[derive(Debug)]
pub enum PreadRead {
    /// The rest of a prefetched chunk, then the file after it (unbuffered: Parquet reads a
    /// page header within its column chunk, so only a damaged footer's offsets get there).
    Cached(io::Chain<bytes::buf::Reader<Bytes>, PreadCursor>),
    /// The file, through a buffer.
    File(io::BufReader<PreadCursor>),
}

impl Read for PreadRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PreadRead::Cached(r) => r.read(buf),
            PreadRead::File(r) => r.read(buf),
        }
    }
}

impl ChunkReader for PreadFile {
    type T = PreadRead;

    fn get_read(&self, start: u64) -> ParquetResult<Self::T> {
        if let Some((bytes, from)) = self.locate(start) {
            let after = PreadCursor {
                file: self.file.clone(),
                pos: start + (bytes.len() - from) as u64,
            };
            let rest = bytes::Buf::reader(bytes.slice(from..));
            return Ok(PreadRead::Cached(rest.chain(after)));
        }
        Ok(PreadRead::File(io::BufReader::new(PreadCursor {
            file: self.file.clone(),
            pos: start,
        })))
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        let within = self
            .locate(start)
            .filter(|(b, from)| length <= b.len() - from);
        if let Some((bytes, from)) = within {
            return Ok(bytes.slice(from..from + length));
        }
        Ok(self.read_at(start, length)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_from_offsets_and_bytes_like_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"0123456789")
            .unwrap();
        let f = PreadFile::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(f.len(), 10);
        let mut s = String::new();
        f.get_read(4).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "456789");
        assert_eq!(&f.get_bytes(2, 3).unwrap()[..], b"234");
        assert!(
            f.get_bytes(8, 5).is_err(),
            "reading past the end is an error"
        );
    }

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, PreadFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let f = PreadFile::new(File::open(&path).unwrap()).unwrap();
        (dir, f)
    }

    #[test]
    fn prefetched_ranges_answer_every_read_like_the_file() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_dir, f) = file_of(&data);
        // Two ranges near enough to merge, one apart, one empty.
        f.prefetch(&[(9_000, 2_000), (100, 900), (1_500, 500), (30, 0)])
            .unwrap();
        let chunks = f.chunks.get().unwrap();
        assert_eq!(
            chunks
                .iter()
                .map(|c| (c.start, c.bytes.len()))
                .collect::<Vec<_>>(),
            vec![(100, 1_900), (9_000, 2_000)]
        );
        for (start, len) in [
            (0, 50),
            (100, 10),
            (150, 1_850),
            (1_990, 30),
            (9_500, 1_500),
            (10_999, 1),
            (10_999, 2),
            (19_990, 10),
        ] {
            let got = f.get_bytes(start, len).unwrap();
            assert_eq!(
                &got[..],
                &data[start as usize..start as usize + len],
                "{start}+{len}"
            );
            let mut rest = Vec::new();
            f.get_read(start)
                .unwrap()
                .take(3_000)
                .read_to_end(&mut rest)
                .unwrap();
            let end = (start as usize + 3_000).min(data.len());
            // Past the end of a chunk the reader goes on in the file.
            assert_eq!(&rest[..], &data[start as usize..end], "{start}");
        }
        // Prefetching again changes nothing; a range past the end is an error.
        f.prefetch(&[(0, 10)]).unwrap();
        assert_eq!(f.chunks.get().unwrap().len(), 2);
        let (_dir, g) = file_of(&data);
        assert!(g.prefetch(&[(19_000, 2_000)]).is_err());
        assert!(g.prefetch(&[(u64::MAX, 2)]).is_err());
    }
}
