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
pub const MAX_PROFILE_BYTES: u64 = 256 << 20;

/// Most frames one stack may expand to (inlined lines included).
pub const MAX_STACK_FRAMES: usize = 16_384;

/// Most frames the distinct stacks of one profile may expand to, together.
pub const MAX_FRAMES: usize = 2_000_000;

/// Most bytes of names (function, file, mapping, build id and label strings) that the
/// distinct stacks and the labels of one profile may expand to, together.
pub const MAX_EXPANDED_BYTES: usize = 128 << 20;

/// Most samples one profile may have.
pub const MAX_SAMPLES: usize = 2_000_000;

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
    let raw = decompress(bytes)?;
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

/// Reads one protobuf varint of `b` at `pos`, advancing it; `None` when it runs past the
/// end or over 64 bits.
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

/// The profile's `time_nanos` (0 when it has none) and its decompressed size, read without
/// decoding the rest: a cheap first look, e.g. to order files and size batches before
/// decoding them. `None` when the bytes are not a protobuf message (decode them to learn
/// why).
pub fn peek_time(bytes: &[u8]) -> Result<Option<(i64, usize)>> {
    let raw = decompress(bytes)?;
    let (mut pos, mut time) = (0usize, 0i64);
    while pos < raw.len() {
        let Some(tag) = varint(&raw, &mut pos) else {
            return Ok(None);
        };
        let skip = match tag & 7 {
            0 => match varint(&raw, &mut pos) {
                Some(v) if tag >> 3 == 9 => {
                    time = v as i64; // int64: two's complement
                    0
                }
                Some(_) => 0,
                None => return Ok(None),
            },
            1 => 8,
            2 => match varint(&raw, &mut pos).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => n,
                None => return Ok(None),
            },
            5 => 4,
            _ => return Ok(None),
        };
        pos = match pos.checked_add(skip) {
            Some(p) if p <= raw.len() => p,
            _ => return Ok(None),
        };
    }
    Ok(Some((time, raw.len())))
}

/// `bytes` gunzipped when gzip-compressed (at most [`MAX_PROFILE_BYTES`]), else as given.
fn decompress(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    let raw: std::borrow::Cow<[u8]> = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
        GzDecoder::new(bytes)
            .take(MAX_PROFILE_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| bad(format!("corrupt or truncated gzip data: {e}")))?;
        if out.len() as u64 > MAX_PROFILE_BYTES {
            return Err(too_large(format!(
                "decompresses to more than {} MiB",
                MAX_PROFILE_BYTES >> 20
            )));
        }
        out.into()
    } else {
        bytes.into()
    };
    if raw.len() as u64 > MAX_PROFILE_BYTES {
        return Err(too_large(format!(
            "more than {} MiB",
            MAX_PROFILE_BYTES >> 20
        )));
    }
    if raw.is_empty() {
        return Err(bad("empty body, not a profile".into()));
    }
    Ok(raw)
}

/// True when `head`, the first (decompressed) bytes of a file, reads as the start of a
/// protobuf `Profile`: every field in it has a `Profile` field number and wire type. When
/// `complete` (`head` is the whole file), no field may run past its end either.
pub fn starts_like_profile(head: &[u8], complete: bool) -> bool {
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

/// One line of a location: indices into the profile's string table, not copies.
#[derive(Debug, Clone, Copy)]
struct LineRef {
    function: usize,
    file: usize,
    line: i64,
}

/// A location as references into the string table (names are never copied per line).
#[derive(Debug, Clone)]
struct LocationRef {
    lines: Vec<LineRef>,
    address: u64,
    /// Mapping file and build id (string indices; 0 is the empty string).
    mapping: usize,
    build_id: usize,
    file_offset: Option<u64>,
    /// Frames this location expands to, and the bytes of names they copy.
    frames: usize,
    bytes: usize,
}

/// A validated profile ready to be written as capture rows.
///
/// Stacks are kept as location ids and locations as indices into the string table, so
/// the decoded profile is about as large as the protobuf; frames are only built, one
/// stack at a time, by [`DecodedProfile::frames`].
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
    strings: Vec<String>,
    stack_locations: HashMap<u64, Vec<u64>>,
    locations: HashMap<u64, LocationRef>,
}

impl DecodedProfile {
    /// Distinct stack ids referenced by the samples.
    pub fn stack_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.stack_locations.keys().copied()
    }

    /// The frames of `stack_id`, leaf first (empty for an unknown id).
    pub fn frames(&self, stack_id: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        for loc in self.stack_locations.get(&stack_id).into_iter().flatten() {
            let Some(l) = self.locations.get(loc) else {
                continue;
            };
            let text = |i: usize| self.strings.get(i).map_or("", String::as_str);
            let opt = |i: usize| Some(text(i).to_string()).filter(|s| !s.is_empty());
            let n = l.lines.len();
            for (i, line) in l.lines.iter().enumerate() {
                out.push(Frame {
                    function: text(line.function).to_string(),
                    file: text(line.file).to_string(),
                    line: line.line,
                    inlined: i + 1 < n,
                    address: None,
                    mapping: opt(l.mapping),
                    build_id: opt(l.build_id),
                    file_offset: None,
                });
            }
            if n == 0 {
                out.push(Frame {
                    address: Some(l.address),
                    mapping: opt(l.mapping),
                    build_id: opt(l.build_id),
                    file_offset: l.file_offset,
                    ..Default::default()
                });
            }
        }
        out
    }

    /// Sum of a value over all samples (saturating: hostile values never overflow).
    pub fn total(&self, pick: impl Fn(&SampleValues) -> Option<i64>) -> i64 {
        self.samples
            .iter()
            .filter_map(|s| pick(&s.values))
            .fold(0i64, i64::saturating_add)
    }
}

/// Feeds the canonical encoding of location `l`'s frames (as [`Frame::encode_into`] would
/// write them) to `h`, without building the frames.
fn hash_location(strings: &[String], l: &LocationRef, h: &mut StackHasher) {
    let text = |i: usize| strings.get(i).map_or("", String::as_str);
    let frame = |h: &mut StackHasher, function: &str, file: &str, line: i64, off: u64| {
        h.update(function.as_bytes());
        h.update(&[0]);
        h.update(file.as_bytes());
        h.update(&[0]);
        h.update(&line.to_le_bytes());
        if function.is_empty() {
            h.update(text(l.build_id).as_bytes());
            h.update(&[0]);
            h.update(&off.to_le_bytes());
        }
    };
    for line in &l.lines {
        frame(h, text(line.function), text(line.file), line.line, 0);
    }
    if l.lines.is_empty() {
        frame(h, "", "", 0, l.file_offset.unwrap_or(l.address));
    }
}

/// Decodes and validates a profile. `hint` names the kind when the source knows it
/// (goroutine and goroutineleak profiles have the same shape); otherwise it is inferred.
pub fn parse(bytes: &[u8], hint: Option<ProfileKind>) -> Result<DecodedProfile> {
    resolve(decode(bytes)?, hint)
}

fn too_large(what: String) -> CaptureError {
    bad(format!("profile too large when decoded: {what}"))
}

/// Validates a decoded protobuf and resolves its stacks. What decoding builds is bounded
/// ([`MAX_STACK_FRAMES`], [`MAX_FRAMES`], [`MAX_EXPANDED_BYTES`], [`MAX_SAMPLES`]): a
/// profile past a bound is an error, whatever it compresses to.
pub fn resolve(mut p: proto::Profile, hint: Option<ProfileKind>) -> Result<DecodedProfile> {
    let strings = std::mem::take(&mut p.string_table);
    let idx = |i: i64, what: &str| -> Result<usize> {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < strings.len())
            .ok_or_else(|| {
                bad(format!(
                    "{what} refers to string index {i}, out of range (string table has {} entries)",
                    strings.len()
                ))
            })
    };
    let s = |i: i64, what: &str| -> Result<&str> { Ok(strings[idx(i, what)?].as_str()) };
    if strings.first().is_some_and(|s0| !s0.is_empty()) {
        return Err(bad("string_table[0] must be empty".into()));
    }
    if p.sample.len() > MAX_SAMPLES {
        return Err(too_large(format!(
            "{} samples (limit {MAX_SAMPLES})",
            p.sample.len()
        )));
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

    let mut functions: HashMap<u64, (usize, usize)> = HashMap::with_capacity(p.function.len());
    for f in &p.function {
        functions.insert(
            f.id,
            (
                idx(f.name, "function name")?,
                idx(f.filename, "function file")?,
            ),
        );
    }
    let mut mappings: HashMap<u64, (usize, usize, &proto::Mapping)> = HashMap::new();
    for m in &p.mapping {
        mappings.insert(
            m.id,
            (
                idx(m.filename, "mapping file")?,
                idx(m.build_id, "mapping build id")?,
                m,
            ),
        );
    }
    let len = |i: usize| strings[i].len();
    let mut locations: HashMap<u64, LocationRef> = HashMap::with_capacity(p.location.len());
    for loc in &p.location {
        let (mapping, build_id, file_offset) = match loc.mapping_id {
            0 => (0, 0, None),
            id => {
                let (name, build, m) = *mappings.get(&id).ok_or_else(|| {
                    bad(format!(
                        "location {} refers to missing mapping id {id}",
                        loc.id
                    ))
                })?;
                let offset = (loc.address >= m.memory_start && loc.address != 0)
                    .then(|| (loc.address - m.memory_start).checked_add(m.file_offset))
                    .flatten();
                (name, build, offset)
            }
        };
        let per_frame = len(mapping) + len(build_id);
        let mut lines = Vec::with_capacity(loc.line.len());
        let mut bytes = 0usize;
        for line in &loc.line {
            let (function, file) = *functions.get(&line.function_id).ok_or_else(|| {
                bad(format!(
                    "location {} refers to missing function id {}",
                    loc.id, line.function_id
                ))
            })?;
            bytes = bytes.saturating_add(len(function) + len(file) + per_frame);
            lines.push(LineRef {
                function,
                file,
                line: line.line,
            });
        }
        let frames = lines.len().max(1);
        if lines.is_empty() {
            bytes = per_frame;
        }
        locations.insert(
            loc.id,
            LocationRef {
                lines,
                address: loc.address,
                mapping,
                build_id,
                file_offset,
                frames,
                bytes,
            },
        );
    }

    let mut d = DecodedProfile {
        kind,
        time_ns: p.time_nanos,
        duration_ns: p.duration_nanos,
        period: p.period,
        period_type,
        sample_types,
        samples: Vec::with_capacity(p.sample.len()),
        strings: Vec::new(),
        stack_locations: HashMap::new(),
        locations,
    };
    let width = d.sample_types.len();
    let get = |v: &[i64], i: Option<usize>| i.map(|i| v[i]);
    // Stack id per distinct location list: the frames of a list are hashed once, however
    // many samples repeat it, and what the distinct lists expand to is bounded.
    let mut by_locations: HashMap<&[u64], u64> = HashMap::new();
    let (mut total_frames, mut total_bytes) = (0usize, 0usize);
    let mut samples = Vec::with_capacity(p.sample.len());
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
        let stack_id = match by_locations.get(smp.location_id.as_slice()) {
            Some(&id) => id,
            None => {
                let (mut frames, mut bytes) = (0usize, 0usize);
                for loc in &smp.location_id {
                    let l = d.locations.get(loc).ok_or_else(|| {
                        bad(format!("sample {n} refers to missing location id {loc}"))
                    })?;
                    frames = frames.saturating_add(l.frames);
                    bytes = bytes.saturating_add(l.bytes);
                    if frames > MAX_STACK_FRAMES {
                        return Err(too_large(format!(
                            "the stack of sample {n} expands to more than {MAX_STACK_FRAMES} frames ({} locations, inlined lines included)",
                            smp.location_id.len()
                        )));
                    }
                }
                total_frames = total_frames.saturating_add(frames);
                total_bytes = total_bytes.saturating_add(bytes);
                if total_frames > MAX_FRAMES {
                    return Err(too_large(format!(
                        "its stacks expand to more than {MAX_FRAMES} frames"
                    )));
                }
                if total_bytes > MAX_EXPANDED_BYTES {
                    return Err(too_large(format!(
                        "its stacks expand to more than {} MiB of function, file and mapping names",
                        MAX_EXPANDED_BYTES >> 20
                    )));
                }
                let mut h = StackHasher::new();
                for loc in &smp.location_id {
                    if let Some(l) = d.locations.get(loc) {
                        hash_location(&strings, l, &mut h);
                    }
                }
                let id = h.finish();
                by_locations.insert(smp.location_id.as_slice(), id);
                d.stack_locations
                    .entry(id)
                    .or_insert_with(|| smp.location_id.clone());
                id
            }
        };
        let values = SampleValues {
            inuse_objects: get(&smp.value, inuse_o),
            inuse_bytes: get(&smp.value, inuse_b),
            alloc_objects: get(&smp.value, alloc_o),
            alloc_bytes: get(&smp.value, alloc_b),
            goroutines: get(&smp.value, gor),
        };
        let labels = render_labels(&smp.label, &s)?;
        total_bytes = total_bytes.saturating_add(labels.as_ref().map_or(0, String::len));
        if total_bytes > MAX_EXPANDED_BYTES {
            return Err(too_large(format!(
                "its stacks and labels expand to more than {} MiB of text",
                MAX_EXPANDED_BYTES >> 20
            )));
        }
        samples.push(DecodedSample {
            stack_id,
            values,
            labels,
        });
    }
    d.samples = samples;
    d.strings = strings;
    Ok(d)
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
    fn peeks_the_time_without_decoding() {
        let mut p = heap_profile();
        p.time_nanos = -5;
        let raw = encode(&p);
        assert_eq!(peek_time(&raw).unwrap(), Some((-5, raw.len())));
        p.time_nanos = 0;
        assert_eq!(peek_time(&encode(&p)).unwrap().map(|t| t.0), Some(0));
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/pprof/go1.27/heap.pb.gz"
        );
        let bytes = std::fs::read(fixture).unwrap();
        let (t, len) = peek_time(&bytes).unwrap().unwrap();
        assert_eq!(t, parse(&bytes, None).unwrap().time_ns);
        assert!(len > bytes.len());
        assert_eq!(peek_time(&[0x0f, 0x00, 0xfe]).unwrap(), None);
    }

    #[test]
    fn wrong_value_count_is_an_error() {
        let mut p = heap_profile();
        p.sample[0].value = vec![1];
        assert!(parse(&encode(&p), None).is_err());
    }

    /// The decompression-amplification profile of issue #11: one 1 MiB function name,
    /// one location with 4,000 lines of it, one sample referencing that location 1,000
    /// times. About 1 KiB gzipped; expanded, it would be 4 TiB of frames.
    fn amplifying_profile() -> Profile {
        let mut p = heap_profile();
        p.string_table[5] = "f".repeat(1 << 20);
        p.location[0].line = (0..4000)
            .map(|i| Line {
                function_id: 1,
                line: i,
            })
            .collect();
        p.sample[0].location_id = vec![1; 1000];
        p
    }

    #[test]
    fn amplification_is_rejected_quickly() {
        let started = std::time::Instant::now();
        let e = parse(&encode(&amplifying_profile()), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("profile too large when decoded"), "{e}");
        assert!(e.contains("16384 frames"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Fewer lines fit one stack, but the names still expand past the byte bound.
        let mut p = amplifying_profile();
        p.location[0].line.truncate(200);
        p.sample[0].location_id = vec![1];
        let e = parse(&encode(&p), None).unwrap_err().to_string();
        assert!(e.contains("128 MiB"), "{e}");
        // Labels that repeat a huge string count too.
        let mut p = heap_profile();
        p.string_table[6] = "v".repeat(1 << 20);
        p.sample = (0..200)
            .map(|i| Sample {
                location_id: vec![2],
                value: vec![1, i],
                label: vec![Label {
                    key: 1,
                    str: 6,
                    ..Default::default()
                }],
            })
            .collect();
        let e = parse(&encode(&p), None).unwrap_err().to_string();
        assert!(e.contains("labels"), "{e}");
    }

    #[test]
    fn ids_without_copies_equal_ids_of_the_frames() {
        let mut p = heap_profile();
        p.string_table.push("/bin/app".into());
        p.string_table.push("abc123".into());
        p.mapping = vec![Mapping {
            id: 1,
            memory_start: 0x1000,
            memory_limit: 0x9000,
            file_offset: 0x200,
            filename: 8,
            build_id: 9,
            ..Default::default()
        }];
        p.location.push(Location {
            id: 3,
            mapping_id: 1,
            address: 0x1234,
            line: vec![],
            is_folded: false,
        });
        p.location[1].mapping_id = 1;
        p.location[1].line.push(Line {
            function_id: 1,
            line: 2,
        });
        p.sample[0].location_id = vec![3, 1, 2];
        p.sample.push(Sample {
            location_id: vec![3, 1, 2],
            value: vec![1, 1],
            label: vec![],
        });
        let d = parse(&encode(&p), None).unwrap();
        assert_eq!(d.stack_ids().count(), 1);
        let frames = d.frames(d.samples[0].stack_id);
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0].file_offset, Some(0x434));
        assert_eq!(frames[0].build_id.as_deref(), Some("abc123"));
        assert!(frames[2].inlined && !frames[3].inlined);
        assert_eq!(crate::stack::stack_id(&frames), d.samples[0].stack_id);
        // A mapping offset that would overflow is dropped, not a panic.
        p.mapping[0].file_offset = u64::MAX;
        let d = parse(&encode(&p), None).unwrap();
        assert_eq!(d.frames(d.samples[0].stack_id)[0].file_offset, None);
        // Hostile values never overflow a total.
        p.sample[0].value = vec![1, i64::MAX];
        p.sample[1].value = vec![1, i64::MAX];
        let d = parse(&encode(&p), None).unwrap();
        assert_eq!(d.total(|v| v.inuse_bytes), i64::MAX);
    }
}
