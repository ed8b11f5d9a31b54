//! The one place registry requests are retried: capped exponential backoff
//! with jitter for errors that say they are temporary (`Error::is_temporary`:
//! resets, timeouts, 408/429/5xx). 400/401/403/404 are final and never retried.

use std::future::Future;
use std::time::Duration;

use crate::config::NetworkSettings;
use crate::error::Result;

/// The first retry waits about this long; each further one twice as long.
const BASE: Duration = Duration::from_millis(200);
/// No single wait is longer than this.
const CAP: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds, fails for good, or `network.retries`
/// retries are used up; `op` names the request in the warning logged per retry.
pub async fn with_retry<T, F, Fut>(network: &NetworkSettings, op: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(e) if e.is_temporary() && retries < network.retries => {
                retries += 1;
                let wait = backoff(retries, rand::random::<f64>());
                tracing::warn!(
                    "{op}: {e} (retry {retries} of {} in {} ms)",
                    network.retries,
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
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
    use crate::error::Error;
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

    #[tokio::test]
    async fn retries_only_temporary_errors() {
        let calls = AtomicU32::new(0);
        let flaky = || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Error::Registry {
                    registry: "r".into(),
                    status: 503,
                    what: "x".into(),
                    body: String::new(),
                })
            } else {
                Ok(7)
            }
        };
        assert_eq!(with_retry(&network(4), "get", flaky).await.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

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
}
