//! Backend-neutral drawing: charts and flame graphs are laid out once as a [`Scene`] of
//! polylines, rectangles and text, then written as inline SVG (HTML report) or rasterized
//! with plotters (PNG). Coordinates are CSS pixels, origin top left.

use std::fmt::Write as _;

use crate::output::escape_html as escape;

/// An opaque RGB color.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(pub u8, pub u8, pub u8);

impl Color {
    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Horizontal anchor of a text item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// `x` is the left edge.
    Start,
    /// `x` is the center.
    Middle,
    /// `x` is the right edge.
    End,
}

/// One drawable shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// An open polyline.
    Line {
        /// Points in order.
        points: Vec<(f64, f64)>,
        /// Stroke color.
        color: Color,
        /// Stroke width.
        width: f64,
        /// Dashed stroke.
        dashed: bool,
    },
    /// A filled rectangle.
    Rect {
        /// Left.
        x: f64,
        /// Top.
        y: f64,
        /// Width.
        w: f64,
        /// Height.
        h: f64,
        /// Fill color.
        fill: Color,
        /// Fill opacity, 0..1.
        opacity: f64,
    },
    /// One line of text, vertically centered on `y`.
    Text {
        /// Anchor x.
        x: f64,
        /// Vertical center.
        y: f64,
        /// The text (plain; escaped on output).
        text: String,
        /// Font size in pixels.
        size: f64,
        /// Horizontal anchor.
        anchor: Anchor,
        /// Text color.
        color: Color,
        /// Bold weight.
        bold: bool,
    },
}

/// A shape with an optional tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The shape.
    pub shape: Shape,
    /// Tooltip text (SVG `<title>`; not drawn in PNGs).
    pub title: Option<String>,
}

/// A picture: size, accessible label and shapes in painting order.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Width in pixels.
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
    /// Accessible description (`aria-label`).
    pub label: String,
    /// Shapes, back to front.
    pub items: Vec<Item>,
}

/// Average advance of a DejaVu Sans / system sans-serif glyph, in font sizes.
pub const CHAR_WIDTH: f64 = 0.6;

/// Approximate rendered width of `text` at `size`.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * CHAR_WIDTH
}

/// `text` cut to at most `max` characters, with `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// A number for SVG coordinates: one decimal, trailing `.0` dropped.
fn num(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

impl Scene {
    /// An empty scene.
    pub fn new(width: f64, height: f64, label: impl Into<String>) -> Scene {
        Scene {
            width,
            height,
            label: label.into(),
            items: Vec::new(),
        }
    }

    /// Adds a shape without tooltip.
    pub fn push(&mut self, shape: Shape) {
        self.items.push(Item { shape, title: None });
    }

    /// Adds a shape with a tooltip.
    pub fn push_titled(&mut self, shape: Shape, title: impl Into<String>) {
        self.items.push(Item {
            shape,
            title: Some(title.into()),
        });
    }

    /// Adds a solid or dashed polyline.
    pub fn line(&mut self, points: Vec<(f64, f64)>, color: Color, width: f64, dashed: bool) {
        if points.len() >= 2 {
            self.push(Shape::Line {
                points,
                color,
                width,
                dashed,
            });
        }
    }

    /// Adds a filled rectangle.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Color, opacity: f64) {
        self.push(Shape::Rect {
            x,
            y,
            w,
            h,
            fill,
            opacity,
        });
    }

    /// Adds a text item.
    #[allow(clippy::too_many_arguments)]
    pub fn text(
        &mut self,
        x: f64,
        y: f64,
        text: impl Into<String>,
        size: f64,
        anchor: Anchor,
        color: Color,
        bold: bool,
    ) {
        self.push(Shape::Text {
            x,
            y,
            text: text.into(),
            size,
            anchor,
            color,
            bold,
        });
    }

    /// Inline SVG (no XML prolog, no namespace URL: valid inside HTML), escaped.
    pub fn to_svg(&self, class: &str) -> String {
        let mut out = String::with_capacity(256 + self.items.len() * 96);
        let _ = write!(
            out,
            "<svg class=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{}\">",
            escape(class),
            num(self.width),
            num(self.height),
            num(self.width),
            num(self.height),
            escape(&self.label)
        );
        for item in &self.items {
            let title = item
                .title
                .as_ref()
                .map(|t| format!("<title>{}</title>", escape(t)));
            match &item.shape {
                Shape::Line {
                    points,
                    color,
                    width,
                    dashed,
                } => {
                    out.push_str("<polyline points=\"");
                    for (i, (x, y)) in points.iter().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        let _ = write!(out, "{},{}", num(*x), num(*y));
                    }
                    let _ = write!(
                        out,
                        "\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\"{}",
                        color.hex(),
                        num(*width),
                        if *dashed {
                            " stroke-dasharray=\"5 4\""
                        } else {
                            ""
                        }
                    );
                    close(&mut out, "polyline", title);
                }
                Shape::Rect {
                    x,
                    y,
                    w,
                    h,
                    fill,
                    opacity,
                } => {
                    let _ = write!(
                        out,
                        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"",
                        num(*x),
                        num(*y),
                        num(w.max(0.0)),
                        num(h.max(0.0)),
                        fill.hex()
                    );
                    if *opacity < 1.0 {
                        let _ = write!(out, " fill-opacity=\"{:.2}\"", opacity.clamp(0.0, 1.0));
                    }
                    close(&mut out, "rect", title);
                }
                Shape::Text {
                    x,
                    y,
                    text,
                    size,
                    anchor,
                    color,
                    bold,
                } => {
                    let anchor = match anchor {
                        Anchor::Start => "",
                        Anchor::Middle => " text-anchor=\"middle\"",
                        Anchor::End => " text-anchor=\"end\"",
                    };
                    let _ = write!(
                        out,
                        "<text x=\"{}\" y=\"{}\" font-size=\"{}\" fill=\"{}\"{anchor}{} dominant-baseline=\"central\">{}{}</text>",
                        num(*x),
                        num(*y),
                        num(*size),
                        color.hex(),
                        if *bold { " font-weight=\"bold\"" } else { "" },
                        title.unwrap_or_default(),
                        escape(text)
                    );
                }
            }
        }
        out.push_str("</svg>");
        out
    }
}

impl Scene {
    /// Scenes one above the other in one picture; None when `parts` is empty.
    pub fn stacked(parts: &[Scene], label: &str) -> Option<Scene> {
        if parts.is_empty() {
            return None;
        }
        let width = parts.iter().map(|p| p.width).fold(0.0, f64::max);
        let mut out = Scene::new(width, 0.0, label);
        for p in parts {
            let dy = out.height;
            for item in &p.items {
                let mut item = item.clone();
                match &mut item.shape {
                    Shape::Line { points, .. } => {
                        for pt in points.iter_mut() {
                            pt.1 += dy;
                        }
                    }
                    Shape::Rect { y, .. } | Shape::Text { y, .. } => *y += dy,
                }
                out.items.push(item);
            }
            out.height += p.height;
        }
        Some(out)
    }
}

fn close(out: &mut String, tag: &str, title: Option<String>) {
    match title {
        Some(t) => {
            let _ = write!(out, ">{t}</{tag}>");
        }
        None => out.push_str("/>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_escapes_text_titles_and_label() {
        let mut s = Scene::new(100.0, 50.0, "a<b");
        s.push_titled(
            Shape::Rect {
                x: 0.0,
                y: 0.0,
                w: 10.0,
                h: 10.0,
                fill: Color(1, 2, 3),
                opacity: 1.0,
            },
            "<script>alert(1)</script>",
        );
        s.text(
            1.0,
            2.0,
            "\"quoted\" & <tag>",
            12.0,
            Anchor::Start,
            Color(0, 0, 0),
            false,
        );
        let svg = s.to_svg("c\"x");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(
            svg.contains("&quot;quoted&quot; &amp; &lt;tag&gt;"),
            "{svg}"
        );
        assert!(svg.contains("aria-label=\"a&lt;b\""), "{svg}");
        assert!(svg.contains("class=\"c&quot;x\""), "{svg}");
        assert!(svg.contains("fill=\"#010203\""), "{svg}");
    }

    #[test]
    fn numbers_are_short_and_stable() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.24), "1.2");
        assert_eq!(num(-0.01), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
