//! The metrics a capture holds: which profile kind and sample column each comes from.

use leakscope_capture::schema::col;

/// A sample value column and the profile kind it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Go heap bytes in use (heap profile, as of the last GC).
    InuseSpace,
    /// Go heap objects in use.
    InuseObjects,
    /// Goroutines (goroutine profile).
    Goroutines,
    /// Native (C) bytes outstanding, traced with eBPF.
    Native,
}

impl Metric {
    /// Stable name, as in JSON and alert state (`inuse_space`, `goroutines`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Metric::InuseSpace => "inuse_space",
            Metric::InuseObjects => "inuse_objects",
            Metric::Goroutines => "goroutines",
            Metric::Native => "native",
        }
    }

    /// `profiles.kind` holding this metric.
    pub fn kind(self) -> &'static str {
        match self {
            Metric::InuseSpace | Metric::InuseObjects => "heap",
            Metric::Goroutines => "goroutine",
            Metric::Native => "native",
        }
    }

    /// `samples` column holding this metric.
    pub fn column(self) -> &'static str {
        match self {
            Metric::InuseSpace | Metric::Native => col::INUSE_BYTES,
            Metric::InuseObjects => col::INUSE_OBJECTS,
            Metric::Goroutines => col::GOROUTINES,
        }
    }

    /// `samples` column of the cumulative allocations in the metric's unit, for heap
    /// metrics.
    pub fn alloc_column(self) -> Option<&'static str> {
        match self {
            Metric::InuseSpace => Some(col::ALLOC_BYTES),
            Metric::InuseObjects => Some(col::ALLOC_OBJECTS),
            Metric::Goroutines | Metric::Native => None,
        }
    }

    /// Unit of the metric's values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::InuseSpace | Metric::Native => "bytes",
            Metric::InuseObjects => "objects",
            Metric::Goroutines => "goroutines",
        }
    }

    /// Section title.
    pub fn title(self) -> &'static str {
        match self {
            Metric::InuseSpace => "Go heap (bytes in use)",
            Metric::InuseObjects => "Go heap (objects in use)",
            Metric::Goroutines => "Goroutines",
            Metric::Native => "Native (C) memory outstanding",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Metric;

    #[test]
    fn codes_are_the_json_names() {
        for m in [
            Metric::InuseSpace,
            Metric::InuseObjects,
            Metric::Goroutines,
            Metric::Native,
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.code());
        }
    }
}
