//! Reading committed segments back (for tests, import checks and small tools).

use std::collections::HashSet;
use std::fs::File;

use arrow_array::{Array, RecordBatch, UInt64Array};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::decode_guard;
use crate::footer_check;
use crate::schema::Table;
use crate::segment::list_segments;
use crate::{CaptureError, Result};
use std::path::Path;

/// Reads every committed segment of `table` in capture `dir`, oldest first.
pub fn read_table(dir: &Path, table: Table) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for seg in list_segments(dir, table)? {
        out.extend(read_segment(&seg.path)?);
    }
    Ok(out)
}

/// The `profile_id` of every committed profile in capture `dir`.
pub fn profile_ids(dir: &Path) -> Result<HashSet<u64>> {
    let mut ids = HashSet::new();
    for seg in list_segments(dir, Table::Profiles)? {
        for batch in read_segment(&seg.path)? {
            let col = batch
                .column_by_name("profile_id")
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                .ok_or_else(|| CaptureError::BadSegment {
                    path: seg.path.clone(),
                    reason: "no UInt64 profile_id column".into(),
                })?;
            ids.extend(col.values().iter().copied());
        }
    }
    Ok(ids)
}

/// Reads one segment file. The Arrow schema a writer embeds in the footer (`ARROW:schema`)
/// is not used: arrow-ipc panics on a damaged one ("Type NONE not supported", found by the
/// `capture_read` fuzz target), and the Parquet types alone give the capture's Arrow types.
/// A panic of the decoder on a damaged page is this file's error
/// ([`crate::decode_guard`]).
pub fn read_segment(path: &Path) -> Result<Vec<RecordBatch>> {
    let mut file = File::open(path).map_err(|e| CaptureError::io(path, e))?;
    match footer_check::check_file(&mut file) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(CaptureError::BadSegment {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
        Err(e) => return Err(CaptureError::io(path, e)),
    }
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let decode = || {
        ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)?
            .build()?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(parquet::errors::ParquetError::from)
    };
    match decode_guard::catch(decode) {
        Ok(Ok(batches)) => Ok(batches),
        Ok(Err(e)) => Err(CaptureError::parquet(path, e)),
        Err(message) => Err(CaptureError::CorruptData {
            path: path.to_path_buf(),
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/captures/demo");

    /// Regression: a segment whose embedded Arrow schema is damaged (found by the
    /// `capture_read` fuzz target) made arrow-ipc panic; now it reads or fails cleanly.
    #[test]
    fn a_damaged_embedded_arrow_schema_is_no_panic() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-arrow-schema.parquet");
        let _ = read_segment(&path);
    }

    /// Regression: definition levels that disagree with their page header (found by the
    /// `capture_read` fuzz target) make parquet 59 panic inside arrow-buffer; the read is
    /// this file's one-line error instead.
    #[test]
    fn a_decoder_panic_is_an_error_naming_the_segment() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-definition-levels.parquet");
        let err = read_segment(&path).expect_err("a damaged page").to_string();
        assert!(err.contains("bad-definition-levels.parquet"), "{err}");
        assert!(err.contains("corrupt Parquet data"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    /// Without the embedded Arrow schema, every table reads with the capture's own types.
    #[test]
    fn segments_read_with_the_capture_schema() {
        for table in Table::ALL {
            for seg in list_segments(Path::new(DEMO), table).unwrap() {
                for batch in read_segment(&seg.path).unwrap() {
                    let want = table.schema();
                    let got = batch.schema();
                    for f in want.fields() {
                        if let Ok(g) = got.field_with_name(f.name()) {
                            assert_eq!(g.data_type(), f.data_type(), "{table:?}.{}", f.name());
                        }
                    }
                }
            }
        }
    }
}
