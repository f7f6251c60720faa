//! Retrying a network operation with exponential backoff: one policy shared by the
//! recorder's scrapes (with full jitter and a deadline) and the analyzer's webhook posts
//! (stopped early on a stop request). The caller does the HTTP; this decides when to try
//! again and how long to wait.

use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Pause before the first retry; doubled for each further retry (at most 2^10 times).
    pub first: Duration,
    /// Full jitter: each pause is a uniformly random share of its cap, so that many
    /// clients failing together do not retry together.
    pub jitter: bool,
}

/// What one attempt came to.
#[derive(Debug)]
pub enum Outcome<T, E> {
    /// It worked.
    Done(T),
    /// It failed in a way worth trying again (connection error, timeout, 429, 5xx).
    Retry(E),
    /// It failed for good (any other answer).
    Fail(E),
}

/// Whether an HTTP status is worth retrying: 429 Too Many Requests and every 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

impl Backoff {
    /// The pause before retry `n` (1 for the first retry).
    pub fn pause(&self, n: u32) -> Duration {
        let cap = self.first.saturating_mul(1 << n.saturating_sub(1).min(10));
        if self.jitter {
            cap.mul_f64(fastrand::f64())
        } else {
            cap
        }
    }

    /// Runs `attempt` (given the attempt number, from 1) until it is done, fails for good,
    /// or the retries are used up. Before each retry `wait` is given the pause: it sleeps
    /// and returns true, or returns false to give up (a deadline that the pause would pass,
    /// a stop request). Returns the last outcome's value and the attempts made.
    pub fn run<T, E>(
        &self,
        mut attempt: impl FnMut(u32) -> Outcome<T, E>,
        mut wait: impl FnMut(Duration) -> bool,
    ) -> (Result<T, E>, u32) {
        let mut made = 0;
        loop {
            made += 1;
            match attempt(made) {
                Outcome::Done(v) => return (Ok(v), made),
                Outcome::Fail(e) => return (Err(e), made),
                Outcome::Retry(e) => {
                    if made > self.retries || !wait(self.pause(made)) {
                        return (Err(e), made);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_done_with_doubling_pauses() {
        let b = Backoff {
            retries: 3,
            first: Duration::from_millis(100),
            jitter: false,
        };
        let mut pauses = Vec::new();
        let (r, made) = b.run(
            |n| {
                if n < 3 {
                    Outcome::Retry(n)
                } else {
                    Outcome::Done("ok")
                }
            },
            |p| {
                pauses.push(p);
                true
            },
        );
        assert_eq!((r, made), (Ok("ok"), 3));
        assert_eq!(
            pauses,
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
    }

    #[test]
    fn stops_on_a_final_failure_when_retries_run_out_or_when_told() {
        let b = Backoff {
            retries: 2,
            first: Duration::from_millis(1),
            jitter: true,
        };
        let (r, made) = b.run(|_| Outcome::<(), _>::Fail("404"), |_| true);
        assert_eq!((r, made), (Err("404"), 1));
        let (r, made) = b.run(Outcome::<(), _>::Retry, |_| true);
        assert_eq!((r, made), (Err(3), 3));
        let (r, made) = b.run(Outcome::<(), _>::Retry, |_| false);
        assert_eq!((r, made), (Err(1), 1));
        assert!(b.pause(5) <= Duration::from_millis(16));
        assert!(is_retryable_status(503) && is_retryable_status(429) && !is_retryable_status(404));
    }
}
