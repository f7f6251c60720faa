//! HTTP GET with a per-request timeout, bounded retries with exponential backoff and full
//! jitter, and a record of every attempt (the `scrapes` table).

use std::io::Read;
use std::time::{Duration, Instant};

use crate::now_ns;

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
            .max_redirects(3)
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
        let mut attempts = Vec::new();
        for n in 0..=self.retries {
            let (attempt, body, retryable) = self.try_once(url);
            attempts.push(attempt);
            if body.is_some() {
                return Fetched { attempts, body };
            }
            if !retryable || n == self.retries {
                break;
            }
            let cap = self.backoff.saturating_mul(1 << n.min(10));
            let pause = cap.mul_f64(fastrand::f64());
            if Instant::now() + pause + self.timeout.min(Duration::from_secs(1)) > deadline {
                break;
            }
            std::thread::sleep(pause);
        }
        Fetched {
            attempts,
            body: None,
        }
    }

    fn try_once(&self, url: &str) -> (Attempt, Option<Vec<u8>>, bool) {
        let start_ns = now_ns();
        let started = Instant::now();
        let mut req = self.agent.get(url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let done = |status: Option<u16>, bytes: Option<u64>, error: Option<String>| Attempt {
            start_ns,
            duration_ms: started.elapsed().as_secs_f64() * 1e3,
            status,
            bytes,
            error,
        };
        let mut resp = match req.call() {
            Ok(r) => r,
            Err(e) => {
                let msg = describe_error(&e, self.timeout);
                return (done(None, None, Some(msg)), None, true);
            }
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
            let retryable = status == 429 || status >= 500;
            return (done(Some(status), Some(len), Some(msg)), None, retryable);
        }
        (done(Some(status), Some(len), None), Some(body), false)
    }
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
