//! Query results for people and programs (`leakscope sql`): an aligned text table with
//! captured text escaped, CSV, JSON, or a Parquet file.

use std::io::Write;
use std::path::Path;

use arrow_array::RecordBatch;

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON array of objects.
    Json,
    /// Parquet file (requires --output).
    Parquet,
}

/// The aligned text table of `batches` (the layout of Arrow's pretty printer), every cell's
/// control and bidi characters shown as escapes ([`crate::output::escape_control`]): a
/// captured name cannot move the cursor, clear the screen or break a row.
fn text_table(batches: &[RecordBatch]) -> anyhow::Result<String> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut table = comfy_table::Table::new();
    table.load_preset("||--+-++|    ++++++");
    let Some(first) = batches.first() else {
        return Ok(table.to_string());
    };
    let cell = |s: &str| comfy_table::Cell::new(crate::output::escape_control(s));
    table.set_header(first.schema().fields().iter().map(|f| cell(f.name())));
    let options = FormatOptions::default().with_display_error(true);
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..b.num_rows() {
            table.add_row(formatters.iter().map(|f| cell(&f.value(row).to_string())));
        }
    }
    Ok(table.to_string())
}

/// Writes `batches` in `format` to `out` (or to the file `path` for Parquet).
pub fn write_results(
    batches: &[RecordBatch],
    format: OutputFormat,
    out: &mut dyn Write,
    path: Option<&Path>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    match format {
        OutputFormat::Table => writeln!(out, "{}", text_table(batches)?)?,
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b)?;
            }
        }
        OutputFormat::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            writeln!(out)?;
        }
        OutputFormat::Parquet => {
            let path = path.context("--format parquet needs --output FILE")?;
            let schema = batches
                .first()
                .map(|b| b.schema())
                .context("query returned no batches to write")?;
            let file = std::fs::File::create(path)
                .with_context(|| format!("{}: cannot create", path.display()))?;
            let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(())
}
