//! One `Store` trait over every place an image can live, with a registry
//! implementation (`registry`, through oci-client) and an OCI image layout
//! implementation (`layout`: a directory, or a tar archive of one).
//!
//! A store is opened for one repository (a registry repository, or one layout)
//! and works in digests: manifests are raw bytes with their media type, blobs
//! are streams verified against their digest as they are read.
//!
//! Above the trait, and the same for every store: [`open_image`] (what a
//! location naming no tag or digest reads), [`Pool`] (one store per source
//! repository), the read-only [`view`]s of indexes and images, and
//! [`copy_blob`] / [`put_blob_from`], which own the present / mount / stream
//! decision. Only this module and `image` look at the kind of a location.

pub mod docker_archive;
pub mod layout;
pub mod pool;
pub mod referrers;
pub mod registry;
pub mod view;

use std::pin::Pin;

use async_trait::async_trait;
use tokio::io::AsyncRead;

use crate::config::Settings;
use crate::error::Result;
use crate::image::manifest::{CONTAINERD_NAME_ANNOTATION, REF_NAME_ANNOTATION, Referrer};
use crate::image::{Descriptor, Digest, Location, RawManifest, Selector};

pub use pool::{Pool, StoreId};
pub use view::{ImageView, IndexView, PlatformEntry};

/// A stream of blob bytes. Streams returned by [`Store::get_blob`] fail at EOF
/// when the bytes do not match the requested digest.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Opens a blob's bytes from the start, as often as a transfer needs them
/// again (an upload that must go back further than the chunk in hand).
pub type Reopen<'a> =
    dyn FnMut() -> futures_util::future::BoxFuture<'a, Result<BlobReader>> + Send + 'a;

/// How a blob reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPut {
    /// It was already there; nothing was sent.
    Present,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded (or written) now.
    Written,
}

/// Reads and writes one repository's manifests, tags and blobs.
#[async_trait]
pub trait Store: Send + Sync {
    /// A human name for messages: `127.0.0.1:5000/app`, `oci:./out`, `oci-archive:app.tar`.
    fn name(&self) -> String;

    /// The retry settings of a store reached over the network (`None`: local).
    fn network(&self) -> Option<&crate::config::NetworkSettings> {
        None
    }

    /// The registry host when this is a registry store (for cross-repository mounts).
    fn registry_host(&self) -> Option<&str> {
        None
    }

    /// The repository path inside its registry, when this is a registry store.
    fn repository(&self) -> Option<&str> {
        None
    }

    /// What to read when a location names no tag or digest: `latest` for a
    /// registry; the single entry of a layout (several entries are an error).
    async fn default_selector(&self) -> Result<Selector> {
        Ok(Selector::Tag("latest".into()))
    }

    /// Resolves a tag or digest to the descriptor (media type, digest, size) of what it points at.
    async fn resolve(&self, selector: &Selector) -> Result<Descriptor>;

    /// The digest a tag or digest points at, `None` when there is none: the
    /// cheap "is it there already?" (no hints gathered for an error message).
    async fn probe(&self, selector: &Selector) -> Result<Option<Digest>> {
        match self.resolve(selector).await {
            Ok(d) => Ok(Some(d.digest)),
            Err(crate::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The manifest or index a tag or digest points at, as exact bytes.
    /// When `selector` is a digest the bytes are checked against it.
    async fn get_manifest(&self, selector: &Selector) -> Result<RawManifest>;

    /// The manifest a tag or digest names, `None` when there is none: the
    /// cheap [`Store::get_manifest`] for "is it there?" (a registry gathers no
    /// tag list for an error message).
    async fn find_manifest(&self, selector: &Selector) -> Result<Option<RawManifest>> {
        match self.get_manifest(selector).await {
            Ok(m) => Ok(Some(m)),
            Err(crate::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a manifest under its digest and, when `tag` is given, tags it.
    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()>;

    /// Points `tag` at a manifest already stored by digest. A registry sends
    /// only the tag PUT; the default stores it again (a no-op when present).
    async fn put_tag(&self, manifest: &RawManifest, tag: &str) -> Result<()> {
        self.put_manifest(manifest, Some(tag)).await
    }

    /// [`Store::put_tag`], recording the image's full name `NAME:TAG` where
    /// the store keeps names beside tags: an OCI layout's
    /// `io.containerd.image.name`, which `ctr images import` and K3s store the
    /// image under. A registry has its name already: the default is `put_tag`.
    async fn put_named_tag(&self, manifest: &RawManifest, tag: &str, _name: &str) -> Result<()> {
        self.put_tag(manifest, tag).await
    }

    /// Whether a blob is present.
    async fn blob_exists(&self, digest: &Digest) -> Result<bool>;

    /// Stores the blob `open` reads, opening it again when a transfer breaks
    /// midway; a blob already present is found without opening the source.
    /// The default starts over with a new `put_blob` after a temporary
    /// failure, within the target's retry budget; a registry resumes its
    /// upload instead (`registry::upload`).
    async fn put_blob_reopening(
        &self,
        digest: &Digest,
        size: u64,
        open: &mut Reopen<'_>,
    ) -> Result<BlobPut> {
        if self.blob_exists(digest).await? {
            return Ok(BlobPut::Present);
        }
        let budget = self.network().map(registry::retry::Budget::current);
        loop {
            let e = match self.put_blob(digest, size, open().await?).await {
                Err(e) => e,
                ok => return ok,
            };
            let again = match &budget {
                Some(b) => b.wait(&format!("upload blob {digest}"), &e).await,
                None => false,
            };
            if !again {
                return Err(e);
            }
        }
    }

    /// A blob's bytes, digest-verified while read (`size` checked when given).
    async fn get_blob(&self, digest: &Digest, size: Option<u64>) -> Result<BlobReader>;

    /// A file on this machine holding the blob, when the store keeps blobs as
    /// files (an OCI layout), so readers can skip a copy. The file is *not*
    /// verified: readers must check its digest as they read it.
    fn local_blob(&self, _digest: &Digest) -> Option<std::path::PathBuf> {
        None
    }

    /// Stores a blob streamed from `data`, which must hash to `digest`; skipped
    /// (data unread) when present. A mismatch leaves nothing behind.
    async fn put_blob(&self, digest: &Digest, size: u64, data: BlobReader) -> Result<BlobPut>;

    /// Mounts a blob from another repository of the same registry. `Ok(false)`
    /// when the store or registry cannot (the caller then copies).
    async fn mount_blob(&self, _digest: &Digest, _from_repository: &str) -> Result<bool> {
        Ok(false)
    }

    /// The tags in this repository or layout.
    async fn tags(&self) -> Result<Vec<String>>;

    /// What the store's referrers API (`GET /v2/NAME/referrers/DIGEST`) lists
    /// for `subject`; `None` when the store has no such API. The referrers tag
    /// schema's fallback tag is read above the trait (`store::referrers`).
    async fn referrers(&self, _subject: &Digest) -> Result<Option<Vec<Referrer>>> {
        Ok(None)
    }

    /// Makes everything written so far durable (an archive is written here).
    /// Callers call it once after their last write; reading stores ignore it.
    async fn commit(&self) -> Result<()> {
        Ok(())
    }
}

/// Opens the store for a location, with the registry settings from `settings`.
/// `for_write` creates a layout or archive that does not exist yet.
pub async fn open(
    location: &Location,
    settings: &Settings,
    for_write: bool,
) -> Result<Box<dyn Store>> {
    match location {
        Location::Registry(r) => Ok(Box::new(
            registry::RegistryStore::connect(r, settings, for_write).await?,
        )),
        Location::Layout { path, .. } => {
            Ok(Box::new(layout::LayoutStore::open_dir(path, for_write)?))
        }
        Location::Archive { path, .. } => Ok(Box::new(layout::LayoutStore::open_archive(
            path, for_write,
        )?)),
        Location::DockerArchive {
            path,
            digest: Some(d),
            ..
        } if for_write => Err(crate::Error::Invalid(format!(
            "docker-archive:{}@{d}: a target names no digest (the digest is computed); write docker-archive:FILE[:NAME:TAG]",
            path.display()
        ))),
        Location::DockerArchive { path, name, .. } if for_write => Ok(Box::new(
            docker_archive::DockerArchiveWriter::create(path, name.as_deref())?,
        )),
        Location::DockerArchive { path, name, .. } => Ok(Box::new(
            docker_archive::DockerArchiveStore::open(path, name.as_deref()).await?,
        )),
    }
}

/// A location opened for reading: its store, what to read there, and the tag
/// that read goes through (kept by `mirror` for its target).
pub struct Opened {
    pub store: Box<dyn Store>,
    /// The location's own tag or digest, else the store's default.
    pub selector: Selector,
    /// The tag `selector` reads through (named, or the store's default: a
    /// registry's `latest`, a layout's single entry's `ref.name`); `None` when
    /// the image is named by digest.
    pub tag: Option<String>,
    /// The image's full repository name (`REGISTRY/NAME`, Docker's normal
    /// form): a registry's own, or the one a layout or `docker save` archive
    /// records for it (`io.containerd.image.name`); `None` when unknown.
    pub name: Option<String>,
}

/// Opens a location to read the image it names: the one place that decides
/// what a location naming no tag or digest means (`latest` in a registry; the
/// single entry of a layout, an error when it has several).
pub async fn open_image(location: &Location, settings: &Settings) -> Result<Opened> {
    let store = open(location, settings, false).await?;
    let (selector, tag) = choose(location, store.as_ref()).await?;
    let name = match location {
        Location::Registry(r) => Some(r.name()),
        _ => store
            .resolve(&selector)
            .await
            .ok()
            .and_then(|d| d.annotations.get(CONTAINERD_NAME_ANNOTATION).cloned())
            .and_then(|n| repository_of(&n)),
    };
    Ok(Opened {
        store,
        selector,
        tag,
        name,
    })
}

/// The full repository (`REGISTRY/NAME`, as Docker normalises it: `debian`
/// is `docker.io/library/debian`) of an image name with or without a tag.
pub fn repository_of(name: &str) -> Option<String> {
    crate::image::ImageRef::parse(name).ok().map(|r| r.name())
}

/// What to read in `store` for `location`, and the tag it reads through.
async fn choose(location: &Location, store: &dyn Store) -> Result<(Selector, Option<String>)> {
    let selector = match location.selector() {
        Some(s) => s,
        None => store.default_selector().await?,
    };
    let tag = match &selector {
        Selector::Tag(t) => Some(t.clone()),
        // A digest named by the location is the user's choice; a layout's
        // single entry (its default) keeps its ref.name, when it has one.
        Selector::Digest(_) if location.selector().is_some() => None,
        Selector::Digest(_) => store
            .resolve(&selector)
            .await?
            .annotations
            .get(REF_NAME_ANNOTATION)
            .cloned(),
    };
    Ok((selector, tag))
}

/// The tag a write to `location` moves when the location names none:
/// `latest` in a registry (as a push does); `None` for a layout, whose
/// entries are found by the tag they are given.
pub fn default_tag(location: &Location) -> Option<&'static str> {
    match location {
        Location::Registry(_) => Some("latest"),
        Location::Layout { .. } | Location::Archive { .. } | Location::DockerArchive { .. } => None,
    }
}

/// Whether a manifest written to `location` needs a tag to be found again: a
/// registry keeps what is pushed by digest alone; archgate's layouts are read
/// by tag (or their single entry), so an untagged write would be lost.
pub fn needs_tag(location: &Location) -> bool {
    default_tag(location).is_none()
}

/// Opens a location to write into so that an interrupted write can resume: an
/// `oci-archive:` target is staged in `FILE.partial/` (see
/// [`layout::LayoutStore::open_archive_resumable`]); registries and layout
/// directories resume by themselves, since present blobs are skipped.
pub async fn open_resumable(location: &Location, settings: &Settings) -> Result<Box<dyn Store>> {
    match location {
        Location::Archive { path, .. } => {
            Ok(Box::new(layout::LayoutStore::open_archive_resumable(path)?))
        }
        other => open(other, settings, true).await,
    }
}

/// Where a blob's bytes come from when it is written to a store.
#[derive(Clone)]
pub enum BlobFrom<'a> {
    /// Another store (copied, mounted or found present: [`copy_blob`]).
    Store(&'a dyn Store),
    /// A file on this machine (a layer in the build cache).
    File(std::path::PathBuf),
    /// Bytes in memory (a config just written).
    Bytes(bytes::Bytes),
}

impl std::fmt::Debug for BlobFrom<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobFrom::Store(s) => write!(f, "Store({})", s.name()),
            BlobFrom::File(p) => write!(f, "File({})", p.display()),
            BlobFrom::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
        }
    }
}

/// Puts one blob into `dst` from wherever it is: skipped when present (asked
/// once, by [`Store::put_blob_reopening`]), and from another store as
/// [`copy_blob`] decides.
pub async fn put_blob_from(
    from: &BlobFrom<'_>,
    dst: &dyn Store,
    desc: &Descriptor,
) -> Result<BlobPut> {
    let (digest, size) = (&desc.digest, desc.size);
    match from {
        BlobFrom::Store(src) => copy_blob(*src, dst, desc).await,
        BlobFrom::File(path) => {
            put_blob_restarting(dst, digest, size, || async {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| crate::Error::io(path, e))?;
                Ok(Box::pin(f) as BlobReader)
            })
            .await
        }
        BlobFrom::Bytes(bytes) => {
            put_blob_restarting(dst, digest, size, || {
                let reader: BlobReader = Box::pin(std::io::Cursor::new(bytes.clone()));
                std::future::ready(Ok(reader))
            })
            .await
        }
    }
}

/// Copies one blob from `src` to `dst`: skipped when present, mounted when
/// both are repositories of one registry, streamed (and verified) otherwise.
/// The download and the upload share one retry budget (`retry::transfer`).
pub async fn copy_blob(src: &dyn Store, dst: &dyn Store, desc: &Descriptor) -> Result<BlobPut> {
    let network = dst.network().or(src.network());
    registry::retry::transfer(network, async {
        // Presence is asked once: here before a mount, else by the upload
        // itself, before the source is opened.
        if let (Some(a), Some(b), Some(from)) =
            (src.registry_host(), dst.registry_host(), src.repository())
            && a == b
        {
            if dst.blob_exists(&desc.digest).await? {
                return Ok(BlobPut::Present);
            }
            if dst.mount_blob(&desc.digest, from).await? {
                return Ok(BlobPut::Mounted);
            }
        }
        let open = || src.get_blob(&desc.digest, Some(desc.size));
        put_blob_restarting(dst, &desc.digest, desc.size, open).await
    })
    .await
}

/// Stores the blob `open` reads, as [`Store::put_blob`] does, opening it
/// again when the transfer breaks midway ([`Store::put_blob_reopening`]),
/// all within one retry budget (`[network]`).
pub async fn put_blob_restarting<'a, F, Fut>(
    dst: &dyn Store,
    digest: &Digest,
    size: u64,
    mut open: F,
) -> Result<BlobPut>
where
    F: FnMut() -> Fut + Send + 'a,
    Fut: std::future::Future<Output = Result<BlobReader>> + Send + 'a,
{
    let mut reopen =
        move || -> futures_util::future::BoxFuture<'a, Result<BlobReader>> { Box::pin(open()) };
    registry::retry::transfer(
        dst.network(),
        dst.put_blob_reopening(digest, size, &mut reopen),
    )
    .await
}

/// Reads a small blob (a config) whole, digest- and size-verified; `what` names it in errors.
pub async fn read_blob(store: &dyn Store, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    store
        .get_blob(&desc.digest, Some(desc.size))
        .await?
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| crate::Error::malformed(what, e))?;
    Ok(bytes)
}
