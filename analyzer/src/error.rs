//! Errors of the analyzer library; every message names the capture, file or query at fault.

use std::path::PathBuf;

/// Something the analyzer cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The path is not a leakscope capture directory.
    #[error("{path}: not a leakscope capture ({reason})")]
    NotACapture {
        /// Offending path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The capture has no data for what was asked.
    #[error("{path}: {reason}")]
    NotEnoughData {
        /// Capture path.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// `--query NAME` names no shipped query.
    #[error("unknown query '{0}' (see `leakscope sql --list`)")]
    UnknownQuery(String),
    /// SQL planning or execution failed.
    #[error("SQL error: {0}")]
    Sql(String),
    /// Any other DataFusion failure.
    #[error("{context}: {source}")]
    DataFusion {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A segment file could not be read while scanning it directly.
    #[error("{path}: {reason}")]
    Segment {
        /// Segment file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A capture in object storage could not be read (bad URL, credentials, bucket,
    /// endpoint); one line naming the URL, without credentials.
    #[error("{0}")]
    Remote(String),
    /// `--from`/`--to` leave no time between them (ns since the epoch).
    #[error(
        "the growth window must start before it ends (--from {}, --to {})",
        crate::units::report_time(*.from),
        crate::units::report_time(*.to)
    )]
    EmptyWindow {
        /// Start, ns.
        from: i64,
        /// End, ns.
        to: i64,
    },
    /// A report could not be built or written (chart rendering).
    #[error("{0}")]
    Report(String),
    /// A fleet location cannot be ranked (missing, no captures, bad grouping).
    #[error("{location}: {reason}")]
    Fleet {
        /// The directory or `s3://` prefix given.
        location: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl AnalyzeError {
    /// Wraps a DataFusion error with what was being done.
    pub fn df(
        context: impl Into<String>,
    ) -> impl FnOnce(datafusion::error::DataFusionError) -> AnalyzeError {
        let context = context.into();
        move |source| AnalyzeError::DataFusion { context, source }
    }
}

/// Result alias of the analyzer library.
pub type Result<T> = std::result::Result<T, AnalyzeError>;
