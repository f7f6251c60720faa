//! `leakscope-synth`: writes a synthetic capture of any size, with planted leaks and traps
//! and a ground-truth file, for scale tests and benchmarks of the analyzer.
//!
//! The capture goes through the same code path as the recorder's `import`:
//! `leakscope_capture::manifest::Manifest` and `segment::SegmentWriter` (hive-partitioned
//! zstd Parquet segment sets, rotated by size, age and UTC date). Every heap profile has one
//! sample per stack, so `--profiles N --stacks M` gives N*M sample rows.
//!
//! Stacks look like Go heap stacks: runtime/standard-library allocation frames at the leaf,
//! then the call site (`github.com/acme/svcK.(*Type).verbJ`), then 8-20 frames in all down
//! to `runtime.goexit`/`runtime.main`. About one call site per ten stacks (`--sites`).
//! Every planted shape is given to whole call sites (all their stacks), so the truth holds
//! for `rank --by stack` and `--by site` alike:
//!
//! - leak: linear growth over each run (reset by a restart),
//! - plateau: grows, then flat (a bounded cache filling up),
//! - sawtooth: periodic build-up and flush to a flat floor,
//! - warm-up: early peak, then falls back to a lower level,
//!
//! and every other site is steady, with multiplicative noise (sd 4%) on every value.
//! Generation is deterministic in `--seed` (segment file names excepted), parallel
//! (one writer per rayon thread, each over a contiguous range of profiles) and memory-bounded
//! (each writer buffers at most one segment set).
//!
//! The ground truth is written next to the capture (`OUT.ground-truth.json`, or `--truth`).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use leakscope_capture::manifest::{Manifest, Session};
use leakscope_capture::rows::{ProfileRow, SampleRow, SampleValues, StackRow};
use leakscope_capture::segment::{RotationPolicy, SegmentWriter};
use leakscope_capture::stack::{stack_id, Frame};
use rayon::prelude::*;
use serde_json::json;

/// Writes a synthetic leakscope capture with planted leaks and traps.
#[derive(Parser, Debug, Clone)]
#[command(name = "leakscope-synth", version)]
struct Args {
    /// Capture directory to create (must be missing or empty).
    #[arg(long)]
    out: PathBuf,
    /// Heap profiles to write.
    #[arg(long, default_value_t = 1000)]
    profiles: usize,
    /// Distinct stacks; every profile has one sample per stack.
    #[arg(long, default_value_t = 1000)]
    stacks: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds between profiles.
    #[arg(long, default_value_t = 10)]
    interval_secs: u64,
    /// Runs (process incarnations): the profiles are split evenly; every shape restarts.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Call sites (default: stacks / 10, at least 1).
    #[arg(long)]
    sites: Option<usize>,
    /// Planted leaking sites (default: 2% of sites, 2..=20).
    #[arg(long)]
    leak_sites: Option<usize>,
    /// Planted sites of each trap shape: plateau, sawtooth, warm-up (default as --leak-sites).
    #[arg(long)]
    trap_sites: Option<usize>,
    /// Write planted leak number N (0-based, in planting order; repeatable) as a steady
    /// site instead, everything else unchanged: with the same seed, one capture can have a
    /// site leak and another have it flat (before/after captures for `leakscope compare`).
    #[arg(long, value_name = "N")]
    steady_leak: Vec<usize>,
    /// Time of the first profile (RFC 3339).
    #[arg(long, default_value = "2026-01-05T00:00:00Z")]
    start: String,
    /// Commit a segment set when about this much is buffered (writer estimate; import
    /// uses 64MiB), e.g. `64MiB`, `512KiB`, `1000000`.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    rotate_size: usize,
    /// Commit a segment set when it spans this many seconds (import uses 6 h).
    #[arg(long, default_value_t = 6 * 3600)]
    rotate_secs: i64,
    /// Parallel segment writers (default: the rayon thread count).
    #[arg(long)]
    writers: Option<usize>,
    /// Ground-truth file (default: OUT.ground-truth.json next to the capture).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Target recorded in the manifest and the profiles (default synth://leakscope-synth).
    #[arg(long)]
    target: Option<String>,
    /// Host recorded in the manifest (default: this machine's host name).
    #[arg(long)]
    host: Option<String>,
    /// Manifest label KEY=VALUE (repeatable), for `leakscope fleet rank --by label:KEY`.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label)]
    label: Vec<(String, String)>,
    /// Multiplies the growth of every planted leak (0: the leak sites stay steady), e.g. to
    /// make one capture of a fleet leak ten times faster.
    #[arg(long, default_value_t = 1.0)]
    leak_scale: f64,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("bad label {s:?} (use KEY=VALUE)")),
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return Err(format!("bad size unit in {s:?} (use B, KiB, MiB or GiB)")),
    };
    Ok(n * mult)
}

const TARGET: &str = "synth://leakscope-synth";
const GOROOT: &str = "/usr/local/go/src";
/// Relative standard deviation of the multiplicative noise on every value.
const NOISE_SD: f64 = 0.04;
const SIZE_CLASSES: &[i64] = &[
    16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 8192, 32768,
];

// ---------------------------------------------------------------------------------------
// Deterministic randomness.

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        Rng(mix(seed ^ mix(stream)))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform integer in lo..=hi.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next() as usize % items.len()]
    }
}

/// Noise of stack `i` in profile `p`: Irwin-Hall(4), scaled to sd [`NOISE_SD`] (|x| < 3.5 sd).
fn noise(seed: u64, i: usize, p: usize) -> f64 {
    let h = mix(seed ^ mix(((i as u64) << 32) ^ p as u64 ^ 0x5EED));
    let u = |k: u32| ((h >> (16 * k)) & 0xffff) as f64 / 65536.0;
    let s = u(0) + u(1) + u(2) + u(3) - 2.0; // mean 0, sd sqrt(1/3)
    s / (1.0f64 / 3.0).sqrt() * NOISE_SD
}

// ---------------------------------------------------------------------------------------
// Shapes.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Steady,
    /// Linear growth by `growth` x base over each run.
    Leak {
        growth: f64,
    },
    /// Grows by `amp` x base until `fill` of the run, then flat.
    Plateau {
        amp: f64,
        fill: f64,
    },
    /// Builds up `amp` x base over `period` of a run, then flushes to the floor.
    Sawtooth {
        amp: f64,
        period: f64,
    },
    /// Rises by `amp` x base until `rise` of the run, then decays to `level` of that.
    WarmUp {
        amp: f64,
        rise: f64,
        level: f64,
    },
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Steady => "steady",
            Shape::Leak { .. } => "leak",
            Shape::Plateau { .. } => "plateau",
            Shape::Sawtooth { .. } => "sawtooth",
            Shape::WarmUp { .. } => "warm-up",
        }
    }

    fn params(self) -> serde_json::Value {
        match self {
            Shape::Steady => json!({}),
            Shape::Leak { growth } => json!({ "growth_over_run": growth }),
            Shape::Plateau { amp, fill } => json!({ "amplitude": amp, "fill_at": fill }),
            Shape::Sawtooth { amp, period } => json!({ "amplitude": amp, "period_of_run": period }),
            Shape::WarmUp { amp, rise, level } => {
                json!({ "amplitude": amp, "peak_at": rise, "settles_at_of_peak": level })
            }
        }
    }

    /// (level, envelope) in units of the amplitude, at `pos` of `n` points of a run.
    /// The envelope never decreases and is never below the level: it drives the cumulative
    /// `alloc_*` columns.
    fn term(self, pos: usize, n: usize) -> (f64, f64, f64) {
        let u = if n > 1 {
            pos as f64 / (n - 1) as f64
        } else {
            0.0
        };
        match self {
            Shape::Steady => (0.0, 0.0, 0.0),
            Shape::Leak { growth } => (growth, u, u),
            Shape::Plateau { amp, fill } => {
                let v = (u / fill).min(1.0);
                (amp, v, v)
            }
            Shape::Sawtooth { amp, period } => {
                let pts = ((n as f64 * period).round() as usize).max(4);
                let cycles = (pos / pts) as f64;
                let phase = (pos % pts) as f64 / pts as f64;
                (amp, phase, cycles + phase)
            }
            Shape::WarmUp { amp, rise, level } => {
                let v = if u < rise {
                    u / rise
                } else {
                    level + (1.0 - level) * (-(u - rise) / 0.04).exp()
                };
                (amp, v, (u / rise).min(1.0))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stacks.

struct Site {
    key: String,
    frame: Frame,
    leaf: Vec<Frame>,
    shape: Shape,
}

struct Stack {
    row: StackRow,
    site: usize,
    /// Object size in bytes.
    size: i64,
    /// Steady in-use objects.
    base: f64,
    /// Objects allocated (and freed) per second.
    churn: f64,
    /// Amplitude multiplier of the site's shape for this stack.
    scale: f64,
}

fn frame(function: &str, file: &str, line: i64) -> Frame {
    Frame {
        function: function.to_string(),
        file: file.to_string(),
        line,
        ..Default::default()
    }
}

fn rt(function: &str, file: &str, line: i64) -> Frame {
    frame(function, &format!("{GOROOT}/{file}"), line)
}

/// Allocation paths below a call site, leaf first.
fn alloc_path(rng: &mut Rng) -> Vec<Frame> {
    let mallocgc = rt("runtime.mallocgc", "runtime/malloc.go", 1053);
    match rng.int(0, 6) {
        0 => vec![mallocgc, rt("runtime.newobject", "runtime/malloc.go", 1710)],
        1 => vec![mallocgc, rt("runtime.makeslice", "runtime/slice.go", 116)],
        2 => vec![mallocgc, rt("runtime.growslice", "runtime/slice.go", 278)],
        3 => vec![
            mallocgc,
            rt("runtime.newarray", "runtime/malloc.go", 1737),
            rt(
                "internal/runtime/maps.newarray",
                "internal/runtime/maps/runtime.go",
                193,
            ),
            rt(
                "internal/runtime/maps.(*table).grow",
                "internal/runtime/maps/table.go",
                1115,
            ),
            rt(
                "runtime.mapassign_faststr",
                "internal/runtime/maps/runtime_faststr_swiss.go",
                263,
            ),
        ],
        4 => vec![
            mallocgc,
            rt("runtime.rawstring", "runtime/string.go", 311),
            rt("runtime.rawstringtmp", "runtime/string.go", 175),
            rt("runtime.slicebytetostring", "runtime/string.go", 114),
        ],
        5 => vec![
            mallocgc,
            rt("runtime.makeslice", "runtime/slice.go", 116),
            rt("bytes.growSlice", "bytes/buffer.go", 249),
            rt("bytes.(*Buffer).grow", "bytes/buffer.go", 151),
            rt("bytes.(*Buffer).Write", "bytes/buffer.go", 179),
        ],
        _ => vec![
            mallocgc,
            rt("runtime.newobject", "runtime/malloc.go", 1710),
            rt("reflect.unsafe_New", "runtime/malloc.go", 1724),
            rt("reflect.New", "reflect/value.go", 3318),
            rt(
                "encoding/json.(*decodeState).object",
                "encoding/json/decode.go",
                626,
            ),
            rt(
                "encoding/json.(*decodeState).value",
                "encoding/json/decode.go",
                374,
            ),
            rt(
                "encoding/json.(*decodeState).unmarshal",
                "encoding/json/decode.go",
                181,
            ),
            rt("encoding/json.Unmarshal", "encoding/json/decode.go", 108),
        ],
    }
}

const TYPES: &[&str] = &[
    "Handler", "Cache", "Store", "Worker", "Codec", "Session", "Index", "Router",
];
const VERBS: &[&str] = &[
    "do", "load", "handle", "build", "decode", "put", "fetch", "merge", "scan", "flush",
];

fn user_frame(rng: &mut Rng, packages: usize, n: usize) -> Frame {
    let k = rng.int(0, packages - 1);
    let t = rng.pick(TYPES);
    let v = rng.pick(VERBS);
    frame(
        &format!("github.com/acme/svc{k}.(*{t}).{v}{n}"),
        &format!(
            "/home/ci/go/src/github.com/acme/svc{k}/{}.go",
            t.to_lowercase()
        ),
        20 + rng.int(0, 900) as i64,
    )
}

/// Bottom of a stack (root last): an HTTP server, a worker pool, a gRPC server or main.
fn root_path(rng: &mut Rng, packages: usize) -> Vec<Frame> {
    match rng.int(0, 3) {
        0 => vec![
            frame(
                "github.com/acme/mw.Logging.func1",
                "/home/ci/go/src/github.com/acme/mw/logging.go",
                44,
            ),
            rt("net/http.HandlerFunc.ServeHTTP", "net/http/server.go", 2294),
            rt(
                "net/http.serverHandler.ServeHTTP",
                "net/http/server.go",
                3301,
            ),
            rt("net/http.(*conn).serve", "net/http/server.go", 2102),
            rt("runtime.goexit", "runtime/asm_amd64.s", 1700),
        ],
        1 => {
            let k = rng.int(0, packages - 1);
            let file = format!("/home/ci/go/src/github.com/acme/svc{k}/pool.go");
            vec![
                frame(&format!("github.com/acme/svc{k}.(*Worker).run"), &file, 88),
                frame(
                    &format!("github.com/acme/svc{k}.(*Pool).Start.func1"),
                    &file,
                    41,
                ),
                rt("runtime.goexit", "runtime/asm_amd64.s", 1700),
            ]
        }
        2 => vec![
            frame(
                "google.golang.org/grpc.(*Server).processUnaryRPC",
                "/home/ci/go/pkg/mod/google.golang.org/grpc@v1.71.0/server.go",
                1405,
            ),
            frame(
                "google.golang.org/grpc.(*Server).handleStream",
                "/home/ci/go/pkg/mod/google.golang.org/grpc@v1.71.0/server.go",
                1816,
            ),
            frame(
                "google.golang.org/grpc.(*Server).serveStreams.func2.1",
                "/home/ci/go/pkg/mod/google.golang.org/grpc@v1.71.0/server.go",
                1040,
            ),
            rt("runtime.goexit", "runtime/asm_amd64.s", 1700),
        ],
        _ => vec![
            frame(
                "main.run",
                "/home/ci/go/src/github.com/acme/cmd/server/main.go",
                77,
            ),
            frame(
                "main.main",
                "/home/ci/go/src/github.com/acme/cmd/server/main.go",
                23,
            ),
            rt("runtime.main", "runtime/proc.go", 283),
            rt("runtime.goexit", "runtime/asm_amd64.s", 1700),
        ],
    }
}

struct Model {
    sites: Vec<Site>,
    stacks: Vec<Stack>,
    /// `--leak-scale`.
    leak_scale: f64,
}

fn planted_counts(a: &Args, sites: usize) -> (usize, usize) {
    let default = ((sites as f64 * 0.02).round() as usize).clamp(2, 20);
    let leaks = a.leak_sites.unwrap_or(default);
    let traps = a.trap_sites.unwrap_or(leaks);
    (leaks, traps)
}

fn build_model(a: &Args) -> anyhow::Result<Model> {
    let nsites = a.sites.unwrap_or(a.stacks / 10).clamp(1, a.stacks.max(1));
    let (leaks, traps) = planted_counts(a, nsites);
    if leaks + 3 * traps > nsites {
        bail!(
            "{leaks} leak sites + 3 x {traps} trap sites do not fit in {nsites} sites; \
             use more --stacks/--sites or fewer --leak-sites/--trap-sites"
        );
    }
    if let Some(n) = a.steady_leak.iter().find(|n| **n >= leaks) {
        bail!("--steady-leak {n}: only {leaks} leak sites are planted (0..{leaks})");
    }
    let packages = (nsites / 25).clamp(3, 60);
    let mut rng = Rng::new(a.seed, 1);
    // Which sites get which shape.
    let mut order: Vec<usize> = (0..nsites).collect();
    for i in (1..order.len()).rev() {
        let j = rng.int(0, i);
        order.swap(i, j);
    }
    let mut shapes = vec![Shape::Steady; nsites];
    for (n, &s) in order.iter().take(leaks + 3 * traps).enumerate() {
        shapes[s] = if n < leaks {
            Shape::Leak {
                growth: rng.uniform(0.5, 3.0),
            }
        } else {
            match (n - leaks) % 3 {
                0 => Shape::Plateau {
                    amp: rng.uniform(1.0, 4.0),
                    fill: rng.uniform(0.2, 0.45),
                },
                1 => Shape::Sawtooth {
                    amp: rng.uniform(1.0, 3.0),
                    period: rng.uniform(1.0 / 12.0, 1.0 / 5.0),
                },
                _ => Shape::WarmUp {
                    amp: rng.uniform(2.0, 5.0),
                    rise: rng.uniform(0.05, 0.2),
                    level: rng.uniform(0.1, 0.4),
                },
            }
        };
    }
    // Sizes are drawn as planted (the same seed gives the same stacks and levels); the
    // leaks asked to stay steady are quieted only after.
    let drawn_planted: Vec<bool> = shapes.iter().map(|s| *s != Shape::Steady).collect();
    for &n in &a.steady_leak {
        shapes[order[n]] = Shape::Steady;
    }
    let mut keys = HashSet::new();
    let mut sites = Vec::with_capacity(nsites);
    for (s, shape) in shapes.into_iter().enumerate() {
        let leaf = alloc_path(&mut rng);
        let mut f = user_frame(&mut rng, packages, s);
        let mut key = format!("{} {}:{}", f.function, f.file, f.line);
        while !keys.insert(key.clone()) {
            f.line += 1;
            key = format!("{} {}:{}", f.function, f.file, f.line);
        }
        sites.push(Site {
            key,
            frame: f,
            leaf,
            shape,
        });
    }
    let mut ids = HashSet::new();
    let mut stacks = Vec::with_capacity(a.stacks);
    for i in 0..a.stacks {
        let site = if i < nsites {
            i
        } else {
            // Skewed: low-numbered sites have more stacks.
            ((rng.unit().powf(1.5)) * nsites as f64) as usize % nsites
        };
        let st = &sites[site];
        let planted = drawn_planted[site];
        let frames = loop {
            let mut frames = st.leaf.clone();
            frames.push(st.frame.clone());
            let root = root_path(&mut rng, packages);
            let depth = rng.int(8, 20).max(frames.len() + root.len());
            while frames.len() + root.len() < depth {
                let n = rng.int(0, nsites * 2);
                frames.push(user_frame(&mut rng, packages, n));
            }
            frames.extend(root);
            if ids.insert(stack_id(&frames)) {
                break frames;
            }
        };
        // Planted stacks hold at least 100 objects so that rounding never hides a shape.
        let base = if planted {
            (rng.uniform(100f64.ln(), 20_000f64.ln())).exp()
        } else {
            (rng.uniform(0.0, 20_000f64.ln())).exp()
        };
        stacks.push(Stack {
            row: StackRow {
                stack_id: stack_id(&frames),
                origin: "go".into(),
                frames,
            },
            site,
            size: *rng.pick(SIZE_CLASSES),
            base,
            churn: base * rng.uniform(0.001, 0.1),
            scale: rng.uniform(0.7, 1.3),
        });
    }
    Ok(Model {
        sites,
        stacks,
        leak_scale: a.leak_scale,
    })
}

// ---------------------------------------------------------------------------------------
// Writing.

struct Timeline {
    t0_ns: i64,
    interval_ns: i64,
    /// Start profile index of each run, plus the end.
    run_bounds: Vec<usize>,
    run_ids: Vec<String>,
}

impl Timeline {
    fn new(a: &Args, t0_ns: i64) -> Timeline {
        let runs = a.runs.clamp(1, a.profiles.max(1));
        let run_bounds: Vec<usize> = (0..=runs).map(|r| r * a.profiles / runs).collect();
        let interval_ns = a.interval_secs as i64 * 1_000_000_000;
        let run_ids = (0..runs)
            .map(|r| {
                let start = t0_ns + run_bounds[r] as i64 * interval_ns;
                format!(
                    "{}-remote",
                    DateTime::<Utc>::from_timestamp_nanos(start).format("%Y%m%dT%H%M%SZ")
                )
            })
            .collect();
        Timeline {
            t0_ns,
            interval_ns,
            run_bounds,
            run_ids,
        }
    }

    /// (run index, position in run, points in run).
    fn run_of(&self, p: usize) -> (usize, usize, usize) {
        let r = self.run_bounds.partition_point(|&b| b <= p) - 1;
        (
            r,
            p - self.run_bounds[r],
            self.run_bounds[r + 1] - self.run_bounds[r],
        )
    }

    /// Profile time: the interval plus up to 50 ms of scrape jitter.
    fn time_ns(&self, seed: u64, p: usize) -> i64 {
        self.t0_ns
            + p as i64 * self.interval_ns
            + (mix(seed ^ p as u64 ^ 0x7131) % 50_000_000) as i64
    }
}

fn profile_id(kind: &str, time_ns: i64, source: &str) -> u64 {
    let text = format!("{TARGET}\0{kind}\0{time_ns}\0{source}");
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

fn sample_values(m: &Model, tl: &Timeline, seed: u64, i: usize, p: usize) -> SampleValues {
    let st = &m.stacks[i];
    let (_, pos, n) = tl.run_of(p);
    let shape = &m.sites[st.site].shape;
    let (amp, level, envelope) = shape.term(pos, n);
    let amp = if matches!(shape, Shape::Leak { .. }) {
        amp * m.leak_scale
    } else {
        amp
    };
    let amp = amp * st.scale * st.base;
    let inuse = (st.base + amp * level) * (1.0 + noise(seed, i, p));
    let t = pos as f64 * tl.interval_ns as f64 / 1e9;
    let alloc = 1.2 * (st.base + amp * envelope) + st.churn * t;
    let inuse_objects = (inuse.round() as i64).max(1);
    let alloc_objects = (alloc.round() as i64).max(inuse_objects);
    SampleValues {
        inuse_objects: Some(inuse_objects),
        inuse_bytes: Some(inuse_objects * st.size),
        alloc_objects: Some(alloc_objects),
        alloc_bytes: Some(alloc_objects * st.size),
        goroutines: None,
    }
}

struct Progress {
    done: AtomicUsize,
    total: usize,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    /// Without a terminal, a line per 10% once this much time has passed (short runs stay quiet).
    quiet_until_ms: u128,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = indicatif::ProgressBar::new(total as u64);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} profiles [{elapsed_precise}, eta {eta}] {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb
        });
        Progress {
            done: AtomicUsize::new(0),
            total,
            bar,
            started: Instant::now(),
            quiet_until_ms: 2000,
        }
    }

    fn inc(&self) {
        let before = self.done.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(1);
        } else if self.quiet_until_ms < self.started.elapsed().as_millis()
            && (before + 1) * 10 / self.total != before * 10 / self.total
        {
            eprintln!(
                "leakscope-synth: {}% ({}/{} profiles, {:.1} s)",
                (before + 1) * 100 / self.total,
                before + 1,
                self.total,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Writes profiles `range` through one segment writer; returns the files written.
fn write_range(
    a: &Args,
    m: &Model,
    tl: &Timeline,
    range: std::ops::Range<usize>,
    progress: &Progress,
) -> anyhow::Result<Vec<PathBuf>> {
    let policy = RotationPolicy {
        max_age_ns: a.rotate_secs.max(1) * 1_000_000_000,
        max_bytes: a.rotate_size.max(1),
    };
    let mut w = SegmentWriter::new(&a.out, policy);
    // The synthetic recorder's clock is the synthetic time: sets are named, dated and
    // rotated by it, as a recorder running then would have.
    let clock = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let c = clock.clone();
    w.set_clock(std::sync::Arc::new(move || {
        c.load(std::sync::atomic::Ordering::Relaxed)
    }));
    let mut files = Vec::new();
    let sample_types: Vec<String> = [
        "alloc_objects/count",
        "alloc_space/bytes",
        "inuse_objects/count",
        "inuse_space/bytes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let labels: Vec<String> = m
        .stacks
        .iter()
        .map(|s| format!("bytes={}", s.size))
        .collect();
    // Every profile has every stack, so a set's stacks are all added with its first profile
    // (the writer only starts a new set when this function calls `rotate`).
    let mut set_has_stacks = false;
    for p in range {
        let time_ns = tl.time_ns(a.seed, p);
        clock.store(time_ns, std::sync::atomic::Ordering::Relaxed);
        if w.should_rotate(time_ns) {
            files.extend(w.rotate()?);
            set_has_stacks = false;
        }
        if !set_has_stacks {
            for st in &m.stacks {
                w.add_stack(st.row.clone());
            }
            set_has_stacks = true;
        }
        let (r, _, _) = tl.run_of(p);
        let run_id = &tl.run_ids[r];
        let source = format!("synth/heap-{p:07}.pb.gz");
        let pid = profile_id("heap", time_ns, &source);
        w.add_profile(ProfileRow {
            profile_id: pid,
            time_ns,
            kind: "heap".into(),
            target: a.target.as_deref().unwrap_or(TARGET).into(),
            pid: None,
            run_id: run_id.clone(),
            period: 524_288,
            period_type: "space/bytes".into(),
            sample_types: sample_types.clone(),
            duration_ns: 0,
            scrape_ms: None,
            source,
            sample_count: m.stacks.len() as u32,
        });
        for (i, st) in m.stacks.iter().enumerate() {
            w.add_sample(SampleRow {
                profile_id: pid,
                time_ns,
                run_id: run_id.clone(),
                kind: "heap".into(),
                stack_id: st.row.stack_id,
                values: sample_values(m, tl, a.seed, i, p),
                labels: Some(labels[i].clone()),
            });
        }
        progress.inc();
    }
    files.extend(w.rotate()?);
    Ok(files)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

fn truth_path(a: &Args) -> PathBuf {
    a.truth.clone().unwrap_or_else(|| {
        let mut name = a
            .out
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "capture".into());
        name.push(".ground-truth.json");
        a.out.with_file_name(name)
    })
}

fn ground_truth(a: &Args, m: &Model, tl: &Timeline) -> serde_json::Value {
    let mut planted = Vec::new();
    let (mut leak_sites, mut leak_stacks, mut trap_sites, mut trap_stacks) =
        (vec![], vec![], vec![], vec![]);
    for (s, site) in m.sites.iter().enumerate() {
        if site.shape == Shape::Steady {
            continue;
        }
        let stacks: Vec<String> = m
            .stacks
            .iter()
            .filter(|st| st.site == s)
            .map(|st| format!("{:016x}", st.row.stack_id))
            .collect();
        let kind = if matches!(site.shape, Shape::Leak { .. }) {
            "leak"
        } else {
            "trap"
        };
        if kind == "leak" {
            leak_sites.push(site.key.clone());
            leak_stacks.extend(stacks.iter().cloned());
        } else {
            trap_sites.push(site.key.clone());
            trap_stacks.extend(stacks.iter().cloned());
        }
        planted.push(json!({
            "site": site.key,
            "kind": kind,
            "shape": site.shape.name(),
            "params": site.shape.params(),
            "stacks": stacks,
        }));
    }
    let mut truth = json!({
        "generator": "leakscope-synth",
        "version": env!("CARGO_PKG_VERSION"),
        "capture": a.out.display().to_string(),
        "seed": a.seed,
        "profiles": a.profiles,
        "stacks": m.stacks.len(),
        "sites": m.sites.len(),
        "rows": a.profiles * m.stacks.len(),
        "runs": tl.run_ids,
        "interval_secs": a.interval_secs,
        "start": a.start,
        "noise_sd": NOISE_SD,
        "keys": "sites as `leakscope rank --by site` keys (function file:line), stacks as `--by stack` keys (16 hex digits)",
        "leaks": { "sites": leak_sites, "stacks": leak_stacks },
        "traps": { "sites": trap_sites, "stacks": trap_stacks },
        "planted": planted,
    });
    // Only when given, so that the truth of every other capture is unchanged.
    if a.leak_scale != 1.0 {
        truth["leak_scale"] = json!(a.leak_scale);
    }
    truth
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if a.profiles == 0 || a.stacks == 0 {
        bail!("--profiles and --stacks must be at least 1");
    }
    if a.out.exists()
        && std::fs::read_dir(&a.out)
            .with_context(|| a.out.display().to_string())?
            .next()
            .is_some()
    {
        bail!(
            "{}: exists and is not empty; choose another --out",
            a.out.display()
        );
    }
    let t0 = DateTime::parse_from_rfc3339(&a.start)
        .with_context(|| format!("--start {}", a.start))?
        .with_timezone(&Utc);
    let t0_ns = t0.timestamp_nanos_opt().context("--start out of range")?;
    let started = Instant::now();
    let model = build_model(&a)?;
    let tl = Timeline::new(&a, t0_ns);
    let session = Session {
        mode: "import".into(),
        recorder_version: env!("CARGO_PKG_VERSION").into(),
        target: a.target.as_deref().unwrap_or(TARGET).into(),
        host: a.host.clone().unwrap_or_else(hostname),
        start_time: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        options: json!({
            "target": a.target.as_deref().unwrap_or(TARGET),
            "files": a.profiles,
            "synth": {
                "profiles": a.profiles, "stacks": a.stacks, "sites": model.sites.len(),
                "seed": a.seed, "interval_secs": a.interval_secs, "runs": tl.run_ids.len(),
                "start": a.start,
            },
        }),
    };
    let mut manifest = Manifest::open_or_create(&a.out, session)?;
    if !a.label.is_empty() {
        manifest.labels.extend(a.label.iter().cloned());
        manifest.write(&a.out)?;
    }
    let truth = truth_path(&a);
    std::fs::write(
        &truth,
        serde_json::to_string_pretty(&ground_truth(&a, &model, &tl))? + "\n",
    )
    .with_context(|| truth.display().to_string())?;

    let writers = a
        .writers
        .unwrap_or_else(rayon::current_num_threads)
        .clamp(1, a.profiles);
    let progress = Progress::new(a.profiles);
    let chunks: Vec<std::ops::Range<usize>> = (0..writers)
        .map(|k| k * a.profiles / writers..(k + 1) * a.profiles / writers)
        .collect();
    let files: Vec<PathBuf> = chunks
        .into_par_iter()
        .map(|range| write_range(&a, &model, &tl, range, &progress))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    progress.finish();
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let secs = started.elapsed().as_secs_f64();
    let rows = a.profiles * a.stacks;
    eprintln!(
        "leakscope-synth: wrote {} ({} profiles x {} stacks = {rows} sample rows, {} sites, {} runs) \
         in {secs:.1} s ({:.2} M rows/s, {writers} writers): {} files, {:.1} MiB; truth: {}",
        a.out.display(),
        a.profiles,
        a.stacks,
        model.sites.len(),
        tl.run_ids.len(),
        rows as f64 / secs / 1e6,
        files.len(),
        bytes as f64 / (1u64 << 20) as f64,
        truth.display()
    );
    Ok(())
}
