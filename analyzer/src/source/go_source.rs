//! Go source files on this machine, found from the paths recorded in stacks, for hints
//! that quote the growing line.

use crate::model::hints::SourceLines;
use crate::model::site::FrameRef;

/// Where to look for source files named in stacks: the recorded path first, then the
/// path's trailing components under each root (like a debugger's substitute-path).
#[derive(Debug, Clone, Default)]
pub struct SourceRoots(pub Vec<std::path::PathBuf>);

impl SourceRoots {
    /// The readable local file for a recorded source path, if any.
    pub fn locate(&self, recorded: &str) -> Option<std::path::PathBuf> {
        let p = std::path::Path::new(recorded);
        if p.is_file() {
            return Some(p.to_path_buf());
        }
        let parts: Vec<_> = p.components().collect();
        for root in &self.0 {
            for k in (1..=parts.len()).rev() {
                let cand = parts[parts.len() - k..]
                    .iter()
                    .fold(root.clone(), |acc, c| acc.join(c));
                if cand.is_file() {
                    return Some(cand);
                }
            }
        }
        None
    }
}

impl SourceLines for SourceRoots {
    /// From the frame's line to a line that is a lone `}` (at most 200 lines; files over
    /// 8 MiB are not read).
    fn rest_of_function(&self, f: &FrameRef) -> Option<Vec<String>> {
        if !f.file.ends_with(".go") || f.line <= 0 {
            return None;
        }
        let path = self.locate(&f.file)?;
        let meta = std::fs::metadata(&path).ok()?;
        if meta.len() > 8 << 20 {
            return None;
        }
        let text = std::fs::read_to_string(&path).ok()?;
        let first = usize::try_from(f.line - 1).ok()?;
        let mut out = Vec::new();
        for l in text.lines().skip(first).take(200) {
            if l == "}" && !out.is_empty() {
                break;
            }
            out.push(l.trim().to_string());
        }
        (!out.is_empty()).then_some(out)
    }
}
