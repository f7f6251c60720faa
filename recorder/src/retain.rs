//! `--retain`: keep segments for an age (`7d`, `12h`) or up to a size (`10GiB`).

use std::str::FromStr;

/// A retention limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Delete segment sets older than this many ns.
    Age(i64),
    /// Delete the oldest segment sets while the capture is larger than this many bytes.
    Size(u64),
}

impl FromStr for Retention {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(d) = humantime::parse_duration(t) {
            if d.is_zero() {
                return Err(format!("--retain {s:?}: must be longer than zero"));
            }
            return Ok(Retention::Age(d.as_nanos().min(i64::MAX as u128) as i64));
        }
        match bytesize::ByteSize::from_str(t) {
            Ok(b) if b.as_u64() > 0 => Ok(Retention::Size(b.as_u64())),
            _ => Err(format!(
                "--retain {s:?}: expected an age like 7d or 12h, or a size like 10GiB"
            )),
        }
    }
}

impl Retention {
    /// Applies the limit to capture `dir` at `now_ns`.
    pub fn apply(
        self,
        dir: &std::path::Path,
        now_ns: i64,
    ) -> leakscope_capture::Result<leakscope_capture::segment::Pruned> {
        match self {
            Retention::Age(a) => leakscope_capture::segment::prune(dir, Some(a), None, now_ns),
            Retention::Size(b) => leakscope_capture::segment::prune(dir, None, Some(b), now_ns),
        }
    }

    /// [`Self::apply`], but never deletes a committed set for whose stem `keep` is true
    /// (with `--upload`: not uploaded yet).
    pub fn apply_keeping(
        self,
        dir: &std::path::Path,
        now_ns: i64,
        keep: &dyn Fn(&str) -> bool,
    ) -> leakscope_capture::Result<leakscope_capture::segment::Pruned> {
        use leakscope_capture::segment::prune_keeping;
        match self {
            Retention::Age(a) => prune_keeping(dir, Some(a), None, now_ns, keep),
            Retention::Size(b) => prune_keeping(dir, None, Some(b), now_ns, keep),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ages_and_sizes() {
        assert_eq!(
            "7d".parse::<Retention>(),
            Ok(Retention::Age(7 * 86_400 * 1_000_000_000))
        );
        assert_eq!("10GiB".parse::<Retention>(), Ok(Retention::Size(10 << 30)));
        assert_eq!(
            "500 MB".parse::<Retention>(),
            Ok(Retention::Size(500_000_000))
        );
        assert!("soon".parse::<Retention>().is_err());
        assert!("0s".parse::<Retention>().is_err());
    }
}
