//! The segment writer under a failing commit (no Go needed): a set that cannot be fully
//! committed leaves nothing behind, and the retry commits every row.

mod common;

use common::capture::{committed_files, Capture};
use leakscope_capture::rows::{ProfileRow, SampleRow, SampleValues, StackRow};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use leakscope_capture::stack::{stack_id, Frame};

const T0: i64 = 1_795_428_000_000_000_000;

fn add_profile(w: &mut SegmentWriter, profile_id: u64, time_ns: i64, function: &str) {
    let frames = vec![Frame {
        function: function.into(),
        file: "/src/main.go".into(),
        line: 7,
        ..Default::default()
    }];
    let id = stack_id(&frames);
    if !w.has_stack(id) {
        w.add_stack(StackRow {
            stack_id: id,
            origin: "go".into(),
            frames,
        });
    }
    w.add_profile(ProfileRow {
        profile_id,
        time_ns,
        kind: "heap".into(),
        target: "test".into(),
        pid: None,
        run_id: "r1".into(),
        period: 4096,
        period_type: "space/bytes".into(),
        sample_types: vec!["inuse_space/bytes".into()],
        duration_ns: 0,
        scrape_ms: None,
        source: format!("/p/{profile_id}"),
        sample_count: 1,
    });
    w.add_sample(SampleRow {
        profile_id,
        time_ns,
        run_id: "r1".into(),
        kind: "heap".into(),
        stack_id: id,
        values: SampleValues {
            inuse_bytes: Some(4096),
            ..Default::default()
        },
        labels: None,
    });
}

#[test]
fn a_failed_commit_leaves_no_partial_set_and_the_retry_commits_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::new(dir.path(), RotationPolicy::default());
    add_profile(&mut w, 1, T0, "main.a");
    add_profile(&mut w, 2, T0 + 1_000_000_000, "main.b");
    // `samples` is a regular file: stacks and profiles commit, samples cannot.
    let blocker = dir.path().join("samples");
    std::fs::write(&blocker, b"in the way").unwrap();
    let err = w.rotate().unwrap_err().to_string();
    assert!(err.contains("samples"), "{err}");
    assert!(
        committed_files(dir.path()).is_empty(),
        "a partial set stayed committed: {:?}",
        committed_files(dir.path())
    );

    // More rows arrive (one reuses a stack of the failed set), then the retry succeeds.
    std::fs::remove_file(&blocker).unwrap();
    add_profile(&mut w, 3, T0 + 2_000_000_000, "main.a");
    add_profile(&mut w, 4, T0 + 3_000_000_000, "main.c");
    let files = w.rotate().unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let c = Capture::load(dir.path());
    c.assert_consistent(&[]);
    let mut ids: Vec<u64> = c.profiles.iter().map(|p| p.profile_id).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 4], "rows of the failed attempt were lost");
    assert_eq!(c.stacks.len(), 3);

    // The next set starts fresh and is self-contained again.
    add_profile(&mut w, 5, T0 + 4_000_000_000, "main.a");
    assert_eq!(w.rotate().unwrap().len(), 3);
    let c = Capture::load(dir.path());
    c.assert_consistent(&[]);
    assert_eq!((c.profiles.len(), c.stack_rows), (5, 4));
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// `kill -9` between the `profiles` and the `samples` rename of a set leaves profiles
/// without samples on disk. Without a commit marker, readers must not see that set (a
/// warning names it), and importing the same file again must import it, not call it a
/// duplicate of the half-written profile.
#[test]
fn an_interrupted_set_is_invisible_and_its_profiles_are_imported_again() {
    use common::*;
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("fixtures/pprof");
    let (a, b) = (
        fixtures.join("go1.27/heap.pb.gz"),
        fixtures.join("go1.19/heap.pb.gz"),
    );
    let quick = std::time::Duration::from_secs(30);
    let out = dir.path().join("capture");
    let o = run(&recorder(), &["import", s(&a), "--out", s(&out)], quick);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The interrupted import of b: its stacks and profiles files, no samples, no marker.
    let scratch = dir.path().join("scratch");
    let o = run(&recorder(), &["import", s(&b), "--out", s(&scratch)], quick);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut half = Vec::new();
    for f in committed_files(&scratch) {
        let rel = f.strip_prefix(&scratch).unwrap().to_path_buf();
        if !rel.starts_with("samples") {
            std::fs::create_dir_all(out.join(&rel).parent().unwrap()).unwrap();
            std::fs::copy(&f, out.join(&rel)).unwrap();
            half.push(rel);
        }
    }
    assert_eq!(half.len(), 2, "{half:?}");
    let stem = half[0].file_stem().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        leakscope_capture::segment::incomplete_sets(&out).unwrap(),
        std::slice::from_ref(&stem)
    );
    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    assert_eq!(c.profiles.len(), 1, "the half-written set is visible");

    let o = run(&recorder(), &["import", s(&b), "--out", s(&out)], quick);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("duplicate"), "{stderr}");
    assert!(
        stderr.contains(&format!("incomplete segment set {stem} ignored")),
        "the incomplete set is not reported: {stderr}"
    );
    let c = Capture::load(&out);
    c.assert_consistent(&[]);
    assert_eq!(c.profiles.len(), 2);
}
