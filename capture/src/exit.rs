//! The exit statuses both binaries use (`leakscope-recorder` and `leakscope`), one
//! convention for the same class of outcome (docs/cli.md, "Exit status").

/// Success: the work is done and nothing was found that the caller asked to hear about.
pub const OK: u8 = 0;
/// The work is done and found what the caller asked to hear about: `check` found a leak
/// above the thresholds, `watch --once` has a site above them, `import` could not import
/// some files (the rest are in the capture).
pub const FOUND: u8 = 1;
/// Bad input or a failure that stopped the work, with one line on stderr naming the file,
/// URL or flag at fault (clap's own usage errors also exit 2).
pub const ERROR: u8 = 2;
/// Work done, but its result could not be delivered: `watch --once` could not post its alert.
pub const UNDELIVERED: u8 = 3;
/// Interrupted by SIGINT before the work was done (128 + 2, as shells report it).
pub const INTERRUPTED: u8 = 130;
