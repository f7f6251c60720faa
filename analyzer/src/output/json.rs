//! The ranking as JSON (`rank --format json`): the typed ranking plus the words people
//! read (the one-paragraph verdict), in the layout docs/cli.md documents, versioned by
//! [`crate::rank::RANKING_SCHEMA_VERSION`].
//!
//! The document is exactly what `serde_json::to_writer_pretty` writes for the ranking
//! (its fields flattened) followed by a `verdict` field, but its findings, nearly all of its bytes, are rendered in
//! parallel. A ranking of 10,000 stacks is 44 MB of JSON (each finding twice: in the
//! combined list and in its section); rendered on one thread after the fits, that took
//! 102 ms of a 165 ms tail while the other core sat idle (perf, 100M rows by stack).
//! Each finding is rendered by serde_json at the depth where it lands
//! ([`NestedFormatter`]), and the few levels around them (the document, the sections,
//! the arrays) are framed here the way serde_json's pretty printer frames them. A unit
//! test holds the two byte for byte.

use std::io::{self, Write};

use rayon::prelude::*;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::ser::{Formatter, PrettyFormatter};

use crate::model::hints::Hints;
use crate::model::reason::Reason;

use crate::rank::{Finding, Ranking, Section};

/// Findings per rendering task: a few hundred KB of JSON each.
const FINDINGS_PER_TASK: usize = 64;

/// Writes `r` as pretty-printed JSON to `out` (no trailing newline). serde_json's errors
/// (these types raise none of their own) come as I/O errors.
pub fn write_ranking(out: &mut impl Write, r: &Ranking) -> io::Result<()> {
    // Every field is named, so that a field added to the ranking or a section fails to
    // compile here until it is written too (the derive on `Ranking` writes it in
    // [`RankingDocument`], which the tests compare against).
    let Ranking {
        schema_version,
        captures,
        skipped,
        by,
        findings,
        sections,
        process,
        stacks: _,
        listing: _,
    } = r;
    let (verdict, (findings, section_findings)) = rayon::join(
        || crate::output::render::verdict(r),
        || {
            rayon::join(
                || array_items(findings, 1),
                || {
                    sections
                        .par_iter()
                        .map(|s| array_items(&s.findings, 3))
                        .collect::<io::Result<Vec<_>>>()
                },
            )
        },
    );
    let (findings, section_findings) = (findings?, section_findings?);
    let mut doc = Object::begin(out, 0)?;
    doc.field("schema_version", schema_version)?;
    doc.field("captures", captures)?;
    doc.field("skipped", skipped)?;
    doc.field("by", by)?;
    doc.key("findings")?;
    write_array(doc.out, &findings, 1)?;
    doc.key("sections")?;
    doc.out.write_all(b"[")?;
    for (i, (s, items)) in sections.iter().zip(&section_findings).enumerate() {
        item_start(doc.out, i == 0, 2)?;
        write_section(doc.out, s, items, 2)?;
    }
    array_end(doc.out, !sections.is_empty(), 1)?;
    doc.field("process", process)?;
    doc.field("verdict", &verdict)?;
    doc.end()?;
    Ok(())
}

/// A section as a JSON object whose braces sit `level` deep, its findings pre-rendered
/// ([`array_items`] at `level + 1`).
fn write_section<W: Write + ?Sized>(
    out: &mut W,
    s: &Section,
    findings: &[Vec<u8>],
    level: usize,
) -> io::Result<()> {
    let Section {
        metric,
        title,
        profiles,
        runs,
        longest_run,
        repeats,
        hours,
        rows,
        findings: _,
        totals: _,
    } = s;
    let mut o = Object::begin(out, level)?;
    o.field("metric", metric)?;
    o.field("title", title)?;
    o.field("profiles", profiles)?;
    o.field("runs", runs)?;
    o.field("longest_run", longest_run)?;
    o.field("repeats", repeats)?;
    o.field("hours", hours)?;
    o.field("rows", rows)?;
    o.key("findings")?;
    write_array(o.out, findings, level + 1)?;
    o.end()?;
    Ok(())
}

/// The items of an array of findings whose brackets sit `level` deep, rendered in
/// parallel: pieces of consecutive items, each item with the separator and indentation
/// before it, to be written in order between the brackets ([`write_array`]).
fn array_items(findings: &[Finding], level: usize) -> io::Result<Vec<Vec<u8>>> {
    findings
        .par_chunks(FINDINGS_PER_TASK)
        .enumerate()
        .map(|(task, chunk)| {
            // About 2.2 KB per finding by stack (44 MB for 20,000).
            let mut buf = Vec::with_capacity(chunk.len() * 2560);
            for (i, f) in chunk.iter().enumerate() {
                item_start(&mut buf, task == 0 && i == 0, level + 1)?;
                value_at(&mut buf, f, level + 1)?;
            }
            Ok(buf)
        })
        .collect()
}

/// Writes an array whose brackets sit `level` deep from its pre-rendered items.
fn write_array<W: Write + ?Sized>(out: &mut W, items: &[Vec<u8>], level: usize) -> io::Result<()> {
    out.write_all(b"[")?;
    for piece in items {
        out.write_all(piece)?;
    }
    array_end(out, items.iter().any(|p| !p.is_empty()), level)
}

/// What serde_json's pretty printer writes before an array item `level` deep.
fn item_start<W: Write + ?Sized>(out: &mut W, first: bool, level: usize) -> io::Result<()> {
    out.write_all(if first { b"\n" } else { b",\n" })?;
    indent(out, level)
}

/// What serde_json's pretty printer writes to close an array whose brackets sit `level`
/// deep: `]` right after `[` when it had no items.
fn array_end<W: Write + ?Sized>(out: &mut W, had_items: bool, level: usize) -> io::Result<()> {
    if had_items {
        out.write_all(b"\n")?;
        indent(out, level)?;
    }
    out.write_all(b"]")
}

/// A JSON object whose braces sit `level` deep, written field by field as serde_json's
/// pretty printer writes a struct.
struct Object<'w, W: Write + ?Sized> {
    out: &'w mut W,
    level: usize,
    first: bool,
}

impl<'w, W: Write + ?Sized> Object<'w, W> {
    /// Opens the object.
    fn begin(out: &'w mut W, level: usize) -> io::Result<Self> {
        out.write_all(b"{")?;
        Ok(Object {
            out,
            level,
            first: true,
        })
    }

    /// Starts a field: the separator, the indentation, the key and `": "`.
    fn key(&mut self, key: &str) -> io::Result<()> {
        // A field starts its line as an array item does.
        item_start(self.out, self.first, self.level + 1)?;
        serde_json::to_writer(&mut *self.out, key)?;
        self.out.write_all(b": ")?;
        self.first = false;
        Ok(())
    }

    /// A whole field, its value rendered by serde_json at the field's depth.
    fn field(&mut self, key: &str, value: &(impl Serialize + ?Sized)) -> io::Result<()> {
        self.key(key)?;
        value_at(&mut *self.out, value, self.level + 1)
    }

    /// Closes the object: `}` right after `{` when it had no fields.
    fn end(self) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b"\n")?;
            indent(self.out, self.level)?;
        }
        self.out.write_all(b"}")
    }
}

/// Writes `value` pretty-printed as it appears `level` deep in a pretty document (its
/// first line where the cursor is, the others indented `level` more steps).
fn value_at<W: Write + ?Sized>(
    out: &mut W,
    value: &(impl Serialize + ?Sized),
    level: usize,
) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, NestedFormatter::new(level));
    Ok(value.serialize(&mut ser)?)
}

/// One step of serde_json's pretty indentation (its default).
const STEP: &[u8] = b"  ";

/// Writes the indentation of `level` steps.
fn indent<W: Write + ?Sized>(out: &mut W, level: usize) -> io::Result<()> {
    const SPACES: &[u8] = b"                                ";
    let mut left = level * STEP.len();
    while left > 0 {
        let n = left.min(SPACES.len());
        out.write_all(&SPACES[..n])?;
        left -= n;
    }
    Ok(())
}

/// serde_json's [`PrettyFormatter`] for a value `level` deep: every line it starts is
/// indented `level` more steps. Only the four calls that start a line go through
/// [`Indented`]; values and strings (never a raw newline in JSON) are written as they are.
struct NestedFormatter {
    pretty: PrettyFormatter<'static>,
    level: usize,
}

impl NestedFormatter {
    fn new(level: usize) -> Self {
        NestedFormatter {
            pretty: PrettyFormatter::with_indent(STEP),
            level,
        }
    }
}

impl Formatter for NestedFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_array(w)
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array(&mut Indented::new(w, self.level))
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.pretty
            .begin_array_value(&mut Indented::new(w, self.level), first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(w)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object(w)
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object(&mut Indented::new(w, self.level))
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.pretty
            .begin_object_key(&mut Indented::new(w, self.level), first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

/// A writer that indents `level` steps after every newline written through it.
struct Indented<'a, W: ?Sized> {
    out: &'a mut W,
    level: usize,
}

impl<'a, W: ?Sized + Write> Indented<'a, W> {
    fn new(out: &'a mut W, level: usize) -> Self {
        Indented { out, level }
    }
}

impl<W: ?Sized + Write> Write for Indented<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            self.out.write_all(&rest[..=at])?;
            indent(self.out, self.level)?;
            rest = &rest[at + 1..];
        }
        self.out.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A reason in JSON: its stable code (`reason_code`) and its words (`reason`), as two
/// fields of the finding it belongs to.
impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("reason_code", &self.code())?;
        map.serialize_entry("reason", &crate::output::words::reason(self))?;
        map.end()
    }
}

/// The process-level finding in JSON: its words (the `message` field).
impl Serialize for crate::source::process::ProcessFinding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::output::words::process(self))
    }
}

/// A finding's hints in JSON: their words (`hints`) and, added in schema 3, their stable
/// codes (`hint_codes`), as two fields of the finding.
impl Serialize for Hints {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("hints", &crate::output::words::hints(self))?;
        let codes: Vec<&str> = self.0.iter().map(|h| h.code()).collect();
        map.serialize_entry("hint_codes", &codes)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::site::{GroupBy, SiteRules};
    use crate::rank::{rank, RankOptions};
    use crate::source::go_source::SourceRoots;
    use crate::source::SkippedSegment;

    /// The reference layout: every field of the ranking, then its verdict in words, as
    /// serde_json's pretty printer writes them in one pass.
    #[derive(Serialize)]
    struct RankingDocument<'a> {
        #[serde(flatten)]
        ranking: &'a Ranking,
        verdict: String,
    }

    fn reference(r: &Ranking) -> String {
        let doc = RankingDocument {
            ranking: r,
            verdict: crate::output::render::verdict(r),
        };
        serde_json::to_string_pretty(&doc).unwrap()
    }

    fn written(r: &Ranking) -> String {
        let mut out = Vec::new();
        write_ranking(&mut out, r).unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn demo(by: GroupBy) -> Ranking {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures/demo");
        let cat = crate::source::catalog::open(&[dir], &SiteRules::default())
            .await
            .unwrap();
        let opts = RankOptions {
            by,
            metrics: Vec::new(),
            rules: SiteRules::default(),
            sources: SourceRoots(Vec::new()),
            keep_series: 0,
            first: None,
        };
        rank(&cat, &opts, &|_| {}).await.unwrap()
    }

    /// The findings rendered in parallel at their depths, framed here, give the bytes of
    /// the one-pass document: for real rankings (several sections, hints, a process
    /// summary), for lists longer than one rendering task, and for empty ones.
    #[tokio::test(flavor = "multi_thread")]
    async fn parallel_rendering_writes_the_one_pass_document_byte_for_byte() {
        for by in [GroupBy::Site, GroupBy::Stack] {
            let r = demo(by).await;
            assert!(r.sections.len() >= 2 && !r.findings.is_empty());
            assert_eq!(written(&r), reference(&r), "{by:?}");

            // Longer than several tasks, a section with no findings, skipped segments.
            let mut long = r.clone();
            while long.findings.len() <= 3 * FINDINGS_PER_TASK + 1 {
                long.findings.extend(r.findings.iter().cloned());
            }
            long.sections[0].findings = long.findings.clone();
            long.sections[1].findings.clear();
            long.skipped = vec![SkippedSegment {
                path: "cap/samples/date=2026-12-06/x.parquet".into(),
                reason: "bad \"footer\"\n".into(),
            }];
            assert_eq!(written(&long), reference(&long), "{by:?} long");

            // Nothing at all: every list empty.
            let mut empty = r.clone();
            empty.findings.clear();
            empty.sections.clear();
            empty.process = None;
            assert_eq!(written(&empty), reference(&empty), "{by:?} empty");
        }
    }
}
