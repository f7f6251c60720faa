//! Errors raised while reading or writing captures and decoding profiles.

use std::path::PathBuf;

/// Result alias for capture operations.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;

/// Anything that can go wrong with a capture or a profile; every variant names its subject.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A filesystem operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing or reading Parquet failed on `path`.
    #[error("{path}: parquet: {source}")]
    Parquet {
        /// The segment involved.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
    /// Building Arrow arrays failed (a schema bug, never user input).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A profile could not be decoded; the message says why.
    #[error("{0}")]
    BadProfile(String),
    /// A committed segment does not have the table's schema.
    #[error("{path}: {reason}")]
    BadSegment {
        /// The segment involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The Parquet decoder panicked on a damaged page of `path` (see
    /// [`crate::decode_guard`]).
    #[error("{path}: corrupt Parquet data (the decoder failed: {message})")]
    CorruptData {
        /// The segment involved.
        path: PathBuf,
        /// The decoder's panic message.
        message: String,
    },
    /// Another writer (`record` or `import`) holds the capture's lock.
    #[error("{path}: another leakscope-recorder (record or import) is writing this capture{holder}; wait for it to finish or choose another --out")]
    Locked {
        /// The capture directory.
        path: PathBuf,
        /// ` (PID N)` when the holder is known, else empty.
        holder: String,
    },
    /// The directory is not a capture or its manifest is unreadable.
    #[error("{path}: {reason}")]
    NotACapture {
        /// The directory given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl CaptureError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CaptureError::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a Parquet error with the segment it happened on.
    pub fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        CaptureError::Parquet {
            path: path.into(),
            source,
        }
    }
}
