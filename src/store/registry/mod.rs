//! The registry store: one repository of a registry, through oci-client, over
//! the OCI distribution API.
//!
//! - `client`: the per-host oci-client (HTTP or HTTPS, CA file, insecure, timeouts);
//! - `credentials`: where the user name and password come from (settings, CI,
//!   `DOCKER_AUTH_CONFIG`, Docker's `config.json` and credential helpers);
//! - `errors`: oci-client/reqwest errors → archgate errors naming the registry and the way out;
//! - `retry`: the one retry policy, per request or per blob transfer;
//! - `upload`: blob uploads that resume where they broke off.
//!
//! Manifests travel as exact bytes (`pull_manifest_raw`/`push_manifest_raw`)
//! with all four manifest media types in `Accept`; blobs stream down (resuming
//! with `Range`) and go up in chunks (resuming from the registry's `Range`),
//! verified against their digest while read.

pub mod client;
pub mod credentials;
pub mod errors;
pub mod retry;
pub mod upload;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use reqwest::header::HeaderValue;
use tokio_util::io::StreamReader;

use super::{BlobPut, BlobReader, Reopen, Store};
use crate::config::{NetworkSettings, Settings};
use crate::error::{Error, Result};
use crate::image::digest::VerifyingReader;
use crate::image::manifest::Referrer;
use crate::image::media::ACCEPTED_MANIFESTS;
use crate::image::{Descriptor, Digest, ImageRef, RawManifest, Selector};

use errors::Context;
use retry::{Budget, with_retry};

/// The digest of zero bytes: a blob any repository may or may not have.
const EMPTY_BLOB: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How many tags a "tag not found" message lists.
const TAGS_SHOWN: usize = 10;

/// A repository in a remote registry.
pub struct RegistryStore {
    client: Client,
    /// archgate's own requests (upload steps), with the same TLS settings.
    http: reqwest::Client,
    auth: RegistryAuth,
    /// The push token oci-client obtained, for archgate's own requests (`None`:
    /// basic credentials or none).
    push_token: tokio::sync::Mutex<Option<String>>,
    /// `host[:port]` as written in the image reference.
    host: String,
    /// The host requests go to (`index.docker.io` for `docker.io`).
    resolved_host: String,
    repository: String,
    network: NetworkSettings,
    ctx: Context,
    /// The token cache holds the empty credential of an open registry.
    open_registry: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RegistryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryStore")
            .field("host", &self.host)
            .field("repository", &self.repository)
            .field("user", &self.ctx.user)
            .finish()
    }
}

impl RegistryStore {
    /// Connects to `image`'s repository: builds the client, finds credentials
    /// and authenticates for pull (or push, when `for_write`), so that an
    /// unreachable registry, a TLS problem or a token refusal shows up here.
    pub async fn connect(image: &ImageRef, settings: &Settings, for_write: bool) -> Result<Self> {
        let host = image.registry.clone();
        let registry = settings.registries.get(&host).cloned().unwrap_or_default();
        let probe_ref =
            Reference::with_tag(host.clone(), image.repository.clone(), "latest".into());
        let new_client = || {
            client::build(
                &image.registry,
                probe_ref.resolve_registry(),
                &registry,
                &settings.network,
            )
        };
        let client = new_client()?;
        let http = client::build_http(&image.registry, &registry, &settings.network)?;
        let creds = credentials::resolve(&host, settings).await?;
        if let Some(c) = &creds {
            tracing::debug!(registry = %host, user = %c.username, source = %c.source, "using credentials");
        }
        let ctx = Context {
            host: host.clone(),
            user: creds
                .as_ref()
                .map(|c| (c.username.clone(), c.source.to_string())),
            secret: creds.as_ref().map(|c| c.password.clone()),
            http: registry.http,
            timeout: settings.network.timeout,
            connect_timeout: settings.network.connect_timeout,
        };
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.username, c.password.expose().to_string()),
            None => RegistryAuth::Anonymous,
        };
        let store = RegistryStore {
            client,
            http,
            auth,
            push_token: Default::default(),
            resolved_host: probe_ref.resolve_registry().to_string(),
            host,
            repository: image.repository.clone(),
            network: settings.network.clone(),
            ctx,
            open_registry: Default::default(),
        };
        match store.authenticate(&probe_ref, for_write, true).await {
            Ok(()) => Ok(store),
            // `GET /v2/` failed without a challenge (a 5xx from a proxy or a
            // restarting registry looks like "no authentication"), and then
            // the registry did want a token: start again with a new client,
            // whose token cache holds nothing, and believe no "open registry".
            Err(Error::Unauthorized { .. })
                if matches!(store.auth, RegistryAuth::Anonymous) && store.remembered_open() =>
            {
                tracing::debug!(registry = %store.host, "the registry wants a token after all: authenticating again");
                let store = RegistryStore {
                    client: new_client()?,
                    open_registry: Default::default(),
                    ..store
                };
                store.authenticate(&probe_ref, for_write, false).await?;
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `remember_open_registry` put its empty credential in the token cache.
    fn remembered_open(&self) -> bool {
        self.open_registry.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The explicit first request: `GET /v2/` and, for token registries, the
    /// token. `remember_open`: an anonymous answer without a challenge marks
    /// the registry open (see `remember_open_registry`).
    async fn authenticate(
        &self,
        reference: &Reference,
        for_write: bool,
        remember_open: bool,
    ) -> Result<()> {
        let op = if for_write {
            RegistryOperation::Push
        } else {
            RegistryOperation::Pull
        };
        let result = with_retry(&self.network, "authenticate", || async {
            self.client
                .auth(reference, &self.auth, op)
                .await
                .map_err(|e| self.ctx.map(e, "authentication"))
        })
        .await;
        let result = match result {
            Ok(token) => {
                if for_write {
                    *self.push_token.lock().await = token.clone();
                }
                if remember_open && token.is_none() && matches!(self.auth, RegistryAuth::Anonymous)
                {
                    self.remember_open_registry().await;
                }
                self.check_access().await
            }
            Err(e) => Err(e),
        };
        match result {
            Err(Error::Network { message, .. })
                if !self.ctx.http && message.starts_with(errors::TLS_HANDSHAKE_FAILED) =>
            {
                // Not every plain-HTTP answer looks like one to rustls: ask over HTTP.
                if client::answers_plain_http(&self.host, self.network.connect_timeout).await {
                    Err(self.ctx.plain_http())
                } else {
                    Err(self.ctx.network_again(message))
                }
            }
            other => other,
        }
    }

    /// An open registry (no token from `/v2/` for an anonymous user) gives
    /// oci-client no token to cache, so it would ask `GET /v2/` again before
    /// every request — twice the requests and a round trip each. An empty
    /// basic credential in its token cache stops that: a registry without
    /// authentication ignores the header, and one that wants credentials
    /// refuses `check_access` right after, as it would refuse no header.
    async fn remember_open_registry(&self) {
        self.open_registry
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let reference = self.repo_ref();
        for op in [RegistryOperation::Pull, RegistryOperation::Push] {
            self.client
                .tokens
                .insert(
                    &reference,
                    op,
                    oci_client::token_cache::RegistryTokenType::Basic(String::new(), String::new()),
                )
                .await;
        }
    }

    /// `auth` does not check basic credentials (it only learns the scheme), so
    /// read something harmless: the empty blob. Found or not, the registry
    /// accepted us; 401/403 (and an HTTPS registry answering our plain HTTP)
    /// show up here rather than in the middle of a publish.
    async fn check_access(&self) -> Result<()> {
        let reference = self.repo_ref();
        let what = format!("access to {}", self.name());
        let result = with_retry(&self.network, "check access", || async {
            self.client
                .pull_blob_stream(&reference, EMPTY_BLOB)
                .await
                .map(drop)
                .map_err(|e| self.ctx.map(e, &what))
        })
        .await;
        match result {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn reference(&self, selector: &Selector) -> Reference {
        match selector {
            Selector::Tag(t) => {
                Reference::with_tag(self.host.clone(), self.repository.clone(), t.clone())
            }
            Selector::Digest(d) => {
                Reference::with_digest(self.host.clone(), self.repository.clone(), d.to_string())
            }
        }
    }

    /// A reference to the repository itself (blob and tag requests ignore the tag).
    fn repo_ref(&self) -> Reference {
        Reference::with_tag(self.host.clone(), self.repository.clone(), "latest".into())
    }

    fn image_name(&self, selector: &Selector) -> String {
        format!("{}/{}{selector}", self.host, self.repository)
    }

    /// Turns a bare 404 for `selector` into "tag missing" (listing tags the
    /// repository has) or "repository missing".
    async fn not_found(&self, selector: &Selector) -> Error {
        let repo = format!("{}/{}", self.host, self.repository);
        let what = match selector {
            Selector::Tag(t) => format!("tag `{t}` in {repo}"),
            Selector::Digest(d) => format!("manifest {d} in {repo}"),
        };
        match self.list_tags().await {
            Ok(tags) if tags.is_empty() => Error::NotFound {
                what,
                hint: Some("the repository has no tags".into()),
            },
            Ok(tags) => {
                let shown: Vec<&str> = tags.iter().take(TAGS_SHOWN).map(String::as_str).collect();
                let more = tags.len().saturating_sub(TAGS_SHOWN);
                let more = if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                };
                Error::NotFound {
                    what,
                    hint: Some(format!(
                        "the repository has tags {}{more}",
                        shown.join(", ")
                    )),
                }
            }
            Err(Error::NotFound { .. }) => self.repository_missing(),
            Err(_) => Error::NotFound { what, hint: None },
        }
    }

    fn repository_missing(&self) -> Error {
        Error::NotFound {
            what: format!("repository {}", self.name()),
            hint: Some(
                "nothing was ever pushed there: check the image name (a repository \
                 exists once something is pushed to it)"
                    .into(),
            ),
        }
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let reference = self.repo_ref();
        let what = format!("the tags of {}/{}", self.host, self.repository);
        with_retry(&self.network, "list tags", || async {
            self.client
                .list_tags(&reference, &self.auth, None, None)
                .await
                .map(|r| r.tags)
                .map_err(|e| self.ctx.map(e, &what))
        })
        .await
    }

    /// The manifest `selector` names, digest-checked; a bare `NotFound` when absent.
    async fn fetch_manifest(&self, selector: &Selector) -> Result<RawManifest> {
        let reference = self.reference(selector);
        let what = format!("manifest {}", self.image_name(selector));
        let (bytes, _) = with_retry(&self.network, "get manifest", || async {
            self.client
                .pull_manifest_raw(&reference, &self.auth, &ACCEPTED_MANIFESTS)
                .await
                .map_err(|e| self.ctx.map(e, &what))
        })
        .await?;
        let manifest = RawManifest::from_bytes(bytes, None, &what)?;
        if let Selector::Digest(d) = selector {
            d.verify(&manifest.bytes, &what)?;
        }
        Ok(manifest)
    }

    async fn push_manifest(&self, reference: &Reference, manifest: &RawManifest) -> Result<()> {
        let what = format!(
            "manifest {} to {}/{}",
            manifest.digest, self.host, self.repository
        );
        let content_type = HeaderValue::from_str(&manifest.media_type).map_err(|_| {
            Error::malformed(
                &what,
                format!("invalid media type `{}`", manifest.media_type),
            )
        })?;
        with_retry(&self.network, "push manifest", || async {
            self.client
                .push_manifest_raw(reference, manifest.bytes.clone(), content_type.clone())
                .await
                .map(|_| ())
                .map_err(|e| self.ctx.map(e, &what))
        })
        .await
    }
}

impl Context {
    /// The same network error, rebuilt (errors are not `Clone`).
    fn network_again(&self, message: String) -> Error {
        Error::Network {
            registry: self.host.clone(),
            message,
            temporary: false,
        }
    }
}

#[async_trait]
impl Store for RegistryStore {
    fn name(&self) -> String {
        format!("{}/{}", self.host, self.repository)
    }

    fn network(&self) -> Option<&NetworkSettings> {
        Some(&self.network)
    }

    fn registry_host(&self) -> Option<&str> {
        Some(&self.host)
    }

    fn repository(&self) -> Option<&str> {
        Some(&self.repository)
    }

    // oci-client's HEAD (`fetch_manifest_digest`) returns the digest only; the
    // media type and size need the document, and manifests are small: one GET.
    async fn resolve(&self, selector: &Selector) -> Result<Descriptor> {
        Ok(self.get_manifest(selector).await?.descriptor())
    }

    async fn get_manifest(&self, selector: &Selector) -> Result<RawManifest> {
        match self.fetch_manifest(selector).await {
            Err(Error::NotFound { .. }) => Err(self.not_found(selector).await),
            other => other,
        }
    }

    async fn find_manifest(&self, selector: &Selector) -> Result<Option<RawManifest>> {
        match self.fetch_manifest(selector).await {
            Ok(m) => Ok(Some(m)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn probe(&self, selector: &Selector) -> Result<Option<Digest>> {
        match self.fetch_manifest(selector).await {
            Ok(m) => Ok(Some(m.digest)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        let name = format!("manifest {} for {}", manifest.digest, self.name());
        manifest.digest.verify(&manifest.bytes, &name)?;
        // By digest first. The digest goes in the tag slot on purpose: the URL is
        // the same, but oci-client's fallback for registries that omit `Location`
        // only works (rather than panics) for tag references.
        let by_digest = Reference::with_tag(
            self.host.clone(),
            self.repository.clone(),
            manifest.digest.to_string(),
        );
        self.push_manifest(&by_digest, manifest).await?;
        match tag {
            Some(tag) => self.put_tag(manifest, tag).await,
            None => Ok(()),
        }
    }

    /// oci-client asks `GET /v2/NAME/referrers/DIGEST` and, on the 404 of a
    /// registry without the API, reads the fallback tag itself; an error here
    /// is left to the fallback-tag read above the trait, which names it.
    async fn referrers(&self, subject: &Digest) -> Result<Option<Vec<Referrer>>> {
        let reference = self.reference(&Selector::Digest(subject.clone()));
        let index = match self.client.pull_referrers(&reference, None).await {
            Ok(index) => index,
            Err(e) => {
                tracing::debug!(store = %self.name(), error = %e, "no referrers from the referrers API");
                return Ok(None);
            }
        };
        let list = index
            .manifests
            .into_iter()
            .filter_map(|e| {
                Some(Referrer {
                    digest: Digest::parse(&e.digest).ok()?,
                    media_type: e.media_type,
                    size: u64::try_from(e.size).ok()?,
                    artifact_type: e.artifact_type,
                    annotations: e.annotations.unwrap_or_default(),
                })
            })
            .collect();
        Ok(Some(list))
    }

    async fn put_tag(&self, manifest: &RawManifest, tag: &str) -> Result<()> {
        let by_tag =
            Reference::with_tag(self.host.clone(), self.repository.clone(), tag.to_string());
        self.push_manifest(&by_tag, manifest).await
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let reference = self.repo_ref();
        let what = format!("blob {digest} in {}", self.name());
        with_retry(&self.network, "check blob", || async {
            self.client
                .blob_exists(&reference, digest.as_str())
                .await
                .map_err(|e| self.ctx.map(e, &what))
        })
        .await
    }

    async fn get_blob(&self, digest: &Digest, size: Option<u64>) -> Result<BlobReader> {
        let reference = self.repo_ref();
        let what = format!("blob {digest} in {}", self.name());
        let first = with_retry(&self.network, "get blob", || async {
            self.client
                .pull_blob_stream(&reference, digest.as_str())
                .await
                .map_err(|e| self.ctx.map(e, &what))
        })
        .await?;
        let resume = Resume {
            client: self.client.clone(),
            reference,
            digest: digest.to_string(),
            ctx: self.ctx.clone(),
            what: what.clone(),
            budget: Budget::current(&self.network),
            offset: 0,
            skip: 0,
            current: Some(first.stream),
            done: false,
        };
        let reader = StreamReader::new(Box::pin(resume.into_stream()));
        Ok(Box::pin(VerifyingReader::new(
            reader,
            digest.clone(),
            size,
            what,
        )))
    }

    async fn put_blob(&self, digest: &Digest, size: u64, data: BlobReader) -> Result<BlobPut> {
        // One reader: a step that must go back before the chunk in hand fails.
        let mut data = Some(data);
        let what = format!("blob {digest} for {}", self.name());
        let host = self.host.clone();
        let mut once = move || -> futures_util::future::BoxFuture<'static, Result<BlobReader>> {
            let next = data.take().ok_or_else(|| Error::Network {
                registry: host.clone(),
                message: format!("{what}: the upload broke and its source cannot be read again"),
                temporary: false,
            });
            Box::pin(std::future::ready(next))
        };
        self.put_blob_reopening(digest, size, &mut once).await
    }

    async fn put_blob_reopening(
        &self,
        digest: &Digest,
        size: u64,
        open: &mut Reopen<'_>,
    ) -> Result<BlobPut> {
        if self.blob_exists(digest).await? {
            return Ok(BlobPut::Present);
        }
        upload::Upload::new(self, digest, size).run(open).await
    }

    async fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool> {
        let target = self.repo_ref();
        let source = Reference::with_tag(
            self.host.clone(),
            from_repository.to_string(),
            "latest".into(),
        );
        // oci-client reports the registry's 202 ("mount refused, upload instead")
        // as an error that is not temporary; a temporary failure (a reset, a
        // 5xx) is retried, since copying instead costs the whole blob. Any
        // failure left means "copy instead".
        let what = format!("mount of {digest} into {}", self.name());
        let mounted = with_retry(&self.network, "mount blob", || async {
            self.client
                .mount_blob(&target, &source, digest.as_str())
                .await
                .map_err(|e| self.ctx.map(e, &what))
        })
        .await;
        match mounted {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::debug!(
                    "mounting {digest} from {from_repository} into {} failed, copying instead: {}",
                    self.name(),
                    self.ctx.redact(&e.to_string())
                );
                Ok(false)
            }
        }
    }

    async fn tags(&self) -> Result<Vec<String>> {
        match self.list_tags().await {
            Err(Error::NotFound { .. }) => Err(self.repository_missing()),
            other => other,
        }
    }
}

/// A blob download that survives a connection cut midway: after a temporary
/// failure it asks again from the byte it got to (`Range: bytes=N-`), within
/// its own retry budget. A registry that ignores `Range` sends the whole blob
/// again and the bytes already delivered are skipped. Bytes are verified by
/// the caller's `VerifyingReader` across all attempts.
struct Resume {
    client: Client,
    reference: Reference,
    digest: String,
    ctx: Context,
    what: String,
    budget: Budget,
    /// Bytes delivered so far.
    offset: u64,
    /// Bytes at the start of `current` already delivered (a full resend).
    skip: u64,
    current: Option<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>>,
    /// An error was delivered: the stream is over.
    done: bool,
}

impl Resume {
    fn into_stream(self) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
        futures_util::stream::unfold(self, |mut st| async move {
            let item = st.next_chunk().await?;
            Some((item, st))
        })
    }

    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.done {
            return None;
        }
        loop {
            // Every way this attempt can fail ends below, in one retry decision.
            let err = match self.current.as_mut() {
                None => match self.reopen().await {
                    Ok(stream) => {
                        self.current = Some(stream);
                        continue;
                    }
                    Err(e) => e,
                },
                Some(stream) => match stream.next().await {
                    None => return None,
                    Some(Ok(chunk)) => match self.deliver(chunk) {
                        Some(chunk) => return Some(Ok(chunk)),
                        None => continue,
                    },
                    Some(Err(io)) => {
                        self.current = None;
                        self.ctx.from_io(io, &self.what)
                    }
                },
            };
            if !self.budget.wait(&self.op(), &err).await {
                return Some(Err(self.fail(err)));
            }
        }
    }

    /// The part of `chunk` not delivered before (after a full resend), counted.
    fn deliver(&mut self, mut chunk: Bytes) -> Option<Bytes> {
        if self.skip > 0 {
            let n = self.skip.min(chunk.len() as u64);
            chunk = chunk.slice(n as usize..);
            self.skip -= n;
        }
        if chunk.is_empty() {
            return None;
        }
        self.offset += chunk.len() as u64;
        self.budget.progress();
        Some(chunk)
    }

    fn op(&self) -> String {
        format!("get blob (resuming at byte {})", self.offset)
    }

    /// The rest of the blob, from `offset`.
    async fn reopen(
        &mut self,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>> {
        let response = self
            .client
            .pull_blob_stream_partial(&self.reference, self.digest.as_str(), self.offset, None)
            .await
            .map_err(|e| self.ctx.map(e, &self.what))?;
        Ok(match response {
            oci_client::client::BlobResponse::Partial(s) => {
                self.skip = 0;
                s.stream
            }
            oci_client::client::BlobResponse::Full(s) => {
                self.skip = self.offset;
                s.stream
            }
        })
    }

    /// The final error, carried through the reader as an `io::Error` that
    /// `Context::from_io` turns back into ours.
    fn fail(&mut self, e: Error) -> std::io::Error {
        self.done = true;
        std::io::Error::other(e)
    }
}
