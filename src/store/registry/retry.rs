//! The one retry policy for registry traffic: capped exponential backoff with
//! jitter for errors that say they are temporary (`Error::is_temporary`:
//! resets, refusals, timeouts, 408/429/5xx), at most `[network] retries` times
//! and never once `[network] deadline` has passed since the first attempt.
//! 400/401/403/404 are final and never retried.
//!
//! oci-client drops response headers from its errors, so a 429's
//! `Retry-After` cannot be read; a 429 waits at least [`TOO_MANY_FLOOR`].

use std::future::Future;
use std::time::{Duration, Instant};

use crate::config::NetworkSettings;
use crate::error::{Error, Result};

/// The first retry waits about this long; each further one twice as long.
const BASE: Duration = Duration::from_millis(200);
/// No single wait is longer than this.
const CAP: Duration = Duration::from_secs(5);
/// The least a 429 waits: a registry that says "too many" rarely means "in 100 ms".
const TOO_MANY_FLOOR: Duration = Duration::from_secs(1);

/// The retry budget of one request (or one blob transfer): how many retries
/// are left and until when.
#[derive(Debug)]
pub struct Budget {
    retries: u32,
    used: u32,
    deadline: Instant,
}

impl Budget {
    pub fn new(network: &NetworkSettings) -> Self {
        Budget {
            retries: network.retries,
            used: 0,
            deadline: Instant::now() + Duration::from_secs(network.deadline),
        }
    }

    /// The wait before the next attempt after `err`, or `None` when `err` is
    /// final or the budget is spent. Logs the retry.
    pub fn next_wait(&mut self, op: &str, err: &Error) -> Option<Duration> {
        if !err.is_temporary() || self.used >= self.retries {
            return None;
        }
        let mut wait = backoff(self.used + 1, rand::random::<f64>());
        if matches!(err, Error::Registry { status: 429, .. }) {
            wait = wait.max(TOO_MANY_FLOOR);
        }
        if Instant::now() + wait > self.deadline {
            tracing::warn!("{op}: {err} (no retry: the network deadline has passed)");
            return None;
        }
        self.used += 1;
        tracing::warn!(
            "{op}: {err} (retry {} of {} in {} ms)",
            self.used,
            self.retries,
            wait.as_millis()
        );
        Some(wait)
    }

    /// Waits as `next_wait` says; false when there is to be no further attempt.
    pub async fn wait(&mut self, op: &str, err: &Error) -> bool {
        match self.next_wait(op, err) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                true
            }
            None => false,
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the retry budget is
/// spent; `op` names the request in the warning logged per retry.
pub async fn with_retry<T, F, Fut>(network: &NetworkSettings, op: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut budget = Budget::new(network);
    loop {
        match attempt().await {
            Err(e) if budget.wait(op, &e).await => {}
            other => return other,
        }
    }
}

/// The wait before retry number `retry` (1-based): `BASE × 2^(retry-1)`, capped
/// at `CAP`, scaled by a jitter in [0.5, 1) so that parallel transfers spread out.
pub fn backoff(retry: u32, jitter: f64) -> Duration {
    let exp = BASE.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    exp.min(CAP).mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_and_caps() {
        let ms = |r, j| backoff(r, j).as_millis();
        assert_eq!(ms(1, 1.0), 200);
        assert_eq!(ms(2, 1.0), 400);
        assert_eq!(ms(3, 1.0), 800);
        assert_eq!(ms(6, 1.0), 5000);
        assert_eq!(ms(40, 1.0), 5000);
        assert_eq!(ms(1, 0.0), 100);
    }

    fn network(retries: u32) -> NetworkSettings {
        NetworkSettings {
            retries,
            ..Default::default()
        }
    }

    fn status(status: u16) -> Error {
        Error::Registry {
            registry: "r".into(),
            status,
            what: "x".into(),
            body: String::new(),
        }
    }

    #[tokio::test]
    async fn retries_only_temporary_errors() {
        let calls = AtomicU32::new(0);
        let flaky = || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(status(503))
            } else {
                Ok(7)
            }
        };
        assert_eq!(with_retry(&network(4), "get", flaky).await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        for final_status in [400, 401, 403, 404] {
            calls.store(0, Ordering::SeqCst);
            let refused = || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(status(final_status))
            };
            assert!(with_retry(&network(4), "get", refused).await.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1, "HTTP {final_status}");
        }

        calls.store(0, Ordering::SeqCst);
        let denied = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::Unauthorized {
                registry: "r".into(),
                message: "no".into(),
            })
        };
        assert!(with_retry(&network(4), "get", denied).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let down = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(Error::Network {
                registry: "r".into(),
                message: "reset".into(),
                temporary: true,
            })
        };
        assert!(with_retry(&network(2), "get", down).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn too_many_requests_waits_at_least_a_second() {
        let mut budget = Budget::new(&network(10));
        for _ in 0..3 {
            let wait = budget.next_wait("get", &status(429)).unwrap();
            assert!(wait >= TOO_MANY_FLOOR, "{wait:?}");
        }
        let wait = Budget::new(&network(10))
            .next_wait("get", &status(503))
            .unwrap();
        assert!(
            wait < TOO_MANY_FLOOR,
            "a first 503 waits 0.1–0.2 s: {wait:?}"
        );
    }

    #[test]
    fn no_retry_past_the_deadline() {
        let mut budget = Budget::new(&NetworkSettings {
            retries: 100,
            deadline: 3,
            ..Default::default()
        });
        // Retries 1..4 wait 0.1–1.6 s in total; with 5 s waits after that the
        // 3 s deadline stops the loop long before 100 retries.
        let mut total = Duration::ZERO;
        let mut granted = 0;
        while let Some(w) = budget.next_wait("get", &status(502)) {
            total += w;
            granted += 1;
            // Simulate the wait having passed.
            budget.deadline -= w;
        }
        assert!((1..=6).contains(&granted), "{granted} retries");
        assert!(total <= Duration::from_secs(3), "{total:?}");
    }
}
