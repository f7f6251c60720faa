//! Row selections from a Parquet file's page index: which pages of one column may hold the
//! values a read wants, so that the reader decodes only those rows of every projected column
//! and skips the other pages without reading them.
//!
//! Why: the ranking reads the heap profiles at a few checkpoints per run (the first, the
//! last and three between) for allocation totals and object sizes. Row-group statistics
//! rarely help there: a 1,000-profile capture's samples file is one or two row groups, so
//! the read fetched about 70% of every samples file a second time (1,000 captures of
//! 1 million rows: 12.75 GiB read for a 10.1 GiB fleet). Pages hold at most 20,000 rows
//! (the Parquet writer's default), so the pages of five profiles are a small part of a
//! file.

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;

/// The rows of `row_groups` (in the order given, which is the order a reader limited to
/// them reads) that lie in pages of the Int64 column at leaf index `column` whose min and
/// max `may_hold` accepts. `None` when the file has no usable page index for the column:
/// then nothing is known and every row must be read. Pages without statistics (all nulls,
/// or not written) are kept.
pub fn select_int64_pages(
    meta: &ParquetMetaData,
    row_groups: &[usize],
    column: usize,
    may_hold: impl Fn(i64, i64) -> bool,
) -> Option<RowSelection> {
    let (column_index, offset_index) = (meta.column_index()?, meta.offset_index()?);
    let mut selectors = Vec::new();
    for &rg in row_groups {
        let rows = usize::try_from(meta.row_groups().get(rg)?.num_rows()).ok()?;
        let ColumnIndexMetaData::INT64(index) = column_index.get(rg)?.get(column)? else {
            return None;
        };
        let pages = offset_index.get(rg)?.get(column)?.page_locations();
        if pages.first().map(|p| p.first_row_index) != Some(0) {
            return None;
        }
        for (i, page) in pages.iter().enumerate() {
            let start = usize::try_from(page.first_row_index).ok()?;
            let end = match pages.get(i + 1) {
                Some(next) => usize::try_from(next.first_row_index).ok()?,
                None => rows,
            };
            // A damaged index (pages out of order or past the row group): read everything.
            if end < start || end > rows {
                return None;
            }
            if end == start {
                continue;
            }
            let keep = match (index.min_value(i), index.max_value(i)) {
                (Some(lo), Some(hi)) => may_hold(*lo, *hi),
                _ => true,
            };
            selectors.push(if keep {
                RowSelector::select(end - start)
            } else {
                RowSelector::skip(end - start)
            });
        }
    }
    Some(RowSelection::from(selectors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, RecordBatch};
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::PageIndexPolicy;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    /// A file of `rows` rows whose column `t` is row / 10, in pages of 10 rows and row
    /// groups of `group` rows.
    fn file(rows: i64, group: usize) -> bytes::Bytes {
        let t = Int64Array::from_iter_values((0..rows).map(|r| r / 10));
        let batch = RecordBatch::try_from_iter([("t", Arc::new(t) as _)]).unwrap();
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(10)
            .set_write_batch_size(10)
            .set_max_row_group_row_count(Some(group))
            .build();
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        out.into()
    }

    fn read(data: bytes::Bytes, page_index: bool) -> ParquetRecordBatchReaderBuilder<bytes::Bytes> {
        let policy = if page_index {
            PageIndexPolicy::Required
        } else {
            PageIndexPolicy::Skip
        };
        let options = ArrowReaderOptions::new().with_page_index_policy(policy);
        ParquetRecordBatchReaderBuilder::try_new_with_options(data, options).unwrap()
    }

    fn values(b: ParquetRecordBatchReaderBuilder<bytes::Bytes>) -> Vec<i64> {
        b.build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                c.values().to_vec()
            })
            .collect()
    }

    #[test]
    fn only_the_pages_that_may_hold_a_wanted_value_are_read() {
        let b = read(file(100, 1000), true);
        let sel = select_int64_pages(b.metadata(), &[0], 0, |lo, hi| {
            [3, 7].iter().any(|t| lo <= *t && *t <= hi)
        })
        .unwrap();
        let got = values(b.with_row_selection(sel));
        let want: Vec<i64> = (30..40).chain(70..80).map(|r| r / 10).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn selections_follow_the_row_groups_read() {
        // Row groups of 40 rows: t 0-3, 4-7, 8-9. Reading groups 2 and 1, in that order.
        let b = read(file(100, 40), true);
        let sel = select_int64_pages(b.metadata(), &[2, 1], 0, |lo, hi| lo <= 5 && 5 <= hi);
        let got = values(
            b.with_row_groups(vec![2, 1])
                .with_row_selection(sel.unwrap()),
        );
        assert_eq!(got, vec![5; 10]);
    }

    #[test]
    fn without_a_page_index_nothing_is_selected() {
        let b = read(file(100, 1000), false);
        assert!(select_int64_pages(b.metadata(), &[0], 0, |_, _| false).is_none());
    }
}
