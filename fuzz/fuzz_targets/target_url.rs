//! Fuzz target: bytes as a `--target` string → `Target::parse` → the displayed target
//! (`Display`) or the error message, and `target::redact`. Property: when the input has a
//! password (`scheme://user:PASSWORD@host...`, the user info running to the last `@`
//! before the host as the recorder reads it, or to the last `@` of the input as a person
//! typing an unencoded `/`, `?` or `#` in a password means it), no displayed text holds it.
#![no_main]

use leakscope_recorder::target::{redact, Target};
use libfuzzer_sys::fuzz_target;

/// The password of `input` (text between the first `:` after `scheme://` and the last
/// `@`), when it is distinctive enough to search for: 4 bytes or more, holding a digit, and
/// not found elsewhere in the input (the host, the path; also as quoted by `{:?}`) or in
/// the fixed message texts, and without `*`, `"`, `\` or a leading `@`.
fn password(input: &str) -> Option<&str> {
    let rest = input.split_once("://").map_or(input, |(_, r)| r);
    let at = rest.rfind('@')?;
    let (user_info, after) = (&rest[..at], &rest[at + 1..]);
    let (_, pass) = user_info.split_once(':')?;
    let escaped = escaped(pass);
    let user = &user_info[..user_info.len() - pass.len()];
    let scheme = &input[..input.len() - rest.len()];
    // Neither form of the password may occur in the rest of the input, raw or quoted.
    let elsewhere = [scheme, user, after].iter().any(|part| {
        let quoted = format!("{part:?}");
        [pass, escaped.as_str()]
            .iter()
            .any(|f| part.contains(f) || quoted.contains(f))
    });
    // `*`, `"` and `\` (and a leading `@`) are left out: the mask (`***@`) and the
    // quoting of messages (`"..."`, `\`) could complete a password holding them.
    let distinctive = pass.len() >= 4
        && !elsewhere
        && pass.bytes().any(|b| b.is_ascii_digit())
        && !pass.contains(['*', '"', '\\'])
        && !pass.starts_with('@');
    distinctive.then_some(pass)
}

/// `pass` as error messages quote it (`{:?}`), without the quotes.
fn escaped(pass: &str) -> String {
    let quoted = format!("{pass:?}");
    quoted[1..quoted.len() - 1].to_string()
}

fn assert_hidden(shown: &str, pass: &str, input: &str) {
    assert!(
        !shown.contains(pass) && !shown.contains(&escaped(pass)),
        "password {pass:?} of target {input:?} shown in {shown:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let shown = match Target::parse(input, "/debug/pprof", "/debug/vars", &[]) {
        Ok(t) => {
            let _ = (t.profile_url("heap", "gc=1"), t.vars_url(), t.origin());
            format!("{t}")
        }
        Err(e) => e.to_string(),
    };
    let redacted = redact(input);
    if let Some(pass) = password(input) {
        assert_hidden(&shown, pass, input);
        assert_hidden(&redacted, pass, input);
    }
});
