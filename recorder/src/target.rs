//! The scrape target: base URL, endpoint paths and request headers.

use std::fmt;

use ureq::http::Uri;

/// A validated scrape target.
#[derive(Clone)]
pub struct Target {
    base: String,
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
        let uri: Uri = with_scheme
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
        Ok(Target {
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

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print credentials embedded in the URL.
        match self.base.split_once('@') {
            Some((scheme_user, rest)) if scheme_user.contains("://") => {
                let scheme = scheme_user.split("://").next().unwrap_or("http");
                write!(f, "{scheme}://***@{rest}")
            }
            _ => f.write_str(&self.base),
        }
    }
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
}
