//! `leakscope sql`: run SQL (typed or shipped in `queries/`) and print results.

pub mod udf;

use std::io::Write;
use std::path::Path;

use arrow_array::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::error::{AnalyzeError, Result};

/// A query shipped inside the binary (from `queries/*.sql`).
#[derive(Debug, Clone, Copy)]
pub struct CannedQuery {
    /// Name (file stem).
    pub name: &'static str,
    /// SQL text; the first line is `-- description`.
    pub sql: &'static str,
}

impl CannedQuery {
    /// One-line description (the first comment line).
    pub fn description(&self) -> &'static str {
        self.sql
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("--"))
            .map(str::trim)
            .unwrap_or("")
    }
}

macro_rules! canned {
    ($($name:literal),* $(,)?) => {
        &[$(CannedQuery { name: $name, sql: include_str!(concat!("../../../queries/", $name, ".sql")) }),*]
    };
}

/// Every shipped query, by name.
pub const QUERIES: &[CannedQuery] = canned![
    "top_growth",
    "top_inuse",
    "memory_timeline",
    "goroutines_by_stack",
    "gaps_and_restarts",
    "scrape_health",
];

/// Looks up a shipped query.
pub fn canned(name: &str) -> Result<&'static CannedQuery> {
    let name = name.strip_suffix(".sql").unwrap_or(name);
    QUERIES
        .iter()
        .find(|q| q.name == name)
        .ok_or_else(|| AnalyzeError::UnknownQuery(name.to_string()))
}

/// Plans and runs `sql`, collecting every batch; errors are one-line SQL errors.
pub async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let df = ctx.sql(sql).await.map_err(sql_error)?;
    df.collect().await.map_err(sql_error)
}

/// Flattens a DataFusion error into a one-line message.
pub fn sql_error(e: datafusion::error::DataFusionError) -> AnalyzeError {
    let text = e.to_string();
    AnalyzeError::Sql(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Output format of query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_file_is_shipped_with_a_description() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../queries");
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "sql") {
                let stem = p.file_stem().unwrap().to_str().unwrap();
                let q = canned(stem).unwrap_or_else(|_| panic!("{stem}.sql not in QUERIES"));
                assert!(!q.description().is_empty(), "{stem} lacks a description");
            }
        }
        assert!(matches!(canned("nope"), Err(AnalyzeError::UnknownQuery(_))));
    }
}
