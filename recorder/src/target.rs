//! The scrape target: base URL, endpoint paths and request headers.
//!
//! Credentials in the URL (`user:pass@`) are taken out of it at parse time and sent as an
//! `Authorization: Basic` header, so no URL the recorder builds, logs or stores ever holds
//! them; the target displays as `scheme://***@host...`.

use std::fmt;

use ureq::http::Uri;

/// A validated scrape target.
#[derive(Clone)]
pub struct Target {
    base: String,
    has_userinfo: bool,
    host: String,
    port: u16,
    pprof_path: String,
    vars_path: String,
    headers: Vec<(String, String)>,
}

/// Why a target, path or header was rejected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

impl Target {
    /// Parses `url` (`http(s)://HOST:PORT[/prefix]`, scheme defaulting to http), the pprof
    /// and expvar paths below it, and `Name: value` headers.
    pub fn parse(
        url: &str,
        pprof_path: &str,
        vars_path: &str,
        headers: &[String],
    ) -> Result<Target, TargetError> {
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let (without_userinfo, userinfo) = split_userinfo(&with_scheme);
        let url = &redact(url); // every message below shows the URL without credentials
        if without_userinfo.contains('@') {
            // A password with an unencoded `/`, `?` or `#` ends the authority early: the
            // rest of it would be taken for a port or a path and shown.
            return Err(TargetError(format!(
                "target {url:?}: '@' after the host; percent-encode '@', '/', '?' and '#' in the user name and password (%40, %2F, %3F, %23)"
            )));
        }
        let uri: Uri = without_userinfo
            .parse()
            .map_err(|e| TargetError(format!("invalid target URL {url:?}: {e}")))?;
        let scheme = uri.scheme_str().unwrap_or("http");
        if scheme != "http" && scheme != "https" {
            return Err(TargetError(format!(
                "target {url:?}: scheme must be http or https"
            )));
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TargetError(format!("target {url:?} has no host")))?
            .to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        if uri.query().is_some() {
            return Err(TargetError(format!(
                "target {url:?}: must not contain a query string"
            )));
        }
        let prefix = uri.path().trim_end_matches('/');
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(&host);
        if authority.contains('@') {
            return Err(TargetError(format!("invalid target URL {url:?}")));
        }
        let mut parsed_headers = Vec::new();
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| TargetError("--header must look like 'Name: value'".into()))?;
            let name = name.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err(TargetError(format!(
                    "--header has an invalid name {name:?}"
                )));
            }
            parsed_headers.push((name.to_string(), value.trim().to_string()));
        }
        let has_userinfo = userinfo.is_some();
        if let Some(info) = userinfo {
            let explicit = parsed_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
            if !explicit {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                let plain = format!("{}:{}", percent_decode(user), percent_decode(pass));
                parsed_headers.push((
                    "Authorization".into(),
                    format!("Basic {}", base64(plain.as_bytes())),
                ));
            }
        }
        Ok(Target {
            has_userinfo,
            base: format!("{scheme}://{authority}{prefix}"),
            host,
            port,
            pprof_path: normalize_path(pprof_path),
            vars_path: normalize_path(vars_path),
            headers: parsed_headers,
        })
    }

    /// Full URL of a pprof profile (`heap`, `goroutine`, ...) with an optional query.
    pub fn profile_url(&self, name: &str, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{}{}/{name}{q}", self.base, self.pprof_path)
    }

    /// Path (below the base) of a pprof profile, for the `scrapes.endpoint` column.
    pub fn profile_path(&self, name: &str, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("{}/{name}{q}", self.pprof_path)
    }

    /// Full URL of the expvar endpoint.
    pub fn vars_url(&self) -> String {
        format!("{}{}", self.base, self.vars_path)
    }

    /// Path of the expvar endpoint.
    pub fn vars_path(&self) -> &str {
        &self.vars_path
    }

    /// Request headers (values are secrets: never log them).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Header names only, for logs and manifests.
    pub fn header_names(&self) -> Vec<String> {
        self.headers.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// True when the host is this machine (loopback), so its PID can be found.
    pub fn is_local(&self) -> bool {
        let h = self.host.trim_matches(|c| c == '[' || c == ']');
        h == "localhost" || h == "::1" || h.starts_with("127.") || h == "0.0.0.0"
    }
}

impl Target {
    /// The origin requests may go to: `scheme://host:port` (redirects elsewhere are refused).
    pub fn origin(&self) -> String {
        let scheme = self.base.split("://").next().unwrap_or("http");
        origin_of(scheme, &self.host, self.port)
    }
}

/// `scheme://host:port` with the port always written, for comparing origins.
pub fn origin_of(scheme: &str, host: &str, port: u16) -> String {
    format!(
        "{}://{}:{port}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The base never holds credentials; say that some are used.
        match (self.has_userinfo, self.base.split_once("://")) {
            (true, Some((scheme, rest))) => write!(f, "{scheme}://***@{rest}"),
            _ => f.write_str(&self.base),
        }
    }
}

/// Splits the user info (`user:pass`, up to the last `@` of the authority) off a URL with a
/// scheme: the URL without it, and the user info.
fn split_userinfo(url: &str) -> (String, Option<&str>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => (format!("{scheme}://{}", &rest[at + 1..]), Some(&rest[..at])),
        None => (url.to_string(), None),
    }
}

/// `url` with everything up to its last `@` (the user info, and whatever a password with an
/// unencoded `/`, `?` or `#` runs into) shown as `***`.
pub fn redact(url: &str) -> String {
    let with_scheme = url.contains("://");
    let full = if with_scheme {
        url.to_string()
    } else {
        format!("//{url}")
    };
    let (scheme, rest) = full.split_once("//").unwrap_or(("", &full));
    let shown = match rest.rfind('@') {
        Some(at) => format!("{scheme}//***@{}", &rest[at + 1..]),
        None => full.clone(),
    };
    if with_scheme {
        shown
    } else {
        shown.trim_start_matches("//").to_string()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self}, headers: {:?})", self.header_names())
    }
}

fn normalize_path(p: &str) -> String {
    let t = p.trim().trim_end_matches('/');
    if t.is_empty() {
        String::new()
    } else if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_urls_with_prefix_and_paths() {
        let t = Target::parse(
            "https://svc:8443/admin/",
            "debug/pprof/",
            "/debug/vars",
            &[],
        )
        .unwrap();
        assert_eq!(
            t.profile_url("heap", ""),
            "https://svc:8443/admin/debug/pprof/heap"
        );
        assert_eq!(
            t.profile_url("heap", "debug=1"),
            "https://svc:8443/admin/debug/pprof/heap?debug=1"
        );
        assert_eq!(t.vars_url(), "https://svc:8443/admin/debug/vars");
        assert!(!t.is_local());
        let t = Target::parse("127.0.0.1:6060", "/debug/pprof", "/debug/vars", &[]).unwrap();
        assert_eq!(
            t.profile_url("goroutine", ""),
            "http://127.0.0.1:6060/debug/pprof/goroutine"
        );
        assert!(t.is_local());
        assert_eq!(t.port(), 6060);
    }

    #[test]
    fn headers_are_parsed_and_never_displayed() {
        let t = Target::parse(
            "http://u:secret@h:1",
            "/p",
            "/v",
            &["Authorization: Bearer abc".into()],
        )
        .unwrap();
        assert_eq!(
            t.headers()[0],
            ("Authorization".into(), "Bearer abc".into())
        );
        let shown = format!("{t} {t:?}");
        assert!(
            !shown.contains("abc") && !shown.contains("secret"),
            "{shown}"
        );
        assert!(Target::parse("h:1", "/p", "/v", &["novalue".into()]).is_err());
        assert!(Target::parse("ftp://h", "/p", "/v", &[]).is_err());
    }

    #[test]
    fn user_info_up_to_the_last_at_becomes_a_header_and_leaves_every_url() {
        let t = Target::parse("http://u:p@ss@h:1/pre", "/p", "/v", &[]).unwrap();
        assert_eq!(t.to_string(), "http://***@h:1/pre");
        assert_eq!(t.profile_url("heap", ""), "http://h:1/pre/p/heap");
        assert_eq!(t.vars_url(), "http://h:1/pre/v");
        // base64("u:p@ss")
        assert_eq!(
            t.headers()[0],
            ("Authorization".into(), "Basic dTpwQHNz".into())
        );
        assert_eq!(t.header_names(), ["Authorization"]);
        assert_eq!(t.origin(), "http://h:1");
        let t = Target::parse("https://a%40b:s%3Acret@H", "/p", "/v", &[]).unwrap();
        assert_eq!(t.headers()[0].1, format!("Basic {}", base64(b"a@b:s:cret")));
        assert_eq!(t.origin(), "https://h:443");
        // An explicit Authorization header wins.
        let t = Target::parse(
            "http://u:p@h",
            "/p",
            "/v",
            &["Authorization: Bearer x".into()],
        )
        .unwrap();
        assert_eq!(t.headers().len(), 1);
        // Error messages never show the password.
        let e = Target::parse("ftp://u:hunter2@h", "/p", "/v", &[])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2") && e.contains("***@h"), "{e}");
        // Up to the last `@` anywhere: a password may hold an unencoded `/`, `?` or `#`.
        assert_eq!(redact("u:p@ss@h:1/x@y"), "***@y");
        assert_eq!(redact("http://h/a@b"), "http://***@b");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abcd"), "YWJjZA==");
    }

    /// Found by the `target_url` fuzz target (fuzz/): a password with an unencoded `/`,
    /// `?` or `#` ended the authority early; `http://u:1234/x@h` parsed as host `u`, port
    /// 1234 and was displayed whole, and `http://u:p/ss2@h:1` was shown in the error.
    #[test]
    fn a_password_with_a_slash_is_never_shown() {
        for url in [
            "http://u:1234/x@h",
            "http://u:p/ss2@h:1",
            "u:12?34@h:1",
            "https://u:12#34@h",
            "http://a@b:12/34@h",
        ] {
            let e = Target::parse(url, "/p", "/v", &[]).unwrap_err().to_string();
            assert!(
                !e.contains("34") && !e.contains("ss2") && !e.contains("/x"),
                "{e}"
            );
            assert!(e.contains("***@h"), "{e}");
        }
        assert!(Target::parse("http://u:12%2F34@h:1", "/p", "/v", &[]).is_ok());
    }
}
