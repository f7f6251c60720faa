//! Turns raw user stacks into capture frames while the process lives (blazesym: ELF
//! symbols and DWARF lines), keeping mapping, build id and file offset on every frame so a
//! capture can be symbolized again offline.

use blazesym::normalize::{Normalizer, UserMeta};
use blazesym::symbolize::source::{Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use blazesym::Pid;
use leakscope_capture::stack::Frame;

/// Symbolizes the stacks of one process.
pub struct StackSymbolizer {
    pid: u32,
    symbolizer: Symbolizer,
    normalizer: Normalizer,
}

impl StackSymbolizer {
    /// A symbolizer for `pid`.
    pub fn new(pid: u32) -> Self {
        StackSymbolizer {
            pid,
            // Inlined frames are left out for now: one frame per address.
            symbolizer: Symbolizer::builder()
                .enable_inlined_fns(false)
                .enable_auto_reload(true)
                .build(),
            normalizer: Normalizer::builder()
                .enable_build_ids(true)
                .enable_build_id_caching(true)
                .build(),
        }
    }

    /// Frames for raw stack `ips` (return addresses, leaf first). The second value is
    /// false when nothing could be symbolized (all frames are bare addresses).
    pub fn frames(&self, ips: &[u64]) -> (Vec<Frame>, bool) {
        if ips.is_empty() {
            return (Vec::new(), true);
        }
        // Every captured address is a return address (the stacks are taken in the return
        // probe): look up the call instruction before it.
        let lookup: Vec<u64> = ips.iter().map(|ip| ip.saturating_sub(1)).collect();
        let mut frames: Vec<Frame> = ips
            .iter()
            .map(|ip| Frame {
                address: Some(*ip),
                ..Default::default()
            })
            .collect();
        if let Ok(norm) = self
            .normalizer
            .normalize_user_addrs(Pid::from(self.pid), ips)
        {
            for (f, (offset, meta_idx)) in frames.iter_mut().zip(norm.outputs.iter()) {
                if let Some(UserMeta::Elf(elf)) = norm.meta.get(*meta_idx) {
                    f.mapping = Some(elf.path.to_string_lossy().into_owned());
                    f.build_id = elf
                        .build_id
                        .as_ref()
                        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect());
                    f.file_offset = Some(*offset);
                }
            }
        }
        let src = Source::Process(Process::new(Pid::from(self.pid)));
        let mut any = false;
        if let Ok(syms) = self.symbolizer.symbolize(&src, Input::AbsAddr(&lookup)) {
            for (f, s) in frames.iter_mut().zip(syms) {
                if let Symbolized::Sym(sym) = s {
                    any = true;
                    f.function = sym.name.to_string();
                    if let Some(ci) = &sym.code_info {
                        f.file = ci.to_path().to_string_lossy().into_owned();
                        f.line = ci.line.map(i64::from).unwrap_or(0);
                    }
                    if f.mapping.is_none() {
                        f.mapping = sym
                            .module
                            .as_ref()
                            .map(|m| m.to_string_lossy().into_owned());
                    }
                }
            }
        }
        (frames, any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn here() -> u64 {
        here as *const () as usize as u64
    }

    #[test]
    fn symbolizes_this_process() {
        let s = StackSymbolizer::new(std::process::id());
        // A return address just past the start of `here`.
        let (frames, any) = s.frames(&[here() + 2]);
        assert!(any);
        assert!(frames[0].function.contains("here"), "{frames:?}");
        assert!(
            frames[0].build_id.is_some() && frames[0].file_offset.is_some(),
            "{frames:?}"
        );
        assert_eq!(s.frames(&[]), (vec![], true));
    }
}
