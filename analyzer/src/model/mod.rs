//! Pure computation on series: statistics, fits, evidence, verdicts, hints and alert
//! thresholds. Nothing here reads files or the network.

pub mod calibration;
pub mod compare;
pub mod evidence;
pub mod fit;
pub mod fleet;
pub mod hints;
pub mod ids;
pub mod metric;
pub mod reason;
pub mod select;
pub mod site;
pub mod stats;
