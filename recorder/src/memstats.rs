//! Go runtime MemStats from `/debug/vars` (expvar JSON) or `/debug/pprof/heap?debug=1` text.

use serde_json::Value;

/// A MemStats value and the `process` column it fills.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    go_name: &'static str,
    column: &'static str,
}

const MAPPINGS: &[Mapping] = &[
    Mapping {
        go_name: "Alloc",
        column: "go_alloc_bytes",
    },
    Mapping {
        go_name: "TotalAlloc",
        column: "go_total_alloc_bytes",
    },
    Mapping {
        go_name: "Sys",
        column: "go_sys_bytes",
    },
    Mapping {
        go_name: "Mallocs",
        column: "go_mallocs",
    },
    Mapping {
        go_name: "Frees",
        column: "go_frees",
    },
    Mapping {
        go_name: "HeapAlloc",
        column: "go_heap_alloc_bytes",
    },
    Mapping {
        go_name: "HeapSys",
        column: "go_heap_sys_bytes",
    },
    Mapping {
        go_name: "HeapIdle",
        column: "go_heap_idle_bytes",
    },
    Mapping {
        go_name: "HeapInuse",
        column: "go_heap_inuse_bytes",
    },
    Mapping {
        go_name: "HeapReleased",
        column: "go_heap_released_bytes",
    },
    Mapping {
        go_name: "HeapObjects",
        column: "go_heap_objects",
    },
    Mapping {
        go_name: "StackInuse",
        column: "go_stack_inuse_bytes",
    },
    Mapping {
        go_name: "StackSys",
        column: "go_stack_sys_bytes",
    },
    Mapping {
        go_name: "MSpanInuse",
        column: "go_mspan_inuse_bytes",
    },
    Mapping {
        go_name: "MCacheInuse",
        column: "go_mcache_inuse_bytes",
    },
    Mapping {
        go_name: "GCSys",
        column: "go_gc_sys_bytes",
    },
    Mapping {
        go_name: "OtherSys",
        column: "go_other_sys_bytes",
    },
    Mapping {
        go_name: "NextGC",
        column: "go_next_gc_bytes",
    },
    Mapping {
        go_name: "NumGC",
        column: "go_num_gc",
    },
    Mapping {
        go_name: "PauseTotalNs",
        column: "go_pause_total_ns",
    },
];

/// MemStats as (`process` column, value) pairs.
pub type MemStats = Vec<(&'static str, i64)>;

/// Why a MemStats body could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MemStatsError(String);

/// Parses expvar JSON; fails when it has no `memstats` object.
pub fn parse_vars(body: &[u8]) -> Result<MemStats, MemStatsError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| MemStatsError(format!("not expvar JSON: {e}")))?;
    let ms = v
        .get("memstats")
        .and_then(Value::as_object)
        .ok_or_else(|| MemStatsError("expvar JSON has no \"memstats\" object".into()))?;
    let out: MemStats = MAPPINGS
        .iter()
        .filter_map(|m| {
            ms.get(m.go_name)
                .and_then(Value::as_i64)
                .map(|v| (m.column, v))
        })
        .collect();
    if out.is_empty() {
        return Err(MemStatsError("expvar memstats has no known fields".into()));
    }
    Ok(out)
}

/// Parses the `# runtime.MemStats` section of `heap?debug=1` text.
pub fn parse_heap_debug1(body: &[u8]) -> Result<MemStats, MemStatsError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| MemStatsError("heap?debug=1 body is not UTF-8 text".into()))?;
    let mut out = MemStats::new();
    let mut seen_section = false;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        if rest.starts_with("runtime.MemStats") {
            seen_section = true;
            continue;
        }
        if !seen_section {
            continue;
        }
        let Some((key, value)) = rest.split_once(" = ") else {
            continue;
        };
        // `Stack = inuse / sys`, `MSpan = inuse / sys`, `MCache = inuse / sys`.
        let pair = |v: &str| -> Option<(i64, i64)> {
            let (a, b) = v.split_once(" / ")?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        };
        match key {
            "Stack" | "MSpan" | "MCache" => {
                if let Some((inuse, sys)) = pair(value) {
                    let (ci, cs) = match key {
                        "Stack" => ("go_stack_inuse_bytes", Some("go_stack_sys_bytes")),
                        "MSpan" => ("go_mspan_inuse_bytes", None),
                        _ => ("go_mcache_inuse_bytes", None),
                    };
                    out.push((ci, inuse));
                    if let Some(cs) = cs {
                        out.push((cs, sys));
                    }
                }
            }
            _ => {
                if let (Some(m), Ok(v)) = (
                    MAPPINGS.iter().find(|m| m.go_name == key),
                    value.trim().parse::<i64>(),
                ) {
                    out.push((m.column, v));
                }
            }
        }
    }
    if !seen_section || out.is_empty() {
        return Err(MemStatsError(
            "heap?debug=1 text has no \"# runtime.MemStats\" section".into(),
        ));
    }
    Ok(out)
}

/// Looks a column up in parsed MemStats.
pub fn get(ms: &MemStats, column: &str) -> Option<i64> {
    ms.iter().find(|(c, _)| *c == column).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pprof/go1.27");

    #[test]
    fn parses_real_expvar() {
        let body = std::fs::read(format!("{FIXTURES}/vars.json")).unwrap();
        let ms = parse_vars(&body).unwrap();
        assert!(get(&ms, "go_heap_inuse_bytes").unwrap() > 0);
        assert!(get(&ms, "go_num_gc").is_some());
        assert!(get(&ms, "go_stack_inuse_bytes").unwrap() > 0);
    }

    #[test]
    fn parses_real_debug1_text() {
        let body = std::fs::read(format!("{FIXTURES}/memstats-debug1.txt")).unwrap();
        let ms = parse_heap_debug1(&body).unwrap();
        assert_eq!(get(&ms, "go_total_alloc_bytes"), Some(85941288));
        assert_eq!(get(&ms, "go_stack_inuse_bytes"), Some(884736));
        assert_eq!(get(&ms, "go_num_gc"), Some(19));
    }

    #[test]
    fn rejects_html() {
        assert!(parse_vars(b"<html></html>").is_err());
        assert!(parse_heap_debug1(b"<html></html>").is_err());
    }
}
