//! HTTP GET with a per-request timeout, bounded retries with exponential backoff and full
//! jitter, and a record of every attempt (the `scrapes` table).
//!
//! Redirects are followed by hand, and only within the origin (scheme, host and port) of the
//! URL requested: the `--header` values and credentials go to the target and nowhere else,
//! and an https target is never downgraded to http.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::http::Uri;

use crate::now_ns;
use crate::target::origin_of;

/// Redirects followed (within the origin) per attempt.
pub const MAX_REDIRECTS: u32 = 3;

/// Largest response body accepted.
pub const MAX_BODY_BYTES: u64 = 512 << 20;

/// One HTTP attempt as it will be written to `scrapes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Start of the attempt, ns since the Unix epoch.
    pub start_ns: i64,
    /// Wall time of the attempt.
    pub duration_ms: f64,
    /// HTTP status when a response arrived.
    pub status: Option<u16>,
    /// Body length when a body was read.
    pub bytes: Option<u64>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// The outcome of a fetch: every attempt and, on success, the body.
#[derive(Debug)]
pub struct Fetched {
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// The body of the successful attempt.
    pub body: Option<Vec<u8>>,
}

impl Fetched {
    /// Error of the last attempt, or `None` on success.
    pub fn error(&self) -> Option<&str> {
        self.attempts.last().and_then(|a| a.error.as_deref())
    }

    /// HTTP status of the last attempt.
    pub fn status(&self) -> Option<u16> {
        self.attempts.last().and_then(|a| a.status)
    }
}

/// A reusable HTTP client with the recorder's timeout and retry policy.
pub struct Fetcher {
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
}

impl Fetcher {
    /// A client with a per-request `timeout`, up to `retries` retries after the first try,
    /// backoff starting at `backoff`, sending `headers` with every request.
    pub fn new(
        timeout: Duration,
        retries: u32,
        backoff: Duration,
        headers: Vec<(String, String)>,
    ) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(format!("leakscope-recorder/{}", crate::RECORDER_VERSION))
            .max_redirects(0) // followed by hand, within the origin only
            .build();
        Fetcher {
            agent: config.into(),
            headers,
            retries,
            backoff,
            timeout,
        }
    }

    /// GETs `url`, retrying transport errors, timeouts, 429 and 5xx until it succeeds, the
    /// retries are used up, or `deadline` would be passed.
    pub fn get(&self, url: &str, deadline: Instant) -> Fetched {
        use leakscope_capture::retry::{Backoff, Outcome};
        let policy = Backoff {
            retries: self.retries,
            first: self.backoff,
            jitter: true,
        };
        let mut attempts = Vec::new();
        let (body, _) = policy.run(
            |_| {
                let (attempt, body, retryable) = self.try_once(url);
                attempts.push(attempt);
                match body {
                    Some(b) => Outcome::Done(b),
                    None if retryable => Outcome::Retry(()),
                    None => Outcome::Fail(()),
                }
            },
            // Give up rather than start an attempt that the deadline would cut short.
            |pause| {
                if Instant::now() + pause + self.timeout.min(Duration::from_secs(1)) > deadline {
                    return false;
                }
                std::thread::sleep(pause);
                true
            },
        );
        Fetched {
            attempts,
            body: body.ok(),
        }
    }

    fn try_once(&self, url: &str) -> (Attempt, Option<Vec<u8>>, bool) {
        let start_ns = now_ns();
        let started = Instant::now();
        let done = |status: Option<u16>, bytes: Option<u64>, error: Option<String>| Attempt {
            start_ns,
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            status,
            bytes,
            error,
        };
        let mut current = url.to_string();
        let mut redirects = 0;
        let mut resp = loop {
            let mut req = self.agent.get(&current);
            for (k, v) in &self.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            let resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    let msg = describe_error(&e, self.timeout);
                    return (done(None, None, Some(msg)), None, true);
                }
            };
            let status = resp.status().as_u16();
            if !resp.status().is_redirection() {
                break resp;
            }
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or("");
            let refused = |why: String| (done(Some(status), None, Some(why)), None, false);
            if redirects == MAX_REDIRECTS {
                return refused(format!(
                    "HTTP {status} redirect: more than {MAX_REDIRECTS} redirects"
                ));
            }
            match follow(&current, location) {
                Ok(next) => current = next,
                Err(other) => {
                    return refused(format!(
                        "HTTP {status} redirect to another origin ({other}) not followed: headers and credentials are only sent to the target's origin"
                    ))
                }
            }
            redirects += 1;
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let read = resp
            .body_mut()
            .as_reader()
            .take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut body);
        if let Err(e) = read {
            let msg =
                if e.kind() == std::io::ErrorKind::TimedOut || e.to_string().contains("timeout") {
                    format!("timed out after {:?} reading the body", self.timeout)
                } else {
                    format!("reading body: {e}")
                };
            return (done(Some(status), None, Some(msg)), None, true);
        }
        let len = body.len() as u64;
        if len > MAX_BODY_BYTES {
            return (
                done(
                    Some(status),
                    Some(len),
                    Some(format!("body larger than {MAX_BODY_BYTES} bytes")),
                ),
                None,
                false,
            );
        }
        if !(200..300).contains(&status) {
            let reason = resp.status().canonical_reason().unwrap_or("");
            let first = String::from_utf8_lossy(&body[..body.len().min(120)])
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let mut msg = format!("HTTP {status} {reason}").trim_end().to_string();
            if !first.is_empty() && first != reason {
                msg.push_str(&format!(": {first}"));
            }
            let retryable = leakscope_capture::retry::is_retryable_status(status);
            return (done(Some(status), Some(len), Some(msg)), None, retryable);
        }
        (done(Some(status), Some(len), None), Some(body), false)
    }
}

/// The origin (`scheme://host:port`) of absolute URL `u`.
fn origin(u: &Uri) -> Option<String> {
    let scheme = u.scheme_str()?;
    let port = u
        .port_u16()
        .unwrap_or(if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        });
    Some(origin_of(scheme, u.host()?, port))
}

/// Where a redirect from `from` to `location` goes, when it stays within the origin of
/// `from`; otherwise the other origin (for the message; never its path or query), or
/// `invalid Location` when it cannot be parsed.
fn follow(from: &str, location: &str) -> Result<String, String> {
    let base: Uri = from.parse().map_err(|_| "invalid URL".to_string())?;
    let here = origin(&base).ok_or("invalid URL")?;
    let absolute = if location.contains("://") {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{}://{rest}", base.scheme_str().unwrap_or("http"))
    } else if location.starts_with('/') {
        format!("{here}{location}")
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{here}{dir}/{location}")
    };
    let target: Uri = absolute
        .parse()
        .map_err(|_| "invalid Location".to_string())?;
    if target.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("a Location with user info".into());
    }
    let there = origin(&target).ok_or("invalid Location")?;
    if there != here {
        return Err(there);
    }
    let path = target.path_and_query().map_or("/", |p| p.as_str());
    Ok(format!("{here}{path}"))
}

fn describe_error(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("timed out after {timeout:?}"),
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => format!("timed out after {timeout:?}"),
            _ => io.to_string(),
        },
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string().replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn serve(responses: Vec<&'static str>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for r in responses {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 2048];
                let _ = std::io::Read::read(&mut s, &mut buf);
                s.write_all(r.as_bytes()).unwrap();
            }
        });
        format!("http://{addr}/x")
    }

    #[test]
    fn retries_5xx_then_succeeds() {
        let url = serve(vec![
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ]);
        let f = Fetcher::new(Duration::from_secs(2), 2, Duration::from_millis(10), vec![]);
        let r = f.get(&url, Instant::now() + Duration::from_secs(10));
        assert_eq!(r.attempts.len(), 2);
        assert_eq!(
            r.attempts[0].error.as_deref(),
            Some("HTTP 500 Internal Server Error: boom")
        );
        assert_eq!(r.body.as_deref(), Some(&b"ok"[..]));
    }

    #[test]
    fn does_not_retry_404() {
        let url = serve(vec![
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ]);
        let f = Fetcher::new(Duration::from_secs(2), 3, Duration::from_millis(10), vec![]);
        let r = f.get(&url, Instant::now() + Duration::from_secs(10));
        assert_eq!(r.attempts.len(), 1);
        assert_eq!(r.status(), Some(404));
        assert_eq!(r.error(), Some("HTTP 404 Not Found"));
    }

    #[test]
    fn redirects_stay_within_the_origin() {
        let from = "http://127.0.0.1:8080/debug/pprof/heap";
        assert_eq!(
            follow(from, "/other/heap?x=1").unwrap(),
            "http://127.0.0.1:8080/other/heap?x=1"
        );
        assert_eq!(
            follow(from, "heap2").unwrap(),
            "http://127.0.0.1:8080/debug/pprof/heap2"
        );
        assert_eq!(
            follow(from, "http://127.0.0.1:8080/x").unwrap(),
            "http://127.0.0.1:8080/x"
        );
        assert_eq!(
            follow(from, "http://127.0.0.1:9090/steal?token=abc").unwrap_err(),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            follow("https://h/x", "http://h/x").unwrap_err(),
            "http://h:80",
            "https must never be downgraded to http"
        );
        assert_eq!(
            follow("https://h/x", "//evil/x").unwrap_err(),
            "https://evil:443"
        );
        assert!(follow(from, "http://u:p@127.0.0.1:8080/x").is_err());
    }

    #[test]
    fn refused_connection_is_named() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let f = Fetcher::new(Duration::from_secs(1), 1, Duration::from_millis(5), vec![]);
        let r = f.get(
            &format!("http://127.0.0.1:{port}/"),
            Instant::now() + Duration::from_secs(5),
        );
        assert_eq!(r.attempts.len(), 2);
        assert_eq!(r.error(), Some("connection refused"));
    }
}
