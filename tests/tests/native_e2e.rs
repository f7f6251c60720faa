//! End-to-end: `leakscope-recorder record --native` traces the C fixtures
//! (`fixtures/c/*.c`) and the C++ one (`fixtures/cpp/new_leak.cpp`) with eBPF uprobes and
//! writes outstanding native allocations by stack into the capture. Needs root (or
//! CAP_BPF and CAP_PERFMON), the uprobe PMU, gcc and g++; elsewhere the tests skip loudly
//! (and fail in CI).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{ArrowPrimitiveType, RecordBatch};
use common::capture::Capture;
use common::*;
use leakscope_capture::read::read_table;
use leakscope_capture::schema::Table;

/// True when this process may load eBPF programs and the kernel has uprobes.
fn can_trace() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Path::new("/sys/bus/event_source/devices/uprobe/type").exists()
}

fn gcc() -> bool {
    Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds `fixtures/c/leaky.c` (frame pointers kept, so stacks reach `main`).
fn build_fixture(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("leaky");
    let status = Command::new("gcc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&out)
        .arg(root().join("fixtures/c/leaky.c"))
        .args(extra)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc failed to build fixtures/c/leaky.c");
    out
}

fn ready() -> bool {
    require(gcc(), "gcc (to build fixtures/c/leaky.c)")
        && require(can_trace(), "root with eBPF and uprobe support")
}

fn col_u64(b: &RecordBatch, name: &str) -> Vec<u64> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<UInt64Type>()
        .values()
        .to_vec()
}

fn col_i64(b: &RecordBatch, name: &str) -> Vec<i64> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// The last `native_counters` row: every UInt64 column by name.
fn last_counters(dir: &Path) -> HashMap<String, u64> {
    let batches = read_table(dir, Table::NativeCounters).unwrap();
    let b = batches
        .iter()
        .rev()
        .find(|b| b.num_rows() > 0)
        .expect("native_counters rows");
    let last = b.num_rows() - 1;
    let mut out = HashMap::new();
    for f in b.schema().fields() {
        if f.data_type() == &UInt64Type::DATA_TYPE {
            out.insert(f.name().clone(), col_u64(b, f.name())[last]);
        }
    }
    out
}

/// Outstanding bytes per snapshot (time order) of the stacks containing `function`, from
/// `native_outstanding`.
fn outstanding_series(dir: &Path, cap: &Capture, function: &str) -> Vec<(i64, i64)> {
    let mut by_time: std::collections::BTreeMap<i64, i64> = Default::default();
    for b in read_table(dir, Table::NativeOutstanding).unwrap() {
        let t = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<arrow_array::types::TimestampNanosecondType>()
            .values()
            .to_vec();
        let (ids, bytes) = (col_u64(&b, "stack_id"), col_i64(&b, "outstanding_bytes"));
        for i in 0..b.num_rows() {
            let e = by_time.entry(t[i]).or_default();
            if cap.stack_has(ids[i], function) {
                *e += bytes[i];
            }
        }
    }
    by_time.into_iter().collect()
}

/// Arguments of `record --pid PID --native [extra] --out OUT --interval 1s --duration D`.
fn native_record_args<'a>(
    pid: &'a str,
    out: &'a Path,
    duration: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["record", "--pid", pid, "--native"];
    args.extend_from_slice(extra);
    args.extend([
        "--out",
        out.to_str().unwrap(),
        "--interval",
        "1s",
        "--duration",
        duration,
    ]);
    args
}

/// Runs the native recorder to its `--duration`; it must succeed. Returns its stderr.
fn record_native(pid: &str, out: &Path, duration: &str, extra: &[&str]) -> String {
    let rec = run(
        &recorder(),
        &native_record_args(pid, out, duration, extra),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&rec.stderr).into_owned();
    assert!(rec.status.success(), "recorder failed:\n{stderr}");
    stderr
}

/// Starts the native recorder in the background.
fn spawn_native_recorder(pid: &str, out: &Path, duration: &str, extra: &[&str]) -> Running {
    Running::spawn(&recorder(), &native_record_args(pid, out, duration, extra))
}

#[test]
fn native_leak_grows_at_the_leaking_function_and_scratch_stays_flat() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = build_fixture(dir.path(), &[]);
    let target = Running::spawn(&fixture, &[]);
    std::thread::sleep(Duration::from_millis(200));
    let out = dir.path().join("cap");
    let pid = target.pid().to_string();
    let stderr = record_native(&pid, &out, "10s", &[]);
    assert!(stderr.contains("native: tracing malloc"), "{stderr}");
    drop(target);

    let cap = Capture::load(&out);
    cap.assert_consistent(&[]);
    let native_profiles = cap.profiles_of("native");
    assert!(
        native_profiles.len() >= 8,
        "{} native profiles",
        native_profiles.len()
    );

    // The leaking function: 4 KiB every ~10 ms, never freed.
    let leak = outstanding_series(&out, &cap, "leak_buffer");
    let (first, last) = (leak.first().unwrap().1, leak.last().unwrap().1);
    let secs = (leak.last().unwrap().0 - leak.first().unwrap().0) as f64 / 1e9;
    assert!(
        last > first,
        "leak_buffer outstanding did not grow: {leak:?}"
    );
    let rate = (last - first) as f64 / secs;
    assert!(
        rate > 100.0 * 1024.0 && rate < 500.0 * 1024.0,
        "leak_buffer grows {rate:.0} B/s (expected ~400 KiB/s minus sleep overhead): {leak:?}"
    );
    let rising = leak.windows(2).filter(|w| w[1].1 > w[0].1).count();
    assert!(
        rising + 1 >= leak.len() - 1,
        "leak_buffer not rising at (almost) every snapshot: {leak:?}"
    );

    // Scratch buffers are freed before scratch_work returns: ~0 outstanding, many allocated.
    let scratch = outstanding_series(&out, &cap, "scratch_work");
    let worst = scratch.iter().map(|(_, b)| b.abs()).max().unwrap_or(0);
    assert!(
        worst <= 64 * 1024,
        "scratch_work outstanding should stay ~0: {scratch:?}"
    );
    let allocated: i64 = {
        let mut sum = 0;
        for b in read_table(&out, Table::NativeOutstanding).unwrap() {
            let (ids, a) = (col_u64(&b, "stack_id"), col_i64(&b, "allocated_bytes"));
            for i in 0..b.num_rows() {
                if cap.stack_has(ids[i], "scratch_work") {
                    sum = sum.max(a[i]);
                }
            }
        }
        sum
    };
    assert!(
        allocated > 1 << 20,
        "scratch_work allocations not seen (max allocated_bytes of a stack {allocated})"
    );

    // The ring cache plateaus at 64 blocks of 1 KiB.
    let cache = outstanding_series(&out, &cap, "cache_fill");
    assert_eq!(cache.last().unwrap().1, 64 * 1024, "{cache:?}");

    // The same numbers reach the analyzer's input: samples of kind native.
    let samples = cap.series("native", "leak_buffer", |s| s.inuse_bytes);
    assert_eq!(samples.last().unwrap().1, last);

    // Stacks are symbolized with lines, and keep build id and file offset for offline use.
    let (_, frames) = cap
        .stacks
        .iter()
        .find(|(id, _)| cap.stack_has(**id, "leak_buffer"))
        .unwrap();
    let f = frames.iter().find(|f| f.function == "leak_buffer").unwrap();
    assert!(f.file.ends_with("leaky.c") && f.line > 0, "{f:?}");
    assert!(
        f.build_id.is_some() && f.file_offset.is_some() && f.mapping.is_some(),
        "{f:?}"
    );
    assert!(
        frames.iter().any(|f| f.function == "main"),
        "stack does not reach main: {frames:?}"
    );
    // The walk stops where frame pointers end (glibc's __libc_start_call_main has none):
    // no made-up frames past it (the walk's one jump to another stack, for Go's cgo calls,
    // must not fire here).
    assert!(
        frames.len() <= 4 && frames.iter().all(|f| !f.function.is_empty()),
        "frames past main: {frames:?}"
    );

    // Nothing lost at this rate.
    let c = last_counters(&out);
    for name in [
        "lost_alloc_events",
        "lost_free_events",
        "table_full",
        "stash_full",
        "bad_events",
        "stack_failures",
    ] {
        assert_eq!(c[name], 0, "{name} = {} (counters {c:?})", c[name]);
    }
    assert!(
        c["alloc_events"] > 10_000 && c["free_matched"] > 10_000,
        "{c:?}"
    );

    // Every alloc event of leak_buffer is in native_events.
    let events = read_table(&out, Table::NativeEvents).unwrap();
    let rows: usize = events.iter().map(|b| b.num_rows()).sum();
    assert!(
        rows as u64 >= c["alloc_events"],
        "{rows} event rows for {} alloc events",
        c["alloc_events"]
    );
}

#[test]
fn sampling_keeps_totals_unbiased() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = build_fixture(dir.path(), &[]);
    let target = Running::spawn(&fixture, &[]);
    let out = dir.path().join("cap");
    let pid = target.pid().to_string();
    record_native(&pid, &out, "8s", &["--native-sample", "10"]);
    drop(target);
    let cap = Capture::load(&out);
    let leak = outstanding_series(&out, &cap, "leak_buffer");
    let rate = (leak.last().unwrap().1 - leak.first().unwrap().1) as f64
        / ((leak.last().unwrap().0 - leak.first().unwrap().0) as f64 / 1e9);
    assert!(
        rate > 100.0 * 1024.0 && rate < 600.0 * 1024.0,
        "sampled leak rate {rate:.0} B/s: {leak:?}"
    );
    let c = last_counters(&out);
    let ratio = c["alloc_calls"] as f64 / c["alloc_sampled"].max(1) as f64;
    assert!(
        (7.0..13.0).contains(&ratio),
        "sampled 1 in {ratio:.1} (want ~10): {c:?}"
    );
}

/// Builds `fixtures/c/NAME.c` with frame pointers into `dir/NAME`.
fn build_c_fixture(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let src = root().join(format!("fixtures/c/{name}.c"));
    let status = Command::new("gcc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc failed to build {}", src.display());
    out
}

/// Sums `column` (Int64) of `native_outstanding` over the stacks containing `function`, at
/// the last snapshot.
fn last_outstanding(dir: &Path, cap: &Capture, function: &str, column: &str) -> i64 {
    let mut by_time: std::collections::BTreeMap<i64, i64> = Default::default();
    for b in read_table(dir, Table::NativeOutstanding).unwrap() {
        let t = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<arrow_array::types::TimestampNanosecondType>()
            .values()
            .to_vec();
        let (ids, v) = (col_u64(&b, "stack_id"), col_i64(&b, column));
        for i in 0..b.num_rows() {
            let e = by_time.entry(t[i]).or_default();
            if cap.stack_has(ids[i], function) {
                *e += v[i];
            }
        }
    }
    by_time.last_key_value().map_or(0, |(_, v)| *v)
}

/// `--native-sample-bytes`: `fixtures/c/burst_leak.c` leaks 64 MiB in 699,040 blocks of
/// 16 B to 256 KiB at one call site while scratch work allocates and frees. The leak ranks
/// first, and its estimated outstanding bytes and blocks are within 5 standard deviations
/// of the truth the fixture prints. Under size sampling with threshold R, a block of s < R
/// bytes is traced with p = s/R and then counts R bytes and R/s blocks, so
/// Var(bytes) = Σ s(R − s) and Var(blocks) = Σ (R/s − 1) over the blocks below R (blocks of
/// R bytes or more are always traced: exact). At R = 64 KiB one standard deviation is 2.6%
/// of the bytes and 6.6% of the blocks (the 16-byte blocks dominate: each traced one counts
/// 4,096); about 1,000 blocks are traced, so the estimates are close to normal, and a z of 5
/// fails a correct tracer with probability below 1e-6.
#[test]
fn size_sampling_estimates_a_leak_of_small_blocks_without_bias() {
    if !ready() {
        return;
    }
    const R: u64 = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let fixture = build_c_fixture(dir.path(), "burst_leak");
    recorder(); // built, if stale, before the target starts
    let target = Running::spawn(&fixture, &["120"]);
    assert!(
        target
            .wait_for_line("ready", Duration::from_secs(10))
            .is_some(),
        "fixture did not start: {}",
        target.stderr()
    );
    let out = dir.path().join("cap");
    let pid = target.pid().to_string();
    let rec = spawn_native_recorder(&pid, &out, "100s", &["--native-sample-bytes", "64KiB"]);
    assert!(
        rec.wait_for_line("recording pid:", Duration::from_secs(20))
            .is_some(),
        "recorder did not start: {}",
        rec.stderr()
    );
    // A snapshot or two of scratch work alone, then the burst.
    std::thread::sleep(Duration::from_millis(1500));
    target.signal(libc::SIGUSR1);
    let line = target
        .wait_for_line("leaked", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("fixture did not leak: {}", target.stderr()));
    std::thread::sleep(Duration::from_millis(2500));
    rec.signal(libc::SIGINT);
    let done = rec.wait(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(done.status.success(), "recorder failed:\n{stderr}");
    drop(target);

    // Ground truth, and the sampling variance of the estimates.
    let blocks: Vec<(u64, u64)> = line
        .split_whitespace()
        .skip(1)
        .map(|t| {
            let (s, n) = t.split_once('x').unwrap();
            (s.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(blocks.len(), 8, "{line}");
    let true_bytes: u64 = blocks.iter().map(|(s, n)| s * n).sum();
    let true_count: u64 = blocks.iter().map(|(_, n)| n).sum();
    let (mut var_bytes, mut var_count) = (0f64, 0f64);
    for &(s, n) in blocks.iter().filter(|(s, _)| *s < R) {
        var_bytes += n as f64 * s as f64 * (R - s) as f64;
        var_count += n as f64 * (R as f64 / s as f64 - 1.0);
    }
    assert_eq!((true_bytes, true_count), (64 << 20, 699_040), "{line}");

    let cap = Capture::load(&out);
    cap.assert_consistent(&[]);
    let est_bytes = last_outstanding(&out, &cap, "leak_burst", "outstanding_bytes");
    let est_count = last_outstanding(&out, &cap, "leak_burst", "outstanding_count");
    let zb = (est_bytes as f64 - true_bytes as f64) / var_bytes.sqrt();
    // Counts are rounded per stack (one stack here): at most 0.5 more.
    let zc = ((est_count as f64 - true_count as f64).abs() - 0.5).max(0.0) / var_count.sqrt();
    eprintln!(
        "size sampling at {R} B: bytes {est_bytes} vs {true_bytes} (z = {zb:.2}, sd {:.1}%), \
         blocks {est_count} vs {true_count} (|z| = {zc:.2}, sd {:.1}%)",
        100.0 * var_bytes.sqrt() / true_bytes as f64,
        100.0 * var_count.sqrt() / true_count as f64
    );
    assert!(
        zb.abs() < 5.0,
        "leak_burst estimated at {est_bytes} B, truth {true_bytes} B: z = {zb:.2}"
    );
    assert!(
        zc < 5.0,
        "leak_burst estimated at {est_count} blocks, truth {true_count}: |z| = {zc:.2}"
    );

    // The leak ranks first; the scratch work (freed) stays within a few sampled blocks.
    let ranked = ranked_by_growth(&out);
    let (growth, top) = ranked[0];
    assert!(
        cap.stack_has(top, "leak_burst"),
        "top stack (growth {growth} B) is not leak_burst's: {:?}",
        cap.stacks.get(&top)
    );
    for (g, id) in &ranked[1..] {
        assert!(
            *g <= 8 * R as i64,
            "another stack grows {g} B: {:?}",
            cap.stacks.get(id)
        );
    }
    let scratch = last_outstanding(&out, &cap, "scratch_work", "outstanding_bytes");
    assert!(
        scratch.abs() <= 8 * R as i64,
        "scratch_work outstanding {scratch} B"
    );

    // Only a small share of the calls was traced, and nothing was lost.
    let c = last_counters(&out);
    assert_eq!(c["sample_bytes"], R, "{c:?}");
    assert!(
        c["alloc_sampled"] * 10 < c["alloc_calls"] && c["alloc_calls"] > true_count,
        "{c:?}"
    );
    for name in [
        "lost_alloc_events",
        "lost_free_events",
        "table_full",
        "stash_full",
        "bad_events",
    ] {
        assert_eq!(c[name], 0, "{name} = {} (counters {c:?})", c[name]);
    }

    // native_events carries the same weights: the leak's allocation events add up to the
    // estimate, and every block of R bytes or more was traced with weight 1.
    let (mut event_bytes, mut event_count, mut big) = (0u64, 0f64, HashMap::<u64, u64>::new());
    for b in read_table(&out, Table::NativeEvents).unwrap() {
        let (ids, sizes, wb) = (
            col_u64(&b, "stack_id"),
            col_u64(&b, "size"),
            col_u64(&b, "weight_bytes"),
        );
        let wc = b
            .column_by_name("weight_count")
            .unwrap()
            .as_primitive::<arrow_array::types::Float64Type>()
            .values()
            .to_vec();
        let kinds = b.column_by_name("kind").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            if kinds.value(i) != "alloc" || !cap.stack_has(ids[i], "leak_burst") {
                continue;
            }
            event_bytes += wb[i];
            event_count += wc[i];
            if sizes[i] >= R {
                assert_eq!((wb[i], wc[i]), (sizes[i], 1.0));
                *big.entry(sizes[i]).or_default() += 1;
            }
        }
    }
    assert_eq!(event_bytes as i64, est_bytes);
    assert!(
        (event_count - est_count as f64).abs() <= 0.5 + 1e-6,
        "{event_count} vs {est_count}"
    );
    assert_eq!(big, HashMap::from([(65536, 128), (262144, 32)]));
}

#[test]
fn a_target_that_exits_ends_the_recording_cleanly() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = build_fixture(dir.path(), &[]);
    // Built (when stale) before the target's 8 seconds start.
    recorder(); // built, if stale, before the target starts
                // Long enough for a debug recorder to attach on a loaded machine.
    let target = Running::spawn(&fixture, &["8"]);
    let out = dir.path().join("cap");
    let pid = target.pid().to_string();
    let rec = spawn_native_recorder(&pid, &out, "60s", &[]);
    assert!(
        rec.wait_for_line("recording pid:", Duration::from_secs(8))
            .is_some(),
        "recorder did not start while the target ran: {}",
        rec.stderr()
    );
    let _ = target.wait(Duration::from_secs(20));
    let done = rec.wait(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("process {pid} exited")),
        "{stderr}"
    );
    let cap = Capture::load(&out);
    cap.assert_consistent(&[]);
    assert!(!cap.profiles_of("native").is_empty());
}

/// Path of a shared library from the dynamic linker's cache (`ldconfig -p`), e.g.
/// `libjemalloc.so.2`.
fn system_library(name: &str) -> Option<PathBuf> {
    let out = Command::new("ldconfig").arg("-p").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (lib, path) = l.trim().split_once(" => ")?;
        (lib.split_whitespace().next() == Some(name) && l.contains("x86-64"))
            .then(|| PathBuf::from(path.trim()))
            .filter(|p| p.exists())
    })
}

/// Stacks ranked by outstanding-byte growth from the first to the last snapshot, largest
/// first: (growth, stack id).
fn ranked_by_growth(dir: &Path) -> Vec<(i64, u64)> {
    let mut first: HashMap<u64, (i64, i64)> = HashMap::new();
    let mut last: HashMap<u64, (i64, i64)> = HashMap::new();
    for b in read_table(dir, Table::NativeOutstanding).unwrap() {
        let t = b
            .column_by_name("time")
            .unwrap()
            .as_primitive::<arrow_array::types::TimestampNanosecondType>()
            .values()
            .to_vec();
        let (ids, bytes) = (col_u64(&b, "stack_id"), col_i64(&b, "outstanding_bytes"));
        for i in 0..b.num_rows() {
            let f = first.entry(ids[i]).or_insert((t[i], bytes[i]));
            if t[i] < f.0 {
                *f = (t[i], bytes[i]);
            }
            let l = last.entry(ids[i]).or_insert((t[i], bytes[i]));
            if t[i] >= l.0 {
                *l = (t[i], bytes[i]);
            }
        }
    }
    let mut out: Vec<(i64, u64)> = last
        .iter()
        .map(|(id, (_, b))| (b - first[id].1, *id))
        .collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

/// `fixtures/c/leaky.c` run with `LD_PRELOAD=library`: the preloaded allocator is found by
/// its symbols and traced (with `extra_functions`, its own API), the leak ranks first and
/// the freed scratch (which uses that API too) stays at ~0 outstanding.
/// `own_api_sizes`: sizes that only the allocator's own API allocates (or frees) in
/// scratch_work; their blocks must be seen allocated and freed.
fn preloaded_allocator_is_traced(
    library: &str,
    package: &str,
    extra_functions: &[&str],
    own_api_sizes: &[u64],
) {
    if !ready() {
        return;
    }
    let lib = system_library(library);
    if !require(
        lib.is_some(),
        &format!("{library} (Debian package {package})"),
    ) {
        return;
    }
    let lib = lib.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixture = build_fixture(dir.path(), &[]);
    recorder(); // built, if stale, before the target starts
    let preload = format!("LD_PRELOAD={}", lib.display());
    // env execs the fixture: same PID.
    let target = Running::spawn(
        Path::new("/usr/bin/env"),
        &[&preload, fixture.to_str().unwrap(), "30"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let pid = target.pid().to_string();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(maps.contains(library), "{library} not mapped:\n{maps}");
    let out = dir.path().join("cap");
    let stderr = record_native(&pid, &out, "8s", &[]);
    drop(target);
    let line = stderr
        .lines()
        .find(|l| l.contains("native: tracing") && l.contains(library))
        .unwrap_or_else(|| panic!("{library} was not traced:\n{stderr}"));
    for f in ["malloc", "calloc", "realloc", "free", "posix_memalign"]
        .iter()
        .chain(extra_functions)
    {
        assert!(
            line.contains(&format!(" {f},")) || line.contains(&format!(" {f} in")),
            "{f} not probed in {library}: {line}"
        );
    }

    let cap = Capture::load(&out);
    cap.assert_consistent(&[]);
    // The leak ranks first by outstanding growth, at ~400 KiB/s.
    let ranked = ranked_by_growth(&out);
    let (growth, top) = ranked[0];
    assert!(
        cap.stack_has(top, "leak_buffer"),
        "top stack (growth {growth} B) is not leak_buffer's: {:?}",
        cap.stacks.get(&top)
    );
    let leak = outstanding_series(&out, &cap, "leak_buffer");
    let rate = (leak.last().unwrap().1 - leak.first().unwrap().1) as f64
        / ((leak.last().unwrap().0 - leak.first().unwrap().0) as f64 / 1e9);
    assert!(
        rate > 100.0 * 1024.0 && rate < 500.0 * 1024.0,
        "leak_buffer grows {rate:.0} B/s under {library}: {leak:?}"
    );
    // Scratch (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, and the
    // allocator's own API) is freed: ~0 outstanding, though much was allocated.
    let scratch = outstanding_series(&out, &cap, "scratch_work");
    let worst = scratch.iter().map(|(_, b)| b.abs()).max().unwrap_or(0);
    assert!(
        worst <= 64 * 1024,
        "scratch_work outstanding should stay ~0 under {library}: {scratch:?}"
    );
    let c = last_counters(&out);
    assert!(
        c["alloc_events"] > 10_000 && c["free_matched"] > 10_000,
        "{c:?}"
    );
    for name in ["lost_alloc_events", "lost_free_events", "table_full"] {
        assert_eq!(c[name], 0, "{name} = {} (counters {c:?})", c[name]);
    }
    // Blocks of the allocator's own API: allocated and freed (sizes unique to those calls).
    let mut by_size: HashMap<(u64, String), u64> = HashMap::new();
    for b in read_table(&out, Table::NativeEvents).unwrap() {
        let sizes = col_u64(&b, "size");
        let kinds = b.column_by_name("kind").unwrap().as_string::<i32>();
        for (i, size) in sizes.iter().enumerate() {
            if own_api_sizes.contains(size) {
                *by_size
                    .entry((*size, kinds.value(i).to_string()))
                    .or_default() += 1;
            }
        }
    }
    for size in own_api_sizes {
        let allocs = by_size.get(&(*size, "alloc".into())).copied().unwrap_or(0);
        let frees = by_size.get(&(*size, "free".into())).copied().unwrap_or(0);
        assert!(
            allocs > 100 && frees + 2 >= allocs,
            "{size}-byte blocks under {library}: {allocs} allocs, {frees} frees ({by_size:?})"
        );
    }
    // Every scratch block allocated through the preloaded allocator was freed through it:
    // no block was seen allocated twice (a double count would show as "replaced").
    assert_eq!(c.get("replaced").copied().unwrap_or(0), 0, "{c:?}");
}

#[test]
fn jemalloc_preloaded_is_traced_with_its_own_api() {
    preloaded_allocator_is_traced(
        "libjemalloc.so.2",
        "libjemalloc2",
        &[
            "mallocx", "rallocx", "dallocx", "sdallocx", "_Znwm", "_ZdlPv",
        ],
        // mallocx(700) then rallocx to 1500 then sdallocx; mallocx(100) then dallocx.
        &[700, 1500, 100],
    );
}

#[test]
fn tcmalloc_preloaded_is_traced() {
    preloaded_allocator_is_traced(
        "libtcmalloc_minimal.so.4",
        "libtcmalloc-minimal4",
        // tcmalloc's operator delete is an alias of free (one probe, listed as free).
        &["tc_free_sized", "_Znwm"],
        // malloc(648) freed by tc_free_sized.
        &[648],
    );
}

fn gxx() -> bool {
    Command::new("g++")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds `fixtures/cpp/new_leak.cpp` with frame pointers into `dir/new_leak`.
fn build_cpp_fixture(dir: &Path) -> PathBuf {
    let out = dir.join("new_leak");
    let src = root().join("fixtures/cpp/new_leak.cpp");
    let status = Command::new("g++")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("g++ runs");
    assert!(status.success(), "g++ failed to build {}", src.display());
    out
}

/// `fixtures/cpp/new_leak.cpp` (C++ `new`/`delete` only: plain, array, sized, aligned and
/// nothrow) run under `preload` (library, Debian package), or under glibc and libstdc++.
/// The leak (`new Node` in leak_node, 4 KiB every 10 ms) ranks first at ~400 KiB/s, and
/// nothing else grows: every block scratch_work gets from `new` is seen freed by its
/// `delete`. Returns the capture for more checks.
fn cpp_new_delete_is_traced(
    dir: &Path,
    preload: Option<(&str, &str)>,
) -> Option<(PathBuf, Capture, String)> {
    if !ready() || !require(gxx(), "g++ (to build fixtures/cpp/new_leak.cpp)") {
        return None;
    }
    let lib = match preload {
        Some((library, package)) => {
            let lib = system_library(library);
            if !require(
                lib.is_some(),
                &format!("{library} (Debian package {package})"),
            ) {
                return None;
            }
            lib
        }
        None => None,
    };
    let fixture = build_cpp_fixture(dir);
    recorder(); // built, if stale, before the target starts
    let target = match &lib {
        // env execs the fixture: same PID.
        Some(lib) => Running::spawn(
            Path::new("/usr/bin/env"),
            &[
                &format!("LD_PRELOAD={}", lib.display()),
                fixture.to_str().unwrap(),
                "30",
            ],
        ),
        None => Running::spawn(&fixture, &["30"]),
    };
    assert!(
        target
            .wait_for_line("ready", Duration::from_secs(10))
            .is_some(),
        "fixture did not start: {}",
        target.stderr()
    );
    let out = dir.join("cap");
    let pid = target.pid().to_string();
    let stderr = record_native(&pid, &out, "8s", &[]);
    drop(target);
    let cap = Capture::load(&out);
    cap.assert_consistent(&[]);
    let show =
        |id: &u64| -> Vec<String> { cap.stacks[id].iter().map(|f| f.function.clone()).collect() };
    let ranked = ranked_by_growth(&out);
    let (growth, top) = ranked[0];
    let names = show(&top);
    // Under glibc, `new` is libstdc++'s operator new, which calls malloc (traced) and keeps
    // no frame pointer: the stack walk from malloc's return skips the frame of its caller.
    let attributed = names.iter().any(|f| f == "leak_node()")
        || (lib.is_none()
            && names
                .first()
                .is_some_and(|f| f == "operator new(unsigned long)"));
    assert!(
        attributed,
        "top native stack (growth {growth} B) is not the leak's: {names:?}"
    );
    // The top stack's outstanding bytes over time.
    let top_series: Vec<(i64, i64)> = {
        let mut by_time: std::collections::BTreeMap<i64, i64> = Default::default();
        for b in read_table(&out, Table::NativeOutstanding).unwrap() {
            let t = b
                .column_by_name("time")
                .unwrap()
                .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                .values()
                .to_vec();
            let (ids, bytes) = (col_u64(&b, "stack_id"), col_i64(&b, "outstanding_bytes"));
            for i in 0..b.num_rows() {
                if ids[i] == top {
                    *by_time.entry(t[i]).or_default() += bytes[i];
                }
            }
        }
        by_time.into_iter().collect()
    };
    let (f, l) = (top_series.first().unwrap(), top_series.last().unwrap());
    let rate = (l.1 - f.1) as f64 / ((l.0 - f.0) as f64 / 1e9);
    assert!(
        rate > 100.0 * 1024.0 && rate < 500.0 * 1024.0,
        "the C++ leak grows {rate:.0} B/s (expected ~400 KiB/s): {top_series:?}"
    );
    for (g, id) in &ranked[1..] {
        assert!(
            *g < 64 * 1024,
            "another native stack grows {g} B: {:?}",
            show(id)
        );
    }
    let c = last_counters(&out);
    for name in [
        "lost_alloc_events",
        "lost_free_events",
        "table_full",
        "stash_full",
        "bad_events",
        "replaced",
    ] {
        assert_eq!(c[name], 0, "{name} = {} (counters {c:?})", c[name]);
    }
    assert!(c["free_matched"] > 10_000, "{c:?}");
    Some((out, cap, stderr))
}

/// Under jemalloc or tcmalloc, a C++ program's `new` and `delete` are the allocator's own
/// `operator new`/`delete` (probed: `_Znwm`, `_ZnwmSt11align_val_t`, ...): the leak is
/// attributed to leak_node, and scratch_work's blocks of every kind of `new` (plain,
/// array, aligned, nothrow) are seen allocated at scratch_work and freed.
fn cpp_on_preloaded_allocator(library: &str, package: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some((out, cap, stderr)) = cpp_new_delete_is_traced(dir.path(), Some((library, package)))
    else {
        return;
    };
    let line = stderr
        .lines()
        .find(|l| l.contains("native: tracing") && l.contains(library))
        .unwrap_or_else(|| panic!("{library} was not traced:\n{stderr}"));
    // (tcmalloc's array and nothrow forms are aliases of these: probed once, under these
    // names.)
    for f in ["_Znwm", "_ZnwmSt11align_val_t"] {
        assert!(line.contains(&format!(" {f},")), "{f} not probed: {line}");
    }
    // Sizes only scratch_work allocates: Small (24 B), Aligned (320 B, aligned new),
    // char[1500] (nothrow new[]), int[48] (192 B, new[]).
    let mut by_size: HashMap<(u64, String), u64> = HashMap::new();
    for b in read_table(&out, Table::NativeEvents).unwrap() {
        let (ids, sizes) = (col_u64(&b, "stack_id"), col_u64(&b, "size"));
        let kinds = b.column_by_name("kind").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            if [24, 320, 1500, 192].contains(&sizes[i]) {
                assert!(
                    cap.stack_has(ids[i], "scratch_work()"),
                    "{}-byte block not attributed to scratch_work: {:?}",
                    sizes[i],
                    cap.stacks.get(&ids[i])
                );
                *by_size
                    .entry((sizes[i], kinds.value(i).to_string()))
                    .or_default() += 1;
            }
        }
    }
    for size in [24, 320, 1500, 192] {
        let allocs = by_size.get(&(size, "alloc".into())).copied().unwrap_or(0);
        let frees = by_size.get(&(size, "free".into())).copied().unwrap_or(0);
        assert!(
            allocs > 1000 && frees + 8 >= allocs,
            "{size}-byte blocks under {library}: {allocs} allocs, {frees} frees ({by_size:?})"
        );
    }
}

#[test]
fn cpp_new_and_delete_under_jemalloc() {
    cpp_on_preloaded_allocator("libjemalloc.so.2", "libjemalloc2");
}

#[test]
fn cpp_new_and_delete_under_tcmalloc() {
    cpp_on_preloaded_allocator("libtcmalloc_minimal.so.4", "libtcmalloc-minimal4");
}

/// Under glibc, libstdc++'s `operator new` calls `malloc`, which is traced: the leak still
/// ranks first and the deleted scratch does not grow, but without frame pointers in
/// libstdc++ the leak's stack is `operator new(unsigned long)`, `main` (leak_node is lost).
#[test]
fn cpp_new_and_delete_under_glibc() {
    let dir = tempfile::tempdir().unwrap();
    cpp_new_delete_is_traced(dir.path(), None);
}

/// A wrapper allocator (`fixtures/c/wrap_alloc.c`, `LD_PRELOAD`ed) whose malloc, calloc,
/// realloc and free call glibc's: both layers define `malloc` and are probed, and each
/// allocation is counted once, by the outer call, also when sampled (a nested call that
/// got its own chance to be sampled would count about twice: leak_buffer at ~800 KiB/s).
#[test]
fn a_wrapper_allocator_is_not_counted_twice_when_sampled() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = build_fixture(dir.path(), &[]);
    let lib = dir.path().join("libwrap_alloc.so");
    let status = Command::new("gcc")
        .args([
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-o",
        ])
        .arg(&lib)
        .arg(root().join("fixtures/c/wrap_alloc.c"))
        .status()
        .expect("gcc runs");
    assert!(
        status.success(),
        "gcc failed to build fixtures/c/wrap_alloc.c"
    );
    recorder(); // built, if stale, before the target starts
    let preload = format!("LD_PRELOAD={}", lib.display());
    let target = Running::spawn(
        Path::new("/usr/bin/env"),
        &[&preload, fixture.to_str().unwrap(), "30"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = dir.path().join("cap");
    let pid = target.pid().to_string();
    let stderr = record_native(&pid, &out, "8s", &["--native-sample", "10"]);
    drop(target);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("native: tracing malloc") && l.contains("libwrap_alloc.so")),
        "{stderr}"
    );
    let c = last_counters(&out);
    // Most calls are nested (the wrapper's malloc, calloc and realloc call glibc's).
    assert!(c["nested_calls"] * 3 > c["alloc_calls"], "{c:?}");
    let ratio = c["alloc_calls"] as f64 / c["alloc_sampled"].max(1) as f64;
    assert!(
        (7.0..13.0).contains(&ratio),
        "sampled 1 in {ratio:.1} (want ~10): {c:?}"
    );
    let cap = Capture::load(&out);
    let leak = outstanding_series(&out, &cap, "leak_buffer");
    let rate = (leak.last().unwrap().1 - leak.first().unwrap().1) as f64
        / ((leak.last().unwrap().0 - leak.first().unwrap().0) as f64 / 1e9);
    assert!(
        rate > 200.0 * 1024.0 && rate < 560.0 * 1024.0,
        "sampled leak rate through the wrapper {rate:.0} B/s (want ~400 KiB/s): {leak:?}"
    );
}

/// Builds `fixtures/c/plugin_alloc.c` (a shared library with its own `malloc`) and
/// `fixtures/c/dlopen_leak.c` (which loads it on SIGUSR1); returns (program, library).
fn build_dlopen_fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let lib = dir.join("libplugin_alloc.so");
    let status = Command::new("gcc")
        .args([
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-o",
        ])
        .arg(&lib)
        .arg(root().join("fixtures/c/plugin_alloc.c"))
        .status()
        .expect("gcc runs");
    assert!(
        status.success(),
        "gcc failed to build fixtures/c/plugin_alloc.c"
    );
    let prog = dir.join("dlopen_leak");
    let status = Command::new("gcc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&prog)
        .arg(root().join("fixtures/c/dlopen_leak.c"))
        .arg("-ldl")
        .status()
        .expect("gcc runs");
    assert!(
        status.success(),
        "gcc failed to build fixtures/c/dlopen_leak.c"
    );
    (prog, lib)
}

#[test]
fn an_allocator_dlopened_after_recording_started_is_traced() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (prog, lib) = build_dlopen_fixture(dir.path());
    recorder(); // built, if stale, before the target starts
    let target = Running::spawn(&prog, &[lib.to_str().unwrap(), "30"]);
    assert!(
        target
            .wait_for_line("ready", Duration::from_secs(10))
            .is_some(),
        "fixture did not start: {}",
        target.stderr()
    );
    let out = dir.path().join("cap");
    let pid = target.pid().to_string();
    let rec = spawn_native_recorder(&pid, &out, "10s", &[]);
    assert!(
        rec.wait_for_line("recording pid:", Duration::from_secs(20))
            .is_some(),
        "recorder did not start: {}",
        rec.stderr()
    );
    // A couple of snapshots before the library exists (the first is taken at once).
    std::thread::sleep(Duration::from_millis(2500));
    // Not mapped yet: only the C library is traced.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(!maps.contains("libplugin_alloc.so"), "{maps}");
    assert!(
        !rec.stderr().contains("libplugin_alloc.so"),
        "{}",
        rec.stderr()
    );
    target.signal(libc::SIGUSR1);
    assert!(
        target
            .wait_for_line("loaded", Duration::from_secs(10))
            .is_some(),
        "fixture did not load the library: {}",
        target.stderr()
    );
    let done = rec.wait(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(done.status.success(), "recorder failed:\n{stderr}");
    drop(target);
    // The re-scan found the library's allocator and attached to it.
    let line = stderr
        .lines()
        .find(|l| l.contains("native: tracing") && l.contains("libplugin_alloc.so"))
        .unwrap_or_else(|| panic!("the dlopened allocator was not attached:\n{stderr}"));
    assert!(line.contains("malloc"), "{line}");
    let c = last_counters(&out);
    let libraries: Vec<String> = read_table(&out, Table::NativeCounters)
        .unwrap()
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name("libraries").unwrap().as_string::<i32>();
            (0..b.num_rows())
                .map(|i| col.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        libraries
            .last()
            .is_some_and(|l| l.contains("libplugin_alloc.so") && l.contains("libc.so")),
        "{libraries:?}"
    );
    assert!(
        libraries
            .first()
            .is_some_and(|l| !l.contains("libplugin_alloc.so")),
        "the library was traced before it was loaded? {libraries:?}"
    );
    // Its allocations are attributed to the function calling it, and grow (~400 KiB/s).
    let cap = Capture::load(&out);
    cap.assert_consistent(&[]);
    let leak = outstanding_series(&out, &cap, "leak_through_plugin");
    let grown: Vec<_> = leak.iter().filter(|(_, b)| *b > 0).collect();
    assert!(
        grown.len() >= 3,
        "leak_through_plugin outstanding did not grow over several snapshots: {leak:?}"
    );
    let (first, last) = (grown.first().unwrap(), grown.last().unwrap());
    let rate = (last.1 - first.1) as f64 / ((last.0 - first.0) as f64 / 1e9);
    assert!(
        rate > 100.0 * 1024.0 && rate < 500.0 * 1024.0,
        "leak_through_plugin grows {rate:.0} B/s (expected ~400 KiB/s): {leak:?}"
    );
    for name in [
        "lost_alloc_events",
        "lost_free_events",
        "table_full",
        "stash_full",
    ] {
        assert_eq!(c[name], 0, "{name} = {} (counters {c:?})", c[name]);
    }
}

#[test]
fn native_errors_are_one_clear_line() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cap");
    let o = out.to_str().unwrap();
    // No such PID.
    let r = run(
        &recorder(),
        &["record", "--pid", "999999999", "--native", "--out", o],
        Duration::from_secs(30),
    );
    assert_one_line_error(&r, &["no process with PID 999999999"]);
    assert!(
        !out.exists(),
        "a failed start left {} behind",
        out.display()
    );
    // Without privileges (as nobody, when setpriv is there).
    let setpriv = Path::new("/usr/bin/setpriv");
    if setpriv.exists() {
        let rec = recorder();
        let r = run(
            setpriv,
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                rec.to_str().unwrap(),
                "record",
                "--pid",
                "1",
                "--native",
                "--out",
                o,
            ],
            Duration::from_secs(30),
        );
        if String::from_utf8_lossy(&r.stderr).contains("Permission denied") {
            eprintln!(
                "nobody cannot run {}: privilege check not tested",
                rec.display()
            );
        } else {
            assert_one_line_error(
                &r,
                &["native tracing needs root, or CAP_BPF and CAP_PERFMON (running as uid 65534"],
            );
        }
    }
    // A stripped static binary: no allocator to find.
    let src = dir.path().join("idle.c");
    std::fs::write(
        &src,
        "#include <unistd.h>\nint main(void){pause();return 0;}\n",
    )
    .unwrap();
    let bin = dir.path().join("idle");
    let built = Command::new("gcc")
        .args(["-static", "-s", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if require(built, "static libc (gcc -static)") {
        let idle = Running::spawn(&bin, &[]);
        let pid = idle.pid().to_string();
        let r = run(
            &recorder(),
            &["record", "--pid", &pid, "--native", "--out", o],
            Duration::from_secs(30),
        );
        assert_one_line_error(&r, &[&format!("PID {pid}: no allocator found")]);
    }
}

/// The leaky Go service's cgo leak (`fixtures/go/leaky-service/cgo_leak.go`): C `malloc`
/// called from `leaky_c_alloc` (cgo's default `-O2`: no frame pointer), called from Go
/// through `runtime.cgocall`/`runtime.asmcgocall`, which runs the C code on the thread's
/// system stack. The eBPF walk jumps from there to the goroutine's stack, so the native
/// stack continues into the Go callers. The leak ranks first, and nothing of the Go
/// runtime (its heap arenas are `mmap`ed, which is not traced) shows as a native leak.
#[test]
fn go_cgo_leak_stack_reaches_the_go_caller() {
    if !ready() {
        return;
    }
    let Some(svc_bin) = leaky_service_or_skip() else {
        return;
    };
    recorder(); // built, if stale, before the target starts
                // 2 x ~4 KiB per 20 ms tick: ~400 KiB/s.
    let svc = Service::start(
        &svc_bin,
        &["-leaks", "cgo", "-traps", "none", "-tick", "20ms"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cap");
    let pid = svc.pid().to_string();
    record_native(&pid, &out, "6s", &[]);
    drop(svc);
    let cap = Capture::load(&out);
    cap.assert_consistent(&[]);
    let ranked = ranked_by_growth(&out);
    let show =
        |id: &u64| -> Vec<&str> { cap.stacks[id].iter().map(|f| f.function.as_str()).collect() };
    let (growth, top) = ranked[0];
    let names = show(&top);
    let pos = |f: &str| names.iter().position(|n| *n == f);
    let (c, go_wrapper, go_caller) = (
        pos("leaky_c_alloc"),
        pos("main._Cfunc_leaky_c_alloc"),
        pos("main.leakCgoMalloc"),
    );
    assert!(
        c.is_some() && go_wrapper.is_some() && go_caller.is_some() && c < go_wrapper,
        "top native stack (growth {growth} B) is not the cgo leak through its Go callers: {names:?}"
    );
    assert!(go_wrapper < go_caller, "{names:?}");
    let leak = outstanding_series(&out, &cap, "leaky_c_alloc");
    let rate = (leak.last().unwrap().1 - leak.first().unwrap().1) as f64
        / ((leak.last().unwrap().0 - leak.first().unwrap().0) as f64 / 1e9);
    assert!(
        rate > 150.0 * 1024.0 && rate < 800.0 * 1024.0,
        "cgo leak grows {rate:.0} B/s (expected ~400 KiB/s): {names:?}"
    );
    for (g, id) in &ranked[1..] {
        assert!(
            *g < 64 * 1024,
            "another native stack grows {g} B: {:?}",
            show(id)
        );
    }
}

/// A process that keeps making new call stacks (each used for a tenth of a second, then
/// never again) must not grow the tracer's tables without bound: stacks idle for 60
/// intervals are forgotten and counted in `native_counters.stacks_evicted`.
#[test]
fn idle_stacks_are_evicted_and_counted() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = build_c_fixture(dir.path(), "stack_churn");
    let target = Running::spawn(&fixture, &["30"]);
    std::thread::sleep(Duration::from_millis(200));
    let out = dir.path().join("cap");
    let pid = target.pid().to_string();
    let rec = run(
        &recorder(),
        &[
            "record",
            "--pid",
            &pid,
            "--native",
            "--out",
            out.to_str().unwrap(),
            "--interval",
            "100ms",
            "--duration",
            "12s",
        ],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&rec.stderr);
    assert!(rec.status.success(), "recorder failed:\n{stderr}");
    let c = last_counters(&out);
    // Depths 0..~50 were used in the first 5 s and idle for 60 intervals (6 s) by the end.
    assert!(c["stacks_evicted"] >= 20, "{c:?}");
    assert_eq!(c["lost_alloc_events"], 0, "{c:?}");
}
