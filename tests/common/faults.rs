//! A fault-injecting HTTP proxy for the real registry: it listens on its own
//! 127.0.0.1 port, forwards every request to the registry (keeping `Host`, so
//! the upload URLs the registry hands out point back at the proxy), and fails
//! a set fraction of requests the ways networks and overloaded registries do:
//!
//! - an HTTP 500, 502, 503 or 504, or a 429 with `Retry-After: 1`;
//! - the connection closed before any answer;
//! - an upload cut midway (part of the request body read, then the connection closed);
//! - a response cut midway (headers and part of the body sent, then closed);
//! - the answer lost: the registry did the work, the client hears nothing;
//! - a stall longer than the client's read timeout, then a close.
//!
//! Exactly the set fraction of requests fails (which ones, and how, comes
//! from a seeded generator); requests not failed may still be delayed
//! (50–400 ms), and every fault is counted so that a test can show
//! faults really happened.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, BodyStream, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Body = BoxBody<Bytes, std::io::Error>;

/// One way a request is failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Status(u16),
    Reset,
    CutUpload,
    CutDownload,
    LostAnswer,
    Stall,
}

/// Failures chosen among, with weights (a stall costs the client a timeout: rarer).
const FAULTS: &[(Fault, u32)] = &[
    (Fault::Status(500), 1),
    (Fault::Status(502), 2),
    (Fault::Status(503), 2),
    (Fault::Status(504), 1),
    (Fault::Status(429), 2),
    (Fault::Reset, 3),
    (Fault::CutUpload, 2),
    (Fault::CutDownload, 3),
    (Fault::LostAnswer, 2),
    (Fault::Stall, 1),
];

/// How long a stall lasts: longer than the `[network] timeout` the tests set.
pub const STALL: Duration = Duration::from_secs(4);
/// The read timeout (seconds) a client of this proxy should use so stalls end in a timeout.
pub const CLIENT_TIMEOUT: u64 = 2;

struct State {
    upstream: String,
    client: reqwest::Client,
    /// Failure rate in parts per million.
    rate: AtomicU32,
    rng: Mutex<StdRng>,
    /// Failures owed, in parts per million: each request adds `rate`, and a
    /// request is failed when a whole failure is owed, so that exactly the set
    /// fraction fails (a random start spreads them differently per seed).
    owed: AtomicU32,
    requests: AtomicU64,
    faults: Mutex<BTreeMap<Fault, u64>>,
    /// `Some(fault)`: instead of the rate, `fault` for the first blob
    /// transfer of each path (downloads for `CutDownload`, uploads otherwise).
    once_per_blob: Option<Fault>,
    seen: Mutex<std::collections::HashSet<String>>,
    /// Requests that asked for a byte range (a resumed download).
    ranged: AtomicU64,
    /// Upload body bytes the proxy read from clients (cut uploads included).
    upload_bytes: AtomicU64,
    /// `POST …/blobs/uploads/` (new upload sessions) and `GET …/blobs/uploads/…`
    /// (a client asking where an upload stands).
    upload_sessions: AtomicU64,
    upload_status: AtomicU64,
}

/// What the proxy did so far.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    pub ranged: u64,
    pub faults: BTreeMap<Fault, u64>,
    /// Upload body bytes received from clients, including those of cut uploads.
    pub upload_bytes: u64,
    /// Upload sessions opened (`POST …/blobs/uploads/`).
    pub upload_sessions: u64,
    /// Upload status requests (`GET …/blobs/uploads/<id>`): resumptions asked for.
    pub upload_status: u64,
}

impl Stats {
    pub fn failed(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// A running proxy; stopped when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT`) failing `rate` (0.0–1.0) of requests.
    pub fn start(upstream: &str, rate: f64, seed: u64) -> Self {
        Self::start_with(upstream, rate, seed, None)
    }

    /// A proxy that fails the first transfer of every blob with `fault`:
    /// `CutDownload` cuts each blob download once, `CutUpload` each upload
    /// request once: every chunk (by where its `Content-Range` ends) and the
    /// final `PUT` (by its digest), whatever session they belong to.
    pub fn once_per_blob(upstream: &str, fault: Fault) -> Self {
        Self::start_with(upstream, 0.0, 0, Some(fault))
    }

    fn start_with(upstream: &str, rate: f64, seed: u64, once_per_blob: Option<Fault>) -> Self {
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            rate: AtomicU32::new(0),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            owed: AtomicU32::new(StdRng::seed_from_u64(seed).random_range(0..1_000_000)),
            requests: AtomicU64::new(0),
            faults: Mutex::default(),
            once_per_blob,
            seen: Mutex::default(),
            ranged: AtomicU64::new(0),
            upload_bytes: AtomicU64::new(0),
            upload_sessions: AtomicU64::new(0),
            upload_status: AtomicU64::new(0),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(serve(std_listener, serving, stopped));
        });
        let proxy = FaultProxy {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        };
        proxy.set_rate(rate);
        proxy
    }

    /// `127.0.0.1:PORT`: the registry host to name in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1_000_000.0) as u32;
        self.state.rate.store(ppm, Ordering::SeqCst);
    }

    /// Counts so far; `reset` starts them again.
    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.state.requests.load(Ordering::SeqCst),
            ranged: self.state.ranged.load(Ordering::SeqCst),
            faults: self.state.faults.lock().unwrap().clone(),
            upload_bytes: self.state.upload_bytes.load(Ordering::SeqCst),
            upload_sessions: self.state.upload_sessions.load(Ordering::SeqCst),
            upload_status: self.state.upload_status.load(Ordering::SeqCst),
        }
    }

    pub fn reset_stats(&self) {
        self.state.requests.store(0, Ordering::SeqCst);
        self.state.faults.lock().unwrap().clear();
        for n in [
            &self.state.ranged,
            &self.state.upload_bytes,
            &self.state.upload_sessions,
            &self.state.upload_status,
        ] {
            n.store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("proxy listener");
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, Arc::clone(&state)));
            // A connection ended by an injected fault is an error here: expected.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl State {
    /// The fault for the next request, if any, and a delay for the others.
    fn pick(&self, req: &Request<Incoming>, has_body: bool) -> (Option<Fault>, Duration) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if req.headers().contains_key(hyper::header::RANGE) {
            self.ranged.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(fault) = self.once_per_blob {
            let path = req.uri().path();
            let download = req.method() == hyper::Method::GET && path.contains("/blobs/sha256:");
            let upload = has_body && path.contains("/blobs/uploads/");
            let applies = if fault == Fault::CutDownload {
                download
            } else {
                upload
            };
            // An upload's URL is new per attempt and per chunk; the final
            // PUT's digest is not, nor a chunk's range.
            let key = if download {
                path.to_string()
            } else {
                let query = req.uri().query().unwrap_or_default();
                let range = req
                    .headers()
                    .get(hyper::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok());
                // A chunk by where it ends: resumed from wherever the registry
                // stood after its cut, it ends at the same byte and is not cut again.
                let end = range.map(|r| r.rsplit('-').next().unwrap_or(r));
                match query.split('&').find(|kv| kv.starts_with("digest=")) {
                    Some(digest) => digest.to_string(),
                    None => format!("{} {}", req.method(), end.unwrap_or(query)),
                }
            };
            if applies && self.seen.lock().unwrap().insert(key) {
                *self.faults.lock().unwrap().entry(fault).or_default() += 1;
                return (Some(fault), Duration::ZERO);
            }
            return (None, Duration::ZERO);
        }
        let rate = self.rate.load(Ordering::SeqCst);
        let mut rng = self.rng.lock().unwrap();
        let owed = self.owed.load(Ordering::SeqCst) + rate;
        let fail = owed >= 1_000_000;
        self.owed
            .store(if fail { owed - 1_000_000 } else { owed }, Ordering::SeqCst);
        if !fail {
            let delay = if rng.random_bool(0.1) {
                Duration::from_millis(rng.random_range(50..400))
            } else {
                Duration::ZERO
            };
            return (None, delay);
        }
        let total: u32 = FAULTS.iter().map(|(_, w)| w).sum();
        let mut n = rng.random_range(0..total);
        let mut fault = Fault::Reset;
        for (f, w) in FAULTS {
            if n < *w {
                fault = *f;
                break;
            }
            n -= w;
        }
        // Only a request with a body can be cut while uploading.
        if fault == Fault::CutUpload && !has_body {
            fault = Fault::Reset;
        }
        *self.faults.lock().unwrap().entry(fault).or_default() += 1;
        (Some(fault), Duration::ZERO)
    }
}

fn injected(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        format!("injected: {what}"),
    )
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Body>, std::io::Error> {
    let has_body = matches!(req.method().as_str(), "PUT" | "PATCH" | "POST")
        && req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .is_none_or(|v| v != "0");
    let upload = req.uri().path().contains("/blobs/uploads/");
    if upload {
        let uploads_root = req.uri().path().ends_with("/blobs/uploads/");
        match *req.method() {
            hyper::Method::POST if uploads_root => {
                state.upload_sessions.fetch_add(1, Ordering::SeqCst);
            }
            hyper::Method::GET if !uploads_root => {
                state.upload_status.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
    let (fault, delay) = state.pick(&req, has_body);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Status(code)) => {
            // distribution's error codes for these statuses.
            let name = if code == 429 {
                "TOOMANYREQUESTS"
            } else {
                "UNAVAILABLE"
            };
            let mut resp = Response::new(full(format!(
                "{{\"errors\":[{{\"code\":\"{name}\",\"message\":\"injected {code}\"}}]}}"
            )));
            *resp.status_mut() = StatusCode::from_u16(code).unwrap();
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            if code == 429 {
                resp.headers_mut()
                    .insert("retry-after", "1".parse().unwrap());
            }
            return Ok(resp);
        }
        Some(Fault::Reset) => return Err(injected("reset before answering")),
        Some(Fault::Stall) => {
            tokio::time::sleep(STALL).await;
            return Err(injected("stall"));
        }
        Some(Fault::CutUpload) => {
            // Read some of the body (up to 64 KiB), then hang up.
            let mut body = req.into_body();
            let mut read = 0usize;
            while read < 64 * 1024 {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            if upload {
                state.upload_bytes.fetch_add(read as u64, Ordering::SeqCst);
            }
            return Err(injected("upload cut"));
        }
        _ => {}
    }
    let resp = forward(req, &state, upload).await?;
    match fault {
        Some(Fault::LostAnswer) => {
            // The registry did the work; drain its answer and say nothing.
            let _ = resp.bytes().await;
            Err(injected("answer lost"))
        }
        Some(Fault::CutDownload) => {
            let len = resp.content_length().unwrap_or(0);
            let keep = {
                let mut rng = state.rng.lock().unwrap();
                match (len, state.once_per_blob) {
                    (0 | 1, _) => 0,
                    (_, Some(_)) => len / 2,
                    _ => rng.random_range(0..len),
                }
            };
            Ok(respond(resp, Some(keep)))
        }
        _ => Ok(respond(resp, None)),
    }
}

/// Sends `req` on to the registry, streaming the body.
async fn forward(
    req: Request<Incoming>,
    state: &Arc<State>,
    upload: bool,
) -> Result<reqwest::Response, std::io::Error> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://{}{path}", state.upstream);
    let mut out = state.client.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name.as_str()) {
            out = out.header(name, value);
        }
    }
    let counter = upload.then(|| Arc::clone(state));
    let stream = BodyStream::new(body)
        .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) })
        .map_ok(move |data: Bytes| {
            if let Some(s) = &counter {
                s.upload_bytes
                    .fetch_add(data.len() as u64, Ordering::SeqCst);
            }
            data
        })
        .map_err(std::io::Error::other);
    out.body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| std::io::Error::other(format!("upstream: {e}")))
}

/// The registry's answer, its body streamed back; cut after `cut` bytes when given.
fn respond(resp: reqwest::Response, cut: Option<u64>) -> Response<Body> {
    let mut out = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if !is_hop_by_hop(name.as_str()) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    let mut left = cut;
    let stream = resp
        .bytes_stream()
        .map_err(std::io::Error::other)
        .map(move |chunk| {
            let chunk = chunk?;
            match left.as_mut() {
                None => Ok(chunk),
                Some(0) => Err(injected("download cut")),
                Some(n) => {
                    let take = (*n).min(chunk.len() as u64);
                    *n -= take;
                    if take < chunk.len() as u64 {
                        // Send what is allowed now; the next poll fails.
                        Ok(chunk.slice(..take as usize))
                    } else {
                        Ok(chunk)
                    }
                }
            }
        })
        .chain(futures_util::stream::once(async move {
            match cut {
                Some(_) => Err(injected("download cut")),
                None => Ok(Bytes::new()),
            }
        }))
        .map_ok(Frame::data);
    out.body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("response")
}

fn full(text: String) -> Body {
    http_body_util::Full::new(Bytes::from(text))
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
    )
}
