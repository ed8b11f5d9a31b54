//! Blob uploads that resume where they broke off, over the distribution
//! API's chunked upload (one session: `POST`, `PATCH` per chunk, `PUT` with
//! the last chunk and the digest).
//!
//! When a step fails, the upload asks the registry where the session stands
//! (`GET` on its `Location`: `204` with `Range: 0-N`) and carries on from byte
//! `N + 1`, re-sending only what the registry does not hold; a new session is
//! opened only when the old one is gone (404, or refused as invalid: a
//! distribution registry invalidates a session whose URL state no longer
//! matches what it holds, which is what a half-received `PATCH` leaves). A
//! lost answer to the last `PUT` is found out by asking whether the blob is
//! there. Every retry draws on the transfer's one budget (`retry::transfer`).
//!
//! Requests go through archgate's own reqwest client (oci-client keeps its
//! upload steps private), built from the same `[registries]` entry. The
//! bearer token oci-client obtained at connect is sent to the registry's own
//! host only, and renewed once on a 401.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use oci_client::RegistryOperation;
use oci_client::secrets::RegistryAuth;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use tokio::io::AsyncReadExt;

use super::RegistryStore;
use super::retry::Budget;
use crate::error::{Error, Result};
use crate::image::Digest;
use crate::image::digest::VerifyingReader;
use crate::store::{BlobPut, BlobReader, Reopen, Store};

/// Bytes per `PATCH`: what a failed step costs to send again, and what one
/// upload holds in memory. 5 MiB is the smallest part some registries (ECR)
/// accept for any chunk but the last.
pub const CHUNK: usize = 5 << 20;

/// A failed request: the error, and how long the registry asked us to wait.
struct Failed {
    error: Error,
    retry_after: Option<Duration>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            retry_after: None,
        }
    }
}

/// Where a session stands after asking the registry.
enum Standing {
    /// It holds bytes `0..offset`; go on at this URL.
    At(Url, u64),
    /// The session is gone: start a new one.
    Gone,
}

/// Counts for the log line of an upload that needed them.
#[derive(Debug, Default)]
struct Counts {
    sessions: u32,
    resumed: u32,
    sent: u64,
}

/// What every request of one upload needs (shared while a request is out;
/// the source, which is not `Sync`, stays in [`Upload`]).
struct Steps<'a> {
    store: &'a RegistryStore,
    digest: &'a Digest,
    size: u64,
    what: String,
    budget: Budget,
}

/// One blob upload.
pub struct Upload<'a> {
    steps: Steps<'a>,
    /// The session's URL (with the registry's state in it), once opened.
    location: Option<Url>,
    /// Bytes the registry holds of this session.
    offset: u64,
    /// The source, verified as read, and how far it has been read.
    source: Option<(BlobReader, u64)>,
    /// The last chunk read, by its start offset: sent again without re-reading.
    chunk: Option<(u64, Bytes)>,
    counts: Counts,
}

impl<'a> Upload<'a> {
    pub fn new(store: &'a RegistryStore, digest: &'a Digest, size: u64) -> Self {
        Upload {
            steps: Steps {
                store,
                digest,
                size,
                what: format!("blob {digest} for {}", store.name()),
                budget: Budget::current(&store.network),
            },
            location: None,
            offset: 0,
            source: None,
            chunk: None,
            counts: Counts::default(),
        }
    }

    /// Uploads the bytes `open` reads (opened again only when a step must go
    /// back further than the chunk in hand).
    pub async fn run(mut self, open: &mut Reopen<'_>) -> Result<BlobPut> {
        loop {
            let st = &self.steps;
            let Some(location) = self.location.clone() else {
                match st.start().await {
                    Ok(url) => {
                        self.location = Some(url);
                        self.offset = 0;
                        self.counts.sessions += 1;
                    }
                    Err(f) => st.again("start upload", f).await?,
                }
                continue;
            };
            let size = st.size;
            let start = self.offset;
            // Resumed inside the chunk in hand: send the rest of it.
            let end = match &self.chunk {
                Some((at, c)) if *at <= start && start < at + c.len() as u64 => at + c.len() as u64,
                _ => (start + CHUNK as u64).min(size),
            };
            let last = end == size;
            let body = self.bytes(start, end, open).await?;
            self.counts.sent += body.len() as u64;
            let st = &self.steps;
            let step = if last {
                st.finish(&location, body).await.map(|()| None)
            } else {
                st.patch(&location, start, body).await.map(Some)
            };
            match step {
                Ok(None) => return Ok(self.done()),
                Ok(Some((url, offset))) => {
                    self.location = Some(url);
                    self.offset = offset;
                    st.budget.progress();
                }
                Err(f) => {
                    let op = if last {
                        format!("complete upload of {}", st.digest)
                    } else {
                        format!("upload blob {} (bytes {start}-{})", st.digest, end - 1)
                    };
                    st.again(&op, f).await?;
                    // A lost answer to the last PUT: the blob is in.
                    if last && st.store.blob_exists(st.digest).await? {
                        return Ok(self.done());
                    }
                    self.recover(&location).await?;
                }
            }
        }
    }

    /// Asks where the session stands, until it answers or the budget is spent.
    async fn recover(&mut self, location: &Url) -> Result<()> {
        loop {
            match self.steps.status(location).await {
                Ok(Standing::At(url, offset)) => {
                    self.location = Some(url);
                    self.offset = offset;
                    self.counts.resumed += 1;
                    tracing::debug!("{}: resuming at byte {offset}", self.steps.what);
                    return Ok(());
                }
                Ok(Standing::Gone) => {
                    tracing::debug!(
                        "{}: the upload session is gone, starting a new one",
                        self.steps.what
                    );
                    self.location = None;
                    self.offset = 0;
                    return Ok(());
                }
                Err(f) => self.steps.again("upload status", f).await?,
            }
        }
    }

    fn done(self) -> BlobPut {
        let Counts {
            sessions,
            resumed,
            sent,
        } = self.counts;
        if resumed > 0 || sessions > 1 {
            tracing::info!(
                "{}: uploaded with {resumed} resumption(s) and {} new session(s), {} byte(s) sent again",
                self.steps.what,
                sessions - 1,
                sent.saturating_sub(self.steps.size)
            );
        }
        BlobPut::Written
    }

    /// Bytes `start..end` of the blob: from the chunk in hand, or read from
    /// the source (opened again from the start when it is past `start`).
    async fn bytes(&mut self, start: u64, end: u64, open: &mut Reopen<'_>) -> Result<Bytes> {
        if let Some((at, chunk)) = &self.chunk
            && *at <= start
            && end <= at + chunk.len() as u64
        {
            return Ok(chunk.slice((start - at) as usize..(end - at) as usize));
        }
        let (size, what) = (self.steps.size, self.steps.what.clone());
        if self.source.as_ref().is_none_or(|(_, pos)| *pos > start) {
            let reader = open().await?;
            let verified =
                VerifyingReader::new(reader, self.steps.digest.clone(), Some(size), what.clone());
            self.source = Some((Box::pin(verified), 0));
        }
        let Some((reader, pos)) = self.source.as_mut() else {
            return Err(Error::Internal(format!("{what}: no source")));
        };
        let ctx = &self.steps.store.ctx;
        let read_err = |e: std::io::Error| ctx.from_io(e, &what);
        // Skip what the registry already holds (a resumption further on than the chunk in hand).
        let mut scratch = vec![0u8; 64 * 1024];
        while *pos < start {
            let want = ((start - *pos) as usize).min(scratch.len());
            let n = reader.read(&mut scratch[..want]).await.map_err(read_err)?;
            if n == 0 {
                return Err(short(&what, *pos, size));
            }
            *pos += n as u64;
        }
        let mut buf = BytesMut::zeroed((end - start) as usize);
        let mut filled = 0;
        while filled < buf.len() {
            let n = reader.read(&mut buf[filled..]).await.map_err(read_err)?;
            if n == 0 {
                return Err(short(&what, *pos, size));
            }
            filled += n;
            *pos += n as u64;
        }
        if end == size {
            // The end of the source: the verifier checks digest and size here,
            // before the registry is asked to commit anything.
            let n = reader.read(&mut scratch).await.map_err(read_err)?;
            if n > 0 {
                return Err(Error::malformed(
                    &what,
                    format!("the source has more than the {size} bytes named"),
                ));
            }
        }
        let bytes = buf.freeze();
        self.chunk = Some((start, bytes.clone()));
        Ok(bytes)
    }
}

impl Steps<'_> {
    /// Waits before the next attempt, or gives up with the error.
    async fn again(&self, op: &str, f: Failed) -> Result<()> {
        if self.budget.wait_asked(op, &f.error, f.retry_after).await {
            Ok(())
        } else {
            Err(f.error)
        }
    }

    /// `POST …/blobs/uploads/`: a new session's URL.
    async fn start(&self) -> std::result::Result<Url, Failed> {
        let url = self
            .store
            .registry_url(&format!("v2/{}/blobs/uploads/", self.store.repository))?;
        let resp = self
            .store
            .send(Method::POST, &url, None, &self.what, |r| {
                r.header(CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.protocol(format!(
                "HTTP {} to the upload's POST (202 expected)",
                resp.status().as_u16()
            )));
        }
        self.location_of(&resp, &url)
    }

    /// `PATCH` of bytes `start..`: the next URL and what the registry holds.
    async fn patch(
        &self,
        location: &Url,
        start: u64,
        body: Bytes,
    ) -> std::result::Result<(Url, u64), Failed> {
        let end = start + body.len() as u64;
        let range = format!("{start}-{}", end - 1);
        let resp = self
            .store
            .send(Method::PATCH, location, Some(body), &self.what, |r| {
                r.header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, range.as_str())
            })
            .await?;
        let next = self.location_of(&resp, location)?;
        // A registry that leaves `Range` out took the whole chunk.
        let holds = held(resp.headers()).unwrap_or(end);
        if holds != end {
            return Err(self.protocol(format!(
                "the registry holds {holds} bytes after a PATCH of bytes {range}"
            )));
        }
        Ok((next, holds))
    }

    /// `PUT ?digest=` with the last bytes: the registry checks and commits.
    async fn finish(&self, location: &Url, body: Bytes) -> std::result::Result<(), Failed> {
        let mut url = location.clone();
        url.query_pairs_mut()
            .append_pair("digest", self.digest.as_str());
        let resp = self
            .store
            .send(Method::PUT, &url, Some(body), &self.what, |r| {
                r.header(CONTENT_TYPE, "application/octet-stream")
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.protocol(format!(
                "HTTP {} to the upload's PUT (201 expected)",
                resp.status().as_u16()
            )));
        }
        Ok(())
    }

    /// `GET` on the session: where it stands, or gone.
    async fn status(&self, location: &Url) -> std::result::Result<Standing, Failed> {
        let resp = match self
            .store
            .send(Method::GET, location, None, &self.what, |r| r)
            .await
        {
            Ok(resp) => resp,
            // 404: unknown; 400: distribution refuses (and cancels) a session
            // whose URL state no longer matches what it holds; 416: no range.
            Err(Failed {
                error: Error::NotFound { .. },
                ..
            }) => return Ok(Standing::Gone),
            Err(Failed {
                error: Error::Registry {
                    status: 400 | 416, ..
                },
                ..
            }) => return Ok(Standing::Gone),
            Err(f) => return Err(f),
        };
        // `0-0` is what distribution says both for nothing and for one byte:
        // only a longer range says for certain how much it holds.
        match held(resp.headers()) {
            Some(n) if n > 1 && n <= self.size => {
                Ok(Standing::At(self.location_of(&resp, location)?, n))
            }
            _ => Ok(Standing::Gone),
        }
    }

    /// The `Location` of an answer, resolved against the request's URL.
    fn location_of(
        &self,
        resp: &reqwest::Response,
        base: &Url,
    ) -> std::result::Result<Url, Failed> {
        let Some(value) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
            return Err(self.protocol("no Location in the upload's answer".into()));
        };
        base.join(value)
            .map_err(|e| self.protocol(format!("an unusable upload Location: {e}")))
    }

    fn protocol(&self, message: String) -> Failed {
        Failed::from(Error::Network {
            registry: self.store.host.clone(),
            message: format!(
                "the registry broke the distribution protocol on {}: {message}",
                self.what
            ),
            temporary: false,
        })
    }
}

/// How many bytes a `Range: 0-N` answer says the registry holds (`N + 1`).
fn held(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let range = headers.get(RANGE)?.to_str().ok()?;
    let (first, last) = range.trim().trim_start_matches("bytes=").split_once('-')?;
    (first == "0").then_some(())?;
    last.parse::<u64>().ok().map(|n| n + 1)
}

fn short(what: &str, got: u64, size: u64) -> Error {
    Error::malformed(
        what,
        format!("the source ended after {got} of the {size} bytes named"),
    )
}

impl RegistryStore {
    /// A URL on the registry itself: `PATH` under `http(s)://HOST/`.
    fn registry_url(&self, path: &str) -> Result<Url> {
        let scheme = if self.ctx.http { "http" } else { "https" };
        Url::parse(&format!("{scheme}://{}/{path}", self.resolved_host)).map_err(|e| {
            Error::Config(format!(
                "{}: not a usable registry address ({e})",
                self.host
            ))
        })
    }

    /// Whether `url` is on the registry's own host and port (credentials go nowhere else).
    fn on_registry(&self, url: &Url) -> bool {
        self.registry_url("").is_ok_and(|own| {
            own.host_str() == url.host_str()
                && own.port_or_known_default() == url.port_or_known_default()
        })
    }

    /// Sends one request, with credentials when it goes to the registry
    /// itself; a 401 with a token renews the token once. Any 2xx is success;
    /// anything else is the mapped error with the `Retry-After` asked for.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<Bytes>,
        what: &str,
        headers: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> std::result::Result<reqwest::Response, Failed> {
        let mut renewed = false;
        loop {
            let mut req = headers(self.http.request(method.clone(), url.clone()));
            req = match &body {
                Some(b) => req.header(CONTENT_LENGTH, b.len()).body(b.clone()),
                None => req,
            };
            if self.on_registry(url) {
                req = match (self.push_token.lock().await.clone(), &self.auth) {
                    (Some(token), _) => req.bearer_auth(token),
                    (None, RegistryAuth::Basic(user, password)) => {
                        req.basic_auth(user, Some(password))
                    }
                    (None, _) => req,
                };
            }
            let resp = req
                .send()
                .await
                .map_err(|e| Failed::from(self.ctx.from_reqwest(&e, what)))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            if status == StatusCode::UNAUTHORIZED
                && !renewed
                && self.push_token.lock().await.is_some()
            {
                renewed = true;
                self.renew_push_token().await?;
                continue;
            }
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp.text().await.unwrap_or_default();
            return Err(Failed {
                error: self.ctx.status(status.as_u16(), &text, what),
                retry_after,
            });
        }
    }

    /// A new push token (the old one expired midway through a long upload).
    async fn renew_push_token(&self) -> Result<()> {
        let token = self
            .client
            .auth(&self.repo_ref(), &self.auth, RegistryOperation::Push)
            .await
            .map_err(|e| self.ctx.map(e, "authentication"))?;
        *self.push_token.lock().await = token;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(range: Option<&str>) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        if let Some(r) = range {
            h.insert(RANGE, r.parse().unwrap());
        }
        h
    }

    #[test]
    fn range_answers_say_how_much_is_held() {
        assert_eq!(held(&answer(Some("0-5242879"))), Some(5 << 20));
        assert_eq!(held(&answer(Some("bytes=0-9"))), Some(10));
        assert_eq!(held(&answer(Some("0-0"))), Some(1));
        assert_eq!(held(&answer(Some("5-9"))), None, "not from the start");
        assert_eq!(held(&answer(Some("0-x"))), None);
        assert_eq!(held(&answer(None)), None);
    }
}
