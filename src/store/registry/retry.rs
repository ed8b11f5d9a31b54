//! The one retry policy for registry traffic: capped exponential backoff with
//! jitter for errors that say they are temporary (`Error::is_temporary`:
//! resets, refusals, timeouts, 408/429/5xx), 400/401/403/404 final and never
//! retried.
//!
//! A [`Budget`] bounds the retries of one request or, inside [`transfer`],
//! of one whole blob transfer: the source's download, the target's upload and
//! every small request between share it, so a flaky source and a flaky
//! target cost one budget, not one inside the other. A budget allows
//! `[network] retries` failures in a row without progress ([`Budget::progress`]:
//! bytes accepted or received start the count again) and no retry once
//! `[network] deadline` has passed since it was made.
//!
//! oci-client drops response headers from its errors, so a 429's
//! `Retry-After` is honoured only where archgate reads the response itself
//! (uploads); elsewhere a 429 waits at least [`TOO_MANY_FLOOR`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::NetworkSettings;
use crate::error::{Error, Result};

/// The first retry waits about this long; each further one twice as long.
const BASE: Duration = Duration::from_millis(200);
/// No single wait is longer than this.
const CAP: Duration = Duration::from_secs(5);
/// The least a 429 waits: a registry that says "too many" rarely means "in 100 ms".
const TOO_MANY_FLOOR: Duration = Duration::from_secs(1);
/// The longest `Retry-After` believed: a registry asking for an hour is down.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

tokio::task_local! {
    /// The budget of the blob transfer this task is part of.
    static TRANSFER: Budget;
}

/// The retry budget of one request or one blob transfer (shared by its clones).
#[derive(Debug, Clone)]
pub struct Budget(Arc<Mutex<State>>);

#[derive(Debug)]
struct State {
    retries: u32,
    /// Failures since the last progress.
    in_a_row: u32,
    /// Retries granted in all.
    granted: u32,
    deadline: Instant,
}

impl Budget {
    /// A budget of its own.
    pub fn new(network: &NetworkSettings) -> Self {
        Budget(Arc::new(Mutex::new(State {
            retries: network.retries,
            in_a_row: 0,
            granted: 0,
            deadline: Instant::now() + Duration::from_secs(network.deadline),
        })))
    }

    /// The budget of the transfer this task is in, else one of its own.
    pub fn current(network: &NetworkSettings) -> Self {
        TRANSFER
            .try_with(Budget::clone)
            .unwrap_or_else(|_| Budget::new(network))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters: still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes moved: the failures counted so far no longer count against `retries`.
    pub fn progress(&self) {
        self.state().in_a_row = 0;
    }

    /// Retries granted so far.
    pub fn granted(&self) -> u32 {
        self.state().granted
    }

    /// The wait before the next attempt after `err`, or `None` when `err` is
    /// final or the budget is spent. `asked`: what the registry asked for
    /// (`Retry-After`), honoured up to [`RETRY_AFTER_CAP`]. Logs the retry.
    pub fn next_wait(&self, op: &str, err: &Error, asked: Option<Duration>) -> Option<Duration> {
        let mut st = self.state();
        if !err.is_temporary() || st.in_a_row >= st.retries {
            return None;
        }
        let mut wait = backoff(st.in_a_row + 1, rand::random::<f64>());
        if matches!(err, Error::Registry { status: 429, .. }) {
            wait = wait.max(TOO_MANY_FLOOR);
        }
        if let Some(asked) = asked {
            wait = wait.max(asked.min(RETRY_AFTER_CAP));
        }
        if Instant::now() + wait > st.deadline {
            tracing::warn!("{op}: {err} (no retry: the network deadline has passed)");
            return None;
        }
        st.in_a_row += 1;
        st.granted += 1;
        tracing::warn!(
            "{op}: {err} (retry {} of {} in {} ms)",
            st.in_a_row,
            st.retries,
            wait.as_millis()
        );
        Some(wait)
    }

    /// Waits as `next_wait` says; false when there is to be no further attempt.
    pub async fn wait(&self, op: &str, err: &Error) -> bool {
        self.wait_asked(op, err, None).await
    }

    /// `wait`, honouring a `Retry-After` the registry sent.
    pub async fn wait_asked(&self, op: &str, err: &Error, asked: Option<Duration>) -> bool {
        match self.next_wait(op, err, asked) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                true
            }
            None => false,
        }
    }
}

/// Runs `work`, one blob transfer, with one budget for every request in it
/// (made from `network`; `None`, a local store, makes none). A transfer
/// inside a transfer keeps the outer budget.
pub async fn transfer<F: Future>(network: Option<&NetworkSettings>, work: F) -> F::Output {
    match network {
        Some(n) if TRANSFER.try_with(|_| ()).is_err() => TRANSFER.scope(Budget::new(n), work).await,
        _ => work.await,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the retry budget is
/// spent; `op` names the request in the warning logged per retry.
pub async fn with_retry<T, F, Fut>(network: &NetworkSettings, op: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let budget = Budget::current(network);
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
        let budget = Budget::new(&network(10));
        for _ in 0..3 {
            let wait = budget.next_wait("get", &status(429), None).unwrap();
            assert!(wait >= TOO_MANY_FLOOR, "{wait:?}");
        }
        let wait = Budget::new(&network(10))
            .next_wait("get", &status(503), None)
            .unwrap();
        assert!(
            wait < TOO_MANY_FLOOR,
            "a first 503 waits 0.1–0.2 s: {wait:?}"
        );
        let asked = Duration::from_secs(3);
        let wait = Budget::new(&network(10))
            .next_wait("get", &status(503), Some(asked))
            .unwrap();
        assert_eq!(wait, asked, "Retry-After is honoured");
        let wait = Budget::new(&network(10))
            .next_wait("get", &status(503), Some(Duration::from_secs(3600)))
            .unwrap();
        assert_eq!(wait, RETRY_AFTER_CAP, "but not an hour of it");
    }

    #[test]
    fn no_retry_past_the_deadline() {
        let budget = Budget::new(&NetworkSettings {
            retries: 100,
            deadline: 3,
            ..Default::default()
        });
        // Retries 1..4 wait 0.1–1.6 s in total; with 5 s waits after that the
        // 3 s deadline stops the loop long before 100 retries.
        let mut total = Duration::ZERO;
        let mut granted = 0;
        while let Some(w) = budget.next_wait("get", &status(502), None) {
            total += w;
            granted += 1;
            // Simulate the wait having passed.
            budget.state().deadline -= w;
        }
        assert!((1..=6).contains(&granted), "{granted} retries");
        assert!(total <= Duration::from_secs(3), "{total:?}");
    }

    #[test]
    fn progress_restarts_the_count_but_not_the_deadline() {
        let budget = Budget::new(&network(2));
        let err = status(502);
        assert!(budget.next_wait("patch", &err, None).is_some());
        assert!(budget.next_wait("patch", &err, None).is_some());
        assert!(
            budget.next_wait("patch", &err, None).is_none(),
            "2 in a row"
        );
        budget.progress();
        assert!(
            budget.next_wait("patch", &err, None).is_some(),
            "after progress"
        );
        assert_eq!(budget.granted(), 3);
        budget.state().deadline = Instant::now();
        budget.progress();
        assert!(
            budget.next_wait("patch", &err, None).is_none(),
            "the deadline holds"
        );
    }

    #[tokio::test]
    async fn a_transfer_shares_one_budget_and_nests() {
        let n = network(3);
        let outside = Budget::current(&n);
        transfer(Some(&n), async {
            let a = Budget::current(&n);
            let b = Budget::current(&n);
            assert!(a.next_wait("get blob", &status(503), None).is_some());
            assert_eq!(b.granted(), 1, "the upload sees the download's retry");
            transfer(Some(&n), async {
                assert_eq!(
                    Budget::current(&n).granted(),
                    1,
                    "an inner transfer keeps the outer budget"
                );
            })
            .await;
        })
        .await;
        assert_eq!(
            outside.granted(),
            0,
            "outside the transfer: a budget of its own"
        );
        assert_eq!(Budget::current(&n).granted(), 0);
    }
}
