//! Writes small heap captures straight through the capture crate's segment writer (as the
//! recorder's import does), for inputs no real profile would hold: times at the ends of
//! `i64`, hostile function names.

use std::path::Path;

use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::rows::{ProfileRow, SampleRow, SampleValues, StackRow};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use leakscope_capture::stack::{stack_id, Frame};

/// A Go-like stack: `site` called from `caller`, with a runtime allocation frame at the leaf.
pub fn stack(site: &str, file: &str, caller: &str) -> Vec<Frame> {
    let f = |function: &str, file: &str, line: i64| Frame {
        function: function.into(),
        file: file.into(),
        line,
        ..Default::default()
    };
    vec![
        f(
            "runtime.mallocgc",
            "/usr/local/go/src/runtime/malloc.go",
            1000,
        ),
        f(site, file, 42),
        f(caller, "/src/app/main.go", 7),
        f(
            "runtime.goexit",
            "/usr/local/go/src/runtime/asm_amd64.s",
            1700,
        ),
    ]
}

/// One heap profile: its time and, per stack, the bytes in use.
pub struct HeapProfile<'a> {
    /// Profile time, ns since the epoch.
    pub time_ns: i64,
    /// (stack, inuse bytes) of every sample.
    pub samples: Vec<(&'a [Frame], i64)>,
}

/// Writes a capture at `dir` (created) holding `profiles` of one run, one segment set per
/// profile (the writer's rotation check subtracts times and overflows on `i64::MIN`).
/// Labels of every sample are `labels` when given.
pub fn write_heap_capture(dir: &Path, profiles: &[HeapProfile], labels: Option<&str>) {
    std::fs::create_dir_all(dir).unwrap();
    let session = Session {
        mode: "import".into(),
        recorder_version: "test".into(),
        target: "test://integrity".into(),
        host: "test".into(),
        start_time: "2026-12-01T00:00:00Z".into(),
        options: serde_json::json!({"target": null, "files": profiles.len()}),
    };
    Manifest::new(session).write(dir).unwrap();
    let mut w = SegmentWriter::new(dir, RotationPolicy::default());
    for (i, p) in profiles.iter().enumerate() {
        let profile_id = 0x1000 + i as u64;
        for (frames, _) in &p.samples {
            let id = stack_id(frames);
            if !w.has_stack(id) {
                w.add_stack(StackRow {
                    stack_id: id,
                    origin: "go".into(),
                    frames: frames.to_vec(),
                });
            }
        }
        w.add_profile(ProfileRow {
            profile_id,
            time_ns: p.time_ns,
            kind: "heap".into(),
            target: "test://integrity".into(),
            pid: None,
            run_id: "run-1".into(),
            period: 524_288,
            period_type: "space/bytes".into(),
            sample_types: vec!["inuse_objects/count".into(), "inuse_space/bytes".into()],
            duration_ns: 0,
            scrape_ms: None,
            source: format!("/profiles/heap-{i}.pb.gz"),
            sample_count: p.samples.len() as u32,
        });
        for (frames, bytes) in &p.samples {
            w.add_sample(SampleRow {
                profile_id,
                time_ns: p.time_ns,
                run_id: "run-1".into(),
                kind: "heap".into(),
                stack_id: stack_id(frames),
                values: SampleValues {
                    inuse_bytes: Some(*bytes),
                    inuse_objects: Some((*bytes / 64).max(1)),
                    ..Default::default()
                },
                labels: labels.map(str::to_string),
            });
        }
        w.rotate().unwrap();
    }
}
