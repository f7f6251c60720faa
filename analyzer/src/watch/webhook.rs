//! Delivering an alert: an HTTP client for one webhook that POSTs JSON with timeouts,
//! retries and backoff, and shows the URL with its secret path hidden.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::message::clip;
use super::WatchError;

/// A URL with everything after the host hidden (webhook URLs carry their secret in the
/// path), e.g. `https://hooks.slack.com/…`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() == "/" && u.query().is_none() {
                "/"
            } else {
                "/…"
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// Checks that `url` is an absolute http(s) URL with a host.
pub fn check_url(url: &str) -> Result<(), WatchError> {
    let bad = |reason: String| WatchError::BadUrl {
        shown: if url.contains("://") {
            redact_url(url)
        } else {
            format!("'{}'", clip(url, 40))
        },
        reason,
    };
    let u = url::Url::parse(url.trim()).map_err(|e| bad(format!("not a URL ({e})")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(bad(format!(
            "scheme must be http or https, not {}",
            u.scheme()
        )));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".into()));
    }
    ureq::http::Uri::try_from(url.trim()).map_err(|e| bad(format!("not a valid URI ({e})")))?;
    Ok(())
}

/// A successful post.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    /// Attempts made (1 = first try).
    pub attempts: u32,
    /// HTTP status of the answer.
    pub status: u16,
}

/// A post that failed on every attempt (or was cut short by a stop request).
#[derive(Debug, Clone, thiserror::Error)]
#[error("webhook {url}: {last} ({attempts} attempt(s)); the alert is posted again next round")]
pub struct DeliveryError {
    /// The redacted URL.
    pub url: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub last: String,
}

/// An HTTP client for one webhook: POSTs JSON with timeouts, retries and backoff.
pub struct Webhook {
    agent: ureq::Agent,
    url: String,
    shown: String,
    attempts: u32,
    backoff: Duration,
    timeout: Duration,
}

impl Webhook {
    /// A client for `url` (checked with [`check_url`]): `attempts` tries per post, the
    /// pause before retry n being `backoff` × 2^(n−1); `timeout` bounds each attempt
    /// (connecting at most 5 s of it).
    pub fn new(
        url: &str,
        timeout: Duration,
        attempts: u32,
        backoff: Duration,
    ) -> Result<Webhook, WatchError> {
        check_url(url)?;
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(format!("leakscope/{}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Webhook {
            agent: config.into(),
            url: url.trim().to_string(),
            shown: redact_url(url.trim()),
            attempts: attempts.max(1),
            backoff,
            timeout,
        })
    }

    /// The URL as shown in messages (path hidden).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// POSTs `body` as JSON. Connection errors, timeouts, 429 and 5xx are retried; any
    /// other non-2xx answer fails at once. `stop` cuts the backoff pauses short.
    pub fn post(&self, body: &Value, stop: &AtomicBool) -> Result<Delivered, DeliveryError> {
        use leakscope_capture::retry::{Backoff, Outcome};
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let policy = Backoff {
            retries: self.attempts - 1,
            first: self.backoff,
            jitter: false,
        };
        let mut stopped = false;
        let (result, made) = policy.run(
            |_| match self.try_once(&bytes) {
                Ok(status) => Outcome::Done(status),
                Err((msg, true)) => Outcome::Retry(msg),
                Err((msg, false)) => Outcome::Fail(msg),
            },
            // Sleep in short slices so that a stop request cuts the pause short.
            |pause| {
                let end = Instant::now() + pause;
                while Instant::now() < end {
                    if stop.load(Ordering::Relaxed) {
                        stopped = true;
                        return false;
                    }
                    std::thread::sleep(
                        end.saturating_duration_since(Instant::now())
                            .min(Duration::from_millis(50)),
                    );
                }
                true
            },
        );
        match result {
            Ok(status) => Ok(Delivered {
                attempts: made,
                status,
            }),
            Err(mut last) => {
                if stopped {
                    last.push_str("; stopped before retrying");
                }
                Err(self.failed(made, last))
            }
        }
    }

    fn failed(&self, attempts: u32, last: String) -> DeliveryError {
        DeliveryError {
            url: self.shown.clone(),
            attempts,
            last,
        }
    }

    /// One POST: Ok(status) on 2xx, else the error and whether it is worth retrying.
    fn try_once(&self, bytes: &[u8]) -> Result<u16, (String, bool)> {
        let resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(bytes);
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return Err((self.describe(&e), true)),
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            // Read (and drop) the answer so the connection ends cleanly.
            let _ = resp.body_mut().with_config().limit(64 * 1024).read_to_vec();
            return Ok(status);
        }
        let answer = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        let first = String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .take(120)
            .collect::<String>();
        let reason = resp.status().canonical_reason().unwrap_or("");
        let mut msg = format!("HTTP {status} {reason}").trim_end().to_string();
        if !first.is_empty() && first != reason {
            msg.push_str(&format!(": {first}"));
        }
        Err((msg, leakscope_capture::retry::is_retryable_status(status)))
    }

    fn describe(&self, e: &ureq::Error) -> String {
        match e {
            ureq::Error::Timeout(_) => format!("timed out after {:?}", self.timeout),
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::TimedOut => format!("timed out after {:?}", self.timeout),
                _ => io.to_string(),
            },
            ureq::Error::HostNotFound => "host not found".into(),
            // Other errors may quote the URL; keep its secret path out of the message.
            other => other
                .to_string()
                .replace(&self.url, &self.shown)
                .replace('\n', " "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_webhook_secrets() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://127.0.0.1:9/"), "http://127.0.0.1:9/");
        assert_eq!(
            redact_url("http://user:pw@example.com:8080/x?y"),
            "http://example.com:8080/…"
        );
    }

    #[test]
    fn checks_urls() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://hooks.slack.com/services/a/b/c").is_ok());
        let e = check_url("ftp://example.com/x").unwrap_err().to_string();
        assert!(e.contains("scheme must be http or https"), "{e}");
        let e = check_url("hooks.slack.com/services")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--webhook 'hooks.slack.com"), "{e}");
        assert!(check_url("http://").is_err());
    }
}
