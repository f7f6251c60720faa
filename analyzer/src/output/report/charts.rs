//! Time-series charts as [`Scene`]s: full charts (axes, legend, restarts, gaps and failed
//! scrapes marked) and small sparklines with the fitted trend, all on one shared time axis.

use super::axis::{format_duration, format_time, value_ticks, TimeAxis, Unit};
use super::scene::{clip, text_width, Anchor, Color, Scene, Shape};

/// Text and axis gray.
pub const INK: Color = Color(0x33, 0x33, 0x33);
/// Secondary text.
pub const MUTED: Color = Color(0x6b, 0x6b, 0x6b);
/// Grid lines.
const GRID: Color = Color(0xe3, 0xe3, 0xe3);
/// Series colors, in order of use.
pub const PALETTE: [Color; 6] = [
    Color(0xd6, 0x27, 0x28), // red
    Color(0x1f, 0x77, 0xb4), // blue
    Color(0x2c, 0xa0, 0x2c), // green
    Color(0x94, 0x67, 0xbd), // purple
    Color(0xff, 0x7f, 0x0e), // orange
    Color(0x8c, 0x56, 0x4b), // brown
];
/// Color of fitted trend lines.
pub const FIT: Color = Color(0xe6, 0x55, 0x0d);

/// One plotted quantity.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Line color.
    pub color: Color,
    /// Points per run (a restart breaks the line): (time ns, value).
    pub runs: Vec<Vec<(i64, f64)>>,
    /// Dashed line (fitted trends).
    pub dashed: bool,
    /// Line width.
    pub width: f64,
}

/// Events drawn on every chart.
#[derive(Debug, Clone, Default)]
pub struct Markers {
    /// Restarts: time of the new run's first data and a description.
    pub restarts: Vec<(i64, String)>,
    /// Spans without data (scrape gaps): start, end, description.
    pub gaps: Vec<(i64, i64, String)>,
    /// Failed scrape attempts: time and description.
    pub failures: Vec<(i64, String)>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// Title (full charts) or accessible label (sparklines).
    pub title: String,
    /// Unit of every series.
    pub unit: Unit,
    /// The series, drawn in order.
    pub series: Vec<Series>,
    /// Restarts, gaps and failures.
    pub markers: &'a Markers,
    /// The report's time axis.
    pub axis: &'a TimeAxis,
}

/// The runs of a finding's or process metric's series as point lists.
pub fn runs_of(series: &[(String, Vec<i64>, Vec<f64>)]) -> Vec<Vec<(i64, f64)>> {
    series
        .iter()
        .map(|(_, t, y)| t.iter().copied().zip(y.iter().copied()).collect())
        .collect()
}

/// The fitted trend drawn over a series: per run, a line with the fit's slope
/// (`rate_per_hour`) through the median of `y - slope * hours` (Theil-Sen intercept).
pub fn fitted(series: &[(String, Vec<i64>, Vec<f64>)], rate_per_hour: f64) -> Vec<Vec<(i64, f64)>> {
    series
        .iter()
        .filter(|(_, t, y)| t.len() >= 2 && t.len() == y.len())
        .map(|(_, t, y)| {
            let t0 = t[0];
            let h = |ti: i64| crate::units::hours_between(t0, ti);
            let mut r: Vec<f64> = t
                .iter()
                .zip(y)
                .map(|(ti, yi)| yi - rate_per_hour * h(*ti))
                .collect();
            r.sort_by(f64::total_cmp);
            let mid = r.len() / 2;
            let a = if r.len() % 2 == 1 {
                r[mid]
            } else {
                (r[mid - 1] + r[mid]) / 2.0
            };
            let last = t[t.len() - 1];
            vec![(t0, a), (last, a + rate_per_hour * h(last))]
        })
        .collect()
}

/// Keeps at most about four points per pixel column (first, min, max, last), in order.
fn decimate(points: Vec<(f64, f64)>, width: f64) -> Vec<(f64, f64)> {
    if points.len() as f64 <= 2.0 * width {
        return points;
    }
    let mut out = Vec::new();
    let mut bucket: Vec<(f64, f64)> = Vec::new();
    let flush = |bucket: &mut Vec<(f64, f64)>, out: &mut Vec<(f64, f64)>| {
        if bucket.is_empty() {
            return;
        }
        let (mut lo, mut hi) = (0, 0);
        for (i, p) in bucket.iter().enumerate() {
            if p.1 < bucket[lo].1 {
                lo = i;
            }
            if p.1 > bucket[hi].1 {
                hi = i;
            }
        }
        let mut keep = vec![0, lo, hi, bucket.len() - 1];
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|i| bucket[i]));
        bucket.clear();
    };
    let mut col = f64::NAN;
    for p in points {
        if p.0.floor() != col {
            flush(&mut bucket, &mut out);
            col = p.0.floor();
        }
        bucket.push(p);
    }
    flush(&mut bucket, &mut out);
    out
}

fn value_range(series: &[Series]) -> (f64, f64) {
    let mut lo = 0.0f64;
    let mut hi = f64::MIN;
    for s in series {
        for p in s.runs.iter().flatten() {
            if p.1.is_finite() {
                lo = lo.min(p.1);
                hi = hi.max(p.1);
            }
        }
    }
    if hi == f64::MIN {
        hi = 0.0;
    }
    (lo, hi)
}

/// Plot rectangle.
#[derive(Debug, Clone, Copy)]
struct Plot {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn draw_markers(scene: &mut Scene, c: &Chart, p: Plot, labels: bool) {
    let px = |t: i64| p.x + c.axis.x(t) * p.w;
    for (a, b, dur) in c.axis.breaks() {
        scene.push_titled(
            Shape::Rect {
                x: p.x + a * p.w,
                y: p.y,
                w: (b - a) * p.w,
                h: p.h,
                fill: Color(0xee, 0xee, 0xee),
                opacity: 1.0,
            },
            format!("no data for {} (axis compressed)", format_duration(dur)),
        );
        if labels {
            scene.text(
                p.x + (a + b) / 2.0 * p.w,
                p.y + p.h - 8.0,
                "≈",
                12.0,
                Anchor::Middle,
                MUTED,
                false,
            );
        }
    }
    for (a, b, what) in &c.markers.gaps {
        let (x0, x1) = (px(*a), px(*b));
        scene.push_titled(
            Shape::Rect {
                x: x0,
                y: p.y,
                w: (x1 - x0).max(2.0),
                h: p.h,
                fill: Color(0xf2, 0xc9, 0x4c),
                opacity: 0.35,
            },
            what.clone(),
        );
    }
    for (t, what) in &c.markers.restarts {
        let x = px(*t);
        scene.push_titled(
            Shape::Line {
                points: vec![(x, p.y), (x, p.y + p.h)],
                color: Color(0x55, 0x55, 0x55),
                width: 1.0,
                dashed: true,
            },
            what.clone(),
        );
        if labels {
            scene.push_titled(
                Shape::Text {
                    x: x + 3.0,
                    y: p.y + 8.0,
                    text: "restart".into(),
                    size: 10.0,
                    anchor: Anchor::Start,
                    color: MUTED,
                    bold: false,
                },
                what.clone(),
            );
        }
    }
    for (t, what) in &c.markers.failures {
        scene.push_titled(
            Shape::Rect {
                x: px(*t) - 1.0,
                y: p.y + p.h - 7.0,
                w: 2.0,
                h: 7.0,
                fill: Color(0xc0, 0x1c, 0x1c),
                opacity: 1.0,
            },
            what.clone(),
        );
    }
}

fn draw_series(scene: &mut Scene, c: &Chart, p: Plot, lo: f64, hi: f64) {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    for s in &c.series {
        for run in &s.runs {
            let pts: Vec<(f64, f64)> = run
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(t, v)| (p.x + c.axis.x(*t) * p.w, p.y + p.h - (v - lo) / span * p.h))
                .collect();
            let pts = decimate(pts, p.w);
            if pts.len() == 1 {
                let (x, y) = pts[0];
                scene.rect(x - 1.5, y - 1.5, 3.0, 3.0, s.color, 1.0);
            }
            scene.line(pts, s.color, s.width, s.dashed);
        }
    }
}

/// A full chart: title, legend, value grid, time ticks (UTC), markers and series.
pub fn full(c: &Chart, width: f64, height: f64) -> Scene {
    let mut scene = Scene::new(width, height, c.title.clone());
    let p = Plot {
        x: 70.0,
        y: 46.0,
        w: width - 70.0 - 16.0,
        h: height - 46.0 - 26.0,
    };
    scene.text(
        4.0,
        12.0,
        clip(&c.title, ((width - 8.0) / (13.0 * 0.62)) as usize),
        13.0,
        Anchor::Start,
        INK,
        true,
    );
    // Legend.
    let mut lx = p.x;
    for s in &c.series {
        if s.label.is_empty() {
            continue;
        }
        let label = clip(&s.label, 48);
        let w = 18.0 + text_width(&label, 11.0);
        if lx + w > width - 8.0 {
            break;
        }
        scene.line(vec![(lx, 31.0), (lx + 14.0, 31.0)], s.color, 2.5, s.dashed);
        scene.text(lx + 18.0, 31.0, label, 11.0, Anchor::Start, INK, false);
        lx += w + 14.0;
    }
    let (lo, hi) = value_range(&c.series);
    let (lo, hi, yticks) = value_ticks(lo, hi, c.unit, ((p.h / 36.0) as usize).max(2));
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    for (v, label) in &yticks {
        let y = p.y + p.h - (v - lo) / span * p.h;
        scene.line(vec![(p.x, y), (p.x + p.w, y)], GRID, 1.0, false);
        scene.text(p.x - 6.0, y, label.clone(), 11.0, Anchor::End, MUTED, false);
    }
    draw_markers(&mut scene, c, p, true);
    for (x, label) in c.axis.ticks(p.w, 90.0) {
        let x = p.x + x * p.w;
        scene.line(
            vec![(x, p.y + p.h), (x, p.y + p.h + 4.0)],
            MUTED,
            1.0,
            false,
        );
        // Keep edge labels inside the picture.
        let half = text_width(&label, 11.0) / 2.0;
        let (lx, anchor) = if x + half > width - 2.0 {
            (width - 2.0, Anchor::End)
        } else {
            (x, Anchor::Middle)
        };
        scene.text(lx, p.y + p.h + 13.0, label, 11.0, anchor, MUTED, false);
    }
    scene.line(
        vec![(p.x, p.y + p.h), (p.x + p.w, p.y + p.h)],
        MUTED,
        1.0,
        false,
    );
    draw_series(&mut scene, c, p, lo, hi);
    scene
}

/// A sparkline: the series and its fitted trend, restarts and breaks, and the peak value.
pub fn spark(c: &Chart, width: f64, height: f64) -> Scene {
    let mut scene = Scene::new(width, height, c.title.clone());
    let p = Plot {
        x: 1.0,
        y: 14.0,
        w: width - 2.0,
        h: height - 17.0,
    };
    let (lo, hi) = value_range(&c.series);
    let hi = if hi > lo { hi } else { lo + 1.0 };
    scene.rect(p.x, p.y, p.w, p.h, Color(0xfa, 0xfa, 0xfa), 1.0);
    draw_markers(&mut scene, c, p, false);
    scene.line(
        vec![(p.x, p.y + p.h), (p.x + p.w, p.y + p.h)],
        GRID,
        1.0,
        false,
    );
    if let Some(first) = c.series.first() {
        let peak = first
            .runs
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(f64::MIN, f64::max);
        if peak > f64::MIN {
            scene.text(
                1.0,
                6.0,
                format!("peak {}", c.unit.format(peak)),
                10.0,
                Anchor::Start,
                MUTED,
                false,
            );
        }
    }
    let (t0, t1) = c.axis.span();
    scene.text(
        width - 1.0,
        6.0,
        format_duration(t1.saturating_sub(t0)),
        10.0,
        Anchor::End,
        MUTED,
        false,
    );
    draw_series(&mut scene, c, p, lo, hi * 1.04);
    scene
}

/// A restart marker's description.
pub fn restart_label(run: &str, t: i64) -> String {
    format!("restart: run {run} starts at {}", format_time(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitted_line_follows_the_slope() {
        let h = 3_600_000_000_000i64;
        let s = vec![(
            "r".to_string(),
            vec![0, h, 2 * h, 3 * h],
            vec![10.0, 20.0, 30.0, 40.0],
        )];
        let f = fitted(&s, 10.0);
        assert_eq!(f, vec![vec![(0, 10.0), (3 * h, 40.0)]]);
    }

    #[test]
    fn decimation_keeps_extremes() {
        let pts: Vec<(f64, f64)> = (0..10_000)
            .map(|i| (i as f64 / 100.0, if i == 5_005 { 99.0 } else { 1.0 }))
            .collect();
        let d = decimate(pts, 100.0);
        assert!(d.len() <= 400, "{}", d.len());
        assert!(d.iter().any(|p| p.1 == 99.0));
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn full_chart_has_ticks_legend_and_markers() {
        let axis = TimeAxis::new(&[(0, 120 * super::super::axis::SEC)]);
        let markers = Markers {
            restarts: vec![(60 * super::super::axis::SEC, "restart <x>".into())],
            ..Default::default()
        };
        let c = Chart {
            title: "Memory".into(),
            unit: Unit::Bytes,
            series: vec![Series {
                label: "RSS".into(),
                color: PALETTE[0],
                runs: vec![vec![(0, 1.0e6), (60 * super::super::axis::SEC, 2.0e6)]],
                dashed: false,
                width: 2.0,
            }],
            markers: &markers,
            axis: &axis,
        };
        let svg = full(&c, 800.0, 300.0).to_svg("chart");
        assert!(svg.contains(">RSS</text>"), "{svg}");
        assert!(svg.contains("MiB</text>"), "{svg}");
        assert!(svg.contains("restart &lt;x&gt;"), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
        let spark = spark(&c, 200.0, 50.0).to_svg("spark");
        assert!(spark.contains("peak 1.9 MiB"), "{spark}");
    }
}
