//! pprof (google/pprof `profile.proto`) decoding into capture rows, with strict validation.
//!
//! Every index in a profile is untrusted: string, location, function and mapping
//! references are checked and a bad one is an error, never a panic.

use std::collections::HashMap;
use std::io::Read;

use flate2::read::GzDecoder;
use prost::Message;

use crate::rows::SampleValues;
use crate::stack::{Frame, StackHasher};
use crate::{CaptureError, Result};

/// Types generated from `proto/profile.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/perftools.profiles.rs"));
}

/// Largest decompressed profile accepted (guards against gzip bombs).
pub const MAX_PROFILE_BYTES: u64 = 1 << 30;

/// The kinds of profile a capture holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileKind {
    /// `/debug/pprof/heap` (or `allocs`, or `go test -memprofile`).
    Heap,
    /// `/debug/pprof/goroutine`.
    Goroutine,
    /// `/debug/pprof/goroutineleak` (Go 1.26+ experiment, 1.27+).
    GoroutineLeak,
}

impl ProfileKind {
    /// Name stored in the `kind` columns.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Heap => "heap",
            ProfileKind::Goroutine => "goroutine",
            ProfileKind::GoroutineLeak => "goroutineleak",
        }
    }
}

/// Gunzips `bytes` when gzip-compressed and decodes the protobuf.
pub fn decode(bytes: &[u8]) -> Result<proto::Profile> {
    let raw: std::borrow::Cow<[u8]> = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        GzDecoder::new(bytes)
            .take(MAX_PROFILE_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("corrupt or truncated gzip data: {e}")))?;
        out.into()
    } else {
        bytes.into()
    };
    if raw.is_empty() {
        return Err(bad("empty body, not a profile".into()));
    }
    proto::Profile::decode(raw.as_ref()).map_err(|e| {
        if looks_like_text(&raw) {
            bad(format!(
                "got text, not a pprof protobuf (starts with {:?})",
                snippet(&raw)
            ))
        } else {
            bad(format!("not a pprof protobuf: {e}"))
        }
    })
}

/// True when `head`, the first (decompressed) bytes of a file, reads as the start of a
/// protobuf `Profile`: every field in it has a `Profile` field number and wire type. When
/// `complete` (`head` is the whole file), no field may run past its end either.
pub fn starts_like_profile(head: &[u8], complete: bool) -> bool {
    fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos)?;
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut pos = 0;
    let mut fields = 0;
    while pos < head.len() {
        let Some(tag) = varint(head, &mut pos) else {
            return !complete && fields > 0;
        }; // cut off
        let (field, wire) = (tag >> 3, tag & 7);
        let ok = match field {
            1..=6 | 11 => wire == 2, // messages and strings
            7..=10 | 12 | 14 => wire == 0,
            13 => wire == 0 || wire == 2, // repeated int64, packed or not
            _ => false,
        };
        if !ok {
            return false;
        }
        fields += 1;
        let Some(n) = varint(head, &mut pos) else {
            return !complete;
        };
        if wire == 2 {
            if n > MAX_PROFILE_BYTES {
                return false;
            }
            pos = pos.saturating_add(n as usize);
        }
    }
    fields > 0 && (pos == head.len() || !complete)
}

fn looks_like_text(b: &[u8]) -> bool {
    let head = &b[..b.len().min(256)];
    !head.is_empty()
        && head
            .iter()
            .all(|&c| c == b'\n' || c == b'\r' || c == b'\t' || (0x20..0x7f).contains(&c))
}

fn snippet(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned();
    s.lines().next().unwrap_or("").to_string()
}

fn bad(msg: String) -> CaptureError {
    CaptureError::BadProfile(msg)
}

/// One decoded sample.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedSample {
    /// Stable stack id.
    pub stack_id: u64,
    /// Values by meaning.
    pub values: SampleValues,
    /// Labels rendered as sorted `key=value` pairs joined by `,`.
    pub labels: Option<String>,
}

/// A validated profile ready to be written as capture rows.
#[derive(Debug, Clone)]
pub struct DecodedProfile {
    /// Heap, goroutine or goroutineleak.
    pub kind: ProfileKind,
    /// `time_nanos` of the profile (0 when the profile has none).
    pub time_ns: i64,
    /// `duration_nanos`.
    pub duration_ns: i64,
    /// Sampling period.
    pub period: i64,
    /// Period as `type/unit`.
    pub period_type: String,
    /// Sample types as `type/unit`.
    pub sample_types: Vec<String>,
    /// Samples with at least one non-zero value.
    pub samples: Vec<DecodedSample>,
    stack_locations: HashMap<u64, Vec<u64>>,
    location_frames: HashMap<u64, Vec<Frame>>,
}

impl DecodedProfile {
    /// Distinct stack ids referenced by the samples.
    pub fn stack_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.stack_locations.keys().copied()
    }

    /// The frames of `stack_id`, leaf first (empty for an unknown id).
    pub fn frames(&self, stack_id: u64) -> Vec<Frame> {
        self.stack_locations
            .get(&stack_id)
            .into_iter()
            .flatten()
            .flat_map(|loc| self.location_frames.get(loc).into_iter().flatten().cloned())
            .collect()
    }

    /// Sum of a value over all samples.
    pub fn total(&self, pick: impl Fn(&SampleValues) -> Option<i64>) -> i64 {
        self.samples.iter().filter_map(|s| pick(&s.values)).sum()
    }
}

/// Decodes and validates a profile. `hint` names the kind when the source knows it
/// (goroutine and goroutineleak profiles have the same shape); otherwise it is inferred.
pub fn parse(bytes: &[u8], hint: Option<ProfileKind>) -> Result<DecodedProfile> {
    resolve(decode(bytes)?, hint)
}

/// Validates a decoded protobuf and resolves its stacks.
pub fn resolve(p: proto::Profile, hint: Option<ProfileKind>) -> Result<DecodedProfile> {
    let strings = &p.string_table;
    let s = |i: i64, what: &str| -> Result<&str> {
        usize::try_from(i)
            .ok()
            .and_then(|i| strings.get(i))
            .map(|s| s.as_str())
            .ok_or_else(|| {
                bad(format!(
                    "{what} refers to string index {i}, out of range (string table has {} entries)",
                    strings.len()
                ))
            })
    };
    if strings.first().is_some_and(|s0| !s0.is_empty()) {
        return Err(bad("string_table[0] must be empty".into()));
    }
    let mut sample_types = Vec::with_capacity(p.sample_type.len());
    for vt in &p.sample_type {
        sample_types.push(format!(
            "{}/{}",
            s(vt.r#type, "sample type")?,
            s(vt.unit, "sample unit")?
        ));
    }
    let col = |name: &str| {
        sample_types
            .iter()
            .position(|t| t.split('/').next() == Some(name))
    };
    let (inuse_o, inuse_b, alloc_o, alloc_b, gor) = (
        col("inuse_objects"),
        col("inuse_space"),
        col("alloc_objects"),
        col("alloc_space"),
        col("goroutine").or_else(|| col("goroutineleak")),
    );
    let kind = if inuse_b.is_some() || alloc_b.is_some() {
        ProfileKind::Heap
    } else if gor.is_some() {
        let leak_type = col("goroutineleak").is_some();
        match hint {
            Some(ProfileKind::GoroutineLeak) => ProfileKind::GoroutineLeak,
            _ if leak_type => ProfileKind::GoroutineLeak,
            _ => ProfileKind::Goroutine,
        }
    } else {
        return Err(bad(format!(
            "unsupported profile type: sample types [{}] (expected a heap or goroutine profile)",
            sample_types.join(", ")
        )));
    };
    if let Some(h) = hint {
        let compatible = h == kind || (h != ProfileKind::Heap && kind != ProfileKind::Heap);
        if !compatible {
            return Err(bad(format!(
                "expected a {} profile, got a {} profile",
                h.as_str(),
                kind.as_str()
            )));
        }
    }
    let period_type = match &p.period_type {
        Some(vt) => format!(
            "{}/{}",
            s(vt.r#type, "period type")?,
            s(vt.unit, "period unit")?
        ),
        None => String::new(),
    };

    let mut functions: HashMap<u64, (&str, &str)> = HashMap::with_capacity(p.function.len());
    for f in &p.function {
        functions.insert(
            f.id,
            (s(f.name, "function name")?, s(f.filename, "function file")?),
        );
    }
    let mut mappings: HashMap<u64, (&str, &str, &proto::Mapping)> = HashMap::new();
    for m in &p.mapping {
        mappings.insert(
            m.id,
            (
                s(m.filename, "mapping file")?,
                s(m.build_id, "mapping build id")?,
                m,
            ),
        );
    }
    let mut location_frames: HashMap<u64, Vec<Frame>> = HashMap::with_capacity(p.location.len());
    let mut location_bytes: HashMap<u64, Vec<u8>> = HashMap::with_capacity(p.location.len());
    for loc in &p.location {
        let mapping = match loc.mapping_id {
            0 => None,
            id => Some(*mappings.get(&id).ok_or_else(|| {
                bad(format!(
                    "location {} refers to missing mapping id {id}",
                    loc.id
                ))
            })?),
        };
        let mapping_name = mapping
            .map(|(f, _, _)| f.to_string())
            .filter(|f| !f.is_empty());
        let build_id = mapping
            .map(|(_, b, _)| b.to_string())
            .filter(|b| !b.is_empty());
        let file_offset = mapping.and_then(|(_, _, m)| {
            (loc.address >= m.memory_start && loc.address != 0)
                .then(|| loc.address - m.memory_start + m.file_offset)
        });
        let mut frames = Vec::with_capacity(loc.line.len().max(1));
        let n = loc.line.len();
        for (i, line) in loc.line.iter().enumerate() {
            let (name, file) = *functions.get(&line.function_id).ok_or_else(|| {
                bad(format!(
                    "location {} refers to missing function id {}",
                    loc.id, line.function_id
                ))
            })?;
            frames.push(Frame {
                function: name.to_string(),
                file: file.to_string(),
                line: line.line,
                inlined: i + 1 < n,
                address: None,
                mapping: mapping_name.clone(),
                build_id: build_id.clone(),
                file_offset: None,
            });
        }
        if frames.is_empty() {
            frames.push(Frame {
                address: Some(loc.address),
                mapping: mapping_name,
                build_id,
                file_offset,
                ..Default::default()
            });
        }
        let mut enc = Vec::new();
        for f in &frames {
            f.encode_into(&mut enc);
        }
        location_bytes.insert(loc.id, enc);
        location_frames.insert(loc.id, frames);
    }

    let width = sample_types.len();
    let get = |v: &[i64], i: Option<usize>| i.map(|i| v[i]);
    let mut samples = Vec::with_capacity(p.sample.len());
    let mut stack_locations: HashMap<u64, Vec<u64>> = HashMap::new();
    for (n, smp) in p.sample.iter().enumerate() {
        if smp.value.len() != width {
            return Err(bad(format!(
                "sample {n} has {} values but the profile declares {width} sample types",
                smp.value.len()
            )));
        }
        if smp.value.iter().all(|&v| v == 0) {
            continue;
        }
        let mut h = StackHasher::new();
        for loc in &smp.location_id {
            let enc = location_bytes
                .get(loc)
                .ok_or_else(|| bad(format!("sample {n} refers to missing location id {loc}")))?;
            h.update(enc);
        }
        let stack_id = h.finish();
        stack_locations
            .entry(stack_id)
            .or_insert_with(|| smp.location_id.clone());
        let values = SampleValues {
            inuse_objects: get(&smp.value, inuse_o),
            inuse_bytes: get(&smp.value, inuse_b),
            alloc_objects: get(&smp.value, alloc_o),
            alloc_bytes: get(&smp.value, alloc_b),
            goroutines: get(&smp.value, gor),
        };
        let labels = render_labels(&smp.label, &s)?;
        samples.push(DecodedSample {
            stack_id,
            values,
            labels,
        });
    }
    Ok(DecodedProfile {
        kind,
        time_ns: p.time_nanos,
        duration_ns: p.duration_nanos,
        period: p.period,
        period_type,
        sample_types,
        samples,
        stack_locations,
        location_frames,
    })
}

fn render_labels<'a>(
    labels: &[proto::Label],
    s: &impl Fn(i64, &str) -> Result<&'a str>,
) -> Result<Option<String>> {
    if labels.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::with_capacity(labels.len());
    for l in labels {
        let key = s(l.key, "label key")?;
        if l.str != 0 {
            parts.push(format!("{key}={}", s(l.str, "label value")?));
        } else {
            parts.push(format!("{key}={}", l.num));
        }
    }
    parts.sort();
    Ok(Some(parts.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::*;

    fn heap_profile() -> Profile {
        Profile {
            sample_type: vec![
                ValueType { r#type: 1, unit: 2 },
                ValueType { r#type: 3, unit: 4 },
            ],
            sample: vec![
                Sample {
                    location_id: vec![1, 2],
                    value: vec![3, 300],
                    label: vec![],
                },
                Sample {
                    location_id: vec![2],
                    value: vec![0, 0],
                    label: vec![],
                },
            ],
            mapping: vec![],
            location: vec![
                Location {
                    id: 1,
                    mapping_id: 0,
                    address: 0x10,
                    line: vec![Line {
                        function_id: 1,
                        line: 5,
                    }],
                    is_folded: false,
                },
                Location {
                    id: 2,
                    mapping_id: 0,
                    address: 0x20,
                    line: vec![Line {
                        function_id: 2,
                        line: 9,
                    }],
                    is_folded: false,
                },
            ],
            function: vec![
                Function {
                    id: 1,
                    name: 5,
                    system_name: 5,
                    filename: 7,
                    start_line: 1,
                },
                Function {
                    id: 2,
                    name: 6,
                    system_name: 6,
                    filename: 7,
                    start_line: 1,
                },
            ],
            string_table: [
                "",
                "inuse_objects",
                "count",
                "inuse_space",
                "bytes",
                "main.leak",
                "main.main",
                "main.go",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            time_nanos: 42,
            ..Default::default()
        }
    }

    fn encode(p: &Profile) -> Vec<u8> {
        p.encode_to_vec()
    }

    #[test]
    fn decodes_heap_and_skips_zero_samples() {
        let d = parse(&encode(&heap_profile()), None).unwrap();
        assert_eq!(d.kind, ProfileKind::Heap);
        assert_eq!(d.samples.len(), 1);
        assert_eq!(d.samples[0].values.inuse_bytes, Some(300));
        assert_eq!(d.samples[0].values.alloc_bytes, None);
        let frames = d.frames(d.samples[0].stack_id);
        assert_eq!(frames[0].function, "main.leak");
        assert_eq!(frames[1].function, "main.main");
        assert_eq!(crate::stack::stack_id(&frames), d.samples[0].stack_id);
    }

    #[test]
    fn out_of_range_string_index_is_an_error() {
        let mut p = heap_profile();
        p.function[0].name = 99;
        let e = parse(&encode(&p), None).unwrap_err().to_string();
        assert!(e.contains("string index 99, out of range"), "{e}");
    }

    #[test]
    fn missing_location_is_an_error() {
        let mut p = heap_profile();
        p.sample[0].location_id = vec![77];
        let e = parse(&encode(&p), None).unwrap_err().to_string();
        assert!(e.contains("missing location id 77"), "{e}");
    }

    #[test]
    fn html_and_truncated_gzip_are_named() {
        let e = parse(b"<!DOCTYPE html><html>oops</html>", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("got text"), "{e}");
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::default());
            enc.write_all(&encode(&heap_profile())).unwrap();
            enc.finish().unwrap();
        }
        let e = parse(&gz[..gz.len() / 2], None).unwrap_err().to_string();
        assert!(e.contains("gzip"), "{e}");
        assert!(parse(&gz, None).is_ok());
    }

    #[test]
    fn sniffs_the_start_of_a_profile() {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/pprof/go1.27/heap.pb.gz"
        );
        let mut raw = Vec::new();
        GzDecoder::new(std::fs::File::open(fixture).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        assert!(starts_like_profile(&raw[..4096], false));
        assert!(starts_like_profile(&raw, true));
        assert!(starts_like_profile(&encode(&heap_profile()), true));
        assert!(!starts_like_profile(b"", false));
        assert!(!starts_like_profile(
            b"2025-11-23T10:00:00Z INFO server started on :8080, pid 4242\n",
            false
        ));
        // A short text whose first byte happens to read as a string field running past the end.
        assert!(!starts_like_profile(
            b"2026-11-23T10:00:00Z INFO listening\n",
            true
        ));
        assert!(!starts_like_profile(b"{\"memstats\": {}}", false));
        assert!(!starts_like_profile(b"\x00\x00\x00\x01", false));
    }

    #[test]
    fn wrong_value_count_is_an_error() {
        let mut p = heap_profile();
        p.sample[0].value = vec![1];
        assert!(parse(&encode(&p), None).is_err());
    }
}
