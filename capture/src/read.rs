//! Reading committed segments back (for tests, import checks and small tools).

use std::collections::HashSet;
use std::fs::File;

use arrow_array::{Array, RecordBatch, UInt64Array};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

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
pub fn read_segment(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| CaptureError::io(path, e))?;
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .map_err(|e| CaptureError::parquet(path, e))?
        .build()
        .map_err(|e| CaptureError::parquet(path, e))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| CaptureError::Parquet {
            path: path.to_path_buf(),
            source: e.into(),
        })
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
