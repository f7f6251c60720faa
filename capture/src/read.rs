//! Reading committed segments back (for tests, import checks and small tools).

use std::collections::HashSet;
use std::fs::File;

use arrow_array::{Array, RecordBatch, UInt64Array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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

/// Reads one segment file.
pub fn read_segment(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(|e| CaptureError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
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
