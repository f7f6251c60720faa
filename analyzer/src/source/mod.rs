//! Reading captures: the catalog of committed segments registered in DataFusion, direct
//! Parquet scans of the sample columns, and the per-group series built from them. Every
//! module here does I/O.

pub mod catalog;
pub mod cluster;
pub mod cluster_scan;
pub mod cluster_stores;
pub mod corrupt;
pub mod discover;
pub mod go_source;
pub mod load;
pub mod matrix;
pub mod pages;
pub mod pread;
pub mod process;
pub mod profiles;
pub mod remote;
pub mod scan;
pub mod store;
pub mod totals;
pub mod values;
pub mod window;

/// A segment that could not be read and was left out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedSegment {
    /// File path.
    pub path: std::path::PathBuf,
    /// Why it was skipped.
    pub reason: String,
}
