//! SQL over captures: the queries shipped in `queries/`, running SQL with one-line errors,
//! leakscope's SQL functions ([`udf`]) and the lossless reading of foreign Parquet
//! ([`conform`]). Printing results is [`crate::output::results`].

pub mod conform;
pub mod udf;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
