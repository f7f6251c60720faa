//! The leakscope capture contract.
//!
//! A capture is a directory holding a `manifest.json` and one folder per table, each with
//! hive-partitioned (`date=YYYY-MM-DD`) zstd Parquet segments. This crate owns the schema
//! ([`schema`]), the row types written by the recorder ([`rows`]), the crash-safe segment
//! writer ([`segment`]), the stable stack id ([`stack`]), the manifest ([`manifest`]), the
//! one-writer lock ([`lock`]), durable file operations ([`durable`]),
//! pprof decoding and encoding ([`pprof`]), a small reader for tests and tools ([`read`]),
//! decoder panics on corrupt files contained as errors ([`decode_guard`]), a linear-time
//! footer sanity check ([`footer_check`]) and,
//! with feature `remote`, captures in S3 (`remote`: URL, store, listing of committed sets).
//! It deliberately does not depend on DataFusion so the recorder stays small.

pub mod decode_guard;
pub mod durable;
pub mod error;
pub mod exit;
pub mod footer_check;
pub mod lock;
pub mod manifest;
pub mod pprof;
pub mod read;
#[cfg(feature = "remote")]
pub mod remote;
pub mod retry;
pub mod rows;
pub mod schema;
pub mod segment;
pub mod stack;

pub use error::{CaptureError, Result};

/// Version of the on-disk capture format; bumped on any incompatible schema change.
pub const FORMAT_VERSION: u32 = 1;
