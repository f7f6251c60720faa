//! The ranking as JSON (`rank --format json`): the typed ranking plus the words people
//! read (the one-paragraph verdict), in the layout docs/cli.md documents, versioned by
//! [`crate::rank::RANKING_SCHEMA_VERSION`].

use std::io::Write;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::model::hints::Hints;
use crate::model::reason::Reason;

use crate::rank::Ranking;

/// The JSON document: every field of the ranking, then its verdict in words.
#[derive(Serialize)]
struct RankingDocument<'a> {
    #[serde(flatten)]
    ranking: &'a Ranking,
    /// One-paragraph verdict.
    verdict: String,
}

/// Writes `r` as pretty-printed JSON to `out` (no trailing newline).
pub fn write_ranking(out: &mut impl Write, r: &Ranking) -> serde_json::Result<()> {
    let doc = RankingDocument {
        ranking: r,
        verdict: crate::output::render::verdict(r),
    };
    serde_json::to_writer_pretty(out, &doc)
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
