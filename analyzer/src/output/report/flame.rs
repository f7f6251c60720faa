//! Flame graph of growth between two profiles, drawn as a [`Scene`] (inline SVG or PNG).
//!
//! Each stack's value is its difference between the later and the earlier profile; only
//! growth is drawn (root at the bottom, callers below callees, siblings in name order, width
//! proportional to growth). Shrinking stacks are counted and reported next to the graph.

use std::collections::BTreeMap;

use super::axis::Unit;
use super::scene::{clip, Anchor, Color, Scene, Shape, CHAR_WIDTH};
use crate::model::site::{is_go_std, FrameRef};

/// Deepest stack level drawn.
pub const MAX_DEPTH: usize = 200;
/// Height of one frame row.
const ROW: f64 = 17.0;
/// Narrowest frame drawn, in pixels (narrower growth stays in its parent's width).
const MIN_WIDTH: f64 = 1.5;
/// Font size of frame labels.
const FONT: f64 = 11.0;

#[derive(Debug, Clone, Default)]
struct Node {
    name: String,
    value: f64,
    children: BTreeMap<String, usize>,
}

/// Growth aggregated into a call tree (root first).
#[derive(Debug, Clone)]
pub struct FlameTree {
    nodes: Vec<Node>,
    /// Total growth of the growing stacks.
    pub growth: f64,
    /// Total decrease of the shrinking stacks (positive number).
    pub shrink: f64,
    /// Stacks that grew.
    pub growing_stacks: usize,
    /// Stacks that shrank.
    pub shrinking_stacks: usize,
}

impl FlameTree {
    /// Builds the tree from (stack leaf first, change) pairs; frames are merged by function.
    pub fn build<'a>(stacks: impl IntoIterator<Item = (&'a [FrameRef], f64)>) -> FlameTree {
        let mut t = FlameTree {
            nodes: vec![Node {
                name: "all".into(),
                ..Default::default()
            }],
            growth: 0.0,
            shrink: 0.0,
            growing_stacks: 0,
            shrinking_stacks: 0,
        };
        for (frames, delta) in stacks {
            if !delta.is_finite() || delta == 0.0 {
                continue;
            }
            if delta < 0.0 {
                t.shrink -= delta;
                t.shrinking_stacks += 1;
                continue;
            }
            t.growth += delta;
            t.growing_stacks += 1;
            t.nodes[0].value += delta;
            let mut at = 0;
            for f in frames.iter().rev().take(MAX_DEPTH) {
                let name = if f.function.is_empty() {
                    "??"
                } else {
                    f.function.as_str()
                };
                let next = match t.nodes[at].children.get(name) {
                    Some(&i) => i,
                    None => {
                        t.nodes.push(Node {
                            name: name.to_string(),
                            ..Default::default()
                        });
                        let i = t.nodes.len() - 1;
                        t.nodes[at].children.insert(name.to_string(), i);
                        i
                    }
                };
                t.nodes[next].value += delta;
                at = next;
            }
        }
        t
    }

    /// True when nothing grew.
    pub fn is_empty(&self) -> bool {
        self.growth <= 0.0
    }

    fn depth_drawn(&self, width: f64) -> usize {
        let mut max = 0;
        let mut todo = vec![(0usize, 0usize)];
        while let Some((i, d)) = todo.pop() {
            if self.nodes[i].value / self.growth * width < MIN_WIDTH {
                continue;
            }
            max = max.max(d);
            todo.extend(self.nodes[i].children.values().map(|&c| (c, d + 1)));
        }
        max
    }

    /// The flame graph, `width` pixels wide; `caption` is drawn above it.
    pub fn scene(&self, width: f64, unit: Unit, caption: &str) -> Scene {
        let top = 24.0;
        let depth = if self.is_empty() {
            0
        } else {
            self.depth_drawn(width)
        };
        let height = top + (depth + 1) as f64 * ROW + 4.0;
        let mut scene = Scene::new(width, height, caption.to_string());
        scene.text(
            2.0,
            10.0,
            clip(caption, (width / 7.0) as usize),
            12.0,
            Anchor::Start,
            Color(0x33, 0x33, 0x33),
            false,
        );
        if self.is_empty() {
            scene.text(
                2.0,
                top + 8.0,
                "no stack grew between these two profiles",
                11.0,
                Anchor::Start,
                Color(0x6b, 0x6b, 0x6b),
                false,
            );
            return scene;
        }
        let scale = width / self.growth;
        // (node, x, depth), children laid out left to right in name order.
        let mut todo = vec![(0usize, 0.0f64, 0usize)];
        while let Some((i, x, d)) = todo.pop() {
            let n = &self.nodes[i];
            let w = n.value * scale;
            if w < MIN_WIDTH {
                continue;
            }
            let y = height - 4.0 - (d + 1) as f64 * ROW;
            let title = format!(
                "{}\n+{} ({:.1}% of the growth)",
                clip(&n.name, 2000),
                unit.format(n.value),
                100.0 * n.value / self.growth
            );
            scene.push_titled(
                Shape::Rect {
                    x,
                    y,
                    w: (w - 0.5).max(0.5),
                    h: ROW - 1.0,
                    fill: color_of(&n.name, i == 0),
                    opacity: 1.0,
                },
                title,
            );
            let fits = ((w - 6.0) / (FONT * CHAR_WIDTH)).floor();
            if fits >= 3.0 {
                let label = if i == 0 {
                    format!("all: +{}", unit.format(n.value))
                } else {
                    n.name.clone()
                };
                scene.text(
                    x + 3.0,
                    y + (ROW - 1.0) / 2.0,
                    clip(&label, fits as usize),
                    FONT,
                    Anchor::Start,
                    Color(0x1a, 0x1a, 0x1a),
                    false,
                );
            }
            let mut cx = x;
            let mut kids = Vec::new();
            for &c in n.children.values() {
                kids.push((c, cx, d + 1));
                cx += self.nodes[c].value * scale;
            }
            // Reverse so the first child is drawn (and emitted) first.
            todo.extend(kids.into_iter().rev());
        }
        scene
    }
}

/// FNV-1a, for stable colors.
fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Warm colors for program frames, pale blue-grays for the runtime and standard library.
fn color_of(name: &str, root: bool) -> Color {
    if root {
        return Color(0xd0, 0xd0, 0xd0);
    }
    let h = hash(name);
    let v = |k: u32| ((h >> (k * 8)) & 0xff) as f64 / 255.0;
    if is_go_std(name) || name == "??" {
        let g = 200.0 + 25.0 * v(0);
        Color((g - 8.0) as u8, g as u8, (g + 20.0).min(255.0) as u8)
    } else {
        Color(
            (205.0 + 50.0 * v(0)) as u8,
            (90.0 + 130.0 * v(1)) as u8,
            (40.0 + 40.0 * v(2)) as u8,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(names: &[&str]) -> Vec<FrameRef> {
        names
            .iter()
            .map(|n| FrameRef {
                function: n.to_string(),
                file: String::new(),
                line: 0,
            })
            .collect()
    }

    #[test]
    fn tree_merges_callers_and_counts_shrink() {
        let a = st(&["runtime.mallocgc", "main.leak", "main.main"]);
        let b = st(&["runtime.mallocgc", "main.other", "main.main"]);
        let c = st(&["main.gone", "main.main"]);
        let t = FlameTree::build([
            (a.as_slice(), 300.0),
            (b.as_slice(), 100.0),
            (c.as_slice(), -50.0),
        ]);
        assert_eq!(t.growth, 400.0);
        assert_eq!(t.shrink, 50.0);
        assert_eq!((t.growing_stacks, t.shrinking_stacks), (2, 1));
        // all -> main.main -> {main.leak, main.other} -> runtime.mallocgc (x2)
        assert_eq!(t.nodes.len(), 6);
        let svg = t.scene(400.0, Unit::Bytes, "heap").to_svg("flame");
        assert!(svg.contains(">main.leak</text>"), "{svg}");
        assert!(svg.contains("75.0% of the growth"), "{svg}");
        let leak = svg.find(">main.leak<").unwrap();
        let other = svg.find(">main.other<").unwrap();
        assert!(leak < other, "siblings in name order");
    }

    #[test]
    fn long_hostile_names_are_clipped_and_escaped() {
        let long = format!("<script>alert(\"x\")</script>{}", "A".repeat(5000));
        let a = st(&[long.as_str(), "main.main"]);
        let t = FlameTree::build([(a.as_slice(), 10.0)]);
        let svg = t.scene(300.0, Unit::Count, "goroutines").to_svg("flame");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.len() < 8000, "{}", svg.len());
    }

    #[test]
    fn nothing_grew() {
        let a = st(&["main.f"]);
        let t = FlameTree::build([(a.as_slice(), -1.0)]);
        assert!(t.is_empty());
        let svg = t.scene(300.0, Unit::Count, "g").to_svg("flame");
        assert!(svg.contains("no stack grew"));
    }
}
