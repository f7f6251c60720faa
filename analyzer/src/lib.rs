//! leakscope analyzer: SQL over captures, leak ranking of call sites, and reports.
//!
//! The folders show the flow, and which parts do I/O:
//! - [`source`] reads captures (I/O): [`source::catalog`] registers them in DataFusion,
//!   [`source::scan`] reads sample columns straight from Parquet, [`source::load`] turns
//!   samples into per-group series.
//! - [`sql`] is the DataFusion side: running SQL, and leakscope's SQL functions.
//! - [`model`] is pure computation on those series: [`model::fit`] and [`model::evidence`]
//!   judge each series, [`model::hints`] suggests causes, [`rank::alert`] holds the
//!   thresholds of `check` and `watch`.
//! - [`rank`] runs the pipeline: source, then model, in parallel with rayon.
//! - [`output`] turns typed results into text, JSON, HTML, PNG and pprof (I/O at the edge).
//! - [`watch`] turns rounds of ranking into webhook alerts, one per site until it changes.

pub mod background;
pub mod error;
pub mod model;
pub mod output;
pub mod rank;
pub mod source;
pub mod sql;
pub mod units;
pub mod watch;

pub use error::{AnalyzeError, Result};
