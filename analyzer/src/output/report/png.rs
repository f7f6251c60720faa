//! Rasterizes a [`Scene`] to PNG with plotters' bitmap backend, using the bundled DejaVu Sans
//! font (registered with plotters' `ab_glyph` support), so no system font is needed.

use std::path::Path;
use std::sync::OnceLock;

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{Color as _, FontStyle};

use super::scene::{Anchor, Color, Scene, Shape};
use crate::error::{AnalyzeError, Result};

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
/// Family name the bundled font is registered under.
const FAMILY: &str = "leakscope-sans";

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| plotters::style::register_font(FAMILY, style, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(AnalyzeError::Report(
            "the bundled DejaVu Sans font could not be loaded".into(),
        ))
    }
}

fn rgb(c: Color) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// Writes `scene` as a PNG of `scale` times its size (e.g. 1.5 for sharper thumbnails).
pub fn write_png(scene: &Scene, path: &Path, scale: f64) -> Result<()> {
    register_font()?;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        AnalyzeError::Report(format!("{}: {what}: {e}", path.display()))
    };
    let w = (scene.width * scale).round().max(1.0) as u32;
    let h = (scene.height * scale).round().max(1.0) as u32;
    let p = |x: f64, y: f64| ((x * scale).round() as i32, (y * scale).round() as i32);
    {
        let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail("drawing", &e))?;
        for item in &scene.items {
            let r = match &item.shape {
                Shape::Line {
                    points,
                    color,
                    width,
                    dashed,
                } => {
                    let style = ShapeStyle {
                        color: rgb(*color).to_rgba(),
                        filled: false,
                        stroke_width: (width * scale).round().max(1.0) as u32,
                    };
                    let pts: Vec<(i32, i32)> = points.iter().map(|(x, y)| p(*x, *y)).collect();
                    if *dashed {
                        let (dash, gap) = ((5.0 * scale) as i32, (4.0 * scale) as i32);
                        root.draw(&DashedPathElement::new(pts, dash, gap, style))
                    } else {
                        root.draw(&PathElement::new(pts, style))
                    }
                }
                Shape::Rect {
                    x,
                    y,
                    w,
                    h,
                    fill,
                    opacity,
                } => {
                    let style = rgb(*fill).mix(opacity.clamp(0.0, 1.0)).filled();
                    root.draw(&Rectangle::new([p(*x, *y), p(x + w, y + h)], style))
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
                    let h = match anchor {
                        Anchor::Start => HPos::Left,
                        Anchor::Middle => HPos::Center,
                        Anchor::End => HPos::Right,
                    };
                    let style = FontDesc::new(
                        FontFamily::Name(FAMILY),
                        size * scale,
                        if *bold {
                            FontStyle::Bold
                        } else {
                            FontStyle::Normal
                        },
                    )
                    .color(&rgb(*color))
                    .pos(Pos::new(h, VPos::Center));
                    // Captured names may hold controls or bidi overrides: drawn escaped.
                    let label = crate::output::escape_control(text);
                    root.draw(&Text::new(label.as_ref(), p(*x, *y), style))
                }
            };
            r.map_err(|e| fail("drawing", &e))?;
        }
        root.present().map_err(|e| fail("writing", &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_with_the_bundled_font_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Scene::new(120.0, 40.0, "t");
        s.rect(0.0, 0.0, 60.0, 40.0, Color(200, 30, 30), 0.5);
        s.line(vec![(0.0, 0.0), (120.0, 40.0)], Color(0, 0, 255), 2.0, true);
        s.text(
            4.0,
            20.0,
            "leak ≈ 1 MiB/h",
            12.0,
            Anchor::Start,
            Color(0, 0, 0),
            true,
        );
        let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
        write_png(&s, &a, 2.0).unwrap();
        write_png(&s, &b, 2.0).unwrap();
        let bytes = std::fs::read(&a).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        assert_eq!(bytes, std::fs::read(&b).unwrap());
        // An unwritable path is an error naming the file, not a panic.
        let bad = dir.path().join("missing/dir/c.png");
        let e = write_png(&s, &bad, 1.0).unwrap_err().to_string();
        assert!(e.contains("c.png"), "{e}");
    }
}
